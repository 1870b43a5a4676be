#include "aws/sigv4.h"

#include <time.h>

#include <algorithm>
#include <cctype>
#include <map>

#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace reconcile::aws {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
constexpr char kHex[] = "0123456789abcdef";
constexpr char kHexUpper[] = "0123456789ABCDEF";

std::string ToHex(const unsigned char* data, size_t n) {
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kHex[data[i] >> 4]);
    out.push_back(kHex[data[i] & 0xf]);
  }
  return out;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool IsUnreserved(unsigned char c) {
  return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

// RFC 9110 token characters.
bool IsTokenChar(unsigned char c) {
  if (std::isalnum(c)) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

bool IsToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return IsTokenChar(static_cast<unsigned char>(c));
  });
}

bool HasLineBreakOrNul(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

bool IsScopePart(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<std::string> PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) {
      return Status::Invalid(
          "the request's query has a '%' that is not followed by two hex digits");
    }
    int hi = HexValue(s[i + 1]);
    int lo = HexValue(s[i + 2]);
    if (hi < 0 || lo < 0) {
      return Status::Invalid(
          "the request's query has a '%' that is not followed by two hex digits");
    }
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

// botocore's normalize_url_path / remove_dot_segments: RFC 3986 5.2.4, and
// empty segments ("//") dropped as AWS services expect.
std::string NormalizePath(std::string_view path) {
  if (path.empty()) return "/";
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view seg = path.substr(start, end - start);
    if (!seg.empty() && seg != ".") {
      if (seg == "..") {
        if (!out.empty()) out.pop_back();
      } else {
        out.push_back(seg);
      }
    }
    start = end + 1;
  }
  std::string result = path.front() == '/' ? "/" : "";
  for (size_t i = 0; i < out.size(); ++i) {
    if (i > 0) result += '/';
    result += out[i];
  }
  if (path.back() == '/' && !out.empty()) result += '/';
  return result;
}

// S3 mode: the path is used as sent; only bytes that cannot appear in an
// encoded path are encoded.
Result<std::string> S3CanonicalPath(std::string_view path) {
  std::string out;
  for (size_t i = 0; i < path.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(path[i]);
    if (c == '%') {
      if (i + 2 >= path.size() || HexValue(path[i + 1]) < 0 || HexValue(path[i + 2]) < 0) {
        return Status::Invalid(
            "the request's path has a '%' that is not followed by two hex digits");
      }
      out.append(path.substr(i, 3));
      i += 2;
    } else if (IsUnreserved(c) || c == '/') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHexUpper[c >> 4]);
      out.push_back(kHexUpper[c & 0xf]);
    }
  }
  return out.empty() ? std::string("/") : out;
}

Result<std::string> CanonicalQuery(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> pairs;
  size_t start = 0;
  while (start <= query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string_view::npos) end = query.size();
    std::string_view item = query.substr(start, end - start);
    start = end + 1;
    if (item.empty()) continue;
    size_t eq = item.find('=');
    std::string_view key = item.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? "" : item.substr(eq + 1);
    auto k = PercentDecode(key);
    if (!k.ok()) return k.status();
    auto v = PercentDecode(value);
    if (!v.ok()) return v.status();
    pairs.emplace_back(UriEncode(*k, false), UriEncode(*v, false));
  }
  std::sort(pairs.begin(), pairs.end());
  std::string out;
  for (const auto& [k, v] : pairs) {
    if (!out.empty()) out += '&';
    out += k;
    out += '=';
    out += v;
  }
  return out;
}

// Trimall: leading and trailing blanks removed, each run of blanks inside
// the value made one space.
std::string TrimAll(std::string_view value) {
  std::string out;
  bool pending_space = false;
  for (char c : value) {
    if (c == ' ' || c == '\t' || c == '\v' || c == '\f') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
  }
  return out;
}

std::string SigningKeySignature(const Credentials& credentials, std::string_view date,
                                const SigningScope& scope, std::string_view string_to_sign) {
  std::string k = HmacSha256("AWS4" + credentials.secret_access_key, date);
  k = HmacSha256(k, scope.region);
  k = HmacSha256(k, scope.service);
  k = HmacSha256(k, "aws4_request");
  std::string sig = HmacSha256(k, string_to_sign);
  return ToHex(reinterpret_cast<const unsigned char*>(sig.data()), sig.size());
}

}  // namespace

