#!/usr/bin/env bash
# Drift seen at once, from the Docker Engine's event stream (--watch-events,
# on by default): a controller with --drift-interval 1h (so only an event can
# explain a drift pass) against a real git daemon on loopback and the real
# Docker Engine.
#   (a) heal mode: a container stopped by hand is healed and answers again;
#       the pass came from an event (status trigger, log line, metric)
#   (b) report mode: a container removed by hand is reported, not healed
#   (c) crash loop: with --heal-budget 2, past two heals the agent is only
#       reported, status says why, and drift passes stay bounded
#   (d) reconnect: when the Engine is the one scripts/ensure-dockerd.sh
#       started (its pidfile; so on CI and after `make test`'s set-up), it
#       restarts it: reconcile_event_stream_reconnects_total goes up and drift
#       after the restart is still seen (containers come back by their
#       restart policy). An Engine someone else started is not restarted: the
#       reconnect is then checked by the unit tests "event watch:*" against an
#       engine on a real unix socket instead; the test says which.
#
# Needs: $RECONCILE, $SOURCE_DIR, $BUILD_DIR (set by CTest), git, python3,
# curl, a Docker Engine (started here when missing) and the hello image
# (built here when missing). Stops only its own processes, by pid; removes
# only its own containers (by the agent names it made up).
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}" "${BUILD_DIR:?}"
sock=/var/run/docker.sock
dockerd_pidfile=/var/run/reconcile-dockerd.pid
bash "$SOURCE_DIR/scripts/ensure-dockerd.sh" >/dev/null || { echo "FAIL - no Docker Engine"; exit 1; }
# Ours to restart: the dockerd that scripts/ensure-dockerd.sh started (for this
# test, or for `make test`'s set-up step, as on CI) and recorded by pid. One
# that someone else started is not in the pidfile and is left alone.
our_dockerd=""
if [[ -s "$dockerd_pidfile" ]]; then
  pid="$(cat "$dockerd_pidfile")"
  if [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == dockerd ]]; then our_dockerd="$pid"; fi
fi
bash "$SOURCE_DIR/scripts/hello-image.sh" "$BUILD_DIR" >/dev/null || { echo "FAIL - no hello image"; exit 1; }

api() { curl -fsS --unix-socket "$sock" "$@"; }
work="$(mktemp -d)"
p="v$(printf '%04x' $((RANDOM % 65536)))"  # agent name prefix, unique per run
passed=0
failed=0
ctl_pid=""
source "$SOURCE_DIR/tests/scripts/controller_lib.sh"
cleanup() {
  stop_pid "$ctl_pid"
  stop_git_daemon
  "$RECONCILE" destroy "$work/clone/deploy" --state "$work/state" --auto-approve --no-color \
    >/dev/null 2>&1 || true
  for name in "$p-web" "$p-side"; do
    id="$(container_id "$name")"
    [[ -n "$id" ]] && api -X DELETE "http://d/v1.41/containers/$id?force=1" >/dev/null 2>&1
  done
  rm -rf "$work"
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); echo "ok   - $1"; }
bad() { failed=$((failed + 1)); echo "FAIL - $1"; [[ -n "${2:-}" ]] && sed 's/^/       /' <<<"$2" | tail -40; }
container_id() {
  api "http://d/v1.41/containers/json?all=1" 2>/dev/null |
    python3 -c "import json,sys; print(next((c['Id'] for c in json.load(sys.stdin) if '/$1' in c['Names']), ''))"
}
container_running() {
  api "http://d/v1.41/containers/json" |
    python3 -c "import json,sys; sys.exit(0 if any('/$1' in c['Names'] for c in json.load(sys.stdin)) else 1)"
}
status_is() {  # status_is PYTHON_EXPR (over s = the status JSON)
  status_json | python3 -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if ($1) else 1)"
}
agent_is() {  # agent_is AGENT PYTHON_EXPR (over a = that agent's status)
  status_is "any(a['name'] == '$1' and ($2) for a in s['agents'])"
}
answers() {  # answers AGENT: its endpoint answers with its greeting
  local endpoint
  endpoint="$(status_json | python3 -c "import json,sys; s=json.load(sys.stdin); print(next((a['endpoints'][0] for a in s['agents'] if a['name']=='$1' and a['endpoints']), ''))")"
  [[ -n "$endpoint" ]] && curl -fsS -m 2 "$endpoint/" | grep -qF '"greeting":"hello"'
}
drift_passes() { grep -c "drift pass start" "$work/ctl.log"; }
start_controller() {  # start_controller [more flags]
  http_port="$(free_port)"
  "$RECONCILE" --no-color controller --repo "git://127.0.0.1:$git_port/origin.git" --branch main \
    --path deploy --state "$work/state" --listen "127.0.0.1:$http_port" --interval 1h \
    --drift-interval 1h --webhook-secret-file "$work/hook.secret" "$@" >"$work/ctl.log" 2>&1 &
  ctl_pid=$!
  wait_for 20 "the controller answers /healthz" -- curl -fsS "http://127.0.0.1:$http_port/healthz"
  wait_for 60 "the controller is ready (the branch is applied)" -- \
    curl -fsS "http://127.0.0.1:$http_port/readyz"
}
stop_container() { api -X POST "http://d/v1.41/containers/$(container_id "$1")/stop?t=1" >/dev/null; }

