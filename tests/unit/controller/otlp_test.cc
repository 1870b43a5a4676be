// Traces: the OTEL_* environment, the span tree built from a pass's events,
// its OTLP encodings (binary protobuf parsed back with the generated
// classes; OTLP/JSON with hex ids) and the sink's answers to HTTP statuses.
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "controller/otlp_config.h"
#include "controller/otlp_exporter.h"
#include "controller/trace_builder.h"
#include "http/http_client.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "reconcile/trace_context.h"

namespace reconcile::controller {
namespace {

using std::chrono::milliseconds;
using Env = std::map<std::string, std::string>;

Result<std::optional<OtlpConfig>> FromEnv(const Env& env, std::vector<std::string>* warnings) {
  return OtlpConfigFromEnv(
      [&](const std::string& n) -> std::optional<std::string> {
        auto it = env.find(n);
        if (it == env.end()) return std::nullopt;
        return it->second;
      },
      warnings);
}

std::string Resource(const OtlpConfig& c, const std::string& key) {
  for (const auto& [k, v] : c.resource) {
    if (k == key) return v;
  }
  return "<none>";
}

TEST_CASE("otlp config: endpoints, protocol, headers, timeout") {
  std::vector<std::string> warnings;
  SUBCASE("unset: no export") {
    auto c = FromEnv({}, &warnings);
    REQUIRE(c.ok());
    CHECK_FALSE(c->has_value());
  }
  SUBCASE("base endpoint gets /v1/traces") {
    auto c = FromEnv({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"}}, &warnings);
    REQUIRE(c.ok());
    REQUIRE(c->has_value());
    CHECK((*c)->url == "http://127.0.0.1:4318/v1/traces");
    CHECK_FALSE((*c)->json);
    CHECK((*c)->timeout == milliseconds(10000));
    CHECK(Resource(**c, "service.name") == "reconcile");
  }
  SUBCASE("base endpoint with a trailing slash and a path") {
    auto c = FromEnv({{"OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318/otel/"}}, &warnings);
    REQUIRE(c.ok());
    CHECK((*c)->url == "https://collector:4318/otel/v1/traces");
  }
  SUBCASE("the traces endpoint is used as given and wins") {
    auto c = FromEnv({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"},
                      {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:2/custom"}},
                     &warnings);
    REQUIRE(c.ok());
    CHECK((*c)->url == "http://b:2/custom");
  }
  SUBCASE("json, timeout, headers (traces' win per key, percent-decoded)") {
    auto c = FromEnv({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"},
                      {"OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"},
                      {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"},
                      {"OTEL_EXPORTER_OTLP_TIMEOUT", "2500"},
                      {"OTEL_EXPORTER_OTLP_HEADERS", "api-key=one,x-other = a%20b"},
                      {"OTEL_EXPORTER_OTLP_TRACES_HEADERS", "API-Key=two"}},
                     &warnings);
    REQUIRE(c.ok());
    CHECK((*c)->json);
    CHECK((*c)->timeout == milliseconds(2500));
    REQUIRE((*c)->headers.size() == 2);
    CHECK((*c)->headers[0] == std::pair<std::string, std::string>{"api-key", "two"});
    CHECK((*c)->headers[1] == std::pair<std::string, std::string>{"x-other", "a b"});
  }
  SUBCASE("disabled") {
    for (const Env& env :
         {Env{{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"}, {"OTEL_SDK_DISABLED", "TRUE"}},
          Env{{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"}, {"OTEL_TRACES_EXPORTER", "none"}}}) {
      auto c = FromEnv(env, &warnings);
      REQUIRE(c.ok());
      CHECK_FALSE(c->has_value());
    }
  }
  SUBCASE("refused values name the variable and never a header value") {
    struct Row {
      Env env;
      std::string names;
    };
    for (const Row& row : std::vector<Row>{
             {{{"OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"}}, "OTEL_EXPORTER_OTLP_ENDPOINT"},
             {{{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"},
               {"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"}},
              "OTEL_EXPORTER_OTLP_PROTOCOL"},
             {{{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"},
               {"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "soon"}},
              "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"},
             {{{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"},
               {"OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%zzsecret"}},
              "OTEL_EXPORTER_OTLP_HEADERS"},
         }) {
      auto c = FromEnv(row.env, &warnings);
      REQUIRE_FALSE(c.ok());
      CHECK(c.status().code() == Code::kInvalid);
      CHECK(c.status().message().find(row.names) != std::string::npos);
      CHECK(c.status().message().find("secret") == std::string::npos);
    }
  }
}

TEST_CASE("otlp config: resource attributes and service name") {
  std::vector<std::string> warnings;
  SUBCASE("attributes percent-decoded; OTEL_SERVICE_NAME wins") {
    auto c = FromEnv({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"},
                      {"OTEL_RESOURCE_ATTRIBUTES",
                       "service.name=from-attrs, deployment.environment=prod,team=a%2Cb"},
                      {"OTEL_SERVICE_NAME", "gitops"}},
                     &warnings);
    REQUIRE(c.ok());
    CHECK(warnings.empty());
    REQUIRE((*c)->resource.size() == 3);
    CHECK((*c)->resource[0] == std::pair<std::string, std::string>{"service.name", "gitops"});
    CHECK(Resource(**c, "deployment.environment") == "prod");
    CHECK(Resource(**c, "team") == "a,b");
  }
  SUBCASE("service.name from the attributes when OTEL_SERVICE_NAME is unset") {
    auto c = FromEnv({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"},
                      {"OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs"}},
                     &warnings);
    REQUIRE(c.ok());
    CHECK(Resource(**c, "service.name") == "from-attrs");
  }
  SUBCASE("an invalid value is ignored whole, with a warning") {
    auto c = FromEnv({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"},
                      {"OTEL_RESOURCE_ATTRIBUTES", "team=a,broken"}},
                     &warnings);
    REQUIRE(c.ok());
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0].find("OTEL_RESOURCE_ATTRIBUTES") != std::string::npos);
    CHECK((*c)->resource.size() == 1);
    CHECK(Resource(**c, "team") == "<none>");
  }
}

TEST_CASE("trace context: ids and traceparent") {
  TraceContext t = NewTraceContext();
  CHECK(IsTraceId(t.trace_id, 32));
  CHECK(IsTraceId(t.span_id, 16));
  CHECK(NewTraceContext().trace_id != t.trace_id);
  const std::string span = NewSpanId();
  CHECK(Traceparent(t, span) == "00-" + t.trace_id + "-" + span + "-01");
  CHECK(Traceparent(TraceContext{}, span).empty());
  CHECK_FALSE(IsTraceId(std::string(32, '0'), 32));
  CHECK_FALSE(IsTraceId("ABCDEF0123456789", 16));
  CHECK_FALSE(IsTraceId("abc", 16));
}

// A pass's events as the bus carries them, at times `base + ms`.
class PassEvents {
 public:
  PassEvents() : base_(std::chrono::system_clock::now()) {
    request_ = std::make_shared<PassRequest>();
    request_->revision = "abc123";
    request_->apply.trace = NewTraceContext();
  }
  ControllerEvent RefChecked(int ms, double seconds) {
    ControllerEvent e = At(ControllerEvent::Kind::kRefChecked, ms);
    e.pass_id = 0;
    e.ref = Result<std::string>(std::string("abc123"));
    e.seconds = seconds;
    return e;
  }
  ControllerEvent Started(int ms) {
    ControllerEvent e = At(ControllerEvent::Kind::kPassStarted, ms);
    e.request = request_;
    e.revision = "abc123";
    return e;
  }
  ControllerEvent Change(int ms, Event::Type type, const std::string& address,
                         const std::string& step = "", const std::string& message = "") {
    ControllerEvent e = At(ControllerEvent::Kind::kChange, ms);
    e.change.type = type;
    e.change.address = address;
    e.change.step = step;
    e.change.message = message;
    e.change.action = Action::kCreate;
    if (type == Event::Type::kChangeStarted) e.change.span_id = NewSpanId();
    return e;
  }
  ControllerEvent Finished(int ms, Status status) {
    ControllerEvent e = At(ControllerEvent::Kind::kPassFinished, ms);
    e.request = request_;
    e.revision = "abc123";
    auto report = std::make_shared<PassReport>();
    report->status = status;
    report->changes = 2;
    auto state = std::make_shared<State>();
    ResourceState rs;
    rs.address = "agent.web";
    rs.name = "web";
    rs.provider = "docker";
    state->resources["agent.web"] = rs;
    report->state = state;
    e.report = report;
    return e;
  }
  std::chrono::system_clock::time_point T(int ms) const { return base_ + milliseconds(ms); }
  const PassRequest& request() const { return *request_; }

 private:
  ControllerEvent At(ControllerEvent::Kind kind, int ms) {
    ControllerEvent e;
    e.kind = kind;
    e.environment = "default";
    e.pass_id = 7;
    e.at = T(ms);
    e.sequence = ++sequence_;
    return e;
  }
  std::chrono::system_clock::time_point base_;
  std::shared_ptr<PassRequest> request_;
  std::uint64_t sequence_ = 0;
};

const SpanData* Named(const std::vector<SpanData>& spans, const std::string& name, int nth = 0) {
  for (const SpanData& s : spans) {
    if (s.name == name && nth-- == 0) return &s;
  }
  return nullptr;
}

std::string StringAttr(const SpanData& s, const std::string& key) {
  const SpanData::Value* v = s.Attribute(key);
  if (v == nullptr || !std::holds_alternative<std::string>(*v)) return "<none>";
  return std::get<std::string>(*v);
}

// A pass: ref check (fetch), stages, agent.web deployed and health-waited,
// agent.api failing in its deploy step, agent.db skipped.
std::vector<SpanData> SamplePass(PassEvents& p) {
  using T = Event::Type;
  TraceBuilder b;
  std::vector<ControllerEvent> events = {
      p.RefChecked(0, 0.25),
      p.Started(10),
      p.Change(20, T::kStageFinished, "", "load"),
      p.Change(25, T::kStageFinished, "", "state"),
      p.Change(40, T::kStageFinished, "", "observe"),
      p.Change(41, T::kStageFinished, "", "plan"),
      p.Change(50, T::kChangeStarted, "agent.web"),
      p.Change(51, T::kStepStarted, "agent.web", "deploy"),
      p.Change(52, T::kChangeStarted, "agent.api"),
      p.Change(53, T::kStepStarted, "agent.api", "deploy"),
      p.Change(60, T::kChangeFailed, "agent.api", "", "pull failed"),
      p.Change(61, T::kChangeSkipped, "agent.db", "", "skipped: depends on agent.api"),
      p.Change(70, T::kStepStarted, "agent.web", "health wait"),
      p.Change(90, T::kChangeSucceeded, "agent.web"),
      p.Change(95, T::kStageFinished, "", "apply"),
  };
  for (const ControllerEvent& e : events) REQUIRE_FALSE(b.Add(e).has_value());
  auto spans = b.Add(p.Finished(100, Status::Failed("agent.api: pull failed")));
  REQUIRE(spans.has_value());
  return *spans;
}

TEST_CASE("trace builder: one trace per pass, parents, times, attributes, errors") {
  PassEvents p;
  std::vector<SpanData> spans = SamplePass(p);
  const TraceContext& trace = p.request().apply.trace;
  for (const SpanData& s : spans) {
    CHECK(s.trace_id == trace.trace_id);
    CHECK(IsTraceId(s.span_id, 16));
    CHECK(s.end >= s.start);
  }
  std::set<std::string> ids;
  for (const SpanData& s : spans) ids.insert(s.span_id);
  CHECK(ids.size() == spans.size());

  const SpanData& root = spans.front();
  CHECK(root.name == "pass");
  CHECK(root.span_id == trace.span_id);
  CHECK(root.parent_span_id.empty());
  CHECK(root.start == p.T(-250));  // the fetch began before the pass
  CHECK(root.end == p.T(100));
  CHECK(root.status == SpanData::StatusCode::kError);
  CHECK(root.status_message == "agent.api: pull failed");
  CHECK(StringAttr(root, "vcs.ref.head.revision") == "abc123");
  CHECK(StringAttr(root, "reconcile.environment") == "default");
  CHECK(StringAttr(root, "reconcile.result") == "failed");

  struct Row {
    const char* name;
    int start, end;
  };
  for (const Row& row : {Row{"fetch", -250, 0}, Row{"load", 10, 20}, Row{"state", 20, 25},
                         Row{"observe", 25, 40}, Row{"plan", 40, 41}, Row{"apply", 41, 95}}) {
    CAPTURE(row.name);
    const SpanData* s = Named(spans, row.name);
    REQUIRE(s != nullptr);
    CHECK(s->parent_span_id == root.span_id);
    CHECK(s->start == p.T(row.start));
    CHECK(s->end == p.T(row.end));
  }
  const SpanData* apply = Named(spans, "apply");
  const SpanData* web = Named(spans, "agent.web");
  REQUIRE(web != nullptr);
  CHECK(web->parent_span_id == apply->span_id);
  CHECK(web->start == p.T(50));
  CHECK(web->end == p.T(90));
  CHECK(StringAttr(*web, "reconcile.agent") == "web");
  CHECK(StringAttr(*web, "reconcile.action") == "create");
  CHECK(StringAttr(*web, "reconcile.provider") == "docker");
  CHECK(StringAttr(*web, "reconcile.result") == "succeeded");
  CHECK(StringAttr(*web, "vcs.ref.head.revision") == "abc123");
  CHECK(web->status == SpanData::StatusCode::kUnset);

  const SpanData* deploy = Named(spans, "deploy", 0);
  const SpanData* health = Named(spans, "health wait");
  REQUIRE(deploy != nullptr);
  REQUIRE(health != nullptr);
  CHECK(deploy->parent_span_id == web->span_id);
  CHECK(deploy->start == p.T(51));
  CHECK(deploy->end == p.T(70));  // until the next step
  CHECK(health->parent_span_id == web->span_id);
  CHECK(health->start == p.T(70));
  CHECK(health->end == p.T(90));  // until the change's end
  CHECK(StringAttr(*health, "reconcile.step") == "health wait");

  const SpanData* api = Named(spans, "agent.api");
  REQUIRE(api != nullptr);
  CHECK(api->status == SpanData::StatusCode::kError);
  CHECK(api->status_message == "pull failed");
  CHECK(StringAttr(*api, "reconcile.result") == "failed");
  const SpanData* api_deploy = Named(spans, "deploy", 1);
  REQUIRE(api_deploy != nullptr);
  CHECK(api_deploy->parent_span_id == api->span_id);
  CHECK(api_deploy->status == SpanData::StatusCode::kError);

  const SpanData* db = Named(spans, "agent.db");
  REQUIRE(db != nullptr);
  CHECK(StringAttr(*db, "reconcile.result") == "skipped");
  CHECK(db->status == SpanData::StatusCode::kError);
}

TEST_CASE("trace builder: events of other passes and before a start are ignored") {
  PassEvents p;
  TraceBuilder b;
  ControllerEvent stray = p.Change(5, Event::Type::kStageFinished, "", "load");
  CHECK_FALSE(b.Add(stray).has_value());
  CHECK_FALSE(b.Add(p.Finished(6, Status::Ok())).has_value());  // never started
  CHECK_FALSE(b.Add(p.Started(10)).has_value());
  ControllerEvent other = p.Change(11, Event::Type::kStageFinished, "", "observe");
  other.pass_id = 8;
  CHECK_FALSE(b.Add(other).has_value());
  auto spans = b.Add(p.Finished(20, Status::Ok()));
  REQUIRE(spans.has_value());
  CHECK(spans->size() == 1);  // the root only: no fetch (no ref check), no stages
  CHECK(spans->front().status == SpanData::StatusCode::kUnset);
}

TEST_CASE("otlp encoding: protobuf parses back with the official messages") {
  PassEvents p;
  std::vector<SpanData> spans = SamplePass(p);
  auto body = EncodeOtlpProtobuf(spans, {{"service.name", "reconcile"}, {"team", "ops"}});
  REQUIRE(body.ok());
  opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest request;
  REQUIRE(request.ParseFromString(*body));
  REQUIRE(request.resource_spans_size() == 1);
  const auto& rs = request.resource_spans(0);
  REQUIRE(rs.resource().attributes_size() == 2);
  CHECK(rs.resource().attributes(0).key() == "service.name");
  CHECK(rs.resource().attributes(0).value().string_value() == "reconcile");
  REQUIRE(rs.scope_spans_size() == 1);
  REQUIRE(rs.scope_spans(0).spans_size() == static_cast<int>(spans.size()));
  const auto& root = rs.scope_spans(0).spans(0);
  CHECK(root.trace_id().size() == 16);
  CHECK(root.span_id().size() == 8);
  CHECK(root.parent_span_id().empty());
  CHECK(root.name() == "pass");
  CHECK(root.status().code() == opentelemetry::proto::trace::v1::Status::STATUS_CODE_ERROR);
  CHECK(root.end_time_unix_nano() - root.start_time_unix_nano() == 350'000'000u);
  bool changes = false;
  for (const auto& kv : root.attributes()) {
    if (kv.key() == "reconcile.changes") changes = kv.value().int_value() == 2;
  }
  CHECK(changes);
  const auto& fetch = rs.scope_spans(0).spans(1);
  CHECK(fetch.parent_span_id() == root.span_id());

  SpanData bad = spans.front();
  bad.span_id = "not hex";
  CHECK(EncodeOtlpProtobuf({bad}, {}).status().code() == Code::kInvalid);
}

TEST_CASE("otlp encoding: OTLP/JSON has hex ids, integer enums, string int64") {
  PassEvents p;
  std::vector<SpanData> spans = SamplePass(p);
  auto j = nlohmann::json::parse(EncodeOtlpJson(spans, {{"service.name", "reconcile"}}));
  const auto& rs = j.at("resourceSpans").at(0);
  CHECK(rs.at("resource").at("attributes").at(0).at("value").at("stringValue") == "reconcile");
  const auto& out = rs.at("scopeSpans").at(0).at("spans");
  REQUIRE(out.size() == spans.size());
  const auto& root = out.at(0);
  CHECK(root.at("traceId") == p.request().apply.trace.trace_id);
  CHECK(root.at("spanId") == p.request().apply.trace.span_id);
  CHECK_FALSE(root.contains("parentSpanId"));
  CHECK(root.at("kind") == 1);
  CHECK(root.at("status").at("code") == 2);
  CHECK(root.at("startTimeUnixNano").is_string());
  bool changes = false;
  for (const auto& kv : root.at("attributes")) {
    if (kv.at("key") == "reconcile.changes") changes = kv.at("value").at("intValue") == "2";
  }
  CHECK(changes);
  CHECK(out.at(1).at("parentSpanId") == root.at("spanId"));
}

// Answers with the given statuses in turn and records what it was sent.
class ScriptedClient final : public http::Client {
 public:
  std::vector<Result<http::Response>> answers;
  std::vector<http::Request> sent;
  Result<http::Response> Send(const http::Request& request, std::stop_token) override {
    sent.push_back(request);
    Result<http::Response> r = answers.front();
    answers.erase(answers.begin());
    return r;
  }
};

http::Response Answer(long status) {
  http::Response r;
  r.status = status;
  return r;
}

TEST_CASE("otlp sink: one request per pass; retryable statuses are kUnavailable") {
  auto client = std::make_shared<ScriptedClient>();
  OtlpConfig config;
  config.url = "http://127.0.0.1:1/v1/traces";
  config.headers = {{"api-key", "hush"}};
  config.resource = {{"service.name", "reconcile"}};
  OtlpSink sink(config, client);
  PassEvents p;
  client->answers = {Answer(503), Answer(200), Answer(400), Status::Unavailable("refused")};
  CHECK(sink.Deliver(p.Started(0), {}).ok());
  CHECK(client->sent.empty());
  ControllerEvent done = p.Finished(10, Status::Ok());
  Status first = sink.Deliver(done, {});
  CHECK(first.code() == Code::kUnavailable);
  CHECK(first.message().find("HTTP 503") != std::string::npos);
  CHECK(sink.Deliver(done, {}).ok());  // the bus's retry: the same request
  REQUIRE(client->sent.size() == 2);
  CHECK(client->sent[0].body == client->sent[1].body);
  CHECK(client->sent[0].method == "POST");
  CHECK(client->sent[0].url == config.url);
  bool type = false, key = false;
  for (const auto& [k, v] : client->sent[0].headers) {
    type = type || (k == "Content-Type" && v == "application/x-protobuf");
    key = key || (k == "api-key" && v == "hush");
  }
  CHECK(type);
  CHECK(key);
  opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest parsed;
  REQUIRE(parsed.ParseFromString(client->sent[0].body));
  CHECK(parsed.resource_spans(0).scope_spans(0).spans(0).name() == "pass");

  // 400: failed, not retried; a transport error: kUnavailable.
  PassEvents q;
  CHECK(sink.Deliver(q.Started(0), {}).ok());
  Status bad = sink.Deliver(q.Finished(5, Status::Ok()), {});
  CHECK(bad.code() == Code::kFailed);
  CHECK(bad.message().find("hush") == std::string::npos);
  PassEvents r;
  CHECK(sink.Deliver(r.Started(0), {}).ok());
  CHECK(sink.Deliver(r.Finished(5, Status::Ok()), {}).code() == Code::kUnavailable);
}

}  // namespace
}  // namespace reconcile::controller
