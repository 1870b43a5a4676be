#include "scheduler.h"

#include <algorithm>

#include <boost/asio/post.hpp>

#include "memory.h"
#include "reconcile/deploy_window.h"

namespace reconcile::controller {

namespace {

namespace asio = boost::asio;
using nlohmann::json;

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

Scheduler::Scheduler(asio::io_context& io, ReconcilerDeps deps, SchedulerOptions options,
                     SchedulerListener* listener)
    : io_(io),
      deps_(std::move(deps)),
      options_(std::move(options)),
      listener_(listener),
      policy_(options_.policy),
      timer_(io),
      drift_timer_(io),
      paused_(options_.start_paused),
      drift_trigger_(options_.events) {
  deps_.stop = stop_.get_token();
  if (!options_.state_dir.empty()) {
    approvals_ = std::make_unique<ApprovalStore>(options_.state_dir);
  }
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    stop_.request_stop();
  }
  pool_.join();
}

std::stop_token Scheduler::CurrentStop() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stop_.get_token();
}

void Scheduler::Post(std::function<void()> fn) { asio::post(io_, std::move(fn)); }

void Scheduler::Start() {
  Post([this] { StartCheck(); });
}

void Scheduler::Trigger(const std::string& /*why: for the caller's log*/,
                        const std::string& actor) {
  Post([this, actor] {
    if (stopping_ || paused_) return;
    if (!actor.empty()) trigger_actor_ = actor;
    if (busy_) {
      pending_ = true;  // coalesced: one more check after the current work
      return;
    }
    timer_.cancel();
    StartCheck();
  });
}

void Scheduler::Stop(std::function<void()> on_stopped) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    stop_.request_stop();
  }
  Post([this, on_stopped = std::move(on_stopped)]() mutable {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_.request_stop();  // also the token of a Resume queued before this
    }
    stopping_ = true;
    pending_ = false;
    timer_.cancel();
    drift_timer_.cancel();
    if (busy_) {
      on_stopped_ = std::move(on_stopped);  // runs when the current work returns
    } else if (on_stopped) {
      on_stopped();
    }
  });
}

void Scheduler::Pause(std::function<void()> on_paused) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.request_stop();
  }
  Post([this, on_paused = std::move(on_paused)]() mutable {
    paused_ = true;
    pending_ = false;
    timer_.cancel();
    drift_timer_.cancel();
    if (busy_) {
      auto before = std::move(on_paused_);
      on_paused_ = [before = std::move(before), on_paused = std::move(on_paused)] {
        if (before) before();
        if (on_paused) on_paused();
      };
    } else if (on_paused) {
      on_paused();
    }
  });
}

void Scheduler::Resume() {
  Post([this] {
    if (stopping_) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) return;
      if (stop_.stop_requested()) stop_ = std::stop_source();
    }
    paused_ = false;
    if (busy_) {
      pending_ = true;
      return;
    }
    timer_.cancel();
    StartCheck();
  });
}

void Scheduler::Offer(Result<std::string> revision, const std::string& actor) {
  Post([this, revision = std::move(revision), actor]() mutable {
    offered_ = std::move(revision);
    if (!actor.empty()) trigger_actor_ = actor;
    if (stopping_ || paused_) return;
    if (busy_) {
      pending_ = true;  // decided again after the current pass
      return;
    }
    timer_.cancel();
    StartCheck();
  });
}

void Scheduler::DriftNotice(const reconcile::DriftNotice& notice) {
  Post([this, notice] { OnDriftNotice(notice); });
}

