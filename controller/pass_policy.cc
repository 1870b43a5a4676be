#include "pass_policy.h"

#include <algorithm>

namespace reconcile::controller {

const char* DecisionName(Decision d) {
  switch (d) {
    case Decision::kApply:
      return "apply";
    case Decision::kDrift:
      return "drift";
    case Decision::kUpToDate:
      return "up-to-date";
    case Decision::kStalled:
      return "stalled";
    case Decision::kBackingOff:
      return "backing-off";
  }
  return "unknown";
}

const char* PassResultName(PassResult result) {
  switch (result) {
    case PassResult::kSuccess:
      return "success";
    case PassResult::kFailed:
      return "failed";
    case PassResult::kInvalid:
      return "invalid";
    case PassResult::kUnavailable:
      return "unavailable";
    case PassResult::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

PassResult PassResultOf(const PassReport& report) {
  const Status& s = report.status;
  if (s.ok()) return PassResult::kSuccess;
  switch (s.code()) {
    case Code::kInvalid:
      return report.stale_tree ? PassResult::kInvalid : PassResult::kFailed;
    case Code::kCancelled:
      return PassResult::kCancelled;
    case Code::kUnavailable:
    case Code::kConflict:
      return PassResult::kUnavailable;
    default:
      return PassResult::kFailed;
  }
}

Decision PassPolicy::Decide(const std::string& revision, TimePoint now) const {
  if (revision == invalid_) return Decision::kStalled;
  if (revision == failed_) {
    if (failures_ > options_.max_retries) return Decision::kStalled;
    return now >= next_retry_ ? Decision::kApply : Decision::kBackingOff;
  }
  if (revision != applied_) return Decision::kApply;
  return now >= next_drift_ ? Decision::kDrift : Decision::kUpToDate;
}

void PassPolicy::Finished(const std::string& revision, bool drift_pass, PassResult outcome,
                          TimePoint now) {
  switch (outcome) {
    case PassResult::kSuccess:
      applied_ = revision;
      if (failed_ == revision || !drift_pass) {
        failed_.clear();
        failures_ = 0;
      }
      next_drift_ = now + options_.drift_interval;
      return;
    case PassResult::kInvalid:
      invalid_ = revision;
      return;
    case PassResult::kFailed:
    case PassResult::kUnavailable: {
      if (drift_pass) {  // the revision stays applied; try healing again later
        next_drift_ = now + options_.drift_interval;
        return;
      }
      if (failed_ != revision) {
        failed_ = revision;
        failures_ = 0;
      }
      ++failures_;
      Millis backoff = options_.initial_backoff;
      for (int i = 1; i < failures_ && backoff < options_.max_backoff; ++i) backoff *= 2;
      next_retry_ = now + std::min(backoff, options_.max_backoff);
      return;
    }
    case PassResult::kCancelled:
      return;  // the next start converges
  }
}

std::set<std::string> PassPolicy::HealAllowed(const std::set<std::string>& candidates,
                                              TimePoint now) const {
  std::set<std::string> out;
  for (const std::string& agent : candidates) {
    int recent = 0;
    if (auto it = heals_.find(agent); it != heals_.end()) {
      for (TimePoint t : it->second) recent += now - t < options_.heal_window;
    }
    if (recent < options_.heal_budget) out.insert(agent);
  }
  return out;
}

void PassPolicy::Healed(const std::string& agent, TimePoint now) {
  auto& times = heals_[agent];
  times.push_back(now);
  while (!times.empty() && now - times.front() >= options_.heal_window) times.pop_front();
}

}  // namespace reconcile::controller
