#include "aws/endpoint.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <regex>

#include "aws/sigv4.h"

namespace reconcile::aws {
namespace {

// botocore/data/partitions.json (regionRegex, dnsSuffix, dualStackDnsSuffix);
// every partition there has supportsFIPS and supportsDualStack true.
struct Partition {
  const char* id;
  const char* region_regex;
  const char* dns_suffix;
  const char* dualstack_dns_suffix;
};
constexpr Partition kPartitions[] = {
    {"aws", R"(^(us|eu|ap|sa|ca|me|af|il|mx)\-\w+\-\d+$)", "amazonaws.com", "api.aws"},
    {"aws-cn", R"(^cn\-\w+\-\d+$)", "amazonaws.com.cn", "api.amazonwebservices.com.cn"},
    {"aws-eusc", R"(^eusc\-(de)\-\w+\-\d+$)", "amazonaws.eu", "api.amazonwebservices.eu"},
    {"aws-iso", R"(^us\-iso\-\w+\-\d+$)", "c2s.ic.gov", "api.aws.ic.gov"},
    {"aws-iso-b", R"(^us\-isob\-\w+\-\d+$)", "sc2s.sgov.gov", "api.aws.scloud"},
    {"aws-iso-e", R"(^eu\-isoe\-\w+\-\d+$)", "cloud.adc-e.uk", "api.cloud-aws.adc-e.uk"},
    {"aws-iso-f", R"(^us\-isof\-\w+\-\d+$)", "csp.hci.ic.gov", "api.aws.hci.ic.gov"},
    {"aws-us-gov", R"(^us\-gov\-\w+\-\d+$)", "amazonaws.com", "api.aws"},
};

// Regions partitions.json lists by name without matching the regex.
struct NamedRegion {
  const char* region;
  const char* partition;
};
constexpr NamedRegion kNamedRegions[] = {
    {"aws-global", "aws"},
    {"aws-cn-global", "aws-cn"},
    {"aws-us-gov-global", "aws-us-gov"},
    {"aws-iso-global", "aws-iso"},
    {"aws-iso-b-global", "aws-iso-b"},
    {"aws-iso-e-global", "aws-iso-e"},
    {"aws-iso-f-global", "aws-iso-f"},
};

const Partition& PartitionOf(const std::string& region) {
  for (const auto& named : kNamedRegions) {
    if (region == named.region) {
      for (const auto& p : kPartitions) {
        if (std::string_view(p.id) == named.partition) return p;
      }
    }
  }
  for (const auto& p : kPartitions) {
    if (std::regex_match(region, std::regex(p.region_regex))) return p;
  }
  return kPartitions[0];
}

bool IsHostLabel(const std::string& s) {
  return !s.empty() && s.size() <= 63 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

bool IsLoopbackHost(std::string host) {
  std::transform(host.begin(), host.end(), host.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (host.starts_with("[")) {
    size_t close = host.find(']');
    return close != std::string::npos && host.substr(0, close + 1) == "[::1]";
  }
  host = host.substr(0, host.find(':'));
  if (host == "localhost") return true;
  unsigned a, b, c, d;
  char tail;
  return std::sscanf(host.c_str(), "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4 && a == 127 &&
         b < 256 && c < 256 && d < 256;
}

Result<bool> BoolVar(const Environment& env, const char* name) {
  auto it = env.find(name);
  if (it == env.end() || it->second.empty()) return false;
  std::string v = it->second;
  std::transform(v.begin(), v.end(), v.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (v == "true") return true;
  if (v == "false") return false;
  return Status::Invalid(std::string(name) + " must be true or false");
}

Result<std::string> CheckOverride(const std::string& url, const std::string& from) {
  auto parts = SplitUrl(url);
  if (!parts.ok()) return parts.status().WithContext(from);
  if (parts->target.find('?') != std::string::npos) {
    return Status::Invalid(from + ": the endpoint URL has a query; give the base URL only");
  }
  if (parts->scheme == "http" && !IsLoopbackHost(parts->host_header)) {
    return Status::Invalid(from +
                           ": plain http:// is accepted only to loopback (127.0.0.1, ::1, "
                           "localhost); use https://");
  }
  std::string base = url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base;
}

}  // namespace

Result<std::string> AppRunnerRuleSetEndpoint(const std::string& region, bool use_fips,
                                             bool use_dualstack) {
  if (region.empty()) return Status::Invalid("Invalid Configuration: Missing Region");
  if (!IsHostLabel(region)) {
    return Status::Invalid("the AWS region is not a region name (such as us-east-1)");
  }
  const Partition& p = PartitionOf(region);
  const std::string suffix = use_dualstack ? p.dualstack_dns_suffix : p.dns_suffix;
  return std::string("https://apprunner") + (use_fips ? "-fips" : "") + "." + region + "." + suffix;
}

Result<Endpoint> AppRunnerEndpoint(const Environment& env, const std::string& region,
                                   const std::string& explicit_endpoint) {
  auto fips = BoolVar(env, "AWS_USE_FIPS_ENDPOINT");
  if (!fips.ok()) return fips.status();
  auto dualstack = BoolVar(env, "AWS_USE_DUALSTACK_ENDPOINT");
  if (!dualstack.ok()) return dualstack.status();
  auto ignore = BoolVar(env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
  if (!ignore.ok()) return ignore.status();

  std::string url;
  std::string source;
  if (!*ignore) {
    for (const char* var : {"AWS_ENDPOINT_URL_APPRUNNER", "AWS_ENDPOINT_URL"}) {
      auto it = env.find(var);
      if (it != env.end() && !it->second.empty()) {
        url = it->second;
        source = var;
        break;
      }
    }
  }
  if (url.empty() && !explicit_endpoint.empty()) {
    url = explicit_endpoint;
    source = "aws.endpoint";
  }
  if (!url.empty()) {
    if (*fips) {
      return Status::Invalid(source +
                             " and AWS_USE_FIPS_ENDPOINT=true: FIPS and custom endpoint "
                             "are not supported (App Runner endpoint rule set)");
    }
    if (*dualstack) {
      return Status::Invalid(source +
                             " and AWS_USE_DUALSTACK_ENDPOINT=true: Dualstack and custom endpoint "
                             "are not supported (App Runner endpoint rule set)");
    }
    auto base = CheckOverride(url, source);
    if (!base.ok()) return base.status();
    return Endpoint{*base, source};
  }
  auto rule = AppRunnerRuleSetEndpoint(region, *fips, *dualstack);
  if (!rule.ok()) return rule.status();
  return Endpoint{*rule, "rule set"};
}

Result<Endpoint> SecretsManagerEndpoint(const Environment& env, const std::string& region) {
  auto fips = BoolVar(env, "AWS_USE_FIPS_ENDPOINT");
  if (!fips.ok()) return fips.status();
  auto dualstack = BoolVar(env, "AWS_USE_DUALSTACK_ENDPOINT");
  if (!dualstack.ok()) return dualstack.status();
  auto ignore = BoolVar(env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
  if (!ignore.ok()) return ignore.status();
  if (!*ignore) {
    for (const char* var : {"AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL"}) {
      auto it = env.find(var);
      if (it == env.end() || it->second.empty()) continue;
      if (*fips || *dualstack) {
        return Status::Invalid(std::string(var) +
                               " together with AWS_USE_FIPS_ENDPOINT or "
                               "AWS_USE_DUALSTACK_ENDPOINT: not supported with a custom endpoint");
      }
      auto base = CheckOverride(it->second, var);
      if (!base.ok()) return base.status();
      return Endpoint{*base, var};
    }
  }
  if (region.empty()) return Status::Invalid("Invalid Configuration: Missing Region");
  if (!IsHostLabel(region)) {
    return Status::Invalid("the AWS region is not a region name (such as us-east-1)");
  }
  const Partition& p = PartitionOf(region);
  return Endpoint{std::string("https://secretsmanager") + (*fips ? "-fips" : "") + "." + region +
                      "." + (*dualstack ? p.dualstack_dns_suffix : p.dns_suffix),
                  "endpoint rules"};
}

}  // namespace reconcile::aws
