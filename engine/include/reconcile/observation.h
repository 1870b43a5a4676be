// Observation values: what a provider reports it saw (ObservedInstance,
// ObserveResponse), what it can update in place (ProviderSchema), and what an
// apply recorded (InstanceRecord). Plain values shared by the pure planner
// (core) and the provider interface (provider.h). No I/O.
#pragma once

#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reconcile/status.h"

namespace reconcile {

// Ownership labels every managed object carries (SPEC.md "Ownership").
inline constexpr const char* kLabelManagedBy = "reconcile.dev/managed-by";
inline constexpr const char* kLabelAgent = "reconcile.dev/agent";
inline constexpr const char* kLabelSpecHash = "reconcile.dev/spec-hash";
inline constexpr const char* kLabelRevision = "reconcile.dev/revision";
// On everything made for an Environment (Target::environment): its name.
// Objects without it belong to the plain tree (no environment).
inline constexpr const char* kLabelEnvironment = "reconcile.dev/environment";

// The name of what an environment's agent (or volume, network) is called at
// its provider: `name` for a plain tree, "<environment>--<name>" otherwise.
// Agent and Environment names never hold "--" (the loader refuses it), so
// two environments' names never collide.
inline std::string ScopedName(const std::string& environment, const std::string& name) {
  return environment.empty() ? name : environment + "--" + name;
}
inline constexpr const char* kManagedByValue = "reconcile";

// What a provider tells about itself (provider.h, Provider::Schema).
struct ProviderSchema {
  // Top-level field names of the normalized spec (spec.h) that ApplyChange
  // handles as an in-place update (used by PlanChangeFromSchema).
  std::set<std::string> updatable_fields;
  // true (Docker): one observed instance per replica, so N replicas are N
  // instances. false (a cloud service): one instance per agent serves all
  // its replicas, and scaling is the provider's business.
  bool instance_per_replica = true;
  // JSON Schema (draft 2020-12) of the Target's spec.<provider> block, for
  // documentation and editors; null when the provider publishes none.
  // Validation itself is ProviderDefinition::validate_target.
  nlohmann::json target_schema;
  friend bool operator==(const ProviderSchema&, const ProviderSchema&) = default;
};

// One running object the provider owns (a container, a cloud service).
struct ObservedInstance {
  std::string id;
  std::string name;
  std::string agent;      // value of reconcile.dev/agent
  std::string spec_hash;  // value of reconcile.dev/spec-hash
  std::string revision;   // value of reconcile.dev/revision
  std::string image;
  std::string state;     // provider's word: "running", "exited", "created", ...
  bool running = false;  // true when the provider considers it serving
  std::string endpoint;  // e.g. "http://127.0.0.1:49153"; empty if none
  // The provider's own health check, when it runs one (Docker: an exec
  // healthCheck): "starting", "healthy" or "unhealthy"; empty: none.
  std::string health;
  friend bool operator==(const ObservedInstance&, const ObservedInstance&) = default;
};

// Only objects carrying kLabelManagedBy=reconcile are returned; sorted by
// (agent, name).
struct ObserveResponse {
  Status status;
  std::vector<ObservedInstance> instances;
  // What the operator must hear about on every use (e.g. TLS verification
  // turned off); the engine emits each as an Event::Type::kWarning.
  std::vector<std::string> warnings;
};

// The image of an agent with build, as seen in its Registry before planning:
// the reference it gets (image_tag.h) and whether the registry holds it
// already (HEAD /v2/<repository>/manifests/<tag>).
struct ObservedImage {
  std::string reference;  // <url>/<repository>:<tag>
  std::string tag;
  bool exists = false;  // the registry has this tag: neither build nor push
  friend bool operator==(const ObservedImage&, const ObservedImage&) = default;
};

// The record of what an apply produced, kept in state.
struct InstanceRecord {
  std::string id;
  std::string name;
  std::string endpoint;
  // The image the instance really runs, by digest: "<repository>@sha256:<hex>"
  // when the image came from (or went to) a registry, else the engine's image
  // id "sha256:<hex>"; empty when the provider cannot tell.
  std::string image_digest;
  friend bool operator==(const InstanceRecord&, const InstanceRecord&) = default;
};

}  // namespace reconcile
