#include "reconcile/loader.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <system_error>
#include <tuple>
#include <utility>

#include <openssl/evp.h>

#include "reconcile/config_checks.h"
#include "reconcile/deploy_window.h"
#include "reconcile/image_tag.h"
#include "reconcile/provider.h"
#include "reconcile/sops.h"
#include "reconcile/spec.h"
#include "yaml_tree.h"

namespace reconcile {
namespace {

namespace fs = std::filesystem;
using Kind = YamlNode::Kind;
using namespace checks;  // NOLINT: the value checks shared with providers

constexpr const char* kApiVersion = "reconcile.dev/v1alpha1";

// ---------------------------------------------------------------------------
// Scalar typing: the YAML 1.2 core schema, as the `yaml` npm package and other
// JSON-Schema tooling read it, so that the decoder and the schemas agree.

enum class ScalarType { kNull, kBool, kInt, kFloat, kString };

bool IsCoreInt(std::string_view s) {
  if (s.size() > 2 && s[0] == '0' && s[1] == 'o') {
    return AllOf(s.substr(2), [](char c) { return c >= '0' && c <= '7'; });
  }
  if (s.size() > 2 && s[0] == '0' && s[1] == 'x') return AllOf(s.substr(2), IsHex);
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  return AllOf(s, IsDigit);
}

bool IsCoreFloat(std::string_view s) {
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return true;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  if (s == ".inf" || s == ".Inf" || s == ".INF") return true;
  size_t i = 0;
  size_t int_digits = 0, frac_digits = 0;
  while (i < s.size() && IsDigit(s[i])) ++i, ++int_digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && IsDigit(s[i])) ++i, ++frac_digits;
    if (int_digits == 0 && frac_digits == 0) return false;
  } else if (int_digits == 0) {
    return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    size_t exp_digits = 0;
    while (i < s.size() && IsDigit(s[i])) ++i, ++exp_digits;
    if (exp_digits == 0) return false;
  }
  return i == s.size();
}

bool IsYamlTag(const std::string& tag, const char* name) {
  return tag == std::string("tag:yaml.org,2002:") + name || tag == std::string("!!") + name;
}

ScalarType TypeOf(const YamlNode& n) {
  switch (n.kind) {
    case Kind::kNull:
      return ScalarType::kNull;
    case Kind::kScalar:
      break;
    default:
      return ScalarType::kString;  // not used for collections
  }
  if (IsYamlTag(n.tag, "str") ||
      (n.tag != "?" && n.tag.rfind("tag:yaml.org,2002:", 0) != 0 && n.tag.rfind("!!", 0) != 0)) {
    return ScalarType::kString;  // quoted ("!"), !!str, or an application tag
  }
  const std::string& v = n.value;
  if (v.empty() || v == "~" || v == "null" || v == "Null" || v == "NULL") return ScalarType::kNull;
  if (v == "true" || v == "True" || v == "TRUE" || v == "false" || v == "False" || v == "FALSE") {
    return ScalarType::kBool;
  }
  if (IsCoreInt(v)) return ScalarType::kInt;
  if (IsCoreFloat(v)) return ScalarType::kFloat;
  return ScalarType::kString;
}

std::string Describe(const YamlNode& n) {
  switch (n.kind) {
    case Kind::kSequence:
      return "a list";
    case Kind::kMap:
      return "a map";
    case Kind::kAlias:
      return Describe(n.Resolved());
    default:
      break;
  }
  switch (TypeOf(n)) {
    case ScalarType::kNull:
      return "null";
    case ScalarType::kBool:
      return "a boolean";
    case ScalarType::kInt:
      return "an integer";
    case ScalarType::kFloat:
      return "a number";
    case ScalarType::kString:
      return "a string";
  }
  return "a value";
}

// The integer value of an int scalar (or of a float with an integral value),
// or nullopt when it does not fit in int64.
std::optional<std::int64_t> ParseInteger(const YamlNode& n) {
  std::string_view v = n.value;
  std::int64_t out = 0;
  if (TypeOf(n) == ScalarType::kInt) {
    int base = 10;
    bool negative = false;
    if (v.size() > 2 && v[0] == '0' && (v[1] == 'o' || v[1] == 'x')) {
      base = v[1] == 'o' ? 8 : 16;
      v.remove_prefix(2);
    } else if (!v.empty() && (v[0] == '-' || v[0] == '+')) {
      negative = v[0] == '-';
      v.remove_prefix(1);
    }
    std::uint64_t magnitude = 0;
    auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), magnitude, base);
    if (ec != std::errc() || ptr != v.data() + v.size()) return std::nullopt;
    if (magnitude > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return std::nullopt;
    }
    out = static_cast<std::int64_t>(magnitude);
    return negative ? -out : out;
  }
  if (TypeOf(n) == ScalarType::kFloat) {
    double d = std::strtod(n.value.c_str(), nullptr);
    if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9.0e15) return std::nullopt;
    return static_cast<std::int64_t>(d);
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// Value checks shared with schemas/*.schema.json (each names its pattern).

// ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$, at most 63 characters.
bool IsDnsLabel(std::string_view s) {
  return s.size() <= 63 && AllOf(s, [](char c) { return IsLower(c) || IsDigit(c) || c == '-'; }) &&
         s.front() != '-' && s.back() != '-';
}
// ^[A-Za-z_][A-Za-z0-9_]*$
bool IsEnvName(std::string_view s) {
  return AllOf(s, [](char c) { return IsLower(c) || IsUpper(c) || IsDigit(c) || c == '_'; }) &&
         !IsDigit(s.front());
}
// ^[A-Z_][A-Z0-9_]*$
bool IsEnvPrefix(std::string_view s) {
  return AllOf(s, [](char c) { return IsUpper(c) || IsDigit(c) || c == '_'; }) &&
         !IsDigit(s.front());
}
// ^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$
bool IsRepository(std::string_view s) {
  if (s.empty()) return false;
  char prev = '/';
  for (char c : s) {
    bool alnum = IsLower(c) || IsDigit(c);
    bool sep = c == '.' || c == '_' || c == '-' || c == '/';
    if (!alnum && !sep) return false;
    if (sep && !(IsLower(prev) || IsDigit(prev))) return false;
    prev = c;
  }
  return IsLower(prev) || IsDigit(prev);
}
// ^([0-9]+(\.[0-9]+)?|[0-9]+m)$
bool IsCpu(std::string_view s) {
  if (s.size() > 1 && s.back() == 'm') return AllOf(s.substr(0, s.size() - 1), IsDigit);
  auto dot = s.find('.');
  if (dot == std::string_view::npos) return AllOf(s, IsDigit);
  return AllOf(s.substr(0, dot), IsDigit) && AllOf(s.substr(dot + 1), IsDigit);
}
// ^[0-9]+(Ki|Mi|Gi|Ti|K|M|G|T)?$
bool IsMemory(std::string_view s) {
  for (std::string_view unit : {"Ki", "Mi", "Gi", "Ti", "K", "M", "G", "T"}) {
    if (s.size() > unit.size() && s.substr(s.size() - unit.size()) == unit) {
      return AllOf(s.substr(0, s.size() - unit.size()), IsDigit);
    }
  }
  return AllOf(s, IsDigit);
}
// ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$ : a Docker network name of at most 63
// characters (the length of a DNS label, since containers resolve it).
bool IsNetworkName(std::string_view s) { return s.size() <= 63 && IsDockerNetwork(s); }
// Networks every Docker engine has; they are not user-defined networks.
bool IsPredefinedNetwork(std::string_view s) {
  return s == "bridge" || s == "host" || s == "none" || s == "default";
}
// ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$ : names a file (/run/secrets/NAME).
bool IsSecretName(std::string_view s) { return IsNetworkName(s); }
// ^0?[0-7]{3}$ : permission bits in octal, such as "0400" or "440".
std::optional<int> ParseFileMode(std::string_view s) {
  if (s.size() == 4 && s.front() == '0') s.remove_prefix(1);
  if (s.size() != 3 || !AllOf(s, [](char c) { return c >= '0' && c <= '7'; })) return std::nullopt;
  return (s[0] - '0') * 64 + (s[1] - '0') * 8 + (s[2] - '0');
}
// ^[a-z0-9][a-z0-9_.-]{1,62}$ (Docker's volume names, lower-case)
bool IsVolumeName(std::string_view s) {
  return s.size() >= 2 && s.size() <= 63 &&
         AllOf(
             s,
             [](char c) { return IsLower(c) || IsDigit(c) || c == '_' || c == '.' || c == '-'; }) &&
         (IsLower(s.front()) || IsDigit(s.front()));
}
// ^/(?!.*(^|/)\.\.?(/|$))[^\s:]*$ : absolute, no "." or ".." segment, no
// space or ':' (Docker's mount separator).
bool IsMountPath(std::string_view s) {
  if (s.empty() || s.front() != '/') return false;
  if (!AllOf(s, [](char c) { return !IsSpace(c) && c != ':'; })) return false;
  for (size_t begin = 1; begin <= s.size();) {
    size_t end = s.find('/', begin);
    if (end == std::string_view::npos) end = s.size();
    std::string_view segment = s.substr(begin, end - begin);
    if (segment == "." || segment == "..") return false;
    begin = end + 1;
  }
  return true;
}
// A path without a trailing '/' nor "//" (so that prefix checks are exact).
std::string CleanPath(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '/' && !out.empty() && out.back() == '/') continue;
    out += c;
  }
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}
// The Linux signal names Docker takes as StopSignal (SIG<NAME>).
bool IsSignalName(std::string_view s) {
  static const std::set<std::string_view> kSignals = {
      "SIGABRT",   "SIGALRM", "SIGBUS",  "SIGCHLD",   "SIGCONT",  "SIGFPE",  "SIGHUP",  "SIGILL",
      "SIGINT",    "SIGIO",   "SIGKILL", "SIGPIPE",   "SIGPROF",  "SIGPWR",  "SIGQUIT", "SIGSEGV",
      "SIGSTKFLT", "SIGSTOP", "SIGSYS",  "SIGTERM",   "SIGTRAP",  "SIGTSTP", "SIGTTIN", "SIGTTOU",
      "SIGURG",    "SIGUSR1", "SIGUSR2", "SIGVTALRM", "SIGWINCH", "SIGXCPU", "SIGXFSZ"};
  return kSignals.count(s) > 0;
}
// The Linux capabilities (capabilities(7)) without their CAP_ prefix, and ALL.
bool IsCapability(std::string_view s) {
  static const std::set<std::string_view> kCapabilities = {"ALL",
                                                           "AUDIT_CONTROL",
                                                           "AUDIT_READ",
                                                           "AUDIT_WRITE",
                                                           "BLOCK_SUSPEND",
                                                           "BPF",
                                                           "CHECKPOINT_RESTORE",
                                                           "CHOWN",
                                                           "DAC_OVERRIDE",
                                                           "DAC_READ_SEARCH",
                                                           "FOWNER",
                                                           "FSETID",
                                                           "IPC_LOCK",
                                                           "IPC_OWNER",
                                                           "KILL",
                                                           "LEASE",
                                                           "LINUX_IMMUTABLE",
                                                           "MAC_ADMIN",
                                                           "MAC_OVERRIDE",
                                                           "MKNOD",
                                                           "NET_ADMIN",
                                                           "NET_BIND_SERVICE",
                                                           "NET_BROADCAST",
                                                           "NET_RAW",
                                                           "PERFMON",
                                                           "SETFCAP",
                                                           "SETGID",
                                                           "SETPCAP",
                                                           "SETUID",
                                                           "SYSLOG",
                                                           "SYS_ADMIN",
                                                           "SYS_BOOT",
                                                           "SYS_CHROOT",
                                                           "SYS_MODULE",
                                                           "SYS_NICE",
                                                           "SYS_PACCT",
                                                           "SYS_PTRACE",
                                                           "SYS_RAWIO",
                                                           "SYS_RESOURCE",
                                                           "SYS_TIME",
                                                           "SYS_TTY_CONFIG",
                                                           "WAKE_ALARM"};
  return kCapabilities.count(s) > 0;
}
// ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})?$
// (a user and optional group, each a name or a numeric id)
bool IsUserSpec(std::string_view s) {
  auto part = [](std::string_view p) {
    return !p.empty() && p.size() <= 32 && p.front() != '.' && p.front() != '-' &&
           AllOf(p, [](char c) {
             return IsLower(c) || IsUpper(c) || IsDigit(c) || c == '_' || c == '.' || c == '-';
           });
  };
  auto colon = s.find(':');
  if (colon == std::string_view::npos) return part(s);
  return part(s.substr(0, colon)) && part(s.substr(colon + 1));
}
// ^[A-Za-z0-9]([A-Za-z0-9._/-]{0,251}[A-Za-z0-9])?$ (a container label key)
bool IsLabelKey(std::string_view s) {
  auto alnum = [](char c) { return IsLower(c) || IsUpper(c) || IsDigit(c); };
  return !s.empty() && s.size() <= 253 && alnum(s.front()) && alnum(s.back()) &&
         AllOf(s, [&](char c) { return alnum(c) || c == '.' || c == '_' || c == '/' || c == '-'; });
}
// A duration as spec.h's ParseDuration reads it; `nonzero` rejects "0s".
std::optional<std::int64_t> ParseDuration(std::string_view s, bool nonzero) {
  auto ms = reconcile::ParseDuration(std::string(s));
  if (!ms || (nonzero && *ms == 0)) return std::nullopt;
  return ms;
}

