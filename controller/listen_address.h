// ListenAddress: where the controller's HTTP server listens, parsed from
// `--listen` the way Go does:
//
//   "127.0.0.1:8080"  one IPv4 address       "[::1]:8080"  one IPv6 address
//   "0.0.0.0:8080"    all IPv4 interfaces    "[::]:8080"   all IPv6 interfaces
//   ":8080"           all interfaces (IPv6 dual-stack where available, else IPv4)
//   "localhost:8080"  127.0.0.1
//
// Host names other than "localhost" are refused (resolving would block).
// Port 0 asks the kernel for an ephemeral port.
//
// Thread-safety: a plain value; ParseListenAddress is pure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "reconcile/status.h"

namespace reconcile::controller {

struct ListenAddress {
  std::string host;  // an IP literal without brackets; empty for all interfaces
  std::uint16_t port = 0;

  bool all_interfaces() const { return host.empty(); }
  // "127.0.0.1:8080", "[::1]:8080", ":8080".
  std::string ToString() const;
  friend bool operator==(const ListenAddress&, const ListenAddress&) = default;
};

// kInvalid, with a message quoting `text`, when it is not one of the forms
// above or the port is not a number in 0..65535.
Result<ListenAddress> ParseListenAddress(std::string_view text);

}  // namespace reconcile::controller
