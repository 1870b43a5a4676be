#include "reconcile/state.h"

#include <utility>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "reconcile/spec.h"

namespace reconcile {
namespace {

using nlohmann::json;

const char* const kGoldenDir = RECONCILE_SOURCE_DIR "/tests/testdata/state";

State SampleState() {
  State s;
  s.serial = 7;
  s.revision = "3f2a9c1e0b7d4a5f6e8c9b0a1d2e3f4a5b6c7d8e";
  ResourceState web;
  web.address = "agent.web";
  web.name = "web";
  web.target = "local";
  web.provider = "docker";
  web.spec_hash = "sha256:6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b";
  web.spec = json{{"image", "ghcr.io/acme/web:1.2.3"},
                  {"port", 8080},
                  {"env", {{"LOG_LEVEL", "info"}}},
                  {"replicas", 2}};
  web.revision = s.revision;
  web.instances = {{"c0ffee01", "reconcile-web-0", "http://127.0.0.1:49153", {}},
                   {"c0ffee02", "reconcile-web-1", "http://127.0.0.1:49154", {}}};
  web.health = "healthy";
  web.applied_at = "2026-01-02T03:04:05Z";
  s.resources[web.address] = web;
  ResourceState bot;
  bot.address = "agent.support-bot";
  bot.name = "support-bot";
  bot.target = "aws-prod";
  bot.provider = "aws";
  bot.spec_hash = "sha256:d4735e3a265e16eee03f59718b9b5d03019c07d8b6c51f90da3a666eec13ab35";
  bot.spec = json{{"image", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/bot@sha256:abc"}};
  bot.revision = "0123456789abcdef0123456789abcdef01234567";
  bot.instances = {{"arn:aws:apprunner:eu-west-1:123456789012:service/bot/1",
                    "bot",
                    "https://bot.eu-west-1.awsapprunner.com",
                    {}}};
  bot.health = "unknown";
  bot.applied_at = "2026-01-01T00:00:00Z";
  s.resources[bot.address] = bot;
  return s;
}

HistoryEntry SampleHistoryEntry() {
  HistoryEntry e;
  e.serial = 7;
  e.revision = "3f2a9c1e0b7d4a5f6e8c9b0a1d2e3f4a5b6c7d8e";
  e.applied_at = "2026-01-02T03:04:05Z";
  e.result = "succeeded";
  e.summary = "1 created, 1 replaced";
  e.rollback_of = 3;
  e.changed["agent.web"] = {
      "sha256:6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b",
      "ghcr.io/acme/web:1.2.3",
      {"agent.db"},
      "0123456789abcdef",
      {}};
  e.changed["agent.db"] = {
      "sha256:d4735e3a265e16eee03f59718b9b5d03019c07d8b6c51f90da3a666eec13ab35",
      "postgres:16",
      {},
      "0123456789abcdef",
      {}};
  e.removed = {"agent.old"};
  return e;
}

// A history of three applies: web, then web + db, then db changed and web gone.
History SampleHistory() {
  History h;
  auto res = [](char c, const std::string& image) {
    return HistoryResource{"sha256:" + std::string(64, c), image, {}, "00ff", {}};
  };
  HistoryResources r1{{"agent.web", res('1', "web:1")}};
  HistoryResources r2{{"agent.web", res('1', "web:1")}, {"agent.db", res('2', "db:1")}};
  HistoryResources r3{{"agent.db", res('3', "db:2")}};
  HistoryEntry e;
  e.result = "succeeded";
  for (auto [serial, resources] : {std::pair{1, &r1}, {2, &r2}, {3, &r3}}) {
    e.serial = serial;
    e.revision = "rev" + std::to_string(serial);
    AppendEntry(h, e, *resources, LastResources(h));
  }
  return h;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Compares `actual` with the golden file; RECONCILE_UPDATE_GOLDEN=1 rewrites it.
void CheckGolden(const std::string& name, const std::string& actual) {
  const std::string path = std::string(kGoldenDir) + "/" + name;
  if (std::getenv("RECONCILE_UPDATE_GOLDEN") != nullptr) {
    std::ofstream(path, std::ios::binary) << actual;
  }
  CHECK_MESSAGE(ReadText(path) == actual, "golden file differs: " << path);
}

TEST_SUITE("state") {
  TEST_CASE("state JSON round-trips") {
    SUBCASE("sample") {
      State s = SampleState();
      auto back = StateFromJson(ToJson(s));
      REQUIRE(back.ok());
      CHECK(*back == s);
    }
    SUBCASE("empty") {
      auto back = StateFromJson(ToJson(State{}));
      REQUIRE(back.ok());
      CHECK(*back == State{});
    }
    SUBCASE("through text") {
      State s = SampleState();
      auto back = StateFromJson(json::parse(ToJson(s).dump(2)));
      REQUIRE(back.ok());
      CHECK(*back == s);
    }
  }

  TEST_CASE("state JSON with a pin round-trips; version 1 files still load") {
    State s = SampleState();
    s.pin = Pin{"0123456789abcdef0123456789abcdef01234567", 4,
                "3f2a9c1e0b7d4a5f6e8c9b0a1d2e3f4a5b6c7d8e", "2026-01-03T00:00:00Z"};
    auto back = StateFromJson(json::parse(ToJson(s).dump()));
    REQUIRE_MESSAGE(back.ok(), back.status().message());
    CHECK(*back == s);
    CheckGolden("state_pinned.json", ToJson(s).dump(2) + "\n");
    json v1 = ToJson(SampleState());
    v1["version"] = 1;
    auto old = StateFromJson(v1);
    REQUIRE_MESSAGE(old.ok(), old.status().message());
    CHECK(*old == SampleState());
    json v1_pin = ToJson(s);
    v1_pin["version"] = 1;
    CHECK_FALSE(StateFromJson(v1_pin).ok());  // version 1 had no pin
    json bad = ToJson(s);
    bad["pin"]["serial"] = "4";
    auto r = StateFromJson(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find("pin.serial") != std::string::npos);
  }

  TEST_CASE("state JSON keeps the content digest; files without it load") {
    State s = SampleState();
    s.content_digest = "tree-0123456789ab";
    json j = ToJson(s);
    CHECK(j["contentDigest"] == "tree-0123456789ab");
    auto back = StateFromJson(json::parse(j.dump()));
    REQUIRE_MESSAGE(back.ok(), back.status().message());
    CHECK(*back == s);
    json old = ToJson(SampleState());
    CHECK_FALSE(old.contains("contentDigest"));  // empty: not written
    auto loaded = StateFromJson(old);
    REQUIRE_MESSAGE(loaded.ok(), loaded.status().message());
    CHECK(loaded->content_digest.empty());
    json bad = j;
    bad["contentDigest"] = 7;
    auto r = StateFromJson(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find("contentDigest") != std::string::npos);
  }

  TEST_CASE("history: differences per entry, replayed and trimmed") {
    History h = SampleHistory();
    REQUIRE(h.entries.size() == 3);
    CHECK(h.entries[0].changed.size() == 1);
    CHECK(h.entries[1].changed.size() == 1);  // only agent.db is new
    CHECK(h.entries[1].changed.count("agent.db") == 1);
    CHECK(h.entries[2].removed == std::vector<std::string>{"agent.web"});
    CHECK(ResourcesAt(h, 1).size() == 2);
    CHECK(ResourcesAt(h, 2).size() == 1);
    CHECK(ResourcesAt(h, 2).at("agent.db").image == "db:2");
    CHECK(ReferencedSpecs(h).size() == 3);
    SUBCASE("round trip through text") {
      auto back = HistoryFromJson(json::parse(ToJson(h).dump()));
      REQUIRE_MESSAGE(back.ok(), back.status().message());
      CHECK(*back == h);
    }
    SUBCASE("trimming folds the dropped entry into the next") {
      History t = h;
      TrimHistory(t, 2, 0);
      REQUIRE(t.entries.size() == 2);
      CHECK(t.entries[0].serial == 2);
      CHECK(ResourcesAt(t, 0) == ResourcesAt(h, 1));
      CHECK(ResourcesAt(t, 1) == ResourcesAt(h, 2));
      CHECK(t.entries[0].removed.empty());
      TrimHistory(t, 1, 0);
      CHECK(ResourcesAt(t, 0) == ResourcesAt(h, 2));
      CHECK(ReferencedSpecs(t).size() == 1);
    }
    SUBCASE("trimming keeps the pinned entry and folds around it") {
      History t = h;
      TrimHistory(t, 2, /*keep=*/1);
      REQUIRE(t.entries.size() == 2);
      CHECK(t.entries[0].serial == 1);
      CHECK(t.entries[1].serial == 3);
      CHECK(ResourcesAt(t, 0) == ResourcesAt(h, 0));
      CHECK(ResourcesAt(t, 1) == ResourcesAt(h, 2));
    }
  }

  TEST_CASE("a version 1 history (an array, specs inline) loads as differences") {
    json v1 = json::array();
    json web1 = {{"image", "web:1"}};
    json web2 = {{"image", "web:2"}};
    v1.push_back({{"serial", 1},
                  {"revision", "r1"},
                  {"appliedAt", "t"},
                  {"result", "succeeded"},
                  {"summary", "s"},
                  {"specs", {{"agent.web", web1}}}});
    v1.push_back({{"serial", 2},
                  {"revision", "r2"},
                  {"appliedAt", "t"},
                  {"result", "succeeded"},
                  {"summary", "s"},
                  {"specs", {{"agent.web", web2}, {"agent.db", web1}}}});
    v1.push_back({{"serial", 3},
                  {"revision", "r3"},
                  {"appliedAt", "t"},
                  {"result", "failed"},
                  {"summary", "s"},
                  {"specs", {{"agent.db", web1}}}});
    auto h = HistoryFromJson(v1);
    REQUIRE_MESSAGE(h.ok(), h.status().message());
    REQUIRE(h->entries.size() == 3);
    CHECK(h->legacy_specs.size() == 2);
    CHECK(h->legacy_specs.at(SpecHash(web2)) == web2);
    CHECK(ResourcesAt(*h, 1).at("agent.web").spec_hash == SpecHash(web2));
    CHECK(ResourcesAt(*h, 1).at("agent.web").image == "web:2");
    CHECK(ResourcesAt(*h, 2).size() == 1);
    CHECK(h->entries[2].removed == std::vector<std::string>{"agent.web"});
  }

  TEST_CASE("state JSON uses camelCase keys and the format version") {
    json j = ToJson(SampleState());
    CHECK(j["version"] == 2);
    CHECK(j["serial"] == 7);
    const json& web = j["resources"]["agent.web"];
    CHECK(web.contains("specHash"));
    CHECK(web.contains("appliedAt"));
    CHECK(web["instances"][0] == json{{"id", "c0ffee01"},
                                      {"name", "reconcile-web-0"},
                                      {"endpoint", "http://127.0.0.1:49153"}});
  }

  TEST_CASE("state JSON matches the golden file") {
    CheckGolden("state.json", ToJson(SampleState()).dump(2) + "\n");
    auto parsed = StateFromJson(json::parse(ReadText(std::string(kGoldenDir) + "/state.json")));
    REQUIRE(parsed.ok());
    CHECK(*parsed == SampleState());
  }

  TEST_CASE("history entry JSON round-trips and matches the golden file") {
    HistoryEntry e = SampleHistoryEntry();
    auto back = HistoryEntryFromJson(ToJson(e));
    REQUIRE(back.ok());
    CHECK(*back == e);
    CHECK(HistoryEntryFromJson(ToJson(HistoryEntry{})).ok());
    CheckGolden("history_entry.json", ToJson(e).dump(2) + "\n");
  }

  TEST_CASE("malformed state JSON is kInvalid naming the field") {
    struct Row {
      const char* name;
      std::function<void(json&)> mutate;
      const char* want;
    };
    const Row rows[] = {
        {"not an object", [](json& j) { j = json::array(); },
         "top level: expected an object, got array"},
        {"null", [](json& j) { j = nullptr; }, "top level: expected an object, got null"},
        {"string", [](json& j) { j = "state"; }, "top level: expected an object, got string"},
        {"missing version", [](json& j) { j.erase("version"); }, "version: missing field"},
        {"unknown version", [](json& j) { j["version"] = 3; },
         "unsupported state format version 3"},
        {"version as string", [](json& j) { j["version"] = "1"; },
         "version: expected an integer, got string"},
        {"missing serial", [](json& j) { j.erase("serial"); }, "serial: missing field"},
        {"negative serial", [](json& j) { j["serial"] = -1; }, "serial: -1 is out of range"},
        {"huge serial", [](json& j) { j["serial"] = 4294967296LL; },
         "serial: 4294967296 is out of range"},
        {"huge unsigned serial", [](json& j) { j["serial"] = 18446744073709551615ULL; },
         "serial: 18446744073709551615 is out of range"},
        {"float serial", [](json& j) { j["serial"] = 1.5; },
         "serial: expected an integer, got number"},
        {"enormous serial", [](json& j) { j["serial"] = 1e300; },
         "serial: expected an integer, got number"},
        {"revision not a string", [](json& j) { j["revision"] = json::array(); },
         "revision: expected a string, got array"},
        {"resources not an object", [](json& j) { j["resources"] = json::array(); },
         "resources: expected an object, got array"},
        {"resource not an object", [](json& j) { j["resources"]["agent.web"] = 1; },
         "resources[\"agent.web\"]: expected an object, got number"},
        {"missing specHash", [](json& j) { j["resources"]["agent.web"].erase("specHash"); },
         "resources[\"agent.web\"].specHash: missing field"},
        {"appliedAt wrong type", [](json& j) { j["resources"]["agent.web"]["appliedAt"] = false; },
         "resources[\"agent.web\"].appliedAt: expected a string, got boolean"},
        {"instances not an array",
         [](json& j) { j["resources"]["agent.web"]["instances"] = json::object(); },
         "resources[\"agent.web\"].instances: expected an array, got object"},
        {"instance id wrong type",
         [](json& j) { j["resources"]["agent.web"]["instances"][1]["id"] = 12; },
         "resources[\"agent.web\"].instances[1].id: expected a string, got number"},
        {"instance not an object",
         [](json& j) { j["resources"]["agent.web"]["instances"][0] = "x"; },
         "resources[\"agent.web\"].instances[0]: expected an object, got string"},
        {"instance missing endpoint",
         [](json& j) { j["resources"]["agent.web"]["instances"][0].erase("endpoint"); },
         "resources[\"agent.web\"].instances[0].endpoint: missing field"},
        {"unknown top-level field", [](json& j) { j["lineage"] = "x"; }, "lineage: unknown field"},
        {"unknown resource field", [](json& j) { j["resources"]["agent.web"]["secret"] = "x"; },
         "resources[\"agent.web\"].secret: unknown field"},
        {"empty address", [](json& j) { j["resources"][""] = j["resources"]["agent.web"]; },
         "resources[\"\"]: empty resource address"},
    };
    for (const Row& row : rows) {
      SUBCASE(row.name) {
        json j = ToJson(SampleState());
        row.mutate(j);
        Result<State> r = StateFromJson(j);
        REQUIRE_FALSE(r.ok());
        CHECK(r.status().code() == Code::kInvalid);
        CHECK_MESSAGE(r.status().message().find(row.want) != std::string::npos,
                      r.status().message());
      }
    }
  }

  TEST_CASE("malformed history entry JSON is kInvalid naming the field") {
    struct Row {
      const char* name;
      std::function<void(json&)> mutate;
      const char* want;
    };
    const Row rows[] = {
        {"array", [](json& j) { j = json::array(); }, "top level: expected an object, got array"},
        {"missing serial", [](json& j) { j.erase("serial"); }, "serial: missing field"},
        {"serial too big", [](json& j) { j["serial"] = 1LL << 40; }, "serial: "},
        {"result wrong type", [](json& j) { j["result"] = 1; },
         "result: expected a string, got number"},
        {"changed not an object", [](json& j) { j["changed"] = "x"; },
         "changed: expected an object, got string"},
        {"removed not an array", [](json& j) { j["removed"] = "x"; },
         "removed: expected an array, got string"},
        {"bad spec hash", [](json& j) { j["changed"]["agent.web"]["spec"] = "md5:1"; },
         "changed[\"agent.web\"].spec: not a spec hash"},
        {"unknown field", [](json& j) { j["extra"] = 1; }, "extra: unknown field"},
    };
    for (const Row& row : rows) {
      SUBCASE(row.name) {
        json j = ToJson(SampleHistoryEntry());
        row.mutate(j);
        Result<HistoryEntry> r = HistoryEntryFromJson(j);
        REQUIRE_FALSE(r.ok());
        CHECK(r.status().code() == Code::kInvalid);
        CHECK_MESSAGE(r.status().message().find(row.want) != std::string::npos,
                      r.status().message());
      }
    }
  }
}

}  // namespace
}  // namespace reconcile
