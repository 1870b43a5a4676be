// SigV4 against every case of AWS's official test suite
// (tests/testdata/vectors/sigv4, see its README.txt), byte for byte, plus
// the signer's own rules (S3 mode, session-token modes, hostile input).
//
// Each case's .req is parsed as the suite writes it: "METHOD TARGET
// HTTP/1.1", then "Name:value" header lines (a line starting with a blank
// continues the previous value, joined with one space: obs-fold), then an
// empty line and the body. It is signed with the suite's inputs, and the
// canonical request, string to sign and Authorization value must equal the
// .creq, .sts and .authz files exactly; the signed request, rendered the way
// the suite renders it (the .req's header lines, the added headers as
// "Name:value", then "Authorization: <value>", then the body), must equal the
// .sreq file.
//
// Modes, chosen by each case's own rule:
// - every case normalizes the path (the suite's service is "service", not
//   S3; normalize-path/normalize-path.txt makes S3 the only exception);
// - the post-sts-token cases sign with the token of post-sts-token/readme.txt:
//   "post-sts-header-before" has the token in the canonical request,
//   "post-sts-header-after" adds it after the signature (sign_session_token
//   false), as that readme describes; get-vanilla-with-session-token signs
//   with the token its README.txt entry gives.
// - known defect (README.txt): get-vanilla-with-session-token.sreq carries a
//   wrong signature. For that case the .sreq must equal ours except that
//   exact wrong signature, which the test also checks is still there (so it
//   fails once the file is fixed, and the exception can go).
#include "aws/sigv4.h"

#include <time.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <doctest/doctest.h>

