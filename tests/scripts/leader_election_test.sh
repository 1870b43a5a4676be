#!/usr/bin/env bash
# `reconcile controller --leader-elect` for real: two, then three
# controllers on one coordination.k8s.io/v1 Lease of a REAL kube-apiserver
# (tests/scripts/kube_lib.sh), a file:// Git repository and the real Docker
# Engine with the hello-agent image. The controllers share one state folder
# (as replicas sharing a volume would), use a service account whose Role
# allows exactly create on Leases and get/update on its one Lease (the
# chart's), and short lease flags.
#
# Checks: one leader, followers ready with reconcile_leader 0; a signed
# webhook POSTed to a follower is handed over through the Lease and ends in
# a deploy by the leader; SIGKILL of the leader: another takes over within
# lease duration + retry period (measured and printed); SIGTERM releases the
# lease at once (a follower takes over well before the lease duration); a
# leader cut off from the API server (a TCP proxy this test starts, then
# kills) stops its pass and says so BEFORE another one starts leading
# (compared through its log and the Lease the API server holds); and, over
# every controller's log and the state's history, exactly one applied at
# any time: pass intervals never overlap, each term has one holder, each
# history entry was written by one controller, and no one ever met the
# state lock held.
#
# No kubelet runs: nothing here needs a pod. Fails (never skips) when the
# API server, kubectl, Docker or the image is missing. Starts and stops only
# its own processes, by pid; removes only its own containers.
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}" "${BUILD_DIR:?}"
source "$SOURCE_DIR/tests/scripts/lib.sh"
bash "$SOURCE_DIR/scripts/ensure-dockerd.sh" >/dev/null || { echo "FAIL - no Docker Engine"; exit 1; }
bash "$SOURCE_DIR/scripts/hello-image.sh" "$BUILD_DIR" >/dev/null || { echo "FAIL - no hello image"; exit 1; }
source "$SOURCE_DIR/tests/scripts/kube_lib.sh" || { echo "FAIL - no tests/scripts/kube_lib.sh"; exit 1; }

sock=/var/run/docker.sock
api() { curl -fsS --unix-socket "$sock" "$@"; }
work="$(mktemp -d)"
p="le$(printf '%04x' $((RANDOM % 65536)))"  # agent name prefix, unique per run
passed=0
failed=0
declare -A pid port kc
proxy_pid=""
ns=reconcile-le

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cleanup() {
  for n in "${!pid[@]}"; do
    [[ -n "${pid[$n]}" ]] && kill "${pid[$n]}" 2>/dev/null && wait "${pid[$n]}" 2>/dev/null
  done
  [[ -n "$proxy_pid" ]] && kill "$proxy_pid" 2>/dev/null
  "$RECONCILE" destroy "$work/clone/deploy" --state "$work/state" --auto-approve --no-color \
    >/dev/null 2>&1 || true
  for name in "$p-web" "$p-slow"; do
    id="$(container_id "$name")"
    [[ -n "$id" ]] && api -X DELETE "http://d/v1.41/containers/$id?force=1" >/dev/null 2>&1
  done
  kube_stop >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

log_of() { cat "$work/$1.log" 2>/dev/null; }
# wait_for SECONDS NAME -- command...: polls the command until it succeeds.
wait_for() {
  local secs=$1 name=$2; shift 3
  local deadline=$((SECONDS + secs))
  while ((SECONDS < deadline)); do
    if "$@" >/dev/null 2>&1; then ok "$name"; return 0; fi
    sleep 0.1
  done
  bad "$name (not within ${secs}s)" "$(for n in "${!port[@]}"; do echo "== $n"; log_of "$n" | tail -8; done)"
  return 1
}
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# --- the API server, a namespace and a least-privilege service account -------
kube_start "$work/kube" --no-trap || { echo "FAIL - the kube-apiserver did not start"; exit 1; }
k() { "$KUBECTL" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }
k create namespace "$ns" >/dev/null
k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: ServiceAccount
metadata: {name: reconcile, namespace: $ns}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reconcile-leader-election, namespace: $ns}
rules:
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [create]
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    resourceNames: [reconcile-controller]
    verbs: [get, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reconcile-leader-election, namespace: $ns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reconcile-leader-election}
