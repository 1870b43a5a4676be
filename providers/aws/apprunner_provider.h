// The AWS App Runner provider (issue #7): one App Runner service per agent,
// through App Runner's JSON 1.0 API (apprunner_wire.h) signed with SigV4
// (sigv4.h), with credentials from the AWS chain (credentials.h) and the
// endpoint from endpoint.h. Registered under the provider name "aws".
//
// Validation (pure, no I/O): ValidateAppRunnerTarget checks a Target's
// spec.aws block; ValidateAppRunnerAgent refuses every Agent field App
// Runner cannot honour, with the words of docs/cloud-fields.md.
//
// Ownership: a service is ours only when its tags carry
// reconcile.dev/managed-by=reconcile and reconcile.dev/agent=<agent> (the
// keys and values of observation.h as they are: App Runner's tag keys admit
// '.' and '/', and the values fit its 256 characters). The service name is
// the agent's name. A service of that name without our tags is never
// changed or deleted: a create then fails with kConflict.
//
// Changes: everything the agent can say is updated in place (UpdateService,
// a new deployment; tags through TagResource / UntagResource), except a
// change of `target`, which is a replace (delete, wait, create). Every call
// that starts an asynchronous operation waits until the service leaves
// OPERATION_IN_PROGRESS (DescribeService), then reads the operation's end
// (ListOperations): SUCCEEDED, or an error (FAILED, ROLLBACK_SUCCEEDED:
// App Runner kept the previous version).
//
// Thread-safety: Observe, PlanChange and ApplyChange may run concurrently;
// the provider's state is its immutable settings, the credential chain
// (thread-safe) and a stop source. Stop may be called from any thread.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "aws/credentials.h"
#include "http/http_client.h"
#include "reconcile/model.h"
#include "reconcile/provider.h"
#include "reconcile/status.h"

namespace reconcile::aws {

// The provider name App Runner registers under (Target spec.provider).
inline constexpr const char* kAppRunnerProviderName = "aws";

// Pure checks of spec.aws (fields "spec.aws.<field>"): required region,
// the patterns and messages of the loader's former cloud-block checks,
// unknown fields, App Runner's CPU and memory values, IAM role ARNs, and
// endpoint / authEndpoint URLs (plain http only to loopback).
ValidateTargetResponse ValidateAppRunnerTarget(const ValidateTargetRequest& request);

// Pure checks of one normalized agent spec (spec.h) against App Runner.
ValidateAgentResponse ValidateAppRunnerAgent(const ValidateAgentRequest& request);

// The JSON Schema of spec.aws (the block of schemas/target.schema.json).
nlohmann::json AppRunnerTargetSchema();

// How a provider reaches App Runner. The defaults are the real thing.
struct AppRunnerOptions {
  // The environment the credential chain, region and endpoint read
  // (AWS_*). Defaults to the process environment when not set.
  std::optional<Environment> environment;
  http::ClientOptions http;
  // Pause between two DescribeService reads while an operation runs.
  std::chrono::milliseconds poll_interval{std::chrono::seconds(3)};
  // The longest wait for one operation.
  std::chrono::milliseconds operation_timeout{std::chrono::minutes(30)};
  // Wall clock for signing (tests: the real one).
  WallClock now = [] { return std::chrono::system_clock::now(); };
};

// The provider for `target` (spec.aws in target.settings). No I/O: the
// credentials are resolved on the first call. kInvalid when the block is
// unusable (ValidateAppRunnerTarget's errors).
Result<std::unique_ptr<Provider>> NewAppRunnerProvider(const Target& target,
                                                       AppRunnerOptions options = {});

// Registers provider "aws": NewAppRunnerProvider with the default options,
// ValidateAppRunnerTarget and ValidateAppRunnerAgent.
void RegisterAppRunnerProvider(ProviderRegistry& registry);

}  // namespace reconcile::aws
