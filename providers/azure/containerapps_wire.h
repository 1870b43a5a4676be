// The Container Apps wire format: the Target's settings, the ARM paths, the
// ContainerApp body made from a normalized spec (spec.h) as
// docs/cloud-fields.md maps it, and the ObservedInstance read back from an
// app. Pure functions; thread-safe.
//
// Ownership tags. ARM tag names may not hold '/' (nor < > % & \ ?), so the
// labels of observation.h are written with '-' for '/':
//   reconcile.dev-managed-by = reconcile, reconcile.dev-agent = <agent>,
//   reconcile.dev-spec-hash = sha256:<hex>, reconcile.dev-revision = <rev>;
// and reconcile.dev-image = the image deployed (its "sha256:<hex>" when longer
// than a tag value's 256 characters), so that an image changed outside
// reconcile is seen: such an app is observed with spec hash kImageChanged
// (drift "modified"; the planner replaces it).
// Tag names are case-insensitive in ARM; they are read so.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reconcile/observation.h"
#include "reconcile/registry_credentials.h"
#include "reconcile/status.h"

namespace reconcile::azure {

inline constexpr const char* kApiVersion = "2025-07-01";
inline constexpr const char* kDefaultEndpoint = "https://management.azure.com";
inline constexpr const char* kTagManagedBy = "reconcile.dev-managed-by";
inline constexpr const char* kTagAgent = "reconcile.dev-agent";
inline constexpr const char* kTagSpecHash = "reconcile.dev-spec-hash";
inline constexpr const char* kTagRevision = "reconcile.dev-revision";
inline constexpr const char* kTagImage = "reconcile.dev-image";
// kLabelEnvironment as a tag ('/' cannot be in an ARM tag name).
inline constexpr const char* kTagEnvironment = "reconcile.dev-environment";
inline constexpr const char* kImageChanged = "image-changed-outside-reconcile";
// The ARM limit of tags per resource, and how many are left for labels.
inline constexpr int kMaxTags = 50;
inline constexpr int kMaxLabelTags = kMaxTags - 6;

// The container app of `agent` in `environment` (Target::environment):
// "<environment>-<agent>", or the agent's name for a plain tree. Not
// ScopedName's "--": Container App names cannot hold "--". Two pairs that
// make one name ("a-b" + "c", "a" + "b-c") are told apart by the
// kTagEnvironment and kTagAgent tags: the second is a conflict, never touched.
std::string AppName(const std::string& environment, const std::string& agent);

// The Target's spec.azure block, decoded.
struct Settings {
  std::string subscription_id;
  std::string resource_group;
  std::string environment;  // a name in the resource group, or a full resource id
  std::string location;
  nlohmann::json cpu;     // null when not set
  nlohmann::json memory;  // null when not set
  std::optional<int> min_replicas;
  std::optional<int> max_replicas;
  std::string endpoint;       // without a trailing '/'; the default when not set
  std::string auth_endpoint;  // "" when not set

  // /subscriptions/S/resourceGroups/RG/providers/Microsoft.App/managedEnvironments/E
  std::string EnvironmentId() const;
  // <endpoint>/subscriptions/S/resourceGroups/RG/providers/Microsoft.App/containerApps[/NAME]?api-version=...
  std::string AppsUrl() const;
  std::string AppUrl(const std::string& name) const;
};

// kInvalid naming the field when a required one is missing or mistyped
// (the loader has validated the block; this guards the factory).
Result<Settings> SettingsFromJson(const nlohmann::json& block);

// The secret names (configuration.secrets[].name: lower case letters,
// digits and '-') reconcile derives for spec.secretEnv.VAR and
// spec.secretFiles.NAME: "env-<var>-<8 hex>", "file-<name>-<8 hex>".
std::string SecretNameForEnv(const std::string& variable);
std::string SecretNameForFile(const std::string& name);

// The cores of a cpu value ("0.5", "500m", 2, "2"); nullopt when it is none.
std::optional<double> CpuCores(const nlohmann::json& value);

struct AppInput {
  std::string agent;        // the agent's own name (container name, kTagAgent)
  std::string environment;  // kTagEnvironment when not empty
  nlohmann::json spec;      // the normalized spec
  std::string spec_hash;
  std::string revision;
  const std::map<std::string, std::string>* secret_values = nullptr;
  const std::optional<RegistryCredentials>* pull_credentials = nullptr;
  // Ingress traffic: empty: all to the latest revision; else all to this one
  // (while a new revision gets ready).
  std::string pinned_revision;
};

// The ContainerApp PUT body. kInvalid when a secret's value was not given
// (naming the field, never a value).
Result<nlohmann::json> BuildApp(const Settings& settings, const AppInput& input);

// The tag `key` of an app (case-insensitive name), "" when absent.
std::string TagOf(const nlohmann::json& app, const std::string& key);
// managed-by = reconcile.
bool IsOwned(const nlohmann::json& app);
// The app's managedEnvironmentId (or environmentId) equals `environment_id`
// (case-insensitive, as ARM ids are).
bool InEnvironment(const nlohmann::json& app, const std::string& environment_id);
// properties.<key> as a string, "" when absent or not a string.
std::string PropertyOf(const nlohmann::json& app, const char* key);
// True when the app's container has a startup probe.
bool HasProbe(const nlohmann::json& app);

// The instance an app is: id, name, agent / spec-hash / revision tags, the
// container image, state (runningStatus, or provisioningState while not
// Succeeded, lower case), running, endpoint (https://<ingress.fqdn> when the
// ingress is external), health (with a probe: "healthy" when the latest
// revision is the ready one, "starting" while provisioning, "unhealthy"
// after a failure; "" without a probe). Tolerates any JSON.
ObservedInstance ObservedFromApp(const nlohmann::json& app);

// The value of kTagImage for `image`.
std::string ImageTagValue(const std::string& image);

}  // namespace reconcile::azure
