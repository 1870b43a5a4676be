#include "reconcile/compose_import.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <sstream>
#include <tuple>
#include <utility>

#include <nlohmann/json.hpp>

#include "yaml_tree.h"

namespace reconcile {
namespace {

using Kind = YamlNode::Kind;
using Json = nlohmann::ordered_json;
using Entry = std::pair<const YamlNode*, const YamlNode*>;

constexpr const char* kApiVersion = "reconcile.dev/v1alpha1";
constexpr int kMaxServices = 100;

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}
bool StartsWith(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }
bool EndsWith(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}
bool IsVarStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsVarChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }
bool AllDigits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool IsNullNode(const YamlNode& n) {
  if (n.kind == Kind::kNull) return true;
  return n.kind == Kind::kScalar && n.tag == "?" &&
         (n.value == "~" || n.value == "null" || n.value == "Null" || n.value == "NULL");
}

// A DNS-1123 label made from a compose name: lower case, '_' and '.' become '-'.
std::string DnsLabel(const std::string& name) {
  std::string out;
  for (char c : Lower(name)) {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      out += c;
    } else if (!out.empty() && out.back() != '-') {
      out += '-';
    }
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  if (out.size() > 63) out.resize(63);
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

// Compose's project name normalization: lower case, only [a-z0-9_-].
std::string ProjectName(const std::string& name) {
  std::string out;
  for (char c : Lower(name)) {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-') out += c;
  }
  return out;
}

// Lexically normalized absolute path (no "." or ".." segments).
std::string NormalizePath(const std::string& path) {
  std::vector<std::string> parts;
  std::stringstream ss(path);
  std::string part;
  while (std::getline(ss, part, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  std::string out;
  for (const std::string& p : parts) out += "/" + p;
  return out.empty() ? "/" : out;
}

std::string Resolve(const std::string& base, const std::string& path) {
  if (!path.empty() && path[0] == '/') return NormalizePath(path);
  return NormalizePath(base + "/" + path);
}

// `to` relative to the folder `from` (both absolute, normalized).
std::string Relative(const std::string& from, const std::string& to) {
  auto split = [](const std::string& p) {
    std::vector<std::string> parts;
    std::stringstream ss(p);
    std::string part;
    while (std::getline(ss, part, '/')) {
      if (!part.empty()) parts.push_back(part);
    }
    return parts;
  };
  std::vector<std::string> a = split(from), b = split(to);
  size_t common = 0;
  while (common < a.size() && common < b.size() && a[common] == b[common]) ++common;
  std::string out;
  for (size_t i = common; i < a.size(); ++i) out += out.empty() ? ".." : "/..";
  for (size_t i = common; i < b.size(); ++i) out += (out.empty() ? "" : "/") + b[i];
  return out.empty() ? "." : out;
}

// POSIX shell words (as Compose's shlex.split): whitespace separates,
// '...' is literal, "..." honours \" \\ \$ \`, a backslash escapes outside
// quotes. nullopt on an unterminated quote.
std::optional<std::vector<std::string>> ShellWords(const std::string& s) {
  std::vector<std::string> words;
  std::string cur;
  bool in_word = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (in_word) words.push_back(cur);
      cur.clear();
      in_word = false;
    } else if (c == '\'') {
      size_t end = s.find('\'', i + 1);
      if (end == std::string::npos) return std::nullopt;
      cur += s.substr(i + 1, end - i - 1);
      i = end;
      in_word = true;
    } else if (c == '"') {
      size_t j = i + 1;
      for (; j < s.size() && s[j] != '"'; ++j) {
        if (s[j] == '\\' && j + 1 < s.size() &&
            (s[j + 1] == '"' || s[j + 1] == '\\' || s[j + 1] == '$' || s[j + 1] == '`')) {
          ++j;
        }
        cur += s[j];
      }
      if (j >= s.size()) return std::nullopt;
      i = j;
      in_word = true;
    } else if (c == '\\' && i + 1 < s.size()) {
      cur += s[++i];
      in_word = true;
    } else {
      cur += c;
      in_word = true;
    }
  }
  if (in_word) words.push_back(cur);
  return words;
}

// Compose durations ("1m30s", "1.5s", "500ms", "2h") in milliseconds.
std::optional<std::int64_t> ComposeDurationMs(const std::string& text) {
  if (text.empty()) return std::nullopt;
  double total = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() &&
           (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) {
      ++i;
    }
    if (start == i) return std::nullopt;
    double value = 0;
    try {
      value = std::stod(text.substr(start, i - start));
    } catch (...) {
      return std::nullopt;
    }
    size_t unit_start = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
    std::string unit = text.substr(unit_start, i - unit_start);
    double factor = 0;
    if (unit == "h")
      factor = 3600000;
    else if (unit == "m")
      factor = 60000;
    else if (unit == "s")
      factor = 1000;
    else if (unit == "ms")
      factor = 1;
    else if (unit == "us" || unit == "µs")
      factor = 0.001;
    else if (unit == "ns")
      factor = 0.000001;
    else
      return std::nullopt;
    total += value * factor;
  }
  return static_cast<std::int64_t>(std::llround(total));
}

// reconcile's duration format: one integer and one unit.
std::string DurationText(std::int64_t ms) {
  if (ms != 0 && ms % 3600000 == 0) return std::to_string(ms / 3600000) + "h";
  if (ms != 0 && ms % 60000 == 0) return std::to_string(ms / 60000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

// Docker's byte sizes ("1.5G", "512m", "1gb", "2048", "64k"; binary units).
std::optional<std::int64_t> ComposeBytes(const std::string& text) {
  std::string s = Lower(text);
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  if (i == 0) return std::nullopt;
  double value = 0;
  try {
    value = std::stod(s.substr(0, i));
  } catch (...) {
    return std::nullopt;
  }
  std::string unit = s.substr(i);
  while (!unit.empty() && unit[0] == ' ') unit.erase(0, 1);
  double factor = 0;
  if (unit.empty() || unit == "b")
    factor = 1;
  else if (unit == "k" || unit == "kb" || unit == "ki" || unit == "kib")
    factor = 1024.0;
  else if (unit == "m" || unit == "mb" || unit == "mi" || unit == "mib")
    factor = 1024.0 * 1024;
  else if (unit == "g" || unit == "gb" || unit == "gi" || unit == "gib")
    factor = 1024.0 * 1024 * 1024;
  else if (unit == "t" || unit == "tb" || unit == "ti" || unit == "tib")
    factor = 1024.0 * 1024 * 1024 * 1024;
  else
    return std::nullopt;
  double bytes = value * factor;
  if (bytes < 1 || bytes > 9e18) return std::nullopt;
  return static_cast<std::int64_t>(std::llround(bytes));
}

// reconcile's size format: an integer and Ki/Mi/Gi/Ti, or plain bytes.
std::string BytesText(std::int64_t b) {
  const std::pair<const char*, std::int64_t> units[] = {
      {"Ti", 1LL << 40}, {"Gi", 1LL << 30}, {"Mi", 1LL << 20}, {"Ki", 1LL << 10}};
  for (const auto& [name, factor] : units) {
    if (b % factor == 0) return std::to_string(b / factor) + name;
  }
  return std::to_string(b);
}

// ---- YAML output -------------------------------------------------------

bool PlainKey(const std::string& k) {
  if (k.empty()) return false;
  for (char c : k) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' ||
          c == '/')) {
      return false;
    }
  }
  static const std::set<std::string> kReserved = {"y",   "n",    "yes",   "no",   "on",
                                                  "off", "true", "false", "null", "~"};
  return !kReserved.count(Lower(k)) && !std::isdigit(static_cast<unsigned char>(k[0])) &&
         k[0] != '-' && k[0] != '.';
}

std::string Key(const std::string& k) { return PlainKey(k) ? k : Json(k).dump(); }

bool IsScalar(const Json& j) { return !j.is_object() && !j.is_array(); }
bool Flat(const Json& j) {
  if (IsScalar(j) || j.empty()) return true;
  if (j.is_array())
    return std::all_of(j.begin(), j.end(), [](const Json& x) { return IsScalar(x); });
  return false;
}

std::string Inline(const Json& j) {
  if (j.is_string()) return j.dump();  // JSON strings are YAML double-quoted scalars
  if (IsScalar(j)) return j.dump();
  if (j.is_array()) {
    std::string out = "[";
    for (size_t i = 0; i < j.size(); ++i) out += (i ? ", " : "") + Inline(j[i]);
    return out + "]";
  }
  return "{}";
}

void Emit(const Json& j, int indent, std::string& out);

void EmitMapEntries(const Json& j, int indent, bool first_inline, std::string& out) {
  bool first = true;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!(first && first_inline)) out += std::string(indent, ' ');
    first = false;
    out += Key(it.key()) + ":";
    if (Flat(it.value())) {
      out += " " + Inline(it.value()) + "\n";
    } else {
      out += "\n";
      Emit(it.value(), indent + 2, out);
    }
  }
}

void Emit(const Json& j, int indent, std::string& out) {
  if (j.is_object()) {
    EmitMapEntries(j, indent, false, out);
  } else if (j.is_array()) {
    for (const Json& item : j) {
      out += std::string(indent, ' ') + "- ";
      if (item.is_object() && !item.empty()) {
        EmitMapEntries(item, indent + 2, true, out);
      } else {
        out += Inline(item) + "\n";
      }
    }
  }
}

std::string Document(const std::string& comment, const Json& doc) {
  std::string out = "# " + comment + "\n";
  Emit(doc, 0, out);
  return out;
}

// ---- the importer ------------------------------------------------------

struct ServiceInfo {
  std::string service;  // compose name
  std::string agent;    // agent name
  const YamlNode* node = nullptr;
};

class Importer {
 public:
  explicit Importer(const ComposeImportInput& in) : in_(in) {}
  ComposeImportResult Run();

 private:
  void Error(const YamlNode& at, const std::string& field, std::string message) {
    result_.diagnostics.Error(in_.file, at.line, at.column, field, std::move(message));
  }
  void Warn(const YamlNode& at, const std::string& field, std::string message) {
    result_.diagnostics.Add(
        {Severity::kWarning, in_.file, at.line, at.column, field, std::move(message)});
  }
  bool Has(const std::string& field) const { return in_.agent_fields.count(field) > 0; }
  // Reports a key that maps to `field`, which this build does not have.
  bool Need(const YamlNode& at, const std::string& key, const std::string& field, bool error) {
    if (Has(field)) return true;
    std::string m = "maps to spec." + field + ", which this build of reconcile does not have yet";
    if (error) {
      Error(at, key, m);
    } else {
      Warn(at, key, m + "; ignored");
    }
    return false;
  }

  // Map entries with `<<` merge keys applied; keys must be strings.
  std::vector<Entry> Entries(const YamlNode& n, const std::string& path);
  std::optional<std::vector<Entry>> MapOf(const YamlNode& raw, const std::string& path,
                                          const std::string& expected);
  std::optional<std::string> Scalar(const YamlNode& raw, const std::string& path);
  std::optional<std::int64_t> Integer(const YamlNode& raw, const std::string& path,
                                      std::int64_t min, std::int64_t max);
  std::optional<bool> Boolean(const YamlNode& raw, const std::string& path);
  std::optional<std::vector<std::string>> Strings(const YamlNode& raw, const std::string& path);
  std::optional<std::string> Duration(const YamlNode& raw, const std::string& path);
  // A list of strings, or a string split into shell words.
  std::optional<std::vector<std::string>> Command(const YamlNode& raw, const std::string& path);
  // KEY=VALUE list or map; values nullopt for "KEY" / "KEY:" (take from env).
  std::vector<std::tuple<std::string, std::optional<std::string>, const YamlNode*>> KeyValues(
      const YamlNode& raw, const std::string& path, bool allow_null);

