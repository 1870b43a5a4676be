#include "reconcile/build_context.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>

#include <doctest/doctest.h>

#include "fakes/temp_dir.h"

namespace reconcile {
namespace {

namespace fs = std::filesystem;

void Write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

// name -> (type flag, content) of a tar, with pax paths applied.
std::map<std::string, std::pair<char, std::string>> ReadTar(const std::string& tar) {
  std::map<std::string, std::pair<char, std::string>> out;
  std::string pax_path;
  for (size_t at = 0; at + 512 <= tar.size();) {
    const char* h = tar.data() + at;
    if (h[0] == '\0') break;
    std::string name(h, strnlen(h, 100));
    size_t size = std::stoul(std::string(h + 124, 11), nullptr, 8);
    char type = h[156];
    std::string body = tar.substr(at + 512, size);
    at += 512 + (size + 511) / 512 * 512;
    if (type == 'x') {
      size_t p = body.find(" path=");
      pax_path = body.substr(p + 6, body.find('\n', p) - p - 6);
      continue;
    }
    if (!pax_path.empty()) name = pax_path;
    pax_path.clear();
    out[name] = {type, body};
  }
  return out;
}

TEST_CASE("dockerignore: Docker's matching rules") {
  struct Row {
    std::vector<std::string> patterns;
    const char* path;
    bool ignored;
  };
  std::vector<Row> rows = {
      {{"*.log"}, "build.log", true},
      {{"*.log"}, "sub/build.log", false},         // * does not cross folders
      {{"**/*.log"}, "sub/deep/build.log", true},  // ** does
      {{"**/*.log"}, "build.log", true},
      {{"secret"}, "secret/key.pem", true},  // a folder excludes what is below it
      {{"/secret"}, "secret", true},         // a leading / is dropped
      {{"docs", "!docs/keep.md"}, "docs/keep.md", false},
      {{"docs", "!docs/keep.md"}, "docs/drop.md", true},
      {{"!x", "x"}, "x", true},  // last match wins
      {{"# a comment", ""}, "# a comment", false},
      {{"file?.txt"}, "file1.txt", true},
      {{"file?.txt"}, "file10.txt", false},
      {{"[ab].txt"}, "a.txt", true},
      {{"[!ab].txt"}, "c.txt", true},
      {{"./tmp/../cache"}, "cache/x", true},  // patterns are cleaned
      {{"a.b"}, "axb", false},                // a dot is literal
  };
  for (const Row& r : rows) {
    CAPTURE(r.path);
    CAPTURE(r.patterns.front());
    CHECK(DockerIgnored(r.patterns, r.path) == r.ignored);
  }
}

TEST_CASE("build context: listing, .dockerignore, tar and digest") {
  testing::TempDir tmp;
  const fs::path tree = tmp.path();
  Write(tree / "app/Dockerfile", "FROM scratch\n");
  Write(tree / "app/main.txt", "hello");
  Write(tree / "app/logs/a.log", "x");
  Write(tree / "app/.dockerignore", "logs\nDockerfile\n");
  Write(tree / "app/" / std::string(120, 'n') / "long.txt", "long");
  fs::create_symlink("main.txt", tree / "app/link");
  ::chmod((tree / "app/main.txt").c_str(), 0755);

  Result<BuildContext> ctx = ListBuildContext(tree, "app", "Dockerfile", {});
  REQUIRE_MESSAGE(ctx.ok(), ctx.status().message());
  std::vector<std::string> paths;
  for (const ContextEntry& e : ctx->entries) paths.push_back(e.path);
  // The Dockerfile is always sent, even when ignored; logs/ is not.
  CHECK(std::find(paths.begin(), paths.end(), "Dockerfile") != paths.end());
  CHECK(std::find(paths.begin(), paths.end(), "logs") == paths.end());
  CHECK(std::find(paths.begin(), paths.end(), "logs/a.log") == paths.end());
  CHECK(std::is_sorted(paths.begin(), paths.end()));

  Result<std::string> tar = ContextTar(*ctx);
  REQUIRE(tar.ok());
  CHECK(tar->size() % 512 == 0);
  auto files = ReadTar(*tar);
  CHECK(files["main.txt"] == std::make_pair('0', std::string("hello")));
  CHECK(files["link"].first == '2');
  CHECK(files[std::string(120, 'n') + "/long.txt"].second == "long");  // pax path
  CHECK(files[std::string(120, 'n') + "/"].first == '5');
  CHECK(files.count("logs/a.log") == 0);

  Result<std::string> d1 = ContextDigest(*ctx);
  REQUIRE(d1.ok());
  CHECK(*ContextDigest(*ListBuildContext(tree, "app", "Dockerfile", {})) == *d1);
  Write(tree / "app/logs/b.log", "ignored files do not change the digest");
  CHECK(*ContextDigest(*ListBuildContext(tree, "app", "Dockerfile", {})) == *d1);
  Write(tree / "app/main.txt", "hello!");
  CHECK(*ContextDigest(*ListBuildContext(tree, "app", "Dockerfile", {})) != *d1);
}

TEST_CASE("build context: bad input is a clear error") {
  testing::TempDir tmp;
  const fs::path tree = tmp.path() / "tree";
  Write(tree / "app/Dockerfile", "FROM scratch\n");
  Write(tmp.path() / "outside/secret", "s");

  SUBCASE("a context outside the tree") {
    Result<BuildContext> c = ListBuildContext(tree, "../outside", "Dockerfile", {});
    REQUIRE_FALSE(c.ok());
    CHECK(c.status().message().find("leads outside the tree") != std::string::npos);
  }
  SUBCASE("a symlinked context leading outside the tree") {
    fs::create_directory_symlink(tmp.path() / "outside", tree / "ext");
    Result<BuildContext> c = ListBuildContext(tree, "ext", "Dockerfile", {});
    REQUIRE_FALSE(c.ok());
    CHECK(c.status().message().find("leads outside the tree") != std::string::npos);
  }
  SUBCASE("a symlink inside the context leading out of it") {
    fs::create_symlink("../../outside/secret", tree / "app/steal");
    Result<BuildContext> c = ListBuildContext(tree, "app", "Dockerfile", {});
    REQUIRE_FALSE(c.ok());
    CHECK(c.status().message().find("'steal' is a symlink") != std::string::npos);
  }
  SUBCASE("an absolute symlink") {
    fs::create_symlink("/etc/passwd", tree / "app/abs");
    CHECK_FALSE(ListBuildContext(tree, "app", "Dockerfile", {}).ok());
  }
  SUBCASE("over the size limit") {
    Write(tree / "app/big.bin", std::string(5000, 'x'));
    BuildContextLimits limits;
    limits.max_bytes = 4096;
    Result<BuildContext> c = ListBuildContext(tree, "app", "Dockerfile", limits);
    REQUIRE_FALSE(c.ok());
    CHECK(c.status().message().find("--max-build-context") != std::string::npos);
    CHECK(c.status().message().find("big.bin") != std::string::npos);
  }
  SUBCASE("a missing Dockerfile") {
    Result<BuildContext> c = ListBuildContext(tree, "app", "Other.dockerfile", {});
    REQUIRE_FALSE(c.ok());
    CHECK(c.status().message().find("dockerfile 'Other.dockerfile'") != std::string::npos);
  }
  SUBCASE("a dockerfile outside the context") {
    CHECK_FALSE(ListBuildContext(tree, "app", "../Dockerfile", {}).ok());
  }
  SUBCASE("a fifo") {
    REQUIRE(::mkfifo((tree / "app/pipe").c_str(), 0600) == 0);
    Result<BuildContext> c = ListBuildContext(tree, "app", "Dockerfile", {});
    REQUIRE_FALSE(c.ok());
    CHECK(c.status().message().find("'pipe' is not a file") != std::string::npos);
  }
}

}  // namespace
}  // namespace reconcile
