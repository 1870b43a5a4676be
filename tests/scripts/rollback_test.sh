#!/usr/bin/env bash
# Rollback end to end against the real Docker Engine: `reconcile rollback`
# re-applies an earlier revision from history (what answers on the agent's
# port is the old version again), pins it (`status`, `history`, `plan` and
# `apply` keep it), refuses an unknown --to without changing anything, and
# the pin ends when the desired revision changes. Also: the history and spec
# store on disk (format 2, 0600, specs by hash, not inline).
#
# Needs: $RECONCILE, $SOURCE_DIR, $BUILD_DIR (set by CTest), a Docker Engine
# (started here when missing) and the hello image (built here when missing).
# Cleans up only what it created, by id.
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}" "${BUILD_DIR:?}"
bash "$SOURCE_DIR/scripts/ensure-dockerd.sh" >/dev/null || { echo "no Docker Engine"; exit 1; }
bash "$SOURCE_DIR/scripts/hello-image.sh" "$BUILD_DIR" >/dev/null || { echo "no hello image"; exit 1; }

sock=/var/run/docker.sock
api() { curl -fsS --unix-socket "$sock" "$@"; }
work="$(mktemp -d)"
p="rb$(printf '%04x' $((RANDOM % 65536)))"  # agent name prefix, unique per run
passed=0
failed=0

cleanup() {
  "$RECONCILE" destroy "$work/tree" --auto-approve --no-color >/dev/null 2>&1 || true
  # Anything of ours the destroy could not reach (a failed test), by id.
  for name in "$p-a" "$p-b"; do
    id=$(container_id "$name")
    [[ -n "$id" ]] && api -X DELETE "http://d/v1.41/containers/$id?force=1" >/dev/null 2>&1
  done
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=tests/scripts/lib.sh
source "$SOURCE_DIR/tests/scripts/lib.sh"
equals() {  # equals NAME WANT GOT
  if [[ "$2" == "$3" ]]; then ok "$1"; else bad "$1: got '$3', want '$2'"; fi
}
label() {  # label CONTAINER_NAME LABEL
  api "http://d/v1.41/containers/$(container_id "$1")/json" |
    python3 -c "import json,sys; print(json.load(sys.stdin)['Config']['Labels'].get('$2', ''))"
}
greeting() {  # what agent $1 answers on its endpoint
  local endpoint
  endpoint=$(R status "$work/tree" --json |
    python3 -c "import json,sys; print(next(a['endpoint'] for a in json.load(sys.stdin)['agents'] if a['name'] == '$1'))")
  curl -fsS --max-time 5 "$endpoint/" | python3 -c "import json,sys; print(json.load(sys.stdin)['greeting'])"
}
write_tree() {  # write_tree GREETING [with_b]
  mkdir -p "$work/tree"
  {
    cat <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: local}
spec: {provider: docker, docker: {publishAddress: 127.0.0.1}}
YAML
    for name in "$p-a" ${2:+"$p-b"}; do
      cat <<YAML
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $name}
spec:
  image: reconcile/hello-agent:0.1.0
  target: local
  port: 8080
  env: {GREETING: "$1"}
  healthCheck: {path: /health, interval: 100ms, timeout: 1s, retries: 50}
YAML
    done
  } >"$work/tree/agents.yaml"
}
R() { "$RECONCILE" --no-color "$@"; }
revision() { R validate "$work/tree" | sed -n 's/.*(\(tree-[0-9a-f]*\)).*/\1/p'; }
state_sum() { sha256sum "$work/tree/.reconcile/state.json" | cut -d' ' -f1; }

# --- two revisions ------------------------------------------------------------
write_tree one with_b
rev1=$(revision)
expect_exit 0 "apply revision 1 (a and b)" -- R apply "$work/tree" --auto-approve
write_tree two
rev2=$(revision)
expect_exit 0 "apply revision 2 (a changed, b removed)" -- R apply "$work/tree" --auto-approve
equals "revision 2 answers" "two" "$(greeting "$p-a")"
equals "b is gone" "" "$(container_id "$p-b")"
expect_exit 1 "rollback needs --auto-approve without a terminal" -- R rollback "$work/tree" </dev/null
contains "it says so" "--auto-approve" "$out"
equals "refusing changed nothing" "two" "$(greeting "$p-a")"

# --- bad --to changes nothing ---------------------------------------------------
sum=$(state_sum)
id_a=$(container_id "$p-a")
expect_exit 1 "rollback --to an unknown serial" -- R rollback "$work/tree" --to 99 --auto-approve
contains "the error names --to and what to look at" "--to 99" "$out"
contains "the error points at history" "reconcile history" "$out"
expect_exit 1 "rollback --to an unknown revision" -- R rollback "$work/tree" --to tree-ffffffffffff --auto-approve
equals "state untouched by a bad --to" "$sum" "$(state_sum)"
equals "container untouched by a bad --to" "$id_a" "$(container_id "$p-a")"

