#!/usr/bin/env bash
# The controller end to end, against a real git daemon on loopback and the
# real Docker Engine: commit → signed webhook → the agent is updated and
# healthy; the same by polling alone; a broken commit changes nothing and
# shows in status and metrics; drift is healed or reported per agent; a
# force-push to an older commit is followed; SIGTERM during a health wait
# exits 0 promptly and the next start converges.
#
# Needs: $RECONCILE, $SOURCE_DIR, $BUILD_DIR (set by CTest), git, python3, a
# Docker Engine (started here when missing) and the hello image (built here
# when missing). Starts and stops only its own processes, by pid; removes
# only its own containers (by the agent names it made up).
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}" "${BUILD_DIR:?}"
bash "$SOURCE_DIR/scripts/ensure-dockerd.sh" >/dev/null || { echo "no Docker Engine"; exit 1; }
bash "$SOURCE_DIR/scripts/hello-image.sh" "$BUILD_DIR" >/dev/null || { echo "no hello image"; exit 1; }

sock=/var/run/docker.sock
api() { curl -fsS --unix-socket "$sock" "$@"; }
work="$(mktemp -d)"
p="e$(printf '%04x' $((RANDOM % 65536)))"  # agent name prefix, unique per run
passed=0
failed=0
daemon_pid=""
ctl_pid=""

# free_port, stop_pid, wait_for, status_json (the helpers below override
# the rest for a single tree)
source "$SOURCE_DIR/tests/scripts/controller_lib.sh"
cleanup() {
  stop_pid "$ctl_pid"
  if [[ -f "$work/daemon.pid" ]]; then kill "$(cat "$work/daemon.pid")" 2>/dev/null; fi
  "$RECONCILE" destroy "$work/clone/deploy" --state "$work/state" --auto-approve --no-color \
    >/dev/null 2>&1 || true
  for name in "$p-web" "$p-side" "$p-slow" "$p-slow-next"; do
    id="$(container_id "$name")"
    [[ -n "$id" ]] && api -X DELETE "http://d/v1.41/containers/$id?force=1" >/dev/null 2>&1
  done
  rm -rf "$work"
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); echo "ok   - $1"; }
bad() { failed=$((failed + 1)); echo "FAIL - $1"; [[ -n "${2:-}" ]] && sed 's/^/       /' <<<"$2" | tail -40; }
container_id() {
  api "http://d/v1.41/containers/json?all=1" |
    python3 -c "import json,sys; print(next((c['Id'] for c in json.load(sys.stdin) if '/$1' in c['Names']), ''))"
}
container_running() {
  api "http://d/v1.41/containers/json" |
    python3 -c "import json,sys; sys.exit(0 if any('/$1' in c['Names'] for c in json.load(sys.stdin)) else 1)"
}
status_is() {  # status_is PYTHON_EXPR (over s = the status JSON)
  status_json | python3 -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if ($1) else 1)"
}
greeting_is() {  # greeting_is AGENT TEXT: the agent's endpoint answers TEXT
  local endpoint
  endpoint="$(status_json | python3 -c "import json,sys; s=json.load(sys.stdin); print(next((a['endpoints'][0] for a in s['agents'] if a['name']=='$1' and a['endpoints']), ''))")"
  [[ -n "$endpoint" ]] && curl -fsS "$endpoint/" | grep -qF "\"greeting\":\"$2\""
}
signed_webhook() {  # signed_webhook SECRET: POST a GitHub push event for refs/heads/main
  local body sig
  body="$(python3 -c 'import json,sys; print(json.dumps({"ref":"refs/heads/main","after":sys.argv[1],"repository":{"full_name":"local/deploy"}}))' "$(git -C "$work/clone" rev-parse HEAD)")"
  sig="sha256=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$1" -r | cut -d' ' -f1)"
  curl -sS -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$http_port/hooks/github" \
    -H "X-GitHub-Event: push" -H "X-Hub-Signature-256: $sig" \
    -H "Content-Type: application/json" --data-binary "$body"
}

