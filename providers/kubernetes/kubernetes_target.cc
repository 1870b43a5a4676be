#include "kubernetes/kubernetes_target.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "reconcile/config_checks.h"
#include "reconcile/spec.h"

namespace reconcile::kubernetes {
namespace {

using checks::AllOf;
using checks::IsDigit;
using checks::IsLower;
using nlohmann::json;

std::string Shown(const std::string& s, size_t max = 80) {
  std::string out = s.size() > max ? s.substr(0, max) + "..." : s;
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return out;
}

bool IsAlnum(char c) { return IsLower(c) || IsDigit(c) || (c >= 'A' && c <= 'Z'); }

// Kubernetes' qualified name: ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9], at most 63.
bool IsQualifiedName(const std::string& s) {
  if (s.empty() || s.size() > 63 || !IsAlnum(s.front()) || !IsAlnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return IsAlnum(c) || c == '-' || c == '_' || c == '.'; });
}

// A DNS-1123 subdomain (a label key's prefix).
bool IsDns1123Subdomain(const std::string& s) {
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    if (!IsDns1123Label(s.substr(start, dot - start))) return false;
    if (dot == std::string::npos) return true;
    start = dot + 1;
  }
}

bool IsCpuQuantity(const std::string& s) {
  if (s.size() > 1 && s.back() == 'm') return AllOf(s.substr(0, s.size() - 1), IsDigit);
  auto dot = s.find('.');
  if (dot == std::string::npos) return AllOf(s, IsDigit);
  return AllOf(s.substr(0, dot), IsDigit) && AllOf(s.substr(dot + 1), IsDigit);
}

class AgentChecker {
 public:
  AgentChecker(const ValidateAgentRequest& request, ValidateAgentResponse& out)
      : req_(request), out_(out), who_("Target '" + request.target + "' is Kubernetes") {}

  void Run() {
    const json& spec = req_.spec;
    if (!spec.is_object()) {
      Error("spec", "the normalized spec is not an object");
      return;
    }
    // Objects are named ScopedName(environment, agent).
    if (const std::string name = ScopedName(req_.environment, req_.agent); !IsDns1035Label(name)) {
      Error("metadata.name", who_ +
                                 ", where an agent is a Deployment and a Service of its name "
                                 "(in an environment: <environment>--<agent>): "
                                 "1 to 63 lower-case letters, digits and '-', starting with a "
                                 "letter and not ending with '-' (DNS-1035); '" +
                                 Shown(name) + "' is not one: rename the agent");
    }
    if (Int(spec, "hostPort") != 0) {
      Error("spec.hostPort", who_ +
                                 ", where an agent is reached through its Service "
                                 "(name.namespace.svc:port), not a host port; remove hostPort");
    }
    if (const json* nets = Obj(spec, "networks"); nets && !nets->empty()) {
      Error("spec.networks", who_ +
                                 ", where every pod shares the cluster network and is reached "
                                 "by its Service name; there are no Docker networks or aliases");
    }
    Volumes(spec);
    Ports(spec);
    if (auto r = Str(spec, "restart"); r == "no" || r.rfind("on-failure", 0) == 0) {
      Error("spec.restart", who_ +
                                ", whose Deployments restart every container "
                                "(restartPolicy: Always is the only value a Deployment "
                                "accepts); only always or unless-stopped can be honoured");
    }
    if (!Str(spec, "stopSignal").empty()) {
      Error("spec.stopSignal", who_ +
                                   ", which always stops a container with SIGTERM (the pod "
                                   "spec has no stop signal on this server); remove stopSignal "
                                   "or set STOPSIGNAL in the image");
    }
    if (auto g = Str(spec, "stopGracePeriod"); !g.empty() && !WholeSeconds(g)) {
      Error("spec.stopGracePeriod",
            who_ + ", whose terminationGracePeriodSeconds counts whole seconds; " + Shown(g) +
                " is not");
    }
    if (auto u = Str(spec, "user"); !u.empty()) {
      auto colon = u.find(':');
      std::string uid = u.substr(0, colon);
      std::string gid = colon == std::string::npos ? "" : u.substr(colon + 1);
      if (!AllOf(uid, IsDigit) || (colon != std::string::npos && !AllOf(gid, IsDigit))) {
        Error("spec.user", who_ +
                               ", whose securityContext takes numeric ids only (runAsUser, "
                               "runAsGroup); '" +
                               Shown(u) + "' names a user: write UID or UID:GID");
      }
    }
    Resources(spec);
    HealthCheck(spec);
    Labels(spec);
  }

