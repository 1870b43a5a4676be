#include "controller/leader_election.h"

#include <algorithm>
#include <cstdio>
#include <ctime>

namespace reconcile::controller {

namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using SteadyTime = std::chrono::steady_clock::time_point;

std::string Seconds(milliseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%gs", static_cast<double>(d.count()) / 1000.0);
  return buf;
}

std::string StringAt(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

long LongAt(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<long>() : 0;
}

std::string WebhookAnnotation(const json& lease) {
  const json* annotations = nullptr;
  if (lease.is_object() && lease.contains("metadata") && lease["metadata"].is_object()) {
    auto it = lease["metadata"].find("annotations");
    if (it != lease["metadata"].end() && it->is_object()) annotations = &*it;
  }
  return annotations ? StringAt(*annotations, kWebhookAnnotation) : std::string();
}

}  // namespace

std::string NowMicroTime() {
  auto now = std::chrono::system_clock::now();
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long>(us % 1000000));
  return buf;
}

Status ValidateLeaderElectionOptions(const LeaderElectionOptions& o) {
  if (o.identity.empty()) {
    return Status::Invalid("--leader-elect-identity: empty (set it, or $POD_NAME)");
  }
  if (o.lease_name.empty()) return Status::Invalid("--leader-elect-resource-name: empty");
  if (o.lease_namespace.empty()) {
    return Status::Invalid("--leader-elect-resource-namespace: empty");
  }
  const std::pair<const char*, milliseconds> durations[] = {
      {"--leader-elect-lease-duration", o.lease_duration},
      {"--leader-elect-renew-deadline", o.renew_deadline},
      {"--leader-elect-retry-period", o.retry_period}};
  for (const auto& [flag, d] : durations) {
    if (d < std::chrono::seconds(1)) {
      return Status::Invalid(std::string(flag) + ": " + Seconds(d) + " is under 1s");
    }
  }
  if (o.lease_duration.count() % 1000 != 0) {
    return Status::Invalid("--leader-elect-lease-duration: " + Seconds(o.lease_duration) +
                           " is not a whole number of seconds (the Lease's "
                           "leaseDurationSeconds)");
  }
  if (o.renew_deadline >= o.lease_duration) {
    return Status::Invalid("--leader-elect-renew-deadline (" + Seconds(o.renew_deadline) +
                           ") must be less than --leader-elect-lease-duration (" +
                           Seconds(o.lease_duration) +
                           "): a leader that cannot renew must stop before its lease expires");
  }
  if (o.retry_period >= o.renew_deadline) {
    return Status::Invalid("--leader-elect-retry-period (" + Seconds(o.retry_period) +
                           ") must be less than --leader-elect-renew-deadline (" +
                           Seconds(o.renew_deadline) + "): the leader retries a renew within it");
  }
  return Status::Ok();
}

milliseconds LeaseCallTimeout(const LeaderElectionOptions& o) {
  milliseconds t = (o.lease_duration - o.renew_deadline) / 2;
  t = std::min(t, o.retry_period);
  return std::max(t, milliseconds(200));
}

LeaseRecord LeaseRecordFromJson(const json& lease) {
  LeaseRecord r;
  if (!lease.is_object() || !lease.contains("spec") || !lease["spec"].is_object()) return r;
  const json& spec = lease["spec"];
  r.holder = StringAt(spec, "holderIdentity");
  r.lease_duration_seconds = LongAt(spec, "leaseDurationSeconds");
  r.acquire_time = StringAt(spec, "acquireTime");
  r.renew_time = StringAt(spec, "renewTime");
  r.transitions = LongAt(spec, "leaseTransitions");
  return r;
}

LeaderElector::LeaderElector(kube::Client& client, Clock& clock, LeaderElectionOptions options,
                             LeaderElectionCallbacks callbacks,
                             std::function<std::string()> wall_time)
    : client_(client),
      clock_(clock),
      options_(std::move(options)),
      callbacks_(std::move(callbacks)),
      wall_time_(wall_time ? std::move(wall_time) : NowMicroTime) {}

