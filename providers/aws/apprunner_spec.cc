#include "aws/apprunner_spec.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "aws/apprunner_provider.h"
#include "reconcile/config_checks.h"
#include "reconcile/observation.h"
#include "reconcile/spec.h"

namespace reconcile::aws {
namespace {

using checks::IsArn;
using checks::IsHttpUrl;
using checks::IsLowerDash;
using checks::IsNoSpace;
using checks::Suggest;
using nlohmann::json;
std::string Describe(const json& v) { return checks::DescribeJson(v); }

// --- JSON access that never throws. ---

const json* Member(const json& j, const std::string& key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

std::string StringMember(const json& j, const std::string& key) {
  const json* v = Member(j, key);
  return v && v->is_string() ? v->get<std::string>() : "";
}

std::string Shown(const std::string& s, std::size_t max = 80) {
  std::string out;
  for (char c : s.substr(0, max)) out += (static_cast<unsigned char>(c) < 0x20) ? '?' : c;
  return s.size() > max ? out + "..." : out;
}

// The model's RoleArn: arn:(aws|aws-us-gov|aws-cn|aws-iso|aws-iso-b):iam::<12
// digits>:(role|role/service-role)/[\w+=,.@\-/]{1,1000}, 29 to 1024 characters.
bool IsRoleArn(const std::string& s) {
  static const std::regex re(
      R"(arn:(aws|aws-us-gov|aws-cn|aws-iso|aws-iso-b):iam::[0-9]{12}:(role|role/service-role)/[\w+=,.@/-]{1,1000})");
  return s.size() >= 29 && s.size() <= 1024 && std::regex_match(s, re);
}
// The host of an http:// URL is loopback (127.0.0.0/8, ::1, localhost).
bool PlainHttpToLoopback(const std::string& url) {
  if (url.rfind("http://", 0) != 0) return true;
  std::string rest = url.substr(7);
  std::string host;
  if (!rest.empty() && rest[0] == '[') {
    auto close = rest.find(']');
    host = close == std::string::npos ? rest : rest.substr(1, close - 1);
  } else {
    host = rest.substr(0, rest.find_first_of(":/?#"));
  }
  std::transform(host.begin(), host.end(), host.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (host == "localhost" || host == "::1") return true;
  static const std::regex v4(R"(127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})");
  return std::regex_match(host, v4);
}

// --- CPU and memory. ---

const std::vector<std::string> kCpuUnits = {"256", "512", "1024", "2048", "4096"};
const std::vector<std::string> kCpuVcpu = {"0.25", "0.5", "1", "2", "4"};
const std::vector<std::string> kMemoryMb = {"512",  "1024", "2048",  "3072", "4096",
                                            "6144", "8192", "10240", "12288"};
const std::vector<std::string> kMemoryGb = {"0.5", "1", "2", "3", "4", "6", "8", "10", "12"};

bool In(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// A decimal number's canonical text ("0.50" -> "0.5", "1.0" -> "1"), or
// empty when `s` is not a plain decimal.
std::string CanonicalDecimal(const std::string& s) {
  static const std::regex re(R"([0-9]{1,6}(\.[0-9]{1,6})?)");
  if (!std::regex_match(s, re)) return "";
  std::string out = s;
  if (out.find('.') != std::string::npos) {
    while (out.back() == '0') out.pop_back();
    if (out.back() == '.') out.pop_back();
  }
  while (out.size() > 1 && out[0] == '0' && out[1] != '.') out.erase(0, 1);
  return out;
}

std::string NumberText(const json& v) {
  if (v.is_number_integer() || v.is_number_unsigned()) return std::to_string(v.get<std::int64_t>());
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (!std::isfinite(d) || d <= 0 || d > 1e6) return "";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6f", d);
    return CanonicalDecimal(buf);
  }
  return "";
}

std::string ForMessage(const std::string& agent_target) {
  return "Target '" + agent_target + "' is AWS App Runner";
}

std::string Join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

// --- Health checks. ---

// Whole seconds of a normalized duration ("2s", "1m"); nullopt when it is
// not a whole number of seconds.
std::optional<std::int64_t> WholeSeconds(const std::string& d) {
  auto ms = ParseDuration(d);
  if (!ms || *ms % 1000 != 0) return std::nullopt;
  return *ms / 1000;
}

// reconcile's defaults (model.h HealthCheck): a value equal to one counts as
// "not set", so App Runner's own default applies (docs/cloud-fields.md).
constexpr std::int64_t kDefaultIntervalSeconds = 1;
constexpr int kDefaultRetries = 30;

}  // namespace

std::optional<std::string> ImageRepositoryTypeOf(const std::string& image) {
  static const std::string repo =
      R"(((?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*))";
  static const std::string ref = R"((:[\w+=._:/@-]+|@[\w:]+)?)";
  static const std::regex ecr("[0-9]{12}\\.dkr\\.ecr\\.[a-z-]+-[0-9]\\.amazonaws\\.com/" + repo +
                              ref);
  static const std::regex ecr_public("public\\.ecr\\.aws/[^/\\s]+/" + repo + ref);
  if (image.size() > 1024) return std::nullopt;
  if (std::regex_match(image, ecr)) return "ECR";
  if (std::regex_match(image, ecr_public)) return "ECR_PUBLIC";
  return std::nullopt;
}

std::optional<std::string> AppRunnerCpuOfAgent(const std::string& cpu) {
  std::string c = cpu;
  if (c.size() > 1 && c.back() == 'm') {
    std::string milli = c.substr(0, c.size() - 1);
    static const std::regex digits("[0-9]{1,7}");
    if (!std::regex_match(milli, digits)) return std::nullopt;
    long m = std::stol(milli);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f", m / 1000.0);
    c = buf;
  }
  std::string canon = CanonicalDecimal(c);
  if (In(kCpuVcpu, canon)) return canon + " vCPU";
  if (In(kCpuUnits, canon)) return canon;
  return std::nullopt;
}

std::optional<std::string> AppRunnerMemoryOfAgent(const std::string& memory) {
  static const std::regex re(R"(([0-9]{1,15})(Ki|Mi|Gi|Ti|K|M|G|T)?)");
  std::smatch m;
  if (!std::regex_match(memory, m, re)) return std::nullopt;
  std::uint64_t n = std::stoull(m[1].str());
  std::string unit = m[2].str();
  std::uint64_t mib = 0;
  if (unit == "Mi") {
    mib = n;
  } else if (unit == "Gi") {
    mib = n * 1024;
  } else if (unit == "Ti") {
    mib = n * 1024 * 1024;
  } else if (unit == "Ki") {
    if (n % 1024 != 0) return std::nullopt;
    mib = n / 1024;
  } else if (unit.empty()) {
    if (n % (1024 * 1024) != 0) return std::nullopt;
    mib = n / (1024 * 1024);
  } else {
    return std::nullopt;  // K, M, G, T are powers of ten: no whole MB size
  }
  std::string text = std::to_string(mib);
  if (In(kMemoryMb, text)) return text;
  return std::nullopt;
}

std::optional<std::string> AppRunnerCpuOfTarget(const json& cpu) {
  std::string s = cpu.is_string() ? cpu.get<std::string>() : NumberText(cpu);
  if (In(kCpuUnits, s)) return s;
  // A bare small number is vCPU (1 -> "1 vCPU"): no CPU unit value is below 256.
  if (std::string canon = CanonicalDecimal(s); In(kCpuVcpu, canon)) return canon + " vCPU";
  static const std::regex vcpu(R"(([0-9.]+) ?(vCPU|vcpu))");
  std::smatch m;
  if (std::regex_match(s, m, vcpu)) {
    std::string canon = CanonicalDecimal(m[1].str());
    if (In(kCpuVcpu, canon)) return canon + " vCPU";
  }
  return std::nullopt;
}

std::optional<std::string> AppRunnerMemoryOfTarget(const json& memory) {
  std::string s = memory.is_string() ? memory.get<std::string>() : NumberText(memory);
  if (In(kMemoryMb, s)) return s;
  // A bare small number is GB (2 -> "2 GB"): no MB value is below 512.
  if (std::string canon = CanonicalDecimal(s); In(kMemoryGb, canon)) return canon + " GB";
  static const std::regex gb(R"(([0-9.]+) ?(GB|gb))");
  std::smatch m;
  if (std::regex_match(s, m, gb)) {
    std::string canon = CanonicalDecimal(m[1].str());
    if (In(kMemoryGb, canon)) return canon + " GB";
  }
  return std::nullopt;
}

std::string StartCommandOf(const json& spec) {
  const json* command = Member(spec, "command");
  if (!command || !command->is_array() || command->empty()) return "";
  std::vector<std::string> parts;
  for (const json* list : {command, Member(spec, "args")}) {
    if (!list || !list->is_array()) continue;
    for (const json& e : *list) {
      if (e.is_string()) parts.push_back(e.get<std::string>());
    }
  }
  return Join(parts, " ");
}

nlohmann::json AppRunnerTargetSchema() {
  json number_or_string = {{"oneOf", json::array({{{"type", "string"}, {"minLength", 1}},
                                                  {{"type", "number"}, {"exclusiveMinimum", 0}}})}};
  json cpu = number_or_string;
  cpu["description"] = "vCPU, e.g. 1024 or \"1 vCPU\".";
  json memory = number_or_string;
  memory["description"] = "Memory, e.g. 2048 or \"2 GB\".";
  auto str = [](const char* description, const char* pattern) {
    return json{{"type", "string"}, {"description", description}, {"pattern", pattern}};
  };
  return {{"type", "object"},
          {"description", "AWS App Runner."},
          {"additionalProperties", false},
          {"required", json::array({"region"})},
          {"properties",
           {{"region", str("AWS region, e.g. us-east-1.", "^[a-z0-9-]+$")},
            {"cpu", cpu},
            {"memory", memory},
            {"accessRoleArn", str("Role App Runner uses to pull images.", "^arn:\\S+$")},
            {"instanceRoleArn", str("Role of the running instances.", "^arn:\\S+$")},
            {"endpoint", str("Override of the API base URL.", "^https?://\\S+$")},
            {"authEndpoint",
             str("Override of the token / login / metadata URL.", "^https?://\\S+$")}}}};
}

ValidateTargetResponse ValidateAppRunnerTarget(const ValidateTargetRequest& request) {
  ValidateTargetResponse r;
  const std::string path = "spec.aws";
  auto error = [&](const std::string& field, const std::string& message) {
    r.diagnostics.push_back({Severity::kError, field, message});
  };
  const json& block = request.config;
  if (!block.is_object()) {
    error(path, "must be a map, got " + Describe(block));
    return r;
  }
  struct Field {
    const char* name;
    bool number_or_string;
    std::function<bool(const std::string&)> check;
    const char* what;
  };
  const char* url = "an http:// or https:// URL";
  const char* arn = "an IAM role ARN (arn:...)";
  const std::vector<Field> fields = {
      {"region", false, IsLowerDash, "an AWS region such as us-east-1"},
      {"cpu", true, nullptr, ""},
      {"memory", true, nullptr, ""},
      {"accessRoleArn", false, IsArn, arn},
      {"instanceRoleArn", false, IsArn, arn},
      {"endpoint", false, IsHttpUrl, url},
      {"authEndpoint", false, IsHttpUrl, url}};
  std::vector<std::string> names;
  for (const auto& f : fields) names.push_back(f.name);
  for (const auto& [key, value] : block.items()) {
    if (std::find(names.begin(), names.end(), key) != names.end()) continue;
    std::string message = "unknown field '" + Shown(key) + "'";
    std::string suggestion = Suggest(key, names);
    if (!suggestion.empty()) message += " (did you mean '" + suggestion + "'?)";
    error(path + "." + key, message);
  }
  if (!block.contains("region")) error(path + ".region", "required field is missing");
  for (const auto& f : fields) {
    const json* v = Member(block, f.name);
    if (!v) continue;
    const std::string field = path + "." + f.name;
    if (f.number_or_string) {
      if (v->is_number()) {
        double d = v->get<double>();
        if (!(d > 0) || !std::isfinite(d)) {
          error(field, "must be a positive number");
          continue;
        }
      } else if (!v->is_string()) {
        error(field, "must be a string or a number, got " + Describe(*v));
        continue;
      } else if (v->get<std::string>().empty()) {
        error(field, "invalid value '': must be a non-empty value");
        continue;
      }
      // App Runner accepts only the values of the model's Cpu / Memory shapes.
      bool cpu = std::string(f.name) == "cpu";
      auto mapped = cpu ? AppRunnerCpuOfTarget(*v) : AppRunnerMemoryOfTarget(*v);
      if (!mapped) {
        std::string shown = v->is_string() ? Shown(v->get<std::string>()) : v->dump();
        if (cpu) {
          error(field, "invalid value '" + shown + "': AWS App Runner offers " +
                           Join(kCpuUnits, ", ") + " (CPU units) or " + Join(kCpuVcpu, ", ") +
                           " vCPU");
        } else {
          error(field, "invalid value '" + shown + "': AWS App Runner offers " +
                           Join(kMemoryMb, ", ") + " (MB) or " + Join(kMemoryGb, ", ") + " GB");
        }
      }
      continue;
    }
    if (!v->is_string()) {
      error(field, "must be a string, got " + Describe(*v));
      continue;
    }
    const std::string s = v->get<std::string>();
    if (!f.check(s)) {
      error(field, "invalid value '" + Shown(s) + "': must be " + f.what);
      continue;
    }
    std::string name = f.name;
    if ((name == "accessRoleArn" || name == "instanceRoleArn") && !IsRoleArn(s)) {
      error(field, "invalid value '" + Shown(s) +
                       "': must be an IAM role ARN as App Runner takes it "
                       "(arn:aws:iam::<12-digit account>:role/NAME)");
    }
    if ((name == "endpoint" || name == "authEndpoint") && !PlainHttpToLoopback(s)) {
      error(field, "invalid value '" + Shown(s) +
                       "': plain http:// is allowed only to a loopback host (127.0.0.1, ::1, "
                       "localhost); use https://");
    }
  }
  return r;
}

ValidateAgentResponse ValidateAppRunnerAgent(const ValidateAgentRequest& request) {
  ValidateAgentResponse r;
  // The JSON spec, or (agent_spec_as_json false) the typed Agent normalized.
  json from_model;
  if (request.spec.is_null() && request.model != nullptr) {
    from_model = NormalizedSpec(*request.model, request.model->image);
  }
  const json& spec = request.spec.is_null() ? from_model : request.spec;
  const std::string c = ForMessage(request.target);
  // The loader shows "<field>: <message>" at the field's file:line:column.
  auto refuse = [&](const std::string& field, const std::string& why) {
    r.diagnostics.push_back({Severity::kError, field, c + ", " + why});
  };
  // The service is named ScopedName(environment, agent).
  const std::string agent = ScopedName(request.environment, request.agent);
  if (agent.size() < 4 || agent.size() > 40) {
    refuse("metadata.name",
           "whose service names have 4 to 40 characters; '" + Shown(agent) + "' has " +
               std::to_string(agent.size()) +
               (request.environment.empty()
                    ? std::string()
                    : " (environment '" + request.environment + "' + \"--\" + the agent's name)") +
               ": rename the agent");
  }
  const std::string image = StringMember(spec, "image");
  auto type = ImageRepositoryTypeOf(image);
  if (!type) {
    refuse("spec.image",
           "which runs images only from Amazon ECR (<account>.dkr.ecr.<region>.amazonaws.com/...) "
           "or ECR Public (public.ecr.aws/...); '" +
               Shown(image, 200) + "' is neither: push it to ECR");
  } else if (*type == "ECR" && StringMember(request.target_config, "accessRoleArn").empty()) {
    refuse("spec.image",
           "which pulls private ECR images ('" + Shown(image, 200) +
               "') with an access role (AuthenticationConfiguration.AccessRoleArn): set "
               "aws.accessRoleArn on the Target");
  }
  // command / args: one StartCommand line.
  const json* command = Member(spec, "command");
  const json* args = Member(spec, "args");
  bool has_command = command && command->is_array() && !command->empty();
  bool has_args = args && args->is_array() && !args->empty();
  if (has_args && !has_command) {
    refuse("spec.args",
           "which takes one StartCommand for the whole command line; it cannot keep the image's "
           "entrypoint and replace only its arguments: set spec.command too");
  }
  for (const auto& [name, list] : {std::pair{"command", command}, std::pair{"args", args}}) {
    if (!list || !list->is_array() || !has_command) continue;
    for (std::size_t i = 0; i < list->size(); ++i) {
      const json& e = (*list)[i];
      std::string s = e.is_string() ? e.get<std::string>() : "";
      bool bad = s.empty() || std::any_of(s.begin(), s.end(), [](char ch) {
                   return checks::IsSpace(ch) || ch == '"' || ch == '\'' || ch == '\\';
                 });
      if (bad) {
        refuse(std::string("spec.") + name + "[" + std::to_string(i) + "]",
               "whose StartCommand is one line, not an argument list; '" + Shown(s) +
                   "' cannot be passed as one argument");
      }
    }
  }
  if (const json* s = Member(spec, "secretEnv"); s && s->is_object()) {
    for (const auto& [name, ref] : s->items()) {
      refuse("spec.secretEnv." + name,
             "which takes secret variables only as ARNs of Secrets Manager secrets or SSM "
             "parameters (ImageConfiguration.RuntimeEnvironmentSecrets); a {file:}/{env:} "
             "reference is a value, and reconcile does not put a secret value into "
             "RuntimeEnvironmentVariables, which DescribeService returns");
    }
  }
  if (const json* s = Member(spec, "secretFiles"); s && s->is_object() && !s->empty()) {
    refuse("spec.secretFiles",
           "which mounts no files (the service model has no volumes); a secret reaches App "
           "Runner only as a variable from Secrets Manager or SSM");
  }
  int port = 0;
  if (const json* p = Member(spec, "port"); p && p->is_number_integer()) port = p->get<int>();
  if (const json* hp = Member(spec, "hostPort"); hp && hp->is_number_integer() && *hp != 0) {
    refuse("spec.hostPort",
           "which has no host ports: the service is reached at its ServiceUrl; remove hostPort");
  }
  if (const json* ports = Member(spec, "ports"); ports && ports->is_object()) {
    for (const auto& [key, value] : ports->items()) {
      refuse("spec.ports",
             "which routes traffic to one port only (ImageConfiguration.Port, the agent's port); "
             "a second port cannot be reached (containerPort " +
                 key + ")");
    }
  }
  if (const json* n = Member(spec, "networks"); n && n->is_object() && !n->empty()) {
    refuse("spec.networks",
           "which has no networks between services: each service is reached at its ServiceUrl, "
           "and NetworkConfiguration sets only VPC egress (EgressConfiguration) and public or "
           "VPC-only ingress");
  }
  if (const json* volumes = Member(spec, "volumes"); volumes && volumes->is_object()) {
    for (const auto& [target, v] : volumes->items()) {
      std::string kind = StringMember(v, "type");
      std::string why = kind == "bind"    ? "which has no host to bind-mount from"
                        : kind == "tmpfs" ? "which mounts no volumes, tmpfs included"
                                          : "which mounts no volumes (the service model has no "
                                            "volume or storage field)";
      refuse("spec.volumes", why + " (the volume at " + Shown(target) + ")");
    }
  }
  if (const json* rep = Member(spec, "replicas"); rep && rep->is_number_integer()) {
    long n = rep->get<long>();
    if (n > 25) {
      refuse("spec.replicas", "which keeps at most 25 provisioned instances (MinSize 1 to 25); " +
                                  std::to_string(n) + " is more");
    } else if (n != 1) {
      refuse("spec.replicas",
             "and this provider does not yet create the auto scaling configuration "
             "(CreateAutoScalingConfiguration, MinSize = MaxSize = replicas) that a fixed count "
             "needs; only replicas: 1 can be honoured today");
    }
  }
  if (std::string restart = StringMember(spec, "restart");
      restart == "no" || restart.rfind("on-failure", 0) == 0) {
    refuse("spec.restart",
           "which has no restart policy and keeps its instances running; only always or "
           "unless-stopped can be honoured");
  }
  if (const json* strategy = Member(spec, "strategy")) {
    if (const json* ar = Member(*strategy, "autoRollback"); ar && ar->is_boolean() && !*ar) {
      refuse("spec.strategy.autoRollback",
             "which cannot send traffic to a version that is not healthy; remove autoRollback: "
             "false");
    }
  }
  if (const json* hc = Member(spec, "healthCheck"); hc && hc->is_object()) {
    const std::string service_port = std::to_string(port);
    if (Member(*hc, "exec")) {
      refuse("spec.healthCheck.exec",
             "whose health checks are TCP or HTTP only (HealthCheckConfiguration.Protocol); it "
             "cannot run a command in the container: use path or tcp");
    }
    if (const json* p = Member(*hc, "path"); p) {
      const json* hp = Member(*hc, "port");
      if (hp && hp->is_number_integer() && hp->get<int>() != port) {
        refuse("spec.healthCheck.port", "which checks only the service's port (" + service_port +
                                            "); HealthCheckConfiguration has no port");
      }
    }
    if (const json* t = Member(*hc, "tcp"); t && t->is_number_integer() && t->get<int>() != port) {
      refuse("spec.healthCheck.tcp", "which checks only the service's port (" + service_port +
                                         "); HealthCheckConfiguration has no port");
    }
    for (const char* name : {"interval", "timeout"}) {
      std::string d = StringMember(*hc, name);
      if (d.empty()) continue;
      auto s = WholeSeconds(d);
      std::string field = std::string("spec.healthCheck.") + name;
      if (!s) {
        refuse(field, "whose health checks count whole seconds; " + d + " is not");
      } else if ((*s < 1 || *s > 20) &&
                 !(std::string(name) == "interval" && *s == kDefaultIntervalSeconds)) {
        refuse(field, std::string("whose health check ") + name + " is 1 to 20 seconds (" +
                          (std::string(name) == "interval" ? "Interval" : "Timeout") + "); " + d +
                          " is outside that range");
      }
    }
    if (const json* retries = Member(*hc, "retries"); retries && retries->is_number_integer()) {
      int n = retries->get<int>();
      if (n > 20 && n != kDefaultRetries) {
        refuse("spec.healthCheck.retries",
               "which gives up after at most 20 failed checks (UnhealthyThreshold 1 to 20); " +
                   std::to_string(n) + " is more");
      }
    }
    if (std::string sp = StringMember(*hc, "startPeriod"); !sp.empty()) {
      auto ms = ParseDuration(sp);
      if (!ms || *ms != 0) {
        refuse("spec.healthCheck.startPeriod",
               "whose health check has no grace period (HealthCheckConfiguration has no initial "
               "delay)");
      }
    }
  }
  if (Member(spec, "stopSignal")) {
    refuse("spec.stopSignal", "which cannot choose the signal that stops a container");
  }
  if (Member(spec, "stopGracePeriod")) {
    refuse("spec.stopGracePeriod", "which has no stop grace period");
  }
  if (Member(spec, "user")) {
    refuse("spec.user", "which cannot choose the user a container runs as: set USER in the image");
  }
  if (const json* v = Member(spec, "capAdd"); v && v->is_array() && !v->empty()) {
    refuse("spec.capAdd", "which cannot add Linux capabilities");
  }
  if (const json* v = Member(spec, "capDrop"); v && v->is_array() && !v->empty()) {
    refuse("spec.capDrop", "which cannot drop Linux capabilities");
  }
  if (const json* v = Member(spec, "readOnlyRootFilesystem"); v && v->is_boolean() && *v) {
    refuse("spec.readOnlyRootFilesystem", "which cannot mount the root filesystem read-only");
  }
  if (Member(spec, "hostname")) {
    refuse("spec.hostname", "which cannot set a container's host name");
  }
  if (const json* labels = Member(spec, "labels"); labels && labels->is_object()) {
    for (const auto& [key, value] : labels->items()) {
      std::string v = value.is_string() ? value.get<std::string>() : value.dump();
      if (key.empty() || key.size() > 128 || key.rfind("aws:", 0) == 0 || v.size() > 256) {
        refuse("spec.labels." + key,
               "whose tags allow keys of 1 to 128 characters not starting with aws: and values "
               "of at most 256");
      }
    }
  }
  if (const json* res = Member(spec, "resources"); res && res->is_object()) {
    if (std::string cpu = StringMember(*res, "cpu"); !cpu.empty() && !AppRunnerCpuOfAgent(cpu)) {
      refuse("spec.resources.cpu",
             "which offers 0.25, 0.5, 1, 2 or 4 vCPU; " + Shown(cpu) + " is none of them");
    }
    if (std::string mem = StringMember(*res, "memory");
        !mem.empty() && !AppRunnerMemoryOfAgent(mem)) {
      refuse("spec.resources.memory",
             "which offers 512, 1024, 2048, 3072, 4096, 6144, 8192, 10240 or 12288 MB (512Mi, "
             "1Gi, 2Gi, 3Gi, 4Gi, 6Gi, 8Gi, 10Gi, 12Gi); " +
                 Shown(mem) + " is none of them");
    }
    if (Member(*res, "gpus")) {
      refuse("spec.resources.gpus",
             "which has no GPUs (InstanceConfiguration has only Cpu, Memory and "
             "InstanceRoleArn)");
    }
  }
  return r;
}

Result<json> ServiceConfiguration(const json& spec, const json& settings, bool for_update) {
  ValidateAgentRequest check;
  check.agent = "xxxx";  // the name is checked by the caller
  check.target = "the target";
  check.target_config = settings;
  check.spec = spec;
  auto diags = ValidateAppRunnerAgent(check).diagnostics;
  if (!diags.empty()) {
    return Status::Invalid(diags.front().field + ": " + diags.front().message);
  }
  const std::string image = StringMember(spec, "image");
  json image_config = json::object();
  const json* port = Member(spec, "port");
  image_config["Port"] =
      port && port->is_number_integer() ? std::to_string(port->get<int>()) : "8080";
  json env = json::object();
  if (const json* e = Member(spec, "env"); e && e->is_object()) {
    for (const auto& [k, v] : e->items()) env[k] = v.is_string() ? v.get<std::string>() : v.dump();
  }
  if (!env.empty() || for_update) image_config["RuntimeEnvironmentVariables"] = env;
  if (std::string start = StartCommandOf(spec); !start.empty())
    image_config["StartCommand"] = start;
  json source = {{"ImageRepository",
                  {{"ImageIdentifier", image},
                   {"ImageRepositoryType", *ImageRepositoryTypeOf(image)},
                   {"ImageConfiguration", image_config}}},
                 {"AutoDeploymentsEnabled", false}};
  if (*ImageRepositoryTypeOf(image) == "ECR") {
    source["AuthenticationConfiguration"] = {
        {"AccessRoleArn", StringMember(settings, "accessRoleArn")}};
  }
  json out = {{"SourceConfiguration", source}};

  json instance = json::object();
  const json* res = Member(spec, "resources");
  std::string cpu = res ? StringMember(*res, "cpu") : "";
  std::string memory = res ? StringMember(*res, "memory") : "";
  if (!cpu.empty()) {
    instance["Cpu"] = *AppRunnerCpuOfAgent(cpu);
  } else if (const json* t = Member(settings, "cpu"); t && AppRunnerCpuOfTarget(*t)) {
    instance["Cpu"] = *AppRunnerCpuOfTarget(*t);
  } else if (for_update) {
    instance["Cpu"] = "1024";  // the model's default: 1 vCPU
  }
  if (!memory.empty()) {
    instance["Memory"] = *AppRunnerMemoryOfAgent(memory);
  } else if (const json* t = Member(settings, "memory"); t && AppRunnerMemoryOfTarget(*t)) {
    instance["Memory"] = *AppRunnerMemoryOfTarget(*t);
  } else if (for_update) {
    instance["Memory"] = "2048";  // the model's default: 2 GB
  }
  if (std::string role = StringMember(settings, "instanceRoleArn"); !role.empty()) {
    instance["InstanceRoleArn"] = role;
  }
  if (!instance.empty()) out["InstanceConfiguration"] = instance;

  const json* hc = Member(spec, "healthCheck");
  if (hc && hc->is_object()) {
    json h = json::object();
    if (Member(*hc, "path")) {
      h["Protocol"] = "HTTP";
      h["Path"] = StringMember(*hc, "path").empty() ? "/health" : StringMember(*hc, "path");
    } else {
      h["Protocol"] = "TCP";
    }
    h["HealthyThreshold"] = 1;  // on Docker the first success makes it healthy
    if (auto s = WholeSeconds(StringMember(*hc, "interval")); s && *s != kDefaultIntervalSeconds) {
      h["Interval"] = *s;
    } else if (for_update) {
      h["Interval"] = 5;
    }
    if (auto s = WholeSeconds(StringMember(*hc, "timeout"))) h["Timeout"] = *s;
    const json* retries = Member(*hc, "retries");
    if (retries && retries->is_number_integer() && *retries != kDefaultRetries) {
      h["UnhealthyThreshold"] = retries->get<int>();
    } else if (for_update) {
      h["UnhealthyThreshold"] = 5;
    }
    out["HealthCheckConfiguration"] = h;
  } else if (for_update) {
    // App Runner's defaults: a TCP check every 5 s, 2 s timeout, 1 / 5.
    out["HealthCheckConfiguration"] = {{"Protocol", "TCP"},
                                       {"Interval", 5},
                                       {"Timeout", 2},
                                       {"HealthyThreshold", 1},
                                       {"UnhealthyThreshold", 5}};
  }
  const json* publish = Member(spec, "publish");
  bool is_public = !(publish && publish->is_boolean() && !*publish);
  out["NetworkConfiguration"] = {{"IngressConfiguration", {{"IsPubliclyAccessible", is_public}}}};
  return out;
}

}  // namespace reconcile::aws
