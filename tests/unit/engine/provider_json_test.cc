#include "reconcile/provider_json.h"

#include <doctest/doctest.h>

#include "reconcile/provider.h"

namespace reconcile {
namespace {

using nlohmann::json;

ObservedInstance SampleInstance() {
  ObservedInstance i;
  i.id = "abc";
  i.name = "web";
  i.agent = "web";
  i.spec_hash = "sha256:1";
  i.revision = "tree-1";
  i.image = "img:1";
  i.state = "running";
  i.running = true;
  i.endpoint = "http://127.0.0.1:1234";
  return i;
}

TEST_CASE("provider messages: JSON round trips") {
  SUBCASE("schema") {
    ProviderSchema s;
    s.updatable_fields = {"resources", "replicas"};
    auto back = ProviderSchemaFromJson(json::parse(ToJson(s).dump()));
    REQUIRE(back.ok());
    CHECK(*back == s);
  }
  SUBCASE("observe response") {
    ObserveResponse r;
    r.status = Status::Unavailable("engine restarting");
    r.instances = {SampleInstance()};
    r.warnings = {"TLS verification is off"};
    auto back = ObserveResponseFromJson(json::parse(ToJson(r).dump()));
    REQUIRE(back.ok());
    CHECK(back->status == r.status);
    CHECK(back->instances == r.instances);
    CHECK(back->warnings == r.warnings);
    CHECK_FALSE(ToJson(ObserveResponse{}).contains("warnings"));  // omitted when none
    json bad = ToJson(r);
    bad["warnings"] = json::array({1});
    CHECK(ObserveResponseFromJson(bad).status().code() == Code::kInvalid);
  }
  SUBCASE("apply response") {
    ApplyChangeResponse r;
    r.status = Status::Failed("not healthy");
    r.instances = {{"id1", "web", "http://127.0.0.1:1"}};
    r.health = "unhealthy";
    auto back = ApplyChangeResponseFromJson(json::parse(ToJson(r).dump()));
    REQUIRE(back.ok());
    CHECK(back->status == r.status);
    CHECK(back->instances == r.instances);
    CHECK(back->health == "unhealthy");
    r.warnings = {"w1", "w2"};
    back = ApplyChangeResponseFromJson(json::parse(ToJson(r).dump()));
    REQUIRE(back.ok());
    CHECK(back->warnings == r.warnings);
  }
}

TEST_CASE("provider messages: secrets only when asked for") {
  ApplyChangeRequest req;
  req.change.address = "agent.web";
  req.change.action = Action::kCreate;
  req.secret_values = {{"TOKEN", "s3cr3t"}};
  CHECK(ToJson(req, /*include_secrets=*/false).dump().find("s3cr3t") == std::string::npos);
  CHECK(ToJson(req, /*include_secrets=*/true)["secretValues"]["TOKEN"] == "s3cr3t");
}

TEST_CASE("provider messages: malformed input is an error, not a crash") {
  struct Row {
    const char* name;
    json j;
    const char* message;
  };
  std::vector<Row> rows = {
      {"not an object", json::array(), "expected an object"},
      {"bad status code",
       {{"status", {{"code", "meh"}}}, {"instances", json::array()}},
       "unknown code 'meh'"},
      {"instances not an array",
       {{"status", {{"code", "ok"}}}, {"instances", 3}},
       "instances: expected an array"},
      {"instance field of the wrong type",
       {{"status", {{"code", "ok"}}}, {"instances", {{{"id", 1}}}}},
       "instance.id: wrong type"},
  };
  for (const Row& row : rows) {
    SUBCASE(row.name) {
      auto r = ObserveResponseFromJson(row.j);
      REQUIRE_FALSE(r.ok());
      CHECK(r.status().message().find(row.message) != std::string::npos);
    }
  }
}

}  // namespace
}  // namespace reconcile
