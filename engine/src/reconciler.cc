#include "reconcile/reconciler.h"

#include <algorithm>
#include <ctime>
#include <set>
#include <sstream>
#include <utility>

#include "reconcile/build_context.h"
#include "reconcile/image_tag.h"
#include "reconcile/registry_credentials.h"
#include "reconcile/secrets.h"
#include "reconcile/sops_store.h"
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
  if (!snapshot_.signer.empty()) {
    Emit(Event::Type::kStageStarted, "commit " + snapshot_.revision.substr(0, 12) +
                                         ": signature accepted, signed by " + snapshot_.signer);
  }
  CheckSecretEnvPolicy(snapshot_.loaded.state, deps_.secret_env_policy,
                       snapshot_.loaded.diagnostics);
  if (!snapshot_.loaded.diagnostics.HasErrors()) {
    CheckSopsFiles(snapshot_.loaded.state, snapshot_.root, snapshot_.loaded.diagnostics);
  }
  snapshot_.loaded.diagnostics.Sort();
  SopsStoreOptions sops;
  sops.keys = deps_.sops_keys;
  sops.sops = deps_.sops_options;
  sops.max_file_bytes = deps_.sops_max_file_bytes;
  sops_store_ = NewSopsTreeStore(snapshot_.root, std::move(sops));
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
  pinned_.reset();
  pin_ = recorded_->pin;
  ended_pin_.reset();
  if (!recorded_->pin || snapshot_.revision.empty()) return Status::Ok();
  const Pin& pin = *recorded_->pin;
  if (pin.desired_revision != snapshot_.revision) {
    ended_pin_ = pin;
    pin_.reset();
    Emit(Event::Type::kWarning, "the pin on revision " + pin.revision + " (rollback to history #" +
                                    std::to_string(pin.serial) +
                                    ") ends: the desired revision changed from " +
                                    pin.desired_revision + " to " + snapshot_.revision);
    return Status::Ok();
  }
  Result<History> history = deps_.store->LoadHistory();
  if (!history.ok()) return history.status();
  for (size_t i = 0; i < history->entries.size(); ++i) {
    if (history->entries[i].serial != pin.serial) continue;
    if (Status s = BuildPinned(*history, i); !s.ok()) {
      return s.WithContext("the pinned revision " + pin.revision);
    }
    Emit(Event::Type::kStageStarted,
         "pinned to revision " + pin.revision + " (history #" + std::to_string(pin.serial) +
             ") until the desired revision changes from " + pin.desired_revision);
    return Status::Ok();
  }
  return Status::Invalid("the state pins revision " + pin.revision + " (history #" +
                         std::to_string(pin.serial) +
                         "), which the history no longer holds; roll back again "
                         "(`reconcile rollback --to`) or change the desired revision");
}

