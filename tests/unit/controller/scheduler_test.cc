// Scheduler on a real io_context with a fake source and provider: ref
// checks, coalescing, invalid revisions, stop.
#include "scheduler.h"

#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "fakes/fake_source.h"
#include "fakes/temp_dir.h"
#include "unit/engine/test_world.h"

namespace reconcile::controller {
namespace {

using namespace std::chrono_literals;
using testing::FakeProvider;
using testing::FakeSource;
using testing::MakeAgent;
using testing::MakeDesired;
using testing::TempDir;

class CountingListener final : public SchedulerListener {
 public:
  void RefChecked(const Result<std::string>&, double) override { ++checks; }
  void Decided(const std::string&, Decision d, const std::string&) override {
    std::lock_guard<std::mutex> lock(mu);
    decisions.push_back(d);
  }
  void PassFinished(const PassRequest&, const PassReport& r, double) override {
    std::lock_guard<std::mutex> lock(mu);
    results.push_back(r.status.code());
    ++passes;
  }
  std::atomic<int> checks{0};
  std::atomic<int> passes{0};
  std::mutex mu;
  std::vector<Decision> decisions;
  std::vector<Code> results;
};

struct Rig {
  TempDir tmp;
  FakeSource source;
  FakeProvider provider;
  ProviderRegistry registry;
  std::unique_ptr<StateStore> store = NewFileStateStore(tmp.path() / "state");
  std::unique_ptr<Clock> clock = NewSystemClock();
  CountingListener listener;
  boost::asio::io_context io;
  std::unique_ptr<Scheduler> scheduler;

  explicit Rig(Millis interval = 10s) {
    testing::RegisterFake(registry, &provider);
    ReconcilerDeps d;
    d.source = &source;
    d.store = store.get();
    d.providers = &registry;
    d.clock = clock.get();
    SchedulerOptions o;
    o.interval = interval;
    o.policy.drift_interval = 1h;
    scheduler = std::make_unique<Scheduler>(io, d, o, &listener);
  }
  // Passes the scheduler has finished (recorded on the I/O thread).
  int Passes() { return scheduler->StatusJson()["passes"].get<int>(); }
  // Runs the io_context until `done` holds or 5 s pass.
  bool RunUntil(const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io.run_for(5ms);
      if (io.stopped()) io.restart();
    }
    return done();
  }
};

TEST_CASE("scheduler: the first check applies the head revision and becomes ready") {
  Rig rig;
  rig.source.Set("c1", MakeDesired({MakeAgent("a")}));
  std::string why;
  CHECK_FALSE(rig.scheduler->Ready(&why));
  rig.scheduler->Start();
  REQUIRE(rig.RunUntil([&] { return rig.Passes() >= 1; }));
  CHECK(rig.scheduler->Ready(&why));
  auto status = rig.scheduler->StatusJson();
  CHECK(status["revision"]["applied"] == "c1");
  CHECK(status["agents"].size() == 1);
  CHECK(status["agents"][0]["name"] == "a");
  CHECK(status["lastPass"]["result"] == "success");
}

TEST_CASE("scheduler: triggers during a check coalesce into exactly one more") {
  Rig rig;
  rig.source.Set("c1", MakeDesired({MakeAgent("a")}));
  rig.source.CloseGate();
  rig.scheduler->Start();
  REQUIRE(rig.RunUntil([&] { return rig.source.resolves() == 1; }));
  for (int i = 0; i < 20; ++i) rig.scheduler->Trigger("webhook", "webhook:github");
  rig.io.run_for(50ms);
  rig.source.OpenGate();
  REQUIRE(rig.RunUntil([&] { return rig.listener.checks >= 2; }));
  rig.io.run_for(200ms);
  CHECK(rig.source.resolves() == 2);  // the first, plus one for all 20 triggers
  CHECK(rig.listener.passes == 1);    // the second check found nothing new
}

// Records the audit entries a scheduler's passes append.
class RecordingAudit final : public AuditSink {
 public:
  Status Check() override { return Status::Ok(); }
  Status Append(AuditEntry entry) override {
    std::lock_guard<std::mutex> lock(mu_);
    entries_.push_back(std::move(entry));
    return Status::Ok();
  }
  std::vector<AuditEntry> entries() {
    std::lock_guard<std::mutex> lock(mu_);
    return entries_;
  }

