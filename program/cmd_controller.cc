// `reconcile controller`: wiring of the daemon. One io_context on the main
// thread runs the HTTP server, the scheduler's timers and the signal set;
// passes and ref checks run on the scheduler's own thread.
#include "cmd_controller.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "build_services.h"
#include "controller/drift_watcher.h"
#include "controller/event_bus.h"
#include "controller/http_server.h"
#include "controller/leader_election.h"
#include "controller/memory.h"
#include "controller/metrics.h"
#include "controller/metrics_listener.h"
#include "controller/multi_scheduler.h"
#include "controller/notify/notifier_sink.h"
#include "controller/otlp_config.h"
#include "controller/otlp_exporter.h"
#include "controller/scheduler.h"
#include "controller/scheduler_view.h"
#include "controller/status_feed.h"
#include "controller/webhook_secrets.h"
#include "http/http_client.h"
#include "reconcile/audit_log.h"
#include "reconcile/spec.h"
#include "reconcile/state_store.h"
#include "secret_stores.h"

namespace reconcile::cli {

namespace {

namespace asio = boost::asio;
using controller::Decision;

// Logs the pass's typed events (changes starting, finishing, failing).
class LogObserver final : public EventObserver {
 public:
  std::string tag;  // "staging: " with several environments, else ""

  void OnEvent(const Event& e) override {
    switch (e.type) {
      case Event::Type::kStageStarted:
        spdlog::debug("{}{}", tag, e.message);
        break;
      case Event::Type::kChangeStarted:
        spdlog::info("{}{}: {} started", tag, e.address, e.message);
        break;
      case Event::Type::kChangeProgress:
        spdlog::debug("{}{}: {}", tag, e.address, e.message);
        break;
      case Event::Type::kChangeRetrying:
      case Event::Type::kChangeSkipped:
      case Event::Type::kWarning:
        spdlog::warn("{}{}{}{}", tag, e.address, e.address.empty() ? "" : ": ", e.message);
        break;
      case Event::Type::kChangeSucceeded:
        spdlog::info("{}{}: {} ({} ms)", tag, e.address, e.message, e.elapsed.count());
        break;
      case Event::Type::kChangeFailed:
        spdlog::error("{}{}: {}", tag, e.address, e.message);
        break;
      case Event::Type::kStageFinished:
        spdlog::debug("{}{} ({} ms)", tag, e.message, e.elapsed.count());
        break;
      case Event::Type::kStepStarted:
        spdlog::debug("{}{}: {}", tag, e.address, e.step);
        break;
    }
  }
};

// Logs what the scheduler does; metrics come from controller::MetricsListener,
// which forwards here.
class LogListener final : public controller::SchedulerListener {
 public:
  std::string tag;  // "staging: " with several environments, else ""

  // Who applies, for every pass's start and end line ("" without leader
  // election): " (leader ctl-a, term 3)".
  std::function<std::string()> who = [] { return std::string(); };

  void PassStarted(const PassRequest& request) override {
    const char* kind = request.kind == PassRequest::Kind::kDrift ? "drift" : "apply";
    spdlog::info("{}{} pass start: revision {}{}", tag, kind, request.revision, who());
  }
  void HealBudgetExhausted(const std::string& agent, const std::string& why) override {
    spdlog::warn("{}drift: agent {} not healed: {}", tag, agent, why);
  }
  void DriftNoticed(const DriftNotice& n) override {
    switch (n.kind) {
      case DriftNotice::Kind::kChanged:
        spdlog::debug("{}drift watch: agent {}: {}", tag, n.agent, n.what);
        break;
      case DriftNotice::Kind::kLost:
        spdlog::warn(
            "{}drift watch: {}; reconnecting (meanwhile drift is found at "
            "--drift-interval)",
            tag, n.what);
        break;
      case DriftNotice::Kind::kResync:
        spdlog::info("{}drift watch: {}; a drift pass catches up on what was missed", tag, n.what);
        break;
    }
  }
  void DriftPassForEvents(const std::vector<std::pair<std::string, std::string>>& agents) override {
    for (const auto& [agent, what] : agents) {
      if (agent.empty()) {
        spdlog::info("{}drift: {}; drift pass", tag, what);
      } else {
        spdlog::info("{}drift: agent {}: {}; drift pass", tag, agent, what);
      }
    }
  }
  void RefChecked(const Result<std::string>& revision, double seconds) override {
    if (!revision.ok()) {
      if (revision.status().code() != Code::kCancelled) {
        spdlog::warn("{}source: {}", tag, revision.status().message());
      }
    } else {
      spdlog::debug("{}source: at {} ({:.3f} s)", tag, *revision, seconds);
    }
  }
  void Decided(const std::string& revision, Decision d, const std::string& why) override {
    if (d == Decision::kUpToDate) {
      spdlog::debug("{}revision {}: {}", tag, revision, why);
    } else if (d == Decision::kStalled || d == Decision::kBackingOff) {
      if (last_why_ != why) spdlog::warn("{}revision {}: {}", tag, revision, why);
    } else {
      spdlog::info("{}revision {}: {}", tag, revision, why);
    }
    last_why_ = why;
  }
  // After every pass (on the pool thread): the drift watches follow its Targets.
  std::function<void(const PassReport&)> after_pass;

