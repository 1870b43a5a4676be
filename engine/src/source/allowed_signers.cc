#include "source/allowed_signers.h"

#include <time.h>

#include <cctype>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "source/ssh_signature.h"

namespace reconcile {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r'; }

void SkipSpace(std::string_view& s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
}

// One whitespace-delimited token; a token starting with '"' runs to the
// closing quote (OpenSSH's strdelimw). False on an unterminated quote.
bool Token(std::string_view& s, std::string* out) {
  out->clear();
  SkipSpace(s);
  if (!s.empty() && s.front() == '"') {
    auto close = s.find('"', 1);
    if (close == std::string_view::npos) return false;
    *out = std::string(s.substr(1, close - 1));
    s.remove_prefix(close + 1);
    return true;
  }
  size_t n = 0;
  while (n < s.size() && !IsSpace(s[n])) ++n;
  *out = std::string(s.substr(0, n));
  s.remove_prefix(n);
  return true;
}

bool LooksLikeKeyType(std::string_view t) {
  return t.rfind("ssh-", 0) == 0 || t.rfind("ecdsa-", 0) == 0 || t.rfind("sk-", 0) == 0;
}

// "keytype base64" at the front of `s`: the key's wire form.
std::optional<std::string> ReadKey(std::string_view s, std::string* error) {
  std::string type;
  std::string base64;
  if (!Token(s, &type) || !Token(s, &base64) || type.empty() || base64.empty()) {
    *error = "no key";
    return std::nullopt;
  }
  if (!LooksLikeKeyType(type)) {
    *error = "'" + type + "' is not a key type";
    return std::nullopt;
  }
  std::string blob;
  if (!DecodeBase64(base64, &blob)) {
    *error = "the " + type + " key is not base64";
    return std::nullopt;
  }
  if (SshKeyType(blob) != type) {
    *error = "the key's data is not a " + type + " key";
    return std::nullopt;
  }
  return blob;
}

// YYYYMMDD[HHMM[SS]][Z] (ssh-keygen's parse_absolute_time).
std::optional<std::int64_t> ParseTime(std::string v) {
  bool utc = false;
  if (!v.empty() && (v.back() == 'Z' || v.back() == 'z')) {
    utc = true;
    v.pop_back();
  }
  if (v.size() != 8 && v.size() != 12 && v.size() != 14) return std::nullopt;
  for (char c : v) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
  }
  auto num = [&](size_t at, size_t n) { return std::stoi(v.substr(at, n)); };
  struct tm tm = {};
  tm.tm_year = num(0, 4) - 1900;
  tm.tm_mon = num(4, 2) - 1;
  tm.tm_mday = num(6, 2);
  if (v.size() >= 12) {
    tm.tm_hour = num(8, 2);
    tm.tm_min = num(10, 2);
  }
  if (v.size() == 14) tm.tm_sec = num(12, 2);
  if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
      tm.tm_min > 59 || tm.tm_sec > 60) {
    return std::nullopt;
  }
  tm.tm_isdst = -1;
  time_t t = utc ? timegm(&tm) : mktime(&tm);
  if (t == static_cast<time_t>(-1)) return std::nullopt;
  return static_cast<std::int64_t>(t);
}

// Options up to the first unquoted whitespace: name or name="value", comma
// separated. Fills `signer`; false with `error` set on a bad option.
bool ReadOptions(std::string_view& s, AllowedSigner& signer, std::string* error) {
  while (true) {
    size_t n = 0;
    while (n < s.size() && s[n] != '=' && s[n] != ',' && !IsSpace(s[n])) ++n;
    std::string name(s.substr(0, n));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    s.remove_prefix(n);
    std::optional<std::string> value;
    if (!s.empty() && s.front() == '=') {
      s.remove_prefix(1);
      if (s.empty() || s.front() != '"') {
        *error = "option " + name + ": the value must be quoted";
        return false;
      }
      s.remove_prefix(1);
      std::string v;
      while (!s.empty() && s.front() != '"') {
        if (s.front() == '\\' && s.size() > 1 && s[1] == '"') s.remove_prefix(1);
        v.push_back(s.front());
        s.remove_prefix(1);
      }
      if (s.empty()) {
        *error = "option " + name + ": unterminated quote";
        return false;
      }
      s.remove_prefix(1);
      value = v;
    }
    if (name == "cert-authority" && !value) {
      signer.cert_authority = true;
    } else if (name == "namespaces" && value) {
      std::string_view list = *value;
      while (!list.empty()) {
        auto comma = list.find(',');
        std::string item(list.substr(0, comma));
        if (!item.empty()) signer.namespaces.push_back(item);
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
      }
      if (signer.namespaces.empty()) {
        *error = "option namespaces: empty";
        return false;
      }
    } else if ((name == "valid-after" || name == "valid-before") && value) {
      std::optional<std::int64_t> t = ParseTime(*value);
      if (!t) {
        *error = "option " + name + ": '" + *value + "' is not YYYYMMDD[HHMM[SS]][Z]";
        return false;
      }
      (name == "valid-after" ? signer.valid_after : signer.valid_before) = *t;
    } else {
      *error = name.empty() ? "empty option" : "unsupported option '" + name + "'";
      return false;
    }
    if (s.empty() || IsSpace(s.front())) return true;
    if (s.front() != ',') {
      *error = "malformed options";
      return false;
    }
    s.remove_prefix(1);
  }
}

