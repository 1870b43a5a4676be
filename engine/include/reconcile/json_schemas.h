// The JSON Schemas (draft 2020-12) of the kinds, and of the saved plan file
// ("Plan"), embedded at build time from schemas/*.schema.json. Thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace reconcile {

// Names in the order they are documented: "Agent", "Registry", "Target", "Plan".
std::vector<std::string> SchemaKinds();
// The schema text for `kind` (case-insensitive), or nullopt if unknown.
std::optional<std::string> SchemaFor(const std::string& kind);

}  // namespace reconcile
