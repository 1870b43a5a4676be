// FakeHttpEngine: an in-memory Docker Engine behind the HttpTransport
// interface, for unit tests of the Docker provider. It knows the calls the
// provider makes (list, inspect, create, start, stop, remove, rename, image
// inspect/pull, logs), records every request, and can be told to answer a
// path with a canned response. Containers "run" as soon as they are started.
//
// Thread-safety: a mutex guards all state.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "docker/engine_client.h"

namespace reconcile::testing {

class FakeHttpEngine : public docker::HttpTransport {
 public:
  struct Container {
    std::string id;
    std::string name;
    nlohmann::json labels = nlohmann::json::object();
    nlohmann::json body;  // the create body
    std::string status = "created";
  };

  // Adds a container directly (e.g. a foreign one).
  std::string Add(const std::string& name, const nlohmann::json& labels,
                  const std::string& status = "running") {
    std::lock_guard<std::mutex> lock(mu_);
    Container c;
    c.id = NextId();
    c.name = name;
    c.labels = labels;
    c.status = status;
    containers_[c.id] = c;
    return c.id;
  }

  std::optional<Container> Find(const std::string& id_or_name) {
    std::lock_guard<std::mutex> lock(mu_);
    auto* c = Lookup(id_or_name);
    return c == nullptr ? std::nullopt : std::optional<Container>(*c);
  }

  // Answers any request whose "METHOD path" (path without /v1.41 and query)
  // equals `call` with `response`.
  void Override(const std::string& call, docker::HttpResponse response) {
    std::lock_guard<std::mutex> lock(mu_);
    overrides_[call] = std::move(response);
  }

  void AddImage(const std::string& ref) {
    std::lock_guard<std::mutex> lock(mu_);
    images_.insert(ref);
  }

  std::vector<docker::HttpRequest> Requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

  // "METHOD path" of every request, without prefix and query.
  std::vector<std::string> Calls() {
    std::vector<std::string> out;
    for (const auto& r : Requests()) out.push_back(r.method + " " + Path(r.target));
    return out;
  }

  Result<docker::HttpResponse> RoundTrip(const docker::HttpRequest& r) override {
    using nlohmann::json;
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(r);
    const std::string path = Path(r.target);
    const std::string query = Query(r.target);
    auto o = overrides_.find(r.method + " " + path);
    if (o != overrides_.end()) return o->second;

    auto parts = Split(path);
    if (r.method == "GET" && path == "/containers/json") {
      json list = json::array();
      for (const auto& [id, c] : containers_) {
        json ports = json::array();
        if (c.body.is_object() && c.body.contains("ExposedPorts") && c.status == "running") {
          for (auto it = c.body["ExposedPorts"].begin(); it != c.body["ExposedPorts"].end(); ++it) {
            int priv = std::stoi(it.key());
            ports.push_back({{"IP", "127.0.0.1"},
                             {"PrivatePort", priv},
                             {"PublicPort", 40000 + priv % 1000},
                             {"Type", "tcp"}});
          }
        }
        list.push_back({{"Id", c.id},
                        {"Names", {"/" + c.name}},
                        {"Image", c.body.is_object() ? c.body.value("Image", "") : ""},
                        {"Labels", c.labels},
                        {"State", c.status},
                        {"Ports", ports}});
      }
      return Json(200, list);
    }
    if (r.method == "POST" && path == "/containers/create") {
      std::string name = query.substr(query.find("name=") + 5);
      for (const auto& [id, c] : containers_) {
        if (c.name == name)
          return Json(409, {{"message",
                             "Conflict. The container name \"/" + name + "\" is already in use"}});
      }
      Container c;
      c.id = NextId();
      c.name = name;
      c.body = json::parse(r.body, nullptr, false);
      c.labels = c.body.value("Labels", json::object());
      containers_[c.id] = c;
      return Json(201, {{"Id", c.id}, {"Warnings", json::array()}});
    }
    if (parts.size() >= 2 && parts[0] == "containers") {
      Container* c = Lookup(parts[1]);
      if (c == nullptr) return Json(404, {{"message", "No such container: " + parts[1]}});
      if (r.method == "GET" && parts.size() == 3 && parts[2] == "json") {
        return Json(
            200, {{"Id", c->id},
                  {"Name", "/" + c->name},
                  {"Config", {{"Labels", c->labels}}},
                  {"State",
                   {{"Status", c->status}, {"Running", c->status == "running"}, {"ExitCode", 0}}},
                  {"NetworkSettings", {{"Ports", json::object()}}}});
      }
      if (r.method == "POST" && parts.size() == 3 && parts[2] == "start") {
        c->status = "running";
        return docker::HttpResponse{204, ""};
      }
      if (r.method == "POST" && parts.size() == 3 && parts[2] == "stop") {
        c->status = "exited";
        return docker::HttpResponse{204, ""};
      }
      if (r.method == "POST" && parts.size() == 3 && parts[2] == "rename") {
        c->name = query.substr(query.find("name=") + 5);
        return docker::HttpResponse{204, ""};
      }
      if (r.method == "GET" && parts.size() == 3 && parts[2] == "logs") {
        return docker::HttpResponse{200, ""};
      }
      if (r.method == "DELETE" && parts.size() == 2) {
        if (c->status == "running" && query.find("force=true") == std::string::npos) {
          return Json(409, {{"message", "cannot remove a running container"}});
        }
        containers_.erase(c->id);
        return docker::HttpResponse{204, ""};
      }
    }
    if (r.method == "GET" && path.rfind("/images/", 0) == 0) {
      std::string ref = path.substr(8, path.size() - 8 - 5);
      if (images_.count(ref) != 0) return Json(200, {{"Id", "sha256:abc"}});
      return Json(404, {{"message", "No such image: " + ref}});
    }
    if (r.method == "POST" && path == "/images/create") {
      return docker::HttpResponse{
          200,
          "{\"status\":\"Pulling\"}\n{\"errorDetail\":{\"message\":\"pull access denied\"},"
          "\"error\":\"pull access denied\"}\n"};
    }
    return Json(500, {{"message", "fake engine: unhandled " + r.method + " " + path}});
  }

 private:
  static std::string Path(const std::string& target) {
    std::string p = target.substr(0, target.find('?'));
    if (p.rfind("/v1.41", 0) == 0) p = p.substr(6);
    return p;
  }
  static std::string Query(const std::string& target) {
    auto q = target.find('?');
    return q == std::string::npos ? "" : target.substr(q + 1);
  }
  static std::vector<std::string> Split(const std::string& path) {
    std::vector<std::string> out;
    std::string cur;
    for (char ch : path.substr(1)) {
      if (ch == '/') {
        out.push_back(cur);
        cur.clear();
      } else {
        cur += ch;
      }
    }
    out.push_back(cur);
    return out;
  }
  static docker::HttpResponse Json(int status, const nlohmann::json& j) {
    return docker::HttpResponse{status, j.dump()};
  }
  Container* Lookup(const std::string& id_or_name) {
    for (auto& [id, c] : containers_) {
      if (c.id == id_or_name || c.name == id_or_name) return &c;
    }
    return nullptr;
  }
  std::string NextId() {
    char buf[65];
    std::snprintf(buf, sizeof buf, "%064d", ++next_);
    std::string s = buf;
    s[0] = 'f';
    return s;
  }

  std::mutex mu_;
  int next_ = 0;
  std::map<std::string, Container> containers_;
  std::set<std::string> images_;
  std::map<std::string, docker::HttpResponse> overrides_;
  std::vector<docker::HttpRequest> requests_;
};

}  // namespace reconcile::testing
