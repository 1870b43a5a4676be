#include "controller/http_server.h"

#include <array>
#include <atomic>
#include <cctype>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "controller/listen_address.h"
#include "controller/status_page.h"
#include "controller/webhook.h"

namespace reconcile::controller {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Request = http::request<http::string_body>;

constexpr std::size_t kMaxLoggedTarget = 200;
constexpr std::size_t kDrainLimit = 4 * 1024 * 1024;  // bytes discarded before a close
constexpr std::chrono::seconds kDrainTimeout{2};

std::string_view View(beast::string_view s) { return {s.data(), s.size()}; }

std::string Printable(std::string_view text, std::size_t limit = kMaxLoggedTarget) {
  std::string out;
  for (char c : text.substr(0, limit)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (text.size() > limit) out += "...";
  return out;
}

std::string EndpointText(const tcp::endpoint& ep) {
  if (ep.address().is_v6())
    return "[" + ep.address().to_string() + "]:" + std::to_string(ep.port());
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

std::string PathOf(std::string_view target) {
  return std::string(target.substr(0, target.find('?')));
}

std::optional<WebhookProvider> HookProvider(std::string_view path) {
  if (path == "/hooks/github") return WebhookProvider::kGitHub;
  if (path == "/hooks/gitlab") return WebhookProvider::kGitLab;
  if (path == "/hooks/generic") return WebhookProvider::kGeneric;
  return std::nullopt;
}

// What a route answers; the session turns it into an HTTP response.
struct Reply {
  http::status status = http::status::ok;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::string allow;   // for 405
  std::string detail;  // for the access log
  bool html = false;
  bool events = false;  // 200: switch the connection to an event stream
  bool bearer = false;  // 401: ask for a bearer token
};

Reply Text(http::status status, std::string body, std::string detail = {}) {
  Reply r;
  r.status = status;
  r.body = std::move(body);
  r.detail = std::move(detail);
  return r;
}

Reply Json(http::status status, const nlohmann::json& j, std::string detail = {}) {
  Reply r;
  r.status = status;
  r.content_type = "application/json";
  r.body = j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  r.detail = std::move(detail);
  return r;
}

Reply MethodNotAllowed(const char* allow) {
  Reply r = Text(http::status::method_not_allowed, "method not allowed\n");
  r.allow = allow;
  return r;
}

}  // namespace

class Session;

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  Impl(net::io_context& io_in, HttpServerOptions options_in, ControllerView& view_in,
       Metrics& metrics_in)
      : io(io_in),
        options(std::move(options_in)),
        view(view_in),
        metrics(metrics_in),
        acceptor(net::make_strand(io_in)),
        retry_timer(acceptor.get_executor()) {}

  Status Start();
  void Stop();
  void Accept();
  void OnAccept(beast::error_code ec, tcp::socket socket);
  void RefuseBusy(tcp::socket socket);
  void Log(HttpRequestLog entry) const {
    if (options.on_request) options.on_request(entry);
  }
  void Unregister(Session* s) {
    std::lock_guard<std::mutex> lock(mu);
    sessions.erase(s);
    event_sessions.erase(s);
  }
  // Counts `s` as an event stream; false when max_event_clients are open.
  bool AddEventClient(Session* s, std::weak_ptr<Session> weak) {
    std::lock_guard<std::mutex> lock(mu);
    if (event_sessions.size() >= options.max_event_clients) return false;
    event_sessions.emplace(s, std::move(weak));
    return true;
  }
  // Queues `frame` on every event stream. Any thread; never blocks.
  void Broadcast(const std::shared_ptr<const std::string>& frame);
  // Whether `req` may see the status (no token configured, or it has it).
  bool Authorized(const Request& req) const {
    if (options.status_token.empty()) return true;
    return StatusTokenAccepted(View(req[http::field::authorization]), View(req.target()),
                               options.status_token);
  }

  // Answers one complete request. Never throws.
  Reply Route(const Request& req);
  Reply Webhook(WebhookProvider provider, const Request& req);
  Reply ApprovePlan(const std::string& path, const Request& req);

  net::io_context& io;
  const HttpServerOptions options;
  ControllerView& view;
  Metrics& metrics;
  tcp::acceptor acceptor;
  net::steady_timer retry_timer;
  std::atomic<bool> started{false};
  std::atomic<bool> stopped{false};
  std::atomic<std::uint16_t> port{0};

  mutable std::mutex mu;  // guards the fields below
  std::string address;
  std::map<Session*, std::weak_ptr<Session>> sessions;
  std::map<Session*, std::weak_ptr<Session>> event_sessions;  // a subset of sessions
};

// One connection: read a request, answer it, repeat while keep-alive.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, std::shared_ptr<HttpServer::Impl> server)
      : stream_(std::move(socket)), server_(std::move(server)), buffer_(64 * 1024) {
    beast::error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    if (!ec) remote_ = EndpointText(ep);
  }
  ~Session() { server_->Unregister(this); }

