#!/usr/bin/env bash
# Compose benchmark (BENCHMARKS.md, "Compose import"):
#
#   bench/compose_bench.sh [BUILD_DIR] [STACK]      (or: make bench-compose)
#
# On the largest copied awesome-compose stack that this build imports (most
# services; or STACK), in the same run, alternating, BENCH_RUNS times each:
#   1. reconcile: `import compose` + `apply` from nothing (the agents, their
#      volumes and networks removed before each run), then the no-op `apply`;
#   2. docker-compose: `up -d --no-build` from nothing (`down -v` before
#      each run), then the no-op `up -d --no-build`.
# Median and min of each, in milliseconds. Both run the same stand-in image
# (tests/fixtures/compose_standin.sh) under every image name, so neither
# pulls; build services run the stand-in too.
#
# Needs: BUILD_DIR (default build/) with program/reconcile, docker-compose,
# python3 with PyYAML, a Docker Engine. Removes only what it created (a
# per-run prefix). Env: BENCH_RUNS=5, BENCH_OUT=bench/out/compose.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)"
reconcile="$build/program/reconcile"
runs="${BENCH_RUNS:-5}"
out="${BENCH_OUT:-$root/bench/out/compose}"
corpus="$root/tests/testdata/compose/awesome-compose"
helper="$root/tests/scripts/compose_compare.py"
die() { echo "compose bench: $*" >&2; exit 1; }
[[ -x "$reconcile" ]] || die "build first (make build-cli)"
command -v docker-compose >/dev/null || die "docker-compose missing (scripts/bootstrap.sh)"

