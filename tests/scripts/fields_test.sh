#!/usr/bin/env bash
# Container fields and exec/TCP health checks against the real Docker Engine
# (issue #13): an exec health check that passes and one that fails (the apply
# reports unhealthy with the check's output), a TCP check that passes and one
# on a port where nothing listens; the container the engine holds carries
# StopSignal, StopTimeout, User, CapAdd/CapDrop, ReadonlyRootfs, Labels and
# Hostname as written; stopGracePeriod is the stop call's timeout; a GPU
# request, which this engine cannot serve, fails with a clear error naming the
# agent and the field and leaves no container; bad input changes nothing.
#
# The test image is built here FROM scratch with Debian's static busybox
# (/bin/sh, true, false, sleep, httpd), tagged with the per-run prefix, never
# pulled, and removed at the end.
#
# Needs: $RECONCILE, $SOURCE_DIR, $BUILD_DIR (set by CTest), a Docker Engine
# (started here when missing) and busybox-static (/bin/busybox). Removes only
# the containers and the image it created (names with a random per-run prefix).
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}" "${BUILD_DIR:?}"
bash "$SOURCE_DIR/scripts/ensure-dockerd.sh" >/dev/null || { echo "no Docker Engine"; exit 1; }
busybox=/bin/busybox
if [[ ! -x "$busybox" ]] || ldd "$busybox" >/dev/null 2>&1; then
  echo "fields: needs a static busybox at $busybox (apt-get install -y busybox-static)"
  exit 1
fi

sock=/var/run/docker.sock
api() { curl -fsS --unix-socket "$sock" "$@"; }
work="$(mktemp -d)"
p="f$(printf '%04x' $((RANDOM % 65536)))"  # name prefix, unique per run
image="$p-busybox:1"
passed=0
failed=0

cleanup() {
  for tree in "$work"/t-*; do
    [[ -d "$tree" ]] && "$RECONCILE" destroy "$tree" --auto-approve --no-color >/dev/null 2>&1
  done
  # Anything of ours left (by the per-run prefix), then our image.
  for id in $(api "http://d/v1.41/containers/json?all=1" |
    python3 -c "import json,sys; print(' '.join(c['Id'] for c in json.load(sys.stdin) if any(n.startswith('/$p-') for n in c['Names'])))"); do
    curl -sS --unix-socket "$sock" -X DELETE "http://d/v1.41/containers/$id?force=1" >/dev/null 2>&1
  done
  curl -sS --unix-socket "$sock" -X DELETE "http://d/v1.41/images/$image" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=tests/scripts/lib.sh
source "$SOURCE_DIR/tests/scripts/lib.sh"
equals() {  # equals NAME WANT GOT
  if [[ "$2" == "$3" ]]; then ok "$1"; else bad "$1: got '$3', want '$2'"; fi
}
inspect() {  # inspect NAME PYTHON-EXPRESSION-OF-c: prints it as JSON
  local id; id="$(container_id "$1")"
  [[ -n "$id" ]] || { echo "<no container $1>"; return; }
  api "http://d/v1.41/containers/$id/json" | python3 -c "import json,sys; c = json.load(sys.stdin); print(json.dumps($2, sort_keys=True))"
}
R() { "$RECONCILE" --no-color "$@"; }

# --- the test image: FROM scratch, static busybox ------------------------------
mkdir -p "$work/image"
cp "$busybox" "$work/image/busybox"
cat >"$work/image/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
EOF
tar -C "$work/image" -cf "$work/image.tar" Dockerfile busybox
build_out="$(api -X POST -H 'Content-Type: application/x-tar' --data-binary "@$work/image.tar" \
  "http://d/v1.41/build?t=$image&rm=1&forcerm=1&q=1" 2>&1)"
if [[ $? -ne 0 ]] || grep -q '"error"' <<<"$build_out"; then
  echo "fields: cannot build the test image: $build_out"
  exit 1
fi

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
# An agent of the busybox image serving HTTP on 8080 (busybox httpd, as a
# daemon) under a shell that exits on SIGTERM and SIGINT.
agent_doc() {  # agent_doc NAME EXTRA-SPEC-LINES
  cat <<YAML
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $1}
spec:
  image: $image
  target: local
  port: 8080
  command: [/bin/sh, -c, "trap 'exit 0' TERM INT; httpd -p 8080 -h /bin; while true; do sleep 1; done"]
$2
YAML
}
write_tree() {  # write_tree NAME: stdin is the tree's agents.yaml, after the Target
  mkdir -p "$work/t-$1"
  { target_doc; cat; } >"$work/t-$1/agents.yaml"
}

