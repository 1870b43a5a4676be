#include "docker/docker_provider.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <boost/asio/ip/address.hpp>

#include "docker/container_spec.h"
#include "docker/engine_client.h"
#include "docker/event_watch.h"
#include "docker/secret_files.h"
#include "reconcile/clock.h"
#include "reconcile/config_checks.h"
#include "reconcile/observation.h"

namespace reconcile::docker {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

constexpr int kStopTimeoutSeconds = 10;
constexpr milliseconds kRunningWait{30000};
constexpr milliseconds kRunningPoll{200};
// How long a TCP health probe holds the connection open (engine_client.h TcpProbe).
constexpr milliseconds kTcpHold{250};

std::string ShortId(const std::string& id) { return id.substr(0, 12); }

const json& Labels(const json& inspect) {
  static const json kEmpty = json::object();
  if (inspect.contains("Config") && inspect["Config"].is_object() &&
      inspect["Config"].contains("Labels") && inspect["Config"]["Labels"].is_object()) {
    return inspect["Config"]["Labels"];
  }
  return kEmpty;
}

std::string Label(const json& inspect, const char* key) {
  const json& l = Labels(inspect);
  return l.contains(key) && l[key].is_string() ? l[key].get<std::string>() : "";
}

bool IsManaged(const json& inspect) { return Label(inspect, kLabelManagedBy) == kManagedByValue; }

// "environment 'dev'" or "the plain tree (no environment)", for errors.
std::string EnvironmentPhrase(const std::string& environment) {
  return environment.empty() ? std::string("the plain tree (no environment)")
                             : "environment '" + environment + "'";
}

std::string IdOf(const json& inspect) {
  return inspect.contains("Id") && inspect["Id"].is_string() ? inspect["Id"].get<std::string>()
                                                             : "";
}

struct RunState {
  bool running = false;
  std::string status;
  int exit_code = 0;
};

RunState StateOf(const json& inspect) {
  RunState s;
  if (!inspect.contains("State") || !inspect["State"].is_object()) return s;
  const json& st = inspect["State"];
  if (st.contains("Running") && st["Running"].is_boolean()) s.running = st["Running"].get<bool>();
  if (st.contains("Status") && st["Status"].is_string()) s.status = st["Status"].get<std::string>();
  if (st.contains("ExitCode") && st["ExitCode"].is_number_integer()) {
    s.exit_code = st["ExitCode"].get<int>();
  }
  return s;
}

// Exited, dead, or restarting after an exit (restart policy unless-stopped).
bool Stopped(const RunState& s) {
  return s.status == "exited" || s.status == "dead" || s.status == "restarting";
}

// The host port published for `container_port`/tcp, or 0.
int PublishedPort(const json& inspect, int container_port) {
  const std::string key = std::to_string(container_port) + "/tcp";
  if (!inspect.contains("NetworkSettings") || !inspect["NetworkSettings"].is_object()) return 0;
  const json& ns = inspect["NetworkSettings"];
  if (!ns.contains("Ports") || !ns["Ports"].is_object() || !ns["Ports"].contains(key)) return 0;
  const json& bindings = ns["Ports"][key];
  if (!bindings.is_array()) return 0;
  for (const json& b : bindings) {
    if (b.is_object() && b.contains("HostPort") && b["HostPort"].is_string()) {
      int p = std::atoi(b["HostPort"].get<std::string>().c_str());
      if (p > 0 && p < 65536) return p;
    }
  }
  return 0;
}

// Config.StopTimeout of an inspected container (its stopGracePeriod), or
// kStopTimeoutSeconds when it has none.
int StopTimeoutOf(const json& inspect) {
  if (inspect.contains("Config") && inspect["Config"].is_object()) {
    const json& config = inspect["Config"];
    if (config.contains("StopTimeout") && config["StopTimeout"].is_number_integer()) {
      auto t = config["StopTimeout"].get<std::int64_t>();
      if (t >= 0 && t <= 3600) return static_cast<int>(t);
    }
  }
  return kStopTimeoutSeconds;
}

// State.Health of an inspected container: the engine's own health check.
struct EngineHealth {
  std::string status;  // "starting", "healthy", "unhealthy"; empty: none
  int failing_streak = 0;
  std::string last;  // the last check's exit code and output, trimmed
};

EngineHealth HealthOf(const json& inspect) {
  EngineHealth h;
  if (!inspect.contains("State") || !inspect["State"].is_object()) return h;
  const json& st = inspect["State"];
  if (!st.contains("Health") || !st["Health"].is_object()) return h;
  const json& health = st["Health"];
  if (health.contains("Status") && health["Status"].is_string()) {
    h.status = health["Status"].get<std::string>();
  }
  if (health.contains("FailingStreak") && health["FailingStreak"].is_number_integer()) {
    h.failing_streak = health["FailingStreak"].get<int>();
  }
  if (health.contains("Log") && health["Log"].is_array() && !health["Log"].empty()) {
    const json& entry = health["Log"].back();
    if (entry.is_object()) {
      std::string output = entry.contains("Output") && entry["Output"].is_string()
                               ? entry["Output"].get<std::string>()
                               : "";
      while (!output.empty() && (output.back() == '\n' || output.back() == '\r')) output.pop_back();
      if (output.size() > 512) output = output.substr(0, 512) + "...";
      int code = entry.contains("ExitCode") && entry["ExitCode"].is_number_integer()
                     ? entry["ExitCode"].get<int>()
                     : -1;
      h.last = "exit code " + std::to_string(code) + (output.empty() ? "" : ", output: " + output);
    }
  }
  return h;
}

class DockerProvider : public Provider {
 public:
  DockerProvider(Target target, std::shared_ptr<HttpTransport> transport, Clock* clock,
                 std::vector<std::string> warnings)
      : target_(std::move(target)),
        client_(std::move(transport), clock),
        docker_(DockerTargetFromSettings(target_.settings)),
        access_host_(AgentAccessHost(docker_)),
        local_engine_(docker_.host.rfind("unix://", 0) == 0),
        warnings_(std::move(warnings)) {}

