// Azure token sources (providers/http/azure_auth.h) against loopback servers
// standing in for Microsoft Entra, the App Service / Container Apps identity
// endpoint and the instance metadata service: the requests as documented,
// the cache and its refresh on a manual clock, Entra's error bodies,
// missing credentials, and canaries for the secret and the identity header.
#include "http/azure_auth.h"

#include <map>
#include <string>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "fakes/loopback_http_server.h"

namespace reconcile::http {
namespace {

using nlohmann::json;
using reconcile::testing::LoopbackHttpServer;
using reconcile::testing::ManualClock;
using reconcile::testing::SeenRequest;

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
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

std::string Path(const std::string& target) { return target.substr(0, target.find('?')); }
std::map<std::string, std::string> Query(const std::string& target) {
  size_t q = target.find('?');
  return q == std::string::npos ? std::map<std::string, std::string>{} : Form(target.substr(q + 1));
}

Getenv Env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

ClientOptions NoWait(ManualClock& clock) {
  ClientOptions o;
  o.clock = &clock;
  return o;
}

const char* kTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const char* kSecret = "CANARY-secret~with&odd=chars";

// Microsoft Entra's token endpoint, v2.0 client credentials.
LoopbackHttpServer::Handler Entra(int& issued) {
  return [&issued](const SeenRequest& r) {
    if (r.method != "POST" || Path(r.target) != std::string("/") + kTenant + "/oauth2/v2.0/token") {
      return LoopbackHttpServer::Json(404, R"({"error":"not_found"})");
    }
    auto form = Form(r.body);
    if (form["grant_type"] != "client_credentials" ||
        form["scope"] != "https://management.azure.com/.default" ||
        form["client_id"] != "app-id-1") {
      return LoopbackHttpServer::Json(400, R"({"error":"invalid_request"})");
    }
    if (form["client_secret"] != kSecret) {
      return LoopbackHttpServer::Json(
          401, json{{"error", "invalid_client"},
                    {"error_description",
                     "AADSTS7000215: Invalid client secret provided. Ensure the secret being "
                     "sent is the client secret value, not the ID. Got: " +
                         form["client_secret"]},
                    {"error_codes", {7000215}}}
                   .dump());
    }
    ++issued;
    return LoopbackHttpServer::Json(200, json{{"token_type", "Bearer"},
                                              {"expires_in", 3599},
                                              {"ext_expires_in", 3599},
                                              {"access_token", "az-" + std::to_string(issued)}}
                                             .dump());
  };
}

TEST_CASE("azure auth: client credentials from the environment, cached and refreshed") {
  int issued = 0;
  LoopbackHttpServer entra(Entra(issued));
  ManualClock clock;
  auto client = MakeCurlClient(NoWait(clock));
  AzureAuthOptions options;
  options.clock = &clock;
  std::map<std::string, std::string> vars = {{"AZURE_TENANT_ID", kTenant},
                                             {"AZURE_CLIENT_ID", "app-id-1"},
                                             {"AZURE_CLIENT_SECRET", kSecret}};

  SUBCASE("AZURE_AUTHORITY_HOST") { vars["AZURE_AUTHORITY_HOST"] = entra.base() + "/"; }
  SUBCASE("authEndpoint") {
    vars["AZURE_AUTHORITY_HOST"] = "https://login.example.invalid";  // authEndpoint wins
    options.auth_endpoint = entra.base();
  }
  options.getenv = Env(vars);
  auto source = NewAzureTokenSource(*client, options);
  REQUIRE_MESSAGE(source.ok(), source.status().message());
  Result<std::string> t = (*source)->Token({});
  REQUIRE_MESSAGE(t.ok(), t.status().message());
  CHECK(*t == "az-1");
  SeenRequest seen = entra.requests().at(0);
  CHECK(seen.Header("Content-Type") == "application/x-www-form-urlencoded");
  clock.Advance(std::chrono::seconds(3000));
  CHECK(*(*source)->Token({}) == "az-1");
  CHECK(entra.count() == 1);
  clock.Advance(std::chrono::seconds(400));
  CHECK(*(*source)->Token({}) == "az-2");
  CHECK(entra.count() == 2);
}

TEST_CASE("azure auth: Entra's error becomes a clear kInvalid without the secret") {
  int issued = 0;
  LoopbackHttpServer entra(Entra(issued));
  ManualClock clock;
  auto client = MakeCurlClient(NoWait(clock));
  AzureAuthOptions options;
  options.clock = &clock;
  options.auth_endpoint = entra.base();
  auto source = NewAzureClientSecretTokenSource(
      *client, {kTenant, "app-id-1", "CANARY-wrong-secret"}, options);
  REQUIRE(source.ok());
  Result<std::string> t = (*source)->Token({});
  REQUIRE_FALSE(t.ok());
  CHECK(t.status().code() == Code::kInvalid);
  const std::string& m = t.status().message();
  CHECK(Contains(m, "answered HTTP 401: invalid_client: AADSTS7000215: Invalid client secret"));
  CHECK(Contains(m, "client app-id-1"));
  CHECK(Contains(m, "AZURE_CLIENT_SECRET"));
  CHECK_FALSE(Contains(m, "CANARY"));  // echoed back by the server, redacted
  CHECK(entra.count() == 1);           // 4xx: not retried
}

TEST_CASE("azure auth: Entra down is kUnavailable after the retries, without the secret") {
  LoopbackHttpServer down([](const SeenRequest& r) {
    return LoopbackHttpServer::Json(503,
                                    R"({"error":"temporarily_unavailable","error_description":")" +
                                        Form(r.body)["client_secret"] + "\"}");
  });
  ManualClock clock;
  ClientOptions co = NoWait(clock);
  co.max_attempts = 2;
  auto client = MakeCurlClient(co);
  AzureAuthOptions options;
  options.clock = &clock;
  options.auth_endpoint = down.base();
  auto source = NewAzureClientSecretTokenSource(*client, {kTenant, "app-id-1", kSecret}, options);
  REQUIRE(source.ok());
  Result<std::string> t = (*source)->Token({});
  REQUIRE_FALSE(t.ok());
  CHECK(t.status().code() == Code::kUnavailable);
  CHECK(Contains(t.status().message(), "temporarily_unavailable"));
  CHECK_FALSE(Contains(t.status().message(), "CANARY"));
  CHECK(down.count() == 2);
}

TEST_CASE("azure auth: managed identity through IDENTITY_ENDPOINT and IDENTITY_HEADER") {
  ManualClock clock;
  int issued = 0;
  LoopbackHttpServer identity([&](const SeenRequest& r) {
    auto q = Query(r.target);
    if (Path(r.target) != "/msi/token" || q["api-version"] != "2019-08-01" ||
        q["resource"] != "https://management.azure.com/") {
      return LoopbackHttpServer::Json(400, R"({"statusCode":400,"message":"bad request"})");
    }
    if (r.Header("X-IDENTITY-HEADER") != "CANARY-identity-header") {
      return LoopbackHttpServer::Json(401, R"({"statusCode":401,"message":"wrong header )" +
                                               r.Header("X-IDENTITY-HEADER") + "\"}");
    }
    ++issued;
    return LoopbackHttpServer::Json(200,
                                    json{{"access_token", "mi-" + std::to_string(issued)},
                                         {"expires_on", std::to_string(clock.UnixNow() + 3600)},
                                         {"resource", "https://management.azure.com/"},
                                         {"token_type", "Bearer"},
                                         {"client_id", q["client_id"]}}
                                        .dump());
  });
  auto client = MakeCurlClient(NoWait(clock));
  AzureAuthOptions options;
  options.clock = &clock;
  options.getenv = Env({{"IDENTITY_ENDPOINT", identity.url("/msi/token")},
                        {"IDENTITY_HEADER", "CANARY-identity-header"},
                        {"AZURE_CLIENT_ID", "user-assigned-1"}});
  auto source = NewAzureTokenSource(*client, options);
  REQUIRE(source.ok());
  Result<std::string> t = (*source)->Token({});
  REQUIRE_MESSAGE(t.ok(), t.status().message());
  CHECK(*t == "mi-1");
  CHECK(Query(identity.requests()[0].target)["client_id"] == "user-assigned-1");
  clock.Advance(std::chrono::seconds(3000));
  CHECK(*(*source)->Token({}) == "mi-1");
  clock.Advance(std::chrono::seconds(400));
  CHECK(*(*source)->Token({}) == "mi-2");
  CHECK(identity.count() == 2);

