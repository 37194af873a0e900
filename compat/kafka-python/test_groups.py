"""Consumer groups, classic protocol: subscribe(), commits, rebalances, session expiry, static
membership, the cooperative-sticky assignor, offsets across broker restarts, and the group
operations of KafkaAdminClient (including OffsetDelete).

`broker` here is group_support's broker with group.initial.rebalance.delay.ms=0.
"""

import signal
import time
from pathlib import Path

import pytest
from kafka import TopicPartition, errors
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from kafka.structs import OffsetAndMetadata

from clients import create_topic
from compat_support import unique_topic
from group_clients import (Admin, Flow, Member, assignments, close_all, group_consumer,
                           produce_numbered, subscribe)
from group_support import (FAST_GROUPS, MemberProcess, broker, check_consumed_once,  # noqa: F401
                           fast_group_broker, is_even_split, offsets_by_partition, wait_consumed,
                           wait_until)

HERE = Path(__file__).resolve().parent


@pytest.fixture
def group(request):
    return unique_topic("group-" + request.node.name.split("[")[0].replace("_", "-"))


def consume_count(c, count, timeout=30):
    """Polls a subscribed consumer until it returned `count` records; returns their
    (partition, offset) pairs."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        for records in c.poll(timeout_ms=1000, max_records=count - len(got)).values():
            got.extend((r.partition, r.offset) for r in records)
    assert len(got) == count, f"consumed {len(got)} of {count} records before timeout"
    return got


def poll_nothing(c, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        extra = [(r.partition, r.offset) for rs in c.poll(timeout_ms=100).values() for r in rs]
        assert not extra, f"unexpected extra records: {extra}"


RETRIABLE = (errors.NotCoordinatorError, errors.CoordinatorLoadInProgressError,
             errors.CoordinatorNotAvailableError)


def committed(c, topic, partitions, timeout=20):
    """The group's committed offsets of `partitions` (None: nothing committed). Retries the
    errors that a coordinator gives while it starts up and loads the offsets."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return [c.committed(TopicPartition(topic, p), timeout_ms=timeout * 1000)
                    for p in partitions]
        except RETRIABLE:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def commit_retrying(c, offsets=None, timeout=15):
    """commit(), polling and retrying while a rebalance is under way (REBALANCE_IN_PROGRESS):
    kafka-python's leader may rejoin once more right after its first assignment."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return c.commit(offsets)
        except errors.RebalanceInProgressError:
            if time.monotonic() > deadline:
                raise
            c.poll(timeout_ms=100)


def describe(broker, group):
    with Admin(broker) as a:
        return a.describe_groups([group])[group]


def settled_members(broker, group, count):
    """{member id: assigned partitions} of a Stable group with `count` members that all have
    partitions, else None."""
    description = describe(broker, group)
    members = {m["member_id"]: tuple(p for t in m["member_assignment"]["assigned_partitions"]
                                     for p in t["partitions"])
               for m in description["members"]}
    if description["group_state"] == "Stable" and len(members) == count and all(members.values()):
        return members
    return None


def listed_groups(broker, **kwargs):
    with Admin(broker) as a:
        return {g["group_id"]: g for g in a.list_groups(**kwargs)}


def join(members, member):
    """Appends `member` and waits until every member owns partitions. The leader of
    kafka-python 3.0.12 sometimes spins (no heartbeats, no assignment) when the next rebalance
    starts right after its SyncGroup response, so these tests let each rebalance finish."""
    members.append(member)
    wait_until(lambda: all(m.assignment for m in members), 30,
               lambda: f"every member to own partitions, have {members}")


def tp_offsets(topic, pairs):
    return {TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in pairs}


# One consumer: commits, then a new member of the group resumes exactly there.

@pytest.mark.parametrize("commit", ["sync", "auto"])
def test_commit_then_resume(broker, topic, group, commit):
    create_topic(broker, topic, num_partitions=4, replication_factor=1)
    produce_numbered(broker, topic, range(4), 50)
    auto = commit == "auto"
    c = group_consumer(broker, group, **({"enable_auto_commit": True,
                                          "auto_commit_interval_ms": 200} if auto else {}))
    assigned = []

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            pass

        def on_partitions_assigned(self, partitions):
            if partitions:  # see group_clients._Listener
                assigned.append(sorted(tp.partition for tp in partitions))

    subscribe(c, topic, Listener())
    try:
        got = consume_count(c, 200)
        # kafka-python's leader may rejoin once more when its metadata snapshot lags.
        assert assigned and all(a == [0, 1, 2, 3] for a in assigned), \
            f"the only member must get all partitions: {assigned}"
        assert offsets_by_partition(got) == {p: list(range(50)) for p in range(4)}
        if auto:
            def auto_committed():
                c.poll(timeout_ms=100)
                return committed(c, topic, range(4)) == [50] * 4
            wait_until(auto_committed, 10, lambda: f"auto-commit of offset 50, have "
                                                   f"{committed(c, topic, range(4))}")
        else:
            commit_retrying(c)
            assert committed(c, topic, range(4)) == [50] * 4
    finally:
        c.close(autocommit=False)

    produce_numbered(broker, topic, range(4), 25, start=50)
    c = group_consumer(broker, group)
    try:
        assert committed(c, topic, range(4)) == [50] * 4
        subscribe(c, topic)
        got = consume_count(c, 100)
        assert offsets_by_partition(got) == {p: list(range(50, 75)) for p in range(4)}, \
            "the new member must resume at the committed offsets"
        poll_nothing(c, 0.5)
    finally:
        c.close(autocommit=False)


# Several members.

def test_three_members_split_evenly_without_duplicates(broker, topic, group):
    create_topic(broker, topic, num_partitions=6, replication_factor=1)
    flow = Flow(broker, topic, 6)
    members = []
    try:
        for i in range(3):  # joining one after the other: three rebalances while records flow
            join(members, Member(broker, group, topic, f"m{i}"))
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
    create_topic(broker, topic, num_partitions=6, replication_factor=1)
    produce_numbered(broker, topic, range(6), 20)
    members = []
    try:
        for i in range(3):
            join(members, Member(broker, group, topic, f"m{i}", session_timeout_ms=30000))
        wait_until(lambda: is_even_split(assignments(members), 6), 30,
                   lambda: f"a 2/2/2 split, have {members}")
        wait_until(lambda: sum(len(m.consumed) for m in members) >= 120, 20, "the first records")
        started = time.monotonic()
        members[0].close()
        rest = members[1:]
        wait_until(lambda: is_even_split(assignments(rest), 6), 10,
                   lambda: f"the others to take over all 6 partitions, have {rest}")
        assert time.monotonic() - started < 10
        produce_numbered(broker, topic, range(6), 20, start=20)
        wait_consumed(members, 240)
        check_consumed_once([r for m in members for r in m.consumed],
                            [(p, o) for p in range(6) for o in range(40)])
    finally:
        close_all(members)


def test_killed_member_loses_partitions_after_session_timeout(broker, topic, group):
    session_timeout_s = 6  # group.min.session.timeout.ms
    create_topic(broker, topic, num_partitions=4, replication_factor=1)
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
    create_topic(broker, topic, num_partitions=3, replication_factor=1)
    produce_numbered(broker, topic, range(3), 30)
    c = group_consumer(broker, group)
    try:
        subscribe(c, topic)
        consume_count(c, 90)
        for pairs in ([(0, 10), (1, 20)], [(0, 17)]):  # the later commit of partition 0 wins
            commit_retrying(c, tp_offsets(topic, pairs))
        assert committed(c, topic, range(3)) == [17, 20, None]
    finally:
        c.close(autocommit=False)

    code = broker.stop(sig)
    if sig == signal.SIGTERM:
        assert broker.clean_exit(code), f"exit code {code} after SIGTERM"
    broker.start()

    c = group_consumer(broker, group)
    try:
        assert committed(c, topic, range(3)) == [17, 20, None]
        subscribe(c, topic)
        got = consume_count(c, 13 + 10 + 30)
        assert offsets_by_partition(got) == {0: list(range(17, 30)), 1: list(range(20, 30)),
                                             2: list(range(30))}
        poll_nothing(c, 0.5)
    finally:
        c.close(autocommit=False)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_group_survives_broker_restart(make_broker, topic, group, sig):
    """Kafka keeps the group (generation, members, assignment) in __consumer_offsets: after a
    restart within the session timeout the members heartbeat on without a rebalance."""
    broker = make_broker(FAST_GROUPS)
    create_topic(broker, topic, num_partitions=4, replication_factor=1)
    produce_numbered(broker, topic, range(4), 20)
    members = []
    try:
        for i in range(2):
            join(members, Member(broker, group, topic, f"m{i}", session_timeout_ms=30000))
        wait_until(lambda: is_even_split(assignments(members), 4), 30,
                   lambda: f"a 2/2 split, have {members}")
        wait_until(lambda: sum(len(m.consumed) for m in members) >= 80, 20, "the first records")
        # The broker's side of the same settled group: Stable, both members, both assigned.
        stored = wait_until(lambda: settled_members(broker, group, 2), 20,
                            lambda: f"a Stable group of two, have {describe(broker, group)}")
        before = [(m.assign_calls, m.revoke_calls, m.assignment) for m in members]

        code = broker.stop(sig)
        if sig == signal.SIGTERM:
            assert broker.clean_exit(code), f"exit code {code} after SIGTERM"
        broker.start()

        produce_numbered(broker, topic, range(4), 20, start=20)
        wait_consumed(members, 160)
        time.sleep(1)  # two more heartbeats of each member after the restart
        assert [(m.assign_calls, m.revoke_calls, m.assignment) for m in members] == before, \
            "the members were rebalanced after the restart"
        assert settled_members(broker, group, 2) == stored, "the group changed in the restart"
        check_consumed_once([r for m in members for r in m.consumed],
                            [(p, o) for p in range(4) for o in range(40)])
    finally:
        close_all(members)


def test_static_member_with_a_taken_instance_id_fences_the_old_one(broker, topic, group):
    """KIP-345: a second consumer joining with the same group.instance.id replaces the first,
    whose next request gets FENCED_INSTANCE_ID."""
    create_topic(broker, topic, num_partitions=2, replication_factor=1)
    first = Member(broker, group, topic, "first", group_instance_id="twin")
    second = None
    try:
        wait_until(lambda: first.assignment == {0, 1}, 30, lambda: f"{first}")
        second = Member(broker, group, topic, "second", group_instance_id="twin")
        wait_until(lambda: second.assignment == {0, 1}, 15, lambda: f"{second}")
        wait_until(lambda: first.errors, 10, "an error for the fenced member")
        assert "FencedInstanceIdError" in first.errors[0], first.errors
        assert second.errors == []
        [member] = describe(broker, group)["members"]  # Kafka keeps the first one's client_id
        assert member["group_instance_id"] == "twin"
    finally:
        close_all([second, first], ignore=errors.KafkaError)  # the fenced consumer fails


# Static membership (KIP-345) and the cooperative-sticky assignor (KIP-429).

def test_static_member_restart_keeps_partitions_without_rebalance(broker, topic, group):
    create_topic(broker, topic, num_partitions=4, replication_factor=1)
    dynamic = Member(broker, group, topic, "dynamic")  # the first member: the group's leader
    static = None
    try:
        wait_until(lambda: dynamic.assignment == {0, 1, 2, 3}, 30, lambda: f"{dynamic}")
        static = Member(broker, group, topic, "static", group_instance_id="static-1")
        wait_until(lambda: is_even_split(assignments([dynamic, static]), 4), 30,
                   lambda: f"a 2/2 split, have {dynamic} {static}")
        time.sleep(1.5)  # settled: three heartbeats without a rebalance
        owned = set(static.assignment)
        before = (dynamic.assign_calls, dynamic.revoke_calls, set(dynamic.assignment))
        [old] = [m for m in describe(broker, group)["members"]
                 if m["group_instance_id"] == "static-1"]

        static.close()  # a static member sends no LeaveGroup: the group keeps its place
        static = Member(broker, group, topic, "static-again", group_instance_id="static-1")
        wait_until(lambda: static.assignment == owned, 15,
                   lambda: f"the restarted static member to get {sorted(owned)} back, has {static}")
        time.sleep(2)  # several heartbeats of the other member: still no rebalance
        assert (dynamic.assign_calls, dynamic.revoke_calls, dynamic.assignment) == before, \
            "the other member was rebalanced"
        assert static.assign_calls == 1 and static.assignment == owned

        description = describe(broker, group)
        assert description["group_state"] == "Stable" and len(description["members"]) == 2
        [new] = [m for m in description["members"] if m["group_instance_id"] == "static-1"]
        assert new["member_id"] != old["member_id"]
        assert new["member_assignment"]["assigned_partitions"] == \
            [{"topic": topic, "partitions": sorted(owned)}]
    finally:
        close_all([static, dynamic])


def test_static_member_that_stays_away_expires_after_session_timeout(broker, topic, group):
    """A static member's close sends no LeaveGroup: its partitions stay unassigned until its
    session times out (6 s here), then go to the others."""
    create_topic(broker, topic, num_partitions=4, replication_factor=1)
    dynamic = Member(broker, group, topic, "dynamic")
    static = None
    try:
        wait_until(lambda: dynamic.assignment == {0, 1, 2, 3}, 30, lambda: f"{dynamic}")
        static = Member(broker, group, topic, "static", group_instance_id="gone",
                        session_timeout_ms=6000)
        wait_until(lambda: is_even_split(assignments([dynamic, static]), 4), 30,
                   lambda: f"a 2/2 split, have {dynamic} {static}")
        time.sleep(1)
        before = (dynamic.assign_calls, dynamic.revoke_calls, set(dynamic.assignment))
        static.close()  # the heartbeats stop here, so the session timeout counts from here
        started = time.monotonic()
        time.sleep(3)
        assert (dynamic.assign_calls, dynamic.revoke_calls, dynamic.assignment) == before, \
            "closing a static member rebalanced the group at once"
        wait_until(lambda: dynamic.assignment == {0, 1, 2, 3}, 15,
                   lambda: f"the other member to get all partitions, has {dynamic}")
        elapsed = time.monotonic() - started
        assert 5 <= elapsed < 6 + 5, f"took over after {elapsed:.1f}s"
        assert dynamic.errors == []
    finally:
        close_all([static, dynamic])


def test_cooperative_sticky_splits_evenly_and_moves_only_orphans(broker, topic, group):
    create_topic(broker, topic, num_partitions=6, replication_factor=1)
    flow = Flow(broker, topic, 6)
    members = []
    try:
        for i in range(3):
            join(members, Member(broker, group, topic, f"m{i}",
                                 partition_assignment_strategy=(CooperativeStickyAssignor,)))
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
    with no assignor in common gets INCONSISTENT_GROUP_PROTOCOL; session_timeout_ms outside
    [group.min.session.timeout.ms, group.max.session.timeout.ms] = [6 s, 30 min] gets
    INVALID_SESSION_TIMEOUT."""
    create_topic(broker, topic, num_partitions=4, replication_factor=1)
    rr_first = (RoundRobinPartitionAssignor, RangePartitionAssignor)
    members = []
    try:
        for name, strategy in [("a", rr_first), ("b", rr_first[::-1]), ("c", rr_first)]:
            join(members, Member(broker, group, topic, name,
                                 partition_assignment_strategy=strategy))
        wait_until(lambda: is_even_split(assignments(members), 4), 30,
                   lambda: f"a split of four partitions, have {members}")
        assert describe(broker, group)["protocol_data"] == "roundrobin"
        odd = Member(broker, group, topic, "odd",
                     partition_assignment_strategy=(CooperativeStickyAssignor,))
        members.append(odd)
        wait_until(lambda: odd.errors, 15, "an error for the member without a common assignor")
        assert "InconsistentGroupProtocolError" in odd.errors[0] and odd.assignment == set()
        for session_timeout_ms in (5999, 1800001):
            m = Member(broker, unique_topic("group-session"), topic, "bad-session",
                       session_timeout_ms=session_timeout_ms,
                       max_poll_interval_ms=max(session_timeout_ms, 300000),
                       request_timeout_ms=max(session_timeout_ms, 300000) + 5000,
                       connections_max_idle_ms=2_000_000)
            members.append(m)
            wait_until(lambda: m.errors, 15, f"an error for session timeout {session_timeout_ms}")
            assert "InvalidSessionTimeoutError" in m.errors[0] and m.assignment == set()
    finally:
        close_all(members)


