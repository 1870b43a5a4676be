// Tests for the Notifier kind (model.h, loader.h): decoding of every field
// and type, defaults, errors at file:line:column naming the field, literal
// secrets refused, fields of another type refused, duplicates, the secret
// env allow-list, and Notifiers beside an Environment.
#include "reconcile/loader.h"
#include "reconcile/secrets.h"

#include "fakes/temp_dir.h"

#include <string>

#include <doctest/doctest.h>

namespace reconcile {
namespace {

Diagnostics Decode(const std::string& yaml, DesiredState& out) {
  Diagnostics diags;
  DecodeFile("n.yaml", "", yaml, LoadLimits{}, out, diags);
  return diags;
}

std::string All(const Diagnostics& diags) {
  std::string s;
  for (const auto& d : diags.items()) s += d.ToString() + "\n";
  return s;
}

std::string Doc(const std::string& spec) {
  return "apiVersion: reconcile.dev/v1alpha1\nkind: Notifier\nmetadata:\n  name: ops\nspec:\n" +
         spec;
}

TEST_CASE("Notifier: each type decodes, with defaults") {
  SUBCASE("slack: all events by default") {
    DesiredState s;
    auto d = Decode(Doc("  type: slack\n  url: {file: slack-url}\n"), s);
    REQUIRE_MESSAGE(!d.HasErrors(), All(d));
    REQUIRE(s.notifiers.size() == 1);
    const Notifier& n = s.notifiers[0];
    CHECK(n.name == "ops");
    CHECK(n.type == Notifier::Type::kSlack);
    CHECK(n.events == std::vector<std::string>{"applied", "blocked", "drift", "failed",
                                               "invalid-revision", "rolled-back", "unhealthy"});
    REQUIRE(n.url);
    CHECK(n.url->source == SecretRef::Source::kFile);
    CHECK(n.url->name == "slack-url");
    CHECK(n.api_url.empty());
  }
  SUBCASE("webhook with events and selectors") {
    DesiredState s;
    auto d = Decode(Doc("  type: webhook\n  url: {env: RECONCILE_SECRET_HOOK}\n"
                        "  secret: {file: hook-key}\n  events: [failed, applied]\n"
                        "  agents: [web, api]\n  environments: [prod]\n"),
                    s);
    REQUIRE_MESSAGE(!d.HasErrors(), All(d));
    const Notifier& n = s.notifiers.at(0);
    CHECK(n.type == Notifier::Type::kWebhook);
    CHECK(n.events == std::vector<std::string>{"applied", "failed"});
    CHECK(n.agents == std::vector<std::string>{"api", "web"});
    CHECK(n.environments == std::vector<std::string>{"prod"});
    CHECK(n.url->source == SecretRef::Source::kEnv);
    CHECK(n.secret->name == "hook-key");
  }
  SUBCASE("github: apiUrl defaulted, deployments") {
    DesiredState s;
    auto d = Decode(Doc("  type: github\n  owner: acme\n  repo: deploy.git-ops\n"
                        "  token: {file: gh-token}\n  deployments: true\n"),
                    s);
    REQUIRE_MESSAGE(!d.HasErrors(), All(d));
    const Notifier& n = s.notifiers.at(0);
    CHECK(n.owner == "acme");
    CHECK(n.repo == "deploy.git-ops");
    CHECK(n.deployments);
    CHECK(n.api_url == "https://api.github.com");
  }
  SUBCASE("gitlab: numeric projectId, apiUrl without trailing slash") {
    DesiredState s;
    auto d = Decode(Doc("  type: gitlab\n  projectId: 42\n  token: {file: gl}\n"
                        "  apiUrl: http://127.0.0.1:9/api/v4/\n"),
                    s);
    REQUIRE_MESSAGE(!d.HasErrors(), All(d));
    CHECK(s.notifiers.at(0).project_id == "42");
    CHECK(s.notifiers.at(0).api_url == "http://127.0.0.1:9/api/v4");
  }
}

TEST_CASE("Notifier: errors at file:line:column naming the field") {
  struct Row {
    const char* spec;
    const char* want;  // a substring of the one error
  };
  const Row rows[] = {
      // A literal URL: refused, and never echoed.
      {"  type: slack\n  url: https://hooks.slack.com/services/T0/B0/XYZSECRET\n",
       "n.yaml:7:8: error: spec.url: secrets must be references"},
      {"  type: github\n  owner: a\n  repo: b\n  token: ghp_literaltoken\n",
       "n.yaml:9:10: error: spec.token: secrets must be references"},
      {"  type: teams\n",
       "n.yaml:6:9: error: spec.type: invalid value 'teams': must be slack, webhook, github or "
       "gitlab"},
      {"  url: {file: x}\n", "n.yaml:6:3: error: spec.type: required field is missing"},
      {"  type: slack\n", "spec.url: required with type slack"},
      {"  type: webhook\n  url: {file: u}\n", "spec.secret: required with type webhook"},
      {"  type: slack\n  url: {file: u}\n  owner: acme\n",
       "n.yaml:8:3: error: spec.owner: only allowed with type github (type is slack)"},
      {"  type: slack\n  url: {file: u}\n  events: [applied, deployed]\n",
       "n.yaml:8:21: error: spec.events[1]: invalid value 'deployed': must be an event"},
      {"  type: slack\n  url: {file: u}\n  events: [failed, failed]\n",
       "spec.events[1]: 'failed' is listed twice"},
      {"  type: slack\n  url: {file: u}\n  events: []\n", "spec.events: must not be empty"},
      {"  type: slack\n  url: {file: u}\n  environments: [Prod]\n",
       "spec.environments[0]: invalid value 'Prod': must be an Environment name"},
      {"  type: gitlab\n  projectId: 1\n  token: {file: t}\n  apiUrl: "
       "https://user:pw@gitlab.example/api\n",
       "spec.apiUrl: must be an http(s) URL without credentials"},
      {"  type: gitlab\n  projectId: /x\n  token: {file: t}\n", "spec.projectId: must be a GitLab"},
      {"  type: slack\n  url: {file: u}\n  colour: red\n", "spec.colour"},
  };
  for (const Row& r : rows) {
    CAPTURE(r.spec);
    DesiredState s;
    auto d = Decode(Doc(r.spec), s);
    const std::string all = All(d);
    CHECK_MESSAGE(all.find(r.want) != std::string::npos, all);
    CHECK(all.find("XYZSECRET") == std::string::npos);
    CHECK(all.find("ghp_literaltoken") == std::string::npos);
    CHECK(all.find("user:pw") == std::string::npos);
  }
}

TEST_CASE("Notifier: duplicates and the env allow-list in a whole tree") {
  testing::TempDir tree;
  tree.Write("a.yaml", Doc("  type: slack\n  url: {env: SLACK_URL}\n"));
  tree.Write("b.yaml", Doc("  type: gitlab\n  projectId: g/p\n  token: {file: t}\n"));
  LoadResult r = LoadTree(tree.path(), LoadLimits{});
  const std::string all = All(r.diagnostics);
  CHECK_MESSAGE(all.find("a.yaml:4:9: error: metadata.name: duplicate Notifier name 'ops'") !=
                    std::string::npos,
                all);
  Diagnostics policy;
  CheckSecretEnvPolicy(r.state, {}, policy);
  const std::string p = All(policy);
  CHECK_MESSAGE(p.find("a.yaml:7:14: error: spec.url: notifier 'ops': environment variable "
                       "SLACK_URL is not allowed") != std::string::npos,
                p);
}

TEST_CASE("Notifier: beside an Environment and in its bases") {
  testing::TempDir tree;
  tree.Write("base/agents.yaml",
             "apiVersion: reconcile.dev/v1alpha1\nkind: Notifier\nmetadata:\n  name: chat\n"
             "spec:\n  type: slack\n  url: {file: u}\n");
  tree.Write("prod/env.yaml",
             "apiVersion: reconcile.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: prod\n"
             "spec:\n  bases: [../base]\n---\n" +
                 Doc("  type: github\n  owner: o\n  repo: r\n  token: {file: t}\n"));
  LoadResult r = LoadPath(tree.path(), "prod", LoadLimits{});
  REQUIRE_MESSAGE(!r.diagnostics.HasErrors(), All(r.diagnostics));
  REQUIRE(r.state.notifiers.size() == 2);
  CHECK(r.state.notifiers[0].name == "chat");
  CHECK(r.state.notifiers[1].name == "ops");
  CHECK(r.state.notifiers[1].location.file == "prod/env.yaml");
}

}  // namespace
}  // namespace reconcile
