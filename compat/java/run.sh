#!/usr/bin/env bash
# Java compatibility suite for gregor: Apache Kafka's own Java clients and console tools, at pinned
# versions fetched from Maven Central, against a gregor broker started by ../lib.sh.
#
#   compat/java/run.sh
#
# Cases (each prints PASS or FAIL; the last line is "N passed, N failed"):
#   clients-<v>/...   kafka-clients 4.4.x and 3.9.x: per codec, 10,000 records with keys, headers and
#                     timestamps through the idempotent producer, read back exactly; ListOffsets;
#                     CreateTopics (and its errors); a multi-partition round trip; fetch edge cases
#                     (oversized batch, out of range, long poll, close); KIP-227 incremental fetch
#                     sessions (the consumer's own log); acks=0/1; topic configs
#   console-<v>/...   kafka-console-producer / -consumer of Apache Kafka 3.9.x and 4.4.x, per codec;
#                     kafka-topics --create / --list / --describe
#   crash/...         SIGKILL the broker three times under an idempotent producer; every
#                     acknowledged record must be in the log exactly once
#   after-crash/...   the clients-4.4 round trips, re-read after those kills
#   dedupe/...        a proxy loses Produce responses; the retries must not be appended twice,
#                     also when the broker was killed and restarted in between
#   groups-<v>/...    consumer groups (classic protocol; KIP-848 when the broker advertises it) with
#                     kafka-clients 4.4.x (all cases) and 3.9.x (quick subset): commitSync/auto-commit
#                     and resume, three members splitting a topic under load (eager and cooperative),
#                     a SIGKILLed member, static membership, AdminClient group APIs and their errors
#   admin-<v>/...     topic administration through AdminClient 4.4.x and 3.9.x (AdminTests): DeleteTopics
#                     by name and id, CreatePartitions, Describe/IncrementalAlterConfigs (topics and the
#                     broker), DeleteRecords, ListOffsets by timestamp, DescribeCluster, DescribeLogDirs,
#                     config enforcement (max.message.bytes, compacted topics need keys), with the errors
#   admin-tools-<v>/. kafka-topics --create/--describe/--alter/--delete, kafka-configs --describe/--alter,
#                     kafka-features describe/upgrade and kafka-metadata-quorum describe (4.4 only),
#                     kafka-delete-records and kafka-get-offsets of Apache Kafka 3.9.x and 4.4.x, and
#                     their error messages
#   groups-restart/.. committed offsets survive a SIGTERM and a SIGKILL restart of the broker, and a
#                     member that stays subscribed through both restarts reads on, exactly once
#   txn-<v>/...       transactions with kafka-clients 4.4.x and 3.9.x (TxnTests): commit and abort over
#                     several partitions read back with read_committed and read_uncommitted, the last
#                     stable offset of an open transaction, sendOffsetsToTransaction, a fenced zombie,
#                     a timed-out transaction aborted by the coordinator
#   streams-eos-<v>/. a Kafka Streams 4.4 word count with exactly_once_v2, SIGKILLed mid-stream and
#                     restarted: every word's counts arrive exactly once, in order (EosWordCount)
#   failover-<v>/...  kafka-topics --describe of Apache Kafka 4.4.x through a stop and start of a
#                     broker (a second gregor, --brokers 3, driven by its admin listener; with
#                     JAVA_COMPAT_BROKER=kafka, three Kafka nodes of ../ref-kafka-cluster.sh), then
#                     kafka-leader-election --election-type preferred, kafka-reassign-partitions
#                     (--generate/--execute/--verify/--list/--cancel), kafka-dump-log
#                     --cluster-metadata-decoder and kafka-metadata-shell (4.2) on gregor's metadata log
#   failover-clients-<v>/...  kafka-clients 4.4.x (FailoverTests) on that gregor: an idempotent
#                     producer and a group consumer through stops, ElectLeaders, reassignments and
#                     a coordinator stop, every acknowledged record read once, offsets kept; a
#                     transactional producer following its coordinator
#   security-<v>/...  kafka-clients 4.4.x and 3.9.x over SASL_PLAINTEXT (PLAIN; SCRAM-SHA-512 after
#                     kafka-configs 4.4 created the user; OAUTHBEARER with the unsecured login module),
#                     SSL with client certificates and SASL_SSL (SCRAM-SHA-512; OAUTHBEARER with an
#                     RS256 token checked against a JWKS from an https endpoint on 127.0.0.1; the
#                     unsecured login module sends a SASL extension), PEM certificates made with openssl,
#                     and SSL listeners with JKS and PKCS12 stores made by keytool (ssl-jks, ssl-p12):
#                     produce, consume in a group, admin; wrong credentials and a token for another
#                     audience refused; PLAIN sessions of 3 s re-authenticated (KIP-368) while a
#                     producer goes on (a broker of its own, see security_tests);
#                     then kafka-acls 4.4 --add/--list/--remove of topic, group, prefixed and
#                     transactional-id ACLs (and a DENY), a producer, a consumer and a transactional
#                     producer refused and then allowed, super users, a client certificate whose
#                     principal ssl.principal.mapping.rules maps to alice (security_acl_tests; the
#                     group name security-acls runs this part alone, security-authn the first part)
#   emulation-2.8-<v>/...  kafka-clients 4.4.x against gregor --emulate-kafka-version 2.8 (in group control)
#   junit-<v>/...     gregor's JUnit 5 extension (testing/java) in its example test class, each test
#                     method a case (group junit, gregor only)
#   control-<v>/...   kafka-clients 4.4.x against gregor's test control plane (--clock manual, a broker
#                     of its own): an idempotent producer through a lost Produce response (fault
#                     action close_after), every record once; a member that left without LeaveGroup
#                     expired by advancing the clock 46 s; POST /v1/reset between 100 tests that each
#                     create a topic (ControlTests)
#   streams-protocol-<v>/...  a Kafka Streams 4.4 word count with group.protocol=streams (KIP-1071)
#                     on two instances, at_least_once then exactly_once_v2: internal topics made by
#                     the broker, tasks spread over both, moved when one stops, every input counted
#                     once (StreamsProtocol); then kafka-streams-groups --list / --describe --state /
#                     --members / --offsets and --delete-offsets refused while it runs (4.4); once
#                     stopped, --reset-offsets --to-earliest, --delete-offsets, --delete with the
#                     internal topics. About 45 s on gregor, 75 s on Kafka 4.4
#   share-<v>/...     share groups (KIP-932) with KafkaShareConsumer 4.4.x (ShareTests): implicit
#                     acknowledgement, explicit ACCEPT/RELEASE/REJECT, two consumers on one partition,
#                     redelivery after a consumer closed without acknowledging and after one was
#                     killed (kill -9) holding records, the delivery-count limit;
#                     the admin client's list/alter/deleteShareGroupOffsets;
#                     kafka-share-groups --list / --describe (offsets and lag, --state, --members) /
#                     --reset-offsets --to-earliest/--to-latest --execute / --delete-offsets /
#                     --delete (4.4)
#   consumer-groups-<v>/...  kafka-consumer-groups of Apache Kafka 3.9.x and 4.4.x: --list [--state],
#                     --describe (offsets, lag, --members, --state, --all-groups), --reset-offsets
#                     (--to-earliest, --to-offset, --dry-run), --delete-offsets, --delete, and the
#                     refusals while the group is active; --delete-offsets on a KIP-848 group (4.4)
#   schema-registry-spring-<v>/...  gregor's schema registry (--schema-registry-listen) through
#                     Spring Cloud Stream's ConfluentSchemaRegistryClient and Avro message converter
#                     (SpringRegistryTests; the newest Java client on Maven Central that speaks
#                     Confluent's REST API, see FINDINGS.md): register, evolve, old and new records
#                     consumed, an incompatible schema refused with 409; after a restart the same
#                     ids and versions (a gregor of its own; skipped on Kafka)
#   schema-registry-flink-<v>/...  the same registry through Confluent's own Java client 7.5.3 as
#                     Flink's flink-sql-avro-confluent-registry bundles it (FlinkRegistryTests):
#                     Flink's Confluent-framed Avro serialization and deserialization schemas
#                     (magic byte, 4-byte id) over kafka-clients, evolve, 409 refusals, and the
#                     client's other calls (subjects, ids, versions, testCompatibility, subject
#                     config BACKWARD/NONE, mode, soft and permanent deletes); the same restart
#
# Environment:
#   GREGOR_BIN           broker binary (default: target/release/gregor of this checkout)
#   JAVA_COMPAT_COUNT    records per codec (default 10000)
#   JAVA_COMPAT_BROKER   "kafka" checks the suite itself against Apache Kafka 3.9, or the Kafka
#                        in KAFKA_REFERENCE_LIBS (see ../ref-kafka.sh; the failover group, which
#                        needs KAFKA_REFERENCE_LIBS, a three-node one, ../ref-kafka-cluster.sh)
#   JAVA_COMPAT_GROUPS   which groups to run (default "clients console crash dedupe groups admin txn streams streams-protocol failover
#                        security control share junit schema-registry"; consumer-groups runs the kafka-consumer-groups
#                        cases of the groups group alone, quotas the client quota cases of the admin group)
#
# Versions are pinned in pom.xml; downloads are cached in compat/.cache/m2 (git-ignored); build
# output and per-step logs go to compat/java/target (git-ignored).

set -uo pipefail

JAVA_COMPAT_HOME="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib.sh
. "$JAVA_COMPAT_HOME/../lib.sh"
JAVA_COMPAT_TARGET="$JAVA_COMPAT_HOME/target"
export JAVA_COMPAT_HOME JAVA_COMPAT_TARGET
if [ "${JAVA_COMPAT_BROKER:-gregor}" = kafka ]; then
  if [ -z "${KAFKA_REFERENCE_LIBS:-}" ]; then
    # Kafka 3.9 from the suite's own tools-3.9 classpath (log4j 1 there).
    KAFKA_REF_CP="$JAVA_COMPAT_TARGET/tools-3.9/lib/*"
    KAFKA_REF_LOG="-Dlog4j.configuration=file:$JAVA_COMPAT_HOME/config/log4j.properties"
    # KIP-848 (group.protocol=consumer) is opt-in on 3.9, on by default from 4.0; and 3.9
    # defaults log.message.timestamp.after.max.ms to Long.MAX, 4.x to an hour (KIP-1030).
    KAFKA_REF_EXTRA="group.coordinator.rebalance.protocols=classic,consumer
log.message.timestamp.after.max.ms=3600000"
  fi
  # shellcheck source=../ref-kafka.sh
  . "$JAVA_COMPAT_HOME/../ref-kafka.sh"
fi

COUNT="${JAVA_COMPAT_COUNT:-10000}"
CODECS=(none gzip snappy lz4 zstd)
LOGS="$JAVA_COMPAT_TARGET/run"
PASSED=0
FAILED=0

# ---- reporting ------------------------------------------------------------------------------

pass() { PASSED=$((PASSED + 1)); echo "PASS $1"; }

# fail_line "NAME: WHY": a FAIL line the Java program already formatted.
fail_line() { FAILED=$((FAILED + 1)); echo "FAIL $1"; }

# fail NAME WHY [LOG]: also shows the end of LOG, so CI output alone explains the failure.
fail() {
  FAILED=$((FAILED + 1))
  echo "FAIL $1: $2"
  if [ -n "${3:-}" ] && [ -s "$3" ]; then
    echo "  --- last lines of $3"
    tail -n 8 "$3" | cut -c1-300 | sed 's/^/  | /'
  fi
}

finish() {
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
  exit
}

# One timestamp base for all JVMs of the run, an hour back (see Records.BASE_TIMESTAMP).
BASE_TIMESTAMP=$(( ($(date +%s) - 3600) * 1000 ))
JAVA_OPTS=(-Dfile.encoding=UTF-8 -Dorg.slf4j.simpleLogger.defaultLogLevel=warn
  -Dorg.slf4j.simpleLogger.logFile=System.err -Dgregor.compat.baseTimestamp="$BASE_TIMESTAMP")
CLIENT_CP="$JAVA_COMPAT_TARGET/client-4.4/classes:$JAVA_COMPAT_TARGET/client-4.4/lib/*"

# java_cases GROUP TIMEOUT_S CLASSPATH ARGS...: runs gregor.compat.Main, which prints PASS/FAIL
# lines, and counts them (see tally).
java_cases() {
  local group="$1" limit="$2" cp="$3"
  shift 3
  timeout "$limit" java "${JAVA_OPTS[@]}" -cp "$cp" gregor.compat.Main "$@" \
    >"$LOGS/$group.out" 2>"$LOGS/$group.err"
  tally "$group" $? "$limit"
}

# tally GROUP RC TIMEOUT_S: counts the PASS/FAIL lines in $LOGS/GROUP.out. Main exits 1 when a
# case failed; a JVM that timed out, was killed, or died without a FAIL line is one more failure
# (its remaining cases never ran).
tally() {
  local group="$1" rc="$2" limit="$3"
  local out="$LOGS/$group.out" err="$LOGS/$group.err" line
  while IFS= read -r line; do
    case "$line" in
      PASS\ *) pass "${line#PASS }" ;;
      FAIL\ *) fail_line "${line#FAIL }" ;;
      SKIP\ *) echo "$line" ;;
    esac
  done <"$out"
  if [ "$rc" -gt 1 ] || { [ "$rc" -eq 1 ] && ! grep -q '^FAIL ' "$out"; }; then
    fail "$group" "exited with status $rc$([ "$rc" -eq 124 ] && echo " (timed out after ${limit}s)")" "$err"
  elif [ "$rc" -ne 0 ]; then
    echo "  (client log: $err)"
  fi
  return 0
}

# ---- broker ---------------------------------------------------------------------------------

# After each group: a broker that died is a failure of that group, and gets restarted on the same
# data so the remaining groups still run.
broker_check() {
  if [ -n "${GREGOR_PID:-}" ] && kill -0 "$GREGOR_PID" 2>/dev/null; then
    return 0
  fi
  fail "$1/broker-still-running" "the broker exited during this group" "$GREGOR_DATA.log"
  GREGOR_PID=
  gregor_restart || { fail "$1/broker-restart" "could not restart the broker" "$GREGOR_DATA.log"; finish; }
}

# ---- build ----------------------------------------------------------------------------------

build() {
  echo "building (Maven, pinned versions in $JAVA_COMPAT_HOME/pom.xml)..."
  mkdir -p "$JAVA_COMPAT_TARGET"
  # clean: copy-dependencies never removes jars of a version that is no longer pinned.
  if ! (cd "$JAVA_COMPAT_HOME" && mvn -q -B -Dmaven.repo.local="$REPO_ROOT/compat/.cache/m2" clean package) \
    >"$JAVA_COMPAT_TARGET/build.log" 2>&1; then
    fail build "mvn package failed" "$JAVA_COMPAT_TARGET/build.log"
    finish
  fi
  rm -rf "$LOGS" && mkdir -p "$LOGS"
}

# Version of artifact $2 in module $1's copied classpath, e.g. "4.4.0".
lib_version() {
  local jar
  jar="$(cd "$JAVA_COMPAT_TARGET/$1/lib" && ls "$2"-[0-9]*.jar)"
  jar="${jar#"$2"-}"
  echo "${jar%.jar}"
}

# ---- kafka-clients --------------------------------------------------------------------------

client_tests() {
  local module version
  for module in client-4.4 client-3.9; do
    version="$(lib_version "$module" kafka-clients)"
    echo "== kafka-clients $version"
    java_cases "clients-$version" 300 "$JAVA_COMPAT_TARGET/$module/classes:$JAVA_COMPAT_TARGET/$module/lib/*" \
      clients --bootstrap "$GREGOR_BOOTSTRAP" --label "clients-$version" --count "$COUNT"
    CLIENTS_LABEL="${CLIENTS_LABEL:-clients-$version}"
    broker_check "clients-$version"
  done
}

# ---- console tools --------------------------------------------------------------------------

# console_case LABEL CP LOG4J_OPT PRODUCER_CLASS CONSUMER_CLASS CODEC [READER_OPT FORMATTER_OPT]
# (the option names for the line reader's and the formatter's properties: --property up to 4.1,
# --reader-property and --formatter-property from 4.2, where --property prints a deprecation
# warning into the consumer's output)
console_case() {
  local label="$1" cp="$2" log_opt="$3" producer="$4" consumer="$5" codec="$6"
  local reader="${7:---property}" formatter="${8:---property}"
  local name="$label/produce-consume-$codec" topic="${label//./-}-$codec"
  local base="$LOGS/$label-$codec"
  local java=(timeout 60 java -Dfile.encoding=UTF-8 "$log_opt" -cp "$cp")

  "${java[@]}" "$producer" --bootstrap-server "$GREGOR_BOOTSTRAP" --topic "$topic" \
    --compression-codec "$codec" "$reader" parse.key=true "$reader" parse.headers=true \
    <"$LOGS/console-input.txt" >"$base.producer.log" 2>&1
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    fail "$name" "console producer exited with status $rc" "$base.producer.log"
    return
  fi
  # --partition/--offset: the consumer uses assign(), no group coordinator involved.
  "${java[@]}" "$consumer" --bootstrap-server "$GREGOR_BOOTSTRAP" --topic "$topic" \
    --partition 0 --offset earliest --max-messages "$COUNT" --timeout-ms 20000 \
    "$formatter" print.partition=true "$formatter" print.offset=true \
    "$formatter" print.headers=true "$formatter" print.key=true \
    >"$base.out" 2>"$base.consumer.log"
  rc=$?
  if cmp -s "$LOGS/console-expected.txt" "$base.out"; then
    pass "$name"
  else
    local first
    first="$(diff "$LOGS/console-expected.txt" "$base.out" | head -n 3 | cut -c1-200 | tr '\n' ' ')"
    fail "$name" "consumer output ($(wc -l <"$base.out") lines, exit $rc) differs from the input: $first" \
      "$base.consumer.log"
    [ -s "$base.producer.log" ] && echo "  (producer log: $base.producer.log)"
  fi
}

