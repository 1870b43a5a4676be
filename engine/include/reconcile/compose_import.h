// ComposeImport: turns a Compose file (the Compose Specification, and
// `version: "2"` / `"3"` files) into reconcile documents: one Agent per
// service, a docker Target and, for services with `build:`, a Registry.
//
// A pure function of the file's text, the `.env` text and the environment
// (no I/O but the optional `read_file` callback, used for `env_file:`). Every
// key of the file is either mapped or reported, with file:line:column and
// why: as an error when reconcile cannot honour it (the import must then
// write nothing), as a warning when it is ignored or mapped differently.
// Values that look like secrets (environment names holding PASSWORD, SECRET,
// TOKEN, KEY, ...; compose `secrets:`) become references (`secretEnv` /
// `secretFiles` with `{file: NAME}`) and never reach the documents; the
// result lists the files to create under `--secrets`.
//
// Thread-safe (no shared state).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "reconcile/diagnostic.h"

namespace reconcile {

struct ComposeImportInput {
  std::string file;            // the compose file's name in diagnostics, e.g. "compose.yaml"
  std::string content;         // its text
  std::string dotenv_file;     // the .env file's name in diagnostics; empty: no .env
  std::string dotenv_content;  // its text
  // The shell's variables; they win over .env, as in Compose.
  std::map<std::string, std::string> environment;
  // Absolute, normalized folder of the compose file: relative bind sources,
  // build contexts, secret and env files are resolved against it.
  std::string compose_dir;
  // Absolute, normalized folder the documents are written to: build contexts
  // are written relative to it.
  std::string out_dir;
  // Compose's project name (the prefix of volume and network names, as
  // `docker-compose -p`). Empty: the file's `name:`, else the folder name of
  // compose_dir; lower-cased, as Compose does.
  std::string project;
  std::string agent_prefix;      // prepended to every agent name (service names stay DNS aliases)
  std::string target = "local";  // the Target document's name
  // The Agent fields this build of reconcile has, as AgentFieldsFromSchema
  // lists them. A compose key that maps to a missing field is reported.
  std::set<std::string> agent_fields;
  // Reads a file (an absolute path) for `env_file:`; null or nullopt: the
  // file cannot be read (an error at the key).
  std::function<std::optional<std::string>(const std::string& path)> read_file;
};

struct ComposeDocument {
  std::string file_name;  // e.g. "agent-db.yaml", "target-local.yaml"
  std::string kind;       // Agent | Target | Registry
  std::string name;
  std::string text;  // one YAML document
};

// A secret file the user must create under --secrets before apply.
struct ComposeSecretFile {
  std::string name;  // the file name (the `{file: NAME}` reference)
  std::string what;  // what it must hold, for people (never the value)
};

struct ComposeImportResult {
  std::vector<ComposeDocument> documents;       // Target, Registry, Agents; sorted by file_name
  std::vector<ComposeSecretFile> secret_files;  // sorted by name, unique
  std::vector<std::string> bind_paths;  // host paths `apply` must allow (--allow-bind), sorted
  std::string project;                  // the project name used
  Diagnostics diagnostics;              // errors: do not write anything; warnings: reported
};

ComposeImportResult ImportCompose(const ComposeImportInput& in);

// The Agent fields a JSON Schema of the Agent kind (schemas/agent.schema.json)
// declares, as dotted paths below spec: "image", "healthCheck",
// "healthCheck.exec", "ports[].publish", "resources.gpus", ... Empty when the
// text is not such a schema.
std::set<std::string> AgentFieldsFromSchema(const std::string& agent_schema_json);

// Every field the importer can write (the agreed field set of issue #13).
std::set<std::string> AllComposeAgentFields();

// Parses a `.env` file: KEY=VALUE lines, `#` comments, blank lines, an
// optional `export `, values in single quotes (literal), double quotes (\n,
// \t, \\, \" escapes) or bare (a ` #` starts a comment; spaces trimmed).
// Bad lines are errors at their line in `diagnostics` (named `file`).
std::map<std::string, std::string> ParseDotEnv(const std::string& file, const std::string& content,
                                               Diagnostics& diagnostics);

// Compose interpolation of one value: $$, $VAR, ${VAR}, ${VAR:-default},
// ${VAR-default}, ${VAR:?error}, ${VAR?error}, ${VAR:+alt}, ${VAR+alt};
// defaults may hold interpolations. An unset variable without a default is
// replaced by "" and its name added to `unset`. nullopt on a syntax error or a
// required variable that is missing; `error` then says which.
std::optional<std::string> InterpolateCompose(const std::string& text,
                                              const std::map<std::string, std::string>& env,
                                              std::string& error, std::vector<std::string>& unset);

// True for environment variable names that look like they hold a secret
// (case-insensitive): a part (split at _ . -) that is PW, PWD, PRIVATE, KEY,
// KEYS (or APIKEY, ACCESSKEY, SECRETKEY, ...) or ends in PASS (PGPASS), or a
// name containing PASSWORD, PASSWD, SECRET, TOKEN or CREDENTIAL.
bool LooksLikeSecretName(const std::string& name);

}  // namespace reconcile
