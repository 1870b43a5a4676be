#!/usr/bin/env bash
# Approvals end to end (README "Approvals"), against a real git daemon on
# loopback, the real Docker Engine and a fake GitHub commit status API
# (tests/scripts/fake_notify_server.py, checked against GitHub's OpenAPI
# description): a commit to an agent with `approval: required` does not
# deploy; status, metrics, the page, the log and the commit status show the
# pending plan; a tampered pending plan is refused; the API approve needs the
# token (401) and with it deploys exactly that plan; a new commit supersedes
# a pending plan (its id is refused); `reconcile approve ID` through the
# state folder deploys; a changed world (`docker rm -f`) makes an approval
# stale and a new plan waits; `reconcile approve --controller URL
# --token-file F` approves through the API (a wrong token: exit 1).
#
# Needs: $RECONCILE, $SOURCE_DIR, $BUILD_DIR (set by CTest), git, python3, a
# Docker Engine (started here when missing) and the hello image (built here
# when missing). Starts and stops only its own processes, by pid; removes
# only its own containers (by the agent name it made up).
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}" "${BUILD_DIR:?}"
bash "$SOURCE_DIR/scripts/ensure-dockerd.sh" >/dev/null || { echo "no Docker Engine"; exit 1; }
bash "$SOURCE_DIR/scripts/hello-image.sh" "$BUILD_DIR" >/dev/null || { echo "no hello image"; exit 1; }

sock=/var/run/docker.sock
api() { curl -fsS --unix-socket "$sock" "$@"; }
work="$(mktemp -d)"
p="ap$(printf '%04x' $((RANDOM % 65536)))"  # agent name prefix, unique per run
passed=0
failed=0
ctl_pid=""
fake_pid=""

source "$SOURCE_DIR/tests/scripts/controller_lib.sh"
ok() { passed=$((passed + 1)); echo "ok   - $1"; }
bad() { failed=$((failed + 1)); echo "FAIL - $1"; [[ -n "${2:-}" ]] && sed 's/^/       /' <<<"$2" | tail -40; }
container_id() {
  api "http://d/v1.41/containers/json?all=1" |
    python3 -c "import json,sys; print(next((c['Id'] for c in json.load(sys.stdin) if '/$1' in c['Names']), ''))"
}
cleanup() {
  stop_pid "$ctl_pid"
  stop_pid "$fake_pid"
  stop_git_daemon
  id="$(container_id "$p-web")"
  [[ -n "$id" ]] && api -X DELETE "http://d/v1.41/containers/$id?force=1" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

status_is() {  # status_is PYTHON_EXPR (over s = the status JSON)
  status_json | python3 -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if ($1) else 1)"
}
pending_id() { status_json | python3 -c "import json,sys; p=json.load(sys.stdin)['pendingPlan']; print(p['id'] if p else '')"; }
greeting_is() {  # greeting_is TEXT: the agent's endpoint answers TEXT
  local endpoint
  endpoint="$(status_json | python3 -c "import json,sys; s=json.load(sys.stdin); print(next((a['endpoints'][0] for a in s['agents'] if a['name']=='$p-web' and a['endpoints']), ''))")"
  [[ -n "$endpoint" ]] && curl -fsS "$endpoint/" | grep -qF "\"greeting\":\"$1\""
}
approve_api() {  # approve_api ID TOKEN: POST .../approve, prints the HTTP code
  curl -sS -o "$work/approve.out" -w '%{http_code}' -X POST \
    -H "Authorization: Bearer $2" "http://127.0.0.1:$http_port/api/v1/plans/$1/approve"
}

# --- a fake GitHub commit status API --------------------------------------------
mkdir -p "$work/secrets"
gh_token="ghp_fakeApprovalToken$RANDOM$RANDOM"
printf '%s\n' "$gh_token" >"$work/secrets/gh-token"
printf 'unused\n' >"$work/secrets/hook-key"
python3 "$SOURCE_DIR/tests/scripts/fake_notify_server.py" --port-file "$work/fake.port" \
  --openapi "$SOURCE_DIR/tests/testdata/vectors/github-rest/statuses-and-deployments.openapi.json" \
  --event-schema "$SOURCE_DIR/schemas/notification-event.schema.json" \
  --webhook-key "$work/secrets/hook-key" --slack-path "T0/B0/unused" \
  --github-token "$gh_token" --gitlab-token "unused" >"$work/fake.log" 2>&1 &
