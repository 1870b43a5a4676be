// RunPass: one whole reconcile pass for the controller, as Reconciler
// sub-steps in order: fetch → lock → state → observe → plan → apply →
// record. Two kinds:
//   kApply  bring the world to the revision (a new commit, a retry)
//   kDrift  the revision is already applied: compare what runs with the
//           last apply; agents with `drift.mode: heal` (and in `heal_allowed`,
//           the scheduler's restart budget) are repaired, the others only
//           reported
// With ReconcilerDeps::audit set, a pass that applies (every apply pass that
// gets to the apply step, a drift pass that heals) first checks the audit
// log (AuditSink::Check: a broken log stops the pass before anything
// changes) and then appends its entry under the state lock ("apply" or
// "heal"); a failed append makes the pass's status that error (what was
// applied stands).
// An apply pass whose tree has the content digest recorded by the last full
// apply (State::content_digest) stops after reading the state: nothing this
// tree reads changed, so it neither observes nor plans (report.unchanged).
// The report says what happened and, through status.code(), what to do next
// (reconciler.h). Blocking: run it off the I/O thread. Thread-safe as far as
// its deps are (one pass at a time per state folder; the lock enforces it).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "reconcile/diagnostic.h"
#include "reconcile/drift.h"
#include "reconcile/plan.h"
#include "reconcile/reconciler.h"
#include "reconcile/state.h"

namespace reconcile {

struct PassRequest {
  enum class Kind { kApply, kDrift };
  Kind kind = Kind::kApply;
  std::string revision;                // as the source's Resolve returned it
  std::set<std::string> heal_allowed;  // kDrift: agents that may be healed now
  ApplyOptions apply;
  std::string lock_command = "reconcile controller";
  // Who triggered the pass, for the audit entry (audit_log.h).
  std::string actor = "controller";
  // kApply: the plan a person approved (approval.h). The pass applies it
  // only when it equals the plan computed now (Reconciler::CheckSaved);
  // otherwise report.approval.refused says why (stale) and the plan computed
  // now waits instead.
  std::optional<Plan> approved;
  std::string approved_id;
};

struct PassReport {
  Status status;            // ok, or what stopped the pass (its code: what to do)
  std::string revision;     // the revision the pass worked on
  Diagnostics diagnostics;  // the tree's errors when status is kInvalid
  int changes = 0;          // changes applied (or attempted)
  ApplyOutcome outcome;
  std::vector<DriftItem> drift;       // kDrift: what differed
  std::vector<std::string> healed;    // agents repaired by this pass
  std::vector<std::string> reported;  // drifted agents only reported
  // The recorded state after the pass (shared with the store's copy; never null).
  std::shared_ptr<const State> state = std::make_shared<const State>();
  bool stale_tree = false;  // kInvalid came from the tree (not the state file)
  // The Targets of the tree the pass read (empty when it could not be read):
  // the controller watches them for drift (Provider::WatchDrift).
  std::vector<Target> targets;
  // Where each Agent of that tree is written (name -> its document's
  // file:line), for errors shown per agent (the status page's lastError).
  std::map<std::string, SourceLocation> agent_locations;
  // Deploy windows (deploy_window.h) at the time of the plan: `blocked` when
  // the Environment's windows block or a change was held back (`held`
  // changes of `held_agents` not applied; a drift pass's healing too, unless
  // healOutsideWindows). `window_next`: when the verdict next changes.
  struct Window {
    std::string environment;  // the Environment's name; empty for a plain tree
    bool blocked = false;
    std::string reason;
    std::optional<std::chrono::sys_time<std::chrono::milliseconds>> next;
    std::string next_text;  // RFC 3339 in the deciding window's zone
    int held = 0;
    std::vector<std::string> held_agents;
  } window;
  // kApply only: the revision is new, but the tree's content digest equals
  // the one recorded at the last full apply (a commit that touched only
  // other environments' files): nothing was observed or planned.
  bool unchanged = false;
  // The Notifiers of the tree the pass loaded (model.h); null when the tree
  // did not load (an invalid revision: a reader keeps the last ones).
  std::shared_ptr<const std::vector<Notifier>> notifiers;
  // Approvals (README "Approvals"): a kApply plan with changes of agents
  // whose Agent or Environment has `approval: required` is applied only as
  // an approved plan; the whole plan waits (as a Terraform Cloud run does).
  // Drift passes never heal such agents (only report them).
  struct Approval {
    bool planned = false;             // kApply: the pass got as far as a plan
    bool waiting = false;             // the plan needs an approval; nothing was applied
    bool applied = false;             // request.approved equalled the plan: it was applied
    std::vector<std::string> agents;  // the agents whose changes need the approval
    std::optional<Plan> plan;         // waiting: the plan to publish
    std::string refused;              // request.approved was stale: why
    // Set by the controller once the plan is published (approval.h).
    std::string id;
    std::string created_at;
    std::string publish_error;  // the plan could not be published: why
  } approval;
};

// The agents of `plan`'s changes (not no-ops) that need an approval in
// `desired`: an Agent or its Environment with `approval: required` (a delete
// of an agent no longer declared follows the Environment). Sorted, unique.
std::vector<std::string> AgentsNeedingApproval(const Plan& plan, const DesiredState& desired);

PassReport RunPass(const ReconcilerDeps& deps, const PassRequest& request);

}  // namespace reconcile
