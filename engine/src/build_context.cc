#include "reconcile/build_context.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <regex>

#include "reconcile/spec.h"

namespace reconcile {

namespace fs = std::filesystem;

namespace {

struct Pattern {
  bool exclusion = false;
  std::regex re;
};

// Docker's pattern syntax (filepath.Match plus "**") as a regular expression.
std::optional<std::regex> PatternRegex(const std::string& pattern) {
  std::string re;
  for (size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == '*') {
      if (i + 1 < pattern.size() && pattern[i + 1] == '*') {
        ++i;
        if (i + 1 < pattern.size() && pattern[i + 1] == '/') {
          ++i;
          re += "(.*/)?";
        } else {
          re += ".*";
        }
      } else {
        re += "[^/]*";
      }
    } else if (c == '?') {
      re += "[^/]";
    } else if (c == '[') {
      size_t close = pattern.find(']', i + 1);
      if (close == std::string::npos) return std::nullopt;
      std::string cls = pattern.substr(i + 1, close - i - 1);
      if (!cls.empty() && (cls[0] == '!' || cls[0] == '^')) cls = "^" + cls.substr(1);
      re += "[" + cls + "]";
      i = close;
    } else if (c == '\\' && i + 1 < pattern.size()) {
      re += "\\";
      re += pattern[++i];
    } else if (std::strchr(".+()|{}^$", c) != nullptr) {
      re += "\\";
      re += c;
    } else {
      re += c;
    }
  }
  try {
    return std::regex(re, std::regex::ECMAScript);
  } catch (const std::regex_error&) {
    return std::nullopt;
  }
}

// Cleans a path the way Go's filepath.Clean does for relative paths.
std::string CleanPattern(std::string p) {
  while (!p.empty() && p[0] == '/') p.erase(0, 1);
  std::string out = fs::path(p).lexically_normal().generic_string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out == "." ? "" : out;
}

std::vector<Pattern> Compile(const std::vector<std::string>& lines) {
  std::vector<Pattern> out;
  for (std::string line : lines) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
      line.pop_back();
    }
    size_t start = line.find_first_not_of(" \t");
    if (start == std::string::npos) continue;
    line = line.substr(start);
    if (line[0] == '#') continue;
    Pattern p;
    if (line[0] == '!') {
      p.exclusion = true;
      line = line.substr(1);
    }
    line = CleanPattern(line);
    if (line.empty()) continue;
    auto re = PatternRegex(line);
    if (!re) continue;  // Docker refuses bad patterns; we ignore them like a non-match
    p.re = std::move(*re);
    out.push_back(std::move(p));
  }
  return out;
}

// Docker's MatchesOrParentMatches.
bool Ignored(const std::vector<Pattern>& patterns, const std::string& path) {
  bool matched = false;
  std::vector<std::string> parents;
  for (size_t slash = path.find('/'); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    parents.push_back(path.substr(0, slash));
  }
  for (const Pattern& p : patterns) {
    if (p.exclusion != matched) continue;
    bool match = std::regex_match(path, p.re);
    for (size_t i = 0; !match && i < parents.size(); ++i)
      match = std::regex_match(parents[i], p.re);
    if (match) matched = !p.exclusion;
  }
  return matched;
}

std::string Mib(std::uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return buf;
}

bool Inside(const fs::path& root, const fs::path& p) {
  auto r = root.begin(), x = p.begin();
  for (; r != root.end(); ++r, ++x) {
    if (r->empty()) continue;  // trailing separator
    if (x == p.end() || *r != *x) return false;
  }
  return true;
}

// --- tar ---

// Zero-padded octal in width-1 digits and a NUL (values that do not fit are
// cut to their low digits; sizes are bounded far below 8 GiB by the limits).
void Octal(char* field, size_t width, std::uint64_t value) {
  for (size_t i = width - 1; i-- > 0;) {
    field[i] = static_cast<char>('0' + (value & 7));
    value >>= 3;
  }
  field[width - 1] = '\0';
}