std::string LeaderElector::LeasePath() const {
  return "/apis/coordination.k8s.io/v1/namespaces/" + options_.lease_namespace + "/leases/" +
         options_.lease_name;
}

std::string LeaderElector::lease_description() const {
  return options_.lease_namespace + "/" + options_.lease_name;
}

void LeaderElector::Log(bool warn, const std::string& line) {
  if (callbacks_.log) callbacks_.log(warn, line);
}

void LeaderElector::SetError(const std::string& error, bool reached) {
  std::lock_guard<std::mutex> lock(mu_);
  last_error_ = error;
  reached_ = reached;
}

void LeaderElector::LogNewError() {
  std::string error;
  {
    std::lock_guard<std::mutex> lock(mu_);
    error = last_error_;
  }
  if (error.empty()) logged_error_.clear();
  if (error.empty() || error == logged_error_) return;
  logged_error_ = error;
  Log(true, "leader election: " + options_.identity + ": " + error);
}

json LeaderElector::NewLease(const LeaseRecord& r) const {
  json lease = observed_lease_.is_object() ? observed_lease_ : json::object();
  lease["apiVersion"] = "coordination.k8s.io/v1";
  lease["kind"] = "Lease";
  json& meta = lease["metadata"];
  if (!meta.is_object()) meta = json::object();
  meta["name"] = options_.lease_name;
  meta["namespace"] = options_.lease_namespace;
  if (!meta.contains("labels") || !meta["labels"].is_object()) meta["labels"] = json::object();
  meta["labels"]["reconcile.dev/managed-by"] = "reconcile";
  json spec = json::object();
  spec["holderIdentity"] = r.holder;
  spec["leaseDurationSeconds"] = r.lease_duration_seconds;
  if (!r.acquire_time.empty()) spec["acquireTime"] = r.acquire_time;
  if (!r.renew_time.empty()) spec["renewTime"] = r.renew_time;
  spec["leaseTransitions"] = r.transitions;
  lease["spec"] = spec;
  return lease;
}

void LeaderElector::Observe(const json& lease, SteadyTime now) {
  LeaseRecord record = LeaseRecordFromJson(lease);
  if (observed_lease_.is_null() || record != observed_record_) {
    observed_record_ = record;
    observed_time_ = now;  // OUR clock: when we saw the record change
  }
  observed_lease_ = lease;
  bool changed = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    reached_ = true;
    last_error_.clear();
    lease_transitions_ = record.transitions;
    if (holder_ != record.holder) {
      holder_ = record.holder;
      changed = true;
    }
  }
  if (changed && callbacks_.new_leader) callbacks_.new_leader(record.holder);
}

