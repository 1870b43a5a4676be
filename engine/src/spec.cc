#include "reconcile/spec.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstdint>
#include <optional>

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
    secrets[name] = (ref.source == SecretRef::Source::kFile ? "file:" : "env:") + ref.name;
  }
  spec["secretEnv"] = secrets;
  spec["replicas"] = agent.replicas;
  json resources = json::object();
  if (!agent.resources.cpu.empty()) resources["cpu"] = agent.resources.cpu;
  if (!agent.resources.memory.empty()) resources["memory"] = agent.resources.memory;
  spec["resources"] = resources;
  if (agent.health_check) {
    const HealthCheck& h = *agent.health_check;
    spec["healthCheck"] = {{"path", h.path},
                           {"port", h.port == 0 ? agent.port : h.port},
                           {"interval", FormatDuration(h.interval_ms)},
                           {"timeout", FormatDuration(h.timeout_ms)},
                           {"retries", h.retries},
                           {"startPeriod", FormatDuration(h.start_period_ms)}};
  } else {
    spec["healthCheck"] = nullptr;
  }
  spec["strategy"] = {{"type", StrategyTypeName(agent.strategy.type)},
                      {"autoRollback", agent.strategy.auto_rollback}};
  spec["labels"] = agent.labels;
  spec["target"] = agent.target;
  return spec;
}

std::string Sha256Hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xf]);
  }
  return out;
}

std::string SpecHash(const json& spec) { return "sha256:" + Sha256Hex(spec.dump()); }

}  // namespace reconcile