std::string Join(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

// ---------------------------------------------------------------------------
// The decoder of one file's documents.

// A decoded map: its known fields by name (aliases resolved).
struct Fields {
  const YamlNode* self = nullptr;
  std::map<std::string, const YamlNode*> values;
  std::map<std::string, const YamlNode*> keys;

  const YamlNode* Get(const std::string& k) const {
    auto it = values.find(k);
    return it == values.end() ? nullptr : it->second;
  }
  bool Has(const std::string& k) const { return values.count(k) > 0; }
};

// A SOPS-encrypted file (a map with top-level `sops` metadata holding a
// `mac` or `lastmodified`, and no `kind`): no manifest, but the data of
// {sops: {file, key}} references, read at plan time (sops.h). Left out of
// the tree's resources.
bool IsSopsDocument(const YamlNode& raw) {
  const YamlNode& root = raw.Resolved();
  if (root.kind != Kind::kMap) return false;
  const YamlNode* meta = nullptr;
  for (const auto& [k, v] : root.entries) {
    const YamlNode& key = k->Resolved();
    if (key.kind != Kind::kScalar) continue;
    if (key.value == "kind") return false;
    if (key.value == "sops") meta = &v->Resolved();
  }
  if (meta == nullptr || meta->kind != Kind::kMap) return false;
  return std::any_of(meta->entries.begin(), meta->entries.end(), [](const auto& e) {
    const YamlNode& key = e.first->Resolved();
    return key.kind == Kind::kScalar && (key.value == "mac" || key.value == "lastmodified");
  });
}

// Where each path of a provider's block was written (value and key nodes).
struct BlockNodes {
  std::map<std::string, const YamlNode*> values;
  std::map<std::string, const YamlNode*> keys;
  const YamlNode* Locate(const std::string& field, const std::string& message) const;
};

class Decoder {
 public:
  Decoder(std::string file, std::string manifest_dir, const LoadLimits& limits,
          Diagnostics& diagnostics)
      : file_(std::move(file)),
        manifest_dir_(std::move(manifest_dir)),
        limits_(limits),
        diags_(diagnostics) {}

  void Document(const YamlNode& root, DesiredState& out);
  // Appended to errors at nodes written in another file than the document's
  // (an Environment's patch): " (patching Agent web at base/agents.yaml:3:1)".
  void SetPatchNote(std::string note) { note_ = std::move(note); }

 private:
  const std::string& FileOf(const YamlNode& n) const { return n.origin ? *n.origin : file_; }
  void Error(const YamlNode& at, const std::string& field, std::string message) {
    const std::string& file = FileOf(at);
    if (!note_.empty() && file != file_) message += note_;
    diags_.Error(file, at.line, at.column, field, std::move(message));
  }
  void TypeError(const YamlNode& at, const std::string& field, const std::string& expected) {
    Error(at, field, "must be " + expected + ", got " + Describe(at));
  }

  // Checks that `node` is a map with string keys, no duplicates and only
  // `known` fields. Unknown fields are reported; known ones are returned.
  std::optional<Fields> Map(const YamlNode& node, const std::string& path,
                            const std::vector<std::string>& known);
  // A map with free-form keys (labels, env, ...): checks keys are unique
  // strings; returns entries in document order.
  std::optional<std::vector<std::pair<const YamlNode*, const YamlNode*>>> FreeMap(
      const YamlNode& node, const std::string& path);
  void Require(const Fields& f, const std::string& key, const std::string& path) {
    if (!f.Has(key)) Error(*f.self, Join(path, key), "required field is missing");
  }

  std::optional<std::string> String(const YamlNode& n, const std::string& path);
  // A string that must pass `check`; `what` describes the expected form.
  std::optional<std::string> Checked(const YamlNode& n, const std::string& path,
                                     const std::function<bool(const std::string&)>& check,
                                     const std::string& what);
  std::optional<std::int64_t> Int(const YamlNode& n, const std::string& path, std::int64_t min,
                                  std::int64_t max);
  std::optional<bool> Bool(const YamlNode& n, const std::string& path);
  std::optional<std::int64_t> Duration(const YamlNode& n, const std::string& path, bool nonzero);
  std::optional<std::vector<std::string>> StringList(const YamlNode& n, const std::string& path);
  // Scalar kept as text (string, number or boolean).
  std::optional<std::string> ScalarText(const YamlNode& n, const std::string& path);
  std::map<std::string, std::string> StringMap(const YamlNode& n, const std::string& path,
                                               bool any_scalar, bool env_names);

  void Metadata(const YamlNode& n, std::string& name, std::map<std::string, std::string>& labels,
                SourceLocation& name_at);
  SourceLocation At(const YamlNode& n) const { return {FileOf(n), n.line, n.column}; }
  void EnvironmentSpec(const Fields& spec, Environment& e);
  std::vector<DeployWindow> Windows(const YamlNode& n, const std::string& path);
  ApprovalMode Approval(const YamlNode& n, const std::string& path);
  void AgentSpec(const Fields& spec, Agent& a);
  void Volumes(const YamlNode& n, Agent& a);
  void Ports(const YamlNode& n, Agent& a);
  void HealthCheckSpec(const YamlNode& n, Agent& a);
  // stopSignal, stopGracePeriod, user, capAdd, capDrop,
  // readOnlyRootFilesystem, labels, hostname.
  void ContainerFields(const Fields& f, Agent& a);
  std::vector<std::string> Capabilities(const YamlNode& n, const std::string& path);
  void Networks(const YamlNode& n, Agent& a);
  void SecretFiles(const YamlNode& n, Agent& a);
  // A secret reference {file: NAME} or {env: VAR} at `field` (secretEnv,
  // secretFiles); `extra` are the other keys allowed beside it. Never
  // echoes a value.
  std::optional<SecretRef> SecretReference(const YamlNode& value, const std::string& field,
                                           const std::vector<std::string>& extra, Agent& a,
                                           std::optional<Fields>* fields = nullptr) {
    return SecretReference(value, field, extra, a.field_locations, fields);
  }
  std::optional<SecretRef> SecretReference(const YamlNode& value, const std::string& field,
                                           const std::vector<std::string>& extra,
                                           std::map<std::string, SourceLocation>& locations,
                                           std::optional<Fields>* fields = nullptr);
  // The inner maps of {aws: {...}}, {vault: {...}} and {sops: {...}} (model.h
  // SecretRef).
  std::optional<SecretRef> AwsSecretReference(const YamlNode& n, const std::string& field);
  std::optional<SecretRef> VaultSecretReference(const YamlNode& n, const std::string& field);
  std::optional<SecretRef> SopsSecretReference(const YamlNode& n, const std::string& field,
                                               std::map<std::string, SourceLocation>& locations);
  void NotifierSpec(const Fields& spec, Notifier& n);
  void RegistrySpec(const Fields& spec, Registry& r);
  void TargetSpec(const YamlNode& spec, Target& t);
  // A provider's block as JSON (YAML's core schema types), recording where
  // each path was written; nullopt (reported) on a bad key.
  std::optional<nlohmann::json> BlockJson(const YamlNode& n, const std::string& path,
                                          BlockNodes& nodes);

  std::string file_;
  std::string manifest_dir_;
  std::string note_;
  const LoadLimits& limits_;
  Diagnostics& diags_;
};

std::optional<Fields> Decoder::Map(const YamlNode& raw, const std::string& path,
                                   const std::vector<std::string>& known) {
  const YamlNode& node = raw.Resolved();
  if (node.kind != Kind::kMap) {
    TypeError(node, path, "a map");
    return std::nullopt;
  }
  Fields f;
  f.self = &node;
  std::set<std::string> seen;
  for (const auto& [key_ptr, value_ptr] : node.entries) {
    const YamlNode& key = key_ptr->Resolved();
    if (key.kind != Kind::kScalar) {
      Error(key, path, "map keys must be strings, got " + Describe(key));
      continue;
    }
    const std::string& k = key.value;
    if (!seen.insert(k).second) {
      Error(key, Join(path, k), "duplicate key '" + k + "'");
      continue;
    }
    if (std::find(known.begin(), known.end(), k) == known.end()) {
      std::string message = "unknown field '" + k + "'";
      std::string suggestion = Suggest(k, known);
      if (!suggestion.empty()) message += " (did you mean '" + suggestion + "'?)";
      Error(key, Join(path, k), message);
      continue;
    }
    f.values[k] = &value_ptr->Resolved();
    f.keys[k] = &key;
  }
  return f;
}

std::optional<std::vector<std::pair<const YamlNode*, const YamlNode*>>> Decoder::FreeMap(
    const YamlNode& raw, const std::string& path) {
  const YamlNode& node = raw.Resolved();
  if (node.kind != Kind::kMap) {
    TypeError(node, path, "a map");
    return std::nullopt;
  }
  std::vector<std::pair<const YamlNode*, const YamlNode*>> out;
  std::set<std::string> seen;
  for (const auto& [key_ptr, value_ptr] : node.entries) {
    const YamlNode& key = key_ptr->Resolved();
    if (key.kind != Kind::kScalar || key.value.empty()) {
      Error(key, path, "map keys must be non-empty strings, got " + Describe(key));
      continue;
    }
    if (!seen.insert(key.value).second) {
      Error(key, Join(path, key.value), "duplicate key '" + key.value + "'");
      continue;
    }
    out.emplace_back(&key, &value_ptr->Resolved());
  }
  return out;
}

std::optional<std::string> Decoder::String(const YamlNode& n, const std::string& path) {
  if (n.kind != Kind::kScalar || TypeOf(n) != ScalarType::kString) {
    TypeError(n, path, "a string");
    return std::nullopt;
  }
  return n.value;
}

std::optional<std::string> Decoder::Checked(const YamlNode& n, const std::string& path,
                                            const std::function<bool(const std::string&)>& check,
                                            const std::string& what) {
  auto s = String(n, path);
  if (!s) return std::nullopt;
  if (!check(*s)) {
    std::string shown = s->size() > 80 ? s->substr(0, 80) + "..." : *s;
    Error(n, path, "invalid value '" + shown + "': must be " + what);
    return std::nullopt;
  }
  return s;
}

std::optional<std::int64_t> Decoder::Int(const YamlNode& n, const std::string& path,
                                         std::int64_t min, std::int64_t max) {
  ScalarType t = n.kind == Kind::kScalar ? TypeOf(n) : ScalarType::kString;
  if (n.kind != Kind::kScalar || (t != ScalarType::kInt && t != ScalarType::kFloat)) {
    TypeError(n, path, "an integer");
    return std::nullopt;
  }
  auto v = ParseInteger(n);
  if (!v && t == ScalarType::kFloat) {
    TypeError(n, path, "an integer");
    return std::nullopt;
  }
  if (!v || *v < min || *v > max) {
    Error(n, path,
          "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " +
              (n.value.size() > 40 ? n.value.substr(0, 40) + "..." : n.value));
    return std::nullopt;
  }
  return v;
}

std::optional<bool> Decoder::Bool(const YamlNode& n, const std::string& path) {
  if (n.kind != Kind::kScalar || TypeOf(n) != ScalarType::kBool) {
    TypeError(n, path, "a boolean (true or false)");
    return std::nullopt;
  }
  return n.value[0] == 't' || n.value[0] == 'T';
}

std::optional<std::int64_t> Decoder::Duration(const YamlNode& n, const std::string& path,
                                              bool nonzero) {
  auto s = String(n, path);
  if (!s) return std::nullopt;
  auto ms = ParseDuration(*s, nonzero);
  if (!ms) {
    std::string shown = s->size() > 40 ? s->substr(0, 40) + "..." : *s;
    Error(n, path,
          "invalid duration '" + shown + "': must be " + (nonzero ? "a positive " : "a ") +
              "whole number followed by ms, s, m or h (e.g. 500ms, 2s, 1m)");
  }
  return ms;
}

std::optional<std::vector<std::string>> Decoder::StringList(const YamlNode& n,
                                                            const std::string& path) {
  if (n.kind != Kind::kSequence) {
    TypeError(n, path, "a list of strings");
    return std::nullopt;
  }
  std::vector<std::string> out;
  bool ok = true;
  for (size_t i = 0; i < n.items.size(); ++i) {
    auto s = String(n.items[i]->Resolved(), path + "[" + std::to_string(i) + "]");
    if (s) out.push_back(*s);
    ok = ok && s.has_value();
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<std::string> Decoder::ScalarText(const YamlNode& n, const std::string& path) {
  if (n.kind != Kind::kScalar || TypeOf(n) == ScalarType::kNull) {
    TypeError(n, path, "a string, number or boolean");
    return std::nullopt;
  }
  return n.value;
}

std::map<std::string, std::string> Decoder::StringMap(const YamlNode& n, const std::string& path,
                                                      bool any_scalar, bool env_names) {
  std::map<std::string, std::string> out;
  auto entries = FreeMap(n, path);
  if (!entries) return out;
  for (const auto& [key, value] : *entries) {
    std::string field = Join(path, key->value);
    if (env_names && !IsEnvName(key->value)) {
      Error(*key, field,
            "invalid variable name '" + key->value + "': must match ^[A-Za-z_][A-Za-z0-9_]*$");
      continue;
    }
    auto v = any_scalar ? ScalarText(*value, field) : String(*value, field);
    if (v) out[key->value] = *v;
  }
  return out;
}

void Decoder::Metadata(const YamlNode& n, std::string& name,
                       std::map<std::string, std::string>& labels, SourceLocation& name_at) {
  auto f = Map(n, "metadata", {"name", "labels", "annotations"});
  if (!f) return;
  Require(*f, "name", "metadata");
  if (auto* v = f->Get("name")) {
    auto s = Checked(*v, "metadata.name", IsDnsLabel,
                     "a DNS-1123 label (lower-case letters, digits and '-', starting and ending "
                     "with a letter or digit, at most 63 characters)");
    if (s) name = *s;
    name_at = At(*v);
  }
  if (auto* v = f->Get("labels")) labels = StringMap(*v, "metadata.labels", false, false);
  if (auto* v = f->Get("annotations")) StringMap(*v, "metadata.annotations", false, false);
}

void Decoder::Document(const YamlNode& raw_root, DesiredState& out) {
  const YamlNode& root = raw_root.Resolved();
  if (root.kind == Kind::kNull) return;  // an empty document
  if (IsSopsDocument(root)) return;      // SOPS data, read through {sops: ...}
  if (root.kind != Kind::kMap) {
    Error(
        root, "",
        "a document must be a map with apiVersion, kind, metadata and spec, got " + Describe(root));
    return;
  }
  auto f = Map(root, "", {"apiVersion", "kind", "metadata", "spec"});
  if (!f) return;
  for (const char* key : {"apiVersion", "kind", "metadata", "spec"}) Require(*f, key, "");
  if (auto* v = f->Get("apiVersion")) {
    auto s = String(*v, "apiVersion");
    if (s && *s != kApiVersion) {
      Error(*v, "apiVersion", "unsupported apiVersion '" + *s + "': must be " + kApiVersion);
    }
  }
  std::string kind;
  if (auto* v = f->Get("kind")) {
    auto s = String(*v, "kind");
    if (s && (*s == "Agent" || *s == "Registry" || *s == "Target" || *s == "Environment" ||
              *s == "Notifier")) {
      kind = *s;
    } else if (s) {
      std::string suggestion =
          Suggest(*s, {"Agent", "Registry", "Target", "Environment", "Notifier"});
      Error(*v, "kind",
            "unknown kind '" + *s + "': must be Agent, Registry, Target, Environment or Notifier" +
                (suggestion.empty() ? "" : " (did you mean '" + suggestion + "'?)"));
    }
  }
  std::string name;
  std::map<std::string, std::string> labels;
  SourceLocation name_at{file_, root.line, root.column};
  if (auto* v = f->Get("metadata")) Metadata(*v, name, labels, name_at);
  if (kind.empty()) return;
  const YamlNode* spec_node = f->Get("spec");
  SourceLocation location = At(root);
  if ((kind == "Agent" || kind == "Environment") && name.find("--") != std::string::npos) {
    const YamlNode* at = f->Get("metadata");
    if (at && at->kind == Kind::kMap) {
      for (const auto& [k, v] : at->entries) {
        if (k->Resolved().value == "name") at = &v->Resolved();
      }
    }
    Error(at ? *at : root, "metadata.name",
          "invalid name '" + name +
              "': '--' is reserved: environment-scoped names are <environment>--<name>");
    return;
  }

  if (kind == "Environment") {
    Environment e;
    e.name = name;
    e.labels = labels;
    e.location = location;
    e.folder = manifest_dir_;
    e.field_locations["metadata.name"] = name_at;
    if (spec_node) {
      auto spec = Map(*spec_node, "spec",
                      {"bases", "labels", "env", "windows", "healOutsideWindows", "approval"});
      if (spec) EnvironmentSpec(*spec, e);
    }
    if (name.empty()) return;
    if (out.environment) {
      Error(root, "metadata.name",
            "a second Environment ('" + name + "'); Environment '" + out.environment->name +
                "' is at " + out.environment->location.file + ":" +
                std::to_string(out.environment->location.line) + " (one Environment per folder)");
      return;
    }
    out.environment = std::move(e);
  } else if (kind == "Agent") {
    Agent a;
    a.name = name;
    a.labels = labels;
    a.location = location;
    a.field_locations["metadata.name"] = name_at;
    a.manifest_dir = manifest_dir_;
    if (spec_node) {
      auto spec = Map(*spec_node, "spec",
                      {"image",
                       "build",
                       "registry",
                       "target",
                       "port",
                       "hostPort",
                       "publish",
                       "command",
                       "args",
                       "env",
                       "secretEnv",
                       "secretFiles",
                       "volumes",
                       "ports",
                       "networks",
                       "replicas",
                       "restart",
                       "resources",
                       "healthCheck",
                       "strategy",
                       "dependsOn",
                       "suspend",
                       "drift",
                       "stopSignal",
                       "stopGracePeriod",
                       "user",
                       "capAdd",
                       "capDrop",
                       "readOnlyRootFilesystem",
                       "labels",
                       "hostname",
                       "windows",
                       "approval"});
      if (spec) AgentSpec(*spec, a);
    }
    if (!name.empty()) out.agents.push_back(std::move(a));
  } else if (kind == "Registry") {
    Registry r;
    r.name = name;
    r.labels = labels;
    r.location = location;
    r.field_locations["metadata.name"] = name_at;
    if (spec_node) {
      auto spec = Map(
          *spec_node, "spec",
          {"url", "repository", "tagStrategy", "customTag", "credentialsEnvPrefix", "insecure"});
      if (spec) RegistrySpec(*spec, r);
    }
    if (!name.empty()) out.registries.push_back(std::move(r));
  } else if (kind == "Notifier") {
    Notifier n;
    n.name = name;
    n.labels = labels;
    n.location = location;
    n.field_locations["metadata.name"] = name_at;
    if (spec_node) {
      auto spec = Map(*spec_node, "spec",
                      {"type", "events", "agents", "environments", "url", "secret", "token",
                       "owner", "repo", "deployments", "projectId", "apiUrl"});
      if (spec) NotifierSpec(*spec, n);
    }
    if (!name.empty()) out.notifiers.push_back(std::move(n));
  } else {
    Target t;
    t.name = name;
    t.labels = labels;
    t.location = location;
    t.field_locations["metadata.name"] = name_at;
    if (spec_node) TargetSpec(*spec_node, t);
    if (!name.empty()) out.targets.push_back(std::move(t));
  }
}

void Decoder::AgentSpec(const Fields& f, Agent& a) {
  const std::string dns_label = "a DNS-1123 label naming a resource";
  const YamlNode* image = f.Get("image");
  const YamlNode* build = f.Get("build");
  if (image && build) {
    Error(*f.keys.at("build"), "spec.build", "image and build are mutually exclusive; set one");
  } else if (!image && !build) {
    Error(*f.self, "spec.image", "one of image or build is required");
  }
  if (image) {
    if (auto s = Checked(*image, "spec.image", IsNoSpace, "an image reference without spaces")) {
      a.image = *s;
    }
  }
  if (build) {
    if (auto b = Map(*build, "spec.build", {"context", "dockerfile", "args", "version"})) {
      BuildSpec spec;
      Require(*b, "context", "spec.build");
      auto relative = [](const std::string& s) { return !s.empty() && s[0] != '/'; };
      if (auto* v = b->Get("context")) {
        if (auto s = Checked(*v, "spec.build.context", relative,
                             "a path relative to the manifest's folder")) {
          spec.context = *s;
          a.field_locations["spec.build.context"] = At(*v);
          // Written by an Environment's patch: relative to the patch's folder.
          if (v->origin && *v->origin != file_) {
            a.manifest_dir = fs::path(*v->origin).parent_path().generic_string();
          }
        }
      }
      if (auto* v = b->Get("dockerfile")) {
        if (auto s = Checked(*v, "spec.build.dockerfile", relative,
                             "a path relative to the build context")) {
          spec.dockerfile = *s;
        }
      }
      if (auto* v = b->Get("args")) spec.args = StringMap(*v, "spec.build.args", true, true);
      if (auto* v = b->Get("version")) {
        auto is_semver = [](const std::string& x) { return !SemverOf(x).empty(); };
        if (auto s = Checked(*v, "spec.build.version", is_semver,
                             "a semantic version such as 1.4.2 or v2.0.0-rc.1")) {
          spec.version = *s;
        }
      }
      a.build = std::move(spec);
    }
    if (!f.Has("registry")) {
      Error(*f.self, "spec.registry", "required when build is set (where to push the image)");
    }
  }
  if (auto* v = f.Get("registry")) {
    if (auto s = Checked(*v, "spec.registry", IsDnsLabel, dns_label)) {
      a.registry = *s;
      a.field_locations["spec.registry"] = At(*v);
    }
  }
  Require(f, "target", "spec");
  if (auto* v = f.Get("target")) {
    if (auto s = Checked(*v, "spec.target", IsDnsLabel, dns_label)) {
      a.target = *s;
      a.field_locations["spec.target"] = At(*v);
    }
  }
  Require(f, "port", "spec");
  if (auto* v = f.Get("port")) {
    if (auto n = Int(*v, "spec.port", 1, 65535)) a.port = static_cast<int>(*n);
  }
  if (auto* v = f.Get("hostPort")) {
    if (auto n = Int(*v, "spec.hostPort", 0, 65535)) a.host_port = static_cast<int>(*n);
  }
  if (auto* v = f.Get("command")) {
    if (auto l = StringList(*v, "spec.command")) a.command = *l;
  }
  if (auto* v = f.Get("args")) {
    if (auto l = StringList(*v, "spec.args")) a.args = *l;
  }
  if (auto* v = f.Get("env")) a.env = StringMap(*v, "spec.env", true, true);
  if (auto* v = f.Get("secretEnv")) {
    if (auto entries = FreeMap(*v, "spec.secretEnv")) {
      for (const auto& [key, value] : *entries) {
        std::string field = "spec.secretEnv." + key->value;
        if (!IsEnvName(key->value)) {
          Error(*key, field,
                "invalid variable name '" + key->value + "': must match ^[A-Za-z_][A-Za-z0-9_]*$");
          continue;
        }
        auto secret = SecretReference(*value, field, {}, a);
        if (!secret) continue;
        if (a.env.count(key->value)) {
          Error(*key, field, "'" + key->value + "' is set in both env and secretEnv");
          continue;
        }
        a.secret_env[key->value] = *secret;
      }
    }
  }
  if (auto* v = f.Get("volumes")) Volumes(*v, a);
  if (auto* v = f.Get("secretFiles")) SecretFiles(*v, a);  // after volumes: targets differ
  if (auto* v = f.Get("publish")) {
    if (auto b = Bool(*v, "spec.publish")) a.publish = *b;
    if (!a.publish && a.host_port != 0) {
      Error(*f.keys.at("hostPort"), "spec.hostPort",
            "not allowed with publish: false (the main port is not bound on the host)");
    }
  }
  if (auto* v = f.Get("ports")) Ports(*v, a);
  if (auto* v = f.Get("networks")) Networks(*v, a);
  if (auto* v = f.Get("replicas")) {
    if (auto n = Int(*v, "spec.replicas", 1, 100)) a.replicas = static_cast<int>(*n);
  }
  if (auto* v = f.Get("restart")) {
    // ^(no|always|unless-stopped|on-failure(:[1-9][0-9]{0,3})?)$
    auto is_policy = [](const std::string& x) {
      if (x == "no" || x == "always" || x == "unless-stopped" || x == "on-failure") return true;
      if (x.rfind("on-failure:", 0) != 0) return false;
      std::string n = x.substr(11);
      return n.size() >= 1 && n.size() <= 4 && n[0] != '0' && AllOf(n, IsDigit);
    };
    if (auto s = Checked(*v, "spec.restart", is_policy,
                         "no, always, unless-stopped, on-failure or on-failure:N (N from 1 to "
                         "9999)")) {
      a.restart = *s;
    }
  }
  if (auto* v = f.Get("resources")) {
    if (auto r = Map(*v, "spec.resources", {"cpu", "memory", "gpus"})) {
      if (auto* cpu = r->Get("cpu")) {
        ScalarType t = cpu->kind == Kind::kScalar ? TypeOf(*cpu) : ScalarType::kNull;
        if (t == ScalarType::kInt || t == ScalarType::kFloat) {
          double d = std::strtod(cpu->value.c_str(), nullptr);
          if (!(d > 0) || !std::isfinite(d)) {
            Error(*cpu, "spec.resources.cpu", "must be a positive number of cores");
          } else {
            a.resources.cpu = cpu->value;
          }
        } else if (t == ScalarType::kString) {
          if (auto s = Checked(*cpu, "spec.resources.cpu", IsCpu,
                               "a number of cores such as 0.5 or 2, or millicores such as 500m")) {
            a.resources.cpu = *s;
          }
        } else {
          TypeError(*cpu, "spec.resources.cpu", "a number or a string");
        }
      }
      if (auto* mem = r->Get("memory")) {
        if (auto s = Checked(*mem, "spec.resources.memory", IsMemory,
                             "a size such as 128Mi, 1Gi or 512M")) {
          a.resources.memory = *s;
        }
      }
      if (auto* gpus = r->Get("gpus")) {
        // "all" or an integer from 1 to 64
        ScalarType t = gpus->kind == Kind::kScalar ? TypeOf(*gpus) : ScalarType::kNull;
        if (t == ScalarType::kInt) {
          if (auto n = Int(*gpus, "spec.resources.gpus", 1, 64)) {
            a.resources.gpus = std::to_string(*n);
          }
        } else if (t == ScalarType::kString && gpus->value == "all") {
          a.resources.gpus = "all";
        } else {
          std::string shown =
              gpus->value.size() > 40 ? gpus->value.substr(0, 40) + "..." : gpus->value;
          Error(*gpus, "spec.resources.gpus",
                "must be all or a number of GPUs from 1 to 64, got " +
                    (t == ScalarType::kString ? "'" + shown + "'" : Describe(*gpus)));
        }
      }
    }
  }
  if (auto* v = f.Get("healthCheck")) HealthCheckSpec(*v, a);
  ContainerFields(f, a);
  if (auto* v = f.Get("strategy")) {
    if (auto s = Map(*v, "spec.strategy", {"type", "autoRollback"})) {
      if (auto* t = s->Get("type")) {
        auto is_type = [](const std::string& x) { return x == "recreate" || x == "start-first"; };
        if (auto name = Checked(*t, "spec.strategy.type", is_type, "recreate or start-first")) {
          a.strategy.type =
              *name == "recreate" ? StrategyType::kRecreate : StrategyType::kStartFirst;
        }
      }
      if (auto* r = s->Get("autoRollback")) {
        if (auto b = Bool(*r, "spec.strategy.autoRollback")) a.strategy.auto_rollback = *b;
      }
    }
  }
  if (auto* v = f.Get("dependsOn")) {
    if (v->kind != Kind::kSequence) {
      TypeError(*v, "spec.dependsOn", "a list of agent names");
    } else {
      a.field_locations["spec.dependsOn"] = At(*v);
      std::set<std::string> seen;
      for (size_t i = 0; i < v->items.size(); ++i) {
        const YamlNode& item = v->items[i]->Resolved();
        std::string field = "spec.dependsOn[" + std::to_string(i) + "]";
        auto s = Checked(item, field, IsDnsLabel, "an agent name (a DNS-1123 label)");
        if (!s) continue;
        if (!seen.insert(*s).second) {
          Error(item, field, "'" + *s + "' is listed twice");
          continue;
        }
        a.depends_on.push_back(*s);
        a.field_locations["spec.dependsOn." + *s] = At(item);
      }
    }
  }
  if (auto* v = f.Get("suspend")) {
    if (auto b = Bool(*v, "spec.suspend")) a.suspend = *b;
  }
  if (auto* v = f.Get("windows")) a.windows = Windows(*v, "spec.windows");
  if (auto* v = f.Get("approval")) a.approval = Approval(*v, "spec.approval");
  if (auto* v = f.Get("drift")) {
    if (auto d = Map(*v, "spec.drift", {"mode"})) {
      if (auto* m = d->Get("mode")) {
        auto is_mode = [](const std::string& x) { return x == "report" || x == "heal"; };
        if (auto s = Checked(*m, "spec.drift.mode", is_mode, "report or heal")) {
          a.drift = *s == "report" ? DriftMode::kReport : DriftMode::kHeal;
        }
      }
    }
  }
}

void Decoder::Volumes(const YamlNode& n, Agent& a) {
  if (n.kind != Kind::kSequence) {
    TypeError(n, "spec.volumes", "a list of mounts ({type, source, target, ...})");
    return;
  }
  std::map<std::string, std::string> targets;  // target -> field of its first mount
  for (size_t i = 0; i < n.items.size(); ++i) {
    const std::string path = "spec.volumes[" + std::to_string(i) + "]";
    auto m = Map(*n.items[i], path, {"type", "source", "target", "readOnly", "reclaim", "size"});
    if (!m) continue;
    VolumeMount mount;
    bool ok = true;
    Require(*m, "type", path);
    Require(*m, "target", path);
    if (auto* v = m->Get("type")) {
      auto is_type = [](const std::string& x) {
        return x == "volume" || x == "bind" || x == "tmpfs";
      };
      if (auto t = Checked(*v, path + ".type", is_type, "volume, bind or tmpfs")) {
        mount.type = *t == "volume" ? VolumeMount::Type::kVolume
                     : *t == "bind" ? VolumeMount::Type::kBind
                                    : VolumeMount::Type::kTmpfs;
      } else {
        ok = false;
      }
    } else {
      ok = false;
    }
    if (auto* v = m->Get("target")) {
      if (auto t = Checked(*v, path + ".target", IsMountPath,
                           "an absolute path in the container, without '.' or '..' segments, "
                           "spaces or ':'")) {
        mount.target = CleanPath(*t);
        if (mount.target == "/") {
          Error(*v, path + ".target", "cannot mount over the container's root '/'");
          ok = false;
        } else if (auto [it, fresh] = targets.emplace(mount.target, path); !fresh) {
          Error(*v, path + ".target", "'" + mount.target + "' is already mounted by " + it->second);
          ok = false;
        }
      } else {
        ok = false;
      }
    }
    const YamlNode* source = m->Get("source");
    if (ok && mount.type == VolumeMount::Type::kTmpfs) {
      if (source) {
        Error(*m->keys.at("source"), path + ".source", "not allowed with type tmpfs");
        ok = false;
      }
    } else if (ok && !source) {
      Error(*m->self, path + ".source",
            std::string("required with type ") + VolumeTypeName(mount.type) +
                (mount.type == VolumeMount::Type::kVolume ? " (the volume's name)"
                                                          : " (the host path)"));
      ok = false;
    } else if (ok && mount.type == VolumeMount::Type::kVolume) {
      if (auto src = Checked(*source, path + ".source", IsVolumeName,
                             "a volume name (lower-case letters, digits, '_', '.' and '-', "
                             "starting with a letter or digit, 2 to 63 characters)")) {
        mount.source = *src;
      } else {
        ok = false;
      }
    } else if (ok) {  // bind
      if (auto src = Checked(*source, path + ".source", IsMountPath,
                             "an absolute host path, without '.' or '..' segments, spaces or "
                             "':'")) {
        mount.source = CleanPath(*src);
        bool allowed = false;
        for (const std::string& raw : limits_.allowed_bind_paths) {
          std::string root = CleanPath(raw);
          if (mount.source == root || root == "/" ||
              (mount.source.size() > root.size() && mount.source.rfind(root, 0) == 0 &&
               mount.source[root.size()] == '/')) {
            allowed = true;
          }
        }
        if (!allowed) {
          std::string list;
          for (const std::string& r : limits_.allowed_bind_paths) {
            list += (list.empty() ? "" : ", ") + CleanPath(r);
          }
          Error(*source, path + ".source",
                "bind mount of host path '" + mount.source + "' is not allowed: " +
                    (list.empty() ? std::string("the operator allowed no host path")
                                  : "it is not below an allowed path (" + list + ")") +
                    "; the operator allows paths with `reconcile --allow-bind PATH`");
          ok = false;
        }
      } else {
        ok = false;
      }
    }
    if (auto* v = m->Get("readOnly")) {
      if (auto b = Bool(*v, path + ".readOnly")) mount.read_only = *b;
    }
    if (auto* v = m->Get("reclaim")) {
      auto is_reclaim = [](const std::string& x) { return x == "retain" || x == "delete"; };
      if (ok && mount.type != VolumeMount::Type::kVolume) {
        Error(*m->keys.at("reclaim"), path + ".reclaim", "only allowed with type volume");
        ok = false;
      } else if (auto r = Checked(*v, path + ".reclaim", is_reclaim, "retain or delete")) {
        mount.reclaim =
            *r == "delete" ? VolumeMount::Reclaim::kDelete : VolumeMount::Reclaim::kRetain;
      }
    }
    if (auto* v = m->Get("size")) {
      if (ok && mount.type != VolumeMount::Type::kTmpfs) {
        Error(*m->keys.at("size"), path + ".size", "only allowed with type tmpfs");
        ok = false;
      } else if (auto sz =
                     Checked(*v, path + ".size", IsMemory, "a size such as 64Mi, 1Gi or 512M")) {
        mount.size = *sz;
      }
    }
    if (ok) {
      if (mount.type == VolumeMount::Type::kVolume) {
        a.field_locations.emplace("spec.volumes." + mount.source, At(*source));
      }
      a.volumes.push_back(std::move(mount));
    }
  }
  std::sort(a.volumes.begin(), a.volumes.end(),
            [](const VolumeMount& x, const VolumeMount& y) { return x.target < y.target; });
}

void Decoder::Ports(const YamlNode& n, Agent& a) {
  if (n.kind != Kind::kSequence) {
    TypeError(n, "spec.ports", "a list of ports ({containerPort, protocol, hostIP, hostPort})");
    return;
  }
  std::map<std::pair<int, std::string>, std::string> seen;  // -> field of the first
  std::map<std::pair<std::string, int>, std::string> host_seen;
  for (size_t i = 0; i < n.items.size(); ++i) {
    const std::string path = "spec.ports[" + std::to_string(i) + "]";
    auto m = Map(*n.items[i], path, {"containerPort", "protocol", "hostIP", "hostPort", "publish"});
    if (!m) continue;
    PortMapping port;
    bool ok = true;
    Require(*m, "containerPort", path);
    if (auto* v = m->Get("containerPort")) {
      if (auto p = Int(*v, path + ".containerPort", 1, 65535)) {
        port.container_port = static_cast<int>(*p);
      } else {
        ok = false;
      }
    } else {
      ok = false;
    }
    if (auto* v = m->Get("protocol")) {
      auto is_protocol = [](const std::string& x) { return x == "tcp" || x == "udp"; };
      if (auto p = Checked(*v, path + ".protocol", is_protocol, "tcp or udp")) {
        port.protocol = *p;
      } else {
        ok = false;
      }
    }
    if (auto* v = m->Get("hostIP")) {
      if (auto p = Checked(*v, path + ".hostIP", IsIpAddress, "an IPv4 or IPv6 address")) {
        port.host_ip = *p;
      }
    }
    if (auto* v = m->Get("hostPort")) {
      if (auto p = Int(*v, path + ".hostPort", 0, 65535)) port.host_port = static_cast<int>(*p);
    }
    if (auto* v = m->Get("publish")) {
      if (auto b = Bool(*v, path + ".publish")) port.publish = *b;
      if (!port.publish) {
        for (const char* key : {"hostIP", "hostPort"}) {
          if (m->Has(key)) {
            Error(*m->keys.at(key), path + "." + key,
                  "not allowed with publish: false (the port is not bound on the host)");
            ok = false;
          }
        }
      }
    }
    if (!ok) continue;
    const YamlNode& at = *m->Get("containerPort");
    std::string key = std::to_string(port.container_port) + "/" + port.protocol;
    if (port.protocol == "tcp" && port.container_port == a.port && a.port != 0) {
      Error(at, path + ".containerPort",
            key +
                " is the agent's main port (spec.port), published already; set its host "
                "port with spec.hostPort");
      continue;
    }
    if (auto [it, fresh] = seen.emplace(std::pair(port.container_port, port.protocol), path);
        !fresh) {
      Error(at, path + ".containerPort", key + " is already listed at " + it->second);
      continue;
    }
    if (port.host_port != 0) {
      auto [it, fresh] =
          host_seen.emplace(std::pair(port.protocol + " " + port.host_ip, port.host_port), path);
      if (!fresh) {
        Error(*m->Get("hostPort"), path + ".hostPort",
              "host port " + std::to_string(port.host_port) + "/" + port.protocol +
                  " is already used by " + it->second);
        continue;
      }
    }
    a.ports.push_back(std::move(port));
  }
  std::sort(a.ports.begin(), a.ports.end(), [](const PortMapping& x, const PortMapping& y) {
    return std::tie(x.container_port, x.protocol) < std::tie(y.container_port, y.protocol);
  });
}

void Decoder::HealthCheckSpec(const YamlNode& n, Agent& a) {
  auto h = Map(n, "spec.healthCheck",
               {"path", "port", "exec", "tcp", "interval", "timeout", "startPeriod", "retries"});
  if (!h) return;
  HealthCheck hc;
  bool ok = true;
  // At most one of path, exec and tcp: the second one written is the error.
  const YamlNode* first = nullptr;
  std::string first_name;
  for (const auto& entry : h->self->entries) {
    const YamlNode& key = entry.first->Resolved();
    const std::string& k = key.value;
    if ((k != "path" && k != "exec" && k != "tcp") || k == first_name) continue;
    if (first == nullptr) {
      first = &key;
      first_name = k;
      continue;
    }
    Error(key, "spec.healthCheck." + k,
          "path (HTTP), exec (a command) and tcp (a port) are exclusive: '" + first_name +
              "' is set already; keep one");
    ok = false;
  }
  if (auto* p = h->Get("path")) {
    auto starts_with_slash = [](const std::string& s) { return !s.empty() && s[0] == '/'; };
    if (auto s = Checked(*p, "spec.healthCheck.path", starts_with_slash,
                         "an HTTP path starting with '/'")) {
      hc.path = *s;
    }
  }
  if (auto* p = h->Get("exec")) {
    hc.kind = HealthCheck::Kind::kExec;
    if (auto l = StringList(*p, "spec.healthCheck.exec")) {
      if (l->empty() ||
          std::any_of(l->begin(), l->end(), [](const std::string& x) { return x.empty(); })) {
        Error(*p, "spec.healthCheck.exec",
              "must be a non-empty list of non-empty strings: the command to run in the container "
              "and its arguments, "
              "e.g. [\"pg_isready\", \"-U\", \"postgres\"] (a shell line: [\"/bin/sh\", \"-c\", "
              "\"...\"])");
        ok = false;
      } else {
        hc.exec = *l;
      }
    } else {
      ok = false;
    }
  }
  if (auto* p = h->Get("tcp")) {
    hc.kind = HealthCheck::Kind::kTcp;
    if (auto port = Int(*p, "spec.healthCheck.tcp", 1, 65535)) {
      hc.port = static_cast<int>(*port);
    } else {
      ok = false;
    }
  }
  if (auto* p = h->Get("port")) {
    if (h->Has("exec") || h->Has("tcp")) {
      Error(*h->keys.at("port"), "spec.healthCheck.port",
            "only with the HTTP check (path); tcp names its own port, exec needs none");
      ok = false;
    } else if (auto port = Int(*p, "spec.healthCheck.port", 1, 65535)) {
      hc.port = static_cast<int>(*port);
    }
  }
  if (auto* p = h->Get("interval")) {
    if (auto ms = Duration(*p, "spec.healthCheck.interval", true)) hc.interval_ms = *ms;
  }
  if (auto* p = h->Get("timeout")) {
    if (auto ms = Duration(*p, "spec.healthCheck.timeout", true)) hc.timeout_ms = *ms;
  }
  if (auto* p = h->Get("startPeriod")) {
    if (auto ms = Duration(*p, "spec.healthCheck.startPeriod", false)) hc.start_period_ms = *ms;
  }
  if (auto* p = h->Get("retries")) {
    if (auto r = Int(*p, "spec.healthCheck.retries", 1, 10000)) hc.retries = static_cast<int>(*r);
  }
  // The HTTP check goes through the published port; an unpublished one is
  // reachable only from the agent's networks.
  if (ok && hc.kind == HealthCheck::Kind::kHttp && !a.publish &&
      (hc.port == 0 || hc.port == a.port)) {
    Error(n, "spec.healthCheck",
          "the HTTP health check needs its port published, and spec.publish is false: give "
          "healthCheck.port another (published) port the agent serves /health on, use exec or "
          "tcp, or leave healthCheck out (reconcile then waits for the container to run)");
    ok = false;
  }
  if (ok) a.health_check = hc;
}

std::vector<std::string> Decoder::Capabilities(const YamlNode& n, const std::string& path) {
  std::set<std::string> out;
  if (n.kind != Kind::kSequence) {
    TypeError(n, path, "a list of capability names such as NET_ADMIN");
    return {};
  }
  for (size_t i = 0; i < n.items.size(); ++i) {
    const YamlNode& item = n.items[i]->Resolved();
    const std::string field = path + "[" + std::to_string(i) + "]";
    auto s = String(item, field);
    if (!s) continue;
    std::string shown = s->size() > 40 ? s->substr(0, 40) + "..." : *s;
    if (s->rfind("CAP_", 0) == 0 && IsCapability(s->substr(4))) {
      Error(item, field, "write '" + s->substr(4) + "', without the CAP_ prefix");
    } else if (!IsCapability(*s)) {
      Error(item, field,
            "unknown capability '" + shown +
                "': must be a Linux capability in capital letters without CAP_ (NET_ADMIN, "
                "SYS_TIME, CHOWN, ... see capabilities(7)) or ALL");
    } else if (!out.insert(*s).second) {
      Error(item, field, "'" + *s + "' is listed twice");
    }
  }
  return {out.begin(), out.end()};
}

void Decoder::ContainerFields(const Fields& f, Agent& a) {
  if (auto* v = f.Get("stopSignal")) {
    if (auto s = Checked(*v, "spec.stopSignal", IsSignalName,
                         "a signal name such as SIGTERM, SIGINT, SIGQUIT or SIGUSR1")) {
      a.stop_signal = *s;
    }
  }
  if (auto* v = f.Get("stopGracePeriod")) {
    if (auto ms = Duration(*v, "spec.stopGracePeriod", false)) {
      if (*ms % 1000 != 0 || *ms > 3600000) {
        Error(*v, "spec.stopGracePeriod",
              "must be whole seconds from 0s to 1h (e.g. 10s, 2m), got '" + v->value + "'");
      } else {
        a.stop_grace_period_ms = *ms;
      }
    }
  }
  if (auto* v = f.Get("user")) {
    ScalarType t = v->kind == Kind::kScalar ? TypeOf(*v) : ScalarType::kNull;
    if (t == ScalarType::kInt) {
      if (auto n = Int(*v, "spec.user", 0, 4294967294LL)) a.user = std::to_string(*n);
    } else if (auto s = Checked(*v, "spec.user", IsUserSpec,
                                "a user and optional group, each a name or a numeric id: 1000, "
                                "1000:1000, postgres or app:staff")) {
      a.user = *s;
    }
  }
  if (auto* v = f.Get("capAdd")) a.cap_add = Capabilities(*v, "spec.capAdd");
  if (auto* v = f.Get("capDrop")) {
    a.cap_drop = Capabilities(*v, "spec.capDrop");
    for (size_t i = 0; v->kind == Kind::kSequence && i < v->items.size(); ++i) {
      const YamlNode& item = v->items[i]->Resolved();
      if (item.kind == Kind::kScalar &&
          std::binary_search(a.cap_add.begin(), a.cap_add.end(), item.value)) {
        Error(item, "spec.capDrop[" + std::to_string(i) + "]",
              "'" + item.value + "' is in both capAdd and capDrop");
      }
    }
  }
  if (auto* v = f.Get("readOnlyRootFilesystem")) {
    if (auto b = Bool(*v, "spec.readOnlyRootFilesystem")) a.read_only_root_filesystem = *b;
  }
  if (auto* v = f.Get("labels")) {
    if (auto entries = FreeMap(*v, "spec.labels")) {
      for (const auto& [key, value] : *entries) {
        const std::string field = "spec.labels." + key->value;
        std::string shown = key->value.size() > 80 ? key->value.substr(0, 80) + "..." : key->value;
        if (key->value.rfind("reconcile.dev/", 0) == 0) {
          Error(*key, field,
                "label keys under reconcile.dev/ are reconcile's own (ownership, spec hash): "
                "choose another key");
          continue;
        }
        if (!IsLabelKey(key->value)) {
          Error(*key, field,
                "invalid label key '" + shown +
                    "': must be letters, digits, '.', '_', '/' and '-', starting and ending with "
                    "a letter or digit, at most 253 characters");
          continue;
        }
        auto text = ScalarText(*value, field);
        if (!text) continue;
        if (auto it = a.labels.find(key->value); it != a.labels.end() && it->second != *text) {
          Error(*key, field,
                "'" + shown +
                    "' is also in metadata.labels with another value; the containers "
                    "carry both maps, so give one value");
          continue;
        }
        a.container_labels[key->value] = *text;
      }
    }
  }
  if (auto* v = f.Get("hostname")) {
    if (auto s = Checked(*v, "spec.hostname", IsDnsLabel,
                         "a DNS label (lower-case letters, digits and '-', starting and ending "
                         "with a letter or digit, at most 63 characters)")) {
      a.hostname = *s;
    }
  }
}

std::optional<SecretRef> Decoder::SecretReference(const YamlNode& value, const std::string& field,
                                                  const std::vector<std::string>& extra,
                                                  std::map<std::string, SourceLocation>& locations,
                                                  std::optional<Fields>* fields) {
  if (value.kind != Kind::kMap) {
    // Never echo the value: it may be a secret.
    Error(value, field,
          "secrets must be references, not values: write {file: NAME} (a file under the "
          "secrets folder), {env: VAR} (an environment variable of the engine), {aws: "
          "{secretId: ID}} (AWS Secrets Manager), {vault: {path: PATH, key: KEY}} (Vault KV "
          "v2) or {sops: {file: FILE, key: KEY}} (a SOPS-encrypted file of the tree), and keep "
          "the secret itself out of Git");
    return std::nullopt;
  }
  static const std::vector<std::string> kSources = {"file", "env", "aws", "vault", "sops"};
  std::vector<std::string> known = kSources;
  known.insert(known.end(), extra.begin(), extra.end());
  auto ref = Map(value, field, known);
  if (!ref) return std::nullopt;
  if (fields) *fields = ref;
  int refs = 0;
  for (const std::string& k : kSources) refs += static_cast<int>(ref->Has(k));
  if (refs != 1) {
    // None, but a misspelled key was reported already: one error is enough.
    bool reported = refs == 0 && ref->values.size() < ref->self->entries.size();
    if (!reported) {
      Error(value, field, "must have exactly one of 'file', 'env', 'aws', 'vault' or 'sops'");
    }
    return std::nullopt;
  }
  if (auto* file = ref->Get("file")) {
    auto s = Checked(*file, field + ".file", IsSecretFileName,
                     "a file name in the secrets folder (letters, digits, '.', '_', '-')");
    if (!s) return std::nullopt;
    return SecretRef{SecretRef::Source::kFile, *s};
  }
  if (auto* aws = ref->Get("aws")) return AwsSecretReference(*aws, field + ".aws");
  if (auto* vault = ref->Get("vault")) return VaultSecretReference(*vault, field + ".vault");
  if (auto* sops = ref->Get("sops")) return SopsSecretReference(*sops, field + ".sops", locations);
  auto s = Checked(*ref->Get("env"), field + ".env", IsEnvName,
                   "an environment variable name (^[A-Za-z_][A-Za-z0-9_]*$)");
  if (!s) return std::nullopt;
  // For the allow-list check (CheckSecretEnvPolicy), run after loading.
  locations[field + ".env"] = At(*ref->Get("env"));
  return SecretRef{SecretRef::Source::kEnv, *s};
}

namespace {

bool AllOf(const std::string& s, size_t min, size_t max, const char* extra) {
  if (s.size() < min || s.size() > max) return false;
  return std::all_of(s.begin(), s.end(), [&](unsigned char c) {
    return std::isalnum(c) || std::strchr(extra, c) != nullptr;
  });
}

// A secret's field name (aws key, vault key): no '?', '&', '=' (the
// reference's text form) and nothing that needs quoting.
bool IsSecretKey(const std::string& s) { return AllOf(s, 1, 128, "_.-@/+"); }

}  // namespace

std::optional<SecretRef> Decoder::AwsSecretReference(const YamlNode& n, const std::string& field) {
  auto f = Map(n, field, {"secretId", "key", "versionStage", "versionId", "region"});
  if (!f) return std::nullopt;
  SecretRef r;
  r.source = SecretRef::Source::kAws;
  bool ok = true;
  Require(*f, "secretId", field);
  if (!f->Has("secretId")) ok = false;
  auto take = [&](const char* key, std::string& out,
                  const std::function<bool(const std::string&)>& check, const std::string& what) {
    if (auto* v = f->Get(key)) {
      if (auto s = Checked(*v, field + "." + key, check, what)) {
        out = *s;
      } else {
        ok = false;
      }
    }
  };
  // Secrets Manager: names of 1 to 512 of [A-Za-z0-9/_+=.@-], or an ARN.
  take(
      "secretId", r.name, [](const std::string& s) { return AllOf(s, 1, 2048, "/_+=.@-:"); },
      "a secret name or ARN (letters, digits and /_+=.@-:, at most 2048 characters)");
  take("key", r.key, IsSecretKey,
       "a field name of the JSON SecretString (letters, digits and _.-@/+, at most 128)");
  take(
      "versionStage", r.version_stage,
      [](const std::string& s) { return AllOf(s, 1, 256, "_.-@/+"); },
      "a staging label such as AWSCURRENT or AWSPREVIOUS");
  take(
      "versionId", r.version, [](const std::string& s) { return AllOf(s, 32, 64, "-"); },
      "a version id (32 to 64 letters, digits and '-')");
  take(
      "region", r.region, [](const std::string& s) { return AllOf(s, 1, 63, "-"); },
      "an AWS region such as eu-west-1");
  if (!ok) return std::nullopt;
  return r;
}

std::optional<SecretRef> Decoder::VaultSecretReference(const YamlNode& n,
                                                       const std::string& field) {
  auto f = Map(n, field, {"path", "key", "version", "mount"});
  if (!f) return std::nullopt;
  SecretRef r;
  r.source = SecretRef::Source::kVault;
  bool ok = true;
  Require(*f, "path", field);
  Require(*f, "key", field);
  if (!f->Has("path") || !f->Has("key")) ok = false;
  auto is_path = [](const std::string& s) {
    if (!AllOf(s, 1, 512, "/_.-")) return false;
    if (s.front() == '/' || s.back() == '/' || s.find("//") != std::string::npos) return false;
    return ("/" + s + "/").find("/../") == std::string::npos &&
           ("/" + s + "/").find("/./") == std::string::npos;
  };
  std::string path;
  if (auto* v = f->Get("path")) {
    if (auto s = Checked(*v, field + ".path", is_path,
                         "a secret path such as secret/db or db (letters, digits, '/', '_', "
                         "'.', '-'; no '..' segments)")) {
      path = *s;
    } else {
      ok = false;
    }
  }
  if (auto* v = f->Get("mount")) {
    if (auto s = Checked(*v, field + ".mount", is_path,
                         "a KV v2 mount path such as secret (letters, digits, '/', '_', '.', "
                         "'-')")) {
      r.mount = *s;
    } else {
      ok = false;
    }
  }
  if (auto* v = f->Get("key")) {
    if (auto s = Checked(*v, field + ".key", IsSecretKey,
                         "a field name of the secret's data (letters, digits and _.-@/+, at most "
                         "128)")) {
      r.key = *s;
    } else {
      ok = false;
    }
  }
  if (auto* v = f->Get("version")) {
    if (auto i = Int(*v, field + ".version", 1, 1000000000)) {
      r.version = std::to_string(*i);
    } else {
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  // Without mount, the path's first segment is the mount (`vault kv get
  // secret/db`); the HTTP API's form MOUNT/data/PATH is accepted too.
  if (r.mount.empty()) {
    const size_t slash = path.find('/');
    if (slash == std::string::npos) {
      Error(*f->Get("path"), field + ".path",
            "names no mount: write MOUNT/PATH (secret/db) or set mount");
      return std::nullopt;
    }
    r.mount = path.substr(0, slash);
    path = path.substr(slash + 1);
  } else if (path.starts_with(r.mount + "/")) {
    if (path.substr(r.mount.size() + 1).starts_with("data/"))
      path = path.substr(r.mount.size() + 1);
  }
  if (path.starts_with("data/") && path.size() > 5) path = path.substr(5);
  r.name = path;
  return r;
}

std::optional<SecretRef> Decoder::SopsSecretReference(
    const YamlNode& n, const std::string& field, std::map<std::string, SourceLocation>& locations) {
  auto f = Map(n, field, {"file", "key"});
  if (!f) return std::nullopt;
  Require(*f, "file", field);
  Require(*f, "key", field);
  if (!f->Has("file") || !f->Has("key")) return std::nullopt;
  SecretRef r;
  r.source = SecretRef::Source::kSops;
  bool ok = true;
  const YamlNode* file = f->Get("file");
  auto is_file = [](const std::string& s) {
    return AllOf(s, 1, 1024, "/_.-") && s.front() != '/' && s.back() != '/';
  };
  if (auto s = Checked(*file, field + ".file", is_file,
                       "a path relative to the manifest's folder (letters, digits, '/', '_', "
                       "'.', '-')")) {
    // Written by an Environment's patch: relative to the patch's folder.
    const std::string dir = file->origin && *file->origin != file_
                                ? fs::path(*file->origin).parent_path().generic_string()
                                : manifest_dir_;
    fs::path rel = (fs::path(dir) / *s).lexically_normal();
    if (rel.empty() || *rel.begin() == ".." || rel.filename().empty()) {
      Error(*file, field + ".file", "'" + *s + "' leads outside the tree");
      ok = false;
    } else if (!SopsFormatFromPath(rel.generic_string()).ok()) {
      Error(*file, field + ".file",
            "'" + *s + "' is not a file sops reads here: name it *.yaml, *.yml, *.json or *.env");
      ok = false;
    } else {
      r.name = rel.generic_string();
    }
  } else {
    ok = false;
  }
  if (auto s = Checked(*f->Get("key"), field + ".key", IsSecretKey,
                       "the value's path in the file: keys joined by '.', list items by index "
                       "(db.password, hosts.0), or a dotenv key (letters, digits and _.-@/+, at "
                       "most 128)")) {
    r.key = *s;
  } else {
    ok = false;
  }
  if (!ok) return std::nullopt;
  // For the file check after loading (sops_store.h CheckSopsFiles).
  locations[field + ".file"] = At(*file);
  return r;
}

void Decoder::SecretFiles(const YamlNode& n, Agent& a) {
  auto entries = FreeMap(n, "spec.secretFiles");
  if (!entries) return;
  a.field_locations["spec.secretFiles"] = At(n);
  std::map<std::string, std::string> targets;  // target -> what mounts it
  for (const VolumeMount& v : a.volumes) targets.emplace(v.target, "a volume (spec.volumes)");
  for (const auto& [key, value] : *entries) {
    const std::string field = "spec.secretFiles." + key->value;
    if (!IsSecretName(key->value)) {
      Error(*key, field,
            "invalid secret name '" + key->value.substr(0, 80) +
                "': must be 1 to 63 letters, digits, '_', '.' and '-', starting with a letter or "
                "digit (it names the file /run/secrets/NAME)");
      continue;
    }
    std::optional<Fields> m;
    auto ref = SecretReference(*value, field, {"target", "mode"}, a, &m);
    if (!ref) continue;
    SecretFile file;
    file.ref = *ref;
    file.target = "/run/secrets/" + key->value;
    const YamlNode* target_at = key;
    bool ok = true;
    if (auto* v = m->Get("target")) {
      target_at = v;
      if (auto t = Checked(*v, field + ".target", IsMountPath,
                           "an absolute path in the container, without '.' or '..' segments, "
                           "spaces or ':'")) {
        file.target = CleanPath(*t);
        if (file.target == "/") {
          Error(*v, field + ".target", "cannot mount a file over the container's root '/'");
          ok = false;
        }
      } else {
        ok = false;
      }
    }
    if (auto* v = m->Get("mode")) {
      std::optional<int> mode;
      if (v->kind == Kind::kScalar && TypeOf(*v) == ScalarType::kString) {
        mode = ParseFileMode(v->value);
      }
      if (mode) {
        file.mode = *mode;
      } else {
        Error(*v, field + ".mode",
              "must be an octal mode as a quoted string, such as \"0400\" or \"0440\" (YAML "
              "reads 0400 unquoted as a number)");
        ok = false;
      }
    }
    if (!ok) continue;
    const std::string target_field = m->Has("target") ? field + ".target" : field;
    if (auto [it, fresh] = targets.emplace(file.target, field); !fresh) {
      Error(*target_at, target_field,
            "'" + file.target + "' is already the target of " + it->second +
                (m->Has("target") ? "" : " (the default target /run/secrets/NAME)"));
      continue;
    }
    a.secret_files[key->value] = file;
  }
}

void Decoder::Networks(const YamlNode& n, Agent& a) {
  if (n.kind != Kind::kSequence) {
    TypeError(n, "spec.networks", "a list of network names or {name, aliases}");
    return;
  }
  a.field_locations["spec.networks"] = At(n);
  std::map<std::string, std::string> seen;  // name -> field of its first listing
  for (size_t i = 0; i < n.items.size(); ++i) {
    const std::string path = "spec.networks[" + std::to_string(i) + "]";
    const YamlNode& item = n.items[i]->Resolved();
    NetworkAttachment net;
    const YamlNode* name_node = nullptr;
    const YamlNode* aliases = nullptr;
    std::string name_field = path;
    if (item.kind == Kind::kScalar) {
      name_node = &item;
    } else if (item.kind == Kind::kMap) {
      auto m = Map(item, path, {"name", "aliases"});
      if (!m) continue;
      Require(*m, "name", path);
      name_node = m->Get("name");
      aliases = m->Get("aliases");
      name_field = path + ".name";
    } else {
      TypeError(item, path, "a network name or {name, aliases}");
      continue;
    }
    if (!name_node) continue;
    auto name =
        Checked(*name_node, name_field, IsNetworkName,
                "a network name (1 to 63 letters, digits, '_', '.' and '-', starting with a "
                "letter or digit)");
    if (!name) continue;
    if (IsPredefinedNetwork(*name)) {
      Error(*name_node, name_field,
            "'" + *name +
                "' is one of the engine's own networks, not one reconcile owns; to run on an "
                "existing network, set the Target's docker.network");
      continue;
    }
    if (auto [it, fresh] = seen.emplace(*name, path); !fresh) {
      Error(*name_node, name_field,
            "network '" + *name + "' is listed twice (first at " + it->second + ")");
      continue;
    }
    net.name = *name;
    if (aliases) {
      if (aliases->kind != Kind::kSequence) {
        TypeError(*aliases, path + ".aliases", "a list of DNS names");
      } else {
        std::set<std::string> unique;
        for (size_t j = 0; j < aliases->items.size(); ++j) {
          const std::string field = path + ".aliases[" + std::to_string(j) + "]";
          const YamlNode& alias = aliases->items[j]->Resolved();
          auto s = Checked(alias, field, IsDnsLabel,
                           "a DNS label (lower-case letters, digits and '-', at most 63, not "
                           "starting or ending with '-')");
          if (!s) continue;
          if (!unique.insert(*s).second) {
            Error(alias, field, "alias '" + *s + "' is listed twice");
            continue;
          }
          if (*s != a.name) net.aliases.push_back(*s);  // the agent's name is always one
        }
      }
    }
    a.field_locations["spec.networks." + net.name] = At(*name_node);
    a.networks.push_back(std::move(net));
  }
  std::sort(a.networks.begin(), a.networks.end(),
            [](const NetworkAttachment& x, const NetworkAttachment& y) { return x.name < y.name; });
}

std::vector<DeployWindow> Decoder::Windows(const YamlNode& n, const std::string& path) {
  std::vector<DeployWindow> out;
  if (n.kind != Kind::kSequence) {
    TypeError(n, path, "a list of windows");
    return out;
  }
  for (size_t i = 0; i < n.items.size(); ++i) {
    const std::string at = path + "[" + std::to_string(i) + "]";
    auto w = Map(*n.items[i], at, {"kind", "schedule", "duration", "timeZone"});
    if (!w) continue;
    DeployWindow window;
    window.location = At(*w->self);
    bool ok = true;
    for (const char* key : {"kind", "schedule", "duration"}) {
      if (!w->Has(key)) ok = false;
      Require(*w, key, at);
    }
    if (auto* v = w->Get("kind")) {
      auto is_kind = [](const std::string& x) { return x == "allow" || x == "deny"; };
      if (auto k = Checked(*v, at + ".kind", is_kind, "allow or deny")) {
        window.kind = *k == "allow" ? DeployWindow::Kind::kAllow : DeployWindow::Kind::kDeny;
      } else {
        ok = false;
      }
    }
    auto non_empty = [](const std::string& x) { return !x.empty(); };
    if (auto* v = w->Get("schedule")) {
      auto sched =
          Checked(*v, at + ".schedule", non_empty, "a cron expression such as \"0 8 * * 1-5\"");
      if (sched) window.schedule = *sched;
      ok = ok && sched.has_value();
    }
    if (auto* v = w->Get("duration")) {
      auto ms = Duration(*v, at + ".duration", true);
      if (ms) window.duration_ms = *ms;
      ok = ok && ms.has_value();
    }
    if (auto* v = w->Get("timeZone")) {
      auto zone =
          Checked(*v, at + ".timeZone", non_empty, "an IANA time zone such as Europe/Berlin");
      if (zone) window.time_zone = *zone;
      ok = ok && zone.has_value();
    }
    if (ok) out.push_back(std::move(window));
  }
  return out;
}

void Decoder::EnvironmentSpec(const Fields& f, Environment& e) {
  Require(f, "bases", "spec");
  if (auto* v = f.Get("bases")) {
    if (v->kind != Kind::kSequence) {
      TypeError(*v, "spec.bases", "a list of folders");
    } else if (v->items.empty()) {
      Error(*v, "spec.bases", "must name at least one base folder");
    }
    for (size_t i = 0; v->kind == Kind::kSequence && i < v->items.size(); ++i) {
      const YamlNode& item = v->items[i]->Resolved();
      const std::string field = "spec.bases[" + std::to_string(i) + "]";
      auto non_empty = [](const std::string& x) { return !x.empty(); };
      auto base = Checked(item, field, non_empty, "a folder relative to the Environment's folder");
      if (!base) continue;
      fs::path rel = (fs::path(manifest_dir_) / *base).lexically_normal();
      std::string key = rel.generic_string();
      while (!key.empty() && key.back() == '/') key.pop_back();
      if (key == ".") key.clear();
      if (fs::path(*base).is_absolute() || key == ".." || key.rfind("../", 0) == 0) {
        Error(item, field,
              "base folder '" + *base +
                  "' leads outside the tree (bases are folders inside the repository root or "
                  "--source folder)");
        continue;
      }
      e.field_locations[field] = At(item);
      e.field_locations["spec.bases." + key] = At(item);
      e.bases.push_back(key);
    }
  }
  if (auto* v = f.Get("labels")) e.common_labels = StringMap(*v, "spec.labels", false, false);
  if (auto* v = f.Get("env")) e.env = StringMap(*v, "spec.env", true, true);
  if (auto* v = f.Get("windows")) e.windows = Windows(*v, "spec.windows");
  if (auto* v = f.Get("healOutsideWindows")) {
    if (auto b = Bool(*v, "spec.healOutsideWindows")) e.heal_outside_windows = *b;
  }
  if (auto* v = f.Get("approval")) e.approval = Approval(*v, "spec.approval");
}

ApprovalMode Decoder::Approval(const YamlNode& n, const std::string& path) {
  auto is_mode = [](const std::string& x) { return x == "auto" || x == "required"; };
  auto s = Checked(n, path, is_mode, "auto or required");
  return s && *s == "required" ? ApprovalMode::kRequired : ApprovalMode::kAuto;
}

void Decoder::NotifierSpec(const Fields& f, Notifier& n) {
  Require(f, "type", "spec");
  std::string type;
  if (auto* v = f.Get("type")) {
    auto is_type = [](const std::string& x) {
      return x == "slack" || x == "webhook" || x == "github" || x == "gitlab";
    };
    if (auto s = Checked(*v, "spec.type", is_type, "slack, webhook, github or gitlab")) {
      type = *s;
      n.type = type == "slack"     ? Notifier::Type::kSlack
               : type == "webhook" ? Notifier::Type::kWebhook
               : type == "github"  ? Notifier::Type::kGithub
                                   : Notifier::Type::kGitlab;
    }
  }
  auto names = [&](const char* key, const std::function<bool(const std::string&)>& check,
                   const std::string& what, std::vector<std::string>& out) {
    const YamlNode* v = f.Get(key);
    if (!v) return;
    const std::string path = std::string("spec.") + key;
    const YamlNode& list = v->Resolved();
    if (list.kind != Kind::kSequence) {
      TypeError(list, path, "a list");
      return;
    }
    if (list.items.empty()) Error(list, path, "must not be empty (leave it out for all)");
    std::set<std::string> seen;
    for (size_t i = 0; i < list.items.size(); ++i) {
      const YamlNode& item = list.items[i]->Resolved();
      const std::string at = path + "[" + std::to_string(i) + "]";
      auto s = Checked(item, at, check, what);
      if (!s) continue;
      if (!seen.insert(*s).second) {
        Error(item, at, "'" + *s + "' is listed twice");
        continue;
      }
      out.push_back(*s);
    }
    std::sort(out.begin(), out.end());
  };
  auto is_event = [](const std::string& x) {
    return std::find_if(std::begin(kNotifierEvents), std::end(kNotifierEvents),
                        [&](const char* e) { return x == e; }) != std::end(kNotifierEvents);
  };
  names("events", is_event,
        "an event: applied, failed, unhealthy, rolled-back, drift, invalid-revision or blocked",
        n.events);
  if (!f.Has("events")) {
    for (const char* e : kNotifierEvents) n.events.push_back(e);
    std::sort(n.events.begin(), n.events.end());
  }
  names("agents", IsDnsLabel, "an Agent name (a DNS-1123 label)", n.agents);
  names("environments", IsDnsLabel, "an Environment name (a DNS-1123 label)", n.environments);

  // Which type each field belongs to; a field of another type is an error.
  const std::map<std::string, std::vector<std::string>> owners = {{"url", {"slack", "webhook"}},
                                                                  {"secret", {"webhook"}},
                                                                  {"token", {"github", "gitlab"}},
                                                                  {"owner", {"github"}},
                                                                  {"repo", {"github"}},
                                                                  {"deployments", {"github"}},
                                                                  {"projectId", {"gitlab"}},
                                                                  {"apiUrl", {"github", "gitlab"}}};
  auto allowed = [&](const std::string& key) {
    if (!f.Has(key) || type.empty()) return f.Has(key);
    const auto& types = owners.at(key);
    if (std::find(types.begin(), types.end(), type) != types.end()) return true;
    std::string list;
    for (const auto& t : types) list += (list.empty() ? "" : " or ") + t;
    Error(*f.keys.at(key), "spec." + key,
          "only allowed with type " + list + " (type is " + type + ")");
    return false;
  };
  auto required = [&](const std::string& key) {
    if (type.empty()) return;
    const auto& types = owners.at(key);
    if (std::find(types.begin(), types.end(), type) != types.end() && !f.Has(key)) {
      Error(*f.self, "spec." + key, "required with type " + type);
    }
  };
  auto secret = [&](const std::string& key, std::optional<SecretRef>& out) {
    required(key);
    if (!allowed(key)) return;
    n.field_locations["spec." + key] = At(*f.Get(key));
    out = SecretReference(f.Get(key)->Resolved(), "spec." + key, {}, n.field_locations);
    if (out && out->source != SecretRef::Source::kFile && out->source != SecretRef::Source::kEnv) {
      Error(f.Get(key)->Resolved(), "spec." + key,
            "a notifier reads its secrets from {file: NAME} or {env: VAR} only (secret stores "
            "serve agents' secretEnv and secretFiles)");
      out.reset();
    }
  };
  secret("url", n.url);
  secret("secret", n.secret);
  secret("token", n.token);
  required("owner");
  if (allowed("owner")) {
    auto is_owner = [](const std::string& x) {
      return !x.empty() && x.size() <= 100 && std::all_of(x.begin(), x.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '-' || c == '_' || c == '.';
      });
    };
    if (auto s = Checked(*f.Get("owner"), "spec.owner", is_owner,
                         "a GitHub user or organization ([A-Za-z0-9._-])")) {
      n.owner = *s;
    }
  }
  required("repo");
  if (allowed("repo")) {
    auto is_repo = [](const std::string& x) {
      return !x.empty() && x.size() <= 100 && x != "." && x != ".." &&
             std::all_of(x.begin(), x.end(), [](unsigned char c) {
               return std::isalnum(c) || c == '-' || c == '_' || c == '.';
             });
    };
    if (auto s =
            Checked(*f.Get("repo"), "spec.repo", is_repo, "a repository name ([A-Za-z0-9._-])")) {
      n.repo = *s;
    }
  }
  if (allowed("deployments")) {
    if (auto b = Bool(*f.Get("deployments"), "spec.deployments")) n.deployments = *b;
  }
  required("projectId");
  if (allowed("projectId")) {
    auto is_project = [](const std::string& x) {
      return !x.empty() && x.size() <= 255 && x.front() != '/' && x.back() != '/' &&
             std::all_of(x.begin(), x.end(), [](unsigned char c) {
               return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '/';
             });
    };
    const YamlNode& v = f.Get("projectId")->Resolved();
    if (auto s = ScalarText(v, "spec.projectId")) {
      if (is_project(*s)) {
        n.project_id = *s;
      } else {
        Error(v, "spec.projectId",
              "must be a GitLab project id (digits) or its path such as group/project");
      }
    }
  }
  n.api_url = type == "gitlab"   ? "https://gitlab.com/api/v4"
              : type == "github" ? "https://api.github.com"
                                 : "";
  if (allowed("apiUrl")) {
    // Not a secret, so it may hold neither credentials nor a query.
    auto is_api = [](const std::string& x) {
      std::string rest;
      if (x.rfind("https://", 0) == 0) {
        rest = x.substr(8);
      } else if (x.rfind("http://", 0) == 0) {
        rest = x.substr(7);
      } else {
        return false;
      }
      std::string host = rest.substr(0, rest.find('/'));
      return !host.empty() && host.find('@') == std::string::npos &&
             x.find_first_of("?# \t") == std::string::npos;
    };
    // Not echoed when wrong: it may hold credentials.
    if (auto s = String(*f.Get("apiUrl"), "spec.apiUrl")) {
      if (is_api(*s)) {
        n.api_url = *s;
        while (n.api_url.size() > 1 && n.api_url.back() == '/') n.api_url.pop_back();
      } else {
        Error(f.Get("apiUrl")->Resolved(), "spec.apiUrl",
              "must be an http(s) URL without credentials, query or fragment, such as "
              "https://api.github.com (a token belongs in spec.token)");
      }
    }
  }
}

void Decoder::RegistrySpec(const Fields& f, Registry& r) {
  Require(f, "url", "spec");
  if (auto* v = f.Get("url")) {
    if (auto s = Checked(*v, "spec.url", IsNoSpace,
                         "a registry host such as ghcr.io or localhost:5000")) {
      r.url = *s;
    }
  }
  Require(f, "repository", "spec");
  if (auto* v = f.Get("repository")) {
    if (auto s = Checked(*v, "spec.repository", IsRepository,
                         "a repository path such as acme/support-bot (lower-case)")) {
      r.repository = *s;
    }
  }
  bool custom = false;
  if (auto* v = f.Get("tagStrategy")) {
    auto is_strategy = [](const std::string& x) {
      return x == "git-sha" || x == "semver" || x == "timestamp" || x == "custom";
    };
    if (auto s =
            Checked(*v, "spec.tagStrategy", is_strategy, "git-sha, semver, timestamp or custom")) {
      r.tag_strategy = *s == "git-sha"     ? TagStrategy::kGitSha
                       : *s == "semver"    ? TagStrategy::kSemver
                       : *s == "timestamp" ? TagStrategy::kTimestamp
                                           : TagStrategy::kCustom;
      custom = r.tag_strategy == TagStrategy::kCustom;
    }
  }
  if (auto* v = f.Get("customTag")) {
    auto is_template = [](const std::string& s) { return CheckTagTemplate(s).empty(); };
    if (auto s = Checked(*v, "spec.customTag", is_template,
                         "a tag template: [A-Za-z0-9_.-] and the variables {sha}, {fullSha}, "
                         "{timestamp}, {version}, {agent}")) {
      r.custom_tag = *s;
    }
    if (!custom && f.Has("tagStrategy")) {
      Error(*f.keys.at("customTag"), "spec.customTag", "only allowed with tagStrategy custom");
    } else if (!f.Has("tagStrategy")) {
      Error(*f.keys.at("customTag"), "spec.customTag",
            "only allowed with tagStrategy custom (the default is git-sha)");
    }
  } else if (custom) {
    Error(*f.self, "spec.customTag", "required when tagStrategy is custom");
  }
  if (auto* v = f.Get("credentialsEnvPrefix")) {
    if (auto s = Checked(*v, "spec.credentialsEnvPrefix", IsEnvPrefix,
                         "an upper-case variable prefix (^[A-Z_][A-Z0-9_]*$)")) {
      r.credentials_env_prefix = *s;
    }
  }
  if (auto* v = f.Get("insecure")) {
    if (auto b = Bool(*v, "spec.insecure")) r.insecure = *b;
  }
}

// The block names of the built-in providers: each is allowed only beside its
// own `provider` (so a misplaced block is named, not just "unknown").
const std::vector<std::string>& BuiltinProviderNames() {
  static const std::vector<std::string> kNames = {"aws", "azure", "docker", "gcp"};
  return kNames;
}

// ^[a-z][a-z0-9-]{0,62}$ : a provider name (and the plugin file's suffix).
bool IsProviderName(std::string_view s) {
  return s.size() <= 63 && IsLower(s.front()) && IsLowerDash(s);
}

std::optional<nlohmann::json> Decoder::BlockJson(const YamlNode& raw, const std::string& path,
                                                 BlockNodes& nodes) {
  const YamlNode& n = raw.Resolved();
  nodes.values[path] = &n;
  switch (n.kind) {
    case Kind::kNull:
      return nlohmann::json();
    case Kind::kScalar:
      switch (TypeOf(n)) {
        case ScalarType::kNull:
          return nlohmann::json();
        case ScalarType::kBool:
          return nlohmann::json(n.value[0] == 't' || n.value[0] == 'T');
        case ScalarType::kInt:
          if (auto i = ParseInteger(n)) return nlohmann::json(*i);
          return nlohmann::json(n.value);  // too large for 64 bits: the text
        case ScalarType::kFloat: {
          double d = std::strtod(n.value.c_str(), nullptr);
          if (std::isfinite(d)) return nlohmann::json(d);
          return nlohmann::json(n.value);  // .inf, .nan: the text
        }
        case ScalarType::kString:
          return nlohmann::json(n.value);
      }
      return nlohmann::json(n.value);
    case Kind::kSequence: {
      nlohmann::json out = nlohmann::json::array();
      bool ok = true;
      for (size_t i = 0; i < n.items.size(); ++i) {
        auto item = BlockJson(*n.items[i], path + "[" + std::to_string(i) + "]", nodes);
        if (!item)
          ok = false;
        else
          out.push_back(std::move(*item));
      }
      return ok ? std::optional<nlohmann::json>(std::move(out)) : std::nullopt;
    }
    case Kind::kMap: {
      auto entries = FreeMap(n, path);
      if (!entries) return std::nullopt;
      nlohmann::json out = nlohmann::json::object();
      bool ok = true;
      for (const auto& [key, value] : *entries) {
        std::string field = path + "." + key->value;
        nodes.keys[field] = key;
        auto v = BlockJson(*value, field, nodes);
        if (!v)
          ok = false;
        else
          out[key->value] = std::move(*v);
      }
      return ok ? std::optional<nlohmann::json>(std::move(out)) : std::nullopt;
    }
    case Kind::kAlias:
      break;  // resolved above
  }
  return nlohmann::json();
}

// Where a provider's diagnostic about `field` points: the field's value (its
// key for an unknown field), or else its closest written parent.
const YamlNode* BlockNodes::Locate(const std::string& field, const std::string& message) const {
  if (message.rfind("unknown field", 0) == 0) {
    if (auto it = keys.find(field); it != keys.end()) return it->second;
  }
  std::string path = field;
  while (!path.empty()) {
    if (auto it = values.find(path); it != values.end()) return it->second;
    size_t cut = path.find_last_of(".[");
    if (cut == std::string::npos) break;
    path.resize(cut);
  }
  return nullptr;
}

void Decoder::TargetSpec(const YamlNode& raw, Target& t) {
  const YamlNode& node = raw.Resolved();
  // The provider decides which block is allowed, so it is read first.
  std::string written;
  if (node.kind == Kind::kMap) {
    for (const auto& [k, v] : node.entries) {
      const YamlNode& key = k->Resolved();
      const YamlNode& value = v->Resolved();
      if (key.kind == Kind::kScalar && key.value == "provider" && value.kind == Kind::kScalar &&
          TypeOf(value) == ScalarType::kString) {
        written = value.value;
      }
    }
  }
  const ProviderRegistry* registry = limits_.providers;
  std::vector<std::string> blocks = registry ? registry->Names() : std::vector<std::string>{};
  for (const std::string& b : BuiltinProviderNames()) {
    if (std::find(blocks.begin(), blocks.end(), b) == blocks.end()) blocks.push_back(b);
  }
  if (!written.empty() && std::find(blocks.begin(), blocks.end(), written) == blocks.end()) {
    blocks.push_back(written);
  }
  std::vector<std::string> known = {"provider"};
  known.insert(known.end(), blocks.begin(), blocks.end());
  auto f = Map(node, "spec", known);
  if (!f) return;
  Require(*f, "provider", "spec");
  if (auto* v = f->Get("provider")) {
    if (auto name = String(*v, "spec.provider")) {
      std::string available;
      for (const std::string& n : registry ? registry->Names() : BuiltinProviderNames()) {
        available += (available.empty() ? "" : ", ") + n;
      }
      if (name->empty() || !IsProviderName(*name)) {
        Error(*v, "spec.provider",
              "invalid value '" + name->substr(0, 80) +
                  "': must be a provider name (^[a-z][a-z0-9-]{0,62}$), such as " + available);
      } else if (registry && !registry->Has(*name)) {
        Error(*v, "spec.provider",
              "unknown provider '" + *name + "' (available: " + available +
                  "); a provider outside the binary is an executable reconcile-provider-" + *name +
                  " on RECONCILE_PLUGIN_PATH (docs/plugin-protocol.md)");
      } else {
        t.provider = *name;
      }
    }
  }
  const std::string& shown = t.provider.empty() ? written : t.provider;
  for (const std::string& b : blocks) {
    if (b == shown || !f->Has(b)) continue;
    Error(*f->keys.at(b), "spec." + b,
          "a " + b + " block is not allowed with provider " + (shown.empty() ? "(none)" : shown));
  }
  if (t.provider.empty()) return;

  // The block goes to its provider as JSON, exactly as written.
  const std::string path = "spec." + t.provider;
  BlockNodes nodes;
  nodes.values["spec"] = f->self;
  t.settings = nlohmann::json::object();
  if (const YamlNode* block = f->Get(t.provider)) {
    nodes.keys[path] = f->keys.at(t.provider);
    auto json = BlockJson(*block, path, nodes);
    if (!json) return;  // reported
    t.settings = std::move(*json);
  }
  const ProviderDefinition* definition = registry ? registry->Find(t.provider) : nullptr;
  if (!definition || !definition->validate_target) return;
  ValidateTargetRequest request;
  request.target = t.name;
  request.config = t.settings;
  ValidateTargetResponse response = definition->validate_target(request);
  for (const ProviderDiagnostic& d : response.diagnostics) {
    const YamlNode* at = nodes.Locate(d.field, d.message);
    if (!at) at = f->self;
    std::string message = d.message;
    if (!note_.empty() && FileOf(*at) != file_) message += note_;
    diags_.Add({d.severity, FileOf(*at), at->line, at->column, d.field, message});
  }
}

// ---------------------------------------------------------------------------
// Files.

// Returns the 1-based line and column of byte `offset` in `content`.
std::pair<int, int> LineColumn(const std::string& content, size_t offset) {
  int line = 1, column = 1;
  for (size_t i = 0; i < offset && i < content.size(); ++i) {
    if (content[i] == '\n') {
      ++line, column = 1;
    } else {
      ++column;
    }
  }
  return {line, column};
}

// Offset of the first byte that is not valid UTF-8, or npos.
size_t InvalidUtf8Offset(const std::string& s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    std::uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07;
    } else {
      return i;
    }
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return i;
    }
    i += len;
  }
  return std::string::npos;
}

bool IsManifestName(const std::string& name) {
  auto ends = [&](const std::string& ext) {
    return name.size() > ext.size() && name.compare(name.size() - ext.size(), ext.size(), ext) == 0;
  };
  return ends(".yaml") || ends(".yml");
}

bool Inside(const fs::path& canonical_root, const fs::path& canonical_path) {
  fs::path rel = canonical_path.lexically_relative(canonical_root);
  return !rel.empty() && *rel.begin() != "..";
}

struct ManifestFile {
  std::string rel;  // relative to the root, '/'-separated
  fs::path path;
};

// Collects manifest files below `dir` in sorted order; reports symlinks that
// lead out of the tree.
void Walk(const fs::path& canonical_root, const fs::path& dir, const std::string& rel_dir,
          std::set<fs::path>& visited, std::vector<ManifestFile>& files, Diagnostics& diags) {
  std::error_code ec;
  std::vector<std::string> names;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    names.push_back(it->path().filename().string());
  }
  if (ec) {
    diags.Error(rel_dir.empty() ? "." : rel_dir, 1, 1, "", "cannot read folder: " + ec.message());
    return;
  }
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    if (name.empty() || name[0] == '.') continue;  // .git, .reconcile, hidden files
    fs::path path = dir / name;
    std::string rel = rel_dir.empty() ? name : rel_dir + "/" + name;
    fs::file_status link = fs::symlink_status(path, ec);
    if (ec) continue;
    bool is_link = fs::is_symlink(link);
    fs::file_status st = fs::status(path, ec);
    if (ec && !is_link) continue;
    bool is_dir = !ec && fs::is_directory(st);
    if (is_link && (is_dir || IsManifestName(name))) {
      fs::path real = fs::canonical(path, ec);
      if (ec) {
        diags.Error(rel, 1, 1, "", "broken symlink");
        continue;
      }
      if (!Inside(canonical_root, real)) {
        diags.Error(rel, 1, 1, "", "symlink leads outside the tree (to " + real.string() + ")");
        continue;
      }
    }
    if (is_dir) {
      fs::path real = fs::canonical(path, ec);
      if (ec || !visited.insert(real).second) continue;  // a loop through symlinks
      Walk(canonical_root, path, rel, visited, files, diags);
    } else if (!ec && fs::is_regular_file(st) && IsManifestName(name)) {
      files.push_back({rel, path});
    }
  }
}

