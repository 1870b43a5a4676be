// EngineClient pieces that need no engine: addresses, status mapping,
// encoding, image references, log demultiplexing, hostile answers.
#include "docker/engine_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include <doctest/doctest.h>

#include "fakes/fake_http_engine.h"

namespace reconcile::docker {
namespace {

TEST_CASE("docker: ParseEngineAddress") {
  auto u = ParseEngineAddress("unix:///var/run/docker.sock");
  REQUIRE(u.ok());
  CHECK(u->kind == EngineAddress::Kind::kUnix);
  CHECK(u->socket_path == "/var/run/docker.sock");
  auto t = ParseEngineAddress("tcp://127.0.0.1:2375");
  REQUIRE(t.ok());
  CHECK(t->host == "127.0.0.1");
  CHECK(t->port == "2375");
  auto v6 = ParseEngineAddress("tcp://[::1]:2376");
  REQUIRE(v6.ok());
  CHECK(v6->host == "::1");
  for (const char* bad : {"", "unix://", "unix://relative", "tcp://host", "tcp://:1",
                          "tcp://h:port", "http://127.0.0.1:2375", "tcp://[::1]2375"}) {
    CAPTURE(bad);
    CHECK(ParseEngineAddress(bad).status().code() == Code::kInvalid);
  }
}

TEST_CASE("docker: plain tcp is refused off loopback") {
  CHECK(NewEngineTransport("tcp://127.0.0.1:2375", TlsConfig{}).ok());
  auto remote = NewEngineTransport("tcp://10.1.2.3:2375", TlsConfig{});
  CHECK(remote.status().code() == Code::kInvalid);
  CHECK(remote.status().message().find("docker.tls") != std::string::npos);
}

TEST_CASE("docker: StatusFromHttp maps codes and names the call") {
  struct Row {
    int status;
    Code code;
  };
  const Row rows[] = {
      {200, Code::kOk},          {204, Code::kOk},          {304, Code::kOk},
      {400, Code::kInvalid},     {404, Code::kNotFound},    {409, Code::kConflict},
      {429, Code::kUnavailable}, {500, Code::kUnavailable}, {503, Code::kUnavailable}};
  for (const Row& row : rows) {
    CAPTURE(row.status);
    auto st = StatusFromHttp("POST /containers/create",
                             HttpResponse{row.status, R"({"message":"boom"})"});
    CHECK(st.code() == row.code);
    if (!st.ok()) {
      CHECK(st.message() ==
            "docker: POST /containers/create: " + std::to_string(row.status) + " boom");
    }
  }
  auto plain = StatusFromHttp("GET /x", HttpResponse{500, std::string(2000, 'a')});
  CHECK(plain.message().size() < 600);
}

TEST_CASE("docker: UrlEncode and SplitImageReference") {
  CHECK(UrlEncode(R"({"label":["a=b"]})") == "%7B%22label%22%3A%5B%22a%3Db%22%5D%7D");
  CHECK(SplitImageReference("reconcile/hello-agent:0.1.0") ==
        std::pair<std::string, std::string>{"reconcile/hello-agent", "0.1.0"});
  CHECK(SplitImageReference("localhost:5000/app") ==
        std::pair<std::string, std::string>{"localhost:5000/app", "latest"});
  CHECK(SplitImageReference("localhost:5000/app:v2") ==
        std::pair<std::string, std::string>{"localhost:5000/app", "v2"});
  CHECK(SplitImageReference("app@sha256:abcd") ==
        std::pair<std::string, std::string>{"app", "sha256:abcd"});
}

TEST_CASE("docker: DemultiplexLogs") {
  std::string raw;
  raw += std::string("\x01\x00\x00\x00\x00\x00\x00\x03", 8) + "out";
  raw += std::string("\x02\x00\x00\x00\x00\x00\x00\x04", 8) + "err\n";
  CHECK(DemultiplexLogs(raw) == "outerr\n");
  CHECK(DemultiplexLogs("plain text\n") == "plain text\n");
  CHECK(DemultiplexLogs(std::string("\x01\x00\x00\x00\x00\x00\x00\xff", 8) + "x") ==
        std::string("\x01\x00\x00\x00\x00\x00\x00\xff", 8) + "x");
}

TEST_CASE("docker: hostile engine answers become statuses, not exceptions") {
  auto fake = std::make_shared<testing::FakeHttpEngine>();
  EngineClient client(fake);
  fake->Override("GET /containers/json", HttpResponse{200, "{not json"});
  auto list = client.ListContainers({"a=b"});
  CHECK(list.status().code() == Code::kUnavailable);
  CHECK(list.status().message().find("invalid JSON") != std::string::npos);

  fake->Override("GET /containers/json", HttpResponse{200, R"({"an":"object"})"});
  CHECK(client.ListContainers({}).status().code() == Code::kUnavailable);

  fake->Override("POST /containers/create", HttpResponse{201, R"({"NoId":1})"});
  CHECK(client.CreateContainer("x", {}).status().code() == Code::kUnavailable);

  // Paths are never built from unchecked ids.
  CHECK(client.InspectContainer("../../images/x").status().code() == Code::kInvalid);
  CHECK(client.RemoveContainer("a b", false).code() == Code::kInvalid);
  CHECK(client.InspectImage("../etc").status().code() == Code::kInvalid);
  for (const auto& call : fake->Calls()) CHECK(call.find("..") == std::string::npos);

  auto pull = client.PullImage("nope/missing:1");
  CHECK(pull.code() == Code::kFailed);
  CHECK(pull.message().find("pull access denied") != std::string::npos);
}

// A one-shot engine on a unix socket that answers with `reply` (or, when
// `reply` is empty, reads the request and never answers).
class CannedSocket {
 public:
  explicit CannedSocket(std::string reply) : reply_(std::move(reply)) {
    path_ = "/tmp/reconcile-docker-test-" + std::to_string(getpid()) + "-" +
            std::to_string(counter_++) + ".sock";
    unlink(path_.c_str());
    fd_ = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(listen(fd_, 1) == 0);
    thread_ = std::thread([this] {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      char buf[4096];
      (void)recv(c, buf, sizeof buf, 0);
      if (!reply_.empty()) {
        std::size_t off = 0;
        while (off < reply_.size()) {
          ssize_t n = send(c, reply_.data() + off, reply_.size() - off, MSG_NOSIGNAL);
          if (n <= 0) break;
          off += static_cast<std::size_t>(n);
        }
      } else {
        while (!stop_) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      close(c);
    });
  }
  ~CannedSocket() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
    unlink(path_.c_str());
  }
  std::string address() const { return "unix://" + path_; }

