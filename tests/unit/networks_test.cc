// Networks, unpublished ports and secret files (issue #13) across the
// layers: decoding (and every error with its position and field), the
// normalized spec and its hash, the planner's words, the Docker create,
// network and connect bodies, and the host folder of secret files.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "builtin/builtin_providers.h"
#include "docker/container_spec.h"
#include "docker/secret_files.h"
#include "reconcile/loader.h"
#include "reconcile/planner.h"
#include "reconcile/provider.h"
#include "reconcile/secrets.h"
#include "reconcile/spec.h"
#include "unit/engine/test_world.h"

namespace reconcile {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// Eight lines: the spec lines of a test start at line 9.
constexpr const char* kAgent =
    "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata:\n  name: db\nspec:\n"
    "  image: acme/db:1\n  target: local\n  port: 5432\n";

Diagnostics Decode(const std::string& spec_lines, DesiredState* out) {
  LoadLimits limits;
  Diagnostics diags;
  DecodeFile("m.yaml", "", std::string(kAgent) + spec_lines, limits, *out, diags);
  return diags;
}

using testing::All;

struct Row {
  const char* name;
  const char* yaml;
  const char* want;
};

void CheckRows(const Row* begin, const Row* end) {
  for (const Row* row = begin; row != end; ++row) {
    SUBCASE(row->name) {
      DesiredState bad;
      auto d = Decode(row->yaml, &bad);
      CHECK_MESSAGE(All(d).find(row->want) != std::string::npos, All(d));
    }
  }
}

TEST_CASE("networks: names or {name, aliases}, sorted by name") {
  DesiredState state;
  auto diags = Decode(R"(  networks:
    - frontend
    - {name: backend, aliases: [postgres, pg, db]}
)",
                      &state);
  REQUIRE_MESSAGE(!diags.HasErrors(), All(diags));
  const auto& n = state.agents[0].networks;
  REQUIRE(n.size() == 2);
  CHECK(n[0].name == "backend");
  CHECK(n[0].aliases == std::vector<std::string>{"postgres", "pg"});  // "db" is the agent's name
  CHECK(n[1].name == "frontend");
  CHECK(n[1].aliases.empty());
}

TEST_CASE("networks: each error names file:line:column and the field") {
  const std::string long_name(64, 'n');
  const Row rows[] = {
      {"invalid name", "  networks:\n    - -bad\n",
       "m.yaml:10:7: error: spec.networks[0]: invalid value '-bad': must be a network name"},
      {"invalid name in a map", "  networks:\n    - {name: 'a b'}\n",
       "m.yaml:10:14: error: spec.networks[0].name: invalid value 'a b'"},
      {"the engine's own network", "  networks:\n    - host\n",
       "m.yaml:10:7: error: spec.networks[0]: 'host' is one of the engine's own networks, not one "
       "reconcile owns; to run on an existing network, set the Target's docker.network"},
      {"listed twice", "  networks:\n    - back\n    - {name: back}\n",
       "m.yaml:11:14: error: spec.networks[1].name: network 'back' is listed twice (first at "
       "spec.networks[0])"},
      {"alias not a DNS label", "  networks:\n    - {name: back, aliases: [Web_1]}\n",
       "m.yaml:10:30: error: spec.networks[0].aliases[0]: invalid value 'Web_1': must be a DNS "
       "label"},
      {"alias twice", "  networks:\n    - {name: back, aliases: [web, web]}\n",
       "m.yaml:10:35: error: spec.networks[0].aliases[1]: alias 'web' is listed twice"},
      {"unknown key", "  networks:\n    - {name: back, alias: [web]}\n",
       "m.yaml:10:20: error: spec.networks[0].alias: unknown field 'alias' (did you mean "
       "'aliases'?)"},
      {"missing name", "  networks:\n    - {aliases: [web]}\n",
       "spec.networks[0].name: required field is missing"},
      {"not a list", "  networks: back\n",
       "m.yaml:9:13: error: spec.networks: must be a list of network names or {name, aliases}"},
      {"a list item that is a list", "  networks:\n    - [a]\n",
       "spec.networks[0]: must be a network name or {name, aliases}"},
  };
  CheckRows(std::begin(rows), std::end(rows));
  SUBCASE("a name longer than 63") {
    DesiredState bad;
    auto d = Decode("  networks:\n    - " + long_name + "\n", &bad);
    CHECK_MESSAGE(
        All(d).find("m.yaml:10:7: error: spec.networks[0]: invalid value") != std::string::npos,
        All(d));
  }
}

