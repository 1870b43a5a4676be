#include "azure/containerapps_wire.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include "http/token_source.h"
#include "reconcile/provider.h"
#include "reconcile/spec.h"

namespace reconcile::azure {
namespace {

using nlohmann::json;

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Lower-case letters, digits and '-' from `text` (others become '-'), at most
// `max` characters.
std::string Slug(const std::string& text, size_t max) {
  std::string out;
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    out += std::isalnum(u) ? static_cast<char>(std::tolower(u)) : '-';
    if (out.size() >= max) break;
  }
  return out;
}

std::string Hash8(const std::string& text) { return Sha256Hex(text).substr(0, 8); }

const json& Member(const json& j, const char* key) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

std::string StringMember(const json& j, const char* key) {
  const json& v = Member(j, key);
  return v.is_string() ? v.get<std::string>() : "";
}

// Whole seconds of a duration text of the spec ("10s"), or nullopt.
std::optional<std::int64_t> Seconds(const json& text) {
  if (!text.is_string()) return std::nullopt;
  auto ms = ParseDuration(text.get<std::string>());
  if (!ms || *ms % 1000 != 0) return std::nullopt;
  return *ms / 1000;
}

std::string SecretValue(const AppInput& in, const std::string& key, const std::string& field,
                        Status& status) {
  if (in.secret_values) {
    auto it = in.secret_values->find(key);
    if (it != in.secret_values->end()) return it->second;
  }
  if (status.ok()) {
    status = Status::Invalid(field +
                             ": the secret's value was not resolved (check --secrets and "
                             "the allowed environment variables)");
  }
  return "";
}

json Probe(const json& check, int port) {
  json probe = {{"type", "Startup"}};
  if (check.contains("tcp")) {
    probe["tcpSocket"] = {{"port", check["tcp"]}};
  } else {
    json get = {{"path", check.value("path", "/health")}};
    get["port"] =
        check.contains("port") && check["port"].is_number_integer() ? check["port"] : json(port);
    probe["httpGet"] = std::move(get);
  }
  // A value equal to reconcile's default counts as not set: Azure's applies.
  if (auto s = Seconds(Member(check, "interval")); s && *s != 1) probe["periodSeconds"] = *s;
  if (auto s = Seconds(Member(check, "timeout")); s && *s != 2) probe["timeoutSeconds"] = *s;
  if (const json& r = Member(check, "retries"); r.is_number_integer() && r.get<int>() != 30) {
    probe["failureThreshold"] = r;
  }
  if (auto s = Seconds(Member(check, "startPeriod")); s && *s > 0) {
    probe["initialDelaySeconds"] = *s;
  }
  probe["successThreshold"] = 1;
  return probe;
}

}  // namespace

std::string Settings::EnvironmentId() const {
  if (environment.rfind("/subscriptions/", 0) == 0) return environment;
  return "/subscriptions/" + subscription_id + "/resourceGroups/" + resource_group +
         "/providers/Microsoft.App/managedEnvironments/" + environment;
}

std::string Settings::AppsUrl() const {
  return endpoint + "/subscriptions/" + http::FormEncode(subscription_id) + "/resourceGroups/" +
         http::FormEncode(resource_group) +
         "/providers/Microsoft.App/containerApps?api-version=" + kApiVersion;
}

std::string Settings::AppUrl(const std::string& name) const {
  return endpoint + "/subscriptions/" + http::FormEncode(subscription_id) + "/resourceGroups/" +
         http::FormEncode(resource_group) + "/providers/Microsoft.App/containerApps/" +
         http::FormEncode(name) + "?api-version=" + kApiVersion;
}

