"""kafka-python client factories and produce/consume/check helpers used by the tests."""

import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

import compat_support

CREATE_TIME, LOG_APPEND_TIME = 0, 1


def make_record(i, base_ts):
    # kafka-python's send() rejects header values that are None.
    return compat_support.make_record(i, base_ts, null_header_values=False)


# Every client made here, so that close_all() can stop their background threads after a test.
_clients = []


def _track(client):
    _clients.append(client)
    return client


def close_all():
    while _clients:
        try:
            _clients.pop().close()
        except Exception:  # already closed, or its broker is gone
            pass


def producer(broker, **config):
    config = {"linger_ms": 5, "request_timeout_ms": 15000, "delivery_timeout_ms": 30000, **config}
    return _track(KafkaProducer(bootstrap_servers=broker.bootstrap, **config))


def consumer(broker, **config):
    # group_id=None: no coordinator, offsets are never committed; partitions are assign()ed.
    config = {"group_id": None, "enable_auto_commit": False, "auto_offset_reset": "none",
              "request_timeout_ms": 15000, **config}
    return _track(KafkaConsumer(bootstrap_servers=broker.bootstrap, **config))


def admin(broker):
    return _track(KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=15000))


def create_topic(broker, name, **spec):
    """Creates one topic from num_partitions, replication_factor, configs; raises on error."""
    a = admin(broker)
    try:
        a.create_topics({name: spec})
    finally:
        a.close()


def produce_all(p, topic, records, partition=0):
    """Sends (key, value, headers, timestamp) tuples and flushes.

    Returns [(partition, offset)] in send order; raises the first send error.
    """
    futures = [p.send(topic, value=value, key=key, headers=headers, partition=partition,
                      timestamp_ms=ts)
               for key, value, headers, ts in records]
    p.flush(timeout=60)
    return [(m.partition, m.offset) for m in (f.get(timeout=1) for f in futures)]


def consume_partition(broker, topic, partition, count, start=None, timeout=30, **config):
    """Reads `count` records of one partition from `start` (default: the beginning, via
    ListOffsets) and checks that no more follow."""
    c = consumer(broker, **config)
    try:
        tp = TopicPartition(topic, partition)
        c.assign([tp])
        if start is None:
            c.seek_to_beginning(tp)
        else:
            c.seek(tp, start)
        records = []
        deadline = time.monotonic() + timeout
        while len(records) < count and time.monotonic() < deadline:
            for batch in c.poll(timeout_ms=500, max_records=count - len(records)).values():
                records.extend(batch)
        assert len(records) == count, f"got {len(records)} of {count} records before timeout"
        end = c.end_offsets([tp], timeout_ms=10000)[tp]
        assert end == records[-1].offset + 1, f"end offset {end} after the last record"
        return records
    finally:
        c.close()


def check_records(records, base_ts, first_index=0, first_offset=0):
    """Asserts that records are make_record(first_index...) at dense offsets from first_offset."""
    for n, r in enumerate(records):
        key, value, headers, ts = make_record(first_index + n, base_ts)
        where = f"record {n} (offset {r.offset})"
        assert r.offset == first_offset + n, f"{where}: offsets not dense from {first_offset}"
        assert r.key == key, f"{where}: key"
        assert r.value == value, f"{where}: value"
        assert list(r.headers) == headers, f"{where}: headers"
        assert (r.timestamp_type, r.timestamp) == (CREATE_TIME, ts), f"{where}: timestamp"
