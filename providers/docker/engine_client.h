// EngineClient: a small synchronous client for the Docker Engine API (v1.41).
//
// Requests go through an HttpTransport; the real one (NewEngineTransport)
// speaks HTTP/1.1 with Boost.Beast over a unix socket ("unix:///path") or TCP
// ("tcp://host:port": TLS that verifies the server, or plain HTTP on loopback
// only). Every call opens a new connection, has a deadline and a response
// body limit, and returns a Status instead of throwing: transport failures
// and timeouts are kUnavailable, 4xx map to kInvalid/kNotFound/kConflict, 5xx
// to kUnavailable. 429 and 503 are first retried as HttpRetry says (honouring
// Retry-After, on the injected Clock, ending at once on the stop token).
// Messages name the call ("docker: POST /containers/create: 409 ...").
//
// Thread-safety: EngineClient and the real transport keep no mutable state
// after construction; concurrent calls from several threads are safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "reconcile/clock.h"
#include "reconcile/http_retry.h"
#include "reconcile/status.h"

namespace reconcile::docker {

inline constexpr const char* kApiPrefix = "/v1.41";
inline constexpr std::size_t kDefaultBodyLimit = 64u * 1024u * 1024u;

struct HttpRequest {
  std::string method;  // "GET", "POST", "DELETE"
  std::string target;  // origin-form: "/v1.41/containers/json?all=1"
  std::string body;    // sent with Content-Type: application/json when non-empty
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};
  std::string content_type;  // overrides application/json (e.g. application/x-tar)
  // Extra headers (X-Registry-Auth, X-Registry-Config). They may hold
  // credentials: never logged, never in a Status.
  std::vector<std::pair<std::string, std::string>> headers;
  // A streamed body instead of `body`: `body_source` gives the next piece
  // (valid until the next call; empty at the end) and `body_size` is the sum
  // of the pieces, sent as Content-Length. A failing source ends the
  // exchange with its status.
  std::function<Result<std::string_view>()> body_source;
  std::uint64_t body_size = 0;
};

struct HttpResponse {
  // Not an aggregate, so that HttpResponse{200, body} needs no Retry-After.
  HttpResponse(int status_code = 0, std::string body_text = "", std::string retry_after_value = "")
      : status(status_code),
        body(std::move(body_text)),
        retry_after(std::move(retry_after_value)) {}
  int status = 0;
  std::string body;
  std::string retry_after;  // the Retry-After header, when the answer has one
};

// Moves one request/response pair. Implementations must be thread-safe.
class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  // kUnavailable on connection failure, timeout or a malformed/oversized
  // response; any HTTP status is a success of the transport.
  virtual Result<HttpResponse> RoundTrip(const HttpRequest& request) = 0;
};

// A parsed DOCKER_HOST-style address.
struct EngineAddress {
  enum class Kind { kUnix, kTcp };
  Kind kind = Kind::kUnix;
  std::string socket_path;  // kUnix
  std::string host;         // kTcp
  std::string port;         // kTcp
};

// Parses "unix:///var/run/docker.sock", "tcp://127.0.0.1:2375". kInvalid otherwise.
Result<EngineAddress> ParseEngineAddress(const std::string& address);

// TLS for tcp://. With verify, the server's certificate must chain to
// ca_file (or, when empty, the system's CAs) and name server_name (or, when
// empty, the address's host: DNS name or IP address). cert_file + key_file:
// the client certificate, when the engine asks for one.
struct TlsConfig {
  bool enabled = false;
  bool verify = true;
  std::string ca_file, cert_file, key_file;
  std::string server_name;
};

// The docker CLI's variables: TLS is on when DOCKER_TLS_VERIFY is non-empty
// (any value, as docker reads it) or DOCKER_CERT_PATH is set; the files of
// DOCKER_CERT_PATH (default ~/.docker) that exist are used: ca.pem as the CA,
// cert.pem + key.pem as the client certificate. Verification is always on
// here: only a Target's tls.verify: false turns it off.
TlsConfig TlsConfigFromEnvironment();

// The real transport. kInvalid for a bad address, for a non-loopback
// tcp:// address without TLS, or for TLS files that cannot be loaded (the
// message names the file).
Result<std::unique_ptr<HttpTransport>> NewEngineTransport(
    const std::string& address, const TlsConfig& tls, std::size_t body_limit = kDefaultBodyLimit);

// One plain HTTP GET (used for health checks): kUnavailable when nothing
// answers in time; otherwise the status code and body (capped at body_limit).
Result<HttpResponse> HttpGet(const std::string& host, int port, const std::string& path,
                             std::chrono::milliseconds timeout,
                             std::size_t body_limit = 1024 * 1024);

// One TCP health probe of host:port (used for healthCheck.tcp). Ok when the
// connection is accepted and the peer neither closes nor resets it within
// `hold` (or sends data first): a published Docker port is accepted by the
// engine's proxy even when nothing listens in the container, and the proxy
// then closes it at once, so an accept alone proves nothing. kUnavailable
// otherwise, saying why. Gives up after `timeout` (connect) plus `hold`.
Status TcpProbe(const std::string& host, int port, std::chrono::milliseconds timeout,
                std::chrono::milliseconds hold);

// Percent-encodes everything but RFC 3986 unreserved characters.
std::string UrlEncode(const std::string& s);

