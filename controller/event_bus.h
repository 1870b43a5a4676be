// EventBus: the controller's one stream of what happened. The schedulers
// publish (through BusPublisher, their SchedulerListener and EventObserver);
// logs, metrics, notifications, traces and the status page read it as
// sinks. A sink is one of two kinds:
//   inline  called on the publisher's thread, in order, before Publish
//           returns. Only for sinks that never block on I/O (metrics, logs):
//           they are what the scheduler's listeners were before the bus.
//   queued  its own bounded queue and worker thread. Publish never waits for
//           it: when the queue is full the OLDEST queued event is dropped
//           (the newest says most about now) and counted. A delivery that
//           returns kUnavailable is retried with exponential backoff
//           (initial_backoff doubling to max_backoff, max_attempts in all);
//           any other error, or the last attempt's, counts as a failure and
//           the event is let go. So a slow or failing sink (a chat webhook
//           that hangs, a collector that is down) never delays or fails a
//           pass.
// Metrics (when given): reconcile_event_sink_delivered_total{sink},
// reconcile_event_sink_dropped_total{sink},
// reconcile_event_sink_failures_total{sink},
// reconcile_event_sink_queue_depth{sink}.
//
// Order: one sink sees the events in publish order (one worker per sink).
// Events carry a per-bus sequence number and, for the events of one pass,
// the pass's id (unique per bus), so a sink can group them.
//
// Stop(drain): no new events are queued; each worker delivers what it holds
// until `drain` has passed, then is asked to stop (its retries and backoffs
// end at once; sinks see the stop token) and is joined.
//
// Thread-safety: Publish, Stats and Stop are safe from any thread; Add is
// safe at any time (a sink added late sees only later events).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "pass_policy.h"
#include "reconcile/event.h"
#include "reconcile/pass.h"
#include "reconcile/status.h"
#include "scheduler.h"

namespace reconcile::controller {

class Metrics;

struct ControllerEvent {
  enum class Kind {
    kRefChecked,    // ref: the revision or the error; seconds
    kDecided,       // revision, decision, message (why)
    kPassStarted,   // pass_id, request
    kChange,        // pass_id, change (an engine Event of the running pass)
    kPassFinished,  // pass_id, request, report, seconds
    kHealWithheld,  // agent, message (why)
    kDriftNoticed,  // notice: a drift watch's notice the scheduler acts on
    kDriftPass,     // drift_agents: a drift pass starts for watch notices
    kPlanApproved,  // plan: a person approved a plan waiting for approval
  };
  Kind kind = Kind::kChange;
  std::uint64_t sequence = 0;  // set by Publish: 1, 2, ... per bus
  std::string environment;     // "default" for a plain tree; "" for the shared ref check
  std::chrono::system_clock::time_point at = std::chrono::system_clock::now();
  std::uint64_t pass_id = 0;  // the pass an event belongs to (0: none)

  std::optional<Result<std::string>> ref;      // kRefChecked
  std::string revision;                        // kDecided, kPassStarted, kPassFinished
  Decision decision = Decision::kUpToDate;     // kDecided
  std::string message;                         // kDecided, kHealWithheld
  std::string agent;                           // kHealWithheld
  double seconds = 0;                          // kRefChecked, kPassFinished
  std::shared_ptr<const PassRequest> request;  // kPassStarted, kPassFinished
  std::shared_ptr<const PassReport> report;    // kPassFinished
  Event change;                                // kChange
  DriftNotice notice;                          // kDriftNoticed
  std::vector<std::pair<std::string, std::string>> drift_agents;  // kDriftPass
  std::shared_ptr<const PendingPlan> plan;                        // kPlanApproved
};

const char* ControllerEventKindName(ControllerEvent::Kind kind);

class EventSink {
 public:
  virtual ~EventSink() = default;
  // Delivers one event. A queued sink may block (network) but must honour
  // `stop`; kUnavailable means "try again later". Inline sinks must not
  // block and their status is ignored.
  virtual Status Deliver(const ControllerEvent& event, std::stop_token stop) = 0;
};

struct SinkOptions {
  std::string name;  // the `sink` label: "log", "slack:ops", "otlp", ...
  bool inline_delivery = false;
  std::size_t capacity = 1024;  // queued: events held at most
  int max_attempts = 5;         // queued: deliveries of one event at most
  std::chrono::milliseconds initial_backoff{200};
  std::chrono::milliseconds max_backoff{std::chrono::seconds(10)};
};

class EventBus {
 public:
  explicit EventBus(Metrics* metrics = nullptr);
  ~EventBus();  // Stop(0) when not stopped
  EventBus(const EventBus&) = delete;
  EventBus& operator=(const EventBus&) = delete;

