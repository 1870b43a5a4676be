#!/usr/bin/env bash
# Traces over OTLP/HTTP end to end: a real controller following a git daemon
# on loopback, deploying the hello image on the real Docker Engine, reached
# through a loopback proxy that records each request's `traceparent`, and
# exporting to a strict collector (otlp_collector.py: every request parsed
# with the official protos; unknown fields, base64 ids or a malformed body
# fail the test). After a commit: one trace with spans pass, fetch, load,
# observe, plan, apply, a span per changed agent with deploy and health wait
# steps, their attributes and consistent parents; the Docker requests of a
# change carry its trace id and span id. The same over http/json, with a
# failing change (status ERROR). Unset variables: no export at all.
#
# Needs: $RECONCILE, $SOURCE_DIR, $BUILD_DIR (set by CTest), git, /usr/bin/python3
# with python3-protobuf, protoc, a Docker Engine (started here when missing)
# and the hello image. Stops only its own processes, by pid; removes only its
# own containers (by the agent names it made up).
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}" "${BUILD_DIR:?}"
bash "$SOURCE_DIR/scripts/ensure-dockerd.sh" >/dev/null || { echo "no Docker Engine"; exit 1; }
bash "$SOURCE_DIR/scripts/hello-image.sh" "$BUILD_DIR" >/dev/null || { echo "no hello image"; exit 1; }
command -v protoc >/dev/null || { echo "FAIL - protoc missing (scripts/bootstrap.sh)"; exit 1; }
/usr/bin/python3 -c 'import google.protobuf' ||
  { echo "FAIL - python3-protobuf missing (scripts/bootstrap.sh)"; exit 1; }

sock=/var/run/docker.sock
api() { curl -fsS --unix-socket "$sock" "$@"; }
work="$(mktemp -d)"
p="o$(printf '%04x' $((RANDOM % 65536)))"  # agent name prefix, unique per run
passed=0
failed=0
ctl_pid=""
collector_pid=""
proxy_pid=""
source "$SOURCE_DIR/tests/scripts/lib.sh"
source "$SOURCE_DIR/tests/scripts/controller_lib.sh"
cleanup() {
  stop_pid "$ctl_pid"
  stop_git_daemon
  for name in $(api "http://d/v1.41/containers/json?all=1" | python3 -c "
import json,sys
for c in json.load(sys.stdin):
    for n in c['Names']:
        if n.startswith('/$p-'): print(c['Id'])"); do
    api -X DELETE "http://d/v1.41/containers/$name?force=1" >/dev/null 2>&1
  done
  stop_pid "$proxy_pid"
  stop_pid "$collector_pid"
  rm -rf "$work"
}
trap cleanup EXIT
greeting_is() {  # greeting_is AGENT TEXT (a single tree: the status lists agents)
  local endpoint
  endpoint="$(status_json | python3 -c "import json,sys; s=json.load(sys.stdin); print(next((a['endpoints'][0] for a in s['agents'] if a['name']=='$1' and a['endpoints']), ''))")"
  [[ -n "$endpoint" ]] && curl -fsS "$endpoint/" | grep -qF "\"greeting\":\"$2\""
}

start_collector() {  # start_collector DIR: a fresh strict collector writing to DIR
  stop_pid "$collector_pid"
  mkdir -p "$1"
  /usr/bin/python3 "$SOURCE_DIR/tests/scripts/otlp_collector.py" "$SOURCE_DIR/third_party/otlp" "$1" \
    >>"$work/collector.log" 2>&1 &
  collector_pid=$!
  for _ in $(seq 100); do [[ -s "$1/port" ]] && break; sleep 0.1; done
  collector_port="$(cat "$1/port")"
}
tree() {  # tree GREETING [extra agent doc]
  mkdir -p "$work/clone/deploy"
  cat >"$work/clone/deploy/deploy.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: local}
spec:
  provider: docker
  docker: {host: "tcp://127.0.0.1:$proxy_port", publishAddress: 127.0.0.1}
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $p-web}
spec:
  image: reconcile/hello-agent:0.1.0
  target: local
  port: 8080
  env: {GREETING: "$1"}
  healthCheck: {path: /health, interval: 100ms, timeout: 1s, retries: 50}
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $p-side}
spec:
  image: reconcile/hello-agent:0.1.0
  target: local
  port: 8080
  env: {GREETING: "side $1"}
  healthCheck: {path: /health, interval: 100ms, timeout: 1s, retries: 50}
