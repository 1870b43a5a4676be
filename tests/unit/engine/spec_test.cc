#include "reconcile/spec.h"

#include <doctest/doctest.h>

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

}  // namespace
}  // namespace reconcile
