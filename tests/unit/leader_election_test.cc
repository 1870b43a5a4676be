// LeaderElector against a fake kube::Client (an in-memory Lease with
// resourceVersion checks, as the API server does) and a fake clock (time
// moves only when the elector sleeps): acquire, renew, expiry on our own
// clock, conflicts, the renew-deadline stop, release, webhook hand-off and
// bad options.
#include "controller/leader_election.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <mutex>
#include <vector>

#include "fakes/fake_controller_view.h"

namespace reconcile::controller {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using SteadyTime = std::chrono::steady_clock::time_point;

constexpr const char* kLeasePath =
    "/apis/coordination.k8s.io/v1/namespaces/ns1/leases/reconcile-controller";
constexpr const char* kLeases = "/apis/coordination.k8s.io/v1/namespaces/ns1/leases";

// The API server's side of a Lease: GET, POST (AlreadyExists), PUT guarded by
// metadata.resourceVersion (409 when stale). `down` fails every call.
class FakeKube final : public kube::Client {
 public:
  FakeKube() : kube::Client(kube::Config{}) {}

  Result<json> Request(std::string_view method, std::string_view path, std::string_view body,
                       std::string_view, std::stop_token, std::string_view) override {
    if (before) before(std::string(method));
    std::lock_guard<std::mutex> lock(mu);
    calls.push_back(std::string(method));
    if (down) return Status::Unavailable("dial tcp 127.0.0.1:6443: connection refused");
    if (method == "GET") {
      if (path != kLeasePath) return Status::Internal("unexpected path");
      if (lease.is_null()) return Status::NotFound("leases \"reconcile-controller\" not found");
      return lease;
    }
    json obj = json::parse(body);
    if (method == "POST") {
      if (path != kLeases) return Status::Internal("unexpected path");
      if (!lease.is_null()) return Status::Conflict("AlreadyExists");
      obj["metadata"]["resourceVersion"] = std::to_string(++rv);
      lease = obj;
      return lease;
    }
    if (method == "PUT") {
      if (path != kLeasePath) return Status::Internal("unexpected path");
      if (lease.is_null()) return Status::NotFound("not found");
      if (obj["metadata"].value("resourceVersion", "") != lease["metadata"]["resourceVersion"]) {
        ++conflicts;
        return Status::Conflict(
            "Operation cannot be fulfilled on leases: the object has been "
            "modified; please apply your changes to the latest version");
      }
      obj["metadata"]["resourceVersion"] = std::to_string(++rv);
      lease = obj;
      return lease;
    }
    return Status::Internal("unexpected method");
  }

  // What someone else writes (another replica, kubectl).
  void Write(const std::function<void(json&)>& edit) {
    std::lock_guard<std::mutex> lock(mu);
    edit(lease);
    lease["metadata"]["resourceVersion"] = std::to_string(++rv);
  }
  json Lease() {
    std::lock_guard<std::mutex> lock(mu);
    return lease;
  }
  std::string Holder() { return Lease()["spec"].value("holderIdentity", ""); }
  int Count(const std::string& method) {
    std::lock_guard<std::mutex> lock(mu);
    return static_cast<int>(std::count(calls.begin(), calls.end(), method));
  }

  std::mutex mu;
  json lease;  // null: none
  long rv = 100;
  bool down = false;
  int conflicts = 0;
  std::vector<std::string> calls;
  std::function<void(const std::string& method)> before;
};

// Time moves only in SleepFor; `on_sleep` runs after each sleep (at the new
// time) and may change the world or stop the run.
class FakeClock final : public Clock {
 public:
  std::string NowRfc3339() override { return "2026-12-02T00:00:00Z"; }
  SteadyTime Now() override { return now; }
  bool SleepFor(std::chrono::milliseconds d, std::stop_token stop) override {
    if (stop.stop_requested()) return false;
    now += d;
    if (on_sleep) on_sleep();
    return true;
  }
  std::chrono::milliseconds Elapsed() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(now - start);
  }
  SteadyTime start = SteadyTime() + 1000h;
  SteadyTime now = start;
  std::function<void()> on_sleep;
};

LeaderElectionOptions Options(const std::string& identity) {
  LeaderElectionOptions o;
  o.lease_namespace = "ns1";
  o.identity = identity;
  return o;  // 15s / 10s / 2s
}

