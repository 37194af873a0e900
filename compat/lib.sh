#!/usr/bin/env bash
# Shared helpers for the compat suites: start, stop, kill and restart a gregor broker on a free
# loopback port with a private data directory. Source it: `. "$(dirname "$0")/../lib.sh"`.
#
#   gregor_start [--override k=v ...]   start; sets GREGOR_PORT, GREGOR_DATA, GREGOR_PID, GREGOR_BOOTSTRAP
#   gregor_stop                          SIGTERM and wait (clean shutdown)
#   gregor_kill9                         SIGKILL and wait (crash)
#   gregor_restart                       start again on the same port and data directory
#   gregor_free_ports N                  first of N consecutive free ports (for --brokers N)
#   apt_install PKG[=VERSION]...         Debian packages, refreshing the lists only when needed
#
# GREGOR_BIN overrides the binary (default: target/release/gregor of this checkout).

COMPAT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# kafka_cluster_id: a random cluster id for Kafka's storage tool (the reference brokers). Drawn
# again when it starts with "-", which the tool would read as an option (1 draw in 64), as
# Kafka's own Uuid.randomUuid draws again.
kafka_cluster_id() {
  local id="-"
  while [[ "$id" == -* ]]; do
    id="$(python3 -c 'import base64,uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')"
  done
  echo "$id"
}

# pem_tls_overrides DIR: sets PEM_TLS_OVERRIDES, the --override arguments of the PEM server
# keystore (DIR/server-keystore.pem) and CA truststore (DIR/ca.pem) the suites make with
# openssl, with client certificates required on the listener named SSL.
pem_tls_overrides() {
  PEM_TLS_OVERRIDES=(
    --override "ssl.keystore.type=PEM" --override "ssl.keystore.location=$1/server-keystore.pem"
    --override "ssl.truststore.type=PEM" --override "ssl.truststore.location=$1/ca.pem"
    --override "listener.name.ssl.ssl.client.auth=required"
  )
}
REPO_ROOT="$(cd "$COMPAT_ROOT/.." && pwd)"
GREGOR_BIN="${GREGOR_BIN:-$REPO_ROOT/target/release/gregor}"

# Ports come from compat/ports.py, below the kernel's ephemeral range (see why there).
gregor_free_port() { python3 "$COMPAT_ROOT/ports.py" 1; }

# gregor_free_ports N: the first of N consecutive free loopback ports (--brokers N listens on
# consecutive ports from --listen).
gregor_free_ports() { python3 "$COMPAT_ROOT/ports.py" "$1"; }

gregor_wait_ready() {
  local i
  for i in $(seq 1 200); do
    if python3 -c "import socket,sys; s=socket.create_connection(('127.0.0.1',$GREGOR_PORT),0.2); s.close()" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$GREGOR_PID" 2>/dev/null; then
      echo "gregor exited during start-up; log: $GREGOR_DATA.log" >&2
      tail -n 30 "$GREGOR_DATA.log" >&2
      return 1
    fi
    sleep 0.05
  done
  echo "gregor did not open port $GREGOR_PORT" >&2
  return 1
}

gregor_launch() {
  "$GREGOR_BIN" --listen "127.0.0.1:$GREGOR_PORT" --data-dir "$GREGOR_DATA" "${GREGOR_ARGS[@]}" \
    >>"$GREGOR_DATA.log" 2>&1 &
  GREGOR_PID=$!
  gregor_wait_ready
}

gregor_start() {
  GREGOR_PORT="${GREGOR_PORT:-$(gregor_free_port)}"
  GREGOR_DATA="$(mktemp -d /tmp/gregor-compat.XXXXXX)"
  GREGOR_ARGS=("$@")
  GREGOR_BOOTSTRAP="127.0.0.1:$GREGOR_PORT"
  export GREGOR_PORT GREGOR_DATA GREGOR_BOOTSTRAP
  gregor_launch
}

gregor_restart() { gregor_launch; }

gregor_stop() {
  [ -n "${GREGOR_PID:-}" ] || return 0
  kill -TERM "$GREGOR_PID" 2>/dev/null
  wait "$GREGOR_PID" 2>/dev/null
  GREGOR_PID=
}

gregor_kill9() {
  [ -n "${GREGOR_PID:-}" ] || return 0
  kill -KILL "$GREGOR_PID" 2>/dev/null
  wait "$GREGOR_PID" 2>/dev/null
  GREGOR_PID=
}

# npm_ci_locked: installs the current directory's pinned npm packages with `npm ci` when
# package-lock.json changed since the last install (node_modules keeps a copy of it); the npm
# cache is the git-ignored compat/.cache/npm.
npm_ci_locked() {
  if ! cmp -s package-lock.json node_modules/.gregor-installed-lock 2>/dev/null; then
    echo "installing the pinned npm packages (npm ci, package-lock.json)" >&2
    npm ci --cache "$COMPAT_ROOT/.cache/npm" --no-audit --no-fund --loglevel=error >&2 || return 1
    cp package-lock.json node_modules/.gregor-installed-lock
  fi
}

# apt_install PKG[=VERSION]...: installs Debian packages (as root). The package lists are
# refreshed, and the install tried again, only when the first try fails: on a fresh image the
# lists are empty, and on an older one they may still name a version the mirror has dropped
# (Debian's security archive keeps only the newest build of a package).
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  local opts=(-y -qq --no-install-recommends --allow-downgrades)
  apt-get install "${opts[@]}" "$@" >/dev/null 2>&1 && return 0
  apt-get update -qq || return 1
  apt-get install "${opts[@]}" "$@" >/dev/null
}

# Removes the data directory; call from an EXIT trap after gregor_stop.
gregor_cleanup() {
  gregor_stop
  [ -n "${GREGOR_DATA:-}" ] && rm -rf "$GREGOR_DATA" "$GREGOR_DATA.log"
}
