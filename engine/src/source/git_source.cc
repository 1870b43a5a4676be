// The Git source: the one adapter that wraps libgit2. No libgit2 type or
// return code leaves this file.
//
// Layout under options.cache_dir (created 0700):
//   <sha256(url)[0:16]>/            bare mirror; fetched with force refspecs
//   <sha256(url)[0:16]>.lock        flock(2) held while fetching
//   trees/<sha256(url, path)[0:16]>/<commit>/   exports for build contexts
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <git2.h>
#include <openssl/evp.h>

#include "reconcile/git_commit.h"
#include "reconcile/loader.h"
#include "source/commit_verifier.h"
#include "source/git_url.h"
#include "source/known_hosts.h"
#include "source/sources.h"

namespace reconcile {
namespace {

namespace fs = std::filesystem;

template <typename T, void (*Free)(T*)>
struct GitFree {
  void operator()(T* p) const {
    if (p) Free(p);
  }
};
using RepoPtr = std::unique_ptr<git_repository, GitFree<git_repository, git_repository_free>>;
using RemotePtr = std::unique_ptr<git_remote, GitFree<git_remote, git_remote_free>>;
using CommitPtr = std::unique_ptr<git_commit, GitFree<git_commit, git_commit_free>>;
using TreePtr = std::unique_ptr<git_tree, GitFree<git_tree, git_tree_free>>;
using EntryPtr = std::unique_ptr<git_tree_entry, GitFree<git_tree_entry, git_tree_entry_free>>;
using BlobPtr = std::unique_ptr<git_blob, GitFree<git_blob, git_blob_free>>;
using ObjectPtr = std::unique_ptr<git_object, GitFree<git_object, git_object_free>>;
using OdbPtr = std::unique_ptr<git_odb, GitFree<git_odb, git_odb_free>>;
using PackBuilderPtr =
    std::unique_ptr<git_packbuilder, GitFree<git_packbuilder, git_packbuilder_free>>;
using RevwalkPtr = std::unique_ptr<git_revwalk, GitFree<git_revwalk, git_revwalk_free>>;
using RefIterPtr = std::unique_ptr<git_reference_iterator,
                                   GitFree<git_reference_iterator, git_reference_iterator_free>>;
using RefPtr = std::unique_ptr<git_reference, GitFree<git_reference, git_reference_free>>;

// Each fetch leaves one pack in the mirror; past this many they are merged.
constexpr size_t kMaxPacks = 32;

void InitLibgit2() {
  static std::once_flag once;
  std::call_once(once, [] {
    git_libgit2_init();
    // HTTPS: the system's CA bundle (SSL_CERT_FILE / SSL_CERT_DIR when set).
    const char* file = std::getenv("SSL_CERT_FILE");
    const char* dir = std::getenv("SSL_CERT_DIR");
    std::error_code ec;
    if (!file && fs::exists("/etc/ssl/certs/ca-certificates.crt", ec)) {
      file = "/etc/ssl/certs/ca-certificates.crt";
    }
    if (file || dir) git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, file, dir);
  });
}

std::string Sha256Hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xF];
  }
  return out;
}

bool IsCommitId(const std::string& s) {
  return s.size() == 40 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
         });
}

std::string OidHex(const git_oid* oid) {
  char buf[GIT_OID_HEXSZ + 1];
  git_oid_tostr(buf, sizeof buf, oid);
  return buf;
}

bool IsManifestName(const std::string& name) {
  auto ends = [&](const std::string& ext) {
    return name.size() > ext.size() && name.compare(name.size() - ext.size(), ext.size(), ext) == 0;
  };
  return ends(".yaml") || ends(".yml");
}

std::string JoinRel(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

// Normalizes `rel` ('/'-separated, relative); nullopt when it climbs above
// the root.
std::optional<std::string> Normalize(const std::string& rel) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(rel);
  while (std::getline(in, part, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (parts.empty()) return std::nullopt;
      parts.pop_back();
    } else {
      parts.push_back(part);
    }
  }
  std::string out;
  for (const auto& p : parts) out = JoinRel(out, p);
  return out;
}

