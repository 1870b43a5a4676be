// FakeSource: a Source for unit tests. Revisions are set by the test (each a
// LoadResult, valid or with diagnostics); Resolve returns `head` or a set
// error; both calls are counted. An optional gate makes Resolve wait until
// the test opens it. Thread-safe.
#pragma once

#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "fakes/fake_provider.h"
#include "reconcile/provider.h"
#include "reconcile/source.h"

namespace reconcile::testing {

class FakeSource final : public Source {
 public:
  void Set(const std::string& revision, DesiredState state) {
    std::lock_guard<std::mutex> lock(mu_);
    state.revision = revision;
    trees_[revision].state = std::move(state);
    head_ = revision;
  }
  // What Snapshot.root and Snapshot.commit_time are (a build context folder;
  // a commit time makes it look like a Git commit).
  void SetRoot(std::filesystem::path root, std::string commit_time = "") {
    std::lock_guard<std::mutex> lock(mu_);
    root_ = std::move(root);
    commit_time_ = std::move(commit_time);
  }
  void SetInvalid(const std::string& revision, const std::string& message) {
    std::lock_guard<std::mutex> lock(mu_);
    LoadResult r;
    r.diagnostics.Error("agents.yaml", 3, 5, "spec.port", message);
    trees_[revision] = std::move(r);
    head_ = revision;
  }
  // Snapshot.content_digest of `revision` (default: empty).
  void SetContentDigest(const std::string& revision, std::string digest) {
    std::lock_guard<std::mutex> lock(mu_);
    digests_[revision] = std::move(digest);
  }
  // What Files returns at `revision` (the files below the folder asked for).
  void SetFiles(const std::string& revision, std::vector<TreeFile> files) {
    std::lock_guard<std::mutex> lock(mu_);
    files_[revision] = std::move(files);
  }
  void FailResolve(Status s) {
    std::lock_guard<std::mutex> lock(mu_);
    resolve_error_ = std::move(s);
  }
  // While closed, Resolve blocks (until opened or stopped).
  void CloseGate() {
    std::lock_guard<std::mutex> lock(mu_);
    gate_open_ = false;
  }
  void OpenGate() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      gate_open_ = true;
    }
    cv_.notify_all();
  }
  int resolves() const {
    std::lock_guard<std::mutex> lock(mu_);
    return resolves_;
  }
  int loads() const {
    std::lock_guard<std::mutex> lock(mu_);
    return loads_;
  }

  std::string Describe() const override { return "fake"; }
  Result<std::string> Resolve(std::stop_token stop) override {
    std::unique_lock<std::mutex> lock(mu_);
    ++resolves_;
    cv_.wait(lock, stop, [&] { return gate_open_; });
    if (stop.stop_requested() && !gate_open_) return Status::Cancelled("stopped");
    if (!resolve_error_.ok()) return resolve_error_;
    return head_;
  }
  Result<Snapshot> Load(const std::string& revision, std::stop_token) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++loads_;
    auto it = trees_.find(revision);
    if (it == trees_.end()) return Status::NotFound("no revision " + revision);
    Snapshot s;
    s.revision = revision;
    s.root = root_;
    s.commit_time = commit_time_;
    s.loaded = it->second;
    if (auto d = digests_.find(revision); d != digests_.end()) s.content_digest = d->second;
    return s;
  }
  Result<std::vector<TreeFile>> Files(const std::string& revision, const std::string& folder,
                                      std::stop_token) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = files_.find(revision);
    if (it == files_.end()) return Status::NotFound("no files at " + revision);
    std::vector<TreeFile> out;
    for (const TreeFile& f : it->second) {
      if (folder.empty() || f.rel.rfind(folder + "/", 0) == 0) out.push_back(f);
    }
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable_any cv_;
  std::map<std::string, LoadResult> trees_;
  std::map<std::string, std::string> digests_;
  std::map<std::string, std::vector<TreeFile>> files_;
  std::filesystem::path root_;
  std::string commit_time_;
  std::string head_;
  Status resolve_error_;
  bool gate_open_ = true;
  int resolves_ = 0;
  int loads_ = 0;
};

// A Provider that forwards to a FakeProvider the test owns, so that a
// ProviderRegistry factory can hand out many instances over one world.
class ForwardingProvider final : public Provider {
 public:
  explicit ForwardingProvider(FakeProvider* to) : to_(to) {}
  ProviderSchema Schema() const override { return to_->Schema(); }
  ObserveResponse Observe(const ObserveRequest& r) override { return to_->Observe(r); }
  ApplyChangeResponse ApplyChange(const ApplyChangeRequest& r) override {
    return to_->ApplyChange(r);
  }

 private:
  FakeProvider* to_;
};

inline void RegisterFake(ProviderRegistry& registry, FakeProvider* world,
                         const std::string& name = "docker") {
  registry.Register(name, [world](const Target&) -> Result<std::unique_ptr<Provider>> {
    return std::unique_ptr<Provider>(std::make_unique<ForwardingProvider>(world));
  });
}

}  // namespace reconcile::testing