  void Run() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&Session::DoRead, shared_from_this()));
  }

  // Closes the connection from any thread.
  void Close() {
    net::post(stream_.get_executor(), [self = shared_from_this()] { self->CloseNow(); });
  }

  // Queues an event frame on this stream, from any thread.
  void PostFrame(std::shared_ptr<const std::string> frame) {
    net::post(stream_.get_executor(),
              [self = shared_from_this(), frame = std::move(frame)] { self->PushFrame(frame); });
  }

 private:
  void DoRead() {
    if (server_->stopped) {
      stream_.close();
      return;
    }
    parser_.emplace();
    parser_->body_limit(server_->options.max_body_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(server_->options.max_header_bytes));
    // One deadline for the whole request, headers and body: a client that
    // dribbles bytes does not extend it.
    stream_.expires_after(server_->options.read_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Session::OnHeader, shared_from_this()));
  }

  void OnHeader(beast::error_code ec, std::size_t n) {
    if (ec || parser_->is_done()) {
      OnRead(ec, n);
      return;
    }
    if (beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
      static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      net::async_write(stream_, net::buffer(kContinue),
                       [self = shared_from_this()](beast::error_code write_ec, std::size_t) {
                         if (write_ec) {
                           self->stream_.close();
                           return;
                         }
                         self->ReadBody();
                       });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, std::size_t) {
    started_ = std::chrono::steady_clock::now();
    if (ec == http::error::end_of_stream) {
      DrainAndClose();
      return;
    }
    if (ec == beast::error::timeout) return;  // the stream has closed the socket
    if (ec == http::error::body_limit || ec == http::error::header_limit ||
        (ec && ec.category() == http::make_error_code(http::error::bad_target).category() &&
         ec != http::error::partial_message)) {
      Reply r;
      std::string method, target;
      // The start line may have been read even when the header was not done.
      method = std::string(View(parser_->get().method_string()));
      target = std::string(View(parser_->get().target()));
      if (ec == http::error::body_limit) {
        r = Text(http::status::payload_too_large,
                 "request body larger than " + std::to_string(server_->options.max_body_bytes) +
                     " bytes\n",
                 "body over the limit");
      } else if (ec == http::error::header_limit) {
        r = Text(http::status::request_header_fields_too_large, "request headers too large\n",
                 "headers over the limit");
      } else {
        r = Text(http::status::bad_request, "malformed HTTP request\n",
                 "malformed HTTP request: " + ec.message());
      }
      if (auto provider = HookProvider(PathOf(target))) {
        server_->metrics.WebhookRequest(WebhookProviderName(*provider), static_cast<int>(r.status));
      }
      Send(std::move(r), false, false, method, target);
      return;
    }
    if (ec) {
      stream_.close();
      return;
    }
    const Request& req = parser_->get();
    bool head = req.method() == http::verb::head;
    bool keep_alive = req.keep_alive() && !server_->stopped;
    Reply r = server_->Route(req);
    if (r.events && !head) {
      if (server_->AddEventClient(this, weak_from_this())) {
        StartEvents(std::string(View(req.method_string())), std::string(View(req.target())));
        return;
      }
      r = Text(
          http::status::service_unavailable, "too many event streams\n",
          "event stream refused: " + std::to_string(server_->options.max_event_clients) + " open");
    }
    if (r.events) {
      r.content_type = "text/event-stream; charset=utf-8";
      r.events = false;
    }
    Send(std::move(r), keep_alive, head, std::string(View(req.method_string())),
         std::string(View(req.target())));
  }

  void CloseNow() {
    closed_ = true;
    heartbeat_.cancel();
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

  // The connection becomes an event stream: the response head, then frames
  // as they come, until either side closes. Reads only to notice a close.
  void StartEvents(const std::string& method, const std::string& target) {
    stream_.expires_never();
    log_.remote = remote_;
    log_.method = Printable(method, 16);
    log_.target = Printable(RedactToken(target));
    log_.status = 200;
    log_.detail = "event stream";
    log_.elapsed = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - started_);
    server_->Log(std::move(log_));
    log_ = {};
    static const auto kHead = std::make_shared<const std::string>(
        "HTTP/1.1 200 OK\r\nServer: reconcile\r\n"
        "Content-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-store\r\n"
        "X-Content-Type-Options: nosniff\r\nX-Accel-Buffering: no\r\n"
        "Connection: close\r\n\r\nretry: 2000\n\n");
    PushFrame(kHead);
    Heartbeat();
    drain_buf_ = std::make_unique<std::array<char, 16 * 1024>>();
    WatchClose();
  }

  void WatchClose() {
    stream_.socket().async_read_some(
        net::buffer(*drain_buf_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
          if (ec || self->closed_) {
            self->CloseNow();
            return;
          }
          self->WatchClose();  // a client sends nothing more; what it sends is ignored
        });
  }

  void Heartbeat() {
    heartbeat_.expires_after(server_->options.event_heartbeat);
    heartbeat_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->closed_) return;
      static const auto kPing = std::make_shared<const std::string>(": ping\n\n");
      self->PushFrame(kPing);
      self->Heartbeat();
    });
  }

  void PushFrame(std::shared_ptr<const std::string> frame) {
    if (closed_) return;
    if (pending_bytes_ + frame->size() > server_->options.event_max_pending_bytes) {
      server_->Log({remote_,
                    "GET",
                    "/events",
                    0,
                    "event stream dropped: the client does not read (" +
                        std::to_string(pending_bytes_) + " bytes waiting)",
                    {}});
      CloseNow();
      return;
    }
    pending_bytes_ += frame->size();
    frames_.push_back(std::move(frame));
    if (!writing_) WriteFrame();
  }

  void WriteFrame() {
    writing_ = true;
    // A write that does not finish in time closes the stream (the pending
    // read ends with it).
    stream_.expires_after(server_->options.event_write_timeout);
    net::async_write(stream_, net::buffer(*frames_.front()),
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       self->stream_.expires_never();
                       if (ec || self->closed_) {
                         self->CloseNow();
                         return;
                       }
                       self->pending_bytes_ -= self->frames_.front()->size();
                       self->frames_.pop_front();
                       if (self->frames_.empty()) {
                         self->writing_ = false;
                       } else {
                         self->WriteFrame();
                       }
                     });
  }

  void Send(Reply r, bool keep_alive, bool head, const std::string& method,
            const std::string& target) {
    auto res = std::make_shared<http::response<http::string_body>>(r.status, 11);
    res->set(http::field::server, "reconcile");
    res->set(http::field::content_type, r.content_type);
    res->set(http::field::cache_control, "no-store");
    res->set("X-Content-Type-Options", "nosniff");
    if (r.html) {
      res->set("Content-Security-Policy", StatusPageCsp());
    }
    if (!r.allow.empty()) res->set(http::field::allow, r.allow);
    if (r.bearer) res->set(http::field::www_authenticate, "Bearer realm=\"reconcile\"");
    res->keep_alive(keep_alive);
    res->body() = std::move(r.body);
    res->prepare_payload();
    if (head) {
      std::size_t n = res->body().size();
      res->body().clear();
      res->content_length(n);
    }
    res_ = res;
    log_.remote = remote_;
    log_.method = Printable(method, 16);
    log_.target = Printable(RedactToken(target));
    log_.status = static_cast<int>(r.status);
    log_.detail = std::move(r.detail);
    stream_.expires_after(server_->options.read_timeout);
    http::async_write(stream_, *res_,
                      beast::bind_front_handler(&Session::OnWrite, shared_from_this(), keep_alive));
  }

  void OnWrite(bool keep_alive, beast::error_code ec, std::size_t) {
    log_.elapsed = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - started_);
    if (ec) log_.detail += (log_.detail.empty() ? "" : "; ") + std::string("write failed");
    server_->Log(std::move(log_));
    log_ = {};
    res_.reset();
    if (ec) {
      stream_.close();
      return;
    }
    if (!keep_alive) {
      DrainAndClose();
      return;
    }
    DoRead();
  }

  // Half-closes, then reads and discards what the client still sends (a
  // refused body), so that it sees the answer instead of a reset.
  void DrainAndClose() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) {
      stream_.close();
      return;
    }
    drain_buf_ = std::make_unique<std::array<char, 16 * 1024>>();
    stream_.expires_after(kDrainTimeout);
    DoDrain();
  }

  void DoDrain() {
    stream_.async_read_some(net::buffer(*drain_buf_),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ > kDrainLimit) {
                                self->stream_.close();
                                return;
                              }
                              self->DoDrain();
                            });
  }

  beast::tcp_stream stream_;
  std::shared_ptr<HttpServer::Impl> server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<http::response<http::string_body>> res_;
  std::unique_ptr<std::array<char, 16 * 1024>> drain_buf_;
  std::size_t drained_ = 0;
  std::string remote_;
  HttpRequestLog log_;
  std::chrono::steady_clock::time_point started_;
  // Event stream (StartEvents); on the strand.
  net::steady_timer heartbeat_{stream_.get_executor()};
  std::deque<std::shared_ptr<const std::string>> frames_;
  std::size_t pending_bytes_ = 0;
  bool writing_ = false;
  bool closed_ = false;
};

