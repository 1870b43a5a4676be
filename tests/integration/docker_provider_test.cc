// Integration tests of the Docker provider against the real Docker Engine on
// /var/run/docker.sock.
//
// Set-up, done once per run by the tests themselves: scripts/ensure-dockerd.sh
// starts dockerd when the socket does not answer (a test fails with a clear
// message if it still does not), and scripts/hello-image.sh builds the image
// reconcile/hello-agent:0.1.0 from this build folder's hello-agent binary
// (building that target first if needed). Nothing is pulled.
//
// Every run uses a unique name prefix, and each test removes only the
// containers it created (by id), including the ones created for agents of
// its own prefix.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "docker/docker_provider.h"
#include "docker/engine_client.h"
#include "reconcile/provider.h"
#include "reconcile/spec.h"

namespace reconcile::docker {
namespace {

using nlohmann::json;

constexpr const char* kHelloImage = "reconcile/hello-agent:0.1.0";
constexpr const char* kSocket = "unix:///var/run/docker.sock";

std::string BuildDir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  REQUIRE_MESSAGE(!ec, "cannot find the test binary's path");
  return exe.parent_path().parent_path().string();  // <build>/tests/<binary>
}

bool EngineAnswers() {
  auto t = NewEngineTransport(kSocket, TlsConfig{});
  if (!t.ok()) return false;
  HttpRequest r;
  r.method = "GET";
  r.target = "/_ping";
  r.timeout = std::chrono::seconds(3);
  auto res = (*t)->RoundTrip(r);
  return res.ok() && res->status == 200;
}

// Once per process: a running engine and the hello image.
void EnsureEnvironment() {
  static bool ready = [] {
    if (!EngineAnswers()) {
      std::string cmd = std::string("bash ") + RECONCILE_SOURCE_DIR + "/scripts/ensure-dockerd.sh";
      int rc = std::system(cmd.c_str());
      (void)rc;
    }
    REQUIRE_MESSAGE(EngineAnswers(),
                    "the Docker Engine does not answer on /var/run/docker.sock and "
                    "scripts/ensure-dockerd.sh could not start it (run it by hand to see why)");
    std::string cmd = std::string("bash ") + RECONCILE_SOURCE_DIR + "/scripts/hello-image.sh '" +
                      BuildDir() + "' >/dev/null";
    REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0,
                    "scripts/hello-image.sh failed to build " << std::string(kHelloImage));
    return true;
  }();
  REQUIRE(ready);
}

std::string RunPrefix() {
  static const std::string prefix = [] {
    std::random_device rd;
    std::mt19937 gen(rd() ^ static_cast<unsigned>(getpid()));
    const char* hex = "0123456789abcdef";
    std::string s = "it-";
    for (int i = 0; i < 6; ++i) s += hex[gen() % 16];
    return s;
  }();
  return prefix;
}

json HelloSpec(const std::string& greeting, bool health_check = true) {
  json spec = {{"image", kHelloImage},
               {"port", 8080},
               {"hostPort", 0},
               {"command", json::array()},
               {"args", json::array()},
               {"env", {{"GREETING", greeting}}},
               {"secretEnv", json::object()},
               {"replicas", 1},
               {"resources", json::object()},
               {"healthCheck", nullptr},
               {"strategy", {{"type", "recreate"}, {"autoRollback", true}}},
               {"labels", {{"team", "itest"}}}};
  if (health_check) {
    spec["healthCheck"] = {{"path", "/health"}, {"port", 8080},  {"interval", "100ms"},
                           {"timeout", "1s"},   {"retries", 50}, {"startPeriod", "0s"}};
  }
  return spec;
}

