// Tests for the allowed_signers parser (allowed_signers.h) and the SSH side
// of CommitVerifier (commit_verifier.h) over the signatures the real
// ssh-keygen made (tests/testdata/sshsig/make.sh): which lines parse, which
// are refused at which line, namespaces and validity, and the verdicts a
// commit gets (accepted, not signed, unknown key, does not verify, other
// namespace, other format), with the trust file re-read when it changes.
#include "source/allowed_signers.h"

#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

#include <doctest/doctest.h>

#include "fakes/temp_dir.h"
#include "source/commit_verifier.h"
#include "source/ssh_signature.h"

namespace reconcile {
namespace {

const std::string kDir = std::string(RECONCILE_SOURCE_DIR) + "/tests/testdata/sshsig/";

std::string Read(const std::string& name) {
  std::ifstream in(kDir + name, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "missing test data " << name);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// "type base64" of a .pub file.
std::string PubKey(const std::string& name) {
  std::istringstream in(Read(name + "_key.pub"));
  std::string type, b64;
  in >> type >> b64;
  return type + " " + b64;
}

std::string Blob(const std::string& name) {
  std::istringstream in(Read(name + "_key.pub"));
  std::string type, b64, blob;
  in >> type >> b64;
  REQUIRE(DecodeBase64(b64, &blob));
  return blob;
}

TEST_CASE("allowed_signers: the file ssh-keygen accepted parses, by key and namespace") {
  Diagnostics d;
  auto signers = ParseAllowedSigners(Read("allowed_signers"), "allowed_signers", d);
  CHECK(d.empty());
  REQUIRE(signers.size() == 4);
  CHECK(signers[0].principals == "ed25519@example.com");
  CHECK(signers[0].namespaces == std::vector<std::string>{"git"});
  std::string why;
  const AllowedSigner* s = FindAllowedSigner(signers, Blob("rsa"), "git", 0, &why);
  REQUIRE(s != nullptr);
  CHECK(s->line == 2);
  CHECK(FindAllowedSigner(signers, Blob("rsa"), "file", 0, &why) == nullptr);
  CHECK(why == "allowed_signers line 2: namespace 'file' not allowed");
  why.clear();
  CHECK(FindAllowedSigner(signers, Blob("ecdsa521"), "git", 0, &why) == nullptr);
  CHECK(why.empty());
}

TEST_CASE("allowed_signers: lines, options and errors") {
  const std::string ed = PubKey("ed25519");
  const std::string rsa = PubKey("rsa");
  struct Row {
    const char* name;
    std::string text;
    size_t entries;
    std::string error;  // the first diagnostic, "" for none
  };
  const Row rows[] = {
      {"comments and blank lines", "# a comment\n\n   \n  # indented\na@example.com " + ed + "\n",
       1, ""},
      {"principals then key", "a@example.com " + ed + " comment here\n", 1, ""},
      {"several principals and a pattern", "a@example.com,*@ops.example.com " + rsa + "\n", 1, ""},
      {"quoted principals with a space", "\"a b@example.com\" " + ed + "\n", 1, ""},
      {"namespaces with a comma inside quotes",
       "a@example.com namespaces=\"git,file\" " + ed + "\n", 1, ""},
      {"validity options",
       "a@example.com valid-after=\"20200101\",valid-before=\"20991231Z\" " + ed + "\n", 1, ""},
      {"cert-authority", "*@example.com cert-authority " + ed + "\n", 1, ""},
      {"option names are case-insensitive", "a@example.com NAMESPACES=\"git\" " + ed + "\n", 1, ""},
      {"an unknown option", "a@example.com colour=\"red\" " + ed + "\n", 0,
       "allowed_signers:1: error: unsupported option 'colour'"},
      {"an unquoted option value", "a@example.com namespaces=git " + ed + "\n", 0,
       "allowed_signers:1: error: option namespaces: the value must be quoted"},
      {"a bad time", "a@example.com valid-after=\"2020\" " + ed + "\n", 0,
       "allowed_signers:1: error: option valid-after: '2020' is not YYYYMMDD[HHMM[SS]][Z]"},
      {"no key", "a@example.com\n", 0,
       "allowed_signers:1: error: expected: principals [options] keytype base64-key"},
      {"key not base64", "a@example.com ssh-ed25519 AAAA*\n", 0,
       "allowed_signers:1: error: the ssh-ed25519 key is not base64"},
      {"key of another type than named",
       "a@example.com ssh-rsa " + ed.substr(ed.find(' ') + 1) + "\n", 0,
       "allowed_signers:1: error: the key's data is not a ssh-rsa key"},
      {"an unterminated quote", "\"a@example.com " + ed + "\n", 0,
       "allowed_signers:1: error: unterminated quote in the principals"},
      {"the good lines stay when one is bad",
       "a@example.com " + ed + "\nb@example.com bogus=\"1\" " + rsa + "\nc@example.com " + rsa +
           "\n",
       2, "allowed_signers:2: error: unsupported option 'bogus'"},
  };
  for (const Row& row : rows) {
    SUBCASE(row.name) {
      Diagnostics d;
      auto signers = ParseAllowedSigners(row.text, "allowed_signers", d);
      CHECK(signers.size() == row.entries);
      if (row.error.empty()) {
        CHECK_MESSAGE(d.empty(), (d.empty() ? "" : d.items()[0].ToString()));
      } else {
        REQUIRE_FALSE(d.empty());
        CHECK(d.items()[0].ToString() == row.error);
      }
    }
  }
}

TEST_CASE("allowed_signers: which entry counts") {
  const std::string ed = PubKey("ed25519");
  const std::string key = Blob("ed25519");
  Diagnostics d;
  auto signers = ParseAllowedSigners(
      "ca@example.com cert-authority " + ed + "\n" + "old@example.com valid-before=\"20200101Z\" " +
          ed + "\n" + "new@example.com valid-after=\"20300101Z\" " + ed + "\n" +
          "files@example.com namespaces=\"file,!git\" " + ed + "\n" +
          "now@example.com valid-after=\"20200101Z\",valid-before=\"20300101Z\" " + ed + "\n",
      "allowed_signers", d);
  REQUIRE(d.empty());
  REQUIRE(signers.size() == 5);
  std::string why;
  const std::int64_t y2017 = 1500000000;
  const std::int64_t y2025 = 1735689600;  // 2025-01-01T00:00:00Z
  const std::int64_t y2031 = 1924992000;  // 2031-01-01T00:00:00Z
  auto who = [&](std::string_view ns, std::int64_t when) {
    const AllowedSigner* s = FindAllowedSigner(signers, key, ns, when, &why);
    return s == nullptr ? std::string("(none)") : s->principals;
  };
  CHECK(who("git", y2025) == "now@example.com");
  CHECK(who("git", y2017) == "old@example.com");
  CHECK(who("git", y2031) == "new@example.com");
  CHECK(who("file", y2025) == "files@example.com");

  auto only_now = ParseAllowedSigners(
      "now@example.com valid-after=\"20200101Z\",valid-before=\"20300101Z\" " + ed + "\n",
      "allowed_signers", d);
  REQUIRE(only_now.size() == 1);
  CHECK(FindAllowedSigner(only_now, key, "git", y2031, &why) == nullptr);
  CHECK(why == "allowed_signers line 1: the key is not valid after 2030-01-01T00:00:00Z");
  CHECK(FindAllowedSigner(only_now, key, "git", y2017, &why) == nullptr);
  CHECK(why == "allowed_signers line 1: the key is not valid before 2020-01-01T00:00:00Z");
  auto only_ca = ParseAllowedSigners("*@example.com cert-authority " + ed + "\n", "f", d);
  CHECK(FindAllowedSigner(only_ca, key, "git", y2025, &why) == nullptr);
  CHECK(why == "allowed_signers line 1: a cert-authority key (certificates are not supported)");
}

TEST_CASE("allowed_signers: pattern lists") {
  CHECK(MatchPatternList("git", "git"));
  CHECK(MatchPatternList("git", "file,git"));
  CHECK(MatchPatternList("git", "g*"));
  CHECK(MatchPatternList("git", "?it"));
  CHECK(MatchPatternList("git", "*"));
  CHECK_FALSE(MatchPatternList("git", "file"));
  CHECK_FALSE(MatchPatternList("git", "*,!git"));
  CHECK_FALSE(MatchPatternList("git", "gi"));
  CHECK_FALSE(MatchPatternList("git", "?"));
}

TEST_CASE("commit verifier (SSH): the verdicts a commit gets") {
  testing::TempDir dir;
  const std::string message = Read("message.txt");
  dir.Write("allowed_signers", Read("allowed_signers"));
  CommitVerifyOptions options{CommitVerifyMode::kSsh, dir.path() / "allowed_signers"};
  auto verifier = CommitVerifier::Open(options);
  REQUIRE_MESSAGE(verifier.ok(), verifier.status().message());
  CommitVerifier& v = **verifier;
  const std::string ed_fpr = SshFingerprint(Blob("ed25519"));

  Result<std::string> r = v.Verify("c1", Read("ed25519.sig"), message, 1700000000);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(*r == "SSH key " + ed_fpr + " (ed25519@example.com)");
  CHECK(v.Verify("c2", Read("ecdsa.sig"), message, 0).ok());
  CHECK(v.Verify("c3", Read("rsa.sig"), message, 0).ok());

  r = v.Verify("c4", "", message, 0);
  CHECK(r.status().code() == Code::kInvalid);
  CHECK(r.status().message() == "not signed (--verify-commits ssh)");
  r = v.Verify("c5", Read("ecdsa521.sig"), message, 0);
  CHECK(r.status().message() == "signed by unknown key " + SshFingerprint(Blob("ecdsa521")) +
                                    " (not in --allowed-signers)");
  r = v.Verify("c6", Read("ed25519.sig"), message + "rewritten", 0);
  CHECK(r.status().message() == "signature does not verify (key " + ed_fpr + ")");
  r = v.Verify("c7", Read("ed25519_file_ns.sig"), message, 0);
  CHECK(r.status().message() == "SSH signature for namespace 'file', not 'git'");
  r = v.Verify("c8", "-----BEGIN PGP SIGNATURE-----\n\n-----END PGP SIGNATURE-----\n", message, 0);
  CHECK(r.status().message() == "signed with OpenPGP, but --verify-commits ssh expects SSH");
  r = v.Verify("c9", "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n", message,
               0);
  CHECK(r.status().message() == "malformed signature: SSH signature: no SSHSIG magic");

  SUBCASE("a verdict is kept per commit") {
    // Same id, other content: the kept verdict answers (an id names one
    // content).
    CHECK(v.Verify("c1", "", message, 0).ok());
  }
  SUBCASE("a changed file is read again") {
    dir.Write("allowed_signers", "other@example.com " + PubKey("ecdsa521") + "\n");
    r = v.Verify("c1", Read("ed25519.sig"), message, 0);
    CHECK(r.status().message() ==
          "signed by unknown key " + ed_fpr + " (not in --allowed-signers)");
    CHECK(v.Verify("c5", Read("ecdsa521.sig"), message, 0).ok());
  }
  SUBCASE("a file that became malformed accepts nothing") {
    dir.Write("allowed_signers", "broken\n");
    r = v.Verify("c1", Read("ed25519.sig"), message, 0);
    CHECK(r.status().code() == Code::kInvalid);
    CHECK(r.status().message().find("cannot check the signature: --allowed-signers: ") == 0);
  }
}

TEST_CASE("commit verifier: the trust must be readable at start") {
  testing::TempDir dir;
  auto missing = CommitVerifier::Open({CommitVerifyMode::kSsh, dir.path() / "nope"});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == Code::kInvalid);
  CHECK(missing.status().message().find("--allowed-signers") != std::string::npos);
  dir.Write("empty", "# nobody\n");
  auto empty = CommitVerifier::Open({CommitVerifyMode::kSsh, dir.path() / "empty"});
  REQUIRE_FALSE(empty.ok());
  CHECK(empty.status().message().find("no signer listed") != std::string::npos);
  auto no_keys = CommitVerifier::Open({CommitVerifyMode::kOpenPgp, ""});
  REQUIRE_FALSE(no_keys.ok());
  CHECK(no_keys.status().message() ==
        "--verify-commits needs --trusted-keys (the keys commits are checked against)");
  dir.Write("keys.asc", "not a key\n");
  auto not_keys = CommitVerifier::Open({CommitVerifyMode::kOpenPgp, dir.path() / "keys.asc"});
  REQUIRE_FALSE(not_keys.ok());
  CHECK(not_keys.status().code() == Code::kInvalid);
}

}  // namespace
}  // namespace reconcile
