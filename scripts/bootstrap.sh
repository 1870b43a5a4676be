#!/usr/bin/env bash
# Installs what building, testing and benchmarking reconcile needs on a
# Debian 12 machine. Idempotent: when everything is present it only asks
# dpkg and prints one line (well under a second).
#
# Usage: scripts/bootstrap.sh            # install what is missing
#        scripts/bootstrap.sh --check    # exit 1 if something is missing
set -euo pipefail

# Build toolchain and C++ libraries (see CMakeLists.txt).
packages=(
  build-essential cmake make pkg-config git
  libgit2-dev libyaml-cpp-dev nlohmann-json3-dev libboost-dev libspdlog-dev
  doctest-dev libcli11-dev libssl-dev openssl
  # Sanitizers and fuzzing (scripts/sanitize.sh, `make sanitize` / `make
  # fuzz`): clang with its ASan/UBSan/libFuzzer runtimes.
  clang libclang-rt-14-dev
  # Deploy windows: cron in IANA time zones (date/tz over the system tzdata).
  libhowardhinnant-date-dev tzdata
  # The cloud providers' HTTP client (providers/http).
  libcurl4-openssl-dev
  # Integration tests, demo and benchmarks: a real Docker Engine on this host.
  docker.io iptables docker-compose busybox-static docker-registry
  curl time hyperfine ca-certificates cgroupfs-mount
  # The controller: metrics (prometheus-cpp), and the real servers its tests
  # start on loopback: git daemon / git http-backend behind lighttpd with
  # basic auth (htpasswd), sshd with a deploy key, a Prometheus server and
  # promtool.
  prometheus-cpp-dev prometheus lighttpd openssh-server openssh-client apache2-utils
  # SOPS-encrypted secrets (engine/src/sops.cc): OpenPGP recipients through
  # libgpgme and gnupg; the tests wrap data keys with the real age tool and
  # encrypt values with python3-cryptography (tests/scripts/sops_encrypt.py).
  libgpgme-dev gnupg age python3-cryptography
  # The AWS SigV4 cross-check (tests/scripts/sigv4_botocore_test.sh).
  python3-botocore
  # The notifications' fake server (tests/scripts/fake_notify_server.py)
  # validates webhook events against their JSON Schema.
  python3-jsonschema
  # Traces over OTLP (controller/otlp_*): protoc generates the C++ of
  # third_party/otlp's .proto files; the tests' collector parses with
  # python3-protobuf over protoc-generated modules.
  protobuf-compiler libprotobuf-dev python3-protobuf
  # The package test (tests/scripts/package_test.sh): systemd-analyze, lintian.
  systemd lintian
  # Kubernetes (issue #10): the real kube-apiserver the tests start is built
  # from Debian's source package (scripts/kube-apiserver.sh) with Go 1.19,
  # and runs on etcd; helm and kubectl come from npm (scripts/k8s-tools.sh).
  etcd-server golang-1.19-go golang-github-modern-go-reflect2-dev rsync dpkg-dev unzip
  # The status page's browser test (tests/scripts/status_page_browser_test.sh):
  # headless chromium driven over the DevTools protocol, and a font for its
  # screenshot.
  chromium fonts-dejavu-core
  # Signed commits (README "Signed commits"): OpenPGP signatures are checked
  # through GPGME (which runs gpg); the tests sign commits with real gpg
  # keys (gnupg) and ssh-keygen keys (openssh-client, above).
  libgpgme-dev gnupg
)

# Node.js for the tooling that needs it. Debian's nodejs comes without npm;
# other builds (NodeSource) bundle it, and Debian's npm package conflicts
# with those, so only ask apt when `node` itself is missing.
if ! command -v node >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi

# One dpkg-query for all packages; a package dpkg does not know prints
# nothing and counts as missing.
installed="$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${packages[@]}" 2>/dev/null |
  awk '$2 == "installed" { print $1 }' || true)"
missing=()
for p in "${packages[@]}"; do
  if ! grep -qxF "$p" <<<"$installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "bootstrap: all ${#packages[@]} packages present"
  exit 0
fi
if [[ "${1:-}" == "--check" ]]; then
  echo "bootstrap: missing: ${missing[*]}" >&2
  exit 1
fi

echo "bootstrap: installing ${missing[*]}"
sudo=()
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo=(sudo -n)
  else
    echo "bootstrap: not root and no sudo; install as root: ${missing[*]}" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
# Wait for a concurrent apt/dpkg (another shell, unattended-upgrades)
# instead of failing on its lock.
apt_opts=(-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
"${sudo[@]}" apt-get "${apt_opts[@]}" update -qq
"${sudo[@]}" apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${missing[@]}" </dev/null

# Check again: a package that apt skipped is an error here, not later.
still_missing=()
installed="$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${missing[@]}" 2>/dev/null |
  awk '$2 == "installed" { print $1 }' || true)"
for p in "${missing[@]}"; do
  grep -qxF "$p" <<<"$installed" || still_missing+=("$p")
done
if [[ ${#still_missing[@]} -ne 0 ]]; then
  echo "bootstrap: could not install: ${still_missing[*]}" >&2
  exit 1
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "bootstrap: warning: node/npm still not on PATH" >&2
fi
echo "bootstrap: installed ${#missing[@]} package(s)"
