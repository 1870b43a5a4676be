// The Docker image builder's requests (POST /build, POST /images/{name}/push)
// checked against the Docker Engine API v1.41 model, and its reading of the
// JSON-lines streams: errors, image id, digest, and no credential anywhere.
#include "docker/image_builder.h"

#include <mutex>

#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

namespace reconcile::docker {
namespace {

using nlohmann::json;

class Recorder : public HttpTransport {
 public:
  std::map<std::string, HttpResponse> answers;  // path without query -> answer
  Result<HttpResponse> RoundTrip(const HttpRequest& r) override {
    std::lock_guard<std::mutex> lock(mu);
    requests.push_back(r);
    if (r.body_source) {  // what a transport sends: the pieces, joined
      HttpRequest& kept = requests.back();
      for (;;) {
        Result<std::string_view> piece = r.body_source();
        if (!piece.ok()) return piece.status();
        if (piece->empty()) break;
        kept.body.append(piece->data(), piece->size());
      }
      if (kept.body.size() != r.body_size) return Status::Internal("body size differs");
    }
    std::string path = r.target.substr(0, r.target.find('?'));
    auto it = answers.find(path);
    if (it == answers.end()) return HttpResponse{404, R"({"message":"no such path"})"};
    return it->second;
  }
  std::mutex mu;
  std::vector<HttpRequest> requests;
};

const YAML::Node& Model() {
  static const YAML::Node model = YAML::LoadFile(std::string(RECONCILE_VECTORS_DIR) +
                                                 "/api-models/docker-engine-swagger-v1.41.yaml");
  return model;
}

// name -> "query" / "header" for the parameters of `path`'s POST.
std::map<std::string, std::string> Parameters(const std::string& path) {
  std::map<std::string, std::string> out;
  for (const YAML::Node& p : Model()["paths"][path]["post"]["parameters"]) {
    out[p["name"].as<std::string>()] = p["in"].as<std::string>();
  }
  return out;
}

std::map<std::string, std::string> Query(const std::string& target) {
  std::map<std::string, std::string> out;
  size_t q = target.find('?');
  if (q == std::string::npos) return out;
  std::string rest = target.substr(q + 1);
  for (size_t at = 0; at <= rest.size();) {
    size_t amp = rest.find('&', at);
    std::string kv = rest.substr(at, amp == std::string::npos ? std::string::npos : amp - at);
    size_t eq = kv.find('=');
    std::string v = kv.substr(eq + 1), decoded;
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i] == '%' && i + 2 < v.size()) {
        decoded += static_cast<char>(std::stoi(v.substr(i + 1, 2), nullptr, 16));
        i += 2;
      } else {
        decoded += v[i];
      }
    }
    out[kv.substr(0, eq)] = decoded;
    if (amp == std::string::npos) break;
    at = amp + 1;
  }
  return out;
}

std::string DecodeBase64Url(std::string s) {
  for (char& c : s) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  std::string out(s.size(), '\0');
  int n =
      EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  out.resize(static_cast<size_t>(n));
  while (!out.empty() && out.back() == '\0') out.pop_back();
  return out;
}

std::string Header(const HttpRequest& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "";
}

TEST_CASE("docker image builder: /build and /push requests follow the API model") {
  auto rec = std::make_shared<Recorder>();
  rec->answers["/v1.41/build"] = {
      200,
      "{\"stream\":\"Step 1/2 : FROM scratch\\n\"}\n{\"aux\":{\"ID\":\"sha256:abc\"}}\n"
      "{\"stream\":\"Successfully tagged 127.0.0.1:5000/team/web:v1\\n\"}\n"};
  rec->answers["/v1.41/images/127.0.0.1:5000/team/web/push"] = {
      200,
      "{\"status\":\"Pushing\"}\n{\"status\":\"v1: digest: sha256:def size: 528\"}\n"
      "{\"aux\":{\"Tag\":\"v1\",\"Digest\":\"sha256:def\",\"Size\":528}}\n"};
  auto builder = NewDockerImageBuilderWithTransport(rec);
  std::vector<std::string> progress;
  BuildImageRequest build;
  build.reference = "127.0.0.1:5000/team/web:v1";
  build.context = std::make_shared<ContextTarStream>(BuildContext{});  // the end marker only
  build.dockerfile = "docker/Dockerfile";
  build.args = {{"MODE", "fast"}};
  build.labels = {{"reconcile.dev/managed-by", "reconcile"}};
  build.pull_credentials = {{"127.0.0.1:5000", "pusher", "canary-pw", "R_USERNAME and R_PASSWORD"}};
  build.progress = [&](const std::string& line) { progress.push_back(line); };
  BuildImageResponse built = builder->Build(build);
  REQUIRE_MESSAGE(built.status.ok(), built.status.message());
  CHECK(built.image_id == "sha256:abc");
  CHECK(progress.front() == "Step 1/2 : FROM scratch");

  PushImageRequest push;
  push.reference = build.reference;
  push.credentials = build.pull_credentials.front();
  PushImageResponse pushed = builder->Push(push);
  REQUIRE_MESSAGE(pushed.status.ok(), pushed.status.message());
  CHECK(pushed.digest == "sha256:def");

  REQUIRE(rec->requests.size() == 2);
  const HttpRequest& b = rec->requests[0];
  CHECK(b.method == "POST");
  CHECK(b.content_type == "application/x-tar");
  CHECK(b.body_size == 1024);
  CHECK(b.body == std::string(1024, '\0'));
  auto build_params = Parameters("/build");
  for (const auto& [name, value] : Query(b.target)) {
    const std::string parameter = name;  // CAPTURE takes it (clang 14: not a binding)
    CAPTURE(parameter);
    CHECK(build_params[name] == "query");
  }
  CHECK(build_params["Content-type"] == "header");
  CHECK(build_params["X-Registry-Config"] == "header");
  auto q = Query(b.target);
  CHECK(q["t"] == "127.0.0.1:5000/team/web:v1");
  CHECK(q["dockerfile"] == "docker/Dockerfile");
  CHECK(json::parse(q["buildargs"]) == json{{"MODE", "fast"}});
  CHECK(json::parse(q["labels"])["reconcile.dev/managed-by"] == "reconcile");
  json config = json::parse(DecodeBase64Url(Header(b, "X-Registry-Config")));
  CHECK(config["127.0.0.1:5000"]["username"] == "pusher");

  const HttpRequest& p = rec->requests[1];
  auto push_params = Parameters("/images/{name}/push");
  CHECK(push_params["X-Registry-Auth"] == "header");
  for (const auto& [name, value] : Query(p.target)) CHECK(push_params[name] == "query");
  CHECK(Query(p.target)["tag"] == "v1");
  json auth = json::parse(DecodeBase64Url(Header(p, "X-Registry-Auth")));
  CHECK(auth == json{{"username", "pusher"},
                     {"password", "canary-pw"},
                     {"serveraddress", "127.0.0.1:5000"}});
}

