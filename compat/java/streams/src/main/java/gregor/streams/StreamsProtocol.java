package gregor.streams;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.ThreadMetadata;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;

/**
 * A Kafka Streams word count under the streams rebalance protocol (KIP-1071,
 * group.protocol=streams): the broker configures the topology, creates its repartition and
 * changelog topics, and assigns the tasks. The programs that feed and check it:
 *
 * <pre>
 *   run     --bootstrap B --app-id A --input I --output O --state-dir D [--guarantee G]
 *           prints RUNNING, then TASKS n (its active tasks) whenever they change
 *   produce --bootstrap B --input I --output O --lines N --rate R [--partitions P]
 *           creates both topics, then writes line i = words(i) for i in [0, N)
 *   verify  --bootstrap B --app-id A --output O --lines N --label L
 * </pre>
 *
 * verify passes when the last count of every word is the number of times the input holds it
 * (each input counted once in the end, across the instances that ran), and the application's
 * repartition and changelog topics exist with the input's partition count (made by the broker).
 */
public final class StreamsProtocol {
    private StreamsProtocol() {}

    public static void main(String[] argv) throws Exception {
        Map<String, String> args = new HashMap<>();
        for (int i = 1; i + 1 < argv.length; i += 2) {
            args.put(argv[i].replaceFirst("^--", ""), argv[i + 1]);
        }
        switch (argv.length == 0 ? "" : argv[0]) {
            case "run" -> run(args);
            case "produce" -> produce(args);
            case "verify" -> System.exit(verify(args) ? 0 : 1);
            default -> {
                System.err.println("usage: StreamsProtocol run|produce|verify --name value ...");
                System.exit(2);
            }
        }
    }

    static List<String> words(long line) {
        return List.of("w" + (line % 11), "v" + (line % 5));
    }

    private static void run(Map<String, String> args) throws Exception {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, args.get("app-id"));
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args.get("bootstrap"));
        p.put(StreamsConfig.GROUP_PROTOCOL_CONFIG, "streams");
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, args.getOrDefault("guarantee", StreamsConfig.AT_LEAST_ONCE));
        p.put(StreamsConfig.STATE_DIR_CONFIG, args.get("state-dir"));
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "200");
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, "0");
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, "1");
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");

        AtomicLong processed = new AtomicLong();
        StreamsBuilder b = new StreamsBuilder();
        b.stream(args.get("input"), Consumed.with(Serdes.String(), Serdes.String()))
                .flatMapValues(line -> Arrays.asList(line.split(" ")))
                .groupBy((k, word) -> word, Grouped.with("words", Serdes.String(), Serdes.String()))
                .count(Materialized.as("counts"))
                .toStream()
                .peek((word, count) -> {
                    long n = processed.incrementAndGet();
                    if (n % 500 == 0) {
                        System.out.println("PROCESSED " + n);
                        System.out.flush();
                    }
                })
                .to(args.get("output"), Produced.with(Serdes.String(), Serdes.Long()));

        KafkaStreams streams = new KafkaStreams(b.build(), p);
        streams.setStateListener((now, before) -> {
            System.out.println(now == KafkaStreams.State.RUNNING ? "RUNNING" : "STATE " + now);
            System.out.flush();
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(30));
            System.out.println("CLOSED");
            System.out.flush();
        }));
        streams.start();
        // The tasks the broker gave this instance, whenever they change.
        String last = "";
        while (true) {
            Set<String> tasks = new TreeSet<>();
            try {
                for (ThreadMetadata t : streams.metadataForLocalThreads()) {
                    t.activeTasks().forEach(task -> tasks.add(task.taskId().toString()));
                }
            } catch (IllegalStateException notRunning) {
                // Closing.
            }
            String now = tasks.size() + " " + tasks;
            if (!now.equals(last)) {
                System.out.println("TASKS " + now);
                System.out.flush();
                last = now;
            }
            Thread.sleep(200);
        }
    }

    private static void produce(Map<String, String> args) throws Exception {
        int partitions = Integer.parseInt(args.getOrDefault("partitions", "4"));
        EosWordCount.produceLines(args, StreamsProtocol::words, partitions);
    }

    private static boolean verify(Map<String, String> args) throws Exception {
        String label = args.getOrDefault("label", "streams-protocol");
        String app = args.get("app-id");
        long lines = Long.parseLong(args.get("lines"));
        Map<String, Long> expected = new TreeMap<>();
        for (long i = 0; i < lines; i++) {
            for (String w : words(i)) {
                expected.merge(w, 1L, Long::sum);
            }
        }
        boolean ok = true;
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args.get("bootstrap"));
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        // exactly_once_v2 writes in transactions: only committed counts count.
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        long deadline = System.nanoTime() + Duration.ofSeconds(Long.parseLong(args.getOrDefault("timeout-s", "120"))).toNanos();
        Map<String, Long> last = new TreeMap<>();
        try (KafkaConsumer<String, Long> c = new KafkaConsumer<>(p, new StringDeserializer(), new LongDeserializer())) {
            // The internal topics the broker created for the application.
            Map<String, List<PartitionInfo>> topics = c.listTopics();
            int inputPartitions = topics.get(args.get("output")).size();
            for (String internal : List.of(app + "-words-repartition", app + "-counts-changelog")) {
                List<PartitionInfo> parts = topics.get(internal);
                if (parts == null || parts.size() != inputPartitions) {
                    System.out.println("FAIL " + label + "/internal-topics: " + internal + " has "
                            + (parts == null ? "no partitions (missing)" : parts.size() + " partitions")
                            + ", expected " + inputPartitions);
                    ok = false;
                }
            }
            if (ok) {
                System.out.println("PASS " + label + "/internal-topics");
            }
            List<TopicPartition> parts = new ArrayList<>();
            for (PartitionInfo pi : topics.get(args.get("output"))) {
                parts.add(new TopicPartition(pi.topic(), pi.partition()));
            }
            c.assign(parts);
            c.seekToBeginning(parts);
            // Reads until every word reached its count (the last update of a word is its total).
            while (!last.equals(expected) && System.nanoTime() < deadline) {
                for (ConsumerRecord<String, Long> r : c.poll(Duration.ofMillis(200))) {
                    last.put(r.key(), r.value());
                }
            }
        }
        if (last.equals(expected)) {
            System.out.println("PASS " + label + "/counted-once (" + expected.size() + " words)");
        } else {
            List<String> wrong = new ArrayList<>();
            for (String w : expected.keySet()) {
                if (!expected.get(w).equals(last.get(w))) {
                    wrong.add(w + "=" + last.get(w) + " (expected " + expected.get(w) + ")");
                }
            }
            System.out.println("FAIL " + label + "/counted-once: " + String.join(", ", wrong.subList(0, Math.min(5, wrong.size()))));
            ok = false;
        }
        return ok;
    }
}
