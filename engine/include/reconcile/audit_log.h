// AuditLog: the append-only, hash-chained, signed record of who changed what
// (README "Audit log"). One file of JSON lines, one entry a line:
//
//   {"action":"apply","actor":"cli:alice","changes":[{"action":"create",
//    "address":"agent.web"}],"detail":"","environment":"","hash":"<hex>",
//    "keyId":"<hex>","plan":"sha256:<hex>","prev":"<hex>","result":{"status":"ok"},
//    "revision":"<commit>","savedPlan":null,"seq":1,"sig":"<base64>",
//    "time":"2026-12-04T18:00:00Z","v":1}
//
// Canonical bytes of an entry: the JSON object of every field but `hash`
// and `sig`, serialized compactly (no whitespace) with keys sorted by their
// UTF-8 bytes, strings as UTF-8 (only `"`, `\`, and control characters
// escaped; control characters as \b \f \n \r \t or \u00xx), integers in
// decimal: nlohmann::json::dump() and Python's json.dumps(sort_keys=True,
// separators=(",", ":"), ensure_ascii=False) give the same bytes.
//   hash = lower-case hex SHA-256 of the canonical bytes
//   sig  = base64 (standard, padded) Ed25519 signature of the canonical bytes
//   prev = the previous entry's hash; the first entry's is 64 zeros
//   seq  = 1, 2, 3, ... without gaps
//   keyId = lower-case hex SHA-256 of the signer's raw 32-byte public key
// An entry never holds a secret value: changes are addresses and actions.
//
// Thread-safety: AuditKey is immutable and safe to share. An AuditLog may be
// used from several threads; across processes each Append holds an flock on
// the file while it reads the last entry and writes the next one.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reconcile/clock.h"
#include "reconcile/plan.h"
#include "reconcile/status.h"

namespace reconcile {

// prev of the first entry.
inline constexpr const char* kAuditGenesis =
    "0000000000000000000000000000000000000000000000000000000000000000";

struct AuditChange {
  std::string address;  // "agent.web"
  std::string action;   // ActionName: "create", "update", "replace", "delete"
  friend bool operator==(const AuditChange&, const AuditChange&) = default;
};

struct AuditEntry {
  static constexpr int kFormatVersion = 1;
  std::int64_t seq = 0;     // set by Append
  std::string time;         // RFC 3339 UTC; Append sets it when empty
  std::string actor;        // "cli:<user>", "controller", "webhook:github", ...
  std::string action;       // "apply", "rollback", "destroy", "heal", "unlock", "approve", ...
  std::string environment;  // the Environment's name; empty for a plain tree
  std::string revision;     // the desired revision (commit), when known
  std::string plan;         // PlanHash of the plan applied; empty when none
  std::optional<std::string> saved_plan;  // "sha256:<hex>" of the saved plan file's bytes
  std::vector<AuditChange> changes;       // the changes that were not no-ops, by address
  std::string result = "ok";              // "ok" or "error"
  std::string error_code;                 // CodeName when result is "error"
  std::string error_message;              // the error, as the command reported it
  std::string detail;                     // free text (unlock: whose lock was removed)
  std::string key_id;                     // set by Append
  std::string prev;                       // set by Append
  std::string hash;                       // set by Append
  std::string sig;                        // set by Append
  friend bool operator==(const AuditEntry&, const AuditEntry&) = default;
};

// "sha256:<hex>" of the compact JSON of ToJson(plan) (keys sorted).
std::string PlanHash(const Plan& plan);

// An entry for an apply of `plan` that ended with `result`: revision, plan
// hash and the changes (not no-ops) from the plan.
AuditEntry AuditEntryForPlan(std::string actor, std::string action, const Plan& plan,
                             const Status& result);
// Sets result/error_code/error_message from `s`.
void SetAuditResult(AuditEntry& entry, const Status& s);
// An `approve` entry: `plan` (the approved saved plan's plan) and the hash of
// the saved plan's text (`saved_plan_id`: an approval's plan id is exactly
// that), for `environment` ("" for a plain tree) and `revision`; detail
// names the plan, the approver and the way ("cli", "api").
AuditEntry AuditEntryForApproval(std::string actor, const Plan& plan,
                                 const std::string& saved_plan_id, std::string environment,
                                 std::string revision, const std::string& approved_by,
                                 const std::string& via);

// The whole entry as written (with hash and sig, when set).
nlohmann::json ToJson(const AuditEntry& entry);
// Strict: every field present with its type, no unknown field; kInvalid
// naming the field otherwise.
Result<AuditEntry> AuditEntryFromJson(const nlohmann::json& j);
// The canonical bytes (see above): what `hash` digests and `sig` signs.
std::string AuditCanonicalBytes(const AuditEntry& entry);

// An Ed25519 key read from a PEM file: a private key (PKCS#8 "PRIVATE KEY",
// as `openssl genpkey -algorithm ed25519` writes) signs and verifies; a
// public key ("PUBLIC KEY", `openssl pkey -pubout`) only verifies.
class AuditKey {
 public:
  // kInvalid naming the file when it is not an Ed25519 key in PEM;
  // kNotFound when it cannot be read.
  static Result<std::shared_ptr<const AuditKey>> Load(const std::filesystem::path& file);
  static Result<std::shared_ptr<const AuditKey>> FromPem(const std::string& pem,
                                                         const std::string& name);
  ~AuditKey();
  AuditKey(const AuditKey&) = delete;
  AuditKey& operator=(const AuditKey&) = delete;

