// TraceContext: the W3C Trace Context ids of one traced pass, so that what
// the engine does (each change) can be named as the parent of a provider's
// outgoing HTTP requests (the `traceparent` header) and the controller's
// trace exporter sends spans with the same ids. Only ids live here: no
// exporting, no clock. An empty trace_id means "not traced" (no header, no
// span ids in events).
// Thread-safety: values; the generators are safe from any thread.
#pragma once

#include <string>

namespace reconcile {

struct TraceContext {
  std::string trace_id;  // 32 lowercase hex digits, not all zero; "" when not traced
  std::string span_id;   // 16 lowercase hex digits: the pass's root span
  bool traced() const { return !trace_id.empty(); }
};

// Fresh random ids (never all zero).
TraceContext NewTraceContext();
std::string NewSpanId();
// "00-<trace_id>-<span_id>-01" (version 00, sampled); "" when !context.traced().
std::string Traceparent(const TraceContext& context, const std::string& span_id);
// True for `digits` lowercase hex digits, not all zero (a valid W3C id).
bool IsTraceId(const std::string& id, std::size_t digits);

}  // namespace reconcile
