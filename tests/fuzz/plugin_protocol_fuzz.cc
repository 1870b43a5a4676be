// The plugin protocol (docs/plugin-protocol.md): what a provider plugin
// writes back is outside input. Each answer the engine decodes (schema,
// observe, apply, validate, plan, status) parses or is an error value; a
// decoded answer round-trips through its own JSON.
#include <string>

#include <nlohmann/json.hpp>

#include "fuzz_util.h"
#include "reconcile/provider_json.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace reconcile;
  nlohmann::json j = nlohmann::json::parse(fuzz::Bytes(data, size), nullptr, false);
  if (j.is_discarded()) return 0;
  if (auto r = ProviderSchemaFromJson(j); r.ok()) {
    fuzz::Check(ProviderSchemaFromJson(ToJson(*r)).ok(), "a schema does not round-trip");
  }
  if (auto r = ObserveResponseFromJson(j); r.ok()) {
    auto again = ObserveResponseFromJson(ToJson(*r));
    fuzz::Check(again.ok() && ToJson(*again) == ToJson(*r),
                "an observe answer does not round-trip");
  }
  if (auto r = ApplyChangeResponseFromJson(j); r.ok()) {
    fuzz::Check(ApplyChangeResponseFromJson(ToJson(*r)).ok(),
                "an apply answer does not round-trip");
  }
  if (auto r = ValidateTargetResponseFromJson(j); r.ok()) {
    fuzz::Check(ValidateTargetResponseFromJson(ToJson(*r)).ok(),
                "a validate answer does not round-trip");
  }
  if (auto r = ValidateAgentResponseFromJson(j); r.ok()) {
    fuzz::Check(ValidateAgentResponseFromJson(ToJson(*r)).ok(),
                "a validate answer does not round-trip");
  }
  if (auto r = PlanChangeResponseFromJson(j); r.ok()) {
    fuzz::Check(PlanChangeResponseFromJson(ToJson(*r)).ok(), "a plan answer does not round-trip");
  }
  Status decoded;
  (void)StatusFromJson(j, decoded);
  return 0;
}
