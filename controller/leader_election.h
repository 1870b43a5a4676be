// LeaderElector: one leader among controller replicas, on a
// coordination.k8s.io/v1 Lease, following client-go's tools/leaderelection
// (LeaseLock, ReleaseOnCancel).
//
// The Lease's spec is the record: holderIdentity, leaseDurationSeconds,
// acquireTime and renewTime (RFC 3339 micro time), leaseTransitions.
//
//  - Following: every retry period (jittered down to 0.8x, and woken at the
//    moment the observed lease would expire) one attempt: GET the Lease;
//    create it when missing; a lease held by another is left alone while
//    (the time WE last saw its record change) + its leaseDurationSeconds has
//    not passed on OUR clock (clocks are never compared); else a PUT
//    guarded by metadata.resourceVersion takes it (leaseTransitions + 1).
//    A 409 means someone else won: re-read, and try again later.
//  - Leading: every retry period the same GET + guarded PUT renews. When no
//    renew succeeded for the renew deadline (measured from when the last
//    successful renew was SENT), it stops leading: `stopped_leading` runs
//    and must return only once the current pass has ended; then it follows
//    again. renew deadline < lease duration (checked by Validate) leaves the
//    difference for that pass to end before anyone else can take over.
//  - Release (SIGTERM, after the pass ended): a guarded PUT clearing
//    holderIdentity with leaseDurationSeconds 1, so a follower takes over
//    on its next attempt instead of waiting for the lease to expire.
//  - Webhook hand-off: a follower that got a verified webhook queues it
//    (QueueWebhook, non-blocking); the elector's thread writes the value
//    into the Lease's annotation `reconcile.dev/webhook-requested` with a
//    guarded update, retried on conflict and kept queued on any other error
//    (or handed to ourselves if we lead meanwhile). The leader reads the
//    Lease on every renew; a value it has not seen yet runs
//    `webhook_requested`. The annotation is not part of the record: writing
//    it never counts as a renew.
//
// Every lease call is one attempt (kube::ClientOptions max_attempts 1,
// timeout LeaseCallTimeout) so that no retry loop outlives the renew
// deadline.
//
// Thread-safety: Run (and the step functions) on one thread; QueueWebhook,
// IsLeader, Leader, StatusJson from any thread. Callbacks run on Run's
// thread.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <stop_token>
#include <string>

#include <nlohmann/json.hpp>

#include "controller/http_server.h"
#include "kubernetes/kube_client.h"
#include "reconcile/clock.h"
#include "reconcile/status.h"

namespace reconcile::controller {

inline constexpr const char* kWebhookAnnotation = "reconcile.dev/webhook-requested";

struct LeaderElectionOptions {
  std::string lease_namespace = "default";
  std::string lease_name = "reconcile-controller";
  std::string identity;  // unique per replica ($POD_NAME, else hostname_pid)
  std::chrono::milliseconds lease_duration{15000};
  std::chrono::milliseconds renew_deadline{10000};
  std::chrono::milliseconds retry_period{2000};
};

// kInvalid naming the flag: an empty identity, namespace or name; a
// duration under 1s or a lease duration that is not whole seconds; a renew
// deadline not below the lease duration; a retry period not below the renew
// deadline.
Status ValidateLeaderElectionOptions(const LeaderElectionOptions& options);

// The timeout of one lease call: half of (lease duration - renew deadline),
// at most the retry period, at least 200 ms. A renew that hangs thus ends
// while the lease is still ours.
std::chrono::milliseconds LeaseCallTimeout(const LeaderElectionOptions& options);

// The record in a Lease's spec.
struct LeaseRecord {
  std::string holder;
  long lease_duration_seconds = 0;
  std::string acquire_time;
  std::string renew_time;
  long transitions = 0;
  friend bool operator==(const LeaseRecord&, const LeaseRecord&) = default;
};

LeaseRecord LeaseRecordFromJson(const nlohmann::json& lease);

struct LeaderElectionCallbacks {
  // We hold the lease now: start working. Must not block.
  std::function<void()> started_leading;
  // We may not hold the lease any more: stop working, and return only when
  // the current pass has ended. `stop` is Run's stop token (shutdown).
  std::function<void(std::stop_token stop)> stopped_leading;
  // The holder we observe changed ("" when none).
  std::function<void(const std::string& holder)> new_leader;
  // As leader: a follower handed us a webhook (the annotation's value).
  std::function<void(const std::string& value)> webhook_requested;
  // One line for the log (info or warn), never a secret.
  std::function<void(bool warn, const std::string& line)> log;
};

class LeaderElector {
 public:
  // `client` and `clock` must outlive it. `wall_time` gives the RFC 3339
  // micro time written into the record (default: the system clock).
  LeaderElector(kube::Client& client, Clock& clock, LeaderElectionOptions options,
                LeaderElectionCallbacks callbacks, std::function<std::string()> wall_time = {});

