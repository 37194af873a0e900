#!/usr/bin/env bash
# Development aid, not run by CI: runs the authorization matrix of tests/acls.rs against Apache
# Kafka, so its expected codes are Kafka's. Starts a single-node Kafka (../compat/ref-kafka.sh)
# with the matrix broker's settings (a SASL_PLAINTEXT listener with PLAIN users admin, alice and
# bob; the StandardAuthorizer; super.users admin, and ANONYMOUS for Kafka's own requests on its
# PLAINTEXT listener), then the matrix with ACLS_EXTERNAL_SASL_PLAINTEXT pointing at it. Each row
# prints its three codes; a differing row prints MISMATCH and the test fails listing them all.
# Kafka's log is left in /tmp/calibrate-acls-kafka.log.
#
#   KAFKA_REFERENCE_LIBS=/work/kafka44/libs protocol-tests/calibrate-acls.sh

set -uo pipefail
: "${KAFKA_REFERENCE_LIBS:?a folder of Kafka 4.x jars}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../compat/lib.sh
. "$HERE/../compat/lib.sh"
# shellcheck source=../compat/ref-kafka.sh
. "$HERE/../compat/ref-kafka.sh"

sasl_port="$(gregor_free_port)"
users='org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret" user_bob="bob-secret";'
KAFKA_REF_LISTENERS="SASL_PLAINTEXT://127.0.0.1:$sasl_port"
# Kafka's log survives the run, for the rows that differ.
trap 'cp "$GREGOR_DATA.log" /tmp/calibrate-acls-kafka.log 2>/dev/null; gregor_cleanup' EXIT
if ! gregor_start \
  --override "sasl.enabled.mechanisms=PLAIN" \
  --override "listener.name.sasl_plaintext.plain.sasl.jaas.config=$users" \
  --override "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer" \
  --override "super.users=User:admin;User:ANONYMOUS"; then
  echo "Kafka did not start; log: $GREGOR_DATA.log" >&2
  exit 1
fi
cd "$HERE/.." || exit 1
ACLS_EXTERNAL_SASL_PLAINTEXT="127.0.0.1:$sasl_port" \
  cargo test -p protocol-tests --test acls authorization_matrix -- --nocapture
