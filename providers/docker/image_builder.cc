#include "docker/image_builder.h"

#include <openssl/evp.h>

#include <sstream>
#include <utility>

#include <nlohmann/json.hpp>

#include "docker/docker_target.h"

namespace reconcile::docker {

namespace {

using nlohmann::json;

std::string Base64Url(const std::string& data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()),
                          static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(n));
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

std::string Masked(std::string text, const std::vector<std::string>& secrets) {
  for (const std::string& s : secrets) {
    if (s.size() < 3) continue;
    for (std::size_t at = text.find(s); at != std::string::npos; at = text.find(s, at)) {
      text.replace(at, s.size(), "<redacted>");
    }
  }
  return text;
}

// One line of a JSON-lines stream: its "error" (empty when none).
std::string StreamError(const json& j) {
  if (!j.is_object() || !j.contains("error")) return "";
  return j["error"].is_string() ? j["error"].get<std::string>() : j["error"].dump();
}

class DockerImageBuilder : public ImageBuilder {
 public:
  explicit DockerImageBuilder(std::shared_ptr<HttpTransport> transport)
      : client_(std::move(transport)) {}

  BuildImageResponse Build(const BuildImageRequest& request) override {
    BuildImageResponse r;
    std::vector<std::string> secrets;
    json config = json::object();
    for (const RegistryCredentials& c : request.pull_credentials) {
      config[c.server] = {{"username", c.username}, {"password", c.password}};
      secrets.push_back(c.password);
    }
    std::string path = "/build?t=" + UrlEncode(request.reference) +
                       "&dockerfile=" + UrlEncode(request.dockerfile) +
                       "&buildargs=" + UrlEncode(json(request.args).dump()) +
                       "&labels=" + UrlEncode(json(request.labels).dump()) + "&rm=1&forcerm=1";
    HttpRequest http;
    if (request.context == nullptr) {
      r.status = Status::Invalid("docker: build of " + request.reference + ": no build context");
      return r;
    }
    http.body_source = [stream = request.context] { return stream->Next(); };
    http.body_size = request.context->size();
    http.content_type = "application/x-tar";
    http.timeout = std::chrono::minutes(30);
    if (!config.empty()) http.headers.emplace_back("X-Registry-Config", Base64Url(config.dump()));
    auto res = client_.WithTraceparent(request.traceparent).CallWith("POST", path, std::move(http));
    if (!res.ok()) {
      r.status = Status(res.status().code(), Masked(res.status().message(), secrets));
      return r;
    }
    std::istringstream lines(res->body);
    std::string last;
    for (std::string line; std::getline(lines, line);) {
      auto j = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (!j.is_object()) continue;
      if (std::string e = StreamError(j); !e.empty()) {
        r.status = Status::Invalid("docker: build of " + request.reference +
                                   " failed: " + Masked(e, secrets).substr(0, 1024) +
                                   (last.empty() ? "" : " (after: " + last + ")"));
        return r;
      }
      if (j.contains("stream") && j["stream"].is_string()) {
        std::string text = j["stream"].get<std::string>();
        while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
        if (!text.empty()) {
          last = Masked(text, secrets).substr(0, 200);
          if (request.progress) request.progress(last);
        }
      }
      if (j.contains("aux") && j["aux"].is_object() && j["aux"].contains("ID") &&
          j["aux"]["ID"].is_string()) {
        r.image_id = j["aux"]["ID"].get<std::string>();
      }
    }
    if (r.image_id.empty()) {
      r.status = Status::Unavailable("docker: build of " + request.reference +
                                     " ended without an image id");
    }
    return r;
  }

  PushImageResponse Push(const PushImageRequest& request) override {
    PushImageResponse r;
    auto [repo, tag] = SplitImageReference(request.reference);
    std::vector<std::string> secrets;
    HttpRequest http;
    http.timeout = std::chrono::minutes(30);
    std::string server = repo.substr(0, repo.find('/'));
    if (request.credentials) {
      server = request.credentials->server;
      secrets.push_back(request.credentials->password);
      http.headers.emplace_back(
          "X-Registry-Auth",
          RegistryAuthHeader(request.credentials->server, request.credentials->username,
                             request.credentials->password));
    } else {
      http.headers.emplace_back("X-Registry-Auth", RegistryAuthHeader("", "", ""));
    }
    auto res =
        client_.WithTraceparent(request.traceparent)
            .CallWith("POST", "/images/" + repo + "/push?tag=" + UrlEncode(tag), std::move(http));
    if (!res.ok()) {
      r.status = Status(res.status().code(), Masked(res.status().message(), secrets));
      return r;
    }
    std::istringstream lines(res->body);
    for (std::string line; std::getline(lines, line);) {
      auto j = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (!j.is_object()) continue;
      if (std::string e = StreamError(j); !e.empty()) {
        e = Masked(e, secrets).substr(0, 1024);
        bool auth = e.find("unauthorized") != std::string::npos ||
                    e.find("authentication required") != std::string::npos ||
                    e.find("denied") != std::string::npos;
        std::string msg =
            "docker: push of " + request.reference + " to " + server + " failed: " + e;
        if (auth) {
          msg +=
              request.credentials
                  ? "; the registry refused the credentials from " + request.credentials->variables
                  : "; the registry needs credentials: set credentialsEnvPrefix on its Registry";
          r.status = Status::Invalid(msg);
        } else {
          r.status = Status::Unavailable(msg);
        }
        return r;
      }
      if (j.contains("status") && j["status"].is_string() && request.progress) {
        std::string s = j["status"].get<std::string>();
        if (s.rfind(tag + ": digest:", 0) == 0) request.progress(s);
      }
      if (j.contains("aux") && j["aux"].is_object() && j["aux"].contains("Digest") &&
          j["aux"]["Digest"].is_string()) {
        r.digest = j["aux"]["Digest"].get<std::string>();
      }
    }
    return r;
  }

 private:
  EngineClient client_;
};

}  // namespace

Result<std::unique_ptr<ImageBuilder>> NewDockerImageBuilder(const Target& target) {
  if (target.provider != "docker") {
    return Status::Invalid("target '" + target.name + "' (provider " + target.provider +
                           ") cannot build images: agents with build need a docker Target");
  }
  auto transport = NewEngineTransport(DockerTargetFromSettings(target.settings).host,
                                      TlsConfigFromEnvironment());
  if (!transport.ok()) return transport.status().WithContext("target " + target.name);
  return NewDockerImageBuilderWithTransport(std::shared_ptr<HttpTransport>(std::move(*transport)));
}

std::unique_ptr<ImageBuilder> NewDockerImageBuilderWithTransport(
    std::shared_ptr<HttpTransport> transport) {
  return std::make_unique<DockerImageBuilder>(std::move(transport));
}

}  // namespace reconcile::docker
