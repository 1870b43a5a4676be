// Console: how the program talks to people. Sets up spdlog (text or JSON
// lines on stderr), decides on colour (TTY, --no-color, NO_COLOR, CI), and
// renders core events (ConsoleObserver). Core code never prints; only this
// file and the command implementations write to the terminal.
// ConsoleObserver is thread-safe (spdlog sinks are mutex-guarded).
#pragma once

#include <string>

#include "reconcile/event.h"

namespace reconcile::cli {

struct ConsoleOptions {
  bool json_logs = false;
  int verbosity = 0;  // -1 quiet, 0 normal, 1+ verbose
  bool no_color = false;
};

// Configures the default spdlog logger. Call once at start-up.
void SetUpConsole(const ConsoleOptions& options);

// True when stdout is a terminal and colour is allowed.
bool UseColor();
// True when stdin is a terminal (interactive approval possible).
bool Interactive();

// Prints events as "agent.x: Creating...", "agent.x: Creation complete after 1.2s".
class ConsoleObserver final : public EventObserver {
 public:
  void OnEvent(const Event& event) override;
};

}  // namespace reconcile::cli
