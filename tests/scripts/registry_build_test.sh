#!/usr/bin/env bash
# Builds, tags, pushes and pulls end to end: the CLI against the real Docker
# Engine and Debian's docker-registry on loopback with htpasswd (bcrypt) auth.
#   - build through POST /build (.dockerignore honoured, args passed), push
#     with X-Registry-Auth, the plan's image.<agent> step before the deploy;
#   - missing and wrong credentials: one clear error naming the registry and
#     both variables, nothing changed;
#   - a tag already in the registry: neither build nor push (no tar sent, no
#     build on the engine: its event stream shows no image tagged), and an
#     image agent pulling it back from the private registry with credentials;
#   - a changed context gives a new tag; tags per strategy from a Git source
#     (git-sha, semver from a Git tag, timestamp, custom) are stable;
#   - bad contexts (oversize, escaping symlink) name file, line and field;
#   - the password (a canary) appears in no output, log, plan or state file.
# Needs: $RECONCILE, $SOURCE_DIR, $BUILD_DIR (set by CTest), docker-registry,
# htpasswd (apache2-utils), git, curl, python3. Stops only the registry it
# started (by pid), removes only the containers and images it created.
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}" "${BUILD_DIR:?}"
for tool in docker-registry htpasswd git curl python3; do
  command -v "$tool" >/dev/null || { echo "FAIL - $tool is not installed"; exit 1; }
done
bash "$SOURCE_DIR/scripts/ensure-dockerd.sh" >/dev/null || { echo "FAIL - no Docker Engine"; exit 1; }
bash "$SOURCE_DIR/scripts/hello-image.sh" "$BUILD_DIR" >/dev/null || { echo "FAIL - no hello image"; exit 1; }

sock=/var/run/docker.sock
api() { curl -fsS --unix-socket "$sock" "$@"; }
work="$(mktemp -d)"
p="b$(printf '%04x' $((RANDOM % 65536)))"
registry_pid=""
passed=0
failed=0
CANARY="canary-pw-$RANDOM$RANDOM"

cleanup() {
  for t in "$work"/tree*; do
    [[ -d "$t" ]] && "$RECONCILE" destroy "$t" --auto-approve --no-color >/dev/null 2>&1
  done
  if [[ -n "$registry_pid" ]]; then kill "$registry_pid" 2>/dev/null; wait "$registry_pid" 2>/dev/null; fi
  # Images this run built or pulled (their repository names $p).
  api "http://d/v1.41/images/json" | python3 -c "
import json, sys
for i in json.load(sys.stdin):
    for t in i.get('RepoTags') or []:
        if '/reconcile-test/$p' in t: print(t)" | while read -r ref; do
    api -X DELETE "http://d/v1.41/images/$ref?force=1" >/dev/null 2>&1
  done
  rm -rf "$work"
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); echo "ok   - $1"; }
bad() { failed=$((failed + 1)); echo "FAIL - $1"; [[ -n "${2:-}" ]] && sed 's/^/       /' <<<"$2" | head -40; }
expect_exit() {
  local want=$1 name=$2; shift 3
  out="$("$@" 2>&1)"; code=$?
  all_output+="$out"$'\n'
  if [[ $code -eq $want ]]; then ok "$name (exit $code)"; else bad "$name: exit $code, want $want" "$out"; fi
}
contains() { if grep -qF -- "$2" <<<"$3"; then ok "$1"; else bad "$1: no '$2' in output" "$3"; fi; }
lacks() { if grep -qF -- "$2" <<<"$3"; then bad "$1: '$2' in output" "$3"; else ok "$1"; fi; }
container_id() {
  api "http://d/v1.41/containers/json?all=1" |
    python3 -c "import json,sys; print(next((c['Id'] for c in json.load(sys.stdin) if '/$1' in c['Names']), ''))"
}
R() { "$RECONCILE" --no-color "$@"; }
all_output=""

