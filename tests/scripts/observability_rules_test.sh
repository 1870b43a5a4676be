#!/usr/bin/env bash
# The alert rules and the Grafana dashboard (issue #12 item 6), checked for
# real:
#   1. `promtool check rules` on deploy/prometheus/reconcile-alerts.yaml;
#      `promtool test rules` on tests/prometheus/reconcile-alerts.test.yaml,
#      which must show every alert both firing and not firing; a rule made
#      wrong on purpose makes the unit tests fail. The chart's copy of the
#      rules (charts/reconcile/files/) is byte-identical.
#   2. deploy/grafana/reconcile-dashboard.json: valid JSON, the `environment`
#      variable over label_values, panels that do not overlap, every query
#      on a metric README.md documents.
#   3. A real `reconcile controller` over a git daemon on loopback with the
#      hello image on the real Docker Engine, and a real Prometheus scraping
#      it every second with the alert rules loaded. A webhook, a broken
#      commit and a stopped agent make the metrics that only appear after an
#      event exist; ReconcileRevisionStuck and ReconcileDrift go pending on
#      the real series, and leave when the cause is fixed. Then every query
#      of the dashboard ($environment and $__rate_interval substituted) runs
#      through /api/v1/query: each must succeed and return a series with a
#      number; /api/v1/rules must list every rule with health ok.
#
# The reconcile_event_sink_* metrics exist once the event bus has a queued
# sink (the controller always adds its notifier hub); should a build export
# none, their queries are reported PENDING (not counted as passed).
#
# Needs: $RECONCILE, $SOURCE_DIR, $BUILD_DIR (set by CTest), prometheus and
# promtool (Debian package prometheus), git, python3 with yaml, a Docker
# Engine (started when missing) and the hello image (built when missing).
# Fails, never skips, when one is missing. Starts and stops only its own
# processes, by pid; removes only its own containers.
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}" "${BUILD_DIR:?}"
source "$SOURCE_DIR/tests/scripts/lib.sh"
passed=0 failed=0
die() { echo "FAIL - $*"; exit 1; }

rules="$SOURCE_DIR/deploy/prometheus/reconcile-alerts.yaml"
rules_test="$SOURCE_DIR/tests/prometheus/reconcile-alerts.test.yaml"
chart_rules="$SOURCE_DIR/charts/reconcile/files/reconcile-alerts.yaml"
dashboard="$SOURCE_DIR/deploy/grafana/reconcile-dashboard.json"
pending_prefix="reconcile_event_sink_"  # metrics of the event bus, not here yet

for tool in prometheus promtool git curl openssl; do
  command -v "$tool" >/dev/null || die "$tool is missing (scripts/bootstrap.sh installs it)"
done
PY=""
for p in /usr/bin/python3 python3; do
  if command -v "$p" >/dev/null && "$p" -c 'import yaml' 2>/dev/null; then PY="$p"; break; fi
done
[[ -n "$PY" ]] || die "no python3 with yaml (apt-get install python3-yaml)"
echo "# $(prometheus --version 2>&1 | head -1)"

work="$(mktemp -d "${TMPDIR:-/tmp}/observability-test.XXXXXX")"
p="o$(printf '%04x' $((RANDOM % 65536)))"  # agent name prefix, unique per run
ctl_pid="" prom_pid=""
sock=/var/run/docker.sock
api() { curl -fsS --unix-socket "$sock" "$@"; }
source "$SOURCE_DIR/tests/scripts/controller_lib.sh"
cleanup() {
  stop_pid "$prom_pid"
  stop_pid "$ctl_pid"
  stop_git_daemon
  if [[ -d "$work/clone/deploy" ]]; then
    "$RECONCILE" destroy "$work/clone/deploy" --state "$work/state" --auto-approve --no-color \
      >/dev/null 2>&1 || true
  fi
  if [[ -S "$sock" ]]; then
    id="$(container_id "$p-web")"
    [[ -n "$id" ]] && api -X DELETE "http://d/v1.41/containers/$id?force=1" >/dev/null 2>&1
  fi
  rm -rf "$work"
}
trap cleanup EXIT
finish() {
  echo "# $passed passed, $failed failed"
  [[ $failed -eq 0 ]] && exit 0 || exit 1
}

