#include "exec/plugin_process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <optional>
#include <thread>
#include <utility>

#include "reconcile/provider.h"
#include "reconcile/provider_json.h"

namespace reconcile::exec {
namespace {

using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kPollSlice{50};
constexpr std::size_t kMaxLoggedLine = 4096;
constexpr std::size_t kStderrInError = 1000;

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Close(); }
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      Close();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  bool open() const { return fd_ >= 0; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

Status MakePipe(Fd& read_end, Fd& write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return Status::Internal(std::string("pipe: ") + strerror(errno));
  read_end = Fd(fds[0]);
  write_end = Fd(fds[1]);
  return Status::Ok();
}

void SetNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* abbrev = sigabbrev_np(sig);
    return "was killed by signal " + std::to_string(sig) +
           (abbrev ? " (SIG" + std::string(abbrev) + ")" : "");
  }
  return "ended with wait status " + std::to_string(status);
}

std::string FormatDuration(milliseconds d) {
  if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + "s";
  return std::to_string(d.count()) + "ms";
}

// The plugin's process: its pid is also its process group's id, and stays
// so until the leader is reaped.
class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { Kill(); }

  pid_t pid = -1;
  int status = 0;  // wait status, once reaped
  bool reaped = false;

  // True once the leader has exited (it is not reaped: the group stays).
  bool Exited() const {
    if (pid < 0 || reaped) return true;
    siginfo_t info{};
    if (::waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0) return errno == ECHILD;
    return info.si_pid == pid;
  }
  void Signal(int sig) const {
    if (pid > 0 && !reaped) ::kill(-pid, sig);
  }
  // SIGKILL to the whole group (stragglers too), then reaps the leader.
  void Kill() {
    if (pid < 0 || reaped) return;
    ::kill(-pid, SIGKILL);
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    reaped = true;
  }
  // Waits up to `grace` for the leader to exit, then Kill(). Returns whether
  // it had exited by itself.
  bool WaitThenKill(milliseconds grace) {
    auto until = SteadyClock::now() + grace;
    while (!Exited() && SteadyClock::now() < until) std::this_thread::sleep_for(milliseconds(5));
    bool exited = Exited();
    Kill();
    return exited;
  }
  // SIGTERM to the group, up to `grace` to exit, then Kill().
  void Terminate(milliseconds grace) {
    Signal(SIGTERM);
    WaitThenKill(grace);
  }
};

// write(2) with SIGPIPE blocked in this thread (a plugin that closed its
// stdin gives EPIPE, never a signal that ends the engine).
ssize_t WriteWithoutSigpipe(int fd, const char* data, std::size_t size) {
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  ssize_t written = ::write(fd, data, size);
  int saved = errno;
  if (written < 0 && saved == EPIPE) {
    timespec zero{0, 0};
    while (sigtimedwait(&pipe_set, nullptr, &zero) > 0) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = saved;
  return written;
}

// `s` with every byte that is not part of a valid UTF-8 sequence replaced by
// '?': what a plugin wrote may end up in JSON (state, status, events).
std::string ValidUtf8(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  while (i < s.size()) {
    unsigned char c = byte(i);
    std::size_t len = c < 0x80           ? 1
                      : (c >> 5) == 0x6  ? 2
                      : (c >> 4) == 0xE  ? 3
                      : (c >> 3) == 0x1E ? 4
                                         : 0;
    bool ok = len > 0 && i + len <= s.size() && c != 0xC0 && c != 0xC1 && c <= 0xF4;
    for (std::size_t k = 1; ok && k < len; ++k) ok = (byte(i + k) >> 6) == 0x2;
    if (ok && len >= 3) {
      unsigned char n = byte(i + 1);
      ok = !(c == 0xE0 && n < 0xA0) && !(c == 0xED && n >= 0xA0) && !(c == 0xF0 && n < 0x90) &&
           !(c == 0xF4 && n >= 0x90);
    }
    if (ok) {
      out.append(s, i, len);
      i += len;
    } else {
      out += '?';
      ++i;
    }
  }
  return out;
}

std::string Line(const json& message) {
  return message.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

void RedactStrings(json& j, const std::vector<std::string>& secrets) {
  if (j.is_string()) {
    j = Redact(j.get<std::string>(), secrets);
  } else if (j.is_structured()) {
    for (auto& item : j) RedactStrings(item, secrets);
  }
}

Status Spawn(const PluginCall& call, Child& child, Fd& in, Fd& out, Fd& err) {
  Fd in_read, out_write, err_write;
  Status s = MakePipe(in_read, in);
  if (s.ok()) s = MakePipe(out, out_write);
  if (s.ok()) s = MakePipe(err, err_write);
  if (!s.ok()) return s;

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_read.get(), 0);
  posix_spawn_file_actions_adddup2(&actions, out_write.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, err_write.get(), 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none, defaults;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2}) {
    sigaddset(&defaults, sig);
  }
  posix_spawnattr_setsigdefault(&attr, &defaults);

  std::vector<char*> argv = {const_cast<char*>(call.path.c_str()), nullptr};
  std::vector<char*> envp;
  for (const std::string& e : call.environment) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, call.path.c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return Status::Failed("plugin '" + call.plugin + "' (" + call.path +
                          "): cannot be started: " + strerror(rc));
  }
  child.pid = pid;
  SetNonBlocking(in.get());
  SetNonBlocking(out.get());
  SetNonBlocking(err.get());
  return Status::Ok();
}