# topics_cases LABEL CP LOG4J_OPT: kafka-topics.sh --create, --list and --describe.
topics_cases() {
  local label="$1" cp="$2" log_opt="$3" topic="${1//./-}-topics" step
  local java=(timeout 60 java "$log_opt" -cp "$cp" org.apache.kafka.tools.TopicCommand --bootstrap-server "$GREGOR_BOOTSTRAP")
  for step in create list describe; do
    local out="$LOGS/$label-topics-$step.out" ok=0
    case "$step" in
      create)
        "${java[@]}" --create --topic "$topic" --partitions 3 --replication-factor 1 >"$out" 2>&1
        grep -qx "Created topic $topic." "$out" && ok=1 ;;
      list)
        "${java[@]}" --list >"$out" 2>&1
        grep -qx "$topic" "$out" && ok=1 ;;
      describe)
        # A header line with the partition count, then one line per partition.
        "${java[@]}" --describe --topic "$topic" >"$out" 2>&1
        grep -q "PartitionCount: 3" "$out" && [ "$(grep -c "Partition: [0-2]" "$out")" -eq 3 ] && ok=1 ;;
    esac
    if [ "$ok" -eq 1 ]; then
      pass "$label/kafka-topics-$step"
    else
      fail "$label/kafka-topics-$step" "unexpected output: $(grep -v '^\s*at ' "$out" | head -n 2 | cut -c1-200 | tr '\n' ' ')"
    fi
  done
}

console_tests() {
  # Input and expected output come from the same generator as the client tests (ConsoleFiles).
  java -cp "$CLIENT_CP" gregor.compat.Main console-files --count "$COUNT" \
    --input "$LOGS/console-input.txt" --expected "$LOGS/console-expected.txt" || {
    fail console "could not write the console input files"
    return
  }
  local v39 v44
  v39="$(lib_version tools-3.9 kafka_2.13)"
  v44="$(lib_version tools-4.4 kafka-tools)"
  local codec
  echo "== Apache Kafka $v39 console tools"
  # 3.9: the producer is still the Scala one in core; the consumer already moved to kafka-tools.
  for codec in "${CODECS[@]}"; do
    console_case "console-$v39" "$JAVA_COMPAT_TARGET/tools-3.9/lib/*" \
      "-Dlog4j.configuration=file:$JAVA_COMPAT_HOME/config/log4j.properties" \
      kafka.tools.ConsoleProducer org.apache.kafka.tools.consumer.ConsoleConsumer "$codec"
  done
  topics_cases "console-$v39" "$JAVA_COMPAT_TARGET/tools-3.9/lib/*" \
    "-Dlog4j.configuration=file:$JAVA_COMPAT_HOME/config/log4j.properties"
  broker_check "console-$v39"
  echo "== Apache Kafka $v44 console tools"
  for codec in "${CODECS[@]}"; do
    console_case "console-$v44" "$JAVA_COMPAT_TARGET/tools-4.4/lib/*" \
      "-Dlog4j2.configurationFile=$JAVA_COMPAT_HOME/config/log4j2.properties" \
      org.apache.kafka.tools.ConsoleProducer org.apache.kafka.tools.consumer.ConsoleConsumer "$codec" \
      --reader-property --formatter-property
  done
  topics_cases "console-$v44" "$JAVA_COMPAT_TARGET/tools-4.4/lib/*" \
    "-Dlog4j2.configurationFile=$JAVA_COMPAT_HOME/config/log4j2.properties"
  broker_check "console-$v44"
}

# ---- topic administration -------------------------------------------------------------------

# admin_check NAME OUT PATTERN [ANTI_PATTERN]: PASS if OUT matches the extended regex PATTERN (and
# not ANTI_PATTERN).
admin_check() {
  local name="$1" out="$2" want="$3" unwanted="${4:-}"
  if grep -qE -- "$want" "$out" && { [ -z "$unwanted" ] || ! grep -qE -- "$unwanted" "$out"; }; then
    pass "$name"
  else
    fail "$name" "expected /$want/$([ -n "$unwanted" ] && echo " and not /$unwanted/"): $(grep -v '^\s*at ' "$out" | grep -v '^\s*$' | head -n 4 | cut -c1-200 | tr '\n' '|')"
  fi
}

# admin_tool_cases LABEL CP LOG4J_OPT CONFIG_COMMAND: the admin command-line tools of one Kafka
# version (kafka-configs.sh runs kafka.admin.ConfigCommand up to 4.1, then the tools module's).
admin_tool_cases() {
  local label="$1" cp="$2" log_opt="$3" config_command="$4"
  local t="${label//./-}" base="$LOGS/$1"
  local java=(timeout 60 java "$log_opt" -cp "$cp")
  local topics=("${java[@]}" org.apache.kafka.tools.TopicCommand --bootstrap-server "$GREGOR_BOOTSTRAP")
  local configs=("${java[@]}" "$config_command" --bootstrap-server "$GREGOR_BOOTSTRAP")
  local offsets=("${java[@]}" org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$GREGOR_BOOTSTRAP")
  local delrec=("${java[@]}" org.apache.kafka.tools.DeleteRecordsCommand --bootstrap-server "$GREGOR_BOOTSTRAP")

  "${topics[@]}" --create --topic "$t-cfg" --partitions 2 --replication-factor 1 --config retention.ms=100000 >"$base-create.out" 2>&1
  admin_check "$label/kafka-topics-create-with-config" "$base-create.out" "^Created topic $t-cfg\.$"
  "${topics[@]}" --describe --topic "$t-cfg" >"$base-describe.out" 2>&1
  admin_check "$label/kafka-topics-describe-configs" "$base-describe.out" "PartitionCount: 2.*Configs: .*retention\.ms=100000"
  "${topics[@]}" --create --topic "$t-cfg" --partitions 1 --replication-factor 1 >"$base-create-again.out" 2>&1
  admin_check "$label/kafka-topics-create-existing" "$base-create-again.out" "already exists"
  "${topics[@]}" --create --topic "$t-rf3" --partitions 1 --replication-factor 3 >"$base-create-rf3.out" 2>&1
  admin_check "$label/kafka-topics-create-rf3" "$base-create-rf3.out" "InvalidReplicationFactorException|larger than available brokers"
  "${topics[@]}" --create --topic "$t-badcfg" --partitions 1 --config retention.ms=soon >"$base-create-badcfg.out" 2>&1
  admin_check "$label/kafka-topics-create-bad-config" "$base-create-badcfg.out" "InvalidConfigurationException|Invalid value soon" "^Created"
  "${topics[@]}" --alter --topic "$t-cfg" --partitions 4 >"$base-alter.out" 2>&1
  "${topics[@]}" --describe --topic "$t-cfg" >"$base-describe-4.out" 2>&1
  admin_check "$label/kafka-topics-alter-partitions" "$base-describe-4.out" "PartitionCount: 4"
  "${topics[@]}" --alter --topic "$t-cfg" --partitions 2 >"$base-shrink.out" 2>&1
  admin_check "$label/kafka-topics-alter-shrink-refused" "$base-shrink.out" "InvalidPartitionsException|would not be an increase"

  "${configs[@]}" --entity-type topics --entity-name "$t-cfg" --alter \
    --add-config 'retention.ms=200000,cleanup.policy=[delete,compact]' >"$base-configs-alter.out" 2>&1
  "${configs[@]}" --entity-type topics --entity-name "$t-cfg" --describe >"$base-configs-describe.out" 2>&1
  admin_check "$label/kafka-configs-alter-describe" "$base-configs-describe.out" "^ *retention\.ms=200000 "
  admin_check "$label/kafka-configs-alter-list-value" "$base-configs-describe.out" "^ *cleanup\.policy=delete,compact "
  "${configs[@]}" --entity-type topics --entity-name "$t-cfg" --alter --delete-config retention.ms >"$base-configs-delete.out" 2>&1
  "${configs[@]}" --entity-type topics --entity-name "$t-cfg" --describe >"$base-configs-describe2.out" 2>&1
  admin_check "$label/kafka-configs-delete-config" "$base-configs-describe2.out" "cleanup\.policy=delete,compact" "retention\.ms="
  "${configs[@]}" --entity-type topics --entity-name "$t-cfg" --alter --add-config no.such.config=1 >"$base-configs-unknown.out" 2>&1
  admin_check "$label/kafka-configs-unknown-config" "$base-configs-unknown.out" "InvalidConfigurationException|Unknown topic config|Invalid config" "Completed"
  "${configs[@]}" --entity-type brokers --entity-name 1 --describe --all >"$base-configs-broker.out" 2>&1
  admin_check "$label/kafka-configs-describe-broker" "$base-configs-broker.out" "^ *num\.partitions=1 "
  # What the broker was started with is STATIC_BROKER_CONFIG with its value (gregor's --listen,
  # --data-dir and node id; Kafka's server.properties).
  admin_check "$label/kafka-configs-broker-static-listeners" "$base-configs-broker.out" \
    "^ *listeners=PLAINTEXT://127\.0\.0\.1:$GREGOR_PORT[, ].*synonyms=\{STATIC_BROKER_CONFIG:listeners="
  admin_check "$label/kafka-configs-broker-static-log-dirs" "$base-configs-broker.out" \
    "^ *log\.dirs=/[^ ]+ sensitive=false synonyms=\{STATIC_BROKER_CONFIG:log\.dirs="
  admin_check "$label/kafka-configs-broker-static-node-id" "$base-configs-broker.out" \
    "^ *node\.id=1 sensitive=false synonyms=\{STATIC_BROKER_CONFIG:node\.id=1"
  "${configs[@]}" --entity-type brokers --entity-name 1 --alter --add-config log.dirs=/elsewhere >"$base-configs-broker-alter.out" 2>&1
  admin_check "$label/kafka-configs-broker-static-refused" "$base-configs-broker-alter.out" "Cannot update these configs dynamically|InvalidRequestException" "Completed"
  # Dynamic broker configs (KIP-226), per broker and as the cluster default; removed again after.
  "${configs[@]}" --entity-type brokers --entity-name 1 --alter --add-config log.retention.ms=604800002 >"$base-configs-broker-dyn.out" 2>&1
  "${configs[@]}" --entity-type brokers --entity-default --alter --add-config log.retention.bytes=1099511627776 >>"$base-configs-broker-dyn.out" 2>&1
  "${configs[@]}" --entity-type brokers --entity-name 1 --describe >>"$base-configs-broker-dyn.out" 2>&1
  "${configs[@]}" --entity-type brokers --entity-default --describe >>"$base-configs-broker-dyn.out" 2>&1
  admin_check "$label/kafka-configs-broker-dynamic" "$base-configs-broker-dyn.out" "^ *log\.retention\.ms=604800002 sensitive=false synonyms=\{DYNAMIC_BROKER_CONFIG"
  admin_check "$label/kafka-configs-broker-dynamic-default" "$base-configs-broker-dyn.out" "^ *log\.retention\.bytes=1099511627776 sensitive=false synonyms=\{DYNAMIC_DEFAULT_BROKER_CONFIG"
  "${configs[@]}" --entity-type brokers --entity-name 1 --alter --delete-config log.retention.ms >"$base-configs-broker-undo.out" 2>&1
  "${configs[@]}" --entity-type brokers --entity-default --alter --delete-config log.retention.bytes >>"$base-configs-broker-undo.out" 2>&1
  "${configs[@]}" --entity-type brokers --entity-name 1 --describe >>"$base-configs-broker-undo.out" 2>&1
  admin_check "$label/kafka-configs-broker-dynamic-delete" "$base-configs-broker-undo.out" "Completed updating" "log\.retention\.(ms|bytes)="
  if [[ "$label" == *4.4* ]]; then
    # Group configs (KIP-848): a consumer group's own session timeout and heartbeat interval,
    # within the broker's bounds (45-60 s and 5-15 s by default).
    "${configs[@]}" --entity-type groups --entity-name "$t-grp" --alter \
      --add-config consumer.session.timeout.ms=50000,consumer.heartbeat.interval.ms=6000 >"$base-configs-group.out" 2>&1
    "${configs[@]}" --entity-type groups --entity-name "$t-grp" --describe >>"$base-configs-group.out" 2>&1
    admin_check "$label/kafka-configs-group" "$base-configs-group.out" "^ *consumer\.session\.timeout\.ms=50000 "
    admin_check "$label/kafka-configs-group-heartbeat" "$base-configs-group.out" "^ *consumer\.heartbeat\.interval\.ms=6000 "
    "${configs[@]}" --entity-type groups --entity-name "$t-grp" --alter \
      --add-config consumer.session.timeout.ms=1000 >"$base-configs-group-bad.out" 2>&1
    admin_check "$label/kafka-configs-group-out-of-range" "$base-configs-group-bad.out" \
      "consumer\.session\.timeout\.ms must be in the range 45000 to 60000 inclusive" "^Completed"
  fi

  ip_quota_tool_cases "$label" "$cp" "$log_opt" "$config_command"

  if java "${JAVA_OPTS[@]}" -cp "$CLIENT_CP" gregor.compat.Main groups-setup --bootstrap "$GREGOR_BOOTSTRAP" \
    --topic "$t-data" --partitions 2 --records 30 >"$base-setup.log" 2>&1; then
    "${offsets[@]}" --topic "$t-data" >"$base-offsets.out" 2>&1
    admin_check "$label/kafka-get-offsets-latest" "$base-offsets.out" "^$t-data:1:30$"
    printf '{"version":1,"partitions":[{"topic":"%s","partition":0,"offset":12}]}' "$t-data" >"$base-delete.json"
    "${delrec[@]}" --offset-json-file "$base-delete.json" >"$base-delrec.out" 2>&1
    admin_check "$label/kafka-delete-records" "$base-delrec.out" "low_watermark: 12"
    "${offsets[@]}" --topic "$t-data" --time -2 >"$base-offsets-earliest.out" 2>&1
    admin_check "$label/kafka-get-offsets-earliest-after-delete" "$base-offsets-earliest.out" "^$t-data:0:12$" "^$t-data:1:[^0]"
    "${offsets[@]}" --topic "$t-data" --time "$BASE_TIMESTAMP" >"$base-offsets-time.out" 2>&1
    admin_check "$label/kafka-get-offsets-by-time" "$base-offsets-time.out" "^$t-data:1:[0-9]+$"
    printf '{"version":1,"partitions":[{"topic":"%s","partition":1,"offset":99}]}' "$t-data" >"$base-delete-past.json"
    "${delrec[@]}" --offset-json-file "$base-delete-past.json" >"$base-delrec-past.out" 2>&1
    admin_check "$label/kafka-delete-records-past-end" "$base-delrec-past.out" "OffsetOutOfRange|error"
  else
    fail "$label/setup" "could not create and fill $t-data" "$base-setup.log"
  fi

  "${topics[@]}" --delete --topic "$t-cfg" >"$base-delete.out" 2>&1
  "${topics[@]}" --list >"$base-list-after.out" 2>&1
  admin_check "$label/kafka-topics-delete" "$base-list-after.out" "^$t-rf3$|^$t-data$" "^$t-cfg$"
  "${topics[@]}" --delete --topic "$t-never" >"$base-delete-missing.out" 2>&1
  admin_check "$label/kafka-topics-delete-unknown" "$base-delete-missing.out" "does not exist|UnknownTopicOrPartition"
}

# ip_quota_tool_cases LABEL CP LOG4J_OPT CONFIG_COMMAND: kafka-configs --entity-type ips (KIP-612's
# connection_creation_rate) for an address and for the default ip entity: set, described (once the
# broker shows it: Kafka's a moment after acknowledging), deleted. The rate is high enough never to
# throttle the tools themselves.
ip_quota_tool_cases() {
  local label="$1" cp="$2" log_opt="$3" config_command="$4" base="$LOGS/$1"
  local configs=(timeout 60 java "$log_opt" -cp "$cp" "$config_command" --bootstrap-server "$GREGOR_BOOTSTRAP")
  local entity args i
  for entity in address default; do
    case "$entity" in
      address) args=(--entity-type ips --entity-name 127.0.0.1) ;;
      default) args=(--entity-type ips --entity-default) ;;
    esac
    local out="$base-configs-ip-$entity.out"
    "${configs[@]}" "${args[@]}" --alter --add-config connection_creation_rate=5000 >"$out" 2>&1
    for i in $(seq 1 20); do
      "${configs[@]}" "${args[@]}" --describe >"$out.describe" 2>&1
      grep -qE "connection_creation_rate=5000" "$out.describe" && break
      sleep 0.5
    done
    cat "$out.describe" >>"$out"
    admin_check "$label/kafka-configs-ip-quota-$entity" "$out" \
      "^Quota configs for (ip '127\.0\.0\.1'|the default ip) are connection_creation_rate=5000(\.0)?$"
    "${configs[@]}" "${args[@]}" --alter --delete-config connection_creation_rate >"$out.delete" 2>&1
    for i in $(seq 1 20); do
      "${configs[@]}" "${args[@]}" --describe >"$out.describe" 2>&1
      grep -q "connection_creation_rate" "$out.describe" || break
      sleep 0.5
    done
    cat "$out.delete" "$out.describe" >"$out.after"
    admin_check "$label/kafka-configs-ip-quota-$entity-delete" "$out.after" "Completed updating" "connection_creation_rate="
  done
}

