#include "reconcile/sops.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <regex>
#include <utility>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <nlohmann/json.hpp>

#include "age_file.h"
#include "pgp_keyring.h"
#include "yaml_tree.h"

namespace reconcile {

namespace {

constexpr std::size_t kMaxSopsFileBytes = 8 * 1024 * 1024;
constexpr std::string_view kDefaultUnencryptedSuffix = "_unencrypted";
// The file chooses the regular expressions (anyone who can commit does):
// bound what std::regex, which backtracks, is given.
constexpr std::size_t kMaxRegexBytes = 256;
constexpr std::size_t kMaxRegexKeyBytes = 1024;
// sops.go MACOnlyEncryptedInitialization: SHA-256("sops").
constexpr std::uint8_t kMacOnlyEncryptedInit[32] = {
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69};

// A format-neutral, ordered tree of the file.
struct Node {
  enum class Kind { kMap, kList, kString, kInt, kFloat, kBool, kNull };
  Kind kind = Kind::kNull;
  std::string text;  // scalars: the text as written (string: its value)
  std::vector<std::pair<std::string, Node>> entries;
  std::vector<Node> items;
  int line = 0;

  const Node* Find(std::string_view key) const {
    for (const auto& [k, v] : entries) {
      if (k == key) return &v;
    }
    return nullptr;
  }
};

const char* KindName(Node::Kind k) {
  switch (k) {
    case Node::Kind::kMap:
      return "map";
    case Node::Kind::kList:
      return "list";
    case Node::Kind::kString:
      return "string";
    case Node::Kind::kInt:
      return "integer";
    case Node::Kind::kFloat:
      return "number";
    case Node::Kind::kBool:
      return "boolean";
    case Node::Kind::kNull:
      return "null";
  }
  return "?";
}

// --- YAML ---

bool IsYamlNull(std::string_view s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}

std::optional<bool> YamlBool(std::string_view s) {
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  return std::nullopt;
}

bool IsYamlInt(std::string_view s) {
  static const std::regex re(R"([-+]?[0-9]+|0x[0-9a-fA-F]+|0o[0-7]+|0b[01]+)");
  return std::regex_match(s.begin(), s.end(), re);
}

bool IsYamlFloat(std::string_view s) {
  static const std::regex re(
      R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN))");
  return std::regex_match(s.begin(), s.end(), re);
}

Result<Node> FromYaml(const YamlNode& in, const std::string& file, int depth) {
  const YamlNode& y = in.Resolved();
  if (depth > 64) return Status::Invalid(file + ":" + std::to_string(y.line) + ": nested too deep");
  Node n;
  n.line = y.line;
  switch (y.kind) {
    case YamlNode::Kind::kNull:
    case YamlNode::Kind::kAlias:
      n.kind = Node::Kind::kNull;
      return n;
    case YamlNode::Kind::kScalar: {
      n.text = y.value;
      const std::string& tag = y.tag;
      if (tag == "!" || tag == "tag:yaml.org,2002:str" || tag == "!!str") {
        n.kind = Node::Kind::kString;
      } else if (tag == "?") {
        if (IsYamlNull(y.value)) {
          n.kind = Node::Kind::kNull;
        } else if (YamlBool(y.value)) {
          n.kind = Node::Kind::kBool;
        } else if (IsYamlInt(y.value)) {
          n.kind = Node::Kind::kInt;
        } else if (IsYamlFloat(y.value)) {
          n.kind = Node::Kind::kFloat;
        } else {
          n.kind = Node::Kind::kString;
        }
      } else if (tag == "tag:yaml.org,2002:int") {
        n.kind = Node::Kind::kInt;
      } else if (tag == "tag:yaml.org,2002:float") {
        n.kind = Node::Kind::kFloat;
      } else if (tag == "tag:yaml.org,2002:bool") {
        n.kind = Node::Kind::kBool;
      } else if (tag == "tag:yaml.org,2002:null") {
        n.kind = Node::Kind::kNull;
      } else {
        n.kind = Node::Kind::kString;
      }
      return n;
    }
    case YamlNode::Kind::kSequence:
      n.kind = Node::Kind::kList;
      for (const auto& item : y.items) {
        auto c = FromYaml(*item, file, depth + 1);
        if (!c.ok()) return c.status();
        n.items.push_back(std::move(c).value());
      }
      return n;
    case YamlNode::Kind::kMap:
      n.kind = Node::Kind::kMap;
      for (const auto& [k, v] : y.entries) {
        const YamlNode& key = k->Resolved();
        if (key.kind != YamlNode::Kind::kScalar) {
          return Status::Invalid(file + ":" + std::to_string(key.line) +
                                 ": a map key is not a string (SOPS keys are strings)");
        }
        auto c = FromYaml(*v, file, depth + 1);
        if (!c.ok()) return c.status();
        n.entries.emplace_back(key.value, std::move(c).value());
      }
      return n;
  }
  return n;
}

Result<Node> ParseYamlFile(std::string_view bytes, const std::string& file) {
  Diagnostics diags;
  auto docs = ParseYaml(file, std::string(bytes), 64, 10000, diags);
  if (diags.HasErrors()) {
    // The diagnostic names file, line and what is wrong; yaml-cpp messages do
    // not quote scalar values.
    for (const auto& d : diags.items()) {
      if (d.severity == Severity::kError) return Status::Invalid(d.ToString());
    }
  }
  if (docs.size() != 1) {
    return Status::Invalid(file + ": " +
                           (docs.empty() ? std::string("the file is empty")
                                         : "has " + std::to_string(docs.size()) +
                                               " YAML documents (multi-document SOPS files "
                                               "are not supported yet)"));
  }
  return FromYaml(*docs[0].root, file, 0);
}

// --- JSON ---

// `too_deep` is set (and the rest left out) past 64 levels of nesting.
Node FromJson(const nlohmann::ordered_json& j, int depth, bool& too_deep) {
  Node n;
  if ((j.is_object() || j.is_array()) && depth > 64) {
    too_deep = true;
    return n;
  }
  if (j.is_object()) {
    n.kind = Node::Kind::kMap;
    for (auto it = j.begin(); it != j.end(); ++it) {
      n.entries.emplace_back(it.key(), FromJson(*it, depth + 1, too_deep));
    }
  } else if (j.is_array()) {
    n.kind = Node::Kind::kList;
    for (const auto& item : j) n.items.push_back(FromJson(item, depth + 1, too_deep));
  } else if (j.is_string()) {
    n.kind = Node::Kind::kString;
    n.text = j.get<std::string>();
  } else if (j.is_boolean()) {
    n.kind = Node::Kind::kBool;
    n.text = j.get<bool>() ? "true" : "false";
  } else if (j.is_number_integer()) {
    n.kind = Node::Kind::kInt;
    n.text = j.dump();
  } else if (j.is_number_float()) {
    n.kind = Node::Kind::kFloat;
    n.text = j.dump();
  }
  return n;
}

Result<Node> ParseJsonFile(std::string_view bytes, const std::string& file) {
  auto j = nlohmann::ordered_json::parse(bytes.begin(), bytes.end(), nullptr, false);
  if (j.is_discarded()) return Status::Invalid(file + ": not valid JSON");
  bool too_deep = false;
  Node n = FromJson(j, 0, too_deep);
  if (too_deep) return Status::Invalid(file + ": nested deeper than 64 levels");
  return n;
}

// --- dotenv ---

std::string DecodeNewLines(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == 'n') {
      out += '\n';
      ++i;
    } else {
      out += s[i];
    }
  }
  return out;
}

