#!/usr/bin/env bash
# Planner and whole-CLI benchmarks (BENCHMARKS.md, "Planner and CLI"):
#
#   bench/planner_bench.sh [BUILD_DIR]        (or: make bench-planner)
#
#   1. the pure planner in process (build/bench/reconcile_planner_bench):
#      ComputePlan over 1,000 / 10,000 / 100,000 agents, nothing changed and
#      one agent changed; median and min of BENCH_RUNS runs.
#   2. the whole CLI on folder trees of the same sizes (one file per agent,
#      bench/gen.sh): `reconcile validate DIR` and `reconcile plan DIR`
#      (observes the real Docker Engine, where none of these agents runs,
#      so the plan creates them all; its text goes to /dev/null), timed by
#      hyperfine.
#
# Needs: BUILD_DIR (default build/) with program/reconcile and
# bench/reconcile_planner_bench, hyperfine, a Docker Engine on
# /var/run/docker.sock (for plan). Writes only under BENCH_OUT.
# Env: BENCH_SIZES="1000 10000 100000" BENCH_RUNS=5 BENCH_CLI_RUNS=3
#      BENCH_OUT=bench/out/planner
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)"
reconcile="$build/program/reconcile"
planner="$build/bench/reconcile_planner_bench"
sizes="${BENCH_SIZES:-1000 10000 100000}"
runs="${BENCH_RUNS:-5}"
cli_runs="${BENCH_CLI_RUNS:-3}"
out="${BENCH_OUT:-$root/bench/out/planner}"

die() { echo "planner bench: $*" >&2; exit 1; }
[[ -x "$reconcile" && -x "$planner" ]] || die "build first (make build)"
command -v hyperfine >/dev/null || die "hyperfine missing (scripts/bootstrap.sh)"

rm -rf "$out"
mkdir -p "$out"
results="$out/results.txt"
{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- . ':!bench/out' || echo ' (dirty)')"
  echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$results"

"$planner" --agents "${sizes// /,}" --runs "$runs" | tee -a "$results"

for n in $sizes; do
  BENCH_CHANGED=1 bash "$root/bench/gen.sh" "$out/tree-$n" "$n" >/dev/null
  tree="$out/tree-$n/desired"
  state="$out/state-$n"
  "$reconcile" validate "$tree" >/dev/null || die "validate $n failed"
  hyperfine --runs "$cli_runs" --warmup 1 --style basic --export-json "$out/cli-$n.json" \
    -n "validate_$n" "$reconcile validate $tree" \
    -n "plan_$n" "$reconcile --state $state plan $tree >/dev/null; test \$? -eq 2" \
    >"$out/hyperfine-$n.txt" 2>&1 || { cat "$out/hyperfine-$n.txt"; die "hyperfine $n failed"; }
  python3 - "$out/cli-$n.json" <<'PY' | tee -a "$results"
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"{r['command']}_mean_s: {r['mean']:.3f}")
    print(f"{r['command']}_min_s: {r['min']:.3f}")
PY
done
echo "results: $results"
