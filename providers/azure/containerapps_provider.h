// The Azure Container Apps provider (issue #7 point 6): one container app
// (Microsoft.App/containerApps, ARM api-version kApiVersion) per agent, in
// the Target's resource group and Container Apps environment.
//
// Observe lists the apps of the resource group and keeps those that carry
// the ownership tags (containerapps_wire.h: kTagManagedBy = reconcile, in
// the Target's environment). ApplyChange PUTs the whole app (create, or an
// update in place: a new revision; traffic stays on the ready revision and
// moves to the new one once Azure reports it ready), DELETEs it, and for a
// replace deletes and creates it again. ARM's asynchronous operations are
// followed through Azure-AsyncOperation / Location, waiting Retry-After.
// Nothing that lacks the managed-by tag is ever changed or deleted.
//
// Credentials (http/azure_auth.h): AZURE_TENANT_ID / AZURE_CLIENT_ID /
// AZURE_CLIENT_SECRET (a service principal), or a managed identity
// (IDENTITY_ENDPOINT + IDENTITY_HEADER, or the instance metadata service).
// The Target's azure.endpoint replaces https://management.azure.com, its
// azure.authEndpoint the login / metadata URL.
//
// Thread-safety: Observe, PlanChange and ApplyChange may run concurrently
// (the HTTP client and the token source are thread-safe; the provider holds
// no other mutable state); Stop may be called from any thread.
#pragma once

#include <chrono>
#include <memory>

#include <nlohmann/json.hpp>

#include "http/http_client.h"
#include "http/token_source.h"
#include "reconcile/model.h"
#include "reconcile/provider.h"
#include "reconcile/status.h"

namespace reconcile::azure {

inline constexpr const char* kProviderName = "azure";

struct ContainerAppsOptions {
  http::ClientOptions client;
  // The environment the credentials are read from (tests pass their own).
  http::Getenv getenv = http::ProcessGetenv;
  // Waits between two reads of an asynchronous operation: Retry-After,
  // clamped to [min_poll, max_poll]; default_poll when the answer has none.
  std::chrono::milliseconds min_poll{1000};
  std::chrono::milliseconds max_poll{60000};
  std::chrono::milliseconds default_poll{5000};
  // An operation that has not finished after this long fails (kUnavailable).
  std::chrono::milliseconds operation_timeout{std::chrono::minutes(30)};
};

// The provider for `target` (target.settings: its valid spec.azure block).
// No I/O: credentials are looked up and a token fetched on the first call.
// kInvalid when the block lacks a required field.
Result<std::unique_ptr<Provider>> NewContainerAppsProvider(const Target& target,
                                                           ContainerAppsOptions options = {});

// Registers the provider under "azure": NewContainerAppsProvider and the
// validation of containerapps_validate.h.
void RegisterContainerAppsProvider(ProviderRegistry& registry);

}  // namespace reconcile::azure
