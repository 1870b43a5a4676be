#!/usr/bin/env bash
# The controller image (deploy/Dockerfile, scripts/controller-image.sh), for
# real on the Docker Engine: it is built offline (a second build is a no-op),
# is small, has no shell, runs as 65532 with no capabilities on a read-only
# root filesystem, follows a branch served by a real git daemon on loopback,
# deploys the one hello-agent Agent of that branch through the host's Docker
# socket (mounted), answers /healthz and /readyz, takes a signed webhook
# (its secret, a canary, never appears in the logs), and stops on SIGTERM
# (`docker stop`) with exit 0 well within its --grace.
#
# Needs: $RECONCILE, $SOURCE_DIR, $BUILD_DIR (set by CTest), git, python3,
# openssl, the docker CLI and a Docker Engine (started here when missing), the
# hello image (built here when missing). Removes the containers it made (by
# the names it made up); keeps the images (cached, like the hello image).
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}" "${BUILD_DIR:?}"
source "$SOURCE_DIR/tests/scripts/lib.sh"
bash "$SOURCE_DIR/scripts/ensure-dockerd.sh" >/dev/null || { echo "FAIL - no Docker Engine"; exit 1; }
bash "$SOURCE_DIR/scripts/hello-image.sh" "$BUILD_DIR" >/dev/null || { echo "FAIL - no hello image"; exit 1; }
command -v docker >/dev/null 2>&1 || { echo "FAIL - no docker CLI (scripts/bootstrap.sh installs docker.io)"; exit 1; }

sock=/var/run/docker.sock
api() { curl -fsS --unix-socket "$sock" "$@"; }
work="$(mktemp -d)"
p="ci$(printf '%04x' $((RANDOM % 65536)))"  # names unique per run
ctl="$p-controller"
agent="$p-web"
passed=0
failed=0
version="$("$RECONCILE" --version | awk '{print $2}')"
image="reconcile/controller:$version"

cleanup() {
  docker rm -f -v "$ctl" "$p-files" >/dev/null 2>&1
  for name in "$agent" "$agent-next"; do
    id="$(container_id "$name")"
    [[ -n "$id" ]] && api -X DELETE "http://d/v1.41/containers/$id?force=1&v=1" >/dev/null 2>&1
  done
  if [[ -f "$work/daemon.pid" ]]; then kill "$(cat "$work/daemon.pid")" 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() {  # wait_for SECONDS NAME -- command...
  local secs=$1 name=$2; shift 3
  local deadline=$((SECONDS + secs))
  while ((SECONDS < deadline)); do
    if "$@" >/dev/null 2>&1; then ok "$name"; return 0; fi
    sleep 0.2
  done
  bad "$name (not within ${secs}s)" "$(docker logs --tail 30 "$ctl" 2>&1)"
  return 1
}

# --- the image: built offline, then a no-op -----------------------------------
t0=$(date +%s%N)
if out="$(bash "$SOURCE_DIR/scripts/controller-image.sh" "$BUILD_DIR" 2>&1)"; then
  ok "controller-image.sh builds $image ($(( ($(date +%s%N) - t0) / 1000000 )) ms)"
else
  bad "controller-image.sh failed" "$out"
  echo "$passed passed, $failed failed"
  exit 1
fi
echo "# $out"
t0=$(date +%s%N)
out="$(bash "$SOURCE_DIR/scripts/controller-image.sh" "$BUILD_DIR" 2>&1)"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
contains "a second run finds the image up to date (${ms} ms)" "is up to date" "$out"
size="$(docker image inspect "$image" --format '{{.Size}}')"
echo "# image size: $size bytes ($(awk -v s="$size" 'BEGIN {printf "%.1f MB", s/1e6}'))"
if [[ -n "$size" && $size -lt 80000000 ]]; then ok "the image is small ($(awk -v s="$size" 'BEGIN {printf "%.1f MB", s/1e6}') < 80 MB)"; else bad "the image is $size bytes"; fi
cfg="$(docker image inspect "$image" --format '{{.Config.User}}|{{json .Config.Entrypoint}}|{{len .RootFS.Layers}}')"
if [[ "$cfg" == '65532:65532|["/usr/bin/reconcile"]|1' ]]; then
  ok "the image runs /usr/bin/reconcile as 65532:65532, in one layer"
else
  bad "image config: $cfg"
fi
if docker run --rm --entrypoint /bin/sh "$image" -c true >/dev/null 2>&1; then
  bad "the image has a shell"
else
  ok "the image has no shell"
fi
# The state folder and HOME belong to 65532 in the image (so a fresh volume
# there is writable), /tmp is 1777: read from the image's files (docker cp).
if docker create --name "$p-files" "$image" >/dev/null 2>&1; then
  owners="$(for d in /var/lib/reconcile /home/nonroot /tmp; do
    docker cp "$p-files:$d" - 2>/dev/null | tar -tv --numeric-owner 2>/dev/null | head -1 | awk '{print $1, $2}'
  done | tr '\n' ' ')"
  docker rm -v "$p-files" >/dev/null 2>&1
  if [[ "$owners" == "drwx------ 65532/65532 drwx------ 65532/65532 drwxrwxrwt 0/0 " ]]; then
    ok "the image's /var/lib/reconcile and /home/nonroot are 65532's (0700), /tmp is 1777"
  else
    bad "owners and modes in the image: $owners"
  fi
