// The App Runner provider (providers/aws/apprunner_provider.h) through the
// Provider interface, against tests/fakes/clouds/apprunner_fake.py started
// as a child process (python3, an ephemeral port, a JSON-line log). Every
// test that talks to the fake ends by asserting that no request it sent had
// a problem against the official App Runner model (GET /_fake/problems).
#include "aws/apprunner_provider.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "aws/apprunner_spec.h"
#include "aws/apprunner_wire.h"
#include "fakes/loopback_http_server.h"
#include "fakes/temp_dir.h"
#include "http/http_client.h"
#include "reconcile/model.h"
#include "reconcile/spec.h"

extern char** environ;

namespace reconcile::aws {
namespace {

using nlohmann::json;
using reconcile::testing::TempDir;
using std::chrono::milliseconds;

constexpr const char* kKeyId = "AKIDFAKEEXAMPLE";
// Canaries: must never appear in any message, progress line or observation.
constexpr const char* kCanarySecret = "CanarySecretKey+9d81f0c2/zz";
constexpr const char* kCanarySecretEnv = "CanarySecretEnvValue-5b7e1a";

const std::string kImage = "public.ecr.aws/nginx/nginx:1.27";
const std::string kImage2 = "public.ecr.aws/nginx/nginx:1.28";

// apprunner_fake.py as a child process, stopped by its pid.
class Fake {
 public:
  explicit Fake(std::vector<std::string> extra = {}) {
    const std::string script =
        std::string(RECONCILE_SOURCE_DIR) + "/tests/fakes/clouds/apprunner_fake.py";
    port_file_ = (dir_.path() / "port").string();
    log_ = (dir_.path() / "log.jsonl").string();
    std::vector<std::string> args = {"python3",      script, "--port-file",  port_file_,
                                     "--log",        log_,   "--aws-secret", kCanarySecret,
                                     "--aws-key-id", kKeyId};
    for (auto& a : extra) args.push_back(a);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    REQUIRE(posix_spawnp(&pid_, "python3", nullptr, nullptr, argv.data(), environ) == 0);
    for (int i = 0; i < 300 && !std::filesystem::exists(port_file_); ++i) {
      std::this_thread::sleep_for(milliseconds(50));
    }
    std::ifstream in(port_file_);
    in >> port_;
    REQUIRE(port_ > 0);
    client_ = http::MakeCurlClient();
  }
  ~Fake() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  Fake(const Fake&) = delete;
  Fake& operator=(const Fake&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  json Control(const std::string& method, const std::string& path, const json& body = nullptr) {
    http::Request req{method,
                      url() + path,
                      {{"Content-Type", "application/json"}},
                      body.is_null() ? "" : body.dump()};
    auto resp = client_->Send(req);
    REQUIRE(resp.ok());
    REQUIRE(resp->status == 200);
    return resp->body.empty() ? json() : json::parse(resp->body);
  }

  // A signed App Runner call with the fake's own credentials (as another
  // tool would make: not through the provider).
  json Api(const std::string& operation, const json& input) {
    Credentials c{kKeyId, kCanarySecret, ""};
    auto wire = SignedAppRunnerRequest(url(), operation, input, c, "us-east-1",
                                       std::chrono::system_clock::now());
    REQUIRE(wire.ok());
    auto resp = client_->Send({wire->method, wire->url, wire->headers, wire->body});
    REQUIRE(resp.ok());
    INFO(resp->body);
    REQUIRE(resp->status == 200);
    return json::parse(resp->body);
  }

  // The API requests logged, optionally of one operation.
  std::vector<json> Requests(const std::string& operation = "") {
    std::vector<json> out;
    for (const json& e : Control("GET", "/_fake/log")) {
      if (e.value("kind", "") != "api") continue;
      if (!operation.empty() && e.value("operation", "") != operation) continue;
      out.push_back(e);
    }
    return out;
  }

  // The check every test ends with: no request had a model problem.
  void CheckNoProblems() {
    json problems = Control("GET", "/_fake/problems");
    INFO(problems.dump(2));
    CHECK(problems.is_array());
    CHECK(problems.empty());
    CHECK(!Requests().empty());
  }

  std::string LogText() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  TempDir dir_{"apprunner-fake"};
  std::string port_file_;
  std::string log_;
  pid_t pid_ = -1;
  int port_ = 0;
  std::unique_ptr<http::Client> client_;
};

Environment TestEnv(const TempDir& home) {
  return {{"AWS_ACCESS_KEY_ID", kKeyId},
          {"AWS_SECRET_ACCESS_KEY", kCanarySecret},
          {"HOME", home.path().string()}};
}

Target TestTarget(const Fake& fake) {
  Target t;
  t.name = "cloud";
  t.provider = "aws";
  t.settings = {{"region", "us-east-1"}, {"endpoint", fake.url()}};
  return t;
}

AppRunnerOptions FastOptions(Environment env) {
  AppRunnerOptions o;
  o.environment = std::move(env);
  o.poll_interval = milliseconds(20);
  o.operation_timeout = std::chrono::seconds(30);
  o.http.base_backoff = milliseconds(10);
  o.http.max_backoff = milliseconds(50);
  return o;
}

Agent TestAgent(const std::string& name, const std::string& image) {
  Agent a;
  a.name = name;
  a.image = image;
  a.target = "cloud";
  a.port = 8080;
  a.env = {{"GREETING", "hello"}};
  a.strategy.type = StrategyType::kStartFirst;
  HealthCheck h;
  h.path = "/health";
  h.interval_ms = 5000;
  h.timeout_ms = 2000;
  h.retries = 3;
  a.health_check = h;
  return a;
}

// Records everything the provider says, to look for canaries.
struct Said {
  std::mutex mu;
  std::vector<std::string> lines;
  void Add(const std::string& s) {
    std::lock_guard<std::mutex> lock(mu);
    lines.push_back(s);
  }
  void Add(const ObservedInstance& o) {
    Add(o.id + " " + o.name + " " + o.agent + " " + o.spec_hash + " " + o.revision + " " + o.image +
        " " + o.state + " " + o.endpoint + " " + o.health);
  }
  void Add(const Status& st) { Add(st.message()); }
  void CheckNoCanary() {
    std::lock_guard<std::mutex> lock(mu);
    CHECK(!lines.empty());
    for (const std::string& l : lines) {
      INFO(l);
      CHECK(l.find(kCanarySecret) == std::string::npos);
      CHECK(l.find(kCanarySecretEnv) == std::string::npos);
    }
  }
};

ApplyChangeRequest MakeApply(const Target& target, Action action, const Agent& agent,
                             std::vector<InstanceRef> prior, Said& said,
                             std::vector<FieldChange> fields = {}) {
  ApplyChangeRequest r;
  r.target = target;
  r.change.address = "agent." + agent.name;
  r.change.name = agent.name;
  r.change.action = action;
  r.change.target = target.name;
  r.change.provider = "aws";
  json spec = NormalizedSpec(agent, agent.image);
  r.change.desired = spec;
  r.change.desired_hash = action == Action::kDelete ? "" : SpecHash(spec);
  r.change.prior = std::move(prior);
  r.change.fields = std::move(fields);
  r.revision = "rev-1";
  r.secret_values = {{"API_TOKEN", kCanarySecretEnv}};
  r.progress = [&said](const std::string& line) { said.Add(line); };
  return r;
}

ApplyChangeResponse Applied(Provider& p, const ApplyChangeRequest& r, Said& said) {
  ApplyChangeResponse resp = p.ApplyChange(r);
  said.Add(resp.status);
  for (const auto& w : resp.warnings) said.Add(w);
  for (const auto& i : resp.instances) said.Add(i.id + " " + i.name + " " + i.endpoint);
  return resp;
}

ObserveResponse Observed(Provider& p, const Target& t, Said& said) {
  ObserveResponse r = p.Observe({t});
  said.Add(r.status);
  for (const auto& w : r.warnings) said.Add(w);
  for (const auto& o : r.instances) said.Add(o);
  return r;
}

std::vector<std::string> Fields(const std::vector<ProviderDiagnostic>& d) {
  std::vector<std::string> out;
  for (const auto& x : d) out.push_back(x.field);
  return out;
}

std::string Messages(const std::vector<ProviderDiagnostic>& d) {
  std::string out;
  for (const auto& x : d) out += x.field + ": " + x.message + "\n";
  return out;
}

// --- Pure parts. ---

TEST_CASE("aws provider: validate_target accepts a good block and names each bad field") {
  ValidateTargetRequest good;
  good.target = "cloud";
  good.config = {{"region", "eu-west-1"},
                 {"cpu", "1 vCPU"},
                 {"memory", 2048},
                 {"accessRoleArn", "arn:aws:iam::123456789012:role/pull"},
                 {"instanceRoleArn", "arn:aws:iam::123456789012:role/service-role/run"},
                 {"endpoint", "https://apprunner.example.com"},
                 {"authEndpoint", "http://127.0.0.1:9/creds"}};
  CHECK(ValidateAppRunnerTarget(good).diagnostics.empty());

  struct Row {
    json config;
    std::string field;
    std::string message;
  };
  std::vector<Row> rows = {
      {json::object(), "spec.aws.region", "required field is missing"},
      {{{"region", "EU West"}},
       "spec.aws.region",
       "invalid value 'EU West': must be an AWS region such as us-east-1"},
      {{{"region", 5}}, "spec.aws.region", "must be a string, got an integer"},
      {{{"region", "us-east-1"}, {"regoin", "x"}},
       "spec.aws.regoin",
       "unknown field 'regoin' (did you mean 'region'?)"},
      {{{"region", "us-east-1"}, {"colour", "x"}}, "spec.aws.colour", "unknown field 'colour'"},
      {{{"region", "us-east-1"}, {"cpu", -1}}, "spec.aws.cpu", "must be a positive number"},
      {{{"region", "us-east-1"}, {"cpu", true}},
       "spec.aws.cpu",
       "must be a string or a number, got a boolean"},
      {{{"region", "us-east-1"}, {"cpu", ""}},
       "spec.aws.cpu",
       "invalid value '': must be a non-empty value"},
      {{{"region", "us-east-1"}, {"cpu", "3 vCPU"}},
       "spec.aws.cpu",
       "invalid value '3 vCPU': AWS App Runner offers 256, 512, 1024, 2048, 4096 (CPU units) or "
       "0.25, 0.5, 1, 2, 4 vCPU"},
      {{{"region", "us-east-1"}, {"memory", 1000}},
       "spec.aws.memory",
       "invalid value '1000': AWS App Runner offers 512, 1024, 2048, 3072, 4096, 6144, 8192, "
       "10240, 12288 (MB) or 0.5, 1, 2, 3, 4, 6, 8, 10, 12 GB"},
      {{{"region", "us-east-1"}, {"accessRoleArn", "role/pull"}},
       "spec.aws.accessRoleArn",
       "invalid value 'role/pull': must be an IAM role ARN (arn:...)"},
      {{{"region", "us-east-1"}, {"instanceRoleArn", "arn:aws:s3:::bucket"}},
       "spec.aws.instanceRoleArn",
       "invalid value 'arn:aws:s3:::bucket': must be an IAM role ARN as App Runner takes it "
       "(arn:aws:iam::<12-digit account>:role/NAME)"},
      {{{"region", "us-east-1"}, {"endpoint", "ftp://x"}},
       "spec.aws.endpoint",
       "invalid value 'ftp://x': must be an http:// or https:// URL"},
      {{{"region", "us-east-1"}, {"authEndpoint", "http://169.254.170.2/creds"}},
       "spec.aws.authEndpoint",
       "invalid value 'http://169.254.170.2/creds': plain http:// is allowed only to a loopback "
       "host (127.0.0.1, ::1, localhost); use https://"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.config.dump());
    ValidateTargetRequest bad;
    bad.target = "cloud";
    bad.config = row.config;
    auto d = ValidateAppRunnerTarget(bad).diagnostics;
    INFO(Messages(d));
    REQUIRE(d.size() == 1);
    CHECK(d[0].severity == Severity::kError);
    CHECK(d[0].field == row.field);
    CHECK(d[0].message == row.message);
  }
  ValidateTargetRequest not_map;
  not_map.config = json::array();
  auto d = ValidateAppRunnerTarget(not_map).diagnostics;
  REQUIRE(d.size() == 1);
  CHECK(d[0].field == "spec.aws");
  CHECK(d[0].message == "must be a map, got a list");
}

TEST_CASE("aws provider: validate_agent refuses what App Runner cannot honour") {
  auto check = [](const Agent& a, const json& target_config = {{"region", "us-east-1"}}) {
    ValidateAgentRequest r;
    r.agent = a.name;
    r.target = "prod";
    r.target_config = target_config;
    r.spec = NormalizedSpec(a, a.image);
    return ValidateAppRunnerAgent(r).diagnostics;
  };
  Agent good = TestAgent("support-bot", kImage);
  good.command = {"/bin/server", "--port=8080"};
  good.args = {"-v"};
  good.labels = {{"team", "cx"}};
  good.resources.cpu = "0.5";
  good.resources.memory = "1Gi";
  CHECK(check(good).empty());

  SUBCASE("image outside ECR") {
    Agent a = TestAgent("support-bot", "nginx:1.27");
    auto d = check(a);
    REQUIRE(d.size() == 1);
    CHECK(d[0].field == "spec.image");
    CHECK(d[0].message ==
          "Target 'prod' is AWS App Runner, which runs images only from Amazon ECR "
          "(<account>.dkr.ecr.<region>.amazonaws.com/...) or ECR Public (public.ecr.aws/...); "
          "'nginx:1.27' is neither: push it to ECR");
  }
  SUBCASE("private ECR needs the access role") {
    Agent a = TestAgent("support-bot", "123456789012.dkr.ecr.us-east-1.amazonaws.com/bot:1");
    auto d = check(a);
    REQUIRE(d.size() == 1);
    CHECK(d[0].field == "spec.image");
    CHECK(check(a,
                {{"region", "us-east-1"}, {"accessRoleArn", "arn:aws:iam::123456789012:role/pull"}})
              .empty());
  }
  SUBCASE("one refusal per field, with the words of docs/cloud-fields.md") {
    Agent a = TestAgent("support-bot", kImage);
    a.host_port = 8080;
    a.args = {"-v"};
    a.secret_env["API_TOKEN"] = SecretRef{SecretRef::Source::kEnv, "API_TOKEN"};
    a.stop_signal = "SIGINT";
    a.stop_grace_period_ms = 5000;
    a.user = "1000";
    a.cap_add = {"NET_ADMIN"};
    a.cap_drop = {"ALL"};
    a.read_only_root_filesystem = true;
    a.hostname = "bot";
    a.restart = "no";
    a.strategy.auto_rollback = false;
    a.resources.cpu = "3";
    a.resources.memory = "1000Mi";
    a.resources.gpus = "1";
    a.replicas = 30;
    a.health_check->start_period_ms = 1000;
    a.health_check->interval_ms = 500;
    a.health_check->retries = 25;
    a.health_check->port = 9090;
    VolumeMount v;
    v.type = VolumeMount::Type::kTmpfs;
    v.target = "/scratch";
    a.volumes = {v};
    PortMapping pm;
    pm.container_port = 9000;
    pm.protocol = "tcp";
    a.ports = {pm};
    NetworkAttachment n;
    n.name = "backend";
    a.networks = {n};
    auto d = check(a);
    INFO(Messages(d));
    std::vector<std::string> want = {"spec.args",
                                     "spec.secretEnv.API_TOKEN",
                                     "spec.hostPort",
                                     "spec.ports",
                                     "spec.networks",
                                     "spec.volumes",
                                     "spec.replicas",
                                     "spec.restart",
                                     "spec.strategy.autoRollback",
                                     "spec.healthCheck.port",
                                     "spec.healthCheck.interval",
                                     "spec.healthCheck.retries",
                                     "spec.healthCheck.startPeriod",
                                     "spec.stopSignal",
                                     "spec.stopGracePeriod",
                                     "spec.user",
                                     "spec.capAdd",
                                     "spec.capDrop",
                                     "spec.readOnlyRootFilesystem",
                                     "spec.hostname",
                                     "spec.resources.cpu",
                                     "spec.resources.memory",
                                     "spec.resources.gpus"};
    CHECK(Fields(d) == want);
    std::string all = Messages(d);
    for (const char* text :
         {"spec.hostPort: Target 'prod' is AWS App Runner, which has no host ports: the "
          "service is reached at its ServiceUrl; remove hostPort",
          "spec.secretEnv.API_TOKEN: Target 'prod' is AWS App Runner, which takes secret "
          "variables only as ARNs of Secrets Manager secrets or SSM parameters",
          "spec.volumes: Target 'prod' is AWS App Runner, which mounts no volumes, tmpfs "
          "included (the volume at /scratch)",
          "spec.replicas: Target 'prod' is AWS App Runner, which keeps at most 25 provisioned "
          "instances (MinSize 1 to 25); 30 is more",
          "spec.healthCheck.interval: Target 'prod' is AWS App Runner, whose health checks "
          "count whole seconds; 500ms is not",
          "spec.healthCheck.retries: Target 'prod' is AWS App Runner, which gives up after at "
          "most 20 failed checks (UnhealthyThreshold 1 to 20); 25 is more",
          "spec.healthCheck.port: Target 'prod' is AWS App Runner, which checks only the "
          "service's port (8080); HealthCheckConfiguration has no port",
          "spec.resources.gpus: Target 'prod' is AWS App Runner, which has no GPUs",
          "spec.user: Target 'prod' is AWS App Runner, which cannot choose the user a "
          "container runs as: set USER in the image",
          "spec.restart: Target 'prod' is AWS App Runner, which has no restart policy and "
          "keeps its instances running; only always or unless-stopped can be honoured",
          "spec.args: Target 'prod' is AWS App Runner, which takes one StartCommand for the "
          "whole command line"}) {
      CHECK_MESSAGE(all.find(text) != std::string::npos, text);
    }
  }
  SUBCASE("exec health checks, secret files, odd command words, names, labels") {
    Agent a = TestAgent("bot", kImage);
    a.health_check->kind = HealthCheck::Kind::kExec;
    a.health_check->exec = {"true"};
    a.command = {"/bin/sh", "-c", "echo hi"};
    a.labels = {{"aws:owner", "x"}};
    SecretFile f;
    f.ref = {SecretRef::Source::kFile, "key"};
    f.target = "/run/secrets/key";
    a.secret_files = {{"key", f}};
    auto d = check(a);
    INFO(Messages(d));
    CHECK(Fields(d) == std::vector<std::string>{"metadata.name", "spec.command[2]",
                                                "spec.secretFiles", "spec.healthCheck.exec",
                                                "spec.labels.aws:owner"});
    std::string all = Messages(d);
    CHECK(all.find("spec.command[2]: Target 'prod' is AWS App Runner, whose StartCommand is one "
                   "line, not an argument list; 'echo hi' cannot be passed as one argument") !=
          std::string::npos);
    CHECK(all.find("spec.healthCheck.exec: Target 'prod' is AWS App Runner, whose health checks "
                   "are TCP or HTTP only") != std::string::npos);
  }
  SUBCASE("from the typed Agent when the loader sends no JSON spec") {
    Agent a = TestAgent("support-bot", kImage);
    a.user = "1000";
    ValidateAgentRequest r;
    r.agent = a.name;
    r.target = "prod";
    r.target_config = {{"region", "us-east-1"}};
    r.model = &a;
    auto d = ValidateAppRunnerAgent(r).diagnostics;
    REQUIRE(d.size() == 1);
    CHECK(d[0].field == "spec.user");
  }
  SUBCASE("tcp health check on another port") {
    Agent a = TestAgent("support-bot", kImage);
    a.health_check->kind = HealthCheck::Kind::kTcp;
    a.health_check->port = 9000;
    auto d = check(a);
    REQUIRE(d.size() == 1);
    CHECK(d[0].field == "spec.healthCheck.tcp");
  }
}

TEST_CASE("aws provider: mapping of cpu, memory, images and the service configuration") {
  CHECK(AppRunnerCpuOfAgent("0.25") == "0.25 vCPU");
  CHECK(AppRunnerCpuOfAgent("500m") == "0.5 vCPU");
  CHECK(AppRunnerCpuOfAgent("2") == "2 vCPU");
  CHECK(AppRunnerCpuOfAgent("1024") == "1024");
  CHECK(!AppRunnerCpuOfAgent("3"));
  CHECK(!AppRunnerCpuOfAgent("100m"));
  CHECK(AppRunnerMemoryOfAgent("512Mi") == "512");
  CHECK(AppRunnerMemoryOfAgent("12Gi") == "12288");
  CHECK(!AppRunnerMemoryOfAgent("1G"));
  CHECK(!AppRunnerMemoryOfAgent("5Gi"));
  CHECK(AppRunnerCpuOfTarget(json(1024)) == "1024");
  CHECK(AppRunnerCpuOfTarget(json("0.25 vCPU")) == "0.25 vCPU");
  CHECK(AppRunnerMemoryOfTarget(json("2 GB")) == "2 GB");
  CHECK(AppRunnerCpuOfTarget(json(1)) == "1 vCPU");
  CHECK(AppRunnerCpuOfTarget(json(0.25)) == "0.25 vCPU");
  CHECK(AppRunnerMemoryOfTarget(json(4)) == "4 GB");
  CHECK(AppRunnerMemoryOfTarget(json(4096)) == "4096");
  CHECK(!AppRunnerCpuOfTarget(json(3)));
  CHECK(!AppRunnerMemoryOfTarget(json("5 GB")));
  CHECK(ImageRepositoryTypeOf("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/bot:1.2") ==
        "ECR");
  CHECK(ImageRepositoryTypeOf("public.ecr.aws/nginx/nginx@sha256:abc") == "ECR_PUBLIC");
  CHECK(!ImageRepositoryTypeOf("docker.io/library/nginx"));
  CHECK(!ImageRepositoryTypeOf("12345.dkr.ecr.eu-west-1.amazonaws.com/bot"));

  Agent a = TestAgent("support-bot", kImage);
  a.command = {"/bin/server"};
  a.args = {"--verbose"};
  a.publish = false;
  auto c = ServiceConfiguration(NormalizedSpec(a, a.image),
                                {{"region", "us-east-1"}, {"cpu", 512}, {"memory", "1 GB"}}, false);
  REQUIRE(c.ok());
  const json& img = (*c)["SourceConfiguration"]["ImageRepository"];
  CHECK(img["ImageIdentifier"] == kImage);
  CHECK(img["ImageRepositoryType"] == "ECR_PUBLIC");
  CHECK(img["ImageConfiguration"]["Port"] == "8080");
  CHECK(img["ImageConfiguration"]["StartCommand"] == "/bin/server --verbose");
  CHECK(img["ImageConfiguration"]["RuntimeEnvironmentVariables"] == json{{"GREETING", "hello"}});
  CHECK((*c)["InstanceConfiguration"] == json{{"Cpu", "512"}, {"Memory", "1 GB"}});
  CHECK((*c)["HealthCheckConfiguration"] == json{{"Protocol", "HTTP"},
                                                 {"Path", "/health"},
                                                 {"HealthyThreshold", 1},
                                                 {"Interval", 5},
                                                 {"Timeout", 2},
                                                 {"UnhealthyThreshold", 3}});
  CHECK((*c)["NetworkConfiguration"]["IngressConfiguration"]["IsPubliclyAccessible"] == false);
  // An update resets what the spec no longer sets.
  a.health_check.reset();
  auto u = ServiceConfiguration(NormalizedSpec(a, a.image), {{"region", "us-east-1"}}, true);
  REQUIRE(u.ok());
  CHECK((*u)["InstanceConfiguration"] == json{{"Cpu", "1024"}, {"Memory", "2048"}});
  CHECK((*u)["HealthCheckConfiguration"]["Protocol"] == "TCP");
  // A spec validation refuses is refused here too.
  a.host_port = 1;
  CHECK(ServiceConfiguration(NormalizedSpec(a, a.image), {{"region", "us-east-1"}}, false)
            .status()
            .code() == Code::kInvalid);
}

TEST_CASE("aws provider: schema, plan change and registration") {
  TempDir home;
  Target t;
  t.name = "cloud";
  t.provider = "aws";
  t.settings = {{"region", "us-east-1"}};
  auto p = NewAppRunnerProvider(t, FastOptions(TestEnv(home)));
  REQUIRE(p.ok());
  ProviderSchema s = (*p)->Schema();
  CHECK_FALSE(s.instance_per_replica);
  std::ifstream in(std::string(RECONCILE_SOURCE_DIR) + "/schemas/target.schema.json");
  json file = json::parse(in);
  CHECK(s.target_schema == file["properties"]["spec"]["properties"]["aws"]);

  PlanChangeRequest r;
  r.agent = "support-bot";
  r.changed = {"env.GREETING", "healthCheck.path", "image",
               "labels.team",  "resources.cpu",    "target"};
  auto plan = (*p)->PlanChange(r);
  CHECK(plan.requires_replace == std::set<std::string>{"target"});
  CHECK(plan.diagnostics.empty());

  ProviderRegistry registry;
  RegisterAppRunnerProvider(registry);
  const ProviderDefinition* d = registry.Find("aws");
  REQUIRE(d != nullptr);
  CHECK(d->validate_target);
  CHECK(d->validate_agent);
  auto made = registry.Create(t);
  CHECK(made.ok());
  Target bad = t;
  bad.settings = json::object();
  CHECK(registry.Create(bad).status().code() == Code::kInvalid);
}

TEST_CASE("aws provider: missing credentials give one clear error") {
  TempDir home;
  Target t;
  t.name = "cloud";
  t.provider = "aws";
  t.settings = {{"region", "us-east-1"}, {"endpoint", "http://127.0.0.1:9"}};
  auto p = NewAppRunnerProvider(t, FastOptions({{"HOME", home.path().string()}}));
  REQUIRE(p.ok());
  ObserveResponse r = (*p)->Observe({t});
  CHECK(r.status.code() == Code::kInvalid);
  const std::string& m = r.status.message();
  INFO(m);
  CHECK(m.rfind("Target 'cloud' (AWS App Runner): ", 0) == 0);
  for (const char* name : {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE",
                           "AWS_CONTAINER_CREDENTIALS_FULL_URI", ".aws/credentials"}) {
    CHECK_MESSAGE(m.find(name) != std::string::npos, name);
  }
  Said said;
  Agent a = TestAgent("support-bot", kImage);
  auto applied = Applied(**p, MakeApply(t, Action::kCreate, a, {}, said), said);
  CHECK(applied.status.code() == Code::kInvalid);
  CHECK(applied.status.message() == m);
}

// --- Against the fake. ---

TEST_CASE("aws provider: whole lifecycle against the App Runner fake") {
  Fake fake;
  TempDir home;
  Target t = TestTarget(fake);
  auto made = NewAppRunnerProvider(t, FastOptions(TestEnv(home)));
  REQUIRE(made.ok());
  Provider& p = **made;
  Said said;

  // Observe: nothing yet.
  ObserveResponse o = Observed(p, t, said);
  REQUIRE(o.status.ok());
  CHECK(o.instances.empty());

  // Create.
  Agent a = TestAgent("support-bot", kImage);
  a.labels = {{"team", "cx"}};
  std::vector<bool> waiting;
  ApplyChangeRequest create = MakeApply(t, Action::kCreate, a, {}, said);
  create.waiting = [&waiting](bool w) { waiting.push_back(w); };
  ApplyChangeResponse c = Applied(p, create, said);
  INFO(c.status.message());
  REQUIRE(c.status.ok());
  CHECK(c.health == "healthy");
  REQUIRE(c.instances.size() == 1);
  CHECK(c.instances[0].name == "support-bot");
  CHECK(c.instances[0].id.rfind("arn:aws:apprunner:us-east-1:123456789012:service/support-bot/",
                                0) == 0);
  CHECK(c.instances[0].endpoint.rfind("https://", 0) == 0);
  CHECK(!waiting.empty());
  CHECK(waiting.size() % 2 == 0);
  CHECK(waiting.front() == true);
  const std::string arn = c.instances[0].id;
  json state = fake.Control("GET", "/_fake/state");
  REQUIRE(state.contains(arn));
  json tags = json::object();
  for (const json& tag : state[arn]["Tags"]) tags[tag["Key"].get<std::string>()] = tag["Value"];
  CHECK(tags["reconcile.dev/managed-by"] == "reconcile");
  CHECK(tags["reconcile.dev/agent"] == "support-bot");
  CHECK(tags["reconcile.dev/spec-hash"] == create.change.desired_hash);
  CHECK(tags["reconcile.dev/revision"] == "rev-1");
  CHECK(tags["team"] == "cx");
  CHECK(state[arn]["Service"]["HealthCheckConfiguration"]["Path"] == "/health");

  // A service nobody tagged, made by another tool: never observed.
  fake.Api(
      "CreateService",
      {{"ServiceName", "someone-else"},
       {"SourceConfiguration",
        {{"ImageRepository", {{"ImageIdentifier", kImage}, {"ImageRepositoryType", "ECR_PUBLIC"}}},
         {"AutoDeploymentsEnabled", false}}}});
  o = Observed(p, t, said);
  REQUIRE(o.status.ok());
  REQUIRE(o.instances.size() == 1);
  CHECK(o.instances[0].id == arn);
  CHECK(o.instances[0].agent == "support-bot");
  CHECK(o.instances[0].spec_hash == create.change.desired_hash);
  CHECK(o.instances[0].revision == "rev-1");
  CHECK(o.instances[0].image == kImage);
  CHECK(o.instances[0].running);
  CHECK(o.instances[0].state == "running");
  CHECK(o.instances[0].health == "healthy");
  CHECK(o.instances[0].endpoint == c.instances[0].endpoint);

  // A create of an agent whose name an unowned service holds: refused.
  Agent other = TestAgent("someone-else", kImage);
  auto conflict = Applied(p, MakeApply(t, Action::kCreate, other, {}, said), said);
  CHECK(conflict.status.code() == Code::kConflict);
  CHECK(conflict.status.message().find("not managed by reconcile") != std::string::npos);

  // Create again (a retry after a lost answer): becomes an update.
  ApplyChangeResponse again = Applied(p, MakeApply(t, Action::kCreate, a, {}, said), said);
  REQUIRE(again.status.ok());
  CHECK(fake.Requests("CreateService").size() == 2);  // ours once, someone-else once
  CHECK(fake.Requests("UpdateService").size() == 1);

  // Update in place: a new image and env; PlanChange says in place.
  Agent a2 = a;
  a2.image = kImage2;
  a2.env["GREETING"] = "hi";
  a2.labels.clear();
  PlanChangeRequest pc;
  pc.agent = a.name;
  pc.prior = NormalizedSpec(a, a.image);
  pc.desired = NormalizedSpec(a2, a2.image);
  pc.changed = {"env.GREETING", "image", "labels.team"};
  CHECK(p.PlanChange(pc).requires_replace.empty());
  FieldChange dropped{"labels.team", json("cx"), std::nullopt, false};
  ApplyChangeRequest update =
      MakeApply(t, Action::kUpdate, a2, {{arn, "support-bot"}}, said, {dropped});
  update.revision = "rev-2";
  ApplyChangeResponse u = Applied(p, update, said);
  INFO(u.status.message());
  REQUIRE(u.status.ok());
  REQUIRE(u.instances.size() == 1);
  CHECK(u.instances[0].id == arn);  // the same service: in place
  state = fake.Control("GET", "/_fake/state");
  const json& img = state[arn]["Service"]["SourceConfiguration"]["ImageRepository"];
  CHECK(img["ImageIdentifier"] == kImage2);
  CHECK(img["ImageConfiguration"]["RuntimeEnvironmentVariables"]["GREETING"] == "hi");
  o = Observed(p, t, said);
  REQUIRE(o.instances.size() == 1);
  CHECK(o.instances[0].image == kImage2);
  CHECK(o.instances[0].spec_hash == update.change.desired_hash);
  CHECK(o.instances[0].revision == "rev-2");
  CHECK(fake.Requests("UntagResource").size() == 1);
  bool has_team = false;
  for (const json& tag : state[arn]["Tags"]) has_team = has_team || tag["Key"] == "team";
  CHECK_FALSE(has_team);

  // An update App Runner rolls back: a permanent failure, unhealthy, the old
  // version (and its tags) stay.
  fake.Control("POST", "/_fake/fail-next", {{"message", "health check failed"}});
  Agent a3 = a2;
  a3.env["GREETING"] = "broken";
  ApplyChangeResponse failed =
      Applied(p, MakeApply(t, Action::kUpdate, a3, {{arn, "support-bot"}}, said), said);
  CHECK(failed.status.code() == Code::kFailed);
  CHECK(failed.health == "unhealthy");
  CHECK(failed.status.message().find("ROLLBACK_SUCCEEDED") != std::string::npos);
  o = Observed(p, t, said);
  REQUIRE(o.instances.size() == 1);
  CHECK(o.instances[0].spec_hash == update.change.desired_hash);

  // A field that forces a replacement: the Target.
  Agent moved = a2;
  moved.target = "cloud-2";
  pc.prior = NormalizedSpec(a2, a2.image);
  pc.desired = NormalizedSpec(moved, moved.image);
  pc.changed = {"target"};
  CHECK(p.PlanChange(pc).requires_replace == std::set<std::string>{"target"});
  ApplyChangeResponse rep =
      Applied(p, MakeApply(t, Action::kReplace, moved, {{arn, "support-bot"}}, said), said);
  INFO(rep.status.message());
  REQUIRE(rep.status.ok());
  REQUIRE(rep.instances.size() == 1);
  CHECK(rep.instances[0].id != arn);  // a new service
  const std::string arn2 = rep.instances[0].id;
  state = fake.Control("GET", "/_fake/state");
  CHECK(state[arn]["Service"]["Status"] == "DELETED");
  CHECK(state[arn2]["Service"]["Status"] == "RUNNING");

  // A delete naming a service that is not ours (a forged prior id): refused.
  std::string foreign_arn;
  const json all_services = fake.Control("GET", "/_fake/state");
  for (const auto& [k, v] : all_services.items()) {
    if (v["Service"]["ServiceName"] == "someone-else") foreign_arn = k;
  }
  REQUIRE(!foreign_arn.empty());
  auto forged =
      Applied(p, MakeApply(t, Action::kDelete, other, {{foreign_arn, "someone-else"}}, said), said);
  CHECK(forged.status.code() == Code::kConflict);

  // Delete, then delete again: both succeed.
  ApplyChangeRequest del = MakeApply(t, Action::kDelete, moved, {{arn2, "support-bot"}}, said);
  ApplyChangeResponse d1 = Applied(p, del, said);
  INFO(d1.status.message());
  REQUIRE(d1.status.ok());
  CHECK(d1.instances.empty());
  ApplyChangeResponse d2 = Applied(p, del, said);
  CHECK(d2.status.ok());
  CHECK(d2.instances.empty());
  ApplyChangeResponse d3 = Applied(p, MakeApply(t, Action::kDelete, moved, {}, said), said);
  CHECK(d3.status.ok());
  state = fake.Control("GET", "/_fake/state");
  CHECK(state[arn2]["Service"]["Status"] == "DELETED");
  o = Observed(p, t, said);
  REQUIRE(o.status.ok());
  CHECK(o.instances.empty());
  // The unowned service was never touched.
  CHECK(fake.Requests("DeleteService").size() == 2);
  for (const json& e : fake.Requests("UpdateService")) {
    CHECK(e["body"]["ServiceArn"].get<std::string>().find("someone-else") == std::string::npos);
  }

  said.CheckNoCanary();
  CHECK(fake.LogText().find(kCanarySecretEnv) == std::string::npos);
  CHECK(fake.LogText().find(kCanarySecret) == std::string::npos);
  fake.CheckNoProblems();
}

// Issue #12 item 3: every App Runner call of a traced change carries its
// traceparent exactly (unsigned, so the fake's SigV4 check with botocore
// still passes: no InvalidSignatureException, no problem); an untraced
// change's and an Observe's carry none.
TEST_CASE("aws provider: traceparent on every request of a change, the signature still valid") {
  Fake fake;
  TempDir home;
  Target t = TestTarget(fake);
  auto made = NewAppRunnerProvider(t, FastOptions(TestEnv(home)));
  REQUIRE(made.ok());
  Provider& p = **made;
  Said said;
  const std::string tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  auto check_all = [&fake](const std::string& want) {
    std::vector<json> requests = fake.Requests();
    CHECK(requests.size() >= 2);
    for (const json& e : requests) {
      INFO(e.dump());
      CHECK(e["status"] == 200);  // a signature the fake refused would be 403
      if (want.empty()) {
        CHECK_FALSE(e["headers"].contains("traceparent"));
      } else {
        CHECK(e["headers"].value("traceparent", "") == want);
      }
    }
  };
  auto reset = [&fake] {
    fake.CheckNoProblems();  // the log is cleared with its problems
    fake.Control("POST", "/_fake/reset-log");
  };

  Agent a = TestAgent("support-bot", kImage);
  ApplyChangeRequest create = MakeApply(t, Action::kCreate, a, {}, said);
  create.traceparent = tp;
  ApplyChangeResponse c = Applied(p, create, said);
  INFO(c.status.message());
  REQUIRE(c.status.ok());
  REQUIRE(c.instances.size() == 1);
  CHECK(fake.Requests("CreateService").size() == 1);
  check_all(tp);
  reset();

  Agent a2 = a;
  a2.image = kImage2;
  ApplyChangeRequest update =
      MakeApply(t, Action::kUpdate, a2, {{c.instances[0].id, a.name}}, said);
  update.traceparent = tp;
  REQUIRE(Applied(p, update, said).status.ok());
  CHECK(fake.Requests("UpdateService").size() == 1);
  check_all(tp);
  reset();

  REQUIRE(Observed(p, t, said).status.ok());
  check_all("");
  reset();

  ApplyChangeRequest del = MakeApply(t, Action::kDelete, a2, {{c.instances[0].id, a.name}}, said);
  REQUIRE(Applied(p, del, said).status.ok());
  CHECK(fake.Requests("DeleteService").size() == 1);
  check_all("");
  said.CheckNoCanary();
  fake.CheckNoProblems();
}

TEST_CASE("aws provider: a 4xx answer is a permanent error with the cloud's message") {
  Fake fake({"--max-services", "0"});
  TempDir home;
  Target t = TestTarget(fake);
  auto p = NewAppRunnerProvider(t, FastOptions(TestEnv(home)));
  REQUIRE(p.ok());
  Said said;
  Agent a = TestAgent("support-bot", kImage);
  auto r = Applied(**p, MakeApply(t, Action::kCreate, a, {}, said), said);
  INFO(r.status.message());
  CHECK(r.status.code() == Code::kFailed);
  CHECK_FALSE(r.status.retryable());
  CHECK(r.status.message().find("ServiceQuotaExceededException") != std::string::npos);
  CHECK(r.status.message().find("You have reached the maximum number of services (0)") !=
        std::string::npos);
  CHECK(fake.Requests("CreateService").size() == 1);  // not retried
  said.CheckNoCanary();
  fake.CheckNoProblems();
}

TEST_CASE("aws provider: throttling and server errors are retried") {
  Fake fake;
  TempDir home;
  Target t = TestTarget(fake);
  auto p = NewAppRunnerProvider(t, FastOptions(TestEnv(home)));
  REQUIRE(p.ok());
  Said said;
  fake.Control(
      "POST", "/_fake/inject",
      {{"kind", "throttle"}, {"count", 2}, {"retryAfter", "0"}, {"operation", "ListServices"}});
  ObserveResponse o = Observed(**p, t, said);
  INFO(o.status.message());
  REQUIRE(o.status.ok());
  auto lists = fake.Requests("ListServices");
  REQUIRE(lists.size() == 3);
  CHECK(lists[0]["status"] == 429);
  CHECK(lists[1]["status"] == 429);
  CHECK(lists[2]["status"] == 200);

  fake.Control(
      "POST", "/_fake/inject",
      {{"kind", "error"}, {"count", 1}, {"retryAfter", "0"}, {"operation", "CreateService"}});
  Agent a = TestAgent("support-bot", kImage);
  auto c = Applied(**p, MakeApply(t, Action::kCreate, a, {}, said), said);
  INFO(c.status.message());
  REQUIRE(c.status.ok());
  auto creates = fake.Requests("CreateService");
  REQUIRE(creates.size() == 2);
  CHECK(creates[0]["status"] == 500);
  CHECK(creates[1]["status"] == 200);

  // Throttling that never ends: a retryable error after the last attempt.
  fake.Control(
      "POST", "/_fake/inject",
      {{"kind", "throttle"}, {"count", 50}, {"retryAfter", "0"}, {"operation", "ListServices"}});
  o = Observed(**p, t, said);
  CHECK(o.status.code() == Code::kUnavailable);
  CHECK(o.status.message().find("ThrottlingException") != std::string::npos);
  said.CheckNoCanary();
  fake.CheckNoProblems();
}

TEST_CASE("aws provider: a stop during a wait returns kCancelled promptly") {
  Fake fake({"--ready-after", "100000"});
  TempDir home;
  Target t = TestTarget(fake);
  AppRunnerOptions options = FastOptions(TestEnv(home));
  options.poll_interval = milliseconds(200);
  auto made = NewAppRunnerProvider(t, options);
  REQUIRE(made.ok());
  Provider& p = **made;
  Said said;

  SUBCASE("the request's stop token") {
    std::stop_source stop;
    Agent a = TestAgent("support-bot", kImage);
    ApplyChangeRequest r = MakeApply(t, Action::kCreate, a, {}, said);
    r.stop = stop.get_token();
    std::atomic<bool> waiting{false};
    r.waiting = [&waiting](bool w) { waiting = w; };
    ApplyChangeResponse resp;
    std::thread worker([&] { resp = Applied(p, r, said); });
    for (int i = 0; i < 200 && !waiting; ++i) std::this_thread::sleep_for(milliseconds(25));
    REQUIRE(waiting);
    auto asked = std::chrono::steady_clock::now();
    stop.request_stop();
    worker.join();
    auto took = std::chrono::steady_clock::now() - asked;
    CHECK(took < std::chrono::seconds(2));
    CHECK(resp.status.code() == Code::kCancelled);
    CHECK_FALSE(waiting);  // waiting(false) after the wait
  }
  SUBCASE("the provider's Stop") {
    Agent a = TestAgent("support-bot", kImage);
    ApplyChangeRequest r = MakeApply(t, Action::kCreate, a, {}, said);
    std::atomic<bool> waiting{false};
    r.waiting = [&waiting](bool w) { waiting = w; };
    ApplyChangeResponse resp;
    std::thread worker([&] { resp = Applied(p, r, said); });
    for (int i = 0; i < 200 && !waiting; ++i) std::this_thread::sleep_for(milliseconds(25));
    REQUIRE(waiting);
    auto asked = std::chrono::steady_clock::now();
    p.Stop();
    worker.join();
    CHECK(std::chrono::steady_clock::now() - asked < std::chrono::seconds(2));
    CHECK(resp.status.code() == Code::kCancelled);
    // Every later call ends at once too.
    CHECK(p.Observe({t}).status.code() == Code::kCancelled);
  }
  said.CheckNoCanary();
  fake.CheckNoProblems();
}

TEST_CASE("aws provider: malformed and hostile answers are clear errors, never a crash") {
  // A server that is not App Runner: each answer is one hostile case.
  std::string answer;
  std::mutex mu;
  reconcile::testing::LoopbackHttpServer server(
      [&](const reconcile::testing::SeenRequest& req) -> std::optional<std::string> {
        std::lock_guard<std::mutex> lock(mu);
        if (req.Header("X-Amz-Target") == "AppRunner.ListTagsForResource") {
          return reconcile::testing::LoopbackHttpServer::Json(
              200, R"({"Tags":[{"Key":"reconcile.dev/managed-by","Value":"reconcile"},)"
                   R"({"Key":"reconcile.dev/agent","Value":"support-bot"}]})");
        }
        return answer;
      });
  TempDir home;
  Target t;
  t.name = "cloud";
  t.provider = "aws";
  t.settings = {{"region", "us-east-1"}, {"endpoint", server.base()}};
  AppRunnerOptions options = FastOptions(TestEnv(home));
  options.http.max_attempts = 2;
  options.http.max_response_bytes = 1024 * 1024;
  auto p = NewAppRunnerProvider(t, options);
  REQUIRE(p.ok());
  using Server = reconcile::testing::LoopbackHttpServer;
  struct Row {
    std::string name;
    std::string answer;
    Code code;
    std::string says;
  };
  std::vector<Row> rows = {
      {"not JSON", Server::Json(200, "<html>hi</html>"), Code::kUnavailable, "ListServices"},
      {"no list", Server::Json(200, R"({"ServiceSummaryList": "x"})"), Code::kUnavailable,
       "ServiceSummaryList"},
      {"an AWS error with a long hostile message",
       Server::Json(400, R"({"__type":"com.amazon#AccessDeniedException","message":")" +
                             std::string(5000, 'A') + "\u0007" + kCanarySecret + R"("})"),
       Code::kFailed, "AccessDeniedException"},
      {"a body that is not an error", Server::Answer(403, "Forbidden\x01"), Code::kFailed,
       "HTTP 403"},
      {"a huge body", Server::Json(200, std::string(2 * 1024 * 1024, '[')), Code::kFailed, ""},
      {"deep nesting", Server::Json(200, std::string(100000, '[')), Code::kUnavailable, ""},
      {"services of the wrong types",
       Server::Json(200,
                    R"({"ServiceSummaryList":[1,"x",null,{"ServiceName":5,"ServiceArn":[]}]})"),
       Code::kOk, ""},
  };
  for (const Row& row : rows) {
    CAPTURE(row.name);
    {
      std::lock_guard<std::mutex> lock(mu);
      answer = row.answer;
    }
    ObserveResponse o = (*p)->Observe({t});
    INFO(o.status.message());
    CHECK(o.status.code() == row.code);
    CHECK(o.status.message().find(row.says) != std::string::npos);
    CHECK(o.status.message().size() < 2000);
    CHECK(o.status.message().find(kCanarySecret) == std::string::npos);
  }
  // DescribeService answering garbage while applying: an error, not a crash.
  {
    std::lock_guard<std::mutex> lock(mu);
    answer = Server::Json(
        200,
        R"({"ServiceSummaryList":[{"ServiceName":"support-bot","ServiceArn":"arn:aws:apprunner:us-east-1:123456789012:service/support-bot/x","Status":"RUNNING"}],"Service":"nope"})");
  }
  Said said;
  Agent a = TestAgent("support-bot", kImage);
  auto r = Applied(**p, MakeApply(t, Action::kUpdate, a, {}, said), said);
  CHECK_FALSE(r.status.ok());
  said.CheckNoCanary();
}

TEST_CASE("aws provider: container credentials from the Target's authEndpoint") {
  Fake fake({"--aws-token", "SessionTokenCanary-31c9", "--creds-token", "creds-auth-token"});
  TempDir home;
  Target t = TestTarget(fake);
  t.settings["authEndpoint"] = fake.url() + "/_creds/task";
  Environment env = {{"HOME", home.path().string()},
                     {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "creds-auth-token"}};
  auto p = NewAppRunnerProvider(t, FastOptions(env));
  REQUIRE(p.ok());
  Said said;
  ObserveResponse o = Observed(**p, t, said);
  INFO(o.status.message());
  CHECK(o.status.ok());
  auto lists = fake.Requests("ListServices");
  REQUIRE(lists.size() == 1);
  CHECK(lists[0]["status"] == 200);
  said.CheckNoCanary();
  for (const auto& l : said.lines) CHECK(l.find("SessionTokenCanary") == std::string::npos);
  fake.CheckNoProblems();
}

// Issue #11 item 2: an environment's service is "<environment>--<agent>",
// tagged with the environment; each Target observes and deletes only its own.
TEST_CASE("aws provider: environments are scoped, tagged and filtered") {
  Fake fake;
  TempDir home;
  Target plain_t = TestTarget(fake);
  Target dev_t = TestTarget(fake);
  dev_t.environment = "dev";
  auto plain = NewAppRunnerProvider(plain_t, FastOptions(TestEnv(home)));
  auto dev = NewAppRunnerProvider(dev_t, FastOptions(TestEnv(home)));
  REQUIRE(plain.ok());
  REQUIRE(dev.ok());
  Said said;
  Agent a = TestAgent("support-bot", kImage);

  ApplyChangeResponse d = Applied(**dev, MakeApply(dev_t, Action::kCreate, a, {}, said), said);
  REQUIRE_MESSAGE(d.status.ok(), d.status.message());
  REQUIRE(d.instances.size() == 1);
  CHECK(d.instances[0].name == "dev--support-bot");
  json state = fake.Control("GET", "/_fake/state");
  REQUIRE(state.contains(d.instances[0].id));
  json tags = json::object();
  for (const json& tag : state[d.instances[0].id]["Tags"]) {
    tags[tag["Key"].get<std::string>()] = tag["Value"];
  }
  CHECK(tags["reconcile.dev/environment"] == "dev");
  CHECK(tags["reconcile.dev/agent"] == "support-bot");

  CHECK(Observed(**plain, plain_t, said).instances.empty());
  ApplyChangeResponse p = Applied(**plain, MakeApply(plain_t, Action::kCreate, a, {}, said), said);
  REQUIRE_MESSAGE(p.status.ok(), p.status.message());
  CHECK(p.instances.at(0).name == "support-bot");
  ObserveResponse o = Observed(**dev, dev_t, said);
  REQUIRE(o.instances.size() == 1);
  CHECK(o.instances[0].agent == "support-bot");
  CHECK(o.instances[0].name == "dev--support-bot");

  // dev refuses to delete the plain tree's service, even when handed its arn.
  ApplyChangeResponse foreign = Applied(
      **dev, MakeApply(dev_t, Action::kDelete, a, {{p.instances[0].id, "support-bot"}}, said),
      said);
  CHECK(foreign.status.code() == Code::kConflict);
  ApplyChangeResponse gone = Applied(
      **dev, MakeApply(dev_t, Action::kDelete, a, {{d.instances[0].id, d.instances[0].name}}, said),
      said);
  REQUIRE_MESSAGE(gone.status.ok(), gone.status.message());
  CHECK(Observed(**dev, dev_t, said).instances.empty());
  CHECK(Observed(**plain, plain_t, said).instances.size() == 1);

  // validate_agent counts the scoped name against App Runner's 40.
  ValidateAgentRequest v;
  v.agent = std::string(36, 'a');
  v.target = "cloud";
  v.target_config = {{"region", "us-east-1"}};
  v.spec = NormalizedSpec(a, a.image);
  CHECK(Fields(ValidateAppRunnerAgent(v).diagnostics).empty());
  v.environment = "dev";  // "dev--" + 36 = 41
  CHECK(Fields(ValidateAppRunnerAgent(v).diagnostics) == std::vector<std::string>{"metadata.name"});
  CHECK(Messages(ValidateAppRunnerAgent(v).diagnostics).find("environment 'dev'") !=
        std::string::npos);
  fake.CheckNoProblems();
}

}  // namespace
}  // namespace reconcile::aws
