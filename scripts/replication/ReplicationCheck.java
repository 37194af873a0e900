// The producer and the checker of scripts/replication-cluster: an idempotent acks=all producer
// writes numbered records to partition 0 of a topic until a stop file appears, recording the
// offset of every acknowledged record; then every record of the partition is read back and
// checked: each acknowledged record present exactly once at the offset it was acknowledged at,
// no record twice, offsets dense. Prints the figures; exits 1 on any anomaly.
//
//   java -cp "<kafka-clients and its dependencies>/*" ReplicationCheck.java \
//       BOOTSTRAP TOPIC STOP_FILE PROGRESS_FILE
//
// PROGRESS_FILE gets the count of acknowledged records, rewritten as it grows (the script waits
// on it to see the producer make progress after each fault).

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class ReplicationCheck {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1];
        Path stop = Path.of(args[2]), progress = Path.of(args[3]);
        Map<String, Long> acked = new ConcurrentHashMap<>();
        AtomicLong failed = new AtomicLong();
        long sent = 0;
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("acks", "all");
        p.put("enable.idempotence", "true");
        p.put("linger.ms", "5");
        p.put("delivery.timeout.ms", "120000");
        p.put("request.timeout.ms", "10000");
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        long lastReported = -1;
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            while (!Files.exists(stop)) {
                String value = "r" + sent++;
                producer.send(new ProducerRecord<>(topic, 0, null, value), (md, e) -> {
                    if (e == null) {
                        acked.put(value, md.offset());
                    } else {
                        failed.incrementAndGet();
                        System.err.println("not acknowledged: " + value + ": " + e);
                    }
                });
                if (sent % 200 == 0) {
                    Thread.sleep(20);
                    if (acked.size() != lastReported) {
                        lastReported = acked.size();
                        Path tmp = Path.of(progress + ".tmp");
                        Files.writeString(tmp, lastReported + "\n");
                        Files.move(tmp, progress, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
                    }
                }
            }
            producer.flush();
        }
        Properties c = new Properties();
        c.put("bootstrap.servers", bootstrap);
        c.put("key.deserializer", StringDeserializer.class.getName());
        c.put("value.deserializer", StringDeserializer.class.getName());
        c.put("enable.auto.commit", "false");
        TopicPartition tp = new TopicPartition(topic, 0);
        Map<Long, String> read = new HashMap<>();
        Map<String, Integer> seen = new HashMap<>();
        long duplicates = 0, gaps = 0, misplaced = 0, lost = 0;
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c)) {
            consumer.assign(List.of(tp));
            consumer.seekToBeginning(List.of(tp));
            long end = consumer.endOffsets(List.of(tp)).get(tp);
            long expected = consumer.position(tp);
            long start = expected;
            while (consumer.position(tp) < end) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofSeconds(1))) {
                    if (r.offset() != expected) {
                        gaps++;
                        System.err.println("gap: offset " + r.offset() + " after " + (expected - 1));
                    }
                    expected = r.offset() + 1;
                    read.put(r.offset(), r.value());
                    if (seen.merge(r.value(), 1, Integer::sum) > 1) {
                        duplicates++;
                        System.err.println("duplicate: " + r.value() + " at " + r.offset());
                    }
                }
            }
            for (Map.Entry<String, Long> a : acked.entrySet()) {
                String at = read.get(a.getValue());
                if (!seen.containsKey(a.getKey())) {
                    lost++;
                    System.err.println("lost: " + a.getKey() + " acknowledged at " + a.getValue());
                } else if (!a.getKey().equals(at)) {
                    misplaced++;
                    System.err.println("misplaced: " + a.getKey() + " acknowledged at " + a.getValue());
                }
            }
            System.out.printf(
                "sent %d, acknowledged %d, not acknowledged %d, read %d (offsets %d..%d), lost %d, duplicated %d, misplaced %d, gaps %d%n",
                sent, acked.size(), failed.get(), read.size(), start, end - 1, lost, duplicates, misplaced, gaps);
        }
        System.exit(lost + duplicates + misplaced + gaps == 0 ? 0 : 1);
    }
}