template <typename T>
void SortByName(std::vector<T>& items) {
  auto by_name = [](const T& a, const T& b) { return a.name < b.name; };
  if (!std::is_sorted(items.begin(), items.end(), by_name)) {
    std::stable_sort(items.begin(), items.end(), by_name);
  }
}

// True when `items` (sorted by name) holds `name`.
template <typename T>
bool HasName(const std::vector<T>& items, const std::string& name) {
  auto it = std::lower_bound(items.begin(), items.end(), name,
                             [](const T& item, const std::string& n) { return item.name < n; });
  return it != items.end() && it->name == name;
}

// The item of `items` (sorted by name) called `name`, or nullptr.
template <typename T>
const T* FindByName(const std::vector<T>& items, const std::string& name) {
  auto it = std::lower_bound(items.begin(), items.end(), name,
                             [](const T& item, const std::string& n) { return item.name < n; });
  return it != items.end() && it->name == name ? &*it : nullptr;
}

std::string Where(const SourceLocation& l) {
  return l.file + ":" + std::to_string(l.line) + ":" + std::to_string(l.column);
}

// Where `key` was written: the key itself, else the first recorded field
// below it ("spec.volumes" -> "spec.volumes.data"), else its closest
// recorded parent, else the resource's document.
template <typename T>
const SourceLocation& FieldAt(const T& resource, const std::string& key) {
  const auto& at = resource.field_locations;
  if (auto it = at.find(key); it != at.end()) return it->second;
  for (auto it = at.lower_bound(key); it != at.end() && it->first.rfind(key, 0) == 0; ++it) {
    char next = it->first[key.size()];
    if (next == '.' || next == '[') return it->second;
  }
  std::string path = key;
  for (size_t cut; (cut = path.find_last_of(".[")) != std::string::npos;) {
    path.resize(cut);
    if (auto it = at.find(path); it != at.end()) return it->second;
  }
  return resource.location;
}

