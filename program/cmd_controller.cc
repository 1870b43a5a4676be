// `reconcile controller`: wiring of the daemon. One io_context on the main
// thread runs the HTTP server, the scheduler's timers and the signal set;
// passes and ref checks run on the scheduler's own thread.
#include "cmd_controller.h"

#include <signal.h>

#include <cstdlib>
#include <map>

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "build_services.h"
#include "controller/http_server.h"
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

  asio::io_context io;
  controller::Scheduler scheduler(io, deps, options, &listener);
  controller::SchedulerView view(scheduler, g.ref.empty() ? "main" : g.ref);
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
  controller::HttpServer http(io, http_options, view, metrics);
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
        io.stop();
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
  scheduler.Start();
  io.run();
  spdlog::info("controller: stopped");
  return 0;
}

}  // namespace reconcile::cli
