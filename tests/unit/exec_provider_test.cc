// Providers outside the binary (providers/exec): small plugins written by the
// tests into a temp folder, run as real processes over real pipes, and the
// example plugin examples/plugins/reconcile-provider-localfile.
#include "exec/exec_provider.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stop_token>
#include <thread>

#include <doctest/doctest.h>

#include "exec/plugin_process.h"
#include "fakes/temp_dir.h"
#include "reconcile/provider_json.h"

namespace reconcile::exec {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;
using testing::TempDir;

const char* kHandshake =
    "#!/bin/sh\n"
    "read -r hs\n"
    "echo '{\"type\":\"handshake\",\"protocolVersion\":2,\"name\":\"t\"}'\n"
    "read -r req\n";

std::string WritePlugin(const TempDir& dir, const std::string& file, const std::string& body,
                        mode_t mode = 0755) {
  dir.Write(file, body);
  std::string path = (dir.path() / file).string();
  ::chmod(path.c_str(), mode);
  return path;
}

PluginCall Call(const std::string& path, const std::string& method) {
  PluginCall c;
  c.plugin = "t";
  c.path = path;
  c.environment = {"PATH=/usr/local/bin:/usr/bin:/bin"};
  c.method = method;
  c.timeout = milliseconds(10000);
  c.stop_grace = milliseconds(300);
  c.kill_grace = milliseconds(300);
  c.exit_grace = milliseconds(500);
  return c;
}

std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// True once no process has `pid` (waits up to 3 s: an orphan is reaped by
// init shortly after it dies).
bool Gone(pid_t pid) {
  for (int i = 0; i < 300; ++i) {
    if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return false;
}

double Seconds(SteadyClock::time_point since) {
  return std::chrono::duration<double>(SteadyClock::now() - since).count();
}

TEST_CASE("exec provider: one call, handshake, progress and response") {
  TempDir dir("exec-test");
  std::string path = WritePlugin(dir, "p",
                                 std::string(kHandshake) +
                                     "case \"$req\" in *'\"method\":\"observe\"'*) ;; *) echo "
                                     "\"bad request: $req\" >&2; exit 9;; esac\n"
                                     "echo '{\"type\":\"progress\",\"message\":\"looking\"}'\n"
                                     "echo 'a line for the log' >&2\n"
                                     "echo '{\"type\":\"response\",\"result\":{\"seen\":true}}'\n");
  PluginCall call = Call(path, "observe");
  std::vector<std::string> progress, log;
  call.progress = [&](const std::string& m) { progress.push_back(m); };
  call.log = [&](const std::string& l) { log.push_back(l); };
  Result<json> r = RunPluginCall(call);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  CHECK((*r)["seen"] == true);
  CHECK(progress == std::vector<std::string>{"looking"});
  CHECK(log == std::vector<std::string>{"a line for the log"});

  SUBCASE("an error response keeps its code and message") {
    std::string err =
        WritePlugin(dir, "err",
                    std::string(kHandshake) +
                        "echo '{\"type\":\"response\",\"error\":{\"code\":\"invalid\","
                        "\"message\":\"directory is missing\"}}'\n");
    Result<json> e = RunPluginCall(Call(err, "observe"));
    CHECK(e.status().code() == Code::kInvalid);
    CHECK(e.status().message() == "plugin 't' (" + err + "): directory is missing");
  }
}

TEST_CASE("exec provider: a protocol version mismatch names both versions") {
  TempDir dir("exec-test");
  std::string path = WritePlugin(dir, "p",
                                 "#!/bin/sh\nread -r hs\necho "
                                 "'{\"type\":\"handshake\",\"protocolVersion\":1,\"name\":\"t\"}'\n"
                                 "read -r req\necho \"got a request: $req\" >&2\n");
  Result<json> r = RunPluginCall(Call(path, "schema"));
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kFailed);
  CHECK(r.status().message().find("plugin 't' (" + path + ")") != std::string::npos);
  CHECK(r.status().message().find(
            "speaks plugin protocol version 1; this engine speaks version 2") != std::string::npos);
  CHECK(r.status().message().find("got a request") == std::string::npos);  // none was sent
}

TEST_CASE("exec provider: garbage output is a clear error") {
  TempDir dir("exec-test");
  SUBCASE("instead of the handshake") {
    std::string path = WritePlugin(dir, "p", "#!/bin/sh\necho 'hello, I am not JSON'\nsleep 5\n");
    auto start = SteadyClock::now();
    Result<json> r = RunPluginCall(Call(path, "schema"));
    CHECK(r.status().code() == Code::kFailed);
    CHECK(r.status().message().find("not a protocol message") != std::string::npos);
    CHECK(r.status().message().find("'hello, I am not JSON'") != std::string::npos);
    CHECK(Seconds(start) < 3);  // killed at once, not waited for
  }
  SUBCASE("JSON of the wrong shape") {
    std::string path = WritePlugin(dir, "p", std::string(kHandshake) + "echo '[1,2,3]'\n");
    Result<json> r = RunPluginCall(Call(path, "schema"));
    CHECK(r.status().message().find("not a protocol message") != std::string::npos);
  }
  SUBCASE("bytes that are not UTF-8 give an error that is") {
    std::string path = WritePlugin(
        dir, "p", "#!/bin/sh\nprintf 'bad \\377\\300 bytes' >&2\nprintf 'x\\377y\\n'\nsleep 5\n");
    Result<json> r = RunPluginCall(Call(path, "schema"));
    CHECK(r.status().message().find("'x?y'") != std::string::npos);
    CHECK(r.status().message().find("bad ?? bytes") != std::string::npos);
    CHECK_NOTHROW((void)json{{"error", r.status().message()}}.dump());
  }
  SUBCASE("an unknown message type") {
    std::string path =
        WritePlugin(dir, "p", std::string(kHandshake) + "echo '{\"type\":\"hello\"}'\n");
    Result<json> r = RunPluginCall(Call(path, "schema"));
    CHECK(r.status().message().find("unknown message type 'hello'") != std::string::npos);
  }
  SUBCASE("a response without a result") {
    std::string path =
        WritePlugin(dir, "p", std::string(kHandshake) + "echo '{\"type\":\"response\"}'\n");
    Result<json> r = RunPluginCall(Call(path, "schema"));
    CHECK(r.status().message().find("without a \"result\" object") != std::string::npos);
  }
  SUBCASE("a malformed result, through the provider") {
    std::string p = WritePlugin(dir, "reconcile-provider-t",
                                std::string(kHandshake) +
                                    "echo "
                                    "'{\"type\":\"response\",\"result\":{\"status\":{\"code\":"
                                    "\"ok\"},\"instances\":7}}'\n");
    ProviderDefinition d = PluginDefinition({"t", p}, "t", ExecOptions{}, {"PATH=/usr/bin:/bin"});
    Target target;
    target.name = "t1";
    target.provider = "t";
    auto provider = d.create(target);
    REQUIRE(provider.ok());
    ObserveResponse o = (*provider)->Observe({target});
    CHECK(o.status.code() == Code::kFailed);
    CHECK(o.status.message().find("malformed result") != std::string::npos);
  }
}

TEST_CASE("exec provider: a plugin that crashes or exits before answering") {
  TempDir dir("exec-test");
  SUBCASE("killed by a signal") {
    std::string path = WritePlugin(dir, "p", std::string(kHandshake) + "kill -SEGV $$\n");
    Result<json> r = RunPluginCall(Call(path, "observe"));
    CHECK(r.status().code() == Code::kFailed);
    CHECK(r.status().message().find(
              "was killed by signal 11 (SIGSEGV) before answering 'observe'") != std::string::npos);
  }
  SUBCASE("an exit status, with its stderr") {
    std::string path =
        WritePlugin(dir, "p", std::string(kHandshake) + "echo 'Traceback: boom' >&2\nexit 3\n");
    Result<json> r = RunPluginCall(Call(path, "observe"));
    CHECK(r.status().message().find("exited with status 3 before answering") != std::string::npos);
    CHECK(r.status().message().find("its stderr: Traceback: boom") != std::string::npos);
  }
  SUBCASE("not executable at all") {
    Result<json> r = RunPluginCall(Call((dir.path() / "absent").string(), "observe"));
    CHECK(r.status().code() == Code::kFailed);
    CHECK(r.status().message().find("cannot be started") != std::string::npos);
  }
}

TEST_CASE(
    "exec provider: a hang times out, and the plugin and its children are killed and reaped") {
  TempDir dir("exec-test");
  std::string pids = (dir.path() / "pids").string();
  std::string path = WritePlugin(
      dir, "p", std::string(kHandshake) + "sleep 1000 &\necho \"$$ $!\" > " + pids + "\nwait\n");
  PluginCall call = Call(path, "observe");
  call.timeout = milliseconds(500);
  call.kill_grace = milliseconds(200);
  auto start = SteadyClock::now();
  Result<json> r = RunPluginCall(call);
  CHECK(Seconds(start) < 3);
  CHECK(r.status().code() == Code::kUnavailable);
  CHECK(r.status().message().find("no answer to 'observe' within 500ms (timeout)") !=
        std::string::npos);
  std::istringstream in(ReadFile(pids));
  pid_t plugin = 0, child = 0;
  in >> plugin >> child;
  REQUIRE(plugin > 0);
  REQUIRE(child > 0);
  // Reaped: not even a zombie is left (kill(pid, 0) succeeds on a zombie).
  CHECK(::kill(plugin, 0) == -1);
  CHECK(errno == ESRCH);
  CHECK(Gone(child));  // the process group went too
}

TEST_CASE("exec provider: output over the bounds kills the plugin") {
  TempDir dir("exec-test");
  SUBCASE("a response line over the limit") {
    std::string path = WritePlugin(dir, "p",
                                   std::string(kHandshake) +
                                       "printf '{\"type\":\"response\",\"result\":{\"x\":\"'\n"
                                       "head -c 300000 /dev/zero | tr '\\0' 'a'\nsleep 5\n");
    PluginCall call = Call(path, "observe");
    call.limits.max_response_bytes = 64 * 1024;
    auto start = SteadyClock::now();
    Result<json> r = RunPluginCall(call);
    CHECK(Seconds(start) < 3);
    CHECK(r.status().code() == Code::kFailed);
    CHECK(r.status().message().find("over the 65536-byte limit; the plugin was killed") !=
          std::string::npos);
  }
  SUBCASE("a progress line over its limit") {
    std::string path =
        WritePlugin(dir, "p",
                    std::string(kHandshake) +
                        "printf '{\"type\":\"progress\",\"message\":\"'\n"
                        "head -c 5000 /dev/zero | tr '\\0' 'a'\necho '\"}'\nsleep 5\n");
    PluginCall call = Call(path, "apply_change");
    call.limits.max_progress_bytes = 1024;
    Result<json> r = RunPluginCall(call);
    CHECK(r.status().message().find("progress line over the 1024-byte limit") != std::string::npos);
  }
  SUBCASE("stderr is kept bounded") {
    std::string path =
        WritePlugin(dir, "p",
                    std::string(kHandshake) +
                        "head -c 1000000 /dev/zero | tr '\\0' 'e' >&2\necho END >&2\nexit 1\n");
    PluginCall call = Call(path, "observe");
    call.limits.max_stderr_bytes = 4096;
    Result<json> r = RunPluginCall(call);
    CHECK(r.status().message().find("exited with status 1") != std::string::npos);
    CHECK(r.status().message().find("END") != std::string::npos);  // the tail is kept
    CHECK(r.status().message().size() < 2000);
  }
}

TEST_CASE("exec provider: stop during apply") {
  TempDir dir("exec-test");
  std::stop_source stop;
  std::thread stopper([&] {
    std::this_thread::sleep_for(milliseconds(300));
    stop.request_stop();
  });
  SUBCASE("the plugin hears stop and answers cancelled") {
    std::string path = WritePlugin(
        dir, "p",
        std::string(kHandshake) +
            "echo '{\"type\":\"progress\",\"message\":\"waiting for health\"}'\n"
            "read -r line\n"
            "case \"$line\" in *'\"type\":\"stop\"'*) echo '{\"type\":\"response\",\"result\":"
            "{\"status\":{\"code\":\"cancelled\",\"message\":\"stopped\"},\"instances\":[],"
            "\"health\":\"unknown\"}}';; esac\n");
    PluginCall call = Call(path, "apply_change");
    call.stop = stop.get_token();
    auto start = SteadyClock::now();
    Result<json> r = RunPluginCall(call);
    REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    CHECK(Seconds(start) < 2);
    CHECK((*r)["status"]["code"] == "cancelled");
  }
  SUBCASE("a plugin that ignores stop and SIGTERM is killed") {
    std::string pid_file = (dir.path() / "pid").string();
    std::string path = WritePlugin(dir, "p",
                                   std::string(kHandshake) + "trap '' TERM\necho $$ > " + pid_file +
                                       "\nwhile :; do sleep 0.05; done\n");
    PluginCall call = Call(path, "apply_change");
    call.stop = stop.get_token();
    auto start = SteadyClock::now();
    Result<json> r = RunPluginCall(call);
    double took = Seconds(start);
    CHECK(took >= 0.8);  // 0.3 s, then stop_grace 0.3 s, then kill_grace 0.3 s
    CHECK(took < 3);
    CHECK(r.status().code() == Code::kCancelled);
    CHECK(r.status().message().find("did not answer the stop request within 300ms") !=
          std::string::npos);
    pid_t pid = std::stoi(ReadFile(pid_file));
    CHECK(::kill(pid, 0) == -1);
  }
  stopper.join();
}

TEST_CASE("exec provider: Provider::Stop cancels the apply in flight") {
  TempDir dir("exec-test");
  std::string path = WritePlugin(dir, "reconcile-provider-t",
                                 std::string(kHandshake) + "while :; do sleep 0.05; done\n");
  ExecOptions options;
  options.stop_grace = milliseconds(200);
  options.kill_grace = milliseconds(200);
  ProviderDefinition d = PluginDefinition({"t", path}, "t", options, {"PATH=/usr/bin:/bin"});
  Target target;
  target.name = "t1";
  target.provider = "t";
  auto provider = d.create(target);
  REQUIRE(provider.ok());
  ApplyChangeRequest request;
  request.target = target;
  request.change.address = "agent.web";
  request.change.name = "web";
  request.change.action = Action::kCreate;
  request.change.desired = json{{"image", "x"}};
  std::thread stopper([&] {
    std::this_thread::sleep_for(milliseconds(200));
    (*provider)->Stop();
  });
  auto start = SteadyClock::now();
  ApplyChangeResponse r = (*provider)->ApplyChange(request);
  stopper.join();
  CHECK(Seconds(start) < 3);
  CHECK(r.status.code() == Code::kCancelled);
}

TEST_CASE("exec provider: the plugin's environment is scrubbed") {
  TempDir dir("exec-test");
  const std::string canary = "canary-3b1f9e-never-seen";
  ::setenv("RECONCILE_TEST_CANARY", canary.c_str(), 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", canary.c_str(), 1);
  ::setenv("RECONCILE_PLUGIN_ENV_GREETING", "hello", 1);
  WritePlugin(dir, "reconcile-provider-envdump",
              "#!/usr/bin/python3\n"
              "import json, os, sys\n"
              "sys.stdin.readline()\n"
              "print(json.dumps({'type': 'handshake', 'protocolVersion': 2, 'name': 'envdump'}), "
              "flush=True)\n"
              "req = json.loads(sys.stdin.readline())\n"
              "result = {'status': {'code': 'ok'}, 'instances': [], "
              "'warnings': [json.dumps(dict(os.environ))]}\n"
              "if req['method'] == 'schema':\n"
              "    result = {'updatableFields': []}\n"
              "print(json.dumps({'type': 'response', 'result': result}), flush=True)\n");
  ProviderRegistry registry;
  ExecOptions options;
  options.plugin_dirs = {dir.path().string()};
  RegisterExecPlugins(registry, options);  // the process's own environment
  ::unsetenv("RECONCILE_TEST_CANARY");
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
  ::unsetenv("RECONCILE_PLUGIN_ENV_GREETING");
  REQUIRE(registry.Has("envdump"));
  Target target;
  target.name = "t1";
  target.provider = "envdump";
  auto provider = registry.Create(target);
  REQUIRE(provider.ok());
  ObserveResponse o = (*provider)->Observe({target});
  REQUIRE_MESSAGE(o.status.ok(), o.status.ToString());
  REQUIRE(o.warnings.size() == 1);
  json env = json::parse(o.warnings[0]);
  CHECK(o.warnings[0].find(canary) == std::string::npos);
  CHECK_FALSE(env.contains("RECONCILE_TEST_CANARY"));
  CHECK_FALSE(env.contains("AWS_SECRET_ACCESS_KEY"));
  CHECK_FALSE(env.contains("RECONCILE_PLUGIN_ENV_GREETING"));
  CHECK(env["GREETING"] == "hello");
  CHECK(env.contains("PATH"));
  // (Python itself, run directly and not through a shim, adds at most LC_CTYPE.)
  for (const auto& item : env.items()) {
    const std::string name = item.key();  // not a structured binding: clang 14's CHECK_MESSAGE
    bool allowed = name == "PATH" || name == "HOME" || name == "LANG" || name == "TZ" ||
                   name == "GREETING" || name == "LC_CTYPE";  // python may set LC_CTYPE itself
    CHECK_MESSAGE(allowed, name);
  }

  SUBCASE("PluginEnvironment, as a table") {
    std::vector<std::string> got = PluginEnvironment(
        {"HOME=/root", "AWS_ACCESS_KEY_ID=x", "RECONCILE_PLUGIN_ENV_A=1", "RECONCILE_PLUGIN_ENV_=2",
         "GOOGLE_APPLICATION_CREDENTIALS=/k.json", "TZ=UTC", "LANG=C.UTF-8"});
    CHECK(got == std::vector<std::string>{"A=1", "HOME=/root", "LANG=C.UTF-8",
                                          "PATH=/usr/local/bin:/usr/bin:/bin", "TZ=UTC"});
  }
}

// Issue #12 item 3: a traced change's apply_change process gets TRACEPARENT
// (the OpenTelemetry carrier for processes) exactly, once, replacing one the
// operator passed; an untraced change's environment is the usual one.
TEST_CASE("exec provider: TRACEPARENT in the environment of a traced apply_change") {
  TempDir dir("exec-test");
  ::setenv("RECONCILE_PLUGIN_ENV_TRACEPARENT", "operator-value", 1);
  ::setenv("TRACEPARENT", "00-engine0000000000000000000000000-engine0000000000-01", 1);
  WritePlugin(dir, "reconcile-provider-tracedump",
              "#!/usr/bin/python3\n"
              "import json, os, sys\n"
              "sys.stdin.readline()\n"
              "print(json.dumps({'type': 'handshake', 'protocolVersion': 2, 'name': 'tracedump'}), "
              "flush=True)\n"
              "req = json.loads(sys.stdin.readline())\n"
              "raw = open('/proc/self/environ', 'rb').read().split(b'\\0')\n"
              "seen = [e.decode() for e in raw if e.startswith(b'TRACEPARENT=')]\n"
              "result = {'status': {'code': 'ok'}, 'instances': [], 'health': 'unknown', "
              "'warnings': [json.dumps(seen), json.dumps('traceparent' in req['params'])]}\n"
              "if req['method'] == 'schema':\n"
              "    result = {'updatableFields': []}\n"
              "print(json.dumps({'type': 'response', 'result': result}), flush=True)\n");
  ProviderRegistry registry;
  ExecOptions options;
  options.plugin_dirs = {dir.path().string()};
  RegisterExecPlugins(registry, options);  // the process's own environment
  ::unsetenv("RECONCILE_PLUGIN_ENV_TRACEPARENT");
  ::unsetenv("TRACEPARENT");
  REQUIRE(registry.Has("tracedump"));
  Target target;
  target.name = "t1";
  target.provider = "tracedump";
  auto provider = registry.Create(target);
  REQUIRE(provider.ok());
  ApplyChangeRequest request;
  request.target = target;
  request.change.address = "agent.web";
  request.change.name = "web";
  request.change.action = Action::kCreate;
  request.change.desired = json::object();
  const std::string tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  request.traceparent = tp;
  ApplyChangeResponse traced = (*provider)->ApplyChange(request);
  REQUIRE_MESSAGE(traced.status.ok(), traced.status.ToString());
  REQUIRE(traced.warnings.size() == 2);
  CHECK(json::parse(traced.warnings[0]) == json::array({"TRACEPARENT=" + tp}));
  CHECK(traced.warnings[1] == "false");  // the environment only, not the params

  request.traceparent.clear();
  ApplyChangeResponse untraced = (*provider)->ApplyChange(request);
  REQUIRE_MESSAGE(untraced.status.ok(), untraced.status.ToString());
  REQUIRE(untraced.warnings.size() == 2);
  // Only what the operator passed deliberately; never the engine's own.
  CHECK(json::parse(untraced.warnings[0]) == json::array({"TRACEPARENT=operator-value"}));
}

TEST_CASE("exec provider: secret values never reach errors, progress or the log") {
  TempDir dir("exec-test");
  const std::string canary = "s3cr3t-canary-77c2";
  // A careless plugin that repeats every secret it gets, everywhere.
  std::string path = WritePlugin(
      dir, "reconcile-provider-leaky",
      "#!/usr/bin/env python3\n"
      "import json, sys\n"
      "sys.stdin.readline()\n"
      "print(json.dumps({'type': 'handshake', 'protocolVersion': 2}), flush=True)\n"
      "req = json.loads(sys.stdin.readline())\n"
      "s = req['params']['secretValues']['TOKEN']\n"
      "print(json.dumps({'type': 'progress', 'message': 'using ' + s}), flush=True)\n"
      "sys.stderr.write('debug: token=' + s + '\\n')\n"
      "if req['params']['action'] == 'create':\n"
      "    print(json.dumps({'type': 'response', 'error': {'code': 'failed', 'message': 'bad "
      "token ' + s}}), flush=True)\n"
      "else:\n"
      "    print('garbage ' + s, flush=True)\n");
  std::vector<std::string> logged;
  std::mutex mu;
  ExecOptions options;
  options.log = [&](const std::string& plugin, const std::string& line) {
    std::lock_guard<std::mutex> lock(mu);
    logged.push_back(plugin + ": " + line);
  };
  ProviderDefinition d =
      PluginDefinition({"leaky", path}, "leaky", options, {"PATH=/usr/bin:/bin"});
  Target target;
  target.name = "t1";
  target.provider = "leaky";
  auto provider = d.create(target);
  REQUIRE(provider.ok());
  ApplyChangeRequest request;
  request.target = target;
  request.change.address = "agent.web";
  request.change.name = "web";
  request.change.desired = json{{"image", "x"}};
  request.secret_values = {{"TOKEN", canary}};
  std::vector<std::string> progress;
  request.progress = [&](const std::string& m) { progress.push_back(m); };
  for (Action action : {Action::kCreate, Action::kReplace}) {
    CAPTURE(ActionName(action));
    request.change.action = action;
    ApplyChangeResponse r = (*provider)->ApplyChange(request);
    CHECK_FALSE(r.status.ok());
    CHECK(r.status.message().find(canary) == std::string::npos);
    CHECK(r.status.message().find("***") != std::string::npos);
  }
  REQUIRE(progress.size() == 2);
  for (const std::string& p : progress) CHECK(p == "using ***");
  REQUIRE_FALSE(logged.empty());
  for (const std::string& l : logged) CHECK(l.find(canary) == std::string::npos);
  CHECK(logged[0] == "leaky: debug: token=***");
  // The secret went to the plugin only over the pipe; the request's own JSON
  // form for logs has no secret.
  CHECK(ToJson(request, /*include_secrets=*/false).dump().find(canary) == std::string::npos);
}

TEST_CASE("exec provider: plugins are found only on the operator's paths") {
  TempDir first("exec-test"), second("exec-test");
  const std::string script = "#!/bin/sh\nexit 0\n";
  WritePlugin(first, "reconcile-provider-alpha", script);
  WritePlugin(first, "reconcile-provider-docker", script);  // a built-in's name
  WritePlugin(first, "reconcile-provider-Bad_Name", script);
  WritePlugin(first, "reconcile-provider-noexec", script, 0644);
  WritePlugin(first, "other-tool", script);
  std::filesystem::create_directory(first.path() / "reconcile-provider-adir");
  WritePlugin(second, "reconcile-provider-alpha", script);  // shadowed by the first folder
  WritePlugin(second, "reconcile-provider-beta", script);
  std::vector<std::string> notes;
  std::vector<PluginInfo> found = FindPlugins(
      {"relative/dir", first.path().string(), "/nonexistent-reconcile-dir", second.path().string()},
      &notes);
  CHECK(found ==
        std::vector<PluginInfo>{{"alpha", (first.path() / "reconcile-provider-alpha").string()},
                                {"beta", (second.path() / "reconcile-provider-beta").string()}});
  std::string all;
  for (const std::string& n : notes) all += n + "\n";
  CHECK(all.find("'relative/dir' skipped: not an absolute path") != std::string::npos);
  CHECK(all.find("'docker' is a built-in provider's name") != std::string::npos);
  CHECK(all.find("'Bad_Name' is not a plugin name") != std::string::npos);
  CHECK(all.find("reconcile-provider-noexec skipped: not executable") != std::string::npos);
  CHECK(all.find("reconcile-provider-adir skipped: not a regular file") != std::string::npos);
  CHECK(all.find((first.path() / "reconcile-provider-alpha").string() + " comes first") !=
        std::string::npos);

  SUBCASE("RECONCILE_PLUGIN_PATH, or the default folders") {
    CHECK(PluginDirs({"RECONCILE_PLUGIN_PATH=/a::/b/c:"}) ==
          std::vector<std::string>{"/a", "/b/c"});
    CHECK(PluginDirs({"HOME=/root"}) == std::vector<std::string>{"/usr/local/lib/reconcile/plugins",
                                                                 "/usr/lib/reconcile/plugins"});
    CHECK(PluginDirs({"RECONCILE_PLUGIN_PATH="}).size() == 2);
  }
  SUBCASE("registration never shadows a registered provider") {
    ProviderRegistry registry;
    bool beta_is_builtin = false;
    registry.Register("beta",
                      ProviderFactory([&](const Target&) -> Result<std::unique_ptr<Provider>> {
                        beta_is_builtin = true;
                        return Status::Internal("the built-in");
                      }));
    ExecOptions options;
    options.plugin_dirs = {first.path().string(), second.path().string()};
    std::vector<std::string> log;
    options.log = [&](const std::string&, const std::string& line) { log.push_back(line); };
    RegisterExecPlugins(registry, options);
    CHECK(registry.Names() == std::vector<std::string>{"alpha", "beta", "exec"});
    Target t;
    t.name = "t";
    t.provider = "beta";
    (void)registry.Create(t);
    CHECK(beta_is_builtin);
    std::string joined;
    for (const std::string& l : log) joined += l + "\n";
    CHECK(joined.find("a provider named 'beta' exists") != std::string::npos);
  }
}

TEST_CASE("exec provider: validation runs the plugin and names the fields") {
  TempDir dir("exec-test");
  std::string path = WritePlugin(
      dir, "reconcile-provider-v",
      "#!/usr/bin/env python3\n"
      "import json, sys\n"
      "sys.stdin.readline()\n"
      "print(json.dumps({'type': 'handshake', 'protocolVersion': 2}), flush=True)\n"
      "req = json.loads(sys.stdin.readline())\n"
      "p = req['params']\n"
      "if req['method'] == 'validate_target':\n"
      "    d = [] if 'directory' in p['config'] else [{'field': 'directory', 'message': "
      "'required'}]\n"
      "    d += [{'severity': 'warning', 'field': '', 'message': 'seen ' + p['target']}]\n"
      "else:\n"
      "    d = [{'field': 'spec.volumes', 'message': 'cannot mount, config ' + "
      "json.dumps(p['targetConfig'], sort_keys=True)}]\n"
      "print(json.dumps({'type': 'response', 'result': {'diagnostics': d}}), flush=True)\n");
  std::vector<PluginInfo> plugins = {{"v", path}};
  ProviderDefinition direct =
      PluginDefinition(plugins[0], "v", ExecOptions{}, {"PATH=/usr/bin:/bin"});
  ValidateTargetResponse vt = direct.validate_target({"t1", json::object()});
  CHECK(vt.diagnostics ==
        std::vector<ProviderDiagnostic>{{Severity::kError, "spec.v.directory", "required"},
                                        {Severity::kWarning, "spec.v", "seen t1"}});
  ValidateAgentRequest va;
  va.agent = "web";
  va.target = "t1";
  va.target_config = json{{"directory", "/x"}};
  va.spec = json{{"volumes", json::array()}};
  ValidateAgentResponse a = direct.validate_agent(va);
  CHECK(a.diagnostics ==
        std::vector<ProviderDiagnostic>{
            {Severity::kError, "spec.volumes", "cannot mount, config {\"directory\": \"/x\"}"}});

  ExecOptions options;
  options.plugin_dirs = {dir.path().string()};
  ProviderDefinition exec = ExplicitExecDefinition(plugins, options, {"PATH=/usr/bin:/bin"});
  SUBCASE("the explicit form delegates under spec.exec.config") {
    ValidateTargetResponse r =
        exec.validate_target({"t1", json{{"plugin", "v"}, {"config", json::object()}}});
    CHECK(r.diagnostics == std::vector<ProviderDiagnostic>{
                               {Severity::kError, "spec.exec.config.directory", "required"},
                               {Severity::kWarning, "spec.exec.config", "seen t1"}});
    va.target_config = json{{"plugin", "v"}, {"config", {{"directory", "/y"}}}};
    CHECK(exec.validate_agent(va).diagnostics[0].message ==
          "cannot mount, config {\"directory\": \"/y\"}");
  }
  SUBCASE("the explicit form's own errors") {
    ValidateTargetResponse r =
        exec.validate_target({"t1", json{{"plugin", "nope"}, {"config", 3}, {"extra", 1}}});
    REQUIRE(r.diagnostics.size() == 3);
    CHECK(r.diagnostics[0].field == "spec.exec.extra");
    CHECK(r.diagnostics[1].field == "spec.exec.plugin");
    CHECK(r.diagnostics[1].message.find("no plugin 'nope' is installed: looked for "
                                        "reconcile-provider-nope in " +
                                        dir.path().string()) != std::string::npos);
    CHECK(r.diagnostics[2].field == "spec.exec.config");
    Target t;
    t.name = "t1";
    t.provider = "exec";
    t.settings = json{{"plugin", "nope"}};
    auto created = exec.create(t);
    CHECK(created.status().code() == Code::kInvalid);
    CHECK(created.status().message().find("spec.exec.plugin") != std::string::npos);
  }
  SUBCASE("a plugin that fails validation is an error on its block") {
    std::string broken = WritePlugin(dir, "reconcile-provider-broken", "#!/bin/sh\nexit 4\n");
    ProviderDefinition b =
        PluginDefinition({"broken", broken}, "broken", ExecOptions{}, {"PATH=/usr/bin:/bin"});
    ValidateTargetResponse r = b.validate_target({"t1", json::object()});
    REQUIRE(r.diagnostics.size() == 1);
    CHECK(r.diagnostics[0].field == "spec.broken");
    CHECK(r.diagnostics[0].message.find("exited with status 4") != std::string::npos);
  }
}

// The example plugin (Python) through the provider API, as the engine uses it.
TEST_CASE("exec provider: the localfile example plugin") {
  TempDir dir("exec-test");
  const std::string plugin =
      std::string(RECONCILE_SOURCE_DIR) + "/examples/plugins/reconcile-provider-localfile";
  const std::string deploy = (dir.path() / "deployed").string();
  ProviderDefinition d = PluginDefinition({"localfile", plugin}, "localfile", ExecOptions{},
                                          PluginEnvironment({"PATH=/usr/local/bin:/usr/bin:/bin"}));
  CHECK(
      d.validate_target({"t1", json{{"directory", "relative"}, {"colour", "red"}}}).diagnostics ==
      std::vector<ProviderDiagnostic>{
          {Severity::kError, "spec.localfile.colour", "unknown field (localfile takes directory)"},
          {Severity::kError, "spec.localfile.directory",
           "must be an absolute folder path (such as /var/lib/agents)"}});
  CHECK(d.validate_target({"t1", json{{"directory", deploy}}}).diagnostics.empty());
  ValidateAgentRequest va;
  va.agent = "web";
  va.target = "t1";
  va.target_config = json{{"directory", deploy}};
  va.spec = json{{"volumes", json::array({json{{"target", "/data"}}})}};
  auto refused = d.validate_agent(va).diagnostics;
  REQUIRE(refused.size() == 1);
  CHECK(refused[0].field == "spec.volumes");

  Target target;
  target.name = "files";
  target.provider = "localfile";
  target.settings = json{{"directory", deploy}};
  auto created = d.create(target);
  REQUIRE(created.ok());
  Provider& p = **created;
  ProviderSchema schema = p.Schema();
  CHECK(schema.updatable_fields == std::set<std::string>{"env"});
  CHECK_FALSE(schema.instance_per_replica);
  CHECK(schema.target_schema.is_object());

  ObserveResponse o = p.Observe({target});
  REQUIRE_MESSAGE(o.status.ok(), o.status.ToString());
  CHECK(o.instances.empty());

  const std::string canary = "file-secret-canary-19";
  ApplyChangeRequest req;
  req.target = target;
  req.change.address = "agent.web";
  req.change.name = "web";
  req.change.action = Action::kCreate;
  req.change.desired =
      json{{"image", "nginx:1"}, {"env", {{"A", "1"}}}, {"secretEnv", {{"TOKEN", "env:T"}}}};
  req.change.desired_hash = "sha256:one";
  req.revision = "rev1";
  req.secret_values = {{"TOKEN", canary}};
  std::vector<std::string> progress;
  req.progress = [&](const std::string& m) { progress.push_back(m); };
  ApplyChangeResponse a = p.ApplyChange(req);
  REQUIRE_MESSAGE(a.status.ok(), a.status.ToString());
  REQUIRE(a.instances.size() == 1);
  const std::string first_id = a.instances[0].id;
  CHECK(a.instances[0].endpoint == "file://" + deploy + "/web.json");
  CHECK(progress == std::vector<std::string>{"writing " + deploy + "/web.json"});
  const std::string file = ReadFile(deploy + "/web.json");
  CHECK(file.find(canary) == std::string::npos);  // secret values are never written
  CHECK(file.find("\"reconcile.dev/managed-by\": \"reconcile\"") != std::string::npos);

  o = p.Observe({target});
  REQUIRE(o.instances.size() == 1);
  CHECK(o.instances[0].agent == "web");
  CHECK(o.instances[0].spec_hash == "sha256:one");
  CHECK(o.instances[0].revision == "rev1");
  CHECK(o.instances[0].running);

  PlanChangeResponse pc = p.PlanChange({"web", json::object(), json::object(), {"env.A", "image"}});
  CHECK(pc.requires_replace == std::set<std::string>{"image"});

  req.change.action = Action::kUpdate;
  req.change.desired = json{{"image", "nginx:1"}, {"env", {{"A", "2"}}}};
  req.change.desired_hash = "sha256:two";
  req.change.prior = {{first_id, "web"}};
  a = p.ApplyChange(req);
  REQUIRE(a.status.ok());
  CHECK(a.instances[0].id == first_id);  // in place

  req.change.action = Action::kReplace;
  req.change.desired = json{{"image", "nginx:2"}, {"env", {{"A", "2"}}}};
  req.change.desired_hash = "sha256:three";
  a = p.ApplyChange(req);
  REQUIRE(a.status.ok());
  CHECK(a.instances[0].id != first_id);  // a new instance

  // An edit by hand is seen: not running as deployed.
  std::string edited = ReadFile(deploy + "/web.json");
  edited.replace(edited.find("nginx:2"), 7, "nginx:9");
  std::ofstream(deploy + "/web.json") << edited;
  o = p.Observe({target});
  REQUIRE(o.instances.size() == 1);
  CHECK_FALSE(o.instances[0].running);
  CHECK(o.instances[0].state == "modified outside reconcile");

  // A file that is not ours is never touched.
  std::ofstream(deploy + "/other.json") << "{\"agent\": \"other\"}";
  req.change.name = "other";
  req.change.action = Action::kCreate;
  a = p.ApplyChange(req);
  CHECK(a.status.code() == Code::kConflict);
  CHECK(ReadFile(deploy + "/other.json") == "{\"agent\": \"other\"}");

  req.change.name = "web";
  req.change.action = Action::kDelete;
  a = p.ApplyChange(req);
  REQUIRE(a.status.ok());
  CHECK(a.instances.empty());
  CHECK_FALSE(std::filesystem::exists(deploy + "/web.json"));
  o = p.Observe({target});
  CHECK(o.instances.empty());
}

}  // namespace
}  // namespace reconcile::exec
