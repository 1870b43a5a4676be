// FakeControllerView: a ControllerView for HTTP server tests. Status,
// readiness and the followed branch are set by the test; Trigger calls are
// recorded. Thread-safety: a mutex guards all state (the server calls it
// from its I/O thread while the test reads it).
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "controller/http_server.h"

namespace reconcile::testing {

class FakeControllerView : public controller::ControllerView {
 public:
  nlohmann::json Status() override {
    std::lock_guard<std::mutex> lock(mu_);
    return status_;
  }
  controller::Readiness Ready() override {
    std::lock_guard<std::mutex> lock(mu_);
    return ready_;
  }
  void Trigger(const std::string& why, const std::string& actor) override {
    std::lock_guard<std::mutex> lock(mu_);
    triggers_.push_back(why);
    actors_.push_back(actor);
  }
  std::string FollowedBranch() override {
    std::lock_guard<std::mutex> lock(mu_);
    return branch_;
  }

  void SetStatus(nlohmann::json s) {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = std::move(s);
  }
  void SetReady(bool ready, std::string reason = {}) {
    std::lock_guard<std::mutex> lock(mu_);
    ready_ = {ready, std::move(reason)};
  }
  void SetBranch(std::string b) {
    std::lock_guard<std::mutex> lock(mu_);
    branch_ = std::move(b);
  }
  std::vector<std::string> triggers() const {
    std::lock_guard<std::mutex> lock(mu_);
    return triggers_;
  }
  // Who asked, per trigger ("webhook:github").
  std::vector<std::string> actors() const {
    std::lock_guard<std::mutex> lock(mu_);
    return actors_;
  }
  // Approve: records "id by"; answers the status set for that id (default 404).
  ApproveAnswer Approve(const std::string& id, const std::string& by) override {
    std::lock_guard<std::mutex> lock(mu_);
    approvals_.push_back(id + " by " + by);
    auto it = answers_.find(id);
    if (it == answers_.end()) return {404, "", "no plan " + id + " waits for approval"};
    return it->second;
  }
  void SetApproveAnswer(const std::string& id, ApproveAnswer a) {
    std::lock_guard<std::mutex> lock(mu_);
    answers_[id] = std::move(a);
  }
  std::vector<std::string> approvals() const {
    std::lock_guard<std::mutex> lock(mu_);
    return approvals_;
  }

 private:
  mutable std::mutex mu_;
  nlohmann::json status_ = nlohmann::json::object();
  controller::Readiness ready_{true, ""};
  std::string branch_ = "main";
  std::vector<std::string> triggers_;
  std::vector<std::string> actors_;
  std::vector<std::string> approvals_;
  std::map<std::string, ApproveAnswer> answers_;
};

}  // namespace reconcile::testing
