// OpenPgpKeyring: the operator's OpenPGP public keys, imported through
// GPGME into a private, temporary GNUPGHOME (a 0700 folder made with
// mkdtemp under $TMPDIR, never ~/.gnupg) that the keyring removes when it
// is destroyed. Every key imported is the operator's trust: each primary
// key is marked ultimately trusted there (gpg's trusted-key), so a good
// signature of one of them is GPGME_SIGSUM_VALID. The one adapter that
// wraps GPGME: no GPGME type or error code leaves openpgp_keyring.cc.
//
// Thread-safety: one keyring may be used from one thread at a time (each
// call runs gpg through GPGME; blocking).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "reconcile/status.h"

namespace reconcile {

class OpenPgpKeyring {
 public:
  // Imports the public keys of `keys`: one file (armored or binary
  // OpenPGP), or a folder whose regular files are read in name order
  // (hidden files skipped). kInvalid when a file cannot be read, holds no
  // OpenPGP public key, or the folder is empty; kFailed when GPGME or gpg
  // cannot be used.
  static Result<std::unique_ptr<OpenPgpKeyring>> Open(const std::filesystem::path& keys);
  ~OpenPgpKeyring();
  OpenPgpKeyring(const OpenPgpKeyring&) = delete;
  OpenPgpKeyring& operator=(const OpenPgpKeyring&) = delete;

  // Checks the detached `signature` (armored) over `data`. Ok: the
  // fingerprint of the key that made it (40 hex, upper case; a signing
  // subkey's own). Accepted only when GPGME sums it up as VALID: a good
  // signature by a key of this keyring that is neither expired nor revoked,
  // and not expired itself. Otherwise kInvalid saying why, for people:
  // "signed by unknown key <id>", "signature does not verify", "signed by
  // revoked key <fpr>", "signed by expired key <fpr>", "the signature has
  // expired", ...
  Result<std::string> Verify(std::string_view signature, std::string_view data);

  // Fingerprints of the primary keys imported (upper-case hex), sorted.
  const std::vector<std::string>& fingerprints() const { return fingerprints_; }

 private:
  OpenPgpKeyring() = default;
  std::filesystem::path home_;
  std::vector<std::string> fingerprints_;
};

}  // namespace reconcile
