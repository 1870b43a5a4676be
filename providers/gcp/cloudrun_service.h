// The Cloud Run v2 Service an agent becomes, and what an observed Service
// tells back (docs/cloud-fields.md, "Google Cloud Run" column).
//
// Ownership. Cloud Run labels allow only lower-case letters, digits, '_' and
// '-' in keys and values of at most 63 characters, so the SPEC.md ownership
// labels are carried twice:
//   - Service.labels "reconcile-dev_managed-by": "reconcile" and
//     "reconcile-dev_agent": <agent> (queryable, shown in the console);
//   - Service.annotations with the exact keys of observation.h
//     (reconcile.dev/managed-by, /agent, /spec-hash, /revision), plus
//     "reconcile.dev/fingerprint": a digest of the fields reconcile sent
//     that Cloud Run never rewrites (image, command, args, env, ingress), so
//     that a change made outside reconcile shows as drift.
// A Service is owned only when both managed-by marks are present.
//
// Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "gcp/cloudrun_validate.h"
#include "reconcile/observation.h"

namespace reconcile::gcp {

inline constexpr const char* kGcpLabelManagedBy = "reconcile-dev_managed-by";
inline constexpr const char* kGcpLabelAgent = "reconcile-dev_agent";
// kLabelEnvironment as a Cloud Run label key (also set as an annotation).
inline constexpr const char* kGcpLabelEnvironment = "reconcile-dev_environment";
inline constexpr const char* kAnnotationFingerprint = "reconcile.dev/fingerprint";

// The body of services.create / patch for `agent` running `spec` (the
// normalized spec, already accepted by ValidateCloudRunAgent); an
// environment's service also carries the environment's label and annotation.
nlohmann::json ServiceBody(const std::string& agent, const nlohmann::json& spec,
                           const CloudRunSettings& settings, const std::string& spec_hash,
                           const std::string& revision, const std::string& environment = "");

// The environment a Service belongs to (its kLabelEnvironment annotation;
// "" when absent: the plain tree).
std::string ServiceEnvironment(const nlohmann::json& service);

// The updateMask of an in-place update: the top-level fields ServiceBody
// sets (others, set by people or tools, are kept).
std::string ServiceUpdateMask();

// "v1:<hex>" over the fields named above, as `service` holds them.
std::string Fingerprint(const nlohmann::json& service);

// True when `service` carries both managed-by marks.
bool IsOwned(const nlohmann::json& service);

// What an owned Service shows: id = its full name, name = the service id,
// endpoint = uri; state "ready", "deploying" or "failed"; health "healthy",
// "starting" or "unhealthy". A Service whose fingerprint differs from the one
// reconcile wrote gets spec_hash "<recorded hash> (changed outside
// reconcile: <fields>)", so the planner replaces it and drift reports it.
// nullopt when it is not owned (or not an object).
std::optional<ObservedInstance> ObservedFromService(const nlohmann::json& service);

// "healthy", "unhealthy" or "starting", from terminalCondition and the
// revisions (healthy: the latest created revision is the latest ready one).
std::string ServiceHealth(const nlohmann::json& service);

}  // namespace reconcile::gcp