def test_default_initial_rebalance_delay(make_broker, topic, group):
    """group.initial.rebalance.delay.ms (3 s by default) holds the first rebalance of a new group,
    so that members starting together are assigned in one generation."""
    broker = make_broker()
    create_topic(broker, topic, num_partitions=4, replication_factor=1)
    started = time.monotonic()
    members = [Member(broker, group, topic, f"m{i}") for i in range(2)]
    try:
        wait_until(lambda: is_even_split(assignments(members), 4), 20,
                   lambda: f"a 2/2 split, have {members}")
        elapsed = time.monotonic() - started
        assert elapsed >= 2.5, f"first assignment after {elapsed:.1f}s, before the 3 s delay"
        time.sleep(1)
        # Had one member joined a generation alone, it would have owned all four partitions.
        assert [max(map(len, m.history)) for m in members] == [2, 2], \
            f"both members must be assigned in the first generation: {[m.history for m in members]}"
    finally:
        close_all(members)


# KafkaAdminClient.

def test_admin_describe_and_list_active_group(broker, topic, group):
    create_topic(broker, topic, num_partitions=4, replication_factor=1)
    members = []
    try:
        for i in range(2):
            join(members, Member(broker, group, topic, f"m{i}"))
        wait_until(lambda: is_even_split(assignments(members), 4), 30,
                   lambda: f"a 2/2 split, have {members}")
        time.sleep(0.5)
        d = describe(broker, group)
        assert d["error"] is None and d["group_id"] == group
        assert (d["group_state"], d["protocol_type"], d["protocol_data"]) == \
            ("Stable", "consumer", "range")
        assert sorted(m["client_id"] for m in d["members"]) == ["m0", "m1"]
        for described in d["members"]:
            [member] = [m for m in members if m.name == described["client_id"]]
            assert described["member_assignment"]["assigned_partitions"] == \
                [{"topic": topic, "partitions": sorted(member.assignment)}]
            assert described["member_metadata"]["topics"] == [topic]
            assert "127.0.0.1" in described["client_host"] and described["member_id"]
            assert described["group_instance_id"] is None

        operations = set(d["authorized_operations"])

        listed = listed_groups(broker)[group]
        assert (listed["group_state"], listed["protocol_type"]) == ("Stable", "consumer")
        assert group in listed_groups(broker, states_filter=["Stable"])
        assert listed_groups(broker, types_filter=["classic"])[group]["group_type"] == "classic"
        assert group not in listed_groups(broker, types_filter=["consumer"])
        assert group not in listed_groups(broker, states_filter=["Empty"])

        # A group with members can neither be deleted nor have its offsets set or deleted from
        # outside.
        tp = TopicPartition(topic, 0)
        with Admin(broker) as a:
            assert a.delete_groups([group]) == {group: "NonEmptyGroupError"}
            assert a.alter_group_offsets(group, tp_offsets(topic, [(0, 1)])) == \
                {tp: errors.UnknownMemberIdError}
            assert a.delete_group_offsets(group, [tp]) == {tp: errors.GroupSubscribedToTopicError}
    finally:
        close_all(members)
    d = describe(broker, group)
    assert (d["group_state"], d["members"]) == ("Empty", [])
    # Kafka without an authorizer allows every operation on a group (4.x: group configs added
    # DESCRIBE_CONFIGS and ALTER_CONFIGS).
    assert operations == {"READ", "DESCRIBE", "DELETE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS"}


