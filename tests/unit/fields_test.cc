// Container fields and exec/TCP health checks of issue #13 across the layers:
// decoding (and every error with its position and field), the normalized
// spec (each field absent when unset, so that existing agents keep their
// hash) and its inverse, the planner's field-level diff, and the Docker create
// body.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "docker/container_spec.h"
#include "docker/engine_client.h"
#include "reconcile/loader.h"
#include "reconcile/planner.h"
#include "reconcile/provider_json.h"
#include "reconcile/spec.h"
#include "unit/engine/test_world.h"

namespace reconcile {
namespace {

using nlohmann::json;

constexpr const char* kAgent =
    "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata:\n  name: db\n"
    "  labels: {team: cx}\nspec:\n  image: acme/db:1\n  target: local\n  port: 5432\n";

Diagnostics Decode(const std::string& spec_lines, DesiredState* out) {
  LoadLimits limits;
  Diagnostics diags;
  DecodeFile("m.yaml", "", std::string(kAgent) + spec_lines, limits, *out, diags);
  return diags;
}

using testing::All;

json BodyOf(const Agent& a) {
  auto spec = docker::ContainerSpecFromJson(NormalizedSpec(a, a.image));
  REQUIRE_MESSAGE(spec.ok(), spec.status().message());
  auto body = docker::BuildCreateBody(*spec, {a.name, "sha256:x", "rev", "127.0.0.1", ""}, {});
  REQUIRE(body.ok());
  return *body;
}

TEST_CASE("fields: every container field decodes and reaches the spec and the create body") {
  DesiredState state;
  auto diags = Decode(R"(  stopSignal: SIGINT
  stopGracePeriod: 1m
  user: "999:999"
  capAdd: [SYS_TIME, NET_ADMIN]
  capDrop: [ALL]
  readOnlyRootFilesystem: true
  labels: {com.example.tier: db, traefik.enable: true, team: cx}
  hostname: primary
  resources: {memory: 256Mi, gpus: all}
)",
                      &state);
  REQUIRE_MESSAGE(!diags.HasErrors(), All(diags));
  const Agent& a = state.agents[0];
  CHECK(a.stop_signal == "SIGINT");
  CHECK(a.stop_grace_period_ms == 60000);
  CHECK(a.user == "999:999");
  CHECK(a.cap_add == std::vector<std::string>{"NET_ADMIN", "SYS_TIME"});  // sorted
  CHECK(a.cap_drop == std::vector<std::string>{"ALL"});
  CHECK(a.read_only_root_filesystem);
  CHECK(a.container_labels.at("traefik.enable") == "true");
  CHECK(a.hostname == "primary");
  CHECK(a.resources.gpus == "all");

  json spec = NormalizedSpec(a, a.image);
  CHECK(spec["stopSignal"] == "SIGINT");
  CHECK(spec["stopGracePeriod"] == "1m");
  CHECK(spec["user"] == "999:999");
  CHECK(spec["capAdd"] == json({"NET_ADMIN", "SYS_TIME"}));
  CHECK(spec["capDrop"] == json({"ALL"}));
  CHECK(spec["readOnlyRootFilesystem"] == true);
  CHECK(spec["hostname"] == "primary");
  CHECK(spec["resources"]["gpus"] == "all");
  // metadata.labels and spec.labels, merged
  CHECK(spec["labels"] ==
        json({{"team", "cx"}, {"com.example.tier", "db"}, {"traefik.enable", "true"}}));

  json body = BodyOf(a);
  CHECK(body["StopSignal"] == "SIGINT");
  CHECK(body["StopTimeout"] == 60);
  CHECK(body["User"] == "999:999");
  CHECK(body["Hostname"] == "primary");
  CHECK(body["HostConfig"]["CapAdd"] == json({"NET_ADMIN", "SYS_TIME"}));
  CHECK(body["HostConfig"]["CapDrop"] == json({"ALL"}));
  CHECK(body["HostConfig"]["ReadonlyRootfs"] == true);
  CHECK(body["HostConfig"]["DeviceRequests"] ==
        json::parse(R"([{"Driver": "", "Count": -1, "Capabilities": [["gpu"]]}])"));
  CHECK(body["Labels"]["com.example.tier"] == "db");
  CHECK(body["Labels"]["team"] == "cx");
  CHECK(body["Labels"]["reconcile.dev/managed-by"] == "reconcile");

