// The Kubernetes provider (issue #10 item 4): spec.kubernetes validation,
// the Agent fields a Deployment cannot carry, the manifests it applies, the
// managedFields drift logic, and the provider's calls against a fake
// kube::Client (server-side apply bookkeeping of field managers, as the API
// server keeps it). The real API server is tests/scripts/kubernetes_cli_test.sh.
#include "kubernetes/kubernetes_provider.h"

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "kubernetes/kube_client.h"
#include "kubernetes/kubernetes_manifests.h"
#include "kubernetes/kubernetes_target.h"
#include "reconcile/spec.h"

namespace reconcile::kubernetes {
namespace {

using nlohmann::json;

const char* kCanary = "canary-s3cr3t-value-4711";

Agent WebAgent() {
  Agent a;
  a.name = "web";
  a.target = "k8s";
  a.image = "nginx:1.27";
  a.port = 8080;
  a.env = {{"GREETING", "hello"}, {"LOG_LEVEL", "info"}};
  a.replicas = 2;
  HealthCheck h;
  h.path = "/healthz";
  h.interval_ms = 5000;
  h.timeout_ms = 2000;
  h.retries = 3;
  a.health_check = h;
  a.labels = {{"team", "support"}};
  return a;
}

std::vector<ProviderDiagnostic> Errors(const std::vector<ProviderDiagnostic>& all) {
  std::vector<ProviderDiagnostic> out;
  for (const auto& d : all) {
    if (d.severity == Severity::kError) out.push_back(d);
  }
  return out;
}

// --- The fake API server ----------------------------------------------------

// fieldsV1 of an apply configuration, as the API server records it.
json ToFieldsV1(const json& v, const std::string& field = "") {
  json out = json::object();
  if (!v.is_object()) return out;
  for (const auto& [k, child] : v.items()) {
    if (field.empty() && (k == "apiVersion" || k == "kind")) continue;
    if (field == "metadata" && (k == "name" || k == "namespace")) continue;
    const bool keyed =
        k == "containers" || k == "env" || k == "volumes" || k == "volumeMounts" || k == "ports";
    if (child.is_array() && keyed) {
      json list = json::object();
      for (const json& item : child) {
        json key = json::object();
        if (k == "volumeMounts") {
          key["mountPath"] = item["mountPath"];
        } else if (k == "ports" && item.contains("containerPort")) {
          key["containerPort"] = item["containerPort"];
          key["protocol"] = item["protocol"];
        } else if (k == "ports") {
          key["port"] = item["port"];
          key["protocol"] = item["protocol"];
        } else {
          key["name"] = item["name"];
        }
        json entry = ToFieldsV1(item, k);
        entry["."] = json::object();
        list["k:" + key.dump()] = entry;
      }
      out["f:" + k] = list;
    } else if (child.is_object() && !child.empty()) {
      out["f:" + k] = ToFieldsV1(child, k);
    } else {
      out["f:" + k] = json::object();
    }
  }
  return out;
}

class FakeKube final : public kube::Client {
 public:
  FakeKube()
      : kube::Client(kube::Config{"https://127.0.0.1:1", "", false, "fake-token", "", "", "",
                                  "apps", "fake"}) {}

  Result<json> Request(std::string_view method, std::string_view path_and_query,
                       std::string_view body, std::string_view content_type, std::stop_token,
                       std::string_view traceparent) override {
    std::lock_guard lock(mu);
    traceparents.push_back(std::string(traceparent));
    std::string full(path_and_query);
    std::string path = full.substr(0, full.find('?'));
    std::string query = full.find('?') == std::string::npos ? "" : full.substr(full.find('?') + 1);
    log.push_back(std::string(method) + " " + full + " " + std::string(content_type));
    bodies.push_back(std::string(body));
    if (method == "GET") {
      if (auto it = objects.find(path); it != objects.end()) {
        json o = it->second;
        if (ready && o.value("kind", "") == "Deployment") MarkReady(it->second), o = it->second;
        return o;
      }
      if (query.rfind("labelSelector=", 0) == 0) {
        json items = json::array();
        for (const auto& [p, o] : objects) {
          if (p.rfind(path + "/", 0) == 0 &&
              o["metadata"]["labels"].value("reconcile.dev/managed-by", "") == "reconcile") {
            items.push_back(o);
          }
        }
        return json{{"items", items}};
      }
      return Status::NotFound("get " + path + ": not found");
    }
    if (method == "PATCH") {
      json applied = json::parse(body);
      const bool force = query.find("force=true") != std::string::npos;
      const std::string manager = query.substr(
          query.find("fieldManager=") + 13,
          query.find('&', query.find("fieldManager=")) - query.find("fieldManager=") - 13);
      auto it = objects.find(path);
      json live = it == objects.end() ? json::object() : it->second;
      json managed = json::array();
      std::vector<std::string> mine = FieldsV1Leaves(ToFieldsV1(applied));
      if (live.contains("metadata")) {
        for (json entry : live["metadata"].value("managedFields", json::array())) {
          if (entry["manager"] == manager) continue;
          for (const std::string& l : FieldsV1Leaves(entry["fieldsV1"])) {
            if (std::find(mine.begin(), mine.end(), l) != mine.end() && !force) {
              return Status::Conflict("Apply failed with 1 conflict: conflict with \"" +
                                      entry["manager"].get<std::string>() + "\": " + l);
            }
          }
          if (!force) managed.push_back(entry);  // (force: the fake drops the other owner)
        }
      }
      managed.push_back({{"manager", manager},
                         {"operation", "Apply"},
                         {"fieldsType", "FieldsV1"},
                         {"fieldsV1", ToFieldsV1(applied)}});
      json next = applied;
      long generation = live.contains("metadata") ? live["metadata"].value("generation", 0L) : 0L;
      if (!live.contains("spec") || live["spec"] != applied["spec"]) ++generation;
      next["metadata"]["generation"] = generation;
      next["metadata"]["managedFields"] = managed;
      if (live.contains("status")) next["status"] = live["status"];
      if (next.value("kind", "") == "Service") next["spec"]["clusterIP"] = "10.96.0.17";
      objects[path] = next;
      return next;
    }
    if (method == "DELETE") {
      if (objects.erase(path) == 0) return Status::NotFound("delete " + path + ": not found");
      return json{{"kind", "Status"}, {"status", "Success"}};
    }
    return Status::Invalid("fake: unexpected " + std::string(method));
  }

