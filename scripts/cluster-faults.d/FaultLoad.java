// The load and the history of scripts/cluster-faults (issue 15), with kafka-clients:
//
//   java -cp "<Kafka 4.x jars>/*" FaultLoad.java BOOTSTRAP HISTORY CONTROL_DIR SEED PARTITIONS \
//       DATA_TOPIC TXN_TOPIC
//
// Creates DATA_TOPIC and TXN_TOPIC (PARTITIONS partitions, replication factor 3,
// min.insync.replicas=2), then until CONTROL_DIR/stop appears:
//   - PRODUCERS idempotent acks=all producers write to DATA_TOPIC, each record's value
//     "<producer instance>/<partition>/<seq>", seq counting up per instance and partition;
//   - one transactional producer writes transactions of 1-4 records over TXN_TOPIC's partitions
//     (values "tx<n>/<i>") and commits or aborts each at random.
// Then every partition of both topics is read from the beginning with read_uncommitted and with
// read_committed (after the last stable offset has caught up with the high watermark).
//
// HISTORY gets one JSON object a line, written as things happen:
//   {"k":"send","prod":P,"part":N,"seq":S}                      before each idempotent send
//   {"k":"ack","prod":P,"part":N,"seq":S,"offset":O}            its acknowledgement
//   {"k":"err","prod":P,"part":N,"seq":S,"error":E}             or its failure
//   {"k":"txn-send","txn":T,"part":N,"value":V}                 a transactional send
//   {"k":"txn-ack","txn":T,"part":N,"value":V,"offset":O}       its acknowledgement
//   {"k":"txn","txn":T,"outcome":"committed|aborted|unknown","error":E?}
//   {"k":"read","iso":"ru|rc","topic":..,"part":N,"offset":O,"value":V}
//   {"k":"end","topic":..,"part":N,"hw":H,"lso":L}
// A producer instance that hits a fatal error is closed and replaced (a new instance name, its
// own sequence); a transaction whose commit or abort did not return is "unknown" (it may have
// been committed or aborted, but whole). CONTROL_DIR/progress.json holds the running counts.

