// The AWS credential chain (environment, shared credentials and config
// files, container endpoint through a fake fetch), the region, and the
// canary rule: no secret key, session token or authorization token ever
// appears in an error. The container endpoint over real HTTP on loopback is
// in tests/scripts/sigv4_botocore_test.sh.
#include "aws/credentials.h"

#include <time.h>

#include <doctest/doctest.h>

#include "fakes/temp_dir.h"

namespace reconcile::aws {
namespace {

using std::chrono::system_clock;
using testing::TempDir;

constexpr const char* kCanarySecret = "CANARYsecretKEY0000000000000000000000000";
constexpr const char* kCanaryToken = "CANARYsessionTOKEN+/==";
constexpr const char* kCanaryAuth = "CANARYauthTOKEN";

system_clock::time_point At(int year, int mon, int day, int h, int m) {
  struct tm tm {};
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = h;
  tm.tm_min = m;
  return system_clock::from_time_t(timegm(&tm));
}

void CheckNoCanary(const Status& s) {
  INFO(s.message());
  CHECK(s.message().find("CANARY") == std::string::npos);
}

// A fetch function that records its calls and answers from a queue.
struct FakeFetch {
  struct Call {
    std::string url;
    std::vector<std::pair<std::string, std::string>> headers;
  };
  std::vector<Call> calls;
  struct Answer {
    std::string body;
    Status error;  // not ok: the fetch fails with it
  };
  std::vector<Answer> answers;
  void Ok(std::string body) { answers.push_back({std::move(body), Status::Ok()}); }
  void Fail(Status s) { answers.push_back({"", std::move(s)}); }

  FetchFunction Fn() {
    return [this](const std::string& url,
                  const std::vector<std::pair<std::string, std::string>>& headers)
               -> Result<std::string> {
      calls.push_back({url, headers});
      if (answers.empty()) return Status::Unavailable("no answer queued");
      Answer a = answers.front();
      answers.erase(answers.begin());
      if (!a.error.ok()) return a.error;
      return a.body;
    };
  }
};

std::string CredentialsJson(const std::string& expiration) {
  return std::string(R"({"AccessKeyId":"ASIAFAKE","SecretAccessKey":")") + kCanarySecret +
         R"(","Token":")" + kCanaryToken + R"(","Expiration":")" + expiration + R"("})";
}

TEST_CASE("aws credentials: the environment comes first") {
  TempDir home;
  home.Write(".aws/credentials",
             "[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = s\n");
  CredentialChain chain({{"HOME", home.path().string()},
                         {"AWS_ACCESS_KEY_ID", "ENVKEY"},
                         {"AWS_SECRET_ACCESS_KEY", kCanarySecret},
                         {"AWS_SESSION_TOKEN", kCanaryToken}},
                        nullptr);
  auto c = chain.Get();
  REQUIRE(c.ok());
  CHECK(c->credentials.access_key_id == "ENVKEY");
  CHECK(c->credentials.secret_access_key == kCanarySecret);
  CHECK(c->credentials.session_token == kCanaryToken);
  CHECK(c->source.find("environment") != std::string::npos);
  CHECK_FALSE(c->expiration.has_value());
}

TEST_CASE("aws credentials: half a key pair in the environment is an error naming the other") {
  auto a = CredentialChain({{"AWS_ACCESS_KEY_ID", "AK"}}, nullptr).Get();
  REQUIRE_FALSE(a.ok());
  CHECK(a.status().message() ==
        "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not; set both");
  auto b = CredentialChain({{"AWS_SECRET_ACCESS_KEY", kCanarySecret}}, nullptr).Get();
  REQUIRE_FALSE(b.ok());
  CHECK(b.status().message().find("AWS_ACCESS_KEY_ID is not") != std::string::npos);
  CheckNoCanary(b.status());
}

