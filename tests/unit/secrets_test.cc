#include "reconcile/secrets.h"
#include "fakes/temp_dir.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <doctest/doctest.h>

namespace reconcile {
namespace {

namespace fs = std::filesystem;
using SecretsDir = testing::TempDir;

SecretRef File(const std::string& name) { return {SecretRef::Source::kFile, name}; }
SecretRef Env(const std::string& name) { return {SecretRef::Source::kEnv, name}; }

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST_SUITE("secrets") {
  TEST_CASE("file secrets are read with one trailing newline stripped") {
    struct Row {
      const char* name;
      std::string content;
      std::string want;
    };
    const Row rows[] = {
        {"no newline", "s3cr3t", "s3cr3t"},
        {"one newline", "s3cr3t\n", "s3cr3t"},
        {"CRLF", "s3cr3t\r\n", "s3cr3t"},
        {"two newlines keep one", "s3cr3t\n\n", "s3cr3t\n"},
        {"multi-line", "-----BEGIN KEY-----\nabc\n-----END KEY-----\n",
         "-----BEGIN KEY-----\nabc\n-----END KEY-----"},
        {"empty", "", ""},
        {"binary", std::string("a\0b", 3), std::string("a\0b", 3)},
        {"exactly 1 MiB", std::string(1 << 20, 'x'), std::string(1 << 20, 'x')},
    };
    for (const Row& row : rows) {
      SUBCASE(row.name) {
        SecretsDir dir;
        dir.Write("api-key", row.content);
        auto r = ResolveSecrets({{"API_KEY", File("api-key")}}, dir.path());
        REQUIRE_MESSAGE(r.ok(), r.status().message());
        CHECK(r->at("API_KEY") == row.want);
      }
    }
  }

  TEST_CASE("a symlinked secret file is followed (Kubernetes secret volumes)") {
    SecretsDir dir;
    fs::create_directory(dir.path() / "..data");
    dir.Write("..data/token", "t0ken\n");
    fs::create_symlink("..data/token", dir.path() / "token");
    auto r = ResolveSecrets({{"TOKEN", File("token")}}, dir.path());
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    CHECK(r->at("TOKEN") == "t0ken");
  }

  TEST_CASE("env secrets are read from the engine environment") {
    ::setenv("RECONCILE_SECRET_TEST_SET", "env-value", 1);
    ::setenv("RECONCILE_SECRET_TEST_EMPTY", "", 1);
    auto r = ResolveSecrets(
        {{"A", Env("RECONCILE_SECRET_TEST_SET")}, {"B", Env("RECONCILE_SECRET_TEST_EMPTY")}}, "");
    ::unsetenv("RECONCILE_SECRET_TEST_SET");
    ::unsetenv("RECONCILE_SECRET_TEST_EMPTY");
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    CHECK(*r == std::map<std::string, std::string>{{"A", "env-value"}, {"B", ""}});
  }

  TEST_CASE("no references resolve to an empty map") {
    auto r = ResolveSecrets({}, "");
    REQUIRE(r.ok());
    CHECK(r->empty());
  }

  TEST_CASE("every missing secret is listed in one kInvalid error without any value") {
    SecretsDir dir;
    dir.Write("present", "TOP-SECRET-VALUE\n");
    ::setenv("RECONCILE_SECRET_TEST_PRESENT", "ENV-SECRET-VALUE", 1);
    ::unsetenv("RECONCILE_SECRET_TEST_UNSET");
    auto r = ResolveSecrets({{"API_KEY", File("api-key")},
                             {"PRESENT", File("present")},
                             {"PRESENT_ENV", Env("RECONCILE_SECRET_TEST_PRESENT")},
                             {"TOKEN", Env("RECONCILE_SECRET_TEST_UNSET")}},
                            dir.path());
    ::unsetenv("RECONCILE_SECRET_TEST_PRESENT");
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kInvalid);
    const std::string& msg = r.status().message();
    CHECK_MESSAGE(Contains(msg, "2 secrets cannot be read"), msg);
    CHECK_MESSAGE(Contains(msg, "API_KEY: secret file 'api-key' not found in " +
                                    dir.path().string() + " (set --secrets DIR)"),
                  msg);
    CHECK_MESSAGE(
        Contains(msg, "TOKEN: environment variable RECONCILE_SECRET_TEST_UNSET is not set"), msg);
    CHECK_FALSE(Contains(msg, "TOP-SECRET-VALUE"));
    CHECK_FALSE(Contains(msg, "ENV-SECRET-VALUE"));
  }

