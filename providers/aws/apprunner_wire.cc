#include "aws/apprunner_wire.h"

#include <algorithm>

namespace reconcile::aws {
namespace {

constexpr size_t kMaxMessage = 1000;
constexpr size_t kMaxQuote = 200;

bool IsOperationName(const std::string& s) {
  return !s.empty() && s.size() <= 64 && s.front() >= 'A' && s.front() <= 'Z' &&
         std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); });
}

void ReplaceAll(std::string& s, const std::string& needle, std::string_view with) {
  if (needle.empty()) return;
  for (size_t pos = s.find(needle); pos != std::string::npos;
       pos = s.find(needle, pos + with.size())) {
    s.replace(pos, needle.size(), with);
  }
}

// Control characters (and DEL) become spaces; at most `max` bytes are kept.
std::string Printable(std::string_view s, size_t max) {
  std::string out;
  for (char c : s) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    unsigned char u = static_cast<unsigned char>(c);
    out.push_back(u < 0x20 || u == 0x7f ? ' ' : c);
  }
  return out;
}

std::string Redacted(std::string s, const Credentials* redact) {
  if (redact != nullptr) {
    ReplaceAll(s, redact->secret_access_key, "[redacted]");
    ReplaceAll(s, redact->session_token, "[redacted]");
  }
  return s;
}

// "com.amazonaws.apprunner#InvalidRequestException" -> "InvalidRequestException";
// an X-Amzn-ErrorType value may also carry ":http://..." after the name.
std::string ErrorName(std::string_view type) {
  size_t colon = type.find(':');
  if (colon != std::string_view::npos) type = type.substr(0, colon);
  size_t hash = type.rfind('#');
  if (hash != std::string_view::npos) type = type.substr(hash + 1);
  std::string out;
  for (char c : type) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
        c == '.') {
      out.push_back(c);
    }
    if (out.size() >= 100) break;
  }
  return out;
}

Code CodeFor(long http_status, const std::string& name) {
  if (name == "ThrottlingException" || name == "TooManyRequestsException" || http_status == 429 ||
      http_status >= 500) {
    return Code::kUnavailable;
  }
  if (name == "ResourceNotFoundException") return Code::kNotFound;
  if (name == "InvalidStateException") return Code::kConflict;
  if (name == "InvalidRequestException" || name == "ValidationException") return Code::kInvalid;
  return Code::kFailed;
}

}  // namespace

Result<WireRequest> BuildAppRunnerRequest(const std::string& endpoint, const std::string& operation,
                                          const nlohmann::json& input) {
  if (!IsOperationName(operation)) {
    return Status::Invalid("App Runner: '" + Printable(operation, 64) +
                           "' is not an operation name (such as CreateService)");
  }
  if (!input.is_object()) {
    return Status::Invalid("App Runner " + operation + ": the input must be a JSON object");
  }
  std::string base = endpoint;
  while (!base.empty() && base.back() == '/') base.pop_back();
  auto parts = SplitUrl(base + "/");
  if (!parts.ok()) return parts.status().WithContext("App Runner endpoint");
  if (parts->target.find('?') != std::string::npos) {
    return Status::Invalid("App Runner endpoint: the URL has a query; give the base URL only");
  }
  WireRequest req;
  req.method = "POST";
  req.url = base + "/";
  req.headers = {{"Host", parts->host_header},
                 {"Content-Type", std::string(kAppRunnerContentType)},
                 {"X-Amz-Target", std::string(kAppRunnerTargetPrefix) + "." + operation}};
  // Invalid UTF-8 in a string is replaced rather than thrown.
  req.body = input.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return req;
}

Result<WireRequest> SignedAppRunnerRequest(const std::string& endpoint,
                                           const std::string& operation,
                                           const nlohmann::json& input,
                                           const Credentials& credentials,
                                           const std::string& region,
                                           std::chrono::system_clock::time_point time) {
  auto req = BuildAppRunnerRequest(endpoint, operation, input);
  if (!req.ok()) return req.status();
  auto parts = SplitUrl(req->url);
  if (!parts.ok()) return parts.status();
  SignRequest to_sign{req->method, parts->target, req->headers, req->body, ""};
  auto sig = Sign(to_sign, credentials, {region, std::string(kAppRunnerSigningName), time});
  if (!sig.ok()) return sig.status().WithContext("App Runner " + operation);
  for (auto& h : sig->headers_to_add) req->headers.push_back(std::move(h));
  return req;
}

Status AppRunnerError(std::string_view operation, long http_status, std::string_view body,
                      std::string_view error_type_header, const Credentials* redact) {
  std::string name;
  std::string message;
  bool aws_json = false;
  nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_discarded() && doc.is_object()) {
    if (auto it = doc.find("__type"); it != doc.end() && it->is_string()) {
      name = ErrorName(it->get<std::string>());
      aws_json = true;
    }
    for (const char* key : {"message", "Message"}) {
      if (auto it = doc.find(key); it != doc.end() && it->is_string()) {
        message = it->get<std::string>();
        aws_json = true;
        break;
      }
    }
  }
  if (name.empty() && !error_type_header.empty()) name = ErrorName(error_type_header);

  message = Redacted(std::move(message), redact);
  const std::string raw = Redacted(std::string(body), redact);
  std::string text = "App Runner " + std::string(operation) + ": ";
  if (!name.empty()) text += name;
  if (!message.empty()) {
    text += (name.empty() ? "" : ": ") + Printable(message, kMaxMessage);
  } else if (!aws_json) {
    std::string quoted = Printable(raw, kMaxQuote);
    text += std::string(name.empty() ? "" : ": ") + "the answer is not an AWS JSON error" +
            (quoted.empty() ? std::string(" (empty body)") : " (body: " + quoted + ")");
  } else if (name.empty()) {
    text += "an error without a type or message";
  }
  text += " (HTTP " + std::to_string(http_status) + ")";
  return Status(CodeFor(http_status, name), Redacted(std::move(text), redact));
}

Result<nlohmann::json> ParseAppRunnerAnswer(std::string_view operation, long http_status,
                                            std::string_view body,
                                            std::string_view error_type_header,
                                            const Credentials* redact) {
  if (http_status < 200 || http_status > 299) {
    return AppRunnerError(operation, http_status, body, error_type_header, redact);
  }
  if (body.empty()) return nlohmann::json::object();
  nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return Status::Unavailable("App Runner " + std::string(operation) + ": HTTP " +
                               std::to_string(http_status) +
                               " with a body that is not a JSON object");
  }
  return doc;
}

}  // namespace reconcile::aws
