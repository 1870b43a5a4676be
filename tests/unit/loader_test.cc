// Tests for the desired-state loader (loader.h): decoding of every field,
// every error with its file:line:column and field, limits, cross-document
// checks and the quickstart example.
#include "reconcile/loader.h"

#include "builtin/builtin_providers.h"
#include "fakes/temp_dir.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

namespace reconcile {
namespace {

namespace fs = std::filesystem;
using TempTree = testing::TempDir;

// Loads with the built-in providers' checks, as the binary does.
LoadLimits Builtin(LoadLimits limits = {}) {
  limits.providers = &BuiltinProviders();
  return limits;
}

Diagnostics Decode(const std::string& yaml, DesiredState* out = nullptr,
                   const LoadLimits& limits = Builtin()) {
  DesiredState state;
  Diagnostics diags;
  DecodeFile("m.yaml", "", yaml, limits, out ? *out : state, diags);
  return diags;
}

std::string All(const Diagnostics& diags) {
  std::string s;
  for (const auto& d : diags.items()) s += d.ToString() + "\n";
  return s;
}

constexpr const char* kHeader =
    "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata:\n  name: a\nspec:\n";

TEST_CASE("decodes every Agent field") {
  DesiredState state;
  auto diags = Decode(std::string(kHeader) + R"(  build:
    context: ./app
    dockerfile: docker/Dockerfile
    args: {VERSION: 1.2, DEBUG: true}
  registry: ghcr
  target: local
  port: 8080
  hostPort: 18080
  command: [/bin/agent]
  args: ["--verbose", "-x"]
  env:
    LOG_LEVEL: debug
    WORKERS: 4
  secretEnv:
    API_KEY: {file: api-key}
    TOKEN: {env: HOST_TOKEN}
  replicas: 3
  resources: {cpu: 0.5, memory: 256Mi}
  healthCheck:
    path: /healthz
    port: 9090
    interval: 500ms
    timeout: 3s
    startPeriod: 1m
    retries: 5
  strategy: {type: start-first, autoRollback: false}
  dependsOn: [db, cache]
  suspend: true
  drift: {mode: heal}
  approval: required
)",
                      &state);
  REQUIRE_MESSAGE(!diags.HasErrors(), All(diags));
  REQUIRE(state.agents.size() == 1);
  const Agent& a = state.agents[0];
  CHECK(a.name == "a");
  CHECK(a.image.empty());
  REQUIRE(a.build.has_value());
  CHECK(a.build->context == "./app");
  CHECK(a.build->dockerfile == "docker/Dockerfile");
  CHECK(a.build->args == std::map<std::string, std::string>{{"DEBUG", "true"}, {"VERSION", "1.2"}});
  CHECK(a.registry == "ghcr");
  CHECK(a.target == "local");
  CHECK(a.port == 8080);
  CHECK(a.host_port == 18080);
  CHECK(a.command == std::vector<std::string>{"/bin/agent"});
  CHECK(a.args == std::vector<std::string>{"--verbose", "-x"});
  CHECK(a.env == std::map<std::string, std::string>{{"LOG_LEVEL", "debug"}, {"WORKERS", "4"}});
  CHECK(a.secret_env.at("API_KEY") == SecretRef{SecretRef::Source::kFile, "api-key"});
  CHECK(a.secret_env.at("TOKEN") == SecretRef{SecretRef::Source::kEnv, "HOST_TOKEN"});
  CHECK(a.replicas == 3);
  CHECK(a.resources == Resources{"0.5", "256Mi", ""});
  REQUIRE(a.health_check.has_value());
  CHECK(*a.health_check ==
        HealthCheck{HealthCheck::Kind::kHttp, "/healthz", 9090, {}, 500, 3000, 5, 60000});
  CHECK(a.strategy == Strategy{StrategyType::kStartFirst, false});
  CHECK(a.depends_on == std::vector<std::string>{"db", "cache"});
  CHECK(a.suspend);
  CHECK(a.drift == DriftMode::kHeal);
  CHECK(a.approval == ApprovalMode::kRequired);
  CHECK(a.location == SourceLocation{"m.yaml", 1, 1});
}

TEST_CASE("Agent defaults are the model's") {
  DesiredState state;
  auto diags = Decode(std::string(kHeader) +
                          "  image: nginx:1.27\n  target: t\n  port: 80\n"
                          "  healthCheck: {}\n",
                      &state);
  REQUIRE_MESSAGE(!diags.HasErrors(), All(diags));
  const Agent& a = state.agents.at(0);
  CHECK(a.image == "nginx:1.27");
  CHECK(a.replicas == 1);
  CHECK(a.host_port == 0);
  CHECK(*a.health_check == HealthCheck{});
  CHECK(a.strategy == Strategy{});
  CHECK(a.drift == DriftMode::kReport);
  CHECK(a.approval == ApprovalMode::kAuto);
  CHECK_FALSE(a.suspend);
}

TEST_CASE("decodes Registry and Target fields") {
  DesiredState state;
  auto diags = Decode(R"(apiVersion: reconcile.dev/v1alpha1
kind: Registry
metadata: {name: ghcr, labels: {team: cx}, annotations: {note: x}}
spec:
  url: ghcr.io
  repository: acme/support-bot
  tagStrategy: custom
  customTag: v1
  credentialsEnvPrefix: GHCR
  insecure: true
---
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: dev}
spec:
  provider: docker
  docker: {host: "tcp://10.0.0.5:2376", network: agents, publishAddress: "0.0.0.0"}
---
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: secure}
spec:
  provider: docker
  docker:
    host: tcp://docker.internal:2376
    tls: {caFile: ca.pem, certFile: cert.pem, keyFile: key.pem, serverName: d.example, verify: false}
---
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: plain}
spec: {provider: docker}
---
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: gcp}
spec:
  provider: gcp
  gcp: {projectId: my-project, region: europe-west1, cpu: "1", memory: 512Mi, maxInstances: 3}
