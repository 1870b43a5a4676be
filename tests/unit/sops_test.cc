// SOPS decryption (engine/src/sops.cc).
//
// OpenPGP: the files getsops/sops's functional tests use (written by the real
// `sops`; tests/testdata/vectors/sops) with the test key that project
// publishes. The expected cleartexts come from upstream, not from this code:
// comments.yaml in getsops/sops (`lorem: ipsum`, `dolor: sit`), and the
// values the upstream encrypted files decrypt to with `gpg -d` on the data key
// and an independent AES-GCM (recorded in the vectors' README).
//
// age: Debian has no `sops` binary, so the age-recipient files are written by
// tests/scripts/sops_encrypt.py: python3-cryptography encrypts the values and
// the MAC, and the REAL `age` tool wraps the data key. The expectations are
// the plaintext files the test writes.
#include "reconcile/sops.h"
#include "fakes/temp_dir.h"
#include "pgp_keyring.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

namespace reconcile {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

const fs::path kVectors = fs::path(RECONCILE_VECTORS_DIR) / "sops";
const fs::path kEncrypt = fs::path(RECONCILE_SOURCE_DIR) / "tests/scripts/sops_encrypt.py";

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

int Sh(const std::string& cmd) {
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string Q(const fs::path& p) { return "'" + p.string() + "'"; }

SopsKeys PgpKeys() {
  SopsKeys k;
  k.pgp_secret_keys.push_back(ReadAll(kVectors / "sops_functional_tests_key.asc"));
  k.pgp_sources.push_back("sops_functional_tests_key.asc");
  return k;
}

Result<SopsDocument> Fixture(const std::string& name, const SopsKeys& keys,
                             const SopsOptions& options = {}) {
  auto format = SopsFormatFromPath(name);
  REQUIRE(format.ok());
  return DecryptSops(ReadAll(kVectors / name), *format, keys, name, options);
}

std::string Value(const Result<SopsDocument>& doc, const std::string& path) {
  REQUIRE_MESSAGE(doc.ok(), doc.status().ToString());
  auto v = doc->Lookup(path);
  REQUIRE_MESSAGE(v.ok(), v.status().ToString());
  return v.value();
}

// Where the first line starting with `prefix` begins.
std::size_t LineAt(const std::string& text, const std::string& prefix) {
  if (text.compare(0, prefix.size(), prefix) == 0) return 0;
  std::size_t at = text.find("\n" + prefix);
  REQUIRE(at != std::string::npos);
  return at + 1;
}

// Replaces the first line starting with `prefix` by `line` ("" removes it).
std::string ReplaceLine(const std::string& text, const std::string& prefix,
                        const std::string& line) {
  std::size_t at = LineAt(text, prefix);
  std::size_t end = text.find('\n', at);
  std::string out = text.substr(0, at);
  if (!line.empty()) out += line + "\n";
  out += text.substr(end + 1);
  return out;
}

std::string LineStarting(const std::string& text, const std::string& prefix) {
  std::size_t at = LineAt(text, prefix);
  return text.substr(at, text.find('\n', at) - at);
}

void CheckNoSecrets(const Status& st, const std::vector<std::string>& secrets) {
  for (const auto& s : secrets) {
    CHECK_MESSAGE(st.message().find(s) == std::string::npos,
                  "message leaks a value: ", st.message());
  }
  CHECK(st.message().find("AGE-SECRET-KEY") == std::string::npos);
}

TEST_CASE("sops: the getsops fixtures decrypt with the published OpenPGP test key") {
  SopsKeys keys = PgpKeys();
  SUBCASE("format.enc.yaml") {
    auto doc = Fixture("format.enc.yaml", keys);
    CHECK(Value(doc, "foo") == "bar");
    CHECK(doc->decrypted_with() == "pgp");
    CHECK(doc->values().size() == 1);
  }
  SUBCASE("format.enc.json") { CHECK(Value(Fixture("format.enc.json", keys), "foo") == "bar"); }
  SUBCASE("format.enc.env: `foo = bar` is key \"foo \" and value \" bar\" for sops") {
    auto doc = Fixture("format.enc.env", keys);
    CHECK(Value(doc, "foo ") == " bar");
    CHECK(Value(doc, "foo") == " bar");  // found by its trimmed name
  }
  SUBCASE("comments.enc.yaml: encrypted comments are not values and not in the MAC") {
    auto doc = Fixture("comments.enc.yaml", keys);
    CHECK(Value(doc, "lorem") == "ipsum");
    CHECK(Value(doc, "dolor") == "sit");
    CHECK(doc->values().size() == 2);
    CHECK(doc->values()[0].line == 2);
  }
  SUBCASE("multiple_keys.yaml") {
    CHECK(Value(Fixture("multiple_keys.yaml", keys), "message") == "hello");
  }
}

TEST_CASE("sops: no_mac.yaml is refused unless the missing MAC is allowed") {
  SopsKeys keys = PgpKeys();
  auto doc = Fixture("no_mac.yaml", keys);
  REQUIRE_FALSE(doc.ok());
  CHECK(doc.status().code() == Code::kInvalid);
  CHECK(doc.status().message().find("no_mac.yaml: sops.mac: the file has no MAC") !=
        std::string::npos);
  CheckNoSecrets(doc.status(), {"t00m4nys3cr3tz"});

  SopsOptions allow;
  allow.allow_missing_mac = true;
  CHECK(Value(Fixture("no_mac.yaml", keys, allow), "myapp1") == "t00m4nys3cr3tzupdated");
}

TEST_CASE("sops: a changed getsops fixture fails, naming the file and key path, never a value") {
  SopsKeys keys = PgpKeys();
  std::string text = ReadAll(kVectors / "comments.enc.yaml");
  std::vector<std::string> secrets = {"ipsum", "sit"};

  SUBCASE("a removed key fails the MAC") {
    auto doc = DecryptSops(ReplaceLine(text, "dolor:", ""), SopsFormat::kYaml, keys,
                           "secrets/comments.enc.yaml");
    REQUIRE_FALSE(doc.ok());
    CHECK(doc.status().code() == Code::kInvalid);
    CHECK(doc.status().message().find("secrets/comments.enc.yaml: MAC mismatch") !=
          std::string::npos);
    CheckNoSecrets(doc.status(), secrets);
  }
  SUBCASE("swapped keys fail the MAC (the order is covered)") {
    std::string lorem = LineStarting(text, "lorem:");
    std::string dolor = LineStarting(text, "dolor:");
    std::string swapped =
        ReplaceLine(ReplaceLine(text, "lorem:", "dolor: PLACEHOLDER"), "dolor: ENC", lorem);
    swapped = ReplaceLine(swapped, "dolor: PLACEHOLDER", dolor);
    auto doc = DecryptSops(swapped, SopsFormat::kYaml, keys, "c.yaml");
    REQUIRE_FALSE(doc.ok());
    CHECK(doc.status().message().find("MAC mismatch") != std::string::npos);
    CheckNoSecrets(doc.status(), secrets);
  }
  SUBCASE("a tampered ciphertext names the key path and line") {
    std::string lorem = LineStarting(text, "lorem:");
    std::size_t data = lorem.find("data:") + 5;
    lorem[data] = lorem[data] == 'A' ? 'B' : 'A';
    auto doc = DecryptSops(ReplaceLine(text, "lorem:", lorem), SopsFormat::kYaml, keys, "c.yaml");
    REQUIRE_FALSE(doc.ok());
    CHECK(doc.status().message().find("c.yaml:2: lorem: the value does not decrypt") !=
          std::string::npos);
    CheckNoSecrets(doc.status(), secrets);
  }
  SUBCASE("a value moved to another key does not decrypt there (the path is authenticated)") {
    std::string lorem = LineStarting(text, "lorem:");
    std::string moved = ReplaceLine(text, "dolor:", "dolor:" + lorem.substr(6));
    auto doc = DecryptSops(moved, SopsFormat::kYaml, keys, "c.yaml");
    REQUIRE_FALSE(doc.ok());
    CHECK(doc.status().message().find("c.yaml:4: dolor: the value does not decrypt") !=
          std::string::npos);
  }
  SUBCASE("a changed sops.lastmodified does not open the MAC") {
    std::string changed =
        ReplaceLine(text, "    lastmodified:", "    lastmodified: '2021-01-01T00:00:00Z'");
    auto doc = DecryptSops(changed, SopsFormat::kYaml, keys, "c.yaml");
    REQUIRE_FALSE(doc.ok());
    CHECK(doc.status().message().find("c.yaml: sops.mac: does not decrypt") != std::string::npos);
  }
  SUBCASE("a cleartext value where an encrypted one belongs") {
    auto doc =
        DecryptSops(ReplaceLine(text, "lorem:", "lorem: 12"), SopsFormat::kYaml, keys, "c.yaml");
    REQUIRE_FALSE(doc.ok());
    CHECK(doc.status().message().find("c.yaml:2: lorem: expected an encrypted value") !=
          std::string::npos);
  }
  SUBCASE("the metadata removed") {
    auto doc = DecryptSops("lorem: ipsum\n", SopsFormat::kYaml, keys, "c.yaml");
    REQUIRE_FALSE(doc.ok());
    CHECK(doc.status().message().find("not a SOPS-encrypted file") != std::string::npos);
  }
}

TEST_CASE("sops: missing or wrong keys are refused with a clear message") {
  SUBCASE("no key configured") {
    auto doc = Fixture("format.enc.yaml", SopsKeys{});
    REQUIRE_FALSE(doc.ok());
    CHECK(doc.status().code() == Code::kNotFound);
    CHECK(doc.status().message().find("no age identity and no OpenPGP secret key") !=
          std::string::npos);
    CHECK(doc.status().message().find("pgp FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4") !=
          std::string::npos);
  }
  SUBCASE("an OpenPGP key that is not a recipient; the second recipient of multiple_keys.yaml") {
    TempDir home("sops-gpg");
    fs::path asc = home.path() / "only-second.asc";
    std::string gh = "GNUPGHOME=" + Q(home.path() / "gnupg");
    fs::create_directories(home.path() / "gnupg");
    fs::permissions(home.path() / "gnupg", fs::perms::owner_all);
    REQUIRE(Sh(gh + " gpg --batch --quiet --import " +
               Q(kVectors / "sops_functional_tests_key.asc") + " 2>/dev/null") == 0);
    REQUIRE(Sh(gh + " gpg --batch --armor --export-secret-keys " +
               "D7229043384BCC60326C6FB9D8720D957C3D3074 > " + Q(asc) + " 2>/dev/null") == 0);
    Sh("gpgconf --homedir " + Q(home.path() / "gnupg") + " --kill gpg-agent 2>/dev/null");
    SopsKeys keys;
    keys.pgp_secret_keys.push_back(ReadAll(asc));
    auto doc = Fixture("format.enc.yaml", keys);
    REQUIRE_FALSE(doc.ok());
    CHECK(doc.status().code() == Code::kNotFound);
    CHECK(doc.status().message().find("pgp FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4: no matching "
                                      "secret key") != std::string::npos);
    CHECK(Value(Fixture("multiple_keys.yaml", keys), "message") == "hello");
  }
  SUBCASE("a block that is not a secret key") {
    SopsKeys keys;
    keys.pgp_secret_keys.push_back("not a key");
    keys.pgp_sources.push_back("keys/ops.asc");
    auto doc = Fixture("format.enc.yaml", keys);
    REQUIRE_FALSE(doc.ok());
    CHECK(doc.status().message().find("keys/ops.asc") != std::string::npos);
  }
}

TEST_CASE("sops: a passphrase-protected OpenPGP key is refused, not prompted for") {
  const fs::path data = fs::path(RECONCILE_SOURCE_DIR) / "tests/testdata/sops";
  auto ring = PgpKeyring::Create({ReadAll(data / "passphrase-key.asc")}, {"pp.asc"});
  REQUIRE_MESSAGE(ring.ok(), ring.status().ToString());
  auto plain = (*ring)->Decrypt(ReadAll(data / "passphrase-key-msg.asc"));
  std::string home = (*ring)->home();
  CHECK(fs::exists(home));
  if (fs::is_directory("/dev/shm") && ::access("/dev/shm", W_OK) == 0) {
    CHECK(home.starts_with("/dev/shm/"));  // the imported key stays on tmpfs
  }
  auto agents_for_home = [&home] {
    int n = 0;
    for (const auto& proc : fs::directory_iterator("/proc")) {
      if (ReadAll(proc.path() / "cmdline").find(home) != std::string::npos) ++n;
    }
    return n;
  };
  CHECK(agents_for_home() >= 1);  // GnuPG started an agent for the private home
  ring.value().reset();
  // The home (with the imported key) is gone, and so is the agent GnuPG
  // started for it.
  CHECK_FALSE(fs::exists(home));
  CHECK(agents_for_home() == 0);
  REQUIRE_FALSE(plain.ok());
  CHECK_MESSAGE(plain.status().message().find("passphrase-protected") != std::string::npos,
                plain.status().message());
}

// The age cases: files written by sops_encrypt.py with the real `age` tool.
struct AgeFixture {
  TempDir dir{"sops-age"};
  std::string identity_file, recipient;

  AgeFixture() {
    fs::path key = dir.path() / "key.txt";
    REQUIRE(Sh("age-keygen -o " + Q(key) + " 2>/dev/null") == 0);
    identity_file = ReadAll(key);
    auto at = identity_file.find("# public key: ");
    recipient = identity_file.substr(at + 14, identity_file.find('\n', at) - at - 14);
  }

  SopsKeys Keys() const {
    SopsKeys k;
    k.age_identity_files.push_back(identity_file);
    k.age_sources.push_back("key.txt");
    return k;
  }

  std::string Encrypt(const std::string& format, const std::string& plain,
                      const std::string& flags = "") const {
    dir.Write("plain", plain);
    fs::path out = dir.path() / "out";
    REQUIRE(Sh("python3 " + Q(kEncrypt) + " --format " + format + " --age-recipient " + recipient +
               " " + flags + " " + Q(dir.path() / "plain") + " " + Q(out)) == 0);
    return ReadAll(out);
  }
};

const char* kPlainYaml = R"(db:
  user: admin
  password: "s3cr3t: with colon"
  port: 5432
ratio: 0.25
enabled: true
hosts:
  - a.example
  - b.example
note_unencrypted: visible
empty: ""
nothing:
multiline: |
  line one
  line two
)";

TEST_CASE("sops: age recipients (data key wrapped by the real age tool)") {
  AgeFixture f;
  SUBCASE("YAML: nested maps, lists, numbers, booleans, a cleartext key") {
    auto doc = DecryptSops(f.Encrypt("yaml", kPlainYaml), SopsFormat::kYaml, f.Keys(), "s.yaml");
    CHECK(Value(doc, "db.user") == "admin");
    CHECK(Value(doc, "db.password") == "s3cr3t: with colon");
    CHECK(Value(doc, "db.port") == "5432");
    CHECK(Value(doc, "ratio") == "0.25");
    CHECK(Value(doc, "enabled") == "True");
    CHECK(Value(doc, "hosts.0") == "a.example");
    CHECK(Value(doc, "hosts.1") == "b.example");
    CHECK(Value(doc, "note_unencrypted") == "visible");
    CHECK(Value(doc, "empty") == "");
    CHECK(Value(doc, "multiline") == "line one\nline two\n");
    CHECK(doc->decrypted_with() == "age");
    auto missing = doc->Lookup("nothing");
    CHECK(missing.status().code() == Code::kNotFound);
    auto map = doc->Lookup("db");
    CHECK(map.status().code() == Code::kInvalid);
    CHECK(map.status().message().find("names a map or list") != std::string::npos);
    CHECK(doc->Lookup("db.nope").status().message().find("\"db.nope\"") != std::string::npos);
  }
  SUBCASE("JSON") {
    std::string plain =
        R"({"api": {"token": "tok-123", "retries": 3}, "list": [1, 2.5, false],
            "public_unencrypted": "x"})";
    auto doc = DecryptSops(f.Encrypt("json", plain), SopsFormat::kJson, f.Keys(), "s.json");
    CHECK(Value(doc, "api.token") == "tok-123");
    CHECK(Value(doc, "api.retries") == "3");
    CHECK(Value(doc, "list.0") == "1");
    CHECK(Value(doc, "list.1") == "2.5");
    CHECK(Value(doc, "list.2") == "False");
    CHECK(Value(doc, "public_unencrypted") == "x");
  }
  SUBCASE("dotenv") {
    std::string plain =
        "API_KEY=abc123\nMULTI=first\\nsecond\n# a comment\nPLAIN_unencrypted=shown\n";
    auto doc = DecryptSops(f.Encrypt("dotenv", plain), SopsFormat::kDotenv, f.Keys(), "s.env");
    CHECK(Value(doc, "API_KEY") == "abc123");
    CHECK(Value(doc, "MULTI") == "first\nsecond");
    CHECK(Value(doc, "PLAIN_unencrypted") == "shown");
  }
  SUBCASE("encrypted_regex: only matching keys are encrypted, all are in the MAC") {
    std::string enc = f.Encrypt("yaml", kPlainYaml, "--encrypted-regex '^(password|port)$'");
    CHECK(enc.find("user: admin") != std::string::npos);
    auto doc = DecryptSops(enc, SopsFormat::kYaml, f.Keys(), "s.yaml");
    CHECK(Value(doc, "db.password") == "s3cr3t: with colon");
    CHECK(Value(doc, "db.user") == "admin");
    auto changed = DecryptSops(ReplaceLine(enc, "  user: admin", "  user: root"), SopsFormat::kYaml,
                               f.Keys(), "s.yaml");
    REQUIRE_FALSE(changed.ok());
    CHECK(changed.status().message().find("MAC mismatch") != std::string::npos);
  }
  SUBCASE("mac_only_encrypted: the cleartext is outside the MAC, as in sops") {
    std::string enc = f.Encrypt("yaml", kPlainYaml, "--mac-only-encrypted");
    auto doc = DecryptSops(enc, SopsFormat::kYaml, f.Keys(), "s.yaml");
    CHECK(Value(doc, "db.user") == "admin");
    auto changed =
        DecryptSops(ReplaceLine(enc, "note_unencrypted: visible", "note_unencrypted: edited"),
                    SopsFormat::kYaml, f.Keys(), "s.yaml");
    CHECK(Value(changed, "note_unencrypted") == "edited");
    auto removed =
        DecryptSops(ReplaceLine(enc, "  user:", ""), SopsFormat::kYaml, f.Keys(), "s.yaml");
    REQUIRE_FALSE(removed.ok());
    CHECK(removed.status().message().find("MAC mismatch") != std::string::npos);
  }
  SUBCASE("a changed cleartext value or a removed key fails the MAC") {
    std::string enc = f.Encrypt("yaml", kPlainYaml);
    std::vector<std::string> secrets = {"admin", "s3cr3t", "a.example", "line one"};
    for (const auto& bad :
         {ReplaceLine(enc, "note_unencrypted: visible", "note_unencrypted: edited"),
          ReplaceLine(enc, "  user:", ""), ReplaceLine(enc, "- ENC", "")}) {
      auto doc = DecryptSops(bad, SopsFormat::kYaml, f.Keys(), "secrets/db.enc.yaml");
      REQUIRE_FALSE(doc.ok());
      CHECK(doc.status().message().find("secrets/db.enc.yaml: MAC mismatch") != std::string::npos);
      CheckNoSecrets(doc.status(), secrets);
    }
  }
  SUBCASE("no MAC") {
    std::string enc = f.Encrypt("yaml", kPlainYaml, "--no-mac");
    auto doc = DecryptSops(enc, SopsFormat::kYaml, f.Keys(), "s.yaml");
    REQUIRE_FALSE(doc.ok());
    CHECK(doc.status().message().find("has no MAC") != std::string::npos);
  }
  SUBCASE("a wrong identity, or only OpenPGP keys") {
    std::string enc = f.Encrypt("yaml", kPlainYaml);
    AgeFixture other;
    auto doc = DecryptSops(enc, SopsFormat::kYaml, other.Keys(), "s.yaml");
    REQUIRE_FALSE(doc.ok());
    CHECK(doc.status().code() == Code::kNotFound);
    CHECK(doc.status().message().find("age " + f.recipient + ": no matching identity") !=
          std::string::npos);
    CheckNoSecrets(doc.status(), {"admin", "s3cr3t"});
    auto pgp_only = DecryptSops(enc, SopsFormat::kYaml, PgpKeys(), "s.yaml");
    REQUIRE_FALSE(pgp_only.ok());
    CHECK(pgp_only.status().message().find("only OpenPGP keys are configured") !=
          std::string::npos);
  }
  SUBCASE("a tampered age envelope") {
    std::string enc = f.Encrypt("yaml", kPlainYaml);
    std::size_t at = enc.find("-----BEGIN AGE ENCRYPTED FILE-----");
    std::size_t line2 = enc.find('\n', enc.find('\n', at) + 1) + 1;  // second base64 line
    std::string bad = enc;
    std::size_t col = bad.find_first_not_of(' ', line2) + 10;
    bad[col] = bad[col] == 'A' ? 'B' : 'A';
    auto doc = DecryptSops(bad, SopsFormat::kYaml, f.Keys(), "s.yaml");
    REQUIRE_FALSE(doc.ok());
    CHECK(doc.status().message().find("s.yaml: ") == 0);
  }
}

