// The Docker provider's drift watch (event_watch.h) against a small engine
// on a real unix socket: it asks GET /v1.41/events with our filters, turns
// our container events into notices (across chunk boundaries), drops the
// others, says when the stream is lost, reconnects and says resync, and
// stops promptly while a stream is open.
#include "docker/event_watch.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "docker/engine_events.h"
#include "fakes/temp_dir.h"

namespace reconcile::docker {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

std::string EventLine(const std::string& action, const std::string& agent,
                      const std::string& environment = "") {
  json attributes = {{"name", agent + "-0"},
                     {"reconcile.dev/managed-by", "reconcile"},
                     {"reconcile.dev/agent", agent}};
  if (!environment.empty()) attributes["reconcile.dev/environment"] = environment;
  return json{{"Type", "container"},
              {"Action", action},
              {"Actor", {{"ID", "c0ffee"}, {"Attributes", attributes}}},
              {"timeNano", 1}}
             .dump() +
         "\n";
}

std::string Chunk(const std::string& data) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  return size + data + "\r\n";
}

// An engine that answers each connection's GET /events with a chunked 200
// and the pieces of `streams[i]` as chunks; the first stream then ends (the
// Engine restarted), the last one stays open until the client goes.
class FakeEventEngine {
 public:
  FakeEventEngine(std::string path, std::vector<std::vector<std::string>> streams)
      : path_(std::move(path)), streams_(std::move(streams)) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd_, 4) == 0);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeEventEngine() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  void Serve() {
    for (std::size_t i = 0; i < streams_.size(); ++i) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string head;
      char buf[1024];
      while (head.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::read(c, buf, sizeof buf);
        if (n <= 0) break;
        head.append(buf, static_cast<std::size_t>(n));
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(head.substr(0, head.find("\r\n")));
      }
      std::string out =
          "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
      for (const std::string& piece : streams_[i]) out += Chunk(piece);
      (void)!::write(c, out.data(), out.size());
      if (i + 1 < streams_.size()) {
        ::close(c);  // the Engine went away mid-stream
        continue;
      }
      while (::read(c, buf, sizeof buf) > 0) {  // until the watch hangs up
      }
      ::close(c);
    }
  }

  std::string path_;
  std::vector<std::vector<std::string>> streams_;
  int fd_ = -1;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> requests_;
};

struct Notices {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<DriftNotice> got;
  DriftNoticeFn Fn() {
    return [this](const DriftNotice& n) {
      std::lock_guard<std::mutex> lock(mu);
      got.push_back(n);
      cv.notify_all();
    };
  }
  // Waits (up to 10 s: a hang, not a timing check) for `n` notices.
  std::vector<DriftNotice> WaitFor(std::size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, 10s, [&] { return got.size() >= n; });
    return got;
  }
};

TEST_CASE("event watch: notices, a lost stream, a reconnect and a resync") {
  testing::TempDir tmp;
  const std::string sock = (tmp.path() / "engine.sock").string();
  const std::string stop = EventLine("stop", "web");
  FakeEventEngine engine(
      sock, {
                // Split mid-line: lines are whole whatever the chunks.
                {stop.substr(0, 10), stop.substr(10) + EventLine("die", "other", "prod")},
                {EventLine("destroy", "web")},
            });
  Notices notices;
  EventWatchOptions options;
  options.initial_backoff = 10ms;
  {
    auto watch = NewEventWatch("unix://" + sock, "", notices.Fn(), options);
    REQUIRE(watch.ok());
    auto got = notices.WaitFor(4);
    REQUIRE(got.size() >= 4);
    CHECK(got[0].kind == DriftNotice::Kind::kChanged);
    CHECK(got[0].agent == "web");
    CHECK(got[0].what == "container stopped (docker event)");
    // "other" is another environment's: dropped.
    CHECK(got[1].kind == DriftNotice::Kind::kLost);
    CHECK(got[1].what.find("closed the event stream") != std::string::npos);
    CHECK(got[2].kind == DriftNotice::Kind::kResync);
    CHECK(got[3].kind == DriftNotice::Kind::kChanged);
    CHECK(got[3].what == "container removed (docker event)");
  }  // destroyed while the second stream is open: must return (no hang)
  auto requests = engine.requests();
  REQUIRE(requests.size() == 2);
  const std::string want = "GET " + std::string(kApiPrefix) + EventsPath("") + " HTTP/1.1";
  CHECK(requests[0] == want);
  CHECK(requests[1] == want);
  std::lock_guard<std::mutex> lock(notices.mu);
  CHECK(notices.got.size() == 4);  // nothing after the watch was destroyed
}

TEST_CASE("event watch: an engine that is not there is reported once, then retried") {
  testing::TempDir tmp;
  const std::string sock = (tmp.path() / "later.sock").string();
  Notices notices;
  EventWatchOptions options;
  options.initial_backoff = 10ms;
  options.max_backoff = 20ms;
  std::optional<FakeEventEngine> engine;  // outlives the watch, whose stream it holds open
  auto watch = NewEventWatch("unix://" + sock, "staging", notices.Fn(), options);
  REQUIRE(watch.ok());
  auto got = notices.WaitFor(1);
  REQUIRE(got.size() == 1);
  CHECK(got[0].kind == DriftNotice::Kind::kLost);
  CHECK(got[0].what.find("connect") != std::string::npos);
  // The engine comes up: a resync (events may have been missed), then events.
  engine.emplace(sock, std::vector<std::vector<std::string>>{{EventLine("kill", "api", "staging") +
                                                              EventLine("die", "api", "staging")}});
  got = notices.WaitFor(3);
  REQUIRE(got.size() == 3);
  CHECK(got[1].kind == DriftNotice::Kind::kResync);
  CHECK(got[2].agent == "api");
  CHECK(got[2].what == "container exited (docker event)");  // the kill alone is none
  watch->reset();
}

TEST_CASE("event watch: a remote tcp:// engine is refused (plain HTTP only)") {
  Notices notices;
  auto watch = NewEventWatch("tcp://192.0.2.10:2376", "", notices.Fn());
  REQUIRE_FALSE(watch.ok());
  CHECK(watch.status().code() == Code::kInvalid);
  CHECK(watch.status().message().find("--drift-interval") != std::string::npos);
}

}  // namespace
}  // namespace reconcile::docker
