package gregor.compat;

import java.time.Duration;
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
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;

/**
 * One client action against a broker with an authorizer, as the principal of a properties file,
 * and what came of it: run.sh changes the ACLs with kafka-acls.sh between these steps.
 *
 * <pre>
 *   acl-client --bootstrap B --label L --client-config F --action A --topic T
 *              [--group G] [--transactional-id X] --expect ok|ExceptionSimpleName
 * </pre>
 *
 * <ul>
 *   <li>{@code create-topic}: the admin client creates T (one partition).
 *   <li>{@code produce}: one record to T through the suite's idempotent producer (acks=all).
 *   <li>{@code consume}: a consumer in group G subscribed to T polls until it has a record.
 *   <li>{@code transaction}: a transactional producer (X) commits one record to T.
 * </ul>
 *
 * With {@code --expect ok} the action must succeed; otherwise it must fail with an exception of
 * that simple class name somewhere in its cause chain (e.g. TopicAuthorizationException).
 */
final class AclTests {
    private AclTests() {}

    static void run(Map<String, String> args, Report report) throws Exception {
        String bootstrap = Main.required(args, "bootstrap");
        String label = Main.required(args, "label");
        String action = Main.required(args, "action");
        String topic = Main.required(args, "topic");
        String expect = Main.required(args, "expect");
        Map<String, String> settings = new HashMap<>(SecurityTests.load(Main.required(args, "client-config")));
        settings.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        report.run(label, () -> {
            Throwable failure = null;
            try {
                switch (action) {
                    case "create-topic" -> createTopic(settings, topic);
                    case "produce" -> produce(settings, topic, null);
                    case "transaction" -> produce(settings, topic, Main.required(args, "transactional-id"));
                    case "consume" -> consume(settings, topic, Main.required(args, "group"));
                    default -> throw new IllegalArgumentException("unknown --action " + action);
                }
            } catch (Report.CheckFailed e) {
                throw e;
            } catch (Exception e) {
                failure = e;
            }
            if (expect.equals("ok")) {
                Report.check(failure == null, "expected success, got %s", failure == null ? "" : Report.describe(failure));
            } else {
                Report.check(failure != null, "expected %s, but the %s succeeded", expect, action);
                Report.check(inChain(failure, expect), "expected %s, got %s", expect, Report.describe(failure));
            }
        });
    }

    private static boolean inChain(Throwable e, String simpleName) {
        for (Throwable t = e; t != null; t = t.getCause() == t ? null : t.getCause()) {
            if (t.getClass().getSimpleName().equals(simpleName)) {
                return true;
            }
        }
        return false;
    }

    private static void createTopic(Map<String, String> settings, String topic) throws Exception {
        Properties p = new Properties();
        p.putAll(settings);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        try (Admin admin = Admin.create(p)) {
            admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get(30, TimeUnit.SECONDS);
        }
    }

    private static void produce(Map<String, String> settings, String topic, String transactionalId) throws Exception {
        Map<String, String> p = new HashMap<>(settings);
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "20000");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        if (transactionalId != null) {
            p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
        }
        String bootstrap = settings.get(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG);
        try (KafkaProducer<byte[], byte[]> producer = Clients.producer(bootstrap, topic + "-producer", "none", p)) {
            ProducerRecord<byte[], byte[]> record = new ProducerRecord<>(topic, "k".getBytes(), "v".getBytes());
            if (transactionalId == null) {
                unwrap(() -> producer.send(record).get(30, TimeUnit.SECONDS));
                return;
            }
            producer.initTransactions();
            producer.beginTransaction();
            unwrap(() -> producer.send(record).get(30, TimeUnit.SECONDS));
            producer.commitTransaction();
        }
    }

    private interface Call {
        void run() throws Exception;
    }

    /** The client's own exception rather than the future's ExecutionException wrapper. */
    private static void unwrap(Call call) throws Exception {
        try {
            call.run();
        } catch (ExecutionException e) {
            throw e.getCause() instanceof Exception cause ? cause : e;
        }
    }

    private static void consume(Map<String, String> settings, String topic, String group) {
        Map<String, String> p = new HashMap<>(settings);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "20000");
        String bootstrap = settings.get(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG);
        try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(bootstrap, group + "-consumer", p)) {
            consumer.subscribe(List.of(topic));
            // An authorization failure is thrown from poll; success is a record.
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            int read = 0;
            while (read == 0 && System.nanoTime() < deadline) {
                read += consumer.poll(Duration.ofMillis(200)).count();
            }
            Report.check(read > 0, "no record within 30 s");
            consumer.commitSync();
        }
    }
}
