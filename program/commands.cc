#include "commands.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "console.h"
#include "reconcile/applier.h"
#include "reconcile/drift.h"
#include "reconcile/json_schemas.h"
#include "reconcile/plan_format.h"
#include "reconcile/reconciler.h"
#include "reconcile/spec.h"

namespace reconcile::cli {

namespace {

using nlohmann::json;

constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kExitChanges = 2;
constexpr const char* kSavedPlanKey = "reconcileSavedPlan";

int Fail(const Status& s) {
  spdlog::error("{}", s.message());
  return kExitError;
}

// Loads the tree, reads the state, observes. The stages every command shares.
// Without a plan to make, the registries of built images are not asked.
Status Prepare(Session& session, Reconciler::ObserveScope scope = Reconciler::ObserveScope::kAll) {
  if (Status s = session.Load(); !s.ok()) return s;
  if (Status s = session.reconciler().ReadState(); !s.ok()) return s;
  return session.reconciler().Observe(scope);
}

// Asks "yes" on a terminal; refuses without --auto-approve elsewhere.
bool Approve(bool auto_approve, const std::string& question) {
  if (auto_approve) return true;
  if (!Interactive()) {
    spdlog::error("{} needs --auto-approve when standard input is not a terminal", question);
    return false;
  }
  std::cout << "\nDo you want to " << question << "?\n  Only 'yes' will be accepted.\n\n"
            << "  Enter a value: " << std::flush;
  std::string answer;
  SetPrompting(true);  // Ctrl-C here simply ends the process: nothing ran yet
  std::getline(std::cin, answer);
  SetPrompting(false);
  if (answer != "yes") {
    std::cout << "\nCancelled; nothing was changed.\n";
    return false;
  }
  return true;
}

// Applies `plan` through the reconciler (which records state and history,
// also after failures and stops). Returns the exit code.
int ApplyAndRecord(Session& session, const Plan& plan, const ApplyFlags& flags) {
  std::cout << std::flush;  // the plan before the progress lines (stderr)
  ApplyOptions options;
  options.parallelism = flags.parallelism;
  ApplyOutcome out = session.reconciler().ApplyPlan(plan, options);
  if (!out.changed) {
    if (!out.status.ok()) return Fail(out.status);
    std::cout << "No changes. The running agents match the desired state (" << plan.revision
              << ").\n";
    return kExitOk;
  }
  if (out.status.code() == Code::kCancelled) {
    spdlog::error(
        "apply stopped: {} succeeded, {} failed, {} not started; what ran is recorded "
        "(state serial {}); run apply again to converge",
        out.succeeded, out.failed, out.skipped, out.serial);
    return kExitError;
  }
  if (!out.status.ok()) {
    spdlog::error("apply failed: {} succeeded, {} failed, {} skipped", out.succeeded, out.failed,
                  out.skipped);
    spdlog::error("{}", out.status.message());
    return kExitError;
  }
  std::cout << "\nApply complete! Agents: " << AppliedSummary(plan) << ".\n";
  return kExitOk;
}

}  // namespace

int CmdValidate(const GlobalOptions& g) {
  ProviderRegistry none;
  Session session(g, &none, StopToken());
  if (Status s = session.Load(); !s.ok()) return Fail(s);
  const DesiredState& d = session.reconciler().desired();
  std::cout << "Valid: " << d.agents.size() << " agent(s), " << d.registries.size() << " registr"
            << (d.registries.size() == 1 ? "y" : "ies") << ", " << d.targets.size()
            << " target(s) (" << d.revision << ").\n";
  return kExitOk;
}

int CmdSchema(const std::string& kind) {
  std::optional<std::string> schema = SchemaFor(kind);
  if (!schema) {
    std::string kinds;
    for (const std::string& k : SchemaKinds()) kinds += (kinds.empty() ? "" : ", ") + k;
    spdlog::error("unknown kind '{}' (known: {})", kind, kinds);
    return kExitError;
  }
  std::cout << *schema;
  if (schema->empty() || schema->back() != '\n') std::cout << "\n";
  return kExitOk;
}

int CmdPlan(const GlobalOptions& g, const ProviderRegistry& registry, const PlanFlags& flags) {
  Session session(g, &registry, StopToken());
  if (Status s = Prepare(session); !s.ok()) return Fail(s);
  Plan plan = session.reconciler().MakePlan();
  if (!flags.out.empty()) {
    std::error_code ec;
    json saved = {{kSavedPlanKey, 1},
                  {"source", std::filesystem::absolute(g.source, ec).string()},
                  {"stateDir", std::filesystem::absolute(session.options().state_dir, ec).string()},
                  {"plan", ToJson(plan)}};
    if (Status s = WriteFileAtomic(flags.out, saved.dump(2) + "\n"); !s.ok()) return Fail(s);
  }
  if (flags.json) {
    std::cout << ToJson(plan).dump(2) << "\n";
  } else {
    PlanFormatOptions options;
    options.color = UseColor();
    options.show_no_op = flags.explain || g.verbosity > 0;
    std::cout << FormatPlan(plan, options);
    if (!flags.out.empty()) {
      std::cout << "\nSaved the plan to " << flags.out << ". To apply exactly this plan, run:\n"
                << "    reconcile apply " << flags.out << "\n";
    }
  }
  return plan.HasChanges() ? kExitChanges : kExitOk;
}

int CmdApply(const GlobalOptions& given, const ProviderRegistry& registry,
             const ApplyFlags& flags) {
  GlobalOptions g = given;
  std::optional<Plan> saved;
  if (!flags.plan_file.empty()) {
    std::ifstream in(flags.plan_file, std::ios::binary);
    if (!in) return Fail(Status::NotFound("cannot read plan file " + flags.plan_file));
    json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object() || !j.contains(kSavedPlanKey) ||
        !j["source"].is_string() || !j["stateDir"].is_string()) {
      return Fail(Status::Invalid(flags.plan_file +
                                  ": not a saved plan (write one with `reconcile plan --out`)"));
    }
    Result<Plan> plan = PlanFromJson(j["plan"]);
    if (!plan.ok()) return Fail(plan.status().WithContext(flags.plan_file));
    saved = std::move(*plan);
    g.source = j["source"].get<std::string>();
    if (g.state_dir.empty()) g.state_dir = j["stateDir"].get<std::string>();
  }
  Session session(g, &registry, StopToken());
  Reconciler& r = session.reconciler();
  if (Status s = session.Load(); !s.ok()) return Fail(s);
  if (Status s = r.Lock("reconcile apply"); !s.ok()) return Fail(s);
  if (Status s = r.ReadState(); !s.ok()) return Fail(s);  // under the lock
  if (Status s = r.Observe(); !s.ok()) return Fail(s);
  Plan plan = r.MakePlan();
  if (saved) {
    if (Status s = Reconciler::CheckSaved(*saved, plan); !s.ok()) return Fail(s);
    plan = std::move(*saved);
  } else if (plan.HasChanges()) {
    PlanFormatOptions options;
    options.color = UseColor();
    std::cout << FormatPlan(plan, options);
    if (!Approve(flags.auto_approve, "perform these actions")) return kExitError;
  }
  return ApplyAndRecord(session, plan, flags);
}

