#!/usr/bin/env bash
# The status page in a real headless browser (Debian's chromium, driven over
# the DevTools protocol by status_page_browser.py): a real controller behind
# --status-token-file follows a git daemon on loopback and runs the hello
# image on the real Docker Engine. The page loads without console errors,
# the DOM shows the agents and their health, a screenshot is kept under
# $BUILD_DIR/test-artifacts/, a commit (new greeting, new agent) shows up
# without a reload through the event stream, and the page works with
# JavaScript disabled. Without the token /, /events and /api/v1/status answer
# 401; the token never reaches the log.
#
# Needs: $RECONCILE, $SOURCE_DIR, $BUILD_DIR (set by CTest), git, python3,
# chromium and fonts-dejavu-core (scripts/bootstrap.sh), a Docker Engine
# (started here when missing) and the hello image (built here when
# missing). Starts and stops only its own processes, by pid; removes only
# its own containers (by the agent names it made up).
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}" "${BUILD_DIR:?}"
command -v chromium >/dev/null || { echo "FAIL - no chromium (run scripts/bootstrap.sh)"; exit 1; }
bash "$SOURCE_DIR/scripts/ensure-dockerd.sh" >/dev/null || { echo "no Docker Engine"; exit 1; }
bash "$SOURCE_DIR/scripts/hello-image.sh" "$BUILD_DIR" >/dev/null || { echo "no hello image"; exit 1; }

sock=/var/run/docker.sock
api() { curl -fsS --unix-socket "$sock" "$@"; }
work="$(mktemp -d)"
p="sp$(printf '%04x' $((RANDOM % 65536)))"  # agent name prefix, unique per run
passed=0
failed=0
ctl_pid=""
ok() { passed=$((passed + 1)); echo "ok   - $1"; }
bad() { failed=$((failed + 1)); echo "FAIL - $1"; [[ -n "${2:-}" ]] && sed 's/^/       /' <<<"$2" | tail -40; }

# free_port, stop_pid, wait_for, git_repo, git_serve, commit
source "$SOURCE_DIR/tests/scripts/controller_lib.sh"
cleanup() {
  stop_pid "$ctl_pid"
  stop_git_daemon
  "$RECONCILE" destroy "$work/clone/deploy" --state "$work/state" --auto-approve --no-color \
    >/dev/null 2>&1 || true
  for name in "$p-web" "$p-side" "$p-new"; do
    id="$(api "http://d/v1.41/containers/json?all=1" | python3 -c "import json,sys; print(next((c['Id'] for c in json.load(sys.stdin) if '/$name' in c['Names']), ''))")"
    [[ -n "$id" ]] && api -X DELETE "http://d/v1.41/containers/$id?force=1" >/dev/null 2>&1
  done
  rm -rf "$work"
}
trap cleanup EXIT

token="page-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$token" >"$work/status.token"
status_json() { curl -fsS -H "Authorization: Bearer $token" "http://127.0.0.1:$http_port/api/v1/status"; }
agent() {  # agent NAME GREETING: an Agent document
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
YAML
}
tree() {  # tree GREETING [more agents...]
  mkdir -p "$work/clone/deploy"
  {
    cat <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: local}
spec:
  provider: docker
  docker: {publishAddress: 127.0.0.1}
YAML
    agent "$p-web" "$1"
    agent "$p-side" side
    for extra in "${@:2}"; do agent "$extra" "$extra"; done
  } >"$work/clone/deploy/deploy.yaml"
}
healthy() {  # healthy NAME...: every named agent is healthy in the status
  status_json | python3 -c "
import json,sys
s=json.load(sys.stdin)
h={a['name']: a['health'] for a in s['agents']}
sys.exit(0 if all(h.get(n)=='healthy' for n in sys.argv[1:]) else 1)" "$@"
}

git_repo
tree one && commit one
git_serve
http_port="$(free_port)"
"$RECONCILE" --no-color controller --repo "git://127.0.0.1:$git_port/origin.git" --branch main \
  --path deploy --state "$work/state" --listen "127.0.0.1:$http_port" --interval 1s \
  --drift-interval 1h --status-token-file "$work/status.token" >>"$work/ctl.log" 2>&1 &