else
  bad "docker create $image failed"
fi
out="$(docker run --rm --read-only --cap-drop ALL "$image" --version 2>&1)"
if [[ "$out" == "reconcile $version" ]]; then ok "the image's binary runs: $out"; else bad "docker run $image --version" "$out"; fi

# --- a branch on a real git daemon: a docker Target and one agent -----------------
git init -q --bare -b main "$work/origin.git"
git clone -q "$work/origin.git" "$work/clone" 2>/dev/null
git -C "$work/clone" config user.email t@example.com && git -C "$work/clone" config user.name test
git -C "$work/clone" checkout -q -b main
mkdir -p "$work/clone/deploy"
cat >"$work/clone/deploy/deploy.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: host}
spec:
  provider: docker
  docker: {host: "unix:///var/run/docker.sock", publishAddress: 127.0.0.1}
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $agent}
spec:
  image: reconcile/hello-agent:0.1.0
  target: host
  port: 8080
  env: {GREETING: "from the controller image"}
  healthCheck: {path: /health, interval: 100ms, timeout: 1s, retries: 50}
YAML
git -C "$work/clone" add -A && git -C "$work/clone" commit -qm "one agent" &&
  git -C "$work/clone" push -q origin HEAD:main
git_port="$(free_port)"
git daemon --reuseaddr --base-path="$work" --export-all --listen=127.0.0.1 --port="$git_port" \
  --pid-file="$work/daemon.pid" --detach "$work"
for _ in $(seq 50); do [[ -s "$work/daemon.pid" ]] && break; sleep 0.1; done

# The webhook secret, a canary that must never be logged, readable by 65532.
canary="canary-$(openssl rand -hex 12)"
printf '%s' "$canary" >"$work/hook.secret"
chmod 0644 "$work/hook.secret"

# --- the container: read-only, non-root, no capabilities, host network --------------
http_port="$(free_port)"
sock_gid="$(stat -c %g "$sock")"
if ! out="$(docker run -d --name "$ctl" --network host --read-only --user 65532:65532 \
  --cap-drop ALL --security-opt no-new-privileges --group-add "$sock_gid" \
  -v "$sock:/var/run/docker.sock" -v "$work/hook.secret:/etc/reconcile/webhook-secret:ro" \
  --tmpfs /var/lib/reconcile:rw,uid=65532,gid=65532,mode=0700 --tmpfs /tmp \
  "$image" controller --repo "git://127.0.0.1:$git_port/origin.git" --branch main --path deploy \
  --listen "127.0.0.1:$http_port" --interval 1h --drift-interval 1h \
  --webhook-secret-file /etc/reconcile/webhook-secret 2>&1)"; then
  bad "docker run $image failed" "$out"
  echo "$passed passed, $failed failed"
  exit 1