# --- 1. promtool ----------------------------------------------------------------
expect_exit 0 "promtool check rules deploy/prometheus/reconcile-alerts.yaml" -- promtool check rules "$rules"
[[ $code -eq 0 ]] || echo "$out"
expect_exit 0 "promtool test rules tests/prometheus/reconcile-alerts.test.yaml" -- promtool test rules "$rules_test"
[[ $code -eq 0 ]] || echo "$out"

# Every alert of the rules file is tested firing (a non-empty exp_alerts)
# and not firing (an empty one).
expect_exit 0 "every alert has a firing and a not-firing unit test" -- "$PY" - "$rules" "$rules_test" <<'PY'
import sys, yaml
rules = yaml.safe_load(open(sys.argv[1]))
tests = yaml.safe_load(open(sys.argv[2]))
alerts = [r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r]
firing, quiet = set(), set()
for t in tests["tests"]:
    for a in t.get("alert_rule_test", []):
        (firing if a.get("exp_alerts") else quiet).add(a["alertname"])
bad = False
for a in alerts:
    if a not in firing: print(f"{a}: no test where it fires"); bad = True
    if a not in quiet: print(f"{a}: no test where it does not fire"); bad = True
for r in (r for g in rules["groups"] for r in g["rules"] if "alert" in r):
    ann = r.get("annotations", {})
    if "for" not in r or "severity" not in r.get("labels", {}) or not ann.get("summary") or not ann.get("description"):
        print(f"{r['alert']}: needs for:, a severity label, summary and description"); bad = True
print(f"{len(alerts)} alerts")
sys.exit(1 if bad or len(alerts) < 5 else 0)
PY
[[ $code -eq 0 ]] || echo "$out"

# The unit tests can fail: the same tests over rules with a longer `for:`.
mkdir -p "$work/mutant/deploy/prometheus" "$work/mutant/tests/prometheus"
sed 's/for: 30m/for: 50m/' "$rules" >"$work/mutant/deploy/prometheus/reconcile-alerts.yaml"
cp "$rules_test" "$work/mutant/tests/prometheus/"
expect_exit 1 "promtool test rules fails on a wrong rule (ReconcileRevisionStuck for: 50m)" -- \
  promtool test rules "$work/mutant/tests/prometheus/reconcile-alerts.test.yaml"
contains "  ... naming the alert" "ReconcileRevisionStuck" "$out"

# The chart's PrometheusRule (prometheusRule.enabled): its copy of the rules
# is the same file, and the rendered spec passes the same unit tests.
if cmp -s "$rules" "$chart_rules"; then
  ok "charts/reconcile/files/reconcile-alerts.yaml = deploy/prometheus/reconcile-alerts.yaml"
else
  bad "the chart's copy of the rules differs (cp deploy/prometheus/reconcile-alerts.yaml charts/reconcile/files/)" \
    "$(diff "$rules" "$chart_rules" 2>&1 | head -20)"
fi
tools="$("$SOURCE_DIR/scripts/k8s-tools.sh")" || die "scripts/k8s-tools.sh could not provide helm"
HELM="$tools/helm"
export HELM_CACHE_HOME="$work/helm/cache" HELM_CONFIG_HOME="$work/helm/config" HELM_DATA_HOME="$work/helm/data"
expect_exit 0 "helm lint --strict with prometheusRule.enabled" -- \
  "$HELM" lint --strict "$SOURCE_DIR/charts/reconcile" --set prometheusRule.enabled=true
