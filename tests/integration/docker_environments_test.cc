// Issue #11 item 2 against the real Docker Engine: three Targets that differ
// only in their environment ("", "dev", "staging") on one engine apply the
// same agent names and never see or touch each other's containers, volumes
// and networks.
//
// Set-up as docker_provider_test.cc: scripts/ensure-dockerd.sh when the
// socket does not answer (the test fails when it still does not), and
// scripts/hello-image.sh for reconcile/hello-agent:0.1.0. Every run uses a
// unique name prefix; the fixture removes only what carries that prefix.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "docker/container_spec.h"
#include "docker/docker_provider.h"
#include "docker/engine_client.h"
#include "reconcile/observation.h"
#include "reconcile/provider.h"
#include "reconcile/spec.h"

namespace reconcile::docker {
namespace {

using nlohmann::json;

constexpr const char* kImage = "reconcile/hello-agent:0.1.0";
constexpr const char* kSock = "unix:///var/run/docker.sock";

bool Answers() {
  auto t = NewEngineTransport(kSock, TlsConfig{});
  if (!t.ok()) return false;
  HttpRequest r;
  r.method = "GET";
  r.target = "/_ping";
  r.timeout = std::chrono::seconds(3);
  auto res = (*t)->RoundTrip(r);
  return res.ok() && res->status == 200;
}

void EnsureEngineAndImage() {
  static bool ready = [] {
    if (!Answers()) {
      std::string cmd = std::string("bash ") + RECONCILE_SOURCE_DIR + "/scripts/ensure-dockerd.sh";
      (void)std::system(cmd.c_str());
    }
    REQUIRE_MESSAGE(Answers(),
                    "the Docker Engine does not answer on /var/run/docker.sock and "
                    "scripts/ensure-dockerd.sh could not start it");
    std::error_code ec;
    auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    REQUIRE(!ec);
    std::string cmd = std::string("bash ") + RECONCILE_SOURCE_DIR + "/scripts/hello-image.sh '" +
                      exe.parent_path().parent_path().string() + "' >/dev/null";
    REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0, "scripts/hello-image.sh failed");
    return true;
  }();
  REQUIRE(ready);
}

std::string Prefix() {
  static const std::string prefix = [] {
    std::random_device rd;
    std::mt19937 gen(rd() ^ static_cast<unsigned>(getpid()));
    const char* hex = "0123456789abcdef";
    std::string s = "ie-";
    for (int i = 0; i < 6; ++i) s += hex[gen() % 16];
    return s;
  }();
  return prefix;
}

// An agent with a health check, one named volume (reclaim: delete) and one
// agent network, all named with this run's prefix.
json Spec(const std::string& greeting) {
  return {
      {"image", kImage},
      {"port", 8080},
      {"hostPort", 0},
      {"command", json::array()},
      {"args", json::array()},
      {"env", {{"GREETING", greeting}}},
      {"secretEnv", json::object()},
      {"replicas", 1},
      {"resources", json::object()},
      {"healthCheck",
       {{"path", "/health"},
        {"port", 8080},
        {"interval", "100ms"},
        {"timeout", "1s"},
        {"retries", 50},
        {"startPeriod", "0s"}}},
      {"strategy", {{"type", "recreate"}, {"autoRollback", true}}},
      {"labels", json::object()},
      {"volumes",
       {{"/data", {{"type", "volume"}, {"source", Prefix() + "-data"}, {"reclaim", "delete"}}}}},
      {"networks", {{Prefix() + "-net", {{"aliases", json::array({"backend"})}}}}}};
}

class Environments {
 public:
  Environments() {
    EnsureEngineAndImage();
    for (const std::string env : {"", "dev", "staging"}) {
      Target t;
      t.name = "local";  // the same Target in every environment, as an overlay makes it
      t.provider = "docker";
      t.environment = env;
      t.settings = {{"host", kSock}, {"publishAddress", "127.0.0.1"}};
      auto p = NewDockerProvider(t);
      REQUIRE_MESSAGE(p.ok(), p.status().message());
      targets_[env] = t;
      providers_[env] = std::move(*p);
    }
    auto tr = NewEngineTransport(kSock, TlsConfig{});
    REQUIRE(tr.ok());
    client_ = std::make_unique<EngineClient>(std::shared_ptr<HttpTransport>(std::move(*tr)));
  }

