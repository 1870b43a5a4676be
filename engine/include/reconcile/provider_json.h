// JSON forms of the provider messages (provider.h, version
// kProviderProtocolVersion), so that a provider can
// live outside the binary and speak them over stdin/stdout, and so that the
// interface stays expressible as data. FromJson functions are strict and
// return kInvalid naming the field. ApplyChangeRequest's secret values are
// written only by ToJson(request, /*include_secrets=*/true), which is meant
// for a pipe to a provider process, never for logs or files. Thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include "reconcile/provider.h"

namespace reconcile {

nlohmann::json ToJson(const ProviderSchema& schema);
Result<ProviderSchema> ProviderSchemaFromJson(const nlohmann::json& j);

nlohmann::json ToJson(const ObservedInstance& instance);
Result<ObservedInstance> ObservedInstanceFromJson(const nlohmann::json& j);

nlohmann::json ToJson(const ObserveResponse& response);
Result<ObserveResponse> ObserveResponseFromJson(const nlohmann::json& j);

nlohmann::json ToJson(const ApplyChangeRequest& request, bool include_secrets);
nlohmann::json ToJson(const ApplyChangeResponse& response);
Result<ApplyChangeResponse> ApplyChangeResponseFromJson(const nlohmann::json& j);

// Version 2 messages (provider.h). Diagnostics: {"severity": "error" |
// "warning", "field", "message"}; "severity" defaults to "error".
nlohmann::json ToJson(const ProviderDiagnostic& diagnostic);
Result<ProviderDiagnostic> ProviderDiagnosticFromJson(const nlohmann::json& j);

nlohmann::json ToJson(const ValidateTargetRequest& request);
Result<ValidateTargetRequest> ValidateTargetRequestFromJson(const nlohmann::json& j);
nlohmann::json ToJson(const ValidateTargetResponse& response);
Result<ValidateTargetResponse> ValidateTargetResponseFromJson(const nlohmann::json& j);

nlohmann::json ToJson(const ValidateAgentRequest& request);
Result<ValidateAgentRequest> ValidateAgentRequestFromJson(const nlohmann::json& j);
nlohmann::json ToJson(const ValidateAgentResponse& response);
Result<ValidateAgentResponse> ValidateAgentResponseFromJson(const nlohmann::json& j);

nlohmann::json ToJson(const PlanChangeRequest& request);
Result<PlanChangeRequest> PlanChangeRequestFromJson(const nlohmann::json& j);
nlohmann::json ToJson(const PlanChangeResponse& response);
Result<PlanChangeResponse> PlanChangeResponseFromJson(const nlohmann::json& j);

// The Target as a provider outside the binary sees it: name, provider and
// labels (its settings travel as the call's config).
nlohmann::json ToJson(const ObserveRequest& request);

nlohmann::json ToJson(const Status& status);
// Decodes a status message into `out`; returns a non-ok Status when `j` is
// malformed.
Status StatusFromJson(const nlohmann::json& j, Status& out);

}  // namespace reconcile
