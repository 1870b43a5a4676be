#include "reconcile/reconciler.h"

#include <ctime>
#include <set>
#include <sstream>
#include <utility>

#include "reconcile/build_context.h"
#include "reconcile/image_tag.h"
#include "reconcile/registry_credentials.h"
#include "reconcile/secrets.h"
#include "reconcile/spec.h"

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
  Result<State> state = deps_.store->Load();
  if (!state.ok()) return state.status();
  recorded_ = std::move(*state);
  return Status::Ok();
}

Status Reconciler::Observe(ObserveScope scope) {
  Emit(Event::Type::kStageStarted, "observe");
  const DesiredState& desired = snapshot_.loaded.state;
  std::set<std::string> targets;
  for (const Agent& a : desired.agents) targets.insert(a.target);
  for (const auto& [address, rs] : recorded_.resources) targets.insert(rs.target);
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
    Result<std::unique_ptr<Provider>> provider = deps_.providers->Create(*target);
    if (!provider.ok()) return provider.status();
    ObserveResponse response = (*provider)->Observe({*target});
    if (!response.status.ok()) {
      return response.status.WithContext("observing target '" + name + "'");
    }
    observed_[name] = std::move(response);
    providers_[name] = std::move(*provider);
  }
  return scope == ObserveScope::kAll ? ObserveImages() : Status::Ok();
}

namespace {

std::string AgentWhere(const Agent& a, const std::string& field) {
  const SourceLocation& at =
      a.field_locations.count(field) ? a.field_locations.at(field) : a.location;
  return at.file + ":" + std::to_string(at.line) + ":" + std::to_string(at.column) + ": agent '" +
         a.name + "': " + field;
}

std::filesystem::path ContextOf(const Agent& a) {
  return (std::filesystem::path(a.manifest_dir) / a.build->context).lexically_normal();
}

}  // namespace

Status Reconciler::ObserveImages() {
  images_.clear();
  const DesiredState& desired = snapshot_.loaded.state;
  for (const Agent& a : desired.agents) {
    if (!a.build) continue;
    if (deps_.stop.stop_requested()) return Status::Cancelled("stopped while observing");
    if (deps_.build == nullptr || deps_.build->registry == nullptr) {
      return Status::Invalid(AgentWhere(a, "spec.build") +
                             ": this engine was started without an image builder");
    }
    const Registry* registry = desired.FindRegistry(a.registry);
    if (registry == nullptr) {
      return Status::Invalid(AgentWhere(a, "spec.registry") + ": Registry '" + a.registry +
                             "' is not declared in the tree");
    }
    TagFacts facts;
    facts.revision = snapshot_.revision;
    facts.commit_time = snapshot_.commit_time;
    facts.git_tags = snapshot_.tags;
    facts.git = !snapshot_.commit_time.empty();
    if (!facts.git) {
      // A folder has no commit: the tag comes from what the build sends.
      if (snapshot_.root.empty()) {
        return Status::Invalid(AgentWhere(a, "spec.build.context") +
                               ": the source offers no folder to build from");
      }
      Result<BuildContext> context = ListBuildContext(snapshot_.root, ContextOf(a).string(),
                                                      a.build->dockerfile, deps_.build->limits);
      if (!context.ok()) return context.status().WithContext(AgentWhere(a, "spec.build.context"));
      Result<std::string> digest = ContextDigest(*context);
      if (!digest.ok()) return digest.status().WithContext(AgentWhere(a, "spec.build.context"));
      nlohmann::json how = {{"dockerfile", a.build->dockerfile}, {"args", a.build->args}};
      facts.context_digest = Sha256Hex(*digest + "\n" + how.dump());
      std::time_t newest = static_cast<std::time_t>(context->newest_mtime);
      char buf[32];
      std::tm tm{};
      gmtime_r(&newest, &tm);
      std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
      facts.context_mtime = buf;
    }
    Result<std::string> tag = ImageTag(a, *registry, facts);
    if (!tag.ok()) return tag.status();
    ObservedImage image;
    image.tag = *tag;
    image.reference = ImageReference(*registry, *tag);
    if (!a.suspend) {
      Result<std::optional<RegistryCredentials>> credentials =
          CredentialsFromEnvironment(*registry);
      if (!credentials.ok()) return credentials.status();
      Result<bool> exists = deps_.build->registry->HasTag(*registry, *tag, *credentials);
      if (!exists.ok()) return exists.status().WithContext("agent '" + a.name + "'");
      image.exists = *exists;
    }
    images_[a.name] = std::move(image);
  }
  return Status::Ok();
}

