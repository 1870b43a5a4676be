#!/usr/bin/env bash
# SOPS-encrypted secrets in the Git tree (issue #14 item 2), with the real
# `reconcile` binary, a real git daemon on loopback and the real Docker
# Engine: an agent whose secretEnv and secretFiles are {sops: {file, key}}
# references to files committed next to its manifest, as Flux users keep
# them.
#
# The encrypted files are written by tests/scripts/sops_encrypt.py (Debian
# has no `sops` binary): python3-cryptography encrypts the values and the
# MAC as getsops/sops does, and the REAL `age` tool wraps the data key to a
# recipient made by the real `age-keygen`.
#
#   - the SOPS files are not read as manifests (validate passes on the tree);
#   - apply over git:// deploys the decrypted values (docker inspect: the
#     container's env; the secret file's content); a second apply changes
#     nothing;
#   - a commit that changes only the encrypted file redeploys the agent, the
#     plan saying "secretEnv DB_PASSWORD changed (value not shown)";
#   - no key, the wrong key, a bad key file, a tampered file, a
#     missing file (file:line:field) and a missing key path give clear
#     errors and change nothing;
#   - a controller following the branch applies a rotation pushed with a
#     webhook, and refuses to start with a bad key file; the audit log names
#     the webhook (webhook:github) as the actor of that pass;
#   - the CANARY: no cleartext value (old or new) in any command's output,
#     the state folder, a saved plan, the Git cache or the exported tree.
#
# Needs: $RECONCILE, $SOURCE_DIR, $BUILD_DIR (set by CTest), git, age,
# python3 with cryptography and PyYAML, a Docker Engine (started here when
# missing) and the hello image (built here when missing). Stops only the
# git daemon it started (by pid) and removes only the containers of its tree
# (a random per-run prefix).
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}" "${BUILD_DIR:?}"
bash "$SOURCE_DIR/scripts/ensure-dockerd.sh" >/dev/null || { echo "no Docker Engine"; exit 1; }
bash "$SOURCE_DIR/scripts/hello-image.sh" "$BUILD_DIR" >/dev/null || { echo "no hello image"; exit 1; }
command -v age-keygen >/dev/null || { echo "FAIL: no age-keygen (apt-get install age)"; exit 1; }

sock=/var/run/docker.sock
api() { curl -fsS --unix-socket "$sock" "$@"; }
work="$(mktemp -d)"
p="so$(printf '%04x' $((RANDOM % 65536)))"  # agent name prefix, unique per run
passed=0
failed=0
# shellcheck source=tests/scripts/lib.sh
source "$SOURCE_DIR/tests/scripts/lib.sh"
# shellcheck source=tests/scripts/controller_lib.sh
source "$SOURCE_DIR/tests/scripts/controller_lib.sh"

CANARY1="sops-canary-$RANDOM$RANDOM-one"
CANARY2="sops-canary-$RANDOM$RANDOM-two"
CANARY3="sops-canary-$RANDOM$RANDOM-three"

R() {  # the binary over the served main branch, every output kept for the canary check
  local cmd=$1
  shift
  "$RECONCILE" --no-color --state "$work/state" --audit-key "$work/op.pem" "$cmd" --source "$url" --ref main --path deploy "$@" \
    2>&1 | tee -a "$work/all-output.log"
  return "${PIPESTATUS[0]}"
}
ctl_pid=""
cleanup() {
  stop_pid "$ctl_pid"
  R destroy --auto-approve --sops-age-key-file "$work/key.txt" >/dev/null 2>&1
  # A test that failed half-way may leave a tree destroy refuses: remove what
  # runs by name (the per-run prefix).
  local id
  id="$(container_id "$p-web")"
  [[ -n "$id" ]] && api -X DELETE "http://d/v1.41/containers/$id?force=1" >/dev/null 2>&1
  stop_git_daemon
  rm -rf "$work"
}
trap cleanup EXIT