def test_admin_offsets_of_a_group_without_members(broker, topic, group):
    create_topic(broker, topic, num_partitions=3, replication_factor=1)
    produce_numbered(broker, topic, range(3), 10)
    tps = [TopicPartition(topic, p) for p in range(3)]
    with Admin(broker) as a:
        # Committing offsets with no active members (generation -1) creates an empty group.
        assert a.alter_group_offsets(group, tp_offsets(topic, [(0, 4), (1, 7), (2, 9)])) == \
            {tp: errors.NoError for tp in tps}
        offsets = a.list_group_offsets({group: tps})[group]
        assert {tp.partition: o.offset for tp, o in offsets.items()} == {0: 4, 1: 7, 2: 9}
        # OffsetDelete on a group without members.
        assert a.delete_group_offsets(group, [tps[2]]) == {tps[2]: errors.NoError}
        offsets = a.list_group_offsets(group)[group]
        assert {tp.partition: o.offset for tp, o in offsets.items()} == {0: 4, 1: 7}

        listed = listed_groups(broker)[group]
        assert (listed["group_state"], listed["protocol_type"]) == ("Empty", "")
        d = describe(broker, group)
        assert (d["error"], d["group_state"], d["members"]) == (None, "Empty", [])

        # A consumer of the group starts at those offsets.
        c = group_consumer(broker, group)
        try:
            subscribe(c, topic)
            got = consume_count(c, 6 + 3 + 10)
            assert offsets_by_partition(got) == {0: list(range(4, 10)), 1: list(range(7, 10)),
                                                 2: list(range(10))}
        finally:
            c.close(autocommit=False)

        # Deleting the empty group removes it and its offsets.
        assert a.delete_groups([group]) == {group: "OK"}
        assert group not in listed_groups(broker)
        assert a.list_group_offsets(group) == {group: {}}
        d = describe(broker, group)
        assert d["group_state"] == "Dead" and "GroupIdNotFoundError" in d["error"]
        assert a.delete_groups([group]) == {group: "GroupIdNotFoundError"}
        with pytest.raises(errors.GroupIdNotFoundError):
            a.delete_group_offsets(group, [tps[0]])


