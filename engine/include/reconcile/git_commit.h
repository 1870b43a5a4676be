// Writing to a Git working tree: commit files on the checkout's current
// branch and push that branch (used by `reconcile promote --commit/--push`).
// Implemented beside the Git source in engine/src/source/git_source.cc, the
// one libgit2 adapter. Each call opens the repository itself; thread-safe
// for different repositories.
#pragma once

#include <filesystem>
#include <stop_token>
#include <string>
#include <vector>

#include "reconcile/source.h"
#include "reconcile/status.h"

namespace reconcile {

struct GitCommitResult {
  std::string commit;  // full id of the new commit
  std::string branch;  // short name of the branch it was made on ("main")
};

// Commits `files` (paths inside the working tree of the repository that
// holds `inside`, absolute or relative to the current directory) as they
// are on disk, on top of HEAD of the current branch, with `message`. Other
// changes in the index or the working tree are neither committed nor lost
// (the commit's tree is HEAD's with only `files` replaced). The author and
// committer come from the repository's Git configuration (user.name,
// user.email), else "reconcile <reconcile@localhost>". kInvalid when
// `inside` is in no repository, HEAD is detached, or a file is outside its
// working tree; kFailed on a libgit2 error.
Result<GitCommitResult> CommitFiles(const std::filesystem::path& inside,
                                    const std::vector<std::filesystem::path>& files,
                                    const std::string& message);

// Pushes the current branch of the repository holding `inside` to its
// upstream (branch.<name>.remote / .merge), else to the same-named branch of
// `origin`, with `auth` (as the Git source uses it: password file or
// variable, SSH key and known_hosts). Returns the remote's location without
// credentials. kInvalid for a refused push (not a fast-forward, bad
// credentials), kUnavailable when the remote cannot be reached or `stop`
// was requested.
Result<std::string> PushBranch(const std::filesystem::path& inside, const GitAuth& auth,
                               std::stop_token stop);

}  // namespace reconcile
