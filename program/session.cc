#include "session.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <thread>

#include <spdlog/spdlog.h>

#include "build_services.h"

namespace reconcile::cli {

namespace {

std::stop_source g_stop;
std::atomic<bool> g_prompting{false};

}  // namespace

void InstallStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // inherited by every later thread
  std::thread([set] {
    int count = 0;
    for (;;) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      if (g_prompting.load() || ++count > 1) {
        const char msg[] = "\nInterrupted again: exiting now.\n";
        if (!g_prompting.load()) (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
        std::_Exit(130);
      }
      spdlog::warn(
          "{} received: stopping; no new changes start, what ran is recorded and the "
          "lock released (again to exit at once)",
          sig == SIGINT ? "Interrupt" : "SIGTERM");
      g_stop.request_stop();
    }
  }).detach();
}

std::stop_token StopToken() { return g_stop.get_token(); }
void SetPrompting(bool prompting) { g_prompting.store(prompting); }

SecretEnvPolicy SecretEnvPolicyFor(const GlobalOptions& g) {
  SecretEnvPolicy p;
  p.allowed.insert(g.allow_secret_env.begin(), g.allow_secret_env.end());
  if (!g.git_auth.password_env.empty()) p.engine_credentials.insert(g.git_auth.password_env);
  return p;
}

SourceOptions SourceOptionsFor(const GlobalOptions& g, const ProviderRegistry* registry) {
  SourceOptions so;
  so.location = g.source;
  so.ref = g.ref;
  so.path = g.path;
  so.cache_dir = std::filesystem::path(g.state_dir) / "cache" / "git";
  so.auth = g.git_auth;
  so.limits.allowed_bind_paths = g.allow_bind;
  so.limits.providers = registry;
  return so;
}

Session::Session(GlobalOptions options, const ProviderRegistry* registry, std::stop_token stop)
    : options_(std::move(options)) {
  const bool git = IsGitUrl(options_.source);
  if (options_.state_dir.empty()) {
    std::filesystem::path src =
        git ? std::filesystem::path(".") : std::filesystem::path(options_.source);
    if (!git && std::filesystem::is_regular_file(src)) src = src.parent_path();
    options_.state_dir = (src / ".reconcile").string();
  }
  if (options_.secrets_dir.empty()) {
    options_.secrets_dir = (std::filesystem::path(options_.state_dir) / "secrets").string();
  }
  store_ = NewFileStateStore(options_.state_dir);
  clock_ = NewSystemClock();
  Result<std::unique_ptr<Source>> source = OpenSource(SourceOptionsFor(options_, registry));
  if (source.ok()) {
    source_ = std::move(*source);
  } else {
    source_status_ = source.status();
  }
  ReconcilerDeps deps;
  deps.source = source_.get();
  deps.store = store_.get();
  deps.providers = registry;
  deps.clock = clock_.get();
  deps.observer = &observer_;
  deps.secrets_dir = options_.secrets_dir;
  deps.secret_env_policy = SecretEnvPolicyFor(options_);
  deps.build = ProgramBuildServices(options_.max_build_context);
  deps.stop = std::move(stop);
  reconciler_ = std::make_unique<Reconciler>(std::move(deps));
}

Status Session::Load() {
  if (!source_status_.ok()) return source_status_;
  Status s = reconciler_->Fetch();
  // Diagnostics carry their own severity ("file:line:col: error: ..."); with
  // JSON logs they go through the logger so every stderr line stays JSON.
  for (const Diagnostic& d : reconciler_->diagnostics().items()) {
    if (options_.log_format == "json") {
      spdlog::log(d.severity == Severity::kError ? spdlog::level::err : spdlog::level::warn, "{}",
                  d.ToString());
    } else {
      std::cerr << d.ToString() << "\n";
    }
  }
  return s;
}

}  // namespace reconcile::cli
