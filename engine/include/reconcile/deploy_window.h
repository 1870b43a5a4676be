// Deploy windows (issue #11 item 6), like Argo CD's sync windows: an
// Environment's (and an Agent's) `windows: [{kind, schedule, duration,
// timeZone}]` say when apply may change the world.
//
//   schedule  5-field cron (minute hour day-of-month month day-of-week):
//             `*`, lists, ranges, steps (`*/15`, `1-10/2`, `5/10`), names
//             JAN-DEC and SUN-SAT, 7 = Sunday, and Vixie cron's rule: when
//             both day fields are restricted (neither starts with `*`) a day
//             matches either; also @hourly @daily @weekly @monthly @yearly.
//   timeZone  an IANA zone of the system tz database (/usr/share/zoneinfo,
//             read by Howard Hinnant's date/tz). The schedule is wall-clock
//             time in that zone:
//               - a time skipped by a spring-forward fires once, at the
//                 transition (like cronie): "30 2 * * *" in Europe/Berlin on
//                 2026-03-29 opens at 03:00 CEST;
//               - a time repeated by a fall-back fires once, at its first
//                 occurrence.
//   duration  how long the window stays open after each firing, in real
//             (elapsed) time: a 1h window opened at 02:30 CEST on a
//             fall-back day closes 3600 s later, at 02:30 CET.
//
// Verdict: any active deny window blocks; else, when there are allow
// windows and none is active, blocked; else allowed. Several groups (the
// Environment's and an Agent's) must each allow.
//
// Pure: the time is a parameter. Thread-safe (the tz database is read once,
// under the library's own synchronization).
#pragma once

#include <bitset>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "reconcile/diagnostic.h"
#include "reconcile/model.h"
#include "reconcile/plan.h"
#include "reconcile/status.h"

namespace reconcile {

using WindowTime = std::chrono::sys_time<std::chrono::milliseconds>;

// A parsed cron expression.
struct CronSchedule {
  std::bitset<60> minutes;
  std::bitset<24> hours;
  std::bitset<32> days_of_month;  // 1-31
  std::bitset<13> months;         // 1-12
  std::bitset<7> days_of_week;    // 0-6, 0 = Sunday
  bool dom_star = true;           // the field started with '*'
  bool dow_star = true;
  // Whether the calendar day (y, m, d; weekday 0-6) matches.
  bool MatchesDay(unsigned month, unsigned day, unsigned weekday) const;
};

// kInvalid with "field 'hour': 25 is out of range 0-23" and the like.
Result<CronSchedule> ParseCron(std::string_view expression);

// A problem with one window: `field` is "schedule", "timeZone" or "duration".
struct WindowError {
  std::string field;
  std::string message;
};

// Checks one window: the cron parses and fires at least once (within 10
// years), the zone is in the tz database, the duration is > 0.
std::optional<WindowError> ValidateWindow(const DeployWindow& window);

// ValidateWindow for the Environment's windows and every Agent's: an error
// at the window's map (DeployWindow::location) naming the field
// ("spec.windows[0].schedule: field 'hour': 25 is out of range 0-23").
void ValidateWindows(const DesiredState& state, Diagnostics& diagnostics);

// `deny "* * * * *" for 1h (UTC)`.
std::string DescribeWindow(const DeployWindow& window);
// 3600000 -> "1h", 5400000 -> "1h30m", 1500 -> "1.5s".
std::string FormatWindowDuration(std::int64_t ms);
// RFC 3339 of `t` in `time_zone` ("2026-03-29T03:00:00+02:00"); UTC when the
// zone is unknown.
std::string FormatInZone(WindowTime t, const std::string& time_zone);
// RFC 3339 UTC ("2026-03-29T01:00:00Z") <-> WindowTime. nullopt when unparsable.
std::optional<WindowTime> ParseRfc3339(const std::string& text);
std::string FormatRfc3339Utc(WindowTime t);

// The first firing strictly after `after` (nullopt: none within 10 years, or
// a bad schedule or zone).
std::optional<WindowTime> NextFiring(const DeployWindow& window, WindowTime after);

struct WindowActivity {
  const DeployWindow* window = nullptr;  // points into the evaluated vector
  bool active = false;
  std::optional<WindowTime> opened;  // active: when the current opening began
  std::optional<WindowTime> closes;  // active: when it ends (nullopt: beyond the horizon)
  std::optional<WindowTime> opens;   // inactive: when it next opens
};

struct WindowVerdict {
  bool allowed = true;
  // "no deploy windows", "inside allow window ...", "deny window ... is
  // active", "outside every allow window (...)".
  std::string reason;
  // When `allowed` next flips (the next allow window opens, the deny window
  // ends); nullopt: never within the horizon (8 days) or no windows.
  std::optional<WindowTime> next;
  // The zone `next` is best shown in: the zone of the window that decides it.
  std::string next_zone = "UTC";
  std::vector<WindowActivity> windows;  // every window of every group, in order
  // "2026-03-29T03:00:00+02:00", or "none within 8 days".
  std::string NextText() const;
};

// Evaluates one group of windows at `now`. Windows that do not validate
// are ignored (the loader reports them).
WindowVerdict EvaluateWindows(const std::vector<DeployWindow>& windows, WindowTime now);
// Every group must allow (Environment windows, then an Agent's).
WindowVerdict EvaluateWindowGroups(const std::vector<const std::vector<DeployWindow>*>& groups,
                                   WindowTime now);

// Which changes of a plan the windows let through now. An agent's change
// waits when the Environment's windows or its own block (both must allow); a
// delete of an agent no longer declared follows the Environment's windows.
struct PlanGate {
  Plan allowed;               // the plan without the held changes (no-ops kept)
  std::vector<Change> held;   // changes a window holds back
  WindowVerdict environment;  // the Environment's windows alone
  // blocked: the Environment's windows block, or a change is held.
  bool blocked = false;
  std::string reason;              // what blocks (the Environment's, else the first held agent's)
  std::optional<WindowTime> next;  // when the verdict that blocks next changes
  std::string next_text;  // RFC 3339 in the deciding window's zone, or "none within 8 days"
  std::vector<std::string> held_agents;  // sorted, unique
  // Every window in force for this plan (DescribeWindow), for
  // --ignore-windows' warning.
  std::vector<std::string> windows;
};
PlanGate GatePlan(const Plan& plan, const DesiredState& desired, WindowTime now);

}  // namespace reconcile
