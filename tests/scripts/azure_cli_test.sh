#!/usr/bin/env bash
# End to end through the CLI on Azure Container Apps, against the fake ARM
# server (tests/fakes/clouds/containerapps_fake.py, started here on an
# ephemeral loopback port and stopped by its pid): validate, plan, apply,
# plan again (no changes), status (the app's URL), an in-place update (a new
# revision), drift (the image changed through the fake's API), destroy, and a
# run without credentials (exit 1, one message naming what to set). A secret
# env value and the client secret are canaries: they never appear in any
# output or in the state. At the end the fake's log must show no request
# that failed the API model's check.
#
# Needs: $RECONCILE (the binary), $SOURCE_DIR (set by CTest), python3.
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}"
export PYTHONDONTWRITEBYTECODE=1
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

tenant=00000000-0000-0000-0000-000000000001
client=00000000-0000-0000-0000-0000000000c1
client_secret="CANARY-cli-client-secret-93b1"
secret_value="CANARY-cli-secret-env-value-c0ffee"
static_token="static-token-of-the-azure-cli-test"
sub=11111111-2222-3333-4444-555555555555

python3 "$SOURCE_DIR/tests/fakes/clouds/containerapps_fake.py" --port-file "$work/port" \
  --log "$work/fake.jsonl" --retry-after 0 --azure-tenant "$tenant" --azure-client-id "$client" \
  --azure-client-secret "$client_secret" --azure-token "$static_token" &
fake_pid=$!
for _ in $(seq 1 200); do [[ -s "$work/port" ]] && break; sleep 0.05; done
port="$(cat "$work/port" 2>/dev/null)"
[[ -n "$port" ]] || { echo "the fake did not start"; exit 1; }
base="http://127.0.0.1:$port"
app_url="$base/subscriptions/$sub/resourceGroups/rg-cli/providers/Microsoft.App/containerApps/hello?api-version=2025-07-01"
arm() { curl -sS -H "Authorization: Bearer $static_token" -H 'Content-Type: application/json' "$@"; }
control() { curl -sS "$base/_fake/$1"; }

write_tree() {  # write_tree GREETING [AUTH_ENDPOINT]
  mkdir -p "$work/tree"
  cat >"$work/tree/azure.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: cloud}
spec:
  provider: azure
  azure:
    subscriptionId: $sub
    resourceGroup: rg-cli
    environmentName: env-cli
    location: westeurope
    endpoint: $base
    authEndpoint: ${2:-$base}
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: hello}
spec:
  image: mcr.microsoft.com/k8se/quickstart:latest
  target: cloud
  port: 80
  env: {GREETING: "$1"}
  secretEnv:
    API_KEY: {env: RECONCILE_SECRET_API_KEY}
  healthCheck: {path: /, interval: 10s, timeout: 3s, retries: 3}
  strategy: {type: start-first}
YAML
}
export AZURE_TENANT_ID="$tenant" AZURE_CLIENT_ID="$client" AZURE_CLIENT_SECRET="$client_secret"
export RECONCILE_SECRET_API_KEY="$secret_value"
R() { "$RECONCILE" --no-color "$@"; }
all=""  # every output, for the canaries

write_tree "hello"
expect_exit 0 "validate accepts the example" -- R validate "$SOURCE_DIR/examples/azure"
expect_exit 0 "validate accepts the tree" -- R validate "$work/tree"
expect_exit 2 "plan on an empty cloud has changes" -- R plan "$work/tree"
all+="$out"
contains "plan creates the agent" 'agent "hello"' "$out"
contains "plan counts one to add" "1 to add" "$out"
expect_exit 0 "apply creates the container app" -- R apply "$work/tree" --auto-approve
all+="$out"
state="$(control state)"
contains "the fake holds the app, tagged as reconcile's" '"reconcile.dev-managed-by": "reconcile"' "$state"
expect_exit 0 "plan after apply: no changes" -- R plan "$work/tree"
all+="$out"
expect_exit 0 "status" -- R status "$work/tree"
all+="$out"
contains "status shows the app's URL" "https://hello." "$out"

write_tree "hello again"
expect_exit 2 "plan shows the env change" -- R plan "$work/tree"
all+="$out"
contains "the change is in place" "1 to change" "$out"
expect_exit 0 "apply updates in place" -- R apply "$work/tree" --auto-approve
all+="$out"
contains "the fake serves the new env value" '"hello again"' "$(control state)"
expect_exit 0 "no drift after apply" -- R drift "$work/tree"
all+="$out"

