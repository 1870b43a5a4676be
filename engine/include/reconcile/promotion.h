// Promotion (`reconcile promote --from ENV --to ENV`): the decisions, made
// as pure functions of what the CLI gathered (the source environment's
// state, history, drift and observation; the target environment's files),
// and the file they produce: <target environment folder>/promoted.yaml, one
// patch per promoted agent that sets spec.image to the digest the source
// runs (and build: null when the agent builds). No I/O; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "reconcile/drift.h"
#include "reconcile/loader.h"
#include "reconcile/observation.h"
#include "reconcile/state.h"
#include "reconcile/status.h"

namespace reconcile {

// The file promote owns in the target environment's folder.
inline constexpr const char* kPromotedFile = "promoted.yaml";
inline constexpr const char* kPromotedHeader = "# Written by reconcile promote";

// One patch of promoted.yaml.
struct PromotedImage {
  std::string agent;
  std::string image;         // "<repository>@sha256:<hex>"
  bool clear_build = false;  // the patch sets build: null
  friend bool operator==(const PromotedImage&, const PromotedImage&) = default;
};

// Reads a promoted.yaml (`file` names it in errors). Only what
// RenderPromoted writes is accepted: Agent patches with metadata.name,
// spec.image and optionally build: null. kInvalid naming file:line and the
// field otherwise (the file is rewritten whole: other patches belong in
// another file of the environment).
Result<std::vector<PromotedImage>> ParsePromoted(const std::string& file,
                                                 const std::string& content);

// The content of promoted.yaml for `images` (sorted by agent): the header
// line, a comment naming where they came from, and one document each.
std::string RenderPromoted(const std::vector<PromotedImage>& images, const std::string& from,
                           const std::string& revision);

// An Environment document found in a tree: its name and folder.
struct EnvironmentFolder {
  std::string name;
  std::string folder;  // relative to the tree root, '/'-separated ("" the root)
  std::string file;    // the file holding it
};
// Every `kind: Environment` document of `files` (top-level fields only; the
// loader validates the rest), sorted by name.
std::vector<EnvironmentFolder> ListEnvironmentFolders(const std::vector<TreeFile>& files);

// Where a patch of an environment sets an agent's spec.image.
struct ImagePatch {
  std::string agent;
  std::string file;  // relative to the tree root
  int line = 0;
};
// The Agent patches among `files` (the environment folder `folder` and below
// it, except sub-folders holding their own Environment, and except
// promoted.yaml) that set spec.image.
std::vector<ImagePatch> FindImagePatches(const std::vector<TreeFile>& files,
                                         const std::string& folder);

// An agent of the source environment, as the CLI saw it.
struct PromotionAgent {
  std::string name;
  bool builds = false;       // the desired agent has spec.build
  bool recorded = false;     // the state records it
  std::string image_digest;  // ResourceState::image_digest
  std::string health;        // recorded health, or the engine's check when it runs one
  int running = 0;           // observed instances that serve
  int instances = 0;         // observed instances
};

struct PromotionInput {
  std::string from, to;
  // The source tree as it is now: its revision and content digest.
  std::string desired_revision;
  std::string desired_content_digest;
  // Whether a plan of the source's tree now has changes. A tree whose
  // revision moved without changing anything that runs (a comment, a file
  // of another environment) is at its desired revision all the same.
  bool plan_has_changes = true;
  State state;  // the source's recorded state
  std::optional<HistoryEntry> last;
  std::vector<DriftItem> drift;
  std::vector<PromotionAgent> agents;     // every agent of the source tree
  std::vector<std::string> requested;     // --agent; empty: all
  std::vector<PromotedImage> existing;    // the target's promoted.yaml now
  std::vector<ImagePatch> image_patches;  // FindImagePatches of the target
};

struct PromotionDecision {
  // One line each; non-empty: refuse, write nothing.
  std::vector<std::string> refusals;
  std::vector<PromotedImage> promoted;  // what this promotion sets, by agent
  std::vector<PromotedImage> file;      // the whole new promoted.yaml
};

// Refuses when the source's last pass did not succeed, it is not at its
// desired revision, a promoted agent is unknown, unrecorded, not running,
// unhealthy, drifted, has no registry digest, or another patch of the target
// sets its spec.image.
PromotionDecision DecidePromotion(const PromotionInput& in);

}  // namespace reconcile
