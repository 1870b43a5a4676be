#include "docker/engine_client.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <sstream>
#include <utility>

#include <openssl/evp.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

namespace reconcile::docker {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;

using Request = http::request<http::string_body>;
using Parser = http::response_parser<http::string_body>;
using Done = std::function<void(error_code, const char* stage)>;

// Shared state of one exchange, driven by a private io_context so that a
// synchronous call can have a deadline (Asio's blocking calls cannot).
struct Exchange {
  asio::io_context ioc;
  bool finished = false;
  error_code ec;
  const char* stage = "connect";
  Request req;
  beast::flat_buffer buffer;
  Parser parser;
  // A streamed request body (HttpRequest::body_source) and, when it failed,
  // its status.
  std::function<Result<std::string_view>()> source;
  std::optional<http::request_serializer<http::string_body>> serializer;
  Status source_status;

  Done Finish() {
    return [this](error_code e, const char* s) {
      finished = true;
      ec = e;
      stage = s;
    };
  }

  // Runs until done or until `timeout`; on timeout calls `abort` (closing the
  // socket), drains the cancelled handlers and reports a timeout.
  void Run(std::chrono::milliseconds timeout, const std::function<void()>& abort) {
    ioc.run_for(timeout);
    if (!finished) {
      abort();
      ioc.restart();
      ioc.run();
      finished = true;
      ec = asio::error::timed_out;
    }
  }
};

template <typename Stream>
void ReadResponse(Stream& stream, Exchange& x, Done done) {
  http::async_read(stream, x.buffer, x.parser,
                   [done](error_code ec, std::size_t) { done(ec, "read"); });
}

// Sends the streamed body piece by piece, each once the previous one is
// written, then reads the response.
template <typename Stream>
void WriteBody(Stream& stream, Exchange& x, Done done) {
  Result<std::string_view> piece = x.source();
  if (!piece.ok()) {
    x.source_status = piece.status();
    return done(asio::error::operation_aborted, "write");
  }
  if (piece->empty()) return ReadResponse(stream, x, done);
  asio::async_write(stream, asio::buffer(piece->data(), piece->size()),
                    [&stream, &x, done](error_code ec, std::size_t) {
                      if (ec) return done(ec, "write");
                      WriteBody(stream, x, done);
                    });
}

template <typename Stream>
void WriteThenRead(Stream& stream, Exchange& x, Done done) {
  if (x.source) {
    x.serializer.emplace(x.req);
    http::async_write_header(stream, *x.serializer,
                             [&stream, &x, done](error_code ec, std::size_t) {
                               if (ec) return done(ec, "write");
                               WriteBody(stream, x, done);
                             });
    return;
  }
  http::async_write(stream, x.req, [&stream, &x, done](error_code ec, std::size_t) {
    if (ec) return done(ec, "write");
    ReadResponse(stream, x, done);
  });
}

Result<HttpResponse> Outcome(Exchange& x, const std::string& where, std::size_t body_limit) {
  if (!x.source_status.ok()) return x.source_status;
  if (x.ec) {
    std::string what = x.ec.message();
    if (x.ec == asio::error::timed_out) what = "timed out";
    if (x.ec == http::error::body_limit) {
      what = "response body exceeds " + std::to_string(body_limit) + " bytes";
    }
    return Status::Unavailable(where + ": " + x.stage + ": " + what);
  }
  HttpResponse r;
  r.status = static_cast<int>(x.parser.get().result_int());
  auto retry_after = x.parser.get().find(http::field::retry_after);
  if (retry_after != x.parser.get().end()) r.retry_after = std::string(retry_after->value());
  r.body = std::move(x.parser.get().body());
  return r;
}

void Prepare(Exchange& x, const HttpRequest& request, const std::string& host_header,
             std::size_t body_limit) {
  x.req.method_string(request.method);
  x.req.target(request.target);
  x.req.version(11);
  x.req.set(http::field::host, host_header);
  x.req.set(http::field::user_agent, "reconcile");
  x.req.set(http::field::connection, "close");
  if (!request.body.empty() || request.body_source) {
    x.req.set(http::field::content_type,
              request.content_type.empty() ? "application/json" : request.content_type);
    x.req.body() = request.body;
  }
  for (const auto& [name, value] : request.headers) x.req.set(name, value);
  if (request.body_source) {
    x.source = request.body_source;
    x.req.content_length(request.body_size);
  } else {
    x.req.prepare_payload();
  }
  x.parser.body_limit(body_limit);
  x.parser.header_limit(64 * 1024);
}

bool IsLoopback(const std::string& host) {
  if (host == "localhost") return true;
  error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  return !ec && addr.is_loopback();
}

class UnixTransport : public HttpTransport {
 public:
  UnixTransport(std::string path, std::size_t limit) : path_(std::move(path)), limit_(limit) {}

