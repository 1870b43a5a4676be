#include "controller/status_page.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>
#include <cctype>
#include <cstdio>

namespace reconcile::controller {
namespace {

using nlohmann::json;

// The page's only script: replaces an environment's section with the one an
// "env" event carries. The page works without it.
constexpr std::string_view kScript =
    "(function(){var live=document.getElementById('live');"
    "if(!window.EventSource||!window.HTMLTemplateElement)return;"
    "var es=new EventSource('/events'+location.search);"
    "es.onopen=function(){live.textContent='live';live.className='on';};"
    "es.onerror=function(){live.textContent='reconnecting';live.className='off';};"
    "es.addEventListener('env',function(e){var t=document.createElement('template');"
    "t.innerHTML=e.data;var n=t.content.firstElementChild;if(!n||!n.id)return;"
    "var old=document.getElementById(n.id);"
    "if(old){old.replaceWith(n);}else{document.getElementById('environments').appendChild(n);}"
    "});})();";

constexpr std::string_view kStyle =
    "body{font-family:'DejaVu Sans',sans-serif;margin:1.5em;color:#222}"
    "h1{font-size:1.4em;margin:0}header p{margin:.3em 0 1em;color:#555}"
    "section.env{border:1px solid #ccc;border-radius:6px;padding:.2em 1em 1em;margin:0 0 1.5em}"
    "h2{font-size:1.2em}h3{font-size:1em;margin:1em 0 .3em}"
    "table{border-collapse:collapse}th,td{border:1px solid #ddd;padding:.25em .5em;"
    "text-align:left;vertical-align:top}th{background:#f4f4f4}"
    "dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em;margin:0}"
    "dt{color:#555}dd{margin:0}code{font-size:.95em}"
    ".result-success,.health-healthy{color:#176f2c;font-weight:bold}"
    ".result-failed,.result-invalid,.health-unhealthy{color:#b00020;font-weight:bold}"
    ".result-blocked,.drift-reported,.health-unknown{color:#8a5a00;font-weight:bold}"
    ".error{color:#b00020}.running{color:#1a4fa0}"
    "#live.on{color:#176f2c}#live.off{color:#8a5a00}";

std::string Base64(const unsigned char* data, std::size_t n) {
  std::string out(4 * ((n + 2) / 3) + 1, '\0');
  int len =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(n));
  out.resize(static_cast<std::size_t>(len));
  return out;
}

std::array<unsigned char, 32> Sha256(std::string_view text) {
  std::array<unsigned char, 32> digest{};
  unsigned int n = 0;
  EVP_Digest(text.data(), text.size(), digest.data(), &n, EVP_sha256(), nullptr);
  return digest;
}

std::string CspHash(std::string_view text) {
  auto d = Sha256(text);
  return "'sha256-" + Base64(d.data(), d.size()) + "'";
}

// A field's text: strings as they are, numbers and booleans as JSON, "" for
// null, missing or structured values.
std::string Str(const json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  if (it == j.end() || it->is_null() || it->is_structured()) return "";
  if (it->is_string()) return it->get<std::string>();
  return it->dump(-1, ' ', false, json::error_handler_t::replace);
}

const json& Field(const json& j, const char* key) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

// [a-z0-9-] only, for class names.
std::string Token(std::string_view text) {
  std::string out;
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    out += std::isalnum(u) ? static_cast<char>(std::tolower(u)) : '-';
  }
  return out;
}

std::string Short(const std::string& revision) {
  return revision.size() > 12 ? revision.substr(0, 12) : revision;
}

// A revision as its first 12 characters, the whole one in the title.
std::string Revision(const std::string& revision) {
  if (revision.empty()) return "<span class=\"none\">none</span>";
  return "<code title=\"" + HtmlEscape(revision) + "\">" + HtmlEscape(Short(revision)) + "</code>";
}

void Item(std::string& out, std::string_view term, const std::string& html) {
  out += "<dt>";
  out += term;
  out += "</dt><dd>" + html + "</dd>\n";
}

