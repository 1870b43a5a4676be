#!/usr/bin/env bash
# Issue #11 item 2 end to end: a tree with base/ + envs/dev + envs/staging,
# both environments applied with `reconcile apply --path envs/<env>` on one
# real Docker Engine. Checks that names and labels are the environment's,
# that drift in one is not drift in the other, that pruning an agent of dev
# (it came from a second base folder only dev uses) leaves staging alone, and
# that destroying dev leaves staging's containers, volumes and networks.
#
# Needs: $RECONCILE, $SOURCE_DIR, $BUILD_DIR (set by CTest), a Docker Engine
# (started here when missing) and the hello image (built here when
# missing). Cleans up only what it created: its own trees' environments,
# destroyed through reconcile, then anything left with its agent prefix.
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}" "${BUILD_DIR:?}"
bash "$SOURCE_DIR/scripts/ensure-dockerd.sh" >/dev/null || { echo "no Docker Engine"; exit 1; }
bash "$SOURCE_DIR/scripts/hello-image.sh" "$BUILD_DIR" >/dev/null || { echo "no hello image"; exit 1; }

sock=/var/run/docker.sock
api() { curl -fsS --unix-socket "$sock" "$@"; }
work="$(mktemp -d)"
tree="$work/tree"
p="e$(printf '%04x' $((RANDOM % 65536)))"  # agent name prefix, unique per run
passed=0
failed=0

# shellcheck source=tests/scripts/lib.sh
source "$SOURCE_DIR/tests/scripts/lib.sh"
R() { "$RECONCILE" --no-color "$@"; }

cleanup() {
  for env in dev staging; do R destroy "$tree" --path "envs/$env" --auto-approve >/dev/null 2>&1 || true; done
  # Whatever is left of this run (by its prefix), removed by id.
  for id in $(api "http://d/v1.41/containers/json?all=1" | python3 -c "
import json, sys
for c in json.load(sys.stdin):
    if c.get('Labels', {}).get('reconcile.dev/agent', '').startswith('$p-'): print(c['Id'])"); do
    api -X DELETE "http://d/v1.41/containers/$id?force=1" >/dev/null 2>&1
  done
  for env in dev staging; do
    api -X DELETE "http://d/v1.41/volumes/$env--$p-data" >/dev/null 2>&1
    api -X DELETE "http://d/v1.41/networks/$env--$p-net" >/dev/null 2>&1
  done
  rm -rf "$work"
}
trap cleanup EXIT

# names ENV: the container names of this run's agents in ENV (by the
# environment label), sorted, one line.
names() {
  api "http://d/v1.41/containers/json?all=1&filters=$(python3 -c "
import json, urllib.parse
print(urllib.parse.quote(json.dumps({'label': ['reconcile.dev/environment=$1']})))")" |
    python3 -c "
import json, sys
print(' '.join(sorted(c['Names'][0].lstrip('/') for c in json.load(sys.stdin)
                      if c['Labels'].get('reconcile.dev/agent', '').startswith('$p-'))))"
}
exists() { api "http://d/v1.41/$1" >/dev/null 2>&1; }  # exists volumes/NAME | networks/NAME

agent_doc() {  # agent_doc NAME GREETING
  # Only api mounts the volume: a reclaim-delete volume shared by agents that
  # are deleted in parallel may be left behind (a known gap, not of environments).
  local volumes="[]"
  [[ "$1" == "$p-api" ]] && volumes="[{type: volume, source: $p-data, target: /data, reclaim: delete}]"
  cat <<YAML
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $1}
spec:
  image: reconcile/hello-agent:0.1.0
  target: local
  port: 8080
  env: {GREETING: "$2"}
  healthCheck: {path: /health, interval: 100ms, timeout: 1s, retries: 50}
  volumes: $volumes
  networks:
    - {name: $p-net, aliases: [$1-alias]}
YAML
}
environment_doc() {  # environment_doc NAME BASES...
  local name=$1; shift
  local bases
  bases="$(printf '%s, ' "$@")"
  cat <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Environment
metadata: {name: $name}
spec:
  bases: [${bases%, }]
  labels: {tier: $name}
  env: {LOG_LEVEL: info}
YAML
}

mkdir -p "$tree/base" "$tree/dev-extra" "$tree/envs/dev" "$tree/envs/staging"
{
  cat <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: local}
spec:
  provider: docker
  docker: {publishAddress: 127.0.0.1}
YAML
  agent_doc "$p-web" "web"
  agent_doc "$p-api" "api"
} >"$tree/base/agents.yaml"
agent_doc "$p-extra" "extra only in dev" >"$tree/dev-extra/extra.yaml"
environment_doc dev ../../base ../../dev-extra >"$tree/envs/dev/environment.yaml"
environment_doc staging ../../base >"$tree/envs/staging/environment.yaml"
cat >"$tree/envs/staging/web.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $p-web}
spec:
  env: {GREETING: "web in staging"}
YAML

