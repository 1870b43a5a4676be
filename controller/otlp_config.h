// OtlpConfig: where and how the controller exports its traces, read from
// the standard OpenTelemetry environment variables (the OTel specification's
// "OTLP Exporter Configuration" and "SDK environment variables"):
//   OTEL_EXPORTER_OTLP_TRACES_ENDPOINT  the URL, used exactly as given
//   OTEL_EXPORTER_OTLP_ENDPOINT         base URL; "v1/traces" is appended
//                                       (after a '/' unless it ends in one)
//   OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL  http/protobuf (default), http/json;
//                                       grpc is refused
//   OTEL_EXPORTER_OTLP_[TRACES_]HEADERS key=value,... (values percent-
//                                       decoded; the TRACES_ one wins per key).
//                                       Secret: never logged, never in errors
//   OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT milliseconds per export (10000)
//   OTEL_SERVICE_NAME                   service.name (default "reconcile");
//                                       wins over OTEL_RESOURCE_ATTRIBUTES'
//   OTEL_RESOURCE_ATTRIBUTES            key=value,... percent-decoded; an
//                                       invalid value is ignored whole, with
//                                       a warning
//   OTEL_SDK_DISABLED=true, OTEL_TRACES_EXPORTER=none  no export
// No endpoint set: no export (nullopt), and so no trace ids, no sink.
// Thread-safety: a pure function of the environment it is given.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "reconcile/status.h"

namespace reconcile::controller {

struct OtlpConfig {
  std::string url;                                           // POST here
  bool json = false;                                         // http/json instead of http/protobuf
  std::vector<std::pair<std::string, std::string>> headers;  // secret values
  std::chrono::milliseconds timeout{10000};
  // Resource attributes, service.name first.
  std::vector<std::pair<std::string, std::string>> resource;
};

using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// nullopt when traces are not exported. kInvalid naming the variable for a
// value that cannot be used (a protocol other than http/*, a URL that is
// not http(s)://, a timeout that is not a number, a malformed header list).
// Problems the specification says to ignore go to `warnings`.
Result<std::optional<OtlpConfig>> OtlpConfigFromEnv(const EnvLookup& env,
                                                    std::vector<std::string>* warnings);

// Parses "k=v,k2=v2" (OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_HEADERS):
// keys and values trimmed, values percent-decoded. kInvalid for a member
// without '=', an empty key or a bad %-escape (the message never holds a
// value).
Result<std::vector<std::pair<std::string, std::string>>> ParseKeyValueList(const std::string& text);

}  // namespace reconcile::controller
