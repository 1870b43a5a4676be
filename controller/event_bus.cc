#include "event_bus.h"

#include <algorithm>

#include "controller/metrics.h"

namespace reconcile::controller {

const char* ControllerEventKindName(ControllerEvent::Kind kind) {
  switch (kind) {
    case ControllerEvent::Kind::kRefChecked:
      return "ref-checked";
    case ControllerEvent::Kind::kDecided:
      return "decided";
    case ControllerEvent::Kind::kPassStarted:
      return "pass-started";
    case ControllerEvent::Kind::kChange:
      return "change";
    case ControllerEvent::Kind::kPassFinished:
      return "pass-finished";
    case ControllerEvent::Kind::kHealWithheld:
      return "heal-withheld";
    case ControllerEvent::Kind::kDriftNoticed:
      return "drift-noticed";
    case ControllerEvent::Kind::kDriftPass:
      return "drift-pass";
    case ControllerEvent::Kind::kPlanApproved:
      return "plan-approved";
  }
  return "unknown";
}

struct EventBus::Queued {
  std::shared_ptr<EventSink> sink;
  SinkOptions options;
  std::mutex mu;  // guards everything below
  std::condition_variable_any cv;
  std::deque<ControllerEvent> queue;
  bool closing = false;  // Stop: deliver what is held, take nothing new
  std::uint64_t delivered = 0, dropped = 0, failed = 0, retries = 0;
  std::jthread worker;
};

EventBus::EventBus(Metrics* metrics) : metrics_(metrics) {}

EventBus::~EventBus() { Stop(std::chrono::milliseconds(0)); }

void EventBus::Add(std::shared_ptr<EventSink> sink, SinkOptions options) {
  std::lock_guard<std::mutex> publish(publish_mu_);
  std::lock_guard<std::mutex> lock(mu_);
  if (stopped_) return;
  if (options.inline_delivery) {
    inline_.push_back(std::make_unique<Inline>(Inline{std::move(sink), std::move(options)}));
    return;
  }
  options.capacity = std::max<std::size_t>(options.capacity, 1);
  options.max_attempts = std::max(options.max_attempts, 1);
  auto q = std::make_unique<Queued>();
  q->sink = std::move(sink);
  q->options = std::move(options);
  if (metrics_ != nullptr) metrics_->AddEventSink(q->options.name);
  Queued* raw = q.get();
  q->worker = std::jthread([this, raw](std::stop_token stop) { Work(*raw, stop); });
  queued_.push_back(std::move(q));
}

std::uint64_t EventBus::NewPassId() {
  std::lock_guard<std::mutex> lock(mu_);
  return ++pass_ids_;
}

void EventBus::Publish(ControllerEvent event) {
  std::lock_guard<std::mutex> publish(publish_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    event.sequence = ++sequence_;
  }
  // The lists only grow, and only under publish_mu_, which we hold.
  for (auto& s : inline_) {
    s->sink->Deliver(event, std::stop_token{});
    ++s->delivered;
  }
  for (auto& q : queued_) {
    bool dropped = false;
    std::size_t depth = 0;
    {
      std::lock_guard<std::mutex> lock(q->mu);
      if (q->closing) continue;
      if (q->queue.size() >= q->options.capacity) {
        q->queue.pop_front();
        ++q->dropped;
        dropped = true;
      }
      q->queue.push_back(event);
      depth = q->queue.size();
    }
    q->cv.notify_one();
    if (metrics_ != nullptr) {
      if (dropped) metrics_->EventSinkDropped(q->options.name);
      metrics_->SetEventSinkQueueDepth(q->options.name, static_cast<double>(depth));
    }
  }
}

void EventBus::Work(Queued& q, std::stop_token stop) {
  while (true) {
    ControllerEvent event;
    {
      std::unique_lock<std::mutex> lock(q.mu);
      q.cv.wait(lock, stop, [&] { return !q.queue.empty() || q.closing; });
      if (stop.stop_requested() || q.queue.empty()) return;
      event = std::move(q.queue.front());
      q.queue.pop_front();
    }
    if (metrics_ != nullptr) {
      std::size_t depth;
      {
        std::lock_guard<std::mutex> lock(q.mu);
        depth = q.queue.size();
      }
      metrics_->SetEventSinkQueueDepth(q.options.name, static_cast<double>(depth));
    }
    auto backoff = q.options.initial_backoff;
    for (int attempt = 1;; ++attempt) {
      Status s = q.sink->Deliver(event, stop);
      if (s.ok()) {
        Account(q, "delivered");
        break;
      }
      if (s.code() != Code::kUnavailable || attempt >= q.options.max_attempts ||
          stop.stop_requested()) {
        Account(q, "failed");
        break;
      }
      {
        std::unique_lock<std::mutex> lock(q.mu);
        ++q.retries;
        // Waits out the backoff; only a stop ends it early.
        q.cv.wait_for(lock, stop, backoff, [] { return false; });
      }
      if (stop.stop_requested()) {
        Account(q, "failed");
        break;
      }
      backoff = std::min(backoff * 2, q.options.max_backoff);
    }
  }
}

void EventBus::Account(Queued& q, const char* what) {
  const bool delivered = what[0] == 'd';
  {
    std::lock_guard<std::mutex> lock(q.mu);
    (delivered ? q.delivered : q.failed) += 1;
  }
  if (metrics_ == nullptr) return;
  if (delivered) {
    metrics_->EventSinkDelivered(q.options.name);
  } else {
    metrics_->EventSinkFailed(q.options.name);
  }
}

std::vector<EventBus::SinkStats> EventBus::Stats() const {
  std::vector<SinkStats> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& s : inline_) out.push_back({s->options.name, s->delivered, 0, 0, 0, 0});
  for (const auto& q : queued_) {
    std::lock_guard<std::mutex> ql(q->mu);
    out.push_back(
        {q->options.name, q->delivered, q->dropped, q->failed, q->retries, q->queue.size()});
  }
  return out;
}

