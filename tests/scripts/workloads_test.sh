#!/usr/bin/env bash
# Workload fields against the real Docker Engine (issue #13): named volumes
# that reconcile creates, labels and owns and that keep their data across a
# replace and a start-first rollout; destroy keeps them unless the agent says
# `reclaim: delete`; bind mounts only from `--allow-bind` paths; tmpfs;
# read-only mounts; a volume that exists without our labels is refused with
# nothing changed. Several `ports`, each with protocol, host address and port;
# `restart` policies as the engine holds them.
#
# Data is written into and read from the volume through the Engine API's
# archive endpoints (PUT/GET /containers/{id}/archive), which work on the
# FROM-scratch hello image.
#
# Needs: $RECONCILE, $SOURCE_DIR, $BUILD_DIR (set by CTest), a Docker Engine
# (started here when missing) and the hello image (built here when missing).
# Removes only the containers and volumes it created (names with a random
# per-run prefix).
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}" "${BUILD_DIR:?}"
bash "$SOURCE_DIR/scripts/ensure-dockerd.sh" >/dev/null || { echo "no Docker Engine"; exit 1; }
bash "$SOURCE_DIR/scripts/hello-image.sh" "$BUILD_DIR" >/dev/null || { echo "no hello image"; exit 1; }

sock=/var/run/docker.sock
api() { curl -fsS --unix-socket "$sock" "$@"; }
work="$(mktemp -d)"
p="w$(printf '%04x' $((RANDOM % 65536)))"  # name prefix, unique per run
passed=0
failed=0

cleanup() {
  "$RECONCILE" --allow-bind "$work/host" destroy "$work/tree" --auto-approve --no-color >/dev/null 2>&1 || true
  for v in "$p-data" "$p-foreign"; do
    # Only ours (by the per-run prefix); the test made both.
    curl -sS --unix-socket "$sock" -X DELETE "http://d/v1.41/volumes/$v" >/dev/null 2>&1
  done
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=tests/scripts/lib.sh
source "$SOURCE_DIR/tests/scripts/lib.sh"
volume_status() {  # HTTP status of GET /volumes/$1
  curl -s -o /dev/null -w '%{http_code}' --unix-socket "$sock" "http://d/v1.41/volumes/$1"
}
write_file() {  # write_file CONTAINER_ID DIR NAME CONTENT: through PUT /containers/{id}/archive
  python3 - "$4" "$3" >"$work/upload.tar" <<'PY'
import io, sys, tarfile
data = sys.argv[1].encode()
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as tar:
    info = tarfile.TarInfo(sys.argv[2]); info.size = len(data); info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))
sys.stdout.buffer.write(buf.getvalue())
PY
  api -X PUT -H 'Content-Type: application/x-tar' --data-binary "@$work/upload.tar" \
    "http://d/v1.41/containers/$1/archive?path=$2"
}
read_file() {  # read_file CONTAINER_ID PATH: its content, or empty
  api "http://d/v1.41/containers/$1/archive?path=$2" 2>/dev/null |
    python3 -c 'import sys, tarfile; t = tarfile.open(fileobj=sys.stdin.buffer, mode="r|"); m = next(iter(t)); print(t.extractfile(m).read().decode())' 2>/dev/null
}

mkdir -p "$work/tree" "$work/host"
echo "from the host" >"$work/host/config.txt"
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
db_doc() {  # db_doc GREETING STRATEGY RECLAIM
  cat <<YAML
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $p-db}
spec:
  image: reconcile/hello-agent:0.1.0
  target: local
  port: 8080
  env: {GREETING: "$1"}
  healthCheck: {path: /health, interval: 100ms, timeout: 1s, retries: 50}
  strategy: {type: $2}
  volumes:
    - {type: volume, source: $p-data, target: /data, reclaim: $3}
    - {type: bind, source: $work/host, target: /host, readOnly: true}
    - {type: tmpfs, target: /scratch, size: 16Mi}
YAML
}
write_tree() { { target_doc; db_doc "$@"; } >"$work/tree/agents.yaml"; }
R() { "$RECONCILE" --no-color "$@"; }
RB() { "$RECONCILE" --no-color --allow-bind "$work/host" "$@"; }

