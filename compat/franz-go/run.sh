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

cd "$HERE"
go_suite_build franz-go || exit 1

FAILOVER_PID= FAILOVER_DATA=
failover_cleanup() {
  [ -n "$FAILOVER_PID" ] && kill "$FAILOVER_PID" 2>/dev/null && wait "$FAILOVER_PID" 2>/dev/null
  [ -n "$FAILOVER_DATA" ] && rm -rf "$FAILOVER_DATA"
}
trap 'gregor_cleanup; failover_cleanup' EXIT
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

go_suite_run franz-go "$@"
