// Workload fields of issue #13 across the layers: decoding (and every error
// with its position and field), the normalized spec and its hash, the
// planner's words about volumes, and the Docker create body.
#include <string>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "docker/container_spec.h"
#include "reconcile/loader.h"
#include "reconcile/planner.h"
#include "reconcile/spec.h"
#include "unit/engine/test_world.h"

namespace reconcile {
namespace {

using nlohmann::json;

constexpr const char* kAgent =
    "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata:\n  name: db\nspec:\n"
    "  image: acme/db:1\n  target: local\n  port: 5432\n";

Diagnostics Decode(const std::string& spec_lines, DesiredState* out,
                   std::vector<std::string> allow = {}) {
  LoadLimits limits;
  limits.allowed_bind_paths = std::move(allow);
  Diagnostics diags;
  DecodeFile("m.yaml", "", std::string(kAgent) + spec_lines, limits, *out, diags);
  return diags;
}

using testing::All;

TEST_CASE("volumes: every kind decodes, sorted by target") {
  DesiredState state;
  auto diags = Decode(R"(  volumes:
    - {type: volume, source: pgdata, target: /var/lib/pg/, reclaim: delete}
    - {type: bind, source: /srv/conf//app, target: /etc/app, readOnly: true}
    - {type: tmpfs, target: /tmp, size: 64Mi}
)",
                      &state, {"/srv/conf/"});
  REQUIRE_MESSAGE(!diags.HasErrors(), All(diags));
  REQUIRE(state.agents.size() == 1);
  const auto& v = state.agents[0].volumes;
  REQUIRE(v.size() == 3);
  CHECK(v[0].target == "/etc/app");
  CHECK(v[0].type == VolumeMount::Type::kBind);
  CHECK(v[0].source == "/srv/conf/app");
  CHECK(v[0].read_only);
  CHECK(v[1].target == "/tmp");
  CHECK(v[1].type == VolumeMount::Type::kTmpfs);
  CHECK(v[1].size == "64Mi");
  CHECK(v[2].target == "/var/lib/pg");
  CHECK(v[2].source == "pgdata");
  CHECK(v[2].reclaim == VolumeMount::Reclaim::kDelete);
  CHECK_FALSE(v[2].read_only);
}

TEST_CASE("volumes: each error names file:line:column and the field") {
  struct Row {
    const char* name;
    const char* yaml;
    const char* want;
  };
  const Row rows[] = {
      {"bind without any allowed path", "  volumes:\n    - {type: bind, source: /, target: /h}\n",
       "m.yaml:10:28: error: spec.volumes[0].source: bind mount of host path '/' is not allowed: "
       "the operator allowed no host path"},
      {"bind outside the allowed path",
       "  volumes:\n    - {type: bind, source: /srv/confidential, target: /h}\n",
       "spec.volumes[0].source: bind mount of host path '/srv/confidential' is not allowed: it is "
       "not below an allowed path (/srv/conf)"},
      {"bind with ..", "  volumes:\n    - {type: bind, source: /srv/conf/../etc, target: /h}\n",
       "m.yaml:10:28: error: spec.volumes[0].source: invalid value"},
      {"unknown type", "  volumes:\n    - {type: nfs, source: x1, target: /h}\n",
       "m.yaml:10:14: error: spec.volumes[0].type: invalid value 'nfs': must be volume, bind or "
       "tmpfs"},
      {"missing target", "  volumes:\n    - {type: volume, source: data}\n",
       "spec.volumes[0].target: required field is missing"},
      {"relative target", "  volumes:\n    - {type: volume, source: data, target: data}\n",
       "m.yaml:10:44: error: spec.volumes[0].target: invalid value 'data'"},
      {"root target", "  volumes:\n    - {type: volume, source: data, target: /}\n",
       "spec.volumes[0].target: cannot mount over the container's root '/'"},
      {"target twice",
       "  volumes:\n    - {type: volume, source: data, target: /d}\n    - {type: tmpfs, target: "
       "/d/}\n",
       "m.yaml:11:29: error: spec.volumes[1].target: '/d' is already mounted by spec.volumes[0]"},
      {"volume without source", "  volumes:\n    - {type: volume, target: /d}\n",
       "spec.volumes[0].source: required with type volume (the volume's name)"},
      {"bad volume name", "  volumes:\n    - {type: volume, source: Data, target: /d}\n",
       "spec.volumes[0].source: invalid value 'Data': must be a volume name"},
      {"source on tmpfs", "  volumes:\n    - {type: tmpfs, source: x1, target: /d}\n",
       "spec.volumes[0].source: not allowed with type tmpfs"},
      {"reclaim on bind",
       "  volumes:\n    - {type: bind, source: /srv/conf, target: /d, reclaim: delete}\n",
       "spec.volumes[0].reclaim: only allowed with type volume"},
      {"bad reclaim", "  volumes:\n    - {type: volume, source: dd, target: /d, reclaim: keep}\n",
       "spec.volumes[0].reclaim: invalid value 'keep': must be retain or delete"},
      {"size on a volume", "  volumes:\n    - {type: volume, source: dd, target: /d, size: 1Mi}\n",
       "spec.volumes[0].size: only allowed with type tmpfs"},
      {"readOnly not a bool",
       "  volumes:\n    - {type: volume, source: dd, target: /d, readOnly: yes}\n",
       "spec.volumes[0].readOnly: must be a boolean"},
      {"unknown field", "  volumes:\n    - {type: volume, source: dd, target: /d, mode: rw}\n",
       "spec.volumes[0].mode: unknown field 'mode'"},
      {"not a list", "  volumes: {type: volume}\n", "spec.volumes: must be a list of mounts"},
  };
  for (const Row& row : rows) {
    SUBCASE(row.name) {
      DesiredState state;
      bool none = std::string(row.name) == "bind without any allowed path";
      auto diags =
          Decode(row.yaml, &state,
                 none ? std::vector<std::string>{} : std::vector<std::string>{"/srv/conf"});
      CHECK_MESSAGE(All(diags).find(row.want) != std::string::npos, All(diags));
    }
  }
}

TEST_CASE("volumes: one volume, one reclaim policy across agents") {
  FolderSet tree;
  std::string second =
      "---\napiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata:\n  name: api\nspec:\n"
      "  image: acme/api:1\n  target: local\n  port: 80\n  volumes:\n"
      "    - {type: volume, source: shared, target: /d, readOnly: true}\n"
      "---\napiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata:\n  name: local\nspec:\n"
      "  provider: docker\n";
  SUBCASE("conflicting policies are an error at each agent's mount") {
    auto result = LoadFiles(
        {{"m.yaml", std::string(kAgent) +
                        "  volumes:\n    - {type: volume, source: shared, target: /d, reclaim: "
                        "delete}\n" +
                        second}},
        tree);
    std::string all = All(result.diagnostics);
    CHECK_MESSAGE(all.find("m.yaml:10:30: error: spec.volumes: volume 'shared' is mounted with "
                           "different reclaim policies: agent 'api' (retain), agent 'db' "
                           "(delete)") != std::string::npos,
                  all);
    CHECK(all.find("m.yaml:21:30: error: spec.volumes: volume 'shared'") != std::string::npos);
  }
  SUBCASE("the same policy is fine (a shared volume)") {
    auto result = LoadFiles(
        {{"m.yaml", std::string(kAgent) +
                        "  volumes:\n    - {type: volume, source: shared, target: /d}\n" + second}},
        tree);
    CHECK_MESSAGE(!result.diagnostics.HasErrors(), All(result.diagnostics));
  }
}

TEST_CASE("volumes: part of the spec hash, absent when unused") {
  Agent a = testing::MakeAgent("a");
  json plain = NormalizedSpec(a, a.image);
  CHECK_FALSE(plain.contains("volumes"));  // agents without volumes keep their hash
  Agent b = a;
  b.volumes.push_back(
      {VolumeMount::Type::kVolume, "data", "/data", false, VolumeMount::Reclaim::kRetain, ""});
  json spec = NormalizedSpec(b, b.image);
  CHECK(spec["volumes"]["/data"] ==
        json({{"type", "volume"}, {"source", "data"}, {"readOnly", false}, {"reclaim", "retain"}}));
  CHECK(SpecHash(spec) != SpecHash(plain));
  Agent c = b;
  c.volumes[0].reclaim = VolumeMount::Reclaim::kDelete;
  CHECK(SpecHash(NormalizedSpec(c, c.image)) != SpecHash(spec));
  Agent d = b;
  d.volumes[0].read_only = true;
  CHECK(SpecHash(NormalizedSpec(d, d.image)) != SpecHash(spec));
}

TEST_CASE("volumes: the plan says in words what happens to them") {
  Agent a = testing::MakeAgent("db");
  a.volumes = {
      {VolumeMount::Type::kVolume, "keep-me", "/a", false, VolumeMount::Reclaim::kRetain, ""},
      {VolumeMount::Type::kVolume, "drop-me", "/b", false, VolumeMount::Reclaim::kDelete, ""},
      {VolumeMount::Type::kTmpfs, "", "/tmp", false, VolumeMount::Reclaim::kRetain, ""}};
  State recorded;
  recorded.resources["agent.db"] = testing::Recorded(a, "c1");
  ObserveResponse observed;
  observed.instances = {testing::Running(a, "c1")};

  SUBCASE("prune and destroy: kept or DELETED, and the provider gets the recorded spec") {
    DesiredState desired = testing::MakeDesired({});
    PlanInput in;
    in.desired = &desired;
    in.recorded = &recorded;
    in.observed["local"] = observed;
    Plan plan = ComputePlan(in);
    REQUIRE(plan.changes.size() == 1);
    const Change& c = plan.changes[0];
    CHECK(c.action == Action::kDelete);
    CHECK(c.reason ==
          "removed from the desired state; volume 'keep-me' and its data are kept (reclaim: "
          "retain); volume 'drop-me' will be DELETED with its data (reclaim: delete)");
    CHECK(c.desired.get() == recorded.resources["agent.db"].spec.Get());
    CHECK(c.desired_hash.empty());
    auto round = PlanFromJson(ToJson(plan));
    REQUIRE(round.ok());
    CHECK(*round == plan);
  }
  SUBCASE("replace: the volumes keep their data") {
    Agent changed = a;
    changed.env["GREETING"] = "new";
    DesiredState desired = testing::MakeDesired({changed});
    PlanInput in;
    in.desired = &desired;
    in.recorded = &recorded;
    in.observed["local"] = observed;
    Plan plan = ComputePlan(in);
    REQUIRE(plan.changes.size() == 1);
    CHECK(plan.changes[0].action == Action::kReplace);
    CHECK(plan.changes[0].reason ==
          "changed fields cannot be updated in place: env.GREETING; volumes 'drop-me', "
          "'keep-me' kept with their data");
  }
  SUBCASE("a volume change is a field-level diff that forces replacement on Docker") {
    Agent changed = a;
    changed.volumes[0].read_only = true;
    DesiredState desired = testing::MakeDesired({changed});
    PlanInput in;
    in.desired = &desired;
    in.recorded = &recorded;
    in.observed["local"] = observed;
    in.schemas["docker"] = ProviderSchema{};
    Plan plan = ComputePlan(in);
    REQUIRE(plan.changes[0].fields.size() == 1);
    CHECK(plan.changes[0].fields[0].path == "volumes./a.readOnly");
    CHECK(plan.changes[0].fields[0].forces_replace);
  }
}

TEST_CASE("volumes: the Docker create body mounts them") {
  Agent a = testing::MakeAgent("db");
  a.volumes = {
      {VolumeMount::Type::kVolume, "pgdata", "/data", false, VolumeMount::Reclaim::kRetain, ""},
      {VolumeMount::Type::kBind, "/srv/conf", "/etc/app", true, VolumeMount::Reclaim::kRetain, ""},
      {VolumeMount::Type::kTmpfs, "", "/tmp", false, VolumeMount::Reclaim::kRetain, "1Mi"}};
  auto spec = docker::ContainerSpecFromJson(NormalizedSpec(a, a.image));
  REQUIRE_MESSAGE(spec.ok(), spec.status().message());
  REQUIRE(spec->mounts.size() == 3);
  auto body = docker::BuildCreateBody(*spec, {"db", "sha256:x", "rev", "127.0.0.1", ""}, {});
  REQUIRE(body.ok());
  CHECK((*body)["HostConfig"]["Mounts"] == json::parse(R"([
          {"Type": "volume", "Source": "pgdata", "Target": "/data", "ReadOnly": false},
          {"Type": "bind", "Source": "/srv/conf", "Target": "/etc/app", "ReadOnly": true},
          {"Type": "tmpfs", "Target": "/tmp", "ReadOnly": false,
           "TmpfsOptions": {"SizeBytes": 1048576}}])"));
  CHECK(docker::BuildVolumeBody("pgdata", "db") ==
        json::parse(R"({"Name": "pgdata", "Driver": "local", "Labels": {
          "reconcile.dev/managed-by": "reconcile", "reconcile.dev/agent": "db",
          "reconcile.dev/volume": "pgdata"}})"));

