// Private to reconcile_http: reading a token endpoint's answer (OAuth2 JSON,
// as Google, Entra and the metadata servers send it) and caching the token
// until shortly before it expires.
//
// Thread-safety: TokenCache::Get serialises callers on one mutex, so one fetch
// runs at a time and the others reuse its token.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

#include "http/http_client.h"
#include "reconcile/clock.h"
#include "reconcile/status.h"

namespace reconcile::http {

struct FetchedToken {
  std::string access_token;
  std::chrono::seconds lifetime{0};  // 0: do not cache
};

// Reads `response` from the token endpoint `what` (for messages, e.g. "the
// Google token endpoint https://oauth2.googleapis.com/token"). A 2xx needs
// a JSON object with a string "access_token" and "expires_in" (seconds, a
// number or a numeric string) or "expires_on" (Unix seconds). Any other
// answer becomes an error carrying the server's "error" and
// "error_description" (or "message"), printable and bounded, with every
// `secrets` value replaced by "***": kInvalid for 4xx but 429, kUnavailable
// for 429 and 5xx, kFailed for a malformed 2xx body.
Result<FetchedToken> ReadTokenAnswer(const Response& response, const std::string& what,
                                     std::int64_t now_unix,
                                     std::initializer_list<std::string_view> secrets);

// The Unix time of `clock` (its RFC 3339 wall time).
std::int64_t UnixNow(Clock* clock);

// The system clock when `clock` is nullptr.
Clock* ClockOrSystem(Clock* clock);

class TokenCache {
 public:
  explicit TokenCache(Clock* clock) : clock_(ClockOrSystem(clock)) {}

  // The cached token while it has more than a margin (a tenth of its life,
  // at most 5 minutes) left; otherwise the result of `fetch`, cached.
  Result<std::string> Get(const std::function<Result<FetchedToken>()>& fetch);

  Clock* clock() const { return clock_; }

 private:
  Clock* clock_;
  std::mutex mu_;
  std::string token_;
  std::chrono::steady_clock::time_point refresh_at_{};
};

// `base` without trailing slashes.
std::string TrimSlashes(std::string base);

}  // namespace reconcile::http
