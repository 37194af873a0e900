package gregor.compat;

import static gregor.compat.Report.check;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.errors.TopicExistsException;

/**
 * Transactions through the Java client, as an application uses them: initTransactions,
 * begin/send/commit and abort over several topics and partitions, sendOffsetsToTransaction in a
 * consume-transform-produce loop, a zombie fenced by a newer producer with the same
 * transactional.id, and a producer that dies inside a transaction. What a read_committed consumer
 * sees is checked record by record; read_uncommitted consumers see every data record and never a
 * control record (the markers only show as gaps in the offsets).
 */
final class TxnTests {
    private static final Duration READ_TIMEOUT = Duration.ofSeconds(30);

    private final String bootstrap;
    private final String label;
    private final String prefix;

    private TxnTests(String bootstrap, String label) {
        this.bootstrap = bootstrap;
        this.label = label;
        this.prefix = label.replace('.', '-') + "-txn-";
    }

    static void run(Map<String, String> args, Report report) {
        TxnTests t = new TxnTests(Main.required(args, "bootstrap"), Main.required(args, "label"));
        report.run(t.label + "/commit-visible-in-order", t::commitVisibleInOrder);
        report.run(t.label + "/abort-never-visible", t::abortNeverVisible);
        report.run(t.label + "/open-transaction-holds-read-committed", t::openTransactionHoldsLso);
        report.run(t.label + "/send-offsets-to-transaction", t::sendOffsetsToTransaction);
        report.run(t.label + "/zombie-fenced", t::zombieFenced);
        report.run(t.label + "/timed-out-transaction-aborted", t::timedOutTransactionAborted);
    }

    /**
     * For the kafka-transactions tool cases: begins a transaction, writes three records to
     * partition 0 of --topic, prints {@code OPEN} and exits without committing or closing, so the
     * transaction stays open on the broker until its timeout (--timeout-ms).
     */
    static void open(Map<String, String> args) throws Exception {
        Map<String, String> overrides = Map.of(
                ProducerConfig.TRANSACTIONAL_ID_CONFIG, Main.required(args, "transactional-id"),
                ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, args.getOrDefault("timeout-ms", "300000"));
        String topic = Main.required(args, "topic");
        KafkaProducer<byte[], byte[]> p = Clients.producer(Main.required(args, "bootstrap"), "txn-open", "none", overrides);
        p.initTransactions();
        p.beginTransaction();
        for (int i = 0; i < 3; i++) {
            p.send(record(new TopicPartition(topic, 0), "open-" + i));
        }
        p.flush();
        System.out.println("OPEN");
        System.out.flush();
        Runtime.getRuntime().halt(0);
    }

    // ---- cases ---------------------------------------------------------------------------------

    /** Two committed transactions over two topics (five partitions): read_committed sees every
     *  record once, each partition in send order. */
    private void commitVisibleInOrder() throws Exception {
        String a = prefix + "commit-a", b = prefix + "commit-b";
        createTopics(Map.of(a, 3, b, 2));
        List<TopicPartition> partitions = List.of(
                new TopicPartition(a, 0), new TopicPartition(a, 1), new TopicPartition(a, 2),
                new TopicPartition(b, 0), new TopicPartition(b, 1));
        Map<TopicPartition, List<String>> sent = new HashMap<>();
        try (KafkaProducer<byte[], byte[]> p = transactional("commit")) {
            p.initTransactions();
            int n = 0;
            for (int txn = 0; txn < 2; txn++) {
                p.beginTransaction();
                for (int i = 0; i < 50; i++, n++) {
                    TopicPartition tp = partitions.get(n % partitions.size());
                    String value = "commit-" + n;
                    p.send(record(tp, value));
                    sent.computeIfAbsent(tp, k -> new ArrayList<>()).add(value);
                }
                p.commitTransaction();
            }
        }
        Map<TopicPartition, List<String>> seen = read(partitions, true, 100);
        check(seen.equals(sent), "read_committed saw %s, expected %s", seen, sent);
    }

