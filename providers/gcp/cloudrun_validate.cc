#include "gcp/cloudrun_validate.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <limits>
#include <set>
#include <vector>

#include "reconcile/config_checks.h"
#include "reconcile/observation.h"
#include "reconcile/spec.h"

namespace reconcile::gcp {
namespace {

using nlohmann::json;

using checks::AllOf;
using checks::IsDigit;
using checks::IsEmail;
using checks::IsGcpProject;
using checks::IsHttpUrl;
using checks::IsLower;
using checks::IsLowerDash;
using checks::IsNoSpace;
using checks::IsSpace;
using checks::IsUpper;
using checks::Suggest;
std::string Describe(const json& v) { return checks::DescribeJson(v); }

std::string Shown(const std::string& s, size_t max = 80) {
  std::string out = s.size() > max ? s.substr(0, max) + "..." : s;
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return out;
}

// An integral JSON number (1, 2.0) as an int64.
std::optional<std::int64_t> Integral(const json& v) {
  if (v.is_number_integer()) return v.get<std::int64_t>();
  if (v.is_number_unsigned()) {
    auto u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return std::nullopt;
    }
    return static_cast<std::int64_t>(u);
  }
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9.0e15) return std::nullopt;
    return static_cast<std::int64_t>(d);
  }
  return std::nullopt;
}

struct Field {
  const char* name;
  enum Type { kString, kStringOrNumber, kInteger } type;
  bool required;
  std::function<bool(const std::string&)> check;
  const char* what;
  std::int64_t min = 0;
  std::int64_t max = 0;
};

const std::vector<Field>& Fields() {
  static const std::vector<Field> kFields = [] {
    auto s = [](const char* name, bool required, std::function<bool(const std::string&)> check,
                const char* what) {
      return Field{name, Field::kString, required, std::move(check), what};
    };
    auto num = [](const char* name) {
      return Field{name, Field::kStringOrNumber, false,
                   [](const std::string& v) { return !v.empty(); }, "a non-empty value"};
    };
    auto integer = [](const char* name, std::int64_t min, std::int64_t max) {
      return Field{name, Field::kInteger, false, nullptr, "", min, max};
    };
    auto str = [](bool (*f)(std::string_view)) {
      return [f](const std::string& v) { return f(v); };
    };
    const char* url = "an http:// or https:// URL";
    return std::vector<Field>{
        s("projectId", true, str(IsGcpProject), "a Google Cloud project id"),
        s("region", true, str(IsLowerDash), "a Cloud Run region such as europe-west1"),
        num("cpu"),
        num("memory"),
        integer("concurrency", 1, 1000),
        integer("minInstances", 0, 1000),
        integer("maxInstances", 1, 1000),
        s("serviceAccount", false, str(IsEmail), "a service account e-mail"),
        s("endpoint", false, str(IsHttpUrl), url),
        s("authEndpoint", false, str(IsHttpUrl), url)};
  }();
  return kFields;
}

const char* kCloudRunCpus = "1, 2, 4 or 8";
bool IsCloudRunCpu(const std::string& cpu) {
  return cpu == "1" || cpu == "2" || cpu == "4" || cpu == "8";
}

// --- Agent checks ---------------------------------------------------------

class AgentChecker {
 public:
  AgentChecker(const ValidateAgentRequest& request, ValidateAgentResponse& out)
      : req_(request), out_(out), who_("Target '" + request.target + "' is Google Cloud Run") {}

