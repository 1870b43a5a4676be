#include "reconcile/state.h"

#include <algorithm>
#include <exception>
#include <initializer_list>
#include <limits>
#include <set>
#include <string>
#include <utility>

#include "reconcile/spec.h"

namespace reconcile {

using nlohmann::json;

JsonText::JsonText(const json& value) { *this = value; }

JsonText& JsonText::operator=(const json& value) {
  text_ =
      value.is_null() ? std::string() : value.dump(-1, ' ', false, json::error_handler_t::replace);
  return *this;
}

json JsonText::Get() const {
  if (text_.empty()) return nullptr;
  return json::parse(text_, nullptr, /*allow_exceptions=*/false);
}

namespace {

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

  void Bool(const char* key, bool* out) {
    const json* v = Get(key);
    if (v == nullptr) return;
    if (!v->is_boolean()) {
      status_ = WrongType(Field(path_, key), "a boolean", *v);
      return;
    }
    *out = v->get<bool>();
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
  json j{{"id", r.id}, {"name", r.name}, {"endpoint", r.endpoint}};
  if (!r.image_digest.empty()) j["imageDigest"] = r.image_digest;
  return j;
}

Result<InstanceRecord> InstanceFromJson(const json& j, const std::string& path) {
  InstanceRecord r;
  ObjectReader in(j, path);
  in.String("id", &r.id);
  in.String("name", &r.name);
  in.String("endpoint", &r.endpoint);
  if (j.contains("imageDigest")) in.String("imageDigest", &r.image_digest);
  in.NoUnknown({"id", "name", "endpoint", "imageDigest"});
  if (!in.status().ok()) return in.status();
  return r;
}

json ToJson(const ResourceState& r) {
  json instances = json::array();
  for (const auto& i : r.instances) instances.push_back(ToJson(i));
  json j{{"name", r.name},
         {"target", r.target},
         {"provider", r.provider},
         {"specHash", r.spec_hash},
         {"spec", r.spec.Get()},
         {"revision", r.revision},
         {"instances", std::move(instances)},
         {"health", r.health},
         {"appliedAt", r.applied_at}};
  if (!r.image_digest.empty()) j["imageDigest"] = r.image_digest;
  return j;
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
  json spec;
  in.Value("spec", &spec, /*want_object=*/false);
  r.spec = spec;
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
  if (j.contains("imageDigest")) in.String("imageDigest", &r.image_digest);
  in.NoUnknown({"name", "target", "provider", "specHash", "spec", "revision", "instances", "health",
                "appliedAt", "imageDigest"});
  if (!in.status().ok()) return in.status();
  return r;
}

Result<State> StateFromJsonUnchecked(const json& j) {
  State state;
  ObjectReader in(j, "");
  int version = 0;
  in.Int("version", &version);
  if (!in.status().ok()) return in.status();
  if (version != 1 && version != State::kFormatVersion) {
    return Status::Invalid("version: unsupported state format version " + std::to_string(version) +
                           " (this engine reads versions 1 to " +
                           std::to_string(State::kFormatVersion) + ")");
  }
  in.Int("serial", &state.serial);
  in.String("revision", &state.revision);
  if (version >= 2 && j.contains("contentDigest"))
    in.String("contentDigest", &state.content_digest);
  if (version >= 2 && j.contains("pin") && !j["pin"].is_null()) {
    Pin pin;
    ObjectReader p(j["pin"], "pin");
    p.String("revision", &pin.revision);
    p.Int("serial", &pin.serial);
    p.String("desiredRevision", &pin.desired_revision);
    p.String("pinnedAt", &pin.pinned_at);
    p.NoUnknown({"revision", "serial", "desiredRevision", "pinnedAt"});
    if (!p.status().ok()) return p.status();
    state.pin = std::move(pin);
  }
  if (const json* resources = in.Object("resources")) {
    for (const auto& [address, value] : resources->items()) {
      std::string path = MapEntry("resources", address);
      if (address.empty()) return Status::Invalid(path + ": empty resource address");
      auto r = ResourceFromJson(address, value, path);
      if (!r.ok()) return r.status();
      state.resources.emplace(address, std::move(r).value());
    }
  }
  if (version >= 2) {
    in.NoUnknown({"version", "serial", "revision", "contentDigest", "resources", "pin"});
  } else {
    in.NoUnknown({"version", "serial", "revision", "resources"});
  }
  if (!in.status().ok()) return in.status();
  return state;
}

json ToJson(const HistoryResource& r) {
  json j{{"spec", r.spec_hash}, {"image", r.image}};
  if (!r.depends_on.empty()) j["dependsOn"] = r.depends_on;
  if (!r.pack.empty()) j["pack"] = r.pack;
  if (!r.image_digest.empty()) j["imageDigest"] = r.image_digest;
  return j;
}

// True for "sha256:" and 64 lower-case hex digits (names a spec store entry).
bool IsSpecHash(const std::string& h) {
  if (h.size() != 71 || h.compare(0, 7, "sha256:") != 0) return false;
  return std::all_of(h.begin() + 7, h.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// A pack id: 1 to 64 lower-case hex digits (a file name in the spec store).
bool IsPackId(const std::string& p) {
  return !p.empty() && p.size() <= 64 && std::all_of(p.begin(), p.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
}

Result<HistoryResource> HistoryResourceFromJson(const json& j, const std::string& path) {
  HistoryResource r;
  ObjectReader in(j, path);
  in.String("spec", &r.spec_hash);
  in.String("image", &r.image);
  if (j.contains("imageDigest")) in.String("imageDigest", &r.image_digest);
  if (!in.status().ok()) return in.status();
  if (!IsSpecHash(r.spec_hash)) {
    return Status::Invalid(Field(path, "spec") +
                           ": not a spec hash (sha256:<64 hex>): " + r.spec_hash);
  }
  if (auto it = j.find("dependsOn"); it != j.end()) {
    if (!it->is_array()) return WrongType(Field(path, "dependsOn"), "an array", *it);
    for (size_t i = 0; i < it->size(); ++i) {
      if (!(*it)[i].is_string()) {
        return WrongType(Element(Field(path, "dependsOn"), i), "a string", (*it)[i]);
      }
      r.depends_on.push_back((*it)[i].get<std::string>());
    }
  }
  if (auto it = j.find("pack"); it != j.end()) {
    if (!it->is_string() || !IsPackId(it->get<std::string>())) {
      return Status::Invalid(Field(path, "pack") + ": expected a pack id (hex digits)");
    }
    r.pack = it->get<std::string>();
  }
  in.NoUnknown({"spec", "image", "dependsOn", "pack", "imageDigest"});
  if (!in.status().ok()) return in.status();
  return r;
}

// A version 1 entry: specs inline. Fills `e.changed` with every resource
// (hashed) and adds the bodies to `specs`.
Result<HistoryEntry> LegacyEntryFromJson(const json& j, const std::string& path,
                                         std::map<std::string, json>& specs) {
  HistoryEntry e;
  ObjectReader in(j, path);
  in.Int("serial", &e.serial);
  in.String("revision", &e.revision);
  in.String("appliedAt", &e.applied_at);
  in.String("result", &e.result);
  in.String("summary", &e.summary);
  json inline_specs;
  in.Value("specs", &inline_specs, /*want_object=*/true);
  in.NoUnknown({"serial", "revision", "appliedAt", "result", "summary", "specs"});
  if (!in.status().ok()) return in.status();
  for (const auto& [address, spec] : inline_specs.items()) {
    HistoryResource r;
    r.spec_hash = SpecHash(spec);
    if (spec.is_object()) {
      if (auto image = spec.find("image"); image != spec.end() && image->is_string()) {
        r.image = image->get<std::string>();
      }
    }
    specs.emplace(r.spec_hash, spec);
    e.changed.emplace(address, std::move(r));
  }
  return e;
}

Result<HistoryEntry> HistoryEntryFromJsonUnchecked(const json& j, const std::string& path) {
  HistoryEntry e;
  ObjectReader in(j, path);
  in.Int("serial", &e.serial);
  in.String("revision", &e.revision);
  in.String("appliedAt", &e.applied_at);
  in.String("result", &e.result);
  in.String("summary", &e.summary);
  if (!in.status().ok()) return in.status();
  if (j.contains("rollbackOf")) in.Int("rollbackOf", &e.rollback_of);
  if (j.contains("ignoredWindows")) in.Bool("ignoredWindows", &e.ignored_windows);
  if (const json* changed = in.Object("changed")) {
    for (const auto& [address, value] : changed->items()) {
      std::string p = MapEntry(Field(path, "changed"), address);
      if (address.empty()) return Status::Invalid(p + ": empty resource address");
      auto r = HistoryResourceFromJson(value, p);
      if (!r.ok()) return r.status();
      e.changed.emplace(address, std::move(r).value());
    }
  }
  if (const json* removed = in.Array("removed")) {
    for (size_t i = 0; i < removed->size(); ++i) {
      if (!(*removed)[i].is_string()) {
        return WrongType(Element(Field(path, "removed"), i), "a string", (*removed)[i]);
      }
      e.removed.push_back((*removed)[i].get<std::string>());
    }
    std::sort(e.removed.begin(), e.removed.end());
  }
  in.NoUnknown({"serial", "revision", "appliedAt", "result", "summary", "rollbackOf",
                "ignoredWindows", "changed", "removed"});
  if (!in.status().ok()) return in.status();
  return e;
}

Result<History> HistoryFromJsonUnchecked(const json& j) {
  History h;
  if (j.is_array()) {  // version 1
    for (size_t i = 0; i < j.size(); ++i) {
      auto e = LegacyEntryFromJson(j[i], "[" + std::to_string(i) + "]", h.legacy_specs);
      if (!e.ok()) return e.status();
      h.entries.push_back(std::move(e).value());
    }
    // Version 1 entries hold every resource: make them differences.
    HistoryResources last;
    for (HistoryEntry& e : h.entries) {
      HistoryResources full = std::move(e.changed);
      e.changed.clear();
      for (const auto& [address, r] : full) {
        auto it = last.find(address);
        if (it == last.end() || !(it->second == r)) e.changed.emplace(address, r);
      }
      for (const auto& [address, r] : last) {
        if (!full.count(address)) e.removed.push_back(address);
      }
      last = std::move(full);
    }
    return h;
  }
  ObjectReader in(j, "");
  int version = 0;
  in.Int("version", &version);
  if (!in.status().ok()) return in.status();
  if (version != History::kFormatVersion) {
    return Status::Invalid("version: unsupported history format version " +
                           std::to_string(version) + " (this engine reads versions 1 and " +
                           std::to_string(History::kFormatVersion) + ")");
  }
  if (const json* entries = in.Array("entries")) {
    for (size_t i = 0; i < entries->size(); ++i) {
      auto e = HistoryEntryFromJsonUnchecked((*entries)[i], Element("entries", i));
      if (!e.ok()) return e.status();
      h.entries.push_back(std::move(e).value());
    }
  }
  in.NoUnknown({"version", "entries"});
  if (!in.status().ok()) return in.status();
  return h;
}

void Apply(const HistoryEntry& e, HistoryResources& resources) {
  for (const std::string& address : e.removed) resources.erase(address);
  for (const auto& [address, r] : e.changed) resources[address] = r;
}

}  // namespace

json ToJson(const State& state) {
  json resources = json::object();
  for (const auto& [address, r] : state.resources) resources[address] = ToJson(r);
  json j{{"version", State::kFormatVersion},
         {"serial", state.serial},
         {"revision", state.revision},
         {"resources", std::move(resources)}};
  if (!state.content_digest.empty()) j["contentDigest"] = state.content_digest;
  if (state.pin) {
    j["pin"] = {{"revision", state.pin->revision},
                {"serial", state.pin->serial},
                {"desiredRevision", state.pin->desired_revision},
                {"pinnedAt", state.pin->pinned_at}};
  }
  return j;
}

Result<State> StateFromJson(const json& j) {
  try {
    return StateFromJsonUnchecked(j);
  } catch (const std::exception& e) {
    return Status::Invalid(std::string("malformed state: ") + e.what());
  }
}

json ToJson(const HistoryEntry& entry) {
  json changed = json::object();
  for (const auto& [address, r] : entry.changed) changed[address] = ToJson(r);
  json j{{"serial", entry.serial},  {"revision", entry.revision}, {"appliedAt", entry.applied_at},
         {"result", entry.result},  {"summary", entry.summary},   {"changed", std::move(changed)},
         {"removed", entry.removed}};
  if (entry.rollback_of != 0) j["rollbackOf"] = entry.rollback_of;
  if (entry.ignored_windows) j["ignoredWindows"] = true;
  return j;
}

Result<HistoryEntry> HistoryEntryFromJson(const json& j) {
  try {
    return HistoryEntryFromJsonUnchecked(j, "");
  } catch (const std::exception& e) {
    return Status::Invalid(std::string("malformed history entry: ") + e.what());
  }
}

json ToJson(const History& history) {
  json entries = json::array();
  for (const HistoryEntry& e : history.entries) entries.push_back(ToJson(e));
  return json{{"version", History::kFormatVersion}, {"entries", std::move(entries)}};
}

Result<History> HistoryFromJson(const json& j) {
  try {
    return HistoryFromJsonUnchecked(j);
  } catch (const std::exception& e) {
    return Status::Invalid(std::string("malformed history: ") + e.what());
  }
}

HistoryResources ResourcesAt(const History& history, size_t index) {
  HistoryResources out;
  for (size_t i = 0; i <= index && i < history.entries.size(); ++i) {
    Apply(history.entries[i], out);
  }
  return out;
}

HistoryResources LastResources(const History& history) {
  if (history.entries.empty()) return {};
  return ResourcesAt(history, history.entries.size() - 1);
}

void AppendEntry(History& history, HistoryEntry entry, const HistoryResources& resources,
                 const HistoryResources& last) {
  entry.changed.clear();
  entry.removed.clear();
  for (const auto& [address, r] : resources) {
    auto it = last.find(address);
    if (it == last.end() || !(it->second == r)) entry.changed.emplace(address, r);
  }
  for (const auto& [address, r] : last) {
    if (!resources.count(address)) entry.removed.push_back(address);
  }
  history.entries.push_back(std::move(entry));
}

void TrimHistory(History& history, size_t max, int keep) {
  std::vector<HistoryEntry>& entries = history.entries;
  size_t i = 0;
  while (entries.size() > max && i + 1 < entries.size()) {
    if (keep != 0 && entries[i].serial == keep) {
      ++i;
      continue;
    }
    // Fold entry i into entry i + 1: the next one then holds both changes
    // (the first entry holds every resource, so removals need no record).
    HistoryEntry& next = entries[i + 1];
    HistoryResources changed = std::move(entries[i].changed);
    for (const std::string& address : next.removed) changed.erase(address);
    for (auto& [address, r] : next.changed) changed[address] = std::move(r);
    std::set<std::string> removed;
    if (i > 0) {
      removed.insert(entries[i].removed.begin(), entries[i].removed.end());
      removed.insert(next.removed.begin(), next.removed.end());
      for (const auto& [address, r] : next.changed) removed.erase(address);
    }
    next.changed = std::move(changed);
    next.removed.assign(removed.begin(), removed.end());
    entries.erase(entries.begin() + static_cast<std::ptrdiff_t>(i));
  }
}

std::map<std::string, std::string> ReferencedSpecs(const History& history) {
  std::map<std::string, std::string> out;
  for (const HistoryEntry& e : history.entries) {
    for (const auto& [address, r] : e.changed) {
      std::string& pack = out[r.spec_hash];
      if (pack.empty()) pack = r.pack;  // a stored copy beats a version 1 inline one
    }
  }
  return out;
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
