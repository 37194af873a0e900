#!/usr/bin/env bash
# franz-go (Go) compatibility suite for gregor.
#
#   compat/franz-go/run.sh [test binary args...]     e.g. -test.run Txn to pick tests
#
# The pinned client (github.com/twmb/franz-go v1.22.3, pkg/kadm v1.20.0; go.mod + go.sum) is
# fetched into the Go module cache the first time. Each Test* in *_test.go is one case; they run
# against one broker started here on a free loopback port: gregor (GREGOR_BIN, default
# target/release/gregor of this checkout) or, with KAFKA_REFERENCE_LIBS=DIR (a folder of Kafka 4.x
# broker jars, e.g. the 4.4 the project matches), a single-node KRaft Apache Kafka, to check the
# suite itself: every case must pass there. The per-test results are go test -v's "--- PASS/FAIL"
# lines; the last line is "N passed, N failed"; the exit status is non-zero if anything failed.
# The failover tests run against a second gregor, three brokers with the admin listener.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib.sh
. "$HERE/../lib.sh"

export GOTOOLCHAIN=local GOFLAGS=-mod=readonly
command -v go >/dev/null || PATH="$PATH:/usr/local/go/bin"
if ! command -v go >/dev/null; then
  echo "go is not installed (the suite needs Go >= 1.26)" >&2
  exit 1
fi
if [ -z "${HOME:-}" ]; then
  # go needs somewhere for its build and module caches; compat/.cache is git-ignored.
  export GOPATH="${GOPATH:-$COMPAT_ROOT/.cache/go}" GOCACHE="${GOCACHE:-$COMPAT_ROOT/.cache/go-build}"
fi

if [ -n "${KAFKA_REFERENCE_LIBS:-}" ]; then
  # shellcheck source=../ref-kafka.sh
  . "$COMPAT_ROOT/ref-kafka.sh"
  BROKER="Apache Kafka ($KAFKA_REFERENCE_LIBS)"
else
  if [ ! -x "$GREGOR_BIN" ]; then
    echo "gregor binary not found at $GREGOR_BIN; run cargo build --release or set GREGOR_BIN" >&2
    exit 1
  fi
  BROKER="gregor ($GREGOR_BIN)"
fi

cd "$HERE"
if ! go list -m all >/dev/null 2>&1; then
  echo "fetching the pinned franz-go modules (go.mod/go.sum)" >&2
  go mod download || exit 1
fi
# Compile first, so the build does not count against the broker or the test timeout.
go test -c -o "$HERE/target/franz-go-compat.test" . || exit 1

LOG="$(mktemp /tmp/franz-go-compat.XXXXXX)"
FAILOVER_PID= FAILOVER_DATA=
failover_cleanup() {
  [ -n "$FAILOVER_PID" ] && kill "$FAILOVER_PID" 2>/dev/null && wait "$FAILOVER_PID" 2>/dev/null
  [ -n "$FAILOVER_DATA" ] && rm -rf "$FAILOVER_DATA"
}
trap 'gregor_cleanup; failover_cleanup; rm -f "$LOG"' EXIT
gregor_start || { echo "could not start $BROKER" >&2; exit 1; }
echo "franz-go suite against $BROKER at $GREGOR_BOOTSTRAP"

# The failover tests (failover_test.go) get a second gregor of their own: three brokers
# (--brokers 3) with the admin listener that stops and starts them, leaders left where failover
# puts them (auto.leader.rebalance.enable=false) until an election. Not against the reference
# Kafka (one node, no admin listener): those tests skip.
if [ -z "${KAFKA_REFERENCE_LIBS:-}" ]; then
  fport="$(gregor_free_ports 3)"
  fadmin="$(gregor_free_port)"
  FAILOVER_DATA="$(mktemp -d /tmp/franz-go-failover.XXXXXX)"
  "$GREGOR_BIN" --listen "127.0.0.1:$fport" --data-dir "$FAILOVER_DATA/data" --brokers 3 \
    --admin-listen "127.0.0.1:$fadmin" --override default.replication.factor=3 \
    --override auto.leader.rebalance.enable=false >"$FAILOVER_DATA/broker.log" 2>&1 &
  FAILOVER_PID=$!
  for _ in $(seq 1 200); do
    curl -sf "http://127.0.0.1:$fadmin/v1/healthz" >/dev/null 2>&1 && break
    kill -0 "$FAILOVER_PID" 2>/dev/null || break
    sleep 0.05
  done
  export GREGOR_FAILOVER_BOOTSTRAP="127.0.0.1:$fport,127.0.0.1:$((fport + 1)),127.0.0.1:$((fport + 2))"
  export GREGOR_FAILOVER_ADMIN="127.0.0.1:$fadmin"
fi

start=$(date +%s)
"$HERE/target/franz-go-compat.test" -test.v -test.count=1 -test.timeout=300s "$@" 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}

passed=$(grep -c '^--- PASS' "$LOG")
failed=$(grep -c '^--- FAIL' "$LOG")
skipped=$(grep -c '^--- SKIP' "$LOG")
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1 # a panic, timeout or build failure: count it
  echo "the test binary exited with $status"
  [ -n "${GREGOR_PID:-}" ] && ! kill -0 "$GREGOR_PID" 2>/dev/null && { echo "the broker died; its log:"; tail -n 40 "$GREGOR_DATA.log"; }
fi
echo
grep -E '^--- (FAIL)' "$LOG" | sed 's/^/failed: /'
echo "franz-go: $(( $(date +%s) - start )) s"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