[[ $code -eq 0 ]] || echo "$out"
"$HELM" template r "$SOURCE_DIR/charts/reconcile" -n mon >"$work/default.yaml" 2>&1
lacks "no PrometheusRule by default" "kind: PrometheusRule" "$(cat "$work/default.yaml")"
"$HELM" template r "$SOURCE_DIR/charts/reconcile" -n mon --set prometheusRule.enabled=true \
  --set prometheusRule.labels.release=prom >"$work/rendered.yaml" 2>&1
mkdir -p "$work/chart/deploy/prometheus" "$work/chart/tests/prometheus"
expect_exit 0 "the rendered PrometheusRule: labels, and the rules file's groups unchanged" -- \
  "$PY" - "$work/rendered.yaml" "$rules" "$work/chart/deploy/prometheus/reconcile-alerts.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("kind") == "PrometheusRule"]
assert len(docs) == 1, f"{len(docs)} PrometheusRule documents"
d = docs[0]
assert d["apiVersion"] == "monitoring.coreos.com/v1", d["apiVersion"]
assert d["metadata"]["namespace"] == "mon" and d["metadata"]["labels"]["release"] == "prom", d["metadata"]
want = yaml.safe_load(open(sys.argv[2]))
assert d["spec"] == want, "spec differs from the rules file"
yaml.safe_dump(d["spec"], open(sys.argv[3], "w"))
PY
[[ $code -eq 0 ]] || echo "$out"
cp "$rules_test" "$work/chart/tests/prometheus/"
expect_exit 0 "promtool test rules on the rendered PrometheusRule's spec" -- \
  promtool test rules "$work/chart/tests/prometheus/reconcile-alerts.test.yaml"
[[ $code -eq 0 ]] || echo "$out"

# --- 2. the dashboard's structure ------------------------------------------------
expect_exit 0 "the dashboard: variables, panels, documented metrics" -- \
  "$PY" - "$dashboard" "$SOURCE_DIR/README.md" "$pending_prefix" <<'PY'
import json, re, sys
d = json.load(open(sys.argv[1]))
readme = open(sys.argv[2]).read()
pending = sys.argv[3]
errors = []
if not 36 <= d.get("schemaVersion", 0) <= 41: errors.append(f"schemaVersion {d.get('schemaVersion')}")
if not d.get("uid") or not d.get("title"): errors.append("no uid or title")
variables = {v["name"]: v for v in d["templating"]["list"]}
env = variables.get("environment")
if not env or "label_values(" not in json.dumps(env.get("query")): errors.append("no environment variable over label_values")
if variables.get("datasource", {}).get("type") != "datasource": errors.append("no datasource variable")
ids, boxes, metrics = set(), [], set()
for p in d["panels"]:
    if p["id"] in ids: errors.append(f"panel id {p['id']} twice")
    ids.add(p["id"])
    g = p["gridPos"]
    for (x, y, w, h, t) in boxes:
        if g["x"] < x + w and x < g["x"] + g["w"] and g["y"] < y + h and y < g["y"] + g["h"]:
            errors.append(f"panels '{t}' and '{p['title']}' overlap")
    boxes.append((g["x"], g["y"], g["w"], g["h"], p["title"]))
    if g["x"] + g["w"] > 24: errors.append(f"panel '{p['title']}' wider than the grid")
    if p["type"] == "row": continue
    if not p.get("targets"): errors.append(f"panel '{p['title']}' has no query")
    if p.get("datasource", {}).get("uid") != "${datasource}": errors.append(f"panel '{p['title']}' not on ${{datasource}}")
    refs = [t["refId"] for t in p.get("targets", [])]
    if len(refs) != len(set(refs)): errors.append(f"panel '{p['title']}': refId twice")
    for t in p.get("targets", []):
        for m in re.findall(r"\breconcile_[a-z_]+", t["expr"]):
            metrics.add(re.sub(r"_(bucket|count|sum)$", "", m))
        if "environment" in t["expr"] and '$environment' not in t["expr"] and "by (environment" not in t["expr"]:
            errors.append(f"panel '{p['title']}': environment label without $environment")
