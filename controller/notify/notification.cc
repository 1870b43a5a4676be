#include "notify/notification.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "reconcile/spec.h"

namespace reconcile::controller::notify {

namespace {

std::string AgentOf(const std::string& address) {
  auto dot = address.find('.');
  return dot == std::string::npos ? address : address.substr(dot + 1);
}

bool Chosen(const std::vector<std::string>& agents, const std::string& agent) {
  return agents.empty() || std::binary_search(agents.begin(), agents.end(), agent);
}

const char* ActionWord(Action a) {
  switch (a) {
    case Action::kCreate:
      return "create";
    case Action::kUpdate:
      return "update";
    case Action::kReplace:
      return "replace";
    case Action::kDelete:
      return "delete";
    case Action::kNoOp:
      break;
  }
  return "no-op";
}

std::string Cut(std::string s, size_t n) {
  if (s.size() <= n) return s;
  s.resize(n - 3);
  // Never end inside a UTF-8 sequence.
  while (!s.empty() && (static_cast<unsigned char>(s.back()) & 0xC0) == 0x80) s.pop_back();
  if (!s.empty() && (static_cast<unsigned char>(s.back()) & 0x80)) s.pop_back();
  return s + "...";
}

std::string JoinList(const std::vector<std::string>& items, const char* sep = ", ") {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : sep) + i;
  return out;
}

}  // namespace

std::vector<std::string> ClassifyPass(const PassRequest::Kind kind, const PassReport& report,
                                      const std::vector<Event>& changes,
                                      const std::vector<std::string>& agents) {
  std::set<std::string> found;
  const Code code = report.status.code();
  if (code == Code::kInvalid && report.stale_tree) {
    found.insert("invalid-revision");
  } else if (!report.status.ok() && code != Code::kCancelled) {
    bool any_failed = false, chosen_failed = false;
    for (const Event& e : changes) {
      if (e.type != Event::Type::kChangeFailed) continue;
      any_failed = true;
      chosen_failed |= Chosen(agents, AgentOf(e.address));
    }
    // A failure that is no change's (lock, observe, state) concerns every agent.
    if (!any_failed || chosen_failed) found.insert("failed");
  }
  bool chosen_changed = false;
  for (const Event& e : changes) {
    if (e.type == Event::Type::kChangeSucceeded && Chosen(agents, AgentOf(e.address))) {
      chosen_changed = true;
    }
  }
  if (report.status.ok() && report.changes > 0 && kind == PassRequest::Kind::kApply &&
      (agents.empty() || chosen_changed)) {
    found.insert(report.state && report.state->pin ? "rolled-back" : "applied");
  }
  if (report.state) {
    for (const auto& [address, rs] : report.state->resources) {
      if (rs.health == "unhealthy" && Chosen(agents, rs.name)) found.insert("unhealthy");
    }
  }
  for (const auto* list : {&report.reported, &report.healed}) {
    for (const std::string& a : *list) {
      if (Chosen(agents, a)) found.insert("drift");
    }
  }
  if (report.window.blocked) {
    bool chosen = report.window.held_agents.empty() || agents.empty();
    for (const std::string& a : report.window.held_agents) chosen |= Chosen(agents, a);
    if (chosen) found.insert("blocked");
  }
  if (report.approval.waiting) {  // a plan waits for approval (README "Approvals")
    bool chosen = agents.empty();
    for (const std::string& a : report.approval.agents) chosen |= Chosen(agents, a);
    if (chosen) found.insert("blocked");
  }
  std::vector<std::string> out;
  for (const char* e : kNotifierEvents) {
    if (found.count(e)) out.push_back(e);
  }
  return out;
}