# cluster_tool_cases LABEL CP LOG4J_OPT: kafka-features.sh and kafka-metadata-quorum.sh (4.4).
cluster_tool_cases() {
  local label="$1" cp="$2" log_opt="$3" base="$LOGS/$1"
  local java=(timeout 60 java "$log_opt" -cp "$cp")
  local features=("${java[@]}" org.apache.kafka.tools.FeatureCommand --bootstrap-server "$GREGOR_BOOTSTRAP")
  local quorum=("${java[@]}" org.apache.kafka.tools.MetadataQuorumCommand --bootstrap-server "$GREGOR_BOOTSTRAP")
  "${features[@]}" describe >"$base-features.out" 2>&1
  admin_check "$label/kafka-features-describe-metadata-version" "$base-features.out" \
    "^Feature: metadata\.version[[:space:]]+SupportedMinVersion: [0-9]+\.[0-9]+-IV[0-9]+[[:space:]]+SupportedMaxVersion: [0-9.]+-IV[0-9]+[[:space:]]+FinalizedVersionLevel: [0-9.]+-IV[0-9]+"
  admin_check "$label/kafka-features-describe-transaction-version" "$base-features.out" \
    "^Feature: transaction\.version[[:space:]]+SupportedMinVersion: 0[[:space:]]+SupportedMaxVersion: 2[[:space:]]+FinalizedVersionLevel: 2[[:space:]]"
  admin_check "$label/kafka-features-describe-group-version" "$base-features.out" \
    "^Feature: group\.version[[:space:]]+SupportedMinVersion: 0[[:space:]]+SupportedMaxVersion: 1[[:space:]]+FinalizedVersionLevel: 1[[:space:]]"
  "${features[@]}" upgrade --feature group.version=1 >"$base-features-same.out" 2>&1
  admin_check "$label/kafka-features-upgrade-to-current" "$base-features-same.out" "group\.version was upgraded to 1\." "Could not"
  "${features[@]}" upgrade --feature transaction.version=9 >"$base-features-bad.out" 2>&1
  admin_check "$label/kafka-features-upgrade-refused" "$base-features-bad.out" \
    "Could not upgrade transaction\.version to 9\..*Invalid update version 9 for feature transaction\.version\..*only supports versions" "was upgraded"
  "${quorum[@]}" describe --status >"$base-quorum-status.out" 2>&1
  admin_check "$label/kafka-metadata-quorum-status" "$base-quorum-status.out" '^CurrentVoters:[[:space:]]+\[\{"id": [0-9]+'
  admin_check "$label/kafka-metadata-quorum-status-leader" "$base-quorum-status.out" "^HighWatermark:[[:space:]]+[1-9][0-9]*$"
  "${quorum[@]}" describe --replication >"$base-quorum-replication.out" 2>&1
  admin_check "$label/kafka-metadata-quorum-replication" "$base-quorum-replication.out" "^[0-9]+[[:space:]]+[^[:space:]]+[[:space:]]+[1-9][0-9]*[[:space:]]+0[[:space:]]+.*Leader"
}

# admin_client_cases [ARGS...]: AdminTests with kafka-clients 4.4.x and 3.9.x (ARGS: more of its
# options, e.g. --only quotas).
admin_client_cases() {
  local module version
  for module in client-4.4 client-3.9; do
    version="$(lib_version "$module" kafka-clients)"
    echo "== AdminClient $version"
    java_cases "admin-$version" 300 "$JAVA_COMPAT_TARGET/$module/classes:$JAVA_COMPAT_TARGET/$module/lib/*" \
      admin --bootstrap "$GREGOR_BOOTSTRAP" --label "admin-$version" "$@"
    broker_check "admin-$version"
  done
}

admin_tests() {
  admin_client_cases
  local v39 v44
  v39="$(lib_version tools-3.9 kafka_2.13)"
  v44="$(lib_version tools-4.4 kafka-tools)"
  echo "== Apache Kafka $v39 admin tools"
  admin_tool_cases "admin-tools-$v39" "$JAVA_COMPAT_TARGET/tools-3.9/lib/*" \
    "-Dlog4j.configuration=file:$JAVA_COMPAT_HOME/config/log4j.properties" kafka.admin.ConfigCommand
  broker_check "admin-tools-$v39"
  echo "== Apache Kafka $v44 admin tools"
  admin_tool_cases "admin-tools-$v44" "$JAVA_COMPAT_TARGET/tools-4.4/lib/*" \
    "-Dlog4j2.configurationFile=$JAVA_COMPAT_HOME/config/log4j2.properties" org.apache.kafka.tools.ConfigCommand
  cluster_tool_cases "admin-tools-$v44" "$JAVA_COMPAT_TARGET/tools-4.4/lib/*" \
    "-Dlog4j2.configurationFile=$JAVA_COMPAT_HOME/config/log4j2.properties"
  broker_check "admin-tools-$v44"
}

# The client quota cases of the admin group alone: AdminClient's (AdminTests --only quotas) and
# kafka-configs --entity-type ips of both tool versions.
quota_tests() {
  admin_client_cases --only quotas
  local v39 v44
  v39="$(lib_version tools-3.9 kafka_2.13)"
  v44="$(lib_version tools-4.4 kafka-tools)"
  ip_quota_tool_cases "admin-tools-$v39" "$JAVA_COMPAT_TARGET/tools-3.9/lib/*" \
    "-Dlog4j.configuration=file:$JAVA_COMPAT_HOME/config/log4j.properties" kafka.admin.ConfigCommand
  ip_quota_tool_cases "admin-tools-$v44" "$JAVA_COMPAT_TARGET/tools-4.4/lib/*" \
    "-Dlog4j2.configurationFile=$JAVA_COMPAT_HOME/config/log4j2.properties" org.apache.kafka.tools.ConfigCommand
  broker_check quotas
}

# ---- failover -------------------------------------------------------------------------------

# admin_up ADMIN_PORT PID: waits until the admin listener of gregor PID answers (false if the
# process exits or 10 s pass).
admin_up() { http_up "http://127.0.0.1:$1/v1/healthz" "$2"; }

# http_up URL PID: waits (10 s at most) until URL answers 2xx, or the process PID is gone.
http_up() {
  local i
  for i in $(seq 1 200); do
    curl -sf "$1" >/dev/null 2>&1 && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}


# The three-broker cluster of the failover group: a second gregor serving three brokers
# (--brokers 3) with its admin listener, or, with JAVA_COMPAT_BROKER=kafka and
# KAFKA_REFERENCE_LIBS, three Apache Kafka nodes (../ref-kafka-cluster.sh) to calibrate the group
# on. Both with default.replication.factor=3 and auto.leader.rebalance.enable=false.
# cluster_start LOG sets CLUSTER_BOOTSTRAP, CLUSTER_METADATA_LOG (a segment of the metadata log)
# and CLUSTER_CONTROL (FailoverTests' arguments that stop and start a broker); cluster_node
# stop|start N OUT stops or starts broker N (as a crash on gregor; a controlled shutdown on Kafka,
# waiting until the others no longer list it, and on start until it is back in every ISR);
# cluster_stop ends it.
cluster_start() {
  local log="$1"
  CLUSTER_DIR="$(mktemp -d /tmp/gregor-failover.XXXXXX)"
  if [ "${JAVA_COMPAT_BROKER:-gregor}" = kafka ]; then
    CLUSTER_BOOTSTRAP="$(bash "$COMPAT_ROOT/ref-kafka-cluster.sh" start "$CLUSTER_DIR/kafka" 2>"$log")" || return 1
    CLUSTER_METADATA_LOG="$CLUSTER_DIR/kafka/node1/logs/__cluster_metadata-0/00000000000000000000.log"
    CLUSTER_CONTROL=(--control "bash $COMPAT_ROOT/ref-kafka-cluster.sh %s-node $CLUSTER_DIR/kafka %d")
    return 0
  fi
  local port
  port="$(gregor_free_ports 3)"
  CLUSTER_ADMIN="127.0.0.1:$(gregor_free_port)"
  "$GREGOR_BIN" --listen "127.0.0.1:$port" --data-dir "$CLUSTER_DIR" --brokers 3 --admin-listen "$CLUSTER_ADMIN" \
    --override default.replication.factor=3 --override auto.leader.rebalance.enable=false \
    >"$log" 2>&1 &
  CLUSTER_PID=$!
  CLUSTER_BOOTSTRAP="127.0.0.1:$port,127.0.0.1:$((port + 1)),127.0.0.1:$((port + 2))"
  CLUSTER_METADATA_LOG="$CLUSTER_DIR/__cluster_metadata-0/00000000000000000000.log"
  CLUSTER_CONTROL=(--admin "$CLUSTER_ADMIN")
  admin_up "${CLUSTER_ADMIN##*:}" "$CLUSTER_PID"
}

cluster_node() {
  local action="$1" id="$2" out="$3"
  if [ "${JAVA_COMPAT_BROKER:-gregor}" = kafka ]; then
    bash "$COMPAT_ROOT/ref-kafka-cluster.sh" "$action-node" "$CLUSTER_DIR/kafka" "$id" >"$out" 2>&1 || return 1
    # What gregor's admin listener answers, so that one check serves both.
    [ "$action" = stop ] && echo '{"state":"stopped"}' >>"$out"
    [ "$action" = start ] && echo '{"state":"running"}' >>"$out"
    return 0
  fi
  curl -sf -X POST "http://$CLUSTER_ADMIN/v1/brokers/$id/$action" >"$out" 2>&1
}

cluster_stop() {
  if [ "${JAVA_COMPAT_BROKER:-gregor}" = kafka ]; then
    bash "$COMPAT_ROOT/ref-kafka-cluster.sh" stop "$CLUSTER_DIR/kafka" >/dev/null 2>&1
  else
    kill "$CLUSTER_PID" 2>/dev/null
    wait "$CLUSTER_PID" 2>/dev/null
  fi
  rm -rf "$CLUSTER_DIR"
}

# failover_tests: kafka-topics --describe through a stop and start of broker 1 (its leaderships
# move, it leaves and rejoins the ISRs; auto.leader.rebalance.enable=false keeps them moved), then
# kafka-leader-election brings the preferred leaders back; reassignments, the metadata log read by
# Kafka's tools, and FailoverTests' clients (see cluster_start for the cluster).
failover_tests() {
  if [ "${JAVA_COMPAT_BROKER:-gregor}" = kafka ] && [ -z "${KAFKA_REFERENCE_LIBS:-}" ]; then
    echo "SKIP failover: the Kafka cluster needs KAFKA_REFERENCE_LIBS (Kafka 4.x)"
    return 0
  fi
  local v44 label cp log_opt base
  v44="$(lib_version tools-4.4 kafka-tools)"
  label="failover-$v44"
  cp="$JAVA_COMPAT_TARGET/tools-4.4/lib/*"
  log_opt="-Dlog4j2.configurationFile=$JAVA_COMPAT_HOME/config/log4j2.properties"
  base="$LOGS/$label"
  echo "== Apache Kafka $v44 tools through a broker stop and start"
  if ! cluster_start "$base-broker.log"; then
    fail "$label/broker-start" "the three-broker cluster did not start" "$base-broker.log"
    cluster_stop
    return 0
  fi
  local bootstrap="$CLUSTER_BOOTSTRAP"
  local java=(timeout 60 java "$log_opt" -cp "$cp")
  local topics=("${java[@]}" org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap")
  local elect=("${java[@]}" org.apache.kafka.tools.LeaderElectionCommand --bootstrap-server "$bootstrap")
  "${topics[@]}" --create --topic fo --partitions 3 >"$base-create.out" 2>&1
  "${topics[@]}" --describe --topic fo >"$base-describe.out" 2>&1
  admin_check "$label/kafka-topics-describe-replicas" "$base-describe.out" \
    "Partition: 0.*Leader: ([123]).*Replicas: \1,[123],[123].*Isr: \1,[123],[123]"
  cluster_node stop 1 "$base-stop.out"
  admin_check "$label/admin-stop" "$base-stop.out" '"state":"stopped"'
  "${topics[@]}" --describe --topic fo >"$base-describe-stopped.out" 2>&1
  admin_check "$label/kafka-topics-describe-after-stop" "$base-describe-stopped.out" \
    "Partition: 2.*Leader: [23].*Isr: [23],[23]\s" "Leader: 1|Isr: [0-9,]*1"
  cluster_node start 1 "$base-start.out"
  admin_check "$label/admin-start" "$base-start.out" '"state":"running"'
  # Back in every ISR, which Kafka lists in no promised order (4.4 shows 1,2,3; gregor appends).
  "${topics[@]}" --describe --topic fo >"$base-describe-started.out" 2>&1
  admin_check "$label/kafka-topics-describe-after-start" "$base-describe-started.out" \
    "Replicas: 1,[23],[23]\s+Isr: ([123],[123],[123])\s" "Leader: 1|Isr: [23],[23]\s"
  "${elect[@]}" --election-type preferred --all-topic-partitions >"$base-elect.out" 2>&1
  admin_check "$label/kafka-leader-election-preferred" "$base-elect.out" \
    "Successfully completed leader election \(PREFERRED\) for partitions fo-[0-9]"
  "${topics[@]}" --describe --topic fo >"$base-describe-elected.out" 2>&1
  admin_check "$label/kafka-topics-describe-after-election" "$base-describe-elected.out" \
    "Leader: 1.*Replicas: 1,"
  "${elect[@]}" --election-type preferred --topic fo --partition 0 >"$base-elect-again.out" 2>&1
  admin_check "$label/kafka-leader-election-not-needed" "$base-elect-again.out" \
    "Valid replica already elected for partitions fo-0"
  reassign_cases "$label" "$bootstrap" "${java[@]}"
  # Kafka's DumpLogSegments decodes the metadata log, reassignments and fencing included.
  "${java[@]}" org.apache.kafka.tools.DumpLogSegments --cluster-metadata-decoder \
    --files "$CLUSTER_METADATA_LOG" >"$base-dump-log.out" 2>&1
  admin_check "$label/kafka-dump-log-cluster-metadata" "$base-dump-log.out" \
    '"type":"PARTITION_CHANGE_RECORD".*"removingReplicas":\[[123]\],"addingReplicas":\[[123]\]'
  # Kafka 4.4 fences and unfences a broker with BrokerRegistrationChangeRecords (fenced 1 and -1).
  admin_check "$label/kafka-dump-log-brokers-fenced" "$base-dump-log.out" \
    '"type":"BROKER_REGISTRATION_CHANGE_RECORD","version":0,"data":\{"brokerId":1,"brokerEpoch":[0-9]+,"fenced":1\}'
  admin_check "$label/kafka-dump-log-brokers-unfenced" "$base-dump-log.out" \
    '"type":"BROKER_REGISTRATION_CHANGE_RECORD","version":0,"data":\{"brokerId":1,"brokerEpoch":[0-9]+,"fenced":-1\}'
  # kafka-metadata-shell reads it as an image: the topic, the three brokers, a partition's
  # registration (4.2, the newest kafka-shell on Maven Central; module shell-4.2), from a copy (the
  # shell locks the log directory). gregor only: Kafka's log lacks its bootstrap records (they are
  # in the checkpoint kafka-storage format writes), and the 4.2 shell shows nothing of a 4.4
  # snapshot (its broker records carry 4.4's new fields).
  if [ "${JAVA_COMPAT_BROKER:-gregor}" = kafka ]; then
    echo "SKIP $label/kafka-metadata-shell-*: the 4.2 shell does not read Kafka 4.4's metadata"
  else
    local copy="$CLUSTER_DIR/shell/__cluster_metadata-0/00000000000000000000.log"
    mkdir -p "$(dirname "$copy")" && cp "$CLUSTER_METADATA_LOG" "$copy"
    local shell=(timeout 60 java -cp "$JAVA_COMPAT_TARGET/shell-4.2/lib/*" org.apache.kafka.shell.MetadataShell
      --snapshot "$copy")
    # The shell's one-shot mode is racy: MetadataShell.waitUntilCaughtUp returns once the loader
    # has applied any offset above 0, but the loader publishes the image only after the file
    # reader's shutdown event exposes the high-water mark, so on a loaded machine the command can
    # run against an empty image (seen in CI: `ls` printed nothing while the next two calls on the
    # same copy saw everything). Each call is retried a few times while its output lacks the line.
    shell_check() {
      local name=$1 out=$2 pattern=$3 try
      shift 3
      for try in 1 2 3 4 5; do
        "${shell[@]}" "$@" >"$out" 2>&1
        grep -qE -- "$pattern" "$out" && break
      done
      admin_check "$label/$name" "$out" "$pattern"
    }
    shell_check kafka-metadata-shell-topics "$base-shell-topics.out" "^fo$" ls /image/topics/byName
    shell_check kafka-metadata-shell-brokers "$base-shell-brokers.out" "^3$" ls /image/cluster/brokers
    shell_check kafka-metadata-shell-partition "$base-shell-partition.out" \
      "^PartitionRegistration\(replicas=\[[123], [123], [123]\].*isr=\[[123], [123], [123]\].*leader=[123]," \
      cat /image/topics/byName/fo/0
  fi
  # Clients through it all (FailoverTests): elections, reassignments, stops, coordinators moving.
  local clients
  clients="failover-clients-$(lib_version client-4.4 kafka-clients)"
  echo "== kafka-clients through broker stops, elections, reassignments and coordinator moves"
  java_cases "$clients" 420 "$CLIENT_CP" failover --bootstrap "$bootstrap" \
    "${CLUSTER_CONTROL[@]}" --label "$clients"
  cluster_stop
}

# reassign_cases LABEL BOOTSTRAP JAVA...: kafka-reassign-partitions of the three-broker gregor:
# --generate a move off broker 1, --execute it (new replicas are in sync at once: it completes in
# the request), --verify, --list, --describe, --cancel of a completed one, and a broker the
# cluster does not have. Outputs as Kafka 4.4's tool prints them (checked against a single 4.4
# broker where one broker suffices: --list, --verify, --cancel, unknown brokers).
reassign_cases() {
  local label="$1" bootstrap="$2"
  shift 2
  local java=("$@") base
  base="$LOGS/$label-reassign"
  local reassign=("${java[@]}" org.apache.kafka.tools.reassign.ReassignPartitionsCommand --bootstrap-server "$bootstrap")
  local topics=("${java[@]}" org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap")
  "${topics[@]}" --create --topic mv --partitions 3 --replication-factor 2 >"$base-create.out" 2>&1
  echo '{"topics":[{"topic":"mv"}],"version":1}' >"$base-topics.json"
  "${reassign[@]}" --generate --topics-to-move-json-file "$base-topics.json" --broker-list 2,3 >"$base-generate.out" 2>&1
  admin_check "$label/kafka-reassign-generate" "$base-generate.out" \
    '^\{"version":1,"partitions":\[\{"topic":"mv","partition":0,"replicas":\[[23],[23]\],"log_dirs":\["any","any"\]\}'
  tail -n 1 "$base-generate.out" >"$base-plan.json"
  "${reassign[@]}" --execute --reassignment-json-file "$base-plan.json" >"$base-execute.out" 2>&1
  admin_check "$label/kafka-reassign-execute" "$base-execute.out" \
    "^Successfully started partition reassignments for mv-0,mv-1,mv-2$"
  "${reassign[@]}" --verify --reassignment-json-file "$base-plan.json" >"$base-verify.out" 2>&1
  admin_check "$label/kafka-reassign-verify" "$base-verify.out" \
    "^Reassignment of partition mv-2 is completed\.$" "Error|is still in progress"
  "${reassign[@]}" --list >"$base-list.out" 2>&1
  admin_check "$label/kafka-reassign-list" "$base-list.out" "^No partition reassignments found\.$"
  "${topics[@]}" --describe --topic mv >"$base-describe.out" 2>&1
  admin_check "$label/kafka-reassign-describe-moved" "$base-describe.out" \
    "Partition: 0.*Leader: [23].*Replicas: [23],[23]\s" "Replicas: .*1|Leader: 1"
  "${reassign[@]}" --cancel --reassignment-json-file "$base-plan.json" >"$base-cancel.out" 2>&1
  admin_check "$label/kafka-reassign-cancel-none-active" "$base-cancel.out" \
    "^None of the specified partition reassignments are active\.$"
  echo '{"version":1,"partitions":[{"topic":"mv","partition":0,"replicas":[9,2],"log_dirs":["any","any"]}]}' >"$base-unknown.json"
  "${reassign[@]}" --execute --reassignment-json-file "$base-unknown.json" >"$base-unknown.out" 2>&1
  admin_check "$label/kafka-reassign-unknown-broker" "$base-unknown.out" "^Error: Unknown broker id 9$"
}

# ---- security -------------------------------------------------------------------------------

# security_certs DIR: a CA, a server certificate for 127.0.0.1 and localhost and a client
# certificate (CN=alice), each key with its chain in one PEM keystore file as ssl.keystore.type=PEM
# reads it, made with openssl.
security_certs() {
  local d="$1" n subject
  mkdir -p "$d"
  (
    cd "$d" || exit 1
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=gregor-compat-ca || exit 1
    for n in server client; do
      subject=/O=gregor-compat/CN=localhost
      [ "$n" = client ] && subject=/O=gregor-compat/OU=tests/CN=alice
      openssl req -newkey rsa:2048 -nodes -keyout "$n.key" -out "$n.csr" -subj "$subject" &&
        openssl x509 -req -in "$n.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$n.pem" -days 2 -extfile san.ext &&
        cat "$n.key" "$n.pem" >"$n-keystore.pem" || exit 1
      # The same key and chain in the stores Java users have, made by keytool: JKS (a key
      # password of its own) and PKCS12; and the CA as JKS and PKCS12 truststores.
      openssl pkcs12 -export -inkey "$n.key" -in "$n.pem" -certfile ca.pem -name "$n" \
        -passout pass:openssl-secret -out "$n-openssl.p12" &&
        keytool -importkeystore -noprompt -srckeystore "$n-openssl.p12" -srcstoretype PKCS12 \
          -srcstorepass openssl-secret -destkeystore "$n.jks" -deststoretype JKS \
          -deststorepass store-secret -destkeypass key-secret &&
        keytool -importkeystore -noprompt -srckeystore "$n-openssl.p12" -srcstoretype PKCS12 \
          -srcstorepass openssl-secret -destkeystore "$n.p12" -deststoretype PKCS12 \
          -deststorepass store-secret || exit 1
    done
    for n in jks p12; do
      keytool -importcert -noprompt -alias ca -file ca.pem -keystore "truststore.$n" \
        -storetype "$([ "$n" = jks ] && echo JKS || echo PKCS12)" -storepass trust-secret || exit 1
    done
  ) >"$d/openssl.log" 2>&1
}

# security_jwt DIR: an RSA key, its JWKS (jwks.json) and RS256 tokens signed with it, as an
# identity provider issues them (sub alice, issuer https://issuer.gregor.test, an hour long):
# token.jwt for the audience kafka, token-other-audience.jwt for billing.
security_jwt() {
  local d="$1"
  (
    cd "$d" || exit 1
    openssl genrsa -out jwt.key 2048 || exit 1
    python3 - <<'PY'
import base64, json, subprocess, time
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
modulus = subprocess.check_output(["openssl", "rsa", "-in", "jwt.key", "-noout", "-modulus"]).decode()
n = bytes.fromhex(modulus.strip().split("=", 1)[1])
key = {"kty": "RSA", "kid": "gregor-compat", "use": "sig", "alg": "RS256", "n": b64(n), "e": b64((65537).to_bytes(3, "big"))}
open("jwks.json", "w").write(json.dumps({"keys": [key]}))
now = int(time.time())
def token(aud):
    header = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "gregor-compat"}).encode())
    claims = b64(json.dumps({"sub": "alice", "iss": "https://issuer.gregor.test", "aud": aud,
                             "iat": now, "exp": now + 3600, "scope": "kafka"}).encode())
    signature = subprocess.check_output(["openssl", "dgst", "-sha256", "-sign", "jwt.key"],
                                        input=f"{header}.{claims}".encode())
    return f"{header}.{claims}.{b64(signature)}"
open("token.jwt", "w").write(token("kafka"))
open("token-other-audience.jwt", "w").write(token("billing"))
PY
  ) >"$d/jwt.log" 2>&1
}

