#include "controller/webhook_secrets.h"

#include <fstream>
#include <iterator>
#include <system_error>

namespace reconcile::controller {

Result<std::string> LoadSecretFile(const std::filesystem::path& path, const std::string& what) {
  constexpr std::uintmax_t kMaxBytes = 4096;
  const std::string name = what + " " + path.string();
  std::error_code ec;
  auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) {
    if (ec && ec != std::errc::no_such_file_or_directory) {
      return Status::Unavailable(name + ": " + ec.message());
    }
    return Status::NotFound(name + ": no such file");
  }
  if (!std::filesystem::is_regular_file(status)) {
    return Status::Invalid(name + ": not a regular file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Unavailable(name + ": cannot be opened");
  std::string secret;
  char buf[1024];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    secret.append(buf, static_cast<std::size_t>(in.gcount()));
    if (secret.size() > kMaxBytes) return Status::Invalid(name + ": larger than 4 KiB");
  }
  if (in.bad()) return Status::Unavailable(name + ": read failed");
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r' ||
                             secret.back() == ' ' || secret.back() == '\t')) {
    secret.pop_back();
  }
  if (secret.empty()) return Status::Invalid(name + ": empty");
  return secret;
}

Result<WebhookSecrets> LoadWebhookSecrets(const std::filesystem::path& path) {
  auto secret = LoadSecretFile(path, "webhook secret file");
  if (!secret.ok()) return secret.status();
  WebhookSecrets s;
  s.github = *secret;
  s.gitlab = *secret;
  s.generic = *secret;
  return s;
}

}  // namespace reconcile::controller
