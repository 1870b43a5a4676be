// Strict readers for nlohmann::json objects, used by every FromJson in the
// core. Each returns a Status naming the field path instead of throwing.
// Private to engine/src. Thread-safe (no state).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "reconcile/status.h"

namespace reconcile::json_read {

// Reads obj[key] into `out` when it has the JSON type of T.
// Missing key: Invalid unless `optional` (then `out` is left as is).
template <typename T>
Status Field(const nlohmann::json& obj, const char* key, const std::string& path, T& out,
             bool optional = false) {
  if (!obj.is_object()) return Status::Invalid(path + ": expected an object");
  auto it = obj.find(key);
  if (it == obj.end() || (optional && it->is_null())) {
    if (optional) return Status::Ok();
    return Status::Invalid(path + "." + key + ": missing");
  }
  try {
    out = it->template get<T>();
  } catch (const nlohmann::json::exception&) {
    return Status::Invalid(path + "." + key + ": wrong type (" + it->type_name() + ")");
  }
  return Status::Ok();
}

}  // namespace reconcile::json_read
