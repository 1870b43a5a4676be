// HTTP server over loopback: a real server on an ephemeral port, a fake
// ControllerView, and a Beast client sending real requests.
#include "controller/http_server.h"

#include <chrono>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <doctest/doctest.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "controller/status_feed.h"
#include "controller/status_page.h"
#include "controller/webhook.h"
#include "fakes/fake_controller_view.h"
#include "fakes/http_test_client.h"

namespace reconcile::controller {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using nlohmann::json;
using testing::Client;
using testing::ClientResponse;
using testing::Send;

const std::string kSecret = "loopback-test-secret";
const std::string kVectors = RECONCILE_VECTORS_DIR "/github-webhooks";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot read " << path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A server running on its own I/O thread, stopped and joined at scope exit.
struct RunningServer {
  explicit RunningServer(HttpServerOptions options = {}) {
    options.listen = "127.0.0.1:0";
    if (!options.secrets.any()) options.secrets = {kSecret, kSecret, kSecret};
    options.on_request = [this](const HttpRequestLog& entry) {
      std::lock_guard<std::mutex> lock(log_mu);
      log.push_back(entry);
    };
    server = std::make_unique<HttpServer>(io, std::move(options), view, metrics);
    Status s = server->Start();
    REQUIRE_MESSAGE(s.ok(), s.ToString());
    thread = std::thread([this] { io.run(); });
  }
  ~RunningServer() {
    server->Stop();
    work.reset();
    io.stop();
    thread.join();
  }
  std::vector<HttpRequestLog> Log() {
    std::lock_guard<std::mutex> lock(log_mu);
    return log;
  }