std::string Sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr);
  return ToHex(md, n);
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &n);
  return std::string(reinterpret_cast<const char*>(md), n);
}

std::string AmzDate(std::chrono::system_clock::time_point time) {
  time_t t = std::chrono::system_clock::to_time_t(time);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string UriEncode(std::string_view s, bool keep_slash) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (IsUnreserved(c) || (keep_slash && c == '/')) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHexUpper[c >> 4]);
      out.push_back(kHexUpper[c & 0xf]);
    }
  }
  return out;
}

Result<Signature> Sign(const SignRequest& request, const Credentials& credentials,
                       const SigningScope& scope, const SigningOptions& options) {
  if (request.method.empty() || !std::all_of(request.method.begin(), request.method.end(),
                                             [](char c) { return c >= 'A' && c <= 'Z'; })) {
    return Status::Invalid("SigV4: the request method must be upper-case letters (GET, POST, ...)");
  }
  if (request.target.empty() || request.target.front() != '/') {
    return Status::Invalid("SigV4: the request target must start with '/'");
  }
  if (HasLineBreakOrNul(request.target)) {
    return Status::Invalid("SigV4: the request target holds a line break or NUL");
  }
  if (credentials.access_key_id.empty() || credentials.secret_access_key.empty()) {
    return Status::Invalid("SigV4: the credentials have no access key id or no secret access key");
  }
  for (char c : credentials.access_key_id) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= ' ' || u >= 0x7f || c == ',' || c == '/' || c == '=') {
      return Status::Invalid(
          "SigV4: the access key id holds a character that cannot be in a credential scope");
    }
  }
  if (HasLineBreakOrNul(credentials.session_token)) {
    return Status::Invalid("SigV4: the session token holds a line break or NUL");
  }
  if (!IsScopePart(scope.region)) {
    return Status::Invalid(
        "SigV4: the region must be lower-case letters, digits and '-' (us-east-1)");
  }
  if (!IsScopePart(scope.service)) {
    return Status::Invalid(
        "SigV4: the service's signing name must be lower-case letters, digits and '-' (apprunner)");
  }

  const std::string amz_date = AmzDate(scope.time);
  const std::string date = amz_date.substr(0, 8);

  // Lower-case name -> values in the order given.
  std::map<std::string, std::vector<std::string>> signed_headers;
  for (const auto& [name, value] : request.headers) {
    if (!IsToken(name)) {
      return Status::Invalid("SigV4: a header name is not an HTTP token");
    }
    if (HasLineBreakOrNul(value)) {
      return Status::Invalid("SigV4: the value of header " + name + " holds a line break or NUL");
    }
    signed_headers[Lower(name)].push_back(TrimAll(value));
  }
  if (!signed_headers.contains("host")) {
    return Status::Invalid("SigV4: the request has no Host header");
  }

  Headers to_add;
  if (auto it = signed_headers.find("x-amz-date"); it != signed_headers.end()) {
    if (it->second.size() != 1 || it->second.front() != amz_date) {
      return Status::Invalid("SigV4: the request's X-Amz-Date header is not the signing time " +
                             amz_date);
    }
  } else {
    signed_headers["x-amz-date"].push_back(amz_date);
    to_add.emplace_back("X-Amz-Date", amz_date);
  }

  bool token_after = false;
  if (!credentials.session_token.empty()) {
    if (auto it = signed_headers.find("x-amz-security-token"); it != signed_headers.end()) {
      if (it->second.size() != 1 || it->second.front() != TrimAll(credentials.session_token)) {
        return Status::Invalid(
            "SigV4: the request's X-Amz-Security-Token header is not the credentials' session "
            "token");
      }
    } else if (options.sign_session_token) {
      signed_headers["x-amz-security-token"].push_back(TrimAll(credentials.session_token));
      to_add.emplace_back("X-Amz-Security-Token", credentials.session_token);
    } else {
      token_after = true;
    }
  }

  std::string payload_hash = request.payload_hash;
  if (auto it = signed_headers.find("x-amz-content-sha256");
      it != signed_headers.end() && payload_hash.empty()) {
    payload_hash = it->second.front();
  }
  if (payload_hash.empty()) payload_hash = Sha256Hex(request.body);
  if (HasLineBreakOrNul(payload_hash)) {
    return Status::Invalid("SigV4: the payload hash holds a line break or NUL");
  }
  if (options.add_content_sha256 && !signed_headers.contains("x-amz-content-sha256")) {
    signed_headers["x-amz-content-sha256"].push_back(payload_hash);
    to_add.emplace_back("X-Amz-Content-Sha256", payload_hash);
  }

  const std::string_view target = request.target;
  const size_t qpos = target.find('?');
  const std::string_view path = target.substr(0, qpos);
  const std::string_view query =
      qpos == std::string_view::npos ? std::string_view() : target.substr(qpos + 1);

  std::string canonical_path;
  if (options.normalize_path) {
    canonical_path = UriEncode(NormalizePath(path), true);
  } else {
    auto p = S3CanonicalPath(path);
    if (!p.ok()) return p.status().WithContext("SigV4");
    canonical_path = *p;
  }
  auto canonical_query = CanonicalQuery(query);
  if (!canonical_query.ok()) return canonical_query.status().WithContext("SigV4");

  Signature out;
  std::string canonical_headers;
  for (const auto& [name, values] : signed_headers) {
    canonical_headers += name;
    canonical_headers += ':';
    for (size_t i = 0; i < values.size(); ++i) {
      if (i > 0) canonical_headers += ',';
      canonical_headers += values[i];
    }
    canonical_headers += '\n';
    if (!out.signed_headers.empty()) out.signed_headers += ';';
    out.signed_headers += name;
  }

  out.canonical_request = request.method + "\n" + canonical_path + "\n" + *canonical_query + "\n" +
                          canonical_headers + "\n" + out.signed_headers + "\n" + payload_hash;
  const std::string credential_scope =
      date + "/" + scope.region + "/" + scope.service + "/aws4_request";
  out.string_to_sign = std::string(kAlgorithm) + "\n" + amz_date + "\n" + credential_scope + "\n" +
                       Sha256Hex(out.canonical_request);
  out.signature = SigningKeySignature(credentials, date, scope, out.string_to_sign);
  out.authorization = std::string(kAlgorithm) + " Credential=" + credentials.access_key_id + "/" +
                      credential_scope + ", SignedHeaders=" + out.signed_headers +
                      ", Signature=" + out.signature;
  if (token_after) to_add.emplace_back("X-Amz-Security-Token", credentials.session_token);
  to_add.emplace_back("Authorization", out.authorization);
  out.headers_to_add = std::move(to_add);
  return out;
}

