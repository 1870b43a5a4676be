// The JSON Schemas (draft 2020-12) of the kinds, embedded at build time from
// schemas/*.schema.json. Thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace reconcile {

// Kind names in the order they are documented: "Agent", "Registry", "Target".
std::vector<std::string> SchemaKinds();
// The schema text for `kind` (case-insensitive), or nullopt if unknown.
std::optional<std::string> SchemaFor(const std::string& kind);

}  // namespace reconcile
