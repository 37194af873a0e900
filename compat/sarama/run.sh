#!/usr/bin/env bash
# Sarama (Go) compatibility suite for gregor.
#
#   compat/sarama/run.sh [test binary args...]     e.g. -test.run Txn to pick tests
#
# The pinned client (github.com/IBM/sarama v1.62.0; go.mod + go.sum) is fetched into the Go
# module cache the first time. Each Test* in *_test.go is one case; they run against one broker
# started here on a free loopback port: gregor (GREGOR_BIN, default target/release/gregor of this
# checkout) or, with KAFKA_REFERENCE_LIBS=DIR (a folder of Kafka 4.x broker jars, e.g. the 4.4 the
# project matches), a single-node KRaft Apache Kafka, to check the suite itself: every case must
# pass there. SARAMA_LOG=1 prints Sarama's own log. The per-test results are go test -v's
# "--- PASS/FAIL" lines; the last line is "N passed, N failed"; the exit status is non-zero if
# anything failed.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib.sh
. "$HERE/../lib.sh"

cd "$HERE"
go_suite_build sarama || exit 1

trap 'gregor_cleanup' EXIT
# No initial rebalance delay, as the reference Kafka is configured (ref-kafka.sh): each group case
# would otherwise wait 3 s for more members before its first assignment.
gregor_start --override group.initial.rebalance.delay.ms=0 || { echo "could not start $BROKER" >&2; exit 1; }
echo "sarama suite against $BROKER at $GREGOR_BOOTSTRAP"

go_suite_run sarama "$@"
