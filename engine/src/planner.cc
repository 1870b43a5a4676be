#include "reconcile/planner.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "reconcile/spec.h"

namespace reconcile {

using nlohmann::json;

// Defined here, in the core, so that the pure planner needs no provider
// library (provider.h declares it).
PlanChangeResponse PlanChangeFromSchema(const ProviderSchema& schema,
                                        const PlanChangeRequest& request) {
  PlanChangeResponse r;
  for (const std::string& path : request.changed) {
    if (schema.updatable_fields.count(path.substr(0, path.find('.'))) == 0) {
      r.requires_replace.insert(path);
    }
  }
  return r;
}

namespace {

// Flattens objects into dotted leaf paths; arrays and scalars are leaves.
// A null value at the top level of an object is left out (absent).
void Flatten(const json& value, const std::string& prefix, std::map<std::string, json>& out) {
  if (value.is_object()) {
    for (auto it = value.begin(); it != value.end(); ++it) {
      if (it.value().is_null()) continue;
      Flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
    }
    return;
  }
  out[prefix] = value;
}

// Field-level differences between two normalized specs (either may be
// null); forces_replace is left false.
std::vector<FieldChange> Diff(const json& before, const json& after) {
  std::map<std::string, json> b, a;
  if (!before.is_null()) Flatten(before, "", b);
  if (!after.is_null()) Flatten(after, "", a);
  std::set<std::string> paths;
  for (const auto& [k, v] : b) paths.insert(k);
  for (const auto& [k, v] : a) paths.insert(k);
  std::vector<FieldChange> out;
  for (const std::string& p : paths) {
    auto bi = b.find(p);
    auto ai = a.find(p);
    if (bi != b.end() && ai != a.end() && bi->second == ai->second) continue;
    FieldChange f;
    f.path = p;
    if (bi != b.end()) f.before = bi->second;
    if (ai != a.end()) f.after = ai->second;
    out.push_back(std::move(f));
  }
  return out;
}

std::vector<FieldChange> AllFields(const json& spec, bool as_after) {
  std::map<std::string, json> leaves;
  Flatten(spec, "", leaves);
  std::vector<FieldChange> out;
  for (auto& [path, value] : leaves) {
    FieldChange f;
    f.path = path;
    (as_after ? f.after : f.before) = value;
    out.push_back(std::move(f));
  }
  return out;
}

std::vector<InstanceRef> Refs(const std::vector<const ObservedInstance*>& instances) {
  std::vector<InstanceRef> refs;
  for (const ObservedInstance* i : instances) refs.push_back({i->id, i->name});
  return refs;
}

std::string Plural(size_t n, const char* word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

// Names of the named volumes of a normalized spec, split by reclaim policy.
void NamedVolumes(const json& spec, std::vector<std::string>& retain,
                  std::vector<std::string>& remove) {
  if (!spec.is_object() || !spec.contains("volumes") || !spec["volumes"].is_object()) return;
  std::set<std::string> keep, drop;
  for (const auto& [target, m] : spec["volumes"].items()) {
    if (!m.is_object() || m.value("type", "") != "volume" || !m.contains("source") ||
        !m["source"].is_string()) {
      continue;
    }
    (m.value("reclaim", "retain") == "delete" ? drop : keep).insert(m["source"].get<std::string>());
  }
  retain.assign(keep.begin(), keep.end());
  remove.assign(drop.begin(), drop.end());
}

std::string NameList(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "'" : ", '") + n + "'";
  return out;
}

// "; volume 'a' <one>" or "; volumes 'a', 'b' <many>"; empty for no names.
std::string VolumeWords(const std::vector<std::string>& names, const char* one, const char* many) {
  if (names.empty()) return "";
  return (names.size() == 1 ? "; volume " : "; volumes ") + NameList(names) + " " +
         (names.size() == 1 ? one : many);
}

// What happens to the named volumes when an agent is deleted, in words.
std::string VolumesOnDelete(const json& spec) {
  std::vector<std::string> retain, remove;
  NamedVolumes(spec, retain, remove);
  return VolumeWords(retain, "and its data are kept (reclaim: retain)",
                     "and their data are kept (reclaim: retain)") +
         VolumeWords(remove, "will be DELETED with its data (reclaim: delete)",
                     "will be DELETED with their data (reclaim: delete)");
}

// What happens to the named volumes when an agent is replaced, in words.
std::string VolumesOnReplace(const json& spec) {
  std::vector<std::string> retain, remove;
  NamedVolumes(spec, retain, remove);
  retain.insert(retain.end(), remove.begin(), remove.end());
  std::sort(retain.begin(), retain.end());
  return VolumeWords(retain, "kept with its data", "kept with their data");
}

// What happens to the agent's owned networks when it is deleted, in words.
std::string NetworksOnDelete(const json& spec) {
  if (!spec.is_object() || !spec.contains("networks") || !spec["networks"].is_object()) return "";
  std::vector<std::string> names;
  for (const auto& [name, n] : spec["networks"].items()) names.push_back(name);
  if (names.empty()) return "";
  return (names.size() == 1 ? "; network " : "; networks ") + NameList(names) +
         (names.size() == 1 ? " is" : " are") +
         " removed once no container is attached (only if reconcile created it)";
}

// (target, agent) as views into the plan's inputs, which outlive it.
using TargetAgent = std::pair<std::string_view, std::string_view>;
struct TargetAgentHash {
  size_t operator()(const TargetAgent& k) const {
    size_t h = std::hash<std::string_view>()(k.first);
    return h ^
           (std::hash<std::string_view>()(k.second) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
  }
};

// Observed instances per (target, agent), in observation order; built once
// per plan so that planning stays linear in agents + instances. `relevant`:
// the plan is about this (target, agent): a desired agent or a recorded
// resource names it (only those instances make a saved plan stale).
struct InstanceEntry {
  std::vector<const ObservedInstance*> instances;
  bool relevant = false;
};
struct InstanceIndex {
  std::unordered_map<TargetAgent, InstanceEntry, TargetAgentHash> entries;
  std::vector<InstanceEntry*> of_instance;  // the entry of each instance, in observation order

