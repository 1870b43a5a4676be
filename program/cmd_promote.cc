#include "cmd_promote.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <tuple>

#include <spdlog/spdlog.h>

#include "reconcile/git_commit.h"
#include "reconcile/loader.h"
#include "reconcile/promotion.h"
#include "reconcile/reconciler.h"
#include "reconcile/state_store.h"

namespace reconcile::cli {

namespace {

namespace fs = std::filesystem;

constexpr int kExitOk = 0;
constexpr int kExitError = 1;

int Fail(const Status& s) {
  spdlog::error("{}", s.message());
  return kExitError;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

// Writes `content` to `path` through a temporary file and a rename, with
// the mode of the file it replaces (0644 for a new one).
Status WriteWorkingFile(const fs::path& path, const std::string& content) {
  std::error_code ec;
  fs::perms mode = fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                   fs::perms::others_read;
  if (fs::exists(path, ec)) mode = fs::status(path, ec).permissions();
  const fs::path tmp = path.string() + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << content;
    out.flush();
    if (!out) return Status::Failed("cannot write " + tmp.string() + ": " + std::strerror(errno));
  }
  fs::permissions(tmp, mode, ec);
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    return Status::Failed("cannot write " + path.string() + ": " + ec.message());
  }
  return Status::Ok();
}

std::string ShortRevision(const std::string& revision) {
  if (revision.starts_with("tree-")) return revision;
  return revision.substr(0, 12);
}

// The source environment, as PromotionInput needs it: loaded, its state and
// history read, observed, and its drift judged (as `reconcile drift`).
Status GatherSource(Session& session, PromotionInput& in) {
  Reconciler& r = session.reconciler();
  if (Status s = session.Load(); !s.ok()) return s.WithContext("environment " + in.from);
  if (Status s = r.ReadState(); !s.ok()) return s.WithContext("environment " + in.from);
  Result<History> history = session.store().LoadHistory();
  if (!history.ok()) return history.status().WithContext("environment " + in.from);
  if (!history->entries.empty()) in.last = history->entries.back();
  if (Status s = r.Observe(); !s.ok()) {
    return s.WithContext("environment " + in.from + ": observing what runs");
  }
  in.plan_has_changes = r.MakePlan().HasChanges();
  in.state = r.recorded();
  in.drift = r.Drift();
  in.desired_revision = r.snapshot().revision;
  in.desired_content_digest = r.snapshot().content_digest;
  for (const Agent& a : r.snapshot().loaded.state.agents) {
    PromotionAgent p;
    p.name = a.name;
    p.builds = a.build.has_value();
    if (auto it = in.state.resources.find("agent." + a.name); it != in.state.resources.end()) {
      p.recorded = true;
      p.image_digest = it->second.image_digest;
      p.health = it->second.health;
    }
    std::string engine_health;
    if (auto obs = r.observed().find(a.target); obs != r.observed().end()) {
      for (const ObservedInstance& i : obs->second.instances) {
        if (i.agent != a.name) continue;
        ++p.instances;
        if (i.running) ++p.running;
        if (i.health == "unhealthy" || (i.health == "starting" && engine_health != "unhealthy") ||
            (i.health == "healthy" && engine_health.empty())) {
          engine_health = i.health;
        }
      }
    }
    if (!engine_health.empty()) p.health = engine_health;
    in.agents.push_back(std::move(p));
  }
  return Status::Ok();
}

}  // namespace

std::string UnifiedDiff(const std::string& path, const std::string& before,
                        const std::string& after) {
  if (before == after) return "";
  const std::vector<std::string> a = Lines(before), b = Lines(after);
  const size_t n = a.size(), m = b.size();
  // Longest common subsequence table (the files are small).
  std::vector<std::vector<int>> lcs(n + 1, std::vector<int>(m + 1, 0));
  for (size_t i = n; i-- > 0;) {
    for (size_t j = m; j-- > 0;) {
      lcs[i][j] = a[i] == b[j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  struct Op {
    char kind;  // ' ', '-', '+'
    size_t ai, bi;
  };
  std::vector<Op> ops;
  size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] == b[j]) {
      ops.push_back({' ', i++, j++});
    } else if (j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j])) {
      ops.push_back({'+', i, j++});
    } else {
      ops.push_back({'-', i++, j});
    }
  }
  std::ostringstream out;
  out << "--- a/" << path << "\n+++ b/" << path << "\n";
  constexpr size_t kContext = 3;
  size_t k = 0;
  while (k < ops.size()) {
    if (ops[k].kind == ' ') {
      ++k;
      continue;
    }
    size_t start = k >= kContext ? k - kContext : 0;
    size_t end = k;  // one past the hunk's last op
    size_t last_change = k;
    while (end < ops.size()) {
      if (ops[end].kind != ' ') last_change = end;
      if (end - last_change > 2 * kContext) break;
      ++end;
    }
    end = std::min(ops.size(), last_change + kContext + 1);
    size_t a_count = 0, b_count = 0;
    for (size_t x = start; x < end; ++x) {
      if (ops[x].kind != '+') ++a_count;
      if (ops[x].kind != '-') ++b_count;
    }
    const size_t a_start = ops[start].ai + (a_count == 0 ? 0 : 1);
    const size_t b_start = ops[start].bi + (b_count == 0 ? 0 : 1);
    out << "@@ -" << a_start << "," << a_count << " +" << b_start << "," << b_count << " @@\n";
    for (size_t x = start; x < end; ++x) {
      const Op& op = ops[x];
      out << op.kind << (op.kind == '+' ? b[op.bi] : a[op.ai]) << "\n";
    }
    k = end;
  }
  return out.str();
}