// Wall times written into the record: distinct and increasing.
std::function<std::string()> Wall() {
  auto n = std::make_shared<int>(0);
  return [n] { return "2026-12-02T00:00:" + std::to_string(10 + (*n)++) + ".000000Z"; };
}

struct Events {
  std::vector<std::string> log;
  int started = 0, stopped = 0;
  std::vector<std::chrono::milliseconds> started_at, stopped_at;
  std::vector<std::string> webhooks;
  LeaderElectionCallbacks Callbacks(FakeClock& clock) {
    LeaderElectionCallbacks cb;
    cb.started_leading = [this, &clock] {
      ++started;
      started_at.push_back(clock.Elapsed());
    };
    cb.stopped_leading = [this, &clock](std::stop_token) {
      ++stopped;
      stopped_at.push_back(clock.Elapsed());
    };
    cb.webhook_requested = [this](const std::string& v) { webhooks.push_back(v); };
    cb.log = [this](bool, const std::string& line) { log.push_back(line); };
    return cb;
  }
  bool Logged(const std::string& needle) const {
    for (const auto& l : log)
      if (l.find(needle) != std::string::npos) return true;
    return false;
  }
};

TEST_CASE("leader election: bad options are refused, naming the flag") {
  LeaderElectionOptions o = Options("a");
  CHECK(ValidateLeaderElectionOptions(o).ok());
  o.renew_deadline = 15s;
  Status s = ValidateLeaderElectionOptions(o);
  CHECK(s.code() == Code::kInvalid);
  CHECK(s.message().find("--leader-elect-renew-deadline (15s) must be less than "
                         "--leader-elect-lease-duration (15s)") != std::string::npos);
  o.renew_deadline = 20s;
  CHECK_FALSE(ValidateLeaderElectionOptions(o).ok());
  o = Options("a");
  o.retry_period = 10s;
  CHECK(ValidateLeaderElectionOptions(o).message().find("--leader-elect-retry-period") !=
        std::string::npos);
  o = Options("a");
  o.lease_duration = 1500ms;
  o.renew_deadline = 1s;
  o.retry_period = 1s;
  CHECK_FALSE(ValidateLeaderElectionOptions(o).ok());
  o = Options("");
  CHECK(ValidateLeaderElectionOptions(o).message().find("--leader-elect-identity") !=
        std::string::npos);
  o = Options("a");
  o.retry_period = 100ms;
  CHECK(ValidateLeaderElectionOptions(o).message().find("under 1s") != std::string::npos);
  // One call never outlives what the renew deadline leaves.
  CHECK(LeaseCallTimeout(Options("a")) == 2s);
  o = Options("a");
  o.lease_duration = 4s;
  o.renew_deadline = 3s;
  o.retry_period = 1s;
  CHECK(LeaseCallTimeout(o) == 500ms);
}

TEST_CASE("leader election: a missing Lease is created; renewing keeps acquireTime and term") {
  FakeKube kube;
  FakeClock clock;
  Events ev;
  LeaderElector a(kube, clock, Options("a"), ev.Callbacks(clock), Wall());
  REQUIRE(a.TryAcquireOrRenew());
  json lease = kube.Lease();
  CHECK(lease["kind"] == "Lease");
  CHECK(lease["metadata"]["labels"]["reconcile.dev/managed-by"] == "reconcile");
  CHECK(lease["spec"]["holderIdentity"] == "a");
  CHECK(lease["spec"]["leaseDurationSeconds"] == 15);
  CHECK(lease["spec"]["leaseTransitions"] == 0);
  CHECK(lease["spec"]["acquireTime"] == lease["spec"]["renewTime"]);
  CHECK(kube.Count("POST") == 1);
  const std::string acquired = lease["spec"]["acquireTime"];
  const std::string rv = lease["metadata"]["resourceVersion"];
  REQUIRE(a.TryAcquireOrRenew());
  lease = kube.Lease();
  CHECK(lease["spec"]["acquireTime"] == acquired);
  CHECK(lease["spec"]["renewTime"] != acquired);
  CHECK(lease["spec"]["leaseTransitions"] == 0);
  CHECK(lease["metadata"]["resourceVersion"] != rv);
  CHECK(kube.Count("PUT") == 1);
  CHECK(a.Leader() == "a");
}