std::string Rfc3339(git_time_t t) {
  time_t tt = static_cast<time_t>(t);
  struct tm tm {};
  gmtime_r(&tt, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::optional<std::string> ReadSmallFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return s.str();
}

// Creates `dir` (and parents) and restricts it to the owner.
Status MakePrivateDir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::Failed("cannot create " + dir.string() + ": " + ec.message());
  if (::chmod(dir.c_str(), 0700) != 0) {
    return Status::Failed("cannot restrict " + dir.string() + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

// What the callbacks of one libgit2 operation share with their caller.
struct Callbacks {
  Callbacks(const GitUrl* u, const GitAuth* a, std::stop_token s)
      : url(u), auth(a), stop(std::move(s)) {}
  const GitUrl* url;
  const GitAuth* auth;
  std::stop_token stop;
  int key_attempts = 0;
  bool stopped = false;
  std::optional<Status> failure;  // set by a callback that refused
};

std::string DefaultUser(const Callbacks& cb, const char* from_url) {
  if (from_url && *from_url) return from_url;
  if (!cb.auth->username.empty()) return cb.auth->username;
  return "git";
}

int Fail(Callbacks& cb, Status status) {
  cb.failure = std::move(status);
  return GIT_EUSER;
}

int OnCredentials(git_credential** out, const char* /*url*/, const char* user_from_url,
                  unsigned int allowed, void* payload) {
  auto& cb = *static_cast<Callbacks*>(payload);
  if (cb.stop.stop_requested()) {
    cb.stopped = true;
    return GIT_EUSER;
  }
  const GitAuth& auth = *cb.auth;
  const std::string where = cb.url->redacted;
  if (allowed & GIT_CREDENTIAL_USERNAME) {
    return git_credential_username_new(out, DefaultUser(cb, user_from_url).c_str());
  }
  if (allowed & GIT_CREDENTIAL_SSH_KEY) {
    std::string user = DefaultUser(cb, user_from_url);
    if (auth.ssh_key_file.empty()) {
      return Fail(cb, Status::Invalid(where + ": the server asks for an SSH key; set the deploy "
                                              "key file (GitAuth.ssh_key_file)"));
    }
    if (++cb.key_attempts > 1) {
      return Fail(cb, Status::Invalid(where + ": SSH authentication as '" + user +
                                      "' failed with key file " + auth.ssh_key_file +
                                      " (is it a deploy key of this repository?)"));
    }
    if (::access(auth.ssh_key_file.c_str(), R_OK) != 0) {
      return Fail(cb, Status::Invalid(where + ": cannot read SSH key file " + auth.ssh_key_file +
                                      ": " + std::strerror(errno)));
    }
    std::string pub = auth.ssh_key_file + ".pub";
    bool has_pub = ::access(pub.c_str(), R_OK) == 0;
    return git_credential_ssh_key_new(out, user.c_str(), has_pub ? pub.c_str() : nullptr,
                                      auth.ssh_key_file.c_str(), nullptr);
  }
  if (allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) {
    std::string user = auth.username.empty() ? DefaultUser(cb, user_from_url) : auth.username;
    std::string source;
    std::string password;
    if (!auth.password_file.empty()) {
      source = "the password file " + auth.password_file;
      auto content = ReadSmallFile(auth.password_file);
      if (!content) {
        return Fail(
            cb, Status::Invalid(where + ": cannot read the password file " + auth.password_file));
      }
      password = std::move(*content);
      while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
        password.pop_back();
      }
    } else if (!auth.password_env.empty()) {
      source = "the environment variable " + auth.password_env;
      const char* v = std::getenv(auth.password_env.c_str());
      if (v == nullptr) {
        return Fail(cb, Status::Invalid(where + ": the environment variable " + auth.password_env +
                                        " (password) is not set"));
      }
      password = v;
    } else {
      return Fail(cb,
                  Status::Invalid(where + ": the server asks for credentials; set a username and a "
                                          "password file or variable (GitAuth)"));
    }
    if (++cb.key_attempts > 1) {
      std::fill(password.begin(), password.end(), '\0');
      return Fail(cb, Status::Invalid(where + ": authentication as '" + user + "' failed: check " +
                                      source));
    }
    int rc = git_credential_userpass_plaintext_new(out, user.c_str(), password.c_str());
    std::fill(password.begin(), password.end(), '\0');
    return rc;
  }
  return Fail(cb, Status::Invalid(where + ": the server asks for an authentication method that "
                                          "is not supported"));
}

int OnCertificate(git_cert* cert, int /*valid*/, const char* /*host*/, void* payload) {
  auto& cb = *static_cast<Callbacks*>(payload);
  if (cb.stop.stop_requested()) {
    cb.stopped = true;
    return GIT_EUSER;
  }
  if (cert->cert_type != GIT_CERT_HOSTKEY_LIBSSH2) return GIT_PASSTHROUGH;  // TLS: libgit2's check
  const auto* key = reinterpret_cast<const git_cert_hostkey*>(cert);
  const GitUrl& url = *cb.url;
  const std::string& file = cb.auth->ssh_known_hosts_file;
  std::string host = url.port ? "[" + url.host + "]:" + std::to_string(url.port) : url.host;
  if (!(key->type & GIT_CERT_SSH_RAW)) {
    return Fail(cb, Status::Invalid(url.redacted + ": the SSH host key of " + host +
                                    " cannot be checked (no raw key)"));
  }
  auto text = ReadSmallFile(file);
  if (!text) {
    return Fail(cb, Status::Invalid(url.redacted + ": cannot read the known_hosts file " + file));
  }
  HostKeyCheck check = CheckKnownHost(*text, url.host, url.port,
                                      std::string(key->hostkey, key->hostkey + key->hostkey_len));
  switch (check.match) {
    case HostKeyMatch::kMatch:
      return 0;
    case HostKeyMatch::kUnknownHost:
      return Fail(cb, Status::Invalid("SSH host " + host + " is not in the known_hosts file " +
                                      file + " (offered a " + check.key_type +
                                      " key); refused. Add its key to the file"));
    case HostKeyMatch::kChanged:
      if (check.known_types.find(check.key_type) == std::string::npos) {
        // libssh2 picks the host key type; the file may just lack this one.
        return Fail(
            cb, Status::Invalid("SSH host " + host + " offered a " + check.key_type +
                                " key but the known_hosts file " + file + " holds only " +
                                check.known_types + " keys for it; refused. Add its " +
                                check.key_type + " key (ssh-keyscan -t " + check.key_type + ")"));
      }
      return Fail(cb,
                  Status::Invalid("SSH host key of " + host + " CHANGED: its " + check.key_type +
                                  " key is not the one in the known_hosts "
                                  "file " +
                                  file +
                                  "; refused. If the server's key really "
                                  "changed, update the file"));
    case HostKeyMatch::kRevoked:
      return Fail(cb, Status::Invalid("SSH host key of " + host +
                                      " is revoked in the known_hosts "
                                      "file " +
                                      file + "; refused"));
  }
  return GIT_EUSER;
}

int OnTransfer(const git_indexer_progress* /*stats*/, void* payload) {
  auto& cb = *static_cast<Callbacks*>(payload);
  if (cb.stop.stop_requested()) {
    cb.stopped = true;
    return -1;
  }
  return 0;
}

int OnSideband(const char* /*str*/, int /*len*/, void* payload) {
  return OnTransfer(nullptr, payload);
}

git_remote_callbacks MakeCallbacks(Callbacks& cb) {
  git_remote_callbacks callbacks;
  git_remote_init_callbacks(&callbacks, GIT_REMOTE_CALLBACKS_VERSION);
  callbacks.credentials = OnCredentials;
  callbacks.certificate_check = OnCertificate;
  callbacks.transfer_progress = OnTransfer;
  callbacks.sideband_progress = OnSideband;
  callbacks.payload = &cb;
  return callbacks;
}

git_proxy_options MakeProxy(const GitUrl& url) {
  git_proxy_options proxy;
  git_proxy_options_init(&proxy, GIT_PROXY_OPTIONS_VERSION);
  proxy.type = (url.host.empty() || IsLoopbackHost(url.host)) ? GIT_PROXY_NONE : GIT_PROXY_AUTO;
  return proxy;
}

bool Contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// Turns a failed libgit2 call into a Status; `what` names the step.
Status RemoteError(int rc, const Callbacks& cb, const std::string& what) {
  if (cb.stopped || cb.stop.stop_requested()) return Status::Unavailable(what + ": stopped");
  if (cb.failure) return *cb.failure;
  const git_error* e = git_error_last();
  std::string msg = e && e->message ? e->message : "error " + std::to_string(rc);
  const std::string& where = cb.url->redacted;
  if (rc == GIT_ECERTIFICATE) {
    return Status::Invalid(what + ": certificate of " + where + " refused: " + msg);
  }
  if (rc == GIT_EAUTH || Contains(msg, "401") || Contains(msg, "authentication")) {
    return Status::Invalid(what + ": authentication to " + where + " failed (" + msg +
                           "); check the credentials (GitAuth)");
  }
  if (Contains(msg, "404") || Contains(msg, "not found") || Contains(msg, "could not find") ||
      Contains(msg, "not appear to be a git repository") || Contains(msg, "does not exist") ||
      Contains(msg, "no such repository")) {
    return Status::NotFound(what + ": no repository at " + where + " (" + msg + ")");
  }
  return Status::Unavailable(what + ": " + where + ": " + msg);
}

// A cached decoding of one manifest file of some commit.
using DecodedPtr = std::shared_ptr<const DecodedFile>;

struct WalkedFile {
  std::string rel;
  git_oid oid;
};

// Collects a commit's manifest files below the source path, as ReadFolder
// does on disk: hidden entries skipped, symlinks followed inside the tree
// and reported when they lead outside it, submodules ignored (warning).
class TreeWalker {
 public:
  static constexpr int kMaxFolderDepth = 256;
  static constexpr size_t kMaxLinkBytes = 4096;

  TreeWalker(git_repository* repo, const git_tree* root) : repo_(repo), root_(root) {
    visited_.insert("");
  }

  void Walk(const git_tree* tree, const std::string& rel_dir, const std::string& real_dir) {
    size_t n = git_tree_entrycount(tree);
    for (size_t i = 0; i < n; ++i) {
      const git_tree_entry* e = git_tree_entry_byindex(tree, i);
      std::string name = git_tree_entry_name(e);
      if (name.empty() || name[0] == '.') continue;
      Visit(e, JoinRel(rel_dir, name), JoinRel(real_dir, name), real_dir, name);
    }
  }

  std::vector<WalkedFile> files;
  FolderSet folders;
  Diagnostics diagnostics;
  bool failed = false;

 private:
  void Visit(const git_tree_entry* e, const std::string& rel, const std::string& real,
             const std::string& real_dir, const std::string& name, int hops = 0) {
    git_filemode_t mode = git_tree_entry_filemode(e);
    if (mode == GIT_FILEMODE_COMMIT) {
      diagnostics.Add({Severity::kWarning, rel, 0, 0, "",
                       "submodule ignored (submodules are not part of the tree)"});
      return;
    }
    if (mode == GIT_FILEMODE_TREE) {
      if (std::count(rel.begin(), rel.end(), '/') >= kMaxFolderDepth) {
        diagnostics.Error(rel, 1, 1, "",
                          "folders nested deeper than " + std::to_string(kMaxFolderDepth));
        return;
      }
      if (!visited_.insert(real).second) return;
      folders.AddFolder(rel);
      git_tree* sub = nullptr;
      if (git_tree_lookup(&sub, repo_, git_tree_entry_id(e)) != 0) {
        diagnostics.Error(rel, 1, 1, "", "cannot read folder from the repository");
        return;
      }
      TreePtr hold(sub);
      Walk(sub, rel, real);
      return;
    }
    if (mode == GIT_FILEMODE_LINK) {
      FollowLink(e, rel, real_dir, name, hops);
      return;
    }
    if (IsManifestName(name)) files.push_back({rel, *git_tree_entry_id(e)});
  }

  void FollowLink(const git_tree_entry* e, const std::string& rel, const std::string& real_dir,
                  const std::string& name, int hops) {
    git_odb* odb = nullptr;
    size_t size = 0;
    git_object_t type = GIT_OBJECT_INVALID;
    if (git_repository_odb(&odb, repo_) == 0) {
      OdbPtr hold_odb(odb);
      if (git_odb_read_header(&size, &type, odb, git_tree_entry_id(e)) == 0 &&
          size > kMaxLinkBytes) {
        diagnostics.Error(rel, 1, 1, "", "symlink target is longer than 4096 bytes");
        return;
      }
    }
    git_blob* blob = nullptr;
    if (git_blob_lookup(&blob, repo_, git_tree_entry_id(e)) != 0) {
      diagnostics.Error(rel, 1, 1, "", "cannot read symlink from the repository");
      return;
    }
    BlobPtr hold(blob);
    std::string target(static_cast<const char*>(git_blob_rawcontent(blob)),
                       static_cast<size_t>(git_blob_rawsize(blob)));
    std::optional<std::string> inside;
    if (!target.empty() && target[0] != '/') inside = Normalize(JoinRel(real_dir, target));
    if (!inside) {
      folders.AddEscape(rel);
      diagnostics.Error(rel, 1, 1, "", "symlink leads outside the tree (to " + target + ")");
      return;
    }
    if (hops >= 8) {
      if (IsManifestName(name)) diagnostics.Error(rel, 1, 1, "", "broken symlink");
      return;
    }
    git_tree_entry* found = nullptr;
    if (inside->empty()) {  // a link to the root: already visited
      folders.AddFolder(rel);
      return;
    }
    if (git_tree_entry_bypath(&found, root_, inside->c_str()) != 0) {
      if (IsManifestName(name)) diagnostics.Error(rel, 1, 1, "", "broken symlink");
      return;
    }
    EntryPtr hold_entry(found);
    git_filemode_t mode = git_tree_entry_filemode(found);
    std::string target_dir = fs::path(*inside).parent_path().generic_string();
    if (mode == GIT_FILEMODE_TREE) {
      Visit(found, rel, *inside, target_dir, name, hops + 1);
    } else if (mode == GIT_FILEMODE_LINK) {
      FollowLink(found, rel, target_dir, name, hops + 1);
    } else if (mode != GIT_FILEMODE_COMMIT && IsManifestName(name)) {
      files.push_back({rel, *git_tree_entry_id(found)});
    }
  }

  git_repository* repo_;
  const git_tree* root_;
  std::set<std::string> visited_;
};

// The mirror's fetch lock (flock on <mirror>.lock), held until destroyed.
// Shared with other processes and with the other Sources of this one.
class MirrorLock {
 public:
  MirrorLock() = default;
  MirrorLock(const MirrorLock&) = delete;
  MirrorLock& operator=(const MirrorLock&) = delete;
  ~MirrorLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  // Blocks until the lock is held; false when the lock file cannot be opened.
  bool Take(const fs::path& file) {
    fd_ = ::open(file.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    if (fd_ < 0) return false;
    ::flock(fd_, LOCK_EX);
    return true;
  }

 private:
  int fd_ = -1;
};

class GitSource : public Source {
 public:
  GitSource(SourceOptions options, GitUrl url, std::unique_ptr<CommitVerifier> verifier)
      : options_(std::move(options)), url_(std::move(url)), verifier_(std::move(verifier)) {
    std::string key = Sha256Hex(options_.location).substr(0, 16);
    mirror_ = options_.cache_dir / key;
    lock_file_ = options_.cache_dir / (key + ".lock");
    trees_ = options_.cache_dir / "trees" /
             Sha256Hex(options_.location + "\n" + options_.path).substr(0, 16);
  }

  std::string Describe() const override {
    std::string d = url_.redacted + "@" + (options_.ref.empty() ? "HEAD" : options_.ref);
    if (!options_.path.empty()) d += ":" + options_.path + "/";
    return d;
  }

  Result<std::string> Resolve(std::stop_token stop) override {
    if (stop.stop_requested()) return Status::Unavailable(Describe() + ": stopped");
    if (IsCommitId(options_.ref)) {
      std::string id = options_.ref;
      std::transform(id.begin(), id.end(), id.begin(), [](char c) { return std::tolower(c); });
      return id;
    }
    Callbacks cb(&url_, &options_.auth, stop);
    git_remote_callbacks callbacks = MakeCallbacks(cb);
    git_proxy_options proxy = MakeProxy(url_);
    git_remote* raw = nullptr;
    if (int rc = git_remote_create_detached(&raw, options_.location.c_str()); rc != 0) {
      return RemoteError(rc, cb, "resolve " + Describe());
    }
    RemotePtr remote(raw);
    if (int rc = git_remote_connect(remote.get(), GIT_DIRECTION_FETCH, &callbacks, &proxy, nullptr);
        rc != 0) {
      return RemoteError(rc, cb, "resolve " + Describe());
    }
    const git_remote_head** heads = nullptr;
    size_t count = 0;
    if (int rc = git_remote_ls(&heads, &count, remote.get()); rc != 0) {
      return RemoteError(rc, cb, "resolve " + Describe());
    }
    std::map<std::string, std::string> refs;
    for (size_t i = 0; i < count; ++i) refs[heads[i]->name] = OidHex(&heads[i]->oid);
    git_remote_disconnect(remote.get());
    std::vector<std::string> candidates;
    const std::string& ref = options_.ref;
    if (ref.empty()) {
      candidates = {"HEAD"};
    } else if (ref.rfind("refs/", 0) == 0) {
      candidates = {ref + "^{}", ref};
    } else {
      candidates = {"refs/heads/" + ref, "refs/tags/" + ref + "^{}", "refs/tags/" + ref};
    }
    for (const auto& c : candidates) {
      if (auto it = refs.find(c); it != refs.end()) return it->second;
    }
    if (ref.empty()) return Status::NotFound(url_.redacted + ": the remote has no HEAD (empty?)");
    return Status::NotFound(url_.redacted + ": ref '" + ref +
                            "' not found (no branch or tag of "
                            "that name)");
  }

  Result<std::vector<TreeFile>> Files(const std::string& revision, const std::string& folder,
                                      std::stop_token stop) override {
    const std::string what = "read " + Describe();
    Result<CommitPtr> commit = CommitAt(revision, stop, what);
    if (!commit.ok()) return commit.status();
    if (verifier_) {
      Result<Verdict> verdict = CheckSignature(commit->get(), what);
      if (!verdict.ok()) return verdict.status();
      if (!verdict->accepted) return Status::Invalid(what + ": " + verdict->text);
    }
    git_tree* raw_tree = nullptr;
    if (git_commit_tree(&raw_tree, commit->get()) != 0) {
      return Status::Failed(what + ": cannot read the tree of " + revision);
    }
    TreePtr tree(raw_tree);
    std::optional<std::string> base = Normalize(options_.path);
    std::optional<std::string> dir = Normalize(folder);
    if (!base || !dir) return Status::Invalid(what + ": folder '" + folder + "' leads outside it");
    TreePtr at_path;  // the subtree at options.path, when it is not the root
    if (!base->empty()) {
      Result<TreePtr> sub = SubTree(tree.get(), *base);
      if (!sub.ok()) return Status::NotFound(what + ": no folder '" + options_.path + "'");
      at_path = std::move(*sub);
    }
    const git_tree* root = at_path ? at_path.get() : tree.get();
    TreeWalker walker(repo_.get(), root);
    if (dir->empty()) {
      walker.Walk(root, "", "");
    } else {
      Result<TreePtr> sub = SubTree(root, *dir);
      if (!sub.ok()) return Status::NotFound(what + ": no folder '" + folder + "' at " + revision);
      walker.Walk(sub->get(), *dir, *dir);
    }
    std::sort(walker.files.begin(), walker.files.end(),
              [](const WalkedFile& a, const WalkedFile& b) { return a.rel < b.rel; });
    return ReadFiles(walker.files, what);
  }

  Result<Snapshot> Load(const std::string& revision, std::stop_token stop) override {
    const std::string what = "load " + Describe();
    Result<CommitPtr> found = CommitAt(revision, stop, what);
    if (!found.ok()) return found.status();
    CommitPtr commit = std::move(*found);
    std::string signer;
    if (verifier_) {
      // Before anything of the tree is read: an unverified commit is an
      // invalid tree with this one error.
      Result<Verdict> verdict = CheckSignature(commit.get(), what);
      if (!verdict.ok()) return verdict.status();
      if (!verdict->accepted) {
        Snapshot refused;
        refused.revision = OidHex(git_commit_id(commit.get()));
        refused.commit_time = Rfc3339(git_commit_committer(commit.get())->when.time);
        refused.tags = TagsOn(*git_commit_id(commit.get()));
        refused.loaded.state.revision = refused.revision;
        refused.loaded.diagnostics.Error("", 0, 0, "", verdict->text);
        return refused;
      }
      signer = verdict->text;
    }
    git_tree* raw_tree = nullptr;
    if (git_commit_tree(&raw_tree, commit.get()) != 0) {
      return Status::Failed(what + ": cannot read the tree of " + revision);
    }
    TreePtr tree(raw_tree);

    Snapshot snap;
    snap.revision = OidHex(git_commit_id(commit.get()));
    snap.commit_time = Rfc3339(git_commit_committer(commit.get())->when.time);
    snap.tags = TagsOn(*git_commit_id(commit.get()));
    snap.signer = std::move(signer);

    // The subtree at options.path (or a single manifest file there).
    TreePtr sub;
    std::optional<WalkedFile> single;
    std::optional<std::string> path = Normalize(options_.path);
    if (!path) {
      return Status::Invalid(what + ": path '" + options_.path + "' leads outside the tree");
    }
    if (path->empty()) {
      git_tree* copy = nullptr;
      git_tree_dup(&copy, tree.get());
      sub.reset(copy);
    } else {
      git_tree_entry* found = nullptr;
      if (git_tree_entry_bypath(&found, tree.get(), path->c_str()) != 0) {
        return Status::NotFound(what + ": path '" + options_.path + "' not found in commit " +
                                snap.revision);
      }
      EntryPtr entry(found);
      git_filemode_t mode = git_tree_entry_filemode(found);
      if (mode == GIT_FILEMODE_TREE) {
        git_tree* t = nullptr;
        if (git_tree_lookup(&t, repo_.get(), git_tree_entry_id(found)) != 0) {
          return Status::Failed(what + ": cannot read folder '" + options_.path + "'");
        }
        sub.reset(t);
      } else if ((mode == GIT_FILEMODE_BLOB || mode == GIT_FILEMODE_BLOB_EXECUTABLE) &&
                 IsManifestName(git_tree_entry_name(found))) {
        single = WalkedFile{git_tree_entry_name(found), *git_tree_entry_id(found)};
      } else {
        return Status::NotFound(what + ": path '" + options_.path +
                                "' is neither a folder nor a manifest in commit " + snap.revision);
      }
    }

    TreeWalker walker(repo_.get(), sub.get());
    if (single) {
      walker.files.push_back(*single);
    } else {
      walker.Walk(sub.get(), "", "");
    }
    std::sort(walker.files.begin(), walker.files.end(),
              [](const WalkedFile& a, const WalkedFile& b) { return a.rel < b.rel; });

    if (stop.stop_requested()) return Status::Unavailable(what + ": stopped");
    // What the tree is made from (Snapshot::content_digest), read before
    // Decode takes the names.
    Result<std::vector<TreeFile>> contents = ReadFiles(walker.files, what);
    if (!contents.ok()) return contents.status();
    snap.content_digest = TreeRevision(*contents, options_.limits);
    Result<std::vector<DecodedPtr>> decoded = Decode(walker.files, snap.stats, what, stop);
    if (!decoded.ok()) return decoded.status();
    if (!single && std::any_of(decoded->begin(), decoded->end(), [](const DecodedPtr& d) {
          return d->state.environment &&
                 d->state.environment->location.file.find('/') == std::string::npos;
        })) {
      // An Environment: loaded from the repository root (its bases), with no
      // decode cache.
      return LoadEnvironmentAt(tree.get(), *path, std::move(snap), what);
    }
    std::vector<const DecodedFile*> parts;
    parts.reserve(decoded->size());
    for (const auto& d : *decoded) parts.push_back(d.get());
    snap.loaded = Assemble(parts, walker.folders, options_.limits.providers);
    snap.loaded.state.revision = snap.revision;
    if (options_.limits.keep_documents)
      snap.loaded.documents = DocumentsOf(*contents, options_.limits);
    snap.loaded.diagnostics.Append(walker.diagnostics);
    snap.loaded.diagnostics.Sort();

    if (ReadsTreeFiles(snap.loaded.state) && !snap.loaded.diagnostics.HasErrors() && !single) {
      Result<fs::path> root = Export(sub.get(), snap.revision, what);
      if (!root.ok()) return root.status();
      snap.root = *root;
    }
    return snap;
  }

 private:
  // What the verifier says of `commit`'s signature. accepted: text is who
  // signed; else text is why not, naming the commit. An error Status when
  // the check could not run.
  struct Verdict {
    bool accepted = false;
    std::string text;
  };
  Result<Verdict> CheckSignature(const git_commit* commit, const std::string& what) {
    git_buf signature = GIT_BUF_INIT;
    git_buf signed_data = GIT_BUF_INIT;
    git_oid id = *git_commit_id(commit);
    int rc = git_commit_extract_signature(&signature, &signed_data, repo_.get(), &id, nullptr);
    std::string sig_text;
    std::string data_text;
    if (rc == 0) {
      sig_text.assign(signature.ptr, signature.size);
      data_text.assign(signed_data.ptr, signed_data.size);
    }
    git_buf_dispose(&signature);
    git_buf_dispose(&signed_data);
    const std::string hex = OidHex(&id);
    if (rc != 0 && rc != GIT_ENOTFOUND) {
      const git_error* e = git_error_last();
      return Status::Failed(what + ": cannot read the signature of commit " + hex + ": " +
                            (e && e->message ? e->message : "libgit2 error"));
    }
    Result<std::string> v =
        verifier_->Verify(hex, sig_text, data_text, git_commit_committer(commit)->when.time);
    if (v.ok()) return Verdict{true, *v};
    if (v.status().code() != Code::kInvalid) return v.status().WithContext(what);
    return Verdict{false, "commit " + hex.substr(0, 12) + ": " + v.status().message()};
  }

  // The commit `revision` names (or an annotated tag that peels to one),
  // fetched when the mirror lacks it.
  Result<CommitPtr> CommitAt(const std::string& revision, std::stop_token stop,
                             const std::string& what) {
    if (stop.stop_requested()) return Status::Unavailable(what + ": stopped");
    if (!IsCommitId(revision)) {
      return Status::Invalid(what + ": revision '" + revision + "' is not a commit id");
    }
    if (Status s = OpenMirror(); !s.ok()) return s;
    git_oid oid;
    if (git_oid_fromstr(&oid, revision.c_str()) != 0) {
      return Status::Invalid(what + ": bad commit id '" + revision + "'");
    }
    auto lookup = [&]() -> CommitPtr {
      git_object* object = nullptr;
      if (git_object_lookup(&object, repo_.get(), &oid, GIT_OBJECT_ANY) != 0) return nullptr;
      ObjectPtr hold(object);
      git_object* peeled = nullptr;
      if (git_object_peel(&peeled, object, GIT_OBJECT_COMMIT) != 0) return nullptr;
      return CommitPtr(reinterpret_cast<git_commit*>(peeled));
    };
    CommitPtr commit = lookup();
    if (!commit) {
      // Another Source over this mirror (another environment of the same
      // controller) may be fetching it: after its lock, look again first.
      if (Status s = Fetch(stop, what, [&] { return (commit = lookup()) != nullptr; }); !s.ok()) {
        return s;
      }
      if (!commit) commit = lookup();
      if (!commit) {
        return Status::NotFound(what + ": commit " + revision + " is not on any branch or tag of " +
                                url_.redacted);
      }
    }
    return commit;
  }

  // The folder `rel` (normalized, not empty) of `tree`.
  Result<TreePtr> SubTree(const git_tree* tree, const std::string& rel) {
    git_tree_entry* found = nullptr;
    if (git_tree_entry_bypath(&found, tree, rel.c_str()) != 0) return Status::NotFound(rel);
    EntryPtr entry(found);
    if (git_tree_entry_filemode(found) != GIT_FILEMODE_TREE) return Status::NotFound(rel);
    git_tree* sub = nullptr;
    if (git_tree_lookup(&sub, repo_.get(), git_tree_entry_id(found)) != 0) {
      return Status::NotFound(rel);
    }
    return TreePtr(sub);
  }

  // Names of the mirror's tags that peel to `commit`, sorted.
  std::vector<std::string> TagsOn(const git_oid& commit) {
    std::vector<std::string> names;
    git_strarray list{nullptr, 0};
    if (git_tag_list(&list, repo_.get()) != 0) return names;
    for (size_t i = 0; i < list.count; ++i) {
      std::string ref = std::string("refs/tags/") + list.strings[i];
      git_object* object = nullptr;
      if (git_revparse_single(&object, repo_.get(), (ref + "^{commit}").c_str()) != 0) continue;
      ObjectPtr hold(object);
      if (git_oid_equal(git_object_id(object), &commit)) names.push_back(list.strings[i]);
    }
    git_strarray_dispose(&list);
    std::sort(names.begin(), names.end());
    return names;
  }

  // `locked`: the caller holds the fetch lock.
  Status OpenMirror(bool locked = false) {
    if (repo_) return Status::Ok();
    InitLibgit2();
    if (Status s = MakePrivateDir(options_.cache_dir); !s.ok()) return s;
    // Several Sources (the environments of one controller) may open a new
    // mirror at once: it is made under the fetch lock, never twice.
    MirrorLock lock;
    if (!locked && !lock.Take(lock_file_)) {
      return Status::Failed("cannot open " + lock_file_.string());
    }
    git_repository* raw = nullptr;
    std::error_code ec;
    if (fs::exists(mirror_ / "HEAD", ec)) {
      if (git_repository_open_bare(&raw, mirror_.c_str()) != 0) {
        const git_error* e = git_error_last();
        return Status::Failed("cannot open the Git mirror " + mirror_.string() + ": " +
                              (e && e->message ? e->message : "unknown error"));
      }
    } else {
      if (git_repository_init(&raw, mirror_.c_str(), 1) != 0) {
        const git_error* e = git_error_last();
        return Status::Failed("cannot create the Git mirror " + mirror_.string() + ": " +
                              (e && e->message ? e->message : "unknown error"));
      }
      ::chmod(mirror_.c_str(), 0700);
    }
    repo_.reset(raw);
    return Status::Ok();
  }

  // `present` (optional) runs once the lock is held: true means what we need
  // arrived while we waited for it (nothing is fetched then).
  Status Fetch(std::stop_token stop, const std::string& what,
               const std::function<bool()>& present = {}) {
    MirrorLock lock;
    if (!lock.Take(lock_file_))
      return Status::Failed(what + ": cannot open " + lock_file_.string());
    if (present && present()) return Status::Ok();

    Callbacks cb(&url_, &options_.auth, stop);
    git_fetch_options fetch;
    git_fetch_options_init(&fetch, GIT_FETCH_OPTIONS_VERSION);
    fetch.callbacks = MakeCallbacks(cb);
    fetch.proxy_opts = MakeProxy(url_);
    fetch.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
    fetch.prune = GIT_FETCH_PRUNE;
    fetch.update_fetchhead = 0;
    char heads[] = "+refs/heads/*:refs/heads/*";
    char tags[] = "+refs/tags/*:refs/tags/*";
    char* specs[] = {heads, tags};
    git_strarray refspecs{specs, 2};
    git_remote* raw = nullptr;
    if (int rc = git_remote_create_anonymous(&raw, repo_.get(), options_.location.c_str());
        rc != 0) {
      return RemoteError(rc, cb, what);
    }
    RemotePtr remote(raw);
    if (int rc = git_remote_fetch(remote.get(), &refspecs, &fetch, nullptr); rc != 0) {
      return RemoteError(rc, cb, what);
    }
    remote.reset();
    return CompactIfNeeded(what);
  }

  // Past kMaxPacks packs, writes one pack of everything the mirror's refs
  // reach (full history, annotated tags) and removes the others, so that
  // object lookups stay fast in a long-running controller. Called with the
  // fetch lock held; on failure the mirror is left as it was.
  Status CompactIfNeeded(const std::string& what) {
    fs::path pack_dir = mirror_ / "objects" / "pack";
    std::vector<fs::path> packs;
    std::error_code ec;
    for (fs::directory_iterator it(pack_dir, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().extension() == ".pack") packs.push_back(it->path());
    }
    if (packs.size() <= kMaxPacks) return Status::Ok();
    auto failed = [&](const char* step) {
      const git_error* e = git_error_last();
      return Status::Failed(what + ": compacting the mirror (" + step +
                            "): " + (e && e->message ? e->message : "unknown error"));
    };
    git_packbuilder* raw_pb = nullptr;
    if (git_packbuilder_new(&raw_pb, repo_.get()) != 0) return failed("new pack");
    PackBuilderPtr pb(raw_pb);
    git_packbuilder_set_threads(pb.get(), 1);
    git_revwalk* raw_walk = nullptr;
    if (git_revwalk_new(&raw_walk, repo_.get()) != 0) return failed("walk");
    RevwalkPtr walk(raw_walk);
    git_reference_iterator* raw_iter = nullptr;
    if (git_reference_iterator_new(&raw_iter, repo_.get()) != 0) return failed("refs");
    RefIterPtr iter(raw_iter);
    for (git_reference* raw_ref = nullptr; git_reference_next(&raw_ref, iter.get()) == 0;) {
      RefPtr ref(raw_ref);
      git_reference* raw_resolved = nullptr;
      if (git_reference_resolve(&raw_resolved, ref.get()) != 0) continue;
      RefPtr resolved(raw_resolved);
      const git_oid* oid = git_reference_target(resolved.get());
      git_object* raw_object = nullptr;
      if (oid == nullptr || git_object_lookup(&raw_object, repo_.get(), oid, GIT_OBJECT_ANY) != 0) {
        continue;
      }
      ObjectPtr object(raw_object);
      while (git_object_type(object.get()) == GIT_OBJECT_TAG) {
        if (git_packbuilder_insert(pb.get(), git_object_id(object.get()), nullptr) != 0) {
          return failed("tag");
        }
        git_object* target = nullptr;
        if (git_tag_target(&target, reinterpret_cast<git_tag*>(object.get())) != 0) break;
        object.reset(target);
      }
      if (git_object_type(object.get()) == GIT_OBJECT_COMMIT) {
        if (git_revwalk_push(walk.get(), git_object_id(object.get())) != 0) return failed("walk");
      } else if (git_packbuilder_insert_recur(pb.get(), git_object_id(object.get()), nullptr) !=
                 0) {
        return failed("object");
      }
    }
    if (git_packbuilder_insert_walk(pb.get(), walk.get()) != 0) return failed("history");
    if (git_packbuilder_write(pb.get(), pack_dir.c_str(), 0, nullptr, nullptr) != 0) {
      return failed("write");
    }
    const std::string keep = std::string("pack-") + git_packbuilder_name(pb.get());
    repo_.reset();  // drop the old packs' maps before removing them
    for (const auto& pack : packs) {
      if (pack.stem() == keep) continue;
      for (const char* ext : {".pack", ".idx", ".rev"}) {
        fs::remove(fs::path(pack).replace_extension(ext), ec);
      }
    }
    return OpenMirror(/*locked=*/true);
  }

  // The contents of `files` (files over the size limit: their size only).
  Result<std::vector<TreeFile>> ReadFiles(const std::vector<WalkedFile>& files,
                                          const std::string& what) {
    git_odb* raw_odb = nullptr;
    if (git_repository_odb(&raw_odb, repo_.get()) != 0) {
      return Status::Failed(what + ": cannot open the object database");
    }
    OdbPtr odb(raw_odb);
    std::vector<TreeFile> out;
    out.reserve(files.size());
    for (const WalkedFile& f : files) {
      TreeFile file{f.rel, "", 0};
      size_t size = 0;
      git_object_t type = GIT_OBJECT_INVALID;
      if (git_odb_read_header(&size, &type, odb.get(), &f.oid) != 0) {
        return Status::Failed(what + ": cannot read " + f.rel + " from the repository");
      }
      if (size > options_.limits.max_file_bytes) {
        file.size = size;
      } else {
        git_blob* blob = nullptr;
        if (git_blob_lookup(&blob, repo_.get(), &f.oid) != 0) {
          return Status::Failed(what + ": cannot read " + f.rel + " from the repository");
        }
        BlobPtr hold(blob);
        file.content.assign(static_cast<const char*>(git_blob_rawcontent(blob)),
                            static_cast<size_t>(git_blob_rawsize(blob)));
      }
      out.push_back(std::move(file));
    }
    return out;
  }

  // The Environment at `folder` of the commit's tree `root`: its files and
  // its bases' read from the same commit, names relative to the root.
  Result<Snapshot> LoadEnvironmentAt(const git_tree* root, const std::string& folder, Snapshot snap,
                                     const std::string& what) {
    TreeWalker walker(repo_.get(), root);
    Status failed;
    auto walk = [&](const std::string& dir) -> std::optional<std::vector<TreeFile>> {
      Result<TreePtr> sub = SubTree(root, dir);
      if (!sub.ok()) return std::nullopt;
      walker.folders.AddFolder(dir);
      walker.files.clear();
      walker.Walk(sub->get(), dir, dir);
      std::sort(walker.files.begin(), walker.files.end(),
                [](const WalkedFile& a, const WalkedFile& b) { return a.rel < b.rel; });
      Result<std::vector<TreeFile>> files = ReadFiles(walker.files, what);
      if (!files.ok()) {
        failed = files.status();
        return std::vector<TreeFile>{};
      }
      return std::move(*files);
    };
    std::optional<std::vector<TreeFile>> own = walk(folder);
    if (!failed.ok()) return failed;
    if (!own) return Status::NotFound(what + ": path '" + options_.path + "' is not a folder");
    FolderReader reader = [&](const std::string& dir,
                              Diagnostics&) -> std::optional<std::vector<TreeFile>> {
      return walk(dir);
    };
    std::vector<TreeFile> used;
    snap.loaded =
        LoadEnvironment(folder, std::move(*own), reader, walker.folders, options_.limits, &used);
    if (!failed.ok()) return failed;
    snap.stats.files = snap.stats.decoded = used.size();
    snap.content_digest = TreeRevision(used, options_.limits);
    snap.loaded.state.revision = snap.revision;
    snap.loaded.diagnostics.Append(walker.diagnostics);
    snap.loaded.diagnostics.Sort();
    if (ReadsTreeFiles(snap.loaded.state) && !snap.loaded.diagnostics.HasErrors()) {
      Result<fs::path> exported = Export(root, snap.revision, what);
      if (!exported.ok()) return exported.status();
      snap.root = *exported;
    }
    return snap;
  }

  // Decodes each file, reusing the cache for (path, blob) pairs seen in the
  // previous load. The cache then holds exactly this load's files: entries
  // are updated in place and those this load did not see are dropped at the
  // end (no new table of 10,000 entries per load). A load that stops early
  // leaves only valid entries (each still the decoding of its path and blob).
  Result<std::vector<DecodedPtr>> Decode(std::vector<WalkedFile>& files, LoadStats& stats,
                                         const std::string& what, std::stop_token stop) {
    git_odb* raw_odb = nullptr;
    if (git_repository_odb(&raw_odb, repo_.get()) != 0) {
      return Status::Failed(what + ": cannot open the object database");
    }
    OdbPtr odb(raw_odb);
    const std::uint64_t generation = ++generation_;
    std::vector<DecodedPtr> out;
    out.reserve(files.size());
    stats.files = files.size();
    for (auto& f : files) {
      if (auto it = cache_.find(f.rel);
          it != cache_.end() && git_oid_equal(&it->second.oid, &f.oid)) {
        out.push_back(it->second.decoded);
        it->second.generation = generation;
        continue;
      }
      if (stats.decoded % 256 == 255 && stop.stop_requested()) {
        return Status::Unavailable(what + ": stopped");  // the cache is left as it was
      }
      TreeFile file{f.rel, "", 0};
      size_t size = 0;
      git_object_t type = GIT_OBJECT_INVALID;
      if (git_odb_read_header(&size, &type, odb.get(), &f.oid) != 0) {
        return Status::Failed(what + ": cannot read " + f.rel + " from the repository");
      }
      if (size > options_.limits.max_file_bytes) {
        file.size = size;  // reported by DecodeOne without reading the blob
      } else {
        git_blob* blob = nullptr;
        if (git_blob_lookup(&blob, repo_.get(), &f.oid) != 0) {
          return Status::Failed(what + ": cannot read " + f.rel + " from the repository");
        }
        BlobPtr hold(blob);
        file.content.assign(static_cast<const char*>(git_blob_rawcontent(blob)),
                            static_cast<size_t>(git_blob_rawsize(blob)));
      }
      auto decoded = std::make_shared<const DecodedFile>(DecodeOne(file, options_.limits));
      ++stats.decoded;
      out.push_back(decoded);
      cache_.insert_or_assign(std::move(f.rel), Cached{f.oid, std::move(decoded), generation});
    }
    std::erase_if(cache_, [&](const auto& entry) { return entry.second.generation != generation; });
    return out;
  }

  // Writes the subtree to trees/.../<commit> (once) for build contexts, and
  // removes all but the two most recent exports.
  Result<fs::path> Export(const git_tree* tree, const std::string& commit,
                          const std::string& what) {
    fs::path dest = trees_ / commit;
    std::error_code ec;
    if (!fs::exists(dest, ec)) {
      if (Status s = MakePrivateDir(trees_); !s.ok()) return s;
      fs::path tmp = trees_ / (commit + ".tmp-" + std::to_string(::getpid()));
      fs::remove_all(tmp, ec);
      if (Status s = ExportTree(tree, tmp, ""); !s.ok()) {
        fs::remove_all(tmp, ec);
        return s.WithContext(what);
      }
      fs::rename(tmp, dest, ec);
      if (ec && !fs::exists(dest)) {
        return Status::Failed(what + ": cannot export to " + dest.string() + ": " + ec.message());
      }
      fs::remove_all(tmp, ec);
    }
    fs::last_write_time(dest, fs::file_time_type::clock::now(), ec);
    std::vector<std::pair<fs::file_time_type, fs::path>> exports;
    for (fs::directory_iterator it(trees_, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().filename().string().find(".tmp-") != std::string::npos) continue;
      exports.emplace_back(fs::last_write_time(it->path(), ec), it->path());
    }
    std::sort(exports.rbegin(), exports.rend());
    for (size_t i = 2; i < exports.size(); ++i) {
      if (exports[i].second != dest) fs::remove_all(exports[i].second, ec);
    }
    return dest;
  }

  Status ExportTree(const git_tree* tree, const fs::path& dir, const std::string& rel_dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return Status::Failed("cannot create " + dir.string() + ": " + ec.message());
    size_t n = git_tree_entrycount(tree);
    for (size_t i = 0; i < n; ++i) {
      const git_tree_entry* e = git_tree_entry_byindex(tree, i);
      std::string name = git_tree_entry_name(e);
      if (name == ".git") continue;
      fs::path path = dir / name;
      git_filemode_t mode = git_tree_entry_filemode(e);
      if (mode == GIT_FILEMODE_TREE) {
        git_tree* sub = nullptr;
        if (git_tree_lookup(&sub, repo_.get(), git_tree_entry_id(e)) != 0) {
          return Status::Failed("cannot read " + JoinRel(rel_dir, name));
        }
        TreePtr hold(sub);
        if (Status s = ExportTree(sub, path, JoinRel(rel_dir, name)); !s.ok()) return s;
        continue;
      }
      if (mode == GIT_FILEMODE_COMMIT) continue;  // submodule
      git_blob* blob = nullptr;
      if (git_blob_lookup(&blob, repo_.get(), git_tree_entry_id(e)) != 0) {
        return Status::Failed("cannot read " + JoinRel(rel_dir, name));
      }
      BlobPtr hold(blob);
      std::string content(static_cast<const char*>(git_blob_rawcontent(blob)),
                          static_cast<size_t>(git_blob_rawsize(blob)));
      if (mode == GIT_FILEMODE_LINK) {
        // Recreated only when it stays inside the tree.
        if (!content.empty() && content[0] != '/' &&
            Normalize(JoinRel(rel_dir, content)).has_value()) {
          fs::create_symlink(content, path, ec);
        }
        continue;
      }
      std::ofstream out(path, std::ios::binary);
      out.write(content.data(), static_cast<std::streamsize>(content.size()));
      out.close();
      if (!out) return Status::Failed("cannot write " + path.string());
      fs::permissions(path,
                      mode == GIT_FILEMODE_BLOB_EXECUTABLE ? fs::perms(0755) : fs::perms(0644), ec);
    }
    return Status::Ok();
  }

  SourceOptions options_;
  GitUrl url_;
  fs::path mirror_;
  fs::path lock_file_;
  fs::path trees_;
  RepoPtr repo_;
  std::unique_ptr<CommitVerifier> verifier_;  // null: verification off
  struct Cached {
    git_oid oid;
    DecodedPtr decoded;
    std::uint64_t generation = 0;  // the last Decode that saw it
  };
  std::unordered_map<std::string, Cached> cache_;  // by path in the tree
  std::uint64_t generation_ = 0;
};

}  // namespace

Result<std::unique_ptr<Source>> NewGitSource(const SourceOptions& options) {
  InitLibgit2();
  Result<GitUrl> url = ParseGitUrl(options.location);
  if (!url.ok()) return url.status();
  if (url->scheme == "http" && !IsLoopbackHost(url->host)) {
    return Status::Invalid(url->redacted +
                           ": plain http:// is only allowed to loopback hosts; use https://");
  }
  if (url->scheme == "ssh") {
    if (options.auth.ssh_known_hosts_file.empty()) {
      return Status::Invalid(url->redacted +
                             ": SSH needs a known_hosts file (GitAuth.ssh_known_hosts_file); "
                             "unknown host keys are refused");
    }
    if (options.auth.ssh_key_file.empty()) {
      return Status::Invalid(url->redacted +
                             ": SSH needs a deploy key file (GitAuth.ssh_key_file)");
    }
  }
  if (options.cache_dir.empty()) {
    return Status::Invalid(url->redacted + ": a Git source needs a cache folder (cache_dir)");
  }
  std::unique_ptr<CommitVerifier> verifier;
  if (options.verify.mode != CommitVerifyMode::kOff) {
    Result<std::unique_ptr<CommitVerifier>> opened = CommitVerifier::Open(options.verify);
    if (!opened.ok()) return opened.status().WithContext(url->redacted);
    verifier = std::move(*opened);
  }
  return std::unique_ptr<Source>(
      std::make_unique<GitSource>(options, std::move(*url), std::move(verifier)));
}

namespace {

using IndexPtr = std::unique_ptr<git_index, GitFree<git_index, git_index_free>>;
using SignaturePtr = std::unique_ptr<git_signature, GitFree<git_signature, git_signature_free>>;
using ConfigPtr = std::unique_ptr<git_config, GitFree<git_config, git_config_free>>;
using BufPtr = std::unique_ptr<git_buf, GitFree<git_buf, git_buf_dispose>>;

Status GitFailure(const std::string& what) {
  const git_error* e = git_error_last();
  return Status::Failed(what + ": " + (e && e->message ? e->message : "libgit2 error"));
}

Result<RepoPtr> OpenWorkTree(const fs::path& inside) {
  InitLibgit2();
  std::error_code ec;
  fs::path start = fs::absolute(inside, ec);
  git_repository* raw = nullptr;
  if (git_repository_open_ext(&raw, start.c_str(), 0, nullptr) != 0) {
    return Status::Invalid(inside.string() + " is not inside a Git working tree");
  }
  RepoPtr repo(raw);
  if (git_repository_is_bare(repo.get())) {
    return Status::Invalid(inside.string() + " is in a bare repository (no working tree)");
  }
  return repo;
}

// The current branch: its reference name ("refs/heads/main").
Result<std::string> CurrentBranch(git_repository* repo) {
  git_reference* raw = nullptr;
  if (git_repository_head_detached(repo) == 1) {
    return Status::Invalid("HEAD is detached: check out a branch to commit on");
  }
  int rc = git_repository_head(&raw, repo);
  if (rc == GIT_EUNBORNBRANCH || rc == GIT_ENOTFOUND) {
    return Status::Invalid("the repository has no commit yet on its current branch");
  }
  if (rc != 0) return GitFailure("reading HEAD");
  RefPtr head(raw);
  return std::string(git_reference_name(head.get()));
}

}  // namespace

Result<GitCommitResult> CommitFiles(const fs::path& inside, const std::vector<fs::path>& files,
                                    const std::string& message) {
  Result<RepoPtr> opened = OpenWorkTree(inside);
  if (!opened.ok()) return opened.status();
  git_repository* repo = opened->get();
  Result<std::string> branch = CurrentBranch(repo);
  if (!branch.ok()) return branch.status();
  const fs::path workdir = fs::path(git_repository_workdir(repo)).lexically_normal();

  git_oid head_id;
  if (git_reference_name_to_id(&head_id, repo, "HEAD") != 0) return GitFailure("reading HEAD");
  git_commit* raw_commit = nullptr;
  if (git_commit_lookup(&raw_commit, repo, &head_id) != 0) return GitFailure("reading HEAD");
  CommitPtr parent(raw_commit);
  git_tree* raw_tree = nullptr;
  if (git_commit_tree(&raw_tree, parent.get()) != 0) return GitFailure("reading HEAD's tree");
  TreePtr parent_tree(raw_tree);

  // A private index holding HEAD's tree: the user's index is left as it is,
  // then updated for these files only.
  git_index* raw_index = nullptr;
  if (git_index_new(&raw_index) != 0) return GitFailure("making an index");
  IndexPtr index(raw_index);
  if (git_index_read_tree(index.get(), parent_tree.get()) != 0) return GitFailure("reading HEAD");
  std::vector<std::string> rels;
  for (const fs::path& f : files) {
    std::error_code ec;
    const fs::path abs = fs::weakly_canonical(fs::absolute(f, ec), ec);
    const fs::path rel = abs.lexically_relative(fs::weakly_canonical(workdir, ec));
    if (rel.empty() || *rel.begin() == "..") {
      return Status::Invalid(f.string() + " is outside the working tree " + workdir.string());
    }
    auto content = ReadSmallFile(abs);
    if (!content) return Status::Invalid("cannot read " + f.string());
    git_oid blob;
    if (git_blob_create_from_buffer(&blob, repo, content->data(), content->size()) != 0) {
      return GitFailure("storing " + rel.string());
    }
    git_index_entry entry{};
    entry.mode = GIT_FILEMODE_BLOB;
    entry.id = blob;
    const std::string path = rel.generic_string();
    entry.path = path.c_str();
    if (git_index_add(index.get(), &entry) != 0) return GitFailure("adding " + path);
    rels.push_back(path);
  }
  git_oid tree_id;
  if (git_index_write_tree_to(&tree_id, index.get(), repo) != 0) return GitFailure("writing tree");
  if (git_tree_lookup(&raw_tree, repo, &tree_id) != 0) return GitFailure("reading the new tree");
  TreePtr tree(raw_tree);

  git_signature* raw_sig = nullptr;
  if (git_signature_default(&raw_sig, repo) != 0) {
    if (git_signature_now(&raw_sig, "reconcile", "reconcile@localhost") != 0) {
      return GitFailure("making the author");
    }
  }
  SignaturePtr sig(raw_sig);
  git_oid commit_id;
  const git_commit* parents[] = {parent.get()};
  if (git_commit_create(&commit_id, repo, "HEAD", sig.get(), sig.get(), nullptr, message.c_str(),
                        tree.get(), 1, parents) != 0) {
    return GitFailure("committing");
  }
  // The user's index follows for these files, so `git status` stays clean.
  if (git_index* raw_repo_index = nullptr; git_repository_index(&raw_repo_index, repo) == 0) {
    IndexPtr repo_index(raw_repo_index);
    if (git_index_read(repo_index.get(), 0) == 0) {
      for (const std::string& rel : rels) git_index_add_bypath(repo_index.get(), rel.c_str());
      git_index_write(repo_index.get());
    }
  }
  GitCommitResult out;
  out.commit = OidHex(&commit_id);
  out.branch = branch->substr(std::string("refs/heads/").size());
  return out;
}

Result<std::string> PushBranch(const fs::path& inside, const GitAuth& auth, std::stop_token stop) {
  Result<RepoPtr> opened = OpenWorkTree(inside);
  if (!opened.ok()) return opened.status();
  git_repository* repo = opened->get();
  Result<std::string> branch = CurrentBranch(repo);
  if (!branch.ok()) return branch.status();
  const std::string short_name = branch->substr(std::string("refs/heads/").size());
  std::string remote_name = "origin";
  std::string remote_ref = *branch;
  git_config* raw_config = nullptr;
  if (git_repository_config_snapshot(&raw_config, repo) == 0) {
    ConfigPtr config(raw_config);
    const char* value = nullptr;
    if (git_config_get_string(&value, config.get(), ("branch." + short_name + ".remote").c_str()) ==
            0 &&
        value != nullptr && std::string(value) != ".") {
      remote_name = value;
    }
    if (git_config_get_string(&value, config.get(), ("branch." + short_name + ".merge").c_str()) ==
            0 &&
        value != nullptr) {
      remote_ref = value;
    }
  }
  git_remote* raw_remote = nullptr;
  if (git_remote_lookup(&raw_remote, repo, remote_name.c_str()) != 0) {
    return Status::Invalid("no remote '" + remote_name + "' to push branch " + short_name +
                           " to (set its upstream or add origin)");
  }
  RemotePtr remote(raw_remote);
  const char* location = git_remote_pushurl(remote.get());
  if (location == nullptr) location = git_remote_url(remote.get());
  if (location == nullptr) return Status::Invalid("remote '" + remote_name + "' has no URL");
  Result<GitUrl> url = ParseGitUrl(location);
  if (!url.ok()) return url.status();
  if (url->scheme == "http" && !IsLoopbackHost(url->host)) {
    return Status::Invalid(url->redacted +
                           ": plain http:// is only allowed to loopback hosts; use https://");
  }
  Callbacks cb(&*url, &auth, stop);
  git_push_options push;
  git_push_options_init(&push, GIT_PUSH_OPTIONS_VERSION);
  push.callbacks = MakeCallbacks(cb);
  push.proxy_opts = MakeProxy(*url);
  push.callbacks.push_update_reference = [](const char* ref, const char* why, void* payload) {
    if (why != nullptr) {
      auto& cbs = *static_cast<Callbacks*>(payload);
      cbs.failure = Status::Invalid(std::string("the remote refused ") + ref + ": " + why);
    }
    return 0;
  };
  std::string spec = *branch + ":" + remote_ref;
  char* specs[] = {spec.data()};
  git_strarray refspecs{specs, 1};
  if (int rc = git_remote_push(remote.get(), &refspecs, &push); rc != 0) {
    return RemoteError(rc, cb, "push to " + url->redacted);
  }
  if (cb.failure) return *cb.failure;
  return url->redacted;
}

}  // namespace reconcile
