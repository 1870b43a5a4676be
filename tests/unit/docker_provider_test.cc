// The Docker provider's decisions, against an in-memory fake engine
// (tests/fakes/fake_http_engine.h). Health probing over real HTTP is covered
// by the integration tests; here specs have no healthCheck.
#include "docker/docker_provider.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "docker/container_spec.h"
#include "fakes/fake_http_engine.h"

namespace reconcile::docker {
namespace {

using nlohmann::json;

constexpr const char* kImage = "reconcile/hello-agent:0.1.0";

json Spec(const std::string& greeting) {
  return {{"image", kImage},
          {"port", 8080},
          {"env", {{"GREETING", greeting}}},
          {"secretEnv", {{"TOKEN", "env:TOKEN"}}},
          {"replicas", 1},
          {"healthCheck", nullptr},
          {"strategy", {{"type", "recreate"}}}};
}

json Managed(const std::string& agent, const std::string& hash = "sha256:old") {
  return {{kLabelManagedBy, kManagedByValue}, {kLabelAgent, agent}, {kLabelSpecHash, hash}};
}

bool Has(const std::vector<std::string>& calls, const std::string& prefix) {
  return std::any_of(calls.begin(), calls.end(),
                     [&](const std::string& c) { return c.rfind(prefix, 0) == 0; });
}

struct Env {
  std::shared_ptr<testing::FakeHttpEngine> engine = std::make_shared<testing::FakeHttpEngine>();
  std::unique_ptr<Provider> provider;
  std::vector<std::string> progress;

  Env() {
    Target t;
    t.name = "local";
    t.provider = "docker";
    provider = NewDockerProviderWithTransport(t, engine);
    engine->AddImage(kImage);
  }

