#include "reconcile/approval.h"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <system_error>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <nlohmann/json.hpp>

#include "reconcile/spec.h"
#include "reconcile/state_store.h"

namespace reconcile {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr std::size_t kMaxPlanBytes = 64u << 20;  // a plan of thousands of agents fits
constexpr std::size_t kMaxRecordBytes = 64u << 10;
constexpr std::size_t kKeepClosed = 50;  // closed records kept for `approve` to explain
constexpr const char* kMetaSuffix = ".meta.json";

bool SameText(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// Reads a regular file of at most `limit` bytes; nullopt when it is missing.
Result<std::optional<std::string>> ReadSmall(const fs::path& path, std::size_t limit) {
  std::error_code ec;
  auto st = fs::symlink_status(path, ec);
  if (ec || st.type() == fs::file_type::not_found) return std::optional<std::string>{};
  if (st.type() != fs::file_type::regular) {
    return Status::Invalid(path.string() + " is not a regular file");
  }
  auto size = fs::file_size(path, ec);
  if (ec) return Status::Failed("cannot read " + path.string() + ": " + ec.message());
  if (size > limit) {
    return Status::Invalid(path.string() + " is larger than " + std::to_string(limit) + " bytes");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Failed("cannot open " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return std::optional<std::string>(text.str());
}

json RecordJson(const PendingPlan& p) {
  return {{"reconcilePendingPlan", 1},
          {"id", p.id},
          {"revision", p.revision},
          {"environment", p.environment},
          {"createdAt", p.created_at},
          {"state", p.state},
          {"why", p.why},
          {"supersededBy", p.superseded_by},
          {"approvedBy", p.approved_by},
          {"approvedAt", p.approved_at},
          {"via", p.via},
          {"closedAt", p.closed_at}};
}

// The text the HMAC covers: the record without `hmac`, compact, keys sorted.
std::string SignedText(const PendingPlan& p) {
  return RecordJson(p).dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<PendingPlan> RecordFromJson(const std::string& name, const std::string& text,
                                   std::string* hmac) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::Invalid(name + ": not a JSON object");
  PendingPlan p;
  std::map<std::string, std::string*> fields = {{"id", &p.id},
                                                {"revision", &p.revision},
                                                {"environment", &p.environment},
                                                {"createdAt", &p.created_at},
                                                {"state", &p.state},
                                                {"why", &p.why},
                                                {"supersededBy", &p.superseded_by},
                                                {"approvedBy", &p.approved_by},
                                                {"approvedAt", &p.approved_at},
                                                {"via", &p.via},
                                                {"closedAt", &p.closed_at},
                                                {"hmac", hmac}};
  for (const auto& [key, value] : j.items()) {
    if (key == "reconcilePendingPlan") {
      if (value != 1) return Status::Invalid(name + ": reconcilePendingPlan: unsupported version");
      continue;
    }
    auto it = fields.find(key);
    if (it == fields.end()) return Status::Invalid(name + ": " + key + ": unknown field");
    if (!value.is_string()) return Status::Invalid(name + ": " + key + ": not a string");
    *it->second = value.get<std::string>();
  }
  return p;
}

std::string Short(const std::string& id) { return id.substr(0, 12); }

}  // namespace

std::string PendingPlanId(const SavedPlan& saved) { return Sha256Hex(SavedPlanText(saved)); }

bool IsPlanIdText(const std::string& id) {
  if (id.size() < 8 || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

ApprovalStore::ApprovalStore(fs::path state_dir) : dir_(std::move(state_dir) / "pending") {}

Result<std::string> ApprovalStore::Key(bool create) const {
  const fs::path path = dir_ / "key";
  auto text = ReadSmall(path, 1024);
  if (!text.ok()) return text.status();
  if (text->has_value()) {
    std::string key = **text;
    while (!key.empty() && (key.back() == '\n' || key.back() == ' ')) key.pop_back();
    if (key.size() < 32) return Status::Invalid(path.string() + ": the key is too short");
    return key;
  }
  if (!create) {
    return Status::NotFound("no approval key at " + path.string() +
                            " (the controller makes it when it publishes its first plan)");
  }
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) return Status::Internal("no random bytes for the key");
  std::string key = HexBytes(raw, sizeof raw);
  if (Status s = WriteFileAtomic(path, key + "\n"); !s.ok()) return s;
  return key;
}

Result<PendingPlan> ApprovalStore::Load(const std::string& id, bool with_plan) const {
  const fs::path meta = dir_ / (id + kMetaSuffix);
  auto text = ReadSmall(meta, kMaxRecordBytes);
  if (!text.ok()) return text.status();
  if (!text->has_value()) return Status::NotFound("no plan " + id + " in " + dir_.string());
  std::string hmac;
  auto p = RecordFromJson(meta.string(), **text, &hmac);
  if (!p.ok()) return p.status();
  if (p->id != id) {
    return Status::Invalid("plan " + Short(id) + ": its record " + meta.string() +
                           " names another plan (" + Short(p->id) + "): tampered; refused");
  }
  auto key = Key(false);
  if (!key.ok()) return key.status();
  if (!SameText(HmacSha256Hex(*key, SignedText(*p)), hmac)) {
    return Status::Invalid("plan " + Short(id) + ": its record " + meta.string() +
                           " is not signed by this controller's key (edited or forged); refused");
  }
  if (!with_plan) return p;
  const fs::path file = dir_ / (id + ".json");
  auto plan = ReadSmall(file, kMaxPlanBytes);
  if (!plan.ok()) return plan.status();
  if (!plan->has_value())
    return Status::NotFound("plan " + Short(id) + ": " + file.string() + " is missing");
  if (!SameText(Sha256Hex(**plan), id)) {
    return Status::Invalid("plan " + Short(id) + ": " + file.string() +
                           " does not match its id (its SHA-256 is " + Short(Sha256Hex(**plan)) +
                           "...): it was edited after it was published; refused, nothing applied");
  }
  auto saved = ParseSavedPlan(file.string(), **plan);
  if (!saved.ok()) return saved.status();
  p->saved = std::move(*saved);
  return p;
}

Status ApprovalStore::Save(const PendingPlan& p) const {
  auto key = Key(true);
  if (!key.ok()) return key.status();
  json j = RecordJson(p);
  j["hmac"] = HmacSha256Hex(*key, SignedText(p));
  return WriteFileAtomic(dir_ / (p.id + kMetaSuffix), j.dump(2) + "\n");
}

std::vector<PendingPlan> ApprovalStore::List() const {
  std::vector<PendingPlan> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.ends_with(kMetaSuffix)) continue;
    auto text = ReadSmall(it->path(), kMaxRecordBytes);
    if (!text.ok() || !text->has_value()) continue;
    std::string hmac;
    auto p = RecordFromJson(name, **text, &hmac);
    if (p.ok()) out.push_back(std::move(*p));
  }
  std::sort(out.begin(), out.end(), [](const PendingPlan& a, const PendingPlan& b) {
    return a.created_at != b.created_at ? a.created_at > b.created_at : a.id < b.id;
  });
  return out;
}

Result<std::optional<PendingPlan>> ApprovalStore::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const PendingPlan& listed : List()) {
    if (!listed.open()) continue;
    // Only a record signed with the key counts; a forged one is ignored here
    // (and refused by Find/Approve).
    auto verified = Load(listed.id, false);
    if (!verified.ok()) continue;
    auto full = Load(listed.id, true);
    if (!full.ok()) return full.status();
    return std::optional<PendingPlan>(std::move(*full));
  }
  return std::optional<PendingPlan>{};
}