Result<Settings> SettingsFromJson(const json& block) {
  if (!block.is_object()) return Status::Invalid("spec.azure: must be a map");
  Settings s;
  auto req = [&](const char* key, std::string& out) -> Status {
    const json& v = Member(block, key);
    if (!v.is_string() || v.get<std::string>().empty()) {
      return Status::Invalid(std::string("spec.azure.") + key + ": required field is missing");
    }
    out = v.get<std::string>();
    return Status::Ok();
  };
  for (auto [key, out] :
       {std::pair<const char*, std::string*>{"subscriptionId", &s.subscription_id},
        {"resourceGroup", &s.resource_group},
        {"environmentName", &s.environment},
        {"location", &s.location}}) {
    if (Status st = req(key, *out); !st.ok()) return st;
  }
  s.cpu = Member(block, "cpu");
  s.memory = Member(block, "memory");
  if (const json& v = Member(block, "minReplicas"); v.is_number_integer()) {
    s.min_replicas = v.get<int>();
  }
  if (const json& v = Member(block, "maxReplicas"); v.is_number_integer()) {
    s.max_replicas = v.get<int>();
  }
  s.endpoint = StringMember(block, "endpoint");
  if (s.endpoint.empty()) s.endpoint = kDefaultEndpoint;
  while (!s.endpoint.empty() && s.endpoint.back() == '/') s.endpoint.pop_back();
  s.auth_endpoint = StringMember(block, "authEndpoint");
  return s;
}

std::string SecretNameForEnv(const std::string& variable) {
  return "env-" + Slug(variable, 40) + "-" + Hash8("env:" + variable);
}

std::string SecretNameForFile(const std::string& name) {
  return "file-" + Slug(name, 40) + "-" + Hash8("file:" + name);
}

std::optional<double> CpuCores(const json& value) {
  if (value.is_number()) {
    double d = value.get<double>();
    if (d > 0 && std::isfinite(d)) return d;
    return std::nullopt;
  }
  if (!value.is_string()) return std::nullopt;
  std::string s = value.get<std::string>();
  bool milli = !s.empty() && s.back() == 'm';
  if (milli) s.pop_back();
  if (s.empty() || s.size() > 20) return std::nullopt;
  int dots = 0;
  for (char c : s) {
    if (c == '.') {
      ++dots;
    } else if (!std::isdigit(static_cast<unsigned char>(c))) {
      return std::nullopt;
    }
  }
  if (dots > 1 || (milli && dots > 0) || s == ".") return std::nullopt;
  double d = std::strtod(s.c_str(), nullptr);
  if (milli) d /= 1000;
  if (!(d > 0) || !std::isfinite(d)) return std::nullopt;
  return d;
}

