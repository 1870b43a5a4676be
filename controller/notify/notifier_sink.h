// Notifier sinks: the controller's notifications, commit statuses and
// deployments (kind Notifier, model.h), as queued sinks of the EventBus
// (event_bus.h), one per Notifier name: "notifier:<name>".
//
// Where the Notifiers come from: each finished pass's report carries the
// Notifiers of the tree it loaded (PassReport::notifiers). NotifierHub, a
// queued sink of its own ("notify"), makes a NotifierSink the first time a
// name appears in some environment's tree and hands it that pass's event
// (later events reach it through the bus). A NotifierSink keeps, per
// environment, the Notifier of the last tree that loaded there: a pass whose
// tree did not load (invalid revision) is told to the last good tree's
// Notifiers; a Notifier gone from an environment's tree stops for it. So a
// Notifier's very first pass has no `pending` status at its start (it was not
// known yet); every later pass does.
//
// What a NotifierSink sends (senders over real HTTP, http_client.h):
//   slack    POST url {"text", "blocks"}: one message per pass, naming the
//            revision, what changed and what failed.
//   webhook  POST url, the event of schemas/notification-event.schema.json,
//            X-Reconcile-Signature-256: sha256=<hex HMAC-SHA256 of the body
//            under `secret`>, Idempotency-Key (notification.h).
//   github   POST {apiUrl}/repos/{owner}/{repo}/statuses/{sha}, context
//            reconcile/<environment>: pending when an apply pass starts,
//            success / failure / error after it (health included); with
//            deployments: POST .../deployments (ref sha, environment,
//            auto_merge false, required_contexts []) at the start and
//            POST .../deployments/{id}/statuses in_progress, then success /
//            failure / error.
//   gitlab   POST {apiUrl}/projects/{id}/statuses/{sha}, name
//            reconcile/<environment>, PRIVATE-TOKEN: running at the start,
//            then success / failed (pending while a deploy window holds).
// Slack and webhook send the pass's events that the Notifier chose
// (spec.events); github and gitlab send the commit's state for every apply
// pass. Dedupe: an (event, revision, environment) is sent once, a commit
// state once per (state, revision, environment). What was sent is kept per
// (environment, revision), for the last kKeptRevisions of them, and, with
// NotifyDeps::state_dir, written to <state_dir>/<name>.json after each send
// (atomically) and read back when the sink is made: a restarted controller
// does not send them again, and goes on with the same GitHub deployment (as
// Argo CD Notifications keeps what it sent on the Application). A record that
// cannot be read is reported (warn) and set aside as <name>.json.unreadable;
// the sink starts empty rather than not at all. A record that cannot be
// written is reported and the sent message stands (sending it again would be
// the duplicate the record is there to prevent).
//
// Errors (returned to the bus, and given to NotifyDeps::warn) name the
// notifier and the HTTP status or what failed, never a URL (a Slack URL is a
// secret) nor a token; secrets are resolved at each send and never kept.
// 429, 5xx and transport failures or timeouts are kUnavailable (the bus
// retries with backoff); other 4xx are kFailed.
//
// Thread-safety: Deliver may be called from the bus's worker and from the
// hub's at once; each sink serializes its deliveries.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "event_bus.h"
#include "http/http_client.h"
#include "notify/notification.h"
#include "reconcile/model.h"
#include "reconcile/secrets.h"

namespace reconcile::controller::notify {

struct NotifyDeps {
  std::shared_ptr<http::Client> client;     // never null (1 attempt each: the bus retries)
  std::filesystem::path secrets_dir;        // file:NAME references
  SecretEnvPolicy secret_env_policy;        // env:VAR references
  std::chrono::milliseconds timeout{5000};  // each request
  // Told every failed delivery (a message without a secret); may be empty.
  std::function<void(const std::string&)> warn;
  // RFC 3339 UTC now; empty: the system clock.
  std::function<std::string()> now;
  // Where each sink keeps what it sent (<name>.json); empty: in memory only.
  std::filesystem::path state_dir;
};

// How many (environment, revision) records a sink keeps; the oldest go first.
inline constexpr std::size_t kKeptRevisions = 64;

class NotifierSink final : public EventSink {
 public:
  NotifierSink(std::string name, std::shared_ptr<const NotifyDeps> deps);
  Status Deliver(const ControllerEvent& event, std::stop_token stop) override;
  const std::string& name() const { return name_; }

 private:
  Status PassStarted(const ControllerEvent& event, std::stop_token stop);
  Status PassFinished(const ControllerEvent& event, std::stop_token stop);
  Status SendMessage(const Notifier& n, const PassSummary& s, std::stop_token stop);
  Status SendCommitState(const Notifier& n, const std::string& environment,
                         const std::string& revision, CommitState state,
                         const std::string& description, std::stop_token stop);
  // POSTs `body` (JSON); ok on 2xx (the response in `response` when given).
  Status Post(const std::string& url, const std::string& what, const std::string& body,
              std::vector<std::pair<std::string, std::string>> headers, std::stop_token stop,
              std::string* response = nullptr);
  Result<std::string> Secret(const std::optional<SecretRef>& ref, const char* field);
  Status Fail(Status s);

  // What was sent for one (environment, revision).
  struct Sent {
    std::set<std::string> events;            // Slack / webhook events
    std::optional<CommitState> commit;       // the commit state sent last
    std::optional<std::int64_t> deployment;  // the GitHub deployment's id
    std::string deployment_state;            // its state sent last
  };
  // The record of (environment, revision), made (and the oldest dropped) when new.
  Sent& Record(const std::string& environment, const std::string& revision);
  const Sent* Find(const std::string& environment, const std::string& revision) const;
  std::filesystem::path RecordPath() const;
  void Load();
  void Save();

  const std::string name_;
  const std::shared_ptr<const NotifyDeps> deps_;
  std::mutex deliver_mu_;                               // one delivery at a time
  std::map<std::string, Notifier> config_;              // by environment: the last loaded tree's
  std::map<std::uint64_t, std::vector<Event>> passes_;  // change events of running passes
  std::map<std::pair<std::string, std::string>, Sent> sent_;  // by (environment, revision)
  std::vector<std::pair<std::string, std::string>> order_;    // sent_'s keys, oldest first
};

// Makes the NotifierSinks (see above). Queued; never does network I/O but for
// a new sink's first event.
class NotifierHub final : public EventSink {
 public:
  // `options` are each NotifierSink's (its name is set here).
  NotifierHub(EventBus& bus, std::shared_ptr<const NotifyDeps> deps, SinkOptions options);
  Status Deliver(const ControllerEvent& event, std::stop_token stop) override;
  // The names of the sinks made so far.
  std::vector<std::string> Names() const;

 private:
  EventBus& bus_;
  const std::shared_ptr<const NotifyDeps> deps_;
  const SinkOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<NotifierSink>> sinks_;
};

}  // namespace reconcile::controller::notify
