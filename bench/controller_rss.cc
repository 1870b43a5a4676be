// reconcile_controller_rss: the controller's memory and its one-file-change
// path, over a real Git source, with an in-memory provider standing in for
// Docker (registered under the name `docker`, tests/fakes/fake_provider.h).
//
//   --mode rss     (default) runs the real Scheduler + HttpServer + Metrics,
//                  wired as `reconcile controller` wires them, on a tree of
//                  --agents agents; waits for the first pass to apply all of
//                  them, idles --idle seconds (ref checks every --interval),
//                  and prints VmRSS / VmHWM from /proc/self/status, after the
//                  first pass and after the idle time, plus the port it
//                  listens on (127.0.0.1, so a harness can GET /metrics).
//   --mode change  deploys --agents agents (first pass), then --changes
//                  times: pushes a commit that changes one agent and times
//                  each step of the pass the controller would run:
//                  Resolve, fetch + load, lock, read state, observe, plan
//                  (which must hold exactly one change), apply + record.
//
// Usage: reconcile_controller_rss --url URL --push PATH_OR_URL [--mode rss|change]
//          [--agents 1000] [--idle 5] [--interval-ms 1000] [--changes 5] [--work DIR]
// Output: one "name: value" line per figure on stdout.
#include <malloc.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "bench_tree.h"
#include "controller/http_server.h"
#include "controller/memory.h"
#include "controller/metrics.h"
#include "controller/metrics_listener.h"
#include "controller/scheduler.h"
#include "controller/scheduler_view.h"
#include "fakes/fake_provider.h"
#include "fakes/fake_source.h"
#include "reconcile/clock.h"
#include "reconcile/event.h"
#include "reconcile/pass.h"
#include "reconcile/reconciler.h"
#include "reconcile/source.h"
#include "reconcile/state_store.h"

namespace {

namespace fs = std::filesystem;
namespace asio = boost::asio;
using namespace reconcile;
using reconcile::bench::CpuMs;
using reconcile::bench::WallMs;

struct Flags {
  std::string mode = "rss";
  std::string url, push;
  fs::path work;
  int agents = 1000;
  int idle_s = 5;
  int interval_ms = 1000;
  int changes = 5;
};

// "VmRSS" -> its value in KiB from /proc/self/status (0 if absent).
long StatusKiB(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) return std::stol(line.substr(key.size() + 1));
  }
  return 0;
}

void PrintMemory(const std::string& when) {
  struct mallinfo2 heap = mallinfo2();
  std::cout << when << "_heap_in_use_kib: " << heap.uordblks / 1024 << "\n"
            << when << "_heap_mmapped_kib: " << heap.hblkhd / 1024 << "\n"
            << when << "_heap_free_kib: " << heap.fordblks / 1024 << "\n"
            << when << "_vmrss_kib: " << StatusKiB("VmRSS") << "\n"
            << when << "_vmhwm_kib: " << StatusKiB("VmHWM") << "\n"
            << std::flush;
}

// Counts what the scheduler reports; thread-safe.
class CountingListener final : public controller::SchedulerListener {
 public:
  void RefChecked(const Result<std::string>&, double) override { ++checks; }
  void Decided(const std::string&, controller::Decision, const std::string&) override {}
  void PassFinished(const PassRequest&, const PassReport& r, double seconds) override {
    if (r.status.ok()) {
      last_changes = r.changes;
      first_pass_ms = seconds * 1000;
      ++good_passes;
    } else {
      std::lock_guard<std::mutex> lock(mu);
      last_error = r.status.ToString();
      ++bad_passes;
    }
  }
  std::atomic<int> checks{0};
  std::atomic<int> good_passes{0};
  std::atomic<int> bad_passes{0};
  std::atomic<int> last_changes{0};
  std::atomic<double> first_pass_ms{0};
  std::mutex mu;
  std::string last_error;
};

std::unique_ptr<Source> Open(const Flags& f) {
  SourceOptions o;
  o.location = f.url;
  o.ref = "main";
  o.cache_dir = f.work / "cache";
  auto opened = OpenSource(o);
  if (!opened.ok()) throw std::runtime_error(opened.status().ToString());
  return std::move(*opened);
}

