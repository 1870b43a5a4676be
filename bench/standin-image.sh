#!/usr/bin/env bash
# Builds reconcile/bench-standin:0.1.0: FROM scratch, busybox-static's httpd
# on :8080. Only for checking the benchmark harness when the real
# reconcile/hello-agent:0.1.0 (make image) is not available:
#   bench/standin-image.sh && BENCH_IMAGE=reconcile/bench-standin:0.1.0 bench/run.sh
# STOPSIGNAL KILL because httpd as PID 1 ignores SIGTERM (docker would wait
# its full stop timeout on every replace).
set -euo pipefail
tag=reconcile/bench-standin:0.1.0
busybox="$(command -v busybox || true)"
[[ -n "$busybox" ]] && file -L "$busybox" 2>/dev/null | grep -q 'statically linked' ||
  busybox=/bin/busybox
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp "$busybox" "$ctx/busybox"
mkdir "$ctx/www"
echo "hello from the bench stand-in" >"$ctx/www/index.html"
cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /busybox
COPY www /www
LABEL reconcile.dev/bench-standin="true"
EXPOSE 8080
STOPSIGNAL SIGKILL
ENTRYPOINT ["/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]
DOCKERFILE
DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$ctx" 2>/dev/null
echo "built $tag"
