#!/usr/bin/env bash
# Drift seen at once (BENCHMARKS.md, "Drift seen at once"):
#
#   bench/drift_events_bench.sh [BUILD_DIR]
#
#   1. --watch-events (the default), --drift-interval 1h: BENCH_RUNS times,
#      the agent's container is stopped through the Engine API (as `docker
#      stop -t 1`); times from just before the stop call to the status
#      showing a drift pass started by the event (driftWatch.eventPasses),
#      and to the agent answering HTTP again (healed).
#   2. the same with --watch-events=false --drift-interval 30s (the scan
#      alone), BENCH_SCAN_RUNS times.
#   3. the container's own start: a stopped hello container started through
#      the Engine API until its /health answers (what a heal cannot beat).
#   4. cost of the stream on a no-op pass: --drift-interval 1s for
#      BENCH_NOOP_S seconds, watch on and off: mean drift pass duration
#      (reconcile_pass_duration_seconds), controller CPU per pass
#      (utime+stime of /proc/PID/stat), and the events the no-op passes
#      caused (reconcile_drift_events_total: must stay 0, no spin).
#
# Needs: BUILD_DIR (default build/) with program/reconcile, a Docker Engine
# on /var/run/docker.sock, git (git daemon), python3, curl. Loopback only.
# Stops only what it started (by pid); removes only its containers (name
# prefix de<4 hex>-).
#
# Env: BENCH_RUNS=10 BENCH_SCAN_RUNS=3 BENCH_START_RUNS=7 BENCH_NOOP_S=20
#      BENCH_OUT=bench/out/drift_events
# Output: bench/out/drift_events/results.txt (samples beside it).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)"
reconcile="$build/program/reconcile"
out="${BENCH_OUT:-$root/bench/out/drift_events}"
runs="${BENCH_RUNS:-10}"
scan_runs="${BENCH_SCAN_RUNS:-3}"
start_runs="${BENCH_START_RUNS:-7}"
noop_s="${BENCH_NOOP_S:-20}"
image=reconcile/hello-agent:0.1.0
sock=/var/run/docker.sock
probe="$root/bench/drift_events_probe.py"
p="de$(printf '%04x' $((RANDOM % 65536)))"
ctl_pid=""
daemon_pid=""