subjects: [{kind: ServiceAccount, name: reconcile, namespace: $ns}]
YAML
sa_token="$(kube_sa_token "$ns" reconcile)"
[[ -n "$sa_token" ]] || { echo "FAIL - no service-account token"; exit 1; }
kube_kubeconfig "$work/sa.kubeconfig" reconcile "$sa_token" "$ns"
sa="system:serviceaccount:$ns:reconcile"
if [[ "$(k auth can-i update leases/reconcile-controller -n "$ns" --as "$sa")" == yes &&
      "$(k auth can-i update leases/another -n "$ns" --as "$sa")" == no &&
      "$(k auth can-i delete leases/reconcile-controller -n "$ns" --as "$sa")" == no &&
      "$(k auth can-i get secrets -n "$ns" --as "$sa")" == no ]]; then
  ok "the controllers' service account may create Leases and get/update its own, nothing more"
else
  bad "the service account's rights are not as set up"
fi
printf 'Authorization: Bearer %s\n' "$KUBE_ADMIN_TOKEN" >"$work/admin.header"
lease_json() {
  curl -fsS --cacert "$KUBE_CA" -H "@$work/admin.header" \
    "$KUBE_SERVER/apis/coordination.k8s.io/v1/namespaces/$ns/leases/reconcile-controller"
}
lease_field() {  # lease_field PYTHON_EXPR over l (the Lease)
  lease_json 2>/dev/null | python3 -c "import json,sys; l=json.load(sys.stdin); print($1)" 2>/dev/null
}
holder() { lease_field "l['spec'].get('holderIdentity') or ''"; }
# wait_holder SECONDS NOT...: waits until the Lease names a holder other than
# NOT...; prints it.
wait_holder() {
  local deadline=$(( $(now_ms) + $1 * 1000 )); shift
  local h
  while (( $(now_ms) < deadline )); do
    h="$(holder)"
    if [[ -n "$h" ]] && ! printf '%s\n' "$@" | grep -qxF -- "$h"; then echo "$h"; return 0; fi
    sleep 0.05
  done
  return 1
}

# --- a repository (file://) and the desired state -----------------------------
git init -q --bare -b main "$work/origin.git"
git clone -q "$work/origin.git" "$work/clone" 2>/dev/null
git -C "$work/clone" config user.email t@example.com && git -C "$work/clone" config user.name test
git -C "$work/clone" checkout -q -b main 2>/dev/null
tree() {  # tree GREETING [extra agent doc]
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
YAML
  [[ -n "${2:-}" ]] && printf '%s\n' "$2" >>"$work/clone/deploy/deploy.yaml"
  return 0
}
commit() {
  git -C "$work/clone" add -A && git -C "$work/clone" commit -qm "$1" &&
    git -C "$work/clone" push -q origin HEAD:main
}
tree one && commit one
printf 'le-canary-secret-%s\n' "$RANDOM$RANDOM" >"$work/hook.secret"
secret="$(head -c -1 "$work/hook.secret")"