  // The inverse (rollback re-applies a recorded spec) gives the same spec back.
  auto back = AgentFromSpec("db", spec);
  REQUIRE_MESSAGE(back.ok(), back.status().message());
  CHECK(NormalizedSpec(*back, back->image) == spec);
}

TEST_CASE("fields: gpus as a count, user as a number") {
  DesiredState state;
  auto diags = Decode("  user: 1000\n  resources: {gpus: 2}\n", &state);
  REQUIRE_MESSAGE(!diags.HasErrors(), All(diags));
  CHECK(state.agents[0].user == "1000");
  json spec = NormalizedSpec(state.agents[0], "acme/db:1");
  CHECK(spec["resources"]["gpus"] == 2);
  CHECK(BodyOf(state.agents[0])["HostConfig"]["DeviceRequests"][0]["Count"] == 2);
}

TEST_CASE("fields: each is absent from the spec when unset, so existing hashes stay") {
  Agent a = testing::MakeAgent("a");
  json spec = NormalizedSpec(a, a.image);
  for (const char* key : {"stopSignal", "stopGracePeriod", "user", "capAdd", "capDrop",
                          "readOnlyRootFilesystem", "hostname"}) {
    CHECK_MESSAGE(!spec.contains(key), key);
  }
  CHECK(spec["resources"] == json::object());
  CHECK(spec["labels"] == json::object());
  // An HTTP health check keeps its v0.1 shape.
  a.health_check = HealthCheck{};
  CHECK(NormalizedSpec(a, a.image)["healthCheck"] == json({{"path", "/health"},
                                                           {"port", 8080},
                                                           {"interval", "1s"},
                                                           {"timeout", "2s"},
                                                           {"retries", 30},
                                                           {"startPeriod", "0s"}}));
  // readOnlyRootFilesystem: false is the default, not a change.
  DesiredState state;
  REQUIRE(!Decode("  readOnlyRootFilesystem: false\n", &state).HasErrors());
  CHECK(!NormalizedSpec(state.agents[0], "acme/db:1").contains("readOnlyRootFilesystem"));
  // Unset fields leave the create body as before: Hostname is the agent's name.
  json body = BodyOf(a);
  CHECK(body["Hostname"] == "a");
  for (const char* key : {"StopSignal", "StopTimeout", "User", "Healthcheck"}) {
    CHECK_MESSAGE(!body.contains(key), key);
  }
  for (const char* key : {"CapAdd", "CapDrop", "ReadonlyRootfs", "DeviceRequests"}) {
    CHECK_MESSAGE(!body["HostConfig"].contains(key), key);
  }
}

TEST_CASE("healthCheck.exec: the engine's Healthcheck, in nanoseconds") {
  DesiredState state;
  auto diags = Decode(R"(  healthCheck:
    exec: [/bin/sh, -c, "pg_isready -U postgres"]
    interval: 500ms
    timeout: 3s
    retries: 5
    startPeriod: 10s
)",
                      &state);
  REQUIRE_MESSAGE(!diags.HasErrors(), All(diags));
  const Agent& a = state.agents[0];
  REQUIRE(a.health_check);
  CHECK(a.health_check->kind == HealthCheck::Kind::kExec);
  json spec = NormalizedSpec(a, a.image);
  CHECK(spec["healthCheck"] == json({{"exec", {"/bin/sh", "-c", "pg_isready -U postgres"}},
                                     {"interval", "500ms"},
                                     {"timeout", "3s"},
                                     {"retries", 5},
                                     {"startPeriod", "10s"}}));
  json body = BodyOf(a);
  CHECK(body["Healthcheck"] == json({{"Test", {"CMD", "/bin/sh", "-c", "pg_isready -U postgres"}},
                                     {"Interval", 500000000LL},
                                     {"Timeout", 3000000000LL},
                                     {"Retries", 5},
                                     {"StartPeriod", 10000000000LL}}));
  // No port is published for an exec check.
  CHECK(body["ExposedPorts"].size() == 1);
  auto back = AgentFromSpec("db", spec);
  REQUIRE_MESSAGE(back.ok(), back.status().message());
  CHECK(back->health_check->exec == a.health_check->exec);
}

TEST_CASE("healthCheck.tcp: the port is published for the check, no engine Healthcheck") {
  DesiredState state;
  auto diags = Decode("  healthCheck: {tcp: 6379}\n", &state);
  REQUIRE_MESSAGE(!diags.HasErrors(), All(diags));
  const Agent& a = state.agents[0];
  CHECK(a.health_check->kind == HealthCheck::Kind::kTcp);
  CHECK(a.health_check->port == 6379);
  json spec = NormalizedSpec(a, a.image);
  CHECK(spec["healthCheck"]["tcp"] == 6379);
  CHECK(!spec["healthCheck"].contains("path"));
  json body = BodyOf(a);
  CHECK(!body.contains("Healthcheck"));
  CHECK(body["HostConfig"]["PortBindings"]["6379/tcp"][0]["HostIp"] == "127.0.0.1");
  auto back = AgentFromSpec("db", spec);
  REQUIRE_MESSAGE(back.ok(), back.status().message());
  CHECK(back->health_check->kind == HealthCheck::Kind::kTcp);
}

