#!/usr/bin/env bash
# End-to-end CLI tests against the real Docker Engine: validate, plan exit
# codes, apply, idempotence, replace of one agent, prune, foreign containers,
# unhealthy agents, saved plans (shown, applied only when equal to a fresh
# plan, never redirecting source or state), the state lock and drift.
#
# Needs: $RECONCILE (the binary), $SOURCE_DIR, $BUILD_DIR (set by CTest), a
# Docker Engine (started here when missing) and the hello image (built here
# when missing). Cleans up only what it created, by id.
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}" "${BUILD_DIR:?}"
bash "$SOURCE_DIR/scripts/ensure-dockerd.sh" >/dev/null || { echo "no Docker Engine"; exit 1; }
bash "$SOURCE_DIR/scripts/hello-image.sh" "$BUILD_DIR" >/dev/null || { echo "no hello image"; exit 1; }

sock=/var/run/docker.sock
api() { curl -fsS --unix-socket "$sock" "$@"; }
work="$(mktemp -d)"
p="t$(printf '%04x' $((RANDOM % 65536)))"  # agent name prefix, unique per run
foreign_id=""
passed=0
failed=0

cleanup() {
  "$RECONCILE" destroy "$work/tree" --auto-approve --no-color >/dev/null 2>&1 || true
  [[ -n "$foreign_id" ]] && api -X DELETE "http://d/v1.41/containers/$foreign_id?force=1" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=tests/scripts/lib.sh
source "$SOURCE_DIR/tests/scripts/lib.sh"

target_doc() {
  cat <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: local}
spec:
  provider: docker
  docker: {publishAddress: 127.0.0.1}
YAML
}
agent_yaml() {  # agent_yaml NAME SPEC_LINES: an Agent on the hello image, port 8080
  cat <<YAML
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $1}
spec:
  image: reconcile/hello-agent:0.1.0
  target: local
  port: 8080
$2
YAML
}
agent_doc() {  # agent_doc NAME GREETING: a healthy agent greeting with GREETING
  agent_yaml "$1" "  env: {GREETING: \"$2\"}
  healthCheck: {path: /health, interval: 100ms, timeout: 1s, retries: 50}"
}
write_tree() {  # write_tree GREETING_A GREETING_B [with_c]
  mkdir -p "$work/tree"
  { target_doc; agent_doc "$p-a" "$1"; agent_doc "$p-b" "$2"; [[ -n "${3:-}" ]] && agent_doc "$p-c" "c"; } \
    >"$work/tree/agents.yaml"
}
R() { "$RECONCILE" --no-color "$@"; }

# --- validate and schema ----------------------------------------------------
mkdir -p "$work/bad"
printf 'apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: x}\nspec:\n  image: i:1\n  target: nowhere\n  port: 99999\n  colour: red\n' >"$work/bad/a.yaml"
expect_exit 1 "validate rejects a bad tree" -- R validate "$work/bad"
contains "validate names file:line:column and field" "a.yaml:7:" "$out"
contains "validate reports every error (unknown field too)" "colour" "$out"
expect_exit 1 "plan on a bad tree fails" -- R plan "$work/bad"
expect_exit 0 "schema Agent" -- R schema Agent
contains "schema is JSON Schema 2020-12" "2020-12" "$out"
expect_exit 1 "schema of an unknown kind" -- R schema Gadget
expect_exit 1 "an unknown command exits 1" -- R nosuch
contains "an unknown command is named" "unknown command 'nosuch'" "$out"
contains "the usage line names the program" "Usage: reconcile " "$out"
expect_exit 1 "an unknown flag exits 1" -- R plan --bogus-flag
contains "the usage line names the command" "Usage: reconcile [global flags] plan" "$out"
expect_exit 1 "no command at all exits 1" -- R
expect_exit 0 "--help exits 0" -- R --help
contains "help names the program" "Usage: reconcile" "$out"

