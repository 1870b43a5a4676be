#include "commands.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "cmd_audit.h"
#include "console.h"
#include "reconcile/applier.h"
#include "reconcile/deploy_window.h"
#include "reconcile/drift.h"
#include "reconcile/json_schemas.h"
#include "reconcile/plan_format.h"
#include "reconcile/reconciler.h"
#include "reconcile/saved_plan.h"
#include "reconcile/spec.h"

namespace reconcile::cli {

namespace {

using nlohmann::json;

constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kExitChanges = 2;

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
// also after failures and stops) and appends the audit entry of `action`
// (README "Audit log"). Returns the exit code.
int ApplyAndRecord(Session& session, const Plan& plan, const ApplyFlags& flags, const char* action,
                   bool ignored_windows = false) {
  std::cout << std::flush;  // the plan before the progress lines (stderr)
  ApplyOptions options;
  options.parallelism = flags.parallelism;
  options.ignored_windows = ignored_windows;
  ApplyOutcome out = session.reconciler().ApplyPlan(plan, options);
  const bool audited = AuditApply(session, action, plan, out.status, flags.plan_file);
  if (!out.changed) {
    if (!out.status.ok()) return Fail(out.status);
    std::cout << "No changes. The running agents match the desired state (" << plan.revision
              << ").\n";
    return audited ? kExitOk : kExitError;
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
  return audited ? kExitOk : kExitError;
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

constexpr size_t kMaxPlanFileBytes = 64u << 20;

// Reads and checks a saved plan file; every error names the file (and the
// field). Changes nothing.
Result<SavedPlan> ReadSavedPlan(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return Status::Invalid(path + " is a folder, not a saved plan");
  }
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return Status::NotFound("cannot read plan file " + path + ": " + ec.message());
  if (size > kMaxPlanFileBytes) {
    return Status::Invalid(path + ": a plan file is at most 64 MiB; this is not a saved plan");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot read plan file " + path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return ParseSavedPlan(path, buffer.str());
}

// The same folder, spelled either way ("tree", "./tree/", a symlink to it).
bool SamePlace(const std::string& a, const std::string& b) {
  if (IsGitUrl(a) || IsGitUrl(b)) return a == b;
  std::error_code ec;
  auto ca = std::filesystem::weakly_canonical(std::filesystem::absolute(a, ec), ec);
  auto cb = std::filesystem::weakly_canonical(std::filesystem::absolute(b, ec), ec);
  return ca == cb;
}

std::string Absolute(const std::string& path) {
  if (IsGitUrl(path)) return path;
  std::error_code ec;
  return std::filesystem::weakly_canonical(std::filesystem::absolute(path, ec), ec).string();
}

// Deploy windows judge the wall clock of this machine.
WindowTime WindowNow() {
  return std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

// "Blocked by deploy window: <reason>; next window <time>".
std::string BlockedLine(const PlanGate& gate) {
  return "Blocked by deploy window: " + gate.reason + "; next window " + gate.next_text;
}

// What the pin means for this plan, for people (stdout, before the plan).
void PrintPinNote(const Reconciler& r) {
  if (r.pin()) {
    const Pin& pin = *r.pin();
    std::cout << "Pinned to revision " << pin.revision << " by `reconcile rollback` (history #"
              << pin.serial << ", since " << pin.pinned_at << "): planning towards it, not the "
              << "tree's " << pin.desired_revision << ", until the desired revision changes.\n\n";
  } else if (r.pin_ended()) {
    const Pin& pin = *r.pin_ended();
    std::cout << "The pin on revision " << pin.revision << " (rollback to history #" << pin.serial
              << ") ends: the desired revision changed from " << pin.desired_revision << " to "
              << r.snapshot().revision << "; this plan rolls forward to it.\n\n";
  }
}

}  // namespace

int CmdValidate(const GlobalOptions& g, const ProviderRegistry& registry) {
  Session session(g, &registry, StopToken());
  if (Status s = session.Load(); !s.ok()) return Fail(s);
  const DesiredState& d = session.reconciler().desired();
  std::cout << "Valid: " << d.agents.size() << " agent(s), " << d.registries.size() << " registr"
            << (d.registries.size() == 1 ? "y" : "ies") << ", " << d.targets.size() << " target(s)";
  if (!d.notifiers.empty()) std::cout << ", " << d.notifiers.size() << " notifier(s)";
  std::cout << " (" << d.revision << ").\n";
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
    SavedPlan saved{Absolute(g.source), Absolute(session.options().state_dir), plan};
    if (Status s = WriteFileAtomic(flags.out, SavedPlanText(saved)); !s.ok()) return Fail(s);
  }
  if (flags.json) {
    std::cout << ToJson(plan).dump(2) << "\n";
  } else {
    PlanFormatOptions options;
    options.color = UseColor();
    options.show_no_op = flags.explain || g.verbosity > 0;
    PrintPinNote(session.reconciler());
    std::cout << FormatPlan(plan, options);
    // `plan` is never blocked; it says what a window would hold back.
    PlanGate gate = GatePlan(plan, session.reconciler().desired(), WindowNow());
    if (!gate.held.empty()) {
      std::cout << "\nA deploy window would block `reconcile apply` of agent(s) "
                << JoinNames(gate.held_agents) << ": " << gate.reason << "; next window "
                << gate.next_text << "\n";
    }
    if (!flags.out.empty()) {
      std::cout << "\nSaved the plan to " << flags.out << ". To apply exactly this plan, run:\n"
                << "    reconcile apply " << flags.out << " --source " << Absolute(g.source)
                << " --state " << Absolute(session.options().state_dir) << "\n";
    }
  }
  return plan.HasChanges() ? kExitChanges : kExitOk;
}

int CmdApply(const GlobalOptions& g, const ProviderRegistry& registry, const ApplyFlags& flags) {
  std::optional<SavedPlan> saved;
  if (!flags.plan_file.empty()) {
    Result<SavedPlan> read = ReadSavedPlan(flags.plan_file);
    if (!read.ok()) return Fail(read.status());
    saved = std::move(*read);
  }
  Session session(g, &registry, StopToken());
  Reconciler& r = session.reconciler();
  if (saved) {
    // The plan file never chooses where to read or write: the command line
    // does (default: the current folder), and it must be where the plan
    // was made.
    const std::string state_dir = session.options().state_dir;
    if (!SamePlace(saved->source, g.source) || !SamePlace(saved->state_dir, state_dir)) {
      return Fail(Status::Invalid(
          flags.plan_file + " was made for source " + saved->source + " and state " +
          saved->state_dir + ", but this run uses source " + Absolute(g.source) + " and state " +
          Absolute(state_dir) + "; run `reconcile apply " + flags.plan_file + " --source " +
          saved->source + " --state " + saved->state_dir + "` (nothing was changed)"));
    }
  }
  if (Status s = session.Load(); !s.ok()) return Fail(s);
  if (Status s = r.Lock("reconcile apply"); !s.ok()) return Fail(s);
  if (Status s = r.ReadState(); !s.ok()) return Fail(s);  // under the lock
  if (Status s = AuditCheck(session); !s.ok()) return Fail(s);
  if (Status s = r.Observe(); !s.ok()) return Fail(s);
  Plan plan = r.MakePlan();
  if (saved) {
    // Applied only when it is exactly the plan computed now: an edited plan
    // file (desired, desiredHash, actions) is refused, never deployed.
    if (Status s = Reconciler::CheckSaved(saved->plan, plan); !s.ok()) {
      return Fail(s.WithContext(flags.plan_file));
    }
  } else if (plan.HasChanges()) {
    PlanFormatOptions options;
    options.color = UseColor();
    PrintPinNote(r);
    std::cout << FormatPlan(plan, options);
  }
  // Deploy windows (README "Deploy windows"): the changes a window holds
  // wait; --ignore-windows applies them anyway and says so in the history.
  PlanGate gate = GatePlan(plan, r.desired(), WindowNow());
  const bool held = !gate.held.empty();
  if (held && flags.ignore_windows) {
    std::string ignored;
    for (const std::string& w : gate.windows) ignored += (ignored.empty() ? "" : "; ") + w;
    spdlog::warn("--ignore-windows: applying agent(s) {} although {}; windows ignored: {}",
                 JoinNames(gate.held_agents), gate.reason, ignored);
  } else if (held) {
    std::cout << "\n" << BlockedLine(gate) << "\n";
    if (!gate.allowed.HasChanges()) {
      std::cout << "Nothing was applied; " << gate.held.size()
                << " change(s) pending. Run `reconcile apply --ignore-windows` to override.\n";
      return kExitError;
    }
    std::cout << "Agent(s) " << JoinNames(gate.held_agents)
              << " wait for their window; applying the other changes.\n";
  }
  const bool wait = held && !flags.ignore_windows;
  const Plan& to_apply = wait ? gate.allowed : plan;
  if (!saved && to_apply.HasChanges() && !Approve(flags.auto_approve, "perform these actions")) {
    return kExitError;
  }
  int rc = ApplyAndRecord(session, to_apply, flags, "apply", held && flags.ignore_windows);
  return wait && rc == kExitOk ? kExitError : rc;  // held changes are still pending
}

int CmdDestroy(const GlobalOptions& g, const ProviderRegistry& registry, const ApplyFlags& flags) {
  Session session(g, &registry, StopToken());
  Reconciler& r = session.reconciler();
  if (Status s = session.Load(); !s.ok()) return Fail(s);
  if (Status s = r.Lock("reconcile destroy"); !s.ok()) return Fail(s);
  if (Status s = r.ReadState(); !s.ok()) return Fail(s);
  if (Status s = AuditCheck(session); !s.ok()) return Fail(s);
  if (Status s = r.Observe(Reconciler::ObserveScope::kTargets); !s.ok()) return Fail(s);
  r.DropPin();  // nothing is left to keep pinned
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
  return ApplyAndRecord(session, plan, flags, "destroy");
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
    std::string state = "missing", endpoint, engine_health;
    auto observed = r.observed().find(rs.target);
    if (observed != r.observed().end()) {
      for (const ObservedInstance& i : observed->second.instances) {
        if (i.agent != rs.name) continue;
        state = i.state;
        if (endpoint.empty()) endpoint = i.endpoint;
        // The engine's own check (exec), as it stands now: the worst instance's.
        if (i.health == "unhealthy" || (i.health == "starting" && engine_health != "unhealthy") ||
            (i.health == "healthy" && engine_health.empty())) {
          engine_health = i.health;
        }
      }
    }
    const std::string health = engine_health.empty() ? rs.health : engine_health;
    agents.push_back({{"name", rs.name},
                      {"target", rs.target},
                      {"revision", rs.revision},
                      {"health", health},
                      {"state", state},
                      {"endpoint", endpoint},
                      {"appliedAt", rs.applied_at},
                      {"imageDigest", rs.image_digest}});
  }
  const std::optional<Pin>& pin = r.recorded().pin;
  if (as_json) {
    json pin_json = nullptr;
    if (pin) {
      pin_json = {{"revision", pin->revision},
                  {"serial", pin->serial},
                  {"desiredRevision", pin->desired_revision},
                  {"pinnedAt", pin->pinned_at},
                  {"ends", r.pin_ended().has_value()}};
    }
    std::cout
        << json{{"revision", r.recorded().revision}, {"pin", pin_json}, {"agents", agents}}.dump(2)
        << "\n";
    return kExitOk;
  }
  if (pin) {
    std::cout << "Pinned to revision " << pin->revision << " (history #" << pin->serial
              << ") by `reconcile rollback` at " << pin->pinned_at << ".\n";
    if (r.pin_ended()) {
      std::cout << "The pin ends with the next apply: the desired revision changed from "
                << pin->desired_revision << " to " << r.snapshot().revision << ".\n\n";
    } else {
      std::cout << "`plan`, `apply` and the controller keep it until the desired revision "
                << "changes from " << pin->desired_revision << ".\n\n";
    }
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
  bool digests = false;
  for (const json& a : agents) {
    const std::string digest = a["imageDigest"].get<std::string>();
    if (digest.empty()) continue;
    if (!digests) std::cout << "\nImages by digest (as applied):\n";
    digests = true;
    std::printf("  %-24s %s\n", a["name"].get<std::string>().c_str(), digest.c_str());
  }
  return kExitOk;
}

int CmdHistory(const GlobalOptions& g, bool as_json) {
  ProviderRegistry none;
  Session session(g, &none, StopToken());
  Result<History> history = session.store().LoadHistory();
  if (!history.ok()) return Fail(history.status());
  Result<State> state = session.store().Load();
  if (!state.ok()) return Fail(state.status());
  const std::optional<size_t> live = LiveEntry(*history, *state);
  const int pinned = state->pin ? state->pin->serial : 0;
  auto status_of = [&](size_t i) {
    std::string out;
    if (live && *live == i) out = "live";
    if (pinned != 0 && history->entries[i].serial == pinned)
      out += out.empty() ? "pinned" : ",pinned";
    return out;
  };
  if (as_json) {
    json out = json::array();
    HistoryResources resources;
    for (size_t i = 0; i < history->entries.size(); ++i) {
      const HistoryEntry& e = history->entries[i];
      for (const std::string& address : e.removed) resources.erase(address);
      for (const auto& [address, r] : e.changed) resources[address] = r;
      json j = ToJson(e);
      j["agents"] = resources.size();
      j["live"] = live && *live == i;
      j["pinned"] = pinned != 0 && e.serial == pinned;
      out.push_back(std::move(j));
    }
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  std::printf("%-6s %-18s %-24s %-10s %-12s %s\n", "SERIAL", "REVISION", "APPLIED", "RESULT",
              "STATUS", "SUMMARY");
  for (size_t i = 0; i < history->entries.size(); ++i) {
    const HistoryEntry& e = history->entries[i];
    std::string summary = e.summary;
    if (e.rollback_of != 0)
      summary = "rollback to #" + std::to_string(e.rollback_of) + ": " + summary;
    if (e.ignored_windows) summary += " (deploy windows ignored)";
    std::printf("%-6d %-18s %-24s %-10s %-12s %s\n", e.serial, e.revision.c_str(),
                e.applied_at.c_str(), e.result.c_str(), status_of(i).c_str(), summary.c_str());
  }
  if (state->pin) {
    std::cout << "\nPinned to revision " << state->pin->revision << " (history #"
              << state->pin->serial << ") until the desired revision changes from "
              << state->pin->desired_revision << ".\n";
  }
  return kExitOk;
}

int CmdRollback(const GlobalOptions& g, const ProviderRegistry& registry,
                const RollbackFlags& flags) {
  Session session(g, &registry, StopToken());
  Reconciler& r = session.reconciler();
  if (Status s = session.Load(); !s.ok()) return Fail(s);
  if (Status s = r.Lock("reconcile rollback"); !s.ok()) return Fail(s);
  if (Status s = r.ReadState(); !s.ok()) return Fail(s);
  if (Status s = AuditCheck(session); !s.ok()) return Fail(s);
  Result<History> history = session.store().LoadHistory();
  if (!history.ok()) return Fail(history.status());
  Result<size_t> index = FindRollbackEntry(*history, r.recorded(), flags.to);
  if (!index.ok()) return Fail(index.status().WithContext("rollback"));
  const HistoryEntry& entry = history->entries[*index];
  if (Status s = r.PinTo(*history, *index); !s.ok()) return Fail(s.WithContext("rollback"));
  if (Status s = r.Observe(); !s.ok()) return Fail(s);
  Plan plan = r.MakePlan();
  std::cout << "Rolling back to revision " << entry.revision << " (history #" << entry.serial
            << ", applied " << entry.applied_at << ").\n";
  if (plan.HasChanges()) {
    PlanFormatOptions options;
    options.color = UseColor();
    std::cout << "\n" << FormatPlan(plan, options);
    if (!Approve(flags.auto_approve, "roll back to this revision and pin it")) return kExitError;
  }
  std::cout << std::flush;
  ApplyOptions options;
  options.parallelism = flags.parallelism;
  ApplyOutcome out = r.ApplyPlan(plan, options);
  const bool audited = AuditApply(session, "rollback", plan, out.status, "",
                                  "rollback to history #" + std::to_string(entry.serial));
  const std::string pinned = "Pinned to revision " + entry.revision +
                             ": `plan`, `apply` and the "
                             "controller keep it until the desired revision changes from " +
                             r.snapshot().revision + ".";
  if (!out.status.ok()) {
    if (out.changed) {
      spdlog::error("rollback failed: {} succeeded, {} failed, {} skipped", out.succeeded,
                    out.failed, out.skipped);
    }
    spdlog::error("{}", out.status.message());
    if (r.recorded().pin) spdlog::error("{} Run the rollback again to retry it.", pinned);
    return kExitError;
  }
  if (!out.changed) {
    std::cout << "No changes: revision " << entry.revision << " already runs.\n";
  } else {
    std::cout << "\nRollback complete! Agents: " << AppliedSummary(plan) << ".\n";
  }
  std::cout << pinned << "\n";
  return audited ? kExitOk : kExitError;
}

int CmdShow(const std::string& plan_file, bool as_json) {
  Result<SavedPlan> saved = ReadSavedPlan(plan_file);
  if (!saved.ok()) return Fail(saved.status());
  if (as_json) {
    std::cout << ToJson(saved->plan).dump(2) << "\n";
    return kExitOk;
  }
  std::cout << "Saved plan " << plan_file << "\n"
            << "  source:   " << saved->source << "\n"
            << "  state:    " << saved->state_dir << "\n"
            << "  revision: " << saved->plan.revision << "\n\n";
  PlanFormatOptions options;
  options.color = UseColor();
  std::cout << FormatPlan(saved->plan, options);
  return kExitOk;
}

int CmdUnlock(const GlobalOptions& g) {
  ProviderRegistry none;
  Session session(g, &none, StopToken());
  if (Status s = AuditCheck(session); !s.ok()) return Fail(s);
  auto holder = session.store().Holder();
  Status s = session.store().Unlock();
  AuditEntry entry;
  entry.action = "unlock";
  SetAuditResult(entry, s);
  if (holder.ok() && holder->has_value()) {
    const LockInfo& info = **holder;
    entry.detail = "lock of pid " + std::to_string(info.pid) + " on " + info.host + " since " +
                   info.started_at + " (" + info.command + ")";
  }
  const bool audited = AuditAppend(session, std::move(entry));
  if (!s.ok()) return Fail(s);
  if (holder.ok() && holder->has_value()) {
    const LockInfo& info = **holder;
    std::cout << "Removed the lock held by pid " << info.pid << " on " << info.host << " since "
              << info.started_at << " (" << info.command << ").\n";
  } else {
    std::cout << "Removed the lock.\n";
  }
  return audited ? kExitOk : kExitError;
}

}  // namespace reconcile::cli
