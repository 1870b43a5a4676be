#!/usr/bin/env bash
# Controller benchmarks (BENCHMARKS.md, "Controller"), all in one run:
#
#   bench/controller_bench.sh [BUILD_DIR]        (or: make bench-controller)
#
#   1. commit → healthy by a signed GitHub webhook: a commit changing one
#      agent's env is pushed to a repo served by `git daemon` on loopback, the
#      webhook is POSTed to a running `reconcile controller` (real Docker
#      Engine, reconcile/hello-agent:0.1.0), and the clock stops when the
#      agent's endpoint (from /api/v1/status) answers with the new value.
#      Beside it, the container's own start time: Engine API create + start
#      (curl --unix-socket) until its /health answers.
#   2. the same by polling alone, --interval 1s and the default 30s; the
#      controller's JSON log says when the ref check saw the commit, so
#      latency = wait for the next check + processing.
#   3. CPU of one idle poll (ref unchanged) inside the controller, over
#      git:// and over smart HTTP with basic auth (git http-backend behind
#      lighttpd): utime+stime from /proc/PID/stat over BENCH_IDLE_S seconds
#      at --interval 200ms, divided by the ref checks counted in
#      reconcile_source_fetch_duration_seconds_count; bench/git_bench.sh
#      runs in the same run for the library-level figure.
#   4. resident memory: build/bench/reconcile_controller_rss (the real
#      Scheduler + HttpServer + Metrics, 1,000 agents, in-memory provider)
#      and the real controller with 3 agents on Docker.
#   5. one-file change in a 10,000-agent tree → its plan (and the rest of
#      the pass) with the in-memory provider.
#
# Needs: BUILD_DIR (default build/) with program/reconcile and
# bench/reconcile_controller_rss built, a Docker Engine on
# /var/run/docker.sock, git, lighttpd (tests/fixtures/git-servers.sh),
# python3, openssl, curl. All traffic goes to 127.0.0.1. Cleans up only what
# it started: its servers and controllers by pid, its containers by the name
# prefix it draws (cb<4 hex>-).
#
# Env: BENCH_WEBHOOK_RUNS=7 BENCH_POLL_RUNS=10 BENCH_SLOW_RUNS=2
#      BENCH_IDLE_S=20 BENCH_START_RUNS=7 BENCH_GIT_BENCH=1 (0 skips it)
#      BENCH_RSS_AGENTS=1000 BENCH_CHANGE_AGENTS=10000 BENCH_CHANGES=5
#      BENCH_OUT=bench/out/controller
# Output: bench/out/controller/results.txt (and samples/logs beside it).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)"
reconcile="$build/program/reconcile"
rss_bin="$build/bench/reconcile_controller_rss"
out="${BENCH_OUT:-$root/bench/out/controller}"
webhook_runs="${BENCH_WEBHOOK_RUNS:-7}"
poll_runs="${BENCH_POLL_RUNS:-10}"
slow_runs="${BENCH_SLOW_RUNS:-2}"
idle_s="${BENCH_IDLE_S:-20}"
start_runs="${BENCH_START_RUNS:-7}"
rss_agents="${BENCH_RSS_AGENTS:-1000}"
change_agents="${BENCH_CHANGE_AGENTS:-10000}"
changes="${BENCH_CHANGES:-5}"
image=reconcile/hello-agent:0.1.0
sock=/var/run/docker.sock
fixture="$root/tests/fixtures/git-servers.sh"
probe="$root/bench/controller_probe.py"
p="cb$(printf '%04x' $((RANDOM % 65536)))"  # container name prefix of this run
ctl_pid=""

