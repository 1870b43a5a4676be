// PassPolicy on fake time: what the controller does after each ref check.
#include "pass_policy.h"

#include <doctest/doctest.h>

namespace reconcile::controller {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;

PassPolicyOptions Options() {
  PassPolicyOptions o;
  o.drift_interval = minutes(5);
  o.initial_backoff = seconds(10);
  o.max_backoff = seconds(60);
  o.max_retries = 3;
  o.heal_budget = 2;
  o.heal_window = minutes(60);
  return o;
}

const TimePoint t0 = TimePoint{} + std::chrono::hours(1);

TEST_CASE("policy: new revisions are applied; the applied one waits for drift") {
  PassPolicy p(Options());
  CHECK(p.Decide("c1", t0) == Decision::kApply);
  p.Finished("c1", false, PassResult::kSuccess, t0);
  CHECK(p.Decide("c1", t0 + seconds(30)) == Decision::kUpToDate);
  CHECK(p.Decide("c1", t0 + minutes(5)) == Decision::kDrift);
  p.Finished("c1", true, PassResult::kSuccess, t0 + minutes(5));
  CHECK(p.Decide("c1", t0 + minutes(6)) == Decision::kUpToDate);
  CHECK(p.Decide("c2", t0 + minutes(6)) == Decision::kApply);
}

TEST_CASE("policy: an invalid revision is never retried; a new commit is applied") {
  PassPolicy p(Options());
  p.Finished("c1", false, PassResult::kSuccess, t0);
  p.Finished("bad", false, PassResult::kInvalid, t0);
  for (int i = 0; i < 5; ++i) CHECK(p.Decide("bad", t0 + minutes(10 * i)) == Decision::kStalled);
  CHECK(p.applied() == "c1");  // the last good revision keeps running
  CHECK(p.Decide("c3", t0) == Decision::kApply);
}

TEST_CASE("policy: a failed revision backs off exponentially, then stalls") {
  PassPolicy p(Options());
  struct Row {
    int failures;
    seconds backoff;
  };
  TimePoint now = t0;
  for (Row row : {Row{1, seconds(10)}, Row{2, seconds(20)}, Row{3, seconds(40)}}) {
    CAPTURE(row.failures);
    p.Finished("c1", false, PassResult::kFailed, now);
    CHECK(p.failures() == row.failures);
    CHECK(p.next_retry_at() == now + row.backoff);
    CHECK(p.Decide("c1", now + row.backoff - seconds(1)) == Decision::kBackingOff);
    CHECK(p.Decide("c1", now + row.backoff) == Decision::kApply);
    now += row.backoff;
  }
  p.Finished("c1", false, PassResult::kFailed, now);  // 4th failure: out of retries
  CHECK(p.Decide("c1", now + minutes(60)) == Decision::kStalled);
  // A new commit resets it.
  CHECK(p.Decide("c2", now) == Decision::kApply);
  p.Finished("c2", false, PassResult::kFailed, now);
  CHECK(p.failures() == 1);
  CHECK(p.next_retry_at() == now + seconds(10));
  p.Finished("c2", false, PassResult::kSuccess, now + seconds(10));
  CHECK(p.failures() == 0);
  CHECK(p.failed().empty());
}

TEST_CASE("policy: the backoff is capped") {
  PassPolicyOptions o = Options();
  o.max_retries = 100;
  PassPolicy p(o);
  for (int i = 0; i < 10; ++i) p.Finished("c1", false, PassResult::kFailed, t0);
  CHECK(p.next_retry_at() == t0 + seconds(60));
}

TEST_CASE("policy: heal budget per agent and window") {
  PassPolicy p(Options());
  std::set<std::string> both{"a", "b"};
  CHECK(p.HealAllowed(both, t0) == both);
  p.Healed("a", t0);
  p.Healed("a", t0 + minutes(1));
  CHECK(p.HealAllowed(both, t0 + minutes(2)) == std::set<std::string>{"b"});
  CHECK(p.HealAllowed(both, t0 + minutes(61)) == both);  // the first heal left the window
}

TEST_CASE("policy: a cancelled pass changes nothing; drift failures keep the revision") {
  PassPolicy p(Options());
  p.Finished("c1", false, PassResult::kCancelled, t0);
  CHECK(p.Decide("c1", t0) == Decision::kApply);
  p.Finished("c1", false, PassResult::kSuccess, t0);
  p.Finished("c1", true, PassResult::kFailed, t0 + minutes(5));
  CHECK(p.applied() == "c1");
  CHECK(p.failed().empty());
  CHECK(p.Decide("c1", t0 + minutes(6)) == Decision::kUpToDate);
  CHECK(p.Decide("c1", t0 + minutes(10)) == Decision::kDrift);
}

}  // namespace
}  // namespace reconcile::controller
