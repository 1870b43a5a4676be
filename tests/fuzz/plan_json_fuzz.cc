// Saved plans (`reconcile apply PLAN`, saved_plan.h) and plan JSON
// (plan.h): a file of arbitrary bytes parses or is refused with a value;
// a plan that parses round-trips through its JSON unchanged.
#include <string>

#include <nlohmann/json.hpp>

#include "fuzz_util.h"
#include "reconcile/plan.h"
#include "reconcile/saved_plan.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace reconcile;
  const std::string text(fuzz::Bytes(data, size));
  auto saved = ParseSavedPlan("fuzz.plan.json", text);
  if (saved.ok()) {
    auto again = ParseSavedPlan("fuzz.plan.json", SavedPlanText(*saved));
    fuzz::Check(again.ok(), "a saved plan's own text does not parse");
    fuzz::Check(*again == *saved, "a saved plan does not round-trip");
  }
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  auto plan = PlanFromJson(j);
  if (plan.ok()) {
    auto again = PlanFromJson(ToJson(*plan));
    fuzz::Check(again.ok(), "a plan's own JSON does not parse");
    fuzz::Check(ToJson(*again) == ToJson(*plan), "a plan does not round-trip");
  }
  return 0;
}
