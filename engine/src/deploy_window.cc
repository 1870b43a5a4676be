#include "reconcile/deploy_window.h"

#include <date/date.h>
#include <date/tz.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <map>
#include <sstream>

namespace reconcile {

namespace {

using std::chrono::days;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;

constexpr int kScanDays = 3660;   // NextFiring looks 10 years ahead
constexpr days kHorizon{8};       // the verdict's `next` looks 8 days ahead
constexpr int kMaxSteps = 20000;  // bound on verdict / union walks

struct FieldSpec {
  const char* name;
  int min;
  int max;
  const std::array<const char*, 12>* names;  // index 0 = min
};

const std::array<const char*, 12> kMonthNames = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                 "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
const std::array<const char*, 12> kDayNames = {"SUN", "MON",   "TUE",   "WED",   "THU",   "FRI",
                                               "SAT", nullptr, nullptr, nullptr, nullptr, nullptr};

const FieldSpec kFields[5] = {
    {"minute", 0, 59, nullptr},        {"hour", 0, 23, nullptr},
    {"day-of-month", 1, 31, nullptr},  {"month", 1, 12, &kMonthNames},
    {"day-of-week", 0, 7, &kDayNames},
};

Status FieldError(const FieldSpec& f, const std::string& message) {
  return Status::Invalid(std::string("field '") + f.name + "': " + message);
}

Result<int> ParseValue(const FieldSpec& f, const std::string& text) {
  if (text.empty()) return FieldError(f, "empty value");
  if (f.names != nullptr && std::isalpha(static_cast<unsigned char>(text[0]))) {
    std::string up;
    for (char c : text) up += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    for (size_t i = 0; i < f.names->size(); ++i) {
      if ((*f.names)[i] != nullptr && up == (*f.names)[i]) return f.min + static_cast<int>(i);
    }
    return FieldError(f, "'" + text + "' is not a known name");
  }
  for (char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c))) {
      return FieldError(f, "'" + text + "' is not a number");
    }
  }
  if (text.size() > 4)
    return FieldError(
        f, text + " is out of range " + std::to_string(f.min) + "-" + std::to_string(f.max));
  int v = std::stoi(text);
  if (v < f.min || v > f.max) {
    return FieldError(f, std::to_string(v) + " is out of range " + std::to_string(f.min) + "-" +
                             std::to_string(f.max));
  }
  return v;
}

// Parses one field into the values it allows (f.min..f.max); `star` is set
// when the field starts with '*'.
Result<std::vector<bool>> ParseField(const FieldSpec& f, const std::string& text, bool* star) {
  std::vector<bool> allowed(static_cast<size_t>(f.max + 1), false);
  *star = !text.empty() && text[0] == '*';
  std::stringstream items(text);
  std::string item;
  bool any = false;
  while (std::getline(items, item, ',')) {
    any = true;
    if (item.empty()) return FieldError(f, "empty list item in '" + text + "'");
    int step = 1;
    std::string range = item;
    if (auto slash = item.find('/'); slash != std::string::npos) {
      range = item.substr(0, slash);
      std::string st = item.substr(slash + 1);
      if (st.empty() || !std::all_of(st.begin(), st.end(), [](char c) {
            return std::isdigit(static_cast<unsigned char>(c));
          })) {
        return FieldError(f, "step '" + st + "' is not a number");
      }
      if (st.size() > 4 || std::stoi(st) == 0 || std::stoi(st) > f.max) {
        return FieldError(f, "step " + st + " is out of range 1-" + std::to_string(f.max));
      }
      step = std::stoi(st);
    }
    int lo = 0;
    int hi = 0;
    if (range == "*") {
      lo = f.min;
      hi = f.max;
    } else if (auto dash = range.find('-'); dash != std::string::npos) {
      auto a = ParseValue(f, range.substr(0, dash));
      if (!a.ok()) return a.status();
      auto b = ParseValue(f, range.substr(dash + 1));
      if (!b.ok()) return b.status();
      lo = *a;
      hi = *b;
      if (lo > hi) {
        return FieldError(f, "range " + range + " is backwards (" + std::to_string(lo) + " > " +
                                 std::to_string(hi) + ")");
      }
    } else {
      auto a = ParseValue(f, range);
      if (!a.ok()) return a.status();
      lo = *a;
      // "5/10" means 5-max/10, as in Vixie cron.
      hi = item.find('/') != std::string::npos ? f.max : lo;
    }
    for (int v = lo; v <= hi; v += step) allowed[static_cast<size_t>(v)] = true;
  }
  if (!any) return FieldError(f, "empty");
  return allowed;
}