// One call's exchange with a running plugin.
class Exchange {
 public:
  explicit Exchange(const PluginCall& call)
      : call_(call), who_("plugin '" + call.plugin + "' (" + call.path + ")") {}

  Result<json> Run() {
    if (Status s = Spawn(call_, child_, in_, out_, err_); !s.ok()) return s;
    Queue({{"type", "handshake"},
           {"protocolVersion", kProviderProtocolVersion},
           {"engine", "reconcile"},
           {"engineVersion", call_.engine_version}});
    const auto start = SteadyClock::now();
    const auto deadline = start + call_.timeout;
    bool stop_sent = false, term_sent = false;
    SteadyClock::time_point stop_at, term_at;

    while (!outcome_) {
      const auto now = SteadyClock::now();
      const bool stop_requested =
          call_.stop.stop_requested() || (call_.stopped != nullptr && call_.stopped->load());
      if (stop_requested && !stop_sent) {
        stop_sent = true;
        stop_at = now;
        if (!handshaken_) {
          child_.Kill();
          outcome_ = Status::Cancelled(who_ + ": stopped before the call started");
          break;
        }
        Queue({{"type", "stop"}});
      }
      if (stop_sent && !term_sent && now >= stop_at + call_.stop_grace) {
        child_.Signal(SIGTERM);
        term_sent = true;
        term_at = now;
      }
      if (term_sent && now >= term_at + call_.kill_grace) {
        child_.Kill();
        outcome_ = Status::Cancelled(who_ + ": did not answer the stop request within " +
                                     FormatDuration(call_.stop_grace) +
                                     "; it was sent SIGTERM, then killed");
        break;
      }
      if (!stop_sent && now >= deadline) {
        child_.Terminate(call_.kill_grace);
        Fail(Code::kUnavailable, "no answer to '" + call_.method + "' within " +
                                     FormatDuration(call_.timeout) +
                                     " (timeout); the plugin was killed");
        break;
      }

      pollfd fds[3];
      int n = 0;
      int in_index = -1, out_index = -1, err_index = -1;
      if (in_.open() && pos_ < pending_.size()) {
        in_index = n;
        fds[n++] = {in_.get(), POLLOUT, 0};
      }
      if (out_.open()) {
        out_index = n;
        fds[n++] = {out_.get(), POLLIN, 0};
      }
      if (err_.open()) {
        err_index = n;
        fds[n++] = {err_.get(), POLLIN, 0};
      }
      int rc = ::poll(fds, n, static_cast<int>(kPollSlice.count()));
      if (rc < 0 && errno != EINTR) {
        child_.Kill();
        Fail(Code::kInternal, std::string("poll: ") + strerror(errno));
        break;
      }
      if (rc > 0) {
        if (in_index >= 0 && fds[in_index].revents != 0) WritePending();
        if (err_index >= 0 && fds[err_index].revents != 0) ReadStderr();
        if (out_index >= 0 && fds[out_index].revents != 0) ReadStdout();
        if (outcome_) break;
      }
      if (!out_.open()) {
        // EOF on stdout without a response.
        bool exited = child_.WaitThenKill(call_.exit_grace);
        ReadStderr();
        Fail(stop_sent ? Code::kCancelled : Code::kFailed,
             (exited ? DescribeExit(child_.status) : std::string("closed its output")) +
                 " before answering '" + call_.method + "'");
        break;
      }
      if (child_.Exited()) {
        // The leader is gone; what it wrote may still be in the pipe.
        ReadStdout();
        ReadStderr();
        if (outcome_) break;
        child_.Kill();
        Fail(stop_sent ? Code::kCancelled : Code::kFailed,
             DescribeExit(child_.status) + " before answering '" + call_.method + "'");
        break;
      }
    }
    in_.Close();
    if (!child_.reaped) child_.WaitThenKill(call_.exit_grace);
    ReadStderr();
    if (!stderr_line_.empty()) LogStderr(stderr_line_);
    return std::move(*outcome_);
  }

