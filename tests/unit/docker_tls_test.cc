// The TLS transport (tcp:// with DOCKER_CERT_PATH-style certificates) against
// an in-process TLS server that requires a client certificate. Certificates
// are made with the openssl CLI into a temporary folder.
#include <sys/types.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include <doctest/doctest.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>

#include "docker/docker_provider.h"
#include "docker/engine_client.h"

namespace reconcile::docker {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;

// ca.pem, cert.pem + key.pem (client), server.pem + server-key.pem (SAN
// 127.0.0.1, localhost), wrong.pem + wrong-key.pem (SAN other.example).
fs::path MakeCerts() {
  fs::path dir = fs::temp_directory_path() / ("reconcile-tls-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string d = dir.string();
  const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  std::string script =
      "set -e; cd '" + d +
      "'; exec >/dev/null 2>&1;"
      "openssl req -x509 " +
      key +
      " -keyout ca-key.pem -out ca.pem -days 2 -subj /CN=test-ca;"
      "sign() { openssl req " +
      key +
      " -keyout $2 -out $1.csr -subj /CN=$1;"
      "  printf \"$3\\n\" > $1.cnf;"
      "  openssl x509 -req -in $1.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial"
      "    -out $4 -days 2 -extfile $1.cnf; };"
      "sign server server-key.pem 'subjectAltName=IP:127.0.0.1,DNS:localhost' server.pem;"
      "sign wrong wrong-key.pem 'subjectAltName=DNS:other.example' wrong.pem;"
      "sign client key.pem 'extendedKeyUsage=clientAuth' cert.pem;"
      "openssl req -x509 " +
      key +
      " -keyout other-ca-key.pem -out other-ca.pem -days 2 -subj /CN=other-ca;"
      "openssl req " +
      key +
      " -keyout rogue-key.pem -out rogue.csr -subj /CN=rogue;"
      "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > rogue.cnf;"
      "openssl x509 -req -in rogue.csr -CA other-ca.pem -CAkey other-ca-key.pem "
      "  -CAcreateserial -out rogue.pem -days 2 -extfile rogue.cnf;";
  fs::path sh = dir / "make.sh";
  {
    FILE* f = std::fopen(sh.c_str(), "w");
    REQUIRE(f != nullptr);
    std::fputs(script.c_str(), f);
    std::fclose(f);
  }
  REQUIRE_MESSAGE(std::system(("bash '" + sh.string() + "'").c_str()) == 0,
                  "openssl could not make test certificates");
  return dir;
}

// Serves one TLS connection: requires a client certificate signed by ca.pem
// (unless require_client is false), answers any request with a fixed JSON
// body.
class TlsServer {
 public:
  TlsServer(const fs::path& dir, const std::string& cert, const std::string& key,
            bool require_client = true)
      : ctx_(asio::ssl::context::tls_server),
        acceptor_(ioc_, asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), 0)) {
    ctx_.use_certificate_chain_file((dir / cert).string());
    ctx_.use_private_key_file((dir / key).string(), asio::ssl::context::pem);
    ctx_.load_verify_file((dir / "ca.pem").string());
    if (require_client) {
      ctx_.set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
    }
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] {
      boost::system::error_code ec;
      asio::ip::tcp::socket socket(ioc_);
      acceptor_.accept(socket, ec);
      if (ec) return;
      asio::ssl::stream<asio::ip::tcp::socket&> tls(socket, ctx_);
      tls.handshake(asio::ssl::stream_base::server, ec);
      if (ec) return;
      std::string request;
      asio::read_until(tls, asio::dynamic_buffer(request), "\r\n\r\n", ec);
      if (ec) return;
      const std::string body = R"({"ApiVersion":"1.41"})";
      std::string reply = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
      asio::write(tls, asio::buffer(reply), ec);
      tls.shutdown(ec);
    });
  }
  ~TlsServer() { thread_.join(); }
  std::string address(const std::string& host) const {
    return "tcp://" + host + ":" + std::to_string(port_);
  }

 private:
  asio::io_context ioc_;
  asio::ssl::context ctx_;
  asio::ip::tcp::acceptor acceptor_;
  unsigned short port_ = 0;
  std::thread thread_;
};

