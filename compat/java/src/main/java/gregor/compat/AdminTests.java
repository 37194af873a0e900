package gregor.compat;

import static gregor.compat.Report.check;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.AlterConfigsOptions;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.CreatePartitionsOptions;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.DescribeConfigsOptions;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.ReplicaInfo;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.InvalidRecordException;
import org.apache.kafka.common.TopicCollection;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.InvalidRequestException;
import org.apache.kafka.common.errors.OffsetOutOfRangeException;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.errors.ThrottlingQuotaExceededException;
import org.apache.kafka.common.errors.UnknownTopicIdException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.quota.ClientQuotaAlteration;
import org.apache.kafka.common.quota.ClientQuotaEntity;
import org.apache.kafka.common.quota.ClientQuotaFilter;
import org.apache.kafka.common.quota.ClientQuotaFilterComponent;
import org.apache.kafka.clients.admin.AlterClientQuotasOptions;

/**
 * Topic administration through AdminClient: DeleteTopics (by name and id), CreatePartitions,
 * DescribeConfigs, IncrementalAlterConfigs (SET/DELETE/APPEND/SUBTRACT, topics and the broker),
 * DeleteRecords, ListOffsets by timestamp, DescribeCluster, DescribeLogDirs, describeTopics, and
 * the produce-time rules topic configs enforce (max.message.bytes, compacted topics need keys).
 * Every error case checks the exception class Kafka's error code maps to.
 */
final class AdminTests {
    private final String bootstrap;
    private final String label;
    private final String prefix;

    private AdminTests(String bootstrap, String label) {
        this.bootstrap = bootstrap;
        this.label = label;
        this.prefix = label.replace('.', '-') + "-adm-";
    }

    static void run(Map<String, String> args, Report report) {
        AdminTests t = new AdminTests(Main.required(args, "bootstrap"), Main.required(args, "label"));
        if (!"quotas".equals(args.get("only"))) {
            t.topicAdministration(report);
        }
        report.run(t.label + "/client-quotas", t::clientQuotas);
        report.run(t.label + "/byte-rate-quotas-throttle", t::byteRateQuotasThrottle);
        report.run(t.label + "/controller-mutation-quota", t::controllerMutationQuota);
        report.run(t.label + "/request-percentage-quota", t::requestPercentageQuota);
        report.run(t.label + "/ip-connection-creation-rate", t::ipConnectionCreationRate);
    }

    private void topicAdministration(Report report) {
        report.run(label + "/delete-topics-by-name-and-id", this::deleteTopics);
        report.run(label + "/create-partitions", this::createPartitions);
        report.run(label + "/describe-configs", this::describeConfigs);
        report.run(label + "/incremental-alter-configs", this::incrementalAlterConfigs);
        report.run(label + "/alter-configs-errors", this::alterConfigsErrors);
        report.run(label + "/config-change-applies-live", this::configAppliesLive);
        report.run(label + "/dynamic-broker-config", this::dynamicBrokerConfig);
        report.run(label + "/compacted-topic-needs-keys", this::compactedNeedsKeys);
        report.run(label + "/delete-records", this::deleteRecords);
        report.run(label + "/list-offsets-by-timestamp", this::listOffsetsByTimestamp);
        report.run(label + "/describe-cluster", this::describeCluster);
        report.run(label + "/describe-topics", this::describeTopics);
        report.run(label + "/describe-log-dirs", this::describeLogDirs);
    }

    private Admin admin() {
        return Clients.admin(bootstrap, label + "-admin");
    }

    private static void expect(Future<?> f, Class<? extends Throwable> want, String what) throws InterruptedException {
        try {
            f.get();
        } catch (ExecutionException e) {
            check(want.isInstance(e.getCause()), "%s: expected %s, got %s", what, want.getSimpleName(),
                    Report.describe(e.getCause()));
            return;
        }
        check(false, "%s: expected %s, but it succeeded", what, want.getSimpleName());
    }

