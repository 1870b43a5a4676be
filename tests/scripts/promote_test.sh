#!/usr/bin/env bash
# Digests and `reconcile promote` end to end, on the real Docker Engine,
# Debian's docker-registry on loopback and a real git daemon on loopback:
#   - a base with a built agent pushed to the registry, dev and staging
#     environments; apply dev: status and history record the digest;
#   - promote --from dev --to staging writes envs/staging/promoted.yaml and
#     prints its diff; render staging before and after differ only in the
#     agent's image and build; apply staging runs the same image (docker
#     inspect: same image id, by the digest);
#   - refusals (exit 1, file unchanged): drifted (container stopped), not at
#     its desired revision (dev's patch edited), last pass failed and
#     unhealthy (HEALTH_FAIL), another patch of staging setting the image;
#   - --commit makes a commit (git log), --push reaches the bare repository
#     behind the git daemon;
#   - rollback of dev deploys the recorded digest;
#   - the registry password (a canary) appears in no output or state file.
# Needs: $RECONCILE, $SOURCE_DIR, $BUILD_DIR (set by CTest), docker-registry,
# htpasswd, git (daemon), curl, python3. Stops only what it started (by pid);
# removes only the containers and images it created.
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}" "${BUILD_DIR:?}"
for tool in docker-registry htpasswd git curl python3; do
  command -v "$tool" >/dev/null || { echo "FAIL - $tool is not installed"; exit 1; }
done
git daemon --help >/dev/null 2>&1 || [[ -x "$(git --exec-path)/git-daemon" ]] ||
  { echo "FAIL - git daemon is not installed"; exit 1; }
bash "$SOURCE_DIR/scripts/ensure-dockerd.sh" >/dev/null || { echo "FAIL - no Docker Engine"; exit 1; }
bash "$SOURCE_DIR/scripts/hello-image.sh" "$BUILD_DIR" >/dev/null || { echo "FAIL - no hello image"; exit 1; }

sock=/var/run/docker.sock
api() { curl -fsS --unix-socket "$sock" "$@"; }
work="$(mktemp -d)"
p="p$(printf '%04x' $((RANDOM % 65536)))"
registry_pid=""
passed=0
failed=0
CANARY="canary-pw-$RANDOM$RANDOM"
# shellcheck source=lib.sh
source "$SOURCE_DIR/tests/scripts/lib.sh"
all_output=""
expect_exit() {
  local want=$1 name=$2; shift 3
  out="$("$@" 2>&1)"; code=$?
  all_output+="$out"$'\n'
  if [[ $code -eq $want ]]; then ok "$name (exit $code)"; else bad "$name: exit $code, want $want" "$out"; fi
}
equals() { if [[ "$2" == "$3" ]]; then ok "$1"; else bad "$1: got '$3', want '$2'"; fi; }

clone="$work/clone"
state="$work/state"
R() { "$RECONCILE" --no-color --state "$state" "$@"; }

cleanup() {
  for env in dev staging; do
    [[ -d "$clone" ]] && R destroy --source "$clone" --path "envs/$env" --auto-approve >/dev/null 2>&1
  done
  if [[ -n "$registry_pid" ]]; then kill "$registry_pid" 2>/dev/null; wait "$registry_pid" 2>/dev/null; fi
  if [[ -s "$work/daemon.pid" ]]; then kill "$(cat "$work/daemon.pid")" 2>/dev/null; fi
  api "http://d/v1.41/images/json" | python3 -c "
import json, sys
for i in json.load(sys.stdin):
    for t in (i.get('RepoTags') or []) + (i.get('RepoDigests') or []):
        if '/reconcile-test/$p' in t: print(i['Id']); break" | sort -u | while read -r id; do
    api -X DELETE "http://d/v1.41/images/$id?force=1" >/dev/null 2>&1
  done
  rm -rf "$work"
}
trap cleanup EXIT

