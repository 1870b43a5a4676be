#include "aws/apprunner_provider.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "aws/apprunner_spec.h"
#include "aws/apprunner_wire.h"
#include "aws/credentials.h"
#include "aws/endpoint.h"
#include "http/http_client.h"
#include "reconcile/clock.h"
#include "reconcile/observation.h"

extern char** environ;

namespace reconcile::aws {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

// The top-level spec fields UpdateService (and TagResource) change in place.
const std::set<std::string> kInPlaceFields = {"image",    "port",     "command",   "args",
                                              "env",      "publish",  "resources", "labels",
                                              "replicas", "strategy", "restart",   "healthCheck"};

// The link-local container credentials hosts (ECS, EKS Pod Identity).
const std::vector<std::string> kContainerCredentialHosts = {"169.254.170.2", "169.254.170.23"};

constexpr int kMaxPages = 500;  // a hostile NextToken never loops forever

Environment ProcessEnvironment() {
  Environment env;
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

std::string Str(const json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

const json& Obj(const json& j, const char* key) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

// What the provider reads of a service (DescribeService's Service or a
// ListServices summary).
struct ServiceInfo {
  std::string arn;
  std::string name;
  std::string url;
  std::string status;  // ServiceStatus
  std::string image;
  bool is_public = true;
};

ServiceInfo ParseService(const json& s) {
  ServiceInfo i;
  i.arn = Str(s, "ServiceArn");
  i.name = Str(s, "ServiceName");
  i.url = Str(s, "ServiceUrl");
  i.status = Str(s, "Status");
  i.image = Str(Obj(Obj(s, "SourceConfiguration"), "ImageRepository"), "ImageIdentifier");
  const json& ingress = Obj(Obj(s, "NetworkConfiguration"), "IngressConfiguration");
  const json& pub = Obj(ingress, "IsPubliclyAccessible");
  if (pub.is_boolean()) i.is_public = pub.get<bool>();
  return i;
}

std::string EndpointOf(const ServiceInfo& s) {
  if (s.url.empty() || !s.is_public) return "";
  return s.url.rfind("https://", 0) == 0 ? s.url : "https://" + s.url;
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// App Runner's ServiceName: [A-Za-z0-9][A-Za-z0-9-_]{3,39}.
bool ValidServiceName(const std::string& s) {
  if (s.size() < 4 || s.size() > 40) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '-' && c != '_'))) return false;
  }
  return true;
}

// The environment a service's tags name (kLabelEnvironment; "" when absent:
// the plain tree).
std::string EnvironmentTag(const std::map<std::string, std::string>& tags) {
  auto it = tags.find(kLabelEnvironment);
  return it == tags.end() ? "" : it->second;
}

// Ends in-flight calls of one request when either the request's stop or the
// provider's Stop() is asked for.
class CallStop {
 public:
  CallStop(std::stop_token request, std::stop_token provider)
      : on_request_(request, [this] { source_.request_stop(); }),
        on_provider_(provider, [this] { source_.request_stop(); }) {}
  std::stop_token token() const { return source_.get_token(); }
  bool stopped() const { return source_.stop_requested(); }

 private:
  std::stop_source source_;
  std::stop_callback<std::function<void()>> on_request_;
  std::stop_callback<std::function<void()>> on_provider_;
};

class AppRunnerProvider : public Provider {
 public:
  AppRunnerProvider(Target target, AppRunnerOptions options, Environment env)
      : target_(std::move(target)),
        options_(std::move(options)),
        env_(std::move(env)),
        client_(http::MakeCurlClient(options_.http)),
        chain_(env_, MakeFetch(options_.http), options_.now) {}

  ProviderSchema Schema() const override {
    ProviderSchema s;
    s.updatable_fields = kInPlaceFields;
    s.instance_per_replica = false;
    s.target_schema = AppRunnerTargetSchema();
    return s;
  }

  PlanChangeResponse PlanChange(const PlanChangeRequest& request) const override {
    // Everything UpdateService takes is in place; `target` (another
    // provider instance) and any field App Runner has no member for (they
    // are refused by validation) force a replacement.
    return PlanChangeFromSchema(Schema(), request);
  }

