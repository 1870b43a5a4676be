#!/usr/bin/env bash
# Cross-checks the C++ decoder (`reconcile validate`) against the JSON Schemas
# (schemas/*.schema.json, validated with ajv by tests/schema/validate.js):
#   - examples/** and tests/testdata/valid/**: ajv accepts every document and
#     the decoder accepts every tree;
#   - tests/testdata/invalid/*.yaml, whose first line is "# expect: schema"
#     (ajv and the decoder both reject) or "# expect: decoder" (ajv accepts,
#     the decoder rejects: cross-document errors);
#   - limit cases generated here (size, depth, aliases, symlink, NUL,
#     non-UTF-8): the decoder rejects.
# Every rejection must name the file and a line:column.
# Env: RECONCILE (the binary), SOURCE_DIR (repository root).
set -u
SOURCE_DIR=${SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
RECONCILE=${RECONCILE:-$SOURCE_DIR/build/program/reconcile}
# examples/plugin names the example plugin: install it as a user would.
export RECONCILE_PLUGIN_PATH=$SOURCE_DIR/examples/plugins
SCHEMA_DIR=$SOURCE_DIR/tests/schema
[ -x "$RECONCILE" ] || { echo "schema crosscheck: no binary at $RECONCILE" >&2; exit 1; }
if [ ! -d "$SCHEMA_DIR/node_modules" ]; then
  npm ci --prefix "$SCHEMA_DIR" --no-audit --no-fund >&2 || { echo "npm ci failed" >&2; exit 1; }
fi
AJV="node $SCHEMA_DIR/validate.js"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0
pass() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }

# The decoder must reject `path` and name `name` with a line:column.
decoder_rejects() {
  local path=$1 name=$2 out rc
  out=$("$RECONCILE" validate "$path" 2>&1); rc=$?
  if [ $rc -ne 1 ]; then fail "$name: decoder exit $rc, want 1: $out"; return 1; fi
  if ! grep -qE "$(printf '%s' "$name" | sed 's/[.[\*^$]/\\&/g'):[0-9]+:[0-9]+: " <<<"$out"; then
    fail "$name: decoder output does not name the file with line:column: $out"; return 1
  fi
  return 0
}

