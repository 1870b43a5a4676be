#include "reconcile/applier.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <mutex>

#include "fakes/fake_provider.h"
#include "reconcile/planner.h"
#include "unit/engine/test_world.h"

namespace reconcile {
namespace {

using testing::FakeProvider;
using testing::MakeAgent;
using testing::MakeDesired;

class FakeClock final : public Clock {
 public:
  std::string NowRfc3339() override { return "2026-11-22T00:00:00Z"; }
  std::chrono::steady_clock::time_point Now() override { return {}; }
  bool SleepFor(std::chrono::milliseconds d, std::stop_token) override {
    std::lock_guard<std::mutex> lock(mu);
    sleeps.push_back(d);
    return true;
  }
  std::mutex mu;
  std::vector<std::chrono::milliseconds> sleeps;
};

class RecordingObserver final : public EventObserver {
 public:
  void OnEvent(const Event& e) override {
    std::lock_guard<std::mutex> lock(mu);
    events.push_back(e);
  }
  int Count(Event::Type t) {
    std::lock_guard<std::mutex> lock(mu);
    return static_cast<int>(
        std::count_if(events.begin(), events.end(), [&](const Event& e) { return e.type == t; }));
  }
  std::mutex mu;
  std::vector<Event> events;
};

struct Harness {
  DesiredState desired;
  State recorded;
  FakeProvider provider;
  FakeClock clock;
  RecordingObserver observer;
  ApplyOptions options;

