#include "reconcile/source.h"

#include <algorithm>

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

bool ReadsTreeFiles(const DesiredState& state) {
  auto sops = [](const SecretRef& r) { return r.source == SecretRef::Source::kSops; };
  return std::any_of(state.agents.begin(), state.agents.end(), [&](const Agent& a) {
    return a.build.has_value() ||
           std::any_of(a.secret_env.begin(), a.secret_env.end(),
                       [&](const auto& e) { return sops(e.second); }) ||
           std::any_of(a.secret_files.begin(), a.secret_files.end(),
                       [&](const auto& e) { return sops(e.second.ref); });
  });
}

}  // namespace reconcile
