#include "http/token_cache.h"

#include <cctype>
#include <ctime>
#include <memory>

#include <nlohmann/json.hpp>

#include "http/token_source.h"
#include "reconcile/http_retry.h"

namespace reconcile::http {
namespace {

using nlohmann::json;

std::optional<std::int64_t> Seconds(const json& v) {
  if (v.is_number_integer()) return v.get<std::int64_t>();
  if (v.is_number_float()) return static_cast<std::int64_t>(v.get<double>());
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    if (s.empty() || s.size() > 18) return std::nullopt;
    for (char c : s) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    }
    return std::stoll(s);
  }
  return std::nullopt;
}

std::string StringField(const json& j, const char* name) {
  if (!j.is_object()) return "";
  auto it = j.find(name);
  if (it == j.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

}  // namespace

Clock* ClockOrSystem(Clock* clock) {
  if (clock != nullptr) return clock;
  static const std::unique_ptr<Clock> system = NewSystemClock();
  return system.get();
}

std::int64_t UnixNow(Clock* clock) {
  return ParseRfc3339(ClockOrSystem(clock)->NowRfc3339())
      .value_or(static_cast<std::int64_t>(std::time(nullptr)));
}

std::string TrimSlashes(std::string base) {
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base;
}

Result<FetchedToken> ReadTokenAnswer(const Response& response, const std::string& what,
                                     std::int64_t now_unix,
                                     std::initializer_list<std::string_view> secrets) {
  json body = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (response.status < 200 || response.status > 299) {
    std::string detail;
    std::string error = StringField(body, "error");
    std::string description = StringField(body, "error_description");
    if (description.empty()) description = StringField(body, "message");
    if (!error.empty()) detail = error;
    if (!description.empty()) detail += (detail.empty() ? "" : ": ") + description;
    if (detail.empty() && !body.is_object()) detail = response.body;  // plain-text errors
    // Redacted before it is shortened, so that no part of a secret is left.
    std::string message = what + " answered HTTP " + std::to_string(response.status);
    if (!detail.empty()) message += ": " + Printable(Redact(std::move(detail), secrets));
    if (response.status == 429 || response.status >= 500) return Status::Unavailable(message);
    if (response.status >= 400) return Status::Invalid(message);
    return Status::Failed(message);
  }
  if (!body.is_object()) {
    return Status::Failed(what + " answered HTTP " + std::to_string(response.status) +
                          " with a body that is not a JSON object");
  }
  FetchedToken out;
  out.access_token = StringField(body, "access_token");
  if (out.access_token.empty()) {
    return Status::Failed(what + " answered without an access_token");
  }
  std::optional<std::int64_t> lifetime;
  if (auto it = body.find("expires_in"); it != body.end()) lifetime = Seconds(*it);
  if (!lifetime) {
    if (auto it = body.find("expires_on"); it != body.end()) {
      if (auto on = Seconds(*it)) lifetime = *on - now_unix;
    }
  }
  if (lifetime && *lifetime > 0) {
    out.lifetime = std::chrono::seconds(std::min<std::int64_t>(*lifetime, 7 * 24 * 3600));
  }
  return out;
}

Result<std::string> TokenCache::Get(const std::function<Result<FetchedToken>()>& fetch) {
  std::lock_guard<std::mutex> lock(mu_);
  auto now = clock_->Now();
  if (!token_.empty() && now < refresh_at_) return token_;
  Result<FetchedToken> fetched = fetch();
  if (!fetched.ok()) return fetched.status();
  token_ = fetched->access_token;
  auto margin = std::min<std::chrono::seconds>(fetched->lifetime / 10, std::chrono::minutes(5));
  refresh_at_ = clock_->Now() + fetched->lifetime - margin;
  if (fetched->lifetime.count() == 0) {
    std::string token = std::move(token_);
    token_.clear();
    return token;
  }
  return token_;
}

}  // namespace reconcile::http
