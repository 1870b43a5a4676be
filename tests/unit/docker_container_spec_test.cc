// Pure parts of the Docker provider: quantities, the create body, the list.
#include "docker/container_spec.h"

#include <string>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

namespace reconcile::docker {
namespace {

using nlohmann::json;

TEST_CASE("docker: ImageDigestOf: the repository's RepoDigest, else the image id") {
  const std::string hex(64, 'f');
  const json inspect = {{"Id", "sha256:" + std::string(64, '0')},
                        {"RepoDigests",
                         {"docker.io/library/other@sha256:" + std::string(64, '1'),
                          "localhost:5000/web@sha256:" + hex}}};
  CHECK(ImageDigestOf(inspect, "localhost:5000/web:abc123") == "localhost:5000/web@sha256:" + hex);
  CHECK(ImageDigestOf(inspect, "localhost:5000/web") == "localhost:5000/web@sha256:" + hex);
  // Given by digest: that digest.
  CHECK(ImageDigestOf(inspect, "localhost:5000/web@sha256:" + std::string(64, '2')) ==
        "localhost:5000/web@sha256:" + std::string(64, '2'));
  // Never pushed nor pulled (a local build): the image id.
  CHECK(ImageDigestOf(inspect, "localhost:5000/api:1") == "sha256:" + std::string(64, '0'));
  CHECK(ImageDigestOf(json{{"RepoDigests", json::array()}}, "x:1").empty());
  CHECK(ImageDigestOf(json(), "x:1").empty());
  // A repository that is a prefix of another's is not it.
  CHECK(ImageDigestOf(json{{"RepoDigests", {"localhost:5000/web2@sha256:" + hex}}},
                      "localhost:5000/web:1")
            .empty());
}

TEST_CASE("docker: ParseMemoryBytes") {
  struct Row {
    const char* in;
    std::int64_t bytes;  // -1: invalid
  };
  const Row rows[] = {
      {"256Mi", 256LL << 20},
      {"1Gi", 1LL << 30},
      {"512M", 512000000},
      {"1.5Gi", 3LL << 29},
      {"64MiB", 64LL << 20},
      {"1G", 1000000000},
      {"8388608", 8388608},
      {"4096Ki", 4LL << 20},
      {"", -1},
      {"Mi", -1},
      {"256mb", -1},
      {"-1Gi", -1},
      {"1Xi", -1},
      {"1k", -1},
      {"1e9", -1},
      {"99999999999Ti", -1},
  };
  for (const Row& row : rows) {
    SUBCASE(row.in) {
      auto r = ParseMemoryBytes(row.in);
      if (row.bytes < 0) {
        CHECK_FALSE(r.ok());
        CHECK(r.status().code() == Code::kInvalid);
      } else {
        REQUIRE_MESSAGE(r.ok(), r.status().message());
        CHECK(*r == row.bytes);
      }
    }
  }
}

TEST_CASE("docker: ParseNanoCpus") {
  struct Row {
    const char* in;
    std::int64_t nano;  // -1: invalid
  };
  const Row rows[] = {{"0.5", 500000000},
                      {"2", 2000000000},
                      {"500m", 500000000},
                      {"0.25", 250000000},
                      {"1.", 1000000000},
                      {"0", -1},
                      {"", -1},
                      {"abc", -1},
                      {"1 core", -1},
                      {"-1", -1},
                      {"2000", -1}};
  for (const Row& row : rows) {
    SUBCASE(row.in) {
      auto r = ParseNanoCpus(row.in);
      if (row.nano < 0) {
        CHECK_FALSE(r.ok());
      } else {
        REQUIRE_MESSAGE(r.ok(), r.status().message());
        CHECK(*r == row.nano);
      }
    }
  }
}

TEST_CASE("docker: ParseDurationMs") {
  CHECK(*ParseDurationMs("200ms") == 200);
  CHECK(*ParseDurationMs("2s") == 2000);
  CHECK_FALSE(ParseDurationMs("1.5s").ok());
  CHECK(*ParseDurationMs("1m") == 60000);
  CHECK(*ParseDurationMs("1h") == 3600000);
  CHECK_FALSE(ParseDurationMs("2").ok());
  CHECK_FALSE(ParseDurationMs("s").ok());
  CHECK_FALSE(ParseDurationMs("48h").ok());
}

json FullSpec() {
  return {{"image", "reconcile/hello-agent:0.1.0"},
          {"port", 8080},
          {"hostPort", 0},
          {"command", {"/hello-agent"}},
          {"args", {"--verbose"}},
          {"env", {{"GREETING", "hi"}, {"LOG_LEVEL", "debug"}}},
          {"secretEnv", {{"API_KEY", "env:API_KEY"}}},
          {"replicas", 1},
          {"resources", {{"cpu", "0.5"}, {"memory", "256Mi"}}},
          {"healthCheck",
           {{"path", "/health"},
            {"port", 8080},
            {"interval", "200ms"},
            {"timeout", "2s"},
            {"retries", 50},
            {"startPeriod", "0s"}}},
          {"strategy", {{"type", "start-first"}, {"autoRollback", true}}},
          {"labels", {{"team", "cx"}}},
          {"target", "local"}};
}

TEST_CASE("docker: ContainerSpecFromJson reads the normalized spec") {
  auto s = ContainerSpecFromJson(FullSpec());
  REQUIRE_MESSAGE(s.ok(), s.status().message());
  CHECK(s->image == "reconcile/hello-agent:0.1.0");
  CHECK(s->port == 8080);
  CHECK(s->command == std::vector<std::string>{"/hello-agent"});
  CHECK(s->args == std::vector<std::string>{"--verbose"});
  CHECK(s->env.at("GREETING") == "hi");
  CHECK(s->secret_env == std::vector<std::string>{"API_KEY"});
  CHECK(s->nano_cpus == 500000000);
  CHECK(s->memory_bytes == 256LL << 20);
  REQUIRE(s->health_check.has_value());
  CHECK(s->health_check->interval_ms == 200);
  CHECK(s->health_check->timeout_ms == 2000);
  CHECK(s->health_check->retries == 50);
  CHECK(s->strategy == StrategyType::kStartFirst);
}

TEST_CASE("docker: ContainerSpecFromJson rejects bad input without throwing") {
  struct Row {
    const char* name;
    json patch;
  };
  const Row rows[] = {
      {"no image", {{"image", nullptr}}},
      {"port type", {{"port", "8080"}}},
      {"port range", {{"port", 70000}}},
      {"env not a map", {{"env", json::array({"A=1"})}}},
      {"env nested", {{"env", {{"A", {{"b", 1}}}}}}},
      {"memory unit", {{"resources", {{"memory", "lots"}}}}},
      {"cpu", {{"resources", {{"cpu", "fast"}}}}},
      {"interval", {{"healthCheck", {{"interval", "soon"}}}}},
      {"strategy", {{"strategy", {{"type", "blue-green"}}}}},
      {"command", {{"command", "/bin/sh -c x"}}},
      {"fixed host port with replicas", {{"hostPort", 8080}, {"replicas", 2}}},
  };
  for (const Row& row : rows) {
    SUBCASE(row.name) {
      json spec = FullSpec();
      spec.merge_patch(row.patch);
      auto s = ContainerSpecFromJson(spec);
      CHECK_FALSE(s.ok());
      CHECK(s.status().code() == Code::kInvalid);
    }
  }
  CHECK_FALSE(ContainerSpecFromJson(json::array()).ok());
  CHECK_FALSE(ContainerSpecFromJson(nullptr).ok());
}

TEST_CASE("docker: BuildCreateBody") {
  auto spec = ContainerSpecFromJson(FullSpec());
  REQUIRE(spec.ok());
  CreateContext ctx{"hello", "sha256:abc", "rev1", "127.0.0.1", "reconcile-net"};
  auto body = BuildCreateBody(*spec, ctx, {{"API_KEY", "s3cret"}});
  REQUIRE_MESSAGE(body.ok(), body.status().message());
  const json& b = *body;
  CHECK(b["Image"] == "reconcile/hello-agent:0.1.0");
  CHECK(b["Hostname"] == "hello");
  CHECK(b["Entrypoint"] == json::array({"/hello-agent"}));
  CHECK(b["Cmd"] == json::array({"--verbose"}));
  CHECK(b["Env"] == json::array({"API_KEY=s3cret", "GREETING=hi", "LOG_LEVEL=debug"}));
  CHECK(b["Labels"][kLabelManagedBy] == "reconcile");
  CHECK(b["Labels"][kLabelAgent] == "hello");
  CHECK(b["Labels"][kLabelSpecHash] == "sha256:abc");
  CHECK(b["Labels"][kLabelRevision] == "rev1");
  CHECK(b["Labels"][kLabelPort] == "8080");
  CHECK(b["Labels"]["team"] == "cx");
  CHECK(b["ExposedPorts"] == json{{"8080/tcp", json::object()}});
  CHECK(b["HostConfig"]["PortBindings"]["8080/tcp"] ==
        json::array({{{"HostIp", "127.0.0.1"}, {"HostPort", ""}}}));
  CHECK(b["HostConfig"]["NanoCpus"] == 500000000);
  CHECK(b["HostConfig"]["Memory"] == 256LL << 20);
  CHECK(b["HostConfig"]["NetworkMode"] == "reconcile-net");
  CHECK(b["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped");

  SUBCASE("a fixed host port is bound") {
    json s = FullSpec();
    s["hostPort"] = 18080;
    auto fixed = BuildCreateBody(*ContainerSpecFromJson(s), ctx, {{"API_KEY", "x"}});
    REQUIRE(fixed.ok());
    CHECK((*fixed)["HostConfig"]["PortBindings"]["8080/tcp"][0]["HostPort"] == "18080");
  }
  SUBCASE("agent labels cannot override ownership labels") {
    json s = FullSpec();
    s["labels"][kLabelManagedBy] = "someone-else";
    auto b2 = BuildCreateBody(*ContainerSpecFromJson(s), ctx, {{"API_KEY", "x"}});
    REQUIRE(b2.ok());
    CHECK((*b2)["Labels"][kLabelManagedBy] == "reconcile");
  }
  SUBCASE("a secret without a value is an error that does not leak values") {
    auto missing = BuildCreateBody(*spec, ctx, {{"OTHER", "s3cret"}});
    CHECK_FALSE(missing.ok());
    CHECK(missing.status().message().find("API_KEY") != std::string::npos);
    CHECK(missing.status().message().find("s3cret") == std::string::npos);
  }
}

TEST_CASE("docker: ParseContainerList") {
  json list = json::parse(R"([
    {"Id": "bbb", "Names": ["/web"], "Image": "img:2", "State": "running",
     "Labels": {"reconcile.dev/managed-by": "reconcile", "reconcile.dev/agent": "web",
                "reconcile.dev/spec-hash": "sha256:1", "reconcile.dev/revision": "r1",
                "reconcile.dev/port": "8080"},
     "Ports": [{"PrivatePort": 9090, "PublicPort": 40001, "Type": "tcp", "IP": "127.0.0.1"},
               {"PrivatePort": 8080, "PublicPort": 40000, "Type": "tcp", "IP": "127.0.0.1"}]},
    {"Id": "aaa", "Names": ["/api"], "Image": "img:1", "State": "exited",
     "Labels": {"reconcile.dev/managed-by": "reconcile", "reconcile.dev/agent": "api"},
     "Ports": []},
    {"Id": "ccc", "Names": ["/foreign"], "Image": "x", "State": "running", "Labels": {}},
    {"Id": "ddd", "Names": "not-a-list", "Labels": null, "Ports": "junk"},
    42
  ])");
  auto r = ParseContainerList(list, "127.0.0.1");
  REQUIRE(r.ok());
  REQUIRE(r->size() == 2);
  CHECK((*r)[0].agent == "api");
  CHECK((*r)[0].name == "api");
  CHECK((*r)[0].running == false);
  CHECK((*r)[0].endpoint.empty());
  CHECK((*r)[1].id == "bbb");
  CHECK((*r)[1].name == "web");
  CHECK((*r)[1].spec_hash == "sha256:1");
  CHECK((*r)[1].revision == "r1");
  CHECK((*r)[1].image == "img:2");
  CHECK((*r)[1].state == "running");
  CHECK((*r)[1].running);
  CHECK((*r)[1].endpoint == "http://127.0.0.1:40000");

  CHECK_FALSE(ParseContainerList(json::object(), "127.0.0.1").ok());
  CHECK(EndpointUrl("::1", 80) == "http://[::1]:80");
  CHECK(ContainerName("web", 0) == "web");
  CHECK(ContainerName("web", 2) == "web-2");
}

// Issue #11 item 2: what an environment's agent creates carries its
// environment; observe keeps only the Target's environment's containers.
TEST_CASE("docker: environments scope names, label objects and filter the list") {
  json spec_json = FullSpec();
  spec_json["volumes"] = {{"/data", {{"type", "volume"}, {"source", "data"}}},
                          {"/host", {{"type", "bind"}, {"source", "/srv/x"}}}};
  spec_json["networks"] = {{"backend", {{"aliases", json::array({"db"})}}}};
  auto spec = ContainerSpecFromJson(spec_json);
  REQUIRE_MESSAGE(spec.ok(), spec.status().message());
  ContainerSpec plain = *spec;
  ScopeResourceNames(&plain, "");
  CHECK(plain.networks == spec->networks);
  CHECK(plain.mounts == spec->mounts);
  ContainerSpec dev = *spec;
  ScopeResourceNames(&dev, "dev");
  REQUIRE(dev.networks.size() == 1);
  CHECK(dev.networks[0].name == "dev--backend");
  CHECK(dev.networks[0].aliases == std::vector<std::string>{"db"});
  for (const Mount& m : dev.mounts) {
    if (m.type == "volume") CHECK(m.source == "dev--data");
    if (m.type == "bind") CHECK(m.source == "/srv/x");  // a host path is not reconcile's
  }

  CreateContext ctx{"hello", "sha256:abc", "rev1", "127.0.0.1", ""};
  ctx.environment = "dev";
  auto body = BuildCreateBody(dev, ctx, {{"API_KEY", "s3cret"}});
  REQUIRE_MESSAGE(body.ok(), body.status().message());
  CHECK((*body)["Labels"][kLabelEnvironment] == "dev");
  CHECK((*body)["Labels"][kLabelAgent] == "hello");
  CHECK((*body)["Hostname"] == "hello");
  CHECK((*body)["HostConfig"]["NetworkMode"] == "dev--backend");
  CHECK((*body)["NetworkingConfig"]["EndpointsConfig"]["dev--backend"]["Aliases"] ==
        json::array({"hello", "db"}));
  ctx.environment.clear();
  auto plain_body = BuildCreateBody(plain, ctx, {{"API_KEY", "s3cret"}});
  REQUIRE(plain_body.ok());
  CHECK_FALSE((*plain_body)["Labels"].contains(kLabelEnvironment));

  CHECK(BuildVolumeBody("dev--data", "hello", "dev")["Labels"][kLabelEnvironment] == "dev");
  CHECK_FALSE(BuildVolumeBody("data", "hello")["Labels"].contains(kLabelEnvironment));
  CHECK(BuildNetworkBody("dev--backend", "dev")["Labels"][kLabelEnvironment] == "dev");
  CHECK(BuildNetworkBody("dev--backend", "dev")["Labels"][kLabelNetwork] == "dev--backend");
  CHECK_FALSE(BuildNetworkBody("backend")["Labels"].contains(kLabelEnvironment));

  json list = json::parse(R"([
    {"Id": "p", "Names": ["/web"], "State": "running",
     "Labels": {"reconcile.dev/managed-by": "reconcile", "reconcile.dev/agent": "web"}},
    {"Id": "d", "Names": ["/dev--web"], "State": "running",
     "Labels": {"reconcile.dev/managed-by": "reconcile", "reconcile.dev/agent": "web",
                "reconcile.dev/environment": "dev"}},
    {"Id": "s", "Names": ["/staging--web"], "State": "running",
     "Labels": {"reconcile.dev/managed-by": "reconcile", "reconcile.dev/agent": "web",
                "reconcile.dev/environment": "staging"}}
  ])");
  auto only = [&](const std::string& env) {
    auto r = ParseContainerList(list, "127.0.0.1", env);
    REQUIRE(r.ok());
    REQUIRE(r->size() == 1);
    CHECK((*r)[0].agent == "web");
    return (*r)[0].id;
  };
  CHECK(only("") == "p");
  CHECK(only("dev") == "d");
  CHECK(only("staging") == "s");
  CHECK(ParseContainerList(list, "127.0.0.1", "prod")->empty());
  CHECK(ContainerName(ScopedName("dev", "web"), 1) == "dev--web-1");
}

}  // namespace
}  // namespace reconcile::docker
