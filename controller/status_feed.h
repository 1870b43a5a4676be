// StatusFeed: what the status page needs beyond the status document, kept
// off the I/O thread. A queued sink of the event bus (event_bus.h): for each
// kPassStarted, kPassFinished and kHealWithheld of an environment it
//   - on kPassFinished, waits (at most `settle`) until the status document
//     counts the pass (its "passes" + "skipped" grew: the scheduler records
//     a pass on its I/O thread just after publishing it), then reloads that
//     environment's recent history through the HistoryLoader (disk I/O, on
//     the bus's worker thread) into a cache;
//   - keeps which pass runs (kPassStarted until kPassFinished), shown as
//     the section's "running";
//   - renders the environment's section (status_page.h) and hands it, as an
//     SSE "env" frame, to the connected broadcaster (the HTTP server's
//     /events clients).
// PageStatus() is the status document with each environment's cached
// "history" and "running" merged in: no I/O, for GET / on the I/O thread.
//
// Thread-safety: every method is safe from any thread. Connect's functions
// are called on the bus's worker thread (status also from PageStatus's
// caller) and must not block.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "controller/event_bus.h"
#include "reconcile/state.h"
#include "reconcile/status.h"

namespace reconcile::controller {

class StatusFeed final : public EventSink {
 public:
  // An environment's history ("default" for a plain tree). Called on the
  // bus's worker thread; may block on disk.
  using HistoryLoader = std::function<Result<History>(const std::string& environment)>;
  using StatusFn = std::function<nlohmann::json()>;
  using Broadcast = std::function<void(std::shared_ptr<const std::string> frame)>;

  explicit StatusFeed(HistoryLoader loader,
                      std::chrono::milliseconds settle = std::chrono::seconds(2),
                      std::size_t history_rows = 10);

  // Where the status document comes from and where frames go; empty
  // functions disconnect. The HTTP server connects itself in Start and
  // disconnects in Stop.
  void Connect(StatusFn status, Broadcast broadcast);

  nlohmann::json PageStatus() const;

  Status Deliver(const ControllerEvent& event, std::stop_token stop) override;

 private:
  // Adds the cached rows to each environment of `status`. Needs mu_.
  void Merge(nlohmann::json& status) const;

  const HistoryLoader loader_;
  const std::chrono::milliseconds settle_;
  const std::size_t history_rows_;
  mutable std::mutex mu_;  // guards the fields below
  StatusFn status_;
  Broadcast broadcast_;
  std::map<std::string, nlohmann::json> history_;  // by environment
  std::map<std::string, nlohmann::json> running_;  // by environment
  std::map<std::string, std::int64_t> counted_;    // passes + skipped at the last kPassFinished
};

}  // namespace reconcile::controller
