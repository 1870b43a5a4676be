// The Kubernetes provider's inputs (issue #10 item 4): the Target's
// spec.kubernetes block {kubeconfig, inCluster, context, namespace}, its JSON
// Schema, and the Agent fields a Deployment cannot carry
// (docs/cloud-fields.md, "Kubernetes" column).
//
// Pure functions: no I/O, no clock; thread-safe.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "reconcile/provider.h"
#include "reconcile/status.h"

namespace reconcile::kubernetes {

// The block, decoded. kubeconfig and in_cluster are exclusive; neither:
// client-go's loading rules (kube_client.h, LoadConfig).
struct KubernetesSettings {
  std::string kubeconfig;  // a path; "" = the rules
  bool in_cluster = false;
  std::string context;         // "" = the kubeconfig's current-context
  std::string namespace_name;  // "" = the context's, else "default"
  friend bool operator==(const KubernetesSettings&, const KubernetesSettings&) = default;
};

// The checks of spec.kubernetes: unknown keys, types, kubeconfig XOR
// inCluster: true, context with inCluster refused, namespace a DNS-1123
// label. Diagnostics name "spec.kubernetes.<field>".
ValidateTargetResponse ValidateKubernetesTarget(const ValidateTargetRequest& request);

// kInvalid (naming the fields) when ValidateKubernetesTarget finds an error.
Result<KubernetesSettings> DecodeKubernetesSettings(const std::string& target,
                                                    const nlohmann::json& config);

// JSON Schema (draft 2020-12) of spec.kubernetes: schemas/target.schema.json's
// block (embedded).
nlohmann::json KubernetesTargetSchema();

// The normalized spec (spec.h) of one agent on a Kubernetes Target: one error
// per field a Deployment cannot carry, named as the Agent's field
// ("spec.networks", "spec.volumes[0]", "spec.healthCheck.interval"), and
// metadata.name when it cannot name a Service (a DNS-1035 label).
ValidateAgentResponse ValidateKubernetesAgent(const ValidateAgentRequest& request);

// True for a DNS-1123 label (namespace, Secret key parts): ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$,
// at most 63 characters.
bool IsDns1123Label(const std::string& s);
// True for a DNS-1035 label (Service names): as above, starting with a letter.
bool IsDns1035Label(const std::string& s);
// True for a label key ([prefix/]name) and a label value as Kubernetes
// validates them.
bool IsLabelKey(const std::string& s);
bool IsLabelValue(const std::string& s);
// Whole seconds of a normalized duration ("10s", "2m"); nullopt otherwise.
std::optional<long long> WholeSeconds(const std::string& duration);

}  // namespace reconcile::kubernetes
