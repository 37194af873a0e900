package gregor.compat;

import static gregor.compat.Report.check;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.CreateTopicsResult;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.InvalidReplicationFactorException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.record.TimestampType;

/**
 * The kafka-clients tests: one round trip per codec with exact content checks and a seek into
 * the middle, ListOffsets (consumer and admin flavours), CreateTopics and a multi-partition round
 * trip, a batch larger than the fetch size, acks=0/1 producers and a LogAppendTime topic. Case
 * names start with the label (e.g. "clients-4.1.2").
 */
final class ClientTests {
    static final List<String> CODECS = List.of("none", "gzip", "snappy", "lz4", "zstd");
    private static final Duration CONSUME_TIMEOUT = Duration.ofSeconds(30);

    private final String bootstrap;
    private final String label;
    private final int count;
    /** Topic names carry the label so the 3.9 and 4.1 runs can share one broker. */
    private final String topicPrefix;

    private ClientTests(String bootstrap, String label, String topicsOf, int count) {
        this.bootstrap = bootstrap;
        this.label = label;
        this.count = count;
        this.topicPrefix = topicsOf.replace('.', '-') + "-";
    }

    static void run(Map<String, String> args, Report report) {
        String label = Main.required(args, "label");
        ClientTests t = new ClientTests(
                Main.required(args, "bootstrap"),
                label,
                args.getOrDefault("topics-of", label),
                Integer.parseInt(args.getOrDefault("count", "10000")));
        if (Boolean.parseBoolean(args.getOrDefault("verify-only", "false"))) {
            // Re-read round trips written earlier (by the run labelled --topics-of), e.g. after
            // the broker was killed and restarted: old data and its indexes must survive.
            for (String codec : CODECS) {
                String topic = t.topicPrefix + "roundtrip-" + codec;
                t.runCase(report, "consume-" + codec, () -> t.consume(topic));
                t.runCase(report, "list-offsets-" + codec, () -> t.listOffsetsConsumer(topic));
            }
            return;
        }
        for (String codec : CODECS) {
            String topic = t.topicPrefix + "roundtrip-" + codec;
            // Later cases read what the produce case wrote; skip them if it failed, one FAIL is enough.
            boolean produced = t.runCase(report, "produce-" + codec, () -> t.produce(topic, codec));
            if (produced) {
                t.runCase(report, "consume-" + codec, () -> t.consume(topic));
                t.runCase(report, "list-offsets-" + codec, () -> t.listOffsetsConsumer(topic));
            }
        }
        String none = t.topicPrefix + "roundtrip-none";
        t.runCase(report, "admin-list-offsets", () -> t.listOffsetsAdmin(none));
        t.runCase(report, "read-committed-consume", () -> t.readCommitted(none));
        t.runCase(report, "out-of-range-position-resets", () -> t.outOfRange(none));
        t.runCase(report, "consumer-close-is-prompt", () -> t.promptClose(none));
        t.runCase(report, "fetch-long-poll-wakes-on-produce", t::longPollWakeup);
        t.runCase(report, "incremental-fetch-sessions", t::incrementalFetchSessions);
        t.runCase(report, "record-too-large-rejected", t::recordTooLarge);
        if (t.runCase(report, "create-topics", t::createTopics)) {
            // Both need the topic create-topics made; without it they would only repeat its failure.
            t.runCase(report, "create-topics-errors", t::createTopicsErrors);
            t.runCase(report, "create-topics-invalid-config", t::createTopicsInvalidConfig);
            t.runCase(report, "create-topics-validate-only", t::createTopicsValidateOnly);
            t.runCase(report, "invalid-topic-names", t::invalidTopicNames);
            t.runCase(report, "multi-partition-roundtrip", t::multiPartition);
            t.runCase(report, "admin-describe", t::adminDescribe);
        }
        t.runCase(report, "batch-larger-than-fetch-size", t::largeBatches);
        t.runCase(report, "acks-0-and-1", t::acksZeroAndOne);
        t.runCase(report, "log-append-time-topic", t::logAppendTime);
        t.runCase(report, "topic-max-message-bytes", t::topicMaxMessageBytes);
        t.runCase(report, "future-timestamp-rejected", t::futureTimestamp);
        t.runCase(report, "metadata-without-auto-create", t::noAutoCreate);
    }

    private boolean runCase(Report report, String name, Report.Case body) {
        int before = report.failed();
        report.run(label + "/" + name, body);
        return report.failed() == before;
    }

    // ---- Round trip -------------------------------------------------------------------------

    private void produce(String topic, String codec) throws Exception {
        List<Future<RecordMetadata>> acks = new ArrayList<>(count);
        try (KafkaProducer<byte[], byte[]> producer = Clients.producer(bootstrap, label + "-producer-" + codec, codec)) {
            for (int i = 0; i < count; i++) {
                acks.add(producer.send(new ProducerRecord<>(
                        topic, 0, Records.timestamp(i), Records.key(i), Records.value(i), Records.headers(i))));
            }
            producer.flush();
        }
        for (int i = 0; i < count; i++) {
            RecordMetadata md = get(acks.get(i), "send of record " + i);
            check(md.partition() == 0, "record %d acked on partition %d", i, md.partition());
            check(md.offset() == i, "record %d acked at offset %d, expected %d (dense from 0)", i, md.offset(), i);
            // CreateTime topic: the ack carries no LogAppendTime, so the client reports our timestamp.
            check(md.timestamp() == Records.timestamp(i),
                    "record %d acked with timestamp %d, expected %d", i, md.timestamp(), Records.timestamp(i));
        }
    }

