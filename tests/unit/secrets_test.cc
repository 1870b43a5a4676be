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
    ::setenv("RECONCILE_TEST_SECRET_SET", "env-value", 1);
    ::setenv("RECONCILE_TEST_SECRET_EMPTY", "", 1);
    auto r = ResolveSecrets(
        {{"A", Env("RECONCILE_TEST_SECRET_SET")}, {"B", Env("RECONCILE_TEST_SECRET_EMPTY")}}, "");
    ::unsetenv("RECONCILE_TEST_SECRET_SET");
    ::unsetenv("RECONCILE_TEST_SECRET_EMPTY");
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
    ::setenv("RECONCILE_TEST_SECRET_PRESENT", "ENV-SECRET-VALUE", 1);
    ::unsetenv("RECONCILE_TEST_SECRET_UNSET");
    auto r = ResolveSecrets({{"API_KEY", File("api-key")},
                             {"PRESENT", File("present")},
                             {"PRESENT_ENV", Env("RECONCILE_TEST_SECRET_PRESENT")},
                             {"TOKEN", Env("RECONCILE_TEST_SECRET_UNSET")}},
                            dir.path());
    ::unsetenv("RECONCILE_TEST_SECRET_PRESENT");
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kInvalid);
    const std::string& msg = r.status().message();
    CHECK_MESSAGE(Contains(msg, "2 secrets are missing"), msg);
    CHECK_MESSAGE(Contains(msg, "API_KEY: secret file 'api-key' not found in " +
                                    dir.path().string() + " (set --secrets DIR)"),
                  msg);
    CHECK_MESSAGE(
        Contains(msg, "TOKEN: environment variable RECONCILE_TEST_SECRET_UNSET is not set"), msg);
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
            "1 secret is missing: API_KEY: secret file 'api-key' is needed but no secrets "
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
}

}  // namespace
}  // namespace reconcile
