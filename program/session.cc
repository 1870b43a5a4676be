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
#include "secret_stores.h"

namespace reconcile::cli {

namespace {

std::stop_source g_stop;
std::atomic<bool> g_prompting{false};

// The name of the Environment at `path` of a folder source, read from its
// top-level files without loading the tree ("" for a plain tree or a Git
// source: Session::Load learns it then).
std::string EnvironmentAtPath(const GlobalOptions& g) {
  if (IsGitUrl(g.source) || g.path.empty()) return "";
  std::filesystem::path folder = std::filesystem::path(g.source) / g.path;
  std::error_code ec;
  if (!std::filesystem::is_directory(folder, ec)) return "";
  FolderFiles files = ReadFolder(folder);
  std::erase_if(files.files,
                [](const TreeFile& f) { return f.rel.find('/') != std::string::npos; });
  Diagnostics ignored;
  std::vector<EnvironmentRef> found = FindEnvironments(files.files, ignored);
  return found.size() == 1 ? found[0].name : "";
}

}  // namespace

// The state store of the tree a Session works on: <state dir> for a plain
// tree, EnvironmentStateDir(<state dir>, name) for an Environment, chosen
// again once the tree is loaded (Point).
class SessionStore : public StateStore {
 public:
  SessionStore(std::filesystem::path state_dir, const std::string& environment)
      : state_dir_(std::move(state_dir)) {
    Point(environment);
  }
  void Point(const std::string& environment) {
    if (inner_ && environment == environment_) return;
    environment_ = environment;
    inner_ = NewFileStateStore(EnvironmentStateDir(state_dir_, environment));
  }
  Result<std::shared_ptr<const State>> LoadShared() override { return inner_->LoadShared(); }
  Result<int> Save(State state) override { return inner_->Save(std::move(state)); }
  Result<History> LoadHistory() override { return inner_->LoadHistory(); }
  Status AppendHistory(const HistoryEntry& entry, const HistoryResources& resources,
                       const SpecSource& spec_of, int keep) override {
    return inner_->AppendHistory(entry, resources, spec_of, keep);
  }
  Result<std::map<std::string, nlohmann::json>> LoadSpecs(
      const History& history, const HistoryResources& resources) override {
    return inner_->LoadSpecs(history, resources);
  }
  Result<std::unique_ptr<StateLock>> Lock(const std::string& command) override {
    return inner_->Lock(command);
  }
  Status Unlock() override { return inner_->Unlock(); }
  Result<std::optional<LockInfo>> Holder() override { return inner_->Holder(); }
  std::filesystem::path dir() const { return EnvironmentStateDir(state_dir_, environment_); }
  const std::string& environment() const { return environment_; }

 private:
  std::filesystem::path state_dir_;
  std::string environment_;
  std::unique_ptr<StateStore> inner_;
};

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
  if (g.verify_commits == "openpgp") {
    so.verify = {CommitVerifyMode::kOpenPgp, g.trusted_keys};
  } else if (g.verify_commits == "ssh") {
    so.verify = {CommitVerifyMode::kSsh, g.allowed_signers};
  }
  so.limits.allowed_bind_paths = g.allow_bind;
  so.limits.providers = registry;
  so.limits.keep_documents = g.keep_documents;
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
  store_ = std::make_unique<SessionStore>(options_.state_dir, EnvironmentAtPath(options_));
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
  WireSecretStores(options_, deps);
  if (Status keys = CheckSecretStores(options_); !keys.ok() && source_status_.ok()) {
    source_status_ = keys;
  }
  deps.build = ProgramBuildServices(options_.max_build_context);
  deps.stop = std::move(stop);
  reconciler_ = std::make_unique<Reconciler>(std::move(deps));
}

Session::~Session() = default;

StateStore& Session::store() { return *store_; }
std::filesystem::path Session::StoreDir() const { return store_->dir(); }
std::string Session::StoreEnvironment() const { return store_->environment(); }

Status Session::Load() {
  if (!source_status_.ok()) return source_status_;
  Status s = reconciler_->Fetch();
  // An Environment keeps its state, lock and history in its own folder.
  const auto& environment = reconciler_->desired().environment;
  if (s.ok() && !reconciler_->diagnostics().HasErrors()) {
    store_->Point(environment ? environment->name : "");
  }
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
