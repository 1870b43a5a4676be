#!/usr/bin/env bash
# Crash safety (issue #6 point 9): `reconcile apply` is killed with SIGKILL
# at CRASH_POINTS (default 50) points spread over a multi-agent apply
# (replaces with start-first and recreate, a dependency chain, and an agent
# built from a context and pushed to Debian's docker-registry on loopback
# with htpasswd auth: each round changes its context, so each round builds,
# pushes and replaces it), and after each kill the next apply must converge:
#   - it exits 0, and a plan right after it says "No changes." (exit 0);
#   - exactly one running container per agent, answering with the greeting
#     of that round; no other container of ours (no orphan);
#   - state loads (`status --json`), history loads (`history --json`), its
#     serials only grow, and its last entry is this round's revision.
# The kill points: an unkilled apply of the same shape is timed first, and
# round k is killed after k/(points+1) of that time.
#
# Needs: $RECONCILE, $SOURCE_DIR, $BUILD_DIR (set by CTest), a Docker Engine
# (started here when missing), the hello image (built here when missing),
# docker-registry and htpasswd. Cleans up only what it created: its agents
# (by `destroy` and by name prefix), its images (by repository), its
# registry (by pid).
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}" "${BUILD_DIR:?}"
bash "$SOURCE_DIR/scripts/ensure-dockerd.sh" >/dev/null || { echo "no Docker Engine"; exit 1; }
bash "$SOURCE_DIR/scripts/hello-image.sh" "$BUILD_DIR" >/dev/null || { echo "no hello image"; exit 1; }

points="${CRASH_POINTS:-50}"
sock=/var/run/docker.sock
api() { curl -fsS --unix-socket "$sock" "$@"; }
work="$(mktemp -d)"
tree="$work/tree"
p="k$(printf '%04x' $((RANDOM % 65536)))"  # agent name prefix, unique per run
agents=("$p-a" "$p-b" "$p-c" "$p-d" "$p-e")  # $p-e is built
passed=0
failed=0
registry_pid=""
for tool in docker-registry htpasswd; do
  command -v "$tool" >/dev/null || { echo "FAIL - $tool missing (scripts/bootstrap.sh)"; exit 1; }
done