# security_jwks_server DIR PORT: serves DIR/certs/jwks.json at https://127.0.0.1:PORT/jwks.json
# (the server certificate of security_certs), as an identity provider publishes its keys; sets
# JWKS_SERVER_PID once it listens.
security_jwks_server() {
  local d="$1" port="$2" i
  mkdir -p "$d/jwks-www"
  cp "$d/certs/jwks.json" "$d/jwks-www/"
  python3 - "$port" "$d/jwks-www" "$d/certs" >"$d/jwks-server.log" 2>&1 <<'PY' &
import functools, http.server, ssl, sys
port, www, certs = int(sys.argv[1]), sys.argv[2], sys.argv[3]
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=www)
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(f"{certs}/server.pem", f"{certs}/server.key")
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
PY
  JWKS_SERVER_PID=$!
  for i in $(seq 1 300); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),0.2).close()" 2>/dev/null && return 0
    kill -0 "$JWKS_SERVER_PID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# security_client_configs DIR: the client settings of each case (and a bad twin of each).
security_client_configs() {
  local d="$1" certs="$1/certs"
  local plain='org.apache.kafka.common.security.plain.PlainLoginModule required'
  local scram='org.apache.kafka.common.security.scram.ScramLoginModule required'
  printf '%s\n' "security.protocol=SASL_PLAINTEXT" "sasl.mechanism=PLAIN" \
    "sasl.jaas.config=$plain username=\"alice\" password=\"alice-secret\";" >"$d/plain.properties"
  printf '%s\n' "security.protocol=SASL_PLAINTEXT" "sasl.mechanism=PLAIN" \
    "sasl.jaas.config=$plain username=\"alice\" password=\"not-alice-secret\";" >"$d/plain-bad.properties"
  printf '%s\n' "security.protocol=SASL_PLAINTEXT" "sasl.mechanism=SCRAM-SHA-512" \
    "sasl.jaas.config=$scram username=\"alice\" password=\"alice-scram\";" >"$d/scram.properties"
  printf '%s\n' "security.protocol=SASL_PLAINTEXT" "sasl.mechanism=SCRAM-SHA-512" \
    "sasl.jaas.config=$scram username=\"alice\" password=\"alice-scram!\";" >"$d/scram-bad.properties"
  printf '%s\n' "security.protocol=SSL" "ssl.truststore.type=PEM" "ssl.truststore.location=$certs/ca.pem" \
    "ssl.keystore.type=PEM" "ssl.keystore.location=$certs/client-keystore.pem" >"$d/ssl.properties"
  # No client certificate where one is required.
  printf '%s\n' "security.protocol=SSL" "ssl.truststore.type=PEM" "ssl.truststore.location=$certs/ca.pem" \
    >"$d/ssl-bad.properties"
  printf '%s\n' "security.protocol=SASL_SSL" "ssl.truststore.type=PEM" "ssl.truststore.location=$certs/ca.pem" \
    "sasl.mechanism=SCRAM-SHA-512" "sasl.jaas.config=$scram username=\"alice\" password=\"alice-scram\";" \
    >"$d/sasl-ssl.properties"
  printf '%s\n' "security.protocol=SASL_SSL" "ssl.truststore.type=PEM" "ssl.truststore.location=$certs/ca.pem" \
    "sasl.mechanism=SCRAM-SHA-512" "sasl.jaas.config=$scram username=\"bob\" password=\"alice-scram\";" \
    >"$d/sasl-ssl-bad.properties"
  # Client certificates from keytool's JKS and PKCS12 stores (on listeners whose own stores
  # are JKS and PKCS12).
  printf '%s\n' "security.protocol=SSL" "ssl.truststore.type=JKS" "ssl.truststore.location=$certs/truststore.jks" \
    "ssl.truststore.password=trust-secret" "ssl.keystore.type=JKS" "ssl.keystore.location=$certs/client.jks" \
    "ssl.keystore.password=store-secret" "ssl.key.password=key-secret" >"$d/ssl-jks.properties"
  printf '%s\n' "security.protocol=SSL" "ssl.truststore.type=PKCS12" "ssl.truststore.location=$certs/truststore.p12" \
    "ssl.truststore.password=trust-secret" "ssl.keystore.type=PKCS12" "ssl.keystore.location=$certs/client.p12" \
    "ssl.keystore.password=store-secret" >"$d/ssl-p12.properties"
  # OAUTHBEARER: Kafka's unsecured login module (an unsigned token with sub alice), and a token
  # from a file (the token endpoint's file:// form) that the broker checks against its JWKS.
  local oauth='org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required'
  printf '%s\n' "security.protocol=SASL_PLAINTEXT" "sasl.mechanism=OAUTHBEARER" \
    "sasl.jaas.config=$oauth unsecuredLoginStringClaim_sub=\"alice\" unsecuredLoginExtension_traceId=\"compat-1\";" \
    >"$d/oauth-unsecured.properties"
  local t
  for t in token:oauth-jwks token-other-audience:oauth-jwks-bad; do
    printf '%s\n' "security.protocol=SASL_SSL" "ssl.truststore.type=PEM" "ssl.truststore.location=$certs/ca.pem" \
      "sasl.mechanism=OAUTHBEARER" "sasl.jaas.config=$oauth;" \
      "sasl.login.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler" \
      "sasl.oauthbearer.token.endpoint.url=file://$certs/${t%%:*}.jwt" >"$d/${t#*:}.properties"
  done
}

# security_broker_start LISTENERS SETTINGS...: a broker (gregor, or Kafka with
# JAVA_COMPAT_BROKER=kafka) on GREGOR_PORT (PLAINTEXT) and the extra LISTENERS
# (e.g. SASL_SSL://127.0.0.1:PORT), with the --override SETTINGS.
security_broker_start() {
  local extra="$1"
  shift
  if [ "${JAVA_COMPAT_BROKER:-gregor}" = kafka ]; then
    KAFKA_REF_LISTENERS="$extra" gregor_start "$@"
  else
    gregor_start --override "listeners=PLAINTEXT://127.0.0.1:$GREGOR_PORT,$extra" "$@"
  fi
}

# security_tests: a broker of its own with PLAINTEXT, SASL_PLAINTEXT (PLAIN and SCRAM-SHA-512),
# SSL (client certificate required) and SASL_SSL (SCRAM-SHA-512) listeners and PEM certificates
# made at test time; kafka-configs 4.4 creates the SCRAM user on the PLAINTEXT listener; then
# kafka-clients 4.4 and 3.9 produce, consume in a group and administer over each secured listener,
# and clients with wrong credentials are refused (SecurityTests). The same server settings run on
# Apache Kafka with JAVA_COMPAT_BROKER=kafka (ref-kafka.sh adds the listeners).
security_tests() {
  echo "== security: SASL_PLAINTEXT (PLAIN, SCRAM-SHA-512), SSL (client certificates), SASL_SSL (SCRAM-SHA-512)"
  local d="$LOGS/security" v44 label module version
  mkdir -p "$d"
  if ! security_certs "$d/certs"; then
    fail security/certificates "openssl failed" "$d/certs/openssl.log"
    return 0
  fi
  if ! security_jwt "$d/certs"; then
    fail security/jwt "openssl or python3 failed" "$d/certs/jwt.log"
    return 0
  fi
  security_client_configs "$d"
  # The SASL_SSL listener's JWKS comes from an https endpoint (its certificate checked against
  # the truststore of the login module's JAAS options, as Kafka's JaasOptionsUtils does).
  local jwks_port
  jwks_port="$(gregor_free_port)"
  if ! security_jwks_server "$d" "$jwks_port"; then
    fail security/jwks-server "the https JWKS server did not start" "$d/jwks-server.log"
    return 0
  fi
  local jwks_url="https://127.0.0.1:$jwks_port/jwks.json"
  # Kafka 4 reads OAUTHBEARER files and URLs only when this system property lists them
  # (clients and brokers alike).
  local allowed="$jwks_url,file://$d/certs/token.jwt,file://$d/certs/token-other-audience.jwt"
  local JAVA_OPTS=("${JAVA_OPTS[@]}" "-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls=$allowed")
  local KAFKA_REF_JAVA_OPTS="-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls=$allowed"
  save_broker_log
  gregor_cleanup
  BROKER_NAME=security
  GREGOR_PORT="$(gregor_free_port)"
  local p1 p2 p3 p4 p5
  p1="$(gregor_free_port)"
  p2="$(gregor_free_port)"
  p3="$(gregor_free_port)"
  p4="$(gregor_free_port)"
  p5="$(gregor_free_port)"
  local extra="SASL_PLAINTEXT://127.0.0.1:$p1,SSL://127.0.0.1:$p2,SASL_SSL://127.0.0.1:$p3,JKS://127.0.0.1:$p4,PKCS12://127.0.0.1:$p5"
  local plain_users='org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";'
  local scram_login='org.apache.kafka.common.security.scram.ScramLoginModule required;'
  local oauth_login='org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required'
  pem_tls_overrides "$d/certs"
  local settings=(
    --override "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512,OAUTHBEARER"
    --override "listener.name.sasl_plaintext.plain.sasl.jaas.config=$plain_users"
    --override "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=$scram_login"
    --override "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config=$oauth_login unsecuredLoginStringClaim_sub=\"admin\";"
    --override "listener.name.sasl_plaintext.plain.connections.max.reauth.ms=3000"
    --override "listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512,OAUTHBEARER"
    --override "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=$scram_login"
    # (With options, Kafka's broker also logs in as the module says: hence the sub claim.)
    --override "listener.name.sasl_ssl.oauthbearer.sasl.jaas.config=$oauth_login unsecuredLoginStringClaim_sub=\"broker\" ssl.truststore.type=\"PEM\" ssl.truststore.location=\"$d/certs/ca.pem\";"
    --override "listener.name.sasl_ssl.oauthbearer.sasl.server.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
    --override "sasl.oauthbearer.jwks.endpoint.url=$jwks_url"
    --override "sasl.oauthbearer.expected.audience=kafka"
    --override "sasl.oauthbearer.expected.issuer=https://issuer.gregor.test"
    "${PEM_TLS_OVERRIDES[@]}"
    # Two more SSL listeners with keytool's stores: JKS (the key's own password) and PKCS12.
    --override "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,JKS:SSL,PKCS12:SSL"
    --override "listener.name.jks.ssl.keystore.type=JKS"
    --override "listener.name.jks.ssl.keystore.location=$d/certs/server.jks"
    --override "listener.name.jks.ssl.keystore.password=store-secret"
    --override "listener.name.jks.ssl.key.password=key-secret"
    --override "listener.name.jks.ssl.truststore.type=JKS"
    --override "listener.name.jks.ssl.truststore.location=$d/certs/truststore.jks"
    --override "listener.name.jks.ssl.truststore.password=trust-secret"
    --override "listener.name.jks.ssl.client.auth=required"
    --override "listener.name.pkcs12.ssl.keystore.type=PKCS12"
    --override "listener.name.pkcs12.ssl.keystore.location=$d/certs/server.p12"
    --override "listener.name.pkcs12.ssl.keystore.password=store-secret"
    --override "listener.name.pkcs12.ssl.truststore.type=PKCS12"
    --override "listener.name.pkcs12.ssl.truststore.location=$d/certs/truststore.p12"
    --override "listener.name.pkcs12.ssl.truststore.password=trust-secret"
    --override "listener.name.pkcs12.ssl.client.auth=required"
  )
  if ! security_broker_start "$extra" "${settings[@]}"; then
    fail security/broker-start "could not start a broker with secured listeners" "$GREGOR_DATA.log"
    kill "$JWKS_SERVER_PID" 2>/dev/null
    return 0
  fi
  v44="$(lib_version tools-4.4 kafka-tools)"
  label="security-tools-$v44"
  local configs=(timeout 60 java "-Dlog4j2.configurationFile=$JAVA_COMPAT_HOME/config/log4j2.properties"
    -cp "$JAVA_COMPAT_TARGET/tools-4.4/lib/*" org.apache.kafka.tools.ConfigCommand --bootstrap-server "$GREGOR_BOOTSTRAP")
  "${configs[@]}" --entity-type users --entity-name alice --alter \
    --add-config 'SCRAM-SHA-512=[iterations=8192,password=alice-scram]' >"$d/configs-alter.out" 2>&1
  admin_check "$label/kafka-configs-add-scram-user" "$d/configs-alter.out" "Completed updating config for user alice"
  "${configs[@]}" --entity-type users --entity-name alice --describe >"$d/configs-describe.out" 2>&1
  admin_check "$label/kafka-configs-describe-scram-user" "$d/configs-describe.out" \
    "SCRAM credential configs for user-principal 'alice' are SCRAM-SHA-512=iterations=8192"
  "${configs[@]}" --entity-type users --entity-name nobody --alter --delete-config SCRAM-SHA-512 >"$d/configs-delete-missing.out" 2>&1
  admin_check "$label/kafka-configs-delete-missing-scram-user" "$d/configs-delete-missing.out" \
    "ResourceNotFoundException|does not exist" "Completed updating"
  for module in client-4.4 client-3.9; do
    version="$(lib_version "$module" kafka-clients)"
    local cp="$JAVA_COMPAT_TARGET/$module/classes:$JAVA_COMPAT_TARGET/$module/lib/*" case port
    for case in plain:$p1 scram:$p1 ssl:$p2 sasl-ssl:$p3 oauth-unsecured:$p1 oauth-jwks:$p3 ssl-jks:$p4 ssl-p12:$p5; do
      port="${case#*:}"
      case="${case%%:*}"
      local more=()
      [ -f "$d/$case-bad.properties" ] && more+=(--bad-config "$d/$case-bad.properties")
      # PLAIN sessions on SASL_PLAINTEXT last 3 s (connections.max.reauth.ms): KIP-368.
      [ "$case" = plain ] && more+=(--reauthentications 2)
      java_cases "security-$version-$case" 180 "$cp" security --bootstrap "127.0.0.1:$port" \
        --label "security-$version/$case" --client-config "$d/$case.properties" "${more[@]}"
    done
  done
  broker_check security
  kill "$JWKS_SERVER_PID" 2>/dev/null
  wait "$JWKS_SERVER_PID" 2>/dev/null
}

