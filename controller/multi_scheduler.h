// MultiScheduler: one controller following several environments (or plain
// trees, one per --path) of one repository.
//
// One ref check for all: every `interval` (jittered) and at once on Trigger
// (a webhook) it resolves the followed ref once, on its own one-thread pool,
// and offers the result to each environment's Scheduler (options.follower):
// each decides on its own (PassPolicy, drift timer, restart budget) and runs
// its passes on its own one-thread pool, with its own Source (the Git
// sources share the bare mirror: the first Load of a new commit fetches it,
// the others find its objects there), state folder, lock and history. So a
// broken overlay or a long health wait in one environment never delays the
// others' passes nor the ref checks.
//
// `on_revision` (optional) runs on the check pool after every successful ref
// check that found a new revision, before the offers: --environments uses it
// to find the Environments of that revision and Add() the new ones.
//
// Pause / Stop reach every environment; `on_paused` / `on_stopped` run once
// all of them (and the ref check) have ended their work.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stop_token>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include "scheduler.h"

namespace reconcile::controller {

struct MultiSchedulerOptions {
  Millis interval{std::chrono::seconds(30)};
  double jitter = 0.1;
  std::string branch;  // for status only
  bool start_paused = false;
};

class MultiScheduler final : public SchedulerControl {
 public:
  // `source`: the repository (its root), used for Resolve only; it must
  // outlive this. `listener` gets the ref checks (RefChecked) only.
  MultiScheduler(boost::asio::io_context& io, Source* source, MultiSchedulerOptions options,
                 SchedulerListener* listener);
  ~MultiScheduler() override;

  // One more environment (its options.follower must be set). Any thread;
  // after Start() it starts at once and gets the last revision seen.
  void Add(std::unique_ptr<Scheduler> environment);
  // Names of the environments added so far.
  std::vector<std::string> Environments() const;
  std::function<void(const std::string& revision, std::stop_token stop)> on_revision;

  void Start() override;
  void Trigger(const std::string& why, const std::string& actor) override;
  void Stop(std::function<void()> on_stopped) override;
  void Pause(std::function<void()> on_paused) override;
  void Resume() override;
  // {source, branch, revision: {seen}, sourceError, environments: [...]}:
  // each element is that environment's Scheduler::StatusJson().
  nlohmann::json StatusJson() const override;
  // Ready when the last ref check reached the source and every environment
  // is Ready.
  bool Ready(std::string* why) const override;
  // The environment whose state folder holds plan `id` approves it.
  Result<PendingPlan> Approve(const std::string& id, const std::string& by,
                              const std::string& via) override;

 private:
  void Post(std::function<void()> fn);
  void StartCheck();
  void OnResolved(Result<std::string> revision);
  void Idle();
  void ArmTimer();
  std::vector<Scheduler*> Children() const;
  // Runs `done` once every child has called back (on the I/O thread).
  void ForAll(void (Scheduler::*op)(std::function<void()>), std::function<void()> done);

  boost::asio::io_context& io_;
  Source* source_;
  MultiSchedulerOptions options_;
  SchedulerListener* listener_;
  boost::asio::steady_timer timer_;
  boost::asio::thread_pool pool_{1};
  std::mt19937 rng_{std::random_device{}()};

  // I/O-thread state.
  bool started_ = false;
  bool busy_ = false;
  bool pending_ = false;
  std::string trigger_actor_;  // who asked for the next check (Trigger), "" none
  std::string check_actor_;    // who asked for the running one: offered with its result
  bool stopping_ = false;
  bool paused_ = false;
  std::function<void()> after_check_;  // Pause/Stop waiting for the check to end

  mutable std::mutex mu_;
  std::stop_source stop_;  // guarded by mu_
  std::vector<std::unique_ptr<Scheduler>> children_;
  std::string seen_;
  std::string last_check_error_;
  std::optional<Result<std::string>> last_;  // the last ref check, for late Add()s
};

}  // namespace reconcile::controller
