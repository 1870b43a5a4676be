// The Cloud Run provider (providers/gcp/) through the Provider interface,
// against tests/fakes/clouds/cloudrun_fake.py started as a child process
// (python3, loopback, ephemeral port): validation of spec.gcp and of the
// Agent fields Cloud Run refuses, the lifecycle (observe, create, update in
// place, replace, drift, delete twice), ownership (an un-owned Service is
// ignored and never touched), a 4xx that is permanent and carries the cloud's
// message, throttling retried, stop during a wait, missing credentials, and
// canary secrets. Every test ends by asserting that the fake's model check
// found no problem in any request.
#include "gcp/cloudrun_provider.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "fakes/temp_dir.h"
#include "gcp/cloudrun_service.h"
#include "gcp/cloudrun_validate.h"
#include "http/http_client.h"
#include "reconcile/spec.h"

namespace reconcile::gcp {
namespace {

using nlohmann::json;
using reconcile::testing::TempDir;
using namespace std::chrono_literals;

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

struct RsaKey {
  std::string private_pem;
  std::string public_pem;
  RsaKey() {
    EVP_PKEY* key = EVP_RSA_gen(2048);
    REQUIRE(key != nullptr);
    BIO* priv = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(priv, key, nullptr, nullptr, 0, nullptr, nullptr);
    BIO* pub = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(pub, key);
    char* data = nullptr;
    long n = BIO_get_mem_data(priv, &data);
    private_pem.assign(data, n);
    n = BIO_get_mem_data(pub, &data);
    public_pem.assign(data, n);
    BIO_free(priv);
    BIO_free(pub);
    EVP_PKEY_free(key);
  }
};

const RsaKey& TestKey() {
  static const RsaKey key;
  return key;
}

constexpr const char* kClientEmail = "deployer@demo-project.iam.gserviceaccount.com";
constexpr const char* kStaticToken = "static-test-token-for-the-fake-api";

// cloudrun_fake.py as a child process, stopped by its pid.
class Fake {
 public:
  explicit Fake(const std::vector<std::string>& extra = {}) {
    const std::string dir = tmp_.path().string();
    tmp_.Write("pub.pem", TestKey().public_pem);
    json key = {{"type", "service_account"},
                {"project_id", "demo-project"},
                {"private_key_id", "0123456789abcdef"},
                {"private_key", TestKey().private_pem},
                {"client_email", kClientEmail},
                {"token_uri", "https://oauth2.googleapis.com/token"}};
    tmp_.Write("key.json", key.dump());
    key_file_ = dir + "/key.json";
    log_file_ = dir + "/log.jsonl";
    const std::string port_file = dir + "/port";
    std::vector<std::string> args = {
        "python3",
        std::string(RECONCILE_SOURCE_DIR) + "/tests/fakes/clouds/cloudrun_fake.py",
        "--port-file",
        port_file,
        "--log",
        log_file_,
        "--gcp-public-key",
        dir + "/pub.pem",
        "--gcp-client-email",
        kClientEmail,
        "--gcp-token",
        kStaticToken,
        "--ready-after",
        "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execvp("python3", argv.data());
      ::_exit(127);
    }
    for (int i = 0; i < 200 && !std::filesystem::exists(port_file); ++i) {
      std::this_thread::sleep_for(50ms);
    }
    if (!std::filesystem::exists(port_file)) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
      FAIL("the fake did not start (python3 " RECONCILE_SOURCE_DIR
           "/tests/fakes/clouds/cloudrun_fake.py)");
    }
    std::ifstream in(port_file);
    int port = 0;
    in >> port;
    REQUIRE(port > 0);
    base_ = "http://127.0.0.1:" + std::to_string(port);
    http::ClientOptions o;
    o.max_attempts = 1;
    control_ = http::MakeCurlClient(o);
  }
  ~Fake() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
  }
  Fake(const Fake&) = delete;
  Fake& operator=(const Fake&) = delete;

  const std::string& base() const { return base_; }
  const std::string& key_file() const { return key_file_; }

  // A request to the fake (control API, or the Cloud Run API with the
  // static token): the parsed JSON answer and its status.
  std::pair<long, json> Send(const std::string& method, const std::string& path,
                             const json& body = nullptr) {
    http::Request req;
    req.method = method;
    req.url = base_ + path;
    req.headers = {{"Authorization", std::string("Bearer ") + kStaticToken}};
    if (!body.is_null()) {
      req.headers.emplace_back("Content-Type", "application/json");
      req.body = body.dump();
    }
    auto res = control_->Send(req);
    REQUIRE_MESSAGE(res.ok(), res.status().ToString());
    json j = res->body.empty() ? json() : json::parse(res->body, nullptr, false);
    return {res->status, j};
  }
  json Control(const std::string& method, const std::string& path,
               const json& body = json::object()) {
    auto [status, j] = Send(method, "/_fake/" + path, method == "GET" ? json() : body);
    REQUIRE(status == 200);
    return j;
  }
  json Log() { return Control("GET", "log"); }

  // Every test ends here: requests were made, and none had a model problem.
  void CheckNoProblems() {
    json log = Log();
    CHECK(log.is_array());
    int api = 0;
    for (const json& e : log) api += e["kind"] == "api";
    CHECK(api > 0);
    json problems = Control("GET", "problems");
    CHECK_MESSAGE(problems == json::array(), problems.dump(2));
  }

