// SecretFileStore: the host folder where an agent's secretFiles are written
// for a local Docker Engine to bind-mount them read-only (as Compose does
// outside swarm). One folder per (target, agent) below a root on tmpfs
// (/dev/shm), so that values never reach a disk, an image layer or a
// container's writable layer.
//
// Layout: <root>/<target>/<agent>/<NAME>; the root and every folder 0700,
// owned by this process's user; each file has its own mode. A file is
// replaced by writing a new one and renaming it over the old, so a running
// container keeps the value it started with until it is replaced.
//
// Thread-safe for different (target, agent) pairs. Errors name paths, never
// values.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "docker/container_spec.h"
#include "reconcile/status.h"

namespace reconcile::docker {

// tmpfs on every Linux host: gone at reboot, never written to a disk.
inline constexpr const char* kSecretFilesRoot = "/dev/shm/reconcile-secrets";

class SecretFileStore {
 public:
  explicit SecretFileStore(std::string root = kSecretFilesRoot) : root_(std::move(root)) {}

  // The folder of (target, agent); it may not exist yet.
  std::string Dir(const std::string& target, const std::string& agent) const;

  // Writes every file of `files` with its value (`values` by
  // SecretFileValueKey(NAME)) and mode, creating the folders; removes the
  // files of that folder that `files` no longer names. kInvalid when a
  // value is missing, or when a folder on the way is not a plain folder
  // owned by this user (a planted symlink or someone else's folder);
  // kFailed on an I/O error.
  Status Write(const std::string& target, const std::string& agent,
               const std::vector<SecretFileMount>& files,
               const std::map<std::string, std::string>& values) const;

  // Removes the folder of (target, agent) and its files; Ok when missing.
  Status Remove(const std::string& target, const std::string& agent) const;

 private:
  std::string root_;
};

}  // namespace reconcile::docker