void HttpServer::Impl::Broadcast(const std::shared_ptr<const std::string>& frame) {
  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& [raw, weak] : event_sessions) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
  }
  for (auto& s : live) s->PostFrame(frame);
}

Status HttpServer::Impl::Start() {
  if (started.exchange(true)) return Status::Internal("http server: Start called twice");
  Result<ListenAddress> parsed = ParseListenAddress(options.listen);
  if (!parsed.ok()) return parsed.status();
  const ListenAddress& la = *parsed;
  beast::error_code ec;
  tcp::endpoint ep;
  if (la.all_interfaces()) {
    ep = tcp::endpoint(tcp::v6(), la.port);
    acceptor.open(ep.protocol(), ec);
    if (!ec) {
      acceptor.set_option(net::ip::v6_only(false), ec);
    } else {
      ep = tcp::endpoint(tcp::v4(), la.port);
      ec = {};
      acceptor.open(ep.protocol(), ec);
    }
  } else {
    ep = tcp::endpoint(net::ip::make_address(la.host), la.port);
    acceptor.open(ep.protocol(), ec);
  }
  const std::string what = "http server: listen " + la.ToString();
  if (ec) return Status::Unavailable(what + ": " + ec.message());
  acceptor.set_option(net::socket_base::reuse_address(true), ec);
  acceptor.bind(ep, ec);
  if (ec) return Status::Unavailable(what + ": " + ec.message());
  acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return Status::Unavailable(what + ": " + ec.message());
  auto local = acceptor.local_endpoint(ec);
  if (ec) return Status::Unavailable(what + ": " + ec.message());
  port = local.port();
  {
    std::lock_guard<std::mutex> lock(mu);
    address = EndpointText(local);
  }
  if (options.status_feed) {
    std::weak_ptr<Impl> weak = weak_from_this();
    options.status_feed->Connect(
        [weak]() -> nlohmann::json {
          auto self = weak.lock();
          return self ? self->view.Status() : nlohmann::json();
        },
        [weak](std::shared_ptr<const std::string> frame) {
          if (auto self = weak.lock()) self->Broadcast(frame);
        });
  }
  net::dispatch(acceptor.get_executor(), [self = shared_from_this()] { self->Accept(); });
  return Status::Ok();
}

