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
  echo "fetching the pinned sarama modules (go.mod/go.sum)" >&2
  go mod download || exit 1
fi
# Compile first, so the build does not count against the broker or the test timeout.
go test -c -o "$HERE/target/sarama-compat.test" . || exit 1

LOG="$(mktemp /tmp/sarama-compat.XXXXXX)"
trap 'gregor_cleanup; rm -f "$LOG"' EXIT
# No initial rebalance delay, as the reference Kafka is configured (ref-kafka.sh): each group case
# would otherwise wait 3 s for more members before its first assignment.
gregor_start --override group.initial.rebalance.delay.ms=0 || { echo "could not start $BROKER" >&2; exit 1; }
echo "sarama suite against $BROKER at $GREGOR_BOOTSTRAP"

start=$(date +%s)
"$HERE/target/sarama-compat.test" -test.v -test.count=1 -test.timeout=300s "$@" 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}

# Subtests (one per codec) print indented "--- PASS" lines: only top-level cases are counted.
passed=$(grep -c '^--- PASS' "$LOG")
failed=$(grep -c '^--- FAIL' "$LOG")
skipped=$(grep -c '^--- SKIP' "$LOG")
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1 # a panic, timeout or build failure: count it
  echo "the test binary exited with $status"
  [ -n "${GREGOR_PID:-}" ] && ! kill -0 "$GREGOR_PID" 2>/dev/null && { echo "the broker died; its log:"; tail -n 40 "$GREGOR_DATA.log"; }
fi
echo
grep -E '^\s*--- FAIL' "$LOG" | sed 's/^ */failed: /'
echo "sarama: $(( $(date +%s) - start )) s"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
