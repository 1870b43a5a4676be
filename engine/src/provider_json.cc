#include "reconcile/provider_json.h"

#include "json_read.h"

namespace reconcile {

using json_read::Field;
using nlohmann::json;

namespace {

constexpr Code kCodes[] = {Code::kOk,          Code::kInvalid, Code::kNotFound, Code::kConflict,
                           Code::kUnavailable, Code::kFailed,  Code::kInternal, Code::kCancelled};

#define RETURN_IF_ERROR(expr)           \
  do {                                  \
    if (Status _s = (expr); !_s.ok()) { \
      return _s;                        \
    }                                   \
  } while (0)

}  // namespace

json ToJson(const Status& status) {
  return {{"code", CodeName(status.code())}, {"message", status.message()}};
}

Status StatusFromJson(const json& j, Status& out) {
  std::string code, message;
  RETURN_IF_ERROR(Field(j, "code", "status", code));
  RETURN_IF_ERROR(Field(j, "message", "status", message, /*optional=*/true));
  for (Code c : kCodes) {
    if (code == CodeName(c)) {
      out = Status(c, message);
      return Status::Ok();
    }
  }
  return Status::Invalid("status.code: unknown code '" + code + "'");
}

json ToJson(const ProviderSchema& schema) { return {{"updatableFields", schema.updatable_fields}}; }

Result<ProviderSchema> ProviderSchemaFromJson(const json& j) {
  ProviderSchema s;
  RETURN_IF_ERROR(Field(j, "updatableFields", "schema", s.updatable_fields));
  return s;
}

json ToJson(const ObservedInstance& i) {
  json j = {{"id", i.id},
            {"name", i.name},
            {"agent", i.agent},
            {"specHash", i.spec_hash},
            {"revision", i.revision},
            {"image", i.image},
            {"state", i.state},
            {"running", i.running},
            {"endpoint", i.endpoint}};
  if (!i.health.empty()) j["health"] = i.health;
  return j;
}

Result<ObservedInstance> ObservedInstanceFromJson(const json& j) {
  ObservedInstance i;
  const std::string p = "instance";
  RETURN_IF_ERROR(Field(j, "id", p, i.id));
  RETURN_IF_ERROR(Field(j, "name", p, i.name));
  RETURN_IF_ERROR(Field(j, "agent", p, i.agent));
  RETURN_IF_ERROR(Field(j, "specHash", p, i.spec_hash));
  RETURN_IF_ERROR(Field(j, "revision", p, i.revision));
  RETURN_IF_ERROR(Field(j, "image", p, i.image));
  RETURN_IF_ERROR(Field(j, "state", p, i.state));
  RETURN_IF_ERROR(Field(j, "running", p, i.running));
  RETURN_IF_ERROR(Field(j, "endpoint", p, i.endpoint));
  RETURN_IF_ERROR(Field(j, "health", p, i.health, /*optional=*/true));
  return i;
}

json ToJson(const ObserveResponse& r) {
  json instances = json::array();
  for (const ObservedInstance& i : r.instances) instances.push_back(ToJson(i));
  json j = {{"status", ToJson(r.status)}, {"instances", instances}};
  if (!r.warnings.empty()) j["warnings"] = r.warnings;
  return j;
}

namespace {

// The optional "warnings" array of a response.
Status WarningsFromJson(const json& j, const std::string& where, std::vector<std::string>& out) {
  if (!j.is_object() || !j.contains("warnings")) return Status::Ok();
  const json& w = j["warnings"];
  if (!w.is_array()) return Status::Invalid(where + ".warnings: expected an array");
  for (const json& item : w) {
    if (!item.is_string()) return Status::Invalid(where + ".warnings: expected strings");
    out.push_back(item.get<std::string>());
  }
  return Status::Ok();
}

}  // namespace

Result<ObserveResponse> ObserveResponseFromJson(const json& j) {
  ObserveResponse r;
  json status, instances;
  RETURN_IF_ERROR(Field(j, "status", "observeResponse", status));
  RETURN_IF_ERROR(Field(j, "instances", "observeResponse", instances));
  RETURN_IF_ERROR(StatusFromJson(status, r.status));
  if (!instances.is_array()) return Status::Invalid("observeResponse.instances: expected an array");
  for (const json& ij : instances) {
    Result<ObservedInstance> i = ObservedInstanceFromJson(ij);
    if (!i.ok()) return i.status();
    r.instances.push_back(std::move(*i));
  }
  RETURN_IF_ERROR(WarningsFromJson(j, "observeResponse", r.warnings));
  return r;
}

json ToJson(const ApplyChangeRequest& request, bool include_secrets) {
  json prior = json::array();
  for (const InstanceRef& r : request.change.prior)
    prior.push_back({{"id", r.id}, {"name", r.name}});
  json j = {{"target", {{"name", request.target.name}, {"provider", request.target.provider}}},
            {"address", request.change.address},
            {"name", request.change.name},
            {"action", ActionName(request.change.action)},
            {"desired", request.change.desired},
            {"desiredHash", request.change.desired_hash},
            {"prior", prior},
            {"revision", request.revision}};
  if (include_secrets) j["secretValues"] = request.secret_values;
  return j;
}

json ToJson(const ApplyChangeResponse& r) {
  json instances = json::array();
  for (const InstanceRecord& i : r.instances) {
    instances.push_back({{"id", i.id}, {"name", i.name}, {"endpoint", i.endpoint}});
  }
  json j = {{"status", ToJson(r.status)}, {"instances", instances}, {"health", r.health}};
  if (!r.warnings.empty()) j["warnings"] = r.warnings;
  return j;
}

Result<ApplyChangeResponse> ApplyChangeResponseFromJson(const json& j) {
  ApplyChangeResponse r;
  json status, instances;
  const std::string p = "applyChangeResponse";
  RETURN_IF_ERROR(Field(j, "status", p, status));
  RETURN_IF_ERROR(Field(j, "instances", p, instances));
  RETURN_IF_ERROR(Field(j, "health", p, r.health));
  RETURN_IF_ERROR(StatusFromJson(status, r.status));
  if (!instances.is_array()) return Status::Invalid(p + ".instances: expected an array");
  for (size_t k = 0; k < instances.size(); ++k) {
    InstanceRecord i;
    const std::string ip = p + ".instances[" + std::to_string(k) + "]";
    RETURN_IF_ERROR(Field(instances[k], "id", ip, i.id));
    RETURN_IF_ERROR(Field(instances[k], "name", ip, i.name));
    RETURN_IF_ERROR(Field(instances[k], "endpoint", ip, i.endpoint));
    r.instances.push_back(std::move(i));
  }
  RETURN_IF_ERROR(WarningsFromJson(j, p, r.warnings));
  return r;
}

}  // namespace reconcile