TEST_CASE("leader election: another's lease expires on OUR clock, not by its renewTime") {
  FakeKube kube;
  kube.Write([](json& l) {
    // Written by a replica whose clock is years behind: renewTime means
    // nothing to us; only how long we have seen it unchanged counts.
    l = {{"apiVersion", "coordination.k8s.io/v1"},
         {"kind", "Lease"},
         {"metadata", {{"name", "reconcile-controller"}, {"namespace", "ns1"}}},
         {"spec",
          {{"holderIdentity", "a"},
           {"leaseDurationSeconds", 15},
           {"acquireTime", "2001-01-01T00:00:00.000000Z"},
           {"renewTime", "2001-01-01T00:00:00.000000Z"},
           {"leaseTransitions", 4}}}};
  });
  FakeClock clock;
  Events ev;
  LeaderElector b(kube, clock, Options("b"), ev.Callbacks(clock), Wall());
  CHECK_FALSE(b.TryAcquireOrRenew());
  CHECK(b.Leader() == "a");
  std::string why;
  CHECK(b.Following(&why));  // it reached the API server: ready
  clock.now += 14s;
  CHECK_FALSE(b.TryAcquireOrRenew());
  // a renews: the record changed, so b's 15 s start again from now.
  kube.Write([](json& l) { l["spec"]["renewTime"] = "2001-01-01T00:00:14.000000Z"; });
  CHECK_FALSE(b.TryAcquireOrRenew());
  clock.now += 14s;
  CHECK_FALSE(b.TryAcquireOrRenew());
  // A follower's webhook annotation is not a renew.
  kube.Write([](json& l) { l["metadata"]["annotations"][kWebhookAnnotation] = "x"; });
  clock.now += 1s;  // 15 s since the renew was seen
  CHECK(b.TryAcquireOrRenew());
  json lease = kube.Lease();
  CHECK(lease["spec"]["holderIdentity"] == "b");
  CHECK(lease["spec"]["leaseTransitions"] == 5);
  CHECK(lease["spec"]["acquireTime"] == lease["spec"]["renewTime"]);
  CHECK(lease["metadata"]["annotations"][kWebhookAnnotation] == "x");  // kept
}

TEST_CASE("leader election: a 409 on update means someone else won; it re-reads") {
  FakeKube kube;
  FakeClock clock;
  Events ev;
  LeaderElector a(kube, clock, Options("a"), ev.Callbacks(clock), Wall());
  REQUIRE(a.TryAcquireOrRenew());
  LeaderElector b(kube, clock, Options("b"), ev.Callbacks(clock), Wall());
  CHECK_FALSE(b.TryAcquireOrRenew());
  clock.now += 16s;  // a's lease expired for b
  // c takes it between b's GET and b's PUT.
  bool once = false;
  kube.before = [&](const std::string& method) {
    if (method != "PUT" || once) return;
    once = true;
    kube.Write([](json& l) {
      l["spec"]["holderIdentity"] = "c";
      l["spec"]["renewTime"] = "2026-12-02T00:01:00.000000Z";
      l["spec"]["leaseTransitions"] = 1;
    });
  };
  CHECK_FALSE(b.TryAcquireOrRenew());
  CHECK(kube.conflicts == 1);
  CHECK(kube.Holder() == "c");
  CHECK(b.Leader() == "c");       // it re-read the Lease
  CHECK(kube.Count("GET") == 4);  // a's first, b's first, b's two in the last attempt
  // The leader's renew racing a follower's annotation: re-read, renew anyway.
  kube.before = nullptr;
  FakeKube kube2;
  LeaderElector x(kube2, clock, Options("x"), ev.Callbacks(clock), Wall());
  REQUIRE(x.TryAcquireOrRenew());
  once = false;
  kube2.before = [&](const std::string& method) {
    if (method != "PUT" || once) return;
    once = true;
    kube2.Write([](json& l) { l["metadata"]["annotations"][kWebhookAnnotation] = "hook"; });
  };
  CHECK(x.TryAcquireOrRenew());
  CHECK(kube2.conflicts == 1);
  CHECK(kube2.Holder() == "x");
  CHECK(kube2.Lease()["metadata"]["annotations"][kWebhookAnnotation] == "hook");
}

