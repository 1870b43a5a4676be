// HttpRetry: the retry rule every HTTP client of a provider shares for
// answers that mean "not now" (429 Too Many Requests, 503 Service
// Unavailable): wait as the server's Retry-After says (delta-seconds or an
// HTTP-date), else an exponential backoff with jitter, then try again; a
// bounded number of times, never a single wait longer than a limit, and
// ending at once when a stop is requested. Time comes from the injected Clock
// (so tests run on fake time); the wall clock for HTTP-dates is
// Clock::NowRfc3339.
//
// Thread-safety: an HttpRetry serves one logical call on one thread; the
// free functions are pure.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <stop_token>
#include <string>
#include <string_view>

#include "reconcile/clock.h"

namespace reconcile {

struct HttpRetryPolicy {
  int max_attempts = 5;  // including the first
  std::chrono::milliseconds initial_backoff{500};
  std::chrono::milliseconds max_backoff{8000};
  // A Retry-After asking for longer than this is not waited for: the call
  // fails (kUnavailable) and the caller's own schedule retries later.
  std::chrono::milliseconds max_retry_after{std::chrono::seconds(60)};
};

// True for the answers to retry: 429 and 503.
bool IsRetryAfterStatus(int http_status);

// Seconds since the epoch of an RFC 3339 UTC time ("2026-12-01T09:00:00Z"),
// or nullopt.
std::optional<std::int64_t> ParseRfc3339(std::string_view text);

// The wait a Retry-After header asks for: delta-seconds ("120") or an
// HTTP-date (IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", RFC 850 or asctime)
// relative to `now_unix`. A date in the past is 0. nullopt when absent or
// unparsable.
std::optional<std::chrono::milliseconds> ParseRetryAfter(std::string_view value,
                                                         std::int64_t now_unix);

class HttpRetry {
 public:
  enum class Verdict {
    kRetry,      // waited; send the request again
    kGiveUp,     // return the answer's error (note() says why no retry)
    kCancelled,  // a stop was requested while waiting
  };

  // `clock` must outlive this object; nullptr: the system clock.
  HttpRetry(const HttpRetryPolicy& policy, Clock* clock, std::stop_token stop);

  // After an answer with `http_status` and its Retry-After header (may be
  // empty): kGiveUp at once for any other status, when the attempts are used
  // up, or when Retry-After asks for more than max_retry_after; otherwise
  // waits and returns kRetry, or kCancelled when stopped during the wait.
  Verdict After(int http_status, std::string_view retry_after);

  int attempts() const { return attempt_; }
  // Empty, or why kGiveUp/kCancelled came ("gave up after 5 attempts").
  const std::string& note() const { return note_; }
  // The last wait (for tests and messages).
  std::chrono::milliseconds last_wait() const { return last_wait_; }

 private:
  HttpRetryPolicy policy_;
  Clock* clock_;
  std::stop_token stop_;
  int attempt_ = 1;
  std::chrono::milliseconds backoff_;
  std::chrono::milliseconds last_wait_{0};
  std::string note_;
  std::minstd_rand rng_;
};

}  // namespace reconcile
