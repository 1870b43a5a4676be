// Hostile input never crashes and never throws: seeded random mutations of
// valid manifests, plans and provider messages must each either decode or
// give errors (SPEC.md "Bad input, always"). Deterministic: a fixed seed per
// input, so a failure reproduces.
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "reconcile/loader.h"
#include "reconcile/plan.h"
#include "reconcile/provider_json.h"
#include "reconcile/saved_plan.h"
#include "reconcile/spec.h"
#include "reconcile/state.h"

namespace reconcile {
namespace {

namespace fs = std::filesystem;

std::string Read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One random edit: flip a byte, delete a run, duplicate a run, or insert a
// YAML/JSON-significant character.
std::string Mutate(std::string s, std::mt19937& rng) {
  static const std::string kSpecial = ":-[]{}&*!|>'\"%@`#,?\n\t \\0123456789";
  if (s.empty()) return std::string(1, kSpecial[rng() % kSpecial.size()]);
  size_t at = rng() % s.size();
  size_t len = 1 + rng() % std::min<size_t>(16, s.size() - at);
  switch (rng() % 4) {
    case 0:
      s[at] = static_cast<char>(rng() % 256);
      break;
    case 1:
      s.erase(at, len);
      break;
    case 2:
      s.insert(at, s.substr(at, len));
      break;
    default:
      s.insert(at, 1, kSpecial[rng() % kSpecial.size()]);
      break;
  }
  return s;
}

std::vector<fs::path> Manifests() {
  std::vector<fs::path> files;
  for (const char* dir : {"examples", "tests/testdata/valid", "tests/testdata/invalid"}) {
    for (const auto& e : fs::recursive_directory_iterator(fs::path(RECONCILE_SOURCE_DIR) / dir)) {
      auto ext = e.path().extension();
      if (e.is_regular_file() && (ext == ".yaml" || ext == ".yml")) files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

TEST_CASE("hostile input: mutated manifests decode or give errors, never crash") {
  std::vector<fs::path> files = Manifests();
  REQUIRE(files.size() > 30);
  int decoded = 0, rejected = 0;
  for (size_t f = 0; f < files.size(); ++f) {
    const std::string original = Read(files[f]);
    std::mt19937 rng(static_cast<unsigned>(f + 1));
    for (int round = 0; round < 300; ++round) {
      std::string text = original;
      for (int edits = 1 + static_cast<int>(rng() % 4); edits > 0; --edits) {
        text = Mutate(text, rng);
      }
      DesiredState state;
      Diagnostics diags;
      CHECK_NOTHROW(DecodeFile("m.yaml", "", text, LoadLimits{}, state, diags));
      for (const Diagnostic& d : diags.items()) {
        CHECK_MESSAGE(d.file == "m.yaml", d.ToString());
      }
      (diags.HasErrors() ? rejected : decoded)++;
    }
  }
  // Both outcomes occur, so the mutations reach past the parser.
  CHECK(decoded > 0);
  CHECK(rejected > 0);
}

TEST_CASE("hostile input: known yaml-cpp 0.7 runaways are stopped") {
  // A stream starting with ',' makes yaml-cpp 0.7 report empty documents
  // forever (jbeder/yaml-cpp#1040); found by the mutation test above.
  struct Row {
    const char* name;
    std::string text;
    int line;
    int column;
  };
  const std::vector<Row> rows = {
      {"lone comma", ",", 1, 1},
      {"comma before a key", ",apiVersion: reconcile.dev/v1alpha1\nkind: Agent\n", 1, 1},
      {"comma after a document", "kind: Agent\n---\n,\n", 3, 1},
  };
  for (const Row& row : rows) {
    SUBCASE(row.name) {
      DesiredState state;
      Diagnostics diags;
      DecodeFile("m.yaml", "", row.text, LoadLimits{}, state, diags);
      REQUIRE(diags.HasErrors());
      bool found = false;
      for (const Diagnostic& d : diags.items()) {
        found |= d.line == row.line && d.column == row.column &&
                 d.message.find("YAML syntax error") != std::string::npos;
      }
      CHECK_MESSAGE(found, diags.items().front().ToString());
    }
  }
  SUBCASE("empty documents are still fine") {
    DesiredState state;
    Diagnostics diags;
    DecodeFile("m.yaml", "", "---\n---\n---\n", LoadLimits{}, state, diags);
    CHECK_FALSE(diags.HasErrors());
  }
}

TEST_CASE(
    "hostile input: mutated JSON (plans, saved plans, state, history, provider messages) never "
    "throws") {
  nlohmann::json plan = {
      {"formatVersion", 1},
      {"revision", "tree-1"},
      {"observedDigest", "sha256:0"},
      {"changes",
       {{{"address", "agent.a"},
         {"name", "a"},
         {"action", "replace"},
         {"target", "local"},
         {"provider", "docker"},
         {"fields",
          {{{"path", "env.X"}, {"forcesReplace", true}, {"before", "1"}, {"after", "2"}}}},
         {"reason", "r"},
         {"desired", {{"image", "i:1"}}},
         {"desiredHash", "sha256:1"},
         {"prior", {{{"id", "c1"}, {"name", "a"}}}},
         {"dependsOn", nlohmann::json::array()}}}}};
  nlohmann::json observe = {{"status", {{"code", "ok"}, {"message", ""}}},
                            {"instances",
                             {{{"id", "c1"},
                               {"name", "a"},
                               {"agent", "a"},
                               {"specHash", "h"},
                               {"revision", "r"},
                               {"image", "i"},
                               {"state", "running"},
                               {"running", true},
                               {"endpoint", "e"}}}}};
  const std::string sha = "sha256:" + std::string(64, 'a');
  nlohmann::json history = {
      {"version", 2},
      {"entries",
       {{{"serial", 1},
         {"revision", "r"},
         {"appliedAt", "t"},
         {"result", "succeeded"},
         {"summary", "s"},
         {"rollbackOf", 0},
         {"changed",
          {{"agent.a",
            {{"spec", sha}, {"image", "i:1"}, {"dependsOn", {"agent.b"}}, {"pack", "00ff"}}}}},
         {"removed", {"agent.c"}}}}}};
  nlohmann::json history_v1 = {{{"serial", 1},
                                {"revision", "r"},
                                {"appliedAt", "t"},
                                {"result", "succeeded"},
                                {"summary", "s"},
                                {"specs", {{"agent.a", {{"image", "i:1"}}}}}}};
  nlohmann::json saved = {
      {"reconcileSavedPlan", 1}, {"source", "/s"}, {"stateDir", "/s/.reconcile"}, {"plan", plan}};
  nlohmann::json pinned = {
      {"version", 2},
      {"serial", 3},
      {"revision", "r"},
      {"resources", nlohmann::json::object()},
      {"pin", {{"revision", "r"}, {"serial", 1}, {"desiredRevision", "d"}, {"pinnedAt", "t"}}}};
  const std::string texts[] = {plan.dump(),       observe.dump(), history.dump(),
                               history_v1.dump(), saved.dump(),   pinned.dump()};
  std::mt19937 rng(7);
  int parsed = 0;
  for (const std::string& original : texts) {
    for (int round = 0; round < 2000; ++round) {
      std::string text = Mutate(Mutate(original, rng), rng);
      nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded()) continue;
      ++parsed;
      CHECK_NOTHROW((void)PlanFromJson(j));
      CHECK_NOTHROW((void)StateFromJson(j));
      CHECK_NOTHROW((void)ObserveResponseFromJson(j));
      CHECK_NOTHROW((void)ApplyChangeResponseFromJson(j));
      CHECK_NOTHROW((void)HistoryFromJson(j));
      CHECK_NOTHROW((void)AgentFromSpec("a", j));
      CHECK_NOTHROW((void)ParseSavedPlan("p.json", text));
      if (auto h = HistoryFromJson(j); h.ok()) {
        for (size_t i = 0; i < h->entries.size(); ++i) CHECK_NOTHROW((void)ResourcesAt(*h, i));
        CHECK_NOTHROW(TrimHistory(*h, 0, 1));
      }
    }
  }
  CHECK(parsed > 100);
}

}  // namespace
}  // namespace reconcile
