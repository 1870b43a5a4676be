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
#include <string>
#include <vector>

#include "docker/docker_target.h"
#include "docker/engine_client.h"
#include "reconcile/clock.h"
#include "reconcile/model.h"
#include "reconcile/provider.h"
#include "reconcile/status.h"

namespace reconcile::docker {

// The TLS settings for the block's host (spec.docker.host). unix://: none. tcp://: start
// from `environment` (TlsConfigFromEnvironment); a docker.tls block turns TLS
// on and overrides it field by field (its files are read from
// target.secrets_dir; verify and serverName as written); a host that is not
// loopback always gets TLS (verified against the system's CAs when no CA is
// given). Plain TCP remains only for a loopback host with no TLS asked for.
// kInvalid when a file is named but no secrets folder is set.
Result<TlsConfig> TlsConfigForTarget(const Target& target, const TlsConfig& environment);

// Where agents of this Target answer, seen from the engine (health checks,
// endpoints): for unix:// the publishAddress (0.0.0.0 -> 127.0.0.1, :: ->
// ::1); for tcp://HOST:PORT the publishAddress when it is concrete and not
// loopback, else HOST.
std::string AgentAccessHost(const DockerTarget& docker);

// Connects to spec.docker.host (unix:// or tcp://, TLS per
// TlsConfigForTarget). kInvalid for an unusable address or TLS files that
// cannot be loaded. Does not contact the engine. With tls.verify: false,
// every Observe and ApplyChange response carries a warning saying so.
Result<std::unique_ptr<Provider>> NewDockerProvider(const Target& target);

// As NewDockerProvider, with the given transport (tests use a fake engine)
// and, optionally, the clock of the engine client's 429/503 retries.
std::unique_ptr<Provider> NewDockerProviderWithTransport(const Target& target,
                                                         std::shared_ptr<HttpTransport> transport,
                                                         Clock* clock = nullptr,
                                                         std::vector<std::string> warnings = {});

// Registers the provider "docker": NewDockerProvider, ValidateDockerTarget
// and ValidateDockerAgent (docker_target.h).
void RegisterDockerProvider(ProviderRegistry& registry);

}  // namespace reconcile::docker
