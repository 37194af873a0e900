package gregor.compat;

import static gregor.compat.RegistryCase.PER_VERSION;
import static gregor.compat.Report.check;

import gregor.compat.RegistryCase.Reading;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import org.apache.flink.avro.registry.confluent.shaded.io.confluent.kafka.schemaregistry.ParsedSchema;
import org.apache.flink.avro.registry.confluent.shaded.io.confluent.kafka.schemaregistry.avro.AvroSchema;
import org.apache.flink.avro.registry.confluent.shaded.io.confluent.kafka.schemaregistry.client.CachedSchemaRegistryClient;
import org.apache.flink.avro.registry.confluent.shaded.io.confluent.kafka.schemaregistry.client.SchemaMetadata;
import org.apache.flink.avro.registry.confluent.shaded.io.confluent.kafka.schemaregistry.client.SchemaRegistryClient;
import org.apache.flink.avro.registry.confluent.shaded.io.confluent.kafka.schemaregistry.client.rest.RestService;
import org.apache.flink.avro.registry.confluent.shaded.io.confluent.kafka.schemaregistry.client.rest.entities.SubjectVersion;
import org.apache.flink.avro.registry.confluent.shaded.io.confluent.kafka.schemaregistry.client.rest.exceptions.RestClientException;
import org.apache.flink.avro.shaded.org.apache.avro.Schema;
import org.apache.flink.avro.shaded.org.apache.avro.generic.GenericData;
import org.apache.flink.avro.shaded.org.apache.avro.generic.GenericRecord;
import org.apache.flink.formats.avro.registry.confluent.ConfluentRegistryAvroDeserializationSchema;
import org.apache.flink.formats.avro.registry.confluent.ConfluentRegistryAvroSerializationSchema;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;

/**
 * gregor's schema registry through Confluent's own Java client: {@code kafka-schema-registry-client}
 * 7.5.3 as Apache Flink 2.1 bundles it, relocated, in {@code flink-sql-avro-confluent-registry}
 * (Maven Central serves no {@code io.confluent} artifact). Records are written by Flink's
 * {@code ConfluentRegistryAvroSerializationSchema} (which registers the writer schema through
 * {@code CachedSchemaRegistryClient} and frames each record as Confluent's serializers do: a zero
 * magic byte, the schema id in 4 bytes, the Avro binary), carried by kafka-clients 4.4, and read by
 * {@code ConfluentRegistryAvroDeserializationSchema} (the writer schema fetched by that id, the
 * record resolved to a reader schema). The client's other calls (subjects, ids, versions,
 * compatibility tests, subject config, modes, soft and permanent deletes) are exercised directly
 * and checked against Confluent's documented answers. Avro only, as Flink's format is.
 *
 * <p>Two phases around a SIGTERM restart of the broker (run.sh): {@code write} registers, evolves,
 * is refused, produces and consumes, and saves the ids; {@code reread} (a new JVM, empty caches)
 * reads every record back and finds the same ids, versions and configs.
 */
public final class FlinkRegistryTests extends RegistryCase {
    /** TopicNameStrategy's subject for the topic's values, as Flink SQL's format derives it. */
    private final String subject;
    /** A subject set to compatibility NONE, where an incompatible change is accepted. */
    private final String noneSubject;
    /** A subject soft-deleted, then permanently deleted, before the restart. */
    private final String deletedSubject;

    private static final Schema V1 = schema(Reading.V1);
    private static final Schema V2 = schema(Reading.V2);
    private static final Schema V3_INCOMPATIBLE = schema(Reading.V3_INCOMPATIBLE);
    private static final Schema V3 = schema(Reading.V3);

    /** The client Flink's schemas build for themselves, made here with the same settings. */
    private final SchemaRegistryClient client;

    private FlinkRegistryTests(Map<String, String> args) {
        super(args);
        subject = topic + "-value";
        noneSubject = topic + "-none-value";
        deletedSubject = topic + "-deleted-value";
        client = newClient();
    }

    public static void main(String[] argv) throws Exception {
        Map<String, String> args = Main.parseArgs(argv);
        new FlinkRegistryTests(args).run(args);
    }

