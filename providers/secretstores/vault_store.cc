#include "secretstores/vault_store.h"

#include <cstdlib>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "secretstores/printable.h"

namespace reconcile::secretstores {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr auto kRenewBefore = std::chrono::seconds(30);

// A one-value file (a token, a role_id, a secret_id); trailing whitespace
// stripped. Errors name the file, never its content.
Result<std::string> ReadValueFile(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Invalid("Vault " + what + " file " + path + " cannot be read");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string v = ss.str();
  while (!v.empty() &&
         (v.back() == '\n' || v.back() == '\r' || v.back() == ' ' || v.back() == '\t')) {
    v.pop_back();
  }
  if (v.empty()) return Status::Invalid("Vault " + what + " file " + path + " is empty");
  return v;
}

// Vault's {"errors": [...]} as one line (without the token).
std::string Errors(const std::string& body, const std::string& token) {
  json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  std::string out;
  if (doc.is_object()) {
    if (auto it = doc.find("errors"); it != doc.end() && it->is_array()) {
      for (const json& e : *it) {
        if (!e.is_string()) continue;
        out += (out.empty() ? "" : "; ") + e.get<std::string>();
      }
    }
  }
  if (!token.empty()) {
    for (size_t at; (at = out.find(token)) != std::string::npos;) {
      out.replace(at, token.size(), "[redacted]");
    }
  }
  return Printable(out);
}

class VaultStore : public SecretStore {
 public:
  explicit VaultStore(VaultOptions options) : o_(std::move(options)) {
    while (!o_.address.empty() && o_.address.back() == '/') o_.address.pop_back();
    if (o_.token_file.empty()) {
      if (const char* home = std::getenv("HOME"))
        o_.token_file = std::string(home) + "/.vault-token";
    }
    if (!o_.client) {
      http::ClientOptions c;
      c.ca_file = o_.ca_file;
      c.max_attempts = 2;  // a sealed Vault answers 503 at once: say so soon
      c.base_backoff = std::chrono::milliseconds(200);
      c.max_backoff = std::chrono::milliseconds(1000);
      c.max_retry_after = std::chrono::milliseconds(2000);
      o_.client = http::MakeCurlClient(c);
    }
  }

  Result<std::string> Get(const SecretRef& ref, std::stop_token stop) override {
    const std::string who = SecretRefText(ref) + ": Vault";
    if (o_.address.empty()) {
      return Status::Invalid(who + ": no Vault address (set VAULT_ADDR or --vault-addr)");
    }
    std::string url = o_.address + "/v1/" + ref.mount + "/data/" + ref.name;
    if (!ref.version.empty()) url += "?version=" + ref.version;
    const std::string shown = "GET /v1/" + ref.mount + "/data/" + ref.name +
                              (ref.version.empty() ? "" : "?version=" + ref.version);
    bool retried = false;
    while (true) {
      auto token = Token(stop, /*force=*/retried);
      if (!token.ok()) return token.status().WithContext(who);
      http::Request req{"GET", url, Headers(*token), "", std::chrono::milliseconds(30000)};
      auto resp = o_.client->Send(req, stop);
      if (!resp.ok()) return Status(resp.status().code(), who + ": " + resp.status().message());
      const std::string errors = Errors(resp->body, *token);
      const std::string status = " (" + shown + ": HTTP " + std::to_string(resp->status) +
                                 (errors.empty() ? "" : ": " + errors) + ")";
      if (resp->status == 403 && !retried) {
        // An expired or revoked token: log in (or read the token file) again, once.
        retried = true;
        continue;
      }
      if (resp->status == 403) {
        return Status::Invalid(who + ": permission denied: the token may not read this path" +
                               status);
      }
      json doc = json::parse(resp->body, nullptr, /*allow_exceptions=*/false);
      const json* data = nullptr;
      const json* metadata = nullptr;
      if (doc.is_object() && doc.contains("data") && doc["data"].is_object()) {
        const json& d = doc["data"];
        if (d.contains("data") && d["data"].is_object()) data = &d["data"];
        if (d.contains("metadata") && d["metadata"].is_object()) metadata = &d["metadata"];
      }
      std::string version_text =
          ref.version.empty() ? "the latest version" : "version " + ref.version;
      if (metadata != nullptr && data == nullptr) {
        // KV v2: a deleted or destroyed version answers its metadata only.
        if (metadata->value("destroyed", false)) {
          return Status::Invalid(who + ": " + version_text + " of " + ref.mount + "/" + ref.name +
                                 " was destroyed" + status);
        }
        std::string deleted =
            metadata->contains("deletion_time") && (*metadata)["deletion_time"].is_string()
                ? (*metadata)["deletion_time"].get<std::string>()
                : "";
        if (!deleted.empty()) {
          return Status::Invalid(who + ": " + version_text + " of " + ref.mount + "/" + ref.name +
                                 " was deleted at " + Printable(deleted, 40) +
                                 " (undelete it, or name another version)" + status);
        }
      }
      if (resp->status == 404) {
        return Status::Invalid(who + ": no secret " + ref.mount + "/" + ref.name +
                               (ref.version.empty() ? "" : " with version " + ref.version) +
                               " (is " + ref.mount + " a KV version 2 mount?)" + status);
      }
      if (resp->status == 503) {
        return Status::Unavailable(who + ": Vault is sealed or unavailable" + status);
      }
      if (resp->status < 200 || resp->status > 299) {
        Code code =
            resp->status == 429 || resp->status >= 500 ? Code::kUnavailable : Code::kInvalid;
        return Status(code, who + ": the read failed" + status);
      }
      if (data == nullptr) {
        return Status::Unavailable(who + ": the answer has no data.data object (is " + ref.mount +
                                   " a KV version 2 mount?)" + status);
      }
      auto it = data->find(ref.key);
      if (it == data->end()) {
        std::string keys;
        for (const auto& [k, v] : data->items()) keys += (keys.empty() ? "" : ", ") + k;
        return Status::Invalid(who + ": " + ref.mount + "/" + ref.name + " has no key '" + ref.key +
                               "' (its keys: " + (keys.empty() ? "none" : Printable(keys)) + ")");
      }
      if (it->is_string()) return it->get<std::string>();
      if (it->is_number() || it->is_boolean()) return it->dump();
      return Status::Invalid(who + ": key '" + ref.key + "' of " + ref.mount + "/" + ref.name +
                             " is not a string, number or boolean");
    }
  }

