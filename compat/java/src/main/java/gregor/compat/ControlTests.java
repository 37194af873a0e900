package gregor.compat;

import static gregor.compat.Report.check;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Future;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;

/**
 * gregor's test control plane (the admin listener of a broker started with {@code --clock manual}):
 *
 * <ul>
 *   <li>a Produce whose answer is lost ({@code POST /v1/faults}, action {@code close_after}: the
 *       write happens, the connection closes instead of answering): the idempotent producer
 *       resends the batch with its sequence numbers, and every record is in the log exactly once;
 *   <li>a consumer-group member that stopped without leaving (closed with REMAIN_IN_GROUP, as a
 *       crashed process would) is expired by advancing the broker's clock 46 s past its 45 s
 *       session timeout, in a fraction of a second of wall time;
 *   <li>{@code POST /v1/reset} between 100 "tests" that each create a topic and produce to it:
 *       every test starts on an empty broker; the total time the resets took is printed.
 * </ul>
 *
 * Kafka has no control plane, so this group runs against gregor only. The client side is
 * calibrated by Kafka's own behaviour: a member closed with REMAIN_IN_GROUP stays in its group
 * until its session times out, a topic created after another was deleted is a new one, and a
 * connection that drops with a Produce in flight is what the producer meets when a Kafka broker
 * fails after writing (the retry is answered from the broker's idempotence state, as Kafka's
 * ProducerStateManager answers a duplicate of one of the last five batches).
 */
final class ControlTests {
    private final String bootstrap;
    private final AdminApi admin;
    private final String label;

    private ControlTests(String bootstrap, String admin, String label) {
        this.bootstrap = bootstrap;
        this.admin = new AdminApi(admin);
        this.label = label;
    }

    static void run(Map<String, String> args, Report report) {
        ControlTests t = new ControlTests(
                Main.required(args, "bootstrap"), Main.required(args, "admin"), Main.required(args, "label"));
        report.run(t.label + "/idempotent-producer-through-a-lost-produce-response", t::lostProduceResponse);
        report.run(t.label + "/member-expired-by-a-46s-clock-advance", t::memberExpiredByClockAdvance);
        report.run(t.label + "/reset-between-100-tests", t::resetBetweenTests);
    }

    private static final Pattern RULE_ID = Pattern.compile("\"id\":([0-9]+)");
    /** One rule of GET /v1/faults (flat JSON objects: their fields are scalars). */
    private static final Pattern RULE = Pattern.compile("\\{[^{}]*\\}");
    private static final Pattern FIRED = Pattern.compile("\"fired\":([0-9]+)");

