// Resolves an agent's secretEnv references to values, at apply time only.
// Values are never logged, planned, stored in state or put in errors; errors
// name the reference (file name or variable), never a value. Thread-safe.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "reconcile/model.h"
#include "reconcile/status.h"

namespace reconcile {

// file:NAME reads `secrets_dir`/NAME (trailing newline stripped; NAME may not
// escape the folder); env:VAR reads the engine's environment. Missing ones
// give one kInvalid error listing every missing reference and what to set.
Result<std::map<std::string, std::string>> ResolveSecrets(
    const std::map<std::string, SecretRef>& refs, const std::filesystem::path& secrets_dir);

}  // namespace reconcile