YAML
  [[ -n "${2:-}" ]] && printf '%s\n' "$2" >>"$work/clone/deploy/deploy.yaml"
  return 0
}
start_controller() {  # start_controller [VAR=VALUE...]: polls every second
  http_port="$(free_port)"
  env "$@" "$RECONCILE" --no-color -v controller --repo "git://127.0.0.1:$git_port/origin.git" \
    --branch main --path deploy --state "$work/state" --listen "127.0.0.1:$http_port" \
    --interval 1s --drift-interval 1h >>"$work/ctl.log" 2>&1 &
  ctl_pid=$!
  wait_for 20 "the controller answers /healthz" -- curl -fsS "http://127.0.0.1:$http_port/healthz"
}
has_trace() {  # has_trace DIR REVISION: the collector holds the pass of REVISION
  [[ -f "$1/requests.jsonl" ]] && /usr/bin/python3 - "$1/requests.jsonl" "$2" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    for s in json.loads(line)["spans"]:
        if s["name"] == "pass" and s["attributes"].get("vcs.ref.head.revision") == sys.argv[2] \
                and s["attributes"].get("reconcile.changes", 0) > 0:
            sys.exit(0)
sys.exit(1)
PY
}
# check_trace DIR REVISION CONTENT_TYPE CHANGED FAILED: prints one problem
# per line (nothing when the trace is right); the first pass of REVISION
# that changed something.
check_trace() {
  /usr/bin/python3 - "$@" "$work/proxy/requests.txt" <<'PY'
import json, sys
d, revision, ctype, changed, failing, proxy = sys.argv[1:7]
changed = changed.split(",")
failing = [a for a in failing.split(",") if a]
problems = []
requests = [json.loads(l) for l in open(d + "/requests.jsonl")]
trace = None
for r in requests:
    for s in r["spans"]:
        if s["name"] == "pass" and s["attributes"].get("vcs.ref.head.revision") == revision \
                and s["attributes"].get("reconcile.changes", 0) > 0 and trace is None:
            trace, req = s["traceId"], r
if trace is None:
    print("no trace for " + revision); sys.exit(0)
spans = [s for r in requests for s in r["spans"] if s["traceId"] == trace]
if req["contentType"] != ctype: problems.append("content type " + req["contentType"])
if len({r_i for r_i, r in enumerate(requests) if any(s["traceId"] == trace for s in r["spans"])}) != 1:
    problems.append("the trace came in more than one request")
if req["resource"].get("service.name") != "reconcile-test": problems.append("service.name %r" % req["resource"])
if req["resource"].get("deployment.environment") != "e2e": problems.append("resource attrs %r" % req["resource"])
byid = {s["spanId"]: s for s in spans}
if len(byid) != len(spans): problems.append("duplicate span ids")
roots = [s for s in spans if not s["parentSpanId"]]
if len(roots) != 1 or roots[0]["name"] != "pass": problems.append("roots: %r" % [s["name"] for s in roots])
root = roots[0]
for s in spans:
    if s["parentSpanId"] and s["parentSpanId"] not in byid:
        problems.append("span %s has a parent not in the trace" % s["name"])
    if s["start"] < root["start"] or s["end"] > root["end"]:
        problems.append("span %s is outside the pass" % s["name"])
    if s["scope"] != "reconcile": problems.append("scope " + s["scope"])
def named(n): return [s for s in spans if s["name"] == n]
for stage in ["fetch", "load", "state", "observe", "plan", "apply"]:
    st = named(stage)
    if len(st) != 1 or st[0]["parentSpanId"] != root["spanId"]:
        problems.append("stage %s: %r" % (stage, st))
apply = named("apply")[0]["spanId"] if named("apply") else None
if root["attributes"].get("reconcile.environment") != "default": problems.append("root attrs %r" % root["attributes"])
want_root = 2 if failing else 0
if root["status"]["code"] != want_root: problems.append("root status %r" % root["status"])
change_ids = {}
for agent in changed:
    c = named("agent." + agent)
    if len(c) != 1: problems.append("agent.%s spans: %d" % (agent, len(c))); continue
    c = c[0]
    change_ids[c["spanId"]] = agent
    a = c["attributes"]
    want = {"reconcile.agent": agent, "reconcile.provider": "docker",
            "vcs.ref.head.revision": revision,
            "reconcile.result": "failed" if agent in failing else "succeeded"}
    for k, v in want.items():
        if a.get(k) != v: problems.append("agent.%s %s = %r, want %r" % (agent, k, a.get(k), v))
    if a.get("reconcile.action") not in ("create", "update", "replace"):
        problems.append("agent.%s action %r" % (agent, a.get("reconcile.action")))
    if c["parentSpanId"] != apply: problems.append("agent.%s is not a child of apply" % agent)
    if (c["status"]["code"] == 2) != (agent in failing): problems.append("agent.%s status %r" % (agent, c["status"]))
    if agent in failing and "healthy" not in c["status"]["message"]:
        problems.append("agent.%s error message %r" % (agent, c["status"]["message"]))
    steps = [s for s in spans if s["parentSpanId"] == c["spanId"]]
    names = [s["name"] for s in steps]
    if "deploy" not in names or "health wait" not in names:
        problems.append("agent.%s steps %r" % (agent, names))
    for s in steps:
        if s["attributes"].get("reconcile.agent") != agent or s["start"] < c["start"] or s["end"] > c["end"]:
            problems.append("agent.%s step %s: %r" % (agent, s["name"], s))
# traceparent on the Docker requests made by each change
seen = {}
for line in open(proxy):
    method, path, tp = line.split()
    if tp == "-": continue
    parts = tp.split("-")
    if len(parts) != 4 or parts[0] != "00" or parts[3] != "01" or len(parts[1]) != 32 or len(parts[2]) != 16:
        problems.append("malformed traceparent " + tp); continue
    if parts[1] == trace:
        if parts[2] not in change_ids: problems.append("traceparent names span %s, no change of the trace" % parts[2])
        seen.setdefault(change_ids.get(parts[2]), []).append(method + " " + path.split("?")[0])
for agent in changed:
    calls = seen.get(agent, [])
    if not any(c.startswith("POST /v1.41/containers/create") for c in calls):
        problems.append("no traced containers/create for %s: %r" % (agent, calls))
print("\n".join(problems))
PY
}

