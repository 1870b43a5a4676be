#include "reconcile/applier.h"

#include <algorithm>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace reconcile {

namespace {

using SteadyClock = std::chrono::steady_clock;

std::chrono::milliseconds Since(SteadyClock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start);
}

// The `parallelism` slots: a change holds one while it does work, and gives
// it back while it only waits (health checks, retry backoff), so that waits
// do not keep other changes from starting. A stop lets everyone through.
class Slots {
 public:
  explicit Slots(int n) : free_(n) {}
  void Acquire(std::stop_token stop) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, stop, [&] { return free_ > 0; });
    --free_;  // may go below zero after a stop: released again in the end
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++free_;
    }
    cv_.notify_one();
  }

 private:
  std::mutex mu_;
  std::condition_variable_any cv_;
  int free_;
};

// Masks the secret values passed to a provider in whatever text it sends
// back (errors, progress lines), as written and JSON-escaped (how an API
// echoes a value inside a JSON message). Every occurrence is found in the
// original text first, then each run of covered characters becomes one mask,
// so that overlapping values never leave a piece of one behind.
class Redactor {
 public:
  explicit Redactor(const std::map<std::string, std::string>& secrets) {
    for (const auto& [name, value] : secrets) {
      if (value.empty()) continue;
      needles_.push_back(value);
      std::string quoted = nlohmann::json(value).dump();
      std::string escaped = quoted.substr(1, quoted.size() - 2);
      if (escaped != value) needles_.push_back(escaped);
    }
  }
  std::string operator()(const std::string& text) const {
    if (needles_.empty()) return text;
    std::vector<bool> covered(text.size(), false);
    bool any = false;
    for (const std::string& n : needles_) {
      for (std::size_t at = text.find(n); at != std::string::npos; at = text.find(n, at + 1)) {
        std::fill(covered.begin() + at, covered.begin() + at + n.size(), true);
        any = true;
      }
    }
    if (!any) return text;
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (!covered[i]) {
        out += text[i];
      } else if (i == 0 || !covered[i - 1]) {
        out += "<redacted>";
      }
    }
    return out;
  }
  Status operator()(const Status& st) const {
    if (st.ok() || needles_.empty()) return st;
    return Status(st.code(), (*this)(st.message()));
  }

 private:
  std::vector<std::string> needles_;
};

// Runs one change with retries, holding a slot except while it waits.
// Returns the provider's last response.
ApplyChangeResponse RunChange(const Change& change, const std::string& revision,
                              const ApplyContext& ctx, const ApplyOptions& options,
                              std::mt19937& rng, SteadyClock::time_point start, Slots& slots,
                              const std::string& span_id) {
  auto emit = [&](Event::Type type, std::string message) {
    ctx.observer->OnEvent({type, change.address, std::move(message), Since(start)});
  };
  ApplyChangeResponse response;
  const bool image = IsImageAddress(change.address);
  Provider* provider = image ? nullptr : ctx.provider_for(change.target);
  const Target* target = ctx.target_for(change.target);
  if (image && !ctx.build_image) {
    response.status = Status::Invalid(change.address + ": this engine cannot build images");
    return response;
  }
  if ((!image && provider == nullptr) || target == nullptr) {
    response.status = Status::Invalid("no provider for target '" + change.target + "'");
    return response;
  }
  ApplyChangeRequest request;
  request.target = *target;
  request.change = change;
  request.revision = revision;
  request.stop = ctx.stop;
  bool holding = true;  // the caller acquired our slot
  request.waiting = [&](bool waiting) {
    if (waiting && holding) {
      slots.Release();
      holding = false;
    } else if (!waiting && !holding) {
      slots.Acquire(ctx.stop);
      holding = true;
    }
  };
  // On every return the slot is held again: the caller releases it.
  struct HoldOnReturn {
    const std::function<void(bool)>& waiting;
    ~HoldOnReturn() { waiting(false); }
  } hold_on_return{request.waiting};
  if (!image && change.action != Action::kDelete && ctx.pull_credentials_for) {
    Result<std::optional<RegistryCredentials>> credentials = ctx.pull_credentials_for(change);
    if (!credentials.ok()) {
      response.status = credentials.status();
      return response;
    }
    request.pull_credentials = std::move(*credentials);
  }
  if (!image && change.action != Action::kDelete && ctx.secrets_for) {
    Result<std::map<std::string, std::string>> secrets = ctx.secrets_for(change);
    if (!secrets.ok()) {
      response.status = secrets.status();
      return response;
    }
    request.secret_values = std::move(*secrets);
  }
  // Whatever the provider says goes through the redactor before it reaches
  // an event, the state or the returned status.
  const Redactor redact(request.secret_values);
  request.progress = [&](const std::string& line) {
    emit(Event::Type::kChangeProgress, redact(line));
  };
  request.step = [&](const std::string& step) {
    Event e{Event::Type::kStepStarted, change.address, "", Since(start), change.action};
    e.step = step;
    ctx.observer->OnEvent(e);
  };
  request.traceparent = Traceparent(options.trace, span_id);
  std::chrono::milliseconds backoff = options.initial_backoff;
  for (int attempt = 1;; ++attempt) {
    if (image) {
      response = {};
      response.status = redact(
          ctx.build_image(change, request.progress, request.step, ctx.stop, request.traceparent));
    } else {
      response = provider->ApplyChange(request);
      response.status = redact(response.status);
      for (const std::string& w : response.warnings) {
        ctx.observer->OnEvent({Event::Type::kWarning, change.address, redact(w), Since(start)});
      }
    }
    if (response.status.ok() || !response.status.retryable() || attempt >= options.max_attempts) {
      return response;
    }
    // Full jitter: sleep a random time in [backoff/2, backoff].
    std::uniform_int_distribution<long> dist(backoff.count() / 2, backoff.count());
    std::chrono::milliseconds wait(dist(rng));
    emit(Event::Type::kChangeRetrying, response.status.message() + "; retrying in " +
                                           std::to_string(wait.count()) + "ms (attempt " +
                                           std::to_string(attempt + 1) + "/" +
                                           std::to_string(options.max_attempts) + ")");
    request.waiting(true);  // a backoff is a wait: it holds no slot
    bool slept = ctx.clock->SleepFor(wait, ctx.stop);
    request.waiting(false);
    if (!slept) {
      response.status = Status::Cancelled(
          change.address + ": stopped before retrying (last: " + response.status.message() + ")");
      return response;
    }
    backoff = std::min(backoff * 2, options.max_backoff);
  }
}

}  // namespace

