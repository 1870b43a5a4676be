// Validation of the Cloud Run provider's inputs (issue #7): the Target's
// spec.gcp block and the Agent fields Cloud Run cannot honour
// (docs/cloud-fields.md, "Google Cloud Run" column), plus the JSON Schema of
// the block (schemas/target.schema.json's spec.gcp).
//
// Pure functions: no I/O, no clock; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "reconcile/provider.h"

namespace reconcile::gcp {

// The spec.gcp block as written: every field checked with the loader's rules
// and messages (required projectId and region, patterns, integer ranges,
// endpoint / authEndpoint http(s) URLs, unknown fields), each diagnostic
// naming "spec.gcp.<field>". Also: minInstances not above maxInstances, and
// cpu one of Cloud Run's values (1, 2, 4, 8).
ValidateTargetResponse ValidateCloudRunTarget(const ValidateTargetRequest& request);

// The normalized spec (spec.h) of one agent on a Cloud Run Target: one error
// per field Cloud Run cannot honour, named as the Agent's field
// ("spec.volumes[0]", "spec.healthCheck.exec"), with the words of
// docs/cloud-fields.md. `metadata.name` is refused when it cannot be a Cloud
// Run service id. Warnings for what is honoured differently
// (strategy.type recreate).
ValidateAgentResponse ValidateCloudRunAgent(const ValidateAgentRequest& request);

// JSON Schema (draft 2020-12) of spec.gcp.
nlohmann::json CloudRunTargetSchema();

// The block, decoded. Only meaningful for a block ValidateCloudRunTarget
// accepts.
struct CloudRunSettings {
  std::string project_id;
  std::string region;
  std::string cpu;     // "" when not set
  std::string memory;  // "" when not set
  std::optional<std::int64_t> concurrency;
  std::optional<std::int64_t> min_instances;
  std::optional<std::int64_t> max_instances;
  std::string service_account;
  std::string endpoint = "https://run.googleapis.com";  // without a trailing '/'
  std::string auth_endpoint;                            // "" for Google's
};

// kInvalid (naming the fields) when ValidateCloudRunTarget finds an error.
Result<CloudRunSettings> DecodeCloudRunSettings(const std::string& target,
                                                const nlohmann::json& config);

// A number or string setting as text: 1 -> "1", 0.5 -> "0.5", "2" -> "2".
std::string SettingText(const nlohmann::json& value);

// Memory quantity ("512Mi", "1Gi", "2G", "1073741824") in bytes; nullopt
// when it is not one.
std::optional<std::int64_t> MemoryBytes(const std::string& quantity);

// Whole seconds of a normalized duration ("10s", "2m"); nullopt when it is
// not a whole number of seconds.
std::optional<std::int64_t> WholeSeconds(const std::string& duration);

}  // namespace reconcile::gcp
