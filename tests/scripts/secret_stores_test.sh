#!/usr/bin/env bash
# Secrets from real stores (issue #14) with the real `reconcile` binary and
# the real Docker Engine: agents whose secretEnv (and secretFiles) come from
# AWS Secrets Manager, Vault KV v2 (AppRole login), a file and an
# environment variable. The stores are fakes on loopback
# (tests/fakes/secretstores): the Secrets Manager fake checks every request
# against botocore's own `secretsmanager` model and recomputes its SigV4
# signature with botocore's signer; the Vault fake speaks the documented KV v2
# and AppRole API.
#
#   - apply deploys the values (docker inspect: the container's env; the
#     secret file's content); a second apply changes nothing;
#   - a new value in a store (or in the file) redeploys exactly the agents
#     that use it (new container id), the plan saying
#     "secretEnv NAME changed (value not shown)"; then no changes again;
#   - permission denied (Secrets Manager AccessDeniedException, Vault 403),
#     a missing Vault version and a deleted one give clear errors naming the
#     reference and the HTTP status; nothing changes;
#   - the CANARY: each store's values (old and new) never appear in plan
#     output, a saved plan, the state folder, nor in the output of any
#     command.
#
# Needs: $RECONCILE, $SOURCE_DIR, $BUILD_DIR (set by CTest), python3 with
# botocore, a Docker Engine (started here when missing) and the hello image
# (built here when missing). Stops only the fakes it started (by pid) and
# removes only the containers of its tree (a random per-run prefix).
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}" "${BUILD_DIR:?}"
bash "$SOURCE_DIR/scripts/ensure-dockerd.sh" >/dev/null || { echo "no Docker Engine"; exit 1; }
bash "$SOURCE_DIR/scripts/hello-image.sh" "$BUILD_DIR" >/dev/null || { echo "no hello image"; exit 1; }
python3 -c 'import botocore' 2>/dev/null || { echo "FAIL: python3 cannot import botocore (apt-get install python3-botocore)"; exit 1; }

sock=/var/run/docker.sock
api() { curl -fsS --unix-socket "$sock" "$@"; }
work="$(mktemp -d)"
p="ss$(printf '%04x' $((RANDOM % 65536)))"  # name prefix, unique per run
passed=0
failed=0
pids=()

