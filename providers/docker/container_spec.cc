#include "docker/container_spec.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <tuple>

#include "reconcile/spec.h"

namespace reconcile::docker {
namespace {

using nlohmann::json;

// Splits "<number><suffix>"; the number may have a fraction. False if the
// number part is missing or malformed.
bool SplitNumber(const std::string& s, double* number, std::string* suffix) {
  std::size_t i = 0;
  bool digits = false, dot = false;
  while (i < s.size()) {
    char c = s[i];
    if (c >= '0' && c <= '9') {
      digits = true;
    } else if (c == '.' && !dot) {
      dot = true;
    } else {
      break;
    }
    ++i;
  }
  if (!digits || i > 32) return false;
  *number = std::strtod(s.substr(0, i).c_str(), nullptr);
  *suffix = s.substr(i);
  return std::isfinite(*number);
}

Status Bad(const std::string& field, const std::string& what) {
  return Status::Invalid("docker: spec field '" + field + "': " + what);
}

std::string Scalar(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

Result<int> IntField(const json& spec, const char* key, int lo, int hi, int fallback) {
  if (!spec.contains(key) || spec[key].is_null()) return fallback;
  const json& v = spec[key];
  if (!v.is_number_integer()) return Bad(key, "expected an integer");
  auto n = v.get<std::int64_t>();
  if (n < lo || n > hi) {
    return Bad(key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  }
  return static_cast<int>(n);
}

Result<std::vector<std::string>> StringList(const json& spec, const char* key) {
  std::vector<std::string> out;
  if (!spec.contains(key) || spec[key].is_null()) return out;
  if (!spec[key].is_array()) return Bad(key, "expected a list of strings");
  for (const json& v : spec[key]) {
    if (!v.is_string()) return Bad(key, "expected a list of strings");
    out.push_back(v.get<std::string>());
  }
  return out;
}

Result<std::map<std::string, std::string>> StringMap(const json& spec, const char* key) {
  std::map<std::string, std::string> out;
  if (!spec.contains(key) || spec[key].is_null()) return out;
  if (!spec[key].is_object()) return Bad(key, "expected a map");
  for (auto it = spec[key].begin(); it != spec[key].end(); ++it) {
    if (it.value().is_object() || it.value().is_array()) {
      return Bad(std::string(key) + "." + it.key(), "expected a scalar");
    }
    out[it.key()] = Scalar(it.value());
  }
  return out;
}

Result<std::int64_t> DurationField(const json& hc, const char* key, std::int64_t fallback) {
  const std::string ms_key = std::string(key) + "Ms";
  const json* v = nullptr;
  if (hc.contains(key) && !hc[key].is_null()) v = &hc[key];
  if (v == nullptr && hc.contains(ms_key) && !hc[ms_key].is_null()) v = &hc[ms_key];
  if (v == nullptr) return fallback;
  if (v->is_number_integer()) {
    auto n = v->get<std::int64_t>();
    if (n < 0 || n > 24LL * 3600 * 1000)
      return Bad(std::string("healthCheck.") + key, "out of range");
    return n;
  }
  if (v->is_string()) {
    auto d = ParseDurationMs(v->get<std::string>());
    if (!d.ok()) return Bad(std::string("healthCheck.") + key, d.status().message());
    return d;
  }
  return Bad(std::string("healthCheck.") + key, "expected a duration");
}

int PortOf(const json& container, int private_port) {
  if (!container.contains("Ports") || !container["Ports"].is_array()) return 0;
  int fallback = 0;
  for (const json& p : container["Ports"]) {
    if (!p.is_object() || !p.contains("PublicPort") || !p["PublicPort"].is_number_integer()) {
      continue;
    }
    int pub = p["PublicPort"].get<int>();
    int priv = p.contains("PrivatePort") && p["PrivatePort"].is_number_integer()
                   ? p["PrivatePort"].get<int>()
                   : 0;
    if (private_port != 0 && priv == private_port) return pub;
    if (fallback == 0) fallback = pub;
  }
  return private_port == 0 ? fallback : 0;
}

// ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$ : network, alias and secret file names
// (also safe as a path segment: no '/', never "." or "..").
bool ValidObjectName(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  auto alnum = [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
  };
  return alnum(s[0]) && std::all_of(s.begin(), s.end(), [&](char ch) {
           return alnum(ch) || ch == '_' || ch == '.' || ch == '-';
         });
}

std::string StringAt(const json& o, const char* key) {
  if (o.is_object() && o.contains(key) && o[key].is_string()) return o[key].get<std::string>();
  return "";
}

}  // namespace

Result<std::int64_t> ParseMemoryBytes(const std::string& s) {
  return ParseSizeBytes(s, 4 * 1048576);
}

Result<std::int64_t> ParseSizeBytes(const std::string& s, std::int64_t minimum) {
  double n = 0;
  std::string suffix;
  if (!SplitNumber(s, &n, &suffix)) return Status::Invalid("memory '" + s + "': not a quantity");
  static const std::map<std::string, double> kUnits = {{"", 1},
                                                       {"b", 1},
                                                       {"B", 1},
                                                       {"k", 1e3},
                                                       {"K", 1e3},
                                                       {"M", 1e6},
                                                       {"G", 1e9},
                                                       {"T", 1e12},
                                                       {"Ki", 1024.0},
                                                       {"Mi", 1048576.0},
                                                       {"Gi", 1073741824.0},
                                                       {"Ti", 1099511627776.0},
                                                       {"KiB", 1024.0},
                                                       {"MiB", 1048576.0},
                                                       {"GiB", 1073741824.0},
                                                       {"KB", 1e3},
                                                       {"MB", 1e6},
                                                       {"GB", 1e9}};
  auto it = kUnits.find(suffix);
  if (it == kUnits.end()) {
    return Status::Invalid("memory '" + s + "': unknown unit '" + suffix +
                           "' (use Ki, Mi, Gi, Ti, k, M, G or T)");
  }
  double bytes = n * it->second;
  if (bytes < static_cast<double>(minimum) || bytes < 1) {
    return Status::Invalid("memory '" + s + "': below the engine's minimum of " +
                           (minimum >= 1048576 ? std::to_string(minimum / 1048576) + "Mi"
                                               : std::to_string(minimum) + " bytes"));
  }
  if (bytes > 9.0e18) return Status::Invalid("memory '" + s + "': too large");
  return static_cast<std::int64_t>(std::llround(bytes));
}

Result<std::int64_t> ParseNanoCpus(const std::string& s) {
  double n = 0;
  std::string suffix;
  if (!SplitNumber(s, &n, &suffix)) return Status::Invalid("cpu '" + s + "': not a number");
  double cores = 0;
  if (suffix.empty()) {
    cores = n;
  } else if (suffix == "m") {
    cores = n / 1000.0;
  } else {
    return Status::Invalid("cpu '" + s + "': expected cores (\"0.5\") or millicores (\"500m\")");
  }
  if (cores <= 0) return Status::Invalid("cpu '" + s + "': must be more than 0");
  if (cores > 1024) return Status::Invalid("cpu '" + s + "': too large");
  return static_cast<std::int64_t>(std::llround(cores * 1e9));
}

Result<std::int64_t> ParseDurationMs(const std::string& s) {
  std::optional<std::int64_t> ms = ParseDuration(s);
  if (!ms) return Status::Invalid("duration '" + s + "': expected <digits><ms|s|m|h>");
  if (*ms > 24LL * 3600000) return Status::Invalid("duration '" + s + "': too long");
  return *ms;
}

std::string ContainerName(const std::string& agent, int index) {
  return index == 0 ? agent : agent + "-" + std::to_string(index);
}

std::string EndpointUrl(const std::string& address, int port) {
  std::string host = address.find(':') != std::string::npos ? "[" + address + "]" : address;
  return "http://" + host + ":" + std::to_string(port);
}

Result<ContainerSpec> ContainerSpecFromJson(const json& spec) {
  if (!spec.is_object()) return Status::Invalid("docker: the desired spec is not an object");
  ContainerSpec c;
  if (!spec.contains("image") || !spec["image"].is_string() ||
      spec["image"].get<std::string>().empty()) {
    return Bad("image", "expected a non-empty image reference");
  }
  c.image = spec["image"].get<std::string>();

  auto port = IntField(spec, "port", 0, 65535, 0);
  if (!port.ok()) return port.status();
  c.port = *port;
  auto host_port = IntField(spec, "hostPort", 0, 65535, 0);
  if (!host_port.ok()) return host_port.status();
  c.host_port = *host_port;
  auto replicas = IntField(spec, "replicas", 0, 100, 1);
  if (!replicas.ok()) return replicas.status();
  c.replicas = *replicas;
  if (c.host_port != 0 && c.replicas > 1) {
    return Bad("hostPort", "a fixed host port allows only one replica on one Docker engine");
  }

  if (spec.contains("ports") && !spec["ports"].is_null()) {
    const json& ps = spec["ports"];
    if (!ps.is_object()) return Bad("ports", "expected a map of \"<port>/<protocol>\"");
    for (auto it = ps.begin(); it != ps.end(); ++it) {
      const std::string field = "ports." + it.key();
      ExtraPort p;
      const std::string& key = it.key();
      auto slash = key.find('/');
      p.protocol = slash == std::string::npos ? "" : key.substr(slash + 1);
      std::string number = key.substr(0, slash);
      bool digits =
          !number.empty() && number.size() <= 5 &&
          std::all_of(number.begin(), number.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
      p.container_port = digits ? std::atoi(number.c_str()) : 0;
      if (p.container_port < 1 || p.container_port > 65535 ||
          (p.protocol != "tcp" && p.protocol != "udp")) {
        return Bad(field, "expected <1-65535>/tcp or <1-65535>/udp");
      }
      if (p.protocol == "tcp" && p.container_port == c.port) {
        return Bad(field, "the main port is published with hostPort");
      }
      const json& v = it.value();
      if (!v.is_object()) return Bad(field, "expected a map");
      auto hp = IntField(v, "hostPort", 0, 65535, 0);
      if (!hp.ok()) return Bad(field + ".hostPort", hp.status().message());
      p.host_port = *hp;
      if (v.contains("hostIP") && !v["hostIP"].is_null()) {
        if (!v["hostIP"].is_string()) return Bad(field + ".hostIP", "expected an address");
        p.host_ip = v["hostIP"].get<std::string>();
        for (char ch : p.host_ip) {
          bool okc = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
                     (ch >= 'A' && ch <= 'F') || ch == '.' || ch == ':';
          if (!okc) return Bad(field + ".hostIP", "expected an IP address");
        }
      }
      if (p.host_port != 0 && c.replicas > 1) {
        return Bad(field + ".hostPort",
                   "a fixed host port allows only one replica on one Docker engine");
      }
      if (v.contains("publish")) {
        if (!v["publish"].is_boolean()) return Bad(field + ".publish", "expected a boolean");
        p.publish = v["publish"].get<bool>();
      }
      c.ports.push_back(std::move(p));
    }
  }

  if (spec.contains("publish") && !spec["publish"].is_null()) {
    if (!spec["publish"].is_boolean()) return Bad("publish", "expected a boolean");
    c.publish = spec["publish"].get<bool>();
  }

  if (spec.contains("networks") && !spec["networks"].is_null()) {
    const json& ns = spec["networks"];
    if (!ns.is_object()) return Bad("networks", "expected a map of network names");
    for (auto it = ns.begin(); it != ns.end(); ++it) {
      Network n;
      n.name = it.key();
      if (!ValidObjectName(n.name)) return Bad("networks." + n.name, "not a network name");
      const json& v = it.value();
      if (!v.is_object()) return Bad("networks." + n.name, "expected a map");
      if (v.contains("aliases") && !v["aliases"].is_null()) {
        if (!v["aliases"].is_array()) return Bad("networks." + n.name + ".aliases", "a list");
        for (const json& a : v["aliases"]) {
          if (!a.is_string() || !ValidObjectName(a.get<std::string>())) {
            return Bad("networks." + n.name + ".aliases", "expected DNS names");
          }
          n.aliases.push_back(a.get<std::string>());
        }
      }
      c.networks.push_back(std::move(n));
    }
  }

  if (spec.contains("secretFiles") && !spec["secretFiles"].is_null()) {
    const json& fs = spec["secretFiles"];
    if (!fs.is_object()) return Bad("secretFiles", "expected a map of secret names");
    for (auto it = fs.begin(); it != fs.end(); ++it) {
      const std::string field = "secretFiles." + it.key();
      SecretFileMount f;
      f.name = it.key();
      if (!ValidObjectName(f.name)) return Bad(field, "not a secret file name");
      const json& v = it.value();
      if (!v.is_object()) return Bad(field, "expected a map");
      for (const char* key : {"target", "mode"}) {
        if (v.contains(key) && !v[key].is_string()) return Bad(field + "." + key, "a string");
      }
      f.target = v.value("target", "/run/secrets/" + f.name);
      if (f.target.size() < 2 || f.target[0] != '/' || f.target.find(':') != std::string::npos) {
        return Bad(field + ".target", "must be an absolute path other than '/'");
      }
      std::string mode = v.value("mode", "0400");
      if (mode.size() == 4 && mode[0] == '0') mode.erase(0, 1);
      if (mode.size() != 3 ||
          !std::all_of(mode.begin(), mode.end(), [](char ch) { return ch >= '0' && ch <= '7'; })) {
        return Bad(field + ".mode", "expected an octal mode such as 0400");
      }
      f.mode = (mode[0] - '0') * 64 + (mode[1] - '0') * 8 + (mode[2] - '0');
      c.secret_files.push_back(std::move(f));
    }
  }

  if (spec.contains("restart") && !spec["restart"].is_null()) {
    if (!spec["restart"].is_string()) return Bad("restart", "expected a string");
    std::string r = spec["restart"].get<std::string>();
    if (r.rfind("on-failure:", 0) == 0) {
      std::string n = r.substr(11);
      bool digits = !n.empty() && n.size() <= 4 &&
                    std::all_of(n.begin(), n.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
      if (!digits || std::atoi(n.c_str()) < 1) return Bad("restart", "on-failure:N needs N >= 1");
      c.restart = "on-failure";
      c.restart_retries = std::atoi(n.c_str());
    } else if (r == "no" || r == "always" || r == "unless-stopped" || r == "on-failure") {
      c.restart = r;
    } else {
      return Bad("restart", "expected no, always, unless-stopped or on-failure[:N]");
    }
  }

  if (spec.contains("stopSignal") && !spec["stopSignal"].is_null()) {
    if (!spec["stopSignal"].is_string()) return Bad("stopSignal", "expected a signal name");
    c.stop_signal = spec["stopSignal"].get<std::string>();
    if (c.stop_signal.size() < 4 || c.stop_signal.rfind("SIG", 0) != 0 ||
        !std::all_of(c.stop_signal.begin(), c.stop_signal.end(), [](char ch) {
          return (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        })) {
      return Bad("stopSignal", "expected a signal name such as SIGINT");
    }
  }
  if (spec.contains("stopGracePeriod") && !spec["stopGracePeriod"].is_null()) {
    if (!spec["stopGracePeriod"].is_string()) return Bad("stopGracePeriod", "expected a duration");
    auto ms = ParseDurationMs(spec["stopGracePeriod"].get<std::string>());
    if (!ms.ok()) return Bad("stopGracePeriod", ms.status().message());
    if (*ms % 1000 != 0 || *ms > 3600000)
      return Bad("stopGracePeriod", "whole seconds, at most 1h");
    c.stop_timeout = static_cast<int>(*ms / 1000);
  }
  if (spec.contains("user") && !spec["user"].is_null()) {
    if (!spec["user"].is_string() || spec["user"].get<std::string>().empty()) {
      return Bad("user", "expected a user[:group]");
    }
    c.user = spec["user"].get<std::string>();
  }
  for (auto [key, out] : {std::pair<const char*, std::vector<std::string>*>{"capAdd", &c.cap_add},
                          {"capDrop", &c.cap_drop}}) {
    auto caps = StringList(spec, key);
    if (!caps.ok()) return caps.status();
    for (const std::string& cap : *caps) {
      bool name = !cap.empty() && std::all_of(cap.begin(), cap.end(), [](char ch) {
        return (ch >= 'A' && ch <= 'Z') || ch == '_';
      });
      if (!name) return Bad(key, "expected capability names such as NET_ADMIN");
    }
    *out = *caps;
  }
  if (spec.contains("readOnlyRootFilesystem") && !spec["readOnlyRootFilesystem"].is_null()) {
    if (!spec["readOnlyRootFilesystem"].is_boolean()) {
      return Bad("readOnlyRootFilesystem", "expected a boolean");
    }
    c.read_only_rootfs = spec["readOnlyRootFilesystem"].get<bool>();
  }
  if (spec.contains("hostname") && !spec["hostname"].is_null()) {
    if (!spec["hostname"].is_string()) return Bad("hostname", "expected a DNS label");
    c.hostname = spec["hostname"].get<std::string>();
    bool label = !c.hostname.empty() && c.hostname.size() <= 63 && c.hostname.front() != '-' &&
                 c.hostname.back() != '-' &&
                 std::all_of(c.hostname.begin(), c.hostname.end(), [](char ch) {
                   return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-';
                 });
    if (!label) return Bad("hostname", "expected a DNS label");
  }

  auto command = StringList(spec, "command");
  if (!command.ok()) return command.status();
  c.command = *command;
  auto args = StringList(spec, "args");
  if (!args.ok()) return args.status();
  c.args = *args;
  auto env = StringMap(spec, "env");
  if (!env.ok()) return env.status();
  c.env = *env;
  auto secret_env = StringMap(spec, "secretEnv");
  if (!secret_env.ok()) return secret_env.status();
  for (const auto& [name, ref] : *secret_env) c.secret_env.push_back(name);
  auto labels = StringMap(spec, "labels");
  if (!labels.ok()) return labels.status();
  c.labels = *labels;

  if (spec.contains("volumes") && !spec["volumes"].is_null()) {
    const json& vs = spec["volumes"];
    if (!vs.is_object()) return Bad("volumes", "expected a map of mount targets");
    for (auto it = vs.begin(); it != vs.end(); ++it) {
      const std::string field = "volumes." + it.key();
      const json& v = it.value();
      Mount m;
      m.target = it.key();
      if (m.target.size() < 2 || m.target[0] != '/' || m.target.find(':') != std::string::npos) {
        return Bad(field, "the target must be an absolute path other than '/'");
      }
      if (!v.is_object()) return Bad(field, "expected a map");
      m.type = v.value("type", "");
      if (m.type != "volume" && m.type != "bind" && m.type != "tmpfs") {
        return Bad(field + ".type", "expected volume, bind or tmpfs");
      }
      if (v.contains("source") && !v["source"].is_string()) {
        return Bad(field + ".source", "expected a string");
      }
      m.source = v.value("source", "");
      if (m.type != "tmpfs" && m.source.empty()) return Bad(field + ".source", "missing");
      if (m.type == "bind" && m.source[0] != '/') {
        return Bad(field + ".source", "a bind source must be an absolute host path");
      }
      if (m.type == "volume" && m.source[0] == '/') {
        return Bad(field + ".source", "a volume source must be a volume name");
      }
      if (v.contains("readOnly") && !v["readOnly"].is_boolean()) {
        return Bad(field + ".readOnly", "expected a boolean");
      }
      m.read_only = v.value("readOnly", false);
      if (v.contains("reclaim")) {
        if (!v["reclaim"].is_string()) return Bad(field + ".reclaim", "expected a string");
        std::string r = v["reclaim"].get<std::string>();
        if (r != "retain" && r != "delete") return Bad(field + ".reclaim", "retain or delete");
        m.reclaim_delete = r == "delete";
      }
      if (v.contains("size") && !v["size"].is_null()) {
        if (!v["size"].is_string()) return Bad(field + ".size", "expected a size");
        auto n = ParseSizeBytes(v["size"].get<std::string>(), 1);
        if (!n.ok()) return Bad(field + ".size", n.status().message());
        m.tmpfs_bytes = *n;
      }
      c.mounts.push_back(std::move(m));
    }
  }

  if (spec.contains("resources") && !spec["resources"].is_null()) {
    const json& r = spec["resources"];
    if (!r.is_object()) return Bad("resources", "expected a map");
    if (r.contains("cpu") && !r["cpu"].is_null()) {
      if (!r["cpu"].is_string() && !r["cpu"].is_number())
        return Bad("resources.cpu", "expected a number");
      std::string cpu = Scalar(r["cpu"]);
      if (!cpu.empty()) {
        auto n = ParseNanoCpus(cpu);
        if (!n.ok()) return Bad("resources.cpu", n.status().message());
        c.nano_cpus = *n;
      }
    }
    if (r.contains("memory") && !r["memory"].is_null()) {
      if (!r["memory"].is_string() && !r["memory"].is_number_integer()) {
        return Bad("resources.memory", "expected a quantity");
      }
      std::string mem = Scalar(r["memory"]);
      if (!mem.empty()) {
        auto n = ParseMemoryBytes(mem);
        if (!n.ok()) return Bad("resources.memory", n.status().message());
        c.memory_bytes = *n;
      }
    }
    if (r.contains("gpus") && !r["gpus"].is_null()) {
      const json& g = r["gpus"];
      if (g.is_string() && g.get<std::string>() == "all") {
        c.gpus = -1;
      } else if (g.is_number_integer() && g.get<std::int64_t>() >= 1 &&
                 g.get<std::int64_t>() <= 64) {
        c.gpus = g.get<int>();
      } else {
        return Bad("resources.gpus", "expected all or a number of GPUs from 1 to 64");
      }
    }
  }

  if (spec.contains("healthCheck") && !spec["healthCheck"].is_null()) {
    const json& h = spec["healthCheck"];
    if (!h.is_object()) return Bad("healthCheck", "expected a map");
    HealthCheck hc;
    int kinds = 0;
    for (const char* key : {"path", "exec", "tcp"}) kinds += h.contains(key) && !h[key].is_null();
    if (kinds > 1) return Bad("healthCheck", "path, exec and tcp are exclusive");
    if (h.contains("exec") && !h["exec"].is_null()) {
      auto exec = StringList(h, "exec");
      if (!exec.ok()) return Bad("healthCheck.exec", exec.status().message());
      if (exec->empty() ||
          std::any_of(exec->begin(), exec->end(), [](const std::string& x) { return x.empty(); })) {
        return Bad("healthCheck.exec", "expected a non-empty command");
      }
      hc.kind = HealthCheck::Kind::kExec;
      hc.exec = *exec;
    }
    if (h.contains("tcp") && !h["tcp"].is_null()) {
      auto tcp = IntField(h, "tcp", 1, 65535, 0);
      if (!tcp.ok()) return Bad("healthCheck.tcp", tcp.status().message());
      hc.kind = HealthCheck::Kind::kTcp;
    }
    if (hc.kind != HealthCheck::Kind::kHttp && h.contains("port") && !h["port"].is_null()) {
      return Bad("healthCheck.port", "only with the HTTP check (path)");
    }
    if (h.contains("path") && !h["path"].is_null()) {
      if (!h["path"].is_string()) return Bad("healthCheck.path", "expected a string");
      hc.path = h["path"].get<std::string>();
      if (hc.path.empty() || hc.path[0] != '/') hc.path = "/" + hc.path;
      for (char ch : hc.path) {
        if (static_cast<unsigned char>(ch) <= ' ' || ch == 0x7f) {
          return Bad("healthCheck.path", "must not hold spaces or control characters");
        }
      }
    }
    auto hport = IntField(h, hc.kind == HealthCheck::Kind::kTcp ? "tcp" : "port", 0, 65535, 0);
    if (!hport.ok()) return Bad("healthCheck.port", hport.status().message());
    hc.port = *hport;
    auto retries = IntField(h, "retries", 0, 100000, hc.retries);
    if (!retries.ok()) return Bad("healthCheck.retries", retries.status().message());
    hc.retries = std::max(1, *retries);
    auto interval = DurationField(h, "interval", hc.interval_ms);
    if (!interval.ok()) return interval.status();
    hc.interval_ms = *interval;
    auto timeout = DurationField(h, "timeout", hc.timeout_ms);
    if (!timeout.ok()) return timeout.status();
    hc.timeout_ms = std::max<std::int64_t>(1, *timeout);
    auto start = DurationField(h, "startPeriod", hc.start_period_ms);
    if (!start.ok()) return start.status();
    hc.start_period_ms = *start;
    if (hc.kind != HealthCheck::Kind::kExec && hc.port == 0 && c.port == 0)
      return Bad("healthCheck", "needs a port (port or healthCheck.port)");
    c.health_check = hc;
  }

  if (spec.contains("strategy") && !spec["strategy"].is_null()) {
    const json& s = spec["strategy"];
    std::string type;
    if (s.is_string()) {
      type = s.get<std::string>();
    } else if (s.is_object() && s.contains("type") && s["type"].is_string()) {
      type = s["type"].get<std::string>();
    } else if (!s.is_object()) {
      return Bad("strategy", "expected a map");
    }
    if (type == "start-first") {
      c.strategy = StrategyType::kStartFirst;
    } else if (type.empty() || type == "recreate") {
      c.strategy = StrategyType::kRecreate;
    } else {
      return Bad("strategy.type", "expected recreate or start-first, got '" + type + "'");
    }
  }
  return c;
}

Result<json> BuildCreateBody(const ContainerSpec& spec, const CreateContext& context,
                             const std::map<std::string, std::string>& secret_values) {
  json env = json::array();
  std::map<std::string, std::string> all = spec.env;
  for (const std::string& name : spec.secret_env) {
    auto it = secret_values.find(name);
    if (it == secret_values.end()) {
      return Status::Invalid("docker: secretEnv '" + name + "' has no resolved value");
    }
    all[name] = it->second;
  }
  for (const auto& [k, v] : all) env.push_back(k + "=" + v);

  json labels = json::object();
  for (const auto& [k, v] : spec.labels) labels[k] = v;
  labels[kLabelManagedBy] = kManagedByValue;
  labels[kLabelAgent] = context.agent;
  labels[kLabelSpecHash] = context.spec_hash;
  labels[kLabelRevision] = context.revision;
  if (!context.environment.empty()) labels[kLabelEnvironment] = context.environment;
  if (spec.port != 0) labels[kLabelPort] = std::to_string(spec.port);

  json body = {{"Image", spec.image}, {"Env", env}, {"Labels", labels}};
  if (!spec.hostname.empty()) {
    body["Hostname"] = spec.hostname;
  } else if (!context.agent.empty()) {
    body["Hostname"] = context.agent;
  }
  if (!spec.user.empty()) body["User"] = spec.user;
  if (!spec.stop_signal.empty()) body["StopSignal"] = spec.stop_signal;
  if (spec.stop_timeout) body["StopTimeout"] = *spec.stop_timeout;
  if (spec.health_check && spec.health_check->kind == HealthCheck::Kind::kExec) {
    const HealthCheck& hc = *spec.health_check;
    json test = json::array({"CMD"});
    for (const std::string& arg : hc.exec) test.push_back(arg);
    constexpr std::int64_t kNanosPerMs = 1000000;
    body["Healthcheck"] = {{"Test", test},
                           {"Interval", hc.interval_ms * kNanosPerMs},
                           {"Timeout", hc.timeout_ms * kNanosPerMs},
                           {"Retries", hc.retries},
                           {"StartPeriod", hc.start_period_ms * kNanosPerMs}};
  }
  if (!spec.command.empty()) body["Entrypoint"] = spec.command;
  if (!spec.args.empty()) body["Cmd"] = spec.args;

  json policy = {{"Name", spec.restart}};
  if (spec.restart_retries != 0) policy["MaximumRetryCount"] = spec.restart_retries;
  json host = {{"RestartPolicy", policy}};
  json exposed = json::object();
  json bindings = json::object();
  if (spec.port != 0) {
    std::string key = std::to_string(spec.port) + "/tcp";
    exposed[key] = json::object();
    if (spec.publish) {
      bindings[key] =
          json::array({{{"HostIp", context.publish_address},
                        {"HostPort", spec.host_port == 0 ? "" : std::to_string(spec.host_port)}}});
    }
  }
  if (spec.health_check && spec.health_check->port != 0 && spec.health_check->port != spec.port) {
    std::string key = std::to_string(spec.health_check->port) + "/tcp";
    exposed[key] = json::object();
    bindings[key] = json::array({{{"HostIp", context.publish_address}, {"HostPort", ""}}});
  }
  for (const ExtraPort& p : spec.ports) {
    std::string key = std::to_string(p.container_port) + "/" + p.protocol;
    exposed[key] = json::object();
    if (!p.publish) continue;
    bindings[key] =
        json::array({{{"HostIp", p.host_ip.empty() ? context.publish_address : p.host_ip},
                      {"HostPort", p.host_port == 0 ? "" : std::to_string(p.host_port)}}});
  }
  if (!exposed.empty()) body["ExposedPorts"] = exposed;
  if (!bindings.empty()) host["PortBindings"] = bindings;
  if (spec.nano_cpus != 0) host["NanoCpus"] = spec.nano_cpus;
  if (spec.memory_bytes != 0) host["Memory"] = spec.memory_bytes;
  if (!context.network.empty()) {
    host["NetworkMode"] = context.network;
  } else if (!spec.networks.empty()) {
    const Network& first = spec.networks.front();
    host["NetworkMode"] = first.name;
    json aliases = json::array({context.agent});
    for (const std::string& a : first.aliases) aliases.push_back(a);
    body["NetworkingConfig"] = {{"EndpointsConfig", {{first.name, {{"Aliases", aliases}}}}}};
  }
  if (!spec.cap_add.empty()) host["CapAdd"] = spec.cap_add;
  if (!spec.cap_drop.empty()) host["CapDrop"] = spec.cap_drop;
  if (spec.read_only_rootfs) host["ReadonlyRootfs"] = true;
  if (spec.gpus != 0) {
    host["DeviceRequests"] = json::array({{{"Driver", ""},
                                           {"Count", spec.gpus},
                                           {"Capabilities", json::array({json::array({"gpu"})})}}});
  }
  if (!spec.secret_files.empty() && context.secret_files_dir.empty()) {
    return Status::Invalid(
        "docker: secretFiles need a local Docker Engine (unix socket): the files are "
        "bind-mounted from this host");
  }
  if (!spec.mounts.empty() || !spec.secret_files.empty()) {
    json mounts = json::array();
    for (const SecretFileMount& f : spec.secret_files) {
      mounts.push_back({{"Type", "bind"},
                        {"Source", context.secret_files_dir + "/" + f.name},
                        {"Target", f.target},
                        {"ReadOnly", true}});
    }
    for (const Mount& m : spec.mounts) {
      json j = {{"Type", m.type}, {"Target", m.target}, {"ReadOnly", m.read_only}};
      if (!m.source.empty()) j["Source"] = m.source;
      if (m.type == "tmpfs" && m.tmpfs_bytes != 0) {
        j["TmpfsOptions"] = {{"SizeBytes", m.tmpfs_bytes}};
      }
      mounts.push_back(std::move(j));
    }
    host["Mounts"] = std::move(mounts);
  }
  body["HostConfig"] = host;
  return body;
}

json BuildVolumeBody(const std::string& name, const std::string& agent,
                     const std::string& environment) {
  json labels = {{kLabelManagedBy, kManagedByValue}, {kLabelAgent, agent}, {kLabelVolume, name}};
  if (!environment.empty()) labels[kLabelEnvironment] = environment;
  return {{"Name", name}, {"Driver", "local"}, {"Labels", labels}};
}

void ScopeResourceNames(ContainerSpec* spec, const std::string& environment) {
  if (environment.empty()) return;
  for (Network& n : spec->networks) n.name = ScopedName(environment, n.name);
  for (Mount& m : spec->mounts) {
    if (m.type == "volume" && !m.source.empty()) m.source = ScopedName(environment, m.source);
  }
}

std::string EnvironmentOf(const json& labels) {
  if (!labels.is_object()) return "";
  auto it = labels.find(kLabelEnvironment);
  return it != labels.end() && it->is_string() ? it->get<std::string>() : "";
}

std::vector<Network> NetworksToConnect(const ContainerSpec& spec, const CreateContext& context) {
  if (spec.networks.empty() || !context.network.empty()) return spec.networks;
  return std::vector<Network>(spec.networks.begin() + 1, spec.networks.end());
}

json BuildNetworkBody(const std::string& name, const std::string& environment) {
  json labels = {{kLabelManagedBy, kManagedByValue}, {kLabelNetwork, name}};
  if (!environment.empty()) labels[kLabelEnvironment] = environment;
  return {{"Name", name}, {"Driver", "bridge"}, {"CheckDuplicate", true}, {"Labels", labels}};
}

json BuildConnectBody(const std::string& container, const Network& network,
                      const std::string& agent) {
  json aliases = json::array({agent});
  for (const std::string& a : network.aliases) aliases.push_back(a);
  return {{"Container", container}, {"EndpointConfig", {{"Aliases", aliases}}}};
}

std::string ImageDigestOf(const json& image_inspect, const std::string& reference) {
  const std::size_t at = reference.find("@sha256:");
  if (at != std::string::npos) return reference;
  // The repository: the reference without a tag (a ':' after the last '/').
  std::string repository = reference;
  const std::size_t slash = reference.rfind('/');
  const std::size_t colon = reference.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    repository = reference.substr(0, colon);
  }
  if (!image_inspect.is_object()) return "";
  if (auto it = image_inspect.find("RepoDigests"); it != image_inspect.end() && it->is_array()) {
    for (const json& d : *it) {
      if (!d.is_string()) continue;
      const std::string digest = d.get<std::string>();
      if (digest.starts_with(repository + "@sha256:")) return digest;
    }
  }
  if (auto it = image_inspect.find("Id"); it != image_inspect.end() && it->is_string()) {
    const std::string id = it->get<std::string>();
    if (id.starts_with("sha256:")) return id;
  }
  return "";
}

Result<std::vector<ObservedInstance>> ParseContainerList(const json& list,
                                                         const std::string& publish_address,
                                                         const std::string& environment) {
  if (!list.is_array()) return Status::Invalid("docker: container list is not a JSON array");
  std::vector<ObservedInstance> out;
  for (const json& c : list) {
    if (!c.is_object()) continue;
    json labels = c.contains("Labels") && c["Labels"].is_object() ? c["Labels"] : json::object();
    if (StringAt(labels, kLabelManagedBy) != kManagedByValue) continue;
    if (EnvironmentOf(labels) != environment) continue;  // another environment's
    ObservedInstance o;
    o.id = StringAt(c, "Id");
    if (c.contains("Names") && c["Names"].is_array() && !c["Names"].empty() &&
        c["Names"][0].is_string()) {
      o.name = c["Names"][0].get<std::string>();
      if (!o.name.empty() && o.name[0] == '/') o.name.erase(0, 1);
    }
    o.agent = StringAt(labels, kLabelAgent);
    o.spec_hash = StringAt(labels, kLabelSpecHash);
    o.revision = StringAt(labels, kLabelRevision);
    o.image = StringAt(c, "Image");
    o.state = StringAt(c, "State");
    o.running = o.state == "running";
    // The engine's health check shows in the list's Status: "Up 3 minutes (healthy)".
    const std::string status = StringAt(c, "Status");
    if (status.find("(healthy)") != std::string::npos) {
      o.health = "healthy";
    } else if (status.find("(unhealthy)") != std::string::npos) {
      o.health = "unhealthy";
    } else if (status.find("(health: starting)") != std::string::npos) {
      o.health = "starting";
    }
    int private_port = std::atoi(StringAt(labels, kLabelPort).c_str());
    int public_port = PortOf(c, private_port);
    if (public_port != 0) o.endpoint = EndpointUrl(publish_address, public_port);
    out.push_back(std::move(o));
  }
  std::sort(out.begin(), out.end(), [](const ObservedInstance& a, const ObservedInstance& b) {
    return std::tie(a.agent, a.name, a.id) < std::tie(b.agent, b.name, b.id);
  });
  return out;
}

}  // namespace reconcile::docker
