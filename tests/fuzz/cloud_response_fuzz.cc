// The clouds' answers as the providers read them: App Runner's (any
// operation, any HTTP status, any body), a Cloud Run Service and an Azure
// Container App. Like an Engine's, a cloud's answer is outside input.
#include <string>

#include <nlohmann/json.hpp>

#include "aws/apprunner_wire.h"
#include "azure/containerapps_wire.h"
#include "fuzz_util.h"
#include "gcp/cloudrun_service.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace reconcile;
  if (size < 2) return 0;
  const long status = 100 + (data[0] % 5) * 100 + data[1] % 30;
  const std::string_view body = fuzz::Bytes(data + 2, size - 2);
  auto answer = aws::ParseAppRunnerAnswer("DescribeService", status, body, "");
  if (!answer.ok()) {
    fuzz::Check(answer.status().message().size() <= 2048, "an unbounded App Runner error");
  }
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded()) return 0;
  (void)gcp::ObservedFromService(j);
  (void)gcp::ServiceHealth(j);
  (void)azure::ObservedFromApp(j);
  (void)azure::IsOwned(j);
  return 0;
}
