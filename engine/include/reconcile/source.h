// Source: where a desired-state tree comes from: a folder on disk, or a
// folder inside a Git repository at a branch, tag or commit.
//
// A source answers two questions, so that a controller can poll cheaply:
//   Resolve: where does the followed ref point now? For Git this is a
//            connect + ls-remote and nothing more (no fetch); for a folder,
//            the digest of its manifests.
//   Load:    the tree at exactly that revision, decoded and validated by the
//            same rules and limits as loader.h (sizes, nesting, aliases,
//            symlinks, UTF-8, NUL bytes). For Git the objects are fetched
//            into a bare mirror only when they are missing, and the tree is
//            read straight from the object database (no checkout).
//
// Errors are values (status.h): an unreachable remote or a timeout is
// kUnavailable (retry with backoff); bad credentials, an unknown or changed
// SSH host key, a missing ref or a missing --path are kInvalid or
// kNotFound (stop until the configuration changes). Messages never contain
// credentials.
//
// Git specifics: the mirror lives in cache_dir/<sha256(url) prefix> (0700)
// and several Sources (even processes) may share it (fetches take a file
// lock). A Git Source keeps the decoding of every (path, blob id) of its last
// Load, so a commit that changes one file re-decodes only that file; the
// cross-document checks still run over the whole tree. Submodules are
// ignored (a warning diagnostic). git symlinks are followed inside the tree
// and are errors when they lead outside it, as on disk. Connect timeouts are
// the OS's (libgit2 1.5 has no setting); a stop request aborts a fetch at its
// next progress report.
//
// Thread-safety: one Source may be used from one thread at a time. Blocking
// calls (libgit2) must never run on an I/O thread.
#pragma once

#include <filesystem>
#include <memory>
#include <stop_token>
#include <string>
#include <vector>

#include "reconcile/loader.h"
#include "reconcile/status.h"