// sops's flattened metadata keys: "pgp__list_0__map_enc".
Status Unflatten(Node& root, std::string_view key, std::string value, int line) {
  struct Token {
    bool list;
    std::string key;
    std::size_t index;
  };
  std::vector<Token> tokens;
  constexpr std::string_view kMap = "__map_", kList = "__list_";
  std::size_t start = 0;
  bool state_list = false;
  std::size_t i = 0;
  auto finish = [&](std::size_t end, std::size_t skip) -> bool {
    std::string_view t = key.substr(start + skip, end - start - skip);
    if (state_list) {
      std::size_t idx = 0;
      auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), idx);
      if (ec != std::errc() || p != t.data() + t.size() || idx > 1000) return false;
      tokens.push_back({true, "", idx});
    } else {
      tokens.push_back({false, std::string(t), 0});
    }
    return true;
  };
  std::size_t skip = 0;
  while (i < key.size()) {
    std::string_view rest = key.substr(i);
    if (rest.starts_with(kMap) || rest.starts_with(kList)) {
      if (!finish(i, skip)) return Status::Invalid("bad list index in sops metadata key");
      state_list = rest.starts_with(kList);
      skip = state_list ? kList.size() : kMap.size();
      start = i;
      i += skip;
    } else {
      ++i;
    }
  }
  if (!finish(key.size(), skip)) return Status::Invalid("bad list index in sops metadata key");
  Node* cur = &root;
  for (std::size_t t = 0; t < tokens.size(); ++t) {
    bool last = t + 1 == tokens.size();
    Node::Kind want =
        last ? Node::Kind::kString : (tokens[t + 1].list ? Node::Kind::kList : Node::Kind::kMap);
    Node* next = nullptr;
    if (tokens[t].list) {
      if (cur->kind != Node::Kind::kList) return Status::Invalid("inconsistent sops metadata keys");
      if (cur->items.size() <= tokens[t].index) cur->items.resize(tokens[t].index + 1);
      next = &cur->items[tokens[t].index];
    } else {
      if (cur->kind != Node::Kind::kMap) return Status::Invalid("inconsistent sops metadata keys");
      for (auto& [k, v] : cur->entries) {
        if (k == tokens[t].key) next = &v;
      }
      if (next == nullptr) {
        cur->entries.emplace_back(tokens[t].key, Node{});
        next = &cur->entries.back().second;
      }
    }
    if (next->kind == Node::Kind::kNull) next->kind = want;
    if (next->kind != want) return Status::Invalid("inconsistent sops metadata keys");
    next->line = line;
    if (last) next->text = std::move(value);
    cur = next;
  }
  return Status::Ok();
}

