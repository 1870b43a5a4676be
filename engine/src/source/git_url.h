// GitUrl: the parts of a Git remote location that the Git source needs for
// policy (plain HTTP only to loopback), host key checks (host, port) and
// messages (the location without its password). Pure; thread-safe.
#pragma once

#include <string>

#include "reconcile/status.h"

namespace reconcile {

struct GitUrl {
  std::string scheme;  // "https", "http", "ssh", "git" or "file"; scp-like is "ssh"
  std::string user;    // from the URL; may be empty
  std::string host;    // without brackets; empty for file://
  int port = 0;        // 0: the scheme's default
  std::string path;
  std::string redacted;  // the location with any password removed
  bool scp_like = false;
};

// Parses `location`; kInvalid (naming the redacted location) when it is not
// one of the forms IsGitUrl accepts.
Result<GitUrl> ParseGitUrl(const std::string& location);

// True for "localhost", 127.0.0.0/8 and ::1.
bool IsLoopbackHost(const std::string& host);

}  // namespace reconcile