TlsConfig Config(const fs::path& dir) {
  TlsConfig t;
  t.enabled = true;
  t.verify = true;
  t.ca_file = (dir / "ca.pem").string();
  t.cert_file = (dir / "cert.pem").string();
  t.key_file = (dir / "key.pem").string();
  return t;
}

HttpRequest Version() {
  HttpRequest r;
  r.method = "GET";
  r.target = "/v1.41/version";
  r.timeout = std::chrono::seconds(5);
  return r;
}

TEST_CASE("docker: TLS transport with client certificates") {
  static const struct CertDir {
    fs::path path = MakeCerts();
    ~CertDir() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  } certs;
  const fs::path& dir = certs.path;

  SUBCASE("verified server, client certificate accepted") {
    TlsServer server(dir, "server.pem", "server-key.pem");
    auto t = NewEngineTransport(server.address("127.0.0.1"), Config(dir));
    REQUIRE_MESSAGE(t.ok(), t.status().message());
    auto r = (*t)->RoundTrip(Version());
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    CHECK(r->status == 200);
    CHECK(r->body == R"({"ApiVersion":"1.41"})");
  }
  SUBCASE("TLS is allowed off loopback") {
    CHECK(NewEngineTransport("tcp://10.1.2.3:2376", Config(dir)).ok());
  }
  SUBCASE("a server certificate for another name is refused") {
    TlsServer server(dir, "wrong.pem", "wrong-key.pem");
    auto t = NewEngineTransport(server.address("127.0.0.1"), Config(dir));
    REQUIRE(t.ok());
    auto r = (*t)->RoundTrip(Version());
    CHECK(r.status().code() == Code::kFailed);
    CHECK(r.status().message() ==
          server.address("127.0.0.1") +
              " (TLS): the server's certificate is not valid for '127.0.0.1' (hostname "
              "mismatch); connect by a name the certificate lists, or set the Target's "
              "docker.tls.serverName to the name it was issued for");
  }
  SUBCASE("serverName: the certificate's own name is accepted") {
    TlsServer server(dir, "wrong.pem", "wrong-key.pem");
    TlsConfig c = Config(dir);
    c.server_name = "other.example";
    auto t = NewEngineTransport(server.address("127.0.0.1"), c);
    REQUIRE(t.ok());
    auto r = (*t)->RoundTrip(Version());
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    CHECK(r->status == 200);
  }
  SUBCASE("a certificate from an unknown CA is refused, saying how to fix it") {
    TlsServer server(dir, "rogue.pem", "rogue-key.pem");
    auto t = NewEngineTransport(server.address("127.0.0.1"), Config(dir));
    REQUIRE(t.ok());
    auto r = (*t)->RoundTrip(Version());
    CHECK(r.status().code() == Code::kFailed);
    const std::string& m = r.status().message();
    CHECK_MESSAGE(m.rfind(server.address("127.0.0.1") + " (TLS): the server's certificate is "
                                                        "not trusted",
                          0) == 0,
                  m);
    CHECK_MESSAGE(m.find("docker.tls.caFile") != std::string::npos, m);
    CHECK_MESSAGE(m.find("DOCKER_CERT_PATH/ca.pem") != std::string::npos, m);
  }
  SUBCASE("no CA given: the system's CAs, which do not know the test CA") {
    TlsServer server(dir, "server.pem", "server-key.pem", /*require_client=*/false);
    TlsConfig c;
    c.enabled = true;
    auto t = NewEngineTransport(server.address("127.0.0.1"), c);
    REQUIRE_MESSAGE(t.ok(), t.status().message());
    auto r = (*t)->RoundTrip(Version());
    CHECK(r.status().code() == Code::kFailed);
    CHECK_MESSAGE(
        r.status().message().find("checked against the system's CAs") != std::string::npos,
        r.status().message());
  }
  SUBCASE("verify off: an unknown CA and a wrong name are accepted") {
    TlsServer server(dir, "rogue.pem", "rogue-key.pem", /*require_client=*/false);
    TlsConfig c;
    c.enabled = true;
    c.verify = false;
    c.server_name = "nobody.example";
    auto t = NewEngineTransport(server.address("127.0.0.1"), c);
    REQUIRE(t.ok());
    auto r = (*t)->RoundTrip(Version());
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    CHECK(r->status == 200);
  }
  SUBCASE("a required client certificate that is not given: the error says what to set") {
    TlsServer server(dir, "server.pem", "server-key.pem");
    TlsConfig c = Config(dir);
    c.cert_file.clear();
    c.key_file.clear();
    auto t = NewEngineTransport(server.address("127.0.0.1"), c);
    REQUIRE(t.ok());
    auto r = (*t)->RoundTrip(Version());
    CHECK_FALSE(r.ok());
    CHECK_MESSAGE(r.status().message().find("docker.tls.certFile") != std::string::npos,
                  r.status().message());
  }
  SUBCASE("missing certificate files are a clear error when the transport is made") {
    TlsConfig bad = Config(dir);
    bad.cert_file = (dir / "absent.pem").string();
    auto t = NewEngineTransport("tcp://127.0.0.1:1", bad);
    CHECK(t.status().code() == Code::kInvalid);
    CHECK(t.status().message() ==
          "tcp://127.0.0.1:1 (TLS): loading TLS certificates: client "
          "certificate " +
              bad.cert_file + ": No such file or directory");
  }
}

