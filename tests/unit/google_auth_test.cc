// Google token sources (providers/http/google_auth.h): the service-account
// JWT checked with the key's public half, the exchange at a loopback token
// server, the cache and its refresh on a manual clock, the metadata server
// (GCE_METADATA_HOST, authEndpoint), missing and malformed credentials, and
// a canary private key that never reaches an error.
#include "http/google_auth.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <map>
#include <memory>
#include <string>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "fakes/loopback_http_server.h"
#include "fakes/temp_dir.h"

namespace reconcile::http {
namespace {

using nlohmann::json;
using reconcile::testing::LoopbackHttpServer;
using reconcile::testing::ManualClock;
using reconcile::testing::SeenRequest;

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// A fresh RSA key pair, as PEM.
struct RsaKey {
  std::string private_pem;
  std::string public_pem;
  RsaKey() {
    EVP_PKEY* key = EVP_RSA_gen(2048);
    REQUIRE(key != nullptr);
    BIO* priv = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(priv, key, nullptr, nullptr, 0, nullptr, nullptr);
    BIO* pub = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(pub, key);
    char* data = nullptr;
    long n = BIO_get_mem_data(priv, &data);
    private_pem.assign(data, n);
    n = BIO_get_mem_data(pub, &data);
    public_pem.assign(data, n);
    BIO_free(priv);
    BIO_free(pub);
    EVP_PKEY_free(key);
  }
};

const RsaKey& TestKey() {
  static const RsaKey key;
  return key;
}

std::string Base64UrlDecode(std::string s) {
  for (char& c : s) c = c == '-' ? '+' : c == '_' ? '/' : c;
  while (s.size() % 4) s += '=';
  std::string out(s.size(), '\0');
  int n =
      EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  REQUIRE(n >= 0);
  out.resize(n);
  while (!s.empty() && s.back() == '=') {  // EVP_DecodeBlock counts padding as zero bytes
    s.pop_back();
    out.pop_back();
  }
  return out;
}

bool VerifyRs256(const std::string& public_pem, const std::string& input, const std::string& sig) {
  BIO* bio = BIO_new_mem_buf(public_pem.data(), static_cast<int>(public_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (key == nullptr) return false;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok =
      EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
      EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(key);
  return ok;
}

struct Jwt {
  json header, claims;
  bool signature_ok = false;
};

Jwt DecodeJwt(const std::string& jwt) {
  size_t a = jwt.find('.');
  size_t b = jwt.find('.', a + 1);
  REQUIRE(a != std::string::npos);
  REQUIRE(b != std::string::npos);
  Jwt out;
  out.header = json::parse(Base64UrlDecode(jwt.substr(0, a)));
  out.claims = json::parse(Base64UrlDecode(jwt.substr(a + 1, b - a - 1)));
  out.signature_ok =
      VerifyRs256(TestKey().public_pem, jwt.substr(0, b), Base64UrlDecode(jwt.substr(b + 1)));
  return out;
}

std::string UrlDecode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i] == '+' ? ' ' : s[i]);
    }
  }
  return out;
}

std::map<std::string, std::string> Form(const std::string& body) {
  std::map<std::string, std::string> out;
  size_t start = 0;
  while (start <= body.size()) {
    size_t end = body.find('&', start);
    if (end == std::string::npos) end = body.size();
    std::string pair = body.substr(start, end - start);
    size_t eq = pair.find('=');
    if (eq != std::string::npos)
      out[UrlDecode(pair.substr(0, eq))] = UrlDecode(pair.substr(eq + 1));
    start = end + 1;
  }
  return out;
}

std::string KeyJson(const std::string& token_uri,
                    const std::string& private_key = TestKey().private_pem) {
  return json{{"type", "service_account"},
              {"project_id", "demo-project"},
              {"private_key_id", "kid-123"},
              {"private_key", private_key},
              {"client_email", "deployer@demo-project.iam.gserviceaccount.com"},
              {"client_id", "1234567890"},
              {"token_uri", token_uri}}
      .dump();
}

ClientOptions NoWait(ManualClock& clock) {
  ClientOptions o;
  o.clock = &clock;
  return o;
}