// Returns (data, metadata).
Result<std::pair<Node, Node>> ParseDotenvFile(std::string_view bytes, const std::string& file) {
  Node data, meta;
  data.kind = Node::Kind::kMap;
  meta.kind = Node::Kind::kMap;
  bool any_meta = false;
  int line_no = 0;
  std::size_t pos = 0;
  while (pos <= bytes.size()) {
    std::size_t nl = bytes.find('\n', pos);
    if (nl == std::string_view::npos) nl = bytes.size();
    std::string_view line = bytes.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (line.empty() || line.front() == '#') continue;
    std::size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      return Status::Invalid(file + ":" + std::to_string(line_no) + ": not a dotenv line (no '=')");
    }
    std::string key(line.substr(0, eq));
    std::string value = DecodeNewLines(line.substr(eq + 1));
    if (key.starts_with("sops_")) {
      any_meta = true;
      Status st = Unflatten(meta, std::string_view(key).substr(5), std::move(value), line_no);
      if (!st.ok()) {
        return Status::Invalid(file + ":" + std::to_string(line_no) + ": " + key + ": " +
                               st.message());
      }
      continue;
    }
    Node v;
    v.kind = Node::Kind::kString;
    v.text = std::move(value);
    v.line = line_no;
    data.entries.emplace_back(std::move(key), std::move(v));
  }
  if (!any_meta) meta.kind = Node::Kind::kNull;
  return std::make_pair(std::move(data), std::move(meta));
}

// --- base64, AES-GCM ---

std::optional<std::string> DecodeBase64(std::string_view in) {
  if (in.size() % 4 != 0) return std::nullopt;
  std::size_t pad = 0;
  while (pad < 2 && pad < in.size() && in[in.size() - 1 - pad] == '=') ++pad;
  in.remove_suffix(pad);
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '+')
      v = 62;
    else if (c == '/')
      v = 63;
    else
      return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

struct EncValue {
  std::string data, iv, tag, type;
};

std::optional<EncValue> ParseEnc(std::string_view s) {
  constexpr std::string_view kPrefix = "ENC[AES256_GCM,data:";
  // Like sops's unanchored regular expression, what follows the last ']'
  // (a CR of a CRLF dotenv file) is ignored.
  std::size_t close = s.rfind(']');
  if (!s.starts_with(kPrefix) || close == std::string_view::npos || close < kPrefix.size()) {
    return std::nullopt;
  }
  s = s.substr(kPrefix.size(), close - kPrefix.size());
  std::size_t iv = s.find(",iv:");
  std::size_t tag = s.find(",tag:");
  std::size_t type = s.find(",type:");
  if (iv == std::string_view::npos || tag == std::string_view::npos ||
      type == std::string_view::npos || !(iv < tag && tag < type)) {
    return std::nullopt;
  }
  auto data = DecodeBase64(s.substr(0, iv));
  auto ivb = DecodeBase64(s.substr(iv + 4, tag - iv - 4));
  auto tagb = DecodeBase64(s.substr(tag + 5, type - tag - 5));
  if (!data || !ivb || !tagb || ivb->empty() || tagb->size() != 16) return std::nullopt;
  return EncValue{std::move(*data), std::move(*ivb), std::move(*tagb),
                  std::string(s.substr(type + 6))};
}

struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* p) const { EVP_CIPHER_CTX_free(p); }
};

// AES-256-GCM open with any IV length (sops uses 32 bytes).
std::optional<std::string> AesGcmOpen(const std::string& key, const EncValue& v,
                                      std::string_view aad) {
  std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree> ctx(EVP_CIPHER_CTX_new());
  if (!ctx || key.size() != 32) return std::nullopt;
  auto u8 = [](const std::string& s) { return reinterpret_cast<const unsigned char*>(s.data()); };
  if (EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(v.iv.size()),
                          nullptr) != 1 ||
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, u8(key), u8(v.iv)) != 1) {
    return std::nullopt;
  }
  int outl = 0;
  if (!aad.empty() && EVP_DecryptUpdate(ctx.get(), nullptr, &outl,
                                        reinterpret_cast<const unsigned char*>(aad.data()),
                                        static_cast<int>(aad.size())) != 1) {
    return std::nullopt;
  }
  std::string out(v.data.size() + 16, '\0');
  int len = 0;
  if (!v.data.empty() &&
      EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len, u8(v.data),
                        static_cast<int>(v.data.size())) != 1) {
    return std::nullopt;
  }
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, 16, const_cast<char*>(v.tag.data())) !=
      1) {
    return std::nullopt;
  }
  int fin = 0;
  if (EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.data()) + len, &fin) !=
      1) {
    OPENSSL_cleanse(out.data(), out.size());
    return std::nullopt;
  }
  out.resize(static_cast<std::size_t>(len + fin));
  return out;
}

// --- sops's ToBytes of typed values ---

