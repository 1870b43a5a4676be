// ComputePlan: the pure function at the heart of reconcile.
//
// Inputs are values only; no I/O, no clock, no logging. The same inputs give
// the same plan, byte for byte. Thread-safe.
#pragma once

#include <map>
#include <set>
#include <string>

#include "reconcile/model.h"
#include "reconcile/observation.h"
#include "reconcile/plan.h"
#include "reconcile/provider.h"
#include "reconcile/state.h"

namespace reconcile {

struct PlanInput {
  const DesiredState* desired = nullptr;
  const State* recorded = nullptr;
  // Observation per Target name (only targets that were observed).
  std::map<std::string, ObserveResponse> observed;
  // Schema per provider name.
  std::map<std::string, ProviderSchema> schemas;
  // Per Target name: its provider's PlanChange (Provider::PlanChange), asked
  // which changed fields force a replacement. A Target without one uses
  // PlanChangeFromSchema with its provider's schema. Must be pure.
  std::map<std::string, std::function<PlanChangeResponse(const PlanChangeRequest&)>> plan_change;
  // Per agent with build: its image as observed in its registry. An agent
  // with build and no entry gets the reference ResolveImage gives and is
  // planned as not in the registry.
  std::map<std::string, ObservedImage> images;
};

// Computes the plan. An agent with build gets a change `image.<name>` before
// its `agent.<name>` (which depends on it): create (build and push) when the
// registry lacks the tag, no-op when it has it. Image changes are never
// recorded in state nor pruned. Agents in `desired` are created, updated,
// replaced or left alone; agents only in `recorded` (or only observed with our labels) are
// deleted. Suspended agents are left as they are.
Plan ComputePlan(const PlanInput& input);

// Digest over the observation (ids, spec hashes, states), used to refuse a
// saved plan when the world has moved since it was computed. With
// `relevant`, only the instances of those (target, agent) pairs count: the
// containers of another tree on the same engine do not make a plan stale.
std::string ObservedDigest(const std::map<std::string, ObserveResponse>& observed);
std::string ObservedDigest(const std::map<std::string, ObserveResponse>& observed,
                           const std::set<std::pair<std::string, std::string>>& relevant);

}  // namespace reconcile