TEST_CASE("docker: TLS settings of a Target") {
  TlsConfig env;  // nothing in the environment
  auto target = [](const std::string& host) {
    Target t;
    t.name = "t";
    t.provider = "docker";
    t.settings = {{"host", host}};
    t.secrets_dir = "/srv/secrets";
    return t;
  };
  SUBCASE("unix socket: no TLS") {
    auto c = TlsConfigForTarget(target("unix:///var/run/docker.sock"), env);
    REQUIRE(c.ok());
    CHECK_FALSE(c->enabled);
  }
  SUBCASE("loopback tcp with nothing asked: plain") {
    for (const char* host : {"tcp://127.0.0.1:2375", "tcp://localhost:2375", "tcp://[::1]:2375"}) {
      CAPTURE(host);
      auto c = TlsConfigForTarget(target(host), env);
      REQUIRE(c.ok());
      CHECK_FALSE(c->enabled);
    }
  }
  SUBCASE("a remote host: TLS verified against the system's CAs, by default") {
    auto c = TlsConfigForTarget(target("tcp://docker.example:2376"), env);
    REQUIRE(c.ok());
    CHECK(c->enabled);
    CHECK(c->verify);
    CHECK(c->ca_file.empty());
  }
  SUBCASE("the environment's files, then the Target's, read from the secrets folder") {
    TlsConfig from_env;
    from_env.enabled = true;
    from_env.ca_file = "/certs/ca.pem";
    from_env.cert_file = "/certs/cert.pem";
    from_env.key_file = "/certs/key.pem";
    Target t = target("tcp://127.0.0.1:2376");
    auto c = TlsConfigForTarget(t, from_env);
    REQUIRE(c.ok());
    CHECK(c->enabled);
    CHECK(c->ca_file == "/certs/ca.pem");
    t.settings["tls"] = {{"caFile", "docker-ca.pem"}, {"serverName", "docker.internal"}};
    c = TlsConfigForTarget(t, from_env);
    REQUIRE(c.ok());
    CHECK(c->ca_file == "/srv/secrets/docker-ca.pem");
    CHECK(c->cert_file == "/certs/cert.pem");
    CHECK(c->server_name == "docker.internal");
    CHECK(c->verify);
  }
  SUBCASE("verify: false is kept, and the provider warns on every use") {
    Target t = target("tcp://127.0.0.1:1");
    t.settings["tls"] = {{"verify", false}};
    auto c = TlsConfigForTarget(t, env);
    REQUIRE(c.ok());
    CHECK(c->enabled);
    CHECK_FALSE(c->verify);
    auto p = NewDockerProvider(t);
    REQUIRE_MESSAGE(p.ok(), p.status().message());
    for (int i = 0; i < 2; ++i) {
      ObserveResponse r = (*p)->Observe({t});
      REQUIRE(r.warnings.size() == 1);
      CHECK(r.warnings[0].find("TLS VERIFICATION IS OFF for tcp://127.0.0.1:1") == 0);
    }
  }
  SUBCASE("a file but no secrets folder") {
    Target t = target("tcp://127.0.0.1:2376");
    t.secrets_dir.clear();
    t.settings["tls"] = {{"caFile", "ca.pem"}};
    auto c = TlsConfigForTarget(t, env);
    CHECK(c.status().code() == Code::kInvalid);
    CHECK(c.status().message().find("set --secrets DIR") != std::string::npos);
  }
}

