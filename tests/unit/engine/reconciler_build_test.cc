// The Reconciler's build steps over fakes: the registry is asked before
// planning; a missing tag is built (the context sent as a tar) and pushed
// before the deploy; a tag that exists touches nothing of the build (no
// builder made, no tar, and for a Git commit not even the context read).
#include <doctest/doctest.h>

#include <mutex>
#include <set>

#include "fakes/fake_source.h"
#include "fakes/temp_dir.h"
#include "reconcile/reconciler.h"
#include "unit/engine/test_world.h"

namespace reconcile {
namespace {

using testing::FakeProvider;
using testing::FakeSource;
using testing::MakeAgent;
using testing::MakeDesired;
using testing::TempDir;

// Holds the tags that were "pushed"; counts every call.
class FakeRegistryClient final : public RegistryClient {
 public:
  Result<bool> HasTag(const Registry& r, const std::string& tag,
                      const std::optional<RegistryCredentials>& credentials) override {
    std::lock_guard<std::mutex> lock(mu);
    ++calls;
    if (!credentials || credentials->password != "pw") {
      return Status::Invalid("registry '" + r.name + "' refused the credentials");
    }
    return tags.count(r.url + "/" + r.repository + ":" + tag) > 0;
  }
  std::mutex mu;
  std::set<std::string> tags;
  int calls = 0;
};

struct BuildLog {
  std::mutex mu;
  int builders = 0, builds = 0, pushes = 0;
  size_t tar_bytes = 0;
  std::string built;
};

class FakeBuilder final : public ImageBuilder {
 public:
  FakeBuilder(BuildLog* log, FakeRegistryClient* registry) : log_(log), registry_(registry) {}
  BuildImageResponse Build(const BuildImageRequest& r) override {
    std::lock_guard<std::mutex> lock(log_->mu);
    ++log_->builds;
    log_->tar_bytes = r.context_tar.size();
    log_->built = r.reference;
    return {Status::Ok(), "sha256:img"};
  }
  PushImageResponse Push(const PushImageRequest& r) override {
    {
      std::lock_guard<std::mutex> lock(log_->mu);
      ++log_->pushes;
    }
    std::lock_guard<std::mutex> lock(registry_->mu);
    registry_->tags.insert(r.reference);
    return {Status::Ok(), "sha256:digest"};
  }

 private:
  BuildLog* log_;
  FakeRegistryClient* registry_;
};

struct World {
  TempDir tmp;
  FakeSource source;
  FakeProvider provider;
  ProviderRegistry providers;
  FakeRegistryClient registry;
  BuildLog log;
  BuildServices build;
  DesiredState desired;
  std::unique_ptr<StateStore> store = NewFileStateStore(tmp.path() / "state");
  std::unique_ptr<Clock> clock = NewSystemClock();

  World() {
    testing::RegisterFake(providers, &provider);
    build.registry = &registry;
    build.builder_for = [this](const Target&) -> Result<std::unique_ptr<ImageBuilder>> {
      std::lock_guard<std::mutex> lock(log.mu);
      ++log.builders;
      return std::unique_ptr<ImageBuilder>(new FakeBuilder(&log, &registry));
    };
    tmp.Write("tree/app/Dockerfile", "FROM scratch\n");
    tmp.Write("tree/app/main.txt", "hello");
    DesiredState d = MakeDesired({MakeAgent("plain")});
    Agent web = MakeAgent("web");
    web.image.clear();
    web.build = BuildSpec{"app", "Dockerfile", {}, ""};
    web.registry = "local";
    d.agents.push_back(web);
    Registry r;
    r.name = "local";
    r.url = "127.0.0.1:5000";
    r.repository = "team/web";
    r.credentials_env_prefix = "RECONCILE_TEST_REG";
    d.registries.push_back(r);
    desired = d;
    source.Set("tree-000000000001", d);
    source.SetRoot(tmp.path() / "tree");
    ::setenv("RECONCILE_TEST_REG_USERNAME", "u", 1);
    ::setenv("RECONCILE_TEST_REG_PASSWORD", "pw", 1);
  }

  // One apply pass; returns the plan it applied.
  Plan Pass(Status* status = nullptr) {
    ReconcilerDeps d;
    d.source = &source;
    d.store = store.get();
    d.providers = &providers;
    d.clock = clock.get();
    d.build = &build;
    Reconciler r(d);
    Status s = r.Fetch();
    if (s.ok()) s = r.Lock("apply");
    if (s.ok()) s = r.ReadState();
    if (s.ok()) s = r.Observe();
    Plan plan;
    if (s.ok()) {
      plan = r.MakePlan();
      s = r.ApplyPlan(plan, {}).status;
    }
    if (status) *status = s;
    return plan;
  }
};

const Change& Find(const Plan& plan, const std::string& address) {
  for (const Change& c : plan.changes) {
    if (c.address == address) return c;
  }
  FAIL("no change " << address);
  throw std::logic_error("unreachable");
}

TEST_CASE("reconciler: a missing tag is built and pushed, then the same tree is a no-op") {
  World w;
  Status s;
  Plan first = w.Pass(&s);
  REQUIRE_MESSAGE(s.ok(), s.message());
  CHECK(Find(first, "image.web").action == Action::kCreate);
  CHECK(w.log.builds == 1);
  CHECK(w.log.pushes == 1);
  CHECK(w.log.tar_bytes > 1024);
  CHECK(w.log.built.rfind("127.0.0.1:5000/team/web:tree-", 0) == 0);
  CHECK(Find(first, "agent.web").desired["image"] == w.log.built);

  const int builders = w.log.builders;
  Plan second = w.Pass(&s);
  REQUIRE(s.ok());
  CHECK(Find(second, "image.web").action == Action::kNoOp);
  CHECK_FALSE(second.HasChanges());
  CHECK(w.log.builders == builders);  // no builder made: no tar, no /build call
  CHECK(w.log.builds == 1);
  CHECK(w.log.pushes == 1);
}

TEST_CASE("reconciler: a Git commit whose tag exists never reads the build context") {
  World w;
  // A commit time makes the snapshot a Git commit: its tag is its short id,
  // so the context need not be read; the root points at nothing to prove it.
  const std::string commit = "0123456789abcdef0123456789abcdef01234567";
  w.source.Set(commit, w.desired);
  w.source.SetRoot(w.tmp.path() / "does-not-exist", "2026-01-02T03:04:05Z");
  w.registry.tags.insert("127.0.0.1:5000/team/web:0123456789ab");
  Status s;
  Plan plan = w.Pass(&s);
  REQUIRE_MESSAGE(s.ok(), s.message());
  CHECK(Find(plan, "image.web").action == Action::kNoOp);
  CHECK(Find(plan, "agent.web").action == Action::kCreate);
  CHECK(Find(plan, "agent.web").desired["image"] == "127.0.0.1:5000/team/web:0123456789ab");
  CHECK(w.log.builders == 0);
  CHECK(w.log.builds == 0);
  CHECK(w.log.pushes == 0);
}

TEST_CASE("reconciler: missing credentials stop before anything runs") {
  World w;
  ::unsetenv("RECONCILE_TEST_REG_PASSWORD");
  Status s;
  w.Pass(&s);
  CHECK(s.code() == Code::kInvalid);
  CHECK(s.message().find("RECONCILE_TEST_REG_PASSWORD") != std::string::npos);
  CHECK(w.registry.calls == 0);
  CHECK(w.provider.calls().empty());
  ::setenv("RECONCILE_TEST_REG_PASSWORD", "pw", 1);
}

}  // namespace
}  // namespace reconcile
