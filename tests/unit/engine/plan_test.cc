#include "reconcile/plan.h"

#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>

#include "reconcile/plan_format.h"
#include "reconcile/planner.h"
#include "reconcile/saved_plan.h"
#include "unit/engine/test_world.h"

namespace reconcile {
namespace {

using nlohmann::json;
using testing::MakeAgent;
using testing::MakeDesired;
using testing::Recorded;
using testing::Running;

// A plan with one change of every kind.
Plan SamplePlan() {
  Agent created = MakeAgent("api");
  Agent old = MakeAgent("web", "old");
  Agent now = MakeAgent("web", "new");
  Agent same = MakeAgent("same");
  Agent gone = MakeAgent("worker");
  Agent mem_old = MakeAgent("cache");
  mem_old.resources.memory = "128Mi";
  Agent mem_new = MakeAgent("cache");
  mem_new.resources.memory = "256Mi";
  DesiredState desired = MakeDesired({created, mem_new, same, now});
  State recorded;
  for (const Agent& a : {old, same, gone, mem_old}) {
    recorded.resources["agent." + a.name] = Recorded(a, "c-" + a.name);
  }
  PlanInput in;
  in.desired = &desired;
  in.recorded = &recorded;
  in.observed["local"].instances = {Running(old, "c-web"), Running(same, "c-same"),
                                    Running(gone, "c-worker"), Running(mem_old, "c-cache")};
  in.schemas["docker"].updatable_fields = {"resources"};
  return ComputePlan(in);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST_CASE("plan: JSON round trip") {
  Plan plan = SamplePlan();
  REQUIRE(plan.changes.size() == 5);
  Result<Plan> back = PlanFromJson(json::parse(ToJson(plan).dump()));
  REQUIRE(back.ok());
  CHECK(*back == plan);
  CHECK(ToJson(*back).dump() == ToJson(plan).dump());
}

TEST_CASE("plan: malformed JSON is rejected with the field named") {
  json good = ToJson(SamplePlan());
  struct Row {
    const char* name;
    std::function<void(json&)> mutate;
    const char* message;
  };
  std::vector<Row> rows = {
      {"not an object", [](json& j) { j = json::array(); }, "expected a JSON object"},
      {"future version", [](json& j) { j["formatVersion"] = 99; }, "formatVersion 99"},
      {"missing revision", [](json& j) { j.erase("revision"); }, "plan.revision: missing"},
      {"changes not an array", [](json& j) { j["changes"] = "x"; }, "plan.changes"},
      {"unknown action", [](json& j) { j["changes"][0]["action"] = "explode"; },
       "unknown action 'explode'"},
      {"wrong type", [](json& j) { j["changes"][0]["name"] = 5; },
       "plan.changes[0].name: wrong type"},
      {"unsorted", [](json& j) { std::swap(j["changes"][0], j["changes"][1]); },
       "sorted and unique"},
      {"bad desired", [](json& j) { j["changes"][0]["desired"] = 3; }, "desired"},
      {"bad prior",
       [](json& j) {
         j["changes"][0]["prior"] = {{{"id", 1}}};
       },
       "prior[0].id"},
  };
  for (const Row& row : rows) {
    SUBCASE(row.name) {
      json j = good;
      row.mutate(j);
      Result<Plan> r = PlanFromJson(j);
      REQUIRE_FALSE(r.ok());
      CHECK(r.status().code() == Code::kInvalid);
      CHECK(r.status().message().find(row.message) != std::string::npos);
    }
  }
}

TEST_CASE("plan: text output matches the golden file") {
  Plan plan = SamplePlan();
  std::string text = FormatPlan(plan);
  const std::string golden = std::string(RECONCILE_SOURCE_DIR) + "/tests/testdata/plans/sample.txt";
  if (std::getenv("UPDATE_GOLDEN") != nullptr) {
    std::ofstream(golden) << text;
  }
  CHECK(text == ReadFile(golden));
  CHECK(PlanSummary(plan) == "Plan: 1 to add, 1 to change, 1 to replace, 1 to destroy.");
}

TEST_CASE("plan: no changes says so") {
  Agent a = MakeAgent("a");
  DesiredState desired = MakeDesired({a});
  State recorded;
  PlanInput in;
  in.desired = &desired;
  in.recorded = &recorded;
  in.observed["local"].instances = {Running(a, "c1")};
  Plan plan = ComputePlan(in);
  CHECK_FALSE(plan.HasChanges());
  CHECK(FormatPlan(plan).rfind("No changes.", 0) == 0);
  CHECK(FormatPlan(plan, {.color = true}).find("\033[") != std::string::npos);
}

TEST_CASE("saved plan: round trip, golden file, and every bad file refused by name") {
  SavedPlan saved{"/srv/deploy", "/srv/deploy/.reconcile", SamplePlan()};
  const std::string text = SavedPlanText(saved);
  Result<SavedPlan> back = ParseSavedPlan("p.json", text);
  REQUIRE_MESSAGE(back.ok(), back.status().message());
  CHECK(*back == saved);
  CHECK(SavedPlanText(*back) == text);
  // The golden file is also validated by ajv against schemas/plan.schema.json
  // (schema_crosscheck_test.sh).
  const std::string golden =
      std::string(RECONCILE_SOURCE_DIR) + "/tests/testdata/plans/saved_plan.json";
  if (std::getenv("UPDATE_GOLDEN") != nullptr) std::ofstream(golden) << text;
  CHECK(text == ReadFile(golden));
  struct Row {
    const char* name;
    std::string text;
    const char* want;
  };
  json j = json::parse(text);
  auto with = [&j](const std::function<void(json&)>& edit) {
    json c = j;
    edit(c);
    return c.dump();
  };
  const Row rows[] = {
      {"a file of YAML", "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\n",
       "is a file of YAML (manifests), not a saved plan"},
      {"not JSON", "\x01\x02", "is not a saved plan (not JSON)"},
      {"another JSON file", R"({"a":1})", "no \"reconcileSavedPlan\" field"},
      {"an array", "[1]", "not a saved plan"},
      {"version 2", with([](json& c) { c["reconcileSavedPlan"] = 2; }), "unsupported version 2"},
      {"unknown field", with([](json& c) { c["stateDirOverride"] = "/"; }),
       "stateDirOverride: unknown field"},
      {"source not a string", with([](json& c) { c["source"] = 1; }), "source: missing"},
      {"empty stateDir", with([](json& c) { c["stateDir"] = ""; }), "stateDir: missing, empty"},
      {"no plan", with([](json& c) { c.erase("plan"); }), "plan: missing"},
      {"bad change", with([](json& c) { c["plan"]["changes"][0].erase("action"); }),
       "plan.changes[0].action"},
  };
  for (const Row& row : rows) {
    SUBCASE(row.name) {
      Result<SavedPlan> r = ParseSavedPlan("plan.json", row.text);
      REQUIRE_FALSE(r.ok());
      CHECK(r.status().code() == Code::kInvalid);
      CHECK_MESSAGE(r.status().message().find("plan.json") != std::string::npos,
                    r.status().message());
      CHECK_MESSAGE(r.status().message().find(row.want) != std::string::npos, r.status().message());
    }
  }
}

}  // namespace
}  // namespace reconcile