# start NAME LEASE RENEW RETRY [KUBECONFIG]: one controller replica.
start() {
  local n=$1
  port[$n]="$(free_port)"
  kc[$n]="${5:-$work/sa.kubeconfig}"
  "$RECONCILE" --no-color --log-format json controller --repo "file://$work/origin.git" \
    --branch main --path deploy --state "$work/state" --listen "127.0.0.1:${port[$n]}" \
    --interval 1h --drift-interval 1h --webhook-secret-file "$work/hook.secret" \
    --leader-elect --leader-elect-identity "$n" --kubeconfig "${kc[$n]}" \
    --leader-elect-lease-duration "$2" --leader-elect-renew-deadline "$3" \
    --leader-elect-retry-period "$4" >>"$work/$n.log" 2>&1 &
  pid[$n]=$!
}
url() { echo "http://127.0.0.1:${port[$1]}$2"; }
status_of() { curl -fsS "$(url "$1" /api/v1/status)"; }
leader_gauge() { curl -fsS "$(url "$1" /metrics)" | awk '$1 == "reconcile_leader" {print $2}'; }
greeting_is() {  # greeting_is TEXT: the agent answers TEXT (endpoint from docker)
  local hp
  hp="$(api "http://d/v1.41/containers/json" | python3 -c "
import json,sys
for c in json.load(sys.stdin):
    if '/$p-web' in c['Names']:
        for pt in c['Ports']:
            if pt.get('PublicPort'): print(pt['PublicPort']); sys.exit(0)")"
  [[ -n "$hp" ]] && curl -fsS "http://127.0.0.1:$hp/" | grep -qF "\"greeting\":\"$1\""
}
webhook() {  # webhook NAME: a signed GitHub push to NAME; prints "CODE BODY"
  local body sig
  body="$(python3 -c 'import json,sys; print(json.dumps({"ref":"refs/heads/main","after":sys.argv[1]}))' "$(git -C "$work/clone" rev-parse HEAD)")"
  sig="sha256=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)"
  curl -sS -w ' %{http_code}' -X POST "$(url "$1" /hooks/github)" -H "X-GitHub-Event: push" \
    -H "X-Hub-Signature-256: $sig" -H "Content-Type: application/json" --data-binary "$body"
}
passes_done() {  # passes_done NAME: every pass NAME started has ended
  local s e
  s="$(grep -c 'pass start: ' "$work/$1.log")"; e="$(grep -c 'pass end: ' "$work/$1.log")"
  [[ "$s" -eq "$e" ]]
}
stop_ctl() {  # stop_ctl NAME SIGNAL: signal it, wait; sets $code
  kill -"$2" "${pid[$1]}" 2>/dev/null; wait "${pid[$1]}" 2>/dev/null; code=$?; pid[$1]=""
}

# --- two controllers: one leads, one follows -------------------------------------
start a 4s 3s 1s
start b 4s 3s 1s
leader="$(wait_holder 30)" || { bad "no controller became leader within 30s" "$(log_of a; log_of b)"; exit 1; }
case "$leader" in a) follower=b ;; b) follower=a ;; *) bad "unknown holder '$leader'"; exit 1 ;; esac
ok "one of two controllers holds the Lease ($leader)"
wait_for 60 "the leader's first pass deploys the branch" -- greeting_is one
wait_for 20 "the follower answers /healthz" -- curl -fsS "$(url $follower /healthz)"
wait_for 20 "the follower is ready (it follows)" -- curl -fsS "$(url $follower /readyz)"
wait_for 20 "the leader is ready" -- curl -fsS "$(url $leader /readyz)"
if [[ "$(leader_gauge $leader)" == 1 && "$(leader_gauge $follower)" == 0 ]]; then
  ok "reconcile_leader is 1 on the leader, 0 on the follower"
else
  bad "reconcile_leader: leader $(leader_gauge $leader), follower $(leader_gauge $follower)"
fi
if status_of $follower | python3 -c "import json,sys; s=json.load(sys.stdin)['leaderElection']; sys.exit(0 if s['leader']=='$leader' and not s['isLeader'] and s['identity']=='$follower' else 1)"; then
  ok "the follower's /api/v1/status names the leader"
else
  bad "the follower's status" "$(status_of $follower)"
fi
metrics="$(curl -fsS "$(url $leader /metrics)")"
if grep -q '^reconcile_leader_transitions_total 1' <<<"$metrics"; then ok "the leader counts one transition"; else bad "no leader transition counted"; fi
if [[ "$(lease_field "l['metadata']['labels'].get('reconcile.dev/managed-by','')")" == reconcile ]]; then ok "the Lease carries reconcile.dev/managed-by=reconcile"; else bad "the Lease lacks the ownership label" "$(lease_json)"; fi
if [[ "$(lease_field "l['spec']['leaseDurationSeconds']")" == 4 ]]; then ok "leaseDurationSeconds is the flag's 4s"; else bad "leaseDurationSeconds" "$(lease_json)"; fi