# --- keys, the tree, the encrypted files ---------------------------------------
openssl genpkey -algorithm ed25519 -out "$work/op.pem" 2>/dev/null  # the audit log's key
age-keygen -o "$work/key.txt" 2>/dev/null
age-keygen -o "$work/other.txt" 2>/dev/null
recipient="$(age-keygen -y "$work/key.txt")"
git_repo
git_serve
url="git://127.0.0.1:$git_port/origin.git"
mkdir -p "$work/clone/deploy/secrets"
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
  env: {GREETING: sops}
  secretEnv:
    DB_PASSWORD: {sops: {file: secrets/app.enc.yaml, key: db.password}}
  secretFiles:
    api.key: {sops: {file: secrets/api.enc.env, key: API_KEY}}
YAML
encrypt() {  # encrypt FORMAT PLAIN OUT
  python3 "$SOURCE_DIR/tests/scripts/sops_encrypt.py" --format "$1" --age-recipient "$recipient" "$2" "$3"
}
write_secrets() {  # write_secrets DB_PASSWORD API_KEY
  printf 'db:\n  user: app\n  password: %s\n' "$1" >"$work/plain.yaml"
  printf 'API_KEY=%s\n' "$2" >"$work/plain.env"
  encrypt yaml "$work/plain.yaml" "$work/clone/deploy/secrets/app.enc.yaml" &&
    encrypt dotenv "$work/plain.env" "$work/clone/deploy/secrets/api.enc.env" ||
    bad "sops_encrypt.py failed"
  rm -f "$work/plain.yaml" "$work/plain.env"
}
write_secrets "$CANARY1" "$CANARY2"
grep -q "$CANARY1" "$work/clone/deploy/secrets/app.enc.yaml" && bad "the encrypted file holds the cleartext"
commit "secrets, encrypted"

expect_exit 0 "validate: the SOPS files are data, not manifests" -- \
  "$RECONCILE" --no-color validate "$work/clone/deploy"

# --- without a key: a clear error, nothing deployed -----------------------------
expect_exit 1 "plan without a SOPS key fails" -- R plan
contains "no key: names the flags" "--sops-age-key-file" "$out"
contains "no key: names the reference (relative to the tree, --path deploy)" "sops:secrets/app.enc.yaml?key=db.password" "$out"
contains "no key: names the agent's file and line" "deploy.yaml:8:1: agent '$p-web'" "$out"
expect_exit 1 "plan with another age key fails" -- R plan --sops-age-key-file "$work/other.txt"
contains "wrong key: names the file" "secrets/app.enc.yaml: cannot decrypt the data key" "$out"
contains "wrong key: names the file's recipient" "the file's recipients: age $recipient" "$out"
expect_exit 1 "a key file that does not exist fails at start" -- R plan --sops-age-key-file "$work/nope.txt"
contains "missing key file: named" "$work/nope.txt" "$out"
printf 'AGE-SECRET-KEY-1NOTAKEY\n' >"$work/bad.txt"
expect_exit 1 "a malformed key file fails at start" -- R plan --sops-age-key-file "$work/bad.txt"
contains "malformed key file: named with its line" "$work/bad.txt:1" "$out"
[[ -z "$(container_id "$p-web")" ]] && ok "nothing was deployed" || bad "a container runs"

# --- apply: the decrypted values --------------------------------------------------
expect_exit 2 "plan with the key shows changes" -- R plan --sops-age-key-file "$work/key.txt"
expect_exit 0 "apply deploys" -- R apply --auto-approve --sops-age-key-file "$work/key.txt"
cid1="$(container_id "$p-web")"
[[ -n "$cid1" ]] && ok "the agent runs" || bad "no container for $p-web"
env_of "$cid1" | grep -xF >/dev/null "DB_PASSWORD=$CANARY1" && ok "secretEnv holds the decrypted value" ||
  bad "secretEnv: DB_PASSWORD not the file's value"