 private:
  void Queue(const json& message) { pending_ += Line(message); }

  void WritePending() {
    while (pos_ < pending_.size()) {
      ssize_t w = WriteWithoutSigpipe(in_.get(), pending_.data() + pos_, pending_.size() - pos_);
      if (w > 0) {
        pos_ += static_cast<std::size_t>(w);
        continue;
      }
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      // EPIPE: the plugin closed its stdin; what it answers (or not) tells.
      in_.Close();
      return;
    }
  }

  void ReadStdout() {
    char buf[65536];
    while (out_.open() && !outcome_) {
      ssize_t r = ::read(out_.get(), buf, sizeof buf);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return;  // EAGAIN
      if (r == 0) {
        out_.Close();
        if (!line_.empty() && !outcome_) {
          Fail(Code::kFailed, "wrote a last line without a newline: " + Excerpt(line_));
        }
        return;
      }
      line_.append(buf, static_cast<std::size_t>(r));
      std::size_t nl;
      while (!outcome_ && (nl = line_.find('\n')) != std::string::npos) {
        std::string line = line_.substr(0, nl);
        line_.erase(0, nl + 1);
        HandleLine(line);
      }
      if (!outcome_ && line_.size() > call_.limits.max_response_bytes) {
        child_.Kill();
        Fail(Code::kFailed, "wrote a line over the " +
                                std::to_string(call_.limits.max_response_bytes) +
                                "-byte limit; the plugin was killed");
      }
    }
  }

  void ReadStderr() {
    char buf[16384];
    while (err_.open()) {
      ssize_t r = ::read(err_.get(), buf, sizeof buf);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return;
      if (r == 0) {
        err_.Close();
        return;
      }
      std::string chunk(buf, static_cast<std::size_t>(r));
      stderr_tail_ += chunk;
      if (stderr_tail_.size() > call_.limits.max_stderr_bytes) {
        stderr_tail_.erase(0, stderr_tail_.size() - call_.limits.max_stderr_bytes);
      }
      stderr_line_ += chunk;
      std::size_t nl;
      while ((nl = stderr_line_.find('\n')) != std::string::npos) {
        LogStderr(stderr_line_.substr(0, nl));
        stderr_line_.erase(0, nl + 1);
      }
      if (stderr_line_.size() > kMaxLoggedLine) {
        LogStderr(stderr_line_);
        stderr_line_.clear();
      }
    }
  }

  void LogStderr(std::string line) {
    if (!call_.log) return;
    if (line.size() > kMaxLoggedLine) line = line.substr(0, kMaxLoggedLine) + "...";
    call_.log(ValidUtf8(Redact(std::move(line), call_.secrets)));
  }

  std::string Excerpt(const std::string& text) const {
    std::string e = text.size() > 200 ? text.substr(0, 200) + "..." : text;
    return "'" + Redact(std::move(e), call_.secrets) + "'";
  }

  void Fail(Code code, const std::string& what) {
    std::string message = who_ + ": " + what;
    std::string tail = stderr_tail_;
    while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r')) tail.pop_back();
    if (tail.size() > kStderrInError) tail = "..." + tail.substr(tail.size() - kStderrInError);
    if (!tail.empty()) message += "; its stderr: " + tail;
    outcome_ = Status(code, ValidUtf8(Redact(std::move(message), call_.secrets)));
  }