// `items` must be sorted by name (SortByName), so that duplicates are adjacent.
template <typename T>
void CheckDuplicates(const std::vector<T>& items, const char* kind, Diagnostics& diags) {
  for (size_t begin = 0, end = 0; begin < items.size(); begin = end) {
    end = begin + 1;
    while (end < items.size() && items[end].name == items[begin].name) ++end;
    if (end - begin < 2) continue;
    const std::string& name = items[begin].name;
    std::vector<const T*> list;
    for (size_t i = begin; i < end; ++i) list.push_back(&items[i]);
    for (const T* item : list) {
      std::string others;
      for (const T* other : list) {
        if (other == item) continue;
        others += (others.empty() ? "" : ", ") + Where(FieldAt(*other, "metadata.name"));
      }
      const SourceLocation& at = FieldAt(*item, "metadata.name");
      diags.Error(at.file, at.line, at.column, "metadata.name",
                  "duplicate " + std::string(kind) + " name '" + name + "' (also declared at " +
                      others + ")");
    }
  }
}

// An error at the field `key` of agent `a` (default: `field` itself).
void AgentError(const Agent& a, const std::string& field, const std::string& message,
                Diagnostics& diags, const std::string& key = "") {
  const SourceLocation& at = FieldAt(a, key.empty() ? field : key);
  diags.Error(at.file, at.line, at.column, field, message);
}

