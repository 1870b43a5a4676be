// Tests for Environment overlays (loader.h LoadPath, LoadEnvironment,
// FindEnvironments): decoding of kind Environment and of windows, the merge
// of patches into base documents (maps by key, lists replaced, null
// removes), environment-wide labels and env, and every error with its
// file:line:column and the base document it patches.
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "fakes/temp_dir.h"
#include "fixtures/git_repo.h"
#include "reconcile/loader.h"
#include "reconcile/source.h"
#include "reconcile/spec.h"

namespace reconcile {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

constexpr const char* kBase =
    "apiVersion: reconcile.dev/v1alpha1\n"                // 1
    "kind: Target\n"                                      // 2
    "metadata: {name: local}\n"                           // 3
    "spec: {provider: docker}\n"                          // 4
    "---\n"                                               // 5
    "apiVersion: reconcile.dev/v1alpha1\n"                // 6
    "kind: Agent\n"                                       // 7
    "metadata:\n"                                         // 8
    "  name: web\n"                                       // 9
    "  labels: {app: web, tier: base}\n"                  // 10
    "spec:\n"                                             // 11
    "  image: nginx:1.25\n"                               // 12
    "  target: local\n"                                   // 13
    "  port: 80\n"                                        // 14
    "  replicas: 1\n"                                     // 15
    "  env: {LOG_LEVEL: debug, MODE: base}\n"             // 16
    "  command: [nginx, -g, daemon off;]\n"               // 17
    "  hostname: web-host\n"                              // 18
    "---\n"                                               // 19
    "apiVersion: reconcile.dev/v1alpha1\n"                // 20
    "kind: Agent\n"                                       // 21
    "metadata: {name: api}\n"                             // 22
    "spec: {image: api:1, target: local, port: 8080}\n";  // 23

std::string EnvDoc(const std::string& name, const std::string& spec_extra = "") {
  return "apiVersion: reconcile.dev/v1alpha1\nkind: Environment\nmetadata: {name: " + name +
         "}\nspec:\n  bases: [../../base]\n" + spec_extra;
}

std::string All(const Diagnostics& diags) {
  std::string s;
  for (const auto& d : diags.items()) s += d.ToString() + "\n";
  return s;
}

// A tree with base/ and envs/staging/ holding `env` (environment.yaml) and
// `patch` (patch.yaml, when not empty).
struct Tree {
  TempDir dir{"reconcile-env"};
  Tree(const std::string& env, const std::string& patch) {
    dir.Write("base/all.yaml", kBase);
    dir.Write("envs/staging/environment.yaml", env);
    if (!patch.empty()) dir.Write("envs/staging/patch.yaml", patch);
  }
  LoadResult Load() const { return LoadPath(dir.path(), "envs/staging"); }
};

TEST_CASE("environment: patches merge into the base documents") {
  Tree t(EnvDoc("staging",
                "  labels: {tier: staging, team: core}\n"
                "  env: {LOG_LEVEL: info, REGION: eu}\n"
                "  windows:\n"
                "    - {kind: allow, schedule: \"0 8 * * 1-5\", duration: 10h, timeZone: "
                "Europe/Berlin}\n"
                "    - {kind: deny, schedule: \"0 0 24 12 *\", duration: 24h}\n"
                "  healOutsideWindows: true\n"
                "  approval: required\n"),
         "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: web}\n"
         "spec:\n  replicas: 3\n  env: {MODE: staging}\n  command: [nginx]\n"
         "  hostname: null\n");
  LoadResult r = t.Load();
  INFO(All(r.diagnostics));
  REQUIRE_FALSE(r.diagnostics.HasErrors());
  REQUIRE(r.state.environment.has_value());
  const Environment& e = *r.state.environment;
  CHECK(e.name == "staging");
  CHECK(e.folder == "envs/staging");
  CHECK(e.bases == std::vector<std::string>{"base"});
  CHECK(e.heal_outside_windows);
  CHECK(e.approval == ApprovalMode::kRequired);
  REQUIRE(e.windows.size() == 2);
  CHECK(e.windows[0].kind == DeployWindow::Kind::kAllow);
  CHECK(e.windows[0].schedule == "0 8 * * 1-5");
  CHECK(e.windows[0].duration_ms == 10 * 3600 * 1000);
  CHECK(e.windows[0].time_zone == "Europe/Berlin");
  CHECK(e.windows[1].kind == DeployWindow::Kind::kDeny);
  CHECK(e.windows[1].time_zone == "UTC");

  const Agent* web = r.state.FindAgent("web");
  REQUIRE(web != nullptr);
  CHECK(web->replicas == 3);                                 // scalar replaced
  CHECK(web->image == "nginx:1.25");                         // kept
  CHECK(web->env.at("MODE") == "staging");                   // map merged by key
  CHECK(web->env.at("LOG_LEVEL") == "debug");                // own value wins over spec.env
  CHECK(web->env.at("REGION") == "eu");                      // environment-wide env
  CHECK(web->command == std::vector<std::string>{"nginx"});  // list replaced whole
  CHECK(web->hostname.empty());                              // null removes
  CHECK(web->labels.at("tier") == "base");                   // own label wins
  CHECK(web->labels.at("team") == "core");                   // environment label
  CHECK(web->location.file == "base/all.yaml");
  const Agent* api = r.state.FindAgent("api");
  REQUIRE(api != nullptr);
  CHECK(api->replicas == 1);
  CHECK(api->env.at("LOG_LEVEL") == "info");
  CHECK(api->labels.at("tier") == "staging");
  REQUIRE(r.state.targets.size() == 1);
  CHECK(r.state.targets[0].environment == "staging");
  CHECK(r.state.targets[0].labels.at("team") == "core");
  CHECK(r.state.revision.rfind("tree-", 0) == 0);

  // The revision covers the bases: changing a base file changes it.
  std::string before = r.state.revision;
  t.dir.Write("base/all.yaml", std::string(kBase) + "# a comment\n");
  CHECK(t.Load().state.revision != before);
}

TEST_CASE("environment: a plain folder loads as before; DecodeOne returns the Environment") {
  TempDir dir("reconcile-env");
  dir.Write("base/all.yaml", kBase);
  LoadResult plain = LoadPath(dir.path(), "base");
  INFO(All(plain.diagnostics));
  CHECK_FALSE(plain.diagnostics.HasErrors());
  CHECK_FALSE(plain.state.environment.has_value());
  CHECK(plain.state.revision == LoadTree(dir.path() / "base").state.revision);
  CHECK(plain.state.agents[0].location.file == "all.yaml");  // relative to the path folder
  CHECK(plain.state.targets[0].environment.empty());

  DecodedFile one = DecodeOne({"envs/prod/env.yaml", EnvDoc("prod"), 0});
  INFO(All(one.diagnostics));
  REQUIRE(one.state.environment.has_value());
  CHECK(one.state.environment->name == "prod");
  CHECK(one.state.environment->folder == "envs/prod");
  CHECK(one.state.environment->bases == std::vector<std::string>{"base"});
}

TEST_CASE("environment: '--' in an Agent name is refused, also in a plain tree") {
  TempDir dir("reconcile-env");
  dir.Write("base/all.yaml",
            "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: we--b}\n"
            "spec: {image: web:1, target: local}\n");
  LoadResult r = LoadPath(dir.path(), "base");
  CHECK(All(r.diagnostics).find("all.yaml:3:18: error: metadata.name: ") != std::string::npos);
  CHECK(All(r.diagnostics)
            .find("'--' is reserved: environment-scoped names are "
                  "<environment>--<name>") != std::string::npos);
}

TEST_CASE("environment: FindEnvironments lists every Environment; duplicates are errors") {
  std::vector<TreeFile> files = {
      {"base/all.yaml", kBase, 0},
      {"envs/dev/env.yaml", EnvDoc("dev"), 0},
      {"envs/prod/env.yaml", EnvDoc("prod"), 0},
      {"envs/prod2/env.yaml", EnvDoc("prod"), 0},
  };
  Diagnostics diags;
  std::vector<EnvironmentRef> found = FindEnvironments(files, diags);
  REQUIRE(found.size() == 2);
  CHECK(found[0].name == "dev");
  CHECK(found[0].folder == "envs/dev");
  CHECK(found[0].location.file == "envs/dev/env.yaml");
  CHECK(found[1].name == "prod");
  CHECK(All(diags) ==
        "envs/prod2/env.yaml:3:18: error: metadata.name: duplicate Environment 'prod' (also "
        "declared at envs/prod/env.yaml:1:1)\n");
}

TEST_CASE("environment: agent windows are decoded but are not part of the spec") {
  const std::string agent =
      "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: w}\n"
      "spec:\n  image: x\n  target: t\n  port: 80\n";
  DecodedFile without = DecodeOne({"a.yaml", agent, 0});
  DecodedFile with = DecodeOne(
      {"a.yaml", agent + "  windows: [{kind: deny, schedule: '0 0 * * 0', duration: 1h}]\n", 0});
  INFO(All(with.diagnostics));
  REQUIRE(with.state.agents.size() == 1);
  REQUIRE(with.state.agents[0].windows.size() == 1);
  CHECK(with.state.agents[0].windows[0].kind == DeployWindow::Kind::kDeny);
  CHECK(with.state.agents[0].windows[0].duration_ms == 3600 * 1000);
  CHECK(with.state.agents[0].windows[0].location.line == 8);
  CHECK(SpecHash(NormalizedSpec(with.state.agents[0], "x")) ==
        SpecHash(NormalizedSpec(without.state.agents[0], "x")));
}

TEST_CASE("environment: a build context in a base stays relative to the base's folder") {
  TempDir dir("reconcile-env");
  dir.Write("base/app/Dockerfile", "FROM scratch\n");
  dir.Write("base/app.yaml",
            "apiVersion: reconcile.dev/v1alpha1\nkind: Registry\nmetadata: {name: r}\n"
            "spec: {url: localhost:5000, repository: app}\n---\n"
            "apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: t}\n"
            "spec: {provider: docker}\n---\n"
            "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: app}\n"
            "spec: {build: {context: app}, registry: r, target: t, port: 80}\n");
  dir.Write("envs/dev/env.yaml", EnvDoc("dev"));
  dir.Write("envs/dev/p.yaml",
            "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: app}\n"
            "spec: {replicas: 2}\n");
  LoadResult r = LoadPath(dir.path(), "envs/dev");
  INFO(All(r.diagnostics));
  REQUIRE_FALSE(r.diagnostics.HasErrors());
  REQUIRE(r.state.agents.size() == 1);
  CHECK(r.state.agents[0].manifest_dir == "base");
  CHECK(r.state.agents[0].build->context == "app");

  // A context written by the patch is relative to the patch's folder.
  dir.Write("envs/dev/p.yaml",
            "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: app}\n"
            "spec: {build: {context: ../../base/app}}\n");
  r = LoadPath(dir.path(), "envs/dev");
  INFO(All(r.diagnostics));
  REQUIRE_FALSE(r.diagnostics.HasErrors());
  CHECK(r.state.agents[0].manifest_dir == "envs/dev");
}

TEST_CASE("environment: a sub-folder holding its own Environment is not a patch") {
  TempDir dir("reconcile-env");
  dir.Write("base/all.yaml", kBase);
  dir.Write("envs/staging/env.yaml", EnvDoc("staging"));
  dir.Write("envs/staging/eu/env.yaml",
            "apiVersion: reconcile.dev/v1alpha1\nkind: Environment\nmetadata: {name: eu}\n"
            "spec: {bases: [../../../base]}\n---\n"
            "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: web}\n"
            "spec: {replicas: 9}\n");
  dir.Write("envs/staging/more/p.yaml",
            "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: web}\n"
            "spec: {replicas: 2}\n");
  LoadResult r = LoadPath(dir.path(), "envs/staging");
  INFO(All(r.diagnostics));
  REQUIRE_FALSE(r.diagnostics.HasErrors());
  CHECK(r.state.FindAgent("web")->replicas == 2);
  LoadResult eu = LoadPath(dir.path(), "envs/staging/eu");
  INFO(All(eu.diagnostics));
  REQUIRE_FALSE(eu.diagnostics.HasErrors());
  CHECK(eu.state.FindAgent("web")->replicas == 9);
  CHECK(eu.state.environment->name == "eu");
}

TEST_CASE("environment: a patch naming no base resource lists ten names near it") {
  TempDir dir{"reconcile-env-many"};
  std::string base =
      "apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: t}\n"
      "spec: {provider: docker}\n";
  for (int i = 0; i < 40; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "a%02d", i);
    base += std::string("---\napiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: ") +
            name + "}\nspec: {image: nginx:1.27, target: t, port: 80}\n";
  }
  dir.Write("base/all.yaml", base);
  dir.Write("envs/staging/environment.yaml", EnvDoc("staging"));
  dir.Write("envs/staging/patch.yaml",
            "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: a20x}\n"
            "spec: {replicas: 2}\n");
  LoadResult r = LoadPath(dir.path(), "envs/staging");
  CHECK(All(r.diagnostics)
            .find("they hold Agent a16, a17, a18, a19, a20, a21, a22, a23, a24, a25 and 30 more") !=
        std::string::npos);
  dir.Write("envs/staging/patch.yaml",
            "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: a99}\n"
            "spec: {replicas: 2}\n");
  CHECK(All(LoadPath(dir.path(), "envs/staging").diagnostics)
            .find("they hold Agent a30, a31, a32, a33, a34, a35, a36, a37, a38, a39 and 30 more") !=
        std::string::npos);
}