void Header(std::string& out, const std::string& name, char type, std::uint64_t size, unsigned mode,
            std::int64_t mtime, const std::string& link) {
  char h[512];
  std::memset(h, 0, sizeof h);
  std::snprintf(h, 100, "%s", name.substr(0, 99).c_str());
  Octal(h + 100, 8, mode & 07777);
  Octal(h + 108, 8, 0);
  Octal(h + 116, 8, 0);
  Octal(h + 124, 12, size);
  Octal(h + 136, 12, static_cast<std::uint64_t>(std::max<std::int64_t>(0, mtime)));
  std::memset(h + 148, ' ', 8);
  h[156] = type;
  std::snprintf(h + 157, 100, "%s", link.substr(0, 99).c_str());
  std::memcpy(h + 257, "ustar", 6);
  std::memcpy(h + 263, "00", 2);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::snprintf(h + 148, 8, "%06o", sum);
  h[155] = ' ';
  out.append(h, sizeof h);
}

std::string PaxRecord(const std::string& key, const std::string& value) {
  std::string body = " " + key + "=" + value + "\n";
  size_t n = body.size() + 1;
  while (std::to_string(n).size() + body.size() != n) ++n;
  return std::to_string(n) + body;
}

// Reads a listed file, calling `sink` with chunks; kInvalid when it changed.
template <typename Sink>
Status ReadFile(const ContextEntry& e, Sink sink) {
  std::ifstream in(e.absolute, std::ios::binary);
  if (!in) return Status::Invalid("build context file '" + e.path + "' cannot be read");
  char buf[64 * 1024];
  std::uint64_t total = 0;
  while (in) {
    in.read(buf, sizeof buf);
    std::streamsize n = in.gcount();
    if (n <= 0) break;
    total += static_cast<std::uint64_t>(n);
    if (total > e.size) break;
    sink(buf, static_cast<size_t>(n));
  }
  if (total != e.size) {
    return Status::Invalid("build context file '" + e.path + "' changed while it was read");
  }
  return Status::Ok();
}

}  // namespace

bool DockerIgnored(const std::vector<std::string>& patterns, const std::string& path) {
  return Ignored(Compile(patterns), path);
}