    @Override
    void write(Report report) throws Exception {
        int[] ids = new int[2];
        Clients.createTopicIfAbsent(bootstrap, label + "-admin", topic);
        report.run(label + "/register", () -> {
            ids[0] = produce(V1);
            check(client.getSchemaById(ids[0]).equals(avro(V1)), "getSchemaById(%d) is not v1", ids[0]);
            checkLatest(1, ids[0], V1);
            // Nothing set on the subject: the global default, BACKWARD (GET /config?defaultToGlobal).
            check(client.getCompatibility(null).equals("BACKWARD"), "global compatibility %s", client.getCompatibility(null));
        });
        report.run(label + "/evolve", () -> {
            ids[1] = produce(V2);
            check(ids[1] != ids[0], "v2 has v1's id %d", ids[1]);
            checkLatest(2, ids[1], V2);
            check(client.getAllVersions(subject).equals(List.of(1, 2)), "versions %s", client.getAllVersions(subject));
            check(client.getVersion(subject, avro(V1)) == 1, "getVersion(v1) %d", client.getVersion(subject, avro(V1)));
            SchemaMetadata m = client.getSchemaMetadata(subject, 1);
            check(m.getId() == ids[0] && m.getVersion() == 1 && parse(m.getSchema()).equals(V1), "version 1: %s", describe(m));
        });
        report.run(label + "/consume-old-and-new", this::checkReadBack);
        report.run(label + "/incompatible-refused", this::checkRefused);
        report.run(label + "/lookups", () -> checkLookups(ids));
        report.run(label + "/subject-config", () -> {
            // BACKWARD set on the subject, NONE on another one: only there is the change accepted.
            check(client.updateCompatibility(subject, "BACKWARD").equals("BACKWARD"), "PUT /config/%s", subject);
            check(client.getCompatibility(subject).equals("BACKWARD"), "subject compatibility %s", client.getCompatibility(subject));
            client.register(noneSubject, avro(V2));
            check(client.updateCompatibility(noneSubject, "NONE").equals("NONE"), "PUT /config/%s", noneSubject);
            check(client.testCompatibility(noneSubject, avro(V3_INCOMPATIBLE)), "incompatible under NONE");
            int id = client.register(noneSubject, avro(V3_INCOMPATIBLE));
            check(client.getVersion(noneSubject, avro(V3_INCOMPATIBLE)) == 2, "not version 2 under NONE (id %d)", id);
            check(client.getCompatibility(noneSubject).equals("NONE"), "subject compatibility %s", client.getCompatibility(noneSubject));
            refusedWith(() -> client.updateCompatibility(noneSubject, "SIDEWAYS"), 42203, "an unknown compatibility level");
        });
        report.run(label + "/delete-subject", this::checkDeletes);
        report.run(label + "/mode", () -> {
            check(client.getMode().equals("READWRITE"), "global mode %s", client.getMode());
        });
        Files.writeString(state, ids[0] + " " + ids[1] + "\n");
    }

    @Override
    void reread(Report report) throws Exception {
        String[] saved = Files.readString(state).trim().split(" ");
        report.run(label + "/read-after-restart", this::checkReadBack);
        report.run(label + "/same-ids-after-restart", () -> {
            // Read before anything is registered again: a registry that lost its state answers
            // 40403 here rather than handing out the same ids anew.
            List<Schema> schemas = List.of(V1, V2);
            for (int v = 1; v <= 2; v++) {
                int savedId = Integer.parseInt(saved[v - 1]);
                Schema s = schemas.get(v - 1);
                check(client.getSchemaById(savedId).equals(avro(s)), "getSchemaById(%d) is not v%d", savedId, v);
                SchemaMetadata m = client.getSchemaMetadata(subject, v);
                check(m.getId() == savedId && parse(m.getSchema()).equals(s), "version %d: %s", v, describe(m));
                check(client.register(subject, avro(s)) == savedId, "v%d registered again is not id %d", v, savedId);
                check(client.getVersion(subject, avro(s)) == v, "v%d is not version %d", v, v);
            }
            checkLatest(2, Integer.parseInt(saved[1]), V2);
        });
        report.run(label + "/config-after-restart", () -> {
            check(client.getCompatibility(subject).equals("BACKWARD"), "subject compatibility %s", client.getCompatibility(subject));
            check(client.getCompatibility(noneSubject).equals("NONE"), "subject compatibility %s", client.getCompatibility(noneSubject));
            check(!client.getAllSubjects(true).contains(deletedSubject), "%s is back", deletedSubject);
        });
        report.run(label + "/incompatible-refused-after-restart", this::checkRefused);
        report.run(label + "/evolve-after-restart", () -> {
            int id = serialize(V3, 0).getInt(1);
            check(id > Integer.parseInt(saved[1]), "v3's id %d is not above v2's %s", id, saved[1]);
            checkLatest(3, id, V3);
        });
    }

