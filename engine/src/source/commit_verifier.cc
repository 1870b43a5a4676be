#include "source/commit_verifier.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

#include "reconcile/diagnostic.h"
#include "source/ssh_signature.h"

namespace reconcile {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxVerdicts = 256;

Result<std::string> ReadWhole(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return Status::Invalid(file.string() + ": cannot read");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return Status::Invalid(file.string() + ": cannot read");
  return bytes;
}

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

}  // namespace

Result<std::string> ReadTrust(const CommitVerifyOptions& options) {
  const std::string flag =
      options.mode == CommitVerifyMode::kSsh ? "--allowed-signers" : "--trusted-keys";
  if (options.keys.empty()) {
    return Status::Invalid("--verify-commits needs " + flag +
                           " (the keys commits are checked against)");
  }
  std::error_code ec;
  if (options.mode == CommitVerifyMode::kOpenPgp && fs::is_directory(options.keys, ec)) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(options.keys, ec)) {
      const std::string name = e.path().filename().string();
      if (!name.empty() && name[0] != '.' && e.is_regular_file(ec)) files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    std::string all;
    for (const fs::path& f : files) {
      Result<std::string> bytes = ReadWhole(f);
      if (!bytes.ok()) return bytes.status();
      all += f.filename().string() + "\n" + std::to_string(bytes->size()) + "\n" + *bytes;
    }
    return all;
  }
  if (!fs::is_regular_file(options.keys, ec)) {
    return Status::Invalid(flag + " " + options.keys.string() + ": no such file");
  }
  return ReadWhole(options.keys);
}

Result<std::unique_ptr<CommitVerifier>> CommitVerifier::Open(const CommitVerifyOptions& options) {
  if (options.mode == CommitVerifyMode::kOff) {
    return Status::Internal("CommitVerifier: verification is off");
  }
  std::unique_ptr<CommitVerifier> v(new CommitVerifier(options));
  if (Status s = v->Refresh(); !s.ok()) return s;
  return v;
}

std::string CommitVerifier::ModeName() const {
  return options_.mode == CommitVerifyMode::kSsh ? "--verify-commits ssh"
                                                 : "--verify-commits openpgp";
}

Status CommitVerifier::Refresh() {
  Result<std::string> bytes = ReadTrust(options_);
  if (!bytes.ok()) return bytes.status();
  if (loaded_ && *bytes == trust_bytes_) return Status::Ok();
  loaded_ = false;
  verdicts_.clear();
  keyring_.reset();
  signers_.clear();
  if (options_.mode == CommitVerifyMode::kOpenPgp) {
    Result<std::unique_ptr<OpenPgpKeyring>> ring = OpenPgpKeyring::Open(options_.keys);
    if (!ring.ok()) return ring.status().WithContext("--trusted-keys");
    keyring_ = std::move(*ring);
  } else {
    Diagnostics diagnostics;
    signers_ = ParseAllowedSigners(*bytes, options_.keys.string(), diagnostics);
    if (diagnostics.HasErrors()) {
      std::string all;
      for (const Diagnostic& d : diagnostics.items())
        all += (all.empty() ? "" : "; ") + d.ToString();
      return Status::Invalid("--allowed-signers: " + all);
    }
    if (signers_.empty()) {
      return Status::Invalid("--allowed-signers " + options_.keys.string() + ": no signer listed");
    }
  }
  trust_bytes_ = std::move(*bytes);
  loaded_ = true;
  return Status::Ok();
}

Result<std::string> CommitVerifier::Verify(const std::string& commit_id, std::string_view signature,
                                           std::string_view signed_data, std::int64_t when) {
  if (Status s = Refresh(); !s.ok()) {
    // The trust cannot be read: nothing is accepted until it can.
    return Status::Invalid("cannot check the signature: " + s.message());
  }
  if (auto it = verdicts_.find(commit_id); it != verdicts_.end()) return it->second;
  Result<std::string> verdict = Status::Invalid("not signed (" + ModeName() + ")");
  const bool pgp = StartsWith(signature, "-----BEGIN PGP SIGNATURE-----");
  const bool ssh = StartsWith(signature, "-----BEGIN SSH SIGNATURE-----");
  if (signature.empty()) {
    // verdict stays "not signed"
  } else if (!pgp && !ssh) {
    verdict = Status::Invalid(StartsWith(signature, "-----BEGIN SIGNED MESSAGE-----")
                                  ? "signed with X.509 (gpgsm), which is not supported"
                                  : "signature of an unknown format");
  } else if (ssh && options_.mode != CommitVerifyMode::kSsh) {
    verdict = Status::Invalid("signed with an SSH key, but " + ModeName() + " expects OpenPGP");
  } else if (pgp && options_.mode != CommitVerifyMode::kOpenPgp) {
    verdict = Status::Invalid("signed with OpenPGP, but " + ModeName() + " expects SSH");
  } else if (pgp) {
    Result<std::string> fpr = keyring_->Verify(signature, signed_data);
    if (!fpr.ok() && fpr.status().code() != Code::kInvalid) return fpr.status();  // not kept
    verdict = fpr.ok() ? Result<std::string>("OpenPGP key " + *fpr) : fpr;
  } else {
    verdict = VerifySsh(signature, signed_data, when);
  }
  if (verdicts_.size() >= kMaxVerdicts) verdicts_.clear();
  verdicts_.emplace(commit_id, verdict);
  return verdict;
}

Result<std::string> CommitVerifier::VerifySsh(std::string_view signature,
                                              std::string_view signed_data, std::int64_t when) {
  Result<SshSignature> sig = ParseSshSignature(signature);
  if (!sig.ok()) return Status::Invalid("malformed signature: " + sig.status().message());
  if (sig->sig_namespace != "git") {
    return Status::Invalid("SSH signature for namespace '" + sig->sig_namespace + "', not 'git'");
  }
  const std::string fingerprint = SshFingerprint(sig->public_key);
  std::string why;
  const AllowedSigner* signer = FindAllowedSigner(signers_, sig->public_key, "git", when, &why);
  if (signer == nullptr) {
    return Status::Invalid("signed by unknown key " + fingerprint +
                           (why.empty() ? " (not in --allowed-signers)" : " (" + why + ")"));
  }
  if (Status s = VerifySshSignature(*sig, signed_data); !s.ok()) {
    return Status::Invalid(s.message() + " (key " + fingerprint + ")");
  }
  return "SSH key " + fingerprint + " (" + signer->principals + ")";
}

}  // namespace reconcile