fi
ok "the controller container starts"
base="http://127.0.0.1:$http_port"
wait_for 20 "the controller answers /healthz" -- curl -fsS "$base/healthz"
wait_for 90 "the controller answers /readyz (a pass has run)" -- curl -fsS "$base/readyz"

pid="$(docker inspect "$ctl" --format '{{.State.Pid}}')"
uid="$(awk '/^Uid:/ {print $2}' "/proc/$pid/status" 2>/dev/null)"
capeff="$(awk '/^CapEff:/ {print $2}' "/proc/$pid/status" 2>/dev/null)"
if [[ "$uid" == 65532 && "$capeff" == 0000000000000000 ]]; then
  ok "the controller runs as uid 65532 with no effective capabilities"
else
  bad "the controller runs as uid '$uid' with CapEff '$capeff'"
fi
endpoint_of() {
  curl -fsS "$base/api/v1/status" | python3 -c "import json,sys; s=json.load(sys.stdin); print(next((a['endpoints'][0] for a in s['agents'] if a['name']=='$agent' and a['endpoints']), ''))"
}
agent_answers() {
  local e
  e="$(endpoint_of)" && [[ -n "$e" ]] && [[ "$(curl -fsS "$e/")" == *'"greeting":"from the controller image"'* ]]
}
wait_for 60 "the agent of the branch is deployed and answers" -- agent_answers
if [[ -n "$(container_id "$agent")" ]]; then ok "docker shows the agent's container $agent"; else bad "no container $agent"; fi
head_commit="$(git -C "$work/clone" rev-parse HEAD)"
status="$(curl -fsS "$base/api/v1/status")"
contains "status shows the branch's commit applied" "$head_commit" "$status"

# A signed webhook is verified (202) and a forged one refused (401).
body='{"ref":"refs/heads/main"}'
sig="sha256=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$canary" -r | cut -d' ' -f1)"
code="$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$base/hooks/github" -H 'X-GitHub-Event: push' \
  -H "X-Hub-Signature-256: $sig" --data-binary "$body")"
[[ "$code" == 202 ]] && ok "a signed webhook is accepted (202)" || bad "a signed webhook answered $code"
code="$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$base/hooks/github" -H 'X-GitHub-Event: push' \
  -H "X-Hub-Signature-256: sha256=00" --data-binary "$body")"
[[ "$code" == 401 ]] && ok "a forged webhook is refused (401)" || bad "a forged webhook answered $code"
metrics="$(curl -fsS "$base/metrics")"  # (not piped into grep -q: pipefail and SIGPIPE)
if grep -q '^reconcile_passes_total{environment="default",result="success"} [1-9]' <<<"$metrics"; then
  ok "/metrics counts the successful pass"
else
  bad "/metrics shows no successful pass"
fi

# --- SIGTERM: docker stop, exit 0 within the grace period ---------------------------
grace="$("$RECONCILE" controller --help | grep -oE -- '--grace TEXT=[0-9]+s' | grep -oE '[0-9]+')"
t0=$(date +%s%N)
docker stop -t 60 "$ctl" >/dev/null
stop_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
exit_code="$(docker inspect "$ctl" --format '{{.State.ExitCode}}')"
echo "# docker stop took $stop_ms ms"
if [[ "$exit_code" == 0 && $stop_ms -lt $((grace * 1000)) ]]; then
  ok "SIGTERM: exit 0 in $stop_ms ms (--grace ${grace}s)"
else
  bad "SIGTERM: exit $exit_code after $stop_ms ms" "$(docker logs --tail 20 "$ctl" 2>&1)"
fi
logs="$(docker logs "$ctl" 2>&1)"
contains "the log says it stopped" "controller: stopped" "$logs"
# (not printed on failure: the haystack would hold it)
if grep -qF -- "$canary" <<<"$logs"; then bad "the webhook secret appears in the log"; else ok "the webhook secret never appears in the log"; fi
if grep -qF -- "$canary" <<<"$status"; then bad "the webhook secret appears in the status"; else ok "the webhook secret never appears in the status"; fi

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
