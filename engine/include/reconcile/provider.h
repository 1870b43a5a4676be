// The provider interface (version 2): how the engine validates, observes,
// plans and changes one Target.
//
// Like Terraform's providers (internal/providers), the interface is one
// request/response pair per call, and every message has a JSON form
// (provider_json.h) so that a provider outside the binary speaks it over
// stdin/stdout (docs/plugin-protocol.md). A provider owns:
//   - the schema and validation of its Target block (spec.<provider>) and of
//     the Agent fields it can or cannot honour (ProviderDefinition's validate
//     functions, called by the loader: pure and quick for built-ins);
//   - whether a changed field is updated in place or forces a replacement
//     (Provider::PlanChange, called by the planner);
//   - observing and applying (Observe, ApplyChange), and stopping (Stop).
// Validation responses carry diagnostics naming a field as a dotted path of
// the resource's document ("spec.aws.region", "spec.volumes"); the loader
// turns them into file:line:column errors. Observe and ApplyChange carry a
// Status (the error, with its Code) and warnings.
//
// Built-in providers register a ProviderDefinition by name in a
// ProviderRegistry; engine code never includes a concrete provider.
//
// Optionally a provider can watch its Target for changes made outside
// reconcile (WatchDrift: the Docker provider follows the Engine's event
// stream), so that the controller runs a drift pass at once instead of at
// its next --drift-interval scan. The clouds do not: their drift is found
// by the scan alone.
//
// Thread-safety: one Provider instance serves one Target. Observe, PlanChange
// and ApplyChange may be called concurrently from several threads (for
// different agents), and Stop from any thread; implementations must be safe
// for that. A definition's validate functions may be called concurrently.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reconcile/diagnostic.h"
#include "reconcile/model.h"
#include "reconcile/observation.h"
#include "reconcile/plan.h"
#include "reconcile/registry_credentials.h"
#include "reconcile/status.h"

