#include "reconcile/shared_json.h"

namespace reconcile {

namespace {

// Runs `make` once for `holder` (double-checked: one atomic load once made).
template <typename H, typename Make>
void Once(H& holder, Make make) {
  if (holder.ready.load(std::memory_order_acquire)) return;
  std::lock_guard<std::mutex> lock(holder.mutex);
  if (holder.ready.load(std::memory_order_relaxed)) return;
  make();
  holder.ready.store(true, std::memory_order_release);
}

}  // namespace

SharedJson::SharedJson() {
  static const std::shared_ptr<Holder> null = [] {
    auto h = std::make_shared<Holder>();
    h->ready = true;
    return h;
  }();
  holder_ = null;
}

SharedJson::SharedJson(nlohmann::json value) : holder_(std::make_shared<Holder>()) {
  holder_->value = std::move(value);
  holder_->ready = true;
}

SharedJson SharedJson::Lazy(std::function<nlohmann::json()> make) {
  SharedJson out;
  out.holder_ = std::make_shared<Holder>();
  out.holder_->make = std::move(make);
  return out;
}

const nlohmann::json& SharedJson::get() const {
  Holder& h = *holder_;
  Once(h, [&] {
    h.value = h.make();
    h.make = nullptr;
  });
  return h.value;
}

nlohmann::json& SharedJson::Edit() {
  SharedJson own(get());
  holder_ = std::move(own.holder_);
  return holder_->value;
}

const SpecMemo::Value& SpecMemo::Get(const std::function<Value()>& make) const {
  Cell& cell = *cell_;
  if (!cell.ready.load(std::memory_order_acquire)) {
    static std::mutex mutex;  // memos are made once, mostly by the loader: rarely contended
    std::lock_guard<std::mutex> lock(mutex);
    if (!cell.ready.load(std::memory_order_relaxed)) {
      cell.value = make();
      cell.ready.store(true, std::memory_order_release);
    }
  }
  return cell.value;
}

}  // namespace reconcile
