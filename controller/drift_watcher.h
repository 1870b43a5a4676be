// DriftWatcher: the drift watches (Provider::WatchDrift) of one
// environment's tree: one per Target whose provider can watch (Docker), made
// from the Targets each pass read, and replaced when a Target's settings
// change. Every notice goes to `on_notice` (the Scheduler's DriftNotice).
//
// The watcher makes its own provider per Target (the passes make theirs);
// providers that cannot watch (the clouds) are noted once in `log` and
// left to the --drift-interval scan.
//
// Thread-safety: Update and StopAll may be called from any thread (one at a
// time is not required); `on_notice` is called from the watches' threads.
// After StopAll (or destruction) no notice arrives.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "reconcile/model.h"
#include "reconcile/provider.h"

namespace reconcile::controller {

class DriftWatcher {
 public:
  // `registry` must outlive this. `secrets_dir`: set on each Target before
  // its provider is made (as the Reconciler does). `log` (optional) gets a
  // line per Target started, replaced, stopped or left unwatched.
  DriftWatcher(const ProviderRegistry& registry, std::string secrets_dir, DriftNoticeFn on_notice,
               std::function<void(const std::string&)> log = {});
  ~DriftWatcher();

  // The Targets of the tree a pass read: starts the watches of new (or
  // changed) Targets, stops those of Targets no longer in the tree.
  void Update(const std::vector<Target>& targets);
  // Stops every watch; later Updates do nothing.
  void StopAll();
  // The names of the Targets watched now, sorted.
  std::vector<std::string> Watched() const;

 private:
  struct Entry {
    Target target;
    std::unique_ptr<Provider> provider;
    std::unique_ptr<DriftWatch> watch;  // null: the provider cannot watch
  };

  const ProviderRegistry& registry_;
  const std::string secrets_dir_;
  const DriftNoticeFn on_notice_;
  const std::function<void(const std::string&)> log_;
  mutable std::mutex mu_;
  bool stopped_ = false;                  // guarded by mu_
  std::map<std::string, Entry> entries_;  // by Target name; guarded by mu_
};

}  // namespace reconcile::controller
