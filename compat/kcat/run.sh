#!/usr/bin/env bash
# kcat (librdkafka) compatibility suite for gregor.
#
#   compat/kcat/run.sh            run everything (as root on Debian bookworm: installs kcat itself)
#
# Environment: GREGOR_BIN (binary under test, default target/release/gregor), KCAT_TIMEOUT (seconds
# per kcat call, default 30), KCAT_KEEP=1 (keep the work directory even when everything passed),
# KCAT_PHASES (which phases to run, default "A B C D E F"; D is consumer groups, kcat -G; E the test
# control plane, gregor only; F security: SASL_SSL (PLAIN; SCRAM-SHA-512 refused, see phase F)
# and mutual TLS).
#
# kcat is a thin CLI over librdkafka, so this suite is really "does librdkafka 2.0.2 (what Debian
# bookworm ships) work against gregor". Every test drives the real kcat binary against a real
# gregor process; run.sh orchestrates, kcat_check.py does the record-by-record comparisons.
# The last line printed is "N passed, N failed"; the exit status is non-zero if anything failed.

set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib.sh
. "$HERE/../lib.sh"

# Pinned to what Debian bookworm ships. kcat 1.7.1 is built against the system librdkafka, so both
# are pinned: librdkafka 2.0.2 (2023) still has the pre-2.11.1 feature checks (see FINDINGS.md).
KCAT_DEB_VERSION="1.7.1-2"
LIBRDKAFKA_DEB_VERSION="2.0.2-1"

KCAT_TIMEOUT="${KCAT_TIMEOUT:-30}"
CHECK="$HERE/kcat_check.py"
# Consumer output format; kcat_check.py parses exactly these fields (keep the two in sync).
FMT='%p\t%o\t%T\t%K\t%k\t%S\t%s\t%h\n'

# Headers sent with every record of the codec tests: a repeated name (order must be kept),
# an empty value, a NULL value (kcat: -H name without '='), and non-ASCII.
HEADER_ARGS=(-H "dup=1" -H "dup=2" -H "dup=1" -H "empty=" -H "nullval" -H "utf8=ÄéüÆ日本")
headers_expected() { echo "codec=$1,dup=1,dup=2,dup=1,empty=,nullval=NULL,utf8=ÄéüÆ日本"; }

# ---------------------------------------------------------------------------------------------
# Installing kcat

install_kcat() {
  local have_kcat have_rdk
  have_kcat="$(dpkg-query -W -f='${Version}' kcat 2>/dev/null || true)"
  have_rdk="$(dpkg-query -W -f='${Version}' librdkafka1 2>/dev/null || true)"
  if [ "$have_kcat" = "$KCAT_DEB_VERSION" ] && [ "$have_rdk" = "$LIBRDKAFKA_DEB_VERSION" ] &&
    command -v python3 >/dev/null; then
    return 0
  fi
  echo "installing kcat=$KCAT_DEB_VERSION librdkafka1=$LIBRDKAFKA_DEB_VERSION (have: '${have_kcat}' '${have_rdk}')"
  apt_install "kcat=$KCAT_DEB_VERSION" "librdkafka1=$LIBRDKAFKA_DEB_VERSION" python3
}

# ---------------------------------------------------------------------------------------------
# Test bookkeeping

PASSED=0
FAILED=0
FAILED_NAMES=()
BROKER_UP=0
PHASE=""

record() { # record NAME RC [LOG]
  local name=$1 rc=$2 log=${3:-}
  if [ "$rc" -eq 0 ]; then
    PASSED=$((PASSED + 1))
    echo "PASS  $name"
  else
    FAILED=$((FAILED + 1))
    FAILED_NAMES+=("$name")
    echo "FAIL  $name"
    if [ -n "$log" ] && [ -s "$log" ]; then tail -n 20 "$log" | cut -c1-300 | sed 's/^/      /'; fi
  fi
}

log_path() { echo "$LOGS/$PHASE$(echo "$1" | tr -c 'A-Za-z0-9=@.,-' '_' | sed 's/_*$//').log"; }

broker_alive() { [ -n "${GREGOR_PID:-}" ] && kill -0 "$GREGOR_PID" 2>/dev/null; }

# A test case runs in a subshell with errexit, so the first failed check ends it. Its output goes
# to its own log, shown only when it fails. A broker that died during the test fails the test and
# is restarted on the same data so the remaining tests still say something.
run_test() { # run_test NAME FUNCTION [ARGS...]
  local name="$PHASE$1" log
  log="$(log_path "$1")"
  shift
  if [ "$BROKER_UP" != 1 ]; then
    echo "not run: the broker is not running" >"$log"
    record "$name" 1 "$log"
    return
  fi
  local broker_lines start=$SECONDS
  broker_lines=$(wc -l <"$GREGOR_DATA.log")
  (set -e; "$@") >"$log" 2>&1
  local rc=$?
  if [ "$rc" -ne 0 ]; then # what the broker complained about meanwhile, if anything
    tail -n +"$((broker_lines + 1))" "$GREGOR_DATA.log" | sed 's/\x1b\[[0-9;]*m//g' |
      grep -iE 'error|warn|panic' | head -n 5 | sed 's/^/broker log: /' >>"$log"
  fi
  if ! broker_alive; then
    { echo "the broker process died during this test; last broker log lines:"; tail -n 15 "$GREGOR_DATA.log"; } >>"$log"
    rc=1
    GREGOR_PID=
    gregor_restart >>"$log" 2>&1 || BROKER_UP=0
  fi
  record "$name ($((SECONDS - start)) s)" "$rc" "$log"
}

fail() { # fail MESSAGE [LOG_TO_SHOW]
  echo "$1"
  if [ -n "${2:-}" ]; then tail -n 15 "$2" | cut -c1-300; fi
  exit 1
}

check() { python3 "$CHECK" "$@" || fail "kcat_check.py $1: mismatch (details above)"; }

now_ms() { date +%s%3N; }

# ---------------------------------------------------------------------------------------------
# kcat wrappers

kc() {
  timeout "$KCAT_TIMEOUT" kcat -b "$GREGOR_BOOTSTRAP" "$@"
  local rc=$?
  [ "$rc" -ne 124 ] || echo "kcat $* timed out after $KCAT_TIMEOUT s" >&2
  return "$rc"
}

# librdkafka logs to stderr as "%LEVEL|time|FACILITY|...": levels 0-4 are errors and warnings
# (disconnects, request failures, unexpected responses); debug (-d) lines are level 7.
no_client_errors() { # no_client_errors LOG [ALLOWED_REGEX]
  local bad
  bad="$(grep -E '^%[0-4]\|' "$1" | grep -Ev "${2:-^$}" || true)"
  [ -z "$bad" ] || fail "librdkafka reported errors/warnings:"$'\n'"$(echo "$bad" | head -n 10 | cut -c1-300)"
}

# produce TOPIC INPUT [kcat args]: one record per line, key before the first TAB. Debug "msg" makes
# librdkafka log every batch (codec, MsgVersion, PID) to $WORK/TOPIC.produce.log for `check batches`.
produce() {
  local topic=$1 input=$2 log="$WORK/$1.produce.log"
  shift 2
  echo "+ kcat -P -t $topic $*" >>"$log"
  kc -P -t "$topic" -K '\t' -d msg "$@" <"$input" 2>>"$log" || fail "kcat -P -t $topic exited $?" "$log"
  no_client_errors "$log" "${ALLOWED_WARNINGS:-^$}"
}

# consume TOPIC OUT [kcat args]: read until the end (-e) in the parseable format. check.crcs makes
# librdkafka verify every batch CRC, so a broker that rewrites a batch must rewrite its CRC too.
# -e ends on the first empty Fetch at the end, which the broker holds for fetch.wait.max.ms: 100 ms
# instead of 500 keeps the many short reads quick.
consume() {
  local topic=$1 out=$2
  shift 2
  kc -C -t "$topic" -e -f "$FMT" -X check.crcs=true -X fetch.wait.max.ms=100 "$@" >"$out" 2>"$out.log" ||
    fail "kcat -C -t $topic $* exited $?" "$out.log"
  no_client_errors "$out.log" "${ALLOWED_WARNINGS:-^$}"
}

# ---------------------------------------------------------------------------------------------
# Phase A: one broker with defaults (num.partitions=1)

cluster_id() { kc -L -d metadata 2>&1 >/dev/null | grep -o -m 1 'ClusterId: [^,]*' | cut -d' ' -f2; }

t_metadata_fresh() {
  kc -L -J >"$WORK/md-fresh.json" 2>"$WORK/md-fresh.log" || fail "kcat -L exited $?" "$WORK/md-fresh.log"
  check metadata --json "$WORK/md-fresh.json" --bootstrap "$GREGOR_BOOTSTRAP"
  cluster_id >"$WORK/cluster-id"
  [ -s "$WORK/cluster-id" ] || fail "Metadata carried no cluster id"
}

