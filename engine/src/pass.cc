#include "reconcile/pass.h"

#include <algorithm>
#include <map>

#include "reconcile/deploy_window.h"

namespace reconcile {

namespace {

// Keeps only the changes of the agents in `agents` (and their deletes).
Plan OnlyAgents(const Plan& plan, const std::set<std::string>& agents) {
  Plan out = plan;
  out.changes.clear();
  for (const Change& c : plan.changes) {
    if (c.action == Action::kNoOp || agents.count(c.name)) out.changes.push_back(c);
  }
  return out;
}

// Emits kStageFinished for the stage that ends now (stages follow one
// another, so each began when the previous one ended).
class Stages {
 public:
  explicit Stages(const ReconcilerDeps& deps) : deps_(deps) {
    if (deps_.clock != nullptr) last_ = deps_.clock->Now();
  }
  void Finished(const char* stage) {
    if (deps_.observer == nullptr) return;
    Event e;
    e.type = Event::Type::kStageFinished;
    e.step = stage;
    e.message = std::string(stage) + " done";
    if (deps_.clock != nullptr) {
      auto now = deps_.clock->Now();
      e.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(now - last_);
      last_ = now;
    }
    deps_.observer->OnEvent(e);
  }

 private:
  const ReconcilerDeps& deps_;
  std::chrono::steady_clock::time_point last_;
};

// Why an approved plan is not the plan computed now ("" when it is), in the
// words of the saved-plan rule (Reconciler::CheckSaved).
std::string StaleReason(const Plan& approved, const Plan& fresh) {
  if (approved.revision != fresh.revision) {
    return "the desired revision changed (plan of " + approved.revision + ", now " +
           fresh.revision + ")";
  }
  if (approved.observed_digest != fresh.observed_digest) {
    return "what runs changed since the plan was computed";
  }
  if (ToJson(approved) != ToJson(fresh)) return "the plan computed now differs from it";
  return "";
}

}  // namespace

std::vector<std::string> AgentsNeedingApproval(const Plan& plan, const DesiredState& desired) {
  const bool all = desired.environment && desired.environment->approval == ApprovalMode::kRequired;
  std::set<std::string> out;
  for (const Change& c : plan.changes) {
    if (c.action == Action::kNoOp) continue;
    const Agent* agent = desired.FindAgent(c.name);
    if (all || (agent != nullptr && agent->approval == ApprovalMode::kRequired)) out.insert(c.name);
  }
  return {out.begin(), out.end()};
}

PassReport RunPass(const ReconcilerDeps& deps, const PassRequest& request) {
  PassReport report;
  report.revision = request.revision;
  Reconciler r(deps);
  Stages stages(deps);
  r.set_record_content_digest(request.kind == PassRequest::Kind::kApply);
  Status s = r.Fetch(request.revision);
  stages.Finished("load");
  report.diagnostics = r.diagnostics();
  if (!s.ok()) {
    report.status = s;
    report.stale_tree = s.code() == Code::kInvalid && r.diagnostics().HasErrors();
    return report;
  }
  report.revision = r.snapshot().revision;
  report.notifiers = std::make_shared<const std::vector<Notifier>>(r.desired().notifiers);
  report.targets = r.desired().targets;
  for (const Agent& a : r.desired().agents) report.agent_locations[a.name] = a.location;
  if (s = r.Lock(request.lock_command); !s.ok()) {
    stages.Finished("state");
    report.status = s;
    return report;
  }
  s = r.ReadState();
  stages.Finished("state");
  if (!s.ok()) {
    report.status = s;
    return report;
  }
  report.state = r.recorded_shared();
  if (request.kind == PassRequest::Kind::kApply && !report.state->pin) {
    const std::string digest = r.ContentDigest();
    if (!digest.empty() && digest == report.state->content_digest) {
      report.unchanged = true;
      if (deps.observer != nullptr) {
        Event e;
        e.type = Event::Type::kStageStarted;
        e.message = "no change for this environment: content " + digest +
                    " as at the last apply; not observed, not planned";
        deps.observer->OnEvent(e);
      }
      return report;
    }
  }
  s = r.Observe();
  stages.Finished("observe");
  if (!s.ok()) {
    report.status = s;
    return report;
  }
  Plan plan = r.MakePlan();
  if (request.kind == PassRequest::Kind::kDrift) {
    report.drift = r.Drift();
    std::set<std::string> heal;
    std::set<std::string> drifted;
    for (const DriftItem& item : report.drift) {
      auto dot = item.address.find('.');
      drifted.insert(dot == std::string::npos ? item.address : item.address.substr(dot + 1));
    }
    // A drifted agent also shows as a change in the plan (missing, stopped,
    // scaled); changes of agents not drifted (a fresh state entry) are left
    // to the next apply pass.
    for (const std::string& name : drifted) {
      const Agent* agent = r.desired().FindAgent(name);
      const bool approval =
          agent != nullptr && (agent->approval == ApprovalMode::kRequired ||
                               (r.desired().environment &&
                                r.desired().environment->approval == ApprovalMode::kRequired));
      if (agent != nullptr && agent->drift == DriftMode::kHeal && !agent->suspend && !approval &&
          request.heal_allowed.count(name)) {
        heal.insert(name);
      } else {
        report.reported.push_back(name);
      }
    }
    plan = OnlyAgents(plan, heal);
    for (const Change& c : plan.changes) {
      if (c.action != Action::kNoOp) report.healed.push_back(c.name);
    }
  }
  // Deploy windows: what a window holds back is planned and reported, not
  // applied; drift healing waits too unless healOutsideWindows.
  const DesiredState& desired = r.desired();
  const bool heal_free = request.kind == PassRequest::Kind::kDrift && desired.environment &&
                         desired.environment->heal_outside_windows;
  if (desired.environment) report.window.environment = desired.environment->name;
  std::optional<WindowTime> now = ParseRfc3339(deps.clock->NowRfc3339());
  if (now && !heal_free) {
    PlanGate gate = GatePlan(plan, desired, *now);
    report.window.blocked = gate.blocked;
    report.window.reason = gate.reason;
    report.window.next = gate.next;
    report.window.next_text = gate.next_text;
    report.window.held = static_cast<int>(gate.held.size());
    report.window.held_agents = gate.held_agents;
    if (!gate.held.empty()) {
      for (const std::string& a : gate.held_agents) {
        auto it = std::find(report.healed.begin(), report.healed.end(), a);
        if (it != report.healed.end()) {
          report.healed.erase(it);
          report.reported.push_back(a);
        }
      }
      plan = std::move(gate.allowed);
      if (!plan.HasChanges()) {
        // Nothing may change: no apply, no state write.
        stages.Finished("plan");
        report.state = r.recorded_shared();
        return report;
      }
    }
  }
  // Approvals: the whole plan waits unless it is exactly the approved one.
  if (request.kind == PassRequest::Kind::kApply) {
    report.approval.planned = true;
    report.approval.agents = AgentsNeedingApproval(plan, desired);
    std::string refused;
    if (request.approved) refused = StaleReason(*request.approved, plan);
    if (request.approved && refused.empty()) {
      report.approval.applied = true;
    } else {
      report.approval.refused = refused;
      if (!report.approval.agents.empty()) {
        report.approval.waiting = true;
        report.approval.plan = plan;
        stages.Finished("plan");
        report.state = r.recorded_shared();
        return report;
      }
    }
  }
  for (const Change& c : plan.changes) report.changes += c.action != Action::kNoOp;
  stages.Finished("plan");
  const bool audited =
      deps.audit != nullptr && (request.kind == PassRequest::Kind::kApply || report.changes > 0);
  if (audited) {
    if (Status a = deps.audit->Check(); !a.ok()) {
      report.status = a.WithContext("nothing was applied");
      return report;
    }
  }
  report.outcome = r.ApplyPlan(plan, request.apply);
  stages.Finished("apply");
  report.status = report.outcome.status;
  if (audited) {
    AuditEntry entry = AuditEntryForPlan(
        request.actor, request.kind == PassRequest::Kind::kDrift ? "heal" : "apply", plan,
        report.outcome.status);
    entry.environment = report.window.environment;
    if (Status a = deps.audit->Append(std::move(entry)); !a.ok()) {
      report.status = report.status.ok() ? a
                                         : Status(report.status.code(),
                                                  report.status.message() + "; " + a.message());
    }
  }
  report.state = r.recorded_shared();
  return report;
}

}  // namespace reconcile
