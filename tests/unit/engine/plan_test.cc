#include "reconcile/plan.h"

#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include "reconcile/plan_format.h"
#include "reconcile/planner.h"
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

}  // namespace
}  // namespace reconcile
