"""Consumer groups, classic protocol: subscribe(), commits, rebalances, session expiry, static
membership, the cooperative-sticky assignor, offsets across broker restarts, and the group
operations of AdminClient.

`broker` here is group_support's broker with group.initial.rebalance.delay.ms=0.
"""

import signal
import time
from pathlib import Path

import pytest
from confluent_kafka import (OFFSET_INVALID, Consumer, ConsumerGroupState,
                             ConsumerGroupTopicPartitions, ConsumerGroupType, KafkaError,
                             KafkaException, TopicPartition)

from clients import create_topic
from compat_support import unique_topic
from group_clients import (Flow, Member, admin, assignments, describe, group_config,
                           produce_numbered)
from group_support import (FAST_GROUPS, MemberProcess, broker, check_consumed_once,  # noqa: F401
                           fast_group_broker, is_even_split, offsets_by_partition, wait_consumed,
                           wait_until)

HERE = Path(__file__).resolve().parent
# What Kafka without an authorizer allows on a group (4.x: group configs added the last two).
ALL_GROUP_OPERATIONS = {"READ", "DESCRIBE", "DELETE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS"}


@pytest.fixture
def group(request):
    return unique_topic("group-" + request.node.name.split("[")[0].replace("_", "-"))


def consume_count(c, count, timeout=30):
    """Polls a subscribed consumer until it returned `count` messages; returns their
    (partition, offset) pairs."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        for m in c.consume(num_messages=count - len(got), timeout=0.2):
            assert m.error() is None, f"consume error: {m.error()}"
            got.append((m.partition(), m.offset()))
    assert len(got) == count, f"consumed {len(got)} of {count} records before timeout"
    return got


def poll_nothing(c, seconds):
    """Asserts that the consumer returns no further messages for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        m = c.poll(0.1)
        assert m is None or m.error() is not None, \
            f"unexpected extra record: partition {m.partition()} offset {m.offset()}"


RETRIABLE = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
             KafkaError.COORDINATOR_NOT_AVAILABLE}