// "file:line:col: error: field: message" -> (location, rest); no location
// when the text has no ": error: " / ": warning: ".
std::pair<std::string, std::string> SplitDiagnostic(const std::string& text) {
  for (const char* mark : {": error: ", ": warning: "}) {
    auto at = text.find(mark);
    if (at != std::string::npos) return {text.substr(0, at), text.substr(at + 2)};
  }
  return {"", text};
}

std::string DiagnosticHtml(const std::string& text) {
  auto [at, rest] = SplitDiagnostic(text);
  std::string out;
  if (!at.empty()) out += "<code class=\"at\">" + HtmlEscape(at) + "</code> ";
  return out + HtmlEscape(rest);
}

std::string EndpointHtml(const std::string& endpoint) {
  if (endpoint.rfind("http://", 0) == 0 || endpoint.rfind("https://", 0) == 0) {
    return "<a href=\"" + HtmlEscape(endpoint) + "\">" + HtmlEscape(endpoint) + "</a>";
  }
  return HtmlEscape(endpoint);
}

// An agent's last error: {"message", "at"} (scheduler.cc) or a string.
std::string AgentErrorHtml(const json& error) {
  if (error.is_string()) return DiagnosticHtml(error.get<std::string>());
  std::string message = Str(error, "message");
  std::string at = Str(error, "at");
  if (message.empty() && at.empty()) return "";
  std::string out = "<span class=\"error\">";
  if (!at.empty()) out += "<code class=\"at\">" + HtmlEscape(at) + "</code> ";
  return out + HtmlEscape(message) + "</span>";
}

void AgentRow(std::string& out, const std::string& env, const std::string& name, const json& a) {
  const std::string health = Str(a, "health");
  const std::string drift = Str(a, "drift");
  out += "<tr id=\"agent-" + HtmlEscape(env) + "-" + HtmlEscape(name) + "\" class=\"agent\">";
  out += "<td class=\"name\">" + HtmlEscape(name) + "</td>";
  out += "<td class=\"health health-" + Token(health) + "\">" +
         HtmlEscape(health.empty() ? "unknown" : health) + "</td>";
  out += "<td>" + HtmlEscape(Str(a, "target")) + "</td><td class=\"endpoint\">";
  const json& endpoints = Field(a, "endpoints");
  if (endpoints.is_array()) {
    bool first = true;
    for (const json& e : endpoints) {
      if (!e.is_string()) continue;
      if (!first) out += "<br>";
      out += EndpointHtml(e.get<std::string>());
      first = false;
    }
  }
  out += "</td>";
  const std::string digest = Str(a, "digest");
  out += "<td>";
  if (!digest.empty()) {
    auto colon = digest.find(':');
    std::string hex = colon == std::string::npos ? digest : digest.substr(colon + 1);
    out +=
        "<code title=\"" + HtmlEscape(digest) + "\">" + HtmlEscape(hex.substr(0, 12)) + "</code>";
  }
  out += "</td><td>" + Revision(Str(a, "revision")) + "</td>";
  out += "<td class=\"drift drift-" + Token(drift.empty() ? "none" : drift) + "\">" +
         HtmlEscape(drift.empty() ? "none" : drift);
  if (std::string why = Str(a, "driftReason"); !why.empty()) {
    out += "<br><small>" + HtmlEscape(why) + "</small>";
  }
  out += "</td><td class=\"last-error\">" + AgentErrorHtml(Field(a, "lastError")) + "</td></tr>\n";
}

void AgentsTable(std::string& out, const std::string& env, const json& agents) {
  std::vector<std::pair<std::string, const json*>> rows;
  if (agents.is_array()) {
    for (const json& a : agents) {
      if (a.is_object()) rows.emplace_back(Str(a, "name"), &a);
    }
  } else if (agents.is_object()) {
    for (const auto& [name, a] : agents.items()) {
      if (a.is_object()) rows.emplace_back(name, &a);
    }
  }
  out += "<h3>Agents</h3>\n";
  if (rows.empty()) {
    out += "<p class=\"none\">No agents.</p>\n";
    return;
  }
  out +=
      "<table class=\"agents\">\n<tr><th>agent</th><th>health</th><th>target</th>"
      "<th>endpoint</th><th>digest</th><th>revision</th><th>drift</th><th>last error</th>"
      "</tr>\n";
  for (const auto& [name, a] : rows) AgentRow(out, env, name, *a);
  out += "</table>\n";
}

