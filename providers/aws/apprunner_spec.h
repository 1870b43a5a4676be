// How a normalized agent spec (spec.h) becomes App Runner's service
// configuration (CreateService / UpdateService members), per
// docs/cloud-fields.md. Private to the App Runner provider; exposed for its
// tests. Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "reconcile/status.h"

namespace reconcile::aws {

// "ECR" for <12 digits>.dkr.ecr.<region>.amazonaws.com/..., "ECR_PUBLIC"
// for public.ecr.aws/..., nullopt for any other image (the forms the
// model's ImageIdentifier pattern admits).
std::optional<std::string> ImageRepositoryTypeOf(const std::string& image);

// An agent's resources.cpu ("0.5", "500m", "1", "1024") as App Runner's
// Cpu ("0.5 vCPU", "1024"); nullopt when it is none of App Runner's values.
std::optional<std::string> AppRunnerCpuOfAgent(const std::string& cpu);
// An agent's resources.memory ("512Mi", "2Gi") as App Runner's Memory in
// MB ("512", "2048"); nullopt when it is none of App Runner's sizes.
std::optional<std::string> AppRunnerMemoryOfAgent(const std::string& memory);
// The Target's aws.cpu / aws.memory (a string or a number, as written) as
// App Runner's value; nullopt when the model does not admit it.
std::optional<std::string> AppRunnerCpuOfTarget(const nlohmann::json& cpu);
std::optional<std::string> AppRunnerMemoryOfTarget(const nlohmann::json& memory);

// The members SourceConfiguration, InstanceConfiguration,
// HealthCheckConfiguration and NetworkConfiguration for `spec` on a Target
// whose spec.aws block is `settings`. With `for_update`, fields the spec
// leaves to App Runner's defaults are sent as those defaults (so that
// removing a field resets it); without, they are not sent. kInvalid (naming
// the field) for a spec that validation would refuse.
Result<nlohmann::json> ServiceConfiguration(const nlohmann::json& spec,
                                            const nlohmann::json& settings, bool for_update);

// The command line App Runner's StartCommand gets: command then args,
// joined with single spaces; empty when the spec has no command.
std::string StartCommandOf(const nlohmann::json& spec);

}  // namespace reconcile::aws
