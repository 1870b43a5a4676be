#!/usr/bin/env bash
# Makes sure a Docker Engine answers on the local socket.
#
# - If the socket answers _ping, does nothing (a running dockerd is never
#   touched, whoever started it).
# - If a dockerd process exists but does not answer yet, waits for it.
# - Otherwise starts dockerd detached (setsid + nohup, so it outlives make
#   and CI's shell), records its pid, and waits up to DOCKERD_WAIT seconds.
#   In container-like sandboxes it retries once without iptables (no
#   NET_ADMIN) or with the vfs storage driver (no overlay-on-overlay) when
#   the log says so. On failure prints the end of the log and exits 1.
#
# Environment (defaults in brackets):
#   DOCKER_SOCK      socket path            [/var/run/docker.sock]
#   DOCKERD_LOG      dockerd's log file     [/var/log/reconcile-dockerd.log]
#   DOCKERD_PIDFILE  pid of what we started [/var/run/reconcile-dockerd.pid]
#   DOCKERD_WAIT     seconds to wait        [60]
#   DOCKERD_ARGS     extra dockerd flags    []
set -euo pipefail

sock="${DOCKER_SOCK:-/var/run/docker.sock}"
log="${DOCKERD_LOG:-/var/log/reconcile-dockerd.log}"
pidfile="${DOCKERD_PIDFILE:-/var/run/reconcile-dockerd.pid}"
wait_s="${DOCKERD_WAIT:-60}"
read -r -a extra_args <<<"${DOCKERD_ARGS:-}"

ping() {
  [[ -S "$sock" ]] &&
    [[ "$(curl -s -m 2 --unix-socket "$sock" http://d/_ping 2>/dev/null)" == "OK" ]]
}

# wait_ping PID: waits until the socket answers; fails early if PID (when
# given) has exited.
wait_ping() {
  local pid="${1:-}" i
  for ((i = 0; i < wait_s * 5; i++)); do
    ping && return 0
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      return 1
    fi
    sleep 0.2
  done
  return 1
}

if ping; then
  echo "dockerd: answering on $sock"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  echo "dockerd: not installed; run scripts/bootstrap.sh first" >&2
  exit 1
fi

# A dockerd that is starting (ours from a previous call, or someone
# else's) is waited for, never replaced.
if [[ "$sock" == /var/run/docker.sock ]] && pgrep -x dockerd >/dev/null 2>&1; then
  echo "dockerd: a dockerd process exists; waiting for $sock"
  if wait_ping; then
    echo "dockerd: answering on $sock"
    exit 0
  fi
  echo "dockerd: existing dockerd (pid $(pgrep -x dockerd | tr '\n' ' ')) does not answer on $sock after ${wait_s}s" >&2
  exit 1
fi

if [[ "$(id -u)" -ne 0 ]]; then
  echo "dockerd: $sock does not answer and starting dockerd needs root" >&2
  exit 1
fi

# Containers need cgroups; a bare sandbox may not have them mounted.
if ! grep -qs cgroup /proc/mounts && command -v cgroupfs-mount >/dev/null 2>&1; then
  echo "dockerd: mounting cgroups (cgroupfs-mount)"
  cgroupfs-mount || true
fi

mkdir -p "$(dirname "$log")" "$(dirname "$pidfile")"
log_offset=1

start() {
  local args=("$@")
  echo "dockerd: starting dockerd${args[*]:+ ${args[*]}} (log: $log)"
  echo "=== $(date -u +%FT%TZ) ensure-dockerd: dockerd${args[*]:+ ${args[*]}}" >>"$log"
  log_offset=$(($(stat -c %s "$log") + 1))
  # setsid: own session, so make's or CI's process group ending does not
  # take it along; nohup: ignore SIGHUP when the terminal goes.
  setsid nohup dockerd "${args[@]}" >>"$log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$pidfile"
  if wait_ping "$pid"; then
    echo "dockerd: answering on $sock (pid $pid, pid file $pidfile)"
    return 0
  fi
  if kill -0 "$pid" 2>/dev/null; then
    # Ours, still alive, but not answering: stop it before retrying.
    kill "$pid" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  fi
  rm -f "$pidfile"
  return 1
}

args=("${extra_args[@]}")
if start "${args[@]}"; then
  exit 0
fi

# One retry with the fix the log points at (only this run's lines).
tail_log="$(tail -c "+$log_offset" "$log" | grep -iE 'level=(error|fatal)|failed|error' | tail -n 20 || true)"
retry=0
if grep -qiE 'iptables|NAT chain|nf_tables' <<<"$tail_log"; then
  echo "dockerd: iptables unusable here; retrying with --iptables=false"
  args+=(--iptables=false --ip6tables=false)
  retry=1
fi
if grep -qiE 'overlay|driver not supported|graphdriver' <<<"$tail_log"; then
  echo "dockerd: overlay2 unusable here; retrying with --storage-driver=vfs"
  args+=(--storage-driver=vfs)
  retry=1
fi
if [[ $retry -eq 1 ]] && start "${args[@]}"; then
  exit 0
fi

echo "dockerd: failed to start; last lines of $log:" >&2
tail -c "+$log_offset" "$log" | tail -n 25 >&2
exit 1
