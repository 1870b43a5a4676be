// State: what the engine last applied, per resource (provider ids, spec and
// its hash, revision, health) and a rollback's pin; History: the applied
// revisions, each with what it left running (spec hashes and images).
// Plain values with a JSON form; the store (state_store.h) persists them.
// Pure; thread-safe as values are.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reconcile/observation.h"
#include "reconcile/plan.h"
#include "reconcile/status.h"

namespace reconcile {

// A JSON value kept as its compact text. A recorded spec costs about 400
// bytes this way instead of ~2.5 KiB of nlohmann tree; the planner parses
// one only for a resource whose hash changed. Equal texts are equal values
// (nlohmann keeps object keys sorted).
class JsonText {
 public:
  JsonText() = default;
  JsonText(const nlohmann::json& value);  // NOLINT: implicit, like json itself
  JsonText& operator=(const nlohmann::json& value);
  nlohmann::json Get() const;  // null when empty
  bool is_null() const { return text_.empty(); }
  const std::string& text() const { return text_; }
  friend bool operator==(const JsonText&, const JsonText&) = default;

 private:
  std::string text_;  // empty: null
};

struct ResourceState {
  std::string address;  // "agent.<name>"
  std::string name;
  std::string target;
  std::string provider;
  std::string spec_hash;
  JsonText spec;  // normalized spec (no secret values)
  std::string revision;
  std::vector<InstanceRecord> instances;
  std::string health;      // "healthy", "unknown", "unhealthy"
  std::string applied_at;  // RFC 3339 UTC
  // The image that runs, by digest (InstanceRecord::image_digest of its
  // instances); empty when unknown.
  std::string image_digest;
  friend bool operator==(const ResourceState&, const ResourceState&) = default;
};

// A rollback's pin (`reconcile rollback`): the engine keeps applying the
// resources of history entry `serial` (revision `revision`) instead of the
// desired tree, for as long as the desired revision is `desired_revision`.
// The first pass that sees another desired revision ends the pin.
struct Pin {
  std::string revision;          // the revision rolled back to
  int serial = 0;                // the history entry whose resources are applied
  std::string desired_revision;  // the desired revision when the pin was made
  std::string pinned_at;         // RFC 3339 UTC
  friend bool operator==(const Pin&, const Pin&) = default;
};

struct State {
  // 2: adds `pin`. Version 1 files (no pin) still load.
  static constexpr int kFormatVersion = 2;
  int serial = 0;        // incremented on every save
  std::string revision;  // last revision applied in full
  // Snapshot::content_digest of that revision: a new revision with the same
  // digest changes nothing for this tree (another environment's files moved).
  std::string content_digest;
  std::map<std::string, ResourceState> resources;  // by address
  std::optional<Pin> pin;
  friend bool operator==(const State&, const State&) = default;
};

// One resource as an applied revision left it. The spec body is stored once
// per hash in the state folder's spec store (state_store.h), in the pack
// file named `pack`; empty `pack`: a version 1 history whose spec is still
// inline (History::legacy_specs).
struct HistoryResource {
  std::string spec_hash;                // "sha256:<hex>" of the normalized spec
  std::string image;                    // the image reference deployed
  std::vector<std::string> depends_on;  // addresses applied before it
  std::string pack;                     // spec store pack holding the spec
  std::string image_digest;             // ... and its digest, when known
  friend bool operator==(const HistoryResource&, const HistoryResource&) = default;
};

using HistoryResources = std::map<std::string, HistoryResource>;  // by address

// One applied revision. It holds only what changed since the entry before it
// in its History (`changed`, `removed`); the first entry of a History holds
// every resource. ResourcesAt replays them.
struct HistoryEntry {
  int serial = 0;  // the state serial the apply wrote
  std::string revision;
  std::string applied_at;
  std::string result;                // "succeeded" | "failed" | "cancelled"
  std::string summary;               // "2 added, 0 changed, 1 replaced, 0 destroyed"
  int rollback_of = 0;               // serial of the entry a rollback re-applied; 0: not a rollback
  bool ignored_windows = false;      // `apply --ignore-windows` overrode a deploy window
  HistoryResources changed;          // resources added or changed since the entry before
  std::vector<std::string> removed;  // addresses gone since the entry before, sorted
  friend bool operator==(const HistoryEntry&, const HistoryEntry&) = default;
};

// The history of applied revisions, oldest first: history.json.
//   version 2  {"version": 2, "entries": [...]}, specs by hash (this engine)
//   version 1  a bare array of entries with each spec inline ("specs"); it
//              loads: the specs are hashed, kept in `legacy_specs`, and moved
//              to the spec store by the next append.
struct History {
  static constexpr int kFormatVersion = 2;
  std::vector<HistoryEntry> entries;
  std::map<std::string, nlohmann::json> legacy_specs;  // spec hash -> body (version 1 only)
  friend bool operator==(const History&, const History&) = default;
};

// Sets what a change decides about a resource (address, name, target,
// provider, spec, spec hash) in `rs`; leaves instances, health, revision and
// time to the caller.
void RecordChange(const Change& change, ResourceState& rs);

nlohmann::json ToJson(const State& state);
Result<State> StateFromJson(const nlohmann::json& j);
nlohmann::json ToJson(const HistoryEntry& entry);
Result<HistoryEntry> HistoryEntryFromJson(const nlohmann::json& j);
nlohmann::json ToJson(const History& history);  // always version 2
// Reads version 2, or a version 1 array (see History). kInvalid naming the
// field (`entries[3].changed["agent.web"].spec: ...`) on anything else.
Result<History> HistoryFromJson(const nlohmann::json& j);

// Every resource recorded after entries[index] (replays from the first).
HistoryResources ResourcesAt(const History& history, size_t index);
// The resources recorded after the last entry (empty for no entries).
HistoryResources LastResources(const History& history);
// Appends `entry` (its changed/removed are ignored) whose apply left
// `resources`: stores the difference from `last` (LastResources(history)).
void AppendEntry(History& history, HistoryEntry entry, const HistoryResources& resources,
                 const HistoryResources& last);
// Drops the oldest entries until at most `max` remain, never the one whose
// serial is `keep` (a pinned entry), folding each dropped entry's changes
// into the entry after it.
void TrimHistory(History& history, size_t max, int keep);
// Spec hash -> pack of every resource the history names.
std::map<std::string, std::string> ReferencedSpecs(const History& history);

}  // namespace reconcile