TEST_CASE("leader election: a leader that cannot renew stops within the renew deadline") {
  FakeKube kube;
  FakeClock clock;
  Events ev;
  LeaderElector a(kube, clock, Options("a"), ev.Callbacks(clock), Wall());
  std::stop_source stop;
  SteadyTime last_put{};
  int puts = 0;
  kube.before = [&](const std::string& method) {
    if (method == "PUT" && !kube.down) {
      last_put = clock.now;
      ++puts;
    }
  };
  clock.on_sleep = [&] {
    if (clock.Elapsed() >= 20s && clock.Elapsed() < 21s) kube.down = true;  // the cut
    if (clock.Elapsed() >= 60s) stop.request_stop();
  };
  a.Run(stop.get_token());
  REQUIRE(ev.started == 1);
  REQUIRE(ev.stopped == 1);
  CHECK(ev.started_at[0] == 0ms);
  CHECK(puts >= 9);  // renewed every 2 s until the cut
  // Stopped once no renew succeeded for the renew deadline (10 s after the
  // last one was sent), before the 15 s lease could expire for the others.
  auto last = std::chrono::duration_cast<std::chrono::milliseconds>(last_put - clock.start);
  CHECK(ev.stopped_at[0] - last >= 10s);
  CHECK(ev.stopped_at[0] - last <= 10s + LeaseCallTimeout(Options("a")));
  CHECK(ev.stopped_at[0] - last < 15s);
  CHECK(ev.Logged("a stopped leading: could not renew the lease within the renew deadline 10s"));
  CHECK(ev.Logged("connection refused"));
  CHECK(ev.Logged("a stopped applying"));
  CHECK_FALSE(a.IsLeader());
  CHECK(ev.Logged("could not release the lease"));  // still down at the end
}

TEST_CASE("leader election: a leader back in reach before anyone took over leads again") {
  FakeKube kube;
  FakeClock clock;
  Events ev;
  LeaderElector a(kube, clock, Options("a"), ev.Callbacks(clock), Wall());
  std::stop_source stop;
  clock.on_sleep = [&] {
    kube.down = clock.Elapsed() >= 4s && clock.Elapsed() < 20s;
    if (clock.Elapsed() >= 30s) stop.request_stop();
  };
  a.Run(stop.get_token());
  CHECK(ev.started == 2);
  CHECK(ev.stopped == 1);
  CHECK(ev.stopped_at[0] < ev.started_at[1]);
  CHECK(kube.Lease()["spec"]["leaseTransitions"] == 0);  // the same holder's term
}

TEST_CASE("leader election: stop releases the lease; a follower takes it at once") {
  FakeKube kube;
  FakeClock clock;
  Events ev;
  LeaderElector a(kube, clock, Options("a"), ev.Callbacks(clock), Wall());
  std::stop_source stop;
  clock.on_sleep = [&] {
    if (clock.Elapsed() >= 7s) stop.request_stop();
  };
  a.Run(stop.get_token());
  json lease = kube.Lease();
  CHECK(lease["spec"]["holderIdentity"] == "");
  CHECK(lease["spec"]["leaseDurationSeconds"] == 1);
  CHECK(lease["spec"]["leaseTransitions"] == 0);
  CHECK(ev.Logged("a released the lease ns1/reconcile-controller"));
  CHECK(ev.stopped == 0);  // a shutdown: the program stopped the pass first
  FakeClock clock_b;
  LeaderElector b(kube, clock_b, Options("b"), ev.Callbacks(clock_b), Wall());
  CHECK(b.TryAcquireOrRenew());  // no waiting for an expiry
  CHECK(kube.Holder() == "b");
  CHECK(kube.Lease()["spec"]["leaseTransitions"] == 1);
  // A follower has nothing to release.
  LeaderElector c(kube, clock_b, Options("c"), ev.Callbacks(clock_b), Wall());
  CHECK_FALSE(c.TryAcquireOrRenew());
  int puts = kube.Count("PUT");
  CHECK(c.Release().ok());
  CHECK(kube.Count("PUT") == puts);
}

