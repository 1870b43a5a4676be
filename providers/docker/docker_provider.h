// The Docker provider: runs agents as containers on one Docker Engine,
// through the Engine API (engine_client.h), never the docker CLI.
//
// Observe lists the containers labelled reconcile.dev/managed-by=reconcile.
// ApplyChange creates, replaces (recreate or start-first) and deletes
// containers and waits for their health. In-place updates are not offered
// (Schema().updatable_fields is empty): the spec-hash label of a container
// cannot change, so every change of the spec is a replace; a kUpdate change
// is carried out as a replace. The provider never touches a container that
// lacks the managed-by label.
//
// Thread-safety: the provider holds no mutable state; every engine call uses
// its own connection, so Observe and ApplyChange may run concurrently.
#pragma once

#include <memory>

#include "docker/engine_client.h"
#include "reconcile/model.h"
#include "reconcile/provider.h"
#include "reconcile/status.h"

namespace reconcile::docker {

// Connects to target.docker.host (unix:// or tcp://; TLS from DOCKER_CERT_PATH
// and DOCKER_TLS_VERIFY). kInvalid for an unusable address. Does not contact
// the engine.
Result<std::unique_ptr<Provider>> NewDockerProvider(const Target& target);

// As NewDockerProvider, with the given transport (tests use a fake engine).
std::unique_ptr<Provider> NewDockerProviderWithTransport(const Target& target,
                                                         std::shared_ptr<HttpTransport> transport);

// Registers NewDockerProvider under "docker".
void RegisterDockerProvider(ProviderRegistry& registry);

}  // namespace reconcile::docker