# librdkafka derives "features" from ApiVersions and silently degrades when one is missing
# (e.g. compression off, no offsets-for-times, no idempotence). List what it disabled.
t_api_features() {
  kc -L -d feature >/dev/null 2>"$WORK/features.log" || fail "kcat -L exited $?" "$WORK/features.log"
  local missing="" f
  # (MsgVer1 and ThrottleTime need Fetch v0-v3, which Kafka 4 no longer offers: not required.)
  for f in MsgVer2 ApiVersion LZ4 OffsetTime IdempotentProducer ZSTD; do
    grep -q "Enabling feature $f\$" "$WORK/features.log" || missing="$missing $f"
  done
  if [ -n "$missing" ]; then
    echo "librdkafka disabled:$missing, because:"
    for f in $missing; do
      grep "Feature $f: .*NOT supported by broker" "$WORK/features.log" | sed 's/.*: *Feature/  Feature/' | sort -u
    done
    exit 1
  fi
}

t_codec() { # t_codec CODEC: 10,000 keyed records with headers through one codec and back
  local codec=$1 topic="codec-$1" input="$WORK/codec-$1.in" t0 t1
  check gen "$input" --count 10000 --prefix "$codec" --big-every 1000
  t0=$(now_ms)
  produce "$topic" "$input" -p 0 -z "$codec" -H "codec=$codec" "${HEADER_ARGS[@]}" \
    -X batch.num.messages=1000
  t1=$(now_ms)
  consume "$topic" "$WORK/$topic.out" -p 0 -o beginning
  check verify --input "$input" --output "$WORK/$topic.out" --partition 0 \
    --headers "$(headers_expected "$codec")" --ts-min "$t0" --ts-max "$t1"
  check batches --log "$WORK/$topic.produce.log" --codec "$codec"
}

t_metadata_topics() {
  kc -L -J >"$WORK/md-topics.json" 2>"$WORK/md-topics.log" || fail "kcat -L exited $?" "$WORK/md-topics.log"
  check metadata --json "$WORK/md-topics.json" --bootstrap "$GREGOR_BOOTSTRAP" \
    --topic codec-none:1 --topic codec-gzip:1 --topic codec-snappy:1 --topic codec-lz4:1 --topic codec-zstd:1
  # A single-topic query (Metadata with one topic name) must answer for that topic only.
  kc -L -J -t codec-gzip >"$WORK/md-one.json" 2>"$WORK/md-one.log" || fail "kcat -L -t exited $?" "$WORK/md-one.log"
  check metadata --json "$WORK/md-one.json" --bootstrap "$GREGOR_BOOTSTRAP" --topic codec-gzip:1 --absent codec-none
}

t_json_envelope() { # -J shows the timestamp type, which -f cannot
  kc -C -t codec-zstd -p 0 -o beginning -c 20 -J >"$WORK/envelope.json" 2>"$WORK/envelope.log" ||
    fail "kcat -C -J exited $?" "$WORK/envelope.log"
  check json-envelope --json "$WORK/envelope.json" --output "$WORK/codec-zstd.out" --tstype create
}

t_null_key_value() { # -Z: empty key/value on input become NULL (length -1 on the wire)
  printf 'k1\t\n\tv2\nk3\tv3\n\t\n' >"$WORK/nulls.in"
  produce nulls "$WORK/nulls.in" -p 0 -Z
  kc -C -t nulls -p 0 -o beginning -e -Z -f '%o|%K|%S|%k|%s\n' >"$WORK/nulls.out" 2>"$WORK/nulls.log" ||
    fail "kcat -C exited $?" "$WORK/nulls.log"
  printf '0|2|-1|k1|NULL\n1|-1|2|NULL|v2\n2|2|2|k3|v3\n3|-1|-1|NULL|NULL\n' >"$WORK/nulls.expected"
  diff "$WORK/nulls.expected" "$WORK/nulls.out" || fail "NULL keys/values not preserved (diff: expected vs consumed)"
}

# Two idempotent producer sessions (two producer ids), small batches so up to 5 are in flight.
t_idempotent() {
  local t0 t1
  check gen "$WORK/idem-1.in" --count 10000 --prefix idem1
  check gen "$WORK/idem-2.in" --count 5000 --prefix idem2
  t0=$(now_ms)
  # Kafka answers the first InitProducerId with a retriable COORDINATOR_LOAD_IN_PROGRESS.
  local ALLOWED_WARNINGS='Coordinator load in progress: retrying'
  produce idem "$WORK/idem-1.in" -p 0 -X enable.idempotence=true -X batch.num.messages=100 -X linger.ms=1
  produce idem "$WORK/idem-2.in" -p 0 -X enable.idempotence=true -X batch.num.messages=100 -X linger.ms=1
  t1=$(now_ms)
  check batches --log "$WORK/idem.produce.log" --codec none --idempotent
  cat "$WORK/idem-1.in" "$WORK/idem-2.in" >"$WORK/idem.in"
  consume idem "$WORK/idem.out" -p 0 -o beginning
  check verify --input "$WORK/idem.in" --output "$WORK/idem.out" --partition 0 --ts-min "$t0" --ts-max "$t1"
}

t_acks() { # t_acks 0|1|all
  local acks=$1 topic="acks-$1" t0 t1 i
  check gen "$WORK/$topic.in" --count 3000 --prefix "$topic"
  t0=$(now_ms)
  # Small batches so that, for acks=0, any (wrong) response arrives while kcat still listens.
  produce "$topic" "$WORK/$topic.in" -p 0 -X acks="$acks" -X batch.num.messages=100 -d msg,broker
  t1=$(now_ms)
  # Kafka sends no response at all to an acks=0 Produce; librdkafka drops one it did not expect.
  if grep -q 'Response for unknown CorrId' "$WORK/$topic.produce.log"; then
    fail "the broker answered an acks=0 Produce (librdkafka: $(grep -m1 -o 'Response for unknown CorrId.*' "$WORK/$topic.produce.log"))"
  fi
  # acks=0 returns before the broker has appended anything, so give it a moment to catch up.
  for i in 1 2 3 4 5 6 7 8 9 10; do
    consume "$topic" "$WORK/$topic.out" -p 0 -o beginning
    [ "$(wc -l <"$WORK/$topic.out")" -ge 3000 ] && break
    sleep 0.5
  done
  check verify --input "$WORK/$topic.in" --output "$WORK/$topic.out" --partition 0 --ts-min "$t0" --ts-max "$t1"
}

# "offsets": 5 bursts of 200 records from 5 producer runs 50 ms apart, so timestamps step between
# bursts. offsets.out (all 1000 rows) is the reference the -o tests slice from.
t_offsets_setup() {
  local b
  : >"$WORK/offsets.in"
  for b in 0 1 2 3 4; do
    check gen "$WORK/offsets-$b.in" --count 200 --prefix "burst$b"
    produce offsets "$WORK/offsets-$b.in" -p 0
    cat "$WORK/offsets-$b.in" >>"$WORK/offsets.in"
    sleep 0.05
  done
  consume offsets "$WORK/offsets.out" -p 0 -o beginning
  check verify --input "$WORK/offsets.in" --output "$WORK/offsets.out" --partition 0
  python3 "$CHECK" timestamps --output "$WORK/offsets.out" >"$WORK/offsets.ts"
  [ "$(wc -l <"$WORK/offsets.ts")" -ge 5 ] || fail "expected >= 5 distinct timestamps across the bursts"
}

# "timeidx": gzip batches of 50 records fed slowly, so each compressed batch spans several
# milliseconds. ListOffsets(ts) must then name the exact record inside the batch, which the broker
# can only know by looking inside compressed batches (Kafka decompresses to find it).
t_timeidx_setup() {
  check gen "$WORK/timeidx.in" --count 2000 --prefix timeidx
  python3 "$CHECK" feed "$WORK/timeidx.in" --seconds 2 |
    kc -P -t timeidx -p 0 -K '\t' -z gzip -X batch.num.messages=50 -X linger.ms=20 -d msg 2>"$WORK/timeidx.produce.log" ||
    fail "kcat -P exited $?" "$WORK/timeidx.produce.log"
  no_client_errors "$WORK/timeidx.produce.log"
  check batches --log "$WORK/timeidx.produce.log" --codec gzip
  consume timeidx "$WORK/timeidx.out" -p 0 -o beginning
  check verify --input "$WORK/timeidx.in" --output "$WORK/timeidx.out" --partition 0
  python3 "$CHECK" timestamps --output "$WORK/timeidx.out" >"$WORK/timeidx.ts"
  [ "$(wc -l <"$WORK/timeidx.ts")" -ge 40 ] || fail "expected >= 40 distinct timestamps, got $(wc -l <"$WORK/timeidx.ts")"
}

