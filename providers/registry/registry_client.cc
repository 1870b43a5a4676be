#include "registry/registry_client.h"

#include <openssl/evp.h>

#include <functional>
#include <map>
#include <optional>
#include <utility>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

namespace reconcile::registry {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;

struct Url {
  bool tls = true;
  std::string host;  // without brackets
  std::string port;
  std::string target;  // path?query
  std::string authority() const { return host + ":" + port; }
};

std::optional<Url> ParseUrl(const std::string& text) {
  Url u;
  std::string rest;
  if (text.rfind("https://", 0) == 0) {
    rest = text.substr(8);
  } else if (text.rfind("http://", 0) == 0) {
    u.tls = false;
    rest = text.substr(7);
  } else {
    return std::nullopt;
  }
  std::size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  u.target = slash == std::string::npos ? "/" : rest.substr(slash);
  if (!authority.empty() && authority[0] == '[') {
    std::size_t close = authority.find(']');
    if (close == std::string::npos) return std::nullopt;
    u.host = authority.substr(1, close - 1);
    u.port = close + 2 <= authority.size() && authority[close + 1] == ':'
                 ? authority.substr(close + 2)
                 : "";
  } else {
    std::size_t colon = authority.rfind(':');
    u.host = authority.substr(0, colon);
    if (colon != std::string::npos) u.port = authority.substr(colon + 1);
  }
  if (u.port.empty()) u.port = u.tls ? "443" : "80";
  if (u.host.empty()) return std::nullopt;
  return u;
}

bool IsLoopback(const std::string& host) {
  if (host == "localhost") return true;
  error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  return !ec && addr.is_loopback();
}

std::string Base64(const std::string& data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()),
                          static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string UrlEncode(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

struct Response {
  int status = 0;
  std::string www_authenticate;
  std::string body;
};

// One HTTP exchange with a deadline (a private io_context run for at most
// `timeout`, as in the Docker client).
Result<Response> Exchange(const Url& url, const std::string& method,
                          const std::vector<std::pair<std::string, std::string>>& headers,
                          const RegistryClientOptions& options) {
  asio::io_context ioc;
  http::request<http::empty_body> req;
  req.method_string(method);
  req.target(url.target);
  req.version(11);
  req.set(http::field::host, url.port == (url.tls ? "443" : "80") ? url.host : url.authority());
  req.set(http::field::user_agent, "reconcile");
  req.set(http::field::connection, "close");
  for (const auto& [k, v] : headers) req.set(k, v);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(1024 * 1024);
  if (method == "HEAD") parser.skip(true);
  bool finished = false;
  error_code result;
  const char* stage = "connect";
  auto done = [&](error_code e, const char* s) {
    finished = true;
    result = e;
    stage = s;
  };
  asio::ip::tcp::resolver resolver(ioc);
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  std::optional<asio::ssl::stream<asio::ip::tcp::socket>> tls;
  std::optional<asio::ip::tcp::socket> plain;
  if (url.tls) {
    error_code ec;
    if (!options.ca_file.empty()) {
      ctx.load_verify_file(options.ca_file, ec);
    } else {
      ctx.set_default_verify_paths(ec);
    }
    if (ec) return Status::Invalid("registry: cannot load CA certificates: " + ec.message());
    ctx.set_verify_mode(asio::ssl::verify_peer);
    tls.emplace(ioc, ctx);
    tls->set_verify_callback(asio::ssl::host_name_verification(url.host));
    SSL_set_tlsext_host_name(tls->native_handle(), url.host.c_str());
  } else {
    plain.emplace(ioc);
  }
  auto exchange = [&](auto& stream) {
    http::async_write(stream, req, [&](error_code e, std::size_t) {
      if (e) return done(e, "write");
      http::async_read(stream, buffer, parser,
                       [&](error_code e2, std::size_t) { done(e2, "read"); });
    });
  };
  resolver.async_resolve(
      url.host, url.port, [&](error_code e, asio::ip::tcp::resolver::results_type rs) {
        if (e) return done(e, "resolve");
        auto& socket = url.tls ? tls->next_layer() : *plain;
        asio::async_connect(socket, rs, [&](error_code e2, const asio::ip::tcp::endpoint&) {
          if (e2) return done(e2, "connect");
          if (!url.tls) return exchange(*plain);
          tls->async_handshake(asio::ssl::stream_base::client, [&](error_code e3) {
            if (e3) return done(e3, "handshake");
            exchange(*tls);
          });
        });
      });
  ioc.run_for(options.timeout);
  if (!finished) {
    resolver.cancel();
    error_code ignored;
    (url.tls ? tls->next_layer() : *plain).close(ignored);
    ioc.restart();
    ioc.run();
    result = asio::error::timed_out;
  }
  if (result == asio::ssl::error::stream_truncated && parser.is_done()) result = {};
  if (result) {
    return Status::Unavailable(url.authority() + ": " + stage + ": " +
                               (result == asio::error::timed_out ? "timed out" : result.message()));
  }
  Response r;
  r.status = static_cast<int>(parser.get().result_int());
  r.www_authenticate = std::string(parser.get()[http::field::www_authenticate]);
  r.body = parser.get().body();
  return r;
}

class Client : public RegistryClient {
 public:
  explicit Client(RegistryClientOptions options) : options_(std::move(options)) {}

  Result<bool> HasTag(const Registry& registry, const std::string& tag,
                      const std::optional<RegistryCredentials>& credentials) override {
    const std::string who = "registry '" + registry.name + "' (" + registry.url + ")";
    auto url = ParseUrl((registry.insecure ? "http://" : "https://") + registry.url + "/v2/" +
                        registry.repository + "/manifests/" + tag);
    if (!url) return Status::Invalid(who + ": cannot make a URL of spec.url");
    if (registry.insecure && credentials && !IsLoopback(url->host)) {
      return Status::Invalid(who +
                             ": insecure (plain HTTP) registries get credentials only on "
                             "loopback; use HTTPS");
    }
    const std::string refused =
        credentials
            ? who + " refused the credentials from " + credentials->variables
            : who + " requires authentication: set spec.credentialsEnvPrefix on Registry '" +
                  registry.name + "' and <PREFIX>_USERNAME / <PREFIX>_PASSWORD";
    std::vector<std::pair<std::string, std::string>> headers = {
        {"Accept",
         "application/vnd.docker.distribution.manifest.v2+json, "
         "application/vnd.docker.distribution.manifest.list.v2+json, "
         "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"}};
    auto first = Exchange(*url, "HEAD", headers, options_);
    if (!first.ok()) return first.status().WithContext(who);
    if (first->status != 401) return Answer(who, *first);

    Challenge challenge = ParseChallenge(first->www_authenticate);
    if (challenge.scheme == "basic") {
      if (!credentials) return Status::Invalid(refused);
      headers.emplace_back("Authorization",
                           "Basic " + Base64(credentials->username + ":" + credentials->password));
    } else if (challenge.scheme == "bearer") {
      auto token = Token(who, challenge, registry, credentials, refused);
      if (!token.ok()) return token.status();
      headers.emplace_back("Authorization", "Bearer " + *token);
    } else {
      return Status::Invalid(who + ": answered 401 with an unknown challenge '" +
                             first->www_authenticate.substr(0, 80) + "'");
    }
    auto second = Exchange(*url, "HEAD", headers, options_);
    if (!second.ok()) return second.status().WithContext(who);
    if (second->status == 401 || second->status == 403) return Status::Invalid(refused);
    return Answer(who, *second);
  }

 private:
  static Result<bool> Answer(const std::string& who, const Response& r) {
    if (r.status >= 200 && r.status < 300) return true;
    if (r.status == 404) return false;
    if (r.status == 403) return Status::Invalid(who + ": access denied (403)");
    if (r.status == 429 || r.status >= 500) {
      return Status::Unavailable(who + ": answered " + std::to_string(r.status));
    }
    return Status::Failed(who + ": HEAD manifests answered " + std::to_string(r.status));
  }

  Result<std::string> Token(const std::string& who, const Challenge& challenge,
                            const Registry& registry,
                            const std::optional<RegistryCredentials>& credentials,
                            const std::string& refused) {
    auto realm_it = challenge.params.find("realm");
    if (realm_it == challenge.params.end()) {
      return Status::Invalid(who + ": Bearer challenge without a realm");
    }
    std::string target = realm_it->second;
    std::string sep = target.find('?') == std::string::npos ? "?" : "&";
    if (auto s = challenge.params.find("service"); s != challenge.params.end()) {
      target += sep + "service=" + UrlEncode(s->second);
      sep = "&";
    }
    auto scope = challenge.params.find("scope");
    target +=
        sep + "scope=" +
        UrlEncode(scope != challenge.params.end() ? scope->second
                                                  : "repository:" + registry.repository + ":pull");
    auto realm = ParseUrl(target);
    if (!realm)
      return Status::Invalid(who + ": the token realm '" + realm_it->second + "' is not a URL");
    if (!realm->tls && !IsLoopback(realm->host)) {
      return Status::Invalid(who + ": the token realm " + realm->authority() +
                             " is plain HTTP and not loopback: refused");
    }
    std::vector<std::pair<std::string, std::string>> headers;
    if (credentials) {
      headers.emplace_back("Authorization",
                           "Basic " + Base64(credentials->username + ":" + credentials->password));
    }
    auto r = Exchange(*realm, "GET", headers, options_);
    if (!r.ok()) return r.status().WithContext(who + ": token realm");
    if (r->status == 401 || r->status == 403) return Status::Invalid(refused);
    if (r->status != 200) {
      return r->status >= 500
                 ? Status::Unavailable(who + ": token realm answered " + std::to_string(r->status))
                 : Status::Failed(who + ": token realm answered " + std::to_string(r->status));
    }
    auto j = nlohmann::json::parse(r->body, nullptr, /*allow_exceptions=*/false);
    for (const char* key : {"token", "access_token"}) {
      if (j.is_object() && j.contains(key) && j[key].is_string() &&
          !j[key].get<std::string>().empty()) {
        return j[key].get<std::string>();
      }
    }
    return Status::Failed(who + ": the token realm answered without a token");
  }

  RegistryClientOptions options_;
};

}  // namespace

Challenge ParseChallenge(const std::string& header) {
  Challenge c;
  std::size_t i = 0;
  while (i < header.size() && header[i] == ' ') ++i;
  std::size_t space = header.find(' ', i);
  std::string scheme = header.substr(i, space == std::string::npos ? std::string::npos : space - i);
  for (char& ch : scheme) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  c.scheme = scheme;
  if (space == std::string::npos) return c;
  i = space + 1;
  while (i < header.size()) {
    while (i < header.size() && (header[i] == ' ' || header[i] == ',')) ++i;
    std::size_t eq = header.find('=', i);
    if (eq == std::string::npos) break;
    std::string key = header.substr(i, eq - i);
    for (char& ch : key) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    i = eq + 1;
    std::string value;
    if (i < header.size() && header[i] == '"') {
      ++i;
      while (i < header.size() && header[i] != '"') {
        if (header[i] == '\\' && i + 1 < header.size()) ++i;
        value += header[i++];
      }
      ++i;
    } else {
      while (i < header.size() && header[i] != ',') value += header[i++];
    }
    c.params[key] = value;
  }
  return c;
}

std::unique_ptr<RegistryClient> NewRegistryClient(RegistryClientOptions options) {
  return std::make_unique<Client>(std::move(options));
}

}  // namespace reconcile::registry
