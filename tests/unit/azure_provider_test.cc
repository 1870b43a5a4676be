// The Azure Container Apps provider (providers/azure) against the fake ARM
// server of tests/fakes/clouds/containerapps_fake.py, started here as a
// child process (python3, stopped by its pid): validation of spec.azure and
// of the Agent fields Container Apps refuses, a whole lifecycle through the
// Provider interface (observe, create, update in place as a new revision,
// replace, delete, idempotency, ownership), the cloud's 4xx messages,
// throttling, stop during a wait, missing credentials, and canaries for the
// client secret and a secret env value. Every fake test ends by asserting
// that the fake's model check found no problem in any request.
#include "azure/containerapps_provider.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <boost/asio/ip/tcp.hpp>
#include <nlohmann/json.hpp>

#include "azure/containerapps_validate.h"
#include "azure/containerapps_wire.h"
#include "fakes/loopback_http_server.h"
#include "fakes/temp_dir.h"
#include "http/http_client.h"
#include "reconcile/json_schemas.h"
#include "reconcile/spec.h"

extern char** environ;

namespace reconcile::azure {
namespace {

using nlohmann::json;
using reconcile::testing::TempDir;

constexpr const char* kTenant = "00000000-0000-0000-0000-000000000001";
constexpr const char* kClientId = "00000000-0000-0000-0000-0000000000c1";
constexpr const char* kClientSecretCanary = "CANARY-client-secret-7f3a9c";
constexpr const char* kSecretEnvCanary = "CANARY-secret-env-value-51d2e8";
constexpr const char* kStaticToken = "static-test-token-for-raw-requests";
constexpr const char* kSubscription = "11111111-2222-3333-4444-555555555555";

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// The fake Container Apps server as a child process.
class FakeArm {
 public:
  FakeArm() : dir_("reconcile-azure-fake") {
    const std::string script =
        std::string(RECONCILE_SOURCE_DIR) + "/tests/fakes/clouds/containerapps_fake.py";
    port_file_ = (dir_.path() / "port").string();
    log_file_ = (dir_.path() / "log.jsonl").string();
    std::vector<std::string> args = {"python3",
                                     script,
                                     "--port-file",
                                     port_file_,
                                     "--log",
                                     log_file_,
                                     "--retry-after",
                                     "0",
                                     "--azure-tenant",
                                     kTenant,
                                     "--azure-client-id",
                                     kClientId,
                                     "--azure-client-secret",
                                     kClientSecretCanary,
                                     "--azure-token",
                                     kStaticToken};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_text = {"PYTHONDONTWRITEBYTECODE=1"};
    for (char** e = environ; *e != nullptr; ++e) env_text.emplace_back(*e);
    std::vector<char*> envp;
    for (std::string& e : env_text) envp.push_back(e.data());
    envp.push_back(nullptr);
    REQUIRE(posix_spawnp(&pid_, "python3", nullptr, nullptr, argv.data(), envp.data()) == 0);
    for (int i = 0; i < 300 && port_ == 0; ++i) {
      std::ifstream in(port_file_);
      int port = 0;
      if (in >> port && port > 0) port_ = port;
      if (port_ == 0) {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
          pid_ = 0;  // it exited
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
    if (port_ == 0 && pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
    REQUIRE_MESSAGE(port_ > 0, "the fake (python3 containerapps_fake.py) did not start");
    client_ = http::MakeCurlClient();
  }
  ~FakeArm() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status = 0;
      waitpid(pid_, &status, 0);
    }
  }
  FakeArm(const FakeArm&) = delete;
  FakeArm& operator=(const FakeArm&) = delete;

  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }

  http::Response Raw(const std::string& method, const std::string& path, const json* body,
                     bool authorize) {
    http::Request req;
    req.method = method;
    req.url = base() + path;
    if (authorize) req.headers.push_back({"Authorization", std::string("Bearer ") + kStaticToken});
    if (body != nullptr) {
      req.headers.push_back({"Content-Type", "application/json"});
      req.body = body->dump();
    }
    auto res = client_->Send(req);
    REQUIRE_MESSAGE(res.ok(), res.status().message());
    return *res;
  }
  json Control(const std::string& method, const std::string& what, const json& body = nullptr) {
    json b = body.is_null() ? json::object() : body;
    http::Response r = Raw(method, "/_fake/" + what, method == "GET" ? nullptr : &b, false);
    REQUIRE_MESSAGE(r.status == 200, r.body);
    return json::parse(r.body);
  }
  json Log() { return Control("GET", "log"); }
  json State() { return Control("GET", "state"); }
  // Every request the fake saw passed the API model's check.
  void CheckNoProblems() {
    json problems = Control("GET", "problems");
    CHECK_MESSAGE(problems.empty(), problems.dump(2));
    std::ifstream in(log_file_);
    std::stringstream text;
    text << in.rdbuf();
    CHECK_MESSAGE(!Contains(text.str(), kClientSecretCanary), "the client secret is in the log");
    CHECK_MESSAGE(!Contains(text.str(), kSecretEnvCanary), "a secret value is in the log");
  }
  // Requests of the log with this operation (ContainerApps_CreateOrUpdate, ...).
  int Count(const std::string& operation, int status = 0) {
    int n = 0;
    for (const json& e : Log()) {
      if (e.value("operation", json()).is_string() && e["operation"] == operation &&
          (status == 0 || e["status"] == status)) {
        ++n;
      }
    }
    return n;
  }

 private:
  TempDir dir_;
  std::string port_file_;
  std::string log_file_;
  pid_t pid_ = 0;
  int port_ = 0;
  std::unique_ptr<http::Client> client_;
};

std::string AppPath(const std::string& name, const std::string& rg = "rg-test") {
  return std::string("/subscriptions/") + kSubscription + "/resourceGroups/" + rg +
         "/providers/Microsoft.App/containerApps/" + name + "?api-version=" + kApiVersion;
}

json Block(const std::string& base) {
  return {{"subscriptionId", kSubscription},
          {"resourceGroup", "rg-test"},
          {"environmentName", "env-test"},
          {"location", "westeurope"},
          {"endpoint", base},
          {"authEndpoint", base}};
}

Target AzureTarget(const json& block) {
  Target t;
  t.name = "azure-test";
  t.provider = "azure";
  t.settings = block;
  return t;
}

http::Getenv EnvOf(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end() || it->second.empty()) return std::nullopt;
    return it->second;
  };
}

