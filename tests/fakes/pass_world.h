// PassWorld: what a test of a reconcile pass needs, wired as the controller
// wires it: a FakeSource, a FakeProvider registered as `fake`, a real file
// state store in a temp folder and the system clock. Not thread-safe.
#pragma once

#include <memory>
#include <set>
#include <string>

#include "fakes/fake_provider.h"
#include "fakes/fake_source.h"
#include "fakes/temp_dir.h"
#include "reconcile/clock.h"
#include "reconcile/pass.h"
#include "reconcile/reconciler.h"
#include "reconcile/state_store.h"

namespace reconcile::testing {

struct PassWorld {
  TempDir tmp;
  FakeSource source;
  FakeProvider provider;
  ProviderRegistry registry;
  std::unique_ptr<StateStore> store = NewFileStateStore(tmp.path() / "state");
  std::unique_ptr<Clock> clock = NewSystemClock();
  PassWorld() { RegisterFake(registry, &provider); }
  ReconcilerDeps Deps() {
    ReconcilerDeps d;
    d.source = &source;
    d.store = store.get();
    d.providers = &registry;
    d.clock = clock.get();
    return d;
  }
  // One RunPass of `kind` at `rev`, healing only `heal`.
  PassReport Run(PassRequest::Kind kind, const std::string& rev, std::set<std::string> heal = {}) {
    PassRequest r;
    r.kind = kind;
    r.revision = rev;
    r.heal_allowed = std::move(heal);
    return RunPass(Deps(), r);
  }
};

}  // namespace reconcile::testing
