// The Docker Engine's answers as the provider reads them
// (providers/docker): a container list, an image inspect, and the event
// stream (split into lines whatever the chunking, each line an event or
// nothing). An Engine is outside input: a hostile or broken one must get an
// error value, never a crash.
#include <string>

#include <nlohmann/json.hpp>

#include "docker/container_spec.h"
#include "docker/engine_events.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace reconcile;
  const std::string_view bytes = fuzz::Bytes(data, size);
  nlohmann::json j = nlohmann::json::parse(bytes, nullptr, false);
  if (!j.is_discarded()) {
    auto listed = docker::ParseContainerList(j, "127.0.0.1");
    if (listed.ok()) {
      for (const ObservedInstance& i : *listed) {
        fuzz::Check(!i.agent.empty(), "a listed container without an agent");
      }
    }
    (void)docker::ParseContainerList(j, "::1", "prod");
    (void)docker::ImageDigestOf(j, "reconcile/hello-agent:0.1.0");
    (void)docker::ParseContainerEvent(j, "");
  }
  // The event stream in chunks cut at the input's own 0xff bytes.
  docker::EventLineSplitter split(4096);
  std::size_t start = 0;
  while (start <= bytes.size()) {
    std::size_t cut = bytes.find('\xff', start);
    if (cut == std::string_view::npos) cut = bytes.size();
    for (const std::string& line : split.Feed(bytes.substr(start, cut - start))) {
      fuzz::Check(line.size() <= 4096, "a line over the splitter's limit");
      fuzz::Check(line.find('\n') == std::string::npos, "a line holds a newline");
      nlohmann::json m = nlohmann::json::parse(line, nullptr, false);
      if (!m.is_discarded()) (void)docker::ParseContainerEvent(m, "");
    }
    start = cut + 1;
  }
  return 0;
}