TEST_CASE("publish: false on the main port and on ports[]; errors name the field") {
  DesiredState state;
  auto diags = Decode(R"(  publish: false
  ports:
    - {containerPort: 9000, publish: false}
    - {containerPort: 9001}
)",
                      &state);
  REQUIRE_MESSAGE(!diags.HasErrors(), All(diags));
  const Agent& a = state.agents[0];
  CHECK_FALSE(a.publish);
  REQUIRE(a.ports.size() == 2);
  CHECK_FALSE(a.ports[0].publish);
  CHECK(a.ports[1].publish);

  const Row rows[] = {
      {"hostPort with publish: false", "  hostPort: 15432\n  publish: false\n",
       "m.yaml:9:3: error: spec.hostPort: not allowed with publish: false (the main port is not "
       "bound on the host)"},
      {"an HTTP health check on an unpublished port",
       "  publish: false\n  healthCheck: {path: /health}\n",
       "m.yaml:10:16: error: spec.healthCheck: the HTTP health check needs its port published, "
       "and spec.publish is false"},
      {"a port's hostPort with publish: false",
       "  ports:\n    - {containerPort: 9000, publish: false, hostPort: 9}\n",
       "m.yaml:10:45: error: spec.ports[0].hostPort: not allowed with publish: false"},
      {"a port's hostIP with publish: false",
       "  ports:\n    - {containerPort: 9000, hostIP: 0.0.0.0, publish: false}\n",
       "m.yaml:10:29: error: spec.ports[0].hostIP: not allowed with publish: false"},
      {"publish not a boolean", "  publish: nope\n",
       "m.yaml:9:12: error: spec.publish: must be a boolean"},
  };
  CheckRows(std::begin(rows), std::end(rows));
  SUBCASE("an HTTP health check on another (published) port is fine") {
    DesiredState ok;
    auto d = Decode("  publish: false\n  healthCheck: {path: /health, port: 9090}\n", &ok);
    CHECK_MESSAGE(!d.HasErrors(), All(d));
  }
}

TEST_CASE("secretFiles: references with target and mode") {
  DesiredState state;
  auto diags = Decode(R"(  secretFiles:
    db-password: {file: db.pass}
    token: {env: RECONCILE_SECRET_TOKEN, target: /etc/app//token, mode: "0440"}
)",
                      &state);
  REQUIRE_MESSAGE(!diags.HasErrors(), All(diags));
  const auto& f = state.agents[0].secret_files;
  REQUIRE(f.size() == 2);
  CHECK(f.at("db-password") ==
        SecretFile{{SecretRef::Source::kFile, "db.pass"}, "/run/secrets/db-password", 0400});
  CHECK(f.at("token") ==
        SecretFile{{SecretRef::Source::kEnv, "RECONCILE_SECRET_TOKEN"}, "/etc/app/token", 0440});
}