work="$(mktemp -d)"
p="cb$(printf '%04x' $((RANDOM % 65536)))"
standin="$p-standin:1"
tags="$work/tags"
: >"$tags"
export HOME="$work/home"
mkdir -p "$HOME"
cleanup() {
  [[ -f "$work/cfile" ]] && (cd "$work/stack" && docker-compose -p "${p}c" -f "$(cat "$work/cfile")" \
    down -v >/dev/null 2>&1) || true
  [[ -d "$work/tree" ]] && "$reconcile" --state "$work/state" destroy "$work/tree" --auto-approve \
    --no-color >/dev/null 2>&1 || true
  docker ps -aq --filter "name=^/$p" | xargs -r docker rm -f >/dev/null 2>&1 || true
  docker volume ls -q --filter "name=$p" | grep "^$p" | xargs -r docker volume rm >/dev/null 2>&1 || true
  docker network ls -q --filter "name=$p" | xargs -r docker network rm >/dev/null 2>&1 || true
  while read -r t; do [[ -n "$t" ]] && docker rmi "$t" >/dev/null 2>&1; done <"$tags" || true
  docker rmi "$standin" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
source "$root/tests/fixtures/compose_standin.sh"
build_standin "$standin" "$work" >/dev/null || die "cannot build the stand-in image"

# The largest stack this build imports.
pick() {
  local best="" most=0 f n
  for f in "$corpus"/*/compose.yaml "$corpus"/*/docker-compose.yaml; do
    [[ -f "$f" ]] || continue
    [[ -n "${1:-}" && "$(basename "$(dirname "$f")")" != "$1" ]] && continue
    "$reconcile" import compose "$f" --dry-run >/dev/null 2>&1 || continue
    n="$(python3 "$helper" images "$f" | wc -l)"
    if ((n > most)); then best="$f" most=$n; fi
  done
  echo "$best"
}
file="$(pick "${2:-}")"
[[ -n "$file" ]] || die "no stack imports with this build"
stack="$(basename "$(dirname "$file")")"
name="$(basename "$file")"
mkdir -p "$work/stack"
cp "$file" "$work/stack/$name"
echo "$name" >"$work/cfile"
python3 "$helper" prepare "$work/stack/$name" "$work/stack"
while read -r kind what; do
  if [[ "$kind" == image ]]; then tag_standin "$standin" "$what" "$tags" || true
  else tag_standin "$standin" "${p}c_$what" "$tags" || true; fi
done < <(python3 "$helper" images "$work/stack/$name")
export POSTGRES_USER=pg POSTGRES_PW=pw POSTGRES_DB=app PGADMIN_MAIL=a@b.c PGADMIN_PW=pw TIMEZONE=UTC

ms() { echo $((($(date +%s%N) - $1) / 1000000)); }
compose() { (cd "$work/stack" && docker-compose -p "${p}c" -f "$name" "$@" >/dev/null 2>&1); }
R=("$reconcile" --state "$work/state" --secrets "$work/secrets")

# One import to learn the secrets and binds (their values: compose's).
"$reconcile" import compose "$work/stack/$name" --out "$work/probe" --project "${p}r" \
  --agent-prefix "$p-" >"$work/import.txt" 2>&1 || die "import failed: $(cat "$work/import.txt")"
allow=()
while read -r path; do allow+=(--allow-bind "$path"); done < <(grep -o -- '--allow-bind [^ ]*' "$work/import.txt" | cut -d' ' -f2)
compose up -d --no-build || die "docker-compose up failed"
python3 "$helper" snapshot compose "${p}c" "$work/compose.json"
compose down -v

declare -a r_up r_noop c_up c_noop
for ((i = 1; i <= runs; i++)); do
  rm -rf "$work/tree"
  t=$(date +%s%N)
  "$reconcile" import compose "$work/stack/$name" --out "$work/tree" --project "${p}r" \
    --agent-prefix "$p-" >/dev/null 2>&1 || die "import failed"
  python3 "$helper" debuild "$work/tree" "$standin" >/dev/null
  t_import=$(ms "$t")
  COMPOSE_FILE_NAME="$name" python3 "$helper" secrets "$work/tree" "$work/compose.json" "$work/stack" "$work/secrets"
  t=$(date +%s%N)
  "${R[@]}" "${allow[@]}" apply "$work/tree" --auto-approve --no-color >/dev/null 2>&1 || die "apply failed"
  r_up+=($((t_import + $(ms "$t"))))
  t=$(date +%s%N)
  "${R[@]}" "${allow[@]}" apply "$work/tree" --auto-approve --no-color >/dev/null 2>&1 || die "no-op apply failed"
  r_noop+=($(ms "$t"))
  "${R[@]}" "${allow[@]}" destroy "$work/tree" --auto-approve --no-color >/dev/null 2>&1 || die "destroy failed"
  docker volume ls -q --filter "name=${p}r" | xargs -r docker volume rm >/dev/null 2>&1 || true

  t=$(date +%s%N)
  compose up -d --no-build || die "docker-compose up failed"
  c_up+=($(ms "$t"))
  t=$(date +%s%N)
  compose up -d --no-build || die "no-op docker-compose up failed"
  c_noop+=($(ms "$t"))
  compose down -v
  echo "run $i: reconcile import+apply ${r_up[-1]} ms, no-op ${r_noop[-1]} ms;" \
    "docker-compose up ${c_up[-1]} ms, no-op ${c_noop[-1]} ms"
done

stats() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "median %d ms, min %d ms", a[int((NR+1)/2)], a[1]}'; }
mkdir -p "$out"
{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git -C "$root" rev-parse --short HEAD)"
  echo "stack: $stack/$name ($(python3 "$helper" images "$file" | wc -l) services), $runs runs"
  echo "docker-compose: $(docker-compose version --short 2>/dev/null), engine $(docker version -f '{{.Server.Version}}')"
  echo "reconcile import + apply:     $(stats "${r_up[@]}")"
  echo "docker-compose up -d:         $(stats "${c_up[@]}")"
  echo "reconcile apply (no-op):      $(stats "${r_noop[@]}")"
  echo "docker-compose up -d (no-op): $(stats "${c_noop[@]}")"
} | tee "$out/results.txt"
