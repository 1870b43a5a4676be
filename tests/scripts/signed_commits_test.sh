#!/usr/bin/env bash
# Signed commits (README "Signed commits"), with real signatures: keys made
# here by Debian's gnupg (gpg --quick-gen-key, no passphrase, in a private
# GNUPGHOME) and ssh-keygen -t ed25519, commits signed by `git commit -S`
# in both formats (gpg.format=openpgp and ssh), served by a real git daemon
# on loopback. For each format: a commit signed by a trusted key is planned
# and applied; an unsigned commit, a commit signed by a key not in the
# keyring / allowed_signers, and a signed commit whose object was rewritten
# after signing (its tree line swapped, the gpgsig header kept) are refused
# by `reconcile plan` / `apply` (exit 1, the commit and the reason named,
# nothing started), and a real controller keeps the last good revision
# running and shows the reason in /api/v1/status, /metrics and its log.
# Also: the wrong format for the mode, a folder source with verification
# on, missing or malformed key files, and no temporary GNUPGHOME left
# behind.
#
# Needs: $RECONCILE, $SOURCE_DIR, $BUILD_DIR (set by CTest), git, gpg,
# ssh-keygen, python3, a Docker Engine (started here when missing) and the
# hello image (built here when missing). Starts and stops only its own
# processes, by pid; removes only its own containers (by the agent names it
# made up).
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}" "${BUILD_DIR:?}"
bash "$SOURCE_DIR/scripts/ensure-dockerd.sh" >/dev/null || { echo "no Docker Engine"; exit 1; }
bash "$SOURCE_DIR/scripts/hello-image.sh" "$BUILD_DIR" >/dev/null || { echo "no hello image"; exit 1; }

sock=/var/run/docker.sock
api() { curl -fsS --unix-socket "$sock" "$@"; }
work="$(mktemp -d)"
p="s$(printf '%04x' $((RANDOM % 65536)))"  # agent name prefix, unique per run
passed=0
failed=0
ctl_pid=""
source "$SOURCE_DIR/tests/scripts/controller_lib.sh"

# The signer's GNUPGHOME holds the trusted key AND the intruder's: were
# reconcile to use $GNUPGHOME instead of its private keyring, the intruder
# would pass (checked below).
export GNUPGHOME="$work/gnupg"
mkdir -m 700 "$GNUPGHOME"
# reconcile's temporary GNUPGHOMEs go here (none may be left).
mkdir -p "$work/tmp"

container_id() {
  api "http://d/v1.41/containers/json?all=1" |
    python3 -c "import json,sys; print(next((c['Id'] for c in json.load(sys.stdin) if '/$1' in c['Names']), ''))"
}
cleanup() {
  stop_pid "$ctl_pid"
  stop_git_daemon
  local agent_pid
  agent_pid="$(gpg-connect-agent --no-autostart 'getinfo pid' /bye 2>/dev/null | awk '/^D /{print $2}')"
  [[ -n "$agent_pid" ]] && kill "$agent_pid" 2>/dev/null
  for name in "$p-web"; do
    id="$(container_id "$name")"
    [[ -n "$id" ]] && api -X DELETE "http://d/v1.41/containers/$id?force=1" >/dev/null 2>&1
  done
  rm -rf "$work"
}
trap cleanup EXIT
ok() { passed=$((passed + 1)); echo "ok   - $1"; }
bad() { failed=$((failed + 1)); echo "FAIL - $1"; [[ -n "${2:-}" ]] && sed 's/^/       /' <<<"$2" | tail -40; }
status_is() {  # status_is PYTHON_EXPR (over s = the status JSON)
  status_json | python3 -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if ($1) else 1)"
}
greeting_is() {  # greeting_is TEXT: the agent's endpoint answers TEXT
  local endpoint
  endpoint="$(status_json | python3 -c "import json,sys; s=json.load(sys.stdin); print(next((a['endpoints'][0] for a in s['agents'] if a['name']=='$p-web' and a['endpoints']), ''))")"
  [[ -n "$endpoint" ]] && curl -fsS "$endpoint/" | grep -qF "\"greeting\":\"$1\""
}