void HistoryTable(std::string& out, const std::string& env, const json& history) {
  if (!history.is_array()) return;
  out += "<h3>History</h3>\n";
  if (history.empty()) {
    out += "<p class=\"none\">Nothing applied yet.</p>\n";
    return;
  }
  out += "<table class=\"history\" id=\"history-" + HtmlEscape(env) +
         "\">\n<tr><th>serial</th><th>revision</th><th>applied at</th><th>result</th>"
         "<th>summary</th></tr>\n";
  for (const json& h : history) {
    const std::string result = Str(h, "result");
    std::string summary = HtmlEscape(Str(h, "summary"));
    if (std::string of = Str(h, "rollbackOf"); !of.empty() && of != "0") {
      summary += " (rollback to serial " + HtmlEscape(of) + ")";
    }
    out += "<tr class=\"entry\"><td>" + HtmlEscape(Str(h, "serial")) + "</td><td>" +
           Revision(Str(h, "revision")) + "</td><td>" + HtmlEscape(Str(h, "appliedAt")) +
           "</td><td class=\"result-" + Token(result) + "\">" + HtmlEscape(result) + "</td><td>" +
           summary + "</td></tr>\n";
  }
  out += "</table>\n";
}

std::string Seconds(const json& v) {
  if (!v.is_number()) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", v.get<double>());
  return buf;
}

std::string SectionFor(const std::string& name, const json& e) {
  std::string out = "<section class=\"env\" id=\"env-" + HtmlEscape(name) + "\">\n<h2>" +
                    HtmlEscape(name) + "</h2>\n<dl>\n";
  const json& revision = Field(e, "revision");
  if (revision.is_object()) {
    Item(out, "revision", Revision(Str(revision, "applied")));
    if (std::string seen = Str(revision, "seen"); !seen.empty() && seen != Str(revision, "applied"))
      Item(out, "seen", Revision(seen));
  } else {
    Item(out, "revision", Revision(Str(e, "revision")));
  }
  if (std::string branch = Str(e, "branch"); !branch.empty())
    Item(out, "branch", HtmlEscape(branch));
  if (const json& running = Field(e, "running"); running.is_object()) {
    Item(out, "running",
         "<span class=\"running\">" + HtmlEscape(Str(running, "kind")) + " pass at " +
             Revision(Str(running, "revision")) + " since " + HtmlEscape(Str(running, "since")) +
             "</span>");
  }
  const json& last = Field(e, "lastPass");
  if (last.is_object()) {
    const std::string result = Str(last, "result");
    std::string pass = HtmlEscape(Str(last, "kind")) + " pass, <span class=\"result result-" +
                       Token(result) + "\">" + HtmlEscape(result) + "</span> at " +
                       HtmlEscape(Str(last, "finishedAt"));
    if (std::string s = Seconds(Field(last, "durationSeconds")); !s.empty()) pass += " in " + s;
    pass += ", " + HtmlEscape(Str(last, "changes")) + " change(s)";
    Item(out, "last pass", pass);
  } else {
    Item(out, "last pass", "<span class=\"none\">none yet</span>");
  }
  if (const json& skipped = Field(e, "lastSkipped"); skipped.is_object()) {
    Item(out, "last skipped",
         Revision(Str(skipped, "revision")) + " at " + HtmlEscape(Str(skipped, "at")) + ": " +
             HtmlEscape(Str(skipped, "reason")));
  }
  if (const json& window = Field(e, "window");
      window.is_object() && window.value("blocked", false)) {
    std::string w =
        "<span class=\"result-blocked\">blocked</span>: " + HtmlEscape(Str(window, "reason"));
    if (std::string next = Str(window, "next"); !next.empty())
      w += "; next change " + HtmlEscape(next);
    Item(out, "deploy window", w);
  }
  if (const json& plan = Field(e, "pendingPlan"); plan.is_object()) {
    // A plan waiting for approval (README "Approvals"): what it changes and
    // the command that approves it.
    std::string changes;
    if (const json& list = Field(plan, "changes"); list.is_array()) {
      for (const json& c : list) {
        if (!changes.empty()) changes += ", ";
        changes += HtmlEscape(Str(c, "address")) + " (" + HtmlEscape(Str(c, "action")) + ")";
      }
    }
    const std::string state = Str(plan, "state");
    Item(out, "approval",
         "<span class=\"result-blocked\">" +
             HtmlEscape(state == "approved" ? "approved" : "waiting") + "</span>: plan <code>" +
             HtmlEscape(Str(plan, "id")) + "</code> of revision " +
             Revision(Str(plan, "revision")) + " since " + HtmlEscape(Str(plan, "createdAt")) +
             (changes.empty() ? std::string() : ": " + changes) + "; approve with <code>" +
             HtmlEscape(Str(plan, "approve")) + "</code>");
  }
  if (const json& approval = Field(e, "approval"); approval.is_object()) {
    if (std::string note = Str(approval, "note"); !note.empty()) {
      Item(out, "approval note", "<span class=\"error\">" + HtmlEscape(note) + "</span>");
    }
  }
  if (const json& pin = Field(e, "pin"); pin.is_object()) {
    Item(out, "pinned",
         Revision(Str(pin, "revision")) + " (serial " + HtmlEscape(Str(pin, "serial")) + ")");
  }
  if (std::string d = Str(e, "lastDecision"); !d.empty()) Item(out, "decision", HtmlEscape(d));
  if (std::string err = Str(e, "lastError"); !err.empty()) {
    Item(out, "last error", "<span class=\"error\">" + DiagnosticHtml(err) + "</span>");
  }
  if (std::string err = Str(e, "sourceError"); !err.empty()) {
    Item(out, "source error", "<span class=\"error\">" + HtmlEscape(err) + "</span>");
  }
  out += "</dl>\n";
  if (const json& diags = Field(last, "diagnostics"); diags.is_array() && !diags.empty()) {
    out += "<h3>Diagnostics</h3>\n<ul class=\"diagnostics\">\n";
    for (const json& d : diags) {
      if (d.is_string()) out += "<li>" + DiagnosticHtml(d.get<std::string>()) + "</li>\n";
    }
    out += "</ul>\n";
  }
  AgentsTable(out, name, Field(e, "agents"));
  HistoryTable(out, name, Field(e, "history"));
  return out + "</section>\n";
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = HexValue(s[i + 1]), lo = HexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += s[i] == '+' ? ' ' : s[i];
  }
  return out;
}