for m in sorted(metrics):
    if f"`{m}`" not in readme:
        errors.append(f"{m} is not documented in README.md")
print("\n".join(errors))
print(f"{len(d['panels'])} panels, {len(metrics)} metrics")
sys.exit(1 if errors else 0)
PY
echo "$out" | sed 's/^/#   /'

# --- 3. a real controller and a real Prometheus ---------------------------------
bash "$SOURCE_DIR/scripts/ensure-dockerd.sh" >/dev/null || die "no Docker Engine"
bash "$SOURCE_DIR/scripts/hello-image.sh" "$BUILD_DIR" >/dev/null || die "no hello image"

tree() {  # tree GREETING [extra line]: one agent, drift reported (not healed)
  mkdir -p "$work/clone/deploy"
  cat >"$work/clone/deploy/deploy.yaml" <<YAML
apiVersion: reconcile.dev/v1alpha1
kind: Target
metadata: {name: local}
spec:
  provider: docker
  docker: {publishAddress: 127.0.0.1}
---
apiVersion: reconcile.dev/v1alpha1
kind: Agent
metadata: {name: $p-web}
spec:
  image: reconcile/hello-agent:0.1.0
  target: local
  port: 8080
  env: {GREETING: "$1"}
  healthCheck: {path: /health, interval: 100ms, timeout: 1s, retries: 50}
  drift: {mode: report}
YAML
  [[ -n "${2:-}" ]] && printf '%s\n' "$2" >>"$work/clone/deploy/deploy.yaml"
  return 0
}
git_repo
tree one && commit "one"
git_serve
printf 'observability-webhook-secret\n' >"$work/hook.secret"
secret="observability-webhook-secret"
http_port="$(free_port)"
"$RECONCILE" --no-color controller --repo "git://127.0.0.1:$git_port/origin.git" --branch main \
  --path deploy --state "$work/state" --listen "127.0.0.1:$http_port" --interval 1s \
  --drift-interval 2s --webhook-secret-file "$work/hook.secret" >>"$work/ctl.log" 2>&1 &
ctl_pid=$!
wait_for 60 "the controller deploys the branch and is ready" -- curl -fsS "http://127.0.0.1:$http_port/readyz" ||
  finish

# Prometheus: scrapes the controller every second, evaluates the rules every second.
cat >"$work/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $rules
scrape_configs:
  - job_name: reconcile
    static_configs:
      - targets: ["127.0.0.1:$http_port"]
YAML
prom_port=""
for _ in 1 2 3 4 5; do  # a free port; again when another process took it meanwhile
  candidate="$(free_port)"
  rm -rf "$work/tsdb"
  prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --web.listen-address="127.0.0.1:$candidate" >"$work/prom.log" 2>&1 &
  prom_pid=$!
  for _ in $(seq 100); do
    if curl -sf "http://127.0.0.1:$candidate/-/ready" >/dev/null 2>&1; then prom_port=$candidate; break; fi
    kill -0 "$prom_pid" 2>/dev/null || break
    sleep 0.2
  done
  [[ -n "$prom_port" ]] && break
  stop_pid "$prom_pid"; prom_pid=""
done
[[ -n "$prom_port" ]] || { bad "prometheus did not start" "$(tail -20 "$work/prom.log")"; finish; }
ok "prometheus started on 127.0.0.1:$prom_port with the alert rules"
prom="http://127.0.0.1:$prom_port"
query() { curl -fsS -G "$prom/api/v1/query" --data-urlencode "query=$1"; }
has_series() {  # has_series PROMQL: the query returns at least one series
  query "$1" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d["status"]=="success" and d["data"]["result"] else 1)'
}
alert_state() {  # alert_state ALERTNAME: pending/firing, or empty
  curl -fsS "$prom/api/v1/alerts" | "$PY" -c "
import json,sys
a=[x['state'] for x in json.load(sys.stdin)['data']['alerts'] if x['labels']['alertname']=='$1' and x['labels'].get('environment')=='default']
print(a[0] if a else '')"
}
alert_is() { [[ "$(alert_state "$1")" == "$2" ]]; }