# --- the registry: htpasswd (bcrypt), filesystem storage, loopback ---------
# shellcheck source=../fixtures/registry.sh
source "$SOURCE_DIR/tests/fixtures/registry.sh"
start_registry "$work" pusher "$CANARY"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$reg/v2/")
if [[ "$code" == "401" ]]; then ok "registry up with auth on (401 without credentials)"; else
  bad "registry not answering 401 (got $code)" "$(cat "$work/registry.log")"; exit 1; fi

# --- the tree: one agent built from app/, pushed to the registry ------------
write_tree() {  # write_tree DIR [GREETING]
  local d=$1
  mkdir -p "$d/app"
  cat >"$d/app/Dockerfile" <<'DOCKERFILE'
FROM reconcile/hello-agent:0.1.0
ARG FLAVOUR=plain
LABEL test.flavour=$FLAVOUR
COPY greeting.txt /greeting.txt
COPY ignored/ /ignored/
DOCKERFILE
  echo "${2:-hello}" >"$d/app/greeting.txt"
  mkdir -p "$d/app/ignored"
  echo "kept" >"$d/app/ignored/keep.txt"
  echo "must not be sent" >"$d/app/ignored/secret.txt"
  printf '# comments are skipped\nignored/secret.txt\n*.log\n' >"$d/app/.dockerignore"
  echo "noise" >"$d/app/build.log"
  cat >"$d/deploy.yaml" <<YAML
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
  build:
    context: app
    args: {FLAVOUR: spicy}
  registry: private
  target: local
  port: 8080
  healthCheck: {path: /health, interval: 100ms, timeout: 1s, retries: 50}
YAML
}
write_tree "$work/tree"

# --- credentials: missing, wrong ---------------------------------------------
unset REGTEST_USERNAME REGTEST_PASSWORD
expect_exit 0 "validate a tree with build" -- R validate "$work/tree"
expect_exit 1 "plan without credentials fails" -- R plan "$work/tree"
contains "missing credentials name both variables" "REGTEST_USERNAME and REGTEST_PASSWORD" "$out"
export REGTEST_USERNAME=pusher REGTEST_PASSWORD="wrong-$CANARY-x"
expect_exit 1 "plan with wrong credentials fails" -- R plan "$work/tree"
contains "wrong credentials name the registry" "registry 'private' ($reg) refused the credentials" "$out"
contains "wrong credentials name the variables" "REGTEST_USERNAME and REGTEST_PASSWORD" "$out"
n=$(grep -c "error" <<<"$out")
if [[ $n -eq 1 ]]; then ok "wrong credentials give one error line"; else bad "wrong credentials: $n error lines" "$out"; fi
expect_exit 1 "apply with wrong credentials fails" -- R apply "$work/tree" --auto-approve
if [[ -z "$(container_id "$p-web-0")$(container_id "$p-web")" ]]; then ok "nothing was deployed"; else bad "a container was created with wrong credentials"; fi
export REGTEST_PASSWORD="$CANARY"

# --- plan: image.<agent> before agent.<agent> ---------------------------------
expect_exit 2 "plan with credentials shows changes" -- R plan "$work/tree"
contains "plan shows the build step" "# image.$p-web will be built and pushed" "$out"
contains "the build step says why" "is not in registry 'private' ($reg) yet: build and push" "$out"
img_line=$(grep -n "# image.$p-web" <<<"$out" | cut -d: -f1)
agent_line=$(grep -n "# agent.$p-web" <<<"$out" | cut -d: -f1)
if [[ -n "$img_line" && -n "$agent_line" && $img_line -lt $agent_line ]]; then ok "the build step is shown before the deploy"; else bad "order: image at $img_line, agent at $agent_line" "$out"; fi
R plan "$work/tree" --json >"$work/plan.json" 2>>"$work/stderr.log"
facts=$(python3 - "$work/plan.json" "$p" <<'PY'
import json, sys
plan = json.load(open(sys.argv[1])); p = sys.argv[2]
ch = {c["address"]: c for c in plan["changes"]}
img, ag = ch["image.%s-web" % p], ch["agent.%s-web" % p]
print(img["action"], "image.%s-web" % p in ag["dependsOn"], ag["desired"]["image"] == img["desired"]["reference"],
      img["desired"]["tag"].startswith("tree-"), img["desired"]["reference"])
PY
)
read -r action depends same_ref tree_tag ref1 <<<"$facts"
[[ "$action" == "create" ]] && ok "plan --json: image change is a create" || bad "image action $action"
[[ "$depends" == "True" ]] && ok "plan --json: the agent depends on its image" || bad "agent does not depend on image"
[[ "$same_ref" == "True" ]] && ok "plan --json: the agent runs the image it builds" || bad "agent image differs"
[[ "$tree_tag" == "True" ]] && ok "folder source: git-sha tag is tree-<context digest>" || bad "tag of folder source: $ref1"
[[ "$ref1" == "$reg/reconcile-test/$p:tree-"* ]] && ok "image reference is <url>/<repository>:<tag>" || bad "reference $ref1"

