// The CLI commands. Each returns the process exit code (SPEC.md "CLI"):
// 0 ok / no changes, 2 changes or drift, 1 error. Output for people goes to
// stdout; logs and errors go through spdlog to stderr.
#pragma once

#include <string>

#include "reconcile/provider.h"
#include "session.h"

namespace reconcile::cli {

struct PlanFlags {
  bool json = false;
  std::string out;
  bool explain = false;
};

struct ApplyFlags {
  std::string plan_file;  // saved plan, or empty
  bool auto_approve = false;
  bool ignore_windows = false;  // apply --ignore-windows: deploy windows do not hold changes
  int parallelism = 4;
};

struct RollbackFlags {
  std::string to;  // history serial or revision; empty: the previous revision
  bool auto_approve = false;
  int parallelism = 4;
};

int CmdValidate(const GlobalOptions& g, const ProviderRegistry& registry);
int CmdSchema(const std::string& kind);
int CmdPlan(const GlobalOptions& g, const ProviderRegistry& registry, const PlanFlags& flags);
int CmdApply(const GlobalOptions& g, const ProviderRegistry& registry, const ApplyFlags& flags);
int CmdDestroy(const GlobalOptions& g, const ProviderRegistry& registry, const ApplyFlags& flags);
int CmdDrift(const GlobalOptions& g, const ProviderRegistry& registry, bool json);
int CmdStatus(const GlobalOptions& g, const ProviderRegistry& registry, bool json);
int CmdHistory(const GlobalOptions& g, bool json);
int CmdRollback(const GlobalOptions& g, const ProviderRegistry& registry,
                const RollbackFlags& flags);
int CmdShow(const std::string& plan_file, bool json);
int CmdUnlock(const GlobalOptions& g);

}  // namespace reconcile::cli
