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

json ToJson(const ProviderSchema& schema) {
  json j = {{"updatableFields", schema.updatable_fields},
            {"instancePerReplica", schema.instance_per_replica}};
  if (!schema.target_schema.is_null()) j["targetSchema"] = schema.target_schema;
  return j;
}

Result<ProviderSchema> ProviderSchemaFromJson(const json& j) {
  ProviderSchema s;
  RETURN_IF_ERROR(Field(j, "updatableFields", "schema", s.updatable_fields));
  RETURN_IF_ERROR(
      Field(j, "instancePerReplica", "schema", s.instance_per_replica, /*optional=*/true));
  if (auto it = j.find("targetSchema"); it != j.end() && !it->is_null()) {
    if (!it->is_object() && !it->is_boolean()) {
      return Status::Invalid(
          "schema.targetSchema: expected a JSON Schema (an object or a boolean)");
    }
    s.target_schema = *it;
  }
  return s;
}

json ToJson(const ProviderDiagnostic& d) {
  return {{"severity", d.severity == Severity::kWarning ? "warning" : "error"},
          {"field", d.field},
          {"message", d.message}};
}

Result<ProviderDiagnostic> ProviderDiagnosticFromJson(const json& j) {
  ProviderDiagnostic d;
  std::string severity = "error";
  RETURN_IF_ERROR(Field(j, "severity", "diagnostic", severity, /*optional=*/true));
  if (severity == "warning") {
    d.severity = Severity::kWarning;
  } else if (severity != "error") {
    return Status::Invalid("diagnostic.severity: expected \"error\" or \"warning\", not '" +
                           severity + "'");
  }
  RETURN_IF_ERROR(Field(j, "field", "diagnostic", d.field, /*optional=*/true));
  RETURN_IF_ERROR(Field(j, "message", "diagnostic", d.message));
  if (d.message.empty()) return Status::Invalid("diagnostic.message: empty");
  return d;
}

namespace {

json DiagnosticsJson(const std::vector<ProviderDiagnostic>& diagnostics) {
  json out = json::array();
  for (const ProviderDiagnostic& d : diagnostics) out.push_back(ToJson(d));
  return out;
}

// The optional "diagnostics" array of a response (absent: none).
Status DiagnosticsFromJson(const json& j, const std::string& where,
                           std::vector<ProviderDiagnostic>& out) {
  if (!j.is_object()) return Status::Invalid(where + ": expected an object");
  auto it = j.find("diagnostics");
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_array()) return Status::Invalid(where + ".diagnostics: expected an array");
  for (size_t k = 0; k < it->size(); ++k) {
    Result<ProviderDiagnostic> d = ProviderDiagnosticFromJson((*it)[k]);
    if (!d.ok()) {
      return d.status().WithContext(where + ".diagnostics[" + std::to_string(k) + "]");
    }
    out.push_back(std::move(*d));
  }
  return Status::Ok();
}

// obj[key], which must be a JSON object.
Status ObjectField(const json& obj, const char* key, const std::string& path, json& out) {
  RETURN_IF_ERROR(Field(obj, key, path, out));
  if (!out.is_object()) {
    return Status::Invalid(path + "." + key + ": expected an object (" + out.type_name() + ")");
  }
  return Status::Ok();
}

}  // namespace

json ToJson(const ValidateTargetRequest& r) { return {{"target", r.target}, {"config", r.config}}; }

Result<ValidateTargetRequest> ValidateTargetRequestFromJson(const json& j) {
  ValidateTargetRequest r;
  const std::string p = "validateTargetRequest";
  RETURN_IF_ERROR(Field(j, "target", p, r.target));
  RETURN_IF_ERROR(ObjectField(j, "config", p, r.config));
  return r;
}

json ToJson(const ValidateTargetResponse& r) {
  return {{"diagnostics", DiagnosticsJson(r.diagnostics)}};
}

Result<ValidateTargetResponse> ValidateTargetResponseFromJson(const json& j) {
  ValidateTargetResponse r;
  RETURN_IF_ERROR(DiagnosticsFromJson(j, "validateTargetResponse", r.diagnostics));
  return r;
}

json ToJson(const ValidateAgentRequest& r) {
  json j = {{"agent", r.agent},
            {"target", r.target},
            {"targetConfig", r.target_config.is_null() ? json::object() : r.target_config},
            {"spec", r.spec}};
  if (!r.environment.empty()) j["environment"] = r.environment;  // absent: a plain tree
  return j;
}

Result<ValidateAgentRequest> ValidateAgentRequestFromJson(const json& j) {
  ValidateAgentRequest r;
  const std::string p = "validateAgentRequest";
  RETURN_IF_ERROR(Field(j, "agent", p, r.agent));
  RETURN_IF_ERROR(Field(j, "target", p, r.target));
  RETURN_IF_ERROR(ObjectField(j, "targetConfig", p, r.target_config));
  RETURN_IF_ERROR(ObjectField(j, "spec", p, r.spec));
  RETURN_IF_ERROR(Field(j, "environment", p, r.environment, /*optional=*/true));
  return r;
}

json ToJson(const ValidateAgentResponse& r) {
  return {{"diagnostics", DiagnosticsJson(r.diagnostics)}};
}

Result<ValidateAgentResponse> ValidateAgentResponseFromJson(const json& j) {
  ValidateAgentResponse r;
  RETURN_IF_ERROR(DiagnosticsFromJson(j, "validateAgentResponse", r.diagnostics));
  return r;
}

json ToJson(const PlanChangeRequest& r) {
  return {{"agent", r.agent}, {"prior", r.prior}, {"desired", r.desired}, {"changed", r.changed}};
}

Result<PlanChangeRequest> PlanChangeRequestFromJson(const json& j) {
  PlanChangeRequest r;
  const std::string p = "planChangeRequest";
  RETURN_IF_ERROR(Field(j, "agent", p, r.agent));
  RETURN_IF_ERROR(Field(j, "prior", p, r.prior));
  RETURN_IF_ERROR(Field(j, "desired", p, r.desired));
  RETURN_IF_ERROR(Field(j, "changed", p, r.changed));
  return r;
}

json ToJson(const PlanChangeResponse& r) {
  return {{"requiresReplace", r.requires_replace}, {"diagnostics", DiagnosticsJson(r.diagnostics)}};
}

Result<PlanChangeResponse> PlanChangeResponseFromJson(const json& j) {
  PlanChangeResponse r;
  const std::string p = "planChangeResponse";
  RETURN_IF_ERROR(Field(j, "requiresReplace", p, r.requires_replace));
  RETURN_IF_ERROR(DiagnosticsFromJson(j, p, r.diagnostics));
  return r;
}

json ToJson(const ObserveRequest& r) {
  json target = {
      {"name", r.target.name}, {"provider", r.target.provider}, {"labels", r.target.labels}};
  if (!r.target.environment.empty()) target["environment"] = r.target.environment;
  return {{"target", target}};
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
  json target = {{"name", request.target.name}, {"provider", request.target.provider}};
  if (!request.target.environment.empty()) target["environment"] = request.target.environment;
  json j = {{"target", target},
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
    json record = {{"id", i.id}, {"name", i.name}, {"endpoint", i.endpoint}};
    if (!i.image_digest.empty()) record["imageDigest"] = i.image_digest;
    instances.push_back(std::move(record));
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
    RETURN_IF_ERROR(Field(instances[k], "imageDigest", ip, i.image_digest, /*optional=*/true));
    r.instances.push_back(std::move(i));
  }
  RETURN_IF_ERROR(WarningsFromJson(j, p, r.warnings));
  return r;
}

}  // namespace reconcile
