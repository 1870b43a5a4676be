// Google OAuth2 access tokens for the Cloud Run provider (issue #7 point 5):
// a service-account JSON key (an RS256 JWT, signed with OpenSSL, exchanged at
// the token endpoint) or the metadata server of a Google Cloud machine.
//
// Endpoints. The key flow POSTs to the key's token_uri; the metadata flow
// GETs http://metadata.google.internal/computeMetadata/v1/instance/
// service-accounts/default/token with "Metadata-Flavor: Google", the host
// replaced by GCE_METADATA_HOST ("host[:port]") as Google's libraries do.
// GoogleAuthOptions::auth_endpoint (the Target's gcp.authEndpoint) is a base
// URL ("https://oauth2.example", "http://127.0.0.1:8080") that replaces both:
// the key flow POSTs to <auth_endpoint>/token, the metadata flow GETs
// <auth_endpoint>/computeMetadata/v1/instance/service-accounts/default/token.
//
// The metadata server is plain http and not on loopback: the Client given to
// the metadata flow must list kGoogleMetadataHost in
// ClientOptions::plain_http_hosts (exactly that host, never through a
// proxy), or it refuses the URL.
//
// Thread-safety: the token sources are safe to share (see TokenSource).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "http/http_client.h"
#include "http/token_source.h"
#include "reconcile/clock.h"
#include "reconcile/status.h"

namespace reconcile::http {

inline constexpr const char* kGoogleCloudPlatformScope =
    "https://www.googleapis.com/auth/cloud-platform";
inline constexpr const char* kGoogleMetadataTokenPath =
    "/computeMetadata/v1/instance/service-accounts/default/token";

struct GoogleServiceAccountKey {
  std::string client_email;
  std::string private_key;  // PEM; never printed
  std::string private_key_id;
  std::string token_uri;
  std::string project_id;
  std::string source;  // the file it came from, for messages
};

// Reads a key of "type": "service_account". kInvalid naming `source` and the
// field that is missing or wrong, never the private key's text.
Result<GoogleServiceAccountKey> ParseGoogleServiceAccountKey(std::string_view json,
                                                             const std::string& source);
// Reads the file `path` (at most 1 MiB) and parses it.
Result<GoogleServiceAccountKey> ReadGoogleServiceAccountKey(const std::string& path);

// The signed JWT (header.claims.signature, base64url) asking for `scope`
// with `audience` as "aud": {"alg":"RS256","typ":"JWT","kid":private_key_id}
// and {"iss":client_email,"scope","aud","iat":now,"exp":now+3600}.
// kInvalid when the private key is not an unencrypted PEM RSA key.
Result<std::string> MakeGoogleJwtAssertion(const GoogleServiceAccountKey& key,
                                           const std::string& audience, const std::string& scope,
                                           std::int64_t now_unix);

struct GoogleAuthOptions {
  // A key file to use instead of GOOGLE_APPLICATION_CREDENTIALS.
  std::string credentials_file;
  // Replaces the token and metadata endpoints (see above); "" for Google's.
  std::string auth_endpoint;
  std::string scope = kGoogleCloudPlatformScope;
  Clock* clock = nullptr;  // for iat/exp and the cache; nullptr: the system clock
  Getenv getenv = ProcessGetenv;
};

// `client` must outlive the source.
std::unique_ptr<TokenSource> NewGoogleServiceAccountTokenSource(Client& client,
                                                                GoogleServiceAccountKey key,
                                                                GoogleAuthOptions options);
std::unique_ptr<TokenSource> NewGoogleMetadataTokenSource(Client& client,
                                                          GoogleAuthOptions options);

// The chain the Cloud Run provider uses: options.credentials_file, else the
// key file GOOGLE_APPLICATION_CREDENTIALS names (an unreadable or malformed
// one is an error here, naming it), else the metadata server. When that was
// chosen by default (no GCE_METADATA_HOST, no auth_endpoint) and it cannot be
// reached, Token's error is kInvalid and names GOOGLE_APPLICATION_CREDENTIALS
// and the metadata server.
Result<std::unique_ptr<TokenSource>> NewGoogleTokenSource(Client& client,
                                                          GoogleAuthOptions options);

}  // namespace reconcile::http
