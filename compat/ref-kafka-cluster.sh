#!/usr/bin/env bash
# Development aid, not used by CI: a three-node Apache Kafka cluster (KRaft, each node a combined
# broker and controller, the three of them the controller quorum) on 127.0.0.1, to calibrate the
# multi-broker expectations of the failover tests against the real thing, as ref-kafka.sh does for
# one broker. Node N (1-3) listens for clients on BASE+N-1 and for the quorum on a port of its own.
#
#   ref-kafka-cluster.sh start DIR [BASE]   format and start the three nodes; prints the bootstrap
#   ref-kafka-cluster.sh stop-node DIR N    stop node N (SIGTERM, or KAFKA_CLUSTER_SIGNAL=KILL for a
#                                           crash), and wait until the others no longer count it
#   ref-kafka-cluster.sh start-node DIR N   start node N again, and wait until it is back in every ISR
#   ref-kafka-cluster.sh stop DIR           stop every node (DIR is kept; remove it yourself)
#
# KAFKA_REFERENCE_LIBS=DIR is a folder of Kafka 4.x jars with the broker and the tools (e.g. the 4.4
# the project matches); KAFKA_REF_EXTRA adds server.properties lines to every node, and
# KAFKA_REF_EXTRA_DIR/nodeN.properties (if there) to node N after them, the last of a key winning
# (scripts/cluster-faults gives each node its own listeners and proxied voters this way), and
# KAFKA_REF_EXTRA_DIR/nodeN.env (if there; KEY=VALUE lines) to node N's environment (its
# libfaketime for the clock faults). The settings
# mirror `gregor --brokers 3` as compat/java's failover group starts it:
# default.replication.factor=3 and auto.leader.rebalance.enable=false (a restarted broker leads
# again only after a preferred election).
#
# Waits are on conditions, with a deadline: a stopped node counts as gone when no live node lists
# it in Metadata (Kafka lists unfenced brokers only); a started one is back when no partition is
# under-replicated.

set -uo pipefail

: "${KAFKA_REFERENCE_LIBS:?KAFKA_REFERENCE_LIBS must name a folder of Kafka 4.x jars}"
COMPAT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$COMPAT_ROOT/lib.sh" # gregor_free_port, gregor_free_ports
CP="$KAFKA_REFERENCE_LIBS/*"
LOG_OPT="-Dlog4j2.configurationFile=$COMPAT_ROOT/java/config/log4j2.properties"
DEADLINE_S="${KAFKA_CLUSTER_DEADLINE_S:-90}"

die() { echo "ref-kafka-cluster: $*" >&2; exit 1; }

port_open() {
  python3 -c "import socket; socket.create_connection(('127.0.0.1',$1),0.2).close()" 2>/dev/null
}

state() { cat "$DIR/$1"; }

bootstrap() {
  local base
  base="$(state base)"
  echo "127.0.0.1:$base,127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2))"
}

# The bootstrap without node N (a stopped node is no use to ask).
others() {
  local base n out=""
  base="$(state base)"
  for n in 1 2 3; do
    [ "$n" = "$1" ] && continue
    out="${out:+$out,}127.0.0.1:$((base + n - 1))"
  done
  echo "$out"
}

# Node N's extra environment (KAFKA_REF_EXTRA_DIR/nodeN.env), one KEY=VALUE a line.
node_env() {
  local f="${KAFKA_REF_EXTRA_DIR:-}/node$1.env"
  [ -n "${KAFKA_REF_EXTRA_DIR:-}" ] && [ -f "$f" ] && grep -v '^[[:space:]]*\(#\|$\)' "$f"
  return 0
}

# Starts node N's broker in the background, with its extra environment.
run_node() {
  local n="$1" envs
  mapfile -t envs < <(node_env "$n")
  env "${envs[@]}" java -Xmx512m "$LOG_OPT" -cp "$CP" kafka.Kafka "$DIR/node$n/server.properties" \
    >>"$DIR/node$n.log" 2>&1 &
  echo $! >"$DIR/node$n.pid"
}

launch() {
  local n="$1"
  run_node "$n"
  local port=$(( $(state base) + n - 1 )) i
  for i in $(seq 1 $((DEADLINE_S * 10))); do
    port_open "$port" && return 0
    kill -0 "$(state node$n.pid)" 2>/dev/null || { tail -n 30 "$DIR/node$n.log" >&2; die "node $n exited"; }
    sleep 0.1
  done
  die "node $n did not open port $port"
}