// Maps an engine answer to a Status naming the call. `call` is "POST
// /containers/create"; the engine's {"message": ...} is quoted when present.
Status StatusFromHttp(const std::string& call, const HttpResponse& response);

// Typed calls of the Docker Engine API used by the provider. Paths are given
// without the version prefix. A 2xx answer with unparsable JSON is kUnavailable.
class EngineClient {
 public:
  // `clock` (not owned; nullptr: the system clock) times the 429/503 retries.
  explicit EngineClient(std::shared_ptr<HttpTransport> transport, Clock* clock = nullptr,
                        HttpRetryPolicy retry = {})
      : transport_(std::move(transport)), clock_(clock), retry_(retry) {}

  // A copy whose retry waits end at once (kCancelled) when `stop` is requested.
  EngineClient WithStop(std::stop_token stop) const {
    EngineClient c = *this;
    c.stop_ = std::move(stop);
    return c;
  }
  // A copy whose requests carry `traceparent: <value>` (W3C Trace Context,
  // ApplyChangeRequest::traceparent); "" sends none.
  EngineClient WithTraceparent(std::string value) const {
    EngineClient c = *this;
    c.traceparent_ = std::move(value);
    return c;
  }

  // Raw call: ok for any 2xx (and for 304, which Docker uses for "already
  // done"); otherwise the mapped Status. 429 and 503 are retried first.
  Result<HttpResponse> Call(const std::string& method, const std::string& path,
                            const std::string& body = "",
                            std::chrono::milliseconds timeout = std::chrono::seconds(60)) const;
  // As Call, with a request body of `content_type` and extra headers.
  Result<HttpResponse> CallWith(const std::string& method, const std::string& path,
                                HttpRequest request) const;
  // Call() and parse the body as JSON.
  Result<nlohmann::json> CallJson(
      const std::string& method, const std::string& path, const std::string& body = "",
      std::chrono::milliseconds timeout = std::chrono::seconds(60)) const;

  // GET /containers/json?all=1&filters=<label filters>
  Result<nlohmann::json> ListContainers(const std::vector<std::string>& label_filters) const;
  // GET /containers/{id}/json
  Result<nlohmann::json> InspectContainer(const std::string& id_or_name) const;
  // POST /containers/create?name=; returns the new id. `body` may hold secret
  // values: it never appears in a returned Status.
  Result<std::string> CreateContainer(const std::string& name, const nlohmann::json& body) const;
  Status StartContainer(const std::string& id) const;
  // POST /containers/{id}/stop?t=; SIGTERM, then SIGKILL after the timeout.
  Status StopContainer(const std::string& id, int timeout_seconds) const;
  // DELETE /containers/{id}?force=&v=true
  Status RemoveContainer(const std::string& id, bool force) const;
  Status RenameContainer(const std::string& id, const std::string& new_name) const;
  // The last `tail` lines of stdout+stderr (demultiplexed), best effort.
  Result<std::string> ContainerLogs(const std::string& id, int tail) const;
  // GET /volumes/{name}
  Result<nlohmann::json> InspectVolume(const std::string& name) const;
  // POST /volumes/create with `body` (VolumeCreateOptions); kConflict when
  // the engine refuses the name.
  Status CreateVolume(const nlohmann::json& body) const;
  // DELETE /volumes/{name}; kConflict while a container uses it.
  Status RemoveVolume(const std::string& name) const;
  // GET /networks/{name} (the engine also matches an id prefix: compare Name)
  Result<nlohmann::json> InspectNetwork(const std::string& name) const;
  // POST /networks/create with `body` (NetworkCreateRequest); kConflict when
  // the name exists.
  Status CreateNetwork(const nlohmann::json& body) const;
  // POST /networks/{network}/connect with `body` (NetworkConnectRequest).
  Status ConnectNetwork(const std::string& network, const nlohmann::json& body) const;
  // DELETE /networks/{id}; an error (403) while containers are attached.
  Status RemoveNetwork(const std::string& id) const;
  // GET /images/{name}/json
  Result<nlohmann::json> InspectImage(const std::string& reference) const;
  // POST /images/create?fromImage=&tag=, reading the JSON-lines progress
  // stream; an "error" in the stream is kFailed. `registry_auth` is the
  // X-Registry-Auth value (RegistryAuthHeader), empty for none.
  Status PullImage(const std::string& reference, const std::string& registry_auth = "") const;

 private:
  std::shared_ptr<HttpTransport> transport_;
  Clock* clock_ = nullptr;
  HttpRetryPolicy retry_;
  std::stop_token stop_;
  std::string traceparent_;
};

// The X-Registry-Auth value for `username`/`password` at `server`:
// base64url of {"username","password","serveraddress"}; "e30=" ({}) when
// username is empty. Holds a secret.
std::string RegistryAuthHeader(const std::string& server, const std::string& username,
                               const std::string& password);

// Splits "repo[:tag][@digest]" into (repo, tag-or-digest); tag defaults to "latest".
std::pair<std::string, std::string> SplitImageReference(const std::string& reference);

// Removes Docker's stream multiplexing headers (8 bytes per frame) from a
// logs body; returns the input unchanged if it is not multiplexed.
std::string DemultiplexLogs(const std::string& raw);

}  // namespace reconcile::docker
