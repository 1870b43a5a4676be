// AllowedSigners: an OpenSSH allowed_signers file (ssh-keygen(1), ALLOWED
// SIGNERS), the trust of SSH-signed commits (git's
// gpg.ssh.allowedSignersFile). One entry a line:
//   principals [options] keytype base64-key [comment]
// principals: a comma-separated list of patterns (quoted when it holds
// spaces); options: cert-authority, namespaces="git,...",
// valid-after="YYYYMMDD[HHMM[SS]][Z]", valid-before="..." (without Z: local
// time, as ssh-keygen reads them). Empty lines and lines starting with '#'
// are skipped. Plain values and pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "reconcile/diagnostic.h"

namespace reconcile {

struct AllowedSigner {
  int line = 0;
  std::string principals;               // as written (comma-separated patterns)
  std::vector<std::string> namespaces;  // namespaces="...": patterns; empty: any namespace
  bool cert_authority = false;          // a CA line: certificates are not supported, never matches
  std::optional<std::int64_t> valid_after;   // Unix seconds
  std::optional<std::int64_t> valid_before;  // Unix seconds
  std::string key;                           // the key, SSH wire format
};

// Parses the text of an allowed_signers file. Every malformed line is a
// Diagnostic (file `file`, its line, what is wrong) and is left out; the
// good lines are returned.
std::vector<AllowedSigner> ParseAllowedSigners(std::string_view text, const std::string& file,
                                               Diagnostics& diagnostics);

// The first entry that lets `key` (wire format) sign in namespace `ns` at
// Unix time `when` (git checks at the commit's committer time), or nullptr.
// `why` (may be null) gets the reason an entry for the key did not count
// ("not valid before ...", "namespace not allowed") when none matched.
const AllowedSigner* FindAllowedSigner(const std::vector<AllowedSigner>& signers,
                                       std::string_view key, std::string_view ns, std::int64_t when,
                                       std::string* why);

// OpenSSH's pattern-list matching (match_pattern_list): comma-separated
// patterns with '*' and '?', a leading '!' negates (a negated match wins).
bool MatchPatternList(std::string_view s, std::string_view list);

}  // namespace reconcile
