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
  void Trigger(const std::string& why, const std::string& actor) override {
    scheduler_.Trigger(why, actor);
  }
  std::string FollowedBranch() override { return branch_; }
  ApproveAnswer Approve(const std::string& id, const std::string& by) override {
    auto p = scheduler_.Approve(id, by, "api");
    if (p.ok()) {
      return {202, p->id,
              "plan " + p->id + " (revision " + p->revision +
                  ") approved; the controller applies it now if it still equals the plan "
                  "computed then (else it is refused as stale)"};
    }
    switch (p.status().code()) {
      case Code::kNotFound:
        return {404, "", p.status().message()};
      case Code::kConflict:
        return {409, "", p.status().message()};
      case Code::kInvalid:
        return {422, "", p.status().message()};
      default:
        return {500, "", p.status().message()};
    }
  }

 private:
  SchedulerControl& scheduler_;
  const std::string branch_;
};

}  // namespace reconcile::controller
