// Diagnostic: one problem found in user input, located at file:line:column
// and naming the field (a dotted path such as "spec.healthCheck.port").
// Diagnostics: an ordered collection, so validation reports every problem at
// once instead of stopping at the first. Plain values; not thread-safe.
#pragma once

#include <string>
#include <vector>

namespace reconcile {

enum class Severity { kError, kWarning };

struct Diagnostic {
  Severity severity = Severity::kError;
  std::string file;   // path as the user gave it (relative to the tree root)
  int line = 0;       // 1-based; 0 when unknown
  int column = 0;     // 1-based; 0 when unknown
  std::string field;  // dotted path of the offending field; may be empty
  std::string message;

  // "file:line:column: error: field: message" (parts that are unknown are
  // left out).
  std::string ToString() const;

  friend bool operator==(const Diagnostic&, const Diagnostic&) = default;
};

class Diagnostics {
 public:
  void Add(Diagnostic d) { items_.push_back(std::move(d)); }
  void Error(std::string file, int line, int column, std::string field, std::string message) {
    items_.push_back(
        {Severity::kError, std::move(file), line, column, std::move(field), std::move(message)});
  }
  void Append(const Diagnostics& other) {
    items_.insert(items_.end(), other.items_.begin(), other.items_.end());
  }
  bool HasErrors() const;
  bool empty() const { return items_.empty(); }
  size_t size() const { return items_.size(); }
  const std::vector<Diagnostic>& items() const { return items_; }
  // Sorts by (file, line, column, field, message) for deterministic output.
  void Sort();

 private:
  std::vector<Diagnostic> items_;
};

}  // namespace reconcile
