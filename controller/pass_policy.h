// PassPolicy: what the controller does after each ref check, as a pure state
// machine over (revision seen, outcomes so far, time). No I/O, no clock of
// its own: callers pass `now`, so tests drive it on fake time.
//
//   a new revision                    → apply it (resets every backoff)
//   a revision whose tree is invalid  → never applied; wait for a new one
//   a revision whose apply failed     → retried with exponential backoff
//                                       (initial, doubled, capped), at most
//                                       max_retries times; then it waits for
//                                       a new revision (like Argo CD)
//   the applied revision, drift due   → a drift pass
//   otherwise                         → nothing (up to date)
//
// Heal budget: each agent may be healed at most `heal_budget` times per
// `heal_window`; past that its drift is only reported.
//
// Thread-safety: none; the scheduler calls it from its one strand.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <set>
#include <string>

#include "reconcile/pass.h"

namespace reconcile::controller {

using TimePoint = std::chrono::steady_clock::time_point;
using Millis = std::chrono::milliseconds;

struct PassPolicyOptions {
  Millis drift_interval{std::chrono::minutes(5)};
  Millis initial_backoff{std::chrono::seconds(10)};
  Millis max_backoff{std::chrono::minutes(5)};
  int max_retries = 5;  // after the first attempt
  int heal_budget = 3;
  Millis heal_window{std::chrono::hours(1)};
};

enum class Decision {
  kApply,       // run an apply pass at the revision
  kDrift,       // run a drift pass at the applied revision
  kUpToDate,    // nothing to do
  kStalled,     // the revision is invalid, or out of retries: wait for a new one
  kBackingOff,  // the revision failed; retry after NextRetryAt()
};
const char* DecisionName(Decision d);

// How a pass ended; names the results in the status JSON and the metrics.
enum class PassResult {
  kSuccess,      // the world matches the revision (or there was nothing to change)
  kFailed,       // some change failed to apply (retried with backoff)
  kInvalid,      // the revision's tree is invalid; the last good one keeps running
  kUnavailable,  // a transient error before anything changed (source or engine down)
  kCancelled,    // stopped (SIGTERM) before it finished
};

// "success", "failed", "invalid", "unavailable", "cancelled".
const char* PassResultName(PassResult result);
// The result a report stands for (its status code; an invalid state file is
// a failure, not an invalid tree).
PassResult PassResultOf(const PassReport& report);

class PassPolicy {
 public:
  explicit PassPolicy(PassPolicyOptions options) : options_(options) {}

  // After a ref check found `revision`.
  Decision Decide(const std::string& revision, TimePoint now) const;
  // After a pass at `revision` ended.
  void Finished(const std::string& revision, bool drift_pass, PassResult outcome, TimePoint now);
  // Agents (of `candidates`) that may be healed now; records nothing.
  std::set<std::string> HealAllowed(const std::set<std::string>& candidates, TimePoint now) const;
  // Records that `agent` was healed at `now`.
  void Healed(const std::string& agent, TimePoint now);
  // Makes a drift pass due now (a drift watch saw a change); the next
  // Decide of the applied revision says kDrift.
  void RequestDrift() { next_drift_ = TimePoint::min(); }

  const std::string& applied() const { return applied_; }
  const std::string& invalid() const { return invalid_; }
  const std::string& failed() const { return failed_; }
  int failures() const { return failures_; }
  TimePoint next_retry_at() const { return next_retry_; }
  TimePoint next_drift_at() const { return next_drift_; }

 private:
  PassPolicyOptions options_;
  std::string applied_;  // last revision applied in full
  std::string invalid_;  // last revision whose tree was invalid
  std::string failed_;   // revision whose apply failed, being retried
  int failures_ = 0;
  TimePoint next_retry_{};
  TimePoint next_drift_{};
  std::map<std::string, std::deque<TimePoint>> heals_;
};

}  // namespace reconcile::controller