std::optional<std::string> NormalizeInt(std::string_view s) {
  std::string_view digits = s;
  bool neg = false;
  if (!digits.empty() && (digits.front() == '+' || digits.front() == '-')) {
    neg = digits.front() == '-';
    digits.remove_prefix(1);
  }
  int base = 10;
  if (digits.starts_with("0x")) base = 16;
  if (digits.starts_with("0o")) base = 8;
  if (digits.starts_with("0b")) base = 2;
  if (base != 10) digits.remove_prefix(2);
  std::uint64_t mag = 0;
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), mag, base);
  if (digits.empty() || ec != std::errc() || p != digits.data() + digits.size()) {
    return std::nullopt;
  }
  if ((!neg && mag > static_cast<std::uint64_t>(INT64_MAX)) ||
      (neg && mag > static_cast<std::uint64_t>(INT64_MAX) + 1)) {
    return std::nullopt;
  }
  if (mag == 0) return std::string("0");
  return (neg ? "-" : "") + std::to_string(mag);
}

// Go's strconv.FormatFloat(f, 'f', -1, 64): the shortest decimal that
// round-trips, without an exponent.
std::optional<std::string> NormalizeFloat(std::string_view s) {
  std::string t(s);
  if (t == ".inf" || t == ".Inf" || t == ".INF" || t == "+.inf" || t == "+.Inf" || t == "+.INF" ||
      t == "inf" || t == "+inf" || t == "Inf" || t == "+Inf") {
    return std::string("+Inf");
  }
  if (t == "-.inf" || t == "-.Inf" || t == "-.INF" || t == "-inf" || t == "-Inf") {
    return std::string("-Inf");
  }
  if (t == ".nan" || t == ".NaN" || t == ".NAN" || t == "NaN" || t == "nan") {
    return std::string("NaN");
  }
  double d = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(),
                                 d);  // no leading '+'
  if (ec != std::errc() || p != t.data() + t.size()) {
    if (!t.empty() && t.front() == '+') {
      auto [p2, ec2] = std::from_chars(t.data() + 1, t.data() + t.size(), d);
      if (ec2 != std::errc() || p2 != t.data() + t.size()) return std::nullopt;
    } else {
      return std::nullopt;
    }
  }
  char buf[400];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::fixed);
  if (res.ec != std::errc()) return std::nullopt;
  return std::string(buf, res.ptr);
}

std::optional<std::string> NormalizeBool(std::string_view s) {
  if (s == "1" || s == "t" || s == "T" || s == "TRUE" || s == "true" || s == "True") {
    return std::string("True");
  }
  if (s == "0" || s == "f" || s == "F" || s == "FALSE" || s == "false" || s == "False") {
    return std::string("False");
  }
  return std::nullopt;
}

// --- metadata ---

struct AgeStanza {
  std::string recipient, enc;
};
struct PgpStanza {
  std::string fp, enc;
};
struct KeyGroup {
  std::vector<AgeStanza> age;
  std::vector<PgpStanza> pgp;
  std::vector<std::string> unsupported;  // "kms", "gcp_kms", ... with entries
};

struct Metadata {
  std::string lastmodified;
  std::string mac;
  std::string unencrypted_suffix, encrypted_suffix, unencrypted_regex, encrypted_regex;
  bool mac_only_encrypted = false;
  std::vector<KeyGroup> groups;
  int shamir_threshold = 0;
  int line = 0;
};

std::string Str(const Node& m, std::string_view key) {
  const Node* n = m.Find(key);
  if (n == nullptr || n->kind == Node::Kind::kMap || n->kind == Node::Kind::kList) return "";
  return n->kind == Node::Kind::kNull ? "" : n->text;
}

KeyGroup DecodeGroup(const Node& g) {
  KeyGroup out;
  if (const Node* age = g.Find("age"); age && age->kind == Node::Kind::kList) {
    for (const Node& a : age->items) {
      if (a.kind == Node::Kind::kMap) out.age.push_back({Str(a, "recipient"), Str(a, "enc")});
    }
  }
  if (const Node* pgp = g.Find("pgp"); pgp && pgp->kind == Node::Kind::kList) {
    for (const Node& p : pgp->items) {
      if (p.kind == Node::Kind::kMap) out.pgp.push_back({Str(p, "fp"), Str(p, "enc")});
    }
  }
  for (const char* kind : {"kms", "gcp_kms", "azure_kv", "hc_vault"}) {
    const Node* n = g.Find(kind);
    if (n && n->kind == Node::Kind::kList && !n->items.empty()) out.unsupported.push_back(kind);
  }
  return out;
}

