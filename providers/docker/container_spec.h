// ContainerSpec: the Docker reading of an agent's normalized spec (spec.h),
// and the pure translations between it and Docker Engine API bodies: the
// create body, and ObservedInstances from a container list. No I/O; all
// functions are thread-safe. Bad input yields kInvalid, never an exception.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reconcile/model.h"
#include "reconcile/observation.h"
#include "reconcile/status.h"

namespace reconcile::docker {

// Label holding the container port the agent listens on, so that Observe can
// find its published port.
inline constexpr const char* kLabelPort = "reconcile.dev/port";

// Label on volumes naming the volume as the agent wrote it (reconcile.dev/
// managed-by and reconcile.dev/agent, the agent that created it, are set too).
inline constexpr const char* kLabelVolume = "reconcile.dev/volume";

// Label on networks naming the network as agents write it (besides
// reconcile.dev/managed-by). A network is shared by the agents that list it,
// so it names no agent.
inline constexpr const char* kLabelNetwork = "reconcile.dev/network";

// One entry of spec.networks (keyed by name in the normalized spec).
struct Network {
  std::string name;
  std::vector<std::string> aliases;  // besides the agent's name
  friend bool operator==(const Network&, const Network&) = default;
};

// One entry of spec.secretFiles: the file NAME in the agent's secret folder
// on the host, bind-mounted read-only at `target`.
struct SecretFileMount {
  std::string name;
  std::string target;
  int mode = 0400;
  friend bool operator==(const SecretFileMount&, const SecretFileMount&) = default;
};

// One entry of spec.volumes (keyed by target in the normalized spec).
struct Mount {
  std::string type;    // "volume", "bind" or "tmpfs"
  std::string source;  // volume name or host path; empty for tmpfs
  std::string target;
  bool read_only = false;
  bool reclaim_delete = false;   // volume: delete it with the agent
  std::int64_t tmpfs_bytes = 0;  // tmpfs: 0 is the engine default
  friend bool operator==(const Mount&, const Mount&) = default;
};

// One entry of spec.ports (keyed by "<port>/<protocol>" in the normalized spec).
struct ExtraPort {
  int container_port = 0;
  std::string protocol = "tcp";
  std::string host_ip;  // empty: CreateContext::publish_address
  int host_port = 0;    // 0: ephemeral
  bool publish = true;  // false: exposed only, no host binding
  friend bool operator==(const ExtraPort&, const ExtraPort&) = default;
};

struct ContainerSpec {
  std::string image;
  int port = 0;
  int host_port = 0;                          // 0: ephemeral
  bool publish = true;                        // false: the main port has no host binding
  std::vector<ExtraPort> ports;               // more ports, sorted by (port, protocol)
  std::vector<Network> networks;              // sorted by name
  std::vector<SecretFileMount> secret_files;  // sorted by name
  std::vector<std::string> command;           // -> Entrypoint
  std::vector<std::string> args;              // -> Cmd
  std::map<std::string, std::string> env;
  std::vector<std::string> secret_env;  // names whose values come with the request
  std::map<std::string, std::string> labels;
  std::vector<Mount> mounts;  // sorted by target
  int replicas = 1;
  std::string restart = "unless-stopped";   // RestartPolicy.Name
  int restart_retries = 0;                  // on-failure:N
  std::int64_t nano_cpus = 0;               // 0: engine default
  std::int64_t memory_bytes = 0;            // 0: engine default
  std::optional<HealthCheck> health_check;  // kExec runs as the engine's Healthcheck
  StrategyType strategy = StrategyType::kRecreate;
  std::string stop_signal;            // StopSignal; empty: the image's
  std::optional<int> stop_timeout;    // StopTimeout, seconds; unset: the engine's (10s)
  std::string user;                   // User; empty: the image's
  std::vector<std::string> cap_add;   // HostConfig.CapAdd
  std::vector<std::string> cap_drop;  // HostConfig.CapDrop
  bool read_only_rootfs = false;      // HostConfig.ReadonlyRootfs
  std::string hostname;               // Hostname; empty: the agent's name
  int gpus = 0;                       // DeviceRequests count: 0 none, -1 all
};

// Reads the normalized spec (keys image, port, hostPort, publish, ports, command,
// args, env, secretEnv, secretFiles, volumes, networks, replicas, restart, resources,
// healthCheck, strategy, labels, stopSignal, stopGracePeriod, user, capAdd, capDrop,
// readOnlyRootFilesystem, hostname). Durations
// may be numbers (milliseconds) or strings ("200ms", "2s", "1m").
Result<ContainerSpec> ContainerSpecFromJson(const nlohmann::json& spec);

// "256Mi", "1Gi", "512M", "1.5G", "1000" -> bytes. kInvalid otherwise.
Result<std::int64_t> ParseMemoryBytes(const std::string& s);
// As ParseMemoryBytes with another minimum (tmpfs sizes: 1 byte).
Result<std::int64_t> ParseSizeBytes(const std::string& s, std::int64_t minimum);
// "0.5", "2", "500m" -> nano CPUs. kInvalid otherwise (and for <= 0).
Result<std::int64_t> ParseNanoCpus(const std::string& s);
// "200ms", "2s", "1m", "1h" (spec.h ParseDuration, at most 24h) -> milliseconds.
Result<std::int64_t> ParseDurationMs(const std::string& s);

// Container name of replica `index`: "<agent>" for 0, "<agent>-<index>" after.
// For an environment's agent, `agent` is ScopedName(environment, agent).
std::string ContainerName(const std::string& agent, int index);

// Renames what reconcile creates for the spec to its environment's names
// (ScopedName): every agent network and every named volume (type volume with
// a source). No-op for a plain tree (empty environment).
void ScopeResourceNames(ContainerSpec* spec, const std::string& environment);

// The environment an inspected object's labels say it belongs to
// (kLabelEnvironment; "" when absent: the plain tree).
std::string EnvironmentOf(const nlohmann::json& labels);

struct CreateContext {
  std::string agent;  // the agent's own name (label, hostname, DNS alias)
  std::string spec_hash;
  std::string revision;
  std::string publish_address = "127.0.0.1";
  std::string network;  // the Target's docker.network; empty: none (see BuildCreateBody)
  // Host folder of the agent's secret files (one file per NAME), bind-mounted
  // read-only; needed when the spec has secretFiles.
  std::string secret_files_dir = {};
  std::string environment = {};  // Target::environment: kLabelEnvironment when not empty
};

// The body of POST /containers/create. `secret_values` (name -> value) are
// added to Env; the body therefore must never be logged. kInvalid when a
// secretEnv name has no value, or secretFiles have no secret_files_dir.
//
// Networks: with the Target's network, the container starts on it
// (NetworkMode, as before networks existed) and joins every agent network
// afterwards (NetworksToConnect); without it, it starts on its first agent
// network (NetworkingConfig, with the agent's name and aliases as DNS
// aliases) and joins the others afterwards; with neither, the default bridge.
// Unpublished ports (publish: false) are exposed without a host binding.
Result<nlohmann::json> BuildCreateBody(const ContainerSpec& spec, const CreateContext& context,
                                       const std::map<std::string, std::string>& secret_values);

// The body of POST /volumes/create for the named volume `name` of `agent`
// (labelled kLabelEnvironment=environment when not empty).
nlohmann::json BuildVolumeBody(const std::string& name, const std::string& agent,
                               const std::string& environment = "");

// The agent networks a container created from BuildCreateBody(spec,
// context) must join (POST /networks/{id}/connect) before it starts.
std::vector<Network> NetworksToConnect(const ContainerSpec& spec, const CreateContext& context);

// The body of POST /networks/create for the owned network `name` (driver
// bridge, labelled managed-by, kLabelNetwork and, when not empty,
// kLabelEnvironment).
nlohmann::json BuildNetworkBody(const std::string& name, const std::string& environment = "");

// The body of POST /networks/{id}/connect attaching `container` with the
// DNS aliases `agent` and network.aliases.
nlohmann::json BuildConnectBody(const std::string& container, const Network& network,
                                const std::string& agent);

// Maps a GET /containers/json answer to instances (only those carrying
// managed-by=reconcile and whose kLabelEnvironment equals `environment`,
// absent meaning ""), sorted by (agent, name).
Result<std::vector<ObservedInstance>> ParseContainerList(const nlohmann::json& list,
                                                         const std::string& publish_address,
                                                         const std::string& environment = "");

// The digest of the image `reference` from its GET /images/{name}/json
// answer: `reference` itself when it names a digest ("repo@sha256:..."), else
// the RepoDigests entry of the reference's repository ("<repository>@sha256:
// <hex>", set by a pull or a push), else the image id ("sha256:<hex>"); empty
// when the answer holds none of these.
std::string ImageDigestOf(const nlohmann::json& image_inspect, const std::string& reference);

// "http://<address>:<port>" (IPv6 addresses bracketed).
std::string EndpointUrl(const std::string& address, int port);

}  // namespace reconcile::docker