  SUBCASE("a hostile spec is refused, never thrown") {
    for (const char* bad : {R"({"/d": {"type": "nfs", "source": "x"}})",
                            R"({"/d": {"type": "volume"}})", R"({"/d": {"type": "bind", "source":
                            "rel"}})",
                            R"({"d": {"type": "tmpfs"}})", R"({"/d": 3})",
                            R"({"/d": {"type": "tmpfs", "size": "lots"}})", R"([])"}) {
      json s = NormalizedSpec(a, a.image);
      s["volumes"] = json::parse(bad);
      CHECK_MESSAGE(!docker::ContainerSpecFromJson(s).ok(), bad);
    }
  }
}

TEST_CASE("ports: decode, sorted; errors name file:line:column and the field") {
  DesiredState state;
  auto diags = Decode(R"(  ports:
    - {containerPort: 9000, protocol: udp}
    - {containerPort: 8443, hostIP: 0.0.0.0, hostPort: 443}
    - {containerPort: 9000}
)",
                      &state);
  REQUIRE_MESSAGE(!diags.HasErrors(), All(diags));
  const auto& p = state.agents[0].ports;
  REQUIRE(p.size() == 3);
  CHECK(p[0] == PortMapping{8443, "tcp", "0.0.0.0", 443});
  CHECK(p[1] == PortMapping{9000, "tcp", "", 0});
  CHECK(p[2] == PortMapping{9000, "udp", "", 0});
  json spec = NormalizedSpec(state.agents[0], "acme/db:1");
  CHECK(spec["ports"] == json::parse(R"({"8443/tcp": {"hostPort": 443, "hostIP": "0.0.0.0"},
                                          "9000/tcp": {"hostPort": 0},
                                          "9000/udp": {"hostPort": 0}})"));
  Agent plain = testing::MakeAgent("a");
  CHECK_FALSE(NormalizedSpec(plain, plain.image).contains("ports"));

  struct Row {
    const char* name;
    const char* yaml;
    const char* want;
  };
  const Row rows[] = {
      {"the main port again", "  ports:\n    - {containerPort: 5432}\n",
       "m.yaml:10:23: error: spec.ports[0].containerPort: 5432/tcp is the agent's main port "
       "(spec.port), published already; set its host port with spec.hostPort"},
      {"listed twice", "  ports:\n    - {containerPort: 1}\n    - {containerPort: 1}\n",
       "m.yaml:11:23: error: spec.ports[1].containerPort: 1/tcp is already listed at "
       "spec.ports[0]"},
      {"one host port twice",
       "  ports:\n    - {containerPort: 1, hostPort: 80}\n    - {containerPort: 2, hostPort: 80}\n",
       "spec.ports[1].hostPort: host port 80/tcp is already used by spec.ports[0]"},
      {"bad protocol", "  ports:\n    - {containerPort: 1, protocol: sctp}\n",
       "spec.ports[0].protocol: invalid value 'sctp': must be tcp or udp"},
      {"bad address", "  ports:\n    - {containerPort: 1, hostIP: localhost}\n",
       "spec.ports[0].hostIP: invalid value 'localhost': must be an IPv4 or IPv6 address"},
      {"out of range", "  ports:\n    - {containerPort: 70000}\n",
       "spec.ports[0].containerPort: must be between 1 and 65535, got 70000"},
      {"missing containerPort", "  ports:\n    - {hostPort: 1}\n",
       "spec.ports[0].containerPort: required field is missing"},
      {"unknown field", "  ports:\n    - {containerPort: 1, published: 2}\n",
       "spec.ports[0].published: unknown field 'published'"},
  };
  for (const Row& row : rows) {
    SUBCASE(row.name) {
      DesiredState bad;
      auto d = Decode(row.yaml, &bad);
      CHECK_MESSAGE(All(d).find(row.want) != std::string::npos, All(d));
    }
  }
}

