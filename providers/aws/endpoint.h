// The App Runner endpoint: which base URL requests go to.
//
// Order (the first that is set wins):
//   1. AWS_ENDPOINT_URL_APPRUNNER,
//   2. AWS_ENDPOINT_URL,
//   3. the explicit override (the Target's aws.endpoint),
//   4. the official endpoint rule set
//      (tests/testdata/vectors/api-models/aws-apprunner-endpoint-rule-set-1.json):
//      https://apprunner.{region}.{dnsSuffix}, with FIPS
//      (AWS_USE_FIPS_ENDPOINT=true: apprunner-fips.) and dual-stack
//      (AWS_USE_DUALSTACK_ENDPOINT=true: the partition's dualStackDnsSuffix)
//      as the rules say, for the partitions of botocore's partitions.json
//      (aws, aws-cn, aws-us-gov, aws-iso, aws-iso-b, aws-iso-e, aws-iso-f,
//      aws-eusc; a region that matches none is in "aws", as the rules' own
//      aws.partition function does).
// AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true skips 1 and 2, as in the SDKs.
// Not read: endpoint_url / use_fips_endpoint in ~/.aws/config.
//
// Thread-safety: pure functions of their arguments.
#pragma once

#include <string>

#include "aws/credentials.h"
#include "reconcile/status.h"

namespace reconcile::aws {

struct Endpoint {
  std::string url;  // base URL without a trailing '/': "https://apprunner.us-east-1.amazonaws.com"
  std::string
      source;  // "AWS_ENDPOINT_URL_APPRUNNER", "AWS_ENDPOINT_URL", "aws.endpoint", "rule set"
};

// Errors (kInvalid), each naming the variable or field: an override that is
// not an http(s) URL, plain http:// to a host that is not loopback, a URL
// with a query, user info or fragment, FIPS or dual-stack together with an
// override (the rule set's "FIPS and custom endpoint are not supported"),
// AWS_USE_*_ENDPOINT not true/false, an empty or malformed region.
Result<Endpoint> AppRunnerEndpoint(const Environment& env, const std::string& region,
                                   const std::string& explicit_endpoint = "");

// The Secrets Manager endpoint (secret stores, issue #14), in the same order:
// AWS_ENDPOINT_URL_SECRETS_MANAGER, AWS_ENDPOINT_URL (unless
// AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true), else
// https://secretsmanager[-fips].{region}.{dnsSuffix or dualStackDnsSuffix}
// of the region's partition. Errors as AppRunnerEndpoint's.
Result<Endpoint> SecretsManagerEndpoint(const Environment& env, const std::string& region);

// Rule 4 alone, for the tests (and the botocore cross-check).
Result<std::string> AppRunnerRuleSetEndpoint(const std::string& region, bool use_fips,
                                             bool use_dualstack);

}  // namespace reconcile::aws