    private void create(Admin admin, String topic, int partitions, Map<String, String> configs) throws Exception {
        admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1).configs(configs))).all().get();
    }

    private void produce(String topic, int partition, int count) throws Exception {
        try (KafkaProducer<byte[], byte[]> p = Clients.producer(bootstrap, label + "-adm-producer", "none")) {
            for (int i = 0; i < count; i++) {
                byte[] v = ("v" + i).getBytes(StandardCharsets.UTF_8);
                p.send(new ProducerRecord<>(topic, partition, Records.BASE_TIMESTAMP + i, ("k" + i).getBytes(StandardCharsets.UTF_8), v)).get();
            }
        }
    }

    // ---- DeleteTopics -------------------------------------------------------------------------

    private void deleteTopics() throws Exception {
        String byName = prefix + "del-name";
        String byId = prefix + "del-id";
        String kept = prefix + "del-kept";
        try (Admin admin = admin()) {
            create(admin, byName, 2, Map.of());
            create(admin, byId, 1, Map.of());
            create(admin, kept, 1, Map.of());
            produce(kept, 0, 3);
            Uuid id = admin.describeTopics(List.of(byId)).allTopicNames().get().get(byId).topicId();
            admin.deleteTopics(TopicCollection.ofTopicNames(List.of(byName))).all().get();
            admin.deleteTopics(TopicCollection.ofTopicIds(List.of(id))).all().get();
            // Kafka 4.x answers DeleteTopics once the controller has committed the deletion; a
            // broker's metadata (what listTopics reads) follows a moment later.
            Set<String> names = admin.listTopics().names().get();
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while ((names.contains(byName) || names.contains(byId)) && System.nanoTime() < deadline) {
                Thread.sleep(100);
                names = admin.listTopics().names().get();
            }
            check(!names.contains(byName) && !names.contains(byId) && names.contains(kept),
                    "after deletion listTopics shows %s", names);
            expect(admin.deleteTopics(TopicCollection.ofTopicNames(List.of(byName))).all(),
                    UnknownTopicOrPartitionException.class, "deleting a deleted topic by name");
            expect(admin.deleteTopics(TopicCollection.ofTopicIds(List.of(id))).all(),
                    UnknownTopicIdException.class, "deleting a deleted topic by id");
            expect(admin.describeTopics(List.of(byName)).allTopicNames(),
                    UnknownTopicOrPartitionException.class, "describing a deleted topic");
            long end = admin.listOffsets(Map.of(new TopicPartition(kept, 0), OffsetSpec.latest())).all().get()
                    .get(new TopicPartition(kept, 0)).offset();
            check(end == 3, "the other topic's end offset is %d, expected 3", end);
            // A topic of the same name starts empty.
            create(admin, byName, 1, Map.of());
            long again = admin.listOffsets(Map.of(new TopicPartition(byName, 0), OffsetSpec.latest())).all().get()
                    .get(new TopicPartition(byName, 0)).offset();
            check(again == 0, "the recreated topic's end offset is %d", again);
        }
    }

    // ---- CreatePartitions ---------------------------------------------------------------------

    private void createPartitions() throws Exception {
        String topic = prefix + "grow";
        try (Admin admin = admin()) {
            create(admin, topic, 2, Map.of());
            admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(5)),
                    new CreatePartitionsOptions().validateOnly(true)).all().get();
            check(partitions(admin, topic) == 2, "validateOnly grew the topic");
            admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(4))).all().get();
            int grown = awaitPartitions(admin, topic, 4);
            check(grown == 4, "topic has %d partitions after growing to 4", grown);
            expect(admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(3))).all(),
                    InvalidPartitionsException.class, "shrinking");
            expect(admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(4))).all(),
                    InvalidPartitionsException.class, "same count");
            expect(admin.createPartitions(Map.of(prefix + "grow-missing", NewPartitions.increaseTo(4))).all(),
                    UnknownTopicOrPartitionException.class, "unknown topic");
            produce(topic, 3, 1);
        }
    }

    private static int partitions(Admin admin, String topic) throws Exception {
        return admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions().size();
    }

    /**
     * The topic's partition count once it is {@code want}, or what it is after 15 s: Kafka's
     * brokers learn new partitions from the metadata log a moment after CreatePartitions is
     * answered (a flake of the Kafka calibration run).
     */
    private static int awaitPartitions(Admin admin, String topic, int want) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(15).toNanos();
        int n = partitions(admin, topic);
        while (n != want && System.nanoTime() < deadline) {
            Thread.sleep(100);
            n = partitions(admin, topic);
        }
        return n;
    }

    // ---- Configs ------------------------------------------------------------------------------

    private static ConfigResource topicResource(String topic) {
        return new ConfigResource(ConfigResource.Type.TOPIC, topic);
    }

    private static Config describe(Admin admin, ConfigResource r) throws Exception {
        return admin.describeConfigs(List.of(r), new DescribeConfigsOptions().includeSynonyms(true)).all().get().get(r);
    }

    private void describeConfigs() throws Exception {
        String topic = prefix + "described";
        try (Admin admin = admin()) {
            create(admin, topic, 1, Map.of("retention.ms", "123456"));
            Config c = describe(admin, topicResource(topic));
            ConfigEntry retention = c.get("retention.ms");
            check(retention != null && "123456".equals(retention.value())
                            && retention.source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                    "retention.ms: %s", retention);
            check(!retention.synonyms().isEmpty()
                            && retention.synonyms().get(0).source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                    "retention.ms synonyms: %s", retention.synonyms());
            ConfigEntry segment = c.get("segment.bytes");
            check(segment != null && "1073741824".equals(segment.value())
                            && segment.source() == ConfigEntry.ConfigSource.DEFAULT_CONFIG,
                    "segment.bytes: %s", segment);
            check(c.entries().size() > 25, "only %d topic configs described", c.entries().size());
            String node = String.valueOf(admin.describeCluster().controller().get().id());
            Config broker = describe(admin, new ConfigResource(ConfigResource.Type.BROKER, node));
            check(broker.get("num.partitions") != null && broker.get("log.segment.bytes") != null,
                    "broker configs lack num.partitions or log.segment.bytes");
            Config documented = admin.describeConfigs(List.of(topicResource(topic)),
                    new DescribeConfigsOptions().includeDocumentation(true)).all().get().get(topicResource(topic));
            String doc = documented.get("retention.ms").documentation();
            check(doc != null && doc.contains("retain"), "retention.ms documentation: %s", doc);
            expect(admin.describeConfigs(List.of(topicResource(prefix + "no-such-topic"))).all(),
                    UnknownTopicOrPartitionException.class, "describing an unknown topic's configs");
        }
    }

    private void incrementalAlterConfigs() throws Exception {
        String topic = prefix + "altered";
        ConfigResource r = topicResource(topic);
        try (Admin admin = admin()) {
            create(admin, topic, 1, Map.of("retention.ms", "1000000"));
            Map<ConfigResource, Collection<AlterConfigOp>> ops = Map.of(r, List.of(
                    new AlterConfigOp(new ConfigEntry("segment.ms", "3600000"), AlterConfigOp.OpType.SET),
                    new AlterConfigOp(new ConfigEntry("retention.ms", null), AlterConfigOp.OpType.DELETE),
                    new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.APPEND)));
            admin.incrementalAlterConfigs(ops).all().get();
            Config c = describe(admin, r);
            check("3600000".equals(c.get("segment.ms").value()), "segment.ms: %s", c.get("segment.ms"));
            check(c.get("retention.ms").source() != ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                    "retention.ms still overridden: %s", c.get("retention.ms"));
            check("delete,compact".equals(c.get("cleanup.policy").value()), "cleanup.policy: %s", c.get("cleanup.policy"));
            admin.incrementalAlterConfigs(Map.of(r, List.of(
                    new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.SUBTRACT))))
                    .all().get();
            check("delete".equals(describe(admin, r).get("cleanup.policy").value()),
                    "cleanup.policy after SUBTRACT: %s", describe(admin, r).get("cleanup.policy"));
            // validateOnly changes nothing.
            admin.incrementalAlterConfigs(Map.of(r, List.of(
                    new AlterConfigOp(new ConfigEntry("segment.ms", "7200000"), AlterConfigOp.OpType.SET))),
                    new AlterConfigsOptions().validateOnly(true)).all().get();
            check("3600000".equals(describe(admin, r).get("segment.ms").value()), "validateOnly changed segment.ms");
        }
    }

    private void alterConfigsErrors() throws Exception {
        String topic = prefix + "alter-errors";
        ConfigResource r = topicResource(topic);
        try (Admin admin = admin()) {
            create(admin, topic, 1, Map.of());
            List<String> problems = new ArrayList<>();
            record Case(AlterConfigOp op, Class<? extends Throwable> want) {}
            List<Case> list = List.of(
                    new Case(new AlterConfigOp(new ConfigEntry("no.such.config", "1"), AlterConfigOp.OpType.SET),
                            InvalidConfigurationException.class),
                    new Case(new AlterConfigOp(new ConfigEntry("retention.ms", "soon"), AlterConfigOp.OpType.SET),
                            InvalidConfigurationException.class),
                    new Case(new AlterConfigOp(new ConfigEntry("segment.bytes", "10"), AlterConfigOp.OpType.SET),
                            InvalidConfigurationException.class),
                    new Case(new AlterConfigOp(new ConfigEntry("retention.ms", "1"), AlterConfigOp.OpType.APPEND),
                            InvalidConfigurationException.class));
            for (Case c : list) {
                try {
                    admin.incrementalAlterConfigs(Map.of(r, List.of(c.op()))).all().get();
                    problems.add(c.op() + " was accepted");
                } catch (ExecutionException e) {
                    if (!c.want().isInstance(e.getCause())) {
                        problems.add(c.op() + " failed with " + Report.describe(e.getCause()));
                    }
                }
            }
            check(problems.isEmpty(), "%s", problems);
            check(describe(admin, r).entries().stream()
                            .noneMatch(e -> e.source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG),
                    "a refused change left an override");
            expect(admin.incrementalAlterConfigs(Map.of(topicResource(prefix + "missing"), List.of(
                            new AlterConfigOp(new ConfigEntry("retention.ms", "1"), AlterConfigOp.OpType.SET)))).all(),
                    UnknownTopicOrPartitionException.class, "altering an unknown topic");
            // A broker config Kafka cannot change at run time.
            String node = String.valueOf(admin.describeCluster().controller().get().id());
            expect(admin.incrementalAlterConfigs(Map.of(new ConfigResource(ConfigResource.Type.BROKER, node), List.of(
                            new AlterConfigOp(new ConfigEntry("log.dirs", "/elsewhere"), AlterConfigOp.OpType.SET)))).all(),
                    InvalidRequestException.class, "altering log.dirs");
        }
    }

    /** A dynamic broker config (KIP-226): set, described with its source, deleted again. */
    private void dynamicBrokerConfig() throws Exception {
        try (Admin admin = admin()) {
            String node = String.valueOf(admin.describeCluster().controller().get().id());
            ConfigResource r = new ConfigResource(ConfigResource.Type.BROKER, node);
            admin.incrementalAlterConfigs(Map.of(r, List.of(new AlterConfigOp(
                    new ConfigEntry("log.retention.ms", "604800001"), AlterConfigOp.OpType.SET)))).all().get();
            try {
                // Kafka applies dynamic configs asynchronously (through its metadata log): poll.
                ConfigEntry e = awaitEntry(admin, r, "log.retention.ms", "604800001");
                check(e.source() == ConfigEntry.ConfigSource.DYNAMIC_BROKER_CONFIG && !e.isReadOnly(),
                        "broker log.retention.ms: %s", e);
                String topic = prefix + "dyn";
                create(admin, topic, 1, Map.of());
                ConfigEntry t = awaitEntry(admin, topicResource(topic), "retention.ms", "604800001");
                check(t.source() == ConfigEntry.ConfigSource.DYNAMIC_BROKER_CONFIG, "topic retention.ms: %s", t);
            } finally {
                admin.incrementalAlterConfigs(Map.of(r, List.of(new AlterConfigOp(
                        new ConfigEntry("log.retention.ms", null), AlterConfigOp.OpType.DELETE)))).all().get();
            }
            GroupTests.waitUntil(() -> {
                try {
                    return describe(admin, r).get("log.retention.ms").source()
                            != ConfigEntry.ConfigSource.DYNAMIC_BROKER_CONFIG;
                } catch (Exception ex) {
                    return false;
                }
            }, Duration.ofSeconds(15), "log.retention.ms is no longer dynamic");
        }
    }

    private static ConfigEntry awaitEntry(Admin admin, ConfigResource r, String name, String value) throws Exception {
        ConfigEntry[] last = new ConfigEntry[1];
        GroupTests.waitUntil(() -> {
            try {
                last[0] = describe(admin, r).get(name);
                return last[0] != null && value.equals(last[0].value());
            } catch (Exception ex) {
                return false;
            }
        }, Duration.ofSeconds(15), "%s of %s is %s", name, r, value);
        return last[0];
    }

    private void configAppliesLive() throws Exception {
        String topic = prefix + "live";
        try (Admin admin = admin()) {
            create(admin, topic, 1, Map.of());
            admin.incrementalAlterConfigs(Map.of(topicResource(topic), List.of(
                    new AlterConfigOp(new ConfigEntry("max.message.bytes", "2000"), AlterConfigOp.OpType.SET)))).all().get();
        }
        try (KafkaProducer<byte[], byte[]> p = Clients.producer(bootstrap, label + "-adm-live", "none",
                Map.of("retries", "0", "enable.idempotence", "false", "acks", "1"))) {
            p.send(new ProducerRecord<>(topic, 0, null, new byte[100])).get();
            try {
                p.send(new ProducerRecord<>(topic, 0, null, new byte[5000])).get();
                check(false, "a 5000-byte record was accepted with max.message.bytes=2000");
            } catch (ExecutionException e) {
                check(e.getCause() instanceof RecordTooLargeException, "expected RecordTooLargeException, got %s",
                        Report.describe(e.getCause()));
            }
        }
    }

    private void compactedNeedsKeys() throws Exception {
        String topic = prefix + "compacted";
        try (Admin admin = admin()) {
            create(admin, topic, 1, Map.of("cleanup.policy", "compact"));
        }
        try (KafkaProducer<byte[], byte[]> p = Clients.producer(bootstrap, label + "-adm-compacted", "lz4",
                Map.of("retries", "0", "enable.idempotence", "false", "acks", "1"))) {
            p.send(new ProducerRecord<>(topic, 0, "k".getBytes(StandardCharsets.UTF_8), new byte[10])).get();
            try {
                p.send(new ProducerRecord<>(topic, 0, null, new byte[10])).get();
                check(false, "a record without a key was accepted on a compacted topic");
            } catch (ExecutionException e) {
                check(e.getCause() instanceof InvalidRecordException, "expected InvalidRecordException, got %s",
                        Report.describe(e.getCause()));
            }
        }
    }

    // ---- DeleteRecords, ListOffsets -----------------------------------------------------------

    private void deleteRecords() throws Exception {
        String topic = prefix + "trim";
        TopicPartition tp = new TopicPartition(topic, 0);
        try (Admin admin = admin()) {
            create(admin, topic, 1, Map.of());
            produce(topic, 0, 10);
            long low = admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(4))).lowWatermarks().get(tp)
                    .get().lowWatermark();
            check(low == 4, "low watermark %d, expected 4", low);
            expect(admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(11))).all(),
                    OffsetOutOfRangeException.class, "deleting past the high watermark");
            long earliest = admin.listOffsets(Map.of(tp, OffsetSpec.earliest())).all().get().get(tp).offset();
            check(earliest == 4, "earliest offset %d, expected 4", earliest);
        }
        try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(bootstrap, label + "-adm-trim")) {
            List<ConsumerRecord<byte[], byte[]>> got = Clients.readFromBeginning(c, List.of(tp), 6, Duration.ofSeconds(20));
            check(got.size() == 6 && got.get(0).offset() == 4, "read %d records from offset %s", got.size(),
                    got.isEmpty() ? "-" : String.valueOf(got.get(0).offset()));
        }
    }

    private void listOffsetsByTimestamp() throws Exception {
        String topic = prefix + "times";
        TopicPartition tp = new TopicPartition(topic, 0);
        try (Admin admin = admin()) {
            create(admin, topic, 1, Map.of());
            produce(topic, 0, 5); // timestamps BASE_TIMESTAMP + 0..4
            ListOffsetsResult.ListOffsetsResultInfo at = admin.listOffsets(Map.of(tp,
                    OffsetSpec.forTimestamp(Records.BASE_TIMESTAMP + 2))).all().get().get(tp);
            check(at.offset() == 2 && at.timestamp() == Records.BASE_TIMESTAMP + 2, "forTimestamp: %s", at);
            ListOffsetsResult.ListOffsetsResultInfo max = admin.listOffsets(Map.of(tp, OffsetSpec.maxTimestamp()))
                    .all().get().get(tp);
            check(max.offset() == 4, "maxTimestamp: %s", max);
            ListOffsetsResult.ListOffsetsResultInfo future = admin.listOffsets(Map.of(tp,
                    OffsetSpec.forTimestamp(Records.BASE_TIMESTAMP + 1_000_000))).all().get().get(tp);
            check(future.offset() == -1, "a timestamp after every record: %s", future);
        }
    }

    // ---- Cluster, topics, log dirs ------------------------------------------------------------

    private static ClientQuotaAlteration quota(ClientQuotaEntity entity, String key, Double value) {
        return new ClientQuotaAlteration(entity, List.of(new ClientQuotaAlteration.Op(key, value)));
    }

    /**
     * The entities and quotas {@code filter} describes, once they equal {@code want}: Kafka's
     * brokers learn an alteration from the metadata log a moment after it is acknowledged, so a
     * describe right after may still show the old quotas (gregor's answer already has them).
     */
    private static Map<ClientQuotaEntity, Map<String, Double>> awaitQuotas(Admin admin, ClientQuotaFilter filter,
            Map<ClientQuotaEntity, Map<String, Double>> want, String what) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(15).toNanos();
        Map<ClientQuotaEntity, Map<String, Double>> got;
        do {
            got = admin.describeClientQuotas(filter).entities().get();
            if (got.equals(want)) {
                return got;
            }
            Thread.sleep(100);
        } while (System.nanoTime() < deadline);
        check(false, "%s: %s, expected %s", what, got, want);
        return got;
    }

    private static ClientQuotaEntity clientEntity(String clientId) {
        return new ClientQuotaEntity(Map.of(ClientQuotaEntity.CLIENT_ID, clientId));
    }

    /** The quotas of exactly this client id's entity. */
    private static ClientQuotaFilter onlyClient(String clientId) {
        return ClientQuotaFilter.containsOnly(
                List.of(ClientQuotaFilterComponent.ofEntity(ClientQuotaEntity.CLIENT_ID, clientId)));
    }

    /** AlterClientQuotas / DescribeClientQuotas (what kafka-configs --entity-type clients uses). */
    private void clientQuotas() throws Exception {
        String clientId = prefix + "quota-client";
        var entity = clientEntity(clientId);
        var only = onlyClient(clientId);
        try (Admin admin = admin()) {
            var validated = new ClientQuotaEntity(Map.of(ClientQuotaEntity.CLIENT_ID, clientId + "-validated"));
            admin.alterClientQuotas(List.of(quota(validated, "producer_byte_rate", 1048576.0)),
                    new AlterClientQuotasOptions().validateOnly(true)).all().get();
            admin.alterClientQuotas(List.of(new ClientQuotaAlteration(entity, List.of(
                    new ClientQuotaAlteration.Op("producer_byte_rate", 1048576.0),
                    new ClientQuotaAlteration.Op("consumer_byte_rate", 2097152.0))))).all().get();
            awaitQuotas(admin, only, Map.of(entity, Map.of("producer_byte_rate", 1048576.0,
                    "consumer_byte_rate", 2097152.0)), "after set");
            // What was only validated, before what is seen above, was never stored.
            var validatedOnly = admin.describeClientQuotas(ClientQuotaFilter.containsOnly(List.of(
                    ClientQuotaFilterComponent.ofEntity(ClientQuotaEntity.CLIENT_ID, clientId + "-validated"))))
                    .entities().get();
            check(validatedOnly.isEmpty(), "validate_only stored %s", validatedOnly);
            // A user-and-client entity is another entity: only the non-strict filter shows it.
            var both = new ClientQuotaEntity(Map.of(ClientQuotaEntity.USER, prefix + "u",
                    ClientQuotaEntity.CLIENT_ID, clientId));
            admin.alterClientQuotas(List.of(quota(both, "consumer_byte_rate", 4096.0))).all().get();
            awaitQuotas(admin, ClientQuotaFilter.contains(List.of(
                    ClientQuotaFilterComponent.ofEntity(ClientQuotaEntity.CLIENT_ID, clientId))),
                    Map.of(entity, Map.of("producer_byte_rate", 1048576.0, "consumer_byte_rate", 2097152.0),
                            both, Map.of("consumer_byte_rate", 4096.0)), "non-strict filter");
            admin.alterClientQuotas(List.of(quota(entity, "consumer_byte_rate", null),
                    quota(both, "consumer_byte_rate", null))).all().get();
            awaitQuotas(admin, only, Map.of(entity, Map.of("producer_byte_rate", 1048576.0)), "after removing one");
            expect(admin.alterClientQuotas(List.of(quota(entity, "no_such_rate", 5.0))).all(),
                    InvalidRequestException.class, "an unknown quota key");
            expect(admin.alterClientQuotas(List.of(quota(entity, "producer_byte_rate", -5.0))).all(),
                    InvalidRequestException.class, "a negative quota");
            expect(admin.alterClientQuotas(List.of(quota(entity, "producer_byte_rate", 1.5))).all(),
                    InvalidRequestException.class, "a fractional byte rate");
            admin.alterClientQuotas(List.of(quota(entity, "producer_byte_rate", null))).all().get();
            awaitQuotas(admin, only, Map.of(), "after removing all");
        }
    }

    /**
     * Opens a connection to the broker and sends it an ApiVersions request (v0, written by hand:
     * the clients reconnect on their own, hiding what the broker did to one connection). True when
     * it is answered; false when the broker closes the connection without an answer.
     */
    private boolean apiVersionsAnswered(int correlationId) throws Exception {
        int colon = bootstrap.lastIndexOf(':');
        String host = bootstrap.substring(0, colon);
        int port = Integer.parseInt(bootstrap.substring(colon + 1));
        byte[] clientId = "ip-quota-probe".getBytes(StandardCharsets.UTF_8);
        var frame = java.nio.ByteBuffer.allocate(4 + 2 + 2 + 4 + 2 + clientId.length);
        frame.putInt(frame.capacity() - 4).putShort((short) 18).putShort((short) 0)
                .putInt(correlationId).putShort((short) clientId.length).put(clientId);
        try (var socket = new java.net.Socket(host, port)) {
            socket.setSoTimeout(30_000);
            socket.getOutputStream().write(frame.array());
            var in = new java.io.DataInputStream(socket.getInputStream());
            try {
                int size = in.readInt();
                int answeredId = in.readInt();
                check(size > 4 && answeredId == correlationId, "ApiVersions answer of %d bytes for %d",
                        size, answeredId);
                return true;
            } catch (java.io.EOFException | java.net.SocketException closed) {
                return false;
            }
        }
    }

    /**
     * An ip's connection_creation_rate (KIP-612) on ClientQuotaEntity.IP: set for the default ip
     * entity and for 127.0.0.1, described, refused where Kafka refuses it, and enforced. At 2 new
     * connections a second, measured as every quota is (over at least quota.window.num - 1 = 10
     * one-second windows), 20 connections from 127.0.0.1 pass at once; the next is accepted and
     * closed unanswered, and connections are answered again once enough of the window has
     * passed. The admin client's own connections, opened before, keep working throughout.
     */
    private void ipConnectionCreationRate() throws Exception {
        String key = "connection_creation_rate";
        var localhost = new ClientQuotaEntity(Collections.singletonMap(ClientQuotaEntity.IP, "127.0.0.1"));
        var anyIp = new ClientQuotaEntity(Collections.singletonMap(ClientQuotaEntity.IP, null));
        var ips = ClientQuotaFilter.containsOnly(List.of(ClientQuotaFilterComponent.ofEntityType(ClientQuotaEntity.IP)));
        try (Admin admin = admin()) {
            admin.alterClientQuotas(List.of(quota(anyIp, key, 1000.0))).all().get();
            awaitQuotas(admin, ips, Map.of(anyIp, Map.of(key, 1000.0)), "the default ip entity");
            expect(admin.alterClientQuotas(List.of(quota(localhost, key, 2.5))).all(),
                    InvalidRequestException.class, "a fractional connection rate");
            expect(admin.alterClientQuotas(List.of(quota(localhost, "producer_byte_rate", 5.0))).all(),
                    InvalidRequestException.class, "a client quota on an ip");
            expect(admin.alterClientQuotas(List.of(quota(clientEntity(prefix + "c"), key, 5.0))).all(),
                    InvalidRequestException.class, "a connection rate on a client id");
            var mixed = new ClientQuotaEntity(Map.of(ClientQuotaEntity.IP, "127.0.0.1", ClientQuotaEntity.USER, "u"));
            expect(admin.alterClientQuotas(List.of(quota(mixed, key, 5.0))).all(),
                    InvalidRequestException.class, "an ip with a user");
            try {
                admin.alterClientQuotas(List.of(quota(localhost, key, 2.0))).all().get();
                awaitQuotas(admin, ips, Map.of(anyIp, Map.of(key, 1000.0), localhost, Map.of(key, 2.0)),
                        "127.0.0.1's own quota beside the default");
                int answered = 0;
                while (apiVersionsAnswered(answered)) {
                    answered++;
                    check(answered <= 40, "40 connections answered at 2 a second");
                }
                // 20 at once, give or take the admin client's own connections since the default
                // quota (the address's rate counts from then) and, on Kafka, the moment its
                // broker takes to apply a quota it already describes.
                check(answered >= 15 && answered <= 24, "%d connections answered before one was closed",
                        answered);
                long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
                int refused = 1;
                while (!apiVersionsAnswered(1000)) {
                    check(System.nanoTime() < deadline, "no connection answered 30 s after the burst");
                    refused++;
                    Thread.sleep(250);
                }
                System.err.printf("%s: %d connections answered, then %d closed unanswered, then one answered%n",
                        label, answered, refused);
                check(admin.describeCluster().nodes().get().size() == 1, "the admin client's connection");
            } finally {
                admin.alterClientQuotas(List.of(quota(localhost, key, null), quota(anyIp, key, null))).all().get();
            }
            awaitQuotas(admin, ips, Map.of(), "after removing both");
        }
    }

    private static double metric(Map<org.apache.kafka.common.MetricName, ? extends org.apache.kafka.common.Metric> metrics,
            String group, String name) {
        return metrics.entrySet().stream()
                .filter(e -> e.getKey().group().equals(group) && e.getKey().name().equals(name))
                .mapToDouble(e -> ((Number) e.getValue().metricValue()).doubleValue())
                .findFirst().orElse(Double.NaN);
    }

    /**
     * A producer and a consumer over their byte-rate quotas are throttled: the broker's throttle
     * time shows in the clients' metrics, and moving the bytes takes at least as long as the
     * quota allows (its rate is measured over quota.window.num - 1 = 10 one-second windows, so a
     * burst of up to ten seconds' worth passes at once). A lower bound only: a slow machine makes
     * it longer, never shorter.
     */
    private void byteRateQuotasThrottle() throws Exception {
        String topic = prefix + "quota-topic";
        String clientId = prefix + "throttled";
        // 2 MB at 140 kB/s: about 14 s of quota, of which the first 10 s pass at once.
        double producerRate = 140_000, consumerRate = 140_000;
        int records = 200, size = 10_000;
        var entity = new ClientQuotaEntity(Map.of(ClientQuotaEntity.CLIENT_ID, clientId));
        try (Admin admin = admin()) {
            create(admin, topic, 1, Map.of());
            admin.alterClientQuotas(List.of(new ClientQuotaAlteration(entity, List.of(
                    new ClientQuotaAlteration.Op("producer_byte_rate", producerRate),
                    new ClientQuotaAlteration.Op("consumer_byte_rate", consumerRate))))).all().get();
            long started = System.nanoTime();
            try (KafkaProducer<byte[], byte[]> p = Clients.producer(bootstrap, clientId, "none",
                    Map.of("acks", "1", "enable.idempotence", "false", "batch.size", "65536"))) {
                byte[] value = new byte[size];
                for (int i = 0; i < records; i++) {
                    p.send(new ProducerRecord<>(topic, value));
                }
                p.flush();
                double throttled = metric(p.metrics(), "producer-metrics", "produce-throttle-time-max");
                check(throttled > 0, "the producer was never throttled (produce-throttle-time-max %s)", throttled);
            }
            double seconds = (System.nanoTime() - started) / 1e9;
            double floor = records * (double) size / producerRate - 11;
            check(seconds >= floor, "%d bytes produced in %.1f s, faster than the quota allows (%.1f s)",
                    records * size, seconds, floor);
            started = System.nanoTime();
            // Small fetches, so that the rate is paced by many throttled fetches, not one big one.
            try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(bootstrap, clientId,
                    Map.of("max.partition.fetch.bytes", "65536"))) {
                c.assign(List.of(new TopicPartition(topic, 0)));
                c.seekToBeginning(List.of(new TopicPartition(topic, 0)));
                int read = 0;
                long deadline = System.nanoTime() + Duration.ofSeconds(120).toNanos();
                while (read < records && System.nanoTime() < deadline) {
                    read += c.poll(Duration.ofMillis(500)).count();
                }
                check(read == records, "read %d of %d records", read, records);
                double throttled = metric(c.metrics(), "consumer-fetch-manager-metrics", "fetch-throttle-time-max");
                check(throttled > 0, "the consumer was never throttled (fetch-throttle-time-max %s)", throttled);
            }
            seconds = (System.nanoTime() - started) / 1e9;
            floor = records * (double) size / consumerRate - 11;
            check(seconds >= floor, "%d bytes fetched in %.1f s, faster than the quota allows (%.1f s)",
                    records * size, seconds, floor);
            admin.alterClientQuotas(List.of(new ClientQuotaAlteration(entity, List.of(
                    new ClientQuotaAlteration.Op("producer_byte_rate", null),
                    new ClientQuotaAlteration.Op("consumer_byte_rate", null))))).all().get();
        }
    }

    /**
     * request_percentage: the share of one request-handler thread a client's requests may use.
     * At a hundredth of a percent (1 ms of broker time per 10 s window) a producer sending one
     * record per request soon goes over; its answers then carry a throttle time, never more than
     * one quota window (1 s) as Kafka bounds it. A fractional value is accepted (a DOUBLE).
     */
    private void requestPercentageQuota() throws Exception {
        String topic = prefix + "request-quota";
        String clientId = prefix + "busy";
        var entity = clientEntity(clientId);
        try (Admin admin = admin()) {
            create(admin, topic, 1, Map.of());
            admin.alterClientQuotas(List.of(quota(entity, "request_percentage", 0.01))).all().get();
            awaitQuotas(admin, onlyClient(clientId), Map.of(entity, Map.of("request_percentage", 0.01)), "after set");
            double throttled = 0;
            try (KafkaProducer<byte[], byte[]> p = Clients.producer(bootstrap, clientId, "none",
                    Map.of("acks", "1", "enable.idempotence", "false", "linger.ms", "0"))) {
                long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
                while (throttled == 0 && System.nanoTime() < deadline) {
                    p.send(new ProducerRecord<>(topic, new byte[100])).get();
                    throttled = metric(p.metrics(), "producer-metrics", "produce-throttle-time-max");
                }
            }
            check(throttled > 0, "the producer was never throttled (produce-throttle-time-max %s)", throttled);
            check(throttled <= 1000, "throttled for %s ms, more than one quota window", throttled);
            admin.alterClientQuotas(List.of(quota(entity, "request_percentage", null))).all().get();
        }
    }

    /**
     * controller_mutation_rate (KIP-599): partitions created per second, drawn from a token bucket
     * of (quota.window.num - 1) seconds' worth that starts full. At 1 per second: 10 partitions
     * pass, 5 more overdraw the bucket and still pass (the quota is strict only once exhausted),
     * then a topic is refused with THROTTLING_QUOTA_EXCEEDED and the time to wait, while a client
     * without the quota creates as it likes.
     */
    private void controllerMutationQuota() throws Exception {
        String clientId = prefix + "mutator";
        var entity = clientEntity(clientId);
        var only = onlyClient(clientId);
        try (Admin admin = admin()) {
            admin.alterClientQuotas(List.of(quota(entity, "controller_mutation_rate", 1.0))).all().get();
            awaitQuotas(admin, only, Map.of(entity, Map.of("controller_mutation_rate", 1.0)), "after set");
            var noRetry = new CreateTopicsOptions().retryOnQuotaViolation(false);
            try (Admin limited = Clients.admin(bootstrap, clientId)) {
                limited.createTopics(List.of(new NewTopic(prefix + "mut-10", 10, (short) 1)), noRetry).all().get();
                limited.createTopics(List.of(new NewTopic(prefix + "mut-5", 5, (short) 1)), noRetry).all().get();
                try {
                    limited.createTopics(List.of(new NewTopic(prefix + "mut-1", 1, (short) 1)), noRetry).all().get();
                    check(false, "a topic beyond the quota was created");
                } catch (ExecutionException e) {
                    check(e.getCause() instanceof ThrottlingQuotaExceededException, "expected throttling, got %s",
                            Report.describe(e.getCause()));
                    int wait = ((ThrottlingQuotaExceededException) e.getCause()).throttleTimeMs();
                    check(wait > 0 && wait <= 5000, "throttle time %d ms, not within the 5 s overdraft", wait);
                }
            }
            try {
                create(admin, prefix + "mut-free", 20, Map.of());
                // Kafka's brokers learn new topics from the metadata log a moment after they are
                // created: wait until the created ones are listed, then the refused one is not.
                var created = Set.of(prefix + "mut-10", prefix + "mut-5", prefix + "mut-free");
                long deadline = System.nanoTime() + Duration.ofSeconds(15).toNanos();
                var names = admin.listTopics().names().get();
                while (!names.containsAll(created) && System.nanoTime() < deadline) {
                    Thread.sleep(100);
                    names = admin.listTopics().names().get();
                }
                check(names.containsAll(created) && !names.contains(prefix + "mut-1"), "topics %s", names);
            } finally {
                admin.alterClientQuotas(List.of(quota(entity, "controller_mutation_rate", null))).all().get();
                var existing = new java.util.HashSet<>(admin.listTopics().names().get());
                existing.retainAll(Set.of(prefix + "mut-10", prefix + "mut-5", prefix + "mut-free"));
                admin.deleteTopics(existing).all().get();
            }
        }
    }

    private void describeCluster() throws Exception {
        try (Admin admin = admin()) {
            DescribeClusterResult r = admin.describeCluster();
            String clusterId = r.clusterId().get();
            var nodes = r.nodes().get();
            var controller = r.controller().get();
            check(clusterId != null && !clusterId.isEmpty(), "cluster id %s", clusterId);
            check(nodes.size() == 1 && nodes.iterator().next().id() == controller.id(), "nodes %s, controller %s",
                    nodes, controller);
            check(bootstrap.endsWith(":" + controller.port()), "controller %s is not %s", controller, bootstrap);
        }
    }

    private void describeTopics() throws Exception {
        String topic = prefix + "described-topic";
        try (Admin admin = admin()) {
            create(admin, topic, 3, Map.of());
            TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
            check(d.partitions().size() == 3 && !d.isInternal() && d.topicId() != null
                            && !Uuid.ZERO_UUID.equals(d.topicId()), "%s", d);
            d.partitions().forEach(p -> check(p.leader() != null && p.replicas().size() == 1 && p.isr().size() == 1,
                    "partition %s", p));
            TopicDescription byId = admin.describeTopics(TopicCollection.ofTopicIds(List.of(d.topicId())))
                    .allTopicIds().get().get(d.topicId());
            check(topic.equals(byId.name()), "by id: %s", byId);
            expect(admin.describeTopics(List.of(prefix + "nope")).allTopicNames(),
                    UnknownTopicOrPartitionException.class, "describing an unknown topic");
        }
    }

    private void describeLogDirs() throws Exception {
        String topic = prefix + "sized";
        try (Admin admin = admin()) {
            create(admin, topic, 1, Map.of());
            produce(topic, 0, 3);
            int node = admin.describeCluster().controller().get().id();
            Map<String, LogDirDescription> dirs = admin.describeLogDirs(List.of(node)).allDescriptions().get().get(node);
            check(dirs != null && dirs.size() == 1, "log dirs %s", dirs);
            LogDirDescription dir = dirs.values().iterator().next();
            ReplicaInfo info = dir.replicaInfos().get(new TopicPartition(topic, 0));
            check(info != null && info.size() > 0, "replica info of %s-0: %s", topic, info);
            Optional<Throwable> err = Optional.ofNullable(dir.error());
            check(err.isEmpty(), "log dir error %s", err);
        }
    }
}