TEST_CASE("secretFiles: each error names file:line:column and the field") {
  const Row rows[] = {
      {"a relative target", "  secretFiles:\n    a: {file: a, target: run/a}\n",
       "m.yaml:10:26: error: spec.secretFiles.a.target: invalid value 'run/a': must be an "
       "absolute path"},
      {"two secret files with one target",
       "  secretFiles:\n    a: {file: a, target: /s}\n    b: {file: b, target: /s}\n",
       "m.yaml:11:26: error: spec.secretFiles.b.target: '/s' is already the target of "
       "spec.secretFiles.a"},
      {"a target that is also a volume target",
       "  volumes:\n    - {type: volume, source: data, target: /data}\n  secretFiles:\n"
       "    a: {file: a, target: /data/}\n",
       "m.yaml:12:26: error: spec.secretFiles.a.target: '/data' is already the target of a volume "
       "(spec.volumes)"},
      {"a default target that is also a volume target",
       "  volumes:\n    - {type: tmpfs, target: /run/secrets/a}\n  secretFiles:\n"
       "    a: {file: a}\n",
       "m.yaml:12:5: error: spec.secretFiles.a: '/run/secrets/a' is already the target of a "
       "volume (spec.volumes) (the default target /run/secrets/NAME)"},
      {"an unknown key", "  secretFiles:\n    a: {file: a, mod: \"0400\"}\n",
       "m.yaml:10:18: error: spec.secretFiles.a.mod: unknown field 'mod' (did you mean 'mode'?)"},
      {"a mode that is a number", "  secretFiles:\n    a: {file: a, mode: 0400}\n",
       "m.yaml:10:24: error: spec.secretFiles.a.mode: must be an octal mode as a quoted string"},
      {"a mode that is not octal", "  secretFiles:\n    a: {file: a, mode: \"0800\"}\n",
       "spec.secretFiles.a.mode: must be an octal mode"},
      {"both file and env", "  secretFiles:\n    a: {file: a, env: RECONCILE_SECRET_A}\n",
       "m.yaml:10:8: error: spec.secretFiles.a: must have exactly one of 'file', 'env', 'aws', "
       "'vault' or 'sops'"},
      {"no reference", "  secretFiles:\n    a: {target: /a}\n",
       "spec.secretFiles.a: must have exactly one of 'file', 'env', 'aws', 'vault' or 'sops'"},
      {"a file reference that escapes", "  secretFiles:\n    a: {file: ../x}\n",
       "spec.secretFiles.a.file: invalid value '../x'"},
      {"a bad name", "  secretFiles:\n    a/b: {file: a}\n",
       "m.yaml:10:5: error: spec.secretFiles.a/b: invalid secret name 'a/b'"},
      {"not a map", "  secretFiles: [a]\n", "m.yaml:9:16: error: spec.secretFiles: must be a map"},
  };
  CheckRows(std::begin(rows), std::end(rows));
  SUBCASE("a plain value is refused without being echoed") {
    DesiredState bad;
    auto d = Decode("  secretFiles:\n    a: hunter2-value\n", &bad);
    std::string all = All(d);
    CHECK_MESSAGE(all.find("m.yaml:10:8: error: spec.secretFiles.a: secrets must be references, "
                           "not values") != std::string::npos,
                  all);
    CHECK(all.find("hunter2") == std::string::npos);
  }
}

LoadLimits WithBuiltinProviders() {
  LoadLimits limits;
  limits.providers = &BuiltinProviders();
  return limits;
}

constexpr const char* kTargets =
    "---\napiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata:\n  name: local\nspec:\n"
    "  provider: docker\n  docker: {host: \"tcp://127.0.0.1:2375\"}\n";

TEST_CASE("secretFiles: a remote engine and the {env} allow-list are load errors") {
  FolderSet tree;
  auto result = LoadFiles(
      {{"m.yaml", std::string(kAgent) + "  secretFiles:\n    a: {env: HOST_TOKEN}\n" + kTargets}},
      tree, WithBuiltinProviders());
  std::string all = All(result.diagnostics);
  CHECK_MESSAGE(all.find("m.yaml:10:5: error: spec.secretFiles: secretFiles need a local Docker "
                         "Engine (a unix:// socket on this host)") != std::string::npos,
                all);
  Diagnostics policy;
  CheckSecretEnvPolicy(result.state, {}, policy);
  CHECK_MESSAGE(
      All(policy).find("m.yaml:10:14: error: spec.secretFiles.a: agent 'db': "
                       "environment variable HOST_TOKEN is not allowed") != std::string::npos,
      All(policy));
}