  Result<HttpResponse> RoundTrip(const HttpRequest& request) override {
    Exchange x;
    Prepare(x, request, "docker", limit_);
    asio::local::stream_protocol::socket socket(x.ioc);
    auto done = x.Finish();
    socket.async_connect(asio::local::stream_protocol::endpoint(path_), [&](error_code ec) {
      if (ec) return done(ec, "connect");
      WriteThenRead(socket, x, done);
    });
    x.Run(request.timeout, [&] {
      error_code ignored;
      socket.close(ignored);
    });
    return Outcome(x, "unix://" + path_, limit_);
  }

 private:
  std::string path_;
  std::size_t limit_;
};

class TcpTransport : public HttpTransport {
 public:
  TcpTransport(std::string host, std::string port, std::size_t limit)
      : host_(std::move(host)), port_(std::move(port)), limit_(limit) {}

  Result<HttpResponse> RoundTrip(const HttpRequest& request) override {
    Exchange x;
    Prepare(x, request, host_, limit_);
    asio::ip::tcp::resolver resolver(x.ioc);
    asio::ip::tcp::socket socket(x.ioc);
    auto done = x.Finish();
    resolver.async_resolve(
        host_, port_, [&](error_code ec, asio::ip::tcp::resolver::results_type results) {
          if (ec) return done(ec, "resolve");
          asio::async_connect(socket, results, [&](error_code ec2, const asio::ip::tcp::endpoint&) {
            if (ec2) return done(ec2, "connect");
            WriteThenRead(socket, x, done);
          });
        });
    x.Run(request.timeout, [&] {
      resolver.cancel();
      error_code ignored;
      socket.close(ignored);
    });
    return Outcome(x, "tcp://" + host_ + ":" + port_, limit_);
  }