void Scheduler::OnDriftNotice(const reconcile::DriftNotice& notice) {
  if (stopping_ || paused_) return;
  auto now = deps_.clock->Now();
  switch (notice.kind) {
    case reconcile::DriftNotice::Kind::kChanged: {
      // Only agents this tree runs: the plain trees of other controllers on
      // the same engine carry the same labels.
      if (!HealCandidates().count(notice.agent)) return;
      std::lock_guard<std::mutex> lock(mu_);
      ++drift_events_;
      break;
    }
    case reconcile::DriftNotice::Kind::kLost: {
      std::lock_guard<std::mutex> lock(mu_);
      watch_lost_ = notice.what;
      break;
    }
    case reconcile::DriftNotice::Kind::kResync: {
      std::lock_guard<std::mutex> lock(mu_);
      watch_lost_.clear();
      ++watch_resyncs_;
      break;
    }
  }
  if (listener_) listener_->DriftNoticed(notice);
  if (notice.kind == reconcile::DriftNotice::Kind::kLost) return;
  // Nothing applied yet: the first apply pass observes everything anyway.
  if (policy_.applied().empty()) return;
  drift_trigger_.Note(notice.kind == reconcile::DriftNotice::Kind::kResync ? "" : notice.agent,
                      notice.what, now);
  ArmDriftTimer();
}

void Scheduler::ArmDriftTimer() {
  if (!drift_trigger_.pending()) return;
  auto now = deps_.clock->Now();
  auto due = drift_trigger_.due();
  drift_timer_.expires_after(due > now ? std::chrono::duration_cast<Millis>(due - now) : Millis{0});
  drift_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopping_ || paused_) return;
    if (busy_) {
      drift_due_ = true;  // after the current pass (Idle)
      return;
    }
    RunDriftForEvents();
  });
}

void Scheduler::RunDriftForEvents() {
  drift_due_ = false;
  auto agents = drift_trigger_.Take(deps_.clock->Now());
  if (agents.empty()) {
    Idle();
    return;
  }
  if (listener_) listener_->DriftPassForEvents(agents);
  drift_requested_ = true;
  policy_.RequestDrift();
  timer_.cancel();
  std::string seen;
  {
    std::lock_guard<std::mutex> lock(mu_);
    seen = seen_;
  }
  if (options_.follower || seen.empty() || pending_) {
    StartCheck();  // a follower decides on the shared check it was offered
    return;
  }
  // The ref was checked a moment ago: decide on it, without another check.
  busy_ = true;
  OnResolved(seen);
}

void Scheduler::StartCheck() {
  if (stopping_ || paused_) return;
  busy_ = true;
  pending_ = false;
  check_actor_ = std::move(trigger_actor_);
  trigger_actor_.clear();
  if (options_.follower) {
    // No ref check of its own: the MultiScheduler's shared one.
    if (!offered_) {
      Idle();
      return;
    }
    OnResolved(*offered_);
    return;
  }
  asio::post(pool_, [this, stop = CurrentStop()] {
    auto start = std::chrono::steady_clock::now();
    Result<std::string> revision = deps_.source->Resolve(stop);
    if (listener_) listener_->RefChecked(revision, SecondsSince(start));
    Post([this, revision = std::move(revision)]() mutable { OnResolved(std::move(revision)); });
  });
}

void Scheduler::OnResolved(Result<std::string> revision) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (revision.ok()) {
      seen_ = *revision;
      last_check_error_.clear();
    } else {
      last_check_error_ = revision.status().message();
    }
  }
  if (stopping_ || paused_ || !revision.ok()) {
    Idle();
    return;
  }
  auto now = deps_.clock->Now();
  Decision d = policy_.Decide(*revision, now);
  std::string why;
  switch (d) {
    case Decision::kApply:
      why = policy_.failed() == *revision ? "retrying a failed revision" : "new revision";
      break;
    case Decision::kDrift:
      why = drift_requested_ ? "drift seen by the watch" : "drift check due";
      break;
    case Decision::kUpToDate:
      why = "up to date";
      break;
    case Decision::kStalled:
      why = *revision == policy_.invalid()
                ? "the tree at this revision is invalid; waiting for a new commit"
                : "apply failed " + std::to_string(policy_.failures()) +
                      " times; waiting for a new commit";
      break;
    case Decision::kBackingOff:
      why = "apply failed; retrying later";
      break;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    last_decision_ = DecisionName(d);
  }
  if (listener_) listener_->Decided(*revision, d, why);
  const bool for_events = drift_requested_;
  drift_requested_ = false;
  if (d != Decision::kApply && d != Decision::kDrift) {
    Idle();
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (d == Decision::kDrift && for_events) ++event_passes_;
  }
  running_trigger_ = d == Decision::kApply ? "revision" : for_events ? "event" : "interval";
  PassRequest request;
  request.kind = d == Decision::kApply ? PassRequest::Kind::kApply : PassRequest::Kind::kDrift;
  request.revision = *revision;
  if (!check_actor_.empty()) request.actor = check_actor_;
  request.apply = options_.apply;
  budget_held_.clear();
  if (d == Decision::kDrift) {
    const std::set<std::string> candidates = HealCandidates();
    request.heal_allowed = policy_.HealAllowed(candidates, now);
    for (const std::string& a : candidates) {
      if (!request.heal_allowed.count(a)) budget_held_.insert(a);
    }
  }
  RunPassAsync(std::move(request));
}

