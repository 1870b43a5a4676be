// reconcile_multienv_bench: one controller (the real MultiScheduler and one
// Scheduler per environment, wired as `reconcile controller --path ...`
// wires them) following three environments of --agents agents each in one
// Git repository, with an in-memory provider standing in for Docker
// (tests/fakes/fake_provider.h, one per environment).
//
//   1. the first passes: every environment loads, observes, plans and
//      applies its --agents agents (wall time per environment);
//   2. --changes times: a commit changes one agent of envs/staging, the ref
//      check is triggered (as a webhook does), and the clock stops when
//      staging's pass has applied it; beside it, how many passes dev and prod
//      ran that observed or planned (must be 0) and how many they skipped.
//
// --overlays 1: the environments are Environment overlays of one base/ of
// --agents agents (each environment's folder holds its Environment and a
// patch of every tenth agent); the change is one patch of envs/staging.
//
// Usage: reconcile_multienv_bench [--agents 1000] [--changes 5] [--overlays 0|1] [--work DIR]
// Output: one "name: value" line per figure on stdout.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "bench_tree.h"
#include "controller/multi_scheduler.h"
#include "controller/scheduler.h"
#include "fakes/fake_provider.h"
#include "fakes/fake_source.h"
#include "reconcile/clock.h"
#include "reconcile/provider.h"
#include "reconcile/source.h"
#include "reconcile/state_store.h"

