// The store of {sops: {file, key}} references (model.h SecretRef::kSops): a
// SOPS-encrypted file of the tree the pass loaded, the way Flux's
// kustomize-controller decrypts the SOPS files of a GitRepository.
//
// The file is read from the tree on disk (Snapshot::root: the folder, or a
// Git source's export of exactly the commit the pass loaded), never from
// outside it (a symlink out of the tree is refused), at most
// max_file_bytes; it is decrypted in memory with the operator's keys
// (sops.h DecryptSops: age or OpenPGP recipients, MAC checked) once per file
// for the store's life, one pass, and the value at the reference's key is
// returned. Cleartext never reaches a disk, a log or an error: errors name
// the reference, the file and the key path.
//
// Thread-safe (Get may run from several threads at once).
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>

#include "reconcile/diagnostic.h"
#include "reconcile/secret_store.h"
#include "reconcile/sops.h"

namespace reconcile {

struct SopsStoreOptions {
  // The operator's keys (--sops-age-key-file, SOPS_AGE_KEY_FILE,
  // --sops-pgp-key-file); null or empty: every reference fails naming those
  // flags.
  std::shared_ptr<const SopsKeys> keys;
  SopsOptions sops;  // --sops-allow-missing-mac
  std::size_t max_file_bytes = 4 * 1024 * 1024;
};

// A store over the tree at `root` (empty: the source offers no files of the
// tree; every reference fails saying so).
std::unique_ptr<SecretStore> NewSopsTreeStore(std::filesystem::path root, SopsStoreOptions options);

// Adds one error per {sops: ...} reference of `state` whose file is not a
// file inside the tree at `root` (missing, a folder, a symlink out of the
// tree), at the reference's file:line:column with the field
// spec.secretEnv.<NAME>.sops.file (spec.secretFiles.<NAME>.sops.file). Reads
// no file's content: decryption is the store's, at plan time.
void CheckSopsFiles(const DesiredState& state, const std::filesystem::path& root,
                    Diagnostics& diagnostics);

}  // namespace reconcile