# --- exec health check that passes, and every container field -----------------
agent_doc "$p-web" "  healthCheck: {exec: [/bin/sh, -c, \"test -x /bin/true\"], interval: 200ms, timeout: 2s, retries: 5}
  stopSignal: SIGINT
  stopGracePeriod: 3s
  user: \"1000:1000\"
  capAdd: [NET_ADMIN]
  capDrop: [MKNOD, NET_RAW]
  readOnlyRootFilesystem: true
  labels: {com.example.tier: web, traefik.enable: true}
  hostname: web-1" | write_tree web
expect_exit 0 "apply an agent with an exec health check and every container field" -- R apply "$work/t-web" --auto-approve
equals "the engine ran the exec check and holds it healthy" '"healthy"' "$(inspect "$p-web" 'c["State"]["Health"]["Status"]')"
equals "Healthcheck.Test is CMD and the argv as written" '["CMD", "/bin/sh", "-c", "test -x /bin/true"]' "$(inspect "$p-web" 'c["Config"]["Healthcheck"]["Test"]')"
equals "Healthcheck timings in nanoseconds" '[200000000, 2000000000, 5]' "$(inspect "$p-web" '[c["Config"]["Healthcheck"][k] for k in ("Interval", "Timeout", "Retries")]')"
equals "StopSignal" '"SIGINT"' "$(inspect "$p-web" 'c["Config"]["StopSignal"]')"
equals "StopTimeout (stopGracePeriod in seconds)" '3' "$(inspect "$p-web" 'c["Config"]["StopTimeout"]')"
equals "User" '"1000:1000"' "$(inspect "$p-web" 'c["Config"]["User"]')"
equals "CapAdd" '["NET_ADMIN"]' "$(inspect "$p-web" 'c["HostConfig"]["CapAdd"]')"
equals "CapDrop" '["MKNOD", "NET_RAW"]' "$(inspect "$p-web" 'c["HostConfig"]["CapDrop"]')"
equals "ReadonlyRootfs" 'true' "$(inspect "$p-web" 'c["HostConfig"]["ReadonlyRootfs"]')"
equals "Hostname" '"web-1"' "$(inspect "$p-web" 'c["Config"]["Hostname"]')"
equals "our labels and reconcile's" '["web", "true", "reconcile"]' "$(inspect "$p-web" '[c["Config"]["Labels"][k] for k in ("com.example.tier", "traefik.enable", "reconcile.dev/managed-by")]')"
# The process really runs as that user, on a read-only root (seen by root).
run_in() {  # run_in CONTAINER USER SHELL-LINE: its output
  local exec_id
  exec_id="$(api -X POST -H 'Content-Type: application/json' \
    -d "$(python3 -c 'import json,sys; print(json.dumps({"Cmd": ["/bin/sh", "-c", sys.argv[2]], "User": sys.argv[1], "AttachStdout": True, "AttachStderr": True}))' "$2" "$3")" \
    "http://d/v1.41/containers/$1/exec" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Id"])')"
  api -X POST -H 'Content-Type: application/json' -d '{"Detach": false}' "http://d/v1.41/exec/$exec_id/start" | tr -cd '[:print:]\n'
}
id="$(container_id "$p-web")"
contains "the process runs as uid 1000" "1000" "$(run_in "$id" "" "id -u")"
contains "the root filesystem is read-only, even for root" "Read-only file system" "$(run_in "$id" 0 "touch /x 2>&1")"
expect_exit 0 "a second apply changes nothing" -- R apply "$work/t-web" --auto-approve
contains "No changes." "No changes." "$out"

# A field change is a field-level replace.
sed -i 's/user: "1000:1000"/user: "1001"/' "$work/t-web/agents.yaml"
expect_exit 2 "changing user is a change" -- R plan "$work/t-web"
contains "the plan names the field and says it forces a replacement" '~ user = "1000:1000" -> "1001" # forces replacement' "$out"

# --- stopGracePeriod is the stop call's timeout ----------------------------------
agent_doc "$p-grace" "  stopGracePeriod: 1s" | sed 's/trap .exit 0. TERM INT; //' | write_tree grace
expect_exit 0 "apply an agent whose process ignores the stop signal" -- R apply "$work/t-grace" --auto-approve
start=$(date +%s)
expect_exit 0 "destroy it" -- R destroy "$work/t-grace" --auto-approve
took=$(($(date +%s) - start))
if [[ $took -ge 1 && $took -lt 8 ]]; then ok "stopped after its 1s grace period, not the default 10s (${took}s)"; else bad "destroy took ${took}s; want 1 to 7 s with stopGracePeriod: 1s"; fi

