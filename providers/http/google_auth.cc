#include "http/google_auth.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <fstream>
#include <sstream>
#include <tuple>

#include <nlohmann/json.hpp>

#include "http/token_cache.h"

namespace reconcile::http {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxKeyFileBytes = 1024 * 1024;
constexpr const char* kGoogleTokenUri = "https://oauth2.googleapis.com/token";
constexpr const char* kGoogleMetadataBase = "http://metadata.google.internal";

// Never prompts for a passphrase: an encrypted key fails to load.
int NoPassphrase(char*, int, int, void*) { return 0; }

Result<std::string> SignRs256(const std::string& pem, std::string_view data,
                              const std::string& source) {
  const Status bad =
      Status::Invalid(source + ": field 'private_key' is not an unencrypted PEM RSA private key");
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  if (!bio) return Status::Internal("OpenSSL could not allocate a buffer");
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr), EVP_PKEY_free);
  if (!pkey || EVP_PKEY_get_base_id(pkey.get()) != EVP_PKEY_RSA) {
    ERR_clear_error();
    return bad;
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(data.data()),
                     data.size()) != 1) {
    ERR_clear_error();
    return bad;
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1) {
    ERR_clear_error();
    return bad;
  }
  sig.resize(len);
  return sig;
}

class ServiceAccountSource final : public TokenSource {
 public:
  ServiceAccountSource(Client& client, GoogleServiceAccountKey key, GoogleAuthOptions options)
      : client_(client),
        key_(std::move(key)),
        options_(std::move(options)),
        cache_(options_.clock) {
    token_url_ = options_.auth_endpoint.empty() ? key_.token_uri
                                                : TrimSlashes(options_.auth_endpoint) + "/token";
  }

  Result<std::string> Token(std::stop_token stop) override {
    return cache_.Get([&]() -> Result<FetchedToken> {
      const std::int64_t now = UnixNow(cache_.clock());
      Result<std::string> assertion = MakeGoogleJwtAssertion(key_, token_url_, options_.scope, now);
      if (!assertion.ok()) return assertion.status();
      Request req;
      req.method = "POST";
      req.url = token_url_;
      req.headers = {{"Content-Type", "application/x-www-form-urlencoded"},
                     {"Accept", "application/json"}};
      req.body = "grant_type=" + FormEncode("urn:ietf:params:oauth:grant-type:jwt-bearer") +
                 "&assertion=" + FormEncode(*assertion);
      const std::string what = "the Google token endpoint " + UrlForMessage(token_url_) +
                               " (service account " + key_.client_email + " from " + key_.source +
                               ")";
      Result<Response> res = client_.Send(req, stop);
      if (!res.ok()) {
        return Status(res.status().code(),
                      Redact(what + ": " + res.status().message(), {*assertion}));
      }
      return ReadTokenAnswer(*res, what, now, {*assertion, key_.private_key});
    });
  }

 private:
  Client& client_;
  GoogleServiceAccountKey key_;
  GoogleAuthOptions options_;
  TokenCache cache_;
  std::string token_url_;
};

class MetadataSource final : public TokenSource {
 public:
  MetadataSource(Client& client, GoogleAuthOptions options, bool by_default)
      : client_(client),
        options_(std::move(options)),
        by_default_(by_default),
        cache_(options_.clock) {
    std::string base = kGoogleMetadataBase;
    if (!options_.auth_endpoint.empty()) {
      base = TrimSlashes(options_.auth_endpoint);
    } else if (auto host = options_.getenv ? options_.getenv("GCE_METADATA_HOST") : std::nullopt) {
      base = "http://" + TrimSlashes(*host);
    }
    url_ = base + kGoogleMetadataTokenPath;
  }

  Result<std::string> Token(std::stop_token stop) override {
    return cache_.Get([&]() -> Result<FetchedToken> {
      Request req;
      req.method = "GET";
      req.url = url_;
      req.headers = {{"Metadata-Flavor", "Google"}};
      req.timeout = std::chrono::seconds(5);
      const std::string what = "the Google metadata server " + UrlForMessage(url_);
      Result<Response> res = client_.Send(req, stop);
      if (!res.ok()) {
        if (by_default_ && res.status().code() != Code::kCancelled) {
          return Status::Invalid(
              "no Google credentials: set GOOGLE_APPLICATION_CREDENTIALS to the path of a "
              "service-account JSON key file, or run on Google Cloud where the metadata server "
              "(metadata.google.internal, or GCE_METADATA_HOST) answers; " +
              what + ": " + res.status().message());
        }
        return Status(res.status().code(), what + ": " + res.status().message());
      }
      if (res->status >= 200 && res->status < 300 && res->Header("Metadata-Flavor") != "Google") {
        return Status::Failed(what +
                              " answered without 'Metadata-Flavor: Google'; it is not a "
                              "Google metadata server");
      }
      return ReadTokenAnswer(*res, what, UnixNow(cache_.clock()), {});
    });
  }