# --- apply both environments on one engine ------------------------------------
expect_exit 0 "apply dev" -- R apply "$tree" --path envs/dev --auto-approve
expect_exit 0 "apply staging" -- R apply "$tree" --path envs/staging --auto-approve
want_dev="dev--$p-api dev--$p-extra dev--$p-web"
want_staging="staging--$p-api staging--$p-web"
got="$(names dev)"
if [[ "$got" == "$want_dev" ]]; then ok "dev's containers are dev--<agent>"; else bad "dev's containers: '$got', want '$want_dev'"; fi
got="$(names staging)"
if [[ "$got" == "$want_staging" ]]; then ok "staging's containers are staging--<agent>"; else bad "staging's containers: '$got', want '$want_staging'"; fi
if [[ -z "$(container_id "$p-web")" ]]; then ok "no unscoped container $p-web"; else bad "a container $p-web exists"; fi
inspect="$(api "http://d/v1.41/containers/staging--$p-web/json")"
contains "staging's web runs staging's patch" "GREETING=web in staging" "$inspect"
contains "the environment's labels reach the container" '"tier":"staging"' "$inspect"
contains "the container answers to the agent's own name on its network" "\"$p-web\"" \
  "$(python3 -c "import json,sys; print(json.dumps(json.load(sys.stdin)['NetworkSettings']['Networks']['staging--$p-net']['Aliases']))" <<<"$inspect")"
for env in dev staging; do
  if exists "volumes/$env--$p-data" && exists "networks/$env--$p-net"; then ok "$env has its own volume and network"
  else bad "$env's volume or network is missing"; fi
done
expect_exit 0 "plan of dev is empty after apply" -- R plan "$tree" --path envs/dev
expect_exit 0 "plan of staging is empty after apply" -- R plan "$tree" --path envs/staging

# --- drift in one is not drift in the other -----------------------------------
api -X POST "http://d/v1.41/containers/staging--$p-api/stop?t=1" >/dev/null
expect_exit 2 "drift in staging (its api stopped)" -- R drift "$tree" --path envs/staging
contains "staging's drift names the agent" "$p-api" "$out"
expect_exit 0 "no drift in dev" -- R drift "$tree" --path envs/dev
expect_exit 0 "apply staging heals its api" -- R apply "$tree" --path envs/staging --auto-approve
expect_exit 0 "staging converged again" -- R drift "$tree" --path envs/staging

# --- prune: dev drops its second base ------------------------------------------
environment_doc dev ../../base >"$tree/envs/dev/environment.yaml"
staging_before="$(api "http://d/v1.41/containers/json?all=1" | python3 -c "
import json, sys
print(' '.join(sorted(c['Id'] for c in json.load(sys.stdin) if c['Names'][0].startswith('/staging--$p-'))))")"
expect_exit 0 "apply dev prunes its extra agent" -- R apply "$tree" --path envs/dev --auto-approve
got="$(names dev)"
if [[ "$got" == "dev--$p-api dev--$p-web" ]]; then ok "dev--$p-extra is pruned, dev's others stay"; else bad "dev after prune: '$got'"; fi
staging_after="$(api "http://d/v1.41/containers/json?all=1" | python3 -c "
import json, sys
print(' '.join(sorted(c['Id'] for c in json.load(sys.stdin) if c['Names'][0].startswith('/staging--$p-'))))")"
if [[ -n "$staging_before" && "$staging_before" == "$staging_after" ]]; then ok "staging's containers are the same ones"
else bad "staging's containers changed: '$staging_before' -> '$staging_after'"; fi

# --- destroy one ----------------------------------------------------------------
expect_exit 0 "destroy dev" -- R destroy "$tree" --path envs/dev --auto-approve
got="$(names dev)"
if [[ -z "$got" ]]; then ok "dev has no containers left"; else bad "dev left: '$got'"; fi
if ! exists "volumes/dev--$p-data"; then ok "dev's volume (reclaim: delete) is gone"
else bad "dev's volume is left" "$(api "http://d/v1.41/volumes/dev--$p-data")"; fi
if ! exists "networks/dev--$p-net"; then ok "dev's network is gone"
else bad "dev's network is left" "$(api "http://d/v1.41/networks/dev--$p-net" | head -c 600)"; fi
got="$(names staging)"
if [[ "$got" == "$want_staging" ]]; then ok "staging's containers are untouched"; else bad "staging after destroying dev: '$got'"; fi
if exists "volumes/staging--$p-data" && exists "networks/staging--$p-net"; then ok "staging's volume and network are untouched"
else bad "staging's volume or network went with dev"; fi
expect_exit 0 "staging has no drift after dev's destroy" -- R drift "$tree" --path envs/staging
expect_exit 0 "destroy staging" -- R destroy "$tree" --path envs/staging --auto-approve
got="$(names staging)"
if [[ -z "$got" ]]; then ok "staging has no containers left"; else bad "staging left: '$got'"; fi

echo "environments docker: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
