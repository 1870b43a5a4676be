// TokenSource: where a cloud provider gets the bearer token for its next API
// call (Google OAuth2 access tokens, Microsoft Entra access tokens).
//
// Token returns a token valid for at least a little while (implementations
// cache it and fetch a new one shortly before it expires), or a Status:
// kInvalid when the credentials are missing, malformed or refused (a person
// must fix them; the message names the variable or file), kUnavailable when
// the token server could not be reached or kept failing, kCancelled when
// `stop` was requested. No message ever holds a secret: a private key, a
// client secret, an assertion, a token or a metadata header value.
//
// Thread-safety: Token may be called from several threads; they share one
// cached token and one fetch at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

#include "reconcile/status.h"

namespace reconcile::http {

class TokenSource {
 public:
  virtual ~TokenSource() = default;
  virtual Result<std::string> Token(std::stop_token stop) = 0;
};

// Reads an environment variable; nullopt when unset (or empty). The token
// sources take one so that tests need not change the process environment.
using Getenv = std::function<std::optional<std::string>(const std::string& name)>;
// The process environment.
std::optional<std::string> ProcessGetenv(const std::string& name);

// --- Helpers shared by the token sources (exposed for their tests). ---

// `text` with every occurrence of each non-empty secret replaced by "***".
std::string Redact(std::string text, std::initializer_list<std::string_view> secrets);

// application/x-www-form-urlencoded encoding of one value (RFC 3986
// unreserved characters kept, everything else %XX).
std::string FormEncode(std::string_view value);

// base64url without padding (RFC 7515 section 2).
std::string Base64Url(std::string_view bytes);

// A server-provided string fit for an error message: control characters
// replaced, at most `max` bytes.
std::string Printable(std::string_view text, std::size_t max = 300);

}  // namespace reconcile::http
