#include "controller/metrics_listener.h"

#include <chrono>
#include <map>

namespace reconcile::controller {

MetricsListener::MetricsListener(Metrics& metrics, SchedulerListener* next,
                                 std::function<double()> unix_now, std::string environment)
    : metrics_(metrics),
      next_(next),
      unix_now_(std::move(unix_now)),
      environment_(std::move(environment)) {
  if (!unix_now_) {
    unix_now_ = [] {
      return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
          .count();
    };
  }
}

void MetricsListener::RefChecked(const Result<std::string>& revision, double seconds) {
  metrics_.SourceFetchDuration(seconds);
  if (!revision.ok()) metrics_.SourceFetchFailed();
  if (next_) next_->RefChecked(revision, seconds);
}

void MetricsListener::Decided(const std::string& revision, Decision decision,
                              const std::string& why) {
  metrics_.SetSourceRevision(revision, environment_);
  if (next_) next_->Decided(revision, decision, why);
}

void MetricsListener::PassStarted(const PassRequest& request) {
  if (next_) next_->PassStarted(request);
}

void MetricsListener::PassFinished(const PassRequest& request, const PassReport& report,
                                   double seconds) {
  const PassResult result = PassResultOf(report);
  if (report.unchanged) {
    // Nothing this environment reads changed: no observe, no plan.
    metrics_.PassSkipped(environment_);
    metrics_.SetRevision(report.revision, environment_);
    if (next_) next_->PassFinished(request, report, seconds);
    return;
  }
  metrics_.PassFinished(result, seconds, environment_);
  metrics_.ApplyErrors(report.outcome.failed, environment_);
  if (report.approval.planned) metrics_.SetPendingApproval(environment_, report.approval.waiting);
  if (result == PassResult::kSuccess && report.window.held == 0 && !report.approval.waiting) {
    metrics_.SetLastSuccess(unix_now_(), environment_);
    metrics_.SetRevision(report.revision, environment_);
  }
  if (report.status.ok()) {
    double next = 0;
    if (report.window.next) {
      next = std::chrono::duration<double>(report.window.next->time_since_epoch()).count();
    }
    metrics_.SetWindow(environment_, report.window.blocked, next);
  }
  if (result == PassResult::kSuccess || result == PassResult::kFailed) {
    std::map<std::string, std::int64_t> by_health;
    for (const auto& [address, rs] : report.state->resources) {
      ++by_health[rs.health.empty() ? "unknown" : rs.health];
    }
    metrics_.SetAgents(by_health, environment_);
  }
  if (request.kind == PassRequest::Kind::kDrift || result == PassResult::kSuccess) {
    metrics_.SetDrifted(static_cast<std::int64_t>(report.reported.size()), environment_);
  }
  if (next_) next_->PassFinished(request, report, seconds);
}

void MetricsListener::HealBudgetExhausted(const std::string& agent, const std::string& why) {
  metrics_.HealWithheld(environment_);
  if (next_) next_->HealBudgetExhausted(agent, why);
}

void MetricsListener::DriftNoticed(const DriftNotice& notice) {
  if (notice.kind == DriftNotice::Kind::kChanged) metrics_.DriftEvent(environment_);
  if (notice.kind == DriftNotice::Kind::kResync) metrics_.EventStreamReconnect();
  if (next_) next_->DriftNoticed(notice);
}

void MetricsListener::DriftPassForEvents(
    const std::vector<std::pair<std::string, std::string>>& agents) {
  if (next_) next_->DriftPassForEvents(agents);
}

void MetricsListener::PlanApproved(const PendingPlan& plan) {
  if (next_) next_->PlanApproved(plan);
}

}  // namespace reconcile::controller