  ProviderSchema Schema() const override {
    static const nlohmann::json kBlock = checks::TargetBlockSchema("docker");
    ProviderSchema s;  // no field is updated in place: every change replaces
    s.target_schema = kBlock;
    return s;
  }

  // Set by NewDockerProvider for an engine the event watch can reach.
  std::function<std::unique_ptr<DriftWatch>(DriftNoticeFn)> watch;

  std::unique_ptr<DriftWatch> WatchDrift(DriftNoticeFn on_notice) override {
    return watch ? watch(std::move(on_notice)) : nullptr;
  }

  ObserveResponse Observe(const ObserveRequest&) override {
    ObserveResponse r;
    r.warnings = warnings_;
    auto list = client_.ListContainers({std::string(kLabelManagedBy) + "=" + kManagedByValue});
    if (!list.ok()) {
      r.status = list.status();
      return r;
    }
    auto instances = ParseContainerList(*list, access_host_, target_.environment);
    if (!instances.ok()) {
      r.status = instances.status();
      return r;
    }
    r.instances = std::move(*instances);
    return r;
  }

  ApplyChangeResponse ApplyChange(const ApplyChangeRequest& request) override {
    Apply a(*this, request);
    return a.Run();
  }

 private:
  // One ApplyChange call: its request and helpers.
  class Apply {
   public:
    Apply(DockerProvider& p, const ApplyChangeRequest& request)
        : p_(p),
          c_(p.client_.WithStop(request.stop).WithTraceparent(request.traceparent)),
          req_(request),
          agent_(request.change.name),
          env_(p.target_.environment),
          scoped_(ScopedName(env_, agent_)) {}
    ~Apply() {
      std::lock_guard<std::mutex> lock(p_.networks_mu_);
      for (const std::string& n : held_) {
        if (--p_.networks_in_use_[n] == 0) p_.networks_in_use_.erase(n);
      }
    }
    Apply(const Apply&) = delete;
    Apply& operator=(const Apply&) = delete;

    ApplyChangeResponse Run() {
      ApplyChangeResponse r;
      r.warnings = p_.warnings_;
      r.health = "unknown";
      r.status = Redact(Dispatch(&r.health));
      Finish(&r);
      RecordDigest(&r);
      return r;
    }

    // What the instances run, by digest (InstanceRecord::image_digest): the
    // image they were made from, as the engine holds it now.
    void RecordDigest(ApplyChangeResponse* r) {
      if (r->instances.empty() || spec_.image.empty()) return;
      auto image = c_.InspectImage(spec_.image);
      if (!image.ok()) return;
      const std::string digest = ImageDigestOf(*image, spec_.image);
      for (InstanceRecord& i : r->instances) i.image_digest = digest;
    }

   private:
    Status Dispatch(std::string* health) {
      const Change& ch = req_.change;
      if (!ValidName(agent_)) return Status::Invalid("docker: invalid agent name '" + agent_ + "'");
      if (ch.action == Action::kNoOp) return Status::Ok();
      Step(ch.action == Action::kDelete ? "remove" : "deploy");
      if (ch.action == Action::kDelete) {
        for (const InstanceRef& ref : ch.prior) {
          Status st = RemoveOwned(ref.id.empty() ? ref.name : ref.id);
          if (!st.ok()) return st;
        }
        Status st = p_.secret_files_.Remove(p_.target_.name, scoped_);
        if (!st.ok()) return st;
        st = ReclaimVolumes();
        if (!st.ok()) return st;
        std::vector<std::string> networks;
        if (auto recorded = ContainerSpecFromJson(ch.desired); recorded.ok()) {
          ScopeResourceNames(&*recorded, env_);
          for (const Network& n : recorded->networks) networks.push_back(n.name);
        }
        return RemoveUnusedNetworks(networks);
      }
      auto spec = ContainerSpecFromJson(ch.desired);
      if (!spec.ok()) return spec.status().WithContext("agent " + agent_);
      spec_ = std::move(*spec);
      ScopeResourceNames(&spec_, env_);  // networks and volumes: the environment's names
      ctx_.agent = agent_;
      ctx_.environment = env_;
      ctx_.spec_hash = ch.desired_hash;
      ctx_.revision = req_.revision;
      ctx_.publish_address = p_.docker_.publish_address;
      ctx_.network = p_.docker_.network;
      if (!spec_.secret_files.empty() && p_.local_engine_) {
        ctx_.secret_files_dir = p_.secret_files_.Dir(p_.target_.name, scoped_);
      }
      // Checked before touching anything so that a missing secret changes nothing.
      auto body = BuildCreateBody(spec_, ctx_, req_.secret_values);
      if (!body.ok()) return body.status().WithContext("agent " + agent_);

      Status st = EnsureImage();
      if (!st.ok()) return st;
      for (int i = 0; i < spec_.replicas; ++i) {
        st = CheckNameNotForeign(ContainerName(scoped_, i));
        if (!st.ok()) return st;
      }
      // Before any container is stopped: a foreign network or volume changes
      // nothing (networks are all checked before any is created).
      st = CheckNetworks();
      if (!st.ok()) return st;
      st = EnsureVolumes();
      if (!st.ok()) return st;
      st = EnsureNetworks();
      if (!st.ok()) return st;
      if (!spec_.secret_files.empty()) {
        st = p_.secret_files_.Write(p_.target_.name, scoped_, spec_.secret_files,
                                    req_.secret_values);
        if (!st.ok()) return st.WithContext("agent " + agent_);
      }
      bool start_first = spec_.strategy == StrategyType::kStartFirst && !ch.prior.empty();
      int fixed = spec_.host_port;
      for (const ExtraPort& port : spec_.ports) fixed = fixed != 0 ? fixed : port.host_port;
      if (start_first && fixed != 0) {
        Progress("host port " + std::to_string(fixed) +
                 " is fixed, so old and new cannot run side by side: using recreate");
        start_first = false;
      }
      st = start_first ? StartFirst(health) : Recreate(health);
      if (!st.ok()) return st;
      if (spec_.secret_files.empty()) {
        st = p_.secret_files_.Remove(p_.target_.name, scoped_);
        if (!st.ok()) return st;
      }
      return RemoveUnusedNetworks(DroppedNetworks());
    }

