#include "session.h"

#include <iostream>
#include <set>

#include <spdlog/spdlog.h>

namespace reconcile::cli {

Session::Session(GlobalOptions options, const ProviderRegistry* registry)
    : options_(std::move(options)), registry_(registry) {
  if (options_.state_dir.empty()) {
    std::filesystem::path src(options_.source);
    if (std::filesystem::is_regular_file(src)) src = src.parent_path();
    options_.state_dir = (src / ".reconcile").string();
  }
  store_ = NewFileStateStore(options_.state_dir);
}

std::filesystem::path Session::secrets_dir() const {
  if (!options_.secrets_dir.empty()) return options_.secrets_dir;
  return std::filesystem::path(options_.state_dir) / "secrets";
}

Status Session::LoadDesired() {
  std::error_code ec;
  const std::string& src = options_.source;
  if (src.find("://") != std::string::npos || src.rfind("git@", 0) == 0) {
    return Status::Invalid("source '" + src +
                           "': git sources are not supported yet; clone it and pass the folder");
  }
  if (!std::filesystem::exists(options_.source, ec)) {
    return Status::Invalid("source '" + options_.source + "' does not exist");
  }
  LoadResult loaded = LoadTree(options_.source);
  loaded.diagnostics.Sort();
  // Diagnostics carry their own severity ("file:line:col: error: ..."); with
  // JSON logs they go through the logger so every stderr line stays JSON.
  for (const Diagnostic& d : loaded.diagnostics.items()) {
    if (options_.log_format == "json") {
      spdlog::log(d.severity == Severity::kError ? spdlog::level::err : spdlog::level::warn, "{}",
                  d.ToString());
    } else {
      std::cerr << d.ToString() << "\n";
    }
  }
  if (loaded.diagnostics.HasErrors()) {
    size_t n = 0;
    for (const Diagnostic& d : loaded.diagnostics.items()) n += d.severity == Severity::kError;
    return Status::Invalid(options_.source + ": " + std::to_string(n) + " error" +
                           (n == 1 ? "" : "s") + "; nothing was changed");
  }
  desired_ = std::move(loaded.state);
  return Status::Ok();
}

Status Session::LoadState() {
  Result<State> state = store_->Load();
  if (!state.ok()) return state.status();
  recorded_ = std::move(*state);
  return Status::Ok();
}

const Target* Session::target_for(const std::string& target) const {
  return desired_.FindTarget(target);
}

Provider* Session::provider_for(const std::string& target) {
  auto it = providers_.find(target);
  return it == providers_.end() ? nullptr : it->second.get();
}

Status Session::Observe() {
  for (const Agent& a : desired_.agents) {
    if (a.build) {
      return Status::Invalid(a.location.file + ":" + std::to_string(a.location.line) + ": agent '" +
                             a.name +
                             "': spec.build is validated but not supported by this version "
                             "yet; build the image yourself and set spec.image");
    }
  }
  std::set<std::string> targets;
  for (const Agent& a : desired_.agents) targets.insert(a.target);
  for (const auto& [address, rs] : recorded_.resources) targets.insert(rs.target);
  for (const std::string& name : targets) {
    const Target* target = desired_.FindTarget(name);
    if (target == nullptr) {
      return Status::Invalid("target '" + name +
                             "' is used by the recorded state but no longer declared; "
                             "declare it again to let reconcile clean up what runs there");
    }
    Result<std::unique_ptr<Provider>> provider = registry_->Create(*target);
    if (!provider.ok()) return provider.status();
    ObserveResponse response = (*provider)->Observe({*target});
    if (!response.status.ok()) {
      return response.status.WithContext("observing target '" + name + "'");
    }
    spdlog::debug("target {}: {} managed instance(s) observed", name, response.instances.size());
    observed_[name] = std::move(response);
    providers_[name] = std::move(*provider);
  }
  return Status::Ok();
}

Plan Session::MakePlan() const {
  PlanInput input;
  input.desired = &desired_;
  input.recorded = &recorded_;
  input.observed = observed_;
  for (const auto& [name, provider] : providers_) {
    const Target* target = desired_.FindTarget(name);
    if (target) input.schemas[target->provider] = provider->Schema();
  }
  return ComputePlan(input);
}

}  // namespace reconcile::cli
