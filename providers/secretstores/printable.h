// Printable: a store's answer text made safe to quote in an error (control
// characters replaced, cut to `n` characters). Shared by the store clients of
// this folder. Pure; thread-safe.
#pragma once

#include <cstddef>
#include <string>

namespace reconcile::secretstores {

inline std::string Printable(const std::string& s, std::size_t n = 300) {
  std::string out;
  for (unsigned char c : s) {
    if (out.size() >= n) {
      out += "...";
      break;
    }
    out += (c < 0x20 || c == 0x7f) ? ' ' : static_cast<char>(c);
  }
  return out;
}

}  // namespace reconcile::secretstores
