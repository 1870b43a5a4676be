// SshSignature: an SSHSIG signature (OpenSSH's PROTOCOL.sshsig), the form
// `git commit -S` writes with gpg.format=ssh, parsed and checked in process
// with OpenSSL (no ssh-keygen at run time). Keys: ssh-ed25519, ssh-rsa
// (signatures rsa-sha2-256 / rsa-sha2-512; SHA-1 "ssh-rsa" signatures are
// refused, as ssh-keygen refuses them), ecdsa-sha2-nistp256/384/521.
// Security keys (sk-*) and certificates are not supported.
//
// Plain values and pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "reconcile/status.h"

namespace reconcile {

struct SshSignature {
  std::string public_key;  // the signer's key, SSH wire format (as in authorized_keys, decoded)
  std::string key_type;    // the key's type: "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", ...
  std::string sig_namespace;  // "git" for commits
  std::string reserved;
  std::string hash_algorithm;       // "sha256" or "sha512": H(message) in the signed blob
  std::string signature_algorithm;  // "ssh-ed25519", "rsa-sha2-512", "ecdsa-sha2-nistp256", ...
  std::string signature;            // the algorithm's signature bytes
};

// Parses the armored form ("-----BEGIN SSH SIGNATURE-----", base64 lines,
// "-----END SSH SIGNATURE-----"). kInvalid naming what is malformed (armor,
// base64, magic, version, a truncated field, trailing bytes).
Result<SshSignature> ParseSshSignature(std::string_view armored);

// Checks `sig` over `message` with the key the signature carries (who that
// key belongs to is the caller's question: allowed_signers.h). The signed
// blob is PROTOCOL.sshsig's (MAGIC_PREAMBLE, namespace, reserved,
// hash_algorithm, H(message)). Ok when it verifies; kInvalid "signature does
// not verify" when it does not, or naming an unsupported or malformed key or
// algorithm.
Status VerifySshSignature(const SshSignature& sig, std::string_view message);

// "SHA256:<base64 without padding>" of a key in wire format, as
// `ssh-keygen -l` prints it.
std::string SshFingerprint(std::string_view key_blob);

// Strict base64 (RFC 4648, padding optional at the end, no whitespace):
// false when `text` is not base64 (`out` is then unspecified).
bool DecodeBase64(std::string_view text, std::string* out);

// The type name a key in wire format starts with ("" when malformed).
std::string SshKeyType(std::string_view key_blob);

}  // namespace reconcile
