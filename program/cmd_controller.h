// `reconcile controller`: follow a branch, take webhooks, heal drift.
#pragma once

#include <string>

#include "reconcile/provider.h"
#include "session.h"

namespace reconcile::cli {

struct ControllerFlags {
  std::string repo;    // folder or Git URL (default: --source)
  std::string branch;  // default: --ref, else main
  std::string listen = "127.0.0.1:8080";
  std::string interval = "30s";
  std::string drift_interval = "5m";
  std::string grace = "30s";
  std::string webhook_secret_file;
  int parallelism = 4;
  int max_retries = 5;
  int heal_budget = 3;
};

// Runs until SIGTERM/SIGINT; returns the exit code (0 after a clean stop).
int CmdController(const GlobalOptions& g, const ProviderRegistry& registry,
                  const ControllerFlags& flags);

}  // namespace reconcile::cli