  void Interpolate(YamlNode& n);
  void TopLevel(const YamlNode& root);
  void Service(const ServiceInfo& s);
  void Environment(const ServiceInfo& s, const std::vector<Entry>& keys, Json& spec);
  void Ports(const ServiceInfo& s, const YamlNode* ports, const YamlNode* expose, Json& spec);
  void Volumes(const ServiceInfo& s, const YamlNode& n, Json& mounts);
  void Tmpfs(const ServiceInfo& s, const YamlNode& n, Json& mounts);
  void HealthCheck(const ServiceInfo& s, const YamlNode& n, Json& spec);
  void Networks(const ServiceInfo& s, const YamlNode* n, Json& spec);
  void Deploy(const ServiceInfo& s, const YamlNode& n, Json& spec);
  void Build(const ServiceInfo& s, const YamlNode& n, Json& spec);
  void Secrets(const ServiceInfo& s, const YamlNode& n, Json& spec);
  void AddSecretFile(const std::string& name, const std::string& what) {
    secret_files_.emplace(name, what);
  }
  std::string NetworkName(const std::string& key) const;

  const ComposeImportInput& in_;
  ComposeImportResult result_;
  std::map<std::string, std::string> env_;
  std::string project_;
  std::map<std::string, ServiceInfo> services_;  // by compose name
  std::map<std::string, std::string> volumes_;   // compose key -> volume name
  std::map<std::string, std::string> networks_;  // compose key -> network name
  struct SecretDef {
    std::string file;  // resolved path, for people
  };
  std::map<std::string, SecretDef> secrets_;
  std::map<std::string, std::string> secret_files_;
  std::set<std::string> bind_paths_;
  bool needs_registry_ = false;
  std::vector<std::pair<std::string, Json>> agents_;  // (agent name, document)
};

std::vector<Entry> Importer::Entries(const YamlNode& raw, const std::string& path) {
  const YamlNode& n = raw.Resolved();
  std::vector<Entry> out;
  std::set<std::string> seen;
  std::vector<Entry> merged;
  for (const auto& [k, v] : n.entries) {
    const YamlNode& key = k->Resolved();
    const YamlNode& value = v->Resolved();
    if (key.kind != Kind::kScalar) {
      Error(key, path, "map keys must be strings");
      continue;
    }
    if (key.value == "<<" && key.tag == "?") {
      std::vector<const YamlNode*> sources;
      if (value.kind == Kind::kMap) sources.push_back(&value);
      if (value.kind == Kind::kSequence) {
        for (const auto& item : value.items) sources.push_back(&item->Resolved());
      }
      for (const YamlNode* src : sources) {
        if (src->kind != Kind::kMap) {
          Error(*src, path, "a merge key (<<) takes a map or a list of maps");
          continue;
        }
        for (const Entry& e : Entries(*src, path)) merged.push_back(e);
      }
      continue;
    }
    if (!seen.insert(key.value).second) {
      Error(key, path, "duplicate key '" + key.value + "'");
      continue;
    }
    out.emplace_back(&key, &value);
  }
  for (const Entry& e : merged) {
    if (seen.insert(e.first->value).second) out.push_back(e);
  }
  return out;
}

std::optional<std::vector<Entry>> Importer::MapOf(const YamlNode& raw, const std::string& path,
                                                  const std::string& expected) {
  const YamlNode& n = raw.Resolved();
  if (IsNullNode(n)) return std::vector<Entry>{};
  if (n.kind != Kind::kMap) {
    Error(n, path, "must be " + expected);
    return std::nullopt;
  }
  return Entries(n, path);
}

std::optional<std::string> Importer::Scalar(const YamlNode& raw, const std::string& path) {
  const YamlNode& n = raw.Resolved();
  if (n.kind != Kind::kScalar) {
    Error(n, path, "must be a string");
    return std::nullopt;
  }
  return n.value;
}

std::optional<std::int64_t> Importer::Integer(const YamlNode& raw, const std::string& path,
                                              std::int64_t min, std::int64_t max) {
  auto s = Scalar(raw, path);
  if (!s) return std::nullopt;
  if (!AllDigits(*s) || s->size() > 12) {
    Error(raw.Resolved(), path, "must be an integer, got '" + *s + "'");
    return std::nullopt;
  }
  std::int64_t v = std::stoll(*s);
  if (v < min || v > max) {
    Error(raw.Resolved(), path,
          "must be between " + std::to_string(min) + " and " + std::to_string(max));
    return std::nullopt;
  }
  return v;
}

std::optional<bool> Importer::Boolean(const YamlNode& raw, const std::string& path) {
  auto s = Scalar(raw, path);
  if (!s) return std::nullopt;
  std::string v = Lower(*s);
  if (v == "true" || v == "yes" || v == "on" || v == "y") return true;
  if (v == "false" || v == "no" || v == "off" || v == "n") return false;
  Error(raw.Resolved(), path, "must be true or false, got '" + *s + "'");
  return std::nullopt;
}

std::optional<std::vector<std::string>> Importer::Strings(const YamlNode& raw,
                                                          const std::string& path) {
  const YamlNode& n = raw.Resolved();
  if (n.kind != Kind::kSequence) {
    Error(n, path, "must be a list of strings");
    return std::nullopt;
  }
  std::vector<std::string> out;
  for (const auto& item : n.items) {
    auto s = Scalar(*item, path);
    if (!s) return std::nullopt;
    out.push_back(*s);
  }
  return out;
}

std::optional<std::string> Importer::Duration(const YamlNode& raw, const std::string& path) {
  auto s = Scalar(raw, path);
  if (!s) return std::nullopt;
  auto ms = ComposeDurationMs(*s);
  if (!ms) {
    Error(raw.Resolved(), path, "must be a duration such as 10s, 1m30s or 500ms, got '" + *s + "'");
    return std::nullopt;
  }
  if (*ms > 24LL * 3600000) {
    Error(raw.Resolved(), path, "reconcile takes durations of at most 24h, got '" + *s + "'");
    return std::nullopt;
  }
  return DurationText(*ms);
}

std::optional<std::vector<std::string>> Importer::Command(const YamlNode& raw,
                                                          const std::string& path) {
  const YamlNode& n = raw.Resolved();
  if (n.kind == Kind::kScalar) {
    auto words = ShellWords(n.value);
    if (!words) Error(n, path, "unterminated quote in '" + n.value + "'");
    return words;
  }
  return Strings(n, path);
}

std::vector<std::tuple<std::string, std::optional<std::string>, const YamlNode*>>
Importer::KeyValues(const YamlNode& raw, const std::string& path, bool allow_null) {
  std::vector<std::tuple<std::string, std::optional<std::string>, const YamlNode*>> out;
  const YamlNode& n = raw.Resolved();
  if (n.kind == Kind::kSequence) {
    for (const auto& item_ptr : n.items) {
      const YamlNode& item = item_ptr->Resolved();
      if (item.kind != Kind::kScalar) {
        Error(item, path, "must be a list of KEY=VALUE strings");
        continue;
      }
      size_t eq = item.value.find('=');
      if (eq == std::string::npos) {
        if (allow_null) {
          out.emplace_back(item.value, std::nullopt, &item);
        } else {
          out.emplace_back(item.value, std::string(), &item);
        }
      } else {
        out.emplace_back(item.value.substr(0, eq), item.value.substr(eq + 1), &item);
      }
    }
  } else if (n.kind == Kind::kMap) {
    for (const auto& [k, v] : Entries(n, path)) {
      if (IsNullNode(*v)) {
        out.emplace_back(k->value, allow_null ? std::nullopt : std::optional<std::string>(""), k);
      } else if (v->kind == Kind::kScalar) {
        out.emplace_back(k->value, v->value, v);
      } else {
        Error(*v, path + "." + k->value, "must be a string, number or boolean");
      }
    }
  } else if (!IsNullNode(n)) {
    Error(n, path, "must be a map or a list of KEY=VALUE strings");
  }
  return out;
}

void Importer::Interpolate(YamlNode& n) {
  if (n.kind == Kind::kScalar) {
    if (n.value.find('$') == std::string::npos) return;
    std::string error;
    std::vector<std::string> unset;
    auto v = InterpolateCompose(n.value, env_, error, unset);
    if (!v) {
      Error(n, "", error);
      return;
    }
    for (const std::string& name : unset) {
      Warn(n, "",
           "variable " + name + " is not set (in the environment or .env); " +
               "it becomes an empty string, as in Compose");
    }
    n.value = *v;
  } else if (n.kind == Kind::kSequence) {
    for (auto& item : n.items) Interpolate(*item);
  } else if (n.kind == Kind::kMap) {
    for (auto& [k, v] : n.entries) Interpolate(*v);
  }
}

std::string Importer::NetworkName(const std::string& key) const {
  auto it = networks_.find(key);
  return it != networks_.end() ? it->second : project_ + "_" + key;
}

ComposeImportResult Importer::Run() {
  // Variables: .env, then the shell's, which win (as in Compose).
  if (!in_.dotenv_file.empty()) {
    env_ = ParseDotEnv(in_.dotenv_file, in_.dotenv_content, result_.diagnostics);
  }
  for (const auto& [k, v] : in_.environment) env_[k] = v;

  std::vector<YamlDocument> docs = ParseYaml(in_.file, in_.content, 64, 10000, result_.diagnostics);
  if (result_.diagnostics.HasErrors()) return std::move(result_);
  if (docs.empty() || IsNullNode(*docs[0].root)) {
    result_.diagnostics.Error(in_.file, 1, 1, "", "the compose file is empty");
    return std::move(result_);
  }
  if (docs.size() > 1) {
    result_.diagnostics.Error(
        in_.file, docs[1].root->line, docs[1].root->column, "",
        "a compose file holds one document; this one has " + std::to_string(docs.size()));
  }
  YamlNode& root = *docs[0].root;
  if (root.kind != Kind::kMap) {
    Error(root, "", "a compose file must be a map with services");
    return std::move(result_);
  }
  Interpolate(root);
  TopLevel(root);

  result_.project = project_;
  result_.bind_paths.assign(bind_paths_.begin(), bind_paths_.end());
  for (const auto& [name, what] : secret_files_) result_.secret_files.push_back({name, what});
  result_.diagnostics.Sort();
  if (result_.diagnostics.HasErrors()) {
    result_.documents.clear();
    return std::move(result_);
  }

  const std::string origin = "Imported by `reconcile import compose` from " + in_.file;
  Json target = {{"apiVersion", kApiVersion},
                 {"kind", "Target"},
                 {"metadata", {{"name", in_.target}}},
                 {"spec",
                  {{"provider", "docker"},
                   // Compose publishes ports on every address of the host.
                   {"docker", {{"publishAddress", "0.0.0.0"}}}}}};
  result_.documents.push_back({"target-" + in_.target + ".yaml", "Target", in_.target,
                               Document(origin + " (Compose publishes on 0.0.0.0).", target)});
  if (needs_registry_) {
    Json registry = {{"apiVersion", kApiVersion},
                     {"kind", "Registry"},
                     {"metadata", {{"name", "images"}}},
                     {"spec",
                      {{"url", "127.0.0.1:5000"},
                       {"repository", project_.empty() ? "compose" : project_},
                       {"tagStrategy", "custom"},
                       {"customTag", "{agent}-{sha}"},
                       {"insecure", true}}}};
    result_.documents.push_back(
        {"registry-images.yaml", "Registry", "images",
         Document(origin + ": where built images are pushed; set url to your registry.",
                  registry)});
  }
  for (auto& [name, doc] : agents_) {
    result_.documents.push_back(
        {"agent-" + name + ".yaml", "Agent", name, Document(origin + ".", doc)});
  }
  std::sort(
      result_.documents.begin(), result_.documents.end(),
      [](const ComposeDocument& a, const ComposeDocument& b) { return a.file_name < b.file_name; });
  return std::move(result_);
}

