#include "reconcile/clock.h"

#include <condition_variable>
#include <ctime>
#include <mutex>

namespace reconcile {

namespace {

class SystemClock final : public Clock {
 public:
  std::string NowRfc3339() override {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
  }
  std::chrono::steady_clock::time_point Now() override { return std::chrono::steady_clock::now(); }
  bool SleepFor(std::chrono::milliseconds d, std::stop_token stop) override {
    return InterruptibleSleep(d, std::move(stop));
  }
};

}  // namespace

bool InterruptibleSleep(std::chrono::milliseconds d, std::stop_token stop) {
  if (stop.stop_requested()) return false;
  std::mutex mu;
  std::condition_variable_any cv;
  std::unique_lock<std::mutex> lock(mu);
  // wait_for with a stop_token wakes as soon as a stop is requested; the
  // predicate never holds, so it returns on timeout or stop.
  cv.wait_for(lock, stop, d, [] { return false; });
  return !stop.stop_requested();
}

std::unique_ptr<Clock> NewSystemClock() { return std::make_unique<SystemClock>(); }

}  // namespace reconcile
