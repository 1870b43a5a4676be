#include "reconcile/drift.h"

#include <algorithm>
#include <utility>

namespace reconcile {

const char* DriftKindName(DriftItem::Kind kind) {
  switch (kind) {
    case DriftItem::Kind::kMissing:
      return "missing";
    case DriftItem::Kind::kStopped:
      return "stopped";
    case DriftItem::Kind::kModified:
      return "modified";
    case DriftItem::Kind::kScaled:
      return "scaled";
  }
  return "unknown";
}

std::vector<DriftItem> ComputeDrift(const State& recorded,
                                    const std::map<std::string, ObserveResponse>& observed) {
  std::vector<DriftItem> items;
  // (target, agent) -> instances, built once: linear in resources + instances.
  std::map<std::pair<std::string, std::string>, std::vector<const ObservedInstance*>> index;
  for (const auto& [target, response] : observed) {
    for (const ObservedInstance& i : response.instances) index[{target, i.agent}].push_back(&i);
  }
  for (const auto& [address, rs] : recorded.resources) {
    if (observed.find(rs.target) == observed.end()) continue;
    std::vector<const ObservedInstance*> instances;
    if (auto it = index.find({rs.target, rs.name}); it != index.end()) instances = it->second;
    if (instances.empty()) {
      items.push_back({address, DriftItem::Kind::kMissing,
                       "nothing runs on target '" + rs.target + "' (removed outside reconcile)"});
      continue;
    }
    for (const ObservedInstance* i : instances) {
      if (!i->running) {
        items.push_back({address, DriftItem::Kind::kStopped, i->name + " is " + i->state});
        break;
      }
    }
    for (const ObservedInstance* i : instances) {
      if (i->spec_hash != rs.spec_hash) {
        items.push_back(
            {address, DriftItem::Kind::kModified,
             i->name + " runs spec " + i->spec_hash + ", state records " + rs.spec_hash});
        break;
      }
    }
    if (!rs.instances.empty() && instances.size() != rs.instances.size()) {
      items.push_back({address, DriftItem::Kind::kScaled,
                       std::to_string(instances.size()) + " instance(s) run, " +
                           std::to_string(rs.instances.size()) + " recorded"});
    }
  }
  std::stable_sort(items.begin(), items.end(),
                   [](const DriftItem& a, const DriftItem& b) { return a.address < b.address; });
  return items;
}

nlohmann::json ToJson(const std::vector<DriftItem>& items) {
  nlohmann::json out = nlohmann::json::array();
  for (const DriftItem& i : items) {
    out.push_back({{"address", i.address}, {"kind", DriftKindName(i.kind)}, {"detail", i.detail}});
  }
  return out;
}

}  // namespace reconcile