# --- keys --------------------------------------------------------------------
gpg --batch --quiet --passphrase '' --quick-gen-key "Deployer <deploy@example.com>" default default never 2>/dev/null
gpg --batch --quiet --passphrase '' --quick-gen-key "Intruder <intruder@example.com>" default default never 2>/dev/null
fpr_of() { gpg --with-colons --fingerprint "$1" | awk -F: '/^fpr/{print $10; exit}'; }
deploy_fpr="$(fpr_of deploy@example.com)"
intruder_fpr="$(fpr_of intruder@example.com)"
gpg --armor --export deploy@example.com >"$work/trusted.asc"
mkdir "$work/keys.d" && cp "$work/trusted.asc" "$work/keys.d/deployer.asc"
if [[ -n "$deploy_fpr" && -n "$intruder_fpr" && -s "$work/trusted.asc" ]]; then ok "gpg made the deployer's and an intruder's key"; else bad "gpg key generation failed"; fi
ssh-keygen -q -t ed25519 -N '' -C deploy@example.com -f "$work/ssh_deploy"
ssh-keygen -q -t ed25519 -N '' -C intruder@example.com -f "$work/ssh_intruder"
echo "deploy@example.com namespaces=\"git\" $(cut -d' ' -f1,2 "$work/ssh_deploy.pub")" >"$work/allowed_signers"
ssh_deploy_fpr="$(ssh-keygen -lf "$work/ssh_deploy.pub" | cut -d' ' -f2)"
ssh_intruder_fpr="$(ssh-keygen -lf "$work/ssh_intruder.pub" | cut -d' ' -f2)"

# --- a repository served by a real git daemon ----------------------------------
git_repo
git_serve
url="git://127.0.0.1:$git_port/origin.git"
tree() {  # tree GREETING
  mkdir -p "$work/clone/deploy"
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
  env: {GREETING: "$1"}
  strategy: {type: start-first}
  healthCheck: {path: /health, interval: 100ms, timeout: 1s, retries: 50}
YAML
}
push() { git -C "$work/clone" push -q -f origin HEAD:main; }
# commit_as HOW GREETING: commit the tree with that greeting, signed HOW
# (pgp-deploy, pgp-intruder, ssh-deploy, ssh-intruder, unsigned), push it.
commit_as() {
  tree "$2"
  git -C "$work/clone" add -A
  local sign=()
  case "$1" in
    pgp-deploy) sign=(-c gpg.format=openpgp -c user.signingkey="$deploy_fpr" commit -S) ;;
    pgp-intruder) sign=(-c gpg.format=openpgp -c user.signingkey="$intruder_fpr" commit -S) ;;
    ssh-deploy) sign=(-c gpg.format=ssh -c user.signingkey="$work/ssh_deploy.pub" commit -S) ;;
    ssh-intruder) sign=(-c gpg.format=ssh -c user.signingkey="$work/ssh_intruder.pub" commit -S) ;;
    unsigned) sign=(commit --no-gpg-sign) ;;
  esac
  git -C "$work/clone" "${sign[@]}" -qm "$1 $2" || bad "git commit ($1) failed"
  push
}
# rewrite_tree GREETING: a copy of HEAD's commit object (its gpgsig header
# kept) whose tree line names the tree of another greeting; the branch is
# pointed at it and pushed.
rewrite_tree() {
  tree "$1"
  git -C "$work/clone" add -A
  local evil_tree forged
  evil_tree="$(git -C "$work/clone" write-tree)"
  forged="$(git -C "$work/clone" cat-file commit HEAD | sed "1s/^tree .*/tree $evil_tree/" |
    git -C "$work/clone" hash-object -t commit -w --stdin)"
  git -C "$work/clone" reset -q --hard "$forged"
  push
}
head_commit() { git -C "$work/clone" rev-parse HEAD; }
short() { head_commit | cut -c1-12; }