TEST_CASE("docker: DOCKER_TLS_VERIFY and DOCKER_CERT_PATH as the docker CLI reads them") {
  static const struct CertDir {
    fs::path path = MakeCerts();
    ~CertDir() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  } certs;
  ::unsetenv("DOCKER_TLS_VERIFY");
  ::unsetenv("DOCKER_CERT_PATH");
  CHECK_FALSE(TlsConfigFromEnvironment().enabled);
  ::setenv("DOCKER_CERT_PATH", certs.path.c_str(), 1);
  TlsConfig c = TlsConfigFromEnvironment();
  CHECK(c.enabled);
  CHECK(c.verify);  // never off through the environment
  CHECK(c.ca_file == (certs.path / "ca.pem").string());
  CHECK(c.cert_file == (certs.path / "cert.pem").string());
  ::setenv("DOCKER_TLS_VERIFY", "0", 1);  // docker: any non-empty value means verify
  CHECK(TlsConfigFromEnvironment().verify);
  ::setenv("DOCKER_CERT_PATH", (certs.path / "absent").c_str(), 1);
  c = TlsConfigFromEnvironment();
  CHECK(c.enabled);
  CHECK(c.ca_file.empty());  // no ca.pem there: the system's CAs
  ::unsetenv("DOCKER_TLS_VERIFY");
  ::unsetenv("DOCKER_CERT_PATH");
}

TEST_CASE("docker: where health checks and endpoints go") {
  struct Row {
    const char* host;
    const char* publish;
    const char* want;
  };
  const Row rows[] = {
      {"unix:///var/run/docker.sock", "127.0.0.1", "127.0.0.1"},
      {"unix:///var/run/docker.sock", "0.0.0.0", "127.0.0.1"},
      {"unix:///var/run/docker.sock", "::", "::1"},
      {"unix:///var/run/docker.sock", "10.0.0.7", "10.0.0.7"},
      {"tcp://127.0.0.1:2375", "127.0.0.1", "127.0.0.1"},
      {"tcp://docker.example:2376", "127.0.0.1", "docker.example"},
      {"tcp://docker.example:2376", "0.0.0.0", "docker.example"},
      {"tcp://10.1.2.3:2376", "::", "10.1.2.3"},
      {"tcp://[fd00::5]:2376", "0.0.0.0", "fd00::5"},
      {"tcp://docker.example:2376", "192.168.1.20", "192.168.1.20"},
      {"tcp://localhost:2376", "127.0.0.1", "localhost"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.host);
    CAPTURE(row.publish);
    DockerTarget d;
    d.host = row.host;
    d.publish_address = row.publish;
    CHECK(AgentAccessHost(d) == row.want);
  }
}

}  // namespace
}  // namespace reconcile::docker
