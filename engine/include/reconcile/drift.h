// Drift: differences between what the last apply recorded and what runs now.
// A pure function of (recorded state, observation), like the planner.
// Thread-safe.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reconcile/observation.h"
#include "reconcile/state.h"

namespace reconcile {

struct DriftItem {
  enum class Kind { kMissing, kStopped, kModified, kScaled };
  std::string address;
  Kind kind = Kind::kMissing;
  std::string detail;  // for people
  friend bool operator==(const DriftItem&, const DriftItem&) = default;
};

const char* DriftKindName(DriftItem::Kind kind);  // "missing", "stopped", ...

// Items sorted by address. Only what the state records is judged: objects
// with our labels that this state does not record belong to another state
// (another tree or engine) and are not drift. Targets absent from `observed`
// are not judged.
std::vector<DriftItem> ComputeDrift(const State& recorded,
                                    const std::map<std::string, ObserveResponse>& observed);

nlohmann::json ToJson(const std::vector<DriftItem>& items);

}  // namespace reconcile