TEST_CASE("networks: a Target on the host network cannot join them (load error)") {
  FolderSet tree;
  auto result = LoadFiles(
      {{"m.yaml", std::string(kAgent) + "  networks: [backend]\n" +
                      "---\napiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata:\n  name: "
                      "local\nspec:\n  provider: docker\n  docker: {network: host}\n"}},
      tree, WithBuiltinProviders());
  std::string all = All(result.diagnostics);
  CHECK_MESSAGE(
      all.find("m.yaml:9:13: error: spec.networks: Target 'local' runs containers on "
               "docker.network host, which cannot join other networks") != std::string::npos,
      all);
}

TEST_CASE("networks, publish, secretFiles: in the spec hash only when set") {
  Agent a = testing::MakeAgent("api");
  a.ports = {{9000, "tcp", "", 0}};
  json plain = NormalizedSpec(a, a.image);
  for (const char* key : {"networks", "publish", "secretFiles"}) {
    CHECK_MESSAGE(!plain.contains(key), key);
  }
  CHECK(plain["ports"]["9000/tcp"] == json({{"hostPort", 0}}));  // no publish: hash unchanged

  Agent b = a;
  b.networks = {{"backend", {"api-v1"}}};
  json with_net = NormalizedSpec(b, b.image);
  CHECK(with_net["networks"] == json::parse(R"({"backend": {"aliases": ["api-v1"]}})"));
  CHECK(SpecHash(with_net) != SpecHash(plain));

  Agent c = a;
  c.publish = false;
  c.ports[0].publish = false;
  json unpublished = NormalizedSpec(c, c.image);
  CHECK(unpublished["publish"] == false);
  CHECK(unpublished["ports"]["9000/tcp"] == json({{"hostPort", 0}, {"publish", false}}));
  CHECK(SpecHash(unpublished) != SpecHash(plain));

  Agent d = a;
  d.secret_files["token"] = {{SecretRef::Source::kEnv, "RECONCILE_SECRET_T"}, "/run/t", 0440};
  json with_files = NormalizedSpec(d, d.image);
  CHECK(with_files["secretFiles"] == json::parse(R"({"token": {"ref": "env:RECONCILE_SECRET_T",
                                        "target": "/run/t", "mode": "0440"}})"));
  CHECK(SpecHash(with_files) != SpecHash(plain));
}

TEST_CASE("networks, publish, secretFiles: a recorded spec is re-applied exactly (rollback)") {
  Agent a = testing::MakeAgent("api");
  a.publish = false;
  a.networks = {{"backend", {"api-v1"}}, {"edge", {}}};
  a.secret_files["token"] = {{SecretRef::Source::kFile, "token.txt"}, "/run/secrets/token", 0400};
  a.secret_files["key"] = {{SecretRef::Source::kEnv, "RECONCILE_SECRET_K"}, "/etc/k", 0440};
  json spec = NormalizedSpec(a, a.image);
  auto back = AgentFromSpec("api", spec);
  REQUIRE_MESSAGE(back.ok(), back.status().message());
  CHECK_FALSE(back->publish);
  CHECK(back->networks == a.networks);
  CHECK(back->secret_files == a.secret_files);
  CHECK(NormalizedSpec(*back, back->image) == spec);
}