# --- first apply, idempotence ----------------------------------------------
write_tree one one with_c
expect_exit 0 "validate a good tree" -- R validate "$work/tree"
expect_exit 2 "plan shows changes (exit 2)" -- R plan "$work/tree"
contains "plan shows a create" "+ agent \"$p-a\"" "$out"
expect_exit 2 "--plan alias" -- "$RECONCILE" --no-color --plan "$work/tree"
expect_exit 1 "apply without --auto-approve and no TTY refuses" -- R apply "$work/tree" </dev/null
expect_exit 0 "apply creates three agents" -- R apply "$work/tree" --auto-approve
ida=$(container_id "$p-a"); idb=$(container_id "$p-b"); idc=$(container_id "$p-c")
if [[ -n "$ida" && -n "$idb" && -n "$idc" ]]; then ok "three containers exist"; else bad "containers missing: a=$ida b=$idb c=$idc"; fi
expect_exit 0 "second apply" -- R apply "$work/tree" --auto-approve
contains "second apply says No changes." "No changes." "$out"
if [[ "$(container_id "$p-a")" == "$ida" && "$(container_id "$p-b")" == "$idb" && "$(container_id "$p-c")" == "$idc" ]]; then
  ok "second apply left every container id unchanged"
else bad "container ids changed on a no-op apply"; fi
expect_exit 0 "plan after apply is empty (exit 0)" -- R plan "$work/tree"
labels=$(api "http://d/v1.41/containers/$ida/json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Config"]["Labels"])')
contains "ownership labels on the container" "reconcile.dev/managed-by': 'reconcile'" "$labels"
contains "spec-hash label" "reconcile.dev/spec-hash': 'sha256:" "$labels"
endpoint=$(R status "$work/tree" --json | python3 -c "import json,sys; print(next(a['endpoint'] for a in json.load(sys.stdin)['agents'] if a['name']=='$p-a'))")
answer=$(curl -fsS "$endpoint/" 2>&1)
contains "the agent answers at its endpoint" '"greeting":"one"' "$answer"
perm=$(stat -c %a "$work/tree/.reconcile/state.json")
if [[ "$perm" == "600" ]]; then ok "state.json is mode 0600"; else bad "state.json mode $perm"; fi

# --- change one agent: only it is replaced ----------------------------------
write_tree two one with_c
expect_exit 2 "plan shows the env change" -- R plan "$work/tree"
contains "plan shows field-level before/after" 'env.GREETING = "one" -> "two"' "$out"
R plan "$work/tree" --json >"$work/plan.json"
actions=$(python3 -c "import json; print(sorted((c['name'][len('$p')+1:], c['action']) for c in json.load(open('$work/plan.json'))['changes']))")
contains "plan --json lists one replace, two no-ops" "[('a', 'replace'), ('b', 'no-op'), ('c', 'no-op')]" "$actions"
expect_exit 0 "apply the env change" -- R apply "$work/tree" --auto-approve
nida=$(container_id "$p-a")
if [[ -n "$nida" && "$nida" != "$ida" && "$(container_id "$p-b")" == "$idb" && "$(container_id "$p-c")" == "$idc" ]]; then
  ok "only the changed agent's container was replaced"
else bad "replace touched the wrong containers (a: $ida -> $nida)"; fi

# --- remove an agent: only ours is deleted ----------------------------------
write_tree two one
expect_exit 0 "apply prunes the removed agent" -- R apply "$work/tree" --auto-approve
contains "prune is reported as destroyed" "1 destroyed" "$out"
if [[ -z "$(container_id "$p-c")" && -n "$(container_id "$p-a")" && -n "$(container_id "$p-b")" ]]; then
  ok "only the removed agent's container is gone"
else bad "prune removed the wrong containers"; fi

# --- a foreign container with a colliding name is never taken over ----------
foreign_id=$(api -X POST -H 'Content-Type: application/json' \
  -d '{"Image":"reconcile/hello-agent:0.1.0"}' "http://d/v1.41/containers/create?name=$p-c" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["Id"])')