die() { echo "drift events bench: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }
api() { curl -fsS --unix-socket "$sock" "$@"; }

[[ -x "$reconcile" ]] || die "$reconcile not built"
[[ "$(curl -s -m 2 --unix-socket "$sock" http://d/_ping || true)" == OK ]] ||
  die "Docker Engine not answering (scripts/ensure-dockerd.sh)"
bash "$root/scripts/hello-image.sh" "$build" >/dev/null || die "no $image"

rm -rf "$out"
mkdir -p "$out"
results="$out/results.txt"
: >"$results"
say() { echo "$*" | tee -a "$results"; }

stop_ctl() {
  if [[ -n "$ctl_pid" ]]; then
    kill "$ctl_pid" 2>/dev/null || true
    wait "$ctl_pid" 2>/dev/null || true
    ctl_pid=""
  fi
}
remove_containers() {
  local ids
  ids="$(api "http://d/v1.41/containers/json?all=1" | python3 -c "
import json, sys
for c in json.load(sys.stdin):
    if any(n.startswith('/$p-') for n in c['Names']): print(c['Id'])")"
  for id in $ids; do api -X DELETE "http://d/v1.41/containers/$id?force=1" >/dev/null || true; done
}
cleanup() {
  stop_ctl
  [[ -n "$daemon_pid" ]] && kill "$daemon_pid" 2>/dev/null || true
  remove_containers
}
trap cleanup EXIT
trap 'exit 130' INT TERM

{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- . ':!bench/out' || echo ' (dirty)')"
  echo "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "docker: $(api http://d/version | python3 -c 'import json,sys; print(json.load(sys.stdin)["Version"])')"
  echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee -a "$results"

# --- the deploy repository, served by git daemon on loopback ----------------
git init -q --bare -b main "$out/origin.git"
git clone -q "$out/origin.git" "$out/clone" 2>/dev/null
git -C "$out/clone" config user.email b@example.com
git -C "$out/clone" config user.name bench
git -C "$out/clone" checkout -q -b main 2>/dev/null || true
mkdir -p "$out/clone/deploy"
cat >"$out/clone/deploy/deploy.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: local}
spec:
  provider: docker
  docker: {publishAddress: 127.0.0.1}
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $p-web}
spec:
  image: $image
  target: local
  port: 8080
  env: {GREETING: hello}
  healthCheck: {path: /health, interval: 50ms, timeout: 1s, retries: 100}
  drift: {mode: heal}
YAML
git -C "$out/clone" add -A && git -C "$out/clone" commit -qm bench &&
  git -C "$out/clone" push -q origin HEAD:main
git_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
git daemon --reuseaddr --base-path="$out" --export-all --listen=127.0.0.1 --port="$git_port" \
  --pid-file="$out/daemon.pid" --detach "$out"
for _ in $(seq 50); do [[ -s "$out/daemon.pid" ]] && break; sleep 0.1; done
daemon_pid="$(cat "$out/daemon.pid")"

start_ctl() {  # start_ctl LOG flags...
  local logf="$1"; shift
  http_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  "$reconcile" --no-color controller --repo "git://127.0.0.1:$git_port/origin.git" --branch main \
    --path deploy --state "$out/state" --listen "127.0.0.1:$http_port" --interval 1h \
    --heal-budget 1000 "$@" >"$logf" 2>&1 &
  ctl_pid=$!
  for _ in $(seq 600); do curl -fsS "http://127.0.0.1:$http_port/readyz" >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "controller not ready (log: $logf)"
}
stats() {  # stats FILE KEY: median, max, n of a JSON-lines field
  python3 - "$1" "$2" <<'PY'
import json, statistics, sys
v = [json.loads(l)[sys.argv[2]] for l in open(sys.argv[1]) if l.strip()]
print("median %.0f ms, min %.0f, max %.0f (n=%d)" % (statistics.median(v), min(v), max(v), len(v)))
PY
}

# --- 1. with the event stream --------------------------------------------------
log "1. --watch-events, --drift-interval 1h: $runs stops"
start_ctl "$out/ctl-events.log" --drift-interval 1h
: >"$out/events.jsonl"
for i in $(seq "$runs"); do
  python3 "$probe" stop --sock "$sock" --status "http://127.0.0.1:$http_port/api/v1/status" \
    --agent "$p-web" --seen event --limit 30 | tee -a "$out/events.jsonl" >&2
  sleep 1.5  # past DriftTrigger's minimum gap: each stop is a fresh burst
done
say ""
say "1. docker stop -> drift seen (event): $(stats "$out/events.jsonl" seen_ms)"
say "   docker stop -> answers again:      $(stats "$out/events.jsonl" healthy_ms)"
say "   drift passes for $runs stops: $(grep -c 'drift pass start' "$out/ctl-events.log")"
stop_ctl

# --- 2. the scan alone -------------------------------------------------------------
log "2. --watch-events=false, --drift-interval 30s: $scan_runs stops"
start_ctl "$out/ctl-scan.log" --watch-events=false --drift-interval 30s
: >"$out/scan.jsonl"
for i in $(seq "$scan_runs"); do
  python3 "$probe" stop --sock "$sock" --status "http://127.0.0.1:$http_port/api/v1/status" \
    --agent "$p-web" --seen scan --limit 90 | tee -a "$out/scan.jsonl" >&2
done
say "2. --watch-events=false --drift-interval 30s:"
say "   docker stop -> drift seen (scan):  $(stats "$out/scan.jsonl" seen_ms)"
say "   docker stop -> answers again:      $(stats "$out/scan.jsonl" healthy_ms)"
stop_ctl

# --- 3. the container's own start -------------------------------------------------
log "3. the container's own start: $start_runs runs"
cport="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cid="$(api -X POST -H 'Content-Type: application/json' "http://d/v1.41/containers/create?name=$p-start" \
  -d "{\"Image\":\"$image\",\"ExposedPorts\":{\"8080/tcp\":{}},\"HostConfig\":{\"PortBindings\":{\"8080/tcp\":[{\"HostIp\":\"127.0.0.1\",\"HostPort\":\"$cport\"}]}}}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["Id"])')"
: >"$out/start.jsonl"
for i in $(seq "$start_runs"); do
  python3 "$probe" start --sock "$sock" --id "$cid" --port "$cport" | tee -a "$out/start.jsonl" >&2
  api -X POST "http://d/v1.41/containers/$cid/stop?t=1" >/dev/null
done
say "3. container start -> /health answers: $(stats "$out/start.jsonl" ms)"

# --- 4. cost of the stream on a no-op pass ----------------------------------------
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
metric() { curl -fsS "http://127.0.0.1:$http_port/metrics" | awk -v k="$1" '$1==k {print $2}'; }
noop() {  # noop LABEL flags...: mean no-op drift pass and CPU per pass
  local label="$1"; shift
  start_ctl "$out/ctl-noop-$label.log" --drift-interval 1s "$@"
  sleep 2
  local sum0 n0 t0 ev0 sum1 n1 t1 ev1 hz
  sum0="$(metric 'reconcile_pass_duration_seconds_sum{environment="default",result="success"}')"
  n0="$(metric 'reconcile_pass_duration_seconds_count{environment="default",result="success"}')"
  ev0="$(metric 'reconcile_drift_events_total{environment="default"}')"
  t0="$(cpu_ticks "$ctl_pid")"
  sleep "$noop_s"
  sum1="$(metric 'reconcile_pass_duration_seconds_sum{environment="default",result="success"}')"
  n1="$(metric 'reconcile_pass_duration_seconds_count{environment="default",result="success"}')"
  ev1="$(metric 'reconcile_drift_events_total{environment="default"}')"
  t1="$(cpu_ticks "$ctl_pid")"
  hz="$(getconf CLK_TCK)"
  say "   $label: $(python3 -c "
n=$n1-$n0; print('%d no-op drift passes, mean %.1f ms per pass, CPU %.1f ms per pass, events caused %d' % (n, ($sum1-$sum0)/n*1000, ($t1-$t0)*1000.0/$hz/n, ${ev1:-0}-${ev0:-0}))")"
  stop_ctl
}
log "4. no-op drift passes, ${noop_s}s each, watch on and off"
say "4. no-op drift pass (--drift-interval 1s, ${noop_s}s):"
noop watch-on
noop watch-off --watch-events=false
say ""
say "results in $results"
