#!/usr/bin/env bash
# Builds the image reconcile/hello-agent:0.1.0 (FROM scratch, the static
# hello-agent binary) on the local Docker Engine.
#
#   scripts/hello-image.sh BUILD_DIR
#
# BUILD_DIR is a CMake build folder; the binary is built there first if it is
# missing. Idempotent and fast: skipped when the image already carries the
# label reconcile.dev/binary-sha256 with the binary's hash. Uses the docker
# CLI when present, otherwise curl on the engine's unix socket (POST /build).
# Never pulls: the image has no base layer.
set -euo pipefail

IMAGE="${HELLO_IMAGE:-reconcile/hello-agent:0.1.0}"
SOCKET="${DOCKER_SOCKET:-/var/run/docker.sock}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${1:?usage: hello-image.sh BUILD_DIR}"
binary="$build_dir/agents/hello/hello-agent"

if [[ ! -x "$binary" ]]; then
  cmake --build "$build_dir" --target hello-agent >/dev/null
fi
sha="$(sha256sum "$binary" | cut -d' ' -f1)"

current_sha() {
  if command -v docker >/dev/null 2>&1; then
    docker image inspect "$IMAGE" \
      --format '{{ index .Config.Labels "reconcile.dev/binary-sha256" }}' 2>/dev/null || true
  else
    curl -fsS --unix-socket "$SOCKET" "http://docker/v1.41/images/$IMAGE/json" 2>/dev/null |
      grep -o '"reconcile.dev/binary-sha256":"[0-9a-f]*"' | cut -d'"' -f4 || true
  fi
}

if [[ "$(current_sha)" == "$sha" ]]; then
  echo "hello-image: $IMAGE is up to date ($sha)"
  exit 0
fi

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp "$here/agents/hello/Dockerfile" "$ctx/Dockerfile"
cp "$binary" "$ctx/hello-agent"

if command -v docker >/dev/null 2>&1; then
  if ! out="$(DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" \
    --label "reconcile.dev/binary-sha256=$sha" "$ctx" 2>&1)"; then
    echo "hello-image: build failed: $out" >&2
    exit 1
  fi
else
  tar -C "$ctx" -cf "$ctx.tar" Dockerfile hello-agent
  labels="%7B%22reconcile.dev%2Fbinary-sha256%22%3A%22$sha%22%7D"
  out="$(curl -fsS --unix-socket "$SOCKET" -X POST -H 'Content-Type: application/x-tar' \
    --data-binary "@$ctx.tar" \
    "http://docker/v1.41/build?t=${IMAGE//\//%2F}&labels=$labels&rm=1&q=1")"
  rm -f "$ctx.tar"
  if grep -q '"error"' <<<"$out"; then
    echo "hello-image: build failed: $out" >&2
    exit 1
  fi
fi
echo "hello-image: built $IMAGE ($sha)"
