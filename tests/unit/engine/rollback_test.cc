// Rollback and its pin over fakes (source, provider) and a real state store:
// a rollback re-applies an earlier history entry and pins it; plans, apply
// passes and drift heals keep the pinned revision until the desired
// revision changes, and then the pin ends.
#include <doctest/doctest.h>

#include "fakes/fake_source.h"
#include "fakes/pass_world.h"
#include "fakes/temp_dir.h"
#include "reconcile/pass.h"
#include "reconcile/reconciler.h"
#include "unit/engine/test_world.h"

namespace reconcile {
namespace {

using testing::FakeProvider;
using testing::FakeSource;
using testing::HashOf;
using testing::MakeAgent;
using testing::MakeDesired;
using testing::TempDir;

struct World : testing::PassWorld {
  // `reconcile rollback --to TO` at the source's head.
  Status Rollback(const std::string& to, Plan* plan = nullptr) {
    Reconciler r(Deps());
    if (Status s = r.Fetch(); !s.ok()) return s;
    if (Status s = r.Lock("reconcile rollback"); !s.ok()) return s;
    if (Status s = r.ReadState(); !s.ok()) return s;
    Result<History> history = store->LoadHistory();
    if (!history.ok()) return history.status();
    Result<size_t> index = FindRollbackEntry(*history, r.recorded(), to);
    if (!index.ok()) return index.status();
    if (Status s = r.PinTo(*history, *index); !s.ok()) return s;
    if (Status s = r.Observe(); !s.ok()) return s;
    Plan p = r.MakePlan();
    if (plan) *plan = p;
    return r.ApplyPlan(p, {}).status;
  }
  std::string RunningHash(const std::string& agent) {
    for (const ObservedInstance& i : provider.Observe({}).instances) {
      if (i.agent == agent) return i.spec_hash;
    }
    return "";
  }
};

Agent Heal(Agent a) {
  a.drift = DriftMode::kHeal;
  return a;
}

std::string ActionOf(const Plan& plan, const std::string& address) {
  for (const Change& c : plan.changes) {
    if (c.address == address) return ActionName(c.action);
  }
  return "absent";
}

TEST_CASE("rollback re-applies an earlier revision, and the pin holds until the revision changes") {
  World w;
  const Agent a1 = MakeAgent("a", "one"), b1 = MakeAgent("b", "one");
  w.source.Set("c1", MakeDesired({a1, b1}));
  REQUIRE(w.Run(PassRequest::Kind::kApply, "c1").status.ok());
  const Agent a2 = Heal(MakeAgent("a", "two")), c2 = MakeAgent("c", "two");
  w.source.Set("c2", MakeDesired({a2, c2}));
  REQUIRE(w.Run(PassRequest::Kind::kApply, "c2").status.ok());
  CHECK(w.RunningHash("a") == HashOf(a2));

  Plan plan;
  Status s = w.Rollback("", &plan);  // default: the revision before the live one
  REQUIRE_MESSAGE(s.ok(), s.message());
  CHECK(plan.revision == "c1");
  CHECK(ActionOf(plan, "agent.a") == "replace");
  CHECK(ActionOf(plan, "agent.b") == "create");
  CHECK(ActionOf(plan, "agent.c") == "delete");
  CHECK(w.RunningHash("a") == HashOf(a1));
  CHECK(w.RunningHash("b") == HashOf(b1));
  CHECK(w.RunningHash("c").empty());
  auto state = w.store->Load();
  REQUIRE(state.ok());
  REQUIRE(state->pin.has_value());
  CHECK(state->pin->revision == "c1");
  CHECK(state->pin->serial == 1);
  CHECK(state->pin->desired_revision == "c2");
  CHECK(state->revision == "c1");
  auto history = w.store->LoadHistory();
  REQUIRE(history.ok());
  REQUIRE(history->entries.size() == 3);
  CHECK(history->entries.back().revision == "c1");
  CHECK(history->entries.back().rollback_of == 1);
  CHECK(LiveEntry(*history, *state) == 2u);

  SUBCASE("an apply pass at the same desired revision keeps the pinned revision") {
    const size_t calls = w.provider.calls().size();
    PassReport again = w.Run(PassRequest::Kind::kApply, "c2");
    REQUIRE_MESSAGE(again.status.ok(), again.status.message());
    CHECK(again.changes == 0);
    CHECK(w.provider.calls().size() == calls);
    CHECK(again.state->pin.has_value());
    CHECK(w.RunningHash("a") == HashOf(a1));
  }
  SUBCASE("a drift heal re-creates the pinned spec, not the tree's") {
    w.provider.Remove("a");
    PassReport heal = w.Run(PassRequest::Kind::kDrift, "c2", {"a"});
    REQUIRE_MESSAGE(heal.status.ok(), heal.status.message());
    CHECK(heal.healed == std::vector<std::string>{"a"});
    CHECK(w.RunningHash("a") == HashOf(a1));
    CHECK(heal.state->pin.has_value());
  }
  SUBCASE("a new desired revision ends the pin and rolls forward") {
    const Agent a3 = MakeAgent("a", "three");
    w.source.Set("c3", MakeDesired({a3}));
    PassReport next = w.Run(PassRequest::Kind::kApply, "c3");
    REQUIRE_MESSAGE(next.status.ok(), next.status.message());
    CHECK_FALSE(next.state->pin.has_value());
    CHECK(w.RunningHash("a") == HashOf(a3));
    CHECK(w.RunningHash("b").empty());
    CHECK_FALSE(w.store->Load()->pin.has_value());
  }
  SUBCASE("rolling back to the pinned revision again changes nothing and keeps the pin") {
    const size_t calls = w.provider.calls().size();
    REQUIRE(w.Rollback("1").ok());
    CHECK(w.provider.calls().size() == calls);
    CHECK(w.store->Load()->pin->serial == 1);
  }
  SUBCASE("--to by revision and by serial") {
    REQUIRE(w.Rollback("c2").ok());
    CHECK(w.RunningHash("a") == HashOf(a2));
    CHECK(w.store->Load()->pin->revision == "c2");
    REQUIRE(w.Rollback("1").ok());
    CHECK(w.RunningHash("a") == HashOf(a1));
  }
}

TEST_CASE("digests are recorded at apply, kept in history, and a rollback deploys its digest") {
  World w;
  const std::string d1 = "localhost:5000/a@sha256:" + std::string(64, '1');
  const std::string d2 = "localhost:5000/a@sha256:" + std::string(64, '2');
  Agent a1 = MakeAgent("a", "one");
  a1.image = "localhost:5000/a:stable";
  w.provider.digests[a1.image] = d1;
  w.source.Set("c1", MakeDesired({a1}));
  REQUIRE(w.Run(PassRequest::Kind::kApply, "c1").status.ok());
  CHECK(w.store->Load()->resources.at("agent.a").image_digest == d1);
  CHECK(w.store->Load()->resources.at("agent.a").instances.at(0).image_digest == d1);

  // The tag moves, and c2 changes the agent.
  w.provider.digests[a1.image] = d2;
  Agent a2 = MakeAgent("a", "two");
  a2.image = a1.image;
  w.source.Set("c2", MakeDesired({a2}));
  REQUIRE(w.Run(PassRequest::Kind::kApply, "c2").status.ok());
  CHECK(w.store->Load()->resources.at("agent.a").image_digest == d2);
  auto history = w.store->LoadHistory();
  REQUIRE(history.ok());
  REQUIRE(history->entries.size() == 2);
  CHECK(ResourcesAt(*history, 0).at("agent.a").image_digest == d1);
  CHECK(ResourcesAt(*history, 1).at("agent.a").image_digest == d2);

  Plan plan;
  Status s = w.Rollback("c1", &plan);
  REQUIRE_MESSAGE(s.ok(), s.message());
  CHECK(ActionOf(plan, "agent.a") == "replace");
  // What comes back is c1's spec with the image by its digest: not the tag,
  // which names d2 now. Its spec hash is that spec's, not c1's.
  Agent back = a1;
  back.image = d1;
  CHECK(w.RunningHash("a") == HashOf(back));
  CHECK(w.RunningHash("a") != HashOf(a1));
  auto state = w.store->Load();
  REQUIRE(state.ok());
  CHECK(state->resources.at("agent.a").image_digest == d1);
  CHECK(state->resources.at("agent.a").spec.Get()["image"] == d1);
  // Steady while pinned: the pinned spec is what runs.
  const size_t calls = w.provider.calls().size();
  PassReport again = w.Run(PassRequest::Kind::kApply, "c2");
  REQUIRE_MESSAGE(again.status.ok(), again.status.message());
  CHECK(again.changes == 0);
  CHECK(w.provider.calls().size() == calls);
  // The digests survive the state's JSON form.
  auto round = StateFromJson(ToJson(*state));
  REQUIRE(round.ok());
  CHECK(*round == *state);
}

TEST_CASE("a rollback to an unknown or failed revision is refused and changes nothing") {
  World w;
  w.source.Set("c1", MakeDesired({MakeAgent("a", "one")}));
  REQUIRE(w.Run(PassRequest::Kind::kApply, "c1").status.ok());
  w.provider.fail["agent.a"] = Status::Failed("boom");
  w.source.Set("c2", MakeDesired({MakeAgent("a", "two")}));
  CHECK_FALSE(w.Run(PassRequest::Kind::kApply, "c2").status.ok());
  w.provider.fail.clear();
  const auto before = w.store->Load();
  const size_t calls = w.provider.calls().size();
  struct Row {
    const char* to;
    const char* want;
  };
  const Row rows[] = {
      {"99", "no history entry with this serial"},
      {"nope", "no applied revision or history serial matches"},
      {"2", "failed; roll back to a revision that was applied in full"},
      {"c2", "failed"},
      {"c", "at least 4 characters"},
  };
  for (const Row& row : rows) {
    SUBCASE(row.to) {
      Status s = w.Rollback(row.to);
      REQUIRE_FALSE(s.ok());
      CHECK(s.code() == Code::kInvalid);
      CHECK_MESSAGE(s.message().find(row.want) != std::string::npos, s.message());
      CHECK(*w.store->Load() == *before);
      CHECK(w.provider.calls().size() == calls);
    }
  }
}

TEST_CASE("FindRollbackEntry: the default is the newest other successful revision") {
  History h;
  auto add = [&h](int serial, const std::string& rev, const std::string& result) {
    HistoryEntry e;
    e.serial = serial;
    e.revision = rev;
    e.result = result;
    h.entries.push_back(e);
  };
  State state;
  CHECK_FALSE(FindRollbackEntry(h, state, "").ok());
  add(1, "aaaa1111", "succeeded");
  add(2, "bbbb2222", "succeeded");
  add(3, "bbbb2222", "succeeded");  // re-applied (a heal)
  add(4, "cccc3333", "failed");
  state.revision = "bbbb2222";
  CHECK(*FindRollbackEntry(h, state, "") == 0u);
  CHECK(*FindRollbackEntry(h, state, "bbbb") == 2u);
  CHECK(*FindRollbackEntry(h, state, "2") == 1u);
  state.revision = "aaaa1111";
  CHECK_FALSE(FindRollbackEntry(h, state, "").ok());
  add(5, "bbbbffff", "succeeded");
  CHECK(FindRollbackEntry(h, state, "bbbb").status().message().find("ambiguous") !=
        std::string::npos);
}

TEST_CASE("a saved plan is applied only when it equals the plan computed now") {
  World w;
  w.source.Set("c1", MakeDesired({MakeAgent("a", "one")}));
  Reconciler r(w.Deps());
  REQUIRE(r.Fetch().ok());
  REQUIRE(r.ReadState().ok());
  REQUIRE(r.Observe().ok());
  const Plan fresh = r.MakePlan();
  CHECK(Reconciler::CheckSaved(fresh, fresh).ok());
  CHECK(Reconciler::CheckSaved(*PlanFromJson(ToJson(fresh)), fresh).ok());
  struct Row {
    const char* name;
    std::function<void(Plan&)> edit;
    Code code;
    const char* want;
  };
  const Row rows[] = {
      {"desired", [](Plan& p) { p.changes[0].desired.Edit()["image"] = "evil:latest"; },
       Code::kInvalid, "changes[0].desired.image"},
      {"desiredHash", [](Plan& p) { p.changes[0].desired_hash = "sha256:0"; }, Code::kInvalid,
       "changes[0].desiredHash"},
      {"action", [](Plan& p) { p.changes[0].action = Action::kNoOp; }, Code::kInvalid,
       "changes[0].action"},
      {"an extra change",
       [](Plan& p) {
         Change c = p.changes[0];
         c.address = "agent.b";
         c.name = "b";
         p.changes.push_back(c);
       },
       Code::kInvalid, "changes"},
      {"revision", [](Plan& p) { p.revision = "c0"; }, Code::kConflict, "stale"},
      {"observedDigest", [](Plan& p) { p.observed_digest = "sha256:1"; }, Code::kConflict, "stale"},
  };
  for (const Row& row : rows) {
    SUBCASE(row.name) {
      Plan saved = fresh;
      row.edit(saved);
      Status s = Reconciler::CheckSaved(saved, fresh);
      REQUIRE_FALSE(s.ok());
      CHECK(s.code() == row.code);
      CHECK_MESSAGE(s.message().find(row.want) != std::string::npos, s.message());
    }
  }
}

}  // namespace
}  // namespace reconcile
