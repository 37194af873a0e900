"""confluent-kafka client factories and produce/consume/check helpers used by the tests."""

import time

from confluent_kafka import (OFFSET_BEGINNING, TIMESTAMP_CREATE_TIME, Consumer, KafkaError,
                             Producer, TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic

from compat_support import make_record


def producer(broker, **config):
    return Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 20000,
                     "linger.ms": 5, **config})


def consumer(broker, **config):
    # librdkafka insists on a group.id, but assign() without commits never uses the coordinator.
    return Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "gregor-compat-unused",
                     "enable.auto.commit": False, "enable.auto.offset.store": False,
                     "auto.offset.reset": "error", "enable.partition.eof": True,
                     "check.crcs": True, **config})


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def create_topic(broker, name, **kwargs):
    """Creates one topic with NewTopic(name, **kwargs); raises KafkaException on error."""
    client = admin(broker)  # must outlive the future
    client.create_topics([NewTopic(name, **kwargs)], operation_timeout=10)[name].result(timeout=20)


class DeliveryLog:
    """on_delivery callback that records (partition, offset) or the error per message."""

    def __init__(self):
        self.delivered = []
        self.errors = []

    def __call__(self, err, msg):
        if err is not None:
            self.errors.append(err)
        else:
            self.delivered.append((msg.partition(), msg.offset()))


def produce_all(p, topic, records, partition=0, **kwargs):
    """Produces (key, value, headers, timestamp) tuples and flushes; returns the DeliveryLog."""
    log = DeliveryLog()
    for key, value, headers, ts in records:
        while True:
            try:
                p.produce(topic, value=value, key=key, headers=headers, timestamp=ts,
                          partition=partition, on_delivery=log, **kwargs)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    remaining = p.flush(60)
    assert remaining == 0, f"{remaining} messages still undelivered after flush"
    return log


def consume_partition(broker, topic, partition, count, start=OFFSET_BEGINNING, timeout=30,
                      **config):
    """Reads `count` messages of one partition from `start` and checks that no more follow."""
    c = consumer(broker, **config)
    try:
        c.assign([TopicPartition(topic, partition, start)])
        messages = []
        deadline = time.monotonic() + timeout
        while len(messages) < count and time.monotonic() < deadline:
            for m in c.consume(num_messages=min(1000, count - len(messages)), timeout=0.5):
                if m.error() is None:
                    messages.append(m)
                elif m.error().code() != KafkaError._PARTITION_EOF:
                    raise AssertionError(f"consume error: {m.error()}")
        assert len(messages) == count, f"got {len(messages)} of {count} messages before timeout"
        tp = TopicPartition(topic, partition)
        _, high = c.get_watermark_offsets(tp, timeout=10, cached=False)
        assert high == messages[-1].offset() + 1, f"high watermark {high} after the last message"
        return messages
    finally:
        c.close()


def check_messages(messages, base_ts, first_index=0, first_offset=0):
    """Asserts that messages are make_record(first_index...) at dense offsets from first_offset."""
    for n, m in enumerate(messages):
        key, value, headers, ts = make_record(first_index + n, base_ts)
        where = f"message {n} (offset {m.offset()})"
        assert m.offset() == first_offset + n, f"{where}: offsets not dense from {first_offset}"
        assert m.key() == key, f"{where}: key"
        assert m.value() == value, f"{where}: value"
        assert (m.headers() or []) == headers, f"{where}: headers"
        assert m.timestamp() == (TIMESTAMP_CREATE_TIME, ts), f"{where}: timestamp"
