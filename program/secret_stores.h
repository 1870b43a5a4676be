// The wiring of the external secret stores (issue #14): the AWS Secrets
// Manager and Vault clients (providers/secretstores) and the SOPS keys made
// from the global flags and the environment, and where the fingerprint key
// lives. One set per process; thread-safe reads.
#pragma once

#include <filesystem>

#include "reconcile/reconciler.h"
#include "session.h"

namespace reconcile::cli {

// Sets deps.secret_stores (made by the first call from `g` and the
// environment: VAULT_ADDR, VAULT_TOKEN, VAULT_NAMESPACE, VAULT_CACERT, or
// OpenBao's BAO_* when the VAULT_* one is unset; AWS_*) and
// deps.secret_digest_key_file (--secret-digest-key, default
// <state>/keys/secret-digest.key).
// and deps.sops_keys / sops_options (--sops-age-key-file or
// SOPS_AGE_KEY_FILE, --sops-pgp-key-file, --sops-allow-missing-mac).
void WireSecretStores(const GlobalOptions& g, ReconcilerDeps& deps);

// Whether the stores could be made from `g`: kInvalid naming the key file
// when a SOPS key file is missing or malformed (checked at start-up, so a
// controller does not run with a key it cannot use).
Status CheckSecretStores(const GlobalOptions& g);

}  // namespace reconcile::cli
