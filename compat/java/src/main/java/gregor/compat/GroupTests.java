package gregor.compat;

import static gregor.compat.Report.check;

import java.io.BufferedReader;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.InputStreamReader;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BooleanSupplier;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.ListConsumerGroupsOptions;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.ConsumerGroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.GroupIdNotFoundException;
import org.apache.kafka.common.errors.GroupNotEmptyException;
import org.apache.kafka.common.errors.FencedInstanceIdException;
import org.apache.kafka.common.errors.GroupSubscribedToTopicException;
import org.apache.kafka.common.errors.InconsistentGroupProtocolException;
import org.apache.kafka.common.errors.InvalidSessionTimeoutException;
import org.apache.kafka.common.errors.OffsetMetadataTooLarge;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.errors.UnknownMemberIdException;

/**
 * Consumer groups with the classic protocol (JoinGroup/SyncGroup/Heartbeat/LeaveGroup,
 * OffsetCommit/OffsetFetch) and the admin side (ListGroups, DescribeGroups, DeleteGroups,
 * OffsetDelete, admin OffsetCommit). Sub-commands:
 *
 * <pre>
 *   groups          --bootstrap B --label L [--quick true] [--only CASE,...]
 *                   the in-JVM cases (quick: the cheaper ones, for the second client version)
 *   group-member    --bootstrap B --group G --topic T [--commit N [--also-commit T2]] [--stop-file F]
 *                   [--protocol classic|consumer]
 *                   one member in its own JVM (the SIGKILL case, run.sh's kafka-consumer-groups cases);
 *                   prints "ASSIGNED p,p,..." on each assignment and "COMMITTED" after --commit
 *   groups-setup    --bootstrap B --topic T --partitions P --records N    topic with N records per partition
 *   groups-restart  --bootstrap B --step commit|verify --round R --label L  commits that must survive a broker restart
 * </pre>
 *
 * Record values are "p&lt;partition&gt;-&lt;index&gt;", so a record's place is checked from its content.
 */
final class GroupTests {
    private static final Duration JOIN_TIMEOUT = Duration.ofSeconds(30);

    private final String bootstrap;
    private final String label;
    private final String prefix;
    /** --only a,b: run just these cases (for debugging one case). */
    private Set<String> only = Set.of();

    private GroupTests(String bootstrap, String label) {
        this.bootstrap = bootstrap;
        this.label = label;
        this.prefix = label.replace('.', '-') + "-";
    }

    static void run(Map<String, String> args, Report report) {
        GroupTests t = new GroupTests(Main.required(args, "bootstrap"), Main.required(args, "label"));
        boolean quick = Boolean.parseBoolean(args.getOrDefault("quick", "false"));
        if (args.containsKey("only")) {
            t.only = Set.of(args.get("only").split(","));
        }
        t.runCase(report, "commit-sync-and-resume", t::commitSyncAndResume);
        t.runCase(report, "auto-commit-and-resume", t::autoCommitAndResume);
        t.runCase(report, "three-members-split-eager-range", () -> t.threeMembersSplit("RangeAssignor"));
        if (!quick) {
            t.runCase(report, "three-members-split-cooperative-sticky", () -> t.threeMembersSplit("CooperativeStickyAssignor"));
            t.runCase(report, "sigkilled-member-partitions-reassigned", t::sigkilledMember);
            t.runCase(report, "static-member-restart-no-rebalance", t::staticMemberRestart);
        }
        t.runCase(report, "subscription-change-rebalances", t::subscriptionChange);
        t.runCase(report, "inconsistent-group-protocol", t::inconsistentProtocol);
        t.runCase(report, "invalid-session-timeout", t::invalidSessionTimeout);
        if (!quick) {
            t.runCase(report, "static-member-duplicate-instance-id-fenced", t::staticFenced);
        }
        t.runCase(report, "assign-and-commit-simple-group", t::simpleGroup);
        t.runCase(report, "admin-groups-and-offsets", t::adminGroups);
        t.runCase(report, "admin-unknown-group-errors", t::adminUnknownGroup);
        if (!quick) {
            if (advertises(t.bootstrap, 68)) {
                t.runCase(report, "kip848-consumer-protocol", t::kip848);
            } else {
                System.out.println("SKIP " + t.label + "/kip848-consumer-protocol: broker does not advertise ConsumerGroupHeartbeat (68)");
            }
        }
    }

    private void runCase(Report report, String name, Report.Case body) {
        if (only.isEmpty() || only.contains(name)) {
            report.run(label + "/" + name, body);
        }
    }

    // ---- helpers ----------------------------------------------------------------------------

