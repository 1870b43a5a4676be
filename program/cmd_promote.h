// `reconcile promote --from ENV --to ENV [--agent NAME]... [--commit]
// [--push]`: writes into the target environment's promoted.yaml the image
// digests the source environment runs (reconcile/promotion.h decides), after
// checking the source (last pass, revision, health, drift, digests). Prints
// the unified diff of the file; with --commit commits it on the checkout's
// current branch, with --push pushes that branch. Refusals change nothing.
#pragma once

#include <string>
#include <vector>

#include "reconcile/provider.h"
#include "session.h"

namespace reconcile::cli {

struct PromoteFlags {
  std::string from;
  std::string to;
  std::vector<std::string> agents;  // --agent; empty: every agent of --from
  bool commit = false;
  bool push = false;  // implies commit
};

int CmdPromote(const GlobalOptions& g, const ProviderRegistry& registry, const PromoteFlags& flags);

// A unified diff (3 lines of context) turning `before` into `after`, with
// `---`/`+++` headers naming `path`; empty when they are equal.
std::string UnifiedDiff(const std::string& path, const std::string& before,
                        const std::string& after);

}  // namespace reconcile::cli
