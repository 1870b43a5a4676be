// AWS Signature Version 4 (header signing, AWS4-HMAC-SHA256): a pure
// function from (request, credentials, region, service, time) to the
// headers that make the request signed. No I/O, no clock, no logging;
// depends only on OpenSSL (SHA-256, HMAC), not on any HTTP client.
//
// The canonical request, the string to sign and the signature are returned
// too, so tests compare them with the official suite
// (tests/testdata/vectors/sigv4) byte for byte.
//
// Thread-safety: everything here is a pure function of its arguments.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "reconcile/status.h"

namespace reconcile::aws {

using Headers = std::vector<std::pair<std::string, std::string>>;

// AWS credentials. `session_token` is empty for long-term keys. The secret
// and the token are never put into a Status message by this library.
struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
};

// How the request is canonicalized. The defaults are what every AWS service
// except S3 expects (and what App Runner expects).
struct SigningOptions {
  // true: the path is normalized ("." and ".." segments removed, "//"
  // collapsed) and then URI-encoded again (the path as sent is encoded a
  // second time). false (S3): the path is used as sent, only characters
  // that are not already valid in an encoded path are encoded.
  bool normalize_path = true;
  // true: X-Amz-Security-Token is added before signing and is a signed
  // header (what botocore and most services do). false: it is added after
  // the signature and not signed ("post-sts-header-after" in the suite).
  bool sign_session_token = true;
  // true: X-Amz-Content-Sha256 (the payload hash) is added and signed.
  bool add_content_sha256 = false;
};

// What to sign. `target` is the request target exactly as it will be sent:
// the path and the optional "?query" (no scheme or host). `headers` must
// hold Host; every header given is signed. `payload_hash`, when not empty,
// is used instead of SHA-256(body) (e.g. "UNSIGNED-PAYLOAD").
struct SignRequest {
  std::string method;
  std::string target;
  Headers headers;
  std::string body;
  std::string payload_hash;
};

struct SigningScope {
  std::string region;   // "us-east-1"
  std::string service;  // the signing name, "apprunner"
  std::chrono::system_clock::time_point time;
};

// The result of signing. `headers_to_add` holds, in this order and only
// when the request does not carry them already: X-Amz-Date,
// X-Amz-Security-Token (when there is a session token),
// X-Amz-Content-Sha256 (when asked for), and always Authorization last.
struct Signature {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;       // lower-case hex
  std::string authorization;   // the Authorization header's value
  std::string signed_headers;  // "host;x-amz-date"
  Headers headers_to_add;
};

// Signs `request`. Errors (kInvalid; the message never holds the secret or
// the token): no Host header, an empty method, a target that does not start
// with '/', a header name that is not an HTTP token, a header value with CR,
// LF or NUL, an X-Amz-Date header that is not `scope.time`, an
// X-Amz-Security-Token header that differs from the credentials' token,
// empty access key or secret, a region or service that is not
// [a-z0-9-]+, a malformed %XX escape in the target.
Result<Signature> Sign(const SignRequest& request, const Credentials& credentials,
                       const SigningScope& scope, const SigningOptions& options = {});

// The pieces of an absolute http(s) URL a signer needs: the Host header's
// value (the host in lower case, then ":port" unless the port is the
// scheme's default, as botocore sends it) and the request target (path?query, "/" when
// the URL has no path). Errors (kInvalid): not http:// or https://, no host,
// user info in the URL, a fragment, spaces or control characters.
struct UrlParts {
  std::string scheme;
  std::string host_header;
  std::string target;
};
Result<UrlParts> SplitUrl(std::string_view url);

// Building blocks, exposed for the tests.
std::string Sha256Hex(std::string_view data);
std::string HmacSha256(std::string_view key, std::string_view data);  // raw bytes
// "20150830T123600Z" (UTC).
std::string AmzDate(std::chrono::system_clock::time_point time);
// URI-encodes every byte except A-Z a-z 0-9 - _ . ~ (and '/' when
// `keep_slash`), as "%XX" with upper-case hex.
std::string UriEncode(std::string_view s, bool keep_slash);

}  // namespace reconcile::aws