void EventBus::Stop(std::chrono::milliseconds drain) {
  std::vector<Queued*> queues;
  {
    std::lock_guard<std::mutex> publish(publish_mu_);
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    for (auto& q : queued_) queues.push_back(q.get());
  }
  for (Queued* q : queues) {
    {
      std::lock_guard<std::mutex> lock(q->mu);
      q->closing = true;
    }
    q->cv.notify_all();
  }
  const auto deadline = std::chrono::steady_clock::now() + drain;
  for (Queued* q : queues) {
    while (std::chrono::steady_clock::now() < deadline) {
      {
        std::lock_guard<std::mutex> lock(q->mu);
        if (q->queue.empty()) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  for (Queued* q : queues) {
    q->worker.request_stop();
    q->cv.notify_all();
  }
  for (Queued* q : queues) {
    if (q->worker.joinable()) q->worker.join();
  }
}

BusPublisher::BusPublisher(EventBus& bus, std::string environment)
    : bus_(bus), environment_(std::move(environment)) {}

void BusPublisher::RefChecked(const Result<std::string>& revision, double seconds) {
  ControllerEvent e;
  e.kind = ControllerEvent::Kind::kRefChecked;
  e.environment = environment_;
  e.ref = revision;
  e.seconds = seconds;
  bus_.Publish(std::move(e));
}

void BusPublisher::Decided(const std::string& revision, Decision decision, const std::string& why) {
  ControllerEvent e;
  e.kind = ControllerEvent::Kind::kDecided;
  e.environment = environment_;
  e.revision = revision;
  e.decision = decision;
  e.message = why;
  bus_.Publish(std::move(e));
}

void BusPublisher::PassStarted(const PassRequest& request) {
  ControllerEvent e;
  e.kind = ControllerEvent::Kind::kPassStarted;
  e.environment = environment_;
  e.pass_id = bus_.NewPassId();
  pass_id_ = e.pass_id;
  e.revision = request.revision;
  e.request = std::make_shared<const PassRequest>(request);
  bus_.Publish(std::move(e));
}

void BusPublisher::PassFinished(const PassRequest& request, const PassReport& report,
                                double seconds) {
  ControllerEvent e;
  e.kind = ControllerEvent::Kind::kPassFinished;
  e.environment = environment_;
  e.pass_id = pass_id_.exchange(0);
  e.revision = report.revision.empty() ? request.revision : report.revision;
  e.request = std::make_shared<const PassRequest>(request);
  e.report = std::make_shared<const PassReport>(report);
  e.seconds = seconds;
  bus_.Publish(std::move(e));
}

void BusPublisher::HealBudgetExhausted(const std::string& agent, const std::string& why) {
  ControllerEvent e;
  e.kind = ControllerEvent::Kind::kHealWithheld;
  e.environment = environment_;
  e.agent = agent;
  e.message = why;
  bus_.Publish(std::move(e));
}

void BusPublisher::DriftNoticed(const DriftNotice& notice) {
  ControllerEvent e;
  e.kind = ControllerEvent::Kind::kDriftNoticed;
  e.environment = environment_;
  e.notice = notice;
  bus_.Publish(std::move(e));
}

void BusPublisher::DriftPassForEvents(
    const std::vector<std::pair<std::string, std::string>>& agents) {
  ControllerEvent e;
  e.kind = ControllerEvent::Kind::kDriftPass;
  e.environment = environment_;
  e.drift_agents = agents;
  bus_.Publish(std::move(e));
}

void BusPublisher::PlanApproved(const PendingPlan& plan) {
  ControllerEvent e;
  e.kind = ControllerEvent::Kind::kPlanApproved;
  e.environment = environment_;
  e.revision = plan.revision;
  e.plan = std::make_shared<const PendingPlan>(plan);
  bus_.Publish(std::move(e));
}

void BusPublisher::OnEvent(const Event& event) {
  ControllerEvent e;
  e.kind = ControllerEvent::Kind::kChange;
  e.environment = environment_;
  e.pass_id = pass_id_.load();
  e.change = event;
  bus_.Publish(std::move(e));
}

void ListenerSink::Route(const std::string& environment, SchedulerListener* listener,
                         EventObserver* observer) {
  std::lock_guard<std::mutex> lock(mu_);
  routes_[environment] = {listener, observer};
}

Status ListenerSink::Deliver(const ControllerEvent& e, std::stop_token) {
  SchedulerListener* listener = nullptr;
  EventObserver* observer = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = routes_.find(e.environment);
    if (it == routes_.end()) return Status::Ok();
    std::tie(listener, observer) = it->second;
  }
  switch (e.kind) {
    case ControllerEvent::Kind::kRefChecked:
      if (listener != nullptr && e.ref) listener->RefChecked(*e.ref, e.seconds);
      break;
    case ControllerEvent::Kind::kDecided:
      if (listener != nullptr) listener->Decided(e.revision, e.decision, e.message);
      break;
    case ControllerEvent::Kind::kPassStarted:
      if (listener != nullptr && e.request) listener->PassStarted(*e.request);
      break;
    case ControllerEvent::Kind::kPassFinished:
      if (listener != nullptr && e.request && e.report)
        listener->PassFinished(*e.request, *e.report, e.seconds);
      break;
    case ControllerEvent::Kind::kHealWithheld:
      if (listener != nullptr) listener->HealBudgetExhausted(e.agent, e.message);
      break;
    case ControllerEvent::Kind::kDriftNoticed:
      if (listener != nullptr) listener->DriftNoticed(e.notice);
      break;
    case ControllerEvent::Kind::kDriftPass:
      if (listener != nullptr) listener->DriftPassForEvents(e.drift_agents);
      break;
    case ControllerEvent::Kind::kPlanApproved:
      if (listener != nullptr && e.plan) listener->PlanApproved(*e.plan);
      break;
    case ControllerEvent::Kind::kChange:
      if (observer != nullptr) observer->OnEvent(e.change);
      break;
  }
  return Status::Ok();
}

}  // namespace reconcile::controller
