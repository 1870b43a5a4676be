#include "secretstores/aws_secrets_manager.h"

#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include <openssl/evp.h>
#include <nlohmann/json.hpp>

#include "aws/endpoint.h"
#include "aws/sigv4.h"
#include "secretstores/printable.h"

extern char** environ;

namespace reconcile::secretstores {
namespace {

using nlohmann::json;

constexpr const char* kWhat = "AWS Secrets Manager GetSecretValue";

// The container credentials hosts the chain may reach over plain http.
const std::vector<std::string> kContainerCredentialHosts = {"169.254.170.2", "169.254.170.23"};

std::string Redacted(std::string s, const aws::Credentials& c) {
  for (const std::string* secret : {&c.secret_access_key, &c.session_token}) {
    if (secret->empty()) continue;
    for (size_t at; (at = s.find(*secret)) != std::string::npos;) {
      s.replace(at, secret->size(), "[redacted]");
    }
  }
  return s;
}

std::optional<std::string> Base64Decode(const std::string& in) {
  if (in.size() % 4 != 0) return std::nullopt;
  std::string out(in.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  if (n < 0) return std::nullopt;
  size_t pad = 0;
  if (!in.empty() && in.back() == '=') ++pad;
  if (in.size() > 1 && in[in.size() - 2] == '=') ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

// "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf" ->
// "eu-west-1".
std::string ArnRegion(const std::string& id) {
  if (!id.starts_with("arn:")) return "";
  size_t a = 0;
  for (int i = 0; i < 3; ++i) {
    a = id.find(':', a);
    if (a == std::string::npos) return "";
    ++a;
  }
  size_t b = id.find(':', a);
  return b == std::string::npos ? "" : id.substr(a, b - a);
}

// AWS JSON error "__type" without a "namespace#" prefix.
std::string ErrorName(std::string t) {
  if (size_t hash = t.rfind('#'); hash != std::string::npos) t = t.substr(hash + 1);
  if (size_t colon = t.find(':'); colon != std::string::npos) t = t.substr(0, colon);
  return t;
}

class AwsSecretsManagerStore : public SecretStore {
 public:
  explicit AwsSecretsManagerStore(AwsSecretsManagerOptions options)
      : options_(std::move(options)), chain_(options_.environment, MakeFetch(), options_.now) {
    if (!options_.client) options_.client = http::MakeCurlClient();
  }

  Result<std::string> Get(const SecretRef& ref, std::stop_token stop) override {
    const std::string who = SecretRefText(ref) + ": " + kWhat;
    std::string region = ref.region.empty() ? ArnRegion(ref.name) : ref.region;
    if (region.empty()) {
      auto r = aws::ResolveRegion(options_.environment);
      if (!r.ok()) {
        return Status::Invalid(who + ": no region (set region: in the reference, or AWS_REGION): " +
                               r.status().message());
      }
      region = *r;
    }
    auto endpoint = aws::SecretsManagerEndpoint(options_.environment, region);
    if (!endpoint.ok()) return endpoint.status().WithContext(who);
    auto creds = chain_.Get();
    if (!creds.ok()) return creds.status().WithContext(who + ": AWS credentials");
    const aws::Credentials& c = creds->credentials;

    json input = {{"SecretId", ref.name}};
    if (!ref.version_stage.empty()) input["VersionStage"] = ref.version_stage;
    if (!ref.version.empty()) input["VersionId"] = ref.version;
    const std::string url = endpoint->url + "/";
    auto parts = aws::SplitUrl(url);
    if (!parts.ok()) return parts.status().WithContext(who);
    aws::SignRequest sign;
    sign.method = "POST";
    sign.target = parts->target;
    sign.headers = {{"Host", parts->host_header},
                    {"Content-Type", "application/x-amz-json-1.1"},
                    {"X-Amz-Target", "secretsmanager.GetSecretValue"}};
    sign.body = input.dump();
    auto sig = aws::Sign(sign, c, {region, "secretsmanager", options_.now()});
    if (!sig.ok()) return sig.status().WithContext(who);
    http::Request req{"POST", url, sign.headers, sign.body, std::chrono::milliseconds(30000)};
    for (auto& h : sig->headers_to_add) req.headers.push_back(std::move(h));
    auto resp = options_.client->Send(req, stop);
    if (!resp.ok()) {
      return Status(resp.status().code(), who + ": " + Redacted(resp.status().message(), c));
    }
    json body = json::parse(resp->body, nullptr, /*allow_exceptions=*/false);
    if (resp->status < 200 || resp->status > 299) {
      std::string name;
      std::string message;
      if (body.is_object()) {
        if (auto it = body.find("__type"); it != body.end() && it->is_string()) {
          name = ErrorName(it->get<std::string>());
        }
        for (const char* k : {"message", "Message"}) {
          if (auto it = body.find(k); it != body.end() && it->is_string()) {
            message = it->get<std::string>();
            break;
          }
        }
      }
      if (name.empty()) name = ErrorName(resp->Header("x-amzn-ErrorType"));
      Code code = Code::kInvalid;
      if (resp->status == 429 || resp->status >= 500 || name == "ThrottlingException" ||
          name == "InternalServiceError") {
        code = Code::kUnavailable;
      }
      std::string hint;
      if (name == "AccessDeniedException") hint = ": permission denied";
      if (name == "ResourceNotFoundException") hint = ": no such secret or version";
      return Status(code, who + hint + " (HTTP " + std::to_string(resp->status) +
                              (name.empty() ? "" : " " + name) + ")" +
                              (message.empty() ? "" : ": " + Printable(Redacted(message, c))));
    }
    if (!body.is_object()) {
      return Status::Unavailable(who + ": the answer (HTTP " + std::to_string(resp->status) +
                                 ") is not a JSON object");
    }
    std::string value;
    bool binary = false;
    if (auto it = body.find("SecretString"); it != body.end() && it->is_string()) {
      value = it->get<std::string>();
    } else if (auto b = body.find("SecretBinary"); b != body.end() && b->is_string()) {
      auto decoded = Base64Decode(b->get<std::string>());
      if (!decoded) return Status::Unavailable(who + ": SecretBinary is not base64");
      value = std::move(*decoded);
      binary = true;
    } else {
      return Status::Invalid(who +
                             ": the secret version has neither SecretString nor "
                             "SecretBinary");
    }
    if (ref.key.empty()) return value;
    if (binary) {
      return Status::Invalid(who + ": key '" + ref.key +
                             "' is set but the secret is binary (SecretBinary)");
    }
    json fields = json::parse(value, nullptr, /*allow_exceptions=*/false);
    if (!fields.is_object()) {
      return Status::Invalid(who + ": key '" + ref.key +
                             "' is set but SecretString is not a JSON object");
    }
    auto it = fields.find(ref.key);
    if (it == fields.end()) {
      std::string keys;
      for (const auto& [k, v] : fields.items()) keys += (keys.empty() ? "" : ", ") + k;
      return Status::Invalid(who + ": SecretString has no key '" + ref.key +
                             "' (its keys: " + (keys.empty() ? "none" : Printable(keys)) + ")");
    }
    if (it->is_string()) return it->get<std::string>();
    if (it->is_number() || it->is_boolean()) return it->dump();
    return Status::Invalid(who + ": key '" + ref.key +
                           "' of SecretString is not a string, number or boolean");
  }

 private:
  aws::FetchFunction MakeFetch() {
    http::ClientOptions options;
    options.plain_http_hosts = kContainerCredentialHosts;
    std::shared_ptr<http::Client> client = http::MakeCurlClient(options);
    return [client](const std::string& url,
                    const std::vector<std::pair<std::string, std::string>>& headers)
               -> Result<std::string> {
      http::Request req{"GET", url, headers, "", std::chrono::milliseconds(10000)};
      auto resp = client->Send(req);
      if (!resp.ok()) return resp.status();
      if (resp->status < 200 || resp->status > 299) {
        Code code = http::IsRetriedStatus(resp->status) ? Code::kUnavailable : Code::kInvalid;
        return Status(code, "the container credentials endpoint " + http::UrlForMessage(url) +
                                " answered HTTP " + std::to_string(resp->status));
      }
      return resp->body;
    };
  }

  AwsSecretsManagerOptions options_;
  aws::CredentialChain chain_;
};

}  // namespace

aws::Environment AwsProcessEnvironment() {
  aws::Environment env;
  for (char** e = environ; e && *e; ++e) {
    std::string entry = *e;
    auto eq = entry.find('=');
    if (eq != std::string::npos && entry.rfind("AWS_", 0) == 0) {
      env[entry.substr(0, eq)] = entry.substr(eq + 1);
    }
  }
  if (const char* home = std::getenv("HOME")) env["HOME"] = home;
  return env;
}

std::unique_ptr<SecretStore> NewAwsSecretsManagerStore(AwsSecretsManagerOptions options) {
  return std::make_unique<AwsSecretsManagerStore>(std::move(options));
}

}  // namespace reconcile::secretstores
