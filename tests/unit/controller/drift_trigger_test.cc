// DriftTrigger on fake time: a burst makes one pass, due a debounce after
// its first event; passes keep a minimum gap.
#include "drift_trigger.h"

#include <doctest/doctest.h>

namespace reconcile::controller {
namespace {

using namespace std::chrono_literals;

const TimePoint t0 = TimePoint{} + 1h;

TEST_CASE("drift trigger: a burst of events is one pass, due a debounce after the first") {
  DriftTrigger t({.debounce = 150ms, .min_gap = 1s});
  CHECK_FALSE(t.pending());
  CHECK(t.Take(t0).empty());  // nothing pending: no pass, no gap recorded
  CHECK(t.Note("web", "container killed (docker event)", t0) == t0 + 150ms);
  CHECK(t.Note("web", "container exited (docker event)", t0 + 20ms) == t0 + 150ms);
  CHECK(t.Note("side", "container removed (docker event)", t0 + 40ms) == t0 + 150ms);
  CHECK(t.Note("web", "container stopped (docker event)", t0 + 60ms) == t0 + 150ms);
  REQUIRE(t.pending());
  auto agents = t.Take(t0 + 150ms);
  REQUIRE(agents.size() == 2);
  CHECK(agents[0] ==
        std::pair<std::string, std::string>("web", "container stopped (docker event)"));
  CHECK(agents[1] ==
        std::pair<std::string, std::string>("side", "container removed (docker event)"));
  CHECK_FALSE(t.pending());
}

TEST_CASE("drift trigger: the next pass waits for the minimum gap after the last one") {
  DriftTrigger t({.debounce = 150ms, .min_gap = 1s});
  t.Note("web", "a", t0);
  REQUIRE(t.Take(t0 + 150ms).size() == 1);
  SUBCASE("an event soon after waits for the gap") {
    CHECK(t.Note("web", "b", t0 + 200ms) == t0 + 150ms + 1s);
  }
  SUBCASE("an event long after only waits for the debounce") {
    CHECK(t.Note("web", "b", t0 + 10s) == t0 + 10s + 150ms);
  }
}

TEST_CASE("drift trigger: a crash loop costs at most one pass per gap") {
  DriftTrigger t({.debounce = 150ms, .min_gap = 1s});
  int passes = 0;
  // Events every 50 ms for 10 s; the caller runs a pass whenever one is due.
  for (auto now = t0; now < t0 + 10s; now += 50ms) {
    t.Note("crashy", "container exited (docker event)", now);
    if (t.due() <= now) passes += !t.Take(now).empty();
  }
  CHECK(passes >= 9);
  CHECK(passes <= 10);
}

TEST_CASE("drift trigger: a resync (empty agent) joins the burst") {
  DriftTrigger t;
  t.Note("", "event stream re-established", t0);
  t.Note("web", "container started (docker event)", t0 + 10ms);
  auto agents = t.Take(t0 + 1s);
  REQUIRE(agents.size() == 2);
  CHECK(agents[0].first == "");
  CHECK(agents[1].first == "web");
}

}  // namespace
}  // namespace reconcile::controller