[[ "$(file_in "$cid1" /run/secrets/api.key)" == "$CANARY2" ]] && ok "secretFiles holds the decrypted value" ||
  bad "secret file: not the file's value"
export SOPS_AGE_KEY_FILE="$work/key.txt"
expect_exit 0 "second apply (the key from SOPS_AGE_KEY_FILE)" -- R apply --auto-approve
unset SOPS_AGE_KEY_FILE
contains "second apply: No changes." "No changes." "$out"
[[ "$(container_id "$p-web")" == "$cid1" ]] && ok "the container was left as it was" || bad "the container changed"

# --- a commit that changes only the encrypted value --------------------------------
write_secrets "$CANARY3" "$CANARY2"
commit "rotate the database password"
expect_exit 2 "plan after the rotation shows a change" -- R plan --sops-age-key-file "$work/key.txt" --out "$work/rotate.plan"
contains "the plan names the changed secret, not its value" "secretEnv DB_PASSWORD changed (value not shown)" "$out"
lacks "the unchanged secret file is not named" "api.key changed" "$out"
expect_exit 0 "apply the saved plan" -- R apply --sops-age-key-file "$work/key.txt" "$work/rotate.plan"
cid2="$(container_id "$p-web")"
[[ -n "$cid2" && "$cid2" != "$cid1" ]] && ok "the agent was redeployed" || bad "container $cid1 -> $cid2"
env_of "$cid2" | grep -xF >/dev/null "DB_PASSWORD=$CANARY3" && ok "the new value is deployed" || bad "DB_PASSWORD not the new value"

# --- bad input changes nothing --------------------------------------------------------
good_yaml="$(cat "$work/clone/deploy/secrets/app.enc.yaml")"
python3 - "$work/clone/deploy/secrets/app.enc.yaml" <<'PY'
import re, sys
p = sys.argv[1]
s = open(p).read()
# db.user's ciphertext moved under db.password: a valid ciphertext of the
# file's data key, but its additional data (the key path) no longer matches.
user = re.search(r"user: (ENC\[[^\]]*\])", s).group(1)
s = re.sub(r"password: ENC\[[^\]]*\]", "password: " + user.replace("\\", "\\\\"), s)
open(p, "w").write(s)
PY
commit "tampered"
expect_exit 1 "a tampered file is refused" -- R apply --auto-approve --sops-age-key-file "$work/key.txt"
contains "tampered: names the file, line and key path" "secrets/app.enc.yaml:3: db.password: " "$out"
[[ "$(container_id "$p-web")" == "$cid2" ]] && ok "tampered: nothing changed" || bad "tampered: the container changed"
printf '%s\n' "$good_yaml" >"$work/clone/deploy/secrets/app.enc.yaml"
sed -i 's|key: db.password|key: db.passwd|' "$work/clone/deploy/deploy.yaml"
commit "a key path that is not there"
expect_exit 1 "a missing key path is refused" -- R apply --auto-approve --sops-age-key-file "$work/key.txt"
contains "missing key path: named" "db.passwd" "$out"
sed -i 's|key: db.passwd|key: db.password|; s|secrets/app.enc.yaml|secrets/gone.enc.yaml|' "$work/clone/deploy/deploy.yaml"
commit "a file that is not there"
expect_exit 1 "a missing file is refused" -- R plan --sops-age-key-file "$work/key.txt"
contains "missing file: file:line:column" "deploy.yaml:17:32: error: " "$out"
contains "missing file: the field" "spec.secretEnv.DB_PASSWORD.sops.file" "$out"
contains "missing file: what is wrong" "SOPS file secrets/gone.enc.yaml is not in the tree" "$out"
[[ "$(container_id "$p-web")" == "$cid2" ]] && ok "bad input: the agent still runs as it was" || bad "bad input changed the container"
env_of "$cid2" | grep -xF >/dev/null "DB_PASSWORD=$CANARY3" && ok "bad input: the value in force is kept" || bad "the value changed"

