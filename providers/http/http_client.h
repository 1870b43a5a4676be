// reconcile::http: the one HTTP client every cloud provider uses (issue #7).
//
// A Client sends one Request and returns its Response (any status: a 404 is
// a Response, not an error) or a Status for what is not an answer: the URL
// refused, a connection or TLS failure, a timeout, a response too large, a
// stop requested. MakeCurlClient is the real one, on libcurl:
//
//  - https with the system CA store (or ClientOptions::ca_file), peer and host
//    verified; only http and https; redirects are not followed (a Location is
//    returned to the caller, who decides, so an Authorization never follows a
//    redirect to another host).
//  - plain http only to loopback (127.0.0.0/8, ::1, localhost) and to the
//    hosts listed in ClientOptions::plain_http_hosts (for the clouds' metadata
//    servers, see kGoogleMetadataHost, kAzureImdsHost); anything else is
//    refused (kInvalid) before a byte is sent. Requests to plain_http_hosts
//    never go through a proxy.
//  - proxies from the environment as libcurl reads them: http_proxy (lower
//    case only), https_proxy / HTTPS_PROXY, all_proxy / ALL_PROXY, no_proxy /
//    NO_PROXY. Nothing in reconcile sets a proxy itself.
//  - timeouts: ClientOptions::connect_timeout and Request::timeout (the whole
//    attempt); a stop requested on the stop_token ends a transfer and any
//    backoff wait at once, with kCancelled.
//  - retries: 429, 500, 502, 503 and 504, and transport failures (connection
//    refused or reset, DNS, timeouts) are retried up to max_attempts in all,
//    waiting Retry-After (delta-seconds or an HTTP-date, capped at
//    max_retry_after) or else an exponential backoff with jitter (in
//    [d/2, d], d = base_backoff * 2^n, at most max_backoff). 500 is retried
//    because Google, Azure and AWS all document it as transient. Any other
//    status (4xx but 429) is returned at once. After the last attempt the last
//    Response is returned, or the last transport error (kUnavailable).
//  - errors name the method and the URL without its query string, and never
//    hold a request header value or body, nor a response body.
//
// Thread-safety: a Client may be used from several threads at once; each
// Send is independent (one libcurl easy handle per call, no shared state).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "reconcile/clock.h"
#include "reconcile/status.h"

namespace reconcile::http {

struct Request {
  std::string method;  // "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"
  std::string url;     // absolute, http:// or https://
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::milliseconds timeout{30000};  // the whole of one attempt
};

struct Response {
  long status = 0;
  // As received (the final answer's headers only), names as the server
  // spelled them, values trimmed.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // The first header of that name (case-insensitive), "" if absent.
  std::string Header(std::string_view name) const;
};

class Client {
 public:
  virtual ~Client() = default;
  // Sends `request` (with retries, see above). Returns the Response, or
  // kInvalid (URL or header refused), kUnavailable (transport failure or
  // timeout after the last attempt), kFailed (TLS verification, a response
  // larger than max_response_bytes), kCancelled (stop requested).
  virtual Result<Response> Send(const Request& request, std::stop_token stop = {}) = 0;
};

// The metadata servers that answer only plain HTTP on a link-local address.
inline constexpr const char* kGoogleMetadataHost = "metadata.google.internal";
inline constexpr const char* kAzureImdsHost = "169.254.169.254";

struct ClientOptions {
  std::string user_agent;  // default "reconcile/<version>"
  std::chrono::milliseconds connect_timeout{10000};
  int max_attempts = 5;  // including the first; 1 = no retry
  std::chrono::milliseconds base_backoff{500};
  std::chrono::milliseconds max_backoff{8000};
  // A longer Retry-After is waited for only this long.
  std::chrono::milliseconds max_retry_after{std::chrono::seconds(60)};
  // A larger response body is an error (kFailed), never a crash.
  std::size_t max_response_bytes = 16 * 1024 * 1024;
  // PEM file of the CAs to trust instead of the system store (tests).
  std::string ca_file;
  // PEM text of the CAs to trust instead of the system store (a kubeconfig's
  // certificate-authority-data); used when ca_file is empty.
  std::string ca_pem;
  // A TLS client certificate and its key, PEM text (a kubeconfig's
  // client-certificate-data / client-key-data). Both or neither. Secret:
  // never in a message.
  std::string client_cert_pem;
  std::string client_key_pem;
  // Skip verifying the server's certificate (a kubeconfig's
  // insecure-skip-tls-verify: true). Never set by default.
  bool insecure_skip_verify = false;
  // Host names (exact, lower case) besides loopback that may be reached over
  // plain http: only the metadata servers (kGoogleMetadataHost,
  // kAzureImdsHost), for the token sources that need them.
  std::vector<std::string> plain_http_hosts;
  // Time for backoff waits and Retry-After dates; must outlive the client.
  // nullptr: the system clock.
  Clock* clock = nullptr;
};

// The real client. Never fails to construct (libcurl is initialised once per
// process).
std::unique_ptr<Client> MakeCurlClient(ClientOptions options = {});

// The user agent MakeCurlClient sends by default: "reconcile/<version>".
std::string DefaultUserAgent();

// Checks that `url` may be requested under `options` (scheme http/https, a
// host, plain http only to loopback or plain_http_hosts). kInvalid naming
// the URL (without its query) otherwise. Send calls this first.
Status CheckUrl(const std::string& url, const ClientOptions& options);

// `url` without its query string and fragment, for messages.
std::string UrlForMessage(const std::string& url);

// True for 429, 500, 502, 503, 504.
bool IsRetriedStatus(long status);

}  // namespace reconcile::http