std::string Macro(const std::string& expr, bool* known) {
  *known = true;
  if (expr == "@hourly") return "0 * * * *";
  if (expr == "@daily" || expr == "@midnight") return "0 0 * * *";
  if (expr == "@weekly") return "0 0 * * 0";
  if (expr == "@monthly") return "0 0 1 * *";
  if (expr == "@yearly" || expr == "@annually") return "0 0 1 1 *";
  *known = false;
  return expr;
}

const date::time_zone* FindZone(const std::string& name) {
  try {
    return date::locate_zone(name);
  } catch (const std::exception&) {
    return nullptr;
  }
}

// The instant a wall-clock minute of `tz` fires at: a skipped time fires at
// the transition, a repeated one at its first occurrence.
date::sys_seconds Resolve(const date::time_zone* tz, date::local_seconds lt) {
  date::local_info info = tz->get_info(lt);
  switch (info.result) {
    case date::local_info::nonexistent:
      return info.first.end;
    case date::local_info::ambiguous:
    case date::local_info::unique:
    default:
      return date::sys_seconds{lt.time_since_epoch() - info.first.offset};
  }
}

std::optional<WindowTime> NextFiringOf(const CronSchedule& cron, const date::time_zone* tz,
                                       WindowTime after) {
  auto after_s = date::floor<std::chrono::seconds>(after);
  // Start a day early: a local time before `after`'s wall clock may map
  // to an instant after it (around a transition).
  date::local_seconds start_local = tz->to_local(after_s);
  date::local_days day = date::floor<days>(start_local) - days{1};
  for (int i = 0; i < kScanDays; ++i, day += days{1}) {
    date::year_month_day ymd{day};
    unsigned wd = date::weekday{day}.c_encoding();
    if (!cron.MatchesDay(static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                         wd)) {
      continue;
    }
    for (int h = 0; h < 24; ++h) {
      if (!cron.hours[static_cast<size_t>(h)]) continue;
      for (int m = 0; m < 60; ++m) {
        if (!cron.minutes[static_cast<size_t>(m)]) continue;
        date::local_seconds lt = day + hours{h} + minutes{m};
        date::sys_seconds t = Resolve(tz, lt);
        if (WindowTime{t} > after) return WindowTime{t};
      }
    }
  }
  return std::nullopt;
}

struct Compiled {
  const DeployWindow* window = nullptr;
  CronSchedule cron;
  const date::time_zone* tz = nullptr;
  milliseconds duration{0};
};

std::vector<Compiled> Compile(const std::vector<DeployWindow>& windows) {
  std::vector<Compiled> out;
  for (const DeployWindow& w : windows) {
    if (ValidateWindow(w)) continue;
    Compiled c;
    c.window = &w;
    c.cron = *ParseCron(w.schedule);
    c.tz = FindZone(w.time_zone);
    c.duration = milliseconds{w.duration_ms};
    out.push_back(std::move(c));
  }
  return out;
}

// Whether `c` is active at `now`; when active, `opened` is the firing that
// opened the current stretch (the earliest of overlapping ones is not
// needed: the latest one still open is enough for the reason).
bool ActiveAt(const Compiled& c, WindowTime now, WindowTime* opened) {
  auto t = NextFiringOf(c.cron, c.tz, now - c.duration);
  if (!t || *t > now) return false;
  *opened = *t;
  return true;
}