Result<BuildContext> ListBuildContext(const fs::path& tree_root, const std::string& context,
                                      const std::string& dockerfile,
                                      const BuildContextLimits& limits) {
  std::error_code ec;
  fs::path root = fs::weakly_canonical(tree_root, ec);
  if (ec) return Status::Invalid("tree '" + tree_root.string() + "' cannot be read");
  fs::path dir = fs::weakly_canonical(root / context, ec);
  if (ec || !Inside(root, dir)) {
    return Status::Invalid("build context '" + context + "' leads outside the tree");
  }
  if (!fs::is_directory(dir, ec)) {
    return Status::Invalid("build context '" + context + "' is not a folder");
  }
  BuildContext out;
  out.root = dir;

  std::vector<std::string> lines;
  if (std::ifstream ignore(dir / ".dockerignore"); ignore) {
    for (std::string line; std::getline(ignore, line);) lines.push_back(line);
  }
  const std::vector<Pattern> patterns = Compile(lines);
  const bool exceptions =
      std::any_of(patterns.begin(), patterns.end(), [](const Pattern& p) { return p.exclusion; });
  const std::string df = fs::path(dockerfile).lexically_normal().generic_string();
  if (df.empty() || df.rfind("..", 0) == 0) {
    return Status::Invalid("dockerfile '" + dockerfile + "' leads outside the build context");
  }
  fs::file_status dfs = fs::symlink_status(dir / df, ec);
  if (ec || !fs::is_regular_file(dfs)) {
    return Status::Invalid("dockerfile '" + dockerfile + "' is not a file in the build context");
  }

  fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end;
  if (ec) return Status::Invalid("build context '" + context + "' cannot be read: " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec)
      return Status::Invalid("build context '" + context + "' cannot be read: " + ec.message());
    const fs::path& p = it->path();
    std::string rel = p.lexically_relative(dir).generic_string();
    fs::file_status st = it->symlink_status(ec);
    if (ec) return Status::Invalid("build context file '" + rel + "' cannot be read");
    const bool forced = rel == df || rel == ".dockerignore";
    if (!forced && Ignored(patterns, rel)) {
      if (fs::is_directory(st) && !exceptions) it.disable_recursion_pending();
      continue;
    }
    ContextEntry e;
    e.path = rel;
    e.absolute = p;
    e.mode = static_cast<unsigned>(st.permissions()) & 07777;
    struct stat sb;
    if (::lstat(p.c_str(), &sb) == 0) e.mtime = sb.st_mtime;
    if (fs::is_symlink(st)) {
      e.kind = ContextEntry::Kind::kSymlink;
      e.link_target = fs::read_symlink(p, ec).generic_string();
      fs::path resolved = (fs::path(rel).parent_path() / e.link_target).lexically_normal();
      if (ec || fs::path(e.link_target).is_absolute() ||
          (!resolved.empty() && *resolved.begin() == "..")) {
        return Status::Invalid("build context file '" + rel + "' is a symlink to '" +
                               e.link_target + "', which leads outside the build context");
      }
      e.mode = 0777;
    } else if (fs::is_directory(st)) {
      e.kind = ContextEntry::Kind::kFolder;
    } else if (fs::is_regular_file(st)) {
      e.size = static_cast<std::uint64_t>(sb.st_size);
      out.bytes += e.size;
      if (out.bytes > limits.max_bytes) {
        return Status::Invalid("build context '" + context + "' holds more than " +
                               Mib(limits.max_bytes) + " (the limit, --max-build-context); at '" +
                               rel + "'. Exclude what the build does not need in " + context +
                               "/.dockerignore");
      }
    } else {
      return Status::Invalid("build context file '" + rel +
                             "' is not a file, folder or symlink (sockets, pipes and devices "
                             "cannot be sent)");
    }
    out.newest_mtime = std::max(out.newest_mtime, e.mtime);
    out.entries.push_back(std::move(e));
    if (out.entries.size() > limits.max_files) {
      return Status::Invalid("build context '" + context + "' holds more than " +
                             std::to_string(limits.max_files) + " files");
    }
  }
  std::sort(out.entries.begin(), out.entries.end(),
            [](const ContextEntry& a, const ContextEntry& b) { return a.path < b.path; });
  return out;
}

namespace {

std::uint64_t Padded(std::uint64_t n) { return (n + 511) / 512 * 512; }

std::string EntryName(const ContextEntry& e) {
  return e.path + (e.kind == ContextEntry::Kind::kFolder ? "/" : "");
}

// The pax extended header of `e` ("" when its names fit in ustar).
std::string PaxOf(const ContextEntry& e) {
  const std::string name = EntryName(e);
  std::string pax;
  if (name.size() > 99) pax += PaxRecord("path", name);
  if (e.link_target.size() > 99) pax += PaxRecord("linkpath", e.link_target);
  return pax;
}

}  // namespace

ContextTarStream::ContextTarStream(BuildContext context, std::size_t chunk)
    : context_(std::move(context)), chunk_(std::max<std::size_t>(chunk, 64 * 1024)) {
  for (const ContextEntry& e : context_.entries) {
    const std::string pax = PaxOf(e);
    if (!pax.empty()) size_ += 512 + Padded(pax.size());
    size_ += 512;
    if (e.kind == ContextEntry::Kind::kFile) size_ += Padded(e.size);
  }
  size_ += 1024;
  buffer_.reserve(chunk_ + 2048);
}

ContextTarStream::~ContextTarStream() {
  if (fd_ >= 0) ::close(fd_);
}

