#!/usr/bin/env bash
# Networks, unpublished ports and secret files against the real Docker Engine
# (issue #13): reconcile creates and labels the agents' networks; two agents
# on one network reach each other by agent name and alias; a port with
# `publish: false` is bound on no host address yet reachable from the other
# agent; a network that exists without our labels is refused with nothing
# applied; a network no agent uses any more is removed (after a change and on
# destroy); `secretFiles` are in the container read-only with their mode and
# content, and their values are in no state file, plan or log.
#
# Inside the containers: a test image FROM scratch holding Debian's static
# busybox (busybox-static), run through the Engine's exec API (wget,
# nslookup); files are read through GET /containers/{id}/archive.
#
# Needs: $RECONCILE, $SOURCE_DIR, $BUILD_DIR (set by CTest), a Docker Engine
# (started here when missing), the hello image (built here when missing) and
# a static /bin/busybox (busybox-static, from scripts/bootstrap.sh). Removes only
# what it created (names with a random per-run prefix).
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}" "${BUILD_DIR:?}"
bash "$SOURCE_DIR/scripts/ensure-dockerd.sh" >/dev/null || { echo "no Docker Engine"; exit 1; }
bash "$SOURCE_DIR/scripts/hello-image.sh" "$BUILD_DIR" >/dev/null || { echo "no hello image"; exit 1; }
busybox=/bin/busybox  # busybox-static (scripts/bootstrap.sh installs it)
static() { [[ -x "$busybox" ]] && ! ldd "$busybox" >/dev/null 2>&1; }
static || apt-get install -y busybox-static >/dev/null 2>&1 || true
static || { echo "no static busybox (apt-get install busybox-static)"; exit 1; }

sock=/var/run/docker.sock
api() { curl -fsS --unix-socket "$sock" "$@"; }
work="$(mktemp -d)"
p="n$(printf '%04x' $((RANDOM % 65536)))"  # name prefix, unique per run
bb="reconcile-test/$p-busybox:1"
passed=0
failed=0