def test_commit_metadata_and_errors(broker, topic, group):
    create_topic(broker, topic, num_partitions=2, replication_factor=1)
    tp0 = TopicPartition(topic, 0)
    with Admin(broker) as a:
        # offset.metadata.max.bytes is 4096.
        assert a.alter_group_offsets(group, {tp0: OffsetAndMetadata(5, "m" * 4096, -1)}) == \
            {tp0: errors.NoError}
        for tp, meta, error in [(tp0, "m" * 4097, errors.OffsetMetadataTooLargeError),
                                (TopicPartition(unique_topic("no-such-topic"), 0), "",
                                 errors.UnknownTopicOrPartitionError),
                                (TopicPartition(topic, 9), "",
                                 errors.UnknownTopicOrPartitionError)]:
            assert a.alter_group_offsets(group, {tp: OffsetAndMetadata(6, meta, -1)}) == {tp: error}
        [(_, committed_offset)] = a.list_group_offsets(group)[group].items()
        assert (committed_offset.offset, committed_offset.metadata) == (5, "m" * 4096)

    c = group_consumer(broker, group)
    try:
        c.commit({TopicPartition(topic, 1): OffsetAndMetadata(3, "from-consumer", 0)})
        got = c.committed(TopicPartition(topic, 1), metadata=True)
        assert (got.offset, got.metadata, got.leader_epoch) == (3, "from-consumer", 0)
    finally:
        c.close(autocommit=False)


def test_admin_unknown_group(broker):
    group = unique_topic("no-such-group")
    # DescribeGroups v6 (KIP-1043) answers an unknown group with state Dead and
    # GROUP_ID_NOT_FOUND.
    d = describe(broker, group)
    assert (d["group_state"], d["members"]) == ("Dead", [])
    assert "GroupIdNotFoundError" in d["error"]
    with Admin(broker) as a:
        assert a.list_group_offsets(group) == {group: {}}
    assert group not in listed_groups(broker)