 private:
  std::string host_, port_;
  std::size_t limit_;
};

bool IsIpAddress(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// Why a TLS handshake failed, in words that say what to do.
std::string HandshakeProblem(SSL* ssl, const error_code& ec, const TlsConfig& tls,
                             const std::string& name) {
  long result = SSL_get_verify_result(ssl);
  if (tls.verify &&
      (result == X509_V_ERR_HOSTNAME_MISMATCH || result == X509_V_ERR_IP_ADDRESS_MISMATCH)) {
    return "the server's certificate is not valid for '" + name +
           "' (hostname mismatch); connect by a name the certificate lists, or set the Target's "
           "docker.tls.serverName to the name it was issued for";
  }
  if (tls.verify && result != X509_V_OK) {
    return std::string("the server's certificate is not trusted (") +
           X509_verify_cert_error_string(result) + "); " +
           (tls.ca_file.empty() ? "it was checked against the system's CAs: "
                                : "it was checked against " + tls.ca_file + ": ") +
           "give the CA that signed it as the Target's docker.tls.caFile (a file under "
           "--secrets DIR) or as DOCKER_CERT_PATH/ca.pem";
  }
  std::string what = ec.message();
  if (tls.cert_file.empty()) {
    what +=
        " (if the engine requires a client certificate, set docker.tls.certFile and "
        "keyFile, or DOCKER_CERT_PATH/cert.pem and key.pem)";
  }
  return "TLS handshake failed: " + what;
}

class TlsTransport : public HttpTransport {
 public:
  static Result<std::unique_ptr<HttpTransport>> Make(std::string host, std::string port,
                                                     TlsConfig tls, std::size_t limit) {
    const std::string where = "tcp://" + host + ":" + port + " (TLS)";
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    error_code ec;
    std::string failed = "the system's CAs";  // what `ec` is about
    std::string reason;                       // errno's words, when the file cannot be read at all
    auto load = [&](const char* what, const std::string& file, auto&& fn) {
      if (ec || file.empty()) return;
      if (::access(file.c_str(), R_OK) != 0) {
        reason = std::strerror(errno);
        ec = asio::error::not_found;
      } else {
        fn(file);
      }
      if (ec) failed = std::string(what) + " " + file;
    };
    load("CA file", tls.ca_file, [&](const std::string& f) { ctx->load_verify_file(f, ec); });
    if (!ec && tls.ca_file.empty() && tls.verify) ctx->set_default_verify_paths(ec);
    load("client certificate", tls.cert_file,
         [&](const std::string& f) { ctx->use_certificate_chain_file(f, ec); });
    load("client key", tls.key_file,
         [&](const std::string& f) { ctx->use_private_key_file(f, asio::ssl::context::pem, ec); });
    if (ec) {
      return Status::Invalid(where + ": loading TLS certificates: " + failed + ": " +
                             (reason.empty() ? ec.message() : reason));
    }
    ctx->set_verify_mode(tls.verify ? asio::ssl::verify_peer : asio::ssl::verify_none);
    return std::unique_ptr<HttpTransport>(
        new TlsTransport(std::move(host), std::move(port), std::move(tls), std::move(ctx), limit));
  }

  Result<HttpResponse> RoundTrip(const HttpRequest& request) override {
    const std::string where = "tcp://" + host_ + ":" + port_ + " (TLS)";
    const std::string name = tls_.server_name.empty() ? host_ : tls_.server_name;
    Exchange x;
    Prepare(x, request, host_, limit_);
    asio::ip::tcp::resolver resolver(x.ioc);
    asio::ssl::stream<asio::ip::tcp::socket> stream(x.ioc, *ctx_);
    SSL* ssl = stream.native_handle();
    if (tls_.verify) {
      // OpenSSL's own check (RFC 6125), so that a mismatch has its own error.
      if (IsIpAddress(name)) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str());
      } else {
        SSL_set1_host(ssl, name.c_str());
      }
    }
    if (!IsIpAddress(name)) SSL_set_tlsext_host_name(ssl, name.c_str());
    auto done = x.Finish();
    bool handshake_failed = false;
    resolver.async_resolve(
        host_, port_, [&](error_code e, asio::ip::tcp::resolver::results_type results) {
          if (e) return done(e, "resolve");
          asio::async_connect(
              stream.next_layer(), results, [&](error_code e2, const asio::ip::tcp::endpoint&) {
                if (e2) return done(e2, "connect");
                stream.async_handshake(asio::ssl::stream_base::client, [&](error_code e3) {
                  if (e3) {
                    handshake_failed = true;
                    return done(e3, "handshake");
                  }
                  WriteThenRead(stream, x, done);
                });
              });
        });
    x.Run(request.timeout, [&] {
      resolver.cancel();
      error_code ignored;
      stream.next_layer().close(ignored);
    });
    if (handshake_failed) {
      // Not a transient failure: the same certificates fail the same way.
      return Status::Failed(where + ": " + HandshakeProblem(ssl, x.ec, tls_, name));
    }
    // A peer closing without TLS close_notify is normal for HTTP with
    // Connection: close once the whole message has been read.
    if (x.ec == asio::ssl::error::stream_truncated && x.parser.is_done()) x.ec = {};
    // With TLS 1.3 a refused client certificate shows only on the first read.
    if (x.ec && x.ec.category() == asio::error::get_ssl_category() &&
        x.ec != asio::ssl::error::stream_truncated) {
      return Status::Failed(where + ": " + HandshakeProblem(ssl, x.ec, tls_, name));
    }
    return Outcome(x, where, limit_);
  }

 private:
  TlsTransport(std::string host, std::string port, TlsConfig tls,
               std::shared_ptr<asio::ssl::context> ctx, std::size_t limit)
      : host_(std::move(host)),
        port_(std::move(port)),
        tls_(std::move(tls)),
        ctx_(std::move(ctx)),
        limit_(limit) {}

  std::string host_, port_;
  TlsConfig tls_;
  std::shared_ptr<asio::ssl::context> ctx_;  // configured once; SSL_CTX is then read-only
  std::size_t limit_;
};

std::string QueryLess(const std::string& path) { return path.substr(0, path.find('?')); }

// Container ids and names: [A-Za-z0-9][A-Za-z0-9_.-]* (Docker's own rule);
// refusing anything else keeps hostile input out of request paths.
bool ValidContainerRef(const std::string& s) {
  if (s.empty() || s.size() > 255) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-'))) return false;
  }
  return true;
}