namespace reconcile {

// The version of the provider messages (provider_json.h, the plugin
// protocol). Bumped on any incompatible change.
inline constexpr int kProviderProtocolVersion = 2;

// One problem a provider found. `field` is a dotted path in the resource's
// document, as written in the tree ("spec.gcp.region", "spec.volumes",
// "spec.healthCheck.port"); empty: the resource as a whole.
struct ProviderDiagnostic {
  Severity severity = Severity::kError;
  std::string field;
  std::string message;
  friend bool operator==(const ProviderDiagnostic&, const ProviderDiagnostic&) = default;
};

// Validation of a Target's provider block, before anything is observed.
struct ValidateTargetRequest {
  std::string target;  // the Target's name
  // spec.<provider> as written, YAML turned into JSON (strings, numbers,
  // booleans, null, arrays, objects); an empty object when absent.
  nlohmann::json config = nlohmann::json::object();
};

struct ValidateTargetResponse {
  std::vector<ProviderDiagnostic> diagnostics;  // fields: "spec.<provider>...."
};

// Validation of one Agent against the Target it names: what this provider
// cannot do is an error naming the Agent's field, never a silent drop.
struct ValidateAgentRequest {
  std::string agent;             // the Agent's name
  std::string target;            // the Target's name
  nlohmann::json target_config;  // as in ValidateTargetRequest (valid)
  // The normalized spec (spec.h); null when the definition's
  // agent_spec_as_json is false.
  nlohmann::json spec;
  // In process only (not in the JSON form): the decoded Agent, for built-in
  // providers that check typed fields instead of the JSON spec.
  const Agent* model = nullptr;
  std::string environment;  // Target::environment (names are scoped by it)
};

struct ValidateAgentResponse {
  std::vector<ProviderDiagnostic> diagnostics;  // fields: "spec.volumes", ...
};

// Whether the fields that differ between the spec that runs and the desired
// one can be changed in place. Called by the planner for update candidates
// only; must be pure (no I/O for built-ins) and quick.
struct PlanChangeRequest {
  std::string agent;
  nlohmann::json prior;    // the normalized spec that runs (from state)
  nlohmann::json desired;  // the normalized spec wanted
  // The leaf paths that differ, flattened with '.' ("env.LOG_LEVEL",
  // "resources.memory"), sorted.
  std::vector<std::string> changed;
};

struct PlanChangeResponse {
  // The subset of `changed` that forces a replacement; the rest is updated
  // in place by ApplyChange (as a new revision, for the clouds).
  std::set<std::string> requires_replace;
  std::vector<ProviderDiagnostic> diagnostics;  // errors refuse the change
};

struct ObserveRequest {
  Target target;
};

using ProgressFn = std::function<void(const std::string& message)>;
// Names the step of a change that begins now ("deploy", "health wait",
// "build", "push"); the previous step ends. For traces (Event kStepStarted).
using StepFn = std::function<void(const std::string& step)>;

// The key of spec.secretFiles.<name>'s value in ApplyChangeRequest::
// secret_values ("secretFiles.<name>": never a variable name, which has no '.').
inline std::string SecretFileValueKey(const std::string& name) { return "secretFiles." + name; }

struct ApplyChangeRequest {
  Target target;
  Change change;         // action, desired spec and hash, prior instances
  std::string revision;  // desired revision (for kLabelRevision)
  // Resolved secret values: secretEnv by variable name, secretFiles under
  // SecretFileValueKey(NAME). Never logged, never in errors, never in state.
  // Not part of the JSON form's output of any response.
  std::map<std::string, std::string> secret_values;
  // Credentials for pulling change.desired.image when it is not present
  // (registry_credentials.h). Secret like secret_values: never logged, never
  // in errors, not in the JSON form.
  std::optional<RegistryCredentials> pull_credentials;
  ProgressFn progress;  // optional; human progress lines ("waiting for health")
  // Requested on SIGTERM / Ctrl-C. Every wait (health checks, polls) must
  // end promptly once it is, leave what served before serving (start-first:
  // remove the new instance) and return Code::kCancelled. Not in the JSON
  // form: an out-of-process provider is stopped by a message instead.
  std::stop_token stop;
  // Optional. Call with true before a long wait (a health check) and with
  // false after it: while waiting, the change does not count against the
  // apply parallelism (other changes may start). Calls must alternate.
  std::function<void(bool waiting)> waiting;
  // Optional: the provider calls it as each step of the change begins.
  StepFn step;
  // When the pass is traced: the W3C `traceparent` header value
  // ("00-<trace>-<span>-01") that the provider's HTTP requests for this
  // change carry; "" otherwise. Not a secret; not in the JSON form.
  std::string traceparent;
};

struct ApplyChangeResponse {
  Status status;
  // The instances that exist after the call for this agent (empty after a
  // successful delete). On failure, whatever is known to exist.
  std::vector<InstanceRecord> instances;
  std::string health;  // "healthy", "unknown" (no health check), or "unhealthy"
  // As ObserveResponse::warnings: emitted as kWarning events of the change.
  std::vector<std::string> warnings;
};

// What a drift watch (Provider::WatchDrift) tells its owner.
struct DriftNotice {
  enum class Kind {
    kChanged,  // `agent`'s instances were changed from outside; `what` says how
    kLost,     // the watch lost its feed (`what`: why); it retries with backoff
    kResync,   // the feed is back after a gap: changes may have been missed
  };
  Kind kind = Kind::kChanged;
  std::string agent;  // kChanged: the agent's name
  std::string what;   // for people: "container stopped (docker event)", an error
};

using DriftNoticeFn = std::function<void(const DriftNotice& notice)>;

// A running drift watch. Destroying it stops it promptly (no callback runs
// once the destructor has returned).
class DriftWatch {
 public:
  virtual ~DriftWatch() = default;
};

class Provider {
 public:
  virtual ~Provider() = default;
  virtual ProviderSchema Schema() const = 0;
  // Default: a changed field forces a replacement unless its top-level name
  // is in Schema().updatable_fields (PlanChangeFromSchema).
  virtual PlanChangeResponse PlanChange(const PlanChangeRequest& request) const;
  virtual ObserveResponse Observe(const ObserveRequest& request) = 0;
  // Carries out one change (create, update, replace or delete; never no-op),
  // including waiting for health. Must be idempotent: applying the same
  // change again after a partial failure converges.
  virtual ApplyChangeResponse ApplyChange(const ApplyChangeRequest& request) = 0;
  // Asks every call in flight (and every later one) to end promptly with
  // Code::kCancelled, as ApplyChangeRequest::stop does for one call.
  // Thread-safe; may be called more than once. Default: nothing to do.
  virtual void Stop() {}
  // Starts watching the Target for changes made outside reconcile to the
  // agents it runs; `on_notice` is called from the watch's own thread
  // (never concurrently with itself) and must be quick and thread-safe.
  // Changes reconcile makes itself are reported too: the owner tells them
  // apart (a drift pass finds nothing). nullptr: this provider (or this
  // Target's settings) cannot watch; drift is found by observing alone.
  // The watch needs nothing of the provider once made.
  virtual std::unique_ptr<DriftWatch> WatchDrift(DriftNoticeFn /*on_notice*/) { return nullptr; }
};

// The PlanChange of a provider whose in-place fields are a fixed set.
PlanChangeResponse PlanChangeFromSchema(const ProviderSchema& schema,
                                        const PlanChangeRequest& request);

using ProviderFactory = std::function<Result<std::unique_ptr<Provider>>(const Target& target)>;

// What a provider registers: a factory for the Target it serves (no I/O at
// creation: connecting waits for the first call), and the validation the
// loader runs on the tree. Validation functions are optional (absent: every
// block and every agent is accepted as written).
struct ProviderDefinition {
  ProviderFactory create;
  std::function<ValidateTargetResponse(const ValidateTargetRequest&)> validate_target;
  std::function<ValidateAgentResponse(const ValidateAgentRequest&)> validate_agent;
  // false: validate_agent reads ValidateAgentRequest::model only, and the
  // loader does not compute the JSON spec for each agent (cheap for large
  // trees).
  bool agent_spec_as_json = true;
};

// Name -> definition. Register at start-up, then read-only (thread-safe
// reads).
class ProviderRegistry {
 public:
  void Register(const std::string& provider_name, ProviderDefinition definition);
  void Register(const std::string& provider_name, ProviderFactory factory);
  bool Has(const std::string& provider_name) const;
  // The registered names, sorted.
  std::vector<std::string> Names() const;
  // nullptr when `provider_name` is not registered.
  const ProviderDefinition* Find(const std::string& provider_name) const;
  // Creates the provider for `target`; NotFound when no factory is registered
  // for target.provider.
  Result<std::unique_ptr<Provider>> Create(const Target& target) const;

 private:
  std::map<std::string, ProviderDefinition> definitions_;
};

}  // namespace reconcile
