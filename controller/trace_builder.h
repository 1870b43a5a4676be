// TraceBuilder: turns the event stream (event_bus.h) into one trace per
// pass, as plain span values (no OTLP, no I/O; otlp_exporter.h encodes and
// sends them). A pass's trace:
//   pass                      root: kPassStarted .. kPassFinished; its ids are
//                             the pass's TraceContext (ApplyOptions::trace)
//     fetch                   the ref check that preceded the pass
//     load, state, observe,   the pass's stages (Event kStageFinished):
//     plan, apply             each from the previous one's end
//       agent.web, image.web  one span per change (kChangeStarted .. its end;
//                             its id is Event::span_id, the parent that the
//                             provider's `traceparent` names)
//         deploy, health wait, build, push, remove
//                             the change's steps (Event kStepStarted), each
//                             until the next step or the change's end
// Attributes: see README "Traces". A failed pass or change has status
// ERROR with its message (already redacted by the engine).
// Thread-safety: none; one owner (the OTLP sink's worker).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "event_bus.h"

namespace reconcile::controller {

struct SpanData {
  using Value = std::variant<std::string, std::int64_t, bool>;
  enum class StatusCode { kUnset = 0, kOk = 1, kError = 2 };
  std::string trace_id;        // 32 hex
  std::string span_id;         // 16 hex
  std::string parent_span_id;  // "" for the root
  std::string name;
  std::chrono::system_clock::time_point start;
  std::chrono::system_clock::time_point end;
  std::vector<std::pair<std::string, Value>> attributes;
  StatusCode status = StatusCode::kUnset;
  std::string status_message;

  const Value* Attribute(const std::string& key) const;
};

class TraceBuilder {
 public:
  // At most this many passes are followed at once (a pass whose
  // kPassFinished was dropped is forgotten with the oldest).
  static constexpr std::size_t kMaxOpenPasses = 64;

  // Takes one event. Returns the finished pass's spans (root first) on its
  // kPassFinished; nothing otherwise.
  std::optional<std::vector<SpanData>> Add(const ControllerEvent& event);

 private:
  struct Step {
    std::string name;
    std::chrono::system_clock::time_point start;
  };
  struct ChangeSpan {
    std::string address;
    std::string span_id;
    Action action = Action::kNoOp;
    std::chrono::system_clock::time_point start, end;
    bool ended = false;
    std::string result;  // succeeded, failed, skipped
    std::string message;
    std::vector<Step> steps;
  };
  struct Stage {
    std::string name;
    std::chrono::system_clock::time_point end;
  };
  struct Fetch {
    std::string revision;
    std::chrono::system_clock::time_point start, end;
  };
  struct OpenPass {
    std::uint64_t pass_id = 0;
    std::string environment;
    std::chrono::system_clock::time_point start;
    std::shared_ptr<const PassRequest> request;
    std::optional<Fetch> fetch;
    std::vector<Stage> stages;
    std::vector<ChangeSpan> changes;
  };
  std::vector<SpanData> Finish(OpenPass& pass, const ControllerEvent& finished);
  ChangeSpan* FindChange(OpenPass& pass, const std::string& address);

  std::vector<OpenPass> open_;
  // The last successful ref check per environment ("" for the shared one),
  // and when each environment's last pass ended (a check before that is
  // not this pass's fetch).
  std::map<std::string, Fetch> checks_;
  std::map<std::string, std::chrono::system_clock::time_point> last_end_;
};

}  // namespace reconcile::controller