// Reports each dependency cycle once (per strongly connected component), as
// a path starting at its smallest name.
void CheckCycles(const DesiredState& state, Diagnostics& diags) {
  std::map<std::string_view, const Agent*> agents;
  for (const auto& a : state.agents) agents.emplace(a.name, &a);
  // Tarjan's algorithm, iterative over names in sorted order.
  std::map<std::string, int> index, low;
  std::set<std::string> on_stack;
  std::vector<std::string> stack;
  int next = 0;
  std::vector<std::set<std::string>> components;
  std::function<void(const std::string&)> strong = [&](const std::string& v) {
    index[v] = low[v] = next++;
    stack.push_back(v);
    on_stack.insert(v);
    for (const auto& w : agents.at(v)->depends_on) {
      if (!agents.count(w) || w == v) continue;
      if (!index.count(w)) {
        strong(w);
        low[v] = std::min(low[v], low[w]);
      } else if (on_stack.count(w)) {
        low[v] = std::min(low[v], index[w]);
      }
    }
    if (low[v] == index[v]) {
      std::set<std::string> component;
      std::string w;
      do {
        w = stack.back();
        stack.pop_back();
        on_stack.erase(w);
        component.insert(w);
      } while (w != v);
      if (component.size() > 1) components.push_back(component);
    }
  };
  for (const auto& [name, agent] : agents) {
    // An agent without dependencies is in no cycle; starting only from the
    // others finds the same components.
    if (!agent->depends_on.empty() && !index.count(std::string(name))) strong(std::string(name));
  }
  for (const auto& component : components) {
    // Shortest cycle through the smallest name, by breadth-first search.
    const std::string& start = *component.begin();
    std::map<std::string, std::string> parent;
    std::vector<std::string> queue{start};
    std::string last;
    for (size_t i = 0; i < queue.size() && last.empty(); ++i) {
      for (const auto& w : agents.at(queue[i])->depends_on) {
        if (!component.count(w)) continue;
        if (w == start) {
          last = queue[i];
          break;
        }
        if (!parent.count(w)) {
          parent[w] = queue[i];
          queue.push_back(w);
        }
      }
    }
    std::vector<std::string> path{start};
    for (std::string v = last; v != start; v = parent[v]) path.insert(path.begin() + 1, v);
    std::string text;
    for (const auto& v : path) text += v + " -> ";
    text += start;
    AgentError(*agents.at(start), "spec.dependsOn", "dependency cycle: " + text, diags);
  }
}