Result<Metadata> DecodeMetadata(const Node& m, const std::string& file) {
  Metadata md;
  md.line = m.line;
  std::string where = file + (m.line > 0 ? ":" + std::to_string(m.line) : "") + ": sops";
  if (m.kind != Node::Kind::kMap) return Status::Invalid(where + ": the metadata is not a map");
  for (const char* key : {"unencrypted_comment_regex", "encrypted_comment_regex"}) {
    if (!Str(m, key).empty()) {
      return Status::Invalid(where + "." + key +
                             ": comment-based encryption rules are not supported yet");
    }
  }
  md.lastmodified = Str(m, "lastmodified");
  md.mac = Str(m, "mac");
  md.unencrypted_suffix = Str(m, "unencrypted_suffix");
  md.encrypted_suffix = Str(m, "encrypted_suffix");
  md.unencrypted_regex = Str(m, "unencrypted_regex");
  md.encrypted_regex = Str(m, "encrypted_regex");
  if (const Node* n = m.Find("mac_only_encrypted")) {
    md.mac_only_encrypted = n->text == "true" || n->text == "True" || n->text == "TRUE";
  }
  int rules = !md.unencrypted_suffix.empty() + !md.encrypted_suffix.empty() +
              !md.unencrypted_regex.empty() + !md.encrypted_regex.empty();
  if (rules > 1) {
    return Status::Invalid(where +
                           ": more than one of encrypted_suffix, unencrypted_suffix, "
                           "encrypted_regex, unencrypted_regex");
  }
  if (rules == 0) md.unencrypted_suffix = std::string(kDefaultUnencryptedSuffix);
  if (md.encrypted_regex.size() > kMaxRegexBytes || md.unencrypted_regex.size() > kMaxRegexBytes) {
    return Status::Invalid(where + ": encrypted_regex / unencrypted_regex longer than " +
                           std::to_string(kMaxRegexBytes) + " bytes");
  }
  if (md.lastmodified.empty()) return Status::Invalid(where + ".lastmodified: missing");
  KeyGroup top = DecodeGroup(m);
  if (!top.age.empty() || !top.pgp.empty() || !top.unsupported.empty()) {
    md.groups.push_back(std::move(top));
  } else if (const Node* groups = m.Find("key_groups");
             groups && groups->kind == Node::Kind::kList) {
    for (const Node& g : groups->items) md.groups.push_back(DecodeGroup(g));
  }
  if (md.groups.empty()) return Status::Invalid(where + ": no recipients (no keys found in file)");
  if (md.groups.size() > 1) {
    return Status::Invalid(where + ".key_groups: " + std::to_string(md.groups.size()) +
                           " key groups (Shamir secret sharing) are not supported yet");
  }
  return md;
}

std::string Join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i) out += sep;
    out += parts[i];
  }
  return out;
}

// The data key from the first recipient the operator's keys open; sops's
// order: age, then OpenPGP.
Result<std::string> DataKey(const KeyGroup& g, const SopsKeys& keys, const std::string& file,
                            std::string& used) {
  std::vector<std::string> reasons;
  std::vector<AgeIdentity> identities;
  for (std::size_t i = 0; i < keys.age_identity_files.size(); ++i) {
    std::string src = i < keys.age_sources.size() ? keys.age_sources[i]
                                                  : "age identities #" + std::to_string(i + 1);
    auto ids = ParseAgeIdentities(keys.age_identity_files[i], src);
    if (!ids.ok()) return ids.status();
    for (auto& id : *ids) identities.push_back(std::move(id));
  }
  if (!g.age.empty() && !identities.empty()) {
    for (const AgeStanza& a : g.age) {
      auto key = DecryptAge(a.enc, identities);
      if (key.ok()) {
        if (key->size() != 32) {
          return Status::Invalid(file + ": sops.age (" + a.recipient +
                                 "): the data key is not 32 bytes");
        }
        used = "age";
        return key;
      }
      if (key.status().code() != Code::kNotFound) {
        return Status::Invalid(file + ": sops.age (" + a.recipient +
                               "): " + key.status().message());
      }
      reasons.push_back("age " + a.recipient + ": no matching identity");
    }
  }
  if (!g.pgp.empty() && !keys.pgp_secret_keys.empty()) {
    auto ring = PgpKeyring::Create(keys.pgp_secret_keys, keys.pgp_sources);
    if (!ring.ok()) return ring.status();
    for (const PgpStanza& p : g.pgp) {
      auto key = (*ring)->Decrypt(p.enc);
      if (key.ok()) {
        if (key->size() != 32) {
          OPENSSL_cleanse(key->data(), key->size());
          return Status::Invalid(file + ": sops.pgp (" + p.fp + "): the data key is not 32 bytes");
        }
        used = "pgp";
        return key;
      }
      if (key.status().code() != Code::kNotFound) {
        return Status::Invalid(file + ": sops.pgp (" + p.fp + "): " + key.status().message());
      }
      reasons.push_back("pgp " + p.fp + ": no matching secret key");
    }
  }
  std::vector<std::string> have;
  for (const auto& a : g.age) have.push_back("age " + a.recipient);
  for (const auto& p : g.pgp) have.push_back("pgp " + p.fp);
  for (const auto& u : g.unsupported) have.push_back(u + " (not supported yet)");
  if (reasons.empty()) {
    std::string configured;
    if (identities.empty() && keys.pgp_secret_keys.empty()) {
      configured = "no age identity and no OpenPGP secret key is configured";
    } else if (identities.empty()) {
      configured = "only OpenPGP keys are configured";
    } else {
      configured = "only age identities are configured";
    }
    return Status::NotFound(file + ": cannot decrypt the data key: " + configured +
                            "; the file's recipients: " + Join(have, ", "));
  }
  return Status::NotFound(file + ": cannot decrypt the data key with the configured keys (" +
                          Join(reasons, "; ") + "); the file's recipients: " + Join(have, ", "));
}

}  // namespace