struct ErrorCase {
  const char* name;
  std::string env;
  std::string patch;
  std::string expected;  // one diagnostic line (a substring of the output)
};

TEST_CASE("environment: errors name the file, line, column and the base document") {
  const std::string agent_patch =
      "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: web}\n";
  const std::vector<ErrorCase> cases = {
      {"unknown field in a patch", EnvDoc("staging"), agent_patch + "spec:\n  replicaz: 2\n",
       "envs/staging/patch.yaml:5:3: error: spec.replicaz: unknown field 'replicaz' (did you "
       "mean 'replicas'?) (patching Agent web at base/all.yaml:6:1)"},
      {"bad value in a patch", EnvDoc("staging"), agent_patch + "spec:\n  port: 70000\n",
       "envs/staging/patch.yaml:5:9: error: spec.port: must be between 1 and 65535, got 70000 "
       "(patching Agent web at base/all.yaml:6:1)"},
      {"a patch naming no base resource", EnvDoc("staging"),
       "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: webb}\nspec: {}\n",
       "envs/staging/patch.yaml:3:18: error: metadata.name: Agent 'webb' is not in the bases "
       "(base): a patch changes a resource of the bases; they hold Agent api, web"},
      {"a patch of another kind", EnvDoc("staging"),
       "apiVersion: reconcile.dev/v1alpha1\nkind: Secret\nmetadata: {name: x}\nspec: {}\n",
       "envs/staging/patch.yaml:2:7: error: kind: a patch is of kind Agent, Registry or Target, "
       "got 'Secret'"},
      {"a patch without a name", EnvDoc("staging"),
       "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {}\nspec: {}\n",
       "envs/staging/patch.yaml:3:11: error: metadata.name: a patch needs metadata.name"},
      {"a base outside the tree",
       "apiVersion: reconcile.dev/v1alpha1\nkind: Environment\nmetadata: {name: staging}\n"
       "spec:\n  bases: [../../../elsewhere]\n",
       "",
       "envs/staging/environment.yaml:5:11: error: spec.bases[0]: base folder "
       "'../../../elsewhere' leads outside the tree"},
      {"a missing base",
       "apiVersion: reconcile.dev/v1alpha1\nkind: Environment\nmetadata: {name: staging}\n"
       "spec:\n  bases: [../../nothere]\n",
       "",
       "envs/staging/environment.yaml:5:11: error: spec.bases[0]: base folder 'nothere' "
       "does not exist"},
      {"a base holding the environment",
       "apiVersion: reconcile.dev/v1alpha1\nkind: Environment\nmetadata: {name: staging}\n"
       "spec:\n  bases: [..]\n",
       "",
       "envs/staging/environment.yaml:5:11: error: spec.bases[0]: base folder 'envs' holds "
       "the Environment's own folder 'envs/staging'"},
      {"a base that is the environment",
       "apiVersion: reconcile.dev/v1alpha1\nkind: Environment\nmetadata: {name: staging}\n"
       "spec:\n  bases: [.]\n",
       "", "error: spec.bases[0]: base folder 'envs/staging' holds the Environment's own folder"},
      {"no bases",
       "apiVersion: reconcile.dev/v1alpha1\nkind: Environment\nmetadata: {name: staging}\n"
       "spec: {labels: {a: b}}\n",
       "", "envs/staging/environment.yaml:4:7: error: spec.bases: required field is missing"},
      {"an empty bases list",
       "apiVersion: reconcile.dev/v1alpha1\nkind: Environment\nmetadata: {name: staging}\n"
       "spec: {bases: []}\n",
       "", "envs/staging/environment.yaml:4:15: error: spec.bases: must name at least one base"},
      {"an unknown Environment field", EnvDoc("staging", "  basis: [x]\n"), "",
       "envs/staging/environment.yaml:6:3: error: spec.basis: unknown field 'basis' (did you "
       "mean 'bases'?)"},
      {"'--' in an Environment name", EnvDoc("stag--ing"), "",
       "envs/staging/environment.yaml:3:18: error: metadata.name: invalid name 'stag--ing': '--' "
       "is reserved: environment-scoped names are <environment>--<name>"},
      {"a patch of an Agent the bases do not have", EnvDoc("staging"),
       "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: we--b}\nspec: {}\n",
       "envs/staging/patch.yaml:3:18: error: metadata.name: Agent 'we--b' is not in the bases"},
      {"a bad window kind",
       EnvDoc("staging",
              "  windows: [{kind: maybe, schedule: x, "
              "duration: 1h}]\n"),
       "",
       "envs/staging/environment.yaml:6:20: error: spec.windows[0].kind: invalid value "
       "'maybe': must be allow or deny"},
      {"a window without duration", EnvDoc("staging", "  windows: [{kind: allow, schedule: x}]\n"),
       "",
       "envs/staging/environment.yaml:6:13: error: spec.windows[0].duration: required field is "
       "missing"},
      {"a zero window duration",
       EnvDoc("staging", "  windows: [{kind: allow, schedule: x, duration: 0s}]\n"), "",
       "error: spec.windows[0].duration: invalid duration '0s': must be a positive"},
      {"an empty time zone",
       EnvDoc("staging", "  windows: [{kind: allow, schedule: x, duration: 1h, timeZone: ''}]\n"),
       "", "error: spec.windows[0].timeZone: invalid value '': must be an IANA time zone"},
      {"healOutsideWindows not a boolean", EnvDoc("staging", "  healOutsideWindows: yes\n"), "",
       "envs/staging/environment.yaml:6:23: error: spec.healOutsideWindows: must be a boolean"},
      {"an unknown approval mode", EnvDoc("staging", "  approval: always\n"), "",
       "envs/staging/environment.yaml:6:13: error: spec.approval: invalid value 'always': must "
       "be auto or required"},
      {"null removes a required field", EnvDoc("staging"), agent_patch + "spec:\n  port: null\n",
       "base/all.yaml:12:3: error: spec.port: required field is missing"},
      {"an agent patch pointing at a missing target", EnvDoc("staging"),
       agent_patch + "spec:\n  target: nowhere\n",
       "envs/staging/patch.yaml:5:11: error: spec.target: Target 'nowhere' is not declared in "
       "the tree"},
      {"a second Environment in the folder", EnvDoc("staging") + "---\n" + EnvDoc("other"), "",
       "error: metadata.name: a second Environment ('other')"},
  };
  for (const ErrorCase& c : cases) {
    CAPTURE(c.name);
    Tree t(c.env, c.patch);
    LoadResult r = t.Load();
    std::string all = All(r.diagnostics);
    CAPTURE(all);
    CHECK(r.diagnostics.HasErrors());
    CHECK(all.find(c.expected) != std::string::npos);
  }
}

