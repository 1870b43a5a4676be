// RunPass under deploy windows: a blocked pass plans and reports but applies
// nothing held; the time comes from the injected clock.
#include <doctest/doctest.h>

#include <string>

#include "fakes/pass_world.h"
#include "reconcile/deploy_window.h"
#include "reconcile/pass.h"
#include "unit/engine/test_world.h"

namespace reconcile {
namespace {

using testing::MakeAgent;
using testing::MakeDesired;

// Wall time set by the test; monotonic time and sleeps from the system.
class WallClock final : public Clock {
 public:
  std::string now = "2026-01-05T11:59:00Z";
  std::string NowRfc3339() override { return now; }
  std::chrono::steady_clock::time_point Now() override { return std::chrono::steady_clock::now(); }
  bool SleepFor(std::chrono::milliseconds d, std::stop_token stop) override {
    return InterruptibleSleep(d, stop);
  }
};

DeployWindow Win(DeployWindow::Kind kind, const std::string& schedule, std::int64_t ms) {
  DeployWindow w;
  w.kind = kind;
  w.schedule = schedule;
  w.duration_ms = ms;
  return w;
}

TEST_CASE("a pass blocked by a deploy window plans, reports and applies nothing") {
  testing::PassWorld w;
  auto clock = std::make_unique<WallClock>();
  WallClock* wall = clock.get();
  w.clock = std::move(clock);
  DesiredState d = MakeDesired({MakeAgent("a"), MakeAgent("b")});
  Environment env;
  env.name = "prod";
  env.windows = {Win(DeployWindow::Kind::kAllow, "0 12 * * *", 3600000)};
  d.environment = env;
  w.source.Set("c1", d);

  PassReport blocked = w.Run(PassRequest::Kind::kApply, "c1");
  REQUIRE_MESSAGE(blocked.status.ok(), blocked.status.message());
  CHECK(blocked.window.blocked);
  CHECK(blocked.window.environment == "prod");
  CHECK(blocked.window.held == 2);
  CHECK(blocked.window.held_agents == std::vector<std::string>{"a", "b"});
  CHECK(blocked.window.next_text == "2026-01-05T12:00:00Z");
  CHECK(blocked.changes == 0);
  CHECK(w.provider.calls().empty());  // nothing created
  CHECK(blocked.state->resources.empty());

  wall->now = "2026-01-05T12:00:00Z";  // the window opens: same revision applies
  PassReport open = w.Run(PassRequest::Kind::kApply, "c1");
  REQUIRE_MESSAGE(open.status.ok(), open.status.message());
  CHECK_FALSE(open.window.blocked);
  CHECK(open.changes == 2);
  CHECK(open.state->resources.size() == 2);
  CHECK(open.window.next_text == "2026-01-05T13:00:00Z");
}

TEST_CASE("an agent's deny window holds only that agent") {
  testing::PassWorld w;
  w.clock = std::make_unique<WallClock>();
  Agent a = MakeAgent("a");
  a.windows = {Win(DeployWindow::Kind::kDeny, "* * * * *", 3600000)};
  w.source.Set("c1", MakeDesired({a, MakeAgent("b")}));
  PassReport r = w.Run(PassRequest::Kind::kApply, "c1");
  REQUIRE_MESSAGE(r.status.ok(), r.status.message());
  CHECK(r.window.blocked);
  CHECK(r.window.held_agents == std::vector<std::string>{"a"});
  CHECK(r.changes == 1);
  CHECK(r.state->resources.count("agent.b") == 1);
  CHECK(r.state->resources.count("agent.a") == 0);
  CHECK(r.window.reason.find("(agent 'a')") != std::string::npos);
}

}  // namespace
}  // namespace reconcile
