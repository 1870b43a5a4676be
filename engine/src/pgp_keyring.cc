#include "pgp_keyring.h"

#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>

#include <gpgme.h>
#include <openssl/crypto.h>

extern char** environ;

namespace reconcile {
namespace {

gpgme_ctx_t Ctx(void* p) { return static_cast<gpgme_ctx_t>(p); }

std::string GpgError(gpgme_error_t err) {
  char buf[256];
  gpgme_strerror_r(err, buf, sizeof buf);
  return std::string(gpgme_strsource(err)) + ": " + buf;
}

// Runs `gpgconf --homedir HOME --kill gpg-agent`; stops only the agent of
// this home. Errors are ignored (no agent may have been started).
void KillAgent(const std::string& home) {
  std::string homedir_flag = "--homedir";
  std::string kill_flag = "--kill";
  std::string agent = "gpg-agent";
  std::string prog = "gpgconf";
  std::string home_copy = home;
  char* argv[] = {prog.data(),      homedir_flag.data(), home_copy.data(),
                  kill_flag.data(), agent.data(),        nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  if (posix_spawnp(&pid, "gpgconf", &actions, nullptr, argv, environ) == 0) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  posix_spawn_file_actions_destroy(&actions);
}

// GnuPG asks for a passphrase (loopback pinentry): none is given; the ask is
// recorded so that the error can say the key is protected.
gpgme_error_t RefusePassphrase(void* hook, const char*, const char*, int, int) {
  *static_cast<bool*>(hook) = true;
  return gpg_error(GPG_ERR_CANCELED);
}

}  // namespace

Result<std::unique_ptr<PgpKeyring>> PgpKeyring::Create(const std::vector<std::string>& secret_keys,
                                                       const std::vector<std::string>& sources) {
  static std::once_flag once;
  std::call_once(once, [] { gpgme_check_version(nullptr); });
  if (gpgme_engine_check_version(GPGME_PROTOCOL_OpenPGP) != 0) {
    return Status::Unavailable("OpenPGP: GnuPG (gpg) is not installed or too old for gpgme");
  }
  std::unique_ptr<PgpKeyring> ring(new PgpKeyring());
  // On tmpfs when there is one (/dev/shm), so the imported secret keys do not
  // reach a disk; the system temp folder otherwise.
  std::error_code ec;
  std::filesystem::path base = "/dev/shm";
  if (!std::filesystem::is_directory(base, ec) || ::access(base.c_str(), W_OK | X_OK) != 0) {
    base = std::filesystem::temp_directory_path(ec);
    if (ec) base = "/tmp";
  }
  std::string tmpl = (base / "reconcile-gnupg-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return Status::Failed("OpenPGP: cannot create a temporary GnuPG home: " +
                          std::string(std::strerror(errno)));
  }
  ring->home_ = tmpl;  // mkdtemp makes it 0700
  gpgme_ctx_t ctx = nullptr;
  gpgme_error_t err = gpgme_new(&ctx);
  if (err != 0) return Status::Internal("OpenPGP: gpgme_new: " + GpgError(err));
  ring->ctx_ = ctx;
  err = gpgme_set_protocol(ctx, GPGME_PROTOCOL_OpenPGP);
  if (err == 0)
    err = gpgme_ctx_set_engine_info(ctx, GPGME_PROTOCOL_OpenPGP, nullptr, ring->home_.c_str());
  if (err == 0) err = gpgme_set_pinentry_mode(ctx, GPGME_PINENTRY_MODE_LOOPBACK);
  if (err == 0) gpgme_set_passphrase_cb(ctx, RefusePassphrase, &ring->passphrase_asked_);
  if (err != 0) return Status::Internal("OpenPGP: configuring gpgme: " + GpgError(err));

  for (std::size_t i = 0; i < secret_keys.size(); ++i) {
    std::string name = i < sources.size() ? sources[i] : "OpenPGP key #" + std::to_string(i + 1);
    gpgme_data_t data = nullptr;
    err = gpgme_data_new_from_mem(&data, secret_keys[i].data(), secret_keys[i].size(), 0);
    if (err != 0) return Status::Internal(name + ": " + GpgError(err));
    err = gpgme_op_import(ctx, data);
    gpgme_data_release(data);
    if (err != 0) return Status::Invalid(name + ": GnuPG could not import it: " + GpgError(err));
    gpgme_import_result_t res = gpgme_op_import_result(ctx);
    if (res == nullptr || res->secret_read == 0) {
      return Status::Invalid(name + ": holds no OpenPGP secret key");
    }
  }
  // List the secret keys now in the home.
  err = gpgme_op_keylist_start(ctx, nullptr, 1);
  while (err == 0) {
    gpgme_key_t key = nullptr;
    err = gpgme_op_keylist_next(ctx, &key);
    if (err != 0) break;
    for (gpgme_subkey_t sub = key->subkeys; sub != nullptr; sub = sub->next) {
      if (sub->fpr != nullptr) ring->fingerprints_.emplace_back(sub->fpr);
    }
    gpgme_key_unref(key);
  }
  gpgme_op_keylist_end(ctx);
  return ring;
}

PgpKeyring::~PgpKeyring() {
  if (ctx_ != nullptr) gpgme_release(Ctx(ctx_));
  if (!home_.empty()) {
    KillAgent(home_);
    // The agent may still be finishing writes as it exits; retry until the
    // folder (with the imported secret keys) is gone, for up to 2 s.
    for (int attempt = 0; attempt < 40; ++attempt) {
      std::error_code ec;
      std::filesystem::remove_all(home_, ec);
      if (!std::filesystem::exists(home_, ec)) break;
      ::usleep(50 * 1000);
    }
  }
}

Result<std::string> PgpKeyring::Decrypt(std::string_view message) {
  gpgme_ctx_t ctx = Ctx(ctx_);
  gpgme_data_t cipher = nullptr;
  gpgme_data_t plain = nullptr;
  gpgme_error_t err = gpgme_data_new_from_mem(&cipher, message.data(), message.size(), 0);
  if (err != 0) return Status::Internal("OpenPGP: " + GpgError(err));
  err = gpgme_data_new(&plain);
  if (err != 0) {
    gpgme_data_release(cipher);
    return Status::Internal("OpenPGP: " + GpgError(err));
  }
  passphrase_asked_ = false;
  err = gpgme_op_decrypt(ctx, cipher, plain);
  gpgme_data_release(cipher);
  std::size_t len = 0;
  char* buf = gpgme_data_release_and_get_mem(plain, &len);
  std::string out;
  if (buf != nullptr) {
    if (err == 0) out.assign(buf, len);
    OPENSSL_cleanse(buf, len);
    gpgme_free(buf);
  }
  if (err != 0) {
    if (gpgme_err_code(err) == GPG_ERR_NO_SECKEY) {
      return Status::NotFound("OpenPGP: none of the imported secret keys is a recipient");
    }
    if (passphrase_asked_ || gpgme_err_code(err) == GPG_ERR_BAD_PASSPHRASE ||
        gpgme_err_code(err) == GPG_ERR_NO_PASSPHRASE) {
      return Status::Invalid(
          "OpenPGP: the secret key is passphrase-protected (not supported; export it without "
          "a passphrase for the engine)");
    }
    return Status::Invalid("OpenPGP: the message does not decrypt: " + GpgError(err));
  }
  return out;
}

}  // namespace reconcile
