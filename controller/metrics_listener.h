// MetricsListener: a SchedulerListener that records ref checks and passes in
// Metrics, then forwards every call to `next` (the program's logging
// listener; may be null). The scheduler calls it from its pool thread and
// its I/O thread; it is as thread-safe as Metrics and `next`.
//
// What each call records:
//   RefChecked    reconcile_source_fetch_duration_seconds; a failed check
//                 also reconcile_source_fetch_errors_total
//   PassFinished  reconcile_passes_total and reconcile_pass_duration_seconds
//                 by PassResultOf(report); reconcile_apply_errors_total +=
//                 report.outcome.failed; on success the revision info and the
//                 last-success time; after a success or a failure (the state
//                 was recorded) agents by health; after a drift pass or a
//                 success the drifted agents (those only reported, not healed)
//   HealBudgetExhausted  reconcile_heals_withheld_total
//   Decided       reconcile_source_revision_info: the revision the ref check
//                 found (called after every successful check, also when
//                 nothing is to be done)
//   DriftNoticed  a change: reconcile_drift_events_total; a resync:
//                 reconcile_event_stream_reconnects_total
#pragma once

#include <functional>
#include <string>

#include "controller/metrics.h"
#include "scheduler.h"

namespace reconcile::controller {

// How a pass ended, as the scheduler's status JSON names it ("result").

class MetricsListener final : public SchedulerListener {
 public:
  // `unix_now` gives the wall time in seconds for the last-success gauge;
  // empty means the system clock. `metrics` (and `next`) must outlive it.
  // `environment` labels every per-pass series ("default" for a plain tree).
  explicit MetricsListener(Metrics& metrics, SchedulerListener* next = nullptr,
                           std::function<double()> unix_now = {},
                           std::string environment = kDefaultEnvironment);

  void RefChecked(const Result<std::string>& revision, double seconds) override;
  void Decided(const std::string& revision, Decision decision, const std::string& why) override;
  void PassFinished(const PassRequest& request, const PassReport& report, double seconds) override;
  void PassStarted(const PassRequest& request) override;
  void HealBudgetExhausted(const std::string& agent, const std::string& why) override;
  void DriftNoticed(const DriftNotice& notice) override;
  void DriftPassForEvents(const std::vector<std::pair<std::string, std::string>>& agents) override;
  void PlanApproved(const PendingPlan& plan) override;

 private:
  Metrics& metrics_;
  SchedulerListener* next_;
  std::function<double()> unix_now_;
  std::string environment_;
};

}  // namespace reconcile::controller