int CmdDestroy(const GlobalOptions& g, const ProviderRegistry& registry, const ApplyFlags& flags) {
  Session session(g, &registry, StopToken());
  Reconciler& r = session.reconciler();
  if (Status s = session.Load(); !s.ok()) return Fail(s);
  if (Status s = r.Lock("reconcile destroy"); !s.ok()) return Fail(s);
  if (Status s = r.ReadState(); !s.ok()) return Fail(s);
  if (Status s = r.Observe(Reconciler::ObserveScope::kTargets); !s.ok()) return Fail(s);
  Plan plan = r.MakeDestroyPlan();
  if (!plan.HasChanges()) {
    std::cout << "No changes. Nothing recorded in " << session.options().state_dir
              << " to destroy.\n";
    return kExitOk;
  }
  PlanFormatOptions options;
  options.color = UseColor();
  std::cout << FormatPlan(plan, options);
  if (!Approve(flags.auto_approve, "destroy all agents recorded in this state")) {
    return kExitError;
  }
  return ApplyAndRecord(session, plan, flags);
}

int CmdDrift(const GlobalOptions& g, const ProviderRegistry& registry, bool as_json) {
  Session session(g, &registry, StopToken());
  if (Status s = Prepare(session, Reconciler::ObserveScope::kTargets); !s.ok()) return Fail(s);
  const Reconciler& r = session.reconciler();
  std::vector<DriftItem> items = r.Drift();
  if (as_json) {
    std::cout << json{{"revision", r.recorded().revision},
                      {"drifted", items.size()},
                      {"items", ToJson(items)}}
                     .dump(2)
              << "\n";
  } else if (items.empty()) {
    std::cout << "No drift. What runs matches the last apply (" << r.recorded().revision << ").\n";
  } else {
    std::cout << "Drift detected (" << items.size() << "):\n";
    for (const DriftItem& i : items) {
      std::cout << "  " << i.address << ": " << DriftKindName(i.kind) << " - " << i.detail << "\n";
    }
    std::cout << "\nRun `reconcile apply` to bring it back to the desired state.\n";
  }
  return items.empty() ? kExitOk : kExitChanges;
}

