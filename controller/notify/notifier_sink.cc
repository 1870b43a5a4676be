#include "notify/notifier_sink.h"

#include <algorithm>
#include <ctime>
#include <thread>

#include <nlohmann/json.hpp>

namespace reconcile::controller::notify {

namespace {

std::string Key(const std::string& a, const std::string& b) { return a + '\0' + b; }

std::string SystemNow() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// GitLab's :id: a number, or the path with '/' (and anything else) encoded.
std::string EncodeProject(const std::string& id) {
  std::string out;
  static const char* hex = "0123456789ABCDEF";
  for (unsigned char c : id) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

const char* DeploymentState(CommitState s) {
  switch (s) {
    case CommitState::kPending:
      return "queued";  // held by a deploy window
    case CommitState::kRunning:
      return "in_progress";  // the pass started
    case CommitState::kSuccess:
      return "success";
    case CommitState::kFailure:
      return "failure";
    case CommitState::kError:
      return "error";
  }
  return "error";
}

bool Selected(const Notifier& n, const std::string& environment) {
  return n.environments.empty() ||
         std::binary_search(n.environments.begin(), n.environments.end(), environment);
}

}  // namespace

NotifierSink::NotifierSink(std::string name, std::shared_ptr<const NotifyDeps> deps)
    : name_(std::move(name)), deps_(std::move(deps)) {}

Status NotifierSink::Fail(Status s) {
  if (!s.ok() && s.code() != Code::kCancelled && deps_->warn) deps_->warn(s.message());
  return s;
}

Status NotifierSink::Deliver(const ControllerEvent& event, std::stop_token stop) {
  std::lock_guard<std::mutex> lock(deliver_mu_);
  switch (event.kind) {
    case ControllerEvent::Kind::kChange: {
      if (event.change.type != Event::Type::kChangeSucceeded &&
          event.change.type != Event::Type::kChangeFailed) {
        return Status::Ok();
      }
      passes_[event.pass_id].push_back(event.change);
      // Passes whose end was dropped (a full queue) are not kept forever.
      while (passes_.size() > 64) passes_.erase(passes_.begin());
      return Status::Ok();
    }
    case ControllerEvent::Kind::kPassStarted:
      return Fail(PassStarted(event, stop));
    case ControllerEvent::Kind::kPassFinished: {
      Status s = PassFinished(event, stop);
      // Kept for the bus's next attempt at this event.
      if (s.code() != Code::kUnavailable) passes_.erase(event.pass_id);
      return Fail(s);
    }
    default:
      return Status::Ok();
  }
}

Status NotifierSink::PassStarted(const ControllerEvent& event, std::stop_token stop) {
  passes_.erase(event.pass_id);
  if (!event.request || event.request->kind != PassRequest::Kind::kApply) return Status::Ok();
  auto it = config_.find(event.environment);
  if (it == config_.end()) return Status::Ok();
  const Notifier& n = it->second;
  if (!Selected(n, event.environment)) return Status::Ok();
  if (n.type != Notifier::Type::kGithub && n.type != Notifier::Type::kGitlab) return Status::Ok();
  const std::string revision = event.revision.empty() ? event.request->revision : event.revision;
  if (!IsCommitSha(revision)) return Status::Ok();
  // Once the revision has a state, a later pass of it does not go back to
  // pending (GitLab refuses that transition too).
  if (commit_state_.count(Key(event.environment, revision))) return Status::Ok();
  const CommitState state = CommitState::kRunning;
  return SendCommitState(n, event.environment, revision, state,
                         "applying " + ShortRevision(revision), stop);
}

Status NotifierSink::PassFinished(const ControllerEvent& event, std::stop_token stop) {
  std::vector<Event> changes;
  if (auto p = passes_.find(event.pass_id); p != passes_.end()) changes = p->second;
  if (!event.report) return Status::Ok();
  const PassReport& report = *event.report;
  if (report.notifiers) {
    const auto& list = *report.notifiers;
    auto found =
        std::find_if(list.begin(), list.end(), [&](const Notifier& n) { return n.name == name_; });
    if (found == list.end()) {
      config_.erase(event.environment);
      return Status::Ok();
    }
    config_[event.environment] = *found;
  }
  auto it = config_.find(event.environment);
  if (it == config_.end()) return Status::Ok();
  const Notifier n = it->second;
  if (!Selected(n, event.environment)) return Status::Ok();
  const PassRequest::Kind kind = event.request ? event.request->kind : PassRequest::Kind::kApply;
  const std::string at = deps_->now ? deps_->now() : SystemNow();
  PassSummary s = Summarize(n, event.environment, kind, report, changes, at);
  if (s.revision.empty()) s.revision = event.revision;

  if (n.type == Notifier::Type::kSlack || n.type == Notifier::Type::kWebhook) {
    return SendMessage(n, s, stop);
  }
  if (kind != PassRequest::Kind::kApply || report.status.code() == Code::kCancelled ||
      !IsCommitSha(s.revision)) {
    return Status::Ok();
  }
  const CommitState state = FinalState(s);
  return SendCommitState(n, event.environment, s.revision, state, StatusDescription(s, state),
                         stop);
}

Status NotifierSink::SendMessage(const Notifier& n, const PassSummary& s, std::stop_token stop) {
  std::vector<std::string> events;
  for (const std::string& e : s.events) {
    if (!std::binary_search(n.events.begin(), n.events.end(), e)) continue;
    if (sent_.count(Key(Key(s.environment, s.revision), e))) continue;
    events.push_back(e);
  }
  if (events.empty()) return Status::Ok();
  auto url = Secret(n.url, "url");
  if (!url.ok()) return url.status();
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers = {{"Content-Type", "application/json"}};
  if (n.type == Notifier::Type::kSlack) {
    body = SlackMessage(s, events).dump();
  } else {
    auto key = Secret(n.secret, "secret");
    if (!key.ok()) return key.status();
    const std::string id = IdempotencyKey(n.name, s.environment, s.revision, events);
    body = WebhookEvent(s, events, id).dump();
    headers.emplace_back("X-Reconcile-Signature-256", "sha256=" + HmacSha256Hex(*key, body));
    headers.emplace_back("Idempotency-Key", id);
    headers.emplace_back("X-Reconcile-Event", events.front());
  }
  Status st = Post(*url, n.type == Notifier::Type::kSlack ? "Slack message" : "webhook event", body,
                   std::move(headers), stop);
  if (!st.ok()) return st;
  for (const auto& e : events) sent_.insert(Key(Key(s.environment, s.revision), e));
  return Status::Ok();
}

Status NotifierSink::SendCommitState(const Notifier& n, const std::string& environment,
                                     const std::string& revision, CommitState state,
                                     const std::string& description, std::stop_token stop) {
  const std::string key = Key(environment, revision);
  const std::string context = "reconcile/" + environment;
  auto token = Secret(n.token, "token");
  if (!token.ok()) return token.status();
  if (n.type == Notifier::Type::kGitlab) {
    auto sent = commit_state_.find(key);
    if (sent != commit_state_.end() && sent->second == state) return Status::Ok();
    nlohmann::json body = {
        {"state", GitlabState(state)}, {"name", context}, {"description", description}};
    Status st =
        Post(n.api_url + "/projects/" + EncodeProject(n.project_id) + "/statuses/" + revision,
             "commit status", body.dump(),
             {{"Content-Type", "application/json"}, {"PRIVATE-TOKEN", *token}}, stop);
    if (st.ok()) commit_state_[key] = state;
    return st;
  }
  const std::string repo = n.api_url + "/repos/" + n.owner + "/" + n.repo;
  std::vector<std::pair<std::string, std::string>> headers = {
      {"Content-Type", "application/json"},
      {"Accept", "application/vnd.github+json"},
      {"X-GitHub-Api-Version", "2022-11-28"},
      {"Authorization", "Bearer " + *token}};
  auto sent = commit_state_.find(key);
  // Held (a deploy window, an approval) after "applying": the same GitHub
  // state, but the description says why it waits.
  const bool held_now = sent != commit_state_.end() && sent->second == CommitState::kRunning &&
                        state == CommitState::kPending;
  if (sent == commit_state_.end() || held_now ||
      GithubState(sent->second) != std::string(GithubState(state))) {
    nlohmann::json body = {
        {"state", GithubState(state)}, {"context", context}, {"description", description}};
    Status st = Post(repo + "/statuses/" + revision, "commit status", body.dump(), headers, stop);
    if (!st.ok()) return st;
    commit_state_[key] = state;
  }
  if (!n.deployments) return Status::Ok();
  auto id = deployments_.find(key);
  if (id == deployments_.end()) {
    nlohmann::json body = {{"ref", revision},
                           {"environment", environment},
                           {"auto_merge", false},
                           {"required_contexts", nlohmann::json::array()},
                           {"description", "reconcile " + ShortRevision(revision)}};
    std::string response;
    Status st = Post(repo + "/deployments", "deployment", body.dump(), headers, stop, &response);
    if (!st.ok()) return st;
    auto parsed = nlohmann::json::parse(response, nullptr, false);
    if (!parsed.is_object() || !parsed.contains("id") || !parsed["id"].is_number_integer()) {
      return Status::Failed("notifier " + name_ + ": the deployment's answer has no id");
    }
    id = deployments_.emplace(key, parsed["id"].get<std::int64_t>()).first;
  }
  const char* dstate = DeploymentState(state);
  if (deployment_state_[key] == dstate) return Status::Ok();
  nlohmann::json body = {
      {"state", dstate}, {"environment", environment}, {"description", description}};
  Status st = Post(repo + "/deployments/" + std::to_string(id->second) + "/statuses",
                   "deployment status", body.dump(), headers, stop);
  if (st.ok()) deployment_state_[key] = dstate;
  return st;
}

Status NotifierSink::Post(const std::string& url, const std::string& what, const std::string& body,
                          std::vector<std::pair<std::string, std::string>> headers,
                          std::stop_token stop, std::string* response) {
  http::Request request;
  request.method = "POST";
  request.url = url;
  request.headers = std::move(headers);
  request.body = body;
  request.timeout = deps_->timeout;
  // The client's errors name the URL: never passed on (a Slack URL is a secret).
  auto r = deps_->client->Send(request, stop);
  const std::string who = "notifier " + name_ + ": " + what;
  if (!r.ok()) {
    switch (r.status().code()) {
      case Code::kCancelled:
        return Status::Cancelled(who + ": stopped");
      case Code::kUnavailable:
        return Status::Unavailable(who + ": no answer (connection failed or timed out)");
      case Code::kInvalid:
        return Status::Failed(who +
                              ": URL refused (http or https only; plain http only to loopback)");
      default:
        return Status::Failed(who + ": transport failed (TLS or response too large)");
    }
  }
  if (r->status >= 200 && r->status < 300) {
    if (response) *response = std::move(r->body);
    return Status::Ok();
  }
  const std::string message = who + ": HTTP " + std::to_string(r->status);
  if (http::IsRetriedStatus(r->status)) return Status::Unavailable(message);
  return Status::Failed(message);
}

Result<std::string> NotifierSink::Secret(const std::optional<SecretRef>& ref, const char* field) {
  if (!ref) return Status::Invalid("notifier " + name_ + ": spec." + field + " is not set");
  auto values = ResolveSecrets({{std::string("spec.") + field, *ref}}, deps_->secrets_dir,
                               deps_->secret_env_policy);
  if (!values.ok()) return values.status().WithContext("notifier " + name_);
  return values->begin()->second;
}

NotifierHub::NotifierHub(EventBus& bus, std::shared_ptr<const NotifyDeps> deps, SinkOptions options)
    : bus_(bus), deps_(std::move(deps)), options_(std::move(options)) {}

std::vector<std::string> NotifierHub::Names() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& [name, sink] : sinks_) out.push_back(name);
  return out;
}

