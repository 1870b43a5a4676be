#!/usr/bin/env bash
# End-to-end CLI test of the Cloud Run provider against the fake Cloud Run v2
# API (tests/fakes/clouds/cloudrun_fake.py, loopback, ephemeral port): a
# service-account key signed by a key the fake verifies, endpoint overrides
# in the Target, then validate, plan, apply, status, an in-place update,
# drift (a change made through the API), rollback, the controller following
# the folder, destroy, and a run without
# credentials (exit 1, one message naming what to set). Every request the
# binary sent is checked against the official API model by the fake: none
# may have a problem.
#
# Needs: $RECONCILE (the binary), $SOURCE_DIR (set by CTest), python3 with
# cryptography and botocore. Stops only the fake it started, by pid.
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

# A service-account key and its public half.
python3 - "$work" <<'PY' || { echo "cannot make a key (python3 cryptography)"; exit 1; }
import json, sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
d = sys.argv[1]
k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
pem = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                      serialization.NoEncryption()).decode()
open(d + "/pub.pem", "wb").write(k.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
json.dump({"type": "service_account", "project_id": "demo-project", "private_key_id": "k1",
           "private_key": pem, "client_email": "deployer@demo-project.iam.gserviceaccount.com",
           "token_uri": "https://oauth2.googleapis.com/token"}, open(d + "/key.json", "w"))
PY

token="cli-test-static-token"
python3 "$SOURCE_DIR/tests/fakes/clouds/cloudrun_fake.py" --port-file "$work/port" \
  --log "$work/log.jsonl" --gcp-public-key "$work/pub.pem" \
  --gcp-client-email deployer@demo-project.iam.gserviceaccount.com --gcp-token "$token" \
  --ready-after 1 &
fake_pid=$!
for _ in $(seq 100); do [[ -s "$work/port" ]] && break; sleep 0.1; done
[[ -s "$work/port" ]] || { echo "the fake did not start"; exit 1; }
base="http://127.0.0.1:$(cat "$work/port")"
parent="/v2/projects/demo-project/locations/europe-west1"
api() {  # api METHOD PATH [BODY]: the Cloud Run API with the fake's static token
  curl -sS -X "$1" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    ${3:+--data "$3"} "$base$2"
}
fake_state() { curl -sS "$base/_fake/state"; }

write_tree() {  # write_tree GREETING [AUTH]: the Target (with overrides) and one agent
  mkdir -p "$work/tree"
  cat >"$work/tree/target.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: cloudrun}
spec:
  provider: gcp
  gcp:
    projectId: demo-project
    region: europe-west1
    endpoint: $base
${2:-    authEndpoint: $base}
YAML
  cat >"$work/tree/hello.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: hello}
spec:
  image: us-docker.pkg.dev/cloudrun/container/hello:latest
  target: cloudrun
  port: 8080
  env: {GREETING: "$1"}
  healthCheck: {path: /, interval: 10s, retries: 3}
  strategy: {type: start-first}
YAML
}
export GOOGLE_APPLICATION_CREDENTIALS="$work/key.json"
unset GCE_METADATA_HOST
R() { "$RECONCILE" --no-color "$@"; }

# A service reconcile does not own: left alone throughout.
api POST "$parent/services?serviceId=someone-else" \
  '{"template": {"containers": [{"image": "nginx:1.27"}]}}' >/dev/null

expect_exit 0 "validate examples/gcp" -- R validate "$SOURCE_DIR/examples/gcp"
write_tree "hello one"
expect_exit 0 "validate the tree" -- R validate "$work/tree"
expect_exit 2 "plan shows the create (exit 2)" -- R plan "$work/tree"
contains "plan names the agent" "agent.hello" "$out"
contains "plan says create" "create" "$out"
expect_exit 0 "apply creates the service" -- R apply "$work/tree" --auto-approve
state="$(fake_state)"
if python3 -c "import json,sys; s=json.loads(sys.argv[1])['services']; h=s['projects/demo-project/locations/europe-west1/services/hello']; assert h['labels']['reconcile-dev_managed-by']=='reconcile'; assert h['template']['containers'][0]['env']==[{'name':'GREETING','value':'hello one'}]" "$state"; then
  ok "the service exists with the ownership label and the env"
else
  bad "the service is not as expected" "$state"
fi
expect_exit 0 "plan after apply has no changes (exit 0)" -- R plan "$work/tree"
expect_exit 0 "status" -- R status "$work/tree"
contains "status shows the service URL" ".a.run.app" "$out"
lacks "status does not show the other service" "someone-else" "$out"

write_tree "hello two"
expect_exit 2 "plan shows the env change" -- R plan "$work/tree"
contains "the env change is in place" "will be updated in place" "$out"
contains "the plan counts one change, no replace" "1 to change, 0 to replace" "$out"
expect_exit 0 "apply the update (a new revision)" -- R apply "$work/tree" --auto-approve
gen="$(fake_state | python3 -c "import json,sys; h=json.load(sys.stdin)['services']['projects/demo-project/locations/europe-west1/services/hello']; print(h['generation'], h['template']['containers'][0]['env'][0]['value'], h['latestReadyRevision']==h['latestCreatedRevision'])")"
if [[ "$gen" == "2 hello two True" ]]; then ok "generation 2 serves the new env"; else bad "after update: $gen"; fi

expect_exit 0 "no drift after apply" -- R drift "$work/tree"
api PATCH "$parent/services/hello?updateMask=template.containers" \
  '{"template": {"containers": [{"image": "nginx:1.27"}]}}' >/dev/null
expect_exit 2 "drift after the image changed outside reconcile" -- R drift "$work/tree"
contains "drift names the agent and kind" "hello: modified" "$out"
contains "drift says the change was made outside" "changed outside reconcile" "$out"
expect_exit 2 "plan replaces what drifted" -- R plan "$work/tree"
contains "the drifted service is replaced" "1 to replace" "$out"
expect_exit 0 "apply heals the drift" -- R apply "$work/tree" --auto-approve
expect_exit 0 "no drift after healing" -- R drift "$work/tree"
img="$(fake_state | python3 -c "import json,sys; print(json.load(sys.stdin)['services']['projects/demo-project/locations/europe-west1/services/hello']['template']['containers'][0]['image'])")"
if [[ "$img" == "us-docker.pkg.dev/cloudrun/container/hello:latest" ]]; then ok "the image is back"; else bad "image after heal: $img"; fi

# Rollback: the revision before the live one ("hello one"), then pinned.
env_now() {
  fake_state | python3 -c "import json,sys; h=json.load(sys.stdin)['services']['projects/demo-project/locations/europe-west1/services/hello']; print(h['template']['containers'][0]['env'][0]['value'])"
}
expect_exit 0 "rollback to the previous revision" -- R rollback "$work/tree" --auto-approve
if [[ "$(env_now)" == "hello one" ]]; then ok "rollback serves the first revision's env"; else bad "env after rollback: $(env_now)"; fi
expect_exit 0 "plan keeps the pinned revision (no changes)" -- R plan "$work/tree"

# The controller follows the folder: a new revision is applied within its
# interval (and ends the pin).
write_tree "hello four"
"$RECONCILE" --no-color controller --repo "$work/tree" --listen 127.0.0.1:0 --interval 1s \
  --drift-interval 1h >"$work/ctl.log" 2>&1 &
ctl_pid=$!
for _ in $(seq 150); do [[ "$(env_now)" == "hello four" ]] && break; sleep 0.2; done
if [[ "$(env_now)" == "hello four" ]]; then
  ok "the controller applied the new revision to Cloud Run"
else
  bad "the controller did not apply it: env $(env_now)" "$(tail -20 "$work/ctl.log")"
fi
kill "$ctl_pid" 2>/dev/null && wait "$ctl_pid" 2>/dev/null
ctl_pid=""
lacks "no token in the controller's log" "$token" "$(cat "$work/ctl.log")"

expect_exit 0 "destroy" -- R destroy "$work/tree" --auto-approve
left="$(fake_state | python3 -c "import json,sys; print(' '.join(sorted(k.rsplit('/',1)[1] for k in json.load(sys.stdin)['services'])))")"
if [[ "$left" == "someone-else" ]]; then ok "destroy removed only the owned service"; else bad "left after destroy: $left"; fi
expect_exit 0 "destroy again changes nothing" -- R destroy "$work/tree" --auto-approve

# No credentials: no key, and no metadata server (a closed loopback port).
write_tree "hello three" "    # no authEndpoint"
rm -rf "$work/tree/.reconcile"
out="$(env -u GOOGLE_APPLICATION_CREDENTIALS GCE_METADATA_HOST=127.0.0.1:1 "$RECONCILE" --no-color plan "$work/tree" 2>&1)"
code=$?
if [[ $code -eq 1 ]]; then ok "missing credentials exit 1"; else bad "missing credentials: exit $code, want 1" "$out"; fi
contains "the message names GOOGLE_APPLICATION_CREDENTIALS" "set GOOGLE_APPLICATION_CREDENTIALS" "$out"
lacks "no private key in the output" "PRIVATE KEY" "$out"

problems="$(curl -sS "$base/_fake/problems")"
if [[ "$problems" == "[]" ]]; then ok "no request had a model-check problem"; else bad "model-check problems" "$problems"; fi
requests="$(curl -sS "$base/_fake/log" | python3 -c "import json,sys; print(sum(1 for e in json.load(sys.stdin) if e['kind']=='api'))")"
if [[ "$requests" -gt 10 ]]; then ok "the binary sent $requests API requests"; else bad "only $requests API requests"; fi
if grep -q "$token" "$work/log.jsonl"; then bad "the token is in the fake's log"; else ok "no token in the fake's log"; fi

echo "gcp_cli_test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
