#!/usr/bin/env bash
# Benchmark of the Git source (bench/git_bench.cc) against real servers on
# loopback (tests/fixtures/git-servers.sh): for git:// and for http:// with
# basic auth, prints
#   idle_resolve_cpu_ms / _wall_ms   one Resolve when the ref has not moved
#   cold_load_ms                     Resolve + Load into an empty cache
#   one_file_change_ms               Resolve + Load after a commit changing
#                                    one agent (fetch + decode one file +
#                                    checks over the whole tree)
# for a tree of BENCH_AGENTS agents (one file each).
#
# Usage: bench/git_bench.sh            (after building: cmake --build build)
# Env:   BENCH_BIN=build/bench/reconcile_git_bench  BENCH_AGENTS=10000
#        BENCH_RESOLVES=20  BENCH_CHANGES=5  BENCH_OUT=bench/out/git
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${BENCH_BIN:-$root/build/bench/reconcile_git_bench}"
agents="${BENCH_AGENTS:-10000}"
resolves="${BENCH_RESOLVES:-20}"
changes="${BENCH_CHANGES:-5}"
out="${BENCH_OUT:-$root/bench/out/git}"
servers="$out/servers"
fixture="$root/tests/fixtures/git-servers.sh"

[[ -x "$bin" ]] || { echo "git bench: $bin not built (cmake --build build)" >&2; exit 1; }
mkdir -p "$out"
rm -rf "$servers"
trap 'bash "$fixture" stop "$servers"' EXIT
bash "$fixture" start "$servers" >/dev/null
# shellcheck disable=SC1091
source "$servers/servers.env"
bash "$fixture" repo "$servers" bench

run() {
  local name="$1"
  shift
  echo "== $name"
  "$bin" --push "$GIT_REPOS/bench.git" --agents "$agents" --resolves "$resolves" \
    --changes "$changes" --work "$out/work-$name" "$@" | tee "$out/$name.txt"
}

run git --url "$GIT_DAEMON_URL/bench.git"
run http --url "$GIT_HTTP_URL/bench.git" --user "$GIT_HTTP_USER" \
  --password-file "$GIT_HTTP_PASSWORD_FILE"
echo "(results in $out)"
