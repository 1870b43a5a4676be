#include "reconcile/provider_json.h"

#include <functional>

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
    r.instances = {{"id1", "web", "http://127.0.0.1:1", {}}};
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

TEST_CASE("provider messages: version 2 JSON round trips") {
  SUBCASE("schema with instancePerReplica and targetSchema") {
    ProviderSchema s;
    s.updatable_fields = {"env"};
    s.instance_per_replica = false;
    s.target_schema = json{{"type", "object"}, {"required", {"region"}}};
    auto back = ProviderSchemaFromJson(json::parse(ToJson(s).dump()));
    REQUIRE(back.ok());
    CHECK(*back == s);
    // A version-1 schema (updatableFields only) reads with the defaults.
    auto v1 = ProviderSchemaFromJson(json{{"updatableFields", json::array()}});
    REQUIRE(v1.ok());
    CHECK(v1->instance_per_replica);
    CHECK(v1->target_schema.is_null());
    CHECK_FALSE(ToJson(ProviderSchema{}).contains("targetSchema"));
  }
  SUBCASE("diagnostic") {
    ProviderDiagnostic d{Severity::kWarning, "spec.aws.region", "unusual region"};
    auto back = ProviderDiagnosticFromJson(json::parse(ToJson(d).dump()));
    REQUIRE(back.ok());
    CHECK(*back == d);
    auto short_form = ProviderDiagnosticFromJson(json{{"message", "m"}});
    REQUIRE(short_form.ok());
    CHECK(short_form->severity == Severity::kError);
    CHECK(short_form->field.empty());
  }
  SUBCASE("validate target") {
    ValidateTargetRequest req{"t1", json{{"region", "eu-west-1"}, {"n", 3}, {"on", true}}};
    auto back = ValidateTargetRequestFromJson(json::parse(ToJson(req).dump()));
    REQUIRE(back.ok());
    CHECK(back->target == "t1");
    CHECK(back->config == req.config);
    ValidateTargetResponse resp{{{Severity::kError, "spec.aws.region", "required"}}};
    auto r = ValidateTargetResponseFromJson(json::parse(ToJson(resp).dump()));
    REQUIRE(r.ok());
    CHECK(r->diagnostics == resp.diagnostics);
    CHECK(ValidateTargetResponseFromJson(json::object())->diagnostics.empty());
  }
  SUBCASE("validate agent") {
    ValidateAgentRequest req;
    req.agent = "web";
    req.target = "t1";
    req.target_config = json{{"region", "x"}};
    req.spec = json{{"image", "nginx"}};
    auto back = ValidateAgentRequestFromJson(json::parse(ToJson(req).dump()));
    REQUIRE(back.ok());
    CHECK(back->agent == "web");
    CHECK(back->target == "t1");
    CHECK(back->target_config == req.target_config);
    CHECK(back->spec == req.spec);
    ValidateAgentResponse resp{{{Severity::kError, "spec.volumes", "not on this cloud"}}};
    auto r = ValidateAgentResponseFromJson(json::parse(ToJson(resp).dump()));
    REQUIRE(r.ok());
    CHECK(r->diagnostics == resp.diagnostics);
  }
  SUBCASE("plan change") {
    PlanChangeRequest req{
        "web", json{{"env", {{"A", "1"}}}}, json{{"env", {{"A", "2"}}}}, {"env.A", "image"}};
    auto back = PlanChangeRequestFromJson(json::parse(ToJson(req).dump()));
    REQUIRE(back.ok());
    CHECK(back->agent == "web");
    CHECK(back->prior == req.prior);
    CHECK(back->desired == req.desired);
    CHECK(back->changed == req.changed);
    PlanChangeResponse resp{{"image"}, {{Severity::kWarning, "", "image changes restart it"}}};
    auto r = PlanChangeResponseFromJson(json::parse(ToJson(resp).dump()));
    REQUIRE(r.ok());
    CHECK(r->requires_replace == resp.requires_replace);
    CHECK(r->diagnostics == resp.diagnostics);
  }
  SUBCASE("observe request: the target without its settings") {
    ObserveRequest req;
    req.target.name = "t1";
    req.target.provider = "localfile";
    req.target.labels = {{"team", "cx"}};
    req.target.settings = json{{"directory", "/x"}};
    json j = ToJson(req);
    CHECK(j == json{{"target",
                     {{"name", "t1"}, {"provider", "localfile"}, {"labels", {{"team", "cx"}}}}}});
  }
}