Getenv Env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST_CASE("google auth: the JWT assertion is RS256, signed by the key, with the claims") {
  Result<GoogleServiceAccountKey> key =
      ParseGoogleServiceAccountKey(KeyJson("https://oauth2.googleapis.com/token"), "key.json");
  REQUIRE_MESSAGE(key.ok(), key.status().message());
  CHECK(key->client_email == "deployer@demo-project.iam.gserviceaccount.com");
  CHECK(key->project_id == "demo-project");
  Result<std::string> jwt = MakeGoogleJwtAssertion(*key, "https://oauth2.googleapis.com/token",
                                                   kGoogleCloudPlatformScope, 1796126400);
  REQUIRE_MESSAGE(jwt.ok(), jwt.status().message());
  CHECK_FALSE(Contains(*jwt, "="));
  Jwt decoded = DecodeJwt(*jwt);
  CHECK(decoded.signature_ok);
  CHECK(decoded.header == json{{"alg", "RS256"}, {"typ", "JWT"}, {"kid", "kid-123"}});
  CHECK(decoded.claims["iss"] == "deployer@demo-project.iam.gserviceaccount.com");
  CHECK(decoded.claims["scope"] == "https://www.googleapis.com/auth/cloud-platform");
  CHECK(decoded.claims["aud"] == "https://oauth2.googleapis.com/token");
  CHECK(decoded.claims["iat"] == 1796126400);
  CHECK(decoded.claims["exp"] == 1796126400 + 3600);

  // A changed signature does not verify (the check can fail).
  std::string tampered = *jwt;
  char& c = tampered[tampered.rfind('.') + 10];
  c = c == 'A' ? 'B' : 'A';
  CHECK_FALSE(DecodeJwt(tampered).signature_ok);
}

TEST_CASE("google auth: service-account key exchanged at a loopback token server, cached") {
  int issued = 0;
  std::string expected_aud;
  LoopbackHttpServer server([&](const SeenRequest& r) {
    if (r.method != "POST" || r.target != "/token") return LoopbackHttpServer::Answer(404);
    if (r.Header("Content-Type") != "application/x-www-form-urlencoded") {
      return LoopbackHttpServer::Answer(415);
    }
    auto form = Form(r.body);
    if (form["grant_type"] != "urn:ietf:params:oauth:grant-type:jwt-bearer") {
      return LoopbackHttpServer::Json(400, R"({"error":"unsupported_grant_type"})");
    }
    Jwt jwt = DecodeJwt(form["assertion"]);
    if (!jwt.signature_ok || jwt.claims["aud"] != expected_aud) {
      return LoopbackHttpServer::Json(
          400, R"({"error":"invalid_grant","error_description":"Invalid JWT Signature."})");
    }
    ++issued;
    return LoopbackHttpServer::Json(200,
                                    json{{"access_token", "ya29.token-" + std::to_string(issued)},
                                         {"expires_in", 3599},
                                         {"token_type", "Bearer"}}
                                        .dump());
  });
  ManualClock clock;
  auto client = MakeCurlClient(NoWait(clock));
  reconcile::testing::TempDir dir("reconcile-gcp");

  SUBCASE("token_uri of the key, from GOOGLE_APPLICATION_CREDENTIALS") {
    expected_aud = server.url("/token");
    dir.Write("key.json", KeyJson(server.url("/token")));
    GoogleAuthOptions options;
    options.clock = &clock;
    options.getenv = Env({{"GOOGLE_APPLICATION_CREDENTIALS", (dir.path() / "key.json").string()}});
    auto source = NewGoogleTokenSource(*client, options);
    REQUIRE_MESSAGE(source.ok(), source.status().message());
    Result<std::string> t1 = (*source)->Token({});
    REQUIRE_MESSAGE(t1.ok(), t1.status().message());
    CHECK(*t1 == "ya29.token-1");
    CHECK(server.count() == 1);

    clock.Advance(std::chrono::seconds(3000));
    Result<std::string> t2 = (*source)->Token({});
    REQUIRE(t2.ok());
    CHECK(*t2 == "ya29.token-1");
    CHECK(server.count() == 1);  // the second call sent nothing

    clock.Advance(std::chrono::seconds(400));  // 3400s: within the last 5 minutes
    Result<std::string> t3 = (*source)->Token({});
    REQUIRE(t3.ok());
    CHECK(*t3 == "ya29.token-2");
    CHECK(server.count() == 2);
    Jwt second = DecodeJwt(Form(server.requests()[1].body)["assertion"]);
    CHECK(second.claims["iat"] == ManualClock::kStart + 3400);
  }
  SUBCASE("authEndpoint replaces the key's token_uri") {
    expected_aud = server.url("/token");
    dir.Write("key.json", KeyJson("https://oauth2.googleapis.com/token"));
    GoogleAuthOptions options;
    options.clock = &clock;
    options.credentials_file = (dir.path() / "key.json").string();
    options.auth_endpoint = server.base() + "/";
    options.getenv = Env({});
    auto source = NewGoogleTokenSource(*client, options);
    REQUIRE_MESSAGE(source.ok(), source.status().message());
    Result<std::string> t = (*source)->Token({});
    REQUIRE_MESSAGE(t.ok(), t.status().message());
    CHECK(*t == "ya29.token-1");
  }
  SUBCASE("a refused grant is kInvalid with Google's words, no key, no assertion") {
    expected_aud = "something else";
    dir.Write("key.json", KeyJson(server.url("/token")));
    GoogleAuthOptions options;
    options.clock = &clock;
    options.credentials_file = (dir.path() / "key.json").string();
    auto source = NewGoogleTokenSource(*client, options);
    REQUIRE(source.ok());
    Result<std::string> t = (*source)->Token({});
    REQUIRE_FALSE(t.ok());
    CHECK(t.status().code() == Code::kInvalid);
    CHECK(Contains(t.status().message(), "invalid_grant: Invalid JWT Signature."));
    CHECK(Contains(t.status().message(), "deployer@demo-project.iam.gserviceaccount.com"));
    CHECK_FALSE(Contains(t.status().message(), "PRIVATE KEY"));
    CHECK_FALSE(Contains(t.status().message(), "eyJ"));  // no JWT
  }
}