// The end of the stretch of overlapping openings `c` is in at `now` (active);
// nullopt beyond the horizon.
std::optional<WindowTime> StretchEnd(const Compiled& c, WindowTime opened, WindowTime now) {
  WindowTime end = opened + c.duration;
  for (int i = 0; i < kMaxSteps; ++i) {
    if (end - now > kHorizon) return std::nullopt;
    // A firing in (end - duration, end] extends the stretch.
    auto n = NextFiringOf(c.cron, c.tz, end - c.duration);
    if (!n || *n > end) return end;
    end = *n + c.duration;
  }
  return std::nullopt;
}

struct GroupState {
  bool allowed = true;
  std::string reason;
  std::string zone = "UTC";
};

GroupState Decide(const std::vector<Compiled>& group, const std::vector<bool>& active) {
  GroupState g;
  bool any_allow = false;
  for (size_t i = 0; i < group.size(); ++i) {
    if (group[i].window->kind == DeployWindow::Kind::kDeny && active[i]) {
      g.allowed = false;
      g.reason = DescribeWindow(*group[i].window) + " is active";
      g.zone = group[i].window->time_zone;
      return g;
    }
  }
  for (size_t i = 0; i < group.size(); ++i) {
    if (group[i].window->kind != DeployWindow::Kind::kAllow) continue;
    any_allow = true;
    if (active[i]) {
      g.reason = "inside " + DescribeWindow(*group[i].window);
      g.zone = group[i].window->time_zone;
      return g;
    }
  }
  if (any_allow) {
    g.allowed = false;
    std::string list;
    for (const Compiled& c : group) {
      if (c.window->kind != DeployWindow::Kind::kAllow) continue;
      if (!list.empty()) list += ", ";
      list += DescribeWindow(*c.window);
      if (g.zone == "UTC") g.zone = c.window->time_zone;
    }
    g.reason = "outside every allow window (" + list + ")";
  }
  return g;
}

struct Combined {
  bool allowed = true;
  std::string reason;
  std::string zone = "UTC";
};

Combined DecideAll(const std::vector<std::vector<Compiled>>& groups, WindowTime now,
                   std::vector<WindowActivity>* activity) {
  Combined out;
  std::vector<std::string> allow_reasons;
  for (const auto& group : groups) {
    std::vector<bool> active;
    for (const Compiled& c : group) {
      WindowTime opened{};
      bool a = ActiveAt(c, now, &opened);
      active.push_back(a);
      if (activity != nullptr) {
        WindowActivity wa;
        wa.window = c.window;
        wa.active = a;
        if (a) {
          wa.opened = opened;
          wa.closes = StretchEnd(c, opened, now);
        } else {
          wa.opens = NextFiringOf(c.cron, c.tz, now);
        }
        activity->push_back(wa);
      }
    }
    GroupState g = Decide(group, active);
    if (!g.allowed && out.allowed) {
      out.allowed = false;
      out.reason = g.reason;
      out.zone = g.zone;
    } else if (g.allowed && !g.reason.empty()) {
      allow_reasons.push_back(g.reason);
      if (out.allowed && out.zone == "UTC") out.zone = g.zone;
    }
  }
  if (out.allowed) {
    if (allow_reasons.empty()) {
      out.reason = "no deploy window is in force";
    } else {
      for (const std::string& r : allow_reasons) {
        if (!out.reason.empty()) out.reason += "; ";
        out.reason += r;
      }
    }
  }
  return out;
}

// The next instant after `t` at which any window of `groups` opens or closes.
std::optional<WindowTime> NextEvent(const std::vector<std::vector<Compiled>>& groups,
                                    WindowTime t) {
  std::optional<WindowTime> best;
  for (const auto& group : groups) {
    for (const Compiled& c : group) {
      WindowTime opened{};
      std::optional<WindowTime> e;
      if (ActiveAt(c, t, &opened)) {
        e = opened + c.duration;  // this opening ends (another may overlap it)
      } else {
        e = NextFiringOf(c.cron, c.tz, t);
      }
      if (e && (!best || *e < *best)) best = e;
    }
  }
  return best;
}

