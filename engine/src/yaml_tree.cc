#include "yaml_tree.h"

#include <algorithm>
#include <exception>
#include <limits>
#include <map>
#include <sstream>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

namespace reconcile {
namespace {

// Thrown by the event handler to stop parsing a document; caught in ParseYaml.
struct LimitExceeded {
  int line;
  int column;
  std::string message;
};

std::size_t SaturatingAdd(std::size_t a, std::size_t b) {
  return a > std::numeric_limits<std::size_t>::max() - b ? std::numeric_limits<std::size_t>::max()
                                                         : a + b;
}

class TreeBuilder final : public YAML::EventHandler {
 public:
  TreeBuilder(int max_depth, std::size_t max_alias_nodes)
      : max_depth_(max_depth), max_alias_nodes_(max_alias_nodes) {}

  std::shared_ptr<YamlNode> TakeRoot() { return std::move(root_); }

  void OnDocumentStart(const YAML::Mark&) override {
    root_.reset();
    stack_.clear();
    anchors_.clear();
    alias_nodes_ = 0;
  }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto node = NewNode(YamlNode::Kind::kNull, mark, "?");
    Complete(node, anchor);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchors_.find(anchor);
    if (it == anchors_.end()) {
      throw LimitExceeded{mark.line + 1, mark.column + 1,
                          "alias refers to a node that contains it (recursive alias)"};
    }
    const auto& target = it->second;
    int depth = static_cast<int>(stack_.size());
    if (depth + target->expanded_height > max_depth_) {
      throw LimitExceeded{
          mark.line + 1, mark.column + 1,
          "alias expands to nesting deeper than " + std::to_string(max_depth_) + " levels"};
    }
    alias_nodes_ = SaturatingAdd(alias_nodes_, target->expanded_size);
    if (alias_nodes_ > max_alias_nodes_) {
      throw LimitExceeded{
          mark.line + 1, mark.column + 1,
          "YAML aliases expand to more than " + std::to_string(max_alias_nodes_) + " nodes"};
    }
    auto node = NewNode(YamlNode::Kind::kAlias, mark, "");
    node->target = target;
    node->expanded_size = target->expanded_size;
    node->expanded_height = target->expanded_height;
    Complete(node, 0);
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    auto node = NewNode(YamlNode::Kind::kScalar, mark, tag);
    node->value = value;
    Complete(node, anchor);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    Open(NewNode(YamlNode::Kind::kSequence, mark, tag), anchor, mark);
  }
  void OnSequenceEnd() override { Close(); }

  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    Open(NewNode(YamlNode::Kind::kMap, mark, tag), anchor, mark);
  }
  void OnMapEnd() override { Close(); }

 private:
  struct Frame {
    std::shared_ptr<YamlNode> node;
    YAML::anchor_t anchor = 0;
    std::shared_ptr<YamlNode> pending_key;
  };

  static std::shared_ptr<YamlNode> NewNode(YamlNode::Kind kind, const YAML::Mark& mark,
                                           const std::string& tag) {
    auto node = std::make_shared<YamlNode>();
    node->kind = kind;
    node->tag = tag;
    node->line = mark.line + 1;
    node->column = mark.column + 1;
    return node;
  }

  void Open(std::shared_ptr<YamlNode> node, YAML::anchor_t anchor, const YAML::Mark& mark) {
    if (static_cast<int>(stack_.size()) >= max_depth_) {
      throw LimitExceeded{mark.line + 1, mark.column + 1,
                          "nesting is deeper than " + std::to_string(max_depth_) + " levels"};
    }
    stack_.push_back(Frame{std::move(node), anchor, nullptr});
  }

  void Close() {
    Frame frame = std::move(stack_.back());
    stack_.pop_back();
    if (frame.pending_key) {  // a key without value cannot happen; keep it as a null value
      auto null_value = std::make_shared<YamlNode>();
      null_value->line = frame.pending_key->line;
      null_value->column = frame.pending_key->column;
      AddChild(*frame.node, frame.pending_key, null_value, &frame);
    }
    Complete(frame.node, frame.anchor);
  }