# --- validation: bind mounts only from allowed paths --------------------------
write_tree one recreate retain
expect_exit 1 "a bind mount without --allow-bind is invalid" -- R validate "$work/tree"
contains "the error names file:line:column and the field" "agents.yaml:20:" "$out"
contains "the error names spec.volumes[1].source" "spec.volumes[1].source" "$out"
contains "the error says how the operator allows it" "--allow-bind" "$out"
expect_exit 1 "a bind mount outside the allowed path is invalid" -- R --allow-bind "$work/other" validate "$work/tree"
contains "the error lists the allowed paths" "not below an allowed path ($work/other)" "$out"
expect_exit 1 "plan refuses the tree too, nothing observed" -- R plan "$work/tree"
expect_exit 0 "with --allow-bind the tree is valid" -- RB validate "$work/tree"
expect_exit 1 "--allow-bind needs an absolute path" -- R --allow-bind relative validate "$work/tree"

# --- a volume that exists but is not ours: refused, nothing changed ------------
api -X POST -H 'Content-Type: application/json' -d "{\"Name\": \"$p-foreign\"}" \
  "http://d/v1.41/volumes/create" >/dev/null || bad "cannot create the foreign volume"
sed "s/source: $p-data/source: $p-foreign/" "$work/tree/agents.yaml" >"$work/foreign.yaml"
mkdir -p "$work/foreign" && mv "$work/foreign.yaml" "$work/foreign/agents.yaml"
expect_exit 1 "apply with a foreign volume fails" -- RB apply "$work/foreign" --auto-approve
contains "the error says the volume is not managed by reconcile" "volume '$p-foreign' already exists and is not managed by reconcile" "$out"
if [[ -z "$(container_id "$p-db")" ]]; then ok "no container was created"; else bad "a container was created"; fi
labels=$(api "http://d/v1.41/volumes/$p-foreign" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Labels"])')
if [[ "$labels" == "None" || "$labels" == "{}" ]]; then ok "the foreign volume is left as it was"; else bad "foreign volume labels changed: $labels"; fi
rm -rf "$work/foreign"

# --- create: the volume is created and labelled; mounts as written -------------
expect_exit 2 "plan shows the volumes" -- RB plan "$work/tree"
contains "plan lists the named volume field" "volumes./data.source = \"$p-data\"" "$(tr -s ' ' <<<"$out")"
expect_exit 0 "apply creates the agent and its volume" -- RB apply "$work/tree" --auto-approve
id1=$(container_id "$p-db")
vlabels=$(api "http://d/v1.41/volumes/$p-data" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Labels"])')
contains "the volume carries managed-by" "'reconcile.dev/managed-by': 'reconcile'" "$vlabels"
contains "the volume carries the agent" "'reconcile.dev/agent': '$p-db'" "$vlabels"
mounts=$(api "http://d/v1.41/containers/$id1/json" | python3 -c '
import json, sys
c = json.load(sys.stdin)
for m in sorted(c["HostConfig"]["Mounts"], key=lambda m: m["Target"]):
    print(m["Type"], m.get("Source", "-"), m["Target"], m.get("ReadOnly", False), m.get("TmpfsOptions", {}).get("SizeBytes", 0))')
contains "the named volume is mounted read-write" "volume $p-data /data False 0" "$mounts"
contains "the bind mount is read-only" "bind $work/host /host True 0" "$mounts"
contains "the tmpfs has its size" "tmpfs - /scratch False 16777216" "$mounts"
contains "the bind mount shows the host file" "from the host" "$(read_file "$id1" /host/config.txt)"
expect_exit 0 "a second apply changes nothing" -- RB apply "$work/tree" --auto-approve
contains "No changes." "No changes." "$out"

# --- data survives a replace (recreate) and a start-first rollout --------------
write_file "$id1" /data hello.txt "kept-$p" || bad "cannot write into the volume"
contains "the data is in the volume" "kept-$p" "$(read_file "$id1" /data/hello.txt)"
write_tree two recreate retain
expect_exit 2 "plan for an env change" -- RB plan "$work/tree"
contains "the env change forces replacement" 'env.GREETING = "one" -> "two" # forces replacement' "$out"
contains "the plan says the volume keeps its data" "volume '$p-data' kept with its data" "$out"
expect_exit 0 "apply the replace" -- RB apply "$work/tree" --auto-approve
id2=$(container_id "$p-db")
if [[ -n "$id2" && "$id2" != "$id1" ]]; then ok "the container was replaced"; else bad "not replaced ($id1 -> $id2)"; fi
contains "the data survived the replace" "kept-$p" "$(read_file "$id2" /data/hello.txt)"
write_tree three start-first retain
expect_exit 0 "apply a start-first rollout" -- RB apply "$work/tree" --auto-approve
id3=$(container_id "$p-db")
if [[ -n "$id3" && "$id3" != "$id2" ]]; then ok "start-first replaced the container"; else bad "not replaced ($id2 -> $id3)"; fi
contains "the data survived the start-first rollout" "kept-$p" "$(read_file "$id3" /data/hello.txt)"

# --- destroy keeps the volume (reclaim: retain) --------------------------------
expect_exit 0 "destroy" -- RB destroy "$work/tree" --auto-approve
contains "destroy says the volume is kept" "volume '$p-data' and its data are kept (reclaim: retain)" "$out"
if [[ -z "$(container_id "$p-db")" ]]; then ok "destroy removed the container"; else bad "container left"; fi
if [[ "$(volume_status "$p-data")" == 200 ]]; then ok "destroy kept the volume"; else bad "the volume is gone"; fi

# --- reclaim: delete: the volume is reused, then deleted by destroy ------------
write_tree four recreate delete
expect_exit 0 "apply again, reclaim: delete" -- RB apply "$work/tree" --auto-approve
id4=$(container_id "$p-db")
contains "the kept volume is mounted again with its data" "kept-$p" "$(read_file "$id4" /data/hello.txt)"
expect_exit 0 "destroy with reclaim: delete" -- RB destroy "$work/tree" --auto-approve
contains "destroy says the volume is deleted" "volume '$p-data' will be DELETED with its data (reclaim: delete)" "$out"
if [[ "$(volume_status "$p-data")" == 404 ]]; then ok "destroy deleted the volume"; else bad "the volume is still there"; fi
if [[ "$(volume_status "$p-foreign")" == 200 ]]; then ok "the foreign volume was never touched"; else bad "the foreign volume is gone"; fi

# --- ports: several, each with protocol, host address and host port ----------
free=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/tree/agents.yaml" <<YAML
$(target_doc)
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $p-api}
spec:
  image: reconcile/hello-agent:0.1.0
  target: local
  port: 8080
  env: {PORT: "9001", GREETING: ports}   # the server listens on 9001 only
  ports:
    - {containerPort: 9001, hostIP: 127.0.0.1, hostPort: $free}
    - {containerPort: 9002, protocol: udp}
YAML
expect_exit 2 "plan shows the ports" -- R plan "$work/tree"
contains "plan lists a port by number and protocol" "ports.9001/tcp.hostPort = $free" "$(tr -s ' ' <<<"$out")"
expect_exit 0 "apply an agent with several ports" -- R apply "$work/tree" --auto-approve
idp=$(container_id "$p-api")
bindings=$(api "http://d/v1.41/containers/$idp/json" | python3 -c '
import json, sys
c = json.load(sys.stdin)
for k, v in sorted(c["HostConfig"]["PortBindings"].items()):
    print(k, v[0]["HostIp"], v[0]["HostPort"] or "ephemeral")
for k, v in sorted((c["NetworkSettings"]["Ports"] or {}).items()):
    print("published", k, "yes" if v else "no")')
contains "the main port keeps its ephemeral binding" "8080/tcp 127.0.0.1 ephemeral" "$bindings"
contains "the fixed port is bound on its host address" "9001/tcp 127.0.0.1 $free" "$bindings"
contains "the udp port is bound on publishAddress" "9002/udp 127.0.0.1 ephemeral" "$bindings"
contains "the udp port is published" "published 9002/udp yes" "$bindings"
contains "the agent answers through the fixed host port" '"greeting":"ports"' "$(curl -fsS "http://127.0.0.1:$free/" 2>&1)"
expect_exit 0 "a second apply changes nothing" -- R apply "$work/tree" --auto-approve
contains "ports: No changes." "No changes." "$out"
expect_exit 0 "destroy the ports agent" -- R destroy "$work/tree" --auto-approve

# --- restart policy -------------------------------------------------------------
restart_doc() {  # restart_doc NAME [restart line]
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
{ target_doc; restart_doc "$p-r0" ""; restart_doc "$p-r1" "  restart: no"; restart_doc "$p-r2" "  restart: on-failure:2"; } >"$work/tree/agents.yaml"
expect_exit 0 "apply agents with restart policies" -- R apply "$work/tree" --auto-approve
policy() { api "http://d/v1.41/containers/$(container_id "$1")/json" | python3 -c 'import json,sys; p = json.load(sys.stdin)["HostConfig"]["RestartPolicy"]; print(p["Name"], p.get("MaximumRetryCount", 0))'; }
contains "no restart field: unless-stopped, as before" "unless-stopped 0" "$(policy "$p-r0")"
contains "restart: no" "no 0" "$(policy "$p-r1")"
contains "restart: on-failure:2" "on-failure 2" "$(policy "$p-r2")"
expect_exit 0 "destroy the restart agents" -- R destroy "$work/tree" --auto-approve

echo "workloads: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
