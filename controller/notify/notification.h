// Notification: what a Notifier (model.h, kind Notifier) says about one
// finished controller pass, as pure values: the pass's events (applied,
// failed, unhealthy, rolled-back, drift, invalid-revision, blocked), the
// summary a message is made of, the message bodies of each type (Slack
// incoming webhook, generic webhook event, GitHub / GitLab commit status
// states), the generic webhook's HMAC-SHA256 signature and idempotency key.
//
// How a finished pass is classified (ClassifyPass):
//   invalid-revision  the revision's tree did not load (kInvalid, stale_tree)
//   failed            the pass failed otherwise (not when cancelled)
//   applied           an apply pass changed something and succeeded
//   rolled-back       ... while a rollback's pin (`reconcile rollback`) held
//                     the state at an earlier revision (instead of applied)
//   unhealthy         an agent is unhealthy in the state after the pass
//   drift             a drift pass reported or healed agents
//   blocked           a deploy window held changes back
// With a Notifier's `agents`, only those agents' changes, failures, health,
// drift and held changes count (a failure of the pass as a whole, and an
// invalid revision, always do).
//
// No secret ever enters these values: the message text is made of names,
// addresses, revisions and the engine's error messages (which hold none).
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reconcile/event.h"
#include "reconcile/model.h"
#include "reconcile/pass.h"
#include "reconcile/spec.h"

namespace reconcile::controller::notify {

// One finished pass, as a notifier sees it.
struct PassSummary {
  std::string notifier;                // the Notifier's name
  std::string environment;             // "default" for a plain tree
  std::string revision;                // the full revision (a Git sha, or tree-<digest>)
  std::string kind;                    // "apply" or "drift"
  std::string status;                  // "ok" or the status code's name ("invalid", "failed", ...)
  std::string error;                   // the status message when not ok
  std::vector<std::string> events;     // ClassifyPass, in kNotifierEvents order
  int changes = 0;                     // changes applied or attempted
  std::vector<std::string> changed;    // "agent.web (update)", of the agents chosen
  std::vector<std::string> failed;     // "agent.web: why", of the agents chosen
  std::vector<std::string> unhealthy;  // agent names
  std::vector<std::string> drifted;    // agents reported or healed
  std::vector<std::string> healed;
  std::string blocked;                  // the deploy window's reason, when blocked
  std::string blocked_until;            // RFC 3339, when known
  std::string approval_plan;            // blocked: the id of the plan awaiting approval
  std::vector<Diagnostic> diagnostics;  // invalid-revision: the tree's errors (at most 20)
  std::string at;                       // RFC 3339 UTC, when the pass finished
};

// The events of a finished pass (see above), in kNotifierEvents order.
// `changes` are the pass's engine events (kChangeSucceeded / kChangeFailed
// ones are read); `agents` is the Notifier's filter (empty: all).
std::vector<std::string> ClassifyPass(const PassRequest::Kind kind, const PassReport& report,
                                      const std::vector<Event>& changes,
                                      const std::vector<std::string>& agents);

// The summary of a finished pass for `notifier` (events from ClassifyPass).
PassSummary Summarize(const Notifier& notifier, const std::string& environment,
                      PassRequest::Kind kind, const PassReport& report,
                      const std::vector<Event>& changes, const std::string& at);

// "a1b2c3d4e5f6" (12 characters) of a Git sha; other revisions unchanged.
std::string ShortRevision(const std::string& revision);

// The one-line headline: "staging: applied a1b2c3d4e5f6 (2 changes)".
std::string Headline(const PassSummary& s, const std::vector<std::string>& events);

// Slack incoming-webhook JSON: {"text": headline and details, "blocks":
// [header section, details section]} for the `events` being sent.
nlohmann::json SlackMessage(const PassSummary& s, const std::vector<std::string>& events);

// The generic webhook's event (schemas/notification-event.schema.json).
nlohmann::json WebhookEvent(const PassSummary& s, const std::vector<std::string>& events,
                            const std::string& idempotency_key);

// Stable across processes: "rcn-" + the first 32 hex digits of SHA-256 over
// notifier, environment, revision and the events (sorted), NUL-separated.
std::string IdempotencyKey(const std::string& notifier, const std::string& environment,
                           const std::string& revision, std::vector<std::string> events);

// Lower-case hex HMAC-SHA256 of a body under a key: reconcile::HmacSha256Hex
// (spec.h).
using reconcile::HmacSha256Hex;

// The commit status of a revision (GitHub and GitLab name them differently).
enum class CommitState { kPending, kRunning, kSuccess, kFailure, kError };
// After the pass: success when it succeeded (or changed nothing) and no chosen
// agent is unhealthy; failure when it failed or an agent is unhealthy; error
// for an invalid revision; pending while a deploy window holds changes back.
CommitState FinalState(const PassSummary& s);
const char* GithubState(CommitState s);  // "pending", "success", "failure", "error"
const char* GitlabState(CommitState s);  // "pending", "running", "success", "failed"
// At most 140 characters (GitHub's limit), for the status's description.
std::string StatusDescription(const PassSummary& s, CommitState state);

// True for a 40-digit hexadecimal Git commit id (a commit status needs one).
bool IsCommitSha(const std::string& revision);

}  // namespace reconcile::controller::notify