PassSummary Summarize(const Notifier& notifier, const std::string& environment,
                      PassRequest::Kind kind, const PassReport& report,
                      const std::vector<Event>& changes, const std::string& at) {
  PassSummary s;
  s.notifier = notifier.name;
  s.environment = environment;
  s.revision = report.revision;
  s.kind = kind == PassRequest::Kind::kApply ? "apply" : "drift";
  s.status = report.status.ok() ? "ok" : CodeName(report.status.code());
  if (!report.status.ok()) s.error = Cut(report.status.message(), 2000);
  s.events = ClassifyPass(kind, report, changes, notifier.agents);
  s.changes = report.changes;
  for (const Event& e : changes) {
    if (!Chosen(notifier.agents, AgentOf(e.address))) continue;
    if (e.type == Event::Type::kChangeSucceeded) {
      // The applier tells the action in its message ("update complete").
      std::string action = ActionWord(e.action);
      if (e.action == Action::kNoOp) {
        action = e.message.substr(0, e.message.find(' '));
        if (action.empty()) action = "changed";
      }
      s.changed.push_back(e.address + " (" + action + ")");
    } else if (e.type == Event::Type::kChangeFailed) {
      s.failed.push_back(e.address + ": " + Cut(e.message, 500));
    }
  }
  if (report.state) {
    for (const auto& [address, rs] : report.state->resources) {
      if (rs.health == "unhealthy" && Chosen(notifier.agents, rs.name)) {
        s.unhealthy.push_back(rs.name);
      }
    }
  }
  for (const std::string& a : report.reported) {
    if (Chosen(notifier.agents, a)) s.drifted.push_back(a);
  }
  for (const std::string& a : report.healed) {
    if (Chosen(notifier.agents, a)) {
      s.drifted.push_back(a);
      s.healed.push_back(a);
    }
  }
  std::sort(s.drifted.begin(), s.drifted.end());
  if (report.window.blocked) {
    s.blocked = report.window.reason.empty() ? "a deploy window" : report.window.reason;
    s.blocked_until = report.window.next_text;
  }
  if (report.approval.waiting && s.blocked.empty()) {
    s.approval_plan = report.approval.id;
    s.blocked = report.approval.id.empty() ? "awaiting approval"
                                           : "awaiting approval of plan " + report.approval.id;
  }
  for (const Diagnostic& d : report.diagnostics.items()) {
    if (d.severity != Severity::kError) continue;
    if (s.diagnostics.size() >= 20) break;
    s.diagnostics.push_back(d);
  }
  s.at = at;
  return s;
}

std::string ShortRevision(const std::string& revision) {
  return IsCommitSha(revision) ? revision.substr(0, 12) : revision;
}

bool IsCommitSha(const std::string& revision) {
  return revision.size() == 40 &&
         std::all_of(revision.begin(), revision.end(),
                     [](unsigned char c) { return std::isxdigit(c) && !std::isupper(c); });
}

std::string Headline(const PassSummary& s, const std::vector<std::string>& events) {
  std::string h = s.environment + ": " + JoinList(events) + " at " + ShortRevision(s.revision);
  if (s.changes > 0) {
    h += " (" + std::to_string(s.changes) + (s.changes == 1 ? " change)" : " changes)");
  }
  return h;
}

