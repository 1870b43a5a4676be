// SOPS-encrypted files in the tree (reconcile/sops.h): anyone who can push
// writes them. The first byte picks the format (YAML, JSON, dotenv), the rest
// is the file, decrypted with the fuzzing age identity (tests/fuzz/sops/:
// the seeds are files encrypted to it by tests/scripts/sops_encrypt.py and
// the real `age`, holding values that start "fuzz-canary"). An error never
// quotes a decrypted value: when the input does not hold a canary in clear,
// no error may.
#include <string>

#include "fuzz_util.h"
#include "reconcile/sops.h"

namespace {

// tests/fuzz/sops/fuzz-age-key.txt (a key made for fuzzing, nothing else).
constexpr const char* kIdentity =
    "AGE-SECRET-KEY-1JQMWLXQM2HMNFHK8RTSR4E0J3YVU5XKWAE02P7ZMMU5NTSRZNNLS6PFWWN\n";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace reconcile;
  if (size == 0) return 0;
  const SopsFormat format = data[0] % 3 == 0   ? SopsFormat::kYaml
                            : data[0] % 3 == 1 ? SopsFormat::kJson
                                               : SopsFormat::kDotenv;
  const std::string_view bytes = fuzz::Bytes(data + 1, size - 1);
  SopsKeys keys;
  keys.age_identity_files.push_back(kIdentity);
  keys.age_sources.push_back("fuzz-age-key.txt");
  auto doc = DecryptSops(bytes, format, keys, "secrets/fuzz.enc", SopsOptions{});
  if (doc.ok()) {
    for (const SopsValue& v : doc->values()) (void)doc->Lookup(v.path);
  } else if (bytes.find("fuzz-canary") == std::string_view::npos) {
    fuzz::Check(doc.status().message().find("fuzz-canary") == std::string::npos,
                "an error quotes a decrypted value");
  }
  return 0;
}
