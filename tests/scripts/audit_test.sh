#!/usr/bin/env bash
# The audit log end to end with the real binary on the real Docker Engine:
# apply, apply of a saved plan, rollback, unlock of a stale lock, destroy and
# a controller pass each append a signed entry (an Environment to its own
# folder's log) (`audit list --json` shows
# actor, revision, plan hash, changes); `audit verify` passes; each entry is
# checked independently (canonical bytes rebuilt by Python, `sha256sum`, the
# real `openssl pkeyutl -verify -rawin`); the secret value of the tree never
# appears in the log; without the key a started log refuses to act; and an
# edited, removed, reordered or truncated line, or the wrong key, makes
# `audit verify` exit 1 naming the entry. Keys come from `openssl genpkey`.
#
# Needs: $RECONCILE, $SOURCE_DIR, $BUILD_DIR (set by CTest), a Docker Engine
# (started here when missing) and the hello image (built here when missing).
# Cleans up only what it created, by id and pid.
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}" "${BUILD_DIR:?}"
bash "$SOURCE_DIR/scripts/ensure-dockerd.sh" >/dev/null || { echo "no Docker Engine"; exit 1; }
bash "$SOURCE_DIR/scripts/hello-image.sh" "$BUILD_DIR" >/dev/null || { echo "no hello image"; exit 1; }

sock=/var/run/docker.sock
api() { curl -fsS --unix-socket "$sock" "$@"; }
work="$(mktemp -d)"
p="au$(printf '%04x' $((RANDOM % 65536)))"  # agent name prefix, unique per run
canary="audit-canary-$RANDOM$RANDOM-value"   # the secret value that must never show
passed=0
failed=0
ctl_pid=""

cleanup() {
  [[ -n "$ctl_pid" ]] && kill "$ctl_pid" 2>/dev/null && wait "$ctl_pid" 2>/dev/null
  "$RECONCILE" destroy "$work/tree" --auto-approve --no-color --audit-key "$work/op.pem" \
    >/dev/null 2>&1 || true
  [[ -d "$work/envtree" ]] && "$RECONCILE" destroy "$work/envtree" --path envs/staging \
    --auto-approve --no-color --audit-key "$work/op.pem" >/dev/null 2>&1
  for name in "$p-a"; do
    id=$(container_id "$name")
    [[ -n "$id" ]] && api -X DELETE "http://d/v1.41/containers/$id?force=1" >/dev/null 2>&1
  done
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=tests/scripts/lib.sh
source "$SOURCE_DIR/tests/scripts/lib.sh"
equals() {  # equals NAME WANT GOT
  if [[ "$2" == "$3" ]]; then ok "$1"; else bad "$1: got '$3', want '$2'"; fi
}
write_tree() {  # write_tree GREETING
  mkdir -p "$work/tree"
  cat >"$work/tree/agents.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: local}
spec: {provider: docker, docker: {publishAddress: 127.0.0.1}}
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $p-a}
spec:
  image: reconcile/hello-agent:0.1.0
  target: local
  port: 8080
  env: {GREETING: "$1"}
  secretEnv: {API_TOKEN: {file: token}}
  healthCheck: {path: /health, interval: 100ms, timeout: 1s, retries: 50}
YAML
}
R() { "$RECONCILE" --no-color "$@"; }
RA() { "$RECONCILE" --no-color --audit-key "$work/op.pem" "$@"; }
revision() { R validate "$work/tree" | sed -n 's/.*(\(tree-[0-9a-f]*\)).*/\1/p'; }
log="$work/tree/.reconcile/audit.log"

openssl genpkey -algorithm ed25519 -out "$work/op.pem" 2>/dev/null
openssl pkey -in "$work/op.pem" -pubout -out "$work/op.pub.pem"
openssl genpkey -algorithm ed25519 -out "$work/other.pem" 2>/dev/null
openssl pkey -in "$work/other.pem" -pubout -out "$work/other.pub.pem"
mkdir -p "$work/tree/.reconcile/secrets"
printf '%s\n' "$canary" >"$work/tree/.reconcile/secrets/token"