# The container of agent $p-web in environment $1 (by its labels).
env_container() {
  api "http://d/v1.41/containers/json?all=1" | python3 -c "
import json, sys
for c in json.load(sys.stdin):
    l = c.get('Labels') or {}
    if l.get('reconcile.dev/agent') == '$p-web' and l.get('reconcile.dev/environment') == '$1':
        print(c['Id']); break"
}
inspect() {  # inspect ID PYTHON-EXPR-ON-c
  api "http://d/v1.41/containers/$1/json" | python3 -c "import json,sys; c=json.load(sys.stdin); print($2)"
}
status_digest() {
  R status --source "$clone" --path "envs/$1" --json |
    python3 -c "import json,sys; print(next(a['imageDigest'] for a in json.load(sys.stdin)['agents'] if a['name']=='$p-web'))"
}
sum_file() { sha256sum "$clone/envs/staging/promoted.yaml" 2>/dev/null | cut -d' ' -f1; }
commit_all() { git -C "$clone" add -A && git -C "$clone" commit -qm "$1"; }

# --- the registry and the repository behind a git daemon ---------------------
# shellcheck source=../fixtures/registry.sh
source "$SOURCE_DIR/tests/fixtures/registry.sh"
start_registry "$work" pusher "$CANARY"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$reg/v2/")
if [[ "$code" == "401" ]]; then ok "registry up with auth on"; else
  bad "registry not answering 401 (got $code)" "$(cat "$work/registry.log")"; exit 1; fi
export REGTEST_USERNAME=pusher REGTEST_PASSWORD="$CANARY"

git init -q --bare -b main "$work/origin.git"
git_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
git daemon --reuseaddr --base-path="$work" --export-all --enable=receive-pack \
  --listen=127.0.0.1 --port="$git_port" --pid-file="$work/daemon.pid" --detach "$work"
for _ in $(seq 50); do [[ -s "$work/daemon.pid" ]] && break; sleep 0.1; done
git clone -q "git://127.0.0.1:$git_port/origin.git" "$clone" 2>/dev/null
git -C "$clone" checkout -q -b main 2>/dev/null
git -C "$clone" config user.email promote-test@example.com
git -C "$clone" config user.name "Promote Test"

# --- the tree: base (built agent), dev and staging ---------------------------
mkdir -p "$clone/base/app" "$clone/envs/dev" "$clone/envs/staging"
printf 'FROM reconcile/hello-agent:0.1.0\nCOPY greeting.txt /greeting.txt\n' >"$clone/base/app/Dockerfile"
echo one >"$clone/base/app/greeting.txt"
cat >"$clone/base/deploy.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: local}
spec: {provider: docker, docker: {publishAddress: 127.0.0.1}}
---
apiVersion: reconcile.dev/v1alpha1
kind: Registry
metadata: {name: private}
spec:
  url: "$reg"
  repository: reconcile-test/$p
  credentialsEnvPrefix: REGTEST
  insecure: true
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $p-web}
spec:
  build: {context: app}
  registry: private
  target: local
  port: 8080
  env: {GREETING: base}
  healthCheck: {path: /health, interval: 100ms, timeout: 1s, retries: 30}
YAML
for env in dev staging; do
  cat >"$clone/envs/$env/environment.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Environment
metadata: {name: $env}
spec:
  bases: [../../base]
  labels: {tier: $env}
YAML
done
cat >"$clone/envs/dev/web.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $p-web}
spec:
  env: {GREETING: dev}
YAML
cat >"$clone/envs/staging/web.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $p-web}
spec:
  env: {GREETING: staging}
  replicas: 1
YAML
commit_all "base, dev and staging"
git -C "$clone" push -q -u origin main 2>/dev/null

# --- apply dev: the digest is recorded -----------------------------------------
expect_exit 0 "apply dev (builds and pushes the agent)" -- R apply --source "$clone" --path envs/dev --auto-approve
d1="$(status_digest dev)"
if [[ "$d1" =~ ^$reg/reconcile-test/$p(/[a-z0-9._-]+)?@sha256:[0-9a-f]{64}$ ]]; then ok "status --json records the registry digest ($d1)"; else bad "status digest: '$d1'"; fi
expect_exit 0 "status (text)" -- R status --source "$clone" --path envs/dev
contains "status shows the digest" "$d1" "$out"
expect_exit 0 "history --json" -- R history --source "$clone" --path envs/dev --json
contains "history keeps the digest" "\"imageDigest\": \"$d1\"" "$out"
dev_id="$(env_container dev)"
if [[ -n "$dev_id" ]]; then ok "dev runs a container"; else bad "no dev container"; fi
dev_image="$(inspect "$dev_id" 'c["Image"]')"

