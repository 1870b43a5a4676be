// PgpKeyring: a private, temporary GnuPG home (GNUPGHOME) holding the
// operator's OpenPGP secret keys, used through Debian's libgpgme to decrypt
// SOPS data keys wrapped to OpenPGP recipients. The user's ~/.gnupg is never
// read or written. The destructor stops the gpg-agent that GnuPG started for
// the home (gpgconf --homedir HOME --kill gpg-agent) and removes the folder.
//
// Passphrase-protected secret keys are not supported (no pinentry: a
// protected key fails to decrypt with a clear error). Errors never contain
// key material or plaintext.
//
// Not thread-safe: one keyring per decryption (or guard it).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "reconcile/status.h"

namespace reconcile {

class PgpKeyring {
 public:
  // Makes the temporary home and imports `secret_keys` (each an armored or
  // binary OpenPGP secret-key block, e.g. `gpg --export-secret-keys -a`).
  // Fails when GnuPG is missing or a block holds no secret key; `sources`
  // (same size as secret_keys, or empty) name the blocks in errors.
  static Result<std::unique_ptr<PgpKeyring>> Create(const std::vector<std::string>& secret_keys,
                                                    const std::vector<std::string>& sources = {});
  ~PgpKeyring();
  PgpKeyring(const PgpKeyring&) = delete;
  PgpKeyring& operator=(const PgpKeyring&) = delete;

  // Decrypts an (armored) OpenPGP message. kNotFound when none of the
  // imported keys is a recipient.
  Result<std::string> Decrypt(std::string_view message);

  // The temporary GnuPG home (removed by the destructor).
  const std::string& home() const { return home_; }

  // Fingerprints (upper-case hex) of the imported secret keys and subkeys.
  const std::vector<std::string>& fingerprints() const { return fingerprints_; }

 private:
  PgpKeyring() = default;
  std::string home_;
  void* ctx_ = nullptr;  // gpgme_ctx_t
  bool passphrase_asked_ = false;
  std::vector<std::string> fingerprints_;
};

}  // namespace reconcile