write_tree two one with_c
expect_exit 1 "apply refuses to take over a foreign container" -- R apply "$work/tree" --auto-approve
contains "the error names the foreign container" "not manage" "$out"
if [[ "$(container_id "$p-c")" == "$foreign_id" ]]; then ok "the foreign container is untouched"; else bad "foreign container changed"; fi
api -X DELETE "http://d/v1.41/containers/$foreign_id?force=1" >/dev/null && foreign_id=""
write_tree two one
R apply "$work/tree" --auto-approve >/dev/null 2>&1

# --- saved plans --------------------------------------------------------------
write_tree three one
expect_exit 2 "plan --out saves a plan" -- R plan "$work/tree" --out "$work/saved.json"
contains "plan --out says how to apply it" "reconcile apply $work/saved.json --source" "$out"
expect_exit 0 "show renders a saved plan" -- R show "$work/saved.json"
contains "show names the source" "source:   $work/tree" "$out"
contains "show renders the change" 'env.GREETING = "two" -> "three"' "$out"
shown=$(R show --json "$work/saved.json" | python3 -c "import json,sys; print(json.dumps(json.load(sys.stdin), sort_keys=True))")
planned=$(R plan "$work/tree" --json | python3 -c "import json,sys; print(json.dumps(json.load(sys.stdin), sort_keys=True))")
if [[ "$shown" == "$planned" ]]; then ok "show --json is what plan --json prints"; else bad "show --json differs from plan --json"; fi
if node "$SOURCE_DIR/tests/schema/validate_plan.js" "$work/saved.json" >/dev/null 2>&1 ||
   [[ ! -d "$SOURCE_DIR/tests/schema/node_modules" ]]; then
  ok "the saved plan validates against schemas/plan.schema.json (or ajv is checked by schema_crosscheck_test)"
else bad "the saved plan does not validate against schemas/plan.schema.json"; fi
# Tampered copies: each is refused, and nothing is deployed.
edit_plan() {  # edit_plan NAME PYTHON: a copy of saved.json with `j` edited
  python3 -c "import json,sys; j=json.load(open(sys.argv[1])); $2; json.dump(j, open(sys.argv[2], 'w'))" \
    "$work/saved.json" "$work/$1.json"
}
a_change='next(c for c in j["plan"]["changes"] if c["action"] != "no-op")'
edit_plan edited-desired "c=$a_change; c['desired']['env']['GREETING']='evil'"
edit_plan edited-hash "c=$a_change; c['desiredHash']='sha256:'+'0'*64"
edit_plan edited-image "c=$a_change; c['desired']['image']='busybox:latest'"
edit_plan other-state "j['stateDir']='$work/elsewhere'"
edit_plan other-source "j['source']='$work/elsewhere'"
id_a=$(container_id "$p-a")
for name in edited-desired edited-hash edited-image; do
  expect_exit 1 "a saved plan with an $name is refused" -- R apply "$work/$name.json" --source "$work/tree"
  contains "$name: the error says it differs from the plan computed now" "does not match the plan computed now" "$out"
done
expect_exit 1 "a plan file cannot redirect the state folder" -- R apply "$work/other-state.json" --source "$work/tree"
contains "the error names both state folders" "was made for source $work/tree and state $work/elsewhere" "$out"
expect_exit 1 "a plan file cannot redirect the source" -- R apply "$work/other-source.json" --source "$work/tree"
[[ ! -e "$work/elsewhere" ]] && ok "nothing was written elsewhere" || bad "a plan file made us write to $work/elsewhere"
expect_exit 1 "a saved plan applied from another folder is refused" -- R apply "$work/saved.json"
contains "it says which source and state to use" "--source $work/tree" "$out"
if [[ "$(container_id "$p-a")" == "$id_a" ]]; then ok "no refused plan touched the container"; else bad "a refused plan replaced a container"; fi
expect_exit 1 "apply of a YAML file says it is not a plan" -- R apply "$work/tree/agents.yaml"
contains "it says what apply takes" "is a file of YAML (manifests), not a saved plan" "$out"
expect_exit 1 "show of a YAML file fails too" -- R show "$work/tree/agents.yaml"
expect_exit 0 "apply the saved plan" -- R apply "$work/saved.json" --source "$work/tree"
expect_exit 0 "plan after the saved plan is empty" -- R plan "$work/tree"
write_tree four one
R plan "$work/tree" --out "$work/stale.json" >/dev/null
write_tree five one
expect_exit 1 "a saved plan is refused when the tree changed" -- R apply "$work/stale.json" --source "$work/tree"
contains "stale plan error says why" "stale" "$out"
write_tree three one