  // The wrong header, echoed by the server, never reaches the message.
  options.getenv =
      Env({{"IDENTITY_ENDPOINT", identity.url("/msi/token")}, {"IDENTITY_HEADER", "CANARY-other"}});
  auto wrong = NewAzureManagedIdentityTokenSource(*client, options);
  Result<std::string> w = wrong->Token({});
  REQUIRE_FALSE(w.ok());
  CHECK(w.status().code() == Code::kInvalid);
  CHECK(Contains(w.status().message(), "wrong header ***"));
  CHECK_FALSE(Contains(w.status().message(), "CANARY"));
}

TEST_CASE("azure auth: managed identity through the IMDS (authEndpoint)") {
  ManualClock clock;
  LoopbackHttpServer imds([&](const SeenRequest& r) {
    auto q = Query(r.target);
    if (Path(r.target) != "/metadata/identity/oauth2/token" || q["api-version"] != "2018-02-01" ||
        q["resource"] != "https://management.azure.com/" || r.Header("Metadata") != "true") {
      return LoopbackHttpServer::Json(
          400,
          R"({"error":"invalid_request","error_description":"Required metadata header not specified"})");
    }
    return LoopbackHttpServer::Json(200, json{{"access_token", "imds-token"},
                                              {"expires_in", "3599"},
                                              {"expires_on", "1796130000"},
                                              {"token_type", "Bearer"}}
                                             .dump());
  });
  auto client = MakeCurlClient(NoWait(clock));
  AzureAuthOptions options;
  options.clock = &clock;
  options.auth_endpoint = imds.base();
  options.getenv = Env({});
  auto source = NewAzureTokenSource(*client, options);
  REQUIRE(source.ok());
  Result<std::string> t = (*source)->Token({});
  REQUIRE_MESSAGE(t.ok(), t.status().message());
  CHECK(*t == "imds-token");
  CHECK(*(*source)->Token({}) == "imds-token");
  CHECK(imds.count() == 1);
}

