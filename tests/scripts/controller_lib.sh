# Helpers of the script tests that run a real controller over a git daemon
# on loopback (sourced after lib.sh, not a test itself):
#   free_port                       a free TCP port on 127.0.0.1
#   stop_pid PID                    stop one of our own processes, by pid
#   wait_for SECS NAME -- cmd...    poll cmd until it succeeds (ok) or SECS pass (bad)
#   status_json                     GET /api/v1/status of the controller
#   env_is ENV PYEXPR               PYEXPR over e = that environment's status
#   greeting_is ENV TEXT            that environment's first agent with an endpoint answers TEXT
#   metric 'NAME{labels}'           its value on /metrics (empty when absent)
#   metric_is 'NAME{labels}' VALUE
#   git_repo                        a bare origin.git + a clone in $work/clone
#   git_serve                       git daemon over $work on $git_port (pid in $work/daemon.pid)
#   commit MESSAGE                  commit everything in the clone and push it to main
#   webhook                         a signed GitHub push of the clone's HEAD: prints the HTTP code
# The sourcing script sets $work, and before the controller calls
# $http_port, $secret (the webhook secret); the controller logs to $work/ctl.log.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
stop_pid() { [[ -n "$1" ]] && kill "$1" 2>/dev/null && wait "$1" 2>/dev/null; return 0; }
wait_for() {  # wait_for SECONDS NAME -- command...
  local secs=$1 name=$2; shift 3
  local deadline=$((SECONDS + secs))
  while ((SECONDS < deadline)); do
    if "$@" >/dev/null 2>&1; then ok "$name"; return 0; fi
    sleep 0.2
  done
  bad "$name (not within ${secs}s)" "$(tail -30 "$work/ctl.log" 2>/dev/null)"
  return 1
}
status_json() { curl -fsS "http://127.0.0.1:$http_port/api/v1/status"; }
env_is() {  # env_is ENV PYTHON_EXPR (over e = that environment's status)
  status_json | python3 -c "
import json,re,sys
s=json.load(sys.stdin)
e=next(x for x in s['environments'] if x['name']=='$1')
sys.exit(0 if ($2) else 1)"
}
greeting_is() {  # greeting_is ENV TEXT: the environment's agent answers TEXT
  local endpoint
  endpoint="$(status_json | python3 -c "
import json,sys
s=json.load(sys.stdin)
e=next(x for x in s['environments'] if x['name']=='$1')
print(next((a['endpoints'][0] for a in e['agents'] if a['endpoints']), ''))")"
  [[ -n "$endpoint" ]] && curl -fsS "$endpoint/" | grep -qF "\"greeting\":\"$2\""
}
metric() {  # metric 'NAME{labels}': its value (empty when absent)
  local all
  all="$(curl -fsS "http://127.0.0.1:$http_port/metrics")" || return 1
  awk -v k="$1" '$1==k {print $2}' <<<"$all"
}
metric_is() { [[ "$(metric "$1")" == "$2" ]]; }
git_repo() {
  git init -q --bare -b main "$work/origin.git"
  git clone -q "$work/origin.git" "$work/clone" 2>/dev/null
  git -C "$work/clone" config user.email t@example.com && git -C "$work/clone" config user.name test
  git -C "$work/clone" checkout -q -b main
}
git_serve() {
  git_port="$(free_port)"
  git daemon --reuseaddr --base-path="$work" --export-all --enable=receive-pack \
    --listen=127.0.0.1 --port="$git_port" --pid-file="$work/daemon.pid" --detach "$work"
  for _ in $(seq 50); do [[ -s "$work/daemon.pid" ]] && break; sleep 0.1; done
}
stop_git_daemon() { [[ -f "$work/daemon.pid" ]] && kill "$(cat "$work/daemon.pid")" 2>/dev/null; return 0; }
commit() {
  git -C "$work/clone" add -A && git -C "$work/clone" commit -qm "$1" &&
    git -C "$work/clone" push -q origin HEAD:main
}
webhook() {
  local body sig
  body="$(python3 -c 'import json,sys; print(json.dumps({"ref":"refs/heads/main","after":sys.argv[1],"repository":{"full_name":"local/deploy"}}))' "$(git -C "$work/clone" rev-parse HEAD)")"
  sig="sha256=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)"
  curl -sS -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$http_port/hooks/github" \
    -H "X-GitHub-Event: push" -H "X-Hub-Signature-256: $sig" \
    -H "Content-Type: application/json" --data-binary "$body"
}
