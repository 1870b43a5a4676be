#include "docker/engine_events.h"

#include <algorithm>

#include "docker/container_spec.h"
#include "docker/engine_client.h"
#include "reconcile/observation.h"

namespace reconcile::docker {

using nlohmann::json;

json EventFilters(const std::string& environment) {
  json labels = json::array({std::string(kLabelManagedBy) + "=" + kManagedByValue});
  if (!environment.empty()) labels.push_back(std::string(kLabelEnvironment) + "=" + environment);
  return {{"type", json::array({"container"})}, {"label", labels}, {"event", kDriftActions}};
}

std::string EventsPath(const std::string& environment) {
  return "/events?filters=" + UrlEncode(EventFilters(environment).dump());
}

namespace {

std::string StringAt(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

std::optional<ContainerEvent> ParseContainerEvent(const json& message,
                                                  const std::string& environment) {
  if (!message.is_object() || StringAt(message, "Type") != "container") return std::nullopt;
  ContainerEvent e;
  e.action = StringAt(message, "Action");
  if (!std::binary_search(kDriftActions.begin(), kDriftActions.end(), e.action)) {
    return std::nullopt;
  }
  auto actor = message.find("Actor");
  if (actor == message.end() || !actor->is_object()) return std::nullopt;
  e.id = StringAt(*actor, "ID");
  auto attributes = actor->find("Attributes");
  if (attributes == actor->end() || !attributes->is_object()) return std::nullopt;
  // A container event's attributes hold its labels (and image, name).
  if (StringAt(*attributes, kLabelManagedBy) != kManagedByValue) return std::nullopt;
  if (EnvironmentOf(*attributes) != environment) return std::nullopt;
  e.agent = StringAt(*attributes, kLabelAgent);
  e.name = StringAt(*attributes, "name");
  if (e.id.empty() || e.agent.empty()) return std::nullopt;
  if (auto t = message.find("timeNano"); t != message.end() && t->is_number_integer()) {
    e.time_nanos = t->get<long long>();
  }
  return e;
}

std::vector<std::string> EventLineSplitter::Feed(std::string_view chunk) {
  std::vector<std::string> lines;
  while (!chunk.empty()) {
    auto nl = chunk.find('\n');
    std::string_view piece = chunk.substr(0, nl);
    if (!skipping_) {
      if (partial_.size() + piece.size() > max_line_) {
        partial_.clear();
        skipping_ = true;
        ++dropped_;
      } else {
        partial_.append(piece);
      }
    }
    if (nl == std::string_view::npos) break;
    if (!skipping_ && !partial_.empty()) lines.push_back(std::move(partial_));
    partial_.clear();
    skipping_ = false;
    chunk.remove_prefix(nl + 1);
  }
  return lines;
}

}  // namespace reconcile::docker
