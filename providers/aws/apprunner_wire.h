// App Runner's wire protocol (AWS JSON 1.0, from the service model
// tests/testdata/vectors/api-models/aws-apprunner-service-2.json): every
// operation is `POST /` with `Content-Type: application/x-amz-json-1.0`,
// `X-Amz-Target: AppRunner.<Operation>` and the input as a JSON object,
// signed with SigV4 for the signing name "apprunner". Errors come back as
// a JSON object with `__type` ("[namespace#]Name") and `message` (or
// `Message`).
//
// This file builds such requests and reads such answers; it sends nothing
// (the transport is the HTTP client's job) and does not depend on it.
//
// Thread-safety: pure functions of their arguments.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "aws/sigv4.h"
#include "reconcile/status.h"

namespace reconcile::aws {

inline constexpr std::string_view kAppRunnerSigningName = "apprunner";
inline constexpr std::string_view kAppRunnerTargetPrefix = "AppRunner";
inline constexpr std::string_view kAppRunnerContentType = "application/x-amz-json-1.0";

// A request ready for the HTTP client (method, absolute URL, headers in
// order, body).
struct WireRequest {
  std::string method;
  std::string url;
  Headers headers;
  std::string body;
};

// The unsigned request for `operation` (an App Runner operation name such
// as "CreateService": letters only, starting upper-case) with `input` (a
// JSON object, serialized compactly) against `endpoint` (a base URL such as
// AppRunnerEndpoint() returns). Headers: Host, Content-Type, X-Amz-Target.
// Errors (kInvalid): a bad operation name, `input` not an object, an
// endpoint that SplitUrl refuses.
Result<WireRequest> BuildAppRunnerRequest(const std::string& endpoint, const std::string& operation,
                                          const nlohmann::json& input);

// The same request signed for `region` at `time` (X-Amz-Date,
// X-Amz-Security-Token when the credentials have a token, Authorization
// appended). Errors: those of BuildAppRunnerRequest and of Sign.
Result<WireRequest> SignedAppRunnerRequest(const std::string& endpoint,
                                           const std::string& operation,
                                           const nlohmann::json& input,
                                           const Credentials& credentials,
                                           const std::string& region,
                                           std::chrono::system_clock::time_point time);

// Reads an App Runner answer. 2xx: the body as a JSON object (an empty
// body is {}), or kUnavailable when it is not JSON. Otherwise an error
// Status "App Runner <operation>: <Type>: <message> (HTTP <status>)",
// where Type is `__type` without any "prefix#" (or the X-Amzn-ErrorType
// header's name, `error_type_header`, when the body has none), and message
// the body's `message` / `Message`. The code says the retry policy:
//   ThrottlingException, TooManyRequestsException, HTTP 429, any 5xx ->
//       kUnavailable (retry with backoff);
//   ResourceNotFoundException -> kNotFound;
//   InvalidStateException -> kConflict;
//   InvalidRequestException, ValidationException -> kInvalid;
//   any other 4xx -> kFailed (permanent).
// A body that is not an AWS JSON error still gives that status; the
// message then says so and quotes no more than 200 printable characters of
// it. The cloud's message is kept (control characters replaced, at most
// 1,000 characters); every occurrence of the credentials' secret key or
// session token (when `redact` is given) is replaced by "[redacted]".
Result<nlohmann::json> ParseAppRunnerAnswer(std::string_view operation, long http_status,
                                            std::string_view body,
                                            std::string_view error_type_header = "",
                                            const Credentials* redact = nullptr);

// The error part alone (ParseAppRunnerAnswer for a non-2xx status).
Status AppRunnerError(std::string_view operation, long http_status, std::string_view body,
                      std::string_view error_type_header = "", const Credentials* redact = nullptr);

}  // namespace reconcile::aws
