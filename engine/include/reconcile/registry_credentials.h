// Registry credentials: the user name and password of a Registry, read from
// the engine's environment as <credentialsEnvPrefix>_USERNAME and
// <credentialsEnvPrefix>_PASSWORD, and which Registry an image reference
// belongs to (for pulls of image agents from private registries).
//
// A RegistryCredentials value holds a secret: it is never logged, never put
// in a Status, a plan, state or the JSON form of any request. Functions are
// thread-safe (they read the environment only).
#pragma once

#include <optional>
#include <string>

#include "reconcile/model.h"
#include "reconcile/status.h"

namespace reconcile {

struct RegistryCredentials {
  std::string server;  // the registry host, e.g. "127.0.0.1:5000"
  std::string username;
  std::string password;  // secret
  // "<PREFIX>_USERNAME and <PREFIX>_PASSWORD", for error messages.
  std::string variables;
};

// nullopt when the registry declares no credentialsEnvPrefix; kInvalid,
// naming the registry and both variables, when one of them is unset or empty.
Result<std::optional<RegistryCredentials>> CredentialsFromEnvironment(const Registry& registry);

// The registry host of an image reference ("127.0.0.1:5000/a/b:1" ->
// "127.0.0.1:5000"; "hello:1" and "library/x" -> "docker.io").
std::string RegistryHostOf(const std::string& image_reference);

// The Registry of the tree whose url is the host of `image_reference`, or
// null.
const Registry* RegistryForImage(const DesiredState& desired, const std::string& image_reference);

}  // namespace reconcile