# --- a webhook reaching the follower is handed to the leader -------------------
tree two && commit two
out="$(webhook $follower)"
if [[ "$out" == *" 202" && "$out" == *"handed to the leader $leader through the Lease $ns/reconcile-controller"* ]]; then
  ok "the follower answers 202: handed to the leader"
else
  bad "the follower's webhook answer" "$out"
fi
wait_for 30 "the handed-over webhook ends in a deploy by the leader" -- greeting_is two
if log_of $leader | grep -q 'a webhook was handed to us'; then ok "the leader's log shows the hand-over"; else bad "the leader's log lacks the hand-over"; fi
if ! log_of $follower | grep -q 'pass start: '; then ok "the follower ran no pass"; else bad "the follower ran a pass" "$(log_of $follower | grep 'pass start')"; fi
out="$(log_of $follower; log_of $leader)"
lacks "the webhook secret never reaches the logs" "$secret" "$out"
lacks "the service-account token never reaches the logs" "$sa_token" "$out"

# --- three controllers; SIGKILL of the leader -------------------------------------
start c 4s 3s 1s
wait_for 20 "a third controller follows (ready)" -- curl -fsS "$(url c /readyz)"
wait_for 30 "the leader is idle before it is killed" -- passes_done $leader
sleep 1.5  # a renew or two after the last pass
t0=$(now_ms)
stop_ctl $leader KILL
killed=$leader
leader="$(wait_holder 30 "$killed")" || { bad "no one took over after SIGKILL"; leader=""; }
ms=$(( $(now_ms) - t0 ))
echo "# hand-over after SIGKILL of the leader: $ms ms (lease 4s + retry 1s = 5000 ms)"
if [[ -n "$leader" && $ms -le 6000 ]]; then
  ok "another controller ($leader) takes over within lease duration + retry period (${ms} ms, 1 s slack)"
else
  bad "hand-over after SIGKILL took ${ms} ms"
fi
if [[ "$(lease_field "l['spec']['leaseTransitions']")" -ge 1 ]]; then ok "leaseTransitions counts the hand-over"; else bad "leaseTransitions" "$(lease_json)"; fi
follower=""
for n in b c a; do [[ -n "${pid[$n]:-}" && "$n" != "$leader" ]] && follower=$n; done
tree three && commit three
out="$(webhook $follower)"
[[ "$out" == *" 202"* ]] && ok "a webhook to the remaining follower is accepted" || bad "webhook: $out"
wait_for 30 "the new leader deploys the next commit" -- greeting_is three

# --- SIGTERM releases the lease at once -------------------------------------------
wait_for 30 "the leader is idle before SIGTERM" -- passes_done $leader
t0=$(now_ms)
stop_ctl $leader TERM
termed=$leader
if [[ $code -eq 0 ]]; then ok "SIGTERM: the leader exits 0"; else bad "SIGTERM: exit $code" "$(log_of $termed | tail -5)"; fi
leader="$(wait_holder 30 "$termed")" || { bad "no one took over after SIGTERM"; leader=""; }
ms=$(( $(now_ms) - t0 ))
echo "# hand-over after SIGTERM of the leader: $ms ms (the lease was released; lease duration 4000 ms)"
if [[ -n "$leader" && $ms -lt 3000 ]]; then ok "SIGTERM releases the lease: $leader leads after ${ms} ms, well before the 4 s lease"; else bad "hand-over after SIGTERM took ${ms} ms"; fi
if log_of $termed | grep -q "leader election: $termed released the lease $ns/reconcile-controller"; then ok "the log says the lease was released"; else bad "no release in the log" "$(log_of $termed | tail -5)"; fi
tree four && commit four
out="$(webhook $leader)"
if [[ "$out" == *" 202" && "$out" != *"handed to the leader"* ]]; then ok "a webhook to the leader triggers it directly"; else bad "webhook to the leader: $out"; fi
wait_for 30 "the last replica deploys the next commit" -- greeting_is four
wait_for 30 "the leader is idle" -- passes_done $leader
stop_ctl $leader TERM

