// The wiring of the external secret stores (issue #14): the AWS Secrets
// Manager and Vault clients (providers/secretstores) made from the global
// flags and the environment, and where the fingerprint key lives. One set
// per process; thread-safe reads.
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
void WireSecretStores(const GlobalOptions& g, ReconcilerDeps& deps);

}  // namespace reconcile::cli
