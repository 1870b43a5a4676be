#include "source/git_url.h"

#include <arpa/inet.h>

#include <charconv>

#include "reconcile/source.h"

namespace reconcile {
namespace {

// user@host:path with no '/' before the ':' (so "./a:b" and "/x:y" are
// folders).
bool IsScpLike(const std::string& s) {
  auto at = s.find('@');
  auto colon = s.find(':');
  if (at == std::string::npos || colon == std::string::npos || at == 0 || colon < at + 2) {
    return false;
  }
  if (colon + 1 >= s.size()) return false;
  return s.find('/') > colon && s.find("://") == std::string::npos;
}

bool HasScheme(const std::string& s, const char* scheme) {
  return s.rfind(std::string(scheme) + "://", 0) == 0;
}

}  // namespace

bool IsGitUrl(const std::string& location) {
  for (const char* scheme : {"https", "http", "ssh", "git", "file"}) {
    if (HasScheme(location, scheme)) return true;
  }
  return IsScpLike(location);
}

bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  unsigned char v4[4];
  return inet_pton(AF_INET, host.c_str(), v4) == 1 && v4[0] == 127;
}

Result<GitUrl> ParseGitUrl(const std::string& location) {
  GitUrl url;
  auto fail = [&](const std::string& why) {
    std::string shown = url.redacted.empty() ? "the location" : "'" + url.redacted + "'";
    return Status::Invalid("git location " + shown + ": " + why);
  };
  if (IsScpLike(location)) {
    auto at = location.find('@');
    auto colon = location.find(':', at);
    url.scheme = "ssh";
    url.scp_like = true;
    url.user = location.substr(0, at);
    url.host = location.substr(at + 1, colon - at - 1);
    url.path = location.substr(colon + 1);
    url.redacted = location;
    if (url.user.find(':') != std::string::npos) {
      url.redacted = location.substr(at + 1);
      return fail("a password in the location is not allowed; use GitAuth");
    }
    return url;
  }
  auto sep = location.find("://");
  if (sep == std::string::npos) return fail("not a Git URL");
  url.scheme = location.substr(0, sep);
  std::string rest = location.substr(sep + 3);
  if (url.scheme == "file") {
    url.path = rest;
    url.redacted = location;
    if (url.path.empty() || url.path[0] != '/') return fail("file:// needs an absolute path");
    return url;
  }
  if (url.scheme != "https" && url.scheme != "http" && url.scheme != "ssh" && url.scheme != "git") {
    return fail("unsupported scheme");
  }
  auto slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  url.path = slash == std::string::npos ? "" : rest.substr(slash);
  std::string userinfo;
  if (auto at = authority.rfind('@'); at != std::string::npos) {
    userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
  }
  bool password = false;
  if (auto colon = userinfo.find(':'); colon != std::string::npos) {
    url.user = userinfo.substr(0, colon);
    password = true;
  } else {
    url.user = userinfo;
  }
  url.redacted =
      url.scheme + "://" + (url.user.empty() ? "" : url.user + "@") + authority + url.path;
  std::string port;
  if (!authority.empty() && authority[0] == '[') {
    auto close = authority.find(']');
    if (close == std::string::npos) return fail("unclosed '[' in the host");
    url.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return fail("bad host");
      port = authority.substr(close + 2);
    }
  } else if (auto colon = authority.rfind(':'); colon != std::string::npos) {
    url.host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  } else {
    url.host = authority;
  }
  if (url.host.empty()) return fail("no host");
  if (!port.empty()) {
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), url.port);
    if (ec != std::errc() || ptr != port.data() + port.size() || url.port < 1 || url.port > 65535) {
      return fail("bad port '" + port + "'");
    }
  }
  if (password)
    return fail("a password in the URL is not allowed; use a password file or variable");
  return url;
}

}  // namespace reconcile