# --- the actions --------------------------------------------------------------
write_tree one
rev1=$(revision)
expect_exit 0 "apply revision 1 with --audit-key" -- RA apply "$work/tree" --auto-approve
[[ -f "$log" ]] && ok "the log is <state>/audit.log" || bad "no $log"
equals "the log is mode 0600" "600" "$(stat -c %a "$log")"
write_tree two
rev2=$(revision)
expect_exit 2 "plan --out saves the plan of revision 2" -- R plan "$work/tree" --out "$work/plan.json"
# The key may come from RECONCILE_AUDIT_KEY too.
expect_exit 0 "apply the saved plan (key from RECONCILE_AUDIT_KEY)" -- \
  env RECONCILE_AUDIT_KEY="$work/op.pem" "$RECONCILE" --no-color apply "$work/plan.json" \
  --source "$work/tree" --state "$work/tree/.reconcile"
expect_exit 0 "rollback to revision 1" -- RA rollback "$work/tree" --auto-approve
# A stale lock left by a run on another host, broken by `reconcile unlock`.
cat >"$work/tree/.reconcile/lock.json" <<JSON
{"pid": 4242, "host": "elsewhere-$p", "startedAt": "2026-12-01T09:00:00Z", "command": "reconcile apply", "token": "t"}
JSON
expect_exit 0 "unlock breaks the stale lock" -- RA unlock "$work/tree"
expect_exit 0 "destroy" -- RA destroy "$work/tree" --auto-approve

# --- a controller pass --------------------------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$RECONCILE" --no-color --audit-key "$work/op.pem" controller "$work/tree" \
  --listen "127.0.0.1:$port" --interval 1h --drift-interval 1h --watch-events=false \
  >"$work/ctl.log" 2>&1 &
ctl_pid=$!
for _ in $(seq 1 300); do
  grep -q "apply pass end" "$work/ctl.log" && break
  sleep 0.2
done
kill -TERM "$ctl_pid"; wait "$ctl_pid"; ctl_code=$?; ctl_pid=""
equals "the controller ran one apply pass and stopped (exit 0)" "0" "$ctl_code"
grep -q "apply pass end: revision $rev2, result success" "$work/ctl.log" &&
  ok "the controller's pass applied $rev2" || bad "controller pass" "$(tail -20 "$work/ctl.log")"
expect_exit 0 "destroy what the controller deployed" -- RA destroy "$work/tree" --auto-approve

