// WebhookSecrets: the shared secrets the webhook endpoints check, one per
// provider. An empty secret disables that provider's endpoint (it answers
// 503 "not configured"). Read from `--webhook-secret-file`; GitHub, GitLab
// and the generic endpoint share it unless set one by one.
//
// Thread-safety: a plain value.
#pragma once

#include <filesystem>
#include <string>

#include "reconcile/status.h"

namespace reconcile::controller {

struct WebhookSecrets {
  std::string github;   // HMAC key for X-Hub-Signature-256
  std::string gitlab;   // expected X-Gitlab-Token
  std::string generic;  // HMAC key for X-Reconcile-Signature-256

  bool any() const { return !github.empty() || !gitlab.empty() || !generic.empty(); }
};

// Reads one secret from `path` and uses it for all three providers. The file
// holds the secret as is; trailing whitespace (a final newline) is dropped.
// Errors (messages name the file, never its content): kNotFound when it
// does not exist, kInvalid when it is empty, over 4 KiB or not a regular
// file, kUnavailable when it cannot be read.
Result<WebhookSecrets> LoadWebhookSecrets(const std::filesystem::path& path);

// Reads one secret (a webhook secret, the status page's token) as above;
// `what` starts the error messages ("status token file").
Result<std::string> LoadSecretFile(const std::filesystem::path& path, const std::string& what);

}  // namespace reconcile::controller
