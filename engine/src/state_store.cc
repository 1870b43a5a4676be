#include "reconcile/state_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <exception>
#include <limits>
#include <optional>
#include <random>
#include <set>
#include <string_view>
#include <system_error>
#include <utility>

#include <nlohmann/json.hpp>

#include "reconcile/spec.h"

namespace reconcile {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr size_t kMaxHistory = 100;
constexpr size_t kMaxStateFileBytes = 64u << 20;  // refuse to slurp absurd files
constexpr int kMaxJsonDepth = 256;

std::string ErrnoText(int err) { return std::strerror(err); }

// Closes a file descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&&) = delete;
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  // Closes and reports close()'s own error (it can carry a deferred write error).
  int Close() {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

std::string RandomSuffix() {
  thread_local std::mt19937_64 rng{std::random_device{}() ^
                                   (static_cast<uint64_t>(::getpid()) << 32)};
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t v = rng();
  std::string s;
  for (int i = 0; i < 12; ++i) {
    s.push_back(kHex[v & 0xf]);
    v >>= 4;
  }
  return s;
}

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

Status FsyncDir(const fs::path& dir) {
  Fd fd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid())
    return Status::Failed("cannot open folder " + dir.string() + ": " + ErrnoText(errno));
  if (::fsync(fd.get()) != 0 && errno != EINVAL) {
    return Status::Failed("cannot fsync folder " + dir.string() + ": " + ErrnoText(errno));
  }
  return Status::Ok();
}

enum class ReadResult { kOk, kMissing, kError };

// Reads a whole file of at most `limit` bytes.
ReadResult ReadFile(const fs::path& path, size_t limit, std::string* out, Status* error) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return ReadResult::kMissing;
    *error = Status::Failed("cannot open " + path.string() + ": " + ErrnoText(errno));
    return ReadResult::kError;
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    *error = Status::Invalid(path.string() + " is not a regular file");
    return ReadResult::kError;
  }
  out->clear();
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      *error = Status::Failed("cannot read " + path.string() + ": " + ErrnoText(errno));
      return ReadResult::kError;
    }
    if (n == 0) break;
    if (out->size() + static_cast<size_t>(n) > limit) {
      *error = Status::Invalid(path.string() + " is larger than " + std::to_string(limit >> 20) +
                               " MiB");
      return ReadResult::kError;
    }
    out->append(buf, static_cast<size_t>(n));
  }
  return ReadResult::kOk;
}

// Parses JSON text with a nesting limit; never throws.
// True when `text` nests arrays/objects deeper than kMaxJsonDepth (the
// top-level value at depth 0). One linear pass that skips strings: a parser
// callback would do the same check but makes nlohmann's parse quadratic in
// the number of objects (it re-scans each parent as a child ends).
bool TooDeep(const std::string& text) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth + 1) return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
}

