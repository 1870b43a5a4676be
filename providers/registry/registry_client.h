// A client of the registry HTTP API v2 (the OCI distribution spec) as a
// RegistryClient (image_builder.h): HEAD /v2/<repository>/manifests/<tag>,
// answering the registry's challenges:
//   WWW-Authenticate: Basic realm=...       retried with Basic credentials
//   WWW-Authenticate: Bearer realm=...,service=...,scope=...
//                                           a token is fetched from the realm
//                                           (GET ?service=&scope=, with Basic
//                                           credentials when given) and the
//                                           HEAD retried with it
// HTTPS (system CAs, the host verified) unless the Registry is `insecure`
// (plain HTTP). Credentials are sent over plain HTTP only to loopback
// registries and realms. The credentials never appear in a Status.
//
// Thread-safety: no mutable state; every call opens its own connections.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "reconcile/image_builder.h"

namespace reconcile::registry {

struct RegistryClientOptions {
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};  // per HTTP exchange
  std::string ca_file;  // extra CA bundle (tests); empty: the system's
};

std::unique_ptr<RegistryClient> NewRegistryClient(RegistryClientOptions options = {});

// The parameters of a WWW-Authenticate challenge ("Bearer realm=\"x\",
// service=\"y\"" -> scheme "bearer", {realm: x, service: y}); exposed for
// tests.
struct Challenge {
  std::string scheme;  // lower case: "basic", "bearer"
  std::map<std::string, std::string> params;
};
Challenge ParseChallenge(const std::string& header);

}  // namespace reconcile::registry
