// DriftTrigger: when the events of a drift watch (Provider::WatchDrift) call
// for a drift pass, as a pure state machine over (events, time). No I/O, no
// clock of its own: callers pass `now`, so tests drive it on fake time.
//
// A burst of events (a `docker stop` is kill, die, stop) makes one pass:
// the pass is due `debounce` after the first event of the burst (later
// events do not push it back, so a chatty container cannot delay it), and
// never sooner than `min_gap` after the previous pass it asked for (so a
// container that crash-loops under the Engine's own restart policy costs at
// most one drift pass per `min_gap`). Events arriving before the pass ran
// join it.
//
// Thread-safety: none; the scheduler calls it from its one strand.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "pass_policy.h"

namespace reconcile::controller {

struct DriftTriggerOptions {
  Millis debounce{150};
  Millis min_gap{300};
};

class DriftTrigger {
 public:
  explicit DriftTrigger(DriftTriggerOptions options = {}) : options_(options) {}

  // Records that `agent` changed (`what`: for people; the last one per
  // agent is kept). An empty `agent` stands for all of them (the watch
  // resynced). Returns when the pass is due.
  TimePoint Note(const std::string& agent, const std::string& what, TimePoint now);
  // Whether events wait for a pass, and when it is due (valid if pending()).
  bool pending() const { return !agents_.empty(); }
  TimePoint due() const;
  // The agents (in order of their first event) with their last `what`, and
  // forgets them; `now` is the pass's start, for min_gap. Empty when nothing
  // was pending (no pass recorded then).
  std::vector<std::pair<std::string, std::string>> Take(TimePoint now);

 private:
  DriftTriggerOptions options_;
  std::vector<std::pair<std::string, std::string>> agents_;
  TimePoint first_{};
  std::optional<TimePoint> last_pass_;
};

}  // namespace reconcile::controller