WindowVerdict Evaluate(const std::vector<std::vector<Compiled>>& groups, WindowTime now) {
  WindowVerdict v;
  Combined at_now = DecideAll(groups, now, &v.windows);
  v.allowed = at_now.allowed;
  v.reason = at_now.reason;
  bool any = false;
  for (const auto& g : groups) any = any || !g.empty();
  if (!any) return v;
  WindowTime t = now;
  for (int i = 0; i < kMaxSteps; ++i) {
    auto e = NextEvent(groups, t);
    if (!e || *e - now > kHorizon) break;
    Combined at_e = DecideAll(groups, *e, nullptr);
    if (at_e.allowed != v.allowed) {
      v.next = *e;
      // Show the time in the zone of what decides it: the window that
      // opens (now blocked), or the deny window that ends.
      v.next_zone = v.allowed ? at_e.zone : at_now.zone;
      break;
    }
    t = *e;
  }
  return v;
}

}  // namespace

bool CronSchedule::MatchesDay(unsigned month, unsigned day, unsigned weekday) const {
  if (!months[month]) return false;
  bool dom = days_of_month[day];
  bool dow = days_of_week[weekday % 7];
  if (dom_star || dow_star) return dom && dow;
  return dom || dow;
}

Result<CronSchedule> ParseCron(std::string_view expression) {
  std::string expr(expression);
  // Trim.
  while (!expr.empty() && std::isspace(static_cast<unsigned char>(expr.back()))) expr.pop_back();
  size_t b = 0;
  while (b < expr.size() && std::isspace(static_cast<unsigned char>(expr[b]))) ++b;
  expr = expr.substr(b);
  if (!expr.empty() && expr[0] == '@') {
    bool known = false;
    std::string lower;
    for (char c : expr) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    expr = Macro(lower, &known);
    if (!known) {
      return Status::Invalid("unknown schedule '" + std::string(expression) +
                             "' (expected @hourly, @daily, @weekly, @monthly or @yearly)");
    }
  }
  std::stringstream in(expr);
  std::vector<std::string> fields;
  std::string f;
  while (in >> f) fields.push_back(f);
  if (fields.size() != 5) {
    return Status::Invalid("expected 5 fields (minute hour day-of-month month day-of-week), got " +
                           std::to_string(fields.size()));
  }
  CronSchedule s;
  bool star = false;
  for (int i = 0; i < 5; ++i) {
    auto v = ParseField(kFields[i], fields[static_cast<size_t>(i)], &star);
    if (!v.ok()) return v.status();
    const std::vector<bool>& allowed = *v;
    for (int x = kFields[i].min; x <= kFields[i].max; ++x) {
      if (!allowed[static_cast<size_t>(x)]) continue;
      auto ux = static_cast<size_t>(x);
      switch (i) {
        case 0:
          s.minutes[ux] = true;
          break;
        case 1:
          s.hours[ux] = true;
          break;
        case 2:
          s.days_of_month[ux] = true;
          break;
        case 3:
          s.months[ux] = true;
          break;
        case 4:
          s.days_of_week[ux % 7] = true;
          break;
      }
    }
    if (i == 2) s.dom_star = star;
    if (i == 4) s.dow_star = star;
  }
  return s;
}

