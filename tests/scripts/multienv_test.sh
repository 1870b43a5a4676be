#!/usr/bin/env bash
# One controller following three environments of one repository (issue #11
# item 3), against a real git daemon on loopback and the real Docker Engine:
# every environment deploys; a commit that breaks one environment stalls
# only that one (status and metrics show its error at file:line) while the
# other two deploy that commit; a commit touching only one environment's
# files plans only that one (the others count it as skipped); one ref check
# serves all three.
#
# The environments are folders envs/dev, envs/staging, envs/prod followed
# with --path (each a whole tree with its own Target and agent).
#
# Needs: $RECONCILE, $SOURCE_DIR, $BUILD_DIR (set by CTest), git, python3,
# curl, a Docker Engine (started here when missing) and the hello image
# (built here when missing). Stops only its own processes, by pid; removes
# only its own containers (by the agent names it made up).
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}" "${BUILD_DIR:?}"
bash "$SOURCE_DIR/scripts/ensure-dockerd.sh" >/dev/null || { echo "no Docker Engine"; exit 1; }
bash "$SOURCE_DIR/scripts/hello-image.sh" "$BUILD_DIR" >/dev/null || { echo "no hello image"; exit 1; }

sock=/var/run/docker.sock
api() { curl -fsS --unix-socket "$sock" "$@"; }
work="$(mktemp -d)"
p="m$(printf '%04x' $((RANDOM % 65536)))"  # agent name prefix, unique per run
envs=(dev staging prod)
passed=0
failed=0
ctl_pid=""

source "$SOURCE_DIR/tests/scripts/lib.sh"
source "$SOURCE_DIR/tests/scripts/controller_lib.sh"
cleanup() {
  stop_pid "$ctl_pid"
  stop_git_daemon
  for e in "${envs[@]}"; do
    id="$(container_id "$p-$e-web")"
    [[ -n "$id" ]] && api -X DELETE "http://d/v1.41/containers/$id?force=1" >/dev/null 2>&1
  done
  rm -rf "$work"
}
trap cleanup EXIT

env_tree() {  # env_tree ENV GREETING [PORT]: the environment's folder
  mkdir -p "$work/clone/envs/$1"
  cat >"$work/clone/envs/$1/deploy.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: local}
spec:
  provider: docker
  docker: {publishAddress: 127.0.0.1}
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $p-$1-web}
spec:
  image: reconcile/hello-agent:0.1.0
  target: local
  port: ${3:-8080}
  env: {GREETING: "$2"}
  strategy: {type: start-first}
  healthCheck: {path: /health, interval: 100ms, timeout: 1s, retries: 50}
YAML
}
git_repo
for e in "${envs[@]}"; do env_tree "$e" one; done
commit one
git_serve
printf 'multienv-hook-s3cret\n' >"$work/hook.secret"
secret="multienv-hook-s3cret"

http_port="$(free_port)"
"$RECONCILE" --no-color controller --repo "git://127.0.0.1:$git_port/origin.git" --branch main \
  --path envs/dev --path envs/staging --path envs/prod --state "$work/state" \
  --listen "127.0.0.1:$http_port" --interval 1h --drift-interval 1h \
  --webhook-secret-file "$work/hook.secret" >>"$work/ctl.log" 2>&1 &
ctl_pid=$!
wait_for 20 "the controller answers /healthz" -- curl -fsS "http://127.0.0.1:$http_port/healthz"

# --- every environment deploys the first commit -----------------------------
wait_for 90 "all three environments deployed and the controller is ready" -- \
  curl -fsS "http://127.0.0.1:$http_port/readyz"
for e in "${envs[@]}"; do
  wait_for 30 "$e answers with the first greeting" -- greeting_is "$e" one
done
if status_json | python3 -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if [e['name'] for e in s['environments']]==['dev','staging','prod'] and all(e['path']=='envs/'+e['name'] for e in s['environments']) else 1)"; then
  ok "status lists the three environments with their paths"
else
  bad "status environments" "$(status_json)"
fi
for e in "${envs[@]}"; do
  [[ -f "$work/state/environments/$e/state.json" ]] && ok "$e has its own state folder" ||
    bad "no state at $work/state/environments/$e" "$(ls -R "$work/state" | head -30)"
