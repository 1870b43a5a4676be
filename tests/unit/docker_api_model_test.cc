// Checks the Docker provider's requests and its reading of responses against
// the official Docker Engine API model (tests/testdata/vectors/api-models/
// docker-engine-swagger-v1.41.yaml), as it is: every field we send must be a
// field the API defines, with a matching type, and every field we read from a
// container list must be one the API documents.
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "docker/container_spec.h"

namespace reconcile::docker {
namespace {

using nlohmann::json;

const YAML::Node& Model() {
  static const YAML::Node model = YAML::LoadFile(std::string(RECONCILE_VECTORS_DIR) +
                                                 "/api-models/docker-engine-swagger-v1.41.yaml");
  return model;
}

YAML::Node Resolve(YAML::Node schema) {
  while (schema["$ref"]) {
    std::string ref = schema["$ref"].as<std::string>();  // "#/definitions/X"
    schema = Model()["definitions"][ref.substr(ref.rfind('/') + 1)];
  }
  return schema;
}

// Properties of a schema, through $ref and allOf.
void CollectProperties(YAML::Node schema, std::map<std::string, YAML::Node>& out) {
  schema = Resolve(schema);
  if (schema["allOf"]) {
    for (const YAML::Node& part : schema["allOf"]) CollectProperties(part, out);
  }
  if (schema["properties"]) {
    for (const auto& kv : schema["properties"]) out[kv.first.as<std::string>()] = kv.second;
  }
}

bool TypeMatches(const json& value, const std::string& type) {
  if (type == "string") return value.is_string();
  if (type == "integer") return value.is_number_integer();
  if (type == "number") return value.is_number();
  if (type == "boolean") return value.is_boolean();
  if (type == "array") return value.is_array();
  if (type == "object") return value.is_object();
  return true;
}

// Walks `value` against `schema`; collects every field the model does not
// define and every type that does not match.
void Check(const json& value, YAML::Node schema, const std::string& path,
           std::vector<std::string>& errors) {
  schema = Resolve(schema);
  if (schema["type"] && !TypeMatches(value, schema["type"].as<std::string>())) {
    errors.push_back(path + ": " + value.type_name() + " where the model says " +
                     schema["type"].as<std::string>());
    return;
  }
  if (value.is_array() && schema["items"]) {
    for (size_t i = 0; i < value.size(); ++i) {
      Check(value[i], schema["items"], path + "[" + std::to_string(i) + "]", errors);
    }
  }
  if (!value.is_object()) return;
  std::map<std::string, YAML::Node> props;
  CollectProperties(schema, props);
  for (auto it = value.begin(); it != value.end(); ++it) {
    const std::string child = path + "." + it.key();
    if (auto p = props.find(it.key()); p != props.end()) {
      Check(it.value(), p->second, child, errors);
    } else if (schema["additionalProperties"]) {
      if (schema["additionalProperties"].IsMap()) {
        Check(it.value(), schema["additionalProperties"], child, errors);
      }
    } else {
      errors.push_back(child + ": not a field of the Docker Engine API");
    }
  }
}

YAML::Node CreateBodySchema() {
  for (const YAML::Node& p : Model()["paths"]["/containers/create"]["post"]["parameters"]) {
    if (p["in"].as<std::string>() == "body") return p["schema"];
  }
  FAIL("no body parameter for POST /containers/create in the model");
  return {};
}

json FullAgentSpec() {
  return json::parse(R"({
    "image": "reconcile/hello-agent:0.1.0", "port": 8080, "hostPort": 18080,
    "command": ["/hello-agent"], "args": ["--verbose"],
    "env": {"GREETING": "hi"}, "secretEnv": {"TOKEN": "env:API_TOKEN"},
    "replicas": 1, "resources": {"cpu": "0.5", "memory": "256Mi"},
    "healthCheck": {"path": "/health", "port": 8080, "interval": "1s", "timeout": "2s",
                    "retries": 3, "startPeriod": "0s"},
    "strategy": {"type": "start-first", "autoRollback": true},
    "labels": {"team": "cx"}, "target": "local", "restart": "on-failure:3",
    "ports": {"9000/udp": {"hostPort": 0}, "9443/tcp": {"hostPort": 19443, "hostIP": "::1"}},
    "volumes": {"/data": {"type": "volume", "source": "data", "readOnly": false,
                          "reclaim": "retain"},
                "/etc/app": {"type": "bind", "source": "/srv/app", "readOnly": true},
                "/tmp": {"type": "tmpfs", "readOnly": false, "size": "64Mi"}}})");
}

TEST_CASE("docker API model: the create body uses only defined fields, typed right") {
  auto spec = ContainerSpecFromJson(FullAgentSpec());
  REQUIRE_MESSAGE(spec.ok(), spec.status().message());
  CreateContext ctx{"hello", "sha256:abc", "tree-1", "127.0.0.1", "reconcile-net"};
  auto body = BuildCreateBody(*spec, ctx, {{"TOKEN", "x"}});
  REQUIRE(body.ok());
  std::vector<std::string> errors;
  Check(*body, CreateBodySchema(), "body", errors);
  std::string all;
  for (const std::string& e : errors) all += e + "\n";
  CHECK_MESSAGE(errors.empty(), all);

  SUBCASE("the check itself catches a misspelled or mistyped field") {
    json bad = *body;
    bad["Hostnme"] = "x";
    bad["HostConfig"]["NanoCpus"] = "half";
    std::vector<std::string> found;
    Check(bad, CreateBodySchema(), "body", found);
    CHECK(found.size() == 2);
  }
}

// The fields an exec health check and the container fields add (issue #13),
// on top of the full spec: the HTTP check gives way to exec.
json FieldsAgentSpec() {
  json spec = FullAgentSpec();
  spec["healthCheck"] = json::parse(R"({"exec": ["/bin/sh", "-c", "true"], "interval": "1s",
      "timeout": "2s", "retries": 3, "startPeriod": "5s"})");
  spec["stopSignal"] = "SIGINT";
  spec["stopGracePeriod"] = "30s";
  spec["user"] = "1000:1000";
  spec["capAdd"] = {"NET_ADMIN"};
  spec["capDrop"] = {"ALL"};
  spec["readOnlyRootFilesystem"] = true;
  spec["hostname"] = "primary";
  spec["resources"]["gpus"] = "all";
  spec["labels"]["com.example.tier"] = "db";
  return spec;
}

