#include "cmd_import.h"

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "reconcile/compose_import.h"
#include "reconcile/json_schemas.h"
#include "reconcile/state_store.h"

extern char** environ;

namespace reconcile::cli {

namespace {

namespace fs = std::filesystem;

constexpr std::uintmax_t kMaxComposeBytes = 4 * 1024 * 1024;

std::optional<std::string> ReadSmallFile(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return std::nullopt;
  if (fs::file_size(path, ec) > kMaxComposeBytes || ec) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

int CmdImportCompose(const GlobalOptions& g, const ImportFlags& flags) {
  (void)g;
  if (flags.out.empty() && !flags.dry_run) {
    spdlog::error("import compose: give --out DIR (where the documents go) or --dry-run");
    return 1;
  }
  std::error_code ec;
  const fs::path file = fs::absolute(flags.file, ec).lexically_normal();
  auto content = ReadSmallFile(file);
  if (!content) {
    spdlog::error("{}: cannot read the compose file (missing, not a file, or over 4 MiB)",
                  flags.file);
    return 1;
  }
  ComposeImportInput in;
  in.file = flags.file;
  in.content = *content;
  in.compose_dir = file.parent_path().string();
  const fs::path dotenv = file.parent_path() / ".env";
  if (fs::exists(dotenv, ec)) {
    auto text = ReadSmallFile(dotenv);
    if (!text) {
      spdlog::error("{}: cannot read it", dotenv.string());
      return 1;
    }
    in.dotenv_file = (fs::path(flags.file).parent_path() / ".env").string();
    in.dotenv_content = *text;
  }
  for (char** e = environ; e && *e; ++e) {
    std::string kv = *e;
    size_t eq = kv.find('=');
    if (eq != std::string::npos) in.environment[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  const fs::path out =
      fs::absolute(flags.out.empty() ? fs::path(".") : fs::path(flags.out), ec).lexically_normal();
  std::string out_dir = out.string();
  while (out_dir.size() > 1 && out_dir.back() == '/') out_dir.pop_back();
  in.out_dir = flags.out.empty() ? in.compose_dir : out_dir;
  in.project = flags.project;
  in.agent_prefix = flags.agent_prefix;
  in.target = flags.target;
  in.agent_fields = AgentFieldsFromSchema(SchemaFor("Agent").value_or(""));
  in.read_file = [](const std::string& path) { return ReadSmallFile(path); };

  ComposeImportResult r = ImportCompose(in);
  size_t errors = 0, warnings = 0;
  for (const Diagnostic& d : r.diagnostics.items()) {
    std::cerr << d.ToString() << "\n";
    (d.severity == Severity::kError ? errors : warnings)++;
  }
  if (errors > 0) {
    std::cerr << "error: " << flags.file << ": " << errors << " error(s), " << warnings
              << " warning(s); nothing was written\n";
    return 1;
  }

  std::ostream& notes = flags.dry_run ? std::cerr : std::cout;
  if (flags.dry_run) {
    bool first = true;
    for (const ComposeDocument& d : r.documents) {
      if (!first) std::cout << "---\n";
      first = false;
      std::cout << d.text;
    }
  } else {
    // All or nothing: refuse before writing anything.
    std::vector<std::string> refused;
    for (const ComposeDocument& d : r.documents) {
      const fs::path p = out / d.file_name;
      if (fs::exists(p, ec)) {
        auto existing = ReadSmallFile(p);
        if (!existing || *existing != d.text) refused.push_back(p.string());
      }
    }
    if (!refused.empty()) {
      for (const std::string& p : refused) {
        std::cerr << "error: " << p << " exists with other content; not overwritten\n";
      }
      std::cerr << "error: " << refused.size()
                << " file(s) would be overwritten; nothing was written (move them away or "
                   "choose another --out)\n";
      return 1;
    }
    fs::create_directories(out, ec);
    if (ec) {
      spdlog::error("cannot create {}: {}", out.string(), ec.message());
      return 1;
    }
    for (const ComposeDocument& d : r.documents) {
      if (Status s = WriteFileAtomic(out / d.file_name, d.text); !s.ok()) {
        spdlog::error("{}", s.message());
        return 1;
      }
    }
    notes << "Wrote " << r.documents.size() << " document(s) into " << out.string() << ":";
    for (const ComposeDocument& d : r.documents) notes << " " << d.file_name;
    notes << "\n";
  }
  notes << "Imported " << flags.file << " (project '" << r.project << "'): " << warnings
        << " warning(s), nothing refused.\n";
  if (!r.secret_files.empty()) {
    notes << "Secrets were not copied. Create these files under --secrets DIR (default "
             "<state>/secrets) before apply:\n";
    for (const ComposeSecretFile& s : r.secret_files) {
      notes << "  " << s.name << "  <- " << s.what << "\n";
    }
  }
  if (!r.bind_paths.empty()) {
    notes << "Bind mounts: run plan/apply with";
    for (const std::string& p : r.bind_paths) notes << " --allow-bind " << p;
    notes << "\n";
  }
  return 0;
}

}  // namespace reconcile::cli
