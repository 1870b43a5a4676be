// EngineClient: a small synchronous client for the Docker Engine API (v1.41).
//
// Requests go through an HttpTransport; the real one (NewEngineTransport)
// speaks HTTP/1.1 with Boost.Beast over a unix socket ("unix:///path") or TCP
// ("tcp://host:port", plain HTTP only on loopback unless TLS certificates are
// given through DOCKER_CERT_PATH / DOCKER_TLS_VERIFY). Every call opens a new
// connection, has a deadline and a response body limit, and returns a Status
// instead of throwing: transport failures and timeouts are kUnavailable, 4xx
// map to kInvalid/kNotFound/kConflict, 5xx to kUnavailable. Messages name the
// call ("docker: POST /containers/create: 409 ...").
//
// Thread-safety: EngineClient and the real transport keep no mutable state
// after construction; concurrent calls from several threads are safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reconcile/status.h"

namespace reconcile::docker {

inline constexpr const char* kApiPrefix = "/v1.41";
inline constexpr std::size_t kDefaultBodyLimit = 64u * 1024u * 1024u;

struct HttpRequest {
  std::string method;  // "GET", "POST", "DELETE"
  std::string target;  // origin-form: "/v1.41/containers/json?all=1"
  std::string body;    // sent with Content-Type: application/json when non-empty
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};
};

struct HttpResponse {
  int status = 0;
  std::string body;
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

// TLS material for tcp:// (DOCKER_CERT_PATH layout: ca.pem, cert.pem, key.pem).
struct TlsConfig {
  bool enabled = false;
  bool verify = true;
  std::string ca_file, cert_file, key_file;
};

// Reads DOCKER_TLS_VERIFY / DOCKER_CERT_PATH from the environment.
TlsConfig TlsConfigFromEnvironment();

// The real transport. kInvalid for a bad address, or for a non-loopback
// tcp:// address without TLS.
Result<std::unique_ptr<HttpTransport>> NewEngineTransport(
    const std::string& address, const TlsConfig& tls, std::size_t body_limit = kDefaultBodyLimit);

// One plain HTTP GET (used for health checks): kUnavailable when nothing
// answers in time; otherwise the status code and body (capped at body_limit).
Result<HttpResponse> HttpGet(const std::string& host, int port, const std::string& path,
                             std::chrono::milliseconds timeout,
                             std::size_t body_limit = 1024 * 1024);

// Percent-encodes everything but RFC 3986 unreserved characters.
std::string UrlEncode(const std::string& s);

// Maps an engine answer to a Status naming the call. `call` is "POST
// /containers/create"; the engine's {"message": ...} is quoted when present.
Status StatusFromHttp(const std::string& call, const HttpResponse& response);

// Typed calls of the Docker Engine API used by the provider. Paths are given
// without the version prefix. A 2xx answer with unparsable JSON is kUnavailable.
class EngineClient {
 public:
  explicit EngineClient(std::shared_ptr<HttpTransport> transport)
      : transport_(std::move(transport)) {}

  // Raw call: ok for any 2xx (and for 304, which Docker uses for "already
  // done"); otherwise the mapped Status.
  Result<HttpResponse> Call(const std::string& method, const std::string& path,
                            const std::string& body = "",
                            std::chrono::milliseconds timeout = std::chrono::seconds(60)) const;
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
  // GET /images/{name}/json
  Result<nlohmann::json> InspectImage(const std::string& reference) const;
  // POST /images/create?fromImage=&tag=, reading the JSON-lines progress
  // stream; an "error" in the stream is kFailed.
  Status PullImage(const std::string& reference) const;

 private:
  std::shared_ptr<HttpTransport> transport_;
};

// Splits "repo[:tag][@digest]" into (repo, tag-or-digest); tag defaults to "latest".
std::pair<std::string, std::string> SplitImageReference(const std::string& reference);

// Removes Docker's stream multiplexing headers (8 bytes per frame) from a
// logs body; returns the input unchanged if it is not multiplexed.
std::string DemultiplexLogs(const std::string& raw);

}  // namespace reconcile::docker
