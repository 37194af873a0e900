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
  # The same single-node KRaft Kafka as compat/franz-go/run.sh, with its Kafka 4.x log4j2 config.
  KAFKA_REF_CP="$KAFKA_REFERENCE_LIBS/*"
  KAFKA_REF_LOG="-Dlog4j2.configurationFile=$REPO_ROOT/compat/java/config/log4j2.properties"
  kafka_launch() {
    java -Xmx768m "$KAFKA_REF_LOG" -cp "$KAFKA_REF_CP" kafka.Kafka "$GREGOR_DATA/server.properties" \
      >>"$GREGOR_DATA.log" 2>&1 &
    GREGOR_PID=$!
    local i
    for i in $(seq 1 600); do
      if python3 -c "import socket; socket.create_connection(('127.0.0.1',$GREGOR_PORT),0.2).close()" 2>/dev/null; then
        return 0
      fi
      kill -0 "$GREGOR_PID" 2>/dev/null || { tail -n 30 "$GREGOR_DATA.log" >&2; return 1; }
      sleep 0.1
    done
    echo "kafka did not open port $GREGOR_PORT" >&2
    return 1
  }
  gregor_start() {
    GREGOR_PORT="${GREGOR_PORT:-$(gregor_free_port)}"
    local controller_port cluster_id
    controller_port="$(gregor_free_port)"
    GREGOR_DATA="$(mktemp -d /tmp/kafka-compat.XXXXXX)"
    GREGOR_BOOTSTRAP="127.0.0.1:$GREGOR_PORT"
    export GREGOR_PORT GREGOR_DATA GREGOR_BOOTSTRAP
    cat >"$GREGOR_DATA/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$GREGOR_PORT,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$GREGOR_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$GREGOR_DATA/logs
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
PROPS
    cluster_id="$(python3 -c 'import base64,uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')"
    java "$KAFKA_REF_LOG" -cp "$KAFKA_REF_CP" kafka.tools.StorageTool format \
      -t "$cluster_id" -c "$GREGOR_DATA/server.properties" >>"$GREGOR_DATA.log" 2>&1 || return 1
    kafka_launch
  }
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
# npm ci (re)installs when the lock file changed since the last install (node_modules keeps a copy).
if ! cmp -s package-lock.json node_modules/.gregor-installed-lock 2>/dev/null; then
  echo "installing the pinned Node clients (npm ci, package-lock.json)" >&2
  npm ci --cache "$COMPAT_ROOT/.cache/npm" --no-audit --no-fund --loglevel=error >&2 || exit 1
  cp package-lock.json node_modules/.gregor-installed-lock
fi

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