    // The networks the spec before this change listed and the new one does
    // not (from the field-level diff: "networks.<name>.aliases"), by their
    // environment's names (spec_ is scoped already).
    std::vector<std::string> DroppedNetworks() const {
      std::set<std::string> now;
      for (const Network& n : spec_.networks) now.insert(n.name);
      std::vector<std::string> out;
      const std::string prefix = "networks.", suffix = ".aliases";
      for (const FieldChange& f : req_.change.fields) {
        if (!f.before || f.path.size() <= prefix.size() + suffix.size() ||
            f.path.rfind(prefix, 0) != 0 ||
            f.path.compare(f.path.size() - suffix.size(), suffix.size(), suffix) != 0) {
          continue;
        }
        std::string name =
            f.path.substr(prefix.size(), f.path.size() - prefix.size() - suffix.size());
        name = ScopedName(env_, name);
        if (now.count(name) == 0) out.push_back(name);
      }
      return out;
    }

    // The labels of a network inspect answer.
    static const json& NetworkLabels(const json& n) {
      static const json kEmpty = json::object();
      return n.contains("Labels") && n["Labels"].is_object() ? n["Labels"] : kEmpty;
    }

    // Ours: managed-by, kLabelNetwork naming it, and this Target's
    // environment (another environment's network, or the plain tree's, is
    // foreign here).
    bool OwnedNetwork(const json& n, const std::string& name) const {
      const json& labels = NetworkLabels(n);
      return labels.value(kLabelManagedBy, "") == kManagedByValue &&
             labels.value(kLabelNetwork, "") == name && EnvironmentOf(labels) == env_;
    }

    // The network called exactly `name` (the engine also answers for an id
    // prefix), or kNotFound.
    Result<json> FindNetwork(const std::string& name) {
      auto n = c_.InspectNetwork(name);
      if (n.ok() && n->value("Name", "") != name) {
        return Status::NotFound("docker: no network named " + name);
      }
      return n;
    }

    // kConflict when a network of the spec exists without our labels.
    Status CheckNetworks() {
      for (const Network& n : spec_.networks) {
        auto found = FindNetwork(n.name);
        if (!found.ok()) {
          if (found.status().code() == Code::kNotFound) continue;
          return found.status();
        }
        if (!OwnedNetwork(*found, n.name)) {
          return Status::Conflict(
              "network '" + n.name + "' already exists and is not managed by reconcile for " +
              EnvironmentPhrase(env_) + " (no " + kLabelManagedBy + "=" + kManagedByValue +
              " and " + kLabelNetwork + "=" + n.name + " labels" +
              (env_.empty() ? std::string(", or it carries ") + kLabelEnvironment
                            : std::string(", or no ") + kLabelEnvironment + "=" + env_) +
              "); nothing was changed: use another network name in spec.networks, run on "
              "that network with the Target's docker.network, or remove it yourself");
        }
      }
      return Status::Ok();
    }

    // Creates the networks of the spec that do not exist yet. Serialized per
    // provider: the engine may create two networks of one name when asked
    // at the same time.
    Status EnsureNetworks() {
      std::lock_guard<std::mutex> lock(p_.networks_mu_);
      for (const Network& n : spec_.networks) {
        // Held until this change ends: a prune running beside it keeps it.
        ++p_.networks_in_use_[n.name];
        held_.push_back(n.name);
        auto found = FindNetwork(n.name);
        if (found.ok()) {
          if (OwnedNetwork(*found, n.name)) continue;
          return CheckNetworks();  // became foreign meanwhile: the same error
        }
        if (found.status().code() != Code::kNotFound) return found.status();
        Progress("creating network " + n.name);
        Status st = c_.CreateNetwork(BuildNetworkBody(n.name, env_));
        if (st.code() == Code::kConflict) {
          if (Status owned = CheckNetworks(); !owned.ok()) return owned;
          continue;
        }
        if (!st.ok()) return st.WithContext("agent " + agent_ + ": network " + n.name);
      }
      return Status::Ok();
    }