R() {  # the binary, every output kept for the canary check
  "$RECONCILE" --no-color --state "$work/state" --secrets "$work/secrets" \
    --vault-approle-role-id-file "$work/role_id" --vault-approle-secret-id-file "$work/secret_id" "$@" \
    2>&1 | tee -a "$work/all-output.log"
  return "${PIPESTATUS[0]}"
}
cleanup() {
  R destroy "$work/tree" --auto-approve >/dev/null 2>&1 || true
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  rm -rf "/dev/shm/reconcile-secrets/local/$p-vault"
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=tests/scripts/lib.sh
source "$SOURCE_DIR/tests/scripts/lib.sh"
start_fake() {  # start_fake NAME SCRIPT ARGS...: sets port_NAME
  local name=$1 script=$2; shift 2
  python3 "$SOURCE_DIR/tests/fakes/secretstores/$script" --port-file "$work/$name.port" "$@" \
    >"$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [[ -s "$work/$name.port" ]] && break; sleep 0.1; done
  [[ -s "$work/$name.port" ]] || { echo "FAIL: the $name fake did not start"; cat "$work/$name.log"; exit 1; }
  printf -v "port_$name" '%s' "$(tr -d '\n' <"$work/$name.port")"
}
ctl() {  # ctl URL JSON: a control request to a fake
  curl -fsS -X POST -H 'Content-Type: application/json' -d "$2" "$1" >/dev/null || bad "control $1 $2"
}

# --- the stores ---------------------------------------------------------------
ak="AKIDSECRETSTORES$RANDOM"
sk="sk/$RANDOM$RANDOM/NOTREALLYASECRETKEY"
start_fake sm secretsmanager_fake.py --key-id "$ak" --secret "$sk" --region eu-west-1
start_fake vault vault_fake.py
sm="http://127.0.0.1:$port_sm"
vault="http://127.0.0.1:$port_vault"

canary() { printf 'CANARY-%s-%s-%s%s' "$1" "$p" "$RANDOM" "$RANDOM"; }
aws1=$(canary aws1) aws2=$(canary aws2)
vault1=$(canary vault1) vault2=$(canary vault2) cert1=$(canary cert1)
file1=$(canary file1) file2=$(canary file2) env1=$(canary env1)
secret_id=$(canary approle)
canaries=("$aws1" "$aws2" "$vault1" "$vault2" "$cert1" "$file1" "$file2" "$env1" "$secret_id" "$sk")

ctl "$sm/_fake/put" "{\"name\": \"$p/db\", \"value\": \"{\\\"password\\\": \\\"$aws1\\\", \\\"user\\\": \\\"app\\\"}\"}"
ctl "$vault/_fake/put" "{\"path\": \"secret/$p/api\", \"data\": {\"token\": \"$vault1\", \"cert\": \"$cert1\"}}"
ctl "$vault/_fake/approle" "{\"role_id\": \"role-$p\", \"secret_id\": \"$secret_id\", \"paths\": [\"secret/$p/api\"], \"ttl\": 3600}"
printf 'role-%s\n' "$p" >"$work/role_id"
printf '%s\n' "$secret_id" >"$work/secret_id"
mkdir -p "$work/secrets" "$work/tree" "$work/home"
printf '%s\n' "$file1" >"$work/secrets/plain.pass"
envvar="RECONCILE_SECRET_${p^^}_KEY"
export "$envvar=$env1"
export HOME="$work/home"  # no ~/.aws, no ~/.vault-token of the machine
export AWS_ACCESS_KEY_ID="$ak" AWS_SECRET_ACCESS_KEY="$sk" AWS_REGION=eu-west-1
export AWS_ENDPOINT_URL_SECRETS_MANAGER="$sm"
export VAULT_ADDR="$vault"
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL VAULT_TOKEN VAULT_NAMESPACE

# --- the tree -------------------------------------------------------------------
write_tree() {  # write_tree VAULT_VERSION_LINE
  cat >"$work/tree/agents.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: local}
spec:
  provider: docker
  docker: {publishAddress: 127.0.0.1}
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $p-aws}
spec:
  image: reconcile/hello-agent:0.1.0
  target: local
  port: 8080
  healthCheck: {path: /health, interval: 100ms, timeout: 1s, retries: 50}
  secretEnv:
    DB_PASSWORD: {aws: {secretId: $p/db, key: password, versionStage: AWSCURRENT}}
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $p-vault}
spec:
  image: reconcile/hello-agent:0.1.0
  target: local
  port: 8080
  healthCheck: {path: /health, interval: 100ms, timeout: 1s, retries: 50}
  secretEnv:
    API_TOKEN: {vault: {path: secret/$p/api, key: token$1}}
  secretFiles:
    cert: {vault: {path: secret/$p/api, key: cert}}
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $p-plain}
spec:
  image: reconcile/hello-agent:0.1.0
  target: local
  port: 8080
  healthCheck: {path: /health, interval: 100ms, timeout: 1s, retries: 50}
  secretEnv:
    FROM_FILE: {file: plain.pass}
    FROM_ENV: {env: $envvar}
YAML
}
write_tree ""
ids() { echo "$(container_id "$p-aws") $(container_id "$p-vault") $(container_id "$p-plain")"; }

# --- first apply ------------------------------------------------------------------
expect_exit 0 "the tree with aws and vault references is valid" -- R validate "$work/tree"
expect_exit 2 "plan reads every store and shows the agents" -- R plan "$work/tree" --out "$work/plan1.json"
contains "plan names the aws secret, not its value" "secretEnv DB_PASSWORD (value not shown)" "$out"
contains "plan names the vault secret file" "secretFiles cert (value not shown)" "$out"
contains "plan shows the aws reference" 'secretEnv.DB_PASSWORD = "aws:'"$p"'/db?key=password&versionStage=AWSCURRENT"' "$(tr -s ' ' <<<"$out")"
expect_exit 0 "apply of the saved plan" -- R apply "$work/plan1.json" --source "$work/tree" --auto-approve
read -r aws_id vault_id plain_id <<<"$(ids)"
contains "the aws agent's env holds the Secrets Manager value" "DB_PASSWORD=$aws1" "$(env_of "$aws_id")"
contains "the vault agent's env holds the Vault value" "API_TOKEN=$vault1" "$(env_of "$vault_id")"
contains "the vault secret file holds its value" "$cert1" "$(file_in "$vault_id" /run/secrets/cert)"
contains "the plain agent's env holds the file value" "FROM_FILE=$file1" "$(env_of "$plain_id")"
contains "the plain agent's env holds the env value" "FROM_ENV=$env1" "$(env_of "$plain_id")"
expect_exit 0 "a second apply" -- R apply "$work/tree" --auto-approve
contains "the second apply changes nothing" "No changes." "$out"
if [[ -f "$work/state/keys/secret-digest.key" && "$(stat -c %a "$work/state/keys/secret-digest.key")" == 600 ]]; then
  ok "the fingerprint key is kept beside the state, 0600"
