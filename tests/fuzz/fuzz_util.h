// Helpers shared by the libFuzzer targets (tests/fuzz/*_fuzz.cc): each
// target feeds one parser of outside input and checks the invariants every
// parser here promises (no crash, no sanitizer report, errors are values,
// a successful parse round-trips). A broken invariant aborts, which
// libFuzzer reports as a crash.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace reconcile::fuzz {

inline std::string_view Bytes(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Aborts with `what` when `ok` is false (a fuzzing finding, not an error).
inline void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
    std::abort();
  }
}

}  // namespace reconcile::fuzz
