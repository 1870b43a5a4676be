// The audit log: canonical bytes, the chain, every tamper case, and the
// format checked with the real OpenSSL and coreutils tools (openssl pkeyutl,
// sha256sum), keys made by `openssl genpkey`.
#include "reconcile/audit_log.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "fakes/pass_world.h"
#include "fakes/temp_dir.h"
#include "reconcile/pass.h"
#include "reconcile/spec.h"
#include "unit/engine/test_world.h"

namespace reconcile {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
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

// Runs `command` with sh; returns its exit status and stdout.
int Run(const std::string& command, std::string* out = nullptr) {
  FILE* p = ::popen((command + " 2>/dev/null").c_str(), "r");
  REQUIRE(p != nullptr);
  std::string text;
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
  int status = ::pclose(p);
  if (out != nullptr) *out = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A fresh Ed25519 key pair made by the real `openssl genpkey`: <name>.pem
// (private) and <name>.pub.pem (public).
struct KeyPair {
  fs::path private_pem;
  fs::path public_pem;
  std::shared_ptr<const AuditKey> signer;
  std::shared_ptr<const AuditKey> verifier;
};

KeyPair GenKey(const TempDir& tmp, const std::string& name) {
  KeyPair k;
  k.private_pem = tmp.path() / (name + ".pem");
  k.public_pem = tmp.path() / (name + ".pub.pem");
  REQUIRE(Run("openssl genpkey -algorithm ed25519 -out '" + k.private_pem.string() + "'") == 0);
  REQUIRE(Run("openssl pkey -in '" + k.private_pem.string() + "' -pubout -out '" +
              k.public_pem.string() + "'") == 0);
  auto s = AuditKey::Load(k.private_pem);
  REQUIRE_MESSAGE(s.ok(), s.status().message());
  auto v = AuditKey::Load(k.public_pem);
  REQUIRE_MESSAGE(v.ok(), v.status().message());
  k.signer = *s;
  k.verifier = *v;
  return k;
}

AuditEntry Entry(const std::string& action, const std::string& address) {
  AuditEntry e;
  e.actor = "cli:alice";
  e.action = action;
  e.revision = "0123456789abcdef0123456789abcdef01234567";
  e.plan = "sha256:" + std::string(64, 'a');
  e.changes = {{address, "create"}};
  return e;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string line; std::getline(ss, line);) out.push_back(line + "\n");
  return out;
}

std::string Join(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += l;
  return out;
}

// A log of `n` entries signed by `key` in `tmp`/audit.log; its text.
std::string MakeLog(const TempDir& tmp, const KeyPair& key, int n) {
  auto log = NewAuditLog(tmp.path() / "audit.log", key.signer);
  for (int i = 1; i <= n; ++i) {
    REQUIRE(log->Append(Entry("apply", "agent.a" + std::to_string(i))).ok());
  }
  return ReadText(tmp.path() / "audit.log");
}

// RFC 8032 section 7.1, TEST 1: the secret key as PKCS#8 PEM.
constexpr const char* kRfc8032Test1Pem =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
    "-----END PRIVATE KEY-----\n";

TEST_CASE("audit: the canonical bytes are the sorted compact JSON without hash and sig") {
  AuditEntry e = Entry("apply", "agent.web");
  e.seq = 7;
  e.time = "2026-12-04T18:00:00Z";
  e.environment = "prod";
  e.detail = "line\nbreak \"q\" \xc3\xa9";
  e.key_id = std::string(64, 'b');
  e.prev = kAuditGenesis;
  e.hash = std::string(64, 'c');
  e.sig = "AAAA";
  e.result = "error";
  e.error_code = "failed";
  e.error_message = "boom";
  const std::string want =
      R"({"action":"apply","actor":"cli:alice","changes":[{"action":"create","address":"agent.web"}],)"
      R"("detail":"line\nbreak \"q\" )"
      "\xc3\xa9"
      R"(","environment":"prod","keyId":")" +
      std::string(64, 'b') + R"(","plan":"sha256:)" + std::string(64, 'a') + R"(","prev":")" +
      std::string(kAuditGenesis) +
      R"(","result":{"code":"failed","message":"boom","status":"error"},)"
      R"("revision":"0123456789abcdef0123456789abcdef01234567","savedPlan":null,"seq":7,)"
      R"("time":"2026-12-04T18:00:00Z","v":1})";
  CHECK(AuditCanonicalBytes(e) == want);
  // hash and sig change nothing in the canonical bytes.
  AuditEntry other = e;
  other.hash = std::string(64, 'd');
  other.sig = "BBBB";
  CHECK(AuditCanonicalBytes(other) == want);
  // An ok result holds only its status; no plan is null.
  e.result = "ok";
  e.plan.clear();
  const std::string ok = AuditCanonicalBytes(e);
  CHECK(ok.find(R"("result":{"status":"ok"})") != std::string::npos);
  CHECK(ok.find(R"("plan":null)") != std::string::npos);
}

