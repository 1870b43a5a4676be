#!/usr/bin/env bash
# End-to-end CLI test of the Kubernetes target (issue #10 item 4) against a
# REAL kube-apiserver v1.20 + etcd on loopback (tests/scripts/kube_lib.sh).
# reconcile talks to it as a service account whose RBAC is one Role in one
# namespace (deployments, services, secrets there; nothing else), to prove
# the provider needs no more. Then validate, plan, apply (Deployment +
# Service + Secret by server-side apply under the field manager reconcile),
# no-op, status (the Service's address), an in-place change, drift made with
# `kubectl patch` under another field manager (replicas, then an env value),
# heal (managedFields show reconcile again), rollback, the controller
# following the folder, prune and destroy limited to what the inventory AND
# the labels prove reconcile owns, and bad input naming file, line and field.
#
# There is no kubelet, scheduler or controller-manager: a small loop this
# test starts (fake_controller_manager below) writes each owned Deployment's
# `status` subresource as the deployment controller would once the rollout
# is done, so that the apply's health wait (observedGeneration, updated and
# available replicas) can finish. No pod ever runs.
#
# Needs: $RECONCILE, $SOURCE_DIR (set by CTest), python3; kube-apiserver,
# etcd, kubectl and helm through kube_lib.sh (scripts/kube-apiserver.sh,
# scripts/k8s-tools.sh): FAILS when one is missing. Stops only what it
# started, by pid.
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}"
work="$(mktemp -d)"
cm_pid=""
ctl_pid=""
passed=0
failed=0
cleanup() {
  [[ -n "$ctl_pid" ]] && kill "$ctl_pid" 2>/dev/null && wait "$ctl_pid" 2>/dev/null
  [[ -n "$cm_pid" ]] && kill "$cm_pid" 2>/dev/null && wait "$cm_pid" 2>/dev/null
  kube_stop 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=tests/scripts/lib.sh
source "$SOURCE_DIR/tests/scripts/lib.sh"
# shellcheck source=tests/scripts/kube_lib.sh
source "$SOURCE_DIR/tests/scripts/kube_lib.sh" || { echo "FAIL - kube_lib.sh"; exit 1; }
kube_start "$work/kube" --no-trap || { echo "FAIL - the API server did not start"; exit 1; }
K() { "$KUBECTL" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

# The namespace, and a deployer allowed exactly what the provider needs there.
K create namespace apps >/dev/null
K create namespace other >/dev/null
K apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: ServiceAccount
metadata: {name: deployer, namespace: apps}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reconcile-deployer, namespace: apps}
rules:
  - apiGroups: [apps]
    resources: [deployments]
    verbs: [get, list, create, patch, delete]
  - apiGroups: [""]
    resources: [services, secrets]
    verbs: [get, list, create, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reconcile-deployer, namespace: apps}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reconcile-deployer}
subjects:
  - {kind: ServiceAccount, name: deployer, namespace: apps}
YAML
token="$(kube_sa_token apps deployer)"
[[ -n "$token" ]] || { echo "FAIL - no service-account token"; exit 1; }
kube_kubeconfig "$work/deployer.kubeconfig" deployer "$token" apps
D() { "$KUBECTL" --kubeconfig "$work/deployer.kubeconfig" "$@"; }
for denied in "list deployments -n default" "create clusterroles" "get secrets -n other" \
  "list pods -n apps" "create namespaces"; do
  # shellcheck disable=SC2086
  if [[ "$(D auth can-i $denied 2>/dev/null)" == "no" ]]; then
    ok "the deployer may not: $denied"
  else
    bad "the deployer may: $denied"
  fi
done

# What the deployment controller would write (there is none): status of a
# finished rollout for every Deployment reconcile owns.
cat >"$work/fake_cm.py" <<'PY'
import json, ssl, sys, time, urllib.request
server, ca, token = sys.argv[1], sys.argv[2], open(sys.argv[3]).read().strip()
ctx = ssl.create_default_context(cafile=ca)
def call(method, path, body=None, ctype="application/json"):
    req = urllib.request.Request(server + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + token, "Content-Type": ctype})
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        return json.load(r)
while True:
    try:
        items = call("GET", "/apis/apps/v1/deployments?labelSelector=reconcile.dev%2Fmanaged-by%3Dreconcile")["items"]
        for d in items:
            m, s, st = d["metadata"], d["spec"], d.get("status", {})
            n = s.get("replicas", 1)
            want = {"observedGeneration": m["generation"], "replicas": n, "updatedReplicas": n,
                    "readyReplicas": n, "availableReplicas": n}
            if any(st.get(k) != v for k, v in want.items()):
                call("PATCH", "/apis/apps/v1/namespaces/%s/deployments/%s/status?fieldManager=kube-controller-manager"
                     % (m["namespace"], m["name"]), {"status": want}, "application/merge-patch+json")
    except Exception as e:
        print("fake controller-manager:", e, file=sys.stderr, flush=True)
    time.sleep(0.2)