  // What the deployment controller would write: the status of a finished rollout.
  static void MarkReady(json& d) {
    long replicas = d["spec"].value("replicas", 1L);
    d["status"] = {{"observedGeneration", d["metadata"]["generation"]},
                   {"replicas", replicas},
                   {"updatedReplicas", replicas},
                   {"readyReplicas", replicas},
                   {"availableReplicas", replicas}};
  }

  // `kubectl patch` by another field manager (an Update operation): the
  // changed leaf moves to it.
  void ForeignUpdate(const std::string& path, const std::string& manager, const std::string& leaf,
                     const json& value, const json& fields_v1) {
    std::lock_guard lock(mu);
    json& o = objects.at(path);
    json* at = &o;
    std::string rest = leaf;
    while (rest.find('.') != std::string::npos) {
      at = &(*at)[rest.substr(0, rest.find('.'))];
      rest = rest.substr(rest.find('.') + 1);
    }
    (*at)[rest] = value;
    o["metadata"]["generation"] = o["metadata"]["generation"].get<long>() + 1;
    for (json& entry : o["metadata"]["managedFields"]) {
      // The simple case the tests use: a top-level f:spec leaf.
      entry["fieldsV1"]["f:spec"].erase("f:" + rest);
    }
    o["metadata"]["managedFields"].push_back({{"manager", manager},
                                              {"operation", "Update"},
                                              {"fieldsType", "FieldsV1"},
                                              {"fieldsV1", fields_v1}});
  }