# --- rollback to the previous revision ------------------------------------------
expect_exit 0 "rollback (default: the previous revision)" -- R rollback "$work/tree" --auto-approve
contains "it names the revision it rolls back to" "Rolling back to revision $rev1 (history #1" "$out"
contains "it says the revision is pinned" "Pinned to revision $rev1" "$out"
contains "and until when" "until the desired revision changes from $rev2" "$out"
equals "revision 1 answers again" "one" "$(greeting "$p-a")"
[[ -n "$(container_id "$p-b")" ]] && ok "b runs again" || bad "b was not re-created"
equals "the container carries the rolled-back revision" "$rev1" "$(label "$p-a" reconcile.dev/revision)"
expect_exit 0 "status" -- R status "$work/tree"
contains "status shows the pin" "Pinned to revision $rev1 (history #1)" "$out"
pin=$(R status "$work/tree" --json | python3 -c "import json,sys; p=json.load(sys.stdin)['pin']; print(p['revision'], p['serial'], p['desiredRevision'])")
equals "status --json shows the pin" "$rev1 1 $rev2" "$pin"
expect_exit 0 "history" -- R history "$work/tree"
contains "history marks the pinned entry" "$(printf '%-6s %-18s' 1 "$rev1")" "$out"
marks=$(R history "$work/tree" --json | python3 -c "
import json,sys
h=json.load(sys.stdin)
print([(e['serial'], e['live'], e['pinned'], e.get('rollbackOf', 0)) for e in h])")
equals "history --json: #1 pinned, #3 live and a rollback of #1" "[(1, False, True, 0), (2, False, False, 0), (3, True, False, 1)]" "$marks"
grep -E "^1 .*pinned" <<<"$out" >/dev/null && ok "history's STATUS column says pinned" || bad "no pinned mark" "$out"
grep -E "^3 .*live .*rollback to #1" <<<"$out" >/dev/null && ok "history's STATUS column says live" || bad "no live mark" "$out"

# --- the pin holds --------------------------------------------------------------
expect_exit 0 "plan keeps the pinned revision (no changes)" -- R plan "$work/tree"
contains "plan says it plans towards the pin" "Pinned to revision $rev1" "$out"
id_a=$(container_id "$p-a")
expect_exit 0 "apply keeps the pinned revision" -- R apply "$work/tree" --auto-approve
contains "apply changes nothing" "No changes." "$out"
equals "the rolled-back container is left as it is" "$id_a" "$(container_id "$p-a")"
equals "still revision 1" "one" "$(greeting "$p-a")"

# --- rollback --to by revision and by serial --------------------------------------
expect_exit 0 "rollback --to the revision 2 (a prefix)" -- R rollback "$work/tree" --to "${rev2:0:10}" --auto-approve
equals "revision 2 answers" "two" "$(greeting "$p-a")"
equals "b removed again" "" "$(container_id "$p-b")"
expect_exit 0 "rollback --to 1 (a serial)" -- R rollback "$work/tree" --to 1 --auto-approve
equals "revision 1 answers" "one" "$(greeting "$p-a")"

# --- a new desired revision ends the pin --------------------------------------------
write_tree three
rev3=$(revision)
expect_exit 2 "plan after a new commit rolls forward" -- R plan "$work/tree"
contains "plan says the pin ends" "The pin on revision $rev1 (rollback to history #1) ends: the desired revision changed from $rev2 to $rev3" "$out"
expect_exit 0 "apply the new revision" -- R apply "$work/tree" --auto-approve
contains "apply warns that the pin ends" "ends" "$out"
equals "revision 3 answers" "three" "$(greeting "$p-a")"
pin=$(R status "$work/tree" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['pin'])")
equals "no pin after the new revision" "None" "$pin"
expect_exit 0 "history after the pin" -- R history "$work/tree"
if grep -q pinned <<<"$out"; then bad "history still shows a pin" "$out"; else ok "history shows no pin"; fi

# --- the files ----------------------------------------------------------------------
state_dir="$work/tree/.reconcile"
fmt=$(python3 -c "import json; h=json.load(open('$state_dir/history.json')); print(h['version'], len(h['entries']), 'specs' in json.dumps(h))")
equals "history.json is format 2, 6 entries, no inline specs" "2 6 False" "$fmt"
modes=$(stat -c '%a' "$state_dir/history.json" "$state_dir/state.json" "$state_dir/specs" "$state_dir"/specs/*.json | sort -u | tr '\n' ' ')
equals "history, state and spec store are private" "600 700 " "$modes"
packs=$(ls "$state_dir/specs" | wc -l)
[[ $packs -ge 1 && $packs -le 6 ]] && ok "spec store: $packs packs for 6 entries" || bad "spec store has $packs packs"
leftovers=$(find "$state_dir" -name '.*tmp*' | wc -l)
equals "no temporary files left" "0" "$leftovers"
# A pack edited behind our back is refused when a rollback needs it, and
# nothing changes.
for f in "$state_dir"/specs/*.json; do sed -i 's/"one"/"evil"/' "$f"; done
sum=$(state_sum)
expect_exit 1 "a tampered spec store is refused" -- R rollback "$work/tree" --to 1 --auto-approve
contains "the error says the spec does not match its hash" "does not match its hash" "$out"
equals "nothing changed" "three" "$(greeting "$p-a")"
equals "state untouched" "$sum" "$(state_sum)"

echo "rollback: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