fake_pid=$!
for _ in $(seq 100); do [[ -s "$work/fake.port" ]] && break; sleep 0.1; done
fake="http://127.0.0.1:$(cat "$work/fake.port" 2>/dev/null)"
github_status_is() {  # github_status_is SHA PYEXPR (over b = a status request's body)
  curl -fsS "$fake/_requests" | python3 -c "
import json,sys
sys.exit(0 if any(r['part'] == 'github' and r['path'].endswith('/statuses/$1') and ($2)
                  for r in json.load(sys.stdin) for b in [r['body']]) else 1)"
}

tree() {  # tree GREETING: the desired state, the agent with approval: required
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
  healthCheck: {path: /health, interval: 100ms, timeout: 1s, retries: 50}
  approval: required
---
apiVersion: reconcile.dev/v1alpha1
kind: Notifier
metadata: {name: gh}
spec:
  type: github
  owner: acme
  repo: deploy
  token: {file: gh-token}
  apiUrl: $fake/github
YAML
}

git_repo
tree one && commit "one"
one="$(git -C "$work/clone" rev-parse HEAD)"
git_serve
printf 'approval-test-webhook\n' >"$work/hook.secret"
approval_token="approve-$RANDOM$RANDOM$RANDOM"
printf '%s\n' "$approval_token" >"$work/approval.token"
http_port="$(free_port)"
"$RECONCILE" --no-color controller --repo "git://127.0.0.1:$git_port/origin.git" --branch main \
  --path deploy --state "$work/state" --secrets "$work/secrets" --listen "127.0.0.1:$http_port" \
  --interval 1s --drift-interval 1h --webhook-secret-file "$work/hook.secret" \
  --approval-token-file "$work/approval.token" >>"$work/ctl.log" 2>&1 &
ctl_pid=$!
wait_for 20 "the controller answers /healthz" -- curl -fsS "http://127.0.0.1:$http_port/healthz"

# --- a commit to an agent with approval: required waits -----------------------
wait_for 60 "status shows a pending plan for the first commit" -- \
  status_is "s['pendingPlan'] and s['pendingPlan']['revision'] == '$one'"
p1="$(pending_id)"
if [[ "$(container_id "$p-web")" == "" ]]; then ok "nothing is deployed before the approval"; else bad "the agent was deployed without approval"; fi
if status_is "s['pendingPlan']['changes'] == [{'address': 'agent.$p-web', 'action': 'create'}] and s['pendingPlan']['approve'] == 'reconcile approve $p1' and s['revision']['applied'] == ''"; then
  ok "status: the pending plan's id, changes and approve command; the revision is not applied"
else
  bad "status of the pending plan" "$(status_json)"
fi
plan_file="$work/state/pending/$p1.json"
if [[ "$(sha256sum "$plan_file" | cut -d' ' -f1)" == "$p1" ]]; then ok "the plan id is the SHA-256 of the pending plan file"; else bad "plan id vs file hash"; fi
out="$("$RECONCILE" --no-color show "$plan_file" 2>&1)"
if grep -q "agent.$p-web" <<<"$out" && grep -q "create" <<<"$out"; then ok "reconcile show renders the pending plan"; else bad "show of the pending plan" "$out"; fi
if metric_is 'reconcile_pending_approval{environment="default"}' 1; then ok "metrics: reconcile_pending_approval is 1"; else bad "reconcile_pending_approval" "$(metric 'reconcile_pending_approval{environment="default"}')"; fi
wait_for 10 "the status page shows the plan and how to approve it" -- \
  bash -c "curl -fsS 'http://127.0.0.1:$http_port/' | grep -q 'reconcile approve $p1'"
if grep -q "approval: plan $p1 of revision $one waits for approval" "$work/ctl.log"; then ok "the log says the plan waits"; else bad "log lacks the pending plan" "$(tail -20 "$work/ctl.log")"; fi
wait_for 20 "GitHub: commit status pending 'awaiting approval of plan <id>'" -- \
  github_status_is "$one" "b['state'] == 'pending' and b['description'] == 'awaiting approval of plan $p1'"