  void PassFinished(const PassRequest& request, const PassReport& r, double seconds) override {
    if (after_pass && !r.targets.empty()) after_pass(r);
    const bool drift = request.kind == PassRequest::Kind::kDrift;
    const char* kind = drift ? "drift" : "apply";
    if (r.unchanged) {
      spdlog::info("{}revision {}: no change for this environment (content {}); not planned", tag,
                   r.revision, r.state->content_digest);
      spdlog::info("{}{} pass end: revision {}, result unchanged{}", tag, kind, r.revision, who());
      return;
    }
    spdlog::info("{}{} pass end: revision {}, result {}, serial {}{}", tag, kind, r.revision,
                 controller::PassResultName(controller::PassResultOf(r)), r.outcome.serial, who());
    for (const std::string& a : r.reported) {
      spdlog::warn("{}drift: agent {} differs from the last apply (drift.mode: report)", tag, a);
    }
    for (const std::string& a : r.healed) spdlog::info("{}drift: agent {} healed", tag, a);
    if (r.status.code() == Code::kInvalid && r.stale_tree) {
      for (const Diagnostic& d : r.diagnostics.items()) spdlog::error("{}{}", tag, d.ToString());
      spdlog::error("{}revision {} is invalid; the last good revision keeps running: {}", tag,
                    r.revision, r.status.message());
    } else if (!r.status.ok()) {
      spdlog::error("{}{} pass at {} failed after {:.1f} s: {}", tag, kind, r.revision, seconds,
                    r.status.message());
    } else if (r.changes > 0) {
      spdlog::info("{}{} pass at {}: {} change(s) applied in {:.1f} s", tag, kind, r.revision,
                   r.changes, seconds);
    }
    const PassReport::Approval& a = r.approval;
    if (!a.refused.empty() && !request.approved_id.empty()) {
      spdlog::warn("{}approval: plan {} was approved but is stale: {}; refused, nothing applied",
                   tag, request.approved_id, a.refused);
    }
    if (a.applied) {
      spdlog::info("{}approval: plan {} applied as approved", tag, request.approved_id);
    }
    if (a.waiting && !a.publish_error.empty()) {
      spdlog::error("{}approval: the plan cannot be published: {}", tag, a.publish_error);
    } else if (a.waiting && a.id != last_pending_) {
      int n = 0;
      for (const Change& c : a.plan->changes) n += c.action != Action::kNoOp;
      std::string agents;
      for (const std::string& x : a.agents) agents += (agents.empty() ? "" : ", ") + x;
      spdlog::warn(
          "{}approval: plan {} of revision {} waits for approval ({} change(s); approval "
          "required for {}); nothing applied; approve it with `reconcile approve {}`",
          tag, a.id, r.revision, n, agents, a.id);
    }
    if (a.planned) last_pending_ = a.waiting ? a.id : "";
  }
  void PlanApproved(const PendingPlan& p) override {
    spdlog::info("{}approval: plan {} (revision {}) approved by {} via {}", tag, p.id, p.revision,
                 p.approved_by, p.via);
    if (audit == nullptr) return;
    const std::string env = p.environment == controller::kDefaultEnvironment ? "" : p.environment;
    Status s = audit->Append(AuditEntryForApproval("api:" + p.approved_by, p.saved.plan, p.id, env,
                                                   p.revision, p.approved_by, p.via));
    if (!s.ok()) spdlog::error("{}approval: not recorded in the audit log: {}", tag, s.message());
  }
  // The environment's audit log (not owned), for approvals made through the
  // API; null: none.
  AuditSink* audit = nullptr;

