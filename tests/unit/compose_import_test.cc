// `reconcile import compose` (reconcile/compose_import.h): interpolation and
// .env, the mapping of each compose key, every refused key with its
// position, secrets turned into references (a canary value never reaches a
// document), and the documents of the real awesome-compose files decoding
// with this build's loader.
#include "reconcile/compose_import.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <doctest/doctest.h>

#include "reconcile/json_schemas.h"
#include "reconcile/loader.h"
#include "reconcile/spec.h"
#include "unit/engine/test_world.h"

namespace reconcile {
namespace {

namespace fs = std::filesystem;

const std::string kCorpus = RECONCILE_SOURCE_DIR "/tests/testdata/compose/awesome-compose";

ComposeImportInput Input(const std::string& content) {
  ComposeImportInput in;
  in.file = "compose.yaml";
  in.content = content;
  in.compose_dir = "/srv/app";
  in.out_dir = "/srv/app/deploy";
  in.project = "app";
  in.agent_fields = AllComposeAgentFields();
  return in;
}

using testing::All;

const ComposeDocument* Doc(const ComposeImportResult& r, const std::string& file) {
  for (const auto& d : r.documents) {
    if (d.file_name == file) return &d;
  }
  return nullptr;
}

// The decoded Agent of one imported document (this build's loader).
Agent DecodeAgent(const ComposeDocument& d, std::vector<std::string> allow_bind = {}) {
  LoadLimits limits;
  limits.allowed_bind_paths = std::move(allow_bind);
  DesiredState state;
  Diagnostics diags;
  DecodeFile(d.file_name, "", d.text, limits, state, diags);
  INFO(d.text);
  REQUIRE_MESSAGE(!diags.HasErrors(), All(diags));
  REQUIRE(state.agents.size() == 1);
  return state.agents[0];
}

const Diagnostic* Find(const Diagnostics& diags, const std::string& field) {
  for (const auto& d : diags.items()) {
    if (d.field == field) return &d;
  }
  return nullptr;
}

std::string ReadText(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST_CASE("compose interpolation: every form, as Compose reads it") {
  const std::map<std::string, std::string> env = {{"A", "a"}, {"EMPTY", ""}, {"B", "b"}};
  struct Row {
    const char* text;
    const char* want;  // nullptr: an error
  };
  const Row rows[] = {
      {"plain", "plain"},
      {"$$A and $$", "$A and $"},
      {"$A-${B}", "a-b"},
      {"${A:-x}", "a"},
      {"${EMPTY:-x}", "x"},
      {"${EMPTY-x}", ""},
      {"${UNSET-x}", "x"},
      {"${UNSET:-${B}/y}", "b/y"},
      {"${A:+alt}", "alt"},
      {"${EMPTY:+alt}", ""},
      {"${EMPTY+alt}", "alt"},
      {"${A:?need A}", "a"},
      {"${UNSET:?need it}", nullptr},
      {"${EMPTY:?need it}", nullptr},
      {"${EMPTY?fine}", ""},
      {"${A", nullptr},
      {"${}", nullptr},
      {"$ alone", nullptr},
      {"price: 5$", "price: 5$"},
  };
  for (const Row& row : rows) {
    SUBCASE(row.text) {
      std::string error;
      std::vector<std::string> unset;
      auto got = InterpolateCompose(row.text, env, error, unset);
      if (row.want) {
        REQUIRE_MESSAGE(got.has_value(), error);
        CHECK(*got == row.want);
      } else {
        CHECK_FALSE(got.has_value());
        CHECK_FALSE(error.empty());
      }
    }
  }
  std::string error;
  std::vector<std::string> unset;
  CHECK(InterpolateCompose("${UNSET}/$OTHER", env, error, unset) == "/");
  CHECK(unset == std::vector<std::string>{"UNSET", "OTHER"});
  InterpolateCompose("${UNSET:?the database password}", env, error, unset);
  CHECK(error == "required variable UNSET is missing a value: the database password");
}

TEST_CASE(".env: quotes, comments, export, and bad lines at their line") {
  Diagnostics diags;
  auto env = ParseDotEnv(".env",
                         "# comment\n\nA=1\nexport B = two words  # note\nC='single # kept'\n"
                         "D=\"line\\nbreak\"\nnot a line\nE=\"open\n",
                         diags);
  CHECK(env.at("A") == "1");
  CHECK(env.at("B") == "two words");
  CHECK(env.at("C") == "single # kept");
  CHECK(env.at("D") == "line\nbreak");
  CHECK_FALSE(env.count("E"));
  REQUIRE(diags.size() == 2);
  CHECK(diags.items()[0].line == 7);
  CHECK(diags.items()[1].line == 8);
  CHECK(diags.items()[1].message == "unterminated quote");
}

TEST_CASE("import: .env and the shell's variables, the shell winning") {
  auto in = Input(
      "services:\n  web:\n    image: \"acme/web:${TAG}\"\n    environment:\n"
      "      MODE: ${MODE:-dev}\n      REGION: $REGION\n");
  in.dotenv_file = ".env";
  in.dotenv_content = "TAG=1.0\nMODE=staging\nREGION=eu\n";
  in.environment = {{"TAG", "2.0"}};
  in.agent_fields = AgentFieldsFromSchema(SchemaFor("Agent").value_or(""));
  auto r = ImportCompose(in);
  REQUIRE_MESSAGE(!r.diagnostics.HasErrors(), All(r.diagnostics));
  const ComposeDocument* d = Doc(r, "agent-web.yaml");
  REQUIRE(d);
  Agent a = DecodeAgent(*d);
  CHECK(a.image == "acme/web:2.0");
  CHECK(a.env.at("MODE") == "staging");
  CHECK(a.env.at("REGION") == "eu");
}

TEST_CASE("import: an unset variable is a warning, a required one an error at its value") {
  auto r = ImportCompose(Input("services:\n  web:\n    image: acme/web:${TAG}\n"));
  REQUIRE_FALSE(r.diagnostics.HasErrors());
  const Diagnostic* unset = Find(r.diagnostics, "");
  REQUIRE(unset);
  CHECK(unset->severity == Severity::kWarning);
  CHECK(unset->line == 3);
  CHECK(unset->message.find("variable TAG is not set") == 0);

  r = ImportCompose(Input("services:\n  web:\n    image: acme/web:${TAG:?set TAG}\n"));
  REQUIRE(r.diagnostics.HasErrors());
  CHECK(r.documents.empty());
  const Diagnostic* required = Find(r.diagnostics, "");
  REQUIRE(required);
  CHECK(required->ToString() ==
        "compose.yaml:3:12: error: required variable TAG is missing a value: set TAG");
}

TEST_CASE("import: the fields of one service, mapped") {
  auto r = ImportCompose(Input(R"(version: "3.8"
services:
  db:
    image: postgres:16
    command: postgres -c 'max_connections=200'
    entrypoint: ["docker-entrypoint.sh"]
    environment:
      - POSTGRES_DB=app
    ports:
      - "5432:5432"
      - "127.0.0.1:9187:9187"
      - "5353/udp"
    expose:
      - 5433
    volumes:
      - db-data:/var/lib/postgresql/data
      - ./conf:/etc/postgresql:ro
      - /run/anon
      - type: tmpfs
        target: /tmp
        tmpfs: {size: 64m}
    restart: on-failure:3
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U app"]
      interval: 1m30s
      timeout: 1.5s
      retries: 4
      start_period: 20s
    deploy:
      resources:
        limits: {cpus: "0.5", memory: 1.5G}
    user: "999:999"
    cap_add: [NET_ADMIN]
    cap_drop: [CAP_MKNOD]
    read_only: true
    stop_signal: SIGINT
    stop_grace_period: 1m
    hostname: db1
    labels: {team: data}
    container_name: pg
  api:
    image: acme/api:1
    depends_on:
      db: {condition: service_healthy}
volumes:
  db-data:
)"));
  REQUIRE_MESSAGE(!r.diagnostics.HasErrors(), All(r.diagnostics));
  const ComposeDocument* d = Doc(r, "agent-db.yaml");
  REQUIRE(d);
  const std::string& t = d->text;
  INFO(t);
  CHECK(t.find("  port: 5432\n  hostPort: 5432\n") != std::string::npos);
  CHECK(t.find("containerPort: 9187\n      hostIP: \"127.0.0.1\"\n      hostPort: 9187") !=
        std::string::npos);
  CHECK(t.find("containerPort: 5353\n      protocol: \"udp\"") != std::string::npos);
  CHECK(t.find("containerPort: 5433\n      publish: false") != std::string::npos);
  CHECK(t.find("  command: [\"docker-entrypoint.sh\"]") != std::string::npos);
  CHECK(t.find("  args: [\"postgres\", \"-c\", \"max_connections=200\"]") != std::string::npos);
  CHECK(t.find("source: \"app_db-data\"") != std::string::npos);
  CHECK(t.find(
            "source: \"/srv/app/conf\"\n      target: \"/etc/postgresql\"\n      readOnly: true") !=
        std::string::npos);
  CHECK(t.find("source: \"app-db-anon-1\"\n      reclaim: \"delete\"") != std::string::npos);
  CHECK(t.find("type: \"tmpfs\"\n      target: \"/tmp\"\n      size: \"64Mi\"") !=
        std::string::npos);
  CHECK(t.find("  restart: \"on-failure:3\"") != std::string::npos);
  CHECK(t.find("exec: [\"/bin/sh\", \"-c\", \"pg_isready -U app\"]\n    interval: \"90s\"\n"
               "    timeout: \"1500ms\"\n    retries: 4\n    startPeriod: \"20s\"") !=
        std::string::npos);
  CHECK(t.find("resources:\n    cpu: \"0.5\"\n    memory: \"1536Mi\"") != std::string::npos);
  CHECK(t.find("  user: \"999:999\"") != std::string::npos);
  CHECK(t.find("  capAdd: [\"NET_ADMIN\"]\n  capDrop: [\"MKNOD\"]") != std::string::npos);
  CHECK(t.find("  readOnlyRootFilesystem: true") != std::string::npos);
  CHECK(t.find("  stopSignal: \"SIGINT\"\n  stopGracePeriod: \"1m\"") != std::string::npos);
  CHECK(t.find("  hostname: \"db1\"") != std::string::npos);
  CHECK(t.find("  labels:\n    team: \"data\"") != std::string::npos);
  CHECK(t.find("  networks: [\"app_default\"]") != std::string::npos);
  CHECK(r.bind_paths == std::vector<std::string>{"/srv/app/conf"});
  // container_name is reported, not honoured; the anonymous volume too.
  const Diagnostic* cn = Find(r.diagnostics, "services.db.container_name");
  REQUIRE(cn);
  CHECK(cn->severity == Severity::kWarning);
  CHECK(cn->line == 40);
  CHECK(cn->column == 21);

  const ComposeDocument* api = Doc(r, "agent-api.yaml");
  REQUIRE(api);
  CHECK(api->text.find("  dependsOn: [\"db\"]") != std::string::npos);
  REQUIRE(Doc(r, "target-local.yaml"));
  CHECK(Doc(r, "target-local.yaml")->text.find("publishAddress: \"0.0.0.0\"") != std::string::npos);
  CHECK_FALSE(Doc(r, "registry-images.yaml"));
}

TEST_CASE("import: a prefix names agents; the service name stays a DNS alias") {
  auto in = Input(
      "services:\n  db:\n    image: acme/db:1\n    networks:\n      back:\n"
      "        aliases: [database]\nnetworks:\n  back: {}\n");
  in.agent_prefix = "t1-";
  auto r = ImportCompose(in);
  REQUIRE_MESSAGE(!r.diagnostics.HasErrors(), All(r.diagnostics));
  const ComposeDocument* d = Doc(r, "agent-t1-db.yaml");
  REQUIRE(d);
  CHECK(d->text.find("- name: \"app_back\"\n      aliases: [\"db\", \"database\"]") !=
        std::string::npos);
}

TEST_CASE("import: build gives a Registry and a context relative to the output folder") {
  auto r =
      ImportCompose(Input("services:\n  web:\n    build:\n      context: ./deploy/web\n      "
                          "dockerfile: Dockerfile.prod\n"
                          "      args: [MODE=prod]\n      target: prod\n    image: acme/web\n"));
  REQUIRE_MESSAGE(!r.diagnostics.HasErrors(), All(r.diagnostics));
  const ComposeDocument* d = Doc(r, "agent-web.yaml");
  REQUIRE(d);
  CHECK(d->text.find("build:\n    context: \"web\"\n    dockerfile: \"Dockerfile.prod\"\n"
                     "    args:\n      MODE: \"prod\"\n  registry: \"images\"") !=
        std::string::npos);
  REQUIRE(Doc(r, "registry-images.yaml"));
  CHECK(Find(r.diagnostics, "services.web.build.target"));
  CHECK(Find(r.diagnostics, "services.web.image"));
  // A context outside the output folder is said, not hidden.
  r = ImportCompose(Input("services:\n  web:\n    build: ./web\n"));
  const Diagnostic* w = Find(r.diagnostics, "services.web.build");
  REQUIRE(w);
  CHECK(w->severity == Severity::kWarning);
  CHECK(w->message.find("outside the output folder") != std::string::npos);
}

TEST_CASE("import: refused keys, each at its position; nothing is produced") {
  struct Row {
    const char* name;
    const char* yaml;
    const char* field;
    int line, column;
  };
  const Row rows[] = {
      {"network_mode", "services:\n  a:\n    image: x\n    network_mode: host\n",
       "services.a.network_mode", 4, 19},
      {"privileged", "services:\n  a:\n    image: x\n    privileged: true\n",
       "services.a.privileged", 4, 5},
      {"unknown key", "services:\n  a:\n    image: x\n    colour: red\n", "services.a.colour", 4,
       5},
      {"fixed address",
       "services:\n  a:\n    image: x\n    networks:\n      n:\n        ipv4_address: 10.0.0.2\n"
       "networks:\n  n: {}\n",
       "services.a.networks.n.ipv4_address", 6, 9},
      {"external volume", "services:\n  a:\n    image: x\nvolumes:\n  data:\n    external: true\n",
       "volumes.data.external", 6, 5},
      {"undeclared volume", "services:\n  a:\n    image: x\n    volumes: [data:/data]\n",
       "services.a.volumes", 4, 15},
      {"missing dependency", "services:\n  a:\n    image: x\n    depends_on: [b]\n",
       "services.a.depends_on", 4, 18},
      {"one-shot dependency",
       "services:\n  a:\n    image: x\n    depends_on:\n      b: {condition: "
       "service_completed_successfully}\n  b:\n    image: y\n",
       "services.a.depends_on.b.condition", 5, 22},
      {"configs", "services:\n  a:\n    image: x\nconfigs:\n  c: {file: ./c}\n", "configs", 4, 1},
      {"no image", "services:\n  a:\n    restart: always\n", "services.a", 3, 5},
      {"bad restart", "services:\n  a:\n    image: x\n    restart: sometimes\n",
       "services.a.restart", 4, 14},
      {"reconcile label", "services:\n  a:\n    image: x\n    labels: [reconcile.dev/agent=b]\n",
       "services.a.labels", 4, 14},
      {"swarm mode", "services:\n  a:\n    image: x\n    deploy: {mode: global}\n",
       "services.a.deploy.mode", 4, 20},
      {"version 1", "version: \"1\"\nservices:\n  a:\n    image: x\n", "version", 1, 10},
      {"secret in a build arg",
       "services:\n  a:\n    build:\n      context: .\n      args: {API_TOKEN: abc}\n",
       "services.a.build.args.API_TOKEN", 5, 25},
  };
  for (const Row& row : rows) {
    SUBCASE(row.name) {
      auto r = ImportCompose(Input(row.yaml));
      INFO(All(r.diagnostics));
      CHECK(r.documents.empty());
      const Diagnostic* d = Find(r.diagnostics, row.field);
      REQUIRE(d);
      CHECK(d->severity == Severity::kError);
      CHECK(d->file == "compose.yaml");
      CHECK(d->line == row.line);
      CHECK(d->column == row.column);
      CHECK_FALSE(d->message.empty());
    }
  }
}

TEST_CASE("import: a field this build lacks is reported, never dropped silently") {
  auto in = Input("services:\n  a:\n    image: x\n    user: \"1000\"\n    stop_signal: SIGINT\n");
  in.agent_fields.erase("user");
  in.agent_fields.erase("stopSignal");
  auto r = ImportCompose(in);
  const Diagnostic* user = Find(r.diagnostics, "services.a.user");
  REQUIRE(user);
  CHECK(user->severity == Severity::kError);  // security-relevant: refused
  const Diagnostic* sig = Find(r.diagnostics, "services.a.stop_signal");
  REQUIRE(sig);
  CHECK(sig->severity == Severity::kWarning);
  CHECK(sig->message.find("spec.stopSignal") != std::string::npos);
}

TEST_CASE("import: secrets become references and their values never reach a document") {
  const std::string canary = "canary-7f3e9b1d";
  auto in = Input(
      "services:\n  db:\n    image: postgres\n    environment:\n"
      "      POSTGRES_PASSWORD: " +
      canary +
      "\n      API_KEY: ${KEY_FROM_ENV}\n"
      "      PGPASS: " +
      canary +
      "\n      POSTGRES_PASSWORD_FILE: /run/secrets/db-password\n"
      "      POSTGRES_USER: app\n    secrets:\n      - db-password\n      - source: tls\n"
      "        target: server.key\n        mode: 0440\n"
      "secrets:\n  db-password:\n    file: ./db/password.txt\n  tls:\n    environment: TLS_KEY\n");
  in.environment = {{"KEY_FROM_ENV", canary}};
  auto r = ImportCompose(in);
  REQUIRE_MESSAGE(!r.diagnostics.HasErrors(), All(r.diagnostics));
  for (const auto& d : r.documents) CHECK(d.text.find(canary) == std::string::npos);
  for (const auto& d : r.diagnostics.items()) CHECK(d.message.find(canary) == std::string::npos);
  for (const auto& s : r.secret_files) CHECK(s.what.find(canary) == std::string::npos);
  const ComposeDocument* d = Doc(r, "agent-db.yaml");
  REQUIRE(d);
  INFO(d->text);
  CHECK(d->text.find("secretEnv:\n    POSTGRES_PASSWORD:\n      file: \"db.POSTGRES_PASSWORD\"") !=
        std::string::npos);
  CHECK(d->text.find("API_KEY:\n      file: \"db.API_KEY\"") != std::string::npos);
  CHECK(d->text.find("PGPASS:\n      file: \"db.PGPASS\"") != std::string::npos);
  // A path to a secret file is not a secret; a user name is not either.
  CHECK(d->text.find("POSTGRES_PASSWORD_FILE: \"/run/secrets/db-password\"") != std::string::npos);
  CHECK(d->text.find("POSTGRES_USER: \"app\"") != std::string::npos);
  CHECK(d->text.find("secretFiles:\n    db-password:\n      file: \"db-password\"\n    tls:\n"
                     "      file: \"tls\"\n      target: \"/run/secrets/server.key\"\n"
                     "      mode: \"0440\"") != std::string::npos);
  std::vector<std::string> names;
  for (const auto& s : r.secret_files) names.push_back(s.name);
  CHECK(names == std::vector<std::string>{"db-password", "db.API_KEY", "db.PGPASS",
                                          "db.POSTGRES_PASSWORD", "tls"});
  CHECK(r.secret_files[0].what == "the content of /srv/app/db/password.txt");
}

TEST_CASE("secret-looking names") {
  for (const char* yes : {"POSTGRES_PASSWORD", "DB_PASSWD", "api_key", "AWS_SECRET_ACCESS_KEY",
                          "GITHUB_TOKEN", "RABBITMQ_DEFAULT_PASS", "PGADMIN_PW", "SSH_PRIVATE",
                          "APIKEY", "GOOGLE_APPLICATION_CREDENTIALS"}) {
    CHECK_MESSAGE(LooksLikeSecretName(yes), yes);
  }
  for (const char* no :
       {"POSTGRES_USER", "DB_HOST", "KEYCLOAK_URL", "PORT", "PASSAGE", "MONKEY_BUSINESS_MODE"}) {
    CHECK_MESSAGE(!LooksLikeSecretName(no), no);
  }
}

TEST_CASE("import: the fields this build's Agent schema declares") {
  auto fields = AgentFieldsFromSchema(SchemaFor("Agent").value_or(""));
  for (const char* f : {"image", "build", "ports", "ports[].hostIP", "volumes", "restart",
                        "healthCheck", "healthCheck.path", "resources.memory", "secretEnv"}) {
    CHECK_MESSAGE(fields.count(f), f);
  }
  CHECK(AgentFieldsFromSchema("not json").empty());
}

TEST_CASE("import: the awesome-compose corpus, with this build's fields") {
  // Every copied file: either imported (and every document decodes with
  // this build's loader), or refused with errors that all have a position.
  std::set<std::string> refused;
  int imported = 0;
  for (const auto& entry : fs::recursive_directory_iterator(kCorpus)) {
    const std::string name = entry.path().filename().string();
    if (name != "compose.yaml" && name != "docker-compose.yaml") continue;
    const std::string stack = entry.path().parent_path().filename().string();
    CAPTURE(stack);
    ComposeImportInput in;
    in.file = stack + "/" + name;
    in.content = ReadText(entry.path());
    in.compose_dir = "/srv/" + stack;
    in.out_dir = "/srv/" + stack;
    in.agent_fields = AgentFieldsFromSchema(SchemaFor("Agent").value_or(""));
    in.environment = {{"HOME", "/home/user"}};
    auto r = ImportCompose(in);
    if (r.diagnostics.HasErrors()) {
      refused.insert(stack);
      CHECK(r.documents.empty());
      for (const auto& d : r.diagnostics.items()) {
        if (d.severity == Severity::kError) {
          CHECK(d.line > 0);
          CHECK(d.column > 0);
          CHECK_FALSE(d.field.empty());
        }
      }
      continue;
    }
    ++imported;
    for (const auto& d : r.documents) {
      LoadLimits limits;
      limits.allowed_bind_paths = r.bind_paths;
      DesiredState state;
      Diagnostics diags;
      DecodeFile(d.file_name, "", d.text, limits, state, diags);
      INFO(d.text);
      CHECK_MESSAGE(!diags.HasErrors(), All(diags));
    }
  }
  CHECK(imported + refused.size() == 18);
  // plex: network_mode host (and an unset path); pihole: a fixed address.
  CHECK(refused.count("plex"));
  CHECK(refused.count("pihole-cloudflared-DoH"));
  MESSAGE("imported " << imported
                      << " of 18 with this build's fields; refused: " << refused.size());
}

TEST_CASE("import: the corpus with the full field set of issue #13") {
  int clean = 0;
  for (const auto& entry : fs::recursive_directory_iterator(kCorpus)) {
    const std::string name = entry.path().filename().string();
    if (name != "compose.yaml" && name != "docker-compose.yaml") continue;
    const std::string stack = entry.path().parent_path().filename().string();
    ComposeImportInput in;
    in.file = stack + "/" + name;
    in.content = ReadText(entry.path());
    in.compose_dir = "/srv/" + stack;
    in.out_dir = "/srv/" + stack;
    in.agent_fields = AllComposeAgentFields();
    in.environment = {{"HOME", "/home/user"}};
    auto r = ImportCompose(in);
    if (!r.diagnostics.HasErrors()) ++clean;
  }
  // All but plex (network_mode: host), pihole-cloudflared-DoH (ipv4_address),
  // elasticsearch-logstash-kibana (an env name with a dot) and
  // prometheus-grafana (two mounts on /prometheus, which docker-compose
  // refuses too).
  CHECK(clean == 14);
}

TEST_CASE("import: every imported agent's spec can be re-applied (rollback reads it back)") {
  // Volumes, ports, restart, networks, secrets and health checks all make
  // the round trip NormalizedSpec -> AgentFromSpec -> the same spec.
  for (const char* stack :
       {"gitea-postgres", "react-express-mysql", "nginx-golang-postgres-rabbitmq"}) {
    CAPTURE(stack);
    fs::path file = fs::path(kCorpus) / stack / "compose.yaml";
    ComposeImportInput in;
    in.file = "compose.yaml";
    in.content = ReadText(file);
    in.compose_dir = std::string("/srv/") + stack;
    in.out_dir = in.compose_dir;
    in.agent_fields = AgentFieldsFromSchema(SchemaFor("Agent").value_or(""));
    auto r = ImportCompose(in);
    REQUIRE_MESSAGE(!r.diagnostics.HasErrors(), All(r.diagnostics));
    for (const auto& d : r.documents) {
      if (d.kind != "Agent") continue;
      Agent a = DecodeAgent(d, r.bind_paths);
      if (a.image.empty()) a.image = "registry.example/built:1";
      auto spec = NormalizedSpec(a, a.image);
      auto back = AgentFromSpec(a.name, spec);
      REQUIRE_MESSAGE(back.ok(), back.status().message());
      CHECK(NormalizedSpec(*back, back->image) == spec);
    }
  }
}

}  // namespace
}  // namespace reconcile