# --- the Docker proxy, a collector, a repository ---------------------------
mkdir -p "$work/proxy"
/usr/bin/python3 "$SOURCE_DIR/tests/scripts/traceparent_proxy.py" "$sock" "$work/proxy" \
  >>"$work/proxy.log" 2>&1 &
proxy_pid=$!
for _ in $(seq 100); do [[ -s "$work/proxy/port" ]] && break; sleep 0.1; done
proxy_port="$(cat "$work/proxy/port")"
start_collector "$work/c1"
git_repo
tree one && commit "one"
git_serve

# --- no OTEL variables: nothing is exported, no traceparent is sent ---------
start_controller
wait_for 60 "the first pass deploys (no traces configured)" -- greeting_is "$p-web" one
stop_pid "$ctl_pid"; ctl_pid=""
if [[ ! -s "$work/c1/requests.jsonl" ]]; then ok "unset: nothing is exported"; else bad "unset: a request reached the collector"; fi
if ! awk '$3 != "-"' "$work/proxy/requests.txt" | grep -q .; then ok "unset: no traceparent on Docker requests"; else bad "unset: traceparent sent" "$(awk '$3 != "-"' "$work/proxy/requests.txt" | head)"; fi
if [[ "$(wc -l <"$work/proxy/requests.txt")" -gt 3 ]]; then ok "the Docker requests went through the proxy"; else bad "the proxy saw no requests"; fi

