#include "controller/status_page.h"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

namespace reconcile::controller {
namespace {

using nlohmann::json;

TEST_CASE("status page: escapes every text and shows the fields") {
  json status = {
      {"revision", "6113728f27ae82c7b1a177c8d03f9e96e0adf246"},
      {"last_result", "invalid"},
      {"last_error", "deploy/web.yaml:3:1: <script>alert('x')</script> & \"more\""},
      {"ready", true},
      {"last_pass", {{"seconds", 1.5}, {"detail", {{"nested", "skipped"}}}}},
      {"agents", json::array({{{"name", "web<img src=x onerror=alert(1)>"},
                               {"health", "healthy"},
                               {"target", "local"}},
                              {{"name", "bot"}, {"drift", "image"}, {"spec", {{"a", 1}}}}})}};
  std::string page = RenderStatusPage(status);
  CHECK(page.find("<script>") == std::string::npos);
  CHECK(page.find("<img") == std::string::npos);
  CHECK(page.find("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;more&quot;") !=
        std::string::npos);
  CHECK(page.find("web&lt;img src=x onerror=alert(1)&gt;") != std::string::npos);
  CHECK(page.find("6113728f27ae82c7b1a177c8d03f9e96e0adf246") != std::string::npos);
  CHECK(page.find("<th>last_pass.seconds</th><td>1.5</td>") != std::string::npos);
  CHECK(page.find("nested") == std::string::npos);
  CHECK(page.find("<th>name</th><th>health</th><th>target</th><th>drift</th>") !=
        std::string::npos);
  CHECK(page.find("<td>bot</td><td></td><td></td><td>image</td>") != std::string::npos);
}

TEST_CASE("status page: one section per environment, each with its status and agents") {
  json status = {
      {"branch", "main"},
      {"environments",
       json::array({{{"name", "dev"},
                     {"path", "envs/dev"},
                     {"lastError", ""},
                     {"revision", {{"applied", "c3"}}},
                     {"agents", json::array({{{"name", "web-dev"}, {"health", "healthy"}}})}},
                    {{"name", "st<b>aging"},
                     {"lastError", "envs/staging/web.yaml:7:9: error: spec.port"},
                     {"agents", json::array()}}})}};
  std::string page = RenderStatusPage(status);
  CHECK(page.find("<h2>Environment dev</h2>") != std::string::npos);
  CHECK(page.find("<h2>Environment st&lt;b&gt;aging</h2>") != std::string::npos);
  CHECK(page.find("<th>revision.applied</th><td>c3</td>") != std::string::npos);
  CHECK(page.find("web-dev") != std::string::npos);
  CHECK(page.find("envs/staging/web.yaml:7:9: error: spec.port") != std::string::npos);
  CHECK(page.find("<th>branch</th><td>main</td>") != std::string::npos);
}

TEST_CASE("status page: lists of scalars, as the scheduler's status has them") {
  json status = {
      {"revision", {{"applied", "c1"}, {"invalid", "c2"}}},
      {"lastPass",
       {{"result", "invalid"},
        {"diagnostics", json::array({"deploy/a.yaml:3:1: unknown field <x>", "second"})}}},
      {"agents", json::array({{{"name", "a"},
                               {"endpoints", json::array({"http://127.0.0.1:49153"})},
                               {"health", "healthy"}}})}};
  std::string page = RenderStatusPage(status);
  CHECK(page.find("<th>revision.applied</th><td>c1</td>") != std::string::npos);
  CHECK(page.find("<th>lastPass.diagnostics</th><td><ul><li>deploy/a.yaml:3:1: unknown field "
                  "&lt;x&gt;</li><li>second</li></ul></td>") != std::string::npos);
  CHECK(page.find("<td><ul><li>http://127.0.0.1:49153</li></ul></td>") != std::string::npos);
}

TEST_CASE("status page: agents keyed by name, none, or a status that is not an object") {
  std::string page = RenderStatusPage({{"agents", {{"web", {{"health", "healthy"}}}}}});
  CHECK(page.find("<td>web</td><td>healthy</td>") != std::string::npos);
  CHECK(RenderStatusPage(json::object()).find("No agents.") != std::string::npos);
  CHECK(RenderStatusPage(json::array({1})).find("unavailable") != std::string::npos);
  CHECK(HtmlEscape("a<b>&'\"") == "a&lt;b&gt;&amp;&#39;&quot;");
}

}  // namespace
}  // namespace reconcile::controller