def committed(c, topic, partitions, timeout=20):
    """The group's committed offsets of `partitions` (OffsetFetch). Retries the errors that a
    coordinator gives while it starts up and loads the offsets (Kafka: NOT_COORDINATOR)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            tps = c.committed([TopicPartition(topic, p) for p in partitions], timeout=timeout)
            break
        except KafkaException as e:
            if e.args[0].code() not in RETRIABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert all(tp.error is None for tp in tps), tps
    return [tp.offset for tp in tps]


def listed_groups(client, **kwargs):
    """{group_id: ConsumerGroupListing} of list_consumer_groups(**kwargs)."""
    result = client.list_consumer_groups(request_timeout=20, **kwargs).result(timeout=30)
    return {g.group_id: g for g in result.valid}


def group_offsets(client, request):
    return client.list_consumer_group_offsets([request], request_timeout=20)[
        request.group_id].result(timeout=30)


def close_all(members):
    for m in members:
        m.close()


# One consumer: commits, then a new member of the group resumes exactly there.

@pytest.mark.parametrize("commit", ["sync", "auto"])
def test_commit_then_resume(broker, topic, group, commit):
    create_topic(broker, topic, num_partitions=4)
    produce_numbered(broker, topic, range(4), 50)
    auto = commit == "auto"
    c = Consumer(group_config(broker, group, **({"enable.auto.commit": True,
                                                 "auto.commit.interval.ms": 200} if auto else {})))
    assigned = []
    c.subscribe([topic], on_assign=lambda _, ps: assigned.append(sorted(tp.partition for tp in ps)))
    try:
        got = consume_count(c, 200)
        assert assigned == [[0, 1, 2, 3]], "the only member must get all partitions, once"
        assert offsets_by_partition(got) == {p: list(range(50)) for p in range(4)}
        if auto:
            def auto_committed():
                c.poll(0.1)
                return committed(c, topic, range(4)) == [50] * 4
            wait_until(auto_committed, 10, lambda: f"auto-commit of offset 50, have "
                                                   f"{committed(c, topic, range(4))}")
        else:
            result = c.commit(asynchronous=False)
            assert sorted((tp.partition, tp.offset, tp.error) for tp in result) == \
                [(p, 50, None) for p in range(4)]
            assert committed(c, topic, range(4)) == [50] * 4
    finally:
        c.close()

    produce_numbered(broker, topic, range(4), 25, start=50)
    c = Consumer(group_config(broker, group))
    try:
        assert committed(c, topic, range(4)) == [50] * 4
        c.subscribe([topic])
        got = consume_count(c, 100)
        assert offsets_by_partition(got) == {p: list(range(50, 75)) for p in range(4)}, \
            "the new member must resume at the committed offsets"
        poll_nothing(c, 0.5)
    finally:
        c.close()


# Several members.

def test_three_members_split_evenly_without_duplicates(broker, topic, group):
    create_topic(broker, topic, num_partitions=6)
    flow = Flow(broker, topic, 6)
    members = []
    try:
        for i in range(3):  # joining one after the other: three rebalances while records flow
            members.append(Member(broker, group, topic, f"m{i}"))
            time.sleep(0.3)
        wait_until(lambda: is_even_split(assignments(members), 6), 30,
                   lambda: f"a 2/2/2 split, have {members}")
        time.sleep(1)  # the settled group consumes while records keep coming
        assert is_even_split(assignments(members), 6), members
        produced = flow.stop()
        wait_consumed(members, len(produced))
        check_consumed_once([r for m in members for r in m.consumed], produced)
        assert [m.errors for m in members] == [[], [], []]
        assert all(len(m.assignment) == 2 for m in members), members
    finally:
        flow.close()
        close_all(members)


def test_closed_member_hands_over_partitions(broker, topic, group):
    """LeaveGroup on close rebalances at once; the session timeout (30 s) plays no part."""
    create_topic(broker, topic, num_partitions=6)
    produce_numbered(broker, topic, range(6), 20)
    members = [Member(broker, group, topic, f"m{i}", **{"session.timeout.ms": 30000})
               for i in range(3)]
    try:
        wait_until(lambda: is_even_split(assignments(members), 6), 30,
                   lambda: f"a 2/2/2 split, have {members}")
        wait_until(lambda: sum(len(m.consumed) for m in members) >= 120, 20, "the first records")
        leaving = members[0]
        started = time.monotonic()
        leaving.close()
        rest = members[1:]
        wait_until(lambda: is_even_split(assignments(rest), 6), 10,
                   lambda: f"the others to take over all 6 partitions, have {rest}")
        assert time.monotonic() - started < 10
        produced = produce_numbered(broker, topic, range(6), 20, start=20)
        wait_consumed(members, 240)
        everything = [(p, o) for p in range(6) for o in range(40)]
        check_consumed_once([r for m in members for r in m.consumed], everything)
        assert set(produced) <= set(everything)
    finally:
        close_all(members)


def test_killed_member_loses_partitions_after_session_timeout(broker, topic, group):
    session_timeout_s = 6  # group.min.session.timeout.ms
    create_topic(broker, topic, num_partitions=4)
    produce_numbered(broker, topic, range(4), 5)
    child = MemberProcess(HERE / "group_member.py", broker.bootstrap, group, topic,
                          session_timeout_s * 1000)
    survivor = None
    try:
        wait_until(lambda: child.assignment == {0, 1, 2, 3}, 30,
                   lambda: f"the child to own all partitions: {child.assignment}; "
                           f"stderr: {child.stderr_tail()}")
        survivor = Member(broker, group, topic, "survivor")
        wait_until(lambda: is_even_split({"child": child.assignment or set(),
                                          "survivor": survivor.assignment}, 4), 30,
                   lambda: f"a 2/2 split: child {child.assignment}, {survivor}")
        started = time.monotonic()
        child.kill()
        wait_until(lambda: survivor.assignment == {0, 1, 2, 3}, session_timeout_s + 10,
                   lambda: f"the survivor to get all partitions: {survivor}")
        elapsed = time.monotonic() - started
        assert elapsed < session_timeout_s + 5, f"took over after {elapsed:.1f}s"
        # Nothing was committed, so the survivor reads the dead member's partitions from the start.
        wait_until(lambda: {p for p, _ in survivor.consumed} == {0, 1, 2, 3}, 10,
                   lambda: f"records of all partitions: {offsets_by_partition(survivor.consumed)}")
        assert survivor.errors == []
    finally:
        child.close()
        if survivor:
            survivor.close()


# Committed offsets are durable.

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_committed_offsets_survive_restart(make_broker, topic, group, sig):
    broker = make_broker(FAST_GROUPS)
    create_topic(broker, topic, num_partitions=3)
    produce_numbered(broker, topic, range(3), 30)
    c = Consumer(group_config(broker, group))
    try:
        c.subscribe([topic])
        consume_count(c, 90)
        for offsets in ([(0, 10), (1, 20)], [(0, 17)]):  # the later commit of partition 0 wins
            result = c.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets],
                              asynchronous=False)
            assert all(tp.error is None for tp in result), result
        assert committed(c, topic, range(3)) == [17, 20, OFFSET_INVALID]
    finally:
        c.close()

    code = broker.stop(sig)
    if sig == signal.SIGTERM:
        assert broker.clean_exit(code), f"exit code {code} after SIGTERM"
    broker.start()

    c = Consumer(group_config(broker, group))
    try:
        assert committed(c, topic, range(3)) == [17, 20, OFFSET_INVALID]
        c.subscribe([topic])
        got = consume_count(c, 13 + 10 + 30)
        assert offsets_by_partition(got) == {0: list(range(17, 30)), 1: list(range(20, 30)),
                                             2: list(range(30))}
        poll_nothing(c, 0.5)
    finally:
        c.close()


KIP848 = {"group.protocol": "consumer", "session.timeout.ms": None, "heartbeat.interval.ms": None}


@pytest.mark.parametrize("protocol,sig", [("classic", signal.SIGTERM), ("classic", signal.SIGKILL),
                                          ("consumer", signal.SIGTERM), ("consumer", signal.SIGKILL)],
                         ids=["sigterm", "sigkill", "kip848-sigterm", "kip848-sigkill"])
def test_group_survives_broker_restart(make_broker, topic, group, protocol, sig):
    """Kafka keeps the group (generation or member epochs, members, assignment) in
    __consumer_offsets: after a restart within the session timeout the members heartbeat on
    without a rebalance."""
    broker = make_broker({**FAST_GROUPS, "group.consumer.heartbeat.interval.ms": 1000,
                          "group.consumer.min.heartbeat.interval.ms": 1000})
    create_topic(broker, topic, num_partitions=4)
    produce_numbered(broker, topic, range(4), 20)
    config = KIP848 if protocol == "consumer" else {"session.timeout.ms": 30000}
    members = [Member(broker, group, topic, f"m{i}", **config) for i in range(2)]
    try:
        wait_until(lambda: is_even_split(assignments(members), 4), 30,
                   lambda: f"a 2/2 split, have {members}")
        wait_until(lambda: sum(len(m.consumed) for m in members) >= 80, 20, "the first records")
        before = [(m.assign_calls, m.revoke_calls, m.assignment) for m in members]

        code = broker.stop(sig)
        if sig == signal.SIGTERM:
            assert broker.clean_exit(code), f"exit code {code} after SIGTERM"
        broker.start()

        produce_numbered(broker, topic, range(4), 20, start=20)
        wait_consumed(members, 160)
        time.sleep(1)
        assert [(m.assign_calls, m.revoke_calls, m.assignment) for m in members] == before, \
            "the members were rebalanced after the restart"
        check_consumed_once([r for m in members for r in m.consumed],
                            [(p, o) for p in range(4) for o in range(40)])
        assert [m.errors for m in members] == [[], []]
    finally:
        close_all(members)


def test_static_member_with_a_taken_instance_id_fences_the_old_one(broker, topic, group):
    """KIP-345: a second consumer joining with the same group.instance.id replaces the first,
    whose next request gets FENCED_INSTANCE_ID (fatal for librdkafka)."""
    create_topic(broker, topic, num_partitions=2)
    first = Member(broker, group, topic, "first", **{"group.instance.id": "twin"})
    second = None
    try:
        wait_until(lambda: first.assignment == {0, 1}, 30, lambda: f"{first}")
        second = Member(broker, group, topic, "second", **{"group.instance.id": "twin"})
        wait_until(lambda: second.assignment == {0, 1}, 15, lambda: f"{second}")
        wait_until(lambda: first.errors, 10, "an error for the fenced member")
        assert "fenced" in first.errors[0], first.errors
        assert second.errors == []
        [member] = describe(broker, group).members  # Kafka keeps the first one's client.id
        assert member.group_instance_id == "twin"
    finally:
        for m in filter(None, [second, first]):
            try:
                m.close()
            except KafkaException:
                pass  # the fenced consumer's close reports the fatal error again


# Static membership (KIP-345) and the cooperative-sticky assignor (KIP-429).

def test_static_member_restart_keeps_partitions_without_rebalance(broker, topic, group):
    create_topic(broker, topic, num_partitions=4)
    dynamic = Member(broker, group, topic, "dynamic")  # the first member: the group's leader
    static = None
    try:
        wait_until(lambda: dynamic.assignment == {0, 1, 2, 3}, 30, lambda: f"{dynamic}")
        static = Member(broker, group, topic, "static", **{"group.instance.id": "static-1"})
        wait_until(lambda: is_even_split(assignments([dynamic, static]), 4), 30,
                   lambda: f"a 2/2 split, have {dynamic} {static}")
        time.sleep(1.5)  # settled: three heartbeats without a rebalance
        owned = set(static.assignment)
        before = (dynamic.assign_calls, dynamic.revoke_calls, set(dynamic.assignment))
        [old] = [m for m in describe(broker, group).members if m.group_instance_id == "static-1"]

        static.close()  # a static member sends no LeaveGroup: the group keeps its place
        static = Member(broker, group, topic, "static-again", **{"group.instance.id": "static-1"})
        wait_until(lambda: static.assignment == owned, 15,
                   lambda: f"the restarted static member to get {sorted(owned)} back, has {static}")
        time.sleep(2)  # several heartbeats of the other member: still no rebalance
        assert (dynamic.assign_calls, dynamic.revoke_calls, dynamic.assignment) == before, \
            "the other member was rebalanced"
        assert static.assign_calls == 1 and static.assignment == owned

        description = describe(broker, group)
        assert description.state == ConsumerGroupState.STABLE
        [new] = [m for m in description.members if m.group_instance_id == "static-1"]
        assert new.member_id != old.member_id
        assert {tp.partition for tp in new.assignment.topic_partitions} == owned
        assert len(description.members) == 2
    finally:
        for m in filter(None, [static, dynamic]):
            m.close()


def test_static_member_that_stays_away_expires_after_session_timeout(broker, topic, group):
    """A static member's close sends no LeaveGroup: its partitions stay unassigned until its
    session times out (6 s here), then go to the others."""
    create_topic(broker, topic, num_partitions=4)
    dynamic = Member(broker, group, topic, "dynamic")
    static = None
    try:
        wait_until(lambda: dynamic.assignment == {0, 1, 2, 3}, 30, lambda: f"{dynamic}")
        static = Member(broker, group, topic, "static",
                        **{"group.instance.id": "gone", "session.timeout.ms": 6000})
        wait_until(lambda: is_even_split(assignments([dynamic, static]), 4), 30,
                   lambda: f"a 2/2 split, have {dynamic} {static}")
        time.sleep(1)
        before = (dynamic.assign_calls, dynamic.revoke_calls, set(dynamic.assignment))
        started = time.monotonic()
        static.close()
        time.sleep(3)
        assert (dynamic.assign_calls, dynamic.revoke_calls, dynamic.assignment) == before, \
            "closing a static member rebalanced the group at once"
        wait_until(lambda: dynamic.assignment == {0, 1, 2, 3}, 15,
                   lambda: f"the other member to get all partitions, has {dynamic}")
        elapsed = time.monotonic() - started
        assert 5 <= elapsed < 6 + 5, f"took over after {elapsed:.1f}s"
        assert dynamic.errors == []
    finally:
        for m in filter(None, [static, dynamic]):
            m.close()


def test_cooperative_sticky_splits_evenly_and_moves_only_orphans(broker, topic, group):
    create_topic(broker, topic, num_partitions=6)
    flow = Flow(broker, topic, 6)
    config = {"partition.assignment.strategy": "cooperative-sticky"}
    members = []
    try:
        for i in range(3):
            members.append(Member(broker, group, topic, f"m{i}", **config))
            time.sleep(0.3)
        wait_until(lambda: is_even_split(assignments(members), 6), 30,
                   lambda: f"a 2/2/2 split, have {members}")
        time.sleep(1)
        assert is_even_split(assignments(members), 6), members
        survivors = members[1:]
        before = {m.name: (set(m.assignment), m.revoke_calls) for m in survivors}
        members[0].close()
        wait_until(lambda: is_even_split(assignments(survivors), 6), 15,
                   lambda: f"the survivors to share all 6 partitions, have {survivors}")
        for m in survivors:
            kept, revokes = before[m.name]
            assert kept <= m.assignment, f"{m.name} lost partitions it kept: {kept} -> {m}"
            assert m.revoke_calls == revokes, f"{m.name} had partitions revoked"
        produced = flow.stop()
        wait_consumed(members, len(produced))
        check_consumed_once([r for m in members for r in m.consumed], produced)
        assert [m.errors for m in members] == [[], [], []]
    finally:
        flow.close()
        close_all(members)


def test_protocol_vote_inconsistent_protocol_and_session_bounds(broker, topic, group):
    """The coordinator picks the assignor all members support that most of them prefer; a member
    with no assignor in common gets INCONSISTENT_GROUP_PROTOCOL; session.timeout.ms outside
    [group.min.session.timeout.ms, group.max.session.timeout.ms] = [6 s, 30 min] gets
    INVALID_SESSION_TIMEOUT."""
    create_topic(broker, topic, num_partitions=4)
    members = [Member(broker, group, topic, name, **{"partition.assignment.strategy": strategy})
               for name, strategy in [("a", "roundrobin,range"), ("b", "range,roundrobin"),
                                      ("c", "roundrobin,range")]]
    try:
        wait_until(lambda: is_even_split(assignments(members), 4), 30,
                   lambda: f"a split of four partitions, have {members}")
        assert describe(broker, group).partition_assignor == "roundrobin"
        odd = Member(broker, group, topic, "odd",
                     **{"partition.assignment.strategy": "cooperative-sticky"})
        members.append(odd)
        wait_until(lambda: odd.errors, 15, "an error for the member without a common assignor")
        assert "INCONSISTENT_GROUP_PROTOCOL" in odd.errors[0] and odd.assignment == set()
        for session_timeout_ms in (5999, 1800001):
            m = Member(broker, unique_topic("group-session"), topic, "bad-session",
                       **{"session.timeout.ms": session_timeout_ms,
                          "max.poll.interval.ms": max(session_timeout_ms, 300000)})
            members.append(m)
            wait_until(lambda: m.errors, 15, f"an error for session timeout {session_timeout_ms}")
            assert "INVALID_SESSION_TIMEOUT" in m.errors[0] and m.assignment == set()
    finally:
        close_all(members)


def test_kip848_consumer_protocol_splits_evenly_without_duplicates(make_broker, topic, group):
    """group.protocol=consumer (KIP-848): ConsumerGroupHeartbeat, the broker's assignor,
    revocation before reassignment, and OffsetCommit with member epochs."""
    broker = make_broker({**FAST_GROUPS, "group.consumer.heartbeat.interval.ms": 1000,
                          "group.consumer.min.heartbeat.interval.ms": 1000})
    config = KIP848  # the session and heartbeat settings belong to the broker
    create_topic(broker, topic, num_partitions=6)
    flow = Flow(broker, topic, 6)
    members = []
    try:
        for i in range(3):
            members.append(Member(broker, group, topic, f"m{i}", **config))
            time.sleep(0.3)
        wait_until(lambda: is_even_split(assignments(members), 6), 30,
                   lambda: f"a 2/2/2 split, have {members}")
        time.sleep(1)
        d = describe(broker, group, include_authorized_operations=True)  # ConsumerGroupDescribe
        assert (d.type, d.state) == (ConsumerGroupType.CONSUMER, ConsumerGroupState.STABLE)
        assert {m.client_id: {tp.partition for tp in m.assignment.topic_partitions}
                for m in d.members} == assignments(members)

        survivors = members[1:]
        before = {m.name: set(m.assignment) for m in survivors}
        members[0].close()
        wait_until(lambda: is_even_split(assignments(survivors), 6), 15,
                   lambda: f"the survivors to share all 6 partitions, have {survivors}")
        for m in survivors:
            assert before[m.name] <= m.assignment, f"{m.name} lost partitions: {before} -> {m}"
        produced = flow.stop()
        wait_consumed(members, len(produced))
        check_consumed_once([r for m in members for r in m.consumed], produced)
        assert [m.errors for m in members] == [[], [], []]
        assert {op.name for op in d.authorized_operations} == ALL_GROUP_OPERATIONS
    finally:
        flow.close()
        close_all(members)


def test_kip848_regex_subscription_follows_new_topics(make_broker, group):
    """KIP-848 regex subscription (SubscribedTopicRegex): the broker resolves the pattern
    against whole topic names, and a matching topic created later joins the assignment."""
    broker = make_broker({**FAST_GROUPS, "group.consumer.heartbeat.interval.ms": 1000,
                          "group.consumer.min.heartbeat.interval.ms": 1000})
    prefix = unique_topic("rx").replace("-", "_")
    first, later, other = f"{prefix}_a", f"{prefix}_b", f"x{prefix}_c"
    for t in (first, other):
        create_topic(broker, t, num_partitions=2)
        produce_numbered(broker, t, range(2), 5)
    c = Consumer(group_config(broker, group, **KIP848))
    try:
        c.subscribe([f"^{prefix}_.*"])
        seen = set()

        def consumed(topic):
            msg = c.poll(0.2)
            if msg is not None and msg.error() is None:
                seen.add((msg.topic(), msg.partition(), msg.offset()))
            return len({(p, o) for (t, p, o) in seen if t == topic}) == 10

        wait_until(lambda: consumed(first), 30, lambda: f"10 records of {first}, have {seen}")
        create_topic(broker, later, num_partitions=2)
        produce_numbered(broker, later, range(2), 5)
        wait_until(lambda: consumed(later), 30, lambda: f"10 records of {later}, have {seen}")
        assert {t for (t, _, _) in seen} == {first, later}, f"{other} does not match: {seen}"
        d = describe(broker, group)
        [member] = d.members
        assert {tp.topic for tp in member.assignment.topic_partitions} == {first, later}
    finally:
        c.close()


def test_default_initial_rebalance_delay(make_broker, topic, group):
    """group.initial.rebalance.delay.ms (3 s by default) holds the first rebalance of a new group,
    so that members starting together are assigned in one generation."""
    broker = make_broker()
    create_topic(broker, topic, num_partitions=4)
    started = time.monotonic()
    members = [Member(broker, group, topic, f"m{i}") for i in range(2)]
    try:
        wait_until(lambda: is_even_split(assignments(members), 4), 20,
                   lambda: f"a 2/2 split, have {members}")
        elapsed = time.monotonic() - started
        assert elapsed >= 2.5, f"first assignment after {elapsed:.1f}s, before the 3 s delay"
        time.sleep(1)
        assert [(m.assign_calls, m.revoke_calls) for m in members] == [(1, 0), (1, 0)], \
            "both members must be assigned in the first generation"
    finally:
        close_all(members)


# AdminClient.

def test_admin_describe_and_list_active_group(broker, topic, group):
    create_topic(broker, topic, num_partitions=4)
    members = [Member(broker, group, topic, f"m{i}") for i in range(2)]
    client = admin(broker)
    try:
        wait_until(lambda: is_even_split(assignments(members), 4), 30,
                   lambda: f"a 2/2 split, have {members}")
        time.sleep(0.5)
        d = describe(broker, group)
        assert d.group_id == group and d.state == ConsumerGroupState.STABLE
        assert not d.is_simple_consumer_group and d.partition_assignor == "range"
        assert sorted(m.client_id for m in d.members) == ["m0", "m1"]
        for described in d.members:
            [member] = [m for m in members if m.name == described.client_id]
            assert {(tp.topic, tp.partition) for tp in described.assignment.topic_partitions} == \
                {(topic, p) for p in member.assignment}
            assert "127.0.0.1" in described.host and described.member_id
            assert described.group_instance_id is None

        operations = {op.name for op in describe(
            broker, group, include_authorized_operations=True).authorized_operations}

        listed = listed_groups(client)
        assert listed[group].state == ConsumerGroupState.STABLE
        assert listed[group].type == ConsumerGroupType.CLASSIC
        assert not listed[group].is_simple_consumer_group
        classic = client.list_consumer_groups(types={ConsumerGroupType.CLASSIC},
                                              request_timeout=20).result(timeout=30).valid
        modern = client.list_consumer_groups(types={ConsumerGroupType.CONSUMER},
                                             request_timeout=20).result(timeout=30).valid
        assert group in {g.group_id for g in classic} and group not in {g.group_id for g in modern}
        stable = client.list_consumer_groups(states={ConsumerGroupState.STABLE},
                                             request_timeout=20).result(timeout=30).valid
        empty = client.list_consumer_groups(states={ConsumerGroupState.EMPTY},
                                            request_timeout=20).result(timeout=30).valid
        assert group in {g.group_id for g in stable} and group not in {g.group_id for g in empty}

        # A group with members can neither be deleted nor have its offsets set from outside.
        with pytest.raises(KafkaException) as e:
            client.delete_consumer_groups([group], request_timeout=20)[group].result(timeout=30)
        assert e.value.args[0].code() == KafkaError.NON_EMPTY_GROUP
        altered = client.alter_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 1)])],
            request_timeout=20)[group].result(timeout=30)
        assert [tp.error.code() if tp.error else None for tp in altered.topic_partitions] == \
            [KafkaError.UNKNOWN_MEMBER_ID]
    finally:
        close_all(members)
    d = describe(broker, group)
    assert d.state == ConsumerGroupState.EMPTY and d.members == []
    assert operations == ALL_GROUP_OPERATIONS


def test_admin_offsets_of_a_group_without_members(broker, topic, group):
    create_topic(broker, topic, num_partitions=3)
    produce_numbered(broker, topic, range(3), 10)
    client = admin(broker)

    # Committing offsets with no active members (generation -1) creates an empty group.
    altered = client.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 4),
                                              TopicPartition(topic, 1, 7)])],
        request_timeout=20)[group].result(timeout=30)
    assert [(tp.partition, tp.offset, tp.error) for tp in altered.topic_partitions] == \
        [(0, 4, None), (1, 7, None)]
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(3)])
    offsets = group_offsets(client, request)
    assert [(tp.partition, tp.offset, tp.error) for tp in offsets.topic_partitions] == \
        [(0, 4, None), (1, 7, None), (2, OFFSET_INVALID, None)]
    everything = client.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group)], request_timeout=20)[group].result(timeout=30)
    assert sorted((tp.topic, tp.partition, tp.offset) for tp in everything.topic_partitions) == \
        [(topic, 0, 4), (topic, 1, 7)]

    listed = listed_groups(client)
    assert listed[group].state == ConsumerGroupState.EMPTY
    assert listed[group].is_simple_consumer_group  # no member ever set a protocol type
    d = describe(broker, group)
    assert d.state == ConsumerGroupState.EMPTY and d.members == []

    # A consumer of the group starts at those offsets.
    c = Consumer(group_config(broker, group))
    try:
        c.subscribe([topic])
        got = consume_count(c, 6 + 3 + 10)
        assert offsets_by_partition(got) == {0: list(range(4, 10)), 1: list(range(7, 10)),
                                             2: list(range(10))}
    finally:
        c.close()

    # Deleting the empty group removes it and its offsets.
    wait_until(lambda: describe(broker, group).members == [], 10, "the consumer to leave")
    deleted = client.delete_consumer_groups([group], request_timeout=20)[group]
    assert deleted.result(timeout=30) is None
    assert group not in listed_groups(client)
    offsets = group_offsets(client, request)
    assert [tp.offset for tp in offsets.topic_partitions] == [OFFSET_INVALID] * 3
    assert describe(broker, group).state == ConsumerGroupState.DEAD
    with pytest.raises(KafkaException) as e:
        client.delete_consumer_groups([group], request_timeout=20)[group].result(timeout=30)
    assert e.value.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND


def test_commit_metadata_leader_epoch_and_errors(broker, topic, group):
    create_topic(broker, topic, num_partitions=2)
    c = Consumer(group_config(broker, group))
    try:
        result = c.commit(offsets=[TopicPartition(topic, 0, 5, metadata="m" * 4000, leader_epoch=0),
                                   TopicPartition(topic, 1, 0, metadata="")],
                          asynchronous=False)
        assert [tp.error for tp in result] == [None, None]
        got = c.committed([TopicPartition(topic, p) for p in range(2)], timeout=20)
        assert [(tp.offset, tp.metadata, tp.leader_epoch) for tp in got] == \
            [(5, "m" * 4000, 0), (0, "", None)]

        # Over offset.metadata.max.bytes (4096); unknown topics and partitions are refused.
        for tp, code in [(TopicPartition(topic, 0, 6, metadata="m" * 5000),
                          KafkaError.OFFSET_METADATA_TOO_LARGE),
                         (TopicPartition(unique_topic("no-such-topic"), 0, 1),
                          KafkaError.UNKNOWN_TOPIC_OR_PART),
                         (TopicPartition(topic, 9, 1), KafkaError.UNKNOWN_TOPIC_OR_PART)]:
            with pytest.raises(KafkaException) as e:
                c.commit(offsets=[tp], asynchronous=False)
            assert e.value.args[0].code() == code, (tp, e.value)
        assert c.committed([TopicPartition(topic, 0)], timeout=20)[0].offset == 5
    finally:
        c.close()


def test_admin_unknown_group(broker):
    group = unique_topic("no-such-group")
    client = admin(broker)
    # DescribeGroups v0-v5 answers an unknown group with state Dead and no error.
    d = describe(broker, group)
    assert d.state == ConsumerGroupState.DEAD and d.members == []
    offsets = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                                 request_timeout=20)[group].result(timeout=30)
    assert offsets.topic_partitions == []
    assert group not in listed_groups(client)