  void Add(std::shared_ptr<EventSink> sink, SinkOptions options);
  // Stamps `event.sequence` and hands it to every sink. Never blocks on a
  // queued sink. Ignored after Stop.
  void Publish(ControllerEvent event);
  // A fresh pass id.
  std::uint64_t NewPassId();

  struct SinkStats {
    std::string name;
    std::uint64_t delivered = 0;
    std::uint64_t dropped = 0;
    std::uint64_t failed = 0;
    std::uint64_t retries = 0;
    std::size_t depth = 0;
  };
  std::vector<SinkStats> Stats() const;

  void Stop(std::chrono::milliseconds drain = std::chrono::milliseconds(0));

 private:
  struct Queued;
  void Work(Queued& q, std::stop_token stop);
  void Account(Queued& q, const char* what);

  Metrics* metrics_;
  mutable std::mutex mu_;  // guards sinks_ (the list), stopped_, sequence_
  struct Inline {
    std::shared_ptr<EventSink> sink;
    SinkOptions options;
    std::uint64_t delivered = 0;
  };
  std::vector<std::unique_ptr<Inline>> inline_;
  std::vector<std::unique_ptr<Queued>> queued_;
  bool stopped_ = false;
  std::uint64_t sequence_ = 0;
  std::uint64_t pass_ids_ = 0;
  std::mutex publish_mu_;  // one Publish at a time: inline sinks see publish order
};

// Publishes a scheduler's (one environment's) listener calls and engine
// events on the bus: the SchedulerListener and EventObserver the scheduler
// and its passes are given. Change events belong to the pass started last
// on this publisher (one pass at a time per environment). Thread-safe.
class BusPublisher final : public SchedulerListener, public EventObserver {
 public:
  BusPublisher(EventBus& bus, std::string environment);

  void RefChecked(const Result<std::string>& revision, double seconds) override;
  void Decided(const std::string& revision, Decision decision, const std::string& why) override;
  void PassStarted(const PassRequest& request) override;
  void PassFinished(const PassRequest& request, const PassReport& report, double seconds) override;
  void HealBudgetExhausted(const std::string& agent, const std::string& why) override;
  void DriftNoticed(const DriftNotice& notice) override;
  void DriftPassForEvents(const std::vector<std::pair<std::string, std::string>>& agents) override;
  void PlanApproved(const PendingPlan& plan) override;
  void OnEvent(const Event& event) override;

 private:
  EventBus& bus_;
  std::string environment_;
  std::atomic<std::uint64_t> pass_id_{0};
};

// An inline sink that replays the stream into the program's listeners
// (metrics, then logs) and observers, per environment ("" for the shared
// ref check). Events of an environment without an entry are ignored.
class ListenerSink final : public EventSink {
 public:
  void Route(const std::string& environment, SchedulerListener* listener, EventObserver* observer);
  Status Deliver(const ControllerEvent& event, std::stop_token stop) override;

 private:
  std::mutex mu_;
  std::map<std::string, std::pair<SchedulerListener*, EventObserver*>> routes_;
};

}  // namespace reconcile::controller