TEST_CASE("environment: two patch files setting one field is an error naming both") {
  Tree t(EnvDoc("staging"),
         "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: web}\n"
         "spec:\n  env: {A: '1'}\n  replicas: 2\n");
  t.dir.Write("envs/staging/zz.yaml",
              "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: web}\n"
              "spec:\n  env: {B: '2'}\n  replicas: 3\n");
  LoadResult r = t.Load();
  std::string all = All(r.diagnostics);
  CAPTURE(all);
  CHECK(all ==
        "envs/staging/zz.yaml:6:3: error: spec.replicas: spec.replicas of Agent web is set by two "
        "patches: envs/staging/zz.yaml:6:3 and envs/staging/patch.yaml:6:3 (spec.replicas); set "
        "each field in one patch\n");

  // A field and a field inside it clash too.
  t.dir.Write("envs/staging/zz.yaml",
              "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: web}\n"
              "spec:\n  env: null\n");
  all = All(t.Load().diagnostics);
  CAPTURE(all);
  CHECK(all.find("envs/staging/zz.yaml:5:3: error: spec.env: spec.env of Agent web is set by two "
                 "patches: envs/staging/zz.yaml:5:3 and envs/staging/patch.yaml:5:9 "
                 "(spec.env.A)") != std::string::npos);
}