namespace {

// The lines below the headline (plain text; Slack's mrkdwn shows it as is
// but for the escaped characters).
std::vector<std::string> Details(const PassSummary& s) {
  std::vector<std::string> lines;
  if (!s.changed.empty()) lines.push_back("changed: " + JoinList(s.changed));
  for (const auto& f : s.failed) lines.push_back("failed: " + f);
  if (!s.error.empty() && s.failed.empty() && s.diagnostics.empty()) {
    lines.push_back("error: " + Cut(s.error, 500));
  }
  for (const auto& d : s.diagnostics) {
    lines.push_back(d.file + ":" + std::to_string(d.line) + ":" + std::to_string(d.column) + ": " +
                    (d.field.empty() ? "" : d.field + ": ") + Cut(d.message, 300));
  }
  if (!s.unhealthy.empty()) lines.push_back("unhealthy: " + JoinList(s.unhealthy));
  if (!s.drifted.empty()) {
    lines.push_back("drift: " + JoinList(s.drifted) +
                    (s.healed.empty() ? " (reported)" : " (healed: " + JoinList(s.healed) + ")"));
  }
  if (!s.blocked.empty()) {
    lines.push_back("blocked: " + s.blocked +
                    (s.blocked_until.empty() ? "" : " (until " + s.blocked_until + ")"));
  }
  return lines;
}

// Slack's mrkdwn escapes: &, <, >.
std::string SlackEscape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '&') {
      out += "&amp;";
    } else if (c == '<') {
      out += "&lt;";
    } else if (c == '>') {
      out += "&gt;";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

nlohmann::json SlackMessage(const PassSummary& s, const std::vector<std::string>& events) {
  const std::string head = Headline(s, events);
  const std::vector<std::string> details = Details(s);
  std::string text = "[reconcile] " + head;
  for (const auto& l : details) text += "\n" + l;
  nlohmann::json blocks = nlohmann::json::array();
  blocks.push_back(
      {{"type", "section"},
       {"text", {{"type", "mrkdwn"}, {"text", Cut(SlackEscape("*" + head + "*"), 3000)}}}});
  if (!details.empty()) {
    blocks.push_back(
        {{"type", "section"},
         {"text",
          {{"type", "mrkdwn"}, {"text", Cut(SlackEscape(JoinList(details, "\n")), 3000)}}}});
  }
  blocks.push_back(
      {{"type", "context"},
       {"elements",
        {{{"type", "mrkdwn"},
          {"text", SlackEscape("revision " + s.revision + " · notifier " + s.notifier)}}}}});
  return {{"text", Cut(SlackEscape(text), 4000)}, {"blocks", blocks}};
}

nlohmann::json WebhookEvent(const PassSummary& s, const std::vector<std::string>& events,
                            const std::string& idempotency_key) {
  nlohmann::json diags = nlohmann::json::array();
  for (const auto& d : s.diagnostics) {
    diags.push_back({{"file", d.file},
                     {"line", d.line},
                     {"column", d.column},
                     {"field", d.field},
                     {"message", d.message}});
  }
  nlohmann::json e = {{"apiVersion", "reconcile.dev/v1alpha1"},
                      {"kind", "NotificationEvent"},
                      {"id", idempotency_key},
                      {"notifier", s.notifier},
                      {"environment", s.environment},
                      {"revision", s.revision},
                      {"events", events},
                      {"summary", Headline(s, events)},
                      {"pass", {{"kind", s.kind}, {"status", s.status}, {"changes", s.changes}}},
                      {"changed", s.changed},
                      {"failed", s.failed},
                      {"unhealthy", s.unhealthy},
                      {"drift", s.drifted},
                      {"diagnostics", diags},
                      {"time", s.at}};
  if (!s.error.empty()) e["pass"]["error"] = s.error;
  if (!s.blocked.empty()) {
    e["blocked"] = {{"reason", s.blocked}};
    if (!s.blocked_until.empty()) e["blocked"]["until"] = s.blocked_until;
    if (!s.approval_plan.empty()) e["blocked"]["plan"] = s.approval_plan;
  }
  return e;
}

std::string IdempotencyKey(const std::string& notifier, const std::string& environment,
                           const std::string& revision, std::vector<std::string> events) {
  std::sort(events.begin(), events.end());
  Sha256 h;
  h.UpdateField(notifier);
  h.UpdateField(environment);
  h.UpdateField(revision);
  for (const auto& e : events) h.UpdateField(e);
  return "rcn-" + h.HexDigest().substr(0, 32);
}

CommitState FinalState(const PassSummary& s) {
  auto has = [&](const char* e) {
    return std::find(s.events.begin(), s.events.end(), e) != s.events.end();
  };
  if (has("invalid-revision")) return CommitState::kError;
  if (has("failed") || has("unhealthy")) return CommitState::kFailure;
  if (s.status != "ok") return CommitState::kFailure;
  if (has("blocked") && s.changes == 0) return CommitState::kPending;
  return CommitState::kSuccess;
}

const char* GithubState(CommitState s) {
  switch (s) {
    case CommitState::kPending:
    case CommitState::kRunning:
      return "pending";
    case CommitState::kSuccess:
      return "success";
    case CommitState::kFailure:
      return "failure";
    case CommitState::kError:
      return "error";
  }
  return "error";
}

const char* GitlabState(CommitState s) {
  switch (s) {
    case CommitState::kPending:
      return "pending";
    case CommitState::kRunning:
      return "running";
    case CommitState::kSuccess:
      return "success";
    case CommitState::kFailure:
    case CommitState::kError:
      return "failed";
  }
  return "failed";
}

std::string StatusDescription(const PassSummary& s, CommitState state) {
  std::string d;
  switch (state) {
    case CommitState::kPending:
      d = s.blocked.empty()         ? "applying"
          : s.approval_plan.empty() ? "held by a deploy window: " + s.blocked
                                    : s.blocked;
      break;
    case CommitState::kRunning:
      d = "applying";
      break;
    case CommitState::kSuccess:
      d = s.changes > 0 ? "applied, " + std::to_string(s.changes) +
                              (s.changes == 1 ? " change, healthy" : " changes, healthy")
                        : "up to date";
      break;
    case CommitState::kFailure:
      if (!s.unhealthy.empty()) {
        d = "unhealthy: " + JoinList(s.unhealthy);
      } else if (!s.failed.empty()) {
        d = "failed: " + s.failed.front();
      } else {
        d = "failed: " + s.error;
      }
      break;
    case CommitState::kError:
      d = "invalid revision: " + std::to_string(s.diagnostics.size()) +
          (s.diagnostics.size() == 1 ? " error" : " errors");
      if (!s.diagnostics.empty()) {
        const Diagnostic& first = s.diagnostics.front();
        d += ", " + first.file + ":" + std::to_string(first.line) + ": " + first.message;
      }
      break;
  }
  return Cut(d, 140);
}

}  // namespace reconcile::controller::notify
