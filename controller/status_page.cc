#include "controller/status_page.h"

#include <algorithm>
#include <vector>

namespace reconcile::controller {
namespace {

using nlohmann::json;

// Scalars and lists of scalars are shown; deeper structure is left to the
// JSON endpoint.
bool IsShown(const json& v) {
  if (v.is_primitive()) return true;
  if (!v.is_array()) return false;
  return std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_primitive(); });
}

std::string ScalarText(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

// The escaped cell content of a shown value (IsShown).
std::string Cell(const json& v) {
  if (!v.is_array()) return HtmlEscape(ScalarText(v));
  if (v.empty()) return "";
  std::string out = "<ul>";
  for (const json& e : v) out += "<li>" + HtmlEscape(ScalarText(e)) + "</li>";
  return out + "</ul>";
}

void Row(std::string& out, std::string_view key, const json& value) {
  out += "<tr><th>" + HtmlEscape(key) + "</th><td>" + Cell(value) + "</td></tr>\n";
}

void AgentsTable(std::string& out, const json& agents) {
  std::vector<std::pair<std::string, const json*>> rows;  // (name from key, agent)
  if (agents.is_array()) {
    for (const auto& a : agents) {
      if (a.is_object()) rows.emplace_back("", &a);
    }
  } else if (agents.is_object()) {
    for (const auto& [name, a] : agents.items()) {
      if (a.is_object()) rows.emplace_back(name, &a);
    }
  }
  out += "<h2>Agents</h2>\n";
  if (rows.empty()) {
    out += "<p>No agents.</p>\n";
    return;
  }
  std::vector<std::string> columns{"name"};
  for (const auto& [key_name, a] : rows) {
    for (const auto& [k, v] : a->items()) {
      if (IsShown(v) && std::find(columns.begin(), columns.end(), k) == columns.end()) {
        columns.push_back(k);
      }
    }
  }
  out += "<table>\n<tr>";
  for (const auto& c : columns) out += "<th>" + HtmlEscape(c) + "</th>";
  out += "</tr>\n";
  for (const auto& [key_name, a] : rows) {
    out += "<tr>";
    for (const auto& c : columns) {
      std::string cell;
      if (auto it = a->find(c); it != a->end() && IsShown(*it)) {
        cell = Cell(*it);
      } else if (c == "name") {
        cell = HtmlEscape(key_name);
      }
      out += "<td>" + cell + "</td>";
    }
    out += "</tr>\n";
  }
  out += "</table>\n";
}

// The rows of one status object: its scalars, and one level of nested
// objects as "key.sub".
void StatusRows(std::string& out, const json& status) {
  for (const auto& [k, v] : status.items()) {
    if (k == "agents" || k == "environments") continue;
    if (IsShown(v)) {
      Row(out, k, v);
    } else if (v.is_object()) {
      for (const auto& [k2, v2] : v.items()) {
        if (IsShown(v2)) Row(out, k + "." + k2, v2);
      }
    }
  }
}

}  // namespace

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string RenderStatusPage(const json& status) {
  std::string out =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta http-equiv=\"refresh\" content=\"15\">\n<title>reconcile</title>\n"
      "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
      "th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
      "th{background:#f4f4f4}</style>\n</head>\n<body>\n<h1>reconcile controller</h1>\n"
      "<h2>Status</h2>\n<table>\n";
  if (status.is_object()) {
    StatusRows(out, status);
  } else {
    Row(out, "status", status.is_primitive() ? status : json("unavailable"));
  }
  out += "</table>\n";
  const json envs = status.is_object() ? status.value("environments", json()) : json();
  if (envs.is_array()) {
    // Several environments: one section each (its status, then its agents).
    for (const json& e : envs) {
      if (!e.is_object()) continue;
      out += "<h2>Environment " + HtmlEscape(ScalarText(e.value("name", json("")))) +
             "</h2>\n<table>\n";
      StatusRows(out, e);
      out += "</table>\n";
      AgentsTable(out, e.value("agents", json()));
    }
  } else {
    AgentsTable(out, status.is_object() ? status.value("agents", json()) : json());
  }
  out +=
      "<p><a href=\"/api/v1/status\">/api/v1/status</a> · <a href=\"/metrics\">/metrics</a>"
      "</p>\n</body>\n</html>\n";
  return out;
}

}  // namespace reconcile::controller