    // Removes each of `names` that carries our labels and has no container
    // attached; keeps (and says so) the others.
    Status RemoveUnusedNetworks(const std::vector<std::string>& names) {
      std::lock_guard<std::mutex> lock(p_.networks_mu_);
      for (const std::string& name : names) {
        auto found = FindNetwork(name);
        if (!found.ok()) {
          if (found.status().code() == Code::kNotFound) continue;
          return found.status();
        }
        if (!OwnedNetwork(*found, name)) {
          Progress("keeping network " + name + ": reconcile did not create it");
          continue;
        }
        if (p_.networks_in_use_.count(name) != 0) {
          Progress("keeping network " + name + ": another agent is being applied on it");
          continue;
        }
        const json attached = found->contains("Containers") ? (*found)["Containers"] : json();
        if (attached.is_object() && !attached.empty()) {
          Progress("keeping network " + name + ": " + std::to_string(attached.size()) +
                   " container(s) still attached");
          continue;
        }
        Progress("removing network " + name + " (no agent uses it any more)");
        Status st = c_.RemoveNetwork(found->value("Id", name));
        if (!st.ok() && st.code() != Code::kNotFound) {
          Progress("keeping network " + name + ": " + st.message());
        }
      }
      return Status::Ok();
    }

    // Joins the container `id` to the agent networks it is not on yet.
    Status ConnectNetworks(const std::string& id) {
      std::vector<Network> wanted = NetworksToConnect(spec_, ctx_);
      if (wanted.empty()) return Status::Ok();
      auto c = c_.InspectContainer(id);
      if (!c.ok()) return c.status();
      const json* on = nullptr;
      if (c->contains("NetworkSettings") && (*c)["NetworkSettings"].is_object() &&
          (*c)["NetworkSettings"].contains("Networks") &&
          (*c)["NetworkSettings"]["Networks"].is_object()) {
        on = &(*c)["NetworkSettings"]["Networks"];
      }
      for (const Network& n : wanted) {
        if (on != nullptr && on->contains(n.name)) continue;
        Status st = c_.ConnectNetwork(n.name, BuildConnectBody(id, n, agent_));
        if (!st.ok()) return st.WithContext("agent " + agent_ + ": joining network " + n.name);
      }
      return Status::Ok();
    }

    // Stops and removes the prior instances, then creates and starts the new ones.
    Status Recreate(std::string* health) {
      for (const InstanceRef& ref : req_.change.prior) {
        Status st = RemoveOwned(ref.id.empty() ? ref.name : ref.id);
        if (!st.ok()) return st;
      }
      std::vector<std::string> ids;
      for (int i = 0; i < spec_.replicas; ++i) {
        auto id = CreateAndStart(ContainerName(scoped_, i));
        if (!id.ok()) return id.status();
        ids.push_back(*id);
      }
      for (const std::string& id : ids) {
        Status st = WaitHealthy(id, health);
        if (!st.ok() && st.code() != Code::kFailed) return st;  // e.g. the engine went away
        if (!st.ok()) {
          *health = "unhealthy";
          return Status::Failed("agent " + agent_ + " did not become healthy: " + st.message());
        }
      }
      return Status::Ok();
    }

    // Per replica: start "<name>-next", wait for health, then swap it in.
    Status StartFirst(std::string* health) {
      std::set<std::string> kept;
      for (int i = 0; i < spec_.replicas; ++i) {
        const std::string name = ContainerName(scoped_, i);
        const std::string next = name + "-next";
        Status st = CheckNameNotForeign(next);
        if (!st.ok()) return st;
        auto id = CreateAndStart(next);
        if (!id.ok()) return id.status();
        st = WaitHealthy(*id, health);
        if (!st.ok()) {
          if (st.code() == Code::kFailed) *health = "unhealthy";
          Status removed = RemoveOwned(*id);
          std::string cleanup =
              removed.ok() ? "" : " (removing the new container failed: " + removed.message() + ")";
          if (st.code() != Code::kFailed) {
            return Status(st.code(),
                          st.message() + "; the previous version keeps serving" + cleanup);
          }
          return Status::Failed("agent " + agent_ + " did not become healthy: " + st.message() +
                                "; the previous version keeps serving" + cleanup);
        }
        st = RemoveOwned(name);
        if (!st.ok()) return st;
        st = c_.RenameContainer(*id, name);
        if (!st.ok()) return st;
        kept.insert(*id);
      }
      for (const InstanceRef& ref : req_.change.prior) {
        if (kept.count(ref.id) != 0) continue;
        Status st = RemoveOwned(ref.id.empty() ? ref.name : ref.id);
        if (!st.ok()) return st;
      }
      return Status::Ok();
    }

    Status EnsureImage() {
      auto img = c_.InspectImage(spec_.image);
      if (img.ok()) return Status::Ok();
      if (img.status().code() != Code::kNotFound) return img.status();
      Progress("pulling image " + spec_.image);
      std::string auth;
      if (const auto& creds = req_.pull_credentials) {
        auth = RegistryAuthHeader(creds->server, creds->username, creds->password);
      }
      Status st = c_.PullImage(spec_.image, auth);
      if (st.ok()) return st;
      Code code = st.code() == Code::kUnavailable ? Code::kUnavailable : Code::kFailed;
      return Status(code, "agent " + agent_ + ": image " + spec_.image +
                              " is not present and could not be pulled: " + st.message());
    }

