#include "controller/event_bus.h"

#include <atomic>
#include <latch>
#include <mutex>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "controller/metrics.h"

namespace reconcile::controller {
namespace {

// Records what it is given; may hold deliveries until released, and fail
// the first `failures` of them with `code`.
class RecordingSink final : public EventSink {
 public:
  Status Deliver(const ControllerEvent& e, std::stop_token stop) override {
    if (hold_) {
      if (!entered_once_.exchange(true)) entered_.count_down();
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, stop, [&] { return released_; });
      if (stop.stop_requested() && !released_) return Status::Cancelled("stopped");
    }
    std::lock_guard<std::mutex> lock(mu_);
    ++attempts_;
    if (failures_ > 0) {
      --failures_;
      return Status(code_, "try again");
    }
    seen_.push_back(e);
    return Status::Ok();
  }
  void Hold() { hold_ = true; }
  void WaitEntered() { entered_.wait(); }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      released_ = true;
    }
    cv_.notify_all();
  }
  void FailFirst(int n, Code code) {
    failures_ = n;
    code_ = code;
  }
  std::vector<ControllerEvent> Seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }
  int Attempts() {
    std::lock_guard<std::mutex> lock(mu_);
    return attempts_;
  }

 private:
  std::atomic<bool> hold_{false};
  std::latch entered_{1};
  std::atomic<bool> entered_once_{false};
  std::mutex mu_;
  std::condition_variable_any cv_;
  bool released_ = false;
  int failures_ = 0;
  Code code_ = Code::kUnavailable;
  int attempts_ = 0;
  std::vector<ControllerEvent> seen_;
};

ControllerEvent Decided(const std::string& why) {
  ControllerEvent e;
  e.kind = ControllerEvent::Kind::kDecided;
  e.environment = "default";
  e.message = why;
  return e;
}