# reconcile_git CMD MODE [flags]: CMD (plan/apply) of the served main branch
# with verification MODE (openpgp: --trusted-keys, ssh: --allowed-signers).
reconcile_git() {
  local cmd=$1 mode=$2
  shift 2
  local trust=()
  [[ "$mode" == openpgp ]] && trust=(--verify-commits openpgp --trusted-keys "$work/trusted.asc")
  [[ "$mode" == ssh ]] && trust=(--verify-commits ssh --allowed-signers "$work/allowed_signers")
  local extra=()
  [[ "$cmd" == apply ]] && extra=(--auto-approve)
  TMPDIR="$work/tmp" "$RECONCILE" --no-color "$cmd" --source "$url" --ref main --path deploy \
    --state "$work/cli-state" "${trust[@]}" "${extra[@]}" "$@"
}
# refused CMD MODE REASON NAME: CMD exits 1 naming the commit and REASON.
refused() {
  local out code
  out="$(reconcile_git "$1" "$2" 2>&1)"
  code=$?
  if [[ $code == 1 ]] && grep -qF "commit $(short): $3" <<<"$out"; then
    ok "$4: $1 refuses (exit 1): commit $(short): $3"
  else
    bad "$4: $1 exit $code, expected 1 with 'commit $(short): $3'" "$out"
  fi
}

# --- the CLI, OpenPGP ----------------------------------------------------------------
commit_as pgp-deploy one
out="$(reconcile_git plan openpgp 2>&1)"
code=$?
if [[ $code == 2 ]] && grep -q "$p-web" <<<"$out"; then ok "openpgp: a commit signed by a trusted key is planned (exit 2)"; else bad "openpgp: plan of a trusted commit exit $code" "$out"; fi
out="$(reconcile_git plan openpgp -v 2>&1)"
if grep -qF "signature accepted, signed by OpenPGP key $deploy_fpr" <<<"$out"; then ok "openpgp: plan -v names the signing key's fingerprint"; else bad "openpgp: no signer in plan -v" "$out"; fi
out="$(TMPDIR="$work/tmp" "$RECONCILE" --no-color plan --source "$url" --ref main --path deploy \
  --state "$work/cli-state" --verify-commits openpgp --trusted-keys "$work/keys.d" 2>&1)"
if [[ $? == 2 ]]; then ok "openpgp: --trusted-keys takes a folder of key files"; else bad "openpgp: a keys folder was not accepted" "$out"; fi
good_pgp="$(head_commit)"
rewrite_tree evil
refused plan openpgp "signature does not verify (key ${deploy_fpr: -16})" "openpgp: a commit rewritten after signing"
if [[ "$(git -C "$work/clone" cat-file commit HEAD | grep -c '^gpgsig')" == 1 ]]; then ok "the rewritten commit still carries the gpgsig header"; else bad "the rewritten commit lost its signature"; fi
refused apply openpgp "signature does not verify" "openpgp: a commit rewritten after signing"
if [[ -z "$(container_id "$p-web")" ]]; then ok "openpgp: the refused apply started nothing"; else bad "openpgp: a container was created"; fi
git -C "$work/clone" reset -q --hard "$good_pgp"
commit_as unsigned two
refused plan openpgp "not signed (--verify-commits openpgp)" "openpgp: an unsigned commit"
refused apply openpgp "not signed (--verify-commits openpgp)" "openpgp: an unsigned commit"
commit_as pgp-intruder three
refused plan openpgp "signed by unknown key $intruder_fpr" "openpgp: a key not in --trusted-keys (though in \$GNUPGHOME)"
commit_as ssh-deploy four
refused plan openpgp "signed with an SSH key, but --verify-commits openpgp expects OpenPGP" "openpgp: an SSH signature"
out="$(reconcile_git plan none 2>&1)"
if [[ $? == 2 ]]; then ok "without --verify-commits any commit is planned as before"; else bad "plan without verification" "$out"; fi

# --- the CLI, SSH --------------------------------------------------------------------
commit_as ssh-deploy five
out="$(reconcile_git plan ssh -v 2>&1)"
code=$?
if [[ $code == 2 ]] && grep -qF "signature accepted, signed by SSH key $ssh_deploy_fpr (deploy@example.com)" <<<"$out"; then
  ok "ssh: a commit signed by an allowed signer is planned, its key and principal named"
