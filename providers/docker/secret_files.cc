#include "docker/secret_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "reconcile/provider.h"

namespace reconcile::docker {
namespace {

namespace fs = std::filesystem;

Status Io(const std::string& what, const std::string& path, int err) {
  return Status::Failed("secret files: cannot " + what + " " + path + ": " + std::strerror(err));
}

// Creates `path` 0700 when missing; refuses anything but a folder owned by
// this user (lstat: a symlink is refused), and makes it 0700.
Status PrivateFolder(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return Io("create", path, errno);
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return Io("inspect", path, errno);
  if (!S_ISDIR(st.st_mode) || st.st_uid != ::geteuid()) {
    return Status::Invalid("secret files: " + path +
                           " is not a folder owned by this user (a symlink or someone else's "
                           "folder): refusing to write secrets there; remove it");
  }
  if ((st.st_mode & 07777) != 0700 && ::chmod(path.c_str(), 0700) != 0) {
    return Io("restrict", path, errno);
  }
  return Status::Ok();
}

Status WriteFile(const std::string& dir, const std::string& name, const std::string& value,
                 int mode) {
  const std::string path = dir + "/" + name;
  const std::string tmp = dir + "/." + name + ".new";
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return Io("create", tmp, errno);
  std::size_t done = 0;
  while (done < value.size()) {
    ssize_t n = ::write(fd, value.data() + done, value.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return Io("write", tmp, err);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fchmod(fd, static_cast<mode_t>(mode & 0777)) != 0) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return Io("chmod", tmp, err);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Io("rename", tmp, err);
  }
  return Status::Ok();
}

}  // namespace

std::string SecretFileStore::Dir(const std::string& target, const std::string& agent) const {
  return root_ + "/" + target + "/" + agent;
}

Status SecretFileStore::Write(const std::string& target, const std::string& agent,
                              const std::vector<SecretFileMount>& files,
                              const std::map<std::string, std::string>& values) const {
  for (const SecretFileMount& f : files) {
    if (values.count(SecretFileValueKey(f.name)) == 0) {
      return Status::Invalid("docker: secretFiles '" + f.name + "' has no resolved value");
    }
  }
  for (const std::string& folder : {root_, root_ + "/" + target, Dir(target, agent)}) {
    Status st = PrivateFolder(folder);
    if (!st.ok()) return st;
  }
  const std::string dir = Dir(target, agent);
  std::set<std::string> wanted;
  for (const SecretFileMount& f : files) {
    Status st = WriteFile(dir, f.name, values.at(SecretFileValueKey(f.name)), f.mode);
    if (!st.ok()) return st;
    wanted.insert(f.name);
  }
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (wanted.count(name) == 0) fs::remove(e.path(), ec);
  }
  return Status::Ok();
}

Status SecretFileStore::Remove(const std::string& target, const std::string& agent) const {
  const std::string dir = Dir(target, agent);
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    return errno == ENOENT ? Status::Ok() : Io("inspect", dir, errno);
  }
  if (!S_ISDIR(st.st_mode) || st.st_uid != ::geteuid()) {
    return Status::Invalid("secret files: " + dir + " is not a folder owned by this user");
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ec) return Status::Failed("secret files: cannot remove " + dir + ": " + ec.message());
  return Status::Ok();
}

}  // namespace reconcile::docker
