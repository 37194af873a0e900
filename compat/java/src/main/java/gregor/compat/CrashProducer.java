package gregor.compat;

import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;

/**
 * The producer side of the crash test: sends records "0".."count-1" at a steady rate with the
 * default idempotent producer (acks=all, unlimited retries within delivery.timeout.ms) while
 * run.sh kills and restarts the broker. At most {@link #WINDOW} records are unacknowledged at a
 * time, so an outage pauses the stream instead of piling the whole remainder into the buffer:
 * each kill then lands with requests in flight and more to come. Each number whose send callback reported success goes
 * to the acked file, one per line; failures go to stderr. The file is flushed often because
 * run.sh watches its length to time the kills.
 */
final class CrashProducer {
    private static final int WINDOW = 2000;

    private CrashProducer() {}

    static void run(Map<String, String> args) throws Exception {
        String topic = Main.required(args, "topic");
        int count = Integer.parseInt(Main.required(args, "count"));
        int rate = Integer.parseInt(Main.required(args, "rate"));
        AtomicInteger failed = new AtomicInteger();
        AtomicInteger acked = new AtomicInteger();
        Semaphore window = new Semaphore(WINDOW);
        long interval = 1_000_000_000L / rate;
        long next = System.nanoTime();
        try (BufferedWriter ackedFile = Files.newBufferedWriter(Path.of(Main.required(args, "acked")), StandardCharsets.UTF_8);
             // Default delivery.timeout.ms (120 s) and retries: the producer must ride out the outages.
             KafkaProducer<byte[], byte[]> producer = defaultProducer(Main.required(args, "bootstrap"))) {
            for (int i = 0; i < count; i++) {
                window.acquire();
                // Pace the sends so the kills land mid-stream; after a pause, resume the same rate
                // rather than catching up in one burst.
                long now = System.nanoTime();
                if (next > now) {
                    Thread.sleep((next - now) / 1_000_000, (int) ((next - now) % 1_000_000));
                }
                next = Math.max(next, now) + interval;
                int n = i;
                byte[] value = Integer.toString(n).getBytes(StandardCharsets.UTF_8);
                producer.send(new ProducerRecord<>(topic, 0, null, value), (md, error) -> {
                    // Callbacks run on the single sender thread, so the writer needs no lock.
                    window.release();
                    if (error != null) {
                        if (failed.incrementAndGet() <= 20) {
                            System.err.println("send " + n + " failed: " + Report.describe(error));
                        }
                        return;
                    }
                    try {
                        ackedFile.write(n + "\n");
                        if (acked.incrementAndGet() % 500 == 0) {
                            ackedFile.flush();
                        }
                    } catch (IOException e) {
                        throw new RuntimeException(e);
                    }
                });
            }
            producer.flush();
        }
        System.err.printf("crash-produce: sent %d, acked %d, failed %d%n", count, acked.get(), failed.get());
    }

    private static KafkaProducer<byte[], byte[]> defaultProducer(String bootstrap) {
        java.util.Properties p = new java.util.Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("client.id", "crash-producer");
        p.put("key.serializer", org.apache.kafka.common.serialization.ByteArraySerializer.class.getName());
        p.put("value.serializer", org.apache.kafka.common.serialization.ByteArraySerializer.class.getName());
        return new KafkaProducer<>(p);
    }
}