    void lostProduceResponse() throws Exception {
        String topic = label.replace('.', '-') + "-lost-response";
        int count = 100;
        try (Admin a = Clients.admin(bootstrap, "control-admin")) {
            a.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get();
        }
        Matcher armed = RULE_ID.matcher(admin.post("/v1/faults",
                "{\"api\": \"Produce\", \"topic\": \"" + topic + "\", \"times\": 1, \"action\": \"close_after\"}"));
        check(armed.find(), "no rule id in the answer");
        String rule = armed.group(1);
        // The idempotent acks=all producer (Clients.producer); a flush per ten records makes
        // several Produce requests, the first of which loses its answer.
        List<Future<RecordMetadata>> acks = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> p = Clients.producer(bootstrap, "control-lost-response", "none")) {
            for (int i = 0; i < count; i++) {
                byte[] value = Integer.toString(i).getBytes(StandardCharsets.UTF_8);
                acks.add(p.send(new ProducerRecord<>(topic, 0, null, value)));
                if (i % 10 == 9) {
                    p.flush();
                }
            }
        }
        for (int i = 0; i < count; i++) {
            long offset = acks.get(i).get().offset();
            check(offset == i, "record %d acknowledged at offset %d", i, offset);
        }
        String faults = admin.get("/v1/faults");
        Matcher rules = RULE.matcher(faults);
        String fired = null;
        while (rules.find()) {
            if (rules.group().matches(".*\"id\":" + rule + "[,}].*")) {
                Matcher m = FIRED.matcher(rules.group());
                fired = m.find() ? m.group(1) : "?";
            }
        }
        check("1".equals(fired), "rule %s fired %s times, expected once: %s", rule, fired, faults);
        // The whole log, to its end: a batch appended twice would be in it.
        TopicPartition tp = new TopicPartition(topic, 0);
        List<Integer> log = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(bootstrap, "control-lost-response-verify")) {
            for (var r : Clients.readFromBeginning(c, List.of(tp), count, AdminApi.WAIT)) {
                check(r.offset() == log.size(), "record at offset %d after %d records", r.offset(), log.size());
                log.add(Integer.parseInt(new String(r.value(), StandardCharsets.UTF_8)));
            }
            long end = c.endOffsets(List.of(tp)).get(tp);
            check(end == count, "the log ends at offset %d, %d records were sent", end, count);
        }
        List<Integer> expected = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            expected.add(i);
        }
        check(log.equals(expected), "the log holds %d records %s..., expected 0..%d once each in order",
                log.size(), log.subList(0, Math.min(log.size(), 12)), count - 1);
    }

    private static ConsumerGroupDescription describe(Admin a, String group) {
        try {
            return a.describeConsumerGroups(List.of(group)).all().get().get(group);
        } catch (Exception e) {
            throw new RuntimeException(e);
        }
    }

    void memberExpiredByClockAdvance() throws Exception {
        String topic = label.replace('.', '-') + "-expiry";
        String group = topic + "-group";
        try (Admin a = Clients.admin(bootstrap, "control-admin")) {
            a.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get();
            KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(bootstrap, "control-member", Map.of(
                    ConsumerConfig.GROUP_ID_CONFIG, group,
                    ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic",
                    ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "45000"));
            consumer.subscribe(List.of(topic));
            long deadline = System.nanoTime() + AdminApi.WAIT.toNanos();
            while (consumer.assignment().isEmpty()) {
                check(System.nanoTime() < deadline, "the member got no partitions");
                consumer.poll(Duration.ofMillis(100));
            }
            // Gone without a LeaveGroup, as a crashed process: Kafka keeps it for its session.
            closeRemainingInGroup(consumer);
            check(describe(a, group).members().size() == 1, "the member left: %s", describe(a, group));
            long start = System.nanoTime();
            admin.post("/v1/clock/advance", "{\"ms\": 46000}");
            AdminApi.await("the member to expire", () -> describe(a, group).members().isEmpty());
            long tookMs = (System.nanoTime() - start) / 1_000_000;
            System.out.println("member expired " + tookMs + " ms (wall) after advancing the clock 46 s");
        }
    }

    /**
     * close(CloseOptions.groupMembershipOperation(REMAIN_IN_GROUP)) (KIP-1092, kafka-clients 4.1+),
     * through reflection because these sources also build against kafka-clients 3.9.
     */
    @SuppressWarnings({"unchecked", "rawtypes"})
    private static void closeRemainingInGroup(KafkaConsumer<byte[], byte[]> consumer) throws Exception {
        Class<?> options = Class.forName("org.apache.kafka.clients.consumer.CloseOptions");
        Class operation = Class.forName("org.apache.kafka.clients.consumer.CloseOptions$GroupMembershipOperation");
        Object remain = Enum.valueOf(operation, "REMAIN_IN_GROUP");
        Object closeOptions = options.getMethod("groupMembershipOperation", operation).invoke(null, remain);
        KafkaConsumer.class.getMethod("close", options).invoke(consumer, closeOptions);
    }

    private static final Pattern TOOK_MS = Pattern.compile("\"took_ms\":([0-9.]+)");

    void resetBetweenTests() throws Exception {
        long resetNanos = 0;
        double brokerMs = 0;
        int tests = 100;
        try (Admin a = Clients.admin(bootstrap, "control-reset-admin");
             KafkaProducer<byte[], byte[]> p = Clients.producer(bootstrap, "control-reset-producer", "none")) {
            admin.post("/v1/reset", "{}"); // what the case before left
            for (int i = 0; i < tests; i++) {
                // Each "test" finds an empty broker, makes a topic of its own and writes to it.
                check(a.listTopics().names().get().isEmpty(), "test %d: topics left by the previous test", i);
                String topic = "reset-test-" + i;
                a.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get();
                long offset = p.send(new ProducerRecord<>(topic, ("r" + i).getBytes(StandardCharsets.UTF_8)))
                        .get().offset();
                check(offset == 0, "test %d: first record at offset %d", i, offset);
                long start = System.nanoTime();
                String answer = admin.post("/v1/reset", "{}");
                resetNanos += System.nanoTime() - start;
                Matcher took = TOOK_MS.matcher(answer);
                check(took.find(), "no took_ms in %s", answer);
                brokerMs += Double.parseDouble(took.group(1));
            }
            check(a.listTopics().names().get().isEmpty(), "topics left after the last reset");
        }
        System.out.printf("%d resets took %.1f ms in total (%.2f ms each) as the client saw them, %.1f ms of it in the broker%n",
                tests, resetNanos / 1e6, resetNanos / 1e6 / tests, brokerMs);
    }
}
