#include "exec/exec_provider.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <tuple>
#include <utility>

#include "reconcile/provider_json.h"

extern char** environ;

namespace reconcile::exec {
namespace {

using nlohmann::json;

bool IsPluginName(const std::string& name) {
  if (name.empty() || name.size() > 63 || name[0] < 'a' || name[0] > 'z' || name.back() == '-') {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

bool IsReserved(const std::string& name) {
  for (const char* r : kReservedProviderNames) {
    if (name == r) return true;
  }
  return false;
}

std::vector<std::string> ProcessEnvironment() {
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) out.emplace_back(*e);
  return out;
}

std::string JoinField(const std::string& prefix, const std::string& field) {
  return field.empty() ? prefix : prefix + "." + field;
}

std::string Joined(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

// What every call of one plugin needs.
struct PluginHandle {
  PluginInfo plugin;
  ExecOptions options;
  std::vector<std::string> environment;  // the plugin's

  std::string Who() const { return "plugin '" + plugin.name + "' (" + plugin.path + ")"; }

  PluginCall Call(const std::string& method, const json& config, json params,
                  std::chrono::milliseconds timeout) const {
    PluginCall c;
    c.plugin = plugin.name;
    c.path = plugin.path;
    c.environment = environment;
    c.method = method;
    c.config = config.is_object() ? config : json::object();
    c.params = std::move(params);
    c.timeout = timeout;
    c.stop_grace = options.stop_grace;
    c.kill_grace = options.kill_grace;
    c.limits = options.limits;
    if (options.log) {
      c.log = [log = options.log, name = plugin.name](const std::string& line) { log(name, line); };
    }
    return c;
  }
};

using Handles = std::map<std::string, std::shared_ptr<const PluginHandle>>;

class ExecProvider : public Provider {
 public:
  ExecProvider(std::shared_ptr<const PluginHandle> handle, json config)
      : handle_(std::move(handle)), config_(std::move(config)) {}

  ProviderSchema Schema() const override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!schema_) {
      Result<json> r = RunPluginCall(
          handle_->Call("schema", config_, json::object(), handle_->options.call_timeout));
      if (r.ok()) {
        Result<ProviderSchema> s = ProviderSchemaFromJson(*r);
        if (s.ok()) {
          schema_ = *s;
        } else {
          schema_error_ =
              Status::Failed(handle_->Who() + ": answered schema with a malformed result (" +
                             s.status().message() + ")");
        }
      } else {
        schema_error_ = r.status();
      }
      if (!schema_) schema_ = ProviderSchema{};
    }
    return *schema_;
  }

  PlanChangeResponse PlanChange(const PlanChangeRequest& request) const override {
    PlanChangeResponse out;
    Result<json> r = RunPluginCall(
        handle_->Call("plan_change", config_, ToJson(request), handle_->options.call_timeout));
    Result<PlanChangeResponse> answer =
        r.ok() ? PlanChangeResponseFromJson(*r) : Result<PlanChangeResponse>(r.status());
    if (!answer.ok()) {
      // Not knowing what can change in place: everything is a replacement.
      out.requires_replace.insert(request.changed.begin(), request.changed.end());
      std::string message = answer.status().message();
      if (r.ok())
        message =
            handle_->Who() + ": answered plan_change with a malformed result (" + message + ")";
      out.diagnostics.push_back({Severity::kWarning, "", message + "; planned as a replacement"});
      return out;
    }
    for (const std::string& path : answer->requires_replace) {
      if (std::find(request.changed.begin(), request.changed.end(), path) !=
          request.changed.end()) {
        out.requires_replace.insert(path);
      }
    }
    out.diagnostics = std::move(answer->diagnostics);
    return out;
  }

  ObserveResponse Observe(const ObserveRequest& request) override {
    ObserveResponse out;
    Schema();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (schema_error_) {
        out.status = *schema_error_;
        return out;
      }
    }
    PluginCall call =
        handle_->Call("observe", config_, ToJson(request), handle_->options.call_timeout);
    call.stopped = &stopped_;
    Result<json> r = RunPluginCall(call);
    if (!r.ok()) {
      out.status = r.status();
      return out;
    }
    Result<ObserveResponse> o = ObserveResponseFromJson(*r);
    if (!o.ok()) {
      out.status = Status::Failed(handle_->Who() + ": answered observe with a malformed result (" +
                                  o.status().message() + ")");
      return out;
    }
    out = std::move(*o);
    // Only what carries the ownership labels is ours (the agent's name).
    std::erase_if(out.instances, [](const ObservedInstance& i) { return i.agent.empty(); });
    std::sort(out.instances.begin(), out.instances.end(),
              [](const ObservedInstance& a, const ObservedInstance& b) {
                return std::tie(a.agent, a.name) < std::tie(b.agent, b.name);
              });
    return out;
  }