std::set<std::string> Scheduler::HealCandidates() const {
  std::set<std::string> out;
  std::lock_guard<std::mutex> lock(mu_);
  if (last_good_) {
    for (const auto& [address, rs] : last_good_->state->resources) out.insert(rs.name);
  }
  return out;
}

void Scheduler::RunPassAsync(PassRequest request) {
  asio::post(pool_, [this, request = std::move(request), stop = CurrentStop()]() mutable {
    ReconcilerDeps deps = deps_;
    deps.stop = stop;
    if (options_.trace) request.apply.trace = NewTraceContext();
    const bool apply = request.kind == PassRequest::Kind::kApply;
    const std::string taken = apply ? TakeApproved(request) : "";
    if (listener_) listener_->PassStarted(request);
    auto start = std::chrono::steady_clock::now();
    PassReport report = RunPass(deps, request);
    if (apply) SettleApproval(request, report, taken);
    double seconds = SecondsSince(start);
    ReleaseFreeMemory();  // an idle controller holds what it keeps, not its peak
    if (listener_) listener_->PassFinished(request, report, seconds);
    Post([this, request = std::move(request), report = std::move(report), seconds]() mutable {
      OnPassDone(std::move(request), std::move(report), seconds);
    });
  });
}

void Scheduler::OnPassDone(PassRequest request, PassReport report, double seconds) {
  auto now = deps_.clock->Now();
  const bool drift = request.kind == PassRequest::Kind::kDrift;
  PassResult outcome = PassResultOf(report);
  // A deploy window held changes back: the revision is not applied yet, so
  // the next check plans it again; the timer wakes at the window's change.
  window_due_.reset();
  if (report.window.next) {
    auto wall = ParseRfc3339(deps_.clock->NowRfc3339());
    if (wall) {
      auto until = std::chrono::duration_cast<Millis>(*report.window.next - *wall);
      window_due_ = now + std::max(until, Millis{0}) + Millis{1000};
    }
  }
  if (report.unchanged) {
    // The revision is recorded as seen (applied) for this tree; the last
    // real pass stays what the status shows.
    policy_.Finished(request.revision, drift, outcome, now);
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++skipped_;
      last_skipped_ = request.revision;
      last_skipped_at_ = deps_.clock->NowRfc3339();
      last_decision_ = "unchanged";
      last_error_.clear();
      if (last_good_) {
        last_good_->revision = request.revision;
      } else {
        // A restart at the applied content: the recorded state is what
        // runs (status agents, heal candidates of the drift watch).
        last_good_ = report;
      }
    }
    Idle();
    return;
  }
  // A plan waiting for approval: the revision is not applied yet either.
  if ((report.window.held == 0 && !report.approval.waiting) || outcome != PassResult::kSuccess) {
    policy_.Finished(request.revision, drift, outcome, now);
  }
  for (const std::string& agent : report.healed) policy_.Healed(agent, now);
  json reasons = json::object();
  if (drift) {
    for (const std::string& a : report.reported) {
      if (!budget_held_.count(a)) continue;
      const auto window =
          std::chrono::duration_cast<std::chrono::minutes>(options_.policy.heal_window);
      std::string why = "heal budget exhausted: healed " +
                        std::to_string(options_.policy.heal_budget) + " times within " +
                        std::to_string(window.count()) +
                        " min (--heal-budget); its drift is only reported until the oldest "
                        "heal leaves that window";
      reasons[a] = why;
      if (listener_) listener_->HealBudgetExhausted(a, why);
    }
  }
  budget_held_.clear();
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++passes_;
    last_kind_ = drift ? "drift" : "apply";
    last_trigger_ = running_trigger_;
    last_pass_at_ = deps_.clock->NowRfc3339();
    last_pass_seconds_ = seconds;
    last_error_ = report.status.ok() ? "" : report.status.message();
    if (drift || outcome == PassResult::kSuccess) {
      drift_ = json::object();
      for (const std::string& a : report.reported) drift_[a] = "reported";
      for (const std::string& a : report.healed) drift_[a] = "healed";
      drift_reason_ = reasons;
    }
    if (outcome != PassResult::kInvalid) last_good_ = report;
    last_report_ = std::move(report);
  }
  Idle();
}