  net::io_context io;
  net::executor_work_guard<net::io_context::executor_type> work = net::make_work_guard(io);
  testing::FakeControllerView view;
  Metrics metrics;
  std::unique_ptr<HttpServer> server;
  std::thread thread;
  std::mutex log_mu;
  std::vector<HttpRequestLog> log;
};

ClientResponse GitHub(std::uint16_t port, const std::string& event, const std::string& body,
                      const std::string& secret = kSecret) {
  return Send(port, http::verb::post, "/hooks/github", body,
              {{"X-GitHub-Event", event},
               {"X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
               {"X-Hub-Signature-256", "sha256=" + HmacSha256Hex(secret, body)},
               {"Content-Type", "application/json"},
               {"User-Agent", "GitHub-Hookshot/044aadd"}});
}

std::string PushTo(const std::string& ref) {
  return json{{"ref", ref}, {"after", "6113728f27ae82c7b1a177c8d03f9e96e0adf246"}}.dump();
}

TEST_CASE("http: GitHub webhooks over loopback") {
  RunningServer s;
  s.view.SetBranch("master");
  const std::uint16_t port = s.server->port();
  REQUIRE(port != 0);
  CHECK(s.server->address() == "127.0.0.1:" + std::to_string(port));
  const std::string push = ReadFile(kVectors + "/push/with-new-branch.payload.json");

  SUBCASE("a bad signature is 401 and triggers nothing") {
    ClientResponse r = GitHub(port, "push", push, "wrong-secret");
    CHECK(r.status == 401);
    CHECK(json::parse(r.body)["result"] == "rejected");
    ClientResponse missing =
        Send(port, http::verb::post, "/hooks/github", push, {{"X-GitHub-Event", "push"}});
    CHECK(missing.status == 401);
    CHECK(s.view.triggers().empty());
    for (const auto& entry : s.Log()) CHECK(entry.detail.find(kSecret) == std::string::npos);
  }
  SUBCASE("a valid push triggers exactly once") {
    ClientResponse r = GitHub(port, "push", push);
    CHECK(r.status == 202);
    CHECK(r.headers["content-type"] == "application/json");
    json body = json::parse(r.body);
    CHECK(body["result"] == "triggered");
    auto triggers = s.view.triggers();
    REQUIRE(triggers.size() == 1);
    CHECK(triggers[0].find("refs/heads/master") != std::string::npos);
    CHECK(triggers[0].find("6113728f27ae") != std::string::npos);
    CHECK(s.view.actors() == std::vector<std::string>{"webhook:github"});
    CHECK(s.metrics.Render().find(
              "reconcile_webhook_requests_total{code=\"202\",provider=\"github\"} 1") !=
          std::string::npos);
  }
  SUBCASE("ping, another branch and a deleted tag trigger nothing") {
    ClientResponse ping = GitHub(port, "ping", ReadFile(kVectors + "/ping/payload.json"));
    CHECK(ping.status == 200);
    CHECK(json::parse(ping.body)["result"] == "ignored");
    CHECK(GitHub(port, "push", PushTo("refs/heads/feature")).status == 200);
    CHECK(GitHub(port, "push", ReadFile(kVectors + "/push/payload.json")).status == 200);
    CHECK(s.view.triggers().empty());
    CHECK(s.metrics.Render().find(
              "reconcile_webhook_requests_total{code=\"200\",provider=\"github\"} 3") !=
          std::string::npos);
  }
  SUBCASE("malformed JSON is 400") {
    ClientResponse r = GitHub(port, "push", "{\"ref\": ");
    CHECK(r.status == 400);
    CHECK(s.view.triggers().empty());
  }
  SUBCASE("wrong method is 405 with Allow") {
    ClientResponse r = Send(port, http::verb::get, "/hooks/github");
    CHECK(r.status == 405);
    CHECK(r.headers["allow"] == "POST");
    CHECK(s.metrics.Render().find(
              "reconcile_webhook_requests_total{code=\"405\",provider=\"github\"} 1") !=
          std::string::npos);
  }
  SUBCASE("a body of exactly 1 MiB is read") {
    std::string body = PushTo("refs/heads/master");
    body.insert(body.size() - 1,
                ",\"pad\":\"" + std::string(1024 * 1024 - body.size() - 9, 'x') + "\"");
    REQUIRE(body.size() == 1024 * 1024);
    CHECK(GitHub(port, "push", body).status == 202);
    CHECK(s.view.triggers().size() == 1);
  }
}

TEST_CASE("http: bodies over 1 MiB are refused with 413 without being read") {
  RunningServer s;
  const std::uint16_t port = s.server->port();
  SUBCASE("Content-Length over the limit: answered before the body is sent") {
    Client c(port);
    REQUIRE(
        !c.WriteRaw("POST /hooks/github HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n"
                    "Content-Type: application/json\r\nContent-Length: 1048577\r\n\r\n"));
    ClientResponse r = c.Read();
    CHECK(r.status == 413);
    CHECK(r.headers["connection"] == "close");
  }
  SUBCASE("a signed 1 MiB + 1 body sent in full") {
    std::string body(1024 * 1024 + 1, ' ');
    ClientResponse r = GitHub(port, "push", body);
    CHECK(r.status == 413);
  }
  SUBCASE("a chunked body that grows past the limit") {
    Client c(port);
    REQUIRE(
        !c.WriteRaw("POST /hooks/generic HTTP/1.1\r\nHost: x\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n"));
    std::string chunk(64 * 1024, 'a');
    char size_line[32];
    std::snprintf(size_line, sizeof size_line, "%zx\r\n", chunk.size());
    for (int i = 0; i < 17; ++i) {
      if (c.WriteRaw(size_line + chunk + "\r\n")) break;  // the server may stop reading
    }
    ClientResponse r = c.Read();
    CHECK(r.status == 413);
  }
  CHECK(s.view.triggers().empty());
  CHECK(s.metrics.Render().find("code=\"413\"") != std::string::npos);
}

TEST_CASE("http: GitLab and generic webhooks, and endpoints without a secret") {
  SUBCASE("configured") {
    RunningServer s;
    const std::uint16_t port = s.server->port();
    std::string body = PushTo("refs/heads/main");
    CHECK(Send(port, http::verb::post, "/hooks/gitlab", body,
               {{"X-Gitlab-Event", "Push Hook"}, {"X-Gitlab-Token", "nope"}})
              .status == 401);
    CHECK(Send(port, http::verb::post, "/hooks/gitlab", body,
               {{"X-Gitlab-Event", "Push Hook"}, {"X-Gitlab-Token", kSecret}})
              .status == 202);
    CHECK(Send(port, http::verb::post, "/hooks/generic", "",
               {{"X-Reconcile-Signature-256", "sha256=" + HmacSha256Hex(kSecret, "")}})
              .status == 202);
    CHECK(Send(port, http::verb::post, "/hooks/generic", "{}",
               {{"X-Reconcile-Signature-256", "sha256=" + HmacSha256Hex("x", "{}")}})
              .status == 401);
    CHECK(s.view.triggers().size() == 2);
    // Who asked, for the audit entry of the pass.
    CHECK(s.view.actors() == std::vector<std::string>{"webhook:gitlab", "webhook:generic"});
  }
  SUBCASE("no secret: 503 with a clear message, nothing triggered") {
    HttpServerOptions options;
    options.secrets.github = kSecret;  // gitlab and generic stay off
    RunningServer s(options);
    ClientResponse r = Send(s.server->port(), http::verb::post, "/hooks/gitlab", "{}",
                            {{"X-Gitlab-Event", "Push Hook"}, {"X-Gitlab-Token", ""}});
    CHECK(r.status == 503);
    CHECK(json::parse(r.body)["message"].get<std::string>().find("--webhook-secret-file") !=
          std::string::npos);
    CHECK(s.view.triggers().empty());
  }
}

TEST_CASE("http: health, readiness, metrics, status and the page") {
  RunningServer s;
  const std::uint16_t port = s.server->port();

  ClientResponse health = Send(port, http::verb::get, "/healthz");
  CHECK(health.status == 200);
  CHECK(health.body == "ok\n");
  ClientResponse head = Send(port, http::verb::head, "/healthz");
  CHECK(head.status == 200);
  CHECK(head.body.empty());
  CHECK(head.headers["content-length"] == "3");

  CHECK(Send(port, http::verb::get, "/readyz").status == 200);
  s.view.SetReady(false, "source not fetched yet");
  ClientResponse notready = Send(port, http::verb::get, "/readyz");
  CHECK(notready.status == 503);
  CHECK(notready.body.find("source not fetched yet") != std::string::npos);

  s.metrics.PassFinished(PassResult::kSuccess, 0.5);
  ClientResponse metrics = Send(port, http::verb::get, "/metrics");
  CHECK(metrics.status == 200);
  CHECK(metrics.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(metrics.body.find("reconcile_passes_total{environment=\"default\",result=\"success\"} 1") !=
        std::string::npos);

  json status = {{"revision", "6113728f27ae82c7b1a177c8d03f9e96e0adf246"},
                 {"last_result", "invalid"},
                 {"lastError", "<script>alert(1)</script>"},
                 {"agents", json::array({{{"name", "web"}, {"health", "healthy"}}})}};
  s.view.SetStatus(status);
  ClientResponse api = Send(port, http::verb::get, "/api/v1/status");
  CHECK(api.status == 200);
  CHECK(api.headers["content-type"] == "application/json");
  CHECK(json::parse(api.body) == status);

  ClientResponse page = Send(port, http::verb::get, "/");
  CHECK(page.status == 200);
  CHECK(page.headers["content-type"] == "text/html; charset=utf-8");
  CHECK(page.headers["content-security-policy"] == StatusPageCsp());
  CHECK(page.body.find("<script>alert") == std::string::npos);
  CHECK(page.body.find("&lt;script&gt;alert(1)&lt;/script&gt;") != std::string::npos);
  CHECK(page.body.find("6113728f27ae82c7b1a177c8d03f9e96e0adf246") != std::string::npos);

  CHECK(Send(port, http::verb::get, "/nope").status == 404);
  CHECK(Send(port, http::verb::get, "/healthz/extra").status == 404);
  CHECK(Send(port, http::verb::get, "/metrics?name=x").status == 200);
  ClientResponse post = Send(port, http::verb::post, "/metrics", "x");
  CHECK(post.status == 405);
  CHECK(post.headers["allow"] == "GET, HEAD");
  CHECK(Send(port, http::verb::delete_, "/").status == 405);

  bool logged = false;
  for (const auto& entry : s.Log()) {
    if (entry.target == "/readyz" && entry.status == 503) logged = true;
  }
  CHECK(logged);
}

TEST_CASE("http: the status page's event stream") {
  auto feed = std::make_shared<StatusFeed>(
      [](const std::string&) -> Result<History> { return History{}; }, std::chrono::seconds(0));
  HttpServerOptions options;
  options.status_feed = feed;
  options.max_event_clients = 2;
  options.event_heartbeat = std::chrono::milliseconds(50);
  RunningServer s(options);
  s.view.SetStatus(
      {{"environments",
        json::array({{{"name", "dev"}, {"agents", json::array({{{"name", "web"}}})}}})}});
  const std::uint16_t port = s.server->port();
  auto open_stream = [&](Client& c, const std::string& target = "/events") {
    REQUIRE(!c.WriteRaw("GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  };
  Client one(port);
  open_stream(one);
  auto head = one.ReadUntil("retry: 2000\n\n");
  REQUIRE(head);
  CHECK(head->rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(head->find("Content-Type: text/event-stream; charset=utf-8\r\n") != std::string::npos);
  CHECK(head->find("Content-Length") == std::string::npos);

  SUBCASE("a pass's event reaches the stream as the environment's section") {
    ControllerEvent e;
    e.kind = ControllerEvent::Kind::kPassStarted;
    e.environment = "dev";
    e.revision = "abc";
    REQUIRE(feed->Deliver(e, {}).ok());
    auto frame = one.ReadUntil("</section>");
    REQUIRE(frame);
    CHECK(frame->find("event: env\ndata: <section class=\"env\" id=\"env-dev\">") !=
          std::string::npos);
    CHECK(frame->find("id=\"agent-dev-web\"") != std::string::npos);
  }
  SUBCASE("heartbeats") { CHECK(one.ReadUntil(": ping\n\n")); }
  SUBCASE("at most max_event_clients streams; a closed one frees its place") {
    {
      Client two(port);
      open_stream(two);
      REQUIRE(two.ReadUntil("retry: 2000\n\n"));
      Client three(port);
      open_stream(three);
      auto refused = three.ReadUntil("\r\n\r\n");
      REQUIRE(refused);
      CHECK(refused->rfind("HTTP/1.1 503", 0) == 0);
    }
    // `two` closed: the server notices and a new stream is taken.
    bool taken = false;
    for (int i = 0; i < 100 && !taken; ++i) {
      Client again(port);
      open_stream(again);
      auto answer = again.ReadUntil("\r\n\r\n");
      taken = answer && answer->rfind("HTTP/1.1 200", 0) == 0;
      if (!taken) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    CHECK(taken);
  }
  SUBCASE("Stop closes the streams") {
    s.server->Stop();
    CHECK_FALSE(one.ReadUntil("never sent"));
    CHECK(one.closed());
  }
}

TEST_CASE("http: a client that does not read is dropped") {
  auto feed = std::make_shared<StatusFeed>(
      [](const std::string&) -> Result<History> { return History{}; }, std::chrono::seconds(0));
  HttpServerOptions options;
  options.status_feed = feed;
  options.event_max_pending_bytes = 64 * 1024;
  RunningServer s(options);
  // A section of about 100 KiB: kernel buffers fill within a few frames.
  json agents = json::array();
  for (int i = 0; i < 1000; ++i) agents.push_back({{"name", "agent-" + std::to_string(i)}});
  s.view.SetStatus({{"environments", json::array({{{"name", "dev"}, {"agents", agents}}})}});
  Client idle(s.server->port());
  REQUIRE(!idle.WriteRaw("GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  ControllerEvent e;
  e.kind = ControllerEvent::Kind::kHealWithheld;
  e.environment = "dev";
  bool dropped = false;
  for (int i = 0; i < 2000 && !dropped; ++i) {
    REQUIRE(feed->Deliver(e, {}).ok());                         // never blocks on the reader
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // pacing, not a timing check
    for (const auto& entry : s.Log()) {
      if (entry.detail.find("event stream dropped") != std::string::npos) dropped = true;
    }
  }
  CHECK(dropped);
}

TEST_CASE("http: the status token and the page switched off") {
  SUBCASE("token") {
    HttpServerOptions options;
    options.status_token = "tok-123";
    options.status_feed = std::make_shared<StatusFeed>(nullptr);
    RunningServer s(options);
    const std::uint16_t port = s.server->port();
    for (const char* path : {"/", "/api/v1/status", "/events"}) {
      CAPTURE(path);
      ClientResponse none = Send(port, http::verb::get, path);
      CHECK(none.status == 401);
      CHECK(none.headers["www-authenticate"].rfind("Bearer", 0) == 0);
      CHECK(none.body.find("tok-123") == std::string::npos);
      CHECK(Send(port, http::verb::get, path, {}, {{"Authorization", "Bearer tok-12"}}).status ==
            401);
      CHECK(Send(port, http::verb::get, std::string(path) + "?token=wrong").status == 401);
    }
    CHECK(Send(port, http::verb::get, "/", {}, {{"Authorization", "Bearer tok-123"}}).status ==
          200);
    CHECK(Send(port, http::verb::get, "/api/v1/status?token=tok-123").status == 200);
    CHECK(Send(port, http::verb::head, "/events?token=tok-123").status == 200);
    CHECK(Send(port, http::verb::get, "/healthz").status == 200);  // not behind the token
    CHECK(Send(port, http::verb::get, "/metrics").status == 200);
    for (const auto& entry : s.Log()) CHECK(entry.target.find("tok-123") == std::string::npos);
    bool redacted = false;
    for (const auto& entry : s.Log()) redacted |= entry.target == "/api/v1/status?token=REDACTED";
    CHECK(redacted);
  }
  SUBCASE("off") {
    HttpServerOptions options;
    options.status_page = false;
    options.status_feed = std::make_shared<StatusFeed>(nullptr);
    RunningServer s(options);
    CHECK(Send(s.server->port(), http::verb::get, "/").status == 404);
    CHECK(Send(s.server->port(), http::verb::get, "/events").status == 404);
    CHECK(Send(s.server->port(), http::verb::get, "/api/v1/status").status == 200);
  }
  SUBCASE("no feed: the page without live updates") {
    RunningServer s;
    CHECK(Send(s.server->port(), http::verb::get, "/").status == 200);
    CHECK(Send(s.server->port(), http::verb::get, "/events").status == 404);
  }
}

TEST_CASE("http: approving a plan needs the approval token") {
  const std::string id(64, 'a');
  const std::string path = "/api/v1/plans/" + id + "/approve";
  SUBCASE("no approval token configured: 503") {
    RunningServer s;
    ClientResponse r = Send(s.server->port(), http::verb::post, path);
    CHECK(r.status == 503);
    CHECK(json::parse(r.body)["message"].get<std::string>().find("--approval-token-file") !=
          std::string::npos);
    CHECK(s.view.approvals().empty());
  }
  SUBCASE("with a token") {
    HttpServerOptions options;
    options.approval_token = "approve-456";
    options.status_token = "status-123";
    RunningServer s(options);
    const std::uint16_t port = s.server->port();
    const std::vector<std::pair<std::string, std::string>> good = {
        {"Authorization", "Bearer approve-456"}};
    // No token, a wrong one, the status token, a query parameter: 401.
    for (const auto& headers : std::vector<std::vector<std::pair<std::string, std::string>>>{
             {},
             {{"Authorization", "Bearer approve-45"}},
             {{"Authorization", "Bearer status-123"}}}) {
      ClientResponse r = Send(port, http::verb::post, path, {}, headers);
      CHECK(r.status == 401);
      CHECK(r.headers["www-authenticate"].rfind("Bearer", 0) == 0);
    }
    CHECK(Send(port, http::verb::post, path + "?token=approve-456").status == 401);
    CHECK(s.view.approvals().empty());
    CHECK(Send(port, http::verb::get, path, {}, good).status == 405);
    CHECK(Send(port, http::verb::post, "/api/v1/plans/" + id, {}, good).status == 404);
    // The view's answers, as HTTP.
    ClientResponse unknown = Send(port, http::verb::post, path, {}, good);
    CHECK(unknown.status == 404);
    CHECK(json::parse(unknown.body)["result"] == "unknown");
    s.view.SetApproveAnswer(id, {202, id, "approved"});
    ClientResponse approved = Send(port, http::verb::post, path, R"({"by": "alice"})", good);
    CHECK(approved.status == 202);
    CHECK(json::parse(approved.body) ==
          json{{"result", "approved"}, {"id", id}, {"message", "approved"}});
    s.view.SetApproveAnswer(id, {409, "", "superseded"});
    CHECK(Send(port, http::verb::post, path, {}, good).status == 409);
    s.view.SetApproveAnswer(id, {422, "", "tampered"});
    CHECK(Send(port, http::verb::post, path, {}, good).status == 422);
    CHECK(Send(port, http::verb::post, path, "[1]", good).status == 400);
    CHECK(s.view.approvals() == std::vector<std::string>{id + " by api", id + " by api: alice",
                                                         id + " by api", id + " by api"});
  }
}

TEST_CASE("http: connections") {
  HttpServerOptions options;
  options.read_timeout = std::chrono::milliseconds(400);
  options.max_connections = 2;
  options.max_header_bytes = 4096;
  RunningServer s(options);
  const std::uint16_t port = s.server->port();

  SUBCASE("keep-alive serves several requests on one connection") {
    Client c(port);
    for (int i = 0; i < 3; ++i) {
      http::request<http::string_body> req{http::verb::get, "/healthz", 11};
      req.set(http::field::host, "x");
      REQUIRE(!c.Write(req));
      ClientResponse r = c.Read();
      CHECK(r.status == 200);
    }
  }
  SUBCASE("a client that sends nothing is dropped after the read timeout") {
    Client idle(port);
    auto closed = idle.WaitForClose(std::chrono::seconds(5));
    REQUIRE(closed.has_value());
    CHECK(*closed >= std::chrono::milliseconds(300));
  }
  SUBCASE("dribbling header bytes does not extend the deadline") {
    Client slow(port);
    auto start = std::chrono::steady_clock::now();
    REQUIRE(!slow.WriteRaw("GET / HTTP/1.1\r\n"));
    bool dropped = false;
    for (int i = 0; i < 30 && !dropped; ++i) {  // a header line every 100 ms, for 3 s
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      dropped = static_cast<bool>(slow.WriteRaw("X-Slow: " + std::to_string(i) + "\r\n"));
    }
    auto elapsed = std::chrono::steady_clock::now() - start;
    CHECK(dropped);
    CHECK(elapsed < std::chrono::milliseconds(1500));
  }
  SUBCASE("Expect: 100-continue") {
    Client c(port);
    std::string body = "{}";
    REQUIRE(
        !c.WriteRaw("POST /hooks/generic HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                    "X-Reconcile-Signature-256: sha256=" +
                    HmacSha256Hex(kSecret, body) + "\r\nContent-Length: 2\r\n\r\n"));
    CHECK(c.Read().status == 100);
    REQUIRE(!c.WriteRaw(body));
    CHECK(c.Read().status == 202);
    CHECK(s.view.triggers().size() == 1);
  }
  SUBCASE("headers over the limit get 431") {
    Client c(port);
    REQUIRE(!c.WriteRaw(
        "POST /hooks/github HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(8192, 'b') + "\r\n\r\n"));
    CHECK(c.Read().status == 431);
    CHECK(s.metrics.Render().find(
              "reconcile_webhook_requests_total{code=\"431\",provider=\"github\"} 1") !=
          std::string::npos);
  }
  SUBCASE("garbage is 400") {
    Client c(port);
    REQUIRE(!c.WriteRaw("NOT HTTP AT ALL\r\n\r\n"));
    CHECK(c.Read().status == 400);
  }
  SUBCASE("connections over the cap get 503") {
    Client a(port);
    Client b(port);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // both accepted
    Client c(port);
    ClientResponse r = c.Read();
    CHECK(r.status == 503);
    CHECK(r.body == "too many open connections\n");
  }
}

TEST_CASE("http: listen errors and Stop") {
  net::io_context io;
  testing::FakeControllerView view;
  Metrics metrics;
  SUBCASE("bad address") {
    HttpServerOptions options;
    options.listen = "example.com:80";
    HttpServer server(io, options, view, metrics);
    Status st = server.Start();
    CHECK(st.code() == Code::kInvalid);
    CHECK(server.port() == 0);
  }
  SUBCASE("address in use") {
    RunningServer first;
    HttpServerOptions options;
    options.listen = "127.0.0.1:" + std::to_string(first.server->port());
    HttpServer second(io, options, view, metrics);
    CHECK(second.Start().code() == Code::kUnavailable);
  }
  SUBCASE("after Stop, connections are refused") {
    RunningServer s;
    std::uint16_t port = s.server->port();
    CHECK(Send(port, http::verb::get, "/healthz").status == 200);
    s.server->Stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    net::io_context client_io;
    tcp::socket sock(client_io);
    beast::error_code ec;
    sock.connect({net::ip::make_address("127.0.0.1"), port}, ec);
    CHECK(ec == net::error::connection_refused);
  }
  SUBCASE("all interfaces") {
    HttpServerOptions options;
    options.listen = ":0";
    HttpServer server(io, options, view, metrics);
    REQUIRE(server.Start().ok());
    CHECK(server.port() != 0);
    std::thread t([&] { io.run_for(std::chrono::seconds(5)); });
    ClientResponse r = Send(server.port(), http::verb::get, "/healthz");
    CHECK(r.status == 200);
    server.Stop();
    io.stop();
    t.join();
  }
}

}  // namespace
}  // namespace reconcile::controller