# --- exec health check that fails ------------------------------------------------
agent_doc "$p-sick" "  healthCheck: {exec: [/bin/sh, -c, \"echo database is not ready >&2; exit 1\"], interval: 200ms, timeout: 1s, retries: 2}" | write_tree sick
expect_exit 1 "an exec check that fails fails the apply" -- R apply "$work/t-sick" --auto-approve
contains "the apply says the agent is unhealthy" "agent $p-sick did not become healthy" "$out"
contains "the error quotes the check's output" "database is not ready" "$out"
contains "the error gives the exit code" "exit code 1" "$out"
equals "the engine holds it unhealthy" '"unhealthy"' "$(inspect "$p-sick" 'c["State"]["Health"]["Status"]')"

# --- status shows the engine's verdict as it is now -----------------------------
agent_doc "$p-flip" "  healthCheck: {exec: [/bin/sh, -c, \"test ! -e /sick\"], interval: 200ms, timeout: 1s, retries: 2}" | write_tree flip
expect_exit 0 "apply an agent whose exec check passes for now" -- R apply "$work/t-flip" --auto-approve
status_health() { R status "$1" --json | python3 -c "import json,sys; print(next(a['health'] for a in json.load(sys.stdin)['agents'] if a['name']=='$2'))"; }
equals "status: healthy" "healthy" "$(status_health "$work/t-flip" "$p-flip")"
run_in "$(container_id "$p-flip")" "" "touch /sick" >/dev/null
for _ in $(seq 1 50); do
  [[ "$(inspect "$p-flip" 'c["State"]["Health"]["Status"]')" == '"unhealthy"' ]] && break
  sleep 0.2
done
equals "the engine turned it unhealthy" '"unhealthy"' "$(inspect "$p-flip" 'c["State"]["Health"]["Status"]')"
equals "status shows the engine's unhealthy, not the healthy the apply recorded" "unhealthy" "$(status_health "$work/t-flip" "$p-flip")"

# --- TCP health checks -----------------------------------------------------------
agent_doc "$p-tcp" "  healthCheck: {tcp: 8080, interval: 200ms, timeout: 1s, retries: 20}" | write_tree tcp
expect_exit 0 "a tcp check on the port httpd listens on passes" -- R apply "$work/t-tcp" --auto-approve
lacks "no engine Healthcheck for a tcp check" "CMD" "$(inspect "$p-tcp" 'c["Config"].get("Healthcheck")')"
agent_doc "$p-deaf" "  healthCheck: {tcp: 9999, interval: 200ms, timeout: 1s, retries: 3}" | write_tree deaf
expect_exit 1 "a tcp check on a port where nothing listens fails" -- R apply "$work/t-deaf" --auto-approve
contains "the error names the check and the port" "tcp 9999:" "$out"
contains "the error says the check failed" "health check failed 3 times" "$out"
published="$(inspect "$p-deaf" 'c["NetworkSettings"]["Ports"]["9999/tcp"][0]["HostIp"]')"
equals "the tcp port was published on the publish address for the check" '"127.0.0.1"' "$published"

# --- GPUs: this engine has none --------------------------------------------------
agent_doc "$p-gpu" "  resources: {gpus: all}" | write_tree gpu
expect_exit 1 "an agent asking for GPUs fails to apply here" -- R apply "$work/t-gpu" --auto-approve
contains "the error names the agent and the field" "agent $p-gpu: spec.resources.gpus: the engine refused the GPU request (all GPUs)" "$out"
contains "the error quotes the engine" "could not select device driver" "$out"
equals "no container is left half-made" "" "$(container_id "$p-gpu")"

# --- bad input: every error at once, nothing applied -----------------------------
agent_doc "$p-badin" "  healthCheck: {path: /health, exec: [\"true\"]}
  stopSignal: SIGNOPE
  stopGracePeriod: soon
  capAdd: [CAP_NET_ADMIN]
  labels: {reconcile.dev/agent: x}
  hostname: Not_A_Label
  resources: {gpus: 0}" | write_tree badin
expect_exit 1 "a tree with bad fields is invalid" -- R apply "$work/t-badin" --auto-approve
for want in "agents.yaml:16:32: error: spec.healthCheck.exec" "agents.yaml:17:15: error: spec.stopSignal" \
  "agents.yaml:18:20: error: spec.stopGracePeriod" "agents.yaml:19:12: error: spec.capAdd[0]" \
  "agents.yaml:20:12: error: spec.labels.reconcile.dev/agent" "agents.yaml:21:13: error: spec.hostname" \
  "agents.yaml:22:21: error: spec.resources.gpus" "nothing was changed"; do
  contains "bad input: $want" "$want" "$out"
done
equals "nothing was applied" "" "$(container_id "$p-badin")"

echo "fields: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