    // Creates the named volumes that do not exist yet, labelled as ours. One
    // that exists must carry our managed-by label (any agent's: a volume may
    // be shared); otherwise kConflict and nothing is changed.
    Status EnsureVolumes() {
      for (const Mount& m : spec_.mounts) {
        if (m.type != "volume") continue;
        auto v = c_.InspectVolume(m.source);
        if (v.ok()) {
          const json& labels =
              v->contains("Labels") && (*v)["Labels"].is_object() ? (*v)["Labels"] : json::object();
          if (labels.value(kLabelManagedBy, "") != kManagedByValue) {
            return Status::Conflict("volume '" + m.source +
                                    "' already exists and is not managed by reconcile (no " +
                                    kLabelManagedBy + "=" + kManagedByValue +
                                    " label); nothing was changed: use another volume name, or "
                                    "remove or relabel that volume yourself");
          }
          if (EnvironmentOf(labels) != env_) {
            return Status::Conflict(
                "volume '" + m.source + "' belongs to " + EnvironmentPhrase(EnvironmentOf(labels)) +
                ", not " + EnvironmentPhrase(env_) +
                "; nothing was changed: use another volume name, or remove it yourself");
          }
          continue;
        }
        if (v.status().code() != Code::kNotFound) return v.status();
        Progress("creating volume " + m.source);
        Status st = c_.CreateVolume(BuildVolumeBody(m.source, agent_, env_));
        if (!st.ok()) return st.WithContext("agent " + agent_ + ": volume " + m.source);
      }
      return Status::Ok();
    }

    // After a delete: removes the named volumes whose reclaim policy is
    // delete in the recorded spec (change.desired), only when they carry our
    // labels for this agent. A volume still in use by another agent's
    // container is kept (and said so).
    Status ReclaimVolumes() {
      if (!req_.change.desired->is_object()) return Status::Ok();
      auto spec = ContainerSpecFromJson(req_.change.desired);
      if (!spec.ok()) return Status::Ok();  // nothing we can read: remove nothing
      ScopeResourceNames(&*spec, env_);
      std::set<std::string> done;
      for (const Mount& m : spec->mounts) {
        if (m.type != "volume" || !m.reclaim_delete || !done.insert(m.source).second) continue;
        auto v = c_.InspectVolume(m.source);
        if (!v.ok()) {
          if (v.status().code() == Code::kNotFound) continue;
          return v.status();
        }
        const json& labels =
            v->contains("Labels") && (*v)["Labels"].is_object() ? (*v)["Labels"] : json::object();
        if (labels.value(kLabelManagedBy, "") != kManagedByValue ||
            labels.value(kLabelAgent, "") != agent_ || EnvironmentOf(labels) != env_) {
          Progress("keeping volume " + m.source + ": it is not labelled as this agent's");
          continue;
        }
        Progress("deleting volume " + m.source + " (reclaim: delete)");
        Status st = c_.RemoveVolume(m.source);
        if (st.code() == Code::kConflict) {
          Progress("keeping volume " + m.source + ": another container still uses it");
          continue;
        }
        if (!st.ok() && st.code() != Code::kNotFound) return st;
      }
      return Status::Ok();
    }

    // kConflict when `name` is held by a container reconcile does not manage,
    // or by one managed for another agent.
    Status CheckNameNotForeign(const std::string& name) {
      auto c = c_.InspectContainer(name);
      if (!c.ok()) return c.status().code() == Code::kNotFound ? Status::Ok() : c.status();
      return OwnedByAgent(*c, name);
    }

    Status OwnedByAgent(const json& inspect, const std::string& name) {
      if (!IsManaged(inspect)) {
        return Status::Conflict("container name '" + name +
                                "' is already used by a container reconcile does not manage (id " +
                                ShortId(IdOf(inspect)) + "); rename or remove it");
      }
      if (std::string env = Label(inspect, kLabelEnvironment); env != env_) {
        return Status::Conflict("container name '" + name + "' is already used by " +
                                EnvironmentPhrase(env) + " (id " + ShortId(IdOf(inspect)) +
                                "), not " + EnvironmentPhrase(env_) + "; nothing was changed");
      }
      std::string owner = Label(inspect, kLabelAgent);
      if (owner != agent_) {
        return Status::Conflict("container name '" + name + "' is already used by agent '" + owner +
                                "' (id " + ShortId(IdOf(inspect)) + ")");
      }
      return Status::Ok();
    }

    // Creates (or adopts, when a container of ours with the same spec hash is
    // left from an earlier attempt) and starts the container `name`.
    Result<std::string> CreateAndStart(const std::string& name) {
      auto body = BuildCreateBody(spec_, ctx_, req_.secret_values);
      if (!body.ok()) return body.status();
      Progress("creating container " + name);
      std::string id;
      // A name in use by a container the engine is still creating (a create
      // sent by an earlier attempt that was killed) is a conflict that
      // inspect cannot see yet: wait a little for it to appear.
      constexpr int kAttempts = 6;
      for (int attempt = 0; attempt < kAttempts && id.empty(); ++attempt) {
        auto created = c_.CreateContainer(name, *body);
        if (created.ok()) {
          id = *created;
          break;
        }
        if (created.status().code() != Code::kConflict || attempt == kAttempts - 1) {
          if (spec_.gpus != 0 && created.status().code() != Code::kUnavailable) {
            return GpuRefused(created.status(), "");
          }
          return created.status();
        }
        auto existing = c_.InspectContainer(name);
        if (!existing.ok()) {
          if (existing.status().code() != Code::kNotFound) return existing.status();
          if (req_.stop.stop_requested()) return Status::Cancelled("stopped");
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
          continue;
        }
        Status st = OwnedByAgent(*existing, name);
        if (!st.ok()) return st;
        if (Label(*existing, kLabelSpecHash) == ctx_.spec_hash &&
            Label(*existing, kLabelRevision) == ctx_.revision) {
          id = IdOf(*existing);  // left by an earlier attempt: adopt it
          break;
        }
        st = RemoveOwned(IdOf(*existing));
        if (!st.ok()) return st;
      }
      Status st = ConnectNetworks(id);
      if (st.ok()) st = c_.StartContainer(id);
      if (!st.ok()) {
        // Created but never ran: removed, so that nothing is left half-made.
        Status removed = c_.RemoveContainer(id, /*force=*/true);
        std::string cleanup = removed.ok() || removed.code() == Code::kNotFound
                                  ? ""
                                  : " (removing the container failed: " + removed.message() + ")";
        if (spec_.gpus != 0) return GpuRefused(st, cleanup);
        return Status(st.code(), st.message() + cleanup);
      }
      return id;
    }