applied="$(git -C "$work/clone" rev-parse HEAD)"
wait_for 30 "prometheus scraped the applied revision" -- \
  has_series "reconcile_revision_info{job=\"reconcile\",environment=\"default\",revision=\"$applied\"}"
wait_for 30 "prometheus scraped the branch's revision (reconcile_source_revision_info)" -- \
  has_series "reconcile_source_revision_info{job=\"reconcile\",environment=\"default\",revision=\"$applied\"}"
if alert_is ReconcileRevisionStuck ""; then ok "up to date: ReconcileRevisionStuck is inactive"; else bad "ReconcileRevisionStuck is $(alert_state ReconcileRevisionStuck) while up to date"; fi

# Webhooks: one accepted, one refused (the series appear with the first request).
code="$(webhook)"
if [[ "$code" == 202 ]]; then ok "a signed webhook is accepted (202)"; else bad "the signed webhook answered $code"; fi
code="$(curl -sS -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$http_port/hooks/github" \
  -H "X-GitHub-Event: push" -H "X-Hub-Signature-256: sha256=0000" --data-binary '{"ref":"refs/heads/main"}')"
if [[ "$code" == 401 ]]; then ok "a badly signed webhook is refused (401)"; else bad "the bad webhook answered $code"; fi

# A broken commit: the branch moves on, the environment stays at the last
# good revision; the rule's condition holds on the real series.
tree two "  colour: red"
commit "broken"
broken="$(git -C "$work/clone" rev-parse HEAD)"
wait_for 30 "prometheus sees the invalid pass" -- \
  has_series 'increase(reconcile_passes_total{environment="default",result="invalid"}[5m]) > 0'
wait_for 30 "the branch's revision is the broken one, the applied one the last good one" -- \
  has_series "reconcile_source_revision_info{environment=\"default\",revision=\"$broken\"} and ignoring(revision) reconcile_revision_info{environment=\"default\",revision=\"$applied\"}"
wait_for 30 "ReconcileRevisionStuck is pending on the real series (for: 30m)" -- alert_is ReconcileRevisionStuck pending
tree three && commit "fixed"
fixed="$(git -C "$work/clone" rev-parse HEAD)"
wait_for 30 "the fixed commit is applied" -- \
  has_series "reconcile_revision_info{environment=\"default\",revision=\"$fixed\"}"
wait_for 30 "applied again: ReconcileRevisionStuck leaves" -- alert_is ReconcileRevisionStuck ""

# Drift: the agent's container stopped behind the controller's back (report mode).
web_id="$(container_id "$p-web")"
if [[ -n "$web_id" ]]; then ok "the agent's container runs"; else bad "no container $p-web"; fi
api -X POST "http://d/v1.41/containers/$web_id/stop?t=1" >/dev/null
wait_for 30 "prometheus sees the drifted agent" -- has_series 'reconcile_drifted_agents{environment="default"} > 0'
wait_for 30 "ReconcileDrift is pending on the real series (for: 15m)" -- alert_is ReconcileDrift pending
api -X POST "http://d/v1.41/containers/$web_id/start" >/dev/null
wait_for 30 "the agent runs again: ReconcileDrift leaves" -- alert_is ReconcileDrift ""

# --- every dashboard query against the real Prometheus ----------------------------
families="$(curl -fsS "http://127.0.0.1:$http_port/metrics" | sed -n 's/^# TYPE \([a-z_]*\) .*/\1/p')"
out="$("$PY" - "$dashboard" "$prom" "$pending_prefix" "$families" <<'PY'
import json, math, re, sys, urllib.parse, urllib.request
d = json.load(open(sys.argv[1]))
prom, pending, families = sys.argv[2], sys.argv[3], set(sys.argv[4].split())
subst = {"$environment": "default", "$__rate_interval": "5m", "$__interval": "15s", "$__range": "5m"}