cleanup() {
  "$RECONCILE" --no-color destroy "$work/tree" --auto-approve --secrets "$work/secrets" >/dev/null 2>&1 || true
  for n in "$p-backend" "$p-front" "$p-foreign"; do  # only ours, by the per-run prefix
    curl -sS --unix-socket "$sock" -X DELETE "http://d/v1.41/networks/$n" >/dev/null 2>&1
  done
  curl -sS --unix-socket "$sock" -X DELETE "http://d/v1.41/images/${bb//\//%2F}?force=1" >/dev/null 2>&1
  rm -rf "/dev/shm/reconcile-secrets/local/$p-api" "/dev/shm/reconcile-secrets/local/$p-client"
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=tests/scripts/lib.sh
source "$SOURCE_DIR/tests/scripts/lib.sh"
network_status() {  # HTTP status of GET /networks/$1
  curl -s -o /dev/null -w '%{http_code}' --unix-socket "$sock" "http://d/v1.41/networks/$1"
}
run_in() {  # run_in CONTAINER_ID ARG...: busybox ARG... in the container (exec API); its output, then "exit=N"
  local id=$1; shift
  local cmd exec_id
  cmd=$(python3 -c 'import json,sys; print(json.dumps(["/bin/busybox"] + sys.argv[1:]))' "$@")
  exec_id=$(api -X POST -H 'Content-Type: application/json' \
    -d "{\"AttachStdout\": true, \"AttachStderr\": true, \"Tty\": true, \"Cmd\": $cmd}" \
    "http://d/v1.41/containers/$id/exec" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Id"])')
  api -X POST -H 'Content-Type: application/json' -d '{"Detach": false, "Tty": true}' \
    --max-time 20 --output - "http://d/v1.41/exec/$exec_id/start"
  echo
  echo "exit=$(api "http://d/v1.41/exec/$exec_id/json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ExitCode"])')"
}
file_in() {  # file_in CONTAINER_ID PATH: "mode=0NNN" and the content, through GET /archive
  api "http://d/v1.41/containers/$1/archive?path=$2" 2>/dev/null |
    python3 -c 'import sys, tarfile; t = tarfile.open(fileobj=sys.stdin.buffer, mode="r|"); m = next(iter(t)); print("mode=%04o" % (m.mode & 0o7777)); print(t.extractfile(m).read().decode())' 2>/dev/null
}

# --- the test image: FROM scratch with a static busybox ------------------------
mkdir -p "$work/bb" "$work/tree" "$work/secrets"
cp "$busybox" "$work/bb/busybox"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT ["/bin/busybox"]\nCMD ["sleep", "3600"]\n' >"$work/bb/Dockerfile"
tar -C "$work/bb" -cf "$work/bb.tar" Dockerfile busybox
built=$(curl -sS --unix-socket "$sock" -X POST -H 'Content-Type: application/x-tar' \
  --data-binary "@$work/bb.tar" "http://d/v1.41/build?t=${bb//\//%2F}&rm=1&q=1")
if grep -q '"error"' <<<"$built"; then echo "cannot build $bb: $built"; exit 1; fi

secret="file-secret-$p-$RANDOM$RANDOM"
env_secret="env-secret-$p-$RANDOM$RANDOM"
printf '%s\n' "$secret" >"$work/secrets/token"
export RECONCILE_SECRET_NETTEST_KEY="$env_secret"

target_doc() {  # target_doc [HOST]
  cat <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: local}
spec:
  provider: docker
  docker: {host: "${1:-unix:///var/run/docker.sock}", publishAddress: 127.0.0.1}
YAML
}
api_doc() {
  cat <<YAML
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $p-api}
spec:
  image: reconcile/hello-agent:0.1.0
  target: local
  port: 8080
  publish: false
  env: {GREETING: "from-api"}
  ports:
    - {containerPort: 9001, publish: false}
  networks:
    - {name: $p-backend, aliases: [api-alias]}
  secretFiles:
    token: {file: token}
    key: {env: RECONCILE_SECRET_NETTEST_KEY, target: /etc/app/key, mode: "0440"}
YAML
}
client_doc() {  # client_doc NETWORK...
  cat <<YAML
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $p-client}
spec:
  image: $bb
  target: local
  port: 8080
  publish: false
  networks:
YAML
  for n in "$@"; do echo "    - $n"; done
}
R() { "$RECONCILE" --no-color "$@"; }

# --- bad input: errors at file:line:column, nothing applied --------------------
{ target_doc; api_doc; client_doc "$p-backend" "$p-backend"; } >"$work/tree/agents.yaml"
expect_exit 1 "a network listed twice is invalid" -- R validate "$work/tree"
contains "the error names file:line:column and the field" "agents.yaml:35:7: error: spec.networks[1]: network '$p-backend' is listed twice" "$out"
{ target_doc "tcp://127.0.0.1:2375"; api_doc; } >"$work/tree/agents.yaml"
expect_exit 1 "secretFiles on a remote engine are invalid" -- R validate "$work/tree"
contains "the error says secretFiles need a local engine" "agents.yaml:22:5: error: spec.secretFiles: secretFiles need a local Docker Engine" "$out"

# --- a network that exists without our labels: refused, nothing applied --------
api -X POST -H 'Content-Type: application/json' -d "{\"Name\": \"$p-foreign\"}" \
  "http://d/v1.41/networks/create" >/dev/null || bad "cannot create the foreign network"
{ target_doc; client_doc "$p-backend" "$p-foreign"; } >"$work/tree/agents.yaml"
expect_exit 1 "apply with a foreign network fails" -- R apply "$work/tree" --auto-approve
contains "the error names the network and says it is not managed by reconcile" "network '$p-foreign' already exists and is not managed by reconcile" "$out"
if [[ -z "$(container_id "$p-client")" ]]; then ok "no container was created"; else bad "a container was created"; fi
if [[ "$(network_status "$p-backend")" == 404 ]]; then ok "the other network was not created either"; else bad "$p-backend was created"; fi