# expect_slice TOPIC OUT FROM [TO]: OUT must be exactly offsets [FROM, TO) of the reference read
# $WORK/TOPIC.out (everything the topic holds, read from the beginning).
expect_slice() {
  python3 "$CHECK" slice --output "$WORK/$1.out" --from-offset "$3" ${4:+--to-offset "$4"} >"$2.expected"
  cmp -s "$2.expected" "$2" ||
    fail "got $(wc -l <"$2") rows (first offset $(head -n 1 "$2" | cut -f2)), expected offsets [$3, ${4:-end}) of $1: $(wc -l <"$2.expected") rows"
}

t_offset_absolute() { # including offsets inside compressed batches (the broker returns the whole batch)
  consume offsets "$WORK/o-abs.out" -p 0 -o 500
  expect_slice offsets "$WORK/o-abs.out" 500
  local codec
  for codec in gzip zstd; do
    consume "codec-$codec" "$WORK/o-mid-$codec.out" -p 0 -o 1234
    expect_slice "codec-$codec" "$WORK/o-mid-$codec.out" 1234
  done
}

t_offset_tail() { # -o -N: ListOffsets(LATEST) minus N, clamped to 0 by librdkafka
  consume offsets "$WORK/o-tail.out" -p 0 -o -10
  expect_slice offsets "$WORK/o-tail.out" 990
  consume offsets "$WORK/o-tail2.out" -p 0 -o -5000
  expect_slice offsets "$WORK/o-tail2.out" 0
  consume codec-lz4 "$WORK/o-tail3.out" -p 0 -o -1500
  expect_slice codec-lz4 "$WORK/o-tail3.out" 8500
}

t_offset_end() { # -o end: nothing to read, and -e must still see the end
  consume offsets "$WORK/o-end.out" -p 0 -o end
  [ ! -s "$WORK/o-end.out" ] || fail "-o end returned $(wc -l <"$WORK/o-end.out") records"
}

# Fetch at 5000 > high watermark 1000 must fail with OFFSET_OUT_OF_RANGE; librdkafka then resets
# per auto.offset.reset (earliest here) and reads everything. Empty data instead would hang -e.
t_offset_out_of_range() {
  ALLOWED_WARNINGS='out of range|Offset out of range' consume offsets "$WORK/o-oor.out" -p 0 -o 5000 -X auto.offset.reset=earliest
  expect_slice offsets "$WORK/o-oor.out" 0
}

# timestamp_probes TOPIC [MAX]: before the first record, every distinct timestamp (at most MAX,
# evenly spread), just before/after a step, and after the last record.
timestamp_probes() {
  local ts="$WORK/$1.ts" max=${2:-1000} n first second third last
  n=$(wc -l <"$ts")
  first=$(head -n 1 "$ts")
  second=$(sed -n 2p "$ts")
  third=$(sed -n 3p "$ts")
  last=$(tail -n 1 "$ts")
  second=${second:-$first} third=${third:-$second}
  echo $((first - 100000))
  awk -v n="$n" -v max="$max" 'NR > 1 && (n <= max || NR % int(n / max + 1) == 0)' "$ts"
  echo $((second - 1)) $((third + 1)) $((last + 1))
}

t_offsets_for_times() { # -o s@TS: ListOffsets with a timestamp, first offset with ts >= TS
  local topic ts expected n=0
  for topic in offsets timeidx; do
    for ts in $(timestamp_probes "$topic" 6); do
      expected=$(python3 "$CHECK" first-offset-at --output "$WORK/$topic.out" --ts "$ts")
      consume "$topic" "$WORK/o-ts-$n.out" -p 0 -o "s@$ts"
      if [ "$expected" = -1 ]; then
        [ ! -s "$WORK/o-ts-$n.out" ] || fail "$topic s@$ts (after the last record) returned $(wc -l <"$WORK/o-ts-$n.out") records, expected none"
      else
        expect_slice "$topic" "$WORK/o-ts-$n.out" "$expected"
      fi
      n=$((n + 1))
    done
  done
}

# query_offsets TOPIC END [MAX]: kcat -Q gives the raw ListOffsets answers (partition 0), for
# timestamps and for LATEST (-1) and EARLIEST (-2).
query_offsets() {
  local topic=$1 end=$2 ts expected got
  for ts in $(timestamp_probes "$topic" "${3:-1000}") -1 -2; do
    case $ts in
    -1) expected=$end ;;
    -2) expected=0 ;;
    *) expected=$(python3 "$CHECK" first-offset-at --output "$WORK/$topic.out" --ts "$ts") ;;
    esac
    got=$(kc -Q -t "$topic:0:$ts" 2>"$WORK/query.log") || fail "kcat -Q -t $topic:0:$ts exited $?" "$WORK/query.log"
    [ "$got" = "$topic [0] offset $expected" ] || fail "-Q $topic:0:$ts answered '$got', expected '$topic [0] offset $expected'"
  done
}

t_query_offsets() {
  query_offsets offsets 1000
  query_offsets timeidx 2000 30
}

t_stop_timestamp() { # -o s@A -o e@B: the records with A <= ts < B
  local a b from to
  a=$(sed -n 2p "$WORK/offsets.ts")
  b=$(sed -n 4p "$WORK/offsets.ts")
  from=$(python3 "$CHECK" first-offset-at --output "$WORK/offsets.out" --ts "$a")
  to=$(python3 "$CHECK" first-offset-at --output "$WORK/offsets.out" --ts "$b")
  consume offsets "$WORK/o-range.out" -p 0 -o "s@$a" -o "e@$b"
  expect_slice offsets "$WORK/o-range.out" "$from" "$to"
}

# librdkafka defaults to isolation.level=read_committed: Fetch v4+ and ListOffsets v2 carry
# isolation_level=1 and it stops at the last stable offset (LSO), not the high watermark. Without
# transactions Kafka's LSO equals the high watermark; a wrong LSO hides records or breaks -e.
t_read_committed() {
  consume codec-none "$WORK/rc-uncommitted.out" -p 0 -o beginning -X isolation.level=read_uncommitted
  cmp -s "$WORK/codec-none.out" "$WORK/rc-uncommitted.out" ||
    fail "read_committed and read_uncommitted consumers saw different records"
  kc -C -t codec-none -p 0 -o -3 -e -d msg -f '%o\n' >/dev/null 2>"$WORK/rc-debug.log" ||
    fail "kcat -C exited $?" "$WORK/rc-debug.log"
  local seen
  seen=$(grep -oE 'MaxOffset -?[0-9]+, LSO -?[0-9]+' "$WORK/rc-debug.log" | sort -u)
  [ -n "$seen" ] || fail "no Fetch response debug lines (expected 'MaxOffset N, LSO N')"
  echo "$seen" | awk '{ gsub(",", "", $2); if ($2 != $4) bad = bad "\n  high watermark " $2 " but LSO " $4 }
    END { if (bad != "") { print "Fetch returned a last stable offset different from the high watermark (no transactions):" bad; exit 1 } }'
}

# A consumer waiting at the end must get a new record as soon as it is written: Kafka parks the
# Fetch (fetch.wait.max.ms, 3 s here) and completes it when data arrives, it does not sleep it out.
t_tail_wakeup() {
  echo "seed" >"$WORK/tail-seed.in"
  produce tail "$WORK/tail-seed.in" -p 0
  kc -C -t tail -p 0 -o 1 -c 1 -u -f '%T\n' -X fetch.wait.max.ms=3000 -d fetch >"$WORK/tail.out" 2>"$WORK/tail.log" &
  local consumer=$! done_ms i
  # Produce only once the consumer is fetching at the end (offset 1), so its Fetch is parked.
  for i in $(seq 1 100); do
    grep -q 'Fetch topic tail \[0\] at offset 1' "$WORK/tail.log" && break
    sleep 0.1
  done
  sleep 0.2
  echo "wake up" >"$WORK/tail-new.in"
  produce tail "$WORK/tail-new.in" -p 0
  wait "$consumer" || fail "the tailing consumer exited $?" "$WORK/tail.log"
  done_ms=$(now_ms)
  [ -s "$WORK/tail.out" ] || fail "the tailing consumer got nothing"
  echo "record timestamp $(cat "$WORK/tail.out"), consumer done at $done_ms"
  [ $((done_ms - $(cat "$WORK/tail.out"))) -lt 1000 ] ||
    fail "the new record reached the consumer $((done_ms - $(cat "$WORK/tail.out"))) ms after it was produced (Fetch not woken by the append?)"
}