# --- apply: build, push, deploy ----------------------------------------------
expect_exit 0 "apply builds, pushes and deploys" -- R apply "$work/tree" --auto-approve -v
contains "apply sends the build context" "sending build context app" "$out"
contains "apply pushes" "pushed $ref1" "$out"
tag1=${ref1##*:}
code=$(curl -s -o /dev/null -w '%{http_code}' -I -u "pusher:$CANARY" \
  -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "http://$reg/v2/reconcile-test/$p/manifests/$tag1")
[[ "$code" == "200" ]] && ok "the registry holds the pushed tag" || bad "registry answers $code for $tag1"
cid=$(container_id "$p-web")
[[ -n "$cid" ]] && ok "the agent runs" || bad "no container for $p-web"
image=$(api "http://d/v1.41/containers/$cid/json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Config"]["Image"])')
[[ "$image" == "$ref1" ]] && ok "the container runs the built image" || bad "container image $image"
flavour=$(api "http://d/v1.41/images/$ref1/json" | python3 -c 'import json,sys; l=json.load(sys.stdin)["Config"]["Labels"]; print(l.get("test.flavour"), l.get("reconcile.dev/managed-by"), l.get("reconcile.dev/agent"))')
[[ "$flavour" == "spicy reconcile $p-web" ]] && ok "build args passed; the image carries ownership labels" || bad "image labels: $flavour"
kept=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$sock" "http://d/v1.41/containers/$cid/archive?path=/ignored/keep.txt")
ign=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$sock" "http://d/v1.41/containers/$cid/archive?path=/ignored/secret.txt")
[[ "$kept" == "200" && "$ign" == "404" ]] && ok ".dockerignore honoured (kept 200, ignored 404)" || bad ".dockerignore: keep $kept, ignored $ign"

# status and drift need no registry credentials (they make no plan)
( unset REGTEST_USERNAME REGTEST_PASSWORD
  R status "$work/tree" >"$work/status.out" 2>&1 && R drift "$work/tree" >>"$work/status.out" 2>&1 ) \
  && ok "status and drift work without registry credentials" || bad "status/drift need credentials" "$(cat "$work/status.out")"

# --- the no-op: tag exists, the build is not touched --------------------------
sleep 1  # since= is whole seconds and inclusive: step past the second of the last push
since=$(date +%s)
sleep 1
expect_exit 0 "second apply" -- R apply "$work/tree" --auto-approve -v
contains "second apply says No changes." "No changes." "$out"
lacks "no build context is sent when the tag exists" "sending build context" "$out"
sleep 1
events=$(api "http://d/v1.41/events?since=$since&until=$(date +%s)&filters=$(python3 -c 'import urllib.parse,json; print(urllib.parse.quote(json.dumps({"type":["image"]})))')")
if grep -q '"Action":"tag"\|"Action":"push"' <<<"$events"; then bad "the engine tagged or pushed an image during the no-op" "$events"; else ok "no image built, tagged or pushed on the engine during the no-op (event stream)"; fi
[[ "$(container_id "$p-web")" == "$cid" ]] && ok "the no-op left the container as it was" || bad "container replaced on no-op"
expect_exit 0 "plan after apply is empty" -- R plan "$work/tree" --explain
contains "the image step shows as a no-op with its reason" "tag $tag1 is already in registry 'private'" "$out"