TEST_CASE("ports: the Docker create body publishes each") {
  Agent a = testing::MakeAgent("api");
  a.host_port = 18080;
  a.ports = {{9000, "udp", "", 0}, {9443, "tcp", "::1", 19443}};
  auto spec = docker::ContainerSpecFromJson(NormalizedSpec(a, a.image));
  REQUIRE_MESSAGE(spec.ok(), spec.status().message());
  auto body = docker::BuildCreateBody(*spec, {"api", "sha256:x", "rev", "127.0.0.1", ""}, {});
  REQUIRE(body.ok());
  CHECK((*body)["ExposedPorts"] ==
        json::parse(R"({"8080/tcp": {}, "9000/udp": {}, "9443/tcp": {}})"));
  CHECK((*body)["HostConfig"]["PortBindings"] == json::parse(R"({
    "8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}],
    "9000/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
    "9443/tcp": [{"HostIp": "::1", "HostPort": "19443"}]})"));
  SUBCASE("hostile ports are refused, never thrown") {
    for (const char* bad :
         {R"({"x/tcp": {}})", R"({"9000": {}})", R"({"9000/sctp": {}})", R"({"8080/tcp": {}})",
          R"({"9000/tcp": {"hostPort": -1}})", R"({"9000/tcp": {"hostIP": "a b"}})", R"([])"}) {
      json s = NormalizedSpec(a, a.image);
      s["ports"] = json::parse(bad);
      CHECK_MESSAGE(!docker::ContainerSpecFromJson(s).ok(), bad);
    }
  }
}

