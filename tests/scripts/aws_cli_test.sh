#!/usr/bin/env bash
# End-to-end CLI test of the AWS App Runner provider against the App Runner
# fake (tests/fakes/clouds/apprunner_fake.py, started here on an ephemeral
# loopback port, stopped by its pid): validate, plan, apply, status, a
# change in place, drift (a tag changed behind reconcile's back), destroy,
# and a run without credentials (exit 1, one message naming what to set).
# At the end, no request the engine sent had a problem against the official
# App Runner model.
#
# Needs: $RECONCILE (the binary), $SOURCE_DIR (set by CTest), python3 with
# botocore.
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}"
work="$(mktemp -d)"
fake_pid=""
ctl_pid=""
passed=0
failed=0

cleanup() {
  [[ -n "$ctl_pid" ]] && kill "$ctl_pid" 2>/dev/null && wait "$ctl_pid" 2>/dev/null
  [[ -n "$fake_pid" ]] && kill "$fake_pid" 2>/dev/null && wait "$fake_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=tests/scripts/lib.sh
source "$SOURCE_DIR/tests/scripts/lib.sh"

key_id=AKIDFAKEEXAMPLE
secret="CliCanarySecret+$(printf '%04x%04x' $RANDOM $RANDOM)"
python3 "$SOURCE_DIR/tests/fakes/clouds/apprunner_fake.py" --port-file "$work/port" \
  --log "$work/log.jsonl" --aws-key-id "$key_id" --aws-secret "$secret" --ready-after 1 &
fake_pid=$!
for _ in $(seq 1 200); do [[ -s "$work/port" ]] && break; sleep 0.05; done
port="$(cat "$work/port" 2>/dev/null)"
[[ -n "$port" ]] || { echo "the App Runner fake did not start"; exit 1; }
url="http://127.0.0.1:$port"

mkdir -p "$work/home"
export HOME="$work/home"  # no ~/.aws of the machine
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_APPRUNNER \
  AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
export AWS_ACCESS_KEY_ID="$key_id" AWS_SECRET_ACCESS_KEY="$secret"
R() { "$RECONCILE" --no-color "$@"; }

write_tree() {  # write_tree GREETING
  mkdir -p "$work/tree"
  cat >"$work/tree/target.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: apprunner}
spec:
  provider: aws
  aws: {region: us-east-1, endpoint: "$url", cpu: 1 vCPU, memory: 2 GB}
YAML
  cat >"$work/tree/agent.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: hello-cloud, labels: {team: cx}}
spec:
  image: public.ecr.aws/nginx/nginx:1.27
  target: apprunner
  port: 80
  env: {GREETING: "$1"}
  healthCheck: {path: /, interval: 5s, timeout: 2s, retries: 3}
  strategy: {type: start-first}
YAML
}
state() { curl -fsS "$url/_fake/state"; }
ours() {  # ours FIELD: the Status / ARN / image of our service (the one not DELETED)
  state | python3 -c "
import json, sys
for arn, s in json.load(sys.stdin).items():
    svc = s['Service']
    if svc['ServiceName'] == 'hello-cloud' and svc['Status'] != 'DELETED':
        print({'arn': arn, 'status': svc['Status'],
               'image': svc['SourceConfiguration']['ImageRepository']['ImageIdentifier'],
               'greeting': svc['SourceConfiguration']['ImageRepository']['ImageConfiguration']
                   .get('RuntimeEnvironmentVariables', {}).get('GREETING', '')}['$1'])
        break"
}

# --- the example and a tree --------------------------------------------------
expect_exit 0 "examples/aws validates" -- R validate "$SOURCE_DIR/examples/aws"
write_tree one
expect_exit 0 "validate the tree" -- R validate "$work/tree"
expect_exit 2 "plan shows the create (exit 2)" -- R plan "$work/tree"
contains "plan names the agent" 'agent "hello-cloud"' "$out"
expect_exit 0 "apply creates the App Runner service" -- R apply "$work/tree" --auto-approve
arn="$(ours arn)"
if [[ "$arn" == arn:aws:apprunner:us-east-1:* && "$(ours status)" == RUNNING ]]; then
  ok "the service runs ($arn)"
else bad "no running service: $(state)"; fi
expect_exit 0 "a second apply" -- R apply "$work/tree" --auto-approve
contains "a second apply changes nothing" "No changes." "$out"
expect_exit 0 "plan after apply is empty (exit 0)" -- R plan "$work/tree"
expect_exit 0 "status" -- R status "$work/tree"
contains "status names the agent" "hello-cloud" "$out"
contains "status shows the service URL" "awsapprunner.com" "$out"

# --- a change in place: the same service, a new deployment -------------------
write_tree two
expect_exit 2 "plan shows the env change" -- R plan "$work/tree"
contains "the change is in place" 'env.GREETING = "one" -> "two"' "$out"
lacks "the env change does not force a replacement" "forces replacement" "$out"
expect_exit 0 "apply the change" -- R apply "$work/tree" --auto-approve
if [[ "$(ours arn)" == "$arn" && "$(ours greeting)" == two ]]; then
  ok "the same service now serves the new env"
else bad "not updated in place: $(state)"; fi

# --- drift: the spec-hash tag changed behind reconcile's back -----------------
expect_exit 0 "no drift after apply" -- R drift "$work/tree"
python3 - "$url" "$arn" "$key_id" "$secret" <<'PY' || bad "TagResource through botocore failed"
import sys
import botocore.session
url, arn, key, secret = sys.argv[1:]
c = botocore.session.get_session().create_client(
    "apprunner", region_name="us-east-1", endpoint_url=url,
    aws_access_key_id=key, aws_secret_access_key=secret)
c.tag_resource(ResourceArn=arn, Tags=[{"Key": "reconcile.dev/spec-hash", "Value": "sha256:" + "0" * 64}])
PY
expect_exit 2 "drift sees the changed service (exit 2)" -- R drift "$work/tree"
contains "drift names the agent" "hello-cloud" "$out"

# --- rollback: the revision before the live one, pinned -----------------------
expect_exit 0 "rollback to the previous revision" -- R rollback "$work/tree" --auto-approve
if [[ "$(ours greeting)" == one ]]; then ok "rollback serves the first revision's env"
else bad "after rollback: $(state)"; fi
expect_exit 0 "plan keeps the pinned revision (no changes)" -- R plan "$work/tree"

# --- the controller follows the folder: a new revision within its interval ----
write_tree three
"$RECONCILE" --no-color controller --repo "$work/tree" --listen 127.0.0.1:0 --interval 1s \
  --drift-interval 1h >"$work/ctl.log" 2>&1 &
ctl_pid=$!
for _ in $(seq 150); do [[ "$(ours greeting)" == three ]] && break; sleep 0.2; done
if [[ "$(ours greeting)" == three ]]; then ok "the controller applied the new revision to App Runner"
else bad "the controller did not apply it" "$(tail -20 "$work/ctl.log")"; fi
kill "$ctl_pid" 2>/dev/null && wait "$ctl_pid" 2>/dev/null
ctl_pid=""
lacks "no secret key in the controller's log" "$secret" "$(cat "$work/ctl.log")"

# --- destroy -------------------------------------------------------------------
expect_exit 0 "destroy" -- R destroy "$work/tree" --auto-approve
if [[ -z "$(ours arn)" ]]; then ok "the service is deleted"; else bad "still there: $(state)"; fi
expect_exit 0 "destroy again is a no-op" -- R destroy "$work/tree" --auto-approve

# --- no credentials: exit 1, one clear message ---------------------------------
write_tree one
expect_exit 1 "plan without credentials exits 1" -- \
  env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$RECONCILE" --no-color plan "$work/tree"
contains "the message names the variables" "AWS_ACCESS_KEY_ID" "$out"
contains "the message names the files" ".aws/credentials" "$out"

# --- nothing secret anywhere, no model problem --------------------------------
lacks "the secret key is in no output" "$secret" "$(cat "$work/tree/.reconcile/"*.json 2>/dev/null; R status "$work/tree" 2>&1)"
if grep -qF -- "$secret" "$work/log.jsonl"; then bad "the secret key is in the fake's log"; else ok "the secret key is not in the request log"; fi
problems="$(curl -fsS "$url/_fake/problems")"
if [[ "$problems" == "[]" ]]; then ok "no request had a problem against the App Runner model"; else bad "model problems" "$problems"; fi
requests="$(grep -c '"kind": "api"' "$work/log.jsonl")"
if [[ "$requests" -gt 5 ]]; then ok "the engine sent $requests API requests"; else bad "only $requests API requests logged"; fi

echo "aws_cli_test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
