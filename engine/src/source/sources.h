// The Source implementations behind OpenSource (source.h).
#pragma once

#include <memory>

#include "reconcile/source.h"

namespace reconcile {

// options.location is a folder (or a single manifest file).
std::unique_ptr<Source> NewFolderSource(const SourceOptions& options);

// options.location satisfies IsGitUrl. Validates the options as OpenSource
// documents.
Result<std::unique_ptr<Source>> NewGitSource(const SourceOptions& options);

}  // namespace reconcile
