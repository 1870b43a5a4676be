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
//
// A tree can come from a folder (LoadTree) or from memory (LoadFiles, e.g. a
// Git commit); both run the same checks. DecodeOne + Assemble let a caller
// cache the decoding of unchanged files between loads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "reconcile/diagnostic.h"
#include "reconcile/model.h"

namespace reconcile {

class ProviderRegistry;  // provider.h

struct LoadLimits {
  std::size_t max_file_bytes = 4 * 1024 * 1024;
  int max_depth = 64;
  std::size_t max_alias_nodes = 10000;
  // Operator policy, not a size limit: host folders that Agents may bind-mount
  // (spec.volumes[].type bind; `--allow-bind PATH`). Absolute, normalized
  // paths; a bind source must be one of them or lie below one. Empty: no bind
  // mount is allowed. Checked lexically (the engine may run on another host).
  std::vector<std::string> allowed_bind_paths;
  // The providers that validate Target blocks and the agents on them
  // (provider.h: validate_target, validate_agent), and whose names
  // spec.provider may take. nullptr: any well-formed provider name, blocks
  // taken as written, no provider checks (for tests of the loader alone).
  const ProviderRegistry* providers = nullptr;
  // Keep the documents the tree was made from, merged (LoadResult::documents,
  // for `reconcile render`). Filled by LoadFiles, LoadEnvironment and
  // LoadPath; not by Assemble.
  bool keep_documents = false;
};

struct LoadResult {
  DesiredState state;  // valid only when !diagnostics.HasErrors()
  Diagnostics diagnostics;
  // With LoadLimits::keep_documents: every Agent, Registry and Target
  // document as JSON (YAML's core schema types), an Environment's merged
  // with its patches, labels and env; build.context rewritten relative to
  // the tree root. Sorted Registry, Target, Agent, then by name.
  std::vector<nlohmann::json> documents;
};

// One manifest file of a tree, already read (from a folder, or from a Git
// object database).
struct TreeFile {
  std::string rel;      // relative to the tree root, '/'-separated
  std::string content;  // the file's bytes; empty when too large (see size)
  // The file's size as its store reports it. When it is over
  // limits.max_file_bytes the content need not be read: the file is
  // reported as too large. 0: content.size().
  std::uintmax_t size = 0;
};

// `documents` sorted as LoadResult::documents are.
void SortDocuments(std::vector<nlohmann::json>& documents);
// The documents of `files` as LoadResult::documents (files that do not parse
// are left out; LoadFiles reports them).
std::vector<nlohmann::json> DocumentsOf(const std::vector<TreeFile>& files,
                                        const LoadLimits& limits = {});

// The files of a folder on disk, with what the walk found wrong (symlinks
// out of the tree, unreadable files).
struct FolderFiles {
  std::vector<TreeFile> files;  // sorted by rel
  Diagnostics diagnostics;
  // The folder the files are relative to: `root`, or its parent when `root`
  // is a single file.
  std::filesystem::path base;
  // False when there is nothing to load: `root` is missing, or is a single
  // file whose symlink leads out of its folder.
  bool ok = true;
};

// What the cross-document checks need to know about the folders of a tree
// (build contexts). Implementations: DiskTreeView (a folder on disk),
// FolderSet (a tree held in memory). Read-only, so thread-safe once built.
class TreeView {
 public:
  enum class Folder { kExists, kMissing, kEscapes };
  virtual ~TreeView() = default;
  // `rel` is normalized, relative, '/'-separated and does not start with
  // "..": kExists when it names a folder inside the tree, kEscapes when a
  // symlink on the way leads outside it, else kMissing.
  virtual Folder Lookup(const std::string& rel) const = 0;
};

// A folder on disk; symlinks are resolved against its canonical path.
class DiskTreeView : public TreeView {
 public:
  explicit DiskTreeView(const std::filesystem::path& root);
  Folder Lookup(const std::string& rel) const override;

 private:
  std::filesystem::path canonical_root_;
};

// Folders listed one by one (a tree held in memory). The root ("" or ".")
// always exists.
class FolderSet : public TreeView {
 public:
  void AddFolder(const std::string& rel) { folders_.insert(rel); }
  // A symlink at `rel` that leads outside the tree.
  void AddEscape(const std::string& rel) { escapes_.insert(rel); }
  Folder Lookup(const std::string& rel) const override;