 private:
  static inline int counter_ = 0;
  std::string reply_, path_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST_CASE("docker: transport reads chunked bodies, enforces limits and deadlines") {
  HttpRequest req;
  req.method = "GET";
  req.target = "/v1.41/containers/json";
  req.timeout = std::chrono::milliseconds(2000);

  SUBCASE("chunked") {
    CannedSocket s(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3\r\n[1,\r\n2\r\n2]\r\n0\r\n\r\n");
    auto t = NewEngineTransport(s.address(), TlsConfig{});
    REQUIRE(t.ok());
    auto r = (*t)->RoundTrip(req);
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    CHECK(r->status == 200);
    CHECK(r->body == "[1,2]");
  }
  SUBCASE("body over the limit") {
    std::string reply = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 100; ++i) reply += "400\r\n" + std::string(1024, 'x') + "\r\n";
    CannedSocket s(reply);
    auto t = NewEngineTransport(s.address(), TlsConfig{}, /*body_limit=*/4096);
    REQUIRE(t.ok());
    auto r = (*t)->RoundTrip(req);
    CHECK(r.status().code() == Code::kUnavailable);
    CHECK(r.status().message().find("exceeds 4096 bytes") != std::string::npos);
  }
  SUBCASE("no answer: timeout") {
    CannedSocket s("");
    auto t = NewEngineTransport(s.address(), TlsConfig{});
    REQUIRE(t.ok());
    req.timeout = std::chrono::milliseconds(300);
    auto start = std::chrono::steady_clock::now();
    auto r = (*t)->RoundTrip(req);
    CHECK(r.status().code() == Code::kUnavailable);
    CHECK(r.status().message().find("timed out") != std::string::npos);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
  }
  SUBCASE("garbage") {
    CannedSocket s("SSH-2.0-OpenSSH\r\n\r\n");
    auto t = NewEngineTransport(s.address(), TlsConfig{});
    REQUIRE(t.ok());
    CHECK((*t)->RoundTrip(req).status().code() == Code::kUnavailable);
  }
}

TEST_CASE("docker: an engine that does not listen is unavailable") {
  auto t = NewEngineTransport("unix:///nonexistent/docker.sock", TlsConfig{});
  REQUIRE(t.ok());
  EngineClient client(std::shared_ptr<HttpTransport>(std::move(*t)));
  auto r = client.ListContainers({});
  CHECK(r.status().code() == Code::kUnavailable);
  CHECK(r.status().message().find("docker: GET /containers/json") == 0);
  auto h = HttpGet("127.0.0.1", 1, "/health", std::chrono::milliseconds(500));
  CHECK(h.status().code() == Code::kUnavailable);
}

}  // namespace
}  // namespace reconcile::docker