void Importer::TopLevel(const YamlNode& root) {
  const YamlNode* services = nullptr;
  const YamlNode* name = nullptr;
  std::vector<Entry> volumes, networks, secrets;
  for (const auto& [k, v] : Entries(root, "")) {
    const std::string& key = k->value;
    if (key == "version") {
      auto s = Scalar(*v, "version");
      if (s && !(StartsWith(*s, "2") || StartsWith(*s, "3"))) {
        Error(*v, "version",
              "compose file version '" + *s + "' is not supported (2.x, 3.x or none)");
      }
    } else if (key == "name") {
      name = v;
    } else if (key == "services") {
      services = v;
    } else if (key == "volumes") {
      if (auto m = MapOf(*v, "volumes", "a map of volume names")) volumes = *m;
    } else if (key == "networks") {
      if (auto m = MapOf(*v, "networks", "a map of network names")) networks = *m;
    } else if (key == "secrets") {
      if (auto m = MapOf(*v, "secrets", "a map of secret names")) secrets = *m;
    } else if (key == "configs") {
      Error(*k, "configs",
            "not supported: reconcile has no configs; mount the file with a bind "
            "volume (--allow-bind) instead");
    } else if (key == "include") {
      Error(*k, "include", "not supported: import each compose file on its own");
    } else if (StartsWith(key, "x-")) {
      Warn(*k, key, "extension key ignored (its anchors are used where they are merged)");
    } else {
      Error(*k, key, "unknown top-level compose key '" + key + "'");
    }
  }
  // The project name: --project, the file's name:, or the folder's name.
  std::string project = in_.project;
  if (project.empty() && name) {
    if (auto s = Scalar(*name, "name")) project = *s;
  }
  if (project.empty()) {
    std::string dir = in_.compose_dir;
    project = dir.substr(dir.find_last_of('/') + 1);
  }
  project_ = ProjectName(project);
  if (project_.empty()) {
    result_.diagnostics.Error(in_.file, 0, 0, "name",
                              "no project name: give --project NAME (letters, digits, _ or -)");
  }

  for (const auto& [k, v] : volumes) {
    std::string path = "volumes." + k->value;
    std::string vname = project_ + "_" + k->value;
    if (auto m = MapOf(*v, path, "a map (driver, name, labels, external)")) {
      for (const auto& [ok, ov] : *m) {
        const std::string& o = ok->value;
        if (o == "name") {
          if (auto s = Scalar(*ov, path + ".name")) vname = *s;
        } else if (o == "external") {
          auto b = ov->Resolved().kind == Kind::kMap ? std::optional<bool>(true)
                                                     : Boolean(*ov, path + ".external");
          if (b && *b) {
            Error(*ok, path + ".external",
                  "not supported: reconcile mounts only volumes it creates and owns; an existing "
                  "volume is refused, never taken over");
          }
        } else if (o == "driver") {
          auto s = Scalar(*ov, path + ".driver");
          if (s && *s != "local") {
            Error(*ov, path + ".driver",
                  "volume driver '" + *s + "' is not supported: reconcile creates local volumes");
          }
        } else if (o == "driver_opts") {
          Error(*ok, path + ".driver_opts",
                "not supported: reconcile creates plain local volumes (the data would land "
                "elsewhere)");
        } else if (o == "labels") {
          Warn(*ok, path + ".labels",
               "ignored: reconcile labels its volumes with reconcile.dev/* only");
        } else {
          Error(*ok, path + "." + o, "unknown volume key '" + o + "'");
        }
      }
    }
    std::string lowered = Lower(vname);
    if (lowered != vname) {
      Warn(*k, path,
           "volume name '" + vname + "' becomes '" + lowered +
               "' (reconcile's volume names are lower case)");
    }
    volumes_[k->value] = lowered;
  }

  for (const auto& [k, v] : networks) {
    std::string path = "networks." + k->value;
    std::string nname = project_ + "_" + k->value;
    if (auto m = MapOf(*v, path, "a map (driver, name, ipam, ...)")) {
      for (const auto& [ok, ov] : *m) {
        const std::string& o = ok->value;
        if (o == "name") {
          if (auto s = Scalar(*ov, path + ".name")) nname = *s;
        } else if (o == "driver") {
          auto s = Scalar(*ov, path + ".driver");
          if (s && *s != "bridge") {
            Error(
                *ov, path + ".driver",
                "network driver '" + *s + "' is not supported: reconcile creates bridge networks");
          }
        } else if (o == "external") {
          Error(*ok, path + ".external",
                "not supported: reconcile attaches agents only to networks it creates and owns");
        } else if (o == "internal") {
          auto b = Boolean(*ov, path + ".internal");
          if (b && *b) {
            Error(*ok, path + ".internal",
                  "not supported: reconcile's networks reach outside; an internal-only network "
                  "cannot be honoured");
          }
        } else if (o == "ipam") {
          Warn(*ok, path + ".ipam", "ignored: the engine picks the network's subnet");
        } else if (o == "driver_opts" || o == "labels" || o == "attachable" || o == "enable_ipv6") {
          Warn(*ok, path + "." + o, "ignored: reconcile creates plain bridge networks");
        } else {
          Error(*ok, path + "." + o, "unknown network key '" + o + "'");
        }
      }
    }
    networks_[k->value] = nname;
  }

  for (const auto& [k, v] : secrets) {
    std::string path = "secrets." + k->value;
    SecretDef def;
    auto m = MapOf(*v, path, "a map with file or environment");
    if (!m) continue;
    bool source = false;
    for (const auto& [ok, ov] : *m) {
      const std::string& o = ok->value;
      if (o == "file") {
        if (auto s = Scalar(*ov, path + ".file"))
          def.file = "the content of " + Resolve(in_.compose_dir, *s);
        source = true;
      } else if (o == "environment") {
        if (auto s = Scalar(*ov, path + ".environment")) def.file = "the value of $" + *s;
        source = true;
      } else if (o == "external") {
        Error(*ok, path + ".external", "not supported: swarm secrets are not read by reconcile");
        source = true;
      } else if (o == "name") {
        Warn(*ok, path + ".name", "ignored: the secret file is named after the compose key");
      } else {
        Error(*ok, path + "." + o, "unknown secret key '" + o + "'");
      }
    }
    if (!source) Error(*k, path, "a secret needs file or environment");
    secrets_[k->value] = def;
  }

  if (!services) {
    Error(root, "services", "a compose file needs services");
    return;
  }
  auto svc = MapOf(*services, "services", "a map of services");
  if (!svc) return;
  if (svc->size() > static_cast<size_t>(kMaxServices)) {
    Error(*services, "services",
          "at most " + std::to_string(kMaxServices) + " services, got " +
              std::to_string(svc->size()));
    return;
  }
  std::map<std::string, std::string> agent_names;  // agent -> service
  for (const auto& [k, v] : *svc) {
    ServiceInfo info;
    info.service = k->value;
    info.agent = DnsLabel(in_.agent_prefix + k->value);
    info.node = v;
    if (info.agent.empty()) {
      Error(*k, "services." + k->value, "cannot make an agent name from '" + k->value + "'");
      continue;
    }
    if (auto [it, fresh] = agent_names.emplace(info.agent, k->value); !fresh) {
      Error(*k, "services." + k->value,
            "services '" + it->second + "' and '" + k->value + "' both become agent '" +
                info.agent + "'");
      continue;
    }
    services_[k->value] = info;
  }
  for (const auto& [k, v] : *svc) {
    auto it = services_.find(k->value);
    if (it != services_.end()) Service(it->second);
  }
}