bool ValidImageRef(const std::string& s) {
  if (s.empty() || s.size() > 512 || s.find("..") != std::string::npos || s[0] == '/') {
    return false;
  }
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '/' || c == ':' || c == '@';
    if (!ok) return false;
  }
  return true;
}

Status BadRef(const std::string& what, const std::string& value) {
  return Status::Invalid("docker: invalid " + what + " '" + value.substr(0, 80) + "'");
}

}  // namespace

Result<EngineAddress> ParseEngineAddress(const std::string& address) {
  EngineAddress a;
  if (address.rfind("unix://", 0) == 0) {
    a.kind = EngineAddress::Kind::kUnix;
    a.socket_path = address.substr(7);
    if (a.socket_path.empty() || a.socket_path[0] != '/') {
      return Status::Invalid("docker host '" + address + "': unix socket path must be absolute");
    }
    return a;
  }
  if (address.rfind("tcp://", 0) == 0) {
    a.kind = EngineAddress::Kind::kTcp;
    std::string rest = address.substr(6);
    while (!rest.empty() && rest.back() == '/') rest.pop_back();
    std::size_t colon = rest.rfind(':');
    if (!rest.empty() && rest[0] == '[') {  // [::1]:2375
      std::size_t close = rest.find(']');
      if (close == std::string::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
        return Status::Invalid("docker host '" + address + "': expected tcp://[addr]:port");
      }
      a.host = rest.substr(1, close - 1);
      a.port = rest.substr(close + 2);
    } else if (colon != std::string::npos) {
      a.host = rest.substr(0, colon);
      a.port = rest.substr(colon + 1);
    } else {
      return Status::Invalid("docker host '" + address + "': expected tcp://host:port");
    }
    bool digits = !a.port.empty() && a.port.size() <= 5;
    for (char c : a.port) digits = digits && c >= '0' && c <= '9';
    if (a.host.empty() || !digits) {
      return Status::Invalid("docker host '" + address + "': expected tcp://host:port");
    }
    return a;
  }
  return Status::Invalid("docker host '" + address +
                         "': expected unix:///path/to/docker.sock or tcp://host:port");
}

TlsConfig TlsConfigFromEnvironment() {
  TlsConfig t;
  const char* path = std::getenv("DOCKER_CERT_PATH");
  const char* verify = std::getenv("DOCKER_TLS_VERIFY");
  const bool path_set = path != nullptr && *path != '\0';
  const bool verify_set = verify != nullptr && *verify != '\0';
  if (!path_set && !verify_set) return t;
  t.enabled = true;
  t.verify = true;
  std::string dir;
  if (path_set) {
    dir = path;
  } else if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    dir = std::string(home) + "/.docker";
  }
  if (dir.empty()) return t;
  auto exists = [](const std::string& f) { return ::access(f.c_str(), F_OK) == 0; };
  if (exists(dir + "/ca.pem")) t.ca_file = dir + "/ca.pem";
  if (exists(dir + "/cert.pem") && exists(dir + "/key.pem")) {
    t.cert_file = dir + "/cert.pem";
    t.key_file = dir + "/key.pem";
  }
  return t;
}

Result<std::unique_ptr<HttpTransport>> NewEngineTransport(const std::string& address,
                                                          const TlsConfig& tls,
                                                          std::size_t body_limit) {
  auto parsed = ParseEngineAddress(address);
  if (!parsed.ok()) return parsed.status();
  const EngineAddress& a = parsed.value();
  if (a.kind == EngineAddress::Kind::kUnix) {
    return std::unique_ptr<HttpTransport>(new UnixTransport(a.socket_path, body_limit));
  }
  if (tls.enabled) return TlsTransport::Make(a.host, a.port, tls, body_limit);
  if (!IsLoopback(a.host)) {
    return Status::Invalid("docker host '" + address +
                           "': plain TCP is accepted only on loopback; use TLS (the default "
                           "for other hosts, or the Target's docker.tls block)");
  }
  return std::unique_ptr<HttpTransport>(new TcpTransport(a.host, a.port, body_limit));
}

Result<HttpResponse> HttpGet(const std::string& host, int port, const std::string& path,
                             std::chrono::milliseconds timeout, std::size_t body_limit) {
  TcpTransport t(host, std::to_string(port), body_limit);
  HttpRequest r;
  r.method = "GET";
  r.target = path.empty() || path[0] != '/' ? "/" + path : path;
  r.timeout = timeout;
  return t.RoundTrip(r);
}

