// HttpServer: the controller's HTTP/1.1 endpoints, on Boost.Beast, running
// on an io_context the caller owns and runs. Nothing here blocks the I/O
// thread: handlers only call ControllerView (non-blocking by contract),
// Metrics and the pure webhook and page functions.
//
// | method | path | answer |
// | --- | --- | --- |
// | POST | /hooks/github | GitHub push webhook (`X-Hub-Signature-256`, `X-GitHub-Event`) |
// | POST | /hooks/gitlab | GitLab push webhook (`X-Gitlab-Token`, `X-Gitlab-Event`) |
// | POST | /hooks/generic | any sender (`X-Reconcile-Signature-256`, optional `{"ref": ...}`) |
// | GET | /healthz | 200 `ok` while the process serves HTTP |
// | GET | /readyz | 200 `ready`, or 503 with the reason |
// | GET | /metrics | Prometheus text format 0.0.4 |
// | GET | /api/v1/status | ControllerView::Status() as JSON |
// | GET | / | read-only HTML status page (status_page.h) |
// | GET | /events | the page's live updates: server-sent events (text/event-stream) |
// | POST | /api/v1/plans/<id>/approve | ControllerView::Approve, with the approval token |
//
// Approvals: `POST /api/v1/plans/<id>/approve` needs approval_token as
// "Authorization: Bearer <token>" (never a query parameter), else 401; 503
// without one configured. An optional JSON body {"by": "alice"} names the
// approver. Answers JSON {"result": "approved"|"unknown"|"refused", "id",
// "message"}: 202 approved (the pass that applies it runs now), 404 unknown
// id, 409 superseded / stale / already applied, 422 tampered.
//
// Webhooks answer JSON {"result": "triggered"|"ignored"|"rejected",
// "message": ...}: 202 triggered a ref check, 200 ignored (ping, other
// branch, tag, deleted branch, other event), 400 malformed, 401 bad or
// missing signature (triggers nothing), 413 body over max_body_bytes
// (refused from Content-Length before the body is read, or as soon as a
// chunked body passes the limit), 503 no secret configured. Each webhook
// request is counted in reconcile_webhook_requests_total{provider,code}.
// GET routes also answer HEAD; other methods get 405 with Allow; unknown
// paths 404.
//
// The status page: off (status_page false) makes / and /events 404. With a
// status_token, /, /events and /api/v1/status answer 401 unless the request
// carries it (StatusTokenAccepted); the access log shows a ?token= value as
// REDACTED. /events needs a status_feed (else 404): the response is a
// stream that stays open (`Connection: close`, no length) and gets every
// frame the feed broadcasts, and a `: ping` comment every event_heartbeat.
// At most max_event_clients streams at once (further ones get 503). A client
// that does not read is dropped once event_max_pending_bytes wait for it or
// a write has not finished within event_write_timeout: a slow reader never
// blocks the I/O thread or the feed. Stop closes the streams.
//
// Connections: HTTP/1.1 keep-alive; a request (headers and body) must
// arrive within read_timeout of the previous response (or of accept), else
// the connection is dropped (slowloris: sending a byte now and then does not
// extend the deadline); `Expect: 100-continue` is answered once the headers
// pass the limits; headers over max_header_bytes get 431; malformed HTTP
// gets 400; at most max_connections are served at once, further ones get
// 503 and are closed.
//
// Thread-safety: Start, Stop and port() may be called from any thread. If
// the io_context runs on several threads, each connection runs on its own
// strand. `view` and `metrics` must outlive the server, and the server must
// outlive the handlers it queued: destroy it after Stop() once the
// io_context has run them (or after io_context::run returned).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "controller/metrics.h"
#include "controller/status_feed.h"
#include "controller/webhook_secrets.h"
#include "reconcile/status.h"

