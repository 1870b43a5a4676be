#include "kubernetes/kubernetes_provider.h"

#include <algorithm>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "kubernetes/kubernetes_manifests.h"
#include "kubernetes/kubernetes_target.h"

namespace reconcile::kubernetes {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

const json& Member(const json& j, const char* key) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}
std::string Str(const json& j, const char* key) {
  const json& v = Member(j, key);
  return v.is_string() ? v.get<std::string>() : "";
}

bool WaitFor(std::stop_token stop, std::chrono::milliseconds d) {
  std::mutex m;
  std::condition_variable_any cv;
  std::unique_lock lock(m);
  cv.wait_for(lock, stop, d, [] { return false; });
  return stop.stop_requested();
}

class WaitingScope {
 public:
  explicit WaitingScope(const std::function<void(bool)>& waiting) : waiting_(waiting) {
    if (waiting_) waiting_(true);
  }
  ~WaitingScope() {
    if (waiting_) waiting_(false);
  }
  WaitingScope(const WaitingScope&) = delete;
  WaitingScope& operator=(const WaitingScope&) = delete;

 private:
  const std::function<void(bool)>& waiting_;
};

// Removes every secret value (of 3 characters or more) from `text`.
std::string Redact(std::string text, const std::map<std::string, std::string>& secrets) {
  for (const auto& [name, value] : secrets) {
    if (value.size() < 3) continue;
    for (size_t at = text.find(value); at != std::string::npos; at = text.find(value, at)) {
      text.replace(at, value.size(), "[redacted]");
      at += 10;
    }
  }
  return text;
}

// One kind of object the provider applies.
struct Kind {
  const char* group_version;
  const char* plural;
  const char* word;  // for messages
};
constexpr Kind kDeployments{"apps/v1", "deployments", "deployment"};
constexpr Kind kServices{"v1", "services", "service"};
constexpr Kind kSecrets{"v1", "secrets", "secret"};

class KubernetesProvider final : public Provider {
 public:
  KubernetesProvider(Target target, KubernetesSettings settings, KubernetesOptions options)
      : target_(std::move(target)), s_(std::move(settings)), opt_(std::move(options)) {}

  ProviderSchema Schema() const override {
    ProviderSchema schema;
    schema.updatable_fields = {
        "image",       "port",         "hostPort",    "command",
        "args",        "env",          "secretEnv",   "publish",
        "secretFiles", "networks",     "volumes",     "ports",
        "replicas",    "restart",      "stopSignal",  "stopGracePeriod",
        "user",        "capAdd",       "capDrop",     "readOnlyRootFilesystem",
        "hostname",    "resources",    "healthCheck", "strategy",
        "labels",      "secretDigests"};
    schema.instance_per_replica = false;
    schema.target_schema = KubernetesTargetSchema();
    return schema;
  }

  PlanChangeResponse PlanChange(const PlanChangeRequest& request) const override {
    // Every field is applied to the same Deployment (a new ReplicaSet when
    // the pod template changes); only moving to another Target replaces.
    PlanChangeResponse r;
    for (const std::string& path : request.changed) {
      if (path.substr(0, path.find('.')) == "target") r.requires_replace.insert(path);
    }
    return r;
  }

