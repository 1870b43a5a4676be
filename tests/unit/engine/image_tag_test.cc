#include "reconcile/image_tag.h"

#include <doctest/doctest.h>

namespace reconcile {
namespace {

Agent BuiltAgent(const std::string& version = "") {
  Agent a;
  a.name = "web";
  a.build = BuildSpec{};
  a.build->context = "app";
  a.build->version = version;
  a.registry = "r";
  a.location = {"deploy.yaml", 12, 1};
  return a;
}

Registry MakeRegistry(TagStrategy strategy, const std::string& custom = "") {
  Registry r;
  r.name = "r";
  r.url = "127.0.0.1:5000";
  r.repository = "team/web";
  r.tag_strategy = strategy;
  r.custom_tag = custom;
  r.location = {"registries.yaml", 3, 1};
  return r;
}

TagFacts GitFacts() {
  TagFacts f;
  f.git = true;
  f.revision = "0123456789abcdef0123456789abcdef01234567";
  f.commit_time = "2026-01-02T03:04:05Z";
  f.git_tags = {"latest-build", "v1.2.0", "v1.10.0", "v1.10.0-rc.1", "release"};
  return f;
}

TagFacts FolderFacts() {
  TagFacts f;
  f.revision = "tree-aaaaaaaaaaaa";
  f.context_digest = "fedcba9876543210fedcba9876543210";
  f.context_mtime = "2025-06-07T08:09:10Z";
  return f;
}

TEST_CASE("image tags: one per strategy and source") {
  struct Row {
    const char* name;
    Agent agent;
    Registry registry;
    TagFacts facts;
    const char* want;
  };
  std::vector<Row> rows = {
      {"git-sha of a commit: 12 hex digits", BuiltAgent(), MakeRegistry(TagStrategy::kGitSha),
       GitFacts(), "0123456789ab"},
      {"git-sha of a folder: the context digest", BuiltAgent(), MakeRegistry(TagStrategy::kGitSha),
       FolderFacts(), "tree-fedcba987654"},
      {"semver from spec.build.version (v dropped)", BuiltAgent("v2.3.4"),
       MakeRegistry(TagStrategy::kSemver), GitFacts(), "2.3.4"},
      {"semver: + is not a tag character", BuiltAgent("1.0.0+build.7"),
       MakeRegistry(TagStrategy::kSemver), GitFacts(), "1.0.0_build.7"},
      {"semver from the highest Git tag (release over rc, 10 > 2)", BuiltAgent(),
       MakeRegistry(TagStrategy::kSemver), GitFacts(), "1.10.0"},
      {"timestamp: commit time in UTC", BuiltAgent(), MakeRegistry(TagStrategy::kTimestamp),
       GitFacts(), "20260102T030405Z"},
      {"timestamp of a folder: newest context file", BuiltAgent(),
       MakeRegistry(TagStrategy::kTimestamp), FolderFacts(), "20250607T080910Z"},
      {"custom template", BuiltAgent("3.0.0"),
       MakeRegistry(TagStrategy::kCustom, "{agent}-{version}-{sha}"), GitFacts(),
       "web-3.0.0-0123456789ab"},
      {"custom literal", BuiltAgent(), MakeRegistry(TagStrategy::kCustom, "dev"), GitFacts(),
       "dev"},
      {"custom with timestamp", BuiltAgent(), MakeRegistry(TagStrategy::kCustom, "t{timestamp}"),
       GitFacts(), "t20260102T030405Z"},
  };
  for (const Row& row : rows) {
    SUBCASE(row.name) {
      Result<std::string> tag = ImageTag(row.agent, row.registry, row.facts);
      REQUIRE_MESSAGE(tag.ok(), tag.status().message());
      CHECK(*tag == row.want);
      // The same revision always gives the same tag.
      CHECK(*ImageTag(row.agent, row.registry, row.facts) == *tag);
    }
  }
}

TEST_CASE("image tags: errors name the file, line and field") {
  TagFacts no_tags = GitFacts();
  no_tags.git_tags = {"release"};
  Result<std::string> semver = ImageTag(BuiltAgent(), MakeRegistry(TagStrategy::kSemver), no_tags);
  REQUIRE_FALSE(semver.ok());
  CHECK(semver.status().code() == Code::kInvalid);
  CHECK(semver.status().message().find("deploy.yaml:12: agent 'web': spec.build.version") == 0);
  CHECK(semver.status().message().find("no Git tag like v1.2.3") != std::string::npos);

  Result<std::string> folder =
      ImageTag(BuiltAgent(), MakeRegistry(TagStrategy::kSemver), FolderFacts());
  CHECK_FALSE(folder.ok());

  Result<std::string> bad =
      ImageTag(BuiltAgent(), MakeRegistry(TagStrategy::kCustom, "{nope}"), GitFacts());
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("registries.yaml:3: registry 'r': spec.customTag") == 0);

  Result<std::string> too_long =
      ImageTag(BuiltAgent(), MakeRegistry(TagStrategy::kCustom, std::string(120, 'x') + "{sha}"),
               GitFacts());
  CHECK_FALSE(too_long.ok());
}

TEST_CASE("image tags: templates, tags and versions") {
  CHECK(CheckTagTemplate("{sha}").empty());
  CHECK(CheckTagTemplate("v-{version}_{agent}.{timestamp}-{fullSha}").empty());
  CHECK(CheckTagTemplate("").find("empty") != std::string::npos);
  CHECK(CheckTagTemplate("{sha").find("not closed") != std::string::npos);
  CHECK(CheckTagTemplate("a}").find("has no '{'") != std::string::npos);
  CHECK(CheckTagTemplate("{branch}").find("unknown variable {branch}") != std::string::npos);
  CHECK(CheckTagTemplate("a:b").find("not allowed") != std::string::npos);
  CHECK(IsValidTag("1.2.3"));
  CHECK_FALSE(IsValidTag(".hidden"));
  CHECK_FALSE(IsValidTag("-x"));
  CHECK_FALSE(IsValidTag(std::string(129, 'a')));
  CHECK(SemverOf("v1.2.3") == "1.2.3");
  CHECK(SemverOf("1.2.3-rc.1") == "1.2.3-rc.1");
  CHECK(SemverOf("1.2") == "");
  CHECK(SemverOf("01.2.3") == "");
  CHECK(ImageReference(MakeRegistry(TagStrategy::kGitSha), "abc") == "127.0.0.1:5000/team/web:abc");
}

}  // namespace
}  // namespace reconcile