Status ContextTarStream::StartEntry(const ContextEntry& e) {
  const std::string name = EntryName(e);
  if (std::string pax = PaxOf(e); !pax.empty()) {
    Header(buffer_, "PaxHeader", 'x', pax.size(), 0644, e.mtime, "");
    buffer_ += pax;
    buffer_.append(Padded(pax.size()) - pax.size(), '\0');
  }
  switch (e.kind) {
    case ContextEntry::Kind::kFolder:
      Header(buffer_, name, '5', 0, e.mode, e.mtime, "");
      return Status::Ok();
    case ContextEntry::Kind::kSymlink:
      Header(buffer_, name, '2', 0, e.mode, e.mtime, e.link_target);
      return Status::Ok();
    case ContextEntry::Kind::kFile:
      Header(buffer_, name, '0', e.size, e.mode, e.mtime, "");
      fd_ = ::open(e.absolute.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      if (fd_ < 0) return Status::Invalid("build context file '" + e.path + "' cannot be read");
      reading_ = &e;
      left_ = e.size;
      return Status::Ok();
  }
  return Status::Ok();
}

// Reads up to `room` bytes of the current file into the buffer; at its end,
// checks that nothing is left (the file did not grow) and pads the entry.
Status ContextTarStream::ReadSome(std::size_t room) {
  const ContextEntry& e = *reading_;
  if (left_ > 0) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(left_, room));
    const std::size_t at = buffer_.size();
    buffer_.resize(at + want);
    ssize_t n = ::read(fd_, buffer_.data() + at, want);
    if (n < 0 && errno == EINTR) n = 0;
    if (n <= 0) {
      buffer_.resize(at);
      if (n < 0) return Status::Invalid("build context file '" + e.path + "' cannot be read");
      return Status::Invalid("build context file '" + e.path + "' changed while it was read");
    }
    buffer_.resize(at + static_cast<std::size_t>(n));
    left_ -= static_cast<std::uint64_t>(n);
    if (left_ > 0) return Status::Ok();
  }
  char extra = 0;
  if (::read(fd_, &extra, 1) != 0) {
    return Status::Invalid("build context file '" + e.path + "' changed while it was read");
  }
  ::close(fd_);
  fd_ = -1;
  reading_ = nullptr;
  buffer_.append(Padded(e.size) - e.size, '\0');
  return Status::Ok();
}

Result<std::string_view> ContextTarStream::Next() {
  buffer_.clear();
  while (buffer_.size() < chunk_) {
    if (reading_ != nullptr) {
      if (Status s = ReadSome(chunk_ - buffer_.size()); !s.ok()) return s;
    } else if (next_entry_ < context_.entries.size()) {
      if (Status s = StartEntry(context_.entries[next_entry_++]); !s.ok()) return s;
    } else if (!trailer_written_) {
      buffer_.append(1024, '\0');
      trailer_written_ = true;
    } else {
      break;
    }
  }
  produced_ += buffer_.size();
  if (produced_ > size_ || (buffer_.empty() && produced_ != size_)) {
    return Status::Internal("build context tar: " + std::to_string(produced_) + " bytes made, " +
                            std::to_string(size_) + " announced");
  }
  return std::string_view(buffer_);
}

Result<std::string> ContextTar(const BuildContext& context) {
  ContextTarStream stream(context);
  std::string out;
  out.reserve(static_cast<size_t>(stream.size()));
  for (;;) {
    Result<std::string_view> piece = stream.Next();
    if (!piece.ok()) return piece.status();
    if (piece->empty()) return out;
    out.append(piece->data(), piece->size());
  }
}

Result<std::string> ContextDigest(const BuildContext& context) {
  Sha256 h;
  for (const ContextEntry& e : context.entries) {
    h.UpdateField(e.path);
    h.UpdateField(std::to_string(static_cast<int>(e.kind)) + " " + std::to_string(e.mode) + " " +
                  std::to_string(e.size));
    h.UpdateField(e.link_target);
    if (e.kind == ContextEntry::Kind::kFile) {
      Status s = ReadFile(e, [&](const char* d, size_t n) { h.Update(std::string_view(d, n)); });
      if (!s.ok()) return s;
    }
  }
  return h.HexDigest();
}

}  // namespace reconcile
