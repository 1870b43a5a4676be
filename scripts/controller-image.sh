#!/usr/bin/env bash
# Builds the controller image reconcile/controller:<version> (deploy/Dockerfile)
# on the local Docker Engine, offline:
#
#   scripts/controller-image.sh BUILD_DIR
#
# 1. BUILD_DIR/program/reconcile is built if missing, and a stripped copy made.
# 2. The base reconcile/base:bookworm is `docker import`ed from the tarball
#    scripts/controller-rootfs.py writes (the libraries ldd lists for the
#    binary, CA bundle, passwd/group for 65532, ...), unless the image there
#    already carries that tarball's hash (label reconcile.dev/rootfs-sha256).
# 3. deploy/Dockerfile is built (legacy builder: no BuildKit plugin needed)
#    unless the image already carries the hash of the binary, the base and the
#    Dockerfile (label reconcile.dev/build-sha256).
#
# Idempotent and fast when nothing changed (two hashes, two inspects). Prints
# the image's name and size. Never pulls; needs the docker CLI.
#
# Environment: CONTROLLER_IMAGE (default reconcile/controller:<version>),
# CONTROLLER_BASE_IMAGE (default reconcile/base:bookworm).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${1:?usage: controller-image.sh BUILD_DIR}"
binary="$build_dir/program/reconcile"
base="${CONTROLLER_BASE_IMAGE:-reconcile/base:bookworm}"

command -v docker >/dev/null 2>&1 || { echo "controller-image: no docker CLI" >&2; exit 1; }
if [[ ! -x "$binary" ]]; then
  cmake --build "$build_dir" --target reconcile >/dev/null
fi
version="$("$binary" --version | awk '{print $2}')"
[[ -n "$version" ]] || { echo "controller-image: '$binary --version' printed no version" >&2; exit 1; }
image="${CONTROLLER_IMAGE:-reconcile/controller:$version}"

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp "$here/deploy/Dockerfile" "$ctx/Dockerfile"
strip --strip-unneeded -o "$ctx/reconcile" "$binary"

label() {  # label IMAGE KEY: the label's value, or empty
  docker image inspect "$1" --format "{{ index .Config.Labels \"$2\" }}" 2>/dev/null || true
}

# --- the base --------------------------------------------------------------
python3 "$here/scripts/controller-rootfs.py" "$ctx/rootfs.tar" "$ctx/reconcile"
rootfs_sha="$(sha256sum "$ctx/rootfs.tar" | cut -d' ' -f1)"
if [[ "$(label "$base" reconcile.dev/rootfs-sha256)" != "$rootfs_sha" ]]; then
  docker import --change "LABEL reconcile.dev/rootfs-sha256=$rootfs_sha" \
    --message "reconcile controller base (scripts/controller-rootfs.py)" \
    "$ctx/rootfs.tar" "$base" >/dev/null
  echo "controller-image: imported $base ($(du -h "$ctx/rootfs.tar" | cut -f1) rootfs, $rootfs_sha)"
fi
rm -f "$ctx/rootfs.tar"

# --- the image ---------------------------------------------------------------
build_sha="$(cat "$ctx/reconcile" "$ctx/Dockerfile" <(echo "$rootfs_sha $base") | sha256sum | cut -d' ' -f1)"
if [[ "$(label "$image" reconcile.dev/build-sha256)" == "$build_sha" ]]; then
  echo "controller-image: $image is up to date ($(docker image inspect "$image" --format '{{.Size}}' | awk '{printf "%.1f MB", $1/1e6}'))"
  exit 0
fi
if ! out="$(DOCKER_BUILDKIT=0 docker build -q -t "$image" --build-arg "BASE_IMAGE=$base" \
  --label "reconcile.dev/build-sha256=$build_sha" \
  --label "org.opencontainers.image.title=reconcile controller" \
  --label "org.opencontainers.image.version=$version" "$ctx" 2>&1)"; then
  echo "controller-image: build failed: $out" >&2
  exit 1
fi
# The legacy builder leaves stage 1 as an untagged image (it carries the
# base's label), and a rebuild leaves the previous image untagged: remove
# those, only dangling images with our labels.
docker image prune -f --filter label=reconcile.dev/rootfs-sha256 >/dev/null 2>&1 || true
docker image prune -f --filter label=reconcile.dev/build-sha256 >/dev/null 2>&1 || true
size="$(docker image inspect "$image" --format '{{.Size}}')"
echo "controller-image: built $image ($(awk -v s="$size" 'BEGIN {printf "%.1f MB", s/1e6}'))"