t_unknown_topic_consumer() { # librdkafka consumers ask Metadata with allow_auto_topic_creation=false
  if kc -C -t no-such-topic -p 0 -o beginning -e >/dev/null 2>"$WORK/unknown.log"; then
    fail "consuming a missing topic succeeded (the consumer must not auto-create it)"
  fi
  grep -q 'Unknown topic or partition' "$WORK/unknown.log" || fail "expected 'Unknown topic or partition'" "$WORK/unknown.log"
  kc -L -J >"$WORK/md-after.json" 2>/dev/null || fail "kcat -L failed"
  check metadata --json "$WORK/md-after.json" --bootstrap "$GREGOR_BOOTSTRAP" --absent no-such-topic
}

t_large_records() { # ~650 KB values: one record per batch, each close to the 1 MB fetch size
  check gen "$WORK/large.in" --count 4 --prefix large --keys none --big-every 1 --big-size 500000
  produce large "$WORK/large.in" -p 0
  consume large "$WORK/large.out" -p 0 -o beginning
  check verify --input "$WORK/large.in" --output "$WORK/large.out" --partition 0
}

# A 1.1 MB record is over Kafka's default message.max.bytes (1048588): the broker must refuse it
# with MESSAGE_TOO_LARGE (error 10), so kcat reports a failed delivery and nothing is stored.
t_oversized_record() {
  python3 -c 'print("x" * 1100000)' >"$WORK/oversize.in"
  if kc -P -t oversize -p 0 -X message.max.bytes=2000000 <"$WORK/oversize.in" 2>"$WORK/oversize.log"; then
    fail "producing a 1.1 MB record succeeded; expected MESSAGE_TOO_LARGE"
  fi
  grep -q 'Message size too large' "$WORK/oversize.log" || fail "expected 'Broker: Message size too large'" "$WORK/oversize.log"
  consume oversize "$WORK/oversize.out" -p 0 -o beginning
  [ ! -s "$WORK/oversize.out" ] || fail "the rejected record was stored anyway"
}

# Kafka allows topic names up to 249 characters (Topic.MAX_NAME_LENGTH) and refuses longer ones
# with INVALID_TOPIC_EXCEPTION (17). (The file names here would be too long: direct kcat calls.)
t_topic_name_lengths() {
  local n topic got
  for n in 200 249; do
    topic=$(printf "len$n-%0$((n - 7))d" 0)
    echo "value-$n" | kc -P -t "$topic" -p 0 2>"$WORK/longname.log" ||
      fail "producing to a topic named with $n characters failed" "$WORK/longname.log"
    got=$(kc -C -t "$topic" -p 0 -o beginning -e -f '%s\n' 2>>"$WORK/longname.log") ||
      fail "consuming the $n-character topic failed" "$WORK/longname.log"
    [ "$got" = "value-$n" ] || fail "the $n-character topic returned '$got'"
  done
  if echo x | kc -P -t "$(printf 'len250-%0243d' 0)" -p 0 2>"$WORK/longname.log"; then
    fail "a 250-character topic name was accepted"
  fi
  grep -q 'Invalid topic' "$WORK/longname.log" || fail "expected 'Broker: Invalid topic' for 250 characters" "$WORK/longname.log"
}

# '.' and '_' map to the same metric names, so Kafka refuses to create a topic whose name collides
# with an existing one that way (Topic.hasCollision); its Metadata answers UNKNOWN_TOPIC_OR_PARTITION.
t_topic_name_collision() {
  echo "first" >"$WORK/collide.in"
  produce coll_ide "$WORK/collide.in" -p 0
  if echo "second" | kc -P -t coll.ide -p 0 -X topic.metadata.propagation.max.ms=1000 -X message.timeout.ms=5000 \
    2>"$WORK/collide.log"; then
    fail "auto-created topic coll.ide although coll_ide exists"
  fi
  kc -L -J >"$WORK/md-collide.json" 2>/dev/null || fail "kcat -L failed"
  check metadata --json "$WORK/md-collide.json" --bootstrap "$GREGOR_BOOTSTRAP" --topic coll_ide:1 --absent coll.ide
}

# Clients may not write to Kafka's internal topics: Produce to __consumer_offsets fails with
# INVALID_TOPIC_EXCEPTION ("Cannot append to internal topic").
t_internal_topic() {
  if echo "x" | kc -P -t __consumer_offsets -p 0 -X message.timeout.ms=5000 2>"$WORK/internal.log"; then
    fail "a client record was appended to __consumer_offsets"
  fi
  grep -q 'Invalid topic' "$WORK/internal.log" || fail "expected 'Broker: Invalid topic'" "$WORK/internal.log"
}

# After a restart every topic must read back byte for byte as before (offsets, timestamps,
# headers, keys), answer offsets-for-times the same, and continue at the old end offset.
RESTART_TOPICS=(codec-none codec-gzip codec-snappy codec-lz4 codec-zstd idem acks-0 acks-1 acks-all offsets timeidx large)
t_restart_keeps_data() { # t_restart_keeps_data LABEL
  local topic
  for topic in "${RESTART_TOPICS[@]}"; do
    [ -s "$WORK/$topic.out" ] || { echo "skipping $topic (no earlier output)"; continue; }
    consume "$topic" "$WORK/$topic.$1.out" -p 0 -o beginning
    cmp -s "$WORK/$topic.out" "$WORK/$topic.$1.out" ||
      fail "$topic reads differently after the $1: $(wc -l <"$WORK/$topic.$1.out") records vs $(wc -l <"$WORK/$topic.out") before"
  done
  [ "$(cluster_id)" = "$(cat "$WORK/cluster-id")" ] || fail "the cluster id changed across the $1"
  [ -s "$WORK/offsets.ts" ] && query_offsets offsets 1000
  [ -s "$WORK/timeidx.ts" ] && query_offsets timeidx 2000 30
  echo ok
}

t_append_after_restart() {
  check gen "$WORK/append.in" --count 100 --prefix append
  produce codec-none "$WORK/append.in" -p 0
  consume codec-none "$WORK/append.out" -p 0 -o 10000
  check verify --input "$WORK/append.in" --output "$WORK/append.out" --partition 0 --first-offset 10000
}

# Clean shutdown runs in the main shell (it owns the broker process). lib.sh's gregor_stop waits
# forever, so a watchdog SIGKILLs a broker that ignores SIGTERM for 20 s and the test fails.
# An optional third argument names a function started in the background to keep a client busy
# across the stop, and the fourth a command that succeeds once that client is busy: the stop
# waits for it (a fixed sleep raced a slow start of the client on a loaded machine, and the
# broker was killed and back before the client had sent anything).
stop_and_restart() { # stop_and_restart NAME stop|kill9 [BACKGROUND_FUNCTION READY_COMMAND]
  local name="$PHASE$1" log pid=$GREGOR_PID rc=0 bg="" i
  log="$(log_path "$1")"
  if [ "$BROKER_UP" != 1 ]; then echo "not run: the broker is not running" >"$log"; record "$name" 1 "$log"; return; fi
  if [ -n "${3:-}" ]; then
    "$3" >>"$log" 2>&1 &
    bg=$!
    for i in $(seq 1 600); do
      eval "$4" && break
      kill -0 "$bg" 2>/dev/null || break
      sleep 0.1
    done
  fi
  if [ "$2" = kill9 ]; then
    gregor_kill9
  else
    (sleep 20; kill -KILL "$pid" 2>/dev/null && echo "broker ignored SIGTERM for 20 s; killed") >>"$log" 2>&1 &
    local watchdog=$!
    gregor_stop
    kill "$watchdog" 2>/dev/null
    wait "$watchdog" 2>/dev/null
    grep -q killed "$log" && rc=1
  fi
  if ! gregor_restart >>"$log" 2>&1; then
    echo "broker did not start again on the same data directory" >>"$log"
    tail -n 15 "$GREGOR_DATA.log" >>"$log"
    BROKER_UP=0
    rc=1
  fi
  [ -z "$bg" ] || wait "$bg"
  record "$name" "$rc" "$log"
}

# Runs while the broker is SIGKILLed and restarted: an idempotent producer keeps sending across the
# crash, so batches the broker wrote but never acknowledged are retried and must be de-duplicated
# by producer id and sequence number after recovery. -E: kcat would otherwise give up on
# "all brokers down" while the broker restarts.
idempotent_producer_across_crash() {
  check gen "$WORK/idem-crash.in" --count 3000 --prefix idemcrash
  python3 "$CHECK" feed "$WORK/idem-crash.in" --seconds 3 |
    kc -P -t idem-crash -p 1 -E -K '\t' -X enable.idempotence=true -X batch.num.messages=10 -X linger.ms=5 \
      -d msg 2>"$WORK/idem-crash.produce.log"
  echo "$?" >"$WORK/idem-crash.rc"
}

