// Scheduler: the controller's loop on one Boost.Asio io_context.
//
// It checks the source's ref every `interval` (jittered), at once on
// Trigger (a webhook), and runs passes (pass.h) as PassPolicy decides. All
// blocking work (libgit2, provider calls) runs on its own one-thread pool,
// never on the I/O thread, so one pass at a time runs per tree; triggers
// that arrive during a check or a pass coalesce into exactly one more.
//
// Stop() (SIGTERM): no new work; the running pass is asked to stop (its
// health waits and backoffs end at once), records what ran and releases the
// lock; then `on_stopped` runs on the I/O thread.
//
// DriftNotice() (a provider's drift watch, provider.h): a change made from
// outside to an agent this tree runs asks for a drift pass soon, as
// DriftTrigger decides (a burst makes one pass; at most one per min_gap);
// the pass is the normal drift pass at the applied revision, so drift.mode
// and the heal budget apply unchanged, and it runs after the current pass
// when one runs (the watch also reports reconcile's own changes: that drift
// pass then finds nothing and changes nothing, so it makes no events). A
// resync (the watch's feed came back) asks for a drift pass of everything.
//
// Pause() (leader election: this replica stopped leading): the same for the
// running pass, then `on_paused`; no checks, passes or triggers until
// Resume(), which starts a check at once with a fresh stop token.
//
// Thread-safety: Trigger, DriftNotice, Stop, StatusJson, Ready are safe from any thread;
// everything else runs on the io_context.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <nlohmann/json.hpp>

#include "drift_trigger.h"
#include "pass_policy.h"
#include "reconcile/approval.h"
#include "reconcile/pass.h"
#include "reconcile/provider.h"
#include "reconcile/source.h"

namespace reconcile::controller {

struct SchedulerOptions {
  Millis interval{std::chrono::seconds(30)};
  double jitter = 0.1;  // each wait is interval * [1 - jitter, 1 + jitter]
  PassPolicyOptions policy;
  ApplyOptions apply;
  std::string branch;         // for status only
  bool start_paused = false;  // leader election: nothing runs before Resume()
  // Several environments (MultiScheduler): the environment's name and
  // --path, for status; and `follower`: the revisions come from Offer()
  // (one ref check for every environment), never from its own Resolve.
  std::string environment;
  std::string path;
  bool follower = false;
  DriftTriggerOptions events;  // drift watch: debounce and min gap
  // Give each pass a fresh TraceContext (ApplyOptions::trace): on when the
  // controller exports traces (otlp_exporter.h).
  bool trace = false;
  // The environment's state folder: plans waiting for approval live in its
  // pending/ folder (approval.h). Empty: a plan that needs an approval waits
  // unpublished (it can never be approved).
  std::filesystem::path state_dir;
};

// What the scheduler tells the program (logs, metrics). Called on the pool
// thread or the I/O thread; implementations must be thread-safe.
class SchedulerListener {
 public:
  virtual ~SchedulerListener() = default;
  virtual void RefChecked(const Result<std::string>& revision, double seconds) = 0;
  virtual void Decided(const std::string& revision, Decision decision, const std::string& why) = 0;
  virtual void PassFinished(const PassRequest& request, const PassReport& report,
                            double seconds) = 0;
  // On the pool thread, just before a pass runs.
  virtual void PassStarted(const PassRequest& /*request*/) {}
  // On the I/O thread, after a drift pass: `agent` drifted with drift.mode
  // heal but was only reported, because it was healed --heal-budget times
  // within the heal window (a crash loop); `why` says so in words.
  virtual void HealBudgetExhausted(const std::string& /*agent*/, const std::string& /*why*/) {}
  // On the I/O thread: a drift watch's notice the scheduler acts on (a
  // change of an agent of this tree, a lost feed, a resync); changes of
  // agents this tree does not run are dropped before.
  virtual void DriftNoticed(const DriftNotice& /*notice*/) {}
  // On the I/O thread: a drift pass starts because of watch notices; each
  // agent with the last thing seen of it ("" agent: a resync).
  virtual void DriftPassForEvents(
      const std::vector<std::pair<std::string, std::string>>& /*agents*/) {}
  // On the approving thread (HTTP or the pool): a person approved plan
  // `plan.id` (approved_by, via "api" or "cli"); the controller applies it
  // at its next pass if it still equals the plan computed then. The one
  // call site of every approval the controller sees (the audit log's hook).
  virtual void PlanApproved(const PendingPlan& /*plan*/) {}
};

// What the program drives: one Scheduler, or a MultiScheduler over several
// environments (multi_scheduler.h). Thread-safe and non-blocking.
class SchedulerControl {
 public:
  virtual ~SchedulerControl() = default;
  virtual void Start() = 0;
  // Asks for a ref check now (coalesced). `why` is for logs; `actor` is who
  // or what asked ("webhook:github"), the audit entry's actor of the pass
  // that check leads to; empty: "controller".
  virtual void Trigger(const std::string& why, const std::string& actor) = 0;
  virtual void Stop(std::function<void()> on_stopped) = 0;
  virtual void Pause(std::function<void()> on_paused) = 0;
  virtual void Resume() = 0;
  virtual nlohmann::json StatusJson() const = 0;
  virtual bool Ready(std::string* why) const = 0;
  // Approves a plan waiting for approval (approval.h: kNotFound, kConflict,
  // kInvalid) and asks for a pass at once. Thread-safe; a small file write.
  virtual Result<PendingPlan> Approve(const std::string& id, const std::string& by,
                                      const std::string& via) {
    (void)by;
    (void)via;
    return Status::NotFound("no plan " + id + " waits for approval");
  }
};

class Scheduler final : public SchedulerControl {
 public:
  // `deps.source` must stay valid; `deps.stop` is replaced by the
  // scheduler's own stop token.
  Scheduler(boost::asio::io_context& io, ReconcilerDeps deps, SchedulerOptions options,
            SchedulerListener* listener);
  ~Scheduler();