  std::string LogText() {
    std::ifstream in(log_file_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  TempDir tmp_{"reconcile-gcp"};
  pid_t pid_ = -1;
  std::string base_;
  std::string key_file_;
  std::string log_file_;
  std::unique_ptr<http::Client> control_;
};

Target CloudRunTarget(const std::string& base) {
  Target t;
  t.name = "cr";
  t.provider = "gcp";
  t.settings = {{"projectId", "demo-project"},
                {"region", "europe-west1"},
                {"endpoint", base},
                {"authEndpoint", base}};
  return t;
}

CloudRunOptions Options(const std::string& key_file) {
  CloudRunOptions o;
  http::ClientOptions c;
  c.base_backoff = 20ms;
  c.max_backoff = 100ms;
  c.max_retry_after = 100ms;
  o.client = http::MakeCurlClient(c);
  o.auth_client = http::MakeCurlClient(c);
  o.getenv = [key_file](const std::string& name) -> std::optional<std::string> {
    if (name == "GOOGLE_APPLICATION_CREDENTIALS" && !key_file.empty()) return key_file;
    return std::nullopt;
  };
  o.poll_interval = 20ms;
  o.operation_timeout = 20s;
  return o;
}

Agent HelloAgent() {
  Agent a;
  a.name = "hello";
  a.target = "cr";
  a.image = "us-docker.pkg.dev/cloudrun/container/hello:latest";
  a.port = 8080;
  a.env = {{"GREETING", "hi $(NAME)"}, {"LOG_LEVEL", "info"}};
  HealthCheck h;
  h.path = "/healthz";
  h.interval_ms = 5000;
  h.timeout_ms = 2000;
  h.retries = 5;
  a.health_check = h;
  a.labels = {{"team", "support"}};
  return a;
}

Change MakeChange(Action action, const json& spec) {
  Change c;
  c.address = "agent.hello";
  c.name = "hello";
  c.action = action;
  c.target = "cr";
  c.provider = "gcp";
  c.desired = spec;
  c.desired_hash = spec.is_null() ? "" : SpecHash(spec);
  return c;
}

// Everything a caller can see of one provider's answers, for canary checks.
struct Seen {
  std::mutex mu;
  std::string text;
  void Add(const std::string& s) {
    std::lock_guard lock(mu);
    text += s + "\n";
  }
  void Add(const ApplyChangeResponse& r) {
    Add(r.status.ToString());
    for (const auto& w : r.warnings) Add(w);
    for (const auto& i : r.instances) Add(i.id + " " + i.name + " " + i.endpoint);
    Add(r.health);
  }
  void Add(const ObserveResponse& r) {
    Add(r.status.ToString());
    for (const auto& w : r.warnings) Add(w);
    for (const auto& i : r.instances) {
      Add(i.id + " " + i.name + " " + i.agent + " " + i.spec_hash + " " + i.revision + " " +
          i.image + " " + i.state + " " + i.endpoint + " " + i.health);
    }
  }
};

ApplyChangeRequest MakeRequest(const Change& c, Seen* seen = nullptr) {
  ApplyChangeRequest req;
  req.target = CloudRunTarget("");
  req.change = c;
  req.revision = "0123456789abcdef0123456789abcdef01234567";
  if (seen) req.progress = [seen](const std::string& line) { seen->Add(line); };
  return req;
}

std::unique_ptr<Provider> MakeProvider(const Fake& fake, CloudRunOptions options) {
  auto p = NewCloudRunProvider(CloudRunTarget(fake.base()), std::move(options));
  REQUIRE_MESSAGE(p.ok(), p.status().ToString());
  return std::move(*p);
}

const std::string kParent = "/v2/projects/demo-project/locations/europe-west1";

// ---------------------------------------------------------------------------

TEST_CASE("gcp provider: validate_target, the good block and each bad field") {
  json good = {{"projectId", "demo-project"},
               {"region", "europe-west1"},
               {"cpu", "1"},
               {"memory", "512Mi"},
               {"concurrency", 80},
               {"minInstances", 0},
               {"maxInstances", 3},
               {"serviceAccount", "run@demo-project.iam.gserviceaccount.com"},
               {"endpoint", "https://run.googleapis.com"},
               {"authEndpoint", "http://127.0.0.1:9"}};
  ProviderDefinition def = CloudRunProviderDefinition();
  REQUIRE(def.validate_target);
  REQUIRE(def.validate_agent);
  REQUIRE(def.create);
  CHECK(def.validate_target({"cr", good}).diagnostics.empty());
  CHECK(def.validate_target({"cr",
                             {{"projectId", "demo-project"},
                              {"region", "us-central1"},
                              {"cpu", 2},
                              {"memory", 1073741824}}})
            .diagnostics.empty());

  struct Row {
    const char* field;
    json value;  // null: remove the field
    const char* path;
    const char* message;
  };
  const std::vector<Row> rows = {
      {"projectId", nullptr, "spec.gcp.projectId", "required field is missing"},
      {"region", nullptr, "spec.gcp.region", "required field is missing"},
      {"projectId", "Demo", "spec.gcp.projectId",
       "invalid value 'Demo': must be a Google Cloud project id"},
      {"projectId", 12, "spec.gcp.projectId", "must be a string, got an integer"},
      {"region", "Europe West", "spec.gcp.region",
       "invalid value 'Europe West': must be a Cloud Run region such as europe-west1"},
      {"concurrency", 0, "spec.gcp.concurrency", "must be between 1 and 1000, got 0"},
      {"concurrency", "80", "spec.gcp.concurrency", "must be an integer, got a string"},
      {"concurrency", 1.5, "spec.gcp.concurrency", "must be an integer, got a number"},
      {"minInstances", 1001, "spec.gcp.minInstances", "must be between 0 and 1000, got 1001"},
      {"maxInstances", 0, "spec.gcp.maxInstances", "must be between 1 and 1000, got 0"},
      {"serviceAccount", "nobody", "spec.gcp.serviceAccount",
       "invalid value 'nobody': must be a service account e-mail"},
      {"endpoint", "ftp://run.example", "spec.gcp.endpoint",
       "invalid value 'ftp://run.example': must be an http:// or https:// URL"},
      {"authEndpoint", "oauth2.example", "spec.gcp.authEndpoint",
       "invalid value 'oauth2.example': must be an http:// or https:// URL"},
      {"cpu", true, "spec.gcp.cpu", "must be a string or a number, got a boolean"},
      {"cpu", -1, "spec.gcp.cpu", "must be a positive number"},
      {"cpu", "", "spec.gcp.cpu", "invalid value '': must be a non-empty value"},
      {"cpu", "0.5", "spec.gcp.cpu", "Cloud Run's only CPU values are 1, 2, 4 or 8; '0.5'"},
      {"memory", "lots", "spec.gcp.memory", "must be a memory quantity such as 512Mi"},
      {"regoin", "x", "spec.gcp.regoin", "unknown field 'regoin' (did you mean 'region'?)"},
      {"zone", "x", "spec.gcp.zone", "unknown field 'zone'"},
      {"minInstances", 5, "spec.gcp.minInstances", "must not be more than maxInstances (3)"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.path);
    CAPTURE(row.message);
    json block = good;
    if (row.value.is_null()) {
      block.erase(row.field);
    } else {
      block[row.field] = row.value;
    }
    auto r = def.validate_target({"cr", block});
    REQUIRE(r.diagnostics.size() == 1);
    CHECK(r.diagnostics[0].severity == Severity::kError);
    CHECK(r.diagnostics[0].field == row.path);
    CHECK(Contains(r.diagnostics[0].message, row.message));
  }
  auto not_a_map = def.validate_target({"cr", json::array()});
  REQUIRE(not_a_map.diagnostics.size() == 1);
  CHECK(not_a_map.diagnostics[0].field == "spec.gcp");
  CHECK(not_a_map.diagnostics[0].message == "must be a map, got a list");
  // Several problems are all reported.
  auto many = def.validate_target({"cr", {{"x", 1}, {"concurrency", 0}}});
  CHECK(many.diagnostics.size() == 4);  // x, concurrency, projectId, region
  // The factory refuses an invalid block without I/O.
  Target bad = CloudRunTarget("http://127.0.0.1:9");
  bad.settings.erase("region");
  auto made = NewCloudRunProvider(bad);
  REQUIRE_FALSE(made.ok());
  CHECK(made.status().code() == Code::kInvalid);
  CHECK(Contains(made.status().message(), "spec.gcp.region: required field is missing"));

  // The schema matches schemas/target.schema.json's spec.gcp.
  std::ifstream in(std::string(RECONCILE_SOURCE_DIR) + "/schemas/target.schema.json");
  json published = json::parse(in)["properties"]["spec"]["properties"]["gcp"];
  json mine = CloudRunTargetSchema();
  mine.erase("$schema");
  CHECK(mine == published);
  auto provider = NewCloudRunProvider(CloudRunTarget("http://127.0.0.1:9"));
  REQUIRE(provider.ok());
  ProviderSchema schema = (*provider)->Schema();
  CHECK_FALSE(schema.instance_per_replica);
  CHECK(schema.target_schema["properties"].contains("projectId"));
}

TEST_CASE("gcp provider: validate_agent refuses what Cloud Run cannot do, naming the field") {
  ProviderDefinition def = CloudRunProviderDefinition();
  json target = {{"projectId", "demo-project"}, {"region", "europe-west1"}};
  auto check = [&](const Agent& a, const json& tcfg = nullptr) {
    return def.validate_agent(
        {a.name, "cr", tcfg.is_null() ? target : tcfg, NormalizedSpec(a, a.image), nullptr, {}});
  };
  auto errors = [](const ValidateAgentResponse& r) {
    std::vector<ProviderDiagnostic> out;
    for (const auto& d : r.diagnostics) {
      if (d.severity == Severity::kError) out.push_back(d);
    }
    return out;
  };
  CHECK(errors(check(HelloAgent())).empty());
  // reconcile's default strategy (recreate) runs start-first, without a
  // warning on every load of every agent.
  CHECK(check(HelloAgent()).diagnostics.empty());

  struct Row {
    const char* name;
    std::function<void(Agent&)> edit;
    const char* field;
    const char* message;
  };
  const std::string T = "Target 'cr' is Google Cloud Run, which ";
  const std::vector<Row> rows = {
      {"hostPort", [](Agent& a) { a.host_port = 8080; }, "spec.hostPort",
       "has no host ports: the service is reached at its Service.uri; remove hostPort"},
      {"secretEnv",
       [](Agent& a) {
         a.secret_env["TOKEN"] = {SecretRef::Source::kEnv, "APP_TOKEN"};
       },
       "spec.secretEnv.TOKEN", "reads secret variables only from Secret Manager"},
      {"secretFiles",
       [](Agent& a) {
         a.secret_files["cert"] = {
             {SecretRef::Source::kFile, "cert.pem"}, "/run/secrets/cert", 0400};
       },
       "spec.secretFiles.cert", "mounts secret files only from Secret Manager"},
      {"ports",
       [](Agent& a) {
         a.ports.push_back({9090, "tcp", "", 0, true});
       },
       "spec.ports[0]", "exposes one port per container"},
      {"networks",
       [](Agent& a) {
         a.networks.push_back({"backend", {}});
       },
       "spec.networks", "has no networks between services"},
      {"volume",
       [](Agent& a) {
         VolumeMount v;
         v.type = VolumeMount::Type::kVolume;
         v.source = "data";
         v.target = "/data";
         a.volumes.push_back(v);
       },
       "spec.volumes[0]", "cannot create a volume that reconcile owns"},
      {"bind",
       [](Agent& a) {
         VolumeMount v;
         v.type = VolumeMount::Type::kBind;
         v.source = "/srv";
         v.target = "/srv";
         a.volumes.push_back(v);
       },
       "spec.volumes[0]", "has no host to bind-mount from"},
      {"tmpfs readOnly",
       [](Agent& a) {
         VolumeMount v;
         v.type = VolumeMount::Type::kTmpfs;
         v.target = "/scratch";
         v.read_only = true;
         a.volumes.push_back(v);
       },
       "spec.volumes[0].readOnly", "cannot mount an in-memory volume read-only"},
      {"restart", [](Agent& a) { a.restart = "on-failure:3"; }, "spec.restart",
       "has no restart policy (the revision template has none)"},
      {"autoRollback",
       [](Agent& a) {
         a.strategy.type = StrategyType::kStartFirst;
         a.strategy.auto_rollback = false;
       },
       "spec.strategy.autoRollback", "cannot send traffic to a version that is not healthy"},
      {"exec",
       [](Agent& a) {
         a.health_check->kind = HealthCheck::Kind::kExec;
         a.health_check->exec = {"true"};
       },
       "spec.healthCheck.exec", "probes are httpGet, tcpSocket or grpc only"},
      {"interval ms", [](Agent& a) { a.health_check->interval_ms = 1500; },
       "spec.healthCheck.interval", "whose health checks count whole seconds; 1500ms is not"},
      {"interval range", [](Agent& a) { a.health_check->interval_ms = 300000; },
       "spec.healthCheck.interval", "outside that range"},
      {"timeout vs period", [](Agent& a) { a.health_check->timeout_ms = 5000; },
       "spec.healthCheck.timeout", "probe timeout must be smaller than its period (5s vs 5s)"},
      {"stopSignal", [](Agent& a) { a.stop_signal = "SIGINT"; }, "spec.stopSignal",
       "cannot choose the signal that stops a container"},
      {"stopGracePeriod", [](Agent& a) { a.stop_grace_period_ms = 5000; }, "spec.stopGracePeriod",
       "has no stop grace period"},
      {"user", [](Agent& a) { a.user = "1000"; }, "spec.user", "cannot choose the user"},
      {"capAdd", [](Agent& a) { a.cap_add = {"NET_ADMIN"}; }, "spec.capAdd",
       "cannot add Linux capabilities"},
      {"capDrop", [](Agent& a) { a.cap_drop = {"ALL"}; }, "spec.capDrop",
       "cannot drop Linux capabilities"},
      {"readOnlyRootFilesystem", [](Agent& a) { a.read_only_root_filesystem = true; },
       "spec.readOnlyRootFilesystem", "cannot mount the root filesystem read-only"},
      {"hostname", [](Agent& a) { a.hostname = "box"; }, "spec.hostname",
       "cannot set a container's host name"},
      {"label namespace", [](Agent& a) { a.labels["run.googleapis.com/x"] = "1"; },
       "spec.labels.run.googleapis.com/x", "does not accept this annotation key"},
      {"cpu", [](Agent& a) { a.resources.cpu = "0.5"; }, "spec.resources.cpu",
       "whose only CPU values are 1, 2, 4 or 8"},
      {"cpu 4 memory",
       [](Agent& a) {
         a.resources.cpu = "4";
         a.resources.memory = "1Gi";
       },
       "spec.resources.memory", "4 CPU require at least 2Gi"},
      {"gpus", [](Agent& a) { a.resources.gpus = "1"; }, "spec.resources.gpus",
       "attaches GPUs by accelerator type"},
      {"image host", [](Agent& a) { a.image = "ghcr.io/acme/hello:1"; }, "spec.image",
       "runs images from Docker Hub, Artifact Registry or Container Registry only; "
       "'ghcr.io/acme/hello:1' is on ghcr.io"},
      {"name", [](Agent& a) { a.name = "9lives"; }, "metadata.name", "whose service names are"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.name);
    Agent a = HelloAgent();
    row.edit(a);
    auto e = errors(check(a));
    REQUIRE(e.size() == 1);
    CHECK(e[0].field == row.field);
    CHECK(Contains(e[0].message, row.message));
    CHECK(Contains(e[0].message, "Target 'cr'"));
  }
  // replicas with the Target's autoscaling.
  Agent a = HelloAgent();
  a.replicas = 3;
  CHECK(errors(check(a)).empty());
  json autoscaling = target;
  autoscaling["maxInstances"] = 5;
  auto e = errors(check(a, autoscaling));
  REQUIRE(e.size() == 1);
  CHECK(e[0].field == "spec.replicas");
  CHECK(Contains(e[0].message, "sets gcp.minInstances/maxInstances (autoscaling)"));
  // Images Cloud Run runs.
  for (const char* image : {"nginx:1.27", "acme/hello:1", "docker.io/library/nginx", "gcr.io/p/x",
                            "eu.gcr.io/p/x", "europe-west1-docker.pkg.dev/p/r/x"}) {
    CAPTURE(image);
    Agent ok = HelloAgent();
    ok.image = image;
    CHECK(errors(check(ok)).empty());
  }
}

TEST_CASE(
    "gcp provider: lifecycle against the fake (create, observe, update, replace, drift, delete)") {
  Fake fake;
  auto provider = MakeProvider(fake, Options(fake.key_file()));
  Seen seen;

  // Observe: nothing yet.
  ObserveResponse o = provider->Observe({CloudRunTarget(fake.base())});
  REQUIRE_MESSAGE(o.status.ok(), o.status.ToString());
  CHECK(o.instances.empty());

  // A Service that reconcile does not own, made through the API.
  auto [st, op] =
      fake.Send("POST", kParent + "/services?serviceId=other",
                json{{"template", {{"containers", json::array({{{"image", "nginx"}}})}}}});
  REQUIRE(st == 200);

  // Create.
  Agent agent = HelloAgent();
  json spec = NormalizedSpec(agent, agent.image);
  std::vector<bool> waits;
  ApplyChangeRequest create = MakeRequest(MakeChange(Action::kCreate, spec), &seen);
  create.waiting = [&waits](bool w) { waits.push_back(w); };
  ApplyChangeResponse r = provider->ApplyChange(create);
  seen.Add(r);
  REQUIRE_MESSAGE(r.status.ok(), r.status.ToString());
  CHECK(r.health == "healthy");
  REQUIRE(r.instances.size() == 1);
  CHECK(r.instances[0].id == "projects/demo-project/locations/europe-west1/services/hello");
  CHECK(r.instances[0].name == "hello");
  CHECK(r.instances[0].endpoint.rfind("https://hello-", 0) == 0);
  REQUIRE(waits.size() >= 2);
  for (size_t i = 0; i < waits.size(); ++i) CHECK(waits[i] == (i % 2 == 0));
  CHECK(Contains(seen.text, "creating Cloud Run service hello"));

  // What was sent: the contract of docs/cloud-fields.md.
  json state = fake.Control("GET", "state");
  json svc = state["services"]["projects/demo-project/locations/europe-west1/services/hello"];
  json c = svc["template"]["containers"][0];
  CHECK(c["image"] == agent.image);
  CHECK(c["ports"] == json::array({{{"containerPort", 8080}}}));
  CHECK(c["env"] == json::array({{{"name", "GREETING"}, {"value", "hi $$(NAME)"}},
                                 {{"name", "LOG_LEVEL"}, {"value", "info"}}}));
  CHECK(c["startupProbe"]["httpGet"] == json{{"path", "/healthz"}, {"port", 8080}});
  CHECK(c["startupProbe"]["periodSeconds"] == 5);
  CHECK(c["startupProbe"]["failureThreshold"] == 5);
  CHECK_FALSE(c["startupProbe"].contains("timeoutSeconds"));  // reconcile's default: Cloud Run's
  CHECK(svc["template"]["scaling"] == json{{"minInstanceCount", 1}, {"maxInstanceCount", 1}});
  CHECK(svc["template"]["annotations"] == json{{"team", "support"}});
  CHECK(svc["labels"][kGcpLabelManagedBy] == "reconcile");
  CHECK(svc["labels"][kGcpLabelAgent] == "hello");
  CHECK(svc["annotations"][kLabelSpecHash] == SpecHash(spec));
  CHECK(svc["ingress"] == "INGRESS_TRAFFIC_ALL");
  CHECK(svc["traffic"] ==
        json::array({{{"type", "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"}, {"percent", 100}}}));

  // Observe: only the owned one.
  o = provider->Observe({CloudRunTarget(fake.base())});
  seen.Add(o);
  REQUIRE(o.status.ok());
  REQUIRE(o.instances.size() == 1);
  const ObservedInstance first = o.instances[0];
  CHECK(first.name == "hello");
  CHECK(first.agent == "hello");
  CHECK(first.spec_hash == SpecHash(spec));
  CHECK(first.revision == create.revision);
  CHECK(first.image == agent.image);
  CHECK(first.running);
  CHECK(first.state == "ready");
  CHECK(first.health == "healthy");
  CHECK(first.endpoint == r.instances[0].endpoint);

  // A create again (a retry after a lost answer) converges as an update.
  r = provider->ApplyChange(MakeRequest(MakeChange(Action::kCreate, spec)));
  REQUIRE_MESSAGE(r.status.ok(), r.status.ToString());

  // Update in place: a new env value is a new revision.
  Agent changed = agent;
  changed.env["LOG_LEVEL"] = "debug";
  changed.replicas = 2;
  json spec2 = NormalizedSpec(changed, changed.image);
  PlanChangeResponse pc =
      provider->PlanChange({"hello", spec, spec2, {"env.LOG_LEVEL", "replicas"}});
  CHECK(pc.requires_replace.empty());
  CHECK(pc.diagnostics.empty());
  std::string old_revision = fake.Control(
      "GET", "state")["services"]["projects/demo-project/locations/europe-west1/services/hello"]
                     ["latestReadyRevision"];
  r = provider->ApplyChange(MakeRequest(MakeChange(Action::kUpdate, spec2), &seen));
  seen.Add(r);
  REQUIRE_MESSAGE(r.status.ok(), r.status.ToString());
  CHECK(r.health == "healthy");
  svc = fake.Control(
      "GET", "state")["services"]["projects/demo-project/locations/europe-west1/services/hello"];
  CHECK(svc["latestReadyRevision"] != old_revision);
  CHECK(svc["latestReadyRevision"] == svc["latestCreatedRevision"]);
  CHECK(svc["template"]["containers"][0]["env"][1]["value"] == "debug");
  CHECK(svc["template"]["scaling"]["maxInstanceCount"] == 2);
  bool patched_with_mask = false;
  for (const json& e : fake.Log()) {
    if (e["method"] == "PATCH" && e["query"].contains("updateMask")) patched_with_mask = true;
  }
  CHECK(patched_with_mask);
  o = provider->Observe({CloudRunTarget(fake.base())});
  REQUIRE(o.instances.size() == 1);
  CHECK(o.instances[0].spec_hash == SpecHash(spec2));

  // Drift: the image changed through the API, outside reconcile.
  auto [pst, pop] =
      fake.Send("PATCH", kParent + "/services/hello?updateMask=template.containers",
                json{{"template", {{"containers", json::array({{{"image", "nginx:1.27"}}})}}}});
  REQUIRE(pst == 200);
  o = provider->Observe({CloudRunTarget(fake.base())});
  REQUIRE(o.instances.size() == 1);
  CHECK(o.instances[0].spec_hash != SpecHash(spec2));
  CHECK(Contains(o.instances[0].spec_hash, "changed outside reconcile"));
  CHECK(o.instances[0].image == "nginx:1.27");

  // Replace: the whole Service as reconcile describes it (what the planner
  // asks for after drift, or when a field forces it).
  PlanChangeResponse moved = provider->PlanChange({"hello", spec2, spec2, {"target"}});
  CHECK(moved.requires_replace == std::set<std::string>{"target"});
  r = provider->ApplyChange(MakeRequest(MakeChange(Action::kReplace, spec2), &seen));
  seen.Add(r);
  REQUIRE_MESSAGE(r.status.ok(), r.status.ToString());
  o = provider->Observe({CloudRunTarget(fake.base())});
  REQUIRE(o.instances.size() == 1);
  CHECK(o.instances[0].spec_hash == SpecHash(spec2));
  CHECK(o.instances[0].image == agent.image);

  // A failed revision: the operation's error, unhealthy; the old one serves.
  fake.Control("POST", "fail-next",
               {{"message", "Revision 'hello-x' is not ready: the container failed to start"}});
  Agent broken = changed;
  broken.env["LOG_LEVEL"] = "trace";
  json spec3 = NormalizedSpec(broken, broken.image);
  r = provider->ApplyChange(MakeRequest(MakeChange(Action::kUpdate, spec3), &seen));
  seen.Add(r);
  CHECK(r.status.code() == Code::kFailed);
  CHECK(Contains(r.status.message(), "the container failed to start"));
  CHECK(r.health == "unhealthy");
  CHECK(r.instances.size() == 1);
  o = provider->Observe({CloudRunTarget(fake.base())});
  REQUIRE(o.instances.size() == 1);
  CHECK_FALSE(o.instances[0].running);
  CHECK(o.instances[0].health == "unhealthy");

  // Delete, then delete again (idempotent).
  r = provider->ApplyChange(MakeRequest(MakeChange(Action::kDelete, spec2), &seen));
  seen.Add(r);
  REQUIRE_MESSAGE(r.status.ok(), r.status.ToString());
  CHECK(r.instances.empty());
  r = provider->ApplyChange(MakeRequest(MakeChange(Action::kDelete, nullptr), &seen));
  REQUIRE_MESSAGE(r.status.ok(), r.status.ToString());
  o = provider->Observe({CloudRunTarget(fake.base())});
  CHECK(o.instances.empty());

  // The un-owned Service was never touched, and cannot be taken over.
  state = fake.Control("GET", "state");
  CHECK(state["services"].size() == 1);
  CHECK(state["services"].contains("projects/demo-project/locations/europe-west1/services/other"));
  Change other = MakeChange(Action::kCreate, spec);
  other.name = "other";
  r = provider->ApplyChange(MakeRequest(other));
  CHECK(r.status.code() == Code::kConflict);
  CHECK(Contains(r.status.message(), "not managed by reconcile"));
  other.action = Action::kDelete;
  r = provider->ApplyChange(MakeRequest(other));
  CHECK(r.status.code() == Code::kConflict);
  CHECK(fake.Control("GET", "state")["services"].size() == 1);
  for (const json& e : fake.Log()) {
    if (e["kind"] != "api") continue;
    bool touches_other = Contains(e["path"].get<std::string>(), "/services/other");
    if (touches_other) CHECK_MESSAGE(e["method"] == "GET", e.dump());
  }
  fake.CheckNoProblems();
}

// Issue #12 item 3: every Cloud Run API request of a traced change carries
// its traceparent exactly; an untraced change's and an Observe's carry none.
// (The token request is the token source's, shared by all changes: not
// traced.)
TEST_CASE("gcp provider: traceparent on every API request of a change") {
  Fake fake;
  auto provider = MakeProvider(fake, Options(fake.key_file()));
  const std::string tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  // The API requests since the last call, checked against `want`.
  auto check_since = [&fake](std::size_t* from, const std::string& want) {
    json log = fake.Log();
    int api = 0;
    for (std::size_t i = *from; i < log.size(); ++i) {
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
    *from = log.size();
  };
  std::size_t from = 0;
  Agent agent = HelloAgent();
  json spec = NormalizedSpec(agent, agent.image);
  for (Action action : {Action::kCreate, Action::kUpdate, Action::kDelete}) {
    CAPTURE(static_cast<int>(action));
    ApplyChangeRequest req = MakeRequest(MakeChange(action, spec));
    req.traceparent = tp;
    ApplyChangeResponse r = provider->ApplyChange(req);
    REQUIRE_MESSAGE(r.status.ok(), r.status.ToString());
    check_since(&from, tp);
  }
  ApplyChangeResponse untraced =
      provider->ApplyChange(MakeRequest(MakeChange(Action::kCreate, spec)));
  REQUIRE_MESSAGE(untraced.status.ok(), untraced.status.ToString());
  check_since(&from, "");
  ObserveResponse o = provider->Observe({CloudRunTarget(fake.base())});
  REQUIRE_MESSAGE(o.status.ok(), o.status.ToString());
  json log = fake.Log();
  for (std::size_t i = from; i < log.size(); ++i) {
    CHECK_FALSE(log[i]["headers"].contains("traceparent"));
  }
  fake.CheckNoProblems();
}

TEST_CASE("gcp provider: a 4xx carries the cloud's message and is permanent") {
  Fake fake;
  auto provider = MakeProvider(fake, Options(fake.key_file()));
  fake.Control("POST", "inject", {{"kind", "error"}, {"status", 403}, {"count", 1}});
  ObserveResponse o = provider->Observe({CloudRunTarget(fake.base())});
  CHECK(o.status.code() == Code::kInvalid);
  CHECK(Contains(o.status.message(), "403"));
  CHECK(Contains(o.status.message(), "(injected by the fake)"));
  CHECK(Contains(o.status.message(), "roles/run.admin"));
  int answered_403 = 0;
  for (const json& e : fake.Log()) answered_403 += e["status"] == 403;
  CHECK(answered_403 == 1);  // not retried

  // The token endpoint's refusal (a key the fake does not know).
  TempDir tmp;
  RsaKey other;
  tmp.Write("other.json", json{{"type", "service_account"},
                               {"client_email", kClientEmail},
                               {"private_key", other.private_pem}}
                              .dump());
  auto stranger = MakeProvider(fake, Options((tmp.path() / "other.json").string()));
  o = stranger->Observe({CloudRunTarget(fake.base())});
  CHECK(o.status.code() == Code::kInvalid);
  CHECK(Contains(o.status.message(), "Invalid JWT Signature"));
  CHECK_FALSE(Contains(o.status.message(), "PRIVATE KEY"));
  fake.CheckNoProblems();
}

TEST_CASE("gcp provider: throttling and 5xx are retried") {
  Fake fake;
  auto provider = MakeProvider(fake, Options(fake.key_file()));
  fake.Control("POST", "inject", {{"kind", "throttle"}, {"count", 2}, {"retryAfter", "0"}});
  ObserveResponse o = provider->Observe({CloudRunTarget(fake.base())});
  REQUIRE_MESSAGE(o.status.ok(), o.status.ToString());
  fake.Control(
      "POST", "inject",
      {{"kind", "error"}, {"count", 1}, {"operation", "run.projects.locations.services.create"}});
  Agent a = HelloAgent();
  ApplyChangeResponse r =
      provider->ApplyChange(MakeRequest(MakeChange(Action::kCreate, NormalizedSpec(a, a.image))));
  REQUIRE_MESSAGE(r.status.ok(), r.status.ToString());
  int throttled = 0, unavailable = 0;
  for (const json& e : fake.Log()) {
    throttled += e["status"] == 429;
    unavailable += e["status"] == 503;
  }
  CHECK(throttled == 2);
  CHECK(unavailable == 1);
  // Throttling on every attempt (5): a retryable error, with the cloud's message.
  fake.Control("POST", "inject", {{"kind", "throttle"}, {"count", 5}, {"retryAfter", "0"}});
  o = provider->Observe({CloudRunTarget(fake.base())});
  CHECK(o.status.code() == Code::kUnavailable);
  CHECK(Contains(o.status.message(), "RESOURCE_EXHAUSTED"));
  CHECK(Contains(o.status.message(), "Quota exceeded (injected by the fake)"));
  o = provider->Observe({CloudRunTarget(fake.base())});  // the faults are used up
  CHECK(o.status.ok());
  fake.CheckNoProblems();
}

TEST_CASE("gcp provider: stop during a wait returns kCancelled promptly") {
  Fake fake;
  CloudRunOptions options = Options(fake.key_file());
  options.poll_interval = 100ms;
  auto provider = MakeProvider(fake, options);
  fake.Control("POST", "config", {{"readyAfter", 100000}});
  Agent a = HelloAgent();
  json spec = NormalizedSpec(a, a.image);

  SUBCASE("the request's stop token") {
    std::stop_source stop;
    ApplyChangeRequest req = MakeRequest(MakeChange(Action::kCreate, spec));
    req.stop = stop.get_token();
    std::atomic<bool> waiting{false};
    req.waiting = [&](bool w) { waiting = w; };
    ApplyChangeResponse r;
    std::thread t([&] { r = provider->ApplyChange(req); });
    for (int i = 0; i < 200 && !waiting; ++i) std::this_thread::sleep_for(10ms);
    CHECK(waiting);
    auto t0 = std::chrono::steady_clock::now();
    stop.request_stop();
    t.join();
    CHECK(std::chrono::steady_clock::now() - t0 < 1s);
    CHECK(r.status.code() == Code::kCancelled);
    CHECK(Contains(r.status.message(), "stopped while waiting for Cloud Run operation"));
    CHECK_FALSE(waiting);  // waiting(false) after waiting(true)
    CHECK(r.instances.size() == 1);
  }
  SUBCASE("Provider::Stop") {
    ApplyChangeRequest req = MakeRequest(MakeChange(Action::kCreate, spec));
    ApplyChangeResponse r;
    auto t0 = std::chrono::steady_clock::now();
    std::thread t([&] { r = provider->ApplyChange(req); });
    std::this_thread::sleep_for(400ms);
    provider->Stop();
    t.join();
    CHECK(std::chrono::steady_clock::now() - t0 < 2s);
    CHECK(r.status.code() == Code::kCancelled);
    // Later calls end at once too.
    ObserveResponse o = provider->Observe({CloudRunTarget(fake.base())});
    CHECK(o.status.code() == Code::kCancelled);
  }
  fake.CheckNoProblems();
}

// The metadata server is not on loopback, so tests never reach it: this
// transport answers as a host that does not resolve.
class NoNetwork final : public http::Client {
 public:
  Result<http::Response> Send(const http::Request& request, std::stop_token) override {
    ++calls;
    return Status::Unavailable(request.method + " " + http::UrlForMessage(request.url) +
                               ": Could not resolve host");
  }
  std::atomic<int> calls{0};
};

TEST_CASE("gcp provider: missing credentials give one clear error") {
  Fake fake;
  auto no_network = std::make_shared<NoNetwork>();
  CloudRunOptions options = Options("");
  options.auth_client = no_network;
  Target t = CloudRunTarget(fake.base());
  t.settings.erase("authEndpoint");  // Google's own endpoints: the metadata server by default
  auto made = NewCloudRunProvider(t, options);
  REQUIRE(made.ok());
  ObserveResponse o = (*made)->Observe({t});
  CHECK(o.status.code() == Code::kInvalid);
  CHECK(Contains(o.status.message(), "no Google credentials: set GOOGLE_APPLICATION_CREDENTIALS"));
  CHECK(Contains(o.status.message(), "metadata server"));
  CHECK(Contains(o.status.message(), "Target 'cr'"));
  CHECK(no_network->calls > 0);
  Agent a = HelloAgent();
  ApplyChangeResponse r =
      (*made)->ApplyChange(MakeRequest(MakeChange(Action::kCreate, NormalizedSpec(a, a.image))));
  CHECK(r.status.code() == Code::kInvalid);
  CHECK(Contains(r.status.message(), "GOOGLE_APPLICATION_CREDENTIALS"));

  // A key file that is not there: named.
  auto missing = MakeProvider(fake, Options("/nonexistent/key.json"));
  o = missing->Observe({CloudRunTarget(fake.base())});
  CHECK(o.status.code() == Code::kInvalid);
  CHECK(Contains(o.status.message(), "/nonexistent/key.json"));
  CHECK(Contains(o.status.message(), "GOOGLE_APPLICATION_CREDENTIALS"));
  // Nothing reached the API without a token.
  for (const json& e : fake.Log()) CHECK(e["kind"] != "api");
  fake.Send("GET", kParent + "/services");  // one request for the final check
  fake.CheckNoProblems();
}

TEST_CASE("gcp provider: canary secrets never appear in errors, progress or observations") {
  Fake fake;
  const std::string canary = "canary-SECRET-value-5f3a9c";
  auto provider = MakeProvider(fake, Options(fake.key_file()));
  Seen seen;
  Agent a = HelloAgent();
  json spec = NormalizedSpec(a, a.image);
  auto request = [&](Action action) {
    ApplyChangeRequest req = MakeRequest(MakeChange(action, spec), &seen);
    req.secret_values = {{"API_TOKEN", canary}};
    return req;
  };
  seen.Add(provider->ApplyChange(request(Action::kCreate)));
  seen.Add(provider->Observe({CloudRunTarget(fake.base())}));
  fake.Control("POST", "fail-next", {{"message", "the revision failed"}});
  seen.Add(provider->ApplyChange(request(Action::kReplace)));
  fake.Control("POST", "inject", {{"kind", "error"}, {"status", 400}, {"count", 1}});
  seen.Add(provider->ApplyChange(request(Action::kUpdate)));
  // A spec that names a secret variable is refused before any call.
  Agent with_secret = a;
  with_secret.secret_env["API_TOKEN"] = {SecretRef::Source::kEnv, "APP_API_TOKEN"};
  ApplyChangeRequest refused = request(Action::kUpdate);
  refused.change = MakeChange(Action::kUpdate, NormalizedSpec(with_secret, a.image));
  ApplyChangeResponse rr = provider->ApplyChange(refused);
  seen.Add(rr);
  CHECK(rr.status.code() == Code::kInvalid);
  CHECK(Contains(rr.status.message(), "spec.secretEnv.API_TOKEN"));
  seen.Add(provider->ApplyChange(request(Action::kDelete)));

  CHECK_FALSE(seen.text.empty());
  CHECK_FALSE(Contains(seen.text, canary));
  CHECK_FALSE(Contains(seen.text, "ya29."));  // the fake's access tokens
  CHECK_FALSE(Contains(seen.text, kStaticToken));
  CHECK_FALSE(Contains(seen.text, "PRIVATE KEY"));
  std::string key_line = TestKey().private_pem.substr(TestKey().private_pem.find('\n') + 1, 40);
  CHECK_FALSE(Contains(seen.text, key_line));
  // Nor was the secret value ever sent to the cloud.
  CHECK_FALSE(Contains(fake.LogText(), canary));
  fake.CheckNoProblems();
}

TEST_CASE("gcp provider: every mapped field, as sent, passes the official model") {
  Fake fake;
  Agent a = HelloAgent();
  a.command = {"/server"};
  a.args = {"--port", "8080"};
  a.publish = false;
  a.resources.cpu = "2";
  a.resources.memory = "1Gi";
  VolumeMount scratch;
  scratch.type = VolumeMount::Type::kTmpfs;
  scratch.target = "/scratch";
  scratch.size = "64Mi";
  a.volumes.push_back(scratch);
  a.health_check->kind = HealthCheck::Kind::kTcp;
  a.health_check->port = 8080;
  a.health_check->start_period_ms = 10000;
  a.strategy.type = StrategyType::kStartFirst;
  json tcfg = {{"projectId", "demo-project"},
               {"region", "europe-west1"},
               {"concurrency", 40},
               {"minInstances", 0},
               {"maxInstances", 4},
               {"serviceAccount", "run@demo-project.iam.gserviceaccount.com"}};
  json spec = NormalizedSpec(a, a.image);
  auto v = ValidateCloudRunAgent({a.name, "cr", tcfg, spec, nullptr, {}});
  CHECK(v.diagnostics.empty());
  auto settings = DecodeCloudRunSettings("cr", tcfg);
  REQUIRE(settings.ok());
  json body = ServiceBody("rich", spec, *settings, SpecHash(spec), "rev1");
  const json& c = body["template"]["containers"][0];
  CHECK(c["command"] == json::array({"/server"}));
  CHECK(c["args"] == json::array({"--port", "8080"}));
  CHECK(c["resources"] == json{{"limits", {{"cpu", "2"}, {"memory", "1Gi"}}}, {"cpuIdle", true}});
  CHECK(c["startupProbe"]["tcpSocket"] == json{{"port", 8080}});
  CHECK(c["startupProbe"]["initialDelaySeconds"] == 10);
  CHECK(c["volumeMounts"] == json::array({{{"name", "tmpfs-0"}, {"mountPath", "/scratch"}}}));
  CHECK(body["template"]["volumes"] ==
        json::array(
            {{{"name", "tmpfs-0"}, {"emptyDir", {{"medium", "MEMORY"}, {"sizeLimit", "64Mi"}}}}}));
  CHECK(body["template"]["scaling"] == json{{"minInstanceCount", 0}, {"maxInstanceCount", 4}});
  CHECK(body["template"]["maxInstanceRequestConcurrency"] == 40);
  CHECK(body["template"]["serviceAccount"] == "run@demo-project.iam.gserviceaccount.com");
  CHECK(body["ingress"] == "INGRESS_TRAFFIC_INTERNAL_ONLY");
  // The model check of create (validateOnly) and of patch with its mask.
  // (Not structured bindings: clang 14 refuses them in CHECK_MESSAGE.)
  const auto created =
      fake.Send("POST", kParent + "/services?serviceId=rich&validateOnly=true", body);
  CHECK_MESSAGE(created.first == 200, created.second.dump());
  const auto patched =
      fake.Send("PATCH",
                kParent + "/services/rich?allowMissing=true&validateOnly=true&updateMask=" +
                    http::FormEncode(ServiceUpdateMask()),
                body);
  CHECK_MESSAGE(patched.first == 200, patched.second.dump());
  CHECK(Fingerprint(body) == body["annotations"][kAnnotationFingerprint]);
  fake.CheckNoProblems();
}

// A transport that answers what the test says, for malformed answers.
class Canned final : public http::Client {
 public:
  explicit Canned(http::Response r) : r_(std::move(r)) {}
  Result<http::Response> Send(const http::Request&, std::stop_token) override { return r_; }

 private:
  http::Response r_;
};

TEST_CASE("gcp provider: malformed answers give a clear error, never a crash") {
  Fake fake;  // for the token only
  const std::vector<std::pair<long, std::string>> answers = {
      {200, "not json"},
      {200, "[1,2,3]"},
      {200, R"({"services": "many"})"},
      {200,
       R"({"services": [1, null, {"name": 7}, {"name": "projects/x/locations/y/services/z", "labels": 3}]})"},
      {400, "<html>bad</html>"},
      {500, std::string(100000, 'x')},
  };
  for (const auto& answer : answers) {
    const long status = answer.first;
    const std::string body = answer.second;
    const std::string shown = body.substr(0, 60);
    CAPTURE(status);
    CAPTURE(shown);
    CloudRunOptions options = Options(fake.key_file());
    http::Response resp;
    resp.status = status;
    resp.body = body;
    options.client = std::make_shared<Canned>(resp);
    auto provider = MakeProvider(fake, options);
    ObserveResponse o = provider->Observe({CloudRunTarget(fake.base())});
    if (o.status.ok()) {
      CHECK(o.instances.empty());
    } else {
      CHECK(o.status.message().size() < 2000);
      CHECK(Contains(o.status.message(), "Target 'cr'"));
    }
    Agent a = HelloAgent();
    ApplyChangeResponse r =
        provider->ApplyChange(MakeRequest(MakeChange(Action::kCreate, NormalizedSpec(a, a.image))));
    CHECK_FALSE(r.status.ok());
    CHECK(r.status.message().size() < 2000);
  }
  fake.Send("GET", kParent + "/services");
  fake.CheckNoProblems();
}

// Issue #11 item 2: a Target with an environment names its service
// "<environment>--<agent>", labels and annotates it with the environment, and
// observes and touches only its environment's services.
TEST_CASE("gcp provider: environments are scoped, labelled and filtered") {
  Fake fake;
  Target staging_target = CloudRunTarget(fake.base());
  staging_target.environment = "staging";
  auto made = NewCloudRunProvider(staging_target, Options(fake.key_file()));
  REQUIRE_MESSAGE(made.ok(), made.status().ToString());
  std::unique_ptr<Provider> staging = std::move(*made);
  auto plain = MakeProvider(fake, Options(fake.key_file()));

  Agent agent = HelloAgent();
  json spec = NormalizedSpec(agent, agent.image);
  ApplyChangeRequest create = MakeRequest(MakeChange(Action::kCreate, spec));
  create.target = staging_target;
  ApplyChangeResponse r = staging->ApplyChange(create);
  REQUIRE_MESSAGE(r.status.ok(), r.status.ToString());
  REQUIRE(r.instances.size() == 1);
  CHECK(r.instances[0].name == "staging--hello");
  json svc = fake.Control(
      "GET",
      "state")["services"]["projects/demo-project/locations/europe-west1/services/staging--hello"];
  CHECK(svc["labels"][kGcpLabelEnvironment] == "staging");
  CHECK(svc["labels"][kGcpLabelAgent] == "hello");
  CHECK(svc["annotations"][kLabelEnvironment] == "staging");

  // The plain tree sees nothing of staging's, and the other way round.
  ObserveResponse o = plain->Observe({CloudRunTarget(fake.base())});
  REQUIRE(o.status.ok());
  CHECK(o.instances.empty());
  r = plain->ApplyChange(MakeRequest(MakeChange(Action::kCreate, spec)));
  REQUIRE_MESSAGE(r.status.ok(), r.status.ToString());
  CHECK(r.instances.at(0).name == "hello");
  o = staging->Observe({staging_target});
  REQUIRE(o.status.ok());
  REQUIRE(o.instances.size() == 1);
  CHECK(o.instances[0].agent == "hello");
  CHECK(o.instances[0].name == "staging--hello");
  o = plain->Observe({CloudRunTarget(fake.base())});
  REQUIRE(o.instances.size() == 1);
  CHECK(o.instances[0].name == "hello");

  // Deleting in staging leaves the plain tree's service.
  ApplyChangeRequest del = MakeRequest(MakeChange(Action::kDelete, spec));
  del.target = staging_target;
  r = staging->ApplyChange(del);
  REQUIRE_MESSAGE(r.status.ok(), r.status.ToString());
  CHECK(staging->Observe({staging_target}).instances.empty());
  CHECK(plain->Observe({CloudRunTarget(fake.base())}).instances.size() == 1);

  // A service of staging's name without staging's annotation is foreign.
  auto [st, op] =
      fake.Send("POST", kParent + "/services?serviceId=staging--hello",
                json{{"labels", {{kGcpLabelManagedBy, "reconcile"}, {kGcpLabelAgent, "hello"}}},
                     {"annotations", {{kLabelManagedBy, "reconcile"}, {kLabelAgent, "hello"}}},
                     {"template", {{"containers", json::array({{{"image", "nginx"}}})}}}});
  REQUIRE(st == 200);
  r = staging->ApplyChange(create);
  CHECK(r.status.code() == Code::kConflict);
  CHECK(Contains(r.status.message(), "another environment"));

  // validate_agent counts the scoped name against Cloud Run's 49.
  ProviderDefinition def = CloudRunProviderDefinition();
  json target = {{"projectId", "demo-project"}, {"region", "europe-west1"}};
  Agent longer = HelloAgent();
  longer.name = std::string(40, 'a');
  ValidateAgentRequest v{longer.name, "cr", target, NormalizedSpec(longer, longer.image),
                         nullptr,     {}};
  CHECK(def.validate_agent(v).diagnostics.empty());
  v.environment = "staging-eu";  // "staging-eu--" + 40 = 52 > 49
  auto diags = def.validate_agent(v).diagnostics;
  REQUIRE(diags.size() == 1);
  CHECK(diags[0].field == "metadata.name");
  CHECK(Contains(diags[0].message, "staging-eu--aaaa"));
  fake.CheckNoProblems();
}

}  // namespace
}  // namespace reconcile::gcp
