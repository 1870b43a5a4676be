// `reconcile controller`: wiring of the daemon. One io_context on the main
// thread runs the HTTP server, the scheduler's timers and the signal set;
// passes and ref checks run on the scheduler's own thread.
#include "cmd_controller.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <future>
#include <map>
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "build_services.h"
#include "controller/http_server.h"
#include "controller/leader_election.h"
#include "controller/memory.h"
#include "controller/metrics.h"
#include "controller/metrics_listener.h"
#include "controller/scheduler.h"
#include "controller/scheduler_view.h"
#include "controller/webhook_secrets.h"
#include "reconcile/spec.h"

namespace reconcile::cli {

namespace {

namespace asio = boost::asio;
using controller::Decision;

// Logs the pass's typed events (changes starting, finishing, failing).
class LogObserver final : public EventObserver {
 public:
  void OnEvent(const Event& e) override {
    switch (e.type) {
      case Event::Type::kStageStarted:
        spdlog::debug("{}", e.message);
        break;
      case Event::Type::kChangeStarted:
        spdlog::info("{}: {} started", e.address, e.message);
        break;
      case Event::Type::kChangeProgress:
        spdlog::debug("{}: {}", e.address, e.message);
        break;
      case Event::Type::kChangeRetrying:
      case Event::Type::kChangeSkipped:
      case Event::Type::kWarning:
        spdlog::warn("{}{}{}", e.address, e.address.empty() ? "" : ": ", e.message);
        break;
      case Event::Type::kChangeSucceeded:
        spdlog::info("{}: {} ({} ms)", e.address, e.message, e.elapsed.count());
        break;
      case Event::Type::kChangeFailed:
        spdlog::error("{}: {}", e.address, e.message);
        break;
    }
  }
};

// Logs what the scheduler does; metrics come from controller::MetricsListener,
// which forwards here.
class LogListener final : public controller::SchedulerListener {
 public:
  // Who applies, for every pass's start and end line ("" without leader
  // election): " (leader ctl-a, term 3)".
  std::function<std::string()> who = [] { return std::string(); };

  void PassStarted(const PassRequest& request) override {
    const char* kind = request.kind == PassRequest::Kind::kDrift ? "drift" : "apply";
    spdlog::info("{} pass start: revision {}{}", kind, request.revision, who());
  }
  void RefChecked(const Result<std::string>& revision, double seconds) override {
    if (!revision.ok()) {
      if (revision.status().code() != Code::kCancelled) {
        spdlog::warn("source: {}", revision.status().message());
      }
    } else {
      spdlog::debug("source: at {} ({:.3f} s)", *revision, seconds);
    }
  }
  void Decided(const std::string& revision, Decision d, const std::string& why) override {
    if (d == Decision::kUpToDate) {
      spdlog::debug("revision {}: {}", revision, why);
    } else if (d == Decision::kStalled || d == Decision::kBackingOff) {
      if (last_why_ != why) spdlog::warn("revision {}: {}", revision, why);
    } else {
      spdlog::info("revision {}: {}", revision, why);
    }
    last_why_ = why;
  }
  void PassFinished(const PassRequest& request, const PassReport& r, double seconds) override {
    const bool drift = request.kind == PassRequest::Kind::kDrift;
    const char* kind = drift ? "drift" : "apply";
    spdlog::info("{} pass end: revision {}, result {}, serial {}{}", kind, r.revision,
                 controller::PassResultName(controller::PassResultOf(r)), r.outcome.serial, who());
    for (const std::string& a : r.reported) {
      spdlog::warn("drift: agent {} differs from the last apply (drift.mode: report)", a);
    }
    for (const std::string& a : r.healed) spdlog::info("drift: agent {} healed", a);
    if (r.status.code() == Code::kInvalid && r.stale_tree) {
      for (const Diagnostic& d : r.diagnostics.items()) spdlog::error("{}", d.ToString());
      spdlog::error("revision {} is invalid; the last good revision keeps running: {}", r.revision,
                    r.status.message());
    } else if (!r.status.ok()) {
      spdlog::error("{} pass at {} failed after {:.1f} s: {}", kind, r.revision, seconds,
                    r.status.message());
    } else if (r.changes > 0) {
      spdlog::info("{} pass at {}: {} change(s) applied in {:.1f} s", kind, r.revision, r.changes,
                   seconds);
    }
  }

 private:
  std::string last_why_;  // written on the pool thread only
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

  if (g.state_dir.empty()) {
    g.state_dir = IsGitUrl(g.source) ? "/var/lib/reconcile"
                                     : (std::filesystem::path(g.source) / ".reconcile").string();
  }
  if (g.secrets_dir.empty())
    g.secrets_dir = (std::filesystem::path(g.state_dir) / "secrets").string();
  auto source = OpenSource(SourceOptionsFor(g, &registry));
  if (!source.ok()) {
    spdlog::error("{}", source.status().message());
    return 1;
  }
  auto store = NewFileStateStore(g.state_dir);
  auto clock = NewSystemClock();
  LogObserver observer;
  controller::Metrics metrics;
  LogListener log_listener;
  controller::MetricsListener listener(metrics, &log_listener);

  ReconcilerDeps deps;
  deps.source = source->get();
  deps.store = store.get();
  deps.providers = &registry;
  deps.clock = clock.get();
  deps.observer = &observer;
  deps.secrets_dir = g.secrets_dir;
  deps.secret_env_policy = SecretEnvPolicyFor(g);
  deps.build = ProgramBuildServices(g.max_build_context);
  controller::SchedulerOptions options;
  options.interval = *interval;
  options.policy.drift_interval = *drift;
  options.policy.max_retries = flags.max_retries;
  options.policy.heal_budget = flags.heal_budget;
  options.apply.parallelism = flags.parallelism;
  options.branch = g.ref;
  options.start_paused = election.has_value();  // nothing runs before we lead

  asio::io_context io;
  controller::Scheduler scheduler(io, deps, options, &listener);
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
      scheduler.Trigger("webhook handed over through the Lease");
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
    log_listener.who = [e = elector.get(), id] {
      return " (leader " + id + ", term " + std::to_string(e->term()) + ")";
    };
  }
  controller::HttpServerOptions http_options;
  http_options.listen = flags.listen;
  http_options.secrets = secrets;
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
               (*source)->Describe(), interval->count() / 1000, drift->count() / 1000,
               http.address());

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
  if (election_thread.joinable()) {
    election_thread.request_stop();
    election_thread.join();
  }
  spdlog::info("controller: stopped");
  return 0;
}

}  // namespace reconcile::cli
