#include "reconcile/plan.h"

#include "json_read.h"

namespace reconcile {

using nlohmann::json;

namespace {

constexpr const char* kActionNames[] = {"no-op", "create", "update", "replace", "delete"};

json FieldToJson(const FieldChange& f) {
  json j = {{"path", f.path}, {"forcesReplace", f.forces_replace}};
  if (f.before) j["before"] = *f.before;
  if (f.after) j["after"] = *f.after;
  return j;
}

}  // namespace

bool IsImageAddress(const std::string& address) {
  return address.rfind(kImageAddressPrefix, 0) == 0;
}

const char* ActionName(Action a) { return kActionNames[static_cast<int>(a)]; }

std::optional<Action> ActionFromName(const std::string& name) {
  for (int i = 0; i < 5; ++i) {
    if (name == kActionNames[i]) return static_cast<Action>(i);
  }
  return std::nullopt;
}

bool Plan::HasChanges() const {
  for (const Change& c : changes) {
    if (c.action != Action::kNoOp) return true;
  }
  return false;
}

int Plan::Count(Action a) const {
  int n = 0;
  for (const Change& c : changes) n += c.action == a ? 1 : 0;
  return n;
}

json ToJson(const Plan& plan) {
  json changes = json::array();
  for (const Change& c : plan.changes) {
    json fields = json::array();
    for (const FieldChange& f : c.fields) fields.push_back(FieldToJson(f));
    json prior = json::array();
    for (const InstanceRef& r : c.prior) prior.push_back({{"id", r.id}, {"name", r.name}});
    changes.push_back({{"address", c.address},
                       {"name", c.name},
                       {"action", ActionName(c.action)},
                       {"target", c.target},
                       {"provider", c.provider},
                       {"fields", fields},
                       {"reason", c.reason},
                       {"desired", c.desired},
                       {"desiredHash", c.desired_hash},
                       {"prior", prior},
                       {"dependsOn", c.depends_on}});
  }
  return {{"formatVersion", Plan::kFormatVersion},
          {"revision", plan.revision},
          {"observedDigest", plan.observed_digest},
          {"changes", changes}};
}

Result<Plan> PlanFromJson(const json& j) {
  using json_read::Field;
  if (!j.is_object()) return Status::Invalid("plan: expected a JSON object");
  int version = 0;
  if (Status s = Field(j, "formatVersion", "plan", version); !s.ok()) return s;
  if (version != Plan::kFormatVersion) {
    return Status::Invalid("plan: formatVersion " + std::to_string(version) +
                           " is not supported (expected " + std::to_string(Plan::kFormatVersion) +
                           ")");
  }
  Plan plan;
  json changes;
  for (Status s : {Field(j, "revision", "plan", plan.revision),
                   Field(j, "observedDigest", "plan", plan.observed_digest),
                   Field(j, "changes", "plan", changes)}) {
    if (!s.ok()) return s;
  }
  if (!changes.is_array()) return Status::Invalid("plan.changes: expected an array");
  for (size_t i = 0; i < changes.size(); ++i) {
    const json& cj = changes[i];
    const std::string path = "plan.changes[" + std::to_string(i) + "]";
    Change c;
    std::string action;
    json fields, prior;
    for (Status s :
         {Field(cj, "address", path, c.address), Field(cj, "name", path, c.name),
          Field(cj, "action", path, action), Field(cj, "target", path, c.target),
          Field(cj, "provider", path, c.provider), Field(cj, "fields", path, fields),
          Field(cj, "reason", path, c.reason), Field(cj, "desiredHash", path, c.desired_hash),
          Field(cj, "prior", path, prior), Field(cj, "dependsOn", path, c.depends_on)}) {
      if (!s.ok()) return s;
    }
    auto a = ActionFromName(action);
    if (!a) return Status::Invalid(path + ".action: unknown action '" + action + "'");
    c.action = *a;
    if (!cj.contains("desired")) return Status::Invalid(path + ".desired: missing");
    c.desired = cj["desired"];
    if (!c.desired->is_null() && !c.desired->is_object()) {
      return Status::Invalid(path + ".desired: expected an object or null");
    }
    if (!fields.is_array()) return Status::Invalid(path + ".fields: expected an array");
    for (size_t k = 0; k < fields.size(); ++k) {
      const std::string fpath = path + ".fields[" + std::to_string(k) + "]";
      FieldChange f;
      if (Status s = Field(fields[k], "path", fpath, f.path); !s.ok()) return s;
      if (Status s = Field(fields[k], "forcesReplace", fpath, f.forces_replace); !s.ok()) return s;
      if (fields[k].contains("before")) f.before = fields[k]["before"];
      if (fields[k].contains("after")) f.after = fields[k]["after"];
      c.fields.push_back(std::move(f));
    }
    if (!prior.is_array()) return Status::Invalid(path + ".prior: expected an array");
    for (size_t k = 0; k < prior.size(); ++k) {
      const std::string ppath = path + ".prior[" + std::to_string(k) + "]";
      InstanceRef r;
      if (Status s = Field(prior[k], "id", ppath, r.id); !s.ok()) return s;
      if (Status s = Field(prior[k], "name", ppath, r.name); !s.ok()) return s;
      c.prior.push_back(std::move(r));
    }
    if (!plan.changes.empty() && !(plan.changes.back().address < c.address)) {
      return Status::Invalid(path + ".address: changes must be sorted and unique");
    }
    plan.changes.push_back(std::move(c));
  }
  return plan;
}

}  // namespace reconcile
