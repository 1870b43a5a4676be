#include "http/azure_auth.h"

#include <algorithm>
#include <cctype>
#include <vector>

#include "http/token_cache.h"

namespace reconcile::http {
namespace {

constexpr const char* kAzureAuthority = "https://login.microsoftonline.com";
constexpr const char* kAzureImdsBase = "http://169.254.169.254";
constexpr const char* kImdsPath = "/metadata/identity/oauth2/token";

bool IsTenant(const std::string& t) {
  return !t.empty() && t.size() <= 256 && std::all_of(t.begin(), t.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
  });
}

std::string Authority(const AzureAuthOptions& options) {
  if (!options.auth_endpoint.empty()) return TrimSlashes(options.auth_endpoint);
  if (options.getenv) {
    if (auto host = options.getenv("AZURE_AUTHORITY_HOST")) {
      std::string h = TrimSlashes(*host);
      if (h.find("://") == std::string::npos) h = "https://" + h;
      return h;
    }
  }
  return kAzureAuthority;
}

class ClientSecretSource final : public TokenSource {
 public:
  ClientSecretSource(Client& client, AzureClientSecretCredentials creds, AzureAuthOptions options)
      : client_(client), creds_(std::move(creds)), cache_(options.clock) {
    url_ = Authority(options) + "/" + creds_.tenant_id + "/oauth2/v2.0/token";
  }

  Result<std::string> Token(std::stop_token stop) override {
    return cache_.Get([&]() -> Result<FetchedToken> {
      Request req;
      req.method = "POST";
      req.url = url_;
      req.headers = {{"Content-Type", "application/x-www-form-urlencoded"},
                     {"Accept", "application/json"}};
      req.body = "grant_type=client_credentials&client_id=" + FormEncode(creds_.client_id) +
                 "&client_secret=" + FormEncode(creds_.client_secret) +
                 "&scope=" + FormEncode(kAzureManagementScope);
      const std::string what = "Microsoft Entra (" + UrlForMessage(url_) + ", client " +
                               Printable(creds_.client_id, 80) + ")";
      const std::string encoded = FormEncode(creds_.client_secret);
      Result<Response> res = client_.Send(req, stop);
      if (!res.ok()) {
        return Status(res.status().code(), Redact(what + ": " + res.status().message(),
                                                  {creds_.client_secret, encoded}));
      }
      Result<FetchedToken> token =
          ReadTokenAnswer(*res, what, UnixNow(cache_.clock()), {creds_.client_secret, encoded});
      if (!token.ok() && token.status().code() == Code::kInvalid) {
        return Status::Invalid(token.status().message() +
                               " (check AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET)");
      }
      return token;
    });
  }

 private:
  Client& client_;
  AzureClientSecretCredentials creds_;
  TokenCache cache_;
  std::string url_;
};

class ManagedIdentitySource final : public TokenSource {
 public:
  ManagedIdentitySource(Client& client, AzureAuthOptions options)
      : client_(client), cache_(options.clock) {
    auto env = [&](const char* name) -> std::optional<std::string> {
      return options.getenv ? options.getenv(name) : std::nullopt;
    };
    std::string client_id;
    if (auto id = env("AZURE_CLIENT_ID")) client_id = "&client_id=" + FormEncode(*id);
    auto endpoint = env("IDENTITY_ENDPOINT");
    auto header = env("IDENTITY_HEADER");
    if (options.auth_endpoint.empty() && endpoint && header) {
      url_ = *endpoint + (endpoint->find('?') == std::string::npos ? "?" : "&") +
             "api-version=2019-08-01&resource=" + FormEncode(kAzureManagementResource) + client_id;
      headers_ = {{"X-IDENTITY-HEADER", *header}};
      secret_ = *header;
      what_ = "the managed identity endpoint " + UrlForMessage(url_) + " (IDENTITY_ENDPOINT)";
    } else {
      by_default_ = options.auth_endpoint.empty();
      std::string base =
          options.auth_endpoint.empty() ? kAzureImdsBase : TrimSlashes(options.auth_endpoint);
      url_ = base + kImdsPath +
             "?api-version=2018-02-01&resource=" + FormEncode(kAzureManagementResource) + client_id;
      headers_ = {{"Metadata", "true"}};
      what_ = "the Azure instance metadata service " + UrlForMessage(url_);
    }
  }

