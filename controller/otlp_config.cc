#include "otlp_config.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace reconcile::controller {

namespace {

std::string Trim(const std::string& s) {
  std::size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> PercentDecode(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    int hi = i + 1 < s.size() ? HexDigit(s[i + 1]) : -1;
    int lo = i + 2 < s.size() ? HexDigit(s[i + 2]) : -1;
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

std::optional<std::string> NonEmpty(const EnvLookup& env, const std::string& name) {
  std::optional<std::string> v = env(name);
  if (!v) return std::nullopt;
  std::string t = Trim(*v);
  if (t.empty()) return std::nullopt;
  return t;
}

// The TRACES_ variable when set, else the general one; `which` names it.
std::optional<std::string> Signal(const EnvLookup& env, const std::string& suffix,
                                  std::string* which) {
  const std::string specific = "OTEL_EXPORTER_OTLP_TRACES_" + suffix;
  const std::string general = "OTEL_EXPORTER_OTLP_" + suffix;
  if (auto v = NonEmpty(env, specific)) {
    *which = specific;
    return v;
  }
  *which = general;
  return NonEmpty(env, general);
}

bool IsHttpUrl(const std::string& url) {
  for (const char* scheme : {"http://", "https://"}) {
    const std::string s = scheme;
    if (url.size() > s.size() && url.compare(0, s.size(), s) == 0) return true;
  }
  return false;
}

}  // namespace

Result<std::vector<std::pair<std::string, std::string>>> ParseKeyValueList(
    const std::string& text) {
  std::vector<std::pair<std::string, std::string>> out;
  std::size_t start = 0;
  int index = 0;
  while (start <= text.size()) {
    std::size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    const std::string member = Trim(text.substr(start, comma - start));
    start = comma + 1;
    ++index;
    if (member.empty()) continue;
    const std::size_t eq = member.find('=');
    if (eq == std::string::npos) {
      return Status::Invalid("member " + std::to_string(index) + " has no '='");
    }
    const std::string key = Trim(member.substr(0, eq));
    if (key.empty()) return Status::Invalid("member " + std::to_string(index) + " has no key");
    std::optional<std::string> value = PercentDecode(Trim(member.substr(eq + 1)));
    if (!value) {
      return Status::Invalid("the value of '" + key + "' has a bad %-escape");
    }
    out.emplace_back(key, std::move(*value));
  }
  return out;
}

Result<std::optional<OtlpConfig>> OtlpConfigFromEnv(const EnvLookup& env,
                                                    std::vector<std::string>* warnings) {
  auto warn = [&](std::string w) {
    if (warnings != nullptr) warnings->push_back(std::move(w));
  };
  if (auto disabled = NonEmpty(env, "OTEL_SDK_DISABLED")) {
    std::string d = *disabled;
    for (char& c : d) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (d == "true") return std::optional<OtlpConfig>();
  }
  if (auto exporter = NonEmpty(env, "OTEL_TRACES_EXPORTER")) {
    if (*exporter == "none") return std::optional<OtlpConfig>();
    if (*exporter != "otlp") {
      return Status::Invalid("OTEL_TRACES_EXPORTER: '" + *exporter +
                             "' is not supported (otlp or none)");
    }
  }
  OtlpConfig c;
  if (auto url = NonEmpty(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) {
    if (!IsHttpUrl(*url)) {
      return Status::Invalid("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: '" + *url +
                             "' is not an http:// or https:// URL");
    }
    c.url = *url;
  } else if (auto base = NonEmpty(env, "OTEL_EXPORTER_OTLP_ENDPOINT")) {
    if (!IsHttpUrl(*base)) {
      return Status::Invalid("OTEL_EXPORTER_OTLP_ENDPOINT: '" + *base +
                             "' is not an http:// or https:// URL");
    }
    c.url = *base + (base->back() == '/' ? "" : "/") + "v1/traces";
  } else {
    return std::optional<OtlpConfig>();
  }

  std::string which;
  if (auto protocol = Signal(env, "PROTOCOL", &which)) {
    if (*protocol == "http/json") {
      c.json = true;
    } else if (*protocol != "http/protobuf") {
      return Status::Invalid(which + ": '" + *protocol +
                             "' is not supported (http/protobuf or http/json)");
    }
  }
  if (auto timeout = Signal(env, "TIMEOUT", &which)) {
    char* end = nullptr;
    long ms = std::strtol(timeout->c_str(), &end, 10);
    if (end == timeout->c_str() || *end != '\0' || ms <= 0) {
      return Status::Invalid(which + ": '" + *timeout + "' is not a positive number of ms");
    }
    c.timeout = std::chrono::milliseconds(ms);
  }
  for (const char* name : {"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"}) {
    auto text = NonEmpty(env, name);
    if (!text) continue;
    auto list = ParseKeyValueList(*text);
    if (!list.ok()) return Status::Invalid(std::string(name) + ": " + list.status().message());
    for (auto& [k, v] : *list) {
      bool replaced = false;
      for (auto& [hk, hv] : c.headers) {
        if (hk.size() == k.size() &&
            std::equal(hk.begin(), hk.end(), k.begin(), [](char a, char b) {
              return std::tolower(static_cast<unsigned char>(a)) ==
                     std::tolower(static_cast<unsigned char>(b));
            })) {
          hv = v;
          replaced = true;
        }
      }
      if (!replaced) c.headers.emplace_back(k, v);
    }
  }

  std::vector<std::pair<std::string, std::string>> attributes;
  if (auto text = NonEmpty(env, "OTEL_RESOURCE_ATTRIBUTES")) {
    auto list = ParseKeyValueList(*text);
    if (list.ok()) {
      attributes = std::move(*list);
    } else {
      warn("OTEL_RESOURCE_ATTRIBUTES is ignored: " + list.status().message());
    }
  }
  std::string service = "reconcile";
  for (const auto& [k, v] : attributes) {
    if (k == "service.name") service = v;
  }
  if (auto name = NonEmpty(env, "OTEL_SERVICE_NAME")) service = *name;
  c.resource.emplace_back("service.name", service);
  for (auto& [k, v] : attributes) {
    if (k == "service.name") continue;
    bool replaced = false;
    for (auto& [rk, rv] : c.resource) {
      if (rk == k) {
        rv = v;  // the last of a key wins
        replaced = true;
      }
    }
    if (!replaced) c.resource.emplace_back(k, v);
  }
  return std::optional<OtlpConfig>(std::move(c));
}

}  // namespace reconcile::controller
