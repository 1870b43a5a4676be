#include "controller/status_page.h"

#include <openssl/evp.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "controller/status_feed.h"

namespace reconcile::controller {
namespace {

using nlohmann::json;

bool Has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// One environment as Scheduler::StatusJson has it.
json Environment(const std::string& name) {
  return {
      {"name", name},
      {"branch", "main"},
      {"revision", {{"seen", "6113728f27ae82c7b1a1"}, {"applied", "6113728f27ae82c7b1a1"}}},
      {"lastPass",
       {{"kind", "apply"},
        {"result", "invalid"},
        {"finishedAt", "2026-12-02T17:00:00Z"},
        {"durationSeconds", 1.5},
        {"changes", 0},
        {"diagnostics",
         json::array({"deploy/web.yaml:7:9: error: spec.port: must be between 1 and 65535, "
                      "got <70000>"})}}},
      {"lastError", "deploy/web.yaml:7:9: error: spec.port: <bad>"},
      {"window", {{"blocked", true}, {"reason", "deny <Friday>"}, {"next", nullptr}}},
      {"passes", 3},
      {"agents",
       json::array({{{"name", "web<script>alert(1)</script>"},
                     {"health", "healthy"},
                     {"target", "local"},
                     {"endpoints", json::array({"http://127.0.0.1:49153", "javascript:alert(1)"})},
                     {"digest", "sha256:0123456789abcdef0123"},
                     {"revision", "6113728f27ae82c7b1a1"},
                     {"drift", "reported"},
                     {"driftReason", "image <changed>"},
                     {"lastError",
                      {{"message", "agent.web: <img src=x onerror=alert(1)>"},
                       {"at", "deploy/web.yaml:12:3"}}}},
                    {{"name", "side"}, {"health", "unhealthy"}, {"lastError", nullptr}}})},
      {"history", json::array({{{"serial", 7},
                                {"revision", "aaaabbbbccccdddd"},
                                {"appliedAt", "2026-12-02T16:59:00Z"},
                                {"result", "succeeded"},
                                {"summary", "1 added, <0> changed"},
                                {"rollbackOf", 0}},
                               {{"serial", 6},
                                {"revision", "1111222233334444"},
                                {"appliedAt", "2026-12-02T16:00:00Z"},
                                {"result", "failed"},
                                {"summary", "0 added"},
                                {"rollbackOf", 4}}})}};
}

TEST_CASE("status page: an environment's section, escaped, with stable ids") {
  const std::string page = RenderStatusPage(
      {{"source", "git://127.0.0.1/<repo>"}, {"environments", json::array({Environment("dev")})}});
  SUBCASE("nothing from the document is markup") {
    CHECK_FALSE(Has(page, "<script>alert"));
    CHECK_FALSE(Has(page, "<img"));
    CHECK_FALSE(Has(page, "<70000>"));
    CHECK(Has(page, "web&lt;script&gt;alert(1)&lt;/script&gt;"));
    CHECK(Has(page, "git://127.0.0.1/&lt;repo&gt;"));
    CHECK(Has(page, "agent.web: &lt;img src=x onerror=alert(1)&gt;"));
    // Only the page's own script, once.
    CHECK(page.find("<script>") == page.rfind("<script>"));
  }
  SUBCASE("ids of the environment, its agents and its history") {
    CHECK(Has(page, "<section class=\"env\" id=\"env-dev\">"));
    CHECK(Has(page, "<tr id=\"agent-dev-web&lt;script&gt;alert(1)&lt;/script&gt;\""));
    CHECK(Has(page, "<tr id=\"agent-dev-side\" class=\"agent\">"));
    CHECK(Has(page, "id=\"history-dev\""));
    CHECK(Has(page, "<main id=\"environments\">"));
  }
  SUBCASE("agents: health, endpoint link, digest, drift, last error at file:line") {
    CHECK(Has(page, "<td class=\"health health-healthy\">healthy</td>"));
    CHECK(Has(page, "<td class=\"health health-unhealthy\">unhealthy</td>"));
    CHECK(Has(page, "<a href=\"http://127.0.0.1:49153\">http://127.0.0.1:49153</a>"));
    CHECK_FALSE(Has(page, "href=\"javascript:"));  // shown as text, not as a link
    CHECK(Has(page, "<br>javascript:alert(1)"));
    CHECK(Has(page, "<code title=\"sha256:0123456789abcdef0123\">0123456789ab</code>"));
    CHECK(Has(page, "reported<br><small>image &lt;changed&gt;</small>"));
    CHECK(Has(page, "<code class=\"at\">deploy/web.yaml:12:3</code> agent.web:"));
  }
  SUBCASE("the environment: revision, last pass, window, errors with file:line") {
    CHECK(Has(page, "<code title=\"6113728f27ae82c7b1a1\">6113728f27ae</code>"));
    CHECK(Has(page,
              "apply pass, <span class=\"result result-invalid\">invalid</span> at "
              "2026-12-02T17:00:00Z in 1.5 s, 0 change(s)"));
    CHECK(Has(page, "blocked</span>: deny &lt;Friday&gt;"));
    CHECK(Has(page,
              "<li><code class=\"at\">deploy/web.yaml:7:9</code> error: spec.port: must be "
              "between 1 and 65535, got &lt;70000&gt;</li>"));
    CHECK(Has(page, "<code class=\"at\">deploy/web.yaml:7:9</code> error: spec.port: &lt;bad&gt;"));
  }
  SUBCASE("history rows, newest first as given, a rollback named") {
    auto first = page.find("aaaabbbbcccc");
    auto second = page.find("111122223333");
    REQUIRE(first != std::string::npos);
    REQUIRE(second != std::string::npos);
    CHECK(first < second);
    CHECK(Has(page, "1 added, &lt;0&gt; changed"));
    CHECK(Has(page, "0 added (rollback to serial 4)"));
    CHECK(Has(page, "<td class=\"result-failed\">failed</td>"));
  }
  SUBCASE("works without JavaScript, loads nothing else") {
    CHECK(Has(page, "<noscript><meta http-equiv=\"refresh\" content=\"10\"></noscript>"));
    CHECK_FALSE(Has(page, " src=\""));
    CHECK_FALSE(Has(page, "<link"));
  }
}

TEST_CASE("status page: a plain tree, several environments, nothing usable") {
  json single = Environment("x");
  single.erase("name");
  std::string page = RenderStatusPage(single);
  CHECK(Has(page, "id=\"env-default\""));
  CHECK(Has(page, "id=\"agent-default-side\""));

  page = RenderStatusPage(
      {{"environments", json::array({Environment("dev"), Environment("st<b>aging")})}});
  CHECK(Has(page, "id=\"env-dev\""));
  CHECK(Has(page, "id=\"env-st&lt;b&gt;aging\""));
  CHECK(Has(page, "<h2>st&lt;b&gt;aging</h2>"));

  CHECK(Has(RenderStatusPage({{"environments", json::array()}}), "No environments yet."));
  CHECK(Has(RenderStatusPage(json::array({1})), "status unavailable"));
  json bare = {{"name", "e"}, {"agents", json::array()}};
  CHECK(Has(RenderEnvironmentSection(bare), "No agents."));
  CHECK(Has(RenderEnvironmentSection(bare), "none yet"));
  CHECK(HtmlEscape("a<b>&'\"") == "a&lt;b&gt;&amp;&#39;&quot;");
}

TEST_CASE("status page: the CSP allows exactly the inline script and style") {
  const std::string page = RenderStatusPage(json::object());
  auto hash_of = [&](const std::string& open, const std::string& close) {
    auto from = page.find(open);
    REQUIRE(from != std::string::npos);
    from += open.size();
    auto to = page.find(close, from);
    REQUIRE(to != std::string::npos);
    std::string body = page.substr(from, to - from);
    unsigned char digest[32];
    unsigned int n = 0;
    EVP_Digest(body.data(), body.size(), digest, &n, EVP_sha256(), nullptr);
    std::string b64(45, '\0');
    b64.resize(static_cast<std::size_t>(
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), digest, 32)));
    return "'sha256-" + b64 + "'";
  };
  const std::string& csp = StatusPageCsp();
  CHECK(Has(csp, "default-src 'none'"));
  CHECK(Has(csp, "script-src " + hash_of("<script>", "</script>")));
  CHECK(Has(csp, "style-src " + hash_of("<style>", "</style>")));
  CHECK(Has(csp, "connect-src 'self'"));
  CHECK_FALSE(Has(csp, "unsafe-inline"));
}