Result<json> BuildApp(const Settings& settings, const AppInput& in) {
  const json& spec = in.spec;
  if (!spec.is_object()) return Status::Invalid("the agent's spec is not an object");
  Status status;
  json secrets = json::array();
  json env = json::array();
  if (const json& e = Member(spec, "env"); e.is_object()) {
    for (const auto& [name, value] : e.items()) {
      env.push_back(
          {{"name", name}, {"value", value.is_string() ? value.get<std::string>() : value.dump()}});
    }
  }
  if (const json& e = Member(spec, "secretEnv"); e.is_object()) {
    for (const auto& [name, ref] : e.items()) {
      std::string secret = SecretNameForEnv(name);
      secrets.push_back(
          {{"name", secret}, {"value", SecretValue(in, name, "spec.secretEnv." + name, status)}});
      env.push_back({{"name", name}, {"secretRef", secret}});
    }
  }

  json container = {{"name", in.agent}, {"image", StringMember(spec, "image")}};
  if (const json& c = Member(spec, "command"); c.is_array() && !c.empty()) container["command"] = c;
  if (const json& a = Member(spec, "args"); a.is_array() && !a.empty()) container["args"] = a;
  if (!env.empty()) container["env"] = std::move(env);

  json resources = json::object();
  const json& res = Member(spec, "resources");
  json cpu = Member(res, "cpu").is_null() ? settings.cpu : Member(res, "cpu");
  if (auto cores = CpuCores(cpu)) resources["cpu"] = *cores;
  json memory = Member(res, "memory").is_null() ? settings.memory : Member(res, "memory");
  if (memory.is_string()) resources["memory"] = memory;
  if (!resources.empty()) container["resources"] = std::move(resources);

  const int port = Member(spec, "port").is_number_integer() ? Member(spec, "port").get<int>() : 0;
  if (const json& check = Member(spec, "healthCheck"); check.is_object()) {
    container["probes"] = json::array({Probe(check, port)});
  }

  json volumes = json::array();
  json mounts = json::array();
  if (const json& v = Member(spec, "volumes"); v.is_object()) {
    for (const auto& [target, m] : v.items()) {
      if (StringMember(m, "type") != "tmpfs") continue;  // refused by ValidateAgent
      std::string name = "tmp-" + Hash8(target);
      volumes.push_back({{"name", name}, {"storageType", "EmptyDir"}});
      mounts.push_back({{"volumeName", name}, {"mountPath", target}});
    }
  }
  if (const json& files = Member(spec, "secretFiles"); files.is_object()) {
    std::map<std::string, json> by_folder;  // folder -> secrets[]
    for (const auto& [name, f] : files.items()) {
      std::string target = StringMember(f, "target");
      size_t slash = target.rfind('/');
      std::string folder = slash == std::string::npos || slash == 0 ? "/" : target.substr(0, slash);
      std::string file = slash == std::string::npos ? target : target.substr(slash + 1);
      std::string secret = SecretNameForFile(name);
      secrets.push_back({{"name", secret},
                         {"value", SecretValue(in, SecretFileValueKey(name),
                                               "spec.secretFiles." + name, status)}});
      by_folder[folder].push_back({{"secretRef", secret}, {"path", file}});
    }
    for (auto& [folder, items] : by_folder) {
      std::string name = "secrets-" + Hash8(folder);
      volumes.push_back({{"name", name}, {"storageType", "Secret"}, {"secrets", items}});
      mounts.push_back({{"volumeName", name}, {"mountPath", folder}});
    }
  }
  if (!mounts.empty()) container["volumeMounts"] = std::move(mounts);

  json configuration = {{"activeRevisionsMode", "Multiple"}};
  json registries = json::array();
  if (in.pull_credentials && in.pull_credentials->has_value()) {
    const RegistryCredentials& rc = **in.pull_credentials;
    std::string secret = "registry-" + Slug(rc.server, 40) + "-" + Hash8("registry:" + rc.server);
    secrets.push_back({{"name", secret}, {"value", rc.password}});
    registries.push_back(
        {{"server", rc.server}, {"username", rc.username}, {"passwordSecretRef", secret}});
  }
  if (!secrets.empty()) configuration["secrets"] = std::move(secrets);
  if (!registries.empty()) configuration["registries"] = std::move(registries);
  if (port > 0) {
    const json& publish = Member(spec, "publish");
    json ingress = {{"external", !(publish.is_boolean() && !publish.get<bool>())},
                    {"targetPort", port},
                    {"transport", "auto"}};
    if (in.pinned_revision.empty()) {
      ingress["traffic"] = json::array({{{"latestRevision", true}, {"weight", 100}}});
    } else {
      ingress["traffic"] = json::array({{{"revisionName", in.pinned_revision}, {"weight", 100}}});
    }
    json mappings = json::array();
    if (const json& ports = Member(spec, "ports"); ports.is_object()) {
      for (const auto& [key, p] : ports.items()) {
        int target_port = std::atoi(key.c_str());
        const json& pub = Member(p, "publish");
        json m = {{"targetPort", target_port},
                  {"external", !(pub.is_boolean() && !pub.get<bool>())}};
        if (const json& hp = Member(p, "hostPort"); hp.is_number_integer() && hp.get<int>() != 0) {
          m["exposedPort"] = hp;
        }
        mappings.push_back(std::move(m));
      }
    }
    std::sort(mappings.begin(), mappings.end(), [](const json& a, const json& b) {
      return a["targetPort"].get<int>() < b["targetPort"].get<int>();
    });
    if (!mappings.empty()) ingress["additionalPortMappings"] = std::move(mappings);
    configuration["ingress"] = std::move(ingress);
  }

  json template_ = {{"containers", json::array({std::move(container)})}};
  const int replicas =
      Member(spec, "replicas").is_number_integer() ? Member(spec, "replicas").get<int>() : 1;
  json scale = json::object();
  if (replicas == 1 && (settings.min_replicas || settings.max_replicas)) {
    if (settings.min_replicas) scale["minReplicas"] = *settings.min_replicas;
    if (settings.max_replicas) scale["maxReplicas"] = *settings.max_replicas;
  } else {
    scale = {{"minReplicas", replicas}, {"maxReplicas", replicas}};
  }
  template_["scale"] = std::move(scale);
  if (!volumes.empty()) template_["volumes"] = std::move(volumes);
  if (auto s = Seconds(Member(spec, "stopGracePeriod"))) {
    template_["terminationGracePeriodSeconds"] = *s;
  }

  json tags = json::object();
  if (const json& labels = Member(spec, "labels"); labels.is_object()) {
    for (const auto& [k, v] : labels.items())
      tags[k] = v.is_string() ? v.get<std::string>() : v.dump();
  }
  tags[kTagManagedBy] = kManagedByValue;
  tags[kTagAgent] = in.agent;
  tags[kTagSpecHash] = in.spec_hash;
  tags[kTagRevision] = in.revision;
  tags[kTagImage] = ImageTagValue(StringMember(spec, "image"));
  if (!in.environment.empty()) tags[kTagEnvironment] = in.environment;

  if (!status.ok()) return status;
  return json{{"location", settings.location},
              {"tags", std::move(tags)},
              {"properties",
               {{"managedEnvironmentId", settings.EnvironmentId()},
                {"configuration", std::move(configuration)},
                {"template", std::move(template_)}}}};
}

