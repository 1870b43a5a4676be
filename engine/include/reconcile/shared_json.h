// SharedJson: an immutable JSON value that copies share instead of cloning,
// made on first use when it is given as a recipe.
//
// A plan holds one normalized spec per agent. With 10,000 agents, building
// those trees was most of the planner's time, although they change only when
// an agent's file does, and a plan reads the spec of an unchanged agent only
// in rare cases (a state entry to refresh, a saved plan). So the planner
// computes each agent's spec hash once per decoded Agent (SpecMemo below),
// and when that hash is the recorded one, the plan's Change::desired is a
// recipe that parses the recorded spec text if something reads it. Equality is by value; a value is
// never changed in place (Edit() gives this holder its own copy first).
//
// Thread-safety: const members may be called from several threads at once
// (the value is made once, under a lock).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

namespace reconcile {

class SharedJson {
 public:
  SharedJson();                                 // null
  SharedJson(nlohmann::json value);             // NOLINT: implicit, like json itself
  SharedJson(std::nullptr_t) : SharedJson() {}  // NOLINT
  // A value made by `make` the first time any copy of it is read.
  static SharedJson Lazy(std::function<nlohmann::json()> make);

  const nlohmann::json& get() const;
  operator const nlohmann::json&() const { return get(); }  // NOLINT
  const nlohmann::json& operator*() const { return get(); }
  const nlohmann::json* operator->() const { return &get(); }
  template <typename Key>
  const nlohmann::json& operator[](const Key& key) const {
    return get()[key];
  }
  // This holder's own, writable copy (other holders keep the old value).
  nlohmann::json& Edit();

  friend bool operator==(const SharedJson& a, const SharedJson& b) {
    return a.holder_ == b.holder_ || a.get() == b.get();
  }
  friend bool operator==(const SharedJson& a, const nlohmann::json& b) { return a.get() == b; }

 private:
  struct Holder {
    std::atomic<bool> ready{false};
    std::mutex mutex;
    nlohmann::json value;
    std::function<nlohmann::json()> make;
  };
  std::shared_ptr<Holder> holder_;
};

// What the planner derives from an Agent alone (the hash of its normalized
// spec with agent.image), computed at most once and shared by the Agents
// that Share() it: about 150 bytes per agent. A copy of an Agent starts with
// an empty memo, so an Agent that is copied and then edited never sees a
// stale hash; the loader shares the memo of the Agents it copies unchanged
// out of a decoded file (Assemble), which is how a controller computes each
// hash once per version of a file. Never part of an Agent's value: memos
// always compare equal.
class SpecMemo {
 public:
  struct Value {
    std::string hash;  // SpecHash of the normalized spec
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
  bool SharedWith(const SpecMemo& other) const { return cell_ == other.cell_; }

  // The value, made by `make` on first use. Thread-safe; once made, one
  // atomic load (std::call_once costs a pthread_once per call).
  const Value& Get(const std::function<Value()>& make) const;

  friend bool operator==(const SpecMemo&, const SpecMemo&) { return true; }

 private:
  struct Cell {
    std::atomic<bool> ready{false};
    Value value;  // no mutex per cell (one for all)
  };
  std::shared_ptr<Cell> cell_;
};

}  // namespace reconcile
