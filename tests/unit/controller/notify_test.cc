// Tests for notifications (controller/notify/): classification of a finished
// pass, message text, the HMAC-SHA256 signature (RFC 4231 vector), the
// idempotency key (computed independently with Python's hashlib), commit
// states, and a NotifierSink over a recording transport: one message per
// pass, dedupe, statuses and deployments, error mapping without secrets.
#include "notify/notification.h"
#include "notify/notifier_sink.h"

#include "fakes/temp_dir.h"

#include <deque>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

namespace reconcile::controller::notify {
namespace {

const std::string kSha = std::string(40, 'a');

bool Has(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

Event Change(Event::Type type, const std::string& address, Action action = Action::kUpdate,
             const std::string& message = "") {
  Event e;
  e.type = type;
  e.address = address;
  e.action = action;
  e.message = message;
  return e;
}

PassReport Report(Status status = Status::Ok(), int changes = 0) {
  PassReport r;
  r.status = status;
  r.revision = kSha;
  r.changes = changes;
  return r;
}

std::shared_ptr<const State> StateWith(const std::string& agent, const std::string& health,
                                       bool pin = false) {
  auto s = std::make_shared<State>();
  ResourceState rs;
  rs.address = "agent." + agent;
  rs.name = agent;
  rs.health = health;
  s->resources[rs.address] = rs;
  if (pin) s->pin = Pin{"b", 1, kSha, ""};
  return s;
}

using V = std::vector<std::string>;
constexpr auto kApply = PassRequest::Kind::kApply;

TEST_CASE("notify: a finished pass is classified into events") {
  SUBCASE("applied") {
    auto r = Report(Status::Ok(), 2);
    CHECK(ClassifyPass(kApply, r, {Change(Event::Type::kChangeSucceeded, "agent.web")}, {}) ==
          V{"applied"});
  }
  SUBCASE("nothing changed: no event") { CHECK(ClassifyPass(kApply, Report(), {}, {}).empty()); }
  SUBCASE("failed, and unhealthy after it") {
    auto r = Report(Status::Failed("agent.web: health check failed"), 1);
    r.state = StateWith("web", "unhealthy");
    CHECK(ClassifyPass(kApply, r, {Change(Event::Type::kChangeFailed, "agent.web")}, {}) ==
          V{"failed", "unhealthy"});
  }
  SUBCASE("invalid revision is not 'failed'") {
    auto r = Report(Status::Invalid("tree has 1 error"));
    r.stale_tree = true;
    CHECK(ClassifyPass(kApply, r, {}, {}) == V{"invalid-revision"});
  }
  SUBCASE("cancelled: nothing") {
    CHECK(ClassifyPass(kApply, Report(Status::Cancelled("stop")), {}, {}).empty());
  }
  SUBCASE("rolled-back: applied under a rollback's pin") {
    auto r = Report(Status::Ok(), 1);
    r.state = StateWith("web", "healthy", true);
    CHECK(ClassifyPass(kApply, r, {}, {}) == V{"rolled-back"});
  }
  SUBCASE("drift and blocked") {
    auto r = Report();
    r.reported = {"web"};
    r.window.blocked = true;
    r.window.held_agents = {"web"};
    CHECK(ClassifyPass(PassRequest::Kind::kDrift, r, {}, {}) == V{"drift", "blocked"});
  }
  SUBCASE("the agents filter") {
    auto r = Report(Status::Failed("agent.api: boom"), 2);
    r.state = StateWith("api", "unhealthy");
    std::vector<Event> changes = {Change(Event::Type::kChangeSucceeded, "agent.web"),
                                  Change(Event::Type::kChangeFailed, "agent.api")};
    CHECK(ClassifyPass(kApply, r, changes, {"web"}).empty());
    CHECK(ClassifyPass(kApply, r, changes, {"api"}) == V{"failed", "unhealthy"});
    // A failure that is no change's concerns everyone.
    CHECK(ClassifyPass(kApply, Report(Status::Unavailable("lock held")), {}, {"web"}) ==
          V{"failed"});
  }
}

Notifier Slack() {
  Notifier n;
  n.name = "chat";
  n.type = Notifier::Type::kSlack;
  for (const char* e : kNotifierEvents) n.events.push_back(e);
  std::sort(n.events.begin(), n.events.end());
  n.url = SecretRef{SecretRef::Source::kFile, "slack-url"};
  return n;
}

TEST_CASE("notify: the Slack message names the revision, what changed and what failed") {
  auto r = Report(Status::Failed("1 change failed"), 2);
  std::vector<Event> changes = {
      Change(Event::Type::kChangeSucceeded, "agent.web", Action::kCreate),
      Change(Event::Type::kChangeFailed, "agent.api", Action::kUpdate, "health <check> failed")};
  PassSummary s = Summarize(Slack(), "staging", kApply, r, changes, "2026-01-01T00:00:00Z");
  nlohmann::json m = SlackMessage(s, s.events);
  const std::string text = m["text"];
  CHECK(text ==
        "[reconcile] staging: failed at aaaaaaaaaaaa (2 changes)\nchanged: agent.web "
        "(create)\nfailed: agent.api: health &lt;check&gt; failed");
  REQUIRE(m["blocks"].is_array());
  CHECK(m["blocks"][0]["type"] == "section");
  CHECK(m["blocks"][0]["text"]["type"] == "mrkdwn");
  CHECK(Has(m["blocks"].back()["elements"][0]["text"], kSha));
}

TEST_CASE("notify: HMAC-SHA256 and the idempotency key") {
  // RFC 4231, test case 2.
  CHECK(HmacSha256Hex("Jefe", "what do ya want for nothing?") ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // hashlib.sha256(b"ops\0staging\0" + b"a"*40 + b"\0applied\0failed\0").hexdigest()[:32]
  CHECK(IdempotencyKey("ops", "staging", kSha, {"failed", "applied"}) ==
        "rcn-45a3268815f2de5fa2193b7ab2435934");
  CHECK(IdempotencyKey("ops", "prod", kSha, {"applied"}) !=
        IdempotencyKey("ops", "staging", kSha, {"applied"}));
}

TEST_CASE("notify: commit states and descriptions") {
  auto ok = Summarize(Slack(), "e", kApply, Report(Status::Ok(), 1), {}, "");
  CHECK(FinalState(ok) == CommitState::kSuccess);
  CHECK(StatusDescription(ok, CommitState::kSuccess) == "applied, 1 change, healthy");
  auto bad = Report(Status::Ok(), 1);
  bad.state = StateWith("web", "unhealthy");
  auto unhealthy = Summarize(Slack(), "e", kApply, bad, {}, "");
  CHECK(FinalState(unhealthy) == CommitState::kFailure);
  CHECK(std::string(GithubState(CommitState::kFailure)) == "failure");
  CHECK(std::string(GitlabState(CommitState::kFailure)) == "failed");
  auto invalid = Report(Status::Invalid("x"));
  invalid.stale_tree = true;
  invalid.diagnostics.Error("agents/web.yaml", 3, 5, "spec.port", std::string(300, 'x'));
  auto inv = Summarize(Slack(), "e", kApply, invalid, {}, "");
  CHECK(FinalState(inv) == CommitState::kError);
  const std::string d = StatusDescription(inv, CommitState::kError);
  CHECK(d.size() <= 140);
  CHECK(d.rfind("invalid revision: 1 error, agents/web.yaml:3: xxx", 0) == 0);
}

// Records every request; answers with the queued statuses (then 201).
class Recorder final : public http::Client {
 public:
  Result<http::Response> Send(const http::Request& request, std::stop_token) override {
    requests.push_back(request);
    if (!fail.empty()) {
      Status s = fail.front();
      fail.pop_front();
      return s;
    }
    http::Response r;
    r.status = 201;
    if (!statuses.empty()) {
      r.status = statuses.front();
      statuses.pop_front();
    }
    r.body = R"({"id": 77})";
    return r;
  }
  std::vector<http::Request> requests;
  std::deque<long> statuses;
  std::deque<Status> fail;
};

struct Rig {
  testing::TempDir secrets;
  std::shared_ptr<Recorder> http = std::make_shared<Recorder>();
  std::shared_ptr<NotifyDeps> deps = std::make_shared<NotifyDeps>();
  std::vector<std::string> warnings;
  Rig() {
    secrets.Write("slack-url", "https://hooks.example/services/T0/B0/SECRETPATH\n");
    secrets.Write("hook-key", "Jefe");
    secrets.Write("gh-token", "ghp_SECRETTOKEN");
    deps->client = http;
    deps->secrets_dir = secrets.path();
    deps->warn = [this](const std::string& m) { warnings.push_back(m); };
    deps->now = [] { return std::string("2026-01-01T00:00:00Z"); };
  }
};

ControllerEvent Finished(std::uint64_t pass, const PassReport& report,
                         const std::vector<Notifier>& notifiers,
                         const std::string& env = "default") {
  ControllerEvent e;
  e.kind = ControllerEvent::Kind::kPassFinished;
  e.environment = env;
  e.pass_id = pass;
  e.revision = report.revision;
  auto request = std::make_shared<PassRequest>();
  request->revision = report.revision;
  e.request = request;
  auto copy = std::make_shared<PassReport>(report);
  copy->notifiers = std::make_shared<const std::vector<Notifier>>(notifiers);
  e.report = copy;
  return e;
}

ControllerEvent Started(std::uint64_t pass, const std::string& env = "default") {
  ControllerEvent e;
  e.kind = ControllerEvent::Kind::kPassStarted;
  e.environment = env;
  e.pass_id = pass;
  e.revision = kSha;
  auto request = std::make_shared<PassRequest>();
  request->revision = kSha;
  e.request = request;
  return e;
}

TEST_CASE("notify: a Slack sink sends one message per pass, once per revision and event") {
  Rig rig;
  NotifierSink sink("chat", rig.deps);
  ControllerEvent change;
  change.kind = ControllerEvent::Kind::kChange;
  change.pass_id = 1;
  change.change = Change(Event::Type::kChangeSucceeded, "agent.web", Action::kCreate);
  CHECK(sink.Deliver(Started(1), {}).ok());
  CHECK(sink.Deliver(change, {}).ok());
  change.change.address = "agent.api";
  CHECK(sink.Deliver(change, {}).ok());
  CHECK(sink.Deliver(Finished(1, Report(Status::Ok(), 2), {Slack()}), {}).ok());
  REQUIRE(rig.http->requests.size() == 1);
  const http::Request& r = rig.http->requests[0];
  CHECK(r.method == "POST");
  CHECK(r.url == "https://hooks.example/services/T0/B0/SECRETPATH");
  auto body = nlohmann::json::parse(r.body);
  CHECK(body["text"] ==
        "[reconcile] default: applied at aaaaaaaaaaaa (2 changes)\nchanged: agent.web (create), "
        "agent.api (create)");
  // The same revision again: not sent twice.
  CHECK(sink.Deliver(Finished(2, Report(Status::Ok(), 2), {Slack()}), {}).ok());
  CHECK(rig.http->requests.size() == 1);
  // Not chosen: nothing.
  Notifier only_failed = Slack();
  only_failed.events = {"failed"};
  auto other = Report(Status::Ok(), 1);
  other.revision = std::string(40, 'b');
  CHECK(sink.Deliver(Finished(3, other, {only_failed}), {}).ok());
  CHECK(rig.http->requests.size() == 1);
  // Another environment of the Notifier's selector: nothing.
  Notifier prod_only = Slack();
  prod_only.environments = {"prod"};
  CHECK(sink.Deliver(Finished(4, Report(Status::Failed("x")), {prod_only}, "dev"), {}).ok());
  CHECK(rig.http->requests.size() == 1);
}

TEST_CASE("notify: errors name the notifier and the HTTP status, never the URL") {
  Rig rig;
  NotifierSink sink("chat", rig.deps);
  rig.http->statuses = {503, 404};
  Status s = sink.Deliver(Finished(1, Report(Status::Ok(), 1), {Slack()}), {});
  CHECK(s.code() == Code::kUnavailable);
  CHECK(s.message() == "notifier chat: Slack message: HTTP 503");
  s = sink.Deliver(Finished(1, Report(Status::Ok(), 1), {Slack()}), {});
  CHECK(s.code() == Code::kFailed);
  CHECK(s.message() == "notifier chat: Slack message: HTTP 404");
  rig.http->fail = {
      Status::Unavailable("POST https://hooks.example/services/T0/B0/SECRETPATH: timeout")};
  s = sink.Deliver(Finished(1, Report(Status::Ok(), 1), {Slack()}), {});
  CHECK(s.code() == Code::kUnavailable);
  CHECK_FALSE(Has(s.message(), "SECRETPATH"));
  // Failed sends are not marked sent: the next attempt sends.
  CHECK(sink.Deliver(Finished(1, Report(Status::Ok(), 1), {Slack()}), {}).ok());
  CHECK(rig.http->requests.size() == 4);
  REQUIRE(rig.warnings.size() == 3);
  for (const auto& w : rig.warnings) CHECK_FALSE(Has(w, "SECRETPATH"));
  // A missing secret file: named by its reference, not retried.
  Notifier missing = Slack();
  missing.url = SecretRef{SecretRef::Source::kFile, "nope"};
  auto other = Report(Status::Failed("x"));
  s = sink.Deliver(Finished(2, other, {missing}), {});
  CHECK(s.code() == Code::kInvalid);
  CHECK(Has(s.message(), "notifier chat"));
  CHECK(Has(s.message(), "nope"));
}

TEST_CASE("notify: the webhook event is signed and carries its idempotency key") {
  Rig rig;
  Notifier n = Slack();
  n.name = "hook";
  n.type = Notifier::Type::kWebhook;
  n.secret = SecretRef{SecretRef::Source::kFile, "hook-key"};
  NotifierSink sink("hook", rig.deps);
  CHECK(sink.Deliver(Finished(1, Report(Status::Ok(), 1), {n}), {}).ok());
  REQUIRE(rig.http->requests.size() == 1);
  const http::Request& r = rig.http->requests[0];
  auto header = [&](const std::string& name) {
    for (const auto& [k, v] : r.headers) {
      if (k == name) return v;
    }
    return std::string();
  };
  CHECK(header("X-Reconcile-Signature-256") == "sha256=" + HmacSha256Hex("Jefe", r.body));
  CHECK(header("Idempotency-Key") == IdempotencyKey("hook", "default", kSha, {"applied"}));
  auto body = nlohmann::json::parse(r.body);
  CHECK(body["kind"] == "NotificationEvent");
  CHECK(body["id"] == header("Idempotency-Key"));
  CHECK(body["events"] == nlohmann::json::array({"applied"}));
  CHECK(body["revision"] == kSha);
}

Notifier Github() {
  Notifier n;
  n.name = "gh";
  n.type = Notifier::Type::kGithub;
  n.owner = "acme";
  n.repo = "deploy";
  n.api_url = "http://127.0.0.1:1";
  n.deployments = true;
  n.token = SecretRef{SecretRef::Source::kFile, "gh-token"};
  return n;
}

TEST_CASE("notify: GitHub statuses pending then success, with a deployment") {
  Rig rig;
  const Notifier n = Github();
  NotifierSink sink("gh", rig.deps);
  // Unknown until a pass's tree names it: no pending for the first pass.
  CHECK(sink.Deliver(Started(1), {}).ok());
  CHECK(rig.http->requests.empty());
  auto first = Report(Status::Ok(), 1);
  first.revision = std::string(40, 'b');
  CHECK(sink.Deliver(Finished(1, first, {n}), {}).ok());
  REQUIRE(rig.http->requests.size() == 3);  // status, deployment, deployment status
  rig.http->requests.clear();
  CHECK(sink.Deliver(Started(2), {}).ok());
  CHECK(sink.Deliver(Finished(2, Report(Status::Ok(), 1), {n}), {}).ok());
  std::vector<std::string> got;
  for (const auto& r : rig.http->requests) {
    auto body = nlohmann::json::parse(r.body);
    got.push_back(r.url.substr(n.api_url.size()) + " " + body.value("state", "") +
                  body.value("ref", ""));
    bool auth = false;
    for (const auto& [k, v] : r.headers)
      auth |= k == "Authorization" && v == "Bearer ghp_SECRETTOKEN";
    CHECK(auth);
  }
  CHECK(got == V{"/repos/acme/deploy/statuses/" + kSha + " pending",
                 "/repos/acme/deploy/deployments " + kSha,
                 "/repos/acme/deploy/deployments/77/statuses in_progress",
                 "/repos/acme/deploy/statuses/" + kSha + " success",
                 "/repos/acme/deploy/deployments/77/statuses success"});
  auto status = nlohmann::json::parse(rig.http->requests[0].body);
  CHECK(status["context"] == "reconcile/default");
  auto deployment = nlohmann::json::parse(rig.http->requests[1].body);
  CHECK(deployment["auto_merge"] == false);
  CHECK(deployment["required_contexts"] == nlohmann::json::array());
  CHECK(deployment["environment"] == "default");
  // The same revision again: nothing new.
  CHECK(sink.Deliver(Started(3), {}).ok());
  CHECK(sink.Deliver(Finished(3, Report(Status::Ok(), 0), {n}), {}).ok());
  CHECK(rig.http->requests.size() == 5);
}

TEST_CASE("notify: GitLab statuses with PRIVATE-TOKEN and an encoded project path") {
  Rig rig;
  Notifier n;
  n.name = "gl";
  n.type = Notifier::Type::kGitlab;
  n.project_id = "group/deploy";
  n.api_url = "http://127.0.0.1:1/api/v4";
  n.token = SecretRef{SecretRef::Source::kFile, "gh-token"};
  NotifierSink sink("gl", rig.deps);
  auto invalid = Report(Status::Invalid("tree"));
  invalid.stale_tree = true;
  CHECK(sink.Deliver(Finished(1, invalid, {n}), {}).ok());
  REQUIRE(rig.http->requests.size() == 1);
  const auto& r = rig.http->requests[0];
  CHECK(r.url == "http://127.0.0.1:1/api/v4/projects/group%2Fdeploy/statuses/" + kSha);
  auto body = nlohmann::json::parse(r.body);
  CHECK(body["state"] == "failed");
  CHECK(body["name"] == "reconcile/default");
  bool token = false;
  for (const auto& [k, v] : r.headers) token |= k == "PRIVATE-TOKEN" && v == "ghp_SECRETTOKEN";
  CHECK(token);
}

TEST_CASE("notify: what a sink sent survives a restart (state_dir)") {
  Rig rig;
  testing::TempDir state;
  rig.deps->state_dir = state.path() / "notify";
  auto paths = [&](const std::string& api_url) {
    std::vector<std::string> out;
    for (const auto& r : rig.http->requests) {
      out.push_back(r.url.substr(api_url.size()) + " " +
                    nlohmann::json::parse(r.body).value("state", ""));
    }
    return out;
  };

  SUBCASE("a Slack message is not sent again by the next sink") {
    {
      NotifierSink sink("chat", rig.deps);
      CHECK(sink.Deliver(Finished(1, Report(Status::Ok(), 1), {Slack()}), {}).ok());
    }
    REQUIRE(rig.http->requests.size() == 1);
    auto record = nlohmann::json::parse(state.Read("notify/chat.json"));
    CHECK(record["version"] == 1);
    CHECK(record["sent"][0]["environment"] == "default");
    CHECK(record["sent"][0]["revision"] == kSha);
    CHECK(record["sent"][0]["events"] == nlohmann::json::array({"applied"}));
    // The record holds names and revisions, never the secret URL.
    CHECK_FALSE(Has(record.dump(), "SECRETPATH"));
    NotifierSink restarted("chat", rig.deps);
    CHECK(restarted.Deliver(Finished(2, Report(Status::Ok(), 1), {Slack()}), {}).ok());
    CHECK(rig.http->requests.size() == 1);
    // A failure of the same revision is a new event: sent.
    CHECK(restarted.Deliver(Finished(3, Report(Status::Failed("boom"), 1), {Slack()}), {}).ok());
    CHECK(rig.http->requests.size() == 2);
    CHECK(rig.warnings.empty());
  }

  SUBCASE("a GitHub deployment goes on after a restart, not anew") {
    const Notifier n = Github();
    {
      NotifierSink sink("gh", rig.deps);
      CHECK(sink.Deliver(Finished(1, Report(Status::Ok(), 1), {n}), {}).ok());
      rig.http->requests.clear();
      CHECK(sink.Deliver(Started(2), {}).ok());  // a new pass of the same revision
    }
    CHECK(rig.http->requests.empty());  // the revision has its state already
    NotifierSink restarted("gh", rig.deps);
    // The restarted sink does not know the tree yet: the pass's end tells it.
    auto failed = Report(Status::Failed("agent.web: boom"), 1);
    CHECK(restarted.Deliver(Finished(2, failed, {n}), {}).ok());
    CHECK(paths(n.api_url) == V{"/repos/acme/deploy/statuses/" + kSha + " failure",
                                "/repos/acme/deploy/deployments/77/statuses failure"});
    CHECK(rig.warnings.empty());
  }

  SUBCASE("an unreadable record is set aside and reported; the sink starts empty") {
    const std::string garbage = "{\"version\": 1, \"sent\": [{\"revision\": 3}]}";
    for (const std::string& text :
         {std::string("{"), garbage, std::string(R"({"version": "1", "sent": []})"),
          std::string(R"({"version": 1, "sent": [{"environment": "e", "revision": "r",
                         "commitState": "merged"}]})")}) {
      CAPTURE(text);
      rig.warnings.clear();
      rig.http->requests.clear();
      state.Write("notify/chat.json", text);
      NotifierSink sink("chat", rig.deps);
      REQUIRE(rig.warnings.size() == 1);
      CHECK(Has(rig.warnings[0], "notifier chat: what it sent"));
      CHECK(Has(rig.warnings[0], "set aside as chat.json.unreadable"));
      CHECK(state.Read("notify/chat.json.unreadable") == text);
      CHECK(sink.Deliver(Finished(1, Report(Status::Ok(), 1), {Slack()}), {}).ok());
      CHECK(rig.http->requests.size() == 1);
      // ... and the record is whole again.
      CHECK(nlohmann::json::parse(state.Read("notify/chat.json"))["sent"].size() == 1);
    }
  }

  SUBCASE("only the last kKeptRevisions revisions are kept") {
    {
      NotifierSink sink("chat", rig.deps);
      for (std::size_t i = 0; i < kKeptRevisions + 6; ++i) {
        auto r = Report(Status::Ok(), 1);
        r.revision = "tree-" + std::to_string(i);
        CHECK(sink.Deliver(Finished(i + 1, r, {Slack()}), {}).ok());
      }
    }
    auto record = nlohmann::json::parse(state.Read("notify/chat.json"));
    REQUIRE(record["sent"].size() == kKeptRevisions);
    CHECK(record["sent"][0]["revision"] == "tree-6");
    rig.http->requests.clear();
    NotifierSink restarted("chat", rig.deps);
    auto kept = Report(Status::Ok(), 1);
    kept.revision = "tree-6";
    CHECK(restarted.Deliver(Finished(100, kept, {Slack()}), {}).ok());
    CHECK(rig.http->requests.empty());
    auto dropped = Report(Status::Ok(), 1);
    dropped.revision = "tree-5";
    CHECK(restarted.Deliver(Finished(101, dropped, {Slack()}), {}).ok());
    CHECK(rig.http->requests.size() == 1);
  }
}

}  // namespace
}  // namespace reconcile::controller::notify