tree() {  # tree GREETING [extra agent doc]: the desired state of the repo
  mkdir -p "$work/clone/deploy"
  cat >"$work/clone/deploy/deploy.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: local}
spec:
  provider: docker
  docker: {publishAddress: 127.0.0.1}
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $p-web}
spec:
  image: reconcile/hello-agent:0.1.0
  target: local
  port: 8080
  env: {GREETING: "$1"}
  strategy: {type: start-first}
  healthCheck: {path: /health, interval: 100ms, timeout: 1s, retries: 50}
  drift: {mode: heal}
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $p-side}
spec:
  image: reconcile/hello-agent:0.1.0
  target: local
  port: 8080
  env: {GREETING: "side"}
  healthCheck: {path: /health, interval: 100ms, timeout: 1s, retries: 50}
  drift: {mode: report}
YAML
  [[ -n "${2:-}" ]] && printf '%s\n' "$2" >>"$work/clone/deploy/deploy.yaml"
  return 0
}
commit() {  # commit MESSAGE: commit everything and push to main
  git -C "$work/clone" add -A && git -C "$work/clone" commit -qm "$1" &&
    git -C "$work/clone" push -q origin HEAD:main
}
start_controller() {  # start_controller INTERVAL DRIFT_INTERVAL [more flags]
  http_port="$(free_port)"
  "$RECONCILE" --no-color controller --repo "git://127.0.0.1:$git_port/origin.git" --branch main \
    --path deploy --state "$work/state" --listen "127.0.0.1:$http_port" --interval "$1" \
    --drift-interval "$2" --webhook-secret-file "$work/hook.secret" "${@:3}" >>"$work/ctl.log" 2>&1 &
  ctl_pid=$!
  wait_for 20 "the controller answers /healthz" -- curl -fsS "http://127.0.0.1:$http_port/healthz"
}

# --- a repository served by a real git daemon on loopback --------------------
git init -q --bare -b main "$work/origin.git"
git clone -q "$work/origin.git" "$work/clone" 2>/dev/null
git -C "$work/clone" config user.email t@example.com && git -C "$work/clone" config user.name test
git -C "$work/clone" checkout -q -b main
tree one && commit "one"
first_commit="$(git -C "$work/clone" rev-parse HEAD)"
git_port="$(free_port)"
git daemon --reuseaddr --base-path="$work" --export-all --enable=receive-pack \
  --listen=127.0.0.1 --port="$git_port" --pid-file="$work/daemon.pid" --detach "$work"
for _ in $(seq 50); do [[ -s "$work/daemon.pid" ]] && break; sleep 0.1; done
printf 'It%ss a Secret to Everybody\n' "'" >"$work/hook.secret"
secret="$(head -c -1 "$work/hook.secret")"

# --- start: the first pass deploys the branch --------------------------------
# No polling and no drift checks here: only webhooks move it.
start_controller 1h 1h
wait_for 60 "the first pass deploys the branch and the controller is ready" -- \
  curl -fsS "http://127.0.0.1:$http_port/readyz"
wait_for 30 "the agent answers with the first greeting" -- greeting_is "$p-web" one
out="$(curl -fsS "http://127.0.0.1:$http_port/metrics")"
if grep -q '^reconcile_passes_total{environment="default",result="success"} [1-9]' <<<"$out"; then ok "metrics count the successful pass"; else bad "no successful pass in /metrics" "$out"; fi

# --- webhook: a bad signature triggers nothing, a good one deploys -------------
tree two && commit "two"
code="$(curl -sS -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$http_port/hooks/github" \
  -H "X-GitHub-Event: push" -H "X-Hub-Signature-256: sha256=0000" --data-binary '{"ref":"refs/heads/main"}')"