  std::mutex mu;
  std::map<std::string, json> objects;
  std::vector<std::string> log;
  std::vector<std::string> bodies;
  std::vector<std::string> traceparents;  // of each request, "" for none
  bool ready = true;
};

Target K8sTarget() {
  Target t;
  t.name = "k8s";
  t.provider = "kubernetes";
  t.settings = {{"namespace", "apps"}};
  return t;
}

Change MakeChange(Action action, const json& spec) {
  Change c;
  c.address = "agent.web";
  c.name = "web";
  c.action = action;
  c.target = "k8s";
  c.provider = "kubernetes";
  c.desired = spec;
  c.desired_hash = spec.is_null() ? "" : SpecHash(spec);
  return c;
}

ApplyChangeRequest MakeRequest(const Change& c) {
  ApplyChangeRequest req;
  req.target = K8sTarget();
  req.change = c;
  req.revision = "0123456789abcdef0123456789abcdef01234567";
  req.secret_values = {{"API_TOKEN", kCanary}};
  return req;
}

}  // namespace

TEST_CASE("kubernetes provider: validate_target, the good blocks and each bad field") {
  ProviderDefinition def = KubernetesProviderDefinition();
  for (const json& good : {json::object(), json{{"namespace", "apps"}},
                           json{{"kubeconfig", "/etc/kube.conf"}, {"context", "kind-a"}},
                           json{{"inCluster", true}, {"namespace", "team-a"}},
                           json{{"inCluster", false}, {"kubeconfig", "k.yaml"}}}) {
    CAPTURE(good.dump());
    CHECK(def.validate_target({"k8s", good}).diagnostics.empty());
  }
  struct Row {
    json block;
    const char* field;
    const char* message;
  };
  const std::vector<Row> rows = {
      {json{{"namespce", "apps"}}, "spec.kubernetes.namespce", "did you mean 'namespace'?"},
      {json{{"namespace", "Apps_1"}}, "spec.kubernetes.namespace", "DNS-1123"},
      {json{{"namespace", 3}}, "spec.kubernetes.namespace", "must be a string"},
      {json{{"inCluster", "yes"}}, "spec.kubernetes.inCluster", "must be a boolean"},
      {json{{"inCluster", true}, {"kubeconfig", "/k"}}, "spec.kubernetes.inCluster",
       "exclude each other"},
      {json{{"inCluster", true}, {"context", "a"}}, "spec.kubernetes.context", "no contexts"},
      {json{{"kubeconfig", ""}}, "spec.kubernetes.kubeconfig", "a file path"},
      {json::array(), "spec.kubernetes", "must be a map"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.block.dump());
    auto d = Errors(def.validate_target({"k8s", row.block}).diagnostics);
    REQUIRE(d.size() == 1);
    CHECK(d[0].field == row.field);
    CHECK_MESSAGE(d[0].message.find(row.message) != std::string::npos, d[0].message);
  }
  CHECK_FALSE(NewKubernetesProvider([] {
                Target t = K8sTarget();
                t.settings = {{"inCluster", true}, {"kubeconfig", "/k"}};
                return t;
              }())
                  .ok());
}

TEST_CASE("kubernetes provider: validate_agent refuses what a Deployment cannot carry") {
  ProviderDefinition def = KubernetesProviderDefinition();
  auto check = [&](const Agent& a) {
    return def.validate_agent(
        {a.name, "k8s", json::object(), NormalizedSpec(a, a.image), nullptr, {}});
  };
  CHECK(check(WebAgent()).diagnostics.empty());
  {
    Agent a = WebAgent();  // what maps: all of it at once
    a.secret_env["API_TOKEN"] = {SecretRef::Source::kEnv, "TOKEN"};
    a.user = "1000:1000";
    a.cap_drop = {"ALL"};
    a.read_only_root_filesystem = true;
    a.stop_grace_period_ms = 30000;
    a.resources.cpu = "0.5";
    a.resources.memory = "256Mi";
    a.strategy.type = StrategyType::kStartFirst;
    CHECK(Errors(check(a).diagnostics).empty());
  }
  struct Row {
    const char* name;
    std::function<void(Agent&)> edit;
    const char* field;
    const char* message;
  };
  const std::vector<Row> rows = {
      {"hostPort", [](Agent& a) { a.host_port = 8080; }, "spec.hostPort", "remove hostPort"},
      {"networks",
       [](Agent& a) {
         a.networks = {{"backend", {}}};
       },
       "spec.networks", "no Docker networks"},
      {"restart", [](Agent& a) { a.restart = "no"; }, "spec.restart", "restartPolicy: Always"},
      {"stopSignal", [](Agent& a) { a.stop_signal = "SIGINT"; }, "spec.stopSignal",
       "always stops a container with SIGTERM"},
      {"stopGracePeriod", [](Agent& a) { a.stop_grace_period_ms = 1500; }, "spec.stopGracePeriod",
       "whole seconds; 1500ms is not"},
      {"user name", [](Agent& a) { a.user = "nginx"; }, "spec.user", "numeric ids only"},
      {"gpus", [](Agent& a) { a.resources.gpus = "1"; }, "spec.resources.gpus",
       "extended resource"},
      {"interval", [](Agent& a) { a.health_check->interval_ms = 500; }, "spec.healthCheck.interval",
       "whole seconds; 500ms is not"},
      {"bind volume",
       [](Agent& a) {
         VolumeMount v;
         v.type = VolumeMount::Type::kBind;
         v.source = "/srv";
         v.target = "/data";
         a.volumes = {v};
       },
       "spec.volumes[0]", "no host folder"},
      {"label value",
       [](Agent& a) {
         a.labels = {{"team", "a b"}};
       },
       "spec.labels.team", "label values"},
      {"reserved label",
       [](Agent& a) {
         a.labels = {{"app.kubernetes.io/name", "x"}};
       },
       "spec.labels.app.kubernetes.io/name", "reconcile sets"},
      {"name", [](Agent& a) { a.name = "9web"; }, "metadata.name", "DNS-1035"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.name);
    Agent a = WebAgent();
    row.edit(a);
    auto d = Errors(check(a).diagnostics);
    REQUIRE(d.size() == 1);
    CHECK(d[0].field == row.field);
    CHECK_MESSAGE(d[0].message.find(row.message) != std::string::npos, d[0].message);
    CHECK(d[0].message.find("Target 'k8s' is Kubernetes") == 0);
  }
}

TEST_CASE("kubernetes provider: the manifests carry the fields, the labels and no secret") {
  Agent a = WebAgent();
  a.command = {"/bin/server"};
  a.args = {"--verbose"};
  a.secret_env["API_TOKEN"] = {SecretRef::Source::kEnv, "TOKEN"};
  a.ports = {{9090, "udp", "", 0, true}};
  a.user = "1000";
  a.cap_add = {"CAP_NET_BIND_SERVICE"};
  a.stop_grace_period_ms = 20000;
  a.resources.cpu = "0.5";
  a.resources.memory = "64K";
  a.strategy.type = StrategyType::kStartFirst;
  json spec = NormalizedSpec(a, a.image);
  ManifestContext c{"web", "k8s", "apps", SpecHash(spec), "abc123"};
  json d = DeploymentManifest(spec, c);
  CHECK(d["apiVersion"] == "apps/v1");
  CHECK(d["metadata"]["namespace"] == "apps");
  const json& labels = d["metadata"]["labels"];
  CHECK(labels["reconcile.dev/managed-by"] == "reconcile");
  CHECK(labels["reconcile.dev/agent"] == "web");
  CHECK(labels["reconcile.dev/target"] == "k8s");
  CHECK(labels["app.kubernetes.io/name"] == "web");
  CHECK(labels["app.kubernetes.io/managed-by"] == "reconcile");
  CHECK(labels["team"] == "support");
  CHECK(labels["reconcile.dev/spec-hash"].get<std::string>().rfind("sha256-", 0) == 0);
  CHECK(labels["reconcile.dev/spec-hash"].get<std::string>().size() == 63);
  CHECK(d["metadata"]["annotations"]["reconcile.dev/spec-hash"] == c.spec_hash);
  CHECK(json::parse(d["metadata"]["annotations"]["reconcile.dev/spec"].get<std::string>()) == spec);
  CHECK(d["spec"]["replicas"] == 2);
  CHECK(d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0);
  CHECK(d["spec"]["selector"]["matchLabels"] ==
        json{{"app.kubernetes.io/name", "web"}, {"reconcile.dev/agent", "web"}});
  const json& pod = d["spec"]["template"]["spec"];
  CHECK(pod["terminationGracePeriodSeconds"] == 20);
  const json& k = pod["containers"][0];
  CHECK(k["image"] == "nginx:1.27");
  CHECK(k["command"] == json::array({"/bin/server"}));
  CHECK(k["args"] == json::array({"--verbose"}));
  CHECK(k["env"] == json::parse(R"([
    {"name":"API_TOKEN","valueFrom":{"secretKeyRef":{"key":"env.API_TOKEN","name":"web.secrets"}}},
    {"name":"GREETING","value":"hello"},{"name":"LOG_LEVEL","value":"info"}])"));
  CHECK(k["ports"] == json::parse(R"([{"containerPort":8080,"protocol":"TCP"},
                                      {"containerPort":9090,"protocol":"UDP"}])"));
  CHECK(k["resources"]["limits"] == json{{"cpu", "0.5"}, {"memory", "64k"}});
  CHECK(k["resources"]["requests"] == k["resources"]["limits"]);
  CHECK(k["securityContext"]["runAsUser"] == 1000);
  CHECK(k["securityContext"]["capabilities"]["add"] == json::array({"NET_BIND_SERVICE"}));
  CHECK(k["readinessProbe"] == json::parse(R"({"httpGet":{"path":"/healthz","port":8080},
        "periodSeconds":5,"timeoutSeconds":2,"failureThreshold":3})"));
  CHECK(k["livenessProbe"] == k["readinessProbe"]);

  auto s = ServiceManifest(spec, c);
  REQUIRE(s);
  CHECK((*s)["spec"]["type"] == "ClusterIP");
  CHECK((*s)["spec"]["ports"] == json::parse(R"([
    {"name":"tcp-8080","port":8080,"protocol":"TCP","targetPort":8080},
    {"name":"udp-9090","port":9090,"protocol":"UDP","targetPort":9090}])"));
  CHECK((*s)["spec"]["selector"] == d["spec"]["selector"]["matchLabels"]);

  auto secret = SecretManifest(spec, c, {{"API_TOKEN", "s3cr3t"}});
  REQUIRE(secret.ok());
  REQUIRE(*secret);
  CHECK((**secret)["metadata"]["name"] == "web.secrets");
  CHECK((**secret)["data"]["env.API_TOKEN"] == "czNjcjN0");  // base64("s3cr3t")
  auto missing = SecretManifest(spec, c, {});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().message().find("API_TOKEN") != std::string::npos);
  CHECK(d.dump().find("s3cr3t") == std::string::npos);