void Importer::Service(const ServiceInfo& s) {
  const std::string base = "services." + s.service;
  auto keys_opt = MapOf(*s.node, base, "a map");
  if (!keys_opt) return;
  const std::vector<Entry>& keys = *keys_opt;
  Json spec = Json::object();
  const YamlNode* image = nullptr;
  const YamlNode* build = nullptr;
  const YamlNode* ports = nullptr;
  const YamlNode* expose = nullptr;
  const YamlNode* networks = nullptr;
  const YamlNode* self = &s.node->Resolved();
  Json mounts = Json::array();
  Json labels = Json::object();
  std::string restart;
  bool has_env = false;

  for (const auto& [k, v] : keys) {
    const std::string& key = k->value;
    const std::string path = base + "." + key;
    if (key == "image") {
      image = v;
    } else if (key == "build") {
      build = v;
    } else if (key == "command") {
      if (auto c = Command(*v, path)) spec["args"] = *c;
    } else if (key == "entrypoint") {
      if (auto c = Command(*v, path)) spec["command"] = *c;
    } else if (key == "environment" || key == "env_file") {
      has_env = true;
    } else if (key == "ports") {
      ports = v;
    } else if (key == "expose") {
      expose = v;
    } else if (key == "volumes") {
      Volumes(s, *v, mounts);
    } else if (key == "tmpfs") {
      Tmpfs(s, *v, mounts);
    } else if (key == "restart") {
      if (auto r = Scalar(*v, path)) {
        std::string policy = *r == "false" ? "no" : *r;  // a plain `no` is YAML 1.1's false
        bool ok = policy == "no" || policy == "always" || policy == "unless-stopped" ||
                  policy == "on-failure" ||
                  (StartsWith(policy, "on-failure:") && AllDigits(policy.substr(11)));
        if (ok) {
          restart = policy;
        } else {
          Error(*v, path, "must be no, always, unless-stopped or on-failure[:N], got '" + *r + "'");
        }
      }
    } else if (key == "depends_on") {
      Json deps = Json::array();
      auto add = [&](const YamlNode& at, const std::string& name) {
        auto it = services_.find(name);
        if (it == services_.end()) {
          Error(at, path, "service '" + name + "' is not defined");
        } else {
          deps.push_back(it->second.agent);
        }
      };
      const YamlNode& d = v->Resolved();
      if (d.kind == Kind::kSequence) {
        for (const auto& item : d.items) {
          if (auto n = Scalar(*item, path)) add(item->Resolved(), *n);
        }
      } else if (d.kind == Kind::kMap) {
        for (const auto& [dk, dv] : Entries(d, path)) {
          add(*dk, dk->value);
          auto opts = MapOf(*dv, path + "." + dk->value, "a map (condition, restart, required)");
          if (!opts) continue;
          for (const auto& [ok, ov] : *opts) {
            const std::string opath = path + "." + dk->value + "." + ok->value;
            if (ok->value == "condition") {
              auto c = Scalar(*ov, opath);
              if (c && *c == "service_started") {
                Warn(*ov, opath,
                     "mapped differently: reconcile's dependsOn waits until the dependency is "
                     "healthy (running, when it has no health check), not only started");
              } else if (c && *c == "service_completed_successfully") {
                Error(*ov, opath,
                      "not supported: reconcile runs long-lived agents; it cannot wait for a "
                      "one-shot service to finish");
              } else if (c && *c != "service_healthy") {
                Error(*ov, opath, "unknown condition '" + *c + "'");
              }
            } else if (ok->value == "restart") {
              Warn(*ok, opath,
                   "ignored: reconcile does not restart an agent when a dependency "
                   "is replaced");
            } else if (ok->value == "required") {
              auto b = Boolean(*ov, opath);
              if (b && !*b) {
                Error(*ov, opath, "not supported: reconcile's dependencies are always required");
              }
            } else {
              Error(*ok, opath, "unknown depends_on key '" + ok->value + "'");
            }
          }
        }
      } else {
        Error(d, path, "must be a list of service names or a map");
      }
      if (!deps.empty()) spec["dependsOn"] = deps;
    } else if (key == "healthcheck") {
      HealthCheck(s, *v, spec);
    } else if (key == "networks") {
      networks = v;
    } else if (key == "network_mode") {
      auto m = Scalar(*v, path);
      Error(*v, path,
            "network_mode '" + m.value_or("") +
                "' is not supported: reconcile attaches agents to the networks it owns (use "
                "networks)");
    } else if (key == "deploy") {
      Deploy(s, *v, spec);
    } else if (key == "secrets") {
      Secrets(s, *v, spec);
    } else if (key == "container_name") {
      auto n = Scalar(*v, path);
      Warn(*v, path,
           "mapped differently: reconcile names containers after the agent ('" + s.agent +
               "'), not '" + n.value_or("") + "'; other agents reach it by the service name");
    } else if (key == "hostname") {
      if (auto n = Scalar(*v, path); n && Need(*k, path, "hostname", false)) spec["hostname"] = *n;
    } else if (key == "labels") {
      for (auto& [lk, lv, at] : KeyValues(*v, path, false)) {
        if (StartsWith(lk, "reconcile.dev/")) {
          Error(*at, path, "label '" + lk + "': keys under reconcile.dev/ are reconcile's own");
        } else {
          labels[lk] = lv.value_or("");
        }
      }
      if (!labels.empty() && !Need(*k, path, "labels", false)) labels = Json::object();
    } else if (key == "user") {
      if (auto u = Scalar(*v, path); u && Need(*k, path, "user", true)) spec["user"] = *u;
    } else if (key == "cap_add" || key == "cap_drop") {
      const std::string field = key == "cap_add" ? "capAdd" : "capDrop";
      if (auto caps = Strings(*v, path); caps && Need(*k, path, field, true)) {
        Json list = Json::array();
        for (std::string c : *caps) {
          c = Upper(c);
          if (StartsWith(c, "CAP_")) c = c.substr(4);
          list.push_back(c);
        }
        spec[field] = list;
      }
    } else if (key == "read_only") {
      if (auto b = Boolean(*v, path); b && Need(*k, path, "readOnlyRootFilesystem", true)) {
        if (*b) spec["readOnlyRootFilesystem"] = true;
      }
    } else if (key == "stop_signal") {
      if (auto sig = Scalar(*v, path); sig && Need(*k, path, "stopSignal", false)) {
        spec["stopSignal"] = *sig;
      }
    } else if (key == "stop_grace_period") {
      if (auto d = Duration(*v, path); d && Need(*k, path, "stopGracePeriod", false)) {
        spec["stopGracePeriod"] = *d;
      }
    } else if (key == "mem_limit") {
      auto b = Scalar(*v, path);
      auto bytes = b ? ComposeBytes(*b) : std::nullopt;
      if (b && !bytes) Error(*v, path, "must be a size such as 512m or 1.5g, got '" + *b + "'");
      if (bytes) spec["resources"]["memory"] = BytesText(*bytes);
    } else if (key == "cpus") {
      if (auto c = Scalar(*v, path)) spec["resources"]["cpu"] = *c;
    } else if (key == "gpus") {
      if (auto g = Scalar(*v, path); g && Need(*k, path, "resources.gpus", true)) {
        if (*g == "all") {
          spec["resources"]["gpus"] = "all";
        } else if (AllDigits(*g) && std::stoll(*g) > 0) {
          spec["resources"]["gpus"] = std::stoll(*g);
        } else {
          Error(*v, path, "must be all or a positive number of GPUs");
        }
      }
    } else if (key == "scale") {
      if (auto n = Integer(*v, path, 1, 100)) spec["replicas"] = *n;
    } else if (key == "links") {
      Warn(*k, path,
           "mapped differently: agents on a shared network reach each other by service name; "
           "links (and their aliases) are not needed");
    } else if (key == "logging") {
      Warn(*k, path, "ignored: containers log with the engine's default log driver");
    } else if (key == "tty" || key == "stdin_open") {
      Warn(*k, path, "ignored: agents run detached, without a terminal or stdin");
    } else if (key == "init") {
      Warn(*k, path, "ignored: the image's entrypoint runs as PID 1 (no docker-init)");
    } else if (key == "platform" || key == "pull_policy") {
      Warn(*k, path, "ignored: the engine pulls the image for its own platform when missing");
    } else if (key == "profiles") {
      Warn(*k, path, "ignored: reconcile has no profiles; the service is always deployed");
    } else if (key == "mem_reservation" || key == "cpu_shares" || key == "oom_score_adj") {
      Warn(*k, path, "ignored: reconcile sets limits (resources.cpu, resources.memory) only");
    } else if (StartsWith(key, "x-")) {
      Warn(*k, path, "extension key ignored");
    } else {
      static const std::set<std::string> kKnownRefused = {"working_dir",
                                                          "privileged",
                                                          "devices",
                                                          "dns",
                                                          "dns_search",
                                                          "dns_opt",
                                                          "extra_hosts",
                                                          "ulimits",
                                                          "sysctls",
                                                          "shm_size",
                                                          "pid",
                                                          "ipc",
                                                          "security_opt",
                                                          "cgroup_parent",
                                                          "userns_mode",
                                                          "isolation",
                                                          "volumes_from",
                                                          "external_links",
                                                          "extends",
                                                          "configs",
                                                          "domainname",
                                                          "mac_address",
                                                          "memswap_limit",
                                                          "oom_kill_disable",
                                                          "cpuset",
                                                          "cpu_quota",
                                                          "cpu_period",
                                                          "blkio_config",
                                                          "group_add",
                                                          "runtime",
                                                          "storage_opt",
                                                          "credential_spec",
                                                          "device_cgroup_rules",
                                                          "annotations",
                                                          "attach",
                                                          "cgroup",
                                                          "cpu_count",
                                                          "cpu_percent",
                                                          "cpu_rt_period",
                                                          "cpu_rt_runtime",
                                                          "develop",
                                                          "label_file",
                                                          "mem_swappiness",
                                                          "pids_limit",
                                                          "post_start",
                                                          "pre_stop",
                                                          "uts",
                                                          "use_api_socket",
                                                          "models",
                                                          "provider",
                                                          "volume_driver"};
      if (kKnownRefused.count(key)) {
        Error(*k, path, "'" + key + "' is not supported by reconcile's Agent");
      } else {
        Error(*k, path, "unknown service key '" + key + "'");
      }
    }
  }

  if (image && build) {
    Warn(*image, base + ".image",
         "mapped differently: the service is built (build:); its image is tagged by the Registry "
         "(registry-images.yaml), not '" +
             image->Resolved().value + "'");
  }
  if (build) {
    Build(s, *build, spec);
  } else if (image) {
    if (auto i = Scalar(*image, base + ".image")) spec["image"] = *i;
  } else {
    Error(*self, base, "a service needs image or build");
  }
  spec["target"] = in_.target;
  if (has_env) Environment(s, keys, spec);
  Ports(s, ports, expose, spec);
  if (!mounts.empty()) {
    std::stable_sort(mounts.begin(), mounts.end(), [](const Json& a, const Json& b) {
      return a["target"].get<std::string>() < b["target"].get<std::string>();
    });
    for (size_t i = 1; i < mounts.size(); ++i) {
      if (mounts[i]["target"] == mounts[i - 1]["target"]) {
        // docker-compose refuses it too ("Duplicate mount points").
        Error(*self, base + ".volumes",
              "two mounts on " + mounts[i]["target"].get<std::string>() +
                  ": a path takes one filesystem (docker-compose refuses this file too)");
      }
    }
    spec["volumes"] = mounts;
  }
  Networks(s, networks, spec);
  // Compose's default is no restart policy; reconcile's own is unless-stopped.
  if (!spec.contains("restart"))
    spec["restart"] = restart.empty() ? "no" : restart;
  else if (!restart.empty())
    spec["restart"] = restart;
  if (!labels.empty()) spec["labels"] = labels;

  // Order the spec as the reference lists fields, for people.
  static const char* kOrder[] = {
      "image",       "build",           "registry", "target",   "port",    "hostPort",
      "publish",     "ports",           "command",  "args",     "env",     "secretEnv",
      "secretFiles", "volumes",         "networks", "replicas", "restart", "resources",
      "healthCheck", "dependsOn",       "user",     "capAdd",   "capDrop", "readOnlyRootFilesystem",
      "stopSignal",  "stopGracePeriod", "hostname", "labels"};
  Json ordered = Json::object();
  for (const char* f : kOrder) {
    if (spec.contains(f)) ordered[f] = spec[f];
  }
  for (auto it = spec.begin(); it != spec.end(); ++it) {
    if (!ordered.contains(it.key())) ordered[it.key()] = it.value();
  }
  Json doc = {{"apiVersion", kApiVersion},
              {"kind", "Agent"},
              {"metadata", {{"name", s.agent}, {"annotations", {{"compose.service", s.service}}}}},
              {"spec", ordered}};
  agents_.emplace_back(s.agent, doc);
}