t_idempotent_across_crash() {
  local rc
  rc=$(cat "$WORK/idem-crash.rc" 2>/dev/null || echo "unknown")
  [ "$rc" = 0 ] || fail "the idempotent producer exited $rc" "$WORK/idem-crash.produce.log"
  grep -qE 'Connection refused|Disconnected' "$WORK/idem-crash.produce.log" ||
    fail "the producer never saw the broker go away (finished too early?)"
  # Connection errors while the broker was down are expected (and Kafka's retriable
  # COORDINATOR_LOAD_IN_PROGRESS on InitProducerId); anything else, e.g. sequence errors, is not.
  no_client_errors "$WORK/idem-crash.produce.log" \
    'Connect to|Disconnected|brokers are down|Broker transport failure|Coordinator load in progress: retrying'
  check batches --log "$WORK/idem-crash.produce.log" --codec none --idempotent
  consume idem-crash "$WORK/idem-crash.out" -p 1 -o beginning
  check verify --input "$WORK/idem-crash.in" --output "$WORK/idem-crash.out" --partition 1
}

# ---------------------------------------------------------------------------------------------
# Phase B: num.partitions=4, auto-created topics

t_multi_autocreate() {
  check gen "$WORK/multi-0.in" --count 2500 --prefix p0
  produce multi "$WORK/multi-0.in" -p 0
  kc -L -J >"$WORK/md-multi.json" 2>"$WORK/md-multi.log" || fail "kcat -L exited $?" "$WORK/md-multi.log"
  check metadata --json "$WORK/md-multi.json" --bootstrap "$GREGOR_BOOTSTRAP" --topic multi:4
}

t_multi_per_partition() { # partitions 1 and 2 get their own records, 3 stays empty
  local p
  for p in 1 2; do
    check gen "$WORK/multi-$p.in" --count 2500 --prefix "p$p" --big-every 500
    produce multi "$WORK/multi-$p.in" -p "$p" -z lz4
  done
  for p in 0 1 2; do
    consume multi "$WORK/multi-p$p.out" -p "$p" -o beginning
    check verify --input "$WORK/multi-$p.in" --output "$WORK/multi-p$p.out" --partition "$p"
  done
}

t_multi_empty_partition() { # -e on an empty partition: EOF at offset 0, promptly
  local start=$SECONDS
  consume multi "$WORK/multi-p3.out" -p 3 -o beginning
  [ ! -s "$WORK/multi-p3.out" ] || fail "empty partition 3 returned records"
  [ $((SECONDS - start)) -lt 10 ] || fail "reaching the end of an empty partition took $((SECONDS - start)) s"
}

t_multi_whole_topic() { # no -p: all four partitions in one consumer, -e needs EOF on each
  local p
  consume multi "$WORK/multi-all.out" -o beginning
  [ "$(wc -l <"$WORK/multi-all.out")" -eq 7500 ] || fail "whole-topic read returned $(wc -l <"$WORK/multi-all.out") records, expected 7500"
  for p in 0 1 2; do
    check verify --input "$WORK/multi-$p.in" --output "$WORK/multi-all.out" --partition "$p"
  done
}

# Keyed records without -p: librdkafka's partitioner spreads them, so each Produce request carries
# batches for several partitions at once. Each partition must hold its share in produce order.
t_multi_keyed() {
  local p
  check gen "$WORK/keyed.in" --count 4000 --prefix keyed
  produce keyed "$WORK/keyed.in" -z snappy
  for p in 0 1 2 3; do
    consume keyed "$WORK/keyed-p$p.out" -p "$p" -o beginning
    [ -s "$WORK/keyed-p$p.out" ] || fail "partition $p of keyed got no records"
  done
  cat "$WORK"/keyed-p?.out >"$WORK/keyed.out"
  check spread --input "$WORK/keyed.in" --output "$WORK/keyed.out" --partitions 4
}

t_multi_query_offsets() { # one ListOffsets request for four partitions; 3 is empty
  local got expected
  got=$(kc -Q -t multi:0:-1 -t multi:1:0 -t multi:2:-2 -t multi:3:0 2>"$WORK/mq.log") ||
    fail "kcat -Q exited $?" "$WORK/mq.log"
  expected=$(printf 'multi [0] offset 2500\nmulti [1] offset 0\nmulti [2] offset 0\nmulti [3] offset -1')
  [ "$got" = "$expected" ] || fail "-Q answered:"$'\n'"$got"$'\n'"expected:"$'\n'"$expected"
}

t_multi_after_crash() { # acknowledged (acks=all) records survive SIGKILL
  consume multi "$WORK/multi-all.crash.out" -o beginning
  sort "$WORK/multi-all.out" >"$WORK/multi-all.sorted"
  sort "$WORK/multi-all.crash.out" >"$WORK/multi-all.crash.sorted"
  cmp -s "$WORK/multi-all.sorted" "$WORK/multi-all.crash.sorted" ||
    fail "after kill -9 the topic holds $(wc -l <"$WORK/multi-all.crash.out") records, $(wc -l <"$WORK/multi-all.out") before"
}

# ---------------------------------------------------------------------------------------------
# Phase C: log.message.timestamp.type=LogAppendTime (the broker rewrites timestamps and the CRC)

t_log_append_time() { # t_log_append_time CODEC
  local codec=$1 topic="lat-$1" t0 t1
  check gen "$WORK/$topic.in" --count 2000 --prefix "$topic"
  t0=$(now_ms)
  produce "$topic" "$WORK/$topic.in" -p 0 -z "$codec" -X batch.num.messages=500
  t1=$(now_ms)
  consume "$topic" "$WORK/$topic.out" -p 0 -o beginning
  check verify --input "$WORK/$topic.in" --output "$WORK/$topic.out" --partition 0 --ts-min "$t0" --ts-max "$t1"
  kc -C -t "$topic" -p 0 -o beginning -e -J -X check.crcs=true >"$WORK/$topic.json" 2>"$WORK/$topic.json.log" ||
    fail "kcat -C -J exited $?" "$WORK/$topic.json.log"
  check json-envelope --json "$WORK/$topic.json" --output "$WORK/$topic.out" --tstype logappend
  # The time index must hold the append times the broker wrote, not the producer's.
  python3 "$CHECK" timestamps --output "$WORK/$topic.out" >"$WORK/$topic.ts"
  query_offsets "$topic" 2000 10
}

# ---------------------------------------------------------------------------------------------
# Phase D: consumer groups (kcat -G: JoinGroup/SyncGroup/Heartbeat/LeaveGroup, OffsetCommit/Fetch),
# num.partitions=4 and group.initial.rebalance.delay.ms=0 so a new group forms at once

# group_consume OUT GROUP TOPIC [kcat args]: a balanced consumer reading until every assigned
# partition is at its end (-e), then closing (final commit, LeaveGroup).
group_consume() {
  local out=$1 group=$2 topic=$3
  shift 3
  kc -e -f "$FMT" -X check.crcs=true -X fetch.wait.max.ms=100 -X auto.offset.reset=earliest "$@" \
    -G "$group" "$topic" >"$out" 2>"$out.log" || fail "kcat -G $group $topic $* exited $?" "$out.log"
  no_client_errors "$out.log"
}

# group_fill TOPIC ROUND COUNT: COUNT more records into each of the 4 partitions
# ($WORK/TOPIC-ROUND-P.in), after noting each partition's end offset ($WORK/TOPIC-ROUND-P.first).
group_fill() {
  local p end
  for p in 0 1 2 3; do
    end=0
    if [ "$2" != 1 ]; then
      end=$(kc -Q -t "$1:$p:-1" 2>/dev/null | awk '{ print $NF }')
    fi
    echo "${end:-0}" >"$WORK/$1-$2-$p.first"
    check gen "$WORK/$1-$2-$p.in" --count "$3" --prefix "$1-$2-p$p"
    produce "$1" "$WORK/$1-$2-$p.in" -p "$p"
  done
}

# group_expect OUT TOPIC ROUND: OUT holds exactly round ROUND of every partition.
group_expect() {
  local p
  for p in 0 1 2 3; do
    check verify --input "$WORK/$2-$3-$p.in" --output "$1" --partition "$p" --first-offset "$(cat "$WORK/$2-$3-$p.first")"
  done
}

# One member gets all four partitions and reads them; its commits (auto-commit, and the final one
# in close) make the next run of the same group read only what was produced since.
t_group_consume_commit() {
  group_fill grp 1 500
  group_consume "$WORK/grp-1.out" grp-g1 grp
  [ "$(grep -m 1 ' assigned: ' "$WORK/grp-1.out.log" | grep -o 'grp \[[0-3]\]' | sort -u | wc -l)" -eq 4 ] ||
    fail "the only member was not assigned all 4 partitions" "$WORK/grp-1.out.log"
  group_expect "$WORK/grp-1.out" grp 1
  group_consume "$WORK/grp-1b.out" grp-g1 grp
  [ ! -s "$WORK/grp-1b.out" ] || fail "a second run of the group re-read $(wc -l <"$WORK/grp-1b.out") records (commits lost?)"
  group_fill grp 2 100
  group_consume "$WORK/grp-2.out" grp-g1 grp
  group_expect "$WORK/grp-2.out" grp 2
}