class Fixture {
 public:
  Fixture() {
    EnsureEnvironment();
    target_.name = "local";
    target_.provider = "docker";
    target_.settings = {{"host", kSocket}, {"publishAddress", "127.0.0.1"}};
    auto p = NewDockerProvider(target_);
    REQUIRE_MESSAGE(p.ok(), p.status().message());
    provider_ = std::move(*p);
    auto t = NewEngineTransport(kSocket, TlsConfig{});
    REQUIRE(t.ok());
    client_ = std::make_unique<EngineClient>(std::shared_ptr<HttpTransport>(std::move(*t)));
  }

  ~Fixture() {
    // Ours by construction: ids we created, and containers of agents named
    // with this test's prefix.
    auto list = client_->ListContainers({std::string(kLabelManagedBy) + "=" + kManagedByValue});
    if (list.ok()) {
      for (const json& c : *list) {
        const json& labels = c.value("Labels", json::object());
        std::string agent = labels.value(kLabelAgent, "");
        for (const std::string& a : agents_) {
          if (agent == a) created_.push_back(c.value("Id", ""));
        }
      }
    }
    for (const std::string& id : created_) {
      if (!id.empty()) (void)client_->RemoveContainer(id, /*force=*/true);
    }
  }

  std::string Agent(const std::string& suffix) {
    std::string name = RunPrefix() + "-" + suffix;
    agents_.push_back(name);
    return name;
  }

  ApplyChangeResponse Apply(Action action, const std::string& agent, const json& desired,
                            const std::vector<InstanceRef>& prior = {}) {
    ApplyChangeRequest req;
    req.target = target_;
    req.change.address = "agent." + agent;
    req.change.name = agent;
    req.change.action = action;
    req.change.target = target_.name;
    req.change.provider = "docker";
    req.change.desired = desired;
    req.change.desired_hash = desired.is_null() ? "" : SpecHash(desired);
    req.change.prior = prior;
    req.revision = "rev-" + RunPrefix();
    req.progress = [this](const std::string& m) { progress_.push_back(m); };
    auto r = provider_->ApplyChange(req);
    for (const InstanceRecord& i : r.instances) created_.push_back(i.id);
    return r;
  }

  std::vector<ObservedInstance> Observed(const std::string& agent) {
    auto r = provider_->Observe(ObserveRequest{target_});
    REQUIRE_MESSAGE(r.status.ok(), r.status.message());
    std::vector<ObservedInstance> out;
    for (const ObservedInstance& o : r.instances) {
      if (o.agent == agent) out.push_back(o);
    }
    return out;
  }

  static std::vector<InstanceRef> Refs(const std::vector<InstanceRecord>& instances) {
    std::vector<InstanceRef> out;
    for (const InstanceRecord& i : instances) out.push_back(InstanceRef{i.id, i.name});
    return out;
  }

  // GET <endpoint><path>; status 0 when nothing answers.
  static HttpResponse Get(const std::string& endpoint, const std::string& path) {
    // endpoint: http://127.0.0.1:<port>
    auto colon = endpoint.rfind(':');
    int port = std::atoi(endpoint.substr(colon + 1).c_str());
    auto r = HttpGet("127.0.0.1", port, path, std::chrono::seconds(2));
    return r.ok() ? *r : HttpResponse{};
  }

  Target target_;
  std::unique_ptr<Provider> provider_;
  std::unique_ptr<EngineClient> client_;
  std::vector<std::string> created_;
  std::vector<std::string> agents_;
  std::vector<std::string> progress_;
};

