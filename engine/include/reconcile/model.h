// The desired-state model: Agent, Registry and Target, as decoded from the
// YAML tree (see SPEC.md "Desired state" and schemas/*.schema.json).
//
// These are plain values. Decoding and validation live in loader.h; this
// header has no I/O. All durations are in milliseconds.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "reconcile/shared_json.h"

namespace reconcile {

// Where a resource was declared, for diagnostics.
struct SourceLocation {
  std::string file;  // relative to the tree root
  int line = 0;
  int column = 0;
  friend bool operator==(const SourceLocation&, const SourceLocation&) = default;
};

// How an agent is seen as healthy: an HTTP GET of `path` on `port` (kHttp,
// the default), a command run in the container by the provider's engine
// (kExec: `exec` is its argv), or a TCP connection to `port` (kTcp). The
// timings apply to all three.
struct HealthCheck {
  enum class Kind { kHttp, kExec, kTcp };
  Kind kind = Kind::kHttp;
  std::string path = "/health";   // kHttp only
  int port = 0;                   // kHttp: 0 is the agent's port; kTcp: the port (set)
  std::vector<std::string> exec;  // kExec only: non-empty
  std::int64_t interval_ms = 1000;
  std::int64_t timeout_ms = 2000;
  int retries = 30;
  std::int64_t start_period_ms = 0;
  friend bool operator==(const HealthCheck&, const HealthCheck&) = default;
};

struct Resources {
  std::string cpu;     // e.g. "0.5" (cores); empty: provider default
  std::string memory;  // e.g. "256Mi", "1Gi"; empty: provider default
  std::string gpus;    // "all" or a positive count ("2"); empty: none
  friend bool operator==(const Resources&, const Resources&) = default;
};

enum class StrategyType { kRecreate, kStartFirst };
struct Strategy {
  StrategyType type = StrategyType::kRecreate;
  bool auto_rollback = true;
  friend bool operator==(const Strategy&, const Strategy&) = default;
};

struct BuildSpec {
  std::string context;                      // relative to the manifest's folder
  std::string dockerfile = "Dockerfile";    // relative to context
  std::map<std::string, std::string> args;  // build args
  std::string version;                      // semantic version (tagStrategy semver)
  friend bool operator==(const BuildSpec&, const BuildSpec&) = default;
};

// A reference to a secret that is not in Git (never its value):
//  - kFile:  `name` is a file name under --secrets DIR ({file: NAME});
//  - kEnv:   `name` is an engine environment variable ({env: VAR});
//  - kAws:   AWS Secrets Manager ({aws: {secretId, key, versionStage,
//            versionId, region}}): `name` the SecretId (name or ARN), `key`
//            a field of a JSON SecretString (empty: the whole string),
//            `version_stage` / `version` the VersionStage / VersionId,
//            `region` (empty: the engine's AWS region);
//  - kVault: Vault / OpenBao KV v2 ({vault: {path, key, version, mount}}):
//            `mount` the KV v2 mount ("secret"), `name` the secret's path
//            inside it ("db"), `key` the field of its data (required),
//            `version` a version number ("" = the latest);
//  - kSops:  a SOPS-encrypted file of the tree ({sops: {file, key}}):
//            `name` its path relative to the tree root (written relative to
//            the manifest's folder; the loader resolves it), `key` the
//            value's path in it ("db.password", "hosts.0"; a dotenv key).
// A new source adds a Source, a case in SecretRefText / ParseSecretRefText
// and a SecretStore (secret_store.h).
struct SecretRef {
  enum class Source { kFile, kEnv, kAws, kVault, kSops };
  SecretRef() = default;
  SecretRef(Source s, std::string n, std::string k = "", std::string v = "", std::string stage = "",
            std::string r = "", std::string m = "")
      : source(s),
        name(std::move(n)),
        key(std::move(k)),
        version(std::move(v)),
        version_stage(std::move(stage)),
        region(std::move(r)),
        mount(std::move(m)) {}
  Source source = Source::kFile;
  std::string name;  // file name, env variable, AWS SecretId, Vault path or SOPS file
  std::string key;
  std::string version;
  std::string version_stage;
  std::string region;
  std::string mount;
  friend bool operator==(const SecretRef&, const SecretRef&) = default;
};

// The reference as one line of text, as it appears in a normalized spec,
// plans and messages (never a value): "file:NAME", "env:VAR",
// "aws:SECRET_ID?key=K&region=R&versionId=I&versionStage=S" (only the set
// parameters, in this order), "vault:MOUNT/PATH?key=K&version=N",
// "sops:PATH?key=K".
std::string SecretRefText(const SecretRef& ref);
// The inverse of SecretRefText; nullopt for text it does not write.
std::optional<SecretRef> ParseSecretRefText(const std::string& text);

enum class DriftMode { kReport, kHeal };

// spec.approval of an Environment or an Agent: `auto` (default) applies as
// planned; `required`: the controller publishes the plan and applies it only
// once a person approves exactly that plan (approval.h, README "Approvals").
enum class ApprovalMode { kAuto, kRequired };

// A deploy window (Environment spec.windows[], Agent spec.windows[]), like
// Argo CD's sync windows: from each time `schedule` (a 5-field cron
// expression) fires in `time_zone`, for `duration_ms`. Outside every allow
// window (when there is at least one), or inside any deny window, nothing is
// applied; plans are still made and reported. Evaluated by deploy_window.h.
struct DeployWindow {
  enum class Kind { kAllow, kDeny };
  Kind kind = Kind::kAllow;
  std::string schedule;           // "0 8 * * 1-5"
  std::int64_t duration_ms = 0;   // > 0
  std::string time_zone = "UTC";  // an IANA zone of the system tz database
  SourceLocation location;        // the window's map in the tree
  friend bool operator==(const DeployWindow&, const DeployWindow&) = default;
};

// A filesystem mounted into the agent's containers (spec.volumes[]).
//  - kVolume: a named volume that reconcile creates, labels and owns; it is
//    kept across replace, update, rollback and start-first rollouts, and by
//    prune and destroy unless reclaim is kDelete.
//  - kBind: a host path, allowed only below a path the operator allowed
//    (LoadLimits::allowed_bind_paths, `--allow-bind`).
//  - kTmpfs: memory-backed, gone with the container.
struct VolumeMount {
  enum class Type { kVolume, kBind, kTmpfs };
  enum class Reclaim { kRetain, kDelete };
  Type type = Type::kVolume;
  std::string source;  // volume name, or absolute host path; empty for tmpfs
  std::string target;  // absolute path in the container
  bool read_only = false;
  Reclaim reclaim = Reclaim::kRetain;  // kVolume only
  std::string size;                    // kTmpfs only, e.g. "64Mi"; empty: engine default
  friend bool operator==(const VolumeMount&, const VolumeMount&) = default;
};

// One more port the agent's containers publish (spec.ports[]), besides the
// main `port`: that one stays the agent's endpoint and health-check port and
// is published with `hostPort`.
struct PortMapping {
  int container_port = 0;
  std::string protocol = "tcp";  // tcp | udp
  std::string host_ip;           // empty: the Target's publishAddress
  int host_port = 0;             // 0: ephemeral
  // false: exposed on the agent's networks only, not bound on the host
  // (hostIP and hostPort are then not allowed).
  bool publish = true;
  friend bool operator==(const PortMapping&, const PortMapping&) = default;
};

// A user-defined network the agent's containers join (spec.networks[]).
// reconcile creates it (driver bridge, labelled as its own) when missing and
// refuses one that exists without its labels. On it the containers answer
// to the agent's name and to each alias (DNS).
struct NetworkAttachment {
  std::string name;
  std::vector<std::string> aliases;  // DNS labels, sorted and unique; not the agent's name
  friend bool operator==(const NetworkAttachment&, const NetworkAttachment&) = default;
};

// A secret mounted read-only as a file (spec.secretFiles.<NAME>): the value
// of `ref` (the same references as secretEnv), at `target` with `mode`.
struct SecretFile {
  SecretRef ref;
  std::string target;  // absolute path; default /run/secrets/<NAME>
  int mode = 0400;     // permission bits, at most 0777
  friend bool operator==(const SecretFile&, const SecretFile&) = default;
};

struct Agent {
  std::string name;
  std::map<std::string, std::string> labels;
  std::string image;  // set unless build is
  std::optional<BuildSpec> build;
  std::string registry;  // Registry name (required with build)
  std::string target;    // Target name
  int port = 0;
  int host_port = 0;  // Docker only; 0: ephemeral
  // false: the main port is exposed on the agent's networks only, not bound
  // on the host (no hostPort, no HTTP health check on it, no endpoint).
  bool publish = true;
  std::vector<PortMapping> ports;  // sorted by (container_port, protocol), unique
  std::vector<std::string> command;
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  std::map<std::string, SecretRef> secret_env;
  std::map<std::string, SecretFile> secret_files;  // by NAME; targets unique
  // Keyed fingerprints of the resolved secret values (secrets.h
  // SecretDigest), by secretEnv NAME and by "secretFiles.NAME" (the keys of
  // ApplyChangeRequest::secret_values). Not decoded from the tree: the
  // Reconciler sets them before planning, so that a changed value changes
  // the spec hash. Empty: the spec holds references only.
  std::map<std::string, std::string> secret_digests;
  std::vector<VolumeMount> volumes;         // sorted by target, targets unique
  std::vector<NetworkAttachment> networks;  // sorted by name, names unique
  int replicas = 1;
  // "no", "always", "unless-stopped", "on-failure" or "on-failure:N"; empty:
  // the provider's default (Docker: unless-stopped).
  std::string restart;
  // Container fields; each empty/unset one is the image's or the engine's
  // default and is left out of the normalized spec.
  std::string stop_signal;                           // "SIGINT", ...
  std::optional<std::int64_t> stop_grace_period_ms;  // whole seconds
  std::string user;                                  // "uid[:gid]" or a name
  std::vector<std::string> cap_add;                  // sorted, unique, without CAP_
  std::vector<std::string> cap_drop;                 // sorted, unique, without CAP_
  bool read_only_root_filesystem = false;
  // spec.labels: set on the containers together with metadata.labels (a key
  // in both has the same value); none under reconcile.dev/.
  std::map<std::string, std::string> container_labels;
  std::string hostname;  // a DNS label; empty: the agent's name
  Resources resources;
  std::optional<HealthCheck> health_check;
  Strategy strategy;
  std::vector<std::string> depends_on;
  bool suspend = false;
  DriftMode drift = DriftMode::kReport;
  // spec.windows: this agent's deploy windows; they combine with the
  // Environment's (both must allow). Not part of the agent's spec hash.
  std::vector<DeployWindow> windows;
  // spec.approval: its changes wait for an approval in the controller (as do
  // every agent's when its Environment says so). Not part of the spec hash.
  ApprovalMode approval = ApprovalMode::kAuto;