    /** A client with empty caches, as Flink's CachedSchemaCoderProvider makes one. */
    private SchemaRegistryClient newClient() {
        return new CachedSchemaRegistryClient(registry, 1000);
    }

    /**
     * Serializes PER_VERSION records of {@code schema} through a new Flink serialization schema
     * (which registers it on the first) and produces them; returns the id in their frames.
     */
    private int produce(Schema schema) throws Exception {
        int id = -1;
        ConfluentRegistryAvroSerializationSchema<GenericRecord> writer =
                ConfluentRegistryAvroSerializationSchema.forGeneric(subject, schema, registry);
        try (KafkaProducer<byte[], byte[]> p = Clients.producer(bootstrap, label + "-producer", "none")) {
            for (int i = 0; i < PER_VERSION; i++) {
                byte[] frame = writer.serialize(reading(schema, i));
                ByteBuffer b = ByteBuffer.wrap(frame);
                check(b.get() == 0, "magic byte %d", frame[0]);
                int frameId = b.getInt();
                check(id == -1 || frameId == id, "ids %d and %d for one schema", id, frameId);
                id = frameId;
                p.send(new ProducerRecord<>(topic, frame)).get();
            }
        }
        // The id in the frame is the one the registry gives the schema under the subject.
        check(client.getId(subject, avro(schema)) == id, "frame id %d, lookup id %d", id, client.getId(subject, avro(schema)));
        return id;
    }

    /** One record of {@code schema} through a new serialization schema, not produced. */
    private ByteBuffer serialize(Schema schema, int i) throws IOException {
        return ByteBuffer.wrap(ConfluentRegistryAvroSerializationSchema.forGeneric(subject, schema, registry)
                .serialize(reading(schema, i)));
    }

