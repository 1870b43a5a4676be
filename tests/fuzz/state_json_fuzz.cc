// The state file and its history (state.h), as read back from the state
// folder: arbitrary JSON is a State or an error value; a State that parses
// round-trips through ToJson.
#include <string>

#include <nlohmann/json.hpp>

#include "fuzz_util.h"
#include "reconcile/state.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace reconcile;
  nlohmann::json j = nlohmann::json::parse(fuzz::Bytes(data, size), nullptr, false);
  if (j.is_discarded()) return 0;
  if (auto state = StateFromJson(j); state.ok()) {
    auto again = StateFromJson(ToJson(*state));
    fuzz::Check(again.ok(), "a state's own JSON does not parse");
    fuzz::Check(ToJson(*again) == ToJson(*state), "a state does not round-trip");
  }
  if (auto history = HistoryFromJson(j); history.ok()) {
    auto again = HistoryFromJson(ToJson(*history));
    fuzz::Check(again.ok(), "a history's own JSON does not parse");
    fuzz::Check(ToJson(*again) == ToJson(*history), "a history does not round-trip");
  }
  return 0;
}
