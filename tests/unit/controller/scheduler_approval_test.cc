// Scheduler with approvals (README "Approvals") on a real io_context with a
// fake source and provider: a plan that needs an approval waits as a
// pending plan, an approval applies exactly it, a new commit supersedes it,
// a changed world makes an approval stale, a tampered plan is refused.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include <boost/asio/io_context.hpp>

#include "fakes/fake_source.h"
#include "fakes/temp_dir.h"
#include "reconcile/approval.h"
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

class ApprovalListener final : public SchedulerListener {
 public:
  void RefChecked(const Result<std::string>&, double) override {}
  void Decided(const std::string&, Decision, const std::string&) override {}
  void PassFinished(const PassRequest&, const PassReport& r, double) override {
    std::lock_guard<std::mutex> lock(mu);
    reports.push_back(r);
  }
  void PlanApproved(const PendingPlan& p) override {
    std::lock_guard<std::mutex> lock(mu);
    approved.push_back(p.id + " by " + p.approved_by + " via " + p.via);
  }
  std::mutex mu;
  std::vector<PassReport> reports;
  std::vector<std::string> approved;
};

Agent Gated(const std::string& greeting) {
  Agent a = MakeAgent("web", greeting);
  a.approval = ApprovalMode::kRequired;
  return a;
}

struct Rig {
  TempDir tmp;
  FakeSource source;
  FakeProvider provider;
  ProviderRegistry registry;
  std::unique_ptr<StateStore> store = NewFileStateStore(tmp.path() / "state");
  std::unique_ptr<Clock> clock = NewSystemClock();
  ApprovalListener listener;
  boost::asio::io_context io;
  std::unique_ptr<Scheduler> scheduler;

  // A long interval: the tests drive the checks with Trigger.
  Rig() {
    testing::RegisterFake(registry, &provider);
    ReconcilerDeps d;
    d.source = &source;
    d.store = store.get();
    d.providers = &registry;
    d.clock = clock.get();
    SchedulerOptions o;
    o.interval = 1h;
    o.policy.drift_interval = 1h;
    o.state_dir = tmp.path() / "state";
    scheduler = std::make_unique<Scheduler>(io, d, o, &listener);
  }
  int Passes() {
    std::lock_guard<std::mutex> lock(listener.mu);
    return static_cast<int>(listener.reports.size());
  }
  bool RunUntil(const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io.run_for(5ms);
      if (io.stopped()) io.restart();
    }
    return done();
  }
  // Passes the scheduler has recorded (OnPassDone, on the I/O thread).
  int StatusPasses() { return scheduler->StatusJson()["passes"].get<int>(); }
  // Triggers a check and waits until the pass it runs is recorded.
  void Pass() {
    const int before = StatusPasses();
    scheduler->Trigger("test", "");
    REQUIRE(RunUntil([&] { return StatusPasses() > before; }));
  }
  nlohmann::json Pending() { return scheduler->StatusJson()["pendingPlan"]; }
  int Creates() {
    int n = 0;
    for (const std::string& c : provider.calls())
      n += c == "agent.web:create" || c == "agent.web:replace" || c == "agent.web:update";
    return n;
  }
  ApprovalStore Store() { return ApprovalStore(tmp.path() / "state"); }
};

TEST_CASE("scheduler approval: a gated commit waits; its approval applies exactly that plan") {
  Rig rig;
  rig.source.Set("c1", MakeDesired({Gated("one")}));
  rig.scheduler->Start();
  REQUIRE(rig.RunUntil([&] { return rig.StatusPasses() >= 1; }));
  rig.io.run_for(20ms);
  CHECK(rig.Creates() == 0);
  auto status = rig.scheduler->StatusJson();
  auto pending = status["pendingPlan"];
  REQUIRE(pending.is_object());
  const std::string id = pending["id"];
  CHECK(id.size() == 64);
  CHECK(pending["revision"] == "c1");
  CHECK(pending["state"] == "pending");
  CHECK(pending["agents"] == nlohmann::json::array({"web"}));
  CHECK(pending["changes"] ==
        nlohmann::json::parse(R"([{"address":"agent.web","action":"create"}])"));
  CHECK(pending["approve"] == "reconcile approve " + id);
  CHECK(status["revision"]["applied"] == "");  // not applied: every check plans it again
  CHECK(std::filesystem::exists(rig.tmp.path() / "state" / "pending" / (id + ".json")));
  {
    std::lock_guard<std::mutex> lock(rig.listener.mu);
    CHECK(rig.listener.reports[0].approval.waiting);
    CHECK(rig.listener.reports[0].approval.id == id);  // published before listeners hear of it
  }
  // Another check publishes the same plan again: the same id.
  rig.Pass();
  CHECK(rig.Pending()["id"] == id);
  CHECK(rig.Creates() == 0);

  auto approved = rig.scheduler->Approve(id.substr(0, 12), "alice@host", "api");
  REQUIRE(approved.ok());
  CHECK(approved->id == id);
  REQUIRE(rig.RunUntil([&] { return rig.Creates() == 1; }));
  REQUIRE(rig.RunUntil([&] { return rig.scheduler->StatusJson()["revision"]["applied"] == "c1"; }));
  status = rig.scheduler->StatusJson();
  CHECK(status["pendingPlan"].is_null());
  CHECK(status["approval"]["lastApplied"] == id);
  CHECK(rig.Store().Find(id)->state == "applied");
  {
    std::lock_guard<std::mutex> lock(rig.listener.mu);
    CHECK(rig.listener.approved == std::vector<std::string>{id + " by alice@host via api"});
  }
  // Applied once: approving it again is refused.
  auto again = rig.scheduler->Approve(id, "alice@host", "api");
  REQUIRE_FALSE(again.ok());
  CHECK(again.status().code() == Code::kConflict);
  auto unknown = rig.scheduler->Approve(std::string(64, 'a'), "alice@host", "api");
  CHECK(unknown.status().code() == Code::kNotFound);
}

