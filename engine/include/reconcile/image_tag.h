// Image tags and references of agents built from a context (Agent.build).
//
// A built agent runs <registry.url>/<registry.repository>:<tag>; the tag is
// chosen by the Registry's tagStrategy from facts about the source revision
// (TagFacts), so that the same revision always gives the same tag:
//   git-sha    the commit's short id (12 hex digits); for a folder source
//              "tree-" + 12 hex digits of the build context's digest
//   semver     spec.build.version, else the highest Git tag vX.Y.Z (or
//              X.Y.Z) on the commit; "+build" becomes "_build" (Docker tags
//              allow no '+')
//   timestamp  the commit time in UTC as YYYYMMDDTHHMMSSZ; for a folder
//              source the newest modification time in the build context
//   custom     Registry.customTag, a template over the variables
//              {sha} {fullSha} {timestamp} {version} {agent}
//              (each as above; {fullSha} is the whole revision)
// A tag is 1..128 characters of [A-Za-z0-9_.-] and does not start with '.'
// or '-'.
//
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "reconcile/model.h"
#include "reconcile/status.h"

namespace reconcile {

// What a tag may be computed from. Gathered by the Reconciler before
// planning (reading the build context is I/O; this header is not).
struct TagFacts {
  std::string revision;               // full commit id, or "tree-..." for a folder
  std::string commit_time;            // RFC 3339 UTC; empty for a folder source
  std::vector<std::string> git_tags;  // tag names on the commit (Git sources)
  std::string context_digest;         // hex SHA-256 of the build context (folder sources)
  std::string context_mtime;          // RFC 3339 UTC, newest file of the context (folder)
  bool git = false;                   // the revision is a Git commit
};

// The tag of `agent` (which must have build) in `registry`. kInvalid, naming
// the agent and the field, when the strategy lacks what it needs (semver
// without a version or a Git tag; a template giving an invalid tag).
Result<std::string> ImageTag(const Agent& agent, const Registry& registry, const TagFacts& facts);

// <url>/<repository>:<tag> (url omitted when empty).
std::string ImageReference(const Registry& registry, const std::string& tag);

// Checks a custom tag template: known variables only, literal characters
// valid in a tag. Returns an empty string when fine, else what is wrong.
std::string CheckTagTemplate(const std::string& tmpl);

// True for a valid Docker tag (see above).
bool IsValidTag(const std::string& tag);

// Parses "vX.Y.Z[-pre][+build]" or "X.Y.Z..." into the version without the
// "v"; empty when it is not a semantic version.
std::string SemverOf(const std::string& text);

}  // namespace reconcile
