#include "aws/credentials.h"

#include <time.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace reconcile::aws {
namespace {

constexpr size_t kMaxFileBytes = 1 << 20;
constexpr size_t kMaxAnswerBytes = 64 << 10;
constexpr auto kRefreshMargin = std::chrono::minutes(5);
constexpr std::string_view kEcsHost = "http://169.254.170.2";

std::string EnvValue(const Environment& env, const std::string& name) {
  auto it = env.find(name);
  return it == env.end() ? "" : it->second;
}

std::string_view Trim(std::string_view s) {
  const char* ws = " \t\r\n\v\f";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

bool HasLineBreakOrNul(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

// The file's text; nullopt when it does not exist. Errors: unreadable, too
// big, not text.
Result<std::optional<std::string>> ReadSmallFile(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::optional<std::string>();
  auto size = std::filesystem::file_size(path, ec);
  if (ec) return Status::Invalid(path + ": cannot be read (" + ec.message() + ")");
  if (size > kMaxFileBytes) {
    return Status::Invalid(path + ": is larger than 1 MiB; is it the right file?");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Invalid(path + ": cannot be opened for reading");
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (text.find('\0') != std::string::npos) {
    return Status::Invalid(path + ": holds NUL bytes, not an INI text file");
  }
  return std::optional<std::string>(std::move(text));
}

Result<std::optional<IniFile>> LoadIni(const std::string& path) {
  auto text = ReadSmallFile(path);
  if (!text.ok()) return text.status();
  if (!text->has_value()) return std::optional<IniFile>();
  auto ini = ParseIni(path, **text);
  if (!ini.ok()) return ini.status();
  return std::optional<IniFile>(std::move(*ini));
}

std::string HomeDir(const Environment& env) { return EnvValue(env, "HOME"); }

// The keys of a profile that name a way to get credentials reconcile does
// not implement.
constexpr const char* kUnsupportedKeys[] = {
    "role_arn",       "credential_process",      "sso_session",       "sso_start_url",
    "sso_account_id", "web_identity_token_file", "credential_source", "source_profile"};

struct ProfileLookup {
  std::optional<ResolvedCredentials> credentials;
  bool found = false;  // the profile exists in one of the files
};

// The profile's static keys from one file's section; nullopt when the
// section holds no key at all.
Result<std::optional<ResolvedCredentials>> KeysFromSection(const IniFile& file,
                                                           const std::string& section,
                                                           const std::string& profile) {
  auto it = file.sections.find(section);
  if (it == file.sections.end()) return std::optional<ResolvedCredentials>();
  const auto& kv = it->second;
  auto ak = kv.find("aws_access_key_id");
  auto sk = kv.find("aws_secret_access_key");
  auto st = kv.find("aws_session_token");
  const std::string where = "profile '" + profile + "' in " + file.path;
  if (ak == kv.end() && sk == kv.end()) {
    for (const char* key : kUnsupportedKeys) {
      if (auto u = kv.find(key); u != kv.end()) {
        return Status::Invalid(file.path + ":" + std::to_string(u->second.line) + ": profile '" +
                               profile + "' uses " + key +
                               ", which reconcile does not support; give the profile "
                               "aws_access_key_id and aws_secret_access_key, or set "
                               "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
      }
    }
    return std::optional<ResolvedCredentials>();
  }
  if (ak == kv.end() || ak->second.value.empty()) {
    int line = sk != kv.end() ? sk->second.line : ak->second.line;
    return Status::Invalid(file.path + ":" + std::to_string(line) + ": profile '" + profile +
                           "' has aws_secret_access_key but no aws_access_key_id; set both");
  }
  if (sk == kv.end() || sk->second.value.empty()) {
    return Status::Invalid(file.path + ":" + std::to_string(ak->second.line) + ": profile '" +
                           profile +
                           "' has aws_access_key_id but no aws_secret_access_key; set both");
  }
  ResolvedCredentials out;
  out.credentials.access_key_id = ak->second.value;
  out.credentials.secret_access_key = sk->second.value;
  if (st != kv.end()) out.credentials.session_token = st->second.value;
  out.source = where;
  return std::optional<ResolvedCredentials>(std::move(out));
}

std::string ConfigSection(const std::string& profile) {
  return profile == "default" ? "default" : "profile " + profile;
}

Result<ProfileLookup> FromProfile(const Environment& env) {
  const std::string profile = ProfileName(env);
  ProfileLookup out;
  const std::string cred_path = SharedCredentialsPath(env);
  const std::string config_path = ConfigPath(env);
  if (!cred_path.empty()) {
    auto file = LoadIni(cred_path);
    if (!file.ok()) return file.status();
    if (file->has_value()) {
      const IniFile& ini = **file;
      out.found = out.found || ini.sections.contains(profile);
      auto keys = KeysFromSection(ini, profile, profile);
      if (!keys.ok()) return keys.status();
      if (keys->has_value()) {
        out.credentials = std::move(**keys);
        return out;
      }
    }
  }
  if (!config_path.empty()) {
    auto file = LoadIni(config_path);
    if (!file.ok()) return file.status();
    if (file->has_value()) {
      const IniFile& ini = **file;
      std::string section = ConfigSection(profile);
      if (!ini.sections.contains(section) && profile == "default" &&
          ini.sections.contains("profile default")) {
        section = "profile default";
      }
      out.found = out.found || ini.sections.contains(section);
      auto keys = KeysFromSection(ini, section, profile);
      if (!keys.ok()) return keys.status();
      if (keys->has_value()) out.credentials = std::move(**keys);
    }
  }
  return out;
}

bool IsAllowedPlainHttpHost(std::string host) {
  std::transform(host.begin(), host.end(), host.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (size_t colon = host.rfind(':');
      colon != std::string::npos && host.find(']') == std::string::npos) {
    host = host.substr(0, colon);
  } else if (size_t b = host.find("]:"); b != std::string::npos) {
    host = host.substr(0, b + 1);
  }
  if (host == "localhost" || host == "[::1]" || host == "169.254.170.2" ||
      host == "169.254.170.23" || host == "[fd00:ec2::23]") {
    return true;
  }
  // 127.0.0.0/8
  unsigned a, b, c, d;
  char tail;
  if (std::sscanf(host.c_str(), "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4) {
    return a == 127 && b < 256 && c < 256 && d < 256;
  }
  return false;
}

std::string NoCredentialsMessage(const Environment& env) {
  const std::string profile = ProfileName(env);
  auto path_or = [&](const std::string& path, const char* var, const char* dflt) {
    std::string p = path.empty() ? std::string(dflt) + " (HOME is not set)" : path;
    return p + " (" + var + ")";
  };
  std::string msg =
      "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and "
      "AWS_SESSION_TOKEN for temporary credentials); or give profile '" +
      profile + "'" + (env.contains("AWS_PROFILE") ? " (from AWS_PROFILE)" : "") +
      " aws_access_key_id and aws_secret_access_key in " +
      path_or(SharedCredentialsPath(env), "AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials") +
      " or " + path_or(ConfigPath(env), "AWS_CONFIG_FILE", "~/.aws/config") +
      ", choosing the profile with AWS_PROFILE; or run where "
      "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI "
      "or AWS_CONTAINER_CREDENTIALS_FULL_URI is set (ECS, EKS Pod Identity)";
  if (!EnvValue(env, "AWS_WEB_IDENTITY_TOKEN_FILE").empty()) {
    msg += ". AWS_WEB_IDENTITY_TOKEN_FILE is set, but web identity credentials are not supported";
  }
  return msg;
}

}  // namespace

std::string ProfileName(const Environment& env) {
  std::string p = std::string(Trim(EnvValue(env, "AWS_PROFILE")));
  return p.empty() ? "default" : p;
}

std::string SharedCredentialsPath(const Environment& env) {
  std::string p = EnvValue(env, "AWS_SHARED_CREDENTIALS_FILE");
  if (!p.empty()) return p;
  std::string home = HomeDir(env);
  return home.empty() ? "" : home + "/.aws/credentials";
}

std::string ConfigPath(const Environment& env) {
  std::string p = EnvValue(env, "AWS_CONFIG_FILE");
  if (!p.empty()) return p;
  std::string home = HomeDir(env);
  return home.empty() ? "" : home + "/.aws/config";
}

Result<IniFile> ParseIni(const std::string& path, std::string_view text) {
  IniFile out;
  out.path = path;
  std::string section;
  bool in_section = false;
  std::string last_key;
  int line_no = 0;
  size_t pos = 0;
  auto where = [&] { return path + ":" + std::to_string(line_no) + ": "; };
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::string_view t = Trim(line);
    if (t.empty() || t.front() == '#' || t.front() == ';') continue;
    if (line.front() == ' ' || line.front() == '\t') {
      // An indented line continues the previous setting (a sub-setting such
      // as "s3 =\n  max_concurrent_requests = 10"); reconcile uses none.
      if (last_key.empty()) {
        return Status::Invalid(where() + "an indented line that continues no setting");
      }
      continue;
    }
    if (t.front() == '[') {
      size_t close = t.find(']');
      if (close == std::string_view::npos) {
        return Status::Invalid(where() + "a section header without its closing ']'");
      }
      std::string_view after = Trim(t.substr(close + 1));
      if (!after.empty() && after.front() != '#' && after.front() != ';') {
        return Status::Invalid(where() + "text after the section header's ']'");
      }
      std::string_view name = Trim(t.substr(1, close - 1));
      if (name.empty()) return Status::Invalid(where() + "an empty section name '[]'");
      // "[profile   dev]" is "profile dev".
      std::string norm;
      bool space = false;
      for (char c : name) {
        if (c == ' ' || c == '\t') {
          space = true;
          continue;
        }
        if (space && !norm.empty()) norm += ' ';
        space = false;
        norm += c;
      }
      section = norm;
      in_section = true;
      last_key.clear();
      out.sections[section];
      out.section_lines.emplace(section, line_no);
      continue;
    }
    size_t eq = t.find_first_of("=:");
    if (eq == std::string_view::npos || eq == 0) {
      return Status::Invalid(where() + "expected '[section]' or 'name = value'");
    }
    if (!in_section) {
      return Status::Invalid(where() + "a setting before any [section]");
    }
    std::string key(Trim(t.substr(0, eq)));
    std::transform(key.begin(), key.end(), key.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    out.sections[section][key] = IniValue{std::string(Trim(t.substr(eq + 1))), line_no};
    last_key = key;
  }
  return out;
}

std::optional<std::chrono::system_clock::time_point> ParseIsoTime(std::string_view s) {
  s = Trim(s);
  if (s.size() < 20) return std::nullopt;
  auto digits = [&](size_t at, size_t n, int& v) {
    if (at + n > s.size()) return false;
    v = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      v = v * 10 + (s[i] - '0');
    }
    return true;
  };
  int Y, M, D, h, m, sec;
  if (!digits(0, 4, Y) || s[4] != '-' || !digits(5, 2, M) || s[7] != '-' || !digits(8, 2, D) ||
      (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(11, 2, h) || s[13] != ':' ||
      !digits(14, 2, m) || s[16] != ':' || !digits(17, 2, sec)) {
    return std::nullopt;
  }
  if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60) return std::nullopt;
  size_t i = 19;
  if (i < s.size() && s[i] == '.') {
    ++i;
    size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start) return std::nullopt;
  }
  int offset_minutes = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    int oh, om;
    if (!digits(i + 1, 2, oh) || i + 3 >= s.size() || s[i + 3] != ':' || !digits(i + 4, 2, om)) {
      return std::nullopt;
    }
    offset_minutes = (s[i] == '+' ? 1 : -1) * (oh * 60 + om);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  struct tm tm {};
  tm.tm_year = Y - 1900;
  tm.tm_mon = M - 1;
  tm.tm_mday = D;
  tm.tm_hour = h;
  tm.tm_min = m;
  tm.tm_sec = sec;
  time_t t = timegm(&tm);
  return std::chrono::system_clock::from_time_t(t) - std::chrono::minutes(offset_minutes);
}

Result<std::string> ResolveRegion(const Environment& env, const std::string& explicit_region) {
  std::string region = explicit_region;
  std::string from = "the Target's aws.region";
  if (region.empty()) {
    region = std::string(Trim(EnvValue(env, "AWS_REGION")));
    from = "AWS_REGION";
  }
  if (region.empty()) {
    region = std::string(Trim(EnvValue(env, "AWS_DEFAULT_REGION")));
    from = "AWS_DEFAULT_REGION";
  }
  const std::string profile = ProfileName(env);
  const std::string config_path = ConfigPath(env);
  if (region.empty() && !config_path.empty()) {
    auto file = LoadIni(config_path);
    if (!file.ok()) return file.status();
    if (file->has_value()) {
      const IniFile& ini = **file;
      auto it = ini.sections.find(ConfigSection(profile));
      if (it != ini.sections.end()) {
        if (auto r = it->second.find("region"); r != it->second.end()) {
          region = r->second.value;
          from = config_path + ":" + std::to_string(r->second.line);
        }
      }
    }
  }
  if (region.empty()) {
    return Status::Invalid(
        "no AWS region: set the Target's aws.region, AWS_REGION or AWS_DEFAULT_REGION, or region "
        "in profile '" +
        profile + "' of " +
        (config_path.empty() ? "~/.aws/config (HOME is not set)" : config_path) +
        " (AWS_CONFIG_FILE)");
  }
  if (region.size() > 63 || !std::all_of(region.begin(), region.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
      })) {
    return Status::Invalid("the AWS region from " + from +
                           " is not a region name (lower-case letters, digits and '-', such as "
                           "us-east-1)");
  }
  return region;
}

CredentialChain::CredentialChain(Environment env, FetchFunction fetch, WallClock now)
    : env_(std::move(env)), fetch_(std::move(fetch)), now_(std::move(now)) {}

Result<ResolvedCredentials> CredentialChain::Get() {
  std::lock_guard<std::mutex> lock(mu_);
  if (cached_) {
    if (!cached_->expiration || now_() < *cached_->expiration - kRefreshMargin) return *cached_;
    auto fresh = FetchContainer();
    if (fresh.ok()) {
      cached_ = *fresh;
      return *cached_;
    }
    if (now_() < *cached_->expiration) return *cached_;
    return fresh.status();
  }

  // 1. Environment.
  const std::string ak = EnvValue(env_, "AWS_ACCESS_KEY_ID");
  const std::string sk = EnvValue(env_, "AWS_SECRET_ACCESS_KEY");
  if (!ak.empty() || !sk.empty()) {
    if (ak.empty()) {
      return Status::Invalid("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not; set both");
    }
    if (sk.empty()) {
      return Status::Invalid("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not; set both");
    }
    ResolvedCredentials out;
    out.credentials = {ak, sk, EnvValue(env_, "AWS_SESSION_TOKEN")};
    out.source = "environment (AWS_ACCESS_KEY_ID)";
    cached_ = out;
    return out;
  }

  // 2. Shared credentials and config files.
  auto profile = FromProfile(env_);
  if (!profile.ok()) return profile.status();
  if (profile->credentials) {
    cached_ = *profile->credentials;
    return *cached_;
  }
  const bool profile_chosen = !Trim(EnvValue(env_, "AWS_PROFILE")).empty();
  if (profile_chosen && !profile->found) {
    return Status::Invalid(
        "AWS_PROFILE is '" + ProfileName(env_) + "', but neither " +
        (SharedCredentialsPath(env_).empty() ? std::string("~/.aws/credentials")
                                             : SharedCredentialsPath(env_)) +
        " (AWS_SHARED_CREDENTIALS_FILE) nor " +
        (ConfigPath(env_).empty() ? std::string("~/.aws/config") : ConfigPath(env_)) +
        " (AWS_CONFIG_FILE) has that profile");
  }

  // 3. Container credentials endpoint.
  if (!EnvValue(env_, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").empty() ||
      !EnvValue(env_, "AWS_CONTAINER_CREDENTIALS_FULL_URI").empty()) {
    auto fetched = FetchContainer();
    if (!fetched.ok()) return fetched.status();
    cached_ = *fetched;
    return *cached_;
  }

  return Status::Invalid(NoCredentialsMessage(env_));
}

Result<ResolvedCredentials> CredentialChain::FetchContainer() {
  std::string url;
  const std::string relative = EnvValue(env_, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  const std::string full = EnvValue(env_, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
  std::string var;
  if (!relative.empty()) {
    var = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI";
    if (relative.front() != '/' || HasLineBreakOrNul(relative) ||
        relative.find(' ') != std::string::npos) {
      return Status::Invalid(var + " must be a path starting with '/' (without spaces)");
    }
    url = std::string(kEcsHost) + relative;
  } else {
    var = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
    auto parts = SplitUrl(full);
    if (!parts.ok()) return parts.status().WithContext(var);
    if (parts->scheme == "http" && !IsAllowedPlainHttpHost(parts->host_header)) {
      return Status::Invalid(var +
                             " uses plain http:// to a host that is not loopback, 169.254.170.2 "
                             "or 169.254.170.23; use https://");
    }
    url = full;
  }

  std::vector<std::pair<std::string, std::string>> headers;
  std::string token;
  const std::string token_file = EnvValue(env_, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
  if (!token_file.empty()) {
    auto text = ReadSmallFile(token_file);
    if (!text.ok()) return text.status().WithContext("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    if (!text->has_value()) {
      return Status::Invalid("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: " + token_file +
                             " does not exist");
    }
    token = std::string(Trim(**text));
    if (HasLineBreakOrNul(token)) {
      return Status::Invalid("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: " + token_file +
                             " holds more than one line");
    }
  } else {
    token = EnvValue(env_, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
    if (HasLineBreakOrNul(token)) {
      return Status::Invalid("AWS_CONTAINER_AUTHORIZATION_TOKEN holds a line break");
    }
  }
  if (!token.empty()) headers.emplace_back("Authorization", token);

  const std::string where = "the container credentials endpoint " + url + " (" + var + ")";
  if (!fetch_) return Status::Internal(where + " is set, but this build cannot fetch it");
  auto body = fetch_(url, headers);
  if (!body.ok()) return body.status().WithContext(where);
  if (body->size() > kMaxAnswerBytes) {
    return Status::Unavailable(where + " answered with more than 64 KiB");
  }
  nlohmann::json doc = nlohmann::json::parse(*body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return Status::Unavailable(where + " answered with something that is not a JSON object");
  }
  auto field = [&](const char* name, bool required) -> Result<std::string> {
    auto it = doc.find(name);
    if (it == doc.end() || it->is_null()) {
      if (required) {
        return Status::Unavailable(where + " answered without " + std::string(name));
      }
      return std::string();
    }
    if (!it->is_string()) {
      return Status::Unavailable(where + " answered with a " + name + " that is not a string");
    }
    return it->get<std::string>();
  };
  auto ak = field("AccessKeyId", true);
  if (!ak.ok()) return ak.status();
  auto sk = field("SecretAccessKey", true);
  if (!sk.ok()) return sk.status();
  auto st = field("Token", false);
  if (!st.ok()) return st.status();
  auto exp = field("Expiration", false);
  if (!exp.ok()) return exp.status();
  if (ak->empty() || sk->empty()) {
    return Status::Unavailable(where + " answered with an empty AccessKeyId or SecretAccessKey");
  }
  ResolvedCredentials out;
  out.credentials = {*ak, *sk, *st};
  out.source = "container endpoint " + url;
  if (!exp->empty()) {
    auto t = ParseIsoTime(*exp);
    if (!t) {
      return Status::Unavailable(where +
                                 " answered with an Expiration that is not an ISO 8601 time");
    }
    if (*t <= now_()) {
      return Status::Unavailable(where + " answered with credentials that have already expired");
    }
    out.expiration = *t;
  }
  return out;
}

}  // namespace reconcile::aws