TEST_CASE("networks: the plan says what happens to them; a change forces a replacement") {
  Agent a = testing::MakeAgent("db");
  a.networks = {{"backend", {}}, {"frontend", {"web"}}};
  State recorded;
  recorded.resources["agent.db"] = testing::Recorded(a, "c1");
  ObserveResponse observed;
  observed.instances = {testing::Running(a, "c1")};
  PlanInput in;
  in.recorded = &recorded;
  in.observed["local"] = observed;
  in.schemas["docker"] = ProviderSchema{};

  SUBCASE("prune and destroy") {
    DesiredState desired = testing::MakeDesired({});
    in.desired = &desired;
    Plan plan = ComputePlan(in);
    REQUIRE(plan.changes.size() == 1);
    CHECK(plan.changes[0].action == Action::kDelete);
    CHECK(plan.changes[0].reason ==
          "removed from the desired state; networks 'backend', 'frontend' are removed once no "
          "container is attached (only if reconcile created it)");
  }
  SUBCASE("a changed network list") {
    Agent changed = a;
    changed.networks = {{"backend", {"db-primary"}}};
    DesiredState desired = testing::MakeDesired({changed});
    in.desired = &desired;
    Plan plan = ComputePlan(in);
    REQUIRE(plan.changes.size() == 1);
    CHECK(plan.changes[0].action == Action::kReplace);
    REQUIRE(plan.changes[0].fields.size() == 2);
    CHECK(plan.changes[0].fields[0].path == "networks.backend.aliases");
    CHECK(plan.changes[0].fields[0].forces_replace);
    CHECK(plan.changes[0].fields[1].path == "networks.frontend.aliases");
    CHECK_FALSE(plan.changes[0].fields[1].after.has_value());
  }
}

docker::CreateContext Context(const std::string& agent, const std::string& network = "",
                              const std::string& secret_dir = "") {
  docker::CreateContext ctx{agent, "sha256:x", "rev", "127.0.0.1", network};
  ctx.secret_files_dir = secret_dir;
  return ctx;
}

TEST_CASE("networks: the Docker bodies attach the agent by name and aliases") {
  Agent a = testing::MakeAgent("db");
  a.networks = {{"backend", {"postgres"}}, {"metrics", {}}};
  auto spec = docker::ContainerSpecFromJson(NormalizedSpec(a, a.image));
  REQUIRE_MESSAGE(spec.ok(), spec.status().message());
  REQUIRE(spec->networks.size() == 2);

  SUBCASE("without the Target's network: start on the first, join the others") {
    auto ctx = Context("db");
    auto body = docker::BuildCreateBody(*spec, ctx, {});
    REQUIRE(body.ok());
    CHECK((*body)["HostConfig"]["NetworkMode"] == "backend");
    CHECK((*body)["NetworkingConfig"] == json::parse(R"({"EndpointsConfig":
                                          {"backend": {"Aliases": ["db", "postgres"]}}})"));
    auto more = docker::NetworksToConnect(*spec, ctx);
    REQUIRE(more.size() == 1);
    CHECK(more[0].name == "metrics");
    CHECK(docker::BuildConnectBody("c1", more[0], "db") ==
          json::parse(R"({"Container": "c1", "EndpointConfig": {"Aliases": ["db"]}})"));
  }
  SUBCASE("with the Target's network: start on it (as before), join every agent network") {
    auto ctx = Context("db", "corp-net");
    auto body = docker::BuildCreateBody(*spec, ctx, {});
    REQUIRE(body.ok());
    CHECK((*body)["HostConfig"]["NetworkMode"] == "corp-net");
    CHECK_FALSE(body->contains("NetworkingConfig"));
    CHECK(docker::NetworksToConnect(*spec, ctx).size() == 2);
  }
  SUBCASE("no networks: the body is what it was") {
    Agent plain = testing::MakeAgent("db");
    auto s = docker::ContainerSpecFromJson(NormalizedSpec(plain, plain.image));
    REQUIRE(s.ok());
    auto body = docker::BuildCreateBody(*s, Context("db"), {});
    REQUIRE(body.ok());
    CHECK_FALSE(body->contains("NetworkingConfig"));
    CHECK_FALSE((*body)["HostConfig"].contains("NetworkMode"));
    CHECK(docker::NetworksToConnect(*s, Context("db")).empty());
  }
  CHECK(docker::BuildNetworkBody("backend") ==
        json::parse(R"({"Name": "backend", "Driver": "bridge", "CheckDuplicate": true,
          "Labels": {"reconcile.dev/managed-by": "reconcile",
                     "reconcile.dev/network": "backend"}})"));
  SUBCASE("hostile networks are refused, never thrown") {
    for (const char* bad : {R"([])", R"({"a/b": {}})", R"({"../x": {}})", R"({"n": 3})",
                            R"({"n": {"aliases": "x"}})", R"({"n": {"aliases": ["a b"]}})"}) {
      json s = NormalizedSpec(a, a.image);
      s["networks"] = json::parse(bad);
      CHECK_MESSAGE(!docker::ContainerSpecFromJson(s).ok(), bad);
    }
  }
}