    // An engine that refuses a container asking for GPUs (Engine 20.10
    // without the NVIDIA runtime: "could not select device driver"): kFailed,
    // not retried, naming the agent and the field.
    Status GpuRefused(const Status& st, const std::string& cleanup) const {
      return Status::Failed(
          "agent " + agent_ + ": spec.resources.gpus: the engine refused the GPU request (" +
          (spec_.gpus < 0 ? std::string("all GPUs") : std::to_string(spec_.gpus) + " GPU(s)") +
          "): " + st.message() +
          "; GPUs need a GPU and the NVIDIA container toolkit on the engine's host" + cleanup);
    }

    // Stops and removes a container after checking it carries our labels.
    // A container that no longer exists counts as removed.
    Status RemoveOwned(const std::string& id_or_name) {
      auto c = c_.InspectContainer(id_or_name);
      if (!c.ok()) return c.status().code() == Code::kNotFound ? Status::Ok() : c.status();
      if (!IsManaged(*c)) {
        return Status::Conflict("refusing to remove container '" + id_or_name +
                                "': it does not carry " + kLabelManagedBy + "=" + kManagedByValue);
      }
      if (std::string env = Label(*c, kLabelEnvironment); env != env_) {
        return Status::Conflict("refusing to remove container '" + id_or_name +
                                "': it belongs to " + EnvironmentPhrase(env) + ", not " +
                                EnvironmentPhrase(env_));
      }
      if (Label(*c, kLabelAgent) != agent_) {
        return Status::Conflict("refusing to remove container '" + id_or_name +
                                "': it belongs to agent '" + Label(*c, kLabelAgent) + "', not '" +
                                agent_ + "'");
      }
      std::string id = IdOf(*c);
      Progress("removing container " + ShortId(id));
      Status st = c_.StopContainer(id, StopTimeoutOf(*c));  // its stopGracePeriod
      if (!st.ok() && st.code() != Code::kNotFound) return st;
      st = c_.RemoveContainer(id, /*force=*/false);
      if (!st.ok() && st.code() != Code::kNotFound) return st;
      return Status::Ok();
    }

    // Fails with the exit code and the last log lines when the container is
    // not running.
    Status NotRunning(const std::string& id, const RunState& s) {
      std::string msg = "container " + ShortId(id) + " is not running (state " + s.status +
                        ", exit code " + std::to_string(s.exit_code) + ")";
      auto logs = c_.ContainerLogs(id, 10);
      if (logs.ok() && !logs->empty()) {
        std::string tail = *logs;
        if (tail.size() > 1024) tail = tail.substr(tail.size() - 1024);
        while (!tail.empty() && tail.back() == '\n') tail.pop_back();
        msg += "; last log lines:\n" + tail;
      }
      return Status::Failed(msg);
    }

    // Waits `d`, or returns kCancelled as soon as a stop is requested.
    Status Pause(milliseconds d) {
      if (InterruptibleSleep(d, req_.stop)) return Status::Ok();
      return Status::Cancelled("agent " + agent_ + ": stopped while waiting for health");
    }

