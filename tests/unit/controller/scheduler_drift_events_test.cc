// Scheduler::DriftNotice on a real io_context with a fake source and
// provider: a watch's notice runs a drift pass at once (drift.mode and the
// heal budget as for the interval scan), bursts coalesce, notices about
// agents the tree does not run are dropped, and the notices of the pass's
// own changes make one more pass that finds nothing, never a loop.
#include <doctest/doctest.h>

#include <atomic>
#include <mutex>

#include <boost/asio/io_context.hpp>

#include "fakes/fake_source.h"
#include "fakes/temp_dir.h"
#include "scheduler.h"
#include "unit/engine/test_world.h"

namespace reconcile::controller {
namespace {

using namespace std::chrono_literals;
using testing::FakeProvider;
using testing::FakeSource;
using testing::MakeAgent;
using testing::MakeDesired;
using testing::TempDir;

class EventListener final : public SchedulerListener {
 public:
  void RefChecked(const Result<std::string>&, double) override { ++checks; }
  void Decided(const std::string&, Decision, const std::string&) override {}
  void PassStarted(const PassRequest& request) override {
    if (request.kind == PassRequest::Kind::kDrift) ++drift_started;
    if (on_drift_start && request.kind == PassRequest::Kind::kDrift) on_drift_start();
  }
  void PassFinished(const PassRequest& request, const PassReport&, double) override {
    drift_passes += request.kind == PassRequest::Kind::kDrift;
  }
  void DriftNoticed(const DriftNotice&) override { ++noticed; }
  void DriftPassForEvents(const std::vector<std::pair<std::string, std::string>>& a) override {
    std::lock_guard<std::mutex> lock(mu);
    fired.push_back(a);
  }
  std::function<void()> on_drift_start;  // on the pool thread
  std::atomic<int> checks{0}, drift_started{0}, drift_passes{0}, noticed{0};
  std::mutex mu;
  std::vector<std::vector<std::pair<std::string, std::string>>> fired;
};

struct EventRig {
  TempDir tmp;
  FakeSource source;
  FakeProvider provider;
  ProviderRegistry registry;
  std::unique_ptr<StateStore> store = NewFileStateStore(tmp.path() / "state");
  std::unique_ptr<Clock> clock = NewSystemClock();
  EventListener listener;
  boost::asio::io_context io;
  std::unique_ptr<Scheduler> scheduler;