Snapshot LoadSource(const SourceOptions& o) {
  auto source = OpenSource(o);
  REQUIRE_MESSAGE(source.ok(), source.status().ToString());
  auto rev = (*source)->Resolve({});
  REQUIRE_MESSAGE(rev.ok(), rev.status().ToString());
  auto snap = (*source)->Load(*rev, {});
  REQUIRE_MESSAGE(snap.ok(), snap.status().ToString());
  return std::move(snap).value();
}

const std::string kPatch =
    "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: web}\n"
    "spec: {replicas: 4}\n";

TEST_CASE("environment: the folder source loads an environment; content digests") {
  Tree t(EnvDoc("staging"), kPatch);
  SourceOptions o;
  o.location = t.dir.path().string();
  o.path = "envs/staging";
  Snapshot snap = LoadSource(o);
  INFO(All(snap.loaded.diagnostics));
  REQUIRE_FALSE(snap.loaded.diagnostics.HasErrors());
  CHECK(snap.loaded.state.environment->name == "staging");
  CHECK(snap.loaded.state.FindAgent("web")->replicas == 4);
  CHECK(snap.loaded.state.targets[0].environment == "staging");
  CHECK(snap.root == t.dir.path());
  CHECK(snap.stats.files == 3);
  CHECK(snap.content_digest == snap.revision);
  CHECK(snap.content_digest.rfind("tree-", 0) == 0);
  // The digest covers the bases.
  t.dir.Write("base/extra.yaml",
              "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: extra}\n"
              "spec: {image: x, target: local, port: 1}\n");
  Snapshot again = LoadSource(o);
  CHECK(again.content_digest != snap.content_digest);
  CHECK(again.loaded.state.FindAgent("extra") != nullptr);

  // A plain tree has a content digest too: its revision.
  o.path = "base";
  Snapshot plain = LoadSource(o);
  CHECK_FALSE(plain.loaded.state.environment.has_value());
  CHECK(plain.content_digest == plain.revision);
  CHECK(plain.loaded.state.agents[0].location.file == "all.yaml");
}

