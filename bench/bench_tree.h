// Helpers shared by the benchmark binaries: a desired-state tree of N agents
// (one file each, agents/a00000.yaml ...) plus one Target `local` (provider
// docker), written into a work repository with the git CLI and pushed
// (forced) to a remote the benchmark then reads back through a Source.
//
// Not thread-safe (std::system, files); errors throw std::runtime_error.
#pragma once

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

namespace reconcile::bench {

namespace fs = std::filesystem;

// User + system CPU time of this process so far, in milliseconds.
inline double CpuMs() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto ms = [](const timeval& t) { return t.tv_sec * 1000.0 + t.tv_usec / 1000.0; };
  return ms(u.ru_utime) + ms(u.ru_stime);
}

inline double WallMs(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since)
      .count();
}

inline void Run(const std::string& command) {
  if (std::system(command.c_str()) != 0) throw std::runtime_error("failed: " + command);
}

// The YAML of agent `i` (name a%05d) running `image`.
inline std::string Agent(int i, const std::string& image) {
  char name[32];
  std::snprintf(name, sizeof name, "a%05d", i);
  return std::string("apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata:\n  name: ") +
         name + "\n  labels: {team: bench}\nspec:\n  image: " + image +
         "\n  target: local\n  port: 8080\n  env:\n    GREETING: hello\n    INDEX: \"" +
         std::to_string(i) + "\"\n  healthCheck: {path: /health, interval: 1s}\n";
}

inline std::string AgentFile(int i) {
  char name[48];
  std::snprintf(name, sizeof name, "agents/a%05d.yaml", i);
  return name;
}

inline void Write(const fs::path& p, const std::string& content) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << content;
}

// The start of a git command run in `work`, with a fixed identity and no
// user or system configuration.
inline std::string Git(const fs::path& work) {
  return "cd '" + work.string() +
         "' && GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_AUTHOR_NAME=b "
         "GIT_AUTHOR_EMAIL=b@example.com GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@example.com "
         "git -c commit.gpgsign=false ";
}

// Creates `repo` (emptied first) with a Target and `agents` agents on branch
// main, commits and force-pushes it to `push`.
inline void WriteTree(const fs::path& repo, int agents, const std::string& push) {
  fs::remove_all(repo);
  fs::create_directories(repo);
  Run(Git(repo) + "init -q -b main");
  Write(repo / "target.yaml",
        "apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: local}\n"
        "spec: {provider: docker}\n");
  for (int i = 0; i < agents; ++i) Write(repo / AgentFile(i), Agent(i, "nginx:1.27"));
  Run(Git(repo) + "add -A && " + Git(repo) + "commit -q -m tree");
  Run(Git(repo) + "push -q -f '" + push + "' main");
}

// Changes agent `i`'s image in `repo`, commits and force-pushes to `push`.
inline void ChangeAgent(const fs::path& repo, int i, const std::string& image,
                        const std::string& push) {
  Write(repo / AgentFile(i), Agent(i, image));
  Run(Git(repo) + "commit -q -am change");
  Run(Git(repo) + "push -q -f '" + push + "' main");
}

}  // namespace reconcile::bench