void Importer::Build(const ServiceInfo& s, const YamlNode& n, Json& spec) {
  const std::string path = "services." + s.service + ".build";
  std::string context = ".";
  std::string dockerfile;
  Json args = Json::object();
  const YamlNode& b = n.Resolved();
  const YamlNode* context_at = &b;
  if (b.kind == Kind::kScalar) {
    context = b.value;
  } else if (auto m = MapOf(b, path, "a path or a map (context, dockerfile, args, ...)")) {
    for (const auto& [k, v] : *m) {
      const std::string& key = k->value;
      if (key == "context") {
        if (auto c = Scalar(*v, path + ".context")) context = *c;
        context_at = v;
      } else if (key == "dockerfile") {
        if (auto d = Scalar(*v, path + ".dockerfile")) dockerfile = *d;
      } else if (key == "args") {
        for (auto& [ak, av, at] : KeyValues(*v, path + ".args", true)) {
          if (LooksLikeSecretName(ak) && av && !av->empty()) {
            Error(*at, path + ".args." + ak,
                  "looks like a secret: a build argument ends up in the image and in the tree; "
                  "reconcile does not copy it (pass it as a secret at run time)");
          } else if (av) {
            args[ak] = *av;
          } else if (auto e = env_.find(ak); e != env_.end()) {
            args[ak] = e->second;
          }
        }
      } else if (key == "target") {
        Warn(*k, path + ".target",
             "ignored: reconcile builds the Dockerfile's last stage, not stage '" +
                 v->Resolved().value + "'");
      } else if (key == "cache_from" || key == "cache_to" || key == "labels" || key == "network" ||
                 key == "shm_size" || key == "extra_hosts" || key == "pull" || key == "no_cache" ||
                 key == "platforms" || key == "tags" || key == "isolation" || key == "ssh" ||
                 key == "secrets" || key == "privileged" || key == "ulimits" ||
                 key == "additional_contexts" || key == "dockerfile_inline") {
        if (key == "dockerfile_inline" || key == "ssh" || key == "secrets" ||
            key == "additional_contexts") {
          Error(*k, path + "." + key, "not supported by reconcile's builds");
        } else {
          Warn(*k, path + "." + key, "ignored: reconcile's builds do not take it");
        }
      } else if (StartsWith(key, "x-")) {
        Warn(*k, path + "." + key, "extension key ignored");
      } else {
        Error(*k, path + "." + key, "unknown build key '" + key + "'");
      }
    }
  }
  if (context.find("://") != std::string::npos || StartsWith(context, "git@")) {
    Error(*context_at, path,
          "a build context from a URL is not supported: reconcile builds from "
          "a folder of its tree");
    return;
  }
  std::string abs = Resolve(in_.compose_dir, context);
  std::string rel = Relative(in_.out_dir, abs);
  if (rel == ".." || StartsWith(rel, "../")) {
    Warn(*context_at, path,
         "the build context " + abs + " lies outside the output folder " + in_.out_dir +
             ": reconcile builds only from folders inside its tree (`validate` refuses it until "
             "the context is moved or copied under the output folder)");
  }
  Json bspec = {{"context", rel}};
  if (!dockerfile.empty()) bspec["dockerfile"] = dockerfile;
  if (!args.empty()) bspec["args"] = args;
  spec["build"] = bspec;
  spec["registry"] = "images";
  needs_registry_ = true;
}

void Importer::Environment(const ServiceInfo& s, const std::vector<Entry>& keys, Json& spec) {
  const std::string base = "services." + s.service;
  // env_file first, environment over it (as in Compose).
  std::map<std::string, std::pair<std::optional<std::string>, const YamlNode*>> vars;
  std::vector<std::string> order;
  auto set = [&](const std::string& k, std::optional<std::string> v, const YamlNode* at) {
    if (!vars.count(k)) order.push_back(k);
    vars[k] = {std::move(v), at};
  };
  for (const auto& [k, v] : keys) {
    if (k->value != "env_file") continue;
    std::vector<std::pair<std::string, const YamlNode*>> files;
    const YamlNode& n = v->Resolved();
    if (n.kind == Kind::kScalar) {
      files.emplace_back(n.value, &n);
    } else if (n.kind == Kind::kSequence) {
      for (const auto& item : n.items) {
        const YamlNode& i = item->Resolved();
        if (i.kind == Kind::kScalar) {
          files.emplace_back(i.value, &i);
        } else if (i.kind == Kind::kMap) {
          for (const auto& [ik, iv] : Entries(i, base + ".env_file")) {
            if (ik->value == "path") files.emplace_back(iv->Resolved().value, iv);
          }
        }
      }
    } else {
      Error(n, base + ".env_file", "must be a path or a list of paths");
    }
    for (const auto& [file, at] : files) {
      std::string abs = Resolve(in_.compose_dir, file);
      std::optional<std::string> text = in_.read_file ? in_.read_file(abs) : std::nullopt;
      if (!text) {
        Error(*at, base + ".env_file", "cannot read " + abs);
        continue;
      }
      Diagnostics d;
      for (const auto& [ek, ev] : ParseDotEnv(file, *text, d)) set(ek, ev, at);
      result_.diagnostics.Append(d);
    }
  }
  for (const auto& [k, v] : keys) {
    if (k->value != "environment") continue;
    for (auto& [ek, ev, at] : KeyValues(*v, base + ".environment", true)) set(ek, ev, at);
  }
  Json env = Json::object();
  Json secret_env = Json::object();
  for (const std::string& name : order) {
    auto& [value, at] = vars[name];
    const std::string field = base + ".environment." + name;
    const bool env_name =
        !name.empty() && IsVarStart(name[0]) && std::all_of(name.begin(), name.end(), IsVarChar);
    if (!env_name) {
      Error(*at, field,
            "'" + name +
                "' is not supported as a variable name: reconcile's env names are "
                "letters, digits and _ (not starting with a digit)");
      continue;
    }
    std::optional<std::string> v = value;
    if (!v) {
      auto e = env_.find(name);
      if (e == env_.end()) {
        Warn(*at, field, "not set in the environment or .env: left out, as Compose does");
        continue;
      }
      v = e->second;
    }
    bool names_a_file = !v->empty() && ((*v)[0] == '/' || StartsWith(*v, "./"));
    if (LooksLikeSecretName(name) && !v->empty() && !names_a_file) {
      std::string file = s.agent + "." + name;
      secret_env[name] = {{"file", file}};
      AddSecretFile(file, "the value of " + name + " for service '" + s.service + "' (" + in_.file +
                              ":" + std::to_string(at->line) + ")");
      Warn(*at, field,
           "looks like a secret: written as secretEnv {file: " + file +
               "}; its value is not copied (create the file under --secrets)");
    } else {
      env[name] = *v;
    }
  }
  if (!env.empty()) spec["env"] = env;
  if (!secret_env.empty()) spec["secretEnv"] = secret_env;
}

struct PortEntry {
  int container = 0;
  std::string protocol = "tcp";
  std::string host_ip;
  int host = 0;
  bool publish = true;
  const YamlNode* at = nullptr;
};

void Importer::Ports(const ServiceInfo& s, const YamlNode* ports, const YamlNode* expose,
                     Json& spec) {
  const std::string base = "services." + s.service;
  std::vector<PortEntry> list;
  auto number = [&](const YamlNode& at, const std::string& field,
                    const std::string& text) -> std::optional<std::pair<int, int>> {
    // "N" or "N-M"
    size_t dash = text.find('-');
    std::string a = text.substr(0, dash);
    std::string b = dash == std::string::npos ? a : text.substr(dash + 1);
    if (!AllDigits(a) || !AllDigits(b) || a.size() > 5 || b.size() > 5 || std::stoi(a) < 1 ||
        std::stoi(b) > 65535 || std::stoi(a) > std::stoi(b)) {
      Error(at, field, "'" + text + "' is not a port or a port range");
      return std::nullopt;
    }
    return std::make_pair(std::stoi(a), std::stoi(b));
  };
  if (ports) {
    const YamlNode& n = ports->Resolved();
    if (n.kind != Kind::kSequence) {
      Error(n, base + ".ports", "must be a list");
    } else {
      for (const auto& item_ptr : n.items) {
        const YamlNode& item = item_ptr->Resolved();
        const std::string field = base + ".ports";
        if (item.kind == Kind::kScalar) {
          std::string text = item.value;
          std::string protocol = "tcp";
          if (size_t slash = text.rfind('/'); slash != std::string::npos) {
            protocol = text.substr(slash + 1);
            text = text.substr(0, slash);
          }
          std::string host_ip;
          if (!text.empty() && text[0] == '[') {  // [::1]:80:80
            size_t close = text.find(']');
            if (close == std::string::npos) {
              Error(item, field, "'" + item.value + "' is not a port mapping");
              continue;
            }
            host_ip = text.substr(1, close - 1);
            text = text.substr(close + 1);
            if (!text.empty() && text[0] == ':') text = text.substr(1);
          }
          std::vector<std::string> parts;
          std::stringstream ss(text);
          std::string part;
          while (std::getline(ss, part, ':')) parts.push_back(part);
          if (!text.empty() && text.back() == ':') parts.push_back("");
          std::string host_text, container_text;
          if (parts.size() == 1) {
            container_text = parts[0];
          } else if (parts.size() == 2) {
            host_text = parts[0];
            container_text = parts[1];
          } else if (parts.size() == 3 && host_ip.empty()) {
            host_ip = parts[0];
            host_text = parts[1];
            container_text = parts[2];
          } else {
            Error(item, field, "'" + item.value + "' is not a port mapping");
            continue;
          }
          auto c = number(item, field, container_text);
          if (!c) continue;
          std::pair<int, int> h{0, 0};
          if (!host_text.empty()) {
            auto hp = number(item, field, host_text);
            if (!hp) continue;
            h = *hp;
            if (h.second - h.first != c->second - c->first) {
              Error(item, field, "host and container port ranges differ in size");
              continue;
            }
          }
          for (int p = c->first; p <= c->second; ++p) {
            PortEntry e;
            e.container = p;
            e.protocol = protocol;
            e.host_ip = host_ip;
            e.host = h.first == 0 ? 0 : h.first + (p - c->first);
            e.at = &item;
            list.push_back(e);
          }
        } else if (item.kind == Kind::kMap) {
          PortEntry e;
          e.at = &item;
          bool ok = true;
          for (const auto& [k, v] : Entries(item, field)) {
            const std::string f = field + "." + k->value;
            if (k->value == "target") {
              if (auto p = Integer(*v, f, 1, 65535))
                e.container = static_cast<int>(*p);
              else
                ok = false;
            } else if (k->value == "published") {
              auto t = Scalar(*v, f);
              auto p = t ? number(*v, f, *t) : std::nullopt;
              if (p)
                e.host = p->first;
              else
                ok = false;
            } else if (k->value == "host_ip") {
              if (auto h = Scalar(*v, f)) e.host_ip = *h;
            } else if (k->value == "protocol") {
              if (auto pr = Scalar(*v, f)) e.protocol = *pr;
            } else if (k->value == "mode") {
              auto m = Scalar(*v, f);
              if (m && *m != "host" && *m != "ingress") Error(*v, f, "must be host or ingress");
            } else if (k->value == "name" || k->value == "app_protocol") {
              Warn(*k, f, "ignored: reconcile's ports have no name or application protocol");
            } else {
              Error(*k, f, "unknown port key '" + k->value + "'");
            }
          }
          if (e.container == 0) {
            Error(item, field, "a port needs target");
            ok = false;
          }
          if (ok) list.push_back(e);
        } else if (item.kind == Kind::kScalar || item.kind == Kind::kNull) {
          Error(item, field, "must be a port mapping");
        }
      }
    }
  }
  if (expose) {
    const YamlNode& n = expose->Resolved();
    if (n.kind != Kind::kSequence) {
      Error(n, base + ".expose", "must be a list");
    } else {
      for (const auto& item_ptr : n.items) {
        const YamlNode& item = item_ptr->Resolved();
        std::string text = item.value;
        std::string protocol = "tcp";
        if (size_t slash = text.rfind('/'); slash != std::string::npos) {
          protocol = text.substr(slash + 1);
          text = text.substr(0, slash);
        }
        auto c = number(item, base + ".expose", text);
        if (!c) continue;
        for (int p = c->first; p <= c->second; ++p) {
          bool listed = std::any_of(list.begin(), list.end(), [&](const PortEntry& e) {
            return e.container == p && e.protocol == protocol;
          });
          if (listed) continue;
          PortEntry e;
          e.container = p;
          e.protocol = protocol;
          e.publish = false;
          e.at = &item;
          list.push_back(e);
        }
      }
    }
  }
  // The main port: the first published tcp port without a host address;
  // else the first exposed one (not published); else a guess (reconcile
  // needs the port an agent listens on).
  std::set<std::pair<int, std::string>> seen;
  std::vector<PortEntry> kept;
  for (const PortEntry& e : list) {
    if (e.protocol != "tcp" && e.protocol != "udp") {
      Error(*e.at, base + ".ports", "protocol '" + e.protocol + "' is not supported (tcp or udp)");
      continue;
    }
    if (!seen.insert({e.container, e.protocol}).second) {
      if (!e.publish) continue;  // exposed and published: published
      Error(*e.at, base + ".ports",
            "port " + std::to_string(e.container) + "/" + e.protocol +
                " is listed twice: reconcile publishes each container port once");
      continue;
    }
    kept.push_back(e);
  }
  int main_index = -1;
  for (size_t i = 0; i < kept.size() && main_index < 0; ++i) {
    if (kept[i].protocol == "tcp" && kept[i].host_ip.empty() && kept[i].publish) main_index = i;
  }
  for (size_t i = 0; i < kept.size() && main_index < 0; ++i) {
    if (kept[i].protocol == "tcp" && !kept[i].publish) main_index = i;
  }
  auto unpublished = [&](const YamlNode& at, int port) {
    if (Has("publish")) {
      spec["publish"] = false;
    } else {
      Warn(at, base + ".expose",
           "mapped differently: port " + std::to_string(port) +
               " becomes the agent's port, and this build publishes it on an ephemeral host port "
               "(it has no publish: false yet)");
    }
  };
  if (main_index >= 0) {
    const PortEntry& m = kept[main_index];
    spec["port"] = m.container;
    if (m.host != 0) spec["hostPort"] = m.host;
    if (!m.publish) unpublished(*m.at, m.container);
  } else {
    static const std::pair<const char*, int> kWellKnown[] = {
        {"postgres", 5432}, {"mysql", 3306},    {"mariadb", 3306},   {"mongo", 27017},
        {"redis", 6379},    {"rabbitmq", 5672}, {"memcached", 11211}};
    int guess = 80;
    std::string image = spec.value("image", std::string());
    std::string repo = image.substr(0, image.find_first_of(":@"));
    repo = repo.substr(repo.find_last_of('/') + 1);
    for (const auto& [name, port] : kWellKnown) {
      if (repo == name) guess = port;
    }
    Warn(*s.node, base + ".ports",
         "mapped differently: reconcile needs the port the agent listens on and the service "
         "publishes or exposes none; port " +
             std::to_string(guess) +
             " is written, not published (edit it if the program listens elsewhere)");
    spec["port"] = guess;
    if (Has("publish")) spec["publish"] = false;
    seen.insert({guess, "tcp"});
    // A udp or host-address port on the guessed number stays in ports[].
    if (std::any_of(kept.begin(), kept.end(), [&](const PortEntry& e) {
          return e.container == guess && e.protocol == "tcp";
        })) {
      Error(*s.node, base + ".ports",
            "port " + std::to_string(guess) +
                "/tcp has a host address; reconcile's main port "
                "is published on the Target's publishAddress");
    }
  }
  Json extra = Json::array();
  for (int i = 0; i < static_cast<int>(kept.size()); ++i) {
    if (i == main_index) continue;
    const PortEntry& e = kept[i];
    if (!e.publish && !Has("ports[].publish")) {
      Warn(*e.at, base + ".expose",
           "ignored: other agents on a shared network reach every port; this build has no "
           "unpublished ports (ports[].publish) to record it");
      continue;
    }
    Json p = {{"containerPort", e.container}};
    if (e.protocol != "tcp") p["protocol"] = e.protocol;
    if (!e.host_ip.empty()) p["hostIP"] = e.host_ip;
    if (e.host != 0) p["hostPort"] = e.host;
    if (!e.publish) p["publish"] = false;
    extra.push_back(p);
  }
  if (!extra.empty()) spec["ports"] = extra;
}

