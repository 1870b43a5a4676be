// App Runner's endpoint choice and wire helpers, checked against the
// official service model and endpoint rule set in tests/testdata/vectors
// (the botocore cross-check of the rule set and of the signatures is
// tests/scripts/sigv4_botocore_test.sh).
#include "aws/apprunner_wire.h"

#include <time.h>

#include <fstream>
#include <sstream>

#include <doctest/doctest.h>

#include "aws/endpoint.h"

namespace reconcile::aws {
namespace {

nlohmann::json LoadModel(const char* file) {
  std::ifstream in(std::string(RECONCILE_VECTORS_DIR) + "/api-models/" + file);
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

std::string HeaderOf(const WireRequest& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "";
}

std::chrono::system_clock::time_point Time() {
  struct tm tm {};
  tm.tm_year = 2026 - 1900;
  tm.tm_mon = 11;
  tm.tm_mday = 1;
  tm.tm_hour = 18;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

TEST_CASE("apprunner wire: the constants are the service model's") {
  nlohmann::json model = LoadModel("aws-apprunner-service-2.json");
  const auto& meta = model["metadata"];
  CHECK(meta["protocol"] == "json");
  CHECK(meta["jsonVersion"] == "1.0");
  CHECK(meta["targetPrefix"] == kAppRunnerTargetPrefix);
  CHECK(meta["signingName"] == kAppRunnerSigningName);
  CHECK(meta["signatureVersion"] == "v4");
  CHECK(kAppRunnerContentType ==
        "application/x-amz-json-" + meta["jsonVersion"].get<std::string>());
  CHECK(meta["serviceId"] == "AppRunner");  // hence AWS_ENDPOINT_URL_APPRUNNER
  REQUIRE(model["operations"].size() == 37);
  for (const auto& [name, op] : model["operations"].items()) {
    const std::string operation = name;  // INFO captures it (clang 14: not a binding)
    INFO(operation);
    CHECK(op["http"]["method"] == "POST");
    CHECK(op["http"]["requestUri"] == "/");
    auto req = BuildAppRunnerRequest("https://apprunner.us-east-1.amazonaws.com", name,
                                     nlohmann::json::object());
    REQUIRE(req.ok());
    CHECK(req->method == "POST");
    CHECK(req->url == "https://apprunner.us-east-1.amazonaws.com/");
    CHECK(HeaderOf(*req, "X-Amz-Target") == "AppRunner." + name);
    CHECK(HeaderOf(*req, "Content-Type") == "application/x-amz-json-1.0");
    CHECK(HeaderOf(*req, "Host") == "apprunner.us-east-1.amazonaws.com");
    CHECK(req->body == "{}");
  }
}

TEST_CASE("apprunner wire: the signed request") {
  nlohmann::json input = {{"ServiceName", "web"},
                          {"SourceConfiguration",
                           {{"ImageRepository",
                             {{"ImageIdentifier", "public.ecr.aws/nginx/nginx:latest"},
                              {"ImageRepositoryType", "ECR_PUBLIC"}}}}}};
  auto req = SignedAppRunnerRequest("http://127.0.0.1:8443/", "CreateService", input,
                                    {"AKIDEXAMPLE", "secret", "token"}, "us-east-1", Time());
  REQUIRE_MESSAGE(req.ok(), req.status().ToString());
  CHECK(req->url == "http://127.0.0.1:8443/");
  CHECK(req->body == input.dump());
  REQUIRE(req->headers.size() == 6);
  CHECK(req->headers[0] == std::pair<std::string, std::string>("Host", "127.0.0.1:8443"));
  CHECK(req->headers[3] == std::pair<std::string, std::string>("X-Amz-Date", "20261201T180000Z"));
  CHECK(req->headers[4] == std::pair<std::string, std::string>("X-Amz-Security-Token", "token"));
  const std::string authz = req->headers[5].second;
  CHECK(req->headers[5].first == "Authorization");
  CHECK(
      authz.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261201/us-east-1/apprunner/"
                        "aws4_request, SignedHeaders=content-type;host;x-amz-date;"
                        "x-amz-security-token;x-amz-target, Signature="));
  CHECK(authz.find("secret") == std::string::npos);

  CHECK_FALSE(BuildAppRunnerRequest("https://h", "Create-Service", {}).ok());
  CHECK_FALSE(BuildAppRunnerRequest("https://h", "createService", {}).ok());
  CHECK_FALSE(BuildAppRunnerRequest("https://h", "CreateService", nlohmann::json::array()).ok());
  CHECK_FALSE(
      BuildAppRunnerRequest("https://h?x=1", "CreateService", nlohmann::json::object()).ok());
  CHECK_FALSE(BuildAppRunnerRequest("not a url", "CreateService", nlohmann::json::object()).ok());
}

TEST_CASE("apprunner wire: AWS JSON errors become statuses with the retry policy") {
  struct Row {
    long status;
    std::string body;
    std::string header;
    Code code;
    std::string message;
  };
  std::vector<Row> rows = {
      {400,
       R"({"__type":"com.amazonaws.apprunner#InvalidRequestException","message":"Service name is taken"})",
       "", Code::kInvalid,
       "App Runner CreateService: InvalidRequestException: Service name is taken (HTTP 400)"},
      {400, R"({"__type":"ResourceNotFoundException","Message":"no such service"})", "",
       Code::kNotFound,
       "App Runner CreateService: ResourceNotFoundException: no such service (HTTP 400)"},
      {400, R"({"__type":"InvalidStateException","message":"operation in progress"})", "",
       Code::kConflict,
       "App Runner CreateService: InvalidStateException: operation in progress (HTTP 400)"},
      {400, R"({"__type":"aws.protocoltests#ThrottlingException","message":"slow down"})", "",
       Code::kUnavailable, "App Runner CreateService: ThrottlingException: slow down (HTTP 400)"},
      {429, R"({"message":"Too many requests"})", "", Code::kUnavailable,
       "App Runner CreateService: Too many requests (HTTP 429)"},
      {500, R"({"__type":"InternalServiceErrorException","message":"oops"})", "",
       Code::kUnavailable,
       "App Runner CreateService: InternalServiceErrorException: oops (HTTP 500)"},
      {503, "<html>Service Unavailable</html>", "", Code::kUnavailable,
       "App Runner CreateService: the answer is not an AWS JSON error (body: <html>Service "
       "Unavailable</html>) (HTTP 503)"},
      {403, R"({"Message":"User is not authorized"})",
       "AccessDeniedException:http://internal.amazon.com/coral/com.amazon.coral.service/",
       Code::kFailed,
       "App Runner CreateService: AccessDeniedException: User is not authorized (HTTP 403)"},
      {402, "", "", Code::kFailed,
       "App Runner CreateService: the answer is not an AWS JSON error (empty body) (HTTP 402)"},
      {400, R"({"__type":"ServiceQuotaExceededException"})", "", Code::kFailed,
       "App Runner CreateService: ServiceQuotaExceededException (HTTP 400)"},
      {400, "{\"message\":\"line1\\nline2\\u0007\"}", "", Code::kFailed,
       "App Runner CreateService: line1 line2  (HTTP 400)"},
      {400, "[1]", "", Code::kFailed,
       "App Runner CreateService: the answer is not an AWS JSON error (body: [1]) (HTTP 400)"},
  };
  for (const Row& row : rows) {
    INFO(row.body);
    Status s = AppRunnerError("CreateService", row.status, row.body, row.header);
    CHECK(s.code() == row.code);
    CHECK(s.message() == row.message);
    auto parsed = ParseAppRunnerAnswer("CreateService", row.status, row.body, row.header);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.status() == s);
  }
  SUBCASE("huge and hostile bodies stay short") {
    std::string huge = R"({"__type":")" + std::string(100000, 'A') + R"(","message":")" +
                       std::string(100000, 'b') + "\"}";
    Status s = AppRunnerError("DescribeService", 400, huge);
    CHECK(s.message().size() < 1300);
    Status raw = AppRunnerError("DescribeService", 502, std::string(1 << 20, '\x01'));
    CHECK(raw.code() == Code::kUnavailable);
    CHECK(raw.message().size() < 400);
  }
  SUBCASE("an answer that echoes the secret or the token is redacted (canary)") {
    Credentials creds{"AK", "CANARYsecret123", "CANARYtoken456"};
    std::string body =
        R"({"__type":"InvalidRequestException","message":"bad header X-Amz-Security-Token: CANARYtoken456 and CANARYsecret123"})";
    Status s = AppRunnerError("CreateService", 400, body, "", &creds);
    CHECK(s.message().find("CANARY") == std::string::npos);
    CHECK(s.message().find("[redacted]") != std::string::npos);
    std::string not_json = std::string(190, 'x') + "CANARYtoken456";
    Status t = AppRunnerError("CreateService", 500, not_json, "", &creds);
    CHECK(t.message().find("CANARY") == std::string::npos);
  }
  SUBCASE("2xx answers") {
    auto ok = ParseAppRunnerAnswer("ListServices", 200, R"({"ServiceSummaryList":[]})");
    REQUIRE(ok.ok());
    CHECK(ok->contains("ServiceSummaryList"));
    auto empty = ParseAppRunnerAnswer("TagResource", 200, "");
    REQUIRE(empty.ok());
    CHECK(*empty == nlohmann::json::object());
    auto bad = ParseAppRunnerAnswer("ListServices", 200, "{not json");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.status().code() == Code::kUnavailable);
  }
}