void Scheduler::Idle() {
  busy_ = false;
  if (on_paused_) {
    auto fn = std::move(on_paused_);
    on_paused_ = nullptr;
    fn();
  }
  if (stopping_) {
    if (on_stopped_) {
      auto fn = std::move(on_stopped_);
      on_stopped_ = nullptr;
      fn();
    }
    return;
  }
  if (paused_) return;
  if (drift_due_) {
    RunDriftForEvents();
    return;
  }
  if (pending_) {
    StartCheck();
    return;
  }
  ArmTimer();
}

void Scheduler::ArmTimer() {
  // The next ref check: one jittered interval, or sooner when a retry or a
  // drift pass falls due first.
  std::uniform_real_distribution<double> dist(1.0 - options_.jitter, 1.0 + options_.jitter);
  auto wait = std::chrono::duration_cast<Millis>(options_.interval * dist(rng_));
  auto now = deps_.clock->Now();
  for (TimePoint due :
       {policy_.next_retry_at(), policy_.next_drift_at(), window_due_.value_or(TimePoint{})}) {
    if (due > now && due - now < wait) wait = std::chrono::duration_cast<Millis>(due - now);
  }
  timer_.expires_after(wait);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopping_ || paused_) return;
    if (!busy_) StartCheck();
  });
}

bool Scheduler::Ready(std::string* why) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (passes_ == 0 && !last_report_ && !last_good_) {
    if (why)
      *why = last_check_error_.empty() ? "the first pass has not finished yet"
                                       : "source unreachable: " + last_check_error_;
    return false;
  }
  if (!last_check_error_.empty()) {
    if (why) *why = "source unreachable: " + last_check_error_;
    return false;
  }
  if (why) why->clear();
  return true;
}

std::string Scheduler::TakeApproved(PassRequest& request) {
  if (!approvals_) return "";
  auto current = approvals_->Current();
  // A waiting plan whose file or record was tampered with: never applied.
  if (!current.ok()) return current.status().message();
  if (*current && (*current)->state == "approved") {
    request.approved = (*current)->saved.plan;
    request.approved_id = (*current)->id;
  }
  return "";
}

namespace {

json PendingJson(const PendingPlan& p, const std::vector<std::string>& agents,
                 const std::filesystem::path& dir) {
  json changes = json::array();
  for (const Change& c : p.saved.plan.changes) {
    if (c.action == Action::kNoOp) continue;
    changes.push_back({{"address", c.address}, {"action", ActionName(c.action)}});
  }
  return {{"id", p.id},
          {"revision", p.revision},
          {"createdAt", p.created_at},
          {"state", p.state},
          {"approvedBy", p.approved_by},
          {"agents", agents},
          {"changes", changes},
          {"file", (dir / (p.id + ".json")).string()},
          {"approve", "reconcile approve " + p.id}};
}

}  // namespace