Status NotifierHub::Deliver(const ControllerEvent& event, std::stop_token stop) {
  if (event.kind != ControllerEvent::Kind::kPassFinished || !event.report ||
      !event.report->notifiers) {
    return Status::Ok();
  }
  for (const Notifier& n : *event.report->notifiers) {
    std::shared_ptr<NotifierSink> sink;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (sinks_.count(n.name)) continue;
      sink = std::make_shared<NotifierSink>(n.name, deps_);
      sinks_.emplace(n.name, sink);
    }
    SinkOptions options = options_;
    options.name = "notifier:" + n.name;
    options.inline_delivery = false;
    bus_.Add(sink, options);
    // This pass's event was published before the sink existed: hand it over,
    // with the sink's own retry policy.
    auto backoff = options.initial_backoff;
    for (int attempt = 1; attempt <= options.max_attempts && !stop.stop_requested(); ++attempt) {
      Status s = sink->Deliver(event, stop);
      if (s.code() != Code::kUnavailable) break;
      for (auto waited = std::chrono::milliseconds(0); waited < backoff && !stop.stop_requested();
           waited += std::chrono::milliseconds(20)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      backoff = std::min(backoff * 2, options.max_backoff);
    }
  }
  return Status::Ok();
}

}  // namespace reconcile::controller::notify
