# A real Kubernetes API server on loopback for the tests (issue #10).
# Source this file, then:
#
#   kube_start DIR [--no-trap]
#       starts etcd and kube-apiserver (v1.20.2, built by
#       scripts/kube-apiserver.sh) on free loopback ports with openssl-made
#       certificates, a token file, RBAC, and a service-account issuer (the
#       TokenRequest API works); waits for /readyz; exports
#         KUBE_SERVER        https://127.0.0.1:PORT
#         KUBE_CA            the cluster CA (PEM file)
#         KUBECONFIG_ADMIN   a kubeconfig for a system:masters token user
#         KUBE_ADMIN_TOKEN   that token
#         KUBECTL, HELM      real kubectl v1.31 and helm v3 (scripts/k8s-tools.sh)
#         KUBE_DIR           DIR
#       and installs an EXIT trap calling kube_stop (unless --no-trap).
#       There is no kubelet, scheduler or controller-manager: nothing runs a
#       pod, nothing writes a Deployment's status.
#   kube_stop                 stops what kube_start started (by pid)
#   kube_kubeconfig FILE USER TOKEN [NAMESPACE]
#                             writes a kubeconfig for a token user
#   kube_add_token USER TOKEN [GROUP]
#                             (before kube_start) adds a static token user
#   kube_sa_token NS SA       prints a service-account token (TokenRequest)
#
# Fails (never skips) when a part is missing. Stops only the processes it
# started.

_kube_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
_kube_root="$(cd "$_kube_here/../.." && pwd)"
_kube_pids=()
_kube_extra_tokens=()

_kube_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

kube_add_token() { # USER TOKEN [GROUP]
  _kube_extra_tokens+=("$2,$1,uid-$1${3:+,\"$3\"}")
}

kube_start() { # DIR [--no-trap]
  local dir="$1" trap_it=1
  [[ "${2:-}" == "--no-trap" ]] && trap_it=0
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  export KUBE_DIR="$dir"

  local apiserver tools
  # $KUBE_APISERVER: another kube-apiserver binary to use instead.
  apiserver="${KUBE_APISERVER:-}"
  [[ -n "$apiserver" ]] || apiserver="$("$_kube_root/scripts/kube-apiserver.sh")" || { echo "kube_lib: no kube-apiserver (scripts/kube-apiserver.sh failed)" >&2; return 1; }
  tools="$("$_kube_root/scripts/k8s-tools.sh")" || { echo "kube_lib: no helm/kubectl (scripts/k8s-tools.sh failed)" >&2; return 1; }
  command -v etcd >/dev/null || { echo "kube_lib: etcd is missing (apt-get install etcd-server)" >&2; return 1; }
  command -v openssl >/dev/null || { echo "kube_lib: openssl is missing" >&2; return 1; }
  export KUBECTL="$tools/kubectl" HELM="$tools/helm"

  # Certificates: a CA, the API server's serving cert for 127.0.0.1 and
  # localhost, the service-account signing key.
  (
    cd "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=reconcile-test-ca" \
      -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
      -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile server.ext -out server.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  ) || { echo "kube_lib: openssl failed" >&2; return 1; }
  export KUBE_CA="$dir/ca.crt"

  export KUBE_ADMIN_TOKEN="admin-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
  {
    echo "$KUBE_ADMIN_TOKEN,admin,uid-admin,\"system:masters\""
    local t
    for t in "${_kube_extra_tokens[@]}"; do echo "$t"; done
  } >"$dir/tokens.csv"
  chmod 600 "$dir/tokens.csv"

  local attempt eport pport aport
  for attempt in 1 2 3; do
    eport="$(_kube_free_port)"
    pport="$(_kube_free_port)"
    aport="$(_kube_free_port)"
    rm -rf "$dir/etcd"
    etcd --name kube-test --data-dir "$dir/etcd" \
      --listen-client-urls "http://127.0.0.1:$eport" --advertise-client-urls "http://127.0.0.1:$eport" \
      --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
      --initial-cluster "kube-test=http://127.0.0.1:$pport" \
      --log-level error >"$dir/etcd.log" 2>&1 &
    _kube_etcd_pid=$!
    _kube_pids+=("$_kube_etcd_pid")
    "$apiserver" \
      --etcd-servers "http://127.0.0.1:$eport" \
      --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$aport" \
      --tls-cert-file "$dir/server.crt" --tls-private-key-file "$dir/server.key" \
      --client-ca-file "$dir/ca.crt" --token-auth-file "$dir/tokens.csv" \
      --authorization-mode RBAC \
      --service-account-issuer https://kubernetes.default.svc \
      --service-account-key-file "$dir/sa.pub" --service-account-signing-key-file "$dir/sa.key" \
      --service-cluster-ip-range 10.96.0.0/16 \
      --endpoint-reconciler-type none \
      --cert-dir "$dir/certs" >"$dir/apiserver.log" 2>&1 &
    _kube_apiserver_pid=$!
    _kube_pids+=("$_kube_apiserver_pid")
    export KUBE_SERVER="https://127.0.0.1:$aport"

    local i
    for ((i = 0; i < 120; i++)); do
      if curl -fsS --cacert "$dir/ca.crt" -H "Authorization: Bearer $KUBE_ADMIN_TOKEN" \
        "$KUBE_SERVER/readyz" >/dev/null 2>&1; then
        break
      fi
      kill -0 "$_kube_apiserver_pid" 2>/dev/null || break
      sleep 0.5
    done
    if curl -fsS --cacert "$dir/ca.crt" -H "Authorization: Bearer $KUBE_ADMIN_TOKEN" \
      "$KUBE_SERVER/readyz" >/dev/null 2>&1; then
      break
    fi
    echo "kube_lib: API server did not become ready (attempt $attempt); its log:" >&2
    tail -20 "$dir/apiserver.log" >&2
    kube_stop
    [[ $attempt -eq 3 ]] && return 1
  done

  kube_kubeconfig "$dir/admin.kubeconfig" admin "$KUBE_ADMIN_TOKEN" default
  export KUBECONFIG_ADMIN="$dir/admin.kubeconfig"
  # The default namespace is made by the server's own bootstrap controller
  # a moment after /readyz: wait for it.
  for ((i = 0; i < 40; i++)); do
    "$KUBECTL" --kubeconfig "$KUBECONFIG_ADMIN" get namespace default >/dev/null 2>&1 && break
    sleep 0.25
  done
  if [[ $trap_it -eq 1 ]]; then
    trap kube_stop EXIT
  fi
  echo "kube_lib: API server v1.20.2 ready at $KUBE_SERVER (pid $_kube_apiserver_pid, etcd pid $_kube_etcd_pid)" >&2
}

kube_stop() {
  local p
  for p in "${_kube_pids[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${_kube_pids[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  _kube_pids=()
}

kube_kubeconfig() { # FILE USER TOKEN [NAMESPACE]
  local file="$1" user="$2" token="$3" ns="${4:-default}"
  (
    umask 077
    cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: $KUBE_SERVER
    certificate-authority-data: $(base64 -w0 <"$KUBE_CA")
users:
- name: $user
  user:
    token: $token
contexts:
- name: $user@test
  context:
    cluster: test
    user: $user
    namespace: $ns
current-context: $user@test
EOF
  )
}

kube_sa_token() { # NS SA
  "$KUBECTL" --kubeconfig "$KUBECONFIG_ADMIN" -n "$1" create token "$2"
}