  ApplyChangeResponse ApplyChange(const ApplyChangeRequest& request) override {
    ApplyChangeResponse out;
    out.health = "unknown";
    for (const InstanceRef& p : request.change.prior)
      out.instances.push_back({p.id, p.name, "", {}});
    PluginCall call =
        handle_->Call("apply_change", config_, ToJson(request, /*include_secrets=*/true),
                      handle_->options.apply_timeout);
    if (!request.traceparent.empty()) {
      // The OpenTelemetry carrier for a process: TRACEPARENT in its
      // environment (replacing one the operator passed).
      std::erase_if(call.environment,
                    [](const std::string& e) { return e.rfind("TRACEPARENT=", 0) == 0; });
      call.environment.push_back("TRACEPARENT=" + request.traceparent);
    }
    call.stop = request.stop;
    call.stopped = &stopped_;
    call.progress = request.progress;
    for (const auto& [name, value] : request.secret_values) call.secrets.push_back(value);
    if (request.pull_credentials) call.secrets.push_back(request.pull_credentials->password);
    Result<json> r = RunPluginCall(call);
    if (!r.ok()) {
      out.status = r.status();
      return out;
    }
    Result<ApplyChangeResponse> a = ApplyChangeResponseFromJson(*r);
    if (!a.ok()) {
      out.status =
          Status::Failed(handle_->Who() + ": answered apply_change with a malformed result (" +
                         a.status().message() + ")");
      return out;
    }
    return std::move(*a);
  }

  void Stop() override { stopped_ = true; }

