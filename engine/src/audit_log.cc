#include "reconcile/audit_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

#include "reconcile/spec.h"

namespace reconcile {

namespace {

using nlohmann::json;

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string ToBase64(const std::string& raw) {
  std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(raw.data()),
                          static_cast<int>(raw.size()));
  out.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return out;
}

std::optional<std::string> FromBase64(const std::string& text) {
  if (text.empty() || text.size() % 4 != 0) return std::nullopt;
  for (char c : text) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/' && c != '=') {
      return std::nullopt;
    }
  }
  std::string out(text.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  size_t pad = 0;
  if (text.ends_with("==")) {
    pad = 2;
  } else if (text.ends_with("=")) {
    pad = 1;
  }
  out.resize(static_cast<size_t>(n) - pad);
  if (ToBase64(out) != text) return std::nullopt;  // one spelling only
  return out;
}

bool IsHex64(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// The canonical object (every field but hash and sig).
json CanonicalJson(const AuditEntry& e) {
  json changes = json::array();
  for (const AuditChange& c : e.changes) {
    changes.push_back({{"address", c.address}, {"action", c.action}});
  }
  json result = {{"status", e.result}};
  if (e.result != "ok") {
    result["code"] = e.error_code;
    result["message"] = e.error_message;
  }
  return {{"v", AuditEntry::kFormatVersion},
          {"seq", e.seq},
          {"time", e.time},
          {"actor", e.actor},
          {"action", e.action},
          {"environment", e.environment},
          {"revision", e.revision},
          {"plan", e.plan.empty() ? json(nullptr) : json(e.plan)},
          {"savedPlan", e.saved_plan ? json(*e.saved_plan) : json(nullptr)},
          {"changes", changes},
          {"result", result},
          {"detail", e.detail},
          {"keyId", e.key_id},
          {"prev", e.prev}};
}

Status FileError(const std::filesystem::path& file, const std::string& what) {
  return Status::Failed("audit log " + file.string() + ": " + what + ": " + std::strerror(errno));
}

// The last line of the open file `fd` of `size` bytes, without its newline;
// *whole is false when the file does not end in a newline.
Result<std::string> LastLine(int fd, off_t size, const std::filesystem::path& file, bool* whole) {
  *whole = true;
  if (size == 0) return std::string();
  constexpr off_t kChunk = 64 * 1024;
  std::string tail;  // the bytes [start, size)
  off_t start = size;
  for (;;) {
    const off_t from = start > kChunk ? start - kChunk : 0;
    std::string chunk(static_cast<size_t>(start - from), '\0');
    if (pread(fd, chunk.data(), chunk.size(), from) != static_cast<ssize_t>(chunk.size())) {
      return FileError(file, "cannot read");
    }
    const bool first = tail.empty();
    tail.insert(0, chunk);
    start = from;
    if (first) *whole = tail.back() == '\n';
    const size_t content_end = *whole ? tail.size() - 1 : tail.size();
    const size_t nl = content_end == 0 ? std::string::npos : tail.rfind('\n', content_end - 1);
    if (nl != std::string::npos) return tail.substr(nl + 1, content_end - nl - 1);
    if (start == 0) return tail.substr(0, content_end);
  }
}

class FileAuditLog final : public AuditSink {
 public:
  FileAuditLog(std::filesystem::path file, std::shared_ptr<const AuditKey> key, Clock* clock)
      : file_(std::move(file)), key_(std::move(key)), clock_(clock) {
    if (clock_ == nullptr) {
      own_clock_ = NewSystemClock();
      clock_ = own_clock_.get();
    }
  }

  Status Check() override {
    std::lock_guard<std::mutex> lock(mu_);
    std::error_code ec;
    const bool exists = std::filesystem::exists(file_, ec);
    if (!key_) return exists ? NoKey() : Status::Ok();
    if (!key_->can_sign()) {
      return Status::Invalid("the audit key is a public key; appending needs the private key");
    }
    if (!exists) return Status::Ok();
    int fd = ::open(file_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return FileError(file_, "cannot open");
    Result<Tail> tail = ReadTail(fd);
    ::close(fd);
    return tail.status();
  }

  Status Append(AuditEntry entry) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::error_code ec;
    if (!key_) return std::filesystem::exists(file_, ec) ? NoKey() : Status::Ok();
    if (!key_->can_sign()) {
      return Status::Invalid("the audit key is a public key; appending needs the private key");
    }
    const bool existed = std::filesystem::exists(file_, ec);
    if (!existed) {
      std::filesystem::create_directories(file_.parent_path(), ec);
      if (ec) {
        return Status::Failed("audit log " + file_.string() +
                              ": cannot create its folder: " + ec.message());
      }
    }
    int fd = ::open(file_.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return FileError(file_, "cannot open");
    Status s = AppendLocked(fd, std::move(entry));
    ::close(fd);
    if (s.ok() && !existed) {
      // The new file's name is durable too.
      int dir = ::open(file_.parent_path().empty() ? "." : file_.parent_path().c_str(),
                       O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dir >= 0) {
        ::fsync(dir);
        ::close(dir);
      }
    }
    return s;
  }

 private:
  struct Tail {
    std::int64_t seq = 0;
    std::string hash = kAuditGenesis;
  };

  Status NoKey() const {
    return Status::Failed("audit log " + file_.string() +
                          " has entries but no audit key is configured (--audit-key FILE or "
                          "RECONCILE_AUDIT_KEY); refusing to act without recording it");
  }

  Result<Tail> ReadTail(int fd) {
    struct stat st {};
    if (fstat(fd, &st) != 0) return FileError(file_, "cannot stat");
    bool whole = true;
    Result<std::string> last = LastLine(fd, st.st_size, file_, &whole);
    if (!last.ok()) return last.status();
    Tail tail;
    if (st.st_size == 0) return tail;
    const std::string damaged = "audit log " + file_.string() + ": the last entry is damaged (";
    const std::string fix = "); run `reconcile audit verify`; nothing is appended to a damaged log";
    if (!whole) return Status::Failed(damaged + "a truncated last line" + fix);
    json j = json::parse(*last, nullptr, false);
    if (j.is_discarded()) return Status::Failed(damaged + "not JSON" + fix);
    Result<AuditEntry> e = AuditEntryFromJson(j);
    if (!e.ok()) return Status::Failed(damaged + e.status().message() + fix);
    if (Sha256Hex(AuditCanonicalBytes(*e)) != e->hash) {
      return Status::Failed(damaged + "its hash does not match its content" + fix);
    }
    tail.seq = e->seq;
    tail.hash = e->hash;
    return tail;
  }

  Status AppendLocked(int fd, AuditEntry entry) {
    if (flock(fd, LOCK_EX) != 0) return FileError(file_, "cannot lock");
    Result<Tail> tail = ReadTail(fd);
    if (!tail.ok()) return tail.status();
    entry.seq = tail->seq + 1;
    entry.prev = tail->hash;
    entry.key_id = key_->key_id();
    if (entry.time.empty()) entry.time = clock_->NowRfc3339();
    const std::string canonical = AuditCanonicalBytes(entry);
    entry.hash = Sha256Hex(canonical);
    Result<std::string> sig = key_->Sign(canonical);
    if (!sig.ok()) return sig.status().WithContext("audit log " + file_.string());
    entry.sig = ToBase64(*sig);
    const std::string line = Dump(ToJson(entry)) + "\n";
    struct stat st {};
    if (fstat(fd, &st) != 0) return FileError(file_, "cannot stat");
    size_t done = 0;
    while (done < line.size()) {
      ssize_t n = ::write(fd, line.data() + done, line.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        Status s = FileError(file_, "cannot write");
        if (ftruncate(fd, st.st_size) != 0) {
          return s.WithContext("and cannot cut the partial line off again");
        }
        return s;
      }
      done += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0) return FileError(file_, "cannot fsync");
    return Status::Ok();
  }

  std::mutex mu_;
  std::filesystem::path file_;
  std::shared_ptr<const AuditKey> key_;
  Clock* clock_;
  std::unique_ptr<Clock> own_clock_;
};

// Reads the field `key` of `j` as a string; kInvalid naming it otherwise.
Status GetString(const json& j, const char* key, std::string* out) {
  auto it = j.find(key);
  if (it == j.end()) return Status::Invalid(std::string(key) + ": missing");
  if (!it->is_string()) return Status::Invalid(std::string(key) + ": not a string");
  *out = it->get<std::string>();
  return Status::Ok();
}

}  // namespace

struct AuditKey::Impl {
  EVP_PKEY* pkey = nullptr;
  bool is_private = false;
  std::string key_id;
  ~Impl() { EVP_PKEY_free(pkey); }
};

AuditKey::AuditKey(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AuditKey::~AuditKey() = default;

Result<std::shared_ptr<const AuditKey>> AuditKey::Load(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return Status::NotFound("cannot read audit key " + file.string());
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (buffer.str().size() > 64 * 1024) {
    return Status::Invalid(file.string() + ": not an Ed25519 key in PEM (too large)");
  }
  return FromPem(buffer.str(), file.string());
}

Result<std::shared_ptr<const AuditKey>> AuditKey::FromPem(const std::string& pem,
                                                          const std::string& name) {
  auto impl = std::make_unique<Impl>();
  const bool is_private = pem.find("PRIVATE KEY-----") != std::string::npos;
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return Status::Internal("out of memory");
  impl->pkey = is_private ? PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr)
                          : PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  const std::string make =
      " (make one with `openssl genpkey -algorithm ed25519 -out audit.pem`; its public key "
      "with `openssl pkey -in audit.pem -pubout`)";
  if (impl->pkey == nullptr) {
    return Status::Invalid(name + ": not an Ed25519 " +
                           std::string(is_private ? "private" : "public") + " key in PEM" + make);
  }
  if (EVP_PKEY_id(impl->pkey) != EVP_PKEY_ED25519) {
    return Status::Invalid(name + ": a " + std::string(OBJ_nid2sn(EVP_PKEY_id(impl->pkey))) +
                           " key, not Ed25519" + make);
  }
  impl->is_private = is_private;
  unsigned char raw[32];
  size_t len = sizeof raw;
  if (EVP_PKEY_get_raw_public_key(impl->pkey, raw, &len) != 1 || len != sizeof raw) {
    return Status::Invalid(name + ": cannot read the Ed25519 public key");
  }
  impl->key_id = Sha256Hex(std::string(reinterpret_cast<const char*>(raw), len));
  return std::shared_ptr<const AuditKey>(new AuditKey(std::move(impl)));
}

bool AuditKey::can_sign() const { return impl_->is_private; }
const std::string& AuditKey::key_id() const { return impl_->key_id; }

std::string AuditKey::PublicKeyPem() const {
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return "";
  std::string out;
  if (PEM_write_bio_PUBKEY(bio, impl_->pkey) == 1) {
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    if (n > 0) out.assign(data, static_cast<size_t>(n));
  }
  BIO_free(bio);
  return out;
}

Result<std::string> AuditKey::Sign(const std::string& data) const {
  if (!impl_->is_private) return Status::Invalid("a public key cannot sign");
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) return Status::Internal("out of memory");
  std::string sig(64, '\0');
  size_t len = sig.size();
  const bool ok =
      EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, impl_->pkey) == 1 &&
      EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) return Status::Internal("Ed25519 signing failed");
  sig.resize(len);
  return sig;
}