void HttpServer::Impl::Accept() {
  if (stopped) return;
  acceptor.async_accept(net::make_strand(io),
                        beast::bind_front_handler(&Impl::OnAccept, shared_from_this()));
}

void HttpServer::Impl::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (stopped || ec == net::error::operation_aborted) return;
  if (ec) {
    // EMFILE and friends: report, back off a little, keep accepting.
    Log({"", "", "", 0, "accept failed: " + ec.message(), {}});
    retry_timer.expires_after(std::chrono::milliseconds(100));
    retry_timer.async_wait([self = shared_from_this()](beast::error_code wait_ec) {
      if (!wait_ec) self->Accept();
    });
    return;
  }
  std::shared_ptr<Session> session;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (sessions.size() < options.max_connections) {
      session = std::make_shared<Session>(std::move(socket), shared_from_this());
      sessions.emplace(session.get(), session);
    }
  }
  if (session) {
    session->Run();
  } else {
    RefuseBusy(std::move(socket));
  }
  Accept();
}

void HttpServer::Impl::RefuseBusy(tcp::socket socket) {
  static const std::string kBody = "too many open connections\n";
  static const std::string kBusy =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: " +
      std::to_string(kBody.size()) + "\r\nConnection: close\r\n\r\n" + kBody;
  auto sock = std::make_shared<tcp::socket>(std::move(socket));
  Log({"", "", "", 503, "connection refused: too many open connections", {}});
  net::async_write(*sock, net::buffer(kBusy), [sock](beast::error_code, std::size_t) {
    beast::error_code ec;
    sock->shutdown(tcp::socket::shutdown_both, ec);
    sock->close(ec);
  });
}