 private:
  std::shared_ptr<const PluginHandle> handle_;
  json config_;
  std::atomic<bool> stopped_{false};
  mutable std::mutex mu_;
  mutable std::optional<ProviderSchema> schema_;
  mutable std::optional<Status> schema_error_;
};

ValidateTargetResponse ValidateTargetWith(const PluginHandle& h, const std::string& prefix,
                                          const std::string& target, const json& config) {
  ValidateTargetResponse out;
  ValidateTargetRequest request;
  request.target = target;
  request.config = config.is_object() ? config : json::object();
  Result<json> r = RunPluginCall(
      h.Call("validate_target", request.config, ToJson(request), h.options.call_timeout));
  Result<ValidateTargetResponse> v =
      r.ok() ? ValidateTargetResponseFromJson(*r) : Result<ValidateTargetResponse>(r.status());
  if (!v.ok()) {
    std::string message = v.status().message();
    if (r.ok())
      message = h.Who() + ": answered validate_target with a malformed result (" + message + ")";
    out.diagnostics.push_back({Severity::kError, prefix, "could not be validated: " + message});
    return out;
  }
  for (ProviderDiagnostic& d : v->diagnostics) {
    d.field = JoinField(prefix, d.field);
    out.diagnostics.push_back(std::move(d));
  }
  return out;
}

ValidateAgentResponse ValidateAgentWith(const PluginHandle& h, ValidateAgentRequest request,
                                        const json& config) {
  ValidateAgentResponse out;
  request.target_config = config.is_object() ? config : json::object();
  Result<json> r = RunPluginCall(
      h.Call("validate_agent", request.target_config, ToJson(request), h.options.call_timeout));
  Result<ValidateAgentResponse> v =
      r.ok() ? ValidateAgentResponseFromJson(*r) : Result<ValidateAgentResponse>(r.status());
  if (!v.ok()) {
    std::string message = v.status().message();
    if (r.ok())
      message = h.Who() + ": answered validate_agent with a malformed result (" + message + ")";
    out.diagnostics.push_back(
        {Severity::kError, "spec.target",
         "Target '" + request.target + "' could not validate this agent: " + message});
    return out;
  }
  out.diagnostics = std::move(v->diagnostics);
  return out;
}

// The explicit form's settings: {plugin: NAME, config: {...}}.
struct ExplicitSettings {
  const PluginHandle* handle = nullptr;
  json config = json::object();
};

std::vector<ProviderDiagnostic> ResolveExplicit(const Handles& handles,
                                                const std::vector<std::string>& dirs,
                                                const json& settings, ExplicitSettings& out) {
  std::vector<ProviderDiagnostic> d;
  if (!settings.is_object()) {
    d.push_back(
        {Severity::kError, "spec.exec", "expected a mapping {plugin: NAME, config: {...}}"});
    return d;
  }
  for (const auto& [key, value] : settings.items()) {
    if (key != "plugin" && key != "config") {
      d.push_back({Severity::kError, "spec.exec." + key,
                   "unknown field (spec.exec takes plugin and config)"});
    }
  }
  auto plugin = settings.find("plugin");
  if (plugin == settings.end() || plugin->is_null()) {
    d.push_back({Severity::kError, "spec.exec.plugin",
                 "required: the NAME of an installed plugin (reconcile-provider-NAME)"});
  } else if (!plugin->is_string() || !IsPluginName(plugin->get<std::string>())) {
    d.push_back({Severity::kError, "spec.exec.plugin",
                 "expected a plugin name (lower-case letters, digits and '-')"});
  } else {
    const std::string name = plugin->get<std::string>();
    auto it = handles.find(name);
    if (it == handles.end()) {
      d.push_back({Severity::kError, "spec.exec.plugin",
                   "no plugin '" + name + "' is installed: looked for " + kPluginFilePrefix + name +
                       " in " + (dirs.empty() ? std::string("(no folder)") : Joined(dirs)) +
                       " (set " + kPluginPathVariable + ")"});
    } else {
      out.handle = it->second.get();
    }
  }
  if (auto config = settings.find("config"); config != settings.end() && !config->is_null()) {
    if (!config->is_object()) {
      d.push_back({Severity::kError, "spec.exec.config", "expected a mapping"});
    } else {
      out.config = *config;
    }
  }
  return d;
}

bool HasErrors(const std::vector<ProviderDiagnostic>& diagnostics) {
  return std::any_of(diagnostics.begin(), diagnostics.end(),
                     [](const ProviderDiagnostic& d) { return d.severity == Severity::kError; });
}

ProviderDefinition DefinitionFor(std::shared_ptr<const PluginHandle> h,
                                 const std::string& provider_name) {
  ProviderDefinition d;
  d.create = [h](const Target& target) -> Result<std::unique_ptr<Provider>> {
    return std::unique_ptr<Provider>(std::make_unique<ExecProvider>(
        h, target.settings.is_object() ? target.settings : json::object()));
  };
  d.validate_target = [h, prefix = "spec." + provider_name](const ValidateTargetRequest& r) {
    return ValidateTargetWith(*h, prefix, r.target, r.config);
  };
  d.validate_agent = [h](const ValidateAgentRequest& r) {
    return ValidateAgentWith(*h, r, r.target_config);
  };
  return d;
}

ProviderDefinition ExplicitDefinitionFor(std::shared_ptr<const Handles> handles,
                                         std::vector<std::string> dirs) {
  ProviderDefinition d;
  d.create = [handles, dirs](const Target& target) -> Result<std::unique_ptr<Provider>> {
    ExplicitSettings s;
    std::vector<ProviderDiagnostic> problems = ResolveExplicit(*handles, dirs, target.settings, s);
    if (HasErrors(problems)) {
      return Status::Invalid("target '" + target.name + "': " + problems.front().field + ": " +
                             problems.front().message);
    }
    return std::unique_ptr<Provider>(
        std::make_unique<ExecProvider>(handles->at(s.handle->plugin.name), s.config));
  };
  d.validate_target = [handles, dirs](const ValidateTargetRequest& r) {
    ValidateTargetResponse out;
    ExplicitSettings s;
    out.diagnostics = ResolveExplicit(*handles, dirs, r.config, s);
    if (HasErrors(out.diagnostics) || s.handle == nullptr) return out;
    ValidateTargetResponse inner =
        ValidateTargetWith(*s.handle, "spec.exec.config", r.target, s.config);
    out.diagnostics.insert(out.diagnostics.end(), inner.diagnostics.begin(),
                           inner.diagnostics.end());
    return out;
  };
  d.validate_agent = [handles, dirs](const ValidateAgentRequest& r) {
    ExplicitSettings s;
    if (HasErrors(ResolveExplicit(*handles, dirs, r.target_config, s)) || s.handle == nullptr) {
      return ValidateAgentResponse{};  // the Target's own error says it
    }
    return ValidateAgentWith(*s.handle, r, s.config);
  };
  return d;
}

std::shared_ptr<const PluginHandle> MakeHandle(const PluginInfo& plugin, const ExecOptions& options,
                                               const std::vector<std::string>& environment) {
  auto h = std::make_shared<PluginHandle>();
  h->plugin = plugin;
  h->options = options;
  h->options.environment.clear();  // the engine's: never a plugin's business
  h->environment = environment;
  return h;
}

}  // namespace

std::vector<std::string> PluginDirs(const std::vector<std::string>& environment) {
  const std::string key = std::string(kPluginPathVariable) + "=";
  std::vector<std::string> dirs;
  for (const std::string& e : environment) {
    if (e.rfind(key, 0) != 0) continue;
    dirs.clear();
    std::string value = e.substr(key.size());
    std::size_t start = 0;
    while (start <= value.size()) {
      std::size_t end = value.find(':', start);
      if (end == std::string::npos) end = value.size();
      if (end > start) dirs.push_back(value.substr(start, end - start));
      start = end + 1;
    }
  }
  if (dirs.empty()) dirs.assign(std::begin(kDefaultPluginDirs), std::end(kDefaultPluginDirs));
  return dirs;
}

