// ApprovalStore: plan ids are the SHA-256 of the plan text, tampered plans
// and forged records are refused, and a new plan supersedes (another
// revision) or makes stale (the same revision) the one waiting. Also
// AgentsNeedingApproval and RunPass's approval gate on the fake world.
#include "reconcile/approval.h"

#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "fakes/fake_source.h"
#include "fakes/temp_dir.h"
#include "reconcile/pass.h"
#include "reconcile/spec.h"
#include "reconcile/state_store.h"
#include "unit/engine/test_world.h"

namespace reconcile {
namespace {

using testing::TempDir;

SavedPlan PlanOf(const std::string& revision, const std::string& image,
                 const std::string& observed = "obs-1") {
  SavedPlan s;
  s.source = "/src";
  s.state_dir = "/state";
  s.plan.revision = revision;
  s.plan.observed_digest = observed;
  Change c;
  c.address = "agent.web";
  c.name = "web";
  c.action = Action::kUpdate;
  c.target = "local";
  c.provider = "fake";
  c.desired = SharedJson(nlohmann::json{{"image", image}});
  c.desired_hash = "h-" + image;
  s.plan.changes.push_back(c);
  return s;
}

std::string Read(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void Write(const std::filesystem::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::trunc);
  out << text;
}

TEST_CASE("approval: the plan id is the SHA-256 of the saved plan's text") {
  TempDir tmp;
  ApprovalStore store(tmp.path());
  SavedPlan saved = PlanOf("c1", "web:2");
  auto p = store.Publish(saved, "default", "2026-12-04T10:00:00Z");
  REQUIRE(p.ok());
  CHECK(p->id == PendingPlanId(saved));
  CHECK(p->id.size() == 64);
  const std::string text = Read(store.dir() / (p->id + ".json"));
  CHECK(text == SavedPlanText(saved));
  CHECK(Sha256Hex(text) == p->id);
  CHECK(p->state == "pending");
  // The same plan again keeps its id and record (createdAt too).
  auto again = store.Publish(saved, "default", "2026-12-04T10:05:00Z");
  REQUIRE(again.ok());
  CHECK(again->id == p->id);
  CHECK(again->created_at == "2026-12-04T10:00:00Z");
  // The key is private.
  auto perms = std::filesystem::status(store.dir() / "key").permissions();
  CHECK((perms & (std::filesystem::perms::group_all | std::filesystem::perms::others_all)) ==
        std::filesystem::perms::none);
  auto current = store.Current();
  REQUIRE(current.ok());
  REQUIRE(current->has_value());
  CHECK((*current)->id == p->id);
  CHECK((*current)->saved == saved);
}

TEST_CASE("approval: approve by id or prefix; unknown ids are refused") {
  TempDir tmp;
  ApprovalStore store(tmp.path());
  auto p = store.Publish(PlanOf("c1", "web:2"), "default", "t0");
  REQUIRE(p.ok());
  const std::vector<std::pair<std::string, std::string>> unknown = {
      {"0000000000000000", "no plan 0000000000000000 waits for approval"},
      {"xyz", "'xyz' is not a plan id"},
      {"abc", "'abc' is not a plan id"},  // too short for a prefix
      {p->id.substr(0, 8) + "A", "not a plan id"},
  };
  for (const auto& [id, want] : unknown) {
    const std::string given = id;  // CAPTURE takes it (clang 14: not a binding)
    CAPTURE(given);
    auto a = store.Approve(id, "alice@host", "cli", "t1");
    REQUIRE_FALSE(a.ok());
    CHECK(a.status().code() == Code::kNotFound);
    CHECK(a.status().message().find(want) != std::string::npos);
  }
  auto a = store.Approve(p->id.substr(0, 10), "alice@host", "cli", "t1");
  REQUIRE(a.ok());
  CHECK(a->id == p->id);
  CHECK(a->state == "approved");
  CHECK(a->approved_by == "alice@host");
  CHECK(a->via == "cli");
  auto current = store.Current();
  REQUIRE(current.ok());
  CHECK((*current)->state == "approved");
  // Approving again changes nothing.
  CHECK(store.Approve(p->id, "bob", "api", "t2")->approved_by == "alice@host");
}

TEST_CASE("approval: an edited plan file or a forged record is refused") {
  TempDir tmp;
  ApprovalStore store(tmp.path());
  SavedPlan saved = PlanOf("c1", "web:2");
  auto p = store.Publish(saved, "default", "t0");
  REQUIRE(p.ok());
  const auto file = store.dir() / (p->id + ".json");
  const auto meta = store.dir() / (p->id + ".meta.json");

  SUBCASE("the plan file edited") {
    std::string text = Read(file);
    auto at = text.find("web:2");
    REQUIRE(at != std::string::npos);
    text.replace(at, 5, "evil:1");
    Write(file, text);
    auto a = store.Approve(p->id, "alice", "cli", "t1");
    REQUIRE_FALSE(a.ok());
    CHECK(a.status().code() == Code::kInvalid);
    CHECK(a.status().message().find("does not match its id") != std::string::npos);
    CHECK(store.Current().status().code() == Code::kInvalid);  // never applied
    // Publishing the same plan again leaves the file alone: still refused.
    REQUIRE(store.Publish(saved, "default", "t2").ok());
    CHECK_FALSE(store.Approve(p->id, "alice", "cli", "t3").ok());
    // Removed, it is written again by the next publish.
    std::filesystem::remove(file);
    REQUIRE(store.Publish(saved, "default", "t4").ok());
    CHECK(store.Approve(p->id, "alice", "cli", "t5").ok());
  }
  SUBCASE("a record edited to say approved") {
    std::string text = Read(meta);
    auto at = text.find("\"pending\"");
    REQUIRE(at != std::string::npos);
    text.replace(at, 9, "\"approved\"");
    Write(meta, text);
    auto current = store.Current();
    REQUIRE(current.ok());
    CHECK_FALSE(current->has_value());  // an unsigned record counts for nothing
    auto a = store.Approve(p->id, "alice", "cli", "t1");
    REQUIRE_FALSE(a.ok());
    CHECK(a.status().message().find("not signed by this controller's key") != std::string::npos);
  }
  SUBCASE("a forged plan with a matching id but no key") {
    SavedPlan evil = PlanOf("c1", "evil:1");
    const std::string id = PendingPlanId(evil);
    Write(store.dir() / (id + ".json"), SavedPlanText(evil));
    nlohmann::json record = {
        {"reconcilePendingPlan", 1},   {"id", id},          {"revision", "c1"},
        {"environment", "default"},    {"createdAt", "t9"}, {"state", "pending"},
        {"hmac", std::string(64, '0')}};
    Write(store.dir() / (id + ".meta.json"), record.dump());
    auto a = store.Approve(id, "mallory", "cli", "t1");
    REQUIRE_FALSE(a.ok());
    CHECK(a.status().code() == Code::kInvalid);
    CHECK(a.status().message().find("not signed") != std::string::npos);
    auto current = store.Current();
    REQUIRE(current.ok());
    CHECK((*current)->id == p->id);  // the genuine one still waits
  }
}

TEST_CASE("approval: a new revision supersedes, a changed world makes stale") {
  TempDir tmp;
  ApprovalStore store(tmp.path());
  auto first = store.Publish(PlanOf("c1", "web:2"), "default", "t0");
  REQUIRE(first.ok());
  REQUIRE(store.Approve(first->id, "alice", "cli", "t1").ok());

  SUBCASE("a new commit") {
    auto second = store.Publish(PlanOf("c2", "web:3"), "default", "t2");
    REQUIRE(second.ok());
    CHECK(second->id != first->id);
    auto old = store.Find(first->id);
    REQUIRE(old.ok());
    CHECK(old->state == "superseded");
    CHECK(old->superseded_by == second->id);
    auto a = store.Approve(first->id, "alice", "cli", "t3");
    REQUIRE_FALSE(a.ok());
    CHECK(a.status().code() == Code::kConflict);
    CHECK(a.status().message().find("was superseded") != std::string::npos);
    CHECK(a.status().message().find("approve plan " + second->id.substr(0, 12)) !=
          std::string::npos);
    CHECK((*store.Current())->id == second->id);
  }
  SUBCASE("the same commit, another observation") {
    auto second = store.Publish(PlanOf("c1", "web:2", "obs-2"), "default", "t2",
                                "approved, but stale: what runs changed");
    REQUIRE(second.ok());
    auto old = store.Find(first->id);
    CHECK(old->state == "stale");
    CHECK(old->why == "approved, but stale: what runs changed");
    auto a = store.Approve(first->id, "alice", "cli", "t3");
    REQUIRE_FALSE(a.ok());
    CHECK(a.status().message().find("was stale") != std::string::npos);
  }
  SUBCASE("applied") {
    REQUIRE(store.Close(first->id, "applied", "", "t2").ok());
    auto current = store.Current();
    REQUIRE(current.ok());
    CHECK_FALSE(current->has_value());
    auto a = store.Approve(first->id, "alice", "cli", "t3");
    REQUIRE_FALSE(a.ok());
    CHECK(a.status().message().find("was applied") != std::string::npos);
  }
}

TEST_CASE("approval: which changes need an approval") {
  using testing::MakeAgent;
  Agent web = MakeAgent("web");
  web.approval = ApprovalMode::kRequired;
  DesiredState d = testing::MakeDesired({web, MakeAgent("api")});
  Plan plan;
  for (const char* name : {"api", "gone", "web"}) {
    Change c;
    c.address = std::string("agent.") + name;
    c.name = name;
    c.action = std::string(name) == "gone" ? Action::kDelete : Action::kUpdate;
    plan.changes.push_back(c);
  }
  CHECK(AgentsNeedingApproval(plan, d) == std::vector<std::string>{"web"});
  plan.changes[2].action = Action::kNoOp;
  CHECK(AgentsNeedingApproval(plan, d).empty());
  Environment env;
  env.name = "prod";
  env.approval = ApprovalMode::kRequired;
  d.environment = env;
  CHECK(AgentsNeedingApproval(plan, d) == std::vector<std::string>{"api", "gone"});
}

TEST_CASE("approval: RunPass applies only the approved plan, exactly") {
  using testing::FakeProvider;
  using testing::FakeSource;
  TempDir tmp;
  FakeSource source;
  FakeProvider provider;
  ProviderRegistry registry;
  testing::RegisterFake(registry, &provider);
  auto store = NewFileStateStore(tmp.path() / "state");
  auto clock = NewSystemClock();
  ReconcilerDeps deps;
  deps.source = &source;
  deps.store = store.get();
  deps.providers = &registry;
  deps.clock = clock.get();
  Agent web = testing::MakeAgent("web", "one");
  web.approval = ApprovalMode::kRequired;
  source.Set("c1", testing::MakeDesired({web}));
  PassRequest request;
  request.revision = "c1";
  PassReport r = RunPass(deps, request);
  REQUIRE(r.status.ok());
  CHECK(r.approval.waiting);
  CHECK(r.approval.agents == std::vector<std::string>{"web"});
  REQUIRE(r.approval.plan);
  CHECK(provider.calls().empty());  // nothing applied
  CHECK(r.changes == 0);

  SUBCASE("the approved plan equals the plan now: applied") {
    request.approved = *r.approval.plan;
    PassReport applied = RunPass(deps, request);
    CHECK(applied.status.ok());
    CHECK(applied.approval.applied);
    CHECK_FALSE(applied.approval.waiting);
    CHECK(provider.calls() == std::vector<std::string>{"agent.web:create"});
  }
  SUBCASE("an edited approved plan is refused and a fresh one waits") {
    Plan edited = *r.approval.plan;
    edited.changes[0].desired_hash = "other";
    request.approved = edited;
    PassReport refused = RunPass(deps, request);
    CHECK(refused.approval.waiting);
    CHECK(refused.approval.refused == "the plan computed now differs from it");
    CHECK(*refused.approval.plan == *r.approval.plan);
    CHECK(provider.calls().empty());
  }
  SUBCASE("a new commit makes the approved plan stale") {
    Agent two = testing::MakeAgent("web", "two");
    two.approval = ApprovalMode::kRequired;
    source.Set("c2", testing::MakeDesired({two}));
    request.revision = "c2";
    request.approved = *r.approval.plan;
    PassReport refused = RunPass(deps, request);
    CHECK(refused.approval.waiting);
    CHECK(refused.approval.refused.find("the desired revision changed (plan of c1, now c2)") == 0);
    CHECK(provider.calls().empty());
  }
  SUBCASE("a drift pass never heals an agent that needs approval") {
    Agent auto_web = testing::MakeAgent("web", "one");
    auto_web.drift = DriftMode::kHeal;
    source.Set("c0", testing::MakeDesired({auto_web}));
    request.revision = "c0";
    REQUIRE(RunPass(deps, request).status.ok());  // no approval needed: applied
    Agent healing = auto_web;
    healing.approval = ApprovalMode::kRequired;
    source.Set("c0", testing::MakeDesired({healing}));
    provider.Remove("web");
    PassRequest drift;
    drift.kind = PassRequest::Kind::kDrift;
    drift.revision = "c0";
    drift.heal_allowed = {"web"};
    PassReport d = RunPass(deps, drift);
    CHECK(d.healed.empty());
    CHECK(d.reported == std::vector<std::string>{"web"});
  }
}

}  // namespace
}  // namespace reconcile
