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
      "sign client key.pem 'extendedKeyUsage=clientAuth' cert.pem;";
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

// Serves one TLS connection: requires a client certificate signed by ca.pem,
// answers any request with a fixed JSON body.
class TlsServer {
 public:
  TlsServer(const fs::path& dir, const std::string& cert, const std::string& key)
      : ctx_(asio::ssl::context::tls_server),
        acceptor_(ioc_, asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), 0)) {
    ctx_.use_certificate_chain_file((dir / cert).string());
    ctx_.use_private_key_file((dir / key).string(), asio::ssl::context::pem);
    ctx_.load_verify_file((dir / "ca.pem").string());
    ctx_.set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
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
    CHECK(r.status().code() == Code::kUnavailable);
    CHECK(r.status().message().find("handshake") != std::string::npos);
  }
  SUBCASE("missing certificate files are a clear error") {
    TlsConfig bad = Config(dir);
    bad.cert_file = (dir / "absent.pem").string();
    auto t = NewEngineTransport("tcp://127.0.0.1:1", bad);
    REQUIRE(t.ok());
    auto r = (*t)->RoundTrip(Version());
    CHECK(r.status().code() == Code::kInvalid);
    CHECK(r.status().message().find("loading TLS certificates") != std::string::npos);
  }
}

}  // namespace
}  // namespace reconcile::docker
