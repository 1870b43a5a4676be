// Metrics: the controller's Prometheus metrics, held in one prometheus-cpp
// Registry and rendered in the Prometheus text format 0.0.4 for GET /metrics.
// The scheduler and the HTTP server call the typed methods below; nothing
// else touches the registry.
//
// clang-format off
// | name | type | labels | meaning |
// | --- | --- | --- | --- |
// | `reconcile_passes_total` | counter | `environment`, `result` | reconcile passes finished, by result (`success`, `failed`, `invalid`, `unavailable`, `cancelled`) |
// | `reconcile_passes_skipped_total` | counter | `environment` | new revisions that changed no file of the environment (not observed, not planned) |
// | `reconcile_pass_duration_seconds` | histogram | `environment`, `result` | wall time of a reconcile pass, by result |
// | `reconcile_last_success_timestamp_seconds` | gauge | `environment` | Unix time of the last successful pass (0 until one succeeds) |
// | `reconcile_revision_info` | gauge | `environment`, `revision` | always 1; `revision` is the commit last applied successfully (one series per environment at most) |
// | `reconcile_source_revision_info` | gauge | `environment`, `revision` | always 1; `revision` is the commit the last ref check found on the followed branch (one series per environment at most); differs from `reconcile_revision_info` while a revision waits to be applied |
// | `reconcile_agents` | gauge | `environment`, `state` | agents by state (for example `healthy`, `unhealthy`, `unknown`) |
// | `reconcile_drifted_agents` | gauge | `environment` | agents whose observed state differs from the desired one |
// | `reconcile_heals_withheld_total` | counter | `environment` | heals not done because the agent had used its `--heal-budget` (once per agent per drift pass) |
// | `reconcile_drift_events_total` | counter | `environment` | changes to the environment's agents seen by the drift watch (the Docker Engine's events), each a reason for a drift pass |
// | `reconcile_event_stream_reconnects_total` | counter | | times a drift watch's event stream came back after it was lost (an Engine restart) |
// | `reconcile_webhook_requests_total` | counter | `provider`, `code` | webhook requests by provider (`github`, `gitlab`, `generic`) and HTTP status code |
// | `reconcile_source_fetch_errors_total` | counter | | failed ref checks or fetches of the git source |
// | `reconcile_source_fetch_duration_seconds` | histogram | | wall time of a ref check plus fetch |
// | `reconcile_apply_errors_total` | counter | `environment` | changes that failed to apply |
// | `reconcile_leader` | gauge | | 1 while this replica leads (or runs without --leader-elect), else 0 |
// | `reconcile_leader_transitions_total` | counter | | times this replica became leader |
// | `reconcile_blocked_by_window` | gauge | `environment` | 1 while a deploy window blocks the environment's apply (`default`: a plain tree) |
// | `reconcile_next_window_timestamp_seconds` | gauge | `environment` | Unix time the window verdict next changes (0: none within 8 days) |
// | `reconcile_event_sink_delivered_total` | counter | `sink` | events a queued sink (notifier, trace exporter, status page stream) delivered |
// | `reconcile_event_sink_dropped_total` | counter | `sink` | events a queued sink dropped because its bounded queue was full (the oldest goes) |
// | `reconcile_event_sink_failures_total` | counter | `sink` | events a queued sink could not deliver after its retries |
// | `reconcile_event_sink_queue_depth` | gauge | `sink` | events waiting in a queued sink's queue |
// clang-format on
//
// `environment` is the Environment's name (`default` for a plain tree);
// the source and webhook metrics have none (one ref check serves every
// environment). Every `result` series of the pass metrics of each
// environment given to the constructor (or AddEnvironment) exists from the
// start (at 0), so rate() works before the first failure. Families whose label values are
// not known in advance (revision, agents, webhook requests) appear with
// their first series.
//
// Thread-safety: every method may be called from any thread at once.
// Render() takes a consistent snapshot per metric family.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "pass_policy.h"

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace reconcile::controller {

// How a pass ended; the names match the scheduler's status JSON.
inline constexpr const char* kDefaultEnvironment = "default";

class Metrics {
 public:
  // `environments`: whose per-pass series exist from the start.
  explicit Metrics(const std::vector<std::string>& environments = {kDefaultEnvironment});
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Creates the zero series of `environment` (no-op when they exist).
  void AddEnvironment(const std::string& environment);

  // One reconcile pass finished with `result` after `seconds`.
  void PassFinished(PassResult result, double seconds,
                    const std::string& environment = kDefaultEnvironment);
  // A new revision changed nothing this environment reads: no pass ran.
  void PassSkipped(const std::string& environment = kDefaultEnvironment);
  // Unix time (seconds) of the last successful pass.
  void SetLastSuccess(double unix_seconds, const std::string& environment = kDefaultEnvironment);
  // The revision now running; replaces the environment's previous revision
  // series. An empty `commit` removes the series.
  void SetRevision(const std::string& commit, const std::string& environment = kDefaultEnvironment);
  // The revision the last ref check found (the branch's head); replaces the
  // environment's previous series. An empty `commit` removes the series.
  void SetSourceRevision(const std::string& commit,
                         const std::string& environment = kDefaultEnvironment);
  // Agents by state; states absent from `counts` lose their series.
  void SetAgents(const std::map<std::string, std::int64_t>& counts,
                 const std::string& environment = kDefaultEnvironment);
  void SetDrifted(std::int64_t n, const std::string& environment = kDefaultEnvironment);
  // A drifted agent in heal mode was only reported: past its heal budget.
  void HealWithheld(const std::string& environment = kDefaultEnvironment);
  // reconcile_drift_events_total: a drift watch saw an agent of the
  // environment change.
  void DriftEvent(const std::string& environment = kDefaultEnvironment);
  // reconcile_event_stream_reconnects_total: a drift watch's feed came back.
  void EventStreamReconnect();
  // One webhook request to `provider` ("github", ...) answered with `code`.
  void WebhookRequest(const std::string& provider, int code);
  void SourceFetchFailed();
  void SourceFetchDuration(double seconds);
  // `n` changes failed to apply.
  void ApplyErrors(std::int64_t n = 1, const std::string& environment = kDefaultEnvironment);
  // Leader election: whether this replica leads now.
  void SetLeader(bool leader);
  // This replica became leader once more.
  void LeaderTransition();
  // Deploy windows of `environment` ("default" for a plain tree): blocked
  // or not, and the Unix time the verdict next changes (0: unknown).
  void SetWindow(const std::string& environment, bool blocked, double next_unix_seconds);
  // reconcile_pending_approval{environment}: 1 while a plan waits for approval.
  void SetPendingApproval(const std::string& environment, bool waiting);

  // Event bus sinks (event_bus.h): the zero series of `sink`, then its
  // deliveries, drops, failures and queue depth.
  void AddEventSink(const std::string& sink);
  void EventSinkDelivered(const std::string& sink);
  void EventSinkDropped(const std::string& sink);
  void EventSinkFailed(const std::string& sink);
  void SetEventSinkQueueDepth(const std::string& sink, double depth);

  // The whole registry in the Prometheus text format 0.0.4
  // (Content-Type: text/plain; version=0.0.4).
  std::string Render() const;

 private:
  // The series of one environment.
  struct Series {
    std::array<prometheus::Counter*, 5> pass_count_by_result{};
    std::array<prometheus::Histogram*, 5> pass_duration_by_result{};
    prometheus::Counter* skipped = nullptr;
    prometheus::Gauge* last_success = nullptr;
    prometheus::Gauge* drifted = nullptr;
    prometheus::Counter* apply_errors = nullptr;
    prometheus::Gauge* revision = nullptr;
    prometheus::Gauge* source_revision = nullptr;
    std::map<std::string, prometheus::Gauge*> agents;
    prometheus::Counter* heals_withheld = nullptr;
    prometheus::Counter* drift_events = nullptr;
  };
  Series& For(const std::string& environment);  // with mu_ held
  // Replaces `*series` of `family` by {environment, revision=commit} (none
  // when `commit` is empty); with mu_ held.
  void ReplaceRevision(prometheus::Family<prometheus::Gauge>* family, prometheus::Gauge** series,
                       const std::string& commit, const std::string& environment);

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* passes_;
  prometheus::Family<prometheus::Counter>* skipped_;
  prometheus::Family<prometheus::Histogram>* pass_duration_;
  prometheus::Family<prometheus::Gauge>* last_success_;
  prometheus::Family<prometheus::Gauge>* revision_;
  prometheus::Family<prometheus::Gauge>* source_revision_;
  prometheus::Family<prometheus::Gauge>* agents_;
  prometheus::Family<prometheus::Gauge>* drifted_;
  prometheus::Family<prometheus::Counter>* webhooks_;
  prometheus::Counter* fetch_errors_;
  prometheus::Histogram* fetch_duration_;
  prometheus::Family<prometheus::Counter>* apply_errors_;
  prometheus::Gauge* leader_;
  prometheus::Counter* leader_transitions_;
  prometheus::Family<prometheus::Gauge>* blocked_by_window_;
  prometheus::Family<prometheus::Gauge>* pending_approval_;
  prometheus::Family<prometheus::Gauge>* next_window_;
  prometheus::Family<prometheus::Counter>* heals_withheld_;
  prometheus::Family<prometheus::Counter>* sink_delivered_;
  prometheus::Family<prometheus::Counter>* sink_dropped_;
  prometheus::Family<prometheus::Counter>* sink_failures_;
  prometheus::Family<prometheus::Gauge>* sink_depth_;
  prometheus::Family<prometheus::Counter>* drift_events_;
  prometheus::Counter* stream_reconnects_;

  std::mutex mu_;  // guards series_ and the label sets replaced as a whole
  std::map<std::string, Series> series_;
};

}  // namespace reconcile::controller
