#include "reconcile/shared_json.h"

namespace reconcile {

const std::shared_ptr<const nlohmann::json>& SharedJson::Null() {
  static const auto* null = new std::shared_ptr<const nlohmann::json>(
      std::make_shared<const nlohmann::json>(nullptr));
  return *null;
}

nlohmann::json& SharedJson::Edit() {
  auto own = std::make_shared<nlohmann::json>(*value_);
  nlohmann::json& ref = *own;
  value_ = std::move(own);
  return ref;
}

}  // namespace reconcile
