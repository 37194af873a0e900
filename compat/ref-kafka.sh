#!/usr/bin/env bash
# Development aid, not used by CI: replaces lib.sh's gregor_* functions with ones that run a
# single-node Apache Kafka (KRaft, broker+controller in one JVM), so a suite can be checked
# against the real thing: every case must pass against Kafka; a case that fails there is a broken
# test, not a finding. Source it after lib.sh, e.g. in a suite's run.sh:
#
#   [ -n "${KAFKA_REFERENCE_LIBS:-}" ] && . "$COMPAT_ROOT/ref-kafka.sh"
#
# KAFKA_REFERENCE_LIBS=DIR is a folder of Kafka 4.x broker jars (e.g. the 4.4 the project
# matches; the Python suites take the same variable). A suite may instead set KAFKA_REF_CP and
# KAFKA_REF_LOG (classpath and logging option) and KAFKA_REF_EXTRA (more server.properties lines)
# before sourcing, as compat/java does for its Kafka 3.9 tools. KAFKA_REF_LISTENERS, when set at
# gregor_start, adds listeners (e.g. SASL_SSL://127.0.0.1:PORT) after the PLAINTEXT one, each
# advertised as it listens, their protocols mapped by name.

KAFKA_REF_CP="${KAFKA_REF_CP:-$KAFKA_REFERENCE_LIBS/*}"
KAFKA_REF_LOG="${KAFKA_REF_LOG:--Dlog4j2.configurationFile=$COMPAT_ROOT/java/config/log4j2.properties}"

kafka_launch() {
  # KAFKA_REF_JAVA_OPTS: JVM options of the broker (e.g. a -D system property), space-separated.
  # shellcheck disable=SC2086
  java -Xmx768m ${KAFKA_REF_JAVA_OPTS:-} "$KAFKA_REF_LOG" -cp "$KAFKA_REF_CP" kafka.Kafka "$GREGOR_DATA/server.properties" \
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
  local controller_port
  controller_port="$(gregor_free_port)"
  GREGOR_DATA="$(mktemp -d /tmp/kafka-compat.XXXXXX)"
  GREGOR_BOOTSTRAP="127.0.0.1:$GREGOR_PORT"
  export GREGOR_PORT GREGOR_DATA GREGOR_BOOTSTRAP
  cat >"$GREGOR_DATA/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$GREGOR_PORT${KAFKA_REF_LISTENERS:+,$KAFKA_REF_LISTENERS},CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$GREGOR_PORT${KAFKA_REF_LISTENERS:+,$KAFKA_REF_LISTENERS}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
log.dirs=$GREGOR_DATA/logs
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
${KAFKA_REF_EXTRA:-}
PROPS
  # gregor's --override k=v uses Kafka's names; later lines win in a properties file.
  while [ $# -gt 0 ]; do
    [ "$1" = --override ] && [ $# -ge 2 ] && { echo "$2" >>"$GREGOR_DATA/server.properties"; shift; }
    shift
  done
  local cluster_id
  cluster_id="$(kafka_cluster_id)"
  java "$KAFKA_REF_LOG" -cp "$KAFKA_REF_CP" kafka.tools.StorageTool format \
    -t "$cluster_id" -c "$GREGOR_DATA/server.properties" >>"$GREGOR_DATA.log" 2>&1 || return 1
  kafka_launch
}

gregor_restart() { kafka_launch; }
