#!/usr/bin/env bash
# End-to-end: the real `reconcile` binary with the example plugin
# examples/plugins/reconcile-provider-localfile (Python) found on
# RECONCILE_PLUGIN_PATH: validate, plan, apply, status, drift after an edit
# by hand, apply heals it, an env change in place, an image change replaces,
# destroy; a bad config and a refused agent field are clear errors; secrets
# never reach the files or the output.
#
# Needs: $RECONCILE (the binary), $SOURCE_DIR (set by CTest), python3. No
# network, no Docker. Cleans up its temp folder.
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}"
work="$(mktemp -d)"
passed=0
failed=0
trap 'rm -rf "$work"' EXIT

# shellcheck source=tests/scripts/lib.sh
source "$SOURCE_DIR/tests/scripts/lib.sh"

export RECONCILE_PLUGIN_PATH="$SOURCE_DIR/examples/plugins"
canary="plugin-canary-$RANDOM$RANDOM"
export RECONCILE_SECRET_TOKEN="$canary"  # read by secretEnv {env: ...}
deploy="$work/deployed"
R() { "$RECONCILE" --no-color --state "$work/state" "$@"; }

tree_doc() {  # tree_doc IMAGE GREETING
  cat <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: files}
spec:
  provider: exec
  exec:
    plugin: localfile
    config:
      directory: $deploy
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: greeter}
spec:
  image: $1
  target: files
  port: 8080
  env:
    GREETING: "$2"
YAML
}
mkdir -p "$work/tree"
tree_doc "hello:1" "Hello" >"$work/tree/files.yaml"

expect_exit 0 "the example tree validates" -- R validate "$SOURCE_DIR/examples/plugin"
expect_exit 0 "validate" -- R validate "$work/tree"
expect_exit 2 "plan shows the new agent (exit 2)" -- R plan "$work/tree"
contains "plan creates greeter" "agent.greeter" "$out"
expect_exit 0 "apply" -- R apply "$work/tree" --auto-approve
file="$deploy/greeter.json"
if [[ -f "$file" ]]; then ok "the plugin wrote $file"; else bad "no $file" "$out"; fi
contains "the file carries the ownership labels" '"reconcile.dev/managed-by": "reconcile"' "$(cat "$file" 2>/dev/null)"
contains "the file has the env" '"GREETING": "Hello"' "$(cat "$file" 2>/dev/null)"
id1=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['instance'])" "$file" 2>/dev/null)
expect_exit 0 "plan after apply is empty (exit 0)" -- R plan "$work/tree"
expect_exit 0 "status" -- R status "$work/tree" --json
contains "status shows the endpoint" "file://$file" "$out"

expect_exit 0 "no drift after apply" -- R drift "$work/tree"
sed -i 's/"GREETING": "Hello"/"GREETING": "edited by hand"/' "$file"
expect_exit 2 "drift after an edit by hand (exit 2)" -- R drift "$work/tree"
contains "drift names the agent" "greeter" "$out"
contains "drift says what the plugin saw" "modified outside reconcile" "$out"
expect_exit 0 "apply heals the drift" -- R apply "$work/tree" --auto-approve
contains "the healed file has the tree's env again" '"GREETING": "Hello"' "$(cat "$file")"
expect_exit 0 "no drift after healing" -- R drift "$work/tree"

id2=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['instance'])" "$file")
tree_doc "hello:1" "Hello again" >"$work/tree/files.yaml"
expect_exit 2 "plan shows the env change" -- R plan "$work/tree"
contains "an env change is an update in place" "update" "$out"
expect_exit 0 "apply the env change" -- R apply "$work/tree" --auto-approve
id3=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['instance'])" "$file")
if [[ -n "$id3" && "$id3" == "$id2" ]]; then ok "updated in place (same instance $id3)"; else bad "update changed the instance: $id2 -> $id3"; fi
tree_doc "hello:2" "Hello again" >"$work/tree/files.yaml"
expect_exit 2 "plan shows the image change" -- R plan "$work/tree"
contains "an image change forces a replacement" "replace" "$out"
expect_exit 0 "apply the image change" -- R apply "$work/tree" --auto-approve
id4=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['instance'])" "$file")
if [[ -n "$id4" && "$id4" != "$id3" && "$id4" != "$id1" ]]; then ok "replaced (new instance $id4)"; else bad "replace kept the instance: $id3 -> $id4"; fi

# Secrets go to the plugin over its stdin only: never into its file or our output.
cat >>"$work/tree/files.yaml" <<YAML
  secretEnv:
    TOKEN: {env: RECONCILE_SECRET_TOKEN}
YAML
expect_exit 0 "apply with a secretEnv" -- R apply "$work/tree" --auto-approve
apply_out="$out"
lacks "the secret is not in the output" "$canary" "$apply_out"
lacks "the secret is not in the deployed file" "$canary" "$(cat "$file")"
lacks "the secret is not in the state" "$canary" "$(cat "$work"/state/* 2>/dev/null)"
contains "the file names the secret variable" '"TOKEN"' "$(cat "$file")"

expect_exit 0 "destroy" -- R destroy "$work/tree" --auto-approve
if [[ ! -e "$file" ]]; then ok "destroy removed the file"; else bad "destroy left $file"; fi

# A bad config: the plugin's validation names the field.
mkdir -p "$work/bad"
tree_doc "hello:1" "Hello" | sed "s|directory: $deploy|directory: relative/dir|" >"$work/bad/files.yaml"
"$RECONCILE" --no-color --state "$work/bad-state" validate "$work/bad" >"$work/bad.out" 2>&1
vcode=$?
if [[ $vcode -eq 1 ]]; then ok "validate refuses a bad config (exit 1)"; else bad "validate exit $vcode, want 1"; fi
# The loader calls the plugin's validate_target (provider interface v2) and
# locates what it says at file:line:column.
if grep -Eq 'files\.yaml:[0-9]+:[0-9]+: error: spec\.exec\.config\.directory: .*absolute' "$work/bad.out"; then
  ok "a bad config is a file:line:column error naming the field"
else
  bad "no file:line:column error for spec.exec.config.directory: $(cat "$work/bad.out")"
fi

# The direct form: provider NAME with its block spec.NAME, as for a built-in.
mkdir -p "$work/direct"
tree_doc "hello:1" "Hello" |
  sed -e 's|provider: exec|provider: localfile|' -e 's|^  exec:|  localfile:|' \
      -e '/plugin: localfile/d' -e 's|^    config:||' -e 's|^      directory:|    directory:|' \
      >"$work/direct/files.yaml"
expect_exit 0 "the direct form (provider: localfile) validates" -- R validate "$work/direct"
sed -i "s|directory: $deploy|directory: relative/dir|" "$work/direct/files.yaml"
"$RECONCILE" --no-color --state "$work/bad-state" validate "$work/direct" >"$work/direct.out" 2>&1
if grep -Eq 'files\.yaml:[0-9]+:[0-9]+: error: spec\.localfile\.directory: ' "$work/direct.out"; then
  ok "the direct form's bad config names spec.localfile.directory at file:line:column"
else
  bad "direct form: $(cat "$work/direct.out")"
fi

# An unknown plugin is a clear error naming where it was looked for.
sed 's/plugin: localfile/plugin: nosuchplugin/' "$work/tree/files.yaml" >"$work/bad/files.yaml"
expect_exit 1 "an unknown plugin is refused" -- "$RECONCILE" --no-color --state "$work/bad-state" plan "$work/bad"
contains "it names the plugin and the path" "reconcile-provider-nosuchplugin in $SOURCE_DIR/examples/plugins" "$out"

echo "plugin_cli_test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