  // Starts the first check at once.
  void Start() override;
  void Trigger(const std::string& why, const std::string& actor) override;
  // No new work; the running pass stops; then `on_stopped` (on the I/O thread).
  void Stop(std::function<void()> on_stopped) override;
  // The running pass stops; then `on_paused` (on the I/O thread). Nothing
  // runs until Resume().
  void Pause(std::function<void()> on_paused) override;
  // Ends a pause (or a start_paused): a ref check at once. Ignored after Stop.
  void Resume() override;
  // options.follower: the result of the shared ref check; decides at once
  // (or after the current pass: coalesced). Any thread.
  // `actor`: who asked for that check (Trigger), "" for the interval.
  void Offer(Result<std::string> revision, const std::string& actor = "");
  // A drift watch's notice (see the header comment). Any thread.
  void DriftNotice(const reconcile::DriftNotice& notice);

  nlohmann::json StatusJson() const override;
  // Records the approval in the state folder, tells the listener
  // (PlanApproved) and triggers a pass.
  Result<PendingPlan> Approve(const std::string& id, const std::string& by,
                              const std::string& via) override;
  // Ready once a pass has run and the last ref check reached the source.
  bool Ready(std::string* why) const override;
  const std::string& environment() const { return options_.environment; }

 private:
  void Post(std::function<void()> fn);
  void StartCheck();
  void OnResolved(Result<std::string> revision);
  void RunPassAsync(PassRequest request);
  void OnPassDone(PassRequest request, PassReport report, double seconds);
  void Idle();  // back to waiting; runs a pending trigger or arms the timer
  void ArmTimer();
  std::set<std::string> HealCandidates() const;
  std::stop_token CurrentStop() const;
  void OnDriftNotice(const reconcile::DriftNotice& notice);
  void ArmDriftTimer();
  void RunDriftForEvents();  // when idle: the drift pass the events asked for
  // Pool thread, around an apply pass: the approved plan it may apply, and
  // publishing / closing plans after it (approval.h).
  // TakeApproved returns a note for the status (a tampered plan), "" if none.
  std::string TakeApproved(PassRequest& request);
  void SettleApproval(const PassRequest& request, PassReport& report, const std::string& taken);

  boost::asio::io_context& io_;
  ReconcilerDeps deps_;
  SchedulerOptions options_;
  SchedulerListener* listener_;
  PassPolicy policy_;
  boost::asio::steady_timer timer_;
  boost::asio::steady_timer drift_timer_;  // DriftTrigger's due time
  boost::asio::thread_pool pool_{1};
  std::stop_source stop_;  // per pause-to-pause term; guarded by mu_ (replaced by Resume)
  bool stopped_ = false;   // Stop() was called; guarded by mu_
  std::mt19937 rng_{std::random_device{}()};

  // I/O-thread state.
  bool busy_ = false;
  bool pending_ = false;
  bool stopping_ = false;
  bool paused_ = false;
  std::function<void()> on_stopped_;
  std::function<void()> on_paused_;
  std::optional<Result<std::string>> offered_;  // follower: the last shared ref check
  DriftTrigger drift_trigger_;
  bool drift_due_ = false;        // the trigger's time came while busy: run after the pass
  bool drift_requested_ = false;  // the next decision is for watch events
  std::string running_trigger_;   // why the running pass runs: revision, interval, event
  std::string trigger_actor_;     // who asked for the next check (Trigger), "" none
  std::string check_actor_;       // who asked for the running check, "" none

  // Shared with StatusJson / Ready (any thread).
  mutable std::mutex mu_;
  std::string seen_;  // last revision the ref check returned
  std::string last_check_error_;
  int passes_ = 0;
  std::optional<PassReport> last_report_;
  std::optional<PassReport> last_good_;  // last pass whose tree was valid
  std::string last_kind_;
  std::string last_decision_;
  std::string last_pass_at_;
  double last_pass_seconds_ = 0;
  std::string last_error_;
  int skipped_ = 0;           // new revisions that changed none of this tree's files
  std::string last_skipped_;  // the last of them
  std::string last_skipped_at_;
  nlohmann::json drift_ = nlohmann::json::object();  // agent -> "reported"/"healed"
  // agent -> why its drift was only reported although drift.mode is heal
  nlohmann::json drift_reason_ = nlohmann::json::object();
  std::set<std::string> budget_held_;    // I/O thread: heal candidates past the budget
  std::optional<TimePoint> window_due_;  // I/O thread: a deploy window's verdict changes
  std::string last_trigger_;             // why the last pass ran: revision, interval, event
  int drift_events_ = 0;                 // watch notices of this tree's agents
  int event_passes_ = 0;                 // drift passes run for them
  int watch_resyncs_ = 0;
  std::string watch_lost_;                    // why the watch's feed is down ("" while up)
  std::unique_ptr<ApprovalStore> approvals_;  // null without options.state_dir
  nlohmann::json pending_plan_;               // the plan waiting for approval (null: none)
  std::string approval_note_;                 // the last refusal or publish error
  std::string last_approved_;                 // the id of the last approved plan applied
};

}  // namespace reconcile::controller