  static void Account(YamlNode& parent, const YamlNode& child) {
    parent.expanded_size = SaturatingAdd(parent.expanded_size, child.expanded_size);
    parent.expanded_height = std::max(parent.expanded_height, child.expanded_height + 1);
  }

  static void AddChild(YamlNode& map, std::shared_ptr<YamlNode> key,
                       std::shared_ptr<YamlNode> value, Frame* frame) {
    if (value->kind == YamlNode::Kind::kNull && value->line != key->line) {
      // An empty value: yaml-cpp marks the next token; point at the key instead.
      value->line = key->line;
      value->column = key->column;
    }
    Account(map, *key);
    Account(map, *value);
    map.entries.emplace_back(std::move(key), std::move(value));
    if (frame) frame->pending_key.reset();
  }

  // Attaches a finished node to its parent (or makes it the root) and
  // registers its anchor.
  void Complete(const std::shared_ptr<YamlNode>& node, YAML::anchor_t anchor) {
    if (anchor != 0) anchors_[anchor] = node;
    if (stack_.empty()) {
      root_ = node;
      return;
    }
    Frame& top = stack_.back();
    YamlNode& parent = *top.node;
    if (parent.kind == YamlNode::Kind::kSequence) {
      Account(parent, *node);
      parent.items.push_back(node);
    } else if (!top.pending_key) {
      top.pending_key = node;
    } else {
      AddChild(parent, top.pending_key, node, &top);
    }
  }

  int max_depth_;
  std::size_t max_alias_nodes_;
  std::shared_ptr<YamlNode> root_;
  std::vector<Frame> stack_;
  std::map<YAML::anchor_t, std::shared_ptr<YamlNode>> anchors_;
  std::size_t alias_nodes_ = 0;
};

}  // namespace

std::vector<YamlDocument> ParseYaml(const std::string& file, const std::string& content,
                                    int max_depth, std::size_t max_alias_nodes,
                                    Diagnostics& diagnostics) {
  std::vector<YamlDocument> documents;
  try {
    std::istringstream in(content);
    YAML::Parser parser(in);
    TreeBuilder builder(max_depth, max_alias_nodes);
    // yaml-cpp 0.7 (Debian 12) can report an endless run of empty documents
    // without consuming input, allocating until memory runs out, for a
    // stream that starts with ',' (jbeder/yaml-cpp#1040, fixed upstream in
    // #1319). An empty document at the same place as the one before means
    // no progress: stop with a syntax error. The document count is capped
    // as a second guard.
    constexpr std::size_t kMaxDocuments = 10000;
    const YamlNode* previous_empty = nullptr;
    while (parser.HandleNextDocument(builder)) {
      auto root = builder.TakeRoot();
      if (!root) root = std::make_shared<YamlNode>();
      if (root->kind == YamlNode::Kind::kNull) {
        if (previous_empty && root->line > 0 && previous_empty->line == root->line &&
            previous_empty->column == root->column) {
          diagnostics.Error(file, root->line, root->column, "",
                            "YAML syntax error: unexpected character (no document can start here)");
          documents.pop_back();
          break;
        }
      }
      if (documents.size() >= kMaxDocuments) {
        diagnostics.Error(file, root->line, root->column, "",
                          "more than " + std::to_string(kMaxDocuments) + " documents in one file");
        break;
      }
      documents.push_back(YamlDocument{std::move(root)});
      const YamlNode& last = *documents.back().root;
      previous_empty = last.kind == YamlNode::Kind::kNull ? &last : nullptr;
    }
  } catch (const LimitExceeded& e) {
    diagnostics.Error(file, e.line, e.column, "", e.message);
  } catch (const YAML::Exception& e) {
    int line = e.mark.is_null() ? 1 : e.mark.line + 1;
    int column = e.mark.is_null() ? 1 : e.mark.column + 1;
    diagnostics.Error(file, line, column, "", "YAML syntax error: " + e.msg);
  } catch (const std::exception& e) {
    diagnostics.Error(file, 1, 1, "", std::string("cannot parse YAML: ") + e.what());
  }
  return documents;
}

}  // namespace reconcile