---
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: aws}
spec:
  provider: aws
  aws: {region: us-east-1, cpu: 1024, memory: 2 GB, endpoint: "http://127.0.0.1:4566"}
---
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: azure}
spec:
  provider: azure
  azure:
    subscriptionId: 00000000-1111-2222-3333-444444444444
    resourceGroup: rg
    environmentName: env
    location: westeurope
    cpu: 0.25
    minReplicas: 0
---
)",
                      &state);
  REQUIRE_MESSAGE(!diags.HasErrors(), All(diags));
  REQUIRE(state.registries.size() == 1);
  const Registry& r = state.registries[0];
  CHECK(r.labels == std::map<std::string, std::string>{{"team", "cx"}});
  CHECK(r.url == "ghcr.io");
  CHECK(r.repository == "acme/support-bot");
  CHECK(r.tag_strategy == TagStrategy::kCustom);
  CHECK(r.custom_tag == "v1");
  CHECK(r.credentials_env_prefix == "GHCR");
  CHECK(r.insecure);
  REQUIRE(state.targets.size() == 6);
  {
    const Target* secure = state.FindTarget("secure");
    REQUIRE(secure != nullptr);
    CHECK(secure->settings["tls"] == nlohmann::json{{"caFile", "ca.pem"},
                                                    {"certFile", "cert.pem"},
                                                    {"keyFile", "key.pem"},
                                                    {"serverName", "d.example"},
                                                    {"verify", false}});
    state.targets.erase(state.targets.begin() + (secure - state.targets.data()));
  }
  CHECK(state.targets[0].settings == nlohmann::json{{"host", "tcp://10.0.0.5:2376"},
                                                    {"network", "agents"},
                                                    {"publishAddress", "0.0.0.0"}});
  CHECK(state.targets[1].settings == nlohmann::json::object());
  CHECK(state.targets[2].settings == nlohmann::json{{"projectId", "my-project"},
                                                    {"region", "europe-west1"},
                                                    {"cpu", "1"},
                                                    {"memory", "512Mi"},
                                                    {"maxInstances", 3}});
  CHECK(state.targets[3].settings == nlohmann::json{{"region", "us-east-1"},
                                                    {"cpu", 1024},
                                                    {"memory", "2 GB"},
                                                    {"endpoint", "http://127.0.0.1:4566"}});
  CHECK(state.targets[4].settings["cpu"] == 0.25);
  CHECK(state.targets[4].settings["minReplicas"] == 0);
}

struct ErrorCase {
  const char* name;
  std::string yaml;
  int line;
  int column;
  std::string field;
  std::string message;  // a part of the message
};

std::string AgentDoc(const std::string& spec) { return std::string(kHeader) + spec; }
const std::string kMin = "  image: x\n  target: t\n  port: 80\n";