ctl_pid=$!
wait_for 20 "the controller answers /healthz" -- curl -fsS "http://127.0.0.1:$http_port/healthz"
wait_for 90 "both agents are deployed and healthy" -- healthy "$p-web" "$p-side"

# --- the token ----------------------------------------------------------------
code() { curl -sS -o /dev/null -w '%{http_code}' "$@"; }
base="http://127.0.0.1:$http_port"
for path in / /events /api/v1/status; do
  c="$(code "$base$path")"
  [[ "$c" == 401 ]] && ok "GET $path without the token: 401" || bad "GET $path without the token: $c"
done
c="$(code -H "Authorization: Bearer wrong-$token" "$base/")"
[[ "$c" == 401 ]] && ok "GET / with a wrong token: 401" || bad "GET / with a wrong token: $c"
page="$(curl -fsS -H "Authorization: Bearer $token" "$base/")"
if grep -qF "id=\"agent-default-$p-web\"" <<<"$page"; then
  ok "GET / with the token: 200, the page lists the agents"
else
  bad "GET / with the token" "$page"
fi
csp="$(curl -fsS -D - -o /dev/null "$base/?token=$token" | tr -d '\r' | grep -i '^content-security-policy:')"
if grep -q "script-src 'sha256-" <<<"$csp" && ! grep -q "unsafe-inline" <<<"$csp"; then
  ok "?token= works too; the CSP allows the script by its hash only"
else
  bad "the page's CSP: $csp"
fi

# --- the browser ----------------------------------------------------------------
mkdir -p "$BUILD_DIR/test-artifacts"
shot="$BUILD_DIR/test-artifacts/status_page.png"
update="cd '$work' && { $(declare -f agent tree commit); p='$p'; work='$work'; tree two '$p-new' && commit two >/dev/null && git -C '$work/clone' rev-parse HEAD; }"
out="$(python3 "$SOURCE_DIR/tests/scripts/status_page_browser.py" --url "$base/?token=$token" \
  --env default --agent "$p-web=healthy" --agent "$p-side=healthy" --screenshot "$shot" \
  --update "$update" --new-agent "$p-new" 2>&1)"
echo "$out"
passed=$((passed + $(grep -c '^ok   - ' <<<"$out")))
failed=$((failed + $(grep -c '^FAIL - ' <<<"$out")))
grep -q '^ok   - ' <<<"$out" || bad "the browser helper reported nothing"
[[ -s "$shot" ]] && echo "screenshot: $shot"

# The page's live update came from the new revision: the status agrees.
wait_for 30 "the new agent is healthy in the status" -- healthy "$p-new"
# A broken commit: the page shows the pass as invalid and the error at file:line.
tree three "$p-new"
sed -i 's/port: 8080/port: 70000/' "$work/clone/deploy/deploy.yaml"
commit broken
invalid() { status_json | python3 -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if (s.get('lastPass') or {}).get('result')=='invalid' else 1)"; }
wait_for 30 "the broken commit is seen as invalid" -- invalid
page="$(curl -fsS -H "Authorization: Bearer $token" "$base/")"
if grep -qE '<code class="at">(deploy/)?deploy.yaml:[0-9]+:[0-9]+</code> error: spec.port' <<<"$page" &&
  grep -qF 'result-invalid' <<<"$page"; then
  ok "the page shows the invalid pass and its error at file:line"
else
  bad "no invalid pass with file:line on the page" "$(grep -E 'diagnostics|error' <<<"$page" | head)"
fi

if grep -qF "$token" "$work/ctl.log"; then
  bad "the token appears in the controller's log" "$(grep -F "$token" "$work/ctl.log" | head -3)"
else
  ok "the token never appears in the controller's log"
fi

echo "passed: $passed, failed: $failed"
[[ $failed -eq 0 && $passed -gt 0 ]]