ContainerAppsOptions FastOptions(http::Getenv getenv) {
  ContainerAppsOptions o;
  o.getenv = std::move(getenv);
  o.client.max_attempts = 4;
  o.client.base_backoff = std::chrono::milliseconds(20);
  o.client.max_backoff = std::chrono::milliseconds(100);
  o.min_poll = std::chrono::milliseconds(10);
  o.default_poll = std::chrono::milliseconds(50);
  o.max_poll = std::chrono::milliseconds(200);
  o.operation_timeout = std::chrono::seconds(30);
  return o;
}

http::Getenv ServicePrincipal() {
  return EnvOf({{"AZURE_TENANT_ID", kTenant},
                {"AZURE_CLIENT_ID", kClientId},
                {"AZURE_CLIENT_SECRET", kClientSecretCanary}});
}

std::unique_ptr<Provider> MakeProvider(const json& block, http::Getenv getenv) {
  auto p = NewContainerAppsProvider(AzureTarget(block), FastOptions(std::move(getenv)));
  REQUIRE_MESSAGE(p.ok(), p.status().message());
  return std::move(*p);
}

Agent HelloAgent() {
  Agent a;
  a.name = "hello";
  a.image = "mcr.microsoft.com/k8se/quickstart:latest";
  a.target = "azure-test";
  a.port = 8080;
  a.env = {{"GREETING", "hello"}};
  a.secret_env = {{"API_KEY", SecretRef{SecretRef::Source::kEnv, "API_KEY"}}};
  a.health_check = HealthCheck{};
  a.labels = {{"team", "cx"}};
  return a;
}

// Everything a change let out: status, warnings, progress lines, instances.
struct Outcome {
  ApplyChangeResponse response;
  std::vector<std::string> progress;
  int waiting_calls = 0;
  bool waiting_balanced = true;

  std::string AllText() const {
    std::string text = response.status.message() + "\n" + response.health + "\n";
    for (const auto& w : response.warnings) text += w + "\n";
    for (const auto& p : progress) text += p + "\n";
    for (const auto& i : response.instances) text += i.id + " " + i.name + " " + i.endpoint + "\n";
    return text;
  }
};

Outcome Apply(Provider& p, Action action, const Agent& agent, const std::string& revision,
              std::stop_token stop = {}, const std::string& traceparent = "") {
  ApplyChangeRequest req;
  req.target = AzureTarget(json::object());
  req.change.address = "agent." + agent.name;
  req.change.name = agent.name;
  req.change.action = action;
  req.change.target = agent.target;
  req.change.provider = "azure";
  json spec = NormalizedSpec(agent, agent.image);
  req.change.desired_hash = action == Action::kDelete ? "" : SpecHash(spec);
  req.change.desired = spec;
  req.revision = revision;
  req.secret_values = {{"API_KEY", kSecretEnvCanary}};
  req.stop = stop;
  req.traceparent = traceparent;
  auto out = std::make_shared<Outcome>();
  auto mu = std::make_shared<std::mutex>();
  auto depth = std::make_shared<int>(0);
  req.progress = [out, mu](const std::string& line) {
    std::lock_guard<std::mutex> lock(*mu);
    out->progress.push_back(line);
  };
  req.waiting = [out, depth](bool waiting) {
    ++out->waiting_calls;
    if (waiting == (*depth == 1)) out->waiting_balanced = false;
    *depth = waiting ? 1 : 0;
  };
  out->response = p.ApplyChange(req);
  if (*depth != 0) out->waiting_balanced = false;
  return *out;
}

std::string ObservedText(const ObserveResponse& r) {
  std::string text = r.status.message() + "\n";
  for (const auto& w : r.warnings) text += w + "\n";
  for (const ObservedInstance& i : r.instances) {
    text += i.id + i.name + i.agent + i.spec_hash + i.revision + i.image + i.state + i.endpoint +
            i.health + "\n";
  }
  return text;
}

void CheckNoCanary(const std::string& text) {
  CHECK_MESSAGE(!Contains(text, kClientSecretCanary), text);
  CHECK_MESSAGE(!Contains(text, kSecretEnvCanary), text);
}