    Status WaitHealthy(const std::string& id, std::string* health) {
      // A step of its own; what follows (swapping in, the next replica) is
      // deploying again.
      Step("health wait");
      struct StepBack {
        Apply& a;
        ~StepBack() { a.Step("deploy"); }
      } step_back{*this};
      // Waiting holds no apply slot (ApplyChangeRequest::waiting).
      struct Waiting {
        const std::function<void(bool)>& fn;
        explicit Waiting(const std::function<void(bool)>& f) : fn(f) {
          if (fn) fn(true);
        }
        ~Waiting() {
          if (fn) fn(false);
        }
      } waiting(req_.waiting);
      if (!spec_.health_check) {
        auto deadline = std::chrono::steady_clock::now() + kRunningWait;
        for (;;) {
          auto c = c_.InspectContainer(id);
          if (!c.ok()) return c.status();
          RunState s = StateOf(*c);
          if (s.running) {
            // A process that dies at once would still show as running here;
            // look once more after a short pause.
            if (Status st = Pause(kRunningPoll); !st.ok()) return st;
            c = c_.InspectContainer(id);
            if (!c.ok()) return c.status();
            s = StateOf(*c);
            if (s.running) return Status::Ok();
          }
          if (Stopped(s)) return NotRunning(id, s);
          if (std::chrono::steady_clock::now() > deadline) {
            return Status::Failed("container " + ShortId(id) + " did not start within " +
                                  std::to_string(kRunningWait.count() / 1000) + "s");
          }
          if (Status st = Pause(kRunningPoll); !st.ok()) return st;
        }
      }
      const HealthCheck& hc = *spec_.health_check;
      if (hc.kind == HealthCheck::Kind::kExec) return WaitEngineHealthy(id, health);
      const bool tcp = hc.kind == HealthCheck::Kind::kTcp;
      const int port = hc.port != 0 ? hc.port : spec_.port;
      const std::string& host = p_.access_host_;
      if (hc.start_period_ms > 0) {
        if (Status st = Pause(milliseconds(hc.start_period_ms)); !st.ok()) return st;
      }
      std::string last = "no answer yet";
      for (int attempt = 1; attempt <= hc.retries; ++attempt) {
        Progress("waiting for health (" + std::to_string(attempt) + "/" +
                 std::to_string(hc.retries) + ")");
        auto c = c_.InspectContainer(id);
        if (!c.ok()) return c.status();
        RunState s = StateOf(*c);
        if (Stopped(s)) return NotRunning(id, s);
        int host_port = PublishedPort(*c, port);
        if (host_port == 0) {
          last = "port " + std::to_string(port) + "/tcp is not published to the host";
        } else if (tcp) {
          Status probe = TcpProbe(host, host_port, milliseconds(hc.timeout_ms),
                                  std::min(milliseconds(hc.timeout_ms), kTcpHold));
          if (probe.ok()) {
            *health = "healthy";
            return Status::Ok();
          }
          last = "tcp " + std::to_string(port) + ": " + probe.message();
        } else {
          auto res = HttpGet(host, host_port, hc.path, milliseconds(hc.timeout_ms));
          if (res.ok() && res->status >= 200 && res->status < 400) {
            *health = "healthy";
            return Status::Ok();
          }
          last = res.ok() ? "GET " + hc.path + " answered " + std::to_string(res->status)
                          : res.status().message();
        }
        if (attempt < hc.retries) {
          if (Status st = Pause(milliseconds(hc.interval_ms)); !st.ok()) return st;
        }
      }
      return Status::Failed("health check failed " + std::to_string(hc.retries) +
                            " times; last: " + last);
    }

    // healthCheck.exec: the engine runs the command (the create body's
    // Healthcheck); this waits, cancellably, until State.Health says healthy
    // (Ok) or unhealthy (kFailed, quoting the last check's output), or the
    // time the engine needs for start period + retries has passed.
    Status WaitEngineHealthy(const std::string& id, std::string* health) {
      const HealthCheck& hc = *spec_.health_check;
      const milliseconds budget(hc.start_period_ms + hc.retries * (hc.interval_ms + hc.timeout_ms) +
                                hc.interval_ms + 5000);
      const auto deadline = std::chrono::steady_clock::now() + budget;
      const milliseconds poll = std::min(milliseconds(hc.interval_ms), kRunningPoll);
      Progress("waiting for the engine's health check (" + hc.exec[0] + ")");
      EngineHealth last;
      for (;;) {
        auto c = c_.InspectContainer(id);
        if (!c.ok()) return c.status();
        RunState s = StateOf(*c);
        if (Stopped(s)) return NotRunning(id, s);
        EngineHealth h = HealthOf(*c);
        if (h.status == "healthy") {
          *health = "healthy";
          return Status::Ok();
        }
        if (h.status == "unhealthy") {
          return Status::Failed(
              "the engine's health check (exec) failed " + std::to_string(h.failing_streak) +
              " times in a row; last: " + (h.last.empty() ? "no output" : h.last));
        }
        if (h.status.empty() && s.running) {
          return Status::Failed("the engine holds no health check for container " + ShortId(id));
        }
        if (!h.last.empty()) last = h;
        if (std::chrono::steady_clock::now() > deadline) {
          return Status::Failed("the engine's health check (exec) did not pass within " +
                                FormatSeconds(budget) +
                                "; last: " + (last.last.empty() ? "no check finished" : last.last));
        }
        if (Status st = Pause(poll); !st.ok()) return st;
      }
    }

    static std::string FormatSeconds(milliseconds d) {
      return std::to_string((d.count() + 999) / 1000) + "s";
    }

    void Finish(ApplyChangeResponse* r) {
      auto list = c_.ListContainers({std::string(kLabelManagedBy) + "=" + kManagedByValue,
                                     std::string(kLabelAgent) + "=" + agent_});
      if (!list.ok()) return;
      auto instances = ParseContainerList(*list, p_.access_host_, env_);
      if (!instances.ok()) return;
      for (const ObservedInstance& o : *instances) {
        if (o.agent != agent_) continue;
        r->instances.push_back(InstanceRecord{o.id, o.name, o.endpoint, {}});
      }
    }

    // Secret values go only into the create body; should the engine echo
    // one back in an error, it is masked.
    Status Redact(Status st) const {
      if (st.ok()) return st;
      std::string m = st.message();
      std::map<std::string, std::string> secrets = req_.secret_values;
      if (req_.pull_credentials) secrets["registry password"] = req_.pull_credentials->password;
      for (const auto& [name, value] : secrets) {
        if (value.size() < 3) continue;
        for (std::size_t at = m.find(value); at != std::string::npos; at = m.find(value, at)) {
          m.replace(at, value.size(), "<redacted>");
        }
      }
      return Status(st.code(), m);
    }

    void Progress(const std::string& message) {
      if (req_.progress) req_.progress(message);
    }

    // Names the step that begins (ApplyChangeRequest::step), once per change
    // of step.
    void Step(const std::string& step) {
      if (step == step_) return;
      step_ = step;
      if (req_.step) req_.step(step);
    }