    /** Commit, abort, commit on one partition: read_committed sees the two committed
     *  transactions only; read_uncommitted sees all 30 data records; each transaction's marker
     *  takes one offset (end offset 33 for both isolation levels). */
    private void abortNeverVisible() throws Exception {
        String topic = prefix + "abort";
        createTopics(Map.of(topic, 1));
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaProducer<byte[], byte[]> p = transactional("abort")) {
            p.initTransactions();
            for (String kind : List.of("c1", "a", "c2")) {
                p.beginTransaction();
                for (int i = 0; i < 10; i++) {
                    p.send(record(tp, kind + "-" + i));
                }
                if (kind.equals("a")) {
                    p.flush(); // the aborted records really are in the log before the abort
                    p.abortTransaction();
                } else {
                    p.commitTransaction();
                }
            }
        }
        List<String> committed = read(List.of(tp), true, 20).getOrDefault(tp, List.of());
        check(committed.equals(values("c1", 10, "c2", 10)), "read_committed saw %s", committed);
        List<String> all = read(List.of(tp), false, 30).getOrDefault(tp, List.of());
        check(all.equals(values("c1", 10, "a", 10, "c2", 10)), "read_uncommitted saw %s", all);
        for (boolean readCommitted : List.of(true, false)) {
            long end = endOffset(tp, readCommitted);
            check(end == 33, "end offset (read_committed=%s) is %d, expected 33: 30 records and 3 markers",
                    readCommitted, end);
        }
    }

    /** A transaction left open holds read_committed consumers at its first offset (the last
     *  stable offset), also for records written after it by other producers; once it commits
     *  they see everything, in offset order. */
    private void openTransactionHoldsLso() throws Exception {
        String topic = prefix + "lso";
        createTopics(Map.of(topic, 1));
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaProducer<byte[], byte[]> txn = transactional("lso");
             KafkaProducer<byte[], byte[]> plain = Clients.producer(bootstrap, prefix + "lso-plain", "none")) {
            txn.initTransactions();
            txn.beginTransaction();
            for (int i = 0; i < 5; i++) {
                txn.send(record(tp, "txn-" + i));
            }
            txn.flush();
            for (int i = 0; i < 5; i++) {
                plain.send(record(tp, "plain-" + i)).get();
            }
            check(endOffset(tp, true) == 0, "read_committed end offset %d while the transaction is open, expected 0",
                    endOffset(tp, true));
            check(endOffset(tp, false) == 10, "read_uncommitted end offset %d, expected 10", endOffset(tp, false));
            List<String> before = readFor(tp, true, Duration.ofSeconds(2));
            check(before.isEmpty(), "read_committed saw %s while the transaction is open", before);
            txn.commitTransaction();
        }
        List<String> after = read(List.of(tp), true, 10).getOrDefault(tp, List.of());
        check(after.equals(values("txn", 5, "plain", 5)), "read_committed after the commit saw %s", after);
    }

    /** Consume-transform-produce with a consumer group: the first transaction's output and
     *  offsets are committed together; the second is aborted and leaves neither. */
    private void sendOffsetsToTransaction() throws Exception {
        String in = prefix + "ctp-in", out = prefix + "ctp-out", group = prefix + "ctp-group";
        createTopics(Map.of(in, 1, out, 1));
        TopicPartition inTp = new TopicPartition(in, 0), outTp = new TopicPartition(out, 0);
        try (KafkaProducer<byte[], byte[]> plain = Clients.producer(bootstrap, prefix + "ctp-plain", "none")) {
            for (int i = 0; i < 20; i++) {
                plain.send(record(inTp, "in-" + i));
            }
            plain.flush();
        }
        try (KafkaProducer<byte[], byte[]> p = transactional("ctp");
             KafkaConsumer<byte[], byte[]> c = Clients.consumer(bootstrap, prefix + "ctp-consumer", Map.of(
                     ConsumerConfig.GROUP_ID_CONFIG, group,
                     ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed",
                     ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "10"))) {
            p.initTransactions();
            c.subscribe(List.of(in));
            for (int round = 0; round < 2; round++) {
                List<ConsumerRecord<byte[], byte[]>> batch = new ArrayList<>();
                long deadline = System.nanoTime() + READ_TIMEOUT.toNanos();
                while (batch.size() < 10 && System.nanoTime() < deadline) {
                    c.poll(Duration.ofMillis(200)).forEach(batch::add);
                }
                check(batch.size() == 10, "round %d polled %d records, expected 10", round, batch.size());
                p.beginTransaction();
                for (ConsumerRecord<byte[], byte[]> r : batch) {
                    p.send(record(outTp, "out-" + text(r.value()).substring(3)));
                }
                long next = batch.get(batch.size() - 1).offset() + 1;
                p.sendOffsetsToTransaction(Map.of(inTp, new OffsetAndMetadata(next)), c.groupMetadata());
                if (round == 0) {
                    p.commitTransaction();
                } else {
                    p.abortTransaction();
                }
            }
        }
        try (Admin admin = Clients.admin(bootstrap, prefix + "ctp-admin")) {
            Map<TopicPartition, OffsetAndMetadata> offsets =
                    admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
            OffsetAndMetadata committed = offsets.get(inTp);
            check(committed != null && committed.offset() == 10,
                    "the group's committed offset is %s, expected 10 (the aborted transaction's 20 must not count)", committed);
        }
        List<String> output = read(List.of(outTp), true, 10).getOrDefault(outTp, List.of());
        check(output.equals(values("out", 10)), "read_committed output %s", output);
    }

    /** A second producer with the same transactional.id fences the first: the zombie cannot
     *  commit and nothing it wrote is ever visible to read_committed. */
    private void zombieFenced() throws Exception {
        String topic = prefix + "zombie";
        createTopics(Map.of(topic, 1));
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaProducer<byte[], byte[]> zombie = transactional("zombie")) {
            zombie.initTransactions();
            zombie.beginTransaction();
            for (int i = 0; i < 5; i++) {
                zombie.send(record(tp, "zombie-" + i));
            }
            zombie.flush();
            try (KafkaProducer<byte[], byte[]> successor = transactional("zombie")) {
                successor.initTransactions();
                try {
                    zombie.commitTransaction();
                    check(false, "the fenced producer committed");
                } catch (ProducerFencedException e) {
                    // Kafka's answer: the zombie's epoch is older than the transactional id's.
                }
                successor.beginTransaction();
                for (int i = 0; i < 5; i++) {
                    successor.send(record(tp, "successor-" + i));
                }
                successor.commitTransaction();
            }
        }
        List<String> seen = read(List.of(tp), true, 5).getOrDefault(tp, List.of());
        check(seen.equals(values("successor", 5)), "read_committed saw %s", seen);
    }

    /** A producer that stops inside a transaction: the coordinator aborts it once
     *  transaction.timeout.ms has passed, read_committed consumers move past it, and the producer
     *  can no longer commit it. */
    private void timedOutTransactionAborted() throws Exception {
        String topic = prefix + "timeout";
        createTopics(Map.of(topic, 1));
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaProducer<byte[], byte[]> stalled = transactional("timeout",
                Map.of(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, "2000"));
             KafkaProducer<byte[], byte[]> plain = Clients.producer(bootstrap, prefix + "timeout-plain", "none")) {
            stalled.initTransactions();
            stalled.beginTransaction();
            for (int i = 0; i < 5; i++) {
                stalled.send(record(tp, "stalled-" + i));
            }
            stalled.flush();
            plain.send(record(tp, "after")).get();
            // The coordinator checks for timed-out transactions every
            // transaction.abort.timed.out.transaction.cleanup.interval.ms (10 s by default).
            List<String> seen = new ArrayList<>();
            try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(bootstrap, prefix + "timeout-consumer",
                    Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"))) {
                c.assign(List.of(tp));
                c.seekToBeginning(List.of(tp));
                long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
                while (!seen.contains("after") && System.nanoTime() < deadline) {
                    c.poll(Duration.ofMillis(200)).forEach(r -> seen.add(text(r.value())));
                }
            }
            check(seen.equals(List.of("after")), "read_committed saw %s, expected only the later record", seen);
            try {
                stalled.commitTransaction();
                check(false, "the producer committed a transaction the coordinator had aborted");
            } catch (KafkaException e) {
                // Kafka fences it (the abort bumped the epoch); the exact class varies by version.
            }
        }
    }

    // ---- helpers -------------------------------------------------------------------------------

    private KafkaProducer<byte[], byte[]> transactional(String name) {
        return transactional(name, Map.of());
    }

    private KafkaProducer<byte[], byte[]> transactional(String name, Map<String, String> more) {
        Map<String, String> overrides = new HashMap<>(more);
        overrides.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, prefix + name);
        return Clients.producer(bootstrap, prefix + name, "none", overrides);
    }

    private static ProducerRecord<byte[], byte[]> record(TopicPartition tp, String value) {
        byte[] bytes = value.getBytes(StandardCharsets.UTF_8);
        return new ProducerRecord<>(tp.topic(), tp.partition(), bytes, bytes);
    }

    private static String text(byte[] b) {
        return new String(b, StandardCharsets.UTF_8);
    }

    /** values("a", 2, "b", 1) = [a-0, a-1, b-0]. */
    private static List<String> values(Object... kindsAndCounts) {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < kindsAndCounts.length; i += 2) {
            for (int j = 0; j < (Integer) kindsAndCounts[i + 1]; j++) {
                out.add(kindsAndCounts[i] + "-" + j);
            }
        }
        return out;
    }

    private void createTopics(Map<String, Integer> topics) throws Exception {
        try (Admin admin = Clients.admin(bootstrap, prefix + "admin")) {
            for (Map.Entry<String, Integer> t : topics.entrySet()) {
                try {
                    admin.createTopics(List.of(new NewTopic(t.getKey(), t.getValue(), (short) 1))).all().get();
                } catch (ExecutionException e) {
                    if (!(e.getCause() instanceof TopicExistsException)) {
                        throw e;
                    }
                }
            }
        }
    }

    private KafkaConsumer<byte[], byte[]> consumer(boolean readCommitted) {
        return Clients.consumer(bootstrap, prefix + "reader",
                Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, readCommitted ? "read_committed" : "read_uncommitted"));
    }

    /** Every value in the partitions from the beginning, per partition in offset order. */
    private Map<TopicPartition, List<String>> read(List<TopicPartition> partitions, boolean readCommitted, int expected) {
        try (KafkaConsumer<byte[], byte[]> c = consumer(readCommitted)) {
            return Clients.readFromBeginning(c, partitions, expected, READ_TIMEOUT).stream()
                    .collect(Collectors.groupingBy(r -> new TopicPartition(r.topic(), r.partition()),
                            Collectors.mapping(r -> text(r.value()), Collectors.toList())));
        }
    }

    /** What a consumer reads from the beginning of one partition within a fixed time. */
    private List<String> readFor(TopicPartition tp, boolean readCommitted, Duration time) {
        List<String> out = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> c = consumer(readCommitted)) {
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            long deadline = System.nanoTime() + time.toNanos();
            while (System.nanoTime() < deadline) {
                c.poll(Duration.ofMillis(200)).forEach(r -> out.add(text(r.value())));
            }
        }
        return out;
    }

    /** The partition's end offset as a consumer of that isolation level sees it (ListOffsets
     *  latest: the last stable offset for read_committed, the high watermark otherwise). */
    private long endOffset(TopicPartition tp, boolean readCommitted) {
        try (KafkaConsumer<byte[], byte[]> c = consumer(readCommitted)) {
            return c.endOffsets(Set.of(tp)).get(tp);
        }
    }
}