 private:
  std::mutex mu_;
  std::vector<AuditEntry> entries_;
};

TEST_CASE("scheduler: the audit entry names who asked for the pass (controller, webhook)") {
  TempDir tmp;
  FakeSource source;
  FakeProvider provider;
  ProviderRegistry registry;
  testing::RegisterFake(registry, &provider);
  auto store = NewFileStateStore(tmp.path() / "state");
  auto clock = NewSystemClock();
  RecordingAudit audit;
  CountingListener listener;
  boost::asio::io_context io;
  ReconcilerDeps d;
  d.source = &source;
  d.store = store.get();
  d.providers = &registry;
  d.clock = clock.get();
  d.audit = &audit;
  SchedulerOptions o;
  o.interval = 1h;  // only Start and the triggers check the ref
  o.policy.drift_interval = 1h;
  Scheduler scheduler(io, d, o, &listener);
  auto run_until = [&](const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io.run_for(5ms);
      if (io.stopped()) io.restart();
    }
    return done();
  };
  source.Set("c1", MakeDesired({MakeAgent("a")}));
  scheduler.Start();
  REQUIRE(run_until([&] { return audit.entries().size() == 1; }));
  CHECK(audit.entries()[0].actor == "controller");
  CHECK(audit.entries()[0].revision == "c1");

  source.Set("c2", MakeDesired({MakeAgent("a"), MakeAgent("b")}));
  scheduler.Trigger("github push to refs/heads/main", "webhook:github");
  REQUIRE(run_until([&] { return audit.entries().size() == 2; }));
  CHECK(audit.entries()[1].actor == "webhook:github");
  CHECK(audit.entries()[1].revision == "c2");

  // The next check that nobody asked for is the controller's again.
  source.Set("c3", MakeDesired({MakeAgent("b")}));
  scheduler.Trigger("a poll", "");
  REQUIRE(run_until([&] { return audit.entries().size() == 3; }));
  CHECK(audit.entries()[2].actor == "controller");
  bool stopped = false;
  scheduler.Stop([&] { stopped = true; });
  run_until([&] { return stopped; });
}

TEST_CASE("scheduler: an invalid commit is not applied and not retried; a new one is") {
  Rig rig(20ms);  // poll fast
  rig.source.Set("c1", MakeDesired({MakeAgent("a")}));
  rig.scheduler->Start();
  REQUIRE(rig.RunUntil([&] { return rig.Passes() >= 1; }));
  rig.source.SetInvalid("c2", "must be between 1 and 65535, got 99999");
  REQUIRE(rig.RunUntil([&] { return rig.Passes() >= 2; }));
  int loads = rig.source.loads();
  REQUIRE(rig.RunUntil([&] { return rig.listener.checks >= 8; }));  // several more polls
  CHECK(rig.source.loads() == loads);                               // never loaded again
  CHECK(rig.listener.passes == 2);
  auto status = rig.scheduler->StatusJson();
  CHECK(status["revision"]["applied"] == "c1");
  CHECK(status["revision"]["invalid"] == "c2");
  CHECK(status["lastPass"]["result"] == "invalid");
  CHECK(status["lastPass"]["diagnostics"][0].get<std::string>().find("agents.yaml:3:5") == 0);
  CHECK(status["agents"].size() == 1);  // the last good revision's agents
  rig.source.Set("c3", MakeDesired({MakeAgent("a"), MakeAgent("b")}));
  REQUIRE(rig.RunUntil([&] { return rig.Passes() >= 3; }));
  REQUIRE(rig.RunUntil([&] { return rig.scheduler->StatusJson()["revision"]["applied"] == "c3"; }));
  CHECK(rig.scheduler->StatusJson()["agents"].size() == 2);
}

class BudgetListener final : public SchedulerListener {
 public:
  void RefChecked(const Result<std::string>&, double) override {}
  void Decided(const std::string&, Decision, const std::string&) override {}
  void PassFinished(const PassRequest& request, const PassReport&, double) override {
    drift_passes += request.kind == PassRequest::Kind::kDrift;
  }
  void HealBudgetExhausted(const std::string& agent, const std::string& why) override {
    std::lock_guard<std::mutex> lock(mu);
    exhausted.emplace_back(agent, why);
  }
  std::atomic<int> drift_passes{0};
  std::mutex mu;
  std::vector<std::pair<std::string, std::string>> exhausted;
};

