#include "gcp/cloudrun_service.h"

#include <string>
#include <vector>

#include "reconcile/spec.h"

namespace reconcile::gcp {
namespace {

using nlohmann::json;

std::string Str(const json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

const json& Member(const json& j, const char* key) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

// Cloud Run expands $(VAR) in env values and reads $$ as '$': a value is sent
// as written by escaping each "$(".
std::string EscapeEnv(const std::string& value) {
  std::string out;
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '$' && i + 1 < value.size() && value[i + 1] == '(') out += '$';
    out += value[i];
  }
  return out;
}

std::int64_t IntOr(const json& j, const char* key, std::int64_t fallback) {
  const json& v = Member(j, key);
  return v.is_number_integer() ? v.get<std::int64_t>() : fallback;
}

json Probe(const json& h, int agent_port) {
  json probe = json::object();
  if (h.contains("tcp")) {
    probe["tcpSocket"] = {{"port", IntOr(h, "tcp", agent_port)}};
  } else {
    probe["httpGet"] = {{"path", Str(h, "path").empty() ? "/health" : Str(h, "path")},
                        {"port", IntOr(h, "port", agent_port)}};
  }
  // reconcile's defaults (interval 1s, timeout 2s, retries 30) cannot be
  // told from values written, and are not sent: Cloud Run's own apply
  // (10s, 1s, 3), as docs/cloud-fields.md says for fields not set.
  if (auto s = WholeSeconds(Str(h, "interval")); s && Str(h, "interval") != "1s") {
    probe["periodSeconds"] = *s;
  }
  if (auto s = WholeSeconds(Str(h, "timeout")); s && Str(h, "timeout") != "2s") {
    probe["timeoutSeconds"] = *s;
  }
  if (std::int64_t r = IntOr(h, "retries", 30); r != 30 && r >= 1) probe["failureThreshold"] = r;
  if (auto s = WholeSeconds(Str(h, "startPeriod")); s && *s > 0) {
    probe["initialDelaySeconds"] = *s;
  }
  return probe;
}

// The fields of a Service that the fingerprint covers.
json FingerprintFields(const json& service) {
  const json& template_ = Member(service, "template");
  const json& containers = Member(template_, "containers");
  json container = containers.is_array() && !containers.empty() ? containers[0] : json::object();
  json env = json::array();
  const json& e = Member(container, "env");
  if (e.is_array()) {
    for (const json& var : e) {
      if (var.is_object())
        env.push_back({{"name", Member(var, "name")}, {"value", Member(var, "value")}});
    }
  }
  auto list = [](const json& v) { return v.is_array() && !v.empty() ? v : json::array(); };
  std::string ingress = Str(service, "ingress");
  return {{"image", Member(container, "image")},
          {"command", list(Member(container, "command"))},
          {"args", list(Member(container, "args"))},
          {"env", env},
          {"ingress", ingress.empty() ? "INGRESS_TRAFFIC_ALL" : ingress}};
}

}  // namespace