# --- promote dev to staging ------------------------------------------------------
expect_exit 0 "render staging before" -- R render --source "$clone" --path envs/staging --json
before="$out"
expect_exit 0 "promote --from dev --to staging" -- R promote --source "$clone" --from dev --to staging
contains "promote prints the diff" "+++ b/envs/staging/promoted.yaml" "$out"
contains "the diff adds the digest" "+  image: \"$d1\"" "$out"
contains "the diff clears the build" "+  build: null" "$out"
head -1 "$clone/envs/staging/promoted.yaml" | grep -q "^# Written by reconcile promote" &&
  ok "promoted.yaml starts with its header" || bad "promoted.yaml header" "$(cat "$clone/envs/staging/promoted.yaml")"
changed="$(git -C "$clone" status --porcelain)"
equals "only promoted.yaml changed in the working tree" "?? envs/staging/promoted.yaml" "$changed"
expect_exit 0 "render staging after" -- R render --source "$clone" --path envs/staging --json
after="$out"
diffs="$(python3 - "$before" "$after" <<'PY'
import json, sys
def docs(text):
    j = json.loads(text)
    if isinstance(j, dict) and "documents" in j: j = j["documents"]
    if isinstance(j, dict): j = [j]
    return {(d.get("kind"), d.get("metadata", {}).get("name")): d for d in j}
a, b = docs(sys.argv[1]), docs(sys.argv[2])
out = []
def walk(path, x, y):
    if isinstance(x, dict) and isinstance(y, dict):
        for k in sorted(set(x) | set(y)):
            walk(path + [k], x.get(k, "<absent>"), y.get(k, "<absent>"))
    elif x != y:
        out.append(".".join(path))
for key in sorted(set(a) | set(b), key=str):
    walk([str(key[0]), str(key[1])], a.get(key, "<absent>"), b.get(key, "<absent>"))
print(" ".join(out))
PY
)"
equals "render: only the agent's image and build differ" "Agent.$p-web.spec.build Agent.$p-web.spec.image" "$diffs"
expect_exit 0 "apply staging (no build: by digest)" -- R apply --source "$clone" --path envs/staging --auto-approve
lacks "staging builds nothing" "built and pushed" "$out"
staging_id="$(env_container staging)"
equals "staging runs the image dev runs (image id)" "$dev_image" "$(inspect "$staging_id" 'c["Image"]')"
equals "staging's container is made from the digest" "$d1" "$(inspect "$staging_id" 'c["Config"]["Image"]')"
equals "staging's status records the same digest" "$d1" "$(status_digest staging)"
expect_exit 0 "promoting again changes nothing" -- R promote --source "$clone" --from dev --to staging
contains "nothing to promote" "Nothing to promote" "$out"
commit_all "promote dev to staging (by hand)"

# --- refusals: nothing changes ---------------------------------------------------
s0="$(sum_file)"
api -X POST "http://d/v1.41/containers/$dev_id/stop?t=1" >/dev/null
expect_exit 1 "promote refuses a drifted source" -- R promote --source "$clone" --from dev --to staging
contains "it says the agent drifted" "agent $p-web in dev drifted" "$out"
equals "a refusal leaves promoted.yaml as it was" "$s0" "$(sum_file)"
api -X POST "http://d/v1.41/containers/$dev_id/start" >/dev/null
sleep 1

cp "$clone/envs/dev/web.yaml" "$work/web.yaml.bak"
sed -i "s/GREETING: dev}/GREETING: dev-edited}/" "$clone/envs/dev/web.yaml"
expect_exit 1 "promote refuses a source not at its desired revision" -- R promote --source "$clone" --from dev --to staging
contains "it says so" "environment dev is not at its desired revision" "$out"
equals "promoted.yaml unchanged" "$s0" "$(sum_file)"
cp "$work/web.yaml.bak" "$clone/envs/dev/web.yaml"

