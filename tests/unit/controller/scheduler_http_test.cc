// The HTTP server over the real Scheduler (SchedulerView, MetricsListener),
// with a fake source and provider: a signed GitHub push makes the scheduler
// check the ref and apply the new revision, which then shows in
// /api/v1/status, /readyz and /metrics.
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include <doctest/doctest.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include "controller/http_server.h"
#include "controller/metrics_listener.h"
#include "controller/scheduler_view.h"
#include "controller/webhook.h"
#include "fakes/fake_source.h"
#include "fakes/http_test_client.h"
#include "fakes/temp_dir.h"
#include "scheduler.h"
#include "unit/engine/test_world.h"

namespace reconcile::controller {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::Send;
namespace http = boost::beast::http;

const std::string kSecret = "scheduler-http-secret";

struct Controller {
  testing::TempDir tmp;
  testing::FakeSource source;
  testing::FakeProvider provider;
  ProviderRegistry registry;
  std::unique_ptr<StateStore> store = NewFileStateStore(tmp.path() / "state");
  std::unique_ptr<Clock> clock = NewSystemClock();
  Metrics metrics;
  MetricsListener listener{metrics};
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work =
      boost::asio::make_work_guard(io);
  std::unique_ptr<Scheduler> scheduler;
  std::unique_ptr<SchedulerView> view;
  std::unique_ptr<HttpServer> server;
  std::thread thread;

  Controller() {
    testing::RegisterFake(registry, &provider);
    ReconcilerDeps d;
    d.source = &source;
    d.store = store.get();
    d.providers = &registry;
    d.clock = clock.get();
    SchedulerOptions o;
    o.interval = 1h;  // only the first check and webhooks
    o.policy.drift_interval = 1h;
    o.branch = "main";
    scheduler = std::make_unique<Scheduler>(io, d, o, &listener);
    view = std::make_unique<SchedulerView>(*scheduler, "main");
    HttpServerOptions h;
    h.listen = "127.0.0.1:0";
    h.secrets = {kSecret, kSecret, kSecret};
    server = std::make_unique<HttpServer>(io, h, *view, metrics);
    reconcile::Status s = server->Start();
    REQUIRE_MESSAGE(s.ok(), s.ToString());
    thread = std::thread([this] { io.run(); });
  }
  // Scheduler::Start runs on the io_context.
  void Run() {
    boost::asio::post(io, [this] { scheduler->Start(); });
  }
  ~Controller() {
    server->Stop();
    std::promise<void> stopped;
    scheduler->Stop([&] { stopped.set_value(); });
    stopped.get_future().wait_for(5s);
    work.reset();
    io.stop();
    if (thread.joinable()) thread.join();
  }

  json StatusJson() {
    return json::parse(Send(server->port(), http::verb::get, "/api/v1/status").body);
  }
  // Polls /api/v1/status until revision.applied is `revision` (5 s at most).
  bool WaitApplied(const std::string& revision) {
    for (int i = 0; i < 250; ++i) {
      if (StatusJson()["revision"]["applied"] == revision) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }
};

TEST_CASE("scheduler over HTTP: a signed push applies the new revision") {
  Controller c;
  c.source.Set("c1", testing::MakeDesired({testing::MakeAgent("a")}));
  CHECK(Send(c.server->port(), http::verb::get, "/readyz").status == 503);
  c.Run();
  REQUIRE(c.WaitApplied("c1"));
  CHECK(Send(c.server->port(), http::verb::get, "/readyz").status == 200);

  c.source.Set("c2", testing::MakeDesired({testing::MakeAgent("a", "hello")}));
  const std::string push =
      json{{"ref", "refs/heads/main"}, {"after", "6113728f27ae82c7b1a177c8d03f9e96e0adf246"}}
          .dump();
  auto signed_push = [&](const std::string& secret) {
    return Send(c.server->port(), http::verb::post, "/hooks/github", push,
                {{"X-GitHub-Event", "push"},
                 {"X-Hub-Signature-256", "sha256=" + HmacSha256Hex(secret, push)}});
  };
  CHECK(signed_push("wrong").status == 401);
  std::this_thread::sleep_for(200ms);
  CHECK(c.StatusJson()["revision"]["applied"] == "c1");  // a bad signature triggered nothing

  CHECK(signed_push(kSecret).status == 202);
  REQUIRE(c.WaitApplied("c2"));
  json status = c.StatusJson();
  CHECK(status["agents"].size() == 1);
  std::string page = Send(c.server->port(), http::verb::get, "/").body;
  CHECK(page.find("<dt>revision</dt><dd><code title=\"c2\">c2</code></dd>") != std::string::npos);

  std::string metrics = Send(c.server->port(), http::verb::get, "/metrics").body;
  CHECK(metrics.find("reconcile_revision_info{environment=\"default\",revision=\"c2\"} 1") !=
        std::string::npos);
  CHECK(metrics.find("reconcile_passes_total{environment=\"default\",result=\"success\"} 2") !=
        std::string::npos);
  CHECK(metrics.find("reconcile_webhook_requests_total{code=\"202\",provider=\"github\"} 1") !=
        std::string::npos);
  CHECK(metrics.find("reconcile_webhook_requests_total{code=\"401\",provider=\"github\"} 1") !=
        std::string::npos);
}

}  // namespace
}  // namespace reconcile::controller