Status Reconciler::BuildImage(const Change& change, const ProgressFn& progress,
                              std::stop_token stop) const {
  const DesiredState& desired = snapshot_.loaded.state;
  const Agent* a = desired.FindAgent(change.name);
  if (a == nullptr || !a->build) {
    return Status::Invalid(change.address + ": no agent with build named '" + change.name + "'");
  }
  const Registry* registry = desired.FindRegistry(a->registry);
  const Target* target = desired.FindTarget(a->target);
  if (registry == nullptr || target == nullptr || deps_.build == nullptr) {
    return Status::Invalid(change.address + ": registry, target or image builder missing");
  }
  const std::string reference =
      change.desired.is_object() && change.desired.value("reference", "").size()
          ? change.desired.value("reference", "")
          : "";
  if (reference.empty()) return Status::Invalid(change.address + ": the change names no image");
  Result<std::optional<RegistryCredentials>> credentials = CredentialsFromEnvironment(*registry);
  if (!credentials.ok()) return credentials.status();

  Result<BuildContext> context = ListBuildContext(snapshot_.root, ContextOf(*a).string(),
                                                  a->build->dockerfile, deps_.build->limits);
  if (!context.ok()) return context.status().WithContext(AgentWhere(*a, "spec.build.context"));
  Result<std::string> tar = ContextTar(*context);
  if (!tar.ok()) return tar.status().WithContext(AgentWhere(*a, "spec.build.context"));
  if (progress) {
    progress("sending build context " + ContextOf(*a).generic_string() + " (" +
             std::to_string(context->entries.size()) + " entries, " + std::to_string(tar->size()) +
             " bytes)");
  }
  Result<std::unique_ptr<ImageBuilder>> builder = deps_.build->builder_for(*target);
  if (!builder.ok()) return builder.status();

  BuildImageRequest build;
  build.reference = reference;
  build.context_tar = std::move(*tar);
  build.dockerfile = a->build->dockerfile;
  build.args = a->build->args;
  build.labels = {{kLabelManagedBy, kManagedByValue},
                  {kLabelAgent, a->name},
                  {kLabelRevision, snapshot_.revision}};
  for (const Registry& r : desired.registries) {
    Result<std::optional<RegistryCredentials>> c = CredentialsFromEnvironment(r);
    if (c.ok() && c->has_value()) build.pull_credentials.push_back(**c);
  }
  build.progress = progress;
  build.stop = stop;
  BuildImageResponse built = (*builder)->Build(build);
  if (!built.status.ok()) return built.status;

  PushImageRequest push;
  push.reference = reference;
  push.credentials = *credentials;
  push.progress = progress;
  push.stop = stop;
  if (progress) progress("pushing " + reference);
  PushImageResponse pushed = (*builder)->Push(push);
  if (!pushed.status.ok()) return pushed.status;
  if (progress) {
    progress("pushed " + reference + (pushed.digest.empty() ? "" : " (" + pushed.digest + ")"));
  }
  return Status::Ok();
}

Result<std::optional<RegistryCredentials>> Reconciler::PullCredentials(const Change& change) const {
  const DesiredState& desired = snapshot_.loaded.state;
  const Agent* a = desired.FindAgent(change.name);
  if (a == nullptr) return std::optional<RegistryCredentials>();
  const Registry* registry = nullptr;
  if (a->build) {
    registry = desired.FindRegistry(a->registry);
  } else {
    registry = RegistryForImage(desired, a->image);
  }
  if (registry == nullptr) return std::optional<RegistryCredentials>();
  return CredentialsFromEnvironment(*registry);
}

Plan Reconciler::MakePlan() const {
  PlanInput input;
  input.desired = &snapshot_.loaded.state;
  input.recorded = &recorded_;
  input.observed = observed_;
  input.images = images_;
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
  input.recorded = &recorded_;
  input.observed = observed_;
  return ComputePlan(input);
}

