// SavedPlan: the file `reconcile plan --out FILE` writes and `reconcile
// apply FILE` / `reconcile show FILE` read (schemas/plan.schema.json):
//
//   {"reconcileSavedPlan": 1, "source": "/abs/tree", "stateDir": "/abs/tree/.reconcile",
//    "plan": {...ToJson(Plan)...}}
//
// `source` and `stateDir` say where the plan was made. They are checked
// against the command line, never followed: a plan file cannot make a run
// read another tree or write another state folder. Pure; thread-safe.
#pragma once

#include <string>

#include "reconcile/plan.h"
#include "reconcile/status.h"

namespace reconcile {

struct SavedPlan {
  static constexpr int kFormatVersion = 1;
  std::string source;     // absolute folder, or a Git URL
  std::string state_dir;  // absolute folder
  Plan plan;
  friend bool operator==(const SavedPlan&, const SavedPlan&) = default;
};

// The file's text (pretty JSON, ending in a newline).
std::string SavedPlanText(const SavedPlan& saved);

// Parses the text of the file `name` (named in every error). Strict: an
// unknown field, a wrong type or a malformed plan is kInvalid naming the
// field; a file of YAML (manifests) or any other non-JSON text is kInvalid
// saying what `apply` takes instead.
Result<SavedPlan> ParseSavedPlan(const std::string& name, const std::string& text);

}  // namespace reconcile
