// BuildContext: the files of an agent's build context, as `docker build`
// would send them, read from the tree on disk.
//
// ListBuildContext walks the context folder (which must be inside the tree
// root), honours its .dockerignore (Docker's rules: `#` comments, `*`, `?`,
// `[...]`, `**` across folders, `!` exceptions, last match wins, a pattern
// that matches a folder excludes what is below it; the Dockerfile and
// .dockerignore are always sent) and refuses symlinks that lead outside the
// context and contexts over the size limit. ContextTar writes the listed
// files as a POSIX (ustar + pax) tar, uid/gid 0, in path order;
// ContextDigest hashes the same paths, modes, link targets and contents.
//
// Errors are kInvalid and name the file inside the context and what is
// wrong; callers prefix the agent's manifest position and field. Plain
// values and functions; thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "reconcile/status.h"

namespace reconcile {

struct BuildContextLimits {
  std::uint64_t max_bytes = 256ull * 1024 * 1024;  // sum of file sizes
  std::size_t max_files = 100000;
};

struct ContextEntry {
  enum class Kind { kFile, kFolder, kSymlink };
  Kind kind = Kind::kFile;
  std::string path;  // relative, '/'-separated, no leading "./"
  std::filesystem::path absolute;
  std::uint64_t size = 0;
  unsigned mode = 0644;
  std::int64_t mtime = 0;   // seconds since the epoch
  std::string link_target;  // kSymlink
};

struct BuildContext {
  std::filesystem::path root;         // the context folder
  std::vector<ContextEntry> entries;  // sorted by path
  std::uint64_t bytes = 0;            // sum of file sizes
  std::int64_t newest_mtime = 0;
};

// Lists `context` (relative to `tree_root`, which must stay inside it) with
// `dockerfile` (relative to the context) forced in.
Result<BuildContext> ListBuildContext(const std::filesystem::path& tree_root,
                                      const std::string& context, const std::string& dockerfile,
                                      const BuildContextLimits& limits);

// The tar stream of the context (in memory: at most limits.max_bytes plus
// headers). kInvalid when a file changed size while read.
Result<std::string> ContextTar(const BuildContext& context);

// Hex SHA-256 over every entry's path, kind, mode, link target and content
// (reads the files; no tar is made).
Result<std::string> ContextDigest(const BuildContext& context);

// Docker's .dockerignore matching, exposed for tests: true when `path`
// (relative, '/'-separated) is excluded by `patterns` (lines of the file).
bool DockerIgnored(const std::vector<std::string>& patterns, const std::string& path);

}  // namespace reconcile