else
  bad "ssh: plan of a trusted commit exit $code" "$out"
fi
good_ssh="$(head_commit)"
rewrite_tree evil
refused plan ssh "signature does not verify (key $ssh_deploy_fpr)" "ssh: a commit rewritten after signing"
git -C "$work/clone" reset -q --hard "$good_ssh"
commit_as unsigned six
refused plan ssh "not signed (--verify-commits ssh)" "ssh: an unsigned commit"
refused apply ssh "not signed (--verify-commits ssh)" "ssh: an unsigned commit"
commit_as ssh-intruder seven
refused plan ssh "signed by unknown key $ssh_intruder_fpr (not in --allowed-signers)" "ssh: a key not in allowed_signers"
commit_as pgp-deploy eight
refused plan ssh "signed with OpenPGP, but --verify-commits ssh expects SSH" "ssh: an OpenPGP signature"

# --- the options -----------------------------------------------------------------------
mkdir -p "$work/folder" && cp "$work/clone/deploy/deploy.yaml" "$work/folder/"
out="$("$RECONCILE" --no-color plan "$work/folder" --verify-commits ssh --allowed-signers "$work/allowed_signers" 2>&1)"
code=$?
if [[ $code == 1 ]] && grep -qF "needs a Git source" <<<"$out"; then ok "a folder source with --verify-commits is an error"; else bad "folder with verification: exit $code" "$out"; fi
out="$(TMPDIR="$work/tmp" "$RECONCILE" --no-color plan --source "$url" --path deploy --state "$work/cli-state" --verify-commits openpgp --trusted-keys "$work/missing.asc" 2>&1)"
code=$?
if [[ $code == 1 ]] && grep -qF "missing.asc" <<<"$out"; then ok "a missing --trusted-keys file is an error naming it"; else bad "missing keys: exit $code" "$out"; fi
echo "deploy@example.com ssh-ed25519 not-base64!" >"$work/bad_signers"
out="$("$RECONCILE" --no-color plan --source "$url" --path deploy --state "$work/cli-state" --verify-commits ssh --allowed-signers "$work/bad_signers" 2>&1)"
code=$?
if [[ $code == 1 ]] && grep -qF "bad_signers:1: error: the ssh-ed25519 key is not base64" <<<"$out"; then ok "a malformed allowed_signers file is an error naming file and line"; else bad "bad allowed_signers: exit $code" "$out"; fi
gpg --armor --export-secret-keys deploy@example.com >"$work/secret.asc" 2>/dev/null
out="$(TMPDIR="$work/tmp" "$RECONCILE" --no-color plan --source "$url" --path deploy --state "$work/cli-state" --verify-commits openpgp --trusted-keys "$work/secret.asc" 2>&1)"
if [[ $? == 1 ]] && grep -qF "holds a private key" <<<"$out"; then ok "a private key given as --trusted-keys is refused"; else bad "private key accepted" "$out"; fi
out="$("$RECONCILE" --no-color plan --source "$url" --trusted-keys "$work/trusted.asc" 2>&1)"
if [[ $? != 0 ]] && grep -q "verify-commits" <<<"$out"; then ok "--trusted-keys without --verify-commits is a usage error"; else bad "--trusted-keys alone accepted" "$out"; fi
if [[ -z "$(ls -A "$work/tmp")" ]]; then ok "no temporary GNUPGHOME is left behind by the CLI"; else bad "left in TMPDIR: $(ls "$work/tmp")"; fi

