// Tests for the in-process SSHSIG check (ssh_signature.h) on signatures the
// real ssh-keygen made (tests/testdata/sshsig/make.sh): every key type
// verifies and has ssh-keygen's fingerprint; a changed message, signature,
// namespace or hash algorithm does not verify; malformed blobs are refused
// by name.
#include "source/ssh_signature.h"

#include <cstdint>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>

#include <doctest/doctest.h>
#include <openssl/evp.h>

namespace reconcile {
namespace {

const std::string kDir = std::string(RECONCILE_SOURCE_DIR) + "/tests/testdata/sshsig/";

std::string Read(const std::string& name) {
  std::ifstream in(kDir + name, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "missing test data " << name);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::map<std::string, std::string> Fingerprints() {
  std::map<std::string, std::string> out;
  std::istringstream in(Read("fingerprints.txt"));
  std::string name, fpr;
  while (in >> name >> fpr) out[name] = fpr;
  return out;
}

std::string Armor(const std::string& blob) {
  std::string b64(4 * ((blob.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()),
                          reinterpret_cast<const unsigned char*>(blob.data()),
                          static_cast<int>(blob.size()));
  b64.resize(static_cast<size_t>(n));
  std::string out = "-----BEGIN SSH SIGNATURE-----\n";
  for (size_t i = 0; i < b64.size(); i += 70) out += b64.substr(i, 70) + "\n";
  return out + "-----END SSH SIGNATURE-----\n";
}

std::string Unarmor(const std::string& armored) {
  std::string b64;
  std::istringstream in(armored);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("-----", 0) != 0) b64 += line;
  }
  std::string blob;
  REQUIRE(DecodeBase64(b64, &blob));
  return blob;
}

std::string Str(const std::string& s) {
  std::string out(4, '\0');
  const auto n = static_cast<std::uint32_t>(s.size());
  out[0] = static_cast<char>(n >> 24);
  out[1] = static_cast<char>(n >> 16);
  out[2] = static_cast<char>(n >> 8);
  out[3] = static_cast<char>(n);
  return out + s;
}

TEST_CASE("ssh signature: ssh-keygen's signatures verify, with its fingerprints") {
  const std::string message = Read("message.txt");
  const auto fingerprints = Fingerprints();
  struct Row {
    const char* sig;
    const char* key;
    const char* key_type;
    const char* algorithm;
  };
  const Row rows[] = {
      {"ed25519.sig", "ed25519", "ssh-ed25519", "ssh-ed25519"},
      {"rsa.sig", "rsa", "ssh-rsa", "rsa-sha2-512"},
      {"rsa_sha256.sig", "rsa", "ssh-rsa", "rsa-sha2-512"},
      {"ecdsa.sig", "ecdsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256"},
      {"ecdsa384.sig", "ecdsa384", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384"},
      {"ecdsa521.sig", "ecdsa521", "ecdsa-sha2-nistp521", "ecdsa-sha2-nistp521"},
  };
  for (const Row& row : rows) {
    SUBCASE(row.sig) {
      Result<SshSignature> sig = ParseSshSignature(Read(row.sig));
      REQUIRE_MESSAGE(sig.ok(), sig.status().message());
      CHECK(sig->key_type == row.key_type);
      CHECK(sig->signature_algorithm == row.algorithm);
      CHECK(sig->sig_namespace == "git");
      CHECK(SshFingerprint(sig->public_key) == fingerprints.at(row.key));
      // The key in the signature is the one in the .pub file.
      std::istringstream pub(Read(std::string(row.key) + "_key.pub"));
      std::string type, b64, blob;
      pub >> type >> b64;
      REQUIRE(DecodeBase64(b64, &blob));
      CHECK(blob == sig->public_key);
      CHECK_MESSAGE(VerifySshSignature(*sig, message).ok(),
                    VerifySshSignature(*sig, message).message());

      std::string changed = message;
      changed[changed.size() - 2] ^= 0x01;
      CHECK(VerifySshSignature(*sig, changed).message() == "signature does not verify");
      CHECK(VerifySshSignature(*sig, message + "\n").message() == "signature does not verify");

      SshSignature flipped = *sig;
      flipped.signature[flipped.signature.size() / 2] ^= 0x10;
      CHECK_FALSE(VerifySshSignature(flipped, message).ok());

      SshSignature other_ns = *sig;
      other_ns.sig_namespace = "file";
      CHECK(VerifySshSignature(other_ns, message).message() == "signature does not verify");
    }
  }
  SUBCASE("the hash algorithm is part of what is signed") {
    Result<SshSignature> sig = ParseSshSignature(Read("rsa_sha256.sig"));
    REQUIRE(sig.ok());
    CHECK(sig->hash_algorithm == "sha256");  // -O hashalg=sha256: H(message) is SHA-256
    SshSignature h = *sig;
    h.hash_algorithm = "sha512";
    CHECK(VerifySshSignature(h, message).message() == "signature does not verify");
    h.hash_algorithm = "md5";
    CHECK(VerifySshSignature(h, message).message().find("unsupported hash algorithm") !=
          std::string::npos);
  }
  SUBCASE("a signature in another namespace verifies only there") {
    Result<SshSignature> sig = ParseSshSignature(Read("ed25519_file_ns.sig"));
    REQUIRE(sig.ok());
    CHECK(sig->sig_namespace == "file");
    CHECK(VerifySshSignature(*sig, message).ok());
    SshSignature as_git = *sig;
    as_git.sig_namespace = "git";
    CHECK_FALSE(VerifySshSignature(as_git, message).ok());
  }
  SUBCASE("another key's signature does not verify with this key") {
    Result<SshSignature> ed = ParseSshSignature(Read("ed25519.sig"));
    Result<SshSignature> rsa = ParseSshSignature(Read("rsa.sig"));
    REQUIRE(ed.ok());
    REQUIRE(rsa.ok());
    SshSignature mixed = *rsa;
    mixed.public_key = ed->public_key;
    CHECK(VerifySshSignature(mixed, message).message() ==
          "signature algorithm rsa-sha2-512 for an ssh-ed25519 key");
    SshSignature sha1 = *rsa;
    sha1.signature_algorithm = "ssh-rsa";
    CHECK(VerifySshSignature(sha1, message).message().find("is not accepted") != std::string::npos);
  }
}

TEST_CASE("ssh signature: malformed blobs are refused by name") {
  const std::string blob = Unarmor(Read("ed25519.sig"));
  REQUIRE(ParseSshSignature(Armor(blob)).ok());  // the re-armoring itself is sound
  struct Row {
    const char* name;
    std::string text;
    const char* error;
  };
  std::string v2 = blob;
  v2[9] = 2;  // the version's low byte, after "SSHSIG"
  std::string bad_magic = blob;
  bad_magic[0] = 'X';
  const Row rows[] = {
      {"no armor", "U1NIU0lH", "no BEGIN/END SSH SIGNATURE armor"},
      {"a PGP signature", "-----BEGIN PGP SIGNATURE-----\n\n-----END PGP SIGNATURE-----\n",
       "no BEGIN/END SSH SIGNATURE armor"},
      {"BEGIN and END sharing their dashes",
       "-----BEGIN SSH SIGNATURE-----END SSH SIGNATURE-----\n", "no BEGIN/END SSH SIGNATURE armor"},
      {"bad base64", "-----BEGIN SSH SIGNATURE-----\nU1N*SU\n-----END SSH SIGNATURE-----\n",
       "bad base64"},
      {"wrong magic", Armor(bad_magic), "no SSHSIG magic"},
      {"version 2", Armor(v2), "unsupported version 2"},
      {"truncated", Armor(blob.substr(0, blob.size() - 10)), "truncated"},
      {"trailing bytes", Armor(blob + "x"), "trailing bytes"},
      {"malformed signature field",
       Armor(std::string("SSHSIG") + std::string("\0\0\0\1", 4) +
             Str(Str("ssh-ed25519") + Str(std::string(32, 'k'))) + Str("git") + Str("") +
             Str("sha512") + Str("not a blob")),
       "malformed signature field"},
  };
  for (const Row& row : rows) {
    SUBCASE(row.name) {
      Result<SshSignature> sig = ParseSshSignature(row.text);
      REQUIRE_FALSE(sig.ok());
      CHECK(sig.status().code() == Code::kInvalid);
      CHECK_MESSAGE(sig.status().message().find(row.error) != std::string::npos,
                    sig.status().message());
    }
  }
  SUBCASE("a short Ed25519 key is malformed") {
    Result<SshSignature> sig = ParseSshSignature(Read("ed25519.sig"));
    REQUIRE(sig.ok());
    sig->public_key = Str("ssh-ed25519") + Str(std::string(31, 'k'));
    CHECK(VerifySshSignature(*sig, "x").message() == "malformed ssh-ed25519 public key");
  }
}

TEST_CASE("ssh signature: base64") {
  std::string out;
  CHECK(DecodeBase64("aGVsbG8=", &out));
  CHECK(out == "hello");
  CHECK(DecodeBase64("aGVsbG8", &out));
  CHECK(out == "hello");
  CHECK(DecodeBase64("", &out));
  CHECK(out.empty());
  CHECK_FALSE(DecodeBase64("aGVsbG8=x", &out));
  CHECK_FALSE(DecodeBase64("aGVs bG8=", &out));
  CHECK_FALSE(DecodeBase64("a", &out));
  CHECK_FALSE(DecodeBase64("aGVsbG9=", &out));  // non-zero leftover bits
}

}  // namespace
}  // namespace reconcile
