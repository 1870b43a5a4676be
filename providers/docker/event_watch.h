// EventWatch: the Docker provider's drift watch (Provider::WatchDrift). A
// thread of its own keeps GET /v1.41/events open on its own connection to
// the Engine (unix socket, or plain TCP to a loopback host), with the
// filters of engine_events.h, reads the chunked body line by line
// (EventLineSplitter) and turns each of our container events
// (ParseContainerEvent) into a DriftNotice::kChanged for its agent; a kill
// alone is not a change (a signal was sent: when it ends the container, die
// follows).
//
// When the stream ends or fails (the Engine restarted, the socket went) it
// says so once (kLost, with the reason) and reconnects with backoff (100 ms,
// doubled up to 5 s); once a stream is up again it says kResync (events may
// have been missed meanwhile). The first successful connection says nothing,
// unless attempts failed before it.
//
// Thread-safety: the callback runs on the watch's thread, one call at a
// time. Destruction asks the thread to stop, shuts the socket down (a
// blocked read ends at once) and joins it: no callback runs afterwards.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "docker/engine_client.h"
#include "reconcile/provider.h"
#include "reconcile/status.h"

namespace reconcile::docker {

struct EventWatchOptions {
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{std::chrono::seconds(5)};
};

// "container stopped", "container removed", ... for an action of
// kDriftActions (the action itself when unknown).
std::string DescribeContainerAction(const std::string& action);

// Starts watching the Engine at `address` (unix:///path or tcp://HOST:PORT
// without TLS) for the containers of `environment` ("" for a plain tree).
// kInvalid for an address it cannot watch (tcp:// to a host that is not
// loopback: TLS is not supported by the watch). Does not wait for the
// connection: failures arrive as kLost notices.
Result<std::unique_ptr<DriftWatch>> NewEventWatch(const std::string& address,
                                                  const std::string& environment,
                                                  DriftNoticeFn on_notice,
                                                  EventWatchOptions options = {});

}  // namespace reconcile::docker
