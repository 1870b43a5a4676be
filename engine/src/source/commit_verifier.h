// CommitVerifier: decides whether a commit's signature (git's gpgsig
// header) is one the operator trusts (CommitVerifyOptions, source.h):
// OpenPGP through OpenPgpKeyring (GPGME), SSH in process (SshSignature +
// AllowedSigners). The trust file is read at Open and read again at each
// Verify; a changed file is loaded anew (a file that became unreadable or
// malformed fails every verification until it is fixed). Verdicts are kept
// per (commit, trust file content), so a controller's passes over the same
// commit check it once.
//
// Thread-safety: one verifier may be used from one thread at a time
// (blocking: OpenPGP runs gpg).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "reconcile/source.h"
#include "reconcile/status.h"
#include "source/allowed_signers.h"
#include "source/openpgp_keyring.h"

namespace reconcile {

class CommitVerifier {
 public:
  // `options.mode` must not be kOff. kInvalid when the keys cannot be read
  // or hold nothing usable (naming the file, and line for allowed_signers).
  static Result<std::unique_ptr<CommitVerifier>> Open(const CommitVerifyOptions& options);

  // Checks the commit `commit_id`: `signature` is its gpgsig header (empty:
  // unsigned), `signed_data` the commit object without it, `when` its
  // committer time (Unix seconds; allowed_signers validity is checked at
  // it, as git does). Ok: who signed, for people ("OpenPGP key <fpr>",
  // "SSH key SHA256:... (principals)"). kInvalid: why it is not accepted
  // ("not signed", "signed by unknown key ...", "signature does not
  // verify", ...), without the commit id. Other codes: the check could not
  // run (gpg missing); retry.
  Result<std::string> Verify(const std::string& commit_id, std::string_view signature,
                             std::string_view signed_data, std::int64_t when);

  // "--verify-commits openpgp" / "--verify-commits ssh" (for messages).
  std::string ModeName() const;

 private:
  explicit CommitVerifier(CommitVerifyOptions options) : options_(std::move(options)) {}
  // Reads the trust file(s); reloads when their bytes changed.
  Status Refresh();
  Result<std::string> VerifySsh(std::string_view signature, std::string_view signed_data,
                                std::int64_t when);

  CommitVerifyOptions options_;
  std::string trust_bytes_;  // what the trust file(s) held when last loaded
  bool loaded_ = false;
  std::unique_ptr<OpenPgpKeyring> keyring_;
  std::vector<AllowedSigner> signers_;
  std::map<std::string, Result<std::string>> verdicts_;  // by commit id, for trust_bytes_
};

// Reads the trust file(s) of `options` whole (a folder: its regular,
// non-hidden files in name order, each preceded by its name), for change
// detection. kInvalid when missing or unreadable.
Result<std::string> ReadTrust(const CommitVerifyOptions& options);

}  // namespace reconcile
