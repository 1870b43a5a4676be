// `reconcile import compose FILE`: writes Agent, Target and Registry
// documents made from a Compose file (reconcile/compose_import.h) into a
// folder, or prints them (--dry-run). All or nothing: on any error, or when a
// file to write exists with other content, nothing is written.
#pragma once

#include <string>

#include "session.h"

namespace reconcile::cli {

struct ImportFlags {
  std::string file;      // the compose file
  std::string out;       // folder to write into; empty with dry_run
  bool dry_run = false;  // print the documents instead
  std::string target = "local";
  std::string project;       // empty: the file's name:, else its folder's name
  std::string agent_prefix;  // prepended to every agent name
};

int CmdImportCompose(const GlobalOptions& g, const ImportFlags& flags);

}  // namespace reconcile::cli