// Walks the data tree, decrypts and hashes its values (sops.go Tree.Decrypt).
class SopsDecoder {
 public:
  SopsDecoder(const Metadata& md, const std::string& key, const std::string& file)
      : md_(md), key_(key), file_(file), ctx_(EVP_MD_CTX_new()) {
    EVP_DigestInit_ex(ctx_, EVP_sha512(), nullptr);
    if (md_.mac_only_encrypted) {
      EVP_DigestUpdate(ctx_, kMacOnlyEncryptedInit, sizeof kMacOnlyEncryptedInit);
    }
    try {
      if (!md_.unencrypted_regex.empty()) unencrypted_re_.emplace(md_.unencrypted_regex);
      if (!md_.encrypted_regex.empty()) encrypted_re_.emplace(md_.encrypted_regex);
    } catch (const std::regex_error&) {
      bad_regex_ = true;
    }
  }
  ~SopsDecoder() { EVP_MD_CTX_free(ctx_); }
  SopsDecoder(const SopsDecoder&) = delete;
  SopsDecoder& operator=(const SopsDecoder&) = delete;

  static void SetDecryptedWith(SopsDocument& doc, std::string used) {
    doc.decrypted_with_ = std::move(used);
  }

  Status Walk(const Node& root, SopsDocument& doc) {
    if (bad_regex_) {
      return Status::Invalid(file_ +
                             ": sops: encrypted_regex / unencrypted_regex is not a "
                             "regular expression this engine reads");
    }
    std::vector<std::string> path;
    return WalkMap(root, path, "", doc);
  }