  explicit EventRig(int heal_budget = 3) {
    testing::RegisterFake(registry, &provider);
    ReconcilerDeps d;
    d.source = &source;
    d.store = store.get();
    d.providers = &registry;
    d.clock = clock.get();
    SchedulerOptions o;
    o.interval = 1h;  // only notices can explain a drift pass
    o.policy.drift_interval = 1h;
    o.policy.heal_budget = heal_budget;
    o.events = {.debounce = 20ms, .min_gap = 50ms};
    scheduler = std::make_unique<Scheduler>(io, d, o, &listener);
    Agent a = MakeAgent("web");
    a.drift = DriftMode::kHeal;
    source.Set("c1", MakeDesired({a, MakeAgent("side")}));
    scheduler->Start();
    REQUIRE(RunUntil([&] { return Passes() >= 1; }));
  }
  int Passes() { return scheduler->StatusJson()["passes"].get<int>(); }
  int Creates(const std::string& agent) {
    int n = 0;
    for (const std::string& c : provider.calls()) n += c == "agent." + agent + ":create";
    return n;
  }
  void Notice(const std::string& agent, const std::string& what = "container stopped") {
    DriftNotice n;
    n.agent = agent;
    n.what = what;
    scheduler->DriftNotice(n);
  }
  bool RunUntil(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io.run_for(5ms);
      if (io.stopped()) io.restart();
    }
    return done();
  }
  void Settle(std::chrono::milliseconds d = 300ms) {
    RunUntil([] { return false; }, d);
  }
};

TEST_CASE("scheduler events: a notice heals a drift.mode heal agent at once") {
  EventRig rig;
  REQUIRE(rig.Creates("web") == 1);
  rig.provider.Remove("web");
  // The burst of one `docker stop`.
  for (const char* what : {"container killed", "container exited", "container stopped"}) {
    rig.Notice("web", what);
  }
  REQUIRE(rig.RunUntil([&] { return rig.Creates("web") == 2; }));
  REQUIRE(rig.RunUntil([&] { return rig.listener.drift_passes >= 1; }));
  rig.Settle();
  CHECK(rig.listener.drift_passes == 1);  // one pass for the burst
  auto status = rig.scheduler->StatusJson();
  CHECK(status["lastPass"]["kind"] == "drift");
  CHECK(status["lastPass"]["trigger"] == "event");
  CHECK(status["driftWatch"]["events"] == 3);
  CHECK(status["driftWatch"]["eventPasses"] == 1);
  CHECK(status["agents"][1]["name"] == "web");
  CHECK(status["agents"][1]["drift"] == "healed");
  std::lock_guard<std::mutex> lock(rig.listener.mu);
  REQUIRE(rig.listener.fired.size() == 1);
  REQUIRE(rig.listener.fired[0].size() == 1);
  CHECK(rig.listener.fired[0][0].first == "web");
  CHECK(rig.listener.fired[0][0].second == "container stopped");
}

TEST_CASE("scheduler events: a report agent is reported, not healed") {
  EventRig rig;
  rig.provider.Remove("side");
  rig.Notice("side", "container removed");
  REQUIRE(rig.RunUntil([&] { return rig.listener.drift_passes >= 1; }));
  rig.Settle();
  CHECK(rig.Creates("side") == 1);
  auto status = rig.scheduler->StatusJson();
  CHECK(status["agents"][0]["name"] == "side");
  CHECK(status["agents"][0]["drift"] == "reported");
}

TEST_CASE("scheduler events: notices about agents the tree does not run are dropped") {
  EventRig rig;
  rig.Notice("someone-elses");
  rig.Settle();
  CHECK(rig.listener.drift_started == 0);
  CHECK(rig.listener.noticed == 0);
  CHECK(rig.scheduler->StatusJson()["driftWatch"]["events"] == 0);
}

TEST_CASE("scheduler events: the pass's own changes make one more pass, never a loop") {
  EventRig rig;
  // What the engine reports of the heal itself (create, start), sent while
  // the healing pass runs; a pass that changes nothing makes no events.
  std::atomic<bool> healing{true};
  rig.listener.on_drift_start = [&] {
    if (!healing.exchange(false)) return;
    rig.Notice("web", "container created");
    rig.Notice("web", "container started");
  };
  rig.provider.Remove("web");
  rig.Notice("web");
  REQUIRE(rig.RunUntil([&] { return rig.listener.drift_passes >= 2; }));
  rig.Settle(500ms);
  CHECK(rig.Creates("web") == 2);         // healed once
  CHECK(rig.listener.drift_passes == 2);  // the heal, and one that found nothing
  CHECK(rig.scheduler->StatusJson()["driftWatch"]["eventPasses"] == 2);
}

TEST_CASE("scheduler events: past the heal budget a crash loop is reported and stops costing") {
  EventRig rig(/*heal_budget=*/2);
  for (int heal = 1; heal <= 2; ++heal) {
    rig.provider.Remove("web");
    rig.Notice("web", "container exited");
    REQUIRE(rig.RunUntil([&] { return rig.Creates("web") == 1 + heal; }));
  }
  rig.provider.Remove("web");
  rig.Notice("web", "container exited");
  REQUIRE(rig.RunUntil(
      [&] { return rig.scheduler->StatusJson()["agents"][1]["drift"] == "reported"; }));
  const int passes = rig.listener.drift_passes;
  rig.Settle(500ms);
  CHECK(rig.Creates("web") == 3);
  CHECK(rig.listener.drift_passes == passes);  // nothing more happens by itself
  auto agent = rig.scheduler->StatusJson()["agents"][1];
  CHECK(agent["driftReason"].get<std::string>().find("heal budget exhausted") == 0);
}

TEST_CASE("scheduler events: a resync runs a drift pass; a lost feed alone does not") {
  EventRig rig;
  DriftNotice lost;
  lost.kind = DriftNotice::Kind::kLost;
  lost.what = "unix:///x: the Engine closed the event stream";
  rig.scheduler->DriftNotice(lost);
  rig.Settle();
  CHECK(rig.listener.drift_started == 0);
  CHECK(rig.scheduler->StatusJson()["driftWatch"]["lost"] == lost.what);
  rig.provider.Remove("web");  // while the feed was down
  DriftNotice back;
  back.kind = DriftNotice::Kind::kResync;
  back.what = "event stream re-established";
  rig.scheduler->DriftNotice(back);
  REQUIRE(rig.RunUntil([&] { return rig.Creates("web") == 2; }));
  auto status = rig.scheduler->StatusJson();
  CHECK(status["driftWatch"]["resyncs"] == 1);
  CHECK(status["driftWatch"]["lost"] == "");
}

}  // namespace
}  // namespace reconcile::controller