TEST_CASE_FIXTURE(Fixture, "docker: create, observe with labels and endpoint, HTTP answers") {
  const std::string agent = Agent("create");
  json spec = HelloSpec("hello from create");
  auto r = Apply(Action::kCreate, agent, spec);
  REQUIRE_MESSAGE(r.status.ok(), r.status.message());
  CHECK(r.health == "healthy");
  REQUIRE(r.instances.size() == 1);
  CHECK(r.instances[0].name == agent);
  CHECK(r.instances[0].endpoint.rfind("http://127.0.0.1:", 0) == 0);
  CHECK(!progress_.empty());

  auto seen = Observed(agent);
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].id == r.instances[0].id);
  CHECK(seen[0].name == agent);
  CHECK(seen[0].spec_hash == SpecHash(spec));
  CHECK(seen[0].revision == "rev-" + RunPrefix());
  CHECK(seen[0].image == kHelloImage);
  CHECK(seen[0].state == "running");
  CHECK(seen[0].running);
  CHECK(seen[0].endpoint == r.instances[0].endpoint);

  auto inspect = client_->InspectContainer(seen[0].id);
  REQUIRE(inspect.ok());
  CHECK((*inspect)["Config"]["Labels"]["team"] == "itest");
  CHECK((*inspect)["Config"]["Labels"][kLabelManagedBy] == "reconcile");
  CHECK((*inspect)["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped");

  auto root = Get(seen[0].endpoint, "/");
  CHECK(root.status == 200);
  auto body = json::parse(root.body, nullptr, false);
  CHECK(body["greeting"] == "hello from create");
  CHECK(body["version"] == "0.1.0");
  CHECK(body["agent"] == agent);  // the container's hostname
  CHECK(Get(seen[0].endpoint, "/health").status == 200);
  CHECK(Get(seen[0].endpoint, "/nope").status == 404);

  SUBCASE("applying the same create again converges on the same container") {
    auto again = Apply(Action::kCreate, agent, spec);
    REQUIRE_MESSAGE(again.status.ok(), again.status.message());
    REQUIRE(again.instances.size() == 1);
    CHECK(again.instances[0].id == r.instances[0].id);
  }
}

TEST_CASE_FIXTURE(Fixture, "docker: replace (recreate) gives a new id and removes the old") {
  const std::string agent = Agent("recreate");
  auto first = Apply(Action::kCreate, agent, HelloSpec("v1"));
  REQUIRE_MESSAGE(first.status.ok(), first.status.message());
  REQUIRE(first.instances.size() == 1);
  const std::string old_id = first.instances[0].id;

  auto second = Apply(Action::kReplace, agent, HelloSpec("v2"), Refs(first.instances));
  REQUIRE_MESSAGE(second.status.ok(), second.status.message());
  REQUIRE(second.instances.size() == 1);
  CHECK(second.instances[0].id != old_id);
  CHECK(second.instances[0].name == agent);
  CHECK(client_->InspectContainer(old_id).status().code() == Code::kNotFound);
  auto root = Get(second.instances[0].endpoint, "/");
  CHECK(json::parse(root.body, nullptr, false)["greeting"] == "v2");
}

TEST_CASE_FIXTURE(Fixture, "docker: start-first replace swaps in the healthy new version") {
  const std::string agent = Agent("startfirst");
  json v1 = HelloSpec("v1");
  v1["strategy"]["type"] = "start-first";
  auto first = Apply(Action::kCreate, agent, v1);
  REQUIRE_MESSAGE(first.status.ok(), first.status.message());
  json v2 = v1;
  v2["env"]["GREETING"] = "v2";
  auto second = Apply(Action::kReplace, agent, v2, Refs(first.instances));
  REQUIRE_MESSAGE(second.status.ok(), second.status.message());
  CHECK(second.health == "healthy");
  REQUIRE(second.instances.size() == 1);
  CHECK(second.instances[0].name == agent);
  CHECK(second.instances[0].id != first.instances[0].id);
  CHECK(client_->InspectContainer(first.instances[0].id).status().code() == Code::kNotFound);
  CHECK(json::parse(Get(second.instances[0].endpoint, "/").body, nullptr, false)["greeting"] ==
        "v2");
}

