// SharedJson: an immutable JSON value that copies share instead of cloning.
//
// A plan holds one normalized spec per agent. With 10,000 agents, building
// and copying those trees was most of the planner's time, although they
// change only when an agent's file does. The spec is therefore computed once
// per decoded Agent (SpecMemo below) and every plan that follows points at
// it. Equality is by value; a value is never changed in place (Edit() gives
// this holder its own copy first).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

namespace reconcile {

class SharedJson {
 public:
  SharedJson() : value_(Null()) {}
  SharedJson(nlohmann::json value)  // NOLINT: implicit, like json itself
      : value_(std::make_shared<const nlohmann::json>(std::move(value))) {}
  SharedJson(std::nullptr_t) : value_(Null()) {}  // NOLINT

  const nlohmann::json& get() const { return *value_; }
  operator const nlohmann::json&() const { return *value_; }  // NOLINT
  const nlohmann::json& operator*() const { return *value_; }
  const nlohmann::json* operator->() const { return value_.get(); }
  template <typename Key>
  const nlohmann::json& operator[](const Key& key) const {
    return (*value_)[key];
  }
  // This holder's own, writable copy (other holders keep the old value).
  nlohmann::json& Edit();

  friend bool operator==(const SharedJson& a, const SharedJson& b) {
    return a.value_ == b.value_ || *a.value_ == *b.value_;
  }
  friend bool operator==(const SharedJson& a, const nlohmann::json& b) { return *a.value_ == b; }

 private:
  static const std::shared_ptr<const nlohmann::json>& Null();
  std::shared_ptr<const nlohmann::json> value_;
};

// What the planner derives from an Agent alone (its normalized spec with
// agent.image, and that spec's hash), computed at most once and shared by the
// Agents that Share() it. A copy of an Agent starts with an empty memo, so an
// Agent that is copied and then edited never sees a stale spec; the loader
// shares the memo of the Agents it copies unchanged out of a decoded file
// (Assemble), which is how a controller computes each spec once per version
// of a file. Never part of an Agent's value: memos always compare equal.
class SpecMemo {
 public:
  struct Value {
    SharedJson spec;
    std::string hash;
  };

  SpecMemo() : cell_(std::make_shared<Cell>()) {}
  SpecMemo(const SpecMemo&) : SpecMemo() {}
  SpecMemo& operator=(const SpecMemo&) {
    cell_ = std::make_shared<Cell>();
    return *this;
  }
  SpecMemo(SpecMemo&&) noexcept = default;
  SpecMemo& operator=(SpecMemo&&) noexcept = default;

  // Makes this memo the same cell as `other` (the Agents must be equal).
  void Share(const SpecMemo& other) { cell_ = other.cell_; }

  // The value, made by `make` on first use. Thread-safe; once made, one
  // atomic load (std::call_once costs a pthread_once per call).
  template <typename Make>
  const Value& Get(Make&& make) const {
    Cell& cell = *cell_;
    if (!cell.ready.load(std::memory_order_acquire)) {
      std::lock_guard<std::mutex> lock(cell.mutex);
      if (!cell.ready.load(std::memory_order_relaxed)) {
        cell.value = make();
        cell.ready.store(true, std::memory_order_release);
      }
    }
    return cell.value;
  }

  friend bool operator==(const SpecMemo&, const SpecMemo&) { return true; }

 private:
  struct Cell {
    std::atomic<bool> ready{false};
    std::mutex mutex;
    Value value;
  };
  std::shared_ptr<Cell> cell_;
};

}  // namespace reconcile