TEST_CASE("publish: false exposes a port without binding it on the host") {
  Agent a = testing::MakeAgent("db");
  a.publish = false;
  a.ports = {{9000, "tcp", "", 0, false}, {9001, "udp", "", 0, true}};
  auto spec = docker::ContainerSpecFromJson(NormalizedSpec(a, a.image));
  REQUIRE_MESSAGE(spec.ok(), spec.status().message());
  auto body = docker::BuildCreateBody(*spec, Context("db"), {});
  REQUIRE(body.ok());
  CHECK((*body)["ExposedPorts"] ==
        json::parse(R"({"8080/tcp": {}, "9000/tcp": {}, "9001/udp": {}})"));
  CHECK((*body)["HostConfig"]["PortBindings"] ==
        json::parse(R"({"9001/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}]})"));

  Agent only = testing::MakeAgent("db");
  only.publish = false;
  auto s = docker::ContainerSpecFromJson(NormalizedSpec(only, only.image));
  REQUIRE(s.ok());
  auto b = docker::BuildCreateBody(*s, Context("db"), {});
  REQUIRE(b.ok());
  CHECK((*b)["ExposedPorts"] == json::parse(R"({"8080/tcp": {}})"));
  CHECK_FALSE((*b)["HostConfig"].contains("PortBindings"));

  // Observed: an unpublished main port gives no endpoint.
  json list = json::array({{{"Id", "c1"},
                            {"Names", {"/db"}},
                            {"State", "running"},
                            {"Labels",
                             {{"reconcile.dev/managed-by", "reconcile"},
                              {"reconcile.dev/agent", "db"},
                              {"reconcile.dev/port", "8080"}}},
                            {"Ports", {{{"PrivatePort", 8080}, {"Type", "tcp"}}}}}});
  auto observed = docker::ParseContainerList(list, "127.0.0.1");
  REQUIRE(observed.ok());
  REQUIRE(observed->size() == 1);
  CHECK((*observed)[0].endpoint.empty());
}

