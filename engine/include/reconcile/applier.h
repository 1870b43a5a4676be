// Applier: executes a Plan through providers.
//
// Changes run in dependency order (Change::depends_on), independent ones in
// parallel (bounded by `parallelism`). A change whose provider call fails
// with a retryable status is retried with exponential backoff and jitter up to
// `max_attempts`; other failures are final for this run, and changes that
// depend on a failed one are skipped. The applier always returns the updated
// State, also after failures and after a stop request, so that what did
// happen is recorded.
//
// Thread-safety: Apply may be called from one thread; it uses its own workers.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "reconcile/clock.h"
#include "reconcile/event.h"
#include "reconcile/model.h"
#include "reconcile/plan.h"
#include "reconcile/provider.h"
#include "reconcile/registry_credentials.h"
#include "reconcile/state.h"
#include "reconcile/trace_context.h"

namespace reconcile {

struct ApplyOptions {
  int parallelism = 4;
  int max_attempts = 4;
  std::chrono::milliseconds initial_backoff{500};
  std::chrono::milliseconds max_backoff{8000};
  // `apply --ignore-windows` overrode a deploy window: recorded in the
  // history entry (HistoryEntry::ignored_windows).
  bool ignored_windows = false;
  // Set (by the controller, per pass) when passes are traced: each change
  // gets a span id (Event::span_id of its kChangeStarted) and its provider
  // requests carry `traceparent` (ApplyChangeRequest::traceparent).
  TraceContext trace;
};

struct ApplyResult {
  State state;    // the updated state (always)
  Status status;  // first failure, or ok; kCancelled when stopped
  int succeeded = 0;
  int failed = 0;
  int skipped = 0;
};

// Looks up the provider for a Target name (owned by the caller) and resolves
// secrets for an agent (by address) at apply time.
struct ApplyContext {
  std::function<Provider*(const std::string& target)> provider_for;
  std::function<const Target*(const std::string& target)> target_for;
  std::function<Result<std::map<std::string, std::string>>(const Change&)> secrets_for;
  // Carries out an `image.<agent>` change (plan.h IsImageAddress): build and
  // push. Retried like a provider call. Null: such changes fail. Image
  // changes are never recorded in the state.
  // `step` names the build's steps ("build", "push") as they begin;
  // `traceparent` is the change's (ApplyChangeRequest::traceparent).
  std::function<Status(const Change&, const ProgressFn& progress, const StepFn& step,
                       std::stop_token stop, const std::string& traceparent)>
      build_image;
  // Credentials for pulling the image of an agent change (its registry's, or
  // those of the tree's Registry whose url is the image's host). Optional.
  std::function<Result<std::optional<RegistryCredentials>>(const Change&)> pull_credentials_for;
  Clock* clock = nullptr;
  EventObserver* observer = nullptr;
  // Once requested, no further change starts (each counts as skipped), the
  // backoff between retries ends at once, and providers end their waits
  // (ApplyChangeRequest::stop). What did run is still recorded.
  std::stop_token stop;
};

ApplyResult Apply(const Plan& plan, State recorded, const ApplyContext& context,
                  const ApplyOptions& options);

}  // namespace reconcile
