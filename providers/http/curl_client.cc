// The libcurl Client: one easy handle per attempt, driven by a private multi
// handle so that a stop request wakes the transfer at once
// (curl_multi_wakeup from a std::stop_callback).
#include <arpa/inet.h>
#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <memory>
#include <mutex>
#include <optional>
#include <random>

#include "http/http_client.h"
#include "reconcile/http_retry.h"

#ifndef RECONCILE_VERSION
#define RECONCILE_VERSION "0.0.0"
#endif

namespace reconcile::http {
namespace {

using std::chrono::milliseconds;

// Response headers beyond these limits end the transfer (hostile server).
constexpr std::size_t kMaxHeaderCount = 500;
constexpr std::size_t kMaxHeaderBytes = 256 * 1024;

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

Clock* SystemClock() {
  static const std::unique_ptr<Clock> clock = NewSystemClock();
  return clock.get();
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool IsTokenChar(char c) {
  if (std::isalnum(static_cast<unsigned char>(c))) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool IsToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), IsTokenChar);
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost" || host == "[::1]") return true;
  in_addr addr{};
  if (inet_pton(AF_INET, host.c_str(), &addr) == 1) {
    return (ntohl(addr.s_addr) >> 24) == 127;
  }
  return false;
}

struct UrlParts {
  std::string scheme;  // lower case
  std::string host;    // lower case; IPv6 in brackets
};

std::optional<UrlParts> ParseUrl(const std::string& url) {
  std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> u(curl_url(), curl_url_cleanup);
  if (!u || curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) return std::nullopt;
  UrlParts parts;
  for (auto [part, out] :
       {std::pair{CURLUPART_SCHEME, &parts.scheme}, std::pair{CURLUPART_HOST, &parts.host}}) {
    char* value = nullptr;
    if (curl_url_get(u.get(), part, &value, 0) != CURLUE_OK || value == nullptr) {
      return std::nullopt;
    }
    *out = Lower(value);
    curl_free(value);
  }
  return parts;
}

// The outcome of one attempt.
struct Attempt {
  std::optional<Response> response;
  Status error;
  bool retryable = false;
};

struct Transfer {
  Response response;
  std::size_t max_body = 0;
  bool body_too_large = false;
  std::size_t header_bytes = 0;
  bool headers_too_large = false;
};

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  if (t->response.body.size() + len > t->max_body) {
    t->body_too_large = true;
    return 0;  // anything but len ends the transfer
  }
  t->response.body.append(data, len);
  return len;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  std::string_view line(data, len);
  if (line.starts_with("HTTP/")) {
    // A new response (after a 1xx, or a proxy's answer to CONNECT): only the
    // final one's headers are kept.
    t->response.headers.clear();
    return len;
  }
  t->header_bytes += len;
  if (t->header_bytes > kMaxHeaderBytes || t->response.headers.size() >= kMaxHeaderCount) {
    t->headers_too_large = true;
    return 0;
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return len;  // blank or malformed
  std::string_view name = Trim(line.substr(0, colon));
  if (!IsToken(name)) return len;
  t->response.headers.emplace_back(std::string(name), std::string(Trim(line.substr(colon + 1))));
  return len;
}

bool IsRetriedCurlError(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
      return true;
    default:
      return false;
  }
}

bool IsTlsTrustError(CURLcode code) {
  return code == CURLE_PEER_FAILED_VERIFICATION || code == CURLE_SSL_CACERT_BADFILE ||
         code == CURLE_SSL_CERTPROBLEM || code == CURLE_SSL_ISSUER_ERROR;
}

class CurlClient final : public Client {
 public:
  explicit CurlClient(ClientOptions options) : options_(std::move(options)) {
    if (options_.user_agent.empty()) options_.user_agent = DefaultUserAgent();
    if (options_.max_attempts < 1) options_.max_attempts = 1;
    for (std::string& h : options_.plain_http_hosts) h = Lower(h);
    clock_ = options_.clock != nullptr ? options_.clock : SystemClock();
  }