bool LeaderElector::TryAcquireOrRenew(std::stop_token stop) {
  const std::string path = LeasePath();
  const long duration_s = static_cast<long>(options_.lease_duration.count() / 1000);
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (stop.stop_requested() || PastRenewDeadline()) return false;
    Result<json> got = client_.Request("GET", path, {}, "application/json", stop);
    SteadyTime now = clock_.Now();
    if (!got.ok() && got.status().code() == Code::kNotFound) {
      LeaseRecord mine{options_.identity, duration_s, wall_time_(), "", 0};
      mine.renew_time = mine.acquire_time;
      observed_lease_ = nullptr;
      json body = NewLease(mine);
      body["metadata"].erase("resourceVersion");
      const std::string collection =
          "/apis/coordination.k8s.io/v1/namespaces/" + options_.lease_namespace + "/leases";
      SteadyTime sent = clock_.Now();
      Result<json> created =
          client_.Request("POST", collection, body.dump(), "application/json", stop);
      if (!created.ok()) {
        const bool conflict = created.status().code() == Code::kConflict;
        SetError("create lease " + lease_description() + ": " + created.status().message(),
                 conflict);
        if (conflict) continue;  // someone else created it
        return false;
      }
      Observe(*created, clock_.Now());
      last_renew_ = sent;
      webhook_seen_.clear();  // a new Lease has no hand-off yet
      webhook_seen_known_ = true;
      return true;
    }
    if (!got.ok()) {
      SetError("get lease " + lease_description() + ": " + got.status().message());
      return false;
    }
    Observe(*got, now);
    // The webhook annotation: a new value while we lead is a hand-off.
    std::string webhook = WebhookAnnotation(*got);
    if (!webhook_seen_known_) {
      webhook_seen_ = webhook;
      webhook_seen_known_ = true;
    } else if (webhook != webhook_seen_) {
      webhook_seen_ = webhook;
      if (!webhook.empty() && IsLeader() && callbacks_.webhook_requested) {
        callbacks_.webhook_requested(webhook);
      }
    }
    const LeaseRecord& old = observed_record_;
    const bool mine = old.holder == options_.identity;
    if (!old.holder.empty() && !mine &&
        observed_time_ + std::chrono::seconds(old.lease_duration_seconds) > now) {
      return false;  // held by another, not expired on our clock
    }
    LeaseRecord next{options_.identity, duration_s, "", wall_time_(), old.transitions};
    if (mine) {
      next.acquire_time = old.acquire_time.empty() ? next.renew_time : old.acquire_time;
    } else {
      next.acquire_time = next.renew_time;
      next.transitions = old.transitions + 1;
    }
    json body = NewLease(next);  // keeps metadata.resourceVersion: the guard
    if (PastRenewDeadline()) return false;
    SteadyTime sent = clock_.Now();
    Result<json> put = client_.Request("PUT", path, body.dump(), "application/json", stop);
    if (put.ok()) {
      Observe(*put, clock_.Now());
      last_renew_ = sent;
      return true;
    }
    const bool conflict = put.status().code() == Code::kConflict;
    SetError("update lease " + lease_description() + ": " + put.status().message(), conflict);
    if (!conflict) return false;
    // 409: someone else wrote the Lease first (a new holder, or a follower's
    // webhook annotation); re-read once and decide again.
  }
  return false;
}

Status LeaderElector::Release() {
  if (observed_record_.holder != options_.identity) return Status::Ok();
  const std::string path = LeasePath();
  for (int attempt = 0; attempt < 3; ++attempt) {
    LeaseRecord released{"", 1, wall_time_(), "", observed_record_.transitions};
    released.renew_time = released.acquire_time;
    Result<json> put = client_.Request("PUT", path, NewLease(released).dump());
    if (put.ok()) {
      Observe(*put, clock_.Now());
      std::lock_guard<std::mutex> lock(mu_);
      leader_ = false;
      return Status::Ok();
    }
    if (put.status().code() != Code::kConflict) {
      return put.status().WithContext("release lease " + lease_description());
    }
    Result<json> got = client_.Request("GET", path);
    if (!got.ok()) return got.status().WithContext("release lease " + lease_description());
    Observe(*got, clock_.Now());
    if (observed_record_.holder != options_.identity) return Status::Ok();  // not ours any more
  }
  return Status::Conflict("release lease " + lease_description() +
                          ": the Lease kept changing under us");
}

Status LeaderElector::WriteWebhookRequest(const std::string& value, std::stop_token stop) {
  const std::string path = LeasePath();
  Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (stop.stop_requested()) return Status::Cancelled("stopping");
    Result<json> got = client_.Request("GET", path, {}, "application/json", stop);
    if (!got.ok()) return got.status().WithContext("get lease " + lease_description());
    Observe(*got, clock_.Now());
    json lease = *got;
    json& meta = lease["metadata"];
    if (!meta.contains("annotations") || !meta["annotations"].is_object()) {
      meta["annotations"] = json::object();
    }
    meta["annotations"][kWebhookAnnotation] = value;
    Result<json> put = client_.Request("PUT", path, lease.dump(), "application/json", stop);
    if (put.ok()) {
      Observe(*put, clock_.Now());
      webhook_seen_ = value;  // ours: not a hand-off to ourselves
      webhook_seen_known_ = true;
      return Status::Ok();
    }
    last = put.status();
    if (last.code() != Code::kConflict) break;
  }
  return last.WithContext("annotate lease " + lease_description());
}

