#include "reconcile/http_retry.h"

#include <ctime>
#include <memory>

namespace reconcile {
namespace {

bool AllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// strptime with `format` over the whole of `text`, as UTC.
std::optional<std::int64_t> ParseUtc(std::string_view text, const char* format) {
  std::string s(text);
  std::tm tm{};
  const char* end = ::strptime(s.c_str(), format, &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  return static_cast<std::int64_t>(::timegm(&tm));
}

Clock* SystemClock() {
  static const std::unique_ptr<Clock> clock = NewSystemClock();
  return clock.get();
}

}  // namespace

bool IsRetryAfterStatus(int http_status) { return http_status == 429 || http_status == 503; }

std::optional<std::int64_t> ParseRfc3339(std::string_view text) {
  return ParseUtc(text, "%Y-%m-%dT%H:%M:%SZ");
}

std::optional<std::chrono::milliseconds> ParseRetryAfter(std::string_view value,
                                                         std::int64_t now_unix) {
  value = Trim(value);
  if (value.empty()) return std::nullopt;
  if (AllDigits(value)) {
    if (value.size() > 9) return std::chrono::milliseconds(std::chrono::hours(24 * 365 * 30));
    return std::chrono::seconds(std::stoll(std::string(value)));
  }
  // RFC 9110 5.6.7: IMF-fixdate, then the obsolete RFC 850 and asctime forms.
  for (const char* format :
       {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"}) {
    if (auto at = ParseUtc(value, format)) {
      return std::chrono::seconds(*at > now_unix ? *at - now_unix : 0);
    }
  }
  return std::nullopt;
}

HttpRetry::HttpRetry(const HttpRetryPolicy& policy, Clock* clock, std::stop_token stop)
    : policy_(policy),
      clock_(clock != nullptr ? clock : SystemClock()),
      stop_(std::move(stop)),
      backoff_(policy.initial_backoff),
      rng_(std::random_device{}()) {}

HttpRetry::Verdict HttpRetry::After(int http_status, std::string_view retry_after) {
  note_.clear();
  if (!IsRetryAfterStatus(http_status)) return Verdict::kGiveUp;
  if (attempt_ >= policy_.max_attempts) {
    note_ = "gave up after " + std::to_string(attempt_) + " attempts";
    return Verdict::kGiveUp;
  }
  std::chrono::milliseconds wait;
  std::optional<std::chrono::milliseconds> asked;
  if (!retry_after.empty()) {
    std::int64_t now = ParseRfc3339(clock_->NowRfc3339()).value_or(std::time(nullptr));
    asked = ParseRetryAfter(retry_after, now);
  }
  if (asked) {
    if (*asked > policy_.max_retry_after) {
      note_ = "the server asked to retry after " + std::to_string(asked->count() / 1000) +
              "s, more than the " + std::to_string(policy_.max_retry_after.count() / 1000) +
              "s this client waits";
      return Verdict::kGiveUp;
    }
    wait = *asked;
  } else {
    // Full jitter in [backoff/2, backoff].
    std::uniform_int_distribution<long> dist(backoff_.count() / 2, backoff_.count());
    wait = std::chrono::milliseconds(dist(rng_));
    backoff_ = std::min(backoff_ * 2, policy_.max_backoff);
  }
  last_wait_ = wait;
  ++attempt_;
  if (!clock_->SleepFor(wait, stop_)) {
    note_ = "stopped while waiting to retry";
    return Verdict::kCancelled;
  }
  return Verdict::kRetry;
}

}  // namespace reconcile