std::optional<WindowError> ValidateWindow(const DeployWindow& window) {
  auto cron = ParseCron(window.schedule);
  if (!cron.ok()) return WindowError{"schedule", cron.status().message()};
  const date::time_zone* tz = FindZone(window.time_zone);
  if (tz == nullptr) {
    return WindowError{"timeZone", "unknown time zone '" + window.time_zone +
                                       "' (not in the system tz database, /usr/share/zoneinfo)"};
  }
  if (window.duration_ms <= 0) {
    return WindowError{"duration", "must be greater than 0"};
  }
  if (!NextFiringOf(*cron, tz, WindowTime{date::sys_days{date::year{2026} / 1 / 1}})) {
    return WindowError{"schedule", "'" + window.schedule + "' never fires"};
  }
  return std::nullopt;
}

void ValidateWindows(const DesiredState& state, Diagnostics& diagnostics) {
  auto check = [&diagnostics](const std::vector<DeployWindow>& windows, const std::string& what) {
    for (size_t i = 0; i < windows.size(); ++i) {
      auto e = ValidateWindow(windows[i]);
      if (!e) continue;
      const SourceLocation& at = windows[i].location;
      diagnostics.Error(at.file, at.line, at.column,
                        "spec.windows[" + std::to_string(i) + "]." + e->field, e->message + what);
    }
  };
  if (state.environment) check(state.environment->windows, "");
  for (const Agent& a : state.agents) check(a.windows, " (Agent '" + a.name + "')");
}

std::string FormatWindowDuration(std::int64_t ms) {
  if (ms <= 0) return "0s";
  std::string out;
  std::int64_t h = ms / 3600000;
  std::int64_t m = (ms / 60000) % 60;
  std::int64_t s = (ms / 1000) % 60;
  std::int64_t rest = ms % 1000;
  if (h) out += std::to_string(h) + "h";
  if (m) out += std::to_string(m) + "m";
  if (s || rest) {
    out += std::to_string(s);
    if (rest) {
      std::string frac = std::to_string(1000 + rest).substr(1);
      while (!frac.empty() && frac.back() == '0') frac.pop_back();
      out += "." + frac;
    }
    out += "s";
  }
  return out;
}

std::string DescribeWindow(const DeployWindow& window) {
  return std::string(WindowKindName(window.kind)) + " window \"" + window.schedule + "\" for " +
         FormatWindowDuration(window.duration_ms) + " (" + window.time_zone + ")";
}

std::string FormatInZone(WindowTime t, const std::string& time_zone) {
  auto secs = date::floor<std::chrono::seconds>(t);
  const date::time_zone* tz = FindZone(time_zone);
  if (tz == nullptr || time_zone == "UTC") return FormatRfc3339Utc(t);
  return date::format("%FT%T%Ez", date::make_zoned(tz, secs));
}

std::string FormatRfc3339Utc(WindowTime t) {
  return date::format("%FT%TZ", date::floor<std::chrono::seconds>(t));
}

std::optional<WindowTime> ParseRfc3339(const std::string& text) {
  // YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM|-HH:MM)
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, n = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &n) !=
      6) {
    return std::nullopt;
  }
  size_t i = static_cast<size_t>(n);
  std::int64_t ms = 0;
  if (i < text.size() && text[i] == '.') {
    int digits = 0;
    for (++i; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i) {
      if (digits++ < 3) ms = ms * 10 + (text[i] - '0');
    }
    for (; digits < 3; ++digits) ms *= 10;
  }
  int offset_min = 0;
  if (i < text.size() && (text[i] == 'Z' || text[i] == 'z')) {
    ++i;
  } else if (i < text.size() && (text[i] == '+' || text[i] == '-')) {
    int oh = 0, om = 0, m = 0;
    if (std::sscanf(text.c_str() + i + 1, "%2d:%2d%n", &oh, &om, &m) != 2) return std::nullopt;
    offset_min = (text[i] == '-' ? -1 : 1) * (oh * 60 + om);
    i += 1 + static_cast<size_t>(m);
  } else {
    return std::nullopt;
  }
  if (i != text.size()) return std::nullopt;
  date::year_month_day ymd{date::year{y}, date::month{static_cast<unsigned>(mo)},
                           date::day{static_cast<unsigned>(d)}};
  if (!ymd.ok() || h > 23 || mi > 59 || s > 60) return std::nullopt;
  auto t = date::sys_days{ymd} + hours{h} + minutes{mi} + std::chrono::seconds{s} +
           milliseconds{ms} - minutes{offset_min};
  return WindowTime{t};
}

