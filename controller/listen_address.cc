#include "controller/listen_address.h"

#include <boost/asio/ip/address.hpp>

namespace reconcile::controller {

std::string ListenAddress::ToString() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

Result<ListenAddress> ParseListenAddress(std::string_view text) {
  auto invalid = [&](const std::string& why) {
    return Status::Invalid("listen address '" + std::string(text) + "': " + why +
                           " (want HOST:PORT, [IPV6]:PORT or :PORT)");
  };
  std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return invalid("no port");
  std::string_view host = text.substr(0, colon);
  std::string_view port_text = text.substr(colon + 1);
  if (port_text.empty() || port_text.size() > 5) return invalid("port must be 0..65535");
  unsigned port = 0;
  for (char c : port_text) {
    if (c < '0' || c > '9') return invalid("port must be 0..65535");
    port = port * 10 + static_cast<unsigned>(c - '0');
  }
  if (port > 65535) return invalid("port must be 0..65535");
  ListenAddress out;
  out.port = static_cast<std::uint16_t>(port);
  if (host.empty()) return out;
  bool bracketed = host.front() == '[';
  if (bracketed) {
    if (host.size() < 3 || host.back() != ']') return invalid("unbalanced brackets");
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return invalid("an IPv6 address needs brackets");
  }
  if (!bracketed && host == "localhost") {
    out.host = "127.0.0.1";
    return out;
  }
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(std::string(host), ec);
  if (ec) return invalid("host must be an IP address or localhost");
  if (bracketed != address.is_v6()) return invalid("brackets are only for IPv6 addresses");
  out.host = address.to_string();
  return out;
}

}  // namespace reconcile::controller