TEST_CASE("scheduler: past the heal budget an agent is only reported, and the status says why") {
  Rig rig(20ms);
  ReconcilerDeps d;
  d.source = &rig.source;
  d.store = rig.store.get();
  d.providers = &rig.registry;
  d.clock = rig.clock.get();
  SchedulerOptions o;
  o.interval = 20ms;
  o.policy.drift_interval = 20ms;
  o.policy.heal_budget = 2;
  BudgetListener listener;
  rig.scheduler = std::make_unique<Scheduler>(rig.io, d, o, &listener);
  Agent a = MakeAgent("crashy");
  a.drift = DriftMode::kHeal;
  rig.source.Set("c1", MakeDesired({a}));
  rig.scheduler->Start();
  REQUIRE(rig.RunUntil([&] { return rig.Passes() >= 1; }));
  auto creates = [&rig] {
    int n = 0;
    for (const std::string& c : rig.provider.calls()) n += c == "agent.crashy:create";
    return n;
  };
  REQUIRE(creates() == 1);
  // It "crashes" (is gone) three times; the first two are healed.
  for (int heal = 1; heal <= 2; ++heal) {
    rig.provider.Remove("crashy");
    REQUIRE(rig.RunUntil([&] { return creates() == 1 + heal; }));
    CHECK(rig.scheduler->StatusJson()["agents"][0]["driftReason"] == "");
  }
  rig.provider.Remove("crashy");
  const int passes = listener.drift_passes;
  REQUIRE(rig.RunUntil([&] { return listener.drift_passes >= passes + 3; }));
  CHECK(creates() == 3);  // not healed a third time
  auto agent = rig.scheduler->StatusJson()["agents"][0];
  CHECK(agent["drift"] == "reported");
  CHECK(agent["driftReason"].get<std::string>().find("heal budget exhausted: healed 2 times") == 0);
  std::lock_guard<std::mutex> lock(listener.mu);
  REQUIRE(!listener.exhausted.empty());
  CHECK(listener.exhausted[0].first == "crashy");
  CHECK(listener.exhausted[0].second == agent["driftReason"]);
}

TEST_CASE("scheduler: a rollback's pin is kept until a new commit, which ends it") {
  Rig rig(20ms);
  const Agent one = MakeAgent("a", "one"), two = MakeAgent("a", "two");
  ReconcilerDeps d;
  d.source = &rig.source;
  d.store = rig.store.get();
  d.providers = &rig.registry;
  d.clock = rig.clock.get();
  rig.source.Set("c1", MakeDesired({one}));
  REQUIRE(RunPass(d, {}).status.ok());
  rig.source.Set("c2", MakeDesired({two}));
  REQUIRE(RunPass(d, {}).status.ok());
  {  // `reconcile rollback --to 1`, as the CLI does it
    Reconciler r(d);
    REQUIRE(r.Fetch().ok());
    REQUIRE(r.Lock("reconcile rollback").ok());
    REQUIRE(r.ReadState().ok());
    auto history = rig.store->LoadHistory();
    REQUIRE(history.ok());
    REQUIRE(r.PinTo(*history, *FindRollbackEntry(*history, r.recorded(), "1")).ok());
    REQUIRE(r.Observe().ok());
    REQUIRE(r.ApplyPlan(r.MakePlan(), {}).status.ok());
  }
  auto running = [&rig] {
    auto instances = rig.provider.Observe({}).instances;
    return instances.empty() ? std::string() : instances[0].spec_hash;
  };
  REQUIRE(running() == testing::HashOf(one));
  const size_t calls = rig.provider.calls().size();
  // The controller starts at c2 (the branch head) and keeps the pin.
  rig.scheduler->Start();
  REQUIRE(rig.RunUntil([&] { return rig.Passes() >= 1; }));
  REQUIRE(rig.RunUntil([&] { return rig.listener.checks >= 4; }));  // more polls
  auto status = rig.scheduler->StatusJson();
  CHECK(status["revision"]["applied"] == "c2");
  CHECK(status["pin"]["revision"] == "c1");
  CHECK(status["pin"]["desiredRevision"] == "c2");
  CHECK(running() == testing::HashOf(one));
  CHECK(rig.provider.calls().size() == calls);
  // A new commit ends the pin.
  const Agent three = MakeAgent("a", "three");
  rig.source.Set("c3", MakeDesired({three}));
  REQUIRE(rig.RunUntil([&] { return rig.scheduler->StatusJson()["revision"]["applied"] == "c3"; }));
  CHECK(rig.scheduler->StatusJson()["pin"].is_null());
  CHECK(running() == testing::HashOf(three));
  CHECK_FALSE(rig.store->Load()->pin.has_value());
}

TEST_CASE("scheduler: an unreachable source is reported and makes it unready") {
  Rig rig(20ms);
  rig.source.Set("c1", MakeDesired({MakeAgent("a")}));
  rig.scheduler->Start();
  REQUIRE(rig.RunUntil([&] { return rig.Passes() >= 1; }));
  rig.source.FailResolve(Status::Unavailable("connection refused"));
  int checks = rig.listener.checks;
  REQUIRE(rig.RunUntil([&] { return rig.listener.checks >= checks + 2; }));
  std::string why;
  CHECK_FALSE(rig.scheduler->Ready(&why));
  CHECK(why.find("connection refused") != std::string::npos);
  CHECK(rig.scheduler->StatusJson()["sourceError"] == "connection refused");
}