TEST_CASE("secretFiles: bind-mounted read-only from the agent's folder, values never in the body") {
  Agent a = testing::MakeAgent("db");
  a.secret_files["db-password"] = {
      {SecretRef::Source::kFile, "db.pass"}, "/run/secrets/db-password", 0400};
  a.secret_files["token"] = {{SecretRef::Source::kEnv, "RECONCILE_SECRET_T"}, "/etc/t", 0440};
  auto spec = docker::ContainerSpecFromJson(NormalizedSpec(a, a.image));
  REQUIRE_MESSAGE(spec.ok(), spec.status().message());
  REQUIRE(spec->secret_files.size() == 2);
  CHECK(spec->secret_files[1].mode == 0440);
  const std::map<std::string, std::string> values = {
      {SecretFileValueKey("db-password"), "pw-value-1"}, {SecretFileValueKey("token"), "tk-2"}};
  auto body = docker::BuildCreateBody(*spec, Context("db", "", "/dev/shm/x/local/db"), values);
  REQUIRE(body.ok());
  CHECK((*body)["HostConfig"]["Mounts"] == json::parse(R"([
    {"Type": "bind", "Source": "/dev/shm/x/local/db/db-password",
     "Target": "/run/secrets/db-password", "ReadOnly": true},
    {"Type": "bind", "Source": "/dev/shm/x/local/db/token", "Target": "/etc/t",
     "ReadOnly": true}])"));
  CHECK(body->dump().find("pw-value-1") == std::string::npos);
  CHECK((*body)["Env"] == json::array({"GREETING=hi"}));

  auto remote = docker::BuildCreateBody(*spec, Context("db"), values);
  REQUIRE_FALSE(remote.ok());
  CHECK(remote.status().message().find("secretFiles need a local Docker Engine") !=
        std::string::npos);
  SUBCASE("hostile secret files are refused, never thrown") {
    for (const char* bad :
         {R"([])", R"({"a/b": {}})", R"({"..": {}})", R"({"a": 1})", R"({"a": {"target": "rel"}})",
          R"({"a": {"mode": "999"}})", R"({"a": {"mode": 400}})"}) {
      json s = NormalizedSpec(a, a.image);
      s["secretFiles"] = json::parse(bad);
      CHECK_MESSAGE(!docker::ContainerSpecFromJson(s).ok(), bad);
    }
  }
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int ModeOf(const std::string& path) {
  struct stat st {};
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return static_cast<int>(st.st_mode & 07777);
}

TEST_CASE("secretFiles: the host folder holds each value with its mode, private, and is removed") {
  char tmpl[] = "/tmp/secret-files-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  const std::string base = tmpl;
  const std::string root = base + "/root";
  docker::SecretFileStore store(root);
  const std::string dir = store.Dir("local", "db");
  CHECK(dir == root + "/local/db");
  std::vector<docker::SecretFileMount> files = {{"a", "/run/secrets/a", 0400},
                                                {"b", "/etc/b", 0440}};
  std::map<std::string, std::string> values = {{SecretFileValueKey("a"), "first"},
                                               {SecretFileValueKey("b"), "second"}};
  REQUIRE(store.Write("local", "db", files, values).ok());
  CHECK(ReadAll(dir + "/a") == "first");
  CHECK(ReadAll(dir + "/b") == "second");
  CHECK(ModeOf(dir + "/a") == 0400);
  CHECK(ModeOf(dir + "/b") == 0440);
  for (const std::string& folder : {root, root + "/local", dir}) CHECK(ModeOf(folder) == 0700);

  SUBCASE("a rewrite replaces values and drops files no longer listed") {
    values[SecretFileValueKey("a")] = "rotated";
    REQUIRE(store.Write("local", "db", {files[0]}, values).ok());
    CHECK(ReadAll(dir + "/a") == "rotated");
    CHECK_FALSE(fs::exists(dir + "/b"));
  }
  SUBCASE("a missing value writes nothing") {
    Status st = store.Write("local", "api", files, {{SecretFileValueKey("a"), "x"}});
    CHECK(st.code() == Code::kInvalid);
    CHECK_FALSE(fs::exists(store.Dir("local", "api")));
  }
  SUBCASE("a planted symlink on the way is refused") {
    fs::create_directory(base + "/elsewhere");
    fs::create_directory_symlink(base + "/elsewhere", root + "/evil");
    Status st = store.Write("evil", "db", files, values);
    CHECK(st.code() == Code::kInvalid);
    CHECK(st.message().find("is not a folder owned by this user") != std::string::npos);
    CHECK(fs::is_empty(base + "/elsewhere"));
  }
  REQUIRE(store.Remove("local", "db").ok());
  CHECK_FALSE(fs::exists(dir));
  CHECK(store.Remove("local", "db").ok());  // already gone
  fs::remove_all(base);
}

}  // namespace
}  // namespace reconcile