die() { echo "controller bench: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }
api() { curl -fsS --unix-socket "$sock" "$@"; }
now_ns() { date +%s%N; }

[[ -x "$reconcile" ]] || die "$reconcile not built (make build)"
[[ -x "$rss_bin" ]] || die "$rss_bin not built (make build)"
[[ "$(curl -s -m 2 --unix-socket "$sock" http://d/_ping || true)" == OK ]] ||
  die "Docker Engine not answering (scripts/ensure-dockerd.sh)"
bash "$root/scripts/hello-image.sh" "$build" >/dev/null || die "no $image"

rm -rf "$out"
mkdir -p "$out/logs"
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
remove_containers() {  # every container whose name starts with our prefix
  local ids
  ids="$(api "http://d/v1.41/containers/json?all=1" | python3 -c "
import json, sys
for c in json.load(sys.stdin):
    if any(n.startswith('/$p-') for n in c['Names']): print(c['Id'])")"
  for id in $ids; do api -X DELETE "http://d/v1.41/containers/$id?force=1" >/dev/null || true; done
}
cleanup() {
  stop_ctl
  remove_containers
  bash "$fixture" stop "$out/servers" >/dev/null 2>&1 || true
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

# --- git servers and the deploy repository ----------------------------------
bash "$fixture" start "$out/servers" >/dev/null
# shellcheck disable=SC1091
source "$out/servers/servers.env"
for r in deploy rss big; do bash "$fixture" repo "$out/servers" "$r"; done
clone="$out/clone"
git clone -q "$GIT_REPOS/deploy.git" "$clone" 2>/dev/null
git -C "$clone" config user.email b@example.com
git -C "$clone" config user.name bench
git -C "$clone" checkout -q -b main 2>/dev/null || true
printf 'bench-%s\n' "$(openssl rand -hex 16)" >"$out/hook.secret"

tree() {  # tree GREETING: Target + 3 agents; only $p-web's env varies
  mkdir -p "$clone/deploy"
  cat >"$clone/deploy/deploy.yaml" <<YAML
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
  env: {GREETING: "$1"}
  strategy: {type: start-first}
  healthCheck: {path: /health, interval: 100ms, timeout: 1s, retries: 100}
YAML
  for side in b c; do
    cat >>"$clone/deploy/deploy.yaml" <<YAML
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $p-$side}
spec:
  image: $image
  target: local
  port: 8080
  env: {GREETING: "$side"}
  healthCheck: {path: /health, interval: 100ms, timeout: 1s, retries: 100}
YAML
  done
}
commit() {  # commit GREETING: write, commit, push; prints the commit id
  tree "$1"
  git -C "$clone" add -A && git -C "$clone" commit -qm "$1" &&
    git -C "$clone" push -q origin HEAD:main 2>/dev/null
  git -C "$clone" rev-parse HEAD
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_ctl() {  # start_ctl NAME URL [flags...]: a controller logging JSON to logs/NAME.log
  local name=$1 url=$2
  shift 2
  http_port="$(free_port)"
  ctl_log="$out/logs/$name.log"
  "$reconcile" -v --log-format json --no-color controller --repo "$url" --branch main \
    --path deploy --state "$out/state" --listen "127.0.0.1:$http_port" --drift-interval 1h \
    --webhook-secret-file "$out/hook.secret" "$@" >"$ctl_log" 2>&1 &
  ctl_pid=$!
  base="http://127.0.0.1:$http_port"
  for _ in $(seq 600); do
    curl -fsS "$base/readyz" >/dev/null 2>&1 && return 0
    kill -0 "$ctl_pid" 2>/dev/null || die "controller $name exited: $(tail -5 "$ctl_log")"
    sleep 0.1
  done
  die "controller $name not ready within 60 s: $(tail -5 "$ctl_log")"
}
wait_applied() {  # wait_applied REV: status says REV is applied
  for _ in $(seq 300); do
    curl -fsS "$base/api/v1/status" | python3 -c "
import json, sys; s = json.load(sys.stdin); sys.exit(0 if s['revision'].get('applied') == '$1' else 1)" && return 0
    sleep 0.1
  done
  die "revision $1 not applied within 30 s"
}
metric() {  # metric NAME: its value from /metrics
  curl -fsS "$base/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
proc_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# --- 1a. the container's own start time (Engine API) ------------------------
log "container start: create + start + first /health answer, $start_runs runs"
echo -e "run\tms" >"$out/start.tsv"
for i in $(seq "$start_runs"); do
  body='{"Image":"'"$image"'","Env":["GREETING=raw"],"ExposedPorts":{"8080/tcp":{}},"HostConfig":{"PortBindings":{"8080/tcp":[{"HostIp":"127.0.0.1","HostPort":""}]}}}'
  t0=$(now_ns)
  id="$(api -X POST -H 'Content-Type: application/json' -d "$body" \
    "http://d/v1.41/containers/create?name=$p-raw$i" | grep -o '"Id":"[0-9a-f]*"' | cut -d'"' -f4)"
  api -X POST "http://d/v1.41/containers/$id/start" >/dev/null
  port="$(api "http://d/v1.41/containers/$id/json" | grep -o '"HostPort":"[0-9][0-9]*"' | head -1 | cut -d'"' -f4)"
  [[ -n "$port" ]] || die "container $p-raw$i: no published port"
  until curl -fsS -m 1 "http://127.0.0.1:$port/health" >/dev/null 2>&1; do
    (( $(now_ns) - t0 < 30000000000 )) || die "container $p-raw$i: /health not answering"
    sleep 0.005
  done
  t1=$(now_ns)
  echo -e "$i\t$(( (t1 - t0) / 1000000 ))" >>"$out/start.tsv"
  api -X DELETE "http://d/v1.41/containers/$id?force=1" >/dev/null
  sleep 0.5
done
say "container_start_ms: $(python3 "$probe" stats "$out/start.tsv" ms)"

# --- 1b. commit → healthy by webhook ----------------------------------------
log "webhook: $webhook_runs runs"
rev="$(commit v0)"
start_ctl webhook "$GIT_DAEMON_URL/deploy.git" --interval 1h
wait_applied "$rev"
cols="webhook check change_started container_started removing_old change_done pass_done"
printf "run\tms\t%s\n" "$(tr " " "\t" <<<"$cols")" >"$out/webhook.tsv"
for k in $(seq "$webhook_runs"); do
  sleep 1
  rev="$(commit "w$k")"
  ms="$(python3 "$probe" probe --status "$base/api/v1/status" --agent "$p-web" --expect "w$k" \
    --webhook "$base/hooks/github" --secret-file "$out/hook.secret" --after "$rev")"
  t0="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["t0_ns"])' "$ms")"
  ms="$(python3 -c 'import json,sys; print(round(json.loads(sys.argv[1])["ms"]))' "$ms")"
  wait_applied "$rev"
  ph="$(python3 "$probe" phases --log "$ctl_log" --from-ns "$t0" --to-ns "$(now_ns)" --rev "$rev" --agent "$p-web")"
  echo -e "$k\t$ms\t$(python3 -c "
import json, sys; p = json.loads(sys.argv[1])
print('\t'.join(str(p.get(k, '-')) for k in sys.argv[2].split()))" "$ph" "$cols")" >>"$out/webhook.tsv"
done
say "webhook_commit_to_healthy_ms: $(python3 "$probe" stats "$out/webhook.tsv" ms)"
for c in $cols; do
  say "webhook_phase_${c}_ms (log, ms resolution, from just before the POST): $(python3 "$probe" stats "$out/webhook.tsv" "$c")"
done
pid_rss_kib="$(proc_kib "$ctl_pid" VmRSS)"
pid_hwm_kib="$(proc_kib "$ctl_pid" VmHWM)"
say "real_controller_3_agents_vmrss_kib: $pid_rss_kib (after $webhook_runs webhook passes)"
say "real_controller_3_agents_vmhwm_kib: $pid_hwm_kib"
stop_ctl

# --- 2. polling ---------------------------------------------------------------
poll() {  # poll NAME RUNS [controller flags]
  local name=$1 runs=$2
  shift 2
  log "polling ($name): $runs runs"
  start_ctl "$name" "$GIT_DAEMON_URL/deploy.git" "$@"
  echo -e "run\tms\twait_ms\tafter_check_ms" >"$out/$name.tsv"
  for k in $(seq "$runs"); do
    sleep "0.$(printf '%03d' $((RANDOM % 1000)))"  # a random phase against the timer
    rev="$(commit "$name$k")"
    t0=$(now_ns)
    ms="$(python3 "$probe" probe --status "$base/api/v1/status" --agent "$p-web" --expect "$name$k" \
      --t0-ns "$t0" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["ms"]))')"
    wait_applied "$rev"
    ph="$(python3 "$probe" phases --log "$ctl_log" --from-ns "$t0" --to-ns "$(now_ns)" --rev "$rev" --agent "$p-web")"
    check="$(python3 -c "import json,sys; print(json.loads(sys.argv[1]).get('check', '-'))" "$ph")"
    after="-"
    [[ "$check" != "-" ]] && after=$((ms - check))
    echo -e "$k\t$ms\t$check\t$after" >>"$out/$name.tsv"
  done
  stop_ctl
  say "${name}_commit_to_healthy_ms: $(python3 "$probe" stats "$out/$name.tsv" ms)"
  say "${name}_wait_for_check_ms: $(python3 "$probe" stats "$out/$name.tsv" wait_ms)"
  say "${name}_after_check_ms: $(python3 "$probe" stats "$out/$name.tsv" after_check_ms)"
}
poll poll1s "$poll_runs" --interval 1s
poll poll30s "$slow_runs"  # the default --interval (30s)

# --- 3. CPU of one idle poll, git:// and smart HTTP -------------------------
idle() {  # idle NAME URL [flags]
  local name=$1 url=$2
  shift 2
  log "idle polls ($name): ${idle_s}s at --interval 200ms"
  start_ctl "$name" "$url" --interval 200ms "$@"
  sleep 1
  local c0 n0 c1 n1 tck
  tck="$(getconf CLK_TCK)"
  n0="$(metric reconcile_source_fetch_duration_seconds_count)"
  c0="$(cpu_ticks "$ctl_pid")"
  sleep "$idle_s"
  c1="$(cpu_ticks "$ctl_pid")"
  n1="$(metric reconcile_source_fetch_duration_seconds_count)"
  python3 -c "
c = ($c1 - $c0) * 1000.0 / $tck; n = $n1 - $n0
print(f'${name}_idle_poll: {n:.0f} checks in ${idle_s} s, process CPU {c:.0f} ms, {c / max(n, 1):.2f} ms per check')" |
    tee -a "$results"
  say "${name}_idle_vmrss_kib: $(proc_kib "$ctl_pid" VmRSS)"
  stop_ctl
}
idle idle_git "$GIT_DAEMON_URL/deploy.git"
idle idle_http "$GIT_HTTP_URL/deploy.git" --git-username "$GIT_HTTP_USER" \
  --git-password-file "$GIT_HTTP_PASSWORD_FILE"

# --- 4. memory with 1,000 agents (in-memory provider) ------------------------
log "controller_rss: $rss_agents agents"
"$rss_bin" --mode rss --url "$GIT_DAEMON_URL/rss.git" --push "$GIT_REPOS/rss.git" \
  --agents "$rss_agents" --idle 5 --interval-ms 1000 --work "$out/work-rss" | tee "$out/rss.txt" |
  sed "s/^/rss_${rss_agents}_/" | tee -a "$results"

# --- 5. one-file change in 10,000 agents → plan --------------------------------
log "controller_rss --mode change: $change_agents agents"
"$rss_bin" --mode change --url "$GIT_DAEMON_URL/big.git" --push "$GIT_REPOS/big.git" \
  --agents "$change_agents" --changes "$changes" --work "$out/work-change" | tee "$out/change.txt" |
  sed "s/^/change_${change_agents}_/" | tee -a "$results"

remove_containers
if [[ "${BENCH_GIT_BENCH:-1}" == 1 ]]; then
  log "bench/git_bench.sh (library-level Resolve and load, 10,000 agents)"
  BENCH_BIN="$build/bench/reconcile_git_bench" BENCH_OUT="$out/git" bash "$root/bench/git_bench.sh" |
    grep -E '^(==|idle_resolve|one_file_change_ms|cold_load_ms)' | sed 's/^/git_bench: /' | tee -a "$results"
fi
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$results"
echo "(results in $results)"