 private:
  std::string last_why_;      // written on the pool thread only
  std::string last_pending_;  // the plan last said to wait (pool thread)
};

Result<controller::Millis> Duration(const std::string& flag, const std::string& text) {
  auto ms = ParseDuration(text);
  if (!ms || *ms <= 0) {
    return Status::Invalid(flag + ": '" + text + "' is not a duration such as 30s, 5m or 1h");
  }
  return controller::Millis(*ms);
}

std::string DefaultIdentity() {
  if (const char* pod = std::getenv("POD_NAME"); pod != nullptr && *pod != '\0') return pod;
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::snprintf(host, 5, "host");
  return std::string(host) + "_" + std::to_string(getpid());
}

// --leader-elect: the elector's options and its kube client (one attempt per
// call, short timeouts), or the error to print.
struct LeaderElection {
  controller::LeaderElectionOptions options;
  std::unique_ptr<kube::Client> client;
};

Result<LeaderElection> SetUpLeaderElection(const ControllerFlags& flags) {
  LeaderElection le;
  auto lease = Duration("--leader-elect-lease-duration", flags.lease_duration);
  auto renew = Duration("--leader-elect-renew-deadline", flags.renew_deadline);
  auto retry = Duration("--leader-elect-retry-period", flags.retry_period);
  for (const Status* s : {&lease.status(), &renew.status(), &retry.status()}) {
    if (!s->ok()) return *s;
  }
  le.options.lease_duration = *lease;
  le.options.renew_deadline = *renew;
  le.options.retry_period = *retry;
  le.options.lease_name = flags.lease_name;
  le.options.identity = flags.identity.empty() ? DefaultIdentity() : flags.identity;
  le.options.lease_namespace = flags.lease_namespace.empty() ? "-" : flags.lease_namespace;
  if (Status s = controller::ValidateLeaderElectionOptions(le.options); !s.ok()) return s;
  kube::ConfigOptions config_options;
  config_options.kubeconfig = flags.kubeconfig;
  auto config = kube::LoadConfig(config_options);
  if (!config.ok()) return config.status().WithContext("--leader-elect");
  if (flags.lease_namespace.empty()) {
    le.options.lease_namespace =
        config->namespace_name.empty() ? "default" : config->namespace_name;
  }
  kube::ClientOptions client_options;
  client_options.timeout = controller::LeaseCallTimeout(le.options);
  client_options.max_attempts = 1;
  auto client = kube::MakeClient(*config, client_options);
  if (!client.ok()) return client.status().WithContext("--leader-elect");
  le.client = std::move(*client);
  return le;
}

// One followed environment of `reconcile controller --path/--environments`.
struct EnvironmentRun {
  std::string name;
  std::unique_ptr<Source> source;
  std::unique_ptr<StateStore> store;
  std::unique_ptr<AuditSink> audit;  // <its state folder>/audit.log
  LogObserver observer;
  LogListener log;
  std::unique_ptr<controller::MetricsListener> metrics;
  std::unique_ptr<controller::BusPublisher> publisher;  // what its scheduler reports to
  std::unique_ptr<controller::DriftWatcher> watch;      // --watch-events
};

// The Environments found below `dir` of the tree at `revision` (the root
// `source` of the repository; a folder source ignores the revision): (name,
// folder) sorted by folder. What is wrong with them (a duplicate name) is
// logged; the passes report each environment's own errors at file:line.
Result<std::vector<std::pair<std::string, std::string>>> FindEnvironmentsIn(
    Source& source, const std::string& revision, const std::string& dir, std::stop_token stop) {
  auto files = source.Files(revision, dir, stop);
  if (!files.ok()) return files.status();
  Diagnostics diagnostics;
  std::vector<std::pair<std::string, std::string>> out;
  for (const EnvironmentRef& e : FindEnvironments(*files, diagnostics)) {
    out.emplace_back(e.name, e.folder);
  }
  for (const Diagnostic& d : diagnostics.items())
    spdlog::warn("--environments {}: {}", dir, d.ToString());
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.second < b.second; });
  return out;
}

