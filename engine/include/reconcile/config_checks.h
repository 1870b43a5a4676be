// Checks of values written in the tree, shared by the loader and the
// providers that validate their own Target block (provider.h,
// ProviderDefinition::validate_target), so that both say the same thing in
// the same words.
//
// The predicates mirror schemas/*.schema.json (each names its pattern).
// ConfigChecker walks one JSON object (Target::settings, a block the loader
// turned from YAML into JSON) and reports ProviderDiagnostics named by their
// dotted path. Pure; thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "reconcile/provider.h"

namespace reconcile::checks {

bool AllOf(std::string_view s, const std::function<bool(char)>& pred);  // false when empty
inline bool IsDigit(char c) { return c >= '0' && c <= '9'; }
inline bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
inline bool IsLower(char c) { return c >= 'a' && c <= 'z'; }
inline bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }
inline bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool IsNoSpace(std::string_view s);         // ^\S+$
bool IsLowerDash(std::string_view s);       // ^[a-z0-9-]+$
bool IsSecretFileName(std::string_view s);  // ^[A-Za-z0-9._-]+$, not "." or ".."
bool IsServerName(std::string_view s);      // ^[A-Za-z0-9.:-]{1,253}$
bool IsDockerHost(std::string_view s);      // unix:///PATH or tcp://HOST:PORT
bool IsDockerNetwork(std::string_view s);   // ^[A-Za-z0-9][A-Za-z0-9_.-]*$
bool IsIpAddress(const std::string& s);     // IPv4 or IPv6
bool IsHttpUrl(std::string_view s);         // ^https?://\S+$
bool IsArn(std::string_view s);             // ^arn:\S+$
bool IsEmail(std::string_view s);           // ^[^@\s]+@[^@\s]+$
bool IsGcpProject(std::string_view s);      // ^[a-z][a-z0-9-]{4,28}[a-z0-9]$
bool IsUuid(std::string_view s);            // 8-4-4-4-12 hex digits

// The known name closest to `unknown` within a small edit distance (case
// blind), or "": the "did you mean" of unknown-field errors.
std::string Suggest(std::string_view unknown, const std::vector<std::string>& known);

// "a string", "an integer", "a number", "a boolean", "null", "a list",
// "a map": how a JSON value is named in messages (as the loader names YAML).
std::string DescribeJson(const nlohmann::json& v);

// The JSON Schema of the Target block `spec.<provider>` as
// schemas/target.schema.json documents it (embedded), for
// ProviderSchema::target_schema; null when the file has none.
nlohmann::json TargetBlockSchema(const std::string& provider);

// Checks one JSON object at `path` ("spec.aws"), appending to `out`. The
// messages are the loader's: "required field is missing", "unknown field
// 'x' (did you mean 'y'?)", "must be a string, got an integer", "invalid
// value 'v': must be WHAT", "must be between MIN and MAX, got V".
class ConfigChecker {
 public:
  // `block` must outlive the checker. A `block` that is not an object is
  // reported once ("must be a map, got ...") and every later check is quiet.
  ConfigChecker(const nlohmann::json& block, std::string path,
                std::vector<ProviderDiagnostic>& out);

  bool ok() const { return object_ != nullptr; }
  const std::string& path() const { return path_; }
  std::string Field(std::string_view key) const { return path_ + "." + std::string(key); }
  const nlohmann::json* Get(std::string_view key) const;  // nullptr when absent

  // Reports every key not in `known`.
  void Known(std::initializer_list<std::string_view> known);
  void Require(std::string_view key);
  void Error(std::string_view key, std::string message);  // key "": the block itself

  std::optional<std::string> String(std::string_view key);
  // A string passing `check`; `what` is the expected form.
  std::optional<std::string> Checked(std::string_view key,
                                     const std::function<bool(const std::string&)>& check,
                                     std::string_view what);
  std::optional<std::int64_t> Int(std::string_view key, std::int64_t min, std::int64_t max);
  std::optional<bool> Bool(std::string_view key);
  // A positive number, or a non-empty string ("1 vCPU", "2Gi"): as written.
  std::optional<nlohmann::json> StringOrNumber(std::string_view key);
  // The checker of the object at `key` (absent: an empty object, quiet).
  ConfigChecker Child(std::string_view key);

 private:
  const nlohmann::json* object_ = nullptr;
  std::string path_;
  std::vector<ProviderDiagnostic>* out_;
};

}  // namespace reconcile::checks