int CmdPromote(const GlobalOptions& g, const ProviderRegistry& registry,
               const PromoteFlags& flags) {
  if (IsGitUrl(g.source)) {
    spdlog::error(
        "promote writes into a working tree: give --source the folder of a checkout, not a Git "
        "URL");
    return kExitError;
  }
  if (flags.from == flags.to) {
    spdlog::error("promote: --from and --to name the same environment ({})", flags.from);
    return kExitError;
  }
  std::error_code ec;
  fs::path root = fs::path(g.source);
  if (fs::is_regular_file(root, ec)) root = root.parent_path();
  FolderFiles tree = ReadFolder(root);
  std::vector<EnvironmentFolder> envs = ListEnvironmentFolders(tree.files);
  auto find = [&envs](const std::string& name) -> const EnvironmentFolder* {
    for (const EnvironmentFolder& e : envs) {
      if (e.name == name) return &e;
    }
    return nullptr;
  };
  const EnvironmentFolder* from = find(flags.from);
  const EnvironmentFolder* to = find(flags.to);
  for (const auto& [flag, name, env] :
       {std::tuple{"--from", flags.from, from}, std::tuple{"--to", flags.to, to}}) {
    if (env != nullptr) continue;
    std::string known;
    for (const EnvironmentFolder& e : envs) known += (known.empty() ? "" : ", ") + e.name;
    spdlog::error("promote {} {}: no Environment of that name in {} (found: {})", flag, name,
                  root.string(), known.empty() ? "none" : known);
    return kExitError;
  }

  PromotionInput in;
  in.from = from->name;
  in.to = to->name;
  in.requested = flags.agents;

  // The Session keeps an Environment's state in EnvironmentStateDir(<state>, name).
  GlobalOptions source = g;
  source.path = from->folder;
  Session session(source, &registry, StopToken());
  if (Status s = GatherSource(session, in); !s.ok()) return Fail(s);

  const std::string rel = (to->folder.empty() ? "" : to->folder + "/") + kPromotedFile;
  const fs::path file = root / rel;
  std::string before;
  for (const TreeFile& f : tree.files) {
    if (f.rel == rel) before = f.content;
  }
  if (!before.empty()) {
    Result<std::vector<PromotedImage>> existing = ParsePromoted(rel, before);
    if (!existing.ok()) return Fail(existing.status());
    in.existing = std::move(*existing);
  }
  in.image_patches = FindImagePatches(tree.files, to->folder);

  PromotionDecision d = DecidePromotion(in);
  if (!d.refusals.empty()) {
    for (const std::string& line : d.refusals) spdlog::error("promote refused: {}", line);
    spdlog::error("nothing was changed");
    return kExitError;
  }
  const std::string revision = ShortRevision(in.state.revision);
  const std::string after = RenderPromoted(d.file, in.from, revision);
  // The header names the last promotion; what deploys is the patches.
  Result<std::vector<PromotedImage>> was =
      before.empty() ? Result<std::vector<PromotedImage>>(std::vector<PromotedImage>{})
                     : ParsePromoted(rel, before);
  if (was.ok() && *was == d.file) {
    std::cout << "Nothing to promote: " << rel << " already holds these digests.\n";
    return kExitOk;
  }
  if (Status s = WriteWorkingFile(file, after); !s.ok()) return Fail(s);
  std::cout << UnifiedDiff(rel, before, after);
  std::cout << "\nPromoted from " << in.from << "@" << revision << " to " << in.to << ":\n";
  for (const PromotedImage& p : d.promoted) std::cout << "  " << p.agent << ": " << p.image << "\n";
  if (!flags.commit && !flags.push) {
    std::cout << "\nWrote " << rel << "; review, then commit it (or run with --commit).\n";
    return kExitOk;
  }
  std::string message = "promote " + in.from + "@" + revision + " to " + in.to + "\n\n";
  for (const PromotedImage& p : d.promoted) message += p.agent + ": " + p.image + "\n";
  Result<GitCommitResult> commit = CommitFiles(root, {file}, message);
  if (!commit.ok()) {
    return Fail(commit.status().WithContext("--commit: " + rel + " is written but not committed"));
  }
  std::cout << "Committed " << commit->commit.substr(0, 12) << " on " << commit->branch << ".\n";
  if (!flags.push) return kExitOk;
  Result<std::string> pushed = PushBranch(root, g.git_auth, StopToken());
  if (!pushed.ok()) {
    return Fail(pushed.status().WithContext("--push: the commit is made but not pushed"));
  }
  std::cout << "Pushed " << commit->branch << " to " << *pushed << ".\n";
  return kExitOk;
}

}  // namespace reconcile::cli