TEST_CASE("docker API model: exec health check and container fields are defined, typed right") {
  auto spec = ContainerSpecFromJson(FieldsAgentSpec());
  REQUIRE_MESSAGE(spec.ok(), spec.status().message());
  CreateContext ctx{"hello", "sha256:abc", "tree-1", "127.0.0.1", ""};
  auto body = BuildCreateBody(*spec, ctx, {{"TOKEN", "x"}});
  REQUIRE(body.ok());
  // Each new field is in the body, so that the model check below sees it.
  for (const char* key : {"Healthcheck", "StopSignal", "StopTimeout", "User", "Hostname"}) {
    CHECK_MESSAGE(body->contains(key), key);
  }
  for (const char* key : {"CapAdd", "CapDrop", "ReadonlyRootfs", "DeviceRequests"}) {
    CHECK_MESSAGE((*body)["HostConfig"].contains(key), key);
  }
  std::vector<std::string> errors;
  Check(*body, CreateBodySchema(), "body", errors);
  std::string all;
  for (const std::string& e : errors) all += e + "\n";
  CHECK_MESSAGE(errors.empty(), all);
  // The health check's durations are integers (nanoseconds), as the model says.
  std::map<std::string, YAML::Node> props;
  CollectProperties(Resolve(Model()["definitions"]["HealthConfig"]), props);
  for (const char* key : {"Test", "Interval", "Timeout", "Retries", "StartPeriod"}) {
    REQUIRE_MESSAGE(props.count(key) == 1, key);
  }
  CHECK(props["Interval"]["type"].as<std::string>() == "integer");
  CHECK((*body)["Healthcheck"]["StartPeriod"] == 5000000000LL);
}

// The body parameter of `method` `path` in the model.
YAML::Node BodySchema(const char* path, const char* method) {
  for (const YAML::Node& p : Model()["paths"][path][method]["parameters"]) {
    if (p["in"].as<std::string>() == "body") return p["schema"];
  }
  return {};
}

void CheckBody(const json& body, const YAML::Node& schema) {
  REQUIRE(schema);
  std::vector<std::string> errors;
  Check(body, schema, "body", errors);
  std::string all;
  for (const std::string& e : errors) all += e + "\n";
  CHECK_MESSAGE(errors.empty(), all);
}

