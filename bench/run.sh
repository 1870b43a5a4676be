#!/usr/bin/env bash
# Benchmark: reconcile vs docker-compose (v1) deploying the same N agents
# to the local Docker Engine, measured in one run.
#
# Scenarios, each side alone on the engine (the other side torn down):
#   deploy   first deploy from nothing   reconcile apply  | compose up -d
#   no-op    re-run with nothing changed reconcile apply  | compose up -d
#   change   one agent's env changed     reconcile apply  | compose up -d
# Repetitions alternate which side goes first (ABBA) so that drift in
# machine load hits both alike. Wall time from date(1) around the command,
# peak RSS from GNU time's %M (the CLI process itself; the Docker Engine's
# work is in dockerd and not counted on either side).
#
# Output: a Markdown table on stdout and in bench/out/results.md, raw
# samples in bench/out/samples.tsv, command logs in bench/out/logs/.
#
# Env:
#   RECONCILE=build/program/reconcile  BENCH_IMAGE=reconcile/hello-agent:0.1.0
#   BENCH_N=50  BENCH_REPS=3  BENCH_NOOP_REPS=3  BENCH_PARALLELISM=  (default of the CLI)
#   BENCH_SIDES="reconcile compose"  (one side only: BENCH_SIDES=compose)
#   BENCH_OUT=bench/out  BENCH_KEEP=1 (leave the last deployment running)
#   BENCH_REPORT_ONLY=1 (rewrite results.md from the samples.tsv of a past run)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

reconcile="${RECONCILE:-$root/build/program/reconcile}"
image="${BENCH_IMAGE:-reconcile/hello-agent:0.1.0}"
n="${BENCH_N:-50}"
reps="${BENCH_REPS:-3}"
noop_reps="${BENCH_NOOP_REPS:-3}"
parallelism="${BENCH_PARALLELISM:-}"
sides="${BENCH_SIDES:-reconcile compose}"
out="${BENCH_OUT:-$root/bench/out}"
changed="${BENCH_CHANGED:-$(((n + 1) / 2))}"
project=benchc
work="$out/work"
state="$out/state"
logs="$out/logs"
samples="$out/samples.tsv"
timefile="$out/.time"

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

# --- preconditions -----------------------------------------------------------
[[ -x /usr/bin/time ]] || die "GNU time missing (/usr/bin/time): run scripts/bootstrap.sh"
[[ "$(curl -s -m 2 --unix-socket /var/run/docker.sock http://d/_ping || true)" == OK ]] ||
  die "Docker Engine not answering: run scripts/ensure-dockerd.sh"
docker image inspect "$image" >/dev/null 2>&1 || die "image $image missing: run 'make image'"
for side in $sides; do
  case "$side" in
    reconcile) [[ -x "$reconcile" ]] || die "$reconcile not built: run 'make build'" ;;
    compose) command -v docker-compose >/dev/null || die "docker-compose missing: run scripts/bootstrap.sh" ;;
    *) die "unknown side '$side' in BENCH_SIDES" ;;
  esac
done

mkdir -p "$work" "$state" "$logs"
desired="$work/desired"
compose_file="$work/compose/docker-compose.yml"
gen() { BENCH_CHANGED="$changed" bash "$root/bench/gen.sh" "$work" "$n" "$1" "$image"; }

par_args=()
[[ -n "$parallelism" ]] && par_args=(--parallelism "$parallelism")
export CI="${CI:-true}"   # plain output from both CLIs, no TTY progress
export COMPOSE_INTERACTIVE_NO_CLI=1

# --- the commands under test -------------------------------------------------
# (arrays, not functions: GNU time runs them as programs)
# --state is a global flag: given before the command.
r_apply=("$reconcile" --state "$state" apply "$desired" --auto-approve "${par_args[@]}")
c_up=(docker-compose -p "$project" -f "$compose_file" up -d)
r_destroy() { "$reconcile" --state "$state" destroy "$desired" --auto-approve; }
r_plan() { "$reconcile" --state "$state" plan "$desired"; }
c_down() { docker-compose -p "$project" -f "$compose_file" down --remove-orphans -t 2; }