    private void consume(String topic) {
        TopicPartition tp = new TopicPartition(topic, 0);
        List<ConsumerRecord<byte[], byte[]>> records;
        try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(bootstrap, label + "-consumer")) {
            records = Clients.readFromBeginning(consumer, List.of(tp), count, CONSUME_TIMEOUT);
        }
        check(records.size() == count, "consumed %d records, expected %d", records.size(), count);
        for (int i = 0; i < count; i++) {
            ConsumerRecord<byte[], byte[]> r = records.get(i);
            check(r.partition() == 0, "record %d from partition %d", i, r.partition());
            check(r.offset() == i, "record %d has offset %d (offsets must be dense from 0, in order)", i, r.offset());
            check(Arrays.equals(r.key(), Records.key(i)), "offset %d: key %s, expected %s", i, show(r.key()), show(Records.key(i)));
            check(Arrays.equals(r.value(), Records.value(i)),
                    "offset %d: value %s, expected %s", i, show(r.value()), show(Records.value(i)));
            check(r.timestampType() == TimestampType.CREATE_TIME, "offset %d: timestamp type %s", i, r.timestampType());
            check(r.timestamp() == Records.timestamp(i), "offset %d: timestamp %d, expected %d", i, r.timestamp(), Records.timestamp(i));
            List<Header> actual = Arrays.asList(r.headers().toArray());
            List<Header> expected = Records.headers(i);
            check(sameHeaders(actual, expected), "offset %d: headers %s, expected %s", i, show(actual), show(expected));
        }
        // Fetch from an offset inside a (compressed) batch: the broker returns the whole batch and
        // the client drops the records before the position.
        try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(bootstrap, label + "-consumer-seek")) {
            int middle = count / 2 + 1;
            consumer.assign(List.of(tp));
            consumer.seek(tp, middle);
            List<ConsumerRecord<byte[], byte[]>> first = new ArrayList<>();
            long deadline = System.nanoTime() + CONSUME_TIMEOUT.toNanos();
            while (first.isEmpty() && System.nanoTime() < deadline) {
                consumer.poll(Duration.ofMillis(200)).forEach(first::add);
            }
            check(!first.isEmpty(), "no records after seek(%d)", middle);
            check(first.get(0).offset() == middle && Arrays.equals(first.get(0).value(), Records.value(middle)),
                    "after seek(%d) the first record is offset %d", middle, first.get(0).offset());
        }
    }

    // ---- ListOffsets ------------------------------------------------------------------------

    /** Offsets sampled for timestamp lookups: batch edges, inside batches, and the last record. */
    private int[] samples() {
        return new int[] {0, 1, 2, 17, 499, count / 2, count / 2 + 3, count - 2, count - 1};
    }

    private void listOffsetsConsumer(String topic) {
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(bootstrap, label + "-list-offsets")) {
            long begin = consumer.beginningOffsets(List.of(tp)).get(tp);
            long end = consumer.endOffsets(List.of(tp)).get(tp);
            check(begin == 0, "beginningOffsets (ListOffsets EARLIEST) = %d, expected 0", begin);
            check(end == count, "endOffsets (ListOffsets LATEST) = %d, expected %d", end, count);

            // Each target maps to the first offset whose timestamp is >= target.
            Map<Long, Long> expected = new HashMap<>();
            for (int i : samples()) {
                expected.put(Records.timestamp(i), (long) i);
                expected.put(Records.timestamp(i) - Records.TIMESTAMP_STEP / 2, (long) i);
            }
            expected.put(0L, 0L);
            for (Map.Entry<Long, Long> e : expected.entrySet()) {
                OffsetAndTimestamp found = consumer.offsetsForTimes(Map.of(tp, e.getKey())).get(tp);
                long offset = e.getValue();
                check(found != null, "offsetsForTimes(%d) returned nothing, expected offset %d", e.getKey(), offset);
                check(found.offset() == offset && found.timestamp() == Records.timestamp((int) offset),
                        "offsetsForTimes(%d) = offset %d ts %d, expected offset %d ts %d",
                        e.getKey(), found.offset(), found.timestamp(), offset, Records.timestamp((int) offset));
            }
            long past = Records.timestamp(count - 1) + 1;
            OffsetAndTimestamp none = consumer.offsetsForTimes(Map.of(tp, past)).get(tp);
            check(none == null, "offsetsForTimes(%d) after the last timestamp = %s, expected null", past, none);
        }
    }

    private void listOffsetsAdmin(String topic) throws Exception {
        TopicPartition tp = new TopicPartition(topic, 0);
        try (Admin admin = Clients.admin(bootstrap, label + "-admin")) {
            ListOffsetsResultInfo earliest = admin.listOffsets(Map.of(tp, OffsetSpec.earliest())).partitionResult(tp).get();
            ListOffsetsResultInfo latest = admin.listOffsets(Map.of(tp, OffsetSpec.latest())).partitionResult(tp).get();
            ListOffsetsResultInfo mid = admin.listOffsets(Map.of(tp, OffsetSpec.forTimestamp(Records.timestamp(count / 3))))
                    .partitionResult(tp).get();
            check(earliest.offset() == 0, "earliest = %d, expected 0", earliest.offset());
            check(latest.offset() == count, "latest = %d, expected %d", latest.offset(), count);
            check(mid.offset() == count / 3 && mid.timestamp() == Records.timestamp(count / 3),
                    "forTimestamp = offset %d ts %d, expected %d ts %d",
                    mid.offset(), mid.timestamp(), count / 3, Records.timestamp(count / 3));
            // MAX_TIMESTAMP (-3, ListOffsets v7, KIP-734): offset and timestamp of the newest record.
            ListOffsetsResultInfo max = admin.listOffsets(Map.of(tp, OffsetSpec.maxTimestamp())).partitionResult(tp).get();
            check(max.offset() == count - 1 && max.timestamp() == Records.timestamp(count - 1),
                    "maxTimestamp = offset %d ts %d, expected %d ts %d",
                    max.offset(), max.timestamp(), count - 1, Records.timestamp(count - 1));
        }
    }

    // ---- CreateTopics and several partitions ------------------------------------------------

    private static final int PARTITIONS = 3;

    private String multiTopic() {
        return topicPrefix + "multi";
    }

    private void createTopics() throws Exception {
        String topic = multiTopic();
        try (Admin admin = Clients.admin(bootstrap, label + "-admin")) {
            CreateTopicsResult result = admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1)));
            result.all().get();
            // CreateTopics v7+ returns the new topic's id and the effective partition count.
            Uuid id = result.topicId(topic).get();
            check(id != null && !Uuid.ZERO_UUID.equals(id), "CreateTopics returned topic id %s", id);
            check(result.numPartitions(topic).get() == PARTITIONS, "CreateTopics reported %d partitions",
                    result.numPartitions(topic).get());
        }
        try (KafkaProducer<byte[], byte[]> producer = Clients.producer(bootstrap, label + "-meta", "none")) {
            List<PartitionInfo> parts = producer.partitionsFor(topic);
            check(parts.size() == PARTITIONS, "Metadata shows %d partitions, expected %d", parts.size(), PARTITIONS);
            for (PartitionInfo p : parts) {
                check(p.leader() != null && !p.leader().isEmpty(), "partition %d has no leader", p.partition());
            }
        }
    }

    private void createTopicsErrors() throws Exception {
        try (Admin admin = Clients.admin(bootstrap, label + "-admin")) {
            expectFailure(admin.createTopics(List.of(new NewTopic(multiTopic(), PARTITIONS, (short) 1))).all(),
                    TopicExistsException.class, "creating an existing topic");
            // A single broker cannot hold two replicas.
            expectFailure(admin.createTopics(List.of(new NewTopic(topicPrefix + "rf2", 1, (short) 2))).all(),
                    InvalidReplicationFactorException.class, "replication factor 2 on one broker");
            expectFailure(admin.createTopics(List.of(new NewTopic(topicPrefix + "p0", 0, (short) 1))).all(),
                    InvalidPartitionsException.class, "0 partitions");
        }
    }

    /** Every bad config is checked, and all misses reported together. */
    private void createTopicsInvalidConfig() throws Exception {
        Map<String, Map<String, String>> cases = new java.util.LinkedHashMap<>();
        cases.put("bad-config-name", Map.of("no.such.config", "1"));
        cases.put("bad-config-value", Map.of("cleanup.policy", "sometimes"));
        cases.put("bad-config-number", Map.of("retention.ms", "soon"));
        cases.put("bad-config-range", Map.of("min.insync.replicas", "0"));
        List<String> problems = new ArrayList<>();
        try (Admin admin = Clients.admin(bootstrap, label + "-admin")) {
            for (Map.Entry<String, Map<String, String>> c : cases.entrySet()) {
                String topic = topicPrefix + c.getKey();
                try {
                    admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1).configs(c.getValue()))).all().get();
                    problems.add(c.getValue() + " was accepted");
                } catch (ExecutionException e) {
                    if (!(e.getCause() instanceof org.apache.kafka.common.errors.InvalidConfigurationException)) {
                        problems.add(c.getValue() + " failed with " + Report.describe(e.getCause()));
                    }
                }
            }
            java.util.Set<String> names = admin.listTopics().names().get();
            for (String suffix : cases.keySet()) {
                if (names.contains(topicPrefix + suffix)) {
                    problems.add("topic " + topicPrefix + suffix + " exists");
                }
            }
        }
        check(problems.isEmpty(), "expected InvalidConfigurationException (INVALID_CONFIG) and no topic: %s", problems);
    }

    private void createTopicsValidateOnly() throws Exception {
        String topic = topicPrefix + "validate-only";
        try (Admin admin = Clients.admin(bootstrap, label + "-admin")) {
            admin.createTopics(List.of(new NewTopic(topic, 2, (short) 1)),
                    new org.apache.kafka.clients.admin.CreateTopicsOptions().validateOnly(true)).all().get();
            check(!admin.listTopics().names().get().contains(topic), "validateOnly=true created the topic %s", topic);
        }
    }

    private void invalidTopicNames() throws Exception {
        List<String> problems = new ArrayList<>();
        try (Admin admin = Clients.admin(bootstrap, label + "-admin")) {
            // Kafka's Topic.validate: [a-zA-Z0-9._-], at most 249 characters, not "." or "..".
            for (String name : List.of("bad/name", "bad name", "..", "x".repeat(250))) {
                String shown = name.length() > 20 ? name.substring(0, 10) + "...(" + name.length() + " chars)" : "'" + name + "'";
                try {
                    admin.createTopics(List.of(new NewTopic(name, 1, (short) 1))).all().get();
                    problems.add(shown + " was created");
                } catch (ExecutionException e) {
                    if (!(e.getCause() instanceof org.apache.kafka.common.errors.InvalidTopicException)) {
                        problems.add(shown + " failed with " + Report.describe(e.getCause()));
                    }
                }
            }
        }
        check(problems.isEmpty(), "expected InvalidTopicException (INVALID_TOPIC_EXCEPTION): %s", problems);
    }

    /**
     * Records with an explicit partition and keyed records placed by the default partitioner; each
     * partition must return exactly its records in send order with dense offsets.
     */
    private void multiPartition() throws Exception {
        String topic = multiTopic();
        int n = 3000;
        List<Future<RecordMetadata>> acks = new ArrayList<>(n);
        try (KafkaProducer<byte[], byte[]> producer = Clients.producer(bootstrap, label + "-multi", "lz4")) {
            for (int i = 0; i < n; i++) {
                byte[] value = ("multi-" + i).getBytes(StandardCharsets.UTF_8);
                Integer partition = i % 2 == 0 ? Integer.valueOf(i % PARTITIONS) : null;
                acks.add(producer.send(new ProducerRecord<>(topic, partition, Records.timestamp(i), Records.key(i), value)));
            }
            producer.flush();
        }
        Map<Integer, List<Integer>> sentByPartition = new HashMap<>();
        for (int i = 0; i < n; i++) {
            RecordMetadata md = get(acks.get(i), "send of record " + i);
            if (i % 2 == 0) {
                check(md.partition() == i % PARTITIONS, "record %d sent to partition %d, acked on %d", i, i % PARTITIONS, md.partition());
            }
            List<Integer> list = sentByPartition.computeIfAbsent(md.partition(), k -> new ArrayList<>());
            check(md.offset() == list.size(), "record %d acked at offset %d of partition %d, expected %d",
                    i, md.offset(), md.partition(), list.size());
            list.add(i);
        }
        check(sentByPartition.size() == PARTITIONS, "records landed in %d partitions, expected %d", sentByPartition.size(), PARTITIONS);

        List<TopicPartition> tps = new ArrayList<>();
        for (int p = 0; p < PARTITIONS; p++) {
            tps.add(new TopicPartition(topic, p));
        }
        Map<Integer, List<ConsumerRecord<byte[], byte[]>>> got = new HashMap<>();
        try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(bootstrap, label + "-multi")) {
            for (ConsumerRecord<byte[], byte[]> r : Clients.readFromBeginning(consumer, tps, n, CONSUME_TIMEOUT)) {
                got.computeIfAbsent(r.partition(), k -> new ArrayList<>()).add(r);
            }
            Map<TopicPartition, Long> ends = consumer.endOffsets(tps);
            for (TopicPartition tp : tps) {
                int sent = sentByPartition.getOrDefault(tp.partition(), List.of()).size();
                check(ends.get(tp) == sent, "endOffsets(%s) = %d, expected %d", tp, ends.get(tp), sent);
            }
        }
        for (Map.Entry<Integer, List<Integer>> e : sentByPartition.entrySet()) {
            List<Integer> sent = e.getValue();
            List<ConsumerRecord<byte[], byte[]>> records = got.getOrDefault(e.getKey(), List.of());
            check(records.size() == sent.size(), "partition %d: consumed %d records, expected %d", e.getKey(), records.size(), sent.size());
            for (int j = 0; j < sent.size(); j++) {
                ConsumerRecord<byte[], byte[]> r = records.get(j);
                String value = new String(r.value(), StandardCharsets.UTF_8);
                check(r.offset() == j && value.equals("multi-" + sent.get(j)),
                        "partition %d offset %d: got %s at offset %d, expected multi-%d", e.getKey(), j, value, r.offset(), sent.get(j));
            }
        }
    }

    // ---- KIP-74: a batch bigger than the fetch limits is still returned whole ----------------

    private void largeBatches() throws Exception {
        String topic = topicPrefix + "large";
        TopicPartition tp = new TopicPartition(topic, 0);
        int n = 4;
        int size = 700 * 1024; // under the 1 MiB max.message.bytes default, far over the fetch limit below
        List<byte[]> values = new ArrayList<>();
        SplittableRandom random = new SplittableRandom(42);
        try (KafkaProducer<byte[], byte[]> producer = Clients.producer(bootstrap, label + "-large", "none")) {
            List<Future<RecordMetadata>> acks = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                byte[] v = new byte[size];
                for (int j = 0; j < size; j++) {
                    v[j] = (byte) random.nextInt(256);
                }
                values.add(v);
                acks.add(producer.send(new ProducerRecord<>(topic, 0, Records.timestamp(i), null, v)));
            }
            producer.flush();
            for (int i = 0; i < n; i++) {
                get(acks.get(i), "send of large record " + i);
            }
        }
        try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(bootstrap, label + "-large",
                Map.of("max.partition.fetch.bytes", "65536", "fetch.max.bytes", "65536"))) {
            List<ConsumerRecord<byte[], byte[]>> records = Clients.readFromBeginning(consumer, List.of(tp), n, CONSUME_TIMEOUT);
            check(records.size() == n, "consumed %d of %d records of %d bytes with max.partition.fetch.bytes=fetch.max.bytes=65536",
                    records.size(), n, size);
            for (int i = 0; i < n; i++) {
                check(records.get(i).offset() == i && Arrays.equals(records.get(i).value(), values.get(i)),
                        "large record %d differs (offset %d)", i, records.get(i).offset());
            }
        }
    }

    // ---- Non-idempotent producers: acks=1, and acks=0 which gets no response frame at all ----

    private void acksZeroAndOne() throws Exception {
        String topic = topicPrefix + "acks";
        TopicPartition tp = new TopicPartition(topic, 0);
        int n = 1000;
        // acks=1 first: it creates the topic and proves a plain (non-idempotent) Produce works.
        for (String acks : List.of("1", "0")) {
            Map<String, String> overrides = Map.of("acks", acks, "enable.idempotence", "false");
            try (KafkaProducer<byte[], byte[]> producer = Clients.producer(bootstrap, label + "-acks" + acks, "gzip", overrides)) {
                List<Future<RecordMetadata>> futures = new ArrayList<>();
                for (int i = 0; i < n; i++) {
                    byte[] value = ("acks" + acks + "-" + i).getBytes(StandardCharsets.UTF_8);
                    futures.add(producer.send(new ProducerRecord<>(topic, 0, Records.timestamp(i), null, value)));
                }
                producer.flush();
                for (int i = 0; i < n; i++) {
                    get(futures.get(i), "acks=" + acks + " send of record " + i);
                }
            }
        }
        // A broker that answers acks=0 requests makes the client fail the next response on that
        // connection with a correlation id mismatch, or it loses the records: both show here.
        try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(bootstrap, label + "-acks")) {
            List<ConsumerRecord<byte[], byte[]>> records = Clients.readFromBeginning(consumer, List.of(tp), 2 * n, CONSUME_TIMEOUT);
            check(records.size() == 2 * n, "consumed %d records, expected %d (%d with acks=1, then %d with acks=0)",
                    records.size(), 2 * n, n, n);
            for (int i = 0; i < 2 * n; i++) {
                String expected = (i < n ? "acks1-" : "acks0-") + (i % n);
                String value = new String(records.get(i).value(), StandardCharsets.UTF_8);
                check(records.get(i).offset() == i && value.equals(expected),
                        "offset %d holds %s at offset %d, expected %s", i, value, records.get(i).offset(), expected);
            }
        }
    }

    // ---- message.timestamp.type=LogAppendTime: the broker stamps its own time ----------------

    private void logAppendTime() throws Exception {
        String topic = topicPrefix + "log-append-time";
        TopicPartition tp = new TopicPartition(topic, 0);
        int n = 500;
        try (Admin admin = Clients.admin(bootstrap, label + "-admin")) {
            NewTopic newTopic = new NewTopic(topic, 1, (short) 1).configs(Map.of("message.timestamp.type", "LogAppendTime"));
            admin.createTopics(List.of(newTopic)).all().get();
        }
        long before = System.currentTimeMillis();
        List<Future<RecordMetadata>> acks = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer = Clients.producer(bootstrap, label + "-lat", "zstd")) {
            for (int i = 0; i < n; i++) {
                // Old CreateTime stamps, which the broker must replace.
                acks.add(producer.send(new ProducerRecord<>(topic, 0, Records.timestamp(i), Records.key(i), Records.value(i))));
            }
            producer.flush();
        }
        long after = System.currentTimeMillis();
        for (int i = 0; i < n; i++) {
            long ts = get(acks.get(i), "send of record " + i).timestamp();
            // Produce responses carry log_append_time_ms for such topics; the client reports it.
            check(ts >= before && ts <= after, "record %d acked with timestamp %d, expected the broker's append time in [%d, %d]",
                    i, ts, before, after);
        }
        try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(bootstrap, label + "-lat")) {
            List<ConsumerRecord<byte[], byte[]>> records = Clients.readFromBeginning(consumer, List.of(tp), n, CONSUME_TIMEOUT);
            check(records.size() == n, "consumed %d records, expected %d", records.size(), n);
            for (int i = 0; i < n; i++) {
                ConsumerRecord<byte[], byte[]> r = records.get(i);
                check(r.timestampType() == TimestampType.LOG_APPEND_TIME, "offset %d: timestamp type %s, expected LogAppendTime",
                        i, r.timestampType());
                check(r.timestamp() >= before && r.timestamp() <= after, "offset %d: timestamp %d, expected within [%d, %d]",
                        i, r.timestamp(), before, after);
                check(Arrays.equals(r.value(), Records.value(i)), "offset %d: value differs", i);
            }
        }
    }

    // ---- Consumer corner cases --------------------------------------------------------------

    /** read_committed sends ListOffsets/Fetch with isolation_level=1: bounded by the LSO, which is the HW without transactions. */
    private void readCommitted(String topic) {
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(bootstrap, label + "-rc", Map.of("isolation.level", "read_committed"))) {
            long end = consumer.endOffsets(List.of(tp)).get(tp);
            check(end == count, "read_committed endOffsets = %d, expected %d (no transactions: LSO = high watermark)", end, count);
            List<ConsumerRecord<byte[], byte[]>> records = Clients.readFromBeginning(consumer, List.of(tp), count, CONSUME_TIMEOUT);
            check(records.size() == count, "read_committed consumer got %d records, expected %d", records.size(), count);
        }
    }

    /** A position past the end gets OFFSET_OUT_OF_RANGE; auto.offset.reset then decides. */
    private void outOfRange(String topic) {
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(bootstrap, label + "-oor")) {
            consumer.assign(List.of(tp));
            consumer.seek(tp, count + 1000);
            List<ConsumerRecord<byte[], byte[]>> first = new ArrayList<>();
            long deadline = System.nanoTime() + CONSUME_TIMEOUT.toNanos();
            while (first.isEmpty() && System.nanoTime() < deadline) {
                consumer.poll(Duration.ofMillis(200)).forEach(first::add);
            }
            check(!first.isEmpty() && first.get(0).offset() == 0,
                    "after seek(%d) past the end with auto.offset.reset=earliest, first record %s, expected offset 0",
                    count + 1000, first.isEmpty() ? "none" : "at offset " + first.get(0).offset());
        }
        try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(bootstrap, label + "-oor", Map.of("auto.offset.reset", "none"))) {
            consumer.assign(List.of(tp));
            consumer.seek(tp, count + 1000);
            Throwable error = null;
            long deadline = System.nanoTime() + CONSUME_TIMEOUT.toNanos();
            while (error == null && System.nanoTime() < deadline) {
                try {
                    check(consumer.poll(Duration.ofMillis(200)).isEmpty(), "records returned for a position past the end");
                } catch (org.apache.kafka.clients.consumer.OffsetOutOfRangeException e) {
                    error = e;
                }
            }
            check(error != null, "no OffsetOutOfRangeException with auto.offset.reset=none after seek(%d)", count + 1000);
        }
    }

    /**
     * close() sends a final Fetch with no partitions (it closes the KIP-227 session, even a
     * declined one). Kafka answers an empty Fetch at once; a broker that long-polls it for
     * fetch.max.wait.ms makes every consumer close that slow.
     */
    private void promptClose(String topic) {
        TopicPartition tp = new TopicPartition(topic, 0);
        KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(bootstrap, label + "-close", Map.of("fetch.max.wait.ms", "5000"));
        long elapsedMs;
        try {
            consumer.assign(List.of(tp));
            consumer.seekToBeginning(List.of(tp));
            // Stop mid-topic: data is still available, so no fetch is legitimately long-polling.
            int got = 0;
            long deadline = System.nanoTime() + CONSUME_TIMEOUT.toNanos();
            while (got < 1000 && System.nanoTime() < deadline) {
                got += consumer.poll(Duration.ofMillis(200)).count();
            }
            check(got >= 1000, "read only %d records", got);
        } finally {
            long start = System.nanoTime();
            consumer.close(Duration.ofSeconds(30));
            elapsedMs = (System.nanoTime() - start) / 1_000_000;
        }
        check(elapsedMs < 2000, "consumer.close() took %d ms with fetch.max.wait.ms=5000 (Kafka: tens of ms); "
                + "the broker holds a Fetch with no partitions for max_wait_ms", elapsedMs);
    }

    /** A consumer long-polling at the end of the log must be woken by a produce, not wait out max_wait. */
    private void longPollWakeup() throws Exception {
        String topic = topicPrefix + "long-poll";
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaProducer<byte[], byte[]> producer = Clients.producer(bootstrap, label + "-long-poll", "none")) {
            producer.send(new ProducerRecord<>(topic, 0, null, "first".getBytes(StandardCharsets.UTF_8))).get();
            KafkaConsumer<byte[], byte[]> consumer =
                    Clients.consumer(bootstrap, label + "-long-poll", Map.of("fetch.max.wait.ms", "10000"));
            try {
                consumer.assign(List.of(tp));
                consumer.seekToEnd(List.of(tp));
                consumer.position(tp);
                consumer.poll(Duration.ofMillis(500)); // now a fetch at the end is parked in the broker
                long start = System.nanoTime();
                producer.send(new ProducerRecord<>(topic, 0, null, "second".getBytes(StandardCharsets.UTF_8))).get();
                List<ConsumerRecord<byte[], byte[]>> got = new ArrayList<>();
                while (got.isEmpty() && System.nanoTime() - start < 20_000_000_000L) {
                    consumer.poll(Duration.ofMillis(100)).forEach(got::add);
                }
                long elapsedMs = (System.nanoTime() - start) / 1_000_000;
                check(got.size() == 1 && got.get(0).offset() == 1, "expected the record at offset 1, got %d records", got.size());
                check(elapsedMs < 5000,
                        "the record arrived after %d ms; fetch.max.wait.ms is 10000, Kafka answers the parked Fetch on append",
                        elapsedMs);
            } finally {
                // Do not wait for the next parked fetch (close waits for in-flight requests).
                consumer.close(Duration.ZERO);
            }
        }
    }

    /**
     * KIP-227: a consumer of several partitions opens a fetch session with its first (full) fetch
     * and then fetches incrementally in it; every record still arrives once, in order.
     */
    private void incrementalFetchSessions() throws Exception {
        String topic = topicPrefix + "fetch-sessions";
        int partitions = 4;
        try (Admin admin = Clients.admin(bootstrap, label + "-fetch-sessions")) {
            admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all().get();
        }
        List<TopicPartition> tps = new ArrayList<>();
        for (int p = 0; p < partitions; p++) {
            tps.add(new TopicPartition(topic, p));
        }
        int rounds = 5;
        FetchSessionLog.clear();
        try (KafkaProducer<byte[], byte[]> producer = Clients.producer(bootstrap, label + "-fetch-sessions", "none");
                KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(bootstrap, label + "-fetch-sessions",
                        Map.of("fetch.max.wait.ms", "200"))) {
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            Map<Integer, List<String>> got = new HashMap<>();
            long deadline = System.nanoTime() + CONSUME_TIMEOUT.toNanos();
            for (int round = 0; round < rounds; round++) {
                // Each round writes to one partition only: the others have nothing new, which an
                // incremental response leaves out.
                int p = round % partitions;
                producer.send(new ProducerRecord<>(topic, p, null,
                        ("r" + round).getBytes(StandardCharsets.UTF_8))).get();
                int want = round + 1;
                while (got.values().stream().mapToInt(List::size).sum() < want && System.nanoTime() < deadline) {
                    for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(100))) {
                        got.computeIfAbsent(r.partition(), k -> new ArrayList<>())
                                .add(new String(r.value(), StandardCharsets.UTF_8));
                    }
                }
            }
            // A few more polls: incremental fetches with nothing new.
            for (int i = 0; i < 3; i++) {
                check(consumer.poll(Duration.ofMillis(300)).isEmpty(), "records beyond those produced");
            }
            for (int p = 0; p < partitions; p++) {
                List<String> want = new ArrayList<>();
                for (int round = p; round < rounds; round += partitions) {
                    want.add("r" + round);
                }
                check(got.getOrDefault(p, List.of()).equals(want), "partition %d: got %s, want %s", p,
                        got.get(p), want);
            }
        }
        List<Long> created = FetchSessionLog.created();
        List<Long> incremental = FetchSessionLog.incrementalResponses();
        check(!created.isEmpty() && created.stream().allMatch(id -> id != 0),
                "no full fetch response created a session (the broker answered session id 0)");
        check(incremental.stream().anyMatch(created::contains),
                "no incremental fetch response in a created session %s: %s", created, incremental);
    }

    /** Larger than max.message.bytes (1048588 by default): MESSAGE_TOO_LARGE, nothing appended. */
    private void recordTooLarge() throws Exception {
        String topic = topicPrefix + "too-large";
        byte[] big = new byte[1_500_000];
        new SplittableRandom(7).nextBytes(big); // incompressible anyway, and sent uncompressed
        try (KafkaProducer<byte[], byte[]> producer = Clients.producer(bootstrap, label + "-too-large", "none",
                Map.of("max.request.size", "10000000"))) {
            producer.send(new ProducerRecord<>(topic, 0, null, "small".getBytes(StandardCharsets.UTF_8))).get();
            Throwable error = null;
            try {
                producer.send(new ProducerRecord<>(topic, 0, null, big)).get();
            } catch (ExecutionException e) {
                error = e.getCause();
            }
            check(error instanceof org.apache.kafka.common.errors.RecordTooLargeException,
                    "a %d-byte record was %s, expected RecordTooLargeException (MESSAGE_TOO_LARGE)",
                    big.length, error == null ? "accepted" : "rejected with " + Report.describe(error));
            // The producer stays usable and the log holds only the small record.
            RecordMetadata md = producer.send(new ProducerRecord<>(topic, 0, null, "after".getBytes(StandardCharsets.UTF_8))).get();
            check(md.offset() == 1, "the record after the rejected one got offset %d, expected 1", md.offset());
        }
    }

    /** AdminClient reads that fall back to Metadata when the broker lacks the newer APIs. */
    private void adminDescribe() throws Exception {
        String topic = multiTopic();
        try (Admin admin = Clients.admin(bootstrap, label + "-admin")) {
            check(admin.listTopics().names().get().contains(topic), "listTopics does not include %s", topic);
            // 4.x: DescribeTopicPartitions, or Metadata when the broker does not advertise it.
            org.apache.kafka.clients.admin.TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
            check(d.partitions().size() == PARTITIONS, "describeTopics shows %d partitions", d.partitions().size());
            check(d.topicId() != null && !Uuid.ZERO_UUID.equals(d.topicId()), "describeTopics topic id %s", d.topicId());
            // DescribeCluster (key 60), or Metadata when not advertised.
            org.apache.kafka.clients.admin.DescribeClusterResult cluster = admin.describeCluster();
            check(cluster.nodes().get().size() == 1, "describeCluster shows %d nodes", cluster.nodes().get().size());
            check(cluster.clusterId().get() != null, "describeCluster has no cluster id");
            check(cluster.controller().get() != null, "describeCluster has no controller");
        }
    }

    /** A topic-level max.message.bytes given at creation is enforced on produce. */
    private void topicMaxMessageBytes() throws Exception {
        String topic = topicPrefix + "small-messages";
        try (Admin admin = Clients.admin(bootstrap, label + "-admin")) {
            admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1).configs(Map.of("max.message.bytes", "10000")))).all().get();
        }
        try (KafkaProducer<byte[], byte[]> producer = Clients.producer(bootstrap, label + "-small", "none")) {
            producer.send(new ProducerRecord<>(topic, 0, null, new byte[5000])).get();
            Throwable error = null;
            try {
                producer.send(new ProducerRecord<>(topic, 0, null, new byte[20000])).get();
            } catch (ExecutionException e) {
                error = e.getCause();
            }
            check(error instanceof org.apache.kafka.common.errors.RecordTooLargeException,
                    "a 20000-byte record on a topic with max.message.bytes=10000 was %s, expected RecordTooLargeException",
                    error == null ? "accepted" : "rejected with " + Report.describe(error));
        }
    }

    /** Kafka 4.x: message.timestamp.after.max.ms = 1 h (KIP-1030); later CreateTime is INVALID_TIMESTAMP. */
    private void futureTimestamp() throws Exception {
        String topic = topicPrefix + "future";
        long future = System.currentTimeMillis() + 2 * 3600 * 1000L;
        try (KafkaProducer<byte[], byte[]> producer = Clients.producer(bootstrap, label + "-future", "none")) {
            producer.send(new ProducerRecord<>(topic, 0, System.currentTimeMillis(), null, new byte[10])).get();
            Throwable error = null;
            try {
                producer.send(new ProducerRecord<>(topic, 0, future, null, new byte[10])).get();
            } catch (ExecutionException e) {
                error = e.getCause();
            }
            check(error instanceof org.apache.kafka.common.errors.InvalidTimestampException,
                    "a record stamped 2 h in the future was %s, expected InvalidTimestampException (INVALID_TIMESTAMP)",
                    error == null ? "accepted" : "rejected with " + Report.describe(error));
        }
    }

    /** Metadata v4+ with allow_auto_topic_creation=false must not create the topic. */
    private void noAutoCreate() throws Exception {
        String topic = topicPrefix + "never-created";
        try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(bootstrap, label + "-no-create",
                Map.of("allow.auto.create.topics", "false"))) {
            List<PartitionInfo> parts = consumer.partitionsFor(topic, Duration.ofSeconds(10));
            check(parts == null || parts.isEmpty(), "partitionsFor(%s) returned %s for a topic nobody created", topic, parts);
        }
        try (Admin admin = Clients.admin(bootstrap, label + "-admin")) {
            check(!admin.listTopics().names().get().contains(topic),
                    "a Metadata request with allow_auto_topic_creation=false created %s", topic);
        }
    }

    // ---- helpers ----------------------------------------------------------------------------

    private static <T> T get(Future<T> future, String what) throws Exception {
        try {
            return future.get();
        } catch (ExecutionException e) {
            throw new Report.CheckFailed(what + " failed: " + Report.describe(e.getCause()));
        }
    }

    private static void expectFailure(org.apache.kafka.common.KafkaFuture<Void> future, Class<? extends Throwable> type, String what)
            throws InterruptedException {
        Throwable error = null;
        try {
            future.get();
        } catch (ExecutionException e) {
            error = e.getCause();
        }
        check(error != null, "%s succeeded, expected %s", what, type.getSimpleName());
        check(type.isInstance(error), "%s failed with %s, expected %s", what, Report.describe(error), type.getSimpleName());
    }

    private static boolean sameHeaders(List<Header> a, List<Header> b) {
        if (a.size() != b.size()) {
            return false;
        }
        for (int i = 0; i < a.size(); i++) {
            if (!a.get(i).key().equals(b.get(i).key()) || !Arrays.equals(a.get(i).value(), b.get(i).value())) {
                return false;
            }
        }
        return true;
    }

    private static String show(byte[] bytes) {
        if (bytes == null) {
            return "null";
        }
        String text = new String(bytes, 0, Math.min(bytes.length, 40), StandardCharsets.UTF_8);
        return "[" + bytes.length + " bytes: " + text + (bytes.length > 40 ? "..." : "") + "]";
    }

    private static String show(List<Header> headers) {
        List<String> parts = new ArrayList<>();
        for (Header h : headers) {
            parts.add(h.key() + "=" + (h.value() == null ? "null" : new String(h.value(), StandardCharsets.UTF_8)));
        }
        return parts.toString();
    }
}