TEST_CASE("aws credentials: shared credentials and config files, by profile") {
  TempDir home;
  home.Write(".aws/credentials",
             "# comment\n"
             "[default]\n"
             "aws_access_key_id = DEFAULTKEY\n"
             "aws_secret_access_key = defaultsecret\n"
             "\n"
             "[dev]\n"
             "aws_access_key_id=DEVKEY\n"
             "aws_secret_access_key=devsecret\n"
             "aws_session_token = devtoken\n");
  home.Write(".aws/config",
             "[default]\n"
             "region = eu-west-1\n"
             "[profile dev]\n"
             "aws_access_key_id = CONFIGDEVKEY\n"
             "aws_secret_access_key = configdevsecret\n"
             "region = us-west-2\n"
             "s3 =\n"
             "  max_concurrent_requests = 10\n"
             "[profile ops]\n"
             "aws_access_key_id = OPSKEY\n"
             "aws_secret_access_key = opssecret\n");
  const std::string h = home.path().string();

  SUBCASE("default profile from the credentials file") {
    auto c = CredentialChain({{"HOME", h}}, nullptr).Get();
    REQUIRE(c.ok());
    CHECK(c->credentials.access_key_id == "DEFAULTKEY");
    CHECK(c->credentials.secret_access_key == "defaultsecret");
    CHECK(c->source == "profile 'default' in " + h + "/.aws/credentials");
  }
  SUBCASE("AWS_PROFILE: the credentials file wins over the config file") {
    auto c = CredentialChain({{"HOME", h}, {"AWS_PROFILE", "dev"}}, nullptr).Get();
    REQUIRE(c.ok());
    CHECK(c->credentials.access_key_id == "DEVKEY");
    CHECK(c->credentials.session_token == "devtoken");
  }
  SUBCASE("a profile only in the config file, as [profile NAME]") {
    auto c = CredentialChain({{"HOME", h}, {"AWS_PROFILE", "ops"}}, nullptr).Get();
    REQUIRE(c.ok());
    CHECK(c->credentials.access_key_id == "OPSKEY");
    CHECK(c->source == "profile 'ops' in " + h + "/.aws/config");
  }
  SUBCASE("AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE move the files") {
    TempDir other;
    other.Write("creds", "[x]\naws_access_key_id = XKEY\naws_secret_access_key = xs\n");
    other.Write("conf", "[profile x]\nregion = ap-south-1\n");
    Environment env = {{"HOME", h},
                       {"AWS_PROFILE", "x"},
                       {"AWS_SHARED_CREDENTIALS_FILE", (other.path() / "creds").string()},
                       {"AWS_CONFIG_FILE", (other.path() / "conf").string()}};
    auto c = CredentialChain(env, nullptr).Get();
    REQUIRE(c.ok());
    CHECK(c->credentials.access_key_id == "XKEY");
    auto r = ResolveRegion(env);
    REQUIRE(r.ok());
    CHECK(*r == "ap-south-1");
  }
  SUBCASE("AWS_PROFILE naming a profile neither file has") {
    auto c = CredentialChain({{"HOME", h}, {"AWS_PROFILE", "nope"}}, nullptr).Get();
    REQUIRE_FALSE(c.ok());
    CHECK(c.status().message() == "AWS_PROFILE is 'nope', but neither " + h +
                                      "/.aws/credentials (AWS_SHARED_CREDENTIALS_FILE) nor " + h +
                                      "/.aws/config (AWS_CONFIG_FILE) has that profile");
  }
  SUBCASE("region: explicit, then AWS_REGION, AWS_DEFAULT_REGION, then the profile's") {
    CHECK(*ResolveRegion({{"HOME", h}}, "ca-central-1") == "ca-central-1");
    CHECK(*ResolveRegion(
              {{"HOME", h}, {"AWS_REGION", "us-east-2"}, {"AWS_DEFAULT_REGION", "us-west-1"}}) ==
          "us-east-2");
    CHECK(*ResolveRegion({{"HOME", h}, {"AWS_DEFAULT_REGION", "us-west-1"}}) == "us-west-1");
    CHECK(*ResolveRegion({{"HOME", h}}) == "eu-west-1");
    CHECK(*ResolveRegion({{"HOME", h}, {"AWS_PROFILE", "dev"}}) == "us-west-2");
    auto none = ResolveRegion({{"HOME", h}, {"AWS_PROFILE", "ops"}});
    REQUIRE_FALSE(none.ok());
    CHECK(none.status().message() ==
          "no AWS region: set the Target's aws.region, AWS_REGION or AWS_DEFAULT_REGION, or "
          "region in profile 'ops' of " +
              h + "/.aws/config (AWS_CONFIG_FILE)");
    auto bad = ResolveRegion({{"AWS_REGION", "us-east-1/../x"}});
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.status().message().find("AWS_REGION is not a region name") != std::string::npos);
  }
}