TEST_CASE("provider messages: version 2 malformed input names the field") {
  struct Row {
    const char* name;
    std::function<Status()> decode;
    const char* message;
  };
  std::vector<Row> rows = {
      {"schema instancePerReplica",
       [] {
         return ProviderSchemaFromJson(
                    json{{"updatableFields", json::array()}, {"instancePerReplica", "yes"}})
             .status();
       },
       "schema.instancePerReplica: wrong type (string)"},
      {"schema targetSchema",
       [] {
         return ProviderSchemaFromJson(
                    json{{"updatableFields", json::array()}, {"targetSchema", 3}})
             .status();
       },
       "schema.targetSchema: expected a JSON Schema (an object or a boolean)"},
      {"diagnostic severity",
       [] {
         return ProviderDiagnosticFromJson(json{{"severity", "fatal"}, {"message", "m"}}).status();
       },
       "diagnostic.severity: expected \"error\" or \"warning\", not 'fatal'"},
      {"diagnostic without message",
       [] {
         return ProviderDiagnosticFromJson(json{{"field", "spec.x"}}).status();
       },
       "diagnostic.message: missing"},
      {"diagnostic empty message",
       [] {
         return ProviderDiagnosticFromJson(json{{"message", ""}}).status();
       },
       "diagnostic.message: empty"},
      {"validate target config not an object",
       [] {
         return ValidateTargetRequestFromJson(json{{"target", "t"}, {"config", json::array()}})
             .status();
       },
       "validateTargetRequest.config: expected an object (array)"},
      {"validate target diagnostics not an array",
       [] {
         return ValidateTargetResponseFromJson(json{{"diagnostics", "none"}}).status();
       },
       "validateTargetResponse.diagnostics: expected an array"},
      {"validate target diagnostic entry",
       [] {
         return ValidateTargetResponseFromJson(
                    json{{"diagnostics", {{{"field", 1}, {"message", "m"}}}}})
             .status();
       },
       "validateTargetResponse.diagnostics[0]: diagnostic.field: wrong type (number)"},
      {"validate agent without spec",
       [] {
         return ValidateAgentRequestFromJson(
                    json{{"agent", "a"}, {"target", "t"}, {"targetConfig", json::object()}})
             .status();
       },
       "validateAgentRequest.spec: missing"},
      {"validate agent response not an object",
       [] { return ValidateAgentResponseFromJson(json::array()).status(); },
       "validateAgentResponse: expected an object"},
      {"plan change changed not strings",
       [] {
         return PlanChangeRequestFromJson(json{{"agent", "a"},
                                               {"prior", nullptr},
                                               {"desired", nullptr},
                                               {"changed", {1, 2}}})
             .status();
       },
       "planChangeRequest.changed: wrong type (array)"},
      {"plan change response without requiresReplace",
       [] {
         return PlanChangeResponseFromJson(json{{"diagnostics", json::array()}}).status();
       },
       "planChangeResponse.requiresReplace: missing"},
  };
  for (const Row& row : rows) {
    SUBCASE(row.name) {
      Status s = row.decode();
      CHECK(s.code() == Code::kInvalid);
      CHECK(s.message() == row.message);
    }
  }
}

}  // namespace
}  // namespace reconcile

namespace reconcile {
namespace {

// Issue #11 item 2: a plugin learns the Target's environment (and scopes its
// names by it); a plain tree sends no "environment" key.
TEST_CASE("provider messages: the environment of a Target") {
  ValidateAgentRequest req;
  req.agent = "web";
  req.target = "t1";
  req.spec = json{{"image", "nginx"}};
  CHECK_FALSE(ToJson(req).contains("environment"));
  auto plain = ValidateAgentRequestFromJson(json::parse(ToJson(req).dump()));
  REQUIRE(plain.ok());
  CHECK(plain->environment.empty());
  req.environment = "staging";
  CHECK(ToJson(req)["environment"] == "staging");
  auto back = ValidateAgentRequestFromJson(json::parse(ToJson(req).dump()));
  REQUIRE(back.ok());
  CHECK(back->environment == "staging");
  json bad = ToJson(req);
  bad["environment"] = 7;
  auto wrong = ValidateAgentRequestFromJson(bad);
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.status().message().find("environment") != std::string::npos);

  Target t;
  t.name = "local";
  t.provider = "exec";
  CHECK_FALSE(ToJson(ObserveRequest{t})["target"].contains("environment"));
  t.environment = "dev";
  CHECK(ToJson(ObserveRequest{t})["target"]["environment"] == "dev");
  ApplyChangeRequest apply;
  apply.target = t;
  apply.change.name = "web";
  CHECK(ToJson(apply, /*include_secrets=*/false)["target"]["environment"] == "dev");
  apply.target.environment.clear();
  CHECK_FALSE(ToJson(apply, /*include_secrets=*/false)["target"].contains("environment"));
}

}  // namespace
}  // namespace reconcile
