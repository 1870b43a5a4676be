// The Docker provider's Target block (spec.docker) and what it checks of the
// tree (provider.h: validate_target, validate_agent). Pure; thread-safe.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "reconcile/model.h"
#include "reconcile/provider.h"

namespace reconcile::docker {

// TLS to a tcp:// Docker host (the block's tls). File names are files under
// the engine's --secrets DIR (operator files, never paths of the tree);
// empty ones fall back to DOCKER_CERT_PATH, then the system CAs.
struct DockerTls {
  std::string ca_file;
  std::string cert_file;  // client certificate (with key_file)
  std::string key_file;
  std::string server_name;  // the name the certificate must carry; empty: the host
  bool verify = true;       // false: no verification, warned about on every use
  friend bool operator==(const DockerTls&, const DockerTls&) = default;
};

struct DockerTarget {
  std::string host = "unix:///var/run/docker.sock";
  std::string network;  // empty: the default bridge
  std::string publish_address = "127.0.0.1";
  std::optional<DockerTls> tls;  // set when the block is written
  friend bool operator==(const DockerTarget&, const DockerTarget&) = default;
};

// The block as the provider uses it (Target::settings, validated by
// ValidateDockerTarget): defaults for what is not written; values of the
// wrong type are ignored (validation reported them).
DockerTarget DockerTargetFromSettings(const nlohmann::json& settings);

// The block that DockerTargetFromSettings reads back as `docker` (tests,
// tools).
nlohmann::json DockerSettings(const DockerTarget& docker);

// The checks of spec.docker: host, network, publishAddress, tls (caFile,
// certFile, keyFile, verify, serverName), with the loader's messages.
ValidateTargetResponse ValidateDockerTarget(const ValidateTargetRequest& request);

// What an agent cannot do on its docker Target: secretFiles on a tcp://
// engine (they are bind-mounted from this machine), networks when the
// Target runs containers on network host or none. Reads request.model.
ValidateAgentResponse ValidateDockerAgent(const ValidateAgentRequest& request);

}  // namespace reconcile::docker