// OpenSSH's match_pattern: '*' any run, '?' any one character.
bool MatchPattern(std::string_view s, std::string_view p) {
  size_t si = 0, pi = 0, star = std::string_view::npos, mark = 0;
  while (si < s.size()) {
    if (pi < p.size() && (p[pi] == '?' || p[pi] == s[si])) {
      ++si;
      ++pi;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = si;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

std::string FormatTime(std::int64_t t) {
  time_t tt = static_cast<time_t>(t);
  struct tm tm = {};
  gmtime_r(&tt, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

bool MatchPatternList(std::string_view s, std::string_view list) {
  bool matched = false;
  while (true) {
    auto comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    bool negated = !item.empty() && item.front() == '!';
    if (negated) item.remove_prefix(1);
    if (MatchPattern(s, item)) {
      if (negated) return false;
      matched = true;
    }
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return matched;
}

std::vector<AllowedSigner> ParseAllowedSigners(std::string_view text, const std::string& file,
                                               Diagnostics& diagnostics) {
  std::vector<AllowedSigner> out;
  int line_no = 0;
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++line_no;
    SkipSpace(line);
    if (line.empty() || line.front() == '#') continue;
    auto fail = [&](const std::string& why) { diagnostics.Error(file, line_no, 0, "", why); };
    AllowedSigner signer;
    signer.line = line_no;
    if (!Token(line, &signer.principals)) {
      fail("unterminated quote in the principals");
      continue;
    }
    SkipSpace(line);
    if (signer.principals.empty() || line.empty()) {
      fail("expected: principals [options] keytype base64-key");
      continue;
    }
    std::string error;
    std::optional<std::string> key;
    std::string_view rest = line;
    std::string first;
    Token(rest, &first);
    if (LooksLikeKeyType(first)) {
      key = ReadKey(line, &error);
    } else {
      if (!ReadOptions(line, signer, &error)) {
        fail(error);
        continue;
      }
      key = ReadKey(line, &error);
    }
    if (!key) {
      fail(error);
      continue;
    }
    signer.key = std::move(*key);
    out.push_back(std::move(signer));
  }
  return out;
}

const AllowedSigner* FindAllowedSigner(const std::vector<AllowedSigner>& signers,
                                       std::string_view key, std::string_view ns, std::int64_t when,
                                       std::string* why) {
  std::string reason;
  for (const AllowedSigner& s : signers) {
    if (s.key != key) continue;
    const std::string at = "allowed_signers line " + std::to_string(s.line) + ": ";
    if (s.cert_authority) {
      reason = at + "a cert-authority key (certificates are not supported)";
      continue;
    }
    if (!s.namespaces.empty()) {
      std::string list;
      for (const std::string& n : s.namespaces) list += (list.empty() ? "" : ",") + n;
      if (!MatchPatternList(ns, list)) {
        reason = at + "namespace '" + std::string(ns) + "' not allowed";
        continue;
      }
    }
    if (s.valid_after && when < *s.valid_after) {
      reason = at + "the key is not valid before " + FormatTime(*s.valid_after);
      continue;
    }
    if (s.valid_before && when > *s.valid_before) {
      reason = at + "the key is not valid after " + FormatTime(*s.valid_before);
      continue;
    }
    return &s;
  }
  if (why != nullptr) *why = reason;
  return nullptr;
}

}  // namespace reconcile