  explicit InstanceIndex(const std::map<std::string, ObserveResponse>& observed) {
    for (const auto& [target, response] : observed) {
      for (const ObservedInstance& i : response.instances) {
        InstanceEntry& e = entries[{target, i.agent}];
        e.instances.push_back(&i);
        of_instance.push_back(&e);  // node-based map: the address stays valid
      }
    }
  }
  // The instances of (target, agent), which the plan is then about.
  const std::vector<const ObservedInstance*>& Use(std::string_view target, std::string_view agent) {
    static const std::vector<const ObservedInstance*> kNone;
    auto it = entries.find({target, agent});
    if (it == entries.end()) return kNone;
    it->second.relevant = true;
    return it->second.instances;
  }
};

// Finds desired agents by name, for lookups that mostly come in name order
// (a walk instead of a search each time). Agents must be sorted by name.
class AgentCursor {
 public:
  explicit AgentCursor(const std::vector<Agent>& agents) : agents_(agents) {}
  const Agent* Find(std::string_view name) {
    if (pos_ > 0 && std::string_view(agents_[pos_ - 1].name) >= name) {
      pos_ = static_cast<size_t>(
          std::lower_bound(agents_.begin(), agents_.end(), name,
                           [](const Agent& a, std::string_view n) { return a.name < n; }) -
          agents_.begin());
    }
    while (pos_ < agents_.size() && std::string_view(agents_[pos_].name) < name) ++pos_;
    if (pos_ < agents_.size() && agents_[pos_].name == name) return &agents_[pos_++];
    return nullptr;
  }