PY
printf '%s' "$KUBE_ADMIN_TOKEN" >"$work/admin.token"
python3 "$work/fake_cm.py" "$KUBE_SERVER" "$KUBE_CA" "$work/admin.token" 2>"$work/cm.log" &
cm_pid=$!

# Objects reconcile does not own: a Deployment without labels, and one with
# the labels that no state records (neither is changed or deleted).
K -n apps create deployment someone-else --image=nginx:1.27 >/dev/null
K -n apps apply -f - >/dev/null <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: stray
  labels: {reconcile.dev/managed-by: reconcile, reconcile.dev/agent: stray, reconcile.dev/target: k8s}
spec:
  replicas: 1
  selector: {matchLabels: {app: stray}}
  template:
    metadata: {labels: {app: stray}}
    spec: {containers: [{name: stray, image: nginx:1.27}]}
YAML

canary="k8s-canary-$RANDOM-s3cr3t"
export RECONCILE_SECRET_WEB_TOKEN="$canary"
write_tree() {  # write_tree GREETING
  mkdir -p "$work/tree"
  cat >"$work/tree/target.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: k8s}
spec:
  provider: kubernetes
  kubernetes:
    kubeconfig: $work/deployer.kubeconfig
    namespace: apps
YAML
  cat >"$work/tree/web.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: web, labels: {team: support}}
spec:
  image: nginx:1.27
  target: k8s
  port: 8080
  replicas: 2
  env: {GREETING: "$1"}
  secretEnv: {API_TOKEN: {env: RECONCILE_SECRET_WEB_TOKEN}}
  healthCheck: {path: /healthz, interval: 5s, retries: 3}
  resources: {cpu: "0.25", memory: 64Mi}
  stopGracePeriod: 20s
  user: "101"
  strategy: {type: start-first}
YAML
}
R() { "$RECONCILE" --no-color "$@"; }
deploy() { K -n apps get deployment web -o json --show-managed-fields; }
jq_py() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
env_now() { deploy | jq_py "[e.get('value') for e in d['spec']['template']['spec']['containers'][0]['env'] if e['name']=='GREETING'][0]"; }

expect_exit 0 "validate examples/kubernetes" -- R validate "$SOURCE_DIR/examples/kubernetes"
write_tree "hello one"
expect_exit 0 "validate the tree" -- R validate "$work/tree"
expect_exit 2 "plan shows the create (exit 2)" -- R plan "$work/tree"
contains "plan names the agent" "agent.web" "$out"
expect_exit 0 "apply creates the Deployment, Service and Secret" -- R apply "$work/tree" --auto-approve
apply_out="$out"

