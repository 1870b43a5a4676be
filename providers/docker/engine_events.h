// Engine events: what the Docker provider asks of the Engine's event stream
// (GET /events, API v1.41) to see drift as it happens, and how it reads the
// stream's messages. Pure functions, no I/O: the stream itself is read by
// the caller.
//
// The query asks only for container events of containers labelled
// reconcile.dev/managed-by=reconcile (and, for an Environment's Target,
// reconcile.dev/environment=<name>), and only for the actions that can
// change what runs (kDriftActions): a container stopped, killed, died,
// removed, created, started, paused or renamed by hand. Health-check execs
// (exec_*), health_status and attach/resize/top never reach the caller.
//
// Thread-safety: the functions keep no state; an EventLineSplitter belongs
// to one stream.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace reconcile::docker {

// The container actions that may mean drift, sorted.
inline const std::vector<std::string> kDriftActions = {
    "create", "destroy", "die", "kill", "oom", "pause", "rename", "start", "stop", "unpause"};

// One container event the drift watch acts on.
struct ContainerEvent {
  std::string action;        // one of kDriftActions
  std::string id;            // the container's id
  std::string name;          // its name (Actor.Attributes.name)
  std::string agent;         // reconcile.dev/agent
  long long time_nanos = 0;  // timeNano (0 when absent)
  friend bool operator==(const ContainerEvent&, const ContainerEvent&) = default;
};

// The `filters` value of GET /events (a JSON map[string][]string) for the
// containers of `environment` ("" for the plain tree: the Engine cannot
// filter on a label's absence, so ParseContainerEvent drops other
// environments' containers).
nlohmann::json EventFilters(const std::string& environment);

// "/events?filters=<percent-encoded EventFilters>" (without the version
// prefix).
std::string EventsPath(const std::string& environment);

// The event `message` (an EventMessage) as a ContainerEvent when it is one
// of ours: type container, an action of kDriftActions, the managed-by label,
// an agent label, and the environment label equal to `environment` (absent
// for the plain tree). Anything else, malformed included, is nullopt.
std::optional<ContainerEvent> ParseContainerEvent(const nlohmann::json& message,
                                                  const std::string& environment);

// Splits the stream's body (JSON messages, one per line) into whole lines,
// whatever the chunks' boundaries. A line longer than `max_line` bytes is
// dropped (counted in dropped()), so a hostile engine cannot grow memory.
class EventLineSplitter {
 public:
  explicit EventLineSplitter(std::size_t max_line = 1024 * 1024) : max_line_(max_line) {}
  // The complete lines `chunk` ends (without their '\n'; empty lines skipped).
  std::vector<std::string> Feed(std::string_view chunk);
  int dropped() const { return dropped_; }

 private:
  std::size_t max_line_;
  std::string partial_;
  bool skipping_ = false;  // inside an over-long line, until its '\n'
  int dropped_ = 0;
};

}  // namespace reconcile::docker
