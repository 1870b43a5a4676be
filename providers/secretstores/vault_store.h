// VaultStore: {vault: {path, key, version, mount}} references, read from a
// Vault or OpenBao KV version 2 engine: GET /v1/<mount>/data/<path>
// [?version=N] with X-Vault-Token (and X-Vault-Namespace when set); the value
// is data.data.<key>.
//
// Authentication, the first that is configured:
//   AppRole: role_id_file and secret_id_file (read at each login, so that a
//     rotated secret_id is picked up): POST /v1/auth/<approle_mount>/login;
//     the client token is used until 30 s before its lease ends, then (or on
//     a 403) the store logs in again (once per request);
//   token: `token` (VAULT_TOKEN), else the file `token_file` (default
//     ~/.vault-token, as the vault CLI; re-read after a 403, for a token a
//     Vault Agent sink rotates).
//
// Errors name the reference (vault:MOUNT/PATH?key=K&version=N) and the HTTP
// status, never the token or a value: 403 permission denied (kInvalid), 404
// no such secret or version, or (KV v2's metadata) a version deleted at T or
// destroyed (kInvalid), 503 sealed or unavailable (kUnavailable), a key the
// secret's data does not have (its key names listed, kInvalid).
// Thread-safety: Get may be called from several threads (one mutex guards
// the token).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "http/http_client.h"
#include "reconcile/secret_store.h"

namespace reconcile::secretstores {

struct VaultOptions {
  std::string address;          // https://vault.example:8200 (VAULT_ADDR); no trailing '/'
  std::string vault_namespace;  // X-Vault-Namespace (VAULT_NAMESPACE), Vault Enterprise / OpenBao
  std::string token;            // VAULT_TOKEN: secret, never in a message
  std::string token_file;       // default: $HOME/.vault-token
  std::string role_id_file;     // AppRole: both files or neither
  std::string secret_id_file;
  std::string approle_mount = "approle";
  std::string ca_file;  // VAULT_CACERT
  // nullptr: a curl client (ca_file; 503 retried once).
  std::shared_ptr<http::Client> client;
  std::function<std::chrono::steady_clock::time_point()> now = [] {
    return std::chrono::steady_clock::now();
  };
};

std::unique_ptr<SecretStore> NewVaultStore(VaultOptions options);

}  // namespace reconcile::secretstores