# --- the controller follows the branch: a rotation is applied --------------------------
printf '%s\n' "$good_yaml" >"$work/clone/deploy/secrets/app.enc.yaml"
sed -i 's|secrets/gone.enc.yaml|secrets/app.enc.yaml|' "$work/clone/deploy/deploy.yaml"
commit "the good tree again"
http_port="$(free_port)"
secret="sops-secrets-hook"
printf '%s\n' "$secret" >"$work/hook.secret"
expect_exit 1 "the controller refuses to start with a bad key file" -- \
  "$RECONCILE" --no-color controller --repo "$url" --branch main --path deploy --state "$work/state" \
  --listen "127.0.0.1:$http_port" --sops-age-key-file "$work/bad.txt"
contains "the controller names the key file" "$work/bad.txt:1" "$out"
"$RECONCILE" --no-color --audit-key "$work/op.pem" controller --repo "$url" --branch main --path deploy --state "$work/state" \
  --listen "127.0.0.1:$http_port" --interval 1h --drift-interval 1h \
  --webhook-secret-file "$work/hook.secret" --sops-age-key-file "$work/key.txt" \
  >>"$work/ctl.log" 2>&1 &
ctl_pid=$!
wait_for 20 "the controller answers /healthz" -- curl -fsS "http://127.0.0.1:$http_port/healthz"
applied_is() { status_json | python3 -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if s['revision']['applied']=='$1' else 1)"; }
wait_for 60 "the controller applies the good tree (the value in force)" -- applied_is "$(git -C "$work/clone" rev-parse HEAD)"
[[ "$(container_id "$p-web")" == "$cid2" ]] && ok "controller: the unchanged value redeploys nothing" || bad "controller: the container changed"
CANARY4="sops-canary-$RANDOM$RANDOM-four"
write_secrets "$CANARY4" "$CANARY2"
commit "rotate again"
code="$(webhook)"
[[ "$code" == 202 || "$code" == 200 ]] && ok "the push webhook is taken ($code)" || bad "webhook answered $code"
value_is() { local id; id="$(container_id "$p-web")"; [[ -n "$id" ]] && env_of "$id" | grep -xF >/dev/null "DB_PASSWORD=$1"; }
wait_for 60 "controller: the rotated value is deployed" -- value_is "$CANARY4"
wait_for 10 "controller: the pass is recorded as applied" -- applied_is "$(git -C "$work/clone" rev-parse HEAD)"
stop_pid "$ctl_pid"
ctl_pid=""
cat "$work/ctl.log" >>"$work/all-output.log"
# The audit log: the CLI's applies by the user, the controller's first pass by
# the controller, the pushed rotation by the webhook that asked for it.
head="$(git -C "$work/clone" rev-parse HEAD)"
actors="$("$RECONCILE" --no-color --state "$work/state" audit list --json "$work/clone/deploy" |
  python3 -c 'import json,sys; print(" ".join(e["action"] + ":" + e["actor"] + ("@head" if e.get("revision") == sys.argv[1] else "") for e in json.load(sys.stdin)))' "$head")"
contains "audit: the CLI's apply is the user's" "apply:cli:" "$actors"
contains "audit: the controller's own pass" "apply:controller" "$actors"
contains "audit: the rotation pushed with a webhook is the webhook's" "apply:webhook:github@head" "$actors"
cat "$work/state/audit.log" >>"$work/all-output.log" 2>/dev/null

# --- the canary ---------------------------------------------------------------------------
leaks=""
for c in "$CANARY1" "$CANARY2" "$CANARY3" "$CANARY4"; do
  grep -qF "$c" "$work/all-output.log" && leaks+="output "
  grep -rqF "$c" "$work/state" && leaks+="state-folder(git cache, exported trees, state, history) "
  grep -qF "$c" "$work/rotate.plan" && leaks+="saved-plan "
done
[[ -z "$leaks" ]] && ok "no cleartext value in any output, the state folder or a saved plan" || bad "canary found in: $leaks"

echo "sops secrets: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
