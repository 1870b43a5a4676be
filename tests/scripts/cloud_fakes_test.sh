#!/usr/bin/env bash
# The fake cloud servers (tests/fakes/clouds) and the API-model checker:
# runs their Python unittest file. Needs python3 with boto3/botocore,
# cryptography (the fakes stop every server they start, by pid).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/lib.sh"
passed=0 failed=0
root="$(cd "$here/../.." && pwd)"
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ in the source tree

missing="$(python3 -c 'import boto3, botocore, cryptography' 2>&1)"
if [[ -n "$missing" ]]; then
  bad "python3 lacks a module the fakes need (pip/apt: python3-boto3, python3-cryptography)" "$missing"
  exit 1
fi

# unittest takes a file path only below the working folder: run it from its own.
expect_exit 0 "the fakes' unittest file passes" -- env -C "$root/tests/fakes/clouds" python3 -m unittest -v test_fakes
[[ $code -ne 0 ]] && sed 's/^/    /' <<<"$out" | tail -60
contains "unittest ran the App Runner boto3 lifecycle" "test_lifecycle_with_boto3" "$out"
contains "unittest ran the model checks" "ModelCheckAzure" "$out"
lacks "no test was skipped" "skipped" "$out"

# The command-line checker: a known-bad request exits 1 and names the problem.
body="$(mktemp)"
trap 'rm -f "$body"' EXIT
printf '{"location":"westeurope","properties":{"provisioningState":"Succeeded"}}' >"$body"
expect_exit 1 "model_check.py refuses an output-only field" -- \
  python3 "$root/tests/fakes/clouds/model_check.py" azure PUT \
  "/subscriptions/s/resourceGroups/rg/providers/Microsoft.App/containerApps/x?api-version=2025-07-01" "$body"
contains "model_check.py names the field" "properties.provisioningState: output-only" "$out"
printf '{"location":"westeurope"}' >"$body"
expect_exit 0 "model_check.py accepts a valid request" -- \
  python3 "$root/tests/fakes/clouds/model_check.py" azure PUT \
  "/subscriptions/s/resourceGroups/rg/providers/Microsoft.App/containerApps/x?api-version=2025-07-01" "$body"

echo "cloud_fakes: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