# --- a repository served by a real git daemon on loopback --------------------
git_repo
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
  env: {GREETING: hello}
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
  env: {GREETING: hello}
  healthCheck: {path: /health, interval: 100ms, timeout: 1s, retries: 50}
  drift: {mode: report}
YAML
commit "agents"
git_serve
printf 'drift-events-secret\n' >"$work/hook.secret"

start_controller --heal-budget 10
wait_for 30 "the heal-mode agent answers" -- answers "$p-web"
wait_for 10 "the controller follows the Engine's events" -- \
  grep -q "drift watch: target local (docker): following its events" "$work/ctl.log"

# --- (a) heal mode: docker stop by hand -> healed at once, from an event -----
before="$(drift_passes)"
stop_container "$p-web"
wait_for 20 "(a) a container stopped by hand is healed and answers again" -- answers "$p-web"
wait_for 10 "(a) status shows it healed by a drift pass from an event" -- \
  status_is "s['lastPass']['kind'] == 'drift' and s['lastPass']['trigger'] == 'event' and s['driftWatch']['eventPasses'] >= 1"
if agent_is "$p-web" "a['drift'] == 'healed'" || grep -q "drift: agent $p-web healed" "$work/ctl.log"; then
  ok "(a) the agent is reported healed"
else
  bad "(a) no heal recorded" "$(status_json)"
fi
if grep -q "drift: agent $p-web: container stopped (docker event); drift pass" "$work/ctl.log"; then
  ok "(a) the log says the docker event started the drift pass"
else
  bad "(a) no event log line" "$(grep drift "$work/ctl.log" | tail -20)"
fi
events="$(metric 'reconcile_drift_events_total{environment="default"}')"
if [[ -n "$events" ]] && python3 -c "import sys; sys.exit(0 if float('$events') >= 1 else 1)"; then
  ok "(a) reconcile_drift_events_total counts the events ($events)"
else
  bad "(a) reconcile_drift_events_total is '$events'"
fi
sleep 2  # the heal's own events make at most one more pass, which changes nothing
after="$(drift_passes)"
# At most three: the Engine's die event can precede its listing showing the
# container exited (that pass finds nothing), then stop; the heal; one pass
# for the heal's own events, which changes nothing.
if ((after - before >= 1 && after - before <= 3)); then
  ok "(a) one stop cost $((after - before)) drift pass(es) (at most 3)"
else
  bad "(a) one stop cost $((after - before)) drift passes" "$(grep 'pass start\|drift' "$work/ctl.log" | tail -20)"
fi

# --- (b) report mode: docker rm -f -> reported, not healed --------------------
api -X DELETE "http://d/v1.41/containers/$(container_id "$p-side")?force=1" >/dev/null
wait_for 20 "(b) a container removed by hand is reported in status" -- \
  agent_is "$p-side" "a['drift'] == 'reported'"
sleep 1
if [[ -z "$(container_id "$p-side")" ]]; then ok "(b) a report-mode agent is not recreated"; else bad "(b) the report-mode agent was recreated"; fi
if grep -q "drift: agent $p-side: container removed (docker event); drift pass" "$work/ctl.log"; then
  ok "(b) the log names the removal"
else
  bad "(b) no removal log line" "$(grep drift "$work/ctl.log" | tail -20)"
fi

