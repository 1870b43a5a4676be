// HttpRetry (429/503 with Retry-After) on fake time, and the Docker Engine
// client retrying against a real HTTP server on loopback that answers 503
// and 429 before 200.
#include "reconcile/http_retry.h"

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>

#include "docker/engine_client.h"

namespace reconcile {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using std::chrono::seconds;

// Wall time fixed at 2026-12-01T12:00:00Z; sleeps are recorded, not slept,
// and end at once (false) when a stop is requested.
class FakeClock final : public Clock {
 public:
  std::string NowRfc3339() override { return "2026-12-01T12:00:00Z"; }
  std::chrono::steady_clock::time_point Now() override { return {}; }
  bool SleepFor(milliseconds d, std::stop_token stop) override {
    std::lock_guard<std::mutex> lock(mu);
    if (stop.stop_requested()) return false;
    sleeps.push_back(d);
    return true;
  }
  std::mutex mu;
  std::vector<milliseconds> sleeps;
};

// Answers each connection with the next scripted response (the last one
// repeats), counting requests. HTTP/1.1, Connection: close.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::vector<std::string> responses)
      : responses_(std::move(responses)),
        acceptor_(ioc_, asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), 0)) {
    Accept();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~ScriptedServer() {
    ioc_.stop();
    thread_.join();
  }
  std::string address() const {
    return "tcp://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
  }
  int requests() const { return requests_; }

  static std::string Answer(int status, const std::string& extra_headers = "",
                            const std::string& body = R"({"message":"busy"})") {
    return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: application/json\r\n" +
           extra_headers + "Content-Length: " + std::to_string(body.size()) +
           "\r\nConnection: close\r\n\r\n" + body;
  }

 private:
  void Accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, asio::ip::tcp::socket s) {
      if (ec) return;
      auto socket = std::make_shared<asio::ip::tcp::socket>(std::move(s));
      auto buf = std::make_shared<std::string>();
      asio::async_read_until(
          *socket, asio::dynamic_buffer(*buf), "\r\n\r\n",
          [this, socket, buf](boost::system::error_code e, std::size_t) {
            if (e) return;
            int n = requests_++;
            auto reply = std::make_shared<std::string>(
                responses_[std::min<std::size_t>(n, responses_.size() - 1)]);
            asio::async_write(*socket, asio::buffer(*reply),
                              [socket, reply](boost::system::error_code, std::size_t) {
                                boost::system::error_code ignored;
                                socket->shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
                              });
          });
      Accept();
    });
  }

  std::vector<std::string> responses_;
  asio::io_context ioc_;
  asio::ip::tcp::acceptor acceptor_;
  std::thread thread_;
  std::atomic<int> requests_{0};
};

docker::EngineClient Client(const ScriptedServer& server, Clock* clock,
                            HttpRetryPolicy policy = {}) {
  auto t = docker::NewEngineTransport(server.address(), docker::TlsConfig{});
  REQUIRE_MESSAGE(t.ok(), t.status().message());
  return docker::EngineClient(std::shared_ptr<docker::HttpTransport>(std::move(*t)), clock, policy);
}

TEST_CASE("http retry: Retry-After as delta-seconds or HTTP-date") {
  const std::int64_t now = *ParseRfc3339("2026-12-01T12:00:00Z");
  struct Row {
    const char* value;
    std::optional<milliseconds> want;
  };
  const Row rows[] = {
      {"0", milliseconds(0)},
      {"7", seconds(7)},
      {" 120 ", seconds(120)},
      {"Tue, 01 Dec 2026 12:00:30 GMT", seconds(30)},    // IMF-fixdate
      {"Tuesday, 01-Dec-26 12:01:00 GMT", seconds(60)},  // RFC 850
      {"Tue Dec  1 12:00:05 2026", seconds(5)},          // asctime
      {"Tue, 01 Dec 2026 11:00:00 GMT", seconds(0)},     // in the past
      {"", std::nullopt},
      {"soon", std::nullopt},
      {"-5", std::nullopt},
      {"1.5", std::nullopt},
      {"Tue, 01 Dec 2026 12:00:30 CET", std::nullopt},
  };
  for (const Row& row : rows) {
    CAPTURE(row.value);
    CHECK(ParseRetryAfter(row.value, now) == row.want);
  }
  CHECK(ParseRfc3339("2026-12-01T12:00:00Z") == 1796126400);
  CHECK(IsRetryAfterStatus(429));
  CHECK(IsRetryAfterStatus(503));
  CHECK_FALSE(IsRetryAfterStatus(500));
}

