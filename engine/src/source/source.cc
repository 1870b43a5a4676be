#include "reconcile/source.h"

#include "source/sources.h"

namespace reconcile {

Result<std::unique_ptr<Source>> OpenSource(const SourceOptions& options) {
  if (options.location.empty()) return Status::Invalid("source: no location given");
  if (IsGitUrl(options.location)) return NewGitSource(options);
  if (options.verify.mode != CommitVerifyMode::kOff) {
    return Status::Invalid("source " + options.location +
                           ": --verify-commits needs a Git source (a folder has no commits to "
                           "verify)");
  }
  return NewFolderSource(options);
}

}  // namespace reconcile