    static bool ValidName(const std::string& s) {
      if (s.empty() || s.size() > 200) return false;
      for (char ch : s) {
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-';
        if (!ok) return false;
      }
      return true;
    }

    DockerProvider& p_;
    const EngineClient c_;  // the provider's, bound to this call's stop token
    const ApplyChangeRequest& req_;
    std::string agent_;
    std::string env_;     // Target::environment ("" for a plain tree)
    std::string scoped_;  // ScopedName(env_, agent_): the containers' base name
    ContainerSpec spec_;
    CreateContext ctx_;
    std::vector<std::string> held_;  // networks counted in p_.networks_in_use_
    std::string step_;               // the step named last (Step)
  };

  Target target_;
  EngineClient client_;
  DockerTarget docker_;  // target_.settings, decoded
  std::string access_host_;
  bool local_engine_ = false;  // unix socket: the engine shares this host's files
  std::vector<std::string> warnings_;
  SecretFileStore secret_files_;
  std::mutex networks_mu_;  // EnsureNetworks / RemoveUnusedNetworks
  // Networks that changes in progress are creating containers on (by name:
  // how many), never removed meanwhile. Guarded by networks_mu_.
  std::map<std::string, int> networks_in_use_;
};

bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost") return true;
  boost::system::error_code ec;
  auto addr = boost::asio::ip::make_address(host, ec);
  return !ec && addr.is_loopback();
}

bool IsUnspecified(const std::string& address) {
  return address.empty() || address == "0.0.0.0" || address == "::";
}

}  // namespace

Result<TlsConfig> TlsConfigForTarget(const Target& target, const TlsConfig& environment) {
  const DockerTarget docker = DockerTargetFromSettings(target.settings);
  auto address = ParseEngineAddress(docker.host);
  if (!address.ok()) return address.status();
  if (address->kind == EngineAddress::Kind::kUnix) return TlsConfig{};
  TlsConfig t = environment;
  if (docker.tls) {
    const DockerTls& tls = *docker.tls;
    t.enabled = true;
    t.verify = tls.verify;
    if (!tls.server_name.empty()) t.server_name = tls.server_name;
    for (auto [field, name, out] : {std::tuple<const char*, const std::string*, std::string*>{
                                        "caFile", &tls.ca_file, &t.ca_file},
                                    {"certFile", &tls.cert_file, &t.cert_file},
                                    {"keyFile", &tls.key_file, &t.key_file}}) {
      if (name->empty()) continue;
      if (target.secrets_dir.empty()) {
        return Status::Invalid(std::string("docker.tls.") + field + " '" + *name +
                               "' is a file under the secrets folder, but none is set (set "
                               "--secrets DIR)");
      }
      *out = (std::filesystem::path(target.secrets_dir) / *name).string();
    }
  }
  if (!t.enabled && !IsLoopbackHost(address->host)) {
    t.enabled = true;  // never plain HTTP off this machine
    t.verify = true;
  }
  return t;
}

std::string AgentAccessHost(const DockerTarget& docker) {
  const std::string& publish = docker.publish_address;
  auto address = ParseEngineAddress(docker.host);
  if (address.ok() && address->kind == EngineAddress::Kind::kTcp) {
    if (!IsUnspecified(publish) && !IsLoopbackHost(publish)) return publish;
    return address->host;
  }
  if (publish.empty() || publish == "0.0.0.0") return "127.0.0.1";
  if (publish == "::") return "::1";
  return publish;
}

Result<std::unique_ptr<Provider>> NewDockerProvider(const Target& target) {
  auto tls = TlsConfigForTarget(target, TlsConfigFromEnvironment());
  if (!tls.ok()) return tls.status().WithContext("target " + target.name);
  const std::string host = DockerTargetFromSettings(target.settings).host;
  auto transport = NewEngineTransport(host, *tls);
  if (!transport.ok()) return transport.status().WithContext("target " + target.name);
  std::vector<std::string> warnings;
  if (tls->enabled && !tls->verify) {
    warnings.push_back("TLS VERIFICATION IS OFF for " + host + " (target " + target.name +
                       ", docker.tls.verify: false): anyone on the network path can impersonate "
                       "the engine and read every secret sent to it; give docker.tls.caFile and "
                       "remove verify: false");
  }
  auto provider = std::make_unique<DockerProvider>(
      target, std::shared_ptr<HttpTransport>(std::move(*transport)), nullptr, std::move(warnings));
  if (!tls->enabled) {
    // The event watch speaks plain HTTP only: a TLS engine's drift is found
    // by the --drift-interval scan.
    provider->watch = [host, environment = target.environment](DriftNoticeFn on_notice) {
      auto w = NewEventWatch(host, environment, std::move(on_notice));
      return w.ok() ? std::move(*w) : nullptr;
    };
  }
  return std::unique_ptr<Provider>(std::move(provider));
}

std::unique_ptr<Provider> NewDockerProviderWithTransport(const Target& target,
                                                         std::shared_ptr<HttpTransport> transport,
                                                         Clock* clock,
                                                         std::vector<std::string> warnings) {
  return std::make_unique<DockerProvider>(target, std::move(transport), clock, std::move(warnings));
}

void RegisterDockerProvider(ProviderRegistry& registry) {
  ProviderDefinition d;
  d.create = [](const Target& target) { return NewDockerProvider(target); };
  d.validate_target = ValidateDockerTarget;
  d.validate_agent = ValidateDockerAgent;
  d.agent_spec_as_json = false;  // reads the typed Agent: cheap for large trees
  registry.Register("docker", std::move(d));
}

}  // namespace reconcile::docker