    /** All records through a deserialization schema with reader v2: v1's records get unit "C". */
    private void checkReadBack() throws Exception {
        ConfluentRegistryAvroDeserializationSchema<GenericRecord> reader =
                ConfluentRegistryAvroDeserializationSchema.forGeneric(V2, registry);
        TopicPartition tp = new TopicPartition(topic, 0);
        List<String> seen = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(bootstrap, label + "-consumer")) {
            for (ConsumerRecord<byte[], byte[]> r : Clients.readFromBeginning(consumer, List.of(tp), 2 * PER_VERSION, Duration.ofSeconds(30))) {
                GenericRecord g = reader.deserialize(r.value());
                check(g.getSchema().equals(V2), "record at offset %d not in the reader's schema: %s", r.offset(), g.getSchema());
                seen.add(g.get("sensor") + "/" + g.get("value") + "/" + g.get("unit"));
            }
        }
        List<String> want = new ArrayList<>();
        for (Reading version : List.of(Reading.V1, Reading.V2)) {
            for (int i = 0; i < PER_VERSION; i++) {
                want.add(RegistryCase.asV2(version, i));
            }
        }
        check(seen.equals(want), "read %s, want %s", seen, want);
    }

    /**
     * The incompatible schema: testCompatibility says false (verbose, with a reason); Flink's
     * serializer and the client's register are refused with Confluent's 409 (status and error
     * code) and no version 3 appears.
     */
    private void checkRefused() throws Exception {
        check(!client.testCompatibility(subject, avro(V3_INCOMPATIBLE)), "testCompatibility says compatible");
        List<String> why = client.testCompatibilityVerbose(subject, avro(V3_INCOMPATIBLE));
        check(!why.isEmpty(), "testCompatibilityVerbose gives no reason");
        check(client.testCompatibility(subject, avro(V3)), "testCompatibility refuses v3");
        // Flink wraps the client's exception: WrappingRuntimeException("Failed to serialize schema
        // registry.") <- IOException("Could not register schema in registry") <- RestClientException.
        Exception flink = null;
        try {
            serialize(V3_INCOMPATIBLE, 0);
        } catch (Exception e) {
            flink = e;
        }
        RestClientException rce = null;
        for (Throwable t = flink; t != null && rce == null; t = t.getCause()) {
            if (t instanceof RestClientException r) {
                rce = r;
            }
        }
        check(rce != null && rce.getStatus() == 409 && rce.getErrorCode() == 409,
                "Flink's serializer: not a 409 refusal: %s", flink == null ? "registered" : Report.describe(flink));
        refusedWith(() -> client.register(subject, avro(V3_INCOMPATIBLE)), 409, "the incompatible schema");
        check(client.getAllVersions(subject).size() == 2, "versions after the refusal %s", client.getAllVersions(subject));
    }

    /** The calls by id and subject that the serializers do not make. */
    private void checkLookups(int[] ids) throws Exception {
        Collection<String> subjects = client.getAllSubjects();
        check(subjects.contains(subject), "getAllSubjects %s", subjects);
        check(client.getAllSubjectsByPrefix(topic).contains(subject), "getAllSubjectsByPrefix %s", client.getAllSubjectsByPrefix(topic));
        check(client.getAllSubjectsById(ids[0]).equals(List.of(subject)), "getAllSubjectsById(%d) %s", ids[0], client.getAllSubjectsById(ids[0]));
        Collection<SubjectVersion> svs = client.getAllVersionsById(ids[1]);
        check(svs.size() == 1 && svs.iterator().next().getSubject().equals(subject) && svs.iterator().next().getVersion() == 2,
                "getAllVersionsById(%d) %s", ids[1], svs);
        check(client.getBySubjectAndId(subject, ids[1]).equals(V2), "getBySubjectAndId(%d)", ids[1]);
        refusedWith(() -> client.getSchemaById(Integer.MAX_VALUE), 40403, "an unknown id");
        refusedWith(() -> client.getLatestSchemaMetadata(topic + "-nothing"), 40401, "an unknown subject");
        refusedWith(() -> client.getSchemaMetadata(subject, 99), 40402, "an unknown version");
        refusedWith(() -> client.getId(subject, avro(V3)), 40403, "a schema not under the subject");
        // GET /schemas: every version under a subject prefix, or each subject's latest.
        List<Schema> listed = client.getSchemas(subject, false, false).stream().map(p -> ((AvroSchema) p).rawSchema()).toList();
        check(listed.equals(List.of(V1, V2)), "getSchemas(%s) %s", subject, listed);
        listed = client.getSchemas(subject, false, true).stream().map(p -> ((AvroSchema) p).rawSchema()).toList();
        check(listed.equals(List.of(V2)), "getSchemas(%s, latestOnly) %s", subject, listed);
        // GET /v1/metadata/id names the Kafka cluster the broker reports.
        RestService rest = new RestService(registry);
        Object clusters = rest.getClusterId().getScope().get("clusters");
        String kafkaCluster;
        try (Admin admin = Clients.admin(bootstrap, label + "-admin")) {
            kafkaCluster = admin.describeCluster().clusterId().get();
        }
        check(clusters instanceof Map<?, ?> m && kafkaCluster.equals(m.get("kafka-cluster")),
                "/v1/metadata/id clusters %s, Kafka cluster %s", clusters, kafkaCluster);
        check(rest.getSchemaRegistryServerVersion().getVersion() != null, "/v1/metadata/version has no version");
        // A new client: its caches cannot answer for the registry.
        SchemaRegistryClient fresh = newClient();
        check(fresh.getSchemaById(ids[1]).equals(avro(V2)), "a fresh client's getSchemaById(%d)", ids[1]);
        check(fresh.getVersion(subject, avro(V2)) == 2, "a fresh client's getVersion(v2)");
    }

    /** Soft delete (hidden, listed with deleted=true), then permanent (gone), on a subject of its own. */
    private void checkDeletes() throws Exception {
        int id = client.register(deletedSubject, avro(V1));
        client.register(deletedSubject, avro(V2));
        check(client.deleteSchemaVersion(deletedSubject, "2") == 2, "deleteSchemaVersion 2");
        check(client.getAllVersions(deletedSubject).equals(List.of(1)), "versions after deleting 2: %s", client.getAllVersions(deletedSubject));
        RestService rest = new RestService(registry);
        check(rest.getDeletedOnlyVersions(deletedSubject).equals(List.of(2)), "deletedOnly versions %s", rest.getDeletedOnlyVersions(deletedSubject));
        // A subject is deleted once all its versions are.
        check(rest.getDeletedOnlySubjects(topic).isEmpty(), "deletedOnly subjects %s", rest.getDeletedOnlySubjects(topic));
        check(client.deleteSubject(deletedSubject).equals(List.of(1)), "soft deleteSubject");
        check(!client.getAllSubjects().contains(deletedSubject), "soft-deleted subject listed");
        check(client.getAllSubjects(true).contains(deletedSubject), "soft-deleted subject not listed with deleted=true");
        check(rest.getDeletedOnlySubjects(topic).equals(List.of(deletedSubject)), "deletedOnly subjects %s", rest.getDeletedOnlySubjects(topic));
        refusedWith(() -> client.getLatestSchemaMetadata(deletedSubject), 40401, "a soft-deleted subject");
        // The schema stays readable by id (records written with it must stay readable).
        check(newClient().getSchemaById(id).equals(avro(V1)), "id %d gone after the soft delete", id);
        check(client.deleteSubject(deletedSubject, true).equals(List.of(1, 2)), "permanent deleteSubject");
        check(!client.getAllSubjects(true).contains(deletedSubject), "permanently deleted subject listed");
        refusedWith(() -> client.deleteSubject(deletedSubject, true), 40401, "a second permanent delete");
    }

    private void checkLatest(int version, int id, Schema schema) throws Exception {
        // A fresh client each time: CachedSchemaRegistryClient caches the latest version.
        SchemaMetadata m = newClient().getLatestSchemaMetadata(subject);
        check(m.getVersion() == version && m.getId() == id && parse(m.getSchema()).equals(schema),
                "latest is %s, want version %d id %d", describe(m), version, id);
    }

    interface Call {
        Object run() throws Exception;
    }

    /** {@code call} fails with Confluent's RestClientException carrying {@code errorCode}. */
    private static void refusedWith(Call call, int errorCode, String what) {
        Object answer;
        try {
            answer = call.run();
        } catch (RestClientException e) {
            check(e.getErrorCode() == errorCode && e.getStatus() == errorCode / (errorCode >= 1000 ? 100 : 1),
                    "%s: status %d error code %d (%s), want %d", what, e.getStatus(), e.getErrorCode(), e.getMessage(), errorCode);
            return;
        } catch (Exception e) {
            throw new Report.CheckFailed(what + ": " + Report.describe(e));
        }
        throw new Report.CheckFailed(what + ": answered " + answer + ", want error code " + errorCode);
    }

    private static String describe(SchemaMetadata m) {
        return "id " + m.getId() + " version " + m.getVersion() + " " + m.getSchema();
    }

    private static ParsedSchema avro(Schema s) {
        return new AvroSchema(s);
    }

    /** Record {@code i} of a version; the incompatible one's value is a string. */
    private static GenericRecord reading(Schema s, int i) {
        Reading version = Reading.values()[List.of(V1, V2, V3_INCOMPATIBLE, V3).indexOf(s)];
        GenericRecord r = new GenericData.Record(s);
        r.put("sensor", RegistryCase.sensor(version, i));
        r.put("value", version == Reading.V3_INCOMPATIBLE ? "warm" : (Object) RegistryCase.value(i));
        if (version != Reading.V1) {
            r.put("unit", "F");
        }
        return r;
    }

    private static Schema parse(String json) {
        return new Schema.Parser().parse(json);
    }

    /** In a namespace of its own: the Spring program registers the same records on this registry. */
    private static Schema schema(Reading version) {
        return parse(version.in("gregor.flink"));
    }
}
