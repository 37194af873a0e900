package gregor.compat;

import static gregor.compat.Report.check;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;

/**
 * {@code --emulate-kafka-version 2.8}: a kafka-clients 4.4 producer, group consumer and admin
 * client against a gregor that advertises what Apache Kafka 2.8 advertised use 2.8-era request
 * versions, and still work end to end. What they sent is read from the request journal.
 *
 * <p>The expected versions are Kafka 2.8.2's newest (its message specifications, which the 4.4
 * client exceeds for each of these APIs): a client that ignored the narrowed ApiVersions answer,
 * or a broker that advertised its own table, fails the case. Kafka has no journal or emulation,
 * so this runs against gregor only.
 */
final class EmulationTests {
    /** Kafka 2.8.2's newest version of each API the clients below use. */
    private static final Map<String, Integer> KAFKA_2_8 = Map.ofEntries(
            Map.entry("Produce", 9), Map.entry("Fetch", 12), Map.entry("ListOffsets", 6),
            Map.entry("Metadata", 11), Map.entry("OffsetCommit", 8), Map.entry("OffsetFetch", 7),
            Map.entry("FindCoordinator", 3), Map.entry("JoinGroup", 7), Map.entry("Heartbeat", 4),
            Map.entry("LeaveGroup", 4), Map.entry("SyncGroup", 5), Map.entry("ApiVersions", 3),
            Map.entry("CreateTopics", 7), Map.entry("InitProducerId", 4),
            Map.entry("OffsetForLeaderEpoch", 4), Map.entry("DescribeCluster", 0));

    /** The APIs every run of the clients below must have used at exactly 2.8's newest version. */
    private static final List<String> MUST_USE = List.of(
            "Produce", "Fetch", "Metadata", "OffsetCommit", "OffsetFetch", "FindCoordinator",
            "JoinGroup", "SyncGroup", "ApiVersions", "CreateTopics", "InitProducerId");

    private static final Pattern ENTRY = Pattern.compile(
            "\"api\":\"([A-Za-z]+)\",\"api_key\":-?[0-9]+,\"api_version\":([0-9]+)");

    private final String bootstrap;
    private final AdminApi admin;
    private final String label;

    private EmulationTests(String bootstrap, String admin, String label) {
        this.bootstrap = bootstrap;
        this.admin = new AdminApi(admin);
        this.label = label;
    }

    static void run(Map<String, String> args, Report report) {
        EmulationTests t = new EmulationTests(
                Main.required(args, "bootstrap"), Main.required(args, "admin"), Main.required(args, "label"));
        report.run(t.label + "/clients-4.4-use-kafka-2.8-versions", t::clientsUse28Versions);
    }

    void clientsUse28Versions() throws Exception {
        String topic = label.replace('.', '-') + "-emulated";
        int count = 200;
        try (Admin a = Clients.admin(bootstrap, "emulation-admin")) {
            a.createTopics(List.of(new NewTopic(topic, 2, (short) 1))).all().get();
            a.describeCluster().nodes().get();
        }
        try (KafkaProducer<byte[], byte[]> p = Clients.producer(bootstrap, "emulation-producer", "lz4")) {
            for (int i = 0; i < count; i++) {
                p.send(new ProducerRecord<>(topic, ("k" + i).getBytes(StandardCharsets.UTF_8),
                        ("v" + i).getBytes(StandardCharsets.UTF_8)));
            }
            p.flush();
        }
        int read = 0;
        try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(bootstrap, "emulation-consumer", Map.of(
                ConsumerConfig.GROUP_ID_CONFIG, topic + "-group",
                ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic"))) {
            c.subscribe(List.of(topic));
            long deadline = System.nanoTime() + AdminApi.WAIT.toNanos();
            while (read < count) {
                check(System.nanoTime() < deadline, "read %d of %d records", read, count);
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
                    read++;
                }
            }
            c.commitSync();
            check(c.committed(c.assignment()).values().stream().mapToLong(o -> o.offset()).sum() == count,
                    "the committed offsets do not add up to %d", count);
        }
        // The newest version each API was sent at, as the broker's journal saw it.
        String journal = admin.get("/v1/journal?limit=100000");
        Map<String, Integer> newest = new TreeMap<>();
        Matcher m = ENTRY.matcher(journal);
        while (m.find()) {
            newest.merge(m.group(1), Integer.parseInt(m.group(2)), Math::max);
        }
        // The client's first ApiVersions is v4 (4.4's newest); 2.8's answer (KIP-511) makes it
        // retry at v3, so v4 is in the journal once per connection and is not a request served.
        newest.computeIfPresent("ApiVersions", (k, v) -> journal.contains(
                "\"api\":\"ApiVersions\",\"api_key\":18,\"api_version\":3") ? 3 : v);
        for (Map.Entry<String, Integer> e : newest.entrySet()) {
            Integer max = KAFKA_2_8.get(e.getKey());
            check(max != null, "the clients sent %s, which this case does not expect (journal: %s)", e.getKey(), newest);
            check(e.getValue() <= max, "%s v%d sent, Kafka 2.8 has up to v%d (journal: %s)",
                    e.getKey(), e.getValue(), max, newest);
        }
        for (String api : MUST_USE) {
            check(KAFKA_2_8.get(api).equals(newest.get(api)), "%s: newest sent %s, expected Kafka 2.8's v%d (journal: %s)",
                    api, newest.get(api), KAFKA_2_8.get(api), newest);
        }
        System.out.println("newest versions sent: " + newest);
    }
}
