// Plan: the value that says how to take the world from observed to desired.
//
// A Plan is data: copyable, comparable, JSON round-trip (ToJson/PlanFromJson),
// changes sorted by address. It is computed by ComputePlan (planner.h) and
// executed by the Applier (applier.h). `reason` fields are for people only;
// no code decides on them. Not thread-safe to mutate concurrently.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reconcile/shared_json.h"
#include "reconcile/status.h"

namespace reconcile {

enum class Action { kNoOp, kCreate, kUpdate, kReplace, kDelete };

const char* ActionName(Action a);  // "no-op", "create", "update", "replace", "delete"
std::optional<Action> ActionFromName(const std::string& name);

// One field that differs. `path` is dotted ("env.LOG_LEVEL", "healthCheck.path").
// A missing before/after means the field is absent on that side.
struct FieldChange {
  std::string path;
  std::optional<nlohmann::json> before;
  std::optional<nlohmann::json> after;
  bool forces_replace = false;
  friend bool operator==(const FieldChange&, const FieldChange&) = default;
};

// The provider-side instance a change acts on (e.g. one container).
struct InstanceRef {
  std::string id;
  std::string name;
  friend bool operator==(const InstanceRef&, const InstanceRef&) = default;
};

// Address prefixes: "agent.<name>" runs an agent on its Target; "image.<name>"
// builds and pushes the image of an agent with build (create) or says that
// its registry has it already (no-op).
inline constexpr const char* kAgentAddressPrefix = "agent.";
inline constexpr const char* kImageAddressPrefix = "image.";
bool IsImageAddress(const std::string& address);

struct Change {
  std::string address;  // "agent.<name>" or "image.<name>"
  std::string name;     // agent name
  Action action = Action::kNoOp;
  std::string target;    // Target name (provider instance) the change runs on
  std::string provider;  // provider name of that target
  std::vector<FieldChange> fields;
  std::string reason;  // human explanation
  // Normalized spec to apply; for a delete, the recorded spec of what is
  // removed (so that the provider knows what else it owns, e.g. volumes to
  // reclaim), or null when none was recorded. Shared with the agent's memo
  // and other plans (never edited in place).
  SharedJson desired;
  std::string desired_hash;             // SpecHash(desired); empty for delete
  std::vector<InstanceRef> prior;       // instances to act on (update/replace/delete)
  std::vector<std::string> depends_on;  // addresses that must be applied first

  friend bool operator==(const Change&, const Change&) = default;
};

struct Plan {
  static constexpr int kFormatVersion = 1;
  std::string revision;         // desired revision the plan was computed from
  std::string observed_digest;  // digest of the observation (stale-plan check)
  std::vector<Change> changes;  // sorted by address; includes no-ops

  // True when any change is not a no-op.
  bool HasChanges() const;
  // Counts per action.
  int Count(Action a) const;

  friend bool operator==(const Plan&, const Plan&) = default;
};

nlohmann::json ToJson(const Plan& plan);
// Strict: rejects unknown format versions, missing fields and wrong types
// with a message naming the field.
Result<Plan> PlanFromJson(const nlohmann::json& j);

}  // namespace reconcile