int RunRss(const Flags& f) {
  controller::TuneAllocator();  // as `reconcile controller` does
  PrintMemory("start");
  bench::WriteTree(f.work / "repo", f.agents, f.push);
  auto source = Open(f);
  auto store = NewFileStateStore(f.work / "state");
  auto clock = NewSystemClock();
  NullObserver observer;
  testing::FakeProvider world;
  ProviderRegistry registry;
  testing::RegisterFake(registry, &world, "docker");

  controller::Metrics metrics;
  CountingListener counts;
  controller::MetricsListener listener(metrics, &counts);
  ReconcilerDeps deps;
  deps.source = source.get();
  deps.store = store.get();
  deps.providers = &registry;
  deps.clock = clock.get();
  deps.observer = &observer;
  deps.secrets_dir = f.work / "secrets";
  controller::SchedulerOptions options;
  options.interval = controller::Millis(f.interval_ms);
  options.branch = "main";

  asio::io_context io;
  controller::Scheduler scheduler(io, deps, options, &listener);
  controller::SchedulerView view(scheduler, "main");
  controller::HttpServerOptions http_options;
  http_options.listen = "127.0.0.1:0";
  controller::HttpServer http(io, http_options, view, metrics);
  if (Status s = http.Start(); !s.ok()) throw std::runtime_error(s.ToString());
  auto t0 = std::chrono::steady_clock::now();
  scheduler.Start();
  std::thread runner([&] { io.run(); });

  while (counts.good_passes == 0 && counts.bad_passes == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (WallMs(t0) > 600'000) throw std::runtime_error("no pass within 10 minutes");
  }
  bool ok = counts.good_passes > 0 && counts.last_changes == f.agents;
  std::cout << "agents: " << f.agents << "\n"
            << "first_pass_ok: " << (ok ? 1 : 0) << "\n"
            << "first_pass_changes: " << counts.last_changes << "\n"
            << "first_pass_ms: " << counts.first_pass_ms << "\n"
            << "port: " << http.port() << "\n";
  if (!ok) {
    std::lock_guard<std::mutex> lock(counts.mu);
    std::cout << "first_pass_error: " << counts.last_error << "\n";
  }
  PrintMemory("after_first_pass");
  int checks0 = counts.checks;
  double cpu0 = CpuMs();
  std::this_thread::sleep_for(std::chrono::seconds(f.idle_s));
  int checks = counts.checks - checks0;
  std::cout << "idle_s: " << f.idle_s << "\n"
            << "idle_checks: " << checks << "\n"
            << "idle_cpu_ms_per_check: " << (checks > 0 ? (CpuMs() - cpu0) / checks : 0) << "\n";
  PrintMemory("idle");

  http.Stop();
  scheduler.Stop([&] { io.stop(); });
  runner.join();
  return ok ? 0 : 1;
}

int RunChange(const Flags& f) {
  bench::WriteTree(f.work / "repo", f.agents, f.push);
  auto source = Open(f);
  auto store = NewFileStateStore(f.work / "state");
  auto clock = NewSystemClock();
  NullObserver observer;
  testing::FakeProvider world;
  ProviderRegistry registry;
  testing::RegisterFake(registry, &world, "docker");
  ReconcilerDeps deps;
  deps.source = source.get();
  deps.store = store.get();
  deps.providers = &registry;
  deps.clock = clock.get();
  deps.observer = &observer;
  deps.secrets_dir = f.work / "secrets";

  // First pass: the whole tree is created in the fake world and recorded.
  auto rev = source->Resolve({});
  if (!rev.ok()) throw std::runtime_error(rev.status().ToString());
  PassRequest first;
  first.revision = *rev;
  auto t0 = std::chrono::steady_clock::now();
  PassReport r = RunPass(deps, first);
  if (!r.status.ok() || r.changes != f.agents) {
    throw std::runtime_error("first pass: " + r.status.ToString() + ", " +
                             std::to_string(r.changes) + " changes");
  }
  std::cout << "agents: " << f.agents << "\n"
            << "first_pass_ms: " << WallMs(t0) << "\n";

  struct Step {
    const char* name;
    std::vector<double> ms;
  };
  std::vector<Step> steps = {{"resolve", {}},    {"fetch_load", {}},   {"lock", {}},
                             {"read_state", {}}, {"observe", {}},      {"plan", {}},
                             {"to_plan", {}},    {"apply_record", {}}, {"pass", {}}};
  std::vector<double> cpu_to_plan;
  for (int c = 0; c < f.changes; ++c) {
    int i = (c * 7919 + 42) % f.agents;
    bench::ChangeAgent(f.work / "repo", i, "nginx:1." + std::to_string(28 + c), f.push);
    double cpu0 = CpuMs();
    auto start = std::chrono::steady_clock::now();
    auto lap = start;
    size_t k = 0;
    auto mark = [&] {
      steps[k++].ms.push_back(WallMs(lap));
      lap = std::chrono::steady_clock::now();
    };
    auto next = source->Resolve({});
    if (!next.ok() || *next == *rev) throw std::runtime_error("resolve did not move");
    rev = next;
    mark();
    Reconciler rc(deps);
    if (Status s = rc.Fetch(*rev); !s.ok()) throw std::runtime_error("fetch: " + s.ToString());
    mark();
    if (Status s = rc.Lock("bench"); !s.ok()) throw std::runtime_error("lock: " + s.ToString());
    mark();
    if (Status s = rc.ReadState(); !s.ok()) throw std::runtime_error("state: " + s.ToString());
    mark();
    if (Status s = rc.Observe(); !s.ok()) throw std::runtime_error("observe: " + s.ToString());
    mark();
    Plan plan = rc.MakePlan();
    mark();
    steps[k++].ms.push_back(WallMs(start));
    cpu_to_plan.push_back(CpuMs() - cpu0);
    int changed = static_cast<int>(plan.changes.size()) - plan.Count(Action::kNoOp);
    if (changed != 1) throw std::runtime_error("plan has " + std::to_string(changed) + " changes");
    ApplyOutcome out = rc.ApplyPlan(plan, ApplyOptions{});
    if (!out.status.ok() || out.succeeded != 1) {
      throw std::runtime_error("apply: " + out.status.ToString());
    }
    mark();
    steps[k++].ms.push_back(WallMs(start));
  }
  for (const Step& s : steps) {
    double sum = 0, worst = 0;
    for (double v : s.ms) {
      sum += v;
      worst = std::max(worst, v);
    }
    std::cout << s.name << "_ms: " << sum / s.ms.size() << "\n"
              << s.name << "_worst_ms: " << worst << "\n";
  }
  double cpu = 0;
  for (double v : cpu_to_plan) cpu += v;
  std::cout << "to_plan_cpu_ms: " << cpu / cpu_to_plan.size() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--mode")
      f.mode = v;
    else if (k == "--url")
      f.url = v;
    else if (k == "--push")
      f.push = v;
    else if (k == "--work")
      f.work = v;
    else if (k == "--agents")
      f.agents = std::stoi(v);
    else if (k == "--idle")
      f.idle_s = std::stoi(v);
    else if (k == "--interval-ms")
      f.interval_ms = std::stoi(v);
    else if (k == "--changes")
      f.changes = std::stoi(v);
    else {
      std::cerr << "unknown flag " << k << "\n";
      return 1;
    }
  }
  if (f.url.empty() || f.push.empty() || (f.mode != "rss" && f.mode != "change")) {
    std::cerr << "usage: reconcile_controller_rss --url URL --push PATH [--mode rss|change] "
                 "[--agents N] [--idle S] [--interval-ms MS] [--changes C] [--work DIR]\n";
    return 1;
  }
  try {
    if (f.work.empty()) f.work = fs::temp_directory_path() / "reconcile-controller-rss";
    fs::remove_all(f.work);
    fs::create_directories(f.work);
    return f.mode == "rss" ? RunRss(f) : RunChange(f);
  } catch (const std::exception& e) {
    std::cerr << "controller bench: " << e.what() << "\n";
    return 1;
  }
}
