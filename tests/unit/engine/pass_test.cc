// RunPass: one controller pass over fakes (source, provider) and a real
// state store in a temp folder.
#include "reconcile/pass.h"

#include <stdlib.h>

#include <doctest/doctest.h>

#include "fakes/fake_source.h"
#include "fakes/pass_world.h"
#include "fakes/temp_dir.h"
#include "reconcile/provider.h"
#include "reconcile/state.h"
#include "unit/engine/test_world.h"

namespace reconcile {
namespace {

using testing::FakeProvider;
using testing::FakeSource;
using testing::MakeAgent;
using testing::MakeDesired;
using testing::TempDir;

using World = testing::PassWorld;

Agent WithDrift(Agent a, DriftMode m) {
  a.drift = m;
  return a;
}

TEST_CASE("an apply pass creates, records and is idempotent") {
  World w;
  w.source.Set("c1", MakeDesired({MakeAgent("a"), MakeAgent("b")}));
  PassReport first = w.Run(PassRequest::Kind::kApply, "c1");
  REQUIRE_MESSAGE(first.status.ok(), first.status.message());
  CHECK(first.changes == 2);
  CHECK(first.state->resources.size() == 2);
  CHECK(first.state->revision == "c1");
  PassReport second = w.Run(PassRequest::Kind::kApply, "c1");
  CHECK(second.status.ok());
  CHECK(second.changes == 0);
  CHECK(w.provider.calls().size() == 2);
  auto history = w.store->LoadHistory();
  REQUIRE(history.ok());
  CHECK(history->entries.size() == 1);  // a no-op pass adds no history entry
}

TEST_CASE("a new revision with the recorded content digest is neither observed nor planned") {
  World w;
  w.source.Set("c1", MakeDesired({MakeAgent("a")}));
  w.source.SetContentDigest("c1", "tree-111111111111");
  PassReport first = w.Run(PassRequest::Kind::kApply, "c1");
  REQUIRE_MESSAGE(first.status.ok(), first.status.message());
  CHECK_FALSE(first.unchanged);
  CHECK(first.state->content_digest == "tree-111111111111");
  auto saved = w.store->Load();
  REQUIRE(saved.ok());
  CHECK(saved->content_digest == "tree-111111111111");  // recorded in the state file
  const size_t calls = w.provider.calls().size();
  const int observes = w.provider.observe_count();

  // c2 changed only another environment's files: same digest.
  w.source.Set("c2", MakeDesired({MakeAgent("a")}));
  w.source.SetContentDigest("c2", "tree-111111111111");
  PassReport skipped = w.Run(PassRequest::Kind::kApply, "c2");
  REQUIRE_MESSAGE(skipped.status.ok(), skipped.status.message());
  CHECK(skipped.unchanged);
  CHECK(skipped.revision == "c2");
  CHECK(skipped.changes == 0);
  CHECK(w.provider.observe_count() == observes);  // not observed
  CHECK(w.provider.calls().size() == calls);

  // A drift pass still observes.
  PassReport drift = w.Run(PassRequest::Kind::kDrift, "c2");
  CHECK_FALSE(drift.unchanged);
  CHECK(w.provider.observe_count() > observes);

  // c3 changes this tree: planned and applied, the new digest recorded.
  Agent b = MakeAgent("a");
  b.replicas = 3;
  w.source.Set("c3", MakeDesired({b}));
  w.source.SetContentDigest("c3", "tree-333333333333");
  PassReport third = w.Run(PassRequest::Kind::kApply, "c3");
  REQUIRE_MESSAGE(third.status.ok(), third.status.message());
  CHECK_FALSE(third.unchanged);
  CHECK(third.changes == 1);
  CHECK(third.state->content_digest == "tree-333333333333");
}

TEST_CASE("a failed apply clears the recorded content digest: the next revision is planned") {
  World w;
  w.source.Set("c1", MakeDesired({MakeAgent("a")}));
  w.source.SetContentDigest("c1", "tree-111111111111");
  REQUIRE(w.Run(PassRequest::Kind::kApply, "c1").status.ok());
  Agent b = MakeAgent("a");
  b.replicas = 2;
  w.source.Set("c2", MakeDesired({b}));
  w.source.SetContentDigest("c2", "tree-222222222222");
  w.provider.fail["agent.a"] = Status::Failed("boom");
  PassReport failed = w.Run(PassRequest::Kind::kApply, "c2");
  REQUIRE_FALSE(failed.status.ok());
  CHECK(failed.state->content_digest.empty());
  // c3 goes back to c1's files: planned again (the world may be half c2).
  w.source.Set("c3", MakeDesired({MakeAgent("a")}));
  w.source.SetContentDigest("c3", "tree-111111111111");
  PassReport back = w.Run(PassRequest::Kind::kApply, "c3");
  CHECK_FALSE(back.unchanged);
}

TEST_CASE("a secretEnv reference the operator did not allow is a load error; allowed, it applies") {
  World w;
  Agent a = MakeAgent("a");
  a.secret_env["TOKEN"] = {SecretRef::Source::kEnv, "PASS_TEST_TOKEN"};
  a.field_locations["spec.secretEnv.TOKEN.env"] = {"agents/a.yaml", 12, 14};
  w.source.Set("c1", MakeDesired({a}));
  ::setenv("PASS_TEST_TOKEN", "pass-c4n4ry", 1);
  PassReport bad = w.Run(PassRequest::Kind::kApply, "c1");
  CHECK(bad.status.code() == Code::kInvalid);
  REQUIRE(bad.diagnostics.size() == 1);
  CHECK(bad.diagnostics.items()[0].ToString().find(
            "agents/a.yaml:12:14: error: spec.secretEnv.TOKEN: agent 'a': environment variable "
            "PASS_TEST_TOKEN is not allowed") == 0);
  CHECK(w.provider.calls().empty());  // nothing applied

  ReconcilerDeps deps = w.Deps();
  deps.secret_env_policy.allowed = {"PASS_TEST_TOKEN"};
  PassRequest r;
  r.kind = PassRequest::Kind::kApply;
  r.revision = "c1";
  PassReport good = RunPass(deps, r);
  ::unsetenv("PASS_TEST_TOKEN");
  REQUIRE_MESSAGE(good.status.ok(), good.status.message());
  CHECK(w.provider.secrets_seen("agent.a").at("TOKEN") == "pass-c4n4ry");
}

TEST_CASE(
    "secretFiles: refused {env} references apply nothing; allowed, values reach the provider") {
  World w;
  Agent a = MakeAgent("a");
  a.secret_files["key"] = {{SecretRef::Source::kEnv, "PASS_TEST_KEY"}, "/run/secrets/key", 0400};
  a.field_locations["spec.secretFiles.key.env"] = {"agents/a.yaml", 14, 11};
  w.source.Set("c1", MakeDesired({a}));
  ::setenv("PASS_TEST_KEY", "file-c4n4ry", 1);
  PassReport bad = w.Run(PassRequest::Kind::kApply, "c1");
  CHECK(bad.status.code() == Code::kInvalid);
  REQUIRE(bad.diagnostics.size() == 1);
  CHECK(bad.diagnostics.items()[0].ToString().find(
            "agents/a.yaml:14:11: error: spec.secretFiles.key: agent 'a': environment variable "
            "PASS_TEST_KEY is not allowed") == 0);
  CHECK(w.provider.calls().empty());

  ReconcilerDeps deps = w.Deps();
  deps.secret_env_policy.allowed = {"PASS_TEST_KEY"};
  PassRequest r;
  r.kind = PassRequest::Kind::kApply;
  r.revision = "c1";
  PassReport good = RunPass(deps, r);
  ::unsetenv("PASS_TEST_KEY");
  REQUIRE_MESSAGE(good.status.ok(), good.status.message());
  CHECK(w.provider.secrets_seen("agent.a").at(SecretFileValueKey("key")) == "file-c4n4ry");
  CHECK(ToJson(*good.state).dump().find("file-c4n4ry") == std::string::npos);
}

TEST_CASE("an invalid tree is reported with its diagnostics and changes nothing") {
  World w;
  w.source.Set("c1", MakeDesired({MakeAgent("a")}));
  REQUIRE(w.Run(PassRequest::Kind::kApply, "c1").status.ok());
  w.source.SetInvalid("c2", "must be between 1 and 65535, got 99999");
  PassReport bad = w.Run(PassRequest::Kind::kApply, "c2");
  CHECK(bad.status.code() == Code::kInvalid);
  CHECK(bad.stale_tree);
  REQUIRE(bad.diagnostics.size() == 1);
  CHECK(bad.diagnostics.items()[0].ToString().find("agents.yaml:3:5") == 0);
  CHECK(w.provider.calls().size() == 1);
  auto state = w.store->Load();
  REQUIRE(state.ok());
  CHECK(state->revision == "c1");
}

TEST_CASE("a drift pass heals only agents in heal mode within the budget") {
  World w;
  w.source.Set("c1", MakeDesired({WithDrift(MakeAgent("healme"), DriftMode::kHeal),
                                  WithDrift(MakeAgent("report"), DriftMode::kReport),
                                  WithDrift(MakeAgent("nobudget"), DriftMode::kHeal)}));
  REQUIRE(w.Run(PassRequest::Kind::kApply, "c1").status.ok());
  w.provider.Remove("healme");
  w.provider.Remove("report");
  w.provider.Remove("nobudget");
  size_t calls_before = w.provider.calls().size();
  PassReport drift = w.Run(PassRequest::Kind::kDrift, "c1", {"healme", "report"});
  REQUIRE_MESSAGE(drift.status.ok(), drift.status.message());
  CHECK(drift.drift.size() == 3);
  CHECK(drift.healed == std::vector<std::string>{"healme"});
  CHECK(drift.reported == std::vector<std::string>{"nobudget", "report"});
  auto calls = w.provider.calls();
  REQUIRE(calls.size() == calls_before + 1);
  CHECK(calls.back() == "agent.healme:create");
  // Nothing left to heal; the reported ones are still missing.
  PassReport again = w.Run(PassRequest::Kind::kDrift, "c1", {"healme"});
  CHECK(again.healed.empty());
  CHECK(again.reported == std::vector<std::string>{"nobudget", "report"});
}

TEST_CASE("a stop before the pass applies nothing and is kCancelled") {
  World w;
  w.source.Set("c1", MakeDesired({MakeAgent("a"), MakeAgent("b")}));
  std::stop_source stop;
  stop.request_stop();
  ReconcilerDeps deps = w.Deps();
  deps.stop = stop.get_token();
  PassRequest r;
  r.revision = "c1";
  PassReport report = RunPass(deps, r);
  CHECK(report.status.code() == Code::kCancelled);
  CHECK(w.provider.calls().empty());
  CHECK(w.store->Lock("test").ok());  // the lock was released
}

}  // namespace
}  // namespace reconcile
