#include "controller/webhook.h"

#include <fstream>
#include <iterator>
#include <optional>
#include <string>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

namespace reconcile::controller {
namespace {

using Kind = WebhookVerdict::Kind;

const std::string kVectors = RECONCILE_VECTORS_DIR "/github-webhooks";
const std::string kSecret = "s3cr3t-webhook-key";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot read " << path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

WebhookHeaders GitHubHeaders(const std::string& event, const std::string& body,
                             const std::string& secret = kSecret) {
  return {{"x-github-event", event},
          {"x-hub-signature-256", "sha256=" + HmacSha256Hex(secret, body)},
          {"content-type", "application/json"}};
}

// No verdict message may contain the secret, whatever went wrong.
void CheckNoSecret(const WebhookVerdict& v, const std::string& secret = kSecret) {
  CHECK(v.message.find(secret) == std::string::npos);
  CHECK(v.ref.find(secret) == std::string::npos);
}

TEST_CASE("webhook: the GitHub Docs signature example") {
  nlohmann::json example = nlohmann::json::parse(ReadFile(kVectors + "/signature-example.json"));
  const std::string secret = example["secret"];
  const std::string payload = example["payload"];
  REQUIRE(secret == "It's a Secret to Everybody");
  REQUIRE(payload == "Hello, World!");
  CHECK(HmacSha256Hex(secret, payload) == example["signature"].get<std::string>());
  CHECK(HmacSha256Hex(secret, payload) ==
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");

  // The documented header authenticates the body; the event is not a push,
  // so it is accepted and ignored rather than parsed.
  WebhookHeaders h{{"x-hub-signature-256", example["X-Hub-Signature-256"].get<std::string>()},
                   {"x-github-event", "meta"}};
  WebhookVerdict v = VerifyGitHub(h, payload, secret, "main");
  CHECK(v.kind == Kind::kIgnored);
  CHECK(v.http_status() == 200);
  CheckNoSecret(v, secret);

  SUBCASE("upper-case hex digits are the same signature") {
    std::string upper = "sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17";
    h["x-hub-signature-256"] = upper;
    CHECK(VerifyGitHub(h, payload, secret, "main").kind == Kind::kIgnored);
  }
  SUBCASE("one byte more in the body breaks it") {
    CHECK(VerifyGitHub(h, payload + "\n", secret, "main").kind == Kind::kUnauthorized);
  }
  SUBCASE("another secret breaks it") {
    CHECK(VerifyGitHub(h, payload, "It's a Secret to Everybody!", "main").kind ==
          Kind::kUnauthorized);
  }
}

TEST_CASE("webhook: GitHub signature failures are 401 and never echo secrets") {
  const std::string body = ReadFile(kVectors + "/push/with-new-branch.payload.json");
  const std::string good = "sha256=" + HmacSha256Hex(kSecret, body);
  struct Row {
    const char* name;
    std::optional<std::string> header;
    const char* message_part;
  };
  const Row rows[] = {
      {"missing", std::nullopt, "missing X-Hub-Signature-256"},
      {"empty", std::string(""), "not 'sha256='"},
      {"no prefix", good.substr(7), "not 'sha256='"},
      {"sha1 prefix", "sha1=" + good.substr(7), "not 'sha256='"},
      {"truncated", good.substr(0, good.size() - 2), "not 'sha256='"},
      {"too long", good + "00", "not 'sha256='"},
      {"not hex", "sha256=" + std::string(64, 'g'), "not 'sha256='"},
      {"wrong digest", "sha256=" + std::string(64, '0'), "does not match"},
      {"signature of another secret", "sha256=" + HmacSha256Hex("other", body), "does not match"},
      {"leading space", " " + good, "not 'sha256='"},
  };
  for (const Row& row : rows) {
    SUBCASE(row.name) {
      WebhookHeaders h{{"x-github-event", "push"}};
      if (row.header) h["x-hub-signature-256"] = *row.header;
      WebhookVerdict v = VerifyGitHub(h, body, kSecret, "master");
      CHECK(v.kind == Kind::kUnauthorized);
      CHECK(v.http_status() == 401);
      CHECK_FALSE(v.triggers());
      CHECK_MESSAGE(v.message.find(row.message_part) != std::string::npos, v.message);
      CheckNoSecret(v);
      CHECK(v.message.find(good.substr(7)) == std::string::npos);
    }
  }
  SUBCASE("only the legacy SHA-1 header") {
    WebhookHeaders h{{"x-github-event", "push"}, {"x-hub-signature", "sha1=abc"}};
    WebhookVerdict v = VerifyGitHub(h, body, kSecret, "master");
    CHECK(v.kind == Kind::kUnauthorized);
    CHECK(v.message.find("SHA-1") != std::string::npos);
  }
  SUBCASE("no secret configured") {
    WebhookVerdict v = VerifyGitHub(GitHubHeaders("push", body), body, "", "master");
    CHECK(v.kind == Kind::kNotConfigured);
    CHECK(v.http_status() == 503);
  }
}

TEST_CASE("webhook: GitHub push payloads from octokit and probot") {
  struct Row {
    const char* file;
    const char* followed;
    Kind kind;
    const char* ref;
    const char* commit;
  };
  const Row rows[] = {
      // New branch with one commit: triggers when it is the followed branch.
      {"with-new-branch.payload.json", "master", Kind::kTrigger, "refs/heads/master",
       "6113728f27ae82c7b1a177c8d03f9e96e0adf246"},
      {"with-new-branch.payload.json", "refs/heads/master", Kind::kTrigger, "refs/heads/master",
       "6113728f27ae82c7b1a177c8d03f9e96e0adf246"},
      {"with-no-username-committer.payload.json", "master", Kind::kTrigger, "refs/heads/master",
       "6113728f27ae82c7b1a177c8d03f9e96e0adf246"},
      // Another branch than the followed one.
      {"with-new-branch.payload.json", "main", Kind::kIgnored, "refs/heads/master",
       "6113728f27ae82c7b1a177c8d03f9e96e0adf246"},
      {"with-new-branch.payload.json", "maste", Kind::kIgnored, "refs/heads/master", ""},
      // A 2016-era payload missing fields today's schema requires.
      {"probot-push.json", "bkeepers-patch-3", Kind::kTrigger, "refs/heads/bkeepers-patch-3",
       "738a951dba49dfec487000ef85ae80291d7ab32a"},
      {"probot-push.json", "main", Kind::kIgnored, "refs/heads/bkeepers-patch-3", ""},
      // Deleted tags: not the followed branch, and deletions never deploy.
      {"payload.json", "main", Kind::kIgnored, "refs/tags/simple-tag", ""},
      {"1.payload.json", "main", Kind::kIgnored, "refs/tags/simple-tag", ""},
      {"with-installation.payload.json", "main", Kind::kIgnored, "refs/tags/simple-tag", ""},
      {"with-organization.payload.json", "refs/tags/simple-tag", Kind::kIgnored,
       "refs/tags/simple-tag", ""},
  };
  for (const Row& row : rows) {
    SUBCASE((std::string(row.file) + " following " + row.followed).c_str()) {
      // The HMAC is computed over the raw file bytes, as GitHub signs them.
      const std::string body = ReadFile(kVectors + "/push/" + row.file);
      WebhookVerdict v = VerifyGitHub(GitHubHeaders("push", body), body, kSecret, row.followed);
      CHECK_MESSAGE(v.kind == row.kind, v.message);
      CHECK(v.event == "push");
      CHECK(v.ref == row.ref);
      if (row.kind == Kind::kTrigger) CHECK(v.commit == row.commit);
      CHECK(v.http_status() == (row.kind == Kind::kTrigger ? 202 : 200));
      CheckNoSecret(v);
    }
  }
  SUBCASE("a deleted followed tag says so") {
    const std::string body = ReadFile(kVectors + "/push/payload.json");
    WebhookVerdict v =
        VerifyGitHub(GitHubHeaders("push", body), body, kSecret, "refs/tags/simple-tag");
    CHECK(v.kind == Kind::kIgnored);
    CHECK(v.message.find("deletes") != std::string::npos);
    CHECK(v.commit.empty());
  }
}

TEST_CASE("webhook: GitHub branch deletion, tag push and other events") {
  const std::string zeros(40, '0');
  SUBCASE("deleting the followed branch triggers nothing") {
    std::string body = nlohmann::json{
        {"ref", "refs/heads/main"},
        {"before", "6113728f27ae82c7b1a177c8d03f9e96e0adf246"},
        {"after", zeros},
        {"deleted", true}}.dump();
    WebhookVerdict v = VerifyGitHub(GitHubHeaders("push", body), body, kSecret, "main");
    CHECK(v.kind == Kind::kIgnored);
    CHECK(v.message.find("deletes refs/heads/main") != std::string::npos);
  }
  SUBCASE("after = 40 zeros counts as a deletion even without 'deleted'") {
    std::string body = nlohmann::json{{"ref", "refs/heads/main"}, {"after", zeros}}.dump();
    CHECK(VerifyGitHub(GitHubHeaders("push", body), body, kSecret, "main").kind == Kind::kIgnored);
  }
  SUBCASE("a new tag is not a push to the branch") {
    std::string body = nlohmann::json{
        {"ref", "refs/tags/v1.0.0"},
        {"after", "6113728f27ae82c7b1a177c8d03f9e96e0adf246"},
        {"created", true},
        {"deleted", false}}.dump();
    WebhookVerdict v = VerifyGitHub(GitHubHeaders("push", body), body, kSecret, "main");
    CHECK(v.kind == Kind::kIgnored);
    CHECK(v.message.find("refs/tags/v1.0.0") != std::string::npos);
    CHECK(VerifyGitHub(GitHubHeaders("push", body), body, kSecret, "refs/tags/v1.0.0").kind ==
          Kind::kTrigger);
  }
  SUBCASE("ping payloads are answered without a trigger") {
    for (const char* f :
         {"payload.json", "with-app_id.payload.json", "with-organization.payload.json"}) {
      const std::string body = ReadFile(kVectors + "/ping/" + f);
      WebhookVerdict v = VerifyGitHub(GitHubHeaders("ping", body), body, kSecret, "main");
      CHECK_MESSAGE(v.kind == Kind::kIgnored, f);
      CHECK(v.http_status() == 200);
      CHECK(v.message.find("ping") != std::string::npos);
    }
  }
  SUBCASE("a ping signed with another secret is 401") {
    const std::string body = ReadFile(kVectors + "/ping/payload.json");
    CHECK(VerifyGitHub(GitHubHeaders("ping", body, "nope"), body, kSecret, "main").kind ==
          Kind::kUnauthorized);
  }
  SUBCASE("other events are ignored") {
    std::string body = R"({"action":"opened"})";
    WebhookVerdict v = VerifyGitHub(GitHubHeaders("pull_request", body), body, kSecret, "main");
    CHECK(v.kind == Kind::kIgnored);
    CHECK(v.message.find("pull_request") != std::string::npos);
  }
  SUBCASE("missing event header is malformed") {
    std::string body = "{}";
    WebhookHeaders h = GitHubHeaders("push", body);
    h.erase("x-github-event");
    CHECK(VerifyGitHub(h, body, kSecret, "main").kind == Kind::kMalformed);
  }
  SUBCASE("a commit id that is not hex is not returned, even for logging") {
    std::string body = nlohmann::json{{"ref", "refs/heads/main"}, {"after", "$(rm -rf /)"}}.dump();
    WebhookVerdict v = VerifyGitHub(GitHubHeaders("push", body), body, kSecret, "main");
    CHECK(v.kind == Kind::kTrigger);
    CHECK(v.commit.empty());
  }
  SUBCASE("form-encoded delivery") {
    std::string body = "payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%7D";
    WebhookHeaders h = GitHubHeaders("push", body);
    h["content-type"] = "application/x-www-form-urlencoded";
    CHECK(VerifyGitHub(h, body, kSecret, "main").kind == Kind::kTrigger);
    std::string bad = "payload=%7";
    h = GitHubHeaders("push", bad);
    h["content-type"] = "application/x-www-form-urlencoded";
    CHECK(VerifyGitHub(h, bad, kSecret, "main").kind == Kind::kMalformed);
    // JSON sent with a form Content-Type (curl's default) is still JSON.
    std::string json = R"({"ref":"refs/heads/main"})";
    h = GitHubHeaders("push", json);
    h["content-type"] = "application/x-www-form-urlencoded";
    CHECK(VerifyGitHub(h, json, kSecret, "main").kind == Kind::kTrigger);
  }
}

TEST_CASE("webhook: malformed JSON is 400 only once the signature is good") {
  const char* bodies[] = {"",
                          "{",
                          "not json",
                          "[1,2]",
                          "\"refs/heads/main\"",
                          "{\"ref\": 42}",
                          "{\"after\": \"6113728f27ae82c7b1a177c8d03f9e96e0adf246\"}",
                          "{\"ref\": \"\"}",
                          "{\"ref\":\"refs/heads/main\"} trailing"};
  for (const char* body : bodies) {
    SUBCASE(body) {
      WebhookVerdict v = VerifyGitHub(GitHubHeaders("push", body), body, kSecret, "main");
      CHECK(v.kind == Kind::kMalformed);
      CHECK(v.http_status() == 400);
      WebhookHeaders unsigned_headers{{"x-github-event", "push"}};
      CHECK(VerifyGitHub(unsigned_headers, body, kSecret, "main").kind == Kind::kUnauthorized);
    }
  }
  SUBCASE("malformed ping") {
    CHECK(VerifyGitHub(GitHubHeaders("ping", "{"), "{", kSecret, "main").kind == Kind::kMalformed);
  }
}

TEST_CASE("webhook: GitLab token and push hooks") {
  auto headers = [](const std::string& event, const std::string& token) {
    return WebhookHeaders{{"x-gitlab-event", event}, {"x-gitlab-token", token}};
  };
  const std::string push =
      nlohmann::json{{"object_kind", "push"},
                     {"ref", "refs/heads/main"},
                     {"before", "95790bf891e76fee5e1747ab589903a6a1f80f22"},
                     {"after", "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"},
                     {"checkout_sha", "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"}}
          .dump();
  SUBCASE("right token, followed branch") {
    WebhookVerdict v = VerifyGitLab(headers("Push Hook", kSecret), push, kSecret, "main");
    CHECK(v.kind == Kind::kTrigger);
    CHECK(v.commit == "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
  }
  SUBCASE("wrong, prefix, longer, empty or missing token") {
    for (const std::string& token :
         {std::string("wrong"), kSecret.substr(0, 5), kSecret + "x", std::string("")}) {
      WebhookVerdict v = VerifyGitLab(headers("Push Hook", token), push, kSecret, "main");
      CHECK(v.kind == Kind::kUnauthorized);
      CheckNoSecret(v);
    }
    WebhookHeaders h{{"x-gitlab-event", "Push Hook"}};
    CHECK(VerifyGitLab(h, push, kSecret, "main").kind == Kind::kUnauthorized);
  }
  SUBCASE("other branch") {
    CHECK(VerifyGitLab(headers("Push Hook", kSecret), push, kSecret, "develop").kind ==
          Kind::kIgnored);
  }
  SUBCASE("tag push") {
    std::string tag = nlohmann::json{{"object_kind", "tag_push"},
                                     {"ref", "refs/tags/v1.0.0"},
                                     {"after", "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7"}}
                          .dump();
    CHECK(VerifyGitLab(headers("Tag Push Hook", kSecret), tag, kSecret, "main").kind ==
          Kind::kIgnored);
    CHECK(VerifyGitLab(headers("Tag Push Hook", kSecret), tag, kSecret, "refs/tags/v1.0.0").kind ==
          Kind::kTrigger);
  }
  SUBCASE("branch deleted") {
    std::string del = nlohmann::json{
        {"ref", "refs/heads/main"},
        {"after", std::string(40, '0')},
        {"checkout_sha",
         nullptr}}.dump();
    CHECK(VerifyGitLab(headers("Push Hook", kSecret), del, kSecret, "main").kind == Kind::kIgnored);
  }
  SUBCASE("other events, malformed JSON, missing event, no secret") {
    CHECK(VerifyGitLab(headers("Merge Request Hook", kSecret), "{}", kSecret, "main").kind ==
          Kind::kIgnored);
    CHECK(VerifyGitLab(headers("Push Hook", kSecret), "{oops", kSecret, "main").kind ==
          Kind::kMalformed);
    CHECK(VerifyGitLab({{"x-gitlab-token", kSecret}}, push, kSecret, "main").kind ==
          Kind::kMalformed);
    CHECK(VerifyGitLab(headers("Push Hook", kSecret), push, "", "main").kind ==
          Kind::kNotConfigured);
  }
}

TEST_CASE("webhook: generic HMAC endpoint") {
  auto headers = [](const std::string& body, const std::string& secret = kSecret) {
    return WebhookHeaders{{"x-reconcile-signature-256", "sha256=" + HmacSha256Hex(secret, body)}};
  };
  SUBCASE("empty body triggers") {
    CHECK(VerifyGeneric(headers(""), "", kSecret, "main").kind == Kind::kTrigger);
  }
  SUBCASE("ref as branch name or full ref") {
    std::string b1 = R"({"ref":"main"})";
    std::string b2 =
        R"({"ref":"refs/heads/main","commit":"6113728f27ae82c7b1a177c8d03f9e96e0adf246"})";
    CHECK(VerifyGeneric(headers(b1), b1, kSecret, "main").kind == Kind::kTrigger);
    WebhookVerdict v = VerifyGeneric(headers(b2), b2, kSecret, "main");
    CHECK(v.kind == Kind::kTrigger);
    CHECK(v.ref == "refs/heads/main");
    CHECK(v.commit == "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
    std::string b3 = R"({"ref":"feature"})";
    CHECK(VerifyGeneric(headers(b3), b3, kSecret, "main").kind == Kind::kIgnored);
  }
  SUBCASE("object without ref triggers") {
    std::string b = R"({"reason":"manual"})";
    CHECK(VerifyGeneric(headers(b), b, kSecret, "main").kind == Kind::kTrigger);
  }
  SUBCASE("bad signature, missing header, malformed") {
    std::string b = R"({"ref":"main"})";
    CHECK(VerifyGeneric(headers(b, "other"), b, kSecret, "main").kind == Kind::kUnauthorized);
    CHECK(VerifyGeneric({}, b, kSecret, "main").kind == Kind::kUnauthorized);
    // A GitHub header is not the generic one.
    CHECK(VerifyGeneric({{"x-hub-signature-256", "sha256=" + HmacSha256Hex(kSecret, b)}}, b,
                        kSecret, "main")
              .kind == Kind::kUnauthorized);
    for (std::string bad : {"{", "[]", R"({"ref":1})", R"({"ref":""})"}) {
      CHECK_MESSAGE(VerifyGeneric(headers(bad), bad, kSecret, "main").kind == Kind::kMalformed,
                    bad);
    }
  }
}

TEST_CASE("webhook: ref matching") {
  CHECK(RefIsFollowed("refs/heads/main", "main"));
  CHECK(RefIsFollowed("refs/heads/main", "refs/heads/main"));
  CHECK(RefIsFollowed("refs/heads/feature/x", "feature/x"));
  CHECK_FALSE(RefIsFollowed("refs/heads/main", "mai"));
  CHECK_FALSE(RefIsFollowed("refs/heads/mainline", "main"));
  CHECK_FALSE(RefIsFollowed("refs/tags/main", "main"));
  CHECK_FALSE(RefIsFollowed("main", "main"));
  CHECK_FALSE(RefIsFollowed("refs/heads/main", ""));
  CHECK(std::string(WebhookProviderName(WebhookProvider::kGitLab)) == "gitlab");
}

}  // namespace
}  // namespace reconcile::controller