Status TcpProbe(const std::string& host, int port, std::chrono::milliseconds timeout,
                std::chrono::milliseconds hold) {
  asio::io_context ioc;
  asio::ip::tcp::resolver resolver(ioc);
  asio::ip::tcp::socket socket(ioc);
  asio::steady_timer held(ioc);
  const std::string where = host + ":" + std::to_string(port);
  std::string failure;  // empty at the end: healthy
  bool done = false;
  char byte = 0;
  resolver.async_resolve(
      host, std::to_string(port),
      [&](error_code ec, asio::ip::tcp::resolver::results_type results) {
        if (ec) {
          failure = "resolve " + host + ": " + ec.message();
          done = true;
          return;
        }
        asio::async_connect(socket, results, [&](error_code ec2, const asio::ip::tcp::endpoint&) {
          if (ec2) {
            failure = "connect to " + where + ": " + ec2.message();
            done = true;
            return;
          }
          held.expires_after(hold);
          held.async_wait([&](error_code ec3) {
            if (ec3) return;  // cancelled: the read finished first
            done = true;      // still open after `hold`: someone listens
            error_code ignored;
            socket.close(ignored);
          });
          socket.async_read_some(asio::buffer(&byte, 1), [&](error_code ec4, std::size_t n) {
            if (done) return;  // closed by the timer
            held.cancel();
            done = true;
            if (n == 0 && ec4) {
              failure = where + " accepted the connection and closed it at once (" + ec4.message() +
                        "): nothing listens behind the published port";
            }
          });
        });
      });
  ioc.run_for(timeout + hold);
  if (!done) {
    failure = "connect to " + where + ": timed out after " + std::to_string(timeout.count()) + "ms";
    resolver.cancel();
    held.cancel();
    error_code ignored;
    socket.close(ignored);
    ioc.restart();
    ioc.run();
  }
  return failure.empty() ? Status::Ok() : Status::Unavailable(failure);
}

std::string UrlEncode(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

Status StatusFromHttp(const std::string& call, const HttpResponse& response) {
  int s = response.status;
  if ((s >= 200 && s < 300) || s == 304) return Status::Ok();
  std::string detail;
  auto j = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("message") && j["message"].is_string()) {
    detail = j["message"].get<std::string>();
  } else {
    detail = response.body;
  }
  if (detail.size() > 512) detail = detail.substr(0, 512) + "...";
  while (!detail.empty() && (detail.back() == '\n' || detail.back() == '\r')) detail.pop_back();
  std::string msg =
      "docker: " + call + ": " + std::to_string(s) + (detail.empty() ? "" : " ") + detail;
  if (s == 404) return Status::NotFound(msg);
  if (s == 409) return Status::Conflict(msg);
  if (s == 429) return Status::Unavailable(msg);  // too many requests: later
  if (s >= 400 && s < 500) return Status::Invalid(msg);
  if (s >= 500) return Status::Unavailable(msg);
  return Status::Failed(msg);
}

Result<HttpResponse> EngineClient::Call(const std::string& method, const std::string& path,
                                        const std::string& body,
                                        std::chrono::milliseconds timeout) const {
  const std::string call = method + " " + QueryLess(path);
  HttpRequest r;
  r.method = method;
  r.target = std::string(kApiPrefix) + path;
  r.body = body;
  r.timeout = timeout;
  if (!traceparent_.empty()) r.headers.emplace_back("traceparent", traceparent_);
  HttpRetry retry(retry_, clock_, stop_);
  for (;;) {
    auto res = transport_->RoundTrip(r);
    if (!res.ok()) return res.status().WithContext("docker: " + call);
    Status st = StatusFromHttp(call, res.value());
    if (st.ok()) return res;
    switch (retry.After(res->status, res->retry_after)) {
      case HttpRetry::Verdict::kRetry:
        continue;
      case HttpRetry::Verdict::kCancelled:
        return Status::Cancelled(st.message() + " (" + retry.note() + ")");
      case HttpRetry::Verdict::kGiveUp:
        return retry.note().empty() ? st
                                    : Status(st.code(), st.message() + " (" + retry.note() + ")");
    }
  }
}

