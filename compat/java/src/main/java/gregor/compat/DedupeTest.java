package gregor.compat;

import static gregor.compat.Report.check;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;

/**
 * Idempotence made deterministic: the crash test's kills rarely land between a batch's append and
 * its response, so here a {@link Proxy} loses chosen Produce responses on purpose. The broker is
 * started with its advertised listener on the proxy port, so every client connection goes through
 * the proxy.
 *
 * <ol>
 *   <li>The response to Produce #{@value #DROP_LIVE} is lost; the producer retries the batch on a
 *       new connection; the broker must answer it from its idempotence state, not append again.
 *   <li>The response to Produce #{@value #DROP_BEFORE_RESTART} is lost, the proxy stops accepting
 *       connections and writes {@code dropped} to the signal directory; run.sh kills the broker
 *       with SIGKILL, restarts it and writes {@code restarted}; only then does the retry go out. The
 *       restarted broker must have rebuilt the producer state from its log (as Kafka does) to
 *       recognise the retry.
 * </ol>
 *
 * Only this producer writes the topic, so record n must end up at offset n exactly once.
 */
final class DedupeTest {
    static final int DROP_LIVE = 3;
    static final int DROP_BEFORE_RESTART = 6;
    private static final int ROUNDS = 10;
    private static final int PER_ROUND = 20;

    private DedupeTest() {}

    static void run(Map<String, String> args, Report report) throws Exception {
        int brokerPort = Integer.parseInt(Main.required(args, "broker-port"));
        int proxyPort = Integer.parseInt(Main.required(args, "proxy-port"));
        Path signals = Path.of(Main.required(args, "signal-dir"));
        String topic = "dedupe";
        String bootstrap = "127.0.0.1:" + proxyPort;

        Proxy[] holder = new Proxy[1];
        Runnable onDrop = () -> {
            if (holder[0].dropped() == 2) { // the second drop: hand over to run.sh for the kill
                holder[0].closeGate();
                touch(signals.resolve("dropped"));
                Thread opener = new Thread(() -> {
                    waitFor(signals.resolve("restarted"), Duration.ofSeconds(90));
                    holder[0].openGate();
                }, "gate-opener");
                opener.setDaemon(true);
                opener.start();
            }
        };
        try (Proxy proxy = new Proxy(proxyPort, brokerPort, n -> n == DROP_LIVE || n == DROP_BEFORE_RESTART, onDrop)) {
            holder[0] = proxy;
            List<Future<RecordMetadata>> acks = new ArrayList<>();
            int restartRound = -1;
            String produceError = null;
            try (KafkaProducer<byte[], byte[]> producer = Clients.producer(bootstrap, "dedupe", "none",
                    Map.of("delivery.timeout.ms", "120000"))) {
                // One flush per round, so each round is one or a few Produce requests.
                for (int round = 0; round < ROUNDS; round++) {
                    for (int i = 0; i < PER_ROUND; i++) {
                        byte[] value = Integer.toString(round * PER_ROUND + i).getBytes(StandardCharsets.UTF_8);
                        acks.add(producer.send(new ProducerRecord<>(topic, 0, null, value)));
                    }
                    producer.flush();
                    if (restartRound < 0 && proxy.dropped() >= 2) {
                        restartRound = round;
                    }
                }
            }
            List<Integer> badAcks = new ArrayList<>();
            for (int n = 0; n < acks.size(); n++) {
                try {
                    if (acks.get(n).get().offset() != n && badAcks.size() < 5) {
                        badAcks.add(n);
                    }
                } catch (ExecutionException e) {
                    produceError = "send of " + n + " failed: " + Report.describe(e.getCause());
                    break;
                }
            }

            List<Integer> log = readLog(bootstrap, topic, ROUNDS * PER_ROUND);
            int split = restartRound < 0 ? ROUNDS * PER_ROUND : restartRound * PER_ROUND;
            boolean restarted = Files.exists(signals.resolve("restarted"));
            String error = produceError;
            report.run("dedupe/lost-response-retried-live", () -> {
                check(proxy.dropped() >= 1, "the proxy never dropped a Produce response (only %d Produce requests?)",
                        DROP_LIVE - 1);
                check(error == null, "%s", error);
                checkRange(log, 0, split);
            });
            int restartSplit = split;
            report.run("dedupe/lost-response-retried-after-kill9-restart", () -> {
                check(proxy.dropped() >= 2 && restarted, "the second response drop or the broker restart did not happen "
                        + "(dropped %d, restarted %s)", proxy.dropped(), restarted);
                check(error == null, "%s", error);
                checkRange(log, restartSplit, ROUNDS * PER_ROUND);
            });
            report.run("dedupe/acked-offsets", () -> check(badAcks.isEmpty() && error == null,
                    "records %s were acknowledged at offsets other than their number (a retry got a new offset)", badAcks));
            report.run("dedupe/log-is-exactly-the-records", () -> {
                List<Integer> expected = new ArrayList<>();
                for (int n = 0; n < ROUNDS * PER_ROUND; n++) {
                    expected.add(n);
                }
                check(log.equals(expected), "log holds %d records %s..., expected 0..%d once each in order",
                        log.size(), log.subList(0, Math.min(log.size(), 12)), ROUNDS * PER_ROUND - 1);
            });
        }
    }

    /** Numbers in [from, to) appear exactly once in the log, at offset = number. */
    private static void checkRange(List<Integer> log, int from, int to) {
        int[] seen = new int[to - from];
        for (int offset = 0; offset < log.size(); offset++) {
            int n = log.get(offset);
            if (n >= from && n < to) {
                seen[n - from]++;
                check(seen[n - from] == 1, "record %d is in the log twice (again at offset %d): a retried batch was appended again",
                        n, offset);
                check(offset == n, "record %d is at offset %d", n, offset);
            }
        }
        for (int i = 0; i < seen.length; i++) {
            check(seen[i] == 1, "record %d is missing from the log", from + i);
        }
    }

    private static List<Integer> readLog(String bootstrap, String topic, int expected) {
        TopicPartition tp = new TopicPartition(topic, 0);
        List<Integer> numbers = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(bootstrap, "dedupe-verify")) {
            // Read a little past the expected count so duplicates at the end show up too.
            for (ConsumerRecord<byte[], byte[]> r : Clients.readFromBeginning(consumer, List.of(tp), expected + 1, Duration.ofSeconds(5))) {
                numbers.add(Integer.parseInt(new String(r.value(), StandardCharsets.UTF_8)));
            }
        }
        return numbers;
    }

    private static void touch(Path path) {
        try {
            Files.writeString(path, "");
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    private static void waitFor(Path path, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!Files.exists(path) && System.nanoTime() < deadline) {
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                return;
            }
        }
    }
}
