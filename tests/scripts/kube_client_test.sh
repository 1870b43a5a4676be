#!/usr/bin/env bash
# The kube client (providers/kubernetes/kube_client.h) against a real
# kube-apiserver v1.20.2 with etcd on loopback (tests/scripts/kube_lib.sh):
# create / get / update guarded by resourceVersion / delete, server-side
# apply conflicts and force, a Lease, a client certificate, a refused token,
# a wrong CA, and in-cluster config from a service-account token that RBAC
# limits to one namespace (tests/kube/kube_client_live_test.cc). Fails when
# the API server, etcd or kubectl cannot be had.
#
# Needs: $RECONCILE_KUBE_LIVE_TESTS, $SOURCE_DIR (set by CTest).
set -uo pipefail

: "${RECONCILE_KUBE_LIVE_TESTS:?}" "${SOURCE_DIR:?}"
work="$(mktemp -d)"
# shellcheck source=tests/scripts/kube_lib.sh
source "$SOURCE_DIR/tests/scripts/kube_lib.sh"
cleanup() { kube_stop; rm -rf "$work"; }
trap cleanup EXIT

kube_start "$work/kube" --no-trap || exit 1
k() { "$KUBECTL" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

# A client certificate for an admin (O=system:masters), and a CA that did
# not sign the server.
(
  cd "$KUBE_DIR"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=cert-user/O=system:masters" \
    -keyout cert-user.key -out cert-user.csr 2>/dev/null
  openssl x509 -req -in cert-user.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 \
    -out cert-user.crt 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=other-ca" \
    -keyout other-ca.key -out other-ca.crt 2>/dev/null
) || { echo "FAIL - openssl"; exit 1; }

# A service account that may read configmaps in namespace "live" only, and
# its token as a pod would see it mounted.
k create namespace live >/dev/null &&
  k -n live create serviceaccount reader >/dev/null &&
  k -n live create role read-configmaps --verb=get,list --resource=configmaps >/dev/null &&
  k -n live create rolebinding reader --role=read-configmaps --serviceaccount=live:reader >/dev/null ||
  { echo "FAIL - kubectl setup"; exit 1; }
sa="$work/sa"
mkdir -p "$sa"
kube_sa_token live reader >"$sa/token" || { echo "FAIL - TokenRequest"; exit 1; }
cp "$KUBE_CA" "$sa/ca.crt"
printf 'live' >"$sa/namespace"

export KUBE_SA_ROOT="$sa"
"$RECONCILE_KUBE_LIVE_TESTS"
