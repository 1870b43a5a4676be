// The image.<agent> steps: planned from what the registry holds, rendered
// before the deploys, kept through JSON, run before the agent by the applier
// and never recorded in state.
#include <doctest/doctest.h>

#include <algorithm>
#include <mutex>

#include "fakes/fake_provider.h"
#include "reconcile/applier.h"
#include "reconcile/plan_format.h"
#include "reconcile/planner.h"
#include "unit/engine/test_world.h"

namespace reconcile {
namespace {

using nlohmann::json;
using testing::FakeProvider;
using testing::MakeAgent;
using testing::MakeDesired;

Agent BuiltAgent(const std::string& name) {
  Agent a = MakeAgent(name);
  a.image.clear();
  a.build = BuildSpec{"app", "Dockerfile", {{"MODE", "fast"}}, ""};
  a.registry = "local";
  a.manifest_dir = "agents";
  return a;
}

DesiredState BuildWorld() {
  DesiredState d = MakeDesired({BuiltAgent("web"), MakeAgent("plain")});
  Registry r;
  r.name = "local";
  r.url = "127.0.0.1:5000";
  r.repository = "team/web";
  d.registries.push_back(r);
  return d;
}

ObservedImage Image(bool exists) {
  return {"127.0.0.1:5000/team/web:0123456789ab", "0123456789ab", exists};
}

const Change* Find(const Plan& plan, const std::string& address) {
  for (const Change& c : plan.changes) {
    if (c.address == address) return &c;
  }
  return nullptr;
}

Plan PlanWith(const DesiredState& d, const State& recorded, std::optional<ObservedImage> image,
              const ObserveResponse& observed = {}) {
  PlanInput in;
  in.desired = &d;
  in.recorded = &recorded;
  in.observed["local"] = observed;
  if (image) in.images["web"] = *image;
  return ComputePlan(in);
}

TEST_CASE("planner: an agent with build gets an image step") {
  DesiredState d = BuildWorld();
  State none;
  struct Row {
    const char* name;
    std::optional<ObservedImage> image;
    Action want;
    const char* reason;
  };
  std::vector<Row> rows = {
      {"tag missing: build and push", Image(false), Action::kCreate,
       "tag 0123456789ab is not in registry 'local' (127.0.0.1:5000) yet: build and push"},
      {"tag present: nothing to build", Image(true), Action::kNoOp,
       "tag 0123456789ab is already in registry 'local' (127.0.0.1:5000): not built"},
      {"not observed: planned as missing", std::nullopt, Action::kCreate, "build and push"},
  };
  for (const Row& row : rows) {
    SUBCASE(row.name) {
      Plan plan = PlanWith(d, none, row.image);
      const Change* img = Find(plan, "image.web");
      const Change* agent = Find(plan, "agent.web");
      REQUIRE(img != nullptr);
      REQUIRE(agent != nullptr);
      CHECK(img->action == row.want);
      CHECK(img->reason.find(row.reason) != std::string::npos);
      CHECK(agent->depends_on == std::vector<std::string>{"image.web"});
      CHECK(agent->desired["image"] == img->desired["reference"]);
      CHECK(img->desired["context"] == "agents/app");
      CHECK(img->desired["args"]["MODE"] == "fast");
      CHECK(Find(plan, "image.plain") == nullptr);
      CHECK(std::is_sorted(plan.changes.begin(), plan.changes.end(),
                           [](const Change& a, const Change& b) { return a.address < b.address; }));
    }
  }
}

TEST_CASE("planner: a running built agent whose tag exists is a no-op, and so is its image") {
  DesiredState d = BuildWorld();
  Agent web = *d.FindAgent("web");
  ObserveResponse observed;
  ObservedInstance i = testing::Running(web, "c1");
  i.spec_hash = SpecHash(NormalizedSpec(web, Image(true).reference));
  observed.instances = {i};
  Plan plan = PlanWith(d, State{}, Image(true), observed);
  CHECK(Find(plan, "image.web")->action == Action::kNoOp);
  CHECK(Find(plan, "agent.web")->action == Action::kNoOp);
  // A new commit gives a new tag: build, then replace.
  ObservedImage next{"127.0.0.1:5000/team/web:fedcba987654", "fedcba987654", false};
  Plan moved = PlanWith(d, State{}, next, observed);
  CHECK(Find(moved, "image.web")->action == Action::kCreate);
  CHECK(Find(moved, "agent.web")->action == Action::kReplace);
}

TEST_CASE("planner: image steps are never pruned from state") {
  DesiredState d = BuildWorld();
  State recorded;
  recorded.resources["image.old"].address = "image.old";
  Plan plan = PlanWith(d, recorded, Image(true));
  CHECK(Find(plan, "image.old") == nullptr);
}

TEST_CASE("plan: image steps survive JSON and render before the deploys") {
  Plan plan = PlanWith(BuildWorld(), State{}, Image(false));
  Result<Plan> back = PlanFromJson(json::parse(ToJson(plan).dump()));
  REQUIRE(back.ok());
  CHECK(*back == plan);
  std::string text = FormatPlan(plan, {});
  size_t image = text.find("# image.web will be built and pushed");
  size_t agent = text.find("# agent.web will be created");
  REQUIRE(image != std::string::npos);
  REQUIRE(agent != std::string::npos);
  CHECK(image < agent);
  CHECK(text.find("+ image \"web\" {") != std::string::npos);
  CHECK(text.find("Plan: 1 to build and push, 2 to add, 0 to change") != std::string::npos);
  Plan present = PlanWith(BuildWorld(), State{}, Image(true));
  CHECK(FormatPlan(present, {}).find("image.web") == std::string::npos);
  CHECK(FormatPlan(present, {.show_no_op = true}).find("already in registry") != std::string::npos);
}

struct NoClock final : public Clock {
  std::string NowRfc3339() override { return "2026-12-01T00:00:00Z"; }
  std::chrono::steady_clock::time_point Now() override { return {}; }
  bool SleepFor(std::chrono::milliseconds, std::stop_token) override { return true; }
};

TEST_CASE("applier: the image is built before its agent, retried, and not recorded") {
  DesiredState d = BuildWorld();
  FakeProvider provider;
  NoClock clock;
  NullObserver observer;
  std::mutex mu;
  std::vector<std::string> order;
  int build_calls = 0;
  Status next_build = Status::Unavailable("registry hiccup");
  ApplyContext ctx;
  ctx.provider_for = [&](const std::string&) -> Provider* { return &provider; };
  ctx.target_for = [&](const std::string& t) { return d.FindTarget(t); };
  std::vector<std::string> traceparents;
  ctx.build_image = [&](const Change& c, const ProgressFn&, const StepFn&, std::stop_token,
                        const std::string& traceparent) {
    std::lock_guard<std::mutex> lock(mu);
    order.push_back(c.address);
    traceparents.push_back(traceparent);
    ++build_calls;
    Status s = next_build;
    next_build = Status::Ok();
    return s;
  };
  ctx.pull_credentials_for = [](const Change&) -> Result<std::optional<RegistryCredentials>> {
    return std::optional<RegistryCredentials>();
  };
  ctx.clock = &clock;
  ctx.observer = &observer;
  ApplyOptions options;
  options.initial_backoff = std::chrono::milliseconds(1);

  Plan plan = PlanWith(d, State{}, Image(false));
  ApplyResult r = Apply(plan, State{}, ctx, options);
  REQUIRE_MESSAGE(r.status.ok(), r.status.message());
  CHECK(build_calls == 2);  // one transient failure, one retry
  std::vector<std::string> calls = provider.calls();
  CHECK(std::find(calls.begin(), calls.end(), "agent.web:create") != calls.end());
  CHECK(r.state.resources.count("image.web") == 0);
  CHECK(r.state.resources.count("agent.web") == 1);
  for (const std::string& tp : traceparents) CHECK(tp.empty());  // not traced

  SUBCASE("a traced pass gives the build its change's traceparent (issue #12 item 3)") {
    traceparents.clear();
    ApplyOptions traced = options;
    traced.trace = {"0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"};
    FakeProvider fresh;
    ctx.provider_for = [&](const std::string&) -> Provider* { return &fresh; };
    REQUIRE(Apply(plan, State{}, ctx, traced).status.ok());
    REQUIRE(traceparents.size() == 1);
    const std::string& tp = traceparents[0];
    CHECK(tp.size() == 55);
    CHECK(tp.rfind("00-0af7651916cd43dd8448eb211c80319c-", 0) == 0);
    CHECK(tp.substr(52) == "-01");
    CHECK(tp.substr(36, 16) != "b7ad6b7169203331");  // the change's span, not the pass's
    CHECK(IsTraceId(tp.substr(36, 16), 16));
  }
  SUBCASE("a failed build skips the deploy") {
    next_build = Status::Invalid("Dockerfile step failed");
    FakeProvider fresh;
    ctx.provider_for = [&](const std::string&) -> Provider* { return &fresh; };
    ApplyResult failed = Apply(plan, State{}, ctx, options);
    CHECK(failed.status.code() == Code::kInvalid);
    CHECK(failed.skipped == 1);
    std::vector<std::string> none = fresh.calls();
    CHECK(std::find(none.begin(), none.end(), "agent.web:create") == none.end());
  }
  SUBCASE("an existing tag builds nothing") {
    build_calls = 0;
    ApplyResult again = Apply(PlanWith(d, State{}, Image(true)), State{}, ctx, options);
    CHECK(again.status.ok());
    CHECK(build_calls == 0);
  }
}

}  // namespace
}  // namespace reconcile
