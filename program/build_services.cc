#include "build_services.h"

#include <memory>

#include "docker/image_builder.h"
#include "registry/registry_client.h"

namespace reconcile::cli {

const BuildServices* ProgramBuildServices(std::uint64_t max_context_bytes) {
  static const std::unique_ptr<RegistryClient> client = registry::NewRegistryClient();
  static const BuildServices services = [&] {
    BuildServices s;
    s.builder_for = [](const Target& t) { return docker::NewDockerImageBuilder(t); };
    s.registry = client.get();
    if (max_context_bytes > 0) s.limits.max_bytes = max_context_bytes;
    return s;
  }();
  return &services;
}

}  // namespace reconcile::cli
