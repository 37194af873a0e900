"""aiokafka (Python asyncio) against the broker: produce with each codec, keys, headers and
timestamps read back; an idempotent producer; a two-member group that splits the partitions,
commits, and resumes from its commits; the admin client's topic calls with their errors; and
transactions (commit, abort, read_committed, offsets sent in a transaction).

Each test runs its coroutine with asyncio.run; waits are on conditions with deadlines. The same
tests pass on Apache Kafka 4.4 (KAFKA_REFERENCE_LIBS=..., see compat_support).
"""

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

from compat_support import base_timestamp_ms


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 90))


async def admin_client(broker):
    a = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000)
    await a.start()
    return a


async def create(broker, topic, partitions=1):
    a = await admin_client(broker)
    try:
        await a.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await a.close()


async def read(broker, topic, count, **config):
    """`count` records of `topic` from the beginning (no group), then a short poll for extras."""
    c = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                         enable_auto_commit=False, **config)
    await c.start()
    try:
        partitions = c.partitions_for_topic(topic) or set()
        deadline = time.monotonic() + 30
        while not partitions and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            await c._client.force_metadata_update()
            partitions = c.partitions_for_topic(topic) or set()
        c.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        got = []
        while len(got) < count and time.monotonic() < deadline:
            batches = await c.getmany(timeout_ms=500)
            for records in batches.values():
                got.extend(records)
        extra = await c.getmany(timeout_ms=300)
        got.extend(r for records in extra.values() for r in records)
        return got
    finally:
        await c.stop()


@pytest.mark.parametrize("codec", [None, "gzip", "snappy", "lz4", "zstd"])
def test_each_codec_round_trips_keys_values_headers_and_timestamps(broker, topic, codec):
    async def go():
        await create(broker, topic)
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, compression_type=codec,
                             linger_ms=20)
        await p.start()
        base = base_timestamp_ms()
        sent = [(f"k{i}".encode(), f"value {i} ".encode() * 20, [("h", f"{i}".encode())], base + i)
                for i in range(30)]
        try:
            futures = [await p.send(topic, value=v, key=k, headers=h, timestamp_ms=ts)
                       for k, v, h, ts in sent]
            offsets = [(await f).offset for f in futures]
        finally:
            await p.stop()
        assert offsets == list(range(30))
        got = await read(broker, topic, 30)
        assert [(r.key, r.value, list(r.headers), r.timestamp) for r in got] == sent
        assert [r.offset for r in got] == list(range(30))
    run(go())


def test_idempotent_producer_writes_each_record_once(broker, topic):
    async def go():
        await create(broker, topic, partitions=2)
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True,
                             acks="all", linger_ms=5)
        await p.start()
        try:
            for i in range(50):
                await p.send(topic, value=str(i).encode(), partition=i % 2)
            await p.flush()
        finally:
            await p.stop()
        got = await read(broker, topic, 50)
        assert sorted(int(r.value) for r in got) == list(range(50))
        for part in (0, 1):
            assert [r.offset for r in got if r.partition == part] == list(range(25))
    run(go())


