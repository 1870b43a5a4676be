// FakeProvider: an in-memory Provider for unit tests. Instances live in a map;
// ApplyChange mutates it and can be told to fail per address (with a given
// status, a given number of times). Records every call. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "reconcile/provider.h"

namespace reconcile::testing {

class FakeProvider final : public Provider {
 public:
  ProviderSchema schema;
  std::map<std::string, Status> fail;     // address -> status to return
  std::map<std::string, int> fail_times;  // address -> how many times (default: always)
  std::chrono::milliseconds delay{0};     // how long each ApplyChange works
  std::chrono::milliseconds wait{0};      // then how long it waits (as for health)
  // A careless provider: puts every secret value it was given into a
  // progress line and into the message of a failure (as an API that echoes
  // the request might), raw and JSON-escaped.
  bool echo_secrets = false;
  std::vector<std::string> warnings;  // returned with every ApplyChange response

  // The most ApplyChange calls that ran at the same time (working or waiting).
  int max_in_flight() const { return max_in_flight_; }
  // The most that were working (not waiting) at the same time.
  int max_working() const { return max_working_; }

  ProviderSchema Schema() const override { return schema; }

  ObserveResponse Observe(const ObserveRequest&) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++observes_;
    ObserveResponse r;
    for (const auto& [name, i] : instances_) r.instances.push_back(i);
    return r;
  }

  ApplyChangeResponse ApplyChange(const ApplyChangeRequest& req) override {
    // Concurrency bookkeeping happens outside the lock, so that parallel calls
    // really overlap for `delay`.
    int now = ++in_flight_;
    for (int seen = max_in_flight_;
         now > seen && !max_in_flight_.compare_exchange_weak(seen, now);) {
    }
    int working = ++working_;
    for (int seen = max_working_;
         working > seen && !max_working_.compare_exchange_weak(seen, working);) {
    }
    std::this_thread::sleep_for(delay);
    --working_;
    if (wait.count() > 0) {
      if (req.waiting) req.waiting(true);
      std::this_thread::sleep_for(wait);
      if (req.waiting) req.waiting(false);
    }
    --in_flight_;
    std::lock_guard<std::mutex> lock(mu_);
    calls_.push_back(req.change.address + ":" + ActionName(req.change.action));
    secrets_seen_[req.change.address] = req.secret_values;
    ApplyChangeResponse r;
    r.warnings = warnings;
    std::string echoed;
    if (echo_secrets) {
      for (const auto& [name, value] : req.secret_values) {
        echoed += " " + name + "=" + value + " json=" + nlohmann::json(value).dump();
      }
      if (req.progress) req.progress("creating with" + echoed);
    }
    if (auto it = fail.find(req.change.address); it != fail.end()) {
      auto times = fail_times.find(req.change.address);
      if (times == fail_times.end() || times->second-- > 0) {
        r.status =
            echoed.empty() ? it->second : Status(it->second.code(), it->second.message() + echoed);
        return r;
      }
    }
    const std::string& name = req.change.name;
    if (req.change.action == Action::kDelete) {
      instances_.erase(name);
      return r;
    }
    ObservedInstance i;
    i.id = "id-" + name + "-" + std::to_string(++next_id_);
    i.name = name;
    i.agent = name;
    i.spec_hash = req.change.desired_hash;
    i.revision = req.revision;
    i.state = "running";
    i.running = true;
    i.endpoint = "http://127.0.0.1:" + std::to_string(40000 + next_id_);
    if (req.change.desired->is_object()) i.image = req.change.desired->value("image", "");
    instances_[name] = i;
    std::string digest;
    if (auto d = digests.find(i.image); d != digests.end()) digest = d->second;
    r.instances.push_back({i.id, i.name, i.endpoint, digest});
    r.health = "healthy";
    return r;
  }

  // Image reference -> the digest ApplyChange reports for it
  // (InstanceRecord::image_digest); set before applying.
  std::map<std::string, std::string> digests;

  // Removes an instance behind the engine's back (drift).
  void Remove(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    instances_.erase(name);
  }
  void Put(ObservedInstance i) {
    std::lock_guard<std::mutex> lock(mu_);
    instances_[i.name] = std::move(i);
  }
  int observe_count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return observes_;
  }
  std::vector<std::string> calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  std::map<std::string, std::string> secrets_seen(const std::string& address) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = secrets_seen_.find(address);
    return it == secrets_seen_.end() ? std::map<std::string, std::string>{} : it->second;
  }

 private:
  std::atomic<int> in_flight_{0};
  std::atomic<int> max_in_flight_{0};
  std::atomic<int> working_{0};
  std::atomic<int> max_working_{0};
  mutable std::mutex mu_;
  std::map<std::string, ObservedInstance> instances_;
  std::vector<std::string> calls_;
  int observes_ = 0;
  std::map<std::string, std::map<std::string, std::string>> secrets_seen_;
  int next_id_ = 0;
};

}  // namespace reconcile::testing
