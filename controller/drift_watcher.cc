#include "drift_watcher.h"

#include <utility>

namespace reconcile::controller {

namespace {

bool SameTarget(const Target& a, const Target& b) {
  return a.provider == b.provider && a.settings == b.settings && a.environment == b.environment;
}

}  // namespace

DriftWatcher::DriftWatcher(const ProviderRegistry& registry, std::string secrets_dir,
                           DriftNoticeFn on_notice, std::function<void(const std::string&)> log)
    : registry_(registry),
      secrets_dir_(std::move(secrets_dir)),
      on_notice_(std::move(on_notice)),
      log_(std::move(log)) {}

DriftWatcher::~DriftWatcher() { StopAll(); }

void DriftWatcher::Update(const std::vector<Target>& targets) {
  std::map<std::string, Entry> old;
  std::vector<std::string> lines;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    std::map<std::string, Entry> next;
    for (const Target& given : targets) {
      auto it = entries_.find(given.name);
      if (it != entries_.end() && SameTarget(it->second.target, given)) {
        next.emplace(given.name, std::move(it->second));
        entries_.erase(it);
        continue;
      }
      Entry e;
      e.target = given;
      e.target.secrets_dir = secrets_dir_;
      auto provider = registry_.Create(e.target);
      if (!provider.ok()) {
        lines.push_back("drift watch: target " + given.name + ": " + provider.status().message() +
                        "; drift is found at --drift-interval");
      } else {
        e.provider = std::move(*provider);
        e.watch = e.provider->WatchDrift(on_notice_);
        lines.push_back(e.watch ? "drift watch: target " + given.name + " (" + given.provider +
                                      "): following its events"
                                : "drift watch: target " + given.name + " (" + given.provider +
                                      "): no event feed; drift is found at --drift-interval");
      }
      next.emplace(given.name, std::move(e));
    }
    for (const auto& [name, e] : entries_) {
      if (e.watch) lines.push_back("drift watch: target " + name + ": no longer in the tree");
    }
    old = std::exchange(entries_, std::move(next));
  }
  old.clear();  // stops the watches of removed or changed Targets, outside the lock
  if (log_) {
    for (const std::string& line : lines) log_(line);
  }
}

void DriftWatcher::StopAll() {
  std::map<std::string, Entry> old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    old = std::move(entries_);
    entries_.clear();
  }
}

std::vector<std::string> DriftWatcher::Watched() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& [name, e] : entries_) {
    if (e.watch) out.push_back(name);
  }
  return out;
}

}  // namespace reconcile::controller