else
  bad "no fingerprint key at $work/state/keys/secret-digest.key (mode 0600)"
fi

# --- a new value in each store redeploys exactly its agents -------------------------
ctl "$sm/_fake/put" "{\"name\": \"$p/db\", \"value\": \"{\\\"password\\\": \\\"$aws2\\\"}\"}"
expect_exit 2 "plan after a new Secrets Manager version" -- R plan "$work/tree"
contains "the plan says which secret changed" "secretEnv DB_PASSWORD changed (value not shown)" "$out"
contains "only the aws agent changes" "Plan: 0 to add, 0 to change, 1 to replace, 0 to destroy." "$out"
expect_exit 0 "apply the new aws value" -- R apply "$work/tree" --auto-approve
read -r a2 v2 p2 <<<"$(ids)"
if [[ "$a2" != "$aws_id" && "$v2" == "$vault_id" && "$p2" == "$plain_id" ]]; then
  ok "only the aws agent was redeployed"
else
  bad "redeployed: aws $aws_id->$a2 vault $vault_id->$v2 plain $plain_id->$p2"
fi
contains "the new aws value is in the env" "DB_PASSWORD=$aws2" "$(env_of "$a2")"
expect_exit 0 "apply again" -- R apply "$work/tree" --auto-approve
contains "no changes after the aws redeploy" "No changes." "$out"

ctl "$vault/_fake/put" "{\"path\": \"secret/$p/api\", \"data\": {\"token\": \"$vault2\", \"cert\": \"$cert1\"}}"
ctl "$vault/_fake/revoke" '{"all": true}'  # tokens of earlier runs are gone
expect_exit 2 "plan after a new Vault version" -- R plan "$work/tree"
contains "the plan names the vault secret" "secretEnv API_TOKEN changed (value not shown)" "$out"
lacks "the unchanged secret file is not listed" "secretFiles cert" "$out"
expect_exit 0 "apply the new vault value" -- R apply "$work/tree" --auto-approve
read -r a3 v3 p3 <<<"$(ids)"
if [[ "$a3" == "$a2" && "$v3" != "$v2" && "$p3" == "$p2" ]]; then
  ok "only the vault agent was redeployed"
else
  bad "redeployed: aws $a2->$a3 vault $v2->$v3 plain $p2->$p3"
fi
contains "the new vault value is in the env" "API_TOKEN=$vault2" "$(env_of "$v3")"
expect_exit 0 "apply again" -- R apply "$work/tree" --auto-approve
contains "no changes after the vault redeploy" "No changes." "$out"

printf '%s\n' "$file2" >"$work/secrets/plain.pass"
expect_exit 0 "apply a new file value" -- R apply "$work/tree" --auto-approve
read -r a4 v4 p4 <<<"$(ids)"
if [[ "$a4" == "$a3" && "$v4" == "$v3" && "$p4" != "$p3" ]]; then
  ok "only the plain agent was redeployed for a new file value"
else
  bad "redeployed: aws $a3->$a4 vault $v3->$v4 plain $p3->$p4"
fi
contains "the new file value is in the env" "FROM_FILE=$file2" "$(env_of "$p4")"
expect_exit 0 "apply again" -- R apply "$work/tree" --auto-approve
contains "no changes after the file redeploy" "No changes." "$out"

# --- errors: clear, naming the reference and the status; nothing changes -------------
ctl "$sm/_fake/deny" "{\"name\": \"$p/db\"}"
expect_exit 1 "plan with Secrets Manager access denied" -- R plan "$work/tree"
contains "the error names the agent" "agent '$p-aws'" "$out"
contains "the error names the reference" "DB_PASSWORD: aws:$p/db?key=password&versionStage=AWSCURRENT" "$out"
contains "the error says permission denied with the status" "permission denied (HTTP 400 AccessDeniedException)" "$out"
expect_exit 1 "apply with access denied" -- R apply "$work/tree" --auto-approve
if [[ "$(ids)" == "$a4 $v4 $p4" ]]; then ok "access denied changed nothing"; else bad "containers changed: $(ids)"; fi
ctl "$sm/_fake/allow" "{\"name\": \"$p/db\"}"