  Plan MakePlan() {
    PlanInput in;
    in.desired = &desired;
    in.recorded = &recorded;
    in.observed["local"] = provider.Observe({});
    return ComputePlan(in);
  }
  ApplyResult Run(const Plan& plan) {
    ApplyContext ctx;
    ctx.provider_for = [&](const std::string&) -> Provider* { return &provider; };
    ctx.target_for = [&](const std::string& t) { return desired.FindTarget(t); };
    ctx.secrets_for = [](const Change& c) -> Result<std::map<std::string, std::string>> {
      if (c.name == "secretive") return std::map<std::string, std::string>{{"TOKEN", "s3cr3t"}};
      return std::map<std::string, std::string>{};
    };
    ctx.clock = &clock;
    ctx.observer = &observer;
    return Apply(plan, recorded, ctx, options);
  }
};

TEST_CASE("applier: creates, records state, then the second plan is empty") {
  Harness h;
  h.desired = MakeDesired({MakeAgent("a"), MakeAgent("b")});
  ApplyResult r = h.Run(h.MakePlan());
  REQUIRE(r.status.ok());
  CHECK(r.succeeded == 2);
  REQUIRE(r.state.resources.size() == 2);
  const ResourceState& a = r.state.resources.at("agent.a");
  CHECK(a.health == "healthy");
  CHECK(a.instances.size() == 1);
  CHECK(a.applied_at == "2026-11-22T00:00:00Z");
  CHECK(r.state.revision == h.desired.revision);
  h.recorded = r.state;
  CHECK_FALSE(h.MakePlan().HasChanges());
}

TEST_CASE("applier: dependencies run first; a failure skips its dependents") {
  Harness h;
  Agent web = MakeAgent("web");
  web.depends_on = {"db"};
  Agent top = MakeAgent("top");
  top.depends_on = {"web"};
  h.desired = MakeDesired({MakeAgent("db"), top, web, MakeAgent("solo")});
  h.desired.FindTarget("local");

  SUBCASE("order") {
    ApplyResult r = h.Run(h.MakePlan());
    REQUIRE(r.status.ok());
    std::vector<std::string> calls = h.provider.calls();
    auto pos = [&](const std::string& s) {
      return std::find(calls.begin(), calls.end(), s) - calls.begin();
    };
    CHECK(pos("agent.db:create") < pos("agent.web:create"));
    CHECK(pos("agent.web:create") < pos("agent.top:create"));
  }
  SUBCASE("failure") {
    h.provider.fail["agent.db"] = Status::Failed("db did not become healthy");
    ApplyResult r = h.Run(h.MakePlan());
    CHECK_FALSE(r.status.ok());
    CHECK(r.status.message().find("agent.db") != std::string::npos);
    CHECK(r.failed == 1);
    CHECK(r.skipped == 2);
    CHECK(r.succeeded == 1);
    CHECK(r.state.resources.count("agent.solo") == 1);
    CHECK(r.state.resources.count("agent.web") == 0);
    CHECK(h.observer.Count(Event::Type::kChangeSkipped) == 2);
    CHECK(r.state.revision.empty());  // not fully applied
  }
}

TEST_CASE("applier: retries transient errors with growing backoff, not others") {
  Harness h;
  h.desired = MakeDesired({MakeAgent("a")});
  h.options.initial_backoff = std::chrono::milliseconds(100);
  SUBCASE("transient") {
    h.provider.fail["agent.a"] = Status::Unavailable("engine busy");
    h.provider.fail_times["agent.a"] = 2;
    ApplyResult r = h.Run(h.MakePlan());
    CHECK(r.status.ok());
    CHECK(h.provider.calls().size() == 3);
    REQUIRE(h.clock.sleeps.size() == 2);
    CHECK(h.clock.sleeps[0].count() >= 50);
    CHECK(h.clock.sleeps[0].count() <= 100);
    CHECK(h.clock.sleeps[1].count() >= 100);
    CHECK(h.clock.sleeps[1].count() <= 200);
    CHECK(h.observer.Count(Event::Type::kChangeRetrying) == 2);
  }
  SUBCASE("gives up after max attempts") {
    h.provider.fail["agent.a"] = Status::Unavailable("engine down");
    ApplyResult r = h.Run(h.MakePlan());
    CHECK_FALSE(r.status.ok());
    CHECK(h.provider.calls().size() == static_cast<size_t>(h.options.max_attempts));
  }
  SUBCASE("permanent") {
    h.provider.fail["agent.a"] = Status::Conflict("name taken");
    ApplyResult r = h.Run(h.MakePlan());
    CHECK_FALSE(r.status.ok());
    CHECK(h.provider.calls().size() == 1);
    CHECK(h.clock.sleeps.empty());
  }
}

TEST_CASE("applier: deletes drop state; secrets reach the provider only") {
  Harness h;
  h.desired = MakeDesired({MakeAgent("secretive"), MakeAgent("old")});
  ApplyResult first = h.Run(h.MakePlan());
  REQUIRE(first.status.ok());
  CHECK(h.provider.secrets_seen("agent.secretive").at("TOKEN") == "s3cr3t");
  CHECK(ToJson(first.state).dump().find("s3cr3t") == std::string::npos);
  h.recorded = first.state;
  h.desired = MakeDesired({MakeAgent("secretive")});
  Plan plan = h.MakePlan();
  CHECK(plan.Count(Action::kDelete) == 1);
  ApplyResult second = h.Run(plan);
  REQUIRE(second.status.ok());
  CHECK(second.state.resources.count("agent.old") == 0);
  CHECK(second.state.resources.count("agent.secretive") == 1);
}

TEST_CASE("applier: redacts secret values from any provider's errors and progress") {
  Harness h;
  const std::string canary = "c4n4ry-\"quoted\"\n-s3cr3t";
  h.desired = MakeDesired({MakeAgent("leaky")});
  h.provider.echo_secrets = true;
  h.provider.warnings = {"TLS verification is off (sent c4n4ry-\"quoted\"\n-s3cr3t)"};
  h.provider.fail["agent.leaky"] = Status::Unavailable("engine said: bad request");
  h.provider.fail_times["agent.leaky"] = 1;  // the retry succeeds
  ApplyContext ctx;
  ctx.provider_for = [&](const std::string&) -> Provider* { return &h.provider; };
  ctx.target_for = [&](const std::string& t) { return h.desired.FindTarget(t); };
  ctx.secrets_for = [&](const Change&) -> Result<std::map<std::string, std::string>> {
    return std::map<std::string, std::string>{{"TOKEN", canary}, {"OTHER", "x"}};
  };
  ctx.clock = &h.clock;
  ctx.observer = &h.observer;

  SUBCASE("a retried failure") {
    ApplyResult r = Apply(h.MakePlan(), h.recorded, ctx, h.options);
    REQUIRE(r.status.ok());
    CHECK(h.provider.secrets_seen("agent.leaky").at("TOKEN") == canary);  // it did get it
  }
  SUBCASE("a final failure") {
    h.provider.fail["agent.leaky"] = Status::Failed("engine said: bad request");
    ApplyResult r = Apply(h.MakePlan(), h.recorded, ctx, h.options);
    REQUIRE(!r.status.ok());
    CHECK(r.status.message().find("<redacted>") != std::string::npos);
    CHECK(r.status.message().find("c4n4ry") == std::string::npos);
  }
  const std::string escaped = nlohmann::json(canary).dump();
  int masked = 0;
  for (const Event& e : h.observer.events) {
    INFO(e.message);
    CHECK(e.message.find("c4n4ry") == std::string::npos);
    CHECK(e.message.find(escaped.substr(1, escaped.size() - 2)) == std::string::npos);
    masked += e.message.find("TOKEN=<redacted> json=\"<redacted>\"") != std::string::npos;
  }
  CHECK(masked >= 2);  // the progress line and the failure (retrying or failed)
  CHECK(h.observer.Count(Event::Type::kWarning) >= 1);  // provider warnings become events
}

TEST_CASE("applier: independent changes run in parallel, bounded by parallelism") {
  for (int parallelism : {1, 3}) {
    SUBCASE(("parallelism " + std::to_string(parallelism)).c_str()) {
      Harness h;
      std::vector<Agent> agents;
      for (int i = 0; i < 8; ++i) agents.push_back(MakeAgent("a" + std::to_string(i)));
      h.desired = MakeDesired(agents);
      h.provider.delay = std::chrono::milliseconds(30);
      h.options.parallelism = parallelism;
      ApplyResult r = h.Run(h.MakePlan());
      REQUIRE(r.status.ok());
      CHECK(r.succeeded == 8);
      CHECK(h.provider.max_in_flight() <= parallelism);
      if (parallelism > 1) CHECK(h.provider.max_in_flight() > 1);
    }
  }
}

TEST_CASE("applier: changes waiting for health hold no parallelism slot") {
  Harness h;
  std::vector<Agent> agents;
  for (int i = 0; i < 8; ++i) agents.push_back(MakeAgent("w" + std::to_string(i)));
  h.desired = MakeDesired(agents);
  h.provider.delay = std::chrono::milliseconds(5);
  h.provider.wait = std::chrono::milliseconds(300);
  h.options.parallelism = 2;
  ApplyResult r = h.Run(h.MakePlan());
  REQUIRE(r.status.ok());
  CHECK(r.succeeded == 8);
  CHECK(h.provider.max_working() <= 2);   // work is bounded by --parallelism
  CHECK(h.provider.max_in_flight() > 2);  // but waits overlap beyond it
}

TEST_CASE("applier: an empty plan does nothing") {
  Harness h;
  ApplyResult r = h.Run(Plan{});
  CHECK(r.status.ok());
  CHECK(h.provider.calls().empty());
}

}  // namespace
}  // namespace reconcile