Result<HttpResponse> EngineClient::CallWith(const std::string& method, const std::string& path,
                                            HttpRequest request) const {
  const std::string call = method + " " + QueryLess(path);
  request.method = method;
  request.target = std::string(kApiPrefix) + path;
  if (!traceparent_.empty()) request.headers.emplace_back("traceparent", traceparent_);
  auto res = transport_->RoundTrip(request);
  if (!res.ok()) return res.status().WithContext("docker: " + call);
  Status st = StatusFromHttp(call, res.value());
  if (!st.ok()) return st;
  return res;
}

Result<nlohmann::json> EngineClient::CallJson(const std::string& method, const std::string& path,
                                              const std::string& body,
                                              std::chrono::milliseconds timeout) const {
  auto res = Call(method, path, body, timeout);
  if (!res.ok()) return res.status();
  auto j = nlohmann::json::parse(res->body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return Status::Unavailable("docker: " + method + " " + QueryLess(path) +
                               ": the engine answered with invalid JSON");
  }
  return j;
}

Result<nlohmann::json> EngineClient::ListContainers(
    const std::vector<std::string>& label_filters) const {
  nlohmann::json filters = {{"label", label_filters}};
  auto j = CallJson("GET", "/containers/json?all=1&filters=" + UrlEncode(filters.dump()));
  if (j.ok() && !j->is_array()) {
    return Status::Unavailable("docker: GET /containers/json: expected a JSON array");
  }
  return j;
}

Result<nlohmann::json> EngineClient::InspectContainer(const std::string& id) const {
  if (!ValidContainerRef(id)) return BadRef("container id", id);
  auto j = CallJson("GET", "/containers/" + id + "/json");
  if (j.ok() && !j->is_object()) {
    return Status::Unavailable("docker: GET /containers/" + id + "/json: expected a JSON object");
  }
  return j;
}

Result<std::string> EngineClient::CreateContainer(const std::string& name,
                                                  const nlohmann::json& body) const {
  if (!ValidContainerRef(name)) return BadRef("container name", name);
  auto j = CallJson("POST", "/containers/create?name=" + UrlEncode(name), body.dump());
  if (!j.ok()) return j.status();
  if (!j->is_object() || !j->contains("Id") || !(*j)["Id"].is_string()) {
    return Status::Unavailable("docker: POST /containers/create: answer has no Id");
  }
  return (*j)["Id"].get<std::string>();
}

Status EngineClient::StartContainer(const std::string& id) const {
  if (!ValidContainerRef(id)) return BadRef("container id", id);
  return Call("POST", "/containers/" + id + "/start").status();
}

Status EngineClient::StopContainer(const std::string& id, int timeout_seconds) const {
  if (!ValidContainerRef(id)) return BadRef("container id", id);
  return Call("POST", "/containers/" + id + "/stop?t=" + std::to_string(timeout_seconds), "",
              std::chrono::seconds(timeout_seconds + 30))
      .status();
}

Status EngineClient::RemoveContainer(const std::string& id, bool force) const {
  if (!ValidContainerRef(id)) return BadRef("container id", id);
  return Call("DELETE", "/containers/" + id + "?force=" + (force ? "true" : "false") + "&v=true")
      .status();
}

Status EngineClient::RenameContainer(const std::string& id, const std::string& new_name) const {
  if (!ValidContainerRef(id)) return BadRef("container id", id);
  if (!ValidContainerRef(new_name)) return BadRef("container name", new_name);
  return Call("POST", "/containers/" + id + "/rename?name=" + UrlEncode(new_name)).status();
}

Result<std::string> EngineClient::ContainerLogs(const std::string& id, int tail) const {
  if (!ValidContainerRef(id)) return BadRef("container id", id);
  auto res =
      Call("GET", "/containers/" + id + "/logs?stdout=1&stderr=1&tail=" + std::to_string(tail), "",
           std::chrono::seconds(10));
  if (!res.ok()) return res.status();
  return DemultiplexLogs(res->body);
}

Result<nlohmann::json> EngineClient::InspectVolume(const std::string& name) const {
  if (!ValidContainerRef(name)) return BadRef("volume name", name);
  auto j = CallJson("GET", "/volumes/" + name);
  if (j.ok() && !j->is_object()) {
    return Status::Unavailable("docker: GET /volumes/" + name + ": expected a JSON object");
  }
  return j;
}

Status EngineClient::CreateVolume(const nlohmann::json& body) const {
  std::string name = body.is_object() ? body.value("Name", "") : "";
  if (!ValidContainerRef(name)) return BadRef("volume name", name);
  return Call("POST", "/volumes/create", body.dump()).status();
}

