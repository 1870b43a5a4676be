#include "reconcile/config_checks.h"

#include <arpa/inet.h>

#include <algorithm>
#include <limits>

#include "reconcile/json_schemas.h"

namespace reconcile::checks {

bool AllOf(std::string_view s, const std::function<bool(char)>& pred) {
  return !s.empty() && std::all_of(s.begin(), s.end(), pred);
}

// ^\S+$
bool IsNoSpace(std::string_view s) {
  return AllOf(s, [](char c) { return !IsSpace(c); });
}

// ^[a-z0-9-]+$
bool IsLowerDash(std::string_view s) {
  return AllOf(s, [](char c) { return IsLower(c) || IsDigit(c) || c == '-'; });
}

// ^[A-Za-z0-9._-]+$ and not "." or ".."
bool IsSecretFileName(std::string_view s) {
  return s != "." && s != ".." && AllOf(s, [](char c) {
           return IsLower(c) || IsUpper(c) || IsDigit(c) || c == '.' || c == '_' || c == '-';
         });
}

// ^[A-Za-z0-9.:-]{1,253}$ (a DNS name or an IP address)
bool IsServerName(std::string_view s) {
  return !s.empty() && s.size() <= 253 && AllOf(s, [](char c) {
    return IsLower(c) || IsUpper(c) || IsDigit(c) || c == '.' || c == ':' || c == '-';
  });
}

// ^(unix:///\S+|tcp://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5})$
bool IsDockerHost(std::string_view s) {
  if (s.rfind("unix:///", 0) == 0) return IsNoSpace(s.substr(8));
  if (s.rfind("tcp://", 0) != 0) return false;
  s.remove_prefix(6);
  auto colon = s.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string_view host = s.substr(0, colon), port = s.substr(colon + 1);
  if (port.empty() || port.size() > 5 || !AllOf(port, IsDigit)) return false;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    return AllOf(host.substr(1, host.size() - 2),
                 [](char c) { return IsHex(c) || c == ':' || c == '.'; });
  }
  return AllOf(
      host, [](char c) { return IsLower(c) || IsUpper(c) || IsDigit(c) || c == '.' || c == '-'; });
}

// ^[A-Za-z0-9][A-Za-z0-9_.-]*$
bool IsDockerNetwork(std::string_view s) {
  return AllOf(s,
               [](char c) {
                 return IsLower(c) || IsUpper(c) || IsDigit(c) || c == '_' || c == '.' || c == '-';
               }) &&
         (IsLower(s.front()) || IsUpper(s.front()) || IsDigit(s.front()));
}

// format: ipv4 or ipv6
bool IsIpAddress(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// ^https?://\S+$
bool IsHttpUrl(std::string_view s) {
  if (s.rfind("https://", 0) == 0) return IsNoSpace(s.substr(8));
  if (s.rfind("http://", 0) == 0) return IsNoSpace(s.substr(7));
  return false;
}

// ^arn:\S+$
bool IsArn(std::string_view s) { return s.rfind("arn:", 0) == 0 && IsNoSpace(s.substr(4)); }

// ^[^@\s]+@[^@\s]+$
bool IsEmail(std::string_view s) {
  auto at = s.find('@');
  if (at == std::string_view::npos) return false;
  auto part = [](std::string_view p) {
    return AllOf(p, [](char c) { return c != '@' && !IsSpace(c); });
  };
  return part(s.substr(0, at)) && part(s.substr(at + 1));
}

// ^[a-z][a-z0-9-]{4,28}[a-z0-9]$
bool IsGcpProject(std::string_view s) {
  return s.size() >= 6 && s.size() <= 30 && IsLower(s.front()) && IsLowerDash(s) && s.back() != '-';
}

// ^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$
bool IsUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !IsHex(s[i])) return false;
  }
  return true;
}

std::string DescribeJson(const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::null:
      return "null";
    case nlohmann::json::value_t::boolean:
      return "a boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
      return "an integer";
    case nlohmann::json::value_t::number_float:
      return "a number";
    case nlohmann::json::value_t::string:
      return "a string";
    case nlohmann::json::value_t::array:
      return "a list";
    case nlohmann::json::value_t::object:
      return "a map";
    default:
      return "a value";
  }
}

namespace {

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      char x = static_cast<char>(std::tolower(static_cast<unsigned char>(a[i - 1])));
      char y = static_cast<char>(std::tolower(static_cast<unsigned char>(b[j - 1])));
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x == y ? 0 : 1)});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string Shown(const std::string& s, std::size_t max) {
  return s.size() > max ? s.substr(0, max) + "..." : s;
}

}  // namespace

std::string Suggest(std::string_view unknown, const std::vector<std::string>& known) {
  if (unknown.size() > 64) return "";
  std::string best;
  size_t best_distance = std::numeric_limits<size_t>::max();
  for (const auto& k : known) {
    size_t d = EditDistance(unknown, k);
    if (d < best_distance) best_distance = d, best = k;
  }
  size_t allowed = best.size() <= 3 ? 1 : std::max<size_t>(2, std::min<size_t>(3, best.size() / 3));
  return best_distance <= allowed ? best : "";
}

