// The audit log in the CLI (README "Audit log"): the entries `apply`,
// `rollback`, `destroy` and `unlock` append, and `reconcile audit list` /
// `reconcile audit verify`. The log is <state folder>/audit.log (per
// Environment: EnvironmentStateDir's folder), signed with the key of
// --audit-key FILE (or RECONCILE_AUDIT_KEY).
#pragma once

#include <string>

#include "reconcile/audit_log.h"
#include "reconcile/plan.h"
#include "session.h"

namespace reconcile::cli {

// "cli:<user>": the effective OS user's name (its uid when it has none).
std::string CliActor();

// The audit log of the session's state folder with the --audit-key key
// (none: the log is off, as NewAuditLog says). kInvalid naming the key file
// when it is not an Ed25519 key.
Result<std::unique_ptr<AuditSink>> OpenAudit(Session& session);

// Before an action changes anything: Ok when its entry can be appended.
Status AuditCheck(Session& session);

// Appends the entry of an apply of `plan` (`action`: apply, rollback,
// destroy) that ended with `result`; `plan_file` is the saved plan applied
// (its bytes' SHA-256 is recorded), or empty. A failure is logged as an
// error and returns false: the command then exits 1 (what it applied stands).
bool AuditApply(Session& session, const std::string& action, const Plan& plan, const Status& result,
                const std::string& plan_file = "", const std::string& detail = "");
// The same for any entry (unlock); sets actor and environment.
bool AuditAppend(Session& session, AuditEntry entry);

struct AuditFlags {
  bool json = false;
  std::string file;        // --file: a log elsewhere (default: the state folder's)
  std::string public_key;  // verify: --public-key (default: derived from --audit-key)
};

int CmdAuditList(const GlobalOptions& g, const AuditFlags& flags);
int CmdAuditVerify(const GlobalOptions& g, const AuditFlags& flags);

}  // namespace reconcile::cli
