// StatusPage: the small read-only HTML page served at GET /, rendered from
// the same JSON as GET /api/v1/status. Pure: no I/O.
//
// Every top-level scalar field (and the scalar fields of top-level objects,
// as "object.field") is shown in a summary table, so the page follows the
// status document whatever fields it grows; lists of scalars (diagnostics,
// endpoints) are shown as lists. `agents` — an array of objects, or an
// object of objects keyed by agent name — becomes a table with one column
// per such field. All text is HTML-escaped; the page has no
// scripts and no external resources.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace reconcile::controller {

// `status` should be an object; anything else renders as one summary value.
std::string RenderStatusPage(const nlohmann::json& status);

// Escapes & < > " ' for HTML text and attribute values.
std::string HtmlEscape(std::string_view text);

}  // namespace reconcile::controller
