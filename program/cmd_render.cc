#include "cmd_render.h"

#include <iostream>

#include <spdlog/spdlog.h>

namespace reconcile::cli {
namespace {

// A key written without quotes: letters, digits and "._/-", not starting
// with '-' and not a word YAML would read as another type.
bool BareKey(const std::string& k) {
  if (k.empty() || k[0] == '-' || k[0] == '.') return false;
  for (char c : k) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '/' || c == '-';
    if (!ok) return false;
  }
  static const char* kWords[] = {"null",  "Null",  "NULL",  "true", "True", "TRUE",
                                 "false", "False", "FALSE", "y",    "Y",    "n",
                                 "N",     "yes",   "no",    "on",   "off"};
  for (const char* w : kWords) {
    if (k == w) return false;
  }
  return !(k[0] >= '0' && k[0] <= '9');
}

std::string Key(const std::string& k) { return BareKey(k) ? k : nlohmann::json(k).dump(); }

bool Empty(const nlohmann::json& v) { return (v.is_object() || v.is_array()) && v.empty(); }

// Scalars and empty collections in flow form.
std::string Inline(const nlohmann::json& v) {
  if (v.is_object()) return "{}";
  if (v.is_array()) return "[]";
  return v.dump();  // strings double-quoted, numbers, true/false, null
}

void Emit(const nlohmann::json& v, int indent, std::string& out);

void EmitMap(const nlohmann::json& v, int indent, std::string& out, bool first_inline) {
  bool first = true;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!(first && first_inline)) out.append(static_cast<size_t>(indent), ' ');
    first = false;
    out += Key(it.key()) + ":";
    const nlohmann::json& value = it.value();
    if ((value.is_object() || value.is_array()) && !Empty(value)) {
      out += "\n";
      Emit(value, indent + 2, out);
    } else {
      out += " " + Inline(value) + "\n";
    }
  }
}

void Emit(const nlohmann::json& v, int indent, std::string& out) {
  if (v.is_object()) {
    EmitMap(v, indent, out, false);
    return;
  }
  for (const nlohmann::json& item : v) {
    out.append(static_cast<size_t>(indent), ' ');
    out += "- ";
    if (item.is_object() && !item.empty()) {
      EmitMap(item, indent + 2, out, true);
    } else if (item.is_array() && !item.empty()) {
      out += "\n";
      Emit(item, indent + 2, out);
    } else {
      out += Inline(item) + "\n";
    }
  }
}

}  // namespace

std::string RenderYaml(const std::vector<nlohmann::json>& documents) {
  std::string out;
  for (const nlohmann::json& d : documents) {
    out += "---\n";
    if (d.is_object() && !d.empty()) {
      Emit(d, 0, out);
    } else {
      out += Inline(d) + "\n";
    }
  }
  return out;
}

int CmdRender(const GlobalOptions& g, const ProviderRegistry& registry, bool json) {
  GlobalOptions options = g;
  options.keep_documents = true;
  Session session(options, &registry, StopToken());
  if (Status s = session.Load(); !s.ok()) {
    spdlog::error("{}", s.message());
    return 1;
  }
  const std::vector<nlohmann::json>& documents = session.reconciler().snapshot().loaded.documents;
  if (json) {
    std::cout << nlohmann::json(documents).dump(2) << "\n";
  } else {
    std::cout << RenderYaml(documents);
  }
  return 0;
}

}  // namespace reconcile::cli
