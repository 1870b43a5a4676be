// kube::LoadKubeconfig / InClusterConfig / LoadConfig and the error mapping
// (providers/kubernetes/kube_client.h). The client against a real API
// server: tests/kube/kube_client_live_test.cc.
#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "fakes/loopback_http_server.h"
#include "kubernetes/kube_client.h"

namespace fs = std::filesystem;
using reconcile::Code;
namespace kube = reconcile::kube;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/kube-client-test.XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string Write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name) << text;
    return (path / name).string();
  }
};

// An environment variable set for one scope, restored after.
struct ScopedEnv {
  std::string name;
  std::string old;
  bool had;
  ScopedEnv(const char* n, const char* value) : name(n) {
    const char* o = ::getenv(n);
    had = o != nullptr;
    if (had) old = o;
    if (value) {
      ::setenv(n, value, 1);
    } else {
      ::unsetenv(n);
    }
  }
  ~ScopedEnv() {
    if (had) {
      ::setenv(name.c_str(), old.c_str(), 1);
    } else {
      ::unsetenv(name.c_str());
    }
  }
};

const char* kKubeconfig = R"(apiVersion: v1
kind: Config
clusters:
- name: one
  cluster:
    server: https://127.0.0.1:6443/
    certificate-authority-data: Q0EtUEVN
- name: two
  cluster:
    server: https://10.0.0.2:6443
    certificate-authority: ca.crt
users:
- name: tok
  user:
    token: canary-token-4711
- name: cert
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
- name: files
  user:
    tokenFile: token.txt
- name: plugin
  user:
    exec:
      command: aws
contexts:
- name: a
  context: {cluster: one, user: tok, namespace: team-a}
- name: b
  context: {cluster: two, user: cert}
- name: c
  context: {cluster: two, user: files}
- name: d
  context: {cluster: one, user: plugin}
- name: e
  context: {cluster: nowhere, user: tok}
current-context: a
)";

}  // namespace

TEST_CASE("kube: a kubeconfig's current context, token and inline CA") {
  TempDir dir;
  auto path = dir.Write("config", kKubeconfig);
  auto c = kube::LoadKubeconfig(path, "");
  REQUIRE(c.ok());
  CHECK(c.value().server == "https://127.0.0.1:6443");  // trailing slash dropped
  CHECK(c.value().ca_pem == "CA-PEM");
  CHECK(c.value().token == "canary-token-4711");
  CHECK(c.value().namespace_name == "team-a");
  CHECK(c.value().source == "kubeconfig " + path + " (context a)");
  CHECK(c.value().source.find("canary") == std::string::npos);
}

TEST_CASE("kube: a named context, files relative to the kubeconfig, a client certificate") {
  TempDir dir;
  auto path = dir.Write("config", kKubeconfig);
  dir.Write("ca.crt", "FILE-CA");
  dir.Write("token.txt", "file-token\n");
  auto b = kube::LoadKubeconfig(path, "b");
  REQUIRE(b.ok());
  CHECK(b.value().server == "https://10.0.0.2:6443");
  CHECK(b.value().ca_pem == "FILE-CA");
  CHECK(b.value().client_cert_pem == "CERT");
  CHECK(b.value().client_key_pem == "KEY");
  CHECK(b.value().token.empty());
  CHECK(b.value().namespace_name.empty());
  auto c = kube::LoadKubeconfig(path, "c");
  REQUIRE(c.ok());
  CHECK(c.value().token_file == (dir.path / "token.txt").string());
}