// A loopback port nobody listens on.
int ClosedPort() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(
      io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

std::vector<ProviderDiagnostic> TargetDiags(const json& block) {
  ValidateTargetRequest req;
  req.target = "azure-test";
  req.config = block;
  return ValidateTarget(req).diagnostics;
}

std::string Find(const std::vector<ProviderDiagnostic>& diags, const std::string& field) {
  for (const auto& d : diags) {
    if (d.field == field) return d.message;
  }
  return "";
}

std::vector<ProviderDiagnostic> AgentDiags(const Agent& agent, const json& block = json::object()) {
  ValidateAgentRequest req;
  req.agent = agent.name;
  req.target = "prod";
  req.target_config = block;
  req.spec = NormalizedSpec(agent, agent.image);
  return ValidateAgent(req).diagnostics;
}

TEST_CASE("azure provider: validate_target takes a good block and names each bad field") {
  json good = Block("https://management.azure.com");
  good["cpu"] = 0.5;
  good["memory"] = "1Gi";
  good["minReplicas"] = 0;
  good["maxReplicas"] = 3;
  CHECK(TargetDiags(good).empty());
  CHECK(TargetDiags(Block("http://127.0.0.1:1234")).empty());

  struct Row {
    const char* name;
    const char* key;
    json value;
    const char* field;
    const char* message;
  };
  const std::vector<Row> rows = {
      {"subscription", "subscriptionId", "x", "spec.azure.subscriptionId",
       "invalid value 'x': must be a subscription id (a UUID)"},
      {"resource group", "resourceGroup", "a b", "spec.azure.resourceGroup",
       "invalid value 'a b': must be a resource group name"},
      {"environment", "environmentName", 3, "spec.azure.environmentName",
       "must be a string, got an integer"},
      {"location", "location", "west europe", "spec.azure.location",
       "invalid value 'west europe': must be an Azure location such as westeurope"},
      {"cpu zero", "cpu", 0, "spec.azure.cpu", "must be a positive number"},
      {"cpu bool", "cpu", true, "spec.azure.cpu", "must be a string or a number, got a boolean"},
      {"cpu empty", "cpu", "", "spec.azure.cpu", "invalid value '': must be a non-empty value"},
      {"cpu words", "cpu", "lots", "spec.azure.cpu", "must be a number of cores"},
      {"memory number", "memory", 2, "spec.azure.memory", "with its unit"},
      {"min replicas", "minReplicas", 1001, "spec.azure.minReplicas",
       "must be between 0 and 1000, got 1001"},
      {"max replicas", "maxReplicas", 0, "spec.azure.maxReplicas",
       "must be between 1 and 1000, got 0"},
      {"max replicas float", "maxReplicas", 1.5, "spec.azure.maxReplicas",
       "must be an integer, got a number"},
      {"endpoint", "endpoint", "ftp://x", "spec.azure.endpoint",
       "invalid value 'ftp://x': must be an http:// or https:// URL"},
      {"endpoint plain http", "endpoint", "http://example.com", "spec.azure.endpoint",
       "plain http:// is allowed only to loopback"},
      {"auth endpoint", "authEndpoint", "login", "spec.azure.authEndpoint",
       "must be an http:// or https:// URL"},
      {"unknown", "regoin", "x", "spec.azure.regoin", "unknown field 'regoin'"},
      {"unknown with suggestion", "locaton", "x", "spec.azure.locaton",
       "unknown field 'locaton' (did you mean 'location'?)"},
  };
  for (const Row& row : rows) {
    SUBCASE(row.name) {
      json block = good;
      block[row.key] = row.value;
      auto diags = TargetDiags(block);
      REQUIRE_MESSAGE(diags.size() == 1, json(row.key).dump());
      CHECK(diags[0].field == row.field);
      CHECK_MESSAGE(Contains(diags[0].message, row.message), diags[0].message);
      CHECK(diags[0].severity == Severity::kError);
    }
  }
  SUBCASE("required fields") {
    auto diags = TargetDiags(json::object());
    REQUIRE(diags.size() == 4);
    for (const char* f : {"subscriptionId", "resourceGroup", "environmentName", "location"}) {
      CHECK(Find(diags, std::string("spec.azure.") + f) == "required field is missing");
    }
  }
  SUBCASE("not a map") {
    auto diags = TargetDiags(json::array());
    REQUIRE(diags.size() == 1);
    CHECK(diags[0].field == "spec.azure");
    CHECK(diags[0].message == "must be a map, got a list");
  }
  SUBCASE("minReplicas above maxReplicas") {
    json block = good;
    block["minReplicas"] = 5;
    CHECK(Contains(Find(TargetDiags(block), "spec.azure.minReplicas"), "maxReplicas (3)"));
  }
  SUBCASE("the schema is schemas/target.schema.json's azure block") {
    auto text = SchemaFor("Target");
    REQUIRE(text);
    json schema = json::parse(*text);
    CHECK(TargetSchema() == schema["properties"]["spec"]["properties"]["azure"]);
  }
}

TEST_CASE("azure provider: validate_agent refuses what Container Apps cannot honour") {
  CHECK(AgentDiags(HelloAgent()).empty());

  Agent a = HelloAgent();
  a.host_port = 8080;
  a.ports = {PortMapping{9000, "udp", "", 0, true}, PortMapping{7000, "tcp", "10.0.0.1", 0, true}};
  a.networks = {NetworkAttachment{"backend", {}}};
  auto volume = [](VolumeMount::Type type, const char* source, const char* target) {
    VolumeMount v;
    v.type = type;
    v.source = source;
    v.target = target;
    return v;
  };
  VolumeMount tmp = volume(VolumeMount::Type::kTmpfs, "", "/tmp");
  tmp.read_only = true;
  tmp.size = "64Mi";
  a.volumes = {volume(VolumeMount::Type::kVolume, "data", "/data"),
               volume(VolumeMount::Type::kBind, "/srv", "/srv"), tmp};
  std::sort(a.volumes.begin(), a.volumes.end(),
            [](const auto& x, const auto& y) { return x.target < y.target; });
  a.secret_files = {
      {"tls", SecretFile{SecretRef{SecretRef::Source::kFile, "tls"}, "/etc/tls/key", 0444}}};
  a.restart = "on-failure:3";
  a.strategy.auto_rollback = false;
  a.health_check->kind = HealthCheck::Kind::kExec;
  a.health_check->exec = {"true"};
  a.health_check->interval_ms = 500;
  a.health_check->timeout_ms = 300000;
  a.health_check->retries = 11;
  a.health_check->start_period_ms = 120000;
  a.stop_signal = "SIGINT";
  a.user = "1000";
  a.cap_add = {"NET_ADMIN"};
  a.cap_drop = {"ALL"};
  a.read_only_root_filesystem = true;
  a.hostname = "h";
  a.resources.gpus = "1";
  a.container_labels = {{"app.kubernetes.io/name", "x"}};
  auto diags = AgentDiags(a);
  const std::string is = "Target 'prod' is Azure Container Apps, ";
  struct Row {
    const char* field;
    const char* text;
  };
  for (const Row& row : std::vector<Row>{
           {"spec.hostPort",
            "which has no host ports: the main port is served by the app's ingress"},
           {"spec.ports[0].hostIP", "which has no host address to bind; remove hostIP"},
           {"spec.ports[1].protocol", "whose ingress carries no UDP"},
           {"spec.networks", "whose only network is the app's environment"},
           {"spec.volumes[0]", "which cannot create a volume that reconcile owns"},
           {"spec.volumes[1]", "which has no host to bind-mount from"},
           {"spec.volumes[2].size", "whose EmptyDir volumes have no size limit"},
           {"spec.volumes[2].readOnly", "whose volume mounts have no read-only flag"},
           {"spec.secretFiles.tls.mode", "whose secret volumes have no file mode"},
           {"spec.restart", "which has no restart policy (template has none)"},
           {"spec.strategy.autoRollback",
            "which cannot send traffic to a version that is not healthy"},
           {"spec.healthCheck.exec", "whose probes are httpGet or tcpSocket only"},
           {"spec.healthCheck.interval", "whose health checks count whole seconds; 500ms is not"},
           {"spec.healthCheck.timeout", "whose probe timeoutSeconds is 1 to 240 seconds"},
           {"spec.healthCheck.retries",
            "which gives up after at most 10 failed checks (failureThreshold 1 to 10); 11 is more"},
           {"spec.healthCheck.startPeriod", "whose probe initialDelaySeconds is 1 to 60 seconds"},
           {"spec.stopSignal", "which cannot choose the signal that stops a container"},
           {"spec.user", "which cannot choose the user a container runs as"},
           {"spec.capAdd", "which cannot add Linux capabilities"},
           {"spec.capDrop", "which cannot drop Linux capabilities"},
           {"spec.readOnlyRootFilesystem", "which cannot mount the root filesystem read-only"},
           {"spec.hostname", "which cannot set a container's host name"},
           {"spec.resources.gpus", "whose containers have no GPU request"},
           {"spec.labels.app.kubernetes.io/name", "whose tags (ContainerApp.tags)"},
       }) {
    SUBCASE(row.field) {
      std::string m = Find(diags, row.field);
      const std::string shown = std::string(row.field) + ": " + m;
      CHECK_MESSAGE(Contains(m, is + row.text), shown);
    }
  }

  SUBCASE("replicas against the Target's autoscaling") {
    Agent b = HelloAgent();
    b.replicas = 3;
    CHECK(AgentDiags(b).empty());
    auto d = AgentDiags(b, {{"minReplicas", 1}});
    CHECK(Contains(Find(d, "spec.replicas"), "sets azure.minReplicas/maxReplicas (autoscaling)"));
  }
  SUBCASE("app names") {
    Agent b = HelloAgent();
    b.name = "a-very-long-agent-name-that-azure-refuses";
    CHECK(Contains(Find(AgentDiags(b), "metadata.name"), "2 to 32 characters"));
  }
  SUBCASE("the typed model is read when the spec is not given") {
    ValidateAgentRequest req;
    req.agent = a.name;
    req.target = "prod";
    req.model = &a;
    CHECK(Contains(Find(ValidateAgent(req).diagnostics, "spec.user"), "set USER in the image"));
  }
}

TEST_CASE("azure provider: an image changed outside reconcile is observed as modified") {
  json app = {
      {"id", "/subscriptions/s/resourceGroups/r/providers/Microsoft.App/containerApps/a"},
      {"name", "a"},
      {"tags",
       {{"Reconcile.dev-Managed-By", "reconcile"},
        {kTagAgent, "a"},
        {kTagSpecHash, "sha256:abc"},
        {kTagImage, "img:1"}}},
      {"properties",
       {{"provisioningState", "Succeeded"},
        {"runningStatus", "Running"},
        {"template", {{"containers", json::array({{{"name", "a"}, {"image", "img:1"}}})}}}}}};
  CHECK(IsOwned(app));  // tag names are case-insensitive
  CHECK(ObservedFromApp(app).spec_hash == "sha256:abc");
  CHECK(ObservedFromApp(app).running);
  app["properties"]["template"]["containers"][0]["image"] = "img:2";
  CHECK(ObservedFromApp(app).spec_hash == kImageChanged);
  app["properties"]["runningStatus"] = "Stopped";
  CHECK_FALSE(ObservedFromApp(app).running);
  CHECK(ObservedFromApp(app).state == "stopped");
}

TEST_CASE("azure provider: PlanChange updates in place as a new revision, target replaces") {
  PlanChangeRequest req;
  req.agent = "hello";
  req.changed = {"env.GREETING", "healthCheck.path", "image",
                 "replicas",     "resources.cpu",    "target"};
  auto r = PlanChange(req);
  CHECK(r.requires_replace == std::set<std::string>{"target"});
  CHECK(r.diagnostics.empty());
  req.changed = {"volumes./tmp.type"};
  r = PlanChange(req);
  CHECK(r.requires_replace.empty());
  REQUIRE(r.diagnostics.size() == 1);
  CHECK(r.diagnostics[0].severity == Severity::kWarning);
  CHECK(Contains(r.diagnostics[0].message, "EmptyDir volume, not guaranteed to be memory"));
}

TEST_CASE("azure provider: a whole lifecycle against the fake ARM server") {
  FakeArm fake;
  auto provider = MakeProvider(Block(fake.base()), ServicePrincipal());
  Provider& p = *provider;
  std::string seen;  // everything the provider said

  ProviderSchema schema = p.Schema();
  CHECK_FALSE(schema.instance_per_replica);
  CHECK(schema.updatable_fields.count("env"));
  CHECK(schema.target_schema == TargetSchema());

  ObserveResponse empty = p.Observe({});
  REQUIRE_MESSAGE(empty.status.ok(), empty.status.message());
  CHECK(empty.instances.empty());

  // An app that reconcile does not own, in the same environment.
  json foreign = {
      {"location", "westeurope"},
      {"tags", {{"owner", "someone-else"}}},
      {"properties",
       {{"managedEnvironmentId", std::string("/subscriptions/") + kSubscription +
                                     "/resourceGroups/rg-test/providers/"
                                     "Microsoft.App/managedEnvironments/env-test"},
        {"template", {{"containers", json::array({{{"name", "web"}, {"image", "nginx:1"}}})}}}}}};
  http::Response put = fake.Raw("PUT", AppPath("not-ours"), &foreign, true);
  REQUIRE_MESSAGE(put.status == 201, put.body);

  Agent agent = HelloAgent();
  Outcome created = Apply(p, Action::kCreate, agent, "rev-1");
  REQUIRE_MESSAGE(created.response.status.ok(), created.response.status.message());
  CHECK(created.response.health == "healthy");
  REQUIRE(created.response.instances.size() == 1);
  CHECK(created.response.instances[0].name == "hello");
  CHECK(Contains(created.response.instances[0].endpoint, "https://hello."));
  CHECK(created.waiting_calls >= 2);
  CHECK(created.waiting_balanced);
  CHECK_FALSE(created.progress.empty());
  seen += created.AllText();

  ObserveResponse observed = p.Observe({});
  REQUIRE(observed.status.ok());
  REQUIRE(observed.instances.size() == 1);  // not-ours is ignored
  const ObservedInstance& o = observed.instances[0];
  CHECK(o.name == "hello");
  CHECK(o.agent == "hello");
  CHECK(o.spec_hash == SpecHash(NormalizedSpec(agent, agent.image)));
  CHECK(o.revision == "rev-1");
  CHECK(o.image == agent.image);
  CHECK(o.running);
  CHECK(o.state == "running");
  CHECK(o.health == "healthy");
  CHECK(Contains(o.id, "/containerApps/hello"));
  CHECK(o.endpoint == created.response.instances[0].endpoint);
  seen += ObservedText(observed);

  // What the fake holds: the mapping of docs/cloud-fields.md.
  json state = fake.State();
  std::string key;
  for (const auto& [k, v] : state.items()) {
    if (Contains(k, "/containerapps/hello")) key = k;
  }
  REQUIRE(!key.empty());
  json app = state[key];
  CHECK(app["tags"][kTagManagedBy] == "reconcile");
  CHECK(app["tags"]["team"] == "cx");
  CHECK(app["properties"]["configuration"]["ingress"]["targetPort"] == 8080);
  CHECK(app["properties"]["configuration"]["ingress"]["external"] == true);
  CHECK(app["properties"]["configuration"]["activeRevisionsMode"] == "Multiple");
  json container = app["properties"]["template"]["containers"][0];
  CHECK(container["probes"][0]["type"] == "Startup");
  CHECK(container["probes"][0]["httpGet"]["path"] == "/health");
  CHECK(app["properties"]["template"]["scale"]["minReplicas"] == 1);
  CHECK(app["properties"]["template"]["scale"]["maxReplicas"] == 1);
  bool secret_ref = false;
  for (const json& e : container["env"]) {
    if (e["name"] == "API_KEY") secret_ref = e["secretRef"] == SecretNameForEnv("API_KEY");
  }
  CHECK(secret_ref);
  const std::string first_revision = app["properties"]["latestReadyRevisionName"];

  // Create again (a retry): it converges as an update, nothing new to do.
  const int unchanged = fake.Count("ContainerApps_CreateOrUpdate", 200);
  Outcome again = Apply(p, Action::kCreate, agent, "rev-1");
  CHECK_MESSAGE(again.response.status.ok(), again.response.status.message());
  CHECK(fake.Count("ContainerApps_CreateOrUpdate", 200) == unchanged + 1);
  CHECK(fake.State()[key]["properties"]["latestRevisionName"] == first_revision);
  seen += again.AllText();

  // In place: a new revision, served once ready.
  Agent changed = agent;
  changed.env["GREETING"] = "hello again";
  PlanChangeRequest ask;
  ask.agent = "hello";
  ask.prior = NormalizedSpec(agent, agent.image);
  ask.desired = NormalizedSpec(changed, changed.image);
  ask.changed = {"env.GREETING"};
  CHECK(p.PlanChange(ask).requires_replace.empty());
  Outcome updated = Apply(p, Action::kUpdate, changed, "rev-2");
  REQUIRE_MESSAGE(updated.response.status.ok(), updated.response.status.message());
  CHECK(updated.response.health == "healthy");
  CHECK(updated.waiting_balanced);
  seen += updated.AllText();
  app = fake.State()[key];
  const std::string second_revision = app["properties"]["latestReadyRevisionName"];
  CHECK(second_revision != first_revision);
  CHECK(app["properties"]["latestRevisionName"] == second_revision);
  CHECK(app["properties"]["configuration"]["ingress"]["traffic"] ==
        json::array({{{"latestRevision", true}, {"weight", 100}}}));
  CHECK(app["properties"]["template"]["containers"][0]["env"][0] ==
        json({{"name", "GREETING"}, {"value", "hello again"}}));
  CHECK(app["tags"][kTagRevision] == "rev-2");
  // The first PUT of the update kept the traffic on the revision that served.
  bool pinned = false;
  for (json e : fake.Log()) {  // a copy: operator[] may add what is missing
    if (e["operation"] == "ContainerApps_CreateOrUpdate" && e["body"].is_object()) {
      json traffic = e["body"]["properties"]["configuration"]["ingress"]["traffic"];
      if (traffic.is_array() && !traffic.empty() && traffic[0].is_object() &&
          traffic[0].value("revisionName", "") == first_revision) {
        pinned = true;
      }
    }
  }
  CHECK(pinned);
  observed = p.Observe({});
  REQUIRE(observed.instances.size() == 1);
  CHECK(observed.instances[0].revision == "rev-2");
  seen += ObservedText(observed);

  // A field that forces a replacement: delete, then create again.
  ask.changed = {"env.GREETING", "target"};
  CHECK(p.PlanChange(ask).requires_replace == std::set<std::string>{"target"});
  const int deletes = fake.Count("ContainerApps_Delete");
  Outcome replaced = Apply(p, Action::kReplace, changed, "rev-3");
  REQUIRE_MESSAGE(replaced.response.status.ok(), replaced.response.status.message());
  CHECK(fake.Count("ContainerApps_Delete") == deletes + 1);
  CHECK(fake.State()[key]["tags"][kTagRevision] == "rev-3");
  seen += replaced.AllText();

  // Delete, and delete again (idempotent).
  Outcome deleted = Apply(p, Action::kDelete, changed, "rev-3");
  REQUIRE_MESSAGE(deleted.response.status.ok(), deleted.response.status.message());
  CHECK(deleted.response.instances.empty());
  CHECK_FALSE(fake.State().contains(key));
  Outcome deleted_again = Apply(p, Action::kDelete, changed, "rev-3");
  CHECK_MESSAGE(deleted_again.response.status.ok(), deleted_again.response.status.message());
  seen += deleted.AllText() + deleted_again.AllText();

  observed = p.Observe({});
  CHECK(observed.status.ok());
  CHECK(observed.instances.empty());
  CHECK(fake.State().size() == 1);  // not-ours is untouched

  CheckNoCanary(seen);
  fake.CheckNoProblems();
}

TEST_CASE(
    "azure provider: secret files, tmpfs, ports, resources and pull credentials pass the model") {
  FakeArm fake;
  json block = Block(fake.base());
  block["cpu"] = "500m";
  block["memory"] = "1Gi";
  auto p = MakeProvider(block, ServicePrincipal());
  Agent a = HelloAgent();
  a.image = "myregistry.azurecr.io/team/hello:1";
  a.secret_files = {
      {"tls", SecretFile{SecretRef{SecretRef::Source::kFile, "tls"}, "/etc/tls/key.pem", 0400}},
      {"ca", SecretFile{SecretRef{SecretRef::Source::kFile, "ca"}, "/etc/tls/ca.pem", 0400}}};
  VolumeMount tmp;
  tmp.type = VolumeMount::Type::kTmpfs;
  tmp.target = "/scratch";
  a.volumes = {tmp};
  a.ports = {PortMapping{9090, "tcp", "", 19090, false}};
  a.stop_grace_period_ms = 15000;
  a.replicas = 3;
  a.health_check->kind = HealthCheck::Kind::kTcp;
  a.health_check->port = 8080;
  a.health_check->interval_ms = 5000;
  a.health_check->retries = 5;

  ApplyChangeRequest req;
  req.target = AzureTarget(block);
  req.change.address = "agent.hello";
  req.change.name = "hello";
  req.change.action = Action::kCreate;
  json spec = NormalizedSpec(a, a.image);
  req.change.desired_hash = SpecHash(spec);
  req.change.desired = spec;
  req.revision = "rev-1";
  req.secret_values = {{"API_KEY", kSecretEnvCanary},
                       {SecretFileValueKey("tls"), std::string(kSecretEnvCanary) + "-tls"},
                       {SecretFileValueKey("ca"), std::string(kSecretEnvCanary) + "-ca"}};
  req.pull_credentials =
      RegistryCredentials{"myregistry.azurecr.io", "puller", std::string(kSecretEnvCanary) + "-pw",
                          "REG_USERNAME and REG_PASSWORD"};
  std::vector<std::string> progress;
  req.progress = [&](const std::string& line) { progress.push_back(line); };
  ApplyChangeResponse r = p->ApplyChange(req);
  REQUIRE_MESSAGE(r.status.ok(), r.status.message());

  json app;
  json state = fake.State();
  REQUIRE(state.size() == 1);
  for (const auto& [k, v] : state.items()) app = v;
  json props = app["properties"];
  json c = props["template"]["containers"][0];
  CHECK(c["resources"]["cpu"] == 0.5);
  CHECK(c["resources"]["memory"] == "1Gi");
  CHECK(c["probes"][0]["tcpSocket"]["port"] == 8080);
  CHECK(c["probes"][0]["periodSeconds"] == 5);
  CHECK(c["probes"][0]["failureThreshold"] == 5);
  CHECK_FALSE(c["probes"][0].contains("timeoutSeconds"));  // Azure's default applies
  CHECK(props["template"]["terminationGracePeriodSeconds"] == 15);
  CHECK(props["template"]["scale"] == json({{"minReplicas", 3}, {"maxReplicas", 3}}));
  CHECK(props["configuration"]["ingress"]["additionalPortMappings"] ==
        json::array({{{"targetPort", 9090}, {"external", false}, {"exposedPort", 19090}}}));
  CHECK(props["configuration"]["registries"][0]["server"] == "myregistry.azurecr.io");
  CHECK(props["configuration"]["registries"][0]["username"] == "puller");
  // One Secret volume for /etc/tls holding both files, and an EmptyDir.
  int secret_volumes = 0, empty_dirs = 0;
  for (const json& v : props["template"]["volumes"]) {
    if (v["storageType"] == "Secret") {
      ++secret_volumes;
      CHECK(v["secrets"].size() == 2);
    }
    if (v["storageType"] == "EmptyDir") ++empty_dirs;
  }
  CHECK(secret_volumes == 1);
  CHECK(empty_dirs == 1);
  std::set<std::string> mounts;
  for (const json& m : c["volumeMounts"]) mounts.insert(m["mountPath"].get<std::string>());
  CHECK(mounts == std::set<std::string>{"/etc/tls", "/scratch"});
  // GET never shows values; listSecrets does, and they are the ones given.
  std::string path = AppPath("hello");
  path.insert(path.find('?'), "/listSecrets");
  http::Response listed = fake.Raw("POST", path, nullptr, true);
  REQUIRE(listed.status == 200);
  CHECK(Contains(listed.body, std::string(kSecretEnvCanary) + "-tls"));
  CHECK(Contains(listed.body, std::string(kSecretEnvCanary) + "-pw"));

  std::string text = r.status.message() + r.health;
  for (const auto& line : progress) text += line;
  for (const auto& i : r.instances) text += i.id + i.name + i.endpoint;
  text += ObservedText(p->Observe({}));
  text += app.dump();
  CheckNoCanary(text);
  fake.CheckNoProblems();
}

// Issue #12 item 3: every ARM request of a traced change (the PUT, the
// DELETE, the polls of their operations) carries its traceparent exactly;
// an untraced change's and an Observe's carry none. (The token request is
// the token source's, shared by all changes: not traced.)
TEST_CASE("azure provider: traceparent on every ARM request of a change") {
  FakeArm fake;
  auto provider = MakeProvider(Block(fake.base()), ServicePrincipal());
  Provider& p = *provider;
  const std::string tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  std::size_t from = 0;
  auto check_since = [&fake, &from](const std::string& want) {
    json log = fake.Log();
    int api = 0;
    for (std::size_t i = from; i < log.size(); ++i) {
      const json& e = log[i];
      if (e["kind"] == "auth") continue;  // the token source's, not the change's
      ++api;
      INFO(e.dump());
      if (want.empty()) {
        CHECK_FALSE(e["headers"].contains("traceparent"));
      } else {
        CHECK(e["headers"].value("traceparent", "") == want);
      }
    }
    CHECK(api >= 2);
    from = log.size();
  };
  Agent agent = HelloAgent();
  for (Action action : {Action::kCreate, Action::kUpdate, Action::kDelete}) {
    CAPTURE(static_cast<int>(action));
    Outcome o = Apply(p, action, agent, "rev-1", {}, tp);
    REQUIRE_MESSAGE(o.response.status.ok(), o.response.status.message());
    check_since(tp);
  }
  CHECK(fake.Count("ContainerApps_Delete") == 1);
  Outcome untraced = Apply(p, Action::kCreate, agent, "rev-2");
  REQUIRE_MESSAGE(untraced.response.status.ok(), untraced.response.status.message());
  check_since("");
  REQUIRE(p.Observe({}).status.ok());
  json log = fake.Log();
  CHECK(log.size() > from);
  for (std::size_t i = from; i < log.size(); ++i) {
    CHECK_FALSE(log[i]["headers"].contains("traceparent"));
  }
  fake.CheckNoProblems();
}

TEST_CASE("azure provider: apps reconcile does not own are never changed or deleted") {
  FakeArm fake;
  auto p = MakeProvider(Block(fake.base()), ServicePrincipal());
  json foreign = {{"location", "westeurope"},
                  {"properties",
                   {{"managedEnvironmentId", std::string("/subscriptions/") + kSubscription +
                                                 "/resourceGroups/rg-test/providers/"
                                                 "Microsoft.App/managedEnvironments/env-test"}}}};
  REQUIRE(fake.Raw("PUT", AppPath("hello"), &foreign, true).status == 201);
  Outcome create = Apply(*p, Action::kCreate, HelloAgent(), "rev-1");
  CHECK(create.response.status.code() == Code::kConflict);
  CHECK(Contains(create.response.status.message(), "is not managed by reconcile"));
  Outcome del = Apply(*p, Action::kDelete, HelloAgent(), "rev-1");
  CHECK(del.response.status.code() == Code::kConflict);
  CHECK(fake.Count("ContainerApps_Delete") == 0);
  CHECK(fake.Count("ContainerApps_CreateOrUpdate") == 1);  // the test's own
  fake.CheckNoProblems();
}

TEST_CASE("azure provider: a 4xx carries the cloud's message and is permanent") {
  FakeArm fake;
  auto p = MakeProvider(Block(fake.base()), ServicePrincipal());
  REQUIRE(Apply(*p, Action::kCreate, HelloAgent(), "rev-1").response.status.ok());

  SUBCASE("a location that cannot change") {
    json moved = Block(fake.base());
    moved["location"] = "northeurope";
    auto other = MakeProvider(moved, ServicePrincipal());
    Agent changed = HelloAgent();
    changed.env["GREETING"] = "elsewhere";
    const int puts = fake.Count("ContainerApps_CreateOrUpdate");
    Outcome r = Apply(*other, Action::kUpdate, changed, "rev-2");
    CHECK(r.response.status.code() == Code::kFailed);
    CHECK_MESSAGE(Contains(r.response.status.message(),
                           "400 LocationNotAvailableForResourceType: The location of an existing "
                           "app cannot change"),
                  r.response.status.message());
    CHECK(fake.Count("ContainerApps_CreateOrUpdate") == puts + 1);  // not retried
    CheckNoCanary(r.AllText());
  }
  SUBCASE("an operation that fails") {
    fake.Control("POST", "fail-next", {{"message", "Revision provisioning failed: image pull"}});
    Agent changed = HelloAgent();
    changed.image = "mcr.microsoft.com/k8se/quickstart:missing";
    Outcome r = Apply(*p, Action::kUpdate, changed, "rev-2");
    CHECK(r.response.status.code() == Code::kFailed);
    CHECK_MESSAGE(Contains(r.response.status.message(), "Revision provisioning failed: image pull"),
                  r.response.status.message());
    CHECK(r.response.health == "unhealthy");
    CheckNoCanary(r.AllText());
  }
  fake.CheckNoProblems();
}

TEST_CASE("azure provider: throttling and server errors are retried") {
  FakeArm fake;
  auto p = MakeProvider(Block(fake.base()), ServicePrincipal());
  fake.Control("POST", "inject", {{"kind", "throttle"}, {"count", 2}, {"retryAfter", "0"}});
  fake.Control("POST", "inject",
               {{"kind", "error"},
                {"count", 1},
                {"retryAfter", "0"},
                {"operation", "ContainerApps_CreateOrUpdate"}});
  fake.Control("POST", "inject",
               {{"kind", "throttle"}, {"count", 1}, {"scope", "auth"}, {"retryAfter", "0"}});
  Outcome r = Apply(*p, Action::kCreate, HelloAgent(), "rev-1");
  REQUIRE_MESSAGE(r.response.status.ok(), r.response.status.message());
  int throttled = 0, errors = 0;
  for (const json& e : fake.Log()) {
    if (e["status"] == 429) ++throttled;
    if (e["status"] == 500) ++errors;
  }
  CHECK(throttled == 3);
  CHECK(errors == 1);
  CHECK(fake.Count("ContainerApps_CreateOrUpdate", 201) == 1);
  fake.CheckNoProblems();
}

TEST_CASE("azure provider: stop during a wait returns kCancelled promptly") {
  FakeArm fake;
  auto provider = MakeProvider(Block(fake.base()), ServicePrincipal());
  fake.Control("POST", "config", {{"readyAfter", 100000}});

  SUBCASE("the request's stop token") {
    std::stop_source stop;
    std::thread stopper([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      stop.request_stop();
    });
    auto start = std::chrono::steady_clock::now();
    Outcome r = Apply(*provider, Action::kCreate, HelloAgent(), "rev-1", stop.get_token());
    auto took = std::chrono::steady_clock::now() - start;
    stopper.join();
    CHECK(r.response.status.code() == Code::kCancelled);
    CHECK(took < std::chrono::seconds(3));
    CHECK(r.waiting_balanced);
    CheckNoCanary(r.AllText());
  }
  SUBCASE("Provider::Stop") {
    std::thread stopper([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      provider->Stop();
    });
    auto start = std::chrono::steady_clock::now();
    Outcome r = Apply(*provider, Action::kCreate, HelloAgent(), "rev-1");
    auto took = std::chrono::steady_clock::now() - start;
    stopper.join();
    CHECK(r.response.status.code() == Code::kCancelled);
    CHECK(took < std::chrono::seconds(3));
    // Later calls end at once too.
    CHECK(provider->Observe({}).status.code() == Code::kCancelled);
  }
  fake.CheckNoProblems();
}

TEST_CASE("azure provider: credentials") {
  FakeArm fake;
  SUBCASE("none: one message naming what to set") {
    json block = Block(fake.base());
    block["authEndpoint"] = "http://127.0.0.1:" + std::to_string(ClosedPort());
    auto p = MakeProvider(block, EnvOf({}));
    ObserveResponse r = p->Observe({});
    CHECK(r.status.code() == Code::kInvalid);
    CHECK_MESSAGE(Contains(r.status.message(),
                           "no Azure credentials: set AZURE_TENANT_ID, AZURE_CLIENT_ID and "
                           "AZURE_CLIENT_SECRET"),
                  r.status.message());
    CHECK(Contains(r.status.message(), "IDENTITY_ENDPOINT and IDENTITY_HEADER"));
  }
  SUBCASE("incomplete") {
    auto p = MakeProvider(Block(fake.base()), EnvOf({{"AZURE_TENANT_ID", kTenant}}));
    ObserveResponse r = p->Observe({});
    CHECK(r.status.code() == Code::kInvalid);
    CHECK(Contains(r.status.message(), "AZURE_CLIENT_ID and AZURE_CLIENT_SECRET"));
  }
  SUBCASE("a wrong secret: Entra's message, never the secret") {
    auto p =
        MakeProvider(Block(fake.base()),
                     EnvOf({{"AZURE_TENANT_ID", kTenant},
                            {"AZURE_CLIENT_ID", kClientId},
                            {"AZURE_CLIENT_SECRET", std::string(kClientSecretCanary) + "-wrong"}}));
    ObserveResponse r = p->Observe({});
    CHECK(r.status.code() == Code::kInvalid);
    CHECK(Contains(r.status.message(), "AADSTS7000215"));
    CheckNoCanary(r.status.message());
  }
  SUBCASE("a managed identity at azure.authEndpoint (the instance metadata service)") {
    auto p = MakeProvider(Block(fake.base()), EnvOf({}));
    ObserveResponse r = p->Observe({});
    CHECK_MESSAGE(r.status.ok(), r.status.message());
    CHECK(fake.Count("ImdsToken") == 1);
  }
  fake.CheckNoProblems();
}

TEST_CASE("azure provider: hostile answers give clear errors, never a crash") {
  FakeArm fake;  // for the token (a managed identity at azure.authEndpoint)
  std::string answer;
  std::mutex mu;
  reconcile::testing::LoopbackHttpServer arm([&](const reconcile::testing::SeenRequest&) {
    std::lock_guard<std::mutex> lock(mu);
    return std::optional<std::string>(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        "Content-Length: " +
        std::to_string(answer.size()) + "\r\nConnection: close\r\n\r\n" + answer);
  });
  json block = Block(arm.base());
  block["authEndpoint"] = fake.base();
  auto p = MakeProvider(block, EnvOf({}));
  auto observe = [&](const std::string& body) {
    {
      std::lock_guard<std::mutex> lock(mu);
      answer = body;
    }
    return p->Observe({});
  };
  ObserveResponse r = observe("{{{ not json");
  CHECK(r.status.code() == Code::kFailed);
  CHECK(Contains(r.status.message(), "not a list of container apps"));
  r = observe(R"({"value": 5})");
  CHECK(r.status.code() == Code::kFailed);
  // Entries of every wrong shape are skipped; only a well-tagged app is kept.
  r = observe(
      R"({"value": [1, "x", null, {"tags": 5}, {"tags": {"reconcile.dev-managed-by": "reconcile"}},
      {"name": "a", "tags": {"reconcile.dev-managed-by": "reconcile", "reconcile.dev-agent": "a"},
       "properties": {"managedEnvironmentId": "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-test/providers/Microsoft.App/managedEnvironments/env-test",
                      "template": {"containers": "nope"}, "configuration": {"ingress": []}}},
      {"name": "b", "tags": {"reconcile.dev-managed-by": "reconcile", "reconcile.dev-agent": "b"},
       "properties": {"managedEnvironmentId": "/elsewhere"}}]})");
  REQUIRE_MESSAGE(r.status.ok(), r.status.message());
  REQUIRE(r.instances.size() == 1);
  CHECK(r.instances[0].name == "a");
  CHECK(r.instances[0].image.empty());
  CHECK(r.instances[0].endpoint.empty());
  r = observe(R"({"value": [], "nextLink": "https://evil.example.com/steal"})");
  CHECK(r.status.code() == Code::kFailed);
  CHECK(Contains(r.status.message(), "another host"));
  fake.CheckNoProblems();
}

