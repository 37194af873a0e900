package gregor.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * {@link GregorExtension} as an application's test class uses it, with kafka-clients: each test
 * finds an empty broker; faults, the journal, seed data, await, the manual clock, and a snapshot
 * restored twice under a connected producer and a consumer group. Run by
 * compat/java (group junit) through JUnit's console launcher.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class GregorExtensionExampleTest {
    // With the manual clock the initial rebalance delay would wait for an advance: none.
    @RegisterExtension
    static final GregorExtension gregor =
            new GregorExtension("--clock", "manual", "--override", "group.initial.rebalance.delay.ms=0");

    private static Properties props(Map<String, Object> extra) {
        Properties p = new Properties();
        p.put("bootstrap.servers", gregor.bootstrap());
        p.putAll(extra);
        return p;
    }

    private static KafkaProducer<String, String> producer(String clientId) {
        return new KafkaProducer<>(props(Map.of("client.id", clientId, "enable.idempotence", "true",
                "max.block.ms", "30000")), new StringSerializer(), new StringSerializer());
    }

    @Test
    @Order(1)
    void aTestLeavesATopicBehind() throws Exception {
        try (Admin admin = Admin.create(props(Map.of()))) {
            admin.createTopics(List.of(new NewTopic("left-behind", 1, (short) 1))).all().get();
            assertTrue(admin.listTopics().names().get().contains("left-behind"));
        }
    }

    @Test
    @Order(2)
    void theNextTestStartsEmpty() throws Exception {
        try (Admin admin = Admin.create(props(Map.of()))) {
            assertEquals(Set.of(), admin.listTopics().names().get());
        }
    }

    @Test
    @Order(3)
    void anInjectedErrorIsRetriedAndShowsInTheJournal() throws Exception {
        gregor.seed("{\"topics\": [{\"name\": \"faulty\", \"partitions\": 1}]}");
        String rule = gregor.fault("{\"api\": \"Produce\", \"topic\": \"faulty\", \"times\": 1,"
                + " \"action\": \"error\", \"error\": \"NOT_LEADER_OR_FOLLOWER\"}");
        try (KafkaProducer<String, String> p = producer("example-app")) {
            p.send(new ProducerRecord<>("faulty", "k", "v")).get();
        }
        assertTrue(gregor.faults().contains("\"fired\":1"), gregor.faults());
        String journal = gregor.journal("client_id=example-app&api=Produce");
        String id = rule.replaceAll(".*\"id\":([0-9]+).*", "$1");
        assertTrue(journal.contains("\"rule\":" + id), journal);
    }

    @Test
    @Order(4)
    void seedAwaitReadAndTheManualClock() throws Exception {
        gregor.seed("{\"topics\": [{\"name\": \"seeded\", \"partitions\": 1,"
                + " \"records\": [{\"key\": \"a\", \"value\": \"one\"}, {\"key\": \"b\", \"value\": \"two\"}]}]}");
        gregor.await("topic=seeded&partition=0&high_watermark=2");
        List<String> values = new ArrayList<>();
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(props(Map.of("auto.offset.reset", "earliest")),
                new StringDeserializer(), new StringDeserializer())) {
            c.assign(List.of(new TopicPartition("seeded", 0)));
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (values.size() < 2 && System.nanoTime() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    values.add(r.value());
                }
            }
        }
        assertEquals(List.of("one", "two"), values);
        GregorExtension.GregorException late = assertThrows(GregorExtension.GregorException.class,
                () -> gregor.await("topic=seeded&partition=0&high_watermark=3&timeout_ms=50"));
        assertEquals(408, late.status);
        long before = Long.parseLong(gregor.request("GET", "/v1/clock", null).replaceAll(".*\"now_ms\":([0-9]+).*", "$1"));
        String after = gregor.advanceClock(46_000);
        assertTrue(after.contains("\"now_ms\":" + (before + 46_000)), after);
    }

    private static final String SNAP_TOPIC = "snap-orders";
    private static final String SNAP_GROUP = "snap-billing";
    private static final TopicPartition SNAP_TP = new TopicPartition(SNAP_TOPIC, 0);

    /**
     * A member of SNAP_GROUP reads {@code count} values from where the group stands, commits past
     * them and leaves.
     */
    private static List<String> groupRead(int count) {
        List<String> values = new ArrayList<>();
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(props(Map.of("group.id", SNAP_GROUP,
                "auto.offset.reset", "earliest", "enable.auto.commit", "false")),
                new StringDeserializer(), new StringDeserializer())) {
            c.subscribe(List.of(SNAP_TOPIC));
            long next = -1;
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            while (values.size() < count && System.nanoTime() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    if (values.size() < count) {
                        values.add(r.offset() + ":" + r.value());
                        next = r.offset() + 1;
                    }
                }
            }
            assertEquals(count, values.size(), values.toString());
            c.commitSync(Map.of(SNAP_TP, new OffsetAndMetadata(next)));
        }
        return values;
    }

    /**
     * What a snapshot brings back, as clients see it: the topics, SNAP_TOPIC's records as
     * "offset:value" up to its end offset, and SNAP_GROUP's committed offset.
     */
    private static List<Object> snapState() throws Exception {
        Set<String> topics;
        long committed;
        try (Admin admin = Admin.create(props(Map.of()))) {
            topics = new TreeSet<>(admin.listTopics().names().get());
            OffsetAndMetadata c = admin.listConsumerGroupOffsets(SNAP_GROUP).partitionsToOffsetAndMetadata()
                    .get().get(SNAP_TP);
            committed = c == null ? -1 : c.offset();
        }
        List<String> records = new ArrayList<>();
        long end;
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(props(Map.of()),
                new StringDeserializer(), new StringDeserializer())) {
            c.assign(List.of(SNAP_TP));
            c.seekToBeginning(List.of(SNAP_TP));
            end = c.endOffsets(List.of(SNAP_TP)).get(SNAP_TP);
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (c.position(SNAP_TP) < end && System.nanoTime() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    records.add(r.offset() + ":" + r.value());
                }
            }
        }
        return List.of(topics, records, end, committed);
    }

    @Test
    @Order(5)
    void aSnapshotRestoresRecordsAndCommittedOffsetsTwice() throws Exception {
        try (Admin admin = Admin.create(props(Map.of()))) {
            admin.createTopics(List.of(new NewTopic(SNAP_TOPIC, 1, (short) 1))).all().get();
        }
        // Connected from before the snapshot to after each restore: it reconnects and goes on. Not
        // idempotent: the restore undoes its writes after the snapshot, and an idempotent
        // producer's sequence numbers would then run ahead of the broker's.
        try (KafkaProducer<String, String> p = new KafkaProducer<>(props(Map.of("client.id", "snap-app",
                "enable.idempotence", "false", "acks", "all", "max.block.ms", "30000")),
                new StringSerializer(), new StringSerializer())) {
            List<String> written = new ArrayList<>();
            for (int i = 0; i < 10; i++) {
                long offset = p.send(new ProducerRecord<>(SNAP_TOPIC, 0, null, "v" + i)).get().offset();
                written.add(offset + ":v" + i);
            }
            assertEquals(written.subList(0, 6), groupRead(6));

            assertTrue(gregor.snapshot("before-more").contains("\"name\":\"before-more\""));
            assertTrue(gregor.snapshots().contains("\"name\":\"before-more\""), gregor.snapshots());
            List<Object> atSnapshot = snapState();
            assertEquals(List.of(Set.of(SNAP_TOPIC), written, 10L, 6L), atSnapshot);

            // After the snapshot: more records, the group commits further, another topic.
            for (int i = 0; i < 5; i++) {
                p.send(new ProducerRecord<>(SNAP_TOPIC, 0, null, "later")).get();
            }
            assertEquals(8, groupRead(8).size());
            try (Admin admin = Admin.create(props(Map.of()))) {
                admin.createTopics(List.of(new NewTopic("snap-extra", 2, (short) 1))).all().get();
            }
            List<Object> changed = snapState();
            assertEquals(List.of(Set.of(SNAP_TOPIC, "snap-extra"), 15L, 14L),
                    List.of(changed.get(0), changed.get(2), changed.get(3)));

            for (int restore = 1; restore <= 2; restore++) {
                assertTrue(gregor.restore("before-more").contains("\"name\":\"before-more\""));
                assertEquals(atSnapshot, snapState(), "restore " + restore);
                // A member of the group resumes at the snapshot's committed offset.
                assertEquals(written.subList(6, 10), groupRead(4), "restore " + restore);
                // The restore closed the producer's connection: its next record follows the
                // snapshot's last.
                RecordMetadata md = p.send(new ProducerRecord<>(SNAP_TOPIC, 0, null, "after-" + restore)).get();
                assertEquals(10, md.offset(), "restore " + restore);
            }
        }
        assertTrue(gregor.deleteSnapshot("before-more").contains("\"deleted\":\"before-more\""));
        GregorExtension.GregorException gone = assertThrows(GregorExtension.GregorException.class,
                () -> gregor.restore("before-more"));
        assertEquals(404, gone.status);
    }

    @Test
    @Order(6)
    void anIdempotentProducerThatWroteAfterTheSnapshotGoesOnAfterARestore() throws Exception {
        try (Admin admin = Admin.create(props(Map.of()))) {
            admin.createTopics(List.of(new NewTopic("snap-idempotent", 1, (short) 1))).all().get();
        }
        try (KafkaProducer<String, String> p = producer("snap-idempotent-app")) {
            assertEquals(0, p.send(new ProducerRecord<>("snap-idempotent", 0, null, "kept")).get().offset());
            gregor.snapshot("idempotent");
            assertEquals(1, p.send(new ProducerRecord<>("snap-idempotent", 0, null, "undone")).get().offset());
            gregor.restore("idempotent");
            // Its sequence numbers are ahead of the snapshot's: the broker answers
            // OUT_OF_ORDER_SEQUENCE_NUMBER, which kafka-clients retries through (librdkafka treats
            // it as fatal, see test_pytest_gregor.py); the record follows the snapshot's last.
            assertEquals(1, p.send(new ProducerRecord<>("snap-idempotent", 0, null, "next")).get().offset());
        }
        String produced = gregor.journal("client_id=snap-idempotent-app&api=Produce");
        assertTrue(produced.contains("\"error_codes\":[45]"), produced);
        gregor.deleteSnapshot("idempotent");
    }
}