  ObserveResponse Observe(const ObserveRequest&) override {
    ObserveResponse r;
    CallStop stop({}, stop_.get_token());
    auto session = Connect();
    if (!session.ok()) {
      r.status = session.status();
      return r;
    }
    Calls calls(*this, *session, stop.token());
    auto list = calls.ListServices();
    if (!list.ok()) {
      r.status = list.status();
      return r;
    }
    for (const ServiceInfo& summary : *list) {
      if (summary.status == "DELETED" || summary.arn.empty()) continue;
      auto tags = calls.Tags(summary.arn);
      if (!tags.ok()) {
        if (tags.status().code() == Code::kNotFound) continue;  // deleted meanwhile
        r.status = tags.status();
        return r;
      }
      auto managed = tags->find(kLabelManagedBy);
      auto agent = tags->find(kLabelAgent);
      if (managed == tags->end() || managed->second != kManagedByValue || agent == tags->end() ||
          agent->second.empty()) {
        continue;  // not ours: never reported, never touched
      }
      if (EnvironmentTag(*tags) != target_.environment) continue;  // another environment's
      auto described = calls.Describe(summary.arn);
      if (!described.ok()) {
        if (described.status().code() == Code::kNotFound) continue;
        r.status = described.status();
        return r;
      }
      if (described->status == "DELETED") continue;
      ObservedInstance o;
      o.id = described->arn.empty() ? summary.arn : described->arn;
      o.name = described->name.empty() ? summary.name : described->name;
      o.agent = agent->second;
      if (auto h = tags->find(kLabelSpecHash); h != tags->end()) o.spec_hash = h->second;
      if (auto v = tags->find(kLabelRevision); v != tags->end()) o.revision = v->second;
      o.image = described->image;
      o.state = Lower(described->status);
      o.running = described->status == "RUNNING";
      o.endpoint = EndpointOf(*described);
      o.health = HealthOf(described->status);
      r.instances.push_back(std::move(o));
    }
    std::sort(r.instances.begin(), r.instances.end(), [](const auto& a, const auto& b) {
      return std::tie(a.agent, a.name) < std::tie(b.agent, b.name);
    });
    return r;
  }

  ApplyChangeResponse ApplyChange(const ApplyChangeRequest& request) override {
    Apply a(*this, request);
    return a.Run();
  }

  void Stop() override { stop_.request_stop(); }

 private:
  struct Session {
    Credentials credentials;
    std::string region;
    std::string endpoint;
  };

  static std::string HealthOf(const std::string& status) {
    if (status == "RUNNING") return "healthy";
    if (status == "OPERATION_IN_PROGRESS") return "starting";
    if (status == "CREATE_FAILED" || status == "DELETE_FAILED") return "unhealthy";
    return "";
  }