  ObserveResponse Observe(const ObserveRequest&) override {
    ObserveResponse r;
    std::stop_token stop = stop_.get_token();
    Result<kube::Client*> client = Client();
    if (!client.ok()) {
      r.status = client.status();
      return r;
    }
    const std::string query = "?labelSelector=" + kube::QueryEscape(OwnerSelector(target_.name));
    Result<json> deployments =
        (*client)->Get(kube::CollectionPath("apps/v1", ns_, "deployments") + query, stop);
    if (!deployments.ok()) {
      r.status = deployments.status().WithContext(who_);
      return r;
    }
    Result<json> services =
        (*client)->Get(kube::CollectionPath("v1", ns_, "services") + query, stop);
    if (!services.ok()) {
      r.status = services.status().WithContext(who_);
      return r;
    }
    std::map<std::string, const json*> service_of;
    // Only this Target's environment's objects (reconcile.dev/environment;
    // absent: the plain tree), named ScopedName(environment, agent).
    const std::string& env = target_.environment;
    for (const json& s : Items(*services)) {
      std::string agent = Str(Member(Member(s, "metadata"), "labels"), kLabelAgent);
      if (IsOwned(s, agent, env) && Str(Member(s, "metadata"), "name") == ScopedName(env, agent)) {
        service_of[agent] = &s;
      }
    }
    for (const json& d : Items(*deployments)) {
      const json& meta = Member(d, "metadata");
      std::string agent = Str(Member(meta, "labels"), kLabelAgent);
      if (agent.empty() || !IsOwned(d, agent, env) || Str(meta, "name") != ScopedName(env, agent)) {
        continue;
      }
      auto s = service_of.find(agent);
      r.instances.push_back(Observed(d, s == service_of.end() ? nullptr : s->second));
    }
    std::sort(r.instances.begin(), r.instances.end(), [](const auto& a, const auto& b) {
      return std::tie(a.agent, a.name) < std::tie(b.agent, b.name);
    });
    return r;
  }

  ApplyChangeResponse ApplyChange(const ApplyChangeRequest& request) override {
    std::stop_source call;
    auto fire = [&call] { call.request_stop(); };
    std::stop_callback on_request(request.stop, fire);
    std::stop_callback on_provider(stop_.get_token(), fire);
    ApplyChangeResponse r;
    r.health = "unknown";
    Result<kube::Client*> client = Client();
    if (!client.ok()) {
      r.status = client.status();
    } else {
      Apply apply(*this, **client, request, call.get_token());
      r = apply.Run();
    }
    r.status = Status(r.status.code(), Redact(r.status.message(), request.secret_values));
    for (std::string& w : r.warnings) w = Redact(w, request.secret_values);
    return r;
  }

  void Stop() override { stop_.request_stop(); }

 private:
  static const json& Items(const json& list) {
    static const json kEmpty = json::array();
    const json& items = Member(list, "items");
    return items.is_array() ? items : kEmpty;
  }

  // The client, made on the first call.
  Result<kube::Client*> Client() {
    std::lock_guard lock(mu_);
    if (!client_) {
      if (opt_.client) {
        client_ = opt_.client;
      } else {
        Result<kube::Config> config =
            s_.in_cluster ? kube::InClusterConfig(opt_.in_cluster_root)
                          : kube::LoadConfig({s_.kubeconfig, s_.context, opt_.in_cluster_root});
        if (!config.ok()) return config.status().WithContext("Target '" + target_.name + "'");
        Result<std::unique_ptr<kube::Client>> made = kube::MakeClient(std::move(*config));
        if (!made.ok()) return made.status().WithContext("Target '" + target_.name + "'");
        client_ = std::move(*made);
      }
      ns_ = s_.namespace_name;
      if (ns_.empty()) ns_ = client_->config().namespace_name;
      if (ns_.empty()) ns_ = "default";
      who_ = "Target '" + target_.name + "' (Kubernetes, namespace " + ns_ + ")";
    }
    return client_.get();
  }

  ManifestContext ContextOf(const json& deployment) const {
    const json& meta = Member(deployment, "metadata");
    const json& annotations = Member(meta, "annotations");
    return {Str(Member(meta, "labels"), kLabelAgent),
            target_.name,
            ns_,
            Str(annotations, kLabelSpecHash),
            Str(annotations, kLabelRevision),
            target_.environment};
  }

