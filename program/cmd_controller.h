// `reconcile controller`: follow a branch, take webhooks, heal drift.
#pragma once

#include <string>
#include <vector>

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
  // The status page (GET /, GET /events): "on" or "off"; a token file
  // makes it and /api/v1/status need the token.
  std::string status_page = "on";
  std::string status_token_file;
  std::string approval_token_file;  // POST /api/v1/plans/<id>/approve needs it
  int parallelism = 4;
  int max_retries = 5;
  int heal_budget = 3;
  // Follow the providers' drift watches (the Docker Engine's event stream):
  // a change made by hand runs a drift pass at once.
  bool watch_events = true;
  // Several environments of one repository, one fetch for all:
  // --path (repeatable) and --environments DIR (every folder below DIR whose
  // top-level YAML holds an Environment document, found again at each new
  // revision).
  std::vector<std::string> paths;
  std::string environments_dir;
  // Leader election on a Lease (controller/leader_election.h).
  bool leader_elect = false;
  std::string lease_duration = "15s";
  std::string renew_deadline = "10s";
  std::string retry_period = "2s";
  std::string lease_name = "reconcile-controller";
  std::string lease_namespace;  // "" = the config's namespace (in-cluster), else default
  std::string identity;         // "" = $POD_NAME, else hostname_pid
  std::string kubeconfig;       // "" = client-go's rules
};

// Runs until SIGTERM/SIGINT; returns the exit code (0 after a clean stop).
int CmdController(const GlobalOptions& g, const ProviderRegistry& registry,
                  const ControllerFlags& flags);

}  // namespace reconcile::cli