# --- two agents on one owned network -------------------------------------------
{ target_doc; api_doc; client_doc "$p-backend" "$p-front"; } >"$work/tree/agents.yaml"
expect_exit 2 "plan shows the networks and secret files (references only)" -- R plan "$work/tree" --secrets "$work/secrets"
plan_out=$out
contains "plan lists the network with its aliases" "networks.$p-backend.aliases" "$plan_out"
contains "plan lists the secret file's reference" 'secretFiles.key.ref = "env:RECONCILE_SECRET_NETTEST_KEY"' "$(tr -s ' ' <<<"$plan_out")"
expect_exit 0 "apply creates the networks and both agents" -- R -v apply "$work/tree" --auto-approve --secrets "$work/secrets"
apply_log=$out
contains "apply says it creates the network" "creating network $p-backend" "$apply_log"
nlabels=$(api "http://d/v1.41/networks/$p-backend" | python3 -c 'import json,sys; n = json.load(sys.stdin); print(n["Driver"], sorted(n["Labels"].items()))')
contains "the network is a bridge labelled managed-by" "bridge [('reconcile.dev/managed-by', 'reconcile')" "$nlabels"
contains "the network is labelled with its name" "('reconcile.dev/network', '$p-backend')" "$nlabels"
ida=$(container_id "$p-api")
idc=$(container_id "$p-client")
nets() { api "http://d/v1.41/containers/$1/json" | python3 -c '
import json, sys
c = json.load(sys.stdin)
for name, e in sorted(c["NetworkSettings"]["Networks"].items()):
    print(name, sorted(e.get("Aliases") or []))'; }
api_nets=$(nets "$ida" | grep "^$p-backend ")
contains "the api is on the network with its agent name" "'$p-api'" "$api_nets"
contains "the api is on the network with its alias" "'api-alias'" "$api_nets"
client_nets=$(nets "$idc")
contains "the client is on its first network" "$p-backend " "$client_nets"
contains "the client joined its second network" "$p-front " "$client_nets"
lacks "the client is not on the default bridge" "bridge [" "$client_nets"

# unpublished: exposed, bound on no host address
ports=$(api "http://d/v1.41/containers/$ida/json" | python3 -c '
import json, sys
c = json.load(sys.stdin)
print("bindings", c["HostConfig"].get("PortBindings") or {})
for k, v in sorted((c["NetworkSettings"]["Ports"] or {}).items()):
    print("port", k, "bound" if v else "unbound")')
contains "the main port has no host binding" "port 8080/tcp unbound" "$ports"
contains "the extra port has no host binding" "port 9001/tcp unbound" "$ports"
contains "no PortBindings at all" "bindings {}" "$ports"

# reach the api from the client by agent name and by alias
got=$(run_in "$idc" wget -q -O - "http://$p-api:8080/")
contains "the client reaches the api by agent name" '"greeting":"from-api"' "$got"
contains "wget exited 0" "exit=0" "$got"
contains "the client reaches the api by alias" '"greeting":"from-api"' "$(run_in "$idc" wget -q -O - "http://api-alias:8080/")"
contains "the api's name resolves on the network" "exit=0" "$(run_in "$idc" nslookup "$p-api")"
endpoint=$(R status "$work/tree" --json --secrets "$work/secrets" | python3 -c "import json,sys; print(repr(next(a.get('endpoint') for a in json.load(sys.stdin)['agents'] if a['name']=='$p-api')))")
if [[ "$endpoint" == "''" || "$endpoint" == "None" ]]; then ok "status gives the unpublished api no endpoint"; else bad "api endpoint: $endpoint"; fi

# secret files: in the container, read-only, with their mode and content
f1=$(file_in "$ida" /run/secrets/token)
contains "the file secret is at /run/secrets/token" "$secret" "$f1"
contains "with the default mode 0400" "mode=0400" "$f1"
f2=$(file_in "$ida" /etc/app/key)
contains "the env secret is at its target" "$env_secret" "$f2"
contains "with its mode 0440" "mode=0440" "$f2"
mounts=$(api "http://d/v1.41/containers/$ida/json" | python3 -c '
import json, sys
for m in json.load(sys.stdin)["HostConfig"]["Mounts"]:
    print(m["Type"], m["Target"], m.get("ReadOnly", False), m["Source"])')
contains "mounted read-only from the tmpfs folder" "bind /run/secrets/token True /dev/shm/reconcile-secrets/local/$p-api/token" "$mounts"
hostdir="/dev/shm/reconcile-secrets/local/$p-api"
if [[ "$(stat -c %a "$hostdir")" == 700 && "$(stat -c %a "$hostdir/token")" == 400 ]]; then ok "the host folder is 0700, the file 0400"; else bad "host modes: $(stat -c '%a %n' "$hostdir" "$hostdir"/*)"; fi
inspect=$(api "http://d/v1.41/containers/$ida/json")
leaks=$( (grep -rlF -- "$secret" "$work/tree/.reconcile"; grep -rlF -- "$env_secret" "$work/tree/.reconcile") 2>/dev/null | wc -l)
if [[ "$leaks" == 0 ]]; then ok "no secret value in the state folder"; else bad "secret in state: $leaks files"; fi
lacks "no file secret in the plan" "$secret" "$plan_out$(R plan "$work/tree" --json --secrets "$work/secrets" 2>&1)"
lacks "no env secret in the plan" "$env_secret" "$plan_out"
lacks "no secret in the apply log" "$secret" "$apply_log"
lacks "no env secret in the apply log" "$env_secret" "$apply_log"
lacks "no secret in the container's config (env, labels)" "$secret" "$inspect"
expect_exit 0 "a second apply changes nothing" -- R apply "$work/tree" --auto-approve --secrets "$work/secrets"
contains "No changes." "No changes." "$out"

# --- a network no agent uses any more is removed ------------------------------
{ target_doc; api_doc; client_doc "$p-backend"; } >"$work/tree/agents.yaml"
expect_exit 2 "plan for a network dropped from the client" -- R plan "$work/tree" --secrets "$work/secrets"
contains "the change forces replacement" "- networks.$p-front.aliases = [] # forces replacement" "$(tr -s ' ' <<<"$out")"
expect_exit 0 "apply the change" -- R -v apply "$work/tree" --auto-approve --secrets "$work/secrets"
contains "apply says it removes the unused network" "removing network $p-front" "$out"
if [[ "$(network_status "$p-front")" == 404 ]]; then ok "the unused network is gone"; else bad "$p-front is still there"; fi
if [[ "$(network_status "$p-backend")" == 200 ]]; then ok "the used network stays"; else bad "$p-backend is gone"; fi
idc2=$(container_id "$p-client")
contains "the new client still reaches the api" '"greeting":"from-api"' "$(run_in "$idc2" wget -q -O - "http://$p-api:8080/")"

# --- prune: the client goes, the network stays while the api is attached -------
{ target_doc; api_doc; } >"$work/tree/agents.yaml"
expect_exit 0 "apply without the client (prune)" -- R -v apply "$work/tree" --auto-approve --secrets "$work/secrets"
contains "the plan says the network goes once unused" "network '$p-backend' is removed once no container is attached" "$out"
contains "the network is kept: the api is attached" "keeping network $p-backend: 1 container(s) still attached" "$out"
if [[ "$(network_status "$p-backend")" == 200 ]]; then ok "prune kept the network the api uses"; else bad "$p-backend is gone"; fi
if [[ -z "$(container_id "$p-client")" ]]; then ok "prune removed the client"; else bad "client left"; fi

# --- destroy removes the owned network, never the foreign one ------------------
expect_exit 0 "destroy" -- R destroy "$work/tree" --auto-approve --secrets "$work/secrets"
contains "destroy says the network goes" "network '$p-backend' is removed once no container is attached" "$out"
if [[ "$(network_status "$p-backend")" == 404 ]]; then ok "destroy removed the owned network"; else bad "$p-backend is still there"; fi
if [[ "$(network_status "$p-foreign")" == 200 ]]; then ok "the foreign network was never touched"; else bad "the foreign network is gone"; fi
if [[ ! -e "$hostdir" ]]; then ok "destroy removed the agent's secret files"; else bad "secret folder left: $hostdir"; fi

echo "networks: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
