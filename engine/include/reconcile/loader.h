// Loader: reads a desired-state tree (every *.yaml / *.yml below a folder,
// several documents per file) into a DesiredState, strictly.
//
// Loading is all-or-nothing: every problem in the tree is collected into
// Diagnostics with file:line:column and field, and when there is any error
// the returned state must not be used. Checks: YAML syntax, unknown fields,
// wrong types, missing required fields, bad values (names, ports, durations),
// duplicate names per kind, references to a missing Registry/Target/Agent,
// dependsOn cycles, build contexts escaping the tree, secrets written in plain
// text, and the hostile-input limits of SPEC.md (file size, nesting depth,
// alias expansion, symlinks out of the tree, non-UTF-8, NUL bytes).
//
// This is the one adapter that wraps yaml-cpp: no yaml-cpp type or exception
// leaves loader.cc. Thread-safe (no shared state).
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

#include "reconcile/diagnostic.h"
#include "reconcile/model.h"

namespace reconcile {

struct LoadLimits {
  std::size_t max_file_bytes = 4 * 1024 * 1024;
  int max_depth = 64;
  std::size_t max_alias_nodes = 10000;
};

struct LoadResult {
  DesiredState state;  // valid only when !diagnostics.HasErrors()
  Diagnostics diagnostics;
};

// Loads the tree at `root`. state.revision is "tree-<first 12 hex of sha256>"
// over the sorted (relative path, content) of the manifest files. Diagnostic
// file names are relative to `root`.
LoadResult LoadTree(const std::filesystem::path& root, const LoadLimits& limits = {});

// Decodes the documents of one file's content (used by LoadTree and tests).
// `file` is the name used in diagnostics; `manifest_dir` is the file's folder
// relative to the tree root. Does not run the cross-document checks.
void DecodeFile(const std::string& file, const std::string& manifest_dir,
                const std::string& content, const LoadLimits& limits, DesiredState& out,
                Diagnostics& diagnostics);

// Cross-document checks over a fully decoded state: duplicate names,
// references, dependsOn cycles, build contexts inside `root`. Sorts the
// state's vectors by name.
void ValidateState(const std::filesystem::path& root, DesiredState& state,
                   Diagnostics& diagnostics);

}  // namespace reconcile