bool AuditKey::Verify(const std::string& data, const std::string& signature) const {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) return false;
  const bool ok =
      EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, impl_->pkey) == 1 &&
      EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature.data()),
                       signature.size(), reinterpret_cast<const unsigned char*>(data.data()),
                       data.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

std::string PlanHash(const Plan& plan) { return "sha256:" + Sha256Hex(Dump(ToJson(plan))); }

void SetAuditResult(AuditEntry& entry, const Status& s) {
  entry.result = s.ok() ? "ok" : "error";
  entry.error_code = s.ok() ? "" : CodeName(s.code());
  entry.error_message = s.ok() ? "" : s.message();
}

AuditEntry AuditEntryForPlan(std::string actor, std::string action, const Plan& plan,
                             const Status& result) {
  AuditEntry e;
  e.actor = std::move(actor);
  e.action = std::move(action);
  e.revision = plan.revision;
  e.plan = PlanHash(plan);
  for (const Change& c : plan.changes) {
    if (c.action != Action::kNoOp) e.changes.push_back({c.address, ActionName(c.action)});
  }
  SetAuditResult(e, result);
  return e;
}

AuditEntry AuditEntryForApproval(std::string actor, const Plan& plan,
                                 const std::string& saved_plan_id, std::string environment,
                                 std::string revision, const std::string& approved_by,
                                 const std::string& via) {
  AuditEntry e = AuditEntryForPlan(std::move(actor), "approve", plan, Status::Ok());
  e.environment = std::move(environment);
  e.revision = std::move(revision);
  e.saved_plan = "sha256:" + saved_plan_id;
  e.detail = "plan " + saved_plan_id + " approved by " + approved_by + " via " + via;
  return e;
}