// A named volume may be mounted by several agents (and twice by one), but
// its reclaim policy must be the same everywhere: destroy cannot both keep
// and delete it.
void CheckSharedVolumes(const DesiredState& state, Diagnostics& diags) {
  struct Use {
    const Agent* agent;
    VolumeMount::Reclaim reclaim;
  };
  std::map<std::string, std::vector<Use>> uses;
  for (const auto& a : state.agents) {
    for (const auto& v : a.volumes) {
      if (v.type == VolumeMount::Type::kVolume) uses[v.source].push_back({&a, v.reclaim});
    }
  }
  for (const auto& [name, list] : uses) {
    const VolumeMount::Reclaim first = list.front().reclaim;  // clang 14 cannot capture a binding
    bool conflict =
        std::any_of(list.begin(), list.end(), [first](const Use& u) { return u.reclaim != first; });
    if (!conflict) continue;
    std::string all;
    for (const Use& u : list) {
      all += (all.empty() ? "" : ", ") + std::string("agent '") + u.agent->name + "' (" +
             ReclaimName(u.reclaim) + ")";
    }
    std::set<const Agent*> reported;
    for (const Use& u : list) {
      if (!reported.insert(u.agent).second) continue;
      AgentError(*u.agent, "spec.volumes",
                 "volume '" + name + "' is mounted with different reclaim policies: " + all +
                     "; give it one reclaim policy",
                 diags, "spec.volumes." + name);
    }
  }
}

}  // namespace

void DecodeFile(const std::string& file, const std::string& manifest_dir,
                const std::string& content, const LoadLimits& limits, DesiredState& out,
                Diagnostics& diagnostics) {
  try {
    auto documents =
        ParseYaml(file, content, limits.max_depth, limits.max_alias_nodes, diagnostics);
    Decoder decoder(file, manifest_dir, limits, diagnostics);
    for (const auto& doc : documents) decoder.Document(*doc.root, out);
  } catch (const std::exception& e) {
    diagnostics.Error(file, 1, 1, "", std::string("cannot decode: ") + e.what());
  }
}

DiskTreeView::DiskTreeView(const std::filesystem::path& root) {
  std::error_code ec;
  canonical_root_ = fs::weakly_canonical(fs::absolute(root, ec), ec);
}

TreeView::Folder DiskTreeView::Lookup(const std::string& rel) const {
  std::error_code ec;
  fs::path real = fs::weakly_canonical(canonical_root_ / rel, ec);
  if (ec || (real != canonical_root_ && !Inside(canonical_root_, real))) return Folder::kEscapes;
  return fs::is_directory(real, ec) ? Folder::kExists : Folder::kMissing;
}

TreeView::Folder FolderSet::Lookup(const std::string& rel) const {
  if (rel.empty() || rel == ".") return Folder::kExists;
  for (size_t slash = 0; slash != std::string::npos;) {
    slash = rel.find('/', slash + 1);
    if (escapes_.count(rel.substr(0, slash))) return Folder::kEscapes;
  }
  return folders_.count(rel) ? Folder::kExists : Folder::kMissing;
}

// What each agent's provider says about it (ProviderDefinition::
// validate_agent): the fields its Target cannot honour. One request per
// Target, reused for its agents.
void CheckAgentsWithProviders(const DesiredState& state, const ProviderRegistry* providers,
                              Diagnostics& diagnostics) {
  if (providers == nullptr) return;
  struct Check {
    const ProviderDefinition* definition = nullptr;
    ValidateAgentRequest request;
  };
  std::map<std::string, Check> by_target;
  for (const Target& t : state.targets) {
    const ProviderDefinition* d = providers->Find(t.provider);
    if (d == nullptr || !d->validate_agent) continue;
    Check& c = by_target[t.name];
    c.definition = d;
    c.request.target = t.name;
    c.request.target_config = t.settings;
    c.request.environment = t.environment;  // scoped names: their length is checked
  }
  if (by_target.empty()) return;
  for (const Agent& a : state.agents) {
    auto it = by_target.find(a.target);
    if (it == by_target.end()) continue;
    Check& c = it->second;
    c.request.agent = a.name;
    c.request.model = &a;
    c.request.spec = c.definition->agent_spec_as_json ? NormalizedSpec(a, a.image) : nullptr;
    ValidateAgentResponse response = c.definition->validate_agent(c.request);
    for (const ProviderDiagnostic& d : response.diagnostics) {
      const SourceLocation& at = FieldAt(a, d.field);
      diagnostics.Add({d.severity, at.file, at.line, at.column, d.field, d.message});
    }
  }
}

