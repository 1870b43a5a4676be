// Provider interface v2 (provider.h) as the engine uses it: the planner asks
// a Target's PlanChange which fields force a replacement, one instance may
// serve all replicas, the loader hands a provider its block and turns the
// provider's diagnostics into file:line:column errors, and the value checks
// providers share (config_checks.h) say what the loader says.
#include <doctest/doctest.h>

#include "reconcile/config_checks.h"
#include "reconcile/loader.h"
#include "reconcile/planner.h"
#include "reconcile/provider.h"
#include "reconcile/spec.h"
#include "unit/engine/test_world.h"

namespace reconcile {
namespace {

using nlohmann::json;
using testing::MakeAgent;
using testing::MakeDesired;
using testing::Recorded;
using testing::Running;

std::string All(const Diagnostics& diags) {
  std::string s;
  for (const auto& d : diags.items()) s += d.ToString() + "\n";
  return s;
}

TEST_CASE("provider v2: PlanChangeFromSchema replaces what is not updatable") {
  ProviderSchema schema;
  schema.updatable_fields = {"env", "resources"};
  PlanChangeRequest r;
  r.changed = {"env.A", "image", "resources.memory", "ports.80/tcp.hostPort"};
  PlanChangeResponse p = PlanChangeFromSchema(schema, r);
  CHECK(p.requires_replace == std::set<std::string>{"image", "ports.80/tcp.hostPort"});
  CHECK(p.diagnostics.empty());
}

TEST_CASE("provider v2: the planner asks the Target's PlanChange, per field") {
  Agent old = MakeAgent("a", "old greeting");
  Agent now = MakeAgent("a", "new greeting");
  now.resources.memory = "512Mi";
  DesiredState desired = MakeDesired({now});
  State recorded;
  recorded.resources["agent.a"] = Recorded(old, "c1");
  PlanInput in;
  in.desired = &desired;
  in.recorded = &recorded;
  in.observed["local"].instances = {Running(old, "c1")};
  in.schemas["docker"] = ProviderSchema{};  // alone: every change replaces

  std::vector<PlanChangeRequest> asked;
  SUBCASE("everything in place: an update, with the provider's note in the reason") {
    in.plan_change["local"] = [&](const PlanChangeRequest& r) {
      asked.push_back(r);
      PlanChangeResponse p;
      p.diagnostics.push_back({Severity::kWarning, "resources.memory", "a new revision"});
      return p;
    };
    Plan plan = ComputePlan(in);
    REQUIRE(plan.changes.size() == 1);
    const Change& c = plan.changes[0];
    CHECK(c.action == Action::kUpdate);
    CHECK(c.reason == "changed fields are updated in place; resources.memory: a new revision");
    for (const FieldChange& f : c.fields) CHECK_FALSE(f.forces_replace);
    REQUIRE(asked.size() == 1);
    CHECK(asked[0].agent == "a");
    CHECK(asked[0].changed == std::vector<std::string>{"env.GREETING", "resources.memory"});
    CHECK(asked[0].prior["env"]["GREETING"] == "old greeting");
    CHECK(asked[0].desired["env"]["GREETING"] == "new greeting");
  }
  SUBCASE("one field forces a replacement: the reason names it") {
    in.plan_change["local"] = [](const PlanChangeRequest&) {
      PlanChangeResponse p;
      p.requires_replace = {"resources.memory"};
      return p;
    };
    Plan plan = ComputePlan(in);
    const Change& c = plan.changes[0];
    CHECK(c.action == Action::kReplace);
    CHECK(c.reason.find("cannot be updated in place: resources.memory") != std::string::npos);
  }
  SUBCASE("another Target's PlanChange is not asked") {
    in.plan_change["elsewhere"] = [&](const PlanChangeRequest& r) {
      asked.push_back(r);
      return PlanChangeResponse{};
    };
    Plan plan = ComputePlan(in);
    CHECK(plan.changes[0].action == Action::kReplace);  // the schema's answer
    CHECK(asked.empty());
  }
  SUBCASE("an unchanged agent is not asked") {
    recorded.resources["agent.a"] = Recorded(now, "c1");
    in.observed["local"].instances = {Running(now, "c1")};
    in.plan_change["local"] = [&](const PlanChangeRequest& r) {
      asked.push_back(r);
      return PlanChangeResponse{};
    };
    CHECK(ComputePlan(in).changes[0].action == Action::kNoOp);
    CHECK(asked.empty());
  }
}

TEST_CASE("provider v2: one instance serving all replicas (a cloud service)") {
  Agent a = MakeAgent("a");
  a.replicas = 3;
  DesiredState desired = MakeDesired({a});
  State recorded;
  recorded.resources["agent.a"] = Recorded(a, "svc");
  PlanInput in;
  in.desired = &desired;
  in.recorded = &recorded;
  in.observed["local"].instances = {Running(a, "svc")};
  SUBCASE("instance_per_replica false: one instance is up to date") {
    in.schemas["docker"].instance_per_replica = false;
    CHECK(ComputePlan(in).changes[0].action == Action::kNoOp);
    in.observed["local"].instances.push_back(Running(a, "svc2"));
    Plan two = ComputePlan(in);
    CHECK(two.changes[0].action == Action::kReplace);
    CHECK(two.changes[0].reason.find("2 instances running, 1 wanted") != std::string::npos);
  }
  SUBCASE("instance_per_replica true (Docker): three are wanted") {
    Plan plan = ComputePlan(in);
    CHECK(plan.changes[0].action == Action::kReplace);
    CHECK(plan.changes[0].reason.find("1 instance running, 3 wanted") != std::string::npos);
  }
}

// A provider "toy" whose checks are recorded, for the loader's side.
struct Toy {
  std::vector<ValidateTargetRequest> targets;
  std::vector<ValidateAgentRequest> agents;
  ProviderRegistry registry;
  bool spec_as_json = true;