  std::string Mac() {
    unsigned char digest[64];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, digest, &len);
    static const char* kHex = "0123456789ABCDEF";
    std::string out;
    for (unsigned int i = 0; i < len; ++i) {
      out += kHex[digest[i] >> 4];
      out += kHex[digest[i] & 15];
    }
    return out;
  }

 private:
  std::string Where(int line, const std::string& display) const {
    return file_ + (line > 0 ? ":" + std::to_string(line) : "") + ": " + display;
  }

  // nullopt when a regular expression gives up on a key (std::regex_error).
  std::optional<bool> ShouldBeEncrypted(const std::vector<std::string>& path) const try {
    bool encrypted = true;
    if (!md_.unencrypted_suffix.empty()) {
      for (const auto& p : path) {
        if (p.ends_with(md_.unencrypted_suffix)) {
          encrypted = false;
          break;
        }
      }
    }
    if (!md_.encrypted_suffix.empty()) {
      encrypted = false;
      for (const auto& p : path) {
        if (p.ends_with(md_.encrypted_suffix)) {
          encrypted = true;
          break;
        }
      }
    }
    if (unencrypted_re_) {
      for (const auto& p : path) {
        if (std::regex_search(p, *unencrypted_re_)) {
          encrypted = false;
          break;
        }
      }
    }
    if (encrypted_re_) {
      encrypted = false;
      for (const auto& p : path) {
        if (std::regex_search(p, *encrypted_re_)) {
          encrypted = true;
          break;
        }
      }
    }
    return encrypted;
  } catch (const std::regex_error&) {
    return std::nullopt;
  }

  Status WalkMap(const Node& n, std::vector<std::string>& path, const std::string& display,
                 SopsDocument& doc) {
    for (const auto& [k, v] : n.entries) {
      if ((unencrypted_re_ || encrypted_re_) && k.size() > kMaxRegexKeyBytes) {
        return Status::Invalid(Where(v.line, display.empty() ? "(top level)" : display) +
                               ": a key longer than " + std::to_string(kMaxRegexKeyBytes) +
                               " bytes in a file with encrypted_regex / unencrypted_regex");
      }
      path.push_back(k);
      Status st = WalkValue(v, path, display.empty() ? k : display + "." + k, doc);
      path.pop_back();
      if (!st.ok()) return st;
    }
    return Status::Ok();
  }

  Status WalkValue(const Node& n, std::vector<std::string>& path, const std::string& display,
                   SopsDocument& doc) {
    switch (n.kind) {
      case Node::Kind::kMap:
        doc.containers_.push_back(display);
        return WalkMap(n, path, display, doc);
      case Node::Kind::kList:
        doc.containers_.push_back(display);
        for (std::size_t i = 0; i < n.items.size(); ++i) {
          Status st = WalkValue(n.items[i], path, display + "." + std::to_string(i), doc);
          if (!st.ok()) return st;
        }
        return Status::Ok();
      case Node::Kind::kNull:
        return Status::Ok();
      default:
        return Leaf(n, path, display, doc);
    }
  }

  void Hash(std::string_view bytes) { EVP_DigestUpdate(ctx_, bytes.data(), bytes.size()); }

  Status Leaf(const Node& n, const std::vector<std::string>& path, const std::string& display,
              SopsDocument& doc) {
    SopsValue v;
    v.sops_path = path;
    v.path = display;
    v.line = n.line;
    std::optional<bool> should = ShouldBeEncrypted(path);
    if (!should) {
      return Status::Invalid(Where(n.line, display) +
                             ": the file's encrypted_regex / unencrypted_regex cannot be "
                             "evaluated on this key");
    }
    bool encrypted = *should;
    v.encrypted = encrypted;
    std::string mac_bytes;
    bool hashed = true;
    if (encrypted) {
      if (n.kind != Node::Kind::kString) {
        return Status::Invalid(Where(n.line, display) + ": expected an encrypted value " +
                               "(ENC[AES256_GCM,...]), found a plain " + KindName(n.kind) +
                               " (was the file edited after it was encrypted?)");
      }
      if (!n.text.empty()) {
        auto enc = ParseEnc(n.text);
        if (!enc) {
          return Status::Invalid(Where(n.line, display) +
                                 ": not a SOPS-encrypted value (expected "
                                 "ENC[AES256_GCM,data:...,iv:...,tag:...,type:...])");
        }
        std::string aad = Join(path, ":") + ":";
        auto plain = AesGcmOpen(key_, *enc, aad);
        if (!plain) {
          return Status::Invalid(Where(n.line, display) +
                                 ": the value does not decrypt with the file's data key (it was "
                                 "changed or moved after encryption)");
        }
        v.value = std::move(*plain);
        std::optional<std::string> norm;
        const std::string& t = enc->type;
        if (t == "str" || t == "bytes") {
          norm = v.value;
        } else if (t == "int" || t == "int64") {
          norm = NormalizeInt(v.value);
        } else if (t == "float") {
          norm = NormalizeFloat(v.value);
        } else if (t == "bool") {
          norm = NormalizeBool(v.value);
        } else if (t == "comment") {
          hashed = false;
          norm = std::string();
        } else {
          OPENSSL_cleanse(v.value.data(), v.value.size());
          return Status::Invalid(Where(n.line, display) + ": unknown SOPS value type");
        }
        if (!norm) {
          OPENSSL_cleanse(v.value.data(), v.value.size());
          return Status::Invalid(Where(n.line, display) + ": the decrypted value is not a valid " +
                                 t);
        }
        mac_bytes = std::move(*norm);
      }
    } else {
      v.value = n.text;
      std::optional<std::string> norm;
      switch (n.kind) {
        case Node::Kind::kInt:
          norm = NormalizeInt(n.text);
          break;
        case Node::Kind::kFloat:
          norm = NormalizeFloat(n.text);
          break;
        case Node::Kind::kBool:
          norm = NormalizeBool(n.text);
          break;
        default:
          norm = n.text;
      }
      if (!norm) {
        return Status::Invalid(Where(n.line, display) + ": cannot read the cleartext " +
                               KindName(n.kind));
      }
      mac_bytes = std::move(*norm);
    }
    if (hashed && (!md_.mac_only_encrypted || encrypted)) Hash(mac_bytes);
    OPENSSL_cleanse(mac_bytes.data(), mac_bytes.size());
    if (hashed) doc.values_.push_back(std::move(v));
    return Status::Ok();
  }

  const Metadata& md_;
  const std::string& key_;
  const std::string& file_;
  EVP_MD_CTX* ctx_;
  std::optional<std::regex> unencrypted_re_, encrypted_re_;
  bool bad_regex_ = false;
};

Result<SopsFormat> SopsFormatFromPath(std::string_view path) {
  if (path.ends_with(".yaml") || path.ends_with(".yml")) return SopsFormat::kYaml;
  if (path.ends_with(".json")) return SopsFormat::kJson;
  if (path.ends_with(".env")) return SopsFormat::kDotenv;
  return Status::Invalid(std::string(path) +
                         ": cannot tell the SOPS format from the name (.yaml, .yml, .json, "
                         ".env); give the format");
}

