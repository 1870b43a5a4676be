#include "reconcile/secrets.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace reconcile {
namespace {

constexpr size_t kMaxSecretBytes = 1u << 20;

bool IsPlainFileName(std::string_view name) {
  return !name.empty() && name != "." && name.find('/') == std::string_view::npos &&
         name.find('\\') == std::string_view::npos && name.find("..") == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

// Reads secrets_dir/name; on failure returns false and sets `problem` (which
// names the file and what to do, never any content).
bool ReadSecretFile(const std::filesystem::path& dir, const std::string& name, std::string* value,
                    std::string* problem) {
  const std::string quoted = "secret file '" + name + "'";
  if (!IsPlainFileName(name)) {
    *problem = quoted + " is not a plain file name in the secrets folder (no '/', no '..')";
    return false;
  }
  if (dir.empty()) {
    *problem = quoted + " is needed but no secrets folder is set (set --secrets DIR)";
    return false;
  }
  const std::filesystem::path path = dir / name;
  // O_NONBLOCK: a FIFO planted in the folder must not hang the engine.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      *problem = quoted + " not found in " + dir.string() + " (set --secrets DIR)";
    } else {
      *problem = quoted + " in " + dir.string() + " cannot be opened: " + std::strerror(err);
    }
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    *problem = quoted + " in " + dir.string() + " is not a regular file";
    return false;
  }
  std::string data;
  char buf[16384];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      *problem = quoted + " in " + dir.string() + " cannot be read: " + std::strerror(err);
      return false;
    }
    if (n == 0) break;
    if (data.size() + static_cast<size_t>(n) > kMaxSecretBytes) {
      ::close(fd);
      *problem = quoted + " in " + dir.string() + " is larger than 1 MiB";
      return false;
    }
    data.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (!data.empty() && data.back() == '\n') {
    data.pop_back();
    if (!data.empty() && data.back() == '\r') data.pop_back();
  }
  *value = std::move(data);
  return true;
}

}  // namespace

Result<std::map<std::string, std::string>> ResolveSecrets(
    const std::map<std::string, SecretRef>& refs, const std::filesystem::path& secrets_dir) {
  std::map<std::string, std::string> values;
  std::vector<std::string> problems;
  for (const auto& [env_name, ref] : refs) {
    std::string value;
    std::string problem;
    switch (ref.source) {
      case SecretRef::Source::kFile:
        if (!ReadSecretFile(secrets_dir, ref.name, &value, &problem)) {
          problems.push_back(env_name + ": " + problem);
          continue;
        }
        break;
      case SecretRef::Source::kEnv: {
        const char* v = ref.name.empty() ? nullptr : std::getenv(ref.name.c_str());
        if (v == nullptr) {
          problems.push_back(env_name + ": environment variable " +
                             (ref.name.empty() ? std::string("(empty name)") : ref.name) +
                             " is not set");
          continue;
        }
        value = v;
        break;
      }
    }
    values.emplace(env_name, std::move(value));
  }
  if (!problems.empty()) {
    std::string msg = problems.size() == 1
                          ? "1 secret is missing: "
                          : std::to_string(problems.size()) + " secrets are missing: ";
    for (size_t i = 0; i < problems.size(); ++i) {
      if (i > 0) msg += "; ";
      msg += problems[i];
    }
    return Status::Invalid(msg);
  }
  return values;
}

}  // namespace reconcile
