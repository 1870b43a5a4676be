#include "azure/containerapps_validate.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include <arpa/inet.h>

#include "azure/containerapps_wire.h"
#include "reconcile/config_checks.h"
#include "reconcile/spec.h"

namespace reconcile::azure {
namespace {

using nlohmann::json;

// --- spec.azure -------------------------------------------------------------

using checks::AllOf;
using checks::IsHttpUrl;
using checks::IsNoSpace;
using checks::IsSpace;
using checks::IsUuid;
using checks::Suggest;
std::string Describe(const json& v) { return checks::DescribeJson(v); }

// The host of an http(s) URL, without brackets, lower case.
std::string UrlHost(const std::string& url) {
  size_t start = url.find("://");
  if (start == std::string::npos) return "";
  start += 3;
  size_t end = url.find_first_of("/?#", start);
  std::string authority =
      url.substr(start, end == std::string::npos ? std::string::npos : end - start);
  if (size_t at = authority.rfind('@'); at != std::string::npos)
    authority = authority.substr(at + 1);
  std::string host;
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    host = authority.substr(1, close == std::string::npos ? std::string::npos : close - 1);
  } else {
    host = authority.substr(0, authority.find(':'));
  }
  for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return host;
}

bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  unsigned char buf[4];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 && buf[0] == 127;
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
    const char* url = "an http:// or https:// URL";
    return std::vector<Field>{
        s("subscriptionId", true, IsUuid, "a subscription id (a UUID)"),
        s("resourceGroup", true, IsNoSpace, "a resource group name"),
        s("environmentName", true, IsNoSpace, "a Container Apps environment name"),
        s("location", true, IsNoSpace, "an Azure location such as westeurope"),
        num("cpu"),
        num("memory"),
        integer("minReplicas", 0, 1000),
        integer("maxReplicas", 1, 1000),
        s("endpoint", false, IsHttpUrl, url),
        s("authEndpoint", false, IsHttpUrl, url)};
  }();
  return kFields;
}

// --- Agent fields ------------------------------------------------------------

const json& Member(const json& j, const char* key) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

class AgentCheck {
 public:
  AgentCheck(const ValidateAgentRequest& request, const json& spec,
             std::vector<ProviderDiagnostic>& out)
      : spec_(spec), out_(out) {
    is_ = "Target '" + request.target + "' is Azure Container Apps, ";
  }

  void Error(const std::string& field, const std::string& why) {
    out_.push_back({Severity::kError, field, is_ + why});
  }

  const json& spec_;
  std::vector<ProviderDiagnostic>& out_;
  std::string is_;
};

std::optional<std::int64_t> DurationMs(const json& v) {
  if (!v.is_string()) return std::nullopt;
  return ParseDuration(v.get<std::string>());
}

// A Container App name: 2 to 32 lower-case letters, digits and '-', starting
// with a letter, ending with a letter or digit, no "--".
bool IsAppName(const std::string& s) {
  if (s.size() < 2 || s.size() > 32) return false;
  if (!std::islower(static_cast<unsigned char>(s.front()))) return false;
  if (s.back() == '-') return false;
  if (s.find("--") != std::string::npos) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) ||
           std::isdigit(static_cast<unsigned char>(c)) || c == '-';
  });
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

