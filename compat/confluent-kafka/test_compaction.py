"""Log compaction as a confluent-kafka user sees it: a topic created with cleanup.policy=compact
keeps only the newest value of each key, at its original offset, and a tombstone of a key stays
readable (delete.retention.ms has not passed)."""

import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def test_compacted_topic_keeps_the_newest_value_per_key(make_broker, topic):
    # The cleaner looks every 200 ms; segments roll every 100 ms; any dirty share is enough.
    broker = make_broker({"log.cleaner.backoff.ms": "200"})
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    config = {"cleanup.policy": "compact", "segment.ms": "100", "min.cleanable.dirty.ratio": "0.01"}
    admin.create_topics([NewTopic(topic, 1, config=config)])[topic].result(timeout=20)

    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0,
                         "compression.type": "zstd", "enable.idempotence": True})
    rounds = [[("a", "a1"), ("b", "b1"), ("c", "c1")],
              [("a", "a2"), ("c", None)],
              [("b", "b2"), ("d", "d1")],
              [("e", "e1")]]  # the last round stays in the active segment
    offsets = {}
    for writes in rounds:
        for key, value in writes:
            producer.produce(topic, key=key, value=value, partition=0,
                             on_delivery=lambda err, msg: offsets.__setitem__(
                                 (msg.key(), msg.value()), msg.offset()))
        assert producer.flush(20) == 0
        time.sleep(0.3)
    expected = [(offsets[(k.encode(), v.encode() if v else None)], k, v)
                for k, v in [("a", "a2"), ("c", None), ("b", "b2"), ("d", "d1"), ("e", "e1")]]

    deadline = time.time() + 15
    while True:
        got = read_all(broker, topic)
        if got == expected or time.time() > deadline:
            break
        time.sleep(0.5)
    assert got == expected, f"not compacted within 15 s: {got}"


def read_all(broker, topic):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "compaction-reader",
                  "enable.auto.commit": False, "enable.partition.eof": True})
    c.assign([TopicPartition(topic, 0, 0)])
    out = []
    try:
        while True:
            msg = c.poll(5)
            assert msg is not None, "no end of partition within 5 s"
            if msg.error():
                break  # end of partition
            value = msg.value().decode() if msg.value() is not None else None
            out.append((msg.offset(), msg.key().decode(), value))
    finally:
        c.close()
    return out