TEST_CASE("aws credentials: nothing configured is ONE error naming what to set") {
  TempDir home;
  auto c = CredentialChain({{"HOME", home.path().string()}}, nullptr).Get();
  REQUIRE_FALSE(c.ok());
  CHECK(c.status().code() == Code::kInvalid);
  const std::string h = home.path().string();
  CHECK(c.status().message() ==
        "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and "
        "AWS_SESSION_TOKEN for temporary credentials); or give profile 'default' "
        "aws_access_key_id and aws_secret_access_key in " +
            h + "/.aws/credentials (AWS_SHARED_CREDENTIALS_FILE) or " + h +
            "/.aws/config (AWS_CONFIG_FILE), choosing the profile with AWS_PROFILE; or run where "
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or AWS_CONTAINER_CREDENTIALS_FULL_URI is set "
            "(ECS, EKS Pod Identity)");
  auto no_home = CredentialChain({}, nullptr).Get();
  REQUIRE_FALSE(no_home.ok());
  CHECK(no_home.status().message().find("~/.aws/credentials (HOME is not set)") !=
        std::string::npos);
}

TEST_CASE("aws credentials: malformed files name file and line, never a value") {
  TempDir home;
  const std::string path = (home.path() / ".aws/credentials").string();
  struct Row {
    const char* what;
    std::string text;
    std::string message;
  };
  std::vector<Row> rows = {
      {"a bare secret on its own line",
       std::string("[default]\naws_access_key_id = AK\n") + kCanarySecret + "\n",
       path + ":3: expected '[section]' or 'name = value'"},
      {"a setting before any section", std::string("aws_secret_access_key = ") + kCanarySecret,
       path + ":1: a setting before any [section]"},
      {"an unclosed section", "[default\n", path + ":1: a section header without its closing ']'"},
      {"text after the section", "[default] x\n", path + ":1: text after the section header's ']'"},
      {"an indented first line", std::string("[default]\n  ") + kCanarySecret + "\n",
       path + ":2: an indented line that continues no setting"},
      {"a key without its secret", "[default]\n\naws_access_key_id = AK\n",
       path + ":3: profile 'default' has aws_access_key_id but no aws_secret_access_key; set both"},
      {"a secret without its key",
       std::string("[default]\naws_secret_access_key = ") + kCanarySecret + "\n",
       path + ":2: profile 'default' has aws_secret_access_key but no aws_access_key_id; set both"},
      {"role_arn (not supported)", "[default]\nrole_arn = arn:aws:iam::1:role/x\n",
       path + ":2: profile 'default' uses role_arn, which reconcile does not support; give the "
              "profile aws_access_key_id and aws_secret_access_key, or set AWS_ACCESS_KEY_ID and "
              "AWS_SECRET_ACCESS_KEY"},
      {"NUL bytes", std::string("[default]\0x", 11),
       path + ": holds NUL bytes, not an INI text file"},
  };
  for (const Row& row : rows) {
    INFO(row.what);
    home.Write(".aws/credentials", row.text);
    auto c = CredentialChain({{"HOME", home.path().string()}}, nullptr).Get();
    REQUIRE_FALSE(c.ok());
    CHECK(c.status().code() == Code::kInvalid);
    CHECK(c.status().message() == row.message);
    CheckNoCanary(c.status());
  }
}