void Importer::Volumes(const ServiceInfo& s, const YamlNode& raw, Json& mounts) {
  const std::string field = "services." + s.service + ".volumes";
  const YamlNode& n = raw.Resolved();
  if (n.kind != Kind::kSequence) {
    Error(n, field, "must be a list");
    return;
  }
  int anonymous = 0;
  auto add = [&](const YamlNode& at, std::string type, std::string source, std::string target,
                 bool read_only, std::string size) {
    if (target.empty() || target[0] != '/') {
      Error(at, field, "the container path '" + target + "' must be absolute");
      return;
    }
    target = NormalizePath(target);
    Json m = {{"type", type}};
    if (type == "volume" && source.empty()) {
      source = DnsLabel(project_ + "-" + s.service) + "-anon-" + std::to_string(++anonymous);
      Warn(at, field,
           "mapped differently: the anonymous volume on " + target + " becomes the named volume '" +
               source + "' (reclaim: delete)");
      m["source"] = source;
      m["reclaim"] = "delete";
    } else if (type == "volume") {
      auto it = volumes_.find(source);
      if (it == volumes_.end()) {
        Error(at, field, "volume '" + source + "' is not declared under the top-level volumes");
        return;
      }
      m["source"] = it->second;
    } else if (type == "bind") {
      if (StartsWith(source, "~")) {
        auto home = env_.find("HOME");
        if (home == env_.end()) {
          Error(at, field, "'" + source + "' names the home folder, and HOME is not set");
          return;
        }
        source = home->second + source.substr(1);
      }
      source = Resolve(in_.compose_dir, source);
      if (source == "/") {
        Error(at, field, "binding the host's / is refused");
        return;
      }
      bind_paths_.insert(source);
      m["source"] = source;
    }
    m["target"] = target;
    if (read_only) m["readOnly"] = true;
    if (!size.empty()) m["size"] = size;
    mounts.push_back(m);
  };
  for (const auto& item_ptr : n.items) {
    const YamlNode& item = item_ptr->Resolved();
    if (item.kind == Kind::kScalar) {
      // [SOURCE:]TARGET[:MODE]
      std::vector<std::string> parts;
      std::stringstream ss(item.value);
      std::string part;
      while (std::getline(ss, part, ':')) parts.push_back(part);
      if (parts.empty() || parts.size() > 3) {
        Error(item, field, "'" + item.value + "' is not a volume ([SOURCE:]TARGET[:MODE])");
        continue;
      }
      std::string source, target, mode;
      if (parts.size() == 1) {
        target = parts[0];
      } else {
        source = parts[0];
        target = parts[1];
        if (parts.size() == 3) mode = parts[2];
      }
      if (parts.size() > 1 && source.empty()) {
        Error(item, field, "'" + item.value + "' has an empty source (an unset variable?)");
        continue;
      }
      bool read_only = false;
      std::stringstream ms(mode);
      std::string opt;
      while (std::getline(ms, opt, ',')) {
        if (opt == "ro") {
          read_only = true;
        } else if (opt == "rw" || opt.empty()) {
        } else if (opt == "z" || opt == "Z" || opt == "cached" || opt == "delegated" ||
                   opt == "consistent" || opt == "nocopy" || opt == "rprivate" ||
                   opt == "private" || opt == "rshared" || opt == "shared" || opt == "rslave" ||
                   opt == "slave") {
          Warn(item, field, "mount option '" + opt + "' is ignored (reconcile mounts plainly)");
        } else {
          Error(item, field, "unknown mount option '" + opt + "'");
        }
      }
      bool is_path = !source.empty() && (source[0] == '/' || source[0] == '.' || source[0] == '~');
      add(item,
          source.empty() ? "volume"
          : is_path      ? "bind"
                         : "volume",
          source, target, read_only, "");
    } else if (item.kind == Kind::kMap) {
      std::string type, source, target, size;
      bool read_only = false;
      for (const auto& [k, v] : Entries(item, field)) {
        const std::string f = field + "." + k->value;
        const std::string& key = k->value;
        if (key == "type") {
          type = Scalar(*v, f).value_or("");
        } else if (key == "source") {
          source = Scalar(*v, f).value_or("");
        } else if (key == "target") {
          target = Scalar(*v, f).value_or("");
        } else if (key == "read_only") {
          read_only = Boolean(*v, f).value_or(false);
        } else if (key == "tmpfs") {
          if (auto m = MapOf(*v, f, "a map (size, mode)")) {
            for (const auto& [tk, tv] : *m) {
              if (tk->value == "size") {
                auto t = Scalar(*tv, f + ".size");
                auto b = t ? ComposeBytes(*t) : std::nullopt;
                if (b)
                  size = BytesText(*b);
                else
                  Error(*tv, f + ".size", "must be a size such as 64m");
              } else if (tk->value == "mode") {
                Warn(*tk, f + ".mode", "ignored: tmpfs mounts get the engine's default mode");
              } else {
                Error(*tk, f + "." + tk->value, "unknown tmpfs key '" + tk->value + "'");
              }
            }
          }
        } else if (key == "volume" || key == "bind" || key == "consistency") {
          Warn(*k, f,
               "ignored: reconcile mounts plainly (no nocopy, propagation, "
               "create_host_path, selinux or consistency options)");
        } else {
          Error(*k, f, "unknown volume key '" + key + "'");
        }
      }
      if (type == "volume" || type == "bind" || type == "tmpfs") {
        add(item, type, type == "tmpfs" ? "" : source, target, read_only, size);
      } else {
        Error(item, field, "volume type '" + type + "' is not supported (volume, bind or tmpfs)");
      }
    } else {
      Error(item, field, "must be a string or a map");
    }
  }
}

void Importer::Tmpfs(const ServiceInfo& s, const YamlNode& raw, Json& mounts) {
  const std::string field = "services." + s.service + ".tmpfs";
  std::vector<std::pair<std::string, const YamlNode*>> items;
  const YamlNode& n = raw.Resolved();
  if (n.kind == Kind::kScalar) {
    items.emplace_back(n.value, &n);
  } else if (n.kind == Kind::kSequence) {
    for (const auto& i : n.items) {
      if (auto v = Scalar(*i, field)) items.emplace_back(*v, &i->Resolved());
    }
  } else {
    Error(n, field, "must be a path or a list of paths");
  }
  for (const auto& [text, at] : items) {
    std::string target = text.substr(0, text.find(':'));
    std::string size;
    if (size_t colon = text.find(':'); colon != std::string::npos) {
      std::stringstream ss(text.substr(colon + 1));
      std::string opt;
      while (std::getline(ss, opt, ',')) {
        if (StartsWith(opt, "size=")) {
          auto b = ComposeBytes(opt.substr(5));
          if (b)
            size = BytesText(*b);
          else
            Error(*at, field, "bad size in '" + opt + "'");
        } else {
          Warn(*at, field, "tmpfs option '" + opt + "' is ignored");
        }
      }
    }
    if (target.empty() || target[0] != '/') {
      Error(*at, field, "the container path '" + target + "' must be absolute");
      continue;
    }
    Json m = {{"type", "tmpfs"}, {"target", NormalizePath(target)}};
    if (!size.empty()) m["size"] = size;
    mounts.push_back(m);
  }
}

