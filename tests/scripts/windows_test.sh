#!/usr/bin/env bash
# Issue #11 item 6 through the CLI on the real Docker Engine: an Environment
# whose deny window is active now (it opens every minute and lasts 1h) makes
# `reconcile apply` plan, print why and when the next window is, exit 1 and
# create nothing; `plan` says the window would block; `--ignore-windows`
# applies and the history says so; an agent's own window holds only that
# agent; `destroy` ignores windows.
#
# Needs: $RECONCILE, $SOURCE_DIR, $BUILD_DIR (set by CTest), a Docker Engine
# (started here when missing) and the hello image (built here when missing).
# Cleans up only what it created (destroy, then its prefix's containers).
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}" "${BUILD_DIR:?}"
bash "$SOURCE_DIR/scripts/ensure-dockerd.sh" >/dev/null || { echo "no Docker Engine"; exit 1; }
bash "$SOURCE_DIR/scripts/hello-image.sh" "$BUILD_DIR" >/dev/null || { echo "no hello image"; exit 1; }

sock=/var/run/docker.sock
api() { curl -fsS --unix-socket "$sock" "$@"; }
work="$(mktemp -d)"
tree="$work/tree"
p="w$(printf '%04x' $((RANDOM % 65536)))"  # agent name prefix, unique per run
passed=0
failed=0

# shellcheck source=tests/scripts/lib.sh
source "$SOURCE_DIR/tests/scripts/lib.sh"
R() { "$RECONCILE" --no-color "$@"; }

cleanup() {
  for env in prod qa; do R destroy "$tree" --path "envs/$env" --auto-approve >/dev/null 2>&1 || true; done
  for id in $(api "http://d/v1.41/containers/json?all=1" | python3 -c "
import json, sys
for c in json.load(sys.stdin):
    if c.get('Labels', {}).get('reconcile.dev/agent', '').startswith('$p-'): print(c['Id'])"); do
    api -X DELETE "http://d/v1.41/containers/$id?force=1" >/dev/null 2>&1
  done
  rm -rf "$work"
}
trap cleanup EXIT

names() {  # names ENV: this run's container names in ENV, sorted, one line
  api "http://d/v1.41/containers/json?all=1" | python3 -c "
import json, sys
print(' '.join(sorted(c['Names'][0].lstrip('/') for c in json.load(sys.stdin)
                      if c['Labels'].get('reconcile.dev/environment') == '$1'
                      and c['Labels'].get('reconcile.dev/agent', '').startswith('$p-'))))"
}

agent_doc() {  # agent_doc NAME [WINDOWS]
  cat <<YAML
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $1}
spec:
  image: reconcile/hello-agent:0.1.0
  target: local
  port: 8080
  healthCheck: {path: /health, interval: 100ms, timeout: 1s, retries: 50}
${2:+  windows: $2}
YAML
}

mkdir -p "$tree/base" "$tree/envs/prod" "$tree/envs/qa"
{
  cat <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: local}
spec:
  provider: docker
  docker: {publishAddress: 127.0.0.1}
YAML
  agent_doc "$p-web"
} >"$tree/base/web.yaml"
agent_doc "$p-api" >"$tree/base/api.yaml"
cat >"$tree/envs/prod/environment.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Environment
metadata: {name: prod}
spec:
  bases: [../../base]
  windows:
    - {kind: deny, schedule: "* * * * *", duration: 1h, timeZone: Europe/Berlin}
YAML
# qa has no window of its own; its api agent has an active deny window.
cat >"$tree/envs/qa/environment.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Environment
metadata: {name: qa}
spec:
  bases: [../../base]
YAML
cat >"$tree/envs/qa/api.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $p-api}
spec:
  windows:
    - {kind: deny, schedule: "* * * * *", duration: 1h}
YAML

# --- an environment's window --------------------------------------------------
expect_exit 2 "plan of prod shows changes" -- R plan "$tree" --path envs/prod
contains "plan says a window would block the apply" "A deploy window would block" "$out"
expect_exit 1 "apply of prod is blocked" -- R apply "$tree" --path envs/prod --auto-approve
contains "apply names the blocking window" "Blocked by deploy window: " "$out"
contains "the reason names the deny window" "deny" "$out"
if grep -Eq 'next window [0-9]{4}-[0-9]{2}-[0-9]{2}T|next window none within' <<<"$out"; then ok "apply says when the next window is"
else bad "no next window time in the output" "$out"; fi
got="$(names prod)"
if [[ -z "$got" ]]; then ok "a blocked apply creates nothing"; else bad "a blocked apply created: $got"; fi

expect_exit 0 "apply --ignore-windows applies" -- R apply "$tree" --path envs/prod --auto-approve --ignore-windows
contains "the override is logged" "--ignore-windows" "$out"
got="$(names prod)"
if [[ "$got" == "prod--$p-api prod--$p-web" ]]; then ok "both agents run after the override"; else bad "prod after --ignore-windows: '$got'"; fi
expect_exit 0 "history of prod" -- R history "$tree" --path envs/prod
contains "history records the ignored windows" "(deploy windows ignored)" "$out"
expect_exit 0 "apply again is a no-op, window or not" -- R apply "$tree" --path envs/prod --auto-approve
contains "nothing to do" "No changes." "$out"

# --- an agent's own window ----------------------------------------------------
expect_exit 1 "apply of qa holds the agent with a window" -- R apply "$tree" --path envs/qa --auto-approve
got="$(names qa)"
if [[ "$got" == "qa--$p-web" ]]; then ok "only the agent without a window was applied"; else bad "qa: '$got', want 'qa--$p-web'"; fi

# --- destroy ignores windows ----------------------------------------------------
expect_exit 0 "destroy prod inside its deny window" -- R destroy "$tree" --path envs/prod --auto-approve
got="$(names prod)"
if [[ -z "$got" ]]; then ok "destroy removed prod's agents"; else bad "prod left: '$got'"; fi

echo "windows: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
