// Promotion decisions (reconcile/promotion.h): promoted.yaml written and read
// back, the refusal rules over a fake source environment, and the patches
// that already set an agent's image in the target.
#include "reconcile/promotion.h"

#include <functional>

#include <doctest/doctest.h>

namespace reconcile {
namespace {

const std::string kDigestWeb = "localhost:5000/web@sha256:" + std::string(64, 'a');
const std::string kDigestApi = "localhost:5000/api@sha256:" + std::string(64, 'b');

PromotionAgent Healthy(const std::string& name, const std::string& digest, bool builds) {
  PromotionAgent a;
  a.name = name;
  a.builds = builds;
  a.recorded = true;
  a.image_digest = digest;
  a.health = "healthy";
  a.running = 1;
  a.instances = 1;
  return a;
}

// dev at tree-111, applied in full, web (built) and api (an image) healthy.
PromotionInput Good() {
  PromotionInput in;
  in.from = "dev";
  in.to = "staging";
  in.desired_revision = "tree-111111111111";
  in.state.revision = "tree-111111111111";
  HistoryEntry last;
  last.serial = 3;
  last.revision = "tree-111111111111";
  last.result = "succeeded";
  in.last = last;
  in.agents = {Healthy("api", kDigestApi, false), Healthy("web", kDigestWeb, true)};
  return in;
}

bool Mentions(const PromotionDecision& d, const std::string& part) {
  for (const std::string& line : d.refusals) {
    if (line.find(part) != std::string::npos) return true;
  }
  return false;
}

TEST_CASE("promotion: a healthy source promotes every agent's digest; build: null when it builds") {
  PromotionDecision d = DecidePromotion(Good());
  REQUIRE(d.refusals.empty());
  REQUIRE(d.promoted.size() == 2);
  CHECK(d.promoted[0] == PromotedImage{"api", kDigestApi, false});
  CHECK(d.promoted[1] == PromotedImage{"web", kDigestWeb, true});
  CHECK(d.file == d.promoted);

  const std::string text = RenderPromoted(d.file, "dev", "tree-111111111111");
  CHECK(text.rfind(kPromotedHeader, 0) == 0);
  CHECK(text.find("  image: \"" + kDigestWeb + "\"\n  build: null\n") != std::string::npos);
  auto back = ParsePromoted("envs/staging/promoted.yaml", text);
  REQUIRE_MESSAGE(back.ok(), back.status().message());
  CHECK(*back == d.file);
  // Same input, same bytes.
  CHECK(RenderPromoted(d.file, "dev", "tree-111111111111") == text);
}

TEST_CASE("promotion: --agent promotes only that agent and keeps the others' entries") {
  PromotionInput in = Good();
  in.requested = {"web"};
  const std::string old_web = "localhost:5000/web@sha256:" + std::string(64, 'c');
  const std::string old_db = "localhost:5000/db@sha256:" + std::string(64, 'd');
  in.existing = {{"db", old_db, false}, {"web", old_web, true}};
  PromotionDecision d = DecidePromotion(in);
  REQUIRE(d.refusals.empty());
  REQUIRE(d.promoted.size() == 1);
  CHECK(d.promoted[0].image == kDigestWeb);
  REQUIRE(d.file.size() == 2);
  CHECK(d.file[0] == PromotedImage{"db", old_db, false});
  CHECK(d.file[1] == PromotedImage{"web", kDigestWeb, true});
}

TEST_CASE("promotion refuses, one line per reason, and promotes nothing") {
  struct Row {
    const char* name;
    std::function<void(PromotionInput&)> edit;
    const char* says;
  };
  const std::vector<Row> rows = {
      {"never applied", [](PromotionInput& in) { in.last.reset(); }, "was never applied"},
      {"last pass failed", [](PromotionInput& in) { in.last->result = "failed"; },
       "its last pass (history #3, revision tree-111111111111) failed"},
      {"not at the desired revision",
       [](PromotionInput& in) { in.desired_revision = "tree-222222222222"; },
       "is not at its desired revision"},
      {"content digests differ",
       [](PromotionInput& in) {
         in.state.content_digest = "tree-aaaaaaaaaaaa";
         in.desired_content_digest = "tree-bbbbbbbbbbbb";
       },
       "files are now at tree-bbbbbbbbbbbb"},
      {"an unhealthy agent", [](PromotionInput& in) { in.agents[1].health = "unhealthy"; },
       "agent web in dev is not healthy"},
      {"a stopped agent", [](PromotionInput& in) { in.agents[1].running = 0; },
       "agent web in dev is not running"},
      {"a drifted agent",
       [](PromotionInput& in) {
         in.drift = {{"agent.web", DriftItem::Kind::kStopped, "container web exited"}};
       },
       "agent web in dev drifted (stopped: container web exited)"},
      {"no digest", [](PromotionInput& in) { in.agents[0].image_digest.clear(); },
       "agent api in dev has no registry digest (none recorded)"},
      {"an image id only",
       [](PromotionInput& in) { in.agents[0].image_digest = "sha256:" + std::string(64, 'e'); },
       "its image was never pushed to a registry; push it"},
      {"an unknown --agent", [](PromotionInput& in) { in.requested = {"nope"}; },
       "--agent nope: environment dev has no such agent"},
      {"another patch sets the image",
       [](PromotionInput& in) {
         in.image_patches = {{"web", "envs/staging/web.yaml", 7}};
       },
       "envs/staging/web.yaml:7: another patch of staging sets spec.image of agent web"},
      {"pinned by a rollback",
       [](PromotionInput& in) {
         in.state.pin = Pin{"tree-0", 1, "x", ""};
       },
       "is pinned to revision tree-0"},
  };
  for (const Row& row : rows) {
    SUBCASE(row.name) {
      PromotionInput in = Good();
      row.edit(in);
      PromotionDecision d = DecidePromotion(in);
      CHECK_MESSAGE(Mentions(d, row.says), (d.refusals.empty() ? "none" : d.refusals.front()));
      CHECK(d.promoted.empty());
      CHECK(d.file.empty());
    }
  }
  SUBCASE("a moved revision whose plan has no changes is at its desired revision") {
    PromotionInput in = Good();
    in.desired_revision = "tree-333333333333";
    in.plan_has_changes = false;
    CHECK(DecidePromotion(in).refusals.empty());
  }
  SUBCASE(
      "a content digest that matches wins over a moved revision (another environment's commit)") {
    PromotionInput in = Good();
    in.desired_revision = "0123456789abcdef0123456789abcdef01234567";
    in.state.content_digest = in.desired_content_digest = "tree-aaaaaaaaaaaa";
    CHECK(DecidePromotion(in).refusals.empty());
  }
}

TEST_CASE("promoted.yaml: anything promote does not write is refused with file:line") {
  const std::string file = "envs/prod/promoted.yaml";
  auto bad =
      ParsePromoted(file,
                    "# Written by reconcile promote\n---\napiVersion: reconcile.dev/v1alpha1\n"
                    "kind: Agent\nmetadata: {name: web}\nspec:\n  image: x@sha256:1\n"
                    "  replicas: 3\n");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find(file + ":3: spec.replicas: not a field promote writes") == 0);
  auto target = ParsePromoted(file, "kind: Target\nmetadata: {name: local}\nspec: {}\n");
  REQUIRE_FALSE(target.ok());
  CHECK(target.status().message().find(file + ":1: kind: expected Agent") == 0);
  auto twice = ParsePromoted(file,
                             "kind: Agent\nmetadata: {name: a}\nspec: {image: i}\n---\n"
                             "kind: Agent\nmetadata: {name: a}\nspec: {image: j}\n");
  REQUIRE_FALSE(twice.ok());
  CHECK(twice.status().message().find("agent a is patched twice") != std::string::npos);
  auto empty = ParsePromoted(file, "# Written by reconcile promote\n");
  REQUIRE(empty.ok());
  CHECK(empty->empty());
}

TEST_CASE("environments and the image patches of one are found by their documents") {
  const std::vector<TreeFile> files = {
      {"base/web.yaml", "kind: Agent\nmetadata: {name: web}\nspec: {image: nginx:1}\n", 0},
      {"envs/dev/env.yaml",
       "kind: Environment\nmetadata: {name: dev}\nspec: {bases: [../../base]}\n", 0},
      {"envs/staging/environment.yaml",
       "apiVersion: reconcile.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: staging\n", 0},
      {"envs/staging/patches.yaml",
       "kind: Agent\nmetadata: {name: api}\nspec:\n  replicas: 2\n---\n"
       "kind: Agent\nmetadata: {name: web}\nspec:\n  env: {A: b}\n  image: nginx:2\n",
       0},
      {"envs/staging/promoted.yaml",
       "kind: Agent\nmetadata: {name: api}\nspec: {image: \"x@sha256:1\"}\n", 0},
      {"envs/staging/eu/env.yaml", "kind: Environment\nmetadata: {name: staging-eu}\n", 0},
      {"envs/staging/eu/web.yaml", "kind: Agent\nmetadata: {name: web}\nspec: {image: x:1}\n", 0},
  };
  std::vector<EnvironmentFolder> envs = ListEnvironmentFolders(files);
  REQUIRE(envs.size() == 3);
  CHECK(envs[0].name == "dev");
  CHECK(envs[0].folder == "envs/dev");
  CHECK(envs[1].name == "staging");
  CHECK(envs[1].folder == "envs/staging");
  CHECK(envs[2].folder == "envs/staging/eu");
  std::vector<ImagePatch> patches = FindImagePatches(files, "envs/staging");
  REQUIRE(patches.size() == 1);  // not promoted.yaml, not the sub-environment's
  CHECK(patches[0].agent == "web");
  CHECK(patches[0].file == "envs/staging/patches.yaml");
  CHECK(patches[0].line == 10);
}

}  // namespace
}  // namespace reconcile