// The name an environment at --path `path` goes by (metrics, status, its
// state folder): its Environment document's name when the source is a folder
// that holds one directly in `path`, else the folder's last component
// ("envs/staging" -> "staging"); "default" for the root.
std::string EnvironmentNameOf(const GlobalOptions& g, Source& root, const std::string& path) {
  if (!IsGitUrl(g.source)) {
    auto found = FindEnvironmentsIn(root, "", path, {});
    std::string folder = std::filesystem::path(path).lexically_normal().generic_string();
    while (!folder.empty() && folder.back() == '/') folder.pop_back();
    if (found.ok()) {
      for (const auto& [name, at] : *found) {
        if (at == folder) return name;
      }
    }
  }
  std::string p = path;
  while (!p.empty() && p.back() == '/') p.pop_back();
  auto slash = p.find_last_of('/');
  std::string last = slash == std::string::npos ? p : p.substr(slash + 1);
  return last.empty() || last == "." ? std::string(controller::kDefaultEnvironment) : last;
}

}  // namespace

int CmdController(const GlobalOptions& given, const ProviderRegistry& registry,
                  const ControllerFlags& flags) {
  controller::TuneAllocator();
  GlobalOptions g = given;
  if (!flags.repo.empty()) g.source = flags.repo;
  if (!flags.branch.empty()) g.ref = flags.branch;
  auto interval = Duration("--interval", flags.interval);
  auto drift = Duration("--drift-interval", flags.drift_interval);
  auto grace = Duration("--grace", flags.grace);
  for (const Status* s : {&interval.status(), &drift.status(), &grace.status()}) {
    if (!s->ok()) {
      spdlog::error("{}", s->message());
      return 1;
    }
  }
  std::optional<LeaderElection> election;
  if (flags.leader_elect) {
    auto le = SetUpLeaderElection(flags);
    if (!le.ok()) {
      spdlog::error("{}", le.status().message());
      return 1;
    }
    election = std::move(*le);
  }
  controller::WebhookSecrets secrets;
  if (!flags.webhook_secret_file.empty()) {
    auto loaded = controller::LoadWebhookSecrets(flags.webhook_secret_file);
    if (!loaded.ok()) {
      spdlog::error("--webhook-secret-file: {}", loaded.status().message());
      return 1;
    }
    secrets = *loaded;
  } else {
    spdlog::warn("no --webhook-secret-file: webhooks are disabled (answer 503); polling only");
  }
  std::string status_token;
  if (!flags.status_token_file.empty()) {
    auto loaded = controller::LoadSecretFile(flags.status_token_file, "status token file");
    if (!loaded.ok()) {
      spdlog::error("--status-token-file: {}", loaded.status().message());
      return 1;
    }
    status_token = *loaded;
  }

  std::string approval_token;
  if (!flags.approval_token_file.empty()) {
    auto loaded = controller::LoadSecretFile(flags.approval_token_file, "approval token file");
    if (!loaded.ok()) {
      spdlog::error("--approval-token-file: {}", loaded.status().message());
      return 1;
    }
    approval_token = *loaded;
  }

  if (g.state_dir.empty()) {
    g.state_dir = IsGitUrl(g.source) ? "/var/lib/reconcile"
                                     : (std::filesystem::path(g.source) / ".reconcile").string();
  }
  if (g.secrets_dir.empty())
    g.secrets_dir = (std::filesystem::path(g.state_dir) / "secrets").string();
  if (Status keys = CheckSecretStores(g); !keys.ok()) {
    spdlog::error("{}", keys.message());
    return 1;
  }
  const bool multi = flags.paths.size() > 1 || !flags.environments_dir.empty();
  // The audit log's key (README "Audit log"): every apply pass and heal is
  // recorded; without a key a log that has entries stops the passes.
  std::shared_ptr<const AuditKey> audit_key;
  if (!g.audit_key.empty()) {
    auto key = AuditKey::Load(g.audit_key);
    if (key.ok() && !(*key)->can_sign()) {
      key = Status::Invalid(g.audit_key +
                            ": a public key; the controller signs with the private key");
    }
    if (!key.ok()) {
      spdlog::error("--audit-key: {}", key.status().message());
      return 1;
    }
    audit_key = std::move(*key);
  }
  if (flags.paths.size() == 1) g.path = flags.paths[0];
  auto clock = NewSystemClock();
  controller::Metrics metrics(multi ? std::vector<std::string>{}
                                    : std::vector<std::string>{controller::kDefaultEnvironment});
  controller::SchedulerOptions options;
  options.interval = *interval;
  options.policy.drift_interval = *drift;
  options.policy.max_retries = flags.max_retries;
  options.policy.heal_budget = flags.heal_budget;
  options.apply.parallelism = flags.parallelism;
  options.branch = g.ref;
  options.start_paused = election.has_value();  // nothing runs before we lead
  asio::io_context io;

  // The one event stream (event_bus.h): every scheduler publishes through a
  // BusPublisher; metrics and logs read it inline (ListenerSink), the
  // notifiers, the trace exporter and the status page's stream as queued
  // sinks.
  controller::EventBus bus(&metrics);
  auto listeners = std::make_shared<controller::ListenerSink>();
  bus.Add(listeners, {.name = "log", .inline_delivery = true});
  // The status page's history and live updates (controller/status_feed.h).
  std::shared_ptr<controller::StatusFeed> status_feed;
  if (flags.status_page == "on") {
    status_feed = std::make_shared<controller::StatusFeed>(
        [dir = std::filesystem::path(g.state_dir), multi](const std::string& env) {
          return NewFileStateStore(multi ? EnvironmentStateDir(dir, env) : dir)->LoadHistory();
        });
    bus.Add(status_feed, {.name = "status-page", .capacity = 256, .max_attempts = 1});
  }
  {
    // Notifiers (kind Notifier): one queued sink each, made as the trees name them.
    auto notify = std::make_shared<controller::notify::NotifyDeps>();
    http::ClientOptions client;
    client.max_attempts = 1;  // the bus retries
    notify->client = http::MakeCurlClient(client);
    notify->secrets_dir = g.secrets_dir;
    notify->secret_env_policy = SecretEnvPolicyFor(g);
    notify->warn = [](const std::string& m) { spdlog::warn("{}", m); };
    // What each notifier sent, so a restart does not send it again.
    notify->state_dir = std::filesystem::path(g.state_dir) / "notify";
    controller::SinkOptions each;
    each.capacity = 256;
    each.max_attempts = 4;
    each.initial_backoff = std::chrono::milliseconds(500);
    each.max_backoff = std::chrono::seconds(4);
    bus.Add(std::make_shared<controller::notify::NotifierHub>(bus, notify, each),
            {.name = "notify"});
  }
  // Traces over OTLP/HTTP when OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT is set
  // (otlp_config.h): each pass gets trace ids, the sink exports its spans.
  {
    std::vector<std::string> warnings;
    auto otlp = controller::OtlpConfigFromEnv(
        [](const std::string& n) -> std::optional<std::string> {
          const char* v = std::getenv(n.c_str());
          return v ? std::optional<std::string>(v) : std::nullopt;
        },
        &warnings);
    for (const std::string& w : warnings) spdlog::warn("traces: {}", w);
    if (!otlp.ok()) {
      spdlog::error("traces: {}", otlp.status().message());
      return 1;
    }
    if (otlp->has_value()) {
      spdlog::info("traces: exporting over OTLP/HTTP ({}) to {}",
                   (*otlp)->json ? "json" : "protobuf", http::UrlForMessage((*otlp)->url));
      options.trace = true;
      bus.Add(std::make_shared<controller::OtlpSink>(std::move(**otlp)),
              {.name = "otlp", .capacity = 8192});
    }
  }

  // Several environments: one Source (the repository root) for the shared
  // ref check; per environment its own Source, state folder, listeners and
  // Scheduler (follower).
  GlobalOptions root = g;
  root.path.clear();
  auto source = OpenSource(SourceOptionsFor(multi ? root : g, &registry));
  if (!source.ok()) {
    spdlog::error("{}", source.status().message());
    return 1;
  }
  LogListener ref_log;
  controller::MetricsListener ref_listener(metrics, &ref_log);
  controller::BusPublisher ref_publisher(bus, "");
  listeners->Route("", &ref_listener, nullptr);
  std::function<std::string()> who = [] { return std::string(); };  // leader election
  auto make_watcher = [&](controller::Scheduler& s, const std::string& tag) {
    return std::make_unique<controller::DriftWatcher>(
        registry, g.secrets_dir, [sp = &s](const DriftNotice& n) { sp->DriftNotice(n); },
        [tag](const std::string& line) { spdlog::info("{}{}", tag, line); });
  };
  std::mutex runs_mu;
  std::list<EnvironmentRun> runs;  // stable addresses; guarded by runs_mu
  auto make_environment =
      [&](const std::string& name,
          const std::string& path) -> Result<std::unique_ptr<controller::Scheduler>> {
    GlobalOptions eg = g;
    eg.path = path;
    auto env_source = OpenSource(SourceOptionsFor(eg, &registry));
    if (!env_source.ok()) return env_source.status().WithContext("environment " + name);
    std::lock_guard<std::mutex> lock(runs_mu);
    EnvironmentRun& run = runs.emplace_back();
    run.name = name;
    run.source = std::move(*env_source);
    run.store = NewFileStateStore(EnvironmentStateDir(g.state_dir, name));
    run.audit = NewAuditLog(AuditLogPath(EnvironmentStateDir(g.state_dir, name)), audit_key);
    run.log.audit = run.audit.get();
    run.observer.tag = name + ": ";
    run.log.tag = name + ": ";
    run.log.who = [&who] { return who(); };
    metrics.AddEnvironment(name);
    run.metrics = std::make_unique<controller::MetricsListener>(metrics, &run.log,
                                                                std::function<double()>{}, name);
    run.publisher = std::make_unique<controller::BusPublisher>(bus, name);
    listeners->Route(name, run.metrics.get(), &run.observer);
    ReconcilerDeps deps;
    deps.source = run.source.get();
    deps.store = run.store.get();
    deps.audit = run.audit.get();
    deps.providers = &registry;
    deps.clock = clock.get();
    deps.observer = run.publisher.get();
    deps.secrets_dir = g.secrets_dir;
    deps.secret_env_policy = SecretEnvPolicyFor(g);
    WireSecretStores(g, deps);
    deps.build = ProgramBuildServices(g.max_build_context);
    controller::SchedulerOptions eo = options;
    eo.environment = name;
    eo.path = path;
    eo.follower = true;
    eo.state_dir = EnvironmentStateDir(g.state_dir, name);
    auto scheduler = std::make_unique<controller::Scheduler>(io, deps, eo, run.publisher.get());
    if (flags.watch_events) {
      run.watch = make_watcher(*scheduler, run.log.tag);
      run.log.after_pass = [w = run.watch.get()](const PassReport& r) { w->Update(r.targets); };
    }
    return scheduler;
  };

  std::unique_ptr<controller::Scheduler> single;
  std::unique_ptr<controller::DriftWatcher> single_watch;  // --watch-events
  std::unique_ptr<controller::MultiScheduler> several;
  std::unique_ptr<StateStore> store;
  std::unique_ptr<AuditSink> audit;
  LogObserver observer;
  LogListener log_listener;
  controller::MetricsListener listener(metrics, &log_listener);
  controller::BusPublisher publisher(bus, controller::kDefaultEnvironment);
  if (!multi) {
    listeners->Route(controller::kDefaultEnvironment, &listener, &observer);
    store = NewFileStateStore(g.state_dir);
    audit = NewAuditLog(AuditLogPath(g.state_dir), audit_key);
    log_listener.audit = audit.get();
    ReconcilerDeps deps;
    deps.source = source->get();
    deps.store = store.get();
    deps.audit = audit.get();
    deps.providers = &registry;
    deps.clock = clock.get();
    deps.observer = &publisher;
    deps.secrets_dir = g.secrets_dir;
    deps.secret_env_policy = SecretEnvPolicyFor(g);
    WireSecretStores(g, deps);
    deps.build = ProgramBuildServices(g.max_build_context);
    controller::SchedulerOptions so = options;
    so.state_dir = g.state_dir;
    single = std::make_unique<controller::Scheduler>(io, deps, so, &publisher);
    if (flags.watch_events) {
      single_watch = make_watcher(*single, "");
      log_listener.after_pass = [w = single_watch.get()](const PassReport& r) {
        w->Update(r.targets);
      };
    }
  } else {
    controller::MultiSchedulerOptions mo;
    mo.interval = *interval;
    mo.branch = g.ref;
    mo.start_paused = options.start_paused;
    several = std::make_unique<controller::MultiScheduler>(io, source->get(), mo, &ref_publisher);
    std::set<std::string> names;
    std::vector<std::pair<std::string, std::string>> wanted;  // (name, path)
    for (const std::string& path : flags.paths) {
      wanted.emplace_back(EnvironmentNameOf(g, **source, path), path);
    }
    if (!flags.environments_dir.empty() && !IsGitUrl(g.source)) {
      // A folder: its environments are known now. A Git repository's are
      // found at the first ref check (on_revision below).
      auto found = FindEnvironmentsIn(**source, "", flags.environments_dir, {});
      if (!found.ok()) {
        spdlog::error("--environments {}: {}", flags.environments_dir, found.status().message());
        return 1;
      }
      for (auto& e : *found) wanted.push_back(e);
    }
    for (const auto& [name, path] : wanted) {
      if (!names.insert(name).second) {
        spdlog::error("--path {}: a second environment named '{}' (each needs its own name)", path,
                      name);
        return 1;
      }
      auto env = make_environment(name, path);
      if (!env.ok()) {
        spdlog::error("{}", env.status().message());
        return 1;
      }
      several->Add(std::move(*env));
      spdlog::info("controller: environment {} at --path {}", name, path.empty() ? "." : path);
    }
    if (!flags.environments_dir.empty()) {
      // Environments added by a commit are found at its first ref check.
      auto known = std::make_shared<std::set<std::string>>(names);
      several->on_revision = [&, known](const std::string& revision, std::stop_token stop) {
        auto found = FindEnvironmentsIn(**source, revision, flags.environments_dir, stop);
        if (!found.ok()) {
          spdlog::warn("--environments {}: {}", flags.environments_dir, found.status().message());
          return;
        }
        for (const auto& [name, path] : *found) {
          if (!known->insert(name).second) continue;
          auto env = make_environment(name, path);
          if (!env.ok()) {
            spdlog::error("{}", env.status().message());
            continue;
          }
          spdlog::info("controller: new environment {} at {}", name, path);
          several->Add(std::move(*env));
        }
      };
    }
  }
  controller::SchedulerControl& scheduler =
      single ? static_cast<controller::SchedulerControl&>(*single) : *several;
  controller::SchedulerView scheduler_view(scheduler, g.ref.empty() ? "main" : g.ref);
  controller::ControllerView* view = &scheduler_view;
  std::unique_ptr<controller::LeaderElector> elector;
  std::unique_ptr<controller::LeaderElectionView> election_view;
  metrics.SetLeader(!election);
  if (election) {
    controller::LeaderElectionCallbacks cb;
    const std::string id = election->options.identity;
    cb.started_leading = [&] {
      metrics.SetLeader(true);
      metrics.LeaderTransition();
      scheduler.Resume();
    };
    cb.stopped_leading = [&](std::stop_token stop) {
      metrics.SetLeader(false);
      auto paused = std::make_shared<std::promise<void>>();
      auto done = paused->get_future();
      scheduler.Pause([paused] { paused->set_value(); });
      while (done.wait_for(std::chrono::milliseconds(20)) != std::future_status::ready) {
        if (stop.stop_requested()) return;  // shutting down: Stop() ends the pass
      }
    };
    cb.new_leader = [](const std::string& holder) {
      spdlog::info("leader election: the leader is now {}", holder.empty() ? "(none)" : holder);
    };
    cb.webhook_requested = [&scheduler](const std::string& value) {
      spdlog::info("leader election: a webhook was handed to us ({}); checking the ref now", value);
      scheduler.Trigger("webhook handed over through the Lease", "webhook");
    };
    cb.log = [](bool warn, const std::string& line) {
      if (warn) {
        spdlog::warn("{}", line);
      } else {
        spdlog::info("{}", line);
      }
    };
    elector = std::make_unique<controller::LeaderElector>(*election->client, *clock,
                                                          election->options, std::move(cb));
    election_view = std::make_unique<controller::LeaderElectionView>(scheduler_view, *elector);
    view = election_view.get();
    who = [e = elector.get(), id] {
      return " (leader " + id + ", term " + std::to_string(e->term()) + ")";
    };
    log_listener.who = who;
  }
  controller::HttpServerOptions http_options;
  http_options.listen = flags.listen;
  http_options.secrets = secrets;
  http_options.status_page = flags.status_page == "on";
  http_options.status_feed = status_feed;
  http_options.status_token = status_token;
  http_options.approval_token = approval_token;
  http_options.on_request = [](const controller::HttpRequestLog& r) {
    if (r.target.rfind("/hooks/", 0) == 0) {
      spdlog::info("webhook: {} {} -> {} {}", r.method, r.target, r.status, r.detail);
      return;
    }
    spdlog::debug("http: {} {} {} -> {} {} ({} us)", r.remote, r.method, r.target, r.status,
                  r.detail, r.elapsed.count());
  };
  controller::HttpServer http(io, http_options, *view, metrics);
  if (Status s = http.Start(); !s.ok()) {
    spdlog::error("--listen {}: {}", flags.listen, s.message());
    return 1;
  }
  spdlog::info("controller: following {} (every {} s, drift every {} s); listening on http://{}",
               (*source)->Describe() +
                   (multi ? " (" + std::to_string(several->Environments().size()) + " environments)"
                          : std::string()),
               interval->count() / 1000, drift->count() / 1000, http.address());
  if (!flags.watch_events) {
    spdlog::info("controller: --watch-events=false: drift is found at --drift-interval only");
  }

  asio::signal_set signals(io, SIGINT, SIGTERM);
  asio::steady_timer grace_timer(io);
  bool stopping = false;
  std::function<void()> wait_signal;
  wait_signal = [&] {
    signals.async_wait([&](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      if (stopping) {
        spdlog::warn("second signal: exiting now");
        std::_Exit(0);
      }
      stopping = true;
      spdlog::info(
          "{}: stopping; no new work, the current pass ends its waits and records "
          "what ran, then the lock is released",
          sig == SIGTERM ? "SIGTERM" : "SIGINT");
      http.Stop();
      scheduler.Stop([&] {
        grace_timer.cancel();
        signals.cancel();
        io.stop();  // then the elector (if any) releases the lease: the pass has ended
      });
      grace_timer.expires_after(*grace);
      grace_timer.async_wait([&](const boost::system::error_code& e) {
        if (e) return;
        spdlog::error(
            "the current pass did not stop within --grace {}; exiting (the state "
            "lock is released by the kernel)",
            flags.grace);
        std::_Exit(0);
      });
      wait_signal();
    });
  };
  wait_signal();
  std::jthread election_thread;
  if (elector) {
    election_thread = std::jthread([&](std::stop_token stop) { elector->Run(stop); });
  } else {
    scheduler.Start();
  }
  io.run();
  // No notice may reach a scheduler once the loop has ended.
  if (single_watch) single_watch->StopAll();
  {
    std::lock_guard<std::mutex> lock(runs_mu);
    for (EnvironmentRun& run : runs) {
      if (run.watch) run.watch->StopAll();
    }
  }
  if (election_thread.joinable()) {
    election_thread.request_stop();
    election_thread.join();
  }
  // What the last pass published gets a moment to reach the notifiers.
  bus.Stop(std::chrono::seconds(2));
  spdlog::info("controller: stopped");
  return 0;
}

}  // namespace reconcile::cli