  void HandleLine(const std::string& line) {
    json m = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (m.is_discarded() || !m.is_object() || !m.contains("type") || !m["type"].is_string()) {
      child_.Kill();
      Fail(Code::kFailed,
           "wrote a line that is not a protocol message (a JSON object with a "
           "\"type\"): " +
               Excerpt(line));
      return;
    }
    const std::string type = m["type"].get<std::string>();
    if (!handshaken_) {
      if (type != "handshake") {
        child_.Kill();
        Fail(Code::kFailed, "answered the handshake with a '" + Redact(type, call_.secrets) +
                                "' message; a plugin first answers {\"type\":\"handshake\", "
                                "\"protocolVersion\": " +
                                std::to_string(kProviderProtocolVersion) + ", \"name\": ...}");
        return;
      }
      auto v = m.find("protocolVersion");
      if (v == m.end() || !v->is_number_integer()) {
        child_.Kill();
        Fail(Code::kFailed, "answered the handshake without an integer protocolVersion");
        return;
      }
      if (v->get<long long>() != kProviderProtocolVersion) {
        child_.Kill();
        Fail(Code::kFailed,
             "speaks plugin protocol version " + std::to_string(v->get<long long>()) +
                 "; this engine speaks version " + std::to_string(kProviderProtocolVersion) +
                 " (install a build of the plugin for protocol version " +
                 std::to_string(kProviderProtocolVersion) + ")");
        return;
      }
      handshaken_ = true;
      Queue({{"type", "request"},
             {"method", call_.method},
             {"config", call_.config},
             {"params", call_.params}});
      return;
    }
    if (type == "progress") {
      if (line.size() > call_.limits.max_progress_bytes) {
        child_.Kill();
        Fail(Code::kFailed, "wrote a progress line over the " +
                                std::to_string(call_.limits.max_progress_bytes) +
                                "-byte limit; the plugin was killed");
        return;
      }
      auto msg = m.find("message");
      if (msg == m.end() || !msg->is_string()) {
        child_.Kill();
        Fail(Code::kFailed, "wrote a progress line without a string \"message\"");
        return;
      }
      if (call_.progress) call_.progress(Redact(msg->get<std::string>(), call_.secrets));
      return;
    }
    if (type == "response") {
      if (line.size() > call_.limits.max_response_bytes) {
        child_.Kill();
        Fail(Code::kFailed, "wrote a response over the " +
                                std::to_string(call_.limits.max_response_bytes) +
                                "-byte limit; the plugin was killed");
        return;
      }
      if (auto e = m.find("error"); e != m.end()) {
        Status status;
        Status bad = StatusFromJson(*e, status);
        if (!bad.ok()) {
          Fail(Code::kFailed, "answered with a malformed error (" + bad.message() + ")");
        } else if (status.ok()) {
          Fail(Code::kFailed, "answered with an error whose code is ok");
        } else {
          outcome_ = Status(status.code(), Redact(who_ + ": " + status.message(), call_.secrets));
        }
        return;
      }
      auto r = m.find("result");
      if (r == m.end() || !r->is_object()) {
        Fail(Code::kFailed, "answered '" + call_.method +
                                "' with a response without a \"result\" object or an \"error\"");
        return;
      }
      json result = std::move(*r);
      if (!call_.secrets.empty()) RedactStrings(result, call_.secrets);
      outcome_ = std::move(result);
      return;
    }
    child_.Kill();
    Fail(Code::kFailed, "wrote an unknown message type '" + Redact(type, call_.secrets) +
                            "' (expected progress or response)");
  }

  const PluginCall& call_;
  const std::string who_;
  Child child_;
  Fd in_, out_, err_;
  std::string pending_;  // bytes for the plugin's stdin
  std::size_t pos_ = 0;  // written so far
  std::string line_;     // stdout since the last newline
  std::string stderr_tail_, stderr_line_;
  bool handshaken_ = false;
  std::optional<Result<json>> outcome_;
};

}  // namespace

std::string Redact(std::string text, const std::vector<std::string>& secrets) {
  for (const std::string& secret : secrets) {
    if (secret.empty()) continue;
    for (std::size_t at = text.find(secret); at != std::string::npos;
         at = text.find(secret, at + 3)) {
      text.replace(at, secret.size(), "***");
    }
  }
  return text;
}

Result<json> RunPluginCall(const PluginCall& call) { return Exchange(call).Run(); }

}  // namespace reconcile::exec