# Valid trees and their documents.
valid_dirs=("$SOURCE_DIR"/examples/*/ "$SOURCE_DIR"/tests/testdata/valid/*/)
for dir in "${valid_dirs[@]}"; do
  [ -d "$dir" ] || continue
  mapfile -t files < <(find "$dir" -name '*.yaml' -o -name '*.yml' | sort)
  [ ${#files[@]} -gt 0 ] || continue  # not a tree (examples/plugins holds executables)
  mapfile -t env_files < <(grep -l '^kind: Environment' "${files[@]}")
  if [ ${#env_files[@]} -gt 0 ]; then
    # Environments: ajv checks the Environment documents and each rendered
    # environment; the decoder each --path.
    if out=$($AJV --kind Environment "${env_files[@]}" 2>&1); then pass; else fail "ajv rejects an Environment in $dir: $out"; fi
    for env_file in "${env_files[@]}"; do
      rel=$(dirname "${env_file#"$dir"}")
      rel=${rel#/}
      if out=$("$RECONCILE" validate "$dir" --path "$rel" 2>&1); then pass; else fail "decoder rejects environment $dir$rel: $out"; fi
      "$RECONCILE" render "$dir" --path "$rel" >"$TMP/rendered.yaml" 2>&1
      if out=$($AJV "$TMP/rendered.yaml" 2>&1); then pass; else fail "ajv rejects the rendered $dir$rel: $out"; fi
    done
    continue
  fi
  if out=$($AJV "${files[@]}" 2>&1); then pass; else fail "ajv rejects valid $dir: $out"; fi
  if out=$("$RECONCILE" validate "$dir" 2>&1); then pass; else fail "decoder rejects valid $dir: $out"; fi
done

# The committed invalid corpus.
schema_cases=0
decoder_cases=0
for file in "$SOURCE_DIR"/tests/testdata/invalid/*.yaml; do
  name=$(basename "$file")
  expect=$(head -n 1 "$file" | sed -n 's/^# expect: \([a-z]*\)$/\1/p')
  ajv_out=$($AJV "$file" 2>&1); ajv_rc=$?
  case "$expect" in
    schema)
      schema_cases=$((schema_cases + 1))
      [ $ajv_rc -eq 1 ] || { fail "$name: ajv accepts it (exit $ajv_rc): $ajv_out"; continue; }
      ;;
    decoder)
      decoder_cases=$((decoder_cases + 1))
      [ $ajv_rc -eq 0 ] || { fail "$name: ajv rejects it, but it is marked decoder: $ajv_out"; continue; }
      ;;
    *) fail "$name: first line must be '# expect: schema' or '# expect: decoder'"; continue ;;
  esac
  decoder_rejects "$file" "$name" && pass
done

# Generated limit cases.
limit_cases=0
limit() {  # name, then the file is $TMP/<case>/<name>
  limit_cases=$((limit_cases + 1))
  decoder_rejects "$TMP/$1" "$(basename "$1")" && pass
}
mkdir -p "$TMP/large" "$TMP/deep" "$TMP/laughs" "$TMP/symlink/in" "$TMP/outside" "$TMP/nul" "$TMP/utf8"
{ echo "# padding"; head -c $((4 * 1024 * 1024)) /dev/zero | tr '\0' '#'; echo; } >"$TMP/large/too-large.yaml"
limit large/too-large.yaml
{ printf 'apiVersion: '; printf '[%.0s' $(seq 100); printf ']%.0s' $(seq 100); echo; } >"$TMP/deep/too-deep.yaml"
limit deep/too-deep.yaml
{
  echo 'a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]'
  for i in $(seq 1 9); do
    printf 'a%d: &a%d [' "$i" "$i"; for k in $(seq 10); do printf '*a%d, ' $((i - 1)); done; echo 'x]'
  done
} >"$TMP/laughs/billion-laughs.yaml"
limit laughs/billion-laughs.yaml
printf 'apiVersion: reconcile.dev/v1alpha1\nkind: Target\nmetadata: {name: t}\nspec: {provider: docker}\n' \
  >"$TMP/outside/target.yaml"
ln -s "$TMP/outside/target.yaml" "$TMP/symlink/in/link-out.yaml"
limit symlink/in/link-out.yaml
printf 'apiVersion: reconcile.dev/v1alpha1\nkind: Ta\0rget\n' >"$TMP/nul/nul-byte.yaml"
limit nul/nul-byte.yaml
printf 'apiVersion: reconcile.dev/v1alpha1\nkind: T\xffarget\n' >"$TMP/utf8/not-utf8.yaml"
limit utf8/not-utf8.yaml
# The symlink must also be caught when the folder is validated.
if out=$("$RECONCILE" validate "$TMP/symlink" 2>&1); then
  fail "symlink out of the tree accepted in a folder"
elif grep -q 'in/link-out.yaml:[0-9]*:[0-9]*: ' <<<"$out"; then pass; else fail "symlink folder: $out"; fi

# Saved plans: the golden file (written by the unit tests from the C++
# writer) validates against schemas/plan.schema.json, and `reconcile show`
# reads it; broken copies are rejected by both.
PLAN_AJV="node $SCHEMA_DIR/validate_plan.js"
golden_plan=$SOURCE_DIR/tests/testdata/plans/saved_plan.json
if out=$($PLAN_AJV "$golden_plan" 2>&1); then pass; else fail "ajv rejects the saved plan: $out"; fi
if out=$("$RECONCILE" --no-color show "$golden_plan" 2>&1); then pass; else fail "show rejects the saved plan: $out"; fi
if out=$("$RECONCILE" show --json "$golden_plan" 2>&1) &&
   [ "$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["plan"], sort_keys=True))' "$golden_plan")" = \
     "$(python3 -c 'import json,sys; print(json.dumps(json.loads(sys.stdin.read()), sort_keys=True))' <<<"$out")" ]; then
  pass
else fail "show --json is not the saved plan's plan: $out"; fi
plan_cases=0
bad_plan() {  # name, python expression editing `j`
  plan_cases=$((plan_cases + 1))
  python3 -c "import json,sys; j=json.load(open(sys.argv[1])); $2; json.dump(j, open(sys.argv[2], 'w'))" \
    "$golden_plan" "$TMP/$1.json"
  local ajv_out show_out
  if ajv_out=$($PLAN_AJV "$TMP/$1.json" 2>&1); then fail "plan $1: ajv accepts it"; return; fi
  if show_out=$("$RECONCILE" show "$TMP/$1.json" 2>&1); then fail "plan $1: show accepts it"; return; fi
  grep -qF "$1.json" <<<"$show_out" || { fail "plan $1: the error does not name the file: $show_out"; return; }
  pass
}
bad_plan unknown-action 'j["plan"]["changes"][0]["action"] = "explode"'
bad_plan extra-field 'j["stateDirOverride"] = "/"'
bad_plan no-source 'del j["source"]'
bad_plan version-2 'j["reconcileSavedPlan"] = 2'
bad_plan desired-string 'j["plan"]["changes"][0]["desired"] = "x"'
bad_plan no-changes 'del j["plan"]["changes"]'
bad_plan field-without-path 'j["plan"]["changes"][1]["fields"][0].pop("path")'

echo "saved plans: $plan_cases broken copies"
echo "invalid corpus: $schema_cases schema, $decoder_cases decoder, $limit_cases generated limit cases"
echo "schema crosscheck: $passed passed, $failed failed"
[ $failed -eq 0 ] && [ $((schema_cases + decoder_cases + limit_cases)) -ge 30 ]