void Importer::HealthCheck(const ServiceInfo& s, const YamlNode& raw, Json& spec) {
  const std::string field = "services." + s.service + ".healthcheck";
  auto m = MapOf(raw, field, "a map (test, interval, timeout, retries, start_period)");
  if (!m) return;
  Json hc = Json::object();
  bool disabled = false;
  const YamlNode* test_at = &raw.Resolved();
  for (const auto& [k, v] : *m) {
    const std::string f = field + "." + k->value;
    const std::string& key = k->value;
    if (key == "test") {
      test_at = k;
      const YamlNode& t = v->Resolved();
      std::vector<std::string> argv;
      if (t.kind == Kind::kScalar) {
        argv = {"/bin/sh", "-c", t.value};
      } else if (auto list = Strings(t, f)) {
        if (list->empty()) {
          Error(t, f, "an empty test");
          continue;
        }
        const std::string& kind = (*list)[0];
        if (kind == "NONE") {
          disabled = true;
        } else if (kind == "CMD") {
          argv.assign(list->begin() + 1, list->end());
        } else if (kind == "CMD-SHELL") {
          if (list->size() != 2) {
            Error(t, f, "CMD-SHELL takes one command string");
            continue;
          }
          argv = {"/bin/sh", "-c", (*list)[1]};
        } else {
          Error(t, f, "a test starts with CMD, CMD-SHELL or NONE, got '" + kind + "'");
          continue;
        }
      }
      if (!argv.empty()) hc["exec"] = argv;
    } else if (key == "interval" || key == "timeout") {
      if (auto d = Duration(*v, f)) hc[key] = *d;
    } else if (key == "start_period") {
      if (auto d = Duration(*v, f)) hc["startPeriod"] = *d;
    } else if (key == "retries") {
      if (auto r = Integer(*v, f, 1, 10000)) hc["retries"] = *r;
    } else if (key == "disable") {
      disabled = Boolean(*v, f).value_or(false);
    } else if (key == "start_interval") {
      Warn(*k, f, "ignored: checks run every interval from the start");
    } else {
      Error(*k, f, "unknown healthcheck key '" + key + "'");
    }
  }
  if (disabled) {
    Warn(*test_at, field,
         "mapped differently: reconcile cannot switch off a health check the image declares; the "
         "agent gets none of its own");
    return;
  }
  if (!hc.contains("exec")) {
    Warn(raw.Resolved(), field,
         "mapped differently: without a test the image's own health check applies; reconcile "
         "waits only for the container to run");
    return;
  }
  if (!Need(*test_at, field + ".test", "healthCheck.exec", false)) return;
  // Docker's defaults for what Compose leaves unset (reconcile's differ).
  Json full = {{"exec", hc["exec"]},
               {"interval", hc.value("interval", std::string("30s"))},
               {"timeout", hc.value("timeout", std::string("30s"))},
               {"retries", hc.value("retries", Json(3))},
               {"startPeriod", hc.value("startPeriod", std::string("0s"))}};
  spec["healthCheck"] = full;
}

void Importer::Networks(const ServiceInfo& s, const YamlNode* n, Json& spec) {
  const std::string field = "services." + s.service + ".networks";
  Json list = Json::array();
  std::string alias = s.service != s.agent ? s.service : "";
  if (!alias.empty() && DnsLabel(alias) != alias) {
    Warn(*s.node, field,
         "mapped differently: '" + s.service +
             "' is not a DNS label, so it cannot be an alias; "
             "other agents reach this one as '" +
             s.agent + "'");
    alias.clear();
  }
  auto entry = [&](const std::string& net, std::vector<std::string> aliases) {
    if (!alias.empty() && std::find(aliases.begin(), aliases.end(), alias) == aliases.end()) {
      aliases.insert(aliases.begin(), alias);
    }
    if (aliases.empty()) return Json(net);
    return Json{{"name", net}, {"aliases", aliases}};
  };
  if (!n) {
    // Compose puts every service on the project's default network.
    list.push_back(entry(NetworkName("default"), {}));
  } else {
    const YamlNode& v = n->Resolved();
    auto known = [&](const YamlNode& at, const std::string& key) {
      if (networks_.count(key) || key == "default") return true;
      Error(at, field, "network '" + key + "' is not declared under the top-level networks");
      return false;
    };
    if (v.kind == Kind::kSequence) {
      for (const auto& item : v.items) {
        auto name = Scalar(*item, field);
        if (name && known(item->Resolved(), *name)) list.push_back(entry(NetworkName(*name), {}));
      }
    } else if (v.kind == Kind::kMap) {
      for (const auto& [k, val] : Entries(v, field)) {
        if (!known(*k, k->value)) continue;
        std::vector<std::string> aliases;
        const std::string f = field + "." + k->value;
        if (auto opts = MapOf(*val, f, "a map (aliases, ...)")) {
          for (const auto& [ok, ov] : *opts) {
            if (ok->value == "aliases") {
              if (auto a = Strings(*ov, f + ".aliases")) {
                for (const std::string& al : *a) {
                  if (DnsLabel(al) == al) {
                    aliases.push_back(al);
                  } else {
                    Error(*ov, f + ".aliases",
                          "alias '" + al +
                              "' is not supported: aliases are DNS labels (a-z, 0-9, -)");
                  }
                }
              }
            } else if (ok->value == "ipv4_address" || ok->value == "ipv6_address" ||
                       ok->value == "link_local_ips" || ok->value == "mac_address") {
              Error(*ok, f + "." + ok->value,
                    "not supported: the engine gives agents their addresses; reach them by name");
            } else if (ok->value == "priority" || ok->value == "gw_priority" ||
                       ok->value == "driver_opts" || ok->value == "interface_name") {
              Warn(*ok, f + "." + ok->value, "ignored");
            } else {
              Error(*ok, f + "." + ok->value, "unknown network key '" + ok->value + "'");
            }
          }
        }
        list.push_back(entry(NetworkName(k->value), aliases));
      }
    } else {
      Error(v, field, "must be a list of network names or a map");
    }
  }
  if (list.empty()) return;
  if (!Has("networks")) {
    if (n) Need(*n, field, "networks", false);
    return;
  }
  spec["networks"] = list;
}

void Importer::Deploy(const ServiceInfo& s, const YamlNode& raw, Json& spec) {
  const std::string field = "services." + s.service + ".deploy";
  auto m = MapOf(raw, field, "a map");
  if (!m) return;
  for (const auto& [k, v] : *m) {
    const std::string f = field + "." + k->value;
    const std::string& key = k->value;
    if (key == "replicas") {
      if (auto n = Integer(*v, f, 1, 100)) spec["replicas"] = *n;
    } else if (key == "mode") {
      auto mode = Scalar(*v, f);
      if (mode && *mode != "replicated") {
        Error(*v, f, "deploy mode '" + *mode + "' is not supported (one engine: replicated)");
      }
    } else if (key == "resources") {
      auto r = MapOf(*v, f, "a map (limits, reservations)");
      if (!r) continue;
      for (const auto& [rk, rv] : *r) {
        const std::string rf = f + "." + rk->value;
        if (rk->value == "limits") {
          auto l = MapOf(*rv, rf, "a map (cpus, memory)");
          if (!l) continue;
          for (const auto& [lk, lv] : *l) {
            const std::string lf = rf + "." + lk->value;
            if (lk->value == "cpus") {
              if (auto c = Scalar(*lv, lf)) spec["resources"]["cpu"] = *c;
            } else if (lk->value == "memory") {
              auto t = Scalar(*lv, lf);
              auto b = t ? ComposeBytes(*t) : std::nullopt;
              if (b)
                spec["resources"]["memory"] = BytesText(*b);
              else if (t)
                Error(*lv, lf, "must be a size such as 512M or 1.5G, got '" + *t + "'");
            } else if (lk->value == "pids") {
              Error(*lk, lf, "not supported: reconcile sets cpu and memory limits only");
            } else {
              Error(*lk, lf, "unknown limit '" + lk->value + "'");
            }
          }
        } else if (rk->value == "reservations") {
          auto l = MapOf(*rv, rf, "a map (cpus, memory, devices)");
          if (!l) continue;
          for (const auto& [lk, lv] : *l) {
            const std::string lf = rf + "." + lk->value;
            if (lk->value == "devices") {
              const YamlNode& d = lv->Resolved();
              for (const auto& dev : d.items) {
                auto dm = MapOf(*dev, lf, "a map (capabilities, count, device_ids, driver)");
                if (!dm) continue;
                bool gpu = false;
                Json count = "all";
                for (const auto& [dk, dv] : *dm) {
                  if (dk->value == "capabilities") {
                    auto caps = Strings(*dv, lf + ".capabilities");
                    gpu = caps && std::find(caps->begin(), caps->end(), "gpu") != caps->end();
                  } else if (dk->value == "count") {
                    const std::string c = dv->Resolved().value;
                    if (c == "all")
                      count = "all";
                    else if (AllDigits(c) && std::stoll(c) > 0)
                      count = std::stoll(c);
                    else
                      Error(*dv, lf + ".count", "must be all or a positive integer");
                  } else if (dk->value == "driver") {
                    auto dr = Scalar(*dv, lf + ".driver");
                    if (dr && *dr != "nvidia") {
                      Error(*dv, lf + ".driver", "only nvidia GPUs are supported");
                    }
                  } else if (dk->value == "device_ids") {
                    Error(*dk, lf + ".device_ids",
                          "not supported: reconcile requests a number of GPUs (count), not "
                          "given devices");
                  } else if (dk->value == "options") {
                    Warn(*dk, lf + ".options", "ignored");
                  } else {
                    Error(*dk, lf + "." + dk->value, "unknown device key '" + dk->value + "'");
                  }
                }
                if (!gpu) {
                  Error(*dev, lf, "only GPU device requests (capabilities: [gpu]) are supported");
                } else if (Need(*dev, lf, "resources.gpus", true)) {
                  spec["resources"]["gpus"] = count;
                }
              }
            } else {
              Warn(*lk, lf, "ignored: reconcile sets limits, not reservations");
            }
          }
        } else {
          Error(*rk, rf, "unknown resources key '" + rk->value + "'");
        }
      }
    } else if (key == "restart_policy") {
      auto r = MapOf(*v, f, "a map (condition, max_attempts, delay, window)");
      if (!r) continue;
      std::string condition = "any";
      std::string attempts;
      for (const auto& [rk, rv] : *r) {
        const std::string rf = f + "." + rk->value;
        if (rk->value == "condition") {
          condition = Scalar(*rv, rf).value_or("any");
          if (condition != "none" && condition != "on-failure" && condition != "any") {
            Error(*rv, rf, "must be none, on-failure or any");
          }
        } else if (rk->value == "max_attempts") {
          if (auto n = Integer(*rv, rf, 0, 1000000)) attempts = std::to_string(*n);
        } else if (rk->value == "delay" || rk->value == "window") {
          Warn(*rk, rf, "ignored: the engine restarts at once, with its own backoff");
        } else {
          Error(*rk, rf, "unknown restart_policy key '" + rk->value + "'");
        }
      }
      if (condition == "none") {
        spec["restart"] = "no";
      } else if (condition == "on-failure") {
        spec["restart"] =
            attempts.empty() || attempts == "0" ? "on-failure" : "on-failure:" + attempts;
      } else {
        if (!attempts.empty()) {
          Warn(*k, f + ".max_attempts",
               "mapped differently: with condition any the engine restarts without a limit");
        }
        spec["restart"] = "always";
      }
    } else if (key == "labels" || key == "placement" || key == "update_config" ||
               key == "rollback_config" || key == "endpoint_mode") {
      Warn(*k, f, "ignored: swarm only (reconcile runs on one engine)");
    } else {
      Error(*k, f, "unknown deploy key '" + key + "'");
    }
  }
}

