#!/usr/bin/env bash
# Stand-in for the gregor binary that runs Apache Kafka 4.1.0 (single KRaft node) instead, so the
# suite itself can be checked against the reference implementation:
#
#   KAFKA_LIBS=/path/to/jars GREGOR_BIN="$PWD/compat/kcat/reference-kafka.sh" compat/kcat/run.sh
#
# KAFKA_LIBS holds the kafka_2.13:4.1.0 and kafka-tools:4.1.0 jars with their dependencies, e.g.
# `mvn dependency:copy-dependencies` on a pom listing those two (and slf4j-simple). Not used by CI.
# Accepts gregor's CLI: --listen HOST:PORT --data-dir DIR [--override key=value ...].
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh" # kafka_cluster_id

listen="" data="" overrides=()
while [ $# -gt 0 ]; do
  case $1 in
  --listen) listen=$2; shift 2 ;;
  --data-dir) data=$2; shift 2 ;;
  --override) overrides+=("$2"); shift 2 ;;
  *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
: "${KAFKA_LIBS:?set KAFKA_LIBS to the directory holding the Kafka 4.1.0 jars}"
host=${listen%:*}

# The controller endpoint is part of the formatted metadata, so keep its port across restarts.
if [ ! -f "$data/controller.port" ]; then
  python3 "$(dirname "${BASH_SOURCE[0]}")/../ports.py" >"$data/controller.port"
fi
cport=$(cat "$data/controller.port")

# A `listeners` override (phase F) replaces the PLAINTEXT-only one; the controller's is added.
listeners="PLAINTEXT://$listen"
for o in "${overrides[@]}"; do
  case $o in listeners=*) listeners=${o#listeners=} ;; esac
done

{
  echo "process.roles=broker,controller"
  echo "node.id=1"
  echo "controller.quorum.bootstrap.servers=$host:$cport"
  echo "listeners=$listeners,CONTROLLER://$host:$cport"
  echo "advertised.listeners=$listeners"
  echo "controller.listener.names=CONTROLLER"
  echo "inter.broker.listener.name=PLAINTEXT"
  echo "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL"
  echo "log.dirs=$data/logs"
  echo "offsets.topic.replication.factor=1"
  echo "transaction.state.log.replication.factor=1"
  echo "transaction.state.log.min.isr=1"
  echo "group.initial.rebalance.delay.ms=0"
  printf '%s\n' "${overrides[@]}" | grep -v '^listeners=' || true
} >"$data/server.properties"

if [ ! -f "$data/logs/meta.properties" ]; then
  cluster_id=$(kafka_cluster_id)
  java -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format -t "$cluster_id" \
    -c "$data/server.properties" --standalone >"$data/format.log" 2>&1
fi
exec java -Xmx512m -cp "$KAFKA_LIBS/*" kafka.Kafka "$data/server.properties"
