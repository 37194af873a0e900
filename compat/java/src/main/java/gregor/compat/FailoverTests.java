package gregor.compat;

import static gregor.compat.Report.check;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BooleanSupplier;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewPartitionReassignment;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.ElectionType;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;

/**
 * Failover as an application lives through it, against three brokers: a gregor (--brokers 3)
 * driven by its admin listener (--admin HOST:PORT), or three Apache Kafka nodes stopped and
 * started by a command (--control, compat/ref-kafka-cluster.sh: a format with %s for "stop" or
 * "start" and %d for the node id, which returns once the change is done). An idempotent acks=all producer and a consumer in a group run on while
 * brokers stop and start, leaders are elected (ElectLeaders, preferred), partitions are
 * reassigned, and the group's coordinator goes away; every acknowledged record is read back
 * exactly once and the committed offsets are where the consumer left them. A transactional
 * producer follows its coordinator to another broker. Needs auto.leader.rebalance.enable=false
 * (leaders stay moved until the election).
 */
final class FailoverTests {
    private static final Duration WAIT = Duration.ofSeconds(30);

    private final String bootstrap;
    private final BrokerControl control;
    private final String label;
    private final String prefix;

    private FailoverTests(String bootstrap, BrokerControl control, String label) {
        this.bootstrap = bootstrap;
        this.control = control;
        this.label = label;
        this.prefix = label.replace('.', '-') + "-";
    }

    static void run(Map<String, String> args, Report report) {
        BrokerControl control = args.containsKey("control")
                ? new CommandControl(args.get("control"))
                : new AdminListener(new AdminApi(Main.required(args, "admin")));
        FailoverTests t = new FailoverTests(Main.required(args, "bootstrap"), control, Main.required(args, "label"));
        report.run(t.label + "/produce-consume-through-elections-reassignments-and-stops", t::produceConsumeThroughFailover);
        report.run(t.label + "/transactional-producer-follows-its-coordinator", t::transactionsFollowTheCoordinator);
    }

    // ---- stopping and starting a broker ---------------------------------------------------------

    /** Stops ("stop") or starts ("start") broker `id`, returning once it is done. */
    private interface BrokerControl {
        void broker(int id, String action) throws Exception;
    }

    /** gregor's admin listener: a stop is a crash, and leaderships have moved when it answers. */
    private record AdminListener(AdminApi api) implements BrokerControl {
        public void broker(int id, String action) throws Exception {
            api.post("/v1/brokers/" + id + "/" + action, "");
        }
    }

    /** A command (run by bash) that stops or starts a Kafka node and waits for the cluster to see it. */
    private record CommandControl(String format) implements BrokerControl {
        public void broker(int id, String action) throws Exception {
            Process p = new ProcessBuilder("bash", "-c", String.format(format, action, id))
                    .redirectErrorStream(true)
                    .start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            check(p.waitFor() == 0, "%s broker %d: %s", action, id, out);
        }
    }

    private void broker(int id, String action) throws Exception {
        control.broker(id, action);
    }

    // ---- helpers --------------------------------------------------------------------------------

    private static void await(String what, BooleanSupplier condition) throws InterruptedException {
        AdminApi.await(what, condition);
    }

    private static Map<Integer, TopicPartitionInfo> partitions(Admin a, String topic) throws Exception {
        TopicDescription d = a.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
        Map<Integer, TopicPartitionInfo> out = new HashMap<>();
        d.partitions().forEach(p -> out.put(p.partition(), p));
        return out;
    }

    private static int leader(Admin a, String topic, int partition) throws Exception {
        return partitions(a, topic).get(partition).leader().id();
    }

    private static List<Integer> replicas(TopicPartitionInfo p) {
        return p.replicas().stream().map(n -> n.id()).toList();
    }

    // ---- the cases ------------------------------------------------------------------------------

