#!/usr/bin/env bash
# charts/reconcile, checked for real (issue #10 items 1 and 2):
#   1. Chart.yaml's appVersion is the project version; the chart README's
#      values table, values.yaml and values.schema.json agree both ways; no
#      value takes a secret (schema audit).
#   2. `helm lint --strict` with the default values and each ci/*-values.yaml;
#      every file of ci/refused/ is refused (values.schema.json, or the
#      chart's own check), naming the value.
#   3. `helm template` of each: every manifest valid against the Kubernetes
#      v1.30 schemas (tests/testdata/vectors/kubernetes; the ServiceMonitor
#      against its CRD's schema), and what the Deployment, RBAC, Ingress,
#      PDB, claim and CronJob must say, checked field by field; canary
#      secret values put in through every secret-looking key are refused and
#      appear in no output.
#   4. `helm install`, `helm upgrade`, `helm uninstall` into a real
#      kube-apiserver (tests/scripts/kube_lib.sh; no kubelet, so no pod runs:
#      the test checks what the API server stored), and `kubectl auth can-i
#      --as system:serviceaccount:NS:SA` plus real requests with the
#      ServiceAccount's token: what the controller may do and may not do.
# Fails (never skips) when helm, kubectl, the API server or Python's
# jsonschema is missing.
set -uo pipefail

SOURCE_DIR="${SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
source "$SOURCE_DIR/tests/scripts/lib.sh"
passed=0 failed=0
chart="$SOURCE_DIR/charts/reconcile"
schemas="$SOURCE_DIR/tests/testdata/vectors/kubernetes"
check_py="$SOURCE_DIR/tests/scripts/helm_chart_check.py"

die() { echo "FAIL - $*"; exit 1; }

tools="$("$SOURCE_DIR/scripts/k8s-tools.sh")" || die "scripts/k8s-tools.sh could not provide helm and kubectl"
HELM="$tools/helm"
KUBECTL="$tools/kubectl"
[[ -x "$HELM" && -x "$KUBECTL" ]] || die "no helm or kubectl in $tools"
PY=""
for p in /usr/bin/python3 python3; do
  if command -v "$p" >/dev/null && "$p" -c 'import jsonschema, yaml' 2>/dev/null; then PY="$p"; break; fi
done
[[ -n "$PY" ]] || die "neither /usr/bin/python3 nor python3 has jsonschema and yaml (apt-get install python3-jsonschema python3-yaml)"
echo "# helm $("$HELM" version --short), kubectl $("$KUBECTL" version --client -o json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])'), $PY"

work="$(mktemp -d "${TMPDIR:-/tmp}/helm-chart-test.XXXXXX")"
# Helm's and kubectl's folders in the scratch dir: nothing of the user's is
# read or written.
export HELM_CACHE_HOME="$work/helm/cache" HELM_CONFIG_HOME="$work/helm/config" HELM_DATA_HOME="$work/helm/data"
export KUBECACHEDIR="$work/kube-cache"  # kubectl's and helm's discovery cache
kube_started=""
cleanup() {
  [[ -n "$kube_started" ]] && kube_stop
  rm -rf "$work"
}
trap cleanup EXIT

q() { "$PY" "$check_py" query "$@"; }  # q RENDERED EXPR -> JSON
is() {  # is NAME WANT GOT
  if [[ "$2" == "$3" ]]; then ok "$1"; else bad "$1: got $3, want $2"; fi
}

# --- 1. metadata, README table, schema audit ---------------------------------
project_version="$(sed -n 's/^project(reconcile VERSION \([0-9.]*\).*/\1/p' "$SOURCE_DIR/CMakeLists.txt")"
app_version="$(sed -n 's/^appVersion: "\(.*\)"$/\1/p' "$chart/Chart.yaml")"
is "Chart.yaml appVersion is the project version (CMakeLists.txt)" "$project_version" "$app_version"
expect_exit 0 "README values table = values.yaml = values.schema.json" -- \
  "$PY" "$check_py" table "$chart/README.md" "$chart/values.yaml" "$chart/values.schema.json"
[[ $code -eq 0 ]] || echo "$out"
expect_exit 0 "values.schema.json: no value takes a secret" -- "$PY" "$check_py" audit "$chart/values.schema.json"
[[ $code -eq 0 ]] || echo "$out"
# The table check can fail: a README without one row must be caught.
grep -v '^| `controller.grace` ' "$chart/README.md" >"$work/README-missing-row.md"
expect_exit 1 "table check catches a value missing from the README" -- \
  "$PY" "$check_py" table "$work/README-missing-row.md" "$chart/values.yaml" "$chart/values.schema.json"
contains "  ... and names it" "controller.grace" "$out"