  Toy() {
    ProviderDefinition d;
    d.validate_target = [this](const ValidateTargetRequest& r) {
      targets.push_back(r);
      ValidateTargetResponse out;
      checks::ConfigChecker block(r.config, "spec.toy", out.diagnostics);
      block.Known({"zone", "size", "nested", "list"});
      block.Require("zone");
      block.Int("size", 1, 9);
      if (block.Get("nested")) {
        block.Child("nested").Checked("url", checks::IsHttpUrl, "an http:// or https:// URL");
      }
      if (block.Get("list"))
        out.diagnostics.push_back({Severity::kError, "spec.toy.list[1]", "no"});
      return out;
    };
    d.validate_agent = [this](const ValidateAgentRequest& r) {
      agents.push_back(r);
      ValidateAgentResponse out;
      if (r.model && r.model->replicas > 1) {
        out.diagnostics.push_back({Severity::kError, "spec.replicas", "toy runs one"});
      }
      if (r.spec.is_object() && r.spec.contains("healthCheck")) {
        out.diagnostics.push_back({Severity::kError, "spec.healthCheck.path", "toy has none"});
      }
      return out;
    };
    d.create = [](const Target&) -> Result<std::unique_ptr<Provider>> {
      return Status::Unavailable("not in this test");
    };
    registry.Register("toy", d);
    registry.Register("other",
                      ProviderFactory([](const Target&) -> Result<std::unique_ptr<Provider>> {
                        return Status::Unavailable("not in this test");
                      }));
  }
  LoadResult Load(const std::string& yaml) {
    LoadLimits limits;
    limits.providers = &registry;
    return LoadFiles({{"m.yaml", yaml}}, FolderSet{}, limits);
  }
};

constexpr const char* kToyTarget =
    "apiVersion: reconcile.dev/v1alpha1\n"  // 1
    "kind: Target\n"                        // 2
    "metadata: {name: t}\n"                 // 3
    "spec:\n"                               // 4
    "  provider: toy\n";                    // 5

TEST_CASE("provider v2: the loader gives a provider its block and locates what it says") {
  Toy toy;
  SUBCASE("the block reaches the provider as JSON with YAML's types") {
    LoadResult r = toy.Load(std::string(kToyTarget) +
                            "  toy: {zone: \"9\", size: 3, nested: {url: \"https://x\"}, "
                            "list: [1, 2.5, true, null, text]}\n");
    CHECK(All(r.diagnostics) == "m.yaml:6:67: error: spec.toy.list[1]: no\n");
    REQUIRE(toy.targets.size() == 1);
    CHECK(toy.targets[0].target == "t");
    CHECK(toy.targets[0].config == json::parse(R"({"zone": "9", "size": 3,
        "nested": {"url": "https://x"}, "list": [1, 2.5, true, null, "text"]})"));
  }
  SUBCASE("a value error points at the value; an unknown field at its key") {
    LoadResult r = toy.Load(std::string(kToyTarget) +
                            "  toy:\n"              // 6
                            "    zone: a\n"         // 7
                            "    size: 12\n"        // 8
                            "    nested:\n"         // 9
                            "      url: ftp://x\n"  // 10
                            "    sise: 1\n");       // 11
    std::string all = All(r.diagnostics);
    CHECK(all.find("m.yaml:8:11: error: spec.toy.size: must be between 1 and 9, got 12\n") !=
          std::string::npos);
    CHECK(all.find("m.yaml:10:12: error: spec.toy.nested.url: invalid value 'ftp://x': must be "
                   "an http:// or https:// URL\n") != std::string::npos);
    CHECK(all.find("m.yaml:11:5: error: spec.toy.sise: unknown field 'sise' (did you mean "
                   "'size'?)\n") != std::string::npos);
    CHECK(r.diagnostics.size() == 3);
  }
  SUBCASE("a missing field points at its closest written parent") {
    LoadResult r = toy.Load(std::string(kToyTarget) + "  toy: {size: 2}\n");
    CHECK(All(r.diagnostics) == "m.yaml:6:8: error: spec.toy.zone: required field is missing\n");
    r = toy.Load(std::string(kToyTarget));
    CHECK(All(r.diagnostics) == "m.yaml:5:3: error: spec.toy.zone: required field is missing\n");
  }
  SUBCASE("a provider without checks takes its block as written") {
    LoadResult r = toy.Load(
        "apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: o}\n"
        "spec: {provider: other, other: {anything: [1]}}\n");
    REQUIRE_MESSAGE(!r.diagnostics.HasErrors(), All(r.diagnostics));
    CHECK(r.state.targets[0].settings == json{{"anything", {1}}});
  }
  SUBCASE("an unknown provider names the ones available and the plugin path") {
    LoadResult r = toy.Load(
        "apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: o}\n"
        "spec: {provider: nope, nope: {}}\n");
    CHECK(All(r.diagnostics) ==
          "m.yaml:4:18: error: spec.provider: unknown provider 'nope' (available: other, toy); "
          "a provider outside the binary is an executable reconcile-provider-nope on "
          "RECONCILE_PLUGIN_PATH (docs/plugin-protocol.md)\n");
    CHECK(toy.targets.empty());
  }
  SUBCASE("another provider's block is refused by name") {
    LoadResult r = toy.Load(std::string(kToyTarget) + "  toy: {zone: a}\n  other: {}\n");
    CHECK(All(r.diagnostics) ==
          "m.yaml:7:3: error: spec.other: a other block is not allowed with provider toy\n");
  }
}

TEST_CASE("provider v2: agents are checked by their Target's provider") {
  Toy toy;
  const std::string agent =
      "apiVersion: reconcile.dev/v1alpha1\n"  // 1
      "kind: Agent\n"                         // 2
      "metadata: {name: a}\n"                 // 3
      "spec:\n"                               // 4
      "  image: nginx\n"                      // 5
      "  target: t\n"                         // 6
      "  replicas: 2\n"                       // 7
      "  healthCheck: {path: /h}\n"           // 8
      "---\n";
  LoadResult r = toy.Load(agent + kToyTarget + "  toy: {zone: a}\n");
  std::string all = All(r.diagnostics);
  CHECK_MESSAGE(all.find("error: spec.replicas: toy runs one") != std::string::npos, all);
  CHECK_MESSAGE(
      all.find("m.yaml:1:1: error: spec.healthCheck.path: toy has none") != std::string::npos, all);
  REQUIRE(toy.agents.size() == 1);
  CHECK(toy.agents[0].agent == "a");
  CHECK(toy.agents[0].target == "t");
  CHECK(toy.agents[0].target_config == json{{"zone", "a"}});
  CHECK(toy.agents[0].spec["healthCheck"]["path"] == "/h");
  CHECK(toy.agents[0].model != nullptr);
}

TEST_CASE("provider v2: a provider's block schema comes from schemas/target.schema.json") {
  json docker = checks::TargetBlockSchema("docker");
  REQUIRE(docker.is_object());
  CHECK(docker["type"] == "object");
  CHECK(docker["properties"].contains("host"));
  CHECK(docker["properties"]["tls"]["properties"].contains("caFile"));
  CHECK(checks::TargetBlockSchema("nosuch").is_null());
}

TEST_CASE("provider v2: config checks say what the loader says") {
  std::vector<ProviderDiagnostic> out;
  json block = {{"name", 5}, {"url", "ftp://x"}, {"n", 1.5}, {"on", "yes"}, {"cpu", -1}, {"zz", 1}};
  checks::ConfigChecker c(block, "spec.x", out);
  c.Known({"name", "url", "n", "on", "cpu", "need"});
  c.Require("need");
  CHECK_FALSE(c.String("name"));
  CHECK_FALSE(c.Checked("url", checks::IsHttpUrl, "an http:// or https:// URL"));
  CHECK_FALSE(c.Int("n", 0, 10));
  CHECK_FALSE(c.Bool("on"));
  CHECK_FALSE(c.StringOrNumber("cpu"));
  std::vector<std::string> got;
  for (const ProviderDiagnostic& d : out) got.push_back(d.field + ": " + d.message);
  CHECK(got == std::vector<std::string>{
                   "spec.x.zz: unknown field 'zz'",
                   "spec.x.need: required field is missing",
                   "spec.x.name: must be a string, got an integer",
                   "spec.x.url: invalid value 'ftp://x': must be an http:// or https:// URL",
                   "spec.x.n: must be an integer, got a number",
                   "spec.x.on: must be a boolean (true or false), got a string",
                   "spec.x.cpu: must be a positive number",
               });
  out.clear();
  checks::ConfigChecker not_map(json::array(), "spec.y", out);
  CHECK_FALSE(not_map.ok());
  not_map.Require("a");
  REQUIRE(out.size() == 1);
  CHECK(out[0].message == "must be a map, got a list");
}

}  // namespace
}  // namespace reconcile
