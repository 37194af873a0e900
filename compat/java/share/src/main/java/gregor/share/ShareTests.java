package gregor.share;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ListShareGroupOffsetsSpec;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.SharePartitionOffsetInfo;
import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.GroupIdNotFoundException;
import org.apache.kafka.common.errors.GroupNotEmptyException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Share groups (KIP-932) through Kafka 4.4's KafkaShareConsumer, as an application uses them:
 * implicit acknowledgement; explicit ACCEPT, RELEASE and REJECT; two consumers on one partition
 * never holding the same record; records a consumer left without acknowledging delivered again;
 * a record released past group.share.delivery.count.limit (5) archived. Each case has its own
 * topic and group; the group starts at the earliest offset (share.auto.offset.reset, a group
 * config). "Nothing more is delivered" is checked without waiting on time: a marker record
 * produced afterwards must be the next and only record a consumer gets. In implicit mode a
 * consumer calls commitSync before close: Kafka 4.4 accepts a poll's records at the next poll or
 * commit, and close alone releases them. The admin client's share-group offset calls
 * (listShareGroupOffsets, alterShareGroupOffsets, deleteShareGroupOffsets) move and forget where
 * a group starts, refused while it has a member.
 *
 * Usage: ShareTests --bootstrap B --label L, or with --topic T and one of: --setup-group G (a group
 * with one member that read one record, for the kafka-share-groups cases of run.sh, printing
 * READY and staying until stdin closes); --hold-group G (an explicit-mode member that acquired
 * three records and prints HELD, never acknowledging them, for run.sh to kill -9); --verify-group
 * G (those three records come to the next member, delivered a second time).
 */
public final class ShareTests {
    private static final Duration POLL = Duration.ofMillis(500);
    private static final long DEADLINE_MS = 60_000;

    private final String bootstrap;
    private final String label;
    private int passed;
    private int failed;

    private ShareTests(String bootstrap, String label) {
        this.bootstrap = bootstrap;
        this.label = label;
    }

    public static void main(String[] argv) throws Exception {
        Map<String, String> args = new HashMap<>();
        for (int i = 0; i + 1 < argv.length; i += 2) {
            args.put(argv[i].replaceFirst("^--", ""), argv[i + 1]);
        }
        ShareTests t = new ShareTests(args.get("bootstrap"), args.getOrDefault("label", "share"));
        if (args.containsKey("setup-group")) {
            t.member(args.get("setup-group"), args.get("topic"));
            return;
        }
        if (args.containsKey("hold-group")) {
            t.hold(args.get("hold-group"), args.get("topic"));
            return;
        }
        if (args.containsKey("verify-group")) {
            String group = args.get("verify-group"), topic = args.get("topic");
            t.run("killed-consumer-records-redelivered", n -> t.verifyRedelivered(group, topic));
            System.exit(t.failed == 0 ? 0 : 1);
        }
        t.run("implicit-ack", t::implicitAck);
        t.run("explicit-accept-release-reject", t::explicitAcks);
        t.run("two-consumers-one-partition", t::twoConsumers);
        t.run("redelivered-after-consumer-exit", t::redeliveredAfterExit);
        t.run("delivery-count-limit-archives", t::deliveryCountLimit);
        t.run("admin-share-group-offsets", t::adminOffsets);
        System.exit(t.failed == 0 ? 0 : 1);
    }

    interface Case {
        void run(String name) throws Exception;
    }

    private void run(String name, Case c) {
        long start = System.nanoTime();
        String full = label + "/" + name;
        try {
            c.run(label.replace('.', '-') + "-" + name);
            passed++;
            System.out.println("PASS " + full + " (" + (System.nanoTime() - start) / 1_000_000 + " ms)");
        } catch (Throwable e) {
            failed++;
            StringBuilder why = new StringBuilder();
            for (Throwable x = e; x != null; x = x.getCause()) {
                why.append(why.length() > 0 ? " <- " : "").append(x.getClass().getName()).append(": ").append(x.getMessage());
                if (x.getCause() == x) {
                    break;
                }
            }
            System.out.println("FAIL " + full + ": " + why.toString().replace('\n', ' '));
        }
        System.out.flush();
    }

    private static void check(boolean condition, String format, Object... args) {
        if (!condition) {
            throw new AssertionError(String.format(format, args));
        }
    }

    // ---- helpers ------------------------------------------------------------------------------

