// reconcile::kube: kubeconfig / in-cluster config and the API client. See
// kube_client.h.
#include "kubernetes/kube_client.h"

#include <openssl/evp.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

namespace reconcile::kube {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

Result<std::string> ReadSmallFile(const std::string& path, std::string_view what) {
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  if (ec) {
    return Status::Invalid(std::string(what) + " " + path + ": cannot read (" + ec.message() + ")");
  }
  if (size > 4 * 1024 * 1024) {
    return Status::Invalid(std::string(what) + " " + path + ": larger than 4 MiB");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Invalid(std::string(what) + " " + path + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool DecodeBase64(std::string_view in, std::string& out) {
  std::string clean;
  clean.reserve(in.size());
  for (char c : in) {
    if (c != '\n' && c != '\r' && c != ' ' && c != '\t') clean.push_back(c);
  }
  if (clean.size() % 4 != 0) return false;
  out.assign(clean.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(clean.data()),
                          static_cast<int>(clean.size()));
  if (n < 0) return false;
  std::size_t pad = 0;
  if (!clean.empty() && clean.back() == '=') pad++;
  if (clean.size() > 1 && clean[clean.size() - 2] == '=') pad++;
  out.resize(static_cast<std::size_t>(n) - pad);
  return true;
}

// Field `field` of the entry named `name` of a kubeconfig list (clusters,
// users, contexts); an undefined node when there is none.
YAML::Node Named(const YAML::Node& list, const std::string& name, const char* field) {
  if (list && list.IsSequence()) {
    for (const auto& item : list) {
      if (item.IsMap() && item["name"] && item["name"].IsScalar() &&
          item["name"].as<std::string>() == name && item[field]) {
        return item[field];
      }
    }
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

std::string Scalar(const YAML::Node& node, const char* key) {
  if (!node || !node.IsMap()) return {};
  const YAML::Node v = node[key];
  if (!v || !v.IsScalar()) return {};
  return v.as<std::string>();
}

std::string Where(const std::string& path, const YAML::Node& node) {
  if (node && node.Mark().line >= 0) {
    return path + ":" + std::to_string(node.Mark().line + 1);
  }
  return path;
}

// `data` (base64) or `file` (relative to the kubeconfig's folder).
Result<std::string> DataOrFile(const std::string& path, const YAML::Node& map, const char* data_key,
                               const char* file_key, const std::string& prefix) {
  const std::string data = Scalar(map, data_key);
  const std::string file = Scalar(map, file_key);
  if (!data.empty()) {
    std::string out;
    if (!DecodeBase64(data, out)) {
      return Status::Invalid(Where(path, map[data_key]) + ": " + prefix + "." + data_key +
                             " is not valid base64");
    }
    return out;
  }
  if (!file.empty()) {
    fs::path p(file);
    if (p.is_relative()) p = fs::path(path).parent_path() / p;
    auto read = ReadSmallFile(p.string(), prefix + "." + file_key);
    if (!read.ok()) {
      return Status::Invalid(Where(path, map[file_key]) + ": " + read.status().message());
    }
    return read.value();
  }
  return std::string();
}

bool IsLoopbackServer(const std::string& server) {
  for (const char* p : {"http://127.", "http://localhost:", "http://localhost/", "http://[::1]"}) {
    if (server.rfind(p, 0) == 0) return true;
  }
  return server == "http://localhost";
}

}  // namespace

Result<Config> LoadKubeconfig(const std::string& path, const std::string& context) {
  auto text = ReadSmallFile(path, "kubeconfig");
  if (!text.ok()) return text.status();
  YAML::Node root;
  try {
    root = YAML::Load(text.value());
  } catch (const YAML::Exception& e) {
    return Status::Invalid("kubeconfig " + path + ":" + std::to_string(e.mark.line + 1) +
                           ": not valid YAML: " + e.msg);
  }
  if (!root.IsMap()) return Status::Invalid("kubeconfig " + path + ": not a kubeconfig (a map)");

  std::string ctx_name = context.empty() ? Scalar(root, "current-context") : context;
  if (ctx_name.empty()) {
    return Status::Invalid("kubeconfig " + path +
                           ": no current-context; set one or name a context");
  }
  YAML::Node c = Named(root["contexts"], ctx_name, "context");
  if (!c.IsDefined() || !c.IsMap()) {
    return Status::Invalid("kubeconfig " + path + ": no context named '" + ctx_name + "'");
  }
  const std::string cluster_name = Scalar(c, "cluster");
  const std::string user_name = Scalar(c, "user");
  YAML::Node cluster = Named(root["clusters"], cluster_name, "cluster");
  if (!cluster.IsDefined() || !cluster.IsMap()) {
    return Status::Invalid(Where(path, c) + ": context '" + ctx_name + "' names cluster '" +
                           cluster_name + "', which is not in clusters");
  }

  Config config;
  config.source = "kubeconfig " + path + " (context " + ctx_name + ")";
  config.namespace_name = Scalar(c, "namespace");
  config.server = Scalar(cluster, "server");
  while (!config.server.empty() && config.server.back() == '/') config.server.pop_back();
  if (config.server.empty()) {
    return Status::Invalid(Where(path, cluster) + ": cluster '" + cluster_name + "' has no server");
  }
  config.insecure_skip_tls_verify = Scalar(cluster, "insecure-skip-tls-verify") == "true";
  auto ca = DataOrFile(path, cluster, "certificate-authority-data", "certificate-authority",
                       "clusters[" + cluster_name + "].cluster");
  if (!ca.ok()) return ca.status();
  config.ca_pem = ca.value();

  if (!user_name.empty()) {
    YAML::Node user = Named(root["users"], user_name, "user");
    if (!user.IsDefined()) {
      return Status::Invalid(Where(path, c) + ": context '" + ctx_name + "' names user '" +
                             user_name + "', which is not in users");
    }
    const std::string prefix = "users[" + user_name + "].user";
    if (user.IsMap()) {
      for (const char* unsupported : {"exec", "auth-provider", "username", "password"}) {
        if (user[unsupported]) {
          return Status::Invalid(Where(path, user[unsupported]) + ": " + prefix + "." +
                                 unsupported +
                                 " is not supported yet; use a token, tokenFile or a client "
                                 "certificate");
        }
      }
      config.token = Scalar(user, "token");
      std::string token_file = Scalar(user, "tokenFile");
      if (config.token.empty() && !token_file.empty()) {
        fs::path p(token_file);
        if (p.is_relative()) p = fs::path(path).parent_path() / p;
        config.token_file = p.string();
      }
      auto cert = DataOrFile(path, user, "client-certificate-data", "client-certificate", prefix);
      if (!cert.ok()) return cert.status();
      auto key = DataOrFile(path, user, "client-key-data", "client-key", prefix);
      if (!key.ok()) return key.status();
      if (cert.value().empty() != key.value().empty()) {
        return Status::Invalid(Where(path, user) + ": " + prefix +
                               " has a client certificate without its key, or a key without "
                               "its certificate");
      }
      config.client_cert_pem = cert.value();
      config.client_key_pem = key.value();
    }
  }
  return config;
}

Result<Config> InClusterConfig(const std::string& root) {
  const std::string host = Env("KUBERNETES_SERVICE_HOST");
  const std::string port = Env("KUBERNETES_SERVICE_PORT");
  if (host.empty() || port.empty()) {
    return Status::Invalid(
        "in-cluster config: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set "
        "(not running in a pod?)");
  }
  Config config;
  config.source = "in-cluster service account";
  config.server =
      "https://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + port;
  config.token_file = root + "/token";
  if (::access(config.token_file.c_str(), R_OK) != 0) {
    return Status::Invalid("in-cluster config: cannot read the service-account token " +
                           config.token_file);
  }
  auto ca = ReadSmallFile(root + "/ca.crt", "in-cluster CA");
  if (!ca.ok()) return ca.status();
  config.ca_pem = ca.value();
  auto ns = ReadSmallFile(root + "/namespace", "in-cluster namespace");
  if (ns.ok()) {
    std::string n = ns.value();
    while (!n.empty() && (n.back() == '\n' || n.back() == ' ')) n.pop_back();
    config.namespace_name = n;
  }
  return config;
}

Result<Config> LoadConfig(const ConfigOptions& options) {
  if (!options.kubeconfig.empty()) return LoadKubeconfig(options.kubeconfig, options.context);
  const std::string env = Env("KUBECONFIG");
  if (!env.empty()) {
    std::stringstream ss(env);
    std::string item;
    while (std::getline(ss, item, ':')) {
      std::error_code ec;
      if (!item.empty() && fs::exists(item, ec)) return LoadKubeconfig(item, options.context);
    }
  }
  if (!Env("KUBERNETES_SERVICE_HOST").empty() && !Env("KUBERNETES_SERVICE_PORT").empty()) {
    return InClusterConfig(options.in_cluster_root);
  }
  const std::string home = Env("HOME");
  if (!home.empty()) {
    std::error_code ec;
    const std::string def = home + "/.kube/config";
    if (fs::exists(def, ec)) return LoadKubeconfig(def, options.context);
  }
  return Status::Invalid(
      "no Kubernetes configuration: set kubeconfig (or $KUBECONFIG), run in a pod (in-cluster "
      "service account), or create ~/.kube/config");
}

ApiError ParseApiError(const http::Response& response) {
  ApiError e;
  e.code = response.status;
  json body = json::parse(response.body, nullptr, false);
  if (body.is_object() && body.value("kind", "") == "Status") {
    if (body.contains("reason") && body["reason"].is_string()) e.reason = body["reason"];
    if (body.contains("message") && body["message"].is_string()) e.message = body["message"];
  }
  return e;
}

Status StatusFromResponse(const http::Response& response, std::string_view what) {
  ApiError e = ParseApiError(response);
  std::string m = std::string(what) + ": " + std::to_string(response.status);
  if (!e.reason.empty()) m += " " + e.reason;
  if (!e.message.empty()) m += ": " + e.message;
  const long s = response.status;
  if (s == 404) return Status::NotFound(m);
  if (s == 409) return Status::Conflict(m);
  if (s == 400 || s == 422) return Status::Invalid(m);
  if (s == 401) return Status::Failed(m + " (the credentials were refused)");
  if (s == 403) return Status::Failed(m);
  if (s >= 500 || s == 429) return Status::Unavailable(m);
  return Status::Failed(m);
}

Result<json> Client::Get(std::string_view path, std::stop_token stop,
                         std::string_view traceparent) {
  return Request("GET", path, {}, "application/json", stop, traceparent);
}

Result<json> Client::Create(std::string_view collection_path, const json& object,
                            std::stop_token stop) {
  return Request("POST", collection_path, object.dump(), "application/json", stop);
}

Result<json> Client::Update(std::string_view path, const json& object, std::stop_token stop) {
  return Request("PUT", path, object.dump(), "application/json", stop);
}

Result<json> Client::Apply(std::string_view path, const json& object,
                           std::string_view field_manager, bool force, std::stop_token stop,
                           std::string_view traceparent) {
  std::string p(path);
  p += (p.find('?') == std::string::npos ? "?" : "&");
  p += "fieldManager=" + QueryEscape(field_manager);
  if (force) p += "&force=true";
  return Request("PATCH", p, object.dump(), "application/apply-patch+yaml", stop, traceparent);
}

Result<json> Client::Delete(std::string_view path, std::string_view propagation,
                            std::stop_token stop, std::string_view traceparent) {
  json options = {{"kind", "DeleteOptions"},
                  {"apiVersion", "v1"},
                  {"propagationPolicy", std::string(propagation)}};
  return Request("DELETE", path, options.dump(), "application/json", stop, traceparent);
}

namespace {

std::string VerbOf(std::string_view method) {
  if (method == "GET") return "get";
  if (method == "POST") return "create";
  if (method == "PUT") return "update";
  if (method == "PATCH") return "patch";
  if (method == "DELETE") return "delete";
  return std::string(method);
}

class CurlKubeClient final : public Client {
 public:
  CurlKubeClient(Config config, ClientOptions options, std::unique_ptr<http::Client> http)
      : Client(std::move(config)), options_(std::move(options)), http_(std::move(http)) {}

  Result<json> Request(std::string_view method, std::string_view path, std::string_view body,
                       std::string_view content_type, std::stop_token stop,
                       std::string_view traceparent) override {
    http::Request req;
    req.method = std::string(method);
    req.url = config_.server + std::string(path);
    req.timeout = options_.timeout;
    req.headers.emplace_back("Accept", "application/json");
    if (!traceparent.empty()) req.headers.emplace_back("traceparent", std::string(traceparent));
    if (!body.empty()) {
      req.headers.emplace_back("Content-Type", std::string(content_type));
      req.body = std::string(body);
    }
    auto token = Token();
    if (!token.ok()) return token.status();
    if (!token.value().empty()) {
      req.headers.emplace_back("Authorization", "Bearer " + token.value());
    }
    std::string what = VerbOf(method) + " " + std::string(path.substr(0, path.find('?')));
    auto resp = http_->Send(req, stop);
    if (!resp.ok()) return resp.status();
    const auto& r = resp.value();
    if (r.status >= 400) return StatusFromResponse(r, what + " on " + config_.server);
    if (r.status < 200 || r.status >= 300) {
      return Status::Failed(what + ": unexpected HTTP " + std::to_string(r.status));
    }
    if (r.body.empty()) return json();
    json parsed = json::parse(r.body, nullptr, false);
    if (parsed.is_discarded()) {
      return Status::Failed(what + ": the API server's answer is not JSON");
    }
    return parsed;
  }

 private:
  // The bearer token: fixed, or re-read from token_file at most once a
  // minute (client-go's cachingTokenSource for bound service-account tokens).
  Result<std::string> Token() {
    if (config_.token_file.empty()) return config_.token;
    std::lock_guard<std::mutex> lock(mu_);
    auto now = std::chrono::steady_clock::now();
    if (cached_token_.empty() || now - token_read_ > std::chrono::minutes(1)) {
      auto read = ReadSmallFile(config_.token_file, "token file");
      if (!read.ok()) {
        if (!cached_token_.empty()) return cached_token_;
        return read.status();
      }
      std::string t = read.value();
      while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
      cached_token_ = t;
      token_read_ = now;
    }
    return cached_token_;
  }

  ClientOptions options_;
  std::unique_ptr<http::Client> http_;
  std::mutex mu_;
  std::string cached_token_;
  std::chrono::steady_clock::time_point token_read_{};
};

}  // namespace

Result<std::unique_ptr<Client>> MakeClient(Config config, ClientOptions options) {
  if (config.server.empty()) return Status::Invalid(config.source + ": no API server URL");
  if (config.server.rfind("https://", 0) != 0 && !IsLoopbackServer(config.server)) {
    return Status::Invalid(config.source + ": server " + config.server +
                           " must be https:// (plain http only on loopback)");
  }
  http::ClientOptions h;
  h.user_agent = options.user_agent;
  h.max_attempts = options.max_attempts;
  h.ca_pem = config.ca_pem;
  h.client_cert_pem = config.client_cert_pem;
  h.client_key_pem = config.client_key_pem;
  h.insecure_skip_verify = config.insecure_skip_tls_verify;
  auto http = http::MakeCurlClient(std::move(h));
  return std::unique_ptr<Client>(
      new CurlKubeClient(std::move(config), std::move(options), std::move(http)));
}

std::string CollectionPath(std::string_view group_version, std::string_view ns,
                           std::string_view plural) {
  std::string p = group_version.find('/') == std::string_view::npos ? "/api/" : "/apis/";
  p += group_version;
  if (!ns.empty()) {
    p += "/namespaces/";
    p += ns;
  }
  p += "/";
  p += plural;
  return p;
}

std::string ObjectPath(std::string_view group_version, std::string_view ns, std::string_view plural,
                       std::string_view name) {
  return CollectionPath(group_version, ns, plural) + "/" + std::string(name);
}

std::string QueryEscape(std::string_view value) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

}  // namespace reconcile::kube
