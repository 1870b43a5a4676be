#include "trace_builder.h"

#include <algorithm>

#include "reconcile/trace_context.h"

namespace reconcile::controller {

namespace {

using Clock = std::chrono::system_clock;

std::string AgentOf(const std::string& address) {
  auto dot = address.find('.');
  return dot == std::string::npos ? address : address.substr(dot + 1);
}

}  // namespace

const SpanData::Value* SpanData::Attribute(const std::string& key) const {
  for (const auto& [k, v] : attributes) {
    if (k == key) return &v;
  }
  return nullptr;
}

TraceBuilder::ChangeSpan* TraceBuilder::FindChange(OpenPass& pass, const std::string& address) {
  for (auto it = pass.changes.rbegin(); it != pass.changes.rend(); ++it) {
    if (it->address == address) return &*it;
  }
  return nullptr;
}

std::optional<std::vector<SpanData>> TraceBuilder::Add(const ControllerEvent& e) {
  using Kind = ControllerEvent::Kind;
  if (e.kind == Kind::kRefChecked) {
    if (e.ref && e.ref->ok()) {
      auto start = e.at - std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(e.seconds));
      checks_[e.environment] = Fetch{e.ref->value(), start, e.at};
    }
    return std::nullopt;
  }
  if (e.kind == Kind::kPassStarted) {
    if (open_.size() >= kMaxOpenPasses) open_.erase(open_.begin());
    OpenPass p;
    p.pass_id = e.pass_id;
    p.environment = e.environment;
    p.start = e.at;
    p.request = e.request;
    auto check = checks_.find(e.environment);
    if (check == checks_.end()) check = checks_.find("");
    if (check != checks_.end()) {
      auto last = last_end_.find(e.environment);
      if (last == last_end_.end() || check->second.end >= last->second) p.fetch = check->second;
    }
    open_.push_back(std::move(p));
    return std::nullopt;
  }
  if (e.pass_id == 0) return std::nullopt;
  auto it = std::find_if(open_.begin(), open_.end(),
                         [&](const OpenPass& p) { return p.pass_id == e.pass_id; });
  if (it == open_.end()) return std::nullopt;
  OpenPass& pass = *it;
  if (e.kind == Kind::kPassFinished) {
    std::vector<SpanData> spans = Finish(pass, e);
    last_end_[pass.environment] = e.at;
    open_.erase(it);
    return spans;
  }
  if (e.kind != Kind::kChange) return std::nullopt;
  const Event& c = e.change;
  switch (c.type) {
    case Event::Type::kStageFinished:
      pass.stages.push_back({c.step, e.at});
      break;
    case Event::Type::kChangeStarted: {
      ChangeSpan span;
      span.address = c.address;
      span.span_id = c.span_id;
      span.action = c.action;
      span.start = e.at;
      pass.changes.push_back(std::move(span));
      break;
    }
    case Event::Type::kStepStarted:
      if (ChangeSpan* span = FindChange(pass, c.address)) span->steps.push_back({c.step, e.at});
      break;
    case Event::Type::kChangeSucceeded:
    case Event::Type::kChangeFailed:
      if (ChangeSpan* span = FindChange(pass, c.address); span != nullptr && !span->ended) {
        span->end = e.at;
        span->ended = true;
        span->result = c.type == Event::Type::kChangeSucceeded ? "succeeded" : "failed";
        if (c.type == Event::Type::kChangeFailed) span->message = c.message;
      }
      break;
    case Event::Type::kChangeSkipped: {
      ChangeSpan span;
      span.address = c.address;
      span.start = span.end = e.at;
      span.ended = true;
      span.result = "skipped";
      span.message = c.message;
      pass.changes.push_back(std::move(span));
      break;
    }
    default:
      break;
  }
  return std::nullopt;
}