# security_acl_tests: a broker of its own with the StandardAuthorizer, a SASL_PLAINTEXT listener
# with PLAIN users admin, alice and bob, and super.users admin and ANONYMOUS (on Kafka the
# PLAINTEXT listener carries its own broker-to-controller requests, which need CLUSTER_ACTION).
# kafka-acls.sh 4.4 adds, lists and removes topic, group, prefixed and transactional-id ACLs
# between client steps (AclTests, kafka-clients 4.4) that must be refused, or served, accordingly.
# The same server settings run on Apache Kafka with JAVA_COMPAT_BROKER=kafka.
security_acl_tests() {
  echo "== security-acls: kafka-acls.sh, producers and consumers refused and allowed"
  local d="$LOGS/security-acls" v44 label p1 p2 u
  mkdir -p "$d"
  if ! security_certs "$d/certs"; then
    fail security-acls/certificates "openssl failed" "$d/certs/openssl.log"
    return 0
  fi
  save_broker_log
  gregor_cleanup
  BROKER_NAME=security-acls
  GREGOR_PORT="$(gregor_free_port)"
  p1="$(gregor_free_port)"
  p2="$(gregor_free_port)"
  local plain='org.apache.kafka.common.security.plain.PlainLoginModule required'
  local users='user_admin="admin-secret" user_alice="alice-secret" user_bob="bob-secret"'
  # The SSL listener maps the client certificate CN=alice,OU=tests,O=gregor-compat to User:alice
  # (ssl.principal.mapping.rules), so alice's ACLs apply to it.
  pem_tls_overrides "$d/certs"
  if ! security_broker_start "SASL_PLAINTEXT://127.0.0.1:$p1,SSL://127.0.0.1:$p2" \
    --override "sasl.enabled.mechanisms=PLAIN" \
    --override "listener.name.sasl_plaintext.plain.sasl.jaas.config=$plain $users;" \
    --override "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer" \
    --override "super.users=User:admin;User:ANONYMOUS" \
    "${PEM_TLS_OVERRIDES[@]}" \
    --override "listener.name.ssl.ssl.principal.mapping.rules=RULE:^CN=([^,]*),OU=tests,.*\$/\$1/,DEFAULT"; then
    fail security-acls/broker-start "could not start a broker with an authorizer" "$GREGOR_DATA.log"
    return 0
  fi
  for u in admin alice bob; do
    printf '%s\n' "security.protocol=SASL_PLAINTEXT" "sasl.mechanism=PLAIN" \
      "sasl.jaas.config=$plain username=\"$u\" password=\"$u-secret\";" >"$d/$u.properties"
  done
  printf '%s\n' "security.protocol=SSL" "ssl.truststore.type=PEM" "ssl.truststore.location=$d/certs/ca.pem" \
    "ssl.keystore.type=PEM" "ssl.keystore.location=$d/certs/client-keystore.pem" >"$d/alice-ssl.properties"
  v44="$(lib_version tools-4.4 kafka-tools)"
  label="security-acls-$v44"
  local acls=(timeout 60 java "-Dlog4j2.configurationFile=$JAVA_COMPAT_HOME/config/log4j2.properties"
    -cp "$JAVA_COMPAT_TARGET/tools-4.4/lib/*" org.apache.kafka.tools.AclCommand
    --bootstrap-server "127.0.0.1:$p1" --command-config "$d/admin.properties")
  # acl_step NAME USER ACTION TOPIC EXPECT [--group G | --transactional-id X]: USER's client
  # settings ($d/USER.properties; alice-ssl: the SSL listener with alice's certificate).
  acl_step() {
    local name="$1" user="$2" action="$3" topic="$4" expect="$5" port="$p1"
    shift 5
    [ "$user" = alice-ssl ] && port="$p2"
    java_cases "security-acls-$name" 90 "$CLIENT_CP" acl-client --bootstrap "127.0.0.1:$port" \
      --label "$label/$name" --client-config "$d/$user.properties" --action "$action" --topic "$topic" \
      --expect "$expect" "$@"
  }
  # acl_tool NAME WANT UNWANTED ARGS...: kafka-acls.sh with ARGS must exit 0, its output match
  # WANT (empty: anything, even nothing, as --remove and an empty --list print) and not UNWANTED.
  acl_tool() {
    local name="$1" want="$2" unwanted="$3" rc
    shift 3
    "${acls[@]}" "$@" >"$d/$name.out" 2>&1
    rc=$?
    if [ "$rc" -ne 0 ]; then
      fail "$label/$name" "kafka-acls exited $rc" "$d/$name.out"
    elif [ -n "$want" ]; then
      admin_check "$label/$name" "$d/$name.out" "$want" "$unwanted"
    elif grep -qE -- "$unwanted" "$d/$name.out"; then
      fail "$label/$name" "unexpected /$unwanted/" "$d/$name.out"
    else
      pass "$label/$name"
    fi
  }
  local orders='ResourcePattern\(resourceType=TOPIC, name=acl-orders, patternType=LITERAL\)'
  # The super user needs no ACL.
  acl_step super-user-creates-topics admin create-topic acl-orders ok
  acl_step super-user-creates-prefixed-topic admin create-topic acl-logs-1 ok
  acl_step super-user-produces admin produce acl-orders ok
  # Topic ACLs (kafka-acls --producer: WRITE, DESCRIBE, CREATE).
  acl_step producer-refused alice produce acl-orders TopicAuthorizationException
  acl_tool add-producer "Adding ACLs for resource \`$orders\`" "Error|Exception" \
    --add --allow-principal User:alice --producer --topic acl-orders
  acl_step producer-allowed alice produce acl-orders ok
  # The certificate's principal, mapped to User:alice, has alice's ACLs.
  acl_step mapped-certificate-principal-allowed alice-ssl produce acl-orders ok
  # Group and topic READ, one at a time.
  acl_step consumer-refused-group alice consume acl-orders GroupAuthorizationException --group acl-group
  acl_tool add-group-read "Adding ACLs for resource \`ResourcePattern\(resourceType=GROUP, name=acl-group, patternType=LITERAL\)\`" \
    "Error|Exception" --add --allow-principal User:alice --operation Read --group acl-group
  acl_step consumer-refused-topic alice consume acl-orders TopicAuthorizationException --group acl-group
  acl_tool add-topic-read "Adding ACLs for resource" "Error|Exception" \
    --add --allow-principal User:alice --operation Read --topic acl-orders
  acl_step consumer-allowed alice consume acl-orders ok --group acl-group
  acl_tool list-topic "User:alice, host=\*, operation=READ, permissionType=ALLOW" "Error|Exception" \
    --list --topic acl-orders
  admin_check "$label/list-topic-producer-acls" "$d/list-topic.out" \
    "User:alice, host=\*, operation=WRITE, permissionType=ALLOW"
  # Prefixed ACLs.
  acl_step prefixed-refused bob produce acl-logs-1 TopicAuthorizationException
  acl_tool add-prefixed "Adding ACLs for resource \`ResourcePattern\(resourceType=TOPIC, name=acl-logs-, patternType=PREFIXED\)\`" \
    "Error|Exception" --add --allow-principal User:bob --producer --topic acl-logs- --resource-pattern-type prefixed
  acl_step prefixed-allowed bob produce acl-logs-1 ok
  acl_step prefixed-other-topic-refused bob produce acl-orders TopicAuthorizationException
  # A DENY wins over the prefixed ALLOW.
  acl_tool add-deny "Adding ACLs for resource" "Error|Exception" \
    --add --deny-principal User:bob --operation Write --topic acl-logs-1
  acl_step deny-refused bob produce acl-logs-1 TopicAuthorizationException
  # Transactional ids.
  acl_step transactional-id-refused alice transaction acl-orders TransactionalIdAuthorizationException \
    --transactional-id acl-tx
  acl_tool add-transactional-id "Adding ACLs for resource \`ResourcePattern\(resourceType=TRANSACTIONAL_ID, name=acl-tx, patternType=LITERAL\)\`" \
    "Error|Exception" --add --allow-principal User:alice --operation Write --transactional-id acl-tx
  acl_step transactional-id-allowed alice transaction acl-orders ok --transactional-id acl-tx
  # --remove takes the group READ away again.
  acl_tool remove-group-read "" "Error|Exception" \
    --remove --allow-principal User:alice --operation Read --group acl-group --force
  acl_tool list-group-after-remove "" "User:alice|Error|Exception" --list --group acl-group
  acl_step consumer-refused-after-remove alice consume acl-orders GroupAuthorizationException --group acl-group
  acl_tool list-all "name=acl-logs-, patternType=PREFIXED" "Error|Exception" --list
  acl_step super-user-consumes admin consume acl-orders ok --group admin-group
  broker_check security-acls
}

# ---- crash ----------------------------------------------------------------------------------

CRASH_COUNT=${JAVA_COMPAT_CRASH_COUNT:-50000} # records; at CRASH_RATE per second the producer runs ~10 s plus the outages
CRASH_RATE=${JAVA_COMPAT_CRASH_RATE:-5000}
CRASH_KILLS=3

acked_lines() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }

crash_test() {
  echo "== crash: SIGKILL the broker $CRASH_KILLS times under an idempotent producer"
  local topic=crash-idempotent acked="$LOGS/crash-acked.txt" plog="$LOGS/crash-producer.log"
  rm -f "$acked"
  timeout 300 java "${JAVA_OPTS[@]}" -cp "$CLIENT_CP" gregor.compat.Main crash-produce \
    --bootstrap "$GREGOR_BOOTSTRAP" --topic "$topic" --count "$CRASH_COUNT" --rate "$CRASH_RATE" \
    --acked "$acked" >"$plog" 2>&1 &
  local producer=$! kill_no target deadline kills_ok=1
  for kill_no in $(seq 1 "$CRASH_KILLS"); do
    # Kill once the producer is a quarter, a half, three quarters through: mid-stream, in flight.
    target=$((CRASH_COUNT * kill_no / (CRASH_KILLS + 1)))
    deadline=$((SECONDS + 60))
    while [ "$(acked_lines "$acked")" -lt "$target" ] && kill -0 "$producer" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
      sleep 0.05
    done
    if ! kill -0 "$producer" 2>/dev/null || [ "$(acked_lines "$acked")" -lt "$target" ]; then
      fail "crash/kill-$kill_no" "producer stalled or exited before $target acks ($(acked_lines "$acked") acked)" "$plog"
      kills_ok=0
      break
    fi
    echo "  kill -9 broker at ~$(acked_lines "$acked") acked records"
    gregor_kill9
    sleep 1
    if ! gregor_restart; then
      fail "crash/restart-$kill_no" "broker did not come back after SIGKILL" "$GREGOR_DATA.log"
      kill "$producer" 2>/dev/null
      wait "$producer" 2>/dev/null
      return
    fi
  done
  [ "$kills_ok" -eq 1 ] && pass "crash/$CRASH_KILLS-kills-mid-stream"
  wait "$producer"
  local rc=$?
  [ "$rc" -eq 0 ] || fail "crash/producer-exit" "crash producer exited with status $rc" "$plog"
  java_cases crash 120 "$CLIENT_CP" crash-verify --bootstrap "$GREGOR_BOOTSTRAP" --topic "$topic" \
    --count "$CRASH_COUNT" --acked "$acked" --label crash
  grep -q ' failed:' "$plog" && echo "  (producer errors: $plog)"
  if [ -n "$CLIENTS_LABEL" ]; then
    # The round trips written before the kills must still read back exactly, indexes included.
    echo "== after the kills: re-read the $CLIENTS_LABEL round trips"
    java_cases after-crash 180 "$CLIENT_CP" clients --bootstrap "$GREGOR_BOOTSTRAP" \
      --label after-crash --topics-of "$CLIENTS_LABEL" --verify-only true --count "$COUNT"
  fi
  broker_check crash
}

# ---- dedupe ---------------------------------------------------------------------------------

# Lost Produce responses, retried on a live broker and across a SIGKILL restart (DedupeTest).
# Uses a broker of its own whose advertised listener is the proxy's port.
dedupe_test() {
  echo "== dedupe: lost Produce responses retried, live and across a kill -9 restart"
  save_broker_log
  gregor_cleanup
  unset GREGOR_PORT
  BROKER_NAME=dedupe
  local proxy_port signals="$LOGS/dedupe-signals"
  proxy_port="$(gregor_free_port)"
  mkdir -p "$signals"
  if ! gregor_start --override "advertised.listeners=PLAINTEXT://127.0.0.1:$proxy_port"; then
    fail dedupe/broker-start "could not start a broker advertising 127.0.0.1:$proxy_port" "$GREGOR_DATA.log"
    return
  fi
  timeout 180 java "${JAVA_OPTS[@]}" -cp "$CLIENT_CP" gregor.compat.Main dedupe \
    --broker-port "$GREGOR_PORT" --proxy-port "$proxy_port" --signal-dir "$signals" \
    >"$LOGS/dedupe.out" 2>"$LOGS/dedupe.err" &
  local pid=$! deadline=$((SECONDS + 60))
  while [ ! -e "$signals/dropped" ] && kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
    sleep 0.05
  done
  if [ -e "$signals/dropped" ]; then
    gregor_kill9
    sleep 1
    gregor_restart || fail dedupe/restart "broker did not come back after SIGKILL" "$GREGOR_DATA.log"
    touch "$signals/restarted"
  fi
  wait "$pid"
  tally dedupe $? 180
  broker_check dedupe
}

# ---- consumer groups ------------------------------------------------------------------------

# wait_for_line FILE REGEX TIMEOUT_S PID: until FILE has a line matching REGEX, PID exits, or time is up.
wait_for_line() {
  local deadline=$((SECONDS + $3))
  while ! grep -qE "$2" "$1" 2>/dev/null; do
    { [ $SECONDS -lt $deadline ] && kill -0 "$4" 2>/dev/null; } || return 1
    sleep 0.1
  done
}

# cg_check NAME OUT [-v VAR=VALUE ...] PROGRAM: PASS if the awk PROGRAM, run over OUT, prints "ok".
cg_check() {
  local name="$1" out="$2"
  shift 2
  if [ "$(awk "$@" "$out")" = ok ]; then
    pass "$name"
  else
    fail "$name" "unexpected output: $(grep -v '^\s*at ' "$out" | grep -v '^\s*$' | head -n 6 | cut -c1-200 | tr '\n' '|')"
  fi
}