TEST_CASE("reports each error with file:line:column and field") {
  const std::vector<ErrorCase> cases = {
      {"bad apiVersion", "apiVersion: v1\nkind: Agent\nmetadata: {name: a}\nspec:\n" + kMin, 1, 13,
       "apiVersion", "unsupported apiVersion 'v1'"},
      {"bad kind",
       "apiVersion: reconcile.dev/v1alpha1\nkind: Agnet\nmetadata: {name: a}\nspec: {}\n", 2, 7,
       "kind", "did you mean 'Agent'?"},
      {"missing spec", "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: a}\n", 1,
       1, "spec", "required field is missing"},
      {"not a map", "- a\n- b\n", 1, 1, "", "a document must be a map"},
      {"bad name",
       "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: Bad_Name}\nspec:\n" +
           kMin,
       3, 18, "metadata.name", "DNS-1123"},
      {"label not string",
       "apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata:\n  name: t\n  labels: {v: 1}\n"
       "spec: {provider: docker}\n",
       5, 15, "metadata.labels.v", "must be a string, got an integer"},
      {"unknown field suggests", AgentDoc(kMin + "  healtCheck: {}\n"), 9, 3, "spec.healtCheck",
       "unknown field 'healtCheck' (did you mean 'healthCheck'?)"},
      {"unknown field without suggestion", AgentDoc(kMin + "  zzzzzz: 1\n"), 9, 3, "spec.zzzzzz",
       "unknown field 'zzzzzz'"},
      {"duplicate key", AgentDoc(kMin + "  port: 81\n"), 9, 3, "spec.port", "duplicate key"},
      {"port out of range", AgentDoc("  image: x\n  target: t\n  port: 70000\n"), 8, 9, "spec.port",
       "between 1 and 65535"},
      {"port is a string", AgentDoc("  image: x\n  target: t\n  port: \"80\"\n"), 8, 9, "spec.port",
       "must be an integer, got a string"},
      {"missing port", AgentDoc("  image: x\n  target: t\n"), 6, 3, "spec.port",
       "required field is missing"},
      {"missing target", AgentDoc("  image: x\n  port: 80\n"), 6, 3, "spec.target",
       "required field is missing"},
      {"image and build", AgentDoc(kMin + "  build: {context: .}\n  registry: r\n"), 9, 3,
       "spec.build", "mutually exclusive"},
      {"neither image nor build", AgentDoc("  target: t\n  port: 80\n"), 6, 3, "spec.image",
       "one of image or build is required"},
      {"build without registry", AgentDoc("  build: {context: .}\n  target: t\n  port: 80\n"), 6, 3,
       "spec.registry", "required when build is set"},
      {"build without context",
       AgentDoc("  build: {dockerfile: D}\n  registry: r\n  target: t\n  port: 80\n"), 6, 10,
       "spec.build.context", "required field is missing"},
      {"absolute context",
       AgentDoc("  build: {context: /etc}\n  registry: r\n  target: t\n  port: 80\n"), 6, 20,
       "spec.build.context", "relative"},
      {"hostPort out of range", AgentDoc(kMin + "  hostPort: -1\n"), 9, 13, "spec.hostPort",
       "between 0 and 65535"},
      {"command not a list", AgentDoc(kMin + "  command: run\n"), 9, 12, "spec.command",
       "must be a list of strings"},
      {"arg not a string", AgentDoc(kMin + "  args: [a, 8080]\n"), 9, 13, "spec.args[1]",
       "must be a string, got an integer"},
      {"env bad name", AgentDoc(kMin + "  env: {1X: a}\n"), 9, 9, "spec.env.1X",
       "invalid variable name"},
      {"env null value", AgentDoc(kMin + "  env:\n    FOO:\n"), 10, 5, "spec.env.FOO",
       "must be a string, number or boolean"},
      {"env map value", AgentDoc(kMin + "  env:\n    FOO: {a: b}\n"), 10, 10, "spec.env.FOO",
       "must be a string, number or boolean"},
      {"plain secret", AgentDoc(kMin + "  secretEnv:\n    TOKEN: hunter2\n"), 10, 12,
       "spec.secretEnv.TOKEN", "secrets must be references, not values"},
      {"secret with two sources", AgentDoc(kMin + "  secretEnv:\n    T: {file: a, env: B}\n"), 10,
       8, "spec.secretEnv.T", "exactly one of 'file', 'env', 'aws', 'vault' or 'sops'"},
      {"secret file escapes", AgentDoc(kMin + "  secretEnv:\n    T: {file: ../x}\n"), 10, 15,
       "spec.secretEnv.T.file", "a file name in the secrets folder"},
      {"secret unknown source", AgentDoc(kMin + "  secretEnv:\n    T: {ssm: x}\n"), 10, 9,
       "spec.secretEnv.T.ssm", "unknown field 'ssm'"},
      {"aws secret without secretId",
       AgentDoc(kMin + "  secretEnv:\n    T: {aws: {key: password}}\n"), 10, 14,
       "spec.secretEnv.T.aws.secretId", "required field is missing"},
      {"vault secret with unknown field",
       AgentDoc(kMin + "  secretEnv:\n    T: {vault: {path: secret/db, key: k, ver: 3}}\n"), 10, 42,
       "spec.secretEnv.T.vault.ver", "unknown field 'ver'"},
      {"vault secret version not an integer",
       AgentDoc(kMin + "  secretEnv:\n    T: {vault: {path: secret/db, key: k, version: x}}\n"), 10,
       51, "spec.secretEnv.T.vault.version", "must be an integer"},
      {"env and secretEnv", AgentDoc(kMin + "  env: {T: a}\n  secretEnv: {T: {env: B}}\n"), 10, 15,
       "spec.secretEnv.T", "set in both env and secretEnv"},
      {"replicas zero", AgentDoc(kMin + "  replicas: 0\n"), 9, 13, "spec.replicas",
       "between 1 and 100"},
      {"replicas huge", AgentDoc(kMin + "  replicas: 99999999999999999999999\n"), 9, 13,
       "spec.replicas", "between 1 and 100"},
      {"cpu negative", AgentDoc(kMin + "  resources: {cpu: -1}\n"), 9, 20, "spec.resources.cpu",
       "positive"},
      {"cpu text", AgentDoc(kMin + "  resources: {cpu: lots}\n"), 9, 20, "spec.resources.cpu",
       "number of cores"},
      {"memory", AgentDoc(kMin + "  resources: {memory: 1GB}\n"), 9, 23, "spec.resources.memory",
       "128Mi"},
      {"health path", AgentDoc(kMin + "  healthCheck: {path: health}\n"), 9, 23,
       "spec.healthCheck.path", "starting with '/'"},
      {"health port", AgentDoc(kMin + "  healthCheck:\n    port: 0\n"), 10, 11,
       "spec.healthCheck.port", "between 1 and 65535"},
      {"health interval", AgentDoc(kMin + "  healthCheck:\n    interval: 5\n"), 10, 15,
       "spec.healthCheck.interval", "must be a string, got an integer"},
      {"health timeout zero", AgentDoc(kMin + "  healthCheck:\n    timeout: 0s\n"), 10, 14,
       "spec.healthCheck.timeout", "invalid duration '0s'"},
      {"health start period", AgentDoc(kMin + "  healthCheck:\n    startPeriod: 1d\n"), 10, 18,
       "spec.healthCheck.startPeriod", "invalid duration"},
      {"health retries", AgentDoc(kMin + "  healthCheck:\n    retries: 0\n"), 10, 14,
       "spec.healthCheck.retries", "between 1"},
      {"strategy type", AgentDoc(kMin + "  strategy: {type: rolling}\n"), 9, 20,
       "spec.strategy.type", "recreate or start-first"},
      {"autoRollback", AgentDoc(kMin + "  strategy: {autoRollback: yes}\n"), 9, 28,
       "spec.strategy.autoRollback", "must be a boolean"},
      {"dependsOn twice", AgentDoc(kMin + "  dependsOn: [b, b]\n"), 9, 18, "spec.dependsOn[1]",
       "listed twice"},
      {"suspend", AgentDoc(kMin + "  suspend: 1\n"), 9, 12, "spec.suspend", "must be a boolean"},
      {"drift mode", AgentDoc(kMin + "  drift: {mode: fix}\n"), 9, 17, "spec.drift.mode",
       "report or heal"},
      {"approval mode", AgentDoc(kMin + "  approval: manual\n"), 9, 13, "spec.approval",
       "auto or required"},
      {"approval not a string", AgentDoc(kMin + "  approval: {required: true}\n"), 9, 13,
       "spec.approval", "must be a string"},
      {"registry missing url",
       "apiVersion: reconcile.dev/v1alpha1\nkind: Registry\nmetadata: {name: r}\nspec: "
       "{repository: a}\n",
       4, 7, "spec.url", "required field is missing"},
      {"registry repository",
       "apiVersion: reconcile.dev/v1alpha1\nkind: Registry\nmetadata: {name: r}\nspec: {url: x, "
       "repository: Acme}\n",
       4, 28, "spec.repository", "repository path"},
      {"registry custom without tag",
       "apiVersion: reconcile.dev/v1alpha1\nkind: Registry\nmetadata: {name: r}\n"
       "spec: {url: x, repository: a, tagStrategy: custom}\n",
       4, 7, "spec.customTag", "required when tagStrategy is custom"},
      {"registry tag without custom",
       "apiVersion: reconcile.dev/v1alpha1\nkind: Registry\nmetadata: {name: r}\n"
       "spec: {url: x, repository: a, tagStrategy: semver, customTag: v}\n",
       4, 52, "spec.customTag", "only allowed with tagStrategy custom"},
      {"registry tag template with an unknown variable",
       "apiVersion: reconcile.dev/v1alpha1\nkind: Registry\nmetadata: {name: r}\n"
       "spec: {url: x, repository: a, tagStrategy: custom, customTag: \"v{branch}\"}\n",
       4, 63, "spec.customTag", "the variables {sha}"},
      {"build version not semver",
       AgentDoc("  build: {context: ., version: latest}\n  registry: r\n  target: t\n  port: 80\n"),
       6, 32, "spec.build.version", "a semantic version"},
      {"registry prefix",
       "apiVersion: reconcile.dev/v1alpha1\nkind: Registry\nmetadata: {name: r}\n"
       "spec: {url: x, repository: a, credentialsEnvPrefix: ghcr}\n",
       4, 53, "spec.credentialsEnvPrefix", "upper-case"},
      {"target provider",
       "apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: t}\nspec: {provider: "
       "k8s}\n",
       4, 18, "spec.provider",
       "unknown provider 'k8s' (available: aws, azure, docker, gcp, kubernetes)"},
      {"target wrong block",
       "apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: t}\n"
       "spec: {provider: docker, aws: {region: x}}\n",
       4, 26, "spec.aws", "not allowed with provider docker"},
      {"target missing block: its provider names the first field it needs, at spec",
       "apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: t}\nspec: {provider: "
       "aws}\n",
       4, 7, "spec.aws.region", "required field is missing"},
      {"docker host",
       "apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: t}\n"
       "spec: {provider: docker, docker: {host: \"http://x\"}}\n",
       4, 41, "spec.docker.host", "unix:///"},
      {"docker publishAddress",
       "apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: t}\n"
       "spec: {provider: docker, docker: {publishAddress: localhost}}\n",
       4, 51, "spec.docker.publishAddress", "IPv4 or IPv6"},
      {"docker tls file is a path",
       "apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: t}\n"
       "spec: {provider: docker, docker: {host: \"tcp://h:1\", tls: {caFile: /etc/ca.pem}}}\n",
       4, 68, "spec.docker.tls.caFile", "a file name in the secrets folder"},
      {"docker tls cert without key",
       "apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: t}\n"
       "spec: {provider: docker, docker: {host: \"tcp://h:1\", tls: {certFile: c.pem}}}\n",
       4, 59, "spec.docker.tls.keyFile", "certFile and keyFile go together"},
      {"docker tls on a unix socket",
       "apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: t}\n"
       "spec: {provider: docker, docker: {tls: {verify: false}}}\n",
       4, 40, "spec.docker.tls", "need a tcp:// host"},
      {"docker tls unknown field",
       "apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: t}\n"
       "spec: {provider: docker, docker: {host: \"tcp://h:1\", tls: {insecure: true}}}\n",
       4, 60, "spec.docker.tls.insecure", "unknown field"},
      {"aws region missing",
       "apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: t}\n"
       "spec: {provider: aws, aws: {cpu: 1}}\n",
       4, 28, "spec.aws.region", "required field is missing"},
      {"gcp max instances",
       "apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: t}\n"
       "spec: {provider: gcp, gcp: {projectId: my-project, region: r, maxInstances: 0}}\n",
       4, 77, "spec.gcp.maxInstances", "between 1 and 1000"},
      {"azure subscription",
       "apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: t}\n"
       "spec: {provider: azure, azure: {subscriptionId: x, resourceGroup: g, environmentName: e, "
       "location: l}}\n",
       4, 49, "spec.azure.subscriptionId", "UUID"},
      {"syntax error", "apiVersion: [\n", 2, 1, "", "YAML syntax error"},
  };
  for (const auto& c : cases) {
    SUBCASE(c.name) {
      auto diags = Decode(c.yaml);
      REQUIRE_MESSAGE(diags.size() == 1, All(diags));
      const Diagnostic& d = diags.items()[0];
      CHECK_MESSAGE(d.file == "m.yaml", All(diags));
      CHECK_MESSAGE(d.line == c.line, All(diags));
      CHECK_MESSAGE(d.column == c.column, All(diags));
      CHECK_MESSAGE(d.field == c.field, All(diags));
      CHECK_MESSAGE(d.message.find(c.message) != std::string::npos, All(diags));
    }
  }
}

