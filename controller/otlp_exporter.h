// The OTLP trace exporter: a queued EventSink (sink name "otlp") that keeps
// a TraceBuilder (trace_builder.h) over the stream and, when a pass
// finishes, sends its spans in one ExportTraceServiceRequest over OTLP/HTTP
// (POST OtlpConfig::url; binary protobuf, or OTLP/JSON) with the headers of
// OtlpConfig. Answers, as the OTLP specification has them: 2xx exported
// (a partial success is counted as exported); 429, 502, 503, 504 and
// transport failures kUnavailable (the bus retries with backoff, sending
// the same request again); any other status kFailed (the trace is let go).
// Errors name the URL without its query and never hold a header value.
// Thread-safety: Deliver is called by the bus's one worker for this sink.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "event_bus.h"
#include "otlp_config.h"
#include "trace_builder.h"

namespace reconcile::http {
class Client;
}

namespace reconcile::controller {

// The request's body in OTLP binary protobuf or OTLP/JSON (ids as hex,
// enums as integers, 64-bit integers as strings, lowerCamelCase keys).
// `resource` as OtlpConfig::resource. kInvalid for a span id that is not hex.
Result<std::string> EncodeOtlpProtobuf(
    const std::vector<SpanData>& spans,
    const std::vector<std::pair<std::string, std::string>>& resource);
std::string EncodeOtlpJson(const std::vector<SpanData>& spans,
                           const std::vector<std::pair<std::string, std::string>>& resource);

class OtlpSink final : public EventSink {
 public:
  // `client`: nullptr for the real one (libcurl; plain http allowed to the
  // endpoint's host, since the operator named it).
  explicit OtlpSink(OtlpConfig config, std::shared_ptr<http::Client> client = nullptr);
  ~OtlpSink() override;
  Status Deliver(const ControllerEvent& event, std::stop_token stop) override;

 private:
  OtlpConfig config_;
  std::shared_ptr<http::Client> client_;
  TraceBuilder builder_;
  // The encoded trace of the kPassFinished being delivered (by sequence):
  // a retry sends the same bytes.
  std::uint64_t pending_sequence_ = 0;
  std::string pending_body_;
};

}  // namespace reconcile::controller
