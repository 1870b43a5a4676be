// Tests for the known_hosts check (known_hosts.h) and Git URL parsing
// (git_url.h): host patterns, ports, hashed names, changed and revoked keys;
// URL forms, redaction and the loopback rule.
#include "source/known_hosts.h"

#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "fakes/temp_dir.h"
#include "fixtures/git_repo.h"
#include "source/git_url.h"

namespace reconcile {
namespace {

// SSH wire-format blob: string type, string data.
std::string Blob(const std::string& type, const std::string& data) {
  auto str = [](const std::string& s) {
    std::string out(4, '\0');
    out[0] = static_cast<char>((s.size() >> 24) & 0xFF);
    out[1] = static_cast<char>((s.size() >> 16) & 0xFF);
    out[2] = static_cast<char>((s.size() >> 8) & 0xFF);
    out[3] = static_cast<char>(s.size() & 0xFF);
    return out + s;
  };
  return str(type) + str(data);
}

std::string Base64(const std::string& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                 (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    out += {k[v >> 18], k[(v >> 12) & 63], k[(v >> 6) & 63], k[v & 63]};
  }
  if (i + 1 == in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += {k[v >> 18], k[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    unsigned v =
        (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += {k[v >> 18], k[(v >> 12) & 63], k[(v >> 6) & 63], '='};
  }
  return out;
}

TEST_CASE("known_hosts: base64 round trip") {
  for (const std::string& s :
       std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)}) {
    std::string back;
    REQUIRE(DecodeBase64(Base64(s), back));
    CHECK(back == s);
  }
  std::string out;
  CHECK_FALSE(DecodeBase64("ab$c", out));
}

TEST_CASE("known_hosts: which entries match") {
  const std::string key = Blob("ssh-ed25519", std::string(32, 'k'));
  const std::string other = Blob("ssh-ed25519", std::string(32, 'o'));
  const std::string rsa = Blob("ssh-rsa", std::string(64, 'r'));
  const std::string line = " ssh-ed25519 " + Base64(key) + " comment\n";
  struct Row {
    const char* name;
    std::string file;
    std::string host;
    int port;
    HostKeyMatch want;
  };
  const std::vector<Row> rows = {
      {"plain host", "git.example.com" + line, "git.example.com", 0, HostKeyMatch::kMatch},
      {"port 22 is the plain name", "git.example.com" + line, "git.example.com", 22,
       HostKeyMatch::kMatch},
      {"other port needs brackets", "git.example.com" + line, "git.example.com", 2222,
       HostKeyMatch::kUnknownHost},
      {"bracketed port", "[git.example.com]:2222" + line, "git.example.com", 2222,
       HostKeyMatch::kMatch},
      {"bracketed port is not port 22", "[git.example.com]:2222" + line, "git.example.com", 0,
       HostKeyMatch::kUnknownHost},
      {"one of several names", "a.example,git.example.com,10.0.0.1" + line, "10.0.0.1", 0,
       HostKeyMatch::kMatch},
      {"wildcard", "*.example.com" + line, "git.example.com", 0, HostKeyMatch::kMatch},
      {"negated", "*.example.com,!git.example.com" + line, "git.example.com", 0,
       HostKeyMatch::kUnknownHost},
      {"comments and blank lines", "# x\n\ngit.example.com" + line, "git.example.com", 0,
       HostKeyMatch::kMatch},
      {"changed key", "git.example.com ssh-ed25519 " + Base64(other) + "\n", "git.example.com", 0,
       HostKeyMatch::kChanged},
      {"other key type only", "git.example.com ssh-rsa " + Base64(rsa) + "\n", "git.example.com", 0,
       HostKeyMatch::kChanged},
      {"one of two keys", "git.example.com ssh-rsa " + Base64(rsa) + "\ngit.example.com" + line,
       "git.example.com", 0, HostKeyMatch::kMatch},
      {"revoked", "@revoked git.example.com" + line + "git.example.com" + line, "git.example.com",
       0, HostKeyMatch::kRevoked},
      {"cert-authority lines are skipped", "@cert-authority git.example.com" + line,
       "git.example.com", 0, HostKeyMatch::kUnknownHost},
      {"empty file", "", "git.example.com", 0, HostKeyMatch::kUnknownHost},
      {"garbage", "git.example.com ssh-ed25519 !!!\n", "git.example.com", 0,
       HostKeyMatch::kUnknownHost},
  };
  for (const auto& row : rows) {
    SUBCASE(row.name) {
      HostKeyCheck c = CheckKnownHost(row.file, row.host, row.port, key);
      CHECK(c.match == row.want);
      CHECK(c.key_type == "ssh-ed25519");
    }
  }
}

TEST_CASE("known_hosts: hashed names written by ssh-keygen -H") {
  testing::TempDir tmp;
  const std::string key = Blob("ssh-ed25519", std::string(32, 'k'));
  tmp.Write("known_hosts", "[127.0.0.1]:2222 ssh-ed25519 " + Base64(key) +
                               "\ngit.example.com ssh-ed25519 " + Base64(key) + "\n");
  std::string file = (tmp.path() / "known_hosts").string();
  testing::Sh("ssh-keygen -q -H -f " + testing::Quote(file) + " >/dev/null 2>&1");
  std::string text = testing::Sh("cat " + testing::Quote(file));
  REQUIRE(text.rfind("|1|", 0) == 0);
  CHECK(text.find("example") == std::string::npos);
  CHECK(CheckKnownHost(text, "127.0.0.1", 2222, key).match == HostKeyMatch::kMatch);
  CHECK(CheckKnownHost(text, "git.example.com", 22, key).match == HostKeyMatch::kMatch);
  CHECK(CheckKnownHost(text, "127.0.0.1", 22, key).match == HostKeyMatch::kUnknownHost);
  CHECK(CheckKnownHost(text, "git.example.com", 0, Blob("ssh-ed25519", "x")).match ==
        HostKeyMatch::kChanged);
}

TEST_CASE("git URLs: parts, redaction, loopback") {
  struct Row {
    const char* url;
    const char* scheme;
    const char* user;
    const char* host;
    int port;
    const char* path;
  };
  const std::vector<Row> rows = {
      {"https://github.com/org/repo.git", "https", "", "github.com", 0, "/org/repo.git"},
      {"http://127.0.0.1:8080/git/r.git", "http", "", "127.0.0.1", 8080, "/git/r.git"},
      {"ssh://git@[::1]:2222/srv/r.git", "ssh", "git", "::1", 2222, "/srv/r.git"},
      {"git@github.com:org/repo.git", "ssh", "git", "github.com", 0, "org/repo.git"},
      {"git://127.0.0.1:9418/r.git", "git", "", "127.0.0.1", 9418, "/r.git"},
      {"file:///srv/repo", "file", "", "", 0, "/srv/repo"},
  };
  for (const auto& row : rows) {
    SUBCASE(row.url) {
      auto u = ParseGitUrl(row.url);
      REQUIRE_MESSAGE(u.ok(), u.status().ToString());
      CHECK(u->scheme == row.scheme);
      CHECK(u->user == row.user);
      CHECK(u->host == row.host);
      CHECK(u->port == row.port);
      CHECK(u->path == row.path);
      CHECK(u->redacted == row.url);
    }
  }
  SUBCASE("a password is refused and never echoed") {
    auto u = ParseGitUrl("https://me:hunter2@example.com/r.git");
    REQUIRE(!u.ok());
    CHECK(u.status().code() == Code::kInvalid);
    CHECK(u.status().message().find("hunter2") == std::string::npos);
    CHECK(u.status().message().find("https://me@example.com/r.git") != std::string::npos);
  }
  SUBCASE("bad ports and schemes") {
    CHECK(!ParseGitUrl("https://h:0/r").ok());
    CHECK(!ParseGitUrl("https://h:99999/r").ok());
    CHECK(!ParseGitUrl("https://h:x/r").ok());
    CHECK(!ParseGitUrl("ftp://h/r").ok());
    CHECK(!ParseGitUrl("file://relative").ok());
  }
  SUBCASE("loopback") {
    for (const char* h : {"localhost", "127.0.0.1", "127.1.2.3", "::1"}) CHECK(IsLoopbackHost(h));
    for (const char* h : {"example.com", "10.0.0.1", "128.0.0.1", ""}) CHECK(!IsLoopbackHost(h));
  }
}

}  // namespace
}  // namespace reconcile
