// PluginCall: one call of a provider plugin, an executable outside the
// binary that speaks the plugin protocol (docs/plugin-protocol.md) as JSON
// lines over its stdin and stdout.
//
// RunPluginCall starts the executable in its own process group with exactly
// the environment given, writes the handshake, checks the answer's protocol
// version, writes the request line, forwards "progress" lines and returns the
// "result" of the one "response" line. Everything the plugin can do wrong is
// an error naming the plugin, never a crash or a hang of the engine: a
// version mismatch, a line that is not a protocol message, a line over its
// bound, exiting (or crashing) before answering, not answering within the
// timeout. On every path the process group is killed if still there and the
// plugin is reaped before RunPluginCall returns (no zombie, no straggler).
//
// Stop: when `stop` or `*stopped` fires during the call, a {"type":"stop"}
// line is written to the plugin; a plugin that has not answered `stop_grace`
// later gets SIGTERM, and SIGKILL `kill_grace` after that (kCancelled).
//
// Secret values in `secrets` are removed from everything the plugin says
// that reaches an error, a progress line or the log (replaced by "***").
//
// Thread-safety: RunPluginCall may run concurrently on several threads (the
// pipes are close-on-exec, so a plugin never inherits another's pipes).
// SIGPIPE is blocked in the calling thread while it writes to the plugin.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <stop_token>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reconcile/status.h"

namespace reconcile::exec {

// Bounds on what a plugin may write.
struct PluginLimits {
  std::size_t max_response_bytes = 4u << 20;   // one "response" line (and any line)
  std::size_t max_progress_bytes = 64u << 10;  // one "progress" line
  std::size_t max_stderr_bytes = 64u << 10;    // stderr kept for errors; the rest is dropped
};

struct PluginCall {
  std::string plugin;  // the plugin's name, for messages ("localfile")
  std::string path;    // absolute path of the executable
  // The plugin's whole environment, "NAME=value" each (exec_provider.h's
  // PluginEnvironment scrubs the engine's).
  std::vector<std::string> environment;
  std::string method;  // "schema", "observe", ...: the request's method
  nlohmann::json params = nlohmann::json::object();
  nlohmann::json config = nlohmann::json::object();  // the Target's block
  std::chrono::milliseconds timeout{60000};          // from start to the response
  std::chrono::milliseconds stop_grace{10000};
  std::chrono::milliseconds kill_grace{5000};
  // After the response: how long the plugin may take to exit once its stdin
  // is closed, before its process group is killed.
  std::chrono::milliseconds exit_grace{2000};
  PluginLimits limits;
  std::vector<std::string> secrets;  // values never repeated from the plugin
  std::function<void(const std::string& message)> progress;  // optional
  std::function<void(const std::string& line)> log;          // stderr lines; optional
  std::stop_token stop;
  const std::atomic<bool>* stopped = nullptr;  // optional: the provider's Stop()
  std::string engine_version = "0.1.0";
};

// The "result" object of the plugin's response. A response with "error"
// becomes that Status (its code, "plugin 'NAME': " and its message). A call
// stopped whose plugin never answered is kCancelled; a timeout kUnavailable;
// everything else the plugin did wrong kFailed.
Result<nlohmann::json> RunPluginCall(const PluginCall& call);

// `text` with every non-empty value of `secrets` replaced by "***".
std::string Redact(std::string text, const std::vector<std::string>& secrets);

}  // namespace reconcile::exec
