#include "controller/webhook_secrets.h"

#include <doctest/doctest.h>

#include "fakes/temp_dir.h"

namespace reconcile::controller {
namespace {

TEST_CASE("webhook secrets: one file for all providers, trailing newline dropped") {
  testing::TempDir dir;
  dir.Write("secret", "It's a Secret to Everybody\n");
  auto s = LoadWebhookSecrets(dir.path() / "secret");
  REQUIRE(s.ok());
  CHECK(s->github == "It's a Secret to Everybody");
  CHECK(s->gitlab == s->github);
  CHECK(s->generic == s->github);
  CHECK(s->any());
  CHECK_FALSE(WebhookSecrets{}.any());
}

TEST_CASE("webhook secrets: errors name the file, never the content") {
  testing::TempDir dir;
  dir.Write("empty", "\n\n");
  dir.Write("big", std::string(5000, 'k'));
  auto missing = LoadWebhookSecrets(dir.path() / "nope");
  CHECK(missing.status().code() == Code::kNotFound);
  CHECK(missing.status().message().find("nope") != std::string::npos);
  CHECK(LoadWebhookSecrets(dir.path() / "empty").status().code() == Code::kInvalid);
  auto big = LoadWebhookSecrets(dir.path() / "big");
  CHECK(big.status().code() == Code::kInvalid);
  CHECK(big.status().message().find("kkkk") == std::string::npos);
  CHECK(LoadWebhookSecrets(dir.path()).status().code() == Code::kInvalid);
}

}  // namespace
}  // namespace reconcile::controller