remove_ours() {  # every container whose name starts with our prefix
  local ids
  ids="$(api "http://d/v1.41/containers/json?all=1" | python3 -c "
import json, sys
for c in json.load(sys.stdin):
    if any(n.startswith('/$p-') for n in c['Names']): print(c['Id'])")"
  for id in $ids; do api -X DELETE "http://d/v1.41/containers/$id?force=1" >/dev/null 2>&1; done
}
remove_images() {  # every image of our repository in the registry
  local ids
  ids="$(api "http://d/v1.41/images/json" | python3 -c "
import json, sys
for i in json.load(sys.stdin):
    if any('reconcile-test/$p' in t for t in (i.get('RepoTags') or [])): print(i['Id'])")"
  for id in $ids; do api -X DELETE "http://d/v1.41/images/$id?force=1" >/dev/null 2>&1; done
}
cleanup() {
  [[ -d "$tree" ]] && "$RECONCILE" destroy "$tree" --auto-approve --no-color >/dev/null 2>&1
  remove_ours
  remove_images
  if [[ -n "$registry_pid" ]]; then kill "$registry_pid" 2>/dev/null; wait "$registry_pid" 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL - $1"; [[ -n "${2:-}" ]] && sed 's/^/       /' <<<"$2" | head -40; }
R() { "$RECONCILE" --no-color "$@"; }

# --- a registry on loopback with htpasswd auth ------------------------------
export CRASHREG_USERNAME=pusher CRASHREG_PASSWORD="crash-$(openssl rand -hex 12)"
# shellcheck source=../fixtures/registry.sh
source "$SOURCE_DIR/tests/fixtures/registry.sh"
start_registry "$work" "$CRASHREG_USERNAME" "$CRASHREG_PASSWORD"
[[ "$(curl -s -o /dev/null -w '%{http_code}' "http://$reg/v2/")" == 401 ]] ||
  { bad "registry not up with auth" "$(cat "$work/registry.log")"; exit 1; }

write_tree() {  # write_tree GREETING: five agents, a -> b -> c chain, e built
  mkdir -p "$tree/app"
  printf 'FROM reconcile/hello-agent:0.1.0\nCOPY round.txt /round.txt\n' >"$tree/app/Dockerfile"
  echo "$1" >"$tree/app/round.txt"  # a new context each round: a new tag to build and push
  {
    cat <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: local}
spec:
  provider: docker
  docker: {publishAddress: 127.0.0.1}
---
apiVersion: reconcile.dev/v1alpha1
kind: Registry
metadata: {name: crash}
spec:
  url: "$reg"
  repository: reconcile-test/$p
  credentialsEnvPrefix: CRASHREG
  insecure: true
YAML
    local i=0 name strategy deps source
    for name in "${agents[@]}"; do
      strategy=recreate
      ((i % 2 == 0)) && strategy=start-first
      deps=""
      ((i == 1)) && deps="  dependsOn: [${agents[0]}]"
      ((i == 2)) && deps="  dependsOn: [${agents[1]}]"
      source="  image: reconcile/hello-agent:0.1.0"
      ((i == 4)) && source="  build: {context: app}
  registry: crash"
      cat <<YAML
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $name}
spec:
$source
  target: local
  port: 8080
  env: {GREETING: "$1", ROLE: "$name"}
  strategy: {type: $strategy}
  healthCheck: {path: /health, interval: 50ms, timeout: 1s, retries: 100}
$deps
YAML
      i=$((i + 1))
    done
  } >"$tree/agents.yaml"
}

# check ROUND GREETING: the world after a converging apply
check_world() {
  local round=$1 greeting=$2 report
  report="$(api "http://d/v1.41/containers/json?all=1" | python3 -c "
import json, sys
mine = [c for c in json.load(sys.stdin) if any(n.startswith('/$p-') for n in c['Names'])]
want = set('${agents[*]}'.split())
per = {}
for c in mine:
    agent = c['Labels'].get('reconcile.dev/agent', '')
    if c['Labels'].get('reconcile.dev/managed-by') != 'reconcile' or agent not in want:
        print('orphan', c['Names'][0], c['State'])
        continue
    per.setdefault(agent, []).append(c)
for a in sorted(want):
    cs = per.get(a, [])
    if len(cs) != 1:
        print('agent', a, 'has', len(cs), 'containers:', ' '.join(c['Names'][0] + '/' + c['State'] for c in cs))
    elif cs[0]['State'] != 'running':
        print('agent', a, 'is', cs[0]['State'])
")"
  if [[ -z "$report" ]]; then ok; else bad "round $round: containers" "$report"; fi

  local status
  if ! status="$(R status "$tree" --json 2>&1)"; then
    bad "round $round: status --json failed" "$status"
    return
  fi
  local endpoints
  endpoints="$(python3 -c "
import json, sys
s = json.load(sys.stdin)
for a in s.get('agents', []):
    print(a['name'], a.get('endpoint', ''))" <<<"$status" 2>&1)" || { bad "round $round: status is not JSON" "$status"; return; }
  local name endpoint body
  while read -r name endpoint; do
    [[ -z "$name" ]] && continue
    body="$(curl -fsS -m 2 "$endpoint/" 2>&1)"
    if grep -qF -- "$greeting" <<<"$body"; then ok; else bad "round $round: $name at '$endpoint' answers '$body', want $greeting"; fi
  done <<<"$endpoints"
  [[ "$(wc -l <<<"$endpoints")" -eq ${#agents[@]} ]] && ok || bad "round $round: status lists $(wc -l <<<"$endpoints") agents" "$endpoints"

  local history verdict
  if ! history="$(R history "$tree" --json 2>&1)"; then
    bad "round $round: history --json failed" "$history"
    return
  fi
  verdict="$(python3 -c "
import json, sys
h = json.load(sys.stdin)
entries = h if isinstance(h, list) else h.get('entries', [])
serials = [e['serial'] for e in entries]
if not entries: print('empty history')
elif serials != sorted(set(serials)): print('serials not increasing:', serials)
elif int(sys.argv[1]) > serials[-1]: print('last serial', serials[-1], 'went back from', sys.argv[1])
else: print('ok', serials[-1])
" "$last_serial" <<<"$history" 2>&1)"
  if [[ "$verdict" == ok* ]]; then
    ok
    last_serial="${verdict#ok }"
  else
    bad "round $round: history" "$verdict"
  fi
}

last_serial=0

# --- round 0: deploy, then time an unkilled apply of the same shape ---------
write_tree "g0"
out="$(R apply "$tree" --auto-approve 2>&1)" || { bad "first apply failed" "$out"; exit 1; }
# The shortest of three timed applies: an apply can run faster than the first
# one timed (warm caches), and kills past its end prove nothing.
span_ms=0
spans=()
for t in 1 2 3; do
  write_tree "g-timed$t"
  start=$(date +%s%N)
  out="$(R apply "$tree" --auto-approve 2>&1)" || { bad "timed apply failed" "$out"; exit 1; }
  ms=$((($(date +%s%N) - start) / 1000000))
  spans+=("$ms")
  if ((span_ms == 0 || ms < span_ms)); then span_ms=$ms; fi
done
echo "an apply replacing ${#agents[@]} agents takes ${spans[*]} ms; killing at $points points over 80% of ${span_ms} ms"
check_world 0 "g-timed3"

killed_mid=0
for ((k = 1; k <= points; k++)); do
  greeting="g$k"
  write_tree "$greeting"
  # Over the first 80% of the shortest timed apply: the kills must land inside it.
  delay_ms=$((span_ms * 4 * k / (5 * (points + 1))))
  "$RECONCILE" --no-color apply "$tree" --auto-approve >"$work/killed.log" 2>&1 &
  pid=$!  # reconcile itself (not a subshell), so that SIGKILL hits it
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  if kill -KILL "$pid" 2>/dev/null; then killed_mid=$((killed_mid + 1)); fi
  wait "$pid" 2>/dev/null
  out="$(R apply "$tree" --auto-approve 2>&1)"
  code=$?
  if [[ $code -ne 0 ]]; then
    bad "round $k (killed after ${delay_ms} ms): converging apply exit $code" "$out"
    continue
  fi
  ok
  out="$(R plan "$tree" 2>&1)"
  code=$?
  if [[ $code -eq 0 ]] && grep -qF "No changes." <<<"$out"; then ok; else bad "round $k: plan after converge exit $code" "$out"; fi
  check_world "$k" "$greeting"
done

# Most kills must land inside the apply, or the test proves little.
if ((killed_mid * 10 >= points * 8)); then ok; else bad "only $killed_mid of $points kills found the apply still running"; fi
echo "$killed_mid of $points applies killed while running"

echo "crash_test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