TEST_CASE("fields: each error names file:line:column and the field, and nothing is kept") {
  struct Row {
    const char* name;
    const char* yaml;
    const char* want;
  };
  const Row rows[] = {
      {"path and exec", "  healthCheck:\n    path: /health\n    exec: [\"true\"]\n",
       "m.yaml:12:5: error: spec.healthCheck.exec: path (HTTP), exec (a command) and tcp (a port) "
       "are exclusive: 'path' is set already; keep one"},
      {"exec and tcp", "  healthCheck: {exec: [\"true\"], tcp: 80}\n",
       "m.yaml:10:33: error: spec.healthCheck.tcp: path (HTTP), exec (a command) and tcp"},
      {"empty exec", "  healthCheck: {exec: []}\n",
       "m.yaml:10:23: error: spec.healthCheck.exec: must be a non-empty list"},
      {"exec not a list", "  healthCheck: {exec: \"pg_isready\"}\n",
       "m.yaml:10:23: error: spec.healthCheck.exec: must be a list of strings, got a string"},
      {"tcp out of range", "  healthCheck: {tcp: 70000}\n",
       "m.yaml:10:22: error: spec.healthCheck.tcp: must be between 1 and 65535, got 70000"},
      {"port with tcp", "  healthCheck: {tcp: 80, port: 81}\n",
       "m.yaml:10:26: error: spec.healthCheck.port: only with the HTTP check (path)"},
      {"unknown signal", "  stopSignal: SIGNOPE\n",
       "m.yaml:10:15: error: spec.stopSignal: invalid value 'SIGNOPE': must be a signal name"},
      {"signal without SIG", "  stopSignal: INT\n",
       "m.yaml:10:15: error: spec.stopSignal: invalid value 'INT'"},
      {"bad duration", "  stopGracePeriod: 10 seconds\n",
       "m.yaml:10:20: error: spec.stopGracePeriod: invalid duration '10 seconds'"},
      {"sub-second grace", "  stopGracePeriod: 1500ms\n",
       "m.yaml:10:20: error: spec.stopGracePeriod: must be whole seconds from 0s to 1h"},
      {"bad capability", "  capAdd: [NET_ADMIN, FLY]\n",
       "m.yaml:10:23: error: spec.capAdd[1]: unknown capability 'FLY'"},
      {"capability with CAP_", "  capDrop: [CAP_NET_RAW]\n",
       "m.yaml:10:13: error: spec.capDrop[0]: write 'NET_RAW', without the CAP_ prefix"},
      {"lower-case capability", "  capAdd: [net_admin]\n",
       "m.yaml:10:12: error: spec.capAdd[0]: unknown capability 'net_admin'"},
      {"capability twice", "  capAdd: [CHOWN, CHOWN]\n",
       "m.yaml:10:19: error: spec.capAdd[1]: 'CHOWN' is listed twice"},
      {"added and dropped", "  capAdd: [CHOWN]\n  capDrop: [CHOWN]\n",
       "m.yaml:11:13: error: spec.capDrop[0]: 'CHOWN' is in both capAdd and capDrop"},
      {"reserved label", "  labels: {reconcile.dev/agent: other}\n",
       "m.yaml:10:12: error: spec.labels.reconcile.dev/agent: label keys under reconcile.dev/ "
       "are reconcile's own"},
      {"label against metadata", "  labels: {team: ops}\n",
       "m.yaml:10:12: error: spec.labels.team: 'team' is also in metadata.labels with another "
       "value"},
      {"bad label key", "  labels: {\"a b\": x}\n",
       "m.yaml:10:12: error: spec.labels.a b: invalid label key 'a b'"},
      {"bad hostname", "  hostname: Db_1\n",
       "m.yaml:10:13: error: spec.hostname: invalid value 'Db_1': must be a DNS label"},
      {"bad user", "  user: \"root:\"\n", "m.yaml:10:9: error: spec.user: invalid value 'root:'"},
      {"gpus 0", "  resources: {gpus: 0}\n",
       "m.yaml:10:21: error: spec.resources.gpus: must be between 1 and 64, got 0"},
      {"gpus some", "  resources: {gpus: some}\n",
       "m.yaml:10:21: error: spec.resources.gpus: must be all or a number of GPUs from 1 to 64, "
       "got 'some'"},
      {"readOnlyRootFilesystem not bool", "  readOnlyRootFilesystem: yes\n",
       "m.yaml:10:27: error: spec.readOnlyRootFilesystem: must be a boolean"},
  };
  for (const Row& row : rows) {
    SUBCASE(row.name) {
      DesiredState state;
      auto diags = Decode(row.yaml, &state);
      CHECK_MESSAGE(All(diags).find(row.want) != std::string::npos, All(diags));
    }
  }
}

