#include "docker/docker_target.h"

#include "reconcile/config_checks.h"

namespace reconcile::docker {

namespace {

std::string StringOr(const nlohmann::json& block, const char* key, std::string fallback) {
  auto it = block.find(key);
  return it != block.end() && it->is_string() ? it->get<std::string>() : fallback;
}

}  // namespace

DockerTarget DockerTargetFromSettings(const nlohmann::json& settings) {
  DockerTarget d;
  if (!settings.is_object()) return d;
  d.host = StringOr(settings, "host", d.host);
  d.network = StringOr(settings, "network", d.network);
  d.publish_address = StringOr(settings, "publishAddress", d.publish_address);
  if (auto it = settings.find("tls"); it != settings.end() && it->is_object()) {
    DockerTls tls;
    tls.ca_file = StringOr(*it, "caFile", "");
    tls.cert_file = StringOr(*it, "certFile", "");
    tls.key_file = StringOr(*it, "keyFile", "");
    tls.server_name = StringOr(*it, "serverName", "");
    if (auto v = it->find("verify"); v != it->end() && v->is_boolean()) tls.verify = v->get<bool>();
    d.tls = tls;
  }
  return d;
}

nlohmann::json DockerSettings(const DockerTarget& docker) {
  nlohmann::json j = {{"host", docker.host}, {"publishAddress", docker.publish_address}};
  if (!docker.network.empty()) j["network"] = docker.network;
  if (docker.tls) {
    nlohmann::json tls = {{"verify", docker.tls->verify}};
    if (!docker.tls->ca_file.empty()) tls["caFile"] = docker.tls->ca_file;
    if (!docker.tls->cert_file.empty()) tls["certFile"] = docker.tls->cert_file;
    if (!docker.tls->key_file.empty()) tls["keyFile"] = docker.tls->key_file;
    if (!docker.tls->server_name.empty()) tls["serverName"] = docker.tls->server_name;
    j["tls"] = tls;
  }
  return j;
}

ValidateTargetResponse ValidateDockerTarget(const ValidateTargetRequest& request) {
  using namespace checks;  // NOLINT
  ValidateTargetResponse r;
  ConfigChecker block(request.config, "spec.docker", r.diagnostics);
  if (!block.ok()) return r;
  block.Known({"host", "network", "publishAddress", "tls"});
  auto host = block.Checked("host", IsDockerHost, "unix:///path/to/docker.sock or tcp://host:port");
  block.Checked("network", IsDockerNetwork, "a Docker network name");
  block.Checked("publishAddress", IsIpAddress, "an IPv4 or IPv6 address");
  if (!block.Get("tls")) return r;
  ConfigChecker tls = block.Child("tls");
  if (!tls.ok()) return r;
  tls.Known({"caFile", "certFile", "keyFile", "verify", "serverName"});
  const char* file_name = "a file name in the secrets folder (letters, digits, '.', '_', '-')";
  tls.Checked("caFile", IsSecretFileName, file_name);
  tls.Checked("certFile", IsSecretFileName, file_name);
  tls.Checked("keyFile", IsSecretFileName, file_name);
  bool cert = tls.Get("certFile") != nullptr, key = tls.Get("keyFile") != nullptr;
  if (cert != key) {
    tls.Error(cert ? "keyFile" : "certFile",
              "certFile and keyFile go together (the client certificate and its key)");
  }
  tls.Bool("verify");
  tls.Checked("serverName", IsServerName, "a DNS name or an IP address");
  std::string written_host = host.value_or(DockerTarget{}.host);
  if (written_host.rfind("tcp://", 0) != 0) {
    block.Error("tls", "TLS settings need a tcp:// host (spec.docker.host)");
  }
  return r;
}

ValidateAgentResponse ValidateDockerAgent(const ValidateAgentRequest& request) {
  ValidateAgentResponse r;
  if (request.model == nullptr) return r;
  const Agent& a = *request.model;
  if (a.secret_files.empty() && a.networks.empty()) return r;  // the common case, cheap
  DockerTarget d = DockerTargetFromSettings(request.target_config);
  if (!a.secret_files.empty() && d.host.rfind("tcp://", 0) == 0) {
    r.diagnostics.push_back(
        {Severity::kError, "spec.secretFiles",
         "secretFiles need a local Docker Engine (a unix:// socket on this host): they are "
         "bind-mounted from files on this machine, and Target '" +
             request.target + "' is " + d.host +
             "; use secretEnv, or run reconcile on the engine's host"});
  }
  if (!a.networks.empty() && (d.network == "host" || d.network == "none")) {
    r.diagnostics.push_back({Severity::kError, "spec.networks",
                             "Target '" + request.target + "' runs containers on docker.network " +
                                 d.network + ", which cannot join other networks"});
  }
  return r;
}

}  // namespace reconcile::docker