Result<PendingPlan> ApprovalStore::Find(const std::string& id) const {
  if (!IsPlanIdText(id)) {
    return Status::NotFound("'" + id.substr(0, 80) +
                            "' is not a plan id (8 to 64 lower-case hex digits)");
  }
  std::vector<std::string> matches;
  std::error_code ec;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.ends_with(kMetaSuffix)) continue;
    std::string found = name.substr(0, name.size() - std::string(kMetaSuffix).size());
    if (found.rfind(id, 0) == 0) matches.push_back(found);
  }
  if (matches.empty()) {
    return Status::NotFound("no plan " + id + " waits for approval in " + dir_.string());
  }
  if (matches.size() > 1) {
    return Status::NotFound("plan id prefix " + id + " names " + std::to_string(matches.size()) +
                            " plans; give more digits");
  }
  return Load(matches[0], true);
}

Result<PendingPlan> ApprovalStore::Publish(const SavedPlan& saved, const std::string& environment,
                                           const std::string& now, const std::string& why_other) {
  std::lock_guard<std::mutex> lock(mu_);
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) return Status::Failed("cannot create " + dir_.string() + ": " + ec.message());
  fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::replace, ec);
  const std::string text = SavedPlanText(saved);
  const std::string id = Sha256Hex(text);
  const fs::path file = dir_ / (id + ".json");
  std::optional<PendingPlan> same;
  for (const PendingPlan& listed : List()) {
    if (!listed.open()) continue;
    auto verified = Load(listed.id, false);
    if (!verified.ok()) continue;  // forged: not ours to close
    if (listed.id == id) {
      same = *verified;
      continue;
    }
    PendingPlan old = *verified;
    const bool other_revision = old.revision != saved.plan.revision;
    old.state = other_revision ? "superseded" : "stale";
    old.why = !why_other.empty() ? why_other
              : other_revision
                  ? "superseded by plan " + Short(id) + " of revision " + saved.plan.revision
                  : "stale: what runs changed since it was computed; plan " + Short(id) +
                        " waits instead";
    old.superseded_by = id;
    old.closed_at = now;
    if (Status s = Save(old); !s.ok()) return s;
  }
  if (!fs::exists(file, ec)) {
    if (Status s = WriteFileAtomic(file, text); !s.ok()) return s;
  }
  if (same) {
    same->saved = saved;
    return *same;
  }
  PendingPlan p;
  p.id = id;
  p.revision = saved.plan.revision;
  p.environment = environment;
  p.created_at = now;
  p.saved = saved;
  if (Status s = Save(p); !s.ok()) return s;
  Prune();
  return p;
}