namespace reconcile::aws {
namespace {

namespace fs = std::filesystem;

const fs::path kSuite = fs::path(RECONCILE_VECTORS_DIR) / "sigv4";
constexpr const char* kSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
constexpr const char* kVanillaToken =
    "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
constexpr const char* kDefectiveSignature =
    "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot read " << p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::chrono::system_clock::time_point SuiteTime() {
  struct tm tm {};
  tm.tm_year = 2015 - 1900;
  tm.tm_mon = 7;
  tm.tm_mday = 30;
  tm.tm_hour = 12;
  tm.tm_min = 36;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

struct SuiteRequest {
  SignRequest request;
  std::string request_line;
  std::vector<std::string> raw_header_lines;
};

SuiteRequest ParseReq(const std::string& text) {
  SuiteRequest out;
  std::vector<std::string> lines;
  size_t pos = 0;
  while (true) {
    size_t end = text.find('\n', pos);
    lines.push_back(text.substr(pos, end == std::string::npos ? std::string::npos : end - pos));
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  REQUIRE(!lines.empty());
  out.request_line = lines[0];
  const std::string suffix = " HTTP/1.1";
  REQUIRE(out.request_line.size() > suffix.size());
  REQUIRE(out.request_line.ends_with(suffix));
  size_t sp = out.request_line.find(' ');
  out.request.method = out.request_line.substr(0, sp);
  out.request.target =
      out.request_line.substr(sp + 1, out.request_line.size() - suffix.size() - sp - 1);
  size_t i = 1;
  for (; i < lines.size() && !lines[i].empty(); ++i) {
    out.raw_header_lines.push_back(lines[i]);
    if (lines[i].front() == ' ' || lines[i].front() == '\t') {
      REQUIRE(!out.request.headers.empty());
      size_t b = lines[i].find_first_not_of(" \t");
      out.request.headers.back().second += " " + lines[i].substr(b);
      continue;
    }
    size_t colon = lines[i].find(':');
    REQUIRE(colon != std::string::npos);
    out.request.headers.emplace_back(lines[i].substr(0, colon), lines[i].substr(colon + 1));
  }
  for (size_t j = i + 1; j < lines.size(); ++j) {
    if (j > i + 1) out.request.body += '\n';
    out.request.body += lines[j];
  }
  return out;
}

std::string RenderSignedRequest(const SuiteRequest& req, const Signature& sig) {
  std::string out = req.request_line;
  for (const auto& line : req.raw_header_lines) out += "\n" + line;
  for (const auto& [name, value] : sig.headers_to_add) {
    out += "\n" + name + (name == "Authorization" ? ": " : ":") + value;
  }
  if (!req.request.body.empty()) out += "\n\n" + req.request.body;
  return out;
}

std::string StsToken() {
  std::string readme = ReadFile(kSuite / "post-sts-token" / "readme.txt");
  std::string marker = "example value for X-Amz-Security-Token:";
  size_t at = readme.find(marker);
  REQUIRE(at != std::string::npos);
  std::string token = readme.substr(at + marker.size());
  token.erase(0, token.find_first_not_of(" \r\n"));
  token.erase(token.find_last_not_of(" \r\n") + 1);
  return token;
}

TEST_CASE("sigv4: every case of the official test suite, byte for byte") {
  std::vector<fs::path> cases;
  for (const auto& entry : fs::recursive_directory_iterator(kSuite)) {
    if (entry.is_regular_file() && entry.path().extension() == ".req") {
      cases.push_back(entry.path());
    }
  }
  std::sort(cases.begin(), cases.end());
  // README.txt lists 34 cases; none may go missing unnoticed.
  CHECK(cases.size() == 34);

  const std::string sts_token = StsToken();
  CHECK(sts_token.starts_with("AQoDYXdzEPT//////////wEXAMPLE"));
  int signed_cases = 0;
  for (const fs::path& req_path : cases) {
    const std::string name = req_path.stem().string();
    const std::string rel = fs::relative(req_path.parent_path(), kSuite).string();
    INFO("case " << rel);
    const fs::path base = req_path.parent_path() / name;
    SuiteRequest req = ParseReq(ReadFile(req_path));

    Credentials creds{"AKIDEXAMPLE", kSecret, ""};
    SigningOptions options;
    if (rel.starts_with("post-sts-token/")) {
      creds.session_token = sts_token;
      options.sign_session_token = !name.ends_with("-after");
    } else if (name == "get-vanilla-with-session-token") {
      creds.session_token = kVanillaToken;
    }
    auto sig = Sign(req.request, creds, {"us-east-1", "service", SuiteTime()}, options);
    REQUIRE_MESSAGE(sig.ok(), sig.status().ToString());

    CHECK(sig->canonical_request == ReadFile(base.string() + ".creq"));
    CHECK(sig->string_to_sign == ReadFile(base.string() + ".sts"));
    CHECK(sig->authorization == ReadFile(base.string() + ".authz"));

    std::string expected_sreq = ReadFile(base.string() + ".sreq");
    if (name == "get-vanilla-with-session-token") {
      size_t at = expected_sreq.find(kDefectiveSignature);
      CHECK_MESSAGE(at != std::string::npos,
                    "the known defect is gone from this .sreq: drop the exception");
      if (at != std::string::npos) expected_sreq.replace(at, 64, sig->signature);
    }
    CHECK(RenderSignedRequest(req, *sig) == expected_sreq);
    ++signed_cases;
  }
  CHECK(signed_cases == 34);
}

TEST_CASE("sigv4: one byte of difference fails the comparison") {
  // The suite's get-vanilla signed with another secret, time or region must
  // not match: the comparison above is not vacuous.
  SuiteRequest req = ParseReq(ReadFile(kSuite / "get-vanilla" / "get-vanilla.req"));
  const std::string authz = ReadFile(kSuite / "get-vanilla" / "get-vanilla.authz");
  auto good =
      Sign(req.request, {"AKIDEXAMPLE", kSecret, ""}, {"us-east-1", "service", SuiteTime()});
  REQUIRE(good.ok());
  CHECK(good->authorization == authz);
  std::string other_secret = kSecret;
  other_secret.back() = 'X';
  auto bad =
      Sign(req.request, {"AKIDEXAMPLE", other_secret, ""}, {"us-east-1", "service", SuiteTime()});
  REQUIRE(bad.ok());
  CHECK(bad->authorization != authz);
  auto bad_region =
      Sign(req.request, {"AKIDEXAMPLE", kSecret, ""}, {"us-east-2", "service", SuiteTime()});
  REQUIRE(bad_region.ok());
  CHECK(bad_region->string_to_sign != ReadFile(kSuite / "get-vanilla" / "get-vanilla.sts"));
}

TEST_CASE("sigv4: the headers to add, in order") {
  SignRequest req{"POST", "/", {{"Host", "apprunner.us-east-1.amazonaws.com"}}, "{}", ""};
  SUBCASE("long-term keys: X-Amz-Date then Authorization") {
    auto sig = Sign(req, {"AKID", "secret", ""}, {"us-east-1", "apprunner", SuiteTime()});
    REQUIRE(sig.ok());
    REQUIRE(sig->headers_to_add.size() == 2);
    CHECK(sig->headers_to_add[0] ==
          std::pair<std::string, std::string>("X-Amz-Date", "20150830T123600Z"));
    CHECK(sig->headers_to_add[1].first == "Authorization");
    CHECK(sig->signed_headers == "host;x-amz-date");
  }
  SUBCASE("a session token is signed by default") {
    auto sig = Sign(req, {"AKID", "secret", "TOKEN"}, {"us-east-1", "apprunner", SuiteTime()});
    REQUIRE(sig.ok());
    REQUIRE(sig->headers_to_add.size() == 3);
    CHECK(sig->headers_to_add[1] ==
          std::pair<std::string, std::string>("X-Amz-Security-Token", "TOKEN"));
    CHECK(sig->signed_headers == "host;x-amz-date;x-amz-security-token");
  }
  SUBCASE("X-Amz-Content-Sha256 when asked, signed") {
    SigningOptions o;
    o.add_content_sha256 = true;
    auto sig = Sign(req, {"AKID", "secret", ""}, {"us-east-1", "apprunner", SuiteTime()}, o);
    REQUIRE(sig.ok());
    REQUIRE(sig->headers_to_add.size() == 3);
    CHECK(sig->headers_to_add[1] ==
          std::pair<std::string, std::string>("X-Amz-Content-Sha256", Sha256Hex("{}")));
    CHECK(sig->signed_headers == "host;x-amz-content-sha256;x-amz-date");
  }
  SUBCASE("a given payload hash replaces SHA-256(body)") {
    req.payload_hash = "UNSIGNED-PAYLOAD";
    auto sig = Sign(req, {"AKID", "secret", ""}, {"us-east-1", "apprunner", SuiteTime()});
    REQUIRE(sig.ok());
    CHECK(sig->canonical_request.ends_with("\nUNSIGNED-PAYLOAD"));
  }
}

TEST_CASE("sigv4: S3 mode keeps the path as sent") {
  SignRequest req{
      "GET", "/my-object//example//photo.user", {{"Host", "b.s3.amazonaws.com"}}, "", ""};
  SigningOptions s3;
  s3.normalize_path = false;
  auto sig = Sign(req, {"AKID", "secret", ""}, {"us-east-1", "s3", SuiteTime()}, s3);
  REQUIRE(sig.ok());
  CHECK(sig->canonical_request.starts_with("GET\n/my-object//example//photo.user\n"));
  auto normal = Sign(req, {"AKID", "secret", ""}, {"us-east-1", "s3", SuiteTime()});
  REQUIRE(normal.ok());
  CHECK(normal->canonical_request.starts_with("GET\n/my-object/example/photo.user\n"));
  // An encoded byte is encoded again outside S3 mode, kept in S3 mode.
  req.target = "/a%20b";
  CHECK(Sign(req, {"AKID", "secret", ""}, {"us-east-1", "s3", SuiteTime()}, s3)
            ->canonical_request.starts_with("GET\n/a%20b\n"));
  CHECK(Sign(req, {"AKID", "secret", ""}, {"us-east-1", "service", SuiteTime()})
            ->canonical_request.starts_with("GET\n/a%2520b\n"));
}

TEST_CASE("sigv4: hostile or wrong input is an error that holds no secret") {
  const std::string secret = "CANARY-SECRET-9f2c";
  const std::string token = "CANARY-TOKEN-77ab";
  SigningScope scope{"us-east-1", "apprunner", SuiteTime()};
  struct Row {
    const char* what;
    SignRequest req;
    Credentials creds;
    SigningScope scope;
    const char* needle;
  };
  const Headers host = {{"Host", "h"}};
  std::vector<Row> rows = {
      {"no Host", {"GET", "/", {}, "", ""}, {"AK", secret, token}, scope, "no Host header"},
      {"lower-case method", {"get", "/", host, "", ""}, {"AK", secret, token}, scope, "method"},
      {"target without /", {"GET", "x", host, "", ""}, {"AK", secret, token}, scope, "'/'"},
      {"CRLF in a header value",
       {"GET", "/", {{"Host", "h"}, {"X-A", "v\r\nX-Injected: 1"}}, "", ""},
       {"AK", secret, token},
       scope,
       "line break"},
      {"header name not a token",
       {"GET", "/", {{"Host", "h"}, {"Bad Name", "v"}}, "", ""},
       {"AK", secret, token},
       scope,
       "not an HTTP token"},
      {"bad escape", {"GET", "/?a=%zz", host, "", ""}, {"AK", secret, token}, scope, "hex"},
      {"truncated escape", {"GET", "/?a=%4", host, "", ""}, {"AK", secret, token}, scope, "hex"},
      {"no secret", {"GET", "/", host, "", ""}, {"AK", "", token}, scope, "secret access key"},
      {"CR in the token",
       {"GET", "/", host, "", ""},
       {"AK", secret, token + "\r\nX: y"},
       scope,
       "session token"},
      {"region with a dot",
       {"GET", "/", host, "", ""},
       {"AK", secret, token},
       {"us-east-1.evil", "apprunner", SuiteTime()},
       "region"},
      {"stale X-Amz-Date",
       {"GET", "/", {{"Host", "h"}, {"X-Amz-Date", "20000101T000000Z"}}, "", ""},
       {"AK", secret, token},
       scope,
       "X-Amz-Date"},
      {"another token in the request",
       {"GET", "/", {{"Host", "h"}, {"X-Amz-Security-Token", "other"}}, "", ""},
       {"AK", secret, token},
       scope,
       "X-Amz-Security-Token"},
  };
  for (const Row& row : rows) {
    INFO(row.what);
    auto sig = Sign(row.req, row.creds, row.scope);
    REQUIRE_FALSE(sig.ok());
    CHECK(sig.status().code() == Code::kInvalid);
    CHECK(sig.status().message().find(row.needle) != std::string::npos);
    CHECK(sig.status().message().find("CANARY") == std::string::npos);
  }
}

TEST_CASE("sigv4: SplitUrl gives the Host header and the target") {
  struct Row {
    const char* url;
    const char* host;
    const char* target;
  };
  for (const Row& row : std::vector<Row>{
           {"https://apprunner.us-east-1.amazonaws.com", "apprunner.us-east-1.amazonaws.com", "/"},
           {"https://apprunner.us-east-1.amazonaws.com:443/", "apprunner.us-east-1.amazonaws.com",
            "/"},
           {"http://127.0.0.1:8080/a/b?x=1", "127.0.0.1:8080", "/a/b?x=1"},
           {"http://127.0.0.1:80", "127.0.0.1", "/"},
           {"http://[::1]:9000/", "[::1]:9000", "/"},
           {"HTTPS://Host.Example:8443?q", "host.example:8443", "/?q"},
       }) {
    INFO(row.url);
    auto parts = SplitUrl(row.url);
    REQUIRE_MESSAGE(parts.ok(), parts.status().ToString());
    CHECK(parts->host_header == row.host);
    CHECK(parts->target == row.target);
  }
  for (const char* bad : {"ftp://h/", "h/path", "https://", "https://u:p@h/", "https://h/#f",
                          "https://h:/", "https://h:99999x/", "https://h/a b", "https://h/\r\n"}) {
    INFO(bad);
    CHECK_FALSE(SplitUrl(bad).ok());
  }
}

TEST_CASE("sigv4: building blocks") {
  CHECK(Sha256Hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(UriEncode("a b/c~-_.é", true) == "a%20b/c~-_.%C3%A9");
  CHECK(UriEncode("a/b", false) == "a%2Fb");
  CHECK(AmzDate(SuiteTime()) == "20150830T123600Z");
}

}  // namespace
}  // namespace reconcile::aws