Result<UrlParts> SplitUrl(std::string_view url) {
  for (char c : url) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= ' ' || u == 0x7f) {
      return Status::Invalid("the URL holds a space or a control character");
    }
  }
  UrlParts parts;
  size_t sep = url.find("://");
  if (sep == std::string_view::npos) {
    return Status::Invalid("the URL does not start with http:// or https://");
  }
  parts.scheme = Lower(url.substr(0, sep));
  if (parts.scheme != "http" && parts.scheme != "https") {
    return Status::Invalid("the URL does not start with http:// or https://");
  }
  std::string_view rest = url.substr(sep + 3);
  if (rest.find('#') != std::string_view::npos) {
    return Status::Invalid("the URL has a fragment ('#')");
  }
  size_t end = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, end);
  if (authority.find('@') != std::string_view::npos) {
    return Status::Invalid("the URL holds user info ('user@'); put credentials elsewhere");
  }
  std::string_view host = authority;
  std::string_view port;
  size_t colon = authority.rfind(':');
  size_t bracket = authority.rfind(']');
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    if (port.empty() || port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return Status::Invalid("the URL's port is not a number");
    }
  }
  if (host.empty() || host == "[]") return Status::Invalid("the URL has no host");
  const bool default_port =
      (parts.scheme == "https" && port == "443") || (parts.scheme == "http" && port == "80");
  // Lower-case, as botocore and the AWS SDKs put it into the Host header.
  parts.host_header = Lower(host);
  if (!port.empty() && !default_port) parts.host_header += ":" + std::string(port);
  if (end == std::string_view::npos) {
    parts.target = "/";
  } else if (rest[end] == '?') {
    parts.target = "/" + std::string(rest.substr(end));
  } else {
    parts.target = std::string(rest.substr(end));
  }
  return parts;
}

}  // namespace reconcile::aws