TEST_CASE("audit: signatures are Ed25519 (RFC 8032 test 1)") {
  auto key = AuditKey::FromPem(kRfc8032Test1Pem, "rfc8032");
  REQUIRE_MESSAGE(key.ok(), key.status().message());
  CHECK((*key)->can_sign());
  // keyId: SHA-256 of the public key of the vector.
  const std::string pub =
      "\xd7\x5a\x98\x01\x82\xb1\x0a\xb7\xd5\x4b\xfe\xd3\xc9\x64\x07\x3a"
      "\x0e\xe1\x72\xf3\xda\xa6\x23\x25\xaf\x02\x1a\x68\xf7\x07\x51\x1a";
  CHECK((*key)->key_id() == Sha256Hex(pub));
  auto sig = (*key)->Sign("");
  REQUIRE(sig.ok());
  std::string hex;
  for (unsigned char c : *sig) {
    char b[3];
    std::snprintf(b, sizeof b, "%02x", c);
    hex += b;
  }
  CHECK(hex ==
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
  CHECK((*key)->Verify("", *sig));
  CHECK_FALSE((*key)->Verify("x", *sig));
}

TEST_CASE("audit: keys that are not Ed25519 are refused naming the file") {
  TempDir tmp;
  REQUIRE(Run("openssl genpkey -algorithm rsa -pkeyopt rsa_keygen_bits:1024 -out '" +
              (tmp.path() / "rsa.pem").string() + "'") == 0);
  auto rsa = AuditKey::Load(tmp.path() / "rsa.pem");
  REQUIRE_FALSE(rsa.ok());
  CHECK(rsa.status().code() == Code::kInvalid);
  CHECK(rsa.status().message().find("rsa.pem") != std::string::npos);
  CHECK(rsa.status().message().find("not Ed25519") != std::string::npos);
  tmp.Write("junk.pem", "hello\n");
  auto junk = AuditKey::Load(tmp.path() / "junk.pem");
  REQUIRE_FALSE(junk.ok());
  CHECK(junk.status().message().find("junk.pem") != std::string::npos);
  auto missing = AuditKey::Load(tmp.path() / "none.pem");
  CHECK(missing.status().code() == Code::kNotFound);
}

TEST_CASE("audit: appends build a chain that verifies and round-trips") {
  TempDir tmp;
  KeyPair key = GenKey(tmp, "op");
  const std::string text = MakeLog(tmp, key, 3);
  struct stat st {};
  REQUIRE(::stat((tmp.path() / "audit.log").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  auto entries = ParseAuditLog(text);
  REQUIRE_MESSAGE(entries.ok(), entries.status().message());
  REQUIRE(entries->size() == 3);
  CHECK((*entries)[0].prev == kAuditGenesis);
  for (size_t i = 0; i < 3; ++i) {
    const AuditEntry& e = (*entries)[i];
    CHECK(e.seq == static_cast<std::int64_t>(i + 1));
    CHECK(e.hash == Sha256Hex(AuditCanonicalBytes(e)));
    CHECK(e.key_id == key.signer->key_id());
    CHECK(e.actor == "cli:alice");
    CHECK(e.time.size() == 20);  // RFC 3339 UTC, set by Append
    if (i > 0) CHECK(e.prev == (*entries)[i - 1].hash);
    // ToJson -> text -> AuditEntryFromJson gives the same entry.
    auto back = AuditEntryFromJson(json::parse(ToJson(e).dump()));
    REQUIRE(back.ok());
    CHECK(*back == e);
  }
  AuditVerification v = VerifyAuditLog(text, *key.verifier);
  CHECK_MESSAGE(v.ok, v.problem);
  CHECK(v.entries == 3);
  CHECK(v.head == (*entries)[2].hash);
  // The private key verifies too (its public half).
  CHECK(VerifyAuditLog(text, *key.signer).ok);
  // An empty log verifies (no entries).
  CHECK(VerifyAuditLog("", *key.verifier).ok);
}

TEST_CASE("audit verify names the first bad entry") {
  TempDir tmp;
  KeyPair key = GenKey(tmp, "op");
  const std::vector<std::string> lines = Lines(MakeLog(tmp, key, 4));
  REQUIRE(lines.size() == 4);
  auto verify = [&](const std::vector<std::string>& l) {
    return VerifyAuditLog(Join(l), *key.verifier);
  };

  SUBCASE("a removed entry") {
    std::vector<std::string> l = lines;
    l.erase(l.begin() + 1);
    AuditVerification v = verify(l);
    CHECK_FALSE(v.ok);
    CHECK(v.bad_line == 2);
    CHECK(v.bad_seq == 3);
    CHECK(v.entries == 1);
    CHECK_MESSAGE(v.problem.find("removed: entry seq 2 is missing") != std::string::npos,
                  v.problem);
  }
  SUBCASE("the first entry removed") {
    std::vector<std::string> l = lines;
    l.erase(l.begin());
    AuditVerification v = verify(l);
    CHECK_FALSE(v.ok);
    CHECK(v.bad_line == 1);
    CHECK_MESSAGE(v.problem.find("entry seq 1 is missing") != std::string::npos, v.problem);
  }
  SUBCASE("reordered entries") {
    std::vector<std::string> l = lines;
    std::swap(l[1], l[2]);
    AuditVerification v = verify(l);
    CHECK_FALSE(v.ok);
    CHECK(v.bad_line == 2);
    CHECK(v.bad_seq == 3);
    CHECK_MESSAGE(v.problem.find("reordered: seq 2 was expected here; it comes later, at line 3") !=
                      std::string::npos,
                  v.problem);
  }
  SUBCASE("an edited field") {
    std::vector<std::string> l = lines;
    json j = json::parse(l[2]);
    j["actor"] = "cli:mallory";
    l[2] = j.dump() + "\n";
    AuditVerification v = verify(l);
    CHECK_FALSE(v.ok);
    CHECK(v.bad_line == 3);
    CHECK(v.bad_seq == 3);
    CHECK_MESSAGE(v.problem.find("entry seq 3 (line 3): edited: its hash does not match") !=
                      std::string::npos,
                  v.problem);
  }
  SUBCASE("an edited field with its hash recomputed") {
    std::vector<std::string> l = lines;
    auto e = AuditEntryFromJson(json::parse(l[3]));
    REQUIRE(e.ok());
    e->changes[0].action = "delete";
    e->hash = Sha256Hex(AuditCanonicalBytes(*e));
    l[3] = ToJson(*e).dump() + "\n";
    AuditVerification v = verify(l);
    CHECK_FALSE(v.ok);
    CHECK(v.bad_seq == 4);
    CHECK_MESSAGE(v.problem.find("signature does not verify") != std::string::npos, v.problem);
  }
  SUBCASE("an edited signature") {
    std::vector<std::string> l = lines;
    json j = json::parse(l[0]);
    std::string sig = j["sig"];
    sig[0] = sig[0] == 'A' ? 'B' : 'A';
    j["sig"] = sig;
    l[0] = j.dump() + "\n";
    AuditVerification v = verify(l);
    CHECK_FALSE(v.ok);
    CHECK(v.bad_line == 1);
    CHECK_MESSAGE(v.problem.find("entry seq 1 (line 1): edited: its signature does not verify") !=
                      std::string::npos,
                  v.problem);
  }
  SUBCASE("a truncated last line") {
    std::vector<std::string> l = lines;
    l[3] = l[3].substr(0, l[3].size() / 2);
    AuditVerification v = verify(l);
    CHECK_FALSE(v.ok);
    CHECK(v.bad_line == 4);
    CHECK(v.entries == 3);
    CHECK_MESSAGE(v.problem.find("line 4: truncated last line") != std::string::npos, v.problem);
    CHECK(v.problem.find("after seq 3") != std::string::npos);
  }
  SUBCASE("the last newline cut") {
    std::vector<std::string> l = lines;
    l[3].pop_back();
    AuditVerification v = verify(l);
    CHECK_FALSE(v.ok);
    CHECK(v.bad_line == 4);
    CHECK(v.problem.find("truncated last line (no newline)") != std::string::npos);
  }
  SUBCASE("an unknown field added") {
    std::vector<std::string> l = lines;
    json j = json::parse(l[1]);
    j["extra"] = 1;
    l[1] = j.dump() + "\n";
    AuditVerification v = verify(l);
    CHECK_FALSE(v.ok);
    CHECK(v.bad_line == 2);
    CHECK(v.problem.find("extra: unknown field") != std::string::npos);
  }
  SUBCASE("the wrong key") {
    KeyPair other = GenKey(tmp, "other");
    AuditVerification v = VerifyAuditLog(Join(lines), *other.verifier);
    CHECK_FALSE(v.ok);
    CHECK(v.bad_line == 1);
    CHECK_MESSAGE(v.problem.find("signed by another key") != std::string::npos, v.problem);
  }
  SUBCASE("an entry replaced by one of another log, keyId and all") {
    // Same key, another chain: its own hash and signature are fine, its prev is not.
    TempDir other_dir;
    auto other = NewAuditLog(other_dir.path() / "audit.log", key.signer);
    for (int i = 0; i < 2; ++i) REQUIRE(other->Append(Entry("destroy", "agent.x")).ok());
    std::vector<std::string> l = lines;
    l[1] = Lines(ReadText(other_dir.path() / "audit.log"))[1];
    AuditVerification v = verify(l);
    CHECK_FALSE(v.ok);
    CHECK(v.bad_line == 2);
    CHECK_MESSAGE(v.problem.find("prev does not match") != std::string::npos, v.problem);
  }
}

TEST_CASE("audit: Append refuses a damaged log, and a log without its key") {
  TempDir tmp;
  KeyPair key = GenKey(tmp, "op");
  const fs::path file = tmp.path() / "audit.log";

  SUBCASE("no key and no log: off, nothing written") {
    auto off = NewAuditLog(file, nullptr);
    CHECK(off->Check().ok());
    CHECK(off->Append(Entry("apply", "agent.a")).ok());
    CHECK_FALSE(fs::exists(file));
  }
  SUBCASE("no key but a log with entries: refused") {
    MakeLog(tmp, key, 1);
    auto off = NewAuditLog(file, nullptr);
    Status s = off->Check();
    CHECK(s.code() == Code::kFailed);
    CHECK(s.message().find("has entries but no audit key is configured") != std::string::npos);
    CHECK_FALSE(off->Append(Entry("apply", "agent.a")).ok());
    CHECK(Lines(ReadText(file)).size() == 1);
  }
  SUBCASE("a public key cannot append") {
    auto pub = NewAuditLog(file, key.verifier);
    CHECK(pub->Check().code() == Code::kInvalid);
    CHECK_FALSE(pub->Append(Entry("apply", "agent.a")).ok());
  }
  SUBCASE("a truncated last line: nothing is chained onto it") {
    const std::string text = MakeLog(tmp, key, 2);
    WriteText(file, text.substr(0, text.size() - 10));
    auto log = NewAuditLog(file, key.signer);
    Status s = log->Check();
    CHECK_FALSE(s.ok());
    CHECK(s.message().find("the last entry is damaged (a truncated last line)") !=
          std::string::npos);
    CHECK_FALSE(log->Append(Entry("apply", "agent.b")).ok());
    CHECK(ReadText(file) == text.substr(0, text.size() - 10));  // unchanged
  }
  SUBCASE("an edited last entry") {
    std::vector<std::string> l = Lines(MakeLog(tmp, key, 2));
    json j = json::parse(l[1]);
    j["revision"] = "feedface";
    l[1] = j.dump() + "\n";
    WriteText(file, Join(l));
    CHECK(NewAuditLog(file, key.signer)
              ->Append(Entry("apply", "agent.b"))
              .message()
              .find("its hash does not match") != std::string::npos);
  }
  SUBCASE("a long entry before the last one: the tail is found across chunks") {
    auto log = NewAuditLog(file, key.signer);
    AuditEntry big = Entry("apply", "agent.a");
    for (int i = 0; i < 5000; ++i) big.changes.push_back({"agent.n" + std::to_string(i), "update"});
    REQUIRE(log->Append(big).ok());
    REQUIRE(log->Append(big).ok());
    REQUIRE(log->Append(Entry("apply", "agent.z")).ok());
    AuditVerification v = VerifyAuditLog(ReadText(file), *key.verifier);
    CHECK_MESSAGE(v.ok, v.problem);
    CHECK(v.entries == 3);
  }
}

TEST_CASE("audit: an entry checks out with the real openssl pkeyutl and sha256sum") {
  TempDir tmp;
  KeyPair key = GenKey(tmp, "op");
  MakeLog(tmp, key, 2);
  auto entries = ParseAuditLog(ReadText(tmp.path() / "audit.log"));
  REQUIRE(entries.ok());
  const AuditEntry& e = (*entries)[1];
  const fs::path canon = tmp.path() / "canonical.json";
  const fs::path sig = tmp.path() / "sig.bin";
  WriteText(canon, AuditCanonicalBytes(e));
  // The signature, decoded by the real base64 tool.
  WriteText(tmp.path() / "sig.b64", e.sig + "\n");
  REQUIRE(Run("base64 -d '" + (tmp.path() / "sig.b64").string() + "' > '" + sig.string() + "'") ==
          0);
  CHECK(fs::file_size(sig) == 64);
  std::string sum;
  REQUIRE(Run("sha256sum '" + canon.string() + "'", &sum) == 0);
  CHECK(sum.substr(0, 64) == e.hash);
  const std::string verify = "openssl pkeyutl -verify -pubin -inkey '" + key.public_pem.string() +
                             "' -rawin -in '" + canon.string() + "' -sigfile '" + sig.string() +
                             "'";
  std::string said;
  CHECK(Run(verify, &said) == 0);
  CHECK(said.find("Signature Verified Successfully") != std::string::npos);
  // One byte changed: the real tool refuses it too.
  std::string edited = AuditCanonicalBytes(e);
  edited[edited.find("cli:alice")] = 'C';
  WriteText(canon, edited);
  CHECK(Run(verify) != 0);
  // And an entry signed by `openssl pkeyutl -sign` verifies here.
  WriteText(canon, AuditCanonicalBytes(e));
  REQUIRE(Run("openssl pkeyutl -sign -inkey '" + key.private_pem.string() + "' -rawin -in '" +
              canon.string() + "' -out '" + sig.string() + "'") == 0);
  CHECK(key.verifier->Verify(AuditCanonicalBytes(e), ReadText(sig)));
}

TEST_CASE("audit: entries of a plan hold addresses and actions, never values") {
  Plan plan;
  plan.revision = "c1";
  Change create;
  create.address = "agent.a";
  create.name = "a";
  create.action = Action::kCreate;
  create.desired = SharedJson(json{{"image", "x:1"}, {"env", {{"TOKEN", "s3cr3t-value"}}}});
  Change noop;
  noop.address = "agent.b";
  noop.name = "b";
  plan.changes = {create, noop};
  AuditEntry e = AuditEntryForPlan("controller", "apply", plan, Status::Failed("it broke"));
  CHECK(e.revision == "c1");
  CHECK(e.plan == "sha256:" + Sha256Hex(ToJson(plan).dump()));
  CHECK(e.plan == PlanHash(plan));
  REQUIRE(e.changes.size() == 1);
  CHECK(e.changes[0] == AuditChange{"agent.a", "create"});
  CHECK(e.result == "error");
  CHECK(e.error_code == "failed");
  CHECK(e.error_message == "it broke");
  CHECK(ToJson(e).dump().find("s3cr3t") == std::string::npos);
}

TEST_CASE("audit: controller passes append apply and heal entries under the lock") {
  testing::PassWorld w;
  TempDir keys;
  KeyPair key = GenKey(keys, "op");
  const fs::path file = w.tmp.path() / "state" / "audit.log";
  auto log = NewAuditLog(file, key.signer);
  auto run = [&](PassRequest::Kind kind, const std::string& rev) {
    ReconcilerDeps deps = w.Deps();
    deps.audit = log.get();
    PassRequest r;
    r.kind = kind;
    r.revision = rev;
    r.actor = "webhook:github";
    return RunPass(deps, r);
  };
  w.source.Set("c1", testing::MakeDesired({testing::MakeAgent("a")}));
  PassReport first = run(PassRequest::Kind::kApply, "c1");
  REQUIRE_MESSAGE(first.status.ok(), first.status.message());
  PassReport drift = run(PassRequest::Kind::kDrift, "c1");  // nothing drifted: no entry
  REQUIRE(drift.status.ok());
  auto entries = ParseAuditLog(ReadText(file));
  REQUIRE_MESSAGE(entries.ok(), entries.status().message());
  REQUIRE(entries->size() == 1);
  const AuditEntry& e = (*entries)[0];
  CHECK(e.actor == "webhook:github");
  CHECK(e.action == "apply");
  CHECK(e.revision == "c1");
  CHECK(e.plan.starts_with("sha256:"));
  REQUIRE(e.changes.size() == 1);
  CHECK(e.changes[0] == AuditChange{"agent.a", "create"});
  CHECK(e.result == "ok");
  CHECK(VerifyAuditLog(ReadText(file), *key.verifier).ok);

  SUBCASE("a log that has entries but no key stops the pass before it applies") {
    auto keyless = NewAuditLog(file, nullptr);
    ReconcilerDeps deps = w.Deps();
    deps.audit = keyless.get();
    w.source.Set("c2", testing::MakeDesired({testing::MakeAgent("a"), testing::MakeAgent("b")}));
    const size_t calls = w.provider.calls().size();
    PassRequest r;
    r.revision = "c2";
    PassReport refused = RunPass(deps, r);
    CHECK_FALSE(refused.status.ok());
    CHECK(refused.status.message().find("no audit key") != std::string::npos);
    CHECK(w.provider.calls().size() == calls);  // nothing applied
  }
}

TEST_CASE("audit: a mutated log never throws, and verifies only what was signed") {
  TempDir tmp;
  KeyPair key = GenKey(tmp, "op");
  const std::string original = MakeLog(tmp, key, 4);
  auto signed_entries = ParseAuditLog(original);
  REQUIRE(signed_entries.ok());
  std::mt19937 rng(11);
  static const std::string kSpecial = "{}[]\":,\\\n 0123456789abcdef=+/";
  int verified = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string text = original;
    for (int edits = 1 + static_cast<int>(rng() % 3); edits > 0; --edits) {
      size_t at = rng() % text.size();
      size_t len = 1 + rng() % std::min<size_t>(24, text.size() - at);
      switch (rng() % 4) {
        case 0:
          text[at] = static_cast<char>(rng() % 256);
          break;
        case 1:
          text.erase(at, len);
          break;
        case 2:
          text.insert(at, text.substr(at, len));
          break;
        default:
          text.insert(at, 1, kSpecial[rng() % kSpecial.size()]);
          break;
      }
      if (text.empty()) text = "x";
    }
    AuditVerification v;
    CHECK_NOTHROW(v = VerifyAuditLog(text, *key.verifier));
    CHECK_NOTHROW((void)ParseAuditLog(text));
    if (!v.ok) {
      CHECK(!v.problem.empty());
      continue;
    }
    // What verifies is what was signed: the first entries of the original
    // (a mutation may only cut whole entries off the end, or touch bytes
    // the canonical form does not hold, such as whitespace between tokens).
    ++verified;
    auto got = ParseAuditLog(text);
    REQUIRE(got.ok());
    REQUIRE(got->size() <= signed_entries->size());
    for (size_t i = 0; i < got->size(); ++i) CHECK((*got)[i] == (*signed_entries)[i]);
  }
  MESSAGE("mutated logs that still verified: " << verified);
}

}  // namespace
}  // namespace reconcile
