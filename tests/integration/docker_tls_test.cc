// The Docker provider over TLS to a tcp:// host, against the real Docker
// Engine behind a TLS proxy on loopback (tests/fixtures/tls_proxy.py, started
// and stopped by pid here), with a CA, server and client certificates made
// by the openssl CLI: a trusted CA works; an unknown CA and a wrong host name
// are refused with errors that say how to fix them; verify: false works and
// warns; a proxy that requires a client certificate works with certFile /
// keyFile. Health checks of an agent on that host go to the host of
// docker.host ("localhost" here), not to 127.0.0.1.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "docker/docker_provider.h"
#include "docker/engine_client.h"
#include "reconcile/provider.h"
#include "reconcile/spec.h"

extern char** environ;

namespace reconcile::docker {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kSocket = "unix:///var/run/docker.sock";
constexpr const char* kHelloImage = "reconcile/hello-agent:0.1.0";

std::string BuildDir() {
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  REQUIRE_MESSAGE(!ec, "cannot find the test binary's path");
  return exe.parent_path().parent_path().string();
}

bool EngineAnswers() {
  auto t = NewEngineTransport(kSocket, TlsConfig{});
  if (!t.ok()) return false;
  HttpRequest r;
  r.method = "GET";
  r.target = "/_ping";
  r.timeout = std::chrono::seconds(3);
  auto res = (*t)->RoundTrip(r);
  return res.ok() && res->status == 200;
}

void EnsureEngineAndImage() {
  static bool ready = [] {
    if (!EngineAnswers()) {
      int rc = std::system(
          (std::string("bash ") + RECONCILE_SOURCE_DIR + "/scripts/ensure-dockerd.sh").c_str());
      (void)rc;
    }
    REQUIRE_MESSAGE(EngineAnswers(), "the Docker Engine does not answer on /var/run/docker.sock");
    REQUIRE_MESSAGE(std::system((std::string("bash ") + RECONCILE_SOURCE_DIR +
                                 "/scripts/hello-image.sh '" + BuildDir() + "' >/dev/null")
                                    .c_str()) == 0,
                    "scripts/hello-image.sh failed");
    return true;
  }();
  REQUIRE(ready);
}

// ca.pem (trusted), other-ca.pem (unknown), server.pem (SAN DNS:localhost
// only, so that 127.0.0.1 is a wrong name), cert.pem + key.pem (client).
struct Certs {
  fs::path dir;
  Certs() {
    dir = fs::temp_directory_path() / ("reconcile-tls-it-" + std::to_string(getpid()));
    fs::create_directories(dir);
    const std::string k = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    std::ofstream(dir / "make.sh")
        << "set -e; cd '" << dir.string() << "'; exec >/dev/null 2>&1\n"
        << "openssl req -x509 " << k << " -keyout ca-key.pem -out ca.pem -days 2 -subj /CN=it-ca\n"
        << "openssl req -x509 " << k
        << " -keyout other-ca-key.pem -out other-ca.pem -days 2 -subj /CN=other\n"
        << "openssl req " << k << " -keyout server-key.pem -out server.csr -subj /CN=localhost\n"
        << "printf 'subjectAltName=DNS:localhost\\n' > server.cnf\n"
        << "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial"
        << " -out server.pem -days 2 -extfile server.cnf\n"
        << "openssl req " << k << " -keyout key.pem -out client.csr -subj /CN=client\n"
        << "printf 'extendedKeyUsage=clientAuth\\n' > client.cnf\n"
        << "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial"
        << " -out cert.pem -days 2 -extfile client.cnf\n";
    REQUIRE_MESSAGE(std::system(("bash '" + (dir / "make.sh").string() + "'").c_str()) == 0,
                    "openssl could not make the test certificates");
  }
  ~Certs() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

const Certs& TheCerts() {
  static const Certs certs;
  return certs;
}

// tests/fixtures/tls_proxy.py in front of the engine's socket; stopped by pid.
class TlsProxy {
 public:
  TlsProxy(const fs::path& certs, bool require_client_cert) {
    port_file_ = certs / ("port-" + std::to_string(require_client_cert));
    fs::remove(port_file_);
    std::vector<std::string> args = {
        "python3",     std::string(RECONCILE_SOURCE_DIR) + "/tests/fixtures/tls_proxy.py",
        "--listen",    "127.0.0.1:0",
        "--cert",      (certs / "server.pem").string(),
        "--key",       (certs / "server-key.pem").string(),
        "--upstream",  "/var/run/docker.sock",
        "--port-file", port_file_.string()};
    if (require_client_cert) {
      args.push_back("--client-ca");
      args.push_back((certs / "ca.pem").string());
    }
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    REQUIRE_MESSAGE(posix_spawnp(&pid_, "python3", nullptr, nullptr, argv.data(), environ) == 0,
                    "python3 is needed for the TLS proxy");
    for (int i = 0; i < 100 && port_ == 0; ++i) {
      std::ifstream in(port_file_);
      in >> port_;
      if (port_ == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    REQUIRE_MESSAGE(port_ != 0, "the TLS proxy did not start");
  }
  ~TlsProxy() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  std::string Host(const std::string& name) const {
    return "tcp://" + name + ":" + std::to_string(port_);
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  fs::path port_file_;
};

Target TlsTarget(const std::string& host, const DockerTls& tls) {
  Target t;
  t.name = "remote";
  t.provider = "docker";
  DockerTarget d;
  d.host = host;
  d.tls = tls;
  t.settings = DockerSettings(d);
  t.secrets_dir = TheCerts().dir.string();
  return t;
}

DockerTls Tls(const std::string& ca, bool verify = true) {
  DockerTls t;
  t.ca_file = ca;
  t.verify = verify;
  return t;
}

ObserveResponse ObserveVia(const Target& t) {
  auto p = NewDockerProvider(t);
  REQUIRE_MESSAGE(p.ok(), p.status().message());
  return (*p)->Observe({t});
}

TEST_CASE("docker over TLS: verification against a real engine behind a TLS proxy") {
  EnsureEngineAndImage();
  const fs::path& certs = TheCerts().dir;
  TlsProxy proxy(certs, /*require_client_cert=*/false);

  SUBCASE("a trusted CA (docker.tls.caFile under the secrets folder) works") {
    ObserveResponse r = ObserveVia(TlsTarget(proxy.Host("localhost"), Tls("ca.pem")));
    CHECK_MESSAGE(r.status.ok(), r.status.message());
    CHECK(r.warnings.empty());
  }
  SUBCASE("an unknown CA is refused, naming the host and the fix") {
    ObserveResponse r = ObserveVia(TlsTarget(proxy.Host("localhost"), Tls("other-ca.pem")));
    CHECK(r.status.code() == Code::kFailed);
    const std::string& m = r.status.message();
    CHECK_MESSAGE(m.find(proxy.Host("localhost") + " (TLS): the server's certificate is not "
                                                   "trusted") != std::string::npos,
                  m);
    CHECK_MESSAGE(m.find("docker.tls.caFile") != std::string::npos, m);
  }
  SUBCASE("the system's CAs by default: the test CA is unknown to them") {
    ObserveResponse r = ObserveVia(TlsTarget(proxy.Host("localhost"), DockerTls{}));
    CHECK(r.status.code() == Code::kFailed);
    CHECK_MESSAGE(r.status.message().find("system's CAs") != std::string::npos, r.status.message());
  }
  SUBCASE("a wrong host name is refused") {
    ObserveResponse r = ObserveVia(TlsTarget(proxy.Host("127.0.0.1"), Tls("ca.pem")));
    CHECK(r.status.code() == Code::kFailed);
    CHECK_MESSAGE(r.status.message().find("not valid for '127.0.0.1' (hostname mismatch)") !=
                      std::string::npos,
                  r.status.message());
  }
  SUBCASE("serverName makes the certificate's name the one checked") {
    DockerTls tls = Tls("ca.pem");
    tls.server_name = "localhost";
    ObserveResponse r = ObserveVia(TlsTarget(proxy.Host("127.0.0.1"), tls));
    CHECK_MESSAGE(r.status.ok(), r.status.message());
  }
  SUBCASE("verify: false works, with a loud warning on every use") {
    ObserveResponse r = ObserveVia(TlsTarget(proxy.Host("127.0.0.1"), Tls("other-ca.pem", false)));
    CHECK_MESSAGE(r.status.ok(), r.status.message());
    REQUIRE(r.warnings.size() == 1);
    CHECK(r.warnings[0].find("TLS VERIFICATION IS OFF") == 0);
  }
}

TEST_CASE("docker over TLS: an engine that requires a client certificate") {
  EnsureEngineAndImage();
  const fs::path& certs = TheCerts().dir;
  TlsProxy proxy(certs, /*require_client_cert=*/true);
  SUBCASE("without one: refused, saying what to set") {
    ObserveResponse r = ObserveVia(TlsTarget(proxy.Host("localhost"), Tls("ca.pem")));
    CHECK_FALSE(r.status.ok());
  }
  SUBCASE("with certFile and keyFile: works") {
    DockerTls tls = Tls("ca.pem");
    tls.cert_file = "cert.pem";
    tls.key_file = "key.pem";
    ObserveResponse r = ObserveVia(TlsTarget(proxy.Host("localhost"), tls));
    CHECK_MESSAGE(r.status.ok(), r.status.message());
  }
}

TEST_CASE("docker over TLS: an agent's health check goes to the engine's host") {
  EnsureEngineAndImage();
  const fs::path& certs = TheCerts().dir;
  TlsProxy proxy(certs, /*require_client_cert=*/false);
  Target t = TlsTarget(proxy.Host("localhost"), Tls("ca.pem"));
  auto p = NewDockerProvider(t);
  REQUIRE_MESSAGE(p.ok(), p.status().message());

  std::random_device rd;
  const std::string agent = "it-tls-" + std::to_string(rd() % 1000000);
  json spec = {{"image", kHelloImage},
               {"port", 8080},
               {"hostPort", 0},
               {"command", json::array()},
               {"args", json::array()},
               {"env", {{"GREETING", "over tls"}}},
               {"secretEnv", json::object()},
               {"replicas", 1},
               {"resources", json::object()},
               {"healthCheck",
                {{"path", "/health"},
                 {"port", 8080},
                 {"interval", "100ms"},
                 {"timeout", "1s"},
                 {"retries", 50},
                 {"startPeriod", "0s"}}},
               {"strategy", {{"type", "recreate"}, {"autoRollback", true}}},
               {"labels", json::object()}};
  ApplyChangeRequest req;
  req.target = t;
  req.change.address = "agent." + agent;
  req.change.name = agent;
  req.change.action = Action::kCreate;
  req.change.target = t.name;
  req.change.provider = "docker";
  req.change.desired = spec;
  req.change.desired_hash = SpecHash(spec);
  req.revision = "rev-tls";
  std::vector<std::string> progress;
  req.progress = [&](const std::string& m) { progress.push_back(m); };
  ApplyChangeResponse created = (*p)->ApplyChange(req);

  // Clean up what this test created, whatever happened.
  auto local = NewEngineTransport(kSocket, TlsConfig{});
  REQUIRE(local.ok());
  EngineClient client(std::shared_ptr<HttpTransport>(std::move(*local)));
  struct Cleanup {
    EngineClient& client;
    std::string agent;
    ~Cleanup() {
      auto list = client.ListContainers({std::string(kLabelAgent) + "=" + agent});
      if (!list.ok()) return;
      for (const json& c : *list) (void)client.RemoveContainer(c.value("Id", ""), true);
    }
  } cleanup{client, agent};

  REQUIRE_MESSAGE(created.status.ok(), created.status.message());
  CHECK(created.health == "healthy");
  REQUIRE(created.instances.size() == 1);
  CHECK_MESSAGE(created.instances[0].endpoint.rfind("http://localhost:", 0) == 0,
                created.instances[0].endpoint);
  auto seen = (*p)->Observe({t});
  REQUIRE(seen.status.ok());
  bool found = false;
  for (const ObservedInstance& o : seen.instances) {
    if (o.agent == agent) {
      found = true;
      CHECK(o.endpoint == created.instances[0].endpoint);
    }
  }
  CHECK(found);

  req.change.action = Action::kDelete;
  req.change.desired = nullptr;
  req.change.prior = {InstanceRef{created.instances[0].id, created.instances[0].name}};
  ApplyChangeResponse deleted = (*p)->ApplyChange(req);
  CHECK_MESSAGE(deleted.status.ok(), deleted.status.message());
}

}  // namespace
}  // namespace reconcile::docker