Status EngineClient::RemoveVolume(const std::string& name) const {
  if (!ValidContainerRef(name)) return BadRef("volume name", name);
  return Call("DELETE", "/volumes/" + name).status();
}

Result<nlohmann::json> EngineClient::InspectNetwork(const std::string& name) const {
  if (!ValidContainerRef(name)) return BadRef("network name", name);
  auto j = CallJson("GET", "/networks/" + name);
  if (j.ok() && !j->is_object()) {
    return Status::Unavailable("docker: GET /networks/" + name + ": expected a JSON object");
  }
  return j;
}

Status EngineClient::CreateNetwork(const nlohmann::json& body) const {
  std::string name = body.is_object() ? body.value("Name", "") : "";
  if (!ValidContainerRef(name)) return BadRef("network name", name);
  return Call("POST", "/networks/create", body.dump()).status();
}

Status EngineClient::ConnectNetwork(const std::string& network, const nlohmann::json& body) const {
  if (!ValidContainerRef(network)) return BadRef("network name", network);
  return Call("POST", "/networks/" + network + "/connect", body.dump()).status();
}

Status EngineClient::RemoveNetwork(const std::string& id) const {
  if (!ValidContainerRef(id)) return BadRef("network id", id);
  return Call("DELETE", "/networks/" + id).status();
}

Result<nlohmann::json> EngineClient::InspectImage(const std::string& reference) const {
  if (!ValidImageRef(reference)) return BadRef("image reference", reference);
  return CallJson("GET", "/images/" + reference + "/json");
}

Status EngineClient::PullImage(const std::string& reference,
                               const std::string& registry_auth) const {
  if (!ValidImageRef(reference)) return BadRef("image reference", reference);
  auto [repo, tag] = SplitImageReference(reference);
  HttpRequest request;
  request.timeout = std::chrono::minutes(15);
  if (!registry_auth.empty()) request.headers.emplace_back("X-Registry-Auth", registry_auth);
  auto res =
      CallWith("POST", "/images/create?fromImage=" + UrlEncode(repo) + "&tag=" + UrlEncode(tag),
               std::move(request));
  if (!res.ok()) return res.status();
  std::istringstream lines(res->body);
  std::string line;
  while (std::getline(lines, line)) {
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) continue;
    if (j.contains("error")) {
      std::string e = j["error"].is_string() ? j["error"].get<std::string>() : j["error"].dump();
      return Status::Failed("docker: POST /images/create: " + e.substr(0, 512));
    }
  }
  return Status::Ok();
}

std::string RegistryAuthHeader(const std::string& server, const std::string& username,
                               const std::string& password) {
  if (username.empty()) return "e30=";
  const std::string json =
      nlohmann::json{{"username", username}, {"password", password}, {"serveraddress", server}}
          .dump();
  std::string out(4 * ((json.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(json.data()),
                          static_cast<int>(json.size()));
  out.resize(static_cast<std::size_t>(n));
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

std::pair<std::string, std::string> SplitImageReference(const std::string& reference) {
  std::size_t at = reference.find('@');
  if (at != std::string::npos) return {reference.substr(0, at), reference.substr(at + 1)};
  std::size_t slash = reference.rfind('/');
  std::size_t colon = reference.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    return {reference.substr(0, colon), reference.substr(colon + 1)};
  }
  return {reference, "latest"};
}

std::string DemultiplexLogs(const std::string& raw) {
  std::string out;
  std::size_t i = 0;
  while (i < raw.size()) {
    if (raw.size() - i < 8) return raw;
    unsigned char type = static_cast<unsigned char>(raw[i]);
    if (type > 2 || raw[i + 1] != 0 || raw[i + 2] != 0 || raw[i + 3] != 0) return raw;
    std::size_t n = (static_cast<std::size_t>(static_cast<unsigned char>(raw[i + 4])) << 24) |
                    (static_cast<std::size_t>(static_cast<unsigned char>(raw[i + 5])) << 16) |
                    (static_cast<std::size_t>(static_cast<unsigned char>(raw[i + 6])) << 8) |
                    static_cast<std::size_t>(static_cast<unsigned char>(raw[i + 7]));
    i += 8;
    if (n > raw.size() - i) return raw;
    out.append(raw, i, n);
    i += n;
  }
  return out;
}

}  // namespace reconcile::docker