TEST_CASE("google auth: hostile and malformed token answers") {
  std::string answer;
  std::string assertion;
  LoopbackHttpServer server([&](const SeenRequest& r) {
    assertion = Form(r.body)["assertion"];
    std::string a = answer;
    for (size_t at = a.find("ASSERTION"); at != std::string::npos; at = a.find("ASSERTION")) {
      a.replace(at, 9, assertion);
    }
    return LoopbackHttpServer::Json(a.starts_with("{\"error") ? 400 : 200, a);
  });
  ManualClock clock;
  ClientOptions co = NoWait(clock);
  co.max_attempts = 1;
  auto client = MakeCurlClient(co);
  auto key = ParseGoogleServiceAccountKey(KeyJson(server.url("/token")), "key.json");
  REQUIRE(key.ok());
  GoogleAuthOptions options;
  options.clock = &clock;
  auto source = NewGoogleServiceAccountTokenSource(*client, *key, options);

  SUBCASE("a server echoing the assertion back") {
    answer = R"({"error":"invalid_grant","error_description":"bad assertion ASSERTION"})";
    Result<std::string> t = source->Token({});
    REQUIRE_FALSE(t.ok());
    REQUIRE_FALSE(assertion.empty());
    CHECK_FALSE(Contains(t.status().message(), assertion));
    CHECK(Contains(t.status().message(), "bad assertion ***"));
  }
  for (const char* body : {"not json", "[1,2]", R"({"access_token":5})", R"({"expires_in":3600})",
                           R"({"access_token":""})"}) {
    SUBCASE(body) {
      answer = body;
      Result<std::string> t = source->Token({});
      REQUIRE_FALSE(t.ok());
      CHECK(t.status().code() == Code::kFailed);
      CHECK(Contains(t.status().message(), "the Google token endpoint"));
    }
  }
}