TEST_CASE("fields: a change is a field-level diff that forces replacement on Docker") {
  Agent a = testing::MakeAgent("db");
  State recorded;
  recorded.resources["agent.db"] = testing::Recorded(a, "c1");
  ObserveResponse observed;
  observed.instances = {testing::Running(a, "c1")};
  Agent changed = a;
  changed.user = "1000";
  changed.cap_drop = {"NET_RAW"};
  changed.container_labels = {{"tier", "db"}};
  DesiredState desired = testing::MakeDesired({changed});
  PlanInput in;
  in.desired = &desired;
  in.recorded = &recorded;
  in.observed["local"] = observed;
  in.schemas["docker"] = ProviderSchema{};
  Plan plan = ComputePlan(in);
  REQUIRE(plan.changes.size() == 1);
  CHECK(plan.changes[0].action == Action::kReplace);
  REQUIRE(plan.changes[0].fields.size() == 3);
  CHECK(plan.changes[0].fields[0].path == "capDrop");
  CHECK(plan.changes[0].fields[1].path == "labels.tier");
  CHECK(plan.changes[0].fields[2].path == "user");
  for (const FieldChange& f : plan.changes[0].fields) CHECK(f.forces_replace);
  // Unchanged, the same agent plans nothing.
  DesiredState same = testing::MakeDesired({a});
  in.desired = &same;
  CHECK(ComputePlan(in).changes[0].action == Action::kNoOp);
}

TEST_CASE("healthCheck.exec: the engine's health shows in what Observe reports") {
  json labels = {{"reconcile.dev/managed-by", "reconcile"}, {"reconcile.dev/agent", "db"}};
  json list = json::array();
  for (const char* status : {"Up 3 seconds (health: starting)", "Up 1 minute (healthy)",
                             "Up 2 minutes (unhealthy)", "Up 5 minutes"}) {
    list.push_back({{"Id", status},
                    {"Names", {std::string("/db-") + status[3]}},
                    {"State", "running"},
                    {"Status", status},
                    {"Labels", labels}});
  }
  auto parsed = docker::ParseContainerList(list, "127.0.0.1");
  REQUIRE(parsed.ok());
  std::map<std::string, std::string> health;
  for (const ObservedInstance& i : *parsed) health[i.id] = i.health;
  CHECK(health["Up 3 seconds (health: starting)"] == "starting");
  CHECK(health["Up 1 minute (healthy)"] == "healthy");
  CHECK(health["Up 2 minutes (unhealthy)"] == "unhealthy");
  CHECK(health["Up 5 minutes"] == "");
  // It crosses the provider protocol (out-of-process providers) both ways.
  for (const ObservedInstance& i : *parsed) {
    auto back = ObservedInstanceFromJson(ToJson(i));
    REQUIRE(back.ok());
    CHECK(*back == i);
  }
}

// A loopback listener that accepts one connection and then closes it at once
// (as Docker's port proxy does when nothing listens in the container), or
// keeps it open for a second.
class OneShotServer {
 public:
  explicit OneShotServer(bool close_at_once) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(listen(fd_, 1) == 0);
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this, close_at_once] {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      if (!close_at_once) std::this_thread::sleep_for(std::chrono::seconds(1));
      close(c);
    });
  }
  ~OneShotServer() {
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

TEST_CASE("healthCheck.tcp: an accept that is closed at once is not healthy") {
  using std::chrono::milliseconds;
  {
    OneShotServer listening(/*close_at_once=*/false);
    Status st =
        docker::TcpProbe("127.0.0.1", listening.port(), milliseconds(1000), milliseconds(250));
    CHECK_MESSAGE(st.ok(), st.message());
  }
  {
    OneShotServer proxy(/*close_at_once=*/true);
    Status st = docker::TcpProbe("127.0.0.1", proxy.port(), milliseconds(1000), milliseconds(250));
    CHECK(st.code() == Code::kUnavailable);
    CHECK_MESSAGE(
        st.message().find("accepted the connection and closed it at once") != std::string::npos,
        st.message());
  }
  int free_port = 0;
  { free_port = OneShotServer(true).port(); }  // closed again: nothing listens there now
  Status refused = docker::TcpProbe("127.0.0.1", free_port, milliseconds(1000), milliseconds(250));
  CHECK(refused.code() == Code::kUnavailable);
  CHECK_MESSAGE(refused.message().find("connect to 127.0.0.1:") != std::string::npos,
                refused.message());
}

}  // namespace
}  // namespace reconcile
