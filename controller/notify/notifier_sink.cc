#include "notify/notifier_sink.h"

#include <algorithm>
#include <ctime>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "reconcile/state_store.h"

namespace reconcile::controller::notify {

namespace {

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

const char* CommitStateName(CommitState s) {
  switch (s) {
    case CommitState::kPending:
      return "pending";
    case CommitState::kRunning:
      return "running";
    case CommitState::kSuccess:
      return "success";
    case CommitState::kFailure:
      return "failure";
    case CommitState::kError:
      return "error";
  }
  return "error";
}

std::optional<CommitState> CommitStateNamed(const std::string& name) {
  for (CommitState s : {CommitState::kPending, CommitState::kRunning, CommitState::kSuccess,
                        CommitState::kFailure, CommitState::kError}) {
    if (name == CommitStateName(s)) return s;
  }
  return std::nullopt;
}

bool Selected(const Notifier& n, const std::string& environment) {
  return n.environments.empty() ||
         std::binary_search(n.environments.begin(), n.environments.end(), environment);
}

}  // namespace

NotifierSink::NotifierSink(std::string name, std::shared_ptr<const NotifyDeps> deps)
    : name_(std::move(name)), deps_(std::move(deps)) {
  Load();
}

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
  if (const Sent* sent = Find(event.environment, revision); sent && sent->commit) {
    return Status::Ok();
  }
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
    if (const Sent* sent = Find(s.environment, s.revision); sent && sent->events.count(e)) continue;
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
  Sent& sent = Record(s.environment, s.revision);
  sent.events.insert(events.begin(), events.end());
  Save();
  return Status::Ok();
}

Status NotifierSink::SendCommitState(const Notifier& n, const std::string& environment,
                                     const std::string& revision, CommitState state,
                                     const std::string& description, std::stop_token stop) {
  const std::string context = "reconcile/" + environment;
  auto token = Secret(n.token, "token");
  if (!token.ok()) return token.status();
  if (n.type == Notifier::Type::kGitlab) {
    if (const Sent* sent = Find(environment, revision); sent && sent->commit == state) {
      return Status::Ok();
    }
    nlohmann::json body = {
        {"state", GitlabState(state)}, {"name", context}, {"description", description}};
    Status st =
        Post(n.api_url + "/projects/" + EncodeProject(n.project_id) + "/statuses/" + revision,
             "commit status", body.dump(),
             {{"Content-Type", "application/json"}, {"PRIVATE-TOKEN", *token}}, stop);
    if (!st.ok()) return st;
    Record(environment, revision).commit = state;
    Save();
    return Status::Ok();
  }
  const std::string repo = n.api_url + "/repos/" + n.owner + "/" + n.repo;
  std::vector<std::pair<std::string, std::string>> headers = {
      {"Content-Type", "application/json"},
      {"Accept", "application/vnd.github+json"},
      {"X-GitHub-Api-Version", "2022-11-28"},
      {"Authorization", "Bearer " + *token}};
  const Sent* sent = Find(environment, revision);
  const std::optional<CommitState> last = sent ? sent->commit : std::nullopt;
  // Held (a deploy window, an approval) after "applying": the same GitHub
  // state, but the description says why it waits.
  const bool held_now = last == CommitState::kRunning && state == CommitState::kPending;
  if (!last || held_now || GithubState(*last) != std::string(GithubState(state))) {
    nlohmann::json body = {
        {"state", GithubState(state)}, {"context", context}, {"description", description}};
    Status st = Post(repo + "/statuses/" + revision, "commit status", body.dump(), headers, stop);
    if (!st.ok()) return st;
    Record(environment, revision).commit = state;
    Save();
  }
  if (!n.deployments) return Status::Ok();
  std::optional<std::int64_t> id = Record(environment, revision).deployment;
  if (!id) {
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
    id = parsed["id"].get<std::int64_t>();
    Record(environment, revision).deployment = id;
    Save();
  }
  const char* dstate = DeploymentState(state);
  if (Record(environment, revision).deployment_state == dstate) return Status::Ok();
  nlohmann::json body = {
      {"state", dstate}, {"environment", environment}, {"description", description}};
  Status st = Post(repo + "/deployments/" + std::to_string(*id) + "/statuses", "deployment status",
                   body.dump(), headers, stop);
  if (!st.ok()) return st;
  Record(environment, revision).deployment_state = dstate;
  Save();
  return Status::Ok();
}

