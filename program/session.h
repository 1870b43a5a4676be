// Session: the wiring of one CLI run: the source, the state store, the
// clock, the console observer and a Reconciler (engine) over them. The
// commands (commands.cc) call the Reconciler's sub-steps and decide on exit
// codes and rendering. Not thread-safe; one per run.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <stop_token>
#include <string>
#include <vector>

#include "console.h"
#include "reconcile/clock.h"
#include "reconcile/provider.h"
#include "reconcile/reconciler.h"
#include "reconcile/secrets.h"
#include "reconcile/source.h"
#include "reconcile/state_store.h"

namespace reconcile::cli {

struct GlobalOptions {
  std::string source = ".";  // desired-state folder or Git URL
  std::string ref;           // Git: branch, tag or commit
  std::string path;          // folder inside the source
  std::string state_dir;     // default: <source>/.reconcile (Git: ./.reconcile)
  std::string secrets_dir;   // default: <state dir>/secrets
  std::string log_format = "text";
  int verbosity = 0;
  bool no_color = false;
  GitAuth git_auth;
  // --verify-commits openpgp|ssh (empty: off), with --trusted-keys (OpenPGP
  // keys file or folder) or --allowed-signers (SSH): source.h
  // CommitVerifyOptions.
  std::string verify_commits;
  std::string trusted_keys;
  std::string allowed_signers;
  std::vector<std::string> allow_bind;  // --allow-bind: host paths Agents may bind-mount
  // --allow-secret-env NAME (repeatable): variables secretEnv {env: NAME}
  // may read besides RECONCILE_SECRET_* (never the engine's credentials).
  std::vector<std::string> allow_secret_env;
  // Vault / OpenBao (secret_stores.h): empty fields fall back to VAULT_*.
  struct Vault {
    std::string address;          // --vault-addr
    std::string vault_namespace;  // --vault-namespace
    std::string token_file;       // --vault-token-file (default ~/.vault-token)
    std::string role_id_file;     // --vault-approle-role-id-file
    std::string secret_id_file;   // --vault-approle-secret-id-file
    std::string approle_mount;    // --vault-approle-mount (default approle)
    std::string ca_file;          // --vault-cacert
  } vault;
  // SOPS (secret_stores.h): the keys of {sops: ...} references.
  struct Sops {
    std::vector<std::string> age_key_files;  // --sops-age-key-file (default SOPS_AGE_KEY_FILE)
    std::vector<std::string> pgp_key_files;  // --sops-pgp-key-file
    bool allow_missing_mac = false;          // --sops-allow-missing-mac
  } sops;
  std::string secret_digest_key;  // --secret-digest-key (default <state>/keys/secret-digest.key)
  std::uint64_t max_build_context = 0;  // bytes; 0: the default (256 MiB)
  bool keep_documents = false;          // `render`: LoadLimits::keep_documents
  std::string audit_key;                // --audit-key: Ed25519 private key (PEM) of the audit log
};

// The secretEnv allow-list of `g`: --allow-secret-env, with the variable of
// --git-password-env among the engine's own credentials.
SecretEnvPolicy SecretEnvPolicyFor(const GlobalOptions& g);

// The source options of `g` (its Git mirror under <state>/cache/git).
// `g.state_dir` must be set.
SourceOptions SourceOptionsFor(const GlobalOptions& g, const ProviderRegistry* registry);

class SessionStore;  // session.cc

class Session {
 public:
  Session(GlobalOptions options, const ProviderRegistry* registry, std::stop_token stop);
  ~Session();

  // Fetches and validates the tree; prints its diagnostics on error.
  Status Load();
  Reconciler& reconciler() { return *reconciler_; }
  const GlobalOptions& options() const { return options_; }
  // The tree's store: <state dir>, or EnvironmentStateDir(<state dir>,
  // name) for an Environment (known from the folder at start, or after Load).
  StateStore& store();
  // The folder of store() and the Environment it is for ("" for a plain tree).
  std::filesystem::path StoreDir() const;
  std::string StoreEnvironment() const;

 private:
  GlobalOptions options_;
  std::unique_ptr<Source> source_;
  Status source_status_;
  std::unique_ptr<SessionStore> store_;
  std::unique_ptr<Clock> clock_;
  ConsoleObserver observer_;
  std::unique_ptr<Reconciler> reconciler_;
};

// The process-wide stop: the first SIGINT/SIGTERM requests it (no new work,
// record what ran, release the lock), a second one ends the process at once
// (exit 130). Call InstallStopSignals once at start-up, before any thread.
void InstallStopSignals();
std::stop_token StopToken();
// While true, the first signal ends the process at once (approval prompt).
void SetPrompting(bool prompting);

}  // namespace reconcile::cli
