package gregor.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.RebalanceInProgressException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * One subscribe() consumer of a group, polling on a thread of its own (KafkaConsumer is not
 * thread-safe): the group tests start several in one JVM and watch what each one is assigned,
 * what it consumes and how often it is rebalanced, while the main thread checks.
 *
 * <p>Every record returned by poll() is kept as (partition, offset, value). With
 * {@code commitEachPoll} the member commits its position after each non-empty poll and in
 * onPartitionsRevoked, the textbook way to get no duplicates across rebalances.
 */
final class GroupMember implements AutoCloseable {
    /** A consumed record: where it was and what it said. */
    record Seen(int partition, long offset, String value) {}

    final String name;
    private final KafkaConsumer<byte[], byte[]> consumer;
    private final Thread thread;
    private final boolean commitEachPoll;
    private final ConcurrentLinkedQueue<Consumer<KafkaConsumer<byte[], byte[]>>> tasks = new ConcurrentLinkedQueue<>();
    final ConcurrentLinkedQueue<Seen> seen = new ConcurrentLinkedQueue<>();
    final List<String> events = java.util.Collections.synchronizedList(new ArrayList<>());
    /** onPartitionsAssigned calls (eager rebalances call it every time, cooperative ones too). */
    final AtomicInteger assignCalls = new AtomicInteger();
    /** onPartitionsRevoked / onPartitionsLost calls with a non-empty set. */
    final AtomicInteger revokeCalls = new AtomicInteger();
    private volatile Set<TopicPartition> assignment = Set.of();
    private volatile boolean stop;
    private volatile boolean closeOnStop = true;
    private volatile Throwable error;

    /** Consumer settings for a group member; {@code overrides} win. */
    static Properties props(String bootstrap, String group, String clientId, Map<String, String> overrides) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, clientId);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, "20000");
        // Short enough that a broken coordinator fails a case quickly, still Kafka-valid
        // (group.min.session.timeout.ms is 6000).
        // The consumer protocol (KIP-848) refuses these two: the broker decides them there.
        if (!"consumer".equals(overrides.get("group.protocol"))) {
            p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "10000");
            p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "1000");
        }
        p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "200");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.putAll(overrides);
        return p;
    }

    GroupMember(String bootstrap, String group, String name, Collection<String> topics,
            Map<String, String> overrides, boolean commitEachPoll) {
        this.name = name;
        this.commitEachPoll = commitEachPoll;
        this.consumer = new KafkaConsumer<>(props(bootstrap, group, name, overrides));
        this.thread = new Thread(() -> loop(List.copyOf(topics)), "member-" + name);
        thread.setDaemon(true);
        thread.start();
    }

    private ConsumerRebalanceListener listener;

    private void loop(List<String> topics) {
        try {
            listener = new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                    if (!partitions.isEmpty()) {
                        revokeCalls.incrementAndGet();
                        if (commitEachPoll) {
                            consumer.commitSync();
                        }
                    }
                    Set<TopicPartition> left = new HashSet<>(assignment);
                    left.removeAll(partitions);
                    assignment = Set.copyOf(left);
                    events.add("revoked " + show(partitions));
                }

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                    assignCalls.incrementAndGet();
                    assignment = Set.copyOf(consumer.assignment());
                    events.add("assigned " + show(partitions) + " -> " + show(assignment));
                }

                @Override
                public void onPartitionsLost(Collection<TopicPartition> partitions) {
                    if (!partitions.isEmpty()) {
                        revokeCalls.incrementAndGet();
                    }
                    Set<TopicPartition> left = new HashSet<>(assignment);
                    left.removeAll(partitions);
                    assignment = Set.copyOf(left);
                    events.add("lost " + show(partitions));
                }
            };
            consumer.subscribe(topics, listener);
            while (!stop) {
                var records = consumer.poll(Duration.ofMillis(100));
                for (ConsumerRecord<byte[], byte[]> r : records) {
                    seen.add(new Seen(r.partition(), r.offset(), r.value() == null ? null : new String(r.value())));
                }
                if (commitEachPoll && !records.isEmpty()) {
                    try {
                        consumer.commitSync();
                    } catch (RebalanceInProgressException e) {
                        // A cooperative rebalance is under way (Kafka: REBALANCE_IN_PROGRESS on
                        // OffsetCommit); the next poll completes it, and onPartitionsRevoked or
                        // the next commit covers these records.
                    }
                }
                Consumer<KafkaConsumer<byte[], byte[]>> task;
                while ((task = tasks.poll()) != null) {
                    task.accept(consumer);
                }
            }
        } catch (Throwable e) {
            error = e;
            events.add("error " + Report.describe(e));
        } finally {
            if (closeOnStop) {
                try {
                    consumer.close(Duration.ofSeconds(15));
                } catch (Throwable e) {
                    if (error == null) {
                        error = e;
                    }
                }
            }
        }
    }

    Set<TopicPartition> assignment() {
        return assignment;
    }

    Throwable error() {
        return error;
    }

    boolean alive() {
        return thread.isAlive();
    }

    /** Runs {@code task} on the member's thread between two polls. */
    void submit(Consumer<KafkaConsumer<byte[], byte[]>> task) {
        tasks.add(task);
    }

    /** Changes the subscription (on the member's thread); the next poll rejoins with it. */
    void resubscribe(Collection<String> topics) {
        List<String> copy = List.copyOf(topics);
        submit(c -> c.subscribe(copy, listener));
    }

    /** Records consumed per partition. */
    Map<Integer, List<Seen>> byPartition() {
        Map<Integer, List<Seen>> m = new HashMap<>();
        for (Seen s : seen) {
            m.computeIfAbsent(s.partition(), k -> new ArrayList<>()).add(s);
        }
        return m;
    }

    /** Stops polling and closes the consumer (commit on close if auto-commit, LeaveGroup if dynamic). */
    @Override
    public void close() throws InterruptedException {
        stop = true;
        thread.join(30_000);
    }

    String describe() {
        return name + " assignment " + show(assignment) + ", events " + events + (error == null ? "" : ", error " + Report.describe(error));
    }

    static String show(Collection<TopicPartition> partitions) {
        TreeSet<String> s = new TreeSet<>();
        for (TopicPartition tp : partitions) {
            s.add(tp.topic() + "-" + tp.partition());
        }
        return s.toString();
    }
}
