// The clients of scripts/coordinator-cluster: a consume-transform-produce loop with exactly-once
// semantics (a KafkaConsumer in a consumer group, read_committed, and a transactional producer
// that commits the group's offsets in its transactions) copies a topic IN to a topic OUT while an
// idempotent producer keeps writing IN, until a stop file appears; the script kill -9s the
// processes leading the group's and the transactional id's coordinator partitions meanwhile.
// Then the loop drains IN, and OUT is read back read_committed: every acknowledged record of IN
// must be in OUT exactly once. Prints the figures; exits 1 on any anomaly.
//
//   java -cp "<kafka-clients and its dependencies>/*" CoordinatorCheck.java \
//       BOOTSTRAP IN OUT GROUP_PROTOCOL STOP_FILE PROGRESS_FILE COORDINATORS_FILE
//
// PROGRESS_FILE gets the count of records copied in committed transactions as it grows;
// COORDINATORS_FILE "GROUP_COORDINATOR TXN_COORDINATOR" (node ids) as the Admin client sees them,
// refreshed every second: the script kills those nodes.

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.AuthorizationException;
import org.apache.kafka.common.errors.OutOfOrderSequenceException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class CoordinatorCheck {
    static final String TXN_ID = "coordinator-check-copier";
    static final String GROUP = "coordinator-check";

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], in = args[1], out = args[2], protocol = args[3];
        Path stop = Path.of(args[4]), progress = Path.of(args[5]), coordinators = Path.of(args[6]);
        Set<String> acked = ConcurrentHashMap.newKeySet();
        AtomicLong failed = new AtomicLong();
        Thread input = new Thread(() -> produceInput(bootstrap, in, stop, acked, failed));
        input.start();
        Thread watcher = new Thread(() -> watchCoordinators(bootstrap, coordinators));
        watcher.setDaemon(true);
        watcher.start();
        long copied = copy(bootstrap, in, out, protocol, stop, progress, input);
        input.join();
        System.exit(verify(bootstrap, out, acked, failed.get(), copied) ? 0 : 1);
    }

    /** An idempotent acks=all producer writing numbered records to IN until the stop file. */
    static void produceInput(String bootstrap, String in, Path stop, Set<String> acked, AtomicLong failed) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("acks", "all");
        p.put("enable.idempotence", "true");
        p.put("delivery.timeout.ms", "120000");
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            for (long i = 0; !Files.exists(stop); i++) {
                String value = "i" + i;
                producer.send(new ProducerRecord<>(in, value, value), (md, e) -> {
                    if (e == null) {
                        acked.add(value);
                    } else {
                        failed.incrementAndGet();
                        System.err.println("input not acknowledged: " + value + ": " + e);
                    }
                });
                if (i % 50 == 0) {
                    Thread.sleep(20);
                }
            }
            producer.flush();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Writes "GROUP_COORDINATOR TXN_COORDINATOR" every second, as the Admin client finds them. */
    static void watchCoordinators(String bootstrap, Path file) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("default.api.timeout.ms", "5000");
        p.put("request.timeout.ms", "3000");
        try (Admin admin = Admin.create(p)) {
            while (true) {
                try {
                    int group = admin.describeConsumerGroups(List.of(GROUP)).describedGroups().get(GROUP).get()
                        .coordinator().id();
                    int txn = admin.describeTransactions(List.of(TXN_ID)).description(TXN_ID).get().coordinatorId();
                    Path tmp = Path.of(file + ".tmp");
                    Files.writeString(tmp, group + " " + txn + "\n");
                    Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE);
                } catch (Exception e) {
                    // A coordinator moving: asked again in a second.
                }
                Thread.sleep(1000);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    static KafkaProducer<String, String> transactionalProducer(String bootstrap) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("transactional.id", TXN_ID);
        p.put("transaction.timeout.ms", "30000");
        p.put("delivery.timeout.ms", "120000");
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        KafkaProducer<String, String> producer = new KafkaProducer<>(p);
        producer.initTransactions();
        return producer;
    }

    /**
     * The exactly-once loop (Kafka's EOS example): poll, copy in a transaction with the group's
     * offsets, commit; an abortable error aborts and rewinds to the committed offsets, a fatal one
     * makes a new producer. After the stop file, runs until the group's committed offsets reach
     * the end of IN. Returns the records copied in committed transactions.
     */
    static long copy(String bootstrap, String in, String out, String protocol, Path stop, Path progress,
            Thread input) throws Exception {
        Properties c = new Properties();
        c.put("bootstrap.servers", bootstrap);
        c.put("group.id", GROUP);
        c.put("group.protocol", protocol);
        c.put("isolation.level", "read_committed");
        c.put("enable.auto.commit", "false");
        c.put("auto.offset.reset", "earliest");
        c.put("key.deserializer", StringDeserializer.class.getName());
        c.put("value.deserializer", StringDeserializer.class.getName());
        long copied = 0, aborted = 0, fatal = 0;
        KafkaProducer<String, String> producer = transactionalProducer(bootstrap);
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c)) {
            consumer.subscribe(List.of(in));
            while (true) {
                if (Files.exists(stop) && !input.isAlive() && drained(consumer, in)) {
                    break;
                }
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
                if (records.isEmpty()) {
                    continue;
                }
                try {
                    producer.beginTransaction();
                    Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                    for (ConsumerRecord<String, String> r : records) {
                        producer.send(new ProducerRecord<>(out, r.key(), r.value()));
                        offsets.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                    }
                    producer.sendOffsetsToTransaction(offsets, consumer.groupMetadata());
                    producer.commitTransaction();
                    copied += records.count();
                    Path tmp = Path.of(progress + ".tmp");
                    Files.writeString(tmp, copied + "\n");
                    Files.move(tmp, progress, StandardCopyOption.ATOMIC_MOVE);
                } catch (ProducerFencedException | OutOfOrderSequenceException | AuthorizationException e) {
                    fatal++;
                    System.err.println("fatal: " + e);
                    producer.close(Duration.ZERO);
                    producer = transactionalProducer(bootstrap);
                    rewind(consumer);
                } catch (KafkaException e) {
                    aborted++;
                    System.err.println("aborted: " + e);
                    producer.abortTransaction();
                    rewind(consumer);
                }
            }
        } finally {
            producer.close();
        }
        System.out.printf("copier: %d records in committed transactions, %d aborted, %d new producers%n",
            copied, aborted, fatal);
        return copied;
    }

    /** Back to the group's committed offsets (what the aborted transaction did not commit). */
    static void rewind(KafkaConsumer<String, String> consumer) {
        Map<TopicPartition, OffsetAndMetadata> committed = consumer.committed(consumer.assignment());
        for (TopicPartition tp : consumer.assignment()) {
            OffsetAndMetadata o = committed.get(tp);
            if (o != null) {
                consumer.seek(tp, o.offset());
            } else {
                consumer.seekToBeginning(List.of(tp));
            }
        }
    }

    /** Whether the group's committed offsets reached the end of every partition of IN. */
    static boolean drained(KafkaConsumer<String, String> consumer, String in) {
        Set<TopicPartition> all = new HashSet<>();
        consumer.partitionsFor(in).forEach(p -> all.add(new TopicPartition(in, p.partition())));
        Map<TopicPartition, Long> ends = consumer.endOffsets(all);
        Map<TopicPartition, OffsetAndMetadata> committed = consumer.committed(all);
        for (TopicPartition tp : all) {
            OffsetAndMetadata o = committed.get(tp);
            if (ends.get(tp) > 0 && (o == null || o.offset() < ends.get(tp))) {
                return false;
            }
        }
        return true;
    }

    /** Reads OUT read_committed: each acknowledged input record exactly once. */
    static boolean verify(String bootstrap, String out, Set<String> acked, long failedInput, long copied) {
        Properties c = new Properties();
        c.put("bootstrap.servers", bootstrap);
        c.put("isolation.level", "read_committed");
        c.put("key.deserializer", StringDeserializer.class.getName());
        c.put("value.deserializer", StringDeserializer.class.getName());
        Map<String, Integer> seen = new HashMap<>();
        long read = 0, duplicates = 0, lost = 0;
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c)) {
            Set<TopicPartition> all = new HashSet<>();
            consumer.partitionsFor(out).forEach(p -> all.add(new TopicPartition(out, p.partition())));
            consumer.assign(all);
            consumer.seekToBeginning(all);
            Map<TopicPartition, Long> ends = consumer.endOffsets(all);
            while (all.stream().anyMatch(tp -> consumer.position(tp) < ends.get(tp))) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofSeconds(1))) {
                    read++;
                    if (seen.merge(r.value(), 1, Integer::sum) > 1) {
                        duplicates++;
                        System.err.println("duplicate: " + r.value() + " at " + r.partition() + "/" + r.offset());
                    }
                }
            }
        }
        for (String a : acked) {
            if (!seen.containsKey(a)) {
                lost++;
                System.err.println("lost: " + a);
            }
        }
        System.out.printf(
            "input acknowledged %d (not acknowledged %d), copied %d, read committed %d, lost %d, duplicated %d%n",
            acked.size(), failedInput, copied, read, lost, duplicates);
        return lost == 0 && duplicates == 0;
    }
}
