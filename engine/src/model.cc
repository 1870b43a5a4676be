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