// Issue #12 item 3: a traced image change's /build and /push carry its
// traceparent exactly; an untraced one's carry none.
TEST_CASE("docker image builder: traceparent on /build and /push when the change is traced") {
  auto rec = std::make_shared<Recorder>();
  rec->answers["/v1.41/build"] = {200, "{\"aux\":{\"ID\":\"sha256:abc\"}}\n"};
  rec->answers["/v1.41/images/127.0.0.1:5000/team/web/push"] = {
      200, "{\"aux\":{\"Tag\":\"v1\",\"Digest\":\"sha256:def\",\"Size\":528}}\n"};
  auto builder = NewDockerImageBuilderWithTransport(rec);
  const std::string tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  for (const std::string& want : {tp, std::string()}) {
    CAPTURE(want);
    rec->requests.clear();
    BuildImageRequest build;
    build.reference = "127.0.0.1:5000/team/web:v1";
    build.context = std::make_shared<ContextTarStream>(BuildContext{});
    build.dockerfile = "Dockerfile";
    build.traceparent = want;
    REQUIRE(builder->Build(build).status.ok());
    PushImageRequest push;
    push.reference = build.reference;
    push.traceparent = want;
    REQUIRE(builder->Push(push).status.ok());
    REQUIRE(rec->requests.size() == 2);
    for (const HttpRequest& r : rec->requests) {
      CAPTURE(r.target);
      int n = 0;
      for (const auto& [k, v] : r.headers) n += k == "traceparent";
      CHECK(n == (want.empty() ? 0 : 1));
      CHECK(Header(r, "traceparent") == want);
    }
  }
}

TEST_CASE("docker image builder: stream errors are clear and carry no credential") {
  auto rec = std::make_shared<Recorder>();
  rec->answers["/v1.41/build"] = {
      200,
      "{\"stream\":\"Step 2/3 : RUN false\\n\"}\n"
      "{\"errorDetail\":{\"code\":1},\"error\":\"The command '/bin/sh -c false' returned a "
      "non-zero code: 1 canary-pw\"}\n"};
  rec->answers["/v1.41/images/127.0.0.1:5000/team/web/push"] = {
      200, "{\"status\":\"Preparing\"}\n{\"error\":\"unauthorized: authentication required\"}\n"};
  auto builder = NewDockerImageBuilderWithTransport(rec);
  BuildImageRequest build;
  build.reference = "127.0.0.1:5000/team/web:v1";
  build.pull_credentials = {{"127.0.0.1:5000", "pusher", "canary-pw", "R_USERNAME and R_PASSWORD"}};
  // No context: refused before anything is sent.
  BuildImageResponse none = builder->Build(build);
  CHECK(none.status.message() == "docker: build of 127.0.0.1:5000/team/web:v1: no build context");
  CHECK(rec->requests.empty());
  build.context = std::make_shared<ContextTarStream>(BuildContext{});
  BuildImageResponse built = builder->Build(build);
  REQUIRE_FALSE(built.status.ok());
  CHECK(built.status.code() == Code::kInvalid);
  CHECK(built.status.message().find("returned a non-zero code") != std::string::npos);
  CHECK(built.status.message().find("Step 2/3") != std::string::npos);
  CHECK(built.status.message().find("canary-pw") == std::string::npos);

  PushImageRequest push;
  push.reference = build.reference;
  push.credentials = build.pull_credentials.front();
  PushImageResponse pushed = builder->Push(push);
  REQUIRE_FALSE(pushed.status.ok());
  CHECK(pushed.status.code() == Code::kInvalid);
  CHECK(pushed.status.message().find("refused the credentials from R_USERNAME and R_PASSWORD") !=
        std::string::npos);

  PushImageRequest anonymous;
  anonymous.reference = build.reference;
  builder->Push(anonymous);
  CHECK(Header(rec->requests.back(), "X-Registry-Auth") == "e30=");
}

}  // namespace
}  // namespace reconcile::docker
