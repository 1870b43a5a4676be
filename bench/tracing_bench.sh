#!/usr/bin/env bash
# The cost of tracing (BENCHMARKS.md, "Traces"): one controller following an
# unchanged folder with three agents on the real Docker Engine runs a drift
# pass every 200 ms (fetch, load, state, observe, plan; nothing to apply),
# for BENCH_S seconds, in three modes, alternating, BENCH_RUNS times:
#   off       no OTEL_* variables (no trace ids, no sink)
#   protobuf  OTEL_EXPORTER_OTLP_ENDPOINT to tests/scripts/otlp_collector.py
#   json      the same with OTEL_EXPORTER_OTLP_PROTOCOL=http/json
# Per run: passes (reconcile_pass_duration_seconds_count), mean pass time
# (its _sum / _count) and the controller's CPU per pass (utime + stime from
# /proc/PID/stat over the run / passes; the collector's CPU is not counted).
#
#   bench/tracing_bench.sh [BUILD_DIR]
#
# Needs a Docker Engine on /var/run/docker.sock, the hello image, protoc and
# python3-protobuf. All traffic on 127.0.0.1. Stops only its own processes
# (by pid) and removes only its own containers (prefix tb<4 hex>-).
# Env: BENCH_RUNS=3 BENCH_S=20 BENCH_OUT=bench/out/tracing
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)"
reconcile="$build/program/reconcile"
runs="${BENCH_RUNS:-3}"
secs="${BENCH_S:-20}"
out="${BENCH_OUT:-$root/bench/out/tracing}"
sock=/var/run/docker.sock
p="tb$(printf '%04x' $((RANDOM % 65536)))"
work="$(mktemp -d)"
ctl_pid=""
col_pid=""
mkdir -p "$out"
bash "$root/scripts/hello-image.sh" "$build" >/dev/null

stop() { [[ -n "$1" ]] && kill "$1" 2>/dev/null && wait "$1" 2>/dev/null; return 0; }
cleanup() {
  stop "$ctl_pid"
  stop "$col_pid"
  for id in $(curl -fsS --unix-socket "$sock" "http://d/v1.41/containers/json?all=1" | python3 -c "
import json,sys
for c in json.load(sys.stdin):
    if any(n.startswith('/$p-') for n in c['Names']): print(c['Id'])"); do
    curl -fsS --unix-socket "$sock" -X DELETE "http://d/v1.41/containers/$id?force=1" >/dev/null
  done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
metric_total() {  # metric_total NAME: the sum over its series
  curl -fsS "http://127.0.0.1:$port/metrics" | awk -v k="$1" 'index($1, k) == 1 && (substr($1, length(k) + 1, 1) == "{" || length($1) == length(k)) { s += $2 } END { printf "%.6f\n", s }'
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

mkdir -p "$work/tree"
{
  echo "apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: local}
spec:
  provider: docker
  docker: {publishAddress: 127.0.0.1}"
  for i in 1 2 3; do
    echo "---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $p-a$i}
spec:
  image: reconcile/hello-agent:0.1.0
  target: local
  port: 8080
  drift: {mode: report}"
  done
} >"$work/tree/deploy.yaml"
"$reconcile" --no-color apply "$work/tree" --state "$work/state" --auto-approve >"$out/apply.log" 2>&1

mkdir -p "$work/col"
/usr/bin/python3 "$root/tests/scripts/otlp_collector.py" "$root/third_party/otlp" "$work/col" \
  >/dev/null 2>&1 &
col_pid=$!
for _ in $(seq 100); do [[ -s "$work/col/port" ]] && break; sleep 0.1; done
col_port="$(cat "$work/col/port")"

results="$out/results.txt"
: >"$results"
hz="$(getconf CLK_TCK)"
for run in $(seq "$runs"); do
  for mode in off protobuf json; do
    vars=()
    case "$mode" in
      protobuf) vars=("OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$col_port") ;;
      json) vars=("OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$col_port" OTEL_EXPORTER_OTLP_PROTOCOL=http/json) ;;
    esac
    port="$(free_port)"
    env "${vars[@]}" "$reconcile" --no-color controller "$work/tree" --state "$work/state" \
      --listen "127.0.0.1:$port" --interval 200ms --drift-interval 200ms >"$out/ctl-$mode-$run.log" 2>&1 &
    ctl_pid=$!
    for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
    sleep 2  # past the first passes
    c0="$(metric_total reconcile_pass_duration_seconds_count)"
    s0="$(metric_total reconcile_pass_duration_seconds_sum)"
    t0="$(cpu_ticks "$ctl_pid")"
    sleep "$secs"
    c1="$(metric_total reconcile_pass_duration_seconds_count)"
    s1="$(metric_total reconcile_pass_duration_seconds_sum)"
    t1="$(cpu_ticks "$ctl_pid")"
    delivered="$(metric_total 'reconcile_event_sink_delivered_total{sink="otlp"}')"
    stop "$ctl_pid"; ctl_pid=""
    python3 - "$mode" "$run" "$c0" "$c1" "$s0" "$s1" "$t0" "$t1" "$hz" "$delivered" <<'PY' | tee -a "$results"
import sys
mode, run = sys.argv[1], sys.argv[2]
c0, c1, s0, s1, t0, t1, hz, delivered = map(float, sys.argv[3:])
n = c1 - c0
print("%-8s run %s: %4d passes, mean pass %.2f ms, CPU %.2f ms/pass, events to the otlp sink %d"
      % (mode, run, n, 1000 * (s1 - s0) / n, 1000 * (t1 - t0) / hz / n, delivered))
PY
  done
done
if [[ -s "$work/col/failures.txt" ]]; then
  echo "the collector refused requests:" >&2
  cat "$work/col/failures.txt" >&2
  exit 1
fi
echo "traces received: $(wc -l <"$work/col/requests.jsonl")" | tee -a "$results"
