// hello-agent: a tiny HTTP/1.1 agent for the quickstart, tests and benchmarks.
//
// Plain POSIX sockets and no third-party code, so the static binary stays
// small and runs in an image FROM scratch. One connection at a time.
//   GET /health -> 200 "ok" (503 when HEALTH_FAIL=1)
//   GET /       -> 200 {"agent": $AGENT_NAME or hostname, "greeting": $GREETING,
//                       "version": "0.1.0"}
//   otherwise   -> 404
// Listens on $PORT (default 8080). SIGTERM/SIGINT exit 0 at once.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

constexpr const char* kVersion = "0.1.0";
constexpr std::size_t kMaxRequest = 16 * 1024;

void OnTerminate(int) { _exit(0); }

std::string Env(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

void WriteAll(int fd, const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<std::size_t>(n);
  }
}

void Respond(int fd, int code, const char* reason, const char* type, const std::string& body,
             bool head) {
  std::string r = "HTTP/1.1 " + std::to_string(code) + " " + reason + "\r\n" +
                  "Content-Type: " + type + "\r\n" +
                  "Content-Length: " + std::to_string(body.size()) + "\r\n" +
                  "Connection: close\r\n\r\n";
  if (!head) r += body;
  WriteAll(fd, r);
}

void Serve(int fd, const std::string& agent, const std::string& greeting, bool health_fail) {
  std::string req;
  char buf[4096];
  while (req.find("\r\n\r\n") == std::string::npos && req.find("\n\n") == std::string::npos) {
    if (req.size() > kMaxRequest) {
      Respond(fd, 431, "Request Header Fields Too Large", "text/plain", "too large\n", false);
      return;
    }
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    req.append(buf, static_cast<std::size_t>(n));
  }
  std::size_t sp1 = req.find(' ');
  std::size_t sp2 = sp1 == std::string::npos ? std::string::npos : req.find(' ', sp1 + 1);
  if (sp2 == std::string::npos) {
    Respond(fd, 400, "Bad Request", "text/plain", "bad request\n", false);
    return;
  }
  std::string method = req.substr(0, sp1);
  std::string path = req.substr(sp1 + 1, sp2 - sp1 - 1);
  path = path.substr(0, path.find('?'));
  bool head = method == "HEAD";
  if (method != "GET" && !head) {
    Respond(fd, 405, "Method Not Allowed", "text/plain", "method not allowed\n", false);
  } else if (path == "/health") {
    if (health_fail) {
      Respond(fd, 503, "Service Unavailable", "text/plain", "unhealthy\n", head);
    } else {
      Respond(fd, 200, "OK", "text/plain", "ok\n", head);
    }
  } else if (path == "/") {
    std::string body = "{\"agent\":" + JsonString(agent) + ",\"greeting\":" + JsonString(greeting) +
                       ",\"version\":" + JsonString(kVersion) + "}\n";
    Respond(fd, 200, "OK", "application/json", body, head);
  } else {
    Respond(fd, 404, "Not Found", "text/plain", "not found\n", head);
  }
}

}  // namespace

int main() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = OnTerminate;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  int port = std::atoi(Env("PORT", "8080").c_str());
  if (port <= 0 || port > 65535) {
    std::fprintf(stderr, "hello-agent: invalid PORT\n");
    return 2;
  }
  char hostname[256] = {0};
  gethostname(hostname, sizeof hostname - 1);
  const std::string agent = Env("AGENT_NAME", hostname);
  const std::string greeting = Env("GREETING", "Hello");
  const bool health_fail = Env("HEALTH_FAIL", "0") == "1";

  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  bool v6 = fd >= 0;
  if (!v6) fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    std::perror("hello-agent: socket");
    return 1;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int rc;
  if (v6) {
    int zero = 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    sockaddr_in6 addr;
    std::memset(&addr, 0, sizeof addr);
    addr.sin6_family = AF_INET6;
    addr.sin6_addr = in6addr_any;
    addr.sin6_port = htons(static_cast<uint16_t>(port));
    rc = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  } else {
    sockaddr_in addr;
    std::memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    rc = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  }
  if (rc != 0 || listen(fd, 64) != 0) {
    std::perror("hello-agent: bind/listen");
    return 1;
  }
  std::printf("hello-agent %s listening on :%d as %s\n", kVersion, port, agent.c_str());
  std::fflush(stdout);

  for (;;) {
    int c = accept(fd, nullptr, nullptr);
    if (c < 0) continue;
    timeval tv{5, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    Serve(c, agent, greeting, health_fail);
    shutdown(c, SHUT_WR);
    close(c);
  }
}