  ObservedInstance Observed(const json& d, const json* service) const {
    const json& meta = Member(d, "metadata");
    ObservedInstance o;
    o.agent = Str(Member(meta, "labels"), kLabelAgent);
    o.name = Str(meta, "name");
    o.id = ns_ + "/deployments/" + o.name;
    ManifestContext c = ContextOf(d);
    o.spec_hash = c.spec_hash;
    o.revision = c.revision;
    const json& containers =
        Member(Member(Member(Member(d, "spec"), "template"), "spec"), "containers");
    if (containers.is_array() && !containers.empty()) o.image = Str(containers[0], "image");
    RolloutHealth h = DeploymentHealth(d);
    o.health = h.health;
    o.state = h.health == "healthy"    ? "available"
              : h.health == "starting" ? "progressing"
                                       : "failed";
    o.running = true;  // the Deployment exists; its health says whether it serves
    if (service) o.endpoint = ServiceAddress(*service);

    std::vector<std::string> drift;
    json spec = json::parse(Str(Member(meta, "annotations"), kAnnotationSpec), nullptr, false);
    if (spec.is_discarded() || !spec.is_object()) {
      drift.push_back("metadata.annotations[\"" + std::string(kAnnotationSpec) +
                      "\"]: missing or not JSON");
    } else {
      drift = ManagedFieldDrift(DeploymentManifest(spec, c), d, kFieldManager);
      if (std::optional<json> want = ServiceManifest(spec, c)) {
        if (!service) {
          drift.push_back("service " + o.agent + ": missing");
        } else {
          for (const std::string& f : ManagedFieldDrift(*want, *service, kFieldManager)) {
            drift.push_back("service " + f);
          }
        }
      }
    }
    if (!drift.empty()) {
      std::string fields;
      const size_t shown = std::min<size_t>(drift.size(), 3);
      for (size_t i = 0; i < shown; ++i) fields += (i ? "; " : "") + drift[i];
      if (drift.size() > shown) fields += "; and " + std::to_string(drift.size() - shown) + " more";
      o.spec_hash = (o.spec_hash.empty() ? "unknown" : o.spec_hash) +
                    " (changed outside reconcile: " + fields + ")";
    }
    return o;
  }

  // One ApplyChange call.
  class Apply {
   public:
    Apply(KubernetesProvider& p, kube::Client& client, const ApplyChangeRequest& request,
          std::stop_token stop)
        : p_(p),
          client_(client),
          req_(request),
          stop_(stop),
          agent_(request.change.name),
          env_(p.target_.environment),
          name_(ScopedName(env_, agent_)) {}

    ApplyChangeResponse Run() {
      r_.health = "unknown";
      if (!IsDns1035Label(name_)) {
        r_.status = Status::Invalid(p_.who_ + ": '" + name_.substr(0, 80) +
                                    "' cannot name a Deployment and a Service");
        return std::move(r_);
      }
      r_.status = req_.change.action == Action::kDelete ? Delete() : Deploy();
      return std::move(r_);
    }

   private:
    void Progress(const std::string& message) {
      if (req_.progress) req_.progress(message);
    }
    std::string Path(const Kind& k, const std::string& name) const {
      return kube::ObjectPath(k.group_version, p_.ns_, k.plural, name);
    }
    // The object, nullopt when it does not exist.
    Status Get(const Kind& k, const std::string& name, std::optional<json>* out) {
      Result<json> got = client_.Get(Path(k, name), stop_, req_.traceparent);
      out->reset();
      if (got.ok()) {
        *out = std::move(*got);
        return Status::Ok();
      }
      if (got.status().code() == Code::kNotFound) return Status::Ok();
      return got.status().WithContext(p_.who_);
    }
    Status NotOwned(const Kind& k, const std::string& name) {
      return Status::Conflict(
          p_.who_ + ": a " + k.word + " named '" + name +
          "' exists and is not managed by reconcile (no " + kLabelManagedBy + "=reconcile and " +
          kLabelAgent + "=" + agent_ +
          (env_.empty() ? std::string(" labels, or it carries ") + kLabelEnvironment
                        : std::string(" and ") + kLabelEnvironment + "=" + env_ + " labels") +
          "); reconcile never changes it: delete or rename it, or "
          "rename the agent");
    }

