#include "builtin/builtin_providers.h"

#include "aws/apprunner_provider.h"
#include "azure/containerapps_provider.h"
#include "docker/docker_provider.h"
#include "gcp/cloudrun_provider.h"
#include "kubernetes/kubernetes_provider.h"

namespace reconcile {

void RegisterBuiltinProviders(ProviderRegistry& registry) {
  docker::RegisterDockerProvider(registry);
  aws::RegisterAppRunnerProvider(registry);
  gcp::RegisterCloudRunProvider(registry);
  azure::RegisterContainerAppsProvider(registry);
  kubernetes::RegisterKubernetesProvider(registry);
}

const ProviderRegistry& BuiltinProviders() {
  static const ProviderRegistry kRegistry = [] {
    ProviderRegistry r;
    RegisterBuiltinProviders(r);
    return r;
  }();
  return kRegistry;
}

}  // namespace reconcile