int CmdStatus(const GlobalOptions& g, const ProviderRegistry& registry, bool as_json) {
  Session session(g, &registry, StopToken());
  if (Status s = Prepare(session, Reconciler::ObserveScope::kTargets); !s.ok()) return Fail(s);
  const Reconciler& r = session.reconciler();
  json agents = json::array();
  for (const auto& [address, rs] : r.recorded().resources) {
    std::string state = "missing", endpoint;
    auto observed = r.observed().find(rs.target);
    if (observed != r.observed().end()) {
      for (const ObservedInstance& i : observed->second.instances) {
        if (i.agent != rs.name) continue;
        state = i.state;
        if (endpoint.empty()) endpoint = i.endpoint;
      }
    }
    agents.push_back({{"name", rs.name},
                      {"target", rs.target},
                      {"revision", rs.revision},
                      {"health", rs.health},
                      {"state", state},
                      {"endpoint", endpoint},
                      {"appliedAt", rs.applied_at}});
  }
  if (as_json) {
    std::cout << json{{"revision", r.recorded().revision}, {"agents", agents}}.dump(2) << "\n";
    return kExitOk;
  }
  if (agents.empty()) {
    std::cout << "No agents recorded in " << session.options().state_dir << ".\n";
    return kExitOk;
  }
  std::printf("%-24s %-12s %-18s %-10s %-10s %s\n", "AGENT", "TARGET", "REVISION", "HEALTH",
              "STATE", "ENDPOINT");
  for (const json& a : agents) {
    std::printf("%-24s %-12s %-18s %-10s %-10s %s\n", a["name"].get<std::string>().c_str(),
                a["target"].get<std::string>().c_str(), a["revision"].get<std::string>().c_str(),
                a["health"].get<std::string>().c_str(), a["state"].get<std::string>().c_str(),
                a["endpoint"].get<std::string>().c_str());
  }
  return kExitOk;
}

int CmdHistory(const GlobalOptions& g, bool as_json) {
  ProviderRegistry none;
  Session session(g, &none, StopToken());
  Result<std::vector<HistoryEntry>> history = session.store().LoadHistory();
  if (!history.ok()) return Fail(history.status());
  if (as_json) {
    json out = json::array();
    for (const HistoryEntry& e : *history) out.push_back(ToJson(e));
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  std::printf("%-6s %-18s %-22s %-10s %s\n", "SERIAL", "REVISION", "APPLIED", "RESULT", "SUMMARY");
  for (const HistoryEntry& e : *history) {
    std::printf("%-6d %-18s %-22s %-10s %s\n", e.serial, e.revision.c_str(), e.applied_at.c_str(),
                e.result.c_str(), e.summary.c_str());
  }
  return kExitOk;
}

int CmdUnlock(const GlobalOptions& g) {
  ProviderRegistry none;
  Session session(g, &none, StopToken());
  auto holder = session.store().Holder();
  Status s = session.store().Unlock();
  if (!s.ok()) return Fail(s);
  if (holder.ok() && holder->has_value()) {
    const LockInfo& info = **holder;
    std::cout << "Removed the lock held by pid " << info.pid << " on " << info.host << " since "
              << info.started_at << " (" << info.command << ").\n";
  } else {
    std::cout << "Removed the lock.\n";
  }
  return kExitOk;
}

}  // namespace reconcile::cli