Result<json> ParseJson(const std::string& text) {
  if (TooDeep(text)) {
    return Status::Invalid("nesting deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  try {
    return json::parse(text, nullptr, /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const json::exception& e) {
    // Drop nlohmann's "[json.exception.parse_error.101] " tag; keep the position.
    std::string_view what = e.what();
    if (what.starts_with("[json.exception.")) {
      size_t end = what.find("] ");
      if (end != std::string_view::npos) what.remove_prefix(end + 2);
    }
    return Status::Invalid(std::string(what));
  } catch (const std::exception& e) {
    return Status::Invalid(e.what());
  }
}

Result<std::string> Dump(const json& j) {
  try {
    return j.dump(2) + "\n";
  } catch (const std::exception& e) {
    return Status::Invalid(std::string("cannot serialize: ") + e.what());
  }
}

// One line per top-level element: compact (history.json holds a spec hash
// per resource; at 10,000 agents indentation alone would add megabytes),
// yet diffable.
Result<std::string> DumpCompact(const json& j) {
  try {
    if (!j.is_object()) return j.dump() + "\n";
    std::string out = "{";
    bool first = true;
    for (const auto& [key, value] : j.items()) {
      out += first ? "\n" : ",\n";
      first = false;
      out += json(key).dump() + ":";
      if (value.is_array()) {
        out += "[";
        for (size_t i = 0; i < value.size(); ++i) out += (i ? ",\n" : "\n") + value[i].dump();
        out += "]";
      } else {
        out += value.dump();
      }
    }
    return out + "\n}\n";
  } catch (const std::exception& e) {
    return Status::Invalid(std::string("cannot serialize: ") + e.what());
  }
}

std::string FormatRfc3339(std::chrono::system_clock::time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  time_t secs = static_cast<time_t>(ms / 1000);
  int frac = static_cast<int>(ms % 1000);
  if (frac < 0) {
    frac += 1000;
    --secs;
  }
  struct tm tm {};
  ::gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
  return buf;
}

// Parses "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+hh:mm|-hh:mm)".
std::optional<std::chrono::system_clock::time_point> ParseRfc3339(std::string_view s) {
  auto num = [&s](size_t pos, size_t len, int* out) {
    if (pos + len > s.size()) return false;
    for (size_t i = pos; i < pos + len; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
    }
    auto r = std::from_chars(s.data() + pos, s.data() + pos + len, *out);
    return r.ec == std::errc();
  };
  int y, mo, d, h, mi, sec;
  if (!num(0, 4, &y) || s.size() < 19 || s[4] != '-' || !num(5, 2, &mo) || s[7] != '-' ||
      !num(8, 2, &d) || (s[10] != 'T' && s[10] != 't') || !num(11, 2, &h) || s[13] != ':' ||
      !num(14, 2, &mi) || s[16] != ':' || !num(17, 2, &sec)) {
    return std::nullopt;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  size_t pos = 19;
  int64_t millis = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t start = pos;
    int scale = 100;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      millis += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
  }
  int offset_minutes = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!num(pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !num(pos + 4, 2, &om)) {
      return std::nullopt;
    }
    offset_minutes = (oh * 60 + om) * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  struct tm tm {};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  time_t t = ::timegm(&tm);
  return std::chrono::system_clock::from_time_t(t) - std::chrono::minutes(offset_minutes) +
         std::chrono::milliseconds(millis);
}

std::string HostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

// The JSON form of lock.json. `token` makes every lock's content unique, so a
// holder releases only its own lock.
std::string LockContent(const LockInfo& info, const std::string& token) {
  json j{{"pid", info.pid},
         {"host", info.host},
         {"startedAt", info.started_at},
         {"command", info.command},
         {"token", token}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<LockInfo> ParseLock(const std::string& text) {
  auto j = ParseJson(text);
  if (!j.ok()) return j.status();
  try {
    if (!j->is_object()) return Status::Invalid("expected an object");
    LockInfo info;
    auto pid = j->find("pid");
    if (pid == j->end() || !pid->is_number_integer())
      return Status::Invalid("pid: missing or not an integer");
    auto p = pid->get<int64_t>();
    if (p <= 0 || p > std::numeric_limits<int>::max()) return Status::Invalid("pid: out of range");
    info.pid = static_cast<int>(p);
    for (auto [key, out] : {std::pair<const char*, std::string*>{"host", &info.host},
                            {"startedAt", &info.started_at},
                            {"command", &info.command}}) {
      auto it = j->find(key);
      if (it == j->end() || !it->is_string()) {
        return Status::Invalid(std::string(key) + ": missing or not a string");
      }
      *out = it->get<std::string>();
    }
    if (!ParseRfc3339(info.started_at)) {
      return Status::Invalid("startedAt: not an RFC 3339 time: " + info.started_at);
    }
    return info;
  } catch (const std::exception& e) {
    return Status::Invalid(e.what());
  }
}

// Serializes lock decisions between processes and threads: an flock on the
// state folder itself, held while lock.json is read, judged and replaced.
class DirGuard {
 public:
  static Result<DirGuard> Take(const fs::path& dir, int op) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
      return Status::Failed("cannot open state folder " + dir.string() + ": " + ErrnoText(errno));
    while (::flock(fd, op) != 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return Status::Failed("cannot lock state folder " + dir.string() + ": " + ErrnoText(err));
    }
    return DirGuard(fd);
  }
  DirGuard(DirGuard&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  DirGuard& operator=(DirGuard&&) = delete;
  ~DirGuard() {
    if (fd_ >= 0) ::close(fd_);  // also drops the flock
  }

 private:
  explicit DirGuard(int fd) : fd_(fd) {}
  int fd_;
};

// A held lock: an flock on `lock` (kept open for the holder's lifetime, so
// the kernel releases it when the holder dies, however it dies), and
// lock.json naming the holder for people.
class FileStateLock : public StateLock {
 public:
  FileStateLock(fs::path dir, fs::path path, std::string content, Fd holder)
      : dir_(std::move(dir)),
        path_(std::move(path)),
        content_(std::move(content)),
        holder_(std::move(holder)) {}
  ~FileStateLock() override { Release(); }

  void Release() override {
    if (released_) return;
    released_ = true;
    {
      auto guard = DirGuard::Take(dir_, LOCK_EX);
      if (guard.ok()) {
        std::string current;
        Status error;
        if (ReadFile(path_, kMaxStateFileBytes, &current, &error) == ReadResult::kOk &&
            current == content_ && ::unlink(path_.c_str()) == 0) {
          (void)FsyncDir(dir_);
        }
      }
    }
    holder_.Reset();  // drops the flock last: nobody takes over a half-removed lock
  }

 private:
  fs::path dir_;
  fs::path path_;
  std::string content_;
  Fd holder_;
  bool released_ = false;
};

class FileStateStore : public StateStore {
 public:
  explicit FileStateStore(fs::path dir)
      : dir_(std::move(dir)),
        state_path_(dir_ / "state.json"),
        history_path_(dir_ / "history.json"),
        specs_dir_(dir_ / "specs"),
        lock_path_(dir_ / "lock.json"),
        holder_path_(dir_ / "lock") {}

  Result<std::shared_ptr<const State>> LoadShared() override {
    // A long-lived process (the controller) reads the same file every pass:
    // keep the last state while the file is the same one. Every save renames
    // a new file into place (a new inode); an edit in place changes the size
    // or the mtime, but file times are coarse (a few ms), so a file whose
    // mtime is under a second old is compared by content (git's "racy" rule).
    FileKey key = KeyOf(state_path_);
    if (cached_ && cached_trusted_ && key.valid && key == cached_key_) return cached_;
    std::string text;
    Status error;
    switch (ReadFile(state_path_, kMaxStateFileBytes, &text, &error)) {
      case ReadResult::kMissing:
        return std::make_shared<const State>();
      case ReadResult::kError:
        return Corrupt(state_path_, "state", error);
      case ReadResult::kOk:
        break;
    }
    const size_t digest = std::hash<std::string>{}(text);
    if (cached_ && key.valid && key == cached_key_ && digest == cached_digest_ &&
        key == KeyOf(state_path_)) {
      // Same content once the mtime is settled: a later edit changes the mtime.
      if (key.Settled()) cached_trusted_ = true;
      return cached_;
    }
    auto j = ParseJson(text);
    if (!j.ok()) return Corrupt(state_path_, "state", j.status());
    auto state = StateFromJson(*j);
    if (!state.ok()) return Corrupt(state_path_, "state", state.status());
    auto shared = std::make_shared<const State>(std::move(state).value());
    Remember(key, digest, shared);
    return shared;
  }

  Result<int> Save(State state) override {
    auto current = LoadShared();
    if (!current.ok()) return current.status();  // never overwrite a corrupt file
    if ((*current)->serial == std::numeric_limits<int>::max() ||
        state.serial == std::numeric_limits<int>::max()) {
      return Status::Invalid("state serial overflow");
    }
    // Compare-and-swap on the serial (Terraform's lineage/serial rule): a
    // caller that read an older state than the one stored would overwrite
    // an update it never saw.
    if (state.serial < (*current)->serial) {
      return Status::Conflict(
          "state was saved by another run since this one read it (stored "
          "serial " +
          std::to_string((*current)->serial) + ", this run's " + std::to_string(state.serial) +
          "); nothing was written to " + state_path_.string() + "; run the command again");
    }
    const int serial = state.serial + 1;
    auto next = std::make_shared<State>(std::move(state));
    next->serial = serial;
    auto text = Dump(ToJson(*next));
    if (!text.ok()) return text.status().WithContext("cannot save state");
    if (Status s = EnsureDir(); !s.ok()) return s;
    cached_.reset();
    if (Status s = WriteFileAtomic(state_path_, *text); !s.ok()) return s;
    // What this store just renamed into place is known without parsing it.
    Remember(KeyOf(state_path_), std::hash<std::string>{}(*text), next);
    return next->serial;
  }

  Result<History> LoadHistory() override {
    std::string text;
    Status error;
    switch (ReadFile(history_path_, kMaxStateFileBytes, &text, &error)) {
      case ReadResult::kMissing:
        return History{};
      case ReadResult::kError:
        return Corrupt(history_path_, "history", error);
      case ReadResult::kOk:
        break;
    }
    auto j = ParseJson(text);
    if (!j.ok()) return Corrupt(history_path_, "history", j.status());
    if (!j->is_array() && !j->is_object()) {
      return Corrupt(
          history_path_, "history",
          Status::Invalid(std::string("top level: expected an object, got ") + j->type_name()));
    }
    auto history = HistoryFromJson(*j);
    if (!history.ok()) return Corrupt(history_path_, "history", history.status());
    return history;
  }

  Status AppendHistory(const HistoryEntry& entry, const HistoryResources& given,
                       const SpecSource& spec_of, int keep) override {
    auto loaded = LoadHistory();
    if (!loaded.ok()) return loaded.status();  // never overwrite a corrupt file
    History& history = *loaded;
    // One new pack: the specs of this apply that the store does not hold,
    // and those of a version 1 history (inline until now).
    json pack = json::object();
    for (const auto& [hash, spec] : history.legacy_specs) pack[hash] = spec;
    const std::map<std::string, std::string> stored = ReferencedSpecs(history);
    HistoryResources resources = given;
    std::vector<std::string> fresh;  // addresses whose spec goes into the new pack
    for (auto& [address, r] : resources) {
      r.pack.clear();
      if (auto it = stored.find(r.spec_hash); it != stored.end() && !it->second.empty()) {
        r.pack = it->second;
        continue;
      }
      if (!pack.contains(r.spec_hash)) {
        std::optional<json> spec = spec_of ? spec_of(address) : std::nullopt;
        if (!spec) {
          return Status::Internal("history: no spec for " + address + " (" + r.spec_hash + ")");
        }
        pack[r.spec_hash] = *spec;
      }
      fresh.push_back(address);
    }
    if (!pack.empty()) {
      auto text = DumpCompact(json{{"version", 1}, {"specs", pack}});
      if (!text.ok()) return text.status().WithContext("cannot save specs");
      const std::string id = Sha256Hex(*text).substr(0, 16);
      if (Status s = EnsureDir(); !s.ok()) return s;
      if (Status s = EnsureSpecsDir(); !s.ok()) return s;
      // Written (and fsynced) before history.json names it.
      if (Status s = WriteFileAtomic(specs_dir_ / (id + ".json"), *text); !s.ok()) return s;
      for (const std::string& address : fresh) resources[address].pack = id;
      for (HistoryEntry& e : history.entries) {
        for (auto& [address, r] : e.changed) {
          if (r.pack.empty()) r.pack = id;
        }
      }
      history.legacy_specs.clear();
    }
    AppendEntry(history, entry, resources, LastResources(history));
    TrimHistory(history, kMaxHistory, keep);
    auto text = DumpCompact(ToJson(history));
    if (!text.ok()) return text.status().WithContext("cannot save history");
    if (Status s = EnsureDir(); !s.ok()) return s;
    if (Status s = WriteFileAtomic(history_path_, *text); !s.ok()) return s;
    CollectSpecs(history);
    return Status::Ok();
  }

  Result<std::map<std::string, json>> LoadSpecs(const History& history,
                                                const HistoryResources& resources) override {
    std::map<std::string, json> out;
    std::map<std::string, json> packs;  // id -> its "specs" object
    for (const auto& [address, r] : resources) {
      const json* spec = nullptr;
      if (r.pack.empty()) {
        auto it = history.legacy_specs.find(r.spec_hash);
        if (it == history.legacy_specs.end()) {
          return Status::Invalid("history: no spec stored for " + address + " (" + r.spec_hash +
                                 ")");
        }
        spec = &it->second;
      } else {
        auto it = packs.find(r.pack);
        if (it == packs.end()) {
          auto loaded = LoadPack(r.pack);
          if (!loaded.ok()) return loaded.status();
          it = packs.emplace(r.pack, std::move(*loaded)).first;
        }
        auto found = it->second.find(r.spec_hash);
        const fs::path path = specs_dir_ / (r.pack + ".json");
        if (found == it->second.end()) {
          return Status::Invalid("spec store file " + path.string() +
                                 " does not hold the spec of " + address + " (" + r.spec_hash +
                                 ")");
        }
        spec = &*found;
      }
      if (SpecHash(*spec) != r.spec_hash) {
        return Status::Invalid("the stored spec of " + address + " does not match its hash " +
                               r.spec_hash + " (the spec store was changed)");
      }
      out.emplace(address, *spec);
    }
    return out;
  }

  Result<std::unique_ptr<StateLock>> Lock(const std::string& command) override {
    if (Status s = EnsureDir(); !s.ok()) return s;
    auto guard = DirGuard::Take(dir_, LOCK_EX);
    if (!guard.ok()) return guard.status();

    // The kernel's word on liveness: whoever holds the flock on `lock` is a
    // live process (on this host or, with a shared file system that supports
    // flock, elsewhere). It is never taken over, whatever its age.
    Fd holder(::open(holder_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!holder.valid()) {
      return Status::Failed("cannot open lock file " + holder_path_.string() + ": " +
                            ErrnoText(errno));
    }
    if (::flock(holder.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK) {
        return Status::Failed("cannot lock " + holder_path_.string() + ": " + ErrnoText(errno));
      }
      return Held("");
    }

    LockInfo me;
    me.pid = static_cast<int>(::getpid());
    me.host = HostName();
    me.started_at = FormatRfc3339(std::chrono::system_clock::now());
    me.command = command;
    // A lock.json left by a run on another host may belong to a live run
    // whose flock this host cannot see: only `reconcile unlock` breaks it.
    // One from this host, with the flock free, was left by a dead run.
    if (auto existing = ReadHolder();
        existing.ok() && existing->has_value() && (*existing)->host != me.host) {
      return Held((*existing)->host);
    }
    std::string content = LockContent(me, RandomSuffix() + RandomSuffix());
    if (Status s = WriteFileAtomic(lock_path_, content); !s.ok()) return s;
    return std::unique_ptr<StateLock>(
        std::make_unique<FileStateLock>(dir_, lock_path_, std::move(content), std::move(holder)));
  }

  Status Unlock() override {
    if (!fs::is_directory(dir_)) return NoLock();
    auto guard = DirGuard::Take(dir_, LOCK_EX);
    if (!guard.ok()) return guard.status();
    Fd holder(::open(holder_path_.c_str(), O_RDWR | O_CLOEXEC));
    if (holder.valid() && ::flock(holder.get(), LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
      Status held = Held("");
      return Status::Conflict(held.message().substr(0, held.message().find(';')) +
                              "; that run is alive: stop it (SIGTERM) instead of unlocking");
    }
    if (::unlink(lock_path_.c_str()) != 0) {
      if (errno == ENOENT) return NoLock();
      return Status::Failed("cannot remove lock file " + lock_path_.string() + ": " +
                            ErrnoText(errno));
    }
    (void)FsyncDir(dir_);
    return Status::Ok();
  }

  Result<std::optional<LockInfo>> Holder() override {
    std::error_code ec;
    if (!fs::is_directory(dir_, ec)) return std::optional<LockInfo>();
    auto guard = DirGuard::Take(dir_, LOCK_SH);
    if (!guard.ok()) return guard.status();
    return ReadHolder();
  }

 private:
  static Status Corrupt(const fs::path& path, const char* what, const Status& cause) {
    if (cause.code() != Code::kInvalid) return cause;
    return Status::Invalid(std::string(what) + " file " + path.string() + " is corrupt: " +
                           cause.message() + " (it is left as is; fix it or move it away)");
  }

  // Reads one pack of the spec store: its "specs" object.
  Result<json> LoadPack(const std::string& id) {
    const fs::path path = specs_dir_ / (id + ".json");
    std::string text;
    Status error;
    switch (ReadFile(path, kMaxStateFileBytes, &text, &error)) {
      case ReadResult::kMissing:
        return Status::Invalid("spec store file " + path.string() +
                               " is missing (history.json names it)");
      case ReadResult::kError:
        return Corrupt(path, "spec store", error);
      case ReadResult::kOk:
        break;
    }
    auto j = ParseJson(text);
    if (!j.ok()) return Corrupt(path, "spec store", j.status());
    if (!j->is_object() || j->value("version", 0) != 1 || !j->contains("specs") ||
        !(*j)["specs"].is_object()) {
      return Corrupt(path, "spec store",
                     Status::Invalid("expected {\"version\": 1, \"specs\": {...}}"));
    }
    return std::move((*j)["specs"]);
  }

  // Removes the packs that no entry names any more (dropped by trimming, or
  // left by a run that crashed before it wrote history.json). Best effort:
  // a pack left behind is only garbage.
  void CollectSpecs(const History& history) {
    std::error_code ec;
    if (!fs::is_directory(specs_dir_, ec)) return;
    std::set<std::string> named;
    for (const auto& [hash, pack] : ReferencedSpecs(history)) named.insert(pack);
    bool removed = false;
    for (const auto& file : fs::directory_iterator(specs_dir_, ec)) {
      const std::string name = file.path().filename().string();
      if (name.size() <= 5 || !name.ends_with(".json") || name[0] == '.') continue;
      if (named.count(name.substr(0, name.size() - 5))) continue;
      removed |= ::unlink(file.path().c_str()) == 0;
    }
    if (removed) (void)FsyncDir(specs_dir_);
  }

  Status EnsureSpecsDir() {
    if (::mkdir(specs_dir_.c_str(), 0700) != 0 && errno != EEXIST) {
      return Status::Failed("cannot create folder " + specs_dir_.string() + ": " +
                            ErrnoText(errno));
    }
    ::chmod(specs_dir_.c_str(), 0700);
    return Status::Ok();
  }

  Status NoLock() const { return Status::NotFound("no lock held at " + lock_path_.string()); }

  // lock.json, parsed. Caller holds the DirGuard.
  Result<std::optional<LockInfo>> ReadHolder() {
    std::string text;
    Status error;
    switch (ReadFile(lock_path_, kMaxStateFileBytes, &text, &error)) {
      case ReadResult::kMissing:
        return std::optional<LockInfo>();
      case ReadResult::kError:
        return error;
      case ReadResult::kOk:
        break;
    }
    auto info = ParseLock(text);
    if (!info.ok()) {
      return Status::Invalid("lock file " + lock_path_.string() +
                             " is corrupt: " + info.status().message());
    }
    return std::optional<LockInfo>(std::move(info).value());
  }

  // The Conflict for a lock that someone holds (`other_host`: lock.json says
  // a run on that host holds it). Caller holds the DirGuard.
  Status Held(const std::string& other_host) {
    auto info = ReadHolder();
    std::string who = "another run (it is still writing " + lock_path_.string() + ")";
    if (info.ok() && info->has_value()) {
      const LockInfo& i = **info;
      who = "pid " + std::to_string(i.pid) + " on host " + i.host + " since " + i.started_at +
            " (" + i.command + ")";
    }
    if (!other_host.empty()) {
      return Status::Conflict("state is locked by " + who + ", according to " +
                              lock_path_.string() + "; a run on another host cannot be checked " +
                              "from here: if it is dead, run `reconcile unlock`");
    }
    return Status::Conflict("state is locked by " + who + "; it is alive and holds " +
                            holder_path_.string() + "; wait for it to finish");
  }

  Status EnsureDir() {
    std::error_code ec;
    if (fs::is_directory(dir_, ec)) return Status::Ok();
    if (dir_.has_parent_path() && !dir_.parent_path().empty()) {
      fs::create_directories(dir_.parent_path(), ec);
      if (ec) {
        return Status::Failed("cannot create folder " + dir_.parent_path().string() + ": " +
                              ec.message());
      }
    }
    if (::mkdir(dir_.c_str(), 0700) != 0) {
      if (errno == EEXIST && fs::is_directory(dir_, ec)) return Status::Ok();
      return Status::Failed("cannot create state folder " + dir_.string() + ": " +
                            ErrnoText(errno));
    }
    ::chmod(dir_.c_str(), 0700);  // exact mode whatever the umask
    return Status::Ok();
  }

  fs::path dir_;
  fs::path state_path_;
  fs::path history_path_;
  fs::path specs_dir_;
  fs::path lock_path_;
  fs::path holder_path_;

  // Identifies one version of a file: a save renames a new inode into place.
  struct FileKey {
    bool valid = false;
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    long mtime_sec = 0;
    long mtime_nsec = 0;
    friend bool operator==(const FileKey&, const FileKey&) = default;
    bool Settled() const {
      struct timespec now {};
      ::clock_gettime(CLOCK_REALTIME, &now);
      return now.tv_sec - mtime_sec > 1;
    }
  };
  static FileKey KeyOf(const fs::path& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return {};
    return {true, st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec};
  }
  // Keeps `state` as the content of state.json, whose key was `key` before
  // it was read or written (nothing is kept if the file changed since). The
  // key alone is trusted only for a file whose mtime was settled then.
  void Remember(const FileKey& key, size_t digest, std::shared_ptr<const State> state) {
    cached_.reset();
    if (!key.valid || !(key == KeyOf(state_path_))) return;
    cached_ = std::move(state);
    cached_key_ = key;
    cached_digest_ = digest;
    cached_trusted_ = key.Settled();
  }

  std::shared_ptr<const State> cached_;
  FileKey cached_key_;
  size_t cached_digest_ = 0;
  bool cached_trusted_ = false;
};

}  // namespace

Result<State> StateStore::Load() {
  auto shared = LoadShared();
  if (!shared.ok()) return shared.status();
  return State(**shared);
}

std::unique_ptr<StateStore> NewFileStateStore(const fs::path& dir) {
  return std::make_unique<FileStateStore>(dir);
}

Status WriteFileAtomic(const fs::path& path, const std::string& content) {
  const fs::path dir = path.parent_path();
  const fs::path tmp =
      (dir.empty() ? fs::path(".") : dir) / ("." + path.filename().string() + ".tmp-" +
                                             std::to_string(::getpid()) + "-" + RandomSuffix());
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd.valid()) {
    return Status::Failed("cannot create temporary file " + tmp.string() + ": " + ErrnoText(errno));
  }
  auto fail = [&tmp, &fd](const std::string& what) {
    int err = errno;
    fd.Reset();
    ::unlink(tmp.c_str());
    return Status::Failed(what + " " + tmp.string() + ": " + ErrnoText(err));
  };
  if (::fchmod(fd.get(), 0600) != 0) return fail("cannot set mode of");
  if (!WriteAll(fd.get(), content)) return fail("cannot write");
  if (::fsync(fd.get()) != 0) return fail("cannot fsync");
  if (fd.Close() != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Status::Failed("cannot close " + tmp.string() + ": " + ErrnoText(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Status::Failed("cannot rename " + tmp.string() + " to " + path.string() + ": " +
                          ErrnoText(err));
  }
  return FsyncDir(dir.empty() ? fs::path(".") : dir);
}

}  // namespace reconcile
