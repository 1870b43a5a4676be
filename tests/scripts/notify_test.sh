#!/usr/bin/env bash
# Notifications end to end: a real controller over a git daemon on loopback
# and the real Docker Engine (hello image), with Notifiers of all four types
# (slack, webhook, github with deployments, gitlab) pointing at a fake
# server on loopback (tests/scripts/fake_notify_server.py) that checks every
# request: GitHub's against its official OpenAPI description
# (tests/testdata/vectors/github-rest), GitLab's against its documented fields,
# Slack's against the incoming-webhook shape, the webhook's event against
# schemas/notification-event.schema.json and its HMAC signature.
#   - the first commit: each Notifier is made and told the pass
#   - a good commit: one Slack message naming the revision, a signed event,
#     GitHub pending then success and a deployment with its statuses, GitLab
#     running then success
#   - a broken commit: invalid-revision everywhere (GitHub error)
#   - a commit whose agent never gets healthy, retried by the controller:
#     failed / unhealthy sent once although the revision failed twice
#   - the fake answering 500 twice: retried, then delivered
#   - the fake hanging: the pass still finishes at once; the sink's
#     failures show it
#   - a restarted controller does not send again what it sent (the record
#     in <state>/notify/<name>.json)
#   - no token, key nor URL in the controller's log
# Needs: $RECONCILE, $SOURCE_DIR, $BUILD_DIR (set by CTest), git, python3 with
# jsonschema, curl, openssl, a Docker Engine and the hello image. Starts and
# stops only its own processes, by pid; removes only its own containers.
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}" "${BUILD_DIR:?}"
bash "$SOURCE_DIR/scripts/ensure-dockerd.sh" >/dev/null || { echo "no Docker Engine"; exit 1; }
bash "$SOURCE_DIR/scripts/hello-image.sh" "$BUILD_DIR" >/dev/null || { echo "no hello image"; exit 1; }
python3 -c 'import jsonschema' || { echo "python3 jsonschema is missing (scripts/bootstrap.sh)"; exit 1; }

sock=/var/run/docker.sock
api() { curl -fsS --unix-socket "$sock" "$@"; }
work="$(mktemp -d)"
p="n$(printf '%04x' $((RANDOM % 65536)))"  # agent name prefix, unique per run
passed=0
failed=0
ctl_pid=""
fake_pid=""
source "$SOURCE_DIR/tests/scripts/controller_lib.sh"
cleanup() {
  stop_pid "$ctl_pid"
  stop_pid "$fake_pid"
  stop_git_daemon
  "$RECONCILE" destroy "$work/clone/deploy" --state "$work/state" --auto-approve --no-color \
    >/dev/null 2>&1 || true
  for name in "$p-web"; do
    id="$(api "http://d/v1.41/containers/json?all=1" | python3 -c "import json,sys; print(' '.join(c['Id'] for c in json.load(sys.stdin) if any(n.startswith('/$name') for n in c['Names'])))")"
    for i in $id; do api -X DELETE "http://d/v1.41/containers/$i?force=1" >/dev/null 2>&1; done
  done
  rm -rf "$work"
}
trap cleanup EXIT
ok() { passed=$((passed + 1)); echo "ok   - $1"; }
bad() { failed=$((failed + 1)); echo "FAIL - $1"; [[ -n "${2:-}" ]] && sed 's/^/       /' <<<"$2" | tail -40; }

