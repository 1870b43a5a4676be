// Resolves an agent's secret references (secretEnv, secretFiles) to values,
// at plan and apply time only, fingerprints them, and decides which of the engine's environment
// variables a tree may read.
//
// Values are never logged, planned, stored in state or put in errors; errors
// name the reference (file name or variable), never a value. Thread-safe.
//
// The environment allow-list (SecretEnvPolicy): anyone who can commit to the
// desired tree can write `{env: VAR}`, so the engine reads only variables the
// operator allowed: those named RECONCILE_SECRET_* (kSecretEnvPrefix) and
// those listed with --allow-secret-env. The engine's own credentials are
// never readable, even when listed: the cloud and tooling families in
// kEngineCredentialPrefixes (AWS_*, GOOGLE_*, AZURE_*, ...), the variable of
// --git-password-env, and <PREFIX>_USERNAME / <PREFIX>_PASSWORD of every
// Registry's credentialsEnvPrefix.
#pragma once

#include <filesystem>
#include <map>
#include <set>
#include <stop_token>
#include <string>
#include <vector>

#include "reconcile/diagnostic.h"
#include "reconcile/model.h"
#include "reconcile/secret_store.h"
#include "reconcile/status.h"

namespace reconcile {

// Variables with this prefix may be referenced without being listed.
inline constexpr const char* kSecretEnvPrefix = "RECONCILE_SECRET_";

// Families of variables that hold the engine's own credentials (or steer its
// clients); never readable through {env: VAR}.
inline constexpr const char* kEngineCredentialPrefixes[] = {
    "AWS_",   "AMAZON_",   "GOOGLE_", "GCLOUD_", "CLOUDSDK_", "GCP_",    "AZURE_",       "ARM_",
    "MSI_",   "IDENTITY_", "DOCKER_", "GIT_",    "GITHUB_",   "GITLAB_", "SSH_",         "OTEL_",
    "VAULT_", "BAO_",      "SOPS_",   "KUBE",    "HELM_",     "NPM_",    "REGISTRY_AUTH"};

struct SecretEnvPolicy {
  // Variables allowed by name (--allow-secret-env), besides kSecretEnvPrefix.
  std::set<std::string> allowed;
  // Variables the engine reads for itself (--git-password-env, registry
  // credentials): refused even when allowed or prefixed.
  std::set<std::string> engine_credentials;
};

// <PREFIX>_USERNAME and <PREFIX>_PASSWORD of every Registry in `state`.
std::set<std::string> RegistryCredentialVariables(const DesiredState& state);

// Empty when `policy` lets a tree read the variable `name`; otherwise why
// not and how to fix it (a sentence without any value).
std::string SecretEnvRefusal(const std::string& name, const SecretEnvPolicy& policy);

// Adds one error per {env: VAR} reference that `policy` (extended with the
// state's registry credentials) refuses, at the reference's file:line:column
// with the field spec.secretEnv.<NAME> (spec.secretFiles.<NAME> for a secret
// file's reference).
void CheckSecretEnvPolicy(const DesiredState& state, const SecretEnvPolicy& policy,
                          Diagnostics& diagnostics);

// file:NAME reads `secrets_dir`/NAME (trailing newline stripped; NAME may not
// escape the folder); env:VAR reads the engine's environment, only when
// `policy` allows VAR (the default policy: only RECONCILE_SECRET_*); the
// other sources ask their store in `stores` (secret_store.h; none: an error
// naming the flags that configure it). Missing or refused ones give one
// error listing every problem (by the key of `refs`) and what to do: kInvalid,
// or the first store error's code when that is not kInvalid (kUnavailable:
// a sealed or unreachable store, retry).
Result<std::map<std::string, std::string>> ResolveSecrets(
    const std::map<std::string, SecretRef>& refs, const std::filesystem::path& secrets_dir,
    const SecretEnvPolicy& policy = {}, const SecretStores& stores = {}, std::stop_token stop = {});

// The keyed fingerprint of a secret value that a normalized spec records
// (Agent::secret_digests): "hmac-sha256:<64 hex>", HMAC-SHA256 under `key`
// (DigestKey). A plain hash would let whoever reads a state file, a plan or
// a container label test guesses of a low-entropy secret offline; without
// the key a fingerprint says only "changed" or "unchanged".
std::string SecretDigest(const std::string& key, const std::string& value);

// The fingerprint key (32 bytes) in `file`: 64 hex digits and a newline. A
// missing file is created with a new random key (OpenSSL RAND_bytes), mode
// 0600, its folder 0700 when it has to be made. Errors (kInvalid) name the
// file, never its content: unreadable, not 64 hex digits, cannot be created.
// A new key changes every fingerprint: each agent with secrets is redeployed
// once.
Result<std::string> DigestKey(const std::filesystem::path& file);

}  // namespace reconcile