  // The loop above until `stop`; then releases the lease if it holds it.
  void Run(std::stop_token stop);

  // One attempt to acquire or renew; true when we hold the lease after it
  // (the record we wrote is the one observed). Also reads the webhook
  // annotation.
  bool TryAcquireOrRenew(std::stop_token stop = {});
  // Clears the holder (leaseDurationSeconds 1) when the observed record
  // names us. Ok when there was nothing to release.
  Status Release();
  // Writes `value` into the webhook annotation (guarded, retried on
  // conflict up to 5 times).
  Status WriteWebhookRequest(const std::string& value, std::stop_token stop = {});

  // Queues a webhook for the leader (non-blocking; the latest value wins,
  // a queued one is never dropped). Returns the note for the webhook's
  // answer: "handed to the leader <id> through the Lease ns/name".
  std::string QueueWebhook(const std::string& why);

  bool IsLeader() const;
  std::string Leader() const;  // the holder last observed ("" unknown/none)
  // Ready while following: the last attempt reached the API server.
  bool Following(std::string* why) const;
  // {"enabled", "identity", "lease", "leader", "isLeader", "transitions",
  //  "term", "leaseTransitions", "lastError"}
  nlohmann::json StatusJson() const;
  // Times this replica became leader.
  long transitions() const;
  // The Lease's leaseTransitions when this replica last became leader.
  long term() const;
  std::string lease_description() const;  // "ns/name"

 private:
  std::string LeasePath() const;
  nlohmann::json NewLease(const LeaseRecord& record) const;
  void Observe(const nlohmann::json& lease, std::chrono::steady_clock::time_point now);
  void SetError(const std::string& error, bool reached = false);
  void LogNewError();  // logs last_error_ once per distinct message
  void Log(bool warn, const std::string& line);
  bool Lead(std::stop_token stop);  // false: stop requested
  void HandOffPending(std::stop_token stop);
  bool Sleep(std::chrono::milliseconds d, std::stop_token stop);  // false: stop requested
  bool PastRenewDeadline();

  kube::Client& client_;
  Clock& clock_;
  const LeaderElectionOptions options_;
  LeaderElectionCallbacks callbacks_;
  std::function<std::string()> wall_time_;
  std::mt19937 rng_{std::random_device{}()};

  // Run's thread only.
  nlohmann::json observed_lease_;  // the last Lease read or written (null: none)
  LeaseRecord observed_record_;
  std::chrono::steady_clock::time_point observed_time_{};
  std::chrono::steady_clock::time_point last_renew_{};  // when the last successful PUT was sent
  std::string webhook_seen_;
  bool webhook_seen_known_ = false;
  std::string logged_error_;

  mutable std::mutex mu_;  // guards what follows
  bool leader_ = false;
  std::string holder_;
  bool reached_ = false;  // the last attempt reached the API server
  std::string last_error_;
  long transitions_ = 0;
  long lease_transitions_ = 0;
  long term_ = -1;
  std::optional<std::string> pending_webhook_;
  long queued_ = 0;        // webhooks queued
  long attempted_ = 0;     // queued_ at the last hand-off attempt
  std::stop_source wake_;  // requested to cut a sleep short (a queued webhook)
};

// The ControllerView with leader election: Status adds "leaderElection";
// Ready is the inner view's while leading, else Following(); a webhook's
// Trigger goes to the inner view while leading, else to the Lease
// (QueueWebhook).
class LeaderElectionView final : public ControllerView {
 public:
  LeaderElectionView(ControllerView& inner, LeaderElector& elector)
      : inner_(inner), elector_(elector) {}
  nlohmann::json Status() override;
  Readiness Ready() override;
  void Trigger(const std::string& why, const std::string& actor) override {
    (void)TriggerWebhook(why, actor);
  }
  std::string TriggerWebhook(const std::string& why, const std::string& actor) override;
  std::string FollowedBranch() override { return inner_.FollowedBranch(); }
  ApproveAnswer Approve(const std::string& id, const std::string& by) override {
    return inner_.Approve(id, by);
  }

 private:
  ControllerView& inner_;
  LeaderElector& elector_;
};

// RFC 3339 with microseconds, UTC ("2026-12-02T01:02:03.123456Z").
std::string NowMicroTime();

}  // namespace reconcile::controller
