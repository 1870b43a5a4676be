#include "reconcile/trace_context.h"

#include <cstdint>
#include <random>

namespace reconcile {

namespace {

std::string RandomHex(std::size_t digits) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* kHex = "0123456789abcdef";
  for (;;) {
    std::string out;
    out.reserve(digits);
    while (out.size() < digits) {
      std::uint64_t v = rng();
      for (int i = 0; i < 16 && out.size() < digits; ++i, v >>= 4) out += kHex[v & 0xf];
    }
    if (IsTraceId(out, digits)) return out;
  }
}

}  // namespace

TraceContext NewTraceContext() { return TraceContext{RandomHex(32), RandomHex(16)}; }

std::string NewSpanId() { return RandomHex(16); }

std::string Traceparent(const TraceContext& context, const std::string& span_id) {
  if (!context.traced()) return "";
  return "00-" + context.trace_id + "-" + span_id + "-01";
}

bool IsTraceId(const std::string& id, std::size_t digits) {
  if (id.size() != digits) return false;
  bool nonzero = false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    nonzero = nonzero || c != '0';
  }
  return nonzero;
}

}  // namespace reconcile
