# The check helpers the script tests share (sourced, not a test itself):
#   ok NAME / bad NAME [DETAIL]     count a passed / failed check
#   expect_exit CODE NAME -- cmd... run cmd, check its exit code ($out, $code)
#   contains / lacks NAME NEEDLE HAYSTACK
#   container_id NAME               the id of the container NAME, or empty
#   env_of ID / file_in ID PATH     a container's Config.Env; a file's content in it
# The sourcing script sets passed=0 failed=0, and $sock and api() before
# calling container_id.
ok() { passed=$((passed + 1)); echo "ok   - $1"; }
bad() { failed=$((failed + 1)); echo "FAIL - $1"; [[ -n "${2:-}" ]] && sed 's/^/       /' <<<"$2"; }
expect_exit() {  # expect_exit CODE NAME -- command...
  local want=$1 name=$2; shift 3
  out="$("$@" 2>&1)"; code=$?
  if [[ $code -eq $want ]]; then ok "$name (exit $code)"; else bad "$name: exit $code, want $want" "$out"; fi
}
contains() {  # contains NAME NEEDLE HAYSTACK
  if grep -qF -- "$2" <<<"$3"; then ok "$1"; else bad "$1: no '$2' in output" "$3"; fi
}
lacks() {  # lacks NAME NEEDLE HAYSTACK
  if grep -qF -- "$2" <<<"$3"; then bad "$1: '$2' in output" "$3"; else ok "$1"; fi
}
container_id() {  # id of the container named $1, or empty
  api "http://d/v1.41/containers/json?all=1" |
    python3 -c "import json,sys; print(next((c['Id'] for c in json.load(sys.stdin) if '/$1' in c['Names']), ''))"
}
env_of() {  # env_of CONTAINER_ID: its Config.Env, one a line
  api "http://d/v1.41/containers/$1/json" | python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin)["Config"]["Env"]))'
}
file_in() {  # file_in CONTAINER_ID PATH: the file's content, through GET /archive
  api "http://d/v1.41/containers/$1/archive?path=$2" 2>/dev/null |
    python3 -c 'import sys, tarfile; t = tarfile.open(fileobj=sys.stdin.buffer, mode="r|"); m = next(iter(t)); print(t.extractfile(m).read().decode())' 2>/dev/null
}