# --- 2. lint ------------------------------------------------------------------
value_files=("$chart"/ci/*-values.yaml)
[[ ${#value_files[@]} -ge 6 ]] || bad "ci/ holds ${#value_files[@]} value files, want at least 6"
expect_exit 0 "helm lint --strict (default values)" -- "$HELM" lint --strict "$chart"
for f in "${value_files[@]}"; do
  expect_exit 0 "helm lint --strict -f ci/$(basename "$f")" -- "$HELM" lint --strict "$chart" -f "$f"
done
# Refused: the schema names the value at fault; nothing is rendered.
declare -A refused_says=(
  [typo-key.yaml]="replicas"
  [secret-value.yaml]="password"
  [bad-duration.yaml]="interval"
  [bad-type.yaml]="replicaCount"
  [two-replicas-rwo.yaml]="ReadWriteMany"
)
# The chart's own checks (`fail` in a template) are refused by helm template
# and install; helm lint reports them only as "[INFO] Fail: ..." (it lints
# charts that need values), so for those the message is what is checked.
declare -A refused_by_chart=([two-replicas-rwo.yaml]=1)
for f in "$chart"/ci/refused/*.yaml; do
  name="$(basename "$f")"
  [[ -n "${refused_says[$name]:-}" ]] || { bad "ci/refused/$name has no expectation in this test"; continue; }
  if [[ -n "${refused_by_chart[$name]:-}" ]]; then
    out="$("$HELM" lint --strict "$chart" -f "$f" 2>&1)"
    contains "helm lint reports ci/refused/$name (the chart's own check)" "Fail: " "$out"
  else
    expect_exit 1 "helm lint refuses ci/refused/$name (values.schema.json)" -- "$HELM" lint --strict "$chart" -f "$f"
    contains "  ... schema error" "values don't meet the specifications of the schema" "$out"
  fi
  contains "  ... naming ${refused_says[$name]}" "${refused_says[$name]}" "$out"
  if "$HELM" template t "$chart" -f "$f" >"$work/refused.yaml" 2>"$work/refused.err"; then
    bad "helm template renders ci/refused/$name"
  else
    ok "helm template refuses ci/refused/$name"
  fi
done
[[ ${#refused_says[@]} -eq $(ls "$chart"/ci/refused/*.yaml | wc -l) ]] || bad "an expected refused file is missing from ci/refused/"

# --- 3. template + validate ---------------------------------------------------
render() {  # render OUT [helm template args...]
  local out_file=$1; shift
  "$HELM" template rc "$chart" --namespace reconcile-system "$@" >"$out_file" 2>"$out_file.err"
}
validate() {  # validate NAME FILE
  local o
  if o="$("$PY" "$check_py" validate "$schemas" "$2")"; then
    ok "$1: $(grep -c '^valid ' <<<"$o") manifests valid against the v1.30 schemas"
  else
    bad "$1: manifests not valid" "$o"
  fi
}
if render "$work/default.yaml"; then ok "helm template (default values)"; else bad "helm template (default values)" "$(cat "$work/default.yaml.err")"; fi
validate "default values" "$work/default.yaml"
for f in "${value_files[@]}"; do
  n="$(basename "$f" -values.yaml)"
  if render "$work/$n.yaml" -f "$f"; then ok "helm template -f ci/$n-values.yaml"; else bad "helm template -f ci/$n-values.yaml" "$(cat "$work/$n.yaml.err")"; fi
  validate "ci/$n-values.yaml" "$work/$n.yaml"
done
# The CronJob's apiVersion follows .Capabilities: batch/v1 where the server
# serves batch/v1 CronJobs, batch/v1beta1 on a 1.20 server.
render "$work/cron-v1.yaml" -f "$chart/ci/cronjob-values.yaml" --api-versions batch/v1/CronJob
is "CronJob batch/v1 when the server has batch/v1/CronJob" '"batch/v1"' "$(q "$work/cron-v1.yaml" 'one("CronJob")["apiVersion"]')"
validate "CronJob batch/v1" "$work/cron-v1.yaml"
render "$work/cron-1.20.yaml" -f "$chart/ci/cronjob-values.yaml" --kube-version 1.20.2
is "CronJob batch/v1beta1 for Kubernetes 1.20" '"batch/v1beta1"' "$(q "$work/cron-1.20.yaml" 'one("CronJob")["apiVersion"]')"
validate "CronJob batch/v1beta1 (checked as v1)" "$work/cron-1.20.yaml"
# The validator can fail: an unknown container field is refused.
sed 's/imagePullPolicy:/imagePullPolicyy:/' "$work/default.yaml" >"$work/broken.yaml"
expect_exit 1 "validator refuses an unknown Deployment field" -- "$PY" "$check_py" validate "$schemas" "$work/broken.yaml"
contains "  ... naming it" "imagePullPolicyy" "$out"

# The Deployment, field by field (default values).
d="$work/default.yaml"
pod='one("Deployment")["spec"]["template"]["spec"]'
ctr="$pod[\"containers\"][0]"
is "kinds rendered by default" '["Deployment", "PersistentVolumeClaim", "Role", "RoleBinding", "Service", "ServiceAccount"]' \
  "$(q "$d" 'sorted(x["kind"] for x in docs)')"
is "pod runAsNonRoot, user 65532, seccomp RuntimeDefault" '[true, 65532, "RuntimeDefault"]' \
  "$(q "$d" "[$pod[\"securityContext\"][k] for k in (\"runAsNonRoot\", \"runAsUser\")] + [$pod[\"securityContext\"][\"seccompProfile\"][\"type\"]]")"
is "container read-only root, no privilege escalation, drops ALL, seccomp RuntimeDefault, non-root" '[true, false, ["ALL"], "RuntimeDefault", true, 65532]' \
  "$(q "$d" "[$ctr[\"securityContext\"][k] for k in (\"readOnlyRootFilesystem\", \"allowPrivilegeEscalation\")] + [$ctr[\"securityContext\"][\"capabilities\"][\"drop\"], $ctr[\"securityContext\"][\"seccompProfile\"][\"type\"], $ctr[\"securityContext\"][\"runAsNonRoot\"], $ctr[\"securityContext\"][\"runAsUser\"]]")"
is "requests and limits" '[["cpu", "memory"], ["cpu", "memory"]]' \
  "$(q "$d" "[sorted($ctr[\"resources\"][\"requests\"]), sorted($ctr[\"resources\"][\"limits\"])]")"
is "liveness /healthz, readiness /readyz on port http" '["/healthz", "http", "/readyz", "http"]' \
  "$(q "$d" "[$ctr[\"livenessProbe\"][\"httpGet\"][\"path\"], $ctr[\"livenessProbe\"][\"httpGet\"][\"port\"], $ctr[\"readinessProbe\"][\"httpGet\"][\"path\"], $ctr[\"readinessProbe\"][\"httpGet\"][\"port\"]]")"
is "terminationGracePeriodSeconds = --grace 30s + 15 s margin" '[45, true]' \
  "$(q "$d" "[$pod[\"terminationGracePeriodSeconds\"], \"--grace=30s\" in $ctr[\"args\"]]")"
is "grace period follows controller.grace (2m + 15)" '135' \
  "$(render "$work/g.yaml" --set controller.grace=2m && q "$work/g.yaml" "$pod[\"terminationGracePeriodSeconds\"]")"
is "POD_NAME, POD_NAMESPACE from the downward API" '["metadata.name", "metadata.namespace"]' \
  "$(q "$d" "[e[\"valueFrom\"][\"fieldRef\"][\"fieldPath\"] for e in $ctr[\"env\"] if e[\"name\"] in (\"POD_NAME\", \"POD_NAMESPACE\")]")"
is "/tmp is a writable emptyDir" '[["/tmp", false], {}]' \
  "$(q "$d" "[[[m[\"mountPath\"], m.get(\"readOnly\", False)] for m in $ctr[\"volumeMounts\"] if m[\"name\"] == \"tmp\"][0], [v[\"emptyDir\"] for v in $pod[\"volumes\"] if v[\"name\"] == \"tmp\"][0]]")"
is "state on the claim at /var/lib/reconcile" '["rc-reconcile", "/var/lib/reconcile"]' \
  "$(q "$d" "[[v[\"persistentVolumeClaim\"][\"claimName\"] for v in $pod[\"volumes\"] if v[\"name\"] == \"state\"][0], [m[\"mountPath\"] for m in $ctr[\"volumeMounts\"] if m[\"name\"] == \"state\"][0]]")"
args="$(q "$d" "$ctr[\"args\"]")"
for a in '"--state=/var/lib/reconcile"' '"controller"' '"--repo=https://git.example.com/deploy.git"' '"--branch=main"' \
  '"--listen=:8080"' '"--interval=30s"' '"--drift-interval=5m"' '"--log-format=json"'; do
  contains "controller args hold $a" "$a" "$args"
done
lacks "one replica: no --leader-elect" "--leader-elect" "$args"
lacks "no webhook secret: no --webhook-secret-file" "--webhook-secret-file" "$args"
is "one replica: strategy Recreate, no token mounted" '["Recreate", false]' \
  "$(q "$d" "[one(\"Deployment\")[\"spec\"][\"strategy\"][\"type\"], $pod[\"automountServiceAccountToken\"]]")"
is "one replica: no Lease rule, Events create only" '[[["events"], ["create"]]]' \
  "$(q "$d" '[[r["resources"], r["verbs"]] for r in one("Role")["rules"]]')"
is "Service: port http 8080 TCP, selects the controller pods only" '[["http", 8080, "TCP"], "controller"]' \
  "$(q "$d" '[[one("Service")["spec"]["ports"][0][k] for k in ("name", "port", "protocol")], one("Service")["spec"]["selector"]["app.kubernetes.io/component"]]')"
is "claim ReadWriteOnce 1Gi, kept on uninstall" '[["ReadWriteOnce"], "1Gi", "keep"]' \
  "$(q "$d" '[one("PersistentVolumeClaim")["spec"]["accessModes"], one("PersistentVolumeClaim")["spec"]["resources"]["requests"]["storage"], one("PersistentVolumeClaim")["metadata"]["annotations"]["helm.sh/resource-policy"]]')"

# persistence off: an emptyDir, no claim.
is "persistence off: state is an emptyDir, no claim" '[{}, 0]' \
  "$(q "$work/persistence-off.yaml" "[[v[\"emptyDir\"] for v in $pod[\"volumes\"] if v[\"name\"] == \"state\"][0], len([x for x in docs if x[\"kind\"] == \"PersistentVolumeClaim\"])]")"
contains "persistence off: --path from values" '"--path=deploy"' "$(q "$work/persistence-off.yaml" "$ctr[\"args\"]")"

# Two replicas: leader election with the lease flags, a PDB, RWX, Roles in
# the two target namespaces with exactly the target rules, nothing cluster-wide.
t="$work/two-replicas.yaml"
args="$(q "$t" "$ctr[\"args\"]")"
for a in '"--leader-elect"' '"--leader-elect-resource-name=rc-reconcile"' '"--leader-elect-resource-namespace=reconcile-system"' \
  '"--leader-elect-lease-duration=15s"' '"--leader-elect-renew-deadline=10s"' '"--leader-elect-retry-period=2s"' \
  '"--webhook-secret-file=/etc/reconcile/webhook/secret"'; do
  contains "2 replicas: args hold $a" "$a" "$args"
done
is "2 replicas: replicas 2, RollingUpdate, token mounted, one hostname for the state lock" '[2, "RollingUpdate", true, "rc-reconcile"]' \
  "$(q "$t" "[one(\"Deployment\")[\"spec\"][\"replicas\"], one(\"Deployment\")[\"spec\"][\"strategy\"][\"type\"], $pod[\"automountServiceAccountToken\"], $pod[\"hostname\"]]")"
is "2 replicas: PDB minAvailable 1 on the controller pods" '[1, "controller"]' \
  "$(q "$t" '[one("PodDisruptionBudget")["spec"]["minAvailable"], one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]]')"
is "2 replicas: the claim is ReadWriteMany" '["ReadWriteMany"]' "$(q "$t" 'one("PersistentVolumeClaim")["spec"]["accessModes"]')"
is "2 replicas: Lease create (no name), get/update on its name only; Events create" \
  '[[["coordination.k8s.io"], ["leases"], null, ["create"]], [["coordination.k8s.io"], ["leases"], ["rc-reconcile"], ["get", "update"]], [[""], ["events"], null, ["create"]]]' \
  "$(q "$t" '[[r["apiGroups"], r["resources"], r.get("resourceNames"), r["verbs"]] for r in one("Role", "rc-reconcile")["rules"]]')"
is "2 replicas: a target Role in apps and apps-staging" '["apps", "apps-staging"]' \
  "$(q "$t" 'sorted(x["metadata"]["namespace"] for x in docs if x["kind"] == "Role" and x["metadata"]["name"] == "rc-reconcile-target")')"
is "target Role: deployments and services with the server-side-apply verbs, the agents' Secrets without list/watch" \
  '[[["apps"], ["deployments"], ["get", "list", "watch", "create", "update", "patch", "delete"]], [[""], ["services"], ["get", "list", "watch", "create", "update", "patch", "delete"]], [[""], ["secrets"], ["get", "create", "patch", "delete"]]]' \
  "$(q "$t" '[[r["apiGroups"], r["resources"], r["verbs"]] for r in [x for x in docs if x["kind"] == "Role" and x["metadata"]["namespace"] == "apps"][0]["rules"]]')"
is "Secrets only in the target Roles; no wildcard anywhere" '[["Role", "apps"], ["Role", "apps-staging"]]' \
  "$(q "$t" 'sorted(set((x["kind"], x["metadata"]["namespace"]) for x in docs if x["kind"] in ("Role", "ClusterRole") for r in x["rules"] if "secrets" in r["resources"] or "*" in r["resources"] or "*" in r["verbs"] or "*" in r["apiGroups"]))')"
is "2 replicas: nothing cluster-wide" '0' "$(q "$t" 'len([x for x in docs if x["kind"].startswith("Cluster")])')"
is "cluster-wide: a ClusterRole with the target rules, bound to the ServiceAccount" '[["deployments", "secrets", "services"], "rc-reconcile"]' \
  "$(q "$work/cluster-wide.yaml" '[sorted(r["resources"][0] for r in one("ClusterRole")["rules"]), one("ClusterRoleBinding")["subjects"][0]["name"]]')"
contains "cluster-wide: --leader-elect with one replica and the lease name" '"--leader-elect-resource-name=reconcile-leader"' \
  "$(q "$work/cluster-wide.yaml" "$ctr[\"args\"]")"

# Ingress: only /hooks/, to the Service's http port, with TLS.
is "Ingress: only Prefix /hooks/ to port http, TLS for the host" '[[["/hooks/", "Prefix", "http"]], "hooks-example-org-tls", "nginx"]' \
  "$(q "$work/ingress.yaml" '[[[p["path"], p["pathType"], p["backend"]["service"]["port"]["name"]] for r in one("Ingress")["spec"]["rules"] for p in r["http"]["paths"]], one("Ingress")["spec"]["tls"][0]["secretName"], one("Ingress")["spec"]["ingressClassName"]]')"
# ServiceMonitor: /metrics on port http of the controller Service.
is "ServiceMonitor: /metrics on port http, every 15s, extra label" '["http", "/metrics", "15s", "prometheus", "controller"]' \
  "$(q "$work/servicemonitor.yaml" '[one("ServiceMonitor")["spec"]["endpoints"][0][k] for k in ("port", "path", "interval")] + [one("ServiceMonitor")["metadata"]["labels"]["release"], one("ServiceMonitor")["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]]')"
# CronJob: reconcile drift on the state claim, no retries, as non-root.
c="$work/cronjob.yaml"
cpod='one("CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]'
is "CronJob: schedule, Forbid, backoffLimit 0, restartPolicy Never" '["*/10 * * * *", "Forbid", 0, "Never"]' \
  "$(q "$c" "[one(\"CronJob\")[\"spec\"][\"schedule\"], one(\"CronJob\")[\"spec\"][\"concurrencyPolicy\"], one(\"CronJob\")[\"spec\"][\"jobTemplate\"][\"spec\"][\"backoffLimit\"], $cpod[\"restartPolicy\"]]")"
is "CronJob: runs reconcile drift on the branch, with the state claim" '["drift", true, true, "rc-reconcile"]' \
  "$(q "$c" "[$cpod[\"containers\"][0][\"args\"][-1], \"--ref=production\" in $cpod[\"containers\"][0][\"args\"], \"--state=/var/lib/reconcile\" in $cpod[\"containers\"][0][\"args\"], [v[\"persistentVolumeClaim\"][\"claimName\"] for v in $cpod[\"volumes\"] if v[\"name\"] == \"state\"][0]]")"
is "CronJob: read-only root, drops ALL, pinned to the controller's node (ReadWriteOnce)" '[true, ["ALL"], "kubernetes.io/hostname"]' \
  "$(q "$c" "[$cpod[\"containers\"][0][\"securityContext\"][\"readOnlyRootFilesystem\"], $cpod[\"containers\"][0][\"securityContext\"][\"capabilities\"][\"drop\"], $cpod[\"affinity\"][\"podAffinity\"][\"requiredDuringSchedulingIgnoredDuringExecution\"][0][\"topologyKey\"]]")"
expect_exit 1 "driftCheck without persistence is refused" -- "$HELM" template rc "$chart" --set driftCheck.enabled=true --set persistence.enabled=false
contains "  ... naming persistence.enabled" "persistence.enabled" "$out"
expect_exit 1 "a retry period not under the renew deadline is refused" -- \
  "$HELM" template rc "$chart" --set leaderElection.retryPeriod=10s
contains "  ... naming leaderElection.retryPeriod" "leaderElection.retryPeriod" "$out"
expect_exit 1 "a renew deadline not under the lease duration is refused" -- \
  "$HELM" template rc "$chart" --set leaderElection.renewDeadline=15s
contains "  ... naming leaderElection.renewDeadline" "leaderElection.renewDeadline" "$out"
expect_exit 1 "a lease duration in milliseconds is refused (whole seconds)" -- \
  "$HELM" template rc "$chart" --set leaderElection.leaseDuration=1500ms
contains "  ... naming leaderElection.leaseDuration" "leaderElection.leaseDuration" "$out"

# Existing secrets: every credential a secretKeyRef or a mounted Secret.
e="$work/existing-secrets.yaml"
is "existing secrets: env from secretKeyRef" \
  '[["AWS_ACCESS_KEY_ID", "reconcile-aws"], ["AWS_SECRET_ACCESS_KEY", "reconcile-aws"], ["AWS_SESSION_TOKEN", "reconcile-aws"], ["AZURE_CLIENT_ID", "reconcile-azure"], ["AZURE_CLIENT_SECRET", "reconcile-azure"], ["AZURE_TENANT_ID", "reconcile-azure"], ["GHCR_PASSWORD", "reconcile-registry"], ["GHCR_USERNAME", "reconcile-registry"], ["RECONCILE_SECRET_DB_PASSWORD", "reconcile-db"]]' \
  "$(q "$e" "sorted([e[\"name\"], e[\"valueFrom\"][\"secretKeyRef\"][\"name\"]] for e in $ctr[\"env\"] if \"secretKeyRef\" in e.get(\"valueFrom\", {}))")"
is "existing secrets: the only plain env values are paths and switches" \
  '[["DOCKER_CERT_PATH", "/etc/reconcile/docker-tls"], ["DOCKER_TLS_VERIFY", "1"], ["GOOGLE_APPLICATION_CREDENTIALS", "/etc/reconcile/gcp/credentials.json"], ["HOME", "/tmp"]]' \
  "$(q "$e" "sorted([e[\"name\"], e[\"value\"]] for e in $ctr[\"env\"] if \"value\" in e)")"
is "existing secrets: Secrets mounted read-only" \
  '[["docker-tls", "reconcile-docker-tls"], ["gcp", "reconcile-gcp"], ["git", "reconcile-git"], ["webhook", "reconcile-webhook"]]' \
  "$(q "$e" "sorted([v[\"name\"], v[\"secret\"][\"secretName\"]] for v in $pod[\"volumes\"] if \"secret\" in v)")"
is "existing secrets: secretFiles projected into the secrets folder" '["reconcile-agent-secrets", "reconcile-more-secrets"]' \
  "$(q "$e" "[s[\"secret\"][\"name\"] for v in $pod[\"volumes\"] if v[\"name\"] == \"secrets\" for s in v[\"projected\"][\"sources\"]]")"
args="$(q "$e" "$ctr[\"args\"]")"
for a in '"--git-ssh-key=/etc/reconcile/git/ssh-key"' '"--git-known-hosts=/etc/reconcile/git/known_hosts"' \
  '"--webhook-secret-file=/etc/reconcile/webhook/secret"' '"--secrets=/etc/reconcile/secrets"' '"--allow-secret-env=DB_PASSWORD"'; do
  contains "existing secrets: args hold $a" "$a" "$args"
done
is "no value renders a Secret or ConfigMap" '0' \
  "$(cat "$work"/*.yaml | "$PY" -c 'import sys, yaml; print(len([d for d in yaml.safe_load_all(sys.stdin) if d and d["kind"] in ("Secret", "ConfigMap")]))')"
# Canary secret values through every secret-looking key one might try: each
# is refused by the schema, and the canary shows in no output.
canary="CANARY-s3cr3t-$RANDOM$RANDOM"
for k in git.password git.token git.sshKey webhook.secret webhook.value credentials.aws.secretAccessKey \
  credentials.aws.accessKeyId credentials.gcp.json credentials.azure.clientSecret dockerTLS.key dockerTLS.ca \
  secretFiles[0].value "secretEnv[0].value" controller.webhookSecret controller.gitPassword password token; do
  if o="$("$HELM" template rc "$chart" --set "$k=$canary" 2>&1)"; then
    bad "a canary through $k is rendered" "$(grep -F "$canary" <<<"$o" | head -3)"
  elif grep -qF "$canary" <<<"$o"; then
    bad "a canary through $k is refused, but the error shows it" "$o"
  else
    ok "a canary through $k is refused, and not shown"
  fi
done
# Secret names and key names are not free text: a value that looks like a
# token (a ':' or '/') is not a valid Secret name.
expect_exit 1 "a token in git.existingSecret is refused (not a Secret name)" -- \
  "$HELM" template rc "$chart" --set "git.existingSecret=ghp_$canary/x" --set git.passwordKey=token
lacks "  ... and not shown" "$canary" "$out"

# Every flag the chart passes is one the real binary takes: global flags in
# `reconcile --help`, the command's in `reconcile controller|drift --help`.
# The --leader-elect family is checked against the names fixed for issue #10
# (and against `controller --help` once the binary lists it).
bin="${RECONCILE:-$SOURCE_DIR/build/program/reconcile}"
[[ -x "$bin" ]] || die "no reconcile binary at $bin (build the reconcile target)"
help_global="$("$bin" --help)"
help_controller="$("$bin" controller --help)"
help_drift="$("$bin" drift --help)"
fixed_leader_flags=" --leader-elect --leader-elect-lease-duration --leader-elect-renew-deadline --leader-elect-retry-period --leader-elect-resource-name --leader-elect-resource-namespace --leader-elect-identity "
flag_known() {  # flag_known FLAG COMMAND-HELP
  local f=$1 help=$2
  if [[ "$f" == --leader-elect* ]] && ! grep -q -- '--leader-elect' <<<"$help_controller"; then
    [[ "$fixed_leader_flags" == *" $f "* ]]
    return
  fi
  grep -qE -- "(^|[ ,])$f([ =,]|$)" <<<"$help_global"$'\n'"$help"
}
for f in "$work/default.yaml" "$work/existing-secrets.yaml" "$work/two-replicas.yaml" "$work/cluster-wide.yaml" "$work/cronjob.yaml"; do
  n="$(basename "$f" .yaml)"
  unknown=""
  while read -r cmd a; do
    case "$cmd" in controller) h="$help_controller" ;; drift) h="$help_drift" ;; *) h="" ;; esac
    flag_known "${a%%=*}" "$h" || unknown+=" $cmd:$a"
  done < <(q "$f" '[["drift" if c["args"][-1] == "drift" else "controller", a] for d in docs if d["kind"] in ("Deployment", "CronJob") for c in (d["spec"]["template"]["spec"] if d["kind"] == "Deployment" else d["spec"]["jobTemplate"]["spec"]["template"]["spec"])["containers"] for a in c["args"] if a.startswith("-")]' |
    "$PY" -c 'import json, sys; [print(c, a) for c, a in json.load(sys.stdin)]')
  if [[ -z "$unknown" ]]; then ok "$n: every flag is one the reconcile binary takes"; else bad "$n: flags the binary does not know:$unknown"; fi
done
# ... and the check can fail.
flag_known --no-such-flag "$help_controller" && bad "flag check accepts --no-such-flag" || ok "flag check refuses --no-such-flag"

# --- 4. the real API server ---------------------------------------------------
kube_lib="$SOURCE_DIR/tests/scripts/kube_lib.sh"
[[ -f "$kube_lib" ]] || die "tests/scripts/kube_lib.sh is missing (the real API server harness)"
source "$kube_lib"
kube_start "$work/kube" --no-trap || die "kube_start: the API server did not start"
kube_started=1
echo "# kube-apiserver at $KUBE_SERVER"
export KUBECONFIG="$KUBECONFIG_ADMIN"
k() { "$KUBECTL" "$@"; }
ns=reconcile-system
for n in "$ns" apps apps-staging other; do k create namespace "$n" >/dev/null || bad "create namespace $n"; done

# The Secrets the release refers to, holding canary values.
k -n "$ns" create secret generic reconcile-webhook --from-literal=webhook-secret="$canary-webhook" >/dev/null
k -n "$ns" create secret generic reconcile-git --from-literal=token="$canary-git" >/dev/null
k -n "$ns" create secret generic reconcile-aws --from-literal=AWS_ACCESS_KEY_ID="$canary-akid" \
  --from-literal=AWS_SECRET_ACCESS_KEY="$canary-aws" >/dev/null
k -n other create secret generic someone-elses --from-literal=password="$canary-other" >/dev/null

rel=rc
install_args=(-f "$chart/ci/two-replicas-values.yaml" --set driftCheck.enabled=true
  --set git.existingSecret=reconcile-git --set git.passwordKey=token --set git.username=deploy
  --set credentials.aws.existingSecret=reconcile-aws)
expect_exit 0 "helm install (2 replicas, drift CronJob, secrets by reference) into the API server" -- \
  "$HELM" install "$rel" "$chart" -n "$ns" "${install_args[@]}"
[[ $code -eq 0 ]] || echo "$out"
contains "  ... NOTES name the webhook address" "http://rc-reconcile.$ns.svc:8080/hooks/github" "$out"

stored() { k -n "$ns" get "$@" -o json; }
sd="$(stored deployment rc-reconcile)"
is "stored Deployment: 2 replicas, --leader-elect, hostname, grace 45" '[2, true, "rc-reconcile", 45]' \
  "$("$PY" -c 'import json,sys; d=json.load(sys.stdin); p=d["spec"]["template"]["spec"]; print(json.dumps([d["spec"]["replicas"], "--leader-elect" in p["containers"][0]["args"], p["hostname"], p["terminationGracePeriodSeconds"]]))' <<<"$sd")"
is "stored Deployment: security context as rendered" '[true, true, false, ["ALL"], "RuntimeDefault"]' \
  "$("$PY" -c 'import json,sys; p=json.load(sys.stdin)["spec"]["template"]["spec"]; c=p["containers"][0]["securityContext"]; print(json.dumps([p["securityContext"]["runAsNonRoot"], c["readOnlyRootFilesystem"], c["allowPrivilegeEscalation"], c["capabilities"]["drop"], p["securityContext"]["seccompProfile"]["type"]]))' <<<"$sd")"
# No kubelet: the Deployment is stored, and no pod will run.
contains "stored Deployment has no ready replicas (no kubelet here)" "null" \
  "$("$PY" -c 'import json,sys; print(json.dumps(json.load(sys.stdin).get("status", {}).get("readyReplicas")))' <<<"$sd")"
expect_exit 0 "the 1.20 server stored the CronJob as batch/v1beta1" -- k -n "$ns" get cronjobs.v1beta1.batch rc-reconcile-drift
expect_exit 0 "the server stored the PodDisruptionBudget (policy/v1beta1 on 1.20)" -- k -n "$ns" get poddisruptionbudgets.v1beta1.policy rc-reconcile
expect_exit 0 "the server stored the ReadWriteMany claim" -- k -n "$ns" get pvc rc-reconcile
for n in apps apps-staging; do
  expect_exit 0 "the target Role and RoleBinding in $n" -- k -n "$n" get role/rc-reconcile-target rolebinding/rc-reconcile-target
done
expect_exit 1 "no target Role in a namespace not listed" -- k -n other get role/rc-reconcile-target
lacks "no ClusterRole of the release" "rc-reconcile" "$(k get clusterroles -o name)"

# Secrets stay Secrets: the canary is in no manifest, release record or stored object.
everything="$("$HELM" get all "$rel" -n "$ns" 2>&1; k get deploy,svc,sa,role,rolebinding,pdb,cronjobs.v1beta1.batch,pvc -A -o yaml;
  k -n "$ns" get secrets -l owner=helm -o json |
    "$PY" -c 'import sys, json, base64, gzip; [print(gzip.decompress(base64.b64decode(base64.b64decode(i["data"]["release"]))).decode()) for i in json.load(sys.stdin)["items"]]')"
contains "  ... (the release record was read: it holds the manifest)" "rc-reconcile-drift" "$everything"
lacks "canary secret values appear nowhere in the release or the stored objects" "$canary" "$everything"

# What the ServiceAccount may do, and may not: RBAC decides (kubectl auth can-i).
sa="system:serviceaccount:$ns:rc-reconcile"
can() {  # can yes|no VERB RESOURCE [-n NS] ...
  local want=$1; shift
  local got
  got="$(k auth can-i "$@" --as "$sa" 2>/dev/null)"
  if [[ "$got" == "$want" ]]; then ok "can-i $* -> $want"; else bad "can-i $*: $got, want $want"; fi
}
can yes get leases/rc-reconcile -n "$ns"
can yes update leases/rc-reconcile -n "$ns"
can yes create leases -n "$ns"
can yes create events -n "$ns"
for n in apps apps-staging; do
  for v in get list watch create update patch delete; do can yes "$v" deployments.apps -n "$n"; done
  can yes patch services -n "$n"
done
can no update leases/someone-else -n "$ns"
can no delete leases/rc-reconcile -n "$ns"
can no get leases/rc-reconcile -n other
can no get secrets -n other
can no get secrets/someone-elses -n other
can no list secrets -n "$ns"
can no get secrets/reconcile-webhook -n "$ns"
can no list secrets -n apps
can no watch secrets -n apps
can yes get secrets -n apps
can yes patch secrets -n apps-staging
can no create clusterroles
can no create clusterrolebindings
can no delete namespaces
can no create namespaces
can no patch deployments.apps -n other
can no create deployments.apps -n "$ns"
can no list deployments.apps --all-namespaces
can no get pods -n apps
can no create pods/exec -n apps
can no patch roles -n apps
can no escalate roles -n "$ns"

# The same with real requests, signed by the ServiceAccount's own token.
token="$(kube_sa_token "$ns" rc-reconcile)" || bad "TokenRequest for the ServiceAccount"
kube_kubeconfig "$work/sa.kubeconfig" rc-reconcile "$token" apps
sak() { "$KUBECTL" --kubeconfig "$work/sa.kubeconfig" "$@"; }
cat >"$work/agent.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
  labels: {reconcile.dev/managed-by: reconcile, reconcile.dev/agent: hello}
spec:
  replicas: 1
  selector: {matchLabels: {reconcile.dev/agent: hello}}
  template:
    metadata: {labels: {reconcile.dev/agent: hello}}
    spec:
      containers: [{name: hello, image: "reconcile/hello-agent:0.1.0"}]
EOF
expect_exit 0 "the ServiceAccount applies a Deployment server-side in apps" -- \
  sak -n apps apply --server-side --field-manager reconcile -f "$work/agent.yaml"
expect_exit 0 "... lists it by label selector" -- sak -n apps get deployments -l reconcile.dev/managed-by=reconcile
expect_exit 0 "... and deletes it" -- sak -n apps delete deployment hello
expect_exit 1 "the ServiceAccount may not apply into 'other'" -- \
  sak -n other apply --server-side --field-manager reconcile -f "$work/agent.yaml"
contains "  ... forbidden by RBAC" "forbidden" "$out"
expect_exit 1 "the ServiceAccount may not read a Secret in 'other'" -- sak -n other get secret someone-elses
lacks "  ... and its value is not in the answer" "$canary" "$out"
expect_exit 1 "the ServiceAccount may not read its own release's Secrets through the API" -- sak -n "$ns" get secret reconcile-webhook
expect_exit 0 "the ServiceAccount creates its Lease" -- sak -n "$ns" create -f - <<EOF
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: rc-reconcile}
spec: {holderIdentity: rc-reconcile-0, leaseDurationSeconds: 15}
EOF

# helm upgrade: a changed value reaches the stored Deployment.
gen_before="$(stored deployment rc-reconcile | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["metadata"]["generation"])')"
expect_exit 0 "helm upgrade --set controller.interval=1m" -- \
  "$HELM" upgrade "$rel" "$chart" -n "$ns" "${install_args[@]}" --set controller.interval=1m --set targetNamespaces='{apps}'
after="$(stored deployment rc-reconcile)"
is "upgrade: the stored Deployment runs --interval=1m, not 30s, at a new generation" "[true, false, $((gen_before + 1))]" \
  "$("$PY" -c 'import json,sys; d=json.load(sys.stdin); a=d["spec"]["template"]["spec"]["containers"][0]["args"]; print(json.dumps(["--interval=1m" in a, "--interval=30s" in a, d["metadata"]["generation"]]))' <<<"$after")"
expect_exit 1 "upgrade: apps-staging dropped from targetNamespaces, its Role is gone" -- k -n apps-staging get role/rc-reconcile-target
can no patch deployments.apps -n apps-staging
can yes patch deployments.apps -n apps
is "helm history: 2 revisions, the last deployed" "2 deployed" \
  "$("$HELM" history "$rel" -n "$ns" -o json | "$PY" -c 'import json,sys; h=json.load(sys.stdin); print(len(h), h[-1]["status"])')"

# helm uninstall: everything of the release goes, but the state claim stays.
expect_exit 0 "helm uninstall" -- "$HELM" uninstall "$rel" -n "$ns"
for obj in deployment/rc-reconcile service/rc-reconcile serviceaccount/rc-reconcile role/rc-reconcile rolebinding/rc-reconcile \
  cronjobs.v1beta1.batch/rc-reconcile-drift poddisruptionbudgets.v1beta1.policy/rc-reconcile; do
  expect_exit 1 "uninstalled: $obj is gone" -- k -n "$ns" get "$obj"
done
expect_exit 1 "uninstalled: the target Role in apps is gone" -- k -n apps get role/rc-reconcile-target
expect_exit 0 "uninstalled: the state claim is kept (helm.sh/resource-policy: keep)" -- k -n "$ns" get pvc rc-reconcile
can no get leases/rc-reconcile -n "$ns"
# A later install of the same release takes the kept claim over (Helm adopts
# an object whose release annotations name it), state and all.
claim_uid="$(k -n "$ns" get pvc rc-reconcile -o jsonpath='{.metadata.uid}')"
expect_exit 0 "a new install of the release takes the kept state claim over" -- \
  "$HELM" install "$rel" "$chart" -n "$ns" "${install_args[@]}"
is "  ... the same claim (uid)" "$claim_uid" "$(k -n "$ns" get pvc rc-reconcile -o jsonpath='{.metadata.uid}')"
expect_exit 0 "helm uninstall (again)" -- "$HELM" uninstall "$rel" -n "$ns"

# The ServiceMonitor against a CRD made of its schema (the vectors hold the
# schema, not the CRD): the server stores the rendered spec whole (a field
# the schema does not know would be pruned) and refuses a wrong type.
"$PY" "$check_py" crd "$schemas/crds/servicemonitor_v1.json" >"$work/servicemonitor-crd.json"
expect_exit 0 "a ServiceMonitor CRD from the vector's schema is accepted" -- k apply -f "$work/servicemonitor-crd.json"
expect_exit 0 "  ... and established" -- k wait --for condition=Established crd/servicemonitors.monitoring.coreos.com --timeout=60s
expect_exit 0 "helm install with serviceMonitor.enabled" -- \
  "$HELM" install sm "$chart" -n "$ns" -f "$chart/ci/servicemonitor-values.yaml" --set persistence.enabled=false
"$HELM" template sm "$chart" -n "$ns" -f "$chart/ci/servicemonitor-values.yaml" --set persistence.enabled=false >"$work/sm.yaml"
is "the stored ServiceMonitor spec is the rendered one, nothing pruned" "$(q "$work/sm.yaml" 'one("ServiceMonitor")["spec"]' | "$PY" -c 'import json,sys; print(json.dumps(json.load(sys.stdin), sort_keys=True))')" \
  "$(k -n "$ns" get servicemonitor sm-reconcile -o json | "$PY" -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["spec"], sort_keys=True))')"
expect_exit 1 "the CRD's schema refuses a ServiceMonitor with endpoints of the wrong type" -- k -n "$ns" create -f - <<'EOF2'
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: wrong}
spec: {selector: {}, endpoints: "http"}
EOF2
expect_exit 0 "helm uninstall (ServiceMonitor)" -- "$HELM" uninstall sm -n "$ns"
expect_exit 1 "  ... the ServiceMonitor is gone" -- k -n "$ns" get servicemonitor sm-reconcile

# Cluster-wide RBAC only when asked, and still no Secrets.
expect_exit 0 "helm install with rbac.clusterWide" -- \
  "$HELM" install cw "$chart" -n "$ns" -f "$chart/ci/cluster-wide-values.yaml" --set persistence.enabled=false
sa="system:serviceaccount:$ns:cw-reconcile"
can yes patch deployments.apps -n other
can yes delete services -n apps-staging
can yes update leases/reconcile-leader -n "$ns"
# Cluster-wide, the agents' Secrets may be in any namespace: get by name,
# never list or watch.
can no list secrets -n other
can no watch secrets --all-namespaces
can no list secrets -n "$ns"
can no create clusterroles
can no delete namespaces
can no get pods -n other
expect_exit 0 "helm uninstall (cluster-wide)" -- "$HELM" uninstall cw -n "$ns"
lacks "uninstalled: its ClusterRole is gone" "cw-reconcile" "$(k get clusterroles,clusterrolebindings -o name)"

# helm install --dry-run against the server: the schema refuses before anything is sent.
expect_exit 1 "helm install refuses a typo in values (values.schema.json)" -- \
  "$HELM" install bad "$chart" -n "$ns" -f "$chart/ci/refused/typo-key.yaml"
expect_exit 1 "  ... and created no release" -- "$HELM" status bad -n "$ns"
expect_exit 1 "helm install refuses 2 replicas on a ReadWriteOnce claim (the chart's check)" -- \
  "$HELM" install bad "$chart" -n "$ns" -f "$chart/ci/refused/two-replicas-rwo.yaml"
contains "  ... naming persistence.accessModes" "persistence.accessModes" "$out"
expect_exit 1 "  ... and created no Deployment" -- k -n "$ns" get deployment bad-reconcile

echo "# $passed passed, $failed failed"
[[ $failed -eq 0 ]]