 private:
  void Error(const std::string& field, const std::string& message) {
    out_.diagnostics.push_back({Severity::kError, field, message});
  }
  static const json* Obj(const json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_object() ? &*it : nullptr;
  }
  static std::string Str(const json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : "";
  }
  static std::int64_t Int(const json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_number_integer() ? it->get<std::int64_t>() : 0;
  }

  void Volumes(const json& spec) {
    const json* volumes = Obj(spec, "volumes");
    if (!volumes) return;
    int i = 0;
    for (auto it = volumes->begin(); it != volumes->end(); ++it, ++i) {
      const std::string field = "spec.volumes[" + std::to_string(i) + "]";
      std::string type = it->is_object() ? Str(*it, "type") : "";
      if (type == "volume") {
        Error(field, who_ +
                         ", where a named volume would be a PersistentVolumeClaim, which this "
                         "provider does not create yet; use type tmpfs for scratch space");
      } else if (type == "bind") {
        Error(field, who_ +
                         ", which has no host folder to bind-mount from (a pod may run on "
                         "any node)");
      }
    }
  }

  void Ports(const json& spec) {
    const json* ports = Obj(spec, "ports");
    if (!ports) return;
    int i = 0;
    for (auto it = ports->begin(); it != ports->end(); ++it, ++i) {
      const std::string field = "spec.ports[" + std::to_string(i) + "]";
      if (it->is_object() && !Str(*it, "hostIP").empty()) {
        Error(field + ".hostIP", who_ + ", which has no host address to bind; remove hostIP");
      }
      if (it->is_object() && Int(*it, "hostPort") != 0) {
        Error(field + ".hostPort", who_ +
                                       ", where a port is reached through the agent's Service, "
                                       "not a host port; remove hostPort");
      }
    }
  }

  void Resources(const json& spec) {
    const json* r = Obj(spec, "resources");
    if (!r) return;
    if (r->contains("gpus")) {
      Error("spec.resources.gpus", who_ +
                                       ", where GPUs are an extended resource of a device plugin "
                                       "(nvidia.com/gpu, amd.com/gpu...) that an Agent cannot "
                                       "name; remove gpus");
    }
    if (auto cpu = Str(*r, "cpu"); !cpu.empty() && !IsCpuQuantity(cpu)) {
      Error("spec.resources.cpu", who_ + ", whose CPU is a quantity such as 0.5 or 500m; '" +
                                      Shown(cpu) + "' is not one");
    }
  }

  void Duration(const json& h, const char* key, bool positive) {
    std::string d = Str(h, key);
    if (d.empty()) return;
    auto s = WholeSeconds(d);
    if (!s) {
      Error(std::string("spec.healthCheck.") + key,
            who_ + ", whose probes count whole seconds; " + Shown(d) + " is not");
    } else if (positive && *s < 1) {
      Error(std::string("spec.healthCheck.") + key,
            who_ + ", whose probes need at least 1s here; " + Shown(d) + " is less");
    }
  }

  void HealthCheck(const json& spec) {
    const json* h = Obj(spec, "healthCheck");
    if (!h) return;
    Duration(*h, "interval", true);
    Duration(*h, "timeout", true);
    Duration(*h, "startPeriod", false);
  }