    private Admin admin() {
        return Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap));
    }

    /** A one-partition topic, and a group that starts at its earliest offset. */
    private void setup(String topic, String group) throws Exception {
        try (Admin admin = admin()) {
            admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get();
            ConfigResource resource = new ConfigResource(ConfigResource.Type.GROUP, group);
            AlterConfigOp earliest = new AlterConfigOp(
                    new ConfigEntry("share.auto.offset.reset", "earliest"), AlterConfigOp.OpType.SET);
            admin.incrementalAlterConfigs(Map.of(resource, List.of(earliest))).all().get();
        }
    }

    /** A case's topic and group (both named `name`), with `values` in the topic. */
    private String prepare(String name, List<String> values) throws Exception {
        setup(name, name);
        produce(name, values);
        return name;
    }

    private void produce(String topic, List<String> values) throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.LINGER_MS_CONFIG, "0");
        try (KafkaProducer<String, String> producer =
                new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
            for (String v : values) {
                producer.send(new ProducerRecord<>(topic, 0, null, v)).get();
            }
        }
    }

    private static List<String> values(String prefix, int n) {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            out.add(prefix + i);
        }
        return out;
    }

    private KafkaShareConsumer<String, String> consumer(String group, String topic, boolean explicit) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put("share.acknowledgement.mode", explicit ? "explicit" : "implicit");
        KafkaShareConsumer<String, String> c =
                new KafkaShareConsumer<>(p, new StringDeserializer(), new StringDeserializer());
        c.subscribe(List.of(topic));
        return c;
    }

    /** Polls until some records come (within the deadline). */
    private static List<ConsumerRecord<String, String>> pollSome(KafkaShareConsumer<String, String> c) {
        long end = System.currentTimeMillis() + DEADLINE_MS;
        while (System.currentTimeMillis() < end) {
            List<ConsumerRecord<String, String>> got = new ArrayList<>();
            c.poll(POLL).forEach(got::add);
            if (!got.isEmpty()) {
                return got;
            }
        }
        throw new AssertionError("no record delivered within " + DEADLINE_MS + " ms");
    }

    /**
     * Polls until n records came, each checked to be its delivery number `delivery`; with an
     * acknowledgement type (explicit mode), each is acknowledged so and committed after its poll.
     */
    private static List<String> read(KafkaShareConsumer<String, String> c, int n, int delivery, AcknowledgeType ack) {
        List<String> got = new ArrayList<>();
        while (got.size() < n) {
            for (ConsumerRecord<String, String> r : pollSome(c)) {
                check(deliveries(r) == delivery, "%s delivered with count %d", r.value(), deliveries(r));
                got.add(r.value());
                if (ack != null) {
                    c.acknowledge(r, ack);
                }
            }
            if (ack != null) {
                c.commitSync();
            }
        }
        return got;
    }

    private static short deliveries(ConsumerRecord<String, String> r) {
        return r.deliveryCount().orElse((short) -1);
    }

    /** The next records a consumer gets are exactly the marker: nothing else was left. */
    private void expectOnlyMarker(String group, String topic) throws Exception {
        produce(topic, List.of("marker"));
        try (KafkaShareConsumer<String, String> c = consumer(group, topic, false)) {
            List<ConsumerRecord<String, String>> got = pollSome(c);
            List<String> vs = got.stream().map(ConsumerRecord::value).toList();
            check(vs.equals(List.of("marker")), "expected only the marker, got %s", vs);
            c.commitSync();
        }
    }

    // ---- cases --------------------------------------------------------------------------------

    /** Implicit mode: what a poll returned is accepted by the next poll (or close). */
    private void implicitAck(String name) throws Exception {
        String topic = prepare(name, values("v", 10)), group = name;
        List<String> seen = new ArrayList<>();
        try (KafkaShareConsumer<String, String> c = consumer(group, topic, false)) {
            seen.addAll(read(c, 10, 1, null));
            // The last poll's records are accepted by the next poll or commitSync: close alone
            // releases them (Kafka 4.4).
            c.commitSync();
        }
        check(seen.equals(values("v", 10)), "read %s", seen);
        expectOnlyMarker(group, topic);
    }

    /** ACCEPT is final, RELEASE delivers again (delivery count 2), REJECT never again. */
    private void explicitAcks(String name) throws Exception {
        String topic = prepare(name, values("v", 9)), group = name;
        Map<String, Integer> firstRound = new HashMap<>();
        try (KafkaShareConsumer<String, String> c = consumer(group, topic, true)) {
            while (firstRound.size() < 9) {
                for (ConsumerRecord<String, String> r : pollSome(c)) {
                    int i = Integer.parseInt(r.value().substring(1));
                    firstRound.put(r.value(), (int) deliveries(r));
                    c.acknowledge(r, i < 3 ? AcknowledgeType.ACCEPT : i < 6 ? AcknowledgeType.RELEASE : AcknowledgeType.REJECT);
                }
                c.commitSync();
            }
            List<String> again = read(c, 3, 2, AcknowledgeType.ACCEPT);
            Collections.sort(again);
            check(again.equals(List.of("v3", "v4", "v5")), "released records redelivered: %s", again);
        }
        check(firstRound.values().stream().allMatch(d -> d == 1), "first deliveries: %s", firstRound);
        expectOnlyMarker(group, topic);
    }

    /** Two members read one partition together; no record reaches both (implicit acks). */
    private void twoConsumers(String name) throws Exception {
        String topic = prepare(name, values("v", 200)), group = name;
        Map<String, String> owner = new ConcurrentHashMap<>();
        List<String> duplicates = Collections.synchronizedList(new ArrayList<>());
        AtomicInteger total = new AtomicInteger();
        AtomicBoolean stop = new AtomicBoolean();
        List<Thread> threads = new ArrayList<>();
        List<Throwable> errors = Collections.synchronizedList(new ArrayList<>());
        for (String member : List.of("a", "b")) {
            Thread t = new Thread(() -> {
                try (KafkaShareConsumer<String, String> c = consumer(group, topic, false)) {
                    while (!stop.get()) {
                        for (ConsumerRecord<String, String> r : c.poll(POLL)) {
                            if (owner.putIfAbsent(r.value(), member) != null) {
                                duplicates.add(r.value() + "@" + member);
                            }
                            total.incrementAndGet();
                        }
                    }
                    c.commitSync();
                } catch (Throwable e) {
                    errors.add(e);
                }
            });
            t.start();
            threads.add(t);
        }
        long end = System.currentTimeMillis() + DEADLINE_MS;
        while (owner.size() < 200 && System.currentTimeMillis() < end && errors.isEmpty()) {
            Thread.sleep(50);
        }
        stop.set(true);
        for (Thread t : threads) {
            t.join();
        }
        check(errors.isEmpty(), "a consumer failed: %s", errors);
        check(owner.size() == 200, "read %d of 200 records", owner.size());
        check(duplicates.isEmpty() && total.get() == 200, "delivered twice: %s", duplicates);
        expectOnlyMarker(group, topic);
    }

    /** A consumer that closes without acknowledging: its records go to the next one. */
    private void redeliveredAfterExit(String name) throws Exception {
        String topic = prepare(name, values("v", 5)), group = name;
        Set<String> held = new HashSet<>();
        try (KafkaShareConsumer<String, String> c = consumer(group, topic, true)) {
            while (held.size() < 5) {
                for (ConsumerRecord<String, String> r : pollSome(c)) {
                    held.add(r.value());
                }
                if (held.size() < 5) {
                    throw new AssertionError("the first poll returned " + held + " only");
                }
            }
            // Closes without acknowledging anything.
        }
        List<String> again = secondDeliveries(group, topic, 5);
        check(new HashSet<>(again).equals(held), "redelivered %s, held %s", again, held);
        expectOnlyMarker(group, topic);
    }

    /** A record released five times (group.share.delivery.count.limit) is archived. */
    private void deliveryCountLimit(String name) throws Exception {
        String topic = prepare(name, List.of("poison")), group = name;
        List<Short> counts = new ArrayList<>();
        try (KafkaShareConsumer<String, String> c = consumer(group, topic, true)) {
            while (counts.size() < 5) {
                for (ConsumerRecord<String, String> r : pollSome(c)) {
                    counts.add(deliveries(r));
                    c.acknowledge(r, AcknowledgeType.RELEASE);
                }
                c.commitSync();
            }
        }
        check(counts.equals(List.of((short) 1, (short) 2, (short) 3, (short) 4, (short) 5)),
                "delivery counts %s", counts);
        expectOnlyMarker(group, topic);
    }

    /** The group's offsets as the admin client lists them: partition 0's start and lag. */
    private static String offsets(Admin admin, String group) throws Exception {
        Map<TopicPartition, SharePartitionOffsetInfo> all = admin
                .listShareGroupOffsets(Map.of(group, new ListShareGroupOffsetsSpec()))
                .partitionsToOffsetInfo(group).get();
        List<String> out = new ArrayList<>();
        all.forEach((tp, info) -> out.add(tp + " start " + (info == null ? "none" : info.startOffset()
                + " lag " + info.lag().map(String::valueOf).orElse("none"))));
        Collections.sort(out);
        return String.join(", ", out);
    }

    private static void expectCause(Class<? extends Throwable> cause, String what, Callable<?> call) throws Exception {
        try {
            call.call();
        } catch (ExecutionException e) {
            check(cause.isInstance(e.getCause()), "%s: %s", what, e.getCause());
            return;
        }
        throw new AssertionError(what + ": no error");
    }

    interface Callable<T> {
        T call() throws Exception;
    }

    /**
     * listShareGroupOffsets, alterShareGroupOffsets and deleteShareGroupOffsets: the start and lag
     * after a consumer read everything; moved back, the records from there are delivered again (a
     * first delivery: the state starts over); refused while a consumer is in the group; deleted,
     * the group has no offsets and starts again at the earliest offset.
     */
    private void adminOffsets(String name) throws Exception {
        String topic = prepare(name, values("v", 5)), group = name;
        TopicPartition tp = new TopicPartition(topic, 0);
        try (Admin admin = admin()) {
            try (KafkaShareConsumer<String, String> c = consumer(group, topic, false)) {
                read(c, 5, 1, null);
                c.commitSync();
                // A member: neither alter nor delete.
                expectCause(GroupNotEmptyException.class, "alter with a member",
                        () -> admin.alterShareGroupOffsets(group, Map.of(tp, 0L)).all().get());
                expectCause(GroupNotEmptyException.class, "delete with a member",
                        () -> admin.deleteShareGroupOffsets(group, Set.of(topic)).all().get());
            }
            // Nothing left (lag 0). Kafka 4.4 persists a start offset's advance with the next
            // write after the acknowledgement that made it, so it still shows 0; gregor 5.
            String after = offsets(admin, group);
            check(after.equals(tp + " start 5 lag 0") || after.equals(tp + " start 0 lag 0"),
                    "after reading all: %s", after);
            admin.alterShareGroupOffsets(group, Map.of(tp, 2L)).all().get();
            String moved = offsets(admin, group);
            check(moved.equals(tp + " start 2 lag 3"), "after the alter: %s", moved);
            try (KafkaShareConsumer<String, String> c = consumer(group, topic, false)) {
                List<String> again = read(c, 3, 1, null);
                c.commitSync();
                check(again.equals(List.of("v2", "v3", "v4")), "after the alter: %s", again);
            }
            admin.deleteShareGroupOffsets(group, Set.of(topic)).all().get();
            String deleted = offsets(admin, group);
            check(deleted.isEmpty(), "after the delete: %s", deleted);
            expectCause(GroupIdNotFoundException.class, "delete in a group that does not exist",
                    () -> admin.deleteShareGroupOffsets(name + "-none", Set.of(topic)).all().get());
        }
        try (KafkaShareConsumer<String, String> c = consumer(group, topic, false)) {
            List<String> again = read(c, 5, 1, null);
            c.commitSync();
            check(again.equals(values("v", 5)), "after the delete: %s", again);
        }
    }

    /** Acquires the three records of a new topic and holds them until the JVM is killed. */
    private void hold(String group, String topic) throws Exception {
        setup(topic, group);
        produce(topic, values("held", 3));
        KafkaShareConsumer<String, String> c = consumer(group, topic, true);
        List<ConsumerRecord<String, String>> got = pollSome(c);
        check(got.size() == 3, "acquired %d records", got.size());
        System.out.println("HELD");
        System.out.flush();
        Thread.sleep(Long.MAX_VALUE);
    }

    /** After the holder was killed: its records come to another member, a second delivery. */
    private void verifyRedelivered(String group, String topic) throws Exception {
        List<String> again = secondDeliveries(group, topic, 3);
        check(again.equals(values("held", 3)), "redelivered %s", again);
        expectOnlyMarker(group, topic);
    }

    /** The next n records a new member gets, each checked to be a second delivery, accepted. */
    private List<String> secondDeliveries(String group, String topic, int n) throws Exception {
        List<String> again;
        try (KafkaShareConsumer<String, String> c = consumer(group, topic, false)) {
            again = read(c, n, 2, null);
            c.commitSync();
        }
        Collections.sort(again);
        return again;
    }

    /** For run.sh's kafka-share-groups cases: one member that read one record, until stdin closes. */
    private void member(String group, String topic) throws Exception {
        setup(topic, group);
        produce(topic, List.of("one"));
        try (KafkaShareConsumer<String, String> c = consumer(group, topic, false)) {
            pollSome(c);
            // Accepted before READY: kafka-share-groups --describe then shows the start past it.
            c.commitSync();
            System.out.println("READY");
            System.out.flush();
            Thread reader = new Thread(() -> {
                try {
                    while (System.in.read() >= 0) {
                        // until EOF
                    }
                } catch (Exception ignored) {
                    // closing
                }
            });
            reader.start();
            while (reader.isAlive()) {
                c.poll(POLL);
            }
        }
        System.out.println("CLOSED");
    }
}
