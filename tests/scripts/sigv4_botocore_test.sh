#!/usr/bin/env bash
# SigV4, the App Runner endpoint rules and the container-credentials fetch,
# cross-checked against botocore (issue #7): sigv4_botocore_check.py signs
# App Runner requests (POST /, X-Amz-Target: AppRunner.CreateService, ...,
# JSON 1.0 body, with and without a session token) and generic and S3-mode
# requests with botocore's own SigV4Auth / S3SigV4Auth and compares them
# with reconcile_sigv4_tool (the reconcile_aws library); resolves the
# endpoint with botocore's EndpointProvider on the same rule set; and gets
# container credentials from a real HTTP server on loopback
# (sigv4_creds_server.py, started here and stopped by its pid), checking that
# no token or secret appears in the errors.
#
# Needs: $SOURCE_DIR, $BUILD_DIR (set by CTest), the reconcile_sigv4_tool
# target built, a python3 with botocore (Debian: python3-botocore; or set
# PYTHON3).
set -uo pipefail

: "${SOURCE_DIR:?}" "${BUILD_DIR:?}"
tool="$BUILD_DIR/tests/reconcile_sigv4_tool"
if [[ ! -x "$tool" ]]; then
  echo "sigv4_botocore: $tool is missing: cmake --build $BUILD_DIR --target reconcile_sigv4_tool"
  exit 1
fi
# The first python3 that can import botocore: $PYTHON3 if set, the one on
# PATH (e.g. a pyenv with pip's botocore), then Debian's /usr/bin/python3
# (python3-botocore, which scripts/bootstrap.sh installs). None: a failure,
# not a skip.
py=""
for cand in ${PYTHON3:+"$PYTHON3"} "$(command -v python3 || true)" /usr/bin/python3; do
  [[ -n "$cand" && -x "$cand" ]] || continue
  if "$cand" -c "import botocore" 2>/dev/null; then
    py="$cand"
    break
  fi
done
if [[ -z "$py" ]]; then
  echo "sigv4_botocore: FAIL: no python3 can import botocore; install it (scripts/bootstrap.sh, or apt-get install -y python3-botocore) or set PYTHON3"
  exit 1
fi
echo "sigv4_botocore: using $py ($("$py" -c 'import botocore; print("botocore", botocore.__version__)'))"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

"$py" "$SOURCE_DIR/tests/scripts/sigv4_creds_server.py" "$work/port" CANARYauth &
server_pid=$!
for _ in $(seq 100); do [[ -s "$work/port" ]] && break; sleep 0.05; done
if [[ ! -s "$work/port" ]]; then
  echo "sigv4_botocore: the credentials server did not start"
  exit 1
fi

"$py" "$SOURCE_DIR/tests/scripts/sigv4_botocore_check.py" "$tool" \
  "$SOURCE_DIR/tests/testdata/vectors/api-models/aws-apprunner-endpoint-rule-set-1.json" \
  "http://127.0.0.1:$(cat "$work/port")"