# After a broker restart (SIGTERM or SIGKILL) the group resumes at its committed offsets.
t_group_resume_after_restart() { # t_group_resume_after_restart ROUND
  group_fill grp "$1" 50
  group_consume "$WORK/grp-$1.out" grp-g1 grp
  group_expect "$WORK/grp-$1.out" grp "$1"
}

# partitions_of LOG TOPIC: the partitions a kcat -G process owns after the rebalances its log shows
# (eager: "assigned: t [0], ..." / "revoked: ..."; cooperative: "incremental assignment of N
# partition(s) ...: t [0], ..." / "incremental revoke of ...").
partitions_of() {
  awk -v t="$2" '
    /rebalanced/ {
      if (/ assigned: /) { split("", own); mode = "add" }
      else if (/ revoked: /) { split("", own); mode = "" }
      else if (/incremental assignment/) mode = "add"
      else if (/incremental revoke/) mode = "del"
      else mode = ""
      line = $0
      while (mode != "" && match(line, t " \\[[0-9]+\\]")) {
        p = substr(line, RSTART + length(t) + 2, RLENGTH - length(t) - 3)
        if (mode == "add") own[p] = 1; else delete own[p]
        line = substr(line, RSTART + RLENGTH)
      }
    }
    END { n = 0; for (p in own) list[n++] = p + 0; for (i = 0; i < n; i++) for (j = i + 1; j < n; j++)
            if (list[j] < list[i]) { x = list[i]; list[i] = list[j]; list[j] = x }
          s = ""; for (i = 0; i < n; i++) s = s (i ? "," : "") list[i]; print s }' "$1"
}

# Two kcat -G processes share the group: the first reads everything alone, the second joins and
# takes half of the partitions. Records produced after that go to exactly one of them, by
# partition; after both stop (SIGTERM: final commit, LeaveGroup) nothing is left unread.
t_group_split() { # t_group_split NAME [kcat args]
  local name=$1 topic="grp-$1" group="grp-$1-g" a="$WORK/grp-$1-a" b="$WORK/grp-$1-b" i
  shift
  group_fill "$topic" 1 300
  timeout 90 kcat -b "$GREGOR_BOOTSTRAP" -u -f "$FMT" -X auto.offset.reset=earliest -X fetch.wait.max.ms=100 "$@" \
    -G "$group" "$topic" >"$a.out" 2>"$a.log" &
  local pa=$!
  for i in $(seq 1 300); do [ "$(wc -l <"$a.out")" -ge 1200 ] && break; sleep 0.1; done
  [ "$(wc -l <"$a.out")" -eq 1200 ] || { kill "$pa"; fail "the first member read $(wc -l <"$a.out") of 1200 records" "$a.log"; }
  timeout 90 kcat -b "$GREGOR_BOOTSTRAP" -u -f "$FMT" -X auto.offset.reset=earliest -X fetch.wait.max.ms=100 "$@" \
    -G "$group" "$topic" >"$b.out" 2>"$b.log" &
  local pb=$!
  for i in $(seq 1 300); do
    [ -n "$(partitions_of "$b.log" "$topic")" ] && [ "$(partitions_of "$a.log" "$topic" | tr ',' '\n' | wc -l)" -eq 2 ] && break
    sleep 0.1
  done
  local pa_parts pb_parts
  pa_parts=$(partitions_of "$a.log" "$topic")
  pb_parts=$(partitions_of "$b.log" "$topic")
  echo "first member: $pa_parts; second member: $pb_parts"
  if [ "$(printf '%s\n%s\n' "$pa_parts" "$pb_parts" | tr ',' '\n' | grep -c .)" -ne 4 ] ||
    [ "$(printf '%s,%s' "$pa_parts" "$pb_parts" | tr ',' '\n' | sort -u | paste -sd, -)" != "0,1,2,3" ]; then
    kill "$pa" "$pb" 2>/dev/null
    fail "after the second member joined the members own '$pa_parts' and '$pb_parts', expected 2 partitions each, disjoint"
  fi
  group_fill "$topic" 2 200
  for i in $(seq 1 300); do [ $(($(wc -l <"$a.out") + $(wc -l <"$b.out"))) -ge 2000 ] && break; sleep 0.1; done
  sleep 0.5
  kill -TERM "$pa" "$pb"
  wait "$pa" "$pb" || true
  no_client_errors "$a.log"
  no_client_errors "$b.log"
  cat "$a.out" "$b.out" >"$WORK/grp-$name-all.out"
  # Round 1 was read by the first member alone (it committed on revoke/at the interval); round 2
  # exactly once, each partition by the member that owns it.
  local p
  for p in 0 1 2 3; do
    awk -F'\t' -v p="$p" '$1 == p && $2 >= 300' "$WORK/grp-$name-all.out" >"$WORK/grp-$name-r2-$p.out"
    check verify --input "$WORK/$topic-2-$p.in" --output "$WORK/grp-$name-r2-$p.out" --partition "$p" --first-offset 300
    case ",$pa_parts," in *",$p,"*) owner=$a.out ;; *) owner=$b.out ;; esac
    [ "$(awk -F'\t' -v p="$p" '$1 == p && $2 >= 300' "$owner" | wc -l)" -eq 200 ] ||
      fail "partition $p: the records produced after the split did not all go to its owner ($owner)"
  done
  local dups
  dups=$(cut -f1,2 "$WORK/grp-$name-all.out" | sort | uniq -d | wc -l)
  [ "$dups" -eq 0 ] || fail "$dups records were consumed by both members (no member failed)"
  group_consume "$WORK/grp-$name-rest.out" "$group" "$topic" "$@"
  [ ! -s "$WORK/grp-$name-rest.out" ] || fail "after both members stopped, a new member re-read $(wc -l <"$WORK/grp-$name-rest.out") records"
}

# group_member NAME GROUP TOPIC [kcat args]: a kcat -G process in the background ($WORK/NAME.out,
# $WORK/NAME.log); its pid in MEMBER_PID.
group_member() {
  local name=$1 group=$2 topic=$3
  shift 3
  timeout 90 kcat -b "$GREGOR_BOOTSTRAP" -u -f "$FMT" -X auto.offset.reset=earliest -X fetch.wait.max.ms=100 "$@" \
    -G "$group" "$topic" >"$WORK/$name.out" 2>"$WORK/$name.log" &
  MEMBER_PID=$!
}

# wait_owned LOG TOPIC EXPECTED SECONDS: until partitions_of LOG is EXPECTED ("2" = any two partitions).
wait_owned() {
  local i got
  for i in $(seq 1 $(($4 * 10))); do
    got=$(partitions_of "$1" "$2")
    if [ "$3" = 2 ]; then [ "$(echo "$got" | tr ',' '\n' | grep -c .)" -eq 2 ] && return 0
    elif [ "$got" = "$3" ]; then return 0; fi
    sleep 0.1
  done
  return 1
}

# KIP-345 with librdkafka (JoinGroup v5 with group.instance.id): a static member that stops (no
# LeaveGroup for static members) and comes back within session.timeout.ms gets its partitions back,
# and the other member sees no rebalance.
t_group_static() {
  local topic=grp-static group=grp-static-g a b a2 parts
  group_fill "$topic" 1 10
  group_member static-a "$group" "$topic" -X group.instance.id=static-a -X session.timeout.ms=10000
  a=$MEMBER_PID
  group_member static-b "$group" "$topic" -X group.instance.id=static-b -X session.timeout.ms=10000
  b=$MEMBER_PID
  if ! wait_owned "$WORK/static-a.log" "$topic" 2 30 || ! wait_owned "$WORK/static-b.log" "$topic" 2 30; then
    kill "$a" "$b" 2>/dev/null
    fail "the two static members did not get 2 partitions each: '$(partitions_of "$WORK/static-a.log" "$topic")' and '$(partitions_of "$WORK/static-b.log" "$topic")'"
  fi
  sleep 1
  parts=$(partitions_of "$WORK/static-a.log" "$topic")
  local b_rebalances
  b_rebalances=$(grep -c rebalanced "$WORK/static-b.log")
  kill -TERM "$a"
  wait "$a" || true
  group_member static-a2 "$group" "$topic" -X group.instance.id=static-a -X session.timeout.ms=10000
  a2=$MEMBER_PID
  local start=$SECONDS
  if ! wait_owned "$WORK/static-a2.log" "$topic" "$parts" 15; then
    kill "$a2" "$b" 2>/dev/null
    fail "the restarted static member owns '$(partitions_of "$WORK/static-a2.log" "$topic")', before the restart it owned '$parts'" "$WORK/static-a2.log"
  fi
  echo "restarted static member got $parts back after $((SECONDS - start)) s"
  sleep 3
  local now
  now=$(grep -c rebalanced "$WORK/static-b.log")
  kill -TERM "$a2" "$b"
  wait "$a2" "$b" || true
  [ "$now" -eq "$b_rebalances" ] ||
    fail "the other static member was rebalanced $((now - b_rebalances)) time(s) although its peer came back within the session timeout:"$'\n'"$(grep rebalanced "$WORK/static-b.log")"
}

