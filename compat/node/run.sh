#!/usr/bin/env bash
# Node client family compatibility suite for gregor: kafkajs.
#
#   compat/node/run.sh [node --test args...]     e.g. --test-name-pattern=transaction
#
# The pinned client (kafkajs 2.2.4; package.json + package-lock.json) is installed with `npm ci`
# into compat/node/node_modules the first time (npm cache in the git-ignored compat/.cache). Each
# test() in test/*.test.js is one case; they run with Node's built-in test runner (node --test)
# against one broker started here on a free loopback port: gregor (GREGOR_BIN, default
# target/release/gregor of this checkout) or, with KAFKA_REFERENCE_LIBS=DIR (a folder of Kafka 4.x
# broker jars, e.g. the 4.4 the project matches), a single-node KRaft Apache Kafka, to check the
# suite itself: every case must pass there. @confluentinc/kafka-javascript is not covered: its
# install downloads a prebuilt librdkafka binding from GitHub releases (see FINDINGS.md).
# The per-test results are the spec reporter's lines; the last line is "N passed, N failed,
# N skipped"; the exit status is non-zero if anything failed.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib.sh
. "$HERE/../lib.sh"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "node and npm are not installed (the suite needs Node >= 20)" >&2
  exit 1
fi
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "the suite needs Node >= 20 (node --test with reporters), found $(node --version)" >&2
  exit 1
fi

if [ -n "${KAFKA_REFERENCE_LIBS:-}" ]; then
  # shellcheck source=../ref-kafka.sh
  . "$COMPAT_ROOT/ref-kafka.sh"
  BROKER="Apache Kafka ($KAFKA_REFERENCE_LIBS)"
  export NODE_COMPAT_TARGET=kafka
else
  if [ ! -x "$GREGOR_BIN" ]; then
    echo "gregor binary not found at $GREGOR_BIN; run cargo build --release or set GREGOR_BIN" >&2
    exit 1
  fi
  BROKER="gregor ($GREGOR_BIN)"
  export NODE_COMPAT_TARGET=gregor # cases of an open gap in FINDINGS.md are skipped (h.gregorGap)
fi

cd "$HERE"
npm_ci_locked || exit 1

LOG="$(mktemp /tmp/node-compat.XXXXXX)"
export NODE_COMPAT_LOG="$LOG.kafkajs"
: >"$NODE_COMPAT_LOG"
trap 'gregor_cleanup; rm -f "$LOG" "$NODE_COMPAT_LOG"' EXIT
gregor_start || { echo "could not start $BROKER" >&2; exit 1; }
echo "Node suite (kafkajs $(node -p 'require("kafkajs/package.json").version')) against $BROKER at $GREGOR_BOOTSTRAP"

# Arguments ending in .test.js pick test files (default: all of test/); the rest go to node --test.
files=() args=()
for a in "$@"; do
  case "$a" in *.test.js) files+=("$a") ;; *) args+=("$a") ;; esac
done
[ ${#files[@]} -gt 0 ] || files=(test/*.test.js)
export KAFKAJS_NO_PARTITIONER_WARNING=1

start=$(date +%s)
# Test files run as separate processes, two at a time (the machine has two cores); the tests in
# one file run in order. The TAP copy in $LOG is what the counts below are read from.
node --test --test-concurrency=2 --test-timeout=120000 \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$LOG" \
  "${args[@]}" "${files[@]}"
status=$?

count() { sed -n "s/^# $1 \([0-9]*\)$/\1/p" "$LOG" | tail -n 1; }
passed=$(count pass)
failed=$(count fail)
skipped=$(count skipped)
passed=${passed:-0} failed=${failed:-0} skipped=${skipped:-0}
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1 # a crash or a failed file outside any test: count it
  echo "node --test exited with $status"
fi
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ]; then
  [ -n "${GREGOR_PID:-}" ] && ! kill -0 "$GREGOR_PID" 2>/dev/null && { echo "the broker died; its log:"; tail -n 40 "$GREGOR_DATA.log"; }
  echo "last kafkajs log lines ($NODE_COMPAT_LOG):"
  tail -n 30 "$NODE_COMPAT_LOG"
fi
echo
echo "node: $(( $(date +%s) - start )) s"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
