// kube::Client against a real kube-apiserver (v1.20.2, started by
// tests/scripts/kube_client_test.sh through tests/scripts/kube_lib.sh).
// Every case fails when the server is not there: the script provides
// KUBECONFIG_ADMIN, KUBE_DIR (certificates), KUBE_SA_TOKEN_FILE.
#include <doctest/doctest.h>
#include <stdlib.h>

#include <fstream>
#include <string>

#include "kubernetes/kube_client.h"

namespace kube = reconcile::kube;
using nlohmann::json;
using reconcile::Code;

namespace {

std::string Env(const char* name) {
  const char* v = ::getenv(name);
  REQUIRE_MESSAGE(v != nullptr, name << " is not set: run tests/scripts/kube_client_test.sh");
  return v;
}

std::unique_ptr<kube::Client> Admin() {
  auto config = kube::LoadKubeconfig(Env("KUBECONFIG_ADMIN"), "");
  REQUIRE_MESSAGE(config.ok(), config.status().message());
  auto client = kube::MakeClient(config.value());
  REQUIRE(client.ok());
  return std::move(client.value());
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

json ConfigMap(const std::string& name, const json& data) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", {{"name", name}, {"namespace", "default"}}},
          {"data", data}};
}

}  // namespace

TEST_CASE("kube live: create, get, a stale resourceVersion is a Conflict, delete") {
  auto c = Admin();
  const std::string col = kube::CollectionPath("v1", "default", "configmaps");
  const std::string path = kube::ObjectPath("v1", "default", "configmaps", "rv-test");
  (void)c->Delete(path);
  auto made = c->Create(col, ConfigMap("rv-test", {{"a", "1"}}));
  REQUIRE_MESSAGE(made.ok(), made.status().message());
  auto again = c->Create(col, ConfigMap("rv-test", {{"a", "1"}}));
  REQUIRE_FALSE(again.ok());
  CHECK(again.status().code() == Code::kConflict);
  CHECK(again.status().message().find("AlreadyExists") != std::string::npos);

  auto got = c->Get(path);
  REQUIRE(got.ok());
  json obj = got.value();
  const std::string rv = obj["metadata"]["resourceVersion"];
  obj["data"]["a"] = "2";
  auto updated = c->Update(path, obj);
  REQUIRE_MESSAGE(updated.ok(), updated.status().message());
  CHECK(updated.value()["metadata"]["resourceVersion"] != rv);
  // The same (now stale) resourceVersion again: the server refuses it.
  obj["data"]["a"] = "3";
  auto stale = c->Update(path, obj);
  REQUIRE_FALSE(stale.ok());
  CHECK(stale.status().code() == Code::kConflict);
  CHECK(stale.status().message().find("the object has been modified") != std::string::npos);

  REQUIRE(c->Delete(path).ok());
  auto gone = c->Get(path);
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.status().code() == Code::kNotFound);
  CHECK(c->Delete(path).status().code() == Code::kNotFound);
}

TEST_CASE("kube live: server-side apply, a field owned by another manager, force") {
  auto c = Admin();
  const std::string path = kube::ObjectPath("v1", "default", "configmaps", "ssa-test");
  (void)c->Delete(path);
  auto a = c->Apply(path, ConfigMap("ssa-test", {{"owned", "by-reconcile"}}), "reconcile", false);
  REQUIRE_MESSAGE(a.ok(), a.status().message());
  bool found = false;
  for (const auto& m : a.value()["metadata"]["managedFields"]) {
    if (m["manager"] == "reconcile" && m["operation"] == "Apply") found = true;
  }
  CHECK(found);
  // Another manager takes the same field without force: a conflict.
  auto b = c->Apply(path, ConfigMap("ssa-test", {{"owned", "by-other"}}), "other", false);
  REQUIRE_FALSE(b.ok());
  CHECK(b.status().code() == Code::kConflict);
  CHECK(b.status().message().find("conflict") != std::string::npos);
  // With force it wins, and reconcile's next non-forced apply conflicts.
  REQUIRE(c->Apply(path, ConfigMap("ssa-test", {{"owned", "by-other"}}), "other", true).ok());
  auto back =
      c->Apply(path, ConfigMap("ssa-test", {{"owned", "by-reconcile"}}), "reconcile", false);
  CHECK(back.status().code() == Code::kConflict);
  auto forced =
      c->Apply(path, ConfigMap("ssa-test", {{"owned", "by-reconcile"}}), "reconcile", true);
  REQUIRE(forced.ok());
  CHECK(forced.value()["data"]["owned"] == "by-reconcile");
  REQUIRE(c->Delete(path).ok());
}

