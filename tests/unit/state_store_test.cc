#include "reconcile/state_store.h"
#include "fakes/temp_dir.h"
#include "reconcile/spec.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <latch>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

namespace reconcile {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::seconds;
using testing::TempDir;

std::string ReadText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteText(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

mode_t ModeOf(const fs::path& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

std::set<std::string> Entries(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::string ThisHost() {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

State OneResource(const std::string& revision) {
  State s;
  s.revision = revision;
  ResourceState r;
  r.address = "agent.web";
  r.name = "web";
  r.target = "local";
  r.provider = "docker";
  r.spec_hash = "sha256:1";
  r.spec = json{{"image", "nginx:1.27"}};
  r.revision = revision;
  r.instances = {{"abc", "reconcile-web", "http://127.0.0.1:8080", {}}};
  r.health = "healthy";
  r.applied_at = "2026-01-02T03:04:05Z";
  s.resources[r.address] = r;
  return s;
}

std::string LockJson(int pid, const std::string& host, const std::string& started_at) {
  return json{
      {"pid", pid}, {"host", host}, {"startedAt", started_at}, {"command", "reconcile apply"}}
      .dump();
}

// A pid that is certainly dead: a child that has exited and been reaped.
int DeadPid() {
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) ::_exit(0);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return static_cast<int>(pid);
}

TEST_SUITE("state_store") {
  TEST_CASE("a missing state folder loads as an empty state") {
    TempDir tmp;
    auto store = NewFileStateStore(tmp.path() / "nope" / ".reconcile");
    auto s = store->Load();
    REQUIRE(s.ok());
    CHECK(*s == State{});
    auto h = store->LoadHistory();
    REQUIRE(h.ok());
    CHECK(h->entries.empty());
    CHECK_FALSE(fs::exists(tmp.path() / "nope"));
  }

  TEST_CASE("save increments the serial and load returns what was saved") {
    TempDir tmp;
    const fs::path dir = tmp.path() / ".reconcile";
    auto store = NewFileStateStore(dir);
    State s = OneResource("rev1");
    auto serial = store->Save(s);
    REQUIRE(serial.ok());
    CHECK(*serial == 1);
    auto loaded = store->Load();
    REQUIRE(loaded.ok());
    s.serial = 1;
    CHECK(*loaded == s);

    auto serial2 = store->Save(*loaded);
    REQUIRE(serial2.ok());
    CHECK(*serial2 == 2);
    SUBCASE("a caller that read an older state is refused and nothing is written") {
      const std::string before = ReadText(dir / "state.json");
      State stale = OneResource("stale");
      stale.serial = 1;  // read before the save that made serial 2
      auto serial3 = store->Save(stale);
      REQUIRE_FALSE(serial3.ok());
      CHECK(serial3.status().code() == Code::kConflict);
      CHECK_MESSAGE(Contains(serial3.status().message(), "stored serial 2, this run's 1"),
                    serial3.status().message());
      CHECK(ReadText(dir / "state.json") == before);
      CHECK(store->Load()->serial == 2);
      // A fresh store (another process) refuses it too; serial 0 (an empty
      // State) is the oldest of all.
      CHECK(NewFileStateStore(dir)->Save(State{}).status().code() == Code::kConflict);
      // Saving what is stored now works.
      auto now = store->Load();
      REQUIRE(now.ok());
      CHECK(*store->Save(*now) == 3);
    }
    SUBCASE("a caller's higher serial is kept increasing") {
      State high = OneResource("rev2");
      high.serial = 40;
      auto serial3 = store->Save(high);
      REQUIRE(serial3.ok());
      CHECK(*serial3 == 41);
    }
  }

  TEST_CASE("the store loads the golden state file") {
    TempDir tmp;
    fs::copy_file(RECONCILE_SOURCE_DIR "/tests/testdata/state/state.json",
                  tmp.path() / "state.json");
    auto loaded = NewFileStateStore(tmp.path())->Load();
    REQUIRE_MESSAGE(loaded.ok(), loaded.status().message());
    CHECK(loaded->serial == 7);
    CHECK(loaded->resources.size() == 2);
    CHECK(loaded->resources.at("agent.web").address == "agent.web");
    CHECK(loaded->resources.at("agent.web").instances.size() == 2);
  }

  TEST_CASE("state folder is 0700, files are 0600, no temp files are left") {
    TempDir tmp;
    const fs::path dir = tmp.path() / "state";
    mode_t old_umask = ::umask(0);  // modes must not depend on the umask
    auto store = NewFileStateStore(dir);
    REQUIRE(store->Save(OneResource("rev1")).ok());
    REQUIRE(store->AppendHistory(HistoryEntry{}, {}, nullptr).ok());
    auto lock = store->Lock("reconcile apply");
    ::umask(old_umask);
    REQUIRE(lock.ok());
    CHECK(ModeOf(dir) == 0700);
    CHECK(ModeOf(dir / "state.json") == 0600);
    CHECK(ModeOf(dir / "history.json") == 0600);
    CHECK(ModeOf(dir / "lock.json") == 0600);
    CHECK(ModeOf(dir / "lock") == 0600);
    CHECK(Entries(dir) == std::set<std::string>{"state.json", "history.json", "lock.json", "lock"});
  }

  TEST_CASE("WriteFileAtomic writes 0600 files and leaves no temp files") {
    TempDir tmp;
    const fs::path path = tmp.path() / "plan.json";
    SUBCASE("new file") {
      REQUIRE(WriteFileAtomic(path, "{\"a\":1}\n").ok());
      CHECK(ReadText(path) == "{\"a\":1}\n");
    }
    SUBCASE("replaces an existing file and its mode") {
      WriteText(path, "old content that is longer than the new one");
      ::chmod(path.c_str(), 0644);
      REQUIRE(WriteFileAtomic(path, "new").ok());
      CHECK(ReadText(path) == "new");
    }
    SUBCASE("empty content") {
      REQUIRE(WriteFileAtomic(path, "").ok());
      CHECK(ReadText(path).empty());
    }
    CHECK(ModeOf(path) == 0600);
    CHECK(Entries(tmp.path()) == std::set<std::string>{"plan.json"});
  }

  TEST_CASE("WriteFileAtomic into a missing folder fails and creates nothing") {
    TempDir tmp;
    Status s = WriteFileAtomic(tmp.path() / "missing" / "plan.json", "x");
    CHECK_FALSE(s.ok());
    CHECK(Contains(s.message(), "missing"));
    CHECK(Entries(tmp.path()).empty());
  }

  TEST_CASE("a crash mid-write leaves the previous state loadable") {
    TempDir tmp;
    const fs::path dir = tmp.path() / ".reconcile";
    auto store = NewFileStateStore(dir);
    REQUIRE(store->Save(OneResource("rev1")).ok());
    const std::string before = ReadText(dir / "state.json");
    // What a crash between "create temp" and "rename" leaves behind.
    const std::string full = ToJson(OneResource("rev2")).dump(2);
    WriteText(dir / ".state.json.tmp-999999-0123456789ab", full.substr(0, full.size() / 2));
    WriteText(dir / ".state.json.tmp-999998-ba9876543210", "");
    WriteText(dir / ".history.json.tmp-999999-0123456789ab", "[{\"serial\":");

    auto loaded = store->Load();
    REQUIRE(loaded.ok());
    CHECK(loaded->revision == "rev1");
    CHECK(loaded->serial == 1);
    auto history = store->LoadHistory();
    REQUIRE(history.ok());
    CHECK(history->entries.empty());

    State next = OneResource("rev3");
    next.serial = loaded->serial;
    auto serial = store->Save(next);
    REQUIRE(serial.ok());
    CHECK(*serial == 2);
    CHECK(ReadText(dir / "state.json") != before);
    CHECK(store->Load()->revision == "rev3");
  }

  TEST_CASE("a corrupt state file is kInvalid naming the file and is never overwritten") {
    struct Row {
      const char* name;
      std::string content;
      const char* want;
    };
    std::string deep = std::string(100000, '[') + std::string(100000, ']');
    const Row rows[] = {
        {"empty", "", "parse error"},
        {"garbage", "this is not json", "parse error"},
        {"truncated", ToJson(OneResource("r")).dump(2).substr(0, 40), "parse error"},
        {"array", "[]", "top level: expected an object, got array"},
        {"wrong version", R"({"version":99,"serial":1,"revision":"","resources":{}})",
         "unsupported state format version 99"},
        {"huge number", R"({"version":1,"serial":1e400,"revision":"","resources":{}})",
         "number overflow"},
        {"huge integer",
         R"({"version":1,"serial":123456789012345678901234567890,"revision":"","resources":{}})",
         "serial: expected an integer"},
        {"wrong type", R"({"version":1,"serial":1,"revision":"","resources":{"agent.a":[]}})",
         "resources[\"agent.a\"]: expected an object, got array"},
        {"deep nesting", "{\"version\":1,\"x\":" + deep + "}", "nesting deeper than"},
        {"NUL byte", std::string("{\"version\":1\0}", 14), "parse error"},
    };
    for (const Row& row : rows) {
      SUBCASE(row.name) {
        TempDir tmp;
        const fs::path dir = tmp.path() / ".reconcile";
        fs::create_directory(dir);
        WriteText(dir / "state.json", row.content);
        auto store = NewFileStateStore(dir);
        auto loaded = store->Load();
        REQUIRE_FALSE(loaded.ok());
        CHECK(loaded.status().code() == Code::kInvalid);
        const std::string& msg = loaded.status().message();
        CHECK_MESSAGE(
            Contains(msg, "state file " + (dir / "state.json").string() + " is corrupt: "), msg);
        CHECK_MESSAGE(Contains(msg, row.want), msg);

        auto saved = store->Save(OneResource("rev"));
        CHECK_FALSE(saved.ok());
        CHECK(saved.status().code() == Code::kInvalid);
        CHECK(ReadText(dir / "state.json") == row.content);
      }
    }
  }

  TEST_CASE("mangled state files load or fail with kInvalid, never throw") {
    TempDir tmp;
    const std::string golden = ReadText(RECONCILE_SOURCE_DIR "/tests/testdata/state/state.json");
    REQUIRE_FALSE(golden.empty());
    auto store = NewFileStateStore(tmp.path());
    std::mt19937 rng(42);  // fixed seed: the same inputs on every run
    const char kBytes[] = "{}[]\",:0123456789.eE-+tfn \\\0\xff";
    for (int i = 0; i < 500; ++i) {
      std::string text = golden;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < edits; ++k) {
        const size_t pos = rng() % text.size();
        switch (rng() % 3) {
          case 0:
            text[pos] = kBytes[rng() % (sizeof kBytes - 1)];
            break;
          case 1:
            text.erase(pos, 1 + rng() % 8);
            break;
          default:
            text.resize(pos + 1);
            break;
        }
        if (text.empty()) text = "x";
      }
      WriteText(tmp.path() / "state.json", text);
      Result<State> loaded = store->Load();
      if (!loaded.ok()) {
        CHECK_MESSAGE(loaded.status().code() == Code::kInvalid, loaded.status().message());
      }
    }
  }

  // A history whose entry i runs agent.web on nginx:<i> and, from entry 3
  // on, agent.db unchanged.
  json WebSpec(int i) { return json{{"image", "nginx:" + std::to_string(i)}, {"port", 80}}; }

  struct Applied {
    HistoryEntry entry;
    HistoryResources resources;
    std::map<std::string, json> specs;
    StateStore::SpecSource spec_of() const {
      return [this](const std::string& address) -> std::optional<json> {
        auto it = specs.find(address);
        if (it == specs.end()) return std::nullopt;
        return it->second;
      };
    }
  };

  Applied AppliedAt(int i) {
    Applied a;
    a.entry.serial = i;
    a.entry.revision = "rev" + std::to_string(i);
    a.entry.result = "succeeded";
    a.specs["agent.web"] = WebSpec(i);
    if (i >= 3) a.specs["agent.db"] = json{{"image", "postgres:16"}, {"port", 5432}};
    for (const auto& [address, spec] : a.specs) {
      a.resources[address] = {SpecHash(spec), spec["image"], {}, "", {}};
    }
    return a;
  }

  std::set<std::string> Packs(const fs::path& dir) {
    std::set<std::string> out;
    if (!fs::exists(dir / "specs")) return out;
    for (const auto& e : fs::directory_iterator(dir / "specs")) {
      out.insert(e.path().filename().string());
    }
    return out;
  }

  TEST_CASE("history keeps the last 100 entries, oldest first, each re-appliable") {
    TempDir tmp;
    const fs::path dir = tmp.path() / ".reconcile";
    auto store = NewFileStateStore(dir);
    for (int i = 1; i <= 105; ++i) {
      Applied a = AppliedAt(i);
      REQUIRE(store->AppendHistory(a.entry, a.resources, a.spec_of()).ok());
    }
    auto history = store->LoadHistory();
    REQUIRE(history.ok());
    REQUIRE(history->entries.size() == 100);
    CHECK(history->entries.front().serial == 6);
    CHECK(history->entries.back().serial == 105);
    // The first entry holds every resource; the others only what changed.
    CHECK(history->entries.front().changed.size() == 2);
    CHECK(history->entries.back().changed.size() == 1);
    CHECK(history->entries.back().changed.count("agent.web") == 1);
    for (size_t i : {size_t{0}, size_t{50}, size_t{99}}) {
      HistoryResources at = ResourcesAt(*history, i);
      REQUIRE(at.size() == 2);
      auto specs = store->LoadSpecs(*history, at);
      REQUIRE_MESSAGE(specs.ok(), specs.status().message());
      CHECK(specs->at("agent.web") == WebSpec(static_cast<int>(i) + 6));
      CHECK(specs->at("agent.db")["image"] == "postgres:16");
    }
    // Garbage is bounded by the history: the packs of the kept entries, and
    // the one agent.db's spec (unchanged since entry 3) is still in.
    CHECK(Packs(dir).size() <= 101);
    CHECK(ModeOf(dir / "specs") == 0700);
    for (const std::string& pack : Packs(dir)) CHECK(ModeOf(dir / "specs" / pack) == 0600);
  }

  TEST_CASE("an append writes only the new specs, once") {
    TempDir tmp;
    const fs::path dir = tmp.path() / ".reconcile";
    auto store = NewFileStateStore(dir);
    Applied first = AppliedAt(3);
    REQUIRE(store->AppendHistory(first.entry, first.resources, first.spec_of()).ok());
    REQUIRE(Packs(dir).size() == 1);
    // Same specs again (a re-apply): no new pack, the spec source is not asked.
    Applied again = AppliedAt(3);
    again.entry.serial = 4;
    REQUIRE(store->AppendHistory(again.entry, again.resources, nullptr).ok());
    CHECK(Packs(dir).size() == 1);
    // One agent changes: the new pack holds its spec only.
    Applied next = AppliedAt(5);
    std::set<std::string> asked;
    auto spec_of = [&](const std::string& address) -> std::optional<json> {
      asked.insert(address);
      return next.specs.at(address);
    };
    REQUIRE(store->AppendHistory(next.entry, next.resources, spec_of).ok());
    CHECK(asked == std::set<std::string>{"agent.web"});
    std::set<std::string> packs = Packs(dir);
    REQUIRE(packs.size() == 2);
    size_t smallest = SIZE_MAX;
    for (const std::string& p : packs)
      smallest = std::min(smallest, ReadText(dir / "specs" / p).size());
    CHECK(smallest < 200);  // one spec, not all
    SUBCASE("a spec the caller cannot give fails and writes nothing") {
      const std::string before = ReadText(dir / "history.json");
      Applied more = AppliedAt(6);
      CHECK_FALSE(store->AppendHistory(more.entry, more.resources, nullptr).ok());
      CHECK(ReadText(dir / "history.json") == before);
      CHECK(Packs(dir) == packs);
    }
    SUBCASE("an edited spec store is refused, naming the resource") {
      for (const std::string& p : packs) {
        std::string text = ReadText(dir / "specs" / p);
        auto at = text.find("nginx:");
        if (at != std::string::npos) text.replace(at, 6, "evilx:");
        WriteText(dir / "specs" / p, text);
      }
      auto history = store->LoadHistory();
      REQUIRE(history.ok());
      auto specs = store->LoadSpecs(*history, LastResources(*history));
      REQUIRE_FALSE(specs.ok());
      CHECK(Contains(specs.status().message(), "agent.web"));
    }
    SUBCASE("a missing pack is kInvalid naming the file") {
      for (const std::string& p : packs) fs::remove(dir / "specs" / p);
      auto history = store->LoadHistory();
      REQUIRE(history.ok());
      auto specs = store->LoadSpecs(*history, LastResources(*history));
      REQUIRE_FALSE(specs.ok());
      CHECK(specs.status().code() == Code::kInvalid);
      CHECK(Contains(specs.status().message(), (dir / "specs").string()));
    }
  }

  TEST_CASE("the pinned entry is kept past the limit") {
    TempDir tmp;
    const fs::path dir = tmp.path() / ".reconcile";
    auto store = NewFileStateStore(dir);
    for (int i = 1; i <= 130; ++i) {
      Applied a = AppliedAt(i);
      REQUIRE(store->AppendHistory(a.entry, a.resources, a.spec_of(), /*keep=*/10).ok());
    }
    auto history = store->LoadHistory();
    REQUIRE(history.ok());
    REQUIRE(history->entries.size() == 100);
    CHECK(history->entries[0].serial == 10);
    CHECK(history->entries[1].serial == 32);
    auto specs = store->LoadSpecs(*history, ResourcesAt(*history, 0));
    REQUIRE(specs.ok());
    CHECK(specs->at("agent.web") == WebSpec(10));
    specs = store->LoadSpecs(*history, ResourcesAt(*history, 1));
    REQUIRE(specs.ok());
    CHECK(specs->at("agent.web") == WebSpec(32));
  }

  TEST_CASE("a version 1 history (specs inline) loads and migrates on the next append") {
    TempDir tmp;
    const fs::path dir = tmp.path() / ".reconcile";
    fs::create_directories(dir);
    json v1 = json::array();
    for (int i = 1; i <= 3; ++i) {
      v1.push_back({{"serial", i},
                    {"revision", "rev" + std::to_string(i)},
                    {"appliedAt", "2026-01-02T03:04:05Z"},
                    {"result", "succeeded"},
                    {"summary", "1 added"},
                    {"specs", {{"agent.web", WebSpec(i)}}}});
    }
    WriteText(dir / "history.json", v1.dump(2));
    auto store = NewFileStateStore(dir);
    auto history = store->LoadHistory();
    REQUIRE_MESSAGE(history.ok(), history.status().message());
    REQUIRE(history->entries.size() == 3);
    CHECK(history->entries[1].revision == "rev2");
    auto specs = store->LoadSpecs(*history, ResourcesAt(*history, 1));
    REQUIRE_MESSAGE(specs.ok(), specs.status().message());
    CHECK(specs->at("agent.web") == WebSpec(2));
    Applied next = AppliedAt(4);
    REQUIRE(store->AppendHistory(next.entry, next.resources, next.spec_of()).ok());
    json on_disk = json::parse(ReadText(dir / "history.json"));
    CHECK(on_disk["version"] == 2);
    CHECK(on_disk.dump().find("\"specs\"") == std::string::npos);
    history = store->LoadHistory();
    REQUIRE(history.ok());
    REQUIRE(history->entries.size() == 4);
    CHECK(history->legacy_specs.empty());
    for (size_t i = 0; i < 4; ++i) {
      specs = store->LoadSpecs(*history, ResourcesAt(*history, i));
      REQUIRE_MESSAGE(specs.ok(), specs.status().message());
      CHECK(specs->at("agent.web") == WebSpec(static_cast<int>(i) + 1));
    }
  }

  TEST_CASE("a crash before history.json is written leaves the history as it was") {
    TempDir tmp;
    const fs::path dir = tmp.path() / ".reconcile";
    auto store = NewFileStateStore(dir);
    Applied first = AppliedAt(1);
    REQUIRE(store->AppendHistory(first.entry, first.resources, first.spec_of()).ok());
    // What a crash after the pack was written, before history.json, leaves:
    // a pack nobody names, and a torn temp file.
    WriteText(dir / "specs" / "00000000000000ff.json", R"({"version":1,"specs":{}})");
    WriteText(dir / "specs" / ".0123.json.tmp-999999-0123456789ab", "{\"vers");
    WriteText(dir / ".history.json.tmp-999999-0123456789ab", "{\"version\":2,\"ent");
    auto history = store->LoadHistory();
    REQUIRE(history.ok());
    REQUIRE(history->entries.size() == 1);
    REQUIRE(store->LoadSpecs(*history, LastResources(*history)).ok());
    // The next append collects the orphan pack.
    Applied next = AppliedAt(2);
    REQUIRE(store->AppendHistory(next.entry, next.resources, next.spec_of()).ok());
    CHECK_FALSE(fs::exists(dir / "specs" / "00000000000000ff.json"));
    CHECK(store->LoadHistory()->entries.size() == 2);
  }

  TEST_CASE("a corrupt history file is kInvalid naming the file and is never overwritten") {
    struct Row {
      const char* name;
      const char* content;
      const char* want;
    };
    const Row rows[] = {
        {"garbage", "nope", "parse error"},
        {"string", "\"x\"", "expected an object, got string"},
        {"no version", "{}", "version: missing field"},
        {"bad version", R"({"version":7,"entries":[]})", "unsupported history format version 7"},
        {"bad entry", R"({"version":2,"entries":[{"serial":"1"}]})",
         "entries[0].serial: expected an integer, got string"},
        {"bad spec hash", R"({"version":2,"entries":[{"serial":1,"revision":"r","appliedAt":"",
           "result":"succeeded","summary":"","changed":{"agent.a":{"spec":"sha256:../../etc",
           "image":"x"}},"removed":[]}]})",
         "not a spec hash"},
        {"bad pack", R"({"version":2,"entries":[{"serial":1,"revision":"r","appliedAt":"",
           "result":"succeeded","summary":"","changed":{"agent.a":{"spec":"sha256:0000000000000000000000000000000000000000000000000000000000000000",
           "image":"x","pack":"../x"}},"removed":[]}]})",
         "pack: expected a pack id"},
        {"bad version 1 entry", R"([{"serial":"1"}])",
         "[0].serial: expected an integer, got string"},
    };
    for (const Row& row : rows) {
      SUBCASE(row.name) {
        TempDir tmp;
        WriteText(tmp.path() / "history.json", row.content);
        auto store = NewFileStateStore(tmp.path());
        auto history = store->LoadHistory();
        REQUIRE_FALSE(history.ok());
        CHECK(history.status().code() == Code::kInvalid);
        const std::string& msg = history.status().message();
        CHECK_MESSAGE(Contains(msg, "history file " + (tmp.path() / "history.json").string() +
                                        " is corrupt: "),
                      msg);
        CHECK_MESSAGE(Contains(msg, row.want), msg);
        CHECK_FALSE(store->AppendHistory(HistoryEntry{}, {}, nullptr).ok());
        CHECK(ReadText(tmp.path() / "history.json") == row.content);
      }
    }
  }

  TEST_CASE("lock names its holder and a second lock conflicts") {
    TempDir tmp;
    auto store = NewFileStateStore(tmp.path() / ".reconcile");
    auto holder = store->Holder();
    REQUIRE(holder.ok());
    CHECK_FALSE(holder->has_value());

    auto lock = store->Lock("reconcile apply");
    REQUIRE(lock.ok());
    holder = store->Holder();
    REQUIRE(holder.ok());
    REQUIRE(holder->has_value());
    const LockInfo& info = **holder;
    CHECK(info.pid == static_cast<int>(::getpid()));
    CHECK(info.host == ThisHost());
    CHECK(info.command == "reconcile apply");
    CHECK(info.started_at.size() >= 20);
    CHECK(info.started_at.back() == 'Z');

    // A live holder (our own pid, recent) is never taken over.
    auto other = NewFileStateStore(tmp.path() / ".reconcile");
    auto second = other->Lock("reconcile plan");
    REQUIRE_FALSE(second.ok());
    CHECK(second.status().code() == Code::kConflict);
    CHECK(second.status().message() ==
          "state is locked by pid " + std::to_string(::getpid()) + " on host " + ThisHost() +
              " since " + info.started_at + " (reconcile apply); it is alive and holds " +
              (tmp.path() / ".reconcile" / "lock").string() + "; wait for it to finish");

    (*lock)->Release();
    holder = store->Holder();
    REQUIRE(holder.ok());
    CHECK_FALSE(holder->has_value());
    auto third = other->Lock("reconcile plan");
    CHECK(third.ok());
  }

  TEST_CASE("the lock is released when the StateLock is destroyed") {
    TempDir tmp;
    auto store = NewFileStateStore(tmp.path());
    {
      auto lock = store->Lock("reconcile apply");
      REQUIRE(lock.ok());
      CHECK(fs::exists(tmp.path() / "lock.json"));
    }
    CHECK_FALSE(fs::exists(tmp.path() / "lock.json"));
    CHECK(store->Lock("reconcile apply").ok());
  }

  TEST_CASE("a lock held by a dead pid on this host is taken over") {
    TempDir tmp;
    const int dead = DeadPid();
    WriteText(tmp.path() / "lock.json",
              LockJson(dead, ThisHost(), "2099-01-01T00:00:00Z"));  // recent, but dead
    auto store = NewFileStateStore(tmp.path());
    auto lock = store->Lock("reconcile apply");
    REQUIRE_MESSAGE(lock.ok(), lock.status().message());
    auto holder = store->Holder();
    REQUIRE(holder.ok());
    REQUIRE(holder->has_value());
    CHECK((*holder)->pid == static_cast<int>(::getpid()));
  }

  TEST_CASE("a lock.json whose holder is gone") {
    struct Row {
      const char* name;
      std::string content;
      bool old_mtime;
      bool taken_over;
      std::string want;  // part of the conflict message
    };
    const int dead = DeadPid();
    const Row rows[] = {
        // On this host the flock is the truth: free means the writer is gone,
        // even when lock.json names a live pid (pid reuse after a crash, e.g.
        // pid 1 in a container) or cannot be read at all.
        {"recent lock of a live pid, flock free",
         LockJson(::getpid(), ThisHost(), "2099-01-01T00:00:00Z"), false, true, ""},
        {"recent lock of a dead pid", LockJson(dead, ThisHost(), "2099-01-01T00:00:00Z"), false,
         true, ""},
        {"fresh corrupt lock", "{\"pid\":", false, true, ""},
        {"fresh empty lock", "", false, true, ""},
        {"old corrupt lock", "garbage", true, true, ""},
        // Another host's run cannot be checked from here, whatever its age.
        {"old lock from another host", LockJson(1, "elsewhere", "2000-01-01T00:00:00Z"), true,
         false, "state is locked by pid 1 on host elsewhere since 2000-01-01T00:00:00Z"},
        {"recent lock from another host", LockJson(dead, "elsewhere", "2099-01-01T00:00:00Z"),
         false, false,
         "a run on another host cannot be checked from here: if it is dead, run `reconcile "
         "unlock`"},
    };
    for (const Row& row : rows) {
      SUBCASE(row.name) {
        TempDir tmp;
        const fs::path lock_path = tmp.path() / "lock.json";
        WriteText(lock_path, row.content);
        if (row.old_mtime) {
          struct timespec times[2];
          times[0].tv_sec = times[1].tv_sec = ::time(nullptr) - 48 * 3600;
          times[0].tv_nsec = times[1].tv_nsec = 0;
          REQUIRE(::utimensat(AT_FDCWD, lock_path.c_str(), times, 0) == 0);
        }
        auto store = NewFileStateStore(tmp.path());
        auto lock = store->Lock("reconcile apply");
        if (row.taken_over) {
          REQUIRE_MESSAGE(lock.ok(), lock.status().message());
          CHECK(store->Holder()->value().pid == static_cast<int>(::getpid()));
        } else {
          REQUIRE_FALSE(lock.ok());
          CHECK(lock.status().code() == Code::kConflict);
          CHECK_MESSAGE(Contains(lock.status().message(), row.want), lock.status().message());
          CHECK(ReadText(lock_path) == row.content);
          REQUIRE(store->Unlock().ok());  // the explicit way out
          CHECK(store->Lock("reconcile apply").ok());
        }
      }
    }
  }

  TEST_CASE("a live holder is never taken over, however old its lock") {
    TempDir tmp;
    const fs::path dir = tmp.path() / ".reconcile";
    int ready[2], finish[2];
    REQUIRE(::pipe(ready) == 0);
    REQUIRE(::pipe(finish) == 0);
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      ::close(ready[0]);
      ::close(finish[1]);
      auto lock = NewFileStateStore(dir)->Lock("reconcile controller");
      char r = lock.ok() ? 'W' : 'E';
      (void)!::write(ready[1], &r, 1);
      char c;
      (void)!::read(finish[0], &c, 1);
      ::_exit(0);
    }
    ::close(ready[1]);
    ::close(finish[0]);
    char r = 0;
    REQUIRE(::read(ready[0], &r, 1) == 1);
    REQUIRE(r == 'W');
    // Make the lock look days old: age alone never breaks it.
    struct timespec times[2];
    times[0].tv_sec = times[1].tv_sec = ::time(nullptr) - 5 * 24 * 3600;
    times[0].tv_nsec = times[1].tv_nsec = 0;
    REQUIRE(::utimensat(AT_FDCWD, (dir / "lock.json").c_str(), times, 0) == 0);
    // And say it was taken years ago: neither the file's age nor its
    // startedAt is a reason to take over a lock whose holder lives.
    WriteText(dir / "lock.json", LockJson(child, ThisHost(), "2019-01-01T00:00:00Z"));
    auto store = NewFileStateStore(dir);
    auto lock = store->Lock("reconcile apply");
    REQUIRE_FALSE(lock.ok());
    CHECK(lock.status().code() == Code::kConflict);
    CHECK(Contains(lock.status().message(), "pid " + std::to_string(child)));
    CHECK(Contains(lock.status().message(), "since 2019-01-01T00:00:00Z"));
    Status unlock = store->Unlock();
    CHECK(unlock.code() == Code::kConflict);
    CHECK(Contains(unlock.message(), "alive"));
    CHECK(fs::exists(dir / "lock.json"));
    // The holder dies without releasing (SIGKILL): the kernel drops the flock.
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    ::close(ready[0]);
    ::close(finish[1]);
    auto after = store->Lock("reconcile apply");
    REQUIRE_MESSAGE(after.ok(), after.status().message());
    CHECK(store->Holder()->value().pid == static_cast<int>(::getpid()));
  }

  TEST_CASE("unlock refuses a live holder and removes a dead one's lock") {
    TempDir tmp;
    auto store = NewFileStateStore(tmp.path() / "s");
    Status none = store->Unlock();
    CHECK(none.code() == Code::kNotFound);

    auto first = store->Lock("reconcile apply");
    REQUIRE(first.ok());
    CHECK(store->Unlock().code() == Code::kConflict);
    first->reset();
    CHECK(store->Unlock().code() == Code::kNotFound);  // released: nothing left

    WriteText(tmp.path() / "s" / "lock.json", LockJson(1, "elsewhere", "2099-01-01T00:00:00Z"));
    REQUIRE(store->Unlock().ok());
    CHECK_FALSE(fs::exists(tmp.path() / "s" / "lock.json"));
    auto second = NewFileStateStore(tmp.path() / "s")->Lock("reconcile controller");
    REQUIRE(second.ok());
    auto holder = store->Holder();
    REQUIRE(holder.ok());
    REQUIRE(holder->has_value());
    CHECK((*holder)->command == "reconcile controller");
  }

  TEST_CASE("a long-lived store sees every change another writer makes") {
    TempDir tmp;
    auto mine = NewFileStateStore(tmp.path());
    auto other = NewFileStateStore(tmp.path());
    REQUIRE(mine->Save(OneResource("rev1")).ok());
    REQUIRE(mine->Load().ok());
    CHECK(mine->Load()->revision == "rev1");  // twice: the second from its cache
    State rev2 = OneResource("rev2");
    rev2.serial = 1;
    REQUIRE(other->Save(rev2).ok());
    CHECK(mine->Load()->revision == "rev2");
    // An edit in place (same inode) with the same size is seen too.
    std::string text = ReadText(tmp.path() / "state.json");
    REQUIRE(text.find("rev2") != std::string::npos);
    for (auto at = text.find("rev2"); at != std::string::npos; at = text.find("rev2")) {
      text.replace(at, 4, "rev3");
    }
    {
      std::ofstream out(tmp.path() / "state.json", std::ios::binary | std::ios::trunc);
      out << text;
    }
    CHECK(mine->Load()->revision == "rev3");
    // A settled file is cached; an edit in place changes its mtime.
    struct timespec times[2];
    times[0].tv_sec = times[1].tv_sec = ::time(nullptr) - 10;
    times[0].tv_nsec = times[1].tv_nsec = 0;
    REQUIRE(::utimensat(AT_FDCWD, (tmp.path() / "state.json").c_str(), times, 0) == 0);
    CHECK(mine->Load()->revision == "rev3");
    CHECK(mine->Load()->revision == "rev3");
    WriteText(tmp.path() / "state.json", "{garbage");
    CHECK(mine->Load().status().code() == Code::kInvalid);
  }

  TEST_CASE("a store shares the state it saved, and still sees an edit made at once") {
    TempDir tmp;
    auto store = NewFileStateStore(tmp.path());
    REQUIRE(store->Save(OneResource("rev1")).ok());
    auto first = store->LoadShared();
    auto second = store->LoadShared();
    REQUIRE(first.ok());
    REQUIRE(second.ok());
    CHECK((*first)->revision == "rev1");
    CHECK(first->get() == second->get());  // the saved object, not a parse of the file
    // Rewritten in place within the same file-time tick, same size: the
    // content check sees it although inode, size and maybe mtime match.
    std::string text = ReadText(tmp.path() / "state.json");
    for (auto at = text.find("rev1"); at != std::string::npos; at = text.find("rev1")) {
      text.replace(at, 4, "rev9");
    }
    {
      std::ofstream out(tmp.path() / "state.json", std::ios::binary | std::ios::trunc);
      out << text;
    }
    auto third = store->LoadShared();
    REQUIRE(third.ok());
    CHECK((*third)->revision == "rev9");
    // Settled and unchanged: trusted by its key from then on.
    struct timespec times[2];
    times[0].tv_sec = times[1].tv_sec = ::time(nullptr) - 10;
    times[0].tv_nsec = times[1].tv_nsec = 0;
    REQUIRE(::utimensat(AT_FDCWD, (tmp.path() / "state.json").c_str(), times, 0) == 0);
    auto fourth = store->LoadShared();
    auto fifth = store->LoadShared();
    REQUIRE(fourth.ok());
    REQUIRE(fifth.ok());
    CHECK((*fourth)->revision == "rev9");
    CHECK(fourth->get() == fifth->get());
  }

  TEST_CASE("a corrupt lock file makes Holder kInvalid naming the file") {
    TempDir tmp;
    WriteText(tmp.path() / "lock.json", "[1,2");
    auto holder = NewFileStateStore(tmp.path())->Holder();
    REQUIRE_FALSE(holder.ok());
    CHECK(holder.status().code() == Code::kInvalid);
    CHECK(Contains(holder.status().message(), (tmp.path() / "lock.json").string()));
  }

  TEST_CASE("threads racing for the lock: exactly one wins") {
    TempDir tmp;
    constexpr int kThreads = 8;
    std::latch start(kThreads);
    std::latch done(kThreads);
    std::atomic<int> wins{0};
    std::atomic<int> conflicts{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&] {
        auto store = NewFileStateStore(tmp.path() / ".reconcile");
        start.arrive_and_wait();
        auto lock = store->Lock("reconcile apply");
        if (lock.ok()) ++wins;
        if (!lock.ok() && lock.status().code() == Code::kConflict) ++conflicts;
        done.arrive_and_wait();  // hold the lock until every thread has tried
      });
    }
    for (auto& t : threads) t.join();
    CHECK(wins == 1);
    CHECK(conflicts == kThreads - 1);
    CHECK_FALSE(fs::exists(tmp.path() / ".reconcile" / "lock.json"));
  }

  TEST_CASE("processes racing for the lock: exactly one wins") {
    TempDir tmp;
    const fs::path dir = tmp.path() / ".reconcile";
    REQUIRE(NewFileStateStore(dir)->Save(State{}).ok());  // folder exists before the race
    constexpr int kChildren = 6;
    int go[2], results[2], finish[2];
    REQUIRE(::pipe(go) == 0);
    REQUIRE(::pipe(results) == 0);
    REQUIRE(::pipe(finish) == 0);
    std::vector<pid_t> children;
    for (int i = 0; i < kChildren; ++i) {
      pid_t pid = ::fork();
      REQUIRE(pid >= 0);
      if (pid == 0) {
        ::close(go[1]);
        ::close(results[0]);
        ::close(finish[1]);
        char c;
        (void)!::read(go[0], &c, 1);  // EOF when the parent says go
        auto store = NewFileStateStore(dir);
        auto lock = store->Lock("reconcile apply");
        char r = lock.ok() ? 'W' : (lock.status().code() == Code::kConflict ? 'L' : 'E');
        (void)!::write(results[1], &r, 1);
        (void)!::read(finish[0], &c, 1);  // hold the lock until everyone has tried
        if (lock.ok()) (*lock)->Release();
        ::_exit(0);
      }
      children.push_back(pid);
    }
    ::close(go[0]);
    ::close(results[1]);
    ::close(finish[0]);
    ::close(go[1]);
    std::string outcomes;
    char buf[16];
    ssize_t n;
    while (outcomes.size() < kChildren && (n = ::read(results[0], buf, sizeof buf)) > 0) {
      outcomes.append(buf, static_cast<size_t>(n));
    }
    ::close(finish[1]);
    ::close(results[0]);
    for (pid_t pid : children) {
      int status = 0;
      ::waitpid(pid, &status, 0);
      CHECK(WIFEXITED(status));
    }
    CHECK(std::count(outcomes.begin(), outcomes.end(), 'W') == 1);
    CHECK(std::count(outcomes.begin(), outcomes.end(), 'L') == kChildren - 1);
    CHECK_FALSE(fs::exists(dir / "lock.json"));
  }
}

}  // namespace
}  // namespace reconcile