    // Applies `manifest` (of kind k) unless a foreign object holds the name.
    Status ApplyOne(const Kind& k, const json& manifest, bool force) {
      const std::string name = Str(Member(manifest, "metadata"), "name");
      std::optional<json> existing;
      if (Status st = Get(k, name, &existing); !st.ok()) return st;
      if (existing && !IsOwned(*existing, agent_, env_)) return NotOwned(k, name);
      Progress(std::string(existing ? "applying" : "creating") + " " + k.word + " " + p_.ns_ + "/" +
               name + (force ? " (server-side apply, force)" : " (server-side apply)"));
      Result<json> applied =
          client_.Apply(Path(k, name), manifest, kFieldManager, force, stop_, req_.traceparent);
      if (!applied.ok()) {
        Status st = applied.status();
        if (st.code() == Code::kConflict) {
          return Status::Conflict(p_.who_ + ": " + k.word + " " + name +
                                  ": fields reconcile applies are managed by another field "
                                  "manager (" +
                                  st.message() +
                                  "); `reconcile apply` of a change takes them back");
        }
        return st.WithContext(p_.who_);
      }
      if (std::string_view(k.plural) == kDeployments.plural) deployment_ = std::move(*applied);
      if (std::string_view(k.plural) == kServices.plural) service_ = std::move(*applied);
      return Status::Ok();
    }

    // Deletes the agent's object of kind k when reconcile owns it.
    Status DeleteOne(const Kind& k, const std::string& name) {
      std::optional<json> existing;
      if (Status st = Get(k, name, &existing); !st.ok()) return st;
      if (!existing) return Status::Ok();
      if (!IsOwned(*existing, agent_, env_)) {
        r_.warnings.push_back(p_.who_ + ": " + k.word + " " + name +
                              " is left alone: it does not carry reconcile's ownership labels");
        return Status::Ok();
      }
      Progress("deleting " + std::string(k.word) + " " + p_.ns_ + "/" + name);
      Result<json> gone = client_.Delete(Path(k, name), "Background", stop_, req_.traceparent);
      if (!gone.ok() && gone.status().code() != Code::kNotFound) {
        return gone.status().WithContext(p_.who_);
      }
      return Status::Ok();
    }

    Status Deploy() {
      const json& spec = req_.change.desired.get();
      if (!spec.is_object()) {
        return Status::Invalid("agent " + agent_ + ": the change carries no spec to deploy");
      }
      ValidateAgentResponse v = ValidateKubernetesAgent(
          {agent_, p_.target_.name, p_.target_.settings, spec, nullptr, p_.target_.environment});
      std::string refused;
      for (const ProviderDiagnostic& d : v.diagnostics) {
        if (d.severity == Severity::kError) {
          refused += (refused.empty() ? "" : "; ") + d.field + ": " + d.message;
        }
      }
      if (!refused.empty()) return Status::Invalid("agent " + agent_ + ": " + refused);
      ManifestContext c{agent_, p_.target_.name, p_.ns_, req_.change.desired_hash, req_.revision,
                        env_};
      Result<std::optional<json>> secret = SecretManifest(spec, c, req_.secret_values);
      if (!secret.ok()) return secret.status();
      const bool force = req_.change.action != Action::kCreate;
      if (*secret) {
        if (Status st = ApplyOne(kSecrets, **secret, force); !st.ok()) return st;
      } else if (Status st = DeleteOne(kSecrets, SecretName(name_)); !st.ok()) {
        return st;
      }
      Status st = ApplyOne(kDeployments, DeploymentManifest(spec, c), force);
      if (!st.ok()) {
        Record();
        return st;
      }
      if (std::optional<json> service = ServiceManifest(spec, c)) {
        st = ApplyOne(kServices, *service, force);
      } else {
        st = DeleteOne(kServices, name_);
      }
      if (!st.ok()) {
        Record();
        return st;
      }
      return Rollout();
    }