TEST_CASE("scheduler: Stop ends a pass blocked in a wait and calls back") {
  Rig rig;
  rig.source.Set("c1", MakeDesired({MakeAgent("a")}));
  rig.source.CloseGate();  // the check waits until stopped
  rig.scheduler->Start();
  REQUIRE(rig.RunUntil([&] { return rig.source.resolves() == 1; }));
  bool stopped = false;
  auto t = std::chrono::steady_clock::now();
  rig.scheduler->Stop([&] { stopped = true; });
  REQUIRE(rig.RunUntil([&] { return stopped; }));
  CHECK(std::chrono::steady_clock::now() - t < 2s);
  CHECK(rig.listener.passes == 0);
}

TEST_CASE("scheduler: Pause ends the running check, ignores triggers; Resume checks again") {
  Rig rig;
  rig.source.Set("c1", MakeDesired({MakeAgent("a")}));
  rig.source.CloseGate();  // the check waits until stopped (the pause's stop)
  rig.scheduler->Start();
  REQUIRE(rig.RunUntil([&] { return rig.source.resolves() == 1; }));
  bool paused = false;
  auto t = std::chrono::steady_clock::now();
  rig.scheduler->Pause([&] { paused = true; });
  REQUIRE(rig.RunUntil([&] { return paused; }));
  CHECK(std::chrono::steady_clock::now() - t < 2s);
  CHECK(rig.listener.passes == 0);
  rig.source.OpenGate();
  rig.scheduler->Trigger("a webhook while paused", "webhook:github");
  auto quiet = std::chrono::steady_clock::now() + 300ms;
  rig.RunUntil([&] { return std::chrono::steady_clock::now() > quiet; });
  CHECK(rig.source.resolves() == 1);  // no check while paused
  rig.scheduler->Resume();
  REQUIRE(rig.RunUntil([&] { return rig.Passes() >= 1; }));
  CHECK(rig.source.resolves() == 2);
  CHECK(rig.scheduler->StatusJson()["revision"]["applied"] == "c1");
}

TEST_CASE("scheduler: start_paused runs nothing until Resume; Resume after Stop does nothing") {
  TempDir tmp;
  FakeSource source;
  source.Set("c1", MakeDesired({MakeAgent("a")}));
  FakeProvider provider;
  ProviderRegistry registry;
  testing::RegisterFake(registry, &provider);
  auto store = NewFileStateStore(tmp.path() / "state");
  auto clock = NewSystemClock();
  CountingListener listener;
  boost::asio::io_context io;
  ReconcilerDeps d;
  d.source = &source;
  d.store = store.get();
  d.providers = &registry;
  d.clock = clock.get();
  SchedulerOptions o;
  o.interval = 20ms;
  o.start_paused = true;
  Scheduler scheduler(io, d, o, &listener);
  scheduler.Trigger("ignored while paused", "");
  io.run_for(300ms);
  io.restart();
  CHECK(source.resolves() == 0);
  scheduler.Resume();
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (listener.passes < 1 && std::chrono::steady_clock::now() < deadline) {
    io.run_for(5ms);
    if (io.stopped()) io.restart();
  }
  CHECK(listener.passes == 1);
  bool stopped = false;
  scheduler.Stop([&] { stopped = true; });
  scheduler.Resume();
  int resolves = -1;
  deadline = std::chrono::steady_clock::now() + 1s;
  while (std::chrono::steady_clock::now() < deadline) {
    io.run_for(5ms);
    if (io.stopped()) io.restart();
    if (stopped && resolves < 0) resolves = source.resolves();
  }
  CHECK(stopped);
  CHECK(source.resolves() == resolves);  // nothing after the stop
}

TEST_CASE("scheduler: an agent's failed change shows on the agent with its file:line") {
  Rig rig(20ms);
  Agent a = MakeAgent("a");
  a.location = {"agents/a.yaml", 4, 1};
  rig.source.Set("c1", MakeDesired({a}));
  rig.scheduler->Start();
  REQUIRE(rig.RunUntil([&] { return rig.Passes() >= 1; }));
  auto status = rig.scheduler->StatusJson();
  REQUIRE(status["agents"].size() == 1);
  CHECK(status["agents"][0]["lastError"].is_null());

  rig.provider.fail["agent.a"] = Status::Failed("the engine refused the container");
  Agent changed = MakeAgent("a", "hello again");
  changed.location = {"agents/a.yaml", 7, 1};  // moved down in the new commit
  rig.source.Set("c2", MakeDesired({changed}));
  REQUIRE(rig.RunUntil([&] { return rig.Passes() >= 2; }));
  status = rig.scheduler->StatusJson();
  REQUIRE(status["agents"].size() == 1);
  const auto& error = status["agents"][0]["lastError"];
  REQUIRE(error.is_object());
  CHECK(error["message"].get<std::string>().find("agent.a") != std::string::npos);
  CHECK(error["at"] == "agents/a.yaml:7");  // where the failing revision writes it
}

}  // namespace
}  // namespace reconcile::controller
