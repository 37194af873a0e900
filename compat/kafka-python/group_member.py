"""A group member run as a child process by test_groups.py, so that a test can SIGKILL it:

    python group_member.py BOOTSTRAP GROUP TOPIC SESSION_TIMEOUT_MS

Subscribes to TOPIC in GROUP and polls until killed; prints {"assigned": [partitions]} on
stdout after every assignment change.
"""

import json
import sys

from kafka import KafkaConsumer
from kafka.consumer.subscription_state import ConsumerRebalanceListener

bootstrap, group, topic, session_timeout_ms = sys.argv[1:5]
owned = set()


def report():
    print(json.dumps({"assigned": sorted(owned)}), flush=True)


class Listener(ConsumerRebalanceListener):
    def on_partitions_revoked(self, revoked):
        owned.difference_update(tp.partition for tp in revoked)
        report()

    def on_partitions_assigned(self, assigned):
        owned.update(tp.partition for tp in assigned)
        report()

    def on_partitions_lost(self, lost):
        self.on_partitions_revoked(lost)


consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, client_id="child",
                         auto_offset_reset="earliest", enable_auto_commit=False,
                         session_timeout_ms=int(session_timeout_ms), heartbeat_interval_ms=500)
consumer.subscribe([topic], listener=Listener())
consumer.partitions_for_topic(topic)  # after subscribe(): see group_clients.subscribe
while True:
    consumer.poll(timeout_ms=5000)  # see group_clients.Member._run (the test kills this process)
