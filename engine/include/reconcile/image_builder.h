// ImageBuilder and RegistryClient: the side effects of agents with build,
// behind interfaces (STYLE.md 4). The Docker provider implements
// ImageBuilder (POST /build, POST /images/{name}/push on the agent's Docker
// Engine); providers/registry implements RegistryClient (the registry's
// HTTP API v2). The program wires both into BuildServices; tests use fakes.
//
// Requests may hold credentials (RegistryCredentials): implementations never
// put them in a Status, a log or a progress line.
//
// Thread-safety: implementations must allow concurrent calls (the applier
// builds several agents at once).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "reconcile/build_context.h"
#include "reconcile/model.h"
#include "reconcile/provider.h"
#include "reconcile/registry_credentials.h"
#include "reconcile/status.h"

namespace reconcile {

struct BuildImageRequest {
  std::string reference;  // tag the result with this (repo:tag)
  // The context, a tar (build_context.h), streamed: sent while it is read.
  std::shared_ptr<ContextTarStream> context;
  std::string dockerfile;  // path inside the context
  std::map<std::string, std::string> args;
  std::map<std::string, std::string> labels;  // ownership labels of the image
  // Registries the Dockerfile's FROM may pull from.
  std::vector<RegistryCredentials> pull_credentials;
  ProgressFn progress;  // optional: build output lines
  std::stop_token stop;
  // The W3C `traceparent` of the image change (ApplyChangeRequest::
  // traceparent), sent on the build's requests; "" for none.
  std::string traceparent;
};

struct BuildImageResponse {
  Status status;  // kInvalid for a failing Dockerfile (not retried)
  std::string image_id;
};

struct PushImageRequest {
  std::string reference;
  std::optional<RegistryCredentials> credentials;
  ProgressFn progress;
  std::stop_token stop;
  std::string traceparent;  // as BuildImageRequest::traceparent
};

struct PushImageResponse {
  Status status;
  std::string digest;  // "sha256:..." when the engine reports it
};

class ImageBuilder {
 public:
  virtual ~ImageBuilder() = default;
  virtual BuildImageResponse Build(const BuildImageRequest& request) = 0;
  virtual PushImageResponse Push(const PushImageRequest& request) = 0;
};

// Asks a registry whether it holds a tag.
class RegistryClient {
 public:
  virtual ~RegistryClient() = default;
  // HEAD /v2/<registry.repository>/manifests/<tag>, following the Basic and
  // Bearer-token challenges with `credentials`. true: present; false: 404.
  // kInvalid naming the registry (and the credential variables) when the
  // credentials are missing or refused; kUnavailable when unreachable or 5xx.
  virtual Result<bool> HasTag(const Registry& registry, const std::string& tag,
                              const std::optional<RegistryCredentials>& credentials) = 0;
};

using ImageBuilderFactory = std::function<Result<std::unique_ptr<ImageBuilder>>(const Target&)>;

// What the Reconciler needs for agents with build. Without it (null in
// ReconcilerDeps), a tree with build agents is refused at Observe.
struct BuildServices {
  ImageBuilderFactory builder_for;     // the builder of a Target (its engine)
  RegistryClient* registry = nullptr;  // not owned
  BuildContextLimits limits;
};

}  // namespace reconcile
