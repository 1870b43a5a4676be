// State: what the engine last applied, per resource (provider ids, spec and
// its hash, revision, health), plus the history of applied revisions.
// Plain values with a JSON form; the store (state_store.h) persists them.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reconcile/observation.h"
#include "reconcile/plan.h"
#include "reconcile/status.h"

namespace reconcile {

struct ResourceState {
  std::string address;  // "agent.<name>"
  std::string name;
  std::string target;
  std::string provider;
  std::string spec_hash;
  nlohmann::json spec = nullptr;  // normalized spec (no secret values)
  std::string revision;
  std::vector<InstanceRecord> instances;
  std::string health;      // "healthy", "unknown", "unhealthy"
  std::string applied_at;  // RFC 3339 UTC
  friend bool operator==(const ResourceState&, const ResourceState&) = default;
};

struct State {
  static constexpr int kFormatVersion = 1;
  int serial = 0;                                  // incremented on every save
  std::string revision;                            // last revision applied in full
  std::map<std::string, ResourceState> resources;  // by address
  friend bool operator==(const State&, const State&) = default;
};

struct HistoryEntry {
  int serial = 0;
  std::string revision;
  std::string applied_at;
  std::string result;                               // "succeeded" | "failed"
  std::string summary;                              // "2 created, 1 replaced"
  nlohmann::json specs = nlohmann::json::object();  // address -> normalized spec
  friend bool operator==(const HistoryEntry&, const HistoryEntry&) = default;
};

// Sets what a change decides about a resource (address, name, target,
// provider, spec, spec hash) in `rs`; leaves instances, health, revision and
// time to the caller.
void RecordChange(const Change& change, ResourceState& rs);

nlohmann::json ToJson(const State& state);
Result<State> StateFromJson(const nlohmann::json& j);
nlohmann::json ToJson(const HistoryEntry& entry);
Result<HistoryEntry> HistoryEntryFromJson(const nlohmann::json& j);

}  // namespace reconcile
