#include "gnupg_home.h"

#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <system_error>

#include <gpgme.h>

extern char** environ;

namespace reconcile {
namespace {

namespace fs = std::filesystem;

// Runs `gpgconf --homedir HOME --kill gpg-agent`: stops only the agent of
// this home. Errors are ignored (no agent may have been started).
void KillAgent(const std::string& home) {
  std::string prog = "gpgconf";
  std::string homedir_flag = "--homedir";
  std::string home_copy = home;
  std::string kill_flag = "--kill";
  std::string agent = "gpg-agent";
  char* argv[] = {prog.data(),      homedir_flag.data(), home_copy.data(),
                  kill_flag.data(), agent.data(),        nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  if (posix_spawnp(&pid, prog.c_str(), &actions, nullptr, argv, environ) == 0) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  posix_spawn_file_actions_destroy(&actions);
}

fs::path TempBase() {
  const char* tmp = std::getenv("TMPDIR");
  return tmp != nullptr && *tmp != '\0' ? fs::path(tmp) : fs::path("/tmp");
}

}  // namespace

Result<std::unique_ptr<GnupgHome>> GnupgHome::Create(Where where) {
  static std::once_flag once;
  std::call_once(once, [] { gpgme_check_version(nullptr); });
  if (gpgme_error_t err = gpgme_engine_check_version(GPGME_PROTOCOL_OpenPGP); err != 0) {
    return Status::Unavailable("OpenPGP needs gpg (Debian's gnupg), installed and recent enough: " +
                               std::string(gpgme_strerror(err)));
  }
  fs::path base = TempBase();
  if (where == Where::kTmpfs && ::access("/dev/shm", W_OK | X_OK) == 0) base = "/dev/shm";
  std::string templ = (base / "reconcile-gnupg-XXXXXX").string();
  if (::mkdtemp(templ.data()) == nullptr) {
    return Status::Failed("cannot create a temporary GnuPG home under " + base.string() + ": " +
                          std::strerror(errno));
  }
  ::chmod(templ.c_str(), 0700);  // mkdtemp's own mode; kept whatever the umask
  return std::unique_ptr<GnupgHome>(new GnupgHome(templ));
}

GnupgHome::~GnupgHome() {
  KillAgent(path_.string());
  for (int attempt = 0; attempt < 40; ++attempt) {
    std::error_code ec;
    fs::remove_all(path_, ec);
    if (!fs::exists(path_, ec)) break;
    ::usleep(50 * 1000);
  }
}

}  // namespace reconcile