TEST_CASE("a plain secret value is never echoed") {
  auto diags = Decode(AgentDoc(kMin + "  secretEnv:\n    TOKEN: s3cr3t-value\n"));
  REQUIRE(diags.size() == 1);
  CHECK(diags.items()[0].ToString().find("s3cr3t-value") == std::string::npos);
}

TEST_CASE("collects every error of a file, across documents") {
  auto diags = Decode(AgentDoc("  port: 0\n  replicas: 0\n") + "---\n" +
                      AgentDoc("  image: x\n  target: t\n  port: 1\n  bogus: 1\n"));
  // first: missing target, image/build, port range, replicas; second: unknown field
  CHECK_MESSAGE(diags.size() == 5, All(diags));
}

TEST_CASE("empty documents are skipped") {
  DesiredState state;
  auto diags = Decode("---\n" + AgentDoc(kMin) + "---\n", &state);
  CHECK_MESSAGE(!diags.HasErrors(), All(diags));
  CHECK(state.agents.size() == 1);
}

TEST_CASE("hostile input limits") {
  SUBCASE("billion laughs is rejected quickly") {
    std::string yaml = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
    for (int i = 1; i < 30; ++i) {
      yaml += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
      for (int k = 0; k < 10; ++k)
        yaml += std::string(k ? ", " : "") + "*a" + std::to_string(i - 1);
      yaml += "]\n";
    }
    auto start = std::chrono::steady_clock::now();
    auto diags = Decode(yaml);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
    REQUIRE(diags.size() == 1);
    CHECK(diags.items()[0].message.find("aliases expand to more than 10000") != std::string::npos);
    CHECK(diags.items()[0].line == 4);
  }
  SUBCASE("a few aliases are fine") {
    DesiredState state;
    auto diags = Decode(AgentDoc("  image: x\n  target: t\n  port: 80\n  command: &c [a, b]\n"
                                 "  args: *c\n"),
                        &state);
    CHECK_MESSAGE(!diags.HasErrors(), All(diags));
    CHECK(state.agents.at(0).args == std::vector<std::string>{"a", "b"});
  }
  SUBCASE("deep nesting") {
    std::string yaml = "x: " + std::string(100, '[') + std::string(100, ']') + "\n";
    auto diags = Decode(yaml);
    REQUIRE(diags.size() == 1);
    CHECK(diags.items()[0].message.find("deeper than 64") != std::string::npos);
    CHECK(diags.items()[0].line == 1);
  }
  SUBCASE("very deep nesting does not crash") {
    std::string yaml = std::string(100000, '[') + "\n";
    auto diags = Decode(yaml);
    CHECK(diags.HasErrors());
  }
  SUBCASE("deep nesting through aliases") {
    std::string yaml = "a: &a " + std::string(40, '[') + std::string(40, ']') +
                       "\nb: " + std::string(30, '[') + "*a" + std::string(30, ']') + "\n";
    auto diags = Decode(yaml);
    REQUIRE(diags.size() == 1);
    CHECK(diags.items()[0].message.find("deeper than 64") != std::string::npos);
  }
}

