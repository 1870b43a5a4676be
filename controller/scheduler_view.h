// SchedulerView: the ControllerView the HTTP server needs, over the
// Scheduler: Status() is Scheduler::StatusJson(), Ready() is
// Scheduler::Ready(), Trigger() is Scheduler::Trigger() (coalesced), and
// FollowedBranch() is the branch given here. Every method is thread-safe and
// non-blocking, as the scheduler's are. `scheduler` must outlive it.
#pragma once

#include <string>

#include "controller/http_server.h"
#include "scheduler.h"

namespace reconcile::controller {

class SchedulerView final : public ControllerView {
 public:
  // `branch`: what pushes are filtered by ("main", or a full ref).
  SchedulerView(SchedulerControl& scheduler, std::string branch)
      : scheduler_(scheduler), branch_(std::move(branch)) {}

  nlohmann::json Status() override { return scheduler_.StatusJson(); }
  Readiness Ready() override {
    Readiness r;
    r.ready = scheduler_.Ready(&r.reason);
    return r;
  }
  void Trigger(const std::string& why) override { scheduler_.Trigger(why); }
  std::string FollowedBranch() override { return branch_; }

 private:
  SchedulerControl& scheduler_;
  const std::string branch_;
};

}  // namespace reconcile::controller
