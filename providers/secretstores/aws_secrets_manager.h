// AwsSecretsManagerStore: {aws: {secretId, key, versionStage, versionId,
// region}} references, read with Secrets Manager's GetSecretValue (AWS JSON
// 1.1: POST / with X-Amz-Target: secretsmanager.GetSecretValue), signed with
// SigV4 (aws/sigv4.h) for the signing name "secretsmanager", with the
// credentials of the AWS credential chain (aws/credentials.h).
//
// Region: the reference's region, else the one an ARN secretId names, else
// AWS_REGION / AWS_DEFAULT_REGION / the profile's. Endpoint:
// aws/endpoint.h SecretsManagerEndpoint (AWS_ENDPOINT_URL_SECRETS_MANAGER,
// AWS_ENDPOINT_URL; plain http only to loopback). With `key`, SecretString
// must be a JSON object and the value is that member (a string as is, a
// number or boolean as JSON text); without, the whole SecretString (or the
// decoded SecretBinary).
//
// Errors name the reference and the answer's HTTP status and error type
// (ResourceNotFoundException, AccessDeniedException, ...), never a value or
// a credential. Thread-safety: Get may be called from several threads.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include "aws/credentials.h"
#include "http/http_client.h"
#include "reconcile/secret_store.h"

namespace reconcile::secretstores {

struct AwsSecretsManagerOptions {
  // The AWS_* variables and HOME (credentials, region, endpoint).
  aws::Environment environment;
  // nullptr: a curl client.
  std::shared_ptr<http::Client> client;
  aws::WallClock now = [] { return std::chrono::system_clock::now(); };
};

std::unique_ptr<SecretStore> NewAwsSecretsManagerStore(AwsSecretsManagerOptions options);

// The AWS_* variables and HOME of this process.
aws::Environment AwsProcessEnvironment();

}  // namespace reconcile::secretstores
