#include "controller/webhook.h"

#include <array>
#include <cctype>
#include <cstdint>
#include <optional>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <nlohmann/json.hpp>

namespace reconcile::controller {
namespace {

using Kind = WebhookVerdict::Kind;
using Digest = std::array<unsigned char, 32>;

constexpr std::size_t kMaxEcho = 200;  // payload text echoed in messages

WebhookVerdict Verdict(Kind kind, std::string message) {
  WebhookVerdict v;
  v.kind = kind;
  v.message = std::move(message);
  return v;
}

const std::string* Header(const WebhookHeaders& headers, const char* lower_name) {
  auto it = headers.find(lower_name);
  return it == headers.end() ? nullptr : &it->second;
}

// Printable ASCII only, bounded: payload text is attacker-chosen until the
// signature is checked, and is logged afterwards.
std::string Printable(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, kMaxEcho)) {
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  if (text.size() > kMaxEcho) out += "...";
  return out;
}

bool IsHex(std::string_view s) {
  for (char c : s) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// A commit id (SHA-1 or SHA-256 object id) or empty: payload fields that
// do not look like one are not returned, not even for logging.
std::string CommitForLog(const nlohmann::json& value) {
  if (!value.is_string()) return "";
  const auto& s = value.get_ref<const std::string&>();
  if ((s.size() == 40 || s.size() == 64) && IsHex(s)) return s;
  return "";
}

bool IsZeroCommit(std::string_view s) {
  return !s.empty() && s.find_first_not_of('0') == std::string_view::npos;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Digest Hmac(std::string_view key, std::string_view data) {
  Digest out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &len);
  return out;
}

Digest Sha256(std::string_view data) {
  Digest out{};
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data());
  return out;
}

// Parses "sha256=<64 hex digits>" into its 32 bytes.
std::optional<Digest> ParseSha256Signature(std::string_view value) {
  constexpr std::string_view kPrefix = "sha256=";
  if (value.size() != kPrefix.size() + 64 || value.substr(0, kPrefix.size()) != kPrefix) {
    return std::nullopt;
  }
  value.remove_prefix(kPrefix.size());
  Digest out{};
  for (std::size_t i = 0; i < out.size(); ++i) {
    int hi = HexValue(value[2 * i]);
    int lo = HexValue(value[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return out;
}

// Checks `header` ("sha256=<hex>") against HMAC-SHA256(secret, body).
// Returns nullopt when it matches, else the 401 verdict.
std::optional<WebhookVerdict> CheckHmacHeader(const WebhookHeaders& headers, const char* lower_name,
                                              const char* display_name, std::string_view body,
                                              std::string_view secret) {
  const std::string* value = Header(headers, lower_name);
  if (value == nullptr) {
    return Verdict(Kind::kUnauthorized, std::string("missing ") + display_name + " header");
  }
  std::optional<Digest> given = ParseSha256Signature(*value);
  if (!given) {
    return Verdict(Kind::kUnauthorized,
                   std::string(display_name) + " is not 'sha256=' followed by 64 hex digits");
  }
  Digest expected = Hmac(secret, body);
  if (CRYPTO_memcmp(given->data(), expected.data(), expected.size()) != 0) {
    return Verdict(Kind::kUnauthorized, std::string(display_name) + " does not match the body");
  }
  return std::nullopt;
}

// Decodes application/x-www-form-urlencoded text ('+' is a space).
std::optional<std::string> FormDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      int hi = HexValue(s[i + 1]);
      int lo = HexValue(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// GitHub can deliver `payload=<url-encoded JSON>` as a form; returns the
// JSON text, or nullopt when the payload field is not valid form encoding.
std::optional<std::string> GitHubFormPayload(std::string_view body) {
  while (!body.empty()) {
    std::size_t amp = body.find('&');
    std::string_view pair = body.substr(0, amp);
    if (pair.substr(0, 8) == "payload=") return FormDecode(pair.substr(8));
    if (amp == std::string_view::npos) break;
    body.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

// The common end of a push: ref filter, deletion, trigger.
WebhookVerdict PushVerdict(std::string event, const nlohmann::json& payload,
                           std::string_view followed_branch, const char* provider) {
  WebhookVerdict v;
  v.event = std::move(event);
  auto ref = payload.find("ref");
  if (ref == payload.end() || !ref->is_string() || ref->get_ref<const std::string&>().empty()) {
    v.kind = Kind::kMalformed;
    v.message = std::string(provider) + " " + v.event + ": payload has no string 'ref'";
    return v;
  }
  v.ref = Printable(ref->get_ref<const std::string&>());
  std::string after;
  if (auto it = payload.find("after"); it != payload.end() && it->is_string()) {
    after = it->get<std::string>();
  }
  v.commit = IsZeroCommit(after) ? "" : CommitForLog(payload.value("after", nlohmann::json()));
  if (!RefIsFollowed(ref->get_ref<const std::string&>(), followed_branch)) {
    v.kind = Kind::kIgnored;
    v.message = std::string(provider) + " " + v.event + " to " + v.ref + " ignored: following " +
                Printable(followed_branch);
    return v;
  }
  bool deleted = IsZeroCommit(after);
  if (auto it = payload.find("deleted"); it != payload.end() && it->is_boolean()) {
    deleted = deleted || it->get<bool>();
  }
  if (deleted) {
    v.kind = Kind::kIgnored;
    v.message = std::string(provider) + " " + v.event + " deletes " + v.ref +
                "; nothing to deploy, the last revision keeps running";
    return v;
  }
  v.kind = Kind::kTrigger;
  v.message = std::string(provider) + " " + v.event + " to " + v.ref + ": ref check triggered";
  return v;
}

nlohmann::json ParseObject(std::string_view text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return nlohmann::json();  // null: malformed
  return j;
}

}  // namespace

const char* WebhookProviderName(WebhookProvider provider) {
  switch (provider) {
    case WebhookProvider::kGitHub:
      return "github";
    case WebhookProvider::kGitLab:
      return "gitlab";
    case WebhookProvider::kGeneric:
      return "generic";
  }
  return "unknown";
}

int WebhookVerdict::http_status() const {
  switch (kind) {
    case Kind::kTrigger:
      return 202;
    case Kind::kIgnored:
      return 200;
    case Kind::kMalformed:
      return 400;
    case Kind::kUnauthorized:
      return 401;
    case Kind::kNotConfigured:
      return 503;
  }
  return 500;
}

bool RefIsFollowed(std::string_view ref, std::string_view followed_branch) {
  if (followed_branch.empty()) return false;
  if (followed_branch.substr(0, 5) == "refs/") return ref == followed_branch;
  constexpr std::string_view kHeads = "refs/heads/";
  return ref.size() == kHeads.size() + followed_branch.size() &&
         ref.substr(0, kHeads.size()) == kHeads && ref.substr(kHeads.size()) == followed_branch;
}

WebhookVerdict VerifyGitHub(const WebhookHeaders& headers, std::string_view body,
                            std::string_view secret, std::string_view followed_branch) {
  if (secret.empty()) {
    return Verdict(Kind::kNotConfigured, "github webhook secret not configured");
  }
  if (Header(headers, "x-hub-signature-256") == nullptr &&
      Header(headers, "x-hub-signature") != nullptr) {
    return Verdict(Kind::kUnauthorized,
                   "only the SHA-1 X-Hub-Signature header was sent; X-Hub-Signature-256 is "
                   "required");
  }
  if (auto bad =
          CheckHmacHeader(headers, "x-hub-signature-256", "X-Hub-Signature-256", body, secret)) {
    return *bad;
  }
  const std::string* event = Header(headers, "x-github-event");
  if (event == nullptr || event->empty()) {
    return Verdict(Kind::kMalformed, "missing X-GitHub-Event header");
  }
  WebhookVerdict v;
  v.event = Printable(*event);
  if (*event != "ping" && *event != "push") {
    v.kind = Kind::kIgnored;
    v.message = "github event '" + v.event + "' ignored; only push triggers a ref check";
    return v;
  }
  std::string form_json;
  std::string_view json_text = body;
  // GitHub's form deliveries are exactly "payload=<url-encoded JSON>"; a
  // JSON body sent with a form Content-Type (curl's default) stays JSON.
  if (const std::string* type = Header(headers, "content-type");
      type != nullptr && type->rfind("application/x-www-form-urlencoded", 0) == 0 &&
      body.substr(0, 8) == "payload=") {
    std::optional<std::string> decoded = GitHubFormPayload(body);
    if (!decoded) {
      v.kind = Kind::kMalformed;
      v.message = "github " + v.event + ": form body has no valid 'payload' field";
      return v;
    }
    form_json = std::move(*decoded);
    json_text = form_json;
  }
  nlohmann::json payload = ParseObject(json_text);
  if (payload.is_null()) {
    v.kind = Kind::kMalformed;
    v.message = "github " + v.event + ": body is not a JSON object";
    return v;
  }
  if (*event == "ping") {
    v.kind = Kind::kIgnored;
    v.message = "github ping received; the webhook is set up";
    return v;
  }
  return PushVerdict(v.event, payload, followed_branch, "github");
}

WebhookVerdict VerifyGitLab(const WebhookHeaders& headers, std::string_view body,
                            std::string_view secret, std::string_view followed_branch) {
  if (secret.empty()) {
    return Verdict(Kind::kNotConfigured, "gitlab webhook secret not configured");
  }
  const std::string* token = Header(headers, "x-gitlab-token");
  if (token == nullptr) return Verdict(Kind::kUnauthorized, "missing X-Gitlab-Token header");
  // Digests of equal length, so that the comparison time says nothing about
  // the secret's length or its prefix.
  Digest given = Sha256(*token);
  Digest expected = Sha256(secret);
  if (CRYPTO_memcmp(given.data(), expected.data(), given.size()) != 0) {
    return Verdict(Kind::kUnauthorized, "X-Gitlab-Token does not match");
  }
  const std::string* event = Header(headers, "x-gitlab-event");
  if (event == nullptr || event->empty()) {
    return Verdict(Kind::kMalformed, "missing X-Gitlab-Event header");
  }
  WebhookVerdict v;
  v.event = Printable(*event);
  if (*event != "Push Hook" && *event != "Tag Push Hook") {
    v.kind = Kind::kIgnored;
    v.message = "gitlab event '" + v.event + "' ignored; only Push Hook triggers a ref check";
    return v;
  }
  nlohmann::json payload = ParseObject(body);
  if (payload.is_null()) {
    v.kind = Kind::kMalformed;
    v.message = "gitlab " + v.event + ": body is not a JSON object";
    return v;
  }
  return PushVerdict(v.event, payload, followed_branch, "gitlab");
}

WebhookVerdict VerifyGeneric(const WebhookHeaders& headers, std::string_view body,
                             std::string_view secret, std::string_view followed_branch) {
  if (secret.empty()) {
    return Verdict(Kind::kNotConfigured, "generic webhook secret not configured");
  }
  if (auto bad = CheckHmacHeader(headers, "x-reconcile-signature-256", "X-Reconcile-Signature-256",
                                 body, secret)) {
    return *bad;
  }
  WebhookVerdict v;
  v.event = "generic";
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    v.kind = Kind::kTrigger;
    v.message = "generic webhook: ref check triggered";
    return v;
  }
  nlohmann::json payload = ParseObject(body);
  if (payload.is_null()) {
    v.kind = Kind::kMalformed;
    v.message = "generic webhook: body is neither empty nor a JSON object";
    return v;
  }
  if (auto it = payload.find("commit"); it != payload.end()) v.commit = CommitForLog(*it);
  auto ref = payload.find("ref");
  if (ref == payload.end()) {
    v.kind = Kind::kTrigger;
    v.message = "generic webhook: ref check triggered";
    return v;
  }
  if (!ref->is_string() || ref->get_ref<const std::string&>().empty()) {
    v.kind = Kind::kMalformed;
    v.message = "generic webhook: 'ref' must be a non-empty string";
    return v;
  }
  std::string full = ref->get<std::string>();
  if (full.rfind("refs/", 0) != 0) full = "refs/heads/" + full;
  v.ref = Printable(full);
  if (!RefIsFollowed(full, followed_branch)) {
    v.kind = Kind::kIgnored;
    v.message =
        "generic webhook for " + v.ref + " ignored: following " + Printable(followed_branch);
    return v;
  }
  v.kind = Kind::kTrigger;
  v.message = "generic webhook for " + v.ref + ": ref check triggered";
  return v;
}

WebhookVerdict VerifyWebhook(WebhookProvider provider, const WebhookHeaders& headers,
                             std::string_view body, std::string_view secret,
                             std::string_view followed_branch) {
  switch (provider) {
    case WebhookProvider::kGitHub:
      return VerifyGitHub(headers, body, secret, followed_branch);
    case WebhookProvider::kGitLab:
      return VerifyGitLab(headers, body, secret, followed_branch);
    case WebhookProvider::kGeneric:
      return VerifyGeneric(headers, body, secret, followed_branch);
  }
  return Verdict(Kind::kNotConfigured, "unknown webhook provider");
}

}  // namespace reconcile::controller
