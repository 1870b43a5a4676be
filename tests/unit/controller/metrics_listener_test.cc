#include "controller/metrics_listener.h"

#include <string>
#include <vector>

#include <doctest/doctest.h>

namespace reconcile::controller {
namespace {

bool Has(const std::string& text, const std::string& line) {
  return text.find(line) != std::string::npos;
}

class RecordingListener final : public SchedulerListener {
 public:
  void RefChecked(const Result<std::string>&, double) override { calls.push_back("checked"); }
  void Decided(const std::string&, Decision, const std::string&) override {
    calls.push_back("decided");
  }
  void PassFinished(const PassRequest&, const PassReport&, double) override {
    calls.push_back("pass");
  }
  std::vector<std::string> calls;
};

ResourceState Resource(const std::string& name, const std::string& health) {
  ResourceState rs;
  rs.address = "agent." + name;
  rs.name = name;
  rs.health = health;
  return rs;
}

PassReport Applied(const std::string& revision) {
  PassReport r;
  r.revision = revision;
  r.outcome.succeeded = 2;
  auto state = std::make_shared<State>();
  state->resources["agent.a"] = Resource("a", "healthy");
  state->resources["agent.b"] = Resource("b", "healthy");
  state->resources["agent.c"] = Resource("c", "");
  r.state = state;
  return r;
}

TEST_CASE("metrics listener: pass results by report status") {
  struct Row {
    Status status;
    bool stale_tree;
    PassResult want;
  };
  const Row rows[] = {
      {Status::Ok(), false, PassResult::kSuccess},
      {Status::Invalid("deploy/a.yaml:1:1: bad"), true, PassResult::kInvalid},
      {Status::Invalid("state file corrupt"), false, PassResult::kFailed},
      {Status::Unavailable("engine down"), false, PassResult::kUnavailable},
      {Status::Conflict("lock held"), false, PassResult::kUnavailable},
      {Status::Cancelled("SIGTERM"), false, PassResult::kCancelled},
      {Status::Failed("unhealthy"), false, PassResult::kFailed},
  };
  for (const Row& row : rows) {
    SUBCASE(row.status.ToString().c_str()) {
      PassReport r;
      r.status = row.status;
      r.stale_tree = row.stale_tree;
      CHECK(PassResultOf(r) == row.want);
    }
  }
}

TEST_CASE("metrics listener: records passes and ref checks, forwards every call") {
  Metrics m;
  RecordingListener next;
  MetricsListener l(m, &next, [] { return 1764580800.0; });

  l.RefChecked(std::string("c1"), 0.2);
  l.RefChecked(Status::Unavailable("git: connection refused"), 1.0);
  l.Decided("c1", Decision::kApply, "new revision");
  PassRequest apply;
  apply.revision = "c1";
  l.PassFinished(apply, Applied("c1"), 1.5);
  std::string text = m.Render();
  CHECK(Has(text, "reconcile_source_fetch_duration_seconds_count 2"));
  CHECK(Has(text, "reconcile_source_fetch_errors_total 1"));
  CHECK(Has(text, "reconcile_passes_total{environment=\"default\",result=\"success\"} 1"));
  CHECK(Has(text, "reconcile_revision_info{environment=\"default\",revision=\"c1\"} 1"));
  CHECK(Has(text, "reconcile_source_revision_info{environment=\"default\",revision=\"c1\"} 1"));
  CHECK(Has(text, "reconcile_last_success_timestamp_seconds{environment=\"default\"} 1764580800"));
  CHECK(Has(text, "reconcile_agents{environment=\"default\",state=\"healthy\"} 2"));
  CHECK(Has(text, "reconcile_agents{environment=\"default\",state=\"unknown\"} 1"));
  CHECK(next.calls == std::vector<std::string>{"checked", "checked", "decided", "pass"});

  SUBCASE("an invalid revision keeps the revision and agents of the last good one") {
    PassReport bad;
    bad.revision = "c2";
    bad.status = Status::Invalid("deploy/a.yaml:3:1: unknown field");
    bad.stale_tree = true;
    PassRequest req;
    req.revision = "c2";
    l.Decided("c2", Decision::kApply, "new revision");
    l.PassFinished(req, bad, 0.1);
    text = m.Render();
    CHECK(Has(text, "reconcile_passes_total{environment=\"default\",result=\"invalid\"} 1"));
    CHECK(Has(text, "reconcile_revision_info{environment=\"default\",revision=\"c1\"} 1"));
    CHECK_FALSE(Has(text, "reconcile_revision_info{environment=\"default\",revision=\"c2\"}"));
    // The source is ahead of what runs: one series, the new head only.
    CHECK(Has(text, "reconcile_source_revision_info{environment=\"default\",revision=\"c2\"} 1"));
    CHECK_FALSE(
        Has(text, "reconcile_source_revision_info{environment=\"default\",revision=\"c1\"}"));
    CHECK(Has(text, "reconcile_agents{environment=\"default\",state=\"healthy\"} 2"));
  }
  SUBCASE("a failed apply counts its failed changes and updates agents") {
    PassReport failed = Applied("c2");
    failed.status = Status::Failed("agent.b: unhealthy");
    failed.outcome.failed = 1;
    auto state = std::make_shared<State>(*failed.state);
    state->resources["agent.b"].health = "unhealthy";
    failed.state = state;
    PassRequest req;
    req.revision = "c2";
    l.PassFinished(req, failed, 3);
    text = m.Render();
    CHECK(Has(text, "reconcile_passes_total{environment=\"default\",result=\"failed\"} 1"));
    CHECK(Has(text, "reconcile_apply_errors_total{environment=\"default\"} 1"));
    CHECK(Has(text, "reconcile_agents{environment=\"default\",state=\"unhealthy\"} 1"));
    CHECK(Has(text, "reconcile_revision_info{environment=\"default\",revision=\"c1\"} 1"));
  }
  SUBCASE("a drift pass sets the drifted agents: reported ones, not healed ones") {
    PassReport drift = Applied("c1");
    drift.reported = {"a"};
    drift.healed = {"b"};
    PassRequest req;
    req.kind = PassRequest::Kind::kDrift;
    req.revision = "c1";
    l.PassFinished(req, drift, 0.3);
    CHECK(Has(m.Render(), "reconcile_drifted_agents{environment=\"default\"} 1"));
  }
}

}  // namespace
}  // namespace reconcile::controller