def get(path, params):
    url = prom + path + "?" + urllib.parse.urlencode(params, doseq=True)
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)

for p in d["panels"]:
    for t in p.get("targets", []):
        expr = t["expr"]
        for k, v in subst.items():
            expr = expr.replace(k, v)
        name = f"'{p['title']}' {t['refId']}: {expr}"
        if "$" in expr:
            print(f"FAIL - {name}: a variable left unsubstituted"); continue
        r = get("/api/v1/query", {"query": expr})
        if r.get("status") != "success":
            print(f"FAIL - {name}: {r.get('errorType')}: {r.get('error')}"); continue
        series = r["data"]["result"]
        numbers = [s for s in series if math.isfinite(float(s["value"][1]))]
        uses_pending = any(m.startswith(pending) for m in re.findall(r"\breconcile_[a-z_]+", expr))
        if uses_pending and not any(f.startswith(pending) for f in families):
            print(f"PENDING - {name}: parses; no series until the controller exports {pending}* (event bus)")
        elif numbers:
            print(f"ok   - {name}: {len(series)} series")
        else:
            print(f"FAIL - {name}: {len(series)} series, none with a number: {json.dumps(series)[:300]}")
for v in d["templating"]["list"]:
    q = v.get("query")
    q = q.get("query", "") if isinstance(q, dict) else (q or "")
    m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", q.strip())
    if v["type"] != "query":
        continue
    if not m:
        print(f"FAIL - variable {v['name']}: not label_values(METRIC, LABEL): {q}"); continue
    r = get(f"/api/v1/label/{m.group(2)}/values", {"match[]": m.group(1)})
    values = r.get("data") or []
    if r.get("status") == "success" and "default" in values:
        print(f"ok   - variable {v['name']}: {q} = {values}")
    else:
        print(f"FAIL - variable {v['name']}: {q} = {r}")
PY
)"
echo "$out"
passed=$((passed + $(grep -c '^ok   - ' <<<"$out")))
failed=$((failed + $(grep -c '^FAIL - ' <<<"$out")))
n_queries="$(grep -c "^ok   - '\|^FAIL - '\|^PENDING - '" <<<"$out")"
[[ $n_queries -ge 15 ]] && ok "the dashboard has $n_queries queries, each run" || bad "only $n_queries dashboard queries ran"

# --- the rules as the real Prometheus loaded them ----------------------------------
rules_ok() {
  curl -fsS "$prom/api/v1/rules" | "$PY" -c "
import json,sys,yaml
want = {r['alert'] for g in yaml.safe_load(open('$rules'))['groups'] for r in g['rules'] if 'alert' in r}
got = {r['name']: r for g in json.load(sys.stdin)['data']['groups'] for r in g['rules']}
bad = [n for n in want if n not in got or got[n]['health'] != 'ok' or got[n].get('lastError')]
print(len(want), 'rules;', 'not ok:', bad, [got[n].get('lastError') for n in bad if n in got])
sys.exit(1 if bad or len(got) != len(want) else 0)"
}
wait_for 30 "/api/v1/rules: every alert rule loaded and evaluated with health ok" -- rules_ok
rules_ok | sed 's/^/#   /'
if alert_is ReconcileControllerAbsent "" && [[ -z "$(curl -fsS "$prom/api/v1/alerts" | grep -o 'ReconcileControllerAbsent')" ]]; then
  ok "the controller is scraped: ReconcileControllerAbsent is inactive"
else
  bad "ReconcileControllerAbsent is active"
fi
if grep -q "$secret" "$work/ctl.log" "$work/prom.log"; then bad "the webhook secret appears in a log"; else ok "the webhook secret appears in no log"; fi
finish