# --- the controller: the last good revision keeps running ----------------------------------
printf 'signed-commits-secret\n' >"$work/hook.secret"
secret="signed-commits-secret"
start_controller() {  # start_controller MODE
  local trust
  [[ "$1" == openpgp ]] && trust=(--verify-commits openpgp --trusted-keys "$work/trusted.asc")
  [[ "$1" == ssh ]] && trust=(--verify-commits ssh --allowed-signers "$work/allowed_signers")
  http_port="$(free_port)"
  TMPDIR="$work/tmp" "$RECONCILE" --no-color controller --repo "$url" --branch main --path deploy \
    --state "$work/state-$1" --listen "127.0.0.1:$http_port" --interval 1h --drift-interval 1h \
    --webhook-secret-file "$work/hook.secret" "${trust[@]}" >>"$work/ctl.log" 2>&1 &
  ctl_pid=$!
  wait_for 20 "$1: the controller answers /healthz" -- curl -fsS "http://127.0.0.1:$http_port/healthz"
}
# refused_by_controller MODE REASON NAME: the pushed HEAD is invalid with
# REASON in status, metrics and log; the good revision stays.
refused_by_controller() {
  local bad_commit
  bad_commit="$(head_commit)"
  webhook >/dev/null
  wait_for 30 "$1: $3: status names the revision invalid" -- \
    status_is "s['revision']['invalid'] == '$bad_commit' and s['lastPass']['result'] == 'invalid'"
  if status_is "any('commit $(short): $2' in d for d in s['lastPass']['diagnostics'])"; then ok "$1: $3: status shows why: $2"; else bad "$1: $3: status lacks the reason" "$(status_json)"; fi
  if status_is "s['revision']['applied'] == '$good'"; then ok "$1: $3: the last good revision stays applied"; else bad "$1: $3: applied moved" "$(status_json)"; fi
  if greeting_is "$greeting"; then ok "$1: $3: the agent keeps serving the good revision"; else bad "$1: $3: the agent changed"; fi
  invalid_passes=$((invalid_passes + 1))
  if metric_is "reconcile_passes_total{environment=\"default\",result=\"invalid\"}" "$invalid_passes"; then ok "$1: $3: /metrics counts the invalid pass ($invalid_passes)"; else bad "$1: $3: invalid passes $(metric "reconcile_passes_total{environment=\"default\",result=\"invalid\"}"), expected $invalid_passes"; fi
  if grep -qF "commit $(short): $2" "$work/ctl.log"; then ok "$1: $3: the log names the commit and why"; else bad "$1: $3: the log lacks the reason" "$(tail -20 "$work/ctl.log")"; fi
}
controller_run() {  # controller_run MODE SIGNER INTRUDER REWRITE_REASON UNKNOWN_KEY
  local mode=$1
  invalid_passes=0
  commit_as "$2" "good-$mode"
  good="$(head_commit)"
  greeting="good-$mode"
  start_controller "$mode"
  wait_for 60 "$mode: a signed commit is applied at start" -- status_is "s['revision']['applied'] == '$good'"
  wait_for 30 "$mode: the agent answers with the signed commit's greeting" -- greeting_is "$greeting"
  commit_as unsigned "unsigned-$mode"
  refused_by_controller "$mode" "not signed (--verify-commits $mode)" "an unsigned commit"
  commit_as "$3" "intruder-$mode"
  refused_by_controller "$mode" "signed by unknown key $5" "a commit by an unknown key"
  git -C "$work/clone" reset -q --hard "$good"
  rewrite_tree "forged-$mode"
  refused_by_controller "$mode" "$4" "a commit rewritten after signing"
  git -C "$work/clone" reset -q --hard "$good"
  commit_as "$2" "next-$mode"
  webhook >/dev/null
  wait_for 60 "$mode: the next signed commit is applied" -- status_is "s['revision']['applied'] == '$(head_commit)'"
  wait_for 30 "$mode: the agent serves the next signed commit" -- greeting_is "next-$mode"
  stop_pid "$ctl_pid"
  ctl_pid=""
  "$RECONCILE" destroy "$work/clone/deploy" --state "$work/state-$mode" --auto-approve --no-color \
    >/dev/null 2>&1 || bad "$mode: destroy failed"
}
controller_run openpgp pgp-deploy pgp-intruder "signature does not verify (key ${deploy_fpr: -16})" "$intruder_fpr"
controller_run ssh ssh-deploy ssh-intruder "signature does not verify (key $ssh_deploy_fpr)" "$ssh_intruder_fpr"
if [[ -z "$(ls -A "$work/tmp")" ]]; then ok "no temporary GNUPGHOME is left behind by the controller"; else bad "left in TMPDIR: $(ls "$work/tmp")"; fi

echo "# $passed passed, $failed failed"
((failed == 0))