TEST_CASE("status page: SSE framing") {
  CHECK(SseFrame("env", "one") == "event: env\ndata: one\n\n");
  CHECK(SseFrame("env", "a\nb\r\nc\rd") == "event: env\ndata: a\ndata: b\ndata: c\ndata: d\n\n");
  CHECK(SseFrame("env", "a\n") == "event: env\ndata: a\n\n");
  CHECK(SseFrame("env", "") == "event: env\ndata: \n\n");
  CHECK(SseFrame("e\nv", "x") == "event: ev\ndata: x\n\n");
  // A whole section: every line a data line, so no line can end the event early.
  std::string frame = SseFrame("env", RenderEnvironmentSection(Environment("dev")));
  CHECK(frame.find("\n\n") == frame.size() - 2);
}

TEST_CASE("status page: the token") {
  const std::string token = "s3cr3t+t/k=";
  SUBCASE("bearer header") {
    CHECK(StatusTokenAccepted("Bearer s3cr3t+t/k=", "/", token));
    CHECK(StatusTokenAccepted("bearer  s3cr3t+t/k= ", "/", token));
    CHECK_FALSE(StatusTokenAccepted("Bearer s3cr3t+t/k", "/", token));
    CHECK_FALSE(StatusTokenAccepted("Bearer s3cr3t+t/k==", "/", token));
    CHECK_FALSE(StatusTokenAccepted("Basic s3cr3t+t/k=", "/", token));
    CHECK_FALSE(StatusTokenAccepted("s3cr3t+t/k=", "/", token));
    CHECK_FALSE(StatusTokenAccepted("", "/", token));
  }
  SUBCASE("query parameter, percent-decoded") {
    CHECK(StatusTokenAccepted("", "/?token=s3cr3t%2Bt%2Fk%3D", token));
    CHECK(StatusTokenAccepted("", "/events?x=1&token=s3cr3t%2bt/k%3d", token));
    CHECK_FALSE(StatusTokenAccepted("", "/?token=s3cr3t+t/k=", token));  // '+' is a space
    CHECK_FALSE(StatusTokenAccepted("", "/?tok=s3cr3t%2Bt%2Fk%3D", token));
    CHECK_FALSE(StatusTokenAccepted("", "/?token=", token));
  }
  SUBCASE("an empty token accepts nothing") {
    CHECK_FALSE(StatusTokenAccepted("Bearer ", "/?token=", ""));
    CHECK_FALSE(StatusTokenAccepted("Bearer x", "/?token=x", ""));
  }
  SUBCASE("redacted in logs") {
    CHECK(RedactToken("/?token=s3cr3t") == "/?token=REDACTED");
    CHECK(RedactToken("/events?a=1&token=s3cr3t&b=2") == "/events?a=1&token=REDACTED&b=2");
    CHECK(RedactToken("/?token=a&token=bb") == "/?token=REDACTED&token=REDACTED");
    CHECK(RedactToken("/metrics") == "/metrics");
  }
}