    /** A producer and a group consumer in the background while the cluster changes under them. */
    void produceConsumeThroughFailover() throws Exception {
        String topic = prefix + "fo";
        String group = prefix + "fo-group";
        int partitions = 3;
        try (Admin a = Clients.admin(bootstrap, "failover-admin")) {
            a.createTopics(List.of(new NewTopic(topic, partitions, (short) 3))).all().get();
            Set<String> acked = ConcurrentHashMap.newKeySet();
            AtomicReference<String> sendFailure = new AtomicReference<>();
            AtomicBoolean stop = new AtomicBoolean();
            Thread producer = new Thread(() -> produce(topic, acked, sendFailure, stop), "failover-producer");
            Map<String, Integer> consumed = new ConcurrentHashMap<>();
            Map<TopicPartition, Long> positions = new ConcurrentHashMap<>();
            AtomicReference<Throwable> consumerFailure = new AtomicReference<>();
            AtomicBoolean consumerStop = new AtomicBoolean();
            Thread consumer = new Thread(
                    () -> consume(topic, group, consumed, positions, consumerFailure, consumerStop), "failover-consumer");
            producer.start();
            consumer.start();
            try {
                // Each step waits for records acknowledged and consumed after it.
                progress("start", acked, consumed, sendFailure, consumerFailure);

                // 1. The leader of partition 0 stops and starts (leaders move, ISRs shrink and grow).
                int first = leader(a, topic, 0);
                broker(first, "stop");
                progress("broker " + first + " stopped", acked, consumed, sendFailure, consumerFailure);
                check(leader(a, topic, 0) != first, "partition 0 still led by stopped broker %d", first);
                broker(first, "start");
                progress("broker " + first + " started", acked, consumed, sendFailure, consumerFailure);

                // 2. Preferred leader election brings leadership back to the first replicas.
                Set<TopicPartition> all = new HashSet<>();
                for (int p = 0; p < partitions; p++) {
                    all.add(new TopicPartition(topic, p));
                }
                a.electLeaders(ElectionType.PREFERRED, all).partitions().get();
                for (TopicPartitionInfo p : partitions(a, topic).values()) {
                    check(p.leader().id() == p.replicas().get(0).id(), "after the election: %s", p);
                }
                progress("preferred election", acked, consumed, sendFailure, consumerFailure);

                // 3. Reassignments: partition 0 loses its leader's replica, partition 1 is reordered.
                TopicPartitionInfo p0 = partitions(a, topic).get(0);
                List<Integer> moved0 = new ArrayList<>(replicas(p0).subList(1, 3));
                List<Integer> moved1 = new ArrayList<>(replicas(partitions(a, topic).get(1)));
                Collections.reverse(moved1);
                a.alterPartitionReassignments(Map.of(
                        new TopicPartition(topic, 0), Optional.of(new NewPartitionReassignment(moved0)),
                        new TopicPartition(topic, 1), Optional.of(new NewPartitionReassignment(moved1))))
                        .all().get();
                await("the reassignments to complete", () -> {
                    try {
                        return a.listPartitionReassignments().reassignments().get().isEmpty();
                    } catch (Exception e) {
                        return false;
                    }
                });
                Map<Integer, TopicPartitionInfo> after = partitions(a, topic);
                check(replicas(after.get(0)).equals(moved0) && replicas(after.get(1)).equals(moved1),
                        "after the reassignments: %s", after);
                check(after.get(0).leader().id() != p0.leader().id(), "partition 0 still led by %s", p0.leader());
                progress("reassignments", acked, consumed, sendFailure, consumerFailure);

                // 4. The group's coordinator stops: the consumer follows it to another broker.
                int coordinator = a.describeConsumerGroups(List.of(group)).all().get().get(group).coordinator().id();
                broker(coordinator, "stop");
                progress("coordinator " + coordinator + " stopped", acked, consumed, sendFailure, consumerFailure);
                int next = a.describeConsumerGroups(List.of(group)).all().get().get(group).coordinator().id();
                check(next != coordinator, "the coordinator is still %d", coordinator);
                broker(coordinator, "start");
                progress("coordinator " + coordinator + " started", acked, consumed, sendFailure, consumerFailure);
            } finally {
                stop.set(true);
                producer.join(WAIT.toMillis());
            }
            check(sendFailure.get() == null, "a send failed: %s", sendFailure.get());
            await("the consumer to read every acknowledged record",
                    () -> consumed.keySet().containsAll(acked) || consumerFailure.get() != null);
            consumerStop.set(true);
            consumer.join(WAIT.toMillis());
            check(consumerFailure.get() == null, "the consumer failed: %s",
                    consumerFailure.get() == null ? "" : Report.describe(consumerFailure.get()));
            List<String> twice = consumed.entrySet().stream().filter(e -> e.getValue() != 1).map(Map.Entry::getKey).toList();
            check(twice.isEmpty(), "records read more than once: %s", twice.subList(0, Math.min(5, twice.size())));
            check(consumed.keySet().equals(acked), "%d acknowledged, %d read", acked.size(), consumed.size());

            // The committed offsets are the consumer's last positions, which are the log ends.
            Map<TopicPartition, OffsetAndMetadata> committed =
                    a.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
            Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
            positions.keySet().forEach(tp -> latest.put(tp, OffsetSpec.latest()));
            var ends = a.listOffsets(latest).all().get();
            for (var e : positions.entrySet()) {
                OffsetAndMetadata c = committed.get(e.getKey());
                check(c != null && c.offset() == e.getValue() && c.offset() == ends.get(e.getKey()).offset(),
                        "%s: committed %s, position %d, end %d", e.getKey(), c, e.getValue(), ends.get(e.getKey()).offset());
            }
            check(positions.size() == partitions, "positions of %s", positions.keySet());
            System.out.println("  failover: " + acked.size() + " records acknowledged and read once");
        }
    }