// The query's parameters, in order (name, raw value, offset of the value).
struct Param {
  std::string_view name;
  std::string_view value;
  std::size_t value_at;
};

std::vector<Param> QueryParams(std::string_view target) {
  std::vector<Param> out;
  auto q = target.find('?');
  if (q == std::string_view::npos) return out;
  std::size_t at = q + 1;
  while (at <= target.size()) {
    std::size_t end = target.find('&', at);
    if (end == std::string_view::npos) end = target.size();
    std::string_view pair = target.substr(at, end - at);
    auto eq = pair.find('=');
    if (eq != std::string_view::npos) {
      out.push_back({pair.substr(0, eq), pair.substr(eq + 1), at + eq + 1});
    } else {
      out.push_back({pair, {}, end});
    }
    at = end + 1;
  }
  return out;
}

bool SameToken(std::string_view given, std::string_view token) {
  auto a = Sha256(given);
  auto b = Sha256(token);
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
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

std::vector<std::pair<std::string, const json*>> EnvironmentsOf(const json& status) {
  std::vector<std::pair<std::string, const json*>> out;
  if (!status.is_object()) return out;
  if (const json& envs = Field(status, "environments"); envs.is_array()) {
    for (const json& e : envs) {
      if (e.is_object()) out.emplace_back(Str(e, "name"), &e);
    }
    return out;
  }
  std::string name = Str(status, "name");
  out.emplace_back(name.empty() ? "default" : name, &status);
  return out;
}

std::string RenderEnvironmentSection(const json& environment) {
  std::string name = Str(environment, "name");
  return SectionFor(name.empty() ? "default" : name, environment);
}

std::string RenderStatusPage(const json& status) {
  std::string out =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<title>reconcile</title>\n"
      "<noscript><meta http-equiv=\"refresh\" content=\"10\"></noscript>\n<style>";
  out += kStyle;
  out += "</style>\n</head>\n<body>\n<header>\n<h1>reconcile controller</h1>\n<p>";
  if (!status.is_object()) {
    out += "status unavailable</p>\n</header>\n<main id=\"environments\"></main>\n";
  } else {
    std::string source = Str(status, "source");
    out += "following " + HtmlEscape(source.empty() ? "?" : source);
    if (std::string branch = Str(status, "branch"); !branch.empty()) {
      out += " (branch " + HtmlEscape(branch) + ")";
    }
    if (std::string err = Str(status, "sourceError");
        !err.empty() && status.contains("environments")) {
      out += " · <span class=\"error\">" + HtmlEscape(err) + "</span>";
    }
    out += " · <span id=\"live\">static</span></p>\n</header>\n<main id=\"environments\">\n";
    auto envs = EnvironmentsOf(status);
    if (envs.empty()) out += "<p class=\"none\">No environments yet.</p>\n";
    for (const auto& [name, e] : envs) out += SectionFor(name.empty() ? "default" : name, *e);
    out += "</main>\n";
  }
  out +=
      "<footer><p><a href=\"/api/v1/status\">/api/v1/status</a> · <a href=\"/metrics\">"
      "/metrics</a></p></footer>\n<script>";
  out += kScript;
  out += "</script>\n</body>\n</html>\n";
  return out;
}

json HistoryRows(const History& history, std::size_t limit) {
  json rows = json::array();
  for (auto it = history.entries.rbegin(); it != history.entries.rend() && rows.size() < limit;
       ++it) {
    rows.push_back({{"serial", it->serial},
                    {"revision", it->revision},
                    {"appliedAt", it->applied_at},
                    {"result", it->result},
                    {"summary", it->summary},
                    {"rollbackOf", it->rollback_of}});
  }
  return rows;
}

const std::string& StatusPageCsp() {
  static const std::string kCsp = "default-src 'none'; script-src " + CspHash(kScript) +
                                  "; style-src " + CspHash(kStyle) +
                                  "; connect-src 'self'; base-uri 'none'; form-action 'none'; "
                                  "frame-ancestors 'none'";
  return kCsp;
}

std::string SseFrame(std::string_view event, std::string_view data) {
  std::string out = "event: ";
  for (char c : event) {
    if (c != '\r' && c != '\n') out += c;
  }
  out += "\n";
  std::size_t at = 0;
  while (true) {
    std::size_t end = data.find_first_of("\r\n", at);
    out += "data: ";
    out += data.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
    out += "\n";
    if (end == std::string_view::npos) break;
    at = end + 1;
    if (data[end] == '\r' && at < data.size() && data[at] == '\n') ++at;
    if (at == data.size()) break;  // a trailing line end ends the last line
  }
  return out + "\n";
}

bool StatusTokenAccepted(std::string_view authorization, std::string_view target,
                         std::string_view token) {
  if (token.empty()) return false;
  bool ok = false;
  constexpr std::string_view kBearer = "bearer ";
  if (authorization.size() > kBearer.size()) {
    bool scheme = true;
    for (std::size_t i = 0; i < kBearer.size(); ++i) {
      scheme = scheme && std::tolower(static_cast<unsigned char>(authorization[i])) == kBearer[i];
    }
    std::string_view given = authorization.substr(kBearer.size());
    while (!given.empty() && given.front() == ' ') given.remove_prefix(1);
    while (!given.empty() && (given.back() == ' ' || given.back() == '\t')) given.remove_suffix(1);
    if (scheme && SameToken(given, token)) ok = true;
  }
  for (const Param& p : QueryParams(target)) {
    if (p.name == "token" && SameToken(PercentDecode(p.value), token)) ok = true;
  }
  return ok;
}

std::string RedactToken(std::string_view target) {
  std::string out(target);
  auto params = QueryParams(target);
  for (auto it = params.rbegin(); it != params.rend(); ++it) {
    if (it->name == "token") out.replace(it->value_at, it->value.size(), "REDACTED");
  }
  return out;
}

}  // namespace reconcile::controller