TEST_CASE("google auth: malformed key files name the file and the field, never the key") {
  const std::string canary_key =
      "-----BEGIN PRIVATE KEY-----\nCANARYKEYMATERIALCANARYKEYMATERIAL\n-----END PRIVATE "
      "KEY-----\n";
  struct Row {
    std::string json;
    std::string expect;
  };
  for (const Row& row : {
           Row{"{not json", "key.json: not a JSON object"},
           Row{R"({"type":"authorized_user"})", "field 'type' is 'authorized_user'"},
           Row{R"({"type":"service_account","private_key":"x"})",
               "field 'client_email' is missing"},
           Row{json{{"type", "service_account"}, {"client_email", "a@b"}}.dump(),
               "field 'private_key' is missing"},
           Row{json{{"type", "service_account"}, {"client_email", 7}, {"private_key", canary_key}}
                   .dump(),
               "field 'client_email' must be a non-empty string"},
           Row{json{{"type", "service_account"}, {"client_email", "a@b"}, {"private_key", "CANARY"}}
                   .dump(),
               "field 'private_key' is not a PEM private key"},
       }) {
    CAPTURE(row.json);
    Result<GoogleServiceAccountKey> key = ParseGoogleServiceAccountKey(row.json, "key.json");
    REQUIRE_FALSE(key.ok());
    CHECK(key.status().code() == Code::kInvalid);
    CHECK(Contains(key.status().message(), row.expect));
    CHECK(Contains(key.status().message(), "key.json"));
    CHECK_FALSE(Contains(key.status().message(), "CANARY"));
  }
  // A PEM that OpenSSL cannot read fails at signing, still without its text.
  Result<GoogleServiceAccountKey> key = ParseGoogleServiceAccountKey(
      KeyJson("https://oauth2.googleapis.com/token", canary_key), "key.json");
  REQUIRE(key.ok());
  Result<std::string> jwt = MakeGoogleJwtAssertion(*key, "aud", kGoogleCloudPlatformScope, 0);
  REQUIRE_FALSE(jwt.ok());
  CHECK(jwt.status().message() ==
        "key.json: field 'private_key' is not an unencrypted PEM RSA private key");

  // The real key never appears either.
  Result<GoogleServiceAccountKey> real = ParseGoogleServiceAccountKey(
      json{{"type", "service_account"}, {"private_key", TestKey().private_pem}}.dump(), "k.json");
  REQUIRE_FALSE(real.ok());
  CHECK_FALSE(Contains(real.status().message(), "PRIVATE KEY"));
}

TEST_CASE("google auth: the metadata server") {
  int issued = 0;
  LoopbackHttpServer server([&](const SeenRequest& r) {
    if (r.target != "/computeMetadata/v1/instance/service-accounts/default/token") {
      return LoopbackHttpServer::Answer(404, "", {{"Metadata-Flavor", "Google"}});
    }
    if (r.Header("Metadata-Flavor") != "Google") return LoopbackHttpServer::Answer(403);
    ++issued;
    return LoopbackHttpServer::Json(200,
                                    json{{"access_token", "ya29.meta-" + std::to_string(issued)},
                                         {"expires_in", 600},
                                         {"token_type", "Bearer"}}
                                        .dump(),
                                    {{"Metadata-Flavor", "Google"}});
  });
  ManualClock clock;
  auto client = MakeCurlClient(NoWait(clock));
  GoogleAuthOptions options;
  options.clock = &clock;

  SUBCASE("GCE_METADATA_HOST") {
    options.getenv = Env({{"GCE_METADATA_HOST", "127.0.0.1:" + std::to_string(server.port())}});
  }
  SUBCASE("authEndpoint") {
    options.getenv = Env({});
    options.auth_endpoint = server.base();
  }
  auto source = NewGoogleTokenSource(*client, options);
  REQUIRE(source.ok());
  Result<std::string> t1 = (*source)->Token({});
  REQUIRE_MESSAGE(t1.ok(), t1.status().message());
  CHECK(*t1 == "ya29.meta-1");
  CHECK(*(*source)->Token({}) == "ya29.meta-1");
  CHECK(server.count() == 1);
  clock.Advance(std::chrono::seconds(541));  // 600s, refreshed 60s early
  CHECK(*(*source)->Token({}) == "ya29.meta-2");
  CHECK(server.count() == 2);
}

TEST_CASE("google auth: missing credentials name GOOGLE_APPLICATION_CREDENTIALS") {
  ManualClock clock;
  auto client = MakeCurlClient(NoWait(clock));  // no plain-http allowance: nothing is sent
  GoogleAuthOptions options;
  options.clock = &clock;

  SUBCASE("nothing set, no metadata server") {
    options.getenv = Env({});
    auto source = NewGoogleTokenSource(*client, options);
    REQUIRE(source.ok());
    Result<std::string> t = (*source)->Token({});
    REQUIRE_FALSE(t.ok());
    CHECK(t.status().code() == Code::kInvalid);
    CHECK(t.status().message().starts_with(
        "no Google credentials: set GOOGLE_APPLICATION_CREDENTIALS to the path of a "
        "service-account JSON key file, or run on Google Cloud where the metadata server"));
  }
  SUBCASE("GOOGLE_APPLICATION_CREDENTIALS names a file that is not there") {
    options.getenv = Env({{"GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json"}});
    auto source = NewGoogleTokenSource(*client, options);
    REQUIRE_FALSE(source.ok());
    CHECK(source.status().code() == Code::kInvalid);
    CHECK(source.status().message() ==
          "GOOGLE_APPLICATION_CREDENTIALS: /nonexistent/key.json: cannot read the Google "
          "service-account key file");
  }
}

}  // namespace
}  // namespace reconcile::http
