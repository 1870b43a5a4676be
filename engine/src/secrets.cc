#include "reconcile/secrets.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "reconcile/spec.h"

namespace reconcile {
namespace {

constexpr size_t kMaxSecretBytes = 1u << 20;

bool IsPlainFileName(std::string_view name) {
  return !name.empty() && name != "." && name.find('/') == std::string_view::npos &&
         name.find('\\') == std::string_view::npos && name.find("..") == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

// Reads secrets_dir/name; on failure returns false and sets `problem` (which
// names the file and what to do, never any content).
bool ReadSecretFile(const std::filesystem::path& dir, const std::string& name, std::string* value,
                    std::string* problem) {
  const std::string quoted = "secret file '" + name + "'";
  if (!IsPlainFileName(name)) {
    *problem = quoted + " is not a plain file name in the secrets folder (no '/', no '..')";
    return false;
  }
  if (dir.empty()) {
    *problem = quoted + " is needed but no secrets folder is set (set --secrets DIR)";
    return false;
  }
  const std::filesystem::path path = dir / name;
  // O_NONBLOCK: a FIFO planted in the folder must not hang the engine.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      *problem = quoted + " not found in " + dir.string() + " (set --secrets DIR)";
    } else {
      *problem = quoted + " in " + dir.string() + " cannot be opened: " + std::strerror(err);
    }
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    *problem = quoted + " in " + dir.string() + " is not a regular file";
    return false;
  }
  std::string data;
  char buf[16384];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      *problem = quoted + " in " + dir.string() + " cannot be read: " + std::strerror(err);
      return false;
    }
    if (n == 0) break;
    if (data.size() + static_cast<size_t>(n) > kMaxSecretBytes) {
      ::close(fd);
      *problem = quoted + " in " + dir.string() + " is larger than 1 MiB";
      return false;
    }
    data.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (!data.empty() && data.back() == '\n') {
    data.pop_back();
    if (!data.empty() && data.back() == '\r') data.pop_back();
  }
  *value = std::move(data);
  return true;
}

const char* CredentialFamily(const std::string& name) {
  for (const char* prefix : kEngineCredentialPrefixes) {
    if (name.rfind(prefix, 0) == 0) return prefix;
  }
  return nullptr;
}

}  // namespace

std::set<std::string> RegistryCredentialVariables(const DesiredState& state) {
  std::set<std::string> out;
  for (const Registry& r : state.registries) {
    if (r.credentials_env_prefix.empty()) continue;
    out.insert(r.credentials_env_prefix + "_USERNAME");
    out.insert(r.credentials_env_prefix + "_PASSWORD");
  }
  return out;
}

std::string SecretEnvRefusal(const std::string& name, const SecretEnvPolicy& policy) {
  const std::string fix =
      "; keep the secret in a file under --secrets DIR and write {file: NAME} instead";
  if (policy.engine_credentials.count(name) != 0) {
    return "environment variable " + name +
           " holds one of the engine's own credentials (a registry's credentialsEnvPrefix or "
           "--git-password-env) and can never be read by a tree, even with --allow-secret-env" +
           fix;
  }
  if (const char* family = CredentialFamily(name)) {
    return "environment variable " + name + " belongs to the engine's own credentials (" + family +
           "*) and can never be read by a tree, even with --allow-secret-env" + fix;
  }
  if (name.rfind(kSecretEnvPrefix, 0) == 0 && name.size() > std::string(kSecretEnvPrefix).size()) {
    return "";
  }
  if (policy.allowed.count(name) != 0) return "";
  return "environment variable " + name +
         " is not allowed: the engine reads only variables named " + kSecretEnvPrefix +
         "* or listed with --allow-secret-env " + name + " (rename it, e.g. " + kSecretEnvPrefix +
         name + ", or allow it by name)";
}

void CheckSecretEnvPolicy(const DesiredState& state, const SecretEnvPolicy& given,
                          Diagnostics& diagnostics) {
  SecretEnvPolicy policy = given;
  policy.engine_credentials.merge(RegistryCredentialVariables(state));
  for (const Agent& a : state.agents) {
    for (const auto& [env_name, ref] : a.secret_env) {
      if (ref.source != SecretRef::Source::kEnv) continue;
      std::string why = SecretEnvRefusal(ref.name, policy);
      if (why.empty()) continue;
      const std::string field = "spec.secretEnv." + env_name;
      auto at = a.field_locations.find(field + ".env");
      const SourceLocation& loc = at == a.field_locations.end() ? a.location : at->second;
      diagnostics.Error(loc.file, loc.line, loc.column, field, "agent '" + a.name + "': " + why);
    }
    for (const auto& [file_name, file] : a.secret_files) {
      if (file.ref.source != SecretRef::Source::kEnv) continue;
      std::string why = SecretEnvRefusal(file.ref.name, policy);
      if (why.empty()) continue;
      const std::string field = "spec.secretFiles." + file_name;
      auto at = a.field_locations.find(field + ".env");
      const SourceLocation& loc = at == a.field_locations.end() ? a.location : at->second;
      diagnostics.Error(loc.file, loc.line, loc.column, field, "agent '" + a.name + "': " + why);
    }
  }
  for (const Notifier& n : state.notifiers) {
    for (const auto& [key, ref] :
         {std::pair{"url", &n.url}, std::pair{"secret", &n.secret}, std::pair{"token", &n.token}}) {
      if (!*ref || (*ref)->source != SecretRef::Source::kEnv) continue;
      std::string why = SecretEnvRefusal((*ref)->name, policy);
      if (why.empty()) continue;
      const std::string field = std::string("spec.") + key;
      auto at = n.field_locations.find(field + ".env");
      const SourceLocation& loc = at == n.field_locations.end() ? n.location : at->second;
      diagnostics.Error(loc.file, loc.line, loc.column, field, "notifier '" + n.name + "': " + why);
    }
  }
}