json ServiceBody(const std::string& agent, const json& spec, const CloudRunSettings& settings,
                 const std::string& spec_hash, const std::string& revision,
                 const std::string& environment) {
  json container = json::object();
  container["image"] = Str(spec, "image");
  const json& command = Member(spec, "command");
  if (command.is_array() && !command.empty()) container["command"] = command;
  const json& args = Member(spec, "args");
  if (args.is_array() && !args.empty()) container["args"] = args;
  const json& env = Member(spec, "env");
  if (env.is_object() && !env.empty()) {
    json vars = json::array();
    for (const auto& [name, value] : env.items()) {
      std::string text = value.is_string() ? value.get<std::string>() : value.dump();
      vars.push_back({{"name", name}, {"value", EscapeEnv(text)}});
    }
    container["env"] = std::move(vars);
  }
  const int port = static_cast<int>(IntOr(spec, "port", 0));
  if (port > 0) container["ports"] = json::array({{{"containerPort", port}}});

  json limits = json::object();
  const json& resources = Member(spec, "resources");
  std::string cpu = SettingText(Member(resources, "cpu"));
  std::string memory = SettingText(Member(resources, "memory"));
  if (cpu.empty()) cpu = settings.cpu;
  if (memory.empty()) memory = settings.memory;
  if (!cpu.empty()) limits["cpu"] = cpu;
  if (!memory.empty()) limits["memory"] = memory;
  if (!limits.empty()) container["resources"] = {{"limits", limits}, {"cpuIdle", true}};

  const json& health = Member(spec, "healthCheck");
  if (health.is_object() && !health.contains("exec"))
    container["startupProbe"] = Probe(health, port);

  json template_ = json::object();
  const json& volumes = Member(spec, "volumes");
  if (volumes.is_object() && !volumes.empty()) {
    json vols = json::array(), mounts = json::array();
    int i = 0;
    for (const auto& [target, v] : volumes.items()) {
      if (Str(v, "type") != "tmpfs") continue;
      std::string name = "tmpfs-" + std::to_string(i++);
      json empty_dir = {{"medium", "MEMORY"}};
      if (!Str(v, "size").empty()) empty_dir["sizeLimit"] = Str(v, "size");
      vols.push_back({{"name", name}, {"emptyDir", empty_dir}});
      mounts.push_back({{"name", name}, {"mountPath", target}});
    }
    if (!vols.empty()) {
      template_["volumes"] = std::move(vols);
      container["volumeMounts"] = std::move(mounts);
    }
  }
  template_["containers"] = json::array({container});
  const json& labels = Member(spec, "labels");
  if (labels.is_object() && !labels.empty()) {
    json annotations = json::object();
    for (const auto& [k, v] : labels.items()) {
      annotations[k] = v.is_string() ? v.get<std::string>() : v.dump();
    }
    template_["annotations"] = std::move(annotations);
  }
  json scaling = json::object();
  if (settings.min_instances || settings.max_instances) {
    if (settings.min_instances) scaling["minInstanceCount"] = *settings.min_instances;
    if (settings.max_instances) scaling["maxInstanceCount"] = *settings.max_instances;
  } else {
    std::int64_t replicas = IntOr(spec, "replicas", 1);
    scaling = {{"minInstanceCount", replicas}, {"maxInstanceCount", replicas}};
  }
  template_["scaling"] = std::move(scaling);
  if (settings.concurrency) template_["maxInstanceRequestConcurrency"] = *settings.concurrency;
  if (!settings.service_account.empty()) template_["serviceAccount"] = settings.service_account;

  json service = json::object();
  service["labels"] = {{kGcpLabelManagedBy, kManagedByValue}, {kGcpLabelAgent, agent}};
  service["ingress"] =
      Member(spec, "publish") == false ? "INGRESS_TRAFFIC_INTERNAL_ONLY" : "INGRESS_TRAFFIC_ALL";
  service["template"] = std::move(template_);
  // All traffic to the latest ready revision (start-first).
  service["traffic"] =
      json::array({{{"type", "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"}, {"percent", 100}}});
  service["annotations"] = {{kLabelManagedBy, kManagedByValue},
                            {kLabelAgent, agent},
                            {kLabelSpecHash, spec_hash},
                            {kLabelRevision, revision}};
  if (!environment.empty()) {
    service["labels"][kGcpLabelEnvironment] = environment;
    service["annotations"][kLabelEnvironment] = environment;
  }
  service["annotations"][kAnnotationFingerprint] = Fingerprint(service);
  return service;
}

std::string ServiceUpdateMask() { return "labels,annotations,ingress,template,traffic"; }

std::string Fingerprint(const json& service) {
  return "v1:" + Sha256Hex(FingerprintFields(service).dump()).substr(0, 32);
}

std::string ServiceEnvironment(const json& service) {
  return Str(Member(service, "annotations"), kLabelEnvironment);
}

bool IsOwned(const json& service) {
  return Str(Member(service, "labels"), kGcpLabelManagedBy) == kManagedByValue &&
         Str(Member(service, "annotations"), kLabelManagedBy) == kManagedByValue;
}

std::string ServiceHealth(const json& service) {
  const json& cond = Member(service, "terminalCondition");
  std::string state = Str(cond, "state");
  if (state == "CONDITION_FAILED") return "unhealthy";
  std::string created = Str(service, "latestCreatedRevision");
  std::string ready = Str(service, "latestReadyRevision");
  if (state == "CONDITION_SUCCEEDED" && !ready.empty() && ready == created &&
      Member(service, "reconciling") != true) {
    return "healthy";
  }
  return "starting";
}

std::optional<ObservedInstance> ObservedFromService(const json& service) {
  if (!service.is_object() || !IsOwned(service)) return std::nullopt;
  const json& annotations = Member(service, "annotations");
  ObservedInstance o;
  o.id = Str(service, "name");
  o.name = o.id.substr(o.id.rfind('/') + 1);
  o.agent = Str(annotations, kLabelAgent);
  if (o.agent.empty()) o.agent = Str(Member(service, "labels"), kGcpLabelAgent);
  o.spec_hash = Str(annotations, kLabelSpecHash);
  o.revision = Str(annotations, kLabelRevision);
  const json& containers = Member(Member(service, "template"), "containers");
  if (containers.is_array() && !containers.empty()) o.image = Str(containers[0], "image");
  o.endpoint = Str(service, "uri");
  o.health = ServiceHealth(service);
  o.state = o.health == "healthy" ? "ready" : o.health == "unhealthy" ? "failed" : "deploying";
  // A failed latest revision leaves the previous one serving, but not the
  // spec the annotations name: not running as recorded.
  o.running = o.health != "unhealthy" && !Str(service, "latestReadyRevision").empty();
  std::string written = Str(annotations, kAnnotationFingerprint);
  if (written != Fingerprint(service)) {
    json now = FingerprintFields(service);
    // Which fields differ cannot be told from a digest: name them all.
    std::string fields;
    for (const auto& [k, v] : now.items()) fields += (fields.empty() ? "" : ", ") + k;
    o.spec_hash = (o.spec_hash.empty() ? "unknown" : o.spec_hash) +
                  " (changed outside reconcile: one of " + fields + ")";
  }
  return o;
}

}  // namespace reconcile::gcp