# Containers of each side, by the labels each tool sets.
r_running() {
  docker ps --filter label=reconcile.dev/managed-by=reconcile --format '{{.Label "reconcile.dev/agent"}}' |
    grep -c '^bench-a' || true
}
r_all() {
  docker ps -a --filter label=reconcile.dev/managed-by=reconcile --format '{{.Label "reconcile.dev/agent"}}' |
    grep -c '^bench-a' || true
}
c_running() { docker ps -q --filter "label=com.docker.compose.project=$project" | wc -l; }
c_all() { docker ps -aq --filter "label=com.docker.compose.project=$project" | wc -l; }
# env_of SIDE AGENT: the BENCH_REV the running container of AGENT has.
env_of() {
  local filter
  if [[ $1 == reconcile ]]; then
    filter=(--filter label=reconcile.dev/managed-by=reconcile --filter "label=reconcile.dev/agent=$2")
  else
    filter=(--filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=$2")
  fi
  local ids
  ids="$(docker ps -q "${filter[@]}")"
  [[ -n "$ids" ]] || { echo none; return; }
  # shellcheck disable=SC2086
  docker inspect --format '{{range .Config.Env}}{{println .}}{{end}}' $ids |
    sed -n 's/^BENCH_REV=//p' | sort -u | paste -sd, -
}

# --- measuring ---------------------------------------------------------------
# measure SIDE SCENARIO CMD...: runs CMD once, appends a sample, fails the
# benchmark if CMD fails.
measure() {
  local side="$1" scenario="$2"
  shift 2
  local lg="$logs/$side-$scenario.log" t0 t1 rc=0
  echo "### $(date -u +%FT%TZ) $*" >>"$lg"
  t0=$(date +%s%N)
  /usr/bin/time -f %M -o "$timefile" "$@" >>"$lg" 2>&1 </dev/null || rc=$?
  t1=$(date +%s%N)
  if [[ $rc -ne 0 ]]; then
    tail -n 20 "$lg" >&2
    die "$side $scenario failed (exit $rc); log: $lg"
  fi
  local secs kib
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
  kib=$(tail -n 1 "$timefile")
  printf '%s\t%s\t%s\t%s\n' "$side" "$scenario" "$secs" "$kib" >>"$samples"
  log "$(printf '%-9s %-7s %7ss  %6.1f MiB' "$side" "$scenario" "$secs" "$(awk -v k="$kib" 'BEGIN{print k/1024}')")"
}

expect_eq() { [[ "$1" == "$2" ]] || die "$3: expected $2, got $1"; }

teardown() {
  case "$1" in
    reconcile)
      if [[ -d "$desired" ]] && [[ -x "$reconcile" ]]; then
        r_destroy >>"$logs/reconcile-teardown.log" 2>&1 </dev/null ||
          log "reconcile destroy failed (see $logs/reconcile-teardown.log)"
      fi
      if [[ "$(r_all)" -ne 0 ]]; then
        die "reconcile destroy left $(r_all) bench-a* containers behind"
      fi
      ;;
    compose)
      if [[ -f "$compose_file" ]]; then
        c_down >>"$logs/compose-teardown.log" 2>&1 </dev/null || true
      fi
      # Docker 20.10 sometimes keeps a stale endpoint on the project network
      # after `down` ("has active endpoints"): the containers are gone but
      # the network stays and the next `up` reuses it (creating one costs
      # ~0.07 s here). Recorded, and said so in the results.
      if docker network inspect "${project}_default" >/dev/null 2>&1; then
        [[ -f "$out/.compose-net-kept" ]] ||
          log "note: docker-compose down left network ${project}_default (stale endpoint); later deploys reuse it"
        touch "$out/.compose-net-kept"
      fi
      [[ "$(c_all)" -eq 0 ]] || die "docker-compose down left $(c_all) containers of project $project"
      ;;
  esac
}

# One full cycle of SIDE: deploy from nothing, no-ops, one env change, teardown.
cycle() {
  local side="$1" rep="$2"
  local apply_name=c_up
  [[ $side == reconcile ]] && apply_name=r_apply
  local -n apply="$apply_name"
  teardown "$side"
  gen 0
  measure "$side" deploy "${apply[@]}"
  if [[ $side == reconcile ]]; then
    expect_eq "$(r_running)" "$n" "reconcile running containers after deploy"
  else
    expect_eq "$(c_running)" "$n" "compose running containers after deploy"
  fi
  local k
  for ((k = 0; k < noop_reps; k++)); do
    measure "$side" noop "${apply[@]}"
  done
  if [[ $side == reconcile ]]; then
    # A no-op must really be one: plan exits 0 when there is nothing to do.
    local rc=0
    r_plan >>"$logs/reconcile-plan.log" 2>&1 </dev/null || rc=$?
    expect_eq "$rc" 0 "reconcile plan exit code after no-op apply"
  fi
  gen "$rep"
  measure "$side" change "${apply[@]}"
  expect_eq "$(env_of "$side" "$(printf 'bench-a%02d' "$changed")")" "$rep" "$side: BENCH_REV of the changed agent"
  expect_eq "$(env_of "$side" bench-a01)" 0 "$side: BENCH_REV of an unchanged agent"
  if [[ $side == reconcile ]]; then
    expect_eq "$(r_running)" "$n" "reconcile running containers after change"
  else
    expect_eq "$(c_running)" "$n" "compose running containers after change"
  fi
  if [[ -z "${BENCH_KEEP:-}" || $rep -ne $reps ]]; then
    teardown "$side"
  fi
}

