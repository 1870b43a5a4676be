// StatusPage: the read-only HTML page served at GET / and the pieces of its
// live updates, rendered from the status document (GET /api/v1/status,
// Scheduler::StatusJson) plus, per environment, the "history" rows the
// StatusFeed adds (status_feed.h). Pure: no I/O.
//
// The page has one <section id="env-<name>"> per environment: its revision
// (applied, seen, branch), the last pass (kind, result, time, duration,
// changes), a deploy window that blocks, the last error and the tree's
// diagnostics with their file:line, one row id="agent-<env>-<name>" per
// agent (health, endpoint as a link, image digest, drift and its reason, its
// last error), and the recent history. Everything from the document is
// HTML-escaped. The page loads nothing else: inline CSS, and one small
// inline script that listens to GET /events (server-sent events, "env"
// events whose data is a section as RenderEnvironmentSection renders it)
// and replaces that section. The Content-Security-Policy (StatusPageCsp)
// allows exactly that script and style by their sha256. Without JavaScript
// a <noscript> refresh reloads the page every 10 s.
//
// Thread-safety: pure functions; the constants are computed once,
// thread-safely.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "reconcile/state.h"

namespace reconcile::controller {

// The whole page. `status` should be an object: either one environment's
// document (a plain tree: its name is "default" unless it has "name") or one
// with "environments": [...]; anything else renders as "unavailable".
std::string RenderStatusPage(const nlohmann::json& status);

// One environment's <section id="env-<name>">...</section>: what the page
// holds for it, and the data of an SSE "env" event.
std::string RenderEnvironmentSection(const nlohmann::json& environment);

// The environments of a status document, as (name, document) pairs: its
// "environments", or the document itself named "default" (or its "name").
std::vector<std::pair<std::string, const nlohmann::json*>> EnvironmentsOf(
    const nlohmann::json& status);

// The newest `limit` entries of `history`, newest first, as the page's
// "history" rows: [{"serial", "revision", "appliedAt", "result", "summary",
// "rollbackOf"}].
nlohmann::json HistoryRows(const History& history, std::size_t limit = 10);

// The Content-Security-Policy header of the page: nothing from elsewhere,
// the inline script and style by hash, EventSource to the same origin.
const std::string& StatusPageCsp();

// One server-sent event: "event: <event>\n", one "data: " line per line of
// `data` (CR, LF and CRLF all end a line), and the blank line that ends it.
// `event` must be a single line (other characters are dropped).
std::string SseFrame(std::string_view event, std::string_view data);

// Whether a request carries `token`: "Authorization: Bearer <token>"
// (scheme case-insensitive) or a "token=<token>" query parameter
// (percent-decoded) in `target`. Compared in constant time (over SHA-256
// digests, so neither length nor content leaks). An empty `token` accepts
// nothing.
bool StatusTokenAccepted(std::string_view authorization, std::string_view target,
                         std::string_view token);

// `target` with the value of any "token" query parameter replaced by
// "REDACTED", for access logs.
std::string RedactToken(std::string_view target);

// Escapes & < > " ' for HTML text and attribute values.
std::string HtmlEscape(std::string_view text);

}  // namespace reconcile::controller