void HttpServer::Impl::Stop() {
  if (stopped.exchange(true)) return;
  if (options.status_feed) options.status_feed->Connect({}, {});
  net::post(acceptor.get_executor(), [self = shared_from_this()] {
    beast::error_code ec;
    self->acceptor.close(ec);
    self->retry_timer.cancel();
  });
  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& [raw, weak] : sessions) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
  }
  for (auto& s : live) s->Close();
}

Reply HttpServer::Impl::Route(const Request& req) {
  try {
    const std::string path = PathOf(View(req.target()));
    const http::verb method = req.method();
    const bool get = method == http::verb::get || method == http::verb::head;
    if (auto provider = HookProvider(path)) {
      if (method != http::verb::post) {
        metrics.WebhookRequest(WebhookProviderName(*provider), 405);
        return MethodNotAllowed("POST");
      }
      return Webhook(*provider, req);
    }
    if (path == "/healthz") {
      if (!get) return MethodNotAllowed("GET, HEAD");
      return Text(http::status::ok, "ok\n");
    }
    if (path == "/readyz") {
      if (!get) return MethodNotAllowed("GET, HEAD");
      Readiness r = view.Ready();
      if (r.ready) return Text(http::status::ok, "ready\n");
      std::string reason = r.reason.empty() ? "not ready" : "not ready: " + r.reason;
      return Text(http::status::service_unavailable, reason + "\n", reason);
    }
    if (path == "/metrics") {
      if (!get) return MethodNotAllowed("GET, HEAD");
      Reply r = Text(http::status::ok, metrics.Render());
      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
      return r;
    }
    if (path.rfind("/api/v1/plans/", 0) == 0) return ApprovePlan(path, req);
    const bool page = path == "/" || path == "/events";
    if (path == "/api/v1/status" || (page && options.status_page)) {
      if (!get) return MethodNotAllowed("GET, HEAD");
      if (!Authorized(req)) {
        Reply r = Text(http::status::unauthorized, "a status token is needed\n",
                       "no or wrong status token");
        r.bearer = true;
        return r;
      }
    }
    if (path == "/api/v1/status") return Json(http::status::ok, view.Status());
    if (path == "/" && options.status_page) {
      Reply r = Text(http::status::ok,
                     RenderStatusPage(options.status_feed ? options.status_feed->PageStatus()
                                                          : view.Status()));
      r.content_type = "text/html; charset=utf-8";
      r.html = true;
      return r;
    }
    if (path == "/events" && options.status_page && options.status_feed) {
      Reply r;
      r.events = true;
      return r;
    }
    return Text(http::status::not_found, "not found\n");
  } catch (const std::exception& e) {
    return Text(http::status::internal_server_error, "internal error\n",
                std::string("internal error: ") + e.what());
  }
}

