#include "multi_scheduler.h"

#include <boost/asio/post.hpp>

namespace reconcile::controller {

namespace {

namespace asio = boost::asio;
using nlohmann::json;

}  // namespace

MultiScheduler::MultiScheduler(asio::io_context& io, Source* source, MultiSchedulerOptions options,
                               SchedulerListener* listener)
    : io_(io),
      source_(source),
      options_(std::move(options)),
      listener_(listener),
      timer_(io),
      paused_(options_.start_paused) {}

MultiScheduler::~MultiScheduler() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.request_stop();
  }
  pool_.join();
}

void MultiScheduler::Post(std::function<void()> fn) { asio::post(io_, std::move(fn)); }

std::vector<Scheduler*> MultiScheduler::Children() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Scheduler*> out;
  for (const auto& c : children_) out.push_back(c.get());
  return out;
}

std::vector<std::string> MultiScheduler::Environments() const {
  std::vector<std::string> out;
  for (Scheduler* c : Children()) out.push_back(c->environment());
  return out;
}

void MultiScheduler::Add(std::unique_ptr<Scheduler> environment) {
  Scheduler* child = environment.get();
  {
    std::lock_guard<std::mutex> lock(mu_);
    children_.push_back(std::move(environment));
  }
  Post([this, child] {
    if (!started_ || stopping_) return;
    if (paused_) child->Pause(nullptr);
    child->Start();
    std::optional<Result<std::string>> last;
    {
      std::lock_guard<std::mutex> lock(mu_);
      last = last_;
    }
    if (last) child->Offer(*last);
  });
}

void MultiScheduler::Start() {
  Post([this] {
    started_ = true;
    for (Scheduler* c : Children()) c->Start();
    StartCheck();
  });
}

void MultiScheduler::Trigger(const std::string& /*why*/, const std::string& actor) {
  Post([this, actor] {
    if (stopping_ || paused_) return;
    if (!actor.empty()) trigger_actor_ = actor;
    if (busy_) {
      pending_ = true;
      return;
    }
    timer_.cancel();
    StartCheck();
  });
}

void MultiScheduler::ForAll(void (Scheduler::*op)(std::function<void()>),
                            std::function<void()> done) {
  std::vector<Scheduler*> children = Children();
  auto left = std::make_shared<size_t>(children.size() + 1);
  auto one = [left, done = std::move(done)] {
    if (--*left == 0 && done) done();
  };
  for (Scheduler* c : children) (c->*op)(one);
  if (busy_) {
    auto before = std::move(after_check_);
    after_check_ = [before = std::move(before), one] {
      if (before) before();
      one();
    };
  } else {
    one();
  }
}

void MultiScheduler::Stop(std::function<void()> on_stopped) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.request_stop();
  }
  Post([this, on_stopped = std::move(on_stopped)]() mutable {
    stopping_ = true;
    pending_ = false;
    timer_.cancel();
    ForAll(&Scheduler::Stop, std::move(on_stopped));
  });
}

void MultiScheduler::Pause(std::function<void()> on_paused) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.request_stop();
  }
  Post([this, on_paused = std::move(on_paused)]() mutable {
    paused_ = true;
    pending_ = false;
    timer_.cancel();
    ForAll(&Scheduler::Pause, std::move(on_paused));
  });
}

void MultiScheduler::Resume() {
  Post([this] {
    if (stopping_) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_.stop_requested()) stop_ = std::stop_source();
    }
    paused_ = false;
    for (Scheduler* c : Children()) c->Resume();
    if (busy_) {
      pending_ = true;
      return;
    }
    timer_.cancel();
    StartCheck();
  });
}

void MultiScheduler::StartCheck() {
  if (stopping_ || paused_) return;
  busy_ = true;
  pending_ = false;
  check_actor_ = std::move(trigger_actor_);
  trigger_actor_.clear();
  std::stop_token stop;
  std::string seen;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop = stop_.get_token();
    seen = seen_;
  }
  asio::post(pool_, [this, stop, seen] {
    auto start = std::chrono::steady_clock::now();
    Result<std::string> revision = source_->Resolve(stop);
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (listener_) listener_->RefChecked(revision, seconds);
    if (revision.ok() && *revision != seen && on_revision && !stop.stop_requested()) {
      on_revision(*revision, stop);
    }
    Post([this, revision = std::move(revision)]() mutable { OnResolved(std::move(revision)); });
  });
}

void MultiScheduler::OnResolved(Result<std::string> revision) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (revision.ok()) {
      seen_ = *revision;
      last_check_error_.clear();
    } else {
      last_check_error_ = revision.status().message();
    }
    last_ = revision;
  }
  if (!stopping_ && !paused_) {
    for (Scheduler* c : Children()) c->Offer(revision, check_actor_);
  }
  Idle();
}

void MultiScheduler::Idle() {
  busy_ = false;
  if (after_check_) {
    auto fn = std::move(after_check_);
    after_check_ = nullptr;
    fn();
  }
  if (stopping_ || paused_) return;
  if (pending_) {
    StartCheck();
    return;
  }
  ArmTimer();
}

void MultiScheduler::ArmTimer() {
  std::uniform_real_distribution<double> dist(1.0 - options_.jitter, 1.0 + options_.jitter);
  timer_.expires_after(std::chrono::duration_cast<Millis>(options_.interval * dist(rng_)));
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopping_ || paused_) return;
    if (!busy_) StartCheck();
  });
}

bool MultiScheduler::Ready(std::string* why) const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!last_check_error_.empty()) {
      if (why) *why = "source unreachable: " + last_check_error_;
      return false;
    }
    if (!last_) {
      if (why) *why = "no ref check yet";
      return false;
    }
  }
  for (Scheduler* c : Children()) {
    std::string reason;
    if (!c->Ready(&reason)) {
      if (why) *why = "environment " + c->environment() + ": " + reason;
      return false;
    }
  }
  if (why) why->clear();
  return true;
}

Result<PendingPlan> MultiScheduler::Approve(const std::string& id, const std::string& by,
                                            const std::string& via) {
  for (Scheduler* c : Children()) {
    auto p = c->Approve(id, by, via);
    if (p.ok() || p.status().code() != Code::kNotFound) return p;
  }
  return Status::NotFound("no plan " + id + " waits for approval in any environment");
}

json MultiScheduler::StatusJson() const {
  json out;
  out["source"] = source_ ? source_->Describe() : "";
  out["branch"] = options_.branch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    out["revision"] = {{"seen", seen_}};
    out["sourceError"] = last_check_error_;
  }
  json envs = json::array();
  for (Scheduler* c : Children()) envs.push_back(c->StatusJson());
  out["environments"] = envs;
  return out;
}

}  // namespace reconcile::controller
