// The providers built into the binary, registered together so that the
// program and the tests load trees with the same checks.
#pragma once

#include "reconcile/provider.h"

namespace reconcile {

// Registers every built-in provider: docker, aws (App Runner), gcp (Cloud
// Run), azure (Container Apps),
// kubernetes (Deployment + Service).
void RegisterBuiltinProviders(ProviderRegistry& registry);

// A registry holding the built-in providers, made once (thread-safe).
const ProviderRegistry& BuiltinProviders();

}  // namespace reconcile
