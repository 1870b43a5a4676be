// AgeFile: decrypts an age v1 file (C2SP age.md, "age-encryption.org/v1") in
// process, for SOPS data keys wrapped to age recipients. Only X25519
// recipients (identities "AGE-SECRET-KEY-1..."); scrypt (passphrase) and
// plugin stanzas are not supported. Armored ("-----BEGIN AGE ENCRYPTED
// FILE-----") and binary files are read.
//
// Cryptography is OpenSSL 3's (X25519, HKDF-SHA-256, HMAC-SHA-256,
// ChaCha20-Poly1305). Errors never contain key material or plaintext.
// Thread-safe (no shared state).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "reconcile/status.h"

namespace reconcile {

// One X25519 identity: the 32-byte scalar. The destructor wipes it.
class AgeIdentity {
 public:
  AgeIdentity() = default;
  AgeIdentity(const AgeIdentity&) = default;
  AgeIdentity& operator=(const AgeIdentity&) = default;
  ~AgeIdentity();

  // Parses "AGE-SECRET-KEY-1..." (Bech32, HRP "age-secret-key-", either case
  // but not mixed). Errors say what is wrong, never echo the text.
  static Result<AgeIdentity> Parse(std::string_view text);

  // The recipient ("age1...") this identity decrypts for.
  std::string Recipient() const;

  const std::array<std::uint8_t, 32>& scalar() const { return scalar_; }

 private:
  std::array<std::uint8_t, 32> scalar_{};
};

// Reads identities from the text of an identity file (age-keygen's output,
// SOPS_AGE_KEY_FILE): one "AGE-SECRET-KEY-1..." per line; blank lines and
// lines starting with '#' are skipped. Any other line is an error naming its
// line number. `source` names the file in errors.
Result<std::vector<AgeIdentity>> ParseAgeIdentities(std::string_view text, std::string_view source);

// Decrypts `file` (armored or binary) with the first identity that opens one
// of its X25519 stanzas. Fails with kNotFound when no identity matches,
// kInvalid for a malformed or tampered file (bad header MAC, a chunk that
// does not authenticate, truncation).
Result<std::string> DecryptAge(std::string_view file, const std::vector<AgeIdentity>& identities);

}  // namespace reconcile
