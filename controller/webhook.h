// Webhook verification: decides, from the headers and the raw body of one
// webhook delivery, whether it is authentic and whether it asks for a ref
// check of the followed branch. Pure functions: no I/O, no clock, no logging.
//
// A webhook only ever *triggers a ref check*. The commit id a payload names
// is never trusted (the controller asks the git remote itself); it is
// returned only for logging, and only when it looks like a commit id.
//
// Providers and their headers (header names are matched case-insensitively;
// callers pass them lower-cased, see WebhookHeaders):
//
// clang-format off
// | provider | authentication                                    | event header                  |
// | -------- | ------------------------------------------------- | ----------------------------- |
// | github   | `X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256(secret, raw body) | `X-GitHub-Event`: `push`, `ping` |
// | gitlab   | `X-Gitlab-Token: <secret>`                        | `X-Gitlab-Event`: `Push Hook`, `Tag Push Hook` |
// | generic  | `X-Reconcile-Signature-256: sha256=<hex>`, HMAC-SHA256(secret, raw body) | none; optional body `{"ref": "refs/heads/main"}` |
// clang-format on
//
// Signatures and tokens are compared in constant time (CRYPTO_memcmp, on
// digests of equal length) and checked *before* the body is parsed. No
// message ever contains a secret, a signature or a token.
//
// Outcomes (WebhookVerdict::Kind → HTTP status):
//   kTrigger        202  authentic push to the followed branch: check the ref now
//   kIgnored        200  authentic, but nothing to do (ping, other branch, tag,
//                        deleted branch, other event); `message` says why
//   kMalformed      400  authentic, but the body or a required header is malformed
//   kUnauthorized   401  signature/token missing, garbled or wrong
//   kNotConfigured  503  no secret configured for this provider
//
// Thread-safety: all functions are pure and safe to call from any thread.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "reconcile/spec.h"

namespace reconcile::controller {

enum class WebhookProvider { kGitHub, kGitLab, kGeneric };

// "github", "gitlab", "generic": the metrics label and the URL path segment.
const char* WebhookProviderName(WebhookProvider provider);

// Request headers, keys lower-cased ("x-hub-signature-256"). When a header
// occurs several times, the caller keeps the first.
using WebhookHeaders = std::map<std::string, std::string>;

struct WebhookVerdict {
  enum class Kind { kTrigger, kIgnored, kMalformed, kUnauthorized, kNotConfigured };
  Kind kind = Kind::kUnauthorized;
  // Human-readable, safe to log and to send back (no secrets; payload text
  // is cut to printable ASCII and a bounded length).
  std::string message;
  std::string event;   // provider's event name ("push", "Push Hook"), if read
  std::string ref;     // full ref ("refs/heads/main"), if read
  std::string commit;  // payload's new commit id, for logging only; may be empty

  // 202, 200, 400, 401 or 503 (see the table above).
  int http_status() const;
  bool triggers() const { return kind == Kind::kTrigger; }
};

// Verifies one delivery for `provider`. `secret` empty means "not
// configured" (kNotConfigured). `followed_branch` is a branch name ("main")
// or a full ref ("refs/heads/main", "refs/tags/v1"); only a push to exactly
// that ref triggers.
WebhookVerdict VerifyWebhook(WebhookProvider provider, const WebhookHeaders& headers,
                             std::string_view body, std::string_view secret,
                             std::string_view followed_branch);

WebhookVerdict VerifyGitHub(const WebhookHeaders& headers, std::string_view body,
                            std::string_view secret, std::string_view followed_branch);
WebhookVerdict VerifyGitLab(const WebhookHeaders& headers, std::string_view body,
                            std::string_view secret, std::string_view followed_branch);
WebhookVerdict VerifyGeneric(const WebhookHeaders& headers, std::string_view body,
                             std::string_view secret, std::string_view followed_branch);

// What a sender puts after "sha256=": reconcile::HmacSha256Hex (spec.h).
using reconcile::HmacSha256Hex;

// True when `ref` (a full ref from a payload) names `followed_branch` (a
// branch name, or a full ref when it starts with "refs/").
bool RefIsFollowed(std::string_view ref, std::string_view followed_branch);

}  // namespace reconcile::controller
