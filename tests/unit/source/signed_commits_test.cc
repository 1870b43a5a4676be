// Tests for signed-commit verification through the Git source (source.h
// CommitVerifyOptions) and the OpenPGP keyring (openpgp_keyring.h), with
// keys made here by the real ssh-keygen and gpg and commits signed by
// `git commit -S`: an accepted commit loads and names its signer; an
// unsigned one is an invalid tree with one diagnostic and Files refuses it;
// a folder with verification on is refused at OpenSource; gpg's verdicts
// for a good, an unknown, an expired and a revoked key; the temporary
// GNUPGHOME is removed.
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "fakes/temp_dir.h"
#include "fixtures/git_repo.h"
#include "reconcile/source.h"
#include "source/openpgp_keyring.h"

namespace reconcile {
namespace {

namespace fs = std::filesystem;
using testing::GitRepo;
using testing::Quote;
using testing::Sh;
using testing::TempDir;

constexpr const char* kTree =
    "apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: t}\n"
    "spec: {provider: docker}\n---\n"
    "apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: web}\n"
    "spec: {image: 'nginx:1.27', target: t, port: 80}\n";

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// A private GNUPGHOME for signing, its gpg-agent stopped (by pid) at the end.
struct Gpg {
  TempDir home{"reconcile-gpg-signer"};
  ~Gpg() {
    try {
      std::string out = Run("gpg-connect-agent --no-autostart 'getinfo pid' /bye || true");
      auto at = out.find("D ");
      if (at != std::string::npos)
        Sh("kill " + Trim(out.substr(at + 2, out.find('\n', at) - at - 2)));
    } catch (...) {
    }
  }
  std::string Run(const std::string& cmd) const {
    return Sh("GNUPGHOME=" + Quote(home.path().string()) + " " + cmd);
  }
  // A new key for `email` (expiry as gpg takes it: "never", "seconds=N");
  // returns its fingerprint.
  std::string NewKey(const std::string& email, const std::string& expire = "never") const {
    Run("gpg --batch --quiet --passphrase '' --quick-gen-key " + Quote("T <" + email + ">") +
        " ed25519 default " + expire);
    std::string out = Run("gpg --with-colons --fingerprint " + Quote(email));
    auto at = out.find("\nfpr:");
    REQUIRE(at != std::string::npos);
    auto line = out.substr(at + 1, out.find('\n', at + 1) - at - 1);
    auto end = line.rfind(':');
    auto begin = line.rfind(':', end - 1);
    return line.substr(begin + 1, end - begin - 1);
  }
  std::string Export(const std::string& who) const {
    return Run("gpg --armor --export " + Quote(who));
  }
  // A detached armored signature of `file` by `fpr`.
  std::string Sign(const std::string& fpr, const fs::path& file) const {
    return Run("gpg --batch --quiet --armor --local-user " + fpr + " --output - --detach-sign " +
               Quote(file.string()));
  }
};

size_t GnupgHomesIn(const fs::path& dir) {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    n += e.path().filename().string().rfind("reconcile-gnupg-", 0) == 0;
  }
  return n;
}

TEST_CASE("signed commits: an SSH-signed commit through the Git source") {
  TempDir tmp{"reconcile-signed"};
  GitRepo repo{tmp.path() / "repo"};
  Sh("ssh-keygen -q -t ed25519 -N '' -C t@example.com -f " + Quote((tmp.path() / "key").string()));
  const std::string pub = Trim(Sh("cat " + Quote((tmp.path() / "key.pub").string())));
  tmp.Write("allowed_signers", "t@example.com " + pub + "\n");
  const std::string fpr =
      Trim(Sh("ssh-keygen -lf " + Quote((tmp.path() / "key.pub").string()) + " | cut -d' ' -f2"));

  repo.Write("deploy.yaml", kTree);
  repo.Git("add -A");
  repo.Git("-c gpg.format=ssh -c user.signingkey=" + Quote((tmp.path() / "key.pub").string()) +
           " commit -S -q -m signed");
  const std::string signed_commit = repo.Head();

  SourceOptions o;
  o.location = repo.url();
  o.cache_dir = tmp.path() / "cache";
  o.verify = {CommitVerifyMode::kSsh, tmp.path() / "allowed_signers"};
  auto source = OpenSource(o);
  REQUIRE_MESSAGE(source.ok(), source.status().ToString());

  auto snap = (*source)->Load(signed_commit, {});
  REQUIRE_MESSAGE(snap.ok(), snap.status().ToString());
  CHECK_FALSE(snap->loaded.diagnostics.HasErrors());
  CHECK(snap->loaded.state.agents.size() == 1);
  CHECK(snap->signer == "SSH key " + fpr + " (t@example.com)");
  CHECK((*source)->Files(signed_commit, "", {}).ok());

  repo.Write("deploy.yaml", std::string(kTree) + "  # unsigned\n");
  const std::string unsigned_commit = repo.Commit("unsigned");
  snap = (*source)->Load(unsigned_commit, {});
  REQUIRE(snap.ok());
  REQUIRE(snap->loaded.diagnostics.size() == 1);
  CHECK(snap->loaded.diagnostics.items()[0].ToString() ==
        "error: commit " + unsigned_commit.substr(0, 12) + ": not signed (--verify-commits ssh)");
  CHECK(snap->revision == unsigned_commit);
  CHECK(snap->loaded.state.agents.empty());  // the tree was not read
  CHECK(snap->content_digest.empty());
  CHECK(snap->signer.empty());
  auto files = (*source)->Files(unsigned_commit, "", {});
  REQUIRE_FALSE(files.ok());
  CHECK(files.status().code() == Code::kInvalid);
  CHECK(files.status().message().find("not signed") != std::string::npos);

  SUBCASE("without verification the same commit loads") {
    SourceOptions plain = o;
    plain.verify = {};
    plain.cache_dir = tmp.path() / "cache2";
    auto s = OpenSource(plain);
    REQUIRE(s.ok());
    auto loaded = (*s)->Load(unsigned_commit, {});
    REQUIRE(loaded.ok());
    CHECK_FALSE(loaded->loaded.diagnostics.HasErrors());
  }
  SUBCASE("a folder source with verification is refused") {
    SourceOptions folder = o;
    folder.location = repo.path().string();
    auto s = OpenSource(folder);
    REQUIRE_FALSE(s.ok());
    CHECK(s.status().code() == Code::kInvalid);
    CHECK(s.status().message().find("--verify-commits needs a Git source") != std::string::npos);
  }
  SUBCASE("a missing allowed_signers file is refused at OpenSource") {
    SourceOptions missing = o;
    missing.verify.keys = tmp.path() / "nope";
    auto s = OpenSource(missing);
    REQUIRE_FALSE(s.ok());
    CHECK(s.status().code() == Code::kInvalid);
  }
}

TEST_CASE("signed commits: OpenPGP keyring verdicts from real gpg signatures") {
  TempDir tmp{"reconcile-pgp"};
  const fs::path scratch = tmp.path() / "tmp";
  fs::create_directories(scratch);
  const char* old_tmp = getenv("TMPDIR");
  const std::string saved = old_tmp ? old_tmp : "";
  setenv("TMPDIR", scratch.c_str(), 1);

  Gpg gpg;
  tmp.Write("data.txt", "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\nthe commit\n");
  const fs::path data = tmp.path() / "data.txt";
  // The expiring key signs at once and expires 3 s after it was made.
  const std::string expiring = gpg.NewKey("expiring@example.com", "seconds=3");
  const std::string by_expiring = gpg.Sign(expiring, data);
  const auto expires = std::chrono::steady_clock::now() + std::chrono::milliseconds(3500);
  const std::string good = gpg.NewKey("good@example.com");
  const std::string stranger = gpg.NewKey("stranger@example.com");
  const std::string revoked = gpg.NewKey("revoked@example.com");
  const std::string by_good = gpg.Sign(good, data);
  const std::string by_stranger = gpg.Sign(stranger, data);
  const std::string by_revoked = gpg.Sign(revoked, data);
  // Revoke with the certificate gpg wrote at key creation.
  {
    std::ifstream in(gpg.home.path() / "openpgp-revocs.d" / (revoked + ".rev"));
    std::string cert((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto colon = cert.find(":-----BEGIN");
    REQUIRE(colon != std::string::npos);
    cert.erase(colon, 1);
    tmp.Write("revoke.asc", cert);
    gpg.Run("gpg --batch --quiet --import " + Quote((tmp.path() / "revoke.asc").string()));
  }
  tmp.Write("keys/good.asc", gpg.Export(good));
  tmp.Write("keys/expiring.asc", gpg.Export(expiring));
  tmp.Write("keys/revoked.asc", gpg.Export(revoked));
  std::this_thread::sleep_until(expires);  // the expiring key has expired
  // ... as GnuPG itself sees it (validity 'e' in --with-colons); under load
  // (CI once) the verdict was asked for before GnuPG saw it expired.
  {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    std::string listed;
    while (std::chrono::steady_clock::now() < deadline) {
      listed = gpg.Run("gpg --with-colons --list-keys " + expiring);
      if (listed.find("\npub:e:") != std::string::npos || listed.rfind("pub:e:", 0) == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    REQUIRE_MESSAGE(listed.find("pub:e:") != std::string::npos,
                    "gpg does not report the expiring key expired: ", listed);
  }

  {
    auto ring = OpenPgpKeyring::Open(tmp.path() / "keys");
    REQUIRE_MESSAGE(ring.ok(), ring.status().ToString());
    CHECK((*ring)->fingerprints().size() == 3);
    CHECK(GnupgHomesIn(scratch) == 1);
    const std::string text = "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\nthe commit\n";

    auto r = (*ring)->Verify(by_good, text);
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    CHECK(*r == good);
    r = (*ring)->Verify(by_good, text + "rewritten");
    CHECK(r.status().code() == Code::kInvalid);
    // A bad signature names the key by its long id (all gpg reports then).
    CHECK(r.status().message() == "signature does not verify (key " + good.substr(24) + ")");
    r = (*ring)->Verify(by_stranger, text);
    CHECK(r.status().message() == "signed by unknown key " + stranger);
    r = (*ring)->Verify(by_expiring, text);
    CHECK(r.status().message() == "signed by expired key " + expiring);
    r = (*ring)->Verify(by_revoked, text);
    CHECK(r.status().message() == "signed by revoked key " + revoked);
    r = (*ring)->Verify("-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n",
                        text);
    CHECK(r.status().code() == Code::kInvalid);
  }
  CHECK(GnupgHomesIn(scratch) == 0);  // removed with the keyring

  SUBCASE("a single key file, and files that hold no key") {
    auto one = OpenPgpKeyring::Open(tmp.path() / "keys" / "good.asc");
    REQUIRE(one.ok());
    CHECK((*one)->fingerprints() == std::vector<std::string>{good});
    tmp.Write("empty/.hidden", "x");
    auto empty = OpenPgpKeyring::Open(tmp.path() / "empty");
    REQUIRE_FALSE(empty.ok());
    CHECK(empty.status().message().find("holds no key file") != std::string::npos);
    tmp.Write("junk.asc", "hello\n");
    auto junk = OpenPgpKeyring::Open(tmp.path() / "junk.asc");
    REQUIRE_FALSE(junk.ok());
    CHECK(junk.status().code() == Code::kInvalid);
  }
  if (saved.empty()) {
    unsetenv("TMPDIR");
  } else {
    setenv("TMPDIR", saved.c_str(), 1);
  }
}

}  // namespace
}  // namespace reconcile