  TEST_CASE("file references that would escape the secrets folder are rejected") {
    const char* names[] = {"../etc/passwd", "a/b",      "/etc/passwd", "..", ".", "",
                           "x..y",          "..hidden", "sub\\..\\x"};
    for (const char* name : names) {
      SUBCASE(name) {
        SecretsDir dir;
        fs::create_directory(dir.path() / "a");
        dir.Write("a/b", "nested");
        auto r = ResolveSecrets({{"X", File(name)}}, dir.path() / "a");
        REQUIRE_FALSE(r.ok());
        CHECK(r.status().code() == Code::kInvalid);
        CHECK_MESSAGE(Contains(r.status().message(), "is not a plain file name"),
                      r.status().message());
      }
    }
  }

  TEST_CASE("unusable secret files are errors naming the file, not its content") {
    SecretsDir dir;
    SUBCASE("larger than 1 MiB") {
      dir.Write("big", std::string((1 << 20) + 1, 'z'));
      auto r = ResolveSecrets({{"BIG", File("big")}}, dir.path());
      REQUIRE_FALSE(r.ok());
      CHECK(Contains(r.status().message(),
                     "secret file 'big' in " + dir.path().string() + " is larger than 1 MiB"));
      CHECK_FALSE(Contains(r.status().message(), "zzz"));
    }
    SUBCASE("a folder") {
      fs::create_directory(dir.path() / "folder");
      auto r = ResolveSecrets({{"F", File("folder")}}, dir.path());
      REQUIRE_FALSE(r.ok());
      CHECK(Contains(r.status().message(),
                     "secret file 'folder' in " + dir.path().string() + " is not a regular file"));
    }
    SUBCASE("a FIFO does not block") {
      REQUIRE(::mkfifo((dir.path() / "fifo").c_str(), 0600) == 0);
      auto r = ResolveSecrets({{"F", File("fifo")}}, dir.path());
      REQUIRE_FALSE(r.ok());
      CHECK(Contains(r.status().message(), "is not a regular file"));
    }
    SUBCASE("no secrets folder configured") {
      auto r = ResolveSecrets({{"API_KEY", File("api-key")}}, "");
      REQUIRE_FALSE(r.ok());
      CHECK(r.status().message() ==
            "1 secret cannot be read: API_KEY: secret file 'api-key' is needed but no secrets "
            "folder is set (set --secrets DIR)");
    }
    SUBCASE("secrets folder missing") {
      auto r = ResolveSecrets({{"API_KEY", File("api-key")}}, dir.path() / "nope");
      REQUIRE_FALSE(r.ok());
      CHECK(Contains(r.status().message(), "secret file 'api-key' not found in " +
                                               (dir.path() / "nope").string() +
                                               " (set --secrets DIR)"));
    }
  }

  TEST_CASE("the environment allow-list: prefix, --allow-secret-env, never engine credentials") {
    SecretEnvPolicy policy;
    policy.allowed = {"LISTED_TOKEN", "AWS_SECRET_ACCESS_KEY", "GIT_TOKEN_VAR", "REG_PASSWORD"};
    policy.engine_credentials = {"GIT_TOKEN_VAR", "MY_GIT_PASSWORD"};
    struct Row {
      const char* var;
      bool allowed;
      const char* why;  // part of the refusal
    };
    const Row rows[] = {
        {"RECONCILE_SECRET_DB", true, ""},
        {"LISTED_TOKEN", true, ""},
        {"RECONCILE_SECRET_", false, "--allow-secret-env RECONCILE_SECRET_"},
        {"HOME_TOKEN", false, "--allow-secret-env HOME_TOKEN"},
        {"HOME_TOKEN", false, "e.g. RECONCILE_SECRET_HOME_TOKEN"},
        {"AWS_SECRET_ACCESS_KEY", false, "engine's own credentials (AWS_*)"},
        {"GOOGLE_APPLICATION_CREDENTIALS", false, "(GOOGLE_*)"},
        {"AZURE_CLIENT_SECRET", false, "(AZURE_*)"},
        {"GIT_TOKEN_VAR", false, "even with --allow-secret-env"},
        {"MY_GIT_PASSWORD", false, "--git-password-env"},
        {"DOCKER_AUTH_CONFIG", false, "(DOCKER_*)"},
    };
    for (const Row& row : rows) {
      CAPTURE(row.var);
      std::string why = SecretEnvRefusal(row.var, policy);
      CHECK(why.empty() == row.allowed);
      CHECK_MESSAGE(Contains(why, row.why), why);
    }
  }

