// The Google Cloud Run provider (issue #7): runs each agent as one Cloud Run
// v2 Service (Admin API v2, REST/JSON), in the Target's project and region.
//
//   - Observe lists the region's Services (services.list, every page) and
//     returns only those reconcile owns (cloudrun_service.h, "Ownership").
//   - ApplyChange creates (services.create), updates in place (services.patch
//     with an updateMask: a new revision), replaces (services.patch without
//     updateMask: the whole Service as reconcile describes it) and deletes
//     (services.delete), each time following the long-running operation to
//     its end (operations.get), then reports the Service's health and URL.
//     It is idempotent: a create of a Service that exists and is owned is an
//     update; a delete of a missing one succeeds; a Service of that name that
//     is not owned is never touched (kConflict).
//   - Every Agent field Cloud Run can change is changed in place (a new
//     revision): PlanChange asks for a replacement only when `target` changes.
//   - OAuth2 through http/google_auth.h: the key GOOGLE_APPLICATION_CREDENTIALS
//     names, else the metadata server; gcp.authEndpoint replaces both
//     endpoints and gcp.endpoint the API's (SPEC.md "Endpoint overrides").
//
// Secrets: tokens, keys and ApplyChangeRequest::secret_values never appear in
// a Status, warning, progress line or observed instance (Cloud Run refuses
// secretEnv / secretFiles at validation, so no secret value is ever sent).
//
// Thread-safety: Observe, PlanChange and ApplyChange may run concurrently;
// Stop from any thread.
#pragma once

#include <chrono>
#include <memory>

#include "http/http_client.h"
#include "http/token_source.h"
#include "reconcile/model.h"
#include "reconcile/provider.h"
#include "reconcile/status.h"

namespace reconcile::gcp {

struct CloudRunOptions {
  // The API client; nullptr: MakeCurlClient(). Shared by every call.
  std::shared_ptr<http::Client> client;
  // The token endpoints' client; nullptr: MakeCurlClient() with the metadata
  // server allowed over plain http, fewer attempts.
  std::shared_ptr<http::Client> auth_client;
  http::Getenv getenv = http::ProcessGetenv;
  // Between two reads of a long-running operation.
  std::chrono::milliseconds poll_interval{1000};
  // An operation not done after this long fails the change (kUnavailable).
  std::chrono::milliseconds operation_timeout{std::chrono::minutes(15)};
  // The most services.list pages read (100 Services each).
  int max_list_pages = 100;
};

// The provider for `target` (provider: gcp). kInvalid when its spec.gcp block
// is not valid. No I/O: the credentials are read on the first call.
Result<std::unique_ptr<Provider>> NewCloudRunProvider(const Target& target,
                                                      CloudRunOptions options = {});

// The definition registered as "gcp": NewCloudRunProvider,
// ValidateCloudRunTarget, ValidateCloudRunAgent (cloudrun_validate.h).
ProviderDefinition CloudRunProviderDefinition();

// Registers CloudRunProviderDefinition() under "gcp".
void RegisterCloudRunProvider(ProviderRegistry& registry);

}  // namespace reconcile::gcp
