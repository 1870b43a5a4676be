// Reconciler: one reconcile pass, shared by the CLI commands and the
// controller. Like a Flux reconciler it is a short list of sub-steps, each a
// method returning a Status whose code says what the caller should do:
//   kInvalid      the desired tree (or a saved plan) is wrong: stall until
//                 the desired revision changes (never retry it in a loop)
//   kUnavailable  a transient failure (remote, engine): retry with backoff
//   kConflict     the lock is held, or a saved plan is stale: a person acts
//   kCancelled    a stop was requested; what ran is recorded
//
//   Fetch    source → Snapshot (the tree at one revision, validated)
//   Lock     the state lock (apply and destroy only)
//   ReadState
//   Observe  every Target the desired tree or the recorded state names
//   Plan / DestroyPlan / Drift   pure functions of the above
//   ApplyPlan  apply + record state and history (always records what ran)
//
// Every side effect comes in through ReconcilerDeps: the source, the state
// store, the providers, the clock, a stop token and an observer of typed
// events. Nothing here prints.
//
// Thread-safety: one Reconciler serves one pass on one thread (ApplyPlan
// uses its own workers). Make a new one per pass.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "reconcile/applier.h"
#include "reconcile/audit_log.h"
#include "reconcile/clock.h"
#include "reconcile/drift.h"
#include "reconcile/event.h"
#include "reconcile/image_builder.h"
#include "reconcile/plan.h"
#include "reconcile/planner.h"
#include "reconcile/provider.h"
#include "reconcile/secrets.h"
#include "reconcile/sops.h"
#include "reconcile/source.h"
#include "reconcile/state.h"
#include "reconcile/state_store.h"

namespace reconcile {

struct ReconcilerDeps {
  Source* source = nullptr;     // not owned
  StateStore* store = nullptr;  // not owned
  const ProviderRegistry* providers = nullptr;
  Clock* clock = nullptr;
  EventObserver* observer = nullptr;  // events of every sub-step
  std::filesystem::path secrets_dir;  // secretEnv {file: NAME}
  // Which variables secretEnv {env: VAR} may read; Fetch reports every
  // refused reference as a load error (nothing is applied).
  SecretEnvPolicy secret_env_policy;
  // The stores of {aws: ...} and {vault: ...} references (not owned).
  SecretStores secret_stores;
  // {sops: {file, key}} references read the fetched tree's file and decrypt
  // it with these keys (sops_store.h; null: every such reference fails
  // naming the flags that give keys) and options, files up to
  // sops_max_file_bytes.
  std::shared_ptr<const SopsKeys> sops_keys;
  SopsOptions sops_options;
  std::size_t sops_max_file_bytes = 4 * 1024 * 1024;
  // The key of the secret values' fingerprints (secrets.h DigestKey). Set:
  // Observe (kAll) resolves every planned agent's secrets and records their
  // fingerprints in its spec (a changed value plans an update; a secret that
  // cannot be read fails Observe), and ApplyPlan deploys those same values.
  // Empty: secrets are read at apply time only and a changed value alone
  // plans nothing.
  std::filesystem::path secret_digest_key_file;
  // Image builders and the registry client, for agents with build; null: a
  // tree with build agents is refused at Observe.
  const BuildServices* build = nullptr;
  std::stop_token stop;  // SIGTERM / Ctrl-C
  // The audit log (audit_log.h) RunPass appends to; null: none. Not owned.
  AuditSink* audit = nullptr;
};

// What ApplyPlan did.
struct ApplyOutcome {
  Status status;  // ok, or the first failure (kCancelled when stopped)
  int succeeded = 0;
  int failed = 0;
  int skipped = 0;
  int serial = 0;        // the state serial written
  bool changed = false;  // the plan had changes (false: "No changes.")
};

class Reconciler {
 public:
  explicit Reconciler(ReconcilerDeps deps);
  ~Reconciler();
  Reconciler(const Reconciler&) = delete;
  Reconciler& operator=(const Reconciler&) = delete;

  // Resolves the source's followed ref (or takes `revision` when given) and
  // loads the tree at it. kInvalid with diagnostics() set when the tree has
  // errors; the caller reports them.
  Status Fetch(const std::string& revision = "");
  // Takes the state lock for `command` until this Reconciler is destroyed
  // or Unlock is called.
  Status Lock(const std::string& command);
  void Unlock();
  // Reads the recorded state. With a rollback's pin (State::pin) whose
  // desired revision is the fetched one, the pinned history entry becomes
  // what MakePlan plans towards (and the pin is kept by ApplyPlan); with
  // another desired revision the pin ends (pin_ended(); ApplyPlan drops it).
  // Needs Fetch first.
  Status ReadState();
  // `reconcile rollback`: plan towards history.entries[index] from now on,
  // and pin it (ApplyPlan records the pin, also when nothing changes).
  // kInvalid naming the agent when an entry's spec cannot be re-applied
  // (its target is no longer declared, its spec store pack is gone).
  Status PinTo(const History& history, size_t index);
  // `reconcile destroy`: the pin ends with what it pinned.
  void DropPin();
  // The pin in force for this pass (from the state or PinTo), if any.
  const std::optional<Pin>& pin() const { return pin_; }
  // The recorded pin that this pass ends (the desired revision changed).
  const std::optional<Pin>& pin_ended() const { return ended_pin_; }
  // What MakePlan plans towards: the pinned revision's agents, or the tree.
  const DesiredState& planned() const;
  // What Observe looks at: kTargets is enough for drift, status and destroy
  // (no plan of the desired agents is made); MakePlan needs kAll.
  enum class ObserveScope { kAll, kTargets };
  // Creates a provider for every Target that desired agents or recorded
  // resources name, and observes each; then (kAll) reads the planned agents'
  // secrets (see ReconcilerDeps::secret_digest_key_file: kInvalid or
  // kUnavailable naming the agent and reference when one cannot be read);
  // then (kAll), for every agent with build,
  // computes its image tag (image_tag.h; for a folder source this reads the
  // build context to digest it) and asks its registry whether the tag is
  // there. kInvalid (naming file, line and field) for a bad context or tag,
  // missing or refused credentials; kUnavailable for an unreachable registry.
  Status Observe(ObserveScope scope = ObserveScope::kAll);

