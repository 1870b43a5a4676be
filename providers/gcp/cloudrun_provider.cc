#include "gcp/cloudrun_provider.h"

#include <algorithm>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "gcp/cloudrun_service.h"
#include "gcp/cloudrun_validate.h"
#include "http/google_auth.h"
#include "http/token_source.h"

namespace reconcile::gcp {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// Characters allowed in a resource name or page token that goes into a URL.
bool IsSafeName(const std::string& s) {
  if (s.empty() || s.size() > 1024) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '/' || c == '~';
  });
}

// A Cloud Run service id: ^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$
bool IsServiceId(const std::string& s) {
  if (s.empty() || s.size() > 49 || s.front() < 'a' || s.front() > 'z' || s.back() == '-') {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

std::string Str(const json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

// Waits `d` or until `stop`; true when stopped.
bool WaitFor(std::stop_token stop, std::chrono::milliseconds d) {
  std::mutex m;
  std::condition_variable_any cv;
  std::unique_lock lock(m);
  cv.wait_for(lock, stop, d, [] { return false; });
  return stop.stop_requested();
}

// Calls waiting(true) now and waiting(false) when it goes out of scope.
class WaitingScope {
 public:
  explicit WaitingScope(const std::function<void(bool)>& waiting) : waiting_(waiting) {
    if (waiting_) waiting_(true);
  }
  ~WaitingScope() {
    if (waiting_) waiting_(false);
  }
  WaitingScope(const WaitingScope&) = delete;
  WaitingScope& operator=(const WaitingScope&) = delete;

 private:
  const std::function<void(bool)>& waiting_;
};

std::string ShortRevision(const std::string& name) { return name.substr(name.rfind('/') + 1); }

class CloudRunProvider final : public Provider {
 public:
  CloudRunProvider(Target target, CloudRunSettings settings, CloudRunOptions options)
      : target_(std::move(target)), s_(std::move(settings)), opt_(std::move(options)) {
    if (!opt_.client) opt_.client = http::MakeCurlClient();
    if (!opt_.auth_client) {
      http::ClientOptions o;
      o.plain_http_hosts = {http::kGoogleMetadataHost};
      o.max_attempts = 3;
      o.connect_timeout = std::chrono::seconds(3);
      opt_.auth_client = http::MakeCurlClient(o);
    }
    parent_ = "projects/" + s_.project_id + "/locations/" + s_.region;
    who_ =
        "Target '" + target_.name + "' (Google Cloud Run, " + s_.project_id + "/" + s_.region + ")";
  }

  ProviderSchema Schema() const override {
    ProviderSchema schema;
    schema.updatable_fields = {
        "image",       "port",         "hostPort",    "command",
        "args",        "env",          "secretEnv",   "publish",
        "secretFiles", "networks",     "volumes",     "ports",
        "replicas",    "restart",      "stopSignal",  "stopGracePeriod",
        "user",        "capAdd",       "capDrop",     "readOnlyRootFilesystem",
        "hostname",    "resources",    "healthCheck", "strategy",
        "labels",      "secretDigests"};
    schema.instance_per_replica = false;
    schema.target_schema = CloudRunTargetSchema();
    return schema;
  }

  PlanChangeResponse PlanChange(const PlanChangeRequest& request) const override {
    // Every field of the Service that reconcile sets can be patched (a new
    // revision); only moving the agent to another Target replaces it.
    PlanChangeResponse r;
    for (const std::string& path : request.changed) {
      if (path.substr(0, path.find('.')) == "target") r.requires_replace.insert(path);
    }
    return r;
  }

  ObserveResponse Observe(const ObserveRequest&) override {
    ObserveResponse r;
    std::stop_token stop = stop_.get_token();
    std::string page_token;
    for (int page = 0;; ++page) {
      if (page >= opt_.max_list_pages) {
        r.warnings.push_back(who_ + ": more than " + std::to_string(opt_.max_list_pages) +
                             " pages of services; the rest were not read");
        break;
      }
      std::string path = parent_ + "/services?pageSize=100";
      if (!page_token.empty()) path += "&pageToken=" + http::FormEncode(page_token);
      Result<json> answer = Call("GET", path, nullptr, stop);
      if (!answer.ok()) {
        r.status = answer.status();
        r.instances.clear();
        return r;
      }
      const json& services = (*answer).contains("services") ? (*answer)["services"] : json();
      if (!services.is_null() && !services.is_array()) {
        r.status = Status::Failed(who_ + ": services.list answered 'services' that is not a list");
        return r;
      }
      if (services.is_array()) {
        for (const json& service : services) {
          if (Str(service, "name").rfind(parent_ + "/services/", 0) != 0) continue;
          if (ServiceEnvironment(service) != target_.environment) continue;  // another's
          if (auto o = ObservedFromService(service)) r.instances.push_back(std::move(*o));
        }
      }
      page_token = Str(*answer, "nextPageToken");
      if (page_token.empty()) break;
      if (page_token.size() > 1024) {
        r.status = Status::Failed(who_ + ": services.list answered an oversized nextPageToken");
        return r;
      }
    }
    std::sort(r.instances.begin(), r.instances.end(), [](const auto& a, const auto& b) {
      return std::tie(a.agent, a.name) < std::tie(b.agent, b.name);
    });
    return r;
  }

  ApplyChangeResponse ApplyChange(const ApplyChangeRequest& request) override {
    std::stop_source call;
    auto fire = [&call] { call.request_stop(); };
    std::stop_callback on_request(request.stop, fire);
    std::stop_callback on_provider(stop_.get_token(), fire);
    Apply apply(*this, request, call.get_token());
    ApplyChangeResponse r = apply.Run();
    // Defence in depth: no secret value in what goes back.
    r.status = Status(r.status.code(), Redact(r.status.message(), request));
    for (std::string& w : r.warnings) w = Redact(w, request);
    return r;
  }

  void Stop() override { stop_.request_stop(); }

 private:
  static std::string Redact(std::string text, const ApplyChangeRequest& request) {
    for (const auto& [name, value] : request.secret_values) {
      if (value.size() >= 3) text = http::Redact(std::move(text), {value});
    }
    return text;
  }

  Result<std::string> Token(std::stop_token stop) {
    http::TokenSource* source = nullptr;
    {
      std::lock_guard lock(auth_mu_);
      if (!tokens_) {
        http::GoogleAuthOptions o;
        o.auth_endpoint = s_.auth_endpoint;
        o.getenv = opt_.getenv;
        Result<std::unique_ptr<http::TokenSource>> made =
            http::NewGoogleTokenSource(*opt_.auth_client, o);
        if (!made.ok()) return made.status().WithContext(who_);
        tokens_ = std::move(*made);
      }
      source = tokens_.get();
    }
    Result<std::string> token = source->Token(stop);
    if (!token.ok()) {
      Status st = token.status();
      const bool key_file = opt_.getenv && opt_.getenv("GOOGLE_APPLICATION_CREDENTIALS");
      if (!key_file && st.code() == Code::kUnavailable) {
        // No key, and no metadata server answered: credentials are missing,
        // which a person must fix.
        st = Status::Invalid(
            "no Google credentials: set GOOGLE_APPLICATION_CREDENTIALS to the path of a "
            "service-account JSON key file, or run where a metadata server answers "
            "(metadata.google.internal, GCE_METADATA_HOST or the Target's gcp.authEndpoint); " +
            st.message());
      }
      return st.WithContext(who_);
    }
    return token;
  }

  // One API call: `path` after "<endpoint>/v2/" (with its query). The JSON
  // answer of a 2xx, or a Status carrying the cloud's own message. A
  // non-empty `traceparent` is sent as the W3C `traceparent` header.
  Result<json> Call(const std::string& method, const std::string& path, const json* body,
                    std::stop_token stop, const std::string& traceparent = "") {
    if (stop.stop_requested()) return Status::Cancelled(who_ + ": stop requested");
    Result<std::string> token = Token(stop);
    if (!token.ok()) return token.status();
    http::Request req;
    req.method = method;
    req.url = s_.endpoint + "/v2/" + path;
    req.headers = {{"Authorization", "Bearer " + *token}, {"Accept", "application/json"}};
    if (!traceparent.empty()) req.headers.emplace_back("traceparent", traceparent);
    if (body) {
      req.headers.emplace_back("Content-Type", "application/json");
      req.body = body->dump();
    }
    const std::string what = "Cloud Run " + method + " " + http::UrlForMessage(req.url);
    Result<http::Response> res = opt_.client->Send(req, stop);
    if (!res.ok()) {
      return Status(res.status().code(),
                    http::Redact(who_ + ": " + res.status().message(), {*token}));
    }
    const http::Response& resp = *res;
    json answer = resp.body.empty() ? json::object()
                                    : json::parse(resp.body, nullptr, /*allow_exceptions=*/false);
    if (resp.status >= 200 && resp.status < 300) {
      if (answer.is_discarded() || !answer.is_object()) {
        return Status::Failed(who_ + ": " + what + " answered " + std::to_string(resp.status) +
                              " with a body that is not a JSON object");
      }
      return answer;
    }
    std::string message, code;
    if (answer.is_object() && answer.contains("error") && answer["error"].is_object()) {
      message = Str(answer["error"], "message");
      code = Str(answer["error"], "status");
    }
    if (message.empty()) message = "(no error message)";
    std::string text = who_ + ": " + what + " answered " + std::to_string(resp.status) +
                       (code.empty() ? "" : " " + http::Printable(code, 40)) + ": " +
                       http::Printable(message, 500);
    text = http::Redact(std::move(text), {*token});
    if (resp.status == 404) return Status::NotFound(text);
    if (resp.status == 409) return Status::Conflict(text);
    if (resp.status == 401 || resp.status == 403) {
      return Status::Invalid(text +
                             " (check the credentials and that the account has the Cloud Run "
                             "Admin role, roles/run.admin, and may act as the runtime service "
                             "account, roles/iam.serviceAccountUser)");
    }
    if (http::IsRetriedStatus(resp.status)) return Status::Unavailable(text);
    return Status::Invalid(text);
  }

  // One ApplyChange call.
  class Apply {
   public:
    Apply(CloudRunProvider& p, const ApplyChangeRequest& request, std::stop_token stop)
        : p_(p),
          req_(request),
          stop_(stop),
          agent_(request.change.name),
          environment_(p.target_.environment),
          id_(ScopedName(environment_, agent_)) {
      name_ = p_.parent_ + "/services/" + id_;
    }

    ApplyChangeResponse Run() {
      ApplyChangeResponse r;
      r.health = "unknown";
      if (!IsServiceId(id_)) {
        r.status = Status::Invalid(p_.who_ + ": '" + http::Printable(id_, 80) +
                                   "' cannot be a Cloud Run service name");
        return r;
      }
      r.status = req_.change.action == Action::kDelete ? Delete(r) : Deploy(r);
      return r;
    }

   private:
    void Progress(const std::string& message) {
      if (req_.progress) req_.progress(message);
    }
    Status Cancelled(const std::string& what) {
      return Status::Cancelled("agent " + id_ + ": stopped while " + what +
                               "; what Cloud Run started goes on, and the next run converges");
    }

    // Reads the Service: nullopt (and ok) when it does not exist.
    Status Get(std::optional<json>* out) {
      Result<json> got = p_.Call("GET", name_, nullptr, stop_, req_.traceparent);
      if (got.ok()) {
        *out = std::move(*got);
        return Status::Ok();
      }
      out->reset();
      if (got.status().code() == Code::kNotFound) return Status::Ok();
      return got.status();
    }

    Status NotOwned() {
      return Status::Conflict(p_.who_ + ": a service named '" + id_ +
                              "' exists and is not managed by reconcile (no " + kGcpLabelManagedBy +
                              " label) or belongs to another environment (" + kLabelEnvironment +
                              "); reconcile never changes it: delete "
                              "or rename it, or rename the agent");
    }

    // Ours, and of this Target's environment.
    bool Owned(const json& service) const {
      return IsOwned(service) && ServiceEnvironment(service) == environment_;
    }

    Status Deploy(ApplyChangeResponse& r) {
      const json& spec = req_.change.desired.get();
      if (!spec.is_object()) {
        return Status::Invalid("agent " + id_ + ": the change carries no spec to deploy");
      }
      ValidateAgentResponse v = ValidateCloudRunAgent(
          {agent_, p_.target_.name, p_.target_.settings, spec, nullptr, environment_});
      std::string refused;
      for (const ProviderDiagnostic& d : v.diagnostics) {
        if (d.severity == Severity::kError) {
          refused += (refused.empty() ? "" : "; ") + d.field + ": " + d.message;
        }
      }
      if (!refused.empty()) return Status::Invalid("agent " + id_ + ": " + refused);
      json body =
          ServiceBody(agent_, spec, p_.s_, req_.change.desired_hash, req_.revision, environment_);

      std::optional<json> existing;
      if (Status st = Get(&existing); !st.ok()) return st;
      if (existing && !Owned(*existing)) return NotOwned();
      Result<json> op = Status::Internal("agent " + id_ + ": no call was made");
      if (!existing) {
        Progress("creating Cloud Run service " + id_ + " in " + p_.parent_);
        op = p_.Call("POST", p_.parent_ + "/services?serviceId=" + id_, &body, stop_,
                     req_.traceparent);
        if (!op.ok() && op.status().code() == Code::kConflict) {
          // Created meanwhile (a retry after a lost answer): update it if ours.
          if (Status st = Get(&existing); !st.ok()) return st;
          if (!existing) return op.status();
          if (!Owned(*existing)) return NotOwned();
        }
      }
      if (existing) {
        const bool replace = req_.change.action == Action::kReplace;
        Progress(std::string(replace ? "replacing" : "updating") + " Cloud Run service " + id_ +
                 " (a new revision)");
        std::string path = name_;
        if (!replace) path += "?updateMask=" + http::FormEncode(ServiceUpdateMask());
        op = p_.Call("PATCH", path, &body, stop_, req_.traceparent);
      }
      if (!op.ok()) return op.status();
      Result<json> done = Wait(*op);
      if (!done.ok()) {
        if (done.status().code() == Code::kFailed) r.health = "unhealthy";
        if (done.status().code() == Code::kCancelled) {
          r.instances = {{name_, id_, existing ? Str(*existing, "uri") : "", {}}};
        } else {
          Record(r);
        }
        return done.status();
      }
      json service = *done;
      if (!service.is_object() || Str(service, "name") != name_) {
        std::optional<json> now;
        if (Status st = Get(&now); !st.ok()) return st;
        if (!now) return Status::Failed(p_.who_ + ": service " + id_ + " vanished after deploy");
        service = std::move(*now);
      }
      r.health = ServiceHealth(service);
      if (r.health == "starting") {
        // Done, but the Service is still settling: read it until it is.
        Result<json> settled = Settle();
        if (!settled.ok()) {
          Record(r);
          return settled.status();
        }
        service = std::move(*settled);
        r.health = ServiceHealth(service);
      }
      r.instances = {{name_, id_, Str(service, "uri"), {}}};
      if (r.health != "healthy") {
        const json& cond =
            service.contains("terminalCondition") ? service["terminalCondition"] : json::object();
        return Status::Failed(
            p_.who_ + ": revision " + ShortRevision(Str(service, "latestCreatedRevision")) +
            " of service " + id_ +
            " did not become ready: " + http::Printable(Str(cond, "message"), 500) +
            "; traffic stays on the latest ready revision");
      }
      Progress("revision " + ShortRevision(Str(service, "latestReadyRevision")) +
               " is ready and serves all traffic at " + Str(service, "uri"));
      return Status::Ok();
    }

    // Reads the Service until it is healthy or unhealthy.
    Result<json> Settle() {
      WaitingScope scope(req_.waiting);
      const auto deadline = Clock::now() + p_.opt_.operation_timeout;
      while (true) {
        if (WaitFor(stop_, p_.opt_.poll_interval)) {
          return Cancelled("waiting for service " + id_ + " to be ready");
        }
        std::optional<json> now;
        if (Status st = Get(&now); !st.ok()) return st;
        if (!now) return Status::Failed(p_.who_ + ": service " + id_ + " vanished");
        if (ServiceHealth(*now) != "starting") return *now;
        if (Clock::now() > deadline) {
          return Status::Unavailable(p_.who_ + ": service " + id_ + " was not ready in time");
        }
      }
    }

    // What exists after a failure: the Service, when it does.
    void Record(ApplyChangeResponse& r) {
      std::stop_source fresh;  // even after a stop: one quick read
      Result<json> got = p_.Call("GET", name_, nullptr, fresh.get_token(), req_.traceparent);
      if (got.ok() && Owned(*got)) r.instances = {{name_, id_, Str(*got, "uri"), {}}};
    }

    // Follows a google.longrunning.Operation to its end: the response, or
    // the operation's error (kFailed).
    Result<json> Wait(json op) {
      const std::string op_name = Str(op, "name");
      if (op.value("done", false) != true) {
        if (!IsSafeName(op_name) || op_name.rfind(p_.parent_ + "/operations/", 0) != 0) {
          return Status::Failed(p_.who_ + ": the answer names no operation of " + p_.parent_);
        }
        WaitingScope scope(req_.waiting);
        const auto deadline = Clock::now() + p_.opt_.operation_timeout;
        int reads = 0;
        while (op.value("done", false) != true) {
          if (WaitFor(stop_, p_.opt_.poll_interval)) {
            return Cancelled("waiting for Cloud Run operation " + ShortRevision(op_name));
          }
          if (Clock::now() > deadline) {
            return Status::Unavailable(p_.who_ + ": operation " + ShortRevision(op_name) +
                                       " of service " + id_ + " was not done in time");
          }
          Result<json> now = p_.Call("GET", op_name, nullptr, stop_, req_.traceparent);
          if (!now.ok()) {
            if (now.status().code() == Code::kCancelled) {
              return Cancelled("waiting for Cloud Run operation " + ShortRevision(op_name));
            }
            return now.status();
          }
          op = std::move(*now);
          if (++reads % 5 == 1) {
            Progress("waiting for Cloud Run operation " + ShortRevision(op_name) + " (" + id_ +
                     ")");
          }
        }
      }
      if (op.contains("error") && op["error"].is_object()) {
        return Status::Failed(p_.who_ + ": operation " + ShortRevision(op_name) + " of service " +
                              id_ +
                              " failed: " + http::Printable(Str(op["error"], "message"), 500));
      }
      return op.contains("response") ? op["response"] : json::object();
    }

    Status Delete(ApplyChangeResponse& r) {
      std::optional<json> existing;
      if (Status st = Get(&existing); !st.ok()) return st;
      if (!existing) {
        Progress("Cloud Run service " + id_ + " is already gone");
        return Status::Ok();
      }
      if (!Owned(*existing)) return NotOwned();
      Progress("deleting Cloud Run service " + id_);
      Result<json> op = p_.Call("DELETE", name_, nullptr, stop_, req_.traceparent);
      if (!op.ok()) {
        if (op.status().code() == Code::kNotFound) return Status::Ok();
        r.instances = {{name_, id_, Str(*existing, "uri"), {}}};
        return op.status();
      }
      Result<json> done = Wait(*op);
      if (!done.ok()) {
        r.instances = {{name_, id_, Str(*existing, "uri"), {}}};
        return done.status();
      }
      return Status::Ok();
    }

    CloudRunProvider& p_;
    const ApplyChangeRequest& req_;
    std::stop_token stop_;
    std::string agent_;        // the agent's own name (labels, annotations)
    std::string environment_;  // Target::environment
    std::string id_;           // ScopedName(environment_, agent_): the service id
    std::string name_;
  };

  Target target_;
  CloudRunSettings s_;
  CloudRunOptions opt_;
  std::string parent_;
  std::string who_;
  std::stop_source stop_;
  std::mutex auth_mu_;
  std::unique_ptr<http::TokenSource> tokens_;
};

}  // namespace

Result<std::unique_ptr<Provider>> NewCloudRunProvider(const Target& target,
                                                      CloudRunOptions options) {
  Result<CloudRunSettings> settings = DecodeCloudRunSettings(target.name, target.settings);
  if (!settings.ok()) return settings.status();
  return std::unique_ptr<Provider>(
      std::make_unique<CloudRunProvider>(target, std::move(*settings), std::move(options)));
}

ProviderDefinition CloudRunProviderDefinition() {
  ProviderDefinition d;
  d.create = [](const Target& target) { return NewCloudRunProvider(target); };
  d.validate_target = ValidateCloudRunTarget;
  d.validate_agent = ValidateCloudRunAgent;
  return d;
}

void RegisterCloudRunProvider(ProviderRegistry& registry) {
  registry.Register("gcp", CloudRunProviderDefinition());
}

}  // namespace reconcile::gcp