// Waits (without a time limit: ctest's own timeout ends a hang) until `pred`.
template <typename Pred>
void Until(Pred pred) {
  while (!pred()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

const EventBus::SinkStats& StatsOf(const std::vector<EventBus::SinkStats>& all,
                                   const std::string& name) {
  for (const auto& s : all) {
    if (s.name == name) return s;
  }
  FAIL("no sink " << name);
  return all.front();
}

TEST_CASE("event bus: an inline sink sees every event in order, before Publish returns") {
  EventBus bus;
  auto sink = std::make_shared<RecordingSink>();
  bus.Add(sink, {.name = "log", .inline_delivery = true});
  for (int i = 0; i < 5; ++i) {
    bus.Publish(Decided("d" + std::to_string(i)));
    REQUIRE(sink->Seen().size() == static_cast<std::size_t>(i + 1));
  }
  auto seen = sink->Seen();
  for (std::size_t i = 0; i < seen.size(); ++i) {
    CHECK(seen[i].sequence == i + 1);
    CHECK(seen[i].message == "d" + std::to_string(i));
  }
}

TEST_CASE("event bus: a stuck queued sink never blocks Publish; the oldest events are dropped") {
  Metrics metrics(std::vector<std::string>{});
  EventBus bus(&metrics);
  auto slow = std::make_shared<RecordingSink>();
  slow->Hold();
  auto fast = std::make_shared<RecordingSink>();
  bus.Add(slow, {.name = "slack:ops", .capacity = 10});
  bus.Add(fast, {.name = "log", .inline_delivery = true});
  bus.Publish(Decided("first"));
  slow->WaitEntered();  // the worker holds "first"; the queue is empty
  for (int i = 0; i < 100; ++i) bus.Publish(Decided("e" + std::to_string(i)));
  // Publish returned 100 times while the sink was stuck.
  CHECK(fast->Seen().size() == 101);
  auto stats = bus.Stats();
  CHECK(StatsOf(stats, "slack:ops").dropped == 90);
  CHECK(StatsOf(stats, "slack:ops").depth == 10);
  std::string text = metrics.Render();
  CHECK(text.find("reconcile_event_sink_dropped_total{sink=\"slack:ops\"} 90") !=
        std::string::npos);
  CHECK(text.find("reconcile_event_sink_queue_depth{sink=\"slack:ops\"} 10") != std::string::npos);
  slow->Release();
  Until([&] { return slow->Seen().size() == 11; });
  auto seen = slow->Seen();
  CHECK(seen[0].message == "first");
  for (int i = 1; i <= 10; ++i) CHECK(seen[i].message == "e" + std::to_string(89 + i));
  Until([&] { return StatsOf(bus.Stats(), "slack:ops").delivered == 11; });
  CHECK(metrics.Render().find("reconcile_event_sink_delivered_total{sink=\"slack:ops\"} 11") !=
        std::string::npos);
}

TEST_CASE("event bus: kUnavailable is retried with backoff; other errors fail at once") {
  Metrics metrics(std::vector<std::string>{});
  EventBus bus(&metrics);
  auto flaky = std::make_shared<RecordingSink>();
  flaky->FailFirst(2, Code::kUnavailable);
  bus.Add(flaky, {.name = "webhook",
                  .max_attempts = 3,
                  .initial_backoff = std::chrono::milliseconds(1),
                  .max_backoff = std::chrono::milliseconds(2)});
  auto broken = std::make_shared<RecordingSink>();
  broken->FailFirst(1, Code::kInvalid);
  bus.Add(broken, {.name = "github", .initial_backoff = std::chrono::milliseconds(1)});
  auto down = std::make_shared<RecordingSink>();
  down->FailFirst(100, Code::kUnavailable);
  bus.Add(down,
          {.name = "otlp", .max_attempts = 4, .initial_backoff = std::chrono::milliseconds(1)});
  bus.Publish(Decided("x"));
  Until([&] {
    auto s = bus.Stats();
    return StatsOf(s, "webhook").delivered == 1 && StatsOf(s, "github").failed == 1 &&
           StatsOf(s, "otlp").failed == 1;
  });
  auto s = bus.Stats();
  CHECK(StatsOf(s, "webhook").retries == 2);
  CHECK(flaky->Seen().size() == 1);
  CHECK(StatsOf(s, "github").retries == 0);
  CHECK(broken->Attempts() == 1);
  CHECK(broken->Seen().empty());
  CHECK(down->Attempts() == 4);
  CHECK(StatsOf(s, "otlp").retries == 3);
  std::string text = metrics.Render();
  CHECK(text.find("reconcile_event_sink_failures_total{sink=\"otlp\"} 1") != std::string::npos);
  CHECK(text.find("reconcile_event_sink_failures_total{sink=\"webhook\"} 0") != std::string::npos);
}

TEST_CASE("event bus: Stop drains what is queued, and ends a long backoff at once") {
  EventBus bus;
  auto sink = std::make_shared<RecordingSink>();
  bus.Add(sink, {.name = "a"});
  auto down = std::make_shared<RecordingSink>();
  down->FailFirst(1000, Code::kUnavailable);
  bus.Add(down, {.name = "b", .max_attempts = 1000, .initial_backoff = std::chrono::hours(1)});
  for (int i = 0; i < 50; ++i) bus.Publish(Decided("e" + std::to_string(i)));
  Until([&] { return down->Attempts() >= 1; });  // b now sleeps for an hour
  bus.Stop(std::chrono::seconds(30));            // returns once a is drained and b told to stop
  CHECK(sink->Seen().size() == 50);
  CHECK(down->Attempts() == 1);
  auto s = bus.Stats();
  CHECK(StatsOf(s, "b").failed >= 1);
  bus.Publish(Decided("after stop"));  // ignored
  CHECK(sink->Seen().size() == 50);
}

// Records the listener calls the ListenerSink replays.
class RecordingListener final : public SchedulerListener, public EventObserver {
 public:
  std::vector<std::string> calls;
  void RefChecked(const Result<std::string>& r, double) override {
    calls.push_back("ref " + (r.ok() ? *r : r.status().message()));
  }
  void Decided(const std::string& revision, Decision, const std::string& why) override {
    calls.push_back("decided " + revision + " " + why);
  }
  void PassStarted(const PassRequest& request) override {
    calls.push_back("started " + request.revision);
  }
  void PassFinished(const PassRequest&, const PassReport& report, double) override {
    calls.push_back("finished " + report.revision + " changes " + std::to_string(report.changes));
  }
  void HealBudgetExhausted(const std::string& agent, const std::string&) override {
    calls.push_back("withheld " + agent);
  }
  void OnEvent(const Event& e) override { calls.push_back("event " + e.address); }
};

TEST_CASE("event bus: BusPublisher and ListenerSink carry a scheduler's calls, per environment") {
  EventBus bus;
  auto listeners = std::make_shared<ListenerSink>();
  bus.Add(listeners, {.name = "log", .inline_delivery = true});
  auto queued = std::make_shared<RecordingSink>();
  bus.Add(queued, {.name = "q"});
  RecordingListener staging, root;
  listeners->Route("staging", &staging, &staging);
  listeners->Route("", &root, nullptr);
  BusPublisher to_staging(bus, "staging");
  BusPublisher to_prod(bus, "prod");  // no route: only the queued sink sees it
  BusPublisher to_root(bus, "");

  to_root.RefChecked(std::string("abc"), 0.1);
  PassRequest request;
  request.revision = "abc";
  to_staging.PassStarted(request);
  Event change;
  change.type = Event::Type::kChangeStarted;
  change.address = "agent.web";
  to_staging.OnEvent(change);
  to_prod.PassStarted(request);
  PassReport report;
  report.revision = "abc";
  report.changes = 2;
  to_staging.PassFinished(request, report, 1.5);
  to_staging.HealBudgetExhausted("web", "healed 3 times");

  CHECK(root.calls == std::vector<std::string>{"ref abc"});
  CHECK(staging.calls == std::vector<std::string>{"started abc", "event agent.web",
                                                  "finished abc changes 2", "withheld web"});
  Until([&] { return queued->Seen().size() == 6; });
  auto seen = queued->Seen();
  // The staging pass's events share one id; prod's pass has another.
  CHECK(seen[1].kind == ControllerEvent::Kind::kPassStarted);
  CHECK(seen[1].pass_id != 0);
  CHECK(seen[2].pass_id == seen[1].pass_id);
  CHECK(seen[4].pass_id == seen[1].pass_id);
  CHECK(seen[3].environment == "prod");
  CHECK(seen[3].pass_id != seen[1].pass_id);
  CHECK(seen[4].report->changes == 2);
  CHECK(seen[4].seconds == 1.5);
  CHECK(std::string(ControllerEventKindName(seen[5].kind)) == "heal-withheld");
}

}  // namespace
}  // namespace reconcile::controller