  SourceLocation location;
  std::string manifest_dir;  // folder of the manifest, relative to the tree root
  // Where single fields were written ("metadata.name", "spec.target",
  // "spec.registry", "spec.dependsOn", "spec.dependsOn.<name>",
  // "spec.build.context", "spec.volumes[<i>].reclaim", "spec.networks",
  // "spec.secretFiles"), so that
  // cross-document errors point at the field.
  std::map<std::string, SourceLocation> field_locations;
  // The planner's normalized spec of this agent (shared_json.h); not part of
  // its value. Copies start empty; the loader shares it with the decoded file.
  SpecMemo spec_memo;
};

enum class TagStrategy { kGitSha, kSemver, kTimestamp, kCustom };

struct Registry {
  std::string name;
  std::map<std::string, std::string> labels;
  std::string url;
  std::string repository;
  TagStrategy tag_strategy = TagStrategy::kGitSha;
  std::string custom_tag;
  std::string credentials_env_prefix;
  bool insecure = false;
  SourceLocation location;
  std::map<std::string, SourceLocation> field_locations;  // as Agent's
};

struct Target {
  std::string name;
  std::map<std::string, std::string> labels;
  std::string provider;  // a registered provider: docker, aws, gcp, azure, a plugin
  // The block spec.<provider> as written, YAML turned into JSON; an empty
  // object when absent. Its provider validated it (provider.h) and reads it.
  nlohmann::json settings = nlohmann::json::object();
  // Not from the tree: the engine's --secrets DIR, where the files a Target
  // names (docker.tls.*) are read. Set by the Reconciler before a provider
  // is made.
  std::string secrets_dir;
  // Not from the Target's document: the name of the Environment the tree was
  // made from (empty for a plain tree). Providers scope what they create by
  // it (ScopedName, kLabelEnvironment in observation.h) and observe only
  // what carries it.
  std::string environment;
  SourceLocation location;
  std::map<std::string, SourceLocation> field_locations;  // as Agent's
};

// An overlay (kind Environment) that makes dev, staging or prod out of base
// folders: their Agents, Registries and Targets, patched by the other
// documents of the Environment's folder, with environment-wide labels and
// env values, and deploy windows. See README "Environments and promotion".
struct Environment {
  std::string name;                           // metadata.name: a DNS-1123 label without "--"
  std::map<std::string, std::string> labels;  // metadata.labels
  std::string folder;              // the Environment's folder, relative to the tree root ("" root)
  std::vector<std::string> bases;  // spec.bases, normalized, relative to the tree root
  // spec.labels: added to metadata.labels of every resource (a resource's
  // own value for a key wins).
  std::map<std::string, std::string> common_labels;
  // spec.env: added to every Agent's env (an Agent's own value wins).
  std::map<std::string, std::string> env;
  std::vector<DeployWindow> windows;  // spec.windows
  // spec.healOutsideWindows: drift healing ignores the windows (default
  // false: healing is a change like any other and waits for a window).
  bool heal_outside_windows = false;
  // spec.approval: every change of the environment waits for an approval.
  ApprovalMode approval = ApprovalMode::kAuto;
  SourceLocation location;
  std::map<std::string, SourceLocation> field_locations;  // as Agent's
};

// Where the controller sends what its passes did (kind Notifier): a
// Slack-compatible incoming webhook, a signed generic webhook, or GitHub /
// GitLab commit statuses (and GitHub deployments). Not a resource the
// planner applies: `reconcile controller` reads the Notifiers of each pass's
// tree (controller/notify/). URLs and tokens are secret references only.
struct Notifier {
  enum class Type { kSlack, kWebhook, kGithub, kGitlab };
  std::string name;
  std::map<std::string, std::string> labels;
  Type type = Type::kSlack;
  // spec.events: of kNotifierEvents; default (absent) all of them. Sorted.
  std::vector<std::string> events;
  std::vector<std::string> agents;        // spec.agents: only these (empty: all); sorted
  std::vector<std::string> environments;  // spec.environments: only these (empty: all); sorted
  std::optional<SecretRef> url;           // slack, webhook: the endpoint (a secret)
  std::optional<SecretRef> secret;        // webhook: the HMAC-SHA256 key
  std::optional<SecretRef> token;         // github, gitlab: the API token
  std::string owner;                      // github
  std::string repo;                       // github
  bool deployments = false;               // github: also the Deployments API
  std::string project_id;                 // gitlab: numeric id or URL-encoded path
  std::string api_url;                    // github, gitlab: API base URL (defaulted)
  SourceLocation location;
  std::map<std::string, SourceLocation> field_locations;  // as Agent's
  friend bool operator==(const Notifier&, const Notifier&) = default;
};

// The events a Notifier may choose, in documented order.
inline constexpr const char* kNotifierEvents[] = {
    "applied", "failed", "unhealthy", "rolled-back", "drift", "invalid-revision", "blocked"};

const char* NotifierTypeName(Notifier::Type t);  // "slack", "webhook", "github", "gitlab"

// A whole desired-state tree. Vectors are sorted by name.
struct DesiredState {
  std::vector<Agent> agents;
  std::vector<Registry> registries;
  std::vector<Target> targets;
  std::vector<Notifier> notifiers;
  std::string revision;  // git sha, or "tree-<sha256 prefix>" of the files
  // Set when the tree was made from an Environment overlay.
  std::optional<Environment> environment;

  const Agent* FindAgent(const std::string& name) const;
  const Registry* FindRegistry(const std::string& name) const;
  const Target* FindTarget(const std::string& name) const;
};

const char* StrategyTypeName(StrategyType t);
const char* DriftModeName(DriftMode m);
const char* TagStrategyName(TagStrategy t);
const char* VolumeTypeName(VolumeMount::Type t);   // "volume", "bind", "tmpfs"
const char* ReclaimName(VolumeMount::Reclaim r);   // "retain", "delete"
const char* WindowKindName(DeployWindow::Kind k);  // "allow", "deny"

}  // namespace reconcile
