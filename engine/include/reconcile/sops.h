// SOPS: decrypts a SOPS-encrypted document (getsops/sops; YAML, JSON or
// dotenv) in memory, with keys the operator provides, and verifies its MAC.
//
// The document's values are AES-256-GCM encrypted with one data key
// ("ENC[AES256_GCM,data:...,iv:...,tag:...,type:...]", the value's key path
// joined by ':' plus a trailing ':' as additional data). The data key is
// wrapped to each recipient in the `sops` metadata; this reads the age
// (X25519, decrypted in process with OpenSSL) and OpenPGP (libgpgme, in a
// private temporary GNUPGHOME) recipients. The MAC is the upper-case hex
// SHA-512 over the cleartext values in document order, stored encrypted with
// the data key and `sops.lastmodified` as additional data; a file whose MAC
// does not match, or that has none, is refused unless
// SopsOptions::allow_missing_mac (like `sops decrypt --ignore-mac`, which
// then also skips the comparison).
//
// Not supported (refused with a message saying so): KMS, GCP KMS, Azure Key
// Vault, Vault transit and other recipient kinds when no age/OpenPGP
// recipient can be used; several key groups (Shamir); the comment-based
// encryption rules (encrypted_comment_regex / unencrypted_comment_regex);
// multi-document YAML; the binary and INI stores.
//
// Values, keys and data keys never appear in errors: an error names the file,
// the line (YAML, dotenv) and the key path. Thread-safe (no shared state; the
// OpenPGP path uses its own temporary home per call).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "reconcile/status.h"

namespace reconcile {

enum class SopsFormat { kYaml, kJson, kDotenv };

// The format from a file name, as sops picks it: *.yaml / *.yml, *.json,
// *.env. Other names: kInvalid (the caller may ask for a format explicitly).
Result<SopsFormat> SopsFormatFromPath(std::string_view path);

// Parses "yaml", "json", "dotenv" (and "env").
Result<SopsFormat> ParseSopsFormat(std::string_view name);

// The operator's decryption keys. Plain data; the caller reads the files.
struct SopsKeys {
  // Texts of age identity files (age-keygen output; SOPS_AGE_KEY_FILE):
  // "AGE-SECRET-KEY-1..." lines, '#' comments.
  std::vector<std::string> age_identity_files;
  // Armored or binary OpenPGP secret-key blocks (gpg --export-secret-keys),
  // without a passphrase. Imported into a private, temporary GnuPG home.
  std::vector<std::string> pgp_secret_keys;
  // Names of the above for errors (file paths), same order; may be empty.
  std::vector<std::string> age_sources;
  std::vector<std::string> pgp_sources;
};

// Reads the operator's key files (the proposed --sops-age-key-file and
// --sops-pgp-key-file flags): each at most 1 MiB; age identity files are
// parsed now, so a bad one fails at start-up naming the file and line.
// Errors name the path, never the content.
Result<SopsKeys> ReadSopsKeyFiles(const std::vector<std::string>& age_key_files,
                                  const std::vector<std::string>& pgp_key_files);

struct SopsOptions {
  // Accept a document without a MAC, or whose MAC does not match (sops
  // --ignore-mac). Off by default; the README says why to leave it off.
  bool allow_missing_mac = false;
};

// One cleartext leaf of a decrypted document.
struct SopsValue {
  // The key path as sops uses it for the additional data (list items share
  // their list's path).
  std::vector<std::string> sops_path;
  // The address for Lookup: keys joined by '.', list items by their index
  // ("db.password", "hosts.0").
  std::string path;
  std::string value;  // cleartext (as decrypted; numbers and booleans as text)
  bool encrypted = false;
  int line = 0;  // 1-based in the file; 0 when unknown (JSON)
};

class SopsDocument {
 public:
  SopsDocument() = default;
  SopsDocument(const SopsDocument&) = default;
  SopsDocument& operator=(const SopsDocument&) = default;
  SopsDocument(SopsDocument&&) = default;
  SopsDocument& operator=(SopsDocument&&) = default;
  ~SopsDocument();  // wipes the cleartext

  // The value at `path`: keys joined by '.' ("db.password"), list items by
  // index ("hosts.0"); a dotenv key as it is written. A key that itself holds
  // '.' is found by its exact name first. kNotFound names the path (never a
  // value); kInvalid when `path` names a map or list rather than a value.
  Result<std::string> Lookup(std::string_view path) const;

  // Every leaf, in document order (nulls are left out).
  const std::vector<SopsValue>& values() const { return values_; }
  // The recipient that yielded the data key: "age" or "pgp".
  const std::string& decrypted_with() const { return decrypted_with_; }

 private:
  friend class SopsDecoder;
  std::vector<SopsValue> values_;
  std::vector<std::string> containers_;  // paths of maps and lists, for Lookup's errors
  std::string decrypted_with_;
};

// Decrypts `bytes` (the whole file) of `format`. `file` names it in errors.
// Errors: kInvalid for a malformed file, a tampered value, a MAC mismatch or
// a missing MAC; kNotFound when none of `keys` opens the data key; the
// message names the file and, where one is to blame, the key path.
Result<SopsDocument> DecryptSops(std::string_view bytes, SopsFormat format, const SopsKeys& keys,
                                 std::string_view file, const SopsOptions& options = {});

}  // namespace reconcile
