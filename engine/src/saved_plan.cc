#include "reconcile/saved_plan.h"

#include <nlohmann/json.hpp>

namespace reconcile {

namespace {

using nlohmann::json;

constexpr const char* kKey = "reconcileSavedPlan";

bool LooksLikeYaml(const std::string& name, const std::string& text) {
  for (const char* ext : {".yaml", ".yml", ".YAML", ".YML"}) {
    if (name.ends_with(ext)) return true;
  }
  return text.starts_with("---") || text.find("apiVersion:") != std::string::npos ||
         text.find("kind:") != std::string::npos;
}

}  // namespace

std::string SavedPlanText(const SavedPlan& saved) {
  json j = {{kKey, SavedPlan::kFormatVersion},
            {"source", saved.source},
            {"stateDir", saved.state_dir},
            {"plan", ToJson(saved.plan)}};
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<SavedPlan> ParseSavedPlan(const std::string& name, const std::string& text) {
  const std::string instead =
      ": `reconcile apply` takes a folder of manifests (`reconcile apply DIR`) or a plan "
      "written by `reconcile plan --out FILE`";
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    if (LooksLikeYaml(name, text)) {
      return Status::Invalid(name + " is a file of YAML (manifests), not a saved plan" + instead);
    }
    return Status::Invalid(name + " is not a saved plan (not JSON)" + instead);
  }
  if (!j.is_object() || !j.contains(kKey)) {
    return Status::Invalid(name + " is not a saved plan (no \"" + kKey + "\" field)" + instead);
  }
  if (j[kKey] != SavedPlan::kFormatVersion) {
    return Status::Invalid(name + ": " + kKey + ": unsupported version " + j[kKey].dump() +
                           " (this engine reads 1)");
  }
  for (const auto& [key, value] : j.items()) {
    if (key != kKey && key != "source" && key != "stateDir" && key != "plan") {
      return Status::Invalid(name + ": " + key + ": unknown field");
    }
  }
  SavedPlan saved;
  for (auto [key, out] : {std::pair<const char*, std::string*>{"source", &saved.source},
                          {"stateDir", &saved.state_dir}}) {
    if (!j.contains(key) || !j[key].is_string() || j[key].get<std::string>().empty()) {
      return Status::Invalid(name + ": " + key + ": missing, empty or not a string");
    }
    *out = j[key].get<std::string>();
  }
  if (!j.contains("plan")) return Status::Invalid(name + ": plan: missing");
  Result<Plan> plan = PlanFromJson(j["plan"]);
  if (!plan.ok()) return plan.status().WithContext(name);
  saved.plan = std::move(*plan);
  return saved;
}

}  // namespace reconcile