# --- the fake receivers and the secrets naming them ---------------------------
mkdir -p "$work/secrets"
slack_path="T0NOTIFY/B0NOTIFY/slackSecretPath$RANDOM$RANDOM"
gh_token="ghp_fakeGithubToken$RANDOM$RANDOM"
gl_token="glpat-fakeGitlabToken$RANDOM$RANDOM"
hook_key="webhook-hmac-key-$RANDOM$RANDOM"
printf '%s\n' "$hook_key" >"$work/secrets/hook-key"
printf '%s\n' "$gh_token" >"$work/secrets/gh-token"
printf '%s\n' "$gl_token" >"$work/secrets/gl-token"
python3 "$SOURCE_DIR/tests/scripts/fake_notify_server.py" --port-file "$work/fake.port" \
  --openapi "$SOURCE_DIR/tests/testdata/vectors/github-rest/statuses-and-deployments.openapi.json" \
  --event-schema "$SOURCE_DIR/schemas/notification-event.schema.json" \
  --webhook-key "$work/secrets/hook-key" --slack-path "$slack_path" \
  --github-token "$gh_token" --gitlab-token "$gl_token" >"$work/fake.log" 2>&1 &
fake_pid=$!
for _ in $(seq 100); do [[ -s "$work/fake.port" ]] && break; sleep 0.1; done
fport="$(cat "$work/fake.port" 2>/dev/null)"
[[ -n "$fport" ]] || { echo "the fake server did not start: $(cat "$work/fake.log")"; exit 1; }
fake="http://127.0.0.1:$fport"
printf '%s\n' "$fake/slack/$slack_path" >"$work/secrets/slack-url"
printf '%s\n' "$fake/webhook" >"$work/secrets/hook-url"

# reqs PART PYEXPR: the recorded good requests r of PART for which PYEXPR
# holds, one JSON line each.
reqs() {
  curl -fsS "$fake/_requests" | python3 -c "
import json,sys
for r in json.load(sys.stdin):
    b = r['body'] if isinstance(r['body'], dict) else {}
    if r['part'] == '$1' and ($2): print(json.dumps(r))"
}
count() { reqs "$1" "$2" | wc -l; }
count_is() { [[ "$(count "$1" "$2")" == "$3" ]]; }
count_at_least() { (( $(count "$1" "$2") >= $3 )); }

tree() {  # tree GREETING [extra agent fields]
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
  healthCheck: {path: ${HEALTH_PATH:-/health}, interval: 100ms, timeout: 1s, retries: ${HEALTH_RETRIES:-50}}
${2:-}
YAML
  cat >"$work/clone/deploy/notifiers.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Notifier
metadata: {name: chat}
spec:
  type: slack
  url: {file: slack-url}
---
apiVersion: reconcile.dev/v1alpha1
kind: Notifier
metadata: {name: hook}
spec:
  type: webhook
  url: {file: hook-url}
  secret: {file: hook-key}
  events: [applied, failed, unhealthy, invalid-revision]
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
  deployments: true
---
apiVersion: reconcile.dev/v1alpha1
kind: Notifier
metadata: {name: gl}
spec:
  type: gitlab
  projectId: acme/deploy
  token: {file: gl-token}
  apiUrl: $fake/gitlab/api/v4
YAML
}
head_sha() { git -C "$work/clone" rev-parse HEAD; }
applied_is() { status_json | python3 -c "import json,sys; sys.exit(0 if json.load(sys.stdin)['revision']['applied'] == '$1' else 1)"; }

git_repo
tree one && commit "one"
one="$(head_sha)"
git_serve
printf 'notify-test-secret\n' >"$work/hook.secret"
secret="notify-test-secret"

if out="$("$RECONCILE" validate "$work/clone/deploy" 2>&1)"; then ok "validate accepts the tree with four Notifiers"; else bad "validate refuses the Notifiers" "$out"; fi
if out="$("$RECONCILE" plan "$work/clone/deploy" --state "$work/plan-state" --no-color 2>&1)"; [[ $? -eq 2 ]] && ! grep -qi notifier <<<"$out"; then
  ok "plan ignores the Notifiers (not resources)"
else bad "plan and the Notifiers" "$out"; fi

