// Microsoft Entra access tokens for the Container Apps provider (issue #7
// point 6), for Azure Resource Manager
// (scope https://management.azure.com/.default): client credentials of a
// service principal, or a managed identity.
//
// Endpoints.
//  - Client credentials: POST <authority>/<tenant>/oauth2/v2.0/token with
//    grant_type=client_credentials, client_id, client_secret, scope. The
//    authority is https://login.microsoftonline.com, or AZURE_AUTHORITY_HOST
//    (as the Azure SDKs read it; "https://" is added when it has no scheme).
//  - Managed identity in App Service / Container Apps: IDENTITY_ENDPOINT and
//    IDENTITY_HEADER: GET <IDENTITY_ENDPOINT>?api-version=2019-08-01&resource=
//    https://management.azure.com/ with "X-IDENTITY-HEADER: <IDENTITY_HEADER>".
//  - Otherwise the instance metadata service (IMDS): GET
//    http://169.254.169.254/metadata/identity/oauth2/token?api-version=
//    2018-02-01&resource=https://management.azure.com/ with "Metadata: true".
//    It is plain http and not on loopback: the Client must list
//    kAzureImdsHost in ClientOptions::plain_http_hosts.
//  - A user-assigned identity is chosen with AZURE_CLIENT_ID (client_id=).
// AzureAuthOptions::auth_endpoint (the Target's azure.authEndpoint) is a base
// URL that replaces the authority (client credentials) or the IMDS's
// "http://169.254.169.254" (managed identity, taking precedence over
// IDENTITY_ENDPOINT); the paths above are appended to it.
//
// Tokens are cached until shortly before expires_in / expires_on.
// Thread-safety: the token sources are safe to share (see TokenSource).
#pragma once

#include <memory>
#include <string>

#include "http/http_client.h"
#include "http/token_source.h"
#include "reconcile/clock.h"
#include "reconcile/status.h"

namespace reconcile::http {

inline constexpr const char* kAzureManagementScope = "https://management.azure.com/.default";
inline constexpr const char* kAzureManagementResource = "https://management.azure.com/";

struct AzureClientSecretCredentials {
  std::string tenant_id;
  std::string client_id;
  std::string client_secret;  // never printed
};

struct AzureAuthOptions {
  std::string auth_endpoint;  // see above; "" for Azure's own
  Clock* clock = nullptr;     // for the cache and expires_on; nullptr: the system clock
  Getenv getenv = ProcessGetenv;
};

// `client` must outlive the sources. kInvalid when tenant_id is not a tenant
// ID or domain name (letters, digits, '-', '.', '_').
Result<std::unique_ptr<TokenSource>> NewAzureClientSecretTokenSource(
    Client& client, AzureClientSecretCredentials credentials, AzureAuthOptions options);
std::unique_ptr<TokenSource> NewAzureManagedIdentityTokenSource(Client& client,
                                                                AzureAuthOptions options);

// The chain the Container Apps provider uses: client credentials when any of
// AZURE_TENANT_ID / AZURE_CLIENT_SECRET is set (then all of AZURE_TENANT_ID,
// AZURE_CLIENT_ID and AZURE_CLIENT_SECRET must be: kInvalid naming the
// missing ones), else a managed identity. When the IMDS was chosen by default
// (no IDENTITY_ENDPOINT, no auth_endpoint) and cannot be reached, Token's
// error is kInvalid and names the variables to set.
Result<std::unique_ptr<TokenSource>> NewAzureTokenSource(Client& client, AzureAuthOptions options);

}  // namespace reconcile::http
