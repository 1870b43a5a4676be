// The Docker provider's event-stream query and its reading of EventMessage,
// checked against the official Docker Engine API model
// (tests/testdata/vectors/api-models/docker-engine-swagger-v1.41.yaml).
#include "docker/engine_events.h"

#include <string>

#include <doctest/doctest.h>
#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "docker/engine_client.h"

namespace reconcile::docker {
namespace {

using nlohmann::json;

const YAML::Node& Model() {
  static const YAML::Node model = YAML::LoadFile(std::string(RECONCILE_VECTORS_DIR) +
                                                 "/api-models/docker-engine-swagger-v1.41.yaml");
  return model;
}

// A message as the Engine sends it for `docker stop` of one of our containers.
json StopMessage(const std::string& environment = "") {
  json attributes = {{"image", "reconcile/hello-agent:0.1.0"},
                     {"name", "web-0"},
                     {"reconcile.dev/managed-by", "reconcile"},
                     {"reconcile.dev/agent", "web"},
                     {"exitCode", "0"}};
  if (!environment.empty()) attributes["reconcile.dev/environment"] = environment;
  return {{"Type", "container"},
          {"Action", "stop"},
          {"Actor", {{"ID", "0123abcd"}, {"Attributes", attributes}}},
          {"scope", "local"},
          {"time", 1629574695},
          {"timeNano", 1629574695515050031LL}};
}

TEST_CASE("engine events: the query uses only filters the model's GET /events documents") {
  const YAML::Node op = Model()["paths"]["/events"]["get"];
  REQUIRE(op);
  std::string filters_doc;
  for (const YAML::Node& p : op["parameters"]) {
    if (p["name"].as<std::string>() == "filters") filters_doc = p["description"].as<std::string>();
  }
  REQUIRE(!filters_doc.empty());
  const std::string actions_doc = op["description"].as<std::string>();
  for (const std::string env : {"", "staging"}) {
    CAPTURE(env);
    json f = EventFilters(env);
    for (auto it = f.begin(); it != f.end(); ++it) {
      CHECK_MESSAGE(filters_doc.find("`" + it.key() + "=") != std::string::npos, it.key());
      REQUIRE(it->is_array());  // map[string][]string
      for (const json& v : *it) CHECK(v.is_string());
    }
    CHECK(f["type"] == json::array({"container"}));
    for (const std::string& a : kDriftActions) {
      CHECK_MESSAGE(actions_doc.find("`" + a + "`") != std::string::npos, a);
    }
    const std::string path = EventsPath(env);
    CHECK(path.rfind("/events?filters=", 0) == 0);
    CHECK(path == "/events?filters=" + UrlEncode(f.dump()));
  }
  CHECK(EventFilters("staging")["label"] ==
        json::array({"reconcile.dev/managed-by=reconcile", "reconcile.dev/environment=staging"}));
  CHECK(EventFilters("")["label"] == json::array({"reconcile.dev/managed-by=reconcile"}));
}

TEST_CASE("engine events: an EventMessage's fields are the model's") {
  const YAML::Node msg = Model()["definitions"]["EventMessage"]["properties"];
  const YAML::Node actor = Model()["definitions"]["EventActor"]["properties"];
  json m = StopMessage();
  for (auto it = m.begin(); it != m.end(); ++it) CHECK_MESSAGE(msg[it.key()], it.key());
  for (auto it = m["Actor"].begin(); it != m["Actor"].end(); ++it) {
    CHECK_MESSAGE(actor[it.key()], it.key());
  }
}

TEST_CASE("engine events: which messages are ours") {
  SUBCASE("a stop of our plain-tree container") {
    auto e = ParseContainerEvent(StopMessage(), "");
    REQUIRE(e);
    CHECK(*e == ContainerEvent{"stop", "0123abcd", "web-0", "web", 1629574695515050031LL});
  }
  SUBCASE("an environment's container: only for that environment") {
    CHECK(ParseContainerEvent(StopMessage("dev"), "dev"));
    CHECK_FALSE(ParseContainerEvent(StopMessage("dev"), ""));
    CHECK_FALSE(ParseContainerEvent(StopMessage("dev"), "prod"));
    CHECK_FALSE(ParseContainerEvent(StopMessage(), "dev"));
  }
  SUBCASE("actions that are not drift: health-check execs, health_status, attach") {
    for (const char* a : {"exec_start", "exec_die", "health_status: healthy", "attach", "top"}) {
      json m = StopMessage();
      m["Action"] = a;
      CHECK_FALSE(ParseContainerEvent(m, ""));
    }
    for (const std::string& a : kDriftActions) {
      json m = StopMessage();
      m["Action"] = a;
      CHECK(ParseContainerEvent(m, ""));
    }
  }
  SUBCASE("not ours, or malformed") {
    json foreign = StopMessage();
    foreign["Actor"]["Attributes"].erase("reconcile.dev/managed-by");
    CHECK_FALSE(ParseContainerEvent(foreign, ""));
    json no_agent = StopMessage();
    no_agent["Actor"]["Attributes"].erase("reconcile.dev/agent");
    CHECK_FALSE(ParseContainerEvent(no_agent, ""));
    json image = StopMessage();
    image["Type"] = "image";
    CHECK_FALSE(ParseContainerEvent(image, ""));
    json bad_actor = StopMessage();
    bad_actor["Actor"] = "x";
    CHECK_FALSE(ParseContainerEvent(bad_actor, ""));
    json bad_time = StopMessage();
    bad_time["timeNano"] = "soon";
    auto e = ParseContainerEvent(bad_time, "");
    REQUIRE(e);
    CHECK(e->time_nanos == 0);
    CHECK_FALSE(ParseContainerEvent(json::array(), ""));
    CHECK_FALSE(ParseContainerEvent(json(nullptr), ""));
  }
}

TEST_CASE("engine events: the stream is split into lines whatever the chunks") {
  EventLineSplitter s;
  CHECK(s.Feed("{\"a\":").empty());
  CHECK(s.Feed("1}\n{\"b\"") == std::vector<std::string>{"{\"a\":1}"});
  CHECK(s.Feed(":2}\n\n{\"c\":3}\n") == std::vector<std::string>{"{\"b\":2}", "{\"c\":3}"});
  CHECK(s.dropped() == 0);

  EventLineSplitter small(8);
  CHECK(small.Feed("0123456789").empty());
  CHECK(small.Feed("abc\nok\n") == std::vector<std::string>{"ok"});
  CHECK(small.dropped() == 1);
}

}  // namespace
}  // namespace reconcile::docker
