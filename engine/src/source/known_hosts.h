// Known hosts: checks an SSH server's host key against the text of an
// OpenSSH known_hosts file, as `ssh` with StrictHostKeyChecking=yes would.
//
// Understood: comma-separated host patterns with '*' and '?' wildcards and
// '!' negation, "[host]:port" for ports other than 22, hashed names
// ("|1|salt|hash", HMAC-SHA1), the @revoked marker. @cert-authority lines
// are skipped (certificates are not supported). Pure; thread-safe.
#pragma once

#include <string>

namespace reconcile {

enum class HostKeyMatch {
  kMatch,        // an entry for the host holds exactly this key
  kUnknownHost,  // no entry names the host
  kChanged,      // entries name the host, none with this key
  kRevoked,      // the key is marked @revoked
};

struct HostKeyCheck {
  HostKeyMatch match = HostKeyMatch::kUnknownHost;
  std::string key_type;     // of the offered key, e.g. "ssh-ed25519"
  std::string known_types;  // key types known for the host, comma-separated
};

// `key` is the server's public key blob in SSH wire format (what the
// base64 field of a known_hosts line decodes to). `port` 0 or 22 is the
// default port.
HostKeyCheck CheckKnownHost(const std::string& known_hosts, const std::string& host, int port,
                            const std::string& key);

// Base64 decoding (standard alphabet, '=' padding); false on bad input.
bool DecodeBase64(const std::string& in, std::string& out);

}  // namespace reconcile
