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
#include "reconcile/secrets.h"
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

// Loads the tree, opens the state, observes. The stages every command shares.
Status Prepare(Session& session) {
  if (Status s = session.LoadDesired(); !s.ok()) return s;
  if (Status s = session.LoadState(); !s.ok()) return s;
  return session.Observe();
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
  std::getline(std::cin, answer);
  if (answer != "yes") {
    std::cout << "\nCancelled; nothing was changed.\n";
    return false;
  }
  return true;
}

Result<std::map<std::string, std::string>> SecretsFor(const Session& session,
                                                      const Change& change) {
  const Agent* agent = session.desired().FindAgent(change.name);
  if (agent == nullptr || agent->secret_env.empty()) {
    return std::map<std::string, std::string>{};
  }
  return ResolveSecrets(agent->secret_env, session.secrets_dir());
}

std::string Summary(const Plan& plan) {
  std::ostringstream out;
  out << plan.Count(Action::kCreate) << " added, " << plan.Count(Action::kUpdate) << " changed, "
      << plan.Count(Action::kReplace) << " replaced, " << plan.Count(Action::kDelete)
      << " destroyed";
  return out.str();
}

// Records what runs for unchanged agents whose state entry is missing or out
// of date (e.g. a lost state folder): the labels prove we own them.
bool RefreshUnchanged(const Plan& plan, const Session& session, const std::string& now,
                      State& state) {
  bool changed = false;
  for (const Change& c : plan.changes) {
    if (c.action != Action::kNoOp || c.prior.empty()) continue;
    auto observed = session.observed().find(c.target);
    if (observed == session.observed().end()) continue;
    std::vector<InstanceRecord> instances;
    for (const ObservedInstance& i : observed->second.instances) {
      if (i.agent == c.name) instances.push_back({i.id, i.name, i.endpoint});
    }
    ResourceState& rs = state.resources[c.address];
    if (rs.spec_hash == c.desired_hash && rs.instances == instances) continue;
    if (rs.address.empty()) {
      rs.health = "unknown";
      rs.applied_at = now;
      rs.revision = session.desired().revision;
    }
    RecordChange(c, rs);
    rs.instances = std::move(instances);
    changed = true;
  }
  return changed;
}

// Applies `plan`, saves state and history. Returns the exit code.
int ApplyAndRecord(Session& session, const Plan& plan, const ApplyFlags& flags) {
  auto clock = NewSystemClock();
  State state = session.recorded();
  bool refreshed = RefreshUnchanged(plan, session, clock->NowRfc3339(), state);
  if (!plan.HasChanges()) {
    if (refreshed) {
      if (Result<int> saved = session.store().Save(state); !saved.ok()) return Fail(saved.status());
    }
    std::cout << "No changes. The running agents match the desired state (" << plan.revision
              << ").\n";
    return kExitOk;
  }
  std::cout << std::flush;  // the plan before the progress lines (stderr)
  ConsoleObserver observer;
  ApplyContext ctx;
  ctx.provider_for = [&](const std::string& t) { return session.provider_for(t); };
  ctx.target_for = [&](const std::string& t) { return session.target_for(t); };
  ctx.secrets_for = [&](const Change& c) { return SecretsFor(session, c); };
  ctx.clock = clock.get();
  ctx.observer = &observer;
  ApplyOptions options;
  options.parallelism = flags.parallelism;
  ApplyResult result = Apply(plan, state, ctx, options);

  Result<int> serial = session.store().Save(result.state);
  if (!serial.ok()) {
    spdlog::error("{}", serial.status().message());
    return kExitError;
  }
  HistoryEntry entry;
  entry.serial = *serial;
  entry.revision = plan.revision;
  entry.applied_at = clock->NowRfc3339();
  entry.result = result.status.ok() ? "succeeded" : "failed";
  entry.summary = Summary(plan);
  for (const auto& [address, rs] : result.state.resources) entry.specs[address] = rs.spec;
  if (Status s = session.store().AppendHistory(entry); !s.ok()) {
    spdlog::warn("could not record history: {}", s.message());
  }
  if (!result.status.ok()) {
    spdlog::error("apply failed: {} succeeded, {} failed, {} skipped", result.succeeded,
                  result.failed, result.skipped);
    spdlog::error("{}", result.status.message());
    return kExitError;
  }
  std::cout << "\nApply complete! Agents: " << Summary(plan) << ".\n";
  return kExitOk;
}

Result<std::unique_ptr<StateLock>> TakeLock(Session& session, const std::string& command) {
  return session.store().Lock(command);
}

}  // namespace

int CmdValidate(const GlobalOptions& g) {
  ProviderRegistry none;
  Session session(g, &none);
  if (Status s = session.LoadDesired(); !s.ok()) return Fail(s);
  const DesiredState& d = session.desired();
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
  Session session(g, &registry);
  if (Status s = Prepare(session); !s.ok()) return Fail(s);
  Plan plan = session.MakePlan();
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
  Session session(g, &registry);
  if (Status s = session.LoadDesired(); !s.ok()) return Fail(s);
  auto lock = TakeLock(session, "reconcile apply");
  if (!lock.ok()) return Fail(lock.status());
  if (Status s = session.LoadState(); !s.ok()) return Fail(s);  // under the lock
  if (Status s = session.Observe(); !s.ok()) return Fail(s);
  Plan plan = session.MakePlan();
  if (saved) {
    if (saved->revision != plan.revision) {
      return Fail(Status::Conflict("saved plan is stale: the desired state changed (plan " +
                                   saved->revision + ", now " + plan.revision +
                                   "); run `reconcile plan` again"));
    }
    if (saved->observed_digest != plan.observed_digest) {
      return Fail(Status::Conflict(
          "saved plan is stale: what runs changed since it was computed; run `reconcile plan` "
          "again"));
    }
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
  Session session(g, &registry);
  if (Status s = session.LoadDesired(); !s.ok()) return Fail(s);
  auto lock = TakeLock(session, "reconcile destroy");
  if (!lock.ok()) return Fail(lock.status());
  if (Status s = session.LoadState(); !s.ok()) return Fail(s);
  if (Status s = session.Observe(); !s.ok()) return Fail(s);
  // Destroy = a plan towards a desired state with the targets but no agents.
  DesiredState empty;
  empty.targets = session.desired().targets;
  empty.registries = session.desired().registries;
  empty.revision = session.desired().revision;
  PlanInput input;
  input.desired = &empty;
  input.recorded = &session.recorded();
  input.observed = session.observed();
  Plan plan = ComputePlan(input);
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
  Session session(g, &registry);
  if (Status s = Prepare(session); !s.ok()) return Fail(s);
  std::vector<DriftItem> items = ComputeDrift(session.recorded(), session.observed());
  if (as_json) {
    std::cout << json{{"revision", session.recorded().revision},
                      {"drifted", items.size()},
                      {"items", ToJson(items)}}
                     .dump(2)
              << "\n";
  } else if (items.empty()) {
    std::cout << "No drift. What runs matches the last apply (" << session.recorded().revision
              << ").\n";
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
  Session session(g, &registry);
  if (Status s = Prepare(session); !s.ok()) return Fail(s);
  json agents = json::array();
  for (const auto& [address, rs] : session.recorded().resources) {
    std::string state = "missing", endpoint;
    auto observed = session.observed().find(rs.target);
    if (observed != session.observed().end()) {
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
    std::cout << json{{"revision", session.recorded().revision}, {"agents", agents}}.dump(2)
              << "\n";
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
  Session session(g, &none);
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
  Session session(g, &none);
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
