// The provider interface: how the engine observes and changes one Target.
//
// Like Terraform's providers, the interface is one request/response pair per
// call, and every message has a JSON form (provider_json.h) so that a provider
// outside the binary could speak it over stdin/stdout. Built-in providers
// register a factory by name in a ProviderRegistry; engine code never
// includes a concrete provider.
//
// Thread-safety: one Provider instance serves one Target. Observe and
// ApplyChange may be called concurrently from several threads (for different
// agents); implementations must be safe for that.
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

#include "reconcile/model.h"
#include "reconcile/observation.h"
#include "reconcile/plan.h"
#include "reconcile/registry_credentials.h"
#include "reconcile/status.h"

namespace reconcile {

struct ObserveRequest {
  Target target;
};

using ProgressFn = std::function<void(const std::string& message)>;

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

class Provider {
 public:
  virtual ~Provider() = default;
  virtual ProviderSchema Schema() const = 0;
  virtual ObserveResponse Observe(const ObserveRequest& request) = 0;
  // Carries out one change (create, update, replace or delete; never no-op),
  // including waiting for health. Must be idempotent: applying the same
  // change again after a partial failure converges.
  virtual ApplyChangeResponse ApplyChange(const ApplyChangeRequest& request) = 0;
};

using ProviderFactory = std::function<Result<std::unique_ptr<Provider>>(const Target& target)>;

// Name -> factory. Register at start-up, then read-only (thread-safe reads).
class ProviderRegistry {
 public:
  void Register(const std::string& provider_name, ProviderFactory factory);
  bool Has(const std::string& provider_name) const;
  // Creates the provider for `target`; NotFound when no factory is registered
  // for target.provider.
  Result<std::unique_ptr<Provider>> Create(const Target& target) const;

 private:
  std::map<std::string, ProviderFactory> factories_;
};

}  // namespace reconcile
