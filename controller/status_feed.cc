#include "controller/status_feed.h"

#include <thread>
#include <utility>

#include "controller/status_page.h"
#include "reconcile/deploy_window.h"

namespace reconcile::controller {
namespace {

using nlohmann::json;
using Kind = ControllerEvent::Kind;

// The environment's document in `status` (see EnvironmentsOf), or null.
const json* FindEnvironment(const json& status, const std::string& name) {
  for (const auto& [n, e] : EnvironmentsOf(status)) {
    if (n == name) return e;
  }
  return nullptr;
}

// How many passes the status document has recorded for an environment.
std::int64_t Counted(const json* env) {
  if (env == nullptr) return -1;
  auto number = [&](const char* key) -> std::int64_t {
    auto it = env->find(key);
    return it != env->end() && it->is_number_integer() ? it->get<std::int64_t>() : 0;
  };
  return number("passes") + number("skipped");
}

}  // namespace

StatusFeed::StatusFeed(HistoryLoader loader, std::chrono::milliseconds settle,
                       std::size_t history_rows)
    : loader_(std::move(loader)), settle_(settle), history_rows_(history_rows) {}

void StatusFeed::Connect(StatusFn status, Broadcast broadcast) {
  std::lock_guard<std::mutex> lock(mu_);
  status_ = std::move(status);
  broadcast_ = std::move(broadcast);
}

void StatusFeed::Merge(json& status) const {
  auto add = [&](json& env, const std::string& name) {
    if (auto it = history_.find(name); it != history_.end()) env["history"] = it->second;
    if (auto it = running_.find(name); it != running_.end()) env["running"] = it->second;
  };
  if (!status.is_object()) return;
  if (auto envs = status.find("environments"); envs != status.end() && envs->is_array()) {
    for (json& e : *envs) {
      if (e.is_object()) add(e, e.value("name", std::string()));
    }
    return;
  }
  add(status, status.value("name", std::string("default")));
}

json StatusFeed::PageStatus() const {
  StatusFn status;
  {
    std::lock_guard<std::mutex> lock(mu_);
    status = status_;
  }
  if (!status) return nullptr;
  json out = status();
  std::lock_guard<std::mutex> lock(mu_);
  Merge(out);
  return out;
}

Status StatusFeed::Deliver(const ControllerEvent& event, std::stop_token stop) {
  if (event.environment.empty()) return Status::Ok();
  if (event.kind != Kind::kPassStarted && event.kind != Kind::kPassFinished &&
      event.kind != Kind::kHealWithheld) {
    return Status::Ok();
  }
  const std::string& env = event.environment;
  StatusFn status;
  bool loaded = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    status = status_;
    loaded = history_.count(env) > 0;
    if (event.kind == Kind::kPassStarted) {
      const bool drift = event.request && event.request->kind == PassRequest::Kind::kDrift;
      running_[env] = {
          {"kind", drift ? "drift" : "apply"},
          {"revision", event.revision},
          {"since",
           FormatRfc3339Utc(std::chrono::time_point_cast<std::chrono::milliseconds>(event.at))}};
    } else if (event.kind == Kind::kPassFinished) {
      running_.erase(env);
    }
  }
  if (!status) return Status::Ok();  // no page is served (yet)
  std::int64_t counted = -1;
  if (event.kind == Kind::kPassFinished) {
    std::int64_t before = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (auto it = counted_.find(env); it != counted_.end()) before = it->second;
    }
    const auto deadline = std::chrono::steady_clock::now() + settle_;
    while (!stop.stop_requested()) {
      counted = Counted(FindEnvironment(status(), env));
      if (counted > before || std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  if (event.kind == Kind::kPassFinished || !loaded) {
    json rows = json::array();
    if (loader_) {
      Result<History> history = loader_(env);
      if (history.ok()) rows = HistoryRows(*history, history_rows_);
    }
    std::lock_guard<std::mutex> lock(mu_);
    history_[env] = std::move(rows);
    if (counted >= 0) counted_[env] = counted;
  }
  json page = status();
  Broadcast broadcast;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Merge(page);
    broadcast = broadcast_;
  }
  const json* doc = FindEnvironment(page, env);
  if (doc == nullptr || !broadcast) return Status::Ok();
  json named = *doc;
  named["name"] = env;
  broadcast(std::make_shared<const std::string>(SseFrame("env", RenderEnvironmentSection(named))));
  return Status::Ok();
}

}  // namespace reconcile::controller