# --- a leader cut off from the API server stops before another one leads -------
# d reaches the API server only through a TCP proxy this test owns. Lease 5s,
# renew deadline 2s, retry 1s: d must stop within 2s (+ one 1s call) of its
# last renew, the others may take over 5s after they last saw it renewed.
proxy_port="$(free_port)"
cat >"$work/proxy.py" <<'PY'
import socket, sys, threading
listen, target = int(sys.argv[1]), ("127.0.0.1", int(sys.argv[2]))
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen))
srv.listen(64)
def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
while True:
    client, _ = srv.accept()
    try:
        upstream = socket.create_connection(target)
    except OSError:
        client.close()
        continue
    threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
    threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
PY
api_port="${KUBE_SERVER##*:}"
python3 "$work/proxy.py" "$proxy_port" "$api_port" &
proxy_pid=$!
sed "s#server: .*#server: https://127.0.0.1:$proxy_port#" "$work/sa.kubeconfig" >"$work/proxied.kubeconfig"
start d 5s 2s 1s "$work/proxied.kubeconfig"
if [[ "$(wait_holder 20)" == d ]]; then ok "d (through the proxy) takes the released lease"; else bad "d did not lead" "$(log_of d | tail -5)"; fi
start e 5s 2s 1s
start f 5s 2s 1s
wait_for 20 "e follows" -- curl -fsS "$(url e /readyz)"
wait_for 20 "f follows" -- curl -fsS "$(url f /readyz)"
wait_for 30 "d is idle" -- passes_done d
slow="---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $p-slow}
spec:
  image: reconcile/hello-agent:0.1.0
  target: local
  port: 8080
  env: {HEALTH_FAIL: \"1\"}
  healthCheck: {path: /health, interval: 1s, timeout: 1s, retries: 8}"
tree five "$slow" && commit "five, and an agent that never gets healthy"
webhook e >/dev/null  # handed over to d
wait_for 30 "d is in a pass (waiting for the never-healthy agent)" -- \
  bash -c "grep -q '$p-slow: create started' '$work/d.log'"
sleep 0.5
kill -KILL "$proxy_pid"; wait "$proxy_pid" 2>/dev/null; proxy_pid=""
t_cut=$(now_ms)
new="$(wait_holder 30 d)" || { bad "no one took over from the cut-off leader"; new=""; }
echo "# hand-over from a leader cut off from the API server: $(( $(now_ms) - t_cut )) ms after the cut"
wait_for 10 "d says it stopped leading" -- grep -q 'leader election: d stopped leading: could not renew' "$work/d.log"
wait_for 10 "d says it stopped applying" -- grep -q 'leader election: d stopped applying' "$work/d.log"
order="$(python3 - "$work/d.log" "$work/$new.log" "$(lease_field "l['spec']['acquireTime']")" "$new" <<'PY'
import json, sys
from datetime import datetime, timezone
def at(text):
    return datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")
def first(path, needle):
    for line in open(path):
        try:
            j = json.loads(line)
        except ValueError:
            continue
        if needle in j["msg"]:
            return at(j["time"]), j["msg"]
    return None, None
stopped, _ = first(sys.argv[1], "leader election: d stopped applying")
cancelled = None
for line in open(sys.argv[1]):
    try:
        j = json.loads(line)
    except ValueError:
        continue
    if j["msg"].startswith("apply pass end: ") and "(leader d," in j["msg"]:
        cancelled = at(j["time"]), j["msg"]
became, _ = first(sys.argv[2], "leader election: %s became leader" % sys.argv[4])
acquired = at(sys.argv[3])
if not (stopped and became and cancelled):
    print("missing lines: stopped=%s became=%s pass end=%s" % (stopped, became, cancelled)); sys.exit(1)
gap = (became - stopped).total_seconds() * 1000
print("d's last pass ended %s; d stopped applying %s; %s became leader %s (log) / %s (Lease acquireTime); gap %.0f ms"
      % (cancelled[0].isoformat(), stopped.isoformat(), sys.argv[4], became.isoformat(), acquired.isoformat(), gap))
sys.exit(0 if cancelled[0] <= stopped < acquired and stopped < became else 1)
PY
)"
if [[ $? -eq 0 ]]; then ok "the cut-off leader stopped its pass and applying before $new started leading"; else bad "the cut-off leader's stop and the new leader's start" "$order"; fi
echo "# $order"
if log_of d | grep 'apply pass end: ' | tail -1 | grep -q 'result cancelled'; then ok "d's pass was cancelled"; else bad "d's last pass was not cancelled" "$(log_of d | grep 'pass end' | tail -2)"; fi
if [[ "$(leader_gauge d)" == 0 ]]; then ok "d's reconcile_leader is 0"; else bad "d's reconcile_leader is $(leader_gauge d)"; fi
code="$(curl -s -o /dev/null -w '%{http_code}' "$(url d /readyz)")"
if [[ "$code" == 503 ]]; then ok "d is not ready while it cannot reach the API server"; else bad "d's /readyz answered $code"; fi
tree six && commit "six: the never-healthy agent removed"
webhook "$new" >/dev/null
wait_for 90 "the new leader deploys the next commit" -- greeting_is six
wait_for 60 "the new leader is idle" -- passes_done "$new"

