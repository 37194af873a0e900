package gregor.compat;

import java.io.FileInputStream;
import java.io.InputStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.errors.AuthenticationException;
import org.apache.kafka.common.errors.TopicExistsException;

/**
 * Producer, consumer (in a group) and admin client over a secured listener, with the client
 * settings of a properties file (security.protocol, sasl.*, ssl.*):
 *
 * <pre>
 *   security --bootstrap B --label L --client-config F [--bad-config G] [--reauthentications N]
 * </pre>
 *
 * <ul>
 *   <li>{@code L/bad-credentials-refused} (with --bad-config): a producer with wrong credentials
 *       fails with an AuthenticationException (run first: nothing of it may reach the topic).
 *   <li>{@code L/produce-consume}: a topic created through the admin client, 200 records through
 *       the idempotent producer (acks=all), read back in order by a consumer in a group (so
 *       FindCoordinator, JoinGroup and the coordinator's endpoint go through the same listener).
 *   <li>{@code L/reauthenticates-and-keeps-producing} (with --reauthentications N): see
 *       {@link #reauthenticates}.
 * </ul>
 */
final class SecurityTests {
    private SecurityTests() {}

    private static final int RECORDS = 200;

    static Map<String, String> load(String path) throws Exception {
        Properties p = new Properties();
        try (InputStream in = new FileInputStream(path)) {
            p.load(in);
        }
        Map<String, String> m = new HashMap<>();
        p.stringPropertyNames().forEach(k -> m.put(k, p.getProperty(k)));
        return m;
    }

    static void run(Map<String, String> args, Report report) throws Exception {
        String bootstrap = Main.required(args, "bootstrap");
        String label = Main.required(args, "label");
        Map<String, String> security = load(Main.required(args, "client-config"));
        String topic = label.replaceAll("[^A-Za-z0-9._-]", "-");
        // The refusal first: the round trip after it reads exactly its own records from offset 0,
        // so a record the intruder got in would show.
        String bad = args.get("bad-config");
        if (bad != null) {
            Map<String, String> badSecurity = load(bad);
            report.run(label + "/bad-credentials-refused", () -> refused(bootstrap, topic, badSecurity));
        }
        report.run(label + "/produce-consume", () -> produceConsume(bootstrap, topic, security));
        if (args.containsKey("reauthentications")) {
            int times = Integer.parseInt(args.get("reauthentications"));
            report.run(label + "/reauthenticates-and-keeps-producing",
                () -> reauthenticates(bootstrap, topic + "-reauth", security, times));
        }
    }

    /**
     * KIP-368: with a short session lifetime (connections.max.reauth.ms on the broker) the
     * producer re-authenticates on its live connections and keeps producing; a broker that did
     * not let it would close them and fail the sends. Produces until the client counted
     * {@code times} successful re-authentications, every record acknowledged.
     */
    private static void reauthenticates(String bootstrap, String topic, Map<String, String> security, int times)
            throws Exception {
        Map<String, String> settings = new HashMap<>(security);
        settings.put("metadata.max.age.ms", "600000"); // no connection churn of its own
        int sent = 0;
        try (KafkaProducer<byte[], byte[]> producer = Clients.producer(bootstrap, topic + "-producer", "none", settings)) {
            long deadline = System.nanoTime() + Duration.ofSeconds(90).toNanos();
            while (reauthentications(producer) < times && System.nanoTime() < deadline) {
                producer.send(new ProducerRecord<>(topic, ("k" + sent).getBytes(), ("v" + sent).getBytes()))
                    .get(30, TimeUnit.SECONDS);
                sent++;
                Thread.sleep(100); // a steady trickle, so the connection is in use when its session ends
            }
            Report.check(reauthentications(producer) >= times, "%.0f re-authentications within 90 s, %d records",
                reauthentications(producer), sent);
        }
    }

    /** The client's successful-reauthentication-total (its selector's metric). */
    private static double reauthentications(KafkaProducer<byte[], byte[]> producer) {
        return producer.metrics().entrySet().stream()
            .filter(e -> e.getKey().name().equals("successful-reauthentication-total"))
            .mapToDouble(e -> ((Number) e.getValue().metricValue()).doubleValue())
            .sum();
    }

    private static Admin admin(String bootstrap, Map<String, String> security) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        p.putAll(security);
        return Admin.create(p);
    }

    private static void produceConsume(String bootstrap, String topic, Map<String, String> security) throws Exception {
        try (Admin admin = admin(bootstrap, security)) {
            try {
                admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get(30, TimeUnit.SECONDS);
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof TopicExistsException)) {
                    throw e;
                }
            }
        }
        try (KafkaProducer<byte[], byte[]> producer = Clients.producer(bootstrap, topic + "-producer", "none", security)) {
            for (int i = 0; i < RECORDS; i++) {
                producer.send(new ProducerRecord<>(topic, ("k" + i).getBytes(), ("v" + i).getBytes()));
            }
            producer.flush();
            producer.send(new ProducerRecord<>(topic, "last".getBytes(), "last".getBytes())).get(30, TimeUnit.SECONDS);
        }
        Map<String, String> consumerSettings = new HashMap<>(security);
        consumerSettings.put(ConsumerConfig.GROUP_ID_CONFIG, topic + "-group");
        List<ConsumerRecord<byte[], byte[]>> records = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(bootstrap, topic + "-consumer", consumerSettings)) {
            consumer.subscribe(List.of(topic));
            long deadline = System.nanoTime() + Duration.ofSeconds(40).toNanos();
            while (records.size() < RECORDS + 1 && System.nanoTime() < deadline) {
                consumer.poll(Duration.ofMillis(200)).forEach(records::add);
            }
            consumer.commitSync();
        }
        Report.check(records.size() == RECORDS + 1, "read %d records, expected %d", records.size(), RECORDS + 1);
        for (int i = 0; i < RECORDS; i++) {
            String value = new String(records.get(i).value());
            Report.check(value.equals("v" + i) && records.get(i).offset() == i,
                "record %d: %s at offset %d", i, value, records.get(i).offset());
        }
    }

    private static void refused(String bootstrap, String topic, Map<String, String> security) throws Exception {
        Map<String, String> settings = new HashMap<>(security);
        settings.put("max.block.ms", "15000");
        try (KafkaProducer<byte[], byte[]> producer = Clients.producer(bootstrap, topic + "-intruder", "none", settings)) {
            try {
                producer.send(new ProducerRecord<>(topic, "x".getBytes(), "intruder".getBytes())).get(30, TimeUnit.SECONDS);
                Report.check(false, "a producer with wrong credentials was served");
            } catch (ExecutionException e) {
                Report.check(e.getCause() instanceof AuthenticationException, "expected an AuthenticationException, got %s",
                    Report.describe(e));
            } catch (AuthenticationException e) {
                // send() itself may throw once the metadata fetch failed authentication.
            }
        }
    }
}