  TEST_CASE("refused env references are load errors at the reference, naming the fix") {
    DesiredState state;
    Registry reg;
    reg.name = "ghcr";
    reg.credentials_env_prefix = "RECONCILE_SECRET_GHCR";
    state.registries.push_back(reg);
    Agent a;
    a.name = "bot";
    a.location = {"agents/bot.yaml", 1, 1};
    a.secret_env["OK"] = Env("RECONCILE_SECRET_DB");
    a.secret_env["FILE"] = File("api-key");
    a.secret_env["CLOUD"] = Env("AWS_SECRET_ACCESS_KEY");
    a.secret_env["REG"] = Env("RECONCILE_SECRET_GHCR_PASSWORD");
    a.secret_env["OTHER"] = Env("HOST_TOKEN");
    a.field_locations["spec.secretEnv.CLOUD.env"] = {"agents/bot.yaml", 9, 19};
    a.field_locations["spec.secretEnv.OTHER.env"] = {"agents/bot.yaml", 10, 19};
    a.field_locations["spec.secretEnv.REG.env"] = {"agents/bot.yaml", 11, 17};
    state.agents.push_back(a);
    Diagnostics d;
    CheckSecretEnvPolicy(state, {}, d);
    REQUIRE(d.size() == 3);
    d.Sort();
    CHECK(d.items()[0].ToString().rfind(
              "agents/bot.yaml:9:19: error: spec.secretEnv.CLOUD: agent 'bot': environment "
              "variable AWS_SECRET_ACCESS_KEY belongs to the engine's own credentials",
              0) == 0);
    CHECK(d.items()[1].ToString().rfind(
              "agents/bot.yaml:10:19: error: spec.secretEnv.OTHER: agent 'bot': environment "
              "variable HOST_TOKEN is not allowed",
              0) == 0);
    CHECK(Contains(d.items()[1].message, "--allow-secret-env HOST_TOKEN"));
    CHECK(d.items()[2].field == "spec.secretEnv.REG");
    CHECK(Contains(d.items()[2].message, "registry's credentialsEnvPrefix"));

    SecretEnvPolicy listed;
    listed.allowed = {"HOST_TOKEN", "AWS_SECRET_ACCESS_KEY"};
    Diagnostics d2;
    CheckSecretEnvPolicy(state, listed, d2);
    CHECK(d2.size() == 2);  // HOST_TOKEN is now allowed; the credentials never
  }

  TEST_CASE("ResolveSecrets refuses a disallowed variable even when it is set") {
    ::setenv("RECONCILE_UNLISTED_VAR", "SHOULD-NOT-BE-READ", 1);
    auto r = ResolveSecrets({{"T", Env("RECONCILE_UNLISTED_VAR")}}, "");
    CHECK_FALSE(r.ok());
    CHECK(Contains(r.status().message(), "--allow-secret-env RECONCILE_UNLISTED_VAR"));
    CHECK_FALSE(Contains(r.status().message(), "SHOULD-NOT-BE-READ"));
    SecretEnvPolicy p;
    p.allowed = {"RECONCILE_UNLISTED_VAR"};
    auto ok = ResolveSecrets({{"T", Env("RECONCILE_UNLISTED_VAR")}}, "", p);
    ::unsetenv("RECONCILE_UNLISTED_VAR");
    REQUIRE_MESSAGE(ok.ok(), ok.status().message());
    CHECK(ok->at("T") == "SHOULD-NOT-BE-READ");
  }
}

}  // namespace
}  // namespace reconcile