std::vector<SpanData> TraceBuilder::Finish(OpenPass& pass, const ControllerEvent& finished) {
  std::vector<SpanData> out;
  TraceContext trace;
  if (pass.request) trace = pass.request->apply.trace;
  if (!trace.traced()) trace = NewTraceContext();
  const PassReport* report = finished.report.get();
  const std::string revision = finished.revision;
  auto span = [&](std::string name, std::string parent, Clock::time_point start,
                  Clock::time_point end, std::string id = "") {
    SpanData s;
    s.trace_id = trace.trace_id;
    s.span_id = id.empty() ? NewSpanId() : std::move(id);
    s.parent_span_id = std::move(parent);
    s.name = std::move(name);
    s.start = start;
    s.end = std::max(start, end);
    return s;
  };

  Clock::time_point root_start = pass.start;
  if (pass.fetch) root_start = std::min(root_start, pass.fetch->start);
  SpanData root = span("pass", "", root_start, finished.at, trace.span_id);
  root.attributes.emplace_back("reconcile.environment", pass.environment);
  root.attributes.emplace_back("vcs.ref.head.revision", revision);
  const bool drift = pass.request && pass.request->kind == PassRequest::Kind::kDrift;
  root.attributes.emplace_back("reconcile.pass.kind", std::string(drift ? "drift" : "apply"));
  if (report != nullptr) {
    root.attributes.emplace_back(
        "reconcile.result",
        std::string(report->status.ok() ? "ok" : CodeName(report->status.code())));
    root.attributes.emplace_back("reconcile.changes", std::int64_t{report->changes});
    if (report->unchanged) root.attributes.emplace_back("reconcile.unchanged", true);
    if (!report->status.ok()) {
      root.status = SpanData::StatusCode::kError;
      root.status_message = report->status.message();
    }
  }
  out.push_back(std::move(root));
  const std::string root_id = trace.span_id;

  if (pass.fetch) {
    SpanData f = span("fetch", root_id, pass.fetch->start, pass.fetch->end);
    f.attributes.emplace_back("vcs.ref.head.revision", pass.fetch->revision);
    out.push_back(std::move(f));
  }
  std::string apply_id;
  Clock::time_point from = pass.start;
  for (const Stage& st : pass.stages) {
    SpanData s = span(st.name, root_id, from, st.end);
    s.attributes.emplace_back("reconcile.stage", st.name);
    if (st.name == "apply") apply_id = s.span_id;
    from = st.end;
    out.push_back(std::move(s));
  }
  const std::string change_parent = apply_id.empty() ? root_id : apply_id;
  for (const ChangeSpan& c : pass.changes) {
    const Clock::time_point end = c.ended ? c.end : finished.at;
    SpanData s = span(c.address, change_parent, c.start, end, c.span_id);
    const std::string agent = AgentOf(c.address);
    s.attributes.emplace_back("reconcile.agent", agent);
    if (c.result != "skipped")
      s.attributes.emplace_back("reconcile.action", std::string(ActionName(c.action)));
    s.attributes.emplace_back("vcs.ref.head.revision", revision);
    if (report != nullptr && report->state) {
      auto r = report->state->resources.find(c.address);
      if (r != report->state->resources.end() && !r->second.provider.empty()) {
        s.attributes.emplace_back("reconcile.provider", r->second.provider);
      }
    }
    s.attributes.emplace_back("reconcile.result", c.result.empty() ? "unfinished" : c.result);
    if (c.result == "failed" || c.result == "skipped") {
      s.status = SpanData::StatusCode::kError;
      s.status_message = c.message;
    }
    const std::string change_id = s.span_id;
    out.push_back(std::move(s));
    for (std::size_t i = 0; i < c.steps.size(); ++i) {
      const Clock::time_point step_end = i + 1 < c.steps.size() ? c.steps[i + 1].start : end;
      SpanData st = span(c.steps[i].name, change_id, c.steps[i].start, step_end);
      st.attributes.emplace_back("reconcile.agent", agent);
      st.attributes.emplace_back("reconcile.step", c.steps[i].name);
      if (i + 1 == c.steps.size() && c.result == "failed") {
        st.status = SpanData::StatusCode::kError;
        st.status_message = c.message;
      }
      out.push_back(std::move(st));
    }
  }
  return out;
}

}  // namespace reconcile::controller
