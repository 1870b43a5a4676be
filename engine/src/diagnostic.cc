#include "reconcile/diagnostic.h"

#include <algorithm>
#include <tuple>

namespace reconcile {

std::string Diagnostic::ToString() const {
  std::string out;
  if (!file.empty()) {
    out += file;
    if (line > 0) {
      out += ":" + std::to_string(line);
      if (column > 0) out += ":" + std::to_string(column);
    }
    out += ": ";
  }
  out += severity == Severity::kError ? "error: " : "warning: ";
  if (!field.empty()) out += field + ": ";
  out += message;
  return out;
}

bool Diagnostics::HasErrors() const {
  return std::any_of(items_.begin(), items_.end(),
                     [](const Diagnostic& d) { return d.severity == Severity::kError; });
}

void Diagnostics::Sort() {
  std::stable_sort(items_.begin(), items_.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::tie(a.file, a.line, a.column, a.field, a.message) <
           std::tie(b.file, b.line, b.column, b.field, b.message);
  });
}

}  // namespace reconcile