  void Run() {
    const json& spec = req_.spec;
    if (!spec.is_object()) {
      Error("spec", "the normalized spec is not an object");
      return;
    }
    Name();
    Image(spec);
    if (Int(spec, "hostPort") != 0) {
      Error("spec.hostPort", who_ +
                                 ", which has no host ports: the service is reached at its "
                                 "Service.uri; remove hostPort");
    }
    if (const json* se = Obj(spec, "secretEnv")) {
      for (const auto& [name, ref] : se->items()) {
        Error("spec.secretEnv." + name,
              who_ +
                  ", which reads secret variables only from Secret Manager "
                  "(containers[].env[].valueSource.secretKeyRef.secret, .version); a "
                  "{file:}/{env:} reference is a value, and reconcile does not put a secret value "
                  "into env[].value, which services.get returns");
      }
    }
    if (const json* sf = Obj(spec, "secretFiles")) {
      for (const auto& [name, f] : sf->items()) {
        Error("spec.secretFiles." + name,
              who_ +
                  ", which mounts secret files only from Secret Manager "
                  "(template.volumes[].secret.secret); a {file:}/{env:} reference is a value "
                  "outside any secret store");
      }
    }
    if (const json* ports = Obj(spec, "ports")) {
      int i = 0;
      for (auto it = ports->begin(); it != ports->end(); ++it, ++i) {
        Error("spec.ports[" + std::to_string(i) + "]",
              who_ +
                  ", which exposes one port per container (containers[].ports: \"Only a single "
                  "port can be specified\"); a second port cannot be reached");
      }
    }
    if (const json* nets = Obj(spec, "networks"); nets && !nets->empty()) {
      Error("spec.networks", who_ +
                                 ", which has no networks between services: each service is "
                                 "reached at its Service.uri, and template.vpcAccess only sends "
                                 "traffic into one VPC");
    }
    Volumes(spec);
    Replicas(spec);
    if (auto r = Str(spec, "restart"); r == "no" || r.rfind("on-failure", 0) == 0) {
      Error("spec.restart", who_ +
                                ", which has no restart policy (the revision template has "
                                "none); only always or unless-stopped can be honoured");
    }
    Strategy(spec);
    HealthCheck(spec);
    Container(spec);
    Labels(spec);
    Resources(spec);
  }

 private:
  void Error(const std::string& field, const std::string& message) {
    out_.diagnostics.push_back({Severity::kError, field, message});
  }
  void Warning(const std::string& field, const std::string& message) {
    out_.diagnostics.push_back({Severity::kWarning, field, message});
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
    if (it == j.end()) return 0;
    return Integral(*it).value_or(0);
  }

  void Name() {
    // Cloud Run service ids: ^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$
    // The service id is ScopedName(environment, agent).
    const std::string n = ScopedName(req_.environment, req_.agent);
    bool ok =
        !n.empty() && n.size() <= 49 && IsLower(n.front()) && IsLowerDash(n) && n.back() != '-';
    if (!ok) {
      Error("metadata.name",
            who_ +
                ", whose service names are 1 to 49 lower-case letters, digits and '-', "
                "starting with a letter and not ending with '-'; '" +
                Shown(n) + "' is not one: rename the agent");
    }
  }