Status Reconciler::BuildPinned(const History& history, size_t index) {
  const HistoryEntry& entry = history.entries[index];
  HistoryResources resources = ResourcesAt(history, index);
  // Specs that run now are in the state already; the others come from the
  // spec store (at steady state while pinned: none).
  std::map<std::string, nlohmann::json> specs;
  HistoryResources missing;
  for (const auto& [address, r] : resources) {
    auto it = recorded_->resources.find(address);
    if (it != recorded_->resources.end() && it->second.spec_hash == r.spec_hash) {
      specs[address] = it->second.spec.Get();
    } else {
      missing.emplace(address, r);
    }
  }
  if (!missing.empty()) {
    auto loaded = deps_.store->LoadSpecs(history, missing);
    if (!loaded.ok()) return loaded.status();
    specs.merge(*loaded);
  }
  const DesiredState& tree = snapshot_.loaded.state;
  DesiredState pinned;
  pinned.targets = tree.targets;
  pinned.registries = tree.registries;
  pinned.revision = entry.revision;
  for (const auto& [address, r] : resources) {
    if (!address.starts_with("agent.")) continue;
    const std::string name = address.substr(6);
    Result<Agent> agent = AgentFromSpec(name, specs[address]);
    if (!agent.ok()) return agent.status();
    if (tree.FindTarget(agent->target) == nullptr) {
      return Status::Invalid("agent '" + name + "' of revision " + entry.revision +
                             " runs on target '" + agent->target +
                             "', which the desired tree no longer declares; declare it again "
                             "to roll back");
    }
    for (const std::string& dep : r.depends_on) {
      agent->depends_on.push_back(dep.starts_with("agent.") ? dep.substr(6) : dep);
    }
    // The image by the digest it ran with, so that a tag moved since then
    // does not change what comes back; an agent still running that spec and
    // digest keeps its spec (and hash) as recorded and is left alone.
    if (r.image_digest.find("@sha256:") != std::string::npos && agent->image != r.image_digest) {
      auto running = recorded_->resources.find(address);
      const bool unchanged = running != recorded_->resources.end() &&
                             running->second.spec_hash == r.spec_hash &&
                             running->second.image_digest == r.image_digest;
      if (!unchanged) {
        agent->image = r.image_digest;
        agent->build.reset();
      }
    }
    if (const Agent* now = tree.FindAgent(name)) {
      agent->suspend = now->suspend;
      agent->drift = now->drift;
      agent->location = now->location;
    }
    pinned.agents.push_back(std::move(*agent));
  }
  pinned_ = std::move(pinned);
  return Status::Ok();
}

Status Reconciler::PinTo(const History& history, size_t index) {
  if (index >= history.entries.size()) return Status::Internal("rollback: no such entry");
  if (Status s = BuildPinned(history, index); !s.ok()) return s;
  const HistoryEntry& entry = history.entries[index];
  Pin pin;
  pin.revision = entry.revision;
  pin.serial = entry.serial;
  pin.desired_revision = snapshot_.revision;
  pin.pinned_at = deps_.clock->NowRfc3339();
  pin_ = pin;
  ended_pin_.reset();
  rollback_of_ = entry.serial;
  return Status::Ok();
}

void Reconciler::DropPin() {
  if (pin_) ended_pin_ = pin_;
  pin_.reset();
  pinned_.reset();
}

const DesiredState& Reconciler::planned() const {
  return pinned_ ? *pinned_ : snapshot_.loaded.state;
}

Status Reconciler::Observe(ObserveScope scope) {
  Emit(Event::Type::kStageStarted, "observe");
  const DesiredState& desired = snapshot_.loaded.state;
  std::set<std::string> targets;
  for (const Agent& a : desired.agents) targets.insert(a.target);
  if (pinned_) {
    for (const Agent& a : pinned_->agents) targets.insert(a.target);
  }
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
  if (scope != ObserveScope::kAll) return Status::Ok();
  if (Status s = ObserveSecrets(); !s.ok()) return s;
  return ObserveImages();
}

namespace {

// Asks the wrapped store once per reference and pass (two agents that use
// one secret get the same value); only successes are kept, in memory.
class OncePerPass : public SecretStore {
 public:
  explicit OncePerPass(SecretStore* store) : store_(store) {}
  Result<std::string> Get(const SecretRef& ref, std::stop_token stop) override {
    const std::string text = SecretRefText(ref);
    if (auto it = got_.find(text); it != got_.end()) return it->second;
    Result<std::string> v = store_->Get(ref, stop);
    if (v.ok()) got_.emplace(text, *v);
    return v;
  }

 private:
  SecretStore* store_;
  std::map<std::string, std::string> got_;
};

}  // namespace

