// JSON forms of the provider messages (provider.h), so that a provider can
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

nlohmann::json ToJson(const Status& status);
// Decodes a status message into `out`; returns a non-ok Status when `j` is
// malformed.
Status StatusFromJson(const nlohmann::json& j, Status& out);

}  // namespace reconcile
