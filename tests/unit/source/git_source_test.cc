// Tests for the Git source (source.h, git_source.cc) against file:// repos
// made with the git CLI: ref kinds, force-pushes, missing ref/path, the
// loader's limits through Git, symlinks, submodules, the incremental cache,
// exports for build contexts and stop requests.
#include "reconcile/source.h"

#include <sys/stat.h>

#include <filesystem>
#include <stop_token>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "fakes/temp_dir.h"
#include "fixtures/git_repo.h"
#include "unit/engine/test_world.h"

namespace reconcile {
namespace {

namespace fs = std::filesystem;
using testing::GitRepo;
using testing::TempDir;

constexpr const char* kTarget =
    "apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: t}\n"
    "spec: {provider: docker}\n";

std::string AgentDoc(const std::string& name, const std::string& image = "nginx:1.27") {
  return "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: " + name +
         "}\nspec:\n  image: " + image + "\n  target: t\n  port: 80\n";
}

using testing::All;

struct Fixture {
  TempDir tmp{"reconcile-git"};
  GitRepo repo{tmp.path() / "repo"};
  fs::path cache = tmp.path() / "cache";

  std::unique_ptr<Source> Open(const std::string& ref = "", const std::string& path = "",
                               LoadLimits limits = {}) {
    SourceOptions o;
    o.location = repo.url();
    o.ref = ref;
    o.path = path;
    o.cache_dir = cache;
    o.limits = limits;
    auto source = OpenSource(o);
    REQUIRE_MESSAGE(source.ok(), source.status().ToString());
    return std::move(source).value();
  }
};

Snapshot MustLoad(Source& source) {
  auto rev = source.Resolve({});
  REQUIRE_MESSAGE(rev.ok(), rev.status().ToString());
  auto snap = source.Load(*rev, {});
  REQUIRE_MESSAGE(snap.ok(), snap.status().ToString());
  return std::move(snap).value();
}

TEST_CASE("git source: IsGitUrl and OpenSource checks") {
  for (const char* url : {"https://h/r.git", "http://127.0.0.1/r", "ssh://git@h:2222/r",
                          "git@github.com:org/repo.git", "git://h/r", "file:///tmp/r"}) {
    CHECK_MESSAGE(IsGitUrl(url), url);
  }
  for (const char* folder : {"deploy", "./a:b", "/x/y", "C:/x", "a@b", "dir/x@y:z"}) {
    CHECK_MESSAGE(!IsGitUrl(folder), folder);
  }
  struct Row {
    const char* name;
    SourceOptions options;
    Code code;
    const char* message;
  };
  const std::vector<Row> rows = {
      {"plain http to a remote host",
       {"http://example.com/r.git", "", "", "/tmp/c", {}, {}, {}},
       Code::kInvalid,
       "only allowed to loopback"},
      {"password in the URL",
       {"https://u:s3cret@h/r.git", "", "", "/tmp/c", {}, {}, {}},
       Code::kInvalid,
       "password"},
      {"ssh without known_hosts",
       {"ssh://git@h/r.git", "", "", "/tmp/c", {}, {}, {}},
       Code::kInvalid,
       "known_hosts"},
      {"no cache folder",
       {"git://127.0.0.1/r.git", "", "", "", {}, {}, {}},
       Code::kInvalid,
       "cache"},
  };
  for (const auto& row : rows) {
    SUBCASE(row.name) {
      auto s = OpenSource(row.options);
      REQUIRE(!s.ok());
      CHECK(s.status().code() == row.code);
      CHECK_MESSAGE(s.status().message().find(row.message) != std::string::npos,
                    s.status().message());
      CHECK(s.status().message().find("s3cret") == std::string::npos);
    }
  }
  SUBCASE("plain http to loopback is fine") {
    CHECK(OpenSource({"http://127.0.0.1:1/r.git", "", "", "/tmp/c", {}, {}, {}}).ok());
  }
}

TEST_CASE("git source: refs, content, commit time and Describe") {
  Fixture f;
  f.repo.Write("agents/a.yaml", AgentDoc("a"));
  f.repo.Write("target.yaml", kTarget);
  std::string first = f.repo.Commit("first", "2026-01-02T03:04:05Z");
  f.repo.Git("tag v1");
  f.repo.Git("tag -a v1-annotated -m annotated");
  f.repo.Git("branch stable");
  f.repo.Write("agents/b.yaml", AgentDoc("b"));
  std::string second = f.repo.Commit("second", "2026-01-03T00:00:00Z");

  struct Row {
    const char* name;  // subcase names must not change between runs
    std::string ref;
    std::string want;
  };
  for (const Row& row : std::vector<Row>{{"empty ref: HEAD", "", second},
                                         {"branch", "main", second},
                                         {"full ref name", "refs/heads/main", second},
                                         {"older branch", "stable", first},
                                         {"lightweight tag", "v1", first},
                                         {"annotated tag", "v1-annotated", first},
                                         {"full tag name", "refs/tags/v1-annotated", first},
                                         {"commit id", first, first}}) {
    SUBCASE(row.name) {
      auto source = f.Open(row.ref);
      auto rev = source->Resolve({});
      REQUIRE_MESSAGE(rev.ok(), rev.status().ToString());
      CHECK(*rev == row.want);
      auto snap = source->Load(*rev, {});
      REQUIRE_MESSAGE(snap.ok(), snap.status().ToString());
      CHECK(snap->revision == row.want);
      CHECK(snap->loaded.state.revision == row.want);
      CHECK_MESSAGE(!snap->loaded.diagnostics.HasErrors(), All(snap->loaded.diagnostics));
      CHECK(snap->loaded.state.agents.size() == (row.want == second ? 2u : 1u));
      CHECK(snap->loaded.state.agents[0].location.file == "agents/a.yaml");
      CHECK(snap->loaded.state.agents[0].manifest_dir == "agents");
      CHECK(snap->commit_time ==
            (row.want == second ? "2026-01-03T00:00:00Z" : "2026-01-02T03:04:05Z"));
      CHECK(snap->root.empty());  // no build: no export
    }
  }
  SUBCASE("loading an annotated tag's id gives its commit") {
    std::string tag = f.repo.RevParse("v1-annotated");
    REQUIRE(tag != first);
    auto snap = f.Open()->Load(tag, {});
    REQUIRE_MESSAGE(snap.ok(), snap.status().ToString());
    CHECK(snap->revision == first);
  }
  SUBCASE("Describe names URL, ref and path") {
    CHECK(f.Open("main", "agents")->Describe() == f.repo.url() + "@main:agents/");
    CHECK(f.Open()->Describe() == f.repo.url() + "@HEAD");
  }
  SUBCASE("the mirror is private") {
    MustLoad(*f.Open());
    struct stat st {};
    REQUIRE(::stat(f.cache.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
  }
}

TEST_CASE("git source: Files lists a folder of a commit, fetching it when missing") {
  Fixture f;
  f.repo.Write("envs/dev/environment.yaml", "kind: Environment\n");
  f.repo.Write("envs/dev/sub/p.yml", "kind: [unclosed\n");
  f.repo.Write("envs/dev/readme.md", "not a manifest");
  f.repo.Write("envs/.hidden/x.yaml", kTarget);
  f.repo.Write("base/a.yaml", AgentDoc("a"));
  std::string first = f.repo.Commit("first", "2026-01-02T03:04:05Z");
  f.repo.Write("envs/prod/environment.yaml", "kind: Environment\n");
  std::string second = f.repo.Commit("second", "2026-01-03T00:00:00Z");

  auto source = f.Open();  // nothing fetched yet: Files fetches
  auto envs = source->Files(first, "envs", {});
  REQUIRE_MESSAGE(envs.ok(), envs.status().ToString());
  std::vector<std::string> rels;
  for (const TreeFile& t : *envs) rels.push_back(t.rel);
  CHECK(rels == std::vector<std::string>{"envs/dev/environment.yaml", "envs/dev/sub/p.yml"});
  CHECK(envs->at(1).content == "kind: [unclosed\n");
  auto later = source->Files(second, "envs/", {});
  REQUIRE(later.ok());
  CHECK(later->size() == 3);
  auto all = source->Files(second, "", {});
  REQUIRE(all.ok());
  CHECK(all->size() == 4);
  auto inner = f.Open("", "envs")->Files(second, "prod", {});
  REQUIRE_MESSAGE(inner.ok(), inner.status().ToString());
  REQUIRE(inner->size() == 1);
  CHECK(inner->at(0).rel == "prod/environment.yaml");
  auto missing = source->Files(first, "envs/prod", {});
  REQUIRE(!missing.ok());
  CHECK(missing.status().code() == Code::kNotFound);
  auto not_a_commit = source->Files("main", "envs", {});
  REQUIRE(!not_a_commit.ok());
  CHECK(not_a_commit.status().code() == Code::kInvalid);
  auto outside = source->Files(first, "../x", {});
  REQUIRE(!outside.ok());
  CHECK(outside.status().code() == Code::kInvalid);
}

TEST_CASE("git source: errors") {
  Fixture f;
  f.repo.Write("deploy/target.yaml", kTarget);
  std::string head = f.repo.Commit();
  SUBCASE("missing ref is kNotFound naming it") {
    auto rev = f.Open("no-such-branch")->Resolve({});
    REQUIRE(!rev.ok());
    CHECK(rev.status().code() == Code::kNotFound);
    CHECK(rev.status().message().find("'no-such-branch'") != std::string::npos);
  }
  SUBCASE("missing path is kNotFound naming it") {
    auto source = f.Open("main", "nowhere");
    auto snap = source->Load(*source->Resolve({}), {});
    REQUIRE(!snap.ok());
    CHECK(snap.status().code() == Code::kNotFound);
    CHECK(snap.status().message().find("'nowhere'") != std::string::npos);
  }
  SUBCASE("a path selects the subtree") {
    auto snap = MustLoad(*f.Open("main", "deploy"));
    CHECK(snap.loaded.state.targets.at(0).location.file == "target.yaml");
  }
  SUBCASE("a commit that is nowhere is kNotFound") {
    auto snap = f.Open()->Load(std::string(40, 'a'), {});
    REQUIRE(!snap.ok());
    CHECK(snap.status().code() == Code::kNotFound);
  }
  SUBCASE("a revision that is no commit id is kInvalid") {
    auto snap = f.Open()->Load("main", {});
    REQUIRE(!snap.ok());
    CHECK(snap.status().code() == Code::kInvalid);
  }
  SUBCASE("a missing repository is an error, not a crash") {
    SourceOptions o{"file://" + (f.tmp.path() / "nope").string(), "", "", f.cache, {}, {}, {}};
    auto rev = (*OpenSource(o))->Resolve({});
    REQUIRE(!rev.ok());
    CHECK((rev.status().code() == Code::kNotFound || rev.status().code() == Code::kUnavailable));
  }
  SUBCASE("stop requested") {
    std::stop_source stop;
    stop.request_stop();
    auto source = f.Open();
    auto rev = source->Resolve(stop.get_token());
    REQUIRE(!rev.ok());
    CHECK(rev.status().code() == Code::kUnavailable);
    CHECK(rev.status().message().find("stopped") != std::string::npos);
    auto snap = source->Load(head, stop.get_token());
    REQUIRE(!snap.ok());
    CHECK(snap.status().code() == Code::kUnavailable);
    CHECK(snap.status().message().find("stopped") != std::string::npos);
  }
}

TEST_CASE("git source: a force-push is followed") {
  Fixture f;
  f.repo.Write("target.yaml", kTarget);
  f.repo.Commit("base");
  f.repo.Write("a.yaml", AgentDoc("a", "nginx:1"));
  std::string old_head = f.repo.Commit("old");
  auto source = f.Open("main");
  CHECK(MustLoad(*source).revision == old_head);
  f.repo.Git("reset -q --hard HEAD~1");
  f.repo.Write("a.yaml", AgentDoc("a", "nginx:2"));
  std::string new_head = f.repo.Commit("rewritten");
  auto snap = MustLoad(*source);
  CHECK(snap.revision == new_head);
  CHECK(snap.loaded.state.agents.at(0).image == "nginx:2");
}

TEST_CASE("git source: the loader's limits hold through Git") {
  Fixture f;
  f.repo.Write("target.yaml", kTarget);
  struct Row {
    const char* name;
    std::string content;
    int line;
    int column;
    std::string message;
  };
  const std::vector<Row> rows = {
      {"NUL byte", std::string("a: b\nc: d\0e\n", 12), 2, 5, "NUL byte"},
      {"non-UTF-8", "a: b\nc: \xff\xfe\n", 2, 4, "not valid UTF-8"},
      {"too large", std::string(1000, '#'), 1, 1, "1000 bytes, over the limit of 100 bytes"},
  };
  LoadLimits limits;
  limits.max_file_bytes = 100;
  for (const auto& row : rows) {
    SUBCASE(row.name) {
      f.repo.Write("x.yaml", row.content);
      f.repo.Commit();
      auto snap = MustLoad(*f.Open("", "", limits));
      // The same tree from disk gives the same diagnostic.
      f.repo.Remove(".git");
      auto disk = LoadTree(f.repo.path(), limits);
      REQUIRE_MESSAGE(snap.loaded.diagnostics.size() == 1, All(snap.loaded.diagnostics));
      const auto& d = snap.loaded.diagnostics.items()[0];
      CHECK(d.file == "x.yaml");
      CHECK(d.line == row.line);
      CHECK(d.column == row.column);
      CHECK_MESSAGE(d.message.find(row.message) != std::string::npos, d.message);
      CHECK(All(disk.diagnostics) == All(snap.loaded.diagnostics));
    }
  }
  SUBCASE("symlinks out of the tree are errors, inside ones are followed") {
    f.repo.Remove("target.yaml");
    f.repo.Write("real/a.yaml", AgentDoc("a"));
    f.repo.Symlink("out.yaml", "../../etc/passwd.yaml");
    f.repo.Symlink("abs.yaml", "/etc/hosts.yaml");
    f.repo.Symlink("dir", "..");
    f.repo.Symlink("deploy/up.yaml", "../../outside.yaml");  // out of --path deploy
    f.repo.Write("deploy/t.yaml", kTarget);
    f.repo.Symlink("deploy/in.yaml", "t2.txt");
    f.repo.Write("deploy/t2.txt", AgentDoc("b"));
    f.repo.Symlink("deploy/loop", ".");
    f.repo.Commit();
    auto snap = MustLoad(*f.Open());
    std::vector<std::string> got;
    for (const auto& d : snap.loaded.diagnostics.items()) got.push_back(d.ToString());
    const std::vector<std::string> expected{
        "abs.yaml:1:1: error: symlink leads outside the tree (to "
        "/etc/hosts.yaml)",
        "deploy/up.yaml:1:1: error: symlink leads outside the tree (to "
        "../../outside.yaml)",
        "dir:1:1: error: symlink leads outside the tree (to ..)",
        "out.yaml:1:1: error: symlink leads outside the tree (to "
        "../../etc/passwd.yaml)"};
    CHECK_MESSAGE(got == expected, All(snap.loaded.diagnostics));
    auto sub = MustLoad(*f.Open("", "deploy"));
    std::vector<std::string> sub_got;
    for (const auto& d : sub.loaded.diagnostics.items()) sub_got.push_back(d.ToString());
    const std::vector<std::string> sub_expected{
        "up.yaml:1:1: error: symlink leads outside the tree (to ../../outside.yaml)"};
    CHECK(sub_got == sub_expected);
    REQUIRE(sub.loaded.state.FindAgent("b") != nullptr);
    CHECK(sub.loaded.state.FindAgent("b")->location.file == "in.yaml");
  }
  SUBCASE("folders nested too deep are an error, not a stack overflow") {
    std::string deep;
    for (int i = 0; i < 300; ++i) deep += "d/";
    f.repo.Write(deep + "a.yaml", AgentDoc("a"));
    f.repo.Commit();
    auto snap = MustLoad(*f.Open());
    REQUIRE_MESSAGE(snap.loaded.diagnostics.size() == 1, All(snap.loaded.diagnostics));
    CHECK(snap.loaded.diagnostics.items()[0].message == "folders nested deeper than 256");
  }
  SUBCASE("a submodule is ignored with a warning") {
    GitRepo other(f.tmp.path() / "other");
    other.Write("x.txt", "x");
    other.Commit();
    f.repo.Git("submodule add -q " + other.url() + " vendor/other");
    f.repo.Commit();
    auto snap = MustLoad(*f.Open());
    REQUIRE_MESSAGE(snap.loaded.diagnostics.size() == 1, All(snap.loaded.diagnostics));
    CHECK(snap.loaded.diagnostics.items()[0].severity == Severity::kWarning);
    CHECK(snap.loaded.diagnostics.items()[0].file == "vendor/other");
    CHECK(!snap.loaded.diagnostics.HasErrors());
  }
}

TEST_CASE("git source: a one-file change re-decodes one file") {
  Fixture f;
  f.repo.Write("target.yaml", kTarget);
  for (int i = 0; i < 50; ++i) {
    f.repo.Write("agents/a" + std::to_string(i) + ".yaml", AgentDoc("a" + std::to_string(i)));
  }
  f.repo.Commit();
  auto source = f.Open("main");
  auto first = MustLoad(*source);
  CHECK(first.stats.files == 51);
  CHECK(first.stats.decoded == 51);
  CHECK(first.loaded.state.agents.size() == 50);

  f.repo.Write("agents/a7.yaml", AgentDoc("a7", "nginx:2"));
  f.repo.Commit();
  auto second = MustLoad(*source);
  CHECK(second.stats.files == 51);
  CHECK(second.stats.decoded == 1);
  CHECK(second.loaded.state.FindAgent("a7")->image == "nginx:2");
  CHECK(second.loaded.state.agents.size() == 50);

  SUBCASE("cross-document checks still run over every file") {
    f.repo.Write("agents/a8.yaml", AgentDoc("a9"));  // duplicate of a9
    f.repo.Commit();
    auto third = MustLoad(*source);
    CHECK(third.stats.decoded == 1);
    CHECK(third.loaded.diagnostics.HasErrors());
    CHECK(All(third.loaded.diagnostics).find("duplicate Agent name 'a9'") != std::string::npos);
  }
  SUBCASE("the same content under another name is decoded for that name") {
    f.repo.Git("mv agents/a1.yaml agents/z1.yaml");
    f.repo.Commit();
    auto third = MustLoad(*source);
    CHECK(third.stats.decoded == 1);
    CHECK(third.loaded.state.FindAgent("a1")->location.file == "agents/z1.yaml");
  }
  SUBCASE("the same commit again decodes nothing") { CHECK(MustLoad(*source).stats.decoded == 0); }
}

TEST_CASE("git source: the mirror's packs are merged past 32, history and tags kept") {
  Fixture f;
  f.repo.Write("target.yaml", kTarget);
  f.repo.Write("a.yaml", AgentDoc("a", "nginx:0"));
  std::string first = f.repo.Commit();
  f.repo.Git("tag -a v0 -m first");
  auto source = f.Open("main");
  MustLoad(*source);
  auto packs = [&] {
    size_t n = 0;
    for (const auto& mirror : fs::directory_iterator(f.cache)) {
      if (!fs::exists(mirror.path() / "objects/pack")) continue;
      for (const auto& e : fs::directory_iterator(mirror.path() / "objects/pack")) {
        n += e.path().extension() == ".pack";
      }
    }
    return n;
  };
  size_t most = 0;
  for (int i = 1; i <= 40; ++i) {
    f.repo.Write("a.yaml", AgentDoc("a", "nginx:" + std::to_string(i)));
    f.repo.Commit();
    auto snap = MustLoad(*source);
    REQUIRE(snap.loaded.state.agents.at(0).image == "nginx:" + std::to_string(i));
    most = std::max(most, packs());
  }
  CHECK(most == 32);    // one pack per fetch until the 33rd merges them
  CHECK(packs() == 9);  // 41 fetches: merged at the 33rd, then 8 more
  for (const auto& mirror : fs::directory_iterator(f.cache)) {
    if (!fs::exists(mirror.path() / "objects/pack")) continue;
    CHECK_NOTHROW(testing::Sh("git --git-dir=" + testing::Quote(mirror.path().string()) +
                              " fsck --no-progress --no-dangling"));
  }
  // Old commits and annotated tags are still in the mirror: no fetch needed.
  auto old = source->Load(first, {});
  REQUIRE_MESSAGE(old.ok(), old.status().ToString());
  CHECK(old->loaded.state.agents.at(0).image == "nginx:0");
  auto tag = f.Open("v0");
  auto rev = tag->Resolve({});
  REQUIRE(rev.ok());
  CHECK(*rev == first);
  auto tagged = tag->Load(f.repo.RevParse("v0"), {});
  REQUIRE_MESSAGE(tagged.ok(), tagged.status().ToString());
  CHECK(tagged->revision == first);
}

TEST_CASE("git source: build contexts get an exported tree, the last two kept") {
  Fixture f;
  const std::string registry =
      "apiVersion: reconcile.dev/v1alpha1\nkind: Registry\nmetadata: {name: r}\n"
      "spec: {url: localhost:5000, repository: a}\n";
  auto build = [](const std::string& context) {
    return "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: b}\nspec:\n"
           "  build: {context: " +
           context + "}\n  registry: r\n  target: t\n  port: 80\n";
  };
  f.repo.Write("deploy/t.yaml", kTarget);
  f.repo.Write("deploy/r.yaml", registry);
  f.repo.Write("deploy/apps/b.yaml", build("src"));
  f.repo.Write("deploy/apps/src/Dockerfile", "FROM scratch\n");
  f.repo.Write("deploy/apps/src/run.sh", "#!/bin/sh\n");
  fs::permissions(f.repo.path() / "deploy/apps/src/run.sh", fs::perms(0755));
  std::vector<std::string> commits{f.repo.Commit()};
  auto source = f.Open("main", "deploy");
  auto snap = MustLoad(*source);
  REQUIRE_MESSAGE(!snap.loaded.diagnostics.HasErrors(), All(snap.loaded.diagnostics));
  REQUIRE(!snap.root.empty());
  CHECK(fs::exists(snap.root / "apps/src/Dockerfile"));
  CHECK(fs::exists(snap.root / "t.yaml"));
  CHECK((fs::status(snap.root / "apps/src/run.sh").permissions() & fs::perms::owner_exec) !=
        fs::perms::none);
  std::vector<fs::path> roots{snap.root};
  for (int i = 0; i < 2; ++i) {
    f.repo.Write("deploy/apps/src/v", std::to_string(i));
    commits.push_back(f.repo.Commit());
    auto next = MustLoad(*source);
    REQUIRE(!next.root.empty());
    roots.push_back(next.root);
  }
  CHECK(!fs::exists(roots[0]));
  CHECK(fs::exists(roots[1]));
  CHECK(fs::exists(roots[2]));

  SUBCASE("a missing context folder is reported as on disk") {
    f.repo.Write("deploy/apps/b.yaml", build("nope"));
    f.repo.Commit();
    auto bad = MustLoad(*source);
    CHECK(All(bad.loaded.diagnostics).find("build context folder 'apps/nope' does not exist") !=
          std::string::npos);
    CHECK(bad.root.empty());
  }
  SUBCASE("a context through a symlink out of the tree is refused") {
    f.repo.Symlink("deploy/apps/out", "../../..");
    f.repo.Write("deploy/apps/b.yaml", build("out"));
    f.repo.Commit();
    auto bad = MustLoad(*source);
    CHECK(All(bad.loaded.diagnostics).find("leads outside the tree (symlink)") !=
          std::string::npos);
  }
}

}  // namespace
}  // namespace reconcile