http_port="$(free_port)"
start_controller() {
  "$RECONCILE" --no-color controller --repo "git://127.0.0.1:$git_port/origin.git" --branch main \
    --path deploy --state "$work/state" --secrets "$work/secrets" --listen "127.0.0.1:$http_port" \
    --interval 1h --drift-interval 1h --webhook-secret-file "$work/hook.secret" >>"$work/ctl.log" 2>&1 &
  ctl_pid=$!
}
start_controller
wait_for 60 "the first pass deploys the branch" -- curl -fsS "http://127.0.0.1:$http_port/readyz"

# --- the first pass: each Notifier is made and told it ------------------------
wait_for 30 "Slack: the first pass is told (applied)" -- count_is slack "'applied at ${one:0:12}' in b['text']" 1
wait_for 30 "GitHub: a success status for the first commit" -- \
  count_is github "r['path'].endswith('/statuses/$one') and b['state'] == 'success'" 1
wait_for 30 "GitLab: a success status for the first commit" -- \
  count_is gitlab "r['path'].endswith('/statuses/$one') and b['state'] == 'success'" 1
if [[ -n "$(metric 'reconcile_event_sink_delivered_total{sink="notifier:chat"}')" ]]; then
  ok "each Notifier is a sink of the event stream (notifier:<name>)"
else bad "no notify sink in /metrics" "$(curl -fsS "http://127.0.0.1:$http_port/metrics" | grep event_sink)"; fi

# --- a good commit -------------------------------------------------------------
tree two && commit "two"
two="$(head_sha)"
[[ "$(webhook)" == 202 ]] && ok "the push webhook is accepted" || bad "the push webhook was refused"
wait_for 60 "GitHub: success for the good commit" -- \
  count_is github "r['path'] == '/github/repos/acme/deploy/statuses/$two' and b['state'] == 'success'" 1
got="$(reqs github "'$two' in r['path'] or b.get('ref') == '$two' or '/deployments/' in r['path']" |
  python3 -c "
import json,sys
seen=[json.loads(l) for l in sys.stdin]
out=[]
for r in seen:
    b=r['body']
    if r['path'].endswith('/statuses/$two'): out.append('status ' + b['state'] + ' ' + b['context'])
    elif r['path'].endswith('/deployments'): out.append('deployment ' + b['environment'] + ' ' + str(b['auto_merge']) + ' ' + str(b['required_contexts']))
print(' | '.join(out))")"
if [[ "$got" == "status pending reconcile/default | deployment default False [] | status success reconcile/default" ]]; then
  ok "GitHub: pending at the start, a deployment, success after health"
else bad "GitHub statuses for the good commit" "$got"; fi
dep_states="$(reqs github "r['path'].endswith('/statuses') and '/deployments/' in r['path']" | python3 -c "
import json,sys
print(' '.join(json.loads(l)['body']['state'] for l in sys.stdin))")"
if [[ "$dep_states" == *"in_progress success"* ]]; then ok "GitHub: the deployment's statuses in_progress then success"; else bad "deployment statuses" "$dep_states"; fi
wait_for 30 "Slack: one message naming the good revision" -- count_is slack "'applied at ${two:0:12}' in b['text']" 1
if count_is slack "'${two:0:12}' in b['text'] and 'changed: agent.$p-web (replace)' in b['text']" 1; then ok "Slack: the message names what changed"; else bad "Slack message text" "$(reqs slack True)"; fi
wait_for 30 "webhook: a signed event for the good revision" -- count_is webhook "b['revision'] == '$two' and b['events'] == ['applied']" 1
if count_is webhook "b['revision'] == '$two' and r['headers'].get('Idempotency-Key') == b['id'] and r['headers'].get('X-Reconcile-Signature-256','').startswith('sha256=')" 1; then
  ok "webhook: Idempotency-Key and signature headers"