# Someone changes the image through the API (the tags stay).
arm "$app_url" | python3 -c '
import json, sys
app = json.load(sys.stdin)
for k in ("id", "name", "type", "systemData"):
    app.pop(k, None)
p = app["properties"]
for k in ("provisioningState", "runningStatus", "latestRevisionName", "latestRevisionFqdn",
          "latestReadyRevisionName", "outboundIpAddresses", "customDomainVerificationId",
          "eventStreamEndpoint"):
    p.pop(k, None)
p["configuration"]["ingress"].pop("fqdn", None)
for s in p["configuration"].get("secrets", []):
    s["value"] = "replaced-by-hand"
p["template"]["containers"][0]["image"] = "mcr.microsoft.com/k8se/quickstart:other"
json.dump(app, sys.stdout)' >"$work/changed.json"
code_put="$(arm -o /dev/null -w '%{http_code}' -X PUT --data-binary "@$work/changed.json" "$app_url")"
[[ "$code_put" == 201 ]] && ok "the image is changed through the API" || bad "PUT by hand: $code_put"
for _ in 1 2 3 4; do arm -o /dev/null "$app_url"; done  # let its operation finish
expect_exit 2 "drift sees the changed image" -- R drift "$work/tree"
all+="$out"
contains "drift says modified" "modified" "$out"
expect_exit 0 "apply repairs it" -- R apply "$work/tree" --auto-approve
all+="$out"
contains "the image is the tree's again" '"mcr.microsoft.com/k8se/quickstart:latest"' "$(control state)"

# Rollback: the revision before the live one ("hello"), then pinned.
greeting() {
  control state | python3 -c '
import json, sys
for app in json.load(sys.stdin).values():
    for e in app["properties"]["template"]["containers"][0].get("env", []):
        if e.get("name") == "GREETING":
            print(e.get("value", ""))'
}
expect_exit 0 "rollback to the previous revision" -- R rollback "$work/tree" --auto-approve
all+="$out"
if [[ "$(greeting)" == hello ]]; then ok "rollback serves the first revision's env"
else bad "after rollback: $(greeting)"; fi
expect_exit 0 "plan keeps the pinned revision (no changes)" -- R plan "$work/tree"

# The controller follows the folder: a new revision within its interval.
write_tree "hello from the controller"
"$RECONCILE" --no-color controller --repo "$work/tree" --listen 127.0.0.1:0 --interval 1s \
  --drift-interval 1h >"$work/ctl.log" 2>&1 &
ctl_pid=$!
for _ in $(seq 150); do [[ "$(greeting)" == "hello from the controller" ]] && break; sleep 0.2; done
if [[ "$(greeting)" == "hello from the controller" ]]; then
  ok "the controller applied the new revision to Container Apps"
else bad "the controller did not apply it" "$(tail -20 "$work/ctl.log")"; fi
kill "$ctl_pid" 2>/dev/null && wait "$ctl_pid" 2>/dev/null
ctl_pid=""
all+="$(cat "$work/ctl.log")"

expect_exit 0 "destroy deletes the app" -- R destroy "$work/tree" --auto-approve
all+="$out"
[[ "$(control state)" == "{}" ]] && ok "the fake holds nothing" || bad "the fake still holds" "$(control state)"
expect_exit 0 "destroy again is a no-op" -- R destroy "$work/tree" --auto-approve

# No credentials: one message naming the variables (the managed identity's
# metadata service is asked at authEndpoint, a closed loopback port).
closed="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
write_tree "hello" "http://127.0.0.1:$closed"
expect_exit 1 "plan without credentials exits 1" -- \
  env -u AZURE_TENANT_ID -u AZURE_CLIENT_ID -u AZURE_CLIENT_SECRET "$RECONCILE" --no-color plan "$work/tree"
contains "the message names the variables to set" \
  "set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET" "$out"

lacks "no output holds the client secret" "$client_secret" "$all"
lacks "no output holds the secret env value" "$secret_value" "$all"
lacks "the state holds no secret value" "$secret_value" "$(cat "$work"/tree/.reconcile/*.json 2>/dev/null)"
problems="$(control problems)"
[[ "$problems" == "[]" ]] && ok "every request passed the API model's check" || bad "model-check problems" "$problems"

echo "azure_cli: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