ApplyResult Apply(const Plan& plan, State recorded, const ApplyContext& ctx,
                  const ApplyOptions& options) {
  ApplyResult result;
  result.state = std::move(recorded);

  // The work: every change that is not a no-op, with its pending dependencies.
  std::map<std::string, const Change*> work;
  for (const Change& c : plan.changes) {
    if (c.action != Action::kNoOp) work[c.address] = &c;
  }
  std::map<std::string, std::set<std::string>> waiting_on;  // address -> pending deps
  std::map<std::string, std::vector<std::string>> dependents;
  for (const auto& [address, change] : work) {
    for (const std::string& dep : change->depends_on) {
      if (work.count(dep)) {
        waiting_on[address].insert(dep);
        dependents[dep].push_back(address);
      }
    }
  }

  std::mutex mu;
  std::condition_variable cv;
  Slots slots(std::max(1, options.parallelism));
  std::deque<std::string> ready;
  for (const auto& [address, change] : work) {
    if (waiting_on[address].empty()) ready.push_back(address);
  }
  size_t finished = 0;
  std::set<std::string> failed_set;

  // Marks `address` done; with failure, skips everything that depends on it.
  // Caller holds mu.
  std::function<void(const std::string&, bool)> finish = [&](const std::string& address, bool ok) {
    ++finished;
    for (const std::string& d : dependents[address]) {
      if (!ok) {
        if (failed_set.insert(d).second) {
          ++result.skipped;
          ctx.observer->OnEvent({Event::Type::kChangeSkipped, d,
                                 "skipped: depends on " + address + ", which failed",
                                 std::chrono::milliseconds(0)});
          finish(d, false);
        }
        continue;
      }
      waiting_on[d].erase(address);
      if (waiting_on[d].empty() && !failed_set.count(d)) ready.push_back(d);
    }
  };

  auto worker = [&](unsigned seed) {
    std::mt19937 rng(seed);
    std::unique_lock<std::mutex> lock(mu);
    while (true) {
      cv.wait(lock, [&] { return !ready.empty() || finished == work.size(); });
      if (ready.empty()) return;
      std::string address = ready.front();
      ready.pop_front();
      const Change& change = *work[address];
      if (ctx.stop.stop_requested()) {
        // Stopping: start nothing new. What depends on it is skipped too.
        ++result.skipped;
        failed_set.insert(address);
        if (result.status.ok()) result.status = Status::Cancelled("stopped before all changes ran");
        ctx.observer->OnEvent({Event::Type::kChangeSkipped, address, "not started: stopping",
                               std::chrono::milliseconds(0)});
        finish(address, false);
        cv.notify_all();
        continue;
      }
      lock.unlock();

      auto start = SteadyClock::now();
      Event started{Event::Type::kChangeStarted, address, std::string(ActionName(change.action)),
                    Since(start), change.action};
      if (options.trace.traced()) started.span_id = NewSpanId();
      ctx.observer->OnEvent(started);
      slots.Acquire(ctx.stop);
      ApplyChangeResponse response =
          RunChange(change, plan.revision, ctx, options, rng, start, slots, started.span_id);
      slots.Release();
      std::string now = ctx.clock->NowRfc3339();

      lock.lock();
      bool ok = response.status.ok();
      if (IsImageAddress(address)) {
        // Built images live in their registry, not in the state.
      } else if (change.action == Action::kDelete) {
        if (ok) result.state.resources.erase(address);
      } else if (ok || !response.instances.empty()) {
        // On failure, what exists is recorded as unhealthy ("tainted"), so the
        // next plan replaces it.
        ResourceState& rs = result.state.resources[address];
        RecordChange(change, rs);
        rs.revision = plan.revision;
        rs.instances = response.instances;
        rs.health = ok ? (response.health.empty() ? "unknown" : response.health) : "unhealthy";
        rs.applied_at = now;
      }
      if (ok) {
        ++result.succeeded;
        ctx.observer->OnEvent({Event::Type::kChangeSucceeded, address,
                               std::string(ActionName(change.action)) + " complete", Since(start)});
      } else {
        ++result.failed;
        failed_set.insert(address);
        if (result.status.ok()) result.status = response.status.WithContext(address);
        ctx.observer->OnEvent(
            {Event::Type::kChangeFailed, address, response.status.message(), Since(start)});
      }
      finish(address, ok);
      cv.notify_all();
    }
  };

  // More workers than slots, so that changes waiting for health (holding no
  // slot) do not keep others from starting.
  constexpr int kWaitingWorkers = 32;
  int threads = std::max(
      1, std::min<int>(options.parallelism + kWaitingWorkers, static_cast<int>(work.size())));
  std::vector<std::thread> pool;
  std::random_device rd;
  for (int i = 0; i < threads && !work.empty(); ++i) pool.emplace_back(worker, rd());
  for (std::thread& t : pool) t.join();

  if (result.failed == 0 && result.skipped == 0) result.state.revision = plan.revision;
  return result;
}

}  // namespace reconcile