import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class FaultLoad {
    static final int PRODUCERS = 3;
    /** Records each idempotent producer sends per second (the machine is shared). */
    static final int RATE = 150;

    static String bootstrap, dataTopic, txnTopic;
    static int partitions;
    static Path stop, progressFile;
    static BufferedWriter history;
    static final AtomicLong sent = new AtomicLong(), acked = new AtomicLong(), failed = new AtomicLong();
    static final AtomicLong committed = new AtomicLong(), aborted = new AtomicLong(), unknown = new AtomicLong();

    public static void main(String[] args) throws Exception {
        bootstrap = args[0];
        history = Files.newBufferedWriter(Path.of(args[1]));
        Path control = Path.of(args[2]);
        long seed = Long.parseLong(args[3]);
        partitions = Integer.parseInt(args[4]);
        dataTopic = args[5];
        txnTopic = args[6];
        stop = control.resolve("stop");
        progressFile = control.resolve("progress.json");

        createTopics();
        List<Thread> threads = new ArrayList<>();
        for (int i = 0; i < PRODUCERS; i++) {
            int id = i;
            threads.add(new Thread(() -> idempotent(id, new Random(seed + id)), "producer-" + i));
        }
        threads.add(new Thread(() -> transactional(new Random(seed - 1)), "transactional"));
        threads.forEach(Thread::start);
        while (!Files.exists(stop)) {
            progress();
            Thread.sleep(200);
        }
        for (Thread t : threads) t.join();
        progress();
        readAll();
        history.close();
        System.out.printf("sent %d, acked %d, failed %d; transactions committed %d, aborted %d, unknown %d%n",
            sent.get(), acked.get(), failed.get(), committed.get(), aborted.get(), unknown.get());
    }

    static synchronized void record(String json) {
        try {
            history.write(json);
            history.write('\n');
        } catch (IOException e) {
            throw new RuntimeException(e);
        }
    }

    static String q(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", " ") + "\"";
    }

    static void progress() throws IOException {
        Path tmp = Path.of(progressFile + ".tmp");
        Files.writeString(tmp, String.format("{\"acked\":%d,\"failed\":%d,\"committed\":%d}%n",
            acked.get(), failed.get(), committed.get()));
        Files.move(tmp, progressFile, StandardCopyOption.ATOMIC_MOVE);
    }

    static Properties common() {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        p.put("key.deserializer", StringDeserializer.class.getName());
        p.put("value.deserializer", StringDeserializer.class.getName());
        return p;
    }

    static void createTopics() throws Exception {
        try (Admin admin = Admin.create(common())) {
            for (String t : List.of(dataTopic, txnTopic)) {
                try {
                    admin.createTopics(List.of(new NewTopic(t, partitions, (short) 3)
                        .configs(Map.of("min.insync.replicas", "2")))).all().get(60, TimeUnit.SECONDS);
                } catch (java.util.concurrent.ExecutionException e) {
                    if (!(e.getCause() instanceof TopicExistsException)) throw e;
                }
            }
        }
    }

    static Properties producerProps() {
        Properties p = common();
        p.put("acks", "all");
        p.put("enable.idempotence", "true");
        p.put("linger.ms", "5");
        p.put("request.timeout.ms", "10000");
        // Long enough that a record is retried through any one fault and its recovery.
        p.put("delivery.timeout.ms", "180000");
        return p;
    }

    /** Idempotent producer `id`: instances p<id>.0, p<id>.1, ... (a new one after a fatal error). */
    static void idempotent(int id, Random rnd) {
        int instance = 0;
        while (!Files.exists(stop)) {
            String name = "p" + id + "." + instance++;
            long[] seq = new long[partitions];
            AtomicLong fatal = new AtomicLong();
            try (KafkaProducer<String, String> producer = new KafkaProducer<>(producerProps())) {
                long started = System.nanoTime(), count = 0;
                while (!Files.exists(stop) && fatal.get() == 0) {
                    int part = rnd.nextInt(partitions);
                    long s = seq[part]++;
                    String value = name + "/" + part + "/" + s;
                    String key = "\"prod\":" + q(name) + ",\"part\":" + part + ",\"seq\":" + s;
                    record("{\"k\":\"send\"," + key + "}");
                    sent.incrementAndGet();
                    try {
                        producer.send(new ProducerRecord<>(dataTopic, part, null, value), (md, e) -> {
                            if (e == null) {
                                acked.incrementAndGet();
                                record("{\"k\":\"ack\"," + key + ",\"offset\":" + md.offset() + "}");
                            } else {
                                failed.incrementAndGet();
                                record("{\"k\":\"err\"," + key + ",\"error\":" + q(e.toString()) + "}");
                                if (!(e instanceof org.apache.kafka.common.errors.RetriableException)) {
                                    fatal.incrementAndGet();
                                }
                            }
                        });
                    } catch (KafkaException e) {
                        failed.incrementAndGet();
                        record("{\"k\":\"err\"," + key + ",\"error\":" + q(e.toString()) + "}");
                        fatal.incrementAndGet();
                    }
                    count++;
                    long due = started + count * 1_000_000_000L / RATE;
                    long wait = due - System.nanoTime();
                    if (wait > 0) Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
                }
                producer.flush();
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    static void transactional(Random rnd) {
        long txn = 0;
        int instance = 0;
        while (!Files.exists(stop)) {
            Properties p = producerProps();
            p.put("transactional.id", "cluster-faults-txn");
            p.put("transaction.timeout.ms", "15000");
            p.put("max.block.ms", "30000");
            KafkaProducer<String, String> producer = new KafkaProducer<>(p);
            instance++;
            try {
                producer.initTransactions();
            } catch (KafkaException e) {
                System.err.println("initTransactions: " + e);
                producer.close(Duration.ZERO);
                sleep(500);
                continue;
            }
            boolean healthy = true;
            while (healthy && !Files.exists(stop)) {
                String t = "tx" + txn++;
                boolean commit = rnd.nextInt(10) < 7;
                int n = 1 + rnd.nextInt(4);
                String outcome = "unknown", error = null;
                try {
                    producer.beginTransaction();
                    for (int i = 0; i < n; i++) {
                        int part = rnd.nextInt(partitions);
                        String value = t + "/" + i;
                        String key = "\"txn\":" + q(t) + ",\"part\":" + part + ",\"value\":" + q(value);
                        record("{\"k\":\"txn-send\"," + key + "}");
                        producer.send(new ProducerRecord<>(txnTopic, part, null, value), (md, e) -> {
                            if (e == null) record("{\"k\":\"txn-ack\"," + key + ",\"offset\":" + md.offset() + "}");
                        });
                    }
                    if (commit) {
                        producer.commitTransaction();
                        outcome = "committed";
                    } else {
                        producer.abortTransaction();
                        outcome = "aborted";
                    }
                } catch (KafkaException e) {
                    error = e.toString();
                    // An abortable error leaves the producer usable once it aborts; anything
                    // else (fenced, fatal, a timed-out commit) starts a new producer, whose
                    // initTransactions completes or aborts what this one left.
                    try {
                        producer.abortTransaction();
                        outcome = "aborted";
                    } catch (KafkaException e2) {
                        healthy = false;
                    }
                }
                switch (outcome) {
                    case "committed" -> committed.incrementAndGet();
                    case "aborted" -> aborted.incrementAndGet();
                    default -> unknown.incrementAndGet();
                }
                record("{\"k\":\"txn\",\"txn\":" + q(t) + ",\"outcome\":\"" + outcome + "\""
                    + (error == null ? "" : ",\"error\":" + q(error)) + "}");
                sleep(50);
            }
            producer.close(Duration.ofSeconds(5));
        }
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Reads every partition of both topics, read_uncommitted then read_committed. */
    static void readAll() throws Exception {
        for (String topic : List.of(dataTopic, txnTopic)) {
            for (int part = 0; part < partitions; part++) {
                TopicPartition tp = new TopicPartition(topic, part);
                long hw = read(tp, "read_uncommitted", -1);
                long lso = read(tp, "read_committed", hw);
                record("{\"k\":\"end\",\"topic\":" + q(topic) + ",\"part\":" + part + ",\"hw\":" + hw + ",\"lso\":" + lso + "}");
            }
        }
        history.flush();
    }

    /**
     * Reads tp from the beginning to its end offset at `isolation` and returns that end. With
     * read_committed, first waits (up to two minutes) for the last stable offset to reach `hw`:
     * a transaction left open by a producer that went away is aborted by its timeout.
     */
    static long read(TopicPartition tp, String isolation, long hw) throws Exception {
        Properties c = common();
        c.put("enable.auto.commit", "false");
        c.put("isolation.level", isolation);
        String iso = isolation.equals("read_committed") ? "rc" : "ru";
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c)) {
            consumer.assign(List.of(tp));
            consumer.seekToBeginning(List.of(tp));
            long end = consumer.endOffsets(List.of(tp)).get(tp);
            long deadline = System.currentTimeMillis() + 120_000;
            while (hw >= 0 && end < hw && System.currentTimeMillis() < deadline) {
                Thread.sleep(500);
                end = consumer.endOffsets(List.of(tp)).get(tp);
            }
            while (consumer.position(tp) < end) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofSeconds(1))) {
                    if (r.offset() >= end) break;
                    record("{\"k\":\"read\",\"iso\":\"" + iso + "\",\"topic\":" + q(tp.topic()) + ",\"part\":"
                        + tp.partition() + ",\"offset\":" + r.offset() + ",\"value\":" + q(r.value()) + "}");
                }
            }
            return end;
        }
    }
}
