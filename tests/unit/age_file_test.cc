// age decryption (engine/src/age_file.cc) against files the REAL age tool
// (Debian's `age`, `age-keygen`) writes: sizes around the 64 KiB chunk
// boundary, armored and binary, several recipients, and corrupted files.
#include "age_file.h"
#include "fakes/temp_dir.h"

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <doctest/doctest.h>

namespace reconcile {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs a shell command; returns its exit code.
int Sh(const std::string& cmd) {
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string Q(const fs::path& p) { return "'" + p.string() + "'"; }

struct KeyPair {
  std::string identity_file;  // age-keygen output
  std::string recipient;      // from its "# public key:" line
};

KeyPair Keygen(const TempDir& dir, const std::string& name) {
  fs::path p = dir.path() / name;
  REQUIRE(Sh("age-keygen -o " + Q(p) + " 2>/dev/null") == 0);
  KeyPair kp;
  kp.identity_file = ReadAll(p);
  auto at = kp.identity_file.find("# public key: ");
  REQUIRE(at != std::string::npos);
  kp.recipient = kp.identity_file.substr(at + 14, kp.identity_file.find('\n', at) - at - 14);
  return kp;
}

// Deterministic bytes (a xorshift stream), so a failure reproduces.
std::string Bytes(std::size_t n, std::uint32_t seed) {
  std::string out(n, '\0');
  std::uint32_t x = seed;
  for (std::size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    out[i] = static_cast<char>(x & 0xff);
  }
  return out;
}

std::string AgeEncrypt(const TempDir& dir, const std::string& plain,
                       const std::vector<std::string>& recipients, bool armor) {
  dir.Write("plain.bin", plain);
  std::string cmd = "age";
  if (armor) cmd += " -a";
  for (const auto& r : recipients) cmd += " -r " + r;
  cmd += " -o " + Q(dir.path() / "out.age") + " " + Q(dir.path() / "plain.bin");
  REQUIRE(Sh(cmd) == 0);
  return ReadAll(dir.path() / "out.age");
}

std::vector<AgeIdentity> Identities(const KeyPair& kp) {
  auto ids = ParseAgeIdentities(kp.identity_file, "key.txt");
  REQUIRE(ids.ok());
  return std::move(ids).value();
}

TEST_CASE("age: an identity from age-keygen derives the recipient age-keygen printed") {
  TempDir dir("age-test");
  KeyPair kp = Keygen(dir, "key.txt");
  auto ids = Identities(kp);
  REQUIRE(ids.size() == 1);
  CHECK(ids[0].Recipient() == kp.recipient);
}

TEST_CASE("age: decrypts files the real age tool encrypts, around the 64 KiB chunk size") {
  TempDir dir("age-test");
  KeyPair kp = Keygen(dir, "key.txt");
  auto ids = Identities(kp);
  for (std::size_t size :
       {std::size_t{0}, std::size_t{1}, std::size_t{32}, std::size_t{65535}, std::size_t{65536},
        std::size_t{65537}, std::size_t{131072}, std::size_t{200000}}) {
    for (bool armor : {false, true}) {
      CAPTURE(size);
      CAPTURE(armor);
      std::string plain = Bytes(size, static_cast<std::uint32_t>(size + 7));
      std::string file = AgeEncrypt(dir, plain, {kp.recipient}, armor);
      auto got = DecryptAge(file, ids);
      REQUIRE_MESSAGE(got.ok(), got.status().ToString());
      CHECK(got.value() == plain);
    }
  }
}

TEST_CASE("age: with several recipients, any one identity opens the file") {
  TempDir dir("age-test");
  KeyPair a = Keygen(dir, "a.txt");
  KeyPair b = Keygen(dir, "b.txt");
  std::string file = AgeEncrypt(dir, "the data key", {a.recipient, b.recipient}, true);
  auto got = DecryptAge(file, Identities(b));
  REQUIRE_MESSAGE(got.ok(), got.status().ToString());
  CHECK(got.value() == "the data key");
}

TEST_CASE("age: a wrong identity is kNotFound and the message holds no key") {
  TempDir dir("age-test");
  KeyPair a = Keygen(dir, "a.txt");
  KeyPair other = Keygen(dir, "other.txt");
  std::string file = AgeEncrypt(dir, "secret payload", {a.recipient}, false);
  auto got = DecryptAge(file, Identities(other));
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().code() == Code::kNotFound);
  CHECK(got.status().message().find("AGE-SECRET-KEY") == std::string::npos);
  CHECK(got.status().message().find("secret payload") == std::string::npos);
}

TEST_CASE("age: corrupted files are refused") {
  TempDir dir("age-test");
  KeyPair kp = Keygen(dir, "key.txt");
  auto ids = Identities(kp);
  std::string plain = Bytes(200000, 42);
  std::string file = AgeEncrypt(dir, plain, {kp.recipient}, false);
  std::size_t mac_line = file.find("\n--- ");
  REQUIRE(mac_line != std::string::npos);
  std::size_t payload = file.find('\n', mac_line + 1) + 1;

  SUBCASE("a flipped payload byte") {
    std::string bad = file;
    bad[payload + 16 + 70000] ^= 0x01;  // in the second chunk
    auto got = DecryptAge(bad, ids);
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().code() == Code::kInvalid);
    CHECK(got.status().message().find("chunk 1") != std::string::npos);
  }
  SUBCASE("a flipped nonce byte") {
    std::string bad = file;
    bad[payload + 3] ^= 0x80;
    auto got = DecryptAge(bad, ids);
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().message().find("chunk 0") != std::string::npos);
  }
  SUBCASE("truncated after a full chunk (the last-chunk flag)") {
    std::string bad = file.substr(0, payload + 16 + 65536 + 16);
    auto got = DecryptAge(bad, ids);
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().code() == Code::kInvalid);
  }
  SUBCASE("a changed header MAC") {
    std::string bad = file;
    char& c = bad[mac_line + 5];
    c = c == 'A' ? 'B' : 'A';
    auto got = DecryptAge(bad, ids);
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().message().find("header MAC") != std::string::npos);
  }
  SUBCASE("a stanza added to the header") {
    std::string bad = file;
    bad.insert(mac_line + 1, "-> grease-stanza extra\n\n");
    auto got = DecryptAge(bad, ids);
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().message().find("header MAC") != std::string::npos);
  }
  SUBCASE("armor whose BEGIN and END lines share their dashes (found by sops_fuzz)") {
    for (const char* bad :
         {"-----BEGIN AGE ENCRYPTED FILE-----END AGE ENCRYPTED FILE-----",
          "-----BEGIN AGE ENCRYPTED FILE-----\n-----END AGE ENCRYPTED FILE-----"}) {
      CAPTURE(bad);
      auto got = DecryptAge(bad, ids);
      REQUIRE_FALSE(got.ok());
      CHECK(got.status().code() == Code::kInvalid);
    }
  }
  SUBCASE("not an age file") {
    auto got = DecryptAge("hello\n", ids);
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().code() == Code::kInvalid);
  }
}

