#include "reconcile/registry_credentials.h"

#include <cstdlib>

namespace reconcile {

Result<std::optional<RegistryCredentials>> CredentialsFromEnvironment(const Registry& registry) {
  if (registry.credentials_env_prefix.empty()) return std::optional<RegistryCredentials>();
  const std::string user_var = registry.credentials_env_prefix + "_USERNAME";
  const std::string pass_var = registry.credentials_env_prefix + "_PASSWORD";
  const char* user = std::getenv(user_var.c_str());
  const char* pass = std::getenv(pass_var.c_str());
  RegistryCredentials c;
  c.server = registry.url;
  c.variables = user_var + " and " + pass_var;
  if (user == nullptr || *user == '\0' || pass == nullptr || *pass == '\0') {
    std::string missing = (user == nullptr || *user == '\0') ? user_var : "";
    if (pass == nullptr || *pass == '\0') missing += (missing.empty() ? "" : " and ") + pass_var;
    return Status::Invalid("registry '" + registry.name + "' (" + registry.url +
                           "): credentialsEnvPrefix " + registry.credentials_env_prefix +
                           " is set, but " + missing +
                           (missing.find(" and ") == std::string::npos ? " is" : " are") +
                           " not set in the engine's environment; set " + c.variables);
  }
  c.username = user;
  c.password = pass;
  return std::optional<RegistryCredentials>(std::move(c));
}

std::string RegistryHostOf(const std::string& image_reference) {
  std::size_t slash = image_reference.find('/');
  if (slash == std::string::npos) return "docker.io";
  std::string first = image_reference.substr(0, slash);
  if (first.find('.') != std::string::npos || first.find(':') != std::string::npos ||
      first == "localhost") {
    return first;
  }
  return "docker.io";
}

const Registry* RegistryForImage(const DesiredState& desired, const std::string& image_reference) {
  // The registry whose url/repository is a prefix of the reference, else
  // the first of that host with credentials, else the first of that host.
  const std::string host = RegistryHostOf(image_reference);
  const Registry* with_credentials = nullptr;
  const Registry* any = nullptr;
  for (const Registry& r : desired.registries) {
    if (r.url != host) continue;
    const std::string repo = r.url + "/" + r.repository;
    if (image_reference.rfind(repo, 0) == 0 &&
        (image_reference.size() == repo.size() || image_reference[repo.size()] == ':' ||
         image_reference[repo.size()] == '@')) {
      return &r;
    }
    if (!with_credentials && !r.credentials_env_prefix.empty()) with_credentials = &r;
    if (!any) any = &r;
  }
  return with_credentials ? with_credentials : any;
}

}  // namespace reconcile