 private:
  std::vector<std::pair<std::string, std::string>> Headers(const std::string& token) const {
    std::vector<std::pair<std::string, std::string>> h = {{"X-Vault-Token", token},
                                                          {"X-Vault-Request", "true"}};
    if (!o_.vault_namespace.empty()) h.emplace_back("X-Vault-Namespace", o_.vault_namespace);
    return h;
  }

  bool AppRole() const { return !o_.role_id_file.empty() || !o_.secret_id_file.empty(); }

  // The token to send; `force`: the last one was refused (403).
  Result<std::string> Token(std::stop_token stop, bool force) {
    std::lock_guard<std::mutex> lock(mu_);
    if (AppRole()) {
      if (!force && !token_.empty() && (!expires_ || o_.now() < *expires_ - kRenewBefore)) {
        return token_;
      }
      return Login(stop);
    }
    if (!o_.token.empty()) return o_.token;
    if (!force && !token_.empty()) return token_;
    if (o_.token_file.empty()) {
      return Status::Invalid(
          "no Vault token (set VAULT_TOKEN, --vault-token-file, or AppRole's "
          "--vault-approle-role-id-file and --vault-approle-secret-id-file)");
    }
    auto t = ReadValueFile(o_.token_file, "token");
    if (!t.ok()) {
      return Status::Invalid(t.status().message() +
                             " (set VAULT_TOKEN, --vault-token-file, or AppRole's "
                             "--vault-approle-role-id-file and --vault-approle-secret-id-file)");
    }
    token_ = *t;
    return token_;
  }

  // POST /v1/auth/<mount>/login {role_id, secret_id}; under mu_.
  Result<std::string> Login(std::stop_token stop) {
    const std::string where = "AppRole login (POST /v1/auth/" + o_.approle_mount + "/login)";
    if (o_.role_id_file.empty() || o_.secret_id_file.empty()) {
      return Status::Invalid(where +
                             ": set both --vault-approle-role-id-file and "
                             "--vault-approle-secret-id-file");
    }
    auto role = ReadValueFile(o_.role_id_file, "AppRole role_id");
    if (!role.ok()) return role.status();
    auto secret = ReadValueFile(o_.secret_id_file, "AppRole secret_id");
    if (!secret.ok()) return secret.status();
    json body = {{"role_id", *role}, {"secret_id", *secret}};
    http::Request req{"POST",
                      o_.address + "/v1/auth/" + o_.approle_mount + "/login",
                      {},
                      body.dump(),
                      std::chrono::milliseconds(30000)};
    req.headers = {{"Content-Type", "application/json"}, {"X-Vault-Request", "true"}};
    if (!o_.vault_namespace.empty())
      req.headers.emplace_back("X-Vault-Namespace", o_.vault_namespace);
    auto resp = o_.client->Send(req, stop);
    if (!resp.ok()) return Status(resp.status().code(), where + ": " + resp.status().message());
    std::string errors = Errors(resp->body, *secret);
    if (resp->status != 200) {
      Code code = resp->status == 429 || resp->status >= 500 ? Code::kUnavailable : Code::kInvalid;
      std::string why = resp->status == 503 ? ": Vault is sealed or unavailable" : ": refused";
      return Status(code, where + why + " (HTTP " + std::to_string(resp->status) +
                              (errors.empty() ? "" : ": " + errors) + ")");
    }
    json doc = json::parse(resp->body, nullptr, /*allow_exceptions=*/false);
    if (!doc.is_object() || !doc.contains("auth") || !doc["auth"].is_object() ||
        !doc["auth"].contains("client_token") || !doc["auth"]["client_token"].is_string()) {
      return Status::Unavailable(where + ": the answer has no auth.client_token");
    }
    token_ = doc["auth"]["client_token"].get<std::string>();
    expires_.reset();
    if (auto d = doc["auth"].find("lease_duration"); d != doc["auth"].end() && d->is_number()) {
      long long seconds = d->get<long long>();
      if (seconds > 0) expires_ = o_.now() + std::chrono::seconds(seconds);
    }
    return token_;
  }

  VaultOptions o_;
  std::mutex mu_;
  std::string token_;
  std::optional<Clock::time_point> expires_;
};

}  // namespace

std::unique_ptr<SecretStore> NewVaultStore(VaultOptions options) {
  return std::make_unique<VaultStore>(std::move(options));
}

}  // namespace reconcile::secretstores