# A member killed with SIGKILL sends no LeaveGroup: after session.timeout.ms (6 s) the coordinator
# must drop it and the survivor must own every partition.
t_group_member_killed() {
  local topic=grp-kill group=grp-kill-g a b
  group_fill "$topic" 1 10
  group_member kill-a "$group" "$topic" -X session.timeout.ms=6000 -X heartbeat.interval.ms=500
  a=$MEMBER_PID
  group_member kill-b "$group" "$topic" -X session.timeout.ms=6000 -X heartbeat.interval.ms=500
  b=$MEMBER_PID
  if ! wait_owned "$WORK/kill-a.log" "$topic" 2 30 || ! wait_owned "$WORK/kill-b.log" "$topic" 2 30; then
    kill "$a" "$b" 2>/dev/null
    fail "the two members did not get 2 partitions each"
  fi
  pkill -KILL -P "$a" # kcat itself: $a is the timeout(1) wrapping it, which cannot pass SIGKILL on
  local start=$SECONDS
  wait "$a" 2>/dev/null || true
  if ! wait_owned "$WORK/kill-b.log" "$topic" 0,1,2,3 25; then
    kill "$b" 2>/dev/null
    fail "25 s after the other member was killed the survivor owns '$(partitions_of "$WORK/kill-b.log" "$topic")'" "$WORK/kill-b.log"
  fi
  local took=$((SECONDS - start))
  kill -TERM "$b"
  wait "$b" || true
  echo "survivor owned all partitions $took s after the kill"
  [ "$took" -le 12 ] || fail "the killed member's partitions moved after $took s, expected within session.timeout.ms (6 s) + 6 s"
}

# ---------------------------------------------------------------------------------------------
# Phase E: the test control plane (gregor only: Kafka has no admin listener)

admin_get() { # admin_get PATH: the admin listener's JSON answer
  python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=30).read().decode())' \
    "http://127.0.0.1:$ADMIN_PORT$1"
}

t_journal() {
  local client=kcat-journal
  printf 'k1\tv1\nk2\tv2\n' >"$WORK/journal.in"
  produce journal-t "$WORK/journal.in" -X client.id=$client
  admin_get "/v1/journal?client_id=$client" >"$WORK/journal.json" || fail "GET /v1/journal failed"
  python3 - "$WORK/journal.json" <<'PY' || fail "the journal does not show the kcat run" "$WORK/journal.json"
import json, sys
entries = json.load(open(sys.argv[1]))["entries"]
apis = [e["api"] for e in entries]
print("journal:", apis)
for api in ("ApiVersions", "Metadata", "Produce"):
    assert api in apis, f"no {api} in {apis}"
hello = next(e for e in entries if e["api"] == "ApiVersions" and e["api_version"] >= 3)
# kcat names itself (client.software.name) on top of librdkafka; either way a name and version.
print("client software:", hello["client_software_name"], hello["client_software_version"])
assert hello["client_software_name"] in ("kcat", "librdkafka"), hello
assert hello["client_software_version"], hello
produced = [e for e in entries if e["api"] == "Produce"]
assert all(e["topics"][0]["topic"] == "journal-t" and e["errors"] == ["NONE"] for e in produced), produced
PY
}

# ---------------------------------------------------------------------------------------------
# Phase F: security, as compat/java's security group sets it up: SASL_SSL (PLAIN, and
# SCRAM-SHA-512 with the user created on the PLAINTEXT listener) and SSL with a client
# certificate the broker requires (mutual TLS); PEM certificates made with openssl at test time.
# librdkafka before 2.6.1 (bookworm's 2.0.2 here) repeats the client nonce in its SCRAM
# client-final message; Kafka 4 checks the nonce as RFC 5802 says and refuses it, and so must
# gregor (FINDINGS.md): this librdkafka's SASL_SSL round trip goes through PLAIN.

make_certs() { # make_certs DIR: a CA, a server certificate for 127.0.0.1 and a client one
  local d=$1 n subject
  mkdir -p "$d"
  (
    cd "$d" || exit 1
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=kcat-compat-ca || exit 1
    for n in server client; do
      subject=/CN=localhost
      [ "$n" = client ] && subject=/O=gregor-compat/OU=tests/CN=alice
      openssl req -newkey rsa:2048 -nodes -keyout "$n.key" -out "$n.csr" -subj "$subject" &&
        openssl x509 -req -in "$n.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$n.pem" -days 2 \
          -extfile san.ext || exit 1
    done
    cat server.key server.pem >server-keystore.pem
  ) >"$d/openssl.log" 2>&1
}

# ks BOOTSTRAP [kcat args]: kcat on a secured listener (kc always uses the PLAINTEXT one).
ks() {
  local bootstrap=$1
  shift
  timeout "$KCAT_TIMEOUT" kcat -b "$bootstrap" "$@"
}

sasl_args() { # sasl_args MECHANISM PASSWORD: kcat's settings for alice over SASL_SSL
  SEC_ARGS=(-X security.protocol=SASL_SSL -X "sasl.mechanisms=$1" -X sasl.username=alice
    -X "sasl.password=$2" -X "ssl.ca.location=$CERTS/ca.pem")
}

mtls_args() { # mtls_args with|without: kcat's settings over SSL, with the client certificate or not
  SEC_ARGS=(-X security.protocol=SSL -X "ssl.ca.location=$CERTS/ca.pem")
  [ "$1" = with ] && SEC_ARGS+=(-X "ssl.certificate.location=$CERTS/client.pem" -X "ssl.key.location=$CERTS/client.key")
  return 0
}

secured_round_trip() { # secured_round_trip BOOTSTRAP TOPIC: 1000 keyed records there and back
  local bootstrap=$1 topic=$2
  python3 "$CHECK" gen "$WORK/$topic.in" --count 1000 --prefix "$topic" --seed 14
  ks "$bootstrap" -P -t "$topic" -K '\t' "${SEC_ARGS[@]}" <"$WORK/$topic.in" 2>"$WORK/$topic.produce.log" ||
    fail "kcat -P over $bootstrap exited $?" "$WORK/$topic.produce.log"
  no_client_errors "$WORK/$topic.produce.log"
  ks "$bootstrap" -C -t "$topic" -e -f "$FMT" -X check.crcs=true "${SEC_ARGS[@]}" \
    >"$WORK/$topic.out" 2>"$WORK/$topic.out.log" || fail "kcat -C over $bootstrap exited $?" "$WORK/$topic.out.log"
  no_client_errors "$WORK/$topic.out.log"
  check verify --input "$WORK/$topic.in" --output "$WORK/$topic.out"
}

refused() { # refused BOOTSTRAP OUT REGEX: kcat -L with SEC_ARGS fails, its output matching REGEX
  if ks "$1" -L -m 5 "${SEC_ARGS[@]}" >"$2" 2>&1; then
    fail "listed metadata where it should have been refused" "$2"
  fi
  grep -qiE "$3" "$2" || fail "no /$3/ in kcat's output" "$2"
}

t_sasl_ssl_plain_round_trip() {
  sasl_args PLAIN alice-secret
  secured_round_trip "$SASL_SSL_BOOTSTRAP" sec-plain
}

t_sasl_ssl_wrong_password() {
  sasl_args PLAIN not-alice-secret
  refused "$SASL_SSL_BOOTSTRAP" "$WORK/plain-bad.out" "authentication failed"
}

t_scram_old_librdkafka_refused() {
  python3 "$CHECK" scram-user --bootstrap "$GREGOR_BOOTSTRAP" --user alice --password alice-scram
  sasl_args SCRAM-SHA-512 alice-scram
  refused "$SASL_SSL_BOOTSTRAP" "$WORK/scram.out" "authentication failed.*SCRAM-SHA-512"
}

t_mtls_round_trip() {
  mtls_args with
  secured_round_trip "$SSL_BOOTSTRAP" sec-mtls
}

