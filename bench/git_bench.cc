// reconcile_git_bench: measures the Git source against one remote.
//
//   idle Resolve      CPU (user+sys of this process) and wall time per
//                     Resolve when the ref does not move (the controller's
//                     poll), averaged over --resolves calls after a warm-up
//   cold load         Resolve + Load into an empty cache (fetch everything,
//                     decode every file)
//   one-file change   after a commit that changes one agent: Resolve + Load
//                     (fetch of the new objects + decode of one file +
//                     cross-document checks over the whole tree)
//
// It writes a tree of --agents agents (one file each) plus a Target in a work
// repository (git CLI), pushes it (forced) to --push, and reads it back
// through --url, which must serve that repository.
//
// Usage: reconcile_git_bench --url URL --push PATH_OR_URL [--agents 10000]
//          [--resolves 20] [--work DIR] [--user U --password-file F]
//          [--changes 5]
// Output: one "name: value" line per figure on stdout.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>

#include "bench_tree.h"
#include "reconcile/source.h"

namespace {

namespace fs = std::filesystem;
using namespace reconcile::bench;
using reconcile::OpenSource;
using reconcile::Snapshot;
using reconcile::Source;
using reconcile::SourceOptions;

Snapshot MustLoad(Source& source) {
  auto rev = source.Resolve({});
  if (!rev.ok()) throw std::runtime_error(rev.status().ToString());
  auto snap = source.Load(*rev, {});
  if (!snap.ok()) throw std::runtime_error(snap.status().ToString());
  if (snap->loaded.diagnostics.HasErrors()) {
    throw std::runtime_error("tree has errors: " + snap->loaded.diagnostics.items()[0].ToString());
  }
  return std::move(snap).value();
}

}  // namespace

int main(int argc, char** argv) {
  std::string url, push, user, password_file;
  fs::path work;
  int agents = 10000, resolves = 20, changes = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--url")
      url = v;
    else if (k == "--push")
      push = v;
    else if (k == "--agents")
      agents = std::stoi(v);
    else if (k == "--resolves")
      resolves = std::stoi(v);
    else if (k == "--changes")
      changes = std::stoi(v);
    else if (k == "--work")
      work = v;
    else if (k == "--user")
      user = v;
    else if (k == "--password-file")
      password_file = v;
    else {
      std::cerr << "unknown flag " << k << "\n";
      return 1;
    }
  }
  if (url.empty() || push.empty()) {
    std::cerr << "usage: reconcile_git_bench --url URL --push PATH [--agents N] [--resolves R] "
                 "[--work DIR] [--user U --password-file F] [--changes C]\n";
    return 1;
  }
  try {
    if (work.empty()) work = fs::temp_directory_path() / "reconcile-git-bench";
    fs::remove_all(work);
    fs::path repo = work / "repo";
    WriteTree(repo, agents, push);

    SourceOptions o;
    o.location = url;
    o.ref = "main";
    o.auth.username = user;
    o.auth.password_file = password_file;
    o.cache_dir = work / "cache";
    auto opened = OpenSource(o);
    if (!opened.ok()) throw std::runtime_error(opened.status().ToString());
    Source& source = **opened;

    std::cout << "url: " << source.Describe() << "\n";
    std::cout << "agents: " << agents << "\n";

    // Cold load: empty cache, fetch everything, decode every file.
    double cpu0 = CpuMs();
    auto t0 = std::chrono::steady_clock::now();
    Snapshot cold = MustLoad(source);
    std::cout << "cold_load_ms: " << WallMs(t0) << "\n";
    std::cout << "cold_load_cpu_ms: " << CpuMs() - cpu0 << "\n";
    std::cout << "cold_load_decoded: " << cold.stats.decoded << "\n";

    // Idle polls.
    (void)source.Resolve({});
    cpu0 = CpuMs();
    t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < resolves; ++i) {
      auto rev = source.Resolve({});
      if (!rev.ok() || *rev != cold.revision) throw std::runtime_error("resolve moved or failed");
    }
    std::cout << "idle_resolve_cpu_ms: " << (CpuMs() - cpu0) / resolves << "\n";
    std::cout << "idle_resolve_wall_ms: " << WallMs(t0) / resolves << "\n";

    // One-file changes: the commit is pushed before the clock starts.
    double total_wall = 0, total_cpu = 0, worst = 0;
    size_t decoded = 0;
    for (int c = 0; c < changes; ++c) {
      int i = (c * 7919 + 42) % agents;
      ChangeAgent(repo, i, "nginx:1." + std::to_string(28 + c), push);
      cpu0 = CpuMs();
      t0 = std::chrono::steady_clock::now();
      Snapshot next = MustLoad(source);
      double wall = WallMs(t0);
      total_wall += wall;
      total_cpu += CpuMs() - cpu0;
      worst = std::max(worst, wall);
      decoded += next.stats.decoded;
      if (next.revision == cold.revision) throw std::runtime_error("change not seen");
    }
    std::cout << "one_file_change_ms: " << total_wall / changes << "\n";
    std::cout << "one_file_change_worst_ms: " << worst << "\n";
    std::cout << "one_file_change_cpu_ms: " << total_cpu / changes << "\n";
    std::cout << "one_file_change_decoded: " << static_cast<double>(decoded) / changes << "\n";
  } catch (const std::exception& e) {
    std::cerr << "git bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