Result<SopsKeys> ReadSopsKeyFiles(const std::vector<std::string>& age_key_files,
                                  const std::vector<std::string>& pgp_key_files) {
  constexpr std::uintmax_t kMaxKeyFileBytes = 1024 * 1024;
  auto read = [&](const std::string& path, std::string& out) -> Status {
    std::error_code ec;
    auto size = std::filesystem::file_size(path, ec);
    if (ec) return Status::Invalid(path + ": cannot read the key file: " + ec.message());
    if (size > kMaxKeyFileBytes) {
      return Status::Invalid(path + ": the key file is larger than 1 MiB");
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status::Invalid(path + ": cannot open the key file");
    out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    return Status::Ok();
  };
  SopsKeys keys;
  for (const auto& path : age_key_files) {
    std::string text;
    Status st = read(path, text);
    if (!st.ok()) return st;
    auto ids = ParseAgeIdentities(text, path);
    if (!ids.ok()) {
      OPENSSL_cleanse(text.data(), text.size());
      return ids.status();
    }
    keys.age_identity_files.push_back(std::move(text));
    keys.age_sources.push_back(path);
  }
  for (const auto& path : pgp_key_files) {
    std::string text;
    Status st = read(path, text);
    if (!st.ok()) return st;
    keys.pgp_secret_keys.push_back(std::move(text));
    keys.pgp_sources.push_back(path);
  }
  return keys;
}

Result<SopsFormat> ParseSopsFormat(std::string_view name) {
  if (name == "yaml") return SopsFormat::kYaml;
  if (name == "json") return SopsFormat::kJson;
  if (name == "dotenv" || name == "env") return SopsFormat::kDotenv;
  return Status::Invalid("unknown SOPS format \"" + std::string(name) +
                         "\" (yaml, json or dotenv)");
}

SopsDocument::~SopsDocument() {
  for (auto& v : values_) OPENSSL_cleanse(v.value.data(), v.value.size());
}

Result<std::string> SopsDocument::Lookup(std::string_view path) const {
  const SopsValue* found = nullptr;
  int matches = 0;
  for (const auto& v : values_) {
    if (v.path == path) {
      found = &v;
      ++matches;
    }
  }
  if (matches == 0) {
    // dotenv "KEY = value" has the key "KEY " for sops; find it by its trimmed name.
    auto trim = [](std::string_view s) {
      while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
      while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
      return s;
    };
    for (const auto& v : values_) {
      if (v.sops_path.size() == 1 && trim(v.path) == trim(path)) {
        found = &v;
        ++matches;
      }
    }
  }
  if (matches > 1) {
    return Status::Invalid("key path \"" + std::string(path) + "\" is ambiguous (" +
                           std::to_string(matches) + " values)");
  }
  if (found != nullptr) return found->value;
  for (const auto& c : containers_) {
    if (c == path) {
      return Status::Invalid("key path \"" + std::string(path) +
                             "\" names a map or list, not a value");
    }
  }
  return Status::NotFound("no value at key path \"" + std::string(path) + "\"");
}

Result<SopsDocument> DecryptSops(std::string_view bytes, SopsFormat format, const SopsKeys& keys,
                                 std::string_view file_name, const SopsOptions& options) {
  std::string file(file_name);
  if (bytes.size() > kMaxSopsFileBytes) {
    return Status::Invalid(file + ": larger than " + std::to_string(kMaxSopsFileBytes) + " bytes");
  }
  Node data, meta;
  switch (format) {
    case SopsFormat::kYaml:
    case SopsFormat::kJson: {
      auto root =
          format == SopsFormat::kYaml ? ParseYamlFile(bytes, file) : ParseJsonFile(bytes, file);
      if (!root.ok()) return root.status();
      if (root->kind != Node::Kind::kMap) {
        return Status::Invalid(file + ": the document is not a map (SOPS files are maps)");
      }
      data.kind = Node::Kind::kMap;
      meta.kind = Node::Kind::kNull;
      for (auto& [k, v] : root->entries) {
        if (k == "sops") {
          meta = std::move(v);
        } else {
          data.entries.emplace_back(std::move(k), std::move(v));
        }
      }
      break;
    }
    case SopsFormat::kDotenv: {
      auto parsed = ParseDotenvFile(bytes, file);
      if (!parsed.ok()) return parsed.status();
      data = std::move(parsed->first);
      meta = std::move(parsed->second);
      break;
    }
  }
  if (meta.kind == Node::Kind::kNull) {
    return Status::Invalid(file + ": not a SOPS-encrypted file (no sops metadata)");
  }
  auto md = DecodeMetadata(meta, file);
  if (!md.ok()) return md.status();

  SopsDocument doc;
  std::string used;
  auto key = DataKey(md->groups[0], keys, file, used);
  if (!key.ok()) return key.status();
  struct WipeKey {
    std::string& k;
    ~WipeKey() { OPENSSL_cleanse(k.data(), k.size()); }
  } wipe{key.value()};

  SopsDecoder decoder(*md, key.value(), file);
  Status st = decoder.Walk(data, doc);
  SopsDecoder::SetDecryptedWith(doc, used);
  if (!st.ok()) return st;
  std::string computed = decoder.Mac();
  if (options.allow_missing_mac) return doc;
  if (md->mac.empty()) {
    return Status::Invalid(file +
                           ": sops.mac: the file has no MAC, so its integrity cannot be "
                           "checked (refused; see the allow-missing-MAC option)");
  }
  auto enc = ParseEnc(md->mac);
  if (!enc) return Status::Invalid(file + ": sops.mac: not a SOPS-encrypted value");
  auto stored = AesGcmOpen(key.value(), *enc, md->lastmodified);
  if (!stored) {
    return Status::Invalid(file +
                           ": sops.mac: does not decrypt with the data key and "
                           "sops.lastmodified (the metadata was changed)");
  }
  if (stored->size() != computed.size() ||
      CRYPTO_memcmp(stored->data(), computed.data(), computed.size()) != 0) {
    return Status::Invalid(file +
                           ": MAC mismatch: the values no longer match the MAC sops computed "
                           "when it encrypted the file (a value or key was added, removed, "
                           "reordered or changed after encryption)");
  }
  return doc;
}

}  // namespace reconcile