std::string LeaderElector::QueueWebhook(const std::string& why) {
  std::string leader;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_webhook_ = wall_time_() + " " + options_.identity;
    ++queued_;
    leader = holder_;
    wake_.request_stop();
  }
  Log(false, "leader election: " + options_.identity + " is following; handing the webhook (" +
                 why + ") to the leader through the Lease " + lease_description());
  return "handed to the leader" + (leader.empty() ? std::string() : " " + leader) +
         " through the Lease " + lease_description();
}

void LeaderElector::HandOffPending(std::stop_token stop) {
  std::optional<std::string> value;
  {
    std::lock_guard<std::mutex> lock(mu_);
    value = pending_webhook_;
    attempted_ = queued_;
  }
  if (!value) return;
  if (IsLeader()) {
    // We lead now: the webhook is ours to run.
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (pending_webhook_ == value) pending_webhook_.reset();
    }
    if (callbacks_.webhook_requested) callbacks_.webhook_requested(*value);
    return;
  }
  Status s = WriteWebhookRequest(*value, stop);
  if (!s.ok()) {
    Log(true,
        "leader election: could not hand a webhook to the leader yet (retrying): " + s.message());
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pending_webhook_ == value) pending_webhook_.reset();
  }
  Log(false, "leader election: webhook handed to the leader " + Leader() + " (annotation " +
                 kWebhookAnnotation + "=" + *value + ")");
}

bool LeaderElector::Sleep(milliseconds d, std::stop_token stop) {
  std::stop_source wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // A webhook queued since the last hand-off attempt: no sleep.
    if (pending_webhook_ && queued_ != attempted_) return !stop.stop_requested();
    wake_ = wake;
  }
  std::stop_callback forward(stop, [&wake] { wake.request_stop(); });
  clock_.SleepFor(d, wake.get_token());
  return !stop.stop_requested();
}

bool LeaderElector::PastRenewDeadline() {
  // Only while leading: a call started after the renew deadline could end
  // after the lease expired for the others.
  return IsLeader() && clock_.Now() - last_renew_ >= options_.renew_deadline;
}

bool LeaderElector::Lead(std::stop_token stop) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    leader_ = true;
    ++transitions_;
    term_ = observed_record_.transitions;
  }
  Log(false, "leader election: " + options_.identity + " became leader (lease " +
                 lease_description() + ", term " + std::to_string(observed_record_.transitions) +
                 ", acquired " + observed_record_.acquire_time + ")");
  if (callbacks_.started_leading) callbacks_.started_leading();
  std::string why;
  while (true) {
    HandOffPending(stop);
    SteadyTime now = clock_.Now();
    auto since = now - last_renew_;
    auto next = since >= options_.renew_deadline
                    ? milliseconds(0)
                    : std::min<milliseconds>(
                          options_.retry_period,
                          std::chrono::ceil<milliseconds>(options_.renew_deadline - since));
    if (next.count() > 0 && !Sleep(next, stop)) return false;
    if (stop.stop_requested()) return false;
    if (clock_.Now() - last_renew_ < options_.renew_deadline) {
      const bool renewed = TryAcquireOrRenew(stop);
      LogNewError();
      if (renewed) continue;
      if (stop.stop_requested()) return false;
      if (!observed_record_.holder.empty() && observed_record_.holder != options_.identity) {
        why = "the lease is held by " + observed_record_.holder;
        break;
      }
      if (clock_.Now() - last_renew_ < options_.renew_deadline) continue;
    }
    std::string error;
    {
      std::lock_guard<std::mutex> lock(mu_);
      error = last_error_;
    }
    why = "could not renew the lease within the renew deadline " +
          Seconds(options_.renew_deadline) + (error.empty() ? "" : " (" + error + ")");
    break;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    leader_ = false;
  }
  Log(true, "leader election: " + options_.identity + " stopped leading: " + why +
                "; stopping the current pass");
  if (callbacks_.stopped_leading) callbacks_.stopped_leading(stop);
  Log(true, "leader election: " + options_.identity +
                " stopped applying (the current pass has ended); following");
  return !stop.stop_requested();
}

