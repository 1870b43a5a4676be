#include "reconcile/planner.h"

#include "reconcile/loader.h"
#include "reconcile/spec.h"

#include <doctest/doctest.h>

#include "unit/engine/test_world.h"

namespace reconcile {
namespace {

using testing::HashOf;
using testing::MakeAgent;
using testing::MakeDesired;
using testing::Recorded;
using testing::Running;

const Change& Find(const Plan& plan, const std::string& address) {
  for (const Change& c : plan.changes) {
    if (c.address == address) return c;
  }
  FAIL("no change for " << address);
  throw std::logic_error("unreachable");
}

const FieldChange* FindField(const Change& c, const std::string& path) {
  for (const FieldChange& f : c.fields) {
    if (f.path == path) return &f;
  }
  return nullptr;
}

struct World {
  DesiredState desired;
  State recorded;
  ObserveResponse observed;
  ProviderSchema schema;

  Plan Compute() const {
    PlanInput in;
    in.desired = &desired;
    in.recorded = &recorded;
    in.observed["local"] = observed;
    in.schemas["docker"] = schema;
    return ComputePlan(in);
  }
};

TEST_CASE("planner: one action per situation") {
  Agent a = MakeAgent("a");
  struct Row {
    const char* name;
    std::function<void(World&)> setup;
    Action want;
    const char* reason_contains;
  };
  std::vector<Row> rows = {
      {"new agent is created", [](World&) {}, Action::kCreate, "new agent"},
      {"running with the same spec is a no-op",
       [&](World& w) {
         w.observed.instances = {Running(a, "c1")};
         w.recorded.resources["agent.a"] = Recorded(a, "c1");
       },
       Action::kNoOp, "up to date"},
      {"same spec but no state entry (lost state) is a no-op",
       [&](World& w) { w.observed.instances = {Running(a, "c1")}; }, Action::kNoOp, "up to date"},
      {"recorded but gone is created again",
       [&](World& w) { w.recorded.resources["agent.a"] = Recorded(a, "c1"); }, Action::kCreate,
       "removed outside reconcile"},
      {"exited container is replaced",
       [&](World& w) {
         ObservedInstance i = Running(a, "c1");
         i.state = "exited";
         i.running = false;
         w.observed.instances = {i};
       },
       Action::kReplace, "a is exited"},
      {"env change is a replace",
       [&](World& w) {
         Agent old = MakeAgent("a", "old greeting");
         w.observed.instances = {Running(old, "c1")};
         w.recorded.resources["agent.a"] = Recorded(old, "c1");
       },
       Action::kReplace, "env.GREETING"},
      {"resources change is an in-place update when the provider can",
       [&](World& w) {
         Agent old = a;
         old.resources.memory = "128Mi";
         w.observed.instances = {Running(old, "c1")};
         w.recorded.resources["agent.a"] = Recorded(old, "c1");
         w.schema.updatable_fields = {"resources"};
       },
       Action::kUpdate, "in place"},
      {"replica count mismatch is a replace",
       [&](World& w) {
         w.desired.agents[0].replicas = 2;
         Agent two = a;
         two.replicas = 2;
         ObservedInstance i = Running(two, "c1");
         w.observed.instances = {i};
       },
       Action::kReplace, "1 instance running, 2 wanted"},
      {"tainted (failed health) spec is replaced",
       [&](World& w) {
         w.observed.instances = {Running(a, "c1")};
         w.recorded.resources["agent.a"] = Recorded(a, "c1");
         w.recorded.resources["agent.a"].health = "unhealthy";
       },
       Action::kReplace, "tainted"},
      {"suspended agent is left alone", [&](World& w) { w.desired.agents[0].suspend = true; },
       Action::kNoOp, "suspended"},
  };
  for (const Row& row : rows) {
    SUBCASE(row.name) {
      World w;
      w.desired = MakeDesired({a});
      row.setup(w);
      Plan plan = w.Compute();
      REQUIRE(plan.changes.size() == 1);
      const Change& c = plan.changes[0];
      CHECK(c.action == row.want);
      CHECK(c.reason.find(row.reason_contains) != std::string::npos);
      CHECK(c.address == "agent.a");
      CHECK(c.desired_hash == HashOf(w.desired.agents[0]));
    }
  }
}

TEST_CASE("planner: field-level before and after") {
  Agent old = MakeAgent("a", "old");
  Agent now = MakeAgent("a", "new");
  now.env["EXTRA"] = "1";
  World w;
  w.desired = MakeDesired({now});
  w.observed.instances = {Running(old, "c1")};
  w.recorded.resources["agent.a"] = Recorded(old, "c1");
  Plan plan = w.Compute();
  const Change& c = Find(plan, "agent.a");
  REQUIRE(c.fields.size() == 2);
  const FieldChange* g = FindField(c, "env.GREETING");
  REQUIRE(g != nullptr);
  CHECK(*g->before == "old");
  CHECK(*g->after == "new");
  CHECK(g->forces_replace);
  const FieldChange* e = FindField(c, "env.EXTRA");
  REQUIRE(e != nullptr);
  CHECK_FALSE(e->before.has_value());
  CHECK(*e->after == "1");
  REQUIRE(c.prior.size() == 1);
  CHECK(c.prior[0].id == "c1");
}

TEST_CASE("planner: unknown recorded spec falls back to the spec hash") {
  Agent old = MakeAgent("a", "old");
  World w;
  w.desired = MakeDesired({MakeAgent("a", "new")});
  w.observed.instances = {Running(old, "c1")};  // no state entry
  Plan plan = w.Compute();
  const Change& c = Find(plan, "agent.a");
  CHECK(c.action == Action::kReplace);
  REQUIRE(c.fields.size() == 1);
  CHECK(c.fields[0].path == "specHash");
}

TEST_CASE("planner: pruning only touches the recorded inventory") {
  Agent gone = MakeAgent("gone");
  Agent stranger = MakeAgent("stranger");
  World w;
  w.desired = MakeDesired({MakeAgent("keep")});
  w.observed.instances = {Running(gone, "c-gone"), Running(stranger, "c-stranger")};
  w.recorded.resources["agent.gone"] = Recorded(gone, "c-gone");
  w.recorded.resources["agent.ghost"] = Recorded(MakeAgent("ghost"), "c-ghost");
  Plan plan = w.Compute();
  REQUIRE(plan.changes.size() == 3);
  CHECK(plan.changes[0].address == "agent.ghost");
  CHECK(plan.changes[0].action == Action::kDelete);
  CHECK(plan.changes[0].prior.empty());
  CHECK(plan.changes[0].reason.find("already gone") != std::string::npos);
  CHECK(plan.changes[1].address == "agent.gone");
  CHECK(plan.changes[1].action == Action::kDelete);
  REQUIRE(plan.changes[1].prior.size() == 1);
  CHECK(plan.changes[1].prior[0].id == "c-gone");
  CHECK(plan.changes[2].address == "agent.keep");
  CHECK(plan.changes[2].action == Action::kCreate);
}

TEST_CASE("planner: deterministic, sorted, dependencies as addresses") {
  Agent b = MakeAgent("b");
  Agent a = MakeAgent("a");
  a.depends_on = {"c", "b"};
  Agent c = MakeAgent("c");
  World w;
  w.desired = MakeDesired({b, a, c});
  Plan p1 = w.Compute();
  Plan p2 = w.Compute();
  CHECK(p1 == p2);
  CHECK(ToJson(p1).dump() == ToJson(p2).dump());
  REQUIRE(p1.changes.size() == 3);
  CHECK(p1.changes[0].address == "agent.a");
  CHECK(p1.changes[0].depends_on == std::vector<std::string>{"agent.b", "agent.c"});
  CHECK(p1.changes[1].address == "agent.b");
  CHECK(p1.changes[2].address == "agent.c");
}

TEST_CASE("planner: observed digest changes when the world changes") {
  Agent a = MakeAgent("a");
  std::map<std::string, ObserveResponse> o1, o2;
  o1["local"].instances = {Running(a, "c1")};
  o2["local"].instances = {Running(a, "c2")};
  CHECK(ObservedDigest(o1) == ObservedDigest(o1));
  CHECK(ObservedDigest(o1) != ObservedDigest(o2));
  // Only the agents a plan is about count: another tree's container that
  // comes or goes on the same engine does not make a saved plan stale.
  const std::set<std::pair<std::string, std::string>> only_a = {{"local", "a"}};
  std::map<std::string, ObserveResponse> o3 = o1;
  o3["local"].instances.push_back(Running(MakeAgent("other-tree"), "c9"));
  CHECK(ObservedDigest(o3) != ObservedDigest(o1));
  CHECK(ObservedDigest(o3, only_a) == ObservedDigest(o1, only_a));
  CHECK(ObservedDigest(o2, only_a) != ObservedDigest(o1, only_a));
}

TEST_CASE("planner: a plan's observed digest covers its own agents and recorded resources") {
  World w;
  Agent a = MakeAgent("a");
  Agent gone = MakeAgent("gone");  // recorded, removed from the tree: its delete is planned
  w.desired = MakeDesired({a});
  w.recorded.resources["agent.gone"] = Recorded(gone, "g1");
  w.observed.instances = {Running(a, "c1"), Running(gone, "g1"),
                          Running(MakeAgent("other-tree"), "o1")};
  const Plan plan = w.Compute();
  std::map<std::string, ObserveResponse> observed = {{"local", w.observed}};
  const std::set<std::pair<std::string, std::string>> relevant = {{"local", "a"},
                                                                  {"local", "gone"}};
  CHECK(plan.observed_digest == ObservedDigest(observed, relevant));
  CHECK(plan.observed_digest != ObservedDigest(observed));

  World other = w;  // another tree's container changes: the plan is not stale
  other.observed.instances[2].state = "exited";
  CHECK(other.Compute().observed_digest == plan.observed_digest);
  World moved = w;  // the recorded agent's container changes: it is
  moved.observed.instances[1].state = "exited";
  CHECK(moved.Compute().observed_digest != plan.observed_digest);
}

TEST_CASE("planner: an agent's spec is computed once and an edited copy gets its own") {
  World w;
  Agent a = MakeAgent("a");
  w.desired = MakeDesired({a});
  w.observed.instances = {Running(a, "c1")};
  w.recorded.resources["agent.a"] = Recorded(a, "c1");
  Plan first = w.Compute();
  Plan again = w.Compute();
  REQUIRE(first.changes.size() == 1);
  CHECK(first.changes[0].action == Action::kNoOp);
  CHECK(first.changes[0].desired_hash == again.changes[0].desired_hash);
  CHECK(first.changes[0].desired == again.changes[0].desired);
  CHECK(first.changes[0].desired_hash == SpecHash(first.changes[0].desired));
  CHECK(first.changes[0].desired.get() == NormalizedSpec(a, a.image));

  // An edited copy of a planned agent is planned from what it says now.
  Agent edited = w.desired.agents[0];
  edited.env["ADDED"] = "yes";
  w.desired.agents[0] = std::move(edited);
  Plan after = w.Compute();
  REQUIRE(after.changes.size() == 1);
  CHECK(after.changes[0].action != Action::kNoOp);
  CHECK(after.changes[0].desired["env"]["ADDED"] == "yes");
  CHECK(after.changes[0].desired_hash != first.changes[0].desired_hash);
  CHECK(first.changes[0].desired["env"].count("ADDED") == 0);  // the first plan kept its own
}

TEST_CASE("planner: agents loaded again from the same decoded file share their spec") {
  TreeFile file{"agents/a.yaml",
                "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: a}\n"
                "spec: {image: 'nginx:1.27', port: 80, target: local}\n---\n"
                "apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: local}\n"
                "spec: {provider: docker}\n",
                0};
  const DecodedFile decoded = DecodeOne(file);
  INFO(testing::All(decoded.diagnostics));
  REQUIRE_FALSE(decoded.diagnostics.HasErrors());
  FolderSet tree;
  tree.AddFolder("agents");
  auto plan_of = [&](const LoadResult& loaded) {
    PlanInput in;
    in.desired = &loaded.state;
    return ComputePlan(in);
  };
  LoadResult one = Assemble({&decoded}, tree);
  LoadResult two = Assemble({&decoded}, tree);
  INFO(testing::All(one.diagnostics));
  REQUIRE_FALSE(one.diagnostics.HasErrors());
  Plan p1 = plan_of(one);
  Plan p2 = plan_of(two);
  REQUIRE(p1.changes.size() == 1);
  CHECK(p1.changes[0].action == Action::kCreate);
  CHECK(one.state.agents[0].spec_memo.SharedWith(decoded.state.agents[0].spec_memo));
  CHECK(two.state.agents[0].spec_memo.SharedWith(decoded.state.agents[0].spec_memo));
  const Agent copy = one.state.agents[0];  // a copy may be edited: its own memo
  CHECK_FALSE(copy.spec_memo.SharedWith(decoded.state.agents[0].spec_memo));
  CHECK(p1.changes[0].desired == p2.changes[0].desired);
  CHECK(p1.changes[0].desired_hash == p2.changes[0].desired_hash);
  CHECK(p1.changes[0].desired["image"] == "nginx:1.27");
}

}  // namespace
}  // namespace reconcile
