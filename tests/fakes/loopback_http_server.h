// LoopbackHttpServer: a real HTTP/1.1 server on 127.0.0.1 (an ephemeral
// port) for the HTTP client and token source tests. Each connection carries
// one request; the handler returns the raw bytes to answer with (so a test
// can send hostile answers), or nullopt to hold the connection open without
// answering until the server is destroyed (timeouts, cancellation).
// ManualClock: a Clock whose time moves only when a test says so; sleeps are
// recorded and advance it.
//
// Thread-safety: the handler runs on the server's thread; requests() may be
// read from any thread.
#pragma once

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "reconcile/clock.h"

namespace reconcile::testing {

struct SeenRequest {
  std::string method;
  std::string target;  // as sent: a path, or an absolute URI through a proxy
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  std::string Header(const std::string& name) const {
    for (const auto& [n, v] : headers) {
      if (n.size() == name.size() &&
          std::equal(n.begin(), n.end(), name.begin(),
                     [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
        return v;
      }
    }
    return "";
  }
};

class LoopbackHttpServer {
 public:
  using Handler = std::function<std::optional<std::string>(const SeenRequest&)>;

  explicit LoopbackHttpServer(Handler handler)
      : handler_(std::move(handler)),
        acceptor_(io_,
                  boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0)) {
    thread_ = std::thread([this] { Serve(); });
  }
  ~LoopbackHttpServer() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    boost::system::error_code ec;
    boost::asio::ip::tcp::socket poke(io_);
    poke.connect(acceptor_.local_endpoint(), ec);
    thread_.join();
  }
  LoopbackHttpServer(const LoopbackHttpServer&) = delete;
  LoopbackHttpServer& operator=(const LoopbackHttpServer&) = delete;

  int port() const { return acceptor_.local_endpoint().port(); }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(port()); }
  std::string url(const std::string& path) const { return base() + path; }

  std::vector<SeenRequest> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  std::size_t count() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_.size();
  }

  // A complete answer with Content-Length and Connection: close.
  static std::string Answer(int status, const std::string& body = "",
                            const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    std::string out = "HTTP/1.1 " + std::to_string(status) + " Status\r\n";
    for (const auto& [n, v] : headers) out += n + ": " + v + "\r\n";
    out += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
    return out + body;
  }
  static std::string Json(int status, const std::string& body,
                          std::vector<std::pair<std::string, std::string>> headers = {}) {
    headers.emplace_back("Content-Type", "application/json");
    return Answer(status, body, headers);
  }

 private:
  void Serve() {
    namespace http = boost::beast::http;
    while (true) {
      boost::asio::ip::tcp::socket socket(io_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stop_) return;
      }
      if (ec) continue;
      boost::beast::flat_buffer buffer;
      http::request_parser<http::string_body> parser;
      parser.body_limit(64 * 1024 * 1024);
      http::read(socket, buffer, parser, ec);
      if (ec) continue;
      const auto& req = parser.get();
      SeenRequest seen;
      seen.method = std::string(req.method_string());
      seen.target = std::string(req.target());
      for (const auto& field : req) {
        seen.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
      }
      seen.body = req.body();
      {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(seen);
      }
      std::optional<std::string> answer = handler_(seen);
      if (!answer) {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_; });
        return;
      }
      boost::asio::write(socket, boost::asio::buffer(*answer), ec);
      socket.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    }
  }

  Handler handler_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::vector<SeenRequest> requests_;
};

// Time starts at 2026-12-01T12:00:00Z; Advance and SleepFor move both the
// wall and the monotonic time. SleepFor returns false at once when stopped.
class ManualClock final : public Clock {
 public:
  std::string NowRfc3339() override {
    std::lock_guard<std::mutex> lock(mu_);
    std::time_t t = static_cast<std::time_t>(kStart + offset_.count() / 1000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
  }
  std::chrono::steady_clock::time_point Now() override {
    std::lock_guard<std::mutex> lock(mu_);
    return std::chrono::steady_clock::time_point(offset_);
  }
  bool SleepFor(std::chrono::milliseconds d, std::stop_token stop) override {
    if (stop.stop_requested()) return false;
    std::lock_guard<std::mutex> lock(mu_);
    sleeps_.push_back(d);
    offset_ += d;
    return true;
  }
  void Advance(std::chrono::milliseconds d) {
    std::lock_guard<std::mutex> lock(mu_);
    offset_ += d;
  }
  std::int64_t UnixNow() {
    std::lock_guard<std::mutex> lock(mu_);
    return kStart + offset_.count() / 1000;
  }
  std::vector<std::chrono::milliseconds> sleeps() {
    std::lock_guard<std::mutex> lock(mu_);
    return sleeps_;
  }

  static constexpr std::int64_t kStart = 1796126400;  // 2026-12-01T12:00:00Z

 private:
  std::mutex mu_;
  std::chrono::milliseconds offset_{0};
  std::vector<std::chrono::milliseconds> sleeps_;
};

}  // namespace reconcile::testing