# --- a tag already in the registry: a fresh state, the image removed locally ---
write_tree "$work/tree2"
cat >>"$work/tree2/deploy.yaml" <<YAML
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $p-pulled}
spec:
  image: "$ref1"
  target: local
  port: 8080
YAML
sed -i "s/name: $p-web}/name: $p-web2}/; s/repository: reconcile-test\/$p$/repository: reconcile-test\/$p/" "$work/tree2/deploy.yaml"
( unset REGTEST_USERNAME REGTEST_PASSWORD; R destroy "$work/tree" --auto-approve >"$work/destroy.out" 2>&1 ) \
  && ok "destroy works without registry credentials" || bad "destroy needs credentials" "$(cat "$work/destroy.out")"
api -X DELETE "http://d/v1.41/images/$ref1?force=1" >/dev/null
sleep 1  # since= is whole seconds and inclusive: step past the second of the last push
since=$(date +%s)
sleep 1
expect_exit 2 "plan: the tag is already in the registry" -- R plan "$work/tree2" --explain
contains "existing tag: not built" "tag $tag1 is already in registry 'private' ($reg): not built" "$out"
expect_exit 0 "apply pulls the existing tag instead of building" -- R apply "$work/tree2" --auto-approve -v
lacks "no build context sent for an existing tag" "sending build context" "$out"
contains "the image is pulled with the registry's credentials" "pulling image $ref1" "$out"
sleep 1
events=$(api "http://d/v1.41/events?since=$since&until=$(date +%s)&filters=$(python3 -c 'import urllib.parse,json; print(urllib.parse.quote(json.dumps({"type":["image"]})))')")
if grep -q '"Action":"tag"\|"Action":"push"' <<<"$events"; then bad "the engine built or pushed for an existing tag" "$events"; else ok "existing tag: nothing built or pushed (event stream)"; fi
grep -q '"Action":"pull"' <<<"$events" && ok "the engine pulled the private image" || bad "no pull event" "$events"
[[ -n "$(container_id "$p-pulled")" && -n "$(container_id "$p-web2")" ]] && ok "both agents run from the private registry" || bad "agents missing after pull"
R destroy "$work/tree2" --auto-approve >/dev/null 2>&1

# --- a changed context gives a new tag ----------------------------------------
write_tree "$work/tree" "changed greeting"
expect_exit 2 "plan after a context change" -- R plan "$work/tree" --json
ref2=$(python3 -c "import json,sys; print(next(c['desired']['reference'] for c in json.loads(sys.stdin.read())['changes'] if c['address']=='image.$p-web'))" <<<"$out")
[[ -n "$ref2" && "$ref2" != "$ref1" ]] && ok "a changed context gives a new tag" || bad "tag unchanged: $ref1 / $ref2"
write_tree "$work/tree"
expect_exit 2 "the same context again" -- R plan "$work/tree" --json
ref3=$(python3 -c "import json,sys; print(next(c['desired']['reference'] for c in json.loads(sys.stdin.read())['changes'] if c['address']=='image.$p-web'))" <<<"$out")
[[ "$ref3" == "$ref1" ]] && ok "the same context gives the same tag" || bad "same context, tag $ref1 -> $ref3"

# --- bad contexts: oversize, escaping symlink --------------------------------
head -c 300000 /dev/urandom >"$work/tree/app/big.bin"
expect_exit 1 "an oversize context is refused" -- R plan "$work/tree" --max-build-context 100000
contains "oversize names the manifest, line and field" "deploy.yaml:" "$out"
contains "oversize names the field" "spec.build.context" "$out"
contains "oversize names the limit" "--max-build-context" "$out"
rm "$work/tree/app/big.bin"
ln -s ../../../etc "$work/tree/app/escape"
expect_exit 1 "a symlink out of the context is refused" -- R plan "$work/tree"
contains "the escaping symlink is named" "'escape' is a symlink" "$out"
rm "$work/tree/app/escape"

