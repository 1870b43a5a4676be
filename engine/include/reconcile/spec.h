// The normalized spec of an agent: the provider-neutral JSON value that is
// deployed, hashed (reconcile.dev/spec-hash), recorded in state and diffed
// field by field by the planner. Keys use the manifest's field names so that
// a field path in a plan ("env.LOG_LEVEL") is what the user wrote.
//
// Only fields that change what runs are included (not dependsOn, suspend,
// drift). Secret env holds references (SecretRefText: "file:NAME", "env:VAR",
// "aws:...", "vault:..."), never values; `secretDigests` (only when the
// Reconciler set Agent::secret_digests) holds keyed fingerprints of them.
// Fields added later (volumes: an object keyed by mount target; ports;
// restart; publish: false; networks: an object keyed by network name;
// secretFiles: references, never values) appear only when set, so that
// existing agents keep their hash.
// Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "reconcile/model.h"
#include "reconcile/status.h"

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX

namespace reconcile {

// The image reference an agent runs: `image`, or for a build the reference
// <registry.url>/<registry.repository>:<tag> with the tag chosen by the
// registry's tagStrategy (image_tag.h) from `revision` alone (no commit time,
// Git tags or context digest: the Reconciler observes those, and the planner
// uses what it observed; this is the fallback). `registry` may be null
// without build.
std::string ResolveImage(const Agent& agent, const Registry* registry, const std::string& revision);

// Normalized spec; `image` must be the resolved image reference.
nlohmann::json NormalizedSpec(const Agent& agent, const std::string& image);

// The inverse of NormalizedSpec, to re-apply a spec that history recorded:
// an Agent named `name` (image set, no build) whose NormalizedSpec(agent,
// agent.image) is `spec` again. Fields the spec does not hold (dependsOn,
// suspend, drift) are left at their defaults. kInvalid when `spec` is not one
// this engine's NormalizedSpec writes (it checks by normalizing again).
Result<Agent> AgentFromSpec(const std::string& name, const nlohmann::json& spec);

// Canonical text of a duration: "1h", "5m", "2s", "250ms".
std::string FormatDuration(std::int64_t ms);
// Parses "<digits><unit>" with unit ms|s|m|h; nullopt when malformed.
std::optional<std::int64_t> ParseDuration(const std::string& text);

// "sha256:<hex>" of the canonical (sorted keys, compact) JSON of `spec`.
std::string SpecHash(const nlohmann::json& spec);

// SpecHash(NormalizedSpec(agent, agent.image)), made once per
// Agent::spec_memo (shared_json.h). For agents without build (the image of
// one with build follows the revision).
const SpecMemo::Value& MemoizedSpec(const Agent& agent);

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(const std::string& data);

// Lower-case hex of `n` bytes.
std::string HexBytes(const unsigned char* data, std::size_t n);

// Lower-case hex HMAC-SHA256 of `data` under `key`.
std::string HmacSha256Hex(std::string_view key, std::string_view data);

// SHA-256 over data given in pieces (OpenSSL).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(std::string_view data);       // the bytes
  void UpdateField(std::string_view data);  // the bytes, then a NUL (one field of a record)
  std::string HexDigest();                  // lower-case hex; ends the hash

 private:
  ::evp_md_ctx_st* ctx_;
};

}  // namespace reconcile
