// Clock: the one source of time for the engine and the controller (like
// leveldb's Env), so that tests run on fake time.
//
// Every wait takes a std::stop_token: SleepFor returns early (false) once a
// stop is requested, so SIGTERM never waits out a health timeout or a
// backoff. Thread-safety: implementations are safe to call from any thread.
#pragma once

#include <chrono>
#include <memory>
#include <stop_token>
#include <string>

namespace reconcile {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall time, RFC 3339 UTC with seconds ("2026-12-01T09:00:00Z").
  virtual std::string NowRfc3339() = 0;
  // Monotonic time, for durations and deadlines.
  virtual std::chrono::steady_clock::time_point Now() = 0;
  // Sleeps for `d`, or less when `stop` is requested first. Returns true
  // when the full time elapsed, false when stopped.
  virtual bool SleepFor(std::chrono::milliseconds d, std::stop_token stop = {}) = 0;
};

// The real clock; SleepFor waits on a condition variable woken by `stop`.
std::unique_ptr<Clock> NewSystemClock();

// Sleeps on the real clock for `d`, waking early on `stop`. Returns true
// when the full time elapsed. For code that has no Clock (providers).
bool InterruptibleSleep(std::chrono::milliseconds d, std::stop_token stop);

}  // namespace reconcile
