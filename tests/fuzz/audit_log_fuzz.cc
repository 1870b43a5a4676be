// The audit log (reconcile/audit_log.h) as `reconcile audit verify` and the
// next append read it back: a file anyone with access to the state folder
// may have edited. Verified with the fuzzing key (tests/fuzz/audit/: the
// seeds are logs signed with it by seed_corpus.py through Python's
// cryptography). A log that verifies parses, entry for entry.
#include <string>

#include "fuzz_util.h"
#include "reconcile/audit_log.h"

namespace {

// tests/fuzz/audit/fuzz-audit-key.pem (a key made for fuzzing, nothing else).
constexpr const char* kKeyPem =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIAz5wWeuy5xumInIVOnvtXVxfVaVrncvo/dvjgvtBmv5\n"
    "-----END PRIVATE KEY-----\n";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace reconcile;
  static const auto key = AuditKey::FromPem(kKeyPem, "fuzz-audit-key.pem");
  fuzz::Check(key.ok(), "the fuzzing key does not load");
  const std::string text(fuzz::Bytes(data, size));
  AuditVerification v = VerifyAuditLog(text, **key);
  auto parsed = ParseAuditLog(text);
  if (v.ok) {
    fuzz::Check(parsed.ok(), "a log that verifies does not parse");
    fuzz::Check(static_cast<std::int64_t>(parsed->size()) == v.entries,
                "a verified log's entry count differs from its parse");
  } else {
    fuzz::Check(!v.problem.empty(), "a refused log without a reason");
  }
  return 0;
}
