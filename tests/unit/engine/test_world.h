// Builders for desired states and observations used by the planner, applier
// and drift tests.
#pragma once

#include <string>

#include "reconcile/diagnostic.h"
#include "reconcile/model.h"
#include "reconcile/observation.h"
#include "reconcile/spec.h"
#include "reconcile/state.h"

namespace reconcile::testing {

// Every diagnostic, one per line ("file:line:column: error: field: ..."),
// for substring checks.
inline std::string All(const Diagnostics& diags) {
  std::string s;
  for (const auto& d : diags.items()) s += d.ToString() + "\n";
  return s;
}

inline Agent MakeAgent(const std::string& name, const std::string& greeting = "hi") {
  Agent a;
  a.name = name;
  a.image = "reconcile/hello-agent:0.1.0";
  a.target = "local";
  a.port = 8080;
  a.env = {{"GREETING", greeting}};
  return a;
}

inline DesiredState MakeDesired(std::vector<Agent> agents) {
  DesiredState d;
  Target t;
  t.name = "local";
  t.provider = "docker";
  d.targets.push_back(t);
  d.agents = std::move(agents);
  d.revision = "tree-000000000001";
  return d;
}

inline std::string HashOf(const Agent& a) { return SpecHash(NormalizedSpec(a, a.image)); }

inline ObservedInstance Running(const Agent& a, const std::string& id) {
  ObservedInstance i;
  i.id = id;
  i.name = a.name;
  i.agent = a.name;
  i.spec_hash = HashOf(a);
  i.image = a.image;
  i.state = "running";
  i.running = true;
  return i;
}

inline ResourceState Recorded(const Agent& a, const std::string& id) {
  ResourceState rs;
  rs.address = "agent." + a.name;
  rs.name = a.name;
  rs.target = a.target;
  rs.provider = "docker";
  rs.spec = NormalizedSpec(a, a.image);
  rs.spec_hash = HashOf(a);
  rs.revision = "tree-000000000000";
  rs.instances = {{id, a.name, "", {}}};
  rs.health = "healthy";
  return rs;
}

}  // namespace reconcile::testing