    static void waitUntil(BooleanSupplier condition, Duration timeout, String what, Object... args) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!condition.getAsBoolean()) {
            check(System.nanoTime() < deadline, "timed out after %d s waiting until " + what, prepend(timeout.toSeconds(), args));
            Thread.sleep(50);
        }
    }

    private static Object[] prepend(Object first, Object[] rest) {
        Object[] all = new Object[rest.length + 1];
        all[0] = first;
        System.arraycopy(rest, 0, all, 1, rest.length);
        return all;
    }

    /** A fresh topic with {@code records} records in each partition, values "p&lt;p&gt;-&lt;i&gt;". */
    static void createAndFill(String bootstrap, String topic, int partitions, int records) throws Exception {
        try (Admin admin = Clients.admin(bootstrap, "groups-setup")) {
            try {
                admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all().get(30, TimeUnit.SECONDS);
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof TopicExistsException)) {
                    throw e;
                }
            }
        }
        produce(bootstrap, topic, partitions, 0, records);
    }

    /** Appends records [from, from+count) to every partition and waits for the acks. */
    static void produce(String bootstrap, String topic, int partitions, int from, int count) throws Exception {
        List<Future<RecordMetadata>> acks = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer = Clients.producer(bootstrap, "groups-producer", "none")) {
            for (int i = from; i < from + count; i++) {
                for (int p = 0; p < partitions; p++) {
                    acks.add(producer.send(new ProducerRecord<>(topic, p, null, value(p, i))));
                }
            }
            producer.flush();
        }
        for (Future<RecordMetadata> f : acks) {
            f.get(60, TimeUnit.SECONDS);
        }
    }

    static byte[] value(int partition, int i) {
        return ("p" + partition + "-" + i).getBytes(StandardCharsets.UTF_8);
    }

    static Set<TopicPartition> partitions(String topic, int n) {
        Set<TopicPartition> s = new HashSet<>();
        for (int p = 0; p < n; p++) {
            s.add(new TopicPartition(topic, p));
        }
        return s;
    }

    private static <T> T get(KafkaFuture<T> f) throws Exception {
        return f.get(30, TimeUnit.SECONDS);
    }

    /** The cause of a failed admin future, or a check failure if it succeeded. */
    private static Throwable failure(KafkaFuture<?> f, String what) throws Exception {
        try {
            Object v = f.get(30, TimeUnit.SECONDS);
            throw new Report.CheckFailed(what + " succeeded (" + v + "), expected an error");
        } catch (ExecutionException e) {
            return e.getCause();
        }
    }

    private static Map<TopicPartition, Long> offsetsOnly(Map<TopicPartition, OffsetAndMetadata> m) {
        Map<TopicPartition, Long> out = new TreeMap<>((a, b) -> a.toString().compareTo(b.toString()));
        m.forEach((tp, om) -> out.put(tp, om == null ? null : om.offset()));
        return out;
    }

    private static Map<TopicPartition, Long> sorted(Map<TopicPartition, Long> m) {
        Map<TopicPartition, Long> out = new TreeMap<>((a, b) -> a.toString().compareTo(b.toString()));
        out.putAll(m);
        return out;
    }

    private static void closeAll(List<GroupMember> members) throws InterruptedException {
        for (GroupMember m : members) {
            m.close();
        }
    }

    // ---- commit and resume ------------------------------------------------------------------

    /**
     * One member gets all 4 partitions, consumes part of them, commitSync()s its positions and
     * closes; a second member of the group must start exactly there (OffsetFetch), and
     * committed() must report those offsets with their metadata.
     */
    private void commitSyncAndResume() throws Exception {
        String topic = prefix + "resume-sync";
        String group = prefix + "resume-sync";
        createAndFill(bootstrap, topic, 4, 100);
        Set<TopicPartition> all = partitions(topic, 4);
        Map<TopicPartition, OffsetAndMetadata> committed = new HashMap<>();
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(GroupMember.props(bootstrap, group, label + "-resume-1",
                Map.of("max.poll.records", "37")))) {
            c.subscribe(List.of(topic));
            int consumed = 0;
            long deadline = System.nanoTime() + JOIN_TIMEOUT.toNanos();
            while (consumed < 150 && System.nanoTime() < deadline) {
                consumed += c.poll(Duration.ofMillis(100)).count();
            }
            check(c.assignment().equals(all), "the only member was assigned %s, expected all of %s",
                    GroupMember.show(c.assignment()), GroupMember.show(all));
            check(consumed >= 150, "consumed %d records in %d s, expected 150", consumed, JOIN_TIMEOUT.toSeconds());
            for (TopicPartition tp : all) {
                // Distinct offsets and metadata per partition, so a mixed-up answer shows.
                long offset = c.position(tp);
                committed.put(tp, new OffsetAndMetadata(offset, "meta-" + tp.partition()));
            }
            c.commitSync(committed);
            Map<TopicPartition, OffsetAndMetadata> fetched = c.committed(all);
            check(offsetsOnly(fetched).equals(offsetsOnly(committed)), "committed() right after commitSync = %s, expected %s",
                    offsetsOnly(fetched), offsetsOnly(committed));
            for (TopicPartition tp : all) {
                check(("meta-" + tp.partition()).equals(fetched.get(tp).metadata()),
                        "committed metadata of %s = '%s', expected 'meta-%d'", tp, fetched.get(tp).metadata(), tp.partition());
            }
        }
        expectResume(group, topic, all, offsetsOnly(committed));
    }

    /**
     * A second member of {@code group} must start each partition at {@code expected} (the
     * committed offset) and read to the end. Ten more records go to each partition first, so
     * that a partition committed at its end still shows where the member starts.
     */
    private void expectResume(String group, String topic, Set<TopicPartition> all, Map<TopicPartition, Long> expected)
            throws Exception {
        expectResume(group, topic, all, expected, Map.of());
    }

    private void expectResume(String group, String topic, Set<TopicPartition> all, Map<TopicPartition, Long> expected,
            Map<String, String> overrides) throws Exception {
        Map<TopicPartition, Long> ends;
        try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(bootstrap, label + "-resume-ends")) {
            ends = new HashMap<>(c.endOffsets(all));
        }
        for (TopicPartition tp : all) {
            produceTo(bootstrap, tp, ends.get(tp).intValue(), 10);
            ends.put(tp, ends.get(tp) + 10);
        }
        try (GroupMember m = new GroupMember(bootstrap, group, label + "-resume-2", List.of(topic), overrides, false)) {
            long want = 0;
            for (TopicPartition tp : all) {
                want += ends.get(tp) - expected.get(tp);
            }
            long total = want;
            waitUntil(() -> m.seen.size() >= total && m.assignment().equals(all), JOIN_TIMEOUT,
                    "the resuming member read %d records (%s)", total, m.describe());
            Thread.sleep(300);
            Map<Integer, List<GroupMember.Seen>> got = m.byPartition();
            for (TopicPartition tp : all) {
                List<GroupMember.Seen> seen = got.getOrDefault(tp.partition(), List.of());
                long first = seen.isEmpty() ? -1 : seen.get(0).offset();
                check(first == expected.get(tp), "%s: the resuming member started at offset %d, committed offset was %d",
                        tp, first, expected.get(tp));
                check(seen.size() == ends.get(tp) - expected.get(tp), "%s: the resuming member read %d records, expected %d",
                        tp, seen.size(), ends.get(tp) - expected.get(tp));
                check(("p" + tp.partition() + "-" + first).equals(seen.get(0).value()),
                        "%s: record at offset %d holds '%s'", tp, first, seen.get(0).value());
            }
        }
    }

    /** Appends records [from, from+count) to one partition. */
    static void produceTo(String bootstrap, TopicPartition tp, int from, int count) throws Exception {
        List<Future<RecordMetadata>> acks = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer = Clients.producer(bootstrap, "groups-producer", "none")) {
            for (int i = from; i < from + count; i++) {
                acks.add(producer.send(new ProducerRecord<>(tp.topic(), tp.partition(), null, value(tp.partition(), i))));
            }
        }
        for (Future<RecordMetadata> f : acks) {
            f.get(60, TimeUnit.SECONDS);
        }
    }

    /**
     * enable.auto.commit with a 300 ms interval: the commits show up (admin
     * listConsumerGroupOffsets) while the member runs, and close() commits the final positions,
     * where the next member resumes.
     */
    private void autoCommitAndResume() throws Exception {
        String topic = prefix + "resume-auto";
        String group = prefix + "resume-auto";
        createAndFill(bootstrap, topic, 4, 100);
        Set<TopicPartition> all = partitions(topic, 4);
        Map<TopicPartition, Long> positions = new HashMap<>();
        try (Admin admin = Clients.admin(bootstrap, label + "-auto-admin");
             KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(GroupMember.props(bootstrap, group, label + "-auto-1",
                     Map.of("enable.auto.commit", "true", "auto.commit.interval.ms", "300", "max.poll.records", "29")))) {
            c.subscribe(List.of(topic));
            int consumed = 0;
            long deadline = System.nanoTime() + JOIN_TIMEOUT.toNanos();
            while (consumed < 120 && System.nanoTime() < deadline) {
                consumed += c.poll(Duration.ofMillis(100)).count();
            }
            check(consumed >= 120, "consumed %d records, expected 120", consumed);
            check(c.assignment().equals(all), "assigned %s, expected all 4 partitions", GroupMember.show(c.assignment()));
            // Keep polling (no new records: max.poll.records caps what a poll returns, so stop
            // consuming by pausing) until an auto-commit carried the current positions.
            c.pause(all);
            for (TopicPartition tp : all) {
                positions.put(tp, c.position(tp));
            }
            long until = System.nanoTime() + Duration.ofSeconds(10).toNanos();
            Map<TopicPartition, Long> seen = Map.of();
            while (System.nanoTime() < until) {
                c.poll(Duration.ofMillis(100));
                seen = offsetsOnly(get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()));
                if (seen.equals(sorted(positions))) {
                    break;
                }
            }
            check(seen.equals(sorted(positions)), "while the member runs, the auto-committed offsets are %s, expected its positions %s",
                    seen, sorted(positions));
            c.resume(all);
            // Consume a little more; close() must commit these positions too.
            int more = 0;
            deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
            while (more < 50 && System.nanoTime() < deadline) {
                more += c.poll(Duration.ofMillis(100)).count();
            }
            for (TopicPartition tp : all) {
                positions.put(tp, c.position(tp));
            }
        }
        try (Admin admin = Clients.admin(bootstrap, label + "-auto-admin2")) {
            Map<TopicPartition, Long> after = offsetsOnly(get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()));
            check(after.equals(sorted(positions)), "after close() the committed offsets are %s, expected the final positions %s",
                    after, sorted(positions));
        }
        expectResume(group, topic, all, positions);
    }

    // ---- three members ----------------------------------------------------------------------

    /**
     * Three members join one after the other while a producer writes to a 6-partition topic, so
     * the group rebalances twice under load. Commits after each poll and on revocation: every
     * record must be consumed exactly once, and at the end each member owns two partitions.
     */
    private void threeMembersSplit(String assignor) throws Exception {
        String topic = prefix + "split-" + assignor.toLowerCase();
        String group = topic;
        int partitions = 6;
        int perPartition = 800;
        createAndFill(bootstrap, topic, partitions, 0);
        Map<String, String> overrides = Map.of("partition.assignment.strategy",
                "org.apache.kafka.clients.consumer." + assignor, "max.poll.records", "50");
        AtomicReference<Throwable> producerError = new AtomicReference<>();
        Thread producer = new Thread(() -> {
            try (KafkaProducer<byte[], byte[]> p = Clients.producer(bootstrap, label + "-split-producer", "none")) {
                for (int i = 0; i < perPartition; i++) {
                    for (int q = 0; q < partitions; q++) {
                        p.send(new ProducerRecord<>(topic, q, null, value(q, i)), (md, e) -> {
                            if (e != null) {
                                producerError.compareAndSet(null, e);
                            }
                        });
                    }
                    if (i % 20 == 0) {
                        Thread.sleep(100); // ~4 s of producing, across both rebalances
                    }
                }
                p.flush();
            } catch (Throwable e) {
                producerError.compareAndSet(null, e);
            }
        });
        List<GroupMember> members = new ArrayList<>();
        try {
            producer.start();
            for (int i = 0; i < 3; i++) {
                members.add(new GroupMember(bootstrap, group, label + "-split-" + i, List.of(topic), overrides, true));
                Thread.sleep(1000);
            }
            producer.join(60_000);
            check(producerError.get() == null, "producer failed: %s", producerError.get() == null ? "" : Report.describe(producerError.get()));
            int total = partitions * perPartition;
            waitUntil(() -> members.stream().mapToInt(m -> m.seen.size()).sum() >= total
                            && members.stream().allMatch(m -> m.assignment().size() == 2),
                    JOIN_TIMEOUT, "the members consumed %d records and own 2 partitions each (%s)", total,
                    members.stream().map(GroupMember::describe).collect(Collectors.joining("; ")));
            Thread.sleep(500);
            for (GroupMember m : members) {
                check(m.error() == null, "%s", m.describe());
            }
            Set<TopicPartition> union = new HashSet<>();
            for (GroupMember m : members) {
                for (TopicPartition tp : m.assignment()) {
                    check(union.add(tp), "%s is assigned to two members: %s", tp,
                            members.stream().map(GroupMember::describe).collect(Collectors.joining("; ")));
                }
            }
            check(union.equals(partitions(topic, partitions)), "the members own %s, expected all %d partitions",
                    GroupMember.show(union), partitions);
            Map<String, String> firstReader = new HashMap<>();
            int duplicates = 0;
            String example = "";
            for (GroupMember m : members) {
                for (GroupMember.Seen s : m.seen) {
                    String key = s.partition() + "@" + s.offset();
                    String before = firstReader.putIfAbsent(key, m.name);
                    if (before != null) {
                        if (duplicates++ == 0) {
                            example = "partition " + s.partition() + " offset " + s.offset() + " read by " + before + " and " + m.name;
                        }
                    }
                    check(("p" + s.partition() + "-" + s.offset()).equals(s.value()),
                            "partition %d offset %d holds '%s'", s.partition(), s.offset(), s.value());
                }
            }
            check(duplicates == 0, "%d records were consumed twice although no member failed, e.g. %s (%s)", duplicates, example,
                    members.stream().map(m -> m.name + " " + m.events).collect(Collectors.joining("; ")));
            check(firstReader.size() == total, "consumed %d distinct records, expected %d", firstReader.size(), total);
        } finally {
            producer.join(1000);
            closeAll(members);
        }
    }

    // ---- a member killed with SIGKILL -------------------------------------------------------

    /** Starts a group member in a JVM of its own; its stdout lines go to {@code lines}. */
    private static Process startMemberProcess(String bootstrap, String group, String topic, List<String> lines) throws Exception {
        String java = ProcessHandle.current().info().command().orElse("java");
        ProcessBuilder pb = new ProcessBuilder(java, "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-cp", System.getProperty("java.class.path"), "gregor.compat.Main", "group-member",
                "--bootstrap", bootstrap, "--group", group, "--topic", topic);
        pb.redirectError(ProcessBuilder.Redirect.INHERIT);
        Process process = pb.start();
        Thread reader = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    lines.add(line);
                }
            } catch (Exception ignored) {
                // the process was killed
            }
        });
        reader.setDaemon(true);
        reader.start();
        return process;
    }

    private static String lastAssigned(List<String> lines) {
        synchronized (lines) {
            for (int i = lines.size() - 1; i >= 0; i--) {
                if (lines.get(i).startsWith("ASSIGNED")) {
                    return lines.get(i).substring("ASSIGNED".length()).trim();
                }
            }
        }
        return null;
    }

    /**
     * Member 0 runs in its own JVM and is killed with SIGKILL once the three members share a
     * 6-partition topic: no LeaveGroup, so the coordinator must notice the missing heartbeats
     * after session.timeout.ms (10 s) and give its partitions to the other two.
     */
    private void sigkilledMember() throws Exception {
        String topic = prefix + "sigkill";
        String group = topic;
        createAndFill(bootstrap, topic, 6, 10);
        List<String> lines = java.util.Collections.synchronizedList(new ArrayList<>());
        Process child = startMemberProcess(bootstrap, group, topic, lines);
        List<GroupMember> members = new ArrayList<>();
        try {
            waitUntil(() -> "0,1,2,3,4,5".equals(lastAssigned(lines)), Duration.ofSeconds(40),
                    "the member process owns all 6 partitions (its output: %s)", lines);
            for (int i = 1; i <= 2; i++) {
                members.add(new GroupMember(bootstrap, group, label + "-sigkill-" + i, List.of(topic), Map.of(), false));
            }
            waitUntil(() -> members.stream().allMatch(m -> m.assignment().size() == 2)
                            && lastAssigned(lines) != null && lastAssigned(lines).split(",").length == 2,
                    JOIN_TIMEOUT, "three members own 2 partitions each (process: %s; %s)", lines,
                    members.stream().map(GroupMember::describe).collect(Collectors.joining("; ")));
            String killedOwned = lastAssigned(lines);
            child.destroyForcibly(); // SIGKILL
            child.waitFor(10, TimeUnit.SECONDS);
            long killedAt = System.nanoTime();
            waitUntil(() -> members.stream().mapToInt(m -> m.assignment().size()).sum() == 6
                            && members.stream().allMatch(m -> m.assignment().size() == 3),
                    Duration.ofSeconds(25), "the two survivors own 3 partitions each after the SIGKILL (%s)",
                    members.stream().map(GroupMember::describe).collect(Collectors.joining("; ")));
            long ms = (System.nanoTime() - killedAt) / 1_000_000;
            check(ms <= 16_000, "the killed member's partitions (%s) were reassigned after %d ms, expected within "
                    + "session.timeout.ms 10000 + 6000", killedOwned, ms);
            Set<TopicPartition> union = new HashSet<>();
            members.forEach(m -> union.addAll(m.assignment()));
            check(union.equals(partitions(topic, 6)), "survivors own %s", GroupMember.show(union));
            System.err.println("sigkill: partitions " + killedOwned + " reassigned after " + ms + " ms");
        } finally {
            child.destroyForcibly();
            closeAll(members);
        }
    }

    // ---- static membership ------------------------------------------------------------------

    /**
     * KIP-345: two static members (group.instance.id); one is closed (no LeaveGroup for static
     * members) and a new consumer with the same instance id joins within the session timeout. It
     * must get the same partitions back, and the other member must see no rebalance at all. Done
     * twice: first for the follower, then for the leader (the member that joined first; Kafka
     * answers its JoinGroup with skip_assignment=true from v9 and still does not rebalance).
     */
    private void staticMemberRestart() throws Exception {
        String topic = prefix + "static";
        String group = topic;
        createAndFill(bootstrap, topic, 4, 10);
        Map<String, String> a = Map.of("group.instance.id", label + "-static-a");
        Map<String, String> b = Map.of("group.instance.id", label + "-static-b");
        List<GroupMember> all = new ArrayList<>();
        try {
            GroupMember leader = new GroupMember(bootstrap, group, label + "-static-a", List.of(topic), a, false);
            all.add(leader);
            waitUntil(() -> leader.assignment().size() == 4, JOIN_TIMEOUT, "the first static member owns all 4 partitions (%s)",
                    leader.describe());
            GroupMember follower = new GroupMember(bootstrap, group, label + "-static-b", List.of(topic), b, false);
            all.add(follower);
            waitUntil(() -> leader.assignment().size() == 2 && follower.assignment().size() == 2, JOIN_TIMEOUT,
                    "the two static members own 2 partitions each (%s; %s)", leader.describe(), follower.describe());
            GroupMember follower2 = restartStatic(group, topic, follower, leader, b, "follower", all);
            restartStatic(group, topic, leader, follower2, a, "leader", all);
        } finally {
            closeAll(all);
        }
    }

    /** Closes {@code member}, starts its replacement with the same instance id, checks; returns it. */
    private GroupMember restartStatic(String group, String topic, GroupMember member, GroupMember other,
            Map<String, String> instance, String role, List<GroupMember> all) throws Exception {
        Thread.sleep(2000); // heartbeats settle; nothing else pending
        Set<TopicPartition> owned = member.assignment();
        int assignsBefore = other.assignCalls.get();
        int revokesBefore = other.revokeCalls.get();
        member.close();
        check(member.error() == null, "closing the static %s: %s", role, member.describe());
        Thread.sleep(1000);
        long start = System.nanoTime();
        GroupMember rejoined = new GroupMember(bootstrap, group, member.name + "-again", List.of(topic), instance, false);
        all.add(rejoined);
        waitUntil(() -> !rejoined.assignment().isEmpty(), JOIN_TIMEOUT, "the restarted static %s gets partitions (%s)",
                role, rejoined.describe());
        long ms = (System.nanoTime() - start) / 1_000_000;
        check(rejoined.assignment().equals(owned), "the restarted static %s got %s, before the restart it owned %s",
                role, GroupMember.show(rejoined.assignment()), GroupMember.show(owned));
        check(ms < 8000, "the restarted static %s waited %d ms for its partitions (a rebalance waiting for the "
                + "old member's session to expire?)", role, ms);
        Thread.sleep(3000); // several heartbeat intervals: a rebalance would reach the other member now
        check(other.assignCalls.get() == assignsBefore && other.revokeCalls.get() == revokesBefore,
                "restarting the static %s within the session timeout rebalanced the other member: %s",
                role, other.describe());
        return rejoined;
    }

    // ---- membership errors and changes -------------------------------------------------------

    /**
     * A member that changes its subscription rejoins with new metadata; the rebalance must hand
     * it the partitions of the added topic (only it subscribes to them) and keep the split of the
     * shared one.
     */
    private void subscriptionChange() throws Exception {
        String x = prefix + "subchange-x";
        String y = prefix + "subchange-y";
        String group = prefix + "subchange";
        createAndFill(bootstrap, x, 4, 5);
        createAndFill(bootstrap, y, 2, 5);
        GroupMember a = new GroupMember(bootstrap, group, label + "-subchange-a", List.of(x), Map.of(), false);
        GroupMember b = new GroupMember(bootstrap, group, label + "-subchange-b", List.of(x), Map.of(), false);
        try {
            waitUntil(() -> a.assignment().size() == 2 && b.assignment().size() == 2, JOIN_TIMEOUT,
                    "two members own 2 partitions of %s each (%s; %s)", x, a.describe(), b.describe());
            a.resubscribe(List.of(x, y));
            Set<TopicPartition> ys = partitions(y, 2);
            waitUntil(() -> a.assignment().containsAll(ys) && a.assignment().size() == 4 && b.assignment().size() == 2,
                    JOIN_TIMEOUT, "after subscribing to %s too, a owns its 2 partitions plus both of %s (%s; %s)", y, y,
                    a.describe(), b.describe());
            Set<TopicPartition> union = new HashSet<>(a.assignment());
            union.addAll(b.assignment());
            Set<TopicPartition> want = partitions(x, 4);
            want.addAll(ys);
            check(union.equals(want), "the members own %s, expected %s", GroupMember.show(union), GroupMember.show(want));
        } finally {
            a.close();
            b.close();
        }
    }

    /** JoinGroup with no protocol in common with the group: INCONSISTENT_GROUP_PROTOCOL (23). */
    private void inconsistentProtocol() throws Exception {
        String topic = prefix + "inconsistent";
        String group = topic;
        createAndFill(bootstrap, topic, 2, 1);
        GroupMember range = new GroupMember(bootstrap, group, label + "-range-only", List.of(topic),
                Map.of("partition.assignment.strategy", "org.apache.kafka.clients.consumer.RangeAssignor"), false);
        try {
            waitUntil(() -> range.assignment().size() == 2, JOIN_TIMEOUT, "the first member owns both partitions (%s)",
                    range.describe());
            GroupMember rr = new GroupMember(bootstrap, group, label + "-roundrobin-only", List.of(topic),
                    Map.of("partition.assignment.strategy", "org.apache.kafka.clients.consumer.RoundRobinAssignor"), false);
            try {
                waitUntil(() -> rr.error() != null || !rr.assignment().isEmpty(), JOIN_TIMEOUT,
                        "the member with only roundrobin fails to join (%s)", rr.describe());
                check(rr.error() instanceof InconsistentGroupProtocolException, "a member with no assignor in common with the "
                        + "group got %s, expected InconsistentGroupProtocolException", rr.describe());
            } finally {
                rr.close();
            }
            Thread.sleep(500);
            check(range.assignment().size() == 2 && range.error() == null, "the existing member was disturbed: %s", range.describe());
        } finally {
            range.close();
        }
    }

    /** session.timeout.ms below group.min.session.timeout.ms (6000): INVALID_SESSION_TIMEOUT (26). */
    private void invalidSessionTimeout() throws Exception {
        String topic = prefix + "session-timeout";
        createAndFill(bootstrap, topic, 1, 1);
        try (GroupMember m = new GroupMember(bootstrap, topic, label + "-short-session", List.of(topic),
                Map.of("session.timeout.ms", "5000", "heartbeat.interval.ms", "500"), false)) {
            waitUntil(() -> m.error() != null || !m.assignment().isEmpty(), JOIN_TIMEOUT,
                    "a member with session.timeout.ms=5000 fails to join (%s)", m.describe());
            check(m.error() instanceof InvalidSessionTimeoutException, "session.timeout.ms=5000 (below "
                    + "group.min.session.timeout.ms=6000) gave %s, expected InvalidSessionTimeoutException", m.describe());
        }
    }

    /**
     * KIP-345: a second consumer with the same group.instance.id replaces the first; the first is
     * fenced (FENCED_INSTANCE_ID on its next Heartbeat/OffsetCommit) and must stop.
     */
    private void staticFenced() throws Exception {
        String topic = prefix + "fenced";
        String group = topic;
        createAndFill(bootstrap, topic, 2, 1);
        Map<String, String> same = Map.of("group.instance.id", label + "-same-instance");
        GroupMember first = new GroupMember(bootstrap, group, label + "-fenced-1", List.of(topic), same, true);
        GroupMember second = null;
        try {
            waitUntil(() -> first.assignment().size() == 2, JOIN_TIMEOUT, "the first static member owns both partitions (%s)",
                    first.describe());
            GroupMember s2 = new GroupMember(bootstrap, group, label + "-fenced-2", List.of(topic), same, true);
            second = s2;
            waitUntil(() -> first.error() != null && s2.assignment().size() == 2, JOIN_TIMEOUT,
                    "the first member is fenced and the second owns both partitions (%s; %s)", first.describe(), s2.describe());
            check(first.error() instanceof FencedInstanceIdException, "the replaced static member got %s, expected "
                    + "FencedInstanceIdException", first.describe());
            check(s2.error() == null, "the new static member: %s", s2.describe());
        } finally {
            first.close();
            if (second != null) {
                second.close();
            }
        }
    }

    // ---- assign() with a group.id ------------------------------------------------------------

    /**
     * assign() plus commitSync: OffsetCommit with generation -1 and an empty member id, which
     * Kafka accepts for a group without members (stream processors do this). The group then
     * exists with an empty protocol type (a "simple" consumer group). Also the OffsetCommit
     * errors a client sees: metadata over offset.metadata.max.bytes (4096) gives
     * OFFSET_METADATA_TOO_LARGE, a partition that does not exist UNKNOWN_TOPIC_OR_PARTITION.
     */
    private void simpleGroup() throws Exception {
        String topic = prefix + "simple";
        String group = prefix + "simple-group";
        createAndFill(bootstrap, topic, 2, 10);
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(GroupMember.props(bootstrap, group, label + "-simple", Map.of()))) {
            c.assign(List.of(p0, p1));
            c.commitSync(Map.of(p0, new OffsetAndMetadata(7, "seven"), p1, new OffsetAndMetadata(2)));
            Map<TopicPartition, OffsetAndMetadata> got = c.committed(Set.of(p0, p1));
            check(got.get(p0) != null && got.get(p0).offset() == 7 && "seven".equals(got.get(p0).metadata())
                            && got.get(p1) != null && got.get(p1).offset() == 2,
                    "committed() after an assign() commit: %s, expected p0 7 'seven', p1 2", got);
            try {
                c.commitSync(Map.of(p0, new OffsetAndMetadata(8, "x".repeat(5000))));
                check(false, "a commit with 5000 bytes of metadata succeeded, expected OffsetMetadataTooLarge");
            } catch (OffsetMetadataTooLarge e) {
                // expected
            }
            check(c.committed(Set.of(p0)).get(p0).offset() == 7, "the refused commit changed the committed offset");
            try {
                c.commitSync(Map.of(new TopicPartition(topic, 5), new OffsetAndMetadata(1)), Duration.ofSeconds(3));
                check(false, "a commit for partition 5 of a 2-partition topic succeeded, expected UnknownTopicOrPartitionException");
            } catch (UnknownTopicOrPartitionException e) {
                // expected
            } catch (org.apache.kafka.common.errors.TimeoutException e) {
                // The client retries UNKNOWN_TOPIC_OR_PARTITION (retriable) until its timeout.
            }
        }
        try (Admin admin = Clients.admin(bootstrap, label + "-simple-admin")) {
            ConsumerGroupDescription d = get(admin.describeConsumerGroups(List.of(group)).describedGroups().get(group));
            check(state(d).equals("Empty") && d.members().isEmpty(), "a group with only assign() commits: state %s, %d members, "
                    + "expected Empty and none", state(d), d.members().size());
            check(d.isSimpleConsumerGroup(), "a group with only assign() commits is not described as a simple consumer group "
                    + "(protocol type must be empty): %s", d);
            Collection<ConsumerGroupListing> listed = get(admin.listConsumerGroups().all());
            check(listed.stream().anyMatch(l -> l.groupId().equals(group)), "listConsumerGroups does not list the assign() group");
        }
    }

    // ---- admin ------------------------------------------------------------------------------

    private static String state(ConsumerGroupDescription d) {
        return String.valueOf(d.state());
    }

    /**
     * AdminClient against a live group and then an empty one: listConsumerGroups,
     * describeConsumerGroups, listConsumerGroupOffsets, the errors a non-empty group gives
     * (DeleteGroups NON_EMPTY_GROUP, admin OffsetCommit UNKNOWN_MEMBER_ID, OffsetDelete
     * GROUP_SUBSCRIBED_TO_TOPIC), then alter, delete offsets and delete the group once empty.
     */
    private void adminGroups() throws Exception {
        String topic = prefix + "admin";
        String group = prefix + "admin-group";
        createAndFill(bootstrap, topic, 3, 10);
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        TopicPartition p2 = new TopicPartition(topic, 2);
        try (Admin admin = Clients.admin(bootstrap, label + "-admin-groups")) {
            GroupMember m = new GroupMember(bootstrap, group, label + "-admin-member", List.of(topic), Map.of(), true);
            try {
                waitUntil(() -> m.seen.size() >= 30, JOIN_TIMEOUT, "the member consumed 30 records (%s)", m.describe());
                Map<TopicPartition, Long> ten = sorted(Map.of(p0, 10L, p1, 10L, p2, 10L));
                waitUntil(() -> {
                    try {
                        return offsetsOnly(get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata())).equals(ten);
                    } catch (Exception e) {
                        return false;
                    }
                }, Duration.ofSeconds(10), "listConsumerGroupOffsets shows 10 for each partition");

                Collection<ConsumerGroupListing> listed = get(admin.listConsumerGroups().all());
                Optional<ConsumerGroupListing> mine = listed.stream().filter(l -> l.groupId().equals(group)).findFirst();
                check(mine.isPresent(), "listConsumerGroups does not list %s: %s", group, listed);
                check(mine.get().state().map(s -> s.toString().equals("Stable")).orElse(true),
                        "listConsumerGroups state of the live group: %s, expected Stable", mine.get().state());
                // ListGroups v4+ states_filter
                Collection<ConsumerGroupListing> stable = get(admin.listConsumerGroups(
                        new ListConsumerGroupsOptions().inStates(Set.of(ConsumerGroupState.STABLE))).all());
                Collection<ConsumerGroupListing> empty = get(admin.listConsumerGroups(
                        new ListConsumerGroupsOptions().inStates(Set.of(ConsumerGroupState.EMPTY))).all());
                check(stable.stream().anyMatch(l -> l.groupId().equals(group)) && empty.stream().noneMatch(l -> l.groupId().equals(group)),
                        "listConsumerGroups filtered by state: Stable %s, Empty %s; the live group belongs to Stable only", stable, empty);

                ConsumerGroupDescription d = get(admin.describeConsumerGroups(List.of(group)).describedGroups().get(group));
                check(state(d).equals("Stable"), "describeConsumerGroups state %s, expected Stable", state(d));
                check(d.type() == GroupType.CLASSIC, "describeConsumerGroups type %s, expected Classic", d.type());
                check(d.members().size() == 1, "describeConsumerGroups: %d members, expected 1: %s", d.members().size(), d);
                MemberDescription md = d.members().iterator().next();
                check(md.clientId().equals(label + "-admin-member"), "member client id '%s'", md.clientId());
                check(md.assignment().topicPartitions().equals(Set.of(p0, p1, p2)),
                        "member assignment %s, expected all 3 partitions", md.assignment().topicPartitions());
                check(!md.consumerId().isEmpty() && !md.host().isEmpty(), "member id '%s', host '%s'", md.consumerId(), md.host());
                check(d.partitionAssignor().equals("range"), "assignor '%s', expected 'range'", d.partitionAssignor());
                check(!d.isSimpleConsumerGroup(), "a subscribe() group is described as a simple consumer group");
                check(d.coordinator() != null && d.coordinator().id() >= 0, "coordinator %s", d.coordinator());

                // Several groups in one DescribeGroups: the live one, an unknown one.
                String unknown = prefix + "admin-unknown-2";
                var both = admin.describeConsumerGroups(List.of(group, unknown)).describedGroups();
                check(state(get(both.get(group))).equals("Stable"), "described together with an unknown group, the live "
                        + "group is %s", state(get(both.get(group))));
                try {
                    ConsumerGroupDescription u = get(both.get(unknown));
                    check(state(u).equals("Dead"), "described together with the live group, the unknown group is %s", state(u));
                } catch (ExecutionException ex) {
                    check(ex.getCause() instanceof GroupIdNotFoundException, "describing the unknown group with the live one: %s",
                            Report.describe(ex.getCause()));
                }
                // DeleteGroups for two groups at once: an empty one (made by an admin commit) goes, the live one stays.
                String spare = prefix + "admin-spare";
                get(admin.alterConsumerGroupOffsets(spare, Map.of(p0, new OffsetAndMetadata(1))).all());
                var deleted = admin.deleteConsumerGroups(List.of(spare, group)).deletedGroups();
                get(deleted.get(spare));
                Throwable liveErr = failure(deleted.get(group), "deleting the live group together with an empty one");
                check(liveErr instanceof GroupNotEmptyException, "deleting the live group together with an empty one: %s, "
                        + "expected GroupNotEmptyException", Report.describe(liveErr));
                check(get(admin.listConsumerGroupOffsets(spare).partitionsToOffsetAndMetadata()).isEmpty(),
                        "the deleted empty group still has offsets");

                Throwable e = failure(admin.deleteConsumerGroups(List.of(group)).all(), "deleteConsumerGroups of a live group");
                check(e instanceof GroupNotEmptyException, "deleting a live group failed with %s, expected GroupNotEmptyException "
                        + "(NON_EMPTY_GROUP)", Report.describe(e));
                e = failure(admin.alterConsumerGroupOffsets(group, Map.of(p0, new OffsetAndMetadata(3))).all(),
                        "alterConsumerGroupOffsets on a live group");
                check(e instanceof UnknownMemberIdException, "altering a live group's offsets failed with %s, expected "
                        + "UnknownMemberIdException (an OffsetCommit with generation -1 needs an empty group)", Report.describe(e));
                e = failure(admin.deleteConsumerGroupOffsets(group, Set.of(p0)).all(), "deleteConsumerGroupOffsets of a subscribed topic");
                check(e instanceof GroupSubscribedToTopicException, "deleting offsets of a topic the live group subscribes to "
                        + "failed with %s, expected GroupSubscribedToTopicException", Report.describe(e));
            } finally {
                m.close(); // LeaveGroup: the group becomes empty at once
            }
            check(m.error() == null, "member: %s", m.describe());

            ConsumerGroupDescription d = get(admin.describeConsumerGroups(List.of(group)).describedGroups().get(group));
            check(state(d).equals("Empty") && d.members().isEmpty(), "after the only member left: state %s with %d members, "
                    + "expected Empty with none", state(d), d.members().size());
            get(admin.alterConsumerGroupOffsets(group, Map.of(p0, new OffsetAndMetadata(3), p1, new OffsetAndMetadata(0))).all());
            Map<TopicPartition, Long> offsets = offsetsOnly(get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()));
            check(offsets.equals(sorted(Map.of(p0, 3L, p1, 0L, p2, 10L))), "after alterConsumerGroupOffsets: %s, expected p0 3, p1 0, p2 10",
                    offsets);
            get(admin.deleteConsumerGroupOffsets(group, Set.of(p2)).all());
            offsets = offsetsOnly(get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()));
            check(offsets.equals(sorted(Map.of(p0, 3L, p1, 0L))), "after deleteConsumerGroupOffsets(p2): %s, expected p0 3, p1 0",
                    offsets);
            // A member resumes at the altered offsets; p2 has none left, so auto.offset.reset (earliest) applies.
            expectResume(group, topic, Set.of(p0, p1, p2), Map.of(p0, 3L, p1, 0L, p2, 0L));
            // expectResume's member committed nothing (no auto-commit) and left: the group is empty again.
            get(admin.deleteConsumerGroups(List.of(group)).all());
            Collection<ConsumerGroupListing> listed = get(admin.listConsumerGroups().all());
            check(listed.stream().noneMatch(l -> l.groupId().equals(group)), "the deleted group is still listed: %s", listed);
            offsets = offsetsOnly(get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()));
            check(offsets.isEmpty(), "the deleted group still has committed offsets: %s", offsets);
        }
    }

    /**
     * Unknown groups: describe gives state Dead with no members (DescribeGroups before v6) or
     * GroupIdNotFoundException (v6+, KIP-1043); delete gives GROUP_ID_NOT_FOUND; offsets are empty.
     */
    private void adminUnknownGroup() throws Exception {
        String group = prefix + "never-used";
        try (Admin admin = Clients.admin(bootstrap, label + "-admin-unknown")) {
            try {
                ConsumerGroupDescription d = get(admin.describeConsumerGroups(List.of(group)).describedGroups().get(group));
                check(state(d).equals("Dead") && d.members().isEmpty(), "describing an unknown group: state %s, %d members, "
                        + "expected Dead and none (or GroupIdNotFoundException)", state(d), d.members().size());
            } catch (ExecutionException e) {
                check(e.getCause() instanceof GroupIdNotFoundException, "describing an unknown group failed with %s, expected "
                        + "state Dead or GroupIdNotFoundException", Report.describe(e.getCause()));
            }
            Throwable e = failure(admin.deleteConsumerGroups(List.of(group)).all(), "deleteConsumerGroups of an unknown group");
            check(e instanceof GroupIdNotFoundException, "deleting an unknown group failed with %s, expected GroupIdNotFoundException",
                    Report.describe(e));
            Map<TopicPartition, OffsetAndMetadata> offsets = get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
            check(offsets.isEmpty(), "an unknown group has committed offsets: %s", offsets);
        }
        // OffsetFetch of named partitions without commits: offset -1, which the client shows as null.
        String topic = prefix + "admin-unknown";
        createAndFill(bootstrap, topic, 1, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(GroupMember.props(bootstrap, group, label + "-committed", Map.of()))) {
            Map<TopicPartition, OffsetAndMetadata> committed = c.committed(Set.of(tp));
            check(committed.get(tp) == null, "committed() of a partition the group never committed: %s, expected null", committed);
        }
    }

    // ---- KIP-848 ----------------------------------------------------------------------------

    /**
     * group.protocol=consumer (KIP-848, ConsumerGroupHeartbeat): two members split 4 partitions,
     * commit each poll, and the commits are there once they left.
     */
    private void kip848() throws Exception {
        String topic = prefix + "kip848";
        String group = topic;
        createAndFill(bootstrap, topic, 4, 20);
        Map<String, String> o = Map.of("group.protocol", "consumer");
        List<GroupMember> members = new ArrayList<>();
        try {
            members.add(new GroupMember(bootstrap, group, label + "-848-0", List.of(topic), o, true));
            members.add(new GroupMember(bootstrap, group, label + "-848-1", List.of(topic), o, true));
            waitUntil(() -> members.stream().allMatch(m -> m.assignment().size() == 2)
                            && members.stream().mapToInt(m -> m.seen.size()).sum() >= 80,
                    Duration.ofSeconds(40), "two consumer-protocol members own 2 partitions each and read 80 records (%s)",
                    members.stream().map(GroupMember::describe).collect(Collectors.joining("; ")));
            // Admin: ConsumerGroupDescribe (69) for a consumer-protocol group.
            try (Admin admin = Clients.admin(bootstrap, label + "-848-describe")) {
                ConsumerGroupDescription d = get(admin.describeConsumerGroups(List.of(group)).describedGroups().get(group));
                check(d.type() == GroupType.CONSUMER, "describeConsumerGroups type %s, expected Consumer", d.type());
                check(state(d).equals("Stable") && d.members().size() == 2, "describeConsumerGroups: state %s with %d members, "
                        + "expected Stable with 2", state(d), d.members().size());
                Set<TopicPartition> union = new HashSet<>();
                for (MemberDescription md : d.members()) {
                    check(md.assignment().topicPartitions().size() == 2, "member %s is described with assignment %s",
                            md.clientId(), md.assignment().topicPartitions());
                    union.addAll(md.assignment().topicPartitions());
                }
                check(union.equals(partitions(topic, 4)), "described assignments cover %s", GroupMember.show(union));
            }
            // One member leaves (heartbeat with member epoch -1): the other must get all 4 partitions.
            GroupMember leaving = members.get(0);
            GroupMember staying = members.get(1);
            leaving.close();
            check(leaving.error() == null, "the leaving member: %s", leaving.describe());
            waitUntil(() -> staying.assignment().size() == 4, Duration.ofSeconds(15),
                    "after one consumer-protocol member left, the other owns all 4 partitions (%s)", staying.describe());
        } finally {
            closeAll(members);
        }
        for (GroupMember m : members) {
            check(m.error() == null, "%s", m.describe());
        }
        Map<TopicPartition, Long> twenty = new HashMap<>();
        partitions(topic, 4).forEach(tp -> twenty.put(tp, 20L));
        try (Admin admin = Clients.admin(bootstrap, label + "-848-admin")) {
            Map<TopicPartition, Long> offsets = offsetsOnly(get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()));
            check(offsets.equals(sorted(twenty)), "committed offsets of the consumer-protocol group: %s, expected 20 each", offsets);
        }
        // A new consumer-protocol member (OffsetFetch v9 with member id and epoch) resumes there.
        expectResume(group, topic, partitions(topic, 4), twenty, o);
    }

    /** ApiVersions v0 by hand: does the broker advertise {@code apiKey}? */
    static boolean advertises(String bootstrap, int apiKey) {
        String[] hp = bootstrap.split(":");
        try (Socket s = new Socket(hp[0], Integer.parseInt(hp[1]))) {
            s.setSoTimeout(10_000);
            DataOutputStream out = new DataOutputStream(s.getOutputStream());
            byte[] clientId = "gregor-compat".getBytes(StandardCharsets.UTF_8);
            out.writeInt(2 + 2 + 4 + 2 + clientId.length);
            out.writeShort(18);
            out.writeShort(0);
            out.writeInt(1);
            out.writeShort(clientId.length);
            out.write(clientId);
            out.flush();
            DataInputStream in = new DataInputStream(s.getInputStream());
            in.readInt();
            in.readInt();
            short error = in.readShort();
            int n = in.readInt();
            for (int i = 0; i < n && error == 0; i++) {
                int key = in.readShort();
                in.readShort();
                in.readShort();
                if (key == apiKey) {
                    return true;
                }
            }
        } catch (Exception e) {
            System.err.println("ApiVersions probe failed: " + Report.describe(e));
        }
        return false;
    }

    // ---- sub-commands for other processes ---------------------------------------------------

    /**
     * One member in a JVM of its own. Prints "ASSIGNED 0,1,..." (partition numbers) after every
     * assignment change. With --commit N it commits offset N for each partition once it owns all
     * of them, prints "COMMITTED" and pauses (so a lag stays); with --also-commit TOPIC it
     * commits offset N for each partition of TOPIC in the same commit, a topic it does not
     * subscribe to (as an application that moved off a topic leaves its offsets behind). Runs
     * until killed or until --stop-file exists, then closes (LeaveGroup).
     */
    static void member(Map<String, String> args) throws Exception {
        String topic = Main.required(args, "topic");
        long commit = Long.parseLong(args.getOrDefault("commit", "-1"));
        int expect = Integer.parseInt(args.getOrDefault("partitions", "0"));
        Path stopFile = args.containsKey("stop-file") ? Path.of(args.get("stop-file")) : null;
        // --record-file F: write "partition offset" per consumed record and commitSync after each poll.
        java.io.PrintWriter recordFile = args.containsKey("record-file")
                ? new java.io.PrintWriter(Files.newBufferedWriter(Path.of(args.get("record-file")), StandardCharsets.UTF_8))
                : null;
        // --protocol classic|consumer: the group protocol (KIP-848 with "consumer").
        var props = GroupMember.props(Main.required(args, "bootstrap"), Main.required(args, "group"),
                args.getOrDefault("client-id", "group-member"),
                Map.of("group.protocol", args.getOrDefault("protocol", "classic")));
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(props)) {
            c.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                    if (recordFile != null && !partitions.isEmpty()) {
                        commitQuietly(c);
                    }
                }

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                    String owned = c.assignment().stream().map(TopicPartition::partition).sorted()
                            .map(String::valueOf).collect(Collectors.joining(","));
                    System.out.println("ASSIGNED " + owned);
                    System.out.flush();
                }
            });
            boolean committed = false;
            while (stopFile == null || !Files.exists(stopFile)) {
                var records = c.poll(Duration.ofMillis(100));
                if (recordFile != null && !records.isEmpty()) {
                    for (ConsumerRecord<byte[], byte[]> r : records) {
                        recordFile.println(r.partition() + " " + r.offset());
                    }
                    recordFile.flush();
                    commitQuietly(c);
                }
                if (commit >= 0 && !committed && !c.assignment().isEmpty()
                        && (expect == 0 || c.assignment().size() == expect)) {
                    Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                    c.assignment().forEach(tp -> offsets.put(tp, new OffsetAndMetadata(commit)));
                    if (args.containsKey("also-commit")) {
                        String other = args.get("also-commit");
                        c.partitionsFor(other).forEach(p ->
                                offsets.put(new TopicPartition(other, p.partition()), new OffsetAndMetadata(commit)));
                    }
                    c.commitSync(offsets);
                    c.pause(c.assignment());
                    committed = true;
                    System.out.println("COMMITTED");
                    System.out.flush();
                }
            }
        } finally {
            if (recordFile != null) {
                recordFile.close();
            }
        }
    }

    /** commitSync that survives a broker outage (the live member rides out restarts). */
    private static void commitQuietly(KafkaConsumer<byte[], byte[]> c) {
        try {
            c.commitSync(Duration.ofSeconds(20));
        } catch (Exception e) {
            System.err.println("commit failed: " + Report.describe(e));
        }
    }

    /**
     * The live member of the restart cases (group-member --record-file) stayed subscribed while
     * the broker was stopped and killed: it must have read every record of the topic, each
     * partition in order, none twice (it committed after every poll and nobody else was in
     * its group). Waits up to 30 s for it to catch up.
     */
    static void liveVerify(Map<String, String> args, Report report) {
        String bootstrap = Main.required(args, "bootstrap");
        String topic = Main.required(args, "topic");
        Path file = Path.of(Main.required(args, "records"));
        report.run(Main.required(args, "label"), () -> {
            Map<TopicPartition, Long> ends;
            try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(bootstrap, "live-verify")) {
                ends = c.endOffsets(partitions(topic, 4));
            }
            long total = ends.values().stream().mapToLong(Long::longValue).sum();
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            List<String> lines = List.of();
            while (System.nanoTime() < deadline) {
                lines = Files.exists(file) ? Files.readAllLines(file) : List.of();
                if (lines.size() >= total) {
                    break;
                }
                Thread.sleep(200);
            }
            Map<Integer, List<Long>> seen = new TreeMap<>();
            for (String line : lines) {
                String[] f = line.trim().split(" ");
                if (f.length == 2) {
                    seen.computeIfAbsent(Integer.parseInt(f[0]), k -> new ArrayList<>()).add(Long.parseLong(f[1]));
                }
            }
            for (TopicPartition tp : ends.keySet()) {
                List<Long> offsets = seen.getOrDefault(tp.partition(), List.of());
                long distinct = offsets.stream().distinct().count();
                check(distinct == ends.get(tp), "partition %d: the live member read %d distinct offsets, the log ends at %d "
                        + "(records skipped across the broker restarts)", tp.partition(), distinct, ends.get(tp));
                check(offsets.size() == distinct, "partition %d: the live member read %d records twice across the broker "
                        + "restarts although it committed after every poll", tp.partition(), offsets.size() - distinct);
            }
        });
    }

    static void setup(Map<String, String> args) throws Exception {
        createAndFill(Main.required(args, "bootstrap"), Main.required(args, "topic"),
                Integer.parseInt(Main.required(args, "partitions")), Integer.parseInt(Main.required(args, "records")));
    }

    /**
     * Committed offsets across broker restarts. Step "commit" (round R) commits offset 5R+p with
     * metadata "round-R" for partition p of a 4-partition topic through a subscribed member; run.sh
     * then restarts the broker (SIGTERM, or SIGKILL); step "verify" (round R) expects exactly
     * those offsets back from OffsetFetch, and a new member to resume there.
     */
    static void restart(Map<String, String> args, Report report) {
        String bootstrap = Main.required(args, "bootstrap");
        String step = Main.required(args, "step");
        int round = Integer.parseInt(Main.required(args, "round"));
        String label = Main.required(args, "label");
        String topic = "groups-restart";
        String group = "groups-restart";
        Set<TopicPartition> all = partitions(topic, 4);
        Map<TopicPartition, Long> expected = new HashMap<>();
        all.forEach(tp -> expected.put(tp, 5L * round + tp.partition()));
        GroupTests t = new GroupTests(bootstrap, label);
        if (step.equals("commit")) {
            report.run(label + "/commit-before-restart", () -> {
                if (round == 1) {
                    createAndFill(bootstrap, topic, 4, 50);
                }
                try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(GroupMember.props(bootstrap, group, label + "-commit", Map.of()))) {
                    c.subscribe(List.of(topic));
                    long deadline = System.nanoTime() + JOIN_TIMEOUT.toNanos();
                    while (!c.assignment().equals(all) && System.nanoTime() < deadline) {
                        c.poll(Duration.ofMillis(100));
                    }
                    check(c.assignment().equals(all), "assigned %s, expected all 4 partitions", GroupMember.show(c.assignment()));
                    Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                    expected.forEach((tp, o) -> offsets.put(tp, new OffsetAndMetadata(o, "round-" + round)));
                    c.commitSync(offsets);
                }
            });
        } else {
            report.run(label + "/offsets-survive", () -> {
                try (Admin admin = Clients.admin(bootstrap, label + "-verify")) {
                    Map<TopicPartition, OffsetAndMetadata> got = get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
                    check(offsetsOnly(got).equals(sorted(expected)), "committed offsets after the restart: %s, expected %s",
                            offsetsOnly(got), sorted(expected));
                    for (OffsetAndMetadata om : got.values()) {
                        check(("round-" + round).equals(om.metadata()), "commit metadata after the restart: '%s', expected 'round-%d'",
                                om.metadata(), round);
                    }
                }
            });
            report.run(label + "/resume-after-restart", () -> t.expectResume(group, topic, all, expected));
        }
    }
}
