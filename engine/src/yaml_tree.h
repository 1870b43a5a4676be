// YamlTree: the private adapter over yaml-cpp's event parser. It turns one
// file's content into plain YamlNode trees (one per document), keeping every
// node's position and whether a scalar was quoted, and enforces the
// hostile-input limits that depend on structure (nesting depth and alias
// expansion). No yaml-cpp type or exception leaves yaml_tree.cc.
//
// Aliases are kept as kAlias nodes that point at the anchored node, so a
// "billion laughs" file costs memory proportional to its text, and the
// expansion is measured without being materialized.
//
// Thread-safe (no shared state).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "reconcile/diagnostic.h"

namespace reconcile {

struct YamlNode {
  enum class Kind { kNull, kScalar, kSequence, kMap, kAlias };
  Kind kind = Kind::kNull;
  // The tag as yaml-cpp reports it: "?" for a plain scalar, "!" for a quoted
  // one, or a resolved tag ("tag:yaml.org,2002:str", "!custom").
  std::string tag;
  std::string value;                             // scalar text
  int line = 0;                                  // 1-based
  int column = 0;                                // 1-based
  std::vector<std::shared_ptr<YamlNode>> items;  // sequence items
  std::vector<std::pair<std::shared_ptr<YamlNode>, std::shared_ptr<YamlNode>>> entries;  // map
  std::shared_ptr<const YamlNode> target;  // kAlias: the anchored node
  // The file the node was written in, when a document is merged from several
  // files (Environment overlays); null: the file being decoded.
  std::shared_ptr<const std::string> origin;
  // Size and height of the subtree with aliases expanded (saturating).
  std::size_t expanded_size = 1;
  int expanded_height = 0;

  // The node an alias stands for (itself otherwise). Never null.
  const YamlNode& Resolved() const { return kind == Kind::kAlias && target ? *target : *this; }
};

struct YamlDocument {
  std::shared_ptr<YamlNode> root;  // kNull for an empty document
};

// Parses `content` into documents. Syntax errors and limit violations are
// added to `diagnostics` (named `file`); documents parsed before a syntax
// error are still returned. A document that breaks the depth or alias limit
// is dropped (its diagnostic says why).
std::vector<YamlDocument> ParseYaml(const std::string& file, const std::string& content,
                                    int max_depth, std::size_t max_alias_nodes,
                                    Diagnostics& diagnostics);

}  // namespace reconcile
