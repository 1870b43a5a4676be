#include "secret_stores.h"

#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "secretstores/aws_secrets_manager.h"
#include "secretstores/vault_store.h"

namespace reconcile::cli {
namespace {

std::string Env(const char* name, const char* fallback = nullptr) {
  if (const char* v = std::getenv(name); v != nullptr && *v != '\0') return v;
  if (fallback != nullptr) {
    if (const char* v = std::getenv(fallback); v != nullptr && *v != '\0') return v;
  }
  return "";
}

struct Stores {
  std::unique_ptr<SecretStore> aws;
  std::unique_ptr<SecretStore> vault;
  SecretStores by_source;
  std::shared_ptr<const SopsKeys> sops_keys;  // null when none is given or one is bad
  Status sops_status;
};

// The operator's SOPS keys: --sops-age-key-file (else SOPS_AGE_KEY_FILE, as
// sops reads it) and --sops-pgp-key-file.
Status ReadSopsKeys(const GlobalOptions& g, Stores& stores) {
  std::vector<std::string> age = g.sops.age_key_files;
  if (age.empty()) {
    if (std::string file = Env("SOPS_AGE_KEY_FILE"); !file.empty()) age.push_back(file);
  }
  if (age.empty() && g.sops.pgp_key_files.empty()) return Status::Ok();
  Result<SopsKeys> keys = ReadSopsKeyFiles(age, g.sops.pgp_key_files);
  if (!keys.ok()) return keys.status();
  stores.sops_keys = std::make_shared<const SopsKeys>(std::move(*keys));
  return Status::Ok();
}

Stores& TheStores(const GlobalOptions& g) {
  static std::once_flag once;
  static Stores stores;
  std::call_once(once, [&] {
    secretstores::AwsSecretsManagerOptions aws;
    aws.environment = secretstores::AwsProcessEnvironment();
    stores.aws = secretstores::NewAwsSecretsManagerStore(std::move(aws));
    secretstores::VaultOptions vault;
    vault.address = g.vault.address.empty() ? Env("VAULT_ADDR", "BAO_ADDR") : g.vault.address;
    vault.vault_namespace = g.vault.vault_namespace.empty()
                                ? Env("VAULT_NAMESPACE", "BAO_NAMESPACE")
                                : g.vault.vault_namespace;
    vault.token = Env("VAULT_TOKEN", "BAO_TOKEN");
    vault.token_file = g.vault.token_file;
    vault.role_id_file = g.vault.role_id_file;
    vault.secret_id_file = g.vault.secret_id_file;
    if (!g.vault.approle_mount.empty()) vault.approle_mount = g.vault.approle_mount;
    vault.ca_file = g.vault.ca_file.empty() ? Env("VAULT_CACERT", "BAO_CACERT") : g.vault.ca_file;
    stores.vault = secretstores::NewVaultStore(std::move(vault));
    stores.by_source[SecretRef::Source::kAws] = stores.aws.get();
    stores.by_source[SecretRef::Source::kVault] = stores.vault.get();
    stores.sops_status = ReadSopsKeys(g, stores);
  });
  return stores;
}

}  // namespace

Status CheckSecretStores(const GlobalOptions& g) { return TheStores(g).sops_status; }

void WireSecretStores(const GlobalOptions& g, ReconcilerDeps& deps) {
  Stores& stores = TheStores(g);
  deps.secret_stores = stores.by_source;
  deps.sops_keys = stores.sops_keys;
  deps.sops_options.allow_missing_mac = g.sops.allow_missing_mac;
  deps.secret_digest_key_file =
      g.secret_digest_key.empty()
          ? std::filesystem::path(g.state_dir) / "keys" / "secret-digest.key"
          : std::filesystem::path(g.secret_digest_key);
}

}  // namespace reconcile::cli
