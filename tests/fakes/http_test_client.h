// HTTP test client: a blocking Beast client over loopback for tests of the
// controller's HTTP server. Every operation has a deadline (10 s), so that a
// broken server fails the test instead of hanging it. Not thread-safe; one
// Client per thread.
#pragma once

#include <cctype>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace reconcile::testing {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

struct ClientResponse {
  int status = 0;  // 0: no response (closed, reset or timed out)
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  beast::error_code error;
};

// A blocking client with a deadline on every operation, so that a broken
// server fails the test instead of hanging it.
class Client {
 public:
  explicit Client(std::uint16_t port) : stream_(ioc_) {
    beast::error_code ec;
    stream_.socket().connect({net::ip::make_address("127.0.0.1"), port}, ec);
    REQUIRE_MESSAGE(!ec, ec.message());
  }

  beast::error_code WriteRaw(const std::string& data) {
    beast::error_code result;
    stream_.expires_after(std::chrono::seconds(10));
    net::async_write(stream_, net::buffer(data),
                     [&](beast::error_code ec, std::size_t) { result = ec; });
    Run();
    return result;
  }

  beast::error_code Write(http::request<http::string_body>& req) {
    beast::error_code result;
    stream_.expires_after(std::chrono::seconds(10));
    http::async_write(stream_, req, [&](beast::error_code ec, std::size_t) { result = ec; });
    Run();
    return result;
  }

  ClientResponse Read(bool head = false) {
    ClientResponse out;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    parser.skip(head);
    stream_.expires_after(std::chrono::seconds(10));
    http::async_read(stream_, buffer_, parser,
                     [&](beast::error_code ec, std::size_t) { out.error = ec; });
    Run();
    if (out.error) return out;
    const auto& res = parser.get();
    out.status = static_cast<int>(res.result_int());
    out.body = res.body();
    for (const auto& f : res) {
      std::string name(f.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out.headers[name] = std::string(f.value());
    }
    return out;
  }

  // Reads raw bytes until what was read (since the last call) contains
  // `needle`; returns all of it, or nullopt on close (closed() is then
  // true) or at the deadline.
  std::optional<std::string> ReadUntil(const std::string& needle,
                                       std::chrono::seconds deadline = std::chrono::seconds(10)) {
    const auto end = std::chrono::steady_clock::now() + deadline;
    while (raw_.find(needle) == std::string::npos) {
      if (std::chrono::steady_clock::now() >= end) return std::nullopt;
      char buf[4096];
      std::size_t n = 0;
      beast::error_code result;
      stream_.expires_at(end);
      stream_.async_read_some(net::buffer(buf), [&](beast::error_code ec, std::size_t got) {
        result = ec;
        n = got;
      });
      Run();
      if (result == net::error::eof || result == net::error::connection_reset) closed_ = true;
      if (result) return std::nullopt;
      raw_.append(buf, n);
    }
    return std::exchange(raw_, std::string());
  }

  // Waits until the server closes the connection; returns how long it took,
  // or nullopt if it sent data or the deadline passed first.
  std::optional<std::chrono::milliseconds> WaitForClose(std::chrono::seconds deadline) {
    auto start = std::chrono::steady_clock::now();
    char byte;
    beast::error_code result;
    stream_.expires_after(deadline);
    stream_.async_read_some(net::buffer(&byte, 1),
                            [&](beast::error_code ec, std::size_t) { result = ec; });
    Run();
    if (result != net::error::eof && result != net::error::connection_reset) return std::nullopt;
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start);
  }

 private:
  void Run() {
    ioc_.restart();
    ioc_.run();
  }

  net::io_context ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::string raw_;  // ReadUntil's bytes
  bool closed_ = false;

 public:
  bool closed() const { return closed_; }
};

inline ClientResponse Send(std::uint16_t port, http::verb method, const std::string& target,
                           const std::string& body = {},
                           const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  Client c(port);
  http::request<http::string_body> req{method, target, 11};
  req.set(http::field::host, "127.0.0.1");
  for (const auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  if (method != http::verb::get && method != http::verb::head) req.prepare_payload();
  REQUIRE(!c.Write(req));
  return c.Read(method == http::verb::head);
}

}  // namespace reconcile::testing