void LeaderElector::Run(std::stop_token stop) {
  Log(false, "leader election: " + options_.identity + " is following; lease " +
                 lease_description() + " (duration " + Seconds(options_.lease_duration) +
                 ", renew deadline " + Seconds(options_.renew_deadline) + ", retry period " +
                 Seconds(options_.retry_period) + ")");
  std::uniform_real_distribution<double> jitter(0.8, 1.0);
  while (!stop.stop_requested()) {
    HandOffPending(stop);
    const bool acquired = TryAcquireOrRenew(stop);
    LogNewError();
    if (acquired) {
      if (!Lead(stop)) break;
      continue;
    }
    if (stop.stop_requested()) break;
    // Next attempt: a jittered retry period, or the moment the lease we
    // observe expires on our clock, whichever comes first.
    auto wait = std::chrono::duration_cast<milliseconds>(options_.retry_period * jitter(rng_));
    if (!observed_record_.holder.empty() && observed_record_.holder != options_.identity) {
      SteadyTime expiry =
          observed_time_ + std::chrono::seconds(observed_record_.lease_duration_seconds);
      SteadyTime now = clock_.Now();
      if (expiry > now) {
        auto until = std::chrono::ceil<milliseconds>(expiry - now) + milliseconds(1);
        wait = std::min(wait, until);
      }
    }
    if (!Sleep(wait, stop)) break;
  }
  if (observed_record_.holder == options_.identity) {
    Status s = Release();
    if (s.ok()) {
      Log(false,
          "leader election: " + options_.identity + " released the lease " + lease_description());
    } else {
      Log(true, "leader election: " + options_.identity +
                    " could not release the lease (it expires on its own): " + s.message());
    }
  }
}

bool LeaderElector::IsLeader() const {
  std::lock_guard<std::mutex> lock(mu_);
  return leader_;
}

std::string LeaderElector::Leader() const {
  std::lock_guard<std::mutex> lock(mu_);
  return holder_;
}

long LeaderElector::term() const {
  std::lock_guard<std::mutex> lock(mu_);
  return term_;
}

long LeaderElector::transitions() const {
  std::lock_guard<std::mutex> lock(mu_);
  return transitions_;
}

bool LeaderElector::Following(std::string* why) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (reached_) {
    if (why) why->clear();
    return true;
  }
  if (why) {
    *why = last_error_.empty() ? "leader election: the Lease has not been read yet"
                               : "leader election: " + last_error_;
  }
  return false;
}

json LeaderElector::StatusJson() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {{"enabled", true},
          {"identity", options_.identity},
          {"lease", lease_description()},
          {"leader", holder_},
          {"isLeader", leader_},
          {"transitions", transitions_},
          {"term", term_},
          {"leaseTransitions", lease_transitions_},
          {"lastError", last_error_}};
}

json LeaderElectionView::Status() {
  json s = inner_.Status();
  if (!s.is_object()) s = json::object();
  s["leaderElection"] = elector_.StatusJson();
  return s;
}

Readiness LeaderElectionView::Ready() {
  if (elector_.IsLeader()) return inner_.Ready();
  Readiness r;
  r.ready = elector_.Following(&r.reason);
  return r;
}

std::string LeaderElectionView::TriggerWebhook(const std::string& why, const std::string& actor) {
  if (elector_.IsLeader()) {
    inner_.Trigger(why, actor);
    return {};
  }
  return elector_.QueueWebhook(why);
}

}  // namespace reconcile::controller
