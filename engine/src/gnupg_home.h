// GnupgHome: a private, temporary GnuPG home (GNUPGHOME) for GPGME, never
// the user's ~/.gnupg: a 0700 folder "reconcile-gnupg-XXXXXX" made with
// mkdtemp. The destructor stops the gpg-agent GnuPG may have started for it
// (`gpgconf --homedir HOME --kill gpg-agent`) and removes the folder,
// retrying for up to 2 s while the agent finishes its writes as it exits.
// Shared by the two GPGME users: SOPS data keys (pgp_keyring.h) and signed
// commits (source/openpgp_keyring.h).
//
// Thread-safety: Create may be called from any thread; one home belongs to
// one owner.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "reconcile/status.h"

namespace reconcile {

class GnupgHome {
 public:
  enum class Where {
    kTmpfs,  // /dev/shm when writable (secret keys never reach a disk), else as kTemp
    kTemp,   // $TMPDIR, else /tmp
  };
  // Initializes GPGME (once per process), checks that gpg can be run
  // (kUnavailable naming Debian's gnupg otherwise) and makes the folder
  // (kFailed when it cannot).
  static Result<std::unique_ptr<GnupgHome>> Create(Where where);
  ~GnupgHome();
  GnupgHome(const GnupgHome&) = delete;
  GnupgHome& operator=(const GnupgHome&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  explicit GnupgHome(std::filesystem::path path) : path_(std::move(path)) {}
  std::filesystem::path path_;
};

}  // namespace reconcile