  ~Environments() {
    auto list = client_->ListContainers({std::string(kLabelManagedBy) + "=" + kManagedByValue});
    if (list.ok()) {
      for (const json& c : *list) {
        const json& labels = c.value("Labels", json::object());
        if (labels.value(kLabelAgent, "").find(Prefix()) != std::string::npos) {
          (void)client_->RemoveContainer(c.value("Id", ""), /*force=*/true);
        }
      }
    }
    for (const std::string env : {"", "dev", "staging"}) {
      (void)client_->RemoveVolume(ScopedName(env, Prefix() + "-data"));
      if (auto n = client_->InspectNetwork(ScopedName(env, Prefix() + "-net")); n.ok()) {
        (void)client_->RemoveNetwork(n->value("Id", ""));
      }
    }
  }

  ApplyChangeResponse Apply(const std::string& env, Action action, const std::string& agent,
                            const json& desired, const std::vector<InstanceRef>& prior = {}) {
    ApplyChangeRequest req;
    req.target = targets_[env];
    req.change.address = "agent." + agent;
    req.change.name = agent;
    req.change.action = action;
    req.change.target = "local";
    req.change.provider = "docker";
    req.change.desired = desired;
    req.change.desired_hash = action == Action::kDelete ? "" : SpecHash(desired);
    req.change.prior = prior;
    req.revision = "rev-" + env;
    req.progress = [this](const std::string& m) { progress_.push_back(m); };
    return providers_[env]->ApplyChange(req);
  }

  // This run's instances as the environment's provider observes them.
  std::vector<ObservedInstance> Observed(const std::string& env) {
    auto r = providers_[env]->Observe(ObserveRequest{targets_[env]});
    REQUIRE_MESSAGE(r.status.ok(), r.status.message());
    std::vector<ObservedInstance> out;
    for (const ObservedInstance& o : r.instances) {
      if (o.agent.rfind(Prefix(), 0) == 0) out.push_back(o);
    }
    return out;
  }

  static std::vector<InstanceRef> Refs(const std::vector<ObservedInstance>& seen,
                                       const std::string& agent) {
    std::vector<InstanceRef> out;
    for (const ObservedInstance& o : seen) {
      if (o.agent == agent) out.push_back({o.id, o.name});
    }
    return out;
  }

  json Labels(const Result<json>& inspected) {
    REQUIRE_MESSAGE(inspected.ok(), inspected.status().message());
    if (inspected->contains("Config"))
      return (*inspected)["Config"].value("Labels", json::object());
    return inspected->value("Labels", json::object());
  }