# consumer_groups_cases LABEL CP LOG4J_OPT: kafka-consumer-groups.sh against a group with one live
# member (3 partitions, 30 records each, offset 20 committed: lag 10), then after it left.
consumer_groups_cases() {
  local label="$1" cp="$2" log_opt="$3"
  local name="${label//./-}" base="$LOGS/$1-cg"
  local topic="$name" group="$name-group" stop="$LOGS/$1-cg.stop"
  # --timeout: the tool's admin calls default to 5 s, which a JVM on a loaded 2-core machine can
  # spend before its first answer (a 3.9 --delete once timed out "waiting for a node assignment").
  local cg=(timeout 60 java "$log_opt" -cp "$cp" org.apache.kafka.tools.consumer.group.ConsumerGroupCommand
    --bootstrap-server "$GREGOR_BOOTSTRAP" --timeout 30000)
  if ! java "${JAVA_OPTS[@]}" -cp "$CLIENT_CP" gregor.compat.Main groups-setup --bootstrap "$GREGOR_BOOTSTRAP" \
    --topic "$topic" --partitions 3 --records 30 >"$base-setup.log" 2>&1; then
    fail "$label/setup" "could not create and fill $topic" "$base-setup.log"
    return
  fi
  rm -f "$stop"
  timeout 120 java "${JAVA_OPTS[@]}" -cp "$CLIENT_CP" gregor.compat.Main group-member --bootstrap "$GREGOR_BOOTSTRAP" \
    --group "$group" --topic "$topic" --commit 20 --partitions 3 --stop-file "$stop" --client-id cg-member \
    >"$base-member.out" 2>"$base-member.err" &
  local member=$!
  if ! wait_for_line "$base-member.out" '^COMMITTED' 40 "$member"; then
    fail "$label/group-member-joins-and-commits" "the member did not commit within 40 s (output: $(tr '\n' ' ' <"$base-member.out"))" "$base-member.err"
    touch "$stop"; kill "$member" 2>/dev/null; wait "$member" 2>/dev/null
    return
  fi

  "${cg[@]}" --list >"$base-list.out" 2>&1
  cg_check "$label/list" "$base-list.out" -v g="$group" '$0 == g { n++ } END { if (n == 1) print "ok" }'
  "${cg[@]}" --describe --group "$group" >"$base-describe.out" 2>&1
  cg_check "$label/describe-offsets-lag-members" "$base-describe.out" -v g="$group" -v t="$topic" \
    '$1 == g && $2 == t { n++; if ($4 == 20 && $5 == 30 && $6 == 10 && $7 != "-" && $9 == "cg-member") good++ }
     END { if (n == 3 && good == 3) print "ok" }'
  "${cg[@]}" --describe --group "$group" --members >"$base-members.out" 2>&1
  cg_check "$label/describe-members" "$base-members.out" -v g="$group" \
    '$1 == g { n++; if ($4 == "cg-member" && $5 == 3) good++ } END { if (n == 1 && good == 1) print "ok" }'
  "${cg[@]}" --describe --group "$group" --state >"$base-state.out" 2>&1
  cg_check "$label/describe-state" "$base-state.out" -v g="$group" \
    '$1 == g { n++; if ($(NF-2) == "range" && $(NF-1) == "Stable" && $NF == 1) good++ } END { if (n == 1 && good == 1) print "ok" }'
  # ListGroups with a states filter; DescribeGroups for every group at once (one request per coordinator).
  "${cg[@]}" --list --state >"$base-list-state.out" 2>&1
  cg_check "$label/list-with-state" "$base-list-state.out" -v g="$group" \
    '$1 == g { n++; if ($2 == "Stable") good++ } END { if (n == 1 && good == 1) print "ok" }'
  "${cg[@]}" --describe --all-groups >"$base-describe-all.out" 2>&1
  cg_check "$label/describe-all-groups" "$base-describe-all.out" -v g="$group" -v t="$topic" \
    '$1 == g && $2 == t { n++; if ($4 == 20 && $5 == 30 && $6 == 10 && $7 != "-") good++ }
     /^Error/ { err++ } END { if (n == 3 && good == 3 && !err) print "ok" }'
  "${cg[@]}" --delete --group "$group" >"$base-delete-active.out" 2>&1
  cg_check "$label/delete-active-group-refused" "$base-delete-active.out" \
    '/GroupNotEmptyException|NON_EMPTY_GROUP|is not empty/ { n++ } /was successful/ { bad++ } END { if (n > 0 && !bad) print "ok" }'
  "${cg[@]}" --reset-offsets --group "$group" --topic "$topic" --to-earliest --execute >"$base-reset-active.out" 2>&1
  cg_check "$label/reset-offsets-active-group-refused" "$base-reset-active.out" \
    '/can only be reset if the group .* is inactive/ { n++ } END { if (n > 0) print "ok" }'

  # The member leaves (close(): LeaveGroup); the group is empty at once and keeps its offsets.
  touch "$stop"
  wait "$member"
  local rc=$?
  [ "$rc" -eq 0 ] || fail "$label/group-member-exit" "the member exited with status $rc" "$base-member.err"
  "${cg[@]}" --describe --group "$group" >"$base-describe-empty.out" 2>&1
  cg_check "$label/describe-inactive-group" "$base-describe-empty.out" -v g="$group" -v t="$topic" \
    '/has no active members/ { inactive++ }
     $1 == g && $2 == t { n++; if ($4 == 20 && $5 == 30 && $6 == 10 && $7 == "-") good++ }
     END { if (inactive && n == 3 && good == 3) print "ok" }'
  # The 3.9 tool prints the --reset-offsets and --delete-offsets tables without line breaks
  # between rows, so their rows are picked out with grep -o and tagged.
  "${cg[@]}" --reset-offsets --group "$group" --topic "$topic" --to-earliest --execute >"$base-reset.out" 2>&1
  "${cg[@]}" --describe --group "$group" >"$base-describe-reset.out" 2>&1
  { grep -oE "$group +$topic +[0-9]+ +-?[0-9]+" "$base-reset.out" | sed 's/^/RESET /'; cat "$base-describe-reset.out"; echo; } \
    >"$base-reset-both.out"
  cg_check "$label/reset-offsets-to-earliest" "$base-reset-both.out" -v g="$group" -v t="$topic" \
    '$1 == "RESET" && $2 == g && $3 == t { r++; if ($5 == 0) rgood++ }
     $1 == g && $2 == t { n++; if ($4 == 0 && $5 == 30 && $6 == 30) good++ }
     END { if (r == 3 && rgood == 3 && n == 3 && good == 3) print "ok" }'
  # One partition to an explicit offset: --dry-run shows it and commits nothing, --execute commits.
  "${cg[@]}" --reset-offsets --group "$group" --topic "$topic:1" --to-offset 25 --dry-run >"$base-dry-run.out" 2>&1
  "${cg[@]}" --describe --group "$group" >"$base-describe-dry-run.out" 2>&1
  { grep -oE "$group +$topic +[0-9]+ +-?[0-9]+" "$base-dry-run.out" | sed 's/^/RESET /'; cat "$base-describe-dry-run.out"; echo; } \
    >"$base-dry-run-both.out"
  cg_check "$label/reset-offsets-dry-run" "$base-dry-run-both.out" -v g="$group" -v t="$topic" \
    '$1 == "RESET" && $2 == g && $3 == t { r++; if ($4 == 1 && $5 == 25) rgood++ }
     $1 == g && $2 == t { n++; if ($4 == 0 && $6 == 30) good++ }
     END { if (r == 1 && rgood == 1 && n == 3 && good == 3) print "ok" }'
  "${cg[@]}" --reset-offsets --group "$group" --topic "$topic:1" --to-offset 25 --execute >"$base-to-offset.out" 2>&1
  "${cg[@]}" --describe --group "$group" >"$base-describe-to-offset.out" 2>&1
  cg_check "$label/reset-offsets-to-offset-one-partition" "$base-describe-to-offset.out" -v g="$group" -v t="$topic" \
    '$1 == g && $2 == t { n++; if (($3 == 1 && $4 == 25 && $6 == 5) || ($3 != 1 && $4 == 0 && $6 == 30)) good++ }
     END { if (n == 3 && good == 3) print "ok" }'
  "${cg[@]}" --delete-offsets --group "$group" --topic "$topic:0" >"$base-delete-offsets.out" 2>&1
  "${cg[@]}" --describe --group "$group" >"$base-describe-deleted.out" 2>&1
  { grep -oE "Request succeed|$topic +[0-9]+ +[A-Za-z]+ *$|$topic +[0-9]+ +[A-Za-z]+ " "$base-delete-offsets.out" | sed 's/^/DELETED /'
    cat "$base-describe-deleted.out"; echo; } >"$base-delete-offsets-both.out"
  cg_check "$label/delete-offsets" "$base-delete-offsets-both.out" -v g="$group" -v t="$topic" \
    '$2 == "Request" { okmsg++ }
     $1 == "DELETED" && $2 == t { rows++; if ($3 == 0 && $4 == "Successful") row++ }
     $1 == g && $2 == t { n++; if ($3 == 0) p0++ }
     END { if (okmsg && rows == 1 && row == 1 && n == 2 && !p0) print "ok" }'
  "${cg[@]}" --delete --group "$group" >"$base-delete.out" 2>&1
  "${cg[@]}" --list >"$base-list-after.out" 2>&1
  { cat "$base-delete.out"; echo; cat "$base-list-after.out"; } >"$base-delete-both.out"
  cg_check "$label/delete-group" "$base-delete-both.out" -v g="$group" \
    'index($0, "Deletion of requested consumer groups") && index($0, "was successful") { okmsg++ }
     $0 == g { listed++ } END { if (okmsg && !listed) print "ok" }'
}

# consumer_groups_848_cases LABEL CP LOG4J_OPT: kafka-consumer-groups --delete-offsets on a KIP-848
# group (Kafka 4.4's deleteOffsets): while its member subscribes to one topic, that topic's offsets
# are refused per partition (GROUP_SUBSCRIBED_TO_TOPIC) and those of another topic the member
# committed are deleted; once the member left, the first topic's go too.
consumer_groups_848_cases() {
  local label="$1" cp="$2" log_opt="$3"
  local name="${label//./-}" base="$LOGS/$1-848" t
  local topic="$name-848" other="$name-848-other" group="$name-848-group" stop="$LOGS/$1-848.stop"
  local cg=(timeout 60 java "$log_opt" -cp "$cp" org.apache.kafka.tools.consumer.group.ConsumerGroupCommand
    --bootstrap-server "$GREGOR_BOOTSTRAP" --timeout 30000)
  for t in "$topic" "$other"; do
    java "${JAVA_OPTS[@]}" -cp "$CLIENT_CP" gregor.compat.Main groups-setup --bootstrap "$GREGOR_BOOTSTRAP" \
      --topic "$t" --partitions 2 --records 10 >>"$base-setup.log" 2>&1 ||
      { fail "$label/848-setup" "could not create and fill $t" "$base-setup.log"; return; }
  done
  rm -f "$stop"
  timeout 120 java "${JAVA_OPTS[@]}" -cp "$CLIENT_CP" gregor.compat.Main group-member --bootstrap "$GREGOR_BOOTSTRAP" \
    --group "$group" --topic "$topic" --protocol consumer --commit 5 --also-commit "$other" --partitions 2 \
    --stop-file "$stop" --client-id cg848-member >"$base-member.out" 2>"$base-member.err" &
  local member=$!
  if ! wait_for_line "$base-member.out" '^COMMITTED' 40 "$member"; then
    fail "$label/848-member-joins-and-commits" "the member did not commit within 40 s (output: $(tr '\n' ' ' <"$base-member.out"))" "$base-member.err"
    touch "$stop"; kill "$member" 2>/dev/null; wait "$member" 2>/dev/null
    return
  fi
  "${cg[@]}" --delete-offsets --group "$group" --topic "$topic" --topic "$other" >"$base-delete-live.out" 2>&1
  "${cg[@]}" --describe --group "$group" >"$base-describe-live.out" 2>&1
  { cat "$base-delete-live.out"; echo; sed 's/^/DESCRIBED /' "$base-describe-live.out"; } >"$base-delete-live-both.out"
  cg_check "$label/848-delete-offsets-subscribed-refused-others-deleted" "$base-delete-live-both.out" \
    -v g="$group" -v t="$topic" -v o="$other" \
    '/partition-level error/ { partmsg++ }
     $1 == t && $3 == "Error:" && /actively subscribed/ { refused++ }
     $1 == o && $3 == "Successful" { deleted++ }
     $1 == "DESCRIBED" && $2 == g && $3 == t && $5 == 5 { kept++ }
     $1 == "DESCRIBED" && $2 == g && $3 == o { left++ }
     END { if (partmsg && refused == 2 && deleted == 2 && kept == 2 && !left) print "ok" }'
  touch "$stop"
  wait "$member"
  local rc=$?
  [ "$rc" -eq 0 ] || fail "$label/848-member-exit" "the member exited with status $rc" "$base-member.err"
  "${cg[@]}" --delete-offsets --group "$group" --topic "$topic" >"$base-delete-empty.out" 2>&1
  "${cg[@]}" --describe --group "$group" >"$base-describe-empty.out" 2>&1
  { cat "$base-delete-empty.out"; echo; sed 's/^/DESCRIBED /' "$base-describe-empty.out"; } >"$base-delete-empty-both.out"
  cg_check "$label/848-delete-offsets-once-empty" "$base-delete-empty-both.out" -v g="$group" -v t="$topic" \
    '/^Request succeed/ { okmsg++ }
     $1 == t && $3 == "Successful" { deleted++ }
     $1 == "DESCRIBED" && $2 == g && $3 == t { left++ }
     END { if (okmsg && deleted == 2 && !left) print "ok" }'
}

# groups_broker: the consumer groups' broker of its own (no initial rebalance delay).
groups_broker() {
  echo "== consumer groups (broker of its own: group.initial.rebalance.delay.ms=0)"
  save_broker_log
  gregor_cleanup
  unset GREGOR_PORT
  BROKER_NAME=groups
  gregor_start --override group.initial.rebalance.delay.ms=0 && return 0
  fail groups/broker-start "could not start a broker" "$GREGOR_DATA.log"
  return 1
}

groups_tests() {
  groups_broker || return
  local module version
  for module in client-4.4 client-3.9; do
    version="$(lib_version "$module" kafka-clients)"
    echo "== consumer groups, kafka-clients $version"
    java_cases "groups-$version" 240 "$JAVA_COMPAT_TARGET/$module/classes:$JAVA_COMPAT_TARGET/$module/lib/*" \
      groups --bootstrap "$GREGOR_BOOTSTRAP" --label "groups-$version" $([ "$module" = client-3.9 ] && echo --quick true)
    broker_check "groups-$version"
  done

  # Two more groups keep a live member subscribed through both restarts (group-member
  # --record-file), one classic and one KIP-848 (group.protocol=consumer): each must go on
  # reading afterwards, nothing skipped, nothing twice; the KIP-848 one also keeps its partitions
  # without being reassigned (Kafka replays its group from __consumer_offsets).
  echo "== consumer groups: committed offsets across broker restarts (SIGTERM, then SIGKILL)"
  local round how kind live_pids=() live_stop="$LOGS/groups-live.stop"
  rm -f "$live_stop" "$LOGS"/groups-live-*-records.txt
  for round in 1 2; do
    how=$([ "$round" = 1 ] && echo sigterm || echo kill9)
    java_cases "groups-restart-$how-commit" 60 "$CLIENT_CP" groups-restart --bootstrap "$GREGOR_BOOTSTRAP" \
      --step commit --round "$round" --label "groups-restart/$how"
    if [ "$round" = 1 ]; then
      for kind in classic consumer; do
        timeout 180 java "${JAVA_OPTS[@]}" -cp "$CLIENT_CP" gregor.compat.Main group-member --bootstrap "$GREGOR_BOOTSTRAP" \
          --group "groups-restart-live-$kind" --topic groups-restart --protocol "$kind" \
          --record-file "$LOGS/groups-live-$kind-records.txt" --stop-file "$live_stop" \
          --client-id "live-$kind" >"$LOGS/groups-live-$kind.out" 2>"$LOGS/groups-live-$kind.err" &
        live_pids+=($!)
        wait_for_line "$LOGS/groups-live-$kind.out" '^ASSIGNED 0,1,2,3$' 40 "$!" ||
          fail "groups-restart/live-$kind-member-joins" "the live member did not get all 4 partitions within 40 s" \
            "$LOGS/groups-live-$kind.err"
      done
    fi
    if [ "$how" = sigterm ]; then gregor_stop; else gregor_kill9; fi
    if ! gregor_restart; then
      fail "groups-restart/$how-restart" "broker did not come back" "$GREGOR_DATA.log"
      touch "$live_stop"
      return
    fi
    java_cases "groups-restart-$how-verify" 60 "$CLIENT_CP" groups-restart --bootstrap "$GREGOR_BOOTSTRAP" \
      --step verify --round "$round" --label "groups-restart/$how"
  done
  for kind in classic consumer; do
    java_cases "groups-restart-live-$kind" 60 "$CLIENT_CP" groups-live-verify --bootstrap "$GREGOR_BOOTSTRAP" \
      --topic groups-restart --records "$LOGS/groups-live-$kind-records.txt" \
      --label "groups-restart/live-$kind-member-reads-on-exactly-once"
    # Only the KIP-848 member can be held to "no rebalance": a classic Java 4.x consumer that
    # loses every broker re-bootstraps its metadata (KIP-899), sees its topics change and rejoins
    # by itself, against Apache Kafka too.
    [ "$kind" = consumer ] || continue
    if [ "$(grep -c '^ASSIGNED' "$LOGS/groups-live-$kind.out")" = 1 ]; then
      pass "groups-restart/live-$kind-member-not-rebalanced"
    else
      fail "groups-restart/live-$kind-member-not-rebalanced" \
        "the live member was reassigned across the restarts: $(grep '^ASSIGNED' "$LOGS/groups-live-$kind.out" | tr '\n' ' ')" \
        "$LOGS/groups-live-$kind.err"
    fi
  done
  touch "$live_stop"
  for kind in "${live_pids[@]}"; do
    wait "$kind" || echo "  (a live member exited with status $?: $LOGS/groups-live-*.err)"
  done
  broker_check groups-restart
  consumer_groups_tool_tests
}

# consumer_groups_tool_tests: kafka-consumer-groups 3.9 and 4.4 (the end of the groups group, or
# alone with JAVA_COMPAT_GROUPS=consumer-groups).
consumer_groups_tool_tests() {
  local v39 v44
  v39="$(lib_version tools-3.9 kafka_2.13)"
  v44="$(lib_version tools-4.4 kafka-tools)"
  echo "== kafka-consumer-groups $v39 and $v44"
  consumer_groups_cases "consumer-groups-$v39" "$JAVA_COMPAT_TARGET/tools-3.9/lib/*" \
    "-Dlog4j.configuration=file:$JAVA_COMPAT_HOME/config/log4j.properties"
  consumer_groups_cases "consumer-groups-$v44" "$JAVA_COMPAT_TARGET/tools-4.4/lib/*" \
    "-Dlog4j2.configurationFile=$JAVA_COMPAT_HOME/config/log4j2.properties"
  consumer_groups_848_cases "consumer-groups-$v44" "$JAVA_COMPAT_TARGET/tools-4.4/lib/*" \
    "-Dlog4j2.configurationFile=$JAVA_COMPAT_HOME/config/log4j2.properties"
  broker_check consumer-groups
}

# ---- transactions ---------------------------------------------------------------------------

txn_tests() {
  local module version
  for module in client-4.4 client-3.9; do
    version="$(lib_version "$module" kafka-clients)"
    echo "== transactions, kafka-clients $version"
    java_cases "txn-$version" 300 "$JAVA_COMPAT_TARGET/$module/classes:$JAVA_COMPAT_TARGET/$module/lib/*" \
      txn --bootstrap "$GREGOR_BOOTSTRAP" --label "txn-$version"
    broker_check "txn-$version"
  done
  local v44
  v44="$(lib_version tools-4.4 kafka-tools)"
  echo "== kafka-transactions $v44"
  txn_tool_cases "txn-tools-$v44" "$JAVA_COMPAT_TARGET/tools-4.4/lib/*" \
    "-Dlog4j2.configurationFile=$JAVA_COMPAT_HOME/config/log4j2.properties"
  broker_check "txn-tools-$v44"
}

