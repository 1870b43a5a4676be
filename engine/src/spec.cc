#include "reconcile/spec.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "reconcile/image_tag.h"

namespace reconcile {

using nlohmann::json;

std::string ResolveImage(const Agent& agent, const Registry* registry,
                         const std::string& revision) {
  if (!agent.build || registry == nullptr) return agent.image;
  TagFacts facts;
  facts.revision = revision;
  facts.git = revision.rfind("tree-", 0) != 0;
  Result<std::string> tag = ImageTag(agent, *registry, facts);
  if (tag.ok()) return ImageReference(*registry, *tag);
  return ImageReference(*registry,
                        IsValidTag(revision.substr(0, 12)) ? revision.substr(0, 12) : "latest");
}

std::string FormatDuration(std::int64_t ms) {
  if (ms != 0 && ms % 3600000 == 0) return std::to_string(ms / 3600000) + "h";
  if (ms != 0 && ms % 60000 == 0) return std::to_string(ms / 60000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

std::optional<std::int64_t> ParseDuration(const std::string& text) {
  static const std::pair<const char*, std::int64_t> kUnits[] = {
      {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0 || digits > 12) return std::nullopt;
  std::string unit = text.substr(digits);
  for (const auto& [name, factor] : kUnits) {
    if (unit == name) return std::stoll(text.substr(0, digits)) * factor;
  }
  return std::nullopt;
}

json NormalizedSpec(const Agent& agent, const std::string& image) {
  json spec = json::object();
  spec["image"] = image;
  spec["port"] = agent.port;
  spec["hostPort"] = agent.host_port;
  spec["command"] = agent.command;
  spec["args"] = agent.args;
  spec["env"] = agent.env;
  json secrets = json::object();
  for (const auto& [name, ref] : agent.secret_env) {
    secrets[name] = SecretRefText(ref);
  }
  spec["secretEnv"] = secrets;
  if (!agent.secret_digests.empty()) {
    // Keyed fingerprints of the values (never the values), so that a new
    // value is a new spec hash: {secretEnv: {NAME: d}, secretFiles: {NAME: d}}.
    json digests = json::object();
    const std::string files_prefix = "secretFiles.";  // provider.h SecretFileValueKey
    for (const auto& [key, digest] : agent.secret_digests) {
      if (key.starts_with(files_prefix)) {
        digests["secretFiles"][key.substr(files_prefix.size())] = digest;
      } else {
        digests["secretEnv"][key] = digest;
      }
    }
    spec["secretDigests"] = std::move(digests);
  }
  if (!agent.publish) spec["publish"] = false;
  if (!agent.secret_files.empty()) {
    json files = json::object();  // by NAME; the reference, never the value
    for (const auto& [name, f] : agent.secret_files) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(f.mode & 0777));
      files[name] = {{"ref", SecretRefText(f.ref)}, {"target", f.target}, {"mode", mode}};
    }
    spec["secretFiles"] = std::move(files);
  }
  if (!agent.networks.empty()) {
    json networks = json::object();  // by name
    for (const NetworkAttachment& n : agent.networks) networks[n.name] = {{"aliases", n.aliases}};
    spec["networks"] = std::move(networks);
  }
  // Fields added after v0.1 appear only when set, so that the spec hash of
  // an agent that does not use them stays what it was (no needless replace).
  if (!agent.volumes.empty()) {
    json volumes = json::object();  // by target: a plan names the mount point
    for (const VolumeMount& v : agent.volumes) {
      json m = {{"type", VolumeTypeName(v.type)}, {"readOnly", v.read_only}};
      if (!v.source.empty()) m["source"] = v.source;
      if (v.type == VolumeMount::Type::kVolume) m["reclaim"] = ReclaimName(v.reclaim);
      if (!v.size.empty()) m["size"] = v.size;
      volumes[v.target] = std::move(m);
    }
    spec["volumes"] = std::move(volumes);
  }
  if (!agent.ports.empty()) {
    json ports = json::object();  // by "<containerPort>/<protocol>"
    for (const PortMapping& p : agent.ports) {
      json m = {{"hostPort", p.host_port}};
      if (!p.host_ip.empty()) m["hostIP"] = p.host_ip;
      if (!p.publish) m["publish"] = false;
      ports[std::to_string(p.container_port) + "/" + p.protocol] = std::move(m);
    }
    spec["ports"] = std::move(ports);
  }
  spec["replicas"] = agent.replicas;
  if (!agent.restart.empty()) spec["restart"] = agent.restart;
  if (!agent.stop_signal.empty()) spec["stopSignal"] = agent.stop_signal;
  if (agent.stop_grace_period_ms) {
    spec["stopGracePeriod"] = FormatDuration(*agent.stop_grace_period_ms);
  }
  if (!agent.user.empty()) spec["user"] = agent.user;
  if (!agent.cap_add.empty()) spec["capAdd"] = agent.cap_add;
  if (!agent.cap_drop.empty()) spec["capDrop"] = agent.cap_drop;
  if (agent.read_only_root_filesystem) spec["readOnlyRootFilesystem"] = true;
  if (!agent.hostname.empty()) spec["hostname"] = agent.hostname;
  json resources = json::object();
  if (!agent.resources.cpu.empty()) resources["cpu"] = agent.resources.cpu;
  if (!agent.resources.memory.empty()) resources["memory"] = agent.resources.memory;
  if (agent.resources.gpus == "all") {
    resources["gpus"] = "all";
  } else if (!agent.resources.gpus.empty()) {
    resources["gpus"] = std::stoi(agent.resources.gpus);
  }
  spec["resources"] = resources;
  if (agent.health_check) {
    const HealthCheck& h = *agent.health_check;
    json check = {{"interval", FormatDuration(h.interval_ms)},
                  {"timeout", FormatDuration(h.timeout_ms)},
                  {"retries", h.retries},
                  {"startPeriod", FormatDuration(h.start_period_ms)}};
    switch (h.kind) {
      case HealthCheck::Kind::kHttp:
        check["path"] = h.path;
        check["port"] = h.port == 0 ? agent.port : h.port;
        break;
      case HealthCheck::Kind::kExec:
        check["exec"] = h.exec;
        break;
      case HealthCheck::Kind::kTcp:
        check["tcp"] = h.port;
        break;
    }
    spec["healthCheck"] = std::move(check);
  } else {
    spec["healthCheck"] = nullptr;
  }
  spec["strategy"] = {{"type", StrategyTypeName(agent.strategy.type)},
                      {"autoRollback", agent.strategy.auto_rollback}};
  json labels = agent.labels;  // metadata.labels, then spec.labels (the loader checks they agree)
  for (const auto& [k, v] : agent.container_labels) labels[k] = v;
  spec["labels"] = std::move(labels);
  spec["target"] = agent.target;
  return spec;
}

namespace {

void AgentFromSpecUnchecked(const json& spec, Agent& a) {
  a.image = spec.at("image").get<std::string>();
  a.port = spec.at("port").get<int>();
  a.host_port = spec.at("hostPort").get<int>();
  a.command = spec.at("command").get<std::vector<std::string>>();
  a.args = spec.at("args").get<std::vector<std::string>>();
  a.env = spec.at("env").get<std::map<std::string, std::string>>();
  for (const auto& [name, ref] : spec.at("secretEnv").items()) {
    std::optional<SecretRef> r = ParseSecretRefText(ref.get<std::string>());
    if (!r) throw std::invalid_argument("secretEnv." + name + ": not a secret reference");
    a.secret_env[name] = *r;
  }
  if (spec.contains("secretDigests")) {
    const json& digests = spec.at("secretDigests");
    if (digests.contains("secretEnv")) {
      for (const auto& [name, d] : digests.at("secretEnv").items()) {
        a.secret_digests[name] = d.get<std::string>();
      }
    }
    if (digests.contains("secretFiles")) {
      for (const auto& [name, d] : digests.at("secretFiles").items()) {
        a.secret_digests["secretFiles." + name] = d.get<std::string>();
      }
    }
  }
  if (spec.contains("publish")) a.publish = spec.at("publish").get<bool>();
  if (spec.contains("secretFiles")) {
    for (const auto& [name, f] : spec.at("secretFiles").items()) {
      SecretFile file;
      std::optional<SecretRef> ref = ParseSecretRefText(f.at("ref").get<std::string>());
      if (!ref) throw std::invalid_argument("secretFiles." + name + ": not a secret reference");
      file.ref = *ref;
      file.target = f.at("target").get<std::string>();
      file.mode = std::stoi(f.at("mode").get<std::string>(), nullptr, 8);
      a.secret_files[name] = file;
    }
  }
  if (spec.contains("networks")) {
    for (const auto& [name, n] : spec.at("networks").items()) {
      a.networks.push_back({name, n.at("aliases").get<std::vector<std::string>>()});
    }
  }
  if (spec.contains("volumes")) {
    for (const auto& [target, m] : spec.at("volumes").items()) {
      VolumeMount v;
      const std::string type = m.at("type").get<std::string>();
      if (type == VolumeTypeName(VolumeMount::Type::kBind)) {
        v.type = VolumeMount::Type::kBind;
      } else if (type == VolumeTypeName(VolumeMount::Type::kTmpfs)) {
        v.type = VolumeMount::Type::kTmpfs;
      } else if (type != VolumeTypeName(VolumeMount::Type::kVolume)) {
        throw std::invalid_argument("volumes." + target + ".type: unknown '" + type + "'");
      }
      v.target = target;
      v.source = m.value("source", "");
      v.read_only = m.at("readOnly").get<bool>();
      if (m.value("reclaim", "") == ReclaimName(VolumeMount::Reclaim::kDelete)) {
        v.reclaim = VolumeMount::Reclaim::kDelete;
      }
      v.size = m.value("size", "");
      a.volumes.push_back(std::move(v));  // items() is sorted by target
    }
  }
  if (spec.contains("ports")) {
    for (const auto& [key, m] : spec.at("ports").items()) {
      PortMapping p;
      const size_t slash = key.find('/');
      if (slash == std::string::npos) throw std::invalid_argument("ports." + key + ": no protocol");
      p.container_port = std::stoi(key.substr(0, slash));
      p.protocol = key.substr(slash + 1);
      p.host_port = m.at("hostPort").get<int>();
      p.host_ip = m.value("hostIP", "");
      p.publish = m.value("publish", true);
      a.ports.push_back(std::move(p));
    }
    std::sort(a.ports.begin(), a.ports.end(), [](const PortMapping& x, const PortMapping& y) {
      return std::tie(x.container_port, x.protocol) < std::tie(y.container_port, y.protocol);
    });
  }
  a.replicas = spec.at("replicas").get<int>();
  const json& resources = spec.at("resources");
  a.resources.cpu = resources.value("cpu", "");
  a.resources.memory = resources.value("memory", "");
  if (resources.contains("gpus")) {
    const json& g = resources["gpus"];
    a.resources.gpus = g.is_string() ? g.get<std::string>() : std::to_string(g.get<int>());
  }
  a.restart = spec.value("restart", "");
  a.stop_signal = spec.value("stopSignal", "");
  if (spec.contains("stopGracePeriod")) {
    a.stop_grace_period_ms = ParseDuration(spec["stopGracePeriod"].get<std::string>());
    if (!a.stop_grace_period_ms) throw std::invalid_argument("stopGracePeriod: bad duration");
  }
  a.user = spec.value("user", "");
  a.cap_add = spec.value("capAdd", std::vector<std::string>{});
  a.cap_drop = spec.value("capDrop", std::vector<std::string>{});
  a.read_only_root_filesystem = spec.value("readOnlyRootFilesystem", false);
  a.hostname = spec.value("hostname", "");
  const json& h = spec.at("healthCheck");
  if (!h.is_null()) {
    HealthCheck hc;
    if (h.contains("exec")) {
      hc.kind = HealthCheck::Kind::kExec;
      hc.exec = h["exec"].get<std::vector<std::string>>();
    } else if (h.contains("tcp")) {
      hc.kind = HealthCheck::Kind::kTcp;
      hc.port = h["tcp"].get<int>();
    } else {
      hc.path = h.at("path").get<std::string>();
      hc.port = h.at("port").get<int>();
    }
    auto duration = [&h](const char* key) {
      std::optional<std::int64_t> ms = ParseDuration(h.at(key).get<std::string>());
      if (!ms) throw std::invalid_argument(std::string("healthCheck.") + key + ": bad duration");
      return *ms;
    };
    hc.interval_ms = duration("interval");
    hc.timeout_ms = duration("timeout");
    hc.start_period_ms = duration("startPeriod");
    hc.retries = h.at("retries").get<int>();
    a.health_check = hc;
  }
  const json& strategy = spec.at("strategy");
  const std::string type = strategy.at("type").get<std::string>();
  if (type == StrategyTypeName(StrategyType::kStartFirst)) {
    a.strategy.type = StrategyType::kStartFirst;
  } else if (type != StrategyTypeName(StrategyType::kRecreate)) {
    throw std::invalid_argument("strategy.type: unknown '" + type + "'");
  }
  a.strategy.auto_rollback = strategy.at("autoRollback").get<bool>();
  a.labels = spec.at("labels").get<std::map<std::string, std::string>>();
  a.target = spec.at("target").get<std::string>();
}

}  // namespace

Result<Agent> AgentFromSpec(const std::string& name, const json& spec) {
  Agent a;
  a.name = name;
  try {
    if (!spec.is_object()) throw std::invalid_argument("not an object");
    AgentFromSpecUnchecked(spec, a);
  } catch (const std::exception& e) {
    return Status::Invalid("the recorded spec of agent '" + name +
                           "' cannot be re-applied: " + e.what());
  }
  if (NormalizedSpec(a, a.image) != spec) {
    return Status::Invalid("the recorded spec of agent '" + name +
                           "' holds fields this version of reconcile does not write; it "
                           "cannot be re-applied exactly");
  }
  return a;
}

namespace {

const EVP_MD* Sha256Md() {
  // Fetched once: an implicit fetch per call costs a lookup in OpenSSL's
  // provider tables (a tenth of a 10,000-agent plan).
  static EVP_MD* const kSha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return kSha256 ? kSha256 : EVP_sha256();
}

}  // namespace

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, Sha256Md(), nullptr); }
Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }
void Sha256::Update(std::string_view data) { EVP_DigestUpdate(ctx_, data.data(), data.size()); }
void Sha256::UpdateField(std::string_view data) {
  Update(data);
  EVP_DigestUpdate(ctx_, "\0", 1);
}
std::string Sha256::HexDigest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_, digest, &len);
  return HexBytes(digest, len);
}

std::string Sha256Hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, Sha256Md(), nullptr);
  return HexBytes(digest, len);
}

std::string HexBytes(const unsigned char* data, std::size_t n) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(kHex[data[i] >> 4]);
    out.push_back(kHex[data[i] & 0xf]);
  }
  return out;
}

std::string HmacSha256Hex(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  return HexBytes(mac, len);
}

std::string SpecHash(const json& spec) { return "sha256:" + Sha256Hex(spec.dump()); }

const SpecMemo::Value& MemoizedSpec(const Agent& agent) {
  return agent.spec_memo.Get(
      [&] { return SpecMemo::Value{SpecHash(NormalizedSpec(agent, agent.image))}; });
}

}  // namespace reconcile