ValidateTargetResponse ValidateTarget(const ValidateTargetRequest& request) {
  ValidateTargetResponse r;
  const std::string path = "spec.azure";
  auto error = [&](const std::string& field, std::string message) {
    r.diagnostics.push_back({Severity::kError, field, std::move(message)});
  };
  const json& block = request.config;
  if (!block.is_object()) {
    error(path, "must be a map, got " + Describe(block));
    return r;
  }
  std::vector<std::string> names;
  for (const Field& f : Fields()) names.push_back(f.name);
  for (const auto& [key, value] : block.items()) {
    if (std::find(names.begin(), names.end(), key) != names.end()) continue;
    std::string message = "unknown field '" + key + "'";
    std::string suggestion = Suggest(key, names);
    if (!suggestion.empty()) message += " (did you mean '" + suggestion + "'?)";
    error(path + "." + key, message);
  }
  for (const Field& field : Fields()) {
    const std::string field_path = path + "." + field.name;
    auto it = block.find(field.name);
    if (it == block.end()) {
      if (field.required) error(field_path, "required field is missing");
      continue;
    }
    const json& v = *it;
    if (field.type == Field::kInteger) {
      if (!v.is_number()) {
        error(field_path, "must be an integer, got " + Describe(v));
        continue;
      }
      if (v.is_number_float()) {
        double d = v.get<double>();
        if (!std::isfinite(d) || std::floor(d) != d) {
          error(field_path, "must be an integer, got a number");
          continue;
        }
      }
      double d = v.get<double>();
      if (d < static_cast<double>(field.min) || d > static_cast<double>(field.max)) {
        std::string shown = v.dump();
        if (shown.size() > 40) shown = shown.substr(0, 40) + "...";
        error(field_path, "must be between " + std::to_string(field.min) + " and " +
                              std::to_string(field.max) + ", got " + shown);
      }
      continue;
    }
    if (field.type == Field::kStringOrNumber && v.is_number()) {
      double d = v.get<double>();
      if (!(d > 0) || !std::isfinite(d)) error(field_path, "must be a positive number");
      continue;
    }
    if (!v.is_string()) {
      error(field_path,
            std::string("must be ") +
                (field.type == Field::kStringOrNumber ? "a string or a number" : "a string") +
                ", got " + Describe(v));
      continue;
    }
    const std::string s = v.get<std::string>();
    if (field.check && !field.check(s)) {
      std::string shown = s.size() > 80 ? s.substr(0, 80) + "..." : s;
      error(field_path, "invalid value '" + shown + "': must be " + field.what);
      continue;
    }
    // Beyond today's loader: what the provider itself needs.
    std::string name = field.name;
    if ((name == "endpoint" || name == "authEndpoint") && s.rfind("http://", 0) == 0) {
      std::string host = UrlHost(s);
      bool imds = name == "authEndpoint" && host == "169.254.169.254";
      if (!IsLoopbackHost(host) && !imds) {
        error(field_path,
              "plain http:// is allowed only to loopback (127.0.0.1, ::1, localhost); "
              "use https://");
      }
    }
    if (name == "cpu" && !CpuCores(v)) {
      error(field_path, "invalid value '" + (s.size() > 80 ? s.substr(0, 80) + "..." : s) +
                            "': must be a number of cores such as 0.5 or 500m");
    }
  }
  if (auto m = block.find("memory"); m != block.end() && m->is_number()) {
    error(path + ".memory",
          "Azure Container Apps takes memory with its unit: write it as a "
          "string such as \"1Gi\" or \"512Mi\"");
  }
  auto min = block.find("minReplicas");
  auto max = block.find("maxReplicas");
  auto in_range = [](const json& v, double lo) {
    return v.is_number() && v.get<double>() >= lo && v.get<double>() <= 1000;
  };
  if (min != block.end() && max != block.end() && in_range(*min, 0) && in_range(*max, 1) &&
      min->get<double>() > max->get<double>()) {
    error(path + ".minReplicas", "must not be more than maxReplicas (" + max->dump() + ")");
  }
  return r;
}

json TargetSchema() {
  json positive = {{"oneOf", json::array({{{"type", "string"}, {"minLength", 1}},
                                          {{"type", "number"}, {"exclusiveMinimum", 0}}})}};
  auto with = [](json base, const char* description) {
    base["description"] = description;
    return base;
  };
  return {{"type", "object"},
          {"description", "Azure Container Apps."},
          {"additionalProperties", false},
          {"required", {"subscriptionId", "resourceGroup", "environmentName", "location"}},
          {"properties",
           {{"subscriptionId",
             {{"type", "string"},
              {"description", "Subscription id (UUID)."},
              {"pattern",
               "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"}}},
            {"resourceGroup",
             {{"type", "string"}, {"description", "Resource group."}, {"pattern", "^\\S+$"}}},
            {"environmentName",
             {{"type", "string"},
              {"description", "Container Apps environment."},
              {"pattern", "^\\S+$"}}},
            {"location",
             {{"type", "string"},
              {"description", "Location, e.g. westeurope."},
              {"pattern", "^\\S+$"}}},
            {"cpu", with(positive, "CPU cores, e.g. 0.5.")},
            {"memory", with(positive, "Memory, e.g. 1Gi.")},
            {"minReplicas",
             {{"type", "integer"},
              {"description", "Minimum replicas."},
              {"minimum", 0},
              {"maximum", 1000}}},
            {"maxReplicas",
             {{"type", "integer"},
              {"description", "Maximum replicas."},
              {"minimum", 1},
              {"maximum", 1000}}},
            {"endpoint",
             {{"type", "string"},
              {"description", "Override of the API base URL."},
              {"pattern", "^https?://\\S+$"}}},
            {"authEndpoint",
             {{"type", "string"},
              {"description", "Override of the token / login / metadata URL."},
              {"pattern", "^https?://\\S+$"}}}}}};
}