NotifierSink::Sent& NotifierSink::Record(const std::string& environment,
                                         const std::string& revision) {
  auto key = std::make_pair(environment, revision);
  auto it = sent_.find(key);
  if (it != sent_.end()) return it->second;
  order_.push_back(key);
  while (order_.size() > kKeptRevisions) {
    sent_.erase(order_.front());
    order_.erase(order_.begin());
  }
  return sent_[key];
}

const NotifierSink::Sent* NotifierSink::Find(const std::string& environment,
                                             const std::string& revision) const {
  auto it = sent_.find({environment, revision});
  return it == sent_.end() ? nullptr : &it->second;
}

std::filesystem::path NotifierSink::RecordPath() const {
  return deps_->state_dir / (name_ + ".json");
}

// {"version": 1, "sent": [{"environment", "revision", "events": [...],
//   "commitState"?, "deployment"?, "deploymentState"?}, ...]}, oldest first.
void NotifierSink::Load() {
  if (deps_->state_dir.empty()) return;
  const std::filesystem::path path = RecordPath();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return;
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  std::string why;
  auto json = nlohmann::json::parse(text.str(), nullptr, false);
  decltype(sent_) sent;
  decltype(order_) order;
  if (!in || json.is_discarded())
    why = "not JSON";
  else if (!json.is_object() || !json.contains("version") || json["version"] != 1 ||
           !json.contains("sent") || !json["sent"].is_array()) {
    why = "not a version 1 record";
  } else {
    for (const auto& r : json["sent"]) {
      if (!r.is_object() || !r.contains("environment") || !r["environment"].is_string() ||
          !r.contains("revision") || !r["revision"].is_string()) {
        why = "a record without environment and revision";
        break;
      }
      auto key =
          std::make_pair(r["environment"].get<std::string>(), r["revision"].get<std::string>());
      Sent s;
      if (r.contains("events")) {
        if (!r["events"].is_array()) {
          why = "events is not a list";
          break;
        }
        for (const auto& e : r["events"]) {
          if (e.is_string()) s.events.insert(e.get<std::string>());
        }
      }
      if (r.contains("commitState")) {
        auto state = r["commitState"].is_string()
                         ? CommitStateNamed(r["commitState"].get<std::string>())
                         : std::nullopt;
        if (!state) {
          why = "an unknown commitState";
          break;
        }
        s.commit = state;
      }
      if (r.contains("deployment")) {
        if (!r["deployment"].is_number_integer()) {
          why = "deployment is not a number";
          break;
        }
        s.deployment = r["deployment"].get<std::int64_t>();
      }
      if (r.contains("deploymentState") && r["deploymentState"].is_string()) {
        s.deployment_state = r["deploymentState"].get<std::string>();
      }
      if (!sent.count(key)) order.push_back(key);
      sent[key] = std::move(s);
    }
  }
  if (!why.empty()) {
    std::filesystem::path aside = path;
    aside += ".unreadable";
    std::filesystem::rename(path, aside, ec);
    if (deps_->warn) {
      deps_->warn("notifier " + name_ + ": what it sent (" + path.string() + ") is unreadable (" +
                  why + "): set aside as " + aside.filename().string() +
                  "; starting without it, so the last events may be sent once more");
    }
    return;
  }
  while (order.size() > kKeptRevisions) {
    sent.erase(order.front());
    order.erase(order.begin());
  }
  sent_ = std::move(sent);
  order_ = std::move(order);
}

void NotifierSink::Save() {
  if (deps_->state_dir.empty()) return;
  nlohmann::json list = nlohmann::json::array();
  for (const auto& key : order_) {
    const Sent& s = sent_.at(key);
    nlohmann::json r = {
        {"environment", key.first},
        {"revision", key.second},
        {"events", nlohmann::json(std::vector<std::string>(s.events.begin(), s.events.end()))}};
    if (s.commit) r["commitState"] = CommitStateName(*s.commit);
    if (s.deployment) r["deployment"] = *s.deployment;
    if (!s.deployment_state.empty()) r["deploymentState"] = s.deployment_state;
    list.push_back(std::move(r));
  }
  nlohmann::json doc = {{"version", 1}, {"sent", std::move(list)}};
  std::error_code ec;
  std::filesystem::create_directories(deps_->state_dir, ec);
  Status st = WriteFileAtomic(RecordPath(), doc.dump(1) + "\n");
  if (!st.ok() && deps_->warn) {
    deps_->warn("notifier " + name_ + ": what it sent could not be recorded (" + st.message() +
                "): after a restart it may be sent once more");
  }
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
