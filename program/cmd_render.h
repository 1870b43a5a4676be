// `reconcile render [--json]`: prints the documents a tree is made from, an
// Environment's merged with its patches, labels and env (like `kustomize
// build`): YAML documents separated by "---", or a JSON array with --json;
// sorted Registry, Target, Agent, then by name, map keys sorted. The output
// loads again as a plain tree giving the same resources. Exit 0, or 1 with
// the load errors.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reconcile/provider.h"
#include "session.h"

namespace reconcile::cli {

// `documents` as YAML: block style, strings double-quoted (JSON escapes),
// keys bare when they are plain words; "---" before every document.
std::string RenderYaml(const std::vector<nlohmann::json>& documents);

int CmdRender(const GlobalOptions& g, const ProviderRegistry& registry, bool json);

}  // namespace reconcile::cli
