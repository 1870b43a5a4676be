// Renders a Plan as Terraform-style text for people:
//   +    create        ~    update in place
//   -/+  replace       -    delete
// with field-level before -> after, a summary line, and "No changes." when
// there is nothing to do. Colours (ANSI) only when asked for. Pure; the same
// plan renders to the same bytes. Thread-safe.
#pragma once

#include <string>

#include "reconcile/plan.h"

namespace reconcile {

struct PlanFormatOptions {
  bool color = false;
  bool show_no_op = false;  // also list unchanged agents (-v / --explain)
};

std::string FormatPlan(const Plan& plan, const PlanFormatOptions& options = {});

// "Plan: 1 to add, 0 to change, 1 to replace, 0 to destroy." or "No changes."
std::string PlanSummary(const Plan& plan);

}  // namespace reconcile