# --- a tampered pending plan is refused --------------------------------------------
cp "$plan_file" "$work/plan.bak"
python3 - "$plan_file" <<'PY'
import sys
path = sys.argv[1]
text = open(path).read()
assert '"one"' in text, "the plan names the greeting"
open(path, "w").write(text.replace('"one"', '"evil"', 1))
PY
if [[ "$(sha256sum "$plan_file" | cut -d' ' -f1)" != "$p1" ]]; then ok "the pending plan file is edited"; else bad "the edit left the file as it was"; fi
out="$("$RECONCILE" --no-color approve "$p1" --state "$work/state" 2>&1)"; code=$?
if [[ $code -eq 1 ]] && grep -q "does not match its id" <<<"$out"; then ok "reconcile approve refuses a tampered plan (exit 1)"; else bad "tampered approve: exit $code" "$out"; fi
code="$(approve_api "$p1" "$approval_token")"
if [[ "$code" == 422 ]] && grep -q "does not match its id" "$work/approve.out"; then ok "the API refuses a tampered plan (422)"; else bad "API tampered: $code" "$(cat "$work/approve.out")"; fi
sleep 2
if [[ "$(container_id "$p-web")" == "" ]]; then ok "a tampered plan deploys nothing"; else bad "a tampered plan was deployed"; fi
cp "$work/plan.bak" "$plan_file"

# --- the API: a wrong token is 401, the right one deploys exactly that plan -------------
code="$(approve_api "$p1" "wrong-token")"
if [[ "$code" == 401 ]]; then ok "API approve with a wrong token is 401"; else bad "wrong token answered $code" "$(cat "$work/approve.out")"; fi
code="$(approve_api "$p1" "$approval_token")"
if [[ "$code" == 202 ]]; then ok "API approve with the token is 202"; else bad "approve answered $code" "$(cat "$work/approve.out")"; fi
wait_for 60 "the approved plan deploys: the container runs the first version" -- greeting_is one
wait_for 20 "status: no pending plan, the revision applied, the plan recorded as applied" -- \
  status_is "s['pendingPlan'] is None and s['revision']['applied'] == '$one' and s['approval']['lastApplied'] == '$p1'"
if metric_is 'reconcile_pending_approval{environment="default"}' 0; then ok "metrics: reconcile_pending_approval back to 0"; else bad "reconcile_pending_approval after apply"; fi
code="$(approve_api "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" "$approval_token")"
if [[ "$code" == 404 ]]; then ok "API approve of an unknown id is 404"; else bad "unknown id answered $code"; fi
out="$("$RECONCILE" --no-color approve "$p1" --state "$work/state" 2>&1)"; code=$?
if [[ $code -eq 1 ]] && grep -q "was applied" <<<"$out"; then ok "an applied plan cannot be approved again (exit 1)"; else bad "approve applied: exit $code" "$out"; fi

# --- a new commit supersedes a pending plan ------------------------------------------
tree two && commit "two"
two="$(git -C "$work/clone" rev-parse HEAD)"
wait_for 30 "a new commit waits as a pending plan" -- status_is "s['pendingPlan'] and s['pendingPlan']['revision'] == '$two'"
p2="$(pending_id)"
tree three && commit "three"
three="$(git -C "$work/clone" rev-parse HEAD)"
wait_for 30 "a newer commit's plan replaces it" -- status_is "s['pendingPlan'] and s['pendingPlan']['revision'] == '$three'"
p3="$(pending_id)"
out="$("$RECONCILE" --no-color approve "$p2" --state "$work/state" 2>&1)"; code=$?
if [[ $code -eq 1 ]] && grep -q "was superseded" <<<"$out" && grep -q "${p3:0:12}" <<<"$out"; then
  ok "the superseded plan's id is refused, naming the plan that waits (exit 1)"
else
  bad "approve superseded: exit $code" "$out"