 private:
  Client& client_;
  GoogleAuthOptions options_;
  bool by_default_;
  TokenCache cache_;
  std::string url_;
};

}  // namespace

Result<GoogleServiceAccountKey> ParseGoogleServiceAccountKey(std::string_view text,
                                                             const std::string& source) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    return Status::Invalid(source + ": not a JSON object (expected a Google service-account key)");
  }
  auto field = [&](const char* name, bool required, std::string& out) -> Status {
    auto it = j.find(name);
    if (it == j.end() || it->is_null()) {
      if (required) {
        return Status::Invalid(source + ": field '" + name +
                               "' is missing (expected a Google service-account key)");
      }
      return Status::Ok();
    }
    if (!it->is_string() || (required && it->get_ref<const std::string&>().empty())) {
      return Status::Invalid(source + ": field '" + name + "' must be a non-empty string");
    }
    out = it->get<std::string>();
    return Status::Ok();
  };
  std::string type;
  if (Status s = field("type", true, type); !s.ok()) return s;
  if (type != "service_account") {
    return Status::Invalid(source + ": field 'type' is '" + Printable(type, 60) +
                           "', not 'service_account'; reconcile takes only service-account keys");
  }
  GoogleServiceAccountKey key;
  key.source = source;
  for (auto [name, required, out] : {std::tuple{"client_email", true, &key.client_email},
                                     std::tuple{"private_key", true, &key.private_key},
                                     std::tuple{"private_key_id", false, &key.private_key_id},
                                     std::tuple{"token_uri", false, &key.token_uri},
                                     std::tuple{"project_id", false, &key.project_id}}) {
    if (Status s = field(name, required, *out); !s.ok()) return s;
  }
  if (key.private_key.find("-----BEGIN") == std::string::npos) {
    return Status::Invalid(source + ": field 'private_key' is not a PEM private key");
  }
  if (key.token_uri.empty()) key.token_uri = kGoogleTokenUri;
  if (!key.token_uri.starts_with("https://") && !key.token_uri.starts_with("http://")) {
    return Status::Invalid(source + ": field 'token_uri' is not an http(s) URL");
  }
  return key;
}

Result<GoogleServiceAccountKey> ReadGoogleServiceAccountKey(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Invalid(path + ": cannot read the Google service-account key file");
  std::string text;
  text.resize(kMaxKeyFileBytes + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > kMaxKeyFileBytes) {
    return Status::Invalid(path + ": larger than 1 MiB; not a Google service-account key");
  }
  return ParseGoogleServiceAccountKey(text, path);
}

Result<std::string> MakeGoogleJwtAssertion(const GoogleServiceAccountKey& key,
                                           const std::string& audience, const std::string& scope,
                                           std::int64_t now_unix) {
  json header = {{"alg", "RS256"}, {"typ", "JWT"}};
  if (!key.private_key_id.empty()) header["kid"] = key.private_key_id;
  json claims = {{"iss", key.client_email},
                 {"scope", scope},
                 {"aud", audience},
                 {"iat", now_unix},
                 {"exp", now_unix + 3600}};
  std::string signing_input = Base64Url(header.dump()) + "." + Base64Url(claims.dump());
  Result<std::string> sig = SignRs256(key.private_key, signing_input, key.source);
  if (!sig.ok()) return sig.status();
  return signing_input + "." + Base64Url(*sig);
}

std::unique_ptr<TokenSource> NewGoogleServiceAccountTokenSource(Client& client,
                                                                GoogleServiceAccountKey key,
                                                                GoogleAuthOptions options) {
  return std::make_unique<ServiceAccountSource>(client, std::move(key), std::move(options));
}

std::unique_ptr<TokenSource> NewGoogleMetadataTokenSource(Client& client,
                                                          GoogleAuthOptions options) {
  return std::make_unique<MetadataSource>(client, std::move(options), false);
}

Result<std::unique_ptr<TokenSource>> NewGoogleTokenSource(Client& client,
                                                          GoogleAuthOptions options) {
  std::string path = options.credentials_file;
  std::string from = "the Target's credentials file";
  if (path.empty() && options.getenv) {
    if (auto env = options.getenv("GOOGLE_APPLICATION_CREDENTIALS")) {
      path = *env;
      from = "GOOGLE_APPLICATION_CREDENTIALS";
    }
  }
  if (!path.empty()) {
    Result<GoogleServiceAccountKey> key = ReadGoogleServiceAccountKey(path);
    if (!key.ok()) return key.status().WithContext(from);
    return std::unique_ptr<TokenSource>(
        NewGoogleServiceAccountTokenSource(client, std::move(*key), std::move(options)));
  }
  bool by_default =
      options.auth_endpoint.empty() && !(options.getenv && options.getenv("GCE_METADATA_HOST"));
  return std::unique_ptr<TokenSource>(
      std::make_unique<MetadataSource>(client, std::move(options), by_default));
}

}  // namespace reconcile::http