TEST_CASE("LoadTree: files, limits and symlinks") {
  TempTree tree;
  const std::string target =
      "apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: t}\n"
      "spec: {provider: docker}\n";
  SUBCASE("walks sorted, skips hidden folders and other files") {
    tree.Write("b/agent.yml", AgentDoc(kMin));
    tree.Write("a/target.yaml", target);
    tree.Write(".git/bad.yaml", "bad: [");
    tree.Write(".reconcile/x.yaml", "bad: [");
    tree.Write("README.md", "not yaml: [");
    auto result = LoadTree(tree.path());
    CHECK_MESSAGE(!result.diagnostics.HasErrors(), All(result.diagnostics));
    CHECK(result.state.agents.size() == 1);
    CHECK(result.state.targets.size() == 1);
    CHECK(result.state.agents[0].location.file == "b/agent.yml");
    CHECK(result.state.agents[0].manifest_dir == "b");
    CHECK(result.state.revision.rfind("tree-", 0) == 0);
    CHECK(result.state.revision.size() == 17);
    CHECK(LoadTree(tree.path()).state.revision == result.state.revision);
    tree.Write("a/target.yaml", target + "\n");
    CHECK(LoadTree(tree.path()).state.revision != result.state.revision);
  }
  SUBCASE("a single file") {
    tree.Write("one.yaml", target);
    auto result = LoadTree(tree.path() / "one.yaml");
    CHECK_MESSAGE(!result.diagnostics.HasErrors(), All(result.diagnostics));
    CHECK(result.state.targets.at(0).location.file == "one.yaml");
  }
  struct Row {
    const char* name;
    std::string content;
    int line;
    int column;
    std::string message;
  };
  const std::vector<Row> rows = {
      {"NUL byte", std::string("a: b\nc: d\0e\n", 12), 2, 5, "NUL byte"},
      {"non-UTF-8", "a: b\nc: \xff\xfe\n", 2, 4, "not valid UTF-8"},
      {"overlong UTF-8", "a: \xc0\xaf\n", 1, 4, "not valid UTF-8"},
      {"too large", std::string(4 * 1024 * 1024 + 1, '#'), 1, 1, "over the limit"},
  };
  for (const auto& row : rows) {
    SUBCASE(row.name) {
      tree.Write("x.yaml", row.content);
      auto result = LoadTree(tree.path());
      REQUIRE_MESSAGE(result.diagnostics.size() == 1, All(result.diagnostics));
      const auto& d = result.diagnostics.items()[0];
      CHECK(d.file == "x.yaml");
      CHECK(d.line == row.line);
      CHECK(d.column == row.column);
      CHECK(d.message.find(row.message) != std::string::npos);
    }
  }
  SUBCASE("symlinks out of the tree") {
    TempTree outside;
    outside.Write("t.yaml", target);
    fs::create_directories(tree.path() / "in");
    fs::create_symlink(outside.path() / "t.yaml", tree.path() / "in/link.yaml");
    fs::create_directory_symlink(outside.path(), tree.path() / "dir");
    auto result = LoadTree(tree.path());
    REQUIRE_MESSAGE(result.diagnostics.size() == 2, All(result.diagnostics));
    CHECK(result.diagnostics.items()[0].file == "dir");
    CHECK(result.diagnostics.items()[1].file == "in/link.yaml");
    CHECK(result.diagnostics.items()[1].message.find("outside the tree") != std::string::npos);
  }
  SUBCASE("symlinks inside the tree are followed once") {
    tree.Write("real/t.yaml", target);
    fs::create_directory_symlink(tree.path(), tree.path() / "real/loop");
    auto result = LoadTree(tree.path());
    CHECK_MESSAGE(!result.diagnostics.HasErrors(), All(result.diagnostics));
  }
}

