// reconcile_sigv4_tool: runs the reconcile_aws library on JSON cases read
// from stdin (one object, or an array of them) and prints one JSON result
// per case (an object, or an array in the same order). For the botocore
// cross-check, tests/scripts/sigv4_botocore_test.sh; not installed.
//
// Cases ("mode"):
//   "sign":       method, target, headers [[name, value]...], body,
//                 access_key, secret_key, session_token, region, service,
//                 time (Unix seconds), s3 (bool), content_sha256 (bool)
//                 -> canonical_request, string_to_sign, signature,
//                    authorization, headers_to_add
//   "apprunner":  endpoint, operation, input, access_key, secret_key,
//                 session_token, region, time -> method, url, headers, body
//   "endpoint":   env {..}, region, override -> url, source
//   "credentials": env {..} -> access_key_id, secret_access_key,
//                 session_token, expiration (Unix seconds or null), source;
//                 the container endpoint is fetched with a plain-HTTP GET
//                 (Beast) to loopback only.
// An error gives {"error": "<code>: <message>"}.
#include <iostream>
#include <iterator>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "aws/apprunner_wire.h"
#include "aws/credentials.h"
#include "aws/endpoint.h"
#include "aws/sigv4.h"

namespace {

using nlohmann::json;
using namespace reconcile;
using namespace reconcile::aws;

json HeadersJson(const Headers& headers) {
  json out = json::array();
  for (const auto& [k, v] : headers) out.push_back({k, v});
  return out;
}

Headers HeadersFrom(const json& j) {
  Headers out;
  for (const auto& pair : j)
    out.emplace_back(pair.at(0).get<std::string>(), pair.at(1).get<std::string>());
  return out;
}

std::chrono::system_clock::time_point TimeFrom(const json& c) {
  return std::chrono::system_clock::from_time_t(c.value("time", 0L));
}

Environment EnvFrom(const json& c) {
  Environment env;
  if (c.contains("env")) {
    for (const auto& [k, v] : c["env"].items()) env[k] = v.get<std::string>();
  }
  return env;
}

json ErrorJson(const Status& s) { return {{"error", s.ToString()}}; }

Result<std::string> LoopbackGet(const std::string& url,
                                const std::vector<std::pair<std::string, std::string>>& headers) {
  namespace asio = boost::asio;
  namespace http = boost::beast::http;
  auto parts = SplitUrl(url);
  if (!parts.ok()) return parts.status();
  if (parts->scheme != "http") return Status::Invalid("the tool fetches plain http only");
  std::string host = parts->host_header;
  std::string port = "80";
  if (size_t colon = host.rfind(':'); colon != std::string::npos && host.back() != ']') {
    port = host.substr(colon + 1);
    host = host.substr(0, colon);
  }
  if (host != "127.0.0.1") return Status::Invalid("the tool fetches from 127.0.0.1 only");
  try {
    asio::io_context io;
    asio::ip::tcp::resolver resolver(io);
    asio::ip::tcp::socket socket(io);
    asio::connect(socket, resolver.resolve(host, port));
    http::request<http::string_body> req(http::verb::get, parts->target, 11);
    req.set(http::field::host, parts->host_header);
    for (const auto& [k, v] : headers) req.set(k, v);
    http::write(socket, req);
    boost::beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(socket, buffer, res);
    if (res.result_int() / 100 != 2) {
      return Status::Unavailable("HTTP " + std::to_string(res.result_int()));
    }
    return res.body();
  } catch (const std::exception& e) {
    return Status::Unavailable(std::string("GET failed: ") + e.what());
  }
}

json RunCase(const json& c) {
  const std::string mode = c.value("mode", "sign");
  Credentials creds{c.value("access_key", ""), c.value("secret_key", ""),
                    c.value("session_token", "")};
  if (mode == "sign") {
    SignRequest req{c.value("method", ""), c.value("target", "/"),
                    HeadersFrom(c.value("headers", json::array())), c.value("body", ""),
                    c.value("payload_hash", "")};
    SigningOptions options;
    options.normalize_path = !c.value("s3", false);
    options.add_content_sha256 = c.value("content_sha256", false);
    auto sig =
        Sign(req, creds, {c.value("region", ""), c.value("service", ""), TimeFrom(c)}, options);
    if (!sig.ok()) return ErrorJson(sig.status());
    return {{"canonical_request", sig->canonical_request},
            {"string_to_sign", sig->string_to_sign},
            {"signature", sig->signature},
            {"authorization", sig->authorization},
            {"headers_to_add", HeadersJson(sig->headers_to_add)}};
  }
  if (mode == "apprunner") {
    auto req = SignedAppRunnerRequest(c.value("endpoint", ""), c.value("operation", ""),
                                      c.value("input", json::object()), creds,
                                      c.value("region", ""), TimeFrom(c));
    if (!req.ok()) return ErrorJson(req.status());
    return {{"method", req->method},
            {"url", req->url},
            {"headers", HeadersJson(req->headers)},
            {"body", req->body}};
  }
  if (mode == "endpoint") {
    auto e = AppRunnerEndpoint(EnvFrom(c), c.value("region", ""), c.value("override", ""));
    if (!e.ok()) return ErrorJson(e.status());
    return {{"url", e->url}, {"source", e->source}};
  }
  if (mode == "credentials") {
    CredentialChain chain(EnvFrom(c), LoopbackGet);
    auto r = chain.Get();
    if (!r.ok()) return ErrorJson(r.status());
    json exp = nullptr;
    if (r->expiration) exp = std::chrono::system_clock::to_time_t(*r->expiration);
    return {{"access_key_id", r->credentials.access_key_id},
            {"secret_access_key", r->credentials.secret_access_key},
            {"session_token", r->credentials.session_token},
            {"expiration", exp},
            {"source", r->source}};
  }
  return {{"error", "unknown mode " + mode}};
}

}  // namespace

int main() {
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  json doc = json::parse(input, nullptr, false);
  if (doc.is_discarded()) {
    std::cerr << "reconcile_sigv4_tool: stdin is not JSON\n";
    return 2;
  }
  try {
    if (doc.is_array()) {
      json out = json::array();
      for (const auto& c : doc) out.push_back(RunCase(c));
      std::cout << out.dump(1) << "\n";
    } else {
      std::cout << RunCase(doc).dump(1) << "\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "reconcile_sigv4_tool: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
