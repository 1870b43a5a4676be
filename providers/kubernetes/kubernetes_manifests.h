// What the Kubernetes provider applies for one agent, and how it reads what
// runs back (issue #10 item 4):
//
//  - DeploymentManifest / ServiceManifest / SecretManifest: the apply
//    configurations (server-side apply bodies) built from the normalized spec
//    (spec.h). Every object carries the ownership labels (OwnerLabels); the
//    Deployment also carries the spec hash, revision and the normalized spec
//    itself as annotations, so that Observe can rebuild what reconcile applied.
//  - ManagedFieldDrift: the field-level comparison of a live object with the
//    apply configuration, through the object's metadata.managedFields.
//  - DeploymentHealth, ServiceAddress: health from the Deployment's status
//    and the address `status` shows.
//
// Secrets: SecretManifest is the only place a secret value is put, as base64
// `data`; the Deployment references it by secretKeyRef / a secret volume.
// Pure functions; thread-safe.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "reconcile/status.h"

namespace reconcile::kubernetes {

inline constexpr const char* kFieldManager = "reconcile";
inline constexpr const char* kLabelTarget = "reconcile.dev/target";
inline constexpr const char* kAnnotationSpec = "reconcile.dev/spec";
inline constexpr const char* kLabelAppName = "app.kubernetes.io/name";
inline constexpr const char* kLabelAppManagedBy = "app.kubernetes.io/managed-by";

struct ManifestContext {
  std::string agent;  // the agent's own name (reconcile.dev/agent, the container's name)
  std::string target;
  std::string namespace_name;
  std::string spec_hash;  // "sha256:<hex>"
  std::string revision;
  std::string environment = {};  // Target::environment: reconcile.dev/environment when set
};

// The name of the agent's Deployment and Service: ScopedName(environment,
// agent). Also their app.kubernetes.io/name, so that a plain tree's Service
// never selects an environment's pods in the same namespace.
std::string ObjectName(const ManifestContext& context);

// The labels every object reconcile creates carries: reconcile.dev/
// managed-by, /agent, /target, /spec-hash ("sha256-<56 hex>": a label value
// holds no ':' and at most 63 characters; the full hash is the annotation),
// app.kubernetes.io/name and app.kubernetes.io/managed-by.
nlohmann::json OwnerLabels(const ManifestContext& context);
// The label selector of what Observe lists for `target`.
std::string OwnerSelector(const std::string& target);
// True when `object` carries reconcile.dev/managed-by=reconcile,
// reconcile.dev/agent=`agent` and reconcile.dev/environment=`environment`
// (absent for the plain tree, "").
bool IsOwned(const nlohmann::json& object, const std::string& agent,
             const std::string& environment = "");

// The name of the agent's Secret: "<agent>.secrets" (a Secret name may hold
// a dot, an agent's name may not, so it never meets another agent's objects).
std::string SecretName(const std::string& agent);

nlohmann::json DeploymentManifest(const nlohmann::json& spec, const ManifestContext& context);
// nullopt when the agent has no port.
std::optional<nlohmann::json> ServiceManifest(const nlohmann::json& spec,
                                              const ManifestContext& context);
// nullopt when the agent has no secretEnv and no secretFiles. kInvalid
// (naming the variable or file, never a value) when a value is missing from
// `secret_values` (keyed as ApplyChangeRequest::secret_values).
Result<std::optional<nlohmann::json>> SecretManifest(
    const nlohmann::json& spec, const ManifestContext& context,
    const std::map<std::string, std::string>& secret_values);

// The leaf fields of an apply configuration, in the form ManagedFieldDrift
// reports them ("spec.replicas", "spec.template.spec.containers[name=web].
// env[name=A].value"), with their values. Lists Kubernetes merges by key
// (containers, env, ports, volumes, volumeMounts) are walked item by item;
// other lists are one leaf.
std::map<std::string, nlohmann::json> DesiredLeaves(const nlohmann::json& manifest);
// The leaf fields one managedFields entry's fieldsV1 owns, in the same form.
std::vector<std::string> FieldsV1Leaves(const nlohmann::json& fields_v1);

// What differs between the apply configuration `desired` and the live object
// for `manager`: each leaf of `desired` that `manager` no longer owns
// (another manager took it: "spec.replicas: now managed by kubectl-patch
// (3; reconcile applies 1)"), or whose live value differs. Sorted; empty
// when the live object is as reconcile applied it. Quantities (cpu, memory,
// sizeLimit) are compared by ownership only (the server rewrites them).
std::vector<std::string> ManagedFieldDrift(const nlohmann::json& desired,
                                           const nlohmann::json& live, std::string_view manager);

struct RolloutHealth {
  std::string health;  // "healthy", "starting" or "unhealthy"
  std::string message;
};
// From status: observedGeneration >= generation, updatedReplicas and
// availableReplicas == spec.replicas and no older replica left; unhealthy
// when the Progressing condition says ProgressDeadlineExceeded.
RolloutHealth DeploymentHealth(const nlohmann::json& deployment);

// "name.namespace.svc:port (clusterIP 10.0.0.1)"; "" without ports.
std::string ServiceAddress(const nlohmann::json& service);

}  // namespace reconcile::kubernetes