namespace reconcile::controller {

struct Readiness {
  bool ready = false;
  std::string reason;  // why not ready ("source not fetched yet"); may be empty when ready
};

// What the HTTP server needs from the rest of the controller; implemented
// by the scheduler. Every method must be thread-safe and must not block
// (return cached values; Trigger only queues work).
class ControllerView {
 public:
  virtual ~ControllerView() = default;
  // The status document for /api/v1/status and the page. By convention an
  // object such as {"revision", "branch", "ready", "last_result",
  // "last_error", "last_success", "agents": [{"name", "target", "health",
  // ...}]}; the page shows whatever scalar fields it has.
  virtual nlohmann::json Status() = 0;
  virtual Readiness Ready() = 0;
  // Asks for a ref check of the followed branch now. `why` is for logs
  // ("github push to refs/heads/main (payload says 6113728f27ae)"); `actor`
  // is who asked ("webhook:github"), for the audit log (SchedulerControl).
  virtual void Trigger(const std::string& why, const std::string& actor) = 0;
  // A verified webhook's Trigger (actor "webhook:<provider>"); returns a
  // note for its answer (a follower under leader election: "handed to the
  // leader ..."), "" for none. Default: Trigger.
  virtual std::string TriggerWebhook(const std::string& why, const std::string& actor) {
    Trigger(why, actor);
    return {};
  }
  // The branch pushes are filtered by: "main", or a full ref "refs/tags/v1".
  virtual std::string FollowedBranch() = 0;
  // Approves a plan waiting for approval (README "Approvals"); `by` names
  // the approver. Default: no approvals here.
  struct ApproveAnswer {
    int status = 404;     // 202, 404, 409, 422, 500
    std::string id;       // the full id when found
    std::string message;  // for people
  };
  virtual ApproveAnswer Approve(const std::string& id, const std::string& by) {
    (void)by;
    return {404, "", "no plan " + id + " waits for approval"};
  }
};

// One answered request, for the access log (routed to spdlog by the caller).
struct HttpRequestLog {
  std::string remote;  // "127.0.0.1:51234"
  std::string method;
  std::string target;  // printable ASCII, at most 200 characters
  int status = 0;
  std::string detail;  // webhook verdict or error reason; never a secret
  std::chrono::microseconds elapsed{0};
};

struct HttpServerOptions {
  std::string listen = "127.0.0.1:8080";  // see listen_address.h
  WebhookSecrets secrets;                 // empty ones disable that endpoint
  std::size_t max_body_bytes = 1024 * 1024;
  std::size_t max_header_bytes = 16 * 1024;
  std::chrono::milliseconds read_timeout{10'000};
  std::size_t max_connections = 128;
  bool status_page = true;                  // GET / and /events
  std::shared_ptr<StatusFeed> status_feed;  // history and live updates; may be null
  std::string status_token;                 // empty: no token needed
  std::string approval_token;               // empty: POST .../approve answers 503
  std::size_t max_event_clients = 32;
  std::chrono::milliseconds event_heartbeat{15'000};
  std::chrono::milliseconds event_write_timeout{30'000};
  std::size_t event_max_pending_bytes = 1024 * 1024;
  // Called on the I/O thread after each response is written, and for
  // server errors (with status 0). Must not block. May be empty.
  std::function<void(const HttpRequestLog&)> on_request;
};

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, HttpServerOptions options, ControllerView& view,
             Metrics& metrics);
  ~HttpServer();  // calls Stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens, then accepts on the io_context (which may or may not
  // be running yet). Call once. kInvalid for a bad listen address,
  // kUnavailable when the address cannot be bound (in use, no permission).
  Status Start();
  // The bound port (the ephemeral one for port 0); 0 before Start.
  std::uint16_t port() const;
  // The bound address, "127.0.0.1:43127" or "[::]:8080"; empty before Start.
  std::string address() const;
  // Stops accepting and closes every open connection (asynchronously, on
  // the io_context). Idempotent.
  void Stop();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace reconcile::controller