TEST_CASE("age: identity files") {
  TempDir dir("age-test");
  KeyPair kp = Keygen(dir, "key.txt");
  std::string id_line = kp.identity_file.substr(kp.identity_file.find("AGE-SECRET-KEY-1"));
  id_line = id_line.substr(0, id_line.find('\n'));

  SUBCASE("comments and blank lines are skipped; lower case is accepted") {
    std::string lower;
    for (char c : id_line) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto ids = ParseAgeIdentities("# mine\n\n" + lower + "\n", "keys.txt");
    REQUIRE(ids.ok());
    CHECK(ids->at(0).Recipient() == kp.recipient);
  }
  SUBCASE("a line that is not an identity names the line, not its text") {
    auto ids = ParseAgeIdentities(id_line + "\nnot-a-key-hunter2\n", "keys.txt");
    REQUIRE_FALSE(ids.ok());
    CHECK(ids.status().message().find("keys.txt:2") != std::string::npos);
    CHECK(ids.status().message().find("hunter2") == std::string::npos);
  }
  SUBCASE("a changed character fails the Bech32 checksum") {
    std::string bad = id_line;
    char& c = bad[20];
    c = c == 'Q' ? 'P' : 'Q';
    auto ids = ParseAgeIdentities(bad, "keys.txt");
    REQUIRE_FALSE(ids.ok());
    CHECK(ids.status().message().find("checksum") != std::string::npos);
  }
  SUBCASE("an empty file") {
    auto ids = ParseAgeIdentities("# nothing\n", "keys.txt");
    REQUIRE_FALSE(ids.ok());
    CHECK(ids.status().message().find("no AGE-SECRET-KEY-1") != std::string::npos);
  }
}

}  // namespace
}  // namespace reconcile
