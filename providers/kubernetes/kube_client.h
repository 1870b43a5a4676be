// reconcile::kube: how reconcile talks to a Kubernetes API server (issue #10).
// The one client both the Kubernetes target (providers/kubernetes) and the
// controller's leader election (controller/leader_election) use.
//
// Configuration follows client-go's rules (clientcmd and rest.InClusterConfig):
//
//  - LoadConfig(options): an explicit options.kubeconfig path; else the first
//    file of $KUBECONFIG (':'-separated; files that do not exist are
//    skipped); else in-cluster when $KUBERNETES_SERVICE_HOST and
//    $KUBERNETES_SERVICE_PORT are set; else ~/.kube/config. options.context
//    selects a context (default: the file's current-context).
//  - kubeconfig: clusters[].cluster.{server, certificate-authority(-data),
//    insecure-skip-tls-verify}, users[].user.{token, tokenFile,
//    client-certificate(-data), client-key(-data)}, contexts[].context.
//    {cluster, user, namespace}. Relative file paths are relative to the
//    kubeconfig's folder. exec and auth-provider plugins are refused with a
//    message naming them (not supported yet).
//  - in-cluster: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT,
//    the CA and token from /var/run/secrets/kubernetes.io/serviceaccount/
//    (InClusterOptions::root changes that folder, for tests), the namespace
//    from its `namespace` file. The token file is re-read at most once a
//    minute (bound service-account tokens rotate), as client-go does.
//
// Errors name the file (and field) that is wrong. Token, key and
// certificate contents never appear in errors or logs.
//
// Client: one HTTP request per call over reconcile::http (libcurl, TLS
// verified against the cluster CA, retries on 429/5xx). An answer with a
// status >= 400 becomes a Status built from the API server's own Status
// object: 404 -> kNotFound, 409 -> kConflict (an AlreadyExists or a
// resourceVersion / server-side-apply conflict; ApiError::reason tells
// which), 401/403 -> kFailed naming the verb and resource, 400/422 ->
// kInvalid with the server's message, other -> kUnavailable (5xx) or
// kFailed.
//
// Thread-safety: a Client may be used from several threads at once.
#pragma once

#include <chrono>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "http/http_client.h"
#include "reconcile/status.h"

namespace reconcile::kube {

struct Config {
  std::string server;  // "https://127.0.0.1:6443", no trailing slash
  std::string ca_pem;  // cluster CA (PEM); empty: the system store
  bool insecure_skip_tls_verify = false;
  // Credentials (secret: never logged).
  std::string token;
  std::string token_file;  // re-read at most once a minute when set
  std::string client_cert_pem;
  std::string client_key_pem;
  std::string namespace_name;  // the context's (or in-cluster) namespace; may be ""
  // For messages: "kubeconfig /root/.kube/config (context kind-a)" or
  // "in-cluster service account".
  std::string source;
};

struct ConfigOptions {
  std::string kubeconfig;  // explicit path; "" = the rules above
  std::string context;     // "" = current-context
  // Folder of the service-account files for in-cluster config.
  std::string in_cluster_root = "/var/run/secrets/kubernetes.io/serviceaccount";
};

Result<Config> LoadConfig(const ConfigOptions& options);
Result<Config> LoadKubeconfig(const std::string& path, const std::string& context);
Result<Config> InClusterConfig(const std::string& root);

// What an error answer said (from the API server's Status object).
struct ApiError {
  long code = 0;
  std::string reason;   // "NotFound", "AlreadyExists", "Conflict", "Forbidden", ...
  std::string message;  // the server's message
};

// A response with status >= 400 as a Status (see above), `what` naming the
// request ("get lease kube-system/reconcile").
Status StatusFromResponse(const http::Response& response, std::string_view what);
// The API error in a response body ({} when the body is not a Status).
ApiError ParseApiError(const http::Response& response);

class Client {
 public:
  virtual ~Client() = default;

  // One request to `path` ("/api/v1/namespaces/x/services/y?..."), the body
  // sent with `content_type` when not empty. A non-empty `traceparent` is
  // sent as the W3C `traceparent` header (ApplyChangeRequest::traceparent).
  // Returns the parsed JSON body of a 2xx answer (null for an empty body),
  // or the Status above.
  virtual Result<nlohmann::json> Request(std::string_view method, std::string_view path,
                                         std::string_view body = {},
                                         std::string_view content_type = "application/json",
                                         std::stop_token stop = {},
                                         std::string_view traceparent = {}) = 0;

  // Shorthands.
  Result<nlohmann::json> Get(std::string_view path, std::stop_token stop = {},
                             std::string_view traceparent = {});
  // POST (create); kConflict with reason AlreadyExists when it exists.
  Result<nlohmann::json> Create(std::string_view collection_path, const nlohmann::json& object,
                                std::stop_token stop = {});
  // PUT (update, guarded by object.metadata.resourceVersion when set);
  // kConflict with reason Conflict when the resourceVersion is stale.
  Result<nlohmann::json> Update(std::string_view path, const nlohmann::json& object,
                                std::stop_token stop = {});
  // Server-side apply: PATCH application/apply-patch+yaml (JSON is YAML) with
  // ?fieldManager=<manager>[&force=true]. Without force, a field another
  // manager owns is kConflict.
  Result<nlohmann::json> Apply(std::string_view path, const nlohmann::json& object,
                               std::string_view field_manager, bool force,
                               std::stop_token stop = {}, std::string_view traceparent = {});
  // DELETE with propagationPolicy (Background / Foreground / Orphan).
  // kNotFound when it is gone already.
  Result<nlohmann::json> Delete(std::string_view path, std::string_view propagation = "Background",
                                std::stop_token stop = {}, std::string_view traceparent = {});

  const Config& config() const { return config_; }

 protected:
  explicit Client(Config config) : config_(std::move(config)) {}
  Config config_;
};

struct ClientOptions {
  std::chrono::milliseconds timeout{30000};  // one attempt
  int max_attempts = 5;                      // 1 = no retry (leader election)
  std::string user_agent;                    // default "reconcile/<version>"
};

// The real client over reconcile::http::MakeCurlClient. kInvalid when the
// config cannot be used (no server, a server that is not https:// unless it
// is loopback).
Result<std::unique_ptr<Client>> MakeClient(Config config, ClientOptions options = {});

// Paths. `group_version` is "v1" for the core group (/api/v1), else
// "apps/v1" (/apis/apps/v1). `ns` "" for cluster-scoped resources.
std::string CollectionPath(std::string_view group_version, std::string_view ns,
                           std::string_view plural);
std::string ObjectPath(std::string_view group_version, std::string_view ns, std::string_view plural,
                       std::string_view name);
// Percent-encodes a query value (label selectors: "a=b,c in (d)").
std::string QueryEscape(std::string_view value);

}  // namespace reconcile::kube