nlohmann::json TargetBlockSchema(const std::string& provider) {
  std::optional<std::string> text = SchemaFor("Target");
  if (!text) return nullptr;
  nlohmann::json schema = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  const nlohmann::json::json_pointer at("/properties/spec/properties/" + provider);
  if (schema.is_discarded() || !schema.contains(at)) return nullptr;
  nlohmann::json block = schema.at(at);
  block["$schema"] = "https://json-schema.org/draft/2020-12/schema";
  return block;
}

ConfigChecker::ConfigChecker(const nlohmann::json& block, std::string path,
                             std::vector<ProviderDiagnostic>& out)
    : path_(std::move(path)), out_(&out) {
  if (block.is_object()) {
    object_ = &block;
  } else {
    out_->push_back({Severity::kError, path_, "must be a map, got " + DescribeJson(block)});
  }
}

const nlohmann::json* ConfigChecker::Get(std::string_view key) const {
  if (!object_) return nullptr;
  auto it = object_->find(key);
  return it == object_->end() ? nullptr : &*it;
}

void ConfigChecker::Error(std::string_view key, std::string message) {
  out_->push_back({Severity::kError, key.empty() ? path_ : Field(key), std::move(message)});
}

void ConfigChecker::Known(std::initializer_list<std::string_view> known) {
  if (!object_) return;
  std::vector<std::string> names(known.begin(), known.end());
  for (const auto& [key, value] : object_->items()) {
    if (std::find(names.begin(), names.end(), key) != names.end()) continue;
    std::string message = "unknown field '" + Shown(key, 64) + "'";
    std::string suggestion = Suggest(key, names);
    if (!suggestion.empty()) message += " (did you mean '" + suggestion + "'?)";
    Error(key, message);
  }
}

void ConfigChecker::Require(std::string_view key) {
  if (object_ && !Get(key)) Error(key, "required field is missing");
}

std::optional<std::string> ConfigChecker::String(std::string_view key) {
  const nlohmann::json* v = Get(key);
  if (!v) return std::nullopt;
  if (!v->is_string()) {
    Error(key, "must be a string, got " + DescribeJson(*v));
    return std::nullopt;
  }
  return v->get<std::string>();
}

std::optional<std::string> ConfigChecker::Checked(
    std::string_view key, const std::function<bool(const std::string&)>& check,
    std::string_view what) {
  auto s = String(key);
  if (!s) return std::nullopt;
  if (!check(*s)) {
    Error(key, "invalid value '" + Shown(*s, 80) + "': must be " + std::string(what));
    return std::nullopt;
  }
  return s;
}

std::optional<std::int64_t> ConfigChecker::Int(std::string_view key, std::int64_t min,
                                               std::int64_t max) {
  const nlohmann::json* v = Get(key);
  if (!v) return std::nullopt;
  std::optional<std::int64_t> i;
  if (v->is_number_integer()) {
    i = v->get<std::int64_t>();
  } else if (v->is_number_unsigned()) {
    if (v->get<std::uint64_t>() <= static_cast<std::uint64_t>(max)) i = v->get<std::int64_t>();
  } else if (v->is_number_float()) {
    double d = v->get<double>();
    if (d != static_cast<double>(static_cast<std::int64_t>(d))) {
      Error(key, "must be an integer, got a number");
      return std::nullopt;
    }
    if (d >= -9.0e15 && d <= 9.0e15) i = static_cast<std::int64_t>(d);
  } else {
    Error(key, "must be an integer, got " + DescribeJson(*v));
    return std::nullopt;
  }
  if (!i || *i < min || *i > max) {
    Error(key, "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " +
                   Shown(v->dump(), 40));
    return std::nullopt;
  }
  return i;
}

std::optional<bool> ConfigChecker::Bool(std::string_view key) {
  const nlohmann::json* v = Get(key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) {
    Error(key, "must be a boolean (true or false), got " + DescribeJson(*v));
    return std::nullopt;
  }
  return v->get<bool>();
}

std::optional<nlohmann::json> ConfigChecker::StringOrNumber(std::string_view key) {
  const nlohmann::json* v = Get(key);
  if (!v) return std::nullopt;
  if (v->is_number()) {
    if (!(v->get<double>() > 0)) {
      Error(key, "must be a positive number");
      return std::nullopt;
    }
    return *v;
  }
  if (!v->is_string()) {
    Error(key, "must be a string or a number, got " + DescribeJson(*v));
    return std::nullopt;
  }
  if (v->get<std::string>().empty()) {
    Error(key, "invalid value '': must be a non-empty value");
    return std::nullopt;
  }
  return *v;
}

ConfigChecker ConfigChecker::Child(std::string_view key) {
  static const nlohmann::json kEmpty = nlohmann::json::object();
  const nlohmann::json* v = Get(key);
  return ConfigChecker(v ? *v : kEmpty, Field(key), *out_);
}

}  // namespace reconcile::checks