dep="$(deploy)"
if python3 - "$dep" <<'PY'; then ok "the Deployment carries the labels, fields and a secretKeyRef"; else bad "the Deployment is not as expected" "$dep"; fi
import json, sys
d = json.loads(sys.argv[1]); m = d["metadata"]; l = m["labels"]
assert l["reconcile.dev/managed-by"] == "reconcile" and l["reconcile.dev/agent"] == "web", l
assert l["reconcile.dev/target"] == "k8s" and l["app.kubernetes.io/name"] == "web", l
assert l["app.kubernetes.io/managed-by"] == "reconcile" and l["team"] == "support", l
assert l["reconcile.dev/spec-hash"].startswith("sha256-"), l
assert m["annotations"]["reconcile.dev/spec-hash"].startswith("sha256:")
assert any(f["manager"] == "reconcile" and f["operation"] == "Apply" for f in m["managedFields"])
s = d["spec"]; c = s["template"]["spec"]["containers"][0]
assert s["replicas"] == 2 and s["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
assert c["image"] == "nginx:1.27" and c["securityContext"]["runAsUser"] == 101
assert s["template"]["spec"]["terminationGracePeriodSeconds"] == 20
assert c["resources"]["limits"]["memory"] == "64Mi"
assert c["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080, "scheme": "HTTP"}, c["readinessProbe"]
assert c["livenessProbe"]["periodSeconds"] == 5 and c["livenessProbe"]["failureThreshold"] == 3
env = {e["name"]: e for e in c["env"]}
assert env["GREETING"]["value"] == "hello one"
assert env["API_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "web.secrets", "key": "env.API_TOKEN"}
PY
lacks "no secret value in the Deployment" "$canary" "$dep"
svc="$(K -n apps get service web -o json)"
if python3 - "$svc" <<'PY'; then ok "the Service is ClusterIP, protocol TCP, owned"; else bad "the Service is not as expected" "$svc"; fi
import json, sys
s = json.loads(sys.argv[1])
assert s["spec"]["type"] == "ClusterIP" and s["spec"]["clusterIP"]
assert s["spec"]["ports"] == [{"name": "tcp-8080", "port": 8080, "protocol": "TCP", "targetPort": 8080}], s["spec"]["ports"]
assert s["metadata"]["labels"]["reconcile.dev/managed-by"] == "reconcile"
PY
secret_value="$(K -n apps get secret web.secrets -o json | jq_py "__import__('base64').b64decode(d['data']['env.API_TOKEN']).decode()")"
if [[ "$secret_value" == "$canary" ]]; then ok "the Secret holds the value"; else bad "the Secret does not hold the value"; fi
lacks "no secret value in apply's output" "$canary" "$apply_out"

# The Deployment and Service as the server holds them, against the
# Kubernetes v1.30 JSON Schemas (strict; tests/testdata/vectors/kubernetes).
K -n apps get deployment/web service/web -o json |
  python3 -c "import json,sys,yaml; print(yaml.safe_dump_all(json.load(sys.stdin)['items']))" >"$work/live.yaml"
expect_exit 0 "the Deployment and Service pass the v1.30 schemas" -- \
  python3 "$SOURCE_DIR/tests/scripts/helm_chart_check.py" validate \
  "$SOURCE_DIR/tests/testdata/vectors/kubernetes" "$work/live.yaml"
expect_exit 0 "plan after apply has no changes (exit 0)" -- R plan "$work/tree"
expect_exit 0 "status" -- R status "$work/tree"
contains "status shows the Service's address" "web.apps.svc:8080" "$out"
cluster_ip="$(K -n apps get service web -o jsonpath='{.spec.clusterIP}')"
contains "status shows the clusterIP" "$cluster_ip" "$out"
lacks "status does not show someone else's Deployment" "someone-else" "$out"

write_tree "hello two"
expect_exit 2 "plan shows the env change" -- R plan "$work/tree"
contains "the env change is in place" "will be updated in place" "$out"
expect_exit 0 "apply the change" -- R apply "$work/tree" --auto-approve
if [[ "$(env_now)" == "hello two" ]]; then ok "the Deployment has the new env"; else bad "env after update: $(env_now)"; fi

# Drift: another field manager changes replicas, then an env value.
expect_exit 0 "no drift after apply" -- R drift "$work/tree"
K -n apps patch deployment web --field-manager kubectl-patch --type merge -p '{"spec":{"replicas":5}}' >/dev/null
expect_exit 2 "drift after kubectl patch of replicas" -- R drift "$work/tree"
contains "drift names the agent and kind" "web: modified" "$out"
contains "drift names the field and the other manager" "spec.replicas: now managed by kubectl-patch" "$out"
expect_exit 2 "plan re-applies what drifted" -- R plan "$work/tree"
expect_exit 0 "apply heals the drift" -- R apply "$work/tree" --auto-approve
expect_exit 0 "no drift after healing" -- R drift "$work/tree"
owners="$(deploy | jq_py "sorted(f['manager'] for f in d['metadata']['managedFields'] if 'f:replicas' in f.get('fieldsV1', {}).get('f:spec', {}))")"
if [[ "$(deploy | jq_py "d['spec']['replicas']")" == "2" && "$owners" == "['reconcile']" ]]; then
  ok "replicas is 2 again and managed by reconcile alone"
else
  bad "after heal: replicas $(deploy | jq_py "d['spec']['replicas']"), owners $owners"
fi
K -n apps patch deployment web --field-manager kubectl-edit --type strategic \
  -p '{"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"name":"GREETING","value":"patched"}]}]}}}}' >/dev/null
expect_exit 2 "drift after kubectl patch of an env value" -- R drift "$work/tree"
contains "drift names the env field" "env[name=GREETING].value: now managed by kubectl-edit" "$out"
expect_exit 0 "apply heals the env" -- R apply "$work/tree" --auto-approve
if [[ "$(env_now)" == "hello two" ]]; then ok "the env value is back"; else bad "env after heal: $(env_now)"; fi
owners="$(deploy | jq_py "sorted(f['manager'] for f in d['metadata']['managedFields'] if 'GREETING' in json.dumps(f.get('fieldsV1')))")"
if [[ "$owners" == "['reconcile']" ]]; then ok "managedFields show reconcile alone on the env value"; else bad "env owners after heal: $owners"; fi

# Rollback: the revision before the live one ("hello one"), then pinned.
expect_exit 0 "rollback to the previous revision" -- R rollback "$work/tree" --auto-approve
if [[ "$(env_now)" == "hello one" ]]; then ok "rollback runs the first revision's env"; else bad "env after rollback: $(env_now)"; fi
expect_exit 0 "plan keeps the pinned revision (no changes)" -- R plan "$work/tree"

# The controller follows the folder: a new revision is applied within its interval.
write_tree "hello four"
"$RECONCILE" --no-color controller --repo "$work/tree" --listen 127.0.0.1:0 --interval 1s \
  --drift-interval 1h >"$work/ctl.log" 2>&1 &
ctl_pid=$!
for _ in $(seq 150); do [[ "$(env_now)" == "hello four" ]] && break; sleep 0.2; done
if [[ "$(env_now)" == "hello four" ]]; then
  ok "the controller applied the new revision to Kubernetes"
else
  bad "the controller did not apply it: env $(env_now)" "$(tail -20 "$work/ctl.log")"
fi
kill "$ctl_pid" 2>/dev/null && wait "$ctl_pid" 2>/dev/null
ctl_pid=""
lacks "no token in the controller's log" "$token" "$(cat "$work/ctl.log")"
lacks "no secret value in the controller's log" "$canary" "$(cat "$work/ctl.log")"

# Destroy: only what the inventory and the labels prove reconcile owns. The
# Service loses its labels first: it is left alone with a warning.
K -n apps label service web reconcile.dev/managed-by- >/dev/null
expect_exit 0 "destroy" -- R destroy "$work/tree" --auto-approve
contains "destroy warns about the unlabelled Service" "service web is left alone" "$out"
left="$(K -n apps get deployments -o jsonpath='{.items[*].metadata.name}')"
if [[ "$left" == "someone-else stray" ]]; then ok "destroy removed only the owned Deployment"; else bad "deployments left after destroy: $left"; fi
if K -n apps get secret web.secrets >/dev/null 2>&1; then bad "the Secret is still there"; else ok "the Secret is gone"; fi
if K -n apps get service web >/dev/null 2>&1; then ok "the unlabelled Service is left"; else bad "the unlabelled Service was deleted"; fi
expect_exit 0 "destroy again changes nothing" -- R destroy "$work/tree" --auto-approve

# Bad input: file, line and field; nothing changes.
mkdir -p "$work/bad"
cat >"$work/bad/target.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: k8s}
spec:
  provider: kubernetes
  kubernetes:
    kubeconfig: $work/deployer.kubeconfig
    inCluster: true
    namespce: apps
YAML
cat >"$work/bad/web.yaml" <<'YAML'
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: web}
spec:
  image: nginx:1.27
  target: k8s
  hostPort: 8080
  port: 80
YAML
expect_exit 1 "a bad Target block fails validate" -- R validate "$work/bad"
contains "names inCluster with file and line" "target.yaml:8:" "$out"
contains "names the unknown key" "spec.kubernetes.namespce" "$out"
sed -i '/inCluster/d;/namespce/d' "$work/bad/target.yaml"
expect_exit 1 "an agent field Kubernetes cannot carry fails validate" -- R validate "$work/bad"
contains "names hostPort" "spec.hostPort: Target 'k8s' is Kubernetes" "$out"
expect_exit 1 "apply of the bad tree fails" -- R apply "$work/bad" --auto-approve
if K -n apps get deployment web >/dev/null 2>&1; then bad "the bad tree created something"; else ok "the bad tree changed nothing"; fi

if grep -rqF "$canary" "$work/tree/.reconcile" 2>/dev/null; then bad "the secret value is in the state"; else ok "no secret value in the state"; fi
if grep -rqF "$token" "$work/tree/.reconcile" 2>/dev/null; then bad "the token is in the state"; else ok "no token in the state"; fi

echo "kubernetes_cli_test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
