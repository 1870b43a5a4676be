#include "reconcile/state.h"

#include <exception>
#include <initializer_list>
#include <limits>
#include <string>
#include <utility>

namespace reconcile {
namespace {

using nlohmann::json;

// Field paths in error messages: `resources["agent.web"].instances[0].id`.
std::string Field(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

std::string Element(const std::string& path, size_t index) {
  return path + "[" + std::to_string(index) + "]";
}

std::string MapEntry(const std::string& path, const std::string& key) {
  return path + "[" + json(key).dump(-1, ' ', true, json::error_handler_t::replace) + "]";
}

std::string Where(const std::string& path) { return path.empty() ? "top level" : path; }

Status WrongType(const std::string& path, const char* want, const json& got) {
  return Status::Invalid(Where(path) + ": expected " + want + ", got " + got.type_name());
}

// Reads the fields of one JSON object, collecting the first error with its
// field path. Every accessor is a no-op once an error is recorded.
class ObjectReader {
 public:
  ObjectReader(const json& j, std::string path) : j_(j), path_(std::move(path)) {
    if (!j_.is_object()) status_ = WrongType(path_, "an object", j_);
  }

  void String(const char* key, std::string* out) {
    const json* v = Get(key);
    if (v == nullptr) return;
    if (!v->is_string()) {
      status_ = WrongType(Field(path_, key), "a string", *v);
      return;
    }
    *out = v->get<std::string>();
  }

  // A non-negative integer that fits an int.
  void Int(const char* key, int* out) {
    const json* v = Get(key);
    if (v == nullptr) return;
    if (!v->is_number_integer()) {
      status_ = WrongType(Field(path_, key), "an integer", *v);
      return;
    }
    if (v->is_number_unsigned()) {
      auto u = v->get<json::number_unsigned_t>();
      if (u > static_cast<json::number_unsigned_t>(std::numeric_limits<int>::max())) {
        status_ =
            Status::Invalid(Field(path_, key) + ": " + std::to_string(u) + " is out of range");
        return;
      }
      *out = static_cast<int>(u);
      return;
    }
    auto i = v->get<json::number_integer_t>();
    if (i < 0 || i > std::numeric_limits<int>::max()) {
      status_ = Status::Invalid(Field(path_, key) + ": " + std::to_string(i) + " is out of range");
      return;
    }
    *out = static_cast<int>(i);
  }

  // Any JSON value of the given kind (`want_object`: object, else any).
  void Value(const char* key, json* out, bool want_object) {
    const json* v = Get(key);
    if (v == nullptr) return;
    if (want_object && !v->is_object()) {
      status_ = WrongType(Field(path_, key), "an object", *v);
      return;
    }
    *out = *v;
  }

  // Returns the array under `key`, or nullptr (error recorded).
  const json* Array(const char* key) {
    const json* v = Get(key);
    if (v == nullptr) return nullptr;
    if (!v->is_array()) {
      status_ = WrongType(Field(path_, key), "an array", *v);
      return nullptr;
    }
    return v;
  }

  // Returns the object under `key`, or nullptr (error recorded).
  const json* Object(const char* key) {
    const json* v = Get(key);
    if (v == nullptr) return nullptr;
    if (!v->is_object()) {
      status_ = WrongType(Field(path_, key), "an object", *v);
      return nullptr;
    }
    return v;
  }

  // Records an error for the first key that is not in `known`.
  void NoUnknown(std::initializer_list<const char*> known) {
    if (!status_.ok()) return;
    for (const auto& [key, value] : j_.items()) {
      bool found = false;
      for (const char* k : known) found = found || key == k;
      if (!found) {
        status_ = Status::Invalid(Field(path_, key) + ": unknown field");
        return;
      }
    }
  }

  void Fail(Status s) {
    if (status_.ok()) status_ = std::move(s);
  }
  const Status& status() const { return status_; }
  const std::string& path() const { return path_; }

 private:
  const json* Get(const char* key) {
    if (!status_.ok()) return nullptr;
    auto it = j_.find(key);
    if (it == j_.end()) {
      status_ = Status::Invalid(Field(path_, key) + ": missing field");
      return nullptr;
    }
    return &*it;
  }

  const json& j_;
  std::string path_;
  Status status_;
};

json ToJson(const InstanceRecord& r) {
  return json{{"id", r.id}, {"name", r.name}, {"endpoint", r.endpoint}};
}

Result<InstanceRecord> InstanceFromJson(const json& j, const std::string& path) {
  InstanceRecord r;
  ObjectReader in(j, path);
  in.String("id", &r.id);
  in.String("name", &r.name);
  in.String("endpoint", &r.endpoint);
  in.NoUnknown({"id", "name", "endpoint"});
  if (!in.status().ok()) return in.status();
  return r;
}

json ToJson(const ResourceState& r) {
  json instances = json::array();
  for (const auto& i : r.instances) instances.push_back(ToJson(i));
  return json{{"name", r.name},
              {"target", r.target},
              {"provider", r.provider},
              {"specHash", r.spec_hash},
              {"spec", r.spec},
              {"revision", r.revision},
              {"instances", std::move(instances)},
              {"health", r.health},
              {"appliedAt", r.applied_at}};
}

Result<ResourceState> ResourceFromJson(const std::string& address, const json& j,
                                       const std::string& path) {
  ResourceState r;
  r.address = address;
  ObjectReader in(j, path);
  in.String("name", &r.name);
  in.String("target", &r.target);
  in.String("provider", &r.provider);
  in.String("specHash", &r.spec_hash);
  in.Value("spec", &r.spec, /*want_object=*/false);
  in.String("revision", &r.revision);
  if (const json* instances = in.Array("instances")) {
    for (size_t i = 0; i < instances->size(); ++i) {
      auto inst = InstanceFromJson((*instances)[i], Element(Field(path, "instances"), i));
      if (!inst.ok()) return inst.status();
      r.instances.push_back(std::move(inst).value());
    }
  }
  in.String("health", &r.health);
  in.String("appliedAt", &r.applied_at);
  in.NoUnknown({"name", "target", "provider", "specHash", "spec", "revision", "instances", "health",
                "appliedAt"});
  if (!in.status().ok()) return in.status();
  return r;
}

Result<State> StateFromJsonUnchecked(const json& j) {
  State state;
  ObjectReader in(j, "");
  int version = 0;
  in.Int("version", &version);
  if (!in.status().ok()) return in.status();
  if (version != State::kFormatVersion) {
    return Status::Invalid("version: unsupported state format version " + std::to_string(version) +
                           " (this engine reads version " + std::to_string(State::kFormatVersion) +
                           ")");
  }
  in.Int("serial", &state.serial);
  in.String("revision", &state.revision);
  if (const json* resources = in.Object("resources")) {
    for (const auto& [address, value] : resources->items()) {
      std::string path = MapEntry("resources", address);
      if (address.empty()) return Status::Invalid(path + ": empty resource address");
      auto r = ResourceFromJson(address, value, path);
      if (!r.ok()) return r.status();
      state.resources.emplace(address, std::move(r).value());
    }
  }
  in.NoUnknown({"version", "serial", "revision", "resources"});
  if (!in.status().ok()) return in.status();
  return state;
}

Result<HistoryEntry> HistoryEntryFromJsonUnchecked(const json& j) {
  HistoryEntry e;
  ObjectReader in(j, "");
  in.Int("serial", &e.serial);
  in.String("revision", &e.revision);
  in.String("appliedAt", &e.applied_at);
  in.String("result", &e.result);
  in.String("summary", &e.summary);
  in.Value("specs", &e.specs, /*want_object=*/true);
  in.NoUnknown({"serial", "revision", "appliedAt", "result", "summary", "specs"});
  if (!in.status().ok()) return in.status();
  return e;
}

}  // namespace

json ToJson(const State& state) {
  json resources = json::object();
  for (const auto& [address, r] : state.resources) resources[address] = ToJson(r);
  return json{{"version", State::kFormatVersion},
              {"serial", state.serial},
              {"revision", state.revision},
              {"resources", std::move(resources)}};
}

Result<State> StateFromJson(const json& j) {
  try {
    return StateFromJsonUnchecked(j);
  } catch (const std::exception& e) {
    return Status::Invalid(std::string("malformed state: ") + e.what());
  }
}

json ToJson(const HistoryEntry& entry) {
  return json{{"serial", entry.serial},        {"revision", entry.revision},
              {"appliedAt", entry.applied_at}, {"result", entry.result},
              {"summary", entry.summary},      {"specs", entry.specs}};
}

Result<HistoryEntry> HistoryEntryFromJson(const json& j) {
  try {
    return HistoryEntryFromJsonUnchecked(j);
  } catch (const std::exception& e) {
    return Status::Invalid(std::string("malformed history entry: ") + e.what());
  }
}

void RecordChange(const Change& change, ResourceState& rs) {
  rs.address = change.address;
  rs.name = change.name;
  rs.target = change.target;
  rs.provider = change.provider;
  rs.spec = change.desired;
  rs.spec_hash = change.desired_hash;
}

}  // namespace reconcile
