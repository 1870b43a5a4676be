// StateStore: persists State and history, and guards them with a lock.
//
// FileStateStore keeps, under one folder (default `.reconcile/` beside the
// desired tree, or --state DIR):
//   state.json    the current State (format version 2; 1 still loads)
//   history.json  the History (format version 2: per entry, the spec hash
//                 and image of each resource that changed; version 1, with
//                 every spec inline, still loads and is rewritten by the
//                 next append)
//   specs/        the spec store: the normalized specs history names, once
//                 per hash, in pack files `<id>.json` ({"version": 1,
//                 "specs": {hash: spec}}); an append writes one pack with
//                 the specs that are new (O(changed), not O(all)) before
//                 history.json, and removes the packs no entry names after
//   lock          an empty file; a run holds an flock on it while it holds
//                 the lock, so the kernel releases it when the run dies
//   lock.json     present while a run holds the lock: who holds it
// Writes are atomic (write temp file, fsync, rename, fsync the folder); files
// and the folder are mode 0600/0700; a crash at any point leaves files that
// load. A missing state.json loads as an empty State (serial 0).
//
// Thread-safety: a FileStateStore may be used from one thread at a time;
// across processes, the lock guarantees that two runs never both proceed.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reconcile/state.h"
#include "reconcile/status.h"

namespace reconcile {

// Who holds the lock.
struct LockInfo {
  int pid = 0;
  std::string host;
  std::string started_at;  // RFC 3339 UTC
  std::string command;     // e.g. "reconcile apply"
  friend bool operator==(const LockInfo&, const LockInfo&) = default;
};

// Held lock; releasing it (destructor or Release) removes lock.json.
class StateLock {
 public:
  virtual ~StateLock() = default;
  virtual void Release() = 0;
};

class StateStore {
 public:
  virtual ~StateStore() = default;
  // The current state, shared and immutable. A long-lived process (the
  // controller) gets the same object back while the file is the one it last
  // read or saved, with no parse and no copy.
  virtual Result<std::shared_ptr<const State>> LoadShared() = 0;
  // A copy of LoadShared()'s state, to modify.
  Result<State> Load();
  // Saves `state` with serial incremented by the store; returns the new serial.
  virtual Result<int> Save(State state) = 0;
  virtual Result<History> LoadHistory() = 0;
  // The normalized spec of a resource, by address, when asked for it.
  using SpecSource = std::function<std::optional<nlohmann::json>(const std::string& address)>;
  // Appends `entry` (its changed/removed are ignored: the store computes
  // them) for an apply that left `resources` (their `pack` is ignored).
  // `spec_of` gives the spec of each resource whose hash the spec store does
  // not hold yet; a null answer is an error and nothing is written. Keeps
  // the newest 100 entries, and the one whose serial is `keep` (a pin's)
  // whatever its age.
  virtual Status AppendHistory(const HistoryEntry& entry, const HistoryResources& resources,
                               const SpecSource& spec_of, int keep = 0) = 0;
  // The specs of `resources` (as ResourcesAt(history, i) gives them), by
  // address, each checked against its hash. kInvalid naming the pack file
  // when one is missing or corrupt.
  virtual Result<std::map<std::string, nlohmann::json>> LoadSpecs(
      const History& history, const HistoryResources& resources) = 0;
  // Takes the lock or fails with kConflict naming the holder
  // ("state is locked by pid 123 on host h since ... (reconcile apply)").
  // A lock held by a live process is never taken over, whatever its age (a
  // controller holds it for days). One left by a dead run on this host (the
  // flock is free) is taken over; one that lock.json says a run on another
  // host holds is left for `reconcile unlock`.
  virtual Result<std::unique_ptr<StateLock>> Lock(const std::string& command) = 0;
  // Removes a lock whose holder is gone (or on another host); kConflict
  // when a live process on this host holds it; NotFound if there is none.
  virtual Status Unlock() = 0;
  // The current holder, if any.
  virtual Result<std::optional<LockInfo>> Holder() = 0;
};

// `dir` is created (0700) on first write.
std::unique_ptr<StateStore> NewFileStateStore(const std::filesystem::path& dir);

// Where an Environment's state, lock and history live inside a state folder:
// <state_dir>/environments/<name>. A plain tree uses `state_dir` itself.
inline std::filesystem::path EnvironmentStateDir(const std::filesystem::path& state_dir,
                                                 const std::string& environment) {
  return environment.empty() ? state_dir : state_dir / "environments" / environment;
}

// Writes `content` to `path` atomically with mode 0600 (temp, fsync, rename,
// fsync dir). Used by the store and by `plan --out`.
Status WriteFileAtomic(const std::filesystem::path& path, const std::string& content);

}  // namespace reconcile