TEST_CASE("leader election: a webhook queued on a follower reaches the leader once") {
  FakeKube kube;
  FakeClock clock;
  Events leader_ev;
  LeaderElector a(kube, clock, Options("a"), leader_ev.Callbacks(clock), Wall());
  FakeClock clock_b;
  Events follower_ev;
  LeaderElector b(kube, clock_b, Options("b"), follower_ev.Callbacks(clock_b), Wall());
  std::stop_source stop;
  std::string note;
  clock.on_sleep = [&] {
    if (clock.Elapsed() == 4s) {
      // b follows; a webhook reaches it. Its elector thread would write the
      // annotation: here we run b's steps by hand.
      CHECK_FALSE(b.TryAcquireOrRenew());
      note = b.QueueWebhook("github push to refs/heads/main");
      CHECK(b.WriteWebhookRequest("2026-12-02T00:00:04.000000Z b").ok());
    }
    if (clock.Elapsed() >= 12s) stop.request_stop();
  };
  a.Run(stop.get_token());
  CHECK(note == "handed to the leader a through the Lease ns1/reconcile-controller");
  REQUIRE(leader_ev.webhooks.size() == 1);
  CHECK(leader_ev.webhooks[0] == "2026-12-02T00:00:04.000000Z b");
  CHECK(follower_ev.webhooks.empty());
  CHECK(follower_ev.Logged("handing the webhook"));
}

TEST_CASE("leader election: Run hands a queued webhook over, retrying while unreachable") {
  FakeKube kube;
  FakeClock clock_a;
  Events a_ev;
  LeaderElector a(kube, clock_a, Options("a"), a_ev.Callbacks(clock_a), Wall());
  REQUIRE(a.TryAcquireOrRenew());  // a holds the lease (its loop is not run here)
  FakeClock clock;
  Events ev;
  LeaderElector b(kube, clock, Options("b"), ev.Callbacks(clock), Wall());
  std::stop_source stop;
  bool queued = false;
  clock.on_sleep = [&] {
    if (!queued && clock.Elapsed() >= 1s) {
      queued = true;
      kube.down = true;
      (void)b.QueueWebhook("generic");
    }
    if (clock.Elapsed() >= 5s) kube.down = false;
    if (clock.Elapsed() >= 8s) stop.request_stop();
  };
  b.Run(stop.get_token());
  CHECK(ev.Logged("could not hand a webhook to the leader yet (retrying)"));
  CHECK(ev.Logged("webhook handed to the leader a"));
  json lease = kube.Lease();
  CHECK(lease["metadata"]["annotations"][kWebhookAnnotation].get<std::string>().ends_with(" b"));
  CHECK(lease["spec"]["holderIdentity"] == "a");  // the hand-off did not touch the record
  CHECK(ev.started == 0);
  // a's next renew sees it (a is not in its loop, so only the record).
  CHECK(a.TryAcquireOrRenew());
}

TEST_CASE("leader election: the view routes webhooks and readiness by role") {
  FakeKube kube;
  FakeClock clock;
  Events ev;
  kube.Write([](json& l) {
    l = {{"metadata", {{"name", "reconcile-controller"}, {"namespace", "ns1"}}},
         {"spec", {{"holderIdentity", "a"}, {"leaseDurationSeconds", 15}}}};
  });
  LeaderElector b(kube, clock, Options("b"), ev.Callbacks(clock), Wall());
  testing::FakeControllerView inner;
  inner.SetReady(false, "the first pass has not finished yet");
  LeaderElectionView view(inner, b);
  Readiness r = view.Ready();
  CHECK_FALSE(r.ready);  // not read the Lease yet
  CHECK(r.reason.find("has not been read") != std::string::npos);
  CHECK_FALSE(b.TryAcquireOrRenew());
  CHECK(view.Ready().ready);  // following: ready
  std::string note = view.TriggerWebhook("push", "webhook:github");
  CHECK(note.find("handed to the leader a") != std::string::npos);
  CHECK(inner.triggers().empty());  // a follower never runs it itself
  json s = view.Status();
  CHECK(s["leaderElection"]["leader"] == "a");
  CHECK(s["leaderElection"]["identity"] == "b");
  CHECK(s["leaderElection"]["isLeader"] == false);
  kube.down = true;
  CHECK_FALSE(b.TryAcquireOrRenew());
  r = view.Ready();
  CHECK_FALSE(r.ready);
  CHECK(r.reason.find("connection refused") != std::string::npos);
}

}  // namespace
}  // namespace reconcile::controller