# --- unhealthy agent ----------------------------------------------------------
{ target_doc; agent_doc "$p-a" three; agent_doc "$p-b" one
  agent_yaml "$p-sick" "  env: {HEALTH_FAIL: \"1\"}
  healthCheck: {path: /health, interval: 100ms, timeout: 1s, retries: 5}"
} >"$work/tree/agents.yaml"
expect_exit 1 "apply fails when an agent never becomes healthy" -- R apply "$work/tree" --auto-approve
contains "the failure says it was not healthy" "health" "$out"
write_tree three one
R apply "$work/tree" --auto-approve >/dev/null 2>&1

# --- interrupt during a health wait ---------------------------------------------
# A 5-minute health wait (300 x 1s); SIGTERM must stop it at once: exit 1,
# the new container removed (start-first: the old one keeps serving), state
# recorded, the lock released; the next apply converges.
{ target_doc; agent_doc "$p-a" three; agent_doc "$p-b" one
  agent_yaml "$p-slow" "  env: {HEALTH_FAIL: \"1\"}
  strategy: {type: start-first}
  healthCheck: {path: /health, interval: 1s, timeout: 1s, retries: 300}"
} >"$work/tree/agents.yaml"
"$RECONCILE" --no-color apply "$work/tree" --auto-approve >"$work/int.log" 2>&1 &
apply_pid=$!
for _ in $(seq 100); do grep -q "waiting for health" "$work/int.log" && break; sleep 0.1; done
t0=$(date +%s%N)
kill -TERM "$apply_pid"  # a background job ignores SIGINT; Ctrl-C is the same path
wait "$apply_pid"; code=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
out="$(cat "$work/int.log")"
if [[ $code -eq 1 ]]; then ok "an interrupted apply exits 1"; else bad "interrupted apply: exit $code" "$out"; fi
if [[ $ms -lt 5000 ]]; then ok "the interrupt ends the health wait promptly (${ms} ms)"; else bad "interrupt took ${ms} ms" "$out"; fi
contains "the interrupt is explained" "what ran is recorded" "$out"
if [[ ! -e "$work/tree/.reconcile/lock.json" ]]; then ok "the lock is released after an interrupt"; else bad "lock.json left behind"; fi
expect_exit 0 "status loads after an interrupt" -- R status "$work/tree"
{ target_doc; agent_doc "$p-a" three; agent_doc "$p-b" one; } >"$work/tree/agents.yaml"
expect_exit 0 "the next apply converges after an interrupt" -- R apply "$work/tree" --auto-approve
expect_exit 0 "nothing left to do after converging" -- R plan "$work/tree"
if [[ -z "$(container_id "$p-slow")" && -z "$(container_id "$p-slow-next")" ]]; then
  ok "no container of the interrupted agent is left"
else
  bad "a container of the interrupted agent is left"
fi

# --- lock -------------------------------------------------------------------
# A live holder: a process that holds the flock on .reconcile/lock (as a
# running apply or controller does) and is named in lock.json.
(exec 9>"$work/tree/.reconcile/lock"; flock 9; exec sleep 120) &
holder_pid=$!  # the one process that holds the flock (sleep inherits fd 9)
sleep 0.3
printf '{"pid":%d,"host":"%s","startedAt":"%s","command":"reconcile controller"}\n' "$holder_pid" \
  "$(hostname)" "2020-01-01T00:00:00Z" >"$work/tree/.reconcile/lock.json"
