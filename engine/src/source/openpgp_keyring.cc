// The GPGME adapter (openpgp_keyring.h). GPGME runs gpg (Debian's gnupg)
// with --homedir pointing at the keyring's private folder.
#include "source/openpgp_keyring.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include <gpgme.h>

namespace reconcile {
namespace {

namespace fs = std::filesystem;

struct CtxFree {
  void operator()(gpgme_ctx_t c) const { gpgme_release(c); }
};
struct DataFree {
  void operator()(gpgme_data_t d) const { gpgme_data_release(d); }
};
using CtxPtr = std::unique_ptr<gpgme_context, CtxFree>;
using DataPtr = std::unique_ptr<gpgme_data, DataFree>;

std::string GpgError(gpgme_error_t err) { return gpgme_strerror(err); }

void InitGpgme() {
  static std::once_flag once;
  std::call_once(once, [] { gpgme_check_version(nullptr); });
}

Result<CtxPtr> NewContext(const fs::path& home) {
  gpgme_ctx_t raw = nullptr;
  if (gpgme_error_t err = gpgme_new(&raw); err != 0) {
    return Status::Failed("GPGME: " + GpgError(err));
  }
  CtxPtr ctx(raw);
  if (gpgme_error_t err = gpgme_set_protocol(raw, GPGME_PROTOCOL_OpenPGP); err != 0) {
    return Status::Failed("GPGME: OpenPGP: " + GpgError(err));
  }
  if (gpgme_error_t err =
          gpgme_ctx_set_engine_info(raw, GPGME_PROTOCOL_OpenPGP, nullptr, home.c_str());
      err != 0) {
    return Status::Failed("GPGME: cannot use gpg: " + GpgError(err));
  }
  gpgme_set_offline(raw, 1);  // never fetch keys from the network
  return ctx;
}

Result<DataPtr> Data(std::string_view bytes) {
  gpgme_data_t raw = nullptr;
  if (gpgme_error_t err = gpgme_data_new_from_mem(&raw, bytes.data(), bytes.size(), 0); err != 0) {
    return Status::Failed("GPGME: " + GpgError(err));
  }
  return DataPtr(raw);
}

Result<std::vector<fs::path>> KeyFiles(const fs::path& keys) {
  std::error_code ec;
  if (fs::is_regular_file(keys, ec)) return std::vector<fs::path>{keys};
  if (!fs::is_directory(keys, ec)) {
    return Status::Invalid(keys.string() + ": no such file or folder of OpenPGP public keys");
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(keys, ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.' || !e.is_regular_file(ec)) continue;
    files.push_back(e.path());
  }
  if (ec) return Status::Invalid(keys.string() + ": " + ec.message());
  std::sort(files.begin(), files.end());
  if (files.empty()) return Status::Invalid(keys.string() + ": the folder holds no key file");
  return files;
}

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

Result<std::unique_ptr<OpenPgpKeyring>> OpenPgpKeyring::Open(const fs::path& keys) {
  InitGpgme();
  Result<std::vector<fs::path>> files = KeyFiles(keys);
  if (!files.ok()) return files.status();
  if (gpgme_error_t err = gpgme_engine_check_version(GPGME_PROTOCOL_OpenPGP); err != 0) {
    return Status::Failed("OpenPGP verification needs gpg (Debian's gnupg): " + GpgError(err));
  }

  std::unique_ptr<OpenPgpKeyring> ring(new OpenPgpKeyring());
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/reconcile-gnupg-XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) {
    return Status::Failed("cannot create a temporary GNUPGHOME under " +
                          fs::path(templ).parent_path().string());
  }
  ring->home_ = templ;  // removed by the destructor from here on
  chmod(templ.c_str(), 0700);
  {
    // Nothing from the network, no agent for public keys.
    std::ofstream conf(ring->home_ / "gpg.conf");
    conf << "no-auto-key-retrieve\nno-autostart\n";
    if (!conf) return Status::Failed("cannot write " + (ring->home_ / "gpg.conf").string());
  }

  Result<CtxPtr> ctx = NewContext(ring->home_);
  if (!ctx.ok()) return ctx.status();
  for (const fs::path& file : *files) {
    std::ifstream in(file, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in && !in.eof()) return Status::Invalid(file.string() + ": cannot read");
    if (bytes.find("-----BEGIN PGP PRIVATE KEY BLOCK-----") != std::string::npos) {
      return Status::Invalid(file.string() +
                             ": holds a private key; give only public keys (gpg --export "
                             "--armor)");
    }
    Result<DataPtr> data = Data(bytes);
    if (!data.ok()) return data.status();
    if (gpgme_error_t err = gpgme_op_import(ctx->get(), data->get()); err != 0) {
      return Status::Invalid(file.string() + ": cannot import: " + GpgError(err));
    }
    gpgme_import_result_t r = gpgme_op_import_result(ctx->get());
    if (r == nullptr || r->imported + r->unchanged == 0) {
      return Status::Invalid(file.string() + ": holds no OpenPGP public key");
    }
  }
  if (gpgme_error_t err = gpgme_op_keylist_start(ctx->get(), nullptr, 0); err != 0) {
    return Status::Failed("GPGME: cannot list the imported keys: " + GpgError(err));
  }
  while (true) {
    gpgme_key_t key = nullptr;
    if (gpgme_op_keylist_next(ctx->get(), &key) != 0) break;
    if (key->subkeys != nullptr && key->subkeys->fpr != nullptr) {
      ring->fingerprints_.push_back(Upper(key->subkeys->fpr));
    }
    gpgme_key_unref(key);
  }
  gpgme_op_keylist_end(ctx->get());
  std::sort(ring->fingerprints_.begin(), ring->fingerprints_.end());
  if (ring->fingerprints_.empty()) {
    return Status::Invalid(keys.string() + ": no OpenPGP public key imported");
  }
  // The operator's keys are this keyring's trust roots.
  std::ofstream conf(ring->home_ / "gpg.conf", std::ios::app);
  conf << "trust-model pgp\n";
  for (const std::string& fpr : ring->fingerprints_) {
    conf << "trusted-key " << fpr.substr(fpr.size() >= 16 ? fpr.size() - 16 : 0) << "\n";
  }
  if (!conf) return Status::Failed("cannot write " + (ring->home_ / "gpg.conf").string());
  return ring;
}

OpenPgpKeyring::~OpenPgpKeyring() {
  if (home_.empty()) return;
  std::error_code ec;
  fs::remove_all(home_, ec);
}

Result<std::string> OpenPgpKeyring::Verify(std::string_view signature, std::string_view data) {
  Result<CtxPtr> ctx = NewContext(home_);
  if (!ctx.ok()) return ctx.status();
  Result<DataPtr> sig = Data(signature);
  if (!sig.ok()) return sig.status();
  Result<DataPtr> text = Data(data);
  if (!text.ok()) return text.status();
  gpgme_error_t err = gpgme_op_verify(ctx->get(), sig->get(), text->get(), nullptr);
  gpgme_verify_result_t result = gpgme_op_verify_result(ctx->get());
  if (err != 0 && gpgme_err_code(err) != GPG_ERR_BAD_SIGNATURE) {
    const auto code = gpgme_err_code(err);
    if (code == GPG_ERR_NO_DATA || code == GPG_ERR_INV_DATA || code == GPG_ERR_BAD_DATA) {
      return Status::Invalid("malformed OpenPGP signature (" + GpgError(err) + ")");
    }
    return Status::Failed("gpg: cannot check the signature: " + GpgError(err));
  }
  if (result == nullptr || result->signatures == nullptr) {
    return Status::Invalid("malformed OpenPGP signature (no signature found)");
  }
  std::string why;
  for (gpgme_signature_t s = result->signatures; s != nullptr; s = s->next) {
    const std::string fpr = s->fpr ? Upper(s->fpr) : std::string("(no key id)");
    if ((s->summary & GPGME_SIGSUM_VALID) != 0 && gpgme_err_code(s->status) == GPG_ERR_NO_ERROR) {
      return fpr;
    }
    if (!why.empty()) continue;  // the first signature's reason
    const auto code = gpgme_err_code(s->status);
    if (code == GPG_ERR_NO_PUBKEY || (s->summary & GPGME_SIGSUM_KEY_MISSING) != 0) {
      why = "signed by unknown key " + fpr;
    } else if (code == GPG_ERR_BAD_SIGNATURE) {
      why = "signature does not verify (key " + fpr + ")";
    } else if ((s->summary & GPGME_SIGSUM_KEY_REVOKED) != 0) {
      why = "signed by revoked key " + fpr;
    } else if ((s->summary & GPGME_SIGSUM_KEY_EXPIRED) != 0) {
      why = "signed by expired key " + fpr;
    } else if ((s->summary & GPGME_SIGSUM_SIG_EXPIRED) != 0) {
      why = "the signature by key " + fpr + " has expired";
    } else {
      why = "the signature by key " + fpr + " is not valid (" + GpgError(s->status) +
            ", summary 0x" +
            [&] {
              std::ostringstream h;
              h << std::hex << s->summary;
              return h.str();
            }() +
            ")";
    }
  }
  return Status::Invalid(why);
}

}  // namespace reconcile