# --- tags from a Git source -----------------------------------------------------
git init -q -b main "$work/repo"
write_tree "$work/repo"
( cd "$work/repo" && git add -A && git -c user.name=t -c user.email=t@t commit -qm one \
    && GIT_COMMITTER_DATE="2026-01-02T03:04:05Z" git -c user.name=t -c user.email=t@t commit -q --amend --no-edit --date "2026-01-02T03:04:05Z" \
    && git tag v1.4.2 && git tag not-a-version )
sha=$(git -C "$work/repo" rev-parse HEAD)
git_tag() {  # git_tag STRATEGY [CUSTOM]: the planned tag of the agent
  local extra=""
  [[ -n "${2:-}" ]] && extra="  customTag: \"$2\""
  sed -i "/tagStrategy:/d; /customTag:/d" "$work/repo/deploy.yaml"
  sed -i "s/  credentialsEnvPrefix: REGTEST/  credentialsEnvPrefix: REGTEST\n  tagStrategy: $1${extra:+\n$extra}/" "$work/repo/deploy.yaml"
  ( cd "$work/repo" && git add -A && GIT_COMMITTER_DATE="2026-01-02T03:04:05Z" git -c user.name=t -c user.email=t@t commit -q --amend --no-edit --date "2026-01-02T03:04:05Z" && git tag -f v1.4.2 >/dev/null && git tag -f not-a-version >/dev/null )
  R plan --source "file://$work/repo" --ref main --state "$work/gitstate" --json 2>"$work/git.err" |
    python3 -c "import json,sys; print(next(c['desired']['tag'] for c in json.load(sys.stdin)['changes'] if c['address']=='image.$p-web'))"
}
t=$(git_tag git-sha); sha=$(git -C "$work/repo" rev-parse HEAD)
[[ "$t" == "${sha:0:12}" ]] && ok "git-sha: the commit's short id" || bad "git-sha tag '$t' for $sha" "$(cat "$work/git.err")"
t=$(git_tag semver)
[[ "$t" == "1.4.2" ]] && ok "semver: the Git tag v1.4.2 on the commit" || bad "semver tag '$t'" "$(cat "$work/git.err")"
t=$(git_tag timestamp)
[[ "$t" == "20260102T030405Z" ]] && ok "timestamp: the commit time in UTC" || bad "timestamp tag '$t'" "$(cat "$work/git.err")"
t2=$(git_tag timestamp)
[[ "$t2" == "$t" ]] && ok "timestamp: the same commit gives the same tag" || bad "timestamp $t then $t2"
t=$(git_tag custom "{agent}-{version}-{sha}")
sha=$(git -C "$work/repo" rev-parse HEAD)
[[ "$t" == "$p-web-1.4.2-${sha:0:12}" ]] && ok "custom: the template's variables" || bad "custom tag '$t'" "$(cat "$work/git.err")"
sed -i "s/customTag: .*/customTag: \"v{nosuch}\"/" "$work/repo/deploy.yaml"
expect_exit 1 "a bad tag template is refused" -- R validate "$work/repo"
contains "a bad template names file, line and field" "deploy.yaml:" "$out"
contains "a bad template names spec.customTag" "spec.customTag" "$out"

# --- the canary: the password is nowhere --------------------------------------
leaks=$(grep -rlF -- "$CANARY" "$work/tree/.reconcile" "$work/tree2/.reconcile" "$work/plan.json" "$work/stderr.log" "$work/gitstate" 2>/dev/null | grep -v '/cache/' || true)
[[ -z "$leaks" ]] && ok "the password is in no state, history or plan file" || bad "password found in: $leaks"
lacks "the password is in no command output or log" "$CANARY" "$all_output"

echo "registry build: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