std::vector<DriftItem> Reconciler::Drift() const { return ComputeDrift(recorded_, observed_); }

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
  return ResolveSecrets(agent->secret_env, deps_.secrets_dir);
}

// Records what runs for unchanged agents whose state entry is missing or out
// of date (e.g. a lost state folder): the labels prove we own them.
bool Reconciler::RefreshUnchanged(const Plan& plan, State& state) const {
  bool changed = false;
  const std::string now = deps_.clock->NowRfc3339();
  for (const Change& c : plan.changes) {
    if (c.action != Action::kNoOp || c.prior.empty()) continue;
    auto observed = observed_.find(c.target);
    if (observed == observed_.end()) continue;
    std::vector<InstanceRecord> instances;
    for (const ObservedInstance& i : observed->second.instances) {
      if (i.agent == c.name) instances.push_back({i.id, i.name, i.endpoint});
    }
    ResourceState& rs = state.resources[c.address];
    if (rs.spec_hash == c.desired_hash && rs.instances == instances) continue;
    if (rs.address.empty()) {
      rs.health = "unknown";
      rs.applied_at = now;
      rs.revision = plan.revision;
    }
    RecordChange(c, rs);
    rs.instances = std::move(instances);
    changed = true;
  }
  return changed;
}

ApplyOutcome Reconciler::ApplyPlan(const Plan& plan, const ApplyOptions& options) {
  ApplyOutcome out;
  State state = recorded_;
  bool refreshed = RefreshUnchanged(plan, state);
  if (!plan.HasChanges()) {
    if (refreshed) {
      Result<int> saved = deps_.store->Save(state);
      if (!saved.ok()) {
        out.status = saved.status();
        return out;
      }
      state.serial = *saved;
      out.serial = *saved;
    }
    recorded_ = std::move(state);
    return out;
  }
  out.changed = true;
  Emit(Event::Type::kStageStarted, "apply");
  ApplyContext ctx;
  ctx.provider_for = [&](const std::string& t) -> Provider* {
    auto it = providers_.find(t);
    return it == providers_.end() ? nullptr : it->second.get();
  };
  ctx.target_for = [&](const std::string& t) { return snapshot_.loaded.state.FindTarget(t); };
  ctx.secrets_for = [&](const Change& c) { return SecretsFor(c); };
  ctx.build_image = [&](const Change& c, const ProgressFn& progress, std::stop_token stop) {
    return BuildImage(c, progress, stop);
  };
  ctx.pull_credentials_for = [&](const Change& c) { return PullCredentials(c); };
  ctx.clock = deps_.clock;
  ctx.observer = deps_.observer;
  ctx.stop = deps_.stop;
  ApplyResult result = Apply(plan, state, ctx, options);
  out.succeeded = result.succeeded;
  out.failed = result.failed;
  out.skipped = result.skipped;
  out.status = result.status;

  Result<int> serial = deps_.store->Save(result.state);
  if (!serial.ok()) {
    out.status = serial.status().WithContext("cannot record the state");
    return out;
  }
  out.serial = *serial;
  result.state.serial = *serial;
  HistoryEntry entry;
  entry.serial = *serial;
  entry.revision = plan.revision;
  entry.applied_at = deps_.clock->NowRfc3339();
  entry.result = result.status.ok()                         ? "succeeded"
                 : result.status.code() == Code::kCancelled ? "cancelled"
                                                            : "failed";
  entry.summary = AppliedSummary(plan);
  for (const auto& [address, rs] : result.state.resources) entry.specs[address] = rs.spec;
  if (Status s = deps_.store->AppendHistory(entry); !s.ok()) {
    Emit(Event::Type::kWarning, "could not record history: " + s.message());
  }
  recorded_ = std::move(result.state);
  return out;
}

std::string AppliedSummary(const Plan& plan) {
  std::ostringstream out;
  int builds = 0;
  for (const Change& c : plan.changes) {
    builds += IsImageAddress(c.address) && c.action == Action::kCreate ? 1 : 0;
  }
  if (builds > 0) out << builds << " built and pushed, ";
  out << plan.Count(Action::kCreate) - builds << " added, " << plan.Count(Action::kUpdate)
      << " changed, " << plan.Count(Action::kReplace) << " replaced, "
      << plan.Count(Action::kDelete) << " destroyed";
  return out.str();
}

}  // namespace reconcile