done
# Bodies are read whole before grep (grep -q exiting early would fail curl
# under pipefail).
metrics_text=$(curl -fsS "http://127.0.0.1:$http_port/metrics")
if metric_is "reconcile_passes_total{environment=\"staging\",result=\"success\"}" 1 &&
  ! grep -q 'environment="default"' <<<"$metrics_text"; then
  ok "metrics count each environment's pass under its name"
else
  bad "per-environment metrics" "$(curl -fsS "http://127.0.0.1:$http_port/metrics" | grep passes_total)"
fi
page_text=$(curl -fsS "http://127.0.0.1:$http_port/")
grep -q "staging" <<<"$page_text" && ok "the status page lists the environments" ||
  bad "the status page has no environments"

# --- a commit that breaks staging: dev and prod deploy it anyway ------------
checks_before="$(metric reconcile_source_fetch_duration_seconds_count)"
env_tree dev two
env_tree staging two '"not-a-port"'
env_tree prod two
commit "two, staging broken"
two="$(git -C "$work/clone" rev-parse HEAD)"
[[ "$(webhook)" == 202 ]] && ok "the webhook is accepted" || bad "webhook not accepted"
wait_for 60 "dev deploys the second commit" -- greeting_is dev two
wait_for 60 "prod deploys the second commit" -- greeting_is prod two
wait_for 30 "staging is stalled: its last pass is invalid" -- \
  env_is staging "e['lastPass']['result']=='invalid' and e['revision']['invalid']=='$two'"
if env_is staging "any(__import__('re').search(r'deploy\.yaml:\d+:\d+: error: spec\.port', d) for d in e['lastPass']['diagnostics'])"; then
  ok "staging's status names its error at file:line:column and field"
else
  bad "no file:line in staging's diagnostics" "$(status_json)"
fi
greeting_is staging one && ok "staging keeps running its last good revision" || bad "staging changed"
wait_for 10 "metrics show staging's invalid pass" -- \
  metric_is "reconcile_passes_total{environment=\"staging\",result=\"invalid\"}" 1
env_is dev "e['revision']['applied']=='$two'" && env_is prod "e['revision']['applied']=='$two'" &&
  ok "dev and prod record the second commit as applied" || bad "applied revisions" "$(status_json)"
checks_after="$(metric reconcile_source_fetch_duration_seconds_count)"
if [[ $((checks_after - checks_before)) -eq 1 ]]; then
  ok "one ref check served the three environments"
else
  bad "ref checks for one webhook: $((checks_after - checks_before))"
fi

# --- a commit touching only staging: only staging is planned ----------------
dev_success="$(metric "reconcile_passes_total{environment=\"dev\",result=\"success\"}")"
env_tree staging three
commit "staging fixed"
three="$(git -C "$work/clone" rev-parse HEAD)"
[[ "$(webhook)" == 202 ]] || bad "webhook not accepted"
wait_for 60 "staging deploys the fix" -- greeting_is staging three
for e in dev prod; do
  wait_for 20 "$e skips the commit (nothing of it changed)" -- \
    metric_is "reconcile_passes_skipped_total{environment=\"$e\"}" 1
  env_is "$e" "e['lastSkipped']['revision']=='$three' and e['lastSkipped']['reason']=='no change for this environment' and e['revision']['applied']=='$three'" &&
    ok "$e status: no change for this environment at the third commit" || bad "$e status" "$(status_json)"
done
metric_is "reconcile_passes_skipped_total{environment=\"staging\"}" 0 && ok "staging was not skipped" ||
  bad "staging skipped"
metric_is "reconcile_passes_total{environment=\"dev\",result=\"success\"}" "$dev_success" &&
  ok "dev ran no pass for the commit that did not touch it" || bad "dev ran a pass"
greeting_is dev two && greeting_is prod two && ok "dev and prod keep running" || bad "dev/prod changed"
grep -q "dev: revision $three: no change for this environment" "$work/ctl.log" &&
  ok "the log names the environment that skipped" || bad "no skip line in the log" "$(tail -20 "$work/ctl.log")"

stop_pid "$ctl_pid"
ctl_pid=""
echo "$passed passed, $failed failed"
((failed == 0))
