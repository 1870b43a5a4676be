#!/usr/bin/env bash
# Environment overlays through the whole CLI (BENCHMARKS.md, "Several
# environments"):
#
#   bench/environments_bench.sh [BUILD_DIR]
#
# Writes one base of N agents (bench/gen.sh's tree, one file per agent) and
# three Environments dev/staging/prod over it, each patching every tenth
# agent (env, replicas); then times, per environment, `reconcile render`
# (load + merge + validate + print YAML), `reconcile validate` and
# `reconcile plan` (observes the real Docker Engine, where none of these
# agents runs, so it plans every agent as a create), and beside them the
# same commands on the plain base, so the ratio is what the overlay costs.
#
# Needs: BUILD_DIR (default build/) with program/reconcile, hyperfine, a
# Docker Engine on /var/run/docker.sock (for plan). Writes only under BENCH_OUT.
# Env: BENCH_AGENTS=1000 BENCH_RUNS=5 BENCH_OUT=bench/out/environments
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)"
reconcile="$build/program/reconcile"
n="${BENCH_AGENTS:-1000}"
runs="${BENCH_RUNS:-5}"
out="${BENCH_OUT:-$root/bench/out/environments}"

die() { echo "environments bench: $*" >&2; exit 1; }
[[ -x "$reconcile" ]] || die "build first (make build)"
command -v hyperfine >/dev/null || die "hyperfine missing (scripts/bootstrap.sh)"

rm -rf "$out"
mkdir -p "$out"
bash "$root/bench/gen.sh" "$out/gen" "$n" >/dev/null
tree="$out/tree"
mkdir -p "$tree"
mv "$out/gen/desired" "$tree/base"
for env in dev staging prod; do
  mkdir -p "$tree/envs/$env/patches"
  cat >"$tree/envs/$env/environment.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Environment
metadata: {name: $env}
spec:
  bases: [../../base]
  labels: {tier: $env}
  env: {ENVIRONMENT: $env}
YAML
  for ((i = 1; i <= n; i += 10)); do
    printf 'apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: %s}\nspec:\n  replicas: 2\n  env: {TIER: %s}\n' \
      "$(printf 'bench-a%02d' "$i")" "$env" >"$tree/envs/$env/patches/p$i.yaml"
  done
done
"$reconcile" --no-color render --path envs/staging "$tree" >/dev/null ||
  die "render failed: $("$reconcile" --no-color render --path envs/staging "$tree" 2>&1 | tail -5)"

results="$out/results.txt"
{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git -C "$root" rev-parse --short HEAD)"
  echo "agents: $n per environment, $(find "$tree" -name '*.yaml' | wc -l) files"
  echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$results"
cmds=()
names=()
for cmd in render validate plan; do
  names+=("$cmd base")
  cmds+=("$reconcile --no-color $cmd --path base $tree")
  for env in dev staging prod; do
    names+=("$cmd envs/$env")
    cmds+=("$reconcile --no-color $cmd --path envs/$env $tree")
  done
done
args=()
for i in "${!cmds[@]}"; do args+=(-n "${names[$i]}" "${cmds[$i]}"); done
hyperfine -N -i --warmup 1 --runs "$runs" --export-json "$out/hyperfine.json" "${args[@]}" \
  >"$out/hyperfine.txt" 2>&1 || die "hyperfine failed: $(tail -5 "$out/hyperfine.txt")"
python3 - "$out/hyperfine.json" >>"$results" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))["results"]
by = {r["command"]: r for r in rows}
for r in rows:
    cmd, where = r["command"].split(" ", 1)
    base = by[cmd + " base"]["median"]
    print(f"{r['command']}: median {r['median']*1000:.0f} ms (min {r['min']*1000:.0f}), x{r['median']/base:.2f} of the plain base")
PY
cat "$results"