# --- (d) reconnect after an Engine restart ----------------------------------------
if [[ -n "$our_dockerd" ]] && kill -0 "$our_dockerd" 2>/dev/null; then
  echo "# (d) reconnect: the Engine is ours (pid $our_dockerd, scripts/ensure-dockerd.sh): restarting it"
  r0="$(metric 'reconcile_event_stream_reconnects_total')"
  r0="${r0:-0}"
  log_lines0=$(wc -l <"$work/ctl.log")  # only lines after the restart count
  kill "$our_dockerd"
  for _ in $(seq 300); do kill -0 "$our_dockerd" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$our_dockerd" 2>/dev/null; then bad "(d) the Engine did not stop"; fi
  wait_for 10 "(d) the controller notices the lost stream" -- \
    bash -c "tail -n +$((log_lines0 + 1)) '$work/ctl.log' | grep -q 'drift watch: .*; reconnecting'"
  bash "$SOURCE_DIR/scripts/ensure-dockerd.sh" >/dev/null || bad "(d) the Engine did not start again"
  # A function, so that the metric is read again at each try.
  reconnected() {
    local now
    now="$(metric reconcile_event_stream_reconnects_total)"
    python3 -c "import sys; sys.exit(0 if float('${now:-0}') > float('$r0') else 1)"
  }
  wait_for 30 "(d) reconcile_event_stream_reconnects_total goes up" -- reconnected ||
    echo "# the drift watch's lines: $(grep 'drift watch' "$work/ctl.log" | tail -10)"
  wait_for 30 "(d) after the restart (resync pass) the heal-mode agent answers" -- answers "$p-web"
  n0="$(status_json | python3 -c "import json,sys; print(json.load(sys.stdin)['driftWatch']['eventPasses'])")"
  stop_container "$p-web"
  wait_for 20 "(d) drift after the restart is still seen from the events" -- \
    status_is "s['driftWatch']['eventPasses'] > $n0 and s['lastPass']['trigger'] == 'event'"
  wait_for 20 "(d) and healed" -- answers "$p-web"
else
  echo "# (d) reconnect: the Docker Engine was not started by scripts/ensure-dockerd.sh (not ours to restart);"
  echo "#     checking the reconnect against an engine on a real unix socket (unit tests 'event watch:*')"
  out="$("$BUILD_DIR/tests/reconcile_unit_tests" -tc="event watch:*" 2>&1)"
  if grep -q "Status: SUCCESS" <<<"$out" && grep -q "test cases: *3 | *3 passed" <<<"$out"; then
    ok "(d) the watch reconnects and resyncs (unit tests 'event watch:*')"
  else
    bad "(d) unit tests 'event watch:*'" "$out"
  fi
fi
stop_pid "$ctl_pid"; ctl_pid=""

# --- (c) crash loop: past --heal-budget 2 only reported, and bounded ---------
start_controller --heal-budget 2
wait_for 30 "(c) the heal-mode agent answers" -- answers "$p-web"
before="$(drift_passes)"
for heal in 1 2; do
  stop_container "$p-web"
  wait_for 20 "(c) stop $heal is healed" -- answers "$p-web"
  sleep 1  # the next stop is a new burst
done
stop_container "$p-web"
wait_for 20 "(c) past the budget the drift is only reported, and status says why" -- \
  agent_is "$p-web" "a['drift'] == 'reported' and a['driftReason'].startswith('heal budget exhausted')"
if ! container_running "$p-web"; then ok "(c) the third stop is not healed"; else bad "(c) healed past the budget"; fi
if grep -q "drift: agent $p-web not healed: heal budget exhausted" "$work/ctl.log"; then ok "(c) the log says why"; else bad "(c) no budget log line"; fi
sleep 3
n1="$(drift_passes)"
sleep 3
n2="$(drift_passes)"
if ((n2 == n1)); then ok "(c) no drift pass runs by itself once it is only reported"; else bad "(c) drift passes keep running ($n1 -> $n2)"; fi
if ((n2 - before <= 9)); then
  ok "(c) three stops cost $((n2 - before)) drift passes (at most 9)"
else
  bad "(c) three stops cost $((n2 - before)) drift passes" "$(grep 'pass start\|drift' "$work/ctl.log" | tail -30)"
fi
withheld="$(metric 'reconcile_heals_withheld_total{environment="default"}')"
if [[ -n "$withheld" ]] && python3 -c "import sys; sys.exit(0 if float('$withheld') >= 1 else 1)"; then ok "(c) reconcile_heals_withheld_total counts it"; else bad "(c) reconcile_heals_withheld_total is '$withheld'"; fi
stop_pid "$ctl_pid"; ctl_pid=""

# --- --watch-events=false: no watch; the scan alone -------------------------------
start_controller --watch-events=false
if grep -q "drift watch: target" "$work/ctl.log"; then bad "--watch-events=false still watches"; else ok "--watch-events=false starts no watch"; fi
if grep -q -- "--watch-events=false: drift is found at --drift-interval only" "$work/ctl.log"; then ok "--watch-events=false says so"; else bad "--watch-events=false is not logged"; fi
stop_pid "$ctl_pid"; ctl_pid=""

echo "drift_events_test: $passed passed, $failed failed"
((failed == 0))