nlohmann::json ToJson(const AuditEntry& entry) {
  json j = CanonicalJson(entry);
  j["hash"] = entry.hash;
  j["sig"] = entry.sig;
  return j;
}

std::string AuditCanonicalBytes(const AuditEntry& entry) { return Dump(CanonicalJson(entry)); }

Result<AuditEntry> AuditEntryFromJson(const nlohmann::json& j) {
  if (!j.is_object()) return Status::Invalid("not a JSON object");
  static const char* const kFields[] = {
      "v",         "seq",     "time",   "actor",  "action", "environment", "revision", "plan",
      "savedPlan", "changes", "result", "detail", "keyId",  "prev",        "hash",     "sig"};
  for (const auto& [key, value] : j.items()) {
    bool known = false;
    for (const char* f : kFields) known = known || key == f;
    if (!known) return Status::Invalid(key + ": unknown field");
  }
  if (!j.contains("v") || !j["v"].is_number_integer()) {
    return Status::Invalid("v: missing or not an integer");
  }
  if (j["v"].get<std::int64_t>() != AuditEntry::kFormatVersion) {
    return Status::Invalid("v: unsupported version " + j["v"].dump() + " (this engine reads 1)");
  }
  AuditEntry e;
  if (!j.contains("seq") || !j["seq"].is_number_integer() || j["seq"].get<std::int64_t>() < 1) {
    return Status::Invalid("seq: missing or not a positive integer");
  }
  e.seq = j["seq"].get<std::int64_t>();
  for (auto [key, out] : {std::pair<const char*, std::string*>{"time", &e.time},
                          {"actor", &e.actor},
                          {"action", &e.action},
                          {"environment", &e.environment},
                          {"revision", &e.revision},
                          {"detail", &e.detail},
                          {"keyId", &e.key_id},
                          {"prev", &e.prev},
                          {"hash", &e.hash},
                          {"sig", &e.sig}}) {
    if (Status s = GetString(j, key, out); !s.ok()) return s;
  }
  for (const char* key : {"plan", "savedPlan"}) {
    if (!j.contains(key)) return Status::Invalid(std::string(key) + ": missing");
    const json& v = j[key];
    if (!v.is_null() && !v.is_string()) {
      return Status::Invalid(std::string(key) + ": not a string or null");
    }
  }
  if (j["plan"].is_string()) {
    e.plan = j["plan"].get<std::string>();
    if (e.plan.empty()) return Status::Invalid("plan: empty (null when there is none)");
  }
  if (j["savedPlan"].is_string()) e.saved_plan = j["savedPlan"].get<std::string>();
  if (!j.contains("changes") || !j["changes"].is_array()) {
    return Status::Invalid("changes: missing or not an array");
  }
  for (size_t i = 0; i < j["changes"].size(); ++i) {
    const json& c = j["changes"][i];
    const std::string at = "changes[" + std::to_string(i) + "]";
    if (!c.is_object() || c.size() != 2) {
      return Status::Invalid(at + ": not an object of address and action");
    }
    AuditChange change;
    if (Status s = GetString(c, "address", &change.address); !s.ok()) return s.WithContext(at);
    if (Status s = GetString(c, "action", &change.action); !s.ok()) return s.WithContext(at);
    e.changes.push_back(std::move(change));
  }
  if (!j.contains("result") || !j["result"].is_object()) {
    return Status::Invalid("result: missing or not an object");
  }
  const json& r = j["result"];
  if (Status s = GetString(r, "status", &e.result); !s.ok()) return s.WithContext("result");
  if (e.result == "ok") {
    if (r.size() != 1) return Status::Invalid("result: an ok result holds only its status");
  } else if (e.result == "error") {
    if (r.size() != 3) return Status::Invalid("result: an error holds status, code and message");
    if (Status s = GetString(r, "code", &e.error_code); !s.ok()) return s.WithContext("result");
    if (Status s = GetString(r, "message", &e.error_message); !s.ok()) {
      return s.WithContext("result");
    }
  } else {
    return Status::Invalid("result.status: '" + e.result + "' is not ok or error");
  }
  for (auto [key, value] : {std::pair<const char*, const std::string*>{"prev", &e.prev},
                            {"hash", &e.hash},
                            {"keyId", &e.key_id}}) {
    if (!IsHex64(*value)) return Status::Invalid(std::string(key) + ": not 64 lower-case hex");
  }
  if (!FromBase64(e.sig)) return Status::Invalid("sig: not base64");
  return e;
}

