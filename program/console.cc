#include "console.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

namespace reconcile::cli {

namespace {

bool g_color = false;

// A spdlog formatter flag that prints the message as a JSON string, so JSON
// log lines stay valid whatever the message holds.
class JsonMessageFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    std::string text(msg.payload.data(), msg.payload.size());
    std::string quoted =
        nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    dest.append(quoted.data(), quoted.data() + quoted.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

std::string Seconds(std::chrono::milliseconds ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms.count()) / 1000.0);
  return buf;
}

}  // namespace

void SetUpConsole(const ConsoleOptions& options) {
  const char* no_color_env = std::getenv("NO_COLOR");
  const char* ci = std::getenv("CI");
  bool ci_mode = ci != nullptr && std::string(ci) == "true";
  g_color = !options.no_color && no_color_env == nullptr && !ci_mode && isatty(STDOUT_FILENO);

  spdlog::sink_ptr sink;
  if (g_color && isatty(STDERR_FILENO)) {
    sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  } else {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  }
  auto logger = std::make_shared<spdlog::logger>("reconcile", sink);
  if (options.json_logs) {
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    formatter->add_flag<JsonMessageFlag>('*').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","msg":%*})");
    logger->set_formatter(std::move(formatter));
  } else {
    logger->set_pattern("%^%l%$: %v");
  }
  logger->set_level(options.verbosity < 0    ? spdlog::level::warn
                    : options.verbosity == 0 ? spdlog::level::info
                                             : spdlog::level::debug);
  spdlog::set_default_logger(logger);
}

bool UseColor() { return g_color; }
bool Interactive() { return isatty(STDIN_FILENO) != 0; }

void ConsoleObserver::OnEvent(const Event& e) {
  switch (e.type) {
    case Event::Type::kStageStarted:
      spdlog::debug("{}", e.message);
      break;
    case Event::Type::kChangeStarted:
      spdlog::info("{}: {}...", e.address,
                   e.action == Action::kCreate    ? "Creating"
                   : e.action == Action::kUpdate  ? "Updating in place"
                   : e.action == Action::kReplace ? "Replacing"
                   : e.action == Action::kDelete  ? "Destroying"
                                                  : e.message.c_str());
      break;
    case Event::Type::kChangeProgress:
      spdlog::info("{}: {} [{} elapsed]", e.address, e.message, Seconds(e.elapsed));
      break;
    case Event::Type::kChangeRetrying:
      spdlog::warn("{}: {}", e.address, e.message);
      break;
    case Event::Type::kChangeSucceeded:
      spdlog::info("{}: {} after {}", e.address, e.message, Seconds(e.elapsed));
      break;
    case Event::Type::kChangeFailed:
      spdlog::error("{}: failed after {}: {}", e.address, Seconds(e.elapsed), e.message);
      break;
    case Event::Type::kChangeSkipped:
      spdlog::warn("{}: {}", e.address, e.message);
      break;
    case Event::Type::kWarning:
      spdlog::warn("{}{}{}", e.address, e.address.empty() ? "" : ": ", e.message);
      break;
    case Event::Type::kStageFinished:
    case Event::Type::kStepStarted:
      break;  // for traces (the controller's); the CLI shows progress lines
  }
}

}  // namespace reconcile::cli
