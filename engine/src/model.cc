#include "reconcile/model.h"

#include <algorithm>

namespace reconcile {
namespace {

template <typename T>
const T* FindByName(const std::vector<T>& items, const std::string& name) {
  // The loader sorts by name: a binary search finds it (a pass looks up
  // every agent). A vector built unsorted by hand is still searched whole.
  size_t lo = 0, hi = items.size();
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int cmp = items[mid].name.compare(name);
    if (cmp == 0) return &items[mid];
    if (cmp < 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  auto it = std::find_if(items.begin(), items.end(), [&](const T& t) { return t.name == name; });
  return it == items.end() ? nullptr : &*it;
}

}  // namespace

std::string SecretRefText(const SecretRef& ref) {
  std::string query;
  auto param = [&](const char* name, const std::string& value) {
    if (value.empty()) return;
    query += (query.empty() ? "?" : "&") + std::string(name) + "=" + value;
  };
  switch (ref.source) {
    case SecretRef::Source::kFile:
      return "file:" + ref.name;
    case SecretRef::Source::kEnv:
      return "env:" + ref.name;
    case SecretRef::Source::kAws:
      param("key", ref.key);
      param("region", ref.region);
      param("versionId", ref.version);
      param("versionStage", ref.version_stage);
      return "aws:" + ref.name + query;
    case SecretRef::Source::kVault:
      param("key", ref.key);
      param("version", ref.version);
      return "vault:" + ref.mount + "/" + ref.name + query;
    case SecretRef::Source::kSops:
      param("key", ref.key);
      return "sops:" + ref.name + query;
  }
  return "";
}

std::optional<SecretRef> ParseSecretRefText(const std::string& text) {
  SecretRef ref;
  std::string rest;
  if (text.starts_with("file:")) {
    ref.source = SecretRef::Source::kFile;
    ref.name = text.substr(5);
    return ref;
  }
  if (text.starts_with("env:")) {
    ref.source = SecretRef::Source::kEnv;
    ref.name = text.substr(4);
    return ref;
  }
  if (text.starts_with("aws:")) {
    ref.source = SecretRef::Source::kAws;
    rest = text.substr(4);
  } else if (text.starts_with("vault:")) {
    ref.source = SecretRef::Source::kVault;
    rest = text.substr(6);
  } else if (text.starts_with("sops:")) {
    ref.source = SecretRef::Source::kSops;
    rest = text.substr(5);
  } else {
    return std::nullopt;
  }
  const size_t q = rest.find('?');
  std::string head = rest.substr(0, q);
  if (q != std::string::npos) {
    std::string query = rest.substr(q + 1);
    size_t start = 0;
    while (start <= query.size()) {
      size_t end = query.find('&', start);
      if (end == std::string::npos) end = query.size();
      std::string item = query.substr(start, end - start);
      size_t eq = item.find('=');
      if (eq == std::string::npos || eq + 1 == item.size()) return std::nullopt;
      std::string name = item.substr(0, eq), value = item.substr(eq + 1);
      std::string* slot = nullptr;
      if (name == "key") slot = &ref.key;
      if (ref.source == SecretRef::Source::kAws) {
        if (name == "region") slot = &ref.region;
        if (name == "versionId") slot = &ref.version;
        if (name == "versionStage") slot = &ref.version_stage;
      } else if (ref.source == SecretRef::Source::kVault && name == "version") {
        slot = &ref.version;
      }
      if (slot == nullptr || !slot->empty()) return std::nullopt;
      *slot = value;
      start = end + 1;
    }
  }
  if (ref.source == SecretRef::Source::kVault) {
    const size_t slash = head.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == head.size()) return std::nullopt;
    ref.mount = head.substr(0, slash);
    ref.name = head.substr(slash + 1);
  } else {
    ref.name = head;
  }
  if (ref.source == SecretRef::Source::kSops && ref.key.empty()) return std::nullopt;
  if (ref.name.empty() || SecretRefText(ref) != text) return std::nullopt;
  return ref;
}

const Agent* DesiredState::FindAgent(const std::string& name) const {
  return FindByName(agents, name);
}
const Registry* DesiredState::FindRegistry(const std::string& name) const {
  return FindByName(registries, name);
}
const Target* DesiredState::FindTarget(const std::string& name) const {
  return FindByName(targets, name);
}

const char* StrategyTypeName(StrategyType t) {
  switch (t) {
    case StrategyType::kRecreate:
      return "recreate";
    case StrategyType::kStartFirst:
      return "start-first";
  }
  return "recreate";
}

const char* DriftModeName(DriftMode m) {
  switch (m) {
    case DriftMode::kReport:
      return "report";
    case DriftMode::kHeal:
      return "heal";
  }
  return "report";
}

const char* TagStrategyName(TagStrategy t) {
  switch (t) {
    case TagStrategy::kGitSha:
      return "git-sha";
    case TagStrategy::kSemver:
      return "semver";
    case TagStrategy::kTimestamp:
      return "timestamp";
    case TagStrategy::kCustom:
      return "custom";
  }
  return "git-sha";
}

const char* VolumeTypeName(VolumeMount::Type t) {
  switch (t) {
    case VolumeMount::Type::kVolume:
      return "volume";
    case VolumeMount::Type::kBind:
      return "bind";
    case VolumeMount::Type::kTmpfs:
      return "tmpfs";
  }
  return "volume";
}

const char* ReclaimName(VolumeMount::Reclaim r) {
  return r == VolumeMount::Reclaim::kDelete ? "delete" : "retain";
}

const char* WindowKindName(DeployWindow::Kind k) {
  return k == DeployWindow::Kind::kAllow ? "allow" : "deny";
}

const char* NotifierTypeName(Notifier::Type t) {
  switch (t) {
    case Notifier::Type::kSlack:
      return "slack";
    case Notifier::Type::kWebhook:
      return "webhook";
    case Notifier::Type::kGithub:
      return "github";
    case Notifier::Type::kGitlab:
      return "gitlab";
  }
  return "slack";
}

}  // namespace reconcile