  std::map<std::string, Target> targets_;
  std::map<std::string, std::unique_ptr<Provider>> providers_;
  std::unique_ptr<EngineClient> client_;
  std::vector<std::string> progress_;
};

TEST_CASE_FIXTURE(Environments, "docker environments: same agents on one engine, fully isolated") {
  const std::string web = Prefix() + "-web", api = Prefix() + "-api";
  const std::string vol = Prefix() + "-data", net = Prefix() + "-net";
  for (const std::string env : {"", "dev", "staging"}) {
    for (const std::string& agent : {web, api}) {
      auto r = Apply(env, Action::kCreate, agent, Spec(agent + " in '" + env + "'"));
      REQUIRE_MESSAGE(r.status.ok(), "[" << env << "] " << r.status.message());
      REQUIRE(r.instances.size() == 1);
      CHECK(r.instances[0].name == ScopedName(env, agent));
    }
  }

  // Names, labels, volumes and networks of each environment.
  for (const std::string env : {"", "dev", "staging"}) {
    auto c = client_->InspectContainer(ScopedName(env, web));
    json labels = Labels(c);
    CHECK(labels.value(kLabelAgent, "") == web);
    if (env.empty()) {
      CHECK_FALSE(labels.contains(kLabelEnvironment));
    } else {
      CHECK(labels.value(kLabelEnvironment, "") == env);
    }
    CHECK((*c)["Config"]["Hostname"] == web);  // the agent's own name inside
    // On the environment's network the container answers to the agent's
    // own name and aliases, as in a plain tree.
    const json& on = (*c)["NetworkSettings"]["Networks"];
    REQUIRE_MESSAGE(on.contains(ScopedName(env, net)), on.dump());
    json aliases = on[ScopedName(env, net)].value("Aliases", json::array());
    CHECK(std::find(aliases.begin(), aliases.end(), json(web)) != aliases.end());
    CHECK(std::find(aliases.begin(), aliases.end(), json("backend")) != aliases.end());
    CHECK_FALSE(on.contains(ScopedName(env == "dev" ? "staging" : "dev", net)));

    json vlabels = Labels(client_->InspectVolume(ScopedName(env, vol)));
    CHECK(vlabels.value(kLabelEnvironment, "") == env);
    json nlabels = Labels(client_->InspectNetwork(ScopedName(env, net)));
    CHECK(nlabels.value(kLabelEnvironment, "") == env);
    CHECK(nlabels.value(kLabelNetwork, "") == ScopedName(env, net));

    auto seen = Observed(env);
    REQUIRE(seen.size() == 2);  // its own web and api, nobody else's
    for (const ObservedInstance& o : seen) {
      CHECK(o.name == ScopedName(env, o.agent));
      CHECK(o.revision == "rev-" + env);
      CHECK(o.running);
      CHECK(!o.endpoint.empty());
    }
  }

  // Drift in dev (its web stopped) is seen by dev only.
  REQUIRE(client_->StopContainer(ScopedName("dev", web), 1).ok());
  for (const ObservedInstance& o : Observed("dev")) {
    if (o.agent == web) CHECK_FALSE(o.running);
  }
  for (const std::string env : {"", "staging"}) {
    for (const ObservedInstance& o : Observed(env)) CHECK_MESSAGE(o.running, env << " " << o.name);
  }

  // Healing dev's web replaces dev's container only.
  const std::string staging_web = Refs(Observed("staging"), web).at(0).id;
  auto healed = Apply("dev", Action::kReplace, web, Spec("healed"), Refs(Observed("dev"), web));
  REQUIRE_MESSAGE(healed.status.ok(), healed.status.message());
  CHECK(Refs(Observed("staging"), web).at(0).id == staging_web);

  // A provider of one environment never removes another's container, even
  // when handed its id.
  auto foreign = Apply("dev", Action::kDelete, web, Spec("x"), Refs(Observed("staging"), web));
  CHECK(foreign.status.code() == Code::kConflict);
  CHECK(foreign.status.message().find("environment 'staging'") != std::string::npos);
  CHECK(client_->InspectContainer(staging_web).ok());

  // Pruning api in staging (delete, reclaim: delete) leaves dev's and the
  // plain tree's api, volume and network.
  auto pruned = Apply("staging", Action::kDelete, api, Spec("x"), Refs(Observed("staging"), api));
  REQUIRE_MESSAGE(pruned.status.ok(), pruned.status.message());
  CHECK(Refs(Observed("staging"), api).empty());
  CHECK(Refs(Observed("dev"), api).size() == 1);
  CHECK(Refs(Observed(""), api).size() == 1);
  CHECK(client_->InspectVolume(ScopedName("staging", vol)).ok());  // staging's web still uses it

  // Destroying staging (its last agent): its volume and network go, the
  // others' stay.
  auto destroyed =
      Apply("staging", Action::kDelete, web, Spec("x"), Refs(Observed("staging"), web));
  REQUIRE_MESSAGE(destroyed.status.ok(), destroyed.status.message());
  CHECK(Observed("staging").empty());
  CHECK(client_->InspectVolume(ScopedName("staging", vol)).status().code() == Code::kNotFound);
  CHECK(client_->InspectNetwork(ScopedName("staging", net)).status().code() == Code::kNotFound);
  CHECK(Observed("dev").size() == 2);
  CHECK(Observed("").size() == 2);
  for (const std::string env : {"", "dev"}) {
    CHECK(client_->InspectVolume(ScopedName(env, vol)).ok());
    CHECK(client_->InspectNetwork(ScopedName(env, net)).ok());
  }
}

TEST_CASE_FIXTURE(Environments, "docker environments: another environment's objects conflict") {
  const std::string web = Prefix() + "-clash";
  // A plain-tree agent called "dev--<web>" holds dev's container name for
  // <web>: dev refuses, changes nothing.
  auto plain = Apply("", Action::kCreate, "dev--" + web, Spec("plain"));
  REQUIRE_MESSAGE(plain.status.ok(), plain.status.message());
  json spec = Spec("dev");
  spec.erase("volumes");
  spec.erase("networks");
  auto dev = Apply("dev", Action::kCreate, web, spec);
  CHECK(dev.status.code() == Code::kConflict);
  CHECK(dev.status.message().find("the plain tree") != std::string::npos);
  CHECK(Labels(client_->InspectContainer("dev--" + web)).value(kLabelAgent, "") == "dev--" + web);

  // A volume (or network) of dev's name made by another environment's label
  // set is foreign to dev.
  const std::string vol = ScopedName("dev", Prefix() + "-data");
  REQUIRE(client_->CreateVolume(BuildVolumeBody(vol, web, "staging")).ok());
  json with_volume = Spec("dev");
  with_volume.erase("networks");
  auto clash = Apply("dev", Action::kCreate, Prefix() + "-other", with_volume);
  CHECK(clash.status.code() == Code::kConflict);
  CHECK(clash.status.message().find("environment 'staging'") != std::string::npos);
  CHECK(Observed("dev").empty());
}

}  // namespace
}  // namespace reconcile::docker