def test_a_two_member_group_splits_commits_and_resumes(broker, topic):
    group = f"{topic}-group"

    async def member():
        c = AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             session_timeout_ms=10000, heartbeat_interval_ms=500)
        await c.start()
        return c

    async def go():
        await create(broker, topic, partitions=4)
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await p.start()
        try:
            for i in range(40):
                await p.send_and_wait(topic, value=str(i).encode(), partition=i % 4)
        finally:
            await p.stop()
        a, b = await member(), await member()
        try:
            deadline = time.monotonic() + 60
            seen = {}
            # Both members poll until the group has settled on a 2/2 split and read everything.
            while time.monotonic() < deadline:
                for c in (a, b):
                    for tp, records in (await c.getmany(timeout_ms=200)).items():
                        for r in records:
                            seen[(tp.partition, r.offset)] = r.value
                split = (len(a.assignment()), len(b.assignment()))
                if split == (2, 2) and len(seen) == 40:
                    break
            assert (len(a.assignment()), len(b.assignment())) == (2, 2)
            assert not a.assignment() & b.assignment()
            assert sorted(int(v) for v in seen.values()) == list(range(40))
            # Commit all but the last 2 records of each partition.
            for c in (a, b):
                await c.commit({tp: 8 for tp in c.assignment()})
        finally:
            await a.stop()
            await b.stop()
        # A new member of the group resumes at the commits.
        c = await member()
        try:
            resumed = []
            deadline = time.monotonic() + 60
            while len(resumed) < 8 and time.monotonic() < deadline:
                for records in (await c.getmany(timeout_ms=300)).values():
                    resumed.extend(records)
            assert sorted((r.partition, r.offset) for r in resumed) == \
                [(p, o) for p in range(4) for o in (8, 9)]
            for p in range(4):
                assert await c.committed(TopicPartition(topic, p)) == 8
        finally:
            await c.stop()
    run(go())


def test_admin_creates_describes_and_deletes_topics(broker, topic):
    async def go():
        a = await admin_client(broker)
        try:
            created = await a.create_topics(
                [NewTopic(topic, 3, 1, topic_configs={"cleanup.policy": "compact"})])
            assert [(t[0], t[1]) for t in created.topic_errors] == [(topic, 0)]
            again = await a.create_topics([NewTopic(topic, 3, 1)])
            assert [(t[0], t[1]) for t in again.topic_errors] == \
                [(topic, TopicAlreadyExistsError.errno)]
            assert topic in await a.list_topics()
            [described] = await a.describe_topics([topic])
            assert described["error_code"] == 0
            assert sorted(p["partition"] for p in described["partitions"]) == [0, 1, 2]
            [configs] = await a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            entries = {c[0]: c[1] for r in configs.resources for c in r[4]}
            assert entries["cleanup.policy"] == "compact"
            await a.delete_topics([topic])
            deadline = time.monotonic() + 30
            while topic in await a.list_topics() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert topic not in await a.list_topics()
            result = await a.delete_topics([topic])
            assert [(t[0], t[1]) for t in result.topic_error_codes] == \
                [(topic, UnknownTopicOrPartitionError.errno)]
        finally:
            await a.close()
    run(go())


def test_transactions_commit_abort_and_read_committed(broker, topic):
    async def go():
        await create(broker, topic)
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id=f"{topic}-tx")
        await p.start()
        try:
            async with p.transaction():
                for i in range(3):
                    await p.send(topic, value=f"committed-{i}".encode())
            await p.begin_transaction()
            await p.send(topic, value=b"aborted")
            await p.abort_transaction()
            async with p.transaction():
                await p.send(topic, value=b"committed-3")
        finally:
            await p.stop()
        committed = await read(broker, topic, 4, isolation_level="read_committed")
        assert [r.value for r in committed] == [f"committed-{i}".encode() for i in range(4)]
        uncommitted = await read(broker, topic, 5)
        assert b"aborted" in [r.value for r in uncommitted]
    run(go())


def test_offsets_sent_in_a_transaction_commit_with_it(broker, topic):
    group = f"{topic}-group"

    async def go():
        await create(broker, topic)
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id=f"{topic}-tx")
        await p.start()
        tp = TopicPartition(topic, 0)
        try:
            await p.begin_transaction()
            await p.send(topic, value=b"x")
            await p.send_offsets_to_transaction({tp: 5}, group)
            await p.abort_transaction()
            async with p.transaction():
                await p.send(topic, value=b"y")
                await p.send_offsets_to_transaction({tp: 7}, group)
        finally:
            await p.stop()
        c = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group,
                             enable_auto_commit=False)
        await c.start()
        try:
            assert await c.committed(tp) == 7
        finally:
            await c.stop()
    run(go())
