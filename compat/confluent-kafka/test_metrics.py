"""GET /metrics on gregor's admin listener, read with the Prometheus client library's own
text-format parser after a known workload from real clients: the counters and gauges must match
what the clients did (records and bytes in, requests, error codes, committed offsets and lag).

Kafka exposes its metrics over JMX, not HTTP, so this runs against gregor only; the names are
those the JMX exporter's and kafka-exporter's rules give Kafka's metrics (see src/metrics/).
"""

import os
import urllib.request

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from clients import admin, consume_partition, create_topic, produce_all

pytestmark = pytest.mark.skipif(bool(os.environ.get("KAFKA_REFERENCE_LIBS")),
                                reason="Kafka's metrics are JMX, not an HTTP endpoint")

GROUP = "metrics-group"


def scrape(broker):
    """{(sample name, frozenset of labels): value} of one scrape."""
    url = f"http://127.0.0.1:{broker.admin_port}/metrics"
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def test_metrics_follow_a_known_workload(make_broker, topic):
    b = make_broker(admin=True)
    create_topic(b, topic, num_partitions=2)
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5,
                  "compression.type": "none"})
    records = [(str(i).encode(), b"v" * i, None, 0) for i in range(50)]
    assert not produce_all(p, topic, records[:30], partition=0).errors
    assert not produce_all(p, topic, records[30:], partition=1).errors

    # A group that committed 12 of partition 0's 30 records and all 20 of partition 1's.
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": GROUP,
                  "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, 12), TopicPartition(topic, 1, 20)],
                 asynchronous=False)
    finally:
        c.close()
    # Every record of partition 1 read back: at least its bytes go out.
    consume_partition(b, topic, 1, 20)
    # A request answered with an error code: deleting a topic that does not exist.
    client = admin(b)  # must outlive the future
    futures = client.delete_topics([f"{topic}-missing"], operation_timeout=10)
    with pytest.raises(KafkaException, match="UNKNOWN_TOPIC_OR_PART"):
        futures[f"{topic}-missing"].result(timeout=20)

    m = scrape(b)
    t = {"topic": topic}
    assert value(m, "kafka_server_brokertopicmetrics_messagesin_total", **t) == 50
    sizes = [value(m, "kafka_log_log_size", topic=topic, partition=str(i)) for i in (0, 1)]
    # Uncompressed batches are stored as produced: bytes in are the logs' bytes.
    assert value(m, "kafka_server_brokertopicmetrics_bytesin_total", **t) == sum(sizes) > 0
    assert value(m, "kafka_server_brokertopicmetrics_bytesout_total", **t) >= sizes[1]
    assert value(m, "kafka_server_brokertopicmetrics_failedproducerequests_total", **t) == 0
    # The all-topics counters hold at least this topic's traffic.
    assert value(m, "kafka_server_brokertopicmetrics_messagesin_total") >= 50

    for partition, end, committed in ((0, 30, 12), (1, 20, 20)):
        at = {"topic": topic, "partition": str(partition)}
        assert value(m, "kafka_log_log_logendoffset", **at) == end
        assert value(m, "kafka_topic_partition_current_offset", **at) == end
        assert value(m, "kafka_topic_partition_oldest_offset", **at) == 0
        assert value(m, "kafka_consumergroup_current_offset", consumergroup=GROUP, **at) == committed
        assert value(m, "kafka_consumergroup_lag", consumergroup=GROUP, **at) == end - committed
        assert value(m, "kafka_topic_partition_under_replicated_partition", **at) == 0
    assert value(m, "kafka_topic_partitions", **t) == 2

    produces = value(m, "kafka_network_requestmetrics_requests_total", request="Produce")
    assert produces >= 2  # one per partition at least
    assert value(m, "kafka_network_requestmetrics_totaltimems_count", request="Produce") == produces
    assert value(m, "kafka_network_requestmetrics_totaltimems_bucket", request="Produce",
                 le="+Inf") == produces
    assert value(m, "kafka_network_requestmetrics_errors_total", request="DeleteTopics",
                 error="UNKNOWN_TOPIC_OR_PARTITION") == 1
    assert value(m, "kafka_server_replicamanager_underreplicatedpartitions") == 0
    assert value(m, "kafka_controller_kafkacontroller_offlinepartitionscount") == 0

    # Counters only grow: a second scrape after more records shows exactly the difference.
    assert not produce_all(p, topic, records[:5], partition=0).errors
    again = scrape(b)
    assert value(again, "kafka_server_brokertopicmetrics_messagesin_total", **t) == 55
    p.flush(10)


def test_the_grafana_dashboard_reads_only_metrics_gregor_serves(make_broker, topic):
    """ops/grafana/gregor-dashboard.json: every metric its queries name is in a scrape of a broker
    with a topic, traffic and a group (so a renamed metric cannot leave a panel empty)."""
    import json
    import pathlib
    import re

    b = make_broker(admin=True)
    create_topic(b, topic, num_partitions=1)
    p = Producer({"bootstrap.servers": b.bootstrap})
    assert not produce_all(p, topic, [(b"k", b"v", None, 0)]).errors
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": GROUP})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    finally:
        c.close()
    url = f"http://127.0.0.1:{b.admin_port}/metrics"
    with urllib.request.urlopen(url, timeout=30) as resp:
        # Every family is declared, with or without samples (an error counter before any error).
        served = set(re.findall(r"^# TYPE (\S+) ", resp.read().decode(), re.M))
    dashboard = pathlib.Path(__file__).parents[2] / "ops" / "grafana" / "gregor-dashboard.json"
    queries = [t["expr"] for panel in json.loads(dashboard.read_text())["panels"]
               for t in panel["targets"]]
    named = {re.sub(r"_bucket$", "", m)
             for q in queries for m in re.findall(r"\bkafka_[a-z_]+", q)}
    assert len(named) >= 10, named
    assert named <= served, named - served
    p.flush(10)
