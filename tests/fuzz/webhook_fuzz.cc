// Webhook deliveries (controller/webhook.h) past their signature check: the
// first byte picks the provider, the event and the content type, the rest is
// the body, signed with the right secret so the payload parser is reached.
// The verdict's text is sent back and logged, so it must stay printable and
// bounded whatever the body holds.
#include <string>

#include "controller/webhook.h"
#include "fuzz_util.h"

namespace {

constexpr const char* kSecret = "fuzz-secret";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace reconcile;
  using controller::WebhookProvider;
  if (size == 0) return 0;
  const std::uint8_t selector = data[0];
  const std::string_view body = fuzz::Bytes(data + 1, size - 1);
  controller::WebhookHeaders headers;
  WebhookProvider provider = WebhookProvider::kGitHub;
  switch (selector % 3) {
    case 0:
      headers["x-hub-signature-256"] = "sha256=" + controller::HmacSha256Hex(kSecret, body);
      headers["x-github-event"] = (selector & 8) ? "ping" : "push";
      if (selector & 16) headers["content-type"] = "application/x-www-form-urlencoded";
      break;
    case 1:
      provider = WebhookProvider::kGitLab;
      headers["x-gitlab-token"] = kSecret;
      headers["x-gitlab-event"] = (selector & 8) ? "Tag Push Hook" : "Push Hook";
      break;
    default:
      provider = WebhookProvider::kGeneric;
      headers["x-reconcile-signature-256"] = "sha256=" + controller::HmacSha256Hex(kSecret, body);
      break;
  }
  controller::WebhookVerdict v =
      controller::VerifyWebhook(provider, headers, body, kSecret, "main");
  fuzz::Check(v.kind != controller::WebhookVerdict::Kind::kUnauthorized,
              "a correctly signed delivery was refused as unauthorized");
  for (const std::string* text : {&v.message, &v.event, &v.ref, &v.commit}) {
    fuzz::Check(text->size() <= 4096, "a verdict field is unbounded");
    for (unsigned char c : *text) {
      fuzz::Check(c >= 0x20 && c < 0x7f, "a verdict field holds a non-printable byte");
    }
  }
  const int status = v.http_status();
  fuzz::Check(status == 200 || status == 202 || status == 400 || status == 401 || status == 503,
              "an HTTP status outside the documented table");
  return 0;
}