expect_exit 1 "a live holder's lock blocks apply, however old" -- R apply "$work/tree" --auto-approve
contains "the lock error names its holder" "pid $holder_pid" "$out"
expect_exit 1 "unlock refuses to break a live holder's lock" -- R unlock "$work/tree"
kill "$holder_pid"; wait "$holder_pid" 2>/dev/null
expect_exit 0 "apply takes over the lock of a holder that died" -- R apply "$work/tree" --auto-approve
printf '{"pid":1,"host":"elsewhere","startedAt":"%s","command":"reconcile apply"}\n' \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$work/tree/.reconcile/lock.json"
expect_exit 1 "a lock from another host blocks apply" -- R apply "$work/tree" --auto-approve
contains "the lock error names the other host" "host elsewhere" "$out"
expect_exit 0 "unlock breaks the other host's lock" -- R unlock "$work/tree"
expect_exit 0 "apply works after unlock" -- R apply "$work/tree" --auto-approve

# --- drift ---------------------------------------------------------------------
expect_exit 0 "no drift after apply" -- R drift "$work/tree"
api -X POST "http://d/v1.41/containers/$(container_id "$p-b")/stop?t=1" >/dev/null
expect_exit 2 "drift after a container was stopped" -- R drift "$work/tree"
contains "drift names the agent and kind" "$p-b: stopped" "$out"
expect_exit 0 "apply heals the drift" -- R apply "$work/tree" --auto-approve
expect_exit 0 "no drift after healing" -- R drift "$work/tree"

# --- secrets never leave the container --------------------------------------
secret="s3cr3t-$RANDOM-value"
mkdir -p "$work/secrets"
printf '%s\n' "$secret" >"$work/secrets/greeting"
{ target_doc; agent_doc "$p-a" three; agent_doc "$p-b" one
  agent_yaml "$p-s" "  secretEnv: {GREETING: {file: greeting}}
  healthCheck: {path: /health, interval: 100ms, timeout: 1s, retries: 50}"
} >"$work/tree/agents.yaml"
expect_exit 1 "a missing secret fails the apply" -- R apply "$work/tree" --auto-approve --secrets "$work/nosecrets"
contains "the error names the missing secret file" "greeting" "$out"
if [[ -z "$(container_id "$p-s")" ]]; then ok "nothing was created for the agent with a missing secret"; else bad "container created without its secret"; fi
expect_exit 0 "apply with the secret" -- R -v apply "$work/tree" --auto-approve --secrets "$work/secrets"
log="$out"
sendpoint=$(R status "$work/tree" --json | python3 -c "import json,sys; print(next(a['endpoint'] for a in json.load(sys.stdin)['agents'] if a['name']=='$p-s'))")
contains "the secret reached the container" "$secret" "$(curl -fsS "$sendpoint/")"
plan_json=$(R plan "$work/tree" --json --secrets "$work/secrets")
leaks=$(grep -l -- "$secret" "$work/tree/.reconcile/"*.json 2>/dev/null; grep -c -- "$secret" <<<"$log$plan_json")
if [[ "$leaks" == "0" ]]; then ok "the secret value is in no state file, plan or log"; else bad "secret leaked: $leaks"; fi
contains "plans show the reference, not the value" '"file:greeting"' "$plan_json"

# --- secretEnv {env: VAR}: only names the operator allowed ---------------------
env_tree() {  # env_tree VAR: agent $p-s greets with the secret in $VAR
  { target_doc; agent_doc "$p-a" three; agent_doc "$p-b" one
    agent_yaml "$p-s" "  secretEnv:
    GREETING: {env: $1}
  healthCheck: {path: /health, interval: 100ms, timeout: 1s, retries: 50}"
  } >"$work/tree/agents.yaml"
}
canary="env-c4n4ry-$RANDOM-value"
s_id=$(container_id "$p-s")
export AWS_SECRET_ACCESS_KEY="$canary" HELLO_TOKEN="$canary" RECONCILE_SECRET_HELLO="$canary"
env_tree AWS_SECRET_ACCESS_KEY
expect_exit 1 "an engine credential is refused, even listed" -- R validate "$work/tree" --allow-secret-env AWS_SECRET_ACCESS_KEY
if grep -qE "agents.yaml:[0-9]+:[0-9]+: error: spec.secretEnv.GREETING: agent '$p-s': environment variable AWS_SECRET_ACCESS_KEY belongs to the engine's own credentials" <<<"$out"; then
  ok "the error names file:line:column, the field and the variable"; else bad "no positioned error" "$out"; fi