Reply HttpServer::Impl::Webhook(WebhookProvider provider, const Request& req) {
  const char* name = WebhookProviderName(provider);
  WebhookHeaders headers;
  for (const auto& field : req) {
    std::string key(View(field.name_string()));
    for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    headers.emplace(std::move(key), std::string(View(field.value())));
  }
  const std::string* secret = provider == WebhookProvider::kGitHub   ? &options.secrets.github
                              : provider == WebhookProvider::kGitLab ? &options.secrets.gitlab
                                                                     : &options.secrets.generic;
  WebhookVerdict v = VerifyWebhook(provider, headers, req.body(), *secret,
                                   secret->empty() ? std::string() : view.FollowedBranch());
  if (v.kind == WebhookVerdict::Kind::kNotConfigured) {
    v.message = std::string(name) +
                " webhook not configured: the controller has no webhook secret "
                "(--webhook-secret-file)";
  }
  if (v.triggers()) {
    std::string why = v.message;
    if (!v.commit.empty()) why += " (payload says " + v.commit.substr(0, 12) + ")";
    std::string note = view.TriggerWebhook(why, std::string("webhook:") + name);
    if (!note.empty()) v.message += "; " + note;
  }
  int code = v.http_status();
  metrics.WebhookRequest(name, code);
  const char* result = v.triggers()                               ? "triggered"
                       : v.kind == WebhookVerdict::Kind::kIgnored ? "ignored"
                                                                  : "rejected";
  return Json(static_cast<http::status>(code), {{"result", result}, {"message", v.message}},
              v.message);
}

Reply HttpServer::Impl::ApprovePlan(const std::string& path, const Request& req) {
  constexpr std::string_view kPrefix = "/api/v1/plans/";
  constexpr std::string_view kSuffix = "/approve";
  if (!path.ends_with(kSuffix) || path.size() <= kPrefix.size() + kSuffix.size()) {
    return Text(http::status::not_found, "not found\n");
  }
  const std::string id = path.substr(kPrefix.size(), path.size() - kPrefix.size() - kSuffix.size());
  if (req.method() != http::verb::post) return MethodNotAllowed("POST");
  auto answer = [](http::status code, const char* result, const std::string& id,
                   const std::string& message) {
    return Json(code, {{"result", result}, {"id", id}, {"message", message}}, message);
  };
  if (options.approval_token.empty()) {
    return answer(http::status::service_unavailable, "rejected", "",
                  "approvals over the API are off: the controller has no "
                  "--approval-token-file");
  }
  if (!StatusTokenAccepted(View(req[http::field::authorization]), "", options.approval_token)) {
    Reply r = answer(http::status::unauthorized, "rejected", "",
                     "an approval token is needed (Authorization: Bearer <token>)");
    r.bearer = true;
    return r;
  }
  std::string by = "api";
  if (!req.body().empty()) {
    auto body = nlohmann::json::parse(req.body(), nullptr, false);
    if (body.is_discarded() || !body.is_object() ||
        (body.contains("by") && !body["by"].is_string())) {
      return answer(http::status::bad_request, "rejected", "",
                    "the body must be empty or a JSON object {\"by\": \"name\"}");
    }
    std::string name = body.value("by", "");
    std::string clean;
    for (char c : name.substr(0, 100)) {
      if (c >= 0x20 && c < 0x7f) clean += c;
    }
    if (!clean.empty()) by = "api: " + clean;
  }
  ControllerView::ApproveAnswer a = view.Approve(id, by);
  switch (a.status) {
    case 202:
      return answer(http::status::accepted, "approved", a.id, a.message);
    case 404:
      return answer(http::status::not_found, "unknown", a.id, a.message);
    case 409:
      return answer(http::status::conflict, "refused", a.id, a.message);
    case 422:
      return answer(http::status::unprocessable_entity, "refused", a.id, a.message);
    default:
      return answer(http::status::internal_server_error, "error", a.id, a.message);
  }
}

HttpServer::HttpServer(net::io_context& io, HttpServerOptions options, ControllerView& view,
                       Metrics& metrics)
    : impl_(std::make_shared<Impl>(io, std::move(options), view, metrics)) {}

HttpServer::~HttpServer() { impl_->Stop(); }

Status HttpServer::Start() { return impl_->Start(); }

std::uint16_t HttpServer::port() const { return impl_->port; }

std::string HttpServer::address() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->address;
}

void HttpServer::Stop() { impl_->Stop(); }

}  // namespace reconcile::controller