  void Image(const json& spec) {
    std::string image = Str(spec, "image");
    auto slash = image.find('/');
    if (slash == std::string::npos) return;  // Docker Hub library image
    std::string host = image.substr(0, slash);
    bool is_host = host.find('.') != std::string::npos || host.find(':') != std::string::npos ||
                   host == "localhost";
    if (!is_host) return;  // Docker Hub user/repository
    std::string h = host;
    std::transform(h.begin(), h.end(), h.begin(), [](unsigned char c) { return std::tolower(c); });
    auto ends = [&](const std::string& suffix) {
      return h.size() > suffix.size() &&
             h.compare(h.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    bool allowed = h == "docker.io" || h == "index.docker.io" || h == "registry-1.docker.io" ||
                   h == "gcr.io" || ends(".gcr.io") || ends("-docker.pkg.dev") ||
                   h == "docker.pkg.dev";
    if (!allowed) {
      Error("spec.image", who_ +
                              ", which runs images from Docker Hub, Artifact Registry or "
                              "Container Registry only; '" +
                              Shown(image, 200) + "' is on " + Shown(host));
    }
  }

  void Volumes(const json& spec) {
    const json* volumes = Obj(spec, "volumes");
    if (!volumes) return;
    int i = 0;
    for (auto it = volumes->begin(); it != volumes->end(); ++it, ++i) {
      const std::string field = "spec.volumes[" + std::to_string(i) + "]";
      const json& v = *it;
      std::string type = v.is_object() ? Str(v, "type") : "";
      if (type == "volume") {
        Error(field, who_ +
                         ", which cannot create a volume that reconcile owns: it mounts Cloud "
                         "Storage buckets (template.volumes[].gcs.bucket) and NFS exports "
                         "(template.volumes[].nfs.server, .path) that exist already, and an Agent "
                         "has no field that names one; use type tmpfs for scratch space");
      } else if (type == "bind") {
        Error(field, who_ + ", which has no host to bind-mount from");
      } else if (type == "tmpfs") {
        if (v.contains("readOnly") && v["readOnly"] == true) {
          Error(field + ".readOnly",
                who_ +
                    ", which cannot mount an in-memory volume read-only (volumeMounts[] has only "
                    "name, mountPath, subPath; emptyDir has no readOnly)");
        }
        if (v.contains("size") && v["size"].is_string() &&
            !MemoryBytes(v["size"].get<std::string>())) {
          Error(field + ".size", who_ +
                                     ", whose emptyDir.sizeLimit is a quantity such as "
                                     "512Mi or 1Gi; '" +
                                     Shown(v["size"].get<std::string>()) + "' is not one");
        }
      } else {
        Error(field, "unknown volume type '" + Shown(type) + "'");
      }
    }
  }

  void Replicas(const json& spec) {
    const json& t = req_.target_config;
    bool autoscaling = t.is_object() && (t.contains("minInstances") || t.contains("maxInstances"));
    // The normalized spec cannot tell replicas: 1 (the default) from no
    // replicas, so only another count contradicts the Target's autoscaling.
    if (autoscaling && Int(spec, "replicas") != 1) {
      Error("spec.replicas", "Target '" + req_.target +
                                 "' sets gcp.minInstances/maxInstances (autoscaling); a fixed "
                                 "replicas would contradict them: set one or the other");
    }
  }

  void Strategy(const json& spec) {
    const json* s = Obj(spec, "strategy");
    if (!s) return;
    if (s->contains("autoRollback") && (*s)["autoRollback"] == false) {
      Error("spec.strategy.autoRollback",
            who_ +
                ", which cannot send traffic to a version that is not healthy; remove "
                "autoRollback: false");
    }
    // type: recreate is reconcile's default, which the normalized spec
    // cannot tell from an explicit one: Cloud Run always starts the new
    // revision first, and the README says so (no warning on every load).
  }

  void HealthCheck(const json& spec) {
    auto it = spec.find("healthCheck");
    if (it == spec.end() || !it->is_object()) return;
    const json& h = *it;
    if (h.contains("exec")) {
      Error("spec.healthCheck.exec",
            who_ +
                ", whose probes are httpGet, tcpSocket or grpc only; it cannot run a command in "
                "the container: use path or tcp");
    }
    auto seconds = [&](const char* key, std::int64_t min,
                       std::int64_t max) -> std::optional<std::int64_t> {
      std::string text = Str(h, key);
      if (text.empty()) return std::nullopt;
      const std::string field = std::string("spec.healthCheck.") + key;
      auto s = WholeSeconds(text);
      if (!s) {
        Error(field,
              who_ + ", whose health checks count whole seconds; " + Shown(text) + " is not");
        return std::nullopt;
      }
      if (*s < min || *s > max) {
        Error(field, who_ + ", whose startup probe takes " + key + " from " +
                         FormatDuration(min * 1000) + " to " + FormatDuration(max * 1000) + "; " +
                         Shown(text) + " is outside that range");
        return std::nullopt;
      }
      return s;
    };
    auto interval = seconds("interval", 1, 240);
    auto timeout = seconds("timeout", 1, 3600);
    seconds("startPeriod", 0, 240);
    if (h.contains("retries") && Int(h, "retries") < 1) {
      Error("spec.healthCheck.retries",
            who_ + ", whose startup probe needs a failureThreshold of at least 1");
    }
    // reconcile's defaults (1s, 2s) are not sent: Cloud Run's (10s, 1s) apply.
    std::int64_t period = interval && Str(h, "interval") != "1s" ? *interval : 10;
    std::int64_t wait = timeout && Str(h, "timeout") != "2s" ? *timeout : 1;
    if (interval && timeout && wait >= period) {
      Error("spec.healthCheck.timeout",
            who_ + ", whose probe timeout must be smaller than its period (" +
                FormatDuration(wait * 1000) + " vs " + FormatDuration(period * 1000) + ")");
    }
  }

  void Container(const json& spec) {
    auto refuse = [&](const char* key, const std::string& why) {
      Error(std::string("spec.") + key, who_ + ", which " + why);
    };
    if (!Str(spec, "stopSignal").empty()) {
      refuse("stopSignal", "cannot choose the signal that stops a container");
    }
    if (!Str(spec, "stopGracePeriod").empty()) {
      refuse("stopGracePeriod",
             "has no stop grace period (template.timeout is the request timeout, \"Max allowed "
             "time for an instance to respond to a request\")");
    }
    if (!Str(spec, "user").empty()) {
      refuse("user",
             "cannot choose the user a container runs as (containers[] has no user or security "
             "context): set USER in the image");
    }
    auto non_empty = [&](const char* key) {
      auto it = spec.find(key);
      return it != spec.end() && it->is_array() && !it->empty();
    };
    if (non_empty("capAdd")) refuse("capAdd", "cannot add Linux capabilities");
    if (non_empty("capDrop")) refuse("capDrop", "cannot drop Linux capabilities");
    if (spec.contains("readOnlyRootFilesystem") && spec["readOnlyRootFilesystem"] == true) {
      refuse("readOnlyRootFilesystem", "cannot mount the root filesystem read-only");
    }
    if (!Str(spec, "hostname").empty()) refuse("hostname", "cannot set a container's host name");
  }

  void Labels(const json& spec) {
    const json* labels = Obj(spec, "labels");
    if (!labels) return;
    static const char* kReserved[] = {"run.googleapis.com", "cloud.googleapis.com",
                                      "serving.knative.dev", "autoscaling.knative.dev"};
    for (const auto& [key, value] : labels->items()) {
      std::string why;
      std::string prefix, name = key;
      if (auto slash = key.find('/'); slash != std::string::npos) {
        prefix = key.substr(0, slash);
        name = key.substr(slash + 1);
      }
      auto is_name_char = [](char c) {
        return IsLower(c) || IsUpper(c) || IsDigit(c) || c == '-' || c == '_' || c == '.';
      };
      auto alnum = [](char c) { return IsLower(c) || IsUpper(c) || IsDigit(c); };
      if (name.find('/') != std::string::npos) {
        why = "it has more than one '/' (at most one prefix/ is allowed)";
      } else if (name.empty() || name.size() > 63 || !AllOf(name, is_name_char) ||
                 !alnum(name.front()) || !alnum(name.back())) {
        why =
            "its name must be 1 to 63 letters, digits, '-', '_' and '.', beginning and ending "
            "with a letter or digit";
      } else if (!prefix.empty() && (prefix.size() > 253 || !AllOf(prefix, [](char c) {
                                       return IsLower(c) || IsDigit(c) || c == '-' || c == '.';
                                     }))) {
        why = "its prefix must be a DNS subdomain (lower-case, at most 253 characters)";
      } else {
        for (const char* r : kReserved) {
          std::string ns = r;
          if (prefix == ns ||
              (prefix.size() > ns.size() &&
               prefix.compare(prefix.size() - ns.size() - 1, ns.size() + 1, "." + ns) == 0)) {
            why = "the " + ns + " namespace is reserved by Cloud Run";
          }
        }
        if (prefix == "reconcile.dev") why = "the reconcile.dev namespace is reconcile's own";
      }
      if (!why.empty()) {
        Error("spec.labels." + key, who_ + ", which does not accept this annotation key: " + why);
      }
    }
  }

  void Resources(const json& spec) {
    const json* r = Obj(spec, "resources");
    const json& t = req_.target_config;
    std::string cpu = r ? SettingText(r->value("cpu", json())) : "";
    std::string memory = r ? SettingText(r->value("memory", json())) : "";
    std::string cpu_field = "spec.resources.cpu";
    if (cpu.empty() && t.is_object() && t.contains("cpu")) {
      cpu = SettingText(t["cpu"]);
      cpu_field.clear();  // the Target's: reported by ValidateCloudRunTarget
    }
    if (memory.empty() && t.is_object() && t.contains("memory")) memory = SettingText(t["memory"]);
    if (!cpu.empty() && !IsCloudRunCpu(cpu) && !cpu_field.empty()) {
      Error(cpu_field,
            who_ + ", whose only CPU values are " + kCloudRunCpus +
                " (\"The only supported values for CPU are '1', '2', '4', and '8'\"); '" +
                Shown(cpu) + "' is none of them");
    }
    if (r && r->contains("memory") && !MemoryBytes(memory)) {
      Error("spec.resources.memory", who_ +
                                         ", whose memory limit is a quantity such as 512Mi or "
                                         "2Gi; '" +
                                         Shown(memory) + "' is not one");
    }
    if (cpu == "4" || cpu == "8") {
      std::int64_t need = (cpu == "4" ? 2 : 4) * (std::int64_t{1} << 30);
      auto bytes = MemoryBytes(memory);
      if (!memory.empty() && bytes && *bytes < need) {
        Error(r && r->contains("memory") ? "spec.resources.memory" : "spec.resources.cpu",
              who_ + ", where " + cpu + " CPU require at least " + (cpu == "4" ? "2Gi" : "4Gi") +
                  " of memory (\"Setting 4 CPU requires at least 2Gi of memory\"); " +
                  Shown(memory) + " is less");
      }
    }
    if (r && r->contains("gpus")) {
      Error("spec.resources.gpus",
            who_ +
                ", which attaches GPUs by accelerator type (template.nodeSelector.accelerator), "
                "and resources.limits takes only cpu and memory, so a count cannot be given; an "
                "Agent has no accelerator type");
    }
  }

  const ValidateAgentRequest& req_;
  ValidateAgentResponse& out_;
  std::string who_;
};

}  // namespace

std::string SettingText(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (auto i = Integral(value)) return std::to_string(*i);
  if (value.is_number()) {
    std::string s = value.dump();
    return s;
  }
  return "";
}

std::optional<std::int64_t> MemoryBytes(const std::string& q) {
  size_t digits = 0;
  while (digits < q.size() && IsDigit(q[digits])) ++digits;
  if (digits == 0 || digits > 15) return std::nullopt;
  std::int64_t n = std::stoll(q.substr(0, digits));
  std::string unit = q.substr(digits);
  static const std::pair<const char*, std::int64_t> kUnits[] = {
      {"", 1},      {"k", 1000},         {"M", 1000 * 1000},           {"G", 1000 * 1000 * 1000},
      {"Ki", 1024}, {"Mi", 1024 * 1024}, {"Gi", std::int64_t{1} << 30}};
  for (const auto& [name, factor] : kUnits) {
    if (unit == name) {
      if (n > std::numeric_limits<std::int64_t>::max() / factor) return std::nullopt;
      return n * factor;
    }
  }
  return std::nullopt;
}

std::optional<std::int64_t> WholeSeconds(const std::string& duration) {
  auto ms = ParseDuration(duration);
  if (!ms || *ms % 1000 != 0) return std::nullopt;
  return *ms / 1000;
}

ValidateTargetResponse ValidateCloudRunTarget(const ValidateTargetRequest& request) {
  ValidateTargetResponse out;
  auto error = [&](const std::string& field, std::string message) {
    out.diagnostics.push_back({Severity::kError, field, std::move(message)});
  };
  const std::string path = "spec.gcp";
  const json& block = request.config;
  if (!block.is_object()) {
    error(path, "must be a map, got " + Describe(block));
    return out;
  }
  std::vector<std::string> names;
  for (const Field& f : Fields()) names.push_back(f.name);
  for (const auto& [key, value] : block.items()) {
    if (std::find(names.begin(), names.end(), key) != names.end()) continue;
    std::string message = "unknown field '" + Shown(key) + "'";
    std::string suggestion = Suggest(key, names);
    if (!suggestion.empty()) message += " (did you mean '" + suggestion + "'?)";
    error(path + "." + key, message);
  }
  for (const Field& f : Fields()) {
    const std::string field = path + "." + f.name;
    auto it = block.find(f.name);
    if (it == block.end()) {
      if (f.required) error(field, "required field is missing");
      continue;
    }
    const json& v = *it;
    if (f.type == Field::kInteger) {
      if (!v.is_number()) {
        error(field, "must be an integer, got " + Describe(v));
        continue;
      }
      auto i = Integral(v);
      if (!i && v.is_number_float() && v.get<double>() != std::floor(v.get<double>())) {
        error(field, "must be an integer, got " + Describe(v));
      } else if (!i || *i < f.min || *i > f.max) {
        error(field, "must be between " + std::to_string(f.min) + " and " + std::to_string(f.max) +
                         ", got " + Shown(v.dump(), 40));
      }
      continue;
    }
    if (f.type == Field::kStringOrNumber && v.is_number()) {
      double d = v.get<double>();
      if (!(d > 0) || !std::isfinite(d)) error(field, "must be a positive number");
      continue;
    }
    if (!v.is_string()) {
      error(field, std::string("must be ") +
                       (f.type == Field::kStringOrNumber ? "a string or a number" : "a string") +
                       ", got " + Describe(v));
      continue;
    }
    if (!f.check(v.get<std::string>())) {
      error(field,
            "invalid value '" + Shown(v.get<std::string>()) + "': must be " + std::string(f.what));
    }
  }
  if (!out.diagnostics.empty()) return out;
  // Beyond the loader's checks.
  auto min = block.find("minInstances"), max = block.find("maxInstances");
  if (min != block.end() && max != block.end() && *Integral(*min) > *Integral(*max)) {
    error(path + ".minInstances", "must not be more than maxInstances (" +
                                      std::to_string(*Integral(*max)) + "), got " +
                                      std::to_string(*Integral(*min)));
  }
  if (auto cpu = block.find("cpu"); cpu != block.end() && !IsCloudRunCpu(SettingText(*cpu))) {
    error(path + ".cpu", "Cloud Run's only CPU values are " + std::string(kCloudRunCpus) + "; '" +
                             Shown(SettingText(*cpu)) + "' is none of them");
  }
  if (auto mem = block.find("memory"); mem != block.end() && !MemoryBytes(SettingText(*mem))) {
    error(path + ".memory", "invalid value '" + Shown(SettingText(*mem)) +
                                "': must be a memory quantity such as 512Mi or 2Gi");
  }
  return out;
}

ValidateAgentResponse ValidateCloudRunAgent(const ValidateAgentRequest& request) {
  ValidateAgentResponse out;
  AgentChecker(request, out).Run();
  return out;
}

Result<CloudRunSettings> DecodeCloudRunSettings(const std::string& target, const json& config) {
  ValidateTargetResponse v = ValidateCloudRunTarget({target, config});
  std::string errors;
  for (const ProviderDiagnostic& d : v.diagnostics) {
    if (d.severity != Severity::kError) continue;
    errors += (errors.empty() ? "" : "; ") + d.field + ": " + d.message;
  }
  if (!errors.empty()) return Status::Invalid("Target '" + target + "': " + errors);
  CloudRunSettings s;
  s.project_id = config["projectId"].get<std::string>();
  s.region = config["region"].get<std::string>();
  if (config.contains("cpu")) s.cpu = SettingText(config["cpu"]);
  if (config.contains("memory")) s.memory = SettingText(config["memory"]);
  if (config.contains("concurrency")) s.concurrency = Integral(config["concurrency"]);
  if (config.contains("minInstances")) s.min_instances = Integral(config["minInstances"]);
  if (config.contains("maxInstances")) s.max_instances = Integral(config["maxInstances"]);
  s.service_account = config.value("serviceAccount", "");
  if (config.contains("endpoint")) s.endpoint = config["endpoint"].get<std::string>();
  while (!s.endpoint.empty() && s.endpoint.back() == '/') s.endpoint.pop_back();
  s.auth_endpoint = config.value("authEndpoint", "");
  return s;
}

json CloudRunTargetSchema() {
  json string_or_number = {{"oneOf", json::array({{{"type", "string"}, {"minLength", 1}},
                                                  {{"type", "number"}, {"exclusiveMinimum", 0}}})}};
  auto with = [](json base, const char* description) {
    base["description"] = description;
    return base;
  };
  auto integer = [](const char* description, int min, int max) {
    return json{
        {"type", "integer"}, {"description", description}, {"minimum", min}, {"maximum", max}};
  };
  auto pattern = [](const char* description, const char* re) {
    return json{{"type", "string"}, {"description", description}, {"pattern", re}};
  };
  return {{"$schema", "https://json-schema.org/draft/2020-12/schema"},
          {"type", "object"},
          {"description", "Google Cloud Run v2."},
          {"additionalProperties", false},
          {"required", json::array({"projectId", "region"})},
          {"properties",
           {{"projectId", pattern("Project id.", "^[a-z][a-z0-9-]{4,28}[a-z0-9]$")},
            {"region", pattern("Region, e.g. europe-west1.", "^[a-z0-9-]+$")},
            {"cpu", with(string_or_number, "CPU, e.g. \"1\".")},
            {"memory", with(string_or_number, "Memory, e.g. 512Mi.")},
            {"concurrency", integer("Requests per instance.", 1, 1000)},
            {"minInstances", integer("Minimum instances.", 0, 1000)},
            {"maxInstances", integer("Maximum instances.", 1, 1000)},
            {"serviceAccount", pattern("Service account e-mail.", "^[^@\\s]+@[^@\\s]+$")},
            {"endpoint", pattern("Override of the API base URL.", "^https?://\\S+$")},
            {"authEndpoint",
             pattern("Override of the token / login / metadata URL.", "^https?://\\S+$")}}}};
}

}  // namespace reconcile::gcp