TEST_CASE("sops: seeded mutations of encrypted files give a value or an error, never a crash") {
  AgeFixture f;
  const std::vector<std::string> secrets = {"s3cr3t", "tok-123", "abc123"};
  struct Case {
    SopsFormat format;
    std::string text;
  };
  std::vector<Case> cases = {
      {SopsFormat::kYaml, f.Encrypt("yaml", kPlainYaml)},
      {SopsFormat::kJson, f.Encrypt("json", R"({"api": {"token": "tok-123"}, "n": [1, 2]})")},
      {SopsFormat::kDotenv, f.Encrypt("dotenv", "API_KEY=abc123\n")}};
  std::uint32_t x = 12345;
  auto next = [&x] {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
  };
  SopsKeys keys = f.Keys();
  int refused = 0;
  static constexpr std::string_view kSyntax = "{[:-\n\"'#,]}";
  for (const Case& c : cases) {
    auto original = DecryptSops(c.text, c.format, keys, "m");
    REQUIRE(original.ok());
    std::vector<std::string> want;
    for (const auto& v : original->values()) want.push_back(v.value);
    for (int i = 0; i < 150; ++i) {
      std::string m = c.text;
      std::size_t at = next() % m.size();
      switch (next() % 3) {
        case 0:
          m[at] = static_cast<char>(next() & 0xff);
          break;
        case 1:
          m.erase(at, 1 + next() % 8);
          break;
        default:
          // (The index stays inside the characters: UBSan found % 13 over 11.)
          m.insert(at, std::string(1 + next() % 4, kSyntax[next() % kSyntax.size()]));
      }
      auto doc = DecryptSops(m, c.format, keys, "m");
      if (!doc.ok()) {
        ++refused;
        CheckNoSecrets(doc.status(), secrets);
        continue;
      }
      // Accepted: the MAC vouches for the values (not for cleartext key names).
      std::vector<std::string> got;
      for (const auto& v : doc->values()) got.push_back(v.value);
      CHECK(got == want);
    }
  }
  CHECK(refused > 300);  // nearly every change is caught
}