TEST_CASE("kube: kubeconfig errors name the file, line and what is wrong") {
  TempDir dir;
  auto path = dir.Write("config", kKubeconfig);
  auto d = kube::LoadKubeconfig(path, "d");
  REQUIRE_FALSE(d.ok());
  CHECK(d.status().code() == Code::kInvalid);
  CHECK(d.status().message().find(path + ":") == 0);
  CHECK(d.status().message().find("users[plugin].user.exec is not supported yet") !=
        std::string::npos);
  auto e = kube::LoadKubeconfig(path, "e");
  REQUIRE_FALSE(e.ok());
  CHECK(e.status().message().find("names cluster 'nowhere'") != std::string::npos);
  auto missing = kube::LoadKubeconfig(path, "zzz");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().message().find("no context named 'zzz'") != std::string::npos);
  auto nofile = kube::LoadKubeconfig((dir.path / "nope").string(), "");
  REQUIRE_FALSE(nofile.ok());
  CHECK(nofile.status().message().find("nope") != std::string::npos);
  // c's token file does not exist: loading works, the first request says so.
  auto bad64 = dir.Write("bad64", R"(clusters:
- name: x
  cluster: {server: "https://h", certificate-authority-data: "%%%"}
contexts:
- name: x
  context: {cluster: x}
current-context: x
)");
  auto b = kube::LoadKubeconfig(bad64, "");
  REQUIRE_FALSE(b.ok());
  CHECK(b.status().message().find(bad64 + ":3: clusters[x].cluster.certificate-authority-data "
                                          "is not valid base64") == 0);
  auto yaml = dir.Write("broken", "clusters: [\n");
  auto y = kube::LoadKubeconfig(yaml, "");
  REQUIRE_FALSE(y.ok());
  CHECK(y.status().message().find("not valid YAML") != std::string::npos);
  auto half = dir.Write("half", R"(clusters:
- name: x
  cluster: {server: "https://h"}
users:
- name: u
  user: {client-certificate-data: Q0VSVA==}
contexts:
- name: x
  context: {cluster: x, user: u}
current-context: x
)");
  auto h = kube::LoadKubeconfig(half, "");
  REQUIRE_FALSE(h.ok());
  CHECK(h.status().message().find("without its key") != std::string::npos);
}

TEST_CASE("kube: in-cluster config from the service-account folder and the service env") {
  TempDir dir;
  dir.Write("token", "sa-token\n");
  dir.Write("ca.crt", "SA-CA");
  dir.Write("namespace", "reconcile-system\n");
  {
    ScopedEnv host("KUBERNETES_SERVICE_HOST", "10.96.0.1");
    ScopedEnv port("KUBERNETES_SERVICE_PORT", "443");
    ScopedEnv kc("KUBECONFIG", nullptr);
    kube::ConfigOptions options;
    options.in_cluster_root = dir.path.string();
    auto c = kube::LoadConfig(options);
    REQUIRE(c.ok());
    CHECK(c.value().server == "https://10.96.0.1:443");
    CHECK(c.value().ca_pem == "SA-CA");
    CHECK(c.value().token_file == (dir.path / "token").string());
    CHECK(c.value().namespace_name == "reconcile-system");
    CHECK(c.value().source == "in-cluster service account");
  }
  {
    ScopedEnv host("KUBERNETES_SERVICE_HOST", "fd00::1");
    ScopedEnv port("KUBERNETES_SERVICE_PORT", "443");
    auto c = kube::InClusterConfig(dir.path.string());
    REQUIRE(c.ok());
    CHECK(c.value().server == "https://[fd00::1]:443");
  }
  {
    ScopedEnv host("KUBERNETES_SERVICE_HOST", nullptr);
    auto c = kube::InClusterConfig(dir.path.string());
    REQUIRE_FALSE(c.ok());
    CHECK(c.status().message().find("KUBERNETES_SERVICE_HOST") != std::string::npos);
  }
}

TEST_CASE("kube: $KUBECONFIG's first existing file wins; nothing at all is one clear error") {
  TempDir dir;
  auto path = dir.Write("config", kKubeconfig);
  {
    ScopedEnv kc("KUBECONFIG", ("/nonexistent/x:" + path).c_str());
    auto c = kube::LoadConfig({});
    REQUIRE(c.ok());
    CHECK(c.value().namespace_name == "team-a");
  }
  {
    ScopedEnv kc("KUBECONFIG", nullptr);
    ScopedEnv host("KUBERNETES_SERVICE_HOST", nullptr);
    ScopedEnv home("HOME", dir.path.c_str());
    auto c = kube::LoadConfig({});
    REQUIRE_FALSE(c.ok());
    CHECK(c.status().message().find("no Kubernetes configuration") != std::string::npos);
  }
}