TEST_CASE("status page: history rows") {
  History h;
  for (int i = 1; i <= 12; ++i) {
    HistoryEntry e;
    e.serial = i;
    e.revision = "r" + std::to_string(i);
    e.result = "succeeded";
    h.entries.push_back(e);
  }
  json rows = HistoryRows(h, 10);
  REQUIRE(rows.size() == 10);
  CHECK(rows[0]["serial"] == 12);
  CHECK(rows[9]["serial"] == 3);
  CHECK(rows[0]["revision"] == "r12");
  CHECK(HistoryRows(History{}).empty());
}

// The feed: events of the bus become sections, after the status counts the
// pass, with the history loaded off the caller.
TEST_CASE("status feed: a finished pass reloads history and broadcasts the section") {
  std::mutex mu;
  json status = {{"environments", json::array({{{"name", "dev"}, {"passes", 0}}})}};
  std::atomic<int> loads{0};
  StatusFeed feed(
      [&](const std::string& env) -> Result<History> {
        ++loads;
        History h;
        HistoryEntry e;
        e.serial = loads;
        e.revision = env + "-rev-" + std::to_string(loads.load());
        e.result = "succeeded";
        h.entries.push_back(e);
        return h;
      },
      std::chrono::seconds(5));
  std::vector<std::string> frames;
  feed.Connect(
      [&] {
        std::lock_guard<std::mutex> lock(mu);
        return status;
      },
      [&](std::shared_ptr<const std::string> frame) {
        std::lock_guard<std::mutex> lock(mu);
        frames.push_back(*frame);
      });

  ControllerEvent started;
  started.kind = ControllerEvent::Kind::kPassStarted;
  started.environment = "dev";
  started.revision = "abc";
  CHECK(feed.Deliver(started, {}).ok());
  REQUIRE(frames.size() == 1);
  CHECK(Has(frames[0], "event: env\ndata: <section class=\"env\" id=\"env-dev\">"));
  CHECK(Has(frames[0], "apply pass at"));  // running
  CHECK(Has(frames[0], "dev-rev-1"));      // first sight: history loaded
  CHECK(Has(feed.PageStatus().dump(), "\"running\""));

  // The scheduler records the pass a little after publishing it.
  ControllerEvent finished = started;
  finished.kind = ControllerEvent::Kind::kPassFinished;
  std::thread recorder([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::lock_guard<std::mutex> lock(mu);
    status["environments"][0]["passes"] = 1;
    status["environments"][0]["lastPass"] = {{"kind", "apply"}, {"result", "success"}};
  });
  CHECK(feed.Deliver(finished, {}).ok());
  recorder.join();
  REQUIRE(frames.size() == 2);
  CHECK(Has(frames[1], "result-success"));
  CHECK(Has(frames[1], "dev-rev-2"));
  CHECK_FALSE(Has(frames[1], "apply pass at"));  // not running any more
  json page = feed.PageStatus();
  CHECK(page["environments"][0]["history"][0]["revision"] == "dev-rev-2");
  CHECK_FALSE(page["environments"][0].contains("running"));

  // Other events and the shared ref check change nothing; disconnected, no frames.
  ControllerEvent change = started;
  change.kind = ControllerEvent::Kind::kChange;
  CHECK(feed.Deliver(change, {}).ok());
  ControllerEvent ref = started;
  ref.environment = "";
  CHECK(feed.Deliver(ref, {}).ok());
  CHECK(frames.size() == 2);
  feed.Connect({}, {});
  CHECK(feed.Deliver(started, {}).ok());
  CHECK(frames.size() == 2);
  CHECK(feed.PageStatus().is_null());
}

}  // namespace
}  // namespace reconcile::controller