TEST_CASE("apprunner endpoint: variables, override, rule set") {
  SUBCASE("the order: AWS_ENDPOINT_URL_APPRUNNER, AWS_ENDPOINT_URL, aws.endpoint, rules") {
    Environment env = {{"AWS_ENDPOINT_URL_APPRUNNER", "http://127.0.0.1:1111/"},
                       {"AWS_ENDPOINT_URL", "http://127.0.0.1:2222"}};
    auto e = AppRunnerEndpoint(env, "us-east-1", "http://127.0.0.1:3333");
    REQUIRE(e.ok());
    CHECK(e->url == "http://127.0.0.1:1111");
    CHECK(e->source == "AWS_ENDPOINT_URL_APPRUNNER");
    env.erase("AWS_ENDPOINT_URL_APPRUNNER");
    e = AppRunnerEndpoint(env, "us-east-1", "http://127.0.0.1:3333");
    REQUIRE(e.ok());
    CHECK(e->url == "http://127.0.0.1:2222");
    env.erase("AWS_ENDPOINT_URL");
    e = AppRunnerEndpoint(env, "us-east-1", "http://127.0.0.1:3333");
    REQUIRE(e.ok());
    CHECK(e->url == "http://127.0.0.1:3333");
    CHECK(e->source == "aws.endpoint");
    e = AppRunnerEndpoint(env, "us-east-1");
    REQUIRE(e.ok());
    CHECK(e->url == "https://apprunner.us-east-1.amazonaws.com");
    CHECK(e->source == "rule set");
  }
  SUBCASE("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS skips the variables") {
    auto e = AppRunnerEndpoint({{"AWS_ENDPOINT_URL", "http://127.0.0.1:2222"},
                                {"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"}},
                               "eu-west-1");
    REQUIRE(e.ok());
    CHECK(e->url == "https://apprunner.eu-west-1.amazonaws.com");
  }
  SUBCASE("FIPS and dual-stack") {
    struct Row {
      const char* region;
      bool fips, dual;
      const char* url;
    };
    for (const Row& r : std::vector<Row>{
             {"us-east-1", false, false, "https://apprunner.us-east-1.amazonaws.com"},
             {"us-east-1", true, false, "https://apprunner-fips.us-east-1.amazonaws.com"},
             {"us-east-1", false, true, "https://apprunner.us-east-1.api.aws"},
             {"us-east-1", true, true, "https://apprunner-fips.us-east-1.api.aws"},
             {"cn-north-1", false, false, "https://apprunner.cn-north-1.amazonaws.com.cn"},
             {"cn-north-1", false, true,
              "https://apprunner.cn-north-1.api.amazonwebservices.com.cn"},
             {"us-gov-west-1", true, false, "https://apprunner-fips.us-gov-west-1.amazonaws.com"},
             {"us-iso-east-1", false, false, "https://apprunner.us-iso-east-1.c2s.ic.gov"},
             {"us-isob-east-1", false, false, "https://apprunner.us-isob-east-1.sc2s.sgov.gov"},
             {"eusc-de-east-1", false, false, "https://apprunner.eusc-de-east-1.amazonaws.eu"},
             {"local", false, false, "https://apprunner.local.amazonaws.com"},
         }) {
      INFO(r.region << " fips=" << r.fips << " dual=" << r.dual);
      auto url = AppRunnerRuleSetEndpoint(r.region, r.fips, r.dual);
      REQUIRE(url.ok());
      CHECK(*url == r.url);
    }
    auto e = AppRunnerEndpoint(
        {{"AWS_USE_FIPS_ENDPOINT", "TRUE"}, {"AWS_USE_DUALSTACK_ENDPOINT", "false"}}, "us-west-2");
    REQUIRE(e.ok());
    CHECK(e->url == "https://apprunner-fips.us-west-2.amazonaws.com");
  }
  SUBCASE("errors name the variable") {
    struct Row {
      Environment env;
      std::string region, override_url, message;
    };
    for (const Row& r : std::vector<Row>{
             {{{"AWS_ENDPOINT_URL", "http://10.1.2.3:80"}},
              "us-east-1",
              "",
              "AWS_ENDPOINT_URL: plain http:// is accepted only to loopback (127.0.0.1, ::1, "
              "localhost); use https://"},
             {{},
              "us-east-1",
              "http://apprunner.example",
              "aws.endpoint: plain http:// is accepted only to loopback (127.0.0.1, ::1, "
              "localhost); use https://"},
             {{{"AWS_ENDPOINT_URL_APPRUNNER", "https://h/?x=1"}},
              "us-east-1",
              "",
              "AWS_ENDPOINT_URL_APPRUNNER: the endpoint URL has a query; give the base URL only"},
             {{{"AWS_ENDPOINT_URL_APPRUNNER", "apprunner.local"}},
              "us-east-1",
              "",
              "AWS_ENDPOINT_URL_APPRUNNER: the URL does not start with http:// or https://"},
             {{{"AWS_USE_FIPS_ENDPOINT", "true"}},
              "us-east-1",
              "https://h",
              "aws.endpoint and AWS_USE_FIPS_ENDPOINT=true: FIPS and custom endpoint are not "
              "supported (App Runner endpoint rule set)"},
             {{{"AWS_USE_DUALSTACK_ENDPOINT", "yes"}},
              "us-east-1",
              "",
              "AWS_USE_DUALSTACK_ENDPOINT must be true or false"},
             {{}, "", "", "Invalid Configuration: Missing Region"},
             {{},
              "us-east-1.evil.com/",
              "",
              "the AWS region is not a region name (such as us-east-1)"},
         }) {
      INFO(r.message);
      auto e = AppRunnerEndpoint(r.env, r.region, r.override_url);
      REQUIRE_FALSE(e.ok());
      CHECK(e.status().code() == Code::kInvalid);
      CHECK(e.status().message() == r.message);
    }
  }
}

}  // namespace
}  // namespace reconcile::aws
