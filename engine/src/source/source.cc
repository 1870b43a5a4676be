#include "reconcile/source.h"

#include "source/sources.h"

namespace reconcile {

Result<std::unique_ptr<Source>> OpenSource(const SourceOptions& options) {
  if (options.location.empty()) return Status::Invalid("source: no location given");
  if (IsGitUrl(options.location)) return NewGitSource(options);
  return NewFolderSource(options);
}

}  // namespace reconcile
