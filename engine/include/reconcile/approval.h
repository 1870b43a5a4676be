// ApprovalStore: the plans a controller publishes for approval (an
// Environment or Agent with `approval: required`, README "Approvals") and
// their approvals, kept in the environment's state folder:
//
//   <state>/pending/key             the HMAC key: 32 random bytes as hex, mode 0600
//   <state>/pending/<id>.json       the plan as a saved plan (saved_plan.h; so
//                                   `reconcile show` renders it); <id> is the
//                                   SHA-256 (hex) of exactly this text
//   <state>/pending/<id>.meta.json  its record: revision, environment, createdAt,
//                                   state, why, supersededBy, approvedBy,
//                                   approvedAt, via, closedAt, and `hmac`:
//                                   HMAC-SHA256(key, the record without hmac),
//                                   which names the id and so covers the plan
//
// A record's state: pending → approved → applied; a pending or approved plan
// ends as superseded (a plan of another revision replaced it) or stale (a
// plan of the same revision replaced it: what runs changed; or the plan
// computed now needs no approval any more).
//
// Tamper evidence: every read recomputes the plan file's hash (it must be the
// id) and the record's HMAC (it must verify with the key). So whoever can
// write files in the state folder but not read the key can neither edit a
// plan nor forge a record or an approval; the controller also applies an
// approved plan only when it equals the plan it computes at that moment
// (Reconciler::CheckSaved).
//
// Thread-safety: one ApprovalStore may be used from several threads (a mutex
// serializes its writes); several processes (the controller and `reconcile
// approve`) share the folder through atomic renames: a concurrent approve and
// publish leave one of the two records, never a torn file.
#pragma once

#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "reconcile/saved_plan.h"
#include "reconcile/status.h"

namespace reconcile {

struct PendingPlan {
  std::string id;  // SHA-256 hex of SavedPlanText(saved)
  std::string revision;
  std::string environment;  // "default" for a plain tree
  std::string created_at;   // RFC 3339
  std::string state = "pending";
  std::string why;            // superseded or stale: in words
  std::string superseded_by;  // the id that replaced it, if any
  std::string approved_by;    // "user@host" (CLI) or "api" (the token's holder)
  std::string approved_at;
  std::string via;        // "cli" or "api"
  std::string closed_at;  // when it was applied, superseded or stale
  SavedPlan saved;

  // Still waiting: pending or approved.
  bool open() const { return state == "pending" || state == "approved"; }
};

// The id of a plan: SHA-256 (hex) of SavedPlanText(saved).
std::string PendingPlanId(const SavedPlan& saved);

// Whether `id` looks like a plan id or a prefix of one (8 to 64 hex digits).
bool IsPlanIdText(const std::string& id);

class ApprovalStore {
 public:
  // `state_dir`: the environment's state folder (state_store.h).
  explicit ApprovalStore(std::filesystem::path state_dir);

  const std::filesystem::path& dir() const { return dir_; }

  // The plan waiting for approval (pending or approved), verified; nullopt
  // when none waits. kInvalid when the waiting plan's file or record was
  // tampered with (naming which).
  Result<std::optional<PendingPlan>> Current() const;
  // A plan by id, or by a unique prefix of at least 8 hex digits, verified.
  // kNotFound: no such plan (or a prefix naming several); kInvalid: its plan
  // file does not hash to its id, or its record's HMAC does not verify.
  Result<PendingPlan> Find(const std::string& id) const;

  // Publishes `saved` as the plan waiting for approval, made at `now`. The
  // same plan again (the same id, still open) is kept as it is (also its
  // approval); a missing plan file is written again. Any other open plan is
  // closed: superseded when its revision differs, else stale, with `why`
  // from the caller (or a default) and supersededBy the new id.
  Result<PendingPlan> Publish(const SavedPlan& saved, const std::string& environment,
                              const std::string& now, const std::string& why_other = "");
  // Approves plan `id` (or a unique prefix) by `by` through `via` at `now`.
  // kNotFound unknown id; kInvalid tampered; kConflict when it is not
  // pending: superseded, stale or applied (the message says which, and which
  // plan waits now). Approving an approved plan again is ok (no change).
  Result<PendingPlan> Approve(const std::string& id, const std::string& by, const std::string& via,
                              const std::string& now);
  // Ends the open plan `id`: `state` is "applied", "superseded" or "stale".
  // A plan that is not open is left as it is.
  Status Close(const std::string& id, const std::string& state, const std::string& why,
               const std::string& now);

  // Every plan record (newest first), verified or not: for `reconcile
  // approve` listing and tests. Records that do not parse are skipped.
  std::vector<PendingPlan> List() const;

 private:
  Result<std::string> Key(bool create) const;
  Result<PendingPlan> Load(const std::string& id, bool with_plan) const;
  Status Save(const PendingPlan& p) const;
  void Prune() const;

  std::filesystem::path dir_;
  mutable std::mutex mu_;
};

}  // namespace reconcile