TEST_CASE("aws credentials: the container endpoint, cached until shortly before expiry") {
  system_clock::time_point now = At(2026, 12, 1, 18, 0);
  FakeFetch fetch;
  fetch.Ok(CredentialsJson("2026-12-01T19:00:00Z"));
  CredentialChain chain({{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc"}},
                        fetch.Fn(), [&] { return now; });
  auto c = chain.Get();
  REQUIRE_MESSAGE(c.ok(), c.status().ToString());
  REQUIRE(fetch.calls.size() == 1);
  CHECK(fetch.calls[0].url == "http://169.254.170.2/v2/credentials/abc");
  CHECK(fetch.calls[0].headers.empty());
  CHECK(c->credentials.access_key_id == "ASIAFAKE");
  CHECK(c->credentials.secret_access_key == kCanarySecret);
  CHECK(c->credentials.session_token == kCanaryToken);
  CHECK(c->expiration == At(2026, 12, 1, 19, 0));

  now = At(2026, 12, 1, 18, 54);  // 6 minutes left: still cached
  REQUIRE(chain.Get().ok());
  CHECK(fetch.calls.size() == 1);

  now = At(2026, 12, 1, 18, 56);  // 4 minutes left: refreshed
  fetch.Ok(CredentialsJson("2026-12-01T20:00:00.000Z"));
  auto fresh = chain.Get();
  REQUIRE(fresh.ok());
  CHECK(fetch.calls.size() == 2);
  CHECK(fresh->expiration == At(2026, 12, 1, 20, 0));

  now = At(2026, 12, 1, 19, 57);  // refresh fails, old ones still valid: kept
  fetch.Fail(Status::Unavailable("connection refused"));
  auto kept = chain.Get();
  REQUIRE(kept.ok());
  CHECK(kept->expiration == At(2026, 12, 1, 20, 0));
  CHECK(fetch.calls.size() == 3);

  now = At(2026, 12, 1, 20, 1);  // expired and the refresh fails: the error
  fetch.Fail(Status::Unavailable("connection refused"));
  auto gone = chain.Get();
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.status().code() == Code::kUnavailable);
  CHECK(gone.status().message() ==
        "the container credentials endpoint http://169.254.170.2/v2/credentials/abc "
        "(AWS_CONTAINER_CREDENTIALS_RELATIVE_URI): connection refused");
}

TEST_CASE("aws credentials: full URI and the authorization token") {
  TempDir dir;
  dir.Write("token", std::string(kCanaryAuth) + "-file\n");
  const std::string token_file = (dir.path() / "token").string();
  system_clock::time_point now = At(2026, 12, 1, 18, 0);
  auto get = [&](Environment env, FakeFetch& fetch) {
    return CredentialChain(std::move(env), fetch.Fn(), [&] { return now; }).Get();
  };
  SUBCASE("the token file wins over the token variable") {
    FakeFetch fetch;
    fetch.Ok(CredentialsJson("2026-12-01T19:00:00+00:00"));
    auto c = get({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:4000/creds"},
                  {"AWS_CONTAINER_AUTHORIZATION_TOKEN", kCanaryAuth},
                  {"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token_file}},
                 fetch);
    REQUIRE(c.ok());
    REQUIRE(fetch.calls.size() == 1);
    CHECK(fetch.calls[0].url == "http://127.0.0.1:4000/creds");
    CHECK(fetch.calls[0].headers == std::vector<std::pair<std::string, std::string>>{
                                        {"Authorization", std::string(kCanaryAuth) + "-file"}});
  }
  SUBCASE("the token variable, and the relative URI wins over the full one") {
    FakeFetch fetch;
    fetch.Ok(CredentialsJson("2026-12-01T19:00:00Z"));
    auto c = get({{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/rel"},
                  {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "https://creds.example/x"},
                  {"AWS_CONTAINER_AUTHORIZATION_TOKEN", kCanaryAuth}},
                 fetch);
    REQUIRE(c.ok());
    CHECK(fetch.calls[0].url == "http://169.254.170.2/rel");
    CHECK(fetch.calls[0].headers[0].second == kCanaryAuth);
  }
  SUBCASE("allowed and refused full URIs") {
    for (const char* ok : {"https://creds.example/x", "http://localhost:9/x", "http://[::1]:9/",
                           "http://169.254.170.23/v1/credentials", "http://127.1.2.3/"}) {
      INFO(ok);
      FakeFetch fetch;
      fetch.Ok(CredentialsJson("2026-12-01T19:00:00Z"));
      CHECK(get({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", ok}}, fetch).ok());
    }
    for (const char* bad : {"http://10.0.0.1/x", "http://127.0.0.1.evil.example/",
                            "ftp://127.0.0.1/", "http://u:p@127.0.0.1/"}) {
      INFO(bad);
      FakeFetch fetch;
      auto c = get({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", bad}}, fetch);
      REQUIRE_FALSE(c.ok());
      CHECK(c.status().message().starts_with("AWS_CONTAINER_CREDENTIALS_FULL_URI"));
      CHECK(fetch.calls.empty());
    }
    FakeFetch fetch;
    auto rel = get({{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "v2/x"}}, fetch);
    REQUIRE_FALSE(rel.ok());
    CHECK(rel.status().message().starts_with("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must be"));
  }
  SUBCASE("a token with a line break is refused, without the token") {
    FakeFetch fetch;
    auto c = get({{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/rel"},
                  {"AWS_CONTAINER_AUTHORIZATION_TOKEN", std::string(kCanaryAuth) + "\r\nX: y"}},
                 fetch);
    REQUIRE_FALSE(c.ok());
    CHECK(c.status().message() == "AWS_CONTAINER_AUTHORIZATION_TOKEN holds a line break");
    CHECK(fetch.calls.empty());
  }
}

TEST_CASE("aws credentials: bad container answers are clear errors without secrets") {
  system_clock::time_point now = At(2026, 12, 1, 18, 0);
  const std::string where =
      "the container credentials endpoint http://169.254.170.2/c "
      "(AWS_CONTAINER_CREDENTIALS_RELATIVE_URI) answered ";
  struct Row {
    const char* what;
    std::string body;
    std::string message;
  };
  std::vector<Row> rows = {
      {"not JSON", std::string("{\"SecretAccessKey\":\"") + kCanarySecret,
       where + "with something that is not a JSON object"},
      {"an array", "[1,2]", where + "with something that is not a JSON object"},
      {"no AccessKeyId", std::string(R"({"SecretAccessKey":")") + kCanarySecret + "\"}",
       where + "without AccessKeyId"},
      {"no SecretAccessKey", R"({"AccessKeyId":"AK"})", where + "without SecretAccessKey"},
      {"a number for a key",
       std::string(R"({"AccessKeyId":1,"SecretAccessKey":")") + kCanarySecret + "\"}",
       where + "with a AccessKeyId that is not a string"},
      {"a bad Expiration", CredentialsJson("tomorrow"),
       where + "with an Expiration that is not an ISO 8601 time"},
      {"already expired", CredentialsJson("2026-12-01T17:59:59Z"),
       where + "with credentials that have already expired"},
      {"too big", std::string(70000, ' ') + CredentialsJson("2026-12-01T19:00:00Z"),
       where + "with more than 64 KiB"},
      {"empty values", R"({"AccessKeyId":"","SecretAccessKey":""})",
       where + "with an empty AccessKeyId or SecretAccessKey"},
  };
  for (const Row& row : rows) {
    INFO(row.what);
    FakeFetch fetch;
    fetch.Ok(row.body);
    auto c = CredentialChain({{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/c"},
                              {"AWS_CONTAINER_AUTHORIZATION_TOKEN", kCanaryAuth}},
                             fetch.Fn(), [&] { return now; })
                 .Get();
    REQUIRE_FALSE(c.ok());
    CHECK(c.status().message() == row.message);
    CheckNoCanary(c.status());
  }
  SUBCASE("no fetch function") {
    auto c = CredentialChain({{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/c"}}, nullptr).Get();
    REQUIRE_FALSE(c.ok());
    CHECK(c.status().code() == Code::kInternal);
  }
}

TEST_CASE("aws credentials: ParseIsoTime") {
  CHECK(ParseIsoTime("2026-12-01T19:00:00Z") == At(2026, 12, 1, 19, 0));
  CHECK(ParseIsoTime("2026-12-01T19:00:00.123456Z") == At(2026, 12, 1, 19, 0));
  CHECK(ParseIsoTime("2026-12-01T20:30:00+01:30") == At(2026, 12, 1, 19, 0));
  CHECK(ParseIsoTime("2026-12-01T17:00:00-02:00") == At(2026, 12, 1, 19, 0));
  for (const char* bad :
       {"", "2026-12-01", "2026-12-01T19:00:00", "2026-13-01T19:00:00Z", "2026-12-01T19:00:00Zjunk",
        "2026-12-01T19:00:00+0100", "2026-12-01T19:00:00.Z"}) {
    INFO(bad);
    CHECK_FALSE(ParseIsoTime(bad).has_value());
  }
}

}  // namespace
}  // namespace reconcile::aws