  Result<std::string> Token(std::stop_token stop) override {
    return cache_.Get([&]() -> Result<FetchedToken> {
      Request req;
      req.method = "GET";
      req.url = url_;
      req.headers = headers_;
      req.timeout = std::chrono::seconds(5);
      Result<Response> res = client_.Send(req, stop);
      if (!res.ok()) {
        std::string message = Redact(what_ + ": " + res.status().message(), {secret_});
        if (by_default_ && res.status().code() != Code::kCancelled) {
          return Status::Invalid(
              "no Azure credentials: set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET "
              "(a service principal), or run with a managed identity (IDENTITY_ENDPOINT and "
              "IDENTITY_HEADER, or the instance metadata service at 169.254.169.254); " +
              message);
        }
        return Status(res.status().code(), message);
      }
      return ReadTokenAnswer(*res, what_, UnixNow(cache_.clock()), {secret_});
    });
  }

 private:
  Client& client_;
  TokenCache cache_;
  std::string url_;
  std::vector<std::pair<std::string, std::string>> headers_;
  std::string secret_;
  std::string what_;
  bool by_default_ = false;
};

}  // namespace

Result<std::unique_ptr<TokenSource>> NewAzureClientSecretTokenSource(
    Client& client, AzureClientSecretCredentials credentials, AzureAuthOptions options) {
  if (!IsTenant(credentials.tenant_id)) {
    return Status::Invalid("AZURE_TENANT_ID '" + Printable(credentials.tenant_id, 80) +
                           "' is not a tenant ID or domain (letters, digits, '-', '.', '_')");
  }
  if (credentials.client_id.empty() || credentials.client_secret.empty()) {
    return Status::Invalid("Azure client credentials need AZURE_CLIENT_ID and AZURE_CLIENT_SECRET");
  }
  return std::unique_ptr<TokenSource>(
      std::make_unique<ClientSecretSource>(client, std::move(credentials), std::move(options)));
}

std::unique_ptr<TokenSource> NewAzureManagedIdentityTokenSource(Client& client,
                                                                AzureAuthOptions options) {
  return std::make_unique<ManagedIdentitySource>(client, std::move(options));
}

Result<std::unique_ptr<TokenSource>> NewAzureTokenSource(Client& client, AzureAuthOptions options) {
  auto env = [&](const char* name) -> std::optional<std::string> {
    return options.getenv ? options.getenv(name) : std::nullopt;
  };
  auto tenant = env("AZURE_TENANT_ID");
  auto id = env("AZURE_CLIENT_ID");
  auto secret = env("AZURE_CLIENT_SECRET");
  if (tenant || secret) {
    std::vector<std::string> missing;
    if (!tenant) missing.push_back("AZURE_TENANT_ID");
    if (!id) missing.push_back("AZURE_CLIENT_ID");
    if (!secret) missing.push_back("AZURE_CLIENT_SECRET");
    if (!missing.empty()) {
      std::string names;
      for (const std::string& m : missing) names += (names.empty() ? "" : " and ") + m;
      return Status::Invalid(
          "incomplete Azure client credentials: set " + names +
          " too (a service principal needs AZURE_TENANT_ID, AZURE_CLIENT_ID and "
          "AZURE_CLIENT_SECRET), or unset AZURE_TENANT_ID and AZURE_CLIENT_SECRET to use a "
          "managed identity");
    }
    return NewAzureClientSecretTokenSource(client, {*tenant, *id, *secret}, std::move(options));
  }
  return std::unique_ptr<TokenSource>(
      NewAzureManagedIdentityTokenSource(client, std::move(options)));
}

}  // namespace reconcile::http