cat >"$clone/envs/staging/pinned-image.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $p-web}
spec:
  image: nginx:1.25
YAML
echo two >"$clone/base/app/greeting.txt"  # a new digest to promote
commit_all "greeting two; an image patch in staging"
expect_exit 0 "apply dev with greeting two" -- R apply --source "$clone" --path envs/dev --auto-approve
d2="$(status_digest dev)"
if [[ -n "$d2" && "$d2" != "$d1" ]]; then ok "a new build records a new digest"; else bad "digest after rebuild: '$d2' (was $d1)"; fi
expect_exit 1 "promote refuses when another patch of staging sets the image" -- R promote --source "$clone" --from dev --to staging
contains "it names the file and line" "envs/staging/pinned-image.yaml:5: another patch of staging sets spec.image of agent $p-web" "$out"
git -C "$clone" rm -q envs/staging/pinned-image.yaml && git -C "$clone" commit -qm "drop the image patch"

sed -i 's/GREETING: dev}/GREETING: dev, HEALTH_FAIL: "1"}/' "$clone/envs/dev/web.yaml"
commit_all "dev turns unhealthy"
expect_exit 1 "apply dev with a failing health check fails" -- R apply --source "$clone" --path envs/dev --auto-approve
expect_exit 1 "promote refuses after a failed pass" -- R promote --source "$clone" --from dev --to staging
contains "it names the failed pass" "its last pass" "$out"
contains "it names the unhealthy agent" "agent $p-web in dev is not healthy" "$out"
equals "promoted.yaml unchanged" "$s0" "$(sum_file)"
cp "$work/web.yaml.bak" "$clone/envs/dev/web.yaml"
commit_all "dev healthy again"
expect_exit 0 "apply dev healthy again" -- R apply --source "$clone" --path envs/dev --auto-approve

# --- --commit, then --push ------------------------------------------------------------
expect_exit 0 "promote --commit" -- R promote --source "$clone" --from dev --to staging --commit
contains "it says it committed" "Committed" "$out"
msg="$(git -C "$clone" log -1 --format=%B)"
contains "the commit message names source and target" "promote dev@" "$msg"
contains "the commit message names the digest" "$p-web: $d2" "$msg"
equals "the working tree is clean after --commit" "" "$(git -C "$clone" status --porcelain)"
contains "the author is git config's" "Promote Test" "$(git -C "$clone" log -1 --format=%an)"

echo three >"$clone/base/app/greeting.txt"
commit_all "greeting three"
expect_exit 0 "apply dev with greeting three" -- R apply --source "$clone" --path envs/dev --auto-approve
d3="$(status_digest dev)"
expect_exit 0 "promote --push" -- R promote --source "$clone" --from dev --to staging --push
contains "it says it pushed" "Pushed main" "$out"
equals "the bare repository behind the git daemon has the commit" \
  "$(git -C "$clone" rev-parse HEAD)" "$(git --git-dir="$work/origin.git" rev-parse main)"
contains "the pushed promoted.yaml holds the digest" "$d3" "$(git --git-dir="$work/origin.git" show main:envs/staging/promoted.yaml)"

# --- rollback deploys the recorded digest -------------------------------------------
expect_exit 0 "rollback dev to its first apply" -- R rollback --source "$clone" --path envs/dev --to 1 --auto-approve
dev_id="$(env_container dev)"
equals "the rolled-back container is made from the recorded digest" "$d1" "$(inspect "$dev_id" 'c["Config"]["Image"]')"
equals "status records it" "$d1" "$(status_digest dev)"

# --- the password --------------------------------------------------------------------
if grep -rqF -- "$CANARY" "$state" 2>/dev/null || grep -qF -- "$CANARY" <<<"$all_output"; then
  bad "the registry password appears in output or state"
else
  ok "the registry password appears in no output or state file"
fi

echo "# $passed passed, $failed failed"
[[ $failed -eq 0 ]]
