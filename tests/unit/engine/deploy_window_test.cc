#include "reconcile/deploy_window.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "reconcile/state.h"

namespace reconcile {
namespace {

WindowTime At(const std::string& rfc3339) {
  auto t = ParseRfc3339(rfc3339);
  REQUIRE_MESSAGE(t.has_value(), rfc3339);
  return *t;
}

DeployWindow Window(DeployWindow::Kind kind, std::string schedule, std::int64_t ms,
                    std::string zone = "UTC") {
  DeployWindow w;
  w.kind = kind;
  w.schedule = std::move(schedule);
  w.duration_ms = ms;
  w.time_zone = std::move(zone);
  return w;
}

constexpr std::int64_t kHour = 3600000;
constexpr auto kAllow = DeployWindow::Kind::kAllow;
constexpr auto kDeny = DeployWindow::Kind::kDeny;

std::string Next(const std::string& schedule, const std::string& zone, const std::string& after) {
  auto t = NextFiring(Window(kAllow, schedule, kHour, zone), At(after));
  return t ? FormatInZone(*t, zone) : "none";
}

TEST_CASE("ParseCron accepts the standard forms") {
  struct Row {
    const char* expr;
    const char* after;  // UTC
    const char* next;   // UTC
  };
  const Row rows[] = {
      {"* * * * *", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"},
      {"*/15 * * * *", "2026-01-01T00:07:00Z", "2026-01-01T00:15:00Z"},
      {"5/20 * * * *", "2026-01-01T00:06:00Z", "2026-01-01T00:25:00Z"},
      {"0 8 * * 1-5", "2026-01-02T09:00:00Z", "2026-01-05T08:00:00Z"},  // Fri -> Mon
      {"0 8 * * MON-FRI", "2026-01-02T09:00:00Z", "2026-01-05T08:00:00Z"},
      {"0 0 * * 7", "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z"},  // 7 = Sunday
      {"0 0 * * sun", "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z"},
      {"30 1,13 * * *", "2026-01-01T02:00:00Z", "2026-01-01T13:30:00Z"},
      {"0 0 1 JAN *", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"},
      {"0 0 29 2 *", "2026-01-01T00:00:00Z", "2028-02-29T00:00:00Z"},
      {"0 12 10-20/5 * *", "2026-01-10T12:00:00Z", "2026-01-15T12:00:00Z"},
      // Both day fields restricted: either matches (the 13th, or a Friday).
      {"0 0 13 * 5", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"},
      {"0 0 13 * 5", "2026-01-09T00:00:00Z", "2026-01-13T00:00:00Z"},
      // dow starting with '*': the day-of-month alone decides.
      {"0 0 13 * */1", "2026-01-01T00:00:00Z", "2026-01-13T00:00:00Z"},
      {"@hourly", "2026-01-01T00:30:00Z", "2026-01-01T01:00:00Z"},
      {"@daily", "2026-01-01T00:30:00Z", "2026-01-02T00:00:00Z"},
      {"@weekly", "2026-01-01T00:30:00Z", "2026-01-04T00:00:00Z"},
      {"@monthly", "2026-01-01T00:30:00Z", "2026-02-01T00:00:00Z"},
      {"@yearly", "2026-01-01T00:30:00Z", "2027-01-01T00:00:00Z"},
  };
  for (const Row& r : rows) {
    CAPTURE(r.expr);
    CAPTURE(r.after);
    REQUIRE(ParseCron(r.expr).ok());
    CHECK(Next(r.expr, "UTC", r.after) == r.next);
  }
}

TEST_CASE("ParseCron errors name the field") {
  struct Row {
    const char* expr;
    const char* message;
  };
  const Row rows[] = {
      {"0 25 * * *", "field 'hour': 25 is out of range 0-23"},
      {"60 * * * *", "field 'minute': 60 is out of range 0-59"},
      {"0 0 0 * *", "field 'day-of-month': 0 is out of range 1-31"},
      {"0 0 * 13 *", "field 'month': 13 is out of range 1-12"},
      {"0 0 * * 8", "field 'day-of-week': 8 is out of range 0-7"},
      {"0 0 * FOO *", "field 'month': 'FOO' is not a known name"},
      {"x * * * *", "field 'minute': 'x' is not a number"},
      {"*/0 * * * *", "field 'minute': step 0 is out of range 1-59"},
      {"0 5-1 * * *", "field 'hour': range 5-1 is backwards (5 > 1)"},
      {"0 1,,2 * * *", "field 'hour': empty list item in '1,,2'"},
      {"0 8 * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 4"},
      {"@often",
       "unknown schedule '@often' (expected @hourly, @daily, @weekly, @monthly or "
       "@yearly)"},
  };
  for (const Row& r : rows) {
    CAPTURE(r.expr);
    auto c = ParseCron(r.expr);
    REQUIRE_FALSE(c.ok());
    CHECK(c.status().code() == Code::kInvalid);
    CHECK(c.status().message() == r.message);
  }
}

TEST_CASE("ValidateWindow names the field") {
  CHECK_FALSE(ValidateWindow(Window(kAllow, "0 8 * * 1-5", kHour, "Europe/Berlin")));
  auto e = ValidateWindow(Window(kAllow, "0 8 * * 1-5", kHour, "Mars/Olympus"));
  REQUIRE(e);
  CHECK(e->field == "timeZone");
  CHECK(e->message.find("unknown time zone 'Mars/Olympus'") == 0);
  e = ValidateWindow(Window(kAllow, "0 8 * * 1-5", 0));
  REQUIRE(e);
  CHECK(e->field == "duration");
  e = ValidateWindow(Window(kAllow, "0 0 30 2 *", kHour));
  REQUIRE(e);
  CHECK(e->field == "schedule");
  CHECK(e->message == "'0 0 30 2 *' never fires");
  e = ValidateWindow(Window(kDeny, "0 24 * * *", kHour));
  REQUIRE(e);
  CHECK(e->field == "schedule");
  CHECK(e->message == "field 'hour': 24 is out of range 0-23");
}

TEST_CASE("cron times are wall-clock times across DST changes") {
  // Europe/Berlin springs forward 2026-03-29 02:00 CET -> 03:00 CEST: 02:30
  // is skipped and fires once, at the transition.
  CHECK(Next("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z") == "2026-03-29T03:00:00+02:00");
  // ... and the day after at 02:30 CEST again.
  CHECK(Next("30 2 * * *", "Europe/Berlin", "2026-03-29T01:00:00Z") == "2026-03-30T02:30:00+02:00");
  // Several skipped times collapse into the one firing at the transition.
  CHECK(Next("*/20 2 * * *", "Europe/Berlin", "2026-03-28T23:00:00Z") ==
        "2026-03-29T03:00:00+02:00");
  CHECK(Next("*/20 2 * * *", "Europe/Berlin", "2026-03-29T01:00:00Z") ==
        "2026-03-30T02:00:00+02:00");
  // 08:00 is wall-clock: 07:00 UTC in winter, 06:00 UTC in summer.
  CHECK(FormatRfc3339Utc(*NextFiring(Window(kAllow, "0 8 * * *", kHour, "Europe/Berlin"),
                                     At("2026-03-28T12:00:00Z"))) == "2026-03-29T06:00:00Z");
  // Fall back 2026-10-25 03:00 CEST -> 02:00 CET: 02:30 happens twice and
  // fires once, at its first occurrence.
  CHECK(Next("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z") == "2026-10-25T02:30:00+02:00");
  CHECK(Next("30 2 * * *", "Europe/Berlin", "2026-10-25T00:30:00Z") == "2026-10-26T02:30:00+01:00");
  // America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00
  // EDT -> 01:00 EST.
  CHECK(Next("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z") ==
        "2026-03-08T03:00:00-04:00");
  CHECK(Next("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z") ==
        "2026-11-01T01:30:00-04:00");
  CHECK(Next("30 1 * * *", "America/New_York", "2026-11-01T05:30:00Z") ==
        "2026-11-02T01:30:00-05:00");
}

TEST_CASE("an allow window opening at 02:30 on the spring-forward day") {
  std::vector<DeployWindow> w = {Window(kAllow, "30 2 29 3 *", 2 * kHour, "Europe/Berlin")};
  // 01:59 CET: blocked; opens at the transition (03:00 CEST).
  WindowVerdict v = EvaluateWindows(w, At("2026-03-29T00:59:00Z"));
  CHECK_FALSE(v.allowed);
  CHECK(v.reason ==
        "outside every allow window (allow window \"30 2 29 3 *\" for 2h (Europe/Berlin))");
  REQUIRE(v.next);
  CHECK(v.NextText() == "2026-03-29T03:00:00+02:00");
  // 03:00 CEST: open for 2 real hours, until 05:00 CEST.
  v = EvaluateWindows(w, At("2026-03-29T01:00:00Z"));
  CHECK(v.allowed);
  REQUIRE(v.windows.size() == 1);
  CHECK(v.windows[0].active);
  CHECK(v.NextText() == "2026-03-29T05:00:00+02:00");
  v = EvaluateWindows(w, At("2026-03-29T02:59:59Z"));
  CHECK(v.allowed);
  v = EvaluateWindows(w, At("2026-03-29T03:00:00Z"));
  CHECK_FALSE(v.allowed);
}

TEST_CASE("a 1h window spanning the fall-back hour lasts one real hour") {
  // Berlin, 2026-10-25: a deny window from 02:30 CEST (00:30 UTC) for 1h ends
  // at 01:30 UTC = 02:30 CET (the wall clock shows 02:30 again).
  std::vector<DeployWindow> w = {Window(kDeny, "30 2 25 10 *", kHour, "Europe/Berlin")};
  WindowVerdict v = EvaluateWindows(w, At("2026-10-25T00:15:00Z"));
  CHECK(v.allowed);
  CHECK(v.NextText() == "2026-10-25T02:30:00+02:00");
  v = EvaluateWindows(w, At("2026-10-25T00:30:00Z"));
  CHECK_FALSE(v.allowed);
  CHECK(v.reason == "deny window \"30 2 25 10 *\" for 1h (Europe/Berlin) is active");
  CHECK(v.NextText() == "2026-10-25T02:30:00+01:00");
  // In the repeated hour (02:10 CET), it does not fire again.
  v = EvaluateWindows(w, At("2026-10-25T01:40:00Z"));
  CHECK(v.allowed);
  // New York, 2026-11-01: 01:00 EDT for 1h ends at 01:00 EST.
  std::vector<DeployWindow> ny = {Window(kAllow, "0 1 1 11 *", kHour, "America/New_York")};
  v = EvaluateWindows(ny, At("2026-11-01T05:00:00Z"));
  CHECK(v.allowed);
  CHECK(v.NextText() == "2026-11-01T01:00:00-05:00");
  v = EvaluateWindows(ny, At("2026-11-01T06:00:00Z"));
  CHECK_FALSE(v.allowed);
}

TEST_CASE("verdict rules and the next change") {
  const WindowTime monday_9 = At("2026-01-05T09:00:00Z");  // a Monday
  SUBCASE("no windows") {
    WindowVerdict v = EvaluateWindows({}, monday_9);
    CHECK(v.allowed);
    CHECK_FALSE(v.next);
    CHECK(v.NextText() == "none within 8 days");
  }
  SUBCASE("an always-active deny window blocks, with no end in sight") {
    WindowVerdict v = EvaluateWindows({Window(kDeny, "* * * * *", kHour)}, monday_9);
    CHECK_FALSE(v.allowed);
    CHECK_FALSE(v.next);
  }
  SUBCASE("deny wins over allow; the next change is when the deny ends") {
    std::vector<DeployWindow> w = {Window(kAllow, "0 8 * * 1-5", 10 * kHour),
                                   Window(kDeny, "0 9 * * *", 2 * kHour)};
    WindowVerdict v = EvaluateWindows(w, monday_9);
    CHECK_FALSE(v.allowed);
    CHECK(v.NextText() == "2026-01-05T11:00:00Z");
    REQUIRE(v.windows.size() == 2);
    CHECK(v.windows[0].active);
    CHECK(v.windows[1].active);
    REQUIRE(v.windows[1].closes);
    CHECK(FormatRfc3339Utc(*v.windows[1].closes) == "2026-01-05T11:00:00Z");
  }
  SUBCASE("a deny ending outside every allow window: next is the allow opening") {
    std::vector<DeployWindow> w = {Window(kAllow, "0 8 * * 1-5", 2 * kHour),
                                   Window(kDeny, "0 7 * * *", 2 * kHour)};
    // 07:30 Monday: deny active until 09:00, allow 08:00-10:00: next = 09:00.
    WindowVerdict v = EvaluateWindows(w, At("2026-01-05T07:30:00Z"));
    CHECK_FALSE(v.allowed);
    CHECK(v.NextText() == "2026-01-05T09:00:00Z");
    // Friday 11:00: outside; next allow Monday 08:00, but the deny 07:00-09:00
    // covers it: allowed from Monday 09:00.
    v = EvaluateWindows(w, At("2026-01-09T11:00:00Z"));
    CHECK_FALSE(v.allowed);
    CHECK(v.NextText() == "2026-01-12T09:00:00Z");
  }
  SUBCASE("overlapping openings make one stretch") {
    std::vector<DeployWindow> w = {Window(kDeny, "*/10 9 * * *", 15 * 60000)};
    WindowVerdict v = EvaluateWindows(w, At("2026-01-05T09:05:00Z"));
    CHECK_FALSE(v.allowed);
    CHECK(v.NextText() == "2026-01-05T10:05:00Z");  // 09:50 + 15m
  }
  SUBCASE("groups must each allow") {
    std::vector<DeployWindow> env = {Window(kAllow, "0 8 * * *", 10 * kHour)};
    std::vector<DeployWindow> agent = {Window(kAllow, "0 12 * * *", kHour)};
    WindowVerdict v = EvaluateWindowGroups({&env, &agent}, monday_9);
    CHECK_FALSE(v.allowed);
    CHECK(v.reason.find("allow window \"0 12 * * *\"") != std::string::npos);
    CHECK(v.NextText() == "2026-01-05T12:00:00Z");
    CHECK(v.windows.size() == 2);
    v = EvaluateWindowGroups({&env, &agent}, At("2026-01-05T12:30:00Z"));
    CHECK(v.allowed);
    CHECK(v.NextText() == "2026-01-05T13:00:00Z");
  }
  SUBCASE("next is shown in the deciding window's zone") {
    std::vector<DeployWindow> w = {Window(kAllow, "0 8 * * 1-5", 10 * kHour, "Europe/Berlin")};
    WindowVerdict v = EvaluateWindows(w, At("2026-01-05T18:00:00Z"));  // 19:00 CET
    CHECK_FALSE(v.allowed);
    CHECK(v.NextText() == "2026-01-06T08:00:00+01:00");
  }
}

TEST_CASE("durations and times format") {
  CHECK(FormatWindowDuration(kHour) == "1h");
  CHECK(FormatWindowDuration(5400000) == "1h30m");
  CHECK(FormatWindowDuration(1500) == "1.5s");
  CHECK(FormatRfc3339Utc(At("2026-03-29T03:00:00+02:00")) == "2026-03-29T01:00:00Z");
  CHECK_FALSE(ParseRfc3339("yesterday"));
}

}  // namespace
}  // namespace reconcile

namespace reconcile {
namespace {

TEST_CASE("ValidateWindows reports at the window's map, naming the field") {
  DesiredState state;
  Environment env;
  env.name = "staging";
  DeployWindow ok;
  ok.schedule = "0 8 * * 1-5";
  ok.duration_ms = 3600000;
  DeployWindow bad = ok;
  bad.schedule = "0 25 * * *";
  bad.location = {"envs/staging/env.yaml", 9, 9};
  env.windows = {ok, bad};
  state.environment = env;
  Agent a;
  a.name = "web";
  DeployWindow zone = ok;
  zone.time_zone = "Europe/Nowhere";
  zone.location = {"base/web.yaml", 12, 9};
  a.windows = {zone};
  state.agents.push_back(a);
  Diagnostics d;
  ValidateWindows(state, d);
  REQUIRE(d.size() == 2);
  CHECK(d.items()[0].ToString() ==
        "envs/staging/env.yaml:9:9: error: spec.windows[1].schedule: field 'hour': 25 is out of "
        "range 0-23");
  CHECK(d.items()[1].file == "base/web.yaml");
  CHECK(d.items()[1].line == 12);
  CHECK(d.items()[1].field == "spec.windows[0].timeZone");
  CHECK(d.items()[1].message.find("unknown time zone 'Europe/Nowhere'") == 0);
  CHECK(d.items()[1].message.find("(Agent 'web')") != std::string::npos);
}

}  // namespace
}  // namespace reconcile

namespace reconcile {
namespace {

TEST_CASE("history entries record --ignore-windows (JSON round trip)") {
  HistoryEntry e;
  e.serial = 3;
  e.revision = "tree-0123456789ab";
  e.applied_at = "2026-03-29T01:00:00Z";
  e.result = "succeeded";
  e.summary = "1 added, 0 changed, 0 replaced, 0 destroyed";
  e.ignored_windows = true;
  nlohmann::json j = ToJson(e);
  CHECK(j.at("ignoredWindows") == true);
  auto back = HistoryEntryFromJson(j);
  REQUIRE(back.ok());
  CHECK(back->ignored_windows);
  CHECK(*back == e);
  e.ignored_windows = false;
  CHECK_FALSE(ToJson(e).contains("ignoredWindows"));  // old files stay byte-identical
  j["ignoredWindows"] = "yes";
  auto bad = HistoryEntryFromJson(j);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("ignoredWindows") != std::string::npos);
}

Change AgentChange(const std::string& name, Action action) {
  Change c;
  c.address = "agent." + name;
  c.name = name;
  c.action = action;
  return c;
}

TEST_CASE("GatePlan holds the blocked part of a plan") {
  DesiredState d;
  Agent web;
  web.name = "web";
  Agent db;
  db.name = "db";
  DeployWindow deny;
  deny.kind = DeployWindow::Kind::kDeny;
  deny.schedule = "* * * * *";
  deny.duration_ms = 3600000;
  db.windows = {deny};
  d.agents = {db, web};
  Plan plan;
  plan.revision = "r1";
  plan.changes = {AgentChange("db", Action::kCreate), AgentChange("old", Action::kDelete),
                  AgentChange("web", Action::kCreate), AgentChange("x", Action::kNoOp)};
  const WindowTime now = *ParseRfc3339("2026-01-05T09:00:00Z");
  SUBCASE("an agent's window holds only that agent") {
    PlanGate g = GatePlan(plan, d, now);
    CHECK(g.blocked);
    CHECK(g.held_agents == std::vector<std::string>{"db"});
    REQUIRE(g.allowed.changes.size() == 3);
    CHECK(g.allowed.changes[0].name == "old");
    CHECK(g.allowed.changes[1].name == "web");
    CHECK(g.reason == "deny window \"* * * * *\" for 1h (UTC) is active (agent 'db')");
    CHECK(g.next_text == "none within 8 days");
    CHECK(g.environment.allowed);
  }
  SUBCASE("the Environment's windows hold everything") {
    Environment env;
    env.name = "prod";
    DeployWindow allow;
    allow.schedule = "0 12 * * *";
    allow.duration_ms = 3600000;
    env.windows = {allow};
    d.environment = env;
    d.agents[0].windows.clear();
    PlanGate g = GatePlan(plan, d, now);
    CHECK(g.blocked);
    CHECK(g.held_agents == std::vector<std::string>{"db", "old", "web"});
    REQUIRE(g.allowed.changes.size() == 1);
    CHECK(g.allowed.changes[0].action == Action::kNoOp);
    CHECK(g.next_text == "2026-01-05T12:00:00Z");
    CHECK(g.windows == std::vector<std::string>{"allow window \"0 12 * * *\" for 1h (UTC)"});
    // At noon everything goes.
    PlanGate open = GatePlan(plan, d, *ParseRfc3339("2026-01-05T12:00:00Z"));
    CHECK_FALSE(open.blocked);
    CHECK(open.allowed.changes.size() == 4);
  }
  SUBCASE("no windows: nothing held") {
    d.agents[0].windows.clear();
    PlanGate g = GatePlan(plan, d, now);
    CHECK_FALSE(g.blocked);
    CHECK(g.allowed == plan);
  }
}

}  // namespace
}  // namespace reconcile
