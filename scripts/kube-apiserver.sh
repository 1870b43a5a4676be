#!/usr/bin/env bash
# Builds a real kube-apiserver from Debian 12's own `kubernetes` source
# package (1.20.5+really1.20.2) and prints its path. Debian ships no
# kube-apiserver binary; its source package holds the whole tree.
#
# The binary is cached in $RECONCILE_CACHE (default /var/cache/reconcile),
# so only the first run builds (about 4 minutes on 2 cores, 1.3 GB of
# memory); later runs print the cached path at once.
#
# Usage: scripts/kube-apiserver.sh        # build if needed, print the path
#        scripts/kube-apiserver.sh --check # exit 1 when not built yet
set -euo pipefail

version=1.20.2
cache="${RECONCILE_CACHE:-/var/cache/reconcile}/kube-apiserver-$version"
bin="$cache/kube-apiserver"

if [[ -x "$bin" ]] && "$bin" --version 2>/dev/null | grep -q "v$version"; then
  echo "$bin"
  exit 0
fi
if [[ "${1:-}" == "--check" ]]; then
  echo "kube-apiserver: not built yet ($bin)" >&2
  exit 1
fi

# The build's own packages (Go 1.19, the reflect2 Go 1.19 needs, rsync for
# the code generators; etcd for the tests that start the server).
# One build at a time (two test runs at once would each build for minutes):
# the second waits for the first, then finds its binary.
mkdir -p "$(dirname "$cache")"
exec 9>"$cache.lock"
flock 9
if [[ -x "$bin" ]] && "$bin" --version 2>/dev/null | grep -q "v$version"; then
  echo "$bin"
  exit 0
fi

need=(golang-1.19-go golang-github-modern-go-reflect2-dev rsync etcd-server dpkg-dev)
installed="$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${need[@]}" 2>/dev/null |
  awk '$2 == "installed" { print $1 }' || true)"
missing=()
for p in "${need[@]}"; do grep -qxF "$p" <<<"$installed" || missing+=("$p"); done
if [[ ${#missing[@]} -ne 0 ]]; then
  echo "kube-apiserver: installing ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3 \
    install -y -qq --no-install-recommends "${missing[@]}" </dev/null >&2
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/kube-apiserver-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo "kube-apiserver: building v$version from Debian's kubernetes source package in $work" >&2

# apt state of our own, so the machine's sources.list is left as it is.
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/src"
echo "deb-src http://deb.debian.org/debian bookworm main" >"$work/apt/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$work/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache" -o Acquire::Retries=3
  -o APT::Sandbox::User=root)
apt-get "${apt_opts[@]}" update -qq >&2
(cd "$work/src" && apt-get "${apt_opts[@]}" source --download-only kubernetes >&2)
orig="$(ls "$work"/src/kubernetes_*.orig.tar.gz)"

# A GOPATH tree: $GOPATH/src/k8s.io/kubernetes.
gopath="$work/gopath"
tree="$gopath/src/k8s.io/kubernetes"
mkdir -p "$tree"
tar -xzf "$orig" -C "$tree" --strip-components=1
# The vendored reflect2 (1.0.1) breaks under Go 1.19; Debian's 1.0.2 works.
rm -rf "$tree/vendor/github.com/modern-go/reflect2"
cp -a /usr/share/gocode/src/github.com/modern-go/reflect2 "$tree/vendor/github.com/modern-go/reflect2"

export PATH="/usr/lib/go-1.19/bin:$PATH" GOPATH="$gopath" GO111MODULE=off GOFLAGS=-mod=vendor
export GOCACHE="$work/gocache" CGO_ENABLED=0
unset GOFLAGS
cd "$tree"
make gen_openapi >&2
ldflags="-s -w"
# A GOPATH build sees the vendored packages under k8s.io/kubernetes/vendor/.
for pkg in k8s.io/kubernetes/vendor/k8s.io/component-base/version \
  k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=v$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=20"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
go build -o "$work/kube-apiserver" -ldflags "$ldflags" ./cmd/kube-apiserver >&2

mkdir -p "$cache"
mv "$work/kube-apiserver" "$bin.tmp"
mv "$bin.tmp" "$bin"
"$bin" --version >&2
echo "$bin"