ctl "$vault/_fake/approle" "{\"role_id\": \"role-$p\", \"secret_id\": \"$secret_id\", \"paths\": [\"secret/$p/other\"], \"ttl\": 3600}"
ctl "$vault/_fake/revoke" '{"all": true}'
expect_exit 1 "apply with Vault permission denied" -- R apply "$work/tree" --auto-approve
contains "the Vault error names the reference and the 403" "API_TOKEN: vault:secret/$p/api?key=token: Vault: permission denied: the token may not read this path (GET /v1/secret/data/$p/api: HTTP 403: permission denied)" "$out"
if [[ "$(ids)" == "$a4 $v4 $p4" ]]; then ok "Vault permission denied changed nothing"; else bad "containers changed: $(ids)"; fi
ctl "$vault/_fake/approle" "{\"role_id\": \"role-$p\", \"secret_id\": \"$secret_id\", \"paths\": [\"secret/$p/api\"], \"ttl\": 3600}"

write_tree ", version: 99"
expect_exit 1 "apply with a missing Vault version" -- R apply "$work/tree" --auto-approve
contains "the error names the missing version and the 404" "no secret secret/$p/api with version 99" "$out"
contains "the error has the HTTP status" "?version=99: HTTP 404)" "$out"
ctl "$vault/_fake/delete" "{\"path\": \"secret/$p/api\", \"version\": 1}"
write_tree ", version: 1"
expect_exit 1 "apply with a deleted Vault version" -- R apply "$work/tree" --auto-approve
contains "the error says the version was deleted" "version 1 of secret/$p/api was deleted at " "$out"
if [[ "$(ids)" == "$a4 $v4 $p4" ]]; then ok "missing and deleted versions changed nothing"; else bad "containers changed: $(ids)"; fi
write_tree ""
expect_exit 0 "back to the latest version" -- R apply "$work/tree" --auto-approve
contains "nothing to do at the latest version" "No changes." "$out"

# --- the fakes saw only valid requests ----------------------------------------------
sm_problems=$(curl -fsS "$sm/_fake/problems")
if [[ "$sm_problems" == "[]" ]]; then ok "every Secrets Manager request passed botocore's model and signer"; else bad "Secrets Manager problems" "$sm_problems"; fi
gets=$(curl -fsS "$sm/_fake/log" | python3 -c 'import json,sys; print(sum(e["operation"] == "GetSecretValue" for e in json.load(sys.stdin)))')
if [[ "$gets" -ge 5 ]]; then ok "GetSecretValue was called ($gets times)"; else bad "GetSecretValue called $gets times"; fi
v_problems=$(curl -fsS "$vault/_fake/problems")
if [[ "$v_problems" == "[]" ]]; then ok "every Vault request was one the documented API has"; else bad "Vault problems" "$v_problems"; fi
logins=$(curl -fsS "$vault/_fake/log" | python3 -c 'import json,sys; print(sum(e["auth"] == "approle" and e["status"] == 200 for e in json.load(sys.stdin)))')
if [[ "$logins" -ge 5 ]]; then ok "every run logged in with AppRole ($logins logins)"; else bad "AppRole logins: $logins"; fi

# --- the canary: no value anywhere but in the containers ---------------------------
leaks=""
for c in "${canaries[@]}"; do
  hits=$(grep -rlF -- "$c" "$work/state" "$work/plan1.json" "$work/all-output.log" "$work/tree" 2>/dev/null)
  [[ -n "$hits" ]] && leaks+="$c in: $hits"$'\n'
done
if [[ -z "$leaks" ]]; then
  ok "no canary in the state folder, the saved plan, the tree or any command's output"
else
  bad "canary leaked" "$leaks"
fi
if grep -q 'hmac-sha256:' "$work/plan1.json" && ! grep -rq 'hmac-sha256:' "$work/all-output.log"; then
  ok "the saved plan holds keyed fingerprints; the text output shows none"
else
  bad "fingerprints: in the saved plan? in the output?"
fi

echo "secret_stores: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
