// The libcurl HTTP client (providers/http) against real servers on
// loopback: methods and headers, retries with Retry-After and backoff on a
// manual clock, plain-http refusal, timeouts and cancellation, size limits,
// hostile answers, proxies from the environment, TLS verification, and a
// canary that no secret reaches an error.
#include "http/http_client.h"

#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>

#include <doctest/doctest.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "fakes/loopback_http_server.h"
#include "fakes/temp_dir.h"

namespace reconcile::http {
namespace {

using reconcile::testing::LoopbackHttpServer;
using reconcile::testing::ManualClock;
using reconcile::testing::SeenRequest;
using std::chrono::milliseconds;
using Clk = std::chrono::steady_clock;

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Sets (or unsets, with nullopt) an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = getenv(name)) old_ = old;
    if (value) {
      setenv(name, value->c_str(), 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// No proxy from the environment of whoever runs the tests.
struct NoProxyEnv {
  ScopedEnv a{"http_proxy", std::nullopt}, b{"https_proxy", std::nullopt},
      c{"HTTPS_PROXY", std::nullopt}, d{"all_proxy", std::nullopt}, e{"ALL_PROXY", std::nullopt},
      f{"no_proxy", std::nullopt}, g{"NO_PROXY", std::nullopt};
};

// A port on loopback where nothing listens.
int ClosedPort() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(
      io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

ClientOptions Fast(ManualClock& clock) {
  ClientOptions o;
  o.clock = &clock;
  return o;
}

TEST_CASE("http client: methods, headers and bodies reach a loopback server") {
  NoProxyEnv env;
  LoopbackHttpServer server([](const SeenRequest& r) {
    return LoopbackHttpServer::Answer(201, "got " + r.method + " " + r.body,
                                      {{"X-Answer", "yes"}, {"content-TYPE", "text/plain"}});
  });
  ManualClock clock;
  auto client = MakeCurlClient(Fast(clock));

  Request post{"POST",
               server.url("/v1/things?x=1"),
               {{"X-Test", "one"}, {"Content-Type", "application/json"}},
               R"({"a":1})"};
  Result<Response> res = client->Send(post);
  REQUIRE_MESSAGE(res.ok(), res.status().message());
  CHECK(res->status == 201);
  CHECK(res->body == R"(got POST {"a":1})");
  CHECK(res->Header("x-answer") == "yes");
  CHECK(res->Header("Content-Type") == "text/plain");
  CHECK(res->Header("Absent") == "");
  SeenRequest seen = server.requests().at(0);
  CHECK(seen.target == "/v1/things?x=1");
  CHECK(seen.Header("X-Test") == "one");
  CHECK(seen.Header("User-Agent") == DefaultUserAgent());
  CHECK(DefaultUserAgent().starts_with("reconcile/"));
  CHECK(seen.Header("Expect") == "");
  CHECK(seen.Header("Content-Length") == "7");

  for (const char* method : {"GET", "PUT", "PATCH", "DELETE", "HEAD"}) {
    SUBCASE(method) {
      Request r{method, server.url("/m"), {}, ""};
      if (std::string(method) == "PUT" || std::string(method) == "PATCH") r.body = "{}";
      Result<Response> got = client->Send(r);
      REQUIRE_MESSAGE(got.ok(), got.status().message());
      CHECK(got->status == 201);
      CHECK(server.requests().back().method == method);
      CHECK(server.requests().back().body == r.body);
      if (std::string(method) == "HEAD") CHECK(got->body.empty());
    }
  }
}

TEST_CASE("http client: 429 and 5xx are retried, honouring Retry-After, then the answer") {
  NoProxyEnv env;
  std::vector<std::string> script = {
      LoopbackHttpServer::Answer(503),
      LoopbackHttpServer::Answer(429, "", {{"Retry-After", "7"}}),
      LoopbackHttpServer::Answer(502),
      LoopbackHttpServer::Answer(500),
      LoopbackHttpServer::Answer(200, "finally"),
  };
  std::atomic<size_t> next{0};
  LoopbackHttpServer server([&](const SeenRequest&) {
    size_t i = next++;
    return script[std::min(i, script.size() - 1)];
  });
  ManualClock clock;
  auto client = MakeCurlClient(Fast(clock));
  Result<Response> res = client->Send({"GET", server.url("/busy"), {}, ""});
  REQUIRE_MESSAGE(res.ok(), res.status().message());
  CHECK(res->status == 200);
  CHECK(res->body == "finally");
  CHECK(server.count() == 5);
  auto sleeps = clock.sleeps();
  REQUIRE(sleeps.size() == 4);
  CHECK(sleeps[0] >= milliseconds(250));  // backoff 500ms with jitter in [d/2, d]
  CHECK(sleeps[0] <= milliseconds(500));
  CHECK(sleeps[1] == milliseconds(7000));  // Retry-After: 7
  CHECK(sleeps[2] >= milliseconds(500));   // then 1s
  CHECK(sleeps[2] <= milliseconds(1000));
  CHECK(sleeps[3] >= milliseconds(1000));  // then 2s
  CHECK(sleeps[3] <= milliseconds(2000));
}

TEST_CASE("http client: Retry-After as an HTTP-date, and capped") {
  NoProxyEnv env;
  std::string retry_after;
  std::atomic<int> n{0};
  LoopbackHttpServer server([&](const SeenRequest&) {
    if (n++ == 0) return LoopbackHttpServer::Answer(503, "", {{"Retry-After", retry_after}});
    return LoopbackHttpServer::Answer(204);
  });
  ManualClock clock;  // 2026-12-01T12:00:00Z
  ClientOptions options = Fast(clock);
  options.max_retry_after = std::chrono::seconds(60);
  auto client = MakeCurlClient(options);

  SUBCASE("date") {
    retry_after = "Tue, 01 Dec 2026 12:00:09 GMT";
    Result<Response> res = client->Send({"GET", server.url("/"), {}, ""});
    REQUIRE(res.ok());
    CHECK(res->status == 204);
    REQUIRE(clock.sleeps().size() == 1);
    CHECK(clock.sleeps()[0] == milliseconds(9000));
  }
  SUBCASE("more than the cap waits the cap") {
    retry_after = "3600";
    Result<Response> res = client->Send({"GET", server.url("/"), {}, ""});
    REQUIRE(res.ok());
    CHECK(res->status == 204);
    REQUIRE(clock.sleeps().size() == 1);
    CHECK(clock.sleeps()[0] == milliseconds(60000));
  }
}

TEST_CASE("http client: other 4xx are returned at once; the last 5xx after the last attempt") {
  NoProxyEnv env;
  int status = 404;
  LoopbackHttpServer server([&](const SeenRequest&) {
    return LoopbackHttpServer::Json(status, R"({"message":"no such service"})");
  });
  ManualClock clock;
  ClientOptions options = Fast(clock);
  options.max_attempts = 3;
  auto client = MakeCurlClient(options);
  for (int s : {400, 401, 403, 404, 409}) {
    status = s;
    Result<Response> res = client->Send({"GET", server.url("/x"), {}, ""});
    REQUIRE(res.ok());
    CHECK(res->status == s);
  }
  CHECK(server.count() == 5);
  CHECK(clock.sleeps().empty());

  status = 503;
  Result<Response> res = client->Send({"GET", server.url("/x"), {}, ""});
  REQUIRE(res.ok());
  CHECK(res->status == 503);
  CHECK(res->body == R"({"message":"no such service"})");
  CHECK(server.count() == 8);
  CHECK(clock.sleeps().size() == 2);
}

TEST_CASE("http client: connection errors are retried, then a clear kUnavailable") {
  NoProxyEnv env;
  ManualClock clock;
  ClientOptions options = Fast(clock);
  options.max_attempts = 3;
  auto client = MakeCurlClient(options);
  const std::string url = "http://127.0.0.1:" + std::to_string(ClosedPort()) + "/v1/x";
  Result<Response> res = client->Send({"GET", url + "?token=CANARY-QUERY", {}, ""});
  REQUIRE_FALSE(res.ok());
  CHECK(res.status().code() == Code::kUnavailable);
  CHECK(Contains(res.status().message(), "GET " + url));
  CHECK(Contains(res.status().message(), "after 3 attempts"));
  CHECK_FALSE(Contains(res.status().message(), "CANARY"));
  CHECK(clock.sleeps().size() == 2);
}

TEST_CASE("http client: plain http only to loopback") {
  ClientOptions options;
  struct Row {
    const char* url;
    bool ok;
  };
  for (Row row :
       {Row{"https://example.com/x", true}, Row{"http://127.0.0.1:8080/x", true},
        Row{"http://127.9.9.9/", true}, Row{"http://localhost:1/", true},
        Row{"http://LOCALHOST/", true}, Row{"http://[::1]:9/", true},
        Row{"http://example.com/x", false}, Row{"http://10.0.0.1/", false},
        Row{"http://127.0.0.1.nip.io/", false}, Row{"http://localhost.evil.example/", false},
        Row{"http://127.0.0.1@evil.example/", false},
        Row{"http://metadata.google.internal/", false}, Row{"http://169.254.169.254/", false},
        Row{"ftp://127.0.0.1/", false}, Row{"file:///etc/passwd", false}, Row{"not a url", false},
        Row{"", false}}) {
    CAPTURE(row.url);
    Status s = CheckUrl(row.url, options);
    CHECK(s.ok() == row.ok);
    if (!row.ok) CHECK(s.code() == Code::kInvalid);
  }
  Status refused = CheckUrl("http://example.com/v1/apps?sig=CANARY", options);
  CHECK(refused.message() ==
        "'http://example.com/v1/apps' is plain http to a host that is not loopback; use an "
        "https:// URL (plain http is allowed only to 127.0.0.0/8, ::1 and localhost)");

  options.plain_http_hosts = {kGoogleMetadataHost, kAzureImdsHost};
  CHECK(CheckUrl("http://metadata.google.internal/computeMetadata/v1/x", options).ok());
  CHECK(CheckUrl("http://169.254.169.254/metadata/identity", options).ok());
  CHECK_FALSE(CheckUrl("http://169.254.169.253/", options).ok());
  CHECK_FALSE(CheckUrl("http://metadata.google.internal.evil.example/", options).ok());
}

TEST_CASE("http client: a refused URL sends nothing, not even to a proxy") {
  LoopbackHttpServer proxy([](const SeenRequest&) { return LoopbackHttpServer::Answer(200); });
  NoProxyEnv clean;
  ScopedEnv p("http_proxy", proxy.base());
  ManualClock clock;
  auto client = MakeCurlClient(Fast(clock));
  Result<Response> res = client->Send({"GET", "http://example.com/x", {}, ""});
  REQUIRE_FALSE(res.ok());
  CHECK(res.status().code() == Code::kInvalid);
  CHECK(Contains(res.status().message(), "http://example.com/x"));
  CHECK(Contains(res.status().message(), "https"));
  CHECK(proxy.count() == 0);
}

TEST_CASE("http client: proxies from the environment") {
  NoProxyEnv clean;
  LoopbackHttpServer proxy([](const SeenRequest& r) {
    if (r.method == "CONNECT") return LoopbackHttpServer::Answer(403, "no tunnels here");
    return LoopbackHttpServer::Answer(200, "via proxy");
  });
  LoopbackHttpServer origin(
      [](const SeenRequest&) { return LoopbackHttpServer::Answer(200, "direct"); });
  ManualClock clock;
  ClientOptions options = Fast(clock);
  options.max_attempts = 1;

  SUBCASE("http_proxy gets the absolute-URI request") {
    ScopedEnv p("http_proxy", proxy.base());
    auto client = MakeCurlClient(options);
    Result<Response> res = client->Send({"GET", origin.url("/through?x=1"), {}, ""});
    REQUIRE_MESSAGE(res.ok(), res.status().message());
    CHECK(res->body == "via proxy");
    REQUIRE(proxy.count() == 1);
    CHECK(proxy.requests()[0].target == origin.url("/through?x=1"));
    CHECK(origin.count() == 0);
  }
  SUBCASE("https_proxy gets a CONNECT") {
    ScopedEnv p("https_proxy", proxy.base());
    auto client = MakeCurlClient(options);
    Result<Response> res = client->Send({"GET", "https://api.reconcile-test.invalid/v1", {}, ""});
    REQUIRE_FALSE(res.ok());
    REQUIRE(proxy.count() == 1);
    CHECK(proxy.requests()[0].method == "CONNECT");
    CHECK(proxy.requests()[0].target == "api.reconcile-test.invalid:443");
  }
  SUBCASE("no_proxy goes direct") {
    ScopedEnv p("http_proxy", proxy.base());
    ScopedEnv n("no_proxy", "127.0.0.1");
    auto client = MakeCurlClient(options);
    Result<Response> res = client->Send({"GET", origin.url("/"), {}, ""});
    REQUIRE_MESSAGE(res.ok(), res.status().message());
    CHECK(res->body == "direct");
    CHECK(proxy.count() == 0);
  }
  SUBCASE("a metadata host is never reached through a proxy") {
    ScopedEnv p("http_proxy", proxy.base());
    options.plain_http_hosts = {"127.0.0.1"};
    auto client = MakeCurlClient(options);
    Result<Response> res = client->Send({"GET", origin.url("/"), {}, ""});
    REQUIRE_MESSAGE(res.ok(), res.status().message());
    CHECK(res->body == "direct");
    CHECK(proxy.count() == 0);
  }
}

TEST_CASE("http client: timeouts and cancellation") {
  NoProxyEnv env;
  LoopbackHttpServer hang([](const SeenRequest&) { return std::nullopt; });
  ManualClock clock;
  ClientOptions options = Fast(clock);
  options.max_attempts = 1;
  auto client = MakeCurlClient(options);

  SUBCASE("the request's timeout") {
    Request r{"GET", hang.url("/slow"), {}, ""};
    r.timeout = milliseconds(300);
    auto start = Clk::now();
    Result<Response> res = client->Send(r);
    REQUIRE_FALSE(res.ok());
    CHECK(res.status().code() == Code::kUnavailable);
    CHECK(Contains(res.status().message(), "timed out"));
    CHECK(Clk::now() - start < std::chrono::seconds(5));
  }
  SUBCASE("a stop ends a transfer in progress") {
    std::stop_source stop;
    std::thread stopper([&] {
      std::this_thread::sleep_for(milliseconds(200));
      stop.request_stop();
    });
    auto start = Clk::now();
    Result<Response> res = client->Send({"GET", hang.url("/slow"), {}, ""}, stop.get_token());
    auto took = Clk::now() - start;
    stopper.join();
    REQUIRE_FALSE(res.ok());
    CHECK(res.status().code() == Code::kCancelled);
    CHECK(took < std::chrono::seconds(2));
  }
}

TEST_CASE("http client: a stop ends a backoff wait") {
  NoProxyEnv env;
  LoopbackHttpServer busy([](const SeenRequest&) {
    return LoopbackHttpServer::Answer(503, "", {{"Retry-After", "30"}});
  });
  auto client = MakeCurlClient({});  // the system clock: really waits
  std::stop_source stop;
  std::thread stopper([&] {
    std::this_thread::sleep_for(milliseconds(300));
    stop.request_stop();
  });
  auto start = Clk::now();
  Result<Response> res = client->Send({"GET", busy.url("/"), {}, ""}, stop.get_token());
  auto took = Clk::now() - start;
  stopper.join();
  REQUIRE_FALSE(res.ok());
  CHECK(res.status().code() == Code::kCancelled);
  CHECK(took < std::chrono::seconds(5));
  CHECK(busy.count() == 1);
}

TEST_CASE("http client: response size limits and hostile answers") {
  NoProxyEnv env;
  std::string answer;
  LoopbackHttpServer server([&](const SeenRequest&) { return answer; });
  ManualClock clock;
  ClientOptions options = Fast(clock);
  options.max_attempts = 1;
  options.max_response_bytes = 1024;
  auto client = MakeCurlClient(options);
  auto send = [&] { return client->Send({"GET", server.url("/"), {}, ""}); };

  SUBCASE("a body over the limit, with Content-Length") {
    answer = LoopbackHttpServer::Answer(200, std::string(4096, 'x'));
    Result<Response> res = send();
    REQUIRE_FALSE(res.ok());
    CHECK(res.status().code() == Code::kFailed);
    CHECK(Contains(res.status().message(), "larger than the 1024 bytes"));
  }
  SUBCASE("a body over the limit, chunked") {
    std::string chunk = std::string(1000, 'y');
    answer = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    for (int i = 0; i < 4; ++i) answer += "3e8\r\n" + chunk + "\r\n";
    answer += "0\r\n\r\n";
    Result<Response> res = send();
    REQUIRE_FALSE(res.ok());
    CHECK(res.status().code() == Code::kFailed);
    CHECK(Contains(res.status().message(), "larger than"));
  }
  SUBCASE("the default limit is 16 MiB") {
    auto big = MakeCurlClient(Fast(clock));
    answer = "HTTP/1.1 200 OK\r\nContent-Length: 17000000\r\nConnection: close\r\n\r\nxx";
    Result<Response> res = big->Send({"GET", server.url("/"), {}, ""});
    REQUIRE_FALSE(res.ok());
    CHECK(Contains(res.status().message(), "larger than the 16777216 bytes"));
  }
  SUBCASE("too many headers") {
    answer = "HTTP/1.1 200 OK\r\n";
    for (int i = 0; i < 2000; ++i) answer += "X-H" + std::to_string(i) + ": v\r\n";
    answer += "Content-Length: 0\r\nConnection: close\r\n\r\n";
    Result<Response> res = send();
    REQUIRE_FALSE(res.ok());
    CHECK(Contains(res.status().message(), "headers are larger"));
  }
  SUBCASE("malformed header lines are skipped") {
    answer =
        "HTTP/1.1 200 OK\r\nBad Name: x\r\nGood:  v  \r\n"
        "Content-Length: 2\r\nConnection: close\r\n\r\nok";
    Result<Response> res = send();
    REQUIRE_MESSAGE(res.ok(), res.status().message());
    CHECK(res->Header("Good") == "v");
    CHECK(res->Header("Bad Name").empty());
    CHECK(res->body == "ok");
  }
  SUBCASE("a header line without a colon is a clear error (libcurl refuses it)") {
    answer =
        "HTTP/1.1 200 OK\r\nno colon here\r\nGood: v\r\n"
        "Content-Length: 2\r\nConnection: close\r\n\r\nok";
    Result<Response> res = send();
    REQUIRE_FALSE(res.ok());
    CHECK(Contains(res.status().message(), "GET http://127.0.0.1:"));
  }
  SUBCASE("not HTTP at all") {
    answer = "SSH-2.0-OpenSSH_9.2\r\n\r\n";
    Result<Response> res = send();
    CHECK_FALSE(res.ok());
  }
  SUBCASE("a huge header line") {
    answer = "HTTP/1.1 200 OK\r\nX-Big: " + std::string(300 * 1024, 'z') +
             "\r\nContent-Length: 0\r\n\r\n";
    Result<Response> res = send();
    CHECK_FALSE(res.ok());
  }
}

TEST_CASE("http client: no secret reaches an error (canary)") {
  NoProxyEnv env;
  LoopbackHttpServer hang([](const SeenRequest&) { return std::nullopt; });
  ManualClock clock;
  ClientOptions options = Fast(clock);
  options.max_attempts = 2;
  auto client = MakeCurlClient(options);
  const std::vector<std::pair<std::string, std::string>> headers = {
      {"Authorization", "Bearer CANARY-AUTH"},
      {"X-Amz-Security-Token", "CANARY-AMZ"},
      {"Metadata", "CANARY-META"},
      {"Cookie", "session=CANARY-COOKIE"},
      {"X-IDENTITY-HEADER", "CANARY-IDENTITY"}};
  const std::string body = R"({"password":"CANARY-BODY"})";
  const std::string closed = "http://127.0.0.1:" + std::to_string(ClosedPort());
  std::vector<Request> requests = {
      {"POST", closed + "/x?sig=CANARY-QUERY", headers, body},
      {"POST", "http://user:CANARY-PASS@example.com/x", headers, body},
      {"POST", "https://user:CANARY-PASS@127.0.0.1:" + std::to_string(ClosedPort()) + "/x", headers,
       body},
      {"PUT", hang.url("/x?CANARY-QUERY"), headers, body, milliseconds(200)},
      {"POST", closed + "/x", {{"Authorization", "Bearer CANARY-AUTH\r\nX-Injected: 1"}}, body},
      {"GET", closed + "/x", {{"Bad Name CANARY-NAME", "CANARY-AUTH"}}, ""},
  };
  for (const Request& r : requests) {
    CAPTURE(r.url);
    Result<Response> res = client->Send(r);
    REQUIRE_FALSE(res.ok());
    CHECK_FALSE(Contains(res.status().message(), "CANARY"));
  }
  Result<Response> injected = client->Send(requests[4]);
  CHECK(injected.status().code() == Code::kInvalid);
  CHECK(Contains(injected.status().message(), "'Authorization'"));
  CHECK(Contains(injected.status().message(), "line break"));
}

// --- TLS: certificates made with the openssl CLI (as docker_tls_test.cc). ---

struct Certs {
  reconcile::testing::TempDir dir{"reconcile-http-tls"};
  bool ok = false;
  Certs() {
    const std::string d = dir.path().string();
    const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    std::string script =
        "set -e; cd '" + d + "'; exec >/dev/null 2>&1;" + "openssl req -x509 " + key +
        " -keyout ca-key.pem -out ca.pem -days 2 -subj /CN=test-ca;"
        "sign() { openssl req " +
        key +
        " -keyout $2 -out $1.csr -subj /CN=$1;"
        "  printf \"$3\\n\" > $1.cnf;"
        "  openssl x509 -req -in $1.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial"
        "    -out $4 -days 2 -extfile $1.cnf; };"
        "sign server server-key.pem 'subjectAltName=IP:127.0.0.1,DNS:localhost' server.pem;"
        "sign wrong wrong-key.pem 'subjectAltName=DNS:other.example' wrong.pem;";
    dir.Write("make.sh", script);
    ok = std::system(("bash '" + d + "/make.sh'").c_str()) == 0;
  }
  std::string path(const char* name) const { return (dir.path() / name).string(); }
};

// Answers one request per connection over TLS with `cert`, until destroyed.
class TlsServer {
 public:
  TlsServer(const std::string& cert, const std::string& key)
      : ctx_(boost::asio::ssl::context::tls_server),
        acceptor_(io_,
                  boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0)) {
    ctx_.use_certificate_chain_file(cert);
    ctx_.use_private_key_file(key, boost::asio::ssl::context::pem);
    thread_ = std::thread([this] { Serve(); });
  }
  ~TlsServer() {
    stop_ = true;
    boost::system::error_code ec;
    boost::asio::ip::tcp::socket poke(io_);
    poke.connect(acceptor_.local_endpoint(), ec);
    thread_.join();
  }
  std::string url() const {
    return "https://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + "/tls";
  }
  int connections() const { return connections_; }

 private:
  void Serve() {
    namespace http = boost::beast::http;
    while (true) {
      boost::asio::ip::tcp::socket socket(io_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      if (stop_) return;
      if (ec) continue;
      ++connections_;
      boost::asio::ssl::stream<boost::asio::ip::tcp::socket> tls(std::move(socket), ctx_);
      tls.handshake(boost::asio::ssl::stream_base::server, ec);
      if (ec) continue;
      boost::beast::flat_buffer buffer;
      http::request<http::string_body> req;
      http::read(tls, buffer, req, ec);
      if (ec) continue;
      http::response<http::string_body> res{http::status::ok, 11};
      res.body() = "secure";
      res.keep_alive(false);
      res.prepare_payload();
      http::write(tls, res, ec);
      tls.shutdown(ec);
    }
  }

  boost::asio::io_context io_;
  boost::asio::ssl::context ctx_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
};

TEST_CASE("http client: TLS peer and host are verified") {
  NoProxyEnv env;
  Certs certs;
  REQUIRE_MESSAGE(certs.ok, "openssl could not make test certificates");
  ManualClock clock;
  ClientOptions options = Fast(clock);

  SUBCASE("trusted CA and matching name") {
    TlsServer server(certs.path("server.pem"), certs.path("server-key.pem"));
    options.ca_file = certs.path("ca.pem");
    Result<Response> res = MakeCurlClient(options)->Send({"GET", server.url(), {}, ""});
    REQUIRE_MESSAGE(res.ok(), res.status().message());
    CHECK(res->status == 200);
    CHECK(res->body == "secure");
  }
  SUBCASE("the system store does not trust a private CA; not retried") {
    TlsServer server(certs.path("server.pem"), certs.path("server-key.pem"));
    Result<Response> res = MakeCurlClient(options)->Send({"GET", server.url(), {}, ""});
    REQUIRE_FALSE(res.ok());
    CHECK(res.status().code() == Code::kFailed);
    CHECK(Contains(res.status().message(), "TLS verification failed"));
    CHECK(Contains(res.status().message(), "system store"));
    CHECK(server.connections() == 1);
  }
  SUBCASE("a certificate for another name") {
    TlsServer server(certs.path("wrong.pem"), certs.path("wrong-key.pem"));
    options.ca_file = certs.path("ca.pem");
    Result<Response> res = MakeCurlClient(options)->Send({"GET", server.url(), {}, ""});
    REQUIRE_FALSE(res.ok());
    CHECK(res.status().code() == Code::kFailed);
    CHECK(Contains(res.status().message(), "TLS verification failed"));
  }
}

}  // namespace
}  // namespace reconcile::http
