#include "azure/containerapps_provider.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "azure/containerapps_validate.h"
#include "azure/containerapps_wire.h"
#include "http/azure_auth.h"
#include "reconcile/clock.h"
#include "reconcile/observation.h"

namespace reconcile::azure {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

constexpr int kMaxPages = 100;
constexpr int kMaxConflictRetries = 3;

// scheme://host[:port] of an absolute URL, lower case ("" when none).
std::string Origin(const std::string& url) {
  size_t scheme = url.find("://");
  if (scheme == std::string::npos) return "";
  size_t end = url.find_first_of("/?#", scheme + 3);
  std::string origin = url.substr(0, end);
  for (char& c : origin) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return origin;
}

std::string RedactAll(std::string text, const std::vector<std::string>& secrets) {
  for (const std::string& s : secrets) {
    if (s.empty()) continue;
    for (size_t at = text.find(s); at != std::string::npos; at = text.find(s, at + 3)) {
      text.replace(at, s.size(), "***");
    }
  }
  return text;
}

// j[key] when j is an object holding a string there, else "".
std::string StringAt(const json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

std::optional<json> ParseObject(const std::string& body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

// Calls `waiting(true)` now and `waiting(false)` when it goes out of scope.
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

class ContainerAppsProvider final : public Provider {
 public:
  ContainerAppsProvider(Settings settings, ContainerAppsOptions options, std::string environment)
      : environment_(std::move(environment)),
        settings_(std::move(settings)),
        options_(std::move(options)),
        client_(http::MakeCurlClient(options_.client)) {}

  ProviderSchema Schema() const override {
    ProviderSchema s;
    s.updatable_fields = UpdatableFields();
    s.instance_per_replica = false;
    s.target_schema = TargetSchema();
    return s;
  }

  PlanChangeResponse PlanChange(const PlanChangeRequest& request) const override {
    return azure::PlanChange(request);
  }

  ObserveResponse Observe(const ObserveRequest&) override {
    ObserveResponse r;
    Call call(*this, {}, nullptr);
    std::string url = settings_.AppsUrl();
    const std::string environment = settings_.EnvironmentId();
    for (int page = 0; !url.empty(); ++page) {
      if (page == kMaxPages) {
        r.status = Status::Failed("Azure Container Apps: more than " + std::to_string(kMaxPages) +
                                  " pages of container apps in resource group " +
                                  settings_.resource_group);
        return r;
      }
      auto res = call.Send("GET", url, nullptr);
      if (!res.ok()) {
        r.status = res.status();
        return r;
      }
      if (res->status != 200) {
        r.status = call.ArmError(*res, "GET", url);
        return r;
      }
      auto list = ParseObject(res->body);
      if (!list || !(*list)["value"].is_array()) {
        r.status = Status::Failed("Azure Container Apps: GET " + http::UrlForMessage(url) +
                                  ": the answer is not a list of container apps");
        return r;
      }
      for (const json& app : (*list)["value"]) {
        if (!app.is_object() || !IsOwned(app) || !InEnvironment(app, environment)) continue;
        if (TagOf(app, kTagEnvironment) != environment_) continue;  // another environment's
        ObservedInstance o = ObservedFromApp(app);
        if (o.agent.empty() || o.name.empty()) continue;
        r.instances.push_back(std::move(o));
      }
      url.clear();
      if (const json& next = (*list)["nextLink"];
          next.is_string() && !next.get<std::string>().empty()) {
        url = next.get<std::string>();
        if (Origin(url) != Origin(settings_.endpoint)) {
          r.status = Status::Failed(
              "Azure Container Apps: the list's nextLink leads to another "
              "host (" +
              http::UrlForMessage(url) + "); not followed");
          r.instances.clear();
          return r;
        }
      }
    }
    std::sort(r.instances.begin(), r.instances.end(), [](const auto& a, const auto& b) {
      return std::tie(a.agent, a.name) < std::tie(b.agent, b.name);
    });
    return r;
  }

  ApplyChangeResponse ApplyChange(const ApplyChangeRequest& request) override {
    Call call(*this, request.stop, &request);
    ApplyChangeResponse r;
    r.health = "unknown";
    switch (request.change.action) {
      case Action::kNoOp:
        return r;
      case Action::kDelete:
        r.status = call.Delete(request.change.name);  // AppName of it
        return r;
      case Action::kCreate:
      case Action::kUpdate:
      case Action::kReplace:
        call.Deploy(request.change.action == Action::kReplace, r);
        if (!r.status.ok()) r.status = Status(r.status.code(), call.Redacted(r.status.message()));
        return r;
    }
    return r;
  }

  void Stop() override { stop_.request_stop(); }

 private:
  // One Observe or ApplyChange call: its stop (the request's or the
  // provider's), its secrets (for redaction) and its requests.
  class Call {
   public:
    Call(ContainerAppsProvider& p, std::stop_token request_stop, const ApplyChangeRequest* request)
        : p_(p),
          request_(request),
          on_request_(request_stop, [this] { stop_.request_stop(); }),
          on_provider_(p.stop_.get_token(), [this] { stop_.request_stop(); }) {
      if (request_ != nullptr) {
        for (const auto& [k, v] : request_->secret_values) secrets_.push_back(v);
        if (request_->pull_credentials) secrets_.push_back(request_->pull_credentials->password);
      }
    }

    std::string Redacted(const std::string& text) const { return RedactAll(text, secrets_); }

    void Progress(const std::string& line) const {
      if (request_ != nullptr && request_->progress) request_->progress(Redacted(line));
    }

    Status Cancelled(const std::string& what) const {
      return Status::Cancelled("Azure Container Apps: stopped while " + what);
    }

    Result<http::Response> Send(const std::string& method, const std::string& url,
                                const json* body) {
      if (stop_.stop_requested()) return Cancelled(method + " " + http::UrlForMessage(url));
      auto token = p_.Token(stop_.get_token());
      if (!token.ok()) return token.status();
      http::Request req;
      req.method = method;
      req.url = url;
      req.timeout = std::chrono::seconds(60);
      req.headers = {{"Authorization", "Bearer " + *token}, {"Accept", "application/json"}};
      if (request_ != nullptr && !request_->traceparent.empty()) {
        req.headers.emplace_back("traceparent", request_->traceparent);
      }
      if (body != nullptr) {
        req.headers.push_back({"Content-Type", "application/json"});
        req.body = body->dump();
      }
      auto res = p_.client_->Send(req, stop_.get_token());
      if (!res.ok()) {
        return Status(res.status().code(),
                      Redacted("Azure Container Apps: " + res.status().message()));
      }
      return res;
    }

    // A non-2xx ARM answer as a Status carrying the cloud's code and message.
    Status ArmError(const http::Response& res, const std::string& method,
                    const std::string& url) const {
      std::string code, message;
      if (auto body = ParseObject(res.body)) {
        const json& e = (*body)["error"];
        code = StringAt(e, "code");
        message = StringAt(e, "message");
      }
      std::string text = "Azure Container Apps: " + method + " " + http::UrlForMessage(url) +
                         ": HTTP " + std::to_string(res.status);
      if (!code.empty()) text += " " + http::Printable(code, 100);
      if (!message.empty()) text += ": " + http::Printable(message, 1000);
      text = Redacted(text);
      if (res.status == 401 || res.status == 403) {
        return Status::Invalid(
            text +
            " (check the credentials (AZURE_TENANT_ID, AZURE_CLIENT_ID, "
            "AZURE_CLIENT_SECRET, or the managed identity) and that they hold a role "
            "such as Contributor on resource group " +
            p_.settings_.resource_group + ")");
      }
      if (res.status == 409) return Status::Conflict(text);
      if (res.status == 429 || res.status >= 500) return Status::Unavailable(text);
      return Status::Failed(text);
    }

    // The app, nullopt when it does not exist.
    Result<std::optional<json>> GetApp(const std::string& name) {
      const std::string url = p_.settings_.AppUrl(name);
      auto res = Send("GET", url, nullptr);
      if (!res.ok()) return res.status();
      if (res->status == 404) return std::optional<json>();
      if (res->status != 200) return ArmError(*res, "GET", url);
      auto app = ParseObject(res->body);
      if (!app) {
        return Status::Failed("Azure Container Apps: GET " + http::UrlForMessage(url) +
                              ": the answer is not a container app (malformed JSON)");
      }
      return std::optional<json>(std::move(*app));
    }

    milliseconds PollDelay(const http::Response& res) const {
      const ContainerAppsOptions& o = p_.options_;
      std::string ra = res.Header("Retry-After");
      if (ra.empty() || ra.size() > 6 ||
          !std::all_of(ra.begin(), ra.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return std::clamp(o.default_poll, o.min_poll, o.max_poll);
      }
      return std::clamp(milliseconds(std::atol(ra.c_str()) * 1000), o.min_poll, o.max_poll);
    }

    // Follows the asynchronous operation `first` started (Azure-AsyncOperation,
    // else Location) until it ends. `what` names it for messages.
    Status FollowAsync(const http::Response& first, const std::string& what) {
      std::string status_url = first.Header("Azure-AsyncOperation");
      std::string result_url = first.Header("Location");
      if (status_url.empty() && result_url.empty()) return Status::Ok();
      const std::string origin = Origin(p_.settings_.endpoint);
      for (const std::string* u : {&status_url, &result_url}) {
        if (!u->empty() && Origin(*u) != origin) {
          return Status::Failed("Azure Container Apps: " + what +
                                ": the operation's status URL leads to another host (" +
                                http::UrlForMessage(*u) + "); not followed");
        }
      }
      WaitingScope waiting(request_ != nullptr ? request_->waiting : no_waiting_);
      Progress("waiting for Azure to finish: " + what);
      auto deadline = std::chrono::steady_clock::now() + p_.options_.operation_timeout;
      milliseconds delay = PollDelay(first);
      while (true) {
        if (!InterruptibleSleep(delay, stop_.get_token())) return Cancelled("waiting for " + what);
        if (std::chrono::steady_clock::now() > deadline) {
          return Status::Unavailable("Azure Container Apps: " + what + " did not finish within " +
                                     std::to_string(p_.options_.operation_timeout.count() / 1000) +
                                     "s");
        }
        const std::string& url = status_url.empty() ? result_url : status_url;
        auto res = Send("GET", url, nullptr);
        if (!res.ok()) return res.status();
        delay = PollDelay(*res);
        if (!status_url.empty()) {
          if (res->status != 200) return ArmError(*res, "GET", url);
          auto body = ParseObject(res->body);
          if (!body || !(*body)["status"].is_string()) {
            return Status::Failed("Azure Container Apps: " + what +
                                  ": the operation status is malformed");
          }
          const std::string s = (*body)["status"].get<std::string>();
          if (s == "Succeeded") return Status::Ok();
          if (s == "Failed" || s == "Canceled") {
            const json& e = (*body)["error"];
            const std::string message = StringAt(e, "message");
            const std::string code = StringAt(e, "code");
            return Status::Failed(
                Redacted("Azure Container Apps: " + what + ": operation " + s +
                         (code.empty() ? "" : " " + http::Printable(code, 100)) +
                         (message.empty() ? "" : ": " + http::Printable(message, 1000))));
          }
          continue;  // InProgress, or any other non-terminal state
        }
        if (res->status == 202) continue;
        if (res->status >= 200 && res->status < 300) return Status::Ok();
        return ArmError(*res, "GET", url);
      }
    }

    // PUT of the app (retrying while another operation runs on it), then
    // its operation, then the app as it is.
    Result<json> PutAndWait(const std::string& name, const json& body, const std::string& what) {
      const std::string url = p_.settings_.AppUrl(name);
      for (int attempt = 0;; ++attempt) {
        auto res = Send("PUT", url, &body);
        if (!res.ok()) return res.status();
        if (res->status == 409 && attempt < kMaxConflictRetries) {
          // An operation of an earlier attempt still runs: wait for it, then again.
          Progress("an operation is still running on container app " + name + "; waiting for it");
          if (Status st = WaitIdle(name); !st.ok()) return st;
          continue;
        }
        if (res->status != 200 && res->status != 201 && res->status != 202) {
          return ArmError(*res, "PUT", url);
        }
        if (Status st = FollowAsync(*res, what); !st.ok()) return st;
        break;
      }
      auto app = GetApp(name);
      if (!app.ok()) return app.status();
      if (!app->has_value()) {
        return Status::Failed("Azure Container Apps: container app " + name +
                              " is gone after its PUT finished");
      }
      return std::move(**app);
    }

    // Waits until the app is not InProgress (or gone).
    Status WaitIdle(const std::string& name) {
      WaitingScope waiting(request_ != nullptr ? request_->waiting : no_waiting_);
      auto deadline = std::chrono::steady_clock::now() + p_.options_.operation_timeout;
      while (std::chrono::steady_clock::now() < deadline) {
        auto app = GetApp(name);
        if (!app.ok()) return app.status();
        if (!app->has_value() || PropertyOf(**app, "provisioningState") != "InProgress") {
          return Status::Ok();
        }
        if (!InterruptibleSleep(
                std::clamp(p_.options_.default_poll, p_.options_.min_poll, p_.options_.max_poll),
                stop_.get_token())) {
          return Cancelled("waiting for the running operation on container app " + name);
        }
      }
      return Status::Unavailable("Azure Container Apps: the operation running on container app " +
                                 name + " did not finish");
    }

    Status RefuseUnowned(const json& app, const std::string& name, const std::string& agent) const {
      if (!IsOwned(app)) {
        return Status::Conflict("Azure Container Apps: a container app named " + name +
                                " exists in resource group " + p_.settings_.resource_group +
                                " and is not managed by reconcile (no tag " + kTagManagedBy + "=" +
                                kManagedByValue + "); rename the agent or remove that app");
      }
      if (TagOf(app, kTagAgent) != agent) {
        return Status::Conflict("Azure Container Apps: container app " + name +
                                " carries reconcile's tags for another agent ('" +
                                http::Printable(TagOf(app, kTagAgent), 64) + "'); not touched");
      }
      if (std::string env = TagOf(app, kTagEnvironment); env != p_.environment_) {
        return Status::Conflict("Azure Container Apps: container app " + name + " belongs to " +
                                (env.empty() ? std::string("the plain tree (no environment)")
                                             : "environment '" + http::Printable(env, 64) + "'") +
                                ", not " +
                                (p_.environment_.empty()
                                     ? std::string("the plain tree")
                                     : "environment '" + p_.environment_ + "'") +
                                "; not touched");
      }
      return Status::Ok();
    }

    Status Delete(const std::string& agent) {
      const std::string name = AppName(p_.environment_, agent);
      auto current = GetApp(name);
      if (!current.ok()) return current.status();
      if (!current->has_value()) {
        Progress("container app " + name + " does not exist; nothing to delete");
        return Status::Ok();
      }
      if (Status st = RefuseUnowned(**current, name, agent); !st.ok()) return st;
      return DeleteApp(name);
    }

    Status DeleteApp(const std::string& name) {
      const std::string url = p_.settings_.AppUrl(name);
      Progress("deleting container app " + name);
      for (int attempt = 0;; ++attempt) {
        auto res = Send("DELETE", url, nullptr);
        if (!res.ok()) return res.status();
        if (res->status == 409 && attempt < kMaxConflictRetries) {
          if (Status st = WaitIdle(name); !st.ok()) return st;
          continue;
        }
        if (res->status == 404 || res->status == 204 || res->status == 200) return Status::Ok();
        if (res->status != 202) return ArmError(*res, "DELETE", url);
        return FollowAsync(*res, "the deletion of container app " + name);
      }
    }

    void Deploy(bool replace, ApplyChangeResponse& r) {
      const ApplyChangeRequest& req = *request_;
      const std::string& agent = req.change.name;
      const std::string name = AppName(p_.environment_, agent);
      auto current = GetApp(name);
      if (!current.ok()) {
        r.status = current.status();
        return;
      }
      if (current->has_value()) {
        if (Status st = RefuseUnowned(**current, name, agent); !st.ok()) {
          r.status = st;
          return;
        }
      }
      if (replace && current->has_value()) {
        if (Status st = DeleteApp(name); !st.ok()) {
          r.status = st;
          r.instances = {Record(**current)};
          return;
        }
        current->reset();
      }
      AppInput in;
      in.agent = agent;
      in.environment = p_.environment_;
      in.spec = req.change.desired.get();
      in.spec_hash = req.change.desired_hash;
      in.revision = req.revision;
      in.secret_values = &req.secret_values;
      in.pull_credentials = &req.pull_credentials;
      std::string before;  // the revision that serves now
      if (current->has_value()) {
        const json& app = **current;
        before = PropertyOf(app, "latestReadyRevisionName");
        // A retry of a change that took already is one PUT that changes
        // nothing; otherwise traffic stays where it is until the new revision
        // is ready.
        if (PropertyOf(app, "provisioningState") == "Succeeded" && !before.empty() &&
            TagOf(app, kTagSpecHash) != in.spec_hash && in.spec.is_object() &&
            in.spec.contains("port") && in.spec["port"].is_number_integer() &&
            in.spec["port"].get<int>() > 0) {
          in.pinned_revision = before;
        }
      }
      auto body = BuildApp(p_.settings_, in);
      if (!body.ok()) {
        r.status = body.status();
        return;
      }
      const bool exists = current->has_value();
      Progress(std::string(exists ? "updating" : "creating") + " container app " + name +
               " in resource group " + p_.settings_.resource_group +
               (in.pinned_revision.empty() ? ""
                                           : " (a new revision; traffic stays on " +
                                                 in.pinned_revision + " until it is ready)"));
      auto app = PutAndWait(
          name, *body,
          std::string(exists ? "the update" : "the creation") + " of container app " + name);
      if (!app.ok()) {
        r.status = app.status();
        auto now = GetApp(name);
        if (now.ok() && now->has_value()) {
          r.instances = {Record(**now)};
          if (HasProbe(**now)) r.health = "unhealthy";
        }
        return;
      }
      const std::string latest = PropertyOf(*app, "latestRevisionName");
      const std::string ready = PropertyOf(*app, "latestReadyRevisionName");
      const bool is_ready = PropertyOf(*app, "provisioningState") == "Succeeded" &&
                            !latest.empty() && latest == ready;
      r.instances = {Record(*app)};
      if (!is_ready) {
        r.health = HasProbe(*app) ? "unhealthy" : "unknown";
        r.status = Status::Failed(
            "Azure Container Apps: revision " + http::Printable(latest, 100) +
            " of container app " + name + " did not become ready (provisioningState " +
            http::Printable(PropertyOf(*app, "provisioningState"), 40) + ")" +
            (in.pinned_revision.empty() ? "" : "; traffic stays on " + in.pinned_revision));
        return;
      }
      Progress("revision " + latest + " of container app " + name + " is ready");
      if (!in.pinned_revision.empty()) {
        in.pinned_revision.clear();
        auto final_body = BuildApp(p_.settings_, in);
        if (!final_body.ok()) {
          r.status = final_body.status();
          return;
        }
        Progress("moving all traffic of container app " + name + " to its latest revision");
        auto moved = PutAndWait(name, *final_body, "the traffic move of container app " + name);
        if (!moved.ok()) {
          r.status = moved.status();
          return;
        }
        app = std::move(moved);
        r.instances = {Record(*app)};
      }
      r.health = HasProbe(*app) ? "healthy" : "unknown";
    }

    static InstanceRecord Record(const json& app) {
      ObservedInstance o = ObservedFromApp(app);
      return InstanceRecord{o.id, o.name, o.endpoint, {}};
    }

   private:
    ContainerAppsProvider& p_;
    const ApplyChangeRequest* request_;
    std::stop_source stop_;
    std::stop_callback<std::function<void()>> on_request_;
    std::stop_callback<std::function<void()>> on_provider_;
    std::vector<std::string> secrets_;
    std::function<void(bool)> no_waiting_;
  };

  Result<std::string> Token(std::stop_token stop) {
    http::TokenSource* source = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!source_) {
        http::AzureAuthOptions o;
        o.auth_endpoint = settings_.auth_endpoint;
        o.getenv = options_.getenv;
        auto made = http::NewAzureTokenSource(*client_, std::move(o));
        if (!made.ok()) return made.status();
        source_ = std::move(*made);
      }
      source = source_.get();
    }
    auto token = source->Token(stop);
    if (token.ok() || token.status().code() == Code::kCancelled) return token;
    auto env = [&](const char* name) { return options_.getenv && options_.getenv(name); };
    const bool chosen =
        env("AZURE_TENANT_ID") || env("AZURE_CLIENT_SECRET") ||
        (settings_.auth_endpoint.empty() && env("IDENTITY_ENDPOINT") && env("IDENTITY_HEADER"));
    const std::string& m = token.status().message();
    if (!chosen && m.rfind("no Azure credentials", 0) != 0) {
      return Status::Invalid(
          "no Azure credentials: set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (a "
          "service principal), or run with a managed identity (IDENTITY_ENDPOINT and "
          "IDENTITY_HEADER, or the instance metadata service" +
          (settings_.auth_endpoint.empty()
               ? std::string(" at 169.254.169.254")
               : " at azure.authEndpoint " + http::UrlForMessage(settings_.auth_endpoint)) +
          "); " + m);
    }
    return Status(token.status().code(), "Azure credentials: " + m);
  }

  std::string environment_;  // Target::environment
  Settings settings_;
  ContainerAppsOptions options_;
  std::unique_ptr<http::Client> client_;
  std::stop_source stop_;
  std::mutex mu_;
  std::unique_ptr<http::TokenSource> source_;
};

}  // namespace

Result<std::unique_ptr<Provider>> NewContainerAppsProvider(const Target& target,
                                                           ContainerAppsOptions options) {
  auto settings = SettingsFromJson(target.settings);
  if (!settings.ok()) {
    return Status::Invalid("Target '" + target.name + "': " + settings.status().message());
  }
  return std::unique_ptr<Provider>(std::make_unique<ContainerAppsProvider>(
      std::move(*settings), std::move(options), target.environment));
}

void RegisterContainerAppsProvider(ProviderRegistry& registry) {
  ProviderDefinition d;
  d.create = [](const Target& target) { return NewContainerAppsProvider(target); };
  d.validate_target = ValidateTarget;
  d.validate_agent = ValidateAgent;
  registry.Register(kProviderName, std::move(d));
}

}  // namespace reconcile::azure