 private:
  std::set<std::string> folders_;
  std::set<std::string> escapes_;
};

// What DecodeOne made of one file: its resources and its diagnostics.
struct DecodedFile {
  DesiredState state;
  Diagnostics diagnostics;
};

// Loads the tree at `root` (a folder or a single file): ReadFolder, then
// LoadFiles. state.revision is "tree-<first 12 hex of sha256>" over the
// sorted (relative path, content) of the manifest files. Diagnostic file
// names are relative to `root`.
LoadResult LoadTree(const std::filesystem::path& root, const LoadLimits& limits = {});

// Walks `root` (every *.yaml / *.yml, hidden entries skipped, symlinks out
// of the tree reported) and reads the files, not reading those over the
// size limit. A missing `root` is one diagnostic.
FolderFiles ReadFolder(const std::filesystem::path& root, const LoadLimits& limits = {});

// "tree-<12 hex>" of files as LoadTree computes it (files over the size
// limit are left out). `files` must be sorted by rel.
std::string TreeRevision(const std::vector<TreeFile>& files, const LoadLimits& limits = {});

// Loads a tree held in memory with exactly LoadTree's checks: size, NUL
// bytes, UTF-8, YAML limits, then ValidateState against `tree`. Sets
// state.revision as TreeRevision. Diagnostics are sorted.
LoadResult LoadFiles(std::vector<TreeFile> files, const TreeView& tree,
                     const LoadLimits& limits = {});

// Checks one file's size, NUL bytes and UTF-8, then decodes it (DecodeFile
// with the file's folder as manifest_dir). The unit an incremental loader
// caches: the result depends only on (file.rel, file.content, limits).
DecodedFile DecodeOne(const TreeFile& file, const LoadLimits& limits = {});

// Merges decoded files (in the order given; callers pass them sorted by
// rel) and runs ValidateState against `tree`. Does not set state.revision.
// Diagnostics are sorted.
LoadResult Assemble(const std::vector<const DecodedFile*>& files, const TreeView& tree,
                    const ProviderRegistry* providers = nullptr);

// Decodes the documents of one file's content (used by LoadTree and tests).
// `file` is the name used in diagnostics; `manifest_dir` is the file's folder
// relative to the tree root. Does not run the cross-document checks.
void DecodeFile(const std::string& file, const std::string& manifest_dir,
                const std::string& content, const LoadLimits& limits, DesiredState& out,
                Diagnostics& diagnostics);

// Cross-document checks over a fully decoded state: duplicate names,
// references, dependsOn cycles, build contexts inside `tree`. Sorts the
// state's vectors by name.
// With `providers`, each agent is also checked by its Target's provider
// (validate_agent).
void ValidateState(const TreeView& tree, DesiredState& state, Diagnostics& diagnostics,
                   const ProviderRegistry* providers = nullptr);
// The same against a folder on disk (DiskTreeView).
void ValidateState(const std::filesystem::path& root, DesiredState& state, Diagnostics& diagnostics,
                   const ProviderRegistry* providers = nullptr);

// ---------------------------------------------------------------------------
// Environment overlays (kind Environment; README "Environments and
// promotion"). A folder whose top-level files hold an Environment document
// is loaded in environment mode: the documents of its base folders (spec.bases,
// relative to the Environment's file, inside the tree) are each merged with
// the patches of the Environment's folder (and of its sub-folders, except
// those holding an Environment of their own) naming them by kind and
// metadata.name: maps merge by key, a list replaces the whole list, null
// removes a field. The merged documents are then decoded and validated as
// any tree; the Environment's spec.labels go into every resource's
// metadata.labels and spec.env into every Agent's env (a resource's own
// value wins), Target::environment and DesiredState::environment are set.
// Errors in a patched field are at the patch's file:line:column and name the
// base document ("(patching Agent web at base/agents.yaml:3:1)").

// The manifest files of `folder` (relative to the tree root, "" the root),
// with rel relative to the tree root; nullopt when the folder is not inside
// the tree (missing, or a symlink out of it). What the walk found wrong goes
// to `diagnostics` (named relative to the tree root).
using FolderReader = std::function<std::optional<std::vector<TreeFile>>(const std::string& folder,
                                                                        Diagnostics& diagnostics)>;

// True when a file directly in `folder` (rel's parent equals it; "" the
// root of `files`) holds a kind Environment document.
bool HoldsEnvironment(const std::vector<TreeFile>& files, const std::string& folder,
                      const LoadLimits& limits = {});

// Every Environment document of a tree: its name, its folder (relative to
// the tree root) and where it is written. Sorted by name; a second
// Environment of one name is an error in `diagnostics` (and left out).
struct EnvironmentRef {
  std::string name;
  std::string folder;
  SourceLocation location;
};
std::vector<EnvironmentRef> FindEnvironments(const std::vector<TreeFile>& files,
                                             Diagnostics& diagnostics,
                                             const LoadLimits& limits = {});

// Loads the Environment at `folder` of a tree: `folder_files` are the files
// below it (rel relative to the tree root), `read` reads its base folders,
// `tree` answers the build-context checks (relative to the tree root).
// state.revision is TreeRevision over every file used (the folder's and the
// bases'), also returned in `used` (sorted by rel) when not null.
LoadResult LoadEnvironment(const std::string& folder, std::vector<TreeFile> folder_files,
                           const FolderReader& read, const TreeView& tree,
                           const LoadLimits& limits = {}, std::vector<TreeFile>* used = nullptr);

// The folder `path` of the tree at `root` on disk: an Environment
// (diagnostics name files relative to `root`) when its top-level files hold
// one, else exactly LoadTree(root / path). `files`, when not null, is set to
// the number of manifest files read.
LoadResult LoadPath(const std::filesystem::path& root, const std::string& path,
                    const LoadLimits& limits = {}, size_t* files = nullptr);

}  // namespace reconcile
