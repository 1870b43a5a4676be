// Tests for the folder source (source.h, folder_source.cc) and for loading a
// tree from memory (loader.h LoadFiles) giving what loading it from disk
// gives: revision, resources and diagnostics.
#include <filesystem>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "fakes/temp_dir.h"
#include "reconcile/loader.h"
#include "reconcile/source.h"

namespace reconcile {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

constexpr const char* kTarget =
    "apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: t}\n"
    "spec: {provider: docker}\n";
constexpr const char* kRegistry =
    "apiVersion: reconcile.dev/v1alpha1\nkind: Registry\nmetadata: {name: r}\n"
    "spec: {url: localhost:5000, repository: a}\n";

std::string AgentDoc(const std::string& name, const std::string& extra = "  image: x\n") {
  return "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: " + name +
         "}\nspec:\n" + extra + "  target: t\n  port: 80\n";
}

std::vector<std::string> Lines(const Diagnostics& diags) {
  std::vector<std::string> out;
  for (const auto& d : diags.items()) out.push_back(d.ToString());
  return out;
}

std::string All(const Diagnostics& diags) {
  std::string s;
  for (const auto& l : Lines(diags)) s += l + "\n";
  return s;
}

TEST_CASE("LoadFiles gives what LoadTree gives") {
  using Files = std::vector<std::pair<std::string, std::string>>;
  struct Row {
    const char* name;
    Files files;
    std::vector<std::string> folders;  // besides the files' own folders
  };
  const std::vector<Row> rows = {
      {"a valid tree", {{"t.yaml", kTarget}, {"agents/a.yaml", AgentDoc("a")}}, {}},
      {"syntax and field errors",
       {{"t.yaml", kTarget}, {"a.yaml", "a: [\n"}, {"b.yaml", AgentDoc("b", "  imag: x\n")}},
       {}},
      {"cross-document errors",
       {{"a.yaml", AgentDoc("a", "  image: x\n  dependsOn: [b, c]\n")},
        {"b.yaml", AgentDoc("b", "  image: x\n  dependsOn: [a]\n")},
        {"c.yml", AgentDoc("a")}},
       {}},
      {"NUL, UTF-8 and size",
       {{"nul.yaml", std::string("a: b\0", 5)},
        {"utf8.yaml", "a: \xff\n"},
        {"big.yaml", std::string(5 * 1024 * 1024, '#')}},
       {}},
      {"build contexts",
       {{"t.yaml", kTarget},
        {"r.yaml", kRegistry},
        {"apps/a.yaml",
         AgentDoc("a", "  build: {context: src}\n  registry: r\n") + "---\n" +
             AgentDoc("b", "  build: {context: missing}\n  registry: r\n") + "---\n" +
             AgentDoc("c", "  build: {context: ../..}\n  registry: r\n") + "---\n" +
             AgentDoc("d",
                      "  build: {context: ., dockerfile: ../../Dockerfile}\n  registry: r\n")}},
       {"apps/src"}},
  };
  for (const auto& row : rows) {
    SUBCASE(row.name) {
      TempDir tree;
      std::vector<TreeFile> files;
      FolderSet folders;
      for (const auto& [rel, content] : row.files) {
        tree.Write(rel, content);
        files.push_back({rel, content, 0});
        for (fs::path p = fs::path(rel).parent_path(); !p.empty(); p = p.parent_path()) {
          folders.AddFolder(p.generic_string());
        }
      }
      for (const auto& f : row.folders) {
        fs::create_directories(tree.path() / f);
        folders.AddFolder(f);
      }
      LoadResult disk = LoadTree(tree.path());
      LoadResult memory = LoadFiles(files, folders);
      CHECK(disk.diagnostics.HasErrors() == (std::string(row.name) != "a valid tree"));
      CHECK(memory.state.revision == disk.state.revision);
      CHECK(memory.state.revision == TreeRevision(ReadFolder(tree.path()).files));
      CHECK_MESSAGE(Lines(memory.diagnostics) == Lines(disk.diagnostics),
                    ("memory:\n" + All(memory.diagnostics) + "disk:\n" + All(disk.diagnostics)));
      CHECK(memory.state.agents.size() == disk.state.agents.size());
      CHECK(memory.state.targets.size() == disk.state.targets.size());
      for (size_t i = 0; i < memory.state.agents.size() && i < disk.state.agents.size(); ++i) {
        CHECK(memory.state.agents[i].name == disk.state.agents[i].name);
        CHECK(memory.state.agents[i].location == disk.state.agents[i].location);
        CHECK(memory.state.agents[i].field_locations == disk.state.agents[i].field_locations);
      }
    }
  }
  SUBCASE("a file known only by its size is reported as too large, unread") {
    LoadResult r = LoadFiles({{"big.yaml", "", 10 * 1024 * 1024}}, FolderSet{});
    REQUIRE(r.diagnostics.size() == 1);
    CHECK(r.diagnostics.items()[0].message ==
          "file is 10485760 bytes, over the limit of 4194304 bytes");
  }
  SUBCASE("FolderSet: escapes win over folders below them") {
    FolderSet s;
    s.AddFolder("a");
    s.AddFolder("a/b/c");
    s.AddEscape("a/b");
    CHECK(s.Lookup("") == TreeView::Folder::kExists);
    CHECK(s.Lookup("a") == TreeView::Folder::kExists);
    CHECK(s.Lookup("a/b") == TreeView::Folder::kEscapes);
    CHECK(s.Lookup("a/b/c") == TreeView::Folder::kEscapes);
    CHECK(s.Lookup("a/x") == TreeView::Folder::kMissing);
  }
}

TEST_CASE("folder source") {
  TempDir tree;
  tree.Write("deploy/t.yaml", kTarget);
  tree.Write("deploy/a.yaml", AgentDoc("a"));
  auto open = [&](const std::string& location, const std::string& path = "") {
    SourceOptions o;
    o.location = location;
    o.path = path;
    auto s = OpenSource(o);
    REQUIRE_MESSAGE(s.ok(), s.status().ToString());
    return std::move(s).value();
  };
  SUBCASE("Resolve is the tree revision and follows changes") {
    auto source = open(tree.path().string(), "deploy");
    CHECK(source->Describe() == "folder " + tree.path().string() + "/deploy");
    auto rev = source->Resolve({});
    REQUIRE(rev.ok());
    CHECK(*rev == LoadTree(tree.path() / "deploy").state.revision);
    auto snap = source->Load(*rev, {});
    REQUIRE(snap.ok());
    CHECK_MESSAGE(!snap->loaded.diagnostics.HasErrors(), All(snap->loaded.diagnostics));
    CHECK(snap->revision == *rev);
    CHECK(snap->root == tree.path() / "deploy");
    CHECK(snap->commit_time.empty());
    CHECK(snap->stats.files == 2);
    CHECK(snap->loaded.state.agents.at(0).location.file == "a.yaml");
    tree.Write("deploy/b.yaml", AgentDoc("b"));
    CHECK(*source->Resolve({}) != *rev);
  }
  SUBCASE("a missing folder is kNotFound") {
    auto rev = open((tree.path() / "nope").string())->Resolve({});
    REQUIRE(!rev.ok());
    CHECK(rev.status().code() == Code::kNotFound);
    CHECK(rev.status().message().find("nope") != std::string::npos);
  }
  SUBCASE("a missing path is kNotFound naming it") {
    auto snap = open(tree.path().string(), "elsewhere")->Load("", {});
    REQUIRE(!snap.ok());
    CHECK(snap.status().code() == Code::kNotFound);
    CHECK(snap.status().message().find("'elsewhere'") != std::string::npos);
  }
  SUBCASE("a path out of the folder is kInvalid") {
    auto rev = open(tree.path().string(), "../x")->Resolve({});
    REQUIRE(!rev.ok());
    CHECK(rev.status().code() == Code::kInvalid);
  }
  SUBCASE("a single file") {
    auto snap = open((tree.path() / "deploy/t.yaml").string())->Load("", {});
    REQUIRE(snap.ok());
    CHECK(snap->loaded.state.targets.size() == 1);
    CHECK(snap->root == tree.path() / "deploy");
  }
  SUBCASE("Files lists a folder's manifests relative to the tree root, not decoded") {
    tree.Write("deploy/sub/broken.yaml", "kind: [unclosed\n");
    tree.Write("deploy/sub/notes.txt", "not a manifest");
    tree.Write("deploy/.hidden/x.yaml", kTarget);
    auto source = open(tree.path().string());
    auto all = source->Files("ignored", "", {});
    REQUIRE_MESSAGE(all.ok(), all.status().ToString());
    std::vector<std::string> rels;
    for (const TreeFile& f : *all) rels.push_back(f.rel);
    CHECK(rels ==
          std::vector<std::string>{"deploy/a.yaml", "deploy/sub/broken.yaml", "deploy/t.yaml"});
    auto sub = source->Files("", "deploy/sub/", {});
    REQUIRE(sub.ok());
    REQUIRE(sub->size() == 1);
    CHECK(sub->at(0).rel == "deploy/sub/broken.yaml");
    CHECK(sub->at(0).content == "kind: [unclosed\n");
    auto inner = open(tree.path().string(), "deploy")->Files("", "sub", {});
    REQUIRE(inner.ok());
    REQUIRE(inner->size() == 1);
    CHECK(inner->at(0).rel == "sub/broken.yaml");
    auto missing = source->Files("", "nope", {});
    REQUIRE(!missing.ok());
    CHECK(missing.status().code() == Code::kNotFound);
    auto outside = source->Files("", "../x", {});
    REQUIRE(!outside.ok());
    CHECK(outside.status().code() == Code::kInvalid);
  }
  SUBCASE("stop requested") {
    std::stop_source stop;
    stop.request_stop();
    auto rev = open(tree.path().string())->Resolve(stop.get_token());
    REQUIRE(!rev.ok());
    CHECK(rev.status().code() == Code::kUnavailable);
  }
}

}  // namespace
}  // namespace reconcile
