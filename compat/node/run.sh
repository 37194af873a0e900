#!/usr/bin/env bash
# Node client family compatibility suite for gregor: kafkajs and @confluentinc/kafka-javascript.
#
#   compat/node/run.sh [node --test args...]     e.g. --test-name-pattern=transaction
#
# The pinned clients (kafkajs 2.2.4, @confluentinc/kafka-javascript 1.10.1; package.json +
# package-lock.json) are installed with `npm ci` into compat/node/node_modules the first time (npm
# cache in the git-ignored compat/.cache). @confluentinc/kafka-javascript's binding is built there
# from the sources in its npm package (its librdkafka included, linked against Debian's libraries:
# about 1.5 min on two idle cores), since its default install downloads a prebuilt one from GitHub
# releases (see FINDINGS.md). Each
# test() in test/*.test.js is one case; they run with Node's built-in test runner (node --test)
# against one broker started here on a free loopback port: gregor (GREGOR_BIN, default
# target/release/gregor of this checkout) or, with KAFKA_REFERENCE_LIBS=DIR (a folder of Kafka 4.x
# broker jars, e.g. the 4.4 the project matches), a single-node KRaft Apache Kafka, to check the
# suite itself: every case must pass there.
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

# @confluentinc/kafka-javascript's build: the Debian packages its bundled librdkafka is configured
# against (the pinned versions first; a newer build when the mirror has dropped one), and
# node-pre-gyp told to build instead of downloading. CKJS_LINKING=dynamic configures librdkafka
# with the system's OpenSSL, zlib, zstd, lz4 and SASL (its static default downloads their source
# tarballs); nodedir is where the Node package keeps its headers (node-gyp would download them).
CKJS_BUILD_DEBS=(g++=4:12.2.0-3 make=4.3-4.1 libssl-dev=3.0.19-1~deb12u2 zlib1g-dev=1:1.2.13.dfsg-1
  libzstd-dev=1.5.4+dfsg2-5+deb12u1 liblz4-dev=1.9.4-1 libsasl2-dev=2.1.28+dfsg-10+deb12u1)
ckjs_build_deps() {
  local missing=() d
  for d in "${CKJS_BUILD_DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "${d%%=*}" 2>/dev/null | grep -q 'ok installed' || missing+=("$d")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing the build dependencies of @confluentinc/kafka-javascript: ${missing[*]}" >&2
  apt_install "${missing[@]}" && return 0
  echo "warning: a pinned version is gone from the mirror; installing the current builds" >&2
  apt_install "${missing[@]%%=*}"
}
ckjs_build_deps || { echo "could not install the build dependencies" >&2; exit 1; }
NODE_PREFIX="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
if [ ! -f "$NODE_PREFIX/include/node/common.gypi" ]; then
  echo "Node's headers are not in $NODE_PREFIX/include/node (node-gyp would download them)" >&2
  exit 1
fi
export npm_config_build_from_source=@confluentinc/kafka-javascript npm_config_nodedir="$NODE_PREFIX" \
  CKJS_LINKING=dynamic

cd "$HERE"
npm_ci_locked || exit 1

LOG="$(mktemp /tmp/node-compat.XXXXXX)"
export NODE_COMPAT_LOG="$LOG.kafkajs"
: >"$NODE_COMPAT_LOG"
trap 'gregor_cleanup; rm -f "$LOG" "$NODE_COMPAT_LOG"' EXIT
# No initial rebalance delay, as the reference Kafka is configured (ref-kafka.sh): every case that
# reads through a fresh group would otherwise wait 3 s for more members before its assignment.
gregor_start --override group.initial.rebalance.delay.ms=0 || { echo "could not start $BROKER" >&2; exit 1; }
echo "Node suite (kafkajs $(node -p 'require("kafkajs/package.json").version'), @confluentinc/kafka-javascript $(node -p 'require("@confluentinc/kafka-javascript/package.json").version')) against $BROKER at $GREGOR_BOOTSTRAP"

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