std::vector<PluginInfo> FindPlugins(const std::vector<std::string>& dirs,
                                    std::vector<std::string>* notes) {
  namespace fs = std::filesystem;
  auto note = [&](const std::string& n) {
    if (notes != nullptr) notes->push_back(n);
  };
  std::map<std::string, PluginInfo> found;
  const std::string prefix = kPluginFilePrefix;
  for (const std::string& dir : dirs) {
    if (dir.empty() || dir[0] != '/') {
      note("plugin folder '" + dir + "' skipped: not an absolute path");
      continue;
    }
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec) continue;  // absent folders are normal (the defaults)
    std::vector<std::string> files;
    for (; it != fs::directory_iterator(); it.increment(ec)) {
      if (ec) break;
      files.push_back(it->path().filename().string());
    }
    std::sort(files.begin(), files.end());
    for (const std::string& file : files) {
      if (file.rfind(prefix, 0) != 0) continue;
      const std::string name = file.substr(prefix.size());
      const std::string path = (fs::path(dir) / file).string();
      if (!IsPluginName(name)) {
        note(path + " skipped: '" + name + "' is not a plugin name ([a-z][a-z0-9-]*)");
        continue;
      }
      if (IsReserved(name)) {
        note(path + " skipped: '" + name + "' is a built-in provider's name");
        continue;
      }
      struct stat st {};
      if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
        note(path + " skipped: not a regular file");
        continue;
      }
      if (::access(path.c_str(), X_OK) != 0) {
        note(path + " skipped: not executable");
        continue;
      }
      if (auto f = found.find(name); f != found.end()) {
        note(path + " skipped: " + f->second.path + " comes first");
        continue;
      }
      found[name] = PluginInfo{name, path};
    }
  }
  std::vector<PluginInfo> out;
  for (auto& [name, info] : found) out.push_back(std::move(info));
  return out;
}

std::vector<std::string> PluginEnvironment(const std::vector<std::string>& engine_environment) {
  std::map<std::string, std::string> kept, passed;
  const std::string prefix = kPluginEnvPrefix;
  for (const std::string& e : engine_environment) {
    std::size_t eq = e.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    std::string name = e.substr(0, eq), value = e.substr(eq + 1);
    if (name.rfind(prefix, 0) == 0) {
      if (name.size() > prefix.size()) passed[name.substr(prefix.size())] = value;
      continue;
    }
    for (const char* k : kPluginKeptVariables) {
      if (name == k) kept[name] = value;
    }
  }
  if (kept.count("PATH") == 0) kept["PATH"] = "/usr/local/bin:/usr/bin:/bin";
  for (auto& [name, value] : passed) kept[name] = value;
  std::vector<std::string> out;
  for (const auto& [name, value] : kept) out.push_back(name + "=" + value);
  return out;
}

ProviderDefinition PluginDefinition(const PluginInfo& plugin, const std::string& provider_name,
                                    const ExecOptions& options,
                                    const std::vector<std::string>& environment) {
  return DefinitionFor(MakeHandle(plugin, options, environment), provider_name);
}

ProviderDefinition ExplicitExecDefinition(const std::vector<PluginInfo>& plugins,
                                          const ExecOptions& options,
                                          const std::vector<std::string>& environment) {
  auto handles = std::make_shared<Handles>();
  for (const PluginInfo& p : plugins) (*handles)[p.name] = MakeHandle(p, options, environment);
  return ExplicitDefinitionFor(handles, options.plugin_dirs);
}

void RegisterExecPlugins(ProviderRegistry& registry, ExecOptions options) {
  if (options.environment.empty()) options.environment = ProcessEnvironment();
  if (options.plugin_dirs.empty()) options.plugin_dirs = PluginDirs(options.environment);
  std::vector<std::string> notes;
  std::vector<PluginInfo> plugins = FindPlugins(options.plugin_dirs, &notes);
  const std::vector<std::string> environment = PluginEnvironment(options.environment);
  for (const PluginInfo& p : plugins) {
    if (registry.Has(p.name)) {
      notes.push_back(p.path + " not registered: a provider named '" + p.name + "' exists");
      continue;
    }
    registry.Register(p.name, PluginDefinition(p, p.name, options, environment));
  }
  if (options.log) {
    for (const std::string& n : notes) options.log("", n);
  }
  if (!registry.Has("exec")) {
    registry.Register("exec", ExplicitExecDefinition(plugins, options, environment));
  }
}

}  // namespace reconcile::exec
