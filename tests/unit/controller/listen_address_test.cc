#include "controller/listen_address.h"

#include <doctest/doctest.h>

namespace reconcile::controller {
namespace {

TEST_CASE("listen address: accepted forms") {
  struct Row {
    const char* text;
    const char* host;
    std::uint16_t port;
    const char* canonical;
  };
  const Row rows[] = {
      {"127.0.0.1:8080", "127.0.0.1", 8080, "127.0.0.1:8080"},
      {"0.0.0.0:8080", "0.0.0.0", 8080, "0.0.0.0:8080"},
      {":8080", "", 8080, ":8080"},
      {"[::1]:8080", "::1", 8080, "[::1]:8080"},
      {"[::]:9", "::", 9, "[::]:9"},
      {"localhost:80", "127.0.0.1", 80, "127.0.0.1:80"},
      {"127.0.0.1:0", "127.0.0.1", 0, "127.0.0.1:0"},
      {":65535", "", 65535, ":65535"},
  };
  for (const Row& row : rows) {
    SUBCASE(row.text) {
      auto parsed = ParseListenAddress(row.text);
      REQUIRE_MESSAGE(parsed.ok(), parsed.status().ToString());
      CHECK(parsed->host == row.host);
      CHECK(parsed->port == row.port);
      CHECK(parsed->ToString() == row.canonical);
      CHECK(parsed->all_interfaces() == (std::string(row.host).empty()));
    }
  }
}

TEST_CASE("listen address: refused forms") {
  for (const char* text :
       {"", "8080", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:80a",
        "127.0.0.1:123456", "::1:8080", "[::1:8080", "[127.0.0.1]:80", "example.com:80", "[]:80",
        "256.0.0.1:80", " 127.0.0.1:80"}) {
    SUBCASE(text) {
      auto parsed = ParseListenAddress(text);
      CHECK_FALSE(parsed.ok());
      CHECK(parsed.status().code() == Code::kInvalid);
      CHECK(parsed.status().message().find("listen address") != std::string::npos);
    }
  }
}

}  // namespace
}  // namespace reconcile::controller
