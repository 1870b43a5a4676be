#include "source/known_hosts.h"

#include <sstream>
#include <vector>

#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace reconcile {
namespace {

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

bool Glob(const char* pattern, const char* name) {
  if (*pattern == '\0') return *name == '\0';
  if (*pattern == '*') {
    for (const char* n = name;; ++n) {
      if (Glob(pattern + 1, n)) return true;
      if (*n == '\0') return false;
    }
  }
  if (*name == '\0') return false;
  if (*pattern == '?' || *pattern == *name) return Glob(pattern + 1, name + 1);
  return false;
}

bool HashedMatch(const std::string& pattern, const std::string& name) {
  auto parts = Split(pattern, '|');  // "", "1", salt, hash
  if (parts.size() != 4 || parts[1] != "1") return false;
  std::string salt, hash;
  if (!DecodeBase64(parts[2], salt) || !DecodeBase64(parts[3], hash)) return false;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha1(), salt.data(), static_cast<int>(salt.size()),
           reinterpret_cast<const unsigned char*>(name.data()), name.size(), digest,
           &len) == nullptr) {
    return false;
  }
  return hash == std::string(reinterpret_cast<const char*>(digest), len);
}

// True when the host field of a line names `name`.
bool HostsMatch(const std::string& field, const std::string& name) {
  if (!field.empty() && field[0] == '|') return HashedMatch(field, name);
  bool matched = false;
  for (const auto& pattern : Split(field, ',')) {
    if (!pattern.empty() && pattern[0] == '!') {
      if (Glob(pattern.c_str() + 1, name.c_str())) return false;
    } else if (Glob(pattern.c_str(), name.c_str())) {
      matched = true;
    }
  }
  return matched;
}

// The key type named at the start of an SSH wire-format key blob.
std::string KeyType(const std::string& blob) {
  if (blob.size() < 4) return "";
  size_t len = (static_cast<unsigned char>(blob[0]) << 24) |
               (static_cast<unsigned char>(blob[1]) << 16) |
               (static_cast<unsigned char>(blob[2]) << 8) | static_cast<unsigned char>(blob[3]);
  if (len > blob.size() - 4) return "";
  return blob.substr(4, len);
}

}  // namespace

bool DecodeBase64(const std::string& in, std::string& out) {
  out.clear();
  unsigned int acc = 0;
  int bits = 0;
  size_t pad = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '+') {
      v = 62;
    } else if (c == '/') {
      v = 63;
    } else if (c == '=') {
      ++pad;
      continue;
    } else {
      return false;
    }
    if (pad) return false;  // data after padding
    acc = (acc << 6) | static_cast<unsigned int>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return pad <= 2;
}

HostKeyCheck CheckKnownHost(const std::string& known_hosts, const std::string& host, int port,
                            const std::string& key) {
  HostKeyCheck check;
  check.key_type = KeyType(key);
  const std::string name =
      (port == 0 || port == 22) ? host : "[" + host + "]:" + std::to_string(port);
  bool known = false, matched = false;
  std::istringstream lines(known_hosts);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::istringstream fields(line);
    std::string first;
    if (!(fields >> first) || first[0] == '#') continue;
    std::string marker;
    if (first[0] == '@') {
      marker = first;
      if (!(fields >> first)) continue;
    }
    if (marker == "@cert-authority") continue;
    std::string type, base64;
    if (!(fields >> type >> base64)) continue;
    if (!HostsMatch(first, name)) continue;
    std::string blob;
    if (!DecodeBase64(base64, blob)) continue;
    if (marker == "@revoked") {
      if (blob == key) {
        check.match = HostKeyMatch::kRevoked;
        return check;
      }
      continue;
    }
    known = true;
    if (check.known_types.find(type) == std::string::npos) {
      check.known_types += (check.known_types.empty() ? "" : ",") + type;
    }
    if (blob == key) matched = true;
  }
  check.match = matched ? HostKeyMatch::kMatch
                        : (known ? HostKeyMatch::kChanged : HostKeyMatch::kUnknownHost);
  return check;
}

}  // namespace reconcile