  static FetchFunction MakeFetch(const http::ClientOptions& base) {
    http::ClientOptions options = base;
    options.plain_http_hosts = kContainerCredentialHosts;
    std::shared_ptr<http::Client> client = http::MakeCurlClient(options);
    return [client](const std::string& url,
                    const std::vector<std::pair<std::string, std::string>>& headers)
               -> Result<std::string> {
      http::Request req{"GET", url, headers, "", milliseconds(10000)};
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

  static Environment WithAuthEndpoint(Environment env, const json& settings) {
    std::string auth = Str(settings, "authEndpoint");
    if (!auth.empty() && !env.count("AWS_CONTAINER_CREDENTIALS_FULL_URI") &&
        !env.count("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")) {
      env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = auth;
    }
    return env;
  }

  // Region, endpoint and credentials; errors name the Target.
  Result<Session> Connect() {
    const std::string where = "Target '" + target_.name + "' (AWS App Runner)";
    if (stop_.stop_requested()) return Status::Cancelled(where + ": stopped");
    auto region = ResolveRegion(env_, Str(target_.settings, "region"));
    if (!region.ok()) return region.status().WithContext(where);
    auto endpoint = AppRunnerEndpoint(env_, *region, Str(target_.settings, "endpoint"));
    if (!endpoint.ok()) return endpoint.status().WithContext(where);
    auto creds = chain_.Get();
    if (!creds.ok()) return creds.status().WithContext(where);
    return Session{creds->credentials, *region, endpoint->url};
  }

 public:
  // The App Runner calls of one Observe or ApplyChange.
  class Calls {
   public:
    // `traceparent`: the W3C header value every call carries ("" none).
    Calls(AppRunnerProvider& p, Session session, std::stop_token stop, std::string traceparent = "")
        : p_(p),
          s_(std::move(session)),
          stop_(std::move(stop)),
          traceparent_(std::move(traceparent)) {}

    Result<json> Call(const std::string& operation, const json& input) {
      if (stop_.stop_requested()) {
        return Status::Cancelled("App Runner " + operation + ": stopped before it was sent");
      }
      auto wire = SignedAppRunnerRequest(s_.endpoint, operation, input, s_.credentials, s_.region,
                                         p_.options_.now());
      if (!wire.ok()) return wire.status();
      http::Request req{wire->method, wire->url, wire->headers, wire->body, milliseconds(30000)};
      // After signing, so not a signed header: a tracing proxy may rewrite
      // it (W3C Trace Context) without breaking the signature, as the AWS
      // SDKs leave X-Amzn-Trace-Id unsigned.
      if (!traceparent_.empty()) req.headers.emplace_back("traceparent", traceparent_);
      auto resp = p_.client_->Send(req, stop_);
      if (!resp.ok()) return Status(resp.status().code(), Redact(resp.status().message()));
      return ParseAppRunnerAnswer(operation, resp->status, resp->body,
                                  resp->Header("x-amzn-ErrorType"), &s_.credentials);
    }

    Result<std::vector<ServiceInfo>> ListServices() {
      std::vector<ServiceInfo> out;
      std::string next;
      for (int page = 0; page < kMaxPages; ++page) {
        json input = {{"MaxResults", 20}};
        if (!next.empty()) input["NextToken"] = next;
        auto answer = Call("ListServices", input);
        if (!answer.ok()) return answer.status();
        const json& list = Obj(*answer, "ServiceSummaryList");
        if (!list.is_array()) {
          return Status::Unavailable(
              "App Runner ListServices: the answer has no ServiceSummaryList list");
        }
        for (const json& s : list) out.push_back(ParseService(s));
        next = Str(*answer, "NextToken");
        if (next.empty()) return out;
      }
      return Status::Unavailable("App Runner ListServices: more than " + std::to_string(kMaxPages) +
                                 " pages; giving up");
    }

    Result<std::map<std::string, std::string>> Tags(const std::string& arn) {
      auto answer = Call("ListTagsForResource", {{"ResourceArn", arn}});
      if (!answer.ok()) return answer.status();
      std::map<std::string, std::string> tags;
      const json& list = Obj(*answer, "Tags");
      if (!list.is_array()) return tags;
      for (const json& t : list) {
        std::string key = Str(t, "Key");
        if (!key.empty()) tags[key] = Str(t, "Value");
      }
      return tags;
    }

    Result<ServiceInfo> Describe(const std::string& arn) {
      auto answer = Call("DescribeService", {{"ServiceArn", arn}});
      if (!answer.ok()) return answer.status();
      const json& service = Obj(*answer, "Service");
      if (!service.is_object()) {
        return Status::Unavailable("App Runner DescribeService: the answer has no Service");
      }
      return ParseService(service);
    }

    // The status of operation `id` on the service (ListOperations), or
    // empty when App Runner does not list it.
    Result<std::string> OperationStatus(const std::string& arn, const std::string& id) {
      std::string next;
      for (int page = 0; page < kMaxPages; ++page) {
        json input = {{"ServiceArn", arn}};
        if (!next.empty()) input["NextToken"] = next;
        auto answer = Call("ListOperations", input);
        if (!answer.ok()) return answer.status();
        const json& list = Obj(*answer, "OperationSummaryList");
        if (list.is_array()) {
          for (const json& op : list) {
            if (Str(op, "Id") == id) return Str(op, "Status");
          }
        }
        next = Str(*answer, "NextToken");
        if (next.empty()) break;
      }
      return std::string();
    }

    std::string Redact(std::string m) const {
      for (const std::string* secret :
           {&s_.credentials.secret_access_key, &s_.credentials.session_token}) {
        if (secret->size() < 4) continue;
        for (auto at = m.find(*secret); at != std::string::npos; at = m.find(*secret, at)) {
          m.replace(at, secret->size(), "[redacted]");
        }
      }
      return m;
    }

    AppRunnerProvider& p_;
    const Session s_;
    std::stop_token stop_;
    const std::string traceparent_;
  };

 private:
  // One ApplyChange call.
  class Apply {
   public:
    Apply(AppRunnerProvider& p, const ApplyChangeRequest& request)
        : p_(p),
          req_(request),
          agent_(request.change.name),
          environment_(p.target_.environment),
          service_(ScopedName(environment_, agent_)),
          stop_(request.stop, p.stop_.get_token()) {}

    ApplyChangeResponse Run() {
      ApplyChangeResponse r;
      r.health = "unknown";
      auto session = p_.Connect();
      if (!session.ok()) {
        r.status = Redact(session.status());
        return r;
      }
      calls_.emplace(p_, *session, stop_.token(), req_.traceparent);
      r.status = Redact(Dispatch(&r.health));
      Finish(&r);
      return r;
    }

   private:
    std::string Where() const { return "agent " + agent_; }

    Status Dispatch(std::string* health) {
      const Change& ch = req_.change;
      if (!ValidServiceName(service_)) {
        return Status::Invalid(Where() +
                               ": App Runner service names have 4 to 40 letters, digits, "
                               "'-' or '_' ('" +
                               service_ + "'); rename the agent");
      }
      switch (ch.action) {
        case Action::kNoOp:
          return Status::Ok();
        case Action::kDelete:
          return DeleteAll();
        case Action::kReplace: {
          Status st = DeleteAll();
          if (!st.ok()) return st;
          return Ensure(health);
        }
        case Action::kCreate:
        case Action::kUpdate:
          return Ensure(health);
      }
      return Status::Internal(Where() + ": unknown action");
    }

    // The owned, live service of this agent, or nullopt; kConflict for a
    // service of that name that is not ours.
    Result<std::optional<ServiceInfo>> FindOwned() {
      auto list = calls_->ListServices();
      if (!list.ok()) return list.status();
      for (const ServiceInfo& s : *list) {
        if (s.name != service_ || s.status == "DELETED" || s.arn.empty()) continue;
        auto tags = calls_->Tags(s.arn);
        if (!tags.ok()) return tags.status();
        auto managed = tags->find(kLabelManagedBy);
        auto agent = tags->find(kLabelAgent);
        if (managed == tags->end() || managed->second != kManagedByValue || agent == tags->end() ||
            agent->second != agent_ || EnvironmentTag(*tags) != environment_) {
          return Status::Conflict(
              Where() + ": an App Runner service named '" + service_ +
              "' exists and is not managed by reconcile for this agent (it lacks the tags " +
              kLabelManagedBy + "=" + kManagedByValue + " and " + kLabelAgent + "=" + agent_ +
              (environment_.empty()
                   ? std::string(", or carries ") + kLabelEnvironment
                   : std::string(" and ") + kLabelEnvironment + "=" + environment_) +
              "); nothing was changed: rename the agent or remove that service");
        }
        return std::optional<ServiceInfo>(s);
      }
      return std::optional<ServiceInfo>();
    }

    // Create, or update the service that exists (idempotent).
    Status Ensure(std::string* health) {
      auto found = FindOwned();
      if (!found.ok()) return found.status();
      std::optional<ServiceInfo> existing = *found;
      if (existing && existing->status == "OPERATION_IN_PROGRESS") {
        auto settled = WaitSettled(existing->arn, "", "the operation in progress");
        if (!settled.ok()) return settled.status();
        existing = settled->status == "DELETED" ? std::nullopt : std::optional(*settled);
      }
      if (existing &&
          (existing->status == "CREATE_FAILED" || existing->status == "DELETE_FAILED")) {
        Progress("service " + agent_ + " is " + existing->status + ": deleting it to start again");
        Status st = DeleteService(existing->arn);
        if (!st.ok()) return st;
        existing.reset();
      }
      auto config = ServiceConfiguration(req_.change.desired.get(), p_.target_.settings,
                                         existing.has_value());
      if (!config.ok()) return config.status().WithContext(Where());
      Status st = existing ? Update(existing->arn, *config) : Create(*config);
      if (!st.ok()) {
        if (st.code() == Code::kFailed) *health = "unhealthy";
        return st;
      }
      const json& hc = Obj(req_.change.desired.get(), "healthCheck");
      *health = hc.is_object() ? "healthy" : "unknown";
      return Status::Ok();
    }

    json OwnershipTags() const {
      std::map<std::string, std::string> tags;
      const json& labels = Obj(req_.change.desired.get(), "labels");
      if (labels.is_object()) {
        for (const auto& [k, v] : labels.items())
          tags[k] = v.is_string() ? v.get<std::string>() : v.dump();
      }
      tags[kLabelManagedBy] = kManagedByValue;
      tags[kLabelAgent] = agent_;
      if (!environment_.empty()) tags[kLabelEnvironment] = environment_;
      tags[kLabelSpecHash] = req_.change.desired_hash;
      tags[kLabelRevision] = req_.revision;
      json list = json::array();
      for (const auto& [k, v] : tags) list.push_back({{"Key", k}, {"Value", v}});
      return list;
    }

    Status Create(const json& config) {
      json input = config;
      input["ServiceName"] = service_;
      input["Tags"] = OwnershipTags();
      Progress("creating App Runner service " + service_);
      auto answer = calls_->Call("CreateService", input);
      if (!answer.ok()) return answer.status().WithContext(Where());
      ServiceInfo s = ParseService(Obj(*answer, "Service"));
      if (s.arn.empty()) {
        return Status::Unavailable(Where() +
                                   ": App Runner CreateService: the answer has no ServiceArn");
      }
      return Finished(s.arn, Str(*answer, "OperationId"), "CREATE_SERVICE");
    }

    Status Update(const std::string& arn, const json& config) {
      json input = config;
      input["ServiceArn"] = arn;
      Progress("updating App Runner service " + service_ + " (a new deployment)");
      auto answer = calls_->Call("UpdateService", input);
      if (!answer.ok()) return answer.status().WithContext(Where());
      Status st = Finished(arn, Str(*answer, "OperationId"), "UPDATE_SERVICE");
      if (!st.ok()) return st;
      // Tags last: the spec-hash tag says what runs only once it does.
      auto tagged = calls_->Call("TagResource", {{"ResourceArn", arn}, {"Tags", OwnershipTags()}});
      if (!tagged.ok()) return tagged.status().WithContext(Where());
      json removed = json::array();
      const json& labels = Obj(req_.change.desired.get(), "labels");
      for (const FieldChange& f : req_.change.fields) {
        if (f.path.rfind("labels.", 0) != 0 || f.after) continue;
        std::string key = f.path.substr(7);
        if (labels.is_object() && labels.contains(key)) continue;
        if (key.rfind("reconcile.dev/", 0) == 0) continue;
        removed.push_back(key);
      }
      if (!removed.empty()) {
        auto untagged = calls_->Call("UntagResource", {{"ResourceArn", arn}, {"TagKeys", removed}});
        if (!untagged.ok()) return untagged.status().WithContext(Where());
      }
      return Status::Ok();
    }

    // Deletes every service this change names (prior instances, else the
    // agent's owned service); a missing one is already deleted.
    Status DeleteAll() {
      std::vector<std::string> arns;
      for (const InstanceRef& ref : req_.change.prior) {
        if (ref.id.rfind("arn:", 0) == 0) arns.push_back(ref.id);
      }
      if (arns.empty()) {
        auto found = FindOwned();
        if (!found.ok()) return found.status();
        if (*found) arns.push_back((*found)->arn);
      }
      for (const std::string& arn : arns) {
        auto tags = calls_->Tags(arn);
        if (!tags.ok()) {
          if (tags.status().code() == Code::kNotFound) continue;
          return tags.status().WithContext(Where());
        }
        auto managed = tags->find(kLabelManagedBy);
        auto agent = tags->find(kLabelAgent);
        if (managed == tags->end() || managed->second != kManagedByValue || agent == tags->end() ||
            agent->second != agent_ || EnvironmentTag(*tags) != environment_) {
          return Status::Conflict(Where() + ": the App Runner service " + arn +
                                  " is not managed by reconcile for this agent (no " +
                                  kLabelManagedBy + "=" + kManagedByValue + " and " + kLabelAgent +
                                  "=" + agent_ + " tags); it was not deleted");
        }
        Status st = DeleteService(arn);
        if (!st.ok()) return st;
      }
      return Status::Ok();
    }

    Status DeleteService(const std::string& arn) {
      auto current = calls_->Describe(arn);
      if (!current.ok()) {
        if (current.status().code() == Code::kNotFound) return Status::Ok();
        return current.status().WithContext(Where());
      }
      if (current->status == "DELETED") return Status::Ok();
      if (current->status == "OPERATION_IN_PROGRESS") {
        auto settled = WaitSettled(arn, "", "the operation in progress");
        if (!settled.ok()) return settled.status();
        if (settled->status == "DELETED") return Status::Ok();
      }
      Progress("deleting App Runner service " + service_);
      auto answer = calls_->Call("DeleteService", {{"ServiceArn", arn}});
      if (!answer.ok()) {
        if (answer.status().code() == Code::kNotFound) return Status::Ok();
        return answer.status().WithContext(Where());
      }
      auto settled = WaitSettled(arn, Str(*answer, "OperationId"), "DELETE_SERVICE");
      if (!settled.ok()) return settled.status();
      if (settled->status != "DELETED") {
        return Status::Failed(Where() + ": App Runner did not delete service " + service_ +
                              " (status " + settled->status + ")");
      }
      return Status::Ok();
    }

    // Waits for the operation to end and says how it ended.
    Status Finished(const std::string& arn, const std::string& operation_id,
                    const std::string& kind) {
      auto settled = WaitSettled(arn, operation_id, kind);
      if (!settled.ok()) return settled.status();
      std::string outcome;
      if (!operation_id.empty()) {
        auto op = calls_->OperationStatus(arn, operation_id);
        if (!op.ok()) return op.status().WithContext(Where());
        outcome = *op;
      }
      if (settled->status == "RUNNING" && (outcome.empty() || outcome == "SUCCEEDED")) {
        return Status::Ok();
      }
      std::string what = kind == "CREATE_SERVICE" ? "create" : "update";
      std::string message = Where() + ": App Runner's " + kind + " operation ended " +
                            (outcome.empty() ? "without success" : outcome) + " (service " +
                            settled->status + ")";
      if (outcome == "ROLLBACK_SUCCEEDED") {
        message += ": the new version did not become healthy and the previous one keeps serving";
      } else if (what == "create") {
        message += ": the service did not start; see its App Runner event log";
      }
      return Status::Failed(message);
    }

    // Polls DescribeService until the service is no longer
    // OPERATION_IN_PROGRESS (a deleted service reads as DELETED).
    Result<ServiceInfo> WaitSettled(const std::string& arn, const std::string& operation_id,
                                    const std::string& kind) {
      struct Waiting {
        const std::function<void(bool)>& fn;
        explicit Waiting(const std::function<void(bool)>& f) : fn(f) {
          if (fn) fn(true);
        }
        ~Waiting() {
          if (fn) fn(false);
        }
      } waiting(req_.waiting);
      (void)operation_id;
      const auto start = std::chrono::steady_clock::now();
      for (int poll = 0;; ++poll) {
        auto s = calls_->Describe(arn);
        if (!s.ok()) {
          if (s.status().code() == Code::kNotFound) {
            ServiceInfo gone;
            gone.arn = arn;
            gone.status = "DELETED";
            return gone;
          }
          return s.status().WithContext(Where());
        }
        if (s->status != "OPERATION_IN_PROGRESS") return *s;
        auto waited = std::chrono::duration_cast<std::chrono::seconds>(
            std::chrono::steady_clock::now() - start);
        if (poll % 10 == 0) {
          Progress("waiting for App Runner (" + kind + " on service " + agent_ + ", " +
                   std::to_string(waited.count()) + "s)");
        }
        if (std::chrono::steady_clock::now() - start > p_.options_.operation_timeout) {
          return Status::Unavailable(
              Where() + ": App Runner's " + kind + " did not finish within " +
              std::to_string(
                  std::chrono::duration_cast<std::chrono::seconds>(p_.options_.operation_timeout)
                      .count()) +
              "s; the next run picks it up");
        }
        if (!InterruptibleSleep(p_.options_.poll_interval, stop_.token())) {
          return Status::Cancelled(Where() + ": stopped while waiting for App Runner's " + kind +
                                   "; App Runner goes on with it, and the next run converges");
        }
      }
    }

    void Finish(ApplyChangeResponse* r) {
      if (stop_.stopped()) {
        // Report what is known without more calls: the prior instances.
        if (req_.change.action != Action::kDelete) {
          for (const InstanceRef& ref : req_.change.prior)
            r->instances.push_back({ref.id, ref.name, "", {}});
        }
        return;
      }
      auto found = FindOwned();
      if (!found.ok() || !*found) return;
      auto described = calls_->Describe((*found)->arn);
      ServiceInfo s = described.ok() ? *described : **found;
      if (s.status == "DELETED") return;
      r->instances.push_back({s.arn, s.name, EndpointOf(s), {}});
    }

    Status Redact(Status st) const {
      if (st.ok()) return st;
      std::string m = calls_ ? calls_->Redact(st.message()) : st.message();
      std::map<std::string, std::string> secrets = req_.secret_values;
      if (req_.pull_credentials) secrets["registry password"] = req_.pull_credentials->password;
      for (const auto& [name, value] : secrets) {
        if (value.size() < 3) continue;
        for (auto at = m.find(value); at != std::string::npos; at = m.find(value, at)) {
          m.replace(at, value.size(), "<redacted>");
        }
      }
      return Status(st.code(), m);
    }

    void Progress(const std::string& message) {
      if (req_.progress) req_.progress(message);
    }

    AppRunnerProvider& p_;
    const ApplyChangeRequest& req_;
    std::string agent_;
    std::string environment_;  // Target::environment
    std::string service_;      // ScopedName(environment_, agent_): the ServiceName
    CallStop stop_;
    std::optional<Calls> calls_;
  };

  const Target target_;
  const AppRunnerOptions options_;
  const Environment env_;
  std::unique_ptr<http::Client> client_;
  CredentialChain chain_;
  std::stop_source stop_;

 public:
  static std::unique_ptr<Provider> Make(const Target& target, AppRunnerOptions options) {
    Environment env = options.environment ? *options.environment : ProcessEnvironment();
    env = WithAuthEndpoint(std::move(env), target.settings);
    return std::make_unique<AppRunnerProvider>(target, std::move(options), std::move(env));
  }
};

}  // namespace

Result<std::unique_ptr<Provider>> NewAppRunnerProvider(const Target& target,
                                                       AppRunnerOptions options) {
  ValidateTargetRequest check;
  check.target = target.name;
  check.config = target.settings;
  auto diags = ValidateAppRunnerTarget(check).diagnostics;
  if (!diags.empty()) {
    return Status::Invalid("Target '" + target.name + "': " + diags.front().field + ": " +
                           diags.front().message);
  }
  return AppRunnerProvider::Make(target, std::move(options));
}

void RegisterAppRunnerProvider(ProviderRegistry& registry) {
  ProviderDefinition d;
  d.create = [](const Target& target) { return NewAppRunnerProvider(target); };
  d.validate_target = ValidateAppRunnerTarget;
  d.validate_agent = ValidateAppRunnerAgent;
  registry.Register(kAppRunnerProviderName, std::move(d));
}

}  // namespace reconcile::aws