TEST_CASE("sops: the operator's key files") {
  AgeFixture f;
  f.dir.Write("bad.txt", "# mine\nAGE-SECRET-KEY-1NOTAKEYATALL\n");
  std::string age = (f.dir.path() / "key.txt").string();
  std::string pgp = (kVectors / "sops_functional_tests_key.asc").string();
  SUBCASE("read and used") {
    auto keys = ReadSopsKeyFiles({age}, {pgp});
    REQUIRE_MESSAGE(keys.ok(), keys.status().ToString());
    CHECK(keys->age_sources == std::vector<std::string>{age});
    CHECK(Value(DecryptSops(f.Encrypt("yaml", kPlainYaml), SopsFormat::kYaml, *keys, "s.yaml"),
                "db.user") == "admin");
    CHECK(Value(Fixture("format.enc.yaml", *keys), "foo") == "bar");
  }
  SUBCASE("a bad identity file names its path and line") {
    auto keys = ReadSopsKeyFiles({(f.dir.path() / "bad.txt").string()}, {});
    REQUIRE_FALSE(keys.ok());
    CHECK(keys.status().message().find("bad.txt:2:") != std::string::npos);
    CHECK(keys.status().message().find("NOTAKEY") == std::string::npos);
  }
  SUBCASE("a missing file") {
    auto keys = ReadSopsKeyFiles({}, {(f.dir.path() / "none.asc").string()});
    REQUIRE_FALSE(keys.ok());
    CHECK(keys.status().message().find("none.asc: cannot read the key file") != std::string::npos);
  }
}

