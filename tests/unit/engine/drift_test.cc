#include "reconcile/drift.h"

#include <doctest/doctest.h>

#include "unit/engine/test_world.h"

namespace reconcile {
namespace {

using testing::MakeAgent;
using testing::Recorded;
using testing::Running;

TEST_CASE("drift: each kind") {
  Agent a = MakeAgent("a");
  State recorded;
  recorded.resources["agent.a"] = Recorded(a, "c1");
  std::map<std::string, ObserveResponse> observed;
  struct Row {
    const char* name;
    std::function<void(std::vector<ObservedInstance>&)> setup;
    std::vector<std::string> kinds;
  };
  std::vector<Row> rows = {
      {"none", [&](auto& v) { v = {Running(a, "c1")}; }, {}},
      {"missing", [](auto& v) { v.clear(); }, {"missing"}},
      {"stopped",
       [&](auto& v) {
         v = {Running(a, "c1")};
         v[0].running = false;
         v[0].state = "exited";
       },
       {"stopped"}},
      {"modified",
       [&](auto& v) {
         v = {Running(a, "c1")};
         v[0].spec_hash = "sha256:other";
       },
       {"modified"}},
      {"scaled",
       [&](auto& v) {
         v = {Running(a, "c1"), Running(a, "c2")};
       },
       {"scaled"}},
      {"another state's agent is not drift",
       [&](auto& v) {
         v = {Running(a, "c1"), Running(MakeAgent("x"), "c9")};
       },
       {}},
  };
  for (const Row& row : rows) {
    SUBCASE(row.name) {
      row.setup(observed["local"].instances);
      std::vector<DriftItem> items = ComputeDrift(recorded, observed);
      std::vector<std::string> kinds;
      for (const DriftItem& i : items) kinds.push_back(DriftKindName(i.kind));
      CHECK(kinds == row.kinds);
      CHECK(ToJson(items).size() == row.kinds.size());
    }
  }
}

TEST_CASE("drift: targets that were not observed are not judged") {
  State recorded;
  recorded.resources["agent.a"] = Recorded(MakeAgent("a"), "c1");
  CHECK(ComputeDrift(recorded, {}).empty());
}

}  // namespace
}  // namespace reconcile
