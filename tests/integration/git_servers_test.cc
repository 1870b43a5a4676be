// Integration tests of the Git source against real servers on loopback,
// started by tests/fixtures/git-servers.sh for each test case and stopped by
// pid: git daemon (git://), git http-backend behind lighttpd with basic auth
// (http://), sshd with a generated host key and deploy key (ssh://). A server
// that cannot start fails the test; nothing is skipped.
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>

#include <doctest/doctest.h>

#include "fakes/temp_dir.h"
#include "fixtures/git_repo.h"
#include "reconcile/source.h"

namespace reconcile {
namespace {

namespace fs = std::filesystem;
using testing::GitRepo;
using testing::Quote;
using testing::Sh;
using testing::TempDir;

constexpr const char* kTarget =
    "apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: t}\n"
    "spec: {provider: docker}\n";

std::string AgentDoc(const std::string& name, const std::string& image) {
  return "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: " + name +
         "}\nspec:\n  image: " + image + "\n  target: t\n  port: 80\n";
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The three servers, one bare repository "demo" with one commit on main.
class Servers {
 public:
  Servers() {
    script_ = fs::path(RECONCILE_SOURCE_DIR) / "tests/fixtures/git-servers.sh";
    dir_ = tmp_.path() / "servers";
    Sh("bash " + Quote(script_.string()) + " start " + Quote(dir_.string()) + " >/dev/null");
    std::ifstream env(dir_ / "servers.env");
    for (std::string line; std::getline(env, line);) {
      auto eq = line.find('=');
      if (eq != std::string::npos) env_[line.substr(0, eq)] = line.substr(eq + 1);
    }
    if (env_.size() < 12) throw std::runtime_error("servers.env is incomplete");
    Sh("bash " + Quote(script_.string()) + " repo " + Quote(dir_.string()) + " demo");
    work_.Write("target.yaml", kTarget);
    work_.Write("agents/a.yaml", AgentDoc("a", "nginx:1"));
    first_ = Push();
  }
  ~Servers() {
    try {
      Sh("bash " + Quote(script_.string()) + " stop " + Quote(dir_.string()));
    } catch (...) {
    }
  }
  Servers(const Servers&) = delete;
  Servers& operator=(const Servers&) = delete;

  const std::string& Env(const std::string& key) const { return env_.at(key); }
  std::string DaemonUrl() const { return Env("GIT_DAEMON_URL") + "/demo.git"; }
  std::string HttpUrl() const { return Env("GIT_HTTP_URL") + "/demo.git"; }
  std::string SshUrl() const { return Env("GIT_SSH_URL") + Env("GIT_REPOS") + "/demo.git"; }
  const std::string& first() const { return first_; }
  GitRepo& work() { return work_; }
  fs::path tmp() const { return tmp_.path(); }

  // Commits the work tree and pushes main (forced) to the served repository.
  std::string Push() {
    std::string commit = work_.Commit();
    work_.Git("push -q -f " + Quote(Env("GIT_REPOS") + "/demo.git") + " main");
    return commit;
  }

  SourceOptions Options(const std::string& url) const {
    SourceOptions o;
    o.location = url;
    o.ref = "main";
    o.cache_dir = tmp_.path() / ("cache-" + std::to_string(++caches_));
    return o;
  }

 private:
  TempDir tmp_{"reconcile-git-servers"};
  fs::path script_;
  fs::path dir_;
  std::map<std::string, std::string> env_;
  GitRepo work_{tmp_.path() / "work"};
  std::string first_;
  mutable int caches_ = 0;
};

std::unique_ptr<Source> MustOpen(const SourceOptions& o) {
  auto s = OpenSource(o);
  REQUIRE_MESSAGE(s.ok(), s.status().ToString());
  return std::move(s).value();
}

// Resolve + Load must succeed and give `commit` with agent a.
void ExpectLoads(Source& source, const std::string& commit) {
  auto rev = source.Resolve({});
  REQUIRE_MESSAGE(rev.ok(), rev.status().ToString());
  CHECK(*rev == commit);
  auto snap = source.Load(*rev, {});
  REQUIRE_MESSAGE(snap.ok(), snap.status().ToString());
  CHECK(snap->revision == commit);
  CHECK(!snap->loaded.diagnostics.HasErrors());
  CHECK(snap->loaded.state.FindAgent("a") != nullptr);
}

void ExpectError(const Status& s, Code code, const std::vector<std::string>& parts,
                 const std::string& secret = "") {
  CHECK_MESSAGE(s.code() == code, s.ToString());
  for (const auto& p : parts) {
    CHECK_MESSAGE(s.message().find(p) != std::string::npos,
                  (std::string("missing ") + p + " in: " + s.message()));
  }
  if (!secret.empty()) CHECK_MESSAGE(s.message().find(secret) == std::string::npos, s.message());
}

TEST_CASE("git servers: git:// resolves, loads, follows new commits") {
  Servers servers;
  auto source = MustOpen(servers.Options(servers.DaemonUrl()));
  ExpectLoads(*source, servers.first());
  servers.work().Write("agents/a.yaml", AgentDoc("a", "nginx:2"));
  std::string second = servers.Push();
  ExpectLoads(*source, second);
  auto snap = source->Load(second, {});
  CHECK(snap->loaded.state.FindAgent("a")->image == "nginx:2");
  CHECK(snap->stats.decoded == 0);  // same commit again: all from the cache

  SUBCASE("missing ref") {
    auto o = servers.Options(servers.DaemonUrl());
    o.ref = "release";
    auto rev = MustOpen(o)->Resolve({});
    REQUIRE(!rev.ok());
    ExpectError(rev.status(), Code::kNotFound, {"'release'"});
  }
  SUBCASE("a stop request aborts a load, and the next load works") {
    for (int i = 0; i < 2000; ++i) {
      servers.work().Write("many/m" + std::to_string(i) + ".yaml",
                           AgentDoc("m" + std::to_string(i), "nginx:" + std::to_string(i)));
    }
    std::string big = servers.Push();
    auto fresh = MustOpen(servers.Options(servers.DaemonUrl()));
    std::stop_source stop;
    std::thread stopper([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
      stop.request_stop();
    });
    auto started = std::chrono::steady_clock::now();
    auto snap = fresh->Load(big, stop.get_token());
    stopper.join();
    REQUIRE(!snap.ok());
    ExpectError(snap.status(), Code::kUnavailable, {"stopped"});
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(5));
    auto again = fresh->Load(big, {});
    REQUIRE_MESSAGE(again.ok(), again.status().ToString());
    CHECK(again->loaded.state.agents.size() == 2001);
  }
  SUBCASE("unreachable remote is kUnavailable") {
    // A port that was free a moment ago: nothing listens there.
    auto o = servers.Options("git://127.0.0.1:9/demo.git");
    auto rev = MustOpen(o)->Resolve({});
    REQUIRE(!rev.ok());
    ExpectError(rev.status(), Code::kUnavailable, {"127.0.0.1:9"});
    CHECK(rev.status().retryable());
  }
}

TEST_CASE("git servers: http:// with basic auth") {
  Servers servers;
  const std::string password = ReadFile(servers.Env("GIT_HTTP_PASSWORD_FILE"));
  REQUIRE(!password.empty());
  SUBCASE("password from a file") {
    auto o = servers.Options(servers.HttpUrl());
    o.auth.username = servers.Env("GIT_HTTP_USER");
    o.auth.password_file = servers.Env("GIT_HTTP_PASSWORD_FILE");
    ExpectLoads(*MustOpen(o), servers.first());
  }
  SUBCASE("password from an environment variable") {
    ::setenv("RECONCILE_TEST_GIT_PASSWORD", password.c_str(), 1);
    auto o = servers.Options(servers.HttpUrl());
    o.auth.username = servers.Env("GIT_HTTP_USER");
    o.auth.password_env = "RECONCILE_TEST_GIT_PASSWORD";
    ExpectLoads(*MustOpen(o), servers.first());
    ::unsetenv("RECONCILE_TEST_GIT_PASSWORD");
  }
  SUBCASE("wrong password is kInvalid naming the URL and the file") {
    fs::path wrong = servers.tmp() / "wrong-password";
    std::ofstream(wrong) << "not-" << password << "\n";
    auto o = servers.Options(servers.HttpUrl());
    o.auth.username = servers.Env("GIT_HTTP_USER");
    o.auth.password_file = wrong.string();
    auto rev = MustOpen(o)->Resolve({});
    REQUIRE(!rev.ok());
    ExpectError(rev.status(), Code::kInvalid, {servers.HttpUrl(), wrong.string()}, password);
  }
  SUBCASE("no credentials is kInvalid") {
    auto rev = MustOpen(servers.Options(servers.HttpUrl()))->Resolve({});
    REQUIRE(!rev.ok());
    ExpectError(rev.status(), Code::kInvalid, {servers.HttpUrl(), "credentials"});
  }
  SUBCASE("an unset variable is kInvalid naming it") {
    auto o = servers.Options(servers.HttpUrl());
    o.auth.password_env = "RECONCILE_TEST_NO_SUCH_VARIABLE";
    auto rev = MustOpen(o)->Resolve({});
    REQUIRE(!rev.ok());
    ExpectError(rev.status(), Code::kInvalid, {"RECONCILE_TEST_NO_SUCH_VARIABLE"});
  }
}

TEST_CASE("git servers: ssh:// with a deploy key and a checked known_hosts") {
  Servers servers;
  auto options = [&](const std::string& known_hosts) {
    auto o = servers.Options(servers.SshUrl());
    o.auth.ssh_key_file = servers.Env("GIT_SSH_KEY");
    o.auth.ssh_known_hosts_file = known_hosts;
    return o;
  };
  const std::string host = "[127.0.0.1]:" + servers.Env("GIT_SSH_PORT");
  const std::string server_key = ReadFile(servers.Env("GIT_SSH_KNOWN_HOSTS"));
  const std::string other_key = ReadFile(servers.Env("GIT_SSH_OTHER_HOST_KEY"));
  auto write = [&](const std::string& name, const std::string& content) {
    fs::path p = servers.tmp() / name;
    std::ofstream(p) << content;
    return p.string();
  };
  SUBCASE("known host key: loads, then follows a new commit") {
    auto source = MustOpen(options(servers.Env("GIT_SSH_KNOWN_HOSTS")));
    ExpectLoads(*source, servers.first());
    servers.work().Write("b.yaml", AgentDoc("b", "nginx:1"));
    ExpectLoads(*source, servers.Push());
  }
  SUBCASE("hashed known_hosts entries match") {
    std::string file = write("hashed_known_hosts", server_key);
    Sh("ssh-keygen -q -H -f " + Quote(file) + " >/dev/null 2>&1");
    REQUIRE(ReadFile(file).rfind("|1|", 0) == 0);
    ExpectLoads(*MustOpen(options(file)), servers.first());
  }
  SUBCASE("an unknown host is refused, naming host and file") {
    // The right key, but for another port: the host is not known.
    std::string file = write("other_port_known_hosts",
                             "[127.0.0.1]:1 " + server_key.substr(server_key.find(' ') + 1));
    auto rev = MustOpen(options(file))->Resolve({});
    REQUIRE(!rev.ok());
    ExpectError(rev.status(), Code::kInvalid, {host, file, "not in the known_hosts"});
  }
  SUBCASE("a changed host key is refused") {
    std::string file = write("changed_known_hosts", host + " " + other_key);
    auto rev = MustOpen(options(file))->Resolve({});
    REQUIRE(!rev.ok());
    ExpectError(rev.status(), Code::kInvalid, {host, file, "CHANGED"});
  }
  SUBCASE("a key that is not authorized is kInvalid naming the key file") {
    auto o = options(servers.Env("GIT_SSH_KNOWN_HOSTS"));
    fs::path stranger = servers.tmp() / "stranger";
    Sh("ssh-keygen -q -t ed25519 -N '' -f " + Quote(stranger.string()));
    o.auth.ssh_key_file = stranger.string();
    auto rev = MustOpen(o)->Resolve({});
    REQUIRE(!rev.ok());
    ExpectError(rev.status(), Code::kInvalid, {stranger.string()});
  }
}

}  // namespace
}  // namespace reconcile
