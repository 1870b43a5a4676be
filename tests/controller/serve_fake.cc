// reconcile_serve_fake: the controller's HTTP server with a fake view and
// sample metrics, for script tests (promtool, a real Prometheus scraping it,
// curl webhooks). Listens on 127.0.0.1 with an ephemeral port, prints
// "port N" on stdout once it accepts, and exits 0 on SIGTERM or SIGINT.
// Every request is logged on stderr.
//
// Usage: reconcile_serve_fake [SECRET_FILE]   (default: webhooks disabled)
#include <csignal>
#include <cstdio>
#include <iostream>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "controller/http_server.h"
#include "controller/metrics.h"
#include "controller/webhook_secrets.h"
#include "fakes/fake_controller_view.h"

int main(int argc, char** argv) {
  using namespace reconcile;
  controller::HttpServerOptions options;
  options.listen = "127.0.0.1:0";
  if (argc > 1) {
    auto secrets = controller::LoadWebhookSecrets(argv[1]);
    if (!secrets.ok()) {
      std::cerr << secrets.status().ToString() << "\n";
      return 2;
    }
    options.secrets = *secrets;
  }
  options.on_request = [](const controller::HttpRequestLog& e) {
    std::cerr << e.remote << " " << e.method << " " << e.target << " " << e.status << " "
              << e.detail << "\n";
  };

  testing::FakeControllerView view;
  view.SetStatus({{"revision", "6113728f27ae82c7b1a177c8d03f9e96e0adf246"},
                  {"branch", "main"},
                  {"last_result", "success"},
                  {"agents", nlohmann::json::array({{{"name", "web"}, {"health", "healthy"}}})}});
  controller::Metrics metrics;
  metrics.PassFinished(controller::PassResult::kSuccess, 1.25);
  metrics.PassFinished(controller::PassResult::kInvalid, 0.1);
  metrics.SetLastSuccess(1764580800);
  metrics.SetRevision("6113728f27ae82c7b1a177c8d03f9e96e0adf246");
  metrics.SetSourceRevision("738a951dba49dfec487000ef85ae80291d7ab32a");
  metrics.SetAgents({{"healthy", 2}, {"unhealthy", 1}});
  metrics.SetDrifted(1);
  metrics.SourceFetchDuration(0.4);
  metrics.SourceFetchFailed();
  metrics.ApplyErrors(1);
  metrics.WebhookRequest("github", 202);

  boost::asio::io_context io;
  controller::HttpServer server(io, options, view, metrics);
  if (Status s = server.Start(); !s.ok()) {
    std::cerr << s.ToString() << "\n";
    return 1;
  }
  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code&, int) {
    server.Stop();
    io.stop();
  });
  std::cout << "port " << server.port() << std::endl;
  io.run();
  for (const auto& why : view.triggers()) std::cerr << "triggered: " << why << "\n";
  return 0;
}