TEST_CASE("kube live: a Lease round trip (coordination.k8s.io/v1)") {
  auto c = Admin();
  const std::string col = kube::CollectionPath("coordination.k8s.io/v1", "default", "leases");
  const std::string path = col + "/live-lease";
  (void)c->Delete(path);
  json lease = {{"apiVersion", "coordination.k8s.io/v1"},
                {"kind", "Lease"},
                {"metadata", {{"name", "live-lease"}}},
                {"spec",
                 {{"holderIdentity", "a"},
                  {"leaseDurationSeconds", 15},
                  {"renewTime", "2026-12-02T00:00:00.000000Z"}}}};
  auto made = c->Create(col, lease);
  REQUIRE_MESSAGE(made.ok(), made.status().message());
  CHECK(made.value()["spec"]["holderIdentity"] == "a");
  REQUIRE(c->Delete(path).ok());
}

TEST_CASE("kube live: a client certificate signed by the cluster CA authenticates") {
  const std::string dir = Env("KUBE_DIR");
  auto admin = kube::LoadKubeconfig(Env("KUBECONFIG_ADMIN"), "");
  REQUIRE(admin.ok());
  kube::Config config = admin.value();
  config.token.clear();
  config.client_cert_pem = ReadFile(dir + "/cert-user.crt");
  config.client_key_pem = ReadFile(dir + "/cert-user.key");
  REQUIRE_FALSE(config.client_cert_pem.empty());
  auto client = kube::MakeClient(config);
  REQUIRE(client.ok());
  // The certificate's O=system:masters makes it an admin.
  auto ns = client.value()->Get("/api/v1/namespaces/default");
  REQUIRE_MESSAGE(ns.ok(), ns.status().message());
  CHECK(ns.value()["metadata"]["name"] == "default");
}

TEST_CASE("kube live: a wrong token is refused and never shows in the error") {
  auto admin = kube::LoadKubeconfig(Env("KUBECONFIG_ADMIN"), "");
  REQUIRE(admin.ok());
  kube::Config config = admin.value();
  config.token = "canary-wrong-token-5150";
  auto client = kube::MakeClient(config);
  REQUIRE(client.ok());
  auto r = client.value()->Get("/api/v1/namespaces/default");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kFailed);
  CHECK(r.status().message().find("401") != std::string::npos);
  CHECK(r.status().message().find("canary") == std::string::npos);
}

TEST_CASE("kube live: a CA that did not sign the server is a TLS error") {
  auto admin = kube::LoadKubeconfig(Env("KUBECONFIG_ADMIN"), "");
  REQUIRE(admin.ok());
  kube::Config config = admin.value();
  config.ca_pem = ReadFile(Env("KUBE_DIR") + "/other-ca.crt");
  auto client = kube::MakeClient(config);
  REQUIRE(client.ok());
  auto r = client.value()->Get("/version");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("TLS verification failed") != std::string::npos);
}

TEST_CASE("kube live: in-cluster config with a service-account token; RBAC answers 403") {
  // KUBE_SA_ROOT holds token, ca.crt and namespace as a pod's mount would.
  const std::string root = Env("KUBE_SA_ROOT");
  const std::string server = Env("KUBE_SERVER");  // https://127.0.0.1:PORT
  const std::string hostport = server.substr(std::string("https://").size());
  ::setenv("KUBERNETES_SERVICE_HOST", hostport.substr(0, hostport.rfind(':')).c_str(), 1);
  ::setenv("KUBERNETES_SERVICE_PORT", hostport.substr(hostport.rfind(':') + 1).c_str(), 1);
  auto config = kube::InClusterConfig(root);
  ::unsetenv("KUBERNETES_SERVICE_HOST");
  ::unsetenv("KUBERNETES_SERVICE_PORT");
  REQUIRE_MESSAGE(config.ok(), config.status().message());
  CHECK(config.value().namespace_name == "live");
  auto client = kube::MakeClient(config.value());
  REQUIRE(client.ok());
  // The test's Role lets the account read configmaps in "live" only.
  auto ok = client.value()->Get(kube::CollectionPath("v1", "live", "configmaps"));
  REQUIRE_MESSAGE(ok.ok(), ok.status().message());
  auto denied = client.value()->Get(kube::CollectionPath("v1", "live", "secrets"));
  REQUIRE_FALSE(denied.ok());
  CHECK(denied.status().code() == Code::kFailed);
  CHECK(denied.status().message().find("403 Forbidden") != std::string::npos);
  CHECK(denied.status().message().find("system:serviceaccount:live:reader") != std::string::npos);
}