# --- exactly one applied at any time ---------------------------------------------
for n in d e f; do stop_ctl $n TERM; done
report="$(python3 - "$work/state/history.json" "$work"/[a-f].log <<'PY'
import json, re, sys
from datetime import datetime
def at(text):
    return datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")
rx = re.compile(r"^(apply|drift) pass (start|end): revision (\S+?),? .*?\(leader (\S+), term (\d+)\)$")
intervals, open_, term_owner, serial_owner, errors = [], {}, {}, {}, []
for path in sys.argv[2:]:
    for line in open(path):
        try:
            j = json.loads(line)
        except ValueError:
            continue
        msg = j["msg"]
        if "locked" in msg or "lock is held" in msg:
            errors.append("%s: %s" % (path, msg))
        m = rx.match(msg)
        if not m:
            continue
        kind, edge, rev, who, term = m.groups()
        if term_owner.setdefault(term, who) != who:
            errors.append("term %s has two holders: %s and %s" % (term, term_owner[term], who))
        if edge == "start":
            open_[who] = at(j["time"])
        else:
            s = re.search(r"serial (\d+)", msg)
            if s and s.group(1) != "0":
                serial_owner.setdefault(s.group(1), []).append(who)
            intervals.append((open_.pop(who), at(j["time"]), who))
for who, start in open_.items():
    errors.append("%s started a pass at %s and never ended it" % (who, start))
intervals.sort()
for (s1, e1, w1), (s2, e2, w2) in zip(intervals, intervals[1:]):
    if s2 < e1:
        errors.append("%s's pass %s..%s overlaps %s's from %s" % (w1, s1, e1, w2, s2))
history = json.load(open(sys.argv[1]))["entries"]
for h in history:
    owners = serial_owner.get(str(h["serial"]), [])
    if len(owners) != 1:
        errors.append("history serial %s (%s) written by %s" % (h["serial"], h["revision"][:12], owners or "no logged pass"))
print("%d passes by %s in %d terms; %d history entries, each written by one leader"
      % (len(intervals), sorted({w for _, _, w in intervals}), len(term_owner), len(history)))
for e in errors:
    print(e)
sys.exit(1 if errors or not intervals else 0)
PY
)"
if [[ $? -eq 0 ]]; then ok "exactly one controller applied at any time ($report)"; else bad "more than one applied at once" "$report"; fi

echo "leader election: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