Result<std::vector<AuditEntry>> ParseAuditLog(const std::string& text) {
  std::vector<AuditEntry> out;
  size_t line = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    ++line;
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) {
      return Status::Invalid("line " + std::to_string(line) + ": truncated (no newline)");
    }
    json j = json::parse(text.substr(pos, nl - pos), nullptr, false);
    if (j.is_discarded()) return Status::Invalid("line " + std::to_string(line) + ": not JSON");
    Result<AuditEntry> e = AuditEntryFromJson(j);
    if (!e.ok()) return e.status().WithContext("line " + std::to_string(line));
    out.push_back(std::move(*e));
    pos = nl + 1;
  }
  return out;
}

AuditVerification VerifyAuditLog(const std::string& text, const AuditKey& key) {
  AuditVerification v;
  v.head = kAuditGenesis;
  // Each line, and the seq it claims where it parses (to tell a removed
  // entry from a reordered one).
  struct Line {
    std::string text;
    bool whole = true;
  };
  std::vector<Line> lines;
  for (size_t pos = 0; pos < text.size();) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) {
      lines.push_back({text.substr(pos), false});
      break;
    }
    lines.push_back({text.substr(pos, nl - pos), true});
    pos = nl + 1;
  }
  std::map<std::int64_t, size_t> line_of_seq;  // first line that claims a seq
  for (size_t i = 0; i < lines.size(); ++i) {
    json j = json::parse(lines[i].text, nullptr, false);
    if (j.is_object() && j.contains("seq") && j["seq"].is_number_integer()) {
      line_of_seq.emplace(j["seq"].get<std::int64_t>(), i + 1);
    }
  }
  auto bad = [&](size_t line, std::int64_t seq, std::string problem) {
    v.ok = false;
    v.bad_line = line;
    v.bad_seq = seq;
    v.problem = std::move(problem);
    return v;
  };
  std::int64_t expected = 1;
  for (size_t i = 0; i < lines.size(); ++i) {
    const size_t n = i + 1;
    const std::string at = "line " + std::to_string(n);
    json j = json::parse(lines[i].text, nullptr, false);
    if (!lines[i].whole) {
      return bad(n, 0,
                 at + ": truncated last line (no newline" +
                     (j.is_discarded() ? ", not whole JSON" : std::string()) + "), after seq " +
                     std::to_string(expected - 1));
    }
    if (j.is_discarded()) return bad(n, 0, at + ": not a JSON entry (edited or damaged)");
    Result<AuditEntry> parsed = AuditEntryFromJson(j);
    if (!parsed.ok()) {
      std::int64_t seq =
          j.contains("seq") && j["seq"].is_number_integer() ? j["seq"].get<std::int64_t>() : 0;
      return bad(n, seq, at + ": not a valid entry (edited): " + parsed.status().message());
    }
    const AuditEntry& e = *parsed;
    const std::string name = "entry seq " + std::to_string(e.seq) + " (" + at + ")";
    const std::string canonical = AuditCanonicalBytes(e);
    if (Sha256Hex(canonical) != e.hash) {
      return bad(n, e.seq, name + ": edited: its hash does not match its content");
    }
    if (e.key_id != key.key_id()) {
      return bad(n, e.seq,
                 name + ": signed by another key (keyId " + e.key_id.substr(0, 16) +
                     "..., this public key is " + key.key_id().substr(0, 16) + "...)");
    }
    if (!key.Verify(canonical, *FromBase64(e.sig))) {
      return bad(n, e.seq,
                 name +
                     ": edited: its signature does not verify (the entry or its sig was "
                     "changed, or another key signed it)");
    }
    if (e.seq != expected) {
      auto later = line_of_seq.find(expected);
      if (later != line_of_seq.end() && later->second > n) {
        return bad(n, e.seq,
                   name + ": reordered: seq " + std::to_string(expected) +
                       " was expected here; it comes later, at line " +
                       std::to_string(later->second));
      }
      if (e.seq > expected) {
        return bad(n, e.seq,
                   name + ": removed: entry seq " + std::to_string(expected) +
                       (e.seq > expected + 1 ? " to " + std::to_string(e.seq - 1) : "") +
                       " is missing before it");
      }
      return bad(n, e.seq,
                 name + ": reordered: seq " + std::to_string(e.seq) + " after seq " +
                     std::to_string(expected - 1));
    }
    if (e.prev != v.head) {
      return bad(n, e.seq,
                 name +
                     ": prev does not match the hash of the entry before it (an entry was "
                     "removed or replaced)");
    }
    v.head = e.hash;
    v.head_seq = e.seq;
    v.entries += 1;
    expected = e.seq + 1;
  }
  v.ok = true;
  return v;
}

std::unique_ptr<AuditSink> NewAuditLog(std::filesystem::path file,
                                       std::shared_ptr<const AuditKey> key, Clock* clock) {
  return std::make_unique<FileAuditLog>(std::move(file), std::move(key), clock);
}

}  // namespace reconcile