  Result<Response> Send(const Request& request, std::stop_token stop) override {
    if (Status s = CheckUrl(request.url, options_); !s.ok()) return s;
    const std::string what =
        (request.method.empty() ? "GET" : request.method) + " " + UrlForMessage(request.url);
    if (!request.method.empty() && !IsToken(request.method)) {
      return Status::Invalid(UrlForMessage(request.url) + ": the method is not an HTTP token");
    }
    for (const auto& [name, value] : request.headers) {
      if (!IsToken(name)) {
        return Status::Invalid(what + ": a request header name is not an HTTP token");
      }
      if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
        return Status::Invalid(what + ": the value of request header '" + name +
                               "' holds a line break or a NUL");
      }
    }
    std::minstd_rand rng(std::random_device{}());
    milliseconds backoff = options_.base_backoff;
    for (int attempt = 1;; ++attempt) {
      if (stop.stop_requested()) return Status::Cancelled(what + ": stopped");
      Attempt a = Once(request, what, stop);
      std::optional<milliseconds> wait;
      if (a.response) {
        if (!IsRetriedStatus(a.response->status) || attempt >= options_.max_attempts) {
          return std::move(*a.response);
        }
        std::string retry_after = a.response->Header("Retry-After");
        if (!retry_after.empty()) {
          std::int64_t now =
              ParseRfc3339(clock_->NowRfc3339()).value_or(static_cast<std::int64_t>(time(nullptr)));
          if (auto asked = ParseRetryAfter(retry_after, now)) {
            wait = std::min(*asked, options_.max_retry_after);
          }
        }
      } else {
        if (!a.retryable) return a.error;
        if (attempt >= options_.max_attempts) {
          return Status(a.error.code(), a.error.message() + " (after " + std::to_string(attempt) +
                                            (attempt == 1 ? " attempt)" : " attempts)"));
        }
      }
      if (!wait) {
        std::uniform_int_distribution<long> dist(backoff.count() / 2, backoff.count());
        wait = milliseconds(dist(rng));
        backoff = std::min(backoff * 2, options_.max_backoff);
      }
      if (!clock_->SleepFor(*wait, stop)) {
        return Status::Cancelled(what + ": stopped while waiting to retry");
      }
    }
  }

 private:
  Attempt Once(const Request& request, const std::string& what, std::stop_token stop) {
    Attempt out;
    std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> easy(curl_easy_init(), curl_easy_cleanup);
    std::unique_ptr<CURLM, decltype(&curl_multi_cleanup)> multi(curl_multi_init(),
                                                                curl_multi_cleanup);
    if (!easy || !multi) {
      out.error = Status::Internal(what + ": libcurl could not start a transfer");
      return out;
    }
    CURL* e = easy.get();
    Transfer t;
    t.max_body = options_.max_response_bytes;
    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(e, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!options_.ca_file.empty()) {
      curl_easy_setopt(e, CURLOPT_CAINFO, options_.ca_file.c_str());
      curl_easy_setopt(e, CURLOPT_CAPATH, static_cast<char*>(nullptr));
    } else if (!options_.ca_pem.empty()) {
      curl_blob ca{const_cast<char*>(options_.ca_pem.data()), options_.ca_pem.size(),
                   CURL_BLOB_COPY};
      curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &ca);
      curl_easy_setopt(e, CURLOPT_CAPATH, static_cast<char*>(nullptr));
    }
    if (!options_.client_cert_pem.empty()) {
      curl_blob cert{const_cast<char*>(options_.client_cert_pem.data()),
                     options_.client_cert_pem.size(), CURL_BLOB_COPY};
      curl_blob key{const_cast<char*>(options_.client_key_pem.data()),
                    options_.client_key_pem.size(), CURL_BLOB_COPY};
      curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
      curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &cert);
      curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
      curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &key);
    }
    if (options_.insecure_skip_verify) {
      curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(options_.connect_timeout.count()));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
    curl_easy_setopt(e, CURLOPT_USERAGENT, options_.user_agent.c_str());
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE,
                     static_cast<curl_off_t>(options_.max_response_bytes));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, OnBody);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
    if (auto parts = ParseUrl(request.url);
        parts && parts->scheme == "http" &&
        std::find(options_.plain_http_hosts.begin(), options_.plain_http_hosts.end(),
                  parts->host) != options_.plain_http_hosts.end()) {
      curl_easy_setopt(e, CURLOPT_NOPROXY, "*");  // a metadata server is only reached directly
    }

    const std::string method = request.method.empty() ? "GET" : request.method;
    if (method == "HEAD") {
      curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (method == "GET" && request.body.empty()) {
      curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
      if (!request.body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                         static_cast<curl_off_t>(request.body.size()));
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, request.body.data());
      }
      if (method != "POST") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method.c_str());
    }

    std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers(nullptr,
                                                                        curl_slist_free_all);
    bool has_expect = false;
    for (const auto& [name, value] : request.headers) {
      if (Lower(name) == "expect") has_expect = true;
      // "Name;" is libcurl's way to send a header with an empty value.
      std::string line = value.empty() ? name + ";" : name + ": " + value;
      curl_slist* next = curl_slist_append(headers.get(), line.c_str());
      if (next == nullptr) {
        out.error = Status::Internal(what + ": out of memory");
        return out;
      }
      headers.release();
      headers.reset(next);
    }
    if (!has_expect) {  // no "Expect: 100-continue" round trip for large bodies
      curl_slist* next = curl_slist_append(headers.get(), "Expect:");
      if (next != nullptr) {
        headers.release();
        headers.reset(next);
      }
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers.get());

    CURLM* m = multi.get();
    curl_multi_add_handle(m, e);
    bool cancelled = false;
    CURLcode result = CURLE_OK;
    {
      std::stop_callback wake(stop, [m] { curl_multi_wakeup(m); });
      int running = 1;
      while (true) {
        if (curl_multi_perform(m, &running) != CURLM_OK) {
          result = CURLE_FAILED_INIT;
          break;
        }
        if (running == 0) break;
        if (stop.stop_requested()) {
          cancelled = true;
          break;
        }
        curl_multi_poll(m, nullptr, 0, 1000, nullptr);
        if (stop.stop_requested()) {
          cancelled = true;
          break;
        }
      }
    }
    if (!cancelled && result == CURLE_OK) {
      int queued = 0;
      while (CURLMsg* msg = curl_multi_info_read(m, &queued)) {
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == e) result = msg->data.result;
      }
    }
    curl_multi_remove_handle(m, e);

    if (cancelled) {
      out.error = Status::Cancelled(what + ": stopped");
      return out;
    }
    if (result == CURLE_OK) {
      long status = 0;
      curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
      t.response.status = status;
      out.response = std::move(t.response);
      return out;
    }
    std::string detail = curl_easy_strerror(result);
    if (errbuf[0] != '\0') detail += " (" + std::string(errbuf) + ")";
    if (t.body_too_large || result == CURLE_FILESIZE_EXCEEDED) {
      out.error = Status::Failed(what + ": the response body is larger than the " +
                                 std::to_string(options_.max_response_bytes) +
                                 " bytes this client accepts");
    } else if (t.headers_too_large) {
      out.error = Status::Failed(what +
                                 ": the response headers are larger than this client "
                                 "accepts");
    } else if (result == CURLE_OPERATION_TIMEDOUT) {
      out.error = Status::Unavailable(what + ": timed out (" + detail + ")");
      out.retryable = true;
    } else if (IsTlsTrustError(result)) {
      out.error = Status::Failed(what + ": TLS verification failed: " + detail +
                                 (!options_.ca_pem.empty() && options_.ca_file.empty()
                                      ? std::string("; the server's certificate must chain to "
                                                    "the configured CA and name the host")
                                  : options_.ca_file.empty()
                                      ? "; the server's certificate must chain to a CA in the "
                                        "system store (/etc/ssl/certs) and name the host"
                                      : "; the server's certificate must chain to a CA in " +
                                            options_.ca_file + " and name the host"));
    } else if (IsRetriedCurlError(result)) {
      out.error = Status::Unavailable(what + ": " + detail);
      out.retryable = true;
    } else {
      out.error = Status::Failed(what + ": " + detail);
    }
    return out;
  }

  ClientOptions options_;
  Clock* clock_;
};

}  // namespace