# Runs a Kafka tool quietly.
tool() { timeout 60 java "$LOG_OPT" -cp "$CP" "$@" 2>>"$DIR/tools.log"; }

# Node ids a live node lists in Metadata (kafka-broker-api-versions prints one line a broker).
listed_brokers() {
  tool org.apache.kafka.tools.BrokerApiVersionsCommand --bootstrap-server "$1" \
    | sed -n 's/.*(id: \([0-9]*\) rack.*/\1/p' | sort -u | tr '\n' ' '
}

wait_for() {
  local what="$1" i
  shift
  for i in $(seq 1 "$DEADLINE_S"); do
    "$@" && return 0
    sleep 1
  done
  die "timed out waiting for $what"
}

gone_from_metadata() { ! listed_brokers "$(others "$1")" | grep -qw "$1"; }

none_under_replicated() {
  local out
  out="$(tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$(bootstrap)" --describe --under-replicated-partitions)" || return 1
  [ -z "$out" ]
}

cmd_start() {
  mkdir -p "$DIR" || die "cannot make $DIR"
  local base="${1:-$(gregor_free_ports 3)}" n voters="" cluster_id
  echo "$base" >"$DIR/base"
  for n in 1 2 3; do
    gregor_free_port >"$DIR/controller$n"
    voters="${voters:+$voters,}$n@127.0.0.1:$(state controller$n)"
  done
  cluster_id="$(kafka_cluster_id)"
  for n in 1 2 3; do
    mkdir -p "$DIR/node$n"
    cat >"$DIR/node$n/server.properties" <<PROPS
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$((base + n - 1)),CONTROLLER://127.0.0.1:$(state controller$n)
advertised.listeners=PLAINTEXT://127.0.0.1:$((base + n - 1))
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DIR/node$n/logs
num.partitions=1
default.replication.factor=3
auto.leader.rebalance.enable=false
group.initial.rebalance.delay.ms=0
${KAFKA_REF_EXTRA:-}
PROPS
    if [ -n "${KAFKA_REF_EXTRA_DIR:-}" ] && [ -f "$KAFKA_REF_EXTRA_DIR/node$n.properties" ]; then
      cat "$KAFKA_REF_EXTRA_DIR/node$n.properties" >>"$DIR/node$n/server.properties"
    fi
    java "$LOG_OPT" -cp "$CP" kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$DIR/node$n/server.properties" >>"$DIR/node$n.log" 2>&1 || die "formatting node $n failed (see $DIR/node$n.log)"
  done
  # The three start together: a controller quorum of three needs two to elect a leader.
  for n in 1 2 3; do
    run_node "$n"
  done
  for n in 1 2 3; do
    wait_for "node $n to listen" port_open $((base + n - 1))
  done
  wait_for "three brokers in Metadata" all_listed
  bootstrap
}

all_listed() { [ "$(listed_brokers "$(bootstrap)")" = "1 2 3 " ]; }

cmd_stop_node() {
  local n="$1" pid
  pid="$(state node$n.pid)"
  kill -s "${KAFKA_CLUSTER_SIGNAL:-TERM}" "$pid" 2>/dev/null
  # A controlled shutdown (SIGTERM) moves the node's leaderships before it exits.
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  wait_for "node $n to leave the cluster" gone_from_metadata "$n"
}

cmd_start_node() {
  local n="$1"
  launch "$n"
  wait_for "node $n in Metadata" all_listed
  wait_for "node $n back in every ISR" none_under_replicated
}

cmd_stop() {
  local n pid
  for n in 1 2 3; do
    [ -f "$DIR/node$n.pid" ] || continue
    pid="$(state node$n.pid)"
    kill -9 "$pid" 2>/dev/null
  done
  for n in 1 2 3; do
    [ -f "$DIR/node$n.pid" ] || continue
    pid="$(state node$n.pid)"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  done
}

[ $# -ge 2 ] || die "usage: $0 start DIR [BASE] | stop-node DIR N | start-node DIR N | stop DIR"
action="$1"
DIR="$2"
shift 2
case "$action" in
  start) cmd_start "$@" ;;
  stop-node) cmd_stop_node "${1:?node id}" ;;
  start-node) cmd_start_node "${1:?node id}" ;;
  stop) cmd_stop ;;
  *) die "unknown action $action" ;;
esac
