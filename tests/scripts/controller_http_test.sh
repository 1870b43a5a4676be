#!/usr/bin/env bash
# The controller's HTTP side from outside, with real clients: curl sends
# GitHub-signed webhooks (HMAC by openssl over the raw payload files),
# promtool lints /metrics, and a real Prometheus server scrapes it on
# loopback until its API shows the target up and a reconcile_ series.
#
# Needs: $RECONCILE_SERVE_FAKE (tests/controller/serve_fake.cc), $SOURCE_DIR,
# curl, openssl, promtool and prometheus (Debian's `prometheus` package).
# A missing tool is a failure, not a skip. Only loopback traffic; stops
# only the processes it started, by pid.
set -uo pipefail

: "${RECONCILE_SERVE_FAKE:?}" "${SOURCE_DIR:?}"
work="$(mktemp -d)"
serve_pid=""
prom_pid=""
passed=0
failed=0

cleanup() {
  [[ -n "$prom_pid" ]] && kill "$prom_pid" 2>/dev/null && wait "$prom_pid" 2>/dev/null
  [[ -n "$serve_pid" ]] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); echo "ok   - $1"; }
bad() { failed=$((failed + 1)); echo "FAIL - $1"; [[ -n "${2:-}" ]] && sed 's/^/       /' <<<"$2"; }
finish() {
  echo "controller_http: $passed passed, $failed failed"
  [[ $failed -eq 0 ]]
  exit $?
}

for tool in curl openssl promtool prometheus; do
  if ! command -v "$tool" >/dev/null; then
    bad "$tool is not installed (scripts/bootstrap.sh installs it)"
  fi
done
[[ $failed -eq 0 ]] || finish

# The server under test, with a webhook secret.
printf 'script-test-secret\n' >"$work/secret"
"$RECONCILE_SERVE_FAKE" "$work/secret" >"$work/serve.out" 2>"$work/serve.err" &
serve_pid=$!
port=""
for _ in $(seq 50); do
  port="$(awk '/^port /{print $2}' "$work/serve.out")"
  [[ -n "$port" ]] && break
  sleep 0.1
done
if [[ -z "$port" ]]; then bad "serve_fake did not start" "$(cat "$work/serve.err")"; finish; fi
base="http://127.0.0.1:$port"

# status_of METHOD PATH [curl args...]: prints the HTTP status code.
status_of() {
  local method=$1 path=$2; shift 2
  curl -s -o "$work/body" -w '%{http_code}' -X "$method" "$@" "$base$path"
}
expect() {  # expect NAME WANT GOT
  if [[ "$3" == "$2" ]]; then ok "$1 ($3)"; else bad "$1: got $3, want $2" "$(cat "$work/body" 2>/dev/null)"; fi
}
sign() { echo "sha256=$(openssl dgst -sha256 -hmac "script-test-secret" -r <"$1" | cut -d' ' -f1)"; }

vectors="$SOURCE_DIR/tests/testdata/vectors/github-webhooks"
push="$vectors/push/probot-push.json"
expect "GET /healthz" 200 "$(status_of GET /healthz)"
expect "GitHub push signed over the raw file, other branch: ignored" 200 \
  "$(status_of POST /hooks/github -H 'X-GitHub-Event: push' -H "X-Hub-Signature-256: $(sign "$push")" \
     -H 'Content-Type: application/json' --data-binary @"$push")"
printf '{"ref":"refs/heads/main","after":"6113728f27ae82c7b1a177c8d03f9e96e0adf246"}' >"$work/main.json"
expect "GitHub push to main: triggered" 202 \
  "$(status_of POST /hooks/github -H 'X-GitHub-Event: push' -H "X-Hub-Signature-256: $(sign "$work/main.json")" \
     --data-binary @"$work/main.json")"
expect "GitHub push with a bad signature" 401 \
  "$(status_of POST /hooks/github -H 'X-GitHub-Event: push' -H "X-Hub-Signature-256: sha256=$(printf '%064d' 0)" \
     --data-binary @"$work/main.json")"
expect "GitHub ping" 200 \
  "$(status_of POST /hooks/github -H 'X-GitHub-Event: ping' -H "X-Hub-Signature-256: $(sign "$vectors/ping/payload.json")" \
     --data-binary @"$vectors/ping/payload.json")"
head -c $((2 * 1024 * 1024)) /dev/zero | tr '\0' ' ' >"$work/big"
expect "a 2 MiB body" 413 \
  "$(status_of POST /hooks/github -H 'X-GitHub-Event: push' -H "X-Hub-Signature-256: $(sign "$work/big")" \
     --data-binary @"$work/big")"

# promtool lints the exposition.
curl -s "$base/metrics" >"$work/metrics"
if lint="$(promtool check metrics <"$work/metrics" 2>&1)"; then
  ok "promtool check metrics"
else
  bad "promtool check metrics" "$lint"
fi
if grep -q 'reconcile_webhook_requests_total{code="401",provider="github"} 1' "$work/metrics"; then
  ok "webhook requests counted by provider and code"
else
  bad "webhook requests counted by provider and code" "$(grep webhook "$work/metrics")"
fi

# A real Prometheus scrapes it every second.
cat >"$work/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: reconcile
    static_configs:
      - targets: ["127.0.0.1:$port"]
YAML
prom_port=""
for _ in 1 2 3 4 5; do  # a random free port; retry when it was taken
  candidate=$((20000 + RANDOM % 40000))
  rm -rf "$work/tsdb"
  prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --web.listen-address="127.0.0.1:$candidate" >"$work/prom.log" 2>&1 &
  prom_pid=$!
  for _ in $(seq 50); do
    if curl -sf "http://127.0.0.1:$candidate/-/ready" >/dev/null 2>&1; then prom_port=$candidate; break; fi
    kill -0 "$prom_pid" 2>/dev/null || break
    sleep 0.2
  done
  [[ -n "$prom_port" ]] && break
  kill "$prom_pid" 2>/dev/null; wait "$prom_pid" 2>/dev/null; prom_pid=""
done
if [[ -z "$prom_port" ]]; then bad "prometheus did not start" "$(tail -20 "$work/prom.log")"; finish; fi
ok "prometheus started on 127.0.0.1:$prom_port"

query() { curl -s -G "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=$1"; }
up="" revision=""
for _ in $(seq 60); do
  up="$(query 'up{job="reconcile"}')"
  revision="$(query 'reconcile_revision_info{job="reconcile"}')"
  if grep -q '"value":\[[0-9.]*,"1"\]' <<<"$up" &&
     grep -q '"revision":"6113728f27ae82c7b1a177c8d03f9e96e0adf246"' <<<"$revision"; then
    break
  fi
  sleep 0.5
done
if grep -q '"value":\[[0-9.]*,"1"\]' <<<"$up"; then
  ok "prometheus sees up{job=\"reconcile\"} = 1"
else
  bad "prometheus never saw the target up" "$up"$'\n'"$(query 'up')"
fi
if grep -q '"revision":"6113728f27ae82c7b1a177c8d03f9e96e0adf246"' <<<"$revision"; then
  ok "prometheus stored reconcile_revision_info"
else
  bad "prometheus has no reconcile_revision_info" "$revision"
fi
health="$(curl -s "http://127.0.0.1:$prom_port/api/v1/targets")"
if grep -q '"health":"up"' <<<"$health" && ! grep -q '"lastError":"[^"]' <<<"$health"; then
  ok "scrape target healthy, no scrape error"
else
  bad "scrape target not healthy" "$health"
fi
finish
