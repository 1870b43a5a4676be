#include "reconcile/promotion.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "yaml_tree.h"

namespace reconcile {
namespace {

constexpr int kMaxDepth = 64;
constexpr std::size_t kMaxAliasNodes = 100000;

const YamlNode* Get(const YamlNode& map, const std::string& key) {
  const YamlNode& m = map.Resolved();
  if (m.kind != YamlNode::Kind::kMap) return nullptr;
  for (const auto& [k, v] : m.entries) {
    if (k && k->Resolved().kind == YamlNode::Kind::kScalar && k->Resolved().value == key) {
      return v ? &v->Resolved() : nullptr;
    }
  }
  return nullptr;
}

std::string ScalarAt(const YamlNode& map, const std::string& key) {
  const YamlNode* v = Get(map, key);
  return v != nullptr && v->kind == YamlNode::Kind::kScalar ? v->value : "";
}

bool IsNull(const YamlNode& n) {
  if (n.kind == YamlNode::Kind::kNull) return true;
  return n.kind == YamlNode::Kind::kScalar && n.tag == "?" &&
         (n.value == "null" || n.value == "~" || n.value.empty());
}

bool IsYaml(const std::string& rel) { return rel.ends_with(".yaml") || rel.ends_with(".yml"); }

std::string Dir(const std::string& rel) {
  const std::size_t slash = rel.rfind('/');
  return slash == std::string::npos ? "" : rel.substr(0, slash);
}

bool Under(const std::string& rel, const std::string& folder) {
  return folder.empty() || rel.starts_with(folder + "/");
}

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

bool IsRegistryDigest(const std::string& d) {
  const std::size_t at = d.find("@sha256:");
  return at != std::string::npos && at > 0 && d.size() == at + 8 + 64;
}

}  // namespace

Result<std::vector<PromotedImage>> ParsePromoted(const std::string& file,
                                                 const std::string& content) {
  Diagnostics diagnostics;
  std::vector<YamlDocument> docs = ParseYaml(file, content, kMaxDepth, kMaxAliasNodes, diagnostics);
  if (diagnostics.HasErrors()) {
    return Status::Invalid(diagnostics.items().front().ToString());
  }
  std::vector<PromotedImage> out;
  std::set<std::string> seen;
  for (const YamlDocument& doc : docs) {
    if (!doc.root || doc.root->kind == YamlNode::Kind::kNull) continue;
    const YamlNode& root = doc.root->Resolved();
    const std::string where = file + ":" + std::to_string(root.line);
    auto refuse = [&](const std::string& what) {
      return Status::Invalid(where + ": " + what + " (" + kPromotedFile +
                             " is written by `reconcile promote` and holds only its Agent "
                             "image patches; put other patches in another file)");
    };
    if (root.kind != YamlNode::Kind::kMap) return refuse("expected a patch document (a map)");
    if (ScalarAt(root, "kind") != "Agent") return refuse("kind: expected Agent");
    const YamlNode* metadata = Get(root, "metadata");
    const YamlNode* spec = Get(root, "spec");
    const std::string name = metadata ? ScalarAt(*metadata, "name") : "";
    if (name.empty()) return refuse("metadata.name: missing");
    if (!seen.insert(name).second) return refuse("agent " + name + " is patched twice");
    if (spec == nullptr || spec->kind != YamlNode::Kind::kMap) return refuse("spec: missing");
    PromotedImage p;
    p.agent = name;
    for (const auto& [k, v] : spec->entries) {
      const std::string key = k ? k->Resolved().value : "";
      if (key == "image" && v && v->Resolved().kind == YamlNode::Kind::kScalar) {
        p.image = v->Resolved().value;
      } else if (key == "build" && v && IsNull(v->Resolved())) {
        p.clear_build = true;
      } else {
        return refuse("spec." + key + ": not a field promote writes");
      }
    }
    if (p.image.empty()) return refuse("spec.image: missing");
    out.push_back(std::move(p));
  }
  std::sort(out.begin(), out.end(),
            [](const PromotedImage& a, const PromotedImage& b) { return a.agent < b.agent; });
  return out;
}

std::string RenderPromoted(const std::vector<PromotedImage>& images, const std::string& from,
                           const std::string& revision) {
  std::vector<PromotedImage> sorted = images;
  std::sort(sorted.begin(), sorted.end(),
            [](const PromotedImage& a, const PromotedImage& b) { return a.agent < b.agent; });
  std::ostringstream out;
  out << kPromotedHeader << " (last: from " << from << " at " << revision << "). Rewritten whole\n"
      << "# on every promotion; patches of your own go into another file of this folder.\n";
  for (const PromotedImage& p : sorted) {
    out << "---\n"
        << "apiVersion: reconcile.dev/v1alpha1\n"
        << "kind: Agent\n"
        << "metadata:\n"
        << "  name: " << p.agent << "\n"
        << "spec:\n"
        << "  image: " << Quote(p.image) << "\n";
    if (p.clear_build) out << "  build: null\n";
  }
  return out.str();
}

std::vector<EnvironmentFolder> ListEnvironmentFolders(const std::vector<TreeFile>& files) {
  std::vector<EnvironmentFolder> out;
  for (const TreeFile& f : files) {
    if (!IsYaml(f.rel)) continue;
    if (f.content.find("Environment") == std::string::npos) continue;
    Diagnostics ignored;
    for (const YamlDocument& doc :
         ParseYaml(f.rel, f.content, kMaxDepth, kMaxAliasNodes, ignored)) {
      if (!doc.root || ScalarAt(*doc.root, "kind") != "Environment") continue;
      const YamlNode* metadata = Get(*doc.root, "metadata");
      std::string name = metadata ? ScalarAt(*metadata, "name") : "";
      if (name.empty()) continue;
      out.push_back({name, Dir(f.rel), f.rel});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const EnvironmentFolder& a, const EnvironmentFolder& b) { return a.name < b.name; });
  return out;
}

std::vector<ImagePatch> FindImagePatches(const std::vector<TreeFile>& files,
                                         const std::string& folder) {
  // Sub-folders holding their own Environment are other environments.
  std::vector<std::string> others;
  for (const EnvironmentFolder& e : ListEnvironmentFolders(files)) {
    if (e.folder != folder && Under(e.folder, folder)) others.push_back(e.folder);
  }
  const std::string promoted = folder.empty() ? kPromotedFile : folder + "/" + kPromotedFile;
  std::vector<ImagePatch> out;
  for (const TreeFile& f : files) {
    if (!IsYaml(f.rel) || !Under(f.rel, folder) || f.rel == promoted) continue;
    if (std::any_of(others.begin(), others.end(),
                    [&f](const std::string& o) { return Under(f.rel, o); })) {
      continue;
    }
    Diagnostics ignored;
    for (const YamlDocument& doc :
         ParseYaml(f.rel, f.content, kMaxDepth, kMaxAliasNodes, ignored)) {
      if (!doc.root || ScalarAt(*doc.root, "kind") != "Agent") continue;
      const YamlNode* metadata = Get(*doc.root, "metadata");
      const YamlNode* spec = Get(*doc.root, "spec");
      if (metadata == nullptr || spec == nullptr) continue;
      const YamlNode* image = Get(*spec, "image");
      if (image == nullptr || IsNull(*image)) continue;
      out.push_back({ScalarAt(*metadata, "name"), f.rel, image->line});
    }
  }
  return out;
}

PromotionDecision DecidePromotion(const PromotionInput& in) {
  PromotionDecision d;
  auto refuse = [&d](std::string line) { d.refusals.push_back(std::move(line)); };
  const std::string src = "environment " + in.from;
  if (!in.last) {
    refuse(src + " was never applied: apply it first (`reconcile apply --path <its folder>`)");
  } else if (in.last->result != "succeeded") {
    refuse(src + ": its last pass (history #" + std::to_string(in.last->serial) + ", revision " +
           in.last->revision + ") " + in.last->result + "; promote only what applied in full");
  }
  if (in.state.pin) {
    refuse(src + " is pinned to revision " + in.state.pin->revision +
           " by a rollback; promote once it runs its desired revision again");
  }
  if (in.last) {
    const bool by_digest = !in.state.content_digest.empty() && !in.desired_content_digest.empty();
    const bool at_desired = by_digest ? in.state.content_digest == in.desired_content_digest
                                      : in.state.revision == in.desired_revision;
    if (!at_desired && in.plan_has_changes) {
      refuse(src + " is not at its desired revision: it runs " +
             (in.state.revision.empty() ? std::string("none in full") : in.state.revision) +
             ", its files are now at " +
             (by_digest ? in.desired_content_digest : in.desired_revision) + "; apply it first");
    }
  }
  std::map<std::string, const PromotionAgent*> agents;
  for (const PromotionAgent& a : in.agents) agents[a.name] = &a;
  std::vector<std::string> names = in.requested;
  if (names.empty()) {
    for (const auto& [name, a] : agents) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  if (names.empty()) refuse(src + " has no agents to promote");
  std::map<std::string, std::string> drifted;
  for (const DriftItem& i : in.drift) {
    if (!i.address.starts_with("agent.")) continue;
    std::string& line = drifted[i.address.substr(6)];
    line += (line.empty() ? "" : "; ") + std::string(DriftKindName(i.kind)) + ": " + i.detail;
  }
  std::map<std::string, PromotedImage> file;
  for (const PromotedImage& p : in.existing) file[p.agent] = p;
  for (const std::string& name : names) {
    auto it = agents.find(name);
    const std::string who = "agent " + name + " in " + in.from;
    if (it == agents.end()) {
      refuse("--agent " + name + ": " + src + " has no such agent");
      continue;
    }
    const PromotionAgent& a = *it->second;
    bool ok = true;
    auto no = [&](std::string line) {
      refuse(std::move(line));
      ok = false;
    };
    if (!a.recorded) {
      no(who + " was never applied; apply " + in.from + " first");
      continue;
    }
    if (auto dr = drifted.find(name); dr != drifted.end()) {
      no(who + " drifted (" + dr->second + "); run `reconcile apply` on " + in.from +
         " (or let the controller heal it) before promoting");
    } else if (a.instances == 0 || a.running < a.instances) {
      no(who + " is not running (" + std::to_string(a.running) + " of " +
         std::to_string(a.instances) + " instances serve)");
    }
    if (a.health == "unhealthy" || a.health == "starting") {
      no(who + " is not healthy (health " + a.health + ")");
    }
    if (!IsRegistryDigest(a.image_digest)) {
      no(who + " has no registry digest (" +
         (a.image_digest.empty() ? std::string("none recorded") : a.image_digest) +
         "): its image was never pushed to a registry; push it (build with a registry, or "
         "`docker push`) and apply " +
         in.from + " again");
    }
    for (const ImagePatch& p : in.image_patches) {
      if (p.agent != name) continue;
      no(p.file + ":" + std::to_string(p.line) + ": another patch of " + in.to +
         " sets spec.image of agent " + name + "; remove it to promote " + name);
    }
    if (!ok) continue;
    PromotedImage p;
    p.agent = name;
    p.image = a.image_digest;
    p.clear_build = a.builds || (file.count(name) && file[name].clear_build);
    d.promoted.push_back(p);
    file[name] = p;
  }
  if (!d.refusals.empty()) {
    d.promoted.clear();
    return d;
  }
  for (auto& [name, p] : file) d.file.push_back(p);
  return d;
}

}  // namespace reconcile