if [[ "$code" == 401 ]]; then ok "a bad signature is refused (401)"; else bad "bad signature answered $code"; fi
sleep 1
if greeting_is "$p-web" one; then ok "a refused webhook triggers nothing"; else bad "a refused webhook changed the agent"; fi
t0=$(date +%s%N)
code="$(signed_webhook "$secret")"
if [[ "$code" == 202 ]]; then ok "a signed push webhook is accepted (202)"; else bad "signed webhook answered $code"; fi
wait_for 30 "a signed webhook deploys the new commit" -- greeting_is "$p-web" two
echo "# commit-to-healthy by webhook: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
wait_for 10 "status shows the new revision applied" -- \
  status_is "s['revision']['applied'] == '$(git -C "$work/clone" rev-parse HEAD)'"

# --- a broken commit changes nothing and shows in status and metrics ----------
good_commit="$(git -C "$work/clone" rev-parse HEAD)"
tree three "  colour: red"  # an unknown field in the last agent
commit "broken"
broken_commit="$(git -C "$work/clone" rev-parse HEAD)"
signed_webhook "$secret" >/dev/null
wait_for 30 "status names the broken revision as invalid" -- \
  status_is "s['revision']['invalid'] == '$broken_commit' and s['lastPass']['result'] == 'invalid'"
if status_is "any('colour' in d for d in s['lastPass']['diagnostics'])"; then ok "status shows the error with the field"; else bad "status lacks the diagnostic" "$(status_json)"; fi
if status_is "s['revision']['applied'] == '$good_commit'"; then ok "the last good revision stays applied"; else bad "applied revision moved" "$(status_json)"; fi
out="$(curl -fsS "http://127.0.0.1:$http_port/metrics")"
if grep -q '^reconcile_passes_total{environment="default",result="invalid"} [1-9]' <<<"$out"; then ok "metrics count the invalid pass"; else bad "no invalid pass in /metrics" "$out"; fi
if greeting_is "$p-web" two; then ok "the agent keeps serving the last good revision"; else bad "the agent changed"; fi
if grep -q "spec.colour" "$work/ctl.log"; then ok "the log names the bad field"; else bad "the log lacks the bad field" "$(tail -20 "$work/ctl.log")"; fi

tree two && commit "fixed"
signed_webhook "$secret" >/dev/null
wait_for 30 "a fixed commit after a broken one is applied" -- \
  status_is "s['revision']['applied'] == '$(git -C "$work/clone" rev-parse HEAD)'"
stop_pid "$ctl_pid"; ctl_pid=""

# --- drift: heal mode repairs, report mode reports ---------------------------
start_controller 1h 1s
wait_for 30 "a restarted controller is ready at once" -- curl -fsS "http://127.0.0.1:$http_port/readyz"
web_id="$(container_id "$p-web")"
side_id="$(container_id "$p-side")"
api -X POST "http://d/v1.41/containers/$web_id/stop?t=1" >/dev/null
api -X POST "http://d/v1.41/containers/$side_id/stop?t=1" >/dev/null
wait_for 30 "drift of a heal-mode agent is healed (it runs again)" -- container_running "$p-web"
wait_for 30 "drift of a report-mode agent is reported in status" -- \
  status_is "any(a['name'] == '$p-side' and a['drift'] == 'reported' for a in s['agents'])"
if ! container_running "$p-side"; then ok "a report-mode agent is left as it is"; else bad "report-mode agent was restarted"; fi
out="$(curl -fsS "http://127.0.0.1:$http_port/metrics")"
if grep -q '^reconcile_drifted_agents{environment="default"} [1-9]' <<<"$out"; then ok "metrics show the drifted agent"; else bad "reconcile_drifted_agents is 0" "$out"; fi
api -X POST "http://d/v1.41/containers/$side_id/start" >/dev/null

# --- force-push an older commit: the controller follows ----------------------
git -C "$work/clone" push -q -f origin "$first_commit:main"
signed_webhook "$secret" >/dev/null
wait_for 30 "a force-push to an older commit is followed" -- greeting_is "$p-web" one
stop_pid "$ctl_pid"; ctl_pid=""

# --- polling alone ---------------------------------------------------------------
git -C "$work/clone" reset -q --hard "$good_commit"
tree four && commit "four"
start_controller 1s 1h
t0=$(date +%s%N)
wait_for 30 "polling alone deploys a new commit" -- greeting_is "$p-web" four
tree five && commit "five"
t0=$(date +%s%N)
wait_for 30 "polling picks up the next commit" -- greeting_is "$p-web" five
echo "# commit-to-healthy by polling (1s interval): $(( ($(date +%s%N) - t0) / 1000000 )) ms"