TEST_CASE("sops: unsupported files are refused with a message saying so") {
  SopsKeys keys = PgpKeys();
  SUBCASE("several key groups (Shamir)") {
    std::string text =
        "a: ENC[AES256_GCM,data:AA==,iv:AA==,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]\n"
        "sops:\n  key_groups:\n  - pgp:\n    - fp: X\n      enc: x\n"
        "  - pgp:\n    - fp: Y\n      enc: y\n"
        "  shamir_threshold: 2\n  lastmodified: '2020-01-01T00:00:00Z'\n";
    auto doc = DecryptSops(text, SopsFormat::kYaml, keys, "s.yaml");
    REQUIRE_FALSE(doc.ok());
    CHECK(doc.status().message().find("Shamir") != std::string::npos);
  }
  SUBCASE("only a KMS recipient") {
    std::string text =
        "a: x\nsops:\n  kms:\n  - arn: arn:aws:kms:eu-west-1:1:key/k\n    enc: x\n"
        "  lastmodified: '2020-01-01T00:00:00Z'\n";
    auto doc = DecryptSops(text, SopsFormat::kYaml, keys, "s.yaml");
    REQUIRE_FALSE(doc.ok());
    CHECK(doc.status().message().find("kms (not supported yet)") != std::string::npos);
  }
  SUBCASE("format names") {
    CHECK(SopsFormatFromPath("secrets/db.enc.yaml").value() == SopsFormat::kYaml);
    CHECK(SopsFormatFromPath("x.json").value() == SopsFormat::kJson);
    CHECK(SopsFormatFromPath("x.env").value() == SopsFormat::kDotenv);
    CHECK_FALSE(SopsFormatFromPath("x.ini").ok());
    CHECK(ParseSopsFormat("dotenv").value() == SopsFormat::kDotenv);
  }
}

}  // namespace
}  // namespace reconcile