 private:
  const std::vector<Agent>& agents_;
  size_t pos_ = 0;
};

// The digest of the observation: one line per target and per instance of an
// agent `keep` accepts, hashed as it goes.
template <typename Keep>
std::string Digest(const std::map<std::string, ObserveResponse>& observed, Keep keep) {
  Sha256 hash;
  for (const auto& [target, response] : observed) {
    hash.Update(target);
    hash.Update("\n");
    for (const ObservedInstance& i : response.instances) {
      if (!keep(target, i.agent)) continue;
      hash.Update(i.id);
      hash.Update(" ");
      hash.Update(i.spec_hash);
      hash.Update(" ");
      hash.Update(i.state);
      hash.Update("\n");
    }
  }
  return "sha256:" + hash.HexDigest();
}

// The image an agent with build runs: observed in its registry, or (not
// observed) the reference ResolveImage gives, planned as missing.
ObservedImage ImageOf(const Agent& agent, const DesiredState& desired, const PlanInput& input) {
  if (auto it = input.images.find(agent.name); it != input.images.end()) return it->second;
  ObservedImage image;
  image.reference = ResolveImage(agent, desired.FindRegistry(agent.registry), desired.revision);
  image.tag = image.reference.substr(image.reference.rfind(':') + 1);
  return image;
}

// image.<agent>: build and push, or nothing when the registry has the tag.
Change PlanImage(const Agent& agent, const DesiredState& desired, const ObservedImage& image) {
  Change c;
  c.address = std::string(kImageAddressPrefix) + agent.name;
  c.name = agent.name;
  c.target = agent.target;
  const Target* target = desired.FindTarget(agent.target);
  c.provider = target ? target->provider : "";
  const Registry* registry = desired.FindRegistry(agent.registry);
  std::string context = (std::filesystem::path(agent.manifest_dir) / agent.build->context)
                            .lexically_normal()
                            .generic_string();
  while (context.size() > 1 && context.back() == '/') context.pop_back();
  if (context.empty()) context = ".";
  c.desired = json{{"reference", image.reference},
                   {"tag", image.tag},
                   {"registry", agent.registry},
                   {"context", context},
                   {"dockerfile", agent.build->dockerfile},
                   {"args", agent.build->args}};
  c.desired_hash = SpecHash(c.desired);
  const std::string where =
      "registry '" + agent.registry + "'" + (registry ? " (" + registry->url + ")" : "");
  if (agent.suspend) {
    c.action = Action::kNoOp;
    c.reason = "suspended: not built";
  } else if (image.exists) {
    c.action = Action::kNoOp;
    c.reason = "tag " + image.tag + " is already in " + where + ": not built";
  } else {
    c.action = Action::kCreate;
    c.fields = AllFields(c.desired, /*as_after=*/true);
    c.reason = "tag " + image.tag + " is not in " + where + " yet: build and push";
  }
  return c;
}

// `rec`: the agent's state entry, if any; `instances`: what runs for it.
Change PlanAgent(const Agent& agent, const DesiredState& desired, const ResourceState* rec,
                 const std::vector<const ObservedInstance*>& instances, const PlanInput& input) {
  Change c;
  c.address = kAgentAddressPrefix + agent.name;
  c.name = agent.name;
  c.target = agent.target;
  const Target* target = desired.FindTarget(agent.target);
  c.provider = target ? target->provider : "";
  for (const std::string& dep : agent.depends_on) c.depends_on.push_back("agent." + dep);
  if (agent.build) c.depends_on.push_back(std::string(kImageAddressPrefix) + agent.name);
  std::sort(c.depends_on.begin(), c.depends_on.end());

  if (agent.build) {
    // The image follows the revision and the registry: never memoized.
    json spec = NormalizedSpec(agent, ImageOf(agent, desired, input).reference);
    c.desired_hash = SpecHash(spec);
    c.desired = std::move(spec);
  } else {
    c.desired_hash = MemoizedSpec(agent).hash;
    if (rec != nullptr && rec->spec_hash == c.desired_hash && !rec->spec.is_null()) {
      // The recorded spec has this hash: it is this spec. Parsed only if
      // something reads it (a no-op reads nothing).
      c.desired = SharedJson::Lazy([text = rec->spec.text()] { return json::parse(text); });
    } else {
      c.desired = NormalizedSpec(agent, agent.image);
    }
  }

  c.prior = Refs(instances);
  static const ProviderSchema kNoSchema;
  const ProviderSchema* schema = &kNoSchema;
  if (auto it = input.schemas.find(c.provider); it != input.schemas.end()) schema = &it->second;

  if (agent.suspend) {
    c.action = Action::kNoOp;
    c.reason = "suspended: left as it is";
    return c;
  }
  if (instances.empty()) {
    c.action = Action::kCreate;
    c.fields = AllFields(c.desired, /*as_after=*/true);
    c.reason = rec ? "recorded in state but not running on target '" + agent.target +
                         "' (removed outside reconcile)"
                   : "new agent";
    return c;
  }

  // What runs must match the spec hash, run, and have the right count.
  std::string observed_hash = instances.front()->spec_hash;
  bool same_hash = true;
  for (const ObservedInstance* i : instances) same_hash &= i->spec_hash == observed_hash;
  std::vector<std::string> problems;
  for (const ObservedInstance* i : instances) {
    if (!i->running) problems.push_back(i->name + " is " + i->state);
  }
  // One instance per replica (Docker), or one serving them all (a cloud).
  const int wanted = schema->instance_per_replica ? agent.replicas : 1;
  if (static_cast<int>(instances.size()) != wanted) {
    problems.push_back(Plural(instances.size(), "instance") + " running, " +
                       std::to_string(wanted) + " wanted");
  }
  if (!same_hash) problems.push_back("instances run different specs");
  if (rec && rec->health == "unhealthy" && rec->spec_hash == observed_hash) {
    problems.push_back("tainted: the last apply of this spec failed");
  }

  std::string provider_notes;  // the provider's PlanChange diagnostics
  if (observed_hash != c.desired_hash || !same_hash) {
    // Field-level before: the recorded spec when it is what runs.
    if (rec && rec->spec_hash == observed_hash && same_hash) {
      c.fields = Diff(rec->spec.Get(), c.desired);
      PlanChangeRequest ask;
      ask.agent = agent.name;
      ask.prior = rec->spec.Get();
      ask.desired = c.desired.get();
      for (const FieldChange& f : c.fields) ask.changed.push_back(f.path);
      auto pc = input.plan_change.find(agent.target);
      PlanChangeResponse answer = pc != input.plan_change.end() && pc->second
                                      ? pc->second(ask)
                                      : PlanChangeFromSchema(*schema, ask);
      for (FieldChange& f : c.fields) f.forces_replace = answer.requires_replace.count(f.path) > 0;
      for (const ProviderDiagnostic& d : answer.diagnostics) {
        provider_notes += "; " + (d.field.empty() ? "" : d.field + ": ") + d.message;
      }
    } else {
      FieldChange f;
      f.path = "specHash";
      f.before = observed_hash;
      f.after = c.desired_hash;
      f.forces_replace = true;
      c.fields.push_back(std::move(f));
    }
  }
  bool forces = std::any_of(c.fields.begin(), c.fields.end(),
                            [](const FieldChange& f) { return f.forces_replace; });
  if (!problems.empty()) {
    c.action = Action::kReplace;
    std::string reason;
    for (const std::string& p : problems) reason += (reason.empty() ? "" : "; ") + p;
    c.reason = reason + VolumesOnReplace(c.desired) + provider_notes;
  } else if (c.fields.empty()) {
    c.action = Action::kNoOp;
    c.reason = "up to date";
  } else if (forces) {
    c.action = Action::kReplace;
    std::string names;
    for (const FieldChange& f : c.fields) {
      if (f.forces_replace) names += (names.empty() ? "" : ", ") + f.path;
    }
    c.reason = "changed fields cannot be updated in place: " + names + VolumesOnReplace(c.desired) +
               provider_notes;
  } else {
    c.action = Action::kUpdate;
    c.reason = "changed fields are updated in place" + provider_notes;
  }
  return c;
}

}  // namespace

Plan ComputePlan(const PlanInput& input) {
  static const State kEmptyState;
  static const DesiredState kEmptyDesired;
  const DesiredState& desired = input.desired ? *input.desired : kEmptyDesired;
  const State& recorded = input.recorded ? *input.recorded : kEmptyState;

  Plan plan;
  plan.revision = desired.revision;
  InstanceIndex index(input.observed);
  const std::vector<Agent>& agents = desired.agents;
  auto by_name = [](const Agent& a, const Agent& b) { return a.name < b.name; };
  // Sorted (as loaded): state entries and agents are walked side by side.
  const bool sorted = std::is_sorted(agents.begin(), agents.end(), by_name);
  auto rec_it = recorded.resources.lower_bound(kAgentAddressPrefix);
  plan.changes.reserve(agents.size());
  for (const Agent& agent : agents) {
    const std::string address = kAgentAddressPrefix + agent.name;
    const ResourceState* rec = nullptr;
    if (sorted) {
      while (rec_it != recorded.resources.end() && rec_it->first < address) ++rec_it;
      if (rec_it != recorded.resources.end() && rec_it->first == address) rec = &rec_it->second;
    } else if (auto it = recorded.resources.find(address); it != recorded.resources.end()) {
      rec = &it->second;
    }
    plan.changes.push_back(
        PlanAgent(agent, desired, rec, index.Use(agent.target, agent.name), input));
    if (agent.build)
      plan.changes.push_back(PlanImage(agent, desired, ImageOf(agent, desired, input)));
  }
  // Prune: only what the recorded inventory says we own.
  AgentCursor cursor(agents);
  auto find_agent = [&](std::string_view name) -> const Agent* {
    return sorted ? cursor.Find(name) : desired.FindAgent(std::string(name));
  };
  for (const auto& [address, rec] : recorded.resources) {
    const Agent* same = find_agent(rec.name);
    if (same == nullptr || same->target != rec.target) index.Use(rec.target, rec.name);
    if (IsImageAddress(address)) continue;
    std::string_view name(address);
    const size_t prefix = std::string_view(kAgentAddressPrefix).size();
    if (name.substr(0, prefix) == kAgentAddressPrefix) {
      name.remove_prefix(prefix);
      if ((same != nullptr && same->name == name) || find_agent(name) != nullptr) continue;
    }
    Change c;
    c.address = address;
    c.name = rec.name;
    c.action = Action::kDelete;
    c.target = rec.target;
    c.provider = rec.provider;
    const nlohmann::json spec = rec.spec.Get();
    c.fields = AllFields(spec, /*as_after=*/false);
    // What is removed: the provider reads owned objects besides the
    // instances (named volumes and their reclaim policy) from it.
    c.desired = spec;
    const std::vector<const ObservedInstance*>& instances = index.Use(rec.target, rec.name);
    c.prior = Refs(instances);
    c.reason =
        (instances.empty() ? "removed from the desired state (already gone; dropped from state)"
                           : "removed from the desired state") +
        VolumesOnDelete(spec) + NetworksOnDelete(spec);
    plan.changes.push_back(std::move(c));
  }
  size_t k = 0;
  plan.observed_digest = Digest(input.observed, [&](const std::string&, const std::string&) {
    return index.of_instance[k++]->relevant;
  });
  // Agents come sorted by name; only deletes need to find their place.
  auto by_address = [](const Change& a, const Change& b) { return a.address < b.address; };
  if (!std::is_sorted(plan.changes.begin(), plan.changes.end(), by_address)) {
    std::sort(plan.changes.begin(), plan.changes.end(), by_address);
  }
  return plan;
}

std::string ObservedDigest(const std::map<std::string, ObserveResponse>& observed) {
  return Digest(observed, [](const std::string&, const std::string&) { return true; });
}

std::string ObservedDigest(const std::map<std::string, ObserveResponse>& observed,
                           const std::set<std::pair<std::string, std::string>>& relevant) {
  return Digest(observed, [&](const std::string& target, const std::string& agent) {
    return relevant.count({target, agent}) > 0;
  });
}

}  // namespace reconcile
