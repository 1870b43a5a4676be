#include "kubernetes/kubernetes_manifests.h"

#include <algorithm>
#include <cstdint>
#include <set>

#include "kubernetes/kubernetes_target.h"
#include "reconcile/observation.h"
#include "reconcile/provider.h"

namespace reconcile::kubernetes {
namespace {

using nlohmann::json;

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
std::int64_t IntOr(const json& j, const char* key, std::int64_t fallback) {
  const json& v = Member(j, key);
  return v.is_number_integer() ? v.get<std::int64_t>() : fallback;
}
std::string Text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump();
}

std::string Base64(std::string_view in) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    std::uint32_t n =
        (std::uint8_t(in[i]) << 16) | (std::uint8_t(in[i + 1]) << 8) | std::uint8_t(in[i + 2]);
    out += kAlphabet[n >> 18];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (i + 1 == in.size()) {
    std::uint32_t n = std::uint8_t(in[i]) << 16;
    out += kAlphabet[n >> 18];
    out += kAlphabet[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    std::uint32_t n = (std::uint8_t(in[i]) << 16) | (std::uint8_t(in[i + 1]) << 8);
    out += kAlphabet[n >> 18];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

}  // namespace

std::string ObjectName(const ManifestContext& c) { return ScopedName(c.environment, c.agent); }

namespace {

json SelectorLabels(const ManifestContext& c) {
  json labels = {{kLabelAppName, ObjectName(c)}, {kLabelAgent, c.agent}};
  if (!c.environment.empty()) labels[kLabelEnvironment] = c.environment;
  return labels;
}

// Docker writes capabilities with or without CAP_; Kubernetes without.
std::string Capability(std::string cap) {
  if (cap.rfind("CAP_", 0) == 0) cap = cap.substr(4);
  return cap;
}

// Docker's memory unit K is Kubernetes' k.
std::string Memory(std::string m) {
  if (m.size() > 1 && m.back() == 'K') m.back() = 'k';
  return m;
}

std::string Protocol(const std::string& p) { return p == "udp" ? "UDP" : "TCP"; }

struct Port {
  int number;
  std::string protocol;  // TCP / UDP
};
// The agent's ports: `port` (TCP), then each ports entry, without repeats.
std::vector<Port> Ports(const json& spec) {
  std::vector<Port> out;
  std::int64_t main = IntOr(spec, "port", 0);
  if (main > 0) out.push_back({static_cast<int>(main), "TCP"});
  const json& ports = Member(spec, "ports");
  if (ports.is_object()) {
    for (const auto& [key, value] : ports.items()) {
      auto slash = key.find('/');
      int number = std::atoi(key.substr(0, slash).c_str());
      std::string protocol = Protocol(slash == std::string::npos ? "tcp" : key.substr(slash + 1));
      bool seen = std::any_of(out.begin(), out.end(), [&](const Port& p) {
        return p.number == number && p.protocol == protocol;
      });
      if (number > 0 && !seen) out.push_back({number, protocol});
    }
  }
  return out;
}

json Probe(const json& h) {
  json probe = json::object();
  if (h.contains("path")) {
    probe["httpGet"] = {{"path", Str(h, "path")}, {"port", IntOr(h, "port", 0)}};
  } else if (h.contains("exec")) {
    probe["exec"] = {{"command", Member(h, "exec")}};
  } else if (h.contains("tcp")) {
    probe["tcpSocket"] = {{"port", IntOr(h, "tcp", 0)}};
  }
  if (auto s = WholeSeconds(Str(h, "interval")); s && *s > 0) probe["periodSeconds"] = *s;
  if (auto s = WholeSeconds(Str(h, "timeout")); s && *s > 0) probe["timeoutSeconds"] = *s;
  if (auto s = WholeSeconds(Str(h, "startPeriod")); s && *s > 0) {
    probe["initialDelaySeconds"] = *s;
  }
  if (std::int64_t r = IntOr(h, "retries", 0); r > 0) probe["failureThreshold"] = r;
  return probe;
}

std::string EnvKey(const std::string& name) { return "env." + name; }
std::string FileKey(const std::string& name) { return "file." + name; }

}  // namespace

json OwnerLabels(const ManifestContext& c) {
  std::string hash = c.spec_hash;
  if (hash.rfind("sha256:", 0) == 0) hash = "sha256-" + hash.substr(7);
  if (hash.size() > 63) hash.resize(63);
  json labels = {{kLabelManagedBy, kManagedByValue},
                 {kLabelAgent, c.agent},
                 {kLabelAppName, ObjectName(c)},
                 {kLabelAppManagedBy, kManagedByValue}};
  if (!c.environment.empty()) labels[kLabelEnvironment] = c.environment;
  if (IsLabelValue(c.target)) labels[kLabelTarget] = c.target;
  if (!hash.empty() && IsLabelValue(hash)) labels[kLabelSpecHash] = hash;
  return labels;
}

std::string OwnerSelector(const std::string& target) {
  std::string s = std::string(kLabelManagedBy) + "=" + kManagedByValue;
  if (IsLabelValue(target) && !target.empty()) s += std::string(",") + kLabelTarget + "=" + target;
  return s;
}

bool IsOwned(const json& object, const std::string& agent, const std::string& environment) {
  const json& labels = Member(Member(object, "metadata"), "labels");
  return Str(labels, kLabelManagedBy) == kManagedByValue && Str(labels, kLabelAgent) == agent &&
         Str(labels, kLabelEnvironment) == environment;
}

std::string SecretName(const std::string& agent) { return agent + ".secrets"; }

json DeploymentManifest(const json& spec, const ManifestContext& c) {
  json labels = OwnerLabels(c);
  json user_labels = Member(spec, "labels");
  json pod_labels = SelectorLabels(c);
  pod_labels[kLabelManagedBy] = kManagedByValue;
  if (user_labels.is_object()) {
    for (const auto& [k, v] : user_labels.items()) {
      labels[k] = Text(v);
      pod_labels[k] = Text(v);
    }
  }
  json container = {{"name", c.agent}, {"image", Str(spec, "image")}};
  const json& command = Member(spec, "command");
  if (command.is_array() && !command.empty()) container["command"] = command;
  const json& args = Member(spec, "args");
  if (args.is_array() && !args.empty()) container["args"] = args;

  // env: plain values and secret references, by name.
  std::map<std::string, json> env;
  const json& plain = Member(spec, "env");
  if (plain.is_object()) {
    for (const auto& [name, value] : plain.items()) {
      env[name] = {{"name", name}, {"value", Text(value)}};
    }
  }
  const json& secret_env = Member(spec, "secretEnv");
  if (secret_env.is_object()) {
    for (const auto& [name, ref] : secret_env.items()) {
      env[name] = {
          {"name", name},
          {"valueFrom",
           {{"secretKeyRef", {{"name", SecretName(ObjectName(c))}, {"key", EnvKey(name)}}}}}};
    }
  }
  if (!env.empty()) {
    json list = json::array();
    for (auto& [name, var] : env) list.push_back(std::move(var));
    container["env"] = std::move(list);
  }
  std::vector<Port> ports = Ports(spec);
  if (!ports.empty()) {
    json list = json::array();
    for (const Port& p : ports) {
      list.push_back({{"containerPort", p.number}, {"protocol", p.protocol}});
    }
    container["ports"] = std::move(list);
  }
  const json& resources = Member(spec, "resources");
  json quantities = json::object();
  if (std::string cpu = Text(Member(resources, "cpu")); !cpu.empty()) quantities["cpu"] = cpu;
  if (std::string m = Text(Member(resources, "memory")); !m.empty())
    quantities["memory"] = Memory(m);
  if (!quantities.empty())
    container["resources"] = {{"requests", quantities}, {"limits", quantities}};

  json security = json::object();
  if (std::string user = Str(spec, "user"); !user.empty()) {
    auto colon = user.find(':');
    security["runAsUser"] = std::stoll(user.substr(0, colon));
    if (colon != std::string::npos) security["runAsGroup"] = std::stoll(user.substr(colon + 1));
  }
  json caps = json::object();
  for (const char* key : {"capAdd", "capDrop"}) {
    const json& list = Member(spec, key);
    if (!list.is_array() || list.empty()) continue;
    json out = json::array();
    for (const json& cap : list) out.push_back(Capability(Text(cap)));
    caps[std::string(key) == "capAdd" ? "add" : "drop"] = std::move(out);
  }
  if (!caps.empty()) security["capabilities"] = std::move(caps);
  if (Member(spec, "readOnlyRootFilesystem") == true) security["readOnlyRootFilesystem"] = true;
  if (!security.empty()) container["securityContext"] = std::move(security);

  const json& health = Member(spec, "healthCheck");
  if (health.is_object()) {
    json probe = Probe(health);
    container["readinessProbe"] = probe;
    container["livenessProbe"] = probe;
  }

  json volumes = json::array();
  json mounts = json::array();
  const json& vols = Member(spec, "volumes");
  if (vols.is_object()) {
    int i = 0;
    for (const auto& [target, v] : vols.items()) {
      if (Str(v, "type") != "tmpfs") continue;
      std::string name = "tmpfs-" + std::to_string(i++);
      json empty_dir = {{"medium", "Memory"}};
      if (std::string size = Str(v, "size"); !size.empty()) empty_dir["sizeLimit"] = Memory(size);
      volumes.push_back({{"name", name}, {"emptyDir", empty_dir}});
      json mount = {{"name", name}, {"mountPath", target}};
      if (Member(v, "readOnly") == true) mount["readOnly"] = true;
      mounts.push_back(std::move(mount));
    }
  }
  const json& files = Member(spec, "secretFiles");
  if (files.is_object() && !files.empty()) {
    json items = json::array();
    for (const auto& [name, f] : files.items()) {
      int mode = static_cast<int>(std::strtol(Str(f, "mode").c_str(), nullptr, 8));
      items.push_back(
          {{"key", FileKey(name)}, {"path", FileKey(name)}, {"mode", mode ? mode : 0400}});
      std::string target = Str(f, "target");
      if (target.empty()) target = "/run/secrets/" + name;
      mounts.push_back({{"name", "secret-files"},
                        {"mountPath", target},
                        {"subPath", FileKey(name)},
                        {"readOnly", true}});
    }
    volumes.push_back({{"name", "secret-files"},
                       {"secret", {{"secretName", SecretName(ObjectName(c))}, {"items", items}}}});
  }
  if (!mounts.empty()) container["volumeMounts"] = std::move(mounts);

  json pod = {{"containers", json::array({container})}};
  if (!volumes.empty()) pod["volumes"] = std::move(volumes);
  if (auto g = WholeSeconds(Str(spec, "stopGracePeriod")))
    pod["terminationGracePeriodSeconds"] = *g;
  if (std::string h = Str(spec, "hostname"); !h.empty()) pod["hostname"] = h;

  json strategy = {{"type", "Recreate"}};
  if (Str(Member(spec, "strategy"), "type") == "start-first") {
    strategy = {{"type", "RollingUpdate"},
                {"rollingUpdate", {{"maxSurge", 1}, {"maxUnavailable", 0}}}};
  }
  json annotations = {{kLabelSpecHash, c.spec_hash}, {kAnnotationSpec, spec.dump()}};
  if (!c.revision.empty()) annotations[kLabelRevision] = c.revision;
  return {
      {"apiVersion", "apps/v1"},
      {"kind", "Deployment"},
      {"metadata",
       {{"name", ObjectName(c)},
        {"namespace", c.namespace_name},
        {"labels", labels},
        {"annotations", annotations}}},
      {"spec",
       {{"replicas", IntOr(spec, "replicas", 1)},
        {"selector", {{"matchLabels", SelectorLabels(c)}}},
        {"strategy", strategy},
        {"template",
         {{"metadata", {{"labels", pod_labels}, {"annotations", {{kLabelSpecHash, c.spec_hash}}}}},
          {"spec", pod}}}}}};
}

std::optional<json> ServiceManifest(const json& spec, const ManifestContext& c) {
  std::vector<Port> ports = Ports(spec);
  if (ports.empty()) return std::nullopt;
  json list = json::array();
  for (const Port& p : ports) {
    std::string name = (p.protocol == "UDP" ? "udp-" : "tcp-") + std::to_string(p.number);
    list.push_back(
        {{"name", name}, {"port", p.number}, {"targetPort", p.number}, {"protocol", p.protocol}});
  }
  return json{{"apiVersion", "v1"},
              {"kind", "Service"},
              {"metadata",
               {{"name", ObjectName(c)},
                {"namespace", c.namespace_name},
                {"labels", OwnerLabels(c)},
                {"annotations", {{kLabelSpecHash, c.spec_hash}}}}},
              {"spec", {{"type", "ClusterIP"}, {"selector", SelectorLabels(c)}, {"ports", list}}}};
}

Result<std::optional<json>> SecretManifest(const json& spec, const ManifestContext& c,
                                           const std::map<std::string, std::string>& values) {
  json data = json::object();
  const json& secret_env = Member(spec, "secretEnv");
  if (secret_env.is_object()) {
    for (const auto& [name, ref] : secret_env.items()) {
      auto it = values.find(name);
      if (it == values.end()) {
        return Status::Invalid("agent " + c.agent + ": secretEnv '" + name +
                               "' has no resolved value");
      }
      data[EnvKey(name)] = Base64(it->second);
    }
  }
  const json& files = Member(spec, "secretFiles");
  if (files.is_object()) {
    for (const auto& [name, f] : files.items()) {
      auto it = values.find(SecretFileValueKey(name));
      if (it == values.end()) {
        return Status::Invalid("agent " + c.agent + ": secretFiles '" + name +
                               "' has no resolved value");
      }
      data[FileKey(name)] = Base64(it->second);
    }
  }
  if (data.empty()) return std::optional<json>();
  return std::optional<json>(json{{"apiVersion", "v1"},
                                  {"kind", "Secret"},
                                  {"metadata",
                                   {{"name", SecretName(ObjectName(c))},
                                    {"namespace", c.namespace_name},
                                    {"labels", OwnerLabels(c)}}},
                                  {"type", "Opaque"},
                                  {"data", data}});
}

// --- managedFields ---------------------------------------------------------

namespace {

// The fields Kubernetes merges item by item, with the fields of their key.
std::vector<std::string> ListKeys(const std::string& field, const json& item) {
  if (field == "containers" || field == "env" || field == "volumes") return {"name"};
  if (field == "volumeMounts") return {"mountPath"};
  if (field == "ports") {
    if (item.is_object() && item.contains("containerPort")) return {"containerPort", "protocol"};
    return {"port", "protocol"};
  }
  return {};
}

// `path` and one more field: ".name", or "[\"a.b/c\"]" for a name holding
// '.', '[' or ']' (label keys).
std::string Join(const std::string& path, const std::string& name) {
  if (name.find_first_of(".[]") != std::string::npos) return path + "[\"" + name + "\"]";
  return path.empty() ? name : path + "." + name;
}

// "[name=web]" of a list item's key (an object of the key fields).
std::string KeyText(const json& key) {
  std::string out = "[";
  bool first = true;
  for (const auto& [k, v] : key.items()) {
    out += (first ? "" : ",") + k + "=" + Text(v);
    first = false;
  }
  return out + "]";
}

void Walk(const json& v, const std::string& path, std::map<std::string, json>& out) {
  if (v.is_object() && !v.empty()) {
    for (const auto& [k, child] : v.items()) {
      const std::string here = Join(path, k);
      std::vector<std::string> keys =
          ListKeys(k, child.is_array() && !child.empty() ? child[0] : json());
      if (child.is_array() && !keys.empty()) {
        for (const json& item : child) {
          json key = json::object();
          for (const std::string& name : keys) {
            if (item.contains(name)) key[name] = item[name];
          }
          Walk(item, here + KeyText(key), out);
        }
        continue;
      }
      Walk(child, here, out);
    }
    return;
  }
  out[path] = v;
}

void WalkFields(const json& f, const std::string& path, std::vector<std::string>& out) {
  if (!f.is_object()) return;
  bool leaf = true;
  for (const auto& [k, child] : f.items()) {
    if (k == ".") continue;
    leaf = false;
    if (k.rfind("f:", 0) == 0) {
      WalkFields(child, Join(path, k.substr(2)), out);
    } else if (k.rfind("k:", 0) == 0) {
      json key = json::parse(k.substr(2), nullptr, /*allow_exceptions=*/false);
      if (key.is_discarded() || !key.is_object()) continue;
      WalkFields(child, path + KeyText(key), out);
    } else if (k.rfind("v:", 0) == 0) {
      WalkFields(child, path + "[=" + k.substr(2) + "]", out);
    } else if (k.rfind("i:", 0) == 0) {
      WalkFields(child, path + "[" + k.substr(2) + "]", out);
    }
  }
  if (leaf && !path.empty()) out.push_back(path);
}

// The live value at a DesiredLeaves path; nullptr when absent.
const json* LiveAt(const json& live, const std::string& path) {
  const json* at = &live;
  size_t i = 0;
  while (i < path.size() && at) {
    if (path[i] == '.') ++i;
    if (path.compare(i, 2, "[\"") == 0) {
      size_t end = path.find("\"]", i + 2);
      if (end == std::string::npos) return nullptr;
      std::string name = path.substr(i + 2, end - i - 2);
      if (!at->is_object() || !at->contains(name)) return nullptr;
      at = &(*at)[name];
      i = end + 2;
      continue;
    }
    if (path[i] == '[') {
      size_t end = path.find(']', i);
      if (end == std::string::npos || !at->is_array()) return nullptr;
      // key fields "a=1,b=TCP"
      std::string inner = path.substr(i + 1, end - i - 1);
      const json* found = nullptr;
      for (const json& item : *at) {
        bool match = item.is_object();
        size_t p = 0;
        while (match && p < inner.size()) {
          size_t comma = inner.find(',', p);
          std::string pair =
              inner.substr(p, comma == std::string::npos ? std::string::npos : comma - p);
          size_t eq = pair.find('=');
          match = eq != std::string::npos && item.contains(pair.substr(0, eq)) &&
                  Text(item[pair.substr(0, eq)]) == pair.substr(eq + 1);
          p = comma == std::string::npos ? inner.size() : comma + 1;
        }
        if (match) {
          found = &item;
          break;
        }
      }
      at = found;
      i = end + 1;
      continue;
    }
    size_t end = path.find_first_of(".[", i);
    std::string name = path.substr(i, end == std::string::npos ? std::string::npos : end - i);
    if (!at->is_object() || !at->contains(name)) return nullptr;
    at = &(*at)[name];
    i = end == std::string::npos ? path.size() : end;
  }
  return at;
}

bool IsQuantityPath(const std::string& path) {
  for (const char* suffix : {".cpu", ".memory", ".sizeLimit"}) {
    std::string s = suffix;
    if (path.size() >= s.size() && path.compare(path.size() - s.size(), s.size(), s) == 0)
      return true;
  }
  return false;
}

// `path` and its ancestors ("a.b[k=v].c", "a.b[k=v]", "a.b", "a"): a
// manager that owns an atomic struct or list (spec.selector) owns its leaves.
std::vector<std::string> SelfAndAncestors(const std::string& path) {
  std::vector<std::string> out = {path};
  for (size_t i = path.size(); i-- > 1;) {
    if (path[i] == '.' || path[i] == '[') out.push_back(path.substr(0, i));
  }
  return out;
}

std::string Short(const json& v) {
  std::string s = v.is_string() ? v.get<std::string>() : v.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

}  // namespace

std::map<std::string, json> DesiredLeaves(const json& manifest) {
  std::map<std::string, json> out;
  json m = manifest;
  // Identity, not fields: apiVersion, kind, metadata.name / namespace.
  m.erase("apiVersion");
  m.erase("kind");
  if (m.contains("metadata")) {
    m["metadata"].erase("name");
    m["metadata"].erase("namespace");
  }
  Walk(m, "", out);
  return out;
}

std::vector<std::string> FieldsV1Leaves(const json& fields_v1) {
  std::vector<std::string> out;
  WalkFields(fields_v1, "", out);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> ManagedFieldDrift(const json& desired, const json& live,
                                           std::string_view manager) {
  std::set<std::string> ours;
  std::map<std::string, std::set<std::string>> others;
  const json& managed = Member(Member(live, "metadata"), "managedFields");
  if (managed.is_array()) {
    for (const json& entry : managed) {
      std::string who = Str(entry, "manager");
      if (Str(entry, "subresource") == "status") continue;
      std::vector<std::string> leaves = FieldsV1Leaves(Member(entry, "fieldsV1"));
      if (who == manager && Str(entry, "operation") == "Apply") {
        ours.insert(leaves.begin(), leaves.end());
      } else {
        for (const std::string& l : leaves) others[l].insert(who.empty() ? "(unnamed)" : who);
      }
    }
  }
  std::vector<std::string> out;
  for (const auto& [path, want] : DesiredLeaves(desired)) {
    const json* now = LiveAt(live, path);
    std::string wanted = Short(want);
    std::string have = now ? Short(*now) : "absent";
    bool owned = false;
    std::set<std::string> owners;
    for (const std::string& p : SelfAndAncestors(path)) {
      owned = owned || ours.count(p) > 0;
      if (auto it = others.find(p); it != others.end())
        owners.insert(it->second.begin(), it->second.end());
    }
    if (!owned) {
      std::string by;
      for (const std::string& m : owners) by += (by.empty() ? "" : ", ") + m;
      out.push_back(path + ": now managed by " + (by.empty() ? "no one" : by) + " (" + have +
                    "; reconcile applies " + wanted + ")");
      continue;
    }
    if (IsQuantityPath(path)) continue;
    if (!now || Text(*now) != Text(want) || now->type() != want.type()) {
      if (now && want.is_number() && now->is_number() && *now == want) continue;
      out.push_back(path + ": " + have + " (reconcile applies " + wanted + ")");
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

RolloutHealth DeploymentHealth(const json& d) {
  const json& status = Member(d, "status");
  std::int64_t generation = IntOr(Member(d, "metadata"), "generation", 0);
  std::int64_t observed = IntOr(status, "observedGeneration", 0);
  std::int64_t wanted = IntOr(Member(d, "spec"), "replicas", 1);
  std::int64_t updated = IntOr(status, "updatedReplicas", 0);
  std::int64_t available = IntOr(status, "availableReplicas", 0);
  std::int64_t total = IntOr(status, "replicas", 0);
  const json& conditions = Member(status, "conditions");
  if (conditions.is_array()) {
    for (const json& c : conditions) {
      if (Str(c, "type") == "Progressing" && Str(c, "status") == "False" &&
          Str(c, "reason") == "ProgressDeadlineExceeded") {
        return {"unhealthy", "rollout stalled: " + Str(c, "message")};
      }
    }
  }
  if (observed < generation) {
    return {"starting", "waiting for the deployment controller to observe generation " +
                            std::to_string(generation)};
  }
  if (updated < wanted) {
    return {"starting",
            std::to_string(updated) + " of " + std::to_string(wanted) + " replicas updated"};
  }
  if (total > updated) {
    return {"starting", std::to_string(total - updated) + " old replicas pending termination"};
  }
  if (available < wanted) {
    return {"starting", std::to_string(available) + " of " + std::to_string(wanted) +
                            " updated replicas available"};
  }
  return {"healthy",
          std::to_string(available) + " of " + std::to_string(wanted) + " replicas available"};
}

std::string ServiceAddress(const json& service) {
  const json& meta = Member(service, "metadata");
  const json& ports = Member(Member(service, "spec"), "ports");
  if (!ports.is_array() || ports.empty()) return "";
  std::string out = Str(meta, "name") + "." + Str(meta, "namespace") +
                    ".svc:" + std::to_string(IntOr(ports[0], "port", 0));
  std::string ip = Str(Member(service, "spec"), "clusterIP");
  if (!ip.empty()) out += " (clusterIP " + ip + ")";
  return out;
}

}  // namespace reconcile::kubernetes