std::string Response::Header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (n.size() == name.size() && std::equal(n.begin(), n.end(), name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        })) {
      return v;
    }
  }
  return "";
}

std::string DefaultUserAgent() { return std::string("reconcile/") + RECONCILE_VERSION; }

bool IsRetriedStatus(long status) {
  return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

std::string UrlForMessage(const std::string& url) {
  std::string out = url.substr(0, url.find_first_of("?#"));
  // Drop any user:password@ before the host.
  if (size_t scheme_end = out.find("://"); scheme_end != std::string::npos) {
    size_t host_start = scheme_end + 3;
    size_t path_start = out.find('/', host_start);
    size_t at = out.rfind('@', path_start == std::string::npos ? out.size() : path_start);
    if (at != std::string::npos && at >= host_start) out.erase(host_start, at + 1 - host_start);
  }
  // Control characters are not printed as they are.
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return out;
}

Status CheckUrl(const std::string& url, const ClientOptions& options) {
  GlobalInit();
  std::optional<UrlParts> parts = ParseUrl(url);
  if (!parts || parts->host.empty()) {
    return Status::Invalid("'" + UrlForMessage(url) +
                           "' is not an absolute http:// or https:// URL with a host");
  }
  if (parts->scheme == "https") return Status::Ok();
  if (parts->scheme != "http") {
    return Status::Invalid("'" + UrlForMessage(url) +
                           "': only https:// (and http:// to "
                           "loopback) URLs are allowed, not " +
                           parts->scheme + "://");
  }
  if (IsLoopbackHost(parts->host)) return Status::Ok();
  for (const std::string& allowed : options.plain_http_hosts) {
    if (Lower(allowed) == parts->host) return Status::Ok();
  }
  return Status::Invalid("'" + UrlForMessage(url) +
                         "' is plain http to a host that is not loopback; use an https:// URL "
                         "(plain http is allowed only to 127.0.0.0/8, ::1 and localhost)");
}

std::unique_ptr<Client> MakeCurlClient(ClientOptions options) {
  GlobalInit();
  return std::make_unique<CurlClient>(std::move(options));
}

}  // namespace reconcile::http