# --- http/protobuf: a commit changes both agents -------------------------------
common=(OTEL_SERVICE_NAME=reconcile-test "OTEL_RESOURCE_ATTRIBUTES=deployment.environment=e2e,team=a%2Cb")
start_controller "${common[@]}" "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$collector_port"
if grep -q "traces: exporting over OTLP/HTTP (protobuf)" "$work/ctl.log"; then ok "the controller says where traces go"; else bad "no trace export line" "$(tail -5 "$work/ctl.log")"; fi
tree two && commit "two"
rev="$(git -C "$work/clone" rev-parse HEAD)"
wait_for 60 "the commit is deployed" -- greeting_is "$p-web" two
wait_for 30 "the collector received the pass's trace (protobuf)" -- has_trace "$work/c1" "$rev"
problems="$(check_trace "$work/c1" "$rev" application/x-protobuf "$p-web,$p-side" "")"
if [[ -z "$problems" ]]; then ok "protobuf: spans, parents, attributes and traceparent are consistent"; else bad "protobuf trace" "$problems"; fi
if [[ ! -s "$work/c1/failures.txt" ]]; then ok "protobuf: every request parses strictly"; else bad "the collector refused requests" "$(cat "$work/c1/failures.txt")"; fi
wait_for 10 "reconcile_event_sink_delivered_total{sink=\"otlp\"} counts deliveries" -- \
  test "$(metric 'reconcile_event_sink_delivered_total{sink="otlp"}' | cut -d. -f1)" -gt 0
stop_pid "$ctl_pid"; ctl_pid=""

# --- http/json to the traces endpoint; one change fails its health check ----
start_collector "$work/c2"
start_controller "${common[@]}" "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:$collector_port/v1/traces" \
  OTEL_EXPORTER_OTLP_PROTOCOL=http/json
tree three "---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $p-bad}
spec:
  image: reconcile/hello-agent:0.1.0
  target: local
  port: 8080
  healthCheck: {path: /no-such-page, interval: 100ms, timeout: 1s, retries: 3}"
commit "three"
rev="$(git -C "$work/clone" rev-parse HEAD)"
wait_for 60 "the commit is deployed (but one agent)" -- greeting_is "$p-web" three
wait_for 30 "the collector received the pass's trace (json)" -- has_trace "$work/c2" "$rev"
problems="$(check_trace "$work/c2" "$rev" application/json "$p-web,$p-side,$p-bad" "$p-bad")"
if [[ -z "$problems" ]]; then ok "json: spans, parents, attributes, error status and traceparent are consistent"; else bad "json trace" "$problems"; fi
if [[ ! -s "$work/c2/failures.txt" ]]; then ok "json: every request parses strictly (hex ids)"; else bad "the collector refused requests" "$(cat "$work/c2/failures.txt")"; fi
stop_pid "$ctl_pid"; ctl_pid=""

# --- a refused configuration stops the controller with the variable's name --
out="$(OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:1 OTEL_EXPORTER_OTLP_PROTOCOL=grpc \
  timeout 20 "$RECONCILE" --no-color controller --repo "git://127.0.0.1:$git_port/origin.git" \
  --branch main --path deploy --state "$work/state2" --listen "127.0.0.1:$(free_port)" 2>&1)"
code=$?
if [[ $code -ne 0 && "$out" == *OTEL_EXPORTER_OTLP_PROTOCOL* ]]; then ok "grpc is refused, naming the variable"; else bad "grpc: exit $code" "$out"; fi

echo "# $passed passed, $failed failed"
[[ $failed -eq 0 ]]
