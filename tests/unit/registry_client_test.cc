// The registry v2 client against a fake registry on loopback that speaks
// the Basic and the Bearer-token challenge flows (the real docker-registry
// with htpasswd is exercised by tests/scripts/registry_build_test.sh).
#include "registry/registry_client.h"

#include <atomic>
#include <functional>
#include <mutex>
#include <thread>

#include <doctest/doctest.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

namespace reconcile::registry {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

// Answers every connection with `handler`, one at a time, until destroyed.
class FakeRegistry {
 public:
  explicit FakeRegistry(std::function<Response(const Request&)> handler)
      : handler_(std::move(handler)),
        acceptor_(io_, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeRegistry() {
    stop_ = true;
    boost::system::error_code ec;
    asio::ip::tcp::socket poke(io_);
    poke.connect(acceptor_.local_endpoint(), ec);
    thread_.join();
  }
  std::string host() const {
    return "127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
  }
  std::vector<Request> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  void Serve() {
    while (!stop_) {
      asio::ip::tcp::socket socket(io_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      if (ec || stop_) return;
      boost::beast::flat_buffer buffer;
      Request req;
      http::read(socket, buffer, req, ec);
      if (ec) continue;
      {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(req);
      }
      Response res = handler_(req);
      res.version(11);
      res.keep_alive(false);
      res.prepare_payload();
      if (req.method() == http::verb::head) res.content_length(123);  // as a registry does
      http::write(socket, res, ec);
    }
  }

  std::function<Response(const Request&)> handler_;
  asio::io_context io_;
  asio::ip::tcp::acceptor acceptor_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<Request> requests_;
};

Response Answer(http::status status, const std::string& challenge = "",
                const std::string& body = "") {
  Response r;
  r.result(status);
  if (!challenge.empty()) r.set(http::field::www_authenticate, challenge);
  r.body() = body;
  return r;
}

Registry MakeRegistry(const std::string& host) {
  Registry r;
  r.name = "private";
  r.url = host;
  r.repository = "team/web";
  r.insecure = true;
  r.credentials_env_prefix = "REG";
  return r;
}

RegistryCredentials Creds(const std::string& password) {
  return {"", "pusher", password, "REG_USERNAME and REG_PASSWORD"};
}

// "Basic cHVzaGVyOnMzY3JldA==" is pusher:s3cret.
constexpr const char* kGoodBasic = "Basic cHVzaGVyOnMzY3JldA==";

TEST_CASE("registry client: Basic challenge") {
  FakeRegistry fake([](const Request& req) {
    if (req[http::field::authorization] != kGoodBasic) {
      return Answer(http::status::unauthorized, "Basic realm=\"test\"");
    }
    if (req.target() == "/v2/team/web/manifests/present") return Answer(http::status::ok);
    return Answer(http::status::not_found);
  });
  auto client = NewRegistryClient();
  Registry reg = MakeRegistry(fake.host());

  Result<bool> present = client->HasTag(reg, "present", Creds("s3cret"));
  REQUIRE_MESSAGE(present.ok(), present.status().message());
  CHECK(*present);
  Result<bool> missing = client->HasTag(reg, "missing", Creds("s3cret"));
  REQUIRE(missing.ok());
  CHECK_FALSE(*missing);
  CHECK(fake.requests().front().method() == http::verb::head);
  CHECK(std::string(fake.requests().front()[http::field::accept])
            .find("application/vnd.docker.distribution.manifest.v2+json") != std::string::npos);

  Result<bool> wrong = client->HasTag(reg, "present", Creds("wrong-canary"));
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.status().code() == Code::kInvalid);
  CHECK(wrong.status().message() ==
        "registry 'private' (" + fake.host() +
            ") refused the credentials from REG_USERNAME and REG_PASSWORD");
  CHECK(wrong.status().message().find("wrong-canary") == std::string::npos);

  Result<bool> none = client->HasTag(reg, "present", std::nullopt);
  REQUIRE_FALSE(none.ok());
  CHECK(none.status().message().find("requires authentication") != std::string::npos);
}

TEST_CASE("registry client: Bearer token challenge") {
  std::string realm;
  FakeRegistry fake([&](const Request& req) {
    std::string target(req.target());
    if (target.rfind("/token", 0) == 0) {
      if (req[http::field::authorization] != kGoodBasic) return Answer(http::status::unauthorized);
      if (target.find("service=fake-registry") == std::string::npos ||
          target.find("scope=repository%3Ateam%2Fweb%3Apull") == std::string::npos) {
        return Answer(http::status::bad_request);
      }
      return Answer(http::status::ok, "", R"({"token":"tok-123"})");
    }
    if (req[http::field::authorization] != "Bearer tok-123") {
      return Answer(http::status::unauthorized,
                    "Bearer realm=\"" + realm +
                        "\",service=\"fake-registry\",scope=\"repository:team/web:pull\"");
    }
    return target == "/v2/team/web/manifests/v1" ? Answer(http::status::ok)
                                                 : Answer(http::status::not_found);
  });
  realm = "http://" + fake.host() + "/token";
  auto client = NewRegistryClient();
  Registry reg = MakeRegistry(fake.host());
  Result<bool> present = client->HasTag(reg, "v1", Creds("s3cret"));
  REQUIRE_MESSAGE(present.ok(), present.status().message());
  CHECK(*present);
  Result<bool> missing = client->HasTag(reg, "v2", Creds("s3cret"));
  REQUIRE(missing.ok());
  CHECK_FALSE(*missing);
  Result<bool> wrong = client->HasTag(reg, "v1", Creds("nope"));
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.status().message().find("refused the credentials from REG_USERNAME") !=
        std::string::npos);
}

TEST_CASE("registry client: unavailable, server errors and refusals") {
  FakeRegistry fake([](const Request&) { return Answer(http::status::service_unavailable); });
  auto client = NewRegistryClient();
  Result<bool> r = client->HasTag(MakeRegistry(fake.host()), "x", std::nullopt);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kUnavailable);

  Registry closed = MakeRegistry("127.0.0.1:1");
  CHECK(client->HasTag(closed, "x", std::nullopt).status().code() == Code::kUnavailable);

  Registry remote = MakeRegistry("registry.example:5000");
  Result<bool> plain = client->HasTag(remote, "x", Creds("s3cret"));
  REQUIRE_FALSE(plain.ok());
  CHECK(plain.status().message().find("only on loopback") != std::string::npos);
}

TEST_CASE("registry client: challenges parse") {
  Challenge c = ParseChallenge(
      R"(Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push")");
  CHECK(c.scheme == "bearer");
  CHECK(c.params["realm"] == "https://auth.example/token");
  CHECK(c.params["service"] == "registry.example");
  CHECK(c.params["scope"] == "repository:a/b:pull,push");
  CHECK(ParseChallenge("Basic realm=\"x\"").scheme == "basic");
  CHECK(ParseChallenge("").scheme.empty());
}

}  // namespace
}  // namespace reconcile::registry