TEST_CASE("cross-document checks") {
  TempTree tree;
  const std::string target =
      "apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: t}\n"
      "spec: {provider: docker}\n";
  auto agent = [](const std::string& name, const std::string& extra) {
    return "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: " + name +
           "}\nspec:\n  image: x\n  target: t\n  port: 80\n" + extra;
  };
  struct Row {
    const char* name;
    std::vector<std::pair<std::string, std::string>> files;
    std::vector<std::string> expected;  // ToString() of every diagnostic
  };
  const std::vector<Row> rows = {
      {"duplicate names",
       {{"t.yaml", target}, {"a.yaml", agent("a", "")}, {"b.yaml", agent("a", "")}},
       {"a.yaml:3:18: error: metadata.name: duplicate Agent name 'a' (also declared at "
        "b.yaml:3:18)",
        "b.yaml:3:18: error: metadata.name: duplicate Agent name 'a' (also declared at "
        "a.yaml:3:18)"}},
      {"missing target",
       {{"a.yaml", agent("a", "")}},
       {"a.yaml:6:11: error: spec.target: Target 't' is not declared in the tree"}},
      {"missing registry",
       {{"t.yaml", target}, {"a.yaml", agent("a", "  registry: r\n")}},
       {"a.yaml:8:13: error: spec.registry: Registry 'r' is not declared in the tree"}},
      {"missing dependency",
       {{"t.yaml", target}, {"a.yaml", agent("a", "  dependsOn: [b]\n")}},
       {"a.yaml:8:15: error: spec.dependsOn: Agent 'b' is not declared in the tree"}},
      {"self dependency",
       {{"t.yaml", target}, {"a.yaml", agent("a", "  dependsOn: [a]\n")}},
       {"a.yaml:8:15: error: spec.dependsOn: an agent cannot depend on itself"}},
      {"cycle",
       {{"t.yaml", target},
        {"a.yaml", agent("c", "  dependsOn: [a]\n") + "---\n" + agent("a", "  dependsOn: [b]\n") +
                       "---\n" + agent("b", "  dependsOn: [c]\n")}},
       {"a.yaml:17:14: error: spec.dependsOn: dependency cycle: a -> b -> c -> a"}},
  };
  for (const auto& row : rows) {
    SUBCASE(row.name) {
      for (const auto& [rel, content] : row.files) tree.Write(rel, content);
      auto result = LoadTree(tree.path());
      std::vector<std::string> got;
      for (const auto& d : result.diagnostics.items()) got.push_back(d.ToString());
      CHECK_MESSAGE(got == row.expected, All(result.diagnostics));
    }
  }
  SUBCASE("build contexts stay inside the tree") {
    TempTree outside;
    tree.Write("r.yaml",
               "apiVersion: reconcile.dev/v1alpha1\nkind: Registry\nmetadata: {name: r}\n"
               "spec: {url: localhost:5000, repository: a, tagStrategy: custom, customTag: "
               "\"{agent}-{sha}\"}\n");
    tree.Write("t.yaml", target);
    fs::create_directories(tree.path() / "apps/ok");
    fs::create_directory_symlink(outside.path(), tree.path() / "apps/out");
    auto build = [](const std::string& name, const std::string& context) {
      return "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: " + name +
             "}\nspec:\n  build: {context: " + context +
             "}\n  registry: r\n  target: t\n"
             "  port: 80\n";
    };
    tree.Write("apps/a.yaml", build("a", "ok") + "---\n" + build("b", "../..") + "---\n" +
                                  build("c", "out") + "---\n" + build("d", "missing") + "---\n" +
                                  build("e", "..") + "---\n" + build("f", "ok/../../apps/ok"));
    auto result = LoadTree(tree.path());
    std::vector<std::string> got;
    for (const auto& d : result.diagnostics.items()) got.push_back(d.ToString());
    const std::vector<std::string> expected{
        "apps/a.yaml:14:20: error: spec.build.context: build context '../..' leads outside "
        "the tree",
        "apps/a.yaml:23:20: error: spec.build.context: build context 'out' leads outside "
        "the tree (symlink)",
        "apps/a.yaml:32:20: error: spec.build.context: build context folder 'apps/missing' "
        "does not exist",
        "apps/out:1:1: error: symlink leads outside the tree (to " +
            fs::canonical(outside.path()).string() + ")"};
    CHECK_MESSAGE(got == expected, All(result.diagnostics));
  }
  SUBCASE("two agents with build on one Registry") {
    tree.Write("r.yaml",
               "apiVersion: reconcile.dev/v1alpha1\nkind: Registry\nmetadata: {name: r}\n"
               "spec: {url: localhost:5000, repository: a}\n");
    tree.Write("t.yaml", target);
    fs::create_directories(tree.path() / "app");
    auto build = [](const std::string& name) {
      return "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: " + name +
             "}\nspec:\n  build: {context: app, version: 1.2.3}\n  registry: r\n  target: t\n"
             "  port: 80\n";
    };
    tree.Write("a.yaml", build("a") + "---\n" + build("b"));
    auto result = LoadTree(tree.path());
    std::vector<std::string> got;
    for (const auto& d : result.diagnostics.items()) got.push_back(d.ToString());
    REQUIRE(got.size() == 1);
    CHECK(got[0].find("a.yaml:15:13: error: spec.registry: Registry 'r' is already the registry "
                      "of agent 'a'") == 0);
    CHECK(result.state.agents[0].build->version == "1.2.3");
  }
}