TEST_CASE("environment: the Git source loads an environment at a commit") {
  TempDir tmp("reconcile-env-git");
  testing::GitRepo repo(tmp.path() / "repo");
  repo.Write("base/all.yaml", kBase);
  repo.Write("envs/staging/environment.yaml", EnvDoc("staging", "  env: {REGION: eu}\n"));
  repo.Write("envs/staging/patch.yaml", kPatch);
  repo.Write("envs/prod/environment.yaml", EnvDoc("prod"));
  std::string first = repo.Commit("first", "2026-01-02T03:04:05Z");
  SourceOptions o;
  o.location = repo.url();
  o.path = "envs/staging";
  o.cache_dir = tmp.path() / "cache";
  o.ref = first;
  Snapshot snap = LoadSource(o);
  INFO(All(snap.loaded.diagnostics));
  REQUIRE_FALSE(snap.loaded.diagnostics.HasErrors());
  CHECK(snap.revision == first);
  CHECK(snap.loaded.state.revision == first);
  REQUIRE(snap.loaded.state.environment.has_value());
  CHECK(snap.loaded.state.environment->name == "staging");
  const Agent* web = snap.loaded.state.FindAgent("web");
  REQUIRE(web != nullptr);
  CHECK(web->replicas == 4);
  CHECK(web->env.at("REGION") == "eu");
  CHECK(web->location.file == "base/all.yaml");
  CHECK(snap.loaded.state.targets[0].environment == "staging");
  CHECK(snap.content_digest.rfind("tree-", 0) == 0);

  // The same files on disk give the same digest as from Git.
  TempDir disk("reconcile-env-disk");
  disk.Write("base/all.yaml", kBase);
  disk.Write("envs/staging/environment.yaml", EnvDoc("staging", "  env: {REGION: eu}\n"));
  disk.Write("envs/staging/patch.yaml", kPatch);
  SourceOptions d;
  d.location = disk.path().string();
  d.path = "envs/staging";
  CHECK(LoadSource(d).content_digest == snap.content_digest);

  // A commit that changes only prod keeps staging's digest; one that
  // changes the base changes it. Errors name files from the repository root.
  repo.Write("envs/prod/p.yaml", kPatch);
  o.ref = repo.Commit("prod only", "2026-01-03T00:00:00Z");
  CHECK(LoadSource(o).content_digest == snap.content_digest);
  repo.Write("envs/staging/patch.yaml",
             "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: web}\n"
             "spec: {replicaz: 4}\n");
  o.ref = repo.Commit("broken", "2026-01-04T00:00:00Z");
  Snapshot broken = LoadSource(o);
  CHECK(All(broken.loaded.diagnostics)
            .find("envs/staging/patch.yaml:4:8: error: spec.replicaz: unknown field 'replicaz'") !=
        std::string::npos);
  CHECK(broken.content_digest != snap.content_digest);

  // The plain base through Git: digest filled, decode cache kept.
  o.path = "base";
  o.ref = first;
  auto source = OpenSource(o);
  REQUIRE(source.ok());
  auto s1 = (*source)->Load(first, {});
  REQUIRE(s1.ok());
  CHECK(s1->content_digest.rfind("tree-", 0) == 0);
  CHECK(s1->stats.decoded == 1);
  auto s2 = (*source)->Load(first, {});
  REQUIRE(s2.ok());
  CHECK(s2->stats.decoded == 0);
  CHECK(s2->content_digest == s1->content_digest);
}

}  // namespace
}  // namespace reconcile
