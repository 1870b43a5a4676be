#include "cmd_audit.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "reconcile/spec.h"

namespace reconcile::cli {

namespace {

constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr size_t kMaxAuditLogBytes = 1u << 30;

Result<std::string> ReadFile(const std::filesystem::path& path, const std::string& what) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec)
    return Status::NotFound("cannot read " + what + " " + path.string() + ": " + ec.message());
  if (size > kMaxAuditLogBytes) return Status::Invalid(path.string() + ": larger than 1 GiB");
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot read " + what + " " + path.string());
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::filesystem::path LogFile(Session& session, const AuditFlags& flags) {
  if (!flags.file.empty()) return flags.file;
  return AuditLogPath(session.StoreDir());
}

}  // namespace

std::string CliActor() {
  const uid_t uid = geteuid();
  if (const passwd* pw = getpwuid(uid); pw != nullptr && pw->pw_name != nullptr) {
    return std::string("cli:") + pw->pw_name;
  }
  return "cli:" + std::to_string(uid);
}

Result<std::unique_ptr<AuditSink>> OpenAudit(Session& session) {
  std::shared_ptr<const AuditKey> key;
  if (!session.options().audit_key.empty()) {
    auto loaded = AuditKey::Load(session.options().audit_key);
    if (!loaded.ok()) return loaded.status().WithContext("--audit-key");
    key = std::move(*loaded);
    if (!key->can_sign()) {
      return Status::Invalid("--audit-key " + session.options().audit_key +
                             ": a public key; appending needs the Ed25519 private key");
    }
  }
  return NewAuditLog(AuditLogPath(session.StoreDir()), std::move(key));
}

Status AuditCheck(Session& session) {
  auto audit = OpenAudit(session);
  Status s = audit.ok() ? (*audit)->Check() : audit.status();
  return s.ok() ? s : Status(s.code(), s.message() + " (nothing was changed)");
}

bool AuditAppend(Session& session, AuditEntry entry) {
  entry.actor = CliActor();
  const auto& env = session.reconciler().desired().environment;
  entry.environment = env ? env->name : session.StoreEnvironment();
  const std::string action = entry.action;
  auto audit = OpenAudit(session);
  Status s = audit.ok() ? (*audit)->Append(std::move(entry)) : audit.status();
  if (!s.ok()) {
    spdlog::error("the {} was not recorded in the audit log: {}", action, s.message());
    return false;
  }
  return true;
}

bool AuditApply(Session& session, const std::string& action, const Plan& plan, const Status& result,
                const std::string& plan_file, const std::string& detail) {
  AuditEntry entry = AuditEntryForPlan("", action, plan, result);
  entry.detail = detail;
  if (!plan_file.empty()) {
    auto bytes = ReadFile(plan_file, "plan file");
    if (!bytes.ok()) {
      spdlog::error("the {} was not recorded in the audit log: {}", action,
                    bytes.status().message());
      return false;
    }
    entry.saved_plan = "sha256:" + Sha256Hex(*bytes);
  }
  return AuditAppend(session, std::move(entry));
}

int CmdAuditList(const GlobalOptions& g, const AuditFlags& flags) {
  ProviderRegistry none;
  Session session(g, &none, StopToken());
  const std::filesystem::path file = LogFile(session, flags);
  std::error_code ec;
  if (flags.file.empty() && !std::filesystem::exists(file, ec)) {
    if (flags.json) {
      std::cout << "[]\n";
    } else {
      std::cout << "No audit log in " << session.StoreDir().string() << ".\n";
    }
    return kExitOk;
  }
  auto text = ReadFile(file, "audit log");
  if (!text.ok()) {
    spdlog::error("{}", text.status().message());
    return kExitError;
  }
  auto entries = ParseAuditLog(*text);
  if (!entries.ok()) {
    spdlog::error("{}: {} (run `reconcile audit verify`)", file.string(),
                  entries.status().message());
    return kExitError;
  }
  if (flags.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const AuditEntry& e : *entries) out.push_back(ToJson(e));
    std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return kExitOk;
  }
  std::printf("%-5s %-20s %-16s %-9s %-12s %-18s %-11s %s\n", "SEQ", "TIME", "ACTOR", "ACTION",
              "ENVIRONMENT", "REVISION", "RESULT", "CHANGES");
  for (const AuditEntry& e : *entries) {
    std::string changes;
    for (const AuditChange& c : e.changes) {
      changes += (changes.empty() ? "" : ", ") + c.action + " " + c.address;
    }
    if (changes.empty()) changes = e.detail.empty() ? "-" : e.detail;
    std::string result = e.result == "ok" ? "ok" : e.error_code;
    std::printf("%-5lld %-20s %-16s %-9s %-12s %-18s %-11s %s\n", static_cast<long long>(e.seq),
                e.time.c_str(), e.actor.c_str(), e.action.c_str(),
                e.environment.empty() ? "-" : e.environment.c_str(),
                e.revision.empty() ? "-" : e.revision.substr(0, 18).c_str(), result.c_str(),
                changes.c_str());
  }
  std::cout << "\n"
            << entries->size() << " entries (listed, not verified: run `reconcile audit "
            << "verify` to check the chain and the signatures).\n";
  return kExitOk;
}

int CmdAuditVerify(const GlobalOptions& g, const AuditFlags& flags) {
  const std::string key_file = flags.public_key.empty() ? g.audit_key : flags.public_key;
  if (key_file.empty()) {
    spdlog::error(
        "audit verify needs the public key: --public-key FILE (or --audit-key FILE, whose public "
        "key is used)");
    return kExitError;
  }
  auto key = AuditKey::Load(key_file);
  if (!key.ok()) {
    spdlog::error("{}", key.status().message());
    return kExitError;
  }
  ProviderRegistry none;
  Session session(g, &none, StopToken());
  const std::filesystem::path file = LogFile(session, flags);
  auto text = ReadFile(file, "audit log");
  if (!text.ok()) {
    spdlog::error("{}", text.status().message());
    return kExitError;
  }
  AuditVerification v = VerifyAuditLog(*text, **key);
  if (!v.ok) {
    std::cout << "Audit log " << file.string() << ": verification FAILED at line " << v.bad_line
              << (v.bad_seq > 0 ? " (seq " + std::to_string(v.bad_seq) + ")" : std::string())
              << ".\n";
    std::cout << "  " << v.problem << "\n";
    std::cout << "  " << v.entries << " entr" << (v.entries == 1 ? "y" : "ies")
              << " before it verify.\n";
    return kExitError;
  }
  std::cout << "Audit log " << file.string() << ": " << v.entries << " entr"
            << (v.entries == 1 ? "y" : "ies") << " verify (hash chain and Ed25519 signatures, key "
            << (*key)->key_id().substr(0, 16) << ").\n";
  if (v.entries > 0) {
    std::cout << "Head: seq " << v.head_seq << ", hash " << v.head
              << " (keep it elsewhere to detect entries removed from the end).\n";
  }
  return kExitOk;
}

}  // namespace reconcile::cli