// Issue #11 item 2: an environment's app is "<environment>-<agent>" (Container
// App names cannot hold "--"), tagged reconcile.dev-environment; each Target
// observes and deletes only its environment's apps.
TEST_CASE("azure provider: environments are scoped, tagged and filtered") {
  FakeArm fake;
  Target dev_t = AzureTarget(Block(fake.base()));
  dev_t.environment = "dev";
  auto made = NewContainerAppsProvider(dev_t, FastOptions(ServicePrincipal()));
  REQUIRE_MESSAGE(made.ok(), made.status().message());
  std::unique_ptr<Provider> dev = std::move(*made);
  auto plain = MakeProvider(Block(fake.base()), ServicePrincipal());
  CHECK(AppName("", "hello") == "hello");
  CHECK(AppName("dev", "hello") == "dev-hello");

  Outcome d = Apply(*dev, Action::kCreate, HelloAgent(), "rev-1");
  REQUIRE_MESSAGE(d.response.status.ok(), d.response.status.message());
  REQUIRE(d.response.instances.size() == 1);
  CHECK(d.response.instances[0].name == "dev-hello");
  json app;
  json state = fake.State();
  for (const auto& [k, v] : state.items()) {
    if (Contains(k, "/containerapps/dev-hello")) app = v;
  }
  REQUIRE(app.is_object());
  CHECK(app["tags"][kTagEnvironment] == "dev");
  CHECK(app["tags"][kTagAgent] == "hello");

  CHECK(plain->Observe({}).instances.empty());
  Outcome p = Apply(*plain, Action::kCreate, HelloAgent(), "rev-1");
  REQUIRE_MESSAGE(p.response.status.ok(), p.response.status.message());
  ObserveResponse o = dev->Observe({});
  REQUIRE(o.instances.size() == 1);
  CHECK(o.instances[0].name == "dev-hello");
  CHECK(o.instances[0].agent == "hello");

  // A plain-tree agent "dev-hello" meets dev's app: a conflict, untouched.
  Agent clash = HelloAgent();
  clash.name = "dev-hello";
  Outcome refused = Apply(*plain, Action::kCreate, clash, "rev-1");
  CHECK(refused.response.status.code() == Code::kConflict);

  Outcome gone = Apply(*dev, Action::kDelete, HelloAgent(), "rev-1");
  REQUIRE_MESSAGE(gone.response.status.ok(), gone.response.status.message());
  CHECK(dev->Observe({}).instances.empty());
  REQUIRE(plain->Observe({}).instances.size() == 1);
  CHECK(plain->Observe({}).instances[0].name == "hello");

  // validate_agent counts the app name against Container Apps' 32.
  ValidateAgentRequest v;
  v.agent = std::string(30, 'a');
  v.target = "azure-test";
  v.target_config = Block(fake.base());
  v.spec = NormalizedSpec(HelloAgent(), HelloAgent().image);
  auto name_diags = [&] {
    std::vector<ProviderDiagnostic> out;
    for (const auto& diag : ValidateAgent(v).diagnostics) {
      if (diag.field == "metadata.name") out.push_back(diag);
    }
    return out;
  };
  CHECK(name_diags().empty());
  v.environment = "dev";  // "dev-" + 30 = 34 > 32
  REQUIRE(name_diags().size() == 1);
  CHECK(Contains(name_diags()[0].message, "environment 'dev'"));
  fake.CheckNoProblems();
}

}  // namespace
}  // namespace reconcile::azure
