// Validation of the Azure Container Apps Target block (spec.azure) and of
// the Agent fields this cloud cannot honour (docs/cloud-fields.md, the Azure
// column), and the per-field plan-change decision. Pure functions: no I/O;
// thread-safe.
#pragma once

#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "reconcile/provider.h"

namespace reconcile::azure {

// spec.azure as written (JSON): required fields, patterns, integer ranges,
// http(s) URLs (plain http only to loopback), unknown fields; each
// diagnostic names its field as "spec.azure.<field>".
ValidateTargetResponse ValidateTarget(const ValidateTargetRequest& request);

// The JSON Schema (draft 2020-12) of the spec.azure block, as in
// schemas/target.schema.json.
nlohmann::json TargetSchema();

// Every Agent field Container Apps cannot honour, as an error naming the
// field ("spec.volumes[0]", "spec.healthCheck.exec", ...) with the words of
// docs/cloud-fields.md. Reads request.spec (the normalized spec), or
// NormalizedSpec(*request.model) when the spec is null.
ValidateAgentResponse ValidateAgent(const ValidateAgentRequest& request);

// In place (a new revision) for every field Container Apps takes; `target`
// (another environment: managedEnvironmentId is create-only) and fields this
// provider does not know force a replacement.
PlanChangeResponse PlanChange(const PlanChangeRequest& request);

// The top-level fields of the normalized spec updated in place.
const std::set<std::string>& UpdatableFields();

}  // namespace reconcile::azure
