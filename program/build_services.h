// The wiring of builds: the Docker Engine of an agent's Target builds and
// pushes (providers/docker), the registry HTTP API v2 client answers whether
// a tag exists (providers/registry). One per process; thread-safe reads.
#pragma once

#include <cstdint>

#include "reconcile/image_builder.h"

namespace reconcile::cli {

// The process's BuildServices; `max_context_bytes` (0: the default) is set
// by the first call.
const BuildServices* ProgramBuildServices(std::uint64_t max_context_bytes);

}  // namespace reconcile::cli
