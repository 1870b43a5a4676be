// The folder source: a desired-state tree on disk, read fresh on every call.
#include <filesystem>
#include <utility>

#include "reconcile/loader.h"
#include "source/sources.h"

namespace reconcile {
namespace {

namespace fs = std::filesystem;

class FolderSource : public Source {
 public:
  explicit FolderSource(const SourceOptions& options) : options_(options) {}

  std::string Describe() const override {
    std::string d = "folder " + options_.location;
    if (!options_.path.empty()) d += (d.back() == '/' ? "" : "/") + options_.path;
    return d;
  }

  Result<std::string> Resolve(std::stop_token stop) override {
    if (stop.stop_requested()) return Status::Unavailable(Describe() + ": stopped");
    Result<fs::path> root = Root();
    if (!root.ok()) return root.status();
    FolderFiles files = ReadFolder(*root, options_.limits);
    if (files.ok && fs::is_directory(*root) && HoldsEnvironment(files.files, "", options_.limits)) {
      // An Environment: its revision covers its bases too.
      return LoadPath(options_.location, Folder(), options_.limits).state.revision;
    }
    return TreeRevision(files.files, options_.limits);
  }

  // A folder has no history: this loads what is there now, whatever
  // `revision` says; the Snapshot's revision tells which tree it is.
  Result<Snapshot> Load(const std::string& /*revision*/, std::stop_token stop) override {
    if (stop.stop_requested()) return Status::Unavailable(Describe() + ": stopped");
    Result<fs::path> root = Root();
    if (!root.ok()) return root.status();
    Snapshot snap;
    FolderFiles folder = ReadFolder(*root, options_.limits);
    if (folder.ok && fs::is_directory(*root) &&
        HoldsEnvironment(folder.files, "", options_.limits)) {
      // An Environment: the tree root is the source folder (bases, build
      // contexts and diagnostics are relative to it).
      size_t files = 0;
      snap.loaded = LoadPath(options_.location, Folder(), options_.limits, &files);
      snap.stats.files = snap.stats.decoded = files;
      snap.root = options_.location;
      snap.revision = snap.content_digest = snap.loaded.state.revision;
      return snap;
    }
    snap.stats.files = snap.stats.decoded = folder.files.size();
    snap.root = folder.base;
    if (folder.ok) {
      snap.loaded = LoadFiles(std::move(folder.files), DiskTreeView(folder.base), options_.limits);
    }
    snap.loaded.diagnostics.Append(folder.diagnostics);
    snap.loaded.diagnostics.Sort();
    snap.revision = snap.content_digest = snap.loaded.state.revision;
    return snap;
  }

  Result<std::vector<TreeFile>> Files(const std::string& /*revision*/, const std::string& folder,
                                      std::stop_token stop) override {
    if (stop.stop_requested()) return Status::Unavailable(Describe() + ": stopped");
    Result<fs::path> root = Root();
    if (!root.ok()) return root.status();
    fs::path rel = fs::path(folder).lexically_normal();
    if (rel.is_absolute() || (!rel.empty() && *rel.begin() == "..")) {
      return Status::Invalid("folder '" + folder + "' leads outside " + Describe());
    }
    std::string prefix = rel.generic_string();
    while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
    if (prefix == ".") prefix.clear();
    std::error_code ec;
    if (!fs::is_directory(*root / prefix, ec)) {
      return Status::NotFound("no folder '" + folder + "' in " + Describe());
    }
    FolderFiles read = ReadFolder(*root / prefix, options_.limits);
    if (!prefix.empty()) {
      for (TreeFile& f : read.files) f.rel = prefix + "/" + f.rel;
    }
    return std::move(read.files);
  }

 private:
  std::string Folder() const {
    std::string folder = fs::path(options_.path).lexically_normal().generic_string();
    while (!folder.empty() && folder.back() == '/') folder.pop_back();
    return folder == "." ? "" : folder;
  }

  Result<fs::path> Root() const {
    std::error_code ec;
    fs::path location(options_.location);
    if (!fs::exists(location, ec)) {
      return Status::NotFound("source folder '" + options_.location + "' does not exist");
    }
    if (options_.path.empty()) return location;
    fs::path rel = fs::path(options_.path).lexically_normal();
    if (rel.is_absolute() || (!rel.empty() && *rel.begin() == "..")) {
      return Status::Invalid("path '" + options_.path + "' leads outside the source folder");
    }
    fs::path root = location / rel;
    if (!fs::exists(root, ec)) {
      return Status::NotFound("path '" + options_.path + "' not found in folder '" +
                              options_.location + "'");
    }
    return root;
  }

  SourceOptions options_;
};

}  // namespace

std::unique_ptr<Source> NewFolderSource(const SourceOptions& options) {
  return std::make_unique<FolderSource>(options);
}

}  // namespace reconcile