contains "... and says it can never be read" "can never be read by a tree, even with --allow-secret-env" "$out"
env_tree HELLO_TOKEN
expect_exit 1 "an unlisted variable is refused by validate" -- R validate "$work/tree"
contains "the error says how to allow it" "--allow-secret-env HELLO_TOKEN" "$out"
expect_exit 1 "... and by apply, which changes nothing" -- R apply "$work/tree" --auto-approve --secrets "$work/secrets"
if [[ "$(container_id "$p-s")" == "$s_id" ]]; then ok "the agent still runs its previous container"; else bad "the container changed"; fi
expect_exit 1 "the engine's own Git token variable is refused, even listed" -- R validate "$work/tree" --git-password-env HELLO_TOKEN --allow-secret-env HELLO_TOKEN
expect_exit 0 "with --allow-secret-env it deploys" -- R -v apply "$work/tree" --auto-approve --allow-secret-env HELLO_TOKEN
log="$out"
sendpoint=$(R status "$work/tree" --json --allow-secret-env HELLO_TOKEN | python3 -c "import json,sys; print(next(a['endpoint'] for a in json.load(sys.stdin)['agents'] if a['name']=='$p-s'))")
contains "the environment secret reached the container" "$canary" "$(curl -fsS "$sendpoint/")"
env_tree RECONCILE_SECRET_HELLO
expect_exit 0 "RECONCILE_SECRET_* needs no listing" -- R -v apply "$work/tree" --auto-approve
log="$log$out"
plan_json=$(R plan "$work/tree" --json)
leaks=$(grep -l -- "$canary" "$work/tree/.reconcile/"*.json 2>/dev/null; grep -c -- "$canary" <<<"$log$plan_json")
if [[ "$leaks" == "0" ]]; then ok "the environment secret is in no state file, plan or log"; else bad "secret leaked: $leaks"; fi
unset AWS_SECRET_ACCESS_KEY HELLO_TOKEN RECONCILE_SECRET_HELLO
write_tree three one
R apply "$work/tree" --auto-approve >/dev/null 2>&1

# --- hostile files change nothing ---------------------------------------------
printf 'not json' >"$work/garbage.json"
expect_exit 1 "a garbage plan file is refused" -- R apply "$work/garbage.json" --source "$work/tree"
contains "the error names the plan file" "garbage.json" "$out"
printf '{"reconcileSavedPlan":1,"source":"%s","stateDir":"%s","plan":{"formatVersion":1,"revision":"x","observedDigest":"y","changes":[{"address":"agent.z"}]}}' \
  "$work/tree" "$work/tree/.reconcile" >"$work/truncated.json"
expect_exit 1 "a plan file with a truncated change is refused" -- R apply "$work/truncated.json" --source "$work/tree"
contains "the error names the missing field" "plan.changes[0]" "$out"
cp "$work/tree/.reconcile/state.json" "$work/state.good"
printf '{"version": 1, "serial": "oops"' >"$work/tree/.reconcile/state.json"
expect_exit 1 "a corrupt state file stops apply" -- R apply "$work/tree" --auto-approve
contains "the error names the state file" "state.json" "$out"
if [[ "$(cat "$work/tree/.reconcile/state.json")" == '{"version": 1, "serial": "oops"' ]]; then
  ok "the corrupt state file is left as it is"
else bad "the corrupt state file was overwritten"; fi
cp "$work/state.good" "$work/tree/.reconcile/state.json"
expect_exit 0 "with the state restored, nothing to do" -- R plan "$work/tree"

# --- destroy -------------------------------------------------------------------
expect_exit 0 "destroy removes everything the state owns" -- R destroy "$work/tree" --auto-approve
if [[ -z "$(container_id "$p-a")" && -z "$(container_id "$p-b")" ]]; then ok "no containers left"; else bad "destroy left containers"; fi

echo "cli docker: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
