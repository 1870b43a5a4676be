#include "controller/metrics.h"

#include <sstream>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

namespace reconcile::controller {
namespace {

constexpr PassResult kAllResults[] = {PassResult::kSuccess, PassResult::kFailed,
                                      PassResult::kInvalid, PassResult::kUnavailable,
                                      PassResult::kCancelled};
constexpr std::size_t kAllResultCount = sizeof kAllResults / sizeof kAllResults[0];

const prometheus::Histogram::BucketBoundaries& PassBuckets() {
  static const prometheus::Histogram::BucketBoundaries b{0.1, 0.5, 1,   2.5, 5,  10,
                                                         30,  60,  120, 300, 600};
  return b;
}

const prometheus::Histogram::BucketBoundaries& FetchBuckets() {
  static const prometheus::Histogram::BucketBoundaries b{0.05, 0.1, 0.25, 0.5, 1,
                                                         2.5,  5,   10,   30,  60};
  return b;
}

}  // namespace

Metrics::Metrics(const std::vector<std::string>& environments)
    : registry_(std::make_shared<prometheus::Registry>()) {
  auto& r = *registry_;
  passes_ = &prometheus::BuildCounter()
                 .Name("reconcile_passes_total")
                 .Help("Reconcile passes finished, by environment and result.")
                 .Register(r);
  skipped_ = &prometheus::BuildCounter()
                  .Name("reconcile_passes_skipped_total")
                  .Help("New revisions that changed no file of the environment (no pass ran).")
                  .Register(r);
  pass_duration_ = &prometheus::BuildHistogram()
                        .Name("reconcile_pass_duration_seconds")
                        .Help("Wall time of a reconcile pass in seconds, by result.")
                        .Register(r);
  last_success_ = &prometheus::BuildGauge()
                       .Name("reconcile_last_success_timestamp_seconds")
                       .Help("Unix time of the last successful reconcile pass.")
                       .Register(r);
  revision_ = &prometheus::BuildGauge()
                   .Name("reconcile_revision_info")
                   .Help("Always 1; the revision label is the commit last applied successfully.")
                   .Register(r);
  source_revision_ =
      &prometheus::BuildGauge()
           .Name("reconcile_source_revision_info")
           .Help("Always 1; the revision label is the commit the last ref check found.")
           .Register(r);
  agents_ = &prometheus::BuildGauge().Name("reconcile_agents").Help("Agents by state.").Register(r);
  drifted_ = &prometheus::BuildGauge()
                  .Name("reconcile_drifted_agents")
                  .Help("Agents whose observed state differs from the desired state.")
                  .Register(r);
  heals_withheld_ = &prometheus::BuildCounter()
                         .Name("reconcile_heals_withheld_total")
                         .Help("Heals not done because the agent had used its --heal-budget.")
                         .Register(r);
  drift_events_ = &prometheus::BuildCounter()
                       .Name("reconcile_drift_events_total")
                       .Help(
                           "Changes to the environment's agents seen by a drift watch (the "
                           "Docker Engine's events).")
                       .Register(r);
  stream_reconnects_ = &prometheus::BuildCounter()
                            .Name("reconcile_event_stream_reconnects_total")
                            .Help("Times a drift watch's event stream came back after it was lost.")
                            .Register(r)
                            .Add({});
  webhooks_ = &prometheus::BuildCounter()
                   .Name("reconcile_webhook_requests_total")
                   .Help("Webhook requests by provider and HTTP status code.")
                   .Register(r);
  fetch_errors_ = &prometheus::BuildCounter()
                       .Name("reconcile_source_fetch_errors_total")
                       .Help("Failed ref checks or fetches of the git source.")
                       .Register(r)
                       .Add({});
  fetch_duration_ = &prometheus::BuildHistogram()
                         .Name("reconcile_source_fetch_duration_seconds")
                         .Help("Wall time of a ref check plus fetch of the git source in seconds.")
                         .Register(r)
                         .Add({}, FetchBuckets());
  apply_errors_ = &prometheus::BuildCounter()
                       .Name("reconcile_apply_errors_total")
                       .Help("Changes that failed to apply.")
                       .Register(r);
  blocked_by_window_ = &prometheus::BuildGauge()
                            .Name("reconcile_blocked_by_window")
                            .Help("1 while a deploy window blocks the environment's apply.")
                            .Register(r);
  next_window_ = &prometheus::BuildGauge()
                      .Name("reconcile_next_window_timestamp_seconds")
                      .Help("Unix time the deploy window verdict next changes (0: none soon).")
                      .Register(r);
  pending_approval_ = &prometheus::BuildGauge()
                           .Name("reconcile_pending_approval")
                           .Help("1 while a plan of the environment waits for approval.")
                           .Register(r);
  sink_delivered_ = &prometheus::BuildCounter()
                         .Name("reconcile_event_sink_delivered_total")
                         .Help("Events a queued sink (notifier, exporter, page) delivered.")
                         .Register(r);
  sink_dropped_ = &prometheus::BuildCounter()
                       .Name("reconcile_event_sink_dropped_total")
                       .Help("Events a queued sink dropped because its queue was full.")
                       .Register(r);
  sink_failures_ = &prometheus::BuildCounter()
                        .Name("reconcile_event_sink_failures_total")
                        .Help("Events a queued sink failed to deliver after its retries.")
                        .Register(r);
  sink_depth_ = &prometheus::BuildGauge()
                     .Name("reconcile_event_sink_queue_depth")
                     .Help("Events waiting in a queued sink's queue.")
                     .Register(r);
  leader_ = &prometheus::BuildGauge()
                 .Name("reconcile_leader")
                 .Help("1 while this replica is the leader (the one that applies), else 0.")
                 .Register(r)
                 .Add({});
  leader_transitions_ = &prometheus::BuildCounter()
                             .Name("reconcile_leader_transitions_total")
                             .Help("Times this replica became leader.")
                             .Register(r)
                             .Add({});
  for (const std::string& e : environments) AddEnvironment(e);
}

Metrics::~Metrics() = default;

Metrics::Series& Metrics::For(const std::string& environment) {
  const std::string& env = environment.empty() ? std::string(kDefaultEnvironment) : environment;
  auto [it, added] = series_.try_emplace(env);
  Series& s = it->second;
  if (!added) return s;
  for (PassResult result : kAllResults) {
    auto i = static_cast<std::size_t>(result);
    s.pass_count_by_result[i] =
        &passes_->Add({{"environment", env}, {"result", PassResultName(result)}});
    s.pass_duration_by_result[i] = &pass_duration_->Add(
        {{"environment", env}, {"result", PassResultName(result)}}, PassBuckets());
  }
  s.skipped = &skipped_->Add({{"environment", env}});
  s.last_success = &last_success_->Add({{"environment", env}});
  s.drifted = &drifted_->Add({{"environment", env}});
  s.heals_withheld = &heals_withheld_->Add({{"environment", env}});
  s.drift_events = &drift_events_->Add({{"environment", env}});
  s.apply_errors = &apply_errors_->Add({{"environment", env}});
  pending_approval_->Add({{"environment", env}});
  return s;
}

void Metrics::AddEnvironment(const std::string& environment) {
  std::lock_guard<std::mutex> lock(mu_);
  For(environment);
}

void Metrics::PassFinished(PassResult result, double seconds, const std::string& environment) {
  auto i = static_cast<std::size_t>(result);
  if (i >= kAllResultCount) return;
  std::lock_guard<std::mutex> lock(mu_);
  Series& s = For(environment);
  s.pass_count_by_result[i]->Increment();
  s.pass_duration_by_result[i]->Observe(seconds < 0 ? 0 : seconds);
}

void Metrics::PassSkipped(const std::string& environment) {
  std::lock_guard<std::mutex> lock(mu_);
  For(environment).skipped->Increment();
}

void Metrics::SetLastSuccess(double unix_seconds, const std::string& environment) {
  std::lock_guard<std::mutex> lock(mu_);
  For(environment).last_success->Set(unix_seconds);
}

void Metrics::ReplaceRevision(prometheus::Family<prometheus::Gauge>* family,
                              prometheus::Gauge** series, const std::string& commit,
                              const std::string& environment) {
  if (*series != nullptr) {
    family->Remove(*series);
    *series = nullptr;
  }
  if (commit.empty()) return;
  const std::string env = environment.empty() ? std::string(kDefaultEnvironment) : environment;
  *series = &family->Add({{"environment", env}, {"revision", commit}});
  (*series)->Set(1);
}

void Metrics::SetRevision(const std::string& commit, const std::string& environment) {
  std::lock_guard<std::mutex> lock(mu_);
  ReplaceRevision(revision_, &For(environment).revision, commit, environment);
}

void Metrics::SetSourceRevision(const std::string& commit, const std::string& environment) {
  std::lock_guard<std::mutex> lock(mu_);
  ReplaceRevision(source_revision_, &For(environment).source_revision, commit, environment);
}

void Metrics::SetAgents(const std::map<std::string, std::int64_t>& counts,
                        const std::string& environment) {
  std::lock_guard<std::mutex> lock(mu_);
  Series& s = For(environment);
  for (auto it = s.agents.begin(); it != s.agents.end();) {
    if (counts.count(it->first) == 0) {
      agents_->Remove(it->second);
      it = s.agents.erase(it);
    } else {
      ++it;
    }
  }
  const std::string env = environment.empty() ? std::string(kDefaultEnvironment) : environment;
  for (const auto& [state, n] : counts) {
    auto& series = s.agents[state];
    if (series == nullptr) series = &agents_->Add({{"environment", env}, {"state", state}});
    series->Set(static_cast<double>(n));
  }
}

void Metrics::SetDrifted(std::int64_t n, const std::string& environment) {
  std::lock_guard<std::mutex> lock(mu_);
  For(environment).drifted->Set(static_cast<double>(n));
}

void Metrics::HealWithheld(const std::string& environment) {
  std::lock_guard<std::mutex> lock(mu_);
  For(environment).heals_withheld->Increment();
}

void Metrics::DriftEvent(const std::string& environment) {
  std::lock_guard<std::mutex> lock(mu_);
  For(environment).drift_events->Increment();
}

void Metrics::EventStreamReconnect() { stream_reconnects_->Increment(); }

void Metrics::SetWindow(const std::string& environment, bool blocked, double next_unix_seconds) {
  const std::string env = environment.empty() ? "default" : environment;
  blocked_by_window_->Add({{"environment", env}}).Set(blocked ? 1 : 0);
  next_window_->Add({{"environment", env}}).Set(next_unix_seconds);
}

void Metrics::SetPendingApproval(const std::string& environment, bool waiting) {
  const std::string env = environment.empty() ? "default" : environment;
  pending_approval_->Add({{"environment", env}}).Set(waiting ? 1 : 0);
}

void Metrics::AddEventSink(const std::string& sink) {
  sink_delivered_->Add({{"sink", sink}});
  sink_dropped_->Add({{"sink", sink}});
  sink_failures_->Add({{"sink", sink}});
  sink_depth_->Add({{"sink", sink}});
}

void Metrics::EventSinkDelivered(const std::string& sink) {
  sink_delivered_->Add({{"sink", sink}}).Increment();
}

void Metrics::EventSinkDropped(const std::string& sink) {
  sink_dropped_->Add({{"sink", sink}}).Increment();
}

void Metrics::EventSinkFailed(const std::string& sink) {
  sink_failures_->Add({{"sink", sink}}).Increment();
}

void Metrics::SetEventSinkQueueDepth(const std::string& sink, double depth) {
  sink_depth_->Add({{"sink", sink}}).Set(depth);
}

void Metrics::WebhookRequest(const std::string& provider, int code) {
  webhooks_->Add({{"provider", provider}, {"code", std::to_string(code)}}).Increment();
}

void Metrics::SourceFetchFailed() { fetch_errors_->Increment(); }

void Metrics::SourceFetchDuration(double seconds) {
  fetch_duration_->Observe(seconds < 0 ? 0 : seconds);
}

void Metrics::ApplyErrors(std::int64_t n, const std::string& environment) {
  if (n <= 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  For(environment).apply_errors->Increment(static_cast<double>(n));
}

void Metrics::SetLeader(bool leader) { leader_->Set(leader ? 1 : 0); }

void Metrics::LeaderTransition() { leader_transitions_->Increment(); }

std::string Metrics::Render() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

}  // namespace reconcile::controller
