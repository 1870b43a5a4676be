#!/usr/bin/env bash
# Benchmark: build and deploy of a changed agent, reconcile vs docker-compose
# (v1) `up -d --build`, on the same build contexts, in one run.
#
# N agents, each with its own build context (a Dockerfile FROM the hello
# image, COPY of a payload file of BENCH_PAYLOAD_KB). Scenarios, each side
# alone on the engine (the other side torn down):
#   change   one agent's payload changed: reconcile apply (tag check, build,
#            push to a local docker-registry with htpasswd auth, replace,
#            health wait) | docker-compose up -d --build (build, recreate)
#   no-op    nothing changed: reconcile apply (the tag is in the registry:
#            no tar, no build) | docker-compose up -d --build (sends every
#            context, builds from cache)
# Repetitions alternate which side goes first. Wall time from date(1).
# compose is capped at small N (it builds every service on each up --build).
#
# Output: a Markdown table on stdout and bench/out-build/results.md.
# Env: RECONCILE=build/program/reconcile BENCH_N="1 5" BENCH_REPS=3
#      BENCH_PAYLOAD_KB=1024 BENCH_OUT=bench/out-build
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
reconcile="${RECONCILE:-$root/build/program/reconcile}"
sizes="${BENCH_N:-1 5}"
reps="${BENCH_REPS:-3}"
payload_kb="${BENCH_PAYLOAD_KB:-1024}"
out="${BENCH_OUT:-$root/bench/out-build}"
image=reconcile/hello-agent:0.1.0
project=benchbuild
die() { echo "build bench: $*" >&2; exit 1; }
log() { echo "build bench: $*" >&2; }

for tool in docker-compose docker-registry htpasswd curl python3; do
  command -v "$tool" >/dev/null || die "$tool missing (scripts/bootstrap.sh)"
done
[[ -x "$reconcile" ]] || die "$reconcile not built: run 'make build-cli'"
docker image inspect "$image" >/dev/null 2>&1 || die "image $image missing: run 'make image'"

rm -rf "$out"
mkdir -p "$out/logs"
samples="$out/samples.tsv"
: >"$samples"
export CI=true COMPOSE_INTERACTIVE_NO_CLI=1

# --- a registry on loopback with htpasswd auth ------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
reg="127.0.0.1:$port"
htpasswd -Bbc "$out/htpasswd" bench bench-pw 2>/dev/null
cat >"$out/registry.yml" <<YAML
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $out/registry-data}}
http: {addr: $reg}
auth: {htpasswd: {realm: bench, path: $out/htpasswd}}
YAML
docker-registry serve "$out/registry.yml" >"$out/logs/registry.log" 2>&1 &
registry_pid=$!
cleanup() {
  "$reconcile" --state "$out/state" destroy "$out/tree" --auto-approve >/dev/null 2>&1 || true
  [[ -f "$out/compose/docker-compose.yml" ]] &&
    docker-compose -p "$project" -f "$out/compose/docker-compose.yml" down -t 2 >/dev/null 2>&1 || true
  { kill "$registry_pid" && wait "$registry_pid"; } 2>/dev/null || true
  docker images --format '{{.Repository}}:{{.Tag}}' | grep -E "^($reg/bench|benchbuild)" |
    xargs -r docker rmi -f >/dev/null 2>&1 || true
}
trap cleanup EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://$reg/v2/" && break; sleep 0.1; done
export BENCH_REG_USERNAME=bench BENCH_REG_PASSWORD=bench-pw