void Importer::Secrets(const ServiceInfo& s, const YamlNode& raw, Json& spec) {
  const std::string field = "services." + s.service + ".secrets";
  const YamlNode& n = raw.Resolved();
  if (n.kind != Kind::kSequence) {
    Error(n, field, "must be a list");
    return;
  }
  Json files = Json::object();
  for (const auto& item_ptr : n.items) {
    const YamlNode& item = item_ptr->Resolved();
    std::string source, target, mode;
    if (item.kind == Kind::kScalar) {
      source = item.value;
    } else if (auto m = MapOf(item, field, "a secret name or a map (source, target, mode)")) {
      for (const auto& [k, v] : *m) {
        const std::string f = field + "." + k->value;
        if (k->value == "source") {
          source = Scalar(*v, f).value_or("");
        } else if (k->value == "target") {
          target = Scalar(*v, f).value_or("");
        } else if (k->value == "mode") {
          auto t = Scalar(*v, f);
          if (t && !t->empty() &&
              std::all_of(t->begin(), t->end(), [](char c) { return c >= '0' && c <= '7'; })) {
            // YAML 1.1 reads 0440 as octal; yaml keeps the text, so keep it octal.
            mode = (*t)[0] == '0' ? *t : "0" + *t;
          } else if (t) {
            Error(*v, f, "must be an octal mode such as 0400");
          }
        } else if (k->value == "uid" || k->value == "gid") {
          Warn(*k, f, "ignored: the secret file belongs to root, readable per mode");
        } else {
          Error(*k, f, "unknown secret key '" + k->value + "'");
        }
      }
    } else {
      continue;
    }
    auto def = secrets_.find(source);
    if (def == secrets_.end()) {
      Error(item, field, "secret '" + source + "' is not declared under the top-level secrets");
      continue;
    }
    bool plain = !source.empty() && std::all_of(source.begin(), source.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
    });
    if (!plain) {
      Error(item, field, "secret name '" + source + "' must be a plain file name");
      continue;
    }
    Json ref = {{"file", source}};
    if (!target.empty()) ref["target"] = target[0] == '/' ? target : "/run/secrets/" + target;
    if (!mode.empty()) ref["mode"] = mode;
    files[source] = ref;
    AddSecretFile(source,
                  def->second.file.empty() ? "the secret '" + source + "'" : def->second.file);
  }
  if (files.empty()) return;
  if (!Need(n, field, "secretFiles", true)) return;
  spec["secretFiles"] = files;
}

}  // namespace

ComposeImportResult ImportCompose(const ComposeImportInput& in) { return Importer(in).Run(); }

std::set<std::string> AllComposeAgentFields() {
  return {"image",
          "build",
          "registry",
          "target",
          "port",
          "hostPort",
          "ports",
          "ports[].publish",
          "publish",
          "command",
          "args",
          "env",
          "secretEnv",
          "secretFiles",
          "volumes",
          "networks",
          "replicas",
          "restart",
          "resources",
          "resources.gpus",
          "healthCheck",
          "healthCheck.exec",
          "healthCheck.tcp",
          "dependsOn",
          "user",
          "capAdd",
          "capDrop",
          "readOnlyRootFilesystem",
          "stopSignal",
          "stopGracePeriod",
          "hostname",
          "labels"};
}

std::set<std::string> AgentFieldsFromSchema(const std::string& text) {
  std::set<std::string> out;
  Json schema = Json::parse(text, nullptr, false);
  if (schema.is_discarded() || !schema.is_object()) return out;
  const Json* spec = nullptr;
  if (auto p = schema.find("properties"); p != schema.end() && p->is_object()) {
    if (auto s = p->find("spec"); s != p->end()) spec = &*s;
  }
  if (!spec) return out;
  std::function<void(const Json&, const std::string&, int)> walk =
      [&](const Json& node, const std::string& prefix, int depth) {
        if (depth > 4 || !node.is_object()) return;
        auto props = node.find("properties");
        if (props != node.end() && props->is_object()) {
          for (auto it = props->begin(); it != props->end(); ++it) {
            std::string path = prefix.empty() ? it.key() : prefix + "." + it.key();
            out.insert(path);
            walk(it.value(), path, depth + 1);
          }
        }
        auto items = node.find("items");
        if (items != node.end()) walk(*items, prefix + "[]", depth + 1);
      };
  walk(*spec, "", 0);
  return out;
}

std::map<std::string, std::string> ParseDotEnv(const std::string& file, const std::string& content,
                                               Diagnostics& diagnostics) {
  std::map<std::string, std::string> out;
  std::stringstream ss(content);
  std::string line;
  int number = 0;
  auto trim = [](std::string s) {
    size_t a = s.find_first_not_of(" \t\r");
    if (a == std::string::npos) return std::string();
    size_t b = s.find_last_not_of(" \t\r");
    return s.substr(a, b - a + 1);
  };
  while (std::getline(ss, line)) {
    ++number;
    std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    if (StartsWith(t, "export ")) t = trim(t.substr(7));
    size_t eq = t.find('=');
    if (eq == std::string::npos) {
      diagnostics.Error(file, number, 1, "", "not a KEY=VALUE line");
      continue;
    }
    std::string key = trim(t.substr(0, eq));
    bool key_ok =
        !key.empty() && !std::isdigit(static_cast<unsigned char>(key[0])) &&
        std::all_of(key.begin(), key.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
        });
    if (!key_ok) {
      diagnostics.Error(file, number, 1, "", "'" + key + "' is not a variable name");
      continue;
    }
    std::string raw = trim(t.substr(eq + 1));
    std::string value;
    if (!raw.empty() && (raw[0] == '\'' || raw[0] == '"')) {
      char q = raw[0];
      size_t i = 1;
      bool closed = false;
      for (; i < raw.size(); ++i) {
        char c = raw[i];
        if (c == q) {
          closed = true;
          break;
        }
        if (q == '"' && c == '\\' && i + 1 < raw.size()) {
          char e = raw[++i];
          value += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
        } else {
          value += c;
        }
      }
      if (!closed) {
        diagnostics.Error(file, number, static_cast<int>(line.find(q)) + 1, key,
                          "unterminated quote");
        continue;
      }
    } else {
      size_t hash = raw.find(" #");
      value = trim(hash == std::string::npos ? raw : raw.substr(0, hash));
    }
    out[key] = value;
  }
  return out;
}

std::optional<std::string> InterpolateCompose(const std::string& text,
                                              const std::map<std::string, std::string>& env,
                                              std::string& error, std::vector<std::string>& unset) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c != '$') {
      out += c;
      continue;
    }
    if (i + 1 >= text.size()) {
      out += '$';
      continue;
    }
    char n = text[i + 1];
    if (n == '$') {
      out += '$';
      ++i;
      continue;
    }
    if (IsVarStart(n)) {
      size_t j = i + 1;
      while (j < text.size() && IsVarChar(text[j])) ++j;
      std::string name = text.substr(i + 1, j - i - 1);
      auto it = env.find(name);
      if (it != env.end()) {
        out += it->second;
      } else {
        unset.push_back(name);
      }
      i = j - 1;
      continue;
    }
    if (n != '{') {
      error = "invalid interpolation in '" + text +
              "': a '$' must start $VAR or ${VAR} ($$ for a "
              "literal $)";
      return std::nullopt;
    }
    // ${...}: find the matching brace (defaults may nest ${...}).
    size_t depth = 1;
    size_t j = i + 2;
    for (; j < text.size() && depth > 0; ++j) {
      if (text[j] == '$' && j + 1 < text.size() && text[j + 1] == '{') {
        ++depth;
        ++j;
      } else if (text[j] == '}') {
        --depth;
      }
    }
    if (depth != 0) {
      error = "invalid interpolation in '" + text + "': unterminated ${";
      return std::nullopt;
    }
    std::string body = text.substr(i + 2, j - i - 3);
    i = j - 1;
    size_t k = 0;
    if (k >= body.size() || !IsVarStart(body[k])) {
      error = "invalid interpolation in '" + text + "': '${" + body + "}' does not name a variable";
      return std::nullopt;
    }
    while (k < body.size() && IsVarChar(body[k])) ++k;
    std::string name = body.substr(0, k);
    std::string op = body.substr(k, std::min<size_t>(2, body.size() - k));
    auto it = env.find(name);
    bool set = it != env.end();
    bool set_nonempty = set && !it->second.empty();
    if (k == body.size()) {
      if (set) {
        out += it->second;
      } else {
        unset.push_back(name);
      }
      continue;
    }
    std::string rest;
    bool colon = op.size() == 2 && op[0] == ':';
    char kind = colon ? op[1] : op[0];
    rest = body.substr(k + (colon ? 2 : 1));
    bool present = colon ? set_nonempty : set;
    if (kind == '-') {
      if (present) {
        out += it->second;
      } else {
        auto d = InterpolateCompose(rest, env, error, unset);
        if (!d) return std::nullopt;
        out += *d;
      }
    } else if (kind == '?') {
      if (present) {
        out += it->second;
      } else {
        auto m = InterpolateCompose(rest, env, error, unset);
        error = "required variable " + name + " is missing a value" +
                (m && !m->empty() ? ": " + *m : "");
        return std::nullopt;
      }
    } else if (kind == '+') {
      if (present) {
        auto a = InterpolateCompose(rest, env, error, unset);
        if (!a) return std::nullopt;
        out += *a;
      }
    } else {
      error = "invalid interpolation in '" + text + "': unknown operator in '${" + body + "}'";
      return std::nullopt;
    }
  }
  return out;
}

bool LooksLikeSecretName(const std::string& name) {
  std::string u = Upper(name);
  for (const char* word : {"PASSWORD", "PASSWD", "SECRET", "TOKEN", "CREDENTIAL"}) {
    if (u.find(word) != std::string::npos) return true;
  }
  std::vector<std::string> parts;
  std::string cur;
  for (char c : u) {
    if (c == '_' || c == '.' || c == '-') {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  for (const std::string& p : parts) {
    static const std::set<std::string> kKeys = {
        "KEY",       "KEYS",    "APIKEY",     "ACCESSKEY", "PRIVKEY",       "PRIVATEKEY", "AUTHKEY",
        "SECRETKEY", "SIGNKEY", "SIGNINGKEY", "MASTERKEY", "ENCRYPTIONKEY", "LICENSEKEY"};
    if (p == "PW" || p == "PWD" || p == "PRIVATE" || EndsWith(p, "PASS") || kKeys.count(p)) {
      return true;
    }
  }
  return false;
}

}  // namespace reconcile
