#include "reconcile/sops_store.h"

#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>

namespace reconcile {
namespace {

namespace fs = std::filesystem;

// `rel` of the tree at `root` (the loader made it relative and normalized)
// as a path on disk: a regular file inside the tree also after symlinks.
Result<fs::path> TreeFilePath(const fs::path& root_dir, const std::string& rel) {
  if (root_dir.empty()) {
    return Status::Invalid(rel +
                           ": this source offers no files of the tree besides its manifests "
                           "(--path names a single file): point --path at the folder");
  }
  std::error_code ec;
  const fs::path root = fs::weakly_canonical(fs::absolute(root_dir, ec), ec);
  const fs::path path = root / rel;
  if (!fs::exists(fs::symlink_status(path, ec)))
    return Status::Invalid(rel + " is not in the tree");
  const fs::path real = fs::weakly_canonical(path, ec);
  const fs::path inside = real.lexically_relative(root);
  if (ec || inside.empty() || *inside.begin() == "..") {
    return Status::Invalid(rel + " leads outside the tree (symlink)");
  }
  if (!fs::exists(real, ec)) return Status::Invalid(rel + " is not in the tree (a broken symlink)");
  if (!fs::is_regular_file(real, ec)) return Status::Invalid(rel + " is not a file");
  return real;
}

class SopsTreeStore : public SecretStore {
 public:
  SopsTreeStore(fs::path root, SopsStoreOptions options)
      : root_(std::move(root)), options_(std::move(options)) {}

  Result<std::string> Get(const SecretRef& ref, std::stop_token stop) override {
    const std::string who = SecretRefText(ref);
    if (stop.stop_requested()) return Status::Cancelled(who + ": stopped");
    Result<std::shared_ptr<const SopsDocument>> doc = Document(ref.name);
    if (!doc.ok()) return Status::Invalid(who + ": " + doc.status().message());
    Result<std::string> value = (*doc)->Lookup(ref.key);
    if (!value.ok()) return Status::Invalid(who + ": " + value.status().message());
    return value;
  }

 private:
  // The decrypted file, once per store; failures are not kept (each
  // reference reports its own).
  Result<std::shared_ptr<const SopsDocument>> Document(const std::string& rel) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (auto it = documents_.find(rel); it != documents_.end()) return it->second;
    }
    if (!options_.keys ||
        (options_.keys->age_identity_files.empty() && options_.keys->pgp_secret_keys.empty())) {
      return Status::Invalid(
          "no SOPS key is configured in this engine: give --sops-age-key-file FILE (or set "
          "SOPS_AGE_KEY_FILE) or --sops-pgp-key-file FILE");
    }
    Result<std::string> bytes = Read(rel);
    if (!bytes.ok()) return bytes.status();
    Result<SopsFormat> format = SopsFormatFromPath(rel);
    if (!format.ok()) return format.status();
    Result<SopsDocument> doc = DecryptSops(*bytes, *format, *options_.keys, rel, options_.sops);
    if (!doc.ok()) return doc.status();
    auto shared = std::make_shared<const SopsDocument>(std::move(*doc));
    std::lock_guard<std::mutex> lock(mu_);
    return documents_.emplace(rel, std::move(shared)).first->second;
  }

  Result<std::string> Read(const std::string& rel) const {
    Result<fs::path> real = TreeFilePath(root_, rel);
    if (!real.ok()) return real.status();
    std::error_code ec;
    const std::uintmax_t size = fs::file_size(*real, ec);
    if (ec) return Status::Invalid(rel + " cannot be read: " + ec.message());
    if (size > options_.max_file_bytes) {
      return Status::Invalid(rel + " is " + std::to_string(size) + " bytes, over the limit of " +
                             std::to_string(options_.max_file_bytes));
    }
    std::ifstream in(*real, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    if (!in && !in.eof()) return Status::Invalid(rel + " cannot be read");
    return out.str();
  }

  const fs::path root_;
  const SopsStoreOptions options_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<const SopsDocument>> documents_;
};

}  // namespace

std::unique_ptr<SecretStore> NewSopsTreeStore(std::filesystem::path root,
                                              SopsStoreOptions options) {
  return std::make_unique<SopsTreeStore>(std::move(root), std::move(options));
}

void CheckSopsFiles(const DesiredState& state, const std::filesystem::path& root,
                    Diagnostics& diagnostics) {
  for (const Agent& a : state.agents) {
    auto check = [&](const SecretRef& ref, const std::string& field) {
      if (ref.source != SecretRef::Source::kSops) return;
      Result<fs::path> path = TreeFilePath(root, ref.name);
      if (path.ok()) return;
      auto at = a.field_locations.find(field + ".sops.file");
      const SourceLocation& loc = at == a.field_locations.end() ? a.location : at->second;
      diagnostics.Error(loc.file, loc.line, loc.column, field + ".sops.file",
                        "agent '" + a.name + "': SOPS file " + path.status().message());
    };
    for (const auto& [name, ref] : a.secret_env) check(ref, "spec.secretEnv." + name);
    for (const auto& [name, file] : a.secret_files) check(file.ref, "spec.secretFiles." + name);
  }
}

}  // namespace reconcile