namespace reconcile {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using bench::WallMs;

class NullObserver final : public EventObserver {
 public:
  void OnEvent(const Event&) override {}
};

// Counts one environment's passes.
class Counts final : public controller::SchedulerListener {
 public:
  void RefChecked(const Result<std::string>&, double) override { ++checks; }
  void Decided(const std::string&, controller::Decision, const std::string&) override {}
  void PassFinished(const PassRequest&, const PassReport& r, double seconds) override {
    if (r.unchanged) {
      ++skipped;
      return;
    }
    if (r.status.ok()) {
      ++good;
      last_ms = seconds * 1000;
      last_changes = r.changes;
    } else {
      ++bad;
      std::lock_guard<std::mutex> lock(mu);
      error = r.status.ToString();
    }
  }
  std::atomic<int> checks{0}, good{0}, bad{0}, skipped{0}, last_changes{0};
  std::atomic<double> last_ms{0};
  std::mutex mu;
  std::string error;
};

std::string AgentFile(int i) { return bench::AgentFile(i); }

void WriteEnvironment(const fs::path& repo, const std::string& env, int agents) {
  bench::Write(repo / "envs" / env / "target.yaml",
               "apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: local}\n"
               "spec: {provider: docker}\n");
  for (int i = 0; i < agents; ++i) {
    bench::Write(repo / "envs" / env / AgentFile(i), bench::Agent(i, "nginx:1.27"));
  }
}

// Environment overlays: base/ holds the Target and the agents; envs/<env>
// holds its Environment and a patch of every tenth agent.
void WriteBase(const fs::path& repo, int agents) {
  bench::Write(repo / "base/target.yaml",
               "apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: local}\n"
               "spec: {provider: docker}\n");
  for (int i = 0; i < agents; ++i) {
    bench::Write(repo / "base" / AgentFile(i), bench::Agent(i, "nginx:1.27"));
  }
}

std::string Patch(int i, const std::string& image) {
  char name[32];
  std::snprintf(name, sizeof name, "a%05d", i);
  return std::string("apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: ") + name +
         "}\nspec:\n  image: " + image + "\n  env: {TIER: patched}\n";
}

void WriteOverlay(const fs::path& repo, const std::string& env, int agents) {
  bench::Write(repo / "envs" / env / "environment.yaml",
               "apiVersion: reconcile.dev/v1alpha1\nkind: Environment\nmetadata: {name: " + env +
                   "}\nspec:\n  bases: [../../base]\n  labels: {tier: " + env +
                   "}\n  env: {ENVIRONMENT: " + env + "}\n");
  for (int i = 0; i < agents; i += 10) {
    bench::Write(repo / "envs" / env / "patches" / AgentFile(i), Patch(i, "nginx:1.27-" + env));
  }
}

std::unique_ptr<Source> Open(const std::string& url, const fs::path& cache,
                             const std::string& path) {
  SourceOptions o;
  o.location = url;
  o.ref = "main";
  o.path = path;
  o.cache_dir = cache;
  auto opened = OpenSource(o);
  if (!opened.ok()) throw std::runtime_error(opened.status().ToString());
  return std::move(*opened);
}

void WaitFor(const std::function<bool()>& done, const char* what) {
  auto t0 = std::chrono::steady_clock::now();
  while (!done()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (WallMs(t0) > 600'000) throw std::runtime_error(std::string("timeout: ") + what);
  }
}

int Main(int argc, char** argv) {
  int agents = 1000;
  int changes = 5;
  bool overlays = false;
  fs::path work = fs::temp_directory_path() / "reconcile-multienv-bench";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--agents") agents = std::stoi(argv[i + 1]);
    if (k == "--changes") changes = std::stoi(argv[i + 1]);
    if (k == "--work") work = argv[i + 1];
    if (k == "--overlays") overlays = std::string(argv[i + 1]) == "1";
  }
  fs::remove_all(work);
  fs::create_directories(work);
  const fs::path repo = work / "repo";
  const std::string origin = (work / "origin.git").string();
  bench::Run("git init -q --bare -b main '" + origin + "'");
  fs::create_directories(repo);
  bench::Run(bench::Git(repo) + "init -q -b main");
  const std::vector<std::string> envs{"dev", "staging", "prod"};
  if (overlays) WriteBase(repo, agents);
  for (const auto& e : envs) {
    if (overlays) {
      WriteOverlay(repo, e, agents);
    } else {
      WriteEnvironment(repo, e, agents);
    }
  }
  bench::Run(bench::Git(repo) + "add -A && " + bench::Git(repo) + "commit -q -m tree");
  bench::Run(bench::Git(repo) + "push -q -f '" + origin + "' main");
  const std::string url = "file://" + origin;

  auto clock = NewSystemClock();
  NullObserver observer;
  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  Counts ref_counts;
  auto root = Open(url, work / "cache", "");
  controller::MultiSchedulerOptions mo;
  mo.interval = std::chrono::hours(1);
  controller::MultiScheduler multi(io, root.get(), mo, &ref_counts);
  struct Env {
    std::unique_ptr<Source> source;
    std::unique_ptr<StateStore> store;
    testing::FakeProvider world;
    ProviderRegistry registry;
    Counts counts;
  };
  std::map<std::string, std::unique_ptr<Env>> by_name;
  for (const auto& e : envs) {
    auto env = std::make_unique<Env>();
    env->source = Open(url, work / "cache", "envs/" + e);
    env->store = NewFileStateStore(EnvironmentStateDir(work / "state", e));
    testing::RegisterFake(env->registry, &env->world, "docker");
    ReconcilerDeps deps;
    deps.source = env->source.get();
    deps.store = env->store.get();
    deps.providers = &env->registry;
    deps.clock = clock.get();
    deps.observer = &observer;
    deps.secrets_dir = work / "secrets";
    controller::SchedulerOptions so;
    so.environment = e;
    so.path = "envs/" + e;
    so.follower = true;
    so.policy.drift_interval = std::chrono::hours(1);
    multi.Add(std::make_unique<controller::Scheduler>(io, deps, so, &env->counts));
    by_name[e] = std::move(env);
  }
  std::thread runner([&] { io.run(); });
  auto t0 = std::chrono::steady_clock::now();
  multi.Start();
  WaitFor(
      [&] {
        for (auto& [n, e] : by_name) {
          if (e->counts.good + e->counts.bad == 0) return false;
        }
        return true;
      },
      "first passes");
  const double first_all_ms = WallMs(t0);
  std::cout << "tree: " << (overlays ? "overlays of one base" : "a plain tree per environment")
            << "\nagents_per_environment: " << agents << "\nenvironments: " << envs.size() << "\n";
  for (auto& [n, e] : by_name) {
    if (e->counts.bad > 0) {
      std::cerr << "multienv_bench: " << n << ": " << e->counts.error << "\n";
      std::_Exit(1);  // the controller's threads are still running
    }
    std::cout << "first_pass_ms{" << n << "}: " << e->counts.last_ms << "\nfirst_pass_changes{" << n
              << "}: " << e->counts.last_changes << "\n";
  }
  std::cout << "first_passes_all_ms: " << first_all_ms << "\n";

  std::vector<double> latencies;
  int others_planned = 0;
  int others_skipped = 0;
  for (int c = 0; c < changes; ++c) {
    Env& staging = *by_name["staging"];
    const int before = staging.counts.good;
    std::map<std::string, int> good_before, skipped_before;
    for (auto& [n, e] : by_name)
      good_before[n] = e->counts.good, skipped_before[n] = e->counts.skipped;
    if (overlays) {
      bench::Write(repo / "envs/staging/patches" / AgentFile(10),
                   Patch(10, "nginx:1.27-staging." + std::to_string(c + 1)));
    } else {
      bench::Write(repo / "envs/staging" / AgentFile(7),
                   bench::Agent(7, "nginx:1.27." + std::to_string(c + 1)));
    }
    auto start = std::chrono::steady_clock::now();
    bench::Run(bench::Git(repo) + "commit -q -am change && " + bench::Git(repo) + "push -q -f '" +
               origin + "' main");
    multi.Trigger("bench", "");
    WaitFor([&] { return staging.counts.good + staging.counts.bad > before; }, "staging pass");
    latencies.push_back(WallMs(start));
    if (staging.counts.last_changes != 1) throw std::runtime_error("staging: not one change");
    for (const char* other : {"dev", "prod"}) {
      Env& e = *by_name[other];
      WaitFor(
          [&] {
            return e.counts.skipped + e.counts.good > skipped_before[other] + good_before[other];
          },
          "other environment");
      others_planned += e.counts.good - good_before[other];
      others_skipped += e.counts.skipped - skipped_before[other];
    }
  }
  std::sort(latencies.begin(), latencies.end());
  std::cout << "changes: " << changes << "\n"
            << "commit_to_staging_applied_ms_median: " << latencies[latencies.size() / 2] << "\n"
            << "commit_to_staging_applied_ms_max: " << latencies.back() << "\n"
            << "other_environments_planned: " << others_planned << "\n"
            << "other_environments_skipped: " << others_skipped << "\n"
            << "ref_checks: " << ref_counts.checks << "\n";
  multi.Stop([&] {
    guard.reset();
    io.stop();
  });
  runner.join();
  fs::remove_all(work);
  return others_planned == 0 ? 0 : 1;
}

}  // namespace
}  // namespace reconcile

int main(int argc, char** argv) {
  try {
    return reconcile::Main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "multienv_bench: " << e.what() << "\n";
    return 1;
  }
}