  ApplyChangeResponse Apply(Action action, const std::string& agent, const json& desired,
                            std::vector<InstanceRef> prior = {}) {
    ApplyChangeRequest req;
    req.change.name = agent;
    req.change.address = "agent." + agent;
    req.change.action = action;
    req.change.desired = desired;
    req.change.desired_hash = desired.is_null() ? "" : "sha256:new";
    req.change.prior = std::move(prior);
    req.revision = "rev2";
    req.secret_values = {{"TOKEN", "t0p-s3cret"}};
    req.progress = [this](const std::string& m) { progress.push_back(m); };
    return provider->ApplyChange(req);
  }
};

TEST_CASE("docker provider: schema offers no in-place updates") {
  Env env;
  CHECK(env.provider->Schema().updatable_fields.empty());
}

TEST_CASE("docker provider: create builds a labelled container and starts it") {
  Env env;
  auto r = env.Apply(Action::kCreate, "web", Spec("hi"));
  REQUIRE_MESSAGE(r.status.ok(), r.status.message());
  CHECK(r.health == "unknown");
  REQUIRE(r.instances.size() == 1);
  CHECK(r.instances[0].name == "web");
  auto c = env.engine->Find("web");
  REQUIRE(c.has_value());
  CHECK(c->status == "running");
  CHECK(c->labels[kLabelSpecHash] == "sha256:new");
  CHECK(c->labels[kLabelRevision] == "rev2");
  CHECK(c->body["Env"] == json::array({"GREETING=hi", "TOKEN=t0p-s3cret"}));

  auto observed = env.provider->Observe(ObserveRequest{});
  REQUIRE(observed.status.ok());
  REQUIRE(observed.instances.size() == 1);
  CHECK(observed.instances[0].agent == "web");
  CHECK(observed.instances[0].endpoint == "http://127.0.0.1:40080");
  for (const auto& m : env.progress) CHECK(m.find("t0p-s3cret") == std::string::npos);
}

TEST_CASE("docker provider: a foreign container with the name is a conflict, untouched") {
  Env env;
  std::string foreign = env.engine->Add("web", json::object());
  auto r = env.Apply(Action::kCreate, "web", Spec("hi"));
  CHECK(r.status.code() == Code::kConflict);
  CHECK(r.status.message() ==
        "container name 'web' is already used by a container reconcile does not manage (id " +
            foreign.substr(0, 12) + "); rename or remove it");
  auto calls = env.engine->Calls();
  CHECK_FALSE(Has(calls, "POST /containers/create"));
  CHECK_FALSE(Has(calls, "DELETE"));
  CHECK_FALSE(Has(calls, "POST /containers/" + foreign + "/stop"));
  CHECK(env.engine->Find(foreign)->status == "running");
}

TEST_CASE("docker provider: another agent's container with the name is a conflict") {
  Env env;
  env.engine->Add("web-1", Managed("web-1"));
  json spec = Spec("hi");
  spec["replicas"] = 2;
  auto r = env.Apply(Action::kCreate, "web", spec);
  CHECK(r.status.code() == Code::kConflict);
  CHECK(r.status.message().find("agent 'web-1'") != std::string::npos);
  CHECK_FALSE(Has(env.engine->Calls(), "POST /containers/create"));
}

TEST_CASE("docker provider: a leftover container of ours is replaced (partial apply)") {
  Env env;
  std::string old = env.engine->Add("web", Managed("web"), "exited");
  auto r = env.Apply(Action::kCreate, "web", Spec("hi"));
  REQUIRE_MESSAGE(r.status.ok(), r.status.message());
  CHECK_FALSE(env.engine->Find(old).has_value());
  REQUIRE(r.instances.size() == 1);
  CHECK(r.instances[0].id != old);
}

TEST_CASE("docker provider: replicas get numbered names") {
  Env env;
  json spec = Spec("hi");
  spec["replicas"] = 3;
  auto r = env.Apply(Action::kCreate, "web", spec);
  REQUIRE_MESSAGE(r.status.ok(), r.status.message());
  REQUIRE(r.instances.size() == 3);
  CHECK(r.instances[0].name == "web");
  CHECK(r.instances[1].name == "web-1");
  CHECK(r.instances[2].name == "web-2");
}

TEST_CASE("docker provider: replace recreates; update is carried out as a replace") {
  for (Action action : {Action::kReplace, Action::kUpdate}) {
    Env env;
    std::string old = env.engine->Add("web", Managed("web"));
    auto r = env.Apply(action, "web", Spec("v2"), {InstanceRef{old, "web"}});
    REQUIRE_MESSAGE(r.status.ok(), r.status.message());
    CHECK_FALSE(env.engine->Find(old).has_value());
    REQUIRE(r.instances.size() == 1);
    CHECK(r.instances[0].id != old);
    auto calls = env.engine->Calls();
    CHECK(Has(calls, "POST /containers/" + old + "/stop"));
  }
}

TEST_CASE("docker provider: start-first swaps names after the new one runs") {
  Env env;
  std::string old = env.engine->Add("web", Managed("web"));
  json spec = Spec("v2");
  spec["strategy"]["type"] = "start-first";
  auto r = env.Apply(Action::kReplace, "web", spec, {InstanceRef{old, "web"}});
  REQUIRE_MESSAGE(r.status.ok(), r.status.message());
  REQUIRE(r.instances.size() == 1);
  CHECK(r.instances[0].name == "web");
  CHECK(r.instances[0].id != old);
  CHECK_FALSE(env.engine->Find(old).has_value());
  CHECK(Has(env.engine->Calls(), "POST /containers/" + r.instances[0].id + "/rename"));

  SUBCASE("a fixed host port falls back to recreate and says so") {
    Env env2;
    std::string old2 = env2.engine->Add("web", Managed("web"));
    spec["hostPort"] = 18080;
    auto r2 = env2.Apply(Action::kReplace, "web", spec, {InstanceRef{old2, "web"}});
    REQUIRE_MESSAGE(r2.status.ok(), r2.status.message());
    CHECK(std::any_of(env2.progress.begin(), env2.progress.end(), [](const std::string& m) {
      return m.find("using recreate") != std::string::npos;
    }));
    CHECK_FALSE(Has(env2.engine->Calls(), "POST /containers/create?name=web-next"));
  }
}

TEST_CASE("docker provider: delete") {
  Env env;
  std::string ours = env.engine->Add("web", Managed("web"));
  std::string foreign = env.engine->Add("db", json::object());

  SUBCASE("stops and removes ours") {
    auto r = env.Apply(Action::kDelete, "web", nullptr, {InstanceRef{ours, "web"}});
    REQUIRE_MESSAGE(r.status.ok(), r.status.message());
    CHECK(r.instances.empty());
    CHECK_FALSE(env.engine->Find(ours).has_value());
    CHECK(env.engine->Find(foreign).has_value());
  }
  SUBCASE("refuses an unmanaged container") {
    auto r = env.Apply(Action::kDelete, "web", nullptr, {InstanceRef{foreign, "db"}});
    CHECK(r.status.code() == Code::kConflict);
    CHECK(env.engine->Find(foreign)->status == "running");
    CHECK_FALSE(Has(env.engine->Calls(), "DELETE"));
  }
  SUBCASE("not found counts as deleted") {
    auto r = env.Apply(Action::kDelete, "web", nullptr, {InstanceRef{"0123abcd", "web"}});
    CHECK_MESSAGE(r.status.ok(), r.status.message());
  }
}

TEST_CASE("docker provider: errors are values that name the call and hide secrets") {
  Env env;
  SUBCASE("image missing and pull denied") {
    json spec = Spec("hi");
    spec["image"] = "example.com/missing:1";
    auto r = env.Apply(Action::kCreate, "web", spec);
    CHECK(r.status.code() == Code::kFailed);
    CHECK(r.status.message().find("image example.com/missing:1 is not present and could not "
                                  "be pulled: ") != std::string::npos);
    CHECK(r.status.message().find("pull access denied") != std::string::npos);
  }
  SUBCASE("engine 500 on create") {
    env.engine->Override("POST /containers/create",
                         HttpResponse{500, R"({"message":"disk full"})"});
    auto r = env.Apply(Action::kCreate, "web", Spec("hi"));
    CHECK(r.status.code() == Code::kUnavailable);
    CHECK(r.status.message() == "docker: POST /containers/create: 500 disk full");
    CHECK(r.status.message().find("t0p-s3cret") == std::string::npos);
  }
  SUBCASE("a name the engine holds but cannot show yet is waited for, then named") {
    // A create sent by a killed earlier run may hold the name before the
    // container can be inspected: the provider asks again a few times.
    env.engine->Override("POST /containers/create",
                         HttpResponse{409, R"({"message":"name web-0 is already in use"})"});
    auto r = env.Apply(Action::kCreate, "web", Spec("hi"));
    CHECK(r.status.code() == Code::kConflict);
    CHECK(r.status.message().find("already in use") != std::string::npos);
    auto calls = env.engine->Calls();
    CHECK(std::count_if(calls.begin(), calls.end(), [](const std::string& c) {
            return c.rfind("POST /containers/create", 0) == 0;
          }) == 6);
  }
  SUBCASE("a secret echoed by the engine is masked") {
    env.engine->Override("POST /containers/create",
                         HttpResponse{400, R"({"message":"bad env TOKEN=t0p-s3cret"})"});
    auto r = env.Apply(Action::kCreate, "web", Spec("hi"));
    CHECK(r.status.code() == Code::kInvalid);
    CHECK(r.status.message() == "docker: POST /containers/create: 400 bad env TOKEN=<redacted>");
  }
  SUBCASE("a bad spec changes nothing") {
    json spec = Spec("hi");
    spec["resources"] = {{"memory", "a lot"}};
    auto r = env.Apply(Action::kCreate, "web", spec);
    CHECK(r.status.code() == Code::kInvalid);
    CHECK(r.status.message().find("resources.memory") != std::string::npos);
    CHECK_FALSE(Has(env.engine->Calls(), "POST"));
  }
  SUBCASE("an unresolved secret changes nothing") {
    ApplyChangeRequest req;
    req.change.name = "web";
    req.change.action = Action::kCreate;
    req.change.desired = Spec("hi");
    req.change.desired_hash = "sha256:new";
    auto r = env.provider->ApplyChange(req);
    CHECK(r.status.code() == Code::kInvalid);
    CHECK(r.status.message().find("TOKEN") != std::string::npos);
    CHECK_FALSE(Has(env.engine->Calls(), "POST"));
  }
  SUBCASE("observe of a hostile list") {
    env.engine->Override("GET /containers/json", HttpResponse{200, "[{\"Id\": 5}, null, 7]"});
    auto o = env.provider->Observe(ObserveRequest{});
    CHECK(o.status.ok());
    CHECK(o.instances.empty());
  }
}

TEST_CASE("docker provider: NewDockerProvider rejects bad hosts") {
  Target t;
  t.name = "x";
  t.settings = {{"host", "ssh://somewhere"}};
  auto p = NewDockerProvider(t);
  CHECK(p.status().code() == Code::kInvalid);
  CHECK(p.status().message().find("target x") == 0);
}

TEST_CASE("docker provider: registers under \"docker\"") {
  ProviderRegistry registry;
  RegisterDockerProvider(registry);
  CHECK(registry.Has("docker"));
  Target t;
  t.name = "local";
  t.provider = "docker";
  auto p = registry.Create(t);
  REQUIRE_MESSAGE(p.ok(), p.status().message());
  CHECK((*p)->Schema().updatable_fields.empty());
}

}  // namespace
}  // namespace reconcile::docker