    // Waits until the Deployment's rollout is done.
    Status Rollout() {
      WaitingScope scope(req_.waiting);
      const auto deadline = Clock::now() + p_.opt_.rollout_timeout;
      RolloutHealth h = DeploymentHealth(deployment_);
      for (int reads = 0; h.health == "starting"; ++reads) {
        if (reads % 10 == 0) Progress("deployment " + agent_ + ": " + h.message);
        if (Clock::now() > deadline) {
          Record();
          r_.health = "unhealthy";
          return Status::Unavailable(p_.who_ + ": deployment " + agent_ +
                                     " did not finish its rollout in time: " + h.message);
        }
        if (WaitFor(stop_, p_.opt_.poll_interval)) {
          Record();
          return Status::Cancelled("agent " + agent_ +
                                   ": stopped while waiting for the rollout; the Deployment goes "
                                   "on, and the next run converges");
        }
        std::optional<json> now;
        if (Status st = Get(kDeployments, name_, &now); !st.ok()) return st;
        if (!now) return Status::Failed(p_.who_ + ": deployment " + agent_ + " vanished");
        deployment_ = std::move(*now);
        h = DeploymentHealth(deployment_);
      }
      Record();
      r_.health = h.health;
      if (h.health != "healthy") {
        return Status::Failed(p_.who_ + ": deployment " + agent_ + ": " + h.message);
      }
      Progress("deployment " + agent_ + " rolled out: " + h.message);
      return Status::Ok();
    }

    // What exists: the Deployment (and its Service's address).
    void Record() {
      std::string endpoint = service_.is_object() ? ServiceAddress(service_) : "";
      if (deployment_.is_object() || !r_.instances.empty()) {
        r_.instances = {{p_.ns_ + "/deployments/" + name_, name_, endpoint, {}}};
      }
    }

    Status Delete() {
      if (Status st = DeleteOne(kDeployments, name_); !st.ok()) {
        r_.instances = {{p_.ns_ + "/deployments/" + name_, name_, "", {}}};
        return st;
      }
      if (Status st = DeleteOne(kServices, name_); !st.ok()) return st;
      return DeleteOne(kSecrets, SecretName(name_));
    }

    KubernetesProvider& p_;
    kube::Client& client_;
    const ApplyChangeRequest& req_;
    std::stop_token stop_;
    std::string agent_;
    std::string env_;   // Target::environment
    std::string name_;  // ScopedName(env_, agent_): the Deployment's and Service's name
    ApplyChangeResponse r_;
    json deployment_;
    json service_;
  };

  Target target_;
  KubernetesSettings s_;
  KubernetesOptions opt_;
  std::stop_source stop_;
  std::mutex mu_;
  std::shared_ptr<kube::Client> client_;
  std::string ns_;
  std::string who_;
};

}  // namespace

Result<std::unique_ptr<Provider>> NewKubernetesProvider(const Target& target,
                                                        KubernetesOptions options) {
  Result<KubernetesSettings> settings = DecodeKubernetesSettings(target.name, target.settings);
  if (!settings.ok()) return settings.status();
  return std::unique_ptr<Provider>(
      std::make_unique<KubernetesProvider>(target, std::move(*settings), std::move(options)));
}

ProviderDefinition KubernetesProviderDefinition() {
  ProviderDefinition d;
  d.create = [](const Target& target) { return NewKubernetesProvider(target); };
  d.validate_target = ValidateKubernetesTarget;
  d.validate_agent = ValidateKubernetesAgent;
  return d;
}

void RegisterKubernetesProvider(ProviderRegistry& registry) {
  registry.Register("kubernetes", KubernetesProviderDefinition());
}

}  // namespace reconcile::kubernetes