TEST_CASE_FIXTURE(Fixture, "docker: start-first with an unhealthy new version keeps the old") {
  const std::string agent = Agent("keepold");
  json v1 = HelloSpec("v1");
  v1["strategy"]["type"] = "start-first";
  auto first = Apply(Action::kCreate, agent, v1);
  REQUIRE_MESSAGE(first.status.ok(), first.status.message());
  REQUIRE(first.instances.size() == 1);

  json bad = v1;
  bad["env"]["HEALTH_FAIL"] = "1";
  bad["healthCheck"]["retries"] = 5;
  auto second = Apply(Action::kReplace, agent, bad, Refs(first.instances));
  CHECK(second.status.code() == Code::kFailed);
  CHECK(second.status.message().find("did not become healthy") != std::string::npos);
  CHECK(second.status.message().find("the previous version keeps serving") != std::string::npos);
  CHECK(second.health == "unhealthy");

  auto seen = Observed(agent);
  REQUIRE(seen.size() == 1);  // the -next container is gone
  CHECK(seen[0].id == first.instances[0].id);
  CHECK(seen[0].name == agent);
  CHECK(seen[0].running);
  CHECK(Get(seen[0].endpoint, "/health").status == 200);
  REQUIRE(second.instances.size() == 1);
  CHECK(second.instances[0].id == first.instances[0].id);
}

TEST_CASE_FIXTURE(Fixture, "docker: delete removes only our containers") {
  const std::string a = Agent("del-a");
  const std::string b = Agent("del-b");
  auto ra = Apply(Action::kCreate, a, HelloSpec("a", false));
  auto rb = Apply(Action::kCreate, b, HelloSpec("b", false));
  REQUIRE_MESSAGE(ra.status.ok(), ra.status.message());
  REQUIRE_MESSAGE(rb.status.ok(), rb.status.message());
  CHECK(ra.health == "unknown");

  auto del = Apply(Action::kDelete, a, nullptr, Refs(ra.instances));
  REQUIRE_MESSAGE(del.status.ok(), del.status.message());
  CHECK(del.instances.empty());
  CHECK(Observed(a).empty());
  CHECK(Observed(b).size() == 1);

  SUBCASE("deleting again: not found counts as deleted") {
    auto again = Apply(Action::kDelete, a, nullptr, Refs(ra.instances));
    CHECK_MESSAGE(again.status.ok(), again.status.message());
  }
  SUBCASE("a prior instance without our label is refused and untouched") {
    json body = {{"Image", kHelloImage}, {"Labels", {{"purpose", "itest-foreign"}}}};
    auto foreign = client_->CreateContainer(Agent("foreign-del"), body);
    REQUIRE_MESSAGE(foreign.ok(), foreign.status().message());
    created_.push_back(*foreign);
    auto refused = Apply(Action::kDelete, a, nullptr, {InstanceRef{*foreign, "x"}});
    CHECK(refused.status.code() == Code::kConflict);
    CHECK(client_->InspectContainer(*foreign).ok());
  }
  SUBCASE("another agent's container is refused") {
    auto refused = Apply(Action::kDelete, a, nullptr, Refs(rb.instances));
    CHECK(refused.status.code() == Code::kConflict);
    CHECK(Observed(b).size() == 1);
  }
}

TEST_CASE_FIXTURE(Fixture, "docker: a foreign container holding the name is a conflict") {
  const std::string agent = Agent("taken");
  json body = {{"Image", kHelloImage}, {"Labels", {{"purpose", "itest-foreign"}}}};
  auto foreign = client_->CreateContainer(agent, body);
  REQUIRE_MESSAGE(foreign.ok(), foreign.status().message());
  created_.push_back(*foreign);
  REQUIRE(client_->StartContainer(*foreign).ok());

  auto r = Apply(Action::kCreate, agent, HelloSpec("mine"));
  CHECK(r.status.code() == Code::kConflict);
  CHECK(r.status.message().find("container name '" + agent +
                                "' is already used by a container reconcile does not manage") !=
        std::string::npos);
  CHECK(r.status.message().find(foreign->substr(0, 12)) != std::string::npos);
  CHECK(r.instances.empty());

  auto after = client_->InspectContainer(*foreign);
  REQUIRE(after.ok());
  CHECK((*after)["State"]["Running"] == true);
  CHECK((*after)["Config"]["Labels"].value("purpose", "") == "itest-foreign");
}

