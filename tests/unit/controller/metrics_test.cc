#include "controller/metrics.h"

#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

namespace reconcile::controller {
namespace {

bool Has(const std::string& text, const std::string& line) {
  return text.find(line) != std::string::npos;
}

TEST_CASE("metrics: every family has help and type, pass results start at 0") {
  Metrics m;
  auto check_family = [](const std::string& text, const std::string& name) {
    CHECK_MESSAGE(Has(text, "# HELP " + name + " "), name);
    CHECK_MESSAGE(Has(text, "# TYPE " + name + " "), name);
  };
  std::string text = m.Render();
  for (const char* name :
       {"reconcile_passes_total", "reconcile_pass_duration_seconds",
        "reconcile_last_success_timestamp_seconds", "reconcile_drifted_agents",
        "reconcile_source_fetch_errors_total", "reconcile_source_fetch_duration_seconds",
        "reconcile_apply_errors_total", "reconcile_heals_withheld_total"}) {
    check_family(text, name);
  }
  CHECK(Has(text, "# TYPE reconcile_passes_total counter"));
  CHECK(Has(text, "# TYPE reconcile_pass_duration_seconds histogram"));
  for (const char* r : {"success", "failed", "invalid", "unavailable", "cancelled"}) {
    CHECK(Has(text, std::string("reconcile_passes_total{environment=\"default\",result=\"") + r +
                        "\"} 0"));
  }
  CHECK(Has(text, "reconcile_drifted_agents{environment=\"default\"} 0"));
  CHECK(Has(text, "reconcile_heals_withheld_total{environment=\"default\"} 0"));
  m.HealWithheld();
  CHECK(Has(m.Render(), "reconcile_heals_withheld_total{environment=\"default\"} 1"));
  // Families whose labels are not known in advance appear with their first series.
  CHECK_FALSE(Has(text, "reconcile_revision_info"));
  m.SetRevision("6113728f27ae82c7b1a177c8d03f9e96e0adf246");
  m.SetAgents({{"healthy", 1}});
  m.WebhookRequest("github", 202);
  text = m.Render();
  for (const char* name :
       {"reconcile_revision_info", "reconcile_agents", "reconcile_webhook_requests_total"}) {
    check_family(text, name);
  }
  CHECK(Has(text, "# TYPE reconcile_revision_info gauge"));
  CHECK(Has(text, "# TYPE reconcile_webhook_requests_total counter"));
}

TEST_CASE("metrics: typed methods update their series") {
  Metrics m;
  m.PassFinished(PassResult::kSuccess, 1.5);
  m.PassFinished(PassResult::kSuccess, 0.2);
  m.PassFinished(PassResult::kInvalid, 0.05);
  m.SetLastSuccess(1764580800);
  m.SetDrifted(2);
  m.WebhookRequest("github", 202);
  m.WebhookRequest("github", 202);
  m.WebhookRequest("github", 401);
  m.SourceFetchFailed();
  m.SourceFetchDuration(0.3);
  m.ApplyErrors(3);
  std::string text = m.Render();
  CHECK(Has(text, "reconcile_passes_total{environment=\"default\",result=\"success\"} 2"));
  CHECK(Has(text, "reconcile_passes_total{environment=\"default\",result=\"invalid\"} 1"));
  CHECK(Has(text,
            "reconcile_pass_duration_seconds_count{environment=\"default\",result=\"success\"} 2"));
  CHECK(Has(text,
            "reconcile_pass_duration_seconds_bucket{environment=\"default\",result=\"success\",le="
            "\"0.5\"} 1"));
  CHECK(Has(text,
            "reconcile_pass_duration_seconds_bucket{environment=\"default\",result=\"success\",le="
            "\"+Inf\"} 2"));
  CHECK(Has(text, "reconcile_last_success_timestamp_seconds{environment=\"default\"} 1764580800"));
  CHECK(Has(text, "reconcile_drifted_agents{environment=\"default\"} 2"));
  CHECK(Has(text, "reconcile_webhook_requests_total{code=\"202\",provider=\"github\"} 2"));
  CHECK(Has(text, "reconcile_webhook_requests_total{code=\"401\",provider=\"github\"} 1"));
  CHECK(Has(text, "reconcile_source_fetch_errors_total 1"));
  CHECK(Has(text, "reconcile_source_fetch_duration_seconds_count 1"));
  CHECK(Has(text, "reconcile_apply_errors_total{environment=\"default\"} 3"));
}

TEST_CASE("metrics: one revision series, replaced; agent states replaced") {
  Metrics m;
  m.SetRevision("6113728f27ae82c7b1a177c8d03f9e96e0adf246");
  CHECK(Has(m.Render(),
            "reconcile_revision_info{environment=\"default\",revision="
            "\"6113728f27ae82c7b1a177c8d03f9e96e0adf246\"} 1"));
  m.SetRevision("738a951dba49dfec487000ef85ae80291d7ab32a");
  std::string text = m.Render();
  CHECK(Has(text,
            "reconcile_revision_info{environment=\"default\",revision="
            "\"738a951dba49dfec487000ef85ae80291d7ab32a\"} 1"));
  CHECK_FALSE(Has(text, "6113728f27ae82c7b1a177c8d03f9e96e0adf246"));
  m.SetRevision("");
  CHECK_FALSE(Has(m.Render(), "reconcile_revision_info{environment=\"default\","));

  // The source's revision is its own series, replaced the same way.
  m.SetRevision("c1");
  m.SetSourceRevision("c1");
  m.SetSourceRevision("c2", "prod");
  m.SetSourceRevision("c3");
  text = m.Render();
  CHECK(Has(text, "# TYPE reconcile_source_revision_info gauge"));
  CHECK(Has(text, "reconcile_source_revision_info{environment=\"default\",revision=\"c3\"} 1"));
  CHECK(Has(text, "reconcile_source_revision_info{environment=\"prod\",revision=\"c2\"} 1"));
  CHECK_FALSE(Has(text, "reconcile_source_revision_info{environment=\"default\",revision=\"c1\"}"));
  CHECK(Has(text, "reconcile_revision_info{environment=\"default\",revision=\"c1\"} 1"));
  m.SetSourceRevision("");
  CHECK_FALSE(Has(m.Render(), "reconcile_source_revision_info{environment=\"default\","));
  m.SetRevision("");

  m.SetAgents({{"healthy", 3}, {"unhealthy", 1}});
  text = m.Render();
  CHECK(Has(text, "reconcile_agents{environment=\"default\",state=\"healthy\"} 3"));
  CHECK(Has(text, "reconcile_agents{environment=\"default\",state=\"unhealthy\"} 1"));
  m.SetAgents({{"healthy", 4}});
  text = m.Render();
  CHECK(Has(text, "reconcile_agents{environment=\"default\",state=\"healthy\"} 4"));
  CHECK_FALSE(Has(text, "state=\"unhealthy\""));
}

TEST_CASE("metrics: label values are escaped") {
  Metrics m;
  m.SetRevision("a\"b\\c\nd");
  CHECK(Has(m.Render(),
            "reconcile_revision_info{environment=\"default\",revision=\"a\\\"b\\\\c\\nd\"} 1"));
}

TEST_CASE("metrics: concurrent updates and renders") {
  Metrics m;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&m, t] {
      for (int i = 0; i < 500; ++i) {
        m.PassFinished(PassResult::kSuccess, 0.01);
        m.SetRevision("rev" + std::to_string((t * 1000 + i) % 7));
        m.SetAgents({{"healthy", i}, {i % 2 ? "unknown" : "unhealthy", 1}});
        m.WebhookRequest("gitlab", 200);
        if (i % 50 == 0) (void)m.Render();
      }
    });
  }
  for (auto& th : threads) th.join();
  std::string text = m.Render();
  CHECK(Has(text, "reconcile_passes_total{environment=\"default\",result=\"success\"} 2000"));
  CHECK(Has(text, "reconcile_webhook_requests_total{code=\"200\",provider=\"gitlab\"} 2000"));
  std::size_t revisions = 0;
  for (std::size_t p = text.find("reconcile_revision_info{environment=\"default\",");
       p != std::string::npos;
       p = text.find("reconcile_revision_info{environment=\"default\",", p + 1)) {
    ++revisions;
  }
  CHECK(revisions == 1);
}

}  // namespace
TEST_CASE("metrics: every per-pass series is labelled with its environment") {
  Metrics m({"dev", "prod"});
  m.PassFinished(PassResult::kSuccess, 0.2, "dev");
  m.PassFinished(PassResult::kInvalid, 0.1, "prod");
  m.PassSkipped("prod");
  m.SetRevision("c1", "dev");
  m.SetRevision("c0", "prod");
  m.SetAgents({{"healthy", 2}}, "dev");
  m.ApplyErrors(1, "prod");
  const std::string text = m.Render();
  CHECK(Has(text, "reconcile_passes_total{environment=\"dev\",result=\"success\"} 1"));
  CHECK(Has(text, "reconcile_passes_total{environment=\"prod\",result=\"success\"} 0"));
  CHECK(Has(text, "reconcile_passes_total{environment=\"prod\",result=\"invalid\"} 1"));
  CHECK(Has(text, "reconcile_passes_skipped_total{environment=\"prod\"} 1"));
  CHECK(Has(text, "reconcile_passes_skipped_total{environment=\"dev\"} 0"));
  CHECK(Has(text, "reconcile_revision_info{environment=\"dev\",revision=\"c1\"} 1"));
  CHECK(Has(text, "reconcile_revision_info{environment=\"prod\",revision=\"c0\"} 1"));
  CHECK(Has(text, "reconcile_agents{environment=\"dev\",state=\"healthy\"} 2"));
  CHECK(Has(text, "reconcile_apply_errors_total{environment=\"prod\"} 1"));
  CHECK_FALSE(Has(text, "environment=\"default\""));  // not given: no default series
  CHECK_FALSE(Has(text, "environment=\"\""));
}

}  // namespace reconcile::controller
