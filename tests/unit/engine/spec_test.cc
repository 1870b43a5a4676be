#include "reconcile/spec.h"

#include <filesystem>
#include <functional>
#include <vector>

#include <doctest/doctest.h>

#include "reconcile/loader.h"

#include "unit/engine/test_world.h"

namespace reconcile {
namespace {

TEST_CASE("spec: durations parse and format canonically") {
  struct Row {
    const char* text;
    std::optional<std::int64_t> ms;
    const char* canonical;
  };
  std::vector<Row> rows = {
      {"250ms", 250, "250ms"},
      {"2s", 2000, "2s"},
      {"2000ms", 2000, "2s"},
      {"90s", 90000, "90s"},
      {"5m", 300000, "5m"},
      {"1h", 3600000, "1h"},
      {"0s", 0, "0s"},
      {"", std::nullopt, ""},
      {"s", std::nullopt, ""},
      {"2", std::nullopt, ""},
      {"1.5s", std::nullopt, ""},
      {"-1s", std::nullopt, ""},
      {"3d", std::nullopt, ""},
      {"9999999999999s", std::nullopt, ""},
  };
  for (const Row& row : rows) {
    SUBCASE(row.text) {
      CHECK(ParseDuration(row.text) == row.ms);
      if (row.ms) CHECK(FormatDuration(*row.ms) == row.canonical);
    }
  }
}

TEST_CASE("spec: the hash follows what runs, not how it was written") {
  Agent a = testing::MakeAgent("a");
  Agent b = a;
  b.location = {"other.yaml", 9, 1};
  b.depends_on = {"x"};
  b.drift = DriftMode::kHeal;
  CHECK(testing::HashOf(a) == testing::HashOf(b));  // not part of what runs
  b.env["NEW"] = "1";
  CHECK(testing::HashOf(a) != testing::HashOf(b));
  CHECK(testing::HashOf(a).rfind("sha256:", 0) == 0);
  CHECK(testing::HashOf(a).size() == 7 + 64);
}

TEST_CASE("spec: secrets appear as references only") {
  Agent a = testing::MakeAgent("a");
  a.secret_env["TOKEN"] = {SecretRef::Source::kEnv, "API_TOKEN"};
  a.secret_env["KEY"] = {SecretRef::Source::kFile, "api-key"};
  nlohmann::json spec = NormalizedSpec(a, a.image);
  CHECK(spec["secretEnv"]["TOKEN"] == "env:API_TOKEN");
  CHECK(spec["secretEnv"]["KEY"] == "file:api-key");
}

TEST_CASE("spec: image of a build comes from the registry and revision") {
  Agent a = testing::MakeAgent("a");
  a.image.clear();
  a.build = BuildSpec{"app", "Dockerfile", {}, ""};
  Registry r;
  r.url = "localhost:5000";
  r.repository = "team/a";
  CHECK(ResolveImage(a, &r, "0123456789abcdef0123") == "localhost:5000/team/a:0123456789ab");
  r.tag_strategy = TagStrategy::kCustom;
  r.custom_tag = "v1.2.3";
  CHECK(ResolveImage(a, &r, "x") == "localhost:5000/team/a:v1.2.3");
  Agent plain = testing::MakeAgent("p");
  CHECK(ResolveImage(plain, nullptr, "x") == plain.image);
}

// Rollback re-applies recorded specs through AgentFromSpec: every field an
// Agent of the valid corpus uses (volumes, ports, networks, secret files,
// health checks, ...) must come back exactly, or a rollback of that agent
// would fail or drop it.
TEST_CASE("spec: every agent of the valid corpus comes back from its recorded spec") {
  size_t agents = 0;
  for (const auto& dir : std::filesystem::directory_iterator(std::string(RECONCILE_SOURCE_DIR) +
                                                             "/tests/testdata/valid")) {
    LoadResult loaded = LoadTree(dir.path());
    REQUIRE_MESSAGE(!loaded.diagnostics.HasErrors(), dir.path().string());
    for (const Agent& a : loaded.state.agents) {
      CAPTURE(a.name);
      const std::string image = a.build ? "127.0.0.1:5000/built/" + a.name + ":1" : a.image;
      const nlohmann::json spec = NormalizedSpec(a, image);
      Result<Agent> back = AgentFromSpec(a.name, spec);
      REQUIRE_MESSAGE(back.ok(), back.status().message());
      CHECK(NormalizedSpec(*back, back->image) == spec);
      CHECK(back->volumes.size() == a.volumes.size());
      CHECK(back->ports.size() == a.ports.size());
      ++agents;
    }
  }
  CHECK(agents >= 3);
}

TEST_CASE("spec: AgentFromSpec gives back the agent a recorded spec came from") {
  Agent full;
  full.name = "web";
  full.image = "ghcr.io/acme/web@sha256:abc";
  full.target = "local";
  full.port = 8080;
  full.host_port = 18080;
  full.command = {"/web", "--serve"};
  full.args = {"-v"};
  full.env = {{"A", "1"}, {"B", "two"}};
  full.secret_env = {{"TOKEN", {SecretRef::Source::kFile, "token"}},
                     {"KEY", {SecretRef::Source::kEnv, "APP_KEY"}}};
  full.replicas = 3;
  full.resources = {"0.5", "256Mi", ""};
  HealthCheck hc;
  hc.path = "/ready";
  hc.interval_ms = 250;
  hc.timeout_ms = 3000;
  hc.start_period_ms = 60000;
  hc.retries = 7;
  full.health_check = hc;
  full.strategy = {StrategyType::kStartFirst, false};
  full.labels = {{"team", "cx"}};
  Agent minimal;
  minimal.name = "min";
  minimal.image = "busybox:1";
  minimal.target = "t";
  for (const Agent& a : {full, minimal}) {
    SUBCASE(a.name.c_str()) {
      const nlohmann::json spec = NormalizedSpec(a, a.image);
      Result<Agent> back = AgentFromSpec(a.name, spec);
      REQUIRE_MESSAGE(back.ok(), back.status().message());
      CHECK(NormalizedSpec(*back, back->image) == spec);
      CHECK(SpecHash(NormalizedSpec(*back, back->image)) == SpecHash(spec));
      CHECK(back->secret_env == a.secret_env);
      CHECK(back->replicas == a.replicas);
      CHECK(back->target == a.target);
    }
  }
  SUBCASE("a spec this engine does not write is refused, naming the agent") {
    nlohmann::json spec = NormalizedSpec(full, full.image);
    for (auto edit : std::vector<std::function<void(nlohmann::json&)>>{
             [](nlohmann::json& j) { j["extra"] = 1; }, [](nlohmann::json& j) { j.erase("port"); },
             [](nlohmann::json& j) { j["secretEnv"]["TOKEN"] = "plain"; },
             [](nlohmann::json& j) { j["strategy"]["type"] = "blue-green"; },
             [](nlohmann::json& j) { j["healthCheck"]["interval"] = "soon"; },
             [](nlohmann::json& j) { j = nlohmann::json::array(); }}) {
      nlohmann::json bad = spec;
      edit(bad);
      Result<Agent> r = AgentFromSpec("web", bad);
      REQUIRE_FALSE(r.ok());
      CHECK(r.status().code() == Code::kInvalid);
      CHECK(r.status().message().find("agent 'web'") != std::string::npos);
    }
  }
}

}  // namespace
}  // namespace reconcile
