"""The web console's group view for a KIP-848 group (group.protocol=consumer), which the browser
suite (compat/console, kafkajs) cannot make: librdkafka's consumer joins through
ConsumerGroupHeartbeat, and the console's group page must show it with its member, the partitions
the broker assigned, and its committed offsets and lag. The console is gregor's own: gregor only.
"""

import os
import time
import urllib.request
from html.parser import HTMLParser

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from clients import create_topic, produce_all

pytestmark = pytest.mark.skipif(bool(os.environ.get("KAFKA_REFERENCE_LIBS")),
                                reason="the web console is gregor's own")


class Tables(HTMLParser):
    """Every <table id=..>'s body rows as lists of cell texts."""

    def __init__(self):
        super().__init__()
        self.tables, self.current, self.row, self.cell = {}, None, None, None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.current = dict(attrs).get("id")
            self.tables[self.current] = []
        elif tag == "tr" and self.current is not None:
            self.row = []
        elif tag == "td" and self.row is not None:
            self.cell = ""

    def handle_endtag(self, tag):
        if tag == "td" and self.cell is not None:
            self.row.append(self.cell.strip())
            self.cell = None
        elif tag == "tr" and self.row:
            self.tables[self.current].append(self.row)
            self.row = None
        elif tag == "table":
            self.current = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def tables(broker, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{broker.admin_port}{path}", timeout=30) as r:
        assert r.headers["Content-Type"].startswith("text/html")
        parser = Tables()
        parser.feed(r.read().decode())
        return parser.tables


def test_console_shows_a_kip848_group(make_broker, topic):
    group = f"{topic}-group"
    b = make_broker(admin=True)
    create_topic(b, topic, num_partitions=2)
    p = Producer({"bootstrap.servers": b.bootstrap})
    assert not produce_all(p, topic, [(b"k", b"v", None, 0)] * 3, partition=0).errors
    assert not produce_all(p, topic, [(b"k", b"v", None, 0)] * 2, partition=1).errors
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group,
                  "group.protocol": "consumer", "client.id": "console-kip848",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        c.subscribe([topic])
        read, deadline = 0, time.monotonic() + 60
        while read < 5 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                read += 1
        assert read == 5, f"read {read} of 5 records"
        # Committed: all of partition 0, one of partition 1's two (lag 1).
        c.commit(offsets=[TopicPartition(topic, 0, 3), TopicPartition(topic, 1, 1)],
                 asynchronous=False)

        listed = {g[0]: g for g in tables(b, "/ui/groups")["groups"]}
        assert listed[group][1:3] == ["consumer", "Stable"]
        assert listed[group][4] == "1"

        page = tables(b, f"/ui/groups/{group}")
        [member] = page["members"]
        assert member[2] == "console-kip848"
        assert sorted(member[4].split(", ")) == [f"{topic}-0", f"{topic}-1"]
        assert page["offsets"] == [[topic, "0", "3", "3", "0"], [topic, "1", "1", "2", "1"]]
    finally:
        c.close()