  void Labels(const json& spec) {
    const json* labels = Obj(spec, "labels");
    if (!labels) return;
    for (const auto& [k, v] : labels->items()) {
      const std::string field = "spec.labels." + k;
      if (!IsLabelKey(k)) {
        Error(field, who_ +
                         ", whose label keys are [prefix/]name (name: 1 to 63 letters, "
                         "digits, '-', '_', '.'; prefix: a DNS subdomain); '" +
                         Shown(k) + "' is not one");
      } else if (k == "app.kubernetes.io/name" || k == "app.kubernetes.io/managed-by") {
        Error(field, who_ + ", where reconcile sets " + k +
                         " itself (the agent's name and "
                         "'reconcile'); remove it");
      }
      std::string value = v.is_string() ? v.get<std::string>() : v.dump();
      if (!IsLabelValue(value)) {
        Error(field, who_ +
                         ", whose label values are at most 63 letters, digits, '-', '_' "
                         "and '.', starting and ending with a letter or digit; '" +
                         Shown(value) + "' is not one");
      }
    }
  }

  const ValidateAgentRequest& req_;
  ValidateAgentResponse& out_;
  std::string who_;
};

}  // namespace

bool IsDns1123Label(const std::string& s) {
  if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return IsLower(c) || IsDigit(c) || c == '-'; });
}

bool IsDns1035Label(const std::string& s) { return IsDns1123Label(s) && IsLower(s.front()); }

bool IsLabelKey(const std::string& s) {
  auto slash = s.find('/');
  if (slash == std::string::npos) return IsQualifiedName(s);
  return IsDns1123Subdomain(s.substr(0, slash)) && IsQualifiedName(s.substr(slash + 1));
}

bool IsLabelValue(const std::string& s) { return s.empty() || IsQualifiedName(s); }

std::optional<long long> WholeSeconds(const std::string& duration) {
  auto ms = ParseDuration(duration);
  if (!ms || *ms % 1000 != 0) return std::nullopt;
  return *ms / 1000;
}

ValidateTargetResponse ValidateKubernetesTarget(const ValidateTargetRequest& request) {
  ValidateTargetResponse out;
  checks::ConfigChecker c(request.config, "spec.kubernetes", out.diagnostics);
  if (!c.ok()) return out;
  c.Known({"kubeconfig", "inCluster", "context", "namespace"});
  auto kubeconfig = c.Checked(
      "kubeconfig", [](const std::string& s) { return !s.empty(); }, "a file path");
  auto in_cluster = c.Bool("inCluster");
  auto context = c.Checked(
      "context", [](const std::string& s) { return !s.empty(); }, "a context name");
  c.Checked("namespace", IsDns1123Label,
            "a namespace name (1 to 63 lower-case letters, digits and '-', DNS-1123)");
  if (in_cluster.value_or(false)) {
    if (c.Get("kubeconfig")) {
      c.Error("inCluster",
              "kubeconfig and inCluster: true exclude each other: set one (neither follows "
              "client-go's rules: $KUBECONFIG, in-cluster, ~/.kube/config)");
    }
    if (c.Get("context")) {
      c.Error("context",
              "an in-cluster configuration has no contexts; remove context or "
              "inCluster");
    }
  }
  (void)kubeconfig;
  (void)context;
  return out;
}

Result<KubernetesSettings> DecodeKubernetesSettings(const std::string& target,
                                                    const nlohmann::json& config) {
  ValidateTargetResponse v = ValidateKubernetesTarget({target, config});
  std::string errors;
  for (const ProviderDiagnostic& d : v.diagnostics) {
    if (d.severity != Severity::kError) continue;
    errors += (errors.empty() ? "" : "; ") + d.field + ": " + d.message;
  }
  if (!errors.empty()) return Status::Invalid("Target '" + target + "': " + errors);
  KubernetesSettings s;
  if (config.is_object()) {
    s.kubeconfig = config.value("kubeconfig", "");
    s.in_cluster = config.value("inCluster", false);
    s.context = config.value("context", "");
    s.namespace_name = config.value("namespace", "");
  }
  return s;
}

nlohmann::json KubernetesTargetSchema() { return checks::TargetBlockSchema("kubernetes"); }

ValidateAgentResponse ValidateKubernetesAgent(const ValidateAgentRequest& request) {
  ValidateAgentResponse out;
  AgentChecker(request, out).Run();
  return out;
}

}  // namespace reconcile::kubernetes