std::string TagOf(const json& app, const std::string& key) {
  const json& tags = Member(app, "tags");
  if (!tags.is_object()) return "";
  const std::string want = Lower(key);
  for (const auto& [k, v] : tags.items()) {
    if (Lower(k) == want && v.is_string()) return v.get<std::string>();
  }
  return "";
}

std::string ImageTagValue(const std::string& image) {
  return image.size() <= 256 ? image : "sha256:" + Sha256Hex(image);
}

std::string AppName(const std::string& environment, const std::string& agent) {
  return environment.empty() ? agent : environment + "-" + agent;
}

bool IsOwned(const json& app) { return TagOf(app, kTagManagedBy) == kManagedByValue; }

std::string PropertyOf(const json& app, const char* key) {
  return StringMember(Member(app, "properties"), key);
}

bool InEnvironment(const json& app, const std::string& environment_id) {
  std::string env = PropertyOf(app, "managedEnvironmentId");
  if (env.empty()) env = PropertyOf(app, "environmentId");
  return Lower(env) == Lower(environment_id);
}

namespace {
const json& FirstContainer(const json& app) {
  static const json kNull;
  const json& containers = Member(Member(Member(app, "properties"), "template"), "containers");
  if (!containers.is_array() || containers.empty()) return kNull;
  return containers[0];
}
}  // namespace

bool HasProbe(const json& app) {
  const json& probes = Member(FirstContainer(app), "probes");
  return probes.is_array() && !probes.empty();
}

ObservedInstance ObservedFromApp(const json& app) {
  ObservedInstance o;
  o.id = StringMember(app, "id");
  o.name = StringMember(app, "name");
  o.agent = TagOf(app, kTagAgent);
  o.spec_hash = TagOf(app, kTagSpecHash);
  o.revision = TagOf(app, kTagRevision);
  o.image = StringMember(FirstContainer(app), "image");
  if (std::string deployed = TagOf(app, kTagImage);
      !deployed.empty() && deployed != ImageTagValue(o.image)) {
    o.spec_hash = kImageChanged;
  }
  const std::string provisioning = PropertyOf(app, "provisioningState");
  const std::string running_status = PropertyOf(app, "runningStatus");
  const std::string latest = PropertyOf(app, "latestRevisionName");
  const std::string ready = PropertyOf(app, "latestReadyRevisionName");
  const bool stopped = running_status == "Stopped" || running_status == "Suspended";
  if (provisioning == "Succeeded" || provisioning.empty()) {
    o.state = Lower(running_status.empty() ? "Running" : running_status);
  } else {
    o.state = Lower(provisioning);
  }
  o.running =
      !stopped && (provisioning == "Succeeded" || (provisioning == "InProgress" && !ready.empty()));
  const json& ingress = Member(Member(Member(app, "properties"), "configuration"), "ingress");
  const json& external = Member(ingress, "external");
  std::string fqdn = StringMember(ingress, "fqdn");
  if (!fqdn.empty() && external.is_boolean() && external.get<bool>()) {
    o.endpoint = "https://" + http::Printable(fqdn, 253);
  }
  if (HasProbe(app)) {
    if (provisioning == "Failed" || provisioning == "Canceled") {
      o.health = "unhealthy";
    } else if (provisioning == "Succeeded" && !latest.empty() && latest == ready) {
      o.health = "healthy";
    } else {
      o.health = "starting";
    }
  }
  return o;
}

}  // namespace reconcile::azure