void ValidateState(const TreeView& tree, DesiredState& state, Diagnostics& diagnostics,
                   const ProviderRegistry* providers) {
  SortByName(state.agents);
  SortByName(state.registries);
  SortByName(state.targets);
  SortByName(state.notifiers);
  CheckDuplicates(state.agents, "Agent", diagnostics);
  CheckDuplicates(state.registries, "Registry", diagnostics);
  CheckDuplicates(state.targets, "Target", diagnostics);
  CheckDuplicates(state.notifiers, "Notifier", diagnostics);

  // A built agent's image is <url>/<repository>:<tag>: two agents with build
  // on one Registry would push to the same repository and tags, unless its
  // customTag names the agent.
  std::map<std::string, std::string> built_on;  // registry -> first agent
  for (const auto& a : state.agents) {
    if (!a.build || a.registry.empty()) continue;
    auto [it, first] = built_on.emplace(a.registry, a.name);
    if (first) continue;
    const Registry* r = nullptr;
    for (const auto& x : state.registries) {
      if (x.name == a.registry) r = &x;
    }
    if (r && r->tag_strategy == TagStrategy::kCustom &&
        r->custom_tag.find("{agent}") != std::string::npos) {
      continue;
    }
    AgentError(a, "spec.registry",
               "Registry '" + a.registry + "' is already the registry of agent '" + it->second +
                   "' with build; built images are <url>/<repository>:<tag>, so give each agent "
                   "with build its own Registry (repository), or use tagStrategy custom with "
                   "{agent} in customTag",
               diagnostics);
  }

  for (const auto& a : state.agents) {
    if (!a.target.empty() && !HasName(state.targets, a.target)) {
      AgentError(a, "spec.target", "Target '" + a.target + "' is not declared in the tree",
                 diagnostics);
    }
    if (!a.registry.empty() && !HasName(state.registries, a.registry)) {
      AgentError(a, "spec.registry", "Registry '" + a.registry + "' is not declared in the tree",
                 diagnostics);
    }
    for (const auto& dep : a.depends_on) {
      if (dep == a.name) {
        AgentError(a, "spec.dependsOn", "an agent cannot depend on itself", diagnostics,
                   "spec.dependsOn." + dep);
      } else if (!HasName(state.agents, dep)) {
        AgentError(a, "spec.dependsOn", "Agent '" + dep + "' is not declared in the tree",
                   diagnostics, "spec.dependsOn." + dep);
      }
    }
    if (a.build && !a.build->context.empty()) {
      fs::path rel = (fs::path(a.manifest_dir) / a.build->context).lexically_normal();
      if (fs::path(a.build->context).is_absolute() || (!rel.empty() && *rel.begin() == "..")) {
        AgentError(a, "spec.build.context",
                   "build context '" + a.build->context + "' leads outside the tree", diagnostics);
        continue;
      }
      std::string key = rel.generic_string();
      while (!key.empty() && key.back() == '/') key.pop_back();
      TreeView::Folder folder = tree.Lookup(key);
      if (folder == TreeView::Folder::kEscapes) {
        AgentError(a, "spec.build.context",
                   "build context '" + a.build->context + "' leads outside the tree (symlink)",
                   diagnostics);
        continue;
      }
      if (folder == TreeView::Folder::kMissing) {
        AgentError(a, "spec.build.context",
                   "build context folder '" + rel.generic_string() + "' does not exist",
                   diagnostics);
        continue;
      }
      fs::path dockerfile = (rel / a.build->dockerfile).lexically_normal();
      if (!dockerfile.empty() && *dockerfile.begin() == "..") {
        AgentError(a, "spec.build.dockerfile",
                   "dockerfile '" + a.build->dockerfile + "' leads outside the tree", diagnostics);
      }
    }
  }
  CheckCycles(state, diagnostics);
  CheckSharedVolumes(state, diagnostics);
  CheckAgentsWithProviders(state, providers, diagnostics);
  ValidateWindows(state, diagnostics);  // deploy windows: cron, zone, duration
}

void ValidateState(const std::filesystem::path& root, DesiredState& state, Diagnostics& diagnostics,
                   const ProviderRegistry* providers) {
  ValidateState(DiskTreeView(root), state, diagnostics, providers);
}

FolderFiles ReadFolder(const std::filesystem::path& root, const LoadLimits& limits) {
  FolderFiles out;
  Diagnostics& diags = out.diagnostics;
  out.base = root;
  std::error_code ec;
  fs::file_status st = fs::status(root, ec);
  if (ec || !fs::exists(st)) {
    diags.Error(root.string(), 0, 0, "", "no such file or folder");
    out.ok = false;
    return out;
  }
  std::vector<ManifestFile> files;
  if (fs::is_directory(st)) {
    fs::path canonical_root = fs::canonical(root, ec);
    std::set<fs::path> visited{canonical_root};
    Walk(canonical_root, root, "", visited, files, diags);
  } else {
    out.base = root.has_parent_path() ? root.parent_path() : fs::path(".");
    std::string rel = root.filename().string();
    if (fs::is_symlink(fs::symlink_status(root, ec))) {
      fs::path real = fs::canonical(root, ec);
      fs::path canonical_base = fs::canonical(out.base, ec);
      if (ec || !Inside(canonical_base, real)) {
        diags.Error(rel, 1, 1, "", "symlink leads outside the tree (to " + real.string() + ")");
        out.ok = false;
        return out;
      }
    }
    files.push_back({rel, root});
  }
  std::sort(files.begin(), files.end(),
            [](const ManifestFile& a, const ManifestFile& b) { return a.rel < b.rel; });

  for (const auto& f : files) {
    std::uintmax_t size = fs::file_size(f.path, ec);
    if (ec) {
      diags.Error(f.rel, 1, 1, "", "cannot read file: " + ec.message());
      continue;
    }
    if (size > limits.max_file_bytes) {
      out.files.push_back({f.rel, "", size});
      continue;
    }
    std::ifstream in(f.path, std::ios::binary);
    // Read what file_size said plus one byte (a 4 MiB buffer per file would
    // cost 4 MiB of memory and zeroing per file); only a file that grew since
    // is read on, up to the limit plus one.
    std::string content;
    size_t want = static_cast<size_t>(std::min<std::uintmax_t>(size, limits.max_file_bytes)) + 1;
    content.resize(want);
    in.read(content.data(), static_cast<std::streamsize>(want));
    size_t got = static_cast<size_t>(in.gcount());
    if (got == want && want <= limits.max_file_bytes) {
      content.resize(limits.max_file_bytes + 1);
      in.clear();
      in.read(content.data() + got, static_cast<std::streamsize>(content.size() - got));
      got += static_cast<size_t>(in.gcount());
    }
    content.resize(got);
    content.shrink_to_fit();
    if (in.bad()) {
      diags.Error(f.rel, 1, 1, "", "cannot read file");
      continue;
    }
    if (content.size() > limits.max_file_bytes) {  // grew since file_size
      diags.Error(f.rel, 1, 1, "",
                  "file is over the limit of " + std::to_string(limits.max_file_bytes) + " bytes");
      continue;
    }
    out.files.push_back({f.rel, std::move(content), 0});
  }
  return out;
}

namespace {

std::uintmax_t SizeOf(const TreeFile& f) {
  return std::max<std::uintmax_t>(f.size, f.content.size());
}

}  // namespace

std::string TreeRevision(const std::vector<TreeFile>& files, const LoadLimits& limits) {
  Sha256 hash;
  for (const auto& f : files) {
    if (SizeOf(f) > limits.max_file_bytes) continue;
    hash.UpdateField(f.rel);
    hash.UpdateField(f.content);
  }
  return "tree-" + hash.HexDigest().substr(0, 12);
}

namespace {

// The checks of a file's bytes before it is parsed: size, NUL, UTF-8.
bool CheckContent(const TreeFile& f, const LoadLimits& limits, Diagnostics& diags) {
  std::uintmax_t size = SizeOf(f);
  if (size > limits.max_file_bytes) {
    diags.Error(f.rel, 1, 1, "",
                "file is " + std::to_string(size) + " bytes, over the limit of " +
                    std::to_string(limits.max_file_bytes) + " bytes");
    return false;
  }
  if (size_t nul = f.content.find('\0'); nul != std::string::npos) {
    auto [line, column] = LineColumn(f.content, nul);
    diags.Error(f.rel, line, column, "", "file holds a NUL byte");
    return false;
  }
  if (size_t bad = InvalidUtf8Offset(f.content); bad != std::string::npos) {
    auto [line, column] = LineColumn(f.content, bad);
    diags.Error(f.rel, line, column, "", "file is not valid UTF-8");
    return false;
  }
  return true;
}

}  // namespace

DecodedFile DecodeOne(const TreeFile& f, const LoadLimits& limits) {
  DecodedFile out;
  Diagnostics& diags = out.diagnostics;
  if (!CheckContent(f, limits, diags)) return out;
  std::string manifest_dir = fs::path(f.rel).parent_path().generic_string();
  DecodeFile(f.rel, manifest_dir, f.content, limits, out.state, diags);
  if (!diags.HasErrors()) {
    // Made now, next to the agent it belongs to: a controller keeps both as
    // long as the file is unchanged (made in a pass, the memos would
    // pin pages of the pass's transient memory).
    for (const Agent& a : out.state.agents) {
      if (!a.build) MemoizedSpec(a);
    }
  }
  return out;
}

LoadResult Assemble(const std::vector<const DecodedFile*>& files, const TreeView& tree,
                    const ProviderRegistry* providers) {
  LoadResult result;
  size_t agents = 0, registries = 0, targets = 0;
  for (const DecodedFile* f : files) {
    agents += f->state.agents.size();
    registries += f->state.registries.size();
    targets += f->state.targets.size();
  }
  result.state.agents.reserve(agents);
  result.state.registries.reserve(registries);
  result.state.targets.reserve(targets);
  for (const DecodedFile* f : files) {
    const DesiredState& s = f->state;
    for (const Agent& a : s.agents) {
      result.state.agents.push_back(a);
      result.state.agents.back().spec_memo.Share(a.spec_memo);  // an unchanged copy
    }
    result.state.registries.insert(result.state.registries.end(), s.registries.begin(),
                                   s.registries.end());
    result.state.targets.insert(result.state.targets.end(), s.targets.begin(), s.targets.end());
    result.state.notifiers.insert(result.state.notifiers.end(), s.notifiers.begin(),
                                  s.notifiers.end());
    result.diagnostics.Append(f->diagnostics);
    if (s.environment && !result.state.environment) {
      result.state.environment = s.environment;
    } else if (s.environment && s.environment->name == result.state.environment->name) {
      const SourceLocation& first = result.state.environment->location;
      result.diagnostics.Error(
          s.environment->location.file, s.environment->location.line,
          s.environment->location.column, "metadata.name",
          "duplicate Environment '" + s.environment->name + "' (also declared at " + first.file +
              ":" + std::to_string(first.line) + ":" + std::to_string(first.column) + ")");
    }
  }
  ValidateState(tree, result.state, result.diagnostics, providers);
  result.diagnostics.Sort();
  return result;
}

LoadResult LoadFiles(std::vector<TreeFile> files, const TreeView& tree, const LoadLimits& limits) {
  std::stable_sort(files.begin(), files.end(),
                   [](const TreeFile& a, const TreeFile& b) { return a.rel < b.rel; });
  std::vector<DecodedFile> decoded;
  decoded.reserve(files.size());
  for (const auto& f : files) decoded.push_back(DecodeOne(f, limits));
  std::vector<const DecodedFile*> parts;
  parts.reserve(decoded.size());
  for (const auto& d : decoded) parts.push_back(&d);
  LoadResult result = Assemble(parts, tree, limits.providers);
  result.state.revision = TreeRevision(files, limits);
  if (limits.keep_documents) result.documents = DocumentsOf(files, limits);
  return result;
}

LoadResult LoadTree(const std::filesystem::path& root, const LoadLimits& limits) {
  FolderFiles folder = ReadFolder(root, limits);
  LoadResult result;
  if (!folder.ok) {
    result.diagnostics = std::move(folder.diagnostics);
    return result;
  }
  result = LoadFiles(std::move(folder.files), DiskTreeView(folder.base), limits);
  result.diagnostics.Append(folder.diagnostics);
  result.diagnostics.Sort();
  return result;
}

// ---------------------------------------------------------------------------
// Environment overlays.

namespace {

using NodePtr = std::shared_ptr<YamlNode>;

void SetOrigin(YamlNode& n, const std::shared_ptr<const std::string>& origin) {
  n.origin = origin;
  for (auto& item : n.items) SetOrigin(*item, origin);
  for (auto& [key, value] : n.entries) {
    SetOrigin(*key, origin);
    SetOrigin(*value, origin);
  }
}

bool IsNullValue(const YamlNode& n) {
  return n.kind == Kind::kNull || (n.kind == Kind::kScalar && TypeOf(n) == ScalarType::kNull);
}

// The value of `key` in a map node (aliases resolved), or nullptr.
const YamlNode* MapValue(const YamlNode& raw, const std::string& key) {
  const YamlNode& map = raw.Resolved();
  if (map.kind != Kind::kMap) return nullptr;
  for (const auto& [k, v] : map.entries) {
    const YamlNode& kk = k->Resolved();
    if (kk.kind == Kind::kScalar && kk.value == key) return &v->Resolved();
  }
  return nullptr;
}

std::string ScalarOf(const YamlNode* n) {
  return n && n->kind == Kind::kScalar && TypeOf(*n) == ScalarType::kString ? n->value : "";
}

std::string Loc(const SourceLocation& l) {
  return l.file + ":" + std::to_string(l.line) + ":" + std::to_string(l.column);
}

struct ParsedDoc {
  NodePtr root;
  std::string kind;  // "" when absent or not a string
  std::string name;  // metadata.name, "" when absent
};

struct ParsedFile {
  std::string rel;
  std::string dir;  // rel's folder
  std::vector<ParsedDoc> docs;
};

ParsedFile Parse(const TreeFile& f, const LoadLimits& limits, Diagnostics& diags) {
  ParsedFile out;
  out.rel = f.rel;
  out.dir = fs::path(f.rel).parent_path().generic_string();
  if (!CheckContent(f, limits, diags)) return out;
  try {
    auto origin = std::make_shared<const std::string>(f.rel);
    for (auto& doc : ParseYaml(f.rel, f.content, limits.max_depth, limits.max_alias_nodes, diags)) {
      if (!doc.root || doc.root->Resolved().kind == Kind::kNull) continue;
      if (IsSopsDocument(*doc.root)) continue;  // SOPS data, read through {sops: ...}
      SetOrigin(*doc.root, origin);
      ParsedDoc d;
      d.root = doc.root;
      d.kind = ScalarOf(MapValue(*doc.root, "kind"));
      if (const YamlNode* m = MapValue(*doc.root, "metadata"))
        d.name = ScalarOf(MapValue(*m, "name"));
      out.docs.push_back(std::move(d));
    }
  } catch (const std::exception& e) {
    diags.Error(f.rel, 1, 1, "", std::string("cannot decode: ") + e.what());
  }
  return out;
}

// Where each field of one base resource was set by a patch: the conflict
// check between patches. Paths are segments joined by '\x1f'.
struct FieldOwner {
  int patch = 0;
  SourceLocation at;
};
using Owners = std::map<std::string, FieldOwner>;

std::string ShowPath(const std::string& key) {
  std::string out = key;
  std::replace(out.begin(), out.end(), '\x1f', '.');
  return out;
}

class Merger {
 public:
  Merger(Diagnostics& diags, std::string resource)
      : diags_(diags), resource_(std::move(resource)) {}

  // Merges `patch` (a map) into `base` (a map owned by the caller).
  void Map(YamlNode& base, const YamlNode& patch, const std::string& path, int patch_id,
           Owners& owners, bool top) {
    std::set<std::string> seen;
    for (const auto& [pk, pv] : patch.entries) {
      const YamlNode& key = pk->Resolved();
      if (key.kind != Kind::kScalar) {
        base.entries.emplace_back(pk, pv);  // reported by the decoder
        continue;
      }
      const std::string shown = ShowPath(path.empty() ? key.value : path + '\x1f' + key.value);
      if (!seen.insert(key.value).second) {
        Error(key, shown, "duplicate key '" + key.value + "'");
        continue;
      }
      const std::string field = path.empty() ? key.value : path + '\x1f' + key.value;
      const YamlNode& value = pv->Resolved();
      auto it = std::find_if(base.entries.begin(), base.entries.end(), [&](const auto& e) {
        const YamlNode& k = e.first->Resolved();
        return k.kind == Kind::kScalar && k.value == key.value;
      });
      if (top && (key.value == "kind" || key.value == "apiVersion")) {
        if (it != base.entries.end()) it->second = pv;
        continue;
      }
      if (path == "metadata" && key.value == "name") continue;  // names the base resource
      const bool is_null = IsNullValue(value);
      if (!is_null && value.kind == Kind::kMap && it != base.entries.end() &&
          it->second->Resolved().kind == Kind::kMap) {
        auto owned = std::make_shared<YamlNode>(it->second->Resolved());
        it->second = owned;
        Map(*owned, value, field, patch_id, owners, false);
        continue;
      }
      if (!Own(field, patch_id, {pk->origin ? *pk->origin : "", key.line, key.column}, owners)) {
        continue;
      }
      if (is_null) {
        if (it != base.entries.end()) base.entries.erase(it);
      } else if (it != base.entries.end()) {
        *it = {pk, pv};
      } else {
        base.entries.emplace_back(pk, pv);
      }
    }
  }

 private:
  void Error(const YamlNode& at, const std::string& field, const std::string& message) {
    diags_.Error(at.origin ? *at.origin : "", at.line, at.column, field, message);
  }

  // Records that patch `id` sets `field`; false (reported) when another
  // patch of the resource set it, or a field inside or around it.
  bool Own(const std::string& field, int id, const SourceLocation& at, Owners& owners) {
    const FieldOwner* clash = nullptr;
    std::string clash_field;
    for (auto it = owners.lower_bound(field); it != owners.end(); ++it) {
      if (it->first != field && it->first.rfind(field + '\x1f', 0) != 0) break;
      if (it->second.patch != id) clash = &it->second, clash_field = it->first;
      if (clash) break;
    }
    for (size_t cut = field.find('\x1f'); !clash && cut != std::string::npos;
         cut = field.find('\x1f', cut + 1)) {
      auto it = owners.find(field.substr(0, cut));
      if (it != owners.end() && it->second.patch != id)
        clash = &it->second, clash_field = it->first;
    }
    if (clash) {
      diags_.Error(at.file, at.line, at.column, ShowPath(field),
                   ShowPath(field) + " of " + resource_ + " is set by two patches: " + Loc(at) +
                       " and " + Loc(clash->at) + " (" + ShowPath(clash_field) +
                       "); set each field in one patch");
      return false;
    }
    owners[field] = {id, at};
    return true;
  }

  Diagnostics& diags_;
  std::string resource_;
};

// A node as JSON with YAML's core schema types (maps' keys sorted).
nlohmann::json ToJson(const YamlNode& raw) {
  const YamlNode& n = raw.Resolved();
  switch (n.kind) {
    case Kind::kMap: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& [k, v] : n.entries) out[k->Resolved().value] = ToJson(*v);
      return out;
    }
    case Kind::kSequence: {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& item : n.items) out.push_back(ToJson(*item));
      return out;
    }
    case Kind::kNull:
      return nullptr;
    default:
      break;
  }
  switch (TypeOf(n)) {
    case ScalarType::kNull:
      return nullptr;
    case ScalarType::kBool:
      return n.value[0] == 't' || n.value[0] == 'T';
    case ScalarType::kInt:
      if (auto v = ParseInteger(n)) return *v;
      return n.value;
    case ScalarType::kFloat: {
      double d = std::strtod(n.value.c_str(), nullptr);
      if (std::isfinite(d)) return d;
      return n.value;
    }
    case ScalarType::kString:
      break;
  }
  return n.value;
}