  Plan MakePlan() const;
  // A plan towards no agents at all: deletes everything the state records.
  Plan MakeDestroyPlan() const;
  std::vector<DriftItem> Drift() const;
  // kConflict when `saved` was computed from another revision or another
  // observation than `fresh`; kInvalid when it differs from `fresh` in
  // anything else (an edited `desired`, `desiredHash`, action...): a saved
  // plan is applied only when it is exactly the plan computed now.
  static Status CheckSaved(const Plan& saved, const Plan& fresh);

  // Applies `plan` and records the state and a history entry, also after
  // failures and stops. A plan with no changes only refreshes state entries
  // of unchanged agents whose record is missing (adoption). Needs Lock,
  // ReadState and Observe first.
  ApplyOutcome ApplyPlan(const Plan& plan, const ApplyOptions& options);

  const Snapshot& snapshot() const { return snapshot_; }
  // The fetched tree's content digest (Snapshot::content_digest; for a
  // folder tree without one, its "tree-" revision); empty when unknown.
  std::string ContentDigest() const;
  // When set, ApplyPlan records ContentDigest() as State::content_digest
  // after a plan applied in full without error (and clears it after a
  // failure; any other apply that changes something clears it too), for the
  // controller's skip rule (pass.h). Not when ObserveSecrets read secrets:
  // their values are not in the tree's content, so such a tree is planned
  // every pass.
  void set_record_content_digest(bool on) { record_content_digest_ = on; }
  const DesiredState& desired() const { return snapshot_.loaded.state; }
  const Diagnostics& diagnostics() const { return snapshot_.loaded.diagnostics; }
  // The recorded state; after ApplyPlan, the state it saved.
  const State& recorded() const { return *recorded_; }
  // The same, shared (it outlives this Reconciler; never modified).
  std::shared_ptr<const State> recorded_shared() const { return recorded_; }
  const std::map<std::string, ObserveResponse>& observed() const { return observed_; }
  // Per agent with build: its image reference and whether the registry has it.
  const std::map<std::string, ObservedImage>& images() const { return images_; }

 private:
  void Emit(Event::Type type, std::string message, std::string address = "") const;
  Result<std::map<std::string, std::string>> SecretsFor(const Change& change) const;
  std::optional<State> RefreshUnchanged(const Plan& plan) const;
  // Saves `state` and makes what the store saved the recorded state.
  Result<int> Record(State state);

  Status BuildPinned(const History& history, size_t index);
  Status ObserveImages();
  // Resolves the planned agents' secrets (deps_.secret_digest_key_file set)
  // into secret_values_ and their fingerprints into Agent::secret_digests.
  Status ObserveSecrets();
  // deps_.secret_stores and, unless they serve it, the SOPS store over the
  // fetched tree (sops_store_).
  SecretStores Stores() const;
  Status BuildImage(const Change& change, const ProgressFn& progress, const StepFn& step,
                    std::stop_token stop, const std::string& traceparent) const;
  Result<std::optional<RegistryCredentials>> PullCredentials(const Change& change) const;

  ReconcilerDeps deps_;
  Snapshot snapshot_;
  bool record_content_digest_ = false;
  std::shared_ptr<const State> recorded_ = std::make_shared<const State>();
  std::optional<DesiredState> pinned_;  // the pinned revision's agents
  std::optional<Pin> pin_;
  std::optional<Pin> ended_pin_;
  int rollback_of_ = 0;  // PinTo's entry, for the next history entry
  std::unique_ptr<StateLock> lock_;
  std::map<std::string, std::unique_ptr<Provider>> providers_;
  std::map<std::string, ObserveResponse> observed_;
  std::map<std::string, ObservedImage> images_;
  // Per agent: its secrets' values as ObserveSecrets read them (the keys of
  // ApplyChangeRequest::secret_values). Memory only.
  std::map<std::string, std::map<std::string, std::string>> secret_values_;
  // {sops: ...} references: the files of the fetched tree (made by Fetch).
  std::unique_ptr<SecretStore> sops_store_;
};

// "2 added, 0 changed, 1 replaced, 0 destroyed".
std::string AppliedSummary(const Plan& plan);

// The entry `reconcile rollback --to TO` re-applies, as an index into
// history.entries: TO is a history serial ("12"), a revision or a unique
// prefix of one (at least 4 characters; the newest successful entry with
// it), or empty: the newest successful entry before the live one (the
// newest successful entry of `state.revision`) with another revision.
// kInvalid naming TO when no successful entry matches.
Result<size_t> FindRollbackEntry(const History& history, const State& state, const std::string& to);

// The index of the live entry (the newest successful one of
// `state.revision`), if any.
std::optional<size_t> LiveEntry(const History& history, const State& state);

}  // namespace reconcile