Result<PendingPlan> ApprovalStore::Approve(const std::string& id, const std::string& by,
                                           const std::string& via, const std::string& now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto found = Find(id);
  if (!found.ok()) return found.status();
  PendingPlan p = std::move(*found);
  if (p.state == "approved") return p;
  if (p.state != "pending") {
    std::string msg = "plan " + Short(p.id) + " (revision " + p.revision + ") was " + p.state;
    if (!p.closed_at.empty()) msg += " at " + p.closed_at;
    if (!p.why.empty()) msg += ": " + p.why;
    if (p.state == "applied") msg += "; nothing to approve";
    if (!p.superseded_by.empty()) {
      msg += "; approve plan " + Short(p.superseded_by) + " instead (see the controller's status)";
    }
    return Status::Conflict(msg);
  }
  p.state = "approved";
  p.approved_by = by;
  p.approved_at = now;
  p.via = via;
  if (Status s = Save(p); !s.ok()) return s;
  return p;
}

Status ApprovalStore::Close(const std::string& id, const std::string& state, const std::string& why,
                            const std::string& now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto p = Load(id, false);
  if (!p.ok()) return p.status();
  if (!p->open()) return Status::Ok();
  p->state = state;
  p->why = why;
  p->closed_at = now;
  return Save(*p);
}

void ApprovalStore::Prune() const {
  std::vector<PendingPlan> closed;
  for (PendingPlan& p : List()) {
    if (!p.open()) closed.push_back(std::move(p));
  }
  std::error_code ec;
  for (std::size_t i = kKeepClosed; i < closed.size(); ++i) {
    fs::remove(dir_ / (closed[i].id + kMetaSuffix), ec);
    fs::remove(dir_ / (closed[i].id + ".json"), ec);
  }
}

}  // namespace reconcile