namespace {

// Which flags configure the store of `source`, for "not configured".
const char* StoreFlags(SecretRef::Source source) {
  switch (source) {
    case SecretRef::Source::kAws:
      return "AWS Secrets Manager is not configured in this engine (it needs AWS credentials "
             "and a region: AWS_REGION or the reference's region)";
    case SecretRef::Source::kVault:
      return "Vault is not configured in this engine (set VAULT_ADDR or --vault-addr, and a "
             "token: VAULT_TOKEN, --vault-token-file or --vault-approle-role-id-file)";
    case SecretRef::Source::kSops:
      return "SOPS files are not read in this engine (a Reconciler reads them from the tree "
             "it fetched)";
    default:
      return "this kind of reference has no store in this engine";
  }
}

}  // namespace

Result<std::map<std::string, std::string>> ResolveSecrets(
    const std::map<std::string, SecretRef>& refs, const std::filesystem::path& secrets_dir,
    const SecretEnvPolicy& policy, const SecretStores& stores, std::stop_token stop) {
  std::map<std::string, std::string> values;
  std::vector<std::string> problems;
  Code code = Code::kInvalid;
  for (const auto& [env_name, ref] : refs) {
    std::string value;
    std::string problem;
    switch (ref.source) {
      case SecretRef::Source::kFile:
        if (!ReadSecretFile(secrets_dir, ref.name, &value, &problem)) {
          problems.push_back(env_name + ": " + problem);
          continue;
        }
        break;
      case SecretRef::Source::kEnv: {
        if (std::string why = SecretEnvRefusal(ref.name, policy); !why.empty()) {
          problems.push_back(env_name + ": " + why);
          continue;
        }
        const char* v = ref.name.empty() ? nullptr : std::getenv(ref.name.c_str());
        if (v == nullptr) {
          problems.push_back(env_name + ": environment variable " +
                             (ref.name.empty() ? std::string("(empty name)") : ref.name) +
                             " is not set");
          continue;
        }
        value = v;
        break;
      }
      default: {
        auto store = stores.find(ref.source);
        if (store == stores.end() || store->second == nullptr) {
          problems.push_back(env_name + ": " + SecretRefText(ref) + ": " + StoreFlags(ref.source));
          continue;
        }
        Result<std::string> got = store->second->Get(ref, stop);
        if (!got.ok()) {
          if (code == Code::kInvalid && got.status().code() != Code::kInvalid) {
            code = got.status().code();
          }
          problems.push_back(env_name + ": " + got.status().message());
          continue;
        }
        value = std::move(*got);
        break;
      }
    }
    values.emplace(env_name, std::move(value));
  }
  if (!problems.empty()) {
    std::string msg = problems.size() == 1
                          ? "1 secret cannot be read: "
                          : std::to_string(problems.size()) + " secrets cannot be read: ";
    for (size_t i = 0; i < problems.size(); ++i) {
      if (i > 0) msg += "; ";
      msg += problems[i];
    }
    return Status(code, msg);
  }
  return values;
}

std::string SecretDigest(const std::string& key, const std::string& value) {
  return "hmac-sha256:" + HmacSha256Hex(key, value);
}

Result<std::string> DigestKey(const std::filesystem::path& file) {
  const std::string where = "secret fingerprint key " + file.string();
  auto decode = [&](const std::string& text) -> Result<std::string> {
    std::string hex = text;
    while (!hex.empty() && (hex.back() == '\n' || hex.back() == '\r')) hex.pop_back();
    if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
      return Status::Invalid(where +
                             " is not 64 hex digits; remove it to make a new one (every agent "
                             "with secrets is then redeployed once)");
    }
    std::string key(32, '\0');
    for (size_t i = 0; i < 32; ++i)
      key[i] = static_cast<char>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
    return key;
  };
  std::string value;
  std::string problem;
  std::error_code ec;
  if (std::filesystem::exists(file, ec)) {
    if (!ReadSecretFile(file.parent_path(), file.filename().string(), &value, &problem)) {
      return Status::Invalid(where + " cannot be read (" + problem + ")");
    }
    return decode(value);
  }
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) return Status::Internal(where + ": no random bytes");
  std::string hex = HexBytes(raw, sizeof raw);
  OPENSSL_cleanse(raw, sizeof raw);
  if (!file.parent_path().empty() && !std::filesystem::exists(file.parent_path(), ec)) {
    std::filesystem::create_directories(file.parent_path(), ec);
    if (ec) return Status::Invalid(where + ": cannot make its folder: " + ec.message());
    ::chmod(file.parent_path().c_str(), 0700);
  }
  const std::string temp = file.string() + ".tmp" + std::to_string(::getpid());
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Status::Invalid(where + " cannot be created: " + std::strerror(errno) +
                           " (set --secret-digest-key FILE to a writable place)");
  }
  const std::string line = hex + "\n";
  bool wrote = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  wrote = ::fsync(fd) == 0 && wrote;
  ::close(fd);
  // link(): a key another process made first wins; both then read it.
  if (!wrote || (::link(temp.c_str(), file.c_str()) != 0 && errno != EEXIST)) {
    int err = errno;
    ::unlink(temp.c_str());
    return Status::Invalid(where + " cannot be created: " + std::strerror(err));
  }
  ::unlink(temp.c_str());
  if (!ReadSecretFile(file.parent_path(), file.filename().string(), &value, &problem)) {
    return Status::Invalid(where + " cannot be read (" + problem + ")");
  }
  return decode(value);
}

}  // namespace reconcile