TEST_CASE("the quickstart example loads") {
  auto result = LoadTree(fs::path(RECONCILE_SOURCE_DIR) / "examples/quickstart");
  REQUIRE_MESSAGE(!result.diagnostics.HasErrors(), All(result.diagnostics));
  REQUIRE(result.state.agents.size() == 1);
  const Agent* hello = result.state.FindAgent("hello");
  REQUIRE(hello != nullptr);
  CHECK(hello->image == "reconcile/hello-agent:0.1.0");
  CHECK(hello->target == "local");
  CHECK(hello->port == 8080);
  CHECK(hello->labels.at("team") == "quickstart");
  CHECK(hello->env.at("GREETING") == "Hello from reconcile");
  CHECK(hello->health_check->interval_ms == 200);
  CHECK(hello->health_check->retries == 50);
  CHECK(hello->strategy.type == StrategyType::kStartFirst);
  const Target* local = result.state.FindTarget("local");
  REQUIRE(local != nullptr);
  CHECK(local->provider == "docker");
  CHECK(result.state.FindRegistry("none") == nullptr);
}

TEST_CASE("names of enums and Diagnostic::ToString") {
  CHECK(std::string(StrategyTypeName(StrategyType::kStartFirst)) == "start-first");
  CHECK(std::string(DriftModeName(DriftMode::kHeal)) == "heal");
  CHECK(std::string(TagStrategyName(TagStrategy::kTimestamp)) == "timestamp");
  CHECK(Diagnostic{Severity::kError, "f.yaml", 3, 4, "spec.port", "bad"}.ToString() ==
        "f.yaml:3:4: error: spec.port: bad");
  CHECK(Diagnostic{Severity::kWarning, "f.yaml", 0, 0, "", "w"}.ToString() == "f.yaml: warning: w");
  Diagnostics diags;
  diags.Error("b", 1, 1, "", "x");
  diags.Error("a", 2, 1, "", "y");
  diags.Sort();
  CHECK(diags.items()[0].file == "a");
  CHECK(diags.HasErrors());
}

}  // namespace
}  // namespace reconcile
