"""A group member run as a child process by test_groups.py, so that a test can SIGKILL it:

    python group_member.py BOOTSTRAP GROUP TOPIC SESSION_TIMEOUT_MS

Subscribes to TOPIC in GROUP and polls until killed; prints {"assigned": [partitions]} on
stdout after every assignment change.
"""

import json
import sys

from confluent_kafka import Consumer

bootstrap, group, topic, session_timeout_ms = sys.argv[1:5]
owned = set()


def report():
    print(json.dumps({"assigned": sorted(owned)}), flush=True)


def on_assign(consumer, partitions):
    owned.update(tp.partition for tp in partitions)
    report()


def on_revoke(consumer, partitions):
    owned.difference_update(tp.partition for tp in partitions)
    report()


consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": "child",
                     "auto.offset.reset": "earliest", "enable.auto.commit": False,
                     "session.timeout.ms": int(session_timeout_ms), "heartbeat.interval.ms": 500})
consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
while True:
    consumer.poll(0.1)