cleanup() {
  local rc=$?
  if [[ -z "${BENCH_KEEP:-}" && -z "${BENCH_REPORT_ONLY:-}" ]]; then
    for side in $sides; do (teardown "$side") 2>/dev/null || true; done
  fi
  rm -f "$timefile"
  exit $rc
}
trap cleanup EXIT

# --- run and report -----------------------------------------------------------
# One function, so bash has parsed all of it before the first step runs (an
# edit of this file during a long run cannot derail it).
main() {
  if [[ -n "${BENCH_REPORT_ONLY:-}" ]]; then
    report
    return
  fi
  : >"$samples"
  rm -f "$logs"/*.log "$out/.compose-net-kept"
  gen 0
  log "N=$n agents, image $image, $reps repetitions ($noop_reps no-ops each), sides: $sides"
  for side in $sides; do teardown "$side"; done

  read -r -a side_list <<<"$sides"
  for ((rep = 1; rep <= reps; rep++)); do
    order=("${side_list[@]}")
    if ((rep % 2 == 0)) && ((${#side_list[@]} == 2)); then
      order=("${side_list[1]}" "${side_list[0]}")
    fi
    for side in "${order[@]}"; do
      cycle "$side" "$rep"
    done
  done
  report
}

# --- report ---------------------------------------------------------------------
report() {
  # agg SIDE SCENARIO FIELD(secs=3|kib=4) FUNC(median|max) -> value or empty
  agg() {
    awk -F'\t' -v s="$1" -v c="$2" '$1 == s && $2 == c { print $'"$3"' }' "$samples" | sort -g |
      awk -v f="$4" '{ v[NR] = $1 } END {
        if (NR == 0) exit
        if (f == "max") print v[NR]
        else if (NR % 2) print v[(NR + 1) / 2]
        else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
  }
  samples_of() {
    awk -F'\t' -v s="$1" -v c="$2" '$1 == s && $2 == c { print $3 }' "$samples" | paste -sd' ' -
  }
  fmt_s() { [[ -n "$1" ]] && printf '%.3f' "$1" || printf 'n/a'; }
  fmt_mib() { [[ -n "$1" ]] && awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }' || printf 'n/a'; }
  ratio() { [[ -n "$1" && -n "$2" ]] && awk -v c="$1" -v r="$2" 'BEGIN { printf "%.2f×", (r > 0 ? c / r : 0) }' || printf 'n/a'; }

  rev="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  compose_v="$(docker-compose version --short 2>/dev/null || echo n/a)"
  engine_v="$(docker version --format '{{.Server.Version}}' 2>/dev/null || echo n/a)"
  par_note="${parallelism:-CLI default}"
  bin_note="$(realpath --relative-to="$root" "$reconcile" 2>/dev/null || echo "$reconcile")"
  results="$out/results.md"
  {
    echo "## reconcile vs docker-compose: $n agents"
    echo
    echo "$(date -u +%F), commit $rev, $(nproc) cores, Docker Engine $engine_v, docker-compose $compose_v," \
      "image \`$image\`, reconcile binary \`$bin_note\` (--parallelism $par_note). Median of $reps runs" \
      "(no-op: $((reps * noop_reps)) runs); peak RSS is the largest of the CLI process over those runs."
    echo
    echo "| scenario | reconcile (s) | docker-compose (s) | compose / reconcile | reconcile peak RSS (MiB) | compose peak RSS (MiB) |"
    echo "|---|---:|---:|---:|---:|---:|"
    for sc in deploy noop change; do
      case $sc in
        deploy) label="first deploy ($n agents, from nothing)" ;;
        noop) label="no-op re-run" ;;
        change) label="one agent's env changed" ;;
      esac
      rs="$(agg reconcile "$sc" 3 median)"
      cs="$(agg compose "$sc" 3 median)"
      echo "| $label | $(fmt_s "$rs") | $(fmt_s "$cs") | $(ratio "$cs" "$rs") |" \
        "$(fmt_mib "$(agg reconcile "$sc" 4 max)") | $(fmt_mib "$(agg compose "$sc" 4 max)") |"
    done
    echo
    echo "Samples (s):"
    echo
    for side in $sides; do
      for sc in deploy noop change; do
        echo "- $side $sc: $(samples_of "$side" "$sc")"
      done
    done
    echo
    echo "Both sides: same image, env, one published 127.0.0.1 ephemeral port per agent, no health" \
      "check, run one after the other with the other side torn down. docker-compose also creates" \
      "its project network on first deploy; reconcile uses the Target's network."
    if [[ -f "$out/.compose-net-kept" ]]; then
      echo
      echo "Note: in this run \`docker-compose down\` could not remove the network ${project}_default" \
        "(Docker 20.10 kept a stale endpoint), so some compose \"first deploys\" reused it" \
        "instead of creating it (about 0.07 s on this machine)."
    fi
  } >"$results"
  echo
  cat "$results"
}

main "$@"
exit