TEST_CASE("restart: decode, spec (absent when unset), Docker RestartPolicy") {
  for (const char* policy : {"no", "always", "unless-stopped", "on-failure", "on-failure:5"}) {
    DesiredState state;
    auto diags = Decode(std::string("  restart: ") + policy + "\n", &state);
    REQUIRE_MESSAGE(!diags.HasErrors(), All(diags));
    CHECK(state.agents[0].restart == policy);
    json spec = NormalizedSpec(state.agents[0], "acme/db:1");
    CHECK(spec["restart"] == policy);
  }
  for (const char* bad :
       {"sometimes", "on-failure:0", "on-failure:x", "on-failure:99999", "true"}) {
    DesiredState state;
    auto diags = Decode(std::string("  restart: ") + bad + "\n", &state);
    CHECK_MESSAGE(All(diags).find("m.yaml:9:12: error: spec.restart:") != std::string::npos,
                  All(diags));
  }
  Agent a = testing::MakeAgent("a");
  CHECK_FALSE(NormalizedSpec(a, a.image).contains("restart"));  // hash unchanged
  auto policy_of = [&](const std::string& restart) {
    Agent b = a;
    b.restart = restart;
    auto spec = docker::ContainerSpecFromJson(NormalizedSpec(b, b.image));
    REQUIRE_MESSAGE(spec.ok(), spec.status().message());
    auto body = docker::BuildCreateBody(*spec, {"a", "sha256:x", "rev", "127.0.0.1", ""}, {});
    REQUIRE(body.ok());
    return (*body)["HostConfig"]["RestartPolicy"];
  };
  CHECK(policy_of("") == json({{"Name", "unless-stopped"}}));
  CHECK(policy_of("no") == json({{"Name", "no"}}));
  CHECK(policy_of("always") == json({{"Name", "always"}}));
  CHECK(policy_of("on-failure:3") == json({{"Name", "on-failure"}, {"MaximumRetryCount", 3}}));
}

}  // namespace
}  // namespace reconcile