    /** Waits until 200 more records were acknowledged and everything acknowledged so far was read. */
    private static void progress(String step, Set<String> acked, Map<String, Integer> consumed,
            AtomicReference<String> sendFailure, AtomicReference<Throwable> consumerFailure) throws InterruptedException {
        int target = acked.size() + 200;
        await("200 more acknowledged records after: " + step,
                () -> acked.size() >= target || sendFailure.get() != null || consumerFailure.get() != null);
        Set<String> snapshot = new HashSet<>(acked);
        await("the consumer to catch up after: " + step,
                () -> consumed.keySet().containsAll(snapshot) || consumerFailure.get() != null);
        check(sendFailure.get() == null, "after %s a send failed: %s", step, sendFailure.get());
        check(consumerFailure.get() == null, "after %s the consumer failed: %s", step,
                consumerFailure.get() == null ? "" : Report.describe(consumerFailure.get()));
    }

    private void produce(String topic, Set<String> acked, AtomicReference<String> failure, AtomicBoolean stop) {
        Map<String, String> overrides = Map.of(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "120000",
                ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        try (KafkaProducer<byte[], byte[]> p = Clients.producer(bootstrap, "failover-producer", "none", overrides)) {
            for (int i = 0; !stop.get(); i++) {
                String value = "r-" + i;
                byte[] bytes = value.getBytes(StandardCharsets.UTF_8);
                p.send(new ProducerRecord<>(topic, i % 3, bytes, bytes), (md, e) -> {
                    if (e == null) {
                        acked.add(value);
                    } else {
                        failure.compareAndSet(null, value + ": " + Report.describe(e));
                    }
                });
                if (i % 50 == 49) {
                    Thread.sleep(10);
                }
            }
            p.flush();
        } catch (Exception e) {
            failure.compareAndSet(null, Report.describe(e));
        }
    }

    /** Polls and commits synchronously after every batch, so nothing is read twice. */
    private void consume(String topic, String group, Map<String, Integer> consumed, Map<TopicPartition, Long> positions,
            AtomicReference<Throwable> failure, AtomicBoolean stop) {
        Map<String, String> overrides = Map.of(ConsumerConfig.GROUP_ID_CONFIG, group);
        try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(bootstrap, "failover-consumer", overrides)) {
            c.subscribe(List.of(topic));
            while (!stop.get()) {
                Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(100))) {
                    consumed.merge(new String(r.value(), StandardCharsets.UTF_8), 1, Integer::sum);
                    TopicPartition tp = new TopicPartition(r.topic(), r.partition());
                    offsets.put(tp, new OffsetAndMetadata(r.offset() + 1));
                }
                if (!offsets.isEmpty()) {
                    c.commitSync(offsets);
                    offsets.forEach((tp, o) -> positions.put(tp, o.offset()));
                }
            }
        } catch (Throwable e) {
            failure.compareAndSet(null, e);
        }
    }

    /**
     * Three transactions through a stop of the transaction coordinator's broker: the producer
     * finds the new coordinator (NOT_COORDINATOR, then FindCoordinator), and a read_committed
     * consumer reads the three transactions, exactly.
     */
    void transactionsFollowTheCoordinator() throws Exception {
        String topic = prefix + "txn";
        String txnId = prefix + "txn-id";
        try (Admin a = Clients.admin(bootstrap, "failover-txn-admin")) {
            a.createTopics(List.of(new NewTopic(topic, 1, (short) 3))).all().get();
            Map<String, String> overrides = Map.of(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId,
                    ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
            int stopped;
            try (KafkaProducer<byte[], byte[]> p = Clients.producer(bootstrap, "failover-txn", "none", overrides)) {
                p.initTransactions();
                transaction(p, topic, 0);
                stopped = a.describeTransactions(List.of(txnId)).all().get().get(txnId).coordinatorId();
                broker(stopped, "stop");
                transaction(p, topic, 1);
                int now = a.describeTransactions(List.of(txnId)).all().get().get(txnId).coordinatorId();
                check(now != stopped, "the transaction coordinator is still %d", stopped);
                broker(stopped, "start");
                transaction(p, topic, 2);
            }
            Map<String, String> rc = Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
            try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(bootstrap, "failover-txn-reader", rc)) {
                List<ConsumerRecord<byte[], byte[]>> got =
                        Clients.readFromBeginning(c, List.of(new TopicPartition(topic, 0)), 30, WAIT);
                List<String> values = got.stream().map(r -> new String(r.value(), StandardCharsets.UTF_8)).toList();
                List<String> want = new ArrayList<>();
                for (int t = 0; t < 3; t++) {
                    for (int i = 0; i < 10; i++) {
                        want.add("t" + t + "-" + i);
                    }
                }
                check(values.equals(want), "read_committed read %d records: %s", values.size(), values);
            }
        }
    }

    private static void transaction(KafkaProducer<byte[], byte[]> p, String topic, int t) {
        p.beginTransaction();
        for (int i = 0; i < 10; i++) {
            byte[] v = ("t" + t + "-" + i).getBytes(StandardCharsets.UTF_8);
            p.send(new ProducerRecord<>(topic, 0, null, v));
        }
        p.commitTransaction();
    }
}
