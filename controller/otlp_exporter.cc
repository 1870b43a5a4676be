#include "otlp_exporter.h"

#include <chrono>

#include <nlohmann/json.hpp>

#include "http/http_client.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"

namespace reconcile::controller {

namespace {

namespace otlp_common = opentelemetry::proto::common::v1;
namespace otlp_trace = opentelemetry::proto::trace::v1;
namespace otlp_collector = opentelemetry::proto::collector::trace::v1;

constexpr const char* kScopeName = "reconcile";

std::uint64_t UnixNanos(std::chrono::system_clock::time_point t) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
}

std::optional<std::string> HexToBytes(const std::string& hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string out;
  out.reserve(hex.size() / 2);
  auto digit = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    int hi = digit(hex[i]), lo = digit(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
  }
  return out;
}

void SetValue(otlp_common::AnyValue* out, const SpanData::Value& v) {
  if (const auto* s = std::get_if<std::string>(&v)) {
    out->set_string_value(*s);
  } else if (const auto* i = std::get_if<std::int64_t>(&v)) {
    out->set_int_value(*i);
  } else {
    out->set_bool_value(std::get<bool>(v));
  }
}

nlohmann::json JsonValue(const SpanData::Value& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return {{"stringValue", *s}};
  if (const auto* i = std::get_if<std::int64_t>(&v)) return {{"intValue", std::to_string(*i)}};
  return {{"boolValue", std::get<bool>(v)}};
}

// The host of an http(s) URL (no port, no brackets), lower case.
std::string HostOf(const std::string& url) {
  std::size_t start = url.find("://");
  if (start == std::string::npos) return "";
  start += 3;
  std::size_t end = url.find_first_of("/?#", start);
  std::string authority = url.substr(start, end == std::string::npos ? end : end - start);
  if (auto at = authority.rfind('@'); at != std::string::npos) authority = authority.substr(at + 1);
  std::string host;
  if (!authority.empty() && authority[0] == '[') {
    host = authority.substr(1, authority.find(']') - 1);
  } else {
    host = authority.substr(0, authority.find(':'));
  }
  for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return host;
}

}  // namespace

Result<std::string> EncodeOtlpProtobuf(
    const std::vector<SpanData>& spans,
    const std::vector<std::pair<std::string, std::string>>& resource) {
  otlp_collector::ExportTraceServiceRequest request;
  otlp_trace::ResourceSpans* rs = request.add_resource_spans();
  for (const auto& [k, v] : resource) {
    otlp_common::KeyValue* kv = rs->mutable_resource()->add_attributes();
    kv->set_key(k);
    kv->mutable_value()->set_string_value(v);
  }
  otlp_trace::ScopeSpans* ss = rs->add_scope_spans();
  ss->mutable_scope()->set_name(kScopeName);
  for (const SpanData& s : spans) {
    otlp_trace::Span* span = ss->add_spans();
    auto trace_id = HexToBytes(s.trace_id);
    auto span_id = HexToBytes(s.span_id);
    auto parent = HexToBytes(s.parent_span_id);
    if (!trace_id || trace_id->size() != 16 || !span_id || span_id->size() != 8 || !parent ||
        (!parent->empty() && parent->size() != 8)) {
      return Status::Invalid("otlp: span '" + s.name + "' has an invalid trace or span id");
    }
    span->set_trace_id(*trace_id);
    span->set_span_id(*span_id);
    if (!parent->empty()) span->set_parent_span_id(*parent);
    span->set_name(s.name);
    span->set_kind(otlp_trace::Span::SPAN_KIND_INTERNAL);
    span->set_start_time_unix_nano(UnixNanos(s.start));
    span->set_end_time_unix_nano(UnixNanos(s.end));
    for (const auto& [k, v] : s.attributes) {
      otlp_common::KeyValue* kv = span->add_attributes();
      kv->set_key(k);
      SetValue(kv->mutable_value(), v);
    }
    if (s.status != SpanData::StatusCode::kUnset) {
      span->mutable_status()->set_code(static_cast<otlp_trace::Status::StatusCode>(s.status));
      if (!s.status_message.empty()) span->mutable_status()->set_message(s.status_message);
    }
  }
  std::string out;
  if (!request.SerializeToString(&out)) return Status::Internal("otlp: cannot serialize");
  return out;
}