ValidateAgentResponse ValidateAgent(const ValidateAgentRequest& request) {
  ValidateAgentResponse r;
  json computed;
  const json* spec_ptr = &request.spec;
  if (request.spec.is_null() && request.model != nullptr) {
    computed = NormalizedSpec(*request.model, request.model->image);
    spec_ptr = &computed;
  }
  const json& spec = *spec_ptr;
  if (!spec.is_object()) {
    r.diagnostics.push_back({Severity::kError, "spec", "the agent's spec is not an object"});
    return r;
  }
  AgentCheck c(request, spec, r.diagnostics);

  // The app is named AppName(environment, agent) ("<environment>-<agent>").
  if (const std::string app = AppName(request.environment, request.agent); !IsAppName(app)) {
    c.Error("metadata.name",
            "whose app names have 2 to 32 characters (lower-case letters, digits and '-', "
            "starting with a letter, ending with a letter or digit, no '--'); '" +
                app.substr(0, 64) + "'" +
                (request.environment.empty()
                     ? std::string()
                     : " (environment '" + request.environment + "' + '-' + the agent's name)") +
                " is not one: rename the agent");
  }
  if (const json& v = Member(spec, "hostPort"); v.is_number_integer() && v.get<int>() != 0) {
    c.Error("spec.hostPort",
            "which has no host ports: the main port is served by the app's ingress "
            "(ingress.fqdn), and ingress.exposedPort applies only to TCP transport; remove "
            "hostPort");
  }
  if (const json& ports = Member(spec, "ports"); ports.is_object()) {
    std::vector<std::pair<std::pair<int, std::string>, const json*>> sorted;
    for (const auto& [key, p] : ports.items()) {
      size_t slash = key.find('/');
      sorted.push_back(
          {{std::atoi(key.c_str()), slash == std::string::npos ? "tcp" : key.substr(slash + 1)},
           &p});
    }
    std::sort(sorted.begin(), sorted.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (size_t i = 0; i < sorted.size(); ++i) {
      const std::string at = "spec.ports[" + std::to_string(i) + "]";
      if (sorted[i].first.second == "udp") {
        c.Error(at + ".protocol",
                "whose ingress carries no UDP (ingress.transport is auto, http, http2 or tcp; "
                "additionalPortMappings has no protocol)");
      }
      if (const json& ip = Member(*sorted[i].second, "hostIP");
          ip.is_string() && !ip.get<std::string>().empty()) {
        c.Error(at + ".hostIP", "which has no host address to bind; remove hostIP");
      }
    }
  }
  if (const json& n = Member(spec, "networks"); n.is_object() && !n.empty()) {
    c.Error("spec.networks",
            "whose only network is the app's environment (the Target's azure.environmentName): "
            "the API has no network to join and no DNS alias");
  }
  if (const json& volumes = Member(spec, "volumes"); volumes.is_object()) {
    size_t i = 0;
    for (const auto& [target, m] : volumes.items()) {
      const std::string at = "spec.volumes[" + std::to_string(i++) + "]";
      const json& type = Member(m, "type");
      std::string t = type.is_string() ? type.get<std::string>() : "";
      if (t == "volume") {
        c.Error(at,
                "which cannot create a volume that reconcile owns: Azure Files volumes "
                "(template.volumes[].storageType AzureFile or NfsAzureFile) mount a storage of "
                "the environment (storageName) made outside the app, and an Agent has no field "
                "that names one; use type tmpfs for scratch space");
      } else if (t == "bind") {
        c.Error(at, "which has no host to bind-mount from");
      } else {
        if (const json& size = Member(m, "size");
            size.is_string() && !size.get<std::string>().empty()) {
          c.Error(at + ".size",
                  "whose EmptyDir volumes have no size limit (template.volumes[] has no size "
                  "field)");
        }
        if (const json& ro = Member(m, "readOnly"); ro.is_boolean() && ro.get<bool>()) {
          c.Error(at + ".readOnly",
                  "whose volume mounts have no read-only flag (volumeMounts[] has only "
                  "volumeName, mountPath, subPath)");
        }
      }
    }
  }
  if (const json& files = Member(spec, "secretFiles"); files.is_object()) {
    for (const auto& [name, f] : files.items()) {
      const json& mode = Member(f, "mode");
      if (mode.is_string() && mode.get<std::string>() != "0400") {
        c.Error("spec.secretFiles." + name + ".mode",
                "whose secret volumes have no file mode (volumes[].secrets[] has only secretRef "
                "and path)");
      }
      const json& target = Member(f, "target");
      if (target.is_string()) {
        const std::string t = target.get<std::string>();
        size_t slash = t.rfind('/');
        if (slash == 0 || slash == std::string::npos) {
          c.Error("spec.secretFiles." + name + ".target",
                  "where a secret file comes in a Secret volume that replaces its whole folder; "
                  "'/' cannot be one: put the file in a folder such as /run/secrets");
        }
      }
    }
  }
  if (const json& restart = Member(spec, "restart"); restart.is_string()) {
    const std::string v = restart.get<std::string>();
    if (v != "always" && v != "unless-stopped") {
      c.Error("spec.restart",
              "which has no restart policy (template has none); only always or unless-stopped can "
              "be honoured");
    }
  }
  if (const json& s = Member(spec, "strategy"); s.is_object()) {
    if (const json& ar = Member(s, "autoRollback"); ar.is_boolean() && !ar.get<bool>()) {
      c.Error("spec.strategy.autoRollback",
              "which cannot send traffic to a version that is not healthy; remove autoRollback: "
              "false");
    }
  }
  if (const json& h = Member(spec, "healthCheck"); h.is_object()) {
    if (h.contains("exec")) {
      c.Error("spec.healthCheck.exec",
              "whose probes are httpGet or tcpSocket only; it cannot run a command in the "
              "container: use path or tcp");
    }
    struct Timing {
      const char* key;
      std::int64_t min_s, max_s;
      const char* api;
    };
    for (const Timing& t :
         {Timing{"interval", 1, 240, "periodSeconds"}, Timing{"timeout", 1, 240, "timeoutSeconds"},
          Timing{"startPeriod", 0, 60, "initialDelaySeconds"}}) {
      const json& v = Member(h, t.key);
      auto ms = DurationMs(v);
      if (!ms) continue;
      const std::string field = std::string("spec.healthCheck.") + t.key;
      const std::string text = v.get<std::string>();
      if (*ms % 1000 != 0) {
        c.Error(field, "whose health checks count whole seconds; " + text + " is not");
        continue;
      }
      std::int64_t s = *ms / 1000;
      if (s < t.min_s || s > t.max_s) {
        c.Error(field, std::string("whose probe ") + t.api + " is " +
                           std::to_string(std::max<std::int64_t>(t.min_s, 1)) + " to " +
                           std::to_string(t.max_s) + " seconds; " + text + " is outside");
      }
    }
    if (const json& retries = Member(h, "retries"); retries.is_number_integer()) {
      int n = retries.get<int>();
      if (n != 30 && n > 10) {  // 30: reconcile's default, not sent (Azure's 3 applies)
        c.Error("spec.healthCheck.retries",
                "which gives up after at most 10 failed checks (failureThreshold 1 to 10); " +
                    std::to_string(n) + " is more");
      }
    }
  }
  if (spec.contains("stopSignal")) {
    c.Error("spec.stopSignal",
            "which cannot choose the signal that stops a container "
            "(template.terminationGracePeriodSeconds sets only the time)");
  }
  if (const json& g = Member(spec, "stopGracePeriod"); g.is_string()) {
    auto ms = DurationMs(g);
    if (ms && *ms % 1000 != 0) {
      c.Error("spec.stopGracePeriod", "whose terminationGracePeriodSeconds counts whole seconds; " +
                                          g.get<std::string>() + " is not");
    }
  }
  if (spec.contains("user")) {
    c.Error("spec.user",
            "which cannot choose the user a container runs as (containers[] has no user or "
            "security context): set USER in the image");
  }
  if (const json& v = Member(spec, "capAdd"); v.is_array() && !v.empty()) {
    c.Error("spec.capAdd", "which cannot add Linux capabilities");
  }
  if (const json& v = Member(spec, "capDrop"); v.is_array() && !v.empty()) {
    c.Error("spec.capDrop", "which cannot drop Linux capabilities");
  }
  if (const json& v = Member(spec, "readOnlyRootFilesystem"); v.is_boolean() && v.get<bool>()) {
    c.Error("spec.readOnlyRootFilesystem", "which cannot mount the root filesystem read-only");
  }
  if (spec.contains("hostname")) {
    c.Error("spec.hostname", "which cannot set a container's host name");
  }
  const json& resources = Member(spec, "resources");
  if (resources.contains("gpus")) {
    c.Error("spec.resources.gpus",
            "whose containers have no GPU request (resources has only cpu and memory); GPUs come "
            "with the environment's workload profile (properties.workloadProfileName), not a "
            "count");
  }
  if (const json& cpu = Member(resources, "cpu"); !cpu.is_null() && !CpuCores(cpu)) {
    c.Error("spec.resources.cpu",
            "whose containers take a number of cores (resources.cpu, "
            "such as 0.5); '" +
                cpu.dump() + "' is not one");
  }
  const json& cfg = request.target_config;
  if (const json& replicas = Member(spec, "replicas");
      replicas.is_number_integer() && replicas.get<int>() != 1 &&
      (Member(cfg, "minReplicas").is_number() || Member(cfg, "maxReplicas").is_number())) {
    r.diagnostics.push_back(
        {Severity::kError, "spec.replicas",
         "Target '" + request.target +
             "' sets azure.minReplicas/maxReplicas (autoscaling); a fixed replicas would "
             "contradict them: set one or the other"});
  }
  if (const json& labels = Member(spec, "labels"); labels.is_object()) {
    if (static_cast<int>(labels.size()) > kMaxLabelTags) {
      c.Error("spec.labels", "whose apps take at most " + std::to_string(kMaxTags) +
                                 " tags, of which reconcile uses 5; " +
                                 std::to_string(labels.size()) + " labels are too many");
    }
    for (const auto& [key, value] : labels.items()) {
      const std::string field = "spec.labels." + key;
      const std::string value_text = value.is_string() ? value.get<std::string>() : value.dump();
      if (key.find_first_of("<>%&\\?/") != std::string::npos || key.size() > 512 ||
          value_text.size() > 256) {
        c.Error(field,
                "whose tags (ContainerApp.tags) allow names of at most 512 characters without "
                "< > % & \\ ? or /, and values of at most 256");
      } else if (Lower(key).rfind("reconcile.dev", 0) == 0) {
        c.Error(field, "where tags starting with reconcile.dev are reconcile's own (ownership)");
      }
    }
  }
  return r;
}

const std::set<std::string>& UpdatableFields() {
  static const std::set<std::string> kFields = {"image",       "port",
                                                "hostPort",    "command",
                                                "args",        "env",
                                                "secretEnv",   "publish",
                                                "secretFiles", "volumes",
                                                "ports",       "replicas",
                                                "restart",     "stopGracePeriod",
                                                "resources",   "healthCheck",
                                                "strategy",    "labels",
                                                "networks",    "stopSignal",
                                                "user",        "capAdd",
                                                "capDrop",     "readOnlyRootFilesystem",
                                                "hostname",    "secretDigests"};
  return kFields;
}

PlanChangeResponse PlanChange(const PlanChangeRequest& request) {
  PlanChangeResponse r;
  const std::set<std::string>& updatable = UpdatableFields();
  std::set<std::string> tops;
  for (const std::string& path : request.changed) {
    std::string top = path.substr(0, path.find('.'));
    tops.insert(top);
    if (!updatable.count(top)) r.requires_replace.insert(path);
  }
  // What docs/cloud-fields.md says the plan tells, for the fields that changed.
  auto note = [&](const char* field, const char* text) {
    r.diagnostics.push_back({Severity::kWarning, field, text});
  };
  const json& desired = request.desired;
  if (tops.count("strategy")) {
    note("strategy.type",
         "Azure Container Apps rolls out start-first (a new revision gets the "
         "traffic once it is ready)");
  }
  if (tops.count("volumes")) {
    note("volumes", "tmpfs: an EmptyDir volume, not guaranteed to be memory");
  }
  if (tops.count("secretFiles") && Member(desired, "secretFiles").is_object()) {
    note("secretFiles",
         "each folder of secret files is a Secret volume that hides what the image has there; "
         "the files get the platform's permissions, not 0400");
  }
  return r;
}

}  // namespace reconcile::azure
