// Providers outside the binary: executables that speak the plugin protocol
// (docs/plugin-protocol.md; plugin_process.h runs one call).
//
// A plugin is found only on paths the operator controls, never named by the
// tree: a file `reconcile-provider-NAME` (executable, NAME a lower-case
// label) in one of the folders of RECONCILE_PLUGIN_PATH (':'-separated), or
// by default /usr/local/lib/reconcile/plugins then /usr/lib/reconcile/plugins.
// The first folder that holds a NAME wins. RegisterExecPlugins registers each
// as the provider NAME (never one of the built-in names: docker, aws, gcp,
// azure, exec), whose Target block spec.NAME is its config, and registers
// `exec`, the explicit form: `provider: exec` with
// `exec: {plugin: NAME, config: {...}}`.
//
// Every call is one plugin process with a scrubbed environment
// (PluginEnvironment), a timeout and bounded output; see ExecOptions.
//
// Thread-safety: the definitions and providers may be used from several
// threads at once (each call is its own process); Stop from any thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "exec/plugin_process.h"
#include "reconcile/model.h"
#include "reconcile/provider.h"

namespace reconcile::exec {

inline constexpr const char* kPluginPathVariable = "RECONCILE_PLUGIN_PATH";
inline constexpr const char* kPluginFilePrefix = "reconcile-provider-";
// RECONCILE_PLUGIN_ENV_NAME=value in the engine's environment reaches every
// plugin as NAME=value.
inline constexpr const char* kPluginEnvPrefix = "RECONCILE_PLUGIN_ENV_";
// The engine's own variables a plugin also gets, when set.
inline constexpr const char* kPluginKeptVariables[] = {"PATH", "HOME", "LANG", "TZ"};
// Names no plugin can take (built-in providers and the explicit form).
inline constexpr const char* kReservedProviderNames[] = {"docker", "aws", "gcp", "azure", "exec"};
inline constexpr const char* kDefaultPluginDirs[] = {"/usr/local/lib/reconcile/plugins",
                                                     "/usr/lib/reconcile/plugins"};

struct ExecOptions {
  // Folders searched, in order. Empty: PluginDirs(environment).
  std::vector<std::string> plugin_dirs;
  // The engine's environment, "NAME=value" each. Empty: the process's own
  // (environ), read at RegisterExecPlugins.
  std::vector<std::string> environment;
  std::chrono::milliseconds call_timeout{60000};    // schema, validate, plan_change, observe
  std::chrono::milliseconds apply_timeout{900000};  // apply_change (15 minutes)
  std::chrono::milliseconds stop_grace{10000};      // after "stop", until SIGTERM
  std::chrono::milliseconds kill_grace{5000};       // after SIGTERM, until SIGKILL
  PluginLimits limits;
  // Where the plugins' stderr lines (redacted) and discovery notes go, with
  // the plugin's name; optional.
  std::function<void(const std::string& plugin, const std::string& line)> log;
};

struct PluginInfo {
  std::string name;  // NAME of reconcile-provider-NAME
  std::string path;  // absolute
  friend bool operator==(const PluginInfo&, const PluginInfo&) = default;
};

// The folders of RECONCILE_PLUGIN_PATH in `environment` (empty entries
// skipped), or kDefaultPluginDirs when it is unset or empty.
std::vector<std::string> PluginDirs(const std::vector<std::string>& environment);

// The plugins in `dirs`, sorted by name: regular files (symlinks followed)
// named reconcile-provider-NAME, executable by this process, NAME a
// lower-case label ([a-z][a-z0-9-]*, at most 63) and not reserved. A NAME
// already found in an earlier folder is skipped. What was skipped and why
// is appended to `notes` (when given).
std::vector<PluginInfo> FindPlugins(const std::vector<std::string>& dirs,
                                    std::vector<std::string>* notes = nullptr);

// The environment a plugin gets from the engine's: kPluginKeptVariables
// that are set (PATH defaults to /usr/local/bin:/usr/bin:/bin), and each
// RECONCILE_PLUGIN_ENV_NAME=value as NAME=value. Nothing else: never the
// engine's cloud or registry credentials.
std::vector<std::string> PluginEnvironment(const std::vector<std::string>& engine_environment);

// The definition of provider `provider_name` served by `plugin`: create,
// validate_target (fields the plugin names relative to its block are
// prefixed with "spec.<provider_name>.") and validate_agent, each running
// the plugin. `environment` is the plugin's (PluginEnvironment).
ProviderDefinition PluginDefinition(const PluginInfo& plugin, const std::string& provider_name,
                                    const ExecOptions& options,
                                    const std::vector<std::string>& environment);

// The definition of `exec`: settings {plugin: NAME, config: {...}}, NAME one
// of `plugins`; config fields are reported under "spec.exec.config.".
ProviderDefinition ExplicitExecDefinition(const std::vector<PluginInfo>& plugins,
                                          const ExecOptions& options,
                                          const std::vector<std::string>& environment);

// Finds the plugins (options.plugin_dirs, or PluginDirs of the environment)
// and registers each that does not shadow a reserved or already registered
// name, and `exec`. Reads no plugin: a plugin runs only when a Target uses it.
void RegisterExecPlugins(ProviderRegistry& registry, ExecOptions options);

}  // namespace reconcile::exec
