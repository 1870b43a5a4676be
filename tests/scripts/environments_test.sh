#!/usr/bin/env bash
# Environments (overlays) end to end with the real `reconcile` binary:
#   - `reconcile render --path envs/<env>` of tests/testdata/environments is
#     compared with the expected files in that tree (golden; set
#     RECONCILE_REGENERATE=1 to rewrite them, then review the diff);
#   - the rendered YAML loads again as a plain tree and renders the same;
#   - `render --json` is a JSON array of the same documents;
#   - a broken patch is exit 1 naming the patch's file:line:column and the
#     base document;
#   - `apply --path envs/staging` (example plugin localfile, no Docker) keeps
#     its state, lock and history in <state>/environments/staging, and a
#     plain tree in <state> itself.
# Needs: $RECONCILE, $SOURCE_DIR (set by CTest), python3. No network.
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}"
work="$(mktemp -d)"
passed=0
failed=0
trap 'rm -rf "$work"' EXIT

# shellcheck source=tests/scripts/lib.sh
source "$SOURCE_DIR/tests/scripts/lib.sh"

tree="$SOURCE_DIR/tests/testdata/environments"
R() { "$RECONCILE" --no-color --state "$work/state" "$@"; }

for env in dev staging prod; do
  expected="$tree/expected/$env.yaml"
  if [[ "${RECONCILE_REGENERATE:-}" == 1 ]]; then
    R render "$tree" --path "envs/$env" >"$expected"
  fi
  expect_exit 0 "render $env" -- R render "$tree" --path "envs/$env"
  if [[ -f "$expected" ]] && [[ "$out" == "$(cat "$expected")" ]]; then
    ok "render $env equals expected/$env.yaml"
  else
    bad "render $env differs from expected/$env.yaml" "$(diff <(printf '%s\n' "$out") "$expected" 2>&1)"
  fi
  # The output loads as a plain tree and renders the same documents.
  mkdir -p "$work/rendered-$env"
  printf '%s\n' "$out" >"$work/rendered-$env/all.yaml"
  rendered="$out"
  expect_exit 0 "the rendered $env loads as a plain tree" -- R validate "$work/rendered-$env"
  expect_exit 0 "render of the rendered $env" -- R render "$work/rendered-$env"
  if [[ "$out" == "$rendered" ]]; then ok "the rendered $env renders the same"; else
    bad "the rendered $env renders differently" "$(diff <(printf '%s\n' "$out") <(printf '%s\n' "$rendered"))"
  fi
done

expect_exit 0 "render --json" -- R render "$tree" --path envs/prod --json
json="$out"
check=$(python3 - "$json" <<'PY'
import json, sys
docs = json.loads(sys.argv[1])
kinds = [d["kind"] for d in docs]
web = next(d for d in docs if d["kind"] == "Agent" and d["metadata"]["name"] == "web")
worker = next(d for d in docs if d["kind"] == "Agent" and d["metadata"]["name"] == "worker")
problems = []
if kinds != ["Target", "Agent", "Agent"]: problems.append("order %s" % kinds)
if worker["spec"]["replicas"] != 3: problems.append("replicas %r" % worker["spec"]["replicas"])
if web["spec"]["hostPort"] != 38080: problems.append("hostPort %r" % web["spec"]["hostPort"])
if "LOG_LEVEL" in web["spec"]["env"]: problems.append("LOG_LEVEL not removed")
if web["spec"]["env"].get("ENVIRONMENT") != "prod": problems.append("env not added")
if web["metadata"]["labels"] != {"app": "web", "tier": "frontend"}: problems.append("labels %r" % web["metadata"]["labels"])
if worker["spec"]["command"] != ["/hello", "--worker", "--quiet"]: problems.append("list not replaced")
print("ok" if not problems else "; ".join(problems))
PY
)
if [[ "$check" == ok ]]; then ok "render --json holds the merged documents"; else bad "render --json: $check" "$json"; fi

# A broken patch: exit 1, the patch's position and the base document.
cp -r "$tree" "$work/broken"
rm -rf "$work/broken/expected"
printf 'apiVersion: reconcile.dev/v1alpha1\nkind: Agent\nmetadata: {name: web}\nspec:\n  replicaz: 2\n' \
  >"$work/broken/envs/staging/web.yaml"
expect_exit 1 "render of a broken patch fails" -- R render "$work/broken" --path envs/staging
contains "the error names the patch and the base" \
  "envs/staging/web.yaml:5:3: error: spec.replicaz: unknown field 'replicaz' (did you mean 'replicas'?) (patching Agent web at base/agents.yaml:1:1)" "$out"
expect_exit 1 "plan of a broken patch fails" -- R plan "$work/broken" --path envs/staging

# State per environment (the example plugin localfile: no Docker).
export RECONCILE_PLUGIN_PATH="$SOURCE_DIR/examples/plugins"
mkdir -p "$work/src/base" "$work/src/envs/staging"
cat >"$work/src/base/all.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: files}
spec:
  provider: exec
  exec:
    plugin: localfile
    config:
      directory: $work/deployed
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: greeter}
spec: {image: "hello:1", target: files, port: 8080}
YAML
cat >"$work/src/envs/staging/environment.yaml" <<'YAML'
apiVersion: reconcile.dev/v1alpha1
kind: Environment
metadata: {name: staging}
spec:
  bases: [../../base]
  env: {ENVIRONMENT: staging}
YAML
S() { "$RECONCILE" --no-color "$@"; }
expect_exit 0 "apply an environment" -- S apply "$work/src" --path envs/staging --auto-approve
if [[ -f "$work/src/.reconcile/environments/staging/state.json" ]]; then
  ok "the environment's state is in .reconcile/environments/staging"
else
  bad "no .reconcile/environments/staging/state.json" "$(find "$work/src/.reconcile" 2>&1)"
fi
if [[ ! -e "$work/src/.reconcile/state.json" ]]; then ok "the plain state file is untouched"; else
  bad "an environment wrote .reconcile/state.json"; fi
contains "the agent got the environment's env" '"ENVIRONMENT": "staging"' "$(cat "$work/deployed/greeter.json" 2>/dev/null)"
expect_exit 0 "history of the environment" -- S history "$work/src" --path envs/staging
contains "history shows the apply" "succeeded" "$out"
expect_exit 0 "plan of the environment after apply is empty" -- S plan "$work/src" --path envs/staging
expect_exit 2 "the plain base has no state of its own: its plan creates" -- S plan "$work/src" --path base
expect_exit 0 "destroy the environment" -- S destroy "$work/src" --path envs/staging --auto-approve

echo "environments_test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