Status Reconciler::ObserveSecrets() {
  secret_values_.clear();
  if (deps_.secret_digest_key_file.empty()) return Status::Ok();
  DesiredState& planned_state = pinned_ ? *pinned_ : snapshot_.loaded.state;
  std::string key;
  SecretEnvPolicy policy = deps_.secret_env_policy;
  policy.engine_credentials.merge(RegistryCredentialVariables(snapshot_.loaded.state));
  std::map<SecretRef::Source, std::unique_ptr<OncePerPass>> once;
  SecretStores stores;
  for (const auto& [source, store] : Stores()) {
    if (store == nullptr) continue;
    once[source] = std::make_unique<OncePerPass>(store);
    stores[source] = once[source].get();
  }
  for (Agent& a : planned_state.agents) {
    if (a.suspend || (a.secret_env.empty() && a.secret_files.empty())) continue;
    if (deps_.stop.stop_requested()) return Status::Cancelled("stopped while reading secrets");
    if (key.empty()) {
      Result<std::string> k = DigestKey(deps_.secret_digest_key_file);
      if (!k.ok()) return k.status();
      key = std::move(*k);
    }
    std::map<std::string, SecretRef> refs = a.secret_env;
    for (const auto& [name, file] : a.secret_files) refs[SecretFileValueKey(name)] = file.ref;
    auto values = ResolveSecrets(refs, deps_.secrets_dir, policy, stores, deps_.stop);
    if (!values.ok()) {
      const SourceLocation& at = a.location;
      return values.status().WithContext(at.file + ":" + std::to_string(at.line) + ":" +
                                         std::to_string(at.column) + ": agent '" + a.name + "'");
    }
    std::map<std::string, std::string> digests;
    for (const auto& [name, value] : *values) digests[name] = SecretDigest(key, value);
    if (digests != a.secret_digests) {
      a.secret_digests = std::move(digests);
      a.spec_memo = SpecMemo();  // the spec hash includes the digests
    }
    secret_values_[a.name] = std::move(*values);
  }
  return Status::Ok();
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

Status Reconciler::BuildImage(const Change& change, const ProgressFn& progress, const StepFn& step,
                              std::stop_token stop, const std::string& traceparent) const {
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
      change.desired->is_object() && change.desired->value("reference", "").size()
          ? change.desired->value("reference", "")
          : "";
  if (reference.empty()) return Status::Invalid(change.address + ": the change names no image");
  Result<std::optional<RegistryCredentials>> credentials = CredentialsFromEnvironment(*registry);
  if (!credentials.ok()) return credentials.status();

  Result<BuildContext> context = ListBuildContext(snapshot_.root, ContextOf(*a).string(),
                                                  a->build->dockerfile, deps_.build->limits);
  if (!context.ok()) return context.status().WithContext(AgentWhere(*a, "spec.build.context"));
  const std::size_t entries = context->entries.size();
  auto tar = std::make_shared<ContextTarStream>(std::move(*context));
  if (step) step("build");
  if (progress) {
    progress("sending build context " + ContextOf(*a).generic_string() + " (" +
             std::to_string(entries) + " entries, " + std::to_string(tar->size()) + " bytes)");
  }
  Result<std::unique_ptr<ImageBuilder>> builder = deps_.build->builder_for(*target);
  if (!builder.ok()) return builder.status();

  BuildImageRequest build;
  build.reference = reference;
  build.context = std::move(tar);
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
  build.traceparent = traceparent;
  BuildImageResponse built = (*builder)->Build(build);
  if (!built.status.ok()) return built.status;

  PushImageRequest push;
  push.reference = reference;
  push.credentials = *credentials;
  push.progress = progress;
  push.stop = stop;
  push.traceparent = traceparent;
  if (step) step("push");
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
  input.desired = &planned();
  input.recorded = recorded_.get();
  input.observed = observed_;
  input.images = images_;
  for (const auto& [name, provider] : providers_) {
    const Target* target = snapshot_.loaded.state.FindTarget(name);
    if (!target) continue;
    input.schemas[target->provider] = provider->Schema();
    const Provider* p = provider.get();
    input.plan_change[name] = [p](const PlanChangeRequest& r) { return p->PlanChange(r); };
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

namespace {

// The path of the first difference between two JSON values
// ("changes[1].desired.env.GREETING"), or "" when equal.
std::string FirstDifference(const nlohmann::json& a, const nlohmann::json& b,
                            const std::string& path) {
  if (a == b) return "";
  if (a.is_object() && b.is_object()) {
    for (const auto& [key, value] : a.items()) {
      const std::string p = path.empty() ? key : path + "." + key;
      if (!b.contains(key)) return p;
      if (std::string d = FirstDifference(value, b[key], p); !d.empty()) return d;
    }
    for (const auto& [key, value] : b.items()) {
      if (!a.contains(key)) return path.empty() ? key : path + "." + key;
    }
  }
  if (a.is_array() && b.is_array() && a.size() == b.size()) {
    for (size_t i = 0; i < a.size(); ++i) {
      const std::string p = path + "[" + std::to_string(i) + "]";
      if (std::string d = FirstDifference(a[i], b[i], p); !d.empty()) return d;
    }
  }
  return path.empty() ? "(top level)" : path;
}

}  // namespace

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
  const nlohmann::json a = ToJson(saved);
  const nlohmann::json b = ToJson(fresh);
  if (a != b) {
    return Status::Invalid(
        "saved plan does not match the plan computed now from the same revision and what "
        "runs (first difference: plan." +
        FirstDifference(a, b, "") +
        "): it was edited or made by another version of reconcile; nothing was applied; run "
        "`reconcile plan --out` again");
  }
  return Status::Ok();
}

Result<std::map<std::string, std::string>> Reconciler::SecretsFor(const Change& change) const {
  const Agent* agent = planned().FindAgent(change.name);
  if (agent == nullptr || (agent->secret_env.empty() && agent->secret_files.empty())) {
    return std::map<std::string, std::string>{};
  }
  // The values whose fingerprints the plan holds.
  if (auto it = secret_values_.find(agent->name); it != secret_values_.end()) return it->second;
  SecretEnvPolicy policy = deps_.secret_env_policy;
  policy.engine_credentials.merge(RegistryCredentialVariables(snapshot_.loaded.state));
  std::map<std::string, SecretRef> refs = agent->secret_env;
  for (const auto& [name, file] : agent->secret_files) refs[SecretFileValueKey(name)] = file.ref;
  return ResolveSecrets(refs, deps_.secrets_dir, policy, Stores(), deps_.stop);
}

SecretStores Reconciler::Stores() const {
  SecretStores stores = deps_.secret_stores;
  if (sops_store_) stores.emplace(SecretRef::Source::kSops, sops_store_.get());
  return stores;
}

// Records what runs for unchanged agents whose state entry is missing or out
// of date (e.g. a lost state folder): the labels prove we own them. Returns
// the recorded state with those entries refreshed, or nothing when every
// entry is current (no copy of a large state then).
namespace {

// The digest an agent runs (ResourceState::image_digest): its instances' (a
// provider that tells), else its spec's image when that names a digest.
std::string RunningDigest(const ResourceState& rs) {
  for (const InstanceRecord& i : rs.instances) {
    if (!i.image_digest.empty()) return i.image_digest;
  }
  if (nlohmann::json spec = rs.spec.Get(); spec.is_object()) {
    std::string image = spec.value("image", "");
    if (image.find("@sha256:") != std::string::npos) return image;
  }
  return "";
}

}  // namespace

std::optional<State> Reconciler::RefreshUnchanged(const Plan& plan) const {
  std::map<std::pair<std::string, std::string>, std::vector<InstanceRecord>> running;
  for (const auto& [target, response] : observed_) {
    for (const ObservedInstance& i : response.instances) {
      running[{target, i.agent}].push_back({i.id, i.name, i.endpoint, {}});
    }
  }
  static const std::vector<InstanceRecord> kNone;
  std::optional<State> state;
  const std::string now = deps_.clock->NowRfc3339();
  for (const Change& c : plan.changes) {
    if (c.action != Action::kNoOp || c.prior.empty()) continue;
    if (!observed_.count(c.target)) continue;
    auto it = running.find({c.target, c.name});
    std::vector<InstanceRecord> instances = it == running.end() ? kNone : it->second;
    auto current = recorded_->resources.find(c.address);
    if (current != recorded_->resources.end()) {
      // Observation does not tell digests: keep those recorded for the same containers.
      for (InstanceRecord& i : instances) {
        for (const InstanceRecord& was : current->second.instances) {
          if (was.id == i.id) i.image_digest = was.image_digest;
        }
      }
    }
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
    rs.instances = std::move(instances);
    rs.image_digest = RunningDigest(rs);
  }
  return state;
}

ApplyOutcome Reconciler::ApplyPlan(const Plan& plan, const ApplyOptions& options) {
  ApplyOutcome out;
  std::optional<State> refreshed = RefreshUnchanged(plan);
  // The pin: kept, made (PinTo) or ended (another desired revision).
  const std::optional<Pin> pin = snapshot_.revision.empty() ? recorded_->pin : pin_;
  if (pin != recorded_->pin) {
    if (!refreshed) refreshed = *recorded_;
    refreshed->pin = pin;
  }
  // A tree whose secrets were read from outside it (secret_values_) is never
  // "unchanged" by its content alone: a new value must be planned.
  const std::string digest = !record_content_digest_  ? recorded_->content_digest
                             : secret_values_.empty() ? ContentDigest()
                                                      : "";
  if (!plan.HasChanges() && digest != recorded_->content_digest) {
    if (!refreshed) refreshed = *recorded_;
    refreshed->content_digest = digest;
  }
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
  ctx.build_image = [&](const Change& c, const ProgressFn& progress, const StepFn& step,
                        std::stop_token stop, const std::string& traceparent) {
    return BuildImage(c, progress, step, stop, traceparent);
  };
  ctx.pull_credentials_for = [&](const Change& c) { return PullCredentials(c); };
  ctx.clock = deps_.clock;
  ctx.observer = deps_.observer;
  ctx.stop = deps_.stop;
  // A stop reaches each provider too (Provider::Stop), for the waits and
  // calls that do not watch the request's token (a plugin's process).
  std::stop_callback stop_providers(deps_.stop, [this] {
    for (const auto& [name, provider] : providers_) provider->Stop();
  });
  ApplyResult result = Apply(plan, std::move(state), ctx, options);
  for (auto& [address, rs] : result.state.resources) {
    if (std::string digest = RunningDigest(rs); !digest.empty() || !rs.instances.empty()) {
      rs.image_digest = std::move(digest);
    }
  }
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
  entry.rollback_of = std::exchange(rollback_of_, 0);
  entry.ignored_windows = options.ignored_windows;
  std::map<std::string, const std::vector<std::string>*> depends_on;
  for (const Change& c : plan.changes) depends_on[c.address] = &c.depends_on;
  HistoryResources resources;
  for (const auto& [address, rs] : result.state.resources) {
    HistoryResource& r = resources[address];
    r.spec_hash = rs.spec_hash;
    if (nlohmann::json spec = rs.spec.Get(); spec.is_object()) r.image = spec.value("image", "");
    r.image_digest = rs.image_digest;
    if (auto it = depends_on.find(address); it != depends_on.end()) r.depends_on = *it->second;
  }
  // Changes made by anything but a full apply that succeeded (a failure, a
  // heal, the CLI) clear the digest: the next revision is planned in full.
  result.state.content_digest = record_content_digest_ && result.status.ok() ? digest : "";
  Result<int> serial = Record(std::move(result.state));
  if (!serial.ok()) {
    out.status = serial.status().WithContext("cannot record the state");
    return out;
  }
  out.serial = *serial;
  entry.serial = *serial;
  // The specs come from the state just saved (shared with the store).
  std::shared_ptr<const State> saved = recorded_;
  auto spec_of = [&saved](const std::string& address) -> std::optional<nlohmann::json> {
    auto it = saved->resources.find(address);
    if (it == saved->resources.end()) return std::nullopt;
    return it->second.spec.Get();
  };
  const int keep = saved->pin ? saved->pin->serial : 0;
  if (Status s = deps_.store->AppendHistory(entry, resources, spec_of, keep); !s.ok()) {
    Emit(Event::Type::kWarning, "could not record history: " + s.message());
  }
  return out;
}

std::string Reconciler::ContentDigest() const {
  if (!snapshot_.content_digest.empty()) return snapshot_.content_digest;
  const std::string& revision = snapshot_.loaded.state.revision;
  return revision.rfind("tree-", 0) == 0 ? revision : std::string();
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

std::optional<size_t> LiveEntry(const History& history, const State& state) {
  if (state.revision.empty()) return std::nullopt;
  for (size_t i = history.entries.size(); i-- > 0;) {
    const HistoryEntry& e = history.entries[i];
    if (e.result == "succeeded" && e.revision == state.revision) return i;
  }
  return std::nullopt;
}

Result<size_t> FindRollbackEntry(const History& history, const State& state,
                                 const std::string& to) {
  const std::vector<HistoryEntry>& entries = history.entries;
  if (entries.empty()) return Status::Invalid("nothing to roll back to: the history is empty");
  if (to.empty()) {
    std::optional<size_t> live = LiveEntry(history, state);
    size_t end = live ? *live : entries.size();
    for (size_t i = end; i-- > 0;) {
      const HistoryEntry& e = entries[i];
      if (e.result == "succeeded" && e.revision != state.revision) return i;
    }
    return Status::Invalid(
        "nothing to roll back to: the history holds no successful revision "
        "before the live one (" +
        (state.revision.empty() ? std::string("none") : state.revision) +
        "); see `reconcile history`");
  }
  auto must_succeed = [&](size_t i) -> Result<size_t> {
    const HistoryEntry& e = entries[i];
    if (e.result != "succeeded") {
      return Status::Invalid("--to " + to + ": history #" + std::to_string(e.serial) + " (" +
                             e.revision + ") " + e.result +
                             "; roll back to a revision that was applied in full");
    }
    return i;
  };
  if (std::all_of(to.begin(), to.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
      to.size() <= 9) {
    const int serial = std::stoi(to);
    for (size_t i = entries.size(); i-- > 0;) {
      if (entries[i].serial == serial) return must_succeed(i);
    }
    // Not a serial: it may still be a revision prefix of digits (below).
  }
  // An exact revision; else a prefix of at least 4 characters.
  const bool exact = std::any_of(entries.begin(), entries.end(),
                                 [&to](const HistoryEntry& e) { return e.revision == to; });
  if (!exact && to.size() < 4) {
    return Status::Invalid("--to " + to +
                           ": no history entry with this serial, and a revision prefix needs "
                           "at least 4 characters; see `reconcile history`");
  }
  std::optional<size_t> found;
  std::set<std::string> revisions;
  for (size_t i = entries.size(); i-- > 0;) {
    const HistoryEntry& e = entries[i];
    if (exact ? e.revision != to : !e.revision.starts_with(to)) continue;
    revisions.insert(e.revision);
    if (!found || (entries[*found].result != "succeeded" && e.result == "succeeded")) found = i;
  }
  if (!found) {
    return Status::Invalid("--to " + to +
                           ": no applied revision or history serial matches it; see `reconcile "
                           "history`");
  }
  if (revisions.size() > 1) {
    std::string list;
    for (const std::string& r : revisions) list += (list.empty() ? "" : ", ") + r;
    return Status::Invalid("--to " + to + " is ambiguous: it matches " + list);
  }
  return must_succeed(*found);
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