namespace reconcile {

// How much work a Load did: manifest files in the tree, and how many of them
// were decoded now rather than taken from the source's cache (Git sources
// keep the decoding of each (path, blob) between loads; folder sources
// decode every file).
struct LoadStats {
  size_t files = 0;
  size_t decoded = 0;
};

// The tree at one revision.
struct Snapshot {
  // Git: the full commit id (40 hex). Folder: "tree-<12 hex>" (loader.h).
  std::string revision;
  std::string commit_time;  // Git: committer time, RFC 3339 UTC; folder: empty
  // Git: the names of the tags (refs/tags/*, without the prefix) that point
  // at the commit, sorted; folder: empty. For tagStrategy semver.
  std::vector<std::string> tags;
  // Folder on disk that holds the tree's files, for build contexts and SOPS
  // files: the folder itself, or (Git, when ReadsTreeFiles) a private export
  // of the commit's tree under the cache folder. Empty when the source
  // cannot offer one.
  std::filesystem::path root;
  LoadResult loaded;  // use only when !loaded.diagnostics.HasErrors()
  LoadStats stats;
  // Git with CommitVerifyOptions: who signed the commit when the signature
  // was accepted ("OpenPGP key <fingerprint>", "SSH key SHA256:... of
  // <principals>"); empty otherwise.
  std::string signer;
  // "tree-<12 hex>" (TreeRevision) over every file this tree was made from:
  // the --path folder, and for an Environment its base folders too. Equal
  // digests at two revisions: nothing this tree reads changed.
  std::string content_digest;
};

// How to reach a Git remote. Every secret is read from a file or an
// environment variable at connect time and never kept in messages.
struct GitAuth {
  std::string username;              // HTTPS basic auth / SSH user (default "git")
  std::string password_file;         // HTTPS: password or token in a file
  std::string password_env;          // HTTPS: ... or in this environment variable
  std::string ssh_key_file;          // SSH: private deploy key
  std::string ssh_known_hosts_file;  // SSH: required; unknown or changed keys refused
};

// Signed-commit verification of a Git source (README "Signed commits"; what
// Flux's GitRepository spec.verify does for the commit it hands out). With a
// mode set, Load and Files check the signature of the commit they read
// before reading its tree: an unsigned commit, a signature by a key not in
// `keys`, or one that does not verify makes Load return the Snapshot with
// one error diagnostic ("commit 1a2b3c4d5e6f: not signed"), exactly as an
// invalid tree, and Files a kInvalid status. A folder source with a mode
// set is kInvalid at OpenSource.
enum class CommitVerifyMode { kOff, kOpenPgp, kSsh };

struct CommitVerifyOptions {
  CommitVerifyMode mode = CommitVerifyMode::kOff;
  // kOpenPgp: a file of OpenPGP public keys (armored or binary), or a folder
  // of such files; kSsh: an OpenSSH allowed_signers file. Read at
  // OpenSource (kInvalid when missing or malformed) and again when it
  // changes.
  std::filesystem::path keys;
};

struct SourceOptions {
  std::string location;  // a folder, or a Git URL (IsGitUrl)
  std::string ref;       // Git: branch, tag or commit id; empty: the remote HEAD
  std::string path;      // folder inside the tree; empty: its root
  // Git: where the bare mirror lives (created on first use), e.g.
  // <state>/cache/git.
  std::filesystem::path cache_dir;
  GitAuth auth;
  LoadLimits limits;
  CommitVerifyOptions verify;  // Git only
};

class Source {
 public:
  virtual ~Source() = default;
  // For people and logs: "folder deploy/" or "https://host/repo.git@main:deploy/"
  // (never with credentials).
  virtual std::string Describe() const = 0;
  // The revision the followed ref points at now. Cancellable through `stop`
  // (returns kUnavailable "stopped" when stopped).
  virtual Result<std::string> Resolve(std::stop_token stop) = 0;
  // Loads the tree at `revision` (as returned by Resolve). A tree with
  // errors is still returned (ok Result, diagnostics set): only failing to
  // read it at all is an error Status. Git: `revision` must be a full commit
  // id (kInvalid otherwise; kNotFound when no branch or tag of the remote
  // holds it). Folder: a folder has no history, so this loads what is there
  // now and Snapshot.revision says which tree that is.
  virtual Result<Snapshot> Load(const std::string& revision, std::stop_token stop) = 0;
  // The manifest files below `folder` (relative to the tree root, "" the
  // root) of the tree at `revision`, read as Load reads them (hidden entries
  // skipped, symlinks followed inside the tree, files over the size limit
  // left empty with their size) but not decoded, rel relative to the tree
  // root and sorted: enough to find the Environments of a revision
  // (loader.h FindEnvironments) without loading every tree. Git: fetches
  // `revision` when the mirror lacks it; folder: reads what is there now.
  // kNotFound when `folder` is not a folder of that tree. What the walk
  // found wrong is left to Load to report.
  virtual Result<std::vector<TreeFile>> Files(const std::string& revision,
                                              const std::string& folder, std::stop_token stop) = 0;
};

// True for https://, http://, ssh://, git://, file:// and scp-like
// user@host:path locations.
bool IsGitUrl(const std::string& location);

// True when a pass over `state` reads files of the tree besides its
// manifests: an agent's build context, or a SOPS file a secret reference
// names ({sops: ...}). A Git source then exports the commit's tree
// (Snapshot::root).
bool ReadsTreeFiles(const DesiredState& state);

// A folder source, or a Git source when IsGitUrl(options.location). Checks
// the options only (no I/O on the remote): kInvalid for a malformed URL, a
// password written in the URL, plain http:// to a host that is not
// loopback, or ssh without auth.ssh_known_hosts_file / auth.ssh_key_file;
// kInvalid when a Git source has no cache_dir, or when options.verify is
// set for a folder, or its keys cannot be read. A missing folder is found
// by Resolve / Load (kNotFound), so a controller can start before it exists.
Result<std::unique_ptr<Source>> OpenSource(const SourceOptions& options);

}  // namespace reconcile
