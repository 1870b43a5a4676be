#include "cmd_approve.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <system_error>
#include <vector>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "cmd_audit.h"
#include "controller/metrics.h"
#include "controller/webhook_secrets.h"
#include "http/http_client.h"
#include "reconcile/approval.h"
#include "reconcile/audit_log.h"
#include "reconcile/clock.h"
#include "reconcile/source.h"
#include "reconcile/state_store.h"

namespace reconcile::cli {

namespace {

namespace fs = std::filesystem;

std::string DefaultApprover() {
  std::string user;
  if (const passwd* pw = ::getpwuid(::geteuid()); pw != nullptr && pw->pw_name != nullptr) {
    user = pw->pw_name;
  } else {
    user = "uid" + std::to_string(::geteuid());
  }
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') return user;
  return user + "@" + host;
}

// The state folders a plan may be in: the folder itself and, for a
// controller of several environments, each environment's.
std::vector<fs::path> StateFolders(const fs::path& state) {
  std::vector<fs::path> out{state};
  std::error_code ec;
  for (fs::directory_iterator it(state / "environments", ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->is_directory(ec)) out.push_back(it->path());
  }
  return out;
}

int Remote(const ApproveFlags& flags, const std::string& by) {
  if (flags.token_file.empty()) {
    std::fprintf(stderr,
                 "error: --controller needs --token-file (the controller's approval token)\n");
    return 1;
  }
  auto token = controller::LoadSecretFile(flags.token_file, "approval token file");
  if (!token.ok()) {
    std::fprintf(stderr, "error: --token-file: %s\n", token.status().message().c_str());
    return 1;
  }
  std::string base = flags.controller;
  while (!base.empty() && base.back() == '/') base.pop_back();
  if (base.rfind("http://", 0) != 0 && base.rfind("https://", 0) != 0) base = "http://" + base;
  http::ClientOptions options;
  options.max_attempts = 1;  // an approval is not retried blindly
  auto client = http::MakeCurlClient(options);
  http::Request req;
  req.method = "POST";
  req.url = base + "/api/v1/plans/" + flags.id + "/approve";
  req.headers = {{"Authorization", "Bearer " + *token}, {"Content-Type", "application/json"}};
  req.body = nlohmann::json{{"by", by}}.dump();
  req.timeout = std::chrono::seconds(30);
  auto resp = client->Send(req);
  if (!resp.ok()) {
    std::fprintf(stderr, "error: %s: %s\n", http::UrlForMessage(base).c_str(),
                 resp.status().message().c_str());
    return 1;
  }
  auto body = nlohmann::json::parse(resp->body, nullptr, false);
  std::string message = body.is_object() ? body.value("message", "") : resp->body;
  if (resp->status == 202) {
    std::printf("%s\n", message.c_str());
    return 0;
  }
  std::fprintf(stderr, "error: the controller answered %ld: %s\n", resp->status,
               message.empty() ? "(no message)" : message.c_str());
  return 1;
}

// Every approval `reconcile approve` records in a state folder is appended
// to that folder's audit log (the controller's own, through its API, are
// appended by the controller: SchedulerListener::PlanApproved). False when
// the log refused it (the approval stands; the error is reported).
// The audit log of a state folder (README "Audit log"), with --audit-key.
Result<std::unique_ptr<AuditSink>> FolderAudit(const GlobalOptions& g, const fs::path& folder) {
  std::shared_ptr<const AuditKey> key;
  if (!g.audit_key.empty()) {
    auto loaded = AuditKey::Load(g.audit_key);
    if (!loaded.ok()) return loaded.status().WithContext("--audit-key");
    key = std::move(*loaded);
  }
  return NewAuditLog(AuditLogPath(folder), std::move(key));
}

// Every approval `reconcile approve` records in a state folder is appended
// to that folder's audit log (the controller appends those made through its
// API: SchedulerListener::PlanApproved). False when the log refused it (the
// approval stands; the error is reported).
bool ApprovalRecorded(AuditSink& audit, const PendingPlan& p) {
  spdlog::info("approval: plan {} (revision {}) approved by {} via {}", p.id, p.revision,
               p.approved_by, p.via);
  const std::string env = p.environment == controller::kDefaultEnvironment ? "" : p.environment;
  Status s = audit.Append(
      AuditEntryForApproval(CliActor(), p.saved.plan, p.id, env, p.revision, p.approved_by, p.via));
  if (!s.ok()) {
    std::fprintf(stderr, "error: the approval was not recorded in the audit log: %s\n",
                 s.message().c_str());
    return false;
  }
  return true;
}

}  // namespace

int CmdApprove(const GlobalOptions& g, const ApproveFlags& flags) {
  const std::string by = flags.by.empty() ? DefaultApprover() : flags.by;
  if (!flags.controller.empty()) return Remote(flags, by);
  fs::path state = g.state_dir;
  if (state.empty()) {
    fs::path src = IsGitUrl(g.source) ? fs::path(".") : fs::path(g.source);
    state = src / ".reconcile";
  }
  auto clock = NewSystemClock();
  std::string first;  // the state folder's own answer
  for (const fs::path& folder : StateFolders(state)) {
    auto audit = FolderAudit(g, folder);
    Status checked = audit.ok() ? (*audit)->Check() : audit.status();
    if (!checked.ok()) {
      std::fprintf(stderr, "error: %s (nothing was approved)\n", checked.message().c_str());
      return 1;
    }
    ApprovalStore store(folder);
    auto p = store.Approve(flags.id, by, "cli", clock->NowRfc3339());
    if (p.ok()) {
      const bool recorded = ApprovalRecorded(**audit, *p);
      std::printf(
          "Plan %s (revision %s, environment %s) approved by %s.\n"
          "The controller applies it at its next check if it still equals the plan it computes "
          "then; if the world changed it is refused as stale and a new plan waits.\n",
          p->id.c_str(), p->revision.c_str(), p->environment.c_str(), by.c_str());
      return recorded ? 0 : 1;
    }
    if (p.status().code() != Code::kNotFound) {
      std::fprintf(stderr, "error: %s\n", p.status().message().c_str());
      return 1;
    }
    if (first.empty()) first = p.status().message();
  }
  std::fprintf(stderr, "error: %s (is --state the controller's state folder?)\n", first.c_str());
  return 1;
}

}  // namespace reconcile::cli
