#include "reconcile/plan_format.h"

#include <algorithm>
#include <vector>

namespace reconcile {

namespace {

constexpr const char* kReset = "\033[0m";
constexpr const char* kGreen = "\033[32m";
constexpr const char* kYellow = "\033[33m";
constexpr const char* kRed = "\033[31m";
constexpr const char* kBold = "\033[1m";

struct Style {
  const char* symbol;
  const char* color;
  const char* verb;
};

Style StyleFor(Action a) {
  switch (a) {
    case Action::kCreate:
      return {"  +", kGreen, "will be created"};
    case Action::kUpdate:
      return {"  ~", kYellow, "will be updated in place"};
    case Action::kReplace:
      return {"-/+", kYellow, "must be replaced"};
    case Action::kDelete:
      return {"  -", kRed, "will be destroyed"};
    case Action::kNoOp:
      break;
  }
  return {"   ", "", "is up to date"};
}

std::string Value(const std::optional<nlohmann::json>& v) {
  return v ? v->dump() : std::string("(none)");
}

}  // namespace

std::string PlanSummary(const Plan& plan) {
  if (!plan.HasChanges()) return "No changes.";
  int builds = 0;
  for (const Change& c : plan.changes) {
    builds += IsImageAddress(c.address) && c.action == Action::kCreate ? 1 : 0;
  }
  return "Plan: " + (builds ? std::to_string(builds) + " to build and push, " : std::string()) +
         std::to_string(plan.Count(Action::kCreate) - builds) + " to add, " +
         std::to_string(plan.Count(Action::kUpdate)) + " to change, " +
         std::to_string(plan.Count(Action::kReplace)) + " to replace, " +
         std::to_string(plan.Count(Action::kDelete)) + " to destroy.";
}

std::string FormatPlan(const Plan& plan, const PlanFormatOptions& options) {
  auto paint = [&](const char* color, const std::string& text) {
    if (!options.color || *color == '\0') return text;
    return std::string(color) + text + kReset;
  };
  std::string out;
  if (!plan.HasChanges()) {
    out += paint(kBold, "No changes.") + " The running agents match the desired state";
    out += plan.revision.empty() ? ".\n" : " (" + plan.revision + ").\n";
    if (!options.show_no_op) return out;
  } else {
    out += "reconcile will perform the following actions";
    out += plan.revision.empty() ? ":\n" : " (revision " + plan.revision + "):\n";
  }
  // Builds first: they run before the deploys that need them.
  std::vector<const Change*> order;
  for (const Change& c : plan.changes) {
    if (IsImageAddress(c.address)) order.push_back(&c);
  }
  for (const Change& c : plan.changes) {
    if (!IsImageAddress(c.address)) order.push_back(&c);
  }
  for (const Change* change : order) {
    const Change& c = *change;
    if (c.action == Action::kNoOp && !options.show_no_op) continue;
    Style style = StyleFor(c.action);
    const bool image = IsImageAddress(c.address);
    if (image && c.action == Action::kCreate) style.verb = "will be built and pushed";
    out += "\n  " + paint(kBold, "# " + c.address) + " " + style.verb;
    if (!c.reason.empty()) out += " (" + c.reason + ")";
    out += "\n";
    if (c.action == Action::kNoOp) continue;
    out +=
        paint(style.color, style.symbol) + (image ? " image \"" : " agent \"") + c.name + "\" {\n";
    size_t width = 0;
    for (const FieldChange& f : c.fields) width = std::max(width, f.path.size());
    for (const FieldChange& f : c.fields) {
      std::string name = f.path + std::string(width - f.path.size(), ' ');
      std::string line;
      if (f.path.starts_with("secretDigests.")) {
        // A secret's fingerprint: say which secret, show neither digest.
        std::string what = f.path.substr(std::string("secretDigests.").size());
        if (size_t dot = what.find('.'); dot != std::string::npos) what[dot] = ' ';
        const bool added = c.action == Action::kCreate || !f.before;
        const bool removed = c.action == Action::kDelete || !f.after;
        line = added     ? paint(kGreen, "+") + " " + what + " (value not shown)"
               : removed ? paint(kRed, "-") + " " + what + " (value not shown)"
                         : paint(kYellow, "~") + " " + what + " changed (value not shown)";
      } else if (c.action == Action::kCreate || !f.before) {
        line = paint(kGreen, "+") + " " + name + " = " + Value(f.after);
      } else if (c.action == Action::kDelete || !f.after) {
        line = paint(kRed, "-") + " " + name + " = " + Value(f.before);
      } else {
        line = paint(kYellow, "~") + " " + name + " = " + Value(f.before) + " -> " + Value(f.after);
      }
      if (c.action == Action::kReplace && f.forces_replace) {
        line += paint(kRed, " # forces replacement");
      }
      out += "      " + line + "\n";
    }
    out += "    }\n";
  }
  out += "\n" + paint(kBold, PlanSummary(plan)) + "\n";
  return out;
}

}  // namespace reconcile