TEST_CASE("docker API model: networks, unpublished ports and secret files in the bodies") {
  json full = FullAgentSpec();
  full["publish"] = false;
  full["hostPort"] = 0;
  full["ports"]["9000/udp"]["publish"] = false;
  full["networks"] = json::parse(R"({"backend": {"aliases": ["db"]}, "metrics": {"aliases": []}})");
  full["secretFiles"] =
      json::parse(R"({"token": {"ref": "env:API_TOKEN", "target": "/run/secrets/token",
                                "mode": "0440"}})");
  auto spec = ContainerSpecFromJson(full);
  REQUIRE_MESSAGE(spec.ok(), spec.status().message());
  CreateContext ctx{"hello", "sha256:abc", "tree-1", "127.0.0.1", ""};
  ctx.secret_files_dir = "/dev/shm/reconcile-secrets/local/hello";
  auto body = BuildCreateBody(*spec, ctx, {{"TOKEN", "x"}});
  REQUIRE(body.ok());
  REQUIRE(body->contains("NetworkingConfig"));
  CheckBody(*body, CreateBodySchema());

  CheckBody(BuildNetworkBody("backend"), BodySchema("/networks/create", "post"));
  auto connect = NetworksToConnect(*spec, ctx);
  REQUIRE(connect.size() == 1);
  CheckBody(BuildConnectBody("3613f73ba0e4", connect[0], "hello"),
            BodySchema("/networks/{id}/connect", "post"));
  // What the provider reads from a network inspect answer is documented.
  std::map<std::string, YAML::Node> network;
  CollectProperties(Model()["definitions"]["Network"], network);
  for (const char* field : {"Name", "Id", "Labels", "Containers"}) {
    CHECK_MESSAGE(network.count(field) == 1, field);
  }
}

TEST_CASE("docker API model: the volume create body uses only defined fields") {
  YAML::Node schema;
  for (const YAML::Node& p : Model()["paths"]["/volumes/create"]["post"]["parameters"]) {
    if (p["in"].as<std::string>() == "body") schema = p["schema"];
  }
  REQUIRE(schema);
  std::vector<std::string> errors;
  Check(BuildVolumeBody("data", "db"), schema, "body", errors);
  std::string all;
  for (const std::string& e : errors) all += e + "\n";
  CHECK_MESSAGE(errors.empty(), all);
  // The mount types we send are the model's.
  std::set<std::string> types;
  for (const YAML::Node& t : Model()["definitions"]["MountType"]["enum"]) {
    types.insert(t.as<std::string>());
  }
  if (types.empty()) {
    for (const YAML::Node& t : Model()["definitions"]["Mount"]["properties"]["Type"]["enum"]) {
      types.insert(t.as<std::string>());
    }
  }
  for (const char* t : {"volume", "bind", "tmpfs"}) CHECK_MESSAGE(types.count(t) == 1, t);
}

TEST_CASE("docker API model: the list fields we read are documented") {
  YAML::Node summary =
      Resolve(Model()["paths"]["/containers/json"]["get"]["responses"][200]["schema"]["items"]);
  std::map<std::string, YAML::Node> props;
  CollectProperties(summary, props);
  for (const char* field : {"Id", "Names", "Image", "State", "Labels", "Ports"}) {
    CHECK_MESSAGE(props.count(field) == 1, field);
  }
  std::map<std::string, YAML::Node> port;
  CollectProperties(props["Ports"]["items"], port);
  for (const char* field : {"IP", "PrivatePort", "PublicPort", "Type"}) {
    CHECK_MESSAGE(port.count(field) == 1, field);
  }
  // A list answer shaped like the model's own example parses.
  json list = json::array(
      {{{"Id", "8dfafdbc3a40"},
        {"Names", {"/boring_feynman"}},
        {"Image", "ubuntu:latest"},
        {"State", "Exited"},
        {"Labels", {{"reconcile.dev/managed-by", "reconcile"}, {"reconcile.dev/agent", "boring"}}},
        {"Ports", {{{"PrivatePort", 2222}, {"PublicPort", 3333}, {"Type", "tcp"}}}}}});
  auto parsed = ParseContainerList(list, "127.0.0.1");
  REQUIRE(parsed.ok());
  REQUIRE(parsed->size() == 1);
  CHECK((*parsed)[0].agent == "boring");
}

}  // namespace
}  // namespace reconcile::docker
