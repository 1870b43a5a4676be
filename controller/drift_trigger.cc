#include "drift_trigger.h"

#include <algorithm>

namespace reconcile::controller {

TimePoint DriftTrigger::Note(const std::string& agent, const std::string& what, TimePoint now) {
  if (agents_.empty()) first_ = now;
  auto it = std::find_if(agents_.begin(), agents_.end(),
                         [&](const auto& entry) { return entry.first == agent; });
  if (it == agents_.end()) {
    agents_.emplace_back(agent, what);
  } else {
    it->second = what;
  }
  return due();
}

TimePoint DriftTrigger::due() const {
  TimePoint at = first_ + options_.debounce;
  if (last_pass_ && *last_pass_ + options_.min_gap > at) at = *last_pass_ + options_.min_gap;
  return at;
}

std::vector<std::pair<std::string, std::string>> DriftTrigger::Take(TimePoint now) {
  if (agents_.empty()) return {};
  last_pass_ = now;
  return std::exchange(agents_, {});
}

}  // namespace reconcile::controller
