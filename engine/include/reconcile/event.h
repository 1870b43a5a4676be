// Events: how the core reports progress without printing (STYLE.md 6).
// The CLI and the controller implement EventObserver to render them (spdlog,
// TTY progress); tests record them. OnEvent may be called from several
// worker threads at once; implementations must be thread-safe.
#pragma once

#include <chrono>
#include <string>

#include "reconcile/plan.h"

namespace reconcile {

struct Event {
  enum class Type {
    kStageStarted,     // "observe", "apply", ...; address empty
    kChangeStarted,    // a change begins
    kChangeProgress,   // a provider progress line
    kChangeRetrying,   // transient error, will retry after a backoff
    kChangeSucceeded,  // a change finished well
    kChangeFailed,     // a change failed (message says why)
    kChangeSkipped,    // not run because a dependency failed
    kWarning,
    kStageFinished,  // a pass stage ended: step names it ("load", "state",
                     // "observe", "plan", "apply"); elapsed: its duration.
                     // Stages run one after another from the pass's start.
    kStepStarted,    // a change's step begins ("build", "push", "deploy",
                     // "health wait"): step names it; it lasts until the
                     // change's next step or its end
  };
  Type type = Type::kWarning;
  std::string address;  // "agent.x" or empty
  std::string message;
  std::chrono::milliseconds elapsed{0};  // since the change started
  Action action = Action::kNoOp;         // change events: what the change does
  std::string step{};                    // kStageFinished, kStepStarted: the name
  // kChangeStarted of a traced pass (ApplyOptions::trace): the change's span
  // id, the parent named in its provider requests' `traceparent`.
  std::string span_id{};
};

class EventObserver {
 public:
  virtual ~EventObserver() = default;
  virtual void OnEvent(const Event& event) = 0;
};

// Discards everything.
class NullObserver final : public EventObserver {
 public:
  void OnEvent(const Event&) override {}
};

}  // namespace reconcile