  Agent plain = WebAgent();
  plain.port = 0;
  json plain_spec = NormalizedSpec(plain, plain.image);
  CHECK_FALSE(ServiceManifest(plain_spec, c));
  CHECK_FALSE(*SecretManifest(plain_spec, c, {}));
}

TEST_CASE("kubernetes provider: managedFields drift, leaf by leaf") {
  json spec = NormalizedSpec(WebAgent(), "nginx:1.27");
  ManifestContext c{"web", "k8s", "apps", SpecHash(spec), "abc"};
  json desired = DeploymentManifest(spec, c);

  // The leaves, in the form drift names them; keyed lists item by item.
  std::map<std::string, json> leaves = DesiredLeaves(desired);
  CHECK(leaves.at("spec.replicas") == 2);
  CHECK(leaves.at("spec.template.spec.containers[name=web].env[name=GREETING].value") == "hello");
  CHECK(leaves.at("spec.template.spec.containers[name=web].ports[containerPort=8080,protocol=TCP]"
                  ".protocol") == "TCP");
  CHECK(leaves.at("metadata.labels[\"reconcile.dev/agent\"]") == "web");
  CHECK(leaves.count("metadata.name") == 0);

  // fieldsV1 as the API server writes it names the same leaves.
  std::vector<std::string> from_server = FieldsV1Leaves(json::parse(R"({
    "f:metadata":{"f:labels":{"f:reconcile.dev/agent":{}}},
    "f:spec":{"f:replicas":{},"f:template":{"f:spec":{"f:containers":{
      "k:{\"name\":\"web\"}":{".":{},"f:env":{"k:{\"name\":\"GREETING\"}":{".":{},"f:name":{},"f:value":{}}},
      "f:ports":{"k:{\"containerPort\":8080,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{},"f:protocol":{}}}}}}}}})"));
  for (const std::string& l : from_server) {
    CAPTURE(l);
    CHECK(leaves.count(l) == 1);
  }
  CHECK(from_server.size() == 6);

  json live = desired;
  live["metadata"]["managedFields"] = json::array(
      {{{"manager", "reconcile"}, {"operation", "Apply"}, {"fieldsV1", ToFieldsV1(desired)}},
       {{"manager", "kube-controller-manager"},
        {"operation", "Update"},
        {"subresource", "status"},
        {"fieldsV1", {{"f:status", {{"f:replicas", json::object()}}}}}}});
  live["status"] = {{"replicas", 2}};
  live["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] =
      "/dev/termination-log";
  CHECK(ManagedFieldDrift(desired, live, "reconcile").empty());

  SUBCASE("another manager took replicas") {
    live["spec"]["replicas"] = 5;
    live["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"].erase("f:replicas");
    live["metadata"]["managedFields"].push_back(
        {{"manager", "kubectl-patch"},
         {"operation", "Update"},
         {"fieldsV1", {{"f:spec", {{"f:replicas", json::object()}}}}}});
    auto drift = ManagedFieldDrift(desired, live, "reconcile");
    REQUIRE(drift.size() == 1);
    CHECK(drift[0] == "spec.replicas: now managed by kubectl-patch (5; reconcile applies 2)");
  }
  SUBCASE("an env value differs while reconcile still owns it") {
    live["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "bye";
    auto drift = ManagedFieldDrift(desired, live, "reconcile");
    REQUIRE(drift.size() == 1);
    CHECK(drift[0] ==
          "spec.template.spec.containers[name=web].env[name=GREETING].value: bye (reconcile "
          "applies hello)");
  }
  SUBCASE("an atomic struct (spec.selector) is owned as one leaf") {
    json& f = live["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"];
    f["f:selector"] = json::object();  // as the API server records a LabelSelector
    CHECK(ManagedFieldDrift(desired, live, "reconcile").empty());
    live["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"].erase("f:selector");
    auto drift = ManagedFieldDrift(desired, live, "reconcile");
    REQUIRE(drift.size() == 2);
    CHECK(drift[0].find("spec.selector.matchLabels") == 0);
  }
  SUBCASE("a field both own with the same value is not drift") {
    live["metadata"]["managedFields"].push_back(
        {{"manager", "helm"},
         {"operation", "Apply"},
         {"fieldsV1", {{"f:spec", {{"f:replicas", json::object()}}}}}});
    CHECK(ManagedFieldDrift(desired, live, "reconcile").empty());
  }
  SUBCASE("no managedFields at all: every field is drift") {
    live["metadata"].erase("managedFields");
    CHECK(ManagedFieldDrift(desired, live, "reconcile").size() == leaves.size());
  }
  SUBCASE("a quantity the server rewrote is not drift") {
    Agent a = WebAgent();
    a.resources.cpu = "0.5";
    json s2 = NormalizedSpec(a, a.image);
    json d2 = DeploymentManifest(s2, c);
    json l2 = d2;
    l2["metadata"]["managedFields"] = json::array(
        {{{"manager", "reconcile"}, {"operation", "Apply"}, {"fieldsV1", ToFieldsV1(d2)}}});
    l2["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "500m";
    CHECK(ManagedFieldDrift(d2, l2, "reconcile").empty());
  }
}

TEST_CASE("kubernetes provider: rollout health from the Deployment's status") {
  json d = {{"metadata", {{"generation", 3}}}, {"spec", {{"replicas", 2}}}};
  CHECK(DeploymentHealth(d).health == "starting");
  d["status"] = {
      {"observedGeneration", 3}, {"replicas", 3}, {"updatedReplicas", 2}, {"availableReplicas", 2}};
  CHECK(DeploymentHealth(d).message == "1 old replicas pending termination");
  d["status"]["replicas"] = 2;
  CHECK(DeploymentHealth(d).health == "healthy");
  d["metadata"]["generation"] = 4;
  CHECK(DeploymentHealth(d).health == "starting");
  d["status"]["conditions"] = json::array(
      {{{"type", "Progressing"}, {"status", "False"}, {"reason", "ProgressDeadlineExceeded"}}});
  CHECK(DeploymentHealth(d).health == "unhealthy");
  json s = {{"metadata", {{"name", "web"}, {"namespace", "apps"}}},
            {"spec", {{"clusterIP", "10.0.0.9"}, {"ports", {{{"port", 8080}}}}}}};
  CHECK(ServiceAddress(s) == "web.apps.svc:8080 (clusterIP 10.0.0.9)");
}

TEST_CASE("kubernetes provider: apply, observe, drift, heal and delete on a fake API server") {
  auto fake = std::make_shared<FakeKube>();
  KubernetesOptions options;
  options.client = fake;
  options.poll_interval = std::chrono::milliseconds(1);
  auto made = NewKubernetesProvider(K8sTarget(), options);
  REQUIRE(made.ok());
  Provider& p = **made;
  Agent a = WebAgent();
  a.secret_env["API_TOKEN"] = {SecretRef::Source::kEnv, "TOKEN"};
  json spec = NormalizedSpec(a, a.image);

  ApplyChangeResponse created = p.ApplyChange(MakeRequest(MakeChange(Action::kCreate, spec)));
  REQUIRE_MESSAGE(created.status.ok(), created.status.ToString());
  CHECK(created.health == "healthy");
  REQUIRE(created.instances.size() == 1);
  CHECK(created.instances[0].endpoint == "web.apps.svc:8080 (clusterIP 10.96.0.17)");
  const std::string dep = "/apis/apps/v1/namespaces/apps/deployments/web";
  REQUIRE(fake->objects.count(dep));
  REQUIRE(fake->objects.count("/api/v1/namespaces/apps/services/web"));
  REQUIRE(fake->objects.count("/api/v1/namespaces/apps/secrets/web.secrets"));
  int applies = 0;
  for (const std::string& line : fake->log) {
    if (line.rfind("PATCH", 0) != 0) continue;
    ++applies;
    CHECK(line.find("fieldManager=reconcile") != std::string::npos);
    CHECK(line.find("force=true") == std::string::npos);  // a create does not force
    CHECK(line.find("application/apply-patch+yaml") != std::string::npos);
  }
  CHECK(applies == 3);
  // The canary is only in the Secret's body, base64-encoded, never in the Deployment.
  CHECK(fake->objects[dep].dump().find("canary") == std::string::npos);

  ObserveResponse seen = p.Observe({K8sTarget()});
  REQUIRE(seen.status.ok());
  REQUIRE(seen.instances.size() == 1);
  CHECK(seen.instances[0].agent == "web");
  CHECK(seen.instances[0].spec_hash == SpecHash(spec));
  CHECK(seen.instances[0].health == "healthy");
  CHECK(seen.instances[0].running);
  CHECK(seen.instances[0].revision == "0123456789abcdef0123456789abcdef01234567");

  // kubectl patch --field-manager kubectl-patch: replicas 7.
  fake->ForeignUpdate(dep, "kubectl-patch", "spec.replicas", 7,
                      {{"f:spec", {{"f:replicas", json::object()}}}});
  seen = p.Observe({K8sTarget()});
  REQUIRE(seen.instances.size() == 1);
  CHECK(seen.instances[0].spec_hash ==
        SpecHash(spec) +
            " (changed outside reconcile: spec.replicas: now managed by kubectl-patch (7; "
            "reconcile applies 2))");

  // Heal: the planner's replace applies with force and takes replicas back.
  fake->log.clear();
  ApplyChangeResponse healed = p.ApplyChange(MakeRequest(MakeChange(Action::kReplace, spec)));
  REQUIRE_MESSAGE(healed.status.ok(), healed.status.ToString());
  for (const std::string& line : fake->log) {
    if (line.rfind("PATCH", 0) == 0) CHECK(line.find("force=true") != std::string::npos);
  }
  CHECK(fake->objects[dep]["spec"]["replicas"] == 2);
  seen = p.Observe({K8sTarget()});
  CHECK(seen.instances[0].spec_hash == SpecHash(spec));

  // A Service of the agent's name without the labels: a conflict, untouched.
  fake->objects["/api/v1/namespaces/apps/services/web"]["metadata"]["labels"] = json::object();
  ApplyChangeResponse refused = p.ApplyChange(MakeRequest(MakeChange(Action::kUpdate, spec)));
  CHECK(refused.status.code() == Code::kConflict);
  CHECK(refused.status.message().find("not managed by reconcile") != std::string::npos);

  // Delete: the owned Deployment and Secret go (Background); the unlabelled
  // Service is left alone with a warning.
  fake->log.clear();
  ApplyChangeResponse deleted = p.ApplyChange(MakeRequest(MakeChange(Action::kDelete, spec)));
  REQUIRE_MESSAGE(deleted.status.ok(), deleted.status.ToString());
  CHECK(fake->objects.count(dep) == 0);
  CHECK(fake->objects.count("/api/v1/namespaces/apps/secrets/web.secrets") == 0);
  CHECK(fake->objects.count("/api/v1/namespaces/apps/services/web") == 1);
  REQUIRE(deleted.warnings.size() == 1);
  CHECK(deleted.warnings[0].find("service web is left alone") != std::string::npos);
  std::string everything;
  for (const std::string& w : created.warnings) everything += w;
  everything += created.status.ToString() + healed.status.ToString() + refused.status.ToString();
  CHECK(everything.find(kCanary) == std::string::npos);
}

// Issue #12 item 3: every API request of a traced change carries its
// traceparent exactly; an untraced change's carry none.
TEST_CASE("kubernetes provider: traceparent on every request of a change") {
  auto fake = std::make_shared<FakeKube>();
  KubernetesOptions options;
  options.client = fake;
  options.poll_interval = std::chrono::milliseconds(1);
  auto made = NewKubernetesProvider(K8sTarget(), options);
  REQUIRE(made.ok());
  Provider& p = **made;
  Agent a = WebAgent();
  a.secret_env["API_TOKEN"] = {SecretRef::Source::kEnv, "TOKEN"};
  json spec = NormalizedSpec(a, a.image);
  const std::string tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  for (Action action : {Action::kCreate, Action::kReplace, Action::kDelete}) {
    CAPTURE(static_cast<int>(action));
    fake->traceparents.clear();
    ApplyChangeRequest req = MakeRequest(MakeChange(action, spec));
    req.traceparent = tp;
    ApplyChangeResponse r = p.ApplyChange(req);
    REQUIRE_MESSAGE(r.status.ok(), r.status.ToString());
    CHECK(fake->traceparents.size() >= 3);
    for (const std::string& seen : fake->traceparents) CHECK(seen == tp);
  }
  fake->traceparents.clear();
  ApplyChangeResponse untraced = p.ApplyChange(MakeRequest(MakeChange(Action::kCreate, spec)));
  REQUIRE_MESSAGE(untraced.status.ok(), untraced.status.ToString());
  CHECK(fake->traceparents.size() >= 3);
  for (const std::string& seen : fake->traceparents) CHECK(seen.empty());
  // Observe is not part of a change: no traceparent.
  fake->traceparents.clear();
  REQUIRE(p.Observe({K8sTarget()}).status.ok());
  CHECK(!fake->traceparents.empty());
  for (const std::string& seen : fake->traceparents) CHECK(seen.empty());
}

// Issue #11 item 2: an environment's Deployment, Service and Secret are
// "<environment>--<agent>", labelled reconcile.dev/environment; its selector
// never matches the plain tree's pods (nor theirs it); each Target observes
// and deletes only its own.
TEST_CASE("kubernetes provider: environments in one namespace are scoped and filtered") {
  auto fake = std::make_shared<FakeKube>();
  KubernetesOptions options;
  options.client = fake;
  options.poll_interval = std::chrono::milliseconds(1);
  Target staging_t = K8sTarget();
  staging_t.environment = "staging";
  auto staging = NewKubernetesProvider(staging_t, options);
  auto plain = NewKubernetesProvider(K8sTarget(), options);
  REQUIRE(staging.ok());
  REQUIRE(plain.ok());
  Agent a = WebAgent();
  a.secret_env["API_TOKEN"] = {SecretRef::Source::kEnv, "TOKEN"};
  json spec = NormalizedSpec(a, a.image);

  ApplyChangeRequest create = MakeRequest(MakeChange(Action::kCreate, spec));
  create.target = staging_t;
  ApplyChangeResponse r = (*staging)->ApplyChange(create);
  REQUIRE_MESSAGE(r.status.ok(), r.status.ToString());
  REQUIRE(r.instances.size() == 1);
  CHECK(r.instances[0].name == "staging--web");
  CHECK(r.instances[0].endpoint == "staging--web.apps.svc:8080 (clusterIP 10.96.0.17)");
  const std::string dep = "/apis/apps/v1/namespaces/apps/deployments/staging--web";
  REQUIRE(fake->objects.count(dep));
  REQUIRE(fake->objects.count("/api/v1/namespaces/apps/services/staging--web"));
  REQUIRE(fake->objects.count("/api/v1/namespaces/apps/secrets/staging--web.secrets"));
  const json& d = fake->objects[dep];
  CHECK(d["metadata"]["labels"][kLabelEnvironment] == "staging");
  CHECK(d["metadata"]["labels"][kLabelAgent] == "web");
  CHECK(d["spec"]["template"]["metadata"]["labels"][kLabelEnvironment] == "staging");
  CHECK(d["spec"]["template"]["spec"]["containers"][0]["name"] == "web");
  json selector =
      fake->objects["/api/v1/namespaces/apps/services/staging--web"]["spec"]["selector"];
  CHECK(selector[kLabelEnvironment] == "staging");
  CHECK(selector[kLabelAppName] == "staging--web");

  CHECK((*plain)->Observe({K8sTarget()}).instances.empty());
  r = (*plain)->ApplyChange(MakeRequest(MakeChange(Action::kCreate, spec)));
  REQUIRE_MESSAGE(r.status.ok(), r.status.ToString());
  // The plain tree's Service selects none of staging's pods: their
  // app.kubernetes.io/name differs.
  json plain_selector = fake->objects["/api/v1/namespaces/apps/services/web"]["spec"]["selector"];
  CHECK_FALSE(plain_selector.contains(kLabelEnvironment));
  CHECK(plain_selector[kLabelAppName] == "web");
  ObserveResponse seen = (*staging)->Observe({staging_t});
  REQUIRE(seen.status.ok());
  REQUIRE(seen.instances.size() == 1);
  CHECK(seen.instances[0].agent == "web");
  CHECK(seen.instances[0].name == "staging--web");
  CHECK(seen.instances[0].spec_hash == SpecHash(spec));  // no drift from the scoped manifests
  seen = (*plain)->Observe({K8sTarget()});
  REQUIRE(seen.instances.size() == 1);
  CHECK(seen.instances[0].name == "web");
  CHECK(seen.instances[0].spec_hash == SpecHash(spec));

  ApplyChangeRequest del = MakeRequest(MakeChange(Action::kDelete, spec));
  del.target = staging_t;
  r = (*staging)->ApplyChange(del);
  REQUIRE_MESSAGE(r.status.ok(), r.status.ToString());
  CHECK(fake->objects.count(dep) == 0);
  CHECK(fake->objects.count("/apis/apps/v1/namespaces/apps/deployments/web") == 1);
  CHECK(fake->objects.count("/api/v1/namespaces/apps/secrets/web.secrets") == 1);
  CHECK((*plain)->Observe({K8sTarget()}).instances.size() == 1);

  // A Deployment of staging's name labelled for the plain tree: a conflict.
  json stolen = fake->objects["/apis/apps/v1/namespaces/apps/deployments/web"];
  stolen["metadata"]["name"] = "staging--web";
  fake->objects[dep] = stolen;
  r = (*staging)->ApplyChange(create);
  CHECK(r.status.code() == Code::kConflict);
  CHECK(r.status.message().find(std::string(kLabelEnvironment) + "=staging") != std::string::npos);

  // validate_agent counts the scoped name against the 63 of DNS-1035.
  ProviderDefinition def = KubernetesProviderDefinition();
  Agent longer = WebAgent();
  longer.name = std::string(56, 'a');
  ValidateAgentRequest v{
      longer.name, "k8s", K8sTarget().settings, NormalizedSpec(longer, longer.image), nullptr, {}};
  CHECK(Errors(def.validate_agent(v).diagnostics).empty());
  v.environment = "staging";  // "staging--" + 56 = 65
  auto errors = Errors(def.validate_agent(v).diagnostics);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].field == "metadata.name");
}

TEST_CASE("kubernetes provider: a rollout that does not finish in time is unhealthy") {
  auto fake = std::make_shared<FakeKube>();
  fake->ready = false;
  KubernetesOptions options;
  options.client = fake;
  options.poll_interval = std::chrono::milliseconds(1);
  options.rollout_timeout = std::chrono::milliseconds(30);
  auto made = NewKubernetesProvider(K8sTarget(), options);
  REQUIRE(made.ok());
  json spec = NormalizedSpec(WebAgent(), "nginx:1.27");
  ApplyChangeResponse r = (*made)->ApplyChange(MakeRequest(MakeChange(Action::kCreate, spec)));
  CHECK(r.status.code() == Code::kUnavailable);
  CHECK(r.health == "unhealthy");
  CHECK(r.status.message().find("did not finish its rollout in time") != std::string::npos);
  REQUIRE(r.instances.size() == 1);
}

}  // namespace reconcile::kubernetes