t_mtls_no_certificate() {
  mtls_args without
  refused "$SSL_BOOTSTRAP" "$WORK/mtls-bad.out" "ssl|certificate|handshake|transport"
}

# ---------------------------------------------------------------------------------------------

want_phase() { case " ${KCAT_PHASES:-A B C D E F} " in *" $1 "*) return 0 ;; esac; return 1; }

start_phase() { # start_phase LABEL [gregor_start args...]
  finish_phase
  PHASE="$1/"
  shift
  unset GREGOR_PORT
  # A phase whose overrides name the listeners sets its PLAINTEXT port first.
  [ -n "${PHASE_PORT:-}" ] && GREGOR_PORT=$PHASE_PORT
  local log="$LOGS/${PHASE}broker-start.log"
  if gregor_start "$@" >"$log" 2>&1; then BROKER_UP=1; else BROKER_UP=0; fi
  record "${PHASE}broker starts${*:+ ($*)}" $((1 - BROKER_UP)) "$log"
}

finish_phase() { # keep the broker log with the test logs, then drop the data directory
  [ -n "${GREGOR_DATA:-}" ] || return 0
  gregor_stop
  cp "$GREGOR_DATA.log" "$LOGS/${PHASE}broker.log" 2>/dev/null
  gregor_cleanup
  GREGOR_DATA=
}

main() {
  install_kcat || { echo "could not install kcat $KCAT_DEB_VERSION"; echo "0 passed, 1 failed"; exit 1; }
  echo "kcat $(dpkg-query -W -f='${Version}' kcat), librdkafka $(dpkg-query -W -f='${Version}' librdkafka1); broker $GREGOR_BIN"
  if [ ! -x "$GREGOR_BIN" ]; then echo "no broker binary at $GREGOR_BIN"; echo "0 passed, 1 failed"; exit 1; fi

  WORK="$(mktemp -d /tmp/kcat-compat.XXXXXX)"
  LOGS="$WORK/logs"
  mkdir -p "$LOGS/A" "$LOGS/B" "$LOGS/C" "$LOGS/D" "$LOGS/E" "$LOGS/F"
  trap 'finish_phase' EXIT

  if want_phase A; then
    start_phase A
    run_test "metadata: fresh broker (-L)" t_metadata_fresh
    run_test "ApiVersions: librdkafka features enabled" t_api_features
    local codec
    for codec in none gzip snappy lz4 zstd; do
      run_test "produce/consume 10k records, -z $codec" t_codec "$codec"
    done
    run_test "metadata: auto-created topics (-L, -L -t)" t_metadata_topics
    run_test "JSON envelope: CreateTime timestamps" t_json_envelope
    run_test "NULL keys and values (-Z)" t_null_key_value
    run_test "idempotent producer, two sessions" t_idempotent
    local acks
    for acks in 0 1 all; do
      run_test "acks=$acks" t_acks "$acks"
    done
    run_test "offsets: 5 timestamped bursts" t_offsets_setup
    run_test "offsets: gzip batches spanning several ms" t_timeidx_setup
    run_test "offsets: -o 500, -o 1234 inside compressed batches" t_offset_absolute
    run_test "offsets: -o -10, -o -5000, -o -1500" t_offset_tail
    run_test "offsets: -o end" t_offset_end
    run_test "offsets: -o 5000 (out of range)" t_offset_out_of_range
    run_test "offsets: -o s@timestamp" t_offsets_for_times
    run_test "offsets: -Q timestamps, -1, -2" t_query_offsets
    run_test "offsets: -o s@A -o e@B" t_stop_timestamp
    run_test "isolation.level read_committed (LSO)" t_read_committed
    run_test "tailing consumer woken by a new record" t_tail_wakeup
    run_test "consumer does not auto-create topics" t_unknown_topic_consumer
    run_test "large records (~650 KB)" t_large_records
    run_test "oversized record rejected (MESSAGE_TOO_LARGE)" t_oversized_record
    run_test "topic names of 200 and 249 characters; 250 refused" t_topic_name_lengths
    run_test "topic name collision (coll.ide vs coll_ide) refused" t_topic_name_collision
    run_test "produce to __consumer_offsets refused" t_internal_topic
    stop_and_restart "clean shutdown (SIGTERM) and restart" stop
    run_test "restart keeps all data" t_restart_keeps_data restart
    run_test "appending after restart continues the offsets" t_append_after_restart
  fi

  if want_phase B; then
    start_phase B --override num.partitions=4
    run_test "auto-create with num.partitions=4" t_multi_autocreate
    run_test "produce/consume per partition (-p)" t_multi_per_partition
    run_test "-e on an empty partition" t_multi_empty_partition
    run_test "whole-topic consume (all partitions)" t_multi_whole_topic
    run_test "keyed records across partitions" t_multi_keyed
    run_test "-Q for several partitions at once" t_multi_query_offsets
    stop_and_restart "kill -9 (during an idempotent produce) and restart" kill9 idempotent_producer_across_crash \
      'grep -q delivered "$WORK/idem-crash.produce.log" 2>/dev/null'
    run_test "acknowledged records survive kill -9" t_multi_after_crash
    run_test "idempotent producer across kill -9: no loss, no duplicates" t_idempotent_across_crash
  fi

  if want_phase C; then
    start_phase C --override log.message.timestamp.type=LogAppendTime
    run_test "LogAppendTime, uncompressed" t_log_append_time none
    run_test "LogAppendTime, gzip" t_log_append_time gzip
  fi

  if want_phase D; then
    start_phase D --override num.partitions=4 --override group.initial.rebalance.delay.ms=0
    run_test "kcat -G: one member reads 4 partitions, commits, resumes" t_group_consume_commit
    run_test "kcat -G: two members split the partitions (range)" t_group_split range
    run_test "kcat -G: two members split the partitions (cooperative-sticky)" t_group_split coop \
      -X partition.assignment.strategy=cooperative-sticky
    run_test "kcat -G: static member (group.instance.id) restart, no rebalance" t_group_static
    run_test "kcat -G: member killed with SIGKILL, partitions move after session timeout" t_group_member_killed
    stop_and_restart "clean shutdown (SIGTERM) with committed offsets" stop
    run_test "kcat -G resumes at the committed offsets after SIGTERM" t_group_resume_after_restart 3
    stop_and_restart "kill -9 with committed offsets" kill9
    run_test "kcat -G resumes at the committed offsets after kill -9" t_group_resume_after_restart 4
  fi
  if want_phase F; then
    CERTS="$WORK/certs"
    make_certs "$CERTS" || { echo "openssl failed"; cat "$CERTS/openssl.log"; }
    local sasl_ssl_port ssl_port
    PHASE_PORT="$(gregor_free_port)"
    sasl_ssl_port="$(gregor_free_port)"
    ssl_port="$(gregor_free_port)"
    SASL_SSL_BOOTSTRAP="127.0.0.1:$sasl_ssl_port"
    SSL_BOOTSTRAP="127.0.0.1:$ssl_port"
    pem_tls_overrides "$CERTS"
    start_phase F \
      --override "listeners=PLAINTEXT://127.0.0.1:$PHASE_PORT,SASL_SSL://$SASL_SSL_BOOTSTRAP,SSL://$SSL_BOOTSTRAP" \
      --override "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512" \
      --override "listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_alice=\"alice-secret\";" \
      --override "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;" \
      "${PEM_TLS_OVERRIDES[@]}"
    PHASE_PORT=
    run_test "SASL_SSL: 1000 records produced and consumed as alice (PLAIN)" t_sasl_ssl_plain_round_trip
    run_test "SASL_SSL: a wrong password is refused" t_sasl_ssl_wrong_password
    run_test "SASL_SSL: SCRAM-SHA-512 from librdkafka 2.0.2 refused (its nonce), as Kafka 4 refuses it" \
      t_scram_old_librdkafka_refused
    run_test "SSL with a client certificate (mutual TLS): 1000 records there and back" t_mtls_round_trip
    run_test "SSL: a client without a certificate is refused" t_mtls_no_certificate
  fi
  # The control plane is gregor's own: the reference Kafka stand-in has no --admin-listen.
  if want_phase E && [ "$(basename "$GREGOR_BIN")" != reference-kafka.sh ]; then
    ADMIN_PORT="$(gregor_free_port)"
    start_phase E --admin-listen "127.0.0.1:$ADMIN_PORT"
    run_test "the request journal shows kcat's ApiVersions, Metadata and Produce" t_journal
  fi
  finish_phase

  if [ "$FAILED" -gt 0 ] || [ "${KCAT_KEEP:-0}" = 1 ]; then
    echo "logs kept in $LOGS"
    [ "$FAILED" -gt 0 ] && printf 'failed: %s\n' "${FAILED_NAMES[@]}"
  else
    rm -rf "$WORK"
  fi
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
}

main "$@"