fi
code="$(approve_api "$p2" "$approval_token")"
if [[ "$code" == 409 ]]; then ok "API approve of a superseded plan is 409"; else bad "superseded answered $code"; fi
if greeting_is one; then ok "neither new commit deployed without approval"; else bad "a new commit was deployed"; fi

# --- reconcile approve through the state folder deploys ---------------------------------
out="$("$RECONCILE" --no-color approve "${p3:0:12}" --state "$work/state" 2>&1)"; code=$?
if [[ $code -eq 0 ]] && grep -q "Plan $p3" <<<"$out"; then ok "reconcile approve ID (a prefix) records the approval (exit 0)"; else bad "approve: exit $code" "$out"; fi
wait_for 60 "the controller applies the approved plan: the container runs the new version" -- greeting_is three
if grep -q "approval: plan $p3 applied as approved" "$work/ctl.log"; then ok "the log says the approved plan was applied"; else bad "log lacks the applied approval"; fi

# --- a changed world makes an approval stale -------------------------------------------------
tree four && commit "four"
four="$(git -C "$work/clone" rev-parse HEAD)"
wait_for 30 "commit four waits as a pending plan" -- status_is "s['pendingPlan'] and s['pendingPlan']['revision'] == '$four'"
p4="$(pending_id)"
api -X DELETE "http://d/v1.41/containers/$(container_id "$p-web")?force=1" >/dev/null
"$RECONCILE" --no-color approve "$p4" --state "$work/state" >"$work/approve4.out" 2>&1
# Approved before or after the controller noticed: either way it is stale.
wait_for 30 "a new plan waits instead of the stale one" -- \
  status_is "s['pendingPlan'] and s['pendingPlan']['id'] != '$p4' and s['pendingPlan']['changes'][0]['action'] == 'create'"
out="$("$RECONCILE" --no-color approve "$p4" --state "$work/state" 2>&1)"; code=$?
if [[ $code -eq 1 ]] && grep -q "was stale" <<<"$out"; then ok "the stale plan's id is refused (exit 1)"; else bad "approve stale: exit $code" "$out"; fi
if [[ "$(container_id "$p-web")" == "" ]]; then ok "the stale plan deployed nothing"; else bad "a stale plan was applied"; fi
p5="$(pending_id)"
printf 'not-the-token\n' >"$work/wrong.token"
out="$("$RECONCILE" --no-color approve "$p5" --controller "http://127.0.0.1:$http_port" --token-file "$work/wrong.token" 2>&1)"; code=$?
if [[ $code -eq 1 ]] && grep -q "answered 401" <<<"$out"; then ok "reconcile approve --controller with a wrong token fails (401, exit 1)"; else bad "CLI wrong token: exit $code" "$out"; fi
out="$("$RECONCILE" --no-color approve "$p5" --controller "http://127.0.0.1:$http_port" --token-file "$work/approval.token" --by alice 2>&1)"; code=$?
if [[ $code -eq 0 ]] && grep -q "plan $p5 (revision $four) approved" <<<"$out"; then ok "reconcile approve --controller approves the fresh plan through the API (exit 0)"; else bad "CLI approve through the API: exit $code" "$out"; fi
wait_for 60 "the fresh plan deploys the fourth version" -- greeting_is four
if grep -q "approval: plan $p5 (revision $four) approved by api: alice via api" "$work/ctl.log"; then ok "the log names who approved, and how"; else bad "log lacks the approver" "$(grep approval: "$work/ctl.log" | tail -5)"; fi

# --- approvals over the API are off without a token file ------------------------------------
stop_pid "$ctl_pid"; ctl_pid=""
http_port="$(free_port)"
"$RECONCILE" --no-color controller --repo "git://127.0.0.1:$git_port/origin.git" --branch main \
  --path deploy --state "$work/state" --secrets "$work/secrets" --listen "127.0.0.1:$http_port" \
  --interval 1h --drift-interval 1h >>"$work/ctl.log" 2>&1 &
ctl_pid=$!
wait_for 20 "the controller restarts" -- curl -fsS "http://127.0.0.1:$http_port/healthz"
code="$(approve_api "$p5" "$approval_token")"
if [[ "$code" == 503 ]]; then ok "without --approval-token-file the API approve answers 503"; else bad "no token file: $code"; fi

echo "approval: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
