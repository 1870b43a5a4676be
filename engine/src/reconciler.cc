#include "reconcile/reconciler.h"

#include <set>
#include <sstream>
#include <utility>

#include "reconcile/secrets.h"

namespace reconcile {

Reconciler::Reconciler(ReconcilerDeps deps) : deps_(std::move(deps)) {
  static NullObserver null_observer;
  if (deps_.observer == nullptr) deps_.observer = &null_observer;
}

Reconciler::~Reconciler() = default;

void Reconciler::Emit(Event::Type type, std::string message, std::string address) const {
  Event e;
  e.type = type;
  e.address = std::move(address);
  e.message = std::move(message);
  deps_.observer->OnEvent(e);
}

Status Reconciler::Fetch(const std::string& revision) {
  if (deps_.source == nullptr) return Status::Internal("reconciler: no source");
  Emit(Event::Type::kStageStarted, "fetch " + deps_.source->Describe());
  std::string rev = revision;
  if (rev.empty()) {
    Result<std::string> resolved = deps_.source->Resolve(deps_.stop);
    if (!resolved.ok()) return resolved.status();
    rev = *resolved;
  }
  Result<Snapshot> snapshot = deps_.source->Load(rev, deps_.stop);
  if (!snapshot.ok()) return snapshot.status();
  snapshot_ = std::move(*snapshot);
  CheckSecretEnvPolicy(snapshot_.loaded.state, deps_.secret_env_policy,
                       snapshot_.loaded.diagnostics);
  snapshot_.loaded.diagnostics.Sort();
  if (snapshot_.loaded.diagnostics.HasErrors()) {
    size_t n = 0;
    for (const Diagnostic& d : snapshot_.loaded.diagnostics.items()) {
      n += d.severity == Severity::kError;
    }
    return Status::Invalid(deps_.source->Describe() + " at " + snapshot_.revision + ": " +
                           std::to_string(n) + " error" + (n == 1 ? "" : "s") +
                           "; nothing was changed");
  }
  return Status::Ok();
}

Status Reconciler::Lock(const std::string& command) {
  auto lock = deps_.store->Lock(command);
  if (!lock.ok()) return lock.status();
  lock_ = std::move(*lock);
  return Status::Ok();
}

void Reconciler::Unlock() { lock_.reset(); }

Status Reconciler::ReadState() {
  Result<std::shared_ptr<const State>> state = deps_.store->LoadShared();
  if (!state.ok()) return state.status();
  recorded_ = std::move(*state);
  return Status::Ok();
}

Status Reconciler::Observe() {
  Emit(Event::Type::kStageStarted, "observe");
  const DesiredState& desired = snapshot_.loaded.state;
  for (const Agent& a : desired.agents) {
    if (a.build) {
      return Status::Invalid(a.location.file + ":" + std::to_string(a.location.line) + ": agent '" +
                             a.name +
                             "': spec.build is validated but not supported by this version "
                             "yet; build the image yourself and set spec.image");
    }
  }
  std::set<std::string> targets;
  for (const Agent& a : desired.agents) targets.insert(a.target);
  for (const auto& [address, rs] : recorded_->resources) targets.insert(rs.target);
  providers_.clear();
  observed_.clear();
  for (const std::string& name : targets) {
    if (deps_.stop.stop_requested()) return Status::Cancelled("stopped while observing");
    const Target* target = desired.FindTarget(name);
    if (target == nullptr) {
      return Status::Invalid("target '" + name +
                             "' is used by the recorded state but no longer declared; "
                             "declare it again to let reconcile clean up what runs there");
    }
    Target with_files = *target;
    with_files.secrets_dir = deps_.secrets_dir.string();
    Result<std::unique_ptr<Provider>> provider = deps_.providers->Create(with_files);
    if (!provider.ok()) return provider.status();
    ObserveResponse response = (*provider)->Observe({with_files});
    for (const std::string& w : response.warnings) {
      Emit(Event::Type::kWarning, w, "target." + name);
    }
    if (!response.status.ok()) {
      return response.status.WithContext("observing target '" + name + "'");
    }
    observed_[name] = std::move(response);
    providers_[name] = std::move(*provider);
  }
  return Status::Ok();
}

Plan Reconciler::MakePlan() const {
  PlanInput input;
  input.desired = &snapshot_.loaded.state;
  input.recorded = recorded_.get();
  input.observed = observed_;
  for (const auto& [name, provider] : providers_) {
    const Target* target = snapshot_.loaded.state.FindTarget(name);
    if (target) input.schemas[target->provider] = provider->Schema();
  }
  return ComputePlan(input);
}

Plan Reconciler::MakeDestroyPlan() const {
  DesiredState empty;
  empty.targets = snapshot_.loaded.state.targets;
  empty.registries = snapshot_.loaded.state.registries;
  empty.revision = snapshot_.loaded.state.revision;
  PlanInput input;
  input.desired = &empty;
  input.recorded = recorded_.get();
  input.observed = observed_;
  return ComputePlan(input);
}

std::vector<DriftItem> Reconciler::Drift() const { return ComputeDrift(*recorded_, observed_); }

Status Reconciler::CheckSaved(const Plan& saved, const Plan& fresh) {
  if (saved.revision != fresh.revision) {
    return Status::Conflict("saved plan is stale: the desired state changed (plan " +
                            saved.revision + ", now " + fresh.revision +
                            "); run `reconcile plan` again");
  }
  if (saved.observed_digest != fresh.observed_digest) {
    return Status::Conflict(
        "saved plan is stale: what runs changed since it was computed; run `reconcile plan` "
        "again");
  }
  return Status::Ok();
}

Result<std::map<std::string, std::string>> Reconciler::SecretsFor(const Change& change) const {
  const Agent* agent = snapshot_.loaded.state.FindAgent(change.name);
  if (agent == nullptr || agent->secret_env.empty()) {
    return std::map<std::string, std::string>{};
  }
  SecretEnvPolicy policy = deps_.secret_env_policy;
  policy.engine_credentials.merge(RegistryCredentialVariables(snapshot_.loaded.state));
  return ResolveSecrets(agent->secret_env, deps_.secrets_dir, policy);
}

// Records what runs for unchanged agents whose state entry is missing or out
// of date (e.g. a lost state folder): the labels prove we own them. Returns
// the recorded state with those entries refreshed, or nothing when every
// entry is current (no copy of a large state then).
std::optional<State> Reconciler::RefreshUnchanged(const Plan& plan) const {
  std::map<std::pair<std::string, std::string>, std::vector<InstanceRecord>> running;
  for (const auto& [target, response] : observed_) {
    for (const ObservedInstance& i : response.instances) {
      running[{target, i.agent}].push_back({i.id, i.name, i.endpoint});
    }
  }
  static const std::vector<InstanceRecord> kNone;
  std::optional<State> state;
  const std::string now = deps_.clock->NowRfc3339();
  for (const Change& c : plan.changes) {
    if (c.action != Action::kNoOp || c.prior.empty()) continue;
    if (!observed_.count(c.target)) continue;
    auto it = running.find({c.target, c.name});
    const std::vector<InstanceRecord>& instances = it == running.end() ? kNone : it->second;
    auto current = recorded_->resources.find(c.address);
    if (current != recorded_->resources.end() && current->second.spec_hash == c.desired_hash &&
        current->second.instances == instances) {
      continue;
    }
    if (!state) state = *recorded_;
    ResourceState& rs = state->resources[c.address];
    if (rs.address.empty()) {
      rs.health = "unknown";
      rs.applied_at = now;
      rs.revision = plan.revision;
    }
    RecordChange(c, rs);
    rs.instances = instances;
  }
  return state;
}

ApplyOutcome Reconciler::ApplyPlan(const Plan& plan, const ApplyOptions& options) {
  ApplyOutcome out;
  std::optional<State> refreshed = RefreshUnchanged(plan);
  if (!plan.HasChanges()) {
    if (refreshed) {
      Result<int> saved = Record(std::move(*refreshed));
      if (!saved.ok()) {
        out.status = saved.status();
        return out;
      }
      out.serial = *saved;
    }
    return out;
  }
  State state = refreshed ? std::move(*refreshed) : *recorded_;
  out.changed = true;
  Emit(Event::Type::kStageStarted, "apply");
  ApplyContext ctx;
  ctx.provider_for = [&](const std::string& t) -> Provider* {
    auto it = providers_.find(t);
    return it == providers_.end() ? nullptr : it->second.get();
  };
  ctx.target_for = [&](const std::string& t) { return snapshot_.loaded.state.FindTarget(t); };
  ctx.secrets_for = [&](const Change& c) { return SecretsFor(c); };
  ctx.clock = deps_.clock;
  ctx.observer = deps_.observer;
  ctx.stop = deps_.stop;
  ApplyResult result = Apply(plan, std::move(state), ctx, options);
  out.succeeded = result.succeeded;
  out.failed = result.failed;
  out.skipped = result.skipped;
  out.status = result.status;

  HistoryEntry entry;
  entry.revision = plan.revision;
  entry.applied_at = deps_.clock->NowRfc3339();
  entry.result = result.status.ok()                         ? "succeeded"
                 : result.status.code() == Code::kCancelled ? "cancelled"
                                                            : "failed";
  entry.summary = AppliedSummary(plan);
  for (const auto& [address, rs] : result.state.resources) entry.specs[address] = rs.spec;
  Result<int> serial = Record(std::move(result.state));
  if (!serial.ok()) {
    out.status = serial.status().WithContext("cannot record the state");
    return out;
  }
  out.serial = *serial;
  entry.serial = *serial;
  if (Status s = deps_.store->AppendHistory(entry); !s.ok()) {
    Emit(Event::Type::kWarning, "could not record history: " + s.message());
  }
  return out;
}

Result<int> Reconciler::Record(State state) {
  Result<int> serial = deps_.store->Save(std::move(state));
  if (!serial.ok()) return serial;
  // The store keeps what it saved: share that object rather than hold a
  // second copy of a large state.
  auto stored = deps_.store->LoadShared();
  if (!stored.ok()) return stored.status().WithContext("cannot read back the state just saved");
  recorded_ = std::move(*stored);
  return serial;
}

std::string AppliedSummary(const Plan& plan) {
  std::ostringstream out;
  out << plan.Count(Action::kCreate) << " added, " << plan.Count(Action::kUpdate) << " changed, "
      << plan.Count(Action::kReplace) << " replaced, " << plan.Count(Action::kDelete)
      << " destroyed";
  return out.str();
}

}  // namespace reconcile