std::string EncodeOtlpJson(const std::vector<SpanData>& spans,
                           const std::vector<std::pair<std::string, std::string>>& resource) {
  using nlohmann::json;
  json attributes = json::array();
  for (const auto& [k, v] : resource) {
    attributes.push_back({{"key", k}, {"value", {{"stringValue", v}}}});
  }
  json out_spans = json::array();
  for (const SpanData& s : spans) {
    json span = {{"traceId", s.trace_id},
                 {"spanId", s.span_id},
                 {"name", s.name},
                 {"kind", 1},  // SPAN_KIND_INTERNAL
                 {"startTimeUnixNano", std::to_string(UnixNanos(s.start))},
                 {"endTimeUnixNano", std::to_string(UnixNanos(s.end))}};
    if (!s.parent_span_id.empty()) span["parentSpanId"] = s.parent_span_id;
    json attrs = json::array();
    for (const auto& [k, v] : s.attributes) attrs.push_back({{"key", k}, {"value", JsonValue(v)}});
    span["attributes"] = std::move(attrs);
    if (s.status != SpanData::StatusCode::kUnset) {
      json status = {{"code", static_cast<int>(s.status)}};
      if (!s.status_message.empty()) status["message"] = s.status_message;
      span["status"] = std::move(status);
    }
    out_spans.push_back(std::move(span));
  }
  json request = {
      {"resourceSpans",
       json::array({{{"resource", {{"attributes", std::move(attributes)}}},
                     {"scopeSpans", json::array({{{"scope", {{"name", kScopeName}}},
                                                  {"spans", std::move(out_spans)}}})}}})}};
  return request.dump();
}

OtlpSink::OtlpSink(OtlpConfig config, std::shared_ptr<http::Client> client)
    : config_(std::move(config)), client_(std::move(client)) {
  if (!client_) {
    http::ClientOptions options;
    options.max_attempts = 1;  // the bus retries
    const std::string host = HostOf(config_.url);
    if (config_.url.rfind("http://", 0) == 0 && !host.empty()) {
      options.plain_http_hosts.push_back(host);
    }
    client_ = http::MakeCurlClient(std::move(options));
  }
}

OtlpSink::~OtlpSink() = default;

Status OtlpSink::Deliver(const ControllerEvent& event, std::stop_token stop) {
  if (event.kind != ControllerEvent::Kind::kPassFinished || event.sequence != pending_sequence_ ||
      pending_sequence_ == 0) {
    std::optional<std::vector<SpanData>> spans = builder_.Add(event);
    if (!spans) return Status::Ok();
    if (config_.json) {
      pending_body_ = EncodeOtlpJson(*spans, config_.resource);
    } else {
      Result<std::string> body = EncodeOtlpProtobuf(*spans, config_.resource);
      if (!body.ok()) return body.status();
      pending_body_ = std::move(*body);
    }
    pending_sequence_ = event.sequence;
  }
  http::Request request;
  request.method = "POST";
  request.url = config_.url;
  request.timeout = config_.timeout;
  request.headers = config_.headers;
  request.headers.emplace_back("Content-Type",
                               config_.json ? "application/json" : "application/x-protobuf");
  request.body = pending_body_;
  Result<http::Response> response = client_->Send(request, stop);
  const std::string what = "otlp: POST " + http::UrlForMessage(config_.url);
  if (!response.ok()) {
    if (response.status().code() == Code::kUnavailable) {
      return Status::Unavailable(what + ": " + response.status().message());
    }
    pending_sequence_ = 0;
    return Status::Failed(what + ": " + response.status().message());
  }
  const long code = response->status;
  if (code >= 200 && code < 300) {
    pending_sequence_ = 0;
    pending_body_.clear();
    return Status::Ok();
  }
  const std::string answer = what + ": HTTP " + std::to_string(code);
  if (code == 429 || code == 502 || code == 503 || code == 504) {
    return Status::Unavailable(answer);
  }
  pending_sequence_ = 0;
  return Status::Failed(answer);
}

}  // namespace reconcile::controller
