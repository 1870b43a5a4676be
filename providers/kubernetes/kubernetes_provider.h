// The Kubernetes provider (issue #10 item 4, `provider: kubernetes`): runs
// each agent as a Deployment (apps/v1) and, when it has ports, a ClusterIP
// Service (v1) named after the agent, plus a Secret "<agent>.secrets" when it
// has secretEnv / secretFiles, in the Target's namespace.
//
//   - Connection: spec.kubernetes.kubeconfig, or inCluster: true, else
//     client-go's rules (kube_client.h, LoadConfig); namespace: the block's,
//     else the context's, else "default". Read on the first call (no I/O at
//     creation).
//   - Apply: server-side apply (PATCH application/apply-patch+yaml) under the
//     field manager "reconcile" (kubernetes_manifests.h). A create applies
//     without force, so that a field someone else set on an object of that
//     name is a conflict that the operator sees; an update, a replace and a
//     heal (a replace planned because of drift) apply with force=true and
//     take the fields back, as Argo CD (--force-conflicts) and Flux
//     (ForceOwnership) do: the plan the operator approved says what these
//     fields must be. An object of the agent's name without the ownership
//     labels is never touched (kConflict).
//   - Then the apply waits for the rollout (DeploymentHealth) until it is
//     healthy, unhealthy, RolloutTimeout passes (kUnavailable) or it is
//     stopped (kCancelled).
//   - Observe lists the namespace's Deployments and Services with the
//     owner selector (OwnerSelector). Each Deployment is one instance; its
//     spec hash is the annotation, with " (changed outside reconcile: ...)"
//     appended when ManagedFieldDrift finds a field reconcile applied that
//     another manager took or that differs, so drift reports it and a plan
//     replaces (re-applies with force) the agent.
//   - Delete removes (propagationPolicy Background) the Deployment, Service
//     and Secret of the agent that carry the ownership labels; one that does
//     not is left alone with a warning.
//
// Secrets: tokens and ApplyChangeRequest::secret_values never appear in a
// Status, warning, progress line or observed instance.
//
// Thread-safety: Observe, PlanChange and ApplyChange may run concurrently;
// Stop from any thread.
#pragma once

#include <chrono>
#include <memory>

#include "kubernetes/kube_client.h"
#include "reconcile/model.h"
#include "reconcile/provider.h"
#include "reconcile/status.h"

namespace reconcile::kubernetes {

struct KubernetesOptions {
  // The API client; nullptr: made on the first call from the Target's block
  // (kube::LoadConfig / InClusterConfig, kube::MakeClient).
  std::shared_ptr<kube::Client> client;
  // Between two reads of a Deployment while waiting for its rollout.
  std::chrono::milliseconds poll_interval{500};
  // A rollout not done after this long fails the change (kUnavailable).
  std::chrono::milliseconds rollout_timeout{std::chrono::minutes(10)};
  // The folder of the service-account files for inCluster: true.
  std::string in_cluster_root = "/var/run/secrets/kubernetes.io/serviceaccount";
};

// The provider for `target` (provider: kubernetes). kInvalid when its
// spec.kubernetes block is not valid.
Result<std::unique_ptr<Provider>> NewKubernetesProvider(const Target& target,
                                                        KubernetesOptions options = {});

// The definition registered as "kubernetes": NewKubernetesProvider,
// ValidateKubernetesTarget, ValidateKubernetesAgent (kubernetes_target.h).
ProviderDefinition KubernetesProviderDefinition();

// Registers KubernetesProviderDefinition() under "kubernetes".
void RegisterKubernetesProvider(ProviderRegistry& registry);

}  // namespace reconcile::kubernetes