// The rendered form of one document: build.context relative to the tree
// root (the folder of the file it was written in, joined).
nlohmann::json RenderDoc(const YamlNode& root, const std::string& dir) {
  nlohmann::json doc = ToJson(root);
  if (doc.is_object() && doc.value("kind", "") == "Agent" && doc.contains("spec") &&
      doc["spec"].is_object() && doc["spec"].contains("build") &&
      doc["spec"]["build"].is_object() && doc["spec"]["build"].contains("context") &&
      doc["spec"]["build"]["context"].is_string()) {
    const YamlNode* build = MapValue(*MapValue(root, "spec"), "build");
    const YamlNode* context = build ? MapValue(*build, "context") : nullptr;
    std::string written = context && context->origin
                              ? fs::path(*context->origin).parent_path().generic_string()
                              : dir;
    std::string joined = (fs::path(written) / doc["spec"]["build"]["context"].get<std::string>())
                             .lexically_normal()
                             .generic_string();
    while (joined.size() > 1 && joined.back() == '/') joined.pop_back();
    doc["spec"]["build"]["context"] = joined.empty() ? "." : joined;
  }
  return doc;
}

bool Within(const std::string& folder, const std::string& rel) {
  return folder.empty() || rel == folder || rel.rfind(folder + "/", 0) == 0;
}

}  // namespace

bool HoldsEnvironment(const std::vector<TreeFile>& files, const std::string& folder,
                      const LoadLimits& limits) {
  for (const TreeFile& f : files) {
    if (fs::path(f.rel).parent_path().generic_string() != folder) continue;
    if (f.content.find("Environment") == std::string::npos) continue;
    Diagnostics ignored;
    for (const ParsedDoc& d : Parse(f, limits, ignored).docs) {
      if (d.kind == "Environment") return true;
    }
  }
  return false;
}

std::vector<EnvironmentRef> FindEnvironments(const std::vector<TreeFile>& files,
                                             Diagnostics& diagnostics, const LoadLimits& limits) {
  std::vector<EnvironmentRef> out;
  std::map<std::string, size_t> by_name;
  for (const TreeFile& f : files) {
    if (f.content.find("Environment") == std::string::npos) continue;
    DecodedFile decoded = DecodeOne(f, limits);
    if (!decoded.state.environment) continue;
    const Environment& e = *decoded.state.environment;
    auto [it, fresh] = by_name.emplace(e.name, out.size());
    if (!fresh) {
      auto name_at = e.field_locations.find("metadata.name");
      const SourceLocation& at = name_at != e.field_locations.end() ? name_at->second : e.location;
      diagnostics.Error(at.file, at.line, at.column, "metadata.name",
                        "duplicate Environment '" + e.name + "' (also declared at " +
                            Loc(out[it->second].location) + ")");
      continue;
    }
    out.push_back({e.name, e.folder, e.location});
  }
  std::sort(out.begin(), out.end(),
            [](const EnvironmentRef& a, const EnvironmentRef& b) { return a.name < b.name; });
  return out;
}

LoadResult LoadEnvironment(const std::string& folder, std::vector<TreeFile> folder_files,
                           const FolderReader& read, const TreeView& tree, const LoadLimits& limits,
                           std::vector<TreeFile>* used) {
  LoadResult result;
  Diagnostics& diags = result.diagnostics;
  std::vector<TreeFile> all;

  // The Environment's own folder: its Environment and its patches, without
  // sub-folders that hold an Environment of their own.
  std::sort(folder_files.begin(), folder_files.end(),
            [](const TreeFile& a, const TreeFile& b) { return a.rel < b.rel; });
  std::vector<ParsedFile> parsed;
  std::set<std::string> nested;  // folders of other Environments below `folder`
  for (const TreeFile& f : folder_files) {
    Diagnostics file_diags;
    ParsedFile p = Parse(f, limits, file_diags);
    for (const ParsedDoc& d : p.docs) {
      if (d.kind == "Environment" && p.dir != folder) nested.insert(p.dir);
    }
    parsed.push_back(std::move(p));
    diags.Append(file_diags);  // dropped below with the file when nested
  }
  auto is_nested = [&](const std::string& dir) {
    return std::any_of(nested.begin(), nested.end(),
                       [&](const std::string& n) { return Within(n, dir); });
  };
  if (!nested.empty()) {
    Diagnostics kept;
    for (const Diagnostic& d : diags.items()) {
      if (!is_nested(fs::path(d.file).parent_path().generic_string())) kept.Add(d);
    }
    diags = std::move(kept);
  }
  std::optional<Environment> env;
  std::vector<std::pair<const ParsedFile*, const ParsedDoc*>> patches;
  std::vector<std::pair<const ParsedFile*, const ParsedDoc*>> own_notifiers;
  for (size_t i = 0; i < parsed.size(); ++i) {
    const ParsedFile& p = parsed[i];
    if (is_nested(p.dir)) continue;
    all.push_back(folder_files[i]);
    for (const ParsedDoc& d : p.docs) {
      if (d.kind == "Notifier") {
        // Not a patch: the environment's own Notifier (besides its bases').
        own_notifiers.emplace_back(&p, &d);
        continue;
      }
      if (d.kind != "Environment") {
        patches.emplace_back(&p, &d);
        continue;
      }
      DesiredState holder;
      if (env) holder.environment = env;
      Decoder decoder(p.rel, p.dir, limits, diags);
      if (p.dir != folder) {
        diags.Error(p.rel, d.root->line, d.root->column, "kind",
                    "an Environment belongs at the top of its folder");
        continue;
      }
      decoder.Document(*d.root, holder);
      if (holder.environment) env = std::move(holder.environment);
    }
  }
  if (!env) {
    if (!diags.HasErrors()) {
      diags.Error(folder.empty() ? "." : folder, 1, 1, "",
                  "no Environment document in the folder (kind Environment)");
    }
    diags.Sort();
    return result;
  }

  // The base folders.
  std::vector<ParsedFile> bases;
  std::set<std::string> read_files;
  for (size_t i = 0; i < env->bases.size(); ++i) {
    const std::string& base = env->bases[i];
    const SourceLocation& at = env->field_locations["spec.bases[" + std::to_string(i) + "]"];
    auto fail = [&](const std::string& message) {
      diags.Error(at.file, at.line, at.column, "spec.bases[" + std::to_string(i) + "]", message);
    };
    if (Within(base, folder)) {
      fail("base folder '" + (base.empty() ? "." : base) +
           "' holds the Environment's own folder '" + folder + "'");
      continue;
    }
    if (Within(folder, base)) {
      fail("base folder '" + base + "' is inside the Environment's folder '" + folder +
           "' (whose documents are patches)");
      continue;
    }
    Diagnostics read_diags;
    std::optional<std::vector<TreeFile>> files = read(base, read_diags);
    diags.Append(read_diags);
    if (!files) {
      fail(tree.Lookup(base) == TreeView::Folder::kEscapes
               ? "base folder '" + base + "' leads outside the tree (symlink)"
               : "base folder '" + base + "' does not exist");
      continue;
    }
    if (files->empty()) fail("base folder '" + base + "' holds no *.yaml or *.yml file");
    for (TreeFile& f : *files) {
      if (!read_files.insert(f.rel).second) continue;  // two bases that overlap
      ParsedFile p = Parse(f, limits, diags);
      bool holds_env = false;
      for (const ParsedDoc& d : p.docs) {
        if (d.kind == "Environment") {
          fail("base folder '" + base + "' holds an Environment (" + p.rel + ":" +
               std::to_string(d.root->line) +
               "); a base is a folder of Agents, Registries and "
               "Targets");
          holds_env = true;
        }
      }
      all.push_back(std::move(f));
      if (!holds_env) bases.push_back(std::move(p));
    }
  }
  std::stable_sort(bases.begin(), bases.end(),
                   [](const ParsedFile& a, const ParsedFile& b) { return a.rel < b.rel; });

  // Patches, merged into the base documents.
  struct BaseDoc {
    ParsedDoc* doc;
    const ParsedFile* file;
    Owners owners;
    std::vector<std::string> patched_by;
  };
  std::map<std::string, BaseDoc> by_key;                     // "<kind>/<name>"
  std::map<std::string, std::vector<std::string>> names_of;  // kind -> names in the bases
  for (ParsedFile& p : bases) {
    for (ParsedDoc& d : p.docs) {
      if (d.kind.empty() || d.name.empty()) continue;
      by_key.try_emplace(d.kind + "/" + d.name, BaseDoc{&d, &p, {}, {}});
      names_of[d.kind].push_back(d.name);
    }
  }
  for (auto& [kind, names] : names_of) std::sort(names.begin(), names.end());
  int patch_id = 0;
  for (const auto& [file, doc] : patches) {
    ++patch_id;
    const YamlNode& root = doc->root->Resolved();
    const std::string& rel = file->rel;
    if (root.kind != Kind::kMap) {
      diags.Error(rel, root.line, root.column, "",
                  "a patch must be a map with apiVersion, kind, metadata.name and the fields "
                  "to change, got " +
                      Describe(root));
      continue;
    }
    const YamlNode* kind = MapValue(root, "kind");
    if (!kind || doc->kind.empty()) {
      const YamlNode& at = kind ? *kind : root;
      diags.Error(rel, at.line, at.column, "kind",
                  "a patch needs kind Agent, Registry or Target and metadata.name naming a "
                  "resource of the bases");
      continue;
    }
    if (doc->kind != "Agent" && doc->kind != "Registry" && doc->kind != "Target") {
      diags.Error(rel, kind->line, kind->column, "kind",
                  "a patch is of kind Agent, Registry or Target, got '" + doc->kind +
                      "' (the documents beside an Environment patch resources of its bases)");
      continue;
    }
    const YamlNode* metadata = MapValue(root, "metadata");
    const YamlNode* name = metadata ? MapValue(*metadata, "name") : nullptr;
    if (!name || doc->name.empty()) {
      const YamlNode& at = name ? *name : metadata ? *metadata : root;
      diags.Error(
          rel, at.line, at.column, "metadata.name",
          "a patch needs metadata.name naming the " + doc->kind + " of the bases it changes");
      continue;
    }
    auto it = by_key.find(doc->kind + "/" + doc->name);
    if (it == by_key.end()) {
      std::string there;
      // At most ten names (the nearest in sort order), then how many more.
      const auto& names = names_of[doc->kind];
      auto near = std::lower_bound(names.begin(), names.end(), doc->name);
      const std::ptrdiff_t count = static_cast<std::ptrdiff_t>(names.size());
      const std::ptrdiff_t shown = std::min<std::ptrdiff_t>(10, count);
      const std::ptrdiff_t from =
          std::clamp<std::ptrdiff_t>((near - names.begin()) - 5, 0, count - shown);
      auto first = names.begin() + from;
      auto last = first + shown;
      for (auto n = first; n != last; ++n) there += (there.empty() ? "" : ", ") + *n;
      if (names.size() > 10) there += " and " + std::to_string(names.size() - 10) + " more";
      std::string bases_list;
      for (const std::string& b : env->bases) bases_list += (bases_list.empty() ? "" : ", ") + b;
      diags.Error(rel, name->line, name->column, "metadata.name",
                  doc->kind + " '" + doc->name + "' is not in the bases (" + bases_list +
                      "): a patch changes a resource of the bases; they hold " +
                      (there.empty() ? "no " + doc->kind : doc->kind + " " + there));
      continue;
    }
    BaseDoc& target = it->second;
    const YamlNode& base_root = target.doc->root->Resolved();
    if (base_root.kind != Kind::kMap) continue;  // reported when decoding the base
    auto owned = std::make_shared<YamlNode>(base_root);
    target.doc->root = owned;
    Merger(diags, doc->kind + " " + doc->name).Map(*owned, root, "", patch_id, target.owners, true);
    target.patched_by.push_back(rel);
  }

  // The merged documents, decoded as any other.
  DesiredState& state = result.state;
  for (const ParsedFile& p : bases) {
    Decoder decoder(p.rel, p.dir, limits, diags);
    for (const ParsedDoc& d : p.docs) {
      if (limits.keep_documents) {
        nlohmann::json doc = RenderDoc(*d.root, p.dir);
        if (doc.is_object()) {
          auto add = [](nlohmann::json& at, const std::map<std::string, std::string>& values,
                        const nlohmann::json* except) {
            if (values.empty()) return;
            if (!at.is_object()) at = nlohmann::json::object();
            for (const auto& [k, v] : values) {
              if (!at.contains(k) && !(except && except->is_object() && except->contains(k))) {
                at[k] = v;
              }
            }
          };
          if (doc.contains("metadata") && doc["metadata"].is_object()) {
            const nlohmann::json* spec_labels = nullptr;
            if (d.kind == "Agent" && doc.contains("spec") && doc["spec"].is_object() &&
                doc["spec"].contains("labels")) {
              spec_labels = &doc["spec"]["labels"];
            }
            add(doc["metadata"]["labels"], env->common_labels, spec_labels);
          }
          if (d.kind == "Agent" && doc.contains("spec") && doc["spec"].is_object() &&
              !env->env.empty()) {
            nlohmann::json& spec = doc["spec"];
            const nlohmann::json* secret =
                spec.contains("secretEnv") ? &spec["secretEnv"] : nullptr;
            nlohmann::json copy = secret ? *secret : nlohmann::json();
            add(spec["env"], env->env, secret ? &copy : nullptr);
          }
        }
        result.documents.push_back(std::move(doc));
      }
      auto it = by_key.find(d.kind + "/" + d.name);
      bool patched = it != by_key.end() && it->second.doc == &d && !it->second.patched_by.empty();
      decoder.SetPatchNote(patched ? " (patching " + d.kind + " " + d.name + " at " + p.rel + ":" +
                                         std::to_string(d.root->line) + ":" +
                                         std::to_string(d.root->column) + ")"
                                   : "");
      decoder.Document(*d.root, state);
    }
  }
  for (const auto& [file, doc] : own_notifiers) {
    if (limits.keep_documents) result.documents.push_back(RenderDoc(*doc->root, file->dir));
    Decoder decoder(file->rel, file->dir, limits, diags);
    decoder.Document(*doc->root, state);
  }
  for (Agent& a : state.agents) {
    for (const auto& [k, v] : env->common_labels) {
      if (!a.container_labels.count(k)) a.labels.emplace(k, v);
    }
    for (const auto& [k, v] : env->env) {
      if (!a.secret_env.count(k)) a.env.emplace(k, v);
    }
  }
  for (Registry& r : state.registries) {
    for (const auto& [k, v] : env->common_labels) r.labels.emplace(k, v);
  }
  for (Target& t : state.targets) {
    for (const auto& [k, v] : env->common_labels) t.labels.emplace(k, v);
    t.environment = env->name;
  }
  state.environment = std::move(env);
  ValidateState(tree, state, diags, limits.providers);
  SortDocuments(result.documents);
  std::sort(all.begin(), all.end(),
            [](const TreeFile& a, const TreeFile& b) { return a.rel < b.rel; });
  state.revision = TreeRevision(all, limits);
  if (used) *used = std::move(all);
  diags.Sort();
  return result;
}

void SortDocuments(std::vector<nlohmann::json>& documents) {
  auto rank = [](const nlohmann::json& d) {
    std::string kind = d.is_object() && d.contains("kind") && d["kind"].is_string()
                           ? d["kind"].get<std::string>()
                           : "";
    int order = kind == "Registry" ? 0 : kind == "Target" ? 1 : kind == "Agent" ? 2 : 3;
    std::string name;
    if (d.is_object() && d.contains("metadata") && d["metadata"].is_object() &&
        d["metadata"].contains("name") && d["metadata"]["name"].is_string()) {
      name = d["metadata"]["name"].get<std::string>();
    }
    return std::make_pair(order, name);
  };
  std::stable_sort(
      documents.begin(), documents.end(),
      [&](const nlohmann::json& a, const nlohmann::json& b) { return rank(a) < rank(b); });
}

std::vector<nlohmann::json> DocumentsOf(const std::vector<TreeFile>& files,
                                        const LoadLimits& limits) {
  std::vector<nlohmann::json> out;
  for (const TreeFile& f : files) {
    Diagnostics ignored;
    ParsedFile p = Parse(f, limits, ignored);
    for (const ParsedDoc& d : p.docs) out.push_back(RenderDoc(*d.root, p.dir));
  }
  SortDocuments(out);
  return out;
}

LoadResult LoadPath(const std::filesystem::path& root, const std::string& path,
                    const LoadLimits& limits, size_t* files) {
  std::string folder = fs::path(path).lexically_normal().generic_string();
  while (!folder.empty() && folder.back() == '/') folder.pop_back();
  if (folder == ".") folder.clear();
  FolderFiles top = ReadFolder(root / folder, limits);
  if (!top.ok || !fs::is_directory(root / folder) || !HoldsEnvironment(top.files, "", limits)) {
    LoadResult plain;
    if (files) *files = top.files.size();
    if (top.ok) plain = LoadFiles(std::move(top.files), DiskTreeView(top.base), limits);
    plain.diagnostics.Append(top.diagnostics);
    plain.diagnostics.Sort();
    return plain;
  }
  DiskTreeView view(root);
  auto prefix = [](const std::string& dir, std::vector<TreeFile>& files, Diagnostics& in,
                   Diagnostics& out) {
    for (TreeFile& f : files) f.rel = dir.empty() ? f.rel : dir + "/" + f.rel;
    for (Diagnostic d : in.items()) {
      if (!dir.empty()) d.file = d.file == "." ? dir : dir + "/" + d.file;
      out.Add(std::move(d));
    }
  };
  FolderReader reader = [&](const std::string& dir,
                            Diagnostics& diags) -> std::optional<std::vector<TreeFile>> {
    if (view.Lookup(dir) != TreeView::Folder::kExists) return std::nullopt;
    FolderFiles ff = ReadFolder(root / dir, limits);
    if (!ff.ok) return std::nullopt;
    prefix(dir, ff.files, ff.diagnostics, diags);
    return std::move(ff.files);
  };
  Diagnostics walk;
  prefix(folder, top.files, top.diagnostics, walk);
  std::vector<TreeFile> used;
  LoadResult result = LoadEnvironment(folder, std::move(top.files), reader, view, limits, &used);
  if (files) *files = used.size();
  result.diagnostics.Append(walk);
  result.diagnostics.Sort();
  return result;
}

}  // namespace reconcile