void Scheduler::SettleApproval(const PassRequest& request, PassReport& report,
                               const std::string& taken) {
  PassReport::Approval& a = report.approval;
  const std::string now = deps_.clock->NowRfc3339();
  std::optional<json> pending;  // set: what the status shows from now on
  std::string note = taken;
  std::optional<std::string> applied;
  if (a.waiting && a.plan) {
    pending = json(nullptr);
    if (!approvals_) {
      a.publish_error = "no state folder: the plan cannot be published for approval";
    } else {
      SavedPlan saved;
      saved.source = deps_.source ? deps_.source->Describe() : "";
      saved.state_dir = options_.state_dir.string();
      saved.plan = *a.plan;
      std::string why;
      if (!a.refused.empty()) {
        why = "approved, but stale when the controller came to apply it: " + a.refused;
      }
      auto p = approvals_->Publish(
          saved, options_.environment.empty() ? "default" : options_.environment, now, why);
      if (!p.ok()) {
        a.publish_error = p.status().message();
      } else {
        a.id = p->id;
        a.created_at = p->created_at;
        pending = PendingJson(*p, a.agents, approvals_->dir());
      }
    }
    if (!a.refused.empty()) {
      note = "plan " + request.approved_id.substr(0, 12) +
             " was approved but is stale: " + a.refused + "; refused, nothing applied";
    }
    if (!a.publish_error.empty()) note = a.publish_error;
  } else if (a.applied && approvals_) {
    approvals_->Close(request.approved_id, "applied",
                      report.status.ok() ? "" : "applied with errors: " + report.status.message(),
                      now);
    pending = json(nullptr);
    applied = request.approved_id;
  } else if (approvals_ &&
             (a.planned || (report.status.code() == Code::kInvalid && report.stale_tree))) {
    // Nothing needs an approval now (or the new revision does not load): a
    // plan still waiting ends.
    auto current = approvals_->Current();
    if (current.ok() && *current) {
      const PendingPlan& p = **current;
      const bool other = p.revision != report.revision;
      std::string why = !a.planned           ? "revision " + report.revision + " is invalid"
                        : !a.refused.empty() ? "stale: " + a.refused
                                             : "the plan computed now (revision " +
                                                   report.revision + ") needs no approval";
      approvals_->Close(p.id, other ? "superseded" : "stale", why, now);
      if (!a.refused.empty()) note = "plan " + p.id.substr(0, 12) + " was refused: " + why;
    }
    pending = json(nullptr);
  }
  if (!taken.empty() && note != taken) note = taken + "; " + note;
  std::lock_guard<std::mutex> lock(mu_);
  if (pending) pending_plan_ = *pending;
  if (pending || !note.empty()) approval_note_ = note;
  if (applied) last_approved_ = *applied;
}

Result<PendingPlan> Scheduler::Approve(const std::string& id, const std::string& by,
                                       const std::string& via) {
  if (!approvals_) return Status::NotFound("no plan " + id + " waits for approval");
  auto p = approvals_->Approve(id, by, via, deps_.clock->NowRfc3339());
  if (!p.ok()) return p;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pending_plan_.is_object() && pending_plan_.value("id", "") == p->id) {
      pending_plan_["state"] = "approved";
      pending_plan_["approvedBy"] = p->approved_by;
    }
  }
  if (listener_) listener_->PlanApproved(*p);
  Trigger("plan " + p->id + " approved", "");
  return p;
}

