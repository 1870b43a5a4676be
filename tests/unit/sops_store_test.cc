// {sops: {file, key}} secret references (issue #14 item 2): the loader's
// decoding and errors, SOPS files left out of a tree's manifests, the file
// check after loading (CheckSopsFiles) and the store that reads and decrypts
// a file of the tree (sops_store.h).
//
// The encrypted files are not made by this code: the getsops/sops fixture
// format.enc.yaml (written by the real `sops`, OpenPGP test key published by
// that project; `foo` is `bar`) and tests/fuzz/sops/enc.yaml (age recipient,
// made by tests/scripts/sops_encrypt.py with the real `age` wrapping the data
// key; cleartext tests/fuzz/sops/plain.yaml).
#include "reconcile/sops_store.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "fakes/temp_dir.h"
#include "reconcile/loader.h"
#include "reconcile/spec.h"

namespace reconcile {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

const fs::path kVectors = fs::path(RECONCILE_VECTORS_DIR) / "sops";
const fs::path kFuzzSops = fs::path(RECONCILE_SOURCE_DIR) / "tests/fuzz/sops";

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool Has(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

std::string All(const Diagnostics& diags) {
  std::string s;
  for (const auto& d : diags.items()) s += d.ToString() + "\n";
  return s;
}

std::string Val(const Result<std::string>& r) {
  return r.ok() ? *r : "<error: " + r.status().ToString() + ">";
}

const std::string kHead =
    "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: a}\nspec:\n"
    "  image: x\n  target: t\n  port: 80\n  secretEnv:\n";

Agent DecodeIn(const std::string& file, const std::string& dir, const std::string& secret_env,
               Diagnostics* out = nullptr) {
  DesiredState state;
  Diagnostics diags;
  DecodeFile(file, dir, kHead + secret_env, {}, state, diags);
  if (out) *out = diags;
  REQUIRE_MESSAGE((out != nullptr || !diags.HasErrors()), All(diags));
  return state.agents.empty() ? Agent{} : state.agents[0];
}

std::shared_ptr<const SopsKeys> AgeKeys() {
  auto keys = ReadSopsKeyFiles({(kFuzzSops / "fuzz-age-key.txt").string()}, {});
  REQUIRE_MESSAGE(keys.ok(), keys.status().ToString());
  return std::make_shared<const SopsKeys>(std::move(*keys));
}

std::shared_ptr<const SopsKeys> PgpKeys() {
  auto keys = ReadSopsKeyFiles({}, {(kVectors / "sops_functional_tests_key.asc").string()});
  REQUIRE_MESSAGE(keys.ok(), keys.status().ToString());
  return std::make_shared<const SopsKeys>(std::move(*keys));
}

SecretRef Sops(const std::string& file, const std::string& key) {
  return SecretRef{SecretRef::Source::kSops, file, key};
}

TEST_CASE("sops refs: decoded relative to the manifest's folder, with a text form") {
  Agent a = DecodeIn("deploy/app.yaml", "deploy",
                     "    DB: {sops: {file: secrets/db.enc.yaml, key: db.password}}\n"
                     "    UP: {sops: {file: ../common/app.env, key: API_KEY}}\n"
                     "    J: {sops: {file: ./x.json, key: hosts.0}}\n");
  const SecretRef& db = a.secret_env.at("DB");
  CHECK(db.source == SecretRef::Source::kSops);
  CHECK(db.name == "deploy/secrets/db.enc.yaml");
  CHECK(db.key == "db.password");
  CHECK(SecretRefText(db) == "sops:deploy/secrets/db.enc.yaml?key=db.password");
  CHECK(a.secret_env.at("UP").name == "common/app.env");
  CHECK(a.secret_env.at("J").name == "deploy/x.json");
  for (const auto& entry : a.secret_env) {  // (clang 14: no structured binding in CAPTURE)
    CAPTURE(entry.first);
    auto back = ParseSecretRefText(SecretRefText(entry.second));
    REQUIRE(back.has_value());
    CHECK(*back == entry.second);
  }
  // The normalized spec names the reference, never a value.
  CHECK(NormalizedSpec(a, a.image)["secretEnv"]["DB"] ==
        "sops:deploy/secrets/db.enc.yaml?key=db.password");
  // Where the file was written, for CheckSopsFiles.
  const SourceLocation& at = a.field_locations.at("spec.secretEnv.DB.sops.file");
  CHECK(at.file == "deploy/app.yaml");
  CHECK(at.line == 9);
}

TEST_CASE("sops refs: strict errors at file:line:column with the field path") {
  struct Row {
    const char* name;
    std::string yaml;
    int column;
    std::string field;
    std::string message;
  };
  const std::vector<Row> rows = {
      {"without key", "    T: {sops: {file: s.yaml}}\n", 15, "spec.secretEnv.T.sops.key",
       "required field is missing"},
      {"without file", "    T: {sops: {key: k}}\n", 15, "spec.secretEnv.T.sops.file",
       "required field is missing"},
      {"unknown field", "    T: {sops: {file: s.yaml, key: k, format: yaml}}\n", 38,
       "spec.secretEnv.T.sops.format", "unknown field 'format'"},
      {"out of the tree", "    T: {sops: {file: ../../s.yaml, key: k}}\n", 22,
       "spec.secretEnv.T.sops.file", "leads outside the tree"},
      {"absolute", "    T: {sops: {file: /etc/s.yaml, key: k}}\n", 22, "spec.secretEnv.T.sops.file",
       "a path relative to the manifest's folder"},
      {"not a sops format", "    T: {sops: {file: s.txt, key: k}}\n", 22,
       "spec.secretEnv.T.sops.file", "name it *.yaml, *.yml, *.json or *.env"},
      {"bad key", "    T: {sops: {file: s.yaml, key: 'a b'}}\n", 35, "spec.secretEnv.T.sops.key",
       "the value's path in the file"},
      {"not a map", "    T: {sops: s.yaml}\n", 15, "spec.secretEnv.T.sops", "map"},
      {"with another source", "    T: {env: X, sops: {file: s.yaml, key: k}}\n", 8,
       "spec.secretEnv.T", "exactly one of 'file', 'env', 'aws', 'vault' or 'sops'"},
  };
  for (const Row& row : rows) {
    SUBCASE(row.name) {
      Diagnostics diags;
      DecodeIn("deploy/m.yaml", "deploy", row.yaml, &diags);
      REQUIRE_MESSAGE(diags.size() == 1, All(diags));
      const Diagnostic& d = diags.items()[0];
      CHECK_MESSAGE(d.file == "deploy/m.yaml", All(diags));
      CHECK_MESSAGE(d.line == 9, All(diags));
      CHECK_MESSAGE(d.column == row.column, All(diags));
      CHECK_MESSAGE(d.field == row.field, All(diags));
      CHECK_MESSAGE(Has(d.message, row.message), All(diags));
    }
  }
}

TEST_CASE("sops refs: a secret file's reference") {
  DesiredState state;
  Diagnostics diags;
  DecodeFile("m.yaml", "",
             kHead +
                 "    X: {env: RECONCILE_SECRET_X}\n  secretFiles:\n"
                 "    tls.key: {sops: {file: tls.enc.json, key: key}, mode: \"0440\"}\n",
             {}, state, diags);
  REQUIRE_MESSAGE(!diags.HasErrors(), All(diags));
  const SecretFile& f = state.agents.at(0).secret_files.at("tls.key");
  CHECK(SecretRefText(f.ref) == "sops:tls.enc.json?key=key");
  CHECK(f.mode == 0440);
}

TEST_CASE("sops refs: SOPS files in the tree are data, not manifests") {
  TempDir tree;
  tree.Write("t.yaml",
             "apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: t}\n"
             "spec: {provider: docker}\n");
  tree.Write("app/agent.yaml", kHead + "    DB: {sops: {file: enc.yaml, key: db.password}}\n");
  // The encrypted files of both kinds, as their tools wrote them.
  fs::copy_file(kFuzzSops / "enc.yaml", tree.path() / "app/enc.yaml");
  fs::copy_file(kVectors / "format.enc.yaml", tree.path() / "app/other.enc.yaml");
  fs::copy_file(kVectors / "comments.enc.yaml", tree.path() / "comments.enc.yml");
  LoadResult loaded = LoadTree(tree.path());
  REQUIRE_MESSAGE(!loaded.diagnostics.HasErrors(), All(loaded.diagnostics));
  CHECK(loaded.state.agents.size() == 1);
  CHECK(loaded.state.targets.size() == 1);

  // A manifest that merely has a `sops` key is still a manifest (and wrong).
  tree.Write("bad.yaml", "sops: {mac: x}\nkind: Agent\n");
  LoadResult bad = LoadTree(tree.path());
  CHECK_MESSAGE(Has(All(bad.diagnostics), "bad.yaml:1:1"), All(bad.diagnostics));
  // ... and a map without `kind` and without sops metadata is reported too.
  tree.Write("bad.yaml", "sops: {version: 3}\n");
  bad = LoadTree(tree.path());
  CHECK_MESSAGE(Has(All(bad.diagnostics), "bad.yaml:1:1"), All(bad.diagnostics));
}

TEST_CASE("sops refs: in an Environment, relative to the base's or the patch's folder") {
  TempDir tree;
  tree.Write("base/all.yaml",
             "apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: t}\n"
             "spec: {provider: docker}\n---\n" +
                 kHead +
                 "    DB: {sops: {file: secrets/db.enc.yaml, key: db.password}}\n"
                 "    API: {sops: {file: secrets/api.enc.env, key: API_KEY}}\n");
  tree.Write("envs/prod/environment.yaml",
             "apiVersion: reconcile.dev/v1alpha1\nkind: Environment\nmetadata: {name: prod}\n"
             "spec:\n  bases: [../../base]\n");
  tree.Write("envs/prod/patch.yaml",
             "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: a}\nspec:\n"
             "  secretEnv:\n    DB: {sops: {file: prod-db.enc.yaml, key: db.password}}\n");
  tree.Write("envs/prod/prod-db.enc.yaml", ReadAll(kFuzzSops / "enc.yaml"));
  tree.Write("envs/prod/plain.enc.yml", ReadAll(kVectors / "format.enc.yaml"));
  LoadResult r = LoadPath(tree.path(), "envs/prod");
  REQUIRE_MESSAGE(!r.diagnostics.HasErrors(), All(r.diagnostics));
  REQUIRE(r.state.agents.size() == 1);
  const Agent& a = r.state.agents[0];
  CHECK(a.secret_env.at("DB").name == "envs/prod/prod-db.enc.yaml");  // the patch's folder
  CHECK(a.secret_env.at("API").name == "base/secrets/api.enc.env");   // the base's folder
  CHECK(a.field_locations.at("spec.secretEnv.DB.sops.file").file == "envs/prod/patch.yaml");
  // The check names the patch's line for the patched reference.
  Diagnostics diags;
  CheckSopsFiles(r.state, tree.path(), diags);
  REQUIRE_MESSAGE(diags.size() == 1, All(diags));  // base/secrets/api.enc.env is missing
  CHECK(diags.items()[0].file == "base/all.yaml");
  CHECK(diags.items()[0].field == "spec.secretEnv.API.sops.file");
}

TEST_CASE("sops refs: CheckSopsFiles names the reference's file:line for a missing file") {
  TempDir tree;
  tree.Write("app/enc.yaml", ReadAll(kFuzzSops / "enc.yaml"));
  fs::create_directories(tree.path() / "app/folder.yaml");
  tree.Write("outside.yaml", "x: 1\n");
  fs::create_directories(tree.path() / "t");
  fs::create_symlink(tree.path() / "outside.yaml", tree.path() / "t/link.yaml");
  DesiredState state;
  Diagnostics diags;
  DecodeFile("app/a.yaml", "app",
             kHead +
                 "    OK: {sops: {file: enc.yaml, key: db.password}}\n"
                 "    GONE: {sops: {file: gone.yaml, key: k}}\n"
                 "    DIR: {sops: {file: folder.yaml, key: k}}\n",
             {}, state, diags);
  REQUIRE_MESSAGE(!diags.HasErrors(), All(diags));
  CheckSopsFiles(state, tree.path(), diags);
  REQUIRE_MESSAGE(diags.size() == 2, All(diags));
  const Diagnostic& dir = diags.items()[0];  // the map's order: DIR, GONE
  CHECK(dir.file == "app/a.yaml");
  CHECK(dir.line == 11);
  CHECK(dir.field == "spec.secretEnv.DIR.sops.file");
  CHECK_MESSAGE(Has(dir.message, "app/folder.yaml is not a file"), dir.message);
  const Diagnostic& gone = diags.items()[1];
  CHECK(gone.line == 10);
  CHECK(gone.column == 25);
  CHECK(gone.field == "spec.secretEnv.GONE.sops.file");
  CHECK_MESSAGE(Has(gone.message, "agent 'a': SOPS file app/gone.yaml is not in the tree"),
                gone.message);

  // A symlink that leads out of the tree (the tree is t/).
  Diagnostics link;
  DesiredState linked;
  DecodeFile("a.yaml", "", kHead + "    L: {sops: {file: link.yaml, key: x}}\n", {}, linked, link);
  CheckSopsFiles(linked, tree.path() / "t", link);
  CHECK_MESSAGE(Has(All(link), "link.yaml leads outside the tree"), All(link));
}

TEST_CASE("sops store: values of the tree's files, decrypted with age or OpenPGP keys") {
  TempDir tree;
  tree.Write("app/enc.yaml", ReadAll(kFuzzSops / "enc.yaml"));
  tree.Write("app/enc.env", ReadAll(kFuzzSops / "enc.env"));
  tree.Write("app/enc.json", ReadAll(kFuzzSops / "enc.json"));
  tree.Write("up/format.enc.yaml", ReadAll(kVectors / "format.enc.yaml"));

  SopsStoreOptions age;
  age.keys = AgeKeys();
  auto store = NewSopsTreeStore(tree.path(), age);
  // Expected: tests/fuzz/sops/plain.yaml and plain.env.
  CHECK(Val(store->Get(Sops("app/enc.yaml", "db.password"), {})) == "fuzz-canary-1");
  CHECK(Val(store->Get(Sops("app/enc.yaml", "db.user"), {})) == "app");
  CHECK(Val(store->Get(Sops("app/enc.yaml", "hosts.1"), {})) == "b.example");
  CHECK(Val(store->Get(Sops("app/enc.env", "API_KEY"), {})) == "fuzz-canary-3");

  SopsStoreOptions pgp;
  pgp.keys = PgpKeys();
  auto upstream = NewSopsTreeStore(tree.path(), pgp);
  CHECK(Val(upstream->Get(Sops("up/format.enc.yaml", "foo"), {})) == "bar");

  // Several threads at once (the applier's), one decryption per file.
  std::vector<std::thread> threads;
  std::vector<std::string> got(8);
  for (size_t i = 0; i < got.size(); ++i) {
    threads.emplace_back([&, i] { got[i] = Val(store->Get(Sops("app/enc.json", "token"), {})); });
  }
  for (auto& t : threads) t.join();
  const std::string expected = nlohmann::json::parse(ReadAll(kFuzzSops / "plain.json"))["token"];
  for (const std::string& g : got) CHECK(g == expected);
}

TEST_CASE("sops store: errors name the reference, the file and the key path, never a value") {
  TempDir tree;
  tree.Write("enc.yaml", ReadAll(kFuzzSops / "enc.yaml"));
  tree.Write("big.yaml", std::string(2048, '#'));
  tree.Write("outside/x.yaml", ReadAll(kFuzzSops / "enc.yaml"));
  fs::create_directories(tree.path() / "t");
  fs::copy_file(kFuzzSops / "enc.yaml", tree.path() / "t/enc.yaml");
  fs::create_symlink(tree.path() / "outside/x.yaml", tree.path() / "t/link.yaml");
  const std::vector<std::string> values = {"fuzz-canary-1", "fuzz-canary-2", "5432", "a.example"};
  auto no_value = [&](const Result<std::string>& r) {
    REQUIRE_FALSE(r.ok());
    for (const std::string& v : values) {
      CHECK_MESSAGE(!Has(r.status().message(), v), r.status().message());
    }
    CHECK(!Has(r.status().message(), "AGE-SECRET-KEY"));
    return r.status();
  };

  SopsStoreOptions age;
  age.keys = AgeKeys();
  auto store = NewSopsTreeStore(tree.path(), age);

  Status st = no_value(store->Get(Sops("enc.yaml", "db.pass"), {}));
  CHECK(st.code() == Code::kInvalid);
  CHECK_MESSAGE(Has(st.message(), "sops:enc.yaml?key=db.pass: "), st.message());
  CHECK_MESSAGE(Has(st.message(), "db.pass"), st.message());
  st = no_value(store->Get(Sops("enc.yaml", "db"), {}));  // a map, not a value
  CHECK(st.code() == Code::kInvalid);
  st = no_value(store->Get(Sops("gone.yaml", "k"), {}));
  CHECK_MESSAGE(Has(st.message(), "gone.yaml is not in the tree"), st.message());
  SopsStoreOptions small = age;
  small.max_file_bytes = 1024;
  st = no_value(NewSopsTreeStore(tree.path(), small)->Get(Sops("big.yaml", "k"), {}));
  CHECK_MESSAGE(Has(st.message(), "big.yaml is 2048 bytes, over the limit of 1024"), st.message());
  auto in_t = NewSopsTreeStore(tree.path() / "t", age);
  st = no_value(in_t->Get(Sops("link.yaml", "db.password"), {}));
  CHECK_MESSAGE(Has(st.message(), "link.yaml leads outside the tree (symlink)"), st.message());
  CHECK(Val(in_t->Get(Sops("enc.yaml", "db.password"), {})) == "fuzz-canary-1");

  // A tampered value: the MAC (or the value's tag) refuses it, naming the file.
  std::string text = ReadAll(kFuzzSops / "enc.yaml");
  const size_t at = text.find("password: ENC[AES256_GCM,data:") + 31;
  text[at] = text[at] == 'A' ? 'B' : 'A';
  tree.Write("tampered.yaml", text);
  st = no_value(store->Get(Sops("tampered.yaml", "db.password"), {}));
  CHECK_MESSAGE(Has(st.message(), "tampered.yaml"), st.message());

  // No keys: the flags that give them.
  auto keyless = NewSopsTreeStore(tree.path(), {});
  st = no_value(keyless->Get(Sops("enc.yaml", "db.password"), {}));
  CHECK_MESSAGE(Has(st.message(), "--sops-age-key-file"), st.message());
  CHECK_MESSAGE(Has(st.message(), "--sops-pgp-key-file"), st.message());
  // The wrong keys (the file's recipient is an age key).
  SopsStoreOptions pgp;
  pgp.keys = PgpKeys();
  st = no_value(NewSopsTreeStore(tree.path(), pgp)->Get(Sops("enc.yaml", "db.password"), {}));
  CHECK_MESSAGE(Has(st.message(), "enc.yaml"), st.message());
  // No tree on disk (a --path naming one file).
  st = no_value(NewSopsTreeStore("", age)->Get(Sops("enc.yaml", "db.password"), {}));
  CHECK_MESSAGE(Has(st.message(), "point --path at the folder"), st.message());
  // Stopped.
  std::stop_source stop;
  stop.request_stop();
  CHECK(store->Get(Sops("enc.yaml", "db.password"), stop.get_token()).status().code() ==
        Code::kCancelled);
}

}  // namespace
}  // namespace reconcile
