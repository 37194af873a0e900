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

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
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
 * finds an empty broker; faults, the journal, seed data, await and the manual clock. Run by
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
}