TEST_CASE("scheduler approval: a new commit supersedes the pending plan") {
  Rig rig;
  rig.source.Set("c1", MakeDesired({Gated("one")}));
  rig.scheduler->Start();
  REQUIRE(rig.RunUntil([&] { return rig.Pending().is_object() && rig.StatusPasses() >= 1; }));
  const std::string first = rig.Pending()["id"];
  rig.source.Set("c2", MakeDesired({Gated("two")}));
  rig.Pass();
  const std::string second = rig.Pending()["id"];
  CHECK(second != first);
  CHECK(rig.Pending()["revision"] == "c2");
  auto old = rig.scheduler->Approve(first, "alice", "api");
  REQUIRE_FALSE(old.ok());
  CHECK(old.status().code() == Code::kConflict);
  CHECK(old.status().message().find("was superseded") != std::string::npos);
  CHECK(rig.Creates() == 0);
  REQUIRE(rig.scheduler->Approve(second, "alice", "api").ok());
  REQUIRE(rig.RunUntil([&] { return rig.Creates() == 1; }));
}

TEST_CASE("scheduler approval: a changed world makes an approval stale; a new plan waits") {
  Rig rig;
  // Runs "one" first (no approval needed), then a gated update to "two".
  rig.source.Set("c1", MakeDesired({MakeAgent("web", "one")}));
  rig.scheduler->Start();
  REQUIRE(rig.RunUntil([&] { return rig.StatusPasses() >= 1; }));
  CHECK(rig.Creates() == 1);
  rig.source.Set("c2", MakeDesired({Gated("two")}));
  rig.Pass();
  REQUIRE(rig.Pending().is_object());
  const std::string id = rig.Pending()["id"];
  // Approved through the state folder (as `reconcile approve` does), then
  // the container goes away before the controller's next check.
  ApprovalStore store = rig.Store();
  REQUIRE(store.Approve(id, "alice@host", "cli", "now").ok());
  rig.provider.Remove("web");
  rig.Pass();
  CHECK(rig.Creates() == 1);  // nothing applied
  auto status = rig.scheduler->StatusJson();
  REQUIRE(status["pendingPlan"].is_object());
  CHECK(status["pendingPlan"]["id"] != id);
  CHECK(status["approval"]["note"].get<std::string>().find(
            "was approved but is stale: what runs changed since the plan was computed") !=
        std::string::npos);
  auto old = store.Find(id);
  REQUIRE(old.ok());
  CHECK(old->state == "stale");
  CHECK(old->why.find("approved, but stale") == 0);
  CHECK(rig.scheduler->Approve(id, "alice", "api").status().code() == Code::kConflict);
  // The new plan, approved, is applied.
  const std::string fresh = status["pendingPlan"]["id"];
  REQUIRE(rig.scheduler->Approve(fresh, "alice", "api").ok());
  REQUIRE(rig.RunUntil([&] { return rig.Creates() == 2; }));
}

TEST_CASE("scheduler approval: a tampered pending plan is never applied") {
  Rig rig;
  rig.source.Set("c1", MakeDesired({Gated("one")}));
  rig.scheduler->Start();
  REQUIRE(rig.RunUntil([&] { return rig.Pending().is_object() && rig.StatusPasses() >= 1; }));
  const std::string id = rig.Pending()["id"];
  ApprovalStore store = rig.Store();
  REQUIRE(store.Approve(id, "alice", "cli", "now").ok());
  const auto file = rig.tmp.path() / "state" / "pending" / (id + ".json");
  std::stringstream text;
  text << std::ifstream(file).rdbuf();
  std::string edited = text.str();
  edited.replace(edited.find("\"revision\": \"c1\""), 16, "\"revision\": \"c9\"");
  std::ofstream(file, std::ios::trunc) << edited;
  rig.Pass();
  CHECK(rig.Creates() == 0);
  CHECK(rig.scheduler->StatusJson()["approval"]["note"].get<std::string>().find(
            "does not match its id") != std::string::npos);
  auto again = rig.scheduler->Approve(id, "alice", "api");
  CHECK(again.status().code() == Code::kInvalid);
}

TEST_CASE("scheduler approval: an agent without approval is applied as before") {
  Rig rig;
  rig.source.Set("c1", MakeDesired({MakeAgent("web", "one")}));
  rig.scheduler->Start();
  REQUIRE(rig.RunUntil([&] { return rig.Creates() == 1; }));
  rig.io.run_for(20ms);
  CHECK(rig.Pending().is_null());
  CHECK_FALSE(std::filesystem::exists(rig.tmp.path() / "state" / "pending"));
}

}  // namespace
}  // namespace reconcile::controller
