// Session: the stages of one CLI run, wired together: load the desired tree,
// open the state store, create providers for the targets, observe, plan.
// Each function returns a Status; the commands (commands.cc) decide on exit
// codes and rendering. Not thread-safe; one per run.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "reconcile/loader.h"
#include "reconcile/plan.h"
#include "reconcile/planner.h"
#include "reconcile/provider.h"
#include "reconcile/state_store.h"

namespace reconcile::cli {

struct GlobalOptions {
  std::string source = ".";  // desired-state folder
  std::string state_dir;     // default: <source>/.reconcile
  std::string secrets_dir;   // default: <state dir>/secrets
  std::string log_format = "text";
  int verbosity = 0;
  bool no_color = false;
};

class Session {
 public:
  Session(GlobalOptions options, const ProviderRegistry* registry);

  // Loads and validates the tree; prints diagnostics through spdlog on error.
  Status LoadDesired();
  // Reads the recorded state (again, when called after taking the lock).
  Status LoadState();
  // Creates a provider for every Target named by desired agents or by recorded
  // resources, and observes each of them.
  Status Observe();
  Plan MakePlan() const;

  const GlobalOptions& options() const { return options_; }
  const DesiredState& desired() const { return desired_; }
  const State& recorded() const { return recorded_; }
  StateStore& store() { return *store_; }  // created by the constructor
  const std::map<std::string, ObserveResponse>& observed() const { return observed_; }
  std::filesystem::path secrets_dir() const;
  Provider* provider_for(const std::string& target);
  const Target* target_for(const std::string& target) const;

 private:
  GlobalOptions options_;
  const ProviderRegistry* registry_;
  DesiredState desired_;
  State recorded_;
  std::unique_ptr<StateStore> store_;
  std::map<std::string, std::unique_ptr<Provider>> providers_;
  std::map<std::string, ObserveResponse> observed_;
};

}  // namespace reconcile::cli