# txn_tool_cases LABEL CP LOG4J_OPT: kafka-transactions.sh list / describe / describe-producers /
# find-hanging / abort, on a transaction a producer left open (txn-open exits without committing).
txn_tool_cases() {
  local label="$1" cp="$2" log_opt="$3"
  local t="${label//./-}" base="$LOGS/$1"
  local tool=(timeout 60 java "$log_opt" -cp "$cp" org.apache.kafka.tools.TransactionsCommand --bootstrap-server "$GREGOR_BOOTSTRAP")
  local topics=(timeout 60 java "$log_opt" -cp "$cp" org.apache.kafka.tools.TopicCommand --bootstrap-server "$GREGOR_BOOTSTRAP")
  "${topics[@]}" --create --topic "$t-open" --partitions 1 --replication-factor 1 >"$base-create.out" 2>&1
  if ! timeout 60 java "${JAVA_OPTS[@]}" -cp "$CLIENT_CP" gregor.compat.Main txn-open --bootstrap "$GREGOR_BOOTSTRAP" \
    --topic "$t-open" --transactional-id "$t-open-id" >"$base-open.out" 2>&1 || ! grep -qx OPEN "$base-open.out"; then
    fail "$label/setup" "could not leave a transaction open" "$base-open.out"
    return
  fi
  "${tool[@]}" list >"$base-list.out" 2>&1
  admin_check "$label/list" "$base-list.out" "^$t-open-id[[:space:]]+1[[:space:]]+[0-9]+[[:space:]]+Ongoing[[:space:]]*$"
  "${tool[@]}" describe --transactional-id "$t-open-id" >"$base-describe.out" 2>&1
  admin_check "$label/describe" "$base-describe.out" "^1[[:space:]]+$t-open-id[[:space:]]+[0-9]+[[:space:]]+0[[:space:]]+Ongoing[[:space:]]+300000[[:space:]]+[0-9]+[[:space:]]+[0-9]+[[:space:]]+$t-open-0[[:space:]]*$"
  "${tool[@]}" describe-producers --topic "$t-open" --partition 0 >"$base-producers.out" 2>&1
  admin_check "$label/describe-producers" "$base-producers.out" "^[0-9]+[[:space:]]+0[[:space:]]+-?[0-9]+[[:space:]]+2[[:space:]]+[0-9]+[[:space:]]+0[[:space:]]*$"
  # The coordinator knows the partition is in the transaction: not hanging.
  "${tool[@]}" find-hanging --broker-id 1 >"$base-hanging.out" 2>&1
  admin_check "$label/find-hanging-none" "$base-hanging.out" "^Topic[[:space:]]+Partition[[:space:]]+ProducerId" "$t-open"
  "${tool[@]}" abort --topic "$t-open" --partition 0 --start-offset 0 >"$base-abort.out" 2>&1
  "${tool[@]}" describe-producers --topic "$t-open" --partition 0 >"$base-producers-after.out" 2>&1
  admin_check "$label/abort" "$base-producers-after.out" "^[0-9]+[[:space:]]+0[[:space:]]+-?[0-9]+[[:space:]]+2[[:space:]]+[0-9]+[[:space:]]+None[[:space:]]*$"
}

# ---- Kafka Streams, exactly once --------------------------------------------------------------

# An exactly_once_v2 word count (EosWordCount) reads a steadily produced input; it is SIGKILLed
# mid-stream, restarted on the same state directory, and must still produce exact counts: for
# every word the updates 1, 2, ..., n, each once, as a read_committed reader sees them.
STREAMS_LINES=${JAVA_COMPAT_STREAMS_LINES:-20000}
STREAMS_RATE=${JAVA_COMPAT_STREAMS_RATE:-2000}

streams_tests() {
  local cp="$JAVA_COMPAT_TARGET/streams-4.4/classes:$JAVA_COMPAT_TARGET/streams-4.4/lib/*"
  local version label app="$LOGS/streams-eos" state producer= pid run
  version="$(lib_version streams-4.4 kafka-streams)"
  label="streams-eos-$version"
  state="$(mktemp -d /tmp/gregor-streams.XXXXXX)"
  local java=(java "${JAVA_OPTS[@]}" -cp "$cp" gregor.streams.EosWordCount)
  local topics=(--input streams-eos-in --output streams-eos-out)
  echo "== Kafka Streams $version, exactly_once_v2, killed and restarted"
  # The topics first (no lines): Streams refuses to assign a topology whose input is missing.
  timeout 120 "${java[@]}" produce --bootstrap "$GREGOR_BOOTSTRAP" "${topics[@]}" --lines 0 \
    >"$app-topics.out" 2>&1 || { fail "$label/create-topics" "could not create the topics" "$app-topics.out"; return; }
  for run in 1 2; do
    # No timeout wrapper: $! must be the JVM itself, which the kill -9 below is meant for.
    "${java[@]}" run --bootstrap "$GREGOR_BOOTSTRAP" --app-id streams-eos "${topics[@]}" \
      --state-dir "$state" >"$app-$run.out" 2>"$app-$run.err" &
    pid=$!
    if ! wait_for_line "$app-$run.out" '^RUNNING$' 120 "$pid"; then
      fail "$label/running-$run" "the application did not reach RUNNING within 120 s" "$app-$run.err"
      kill "$pid" $producer 2>/dev/null
      rm -rf "$state"
      return
    fi
    [ "$run" = 2 ] && break
    # The input starts once the application runs, so the kill below lands mid-stream.
    timeout 300 "${java[@]}" produce --bootstrap "$GREGOR_BOOTSTRAP" "${topics[@]}" \
      --lines "$STREAMS_LINES" --rate "$STREAMS_RATE" >"$app-produce.out" 2>"$app-produce.err" &
    producer=$!
    wait_for_line "$app-1.out" '^PROCESSED 5000$' 120 "$pid" ||
      fail "$label/processing" "the application processed fewer than 5,000 words within 120 s" "$app-1.err"
    kill -9 "$pid"
    wait "$pid" 2>/dev/null
    if kill -0 "$producer" 2>/dev/null; then
      pass "$label/killed-mid-stream"
    else
      fail "$label/killed-mid-stream" "the input was complete before the kill: raise JAVA_COMPAT_STREAMS_LINES"
    fi
  done
  if wait "$producer" && grep -q '^PRODUCED' "$app-produce.out"; then
    timeout 300 "${java[@]}" verify --bootstrap "$GREGOR_BOOTSTRAP" --output streams-eos-out \
      --lines "$STREAMS_LINES" --label "$label" >"$app-verify.out" 2>"$app-verify.err"
    tally "$(basename "$app")-verify" $? 300
  else
    fail "$label/produce" "the input producer failed" "$app-produce.err"
  fi
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  rm -rf "$state"
  broker_check "$label"
}

# ---- Kafka Streams, the streams rebalance protocol (KIP-1071) --------------------------------

# A word count (StreamsProtocol: a repartition topic, a changelogged store) with
# group.protocol=streams on two instances: the broker creates the internal topics and spreads
# the eight tasks (four partitions, two subtopologies) over both; one instance is stopped
# mid-stream and the other takes all its tasks; every input is counted once in the end (a clean
# stop: at_least_once counts once too, exactly_once_v2 is read read_committed). Then kafka-streams-groups --list / --describe (4.4).
STREAMS_PROTOCOL_LINES=${JAVA_COMPAT_STREAMS_PROTOCOL_LINES:-6000}

# last_tasks FILE: the active-task count of an instance's last TASKS line (-1 before any).
last_tasks() {
  awk '/^TASKS / { n = $2 } END { print (n == "" ? -1 : n) }' "$1" 2>/dev/null
}

# wait_tasks A B WANT_A WANT_B TIMEOUT_S: until the instances' last TASKS lines say so (a WANT of
# "+" is any count above 0, "*" any at all).
want_tasks() {
  case "$2" in
    '*') return 0 ;;
    +) [ "$1" -gt 0 ] ;;
    *) [ "$1" = "$2" ] ;;
  esac
}

wait_tasks() {
  local deadline=$((SECONDS + $5)) a b
  while :; do
    a="$(last_tasks "$1")" b="$(last_tasks "$2")"
    if want_tasks "$a" "$3" && want_tasks "$b" "$4"; then
      return 0
    fi
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}

streams_protocol_tests() {
  streams_protocol_case at_least_once
  streams_protocol_case exactly_once_v2 tools
}

# streams_protocol_case GUARANTEE [tools]: the scenario with one processing guarantee, then
# (with "tools") kafka-streams-groups against the surviving instance.
streams_protocol_case() {
  local guarantee="$1" tools_too="${2:-}"
  local cp="$JAVA_COMPAT_TARGET/streams-4.4/classes:$JAVA_COMPAT_TARGET/streams-4.4/lib/*"
  local version label base="$LOGS/streams-protocol-$1" app pa pb producer= sa sb started=$SECONDS
  version="$(lib_version streams-4.4 kafka-streams)"
  label="streams-protocol-$version/$guarantee"
  app="streams-protocol-${version//./-}-${guarantee//_/-}"
  local java=(java "${JAVA_OPTS[@]}" -cp "$cp" gregor.streams.StreamsProtocol)
  local topics=(--input "$app-in" --output "$app-out")
  echo "== Kafka Streams $version, group.protocol=streams, $guarantee, two instances"
  timeout 120 "${java[@]}" produce --bootstrap "$GREGOR_BOOTSTRAP" "${topics[@]}" --lines 0 --partitions 4 \
    >"$base-topics.out" 2>&1 || { fail "$label/create-topics" "could not create the topics" "$base-topics.out"; return; }
  sa="$(mktemp -d /tmp/gregor-streams-a.XXXXXX)"
  sb="$(mktemp -d /tmp/gregor-streams-b.XXXXXX)"
  "${java[@]}" run --bootstrap "$GREGOR_BOOTSTRAP" --app-id "$app" "${topics[@]}" --state-dir "$sa" \
    --guarantee "$guarantee" >"$base-a.out" 2>"$base-a.err" &
  pa=$!
  "${java[@]}" run --bootstrap "$GREGOR_BOOTSTRAP" --app-id "$app" "${topics[@]}" --state-dir "$sb" \
    --guarantee "$guarantee" >"$base-b.out" 2>"$base-b.err" &
  pb=$!
  # The broker spreads the eight tasks over both instances.
  if wait_tasks "$base-a.out" "$base-b.out" + + 180 &&
    [ $(($(last_tasks "$base-a.out") + $(last_tasks "$base-b.out"))) = 8 ]; then
    pass "$label/tasks-spread ($(last_tasks "$base-a.out") + $(last_tasks "$base-b.out"))"
  else
    fail "$label/tasks-spread" "tasks a=$(last_tasks "$base-a.out") b=$(last_tasks "$base-b.out") after 180 s" "$base-b.err"
  fi
  timeout 300 "${java[@]}" produce --bootstrap "$GREGOR_BOOTSTRAP" "${topics[@]}" \
    --lines "$STREAMS_PROTOCOL_LINES" --rate 1000 >"$base-produce.out" 2>"$base-produce.err" &
  producer=$!
  # Mid-stream, a stops (closes and leaves the group): b takes all its tasks.
  wait_for_line "$base-a.out" '^PROCESSED 1000$' 120 "$pa" ||
    wait_for_line "$base-b.out" '^PROCESSED 1000$' 10 "$pb" ||
    fail "$label/processing" "no instance processed 1,000 words within 120 s" "$base-a.err"
  kill -TERM "$pa" 2>/dev/null
  wait "$pa" 2>/dev/null
  if wait_tasks "$base-a.out" "$base-b.out" '*' 8 120; then
    pass "$label/tasks-moved"
  else
    fail "$label/tasks-moved" "b has $(last_tasks "$base-b.out") tasks 120 s after a stopped" "$base-b.err"
  fi
  if wait "$producer" && grep -q '^PRODUCED' "$base-produce.out"; then
    timeout 300 "${java[@]}" verify --bootstrap "$GREGOR_BOOTSTRAP" --app-id "$app" --output "$app-out" \
      --lines "$STREAMS_PROTOCOL_LINES" --label "$label" >"$base-verify.out" 2>"$base-verify.err"
    tally "streams-protocol-$guarantee-verify" $? 300
  else
    fail "$label/produce" "the input producer failed" "$base-produce.err"
  fi
  # kafka-streams-groups (4.4) while b is the one member.
  local v44 tools="$JAVA_COMPAT_TARGET/tools-4.4/lib/*"
  [ -n "$tools_too" ] || { streams_protocol_stop "$pb" "$sa" "$sb" "$started" "$label"; return; }
  v44="$(lib_version tools-4.4 kafka-tools)"
  local tool=(timeout 60 java "-Dlog4j2.configurationFile=$JAVA_COMPAT_HOME/config/log4j2.properties" -cp "$tools"
    org.apache.kafka.tools.streams.StreamsGroupCommand --bootstrap-server "$GREGOR_BOOTSTRAP")
  label="streams-groups-$v44"
  "${tool[@]}" --list >"$base-list.out" 2>&1
  cg_check "$label/list" "$base-list.out" -v g="$app" '$1 == g { ok = 1 } END { if (ok) print "ok" }'
  "${tool[@]}" --describe --group "$app" --state >"$base-state.out" 2>&1
  cg_check "$label/describe-state" "$base-state.out" -v g="$app" \
    '$1 == g && tolower($0) ~ /stable/ && $NF == 1 { ok = 1 } END { if (ok) print "ok" }'
  "${tool[@]}" --describe --group "$app" --members >"$base-members.out" 2>&1
  cg_check "$label/describe-members" "$base-members.out" -v g="$app" \
    '$1 == g && /ACTIVE: / && /0:\[0,1,2,3\]/ && /1:\[0,1,2,3\]/ { ok = 1 } END { if (ok) print "ok" }'
  # The lag of each partition the tasks read: the input's and the repartition topic's.
  "${tool[@]}" --describe --group "$app" --offsets >"$base-offsets.out" 2>&1
  cg_check "$label/describe-offsets" "$base-offsets.out" -v g="$app" -v t="$app-in" -v r="$app-words-repartition" \
    '$1 == g && ($2 == t || $2 == r) && $3 ~ /^[0-3]$/ && $4 ~ /^[0-9]+$/ { n++ } END { if (n == 8) print "ok" }'
  # OffsetDelete while the application runs: its input topic is refused, partition by partition.
  "${tool[@]}" --delete-offsets --group "$app" --input-topic "$app-in" >"$base-delete-offsets-live.out" 2>&1
  cg_check "$label/delete-offsets-of-a-running-app-refused" "$base-delete-offsets-live.out" -v t="$app-in" \
    '/partition-level error/ { partmsg++ } $1 == t && $3 == "Error:" && /actively subscribed/ { refused++ }
     END { if (partmsg && refused == 4) print "ok" }'
  streams_protocol_stop "$pb" "$sa" "$sb" "$started" "$label"
  streams_groups_stopped_cases "$label" "$app" "$base"
}

# streams_groups_stopped_cases LABEL APP BASE: kafka-streams-groups (4.4) on the group of a stopped
# application: --reset-offsets --to-earliest --execute, --delete-offsets of its input topic
# (committed offsets read back with --reset-offsets --to-current --dry-run), --describe --offsets
# (nothing to show without members, on Kafka too), and --delete with its internal topics.
streams_groups_stopped_cases() {
  local label="$1" app="$2" base="$3"
  local tool=(timeout 60 java "-Dlog4j2.configurationFile=$JAVA_COMPAT_HOME/config/log4j2.properties"
    -cp "$JAVA_COMPAT_TARGET/tools-4.4/lib/*" org.apache.kafka.tools.streams.StreamsGroupCommand
    --bootstrap-server "$GREGOR_BOOTSTRAP")
  local current=("${tool[@]}" --reset-offsets --group "$app" --all-input-topics --to-current --dry-run)
  "${tool[@]}" --reset-offsets --group "$app" --all-input-topics --to-earliest --execute >"$base-reset.out" 2>&1
  "${current[@]}" >"$base-reset-current.out" 2>&1
  { sed 's/^/RESET /' "$base-reset.out"; cat "$base-reset-current.out"; } >"$base-reset-both.out"
  cg_check "$label/reset-offsets-to-earliest-stopped-app" "$base-reset-both.out" -v g="$app" -v t="$app-in" \
    '$1 == "RESET" && $2 == g && $3 == t && $5 == 0 { reset++ } $1 == g && $2 == t && $4 == 0 { current++ }
     END { if (reset == 4 && current == 4) print "ok" }'
  "${tool[@]}" --delete-offsets --group "$app" --input-topic "$app-in" >"$base-delete-offsets.out" 2>&1
  "${current[@]}" >"$base-deleted-current.out" 2>&1
  { cat "$base-delete-offsets.out"; sed 's/^/CURRENT /' "$base-deleted-current.out"; } >"$base-delete-offsets-both.out"
  cg_check "$label/delete-offsets-stopped-app" "$base-delete-offsets-both.out" -v g="$app" -v t="$app-in" \
    '/^Request succeeded/ { okmsg++ } $1 == t && $3 == "Successful" { deleted++ }
     $1 == "CURRENT" && $2 == g && $3 == t { left++ } END { if (okmsg && deleted == 4 && !left) print "ok" }'
  "${tool[@]}" --describe --group "$app" --offsets >"$base-offsets-stopped.out" 2>&1
  cg_check "$label/describe-offsets-stopped-app" "$base-offsets-stopped.out" -v g="$app" \
    '/Error|Exception/ { bad++ } $1 == g { rows++ } END { if (!bad && !rows) print "ok" }'
  "${tool[@]}" --delete --group "$app" --delete-all-internal-topics >"$base-delete.out" 2>&1
  "${tool[@]}" --list >"$base-list-after.out" 2>&1
  { cat "$base-delete.out"; sed 's/^/LISTED /' "$base-list-after.out"; } >"$base-delete-both.out"
  cg_check "$label/delete-stopped-app-and-internal-topics" "$base-delete-both.out" -v g="$app" \
    'index($0, "Deletion of requested streams groups") && index($0, "was successful") { okmsg++ }
     index($0, "Deletion of associated internal topics") && index($0, "was successful") { topics++ }
     $1 == "LISTED" && $2 == g { listed++ } END { if (okmsg && topics && !listed) print "ok" }'
  broker_check "$label"
}

