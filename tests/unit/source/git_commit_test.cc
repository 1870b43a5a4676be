// CommitFiles and PushBranch (git_commit.h) against repositories made with
// the git CLI: only the named file is committed, on the current branch, by
// the configured author; the push reaches the bare origin; a detached HEAD,
// a path outside the work tree and a non-fast-forward push are refused.
#include "reconcile/git_commit.h"

#include <filesystem>
#include <string>

#include <doctest/doctest.h>

#include "fakes/temp_dir.h"
#include "fixtures/git_repo.h"

namespace reconcile {
namespace {

namespace fs = std::filesystem;
using testing::GitRepo;
using testing::TempDir;

struct Checkout {
  TempDir tmp{"reconcile-git-commit"};
  GitRepo origin{tmp.path() / "origin.git", /*bare=*/true};
  GitRepo work{tmp.path() / "work"};
  Checkout() {
    work.Git("config user.name 'Promote Tester'");
    work.Git("config user.email promote@example.com");
    work.Git("remote add origin " + origin.url());
    work.Write("envs/prod/web.yaml", "kind: Agent\n");
    work.Write("notes.txt", "one\n");
    work.Commit("base");
    work.Git("push -q -u origin main");
  }
};

TEST_CASE("git commit: only the named file, on the current branch, then pushed") {
  Checkout c;
  c.work.Write("envs/prod/promoted.yaml", "# Written by reconcile promote\n");
  c.work.Write("notes.txt", "two (not to be committed)\n");
  const std::string base = c.work.Head();
  auto made = CommitFiles(c.work.path() / "envs", {c.work.path() / "envs/prod/promoted.yaml"},
                          "promote dev@abc to prod\n\nweb: x@sha256:1\n");
  REQUIRE_MESSAGE(made.ok(), made.status().ToString());
  CHECK(made->branch == "main");
  CHECK(made->commit == c.work.Head());
  CHECK(c.work.RevParse("HEAD~1") == base);
  CHECK(c.work.Git("log -1 --format=%an/%ae/%s") ==
        "Promote Tester/promote@example.com/promote dev@abc to prod\n");
  CHECK(c.work.Git("show HEAD:envs/prod/promoted.yaml") == "# Written by reconcile promote\n");
  CHECK(c.work.Git("show --name-only --format= HEAD") == "envs/prod/promoted.yaml\n");
  // The other change is neither committed nor lost; the index follows.
  CHECK(c.work.Git("status --porcelain") == " M notes.txt\n");

  auto pushed = PushBranch(c.work.path(), GitAuth{}, {});
  REQUIRE_MESSAGE(pushed.ok(), pushed.status().ToString());
  CHECK(*pushed == c.origin.url());
  CHECK(c.origin.RevParse("main") == made->commit);

  SUBCASE("a push that is not a fast-forward is refused and changes nothing") {
    GitRepo other{c.tmp.path() / "other"};
    other.Git("remote add origin " + c.origin.url());
    other.Git("fetch -q origin");
    other.Git("reset -q --hard origin/main");
    other.Write("x.txt", "x\n");
    const std::string theirs = other.Commit("theirs");
    other.Git("push -q origin main");
    c.work.Write("envs/prod/promoted.yaml", "# Written by reconcile promote\n# again\n");
    REQUIRE(CommitFiles(c.work.path(), {c.work.path() / "envs/prod/promoted.yaml"}, "again").ok());
    auto refused = PushBranch(c.work.path(), GitAuth{}, {});
    REQUIRE_FALSE(refused.ok());
    CHECK(c.origin.RevParse("main") == theirs);
  }
}

TEST_CASE("git commit: refused outside a work tree, on a detached HEAD, for outside files") {
  Checkout c;
  auto nowhere = CommitFiles(c.tmp.path(), {c.tmp.path() / "x"}, "m");
  REQUIRE_FALSE(nowhere.ok());
  CHECK(nowhere.status().message().find("is not inside a Git working tree") != std::string::npos);
  auto outside = CommitFiles(c.work.path(), {c.tmp.path() / "elsewhere.yaml"}, "m");
  REQUIRE_FALSE(outside.ok());
  CHECK(outside.status().message().find("is outside the working tree") != std::string::npos);
  c.work.Git("checkout -q --detach HEAD");
  c.work.Write("envs/prod/promoted.yaml", "x\n");
  auto detached = CommitFiles(c.work.path(), {c.work.path() / "envs/prod/promoted.yaml"}, "m");
  REQUIRE_FALSE(detached.ok());
  CHECK(detached.status().message().find("HEAD is detached") != std::string::npos);
}

}  // namespace
}  // namespace reconcile
