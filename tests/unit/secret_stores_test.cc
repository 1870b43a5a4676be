// Secret stores (issue #14): the {aws: ...} and {vault: ...} references'
// decoding and text form, the keyed fingerprints that make a changed value a
// changed spec, ResolveSecrets with stores, and the two clients
// (providers/secretstores) against tests/fakes/secretstores/*.py started as
// child processes (python3, loopback, ephemeral port, stopped by pid).
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "fakes/pass_world.h"
#include "fakes/temp_dir.h"
#include "http/http_client.h"
#include "reconcile/loader.h"
#include "reconcile/pass.h"
#include "reconcile/plan_format.h"
#include "reconcile/planner.h"
#include "reconcile/secrets.h"
#include "reconcile/spec.h"
#include "reconcile/state.h"
#include "secretstores/aws_secrets_manager.h"
#include "secretstores/vault_store.h"
#include "unit/engine/test_world.h"

namespace reconcile {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

bool Has(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// The value, or "<error: ...>" (shown by CHECK on a mismatch).
std::string Val(const Result<std::string>& r) {
  return r.ok() ? *r : "<error: " + r.status().ToString() + ">";
}

std::string All(const Diagnostics& diags) {
  std::string s;
  for (const auto& d : diags.items()) s += d.ToString() + "\n";
  return s;
}

Agent DecodeAgent(const std::string& secret_env, Diagnostics* out = nullptr) {
  DesiredState state;
  Diagnostics diags;
  DecodeFile("m.yaml", "",
             "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: a}\nspec:\n"
             "  image: x\n  target: t\n  port: 80\n  secretEnv:\n" +
                 secret_env,
             {}, state, diags);
  if (out) *out = diags;
  REQUIRE_MESSAGE((out != nullptr || !diags.HasErrors()), All(diags));
  return state.agents.empty() ? Agent{} : state.agents[0];
}

TEST_CASE("secret stores: aws and vault references decode to SecretRefs") {
  Agent a = DecodeAgent(
      "    A: {aws: {secretId: prod/db, key: password, versionStage: AWSCURRENT, region: "
      "eu-west-1}}\n"
      "    B: {aws: {secretId: 'arn:aws:secretsmanager:us-east-2:123456789012:secret:x-AbCdEf'}}\n"
      "    C: {vault: {path: secret/data/db, key: password, version: 3, mount: secret}}\n"
      "    D: {vault: {path: secret/db, key: password}}\n"
      "    E: {vault: {path: app/db, key: k, mount: kv/team}}\n"
      "    F: {vault: {path: secret/data/db, key: password}}\n");
  const SecretRef& A = a.secret_env.at("A");
  CHECK(A.source == SecretRef::Source::kAws);
  CHECK(A.name == "prod/db");
  CHECK(A.key == "password");
  CHECK(A.version_stage == "AWSCURRENT");
  CHECK(A.region == "eu-west-1");
  CHECK(SecretRefText(A) == "aws:prod/db?key=password&region=eu-west-1&versionStage=AWSCURRENT");
  CHECK(a.secret_env.at("B").key.empty());
  for (const char* n : {"C", "D", "F"}) {
    CAPTURE(n);
    const SecretRef& r = a.secret_env.at(n);
    CHECK(r.source == SecretRef::Source::kVault);
    CHECK(r.mount == "secret");
    CHECK(r.name == "db");
    CHECK(r.key == "password");
  }
  CHECK(a.secret_env.at("C").version == "3");
  CHECK(SecretRefText(a.secret_env.at("C")) == "vault:secret/db?key=password&version=3");
  CHECK(SecretRefText(a.secret_env.at("E")) == "vault:kv/team/app/db?key=k");
}

TEST_CASE("secret stores: reference text round-trips and refuses what it does not write") {
  std::vector<SecretRef> refs = {
      {SecretRef::Source::kFile, "db.pass"},
      {SecretRef::Source::kEnv, "RECONCILE_SECRET_X"},
      {SecretRef::Source::kAws, "prod/db+x=y@z"},
      {SecretRef::Source::kAws, "arn:aws:secretsmanager:eu-west-1:1:secret:a", "k",
       "0123456789abcdef0123456789abcdef", "", "eu-west-1"},
      {SecretRef::Source::kVault, "db", "password", "7", "", "", "secret"},
      {SecretRef::Source::kSops, "deploy/secrets/db.enc.yaml", "db.password"},
  };
  for (const SecretRef& r : refs) {
    CAPTURE(SecretRefText(r));
    auto back = ParseSecretRefText(SecretRefText(r));
    REQUIRE(back.has_value());
    CHECK(*back == r);
  }
  for (const char* bad :
       {"sops:x", "sops:x?version=1&key=k", "sops:?key=k", "aws:", "aws:x?key=", "aws:x?nope=1",
        "aws:x?key=a&key=b", "vault:db?key=k", "vault:/db?key=k", "aws:x?region=r&key=k"}) {
    CAPTURE(bad);
    CHECK_FALSE(ParseSecretRefText(bad).has_value());
  }
}

TEST_CASE("secret stores: strict loader errors at file:line:column with the field path") {
  struct Row {
    const char* name;
    std::string yaml;
    int column;
    std::string field;
    std::string message;
  };
  const std::vector<Row> rows = {
      {"aws without secretId", "    T: {aws: {key: k}}\n", 14, "spec.secretEnv.T.aws.secretId",
       "required field is missing"},
      {"aws unknown field", "    T: {aws: {secretId: a, stage: x}}\n", 28,
       "spec.secretEnv.T.aws.stage", "unknown field 'stage'"},
      {"aws secretId not a string", "    T: {aws: {secretId: [a]}}\n", 25,
       "spec.secretEnv.T.aws.secretId", "must be"},
      {"aws bad region", "    T: {aws: {secretId: a, region: 'eu west'}}\n", 36,
       "spec.secretEnv.T.aws.region", "an AWS region"},
      {"aws not a map", "    T: {aws: prod/db}\n", 14, "spec.secretEnv.T.aws", "map"},
      {"vault without key", "    T: {vault: {path: secret/db}}\n", 16, "spec.secretEnv.T.vault.key",
       "required field is missing"},
      {"vault version as a string", "    T: {vault: {path: secret/db, key: k, version: '3'}}\n", 51,
       "spec.secretEnv.T.vault.version", "must be an integer"},
      {"vault version zero", "    T: {vault: {path: secret/db, key: k, version: 0}}\n", 51,
       "spec.secretEnv.T.vault.version", "between 1"},
      {"vault path with ..", "    T: {vault: {path: secret/../x, key: k}}\n", 23,
       "spec.secretEnv.T.vault.path", "no '..' segments"},
      {"vault path without mount", "    T: {vault: {path: db, key: k}}\n", 23,
       "spec.secretEnv.T.vault.path", "names no mount"},
      {"two sources", "    T: {file: a, vault: {path: s/d, key: k}}\n", 8, "spec.secretEnv.T",
       "exactly one of 'file', 'env', 'aws', 'vault' or 'sops'"},
  };
  for (const Row& row : rows) {
    SUBCASE(row.name) {
      Diagnostics diags;
      DecodeAgent(row.yaml, &diags);
      REQUIRE_MESSAGE(diags.size() == 1, All(diags));
      const Diagnostic& d = diags.items()[0];
      CHECK_MESSAGE(d.file == "m.yaml", All(diags));
      CHECK_MESSAGE(d.line == 9, All(diags));
      CHECK_MESSAGE(d.column == row.column, All(diags));
      CHECK_MESSAGE(d.field == row.field, All(diags));
      CHECK_MESSAGE(Has(d.message, row.message), All(diags));
    }
  }
}

TEST_CASE("secret stores: a notifier's secret must be a file or env reference") {
  DesiredState state;
  Diagnostics diags;
  DecodeFile("n.yaml", "",
             "apiVersion: reconcile.dev/v1alpha1\nkind: Notifier\nmetadata: {name: n}\nspec:\n"
             "  type: slack\n  url: {vault: {path: secret/slack, key: url}}\n",
             {}, state, diags);
  REQUIRE_MESSAGE(diags.HasErrors(), All(diags));
  CHECK_MESSAGE(Has(All(diags), "n.yaml:6:"), All(diags));
  CHECK_MESSAGE(Has(All(diags), "{file: NAME} or {env: VAR} only"), All(diags));
}

TEST_CASE("secret stores: fingerprints are keyed, and change the spec hash only when set") {
  const std::string k1(32, 'a'), k2(32, 'b');
  CHECK(SecretDigest(k1, "hunter2") == SecretDigest(k1, "hunter2"));
  CHECK(SecretDigest(k1, "hunter2") != SecretDigest(k1, "hunter3"));
  CHECK(SecretDigest(k1, "hunter2") != SecretDigest(k2, "hunter2"));
  CHECK(SecretDigest(k1, "x").starts_with("hmac-sha256:"));
  CHECK(SecretDigest(k1, "x").size() == std::string("hmac-sha256:").size() + 64);
  // Not a plain hash of the value (a dictionary attack on state would find it).
  CHECK_FALSE(Has(SecretDigest(k1, "hunter2"), Sha256Hex("hunter2")));

  Agent a = DecodeAgent("    DB: {vault: {path: secret/db, key: password}}\n");
  a.secret_files["tls.key"] =
      SecretFile{{SecretRef::Source::kAws, "tls"}, "/run/secrets/tls.key", 0400};
  const json plain = NormalizedSpec(a, a.image);
  CHECK_FALSE(plain.contains("secretDigests"));
  a.secret_digests = {{"DB", SecretDigest(k1, "v1")},
                      {"secretFiles.tls.key", SecretDigest(k1, "pem")}};
  const json with = NormalizedSpec(a, a.image);
  CHECK(with["secretDigests"]["secretEnv"]["DB"] == SecretDigest(k1, "v1"));
  CHECK(with["secretDigests"]["secretFiles"]["tls.key"] == SecretDigest(k1, "pem"));
  CHECK(with["secretEnv"]["DB"] == "vault:secret/db?key=password");
  CHECK(with["secretFiles"]["tls.key"]["ref"] == "aws:tls");
  CHECK(SpecHash(with) != SpecHash(plain));
  // Rollback re-applies recorded specs: the digests come back too.
  auto back = AgentFromSpec("a", with);
  REQUIRE_MESSAGE(back.ok(), back.status().ToString());
  CHECK(back->secret_digests == a.secret_digests);
  CHECK(NormalizedSpec(*back, back->image) == with);
}

TEST_CASE("secret stores: the fingerprint key file is made once, 0600, and checked") {
  testing::TempDir dir;
  const auto file = dir.path() / "keys" / "secret-digest.key";
  auto k = DigestKey(file);
  REQUIRE_MESSAGE(k.ok(), k.status().ToString());
  CHECK(k->size() == 32);
  struct stat st {};
  REQUIRE(::stat(file.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  REQUIRE(::stat(file.parent_path().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  auto again = DigestKey(file);
  REQUIRE(again.ok());
  CHECK(*again == *k);
  dir.Write("bad.key", "not-hex-CANARY\n");
  auto bad = DigestKey(dir.path() / "bad.key");
  REQUIRE_FALSE(bad.ok());
  CHECK(Has(bad.status().message(), "not 64 hex digits"));
  CHECK_FALSE(Has(bad.status().message(), "CANARY"));
}

TEST_CASE("secret stores: the plan names a changed secret without any digest or value") {
  Plan plan;
  Change c;
  c.address = "agent.web";
  c.name = "web";
  c.action = Action::kReplace;
  FieldChange f;
  f.path = "secretDigests.secretEnv.DB_PASSWORD";
  f.before = "hmac-sha256:" + std::string(64, '1');
  f.after = "hmac-sha256:" + std::string(64, '2');
  f.forces_replace = true;
  c.fields.push_back(f);
  plan.changes.push_back(c);
  PlanFormatOptions o;
  o.color = false;
  const std::string text = FormatPlan(plan, o);
  CHECK_MESSAGE(Has(text, "secretEnv DB_PASSWORD changed (value not shown)"), text);
  CHECK_MESSAGE(!Has(text, "hmac-sha256"), text);
}

class FixedStore : public SecretStore {
 public:
  explicit FixedStore(Result<std::string> answer) : answer_(std::move(answer)) {}
  Result<std::string> Get(const SecretRef& ref, std::stop_token) override {
    asked.push_back(SecretRefText(ref));
    return answer_;
  }
  std::vector<std::string> asked;

 private:
  Result<std::string> answer_;
};

TEST_CASE("secret stores: ResolveSecrets asks the store of each source, keeps its code") {
  SecretRef aws{SecretRef::Source::kAws, "prod/db"};
  SecretRef vault{SecretRef::Source::kVault, "db", "k", "", "", "", "secret"};
  FixedStore ok(std::string("v4lue"));
  FixedStore sealed(
      Status::Unavailable("vault:secret/db?key=k: Vault: Vault is sealed (HTTP 503)"));
  auto got = ResolveSecrets({{"A", aws}}, "", {}, {{SecretRef::Source::kAws, &ok}});
  REQUIRE_MESSAGE(got.ok(), got.status().ToString());
  CHECK(got->at("A") == "v4lue");
  CHECK(ok.asked == std::vector<std::string>{"aws:prod/db"});

  auto none = ResolveSecrets({{"A", aws}, {"B", vault}}, "", {}, {});
  REQUIRE_FALSE(none.ok());
  CHECK(none.status().code() == Code::kInvalid);
  CHECK(Has(none.status().message(), "2 secrets cannot be read"));
  CHECK(Has(none.status().message(), "A: aws:prod/db: AWS Secrets Manager is not configured"));
  CHECK(Has(none.status().message(), "B: vault:secret/db?key=k: Vault is not configured"));

  auto down = ResolveSecrets({{"B", vault}}, "", {}, {{SecretRef::Source::kVault, &sealed}});
  REQUIRE_FALSE(down.ok());
  CHECK(down.status().code() == Code::kUnavailable);
  CHECK(
      Has(down.status().message(), "B: vault:secret/db?key=k: Vault: Vault is sealed (HTTP 503)"));
}

// A store whose value the test changes, counting the calls.
class MutableStore : public SecretStore {
 public:
  Result<std::string> Get(const SecretRef&, std::stop_token) override {
    ++calls;
    return answer;
  }
  Result<std::string> answer = std::string("CANARY-pass-1");
  int calls = 0;
};

TEST_CASE("secret stores: a pass fingerprints values; a new value redeploys, then no changes") {
  testing::PassWorld w;
  Agent a = testing::MakeAgent("a");
  a.secret_env["DB"] = {SecretRef::Source::kAws, "prod/db", "password"};
  Agent b = testing::MakeAgent("b");  // no secrets: never redeployed
  w.source.Set("c1", testing::MakeDesired({a, b}));
  w.source.SetContentDigest("c1", "tree-222222222222");
  MutableStore store;
  ReconcilerDeps deps = w.Deps();
  deps.secret_stores = {{SecretRef::Source::kAws, &store}};
  deps.secret_digest_key_file = w.tmp.path() / "keys" / "secret-digest.key";
  auto run = [&] {
    PassRequest r;
    r.kind = PassRequest::Kind::kApply;
    r.revision = "c1";
    return RunPass(deps, r);
  };
  PassReport first = run();
  REQUIRE_MESSAGE(first.status.ok(), first.status.message());
  CHECK(first.changes == 2);
  CHECK(w.provider.secrets_seen("agent.a").at("DB") == "CANARY-pass-1");
  const std::string spec1 = first.state->resources.at("agent.a").spec.text();
  CHECK(Has(spec1, "secretDigests"));
  CHECK_FALSE(Has(ToJson(*first.state).dump(), "CANARY"));
  // Secrets read from a store: the content digest is not a reason to skip.
  CHECK(first.state->content_digest.empty());

  PassReport same = run();
  REQUIRE_MESSAGE(same.status.ok(), same.status.message());
  CHECK_FALSE(same.unchanged);
  CHECK(same.changes == 0);

  store.answer = std::string("CANARY-pass-2");
  const size_t calls = w.provider.calls().size();
  PassReport changed = run();
  REQUIRE_MESSAGE(changed.status.ok(), changed.status.message());
  CHECK(changed.changes == 1);  // a only
  CHECK(w.provider.calls().size() > calls);
  for (size_t i = calls; i < w.provider.calls().size(); ++i) {
    CHECK_MESSAGE(Has(w.provider.calls()[i], "agent.a"), w.provider.calls()[i]);
  }
  CHECK(w.provider.secrets_seen("agent.a").at("DB") == "CANARY-pass-2");
  CHECK(changed.state->resources.at("agent.a").spec.text() != spec1);
  CHECK_FALSE(Has(ToJson(*changed.state).dump(), "CANARY"));
  CHECK(run().changes == 0);

  store.answer = Status::Invalid("aws:prod/db?key=password: permission denied (HTTP 400)");
  const size_t before = w.provider.calls().size();
  PassReport denied = run();
  CHECK_FALSE(denied.status.ok());
  CHECK_MESSAGE(Has(denied.status.message(),
                    "agent 'a': 1 secret cannot be read: DB: "
                    "aws:prod/db?key=password: permission denied"),
                denied.status.message());
  CHECK(w.provider.calls().size() == before);  // nothing applied
}

// One of tests/fakes/secretstores/*.py as a child process, stopped by its pid.
class PyFake {
 public:
  PyFake(const std::string& script, std::vector<std::string> extra) {
    const std::string port_file = tmp_.path().string() + "/port";
    std::vector<std::string> args = {
        "python3", std::string(RECONCILE_SOURCE_DIR) + "/tests/fakes/secretstores/" + script,
        "--port-file", port_file};
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
    REQUIRE_MESSAGE(std::filesystem::exists(port_file),
                    (std::string("the fake did not start: ") + script));
    std::ifstream in(port_file);
    int port = 0;
    in >> port;
    REQUIRE(port > 0);
    base_ = "http://127.0.0.1:" + std::to_string(port);
    http::ClientOptions o;
    o.max_attempts = 1;
    control_ = http::MakeCurlClient(o);
  }
  ~PyFake() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  PyFake(const PyFake&) = delete;
  PyFake& operator=(const PyFake&) = delete;

  const std::string& base() const { return base_; }
  const testing::TempDir& tmp() const { return tmp_; }
  json Control(const std::string& method, const std::string& path, const json& body = {}) {
    http::Request req{method, base_ + "/_fake/" + path, {}, body.is_null() ? "" : body.dump()};
    auto r = control_->Send(req);
    REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    REQUIRE_MESSAGE(r->status == 200, r->body);
    return json::parse(r->body);
  }

 private:
  testing::TempDir tmp_;
  pid_t pid_ = -1;
  std::string base_;
  std::unique_ptr<http::Client> control_;
};

TEST_CASE("secret stores: AWS Secrets Manager client against the botocore-checked fake") {
  const std::string ak = "AKIDSECRETSTORETEST", sk = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  PyFake fake("secretsmanager_fake.py", {"--key-id", ak, "--secret", sk, "--region", "eu-west-1"});
  fake.Control("POST", "put",
               {{"name", "prod/db"}, {"value", R"({"password":"CANARY-aws-1","port":5432})"}});
  fake.Control("POST", "put", {{"name", "plain"}, {"value", "just-a-string"}});
  secretstores::AwsSecretsManagerOptions o;
  o.environment = {{"AWS_ACCESS_KEY_ID", ak},
                   {"AWS_SECRET_ACCESS_KEY", sk},
                   {"AWS_REGION", "eu-west-1"},
                   {"AWS_ENDPOINT_URL_SECRETS_MANAGER", fake.base()},
                   {"HOME", fake.tmp().path().string()}};
  auto store = secretstores::NewAwsSecretsManagerStore(o);
  SecretRef db{SecretRef::Source::kAws, "prod/db", "password"};
  auto v = store->Get(db, {});
  REQUIRE_MESSAGE(v.ok(), v.status().ToString());
  CHECK(*v == "CANARY-aws-1");
  SecretRef port = db;
  port.key = "port";
  CHECK(Val(store->Get(port, {})) == "5432");
  CHECK(Val(store->Get({SecretRef::Source::kAws, "plain"}, {})) == "just-a-string");

  fake.Control("POST", "put", {{"name", "prod/db"}, {"value", R"({"password":"CANARY-aws-2"})"}});
  CHECK(Val(store->Get(db, {})) == "CANARY-aws-2");
  SecretRef previous = db;
  previous.version_stage = "AWSPREVIOUS";
  CHECK(Val(store->Get(previous, {})) == "CANARY-aws-1");

  struct Row {
    const char* name;
    SecretRef ref;
    std::string want;
  };
  fake.Control("POST", "put", {{"name", "locked"}, {"value", "CANARY-locked"}});
  fake.Control("POST", "deny", {{"name", "locked"}});
  SecretRef nokey = db;
  nokey.key = "user";
  SecretRef stage = db;
  stage.version_stage = "NOPE";
  const Row rows[] = {
      {"missing secret",
       {SecretRef::Source::kAws, "prod/none"},
       "aws:prod/none: AWS Secrets Manager GetSecretValue: no such secret or version (HTTP 400 "
       "ResourceNotFoundException)"},
      {"missing stage", stage, "no such secret or version (HTTP 400 ResourceNotFoundException)"},
      {"permission denied",
       {SecretRef::Source::kAws, "locked"},
       "aws:locked: AWS Secrets Manager GetSecretValue: permission denied (HTTP 400 "
       "AccessDeniedException)"},
      {"missing key", nokey, "SecretString has no key 'user' (its keys: password)"},
  };
  for (const Row& row : rows) {
    SUBCASE(row.name) {
      auto r = store->Get(row.ref, {});
      REQUIRE_FALSE(r.ok());
      CHECK(r.status().code() == Code::kInvalid);
      CHECK_MESSAGE(Has(r.status().message(), row.want), r.status().message());
      CHECK_FALSE(Has(r.status().message(), "CANARY"));
      CHECK_FALSE(Has(r.status().message(), sk));
    }
  }
  SUBCASE("a wrong secret key is refused by botocore's signature check") {
    secretstores::AwsSecretsManagerOptions wrong = o;
    wrong.environment["AWS_SECRET_ACCESS_KEY"] = "not-the-key";
    auto r = secretstores::NewAwsSecretsManagerStore(wrong)->Get(db, {});
    REQUIRE_FALSE(r.ok());
    CHECK_MESSAGE(Has(r.status().message(), "InvalidSignatureException"), r.status().message());
    CHECK_FALSE(Has(r.status().message(), "not-the-key"));
  }
  // Every request the client sent passed botocore's model and signer (the
  // refused signature above is the one expected problem).
  json problems = fake.Control("GET", "problems");
  for (const json& p : problems) {
    CHECK_MESSAGE(Has(p.dump(), "InvalidSignatureException"), p.dump());
  }
}

TEST_CASE("secret stores: Vault KV v2 client, token and AppRole, against the fake") {
  PyFake fake("vault_fake.py", {});
  fake.Control("POST", "put", {{"path", "secret/db"}, {"data", {{"password", "CANARY-v1"}}}});
  fake.Control("POST", "put", {{"path", "secret/db"}, {"data", {{"password", "CANARY-v2"}}}});
  fake.Control("POST", "put", {{"path", "secret/other"}, {"data", {{"password", "x"}}}});
  fake.Control("POST", "token",
               {{"token", "hvs.CANARYTOKEN"}, {"paths", {"secret/db", "secret/none"}}});
  SecretRef latest{SecretRef::Source::kVault, "db", "password", "", "", "", "secret"};
  SecretRef v1 = latest;
  v1.version = "1";

  SUBCASE("token") {
    secretstores::VaultOptions o;
    o.address = fake.base();
    o.token = "hvs.CANARYTOKEN";
    auto store = secretstores::NewVaultStore(o);
    CHECK(Val(store->Get(latest, {})) == "CANARY-v2");
    CHECK(Val(store->Get(v1, {})) == "CANARY-v1");

    fake.Control("POST", "delete", {{"path", "secret/db"}, {"version", 1}});
    fake.Control("POST", "put", {{"path", "secret/db"}, {"data", {{"password", "CANARY-v3"}}}});
    fake.Control("POST", "destroy", {{"path", "secret/db"}, {"version", 2}});
    SecretRef v2 = latest, v9 = latest, other = latest, nokey = latest, none = latest;
    v2.version = "2";
    v9.version = "9";
    other.name = "other";
    nokey.key = "user";
    none.name = "none";
    struct Row {
      const char* name;
      SecretRef ref;
      Code code;
      std::string want;
    };
    const Row rows[] = {
        {"deleted version", v1, Code::kInvalid,
         "vault:secret/db?key=password&version=1: Vault: version 1 of secret/db was deleted at "},
        {"destroyed version", v2, Code::kInvalid, "version 2 of secret/db was destroyed"},
        {"missing version", v9, Code::kInvalid,
         "no secret secret/db with version 9 (is secret a KV version 2 mount?) (GET "
         "/v1/secret/data/db?version=9: HTTP 404)"},
        {"missing path", none, Code::kInvalid, "no secret secret/none"},
        {"permission denied", other, Code::kInvalid,
         "vault:secret/other?key=password: Vault: permission denied: the token may not read this "
         "path (GET /v1/secret/data/other: HTTP 403: permission denied)"},
        {"missing key", nokey, Code::kInvalid, "secret/db has no key 'user' (its keys: password)"},
    };
    for (const Row& row : rows) {
      CAPTURE(row.name);
      auto r = store->Get(row.ref, {});
      REQUIRE_FALSE(r.ok());
      CHECK(r.status().code() == row.code);
      CHECK_MESSAGE(Has(r.status().message(), row.want), r.status().message());
      CHECK_FALSE(Has(r.status().message(), "CANARY"));
    }
    CHECK(Val(store->Get(latest, {})) == "CANARY-v3");
    fake.Control("POST", "seal", {{"sealed", true}});
    auto sealed = store->Get(latest, {});
    REQUIRE_FALSE(sealed.ok());
    CHECK(sealed.status().code() == Code::kUnavailable);
    CHECK_MESSAGE(Has(sealed.status().message(), "Vault is sealed or unavailable"),
                  sealed.status().message());
    CHECK_MESSAGE(Has(sealed.status().message(), "HTTP 503"), sealed.status().message());
  }

  SUBCASE("token file, and no token at all") {
    fake.tmp().Write("token", "hvs.CANARYTOKEN\n");
    secretstores::VaultOptions o;
    o.address = fake.base();
    o.token_file = (fake.tmp().path() / "token").string();
    CHECK(Val(secretstores::NewVaultStore(o)->Get(latest, {})) == "CANARY-v2");
    o.token_file = (fake.tmp().path() / "missing").string();
    auto r = secretstores::NewVaultStore(o)->Get(latest, {});
    REQUIRE_FALSE(r.ok());
    CHECK(Has(r.status().message(), "token file"));
    CHECK(Has(r.status().message(), "cannot be read"));
  }

  SUBCASE("AppRole: login, re-login after the token is revoked, bad secret_id") {
    fake.Control("POST", "approle",
                 {{"role_id", "role-1"},
                  {"secret_id", "CANARY-secret-id"},
                  {"paths", {"secret/db"}},
                  {"ttl", 3600}});
    fake.tmp().Write("role_id", "role-1\n");
    fake.tmp().Write("secret_id", "CANARY-secret-id\n");
    secretstores::VaultOptions o;
    o.address = fake.base();
    o.role_id_file = (fake.tmp().path() / "role_id").string();
    o.secret_id_file = (fake.tmp().path() / "secret_id").string();
    auto store = secretstores::NewVaultStore(o);
    CHECK(Val(store->Get(latest, {})) == "CANARY-v2");
    fake.Control("POST", "revoke", {{"all", true}});
    CHECK(Val(store->Get(latest, {})) == "CANARY-v2");
    int logins = 0;
    for (const json& e : fake.Control("GET", "log")) logins += e["auth"] == "approle";
    CHECK(logins == 2);

    fake.tmp().Write("secret_id", "wrong\n");
    fake.Control("POST", "revoke", {{"all", true}});
    auto r = store->Get(latest, {});
    REQUIRE_FALSE(r.ok());
    CHECK_MESSAGE(Has(r.status().message(),
                      "AppRole login (POST /v1/auth/approle/login): refused "
                      "(HTTP 400: invalid role or secret ID)"),
                  r.status().message());
    CHECK_FALSE(Has(r.status().message(), "wrong"));
  }
  CHECK(fake.Control("GET", "problems").empty());
}

}  // namespace
}  // namespace reconcile
