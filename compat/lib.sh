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

# The Go suites (compat/franz-go, compat/sarama): each Test* in the suite's *_test.go is one case,
# compiled into one test binary that runs against the broker the suite starts.
#
#   go_suite_build NAME   from the suite's folder: checks Go, picks the broker (gregor, or with
#                         KAFKA_REFERENCE_LIBS=DIR a single-node Apache Kafka: ref-kafka.sh, and
#                         BROKER names it), fetches the pinned modules (go.mod + go.sum) and
#                         compiles target/NAME-compat.test, so the build does not count against
#                         the broker or the test timeout
#   go_suite_run NAME [test binary args...]
#                         runs it (go test -v output), then prints the failed cases, the seconds
#                         and "N passed, N failed, N skipped" (top-level cases only); non-zero if
#                         anything failed
go_suite_build() {
  export GOTOOLCHAIN=local GOFLAGS=-mod=readonly
  command -v go >/dev/null || PATH="$PATH:/usr/local/go/bin"
  if ! command -v go >/dev/null; then
    echo "go is not installed (the suite needs Go >= 1.26)" >&2
    return 1
  fi
  if [ -z "${HOME:-}" ]; then
    # go needs somewhere for its build and module caches; compat/.cache is git-ignored.
    export GOPATH="${GOPATH:-$COMPAT_ROOT/.cache/go}" GOCACHE="${GOCACHE:-$COMPAT_ROOT/.cache/go-build}"
  fi
  if [ -n "${KAFKA_REFERENCE_LIBS:-}" ]; then
    # shellcheck source=ref-kafka.sh
    . "$COMPAT_ROOT/ref-kafka.sh"
    BROKER="Apache Kafka ($KAFKA_REFERENCE_LIBS)"
  else
    if [ ! -x "$GREGOR_BIN" ]; then
      echo "gregor binary not found at $GREGOR_BIN; run cargo build --release or set GREGOR_BIN" >&2
      return 1
    fi
    BROKER="gregor ($GREGOR_BIN)"
  fi
  if ! go list -m all >/dev/null 2>&1; then
    echo "fetching the pinned $1 modules (go.mod/go.sum)" >&2
    go mod download || return 1
  fi
  go test -c -o "target/$1-compat.test" .
}

go_suite_run() {
  local name="$1" log status passed failed skipped start
  shift
  log="$(mktemp "/tmp/$name-compat.XXXXXX")"
  start=$(date +%s)
  "target/$name-compat.test" -test.v -test.count=1 -test.timeout=300s "$@" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  # Subtests print indented "--- PASS" lines: only the top-level cases are counted.
  passed=$(grep -c '^--- PASS' "$log")
  failed=$(grep -c '^--- FAIL' "$log")
  skipped=$(grep -c '^--- SKIP' "$log")
  if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
    failed=1 # a panic, timeout or build failure: count it
    echo "the test binary exited with $status"
    [ -n "${GREGOR_PID:-}" ] && ! kill -0 "$GREGOR_PID" 2>/dev/null && { echo "the broker died; its log:"; tail -n 40 "$GREGOR_DATA.log"; }
  fi
  echo
  grep -E '^ *--- FAIL' "$log" | sed 's/^ */failed: /'
  echo "$name: $(($(date +%s) - start)) s"
  echo "$passed passed, $failed failed, $skipped skipped"
  rm -f "$log"
  [ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
}