TEST_CASE("azure auth: missing or partial credentials name the variables") {
  ManualClock clock;
  auto client = MakeCurlClient(NoWait(clock));  // no plain-http allowance: nothing is sent
  AzureAuthOptions options;
  options.clock = &clock;

  SUBCASE("only AZURE_TENANT_ID") {
    options.getenv = Env({{"AZURE_TENANT_ID", kTenant}});
    auto source = NewAzureTokenSource(*client, options);
    REQUIRE_FALSE(source.ok());
    CHECK(source.status().code() == Code::kInvalid);
    CHECK(source.status().message().starts_with(
        "incomplete Azure client credentials: set AZURE_CLIENT_ID and AZURE_CLIENT_SECRET too"));
  }
  SUBCASE("a secret without a tenant") {
    options.getenv = Env({{"AZURE_CLIENT_ID", "a"}, {"AZURE_CLIENT_SECRET", "CANARY"}});
    auto source = NewAzureTokenSource(*client, options);
    REQUIRE_FALSE(source.ok());
    CHECK(Contains(source.status().message(), "set AZURE_TENANT_ID too"));
    CHECK_FALSE(Contains(source.status().message(), "CANARY"));
  }
  SUBCASE("a tenant that would change the path") {
    options.getenv = Env(
        {{"AZURE_TENANT_ID", "../evil"}, {"AZURE_CLIENT_ID", "a"}, {"AZURE_CLIENT_SECRET", "s"}});
    auto source = NewAzureTokenSource(*client, options);
    REQUIRE_FALSE(source.ok());
    CHECK(Contains(source.status().message(), "AZURE_TENANT_ID '../evil' is not a tenant ID"));
  }
  SUBCASE("nothing at all, and no IMDS") {
    options.getenv = Env({});
    auto source = NewAzureTokenSource(*client, options);
    REQUIRE(source.ok());
    Result<std::string> t = (*source)->Token({});
    REQUIRE_FALSE(t.ok());
    CHECK(t.status().code() == Code::kInvalid);
    CHECK(t.status().message().starts_with(
        "no Azure credentials: set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (a "
        "service principal), or run with a managed identity (IDENTITY_ENDPOINT and "
        "IDENTITY_HEADER, or the instance metadata service at 169.254.169.254)"));
  }
}

}  // namespace
}  // namespace reconcile::http