json Scheduler::StatusJson() const {
  std::lock_guard<std::mutex> lock(mu_);
  json out;
  out["source"] = deps_.source ? deps_.source->Describe() : "";
  out["branch"] = options_.branch;
  if (options_.follower || !options_.environment.empty()) {
    out["name"] = options_.environment.empty() ? "default" : options_.environment;
    out["path"] = options_.path;
  }
  out["revision"] = {{"seen", seen_},
                     {"applied", policy_.applied()},
                     {"invalid", policy_.invalid()},
                     {"failed", policy_.failed()},
                     {"failures", policy_.failures()}};
  out["lastDecision"] = last_decision_;
  out["sourceError"] = last_check_error_;
  json last = nullptr;
  if (last_report_) {
    const PassReport& r = *last_report_;
    last = {{"kind", last_kind_},
            {"trigger", last_trigger_},
            {"revision", r.revision},
            {"result", PassResultName(PassResultOf(r))},
            {"error", r.status.ok() ? "" : r.status.message()},
            {"finishedAt", last_pass_at_},
            {"durationSeconds", last_pass_seconds_},
            {"changes", r.changes},
            {"succeeded", r.outcome.succeeded},
            {"failed", r.outcome.failed},
            {"skipped", r.outcome.skipped}};
    json diags = json::array();
    for (const Diagnostic& d : r.diagnostics.items()) diags.push_back(d.ToString());
    last["diagnostics"] = diags;
  }
  out["lastPass"] = last;
  // A rollback's pin (`reconcile rollback`): the controller keeps applying
  // the pinned revision until the desired revision changes.
  json pin = nullptr;
  if (last_good_ && last_good_->state && last_good_->state->pin) {
    const Pin& p = *last_good_->state->pin;
    pin = {{"revision", p.revision},
           {"serial", p.serial},
           {"desiredRevision", p.desired_revision},
           {"pinnedAt", p.pinned_at}};
  }
  out["pin"] = pin;
  out["lastError"] = last_error_;
  out["passes"] = passes_;
  // Deploy windows at the last pass (README "Deploy windows").
  json window = {{"blocked", false}, {"reason", ""}, {"next", nullptr}};
  if (last_report_) {
    const PassReport::Window& w = last_report_->window;
    window = {{"blocked", w.blocked},
              {"reason", w.reason},
              {"next", w.next ? json(w.next_text) : json(nullptr)},
              {"heldAgents", w.held_agents}};
  }
  out["window"] = window;
  // Approvals (README "Approvals"): the plan waiting for one, if any.
  out["pendingPlan"] = pending_plan_;
  out["approval"] = {{"note", approval_note_}, {"lastApplied", last_approved_}};
  out["driftWatch"] = {{"events", drift_events_},
                       {"eventPasses", event_passes_},
                       {"resyncs", watch_resyncs_},
                       {"lost", watch_lost_}};
  out["skipped"] = skipped_;
  out["lastSkipped"] = last_skipped_.empty() ? json(nullptr)
                                             : json{{"revision", last_skipped_},
                                                    {"at", last_skipped_at_},
                                                    {"reason", "no change for this environment"}};
  json agents = json::array();
  if (last_good_) {
    // An agent's last error: the last pass stopped at one of its changes
    // (the applier names the address, "agent.web: ..."). A tree's errors
    // (file:line) are the pass's diagnostics above.
    const std::string failure =
        last_report_ && !last_report_->status.ok() ? last_report_->status.message() : "";
    for (const auto& [address, rs] : last_good_->state->resources) {
      json endpoints = json::array();
      for (const InstanceRecord& i : rs.instances) {
        if (!i.endpoint.empty()) endpoints.push_back(i.endpoint);
      }
      json error = nullptr;
      if (!failure.empty() && failure.find(address + ":") != std::string::npos) {
        // "at": the agent's document in the tree of that pass (file:line).
        std::string at;
        const auto& where = last_report_->agent_locations;
        if (auto it = where.find(rs.name); it != where.end() && !it->second.file.empty()) {
          at = it->second.file + (it->second.line > 0 ? ":" + std::to_string(it->second.line) : "");
        }
        error = {{"message", failure}, {"at", at}};
      }
      agents.push_back({{"name", rs.name},
                        {"target", rs.target},
                        {"revision", rs.revision},
                        {"health", rs.health},
                        {"appliedAt", rs.applied_at},
                        {"instances", rs.instances.size()},
                        {"endpoints", endpoints},
                        {"drift", drift_.value(rs.name, "none")},
                        {"driftReason", drift_reason_.value(rs.name, "")},
                        {"digest", rs.image_digest},
                        {"lastError", error}});
    }
  }
  out["agents"] = agents;
  return out;
}

}  // namespace reconcile::controller
