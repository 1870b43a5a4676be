// The Docker Engine as an ImageBuilder (image_builder.h): POST /build with
// the context tar (Content-Type application/x-tar, X-Registry-Config for
// FROM images in private registries) and POST /images/{name}/push with
// X-Registry-Auth, reading the JSON-lines streams of both.
//
// A build whose stream reports an error (a failing Dockerfile step) is
// kInvalid, not retried; an engine that cannot be reached is kUnavailable.
// A push refused for its credentials is kInvalid naming the registry; other
// push errors are kUnavailable (retried). Credentials never appear in a
// Status or a progress line.
//
// Thread-safety: as EngineClient (no mutable state).
#pragma once

#include <memory>

#include "docker/engine_client.h"
#include "reconcile/image_builder.h"
#include "reconcile/model.h"

namespace reconcile::docker {

// The builder of a docker Target (its engine at spec.docker.host).
Result<std::unique_ptr<ImageBuilder>> NewDockerImageBuilder(const Target& target);

// As NewDockerImageBuilder, over `transport` (tests).
std::unique_ptr<ImageBuilder> NewDockerImageBuilderWithTransport(
    std::shared_ptr<HttpTransport> transport);

}  // namespace reconcile::docker