std::optional<WindowTime> NextFiring(const DeployWindow& window, WindowTime after) {
  auto cron = ParseCron(window.schedule);
  const date::time_zone* tz = FindZone(window.time_zone);
  if (!cron.ok() || tz == nullptr) return std::nullopt;
  return NextFiringOf(*cron, tz, after);
}

std::string WindowVerdict::NextText() const {
  if (!next) return "none within " + std::to_string(kHorizon.count()) + " days";
  return FormatInZone(*next, next_zone);
}

WindowVerdict EvaluateWindows(const std::vector<DeployWindow>& windows, WindowTime now) {
  return EvaluateWindowGroups({&windows}, now);
}

WindowVerdict EvaluateWindowGroups(const std::vector<const std::vector<DeployWindow>*>& groups,
                                   WindowTime now) {
  std::vector<std::vector<Compiled>> compiled;
  for (const auto* g : groups) {
    if (g != nullptr) compiled.push_back(Compile(*g));
  }
  return Evaluate(compiled, now);
}

PlanGate GatePlan(const Plan& plan, const DesiredState& desired, WindowTime now) {
  static const std::vector<DeployWindow> kNone;
  const std::vector<DeployWindow>& env = desired.environment ? desired.environment->windows : kNone;
  PlanGate gate;
  gate.allowed = plan;
  gate.allowed.changes.clear();
  gate.environment = EvaluateWindows(env, now);
  for (const DeployWindow& w : env) gate.windows.push_back(DescribeWindow(w));
  if (!gate.environment.allowed) {
    gate.blocked = true;
    gate.reason = gate.environment.reason;
    gate.next = gate.environment.next;
    gate.next_text = gate.environment.NextText();
  } else {
    // Open: the next change is when the window closes (or a deny one opens).
    gate.next = gate.environment.next;
    gate.next_text = gate.environment.NextText();
  }
  std::map<std::string, WindowVerdict> by_agent;
  for (const Change& c : plan.changes) {
    if (c.action == Action::kNoOp) {
      gate.allowed.changes.push_back(c);
      continue;
    }
    auto it = by_agent.find(c.name);
    if (it == by_agent.end()) {
      const Agent* a = desired.FindAgent(c.name);
      WindowVerdict v = a == nullptr || a->windows.empty()
                            ? gate.environment
                            : EvaluateWindowGroups({&env, &a->windows}, now);
      if (a != nullptr) {
        for (const DeployWindow& w : a->windows) {
          gate.windows.push_back(DescribeWindow(w) + " of agent '" + a->name + "'");
        }
      }
      it = by_agent.emplace(c.name, std::move(v)).first;
    }
    const WindowVerdict& v = it->second;
    if (v.allowed) {
      gate.allowed.changes.push_back(c);
      continue;
    }
    gate.held.push_back(c);
    if (gate.held_agents.empty() || gate.held_agents.back() != c.name) {
      gate.held_agents.push_back(c.name);
    }
    if (!gate.blocked) {
      gate.blocked = true;
      gate.reason =
          v.reason + (v.reason == gate.environment.reason ? "" : " (agent '" + c.name + "')");
      gate.next = v.next;
      gate.next_text = v.NextText();
    } else if (gate.environment.allowed && v.next && (!gate.next || *v.next < *gate.next)) {
      gate.next = v.next;
      gate.next_text = v.NextText();
    }
  }
  std::sort(gate.held_agents.begin(), gate.held_agents.end());
  gate.held_agents.erase(std::unique(gate.held_agents.begin(), gate.held_agents.end()),
                         gate.held_agents.end());
  return gate;
}

}  // namespace reconcile
