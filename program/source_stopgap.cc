// Stopgap until the engine's sources land (branch git-source): a folder
// source over LoadTree. Removed when engine/src/source/ is merged.
#include <filesystem>

#include "reconcile/source.h"

namespace reconcile {

namespace {

class FolderSource final : public Source {
 public:
  explicit FolderSource(std::filesystem::path root) : root_(std::move(root)) {}
  std::string Describe() const override { return root_.string(); }
  Result<std::string> Resolve(std::stop_token) override {
    loaded_ = LoadTree(root_);
    return loaded_.state.revision;
  }
  Result<Snapshot> Load(const std::string&, std::stop_token) override {
    Snapshot s;
    s.revision = loaded_.state.revision;
    s.root = root_;
    s.loaded = std::move(loaded_);
    return s;
  }

 private:
  std::filesystem::path root_;
  LoadResult loaded_;
};

}  // namespace

bool IsGitUrl(const std::string& location) {
  return location.find("://") != std::string::npos || location.rfind("git@", 0) == 0;
}

Result<std::unique_ptr<Source>> OpenSource(const SourceOptions& options) {
  if (IsGitUrl(options.location)) {
    return Status::Invalid("source '" + options.location + "': git sources are not built yet");
  }
  std::filesystem::path root = options.location;
  if (!options.path.empty()) root /= options.path;
  std::error_code ec;
  if (!std::filesystem::exists(root, ec)) {
    return Status::Invalid("source '" + root.string() + "' does not exist");
  }
  return std::unique_ptr<Source>(std::make_unique<FolderSource>(root));
}

}  // namespace reconcile