# streams_protocol_stop PID STATE_A STATE_B STARTED LABEL: stops the surviving instance.
streams_protocol_stop() {
  kill -TERM "$1" 2>/dev/null
  wait "$1" 2>/dev/null
  rm -rf "$2" "$3"
  echo "  (took $((SECONDS - $4)) s)"
  broker_check "$5"
}

# ---- share groups --------------------------------------------------------------------------

# share_offsets_check NAME OUT GROUP TOPIC START LAG: kafka-share-groups --describe shows
# partition 0 of TOPIC starting at START with lag LAG.
share_offsets_check() {
  cg_check "$1" "$2" -v g="$3" -v t="$4" -v o="$5" -v l="$6" \
    '$1 == g && $2 == t && $3 == 0 && $4 == o && $5 == l { ok = 1 } END { if (ok) print "ok" }'
}

# share_tests: KafkaShareConsumer 4.4 (ShareTests: implicit and explicit acknowledgement, two
# consumers on one partition, redelivery after a consumer left, the delivery-count limit), then
# kafka-share-groups --list and --describe (--members, --state) with one live member and --delete
# once it left, then a consumer killed with kill -9 while it holds records.
share_tests() {
  local cp="$JAVA_COMPAT_TARGET/share-4.4/classes:$JAVA_COMPAT_TARGET/share-4.4/lib/*"
  local version label
  version="$(lib_version share-4.4 kafka-clients)"
  label="share-$version"
  echo "== share groups, KafkaShareConsumer $version"
  timeout 300 java "${JAVA_OPTS[@]}" -cp "$cp" gregor.share.ShareTests --bootstrap "$GREGOR_BOOTSTRAP" \
    --label "$label" >"$LOGS/$label.out" 2>"$LOGS/$label.err"
  tally "$label" $? 300
  broker_check "$label"
  local v44 tools="$JAVA_COMPAT_TARGET/tools-4.4/lib/*" base="$LOGS/share-groups" group topic pid
  v44="$(lib_version tools-4.4 kafka-tools)"
  label="share-groups-$v44"
  group="${label//./-}-g"
  topic="${label//./-}-t"
  echo "== kafka-share-groups $v44"
  # The member reads stdin until it closes: the fifo's writer (fd 9) ends it.
  rm -f "$base.fifo" && mkfifo "$base.fifo"
  java "${JAVA_OPTS[@]}" -cp "$cp" gregor.share.ShareTests --bootstrap "$GREGOR_BOOTSTRAP" \
    --setup-group "$group" --topic "$topic" <"$base.fifo" >"$base-member.out" 2>"$base-member.err" &
  pid=$!
  exec 9>"$base.fifo"
  if ! wait_for_line "$base-member.out" '^READY$' 120 "$pid"; then
    fail "$label/member" "the share consumer did not read its record within 120 s" "$base-member.err"
  else
    local tool=(timeout 60 java "-Dlog4j2.configurationFile=$JAVA_COMPAT_HOME/config/log4j2.properties" -cp "$tools"
      org.apache.kafka.tools.consumer.group.ShareGroupCommand --bootstrap-server "$GREGOR_BOOTSTRAP")
    "${tool[@]}" --list >"$base-list.out" 2>&1
    cg_check "$label/list" "$base-list.out" -v g="$group" '$1 == g { ok = 1 } END { if (ok) print "ok" }'
    "${tool[@]}" --describe --group "$group" --state >"$base-state.out" 2>&1
    cg_check "$label/describe-state" "$base-state.out" -v g="$group" \
      '$1 == g && /Stable/ && $NF == 1 { ok = 1 } END { if (ok) print "ok" }'
    "${tool[@]}" --describe --group "$group" --members >"$base-members.out" 2>&1
    cg_check "$label/describe-members" "$base-members.out" -v g="$group" -v t="$topic" \
      '$1 == g && index($0, t ":0") { ok = 1 } END { if (ok) print "ok" }'
    # Offsets (DescribeShareGroupOffsets): the member accepted its one record, so nothing is
    # left (lag 0); the start is 1 on gregor, 0 on Kafka 4.4, which persists a start offset's
    # advance only with the next write. No reset while it is a member.
    "${tool[@]}" --describe --group "$group" >"$base-offsets.out" 2>&1
    cg_check "$label/describe-offsets" "$base-offsets.out" -v g="$group" -v t="$topic" \
      '$1 == g && $2 == t && $3 == 0 && ($4 == 0 || $4 == 1) && $5 == 0 { ok = 1 } END { if (ok) print "ok" }'
    "${tool[@]}" --reset-offsets --group "$group" --topic "$topic" --to-earliest --execute \
      >"$base-reset-active.out" 2>&1
    cg_check "$label/reset-offsets-refused-while-active" "$base-reset-active.out" -v g="$group" \
      'index($0, "Share group \x27" g "\x27 is not empty.") { ok = 1 } END { if (ok) print "ok" }'
  fi
  exec 9>&-
  wait "$pid" 2>/dev/null
  rm -f "$base.fifo"
  # The member left: the group's offsets can be reset (AlterShareGroupOffsets) and deleted
  # (DeleteShareGroupOffsets), then the empty group itself (DeleteGroups), its share state with it.
  if [ -n "${tool+x}" ]; then
    local to
    for to in earliest:0:1 latest:1:0; do
      "${tool[@]}" --reset-offsets --group "$group" --topic "$topic" --to-"${to%%:*}" --execute \
        >"$base-reset-${to%%:*}.out" 2>&1
      cg_check "$label/reset-offsets-to-${to%%:*}" "$base-reset-${to%%:*}.out" -v g="$group" -v t="$topic" \
        -v o="$(echo "$to" | cut -d: -f2)" '$1 == g && $2 == t && $3 == 0 && $4 == o { ok = 1 } END { if (ok) print "ok" }'
      "${tool[@]}" --describe --group "$group" >"$base-offsets-${to%%:*}.out" 2>&1
      share_offsets_check "$label/describe-offsets-after-reset-to-${to%%:*}" "$base-offsets-${to%%:*}.out" \
        "$group" "$topic" "$(echo "$to" | cut -d: -f2)" "$(echo "$to" | cut -d: -f3)"
    done
    "${tool[@]}" --delete-offsets --group "$group" --topic "$topic" >"$base-delete-offsets.out" 2>&1
    cg_check "$label/delete-offsets" "$base-delete-offsets.out" -v t="$topic" \
      '$1 == t && $2 == "Successful" { ok = 1 } END { if (ok) print "ok" }'
    "${tool[@]}" --describe --group "$group" >"$base-offsets-deleted.out" 2>&1
    cg_check "$label/describe-offsets-after-delete" "$base-offsets-deleted.out" -v g="$group" \
      'index($0, "Share group \x27" g "\x27 has no offset information.") { ok = 1 } END { if (ok) print "ok" }'
    "${tool[@]}" --delete --group "$group" >"$base-delete.out" 2>&1
    cg_check "$label/delete" "$base-delete.out" -v g="$group" \
      'index($0, "Deletion of requested share groups") && index($0, g) && /successful/ { ok = 1 } END { if (ok) print "ok" }'
    "${tool[@]}" --list >"$base-list-after.out" 2>&1
    cg_check "$label/list-after-delete" "$base-list-after.out" -v g="$group" \
      '$1 == g { seen = 1 } END { if (!seen) print "ok" }'
  fi
  broker_check "$label"
  # A consumer killed (kill -9) while it holds records: they go to the next one.
  label="share-$version"
  group="${label//./-}-killed"
  base="$LOGS/share-killed"
  echo "== a share consumer killed while holding records"
  # No timeout wrapper: $! must be the JVM itself, which the kill -9 below is meant for.
  java "${JAVA_OPTS[@]}" -cp "$cp" gregor.share.ShareTests --bootstrap "$GREGOR_BOOTSTRAP" \
    --hold-group "$group" --topic "$group" >"$base-holder.out" 2>"$base-holder.err" &
  pid=$!
  if wait_for_line "$base-holder.out" '^HELD$' 120 "$pid"; then
    kill -9 "$pid"
    wait "$pid" 2>/dev/null
    timeout 180 java "${JAVA_OPTS[@]}" -cp "$cp" gregor.share.ShareTests --bootstrap "$GREGOR_BOOTSTRAP" \
      --label "$label" --verify-group "$group" --topic "$group" >"$LOGS/share-killed.out" 2>"$LOGS/share-killed.err"
    tally share-killed $? 180
  else
    fail "$label/killed-consumer-holds" "the consumer did not acquire its records within 120 s" "$base-holder.err"
    kill "$pid" 2>/dev/null
  fi
  broker_check "$label"
}

# ---- the test control plane -------------------------------------------------------------------

# admin_gregor_cases LABEL SUBCOMMAND TIMEOUT SHOW -- GREGOR_ARGS...: a gregor of its own with the
# admin listener and GREGOR_ARGS, the Java SUBCOMMAND's cases against it (--bootstrap, --admin,
# --label), then the lines of their output that match the regex SHOW.
admin_gregor_cases() {
  local label=$1 subcommand=$2 timeout=$3 show=$4 port admin data pid
  shift 5
  port="$(gregor_free_port)"
  admin="$(gregor_free_port)"
  data="$(mktemp -d "/tmp/gregor-$subcommand.XXXXXX")"
  "$GREGOR_BIN" --listen "127.0.0.1:$port" --data-dir "$data" --admin-listen "127.0.0.1:$admin" \
    "$@" >"$LOGS/$label-broker.log" 2>&1 &
  pid=$!
  if ! admin_up "$admin" "$pid"; then
    fail "$label/broker-start" "gregor $* did not start" "$LOGS/$label-broker.log"
  else
    java_cases "$label" "$timeout" "$CLIENT_CP" "$subcommand" --bootstrap "127.0.0.1:$port" \
      --admin "127.0.0.1:$admin" --label "$label"
    grep -E "$show" "$LOGS/$label.out" | sed 's/^/  /'
  fi
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  rm -rf "$data"
}

# control_tests: gregors of their own with the admin listener. With --clock manual
# (ControlTests): an idempotent producer through a lost Produce response, a member expired by
# advancing the clock 46 s, POST /v1/reset between 100 tests.
# With --emulate-kafka-version 2.8 (EmulationTests): 4.4 clients use 2.8's request versions.
# Kafka has neither: gregor only.
control_tests() {
  if [ "${JAVA_COMPAT_BROKER:-gregor}" = kafka ]; then
    echo "SKIP control: needs gregor's admin listener"
    return 0
  fi
  local v
  v="$(lib_version client-4.4 kafka-clients)"
  echo "== kafka-clients against the test control plane (--clock manual)"
  admin_gregor_cases "control-$v" control 180 '^(member expired|[0-9]+ resets took)' -- \
    --clock manual --override group.initial.rebalance.delay.ms=0
  echo "== kafka-clients against gregor --emulate-kafka-version 2.8"
  admin_gregor_cases "emulation-2.8-$v" emulation 120 '^newest versions sent' -- \
    --emulate-kafka-version 2.8 --override group.initial.rebalance.delay.ms=0
}

# junit_tests: gregor's JUnit 5 extension (testing/java/gregor/testing/GregorExtension.java) in
# its example test class, run by JUnit's console launcher; each test method is a case. The
# extension starts gregors of its own. Kafka has no control plane: gregor only.
junit_tests() {
  if [ "${JAVA_COMPAT_BROKER:-gregor}" = kafka ]; then
    echo "SKIP junit: gregor's test extension"
    return 0
  fi
  local label rc
  label="junit-$(lib_version junit-4.4 junit-jupiter-api)"
  echo "== gregor's JUnit 5 extension, JUnit $(lib_version junit-4.4 junit-jupiter-api)"
  timeout 180 java "${JAVA_OPTS[@]}" -Dgregor.bin="$GREGOR_BIN" \
    -cp "$JAVA_COMPAT_TARGET/junit-4.4/classes:$JAVA_COMPAT_TARGET/junit-4.4/lib/*" \
    org.junit.platform.console.ConsoleLauncher execute --disable-banner --disable-ansi-colors \
    --details=testfeed --select-class gregor.testing.GregorExtensionExampleTest \
    >"$LOGS/$label.feed" 2>"$LOGS/$label.err"
  rc=$?
  # "JUnit Jupiter > Class > test() :: SUCCESSFUL|FAILED", a failure's "=> exception" after it.
  awk -v label="$label" '
    / :: SUCCESSFUL$/ { split($0, p, " > "); sub(/ :: SUCCESSFUL$/, "", p[3]); print "PASS " label "/" p[3] }
    / :: FAILED$/ { split($0, p, " > "); sub(/ :: FAILED$/, "", p[3]); failed = label "/" p[3]; next }
    failed != "" && /=>/ { sub(/^[ \t]*=> /, ""); print "FAIL " failed ": " $0; failed = "" }
  ' "$LOGS/$label.feed" >"$LOGS/$label.out"
  tally "$label" "$rc" 180
}

# ---- the schema registry --------------------------------------------------------------------

# schema_registry_tests: gregor's schema registry (--schema-registry-listen, Confluent's REST API)
# through two Java clients, on a gregor of its own: Spring Cloud Stream's
# ConfluentSchemaRegistryClient and Avro message converter (SpringRegistryTests), and Confluent's
# own client 7.5.3 as Flink's flink-sql-avro-confluent-registry bundles it, under Flink's
# Confluent-framed Avro (de)serialization schemas (FlinkRegistryTests). Each registers, evolves,
# consumes old and new records, is refused an incompatible schema; then a SIGTERM and a restart
# on the same data, and a new JVM of each finds the same ids and versions. Apache Kafka has no
# registry: gregor only.
schema_registry_tests() {
  if [ "${JAVA_COMPAT_BROKER:-gregor}" = kafka ]; then
    echo "SKIP schema-registry: Apache Kafka has no schema registry"
    return 0
  fi
  local spring flink port data pid phase
  spring="schema-registry-spring-$(lib_version spring-registry-4.2 spring-cloud-stream-schema-registry-client)"
  flink="schema-registry-flink-$(lib_version flink-registry-2.1 flink-sql-avro-confluent-registry)"
  echo "== schema registry: Spring Cloud Stream's ConfluentSchemaRegistryClient ${spring##*-}," \
    "Confluent's client in Flink's flink-sql-avro-confluent-registry ${flink##*-}"
  port="$(gregor_free_ports 2)" # the broker, then the registry
  data="$(mktemp -d /tmp/gregor-registry.XXXXXX)"
  for phase in write reread; do
    "$GREGOR_BIN" --listen "127.0.0.1:$port" --data-dir "$data" \
      --schema-registry-listen "127.0.0.1:$((port + 1))" >>"$LOGS/schema-registry-broker.log" 2>&1 &
    pid=$!
    if ! http_up "http://127.0.0.1:$((port + 1))/subjects" "$pid"; then
      fail "schema-registry/broker-start-$phase" "gregor with a schema registry did not start" \
        "$LOGS/schema-registry-broker.log"
      kill "$pid" 2>/dev/null
      wait "$pid" 2>/dev/null
      break
    fi
    registry_case "$spring" spring-registry-4.2 SpringRegistryTests "$phase" "$port"
    registry_case "$flink" flink-registry-2.1 FlinkRegistryTests "$phase" "$port"
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  rm -rf "$data"
}

# registry_case LABEL MODULE CLASS PHASE PORT: one phase of one client's registry tests, against
# the broker on PORT and its registry on PORT+1; the ids it saves go to $LOGS/LABEL.ids.
registry_case() {
  local label="$1" module="$2" class="$3" phase="$4" port="$5"
  timeout 120 java "${JAVA_OPTS[@]}" -cp "$JAVA_COMPAT_TARGET/$module/classes:$JAVA_COMPAT_TARGET/$module/lib/*" \
    "gregor.compat.$class" --phase "$phase" --bootstrap "127.0.0.1:$port" \
    --registry "http://127.0.0.1:$((port + 1))" --label "$label" --topic "${label//./-}" \
    --state "$LOGS/$label.ids" >"$LOGS/$label-$phase.out" 2>"$LOGS/$label-$phase.err"
  tally "$label-$phase" $? 120
}

# ---- main -----------------------------------------------------------------------------------

# lib.sh's cleanup deletes the broker's data directory and log: keep the log with the step logs.
BROKER_NAME=main
save_broker_log() {
  [ -n "${GREGOR_DATA:-}" ] && [ -d "$LOGS" ] && cp "$GREGOR_DATA.log" "$LOGS/broker-$BROKER_NAME.log" 2>/dev/null
  return 0
}
on_exit() {
  gregor_stop
  save_broker_log
  gregor_cleanup
}
trap on_exit EXIT
build
if ! gregor_start; then
  fail broker-start "could not start the broker ($GREGOR_BIN)" "${GREGOR_DATA:-}.log"
  finish
fi
echo "broker on $GREGOR_BOOTSTRAP, log $GREGOR_DATA.log, step logs in $LOGS"
CLIENTS_LABEL= # set by client_tests: the run whose topics the crash group re-reads
for group in ${JAVA_COMPAT_GROUPS:-clients console crash dedupe groups admin txn streams streams-protocol failover security control share junit schema-registry}; do
  case "$group" in
    clients) client_tests ;;
    console) console_tests ;;
    crash) crash_test ;;
    dedupe) dedupe_test ;;
    groups) groups_tests ;;
    consumer-groups) groups_broker && consumer_groups_tool_tests ;;
    admin) admin_tests ;;
    quotas) quota_tests ;;
    txn) txn_tests ;;
    streams) streams_tests ;;
    streams-protocol) streams_protocol_tests ;;
    failover) failover_tests ;;
    security) security_tests; security_acl_tests ;;
    security-acls) security_acl_tests ;;
    security-authn) security_tests ;;
    control) control_tests ;;
    junit) junit_tests ;;
    share) share_tests ;;
    schema-registry) schema_registry_tests ;;
    *) fail "$group" "unknown group (JAVA_COMPAT_GROUPS)" ;;
  esac
done
finish