  bool can_sign() const;
  // Hex SHA-256 of the raw public key.
  const std::string& key_id() const;
  // The public key as PEM (SubjectPublicKeyInfo).
  std::string PublicKeyPem() const;
  // The raw 64-byte signature of `data`; kInvalid for a public key.
  Result<std::string> Sign(const std::string& data) const;
  bool Verify(const std::string& data, const std::string& signature) const;

 private:
  struct Impl;
  explicit AuditKey(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Where entries go. Append is the one operation every action uses.
class AuditSink {
 public:
  virtual ~AuditSink() = default;
  // Ok when an Append now would be written (or the log is off): the key is
  // there if the log has entries, and its last entry is whole. Call it
  // before changing anything, so that a broken log refuses the action.
  virtual Status Check() = 0;
  // Sets seq, prev, key_id, hash, sig (and time when empty) and appends the
  // entry as one line (write, fsync). Errors name the file; a failed write
  // leaves the file as it was.
  virtual Status Append(AuditEntry entry) = 0;
};

// The log in `file` (created 0600 on the first Append). Without a key
// (null), the log is off: Append and Check are Ok and write nothing while
// `file` does not exist; once it exists they fail (kFailed: "has entries but
// no audit key is configured"), so dropping the key never skips entries
// silently. `clock` (not owned) gives the time; null: the system clock.
std::unique_ptr<AuditSink> NewAuditLog(std::filesystem::path file,
                                       std::shared_ptr<const AuditKey> key, Clock* clock = nullptr);

// The verdict of VerifyAuditLog.
struct AuditVerification {
  bool ok = false;
  std::int64_t entries = 0;  // entries that verified (before the first bad one)
  std::string head;          // hash of the last entry that verified
  std::int64_t head_seq = 0;
  // The first bad entry: its line (1-based), its seq when readable, and what
  // is wrong ("entry seq 3 (line 3): edited: ...").
  std::size_t bad_line = 0;
  std::int64_t bad_seq = 0;
  std::string problem;
};

// Checks every line of `text` (the log's content) against `key`: each line
// whole (ends in a newline) and a strict entry, its hash the digest of its
// canonical bytes, its signature valid under `key`, seq counting up from 1
// without gaps, prev the hash of the line before. Names the first bad entry:
// a removed entry (a seq missing), reordered entries (a seq out of order),
// an edited entry (hash mismatch), a bad or foreign signature, a truncated
// last line.
AuditVerification VerifyAuditLog(const std::string& text, const AuditKey& key);

// Every entry of `text`, parsed (not verified); kInvalid naming the line at
// the first that does not parse.
Result<std::vector<AuditEntry>> ParseAuditLog(const std::string& text);

// The file a state folder keeps its audit log in: <dir>/audit.log.
inline std::filesystem::path AuditLogPath(const std::filesystem::path& state_dir) {
  return state_dir / "audit.log";
}

}  // namespace reconcile
