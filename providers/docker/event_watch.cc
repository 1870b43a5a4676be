#include "docker/event_watch.h"

#include <sys/socket.h>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <stop_token>
#include <thread>
#include <utility>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "docker/engine_events.h"

namespace reconcile::docker {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;

bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost") return true;
  error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  return !ec && addr.is_loopback();
}

class EventWatch final : public DriftWatch {
 public:
  EventWatch(EngineAddress address, std::string environment, DriftNoticeFn on_notice,
             EventWatchOptions options)
      : address_(std::move(address)),
        environment_(std::move(environment)),
        on_notice_(std::move(on_notice)),
        options_(options) {
    thread_ = std::jthread([this](std::stop_token stop) { Run(stop); });
  }

  ~EventWatch() override {
    thread_.request_stop();  // the stop callbacks shut the socket and end the backoff wait
    thread_.join();
  }

 private:
  void Notify(DriftNotice::Kind kind, std::string agent, std::string what) {
    DriftNotice n;
    n.kind = kind;
    n.agent = std::move(agent);
    n.what = std::move(what);
    on_notice_(n);
  }

  void Run(std::stop_token stop) {
    bool gap = false;        // a stream failed (or never came up) since the start
    bool said_lost = false;  // kLost said for the current outage
    auto backoff = options_.initial_backoff;
    while (!stop.stop_requested()) {
      bool up = false;
      Status s = Stream(stop, [&] {
        up = true;
        backoff = options_.initial_backoff;
        if (gap) Notify(DriftNotice::Kind::kResync, "", "event stream re-established");
        said_lost = false;
      });
      if (stop.stop_requested()) return;
      gap = true;
      if (!said_lost) {
        Notify(DriftNotice::Kind::kLost, "", s.message());
        said_lost = true;
      }
      std::mutex m;
      std::condition_variable_any cv;
      std::unique_lock<std::mutex> lock(m);
      cv.wait_for(lock, stop, backoff, [] { return false; });
      if (!up) backoff = std::min(backoff * 2, options_.max_backoff);
    }
  }

  // One stream: connect, ask, read until it ends. Calls `on_up` once the
  // Engine answered 200. Returns why it ended.
  template <typename OnUp>
  Status Stream(const std::stop_token& stop, OnUp on_up) {
    asio::io_context ioc;
    std::stop_callback shut(stop, [this] {
      std::lock_guard<std::mutex> lock(mu_);
      if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
    });
    error_code ec;
    if (address_.kind == EngineAddress::Kind::kUnix) {
      asio::local::stream_protocol::socket socket(ioc);
      socket.connect(asio::local::stream_protocol::endpoint(address_.socket_path), ec);
      if (ec)
        return Status::Unavailable("unix://" + address_.socket_path + ": connect: " + ec.message());
      return Read(socket, stop, on_up, "unix://" + address_.socket_path);
    }
    const std::string where = "tcp://" + address_.host + ":" + address_.port;
    asio::ip::tcp::resolver resolver(ioc);
    auto results = resolver.resolve(address_.host, address_.port, ec);
    if (ec) return Status::Unavailable(where + ": resolve: " + ec.message());
    asio::ip::tcp::socket socket(ioc);
    asio::connect(socket, results, ec);
    if (ec) return Status::Unavailable(where + ": connect: " + ec.message());
    return Read(socket, stop, on_up, where);
  }

  template <typename Socket, typename OnUp>
  Status Read(Socket& socket, const std::stop_token& stop, OnUp& on_up, const std::string& where) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      fd_ = socket.native_handle();
    }
    struct Forget {
      EventWatch* w;
      ~Forget() {
        std::lock_guard<std::mutex> lock(w->mu_);
        w->fd_ = -1;
      }
    } forget{this};
    if (stop.stop_requested()) return Status::Cancelled("stopped");
    const std::string call = "GET /events";
    http::request<http::empty_body> req{http::verb::get,
                                        std::string(kApiPrefix) + EventsPath(environment_), 11};
    req.set(http::field::host, "docker");
    req.set(http::field::user_agent, "reconcile");
    error_code ec;
    http::write(socket, req, ec);
    if (ec) return Status::Unavailable(where + ": " + call + ": write: " + ec.message());
    beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(boost::none);  // a stream: no end; lines are capped by the splitter
    parser.header_limit(64 * 1024);
    http::read_header(socket, buffer, parser, ec);
    if (ec) return Status::Unavailable(where + ": " + call + ": " + ec.message());
    const int code = static_cast<int>(parser.get().result_int());
    if (code != 200) {
      return Status::Unavailable(where + ": " + call + ": HTTP " + std::to_string(code));
    }
    on_up();
    EventLineSplitter splitter;
    char data[16 * 1024];
    while (!parser.is_done()) {
      parser.get().body().data = data;
      parser.get().body().size = sizeof data;
      http::read_some(socket, buffer, parser, ec);  // returns on any progress
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
            ec == asio::error::eof) {
          return Status::Unavailable(where + ": the Engine closed the event stream");
        }
        return Status::Unavailable(where + ": event stream: " + ec.message());
      }
      const std::size_t n = sizeof data - parser.get().body().size;
      for (const std::string& line : splitter.Feed(std::string_view(data, n))) {
        nlohmann::json message = nlohmann::json::parse(line, nullptr, false);
        if (message.is_discarded()) continue;
        auto e = ParseContainerEvent(message, environment_);
        // A kill only says a signal was sent: when it ends the container,
        // die follows (and the Engine's listing may lag the kill, so a
        // pass right after it would find nothing).
        if (e && e->action != "kill") {
          Notify(DriftNotice::Kind::kChanged, e->agent,
                 DescribeContainerAction(e->action) + " (docker event)");
        }
      }
    }
    return Status::Unavailable(where + ": the Engine ended the event stream");
  }

  const EngineAddress address_;
  const std::string environment_;
  const DriftNoticeFn on_notice_;
  const EventWatchOptions options_;
  std::mutex mu_;
  int fd_ = -1;          // the socket being read; guarded by mu_
  std::jthread thread_;  // last: started once everything above is set
};

}  // namespace

std::string DescribeContainerAction(const std::string& action) {
  static const std::map<std::string, std::string> kWords = {
      {"create", "container created"},    {"destroy", "container removed"},
      {"die", "container exited"},        {"kill", "container killed"},
      {"oom", "container out of memory"}, {"pause", "container paused"},
      {"rename", "container renamed"},    {"start", "container started"},
      {"stop", "container stopped"},      {"unpause", "container unpaused"}};
  auto it = kWords.find(action);
  return it == kWords.end() ? "container " + action : it->second;
}

Result<std::unique_ptr<DriftWatch>> NewEventWatch(const std::string& address,
                                                  const std::string& environment,
                                                  DriftNoticeFn on_notice,
                                                  EventWatchOptions options) {
  auto parsed = ParseEngineAddress(address);
  if (!parsed.ok()) return parsed.status();
  if (parsed->kind == EngineAddress::Kind::kTcp && !IsLoopbackHost(parsed->host)) {
    return Status::Invalid("docker host '" + address +
                           "': the event watch speaks plain HTTP only (unix:// or a loopback "
                           "tcp://); drift on this host is found by the --drift-interval scan");
  }
  return std::unique_ptr<DriftWatch>(
      new EventWatch(*parsed, environment, std::move(on_notice), options));
}

}  // namespace reconcile::docker