else bad "webhook headers" "$(reqs webhook True)"; fi
# The signature, recomputed here with openssl over the same body bytes as the fake
# received them (re-serialized compactly, as the controller sends it).
body="$(reqs webhook "b['revision'] == '$two'" | python3 -c "import json,sys; print(json.dumps(json.loads(sys.stdin.readline())['body'], separators=(',', ':'), ensure_ascii=False))")"
sig="$(reqs webhook "b['revision'] == '$two'" | python3 -c "import json,sys; print(json.loads(sys.stdin.readline())['headers']['X-Reconcile-Signature-256'])")"
want="sha256=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$hook_key" -r | cut -d' ' -f1)"
if [[ "$sig" == "$want" ]]; then ok "webhook: the signature verifies with openssl dgst -hmac"; else bad "webhook signature" "$sig vs $want"; fi
wait_for 30 "GitLab: running then success for the good commit" -- bash -c "
  [[ \"\$(curl -fsS $fake/_requests | python3 -c \"
import json,sys
print(' '.join(r['body']['state'] for r in json.load(sys.stdin) if r['part']=='gitlab' and r['path'].endswith('/$two')))\")\" == 'running success' ]]"
if count_is gitlab "r['path'] == '/gitlab/api/v4/projects/acme%2Fdeploy/statuses/$two' and b['name'] == 'reconcile/default'" 2; then ok "GitLab: the project path encoded, name reconcile/default"; else bad "GitLab requests" "$(reqs gitlab True)"; fi

# --- a broken commit: invalid-revision -----------------------------------------
tree two "  colour: red" && commit "broken"
broken="$(head_sha)"
webhook >/dev/null
wait_for 60 "Slack: invalid-revision for the broken commit" -- count_is slack "'invalid-revision at ${broken:0:12}' in b['text'] and 'spec.colour' in b['text']" 1
wait_for 30 "webhook: invalid-revision with the diagnostics" -- \
  count_is webhook "b['revision'] == '$broken' and b['events'] == ['invalid-revision'] and any(d['field'] == 'spec.colour' and d['line'] > 0 for d in b['diagnostics'])" 1
wait_for 30 "GitHub: error status for the broken commit" -- \
  count_is github "r['path'].endswith('/statuses/$broken') and b['state'] == 'error' and b['description'].startswith('invalid revision')" 1
wait_for 30 "GitLab: failed for the broken commit" -- \
  count_is gitlab "r['path'].endswith('/statuses/$broken') and b['state'] == 'failed'" 1

# --- a commit that fails its health check, retried: sent once -----------------
HEALTH_PATH=/nope HEALTH_RETRIES=3 tree three && commit "unhealthy"
three="$(head_sha)"
webhook >/dev/null
wait_for 90 "the failing revision is tried at least twice" -- \
  bash -c "(( \$(curl -fsS http://127.0.0.1:$http_port/metrics | awk '\$1==\"reconcile_passes_total{environment=\\\"default\\\",result=\\\"failed\\\"}\" {print int(\$2)}') >= 2 ))"
wait_for 30 "Slack: the failure is told" -- count_at_least slack "'${three:0:12}' in b['text'] and 'failed' in b['text']" 1
if count_is slack "'${three:0:12}' in b['text']" 1; then ok "Slack: the same event for the same revision is sent once"; else bad "Slack sent the failure more than once" "$(reqs slack "'${three:0:12}' in b['text']")"; fi
if count_is webhook "b['revision'] == '$three'" 1; then ok "webhook: the failure once"; else bad "webhook sent the failure more than once" "$(reqs webhook "b['revision'] == '$three'")"; fi
if count_is github "r['path'].endswith('/statuses/$three') and b['state'] == 'failure'" 1; then ok "GitHub: one failure status for the failing revision"; else bad "GitHub failure statuses" "$(reqs github "r['path'].endswith('/statuses/$three')")"; fi

# --- the fake answers 500 twice: retried, then delivered -------------------------
curl -fsS -X POST "$fake/_fail?part=slack&n=2" >/dev/null
tree four && commit "four"
four="$(head_sha)"
webhook >/dev/null
wait_for 60 "Slack: delivered after two 500s" -- count_is slack "'applied at ${four:0:12}' in b['text'] and r['answered'] == 200" 1
if count_is slack "'${four:0:12}' in b['text'] and r['answered'] == 500" 2; then ok "Slack: the two 500s were retried"; else bad "Slack retries" "$(reqs slack "'${four:0:12}' in b['text']")"; fi

# --- the fake hangs: the pass finishes anyway ------------------------------------
curl -fsS -X POST "$fake/_hang?part=webhook&s=30" >/dev/null
failures_before="$(metric 'reconcile_event_sink_failures_total{sink="notifier:hook"}')"
tree five && commit "five"
five="$(head_sha)"
webhook >/dev/null
wait_for 30 "the pass finishes while the webhook hangs" -- applied_is "$five"
wait_for 30 "Slack is told at once, the hanging webhook does not hold it" -- count_is slack "'applied at ${five:0:12}' in b['text']" 1
wait_for 90 "the hanging webhook shows in reconcile_event_sink_failures_total" -- \
  bash -c "[[ \"\$(curl -fsS http://127.0.0.1:$http_port/metrics | awk '\$1==\"reconcile_event_sink_failures_total{sink=\\\"notifier:hook\\\"}\" {print \$2}')\" != \"${failures_before:-0}\" ]]"
curl -fsS -X POST "$fake/_hang?part=webhook&s=0" >/dev/null

# --- a restart: what was sent is not sent again ----------------------------------
curl -fsS -X POST "$fake/_hang?part=webhook&s=0" >/dev/null
stop_pid "$ctl_pid"
ctl_pid=""
if python3 -c "
import json,sys
sent = json.load(open('$work/state/notify/gh.json'))['sent']
sys.exit(0 if any(r['revision'] == '$five' and r['commitState'] == 'success' and 'deployment' in r for r in sent) else 1)"; then
  ok "the record of what was sent is in the state folder (notify/gh.json)"
else bad "no record of the GitHub states sent" "$(cat "$work/state/notify/gh.json" 2>&1)"; fi
start_controller
wait_for 60 "the restarted controller is ready" -- curl -fsS "http://127.0.0.1:$http_port/readyz"
# Its first pass is at the applied revision: a status for it would repeat one.
tree six && commit "six"
six="$(head_sha)"
webhook >/dev/null
wait_for 60 "GitHub: success for the commit after the restart" -- \
  count_is github "r['path'].endswith('/statuses/$six') and b['state'] == 'success'" 1
wait_for 30 "GitLab: success for the commit after the restart" -- \
  count_is gitlab "r['path'].endswith('/statuses/$six') and b['state'] == 'success'" 1
if count_is github "r['path'].endswith('/statuses/$five')" 2 && count_is gitlab "r['path'].endswith('/statuses/$five')" 2; then
  ok "after the restart, the applied revision's statuses are not sent again"
else bad "statuses sent again after the restart" "$(reqs github "r['path'].endswith('/statuses/$five')"; reqs gitlab "r['path'].endswith('/statuses/$five')")"; fi

# --- everything the fake received was valid; no secret in the log -----------------
violations="$(curl -fsS "$fake/_violations")"
if [[ "$violations" == "[]" ]]; then ok "every request matched the API descriptions"; else bad "requests refused by the fake" "$violations"; fi
leaked=""
for s in "$slack_path" "$gh_token" "$gl_token" "$hook_key" "$fake/slack" "$fake/webhook"; do
  grep -qF "$s" "$work/ctl.log" && leaked+="$s "
done
if [[ -z "$leaked" ]]; then ok "no token, key or notification URL in the controller's log"; else bad "secrets in the log: $leaked"; fi
if grep -q "notifier hook: webhook event: no answer" "$work/ctl.log"; then ok "the log names the notifier that timed out"; else bad "no timeout warning in the log" "$(grep -i notifier "$work/ctl.log" | tail)"; fi

echo "# notify: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