TEST_CASE_FIXTURE(Fixture, "docker: a missing image that cannot be pulled fails clearly") {
  const std::string agent = Agent("noimage");
  json spec = HelloSpec("x");
  spec["image"] = "127.0.0.1:1/reconcile-itest/missing:0.0.0";
  auto r = Apply(Action::kCreate, agent, spec);
  CHECK_FALSE(r.status.ok());
  CHECK(r.status.message().find("image 127.0.0.1:1/reconcile-itest/missing:0.0.0 is not present "
                                "and could not be pulled") != std::string::npos);
  CHECK(r.instances.empty());
  CHECK(Observed(agent).empty());
}

TEST_CASE_FIXTURE(Fixture, "docker: an agent that never becomes healthy fails within retries") {
  const std::string agent = Agent("unhealthy");
  json spec = HelloSpec("x");
  spec["env"]["HEALTH_FAIL"] = "1";
  spec["healthCheck"]["retries"] = 4;
  spec["healthCheck"]["interval"] = "200ms";
  auto start = std::chrono::steady_clock::now();
  auto r = Apply(Action::kCreate, agent, spec);
  auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(r.status.code() == Code::kFailed);
  CHECK(r.status.message().find("did not become healthy") != std::string::npos);
  CHECK(r.status.message().find("503") != std::string::npos);
  CHECK(r.health == "unhealthy");
  CHECK(elapsed < std::chrono::seconds(15));
  int waits = 0;
  for (const std::string& m : progress_) waits += m.find("waiting for health") != std::string::npos;
  CHECK(waits == 4);
}

TEST_CASE_FIXTURE(Fixture, "docker: a container that exits reports its exit code and logs") {
  const std::string agent = Agent("exits");
  json spec = HelloSpec("x");
  spec["env"]["PORT"] = "not-a-port";
  auto r = Apply(Action::kCreate, agent, spec);
  CHECK(r.status.code() == Code::kFailed);
  CHECK(r.status.message().find("exit code 2") != std::string::npos);
  CHECK(r.status.message().find("invalid PORT") != std::string::npos);
}

TEST_CASE_FIXTURE(Fixture, "docker: concurrent applies for different agents") {
  std::vector<std::string> agents = {Agent("par-c"), Agent("par-a"), Agent("par-b")};
  std::vector<ApplyChangeResponse> results(agents.size());
  std::vector<ApplyChangeRequest> requests(agents.size());
  for (std::size_t i = 0; i < agents.size(); ++i) {
    json spec = HelloSpec("parallel " + std::to_string(i));
    spec["replicas"] = 2;
    requests[i].target = target_;
    requests[i].change.name = agents[i];
    requests[i].change.action = Action::kCreate;
    requests[i].change.desired = spec;
    requests[i].change.desired_hash = SpecHash(spec);
    requests[i].revision = "rev-" + RunPrefix();
  }
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < agents.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = provider_->ApplyChange(requests[i]); });
  }
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < agents.size(); ++i) {
    for (const InstanceRecord& r : results[i].instances) created_.push_back(r.id);
    CHECK_MESSAGE(results[i].status.ok(), results[i].status.message());
    REQUIRE(results[i].instances.size() == 2);
    CHECK(results[i].instances[0].name == agents[i]);
    CHECK(results[i].instances[1].name == agents[i] + "-1");
    for (const InstanceRecord& r : results[i].instances) {
      CHECK(Get(r.endpoint, "/health").status == 200);
    }
  }
  auto all = provider_->Observe(ObserveRequest{target_});
  REQUIRE(all.status.ok());
  CHECK(std::is_sorted(all.instances.begin(), all.instances.end(),
                       [](const ObservedInstance& a, const ObservedInstance& b) {
                         return std::tie(a.agent, a.name) < std::tie(b.agent, b.name);
                       }));
}

}  // namespace
}  // namespace reconcile::docker