# --- SIGTERM during a health wait ----------------------------------------------
slow="---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $p-slow}
spec:
  image: reconcile/hello-agent:0.1.0
  target: local
  port: 8080
  env: {HEALTH_FAIL: \"1\"}
  healthCheck: {path: /health, interval: 1s, timeout: 1s, retries: 300}"
tree five "$slow" && commit "slow"
wait_for 30 "the controller starts the never-healthy agent" -- grep -q "$p-slow: create started" "$work/ctl.log"
sleep 1
t0=$(date +%s%N)
kill -TERM "$ctl_pid"; wait "$ctl_pid"; code=$?; ctl_pid=""
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
if [[ $code -eq 0 ]]; then ok "SIGTERM during a health wait exits 0"; else bad "SIGTERM: exit $code" "$(tail -20 "$work/ctl.log")"; fi
if [[ $ms -lt 5000 ]]; then ok "SIGTERM ends the 5-minute health wait promptly (${ms} ms)"; else bad "SIGTERM took ${ms} ms"; fi
if [[ ! -e "$work/state/lock.json" ]]; then ok "the lock is released on SIGTERM"; else bad "lock.json left behind"; fi
tree six && commit "six"  # the slow agent removed again
start_controller 1s 1h
wait_for 60 "the next start converges" -- greeting_is "$p-web" six
wait_for 30 "the interrupted agent is pruned" -- bash -c "[[ -z \"\$(curl -fsS --unix-socket $sock 'http://d/v1.41/containers/json?all=1' | grep -o '/$p-slow\"')\" ]]"
stop_pid "$ctl_pid"; ctl_pid=""

# --- the CLI on a Git source: preview a branch without a checkout --------------
git -C "$work/clone" checkout -q -b feature-x
tree preview && git -C "$work/clone" add -A && git -C "$work/clone" commit -qm preview &&
  git -C "$work/clone" push -q origin HEAD:feature-x
git -C "$work/clone" checkout -q main
url="git://127.0.0.1:$git_port/origin.git"
out="$("$RECONCILE" --no-color plan --source "$url" --ref feature-x --path deploy --state "$work/state" 2>&1)"; code=$?
if [[ $code -eq 2 ]] && grep -qF 'env.GREETING = "six" -> "preview"' <<<"$out"; then
  ok "plan --source GIT_URL --ref BRANCH previews the branch (exit 2)"
else
  bad "branch preview: exit $code" "$out"
fi
if "$RECONCILE" --no-color plan --source "$url" --ref main --path deploy --state "$work/state" >/dev/null 2>&1; then
  ok "the preview changed nothing: main still plans no changes"
else
  bad "after the preview, main has changes"
fi
out="$("$RECONCILE" --no-color plan --source "$url" --ref no-such-branch --path deploy --state "$work/state" 2>&1)"; code=$?
if [[ $code -eq 1 ]] && grep -q "ref 'no-such-branch' not found" <<<"$out"; then ok "a missing ref is a clear error (exit 1)"; else bad "missing ref: exit $code" "$out"; fi
out="$("$RECONCILE" --no-color plan --source "$url" --ref main --path no/such --state "$work/state" 2>&1)"; code=$?
if [[ $code -eq 1 ]] && grep -q "path 'no/such' not found" <<<"$out"; then ok "a missing --path is a clear error (exit 1)"; else bad "missing path: exit $code" "$out"; fi
out="$("$RECONCILE" --no-color plan --source "git://127.0.0.1:$(free_port)/origin.git" --ref main --state "$work/state" 2>&1)"; code=$?
if [[ $code -eq 1 ]] && grep -qi "127.0.0.1" <<<"$out"; then ok "an unreachable remote is a clear error (exit 1)"; else bad "unreachable remote: exit $code" "$out"; fi

echo "controller e2e: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