# --- audit list --json ----------------------------------------------------------
expect_exit 0 "audit list --json" -- R audit list "$work/tree" --json
listed="$out"
user=$(id -un)
saved_sha="sha256:$(sha256sum "$work/plan.json" | cut -d' ' -f1)"
check=$(python3 - "$listed" "$user" "$rev1" "$rev2" "$saved_sha" "$p" "$work/plan.json" <<'PY'
import hashlib, json, sys
entries = json.loads(sys.argv[1])
user, rev1, rev2, saved_sha, p, plan_file = sys.argv[2:]
problems = []
def want(cond, what):
    if not cond: problems.append(what)
want([e["action"] for e in entries] == ["apply", "apply", "rollback", "unlock", "destroy", "apply", "destroy"],
     "actions: %s" % [e["action"] for e in entries])
want([e["seq"] for e in entries] == list(range(1, 8)), "seqs")
want(all(e["actor"] == "cli:" + user for e in entries[:5] + entries[6:]), "cli actors: %s" % [e["actor"] for e in entries])
want(entries[5]["actor"] == "controller", "controller actor: " + entries[5]["actor"])
want(entries[0]["revision"] == rev1 and entries[1]["revision"] == rev2, "revisions")
want(entries[2]["revision"] == rev1, "the rollback's revision is the pinned one: " + entries[2]["revision"])
want(entries[5]["revision"] == rev2, "controller revision")
want(all(e["plan"].startswith("sha256:") for e in entries if e["action"] != "unlock"), "plan hashes")
want(entries[3]["plan"] is None and entries[3]["changes"] == [], "unlock has no plan")
want("elsewhere-" + p in entries[3]["detail"], "unlock detail: " + entries[3]["detail"])
want(entries[1]["savedPlan"] == saved_sha, "savedPlan is sha256sum of the file")
# The plan hash: SHA-256 of the plan's canonical JSON (sorted keys, compact),
# rebuilt here from the saved plan file.
plan = json.load(open(plan_file))["plan"]
canon = json.dumps(plan, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
want(entries[1]["plan"] == "sha256:" + hashlib.sha256(canon).hexdigest(), "plan hash of the saved plan")
want(entries[0]["changes"] == [{"action": "create", "address": "agent." + p + "-a"}], "apply changes: %s" % entries[0]["changes"])
want(entries[4]["changes"] == [{"action": "delete", "address": "agent." + p + "-a"}], "destroy changes")
want(all(e["result"] == {"status": "ok"} for e in entries), "results: %s" % [e["result"] for e in entries])
want(entries[0]["prev"] == "0" * 64, "genesis prev")
print("\n".join(problems) if problems else "OK")
PY
)
equals "list --json shows actions, actors, revisions, plan hashes, changes" "OK" "$check"
expect_exit 0 "audit list (table)" -- R audit list "$work/tree"
contains "the table names the rollback" "rollback" "$out"
contains "the table names the actor" "cli:$user" "$out"

# --- verify, by reconcile and independently -----------------------------------
expect_exit 0 "audit verify with the public key" -- R audit verify "$work/tree" --public-key "$work/op.pub.pem"
contains "it counts 7 entries" "7 entries verify" "$out"
expect_exit 0 "audit verify with the private key (its public half)" -- RA audit verify "$work/tree"
independent=0
n=0
while IFS= read -r line; do
  n=$((n + 1))
  python3 - "$line" "$work/canon.bin" "$work/sig.bin" <<'PY' || { independent=1; continue; }
import base64, json, sys
e = json.loads(sys.argv[1])
h, sig = e.pop("hash"), e.pop("sig")
open(sys.argv[2], "wb").write(json.dumps(e, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
open(sys.argv[3], "wb").write(base64.b64decode(sig))
open(sys.argv[2] + ".hash", "w").write(h)
PY
  [[ "$(sha256sum "$work/canon.bin" | cut -d' ' -f1)" == "$(cat "$work/canon.bin.hash")" ]] || independent=1
  openssl pkeyutl -verify -pubin -inkey "$work/op.pub.pem" -rawin -in "$work/canon.bin" \
    -sigfile "$work/sig.bin" >/dev/null 2>&1 || independent=1
done <"$log"
[[ $independent -eq 0 && $n -eq 7 ]] && ok "all $n entries: hash by sha256sum, signature by openssl pkeyutl" ||
  bad "independent check failed ($n lines)"
if grep -qF "$canary" "$log"; then bad "the secret value is in the audit log"; else ok "the secret value is not in the log"; fi
lacks "nor in audit list --json" "$canary" "$listed"

# --- a started log needs its key ----------------------------------------------
write_tree three
before=$(wc -l <"$log")
expect_exit 1 "apply without --audit-key is refused once the log has entries" -- R apply "$work/tree" --auto-approve
contains "it names the log and the flag" "has entries but no audit key is configured" "$out"
equals "nothing was deployed" "" "$(container_id "$p-a")"
equals "nothing was appended" "$before" "$(wc -l <"$log")"
expect_exit 1 "verify needs a key" -- R audit verify "$work/tree"
contains "it says which" "--public-key" "$out"

# --- tampering ----------------------------------------------------------------
verify_copy() {  # verify_copy NAME NEEDLE: audit verify of $work/t.log fails naming NEEDLE
  expect_exit 1 "$1: verify fails" -- R audit verify "$work/tree" --file "$work/t.log" --public-key "$work/op.pub.pem"
  contains "$1: it names the entry" "$2" "$out"
}
cp "$log" "$work/t.log"
sed -i '3s/"actor":"cli:[^"]*"/"actor":"cli:mallory"/' "$work/t.log"
verify_copy "an edited actor (line 3)" "entry seq 3 (line 3): edited: its hash does not match"
cp "$log" "$work/t.log"
sed -i '2d' "$work/t.log"
verify_copy "a removed entry (seq 2)" "removed: entry seq 2 is missing"
cp "$log" "$work/t.log"
python3 - "$work/t.log" <<'PY'
import sys
lines = open(sys.argv[1]).readlines()
lines[3], lines[4] = lines[4], lines[3]
open(sys.argv[1], "w").writelines(lines)
PY
verify_copy "reordered entries 4 and 5" "reordered: seq 4 was expected here; it comes later, at line 5"
cp "$log" "$work/t.log"
python3 - "$work/t.log" <<'PY'
import json, sys
lines = open(sys.argv[1]).readlines()
e = json.loads(lines[1])
e["sig"] = ("B" if e["sig"][0] == "A" else "A") + e["sig"][1:]
lines[1] = json.dumps(e, separators=(",", ":")) + "\n"
open(sys.argv[1], "w").writelines(lines)
PY
verify_copy "an edited signature (line 2)" "entry seq 2 (line 2): edited: its signature does not verify"
cp "$log" "$work/t.log"
truncate -s -20 "$work/t.log"
verify_copy "a truncated last line" "line 7: truncated last line"
cp "$log" "$work/t.log"
expect_exit 1 "the wrong public key: verify fails" -- R audit verify "$work/tree" --file "$work/t.log" --public-key "$work/other.pub.pem"
contains "it says another key signed line 1" "entry seq 1 (line 1): signed by another key" "$out"
# A damaged log refuses the next action before it changes anything.
cp "$log" "$work/log.good"
truncate -s -20 "$log"
expect_exit 1 "apply onto a truncated log is refused" -- RA apply "$work/tree" --auto-approve
contains "it says the last entry is damaged" "the last entry is damaged" "$out"
equals "nothing was deployed" "" "$(container_id "$p-a")"
cp "$work/log.good" "$log"
expect_exit 0 "with the log whole again, apply appends" -- RA apply "$work/tree" --auto-approve
expect_exit 0 "and the chain still verifies" -- R audit verify "$work/tree" --public-key "$work/op.pub.pem"
contains "8 entries" "8 entries verify" "$out"

# --- an Environment keeps its own log -----------------------------------------
mkdir -p "$work/envtree/base" "$work/envtree/envs/staging"
cat >"$work/envtree/base/agents.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: local}
spec: {provider: docker, docker: {publishAddress: 127.0.0.1}}
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $p-e}
spec:
  image: reconcile/hello-agent:0.1.0
  target: local
  port: 8080
  healthCheck: {path: /health, interval: 100ms, timeout: 1s, retries: 50}
YAML
cat >"$work/envtree/envs/staging/environment.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Environment
metadata: {name: staging}
spec: {bases: [../../base]}
YAML
expect_exit 0 "apply an Environment (--path envs/staging)" -- \
  RA apply "$work/envtree" --path envs/staging --auto-approve
envlog="$work/envtree/.reconcile/environments/staging/audit.log"
[[ -f "$envlog" ]] && ok "its log is in the environment's state folder" || bad "no $envlog"
expect_exit 0 "destroy the Environment" -- RA destroy "$work/envtree" --path envs/staging --auto-approve
expect_exit 0 "audit list --json --path envs/staging" -- R audit list "$work/envtree" --path envs/staging --json
equals "both entries name the environment" "apply staging,destroy staging" \
  "$(python3 -c 'import json,sys; print(",".join(e["action"] + " " + e["environment"] for e in json.loads(sys.argv[1])))' "$out")"
expect_exit 0 "audit verify --path envs/staging" -- RA audit verify "$work/envtree" --path envs/staging
[[ ! -e "$work/envtree/.reconcile/audit.log" ]] && ok "no log at the state root for an Environment" ||
  bad "a log at the state root"

echo "audit: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