TEST_CASE("kube: API errors map to Status codes with the server's message") {
  reconcile::http::Response r;
  r.status = 409;
  r.body =
      R"({"kind":"Status","apiVersion":"v1","status":"Failure","message":"Operation cannot be fulfilled on leases.coordination.k8s.io \"x\": the object has been modified","reason":"Conflict","code":409})";
  auto e = kube::ParseApiError(r);
  CHECK(e.reason == "Conflict");
  auto s = kube::StatusFromResponse(r, "update lease default/x");
  CHECK(s.code() == Code::kConflict);
  CHECK(s.message() ==
        "update lease default/x: 409 Conflict: Operation cannot be fulfilled on "
        "leases.coordination.k8s.io \"x\": the object has been modified");
  r.status = 404;
  r.body = "not json";
  CHECK(kube::StatusFromResponse(r, "get x").code() == Code::kNotFound);
  CHECK(kube::StatusFromResponse(r, "get x").message() == "get x: 404");
  r.status = 422;
  CHECK(kube::StatusFromResponse(r, "x").code() == Code::kInvalid);
  r.status = 403;
  CHECK(kube::StatusFromResponse(r, "x").code() == Code::kFailed);
  r.status = 503;
  CHECK(kube::StatusFromResponse(r, "x").code() == Code::kUnavailable);
}

TEST_CASE("kube: paths for the core group, named groups, namespaced and cluster-scoped") {
  CHECK(kube::CollectionPath("v1", "default", "services") == "/api/v1/namespaces/default/services");
  CHECK(kube::ObjectPath("apps/v1", "a", "deployments", "web") ==
        "/apis/apps/v1/namespaces/a/deployments/web");
  CHECK(kube::CollectionPath("v1", "", "namespaces") == "/api/v1/namespaces");
  CHECK(kube::QueryEscape("reconcile.dev/owner=reconcile,app in (a b)") ==
        "reconcile.dev%2Fowner%3Dreconcile%2Capp%20in%20%28a%20b%29");
}

TEST_CASE("kube: MakeClient refuses a plain-http server that is not loopback") {
  kube::Config c;
  c.server = "http://10.0.0.1:8080";
  c.source = "kubeconfig x (context y)";
  auto made = kube::MakeClient(c);
  REQUIRE_FALSE(made.ok());
  CHECK(made.status().message().find("must be https://") != std::string::npos);
  c.server = "http://127.0.0.1:8080";
  CHECK(kube::MakeClient(c).ok());
  c.server = "";
  CHECK_FALSE(kube::MakeClient(c).ok());
}

TEST_CASE("kube: the client sends a traceparent when given one, and none otherwise") {
  reconcile::testing::LoopbackHttpServer server([](const reconcile::testing::SeenRequest&) {
    return reconcile::testing::LoopbackHttpServer::Json(200, R"({"kind":"Status"})");
  });
  kube::Config c;
  c.server = server.base();
  c.source = "test";
  auto made = kube::MakeClient(c);
  REQUIRE(made.ok());
  const std::string tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  REQUIRE((*made)->Get("/api/v1/namespaces/a/services/x", {}, tp).ok());
  REQUIRE((*made)
              ->Apply("/api/v1/namespaces/a/services/x", nlohmann::json::object(), "reconcile",
                      false, {}, tp)
              .ok());
  REQUIRE((*made)->Delete("/api/v1/namespaces/a/services/x", "Background", {}, tp).ok());
  REQUIRE((*made)->Get("/api/v1/namespaces/a/services/x").ok());
  auto seen = server.requests();
  REQUIRE(seen.size() == 4);
  for (int i = 0; i < 3; ++i) {
    CAPTURE(i);
    CHECK(seen[i].Header("traceparent") == tp);
  }
  CHECK(seen[3].Header("traceparent").empty());
}
