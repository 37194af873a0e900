package gregor.streams;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongFunction;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;

/**
 * A Kafka Streams word count with processing.guarantee=exactly_once_v2 (a repartition topic, a
 * changelogged count store, a sink), and the two programs that feed and check it:
 *
 * <pre>
 *   run     --bootstrap B --app-id A --input I --output O --state-dir D
 *           prints RUNNING once the application runs and PROCESSED n as words go through
 *   produce --bootstrap B --input I --output O --lines N --rate R    creates both topics, then
 *           writes line i = words(i) for i in [0, N) at R lines per second
 *   verify  --bootstrap B --output O --lines N [--timeout-s T]
 * </pre>
 *
 * With exactly-once and the record cache off, every word of the input produces exactly one
 * update of its count, so a read_committed reader of the output must see, for each word, the
 * counts 1, 2, ..., n exactly once and in order, however often the application was killed:
 * an update written by a transaction that was aborted (the kill) must never be visible, and the
 * counts restored from the changelog after a restart must be the committed ones.
 */
public final class EosWordCount {
    private EosWordCount() {}

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
                System.err.println("usage: EosWordCount run|produce|verify --name value ...");
                System.exit(2);
            }
        }
    }

    static List<String> words(long line) {
        return List.of("w" + (line % 13), "v" + (line % 7));
    }

    private static void run(Map<String, String> args) throws Exception {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, args.get("app-id"));
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args.get("bootstrap"));
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
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
        Runtime.getRuntime().addShutdownHook(new Thread(() -> streams.close(Duration.ofSeconds(30))));
        streams.start();
        Thread.currentThread().join();
    }

    private static void produce(Map<String, String> args) throws Exception {
        produceLines(args, EosWordCount::words, 2);
    }

    /**
     * Creates the input and output topics (partitions each) unless they exist, then writes line i
     * = words(i) for i in [0, lines) at rate lines per second, and prints PRODUCED lines.
     */
    static void produceLines(Map<String, String> args, LongFunction<List<String>> words, int partitions)
            throws Exception {
        String bootstrap = args.get("bootstrap");
        Properties a = new Properties();
        a.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(a)) {
            for (String topic : List.of(args.get("input"), args.get("output"))) {
                try {
                    admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all().get();
                } catch (ExecutionException e) {
                    if (!(e.getCause() instanceof TopicExistsException)) {
                        throw e;
                    }
                }
            }
        }
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        long lines = Long.parseLong(args.get("lines"));
        long rate = Long.parseLong(args.getOrDefault("rate", "1000"));
        long start = System.nanoTime();
        try (KafkaProducer<String, String> producer =
                     new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
            for (long i = 0; i < lines; i++) {
                long due = start + i * 1_000_000_000L / rate;
                long wait = due - System.nanoTime();
                if (wait > 0) {
                    Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
                }
                producer.send(new ProducerRecord<>(args.get("input"), "line-" + i, String.join(" ", words.apply(i))));
            }
            producer.flush();
        }
        System.out.println("PRODUCED " + lines);
    }

    private static boolean verify(Map<String, String> args) {
        long lines = Long.parseLong(args.get("lines"));
        Map<String, Long> expected = new TreeMap<>();
        for (long i = 0; i < lines; i++) {
            for (String w : words(i)) {
                expected.merge(w, 1L, Long::sum);
            }
        }
        long total = expected.values().stream().mapToLong(Long::longValue).sum();
        Map<String, List<Long>> seen = new TreeMap<>();
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args.get("bootstrap"));
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        long deadline = System.nanoTime() + Duration.ofSeconds(Long.parseLong(args.getOrDefault("timeout-s", "180"))).toNanos();
        long read = 0;
        try (KafkaConsumer<String, Long> c = new KafkaConsumer<>(p, new StringDeserializer(), new LongDeserializer())) {
            List<TopicPartition> parts = List.of(new TopicPartition(args.get("output"), 0), new TopicPartition(args.get("output"), 1));
            c.assign(parts);
            c.seekToBeginning(parts);
            // Reads until every update is there, then once more briefly to catch any extra one.
            while (read < total && System.nanoTime() < deadline) {
                for (ConsumerRecord<String, Long> r : c.poll(Duration.ofMillis(200))) {
                    seen.computeIfAbsent(r.key(), k -> new ArrayList<>()).add(r.value());
                    read++;
                }
            }
            for (ConsumerRecord<String, Long> r : c.poll(Duration.ofSeconds(2))) {
                seen.computeIfAbsent(r.key(), k -> new ArrayList<>()).add(r.value());
                read++;
            }
        }
        List<String> wrong = new ArrayList<>();
        for (Map.Entry<String, Long> e : expected.entrySet()) {
            List<Long> counts = seen.getOrDefault(e.getKey(), List.of());
            boolean exact = counts.size() == e.getValue();
            for (int i = 0; exact && i < counts.size(); i++) {
                exact = counts.get(i) == i + 1;
            }
            if (!exact) {
                wrong.add(e.getKey() + ": " + describe(counts) + " (expected 1.." + e.getValue() + ")");
            }
        }
        if (!seen.keySet().equals(expected.keySet())) {
            wrong.add("words " + seen.keySet() + " (expected " + expected.keySet() + ")");
        }
        if (wrong.isEmpty()) {
            System.out.println("PASS " + args.getOrDefault("label", "streams-eos") + "/exact-counts (" + read + " updates)");
            return true;
        }
        System.out.println("FAIL " + args.getOrDefault("label", "streams-eos") + "/exact-counts: " + read
                + " updates of " + total + "; " + String.join("; ", wrong.subList(0, Math.min(4, wrong.size()))));
        return false;
    }

    /** The counts as runs (1..40, 38..60), so a duplicate or a gap shows in a short line. */
    private static String describe(List<Long> counts) {
        StringBuilder sb = new StringBuilder("[");
        int i = 0;
        while (i < counts.size()) {
            int j = i;
            while (j + 1 < counts.size() && counts.get(j + 1) == counts.get(j) + 1) {
                j++;
            }
            sb.append(sb.length() > 1 ? ", " : "").append(counts.get(i));
            if (j > i) {
                sb.append("..").append(counts.get(j));
            }
            i = j + 1;
        }
        return sb.append("]").toString();
    }
}