# --- the tree: N agents with build, and the same services for compose -------
gen() {  # gen N REV
  local n=$1 rev=$2 t="$out/tree"
  mkdir -p "$t"
  {
    printf 'apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: local}\n'
    printf 'spec: {provider: docker, docker: {publishAddress: 127.0.0.1}}\n'
  } >"$t/target.yaml"
  mkdir -p "$out/compose"
  echo "services:" >"$out/compose/docker-compose.yml"
  for i in $(seq "$n"); do
    local a="bb-a$i" d="$t/a$i"
    mkdir -p "$d"
    if [[ ! -f "$d/payload.bin" ]]; then
      head -c $((payload_kb * 1024)) /dev/urandom >"$d/payload.bin"
      printf 'FROM %s\nCOPY payload.bin rev.txt /data/\n' "$image" >"$d/Dockerfile"
    fi
    [[ $i -eq 1 ]] && echo "$rev" >"$d/rev.txt" || echo "0" >"$d/rev.txt"
    cat >"$t/$a.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Registry
metadata: {name: r$i}
spec: {url: "$reg", repository: bench/$a, credentialsEnvPrefix: BENCH_REG, insecure: true}
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $a}
spec:
  build: {context: a$i}
  registry: r$i
  target: local
  port: 8080
  healthCheck: {path: /health, interval: 100ms, timeout: 1s, retries: 100}
YAML
    cat >>"$out/compose/docker-compose.yml" <<YAML
  $a:
    build: ../tree/a$i
    image: benchbuild/$a:latest
    ports: ["127.0.0.1::8080"]
YAML
  done
}

measure() {  # measure SIDE SCENARIO N CMD...
  local side=$1 scenario=$2 n=$3
  shift 3
  local lg="$out/logs/$side-$scenario-$n.log" t0 t1
  t0=$(date +%s%N)
  "$@" >>"$lg" 2>&1 </dev/null || { tail -20 "$lg" >&2; die "$side $scenario failed; log $lg"; }
  t1=$(date +%s%N)
  local secs
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
  printf '%s\t%s\t%s\t%s\n' "$side" "$scenario" "$n" "$secs" >>"$samples"
  log "$(printf '%-9s %-6s N=%-3s %7ss' "$side" "$scenario" "$n" "$secs")"
}

r_apply() { "$reconcile" --state "$out/state" apply "$out/tree" --auto-approve; }
c_up() { docker-compose -p "$project" -f "$out/compose/docker-compose.yml" up -d --build; }
side_run() {  # side_run SIDE N REV: warm up at REV, then change and no-op
  local side=$1 n=$2 rev=$3
  if [[ $side == reconcile ]]; then
    gen "$n" "$rev-warm"; r_apply >>"$out/logs/warmup.log" 2>&1 || die "warm-up failed: $out/logs/warmup.log"
    gen "$n" "$rev"; measure reconcile change "$n" r_apply
    grep -q "built and pushed" "$out/logs/reconcile-change-$n.log" || die "reconcile did not build"
    measure reconcile no-op "$n" r_apply
    "$reconcile" --state "$out/state" destroy "$out/tree" --auto-approve >>"$out/logs/teardown.log" 2>&1
  else
    gen "$n" "$rev-warm"; c_up >>"$out/logs/warmup.log" 2>&1 || die "warm-up failed: $out/logs/warmup.log"
    gen "$n" "$rev"; measure compose change "$n" c_up
    measure compose no-op "$n" c_up
    docker-compose -p "$project" -f "$out/compose/docker-compose.yml" down -t 2 >>"$out/logs/teardown.log" 2>&1
  fi
}

for n in $sizes; do
  rm -rf "$out/tree" "$out/state"
  for rep in $(seq "$reps"); do
    if (( rep % 2 )); then order="reconcile compose"; else order="compose reconcile"; fi
    for side in $order; do side_run "$side" "$n" "r$n-$rep-$side"; done
  done
done

report() {
  python3 - "$samples" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    side, scen, n, secs = line.split("\t")
    rows[(int(n), scen, side)].append(float(secs))
print("| agents | scenario | reconcile (median, s) | docker-compose (median, s) | samples |")
print("|---:|---|---:|---:|---:|")
for n in sorted({k[0] for k in rows}):
    for scen in ("change", "no-op"):
        r, c = rows.get((n, scen, "reconcile"), []), rows.get((n, scen, "compose"), [])
        med = lambda v: "%.2f" % statistics.median(v) if v else "-"
        print(f"| {n} | {scen} | {med(r)} | {med(c)} | {len(r)} / {len(c)} |")
PY
}
report | tee "$out/results.md"
