// reconcile_planner_bench: the pure planner (ComputePlan) in process, on
// trees of N agents built as values, with nothing changed (the recorded
// state and the observation match the tree) and with one agent changed.
//
// Usage: reconcile_planner_bench [--agents 1000,10000,100000] [--runs 5]
// Output: one "name: value" line per figure on stdout (median and min of
// --runs runs, in milliseconds).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "reconcile/planner.h"
#include "reconcile/spec.h"

namespace {

using namespace reconcile;

Agent MakeAgent(int i, const std::string& image) {
  char name[32];
  std::snprintf(name, sizeof name, "a%06d", i);
  Agent a;
  a.name = name;
  a.labels = {{"team", "bench"}};
  a.image = image;
  a.target = "local";
  a.port = 8080;
  a.env = {{"GREETING", "hello"}, {"INDEX", std::to_string(i)}};
  a.health_check = HealthCheck{};
  return a;
}

struct World {
  DesiredState desired;
  State recorded;
  std::map<std::string, ObserveResponse> observed;
  std::map<std::string, ProviderSchema> schemas;
};

// A tree of n agents, all deployed and recorded at their current spec.
World MakeWorld(int n) {
  World w;
  Target t;
  t.name = "local";
  t.provider = "docker";
  w.desired.targets.push_back(t);
  w.desired.revision = "tree-bench";
  ObserveResponse& obs = w.observed["local"];
  for (int i = 0; i < n; ++i) {
    Agent a = MakeAgent(i, "nginx:1.27");
    nlohmann::json spec = NormalizedSpec(a, a.image);
    std::string hash = SpecHash(spec);
    ResourceState rs;
    rs.address = "agent." + a.name;
    rs.name = a.name;
    rs.target = "local";
    rs.provider = "docker";
    rs.spec = spec;
    rs.spec_hash = hash;
    rs.revision = "tree-bench";
    rs.instances = {{"id-" + a.name, a.name, "http://127.0.0.1:1", {}}};
    rs.health = "healthy";
    w.recorded.resources[rs.address] = rs;
    ObservedInstance oi;
    oi.id = "id-" + a.name;
    oi.name = a.name;
    oi.agent = a.name;
    oi.spec_hash = hash;
    oi.revision = "tree-bench";
    oi.image = a.image;
    oi.state = "running";
    oi.running = true;
    obs.instances.push_back(oi);
    w.desired.agents.push_back(std::move(a));
  }
  w.schemas["docker"] = ProviderSchema{};
  return w;
}

double TimePlan(const World& w, int expect_changes) {
  PlanInput in;
  in.desired = &w.desired;
  in.recorded = &w.recorded;
  in.observed = w.observed;
  in.schemas = w.schemas;
  auto t0 = std::chrono::steady_clock::now();
  Plan plan = ComputePlan(in);
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  int changes = static_cast<int>(plan.changes.size()) - plan.Count(Action::kNoOp);
  if (changes != expect_changes) {
    std::cerr << "planner bench: expected " << expect_changes << " changes, got " << changes
              << "\n";
    std::exit(1);
  }
  return ms;
}

void Report(const std::string& name, std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  std::cout << name << "_median_ms: " << ms[ms.size() / 2] << "\n"
            << name << "_min_ms: " << ms.front() << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> sizes = {1000, 10000, 100000};
  int runs = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--agents") {
      sizes.clear();
      std::stringstream in(v);
      for (std::string part; std::getline(in, part, ',');) sizes.push_back(std::stoi(part));
    } else if (k == "--runs") {
      runs = std::max(1, std::stoi(v));
    } else {
      std::cerr << "usage: reconcile_planner_bench [--agents N,N,...] [--runs R]\n";
      return 1;
    }
  }
  for (int n : sizes) {
    World w = MakeWorld(n);
    std::vector<double> same, one;
    for (int r = 0; r < runs; ++r) same.push_back(TimePlan(w, 0));
    // An edit is a new Agent value (its spec memo starts empty), as a load gives.
    Agent& changed = w.desired.agents[static_cast<size_t>(n / 2)];
    const Agent original = changed;
    Agent edited = changed;
    edited.image = "nginx:1.28";
    changed = std::move(edited);
    for (int r = 0; r < runs; ++r) one.push_back(TimePlan(w, 1));
    changed = original;
    std::cout << "agents: " << n << "\n";
    Report("plan_" + std::to_string(n) + "_nochange", same);
    Report("plan_" + std::to_string(n) + "_onechange", one);
  }
  return 0;
}
