// The AWS credential chain, in the order the AWS SDKs use (the parts that
// need no AWS call):
//   1. the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the
//      optional AWS_SESSION_TOKEN;
//   2. the profile AWS_PROFILE (default "default"): static keys
//      (aws_access_key_id, aws_secret_access_key, aws_session_token) from
//      the shared credentials file (AWS_SHARED_CREDENTIALS_FILE, default
//      ~/.aws/credentials, sections "[NAME]"), else from the config file
//      (AWS_CONFIG_FILE, default ~/.aws/config, sections "[profile NAME]"
//      and "[default]");
//   3. the container credentials endpoint (ECS, EKS Pod Identity):
//      AWS_CONTAINER_CREDENTIALS_RELATIVE_URI on http://169.254.170.2, or
//      AWS_CONTAINER_CREDENTIALS_FULL_URI (https, or http to loopback or
//      the ECS/EKS link-local hosts), with the Authorization header from
//      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or
//      AWS_CONTAINER_AUTHORIZATION_TOKEN. Its answer (AccessKeyId,
//      SecretAccessKey, Token, Expiration) is cached until 5 minutes before
//      it expires.
// Not supported (a profile that uses them is an error naming the key):
// role_arn / source_profile (assume role), credential_process, SSO, web
// identity (AWS_WEB_IDENTITY_TOKEN_FILE) and the EC2 instance metadata
// service.
//
// The environment is passed in as a map (never read with getenv here), and
// the HTTP GET of the container endpoint goes through an injected function,
// so that this library does not depend on an HTTP client and tests are
// hermetic. Secret values (keys, tokens, file contents) never appear in a
// Status message.
//
// Thread-safety: CredentialChain::Get may be called from several threads
// (one mutex); the free functions are pure apart from reading files.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "aws/sigv4.h"
#include "reconcile/status.h"

namespace reconcile::aws {

using Environment = std::map<std::string, std::string>;

// GETs `url` with `headers`; returns the body of a 2xx answer, or an error
// (any other status, transport failure). Must allow plain HTTP to
// 169.254.170.2 / 169.254.170.23 (link-local container endpoints).
using FetchFunction = std::function<Result<std::string>(
    const std::string& url, const std::vector<std::pair<std::string, std::string>>& headers)>;

using WallClock = std::function<std::chrono::system_clock::time_point()>;

struct ResolvedCredentials {
  Credentials credentials;
  // Set for temporary credentials from the container endpoint.
  std::optional<std::chrono::system_clock::time_point> expiration;
  // Where they came from, for messages: "environment",
  // "profile 'dev' in /home/u/.aws/credentials", "container endpoint
  // http://169.254.170.2/v2/credentials/...". Holds no secret.
  std::string source;
};

class CredentialChain {
 public:
  // `fetch` may be empty: then the container endpoint, when configured, is
  // an error. `now` is the wall clock (tests pass a fake one).
  CredentialChain(
      Environment env, FetchFunction fetch,
      WallClock now = [] { return std::chrono::system_clock::now(); });

  // The first source of the chain that is configured. Environment and
  // profile credentials are read once and kept; container credentials are
  // fetched again 5 minutes before they expire (if that refresh fails while
  // the old ones are still valid, the old ones are returned). Errors
  // (kInvalid unless noted): nothing configured (one message naming every
  // variable and file that could be set, and the profile tried); half of a
  // key pair; AWS_PROFILE naming a profile that neither file has; a
  // malformed file ("FILE:LINE: ..."); a profile using an unsupported
  // mechanism; a bad container URI or token; an endpoint answer that is not
  // the documented JSON; the fetch's own error (its code kept, e.g.
  // kUnavailable).
  Result<ResolvedCredentials> Get();

 private:
  Result<ResolvedCredentials> FetchContainer();

  const Environment env_;
  const FetchFunction fetch_;
  const WallClock now_;
  std::mutex mu_;
  std::optional<ResolvedCredentials> cached_;
};

// The profile name: AWS_PROFILE, else "default".
std::string ProfileName(const Environment& env);

// The shared credentials and config file paths the environment selects.
std::string SharedCredentialsPath(const Environment& env);
std::string ConfigPath(const Environment& env);

// The region: `explicit_region` (the Target's aws.region) when not empty,
// then AWS_REGION, AWS_DEFAULT_REGION, then `region` of the profile in the
// config file. The result is checked to be [a-z0-9-]+. Errors (kInvalid):
// none set (naming all of them), a malformed config file, a region that is
// not a host label.
Result<std::string> ResolveRegion(const Environment& env, const std::string& explicit_region = "");

// One INI file as the AWS CLI reads it: "[section]", "name = value" lines,
// '#' and ';' comment lines, indented sub-settings (skipped). Exposed for
// the tests.
struct IniValue {
  std::string value;
  int line = 0;
};
struct IniFile {
  std::string path;
  std::map<std::string, std::map<std::string, IniValue>> sections;
  std::map<std::string, int> section_lines;  // the line of each section's first header
};
// Parses `text` read from `path` (used in messages only). Errors (kInvalid):
// "PATH:LINE: ..." naming what is wrong, never the line's text.
Result<IniFile> ParseIni(const std::string& path, std::string_view text);

// Parses an RFC 3339 / ISO 8601 UTC time ("2026-12-01T19:00:00Z",
// fractions and "+01:00" offsets allowed). Exposed for the tests.
std::optional<std::chrono::system_clock::time_point> ParseIsoTime(std::string_view s);

}  // namespace reconcile::aws