TEST_CASE("http retry: waits as told, backs off without a header, bounded, stoppable") {
  FakeClock clock;
  SUBCASE("Retry-After is honoured") {
    HttpRetry r({}, &clock, {});
    CHECK(r.After(503, "2") == HttpRetry::Verdict::kRetry);
    CHECK(r.After(429, "Tue, 01 Dec 2026 12:00:09 GMT") == HttpRetry::Verdict::kRetry);
    CHECK(clock.sleeps == std::vector<milliseconds>{seconds(2), seconds(9)});
  }
  SUBCASE("other statuses are not retried") {
    HttpRetry r({}, &clock, {});
    CHECK(r.After(500, "1") == HttpRetry::Verdict::kGiveUp);
    CHECK(r.After(404, "") == HttpRetry::Verdict::kGiveUp);
    CHECK(clock.sleeps.empty());
  }
  SUBCASE("growing backoff with jitter, then it gives up") {
    HttpRetryPolicy p;
    p.max_attempts = 4;
    HttpRetry r(p, &clock, {});
    for (int i = 0; i < 3; ++i) CHECK(r.After(503, "") == HttpRetry::Verdict::kRetry);
    CHECK(r.After(503, "") == HttpRetry::Verdict::kGiveUp);
    CHECK(r.note() == "gave up after 4 attempts");
    REQUIRE(clock.sleeps.size() == 3);
    CHECK(clock.sleeps[0] >= milliseconds(250));
    CHECK(clock.sleeps[0] <= milliseconds(500));
    CHECK(clock.sleeps[1] >= milliseconds(500));
    CHECK(clock.sleeps[1] <= milliseconds(1000));
    CHECK(clock.sleeps[2] >= milliseconds(1000));
    CHECK(clock.sleeps[2] <= milliseconds(2000));
  }
  SUBCASE("a Retry-After past the limit is not waited for") {
    HttpRetry r({}, &clock, {});
    CHECK(r.After(503, "3600") == HttpRetry::Verdict::kGiveUp);
    CHECK(r.note().find("3600s") != std::string::npos);
    CHECK(clock.sleeps.empty());
  }
  SUBCASE("a stop ends the wait") {
    std::stop_source stop;
    stop.request_stop();
    HttpRetry r({}, &clock, stop.get_token());
    CHECK(r.After(503, "1") == HttpRetry::Verdict::kCancelled);
  }
}

TEST_CASE("docker engine client: 503 and 429 from a real server are retried as Retry-After says") {
  FakeClock clock;
  SUBCASE("503 then 429 then 200") {
    ScriptedServer server(
        {ScriptedServer::Answer(503, "Retry-After: 2\r\n"),
         ScriptedServer::Answer(429, "Retry-After: Tue, 01 Dec 2026 12:00:03 GMT\r\n"),
         ScriptedServer::Answer(200, "", R"({"Id":"abc","State":{}})")});
    auto client = Client(server, &clock);
    auto j = client.InspectContainer("abc");
    REQUIRE_MESSAGE(j.ok(), j.status().message());
    CHECK((*j)["Id"] == "abc");
    CHECK(server.requests() == 3);
    CHECK(clock.sleeps == std::vector<milliseconds>{seconds(2), seconds(3)});
  }
  SUBCASE("always 503: bounded, then kUnavailable naming the call") {
    ScriptedServer server({ScriptedServer::Answer(503, "Retry-After: 1\r\n")});
    auto client = Client(server, &clock);
    auto st = client.StartContainer("abc");
    CHECK(st.code() == Code::kUnavailable);
    CHECK(st.message() ==
          "docker: POST /containers/abc/start: 503 busy (gave up after 5 attempts)");
    CHECK(server.requests() == 5);
    CHECK(clock.sleeps.size() == 4);
  }
  SUBCASE("a stop during the wait ends the call as cancelled") {
    ScriptedServer server({ScriptedServer::Answer(429, "Retry-After: 30\r\n")});
    std::stop_source stop;
    stop.request_stop();
    auto client = Client(server, &clock).WithStop(stop.get_token());
    auto st = client.StartContainer("abc");
    CHECK(st.code() == Code::kCancelled);
    CHECK(server.requests() == 1);
  }
  SUBCASE("other errors are not retried") {
    ScriptedServer server({ScriptedServer::Answer(500, "Retry-After: 1\r\n")});
    auto client = Client(server, &clock);
    CHECK(client.StartContainer("abc").code() == Code::kUnavailable);
    CHECK(server.requests() == 1);
    CHECK(clock.sleeps.empty());
  }
}

}  // namespace
}  // namespace reconcile
