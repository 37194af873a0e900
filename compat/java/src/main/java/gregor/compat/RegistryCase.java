package gregor.compat;

import java.nio.file.Path;
import java.util.Map;

/**
 * What the schema-registry group's programs share (SpringRegistryTests, FlinkRegistryTests, each
 * on its own client's Avro, so they share the schemas as text): their arguments, their two phases
 * around a restart of the broker, and the schemas a "Reading" record evolves through.
 */
abstract class RegistryCase {
    /** Records produced with each schema version. */
    static final int PER_VERSION = 3;

    /** The Reading record's versions, as JSON with the namespace left open (see {@link #in}). */
    enum Reading {
        V1("""
                {"type":"record","name":"Reading","namespace":"%s","fields":[
                  {"name":"sensor","type":"string"},{"name":"value","type":"double"}]}"""),
        /** v1 plus a field with a default: BACKWARD compatible, old records read with unit "C". */
        V2("""
                {"type":"record","name":"Reading","namespace":"%s","fields":[
                  {"name":"sensor","type":"string"},{"name":"value","type":"double"},
                  {"name":"unit","type":"string","default":"C"}]}"""),
        /** value double -> string: a reader of it cannot read v2's records, refused under BACKWARD. */
        V3_INCOMPATIBLE("""
                {"type":"record","name":"Reading","namespace":"%s","fields":[
                  {"name":"sensor","type":"string"},{"name":"value","type":"string"},
                  {"name":"unit","type":"string","default":"C"}]}"""),
        /** v2 plus an optional field: compatible, registered after the restart as version 3. */
        V3("""
                {"type":"record","name":"Reading","namespace":"%s","fields":[
                  {"name":"sensor","type":"string"},{"name":"value","type":"double"},
                  {"name":"unit","type":"string","default":"C"},
                  {"name":"note","type":["null","string"],"default":null}]}""");

        private final String json;

        Reading(String json) {
            this.json = json;
        }

        /**
         * The schema in {@code namespace}: each program its own, so that the two clients, on one
         * registry, do not share ids (a schema's id is global).
         */
        String in(String namespace) {
            return json.formatted(namespace);
        }
    }

    /** Registers, evolves, is refused, produces and consumes; saves the ids to --state. */
    abstract void write(Report report) throws Exception;

    /** In a new JVM after the broker's restart: the same records, ids and versions. */
    abstract void reread(Report report) throws Exception;

    final String bootstrap;
    final String registry;
    final String label;
    final String topic;
    final Path state;

    RegistryCase(Map<String, String> args) {
        bootstrap = Main.required(args, "bootstrap");
        registry = Main.required(args, "registry");
        label = Main.required(args, "label");
        topic = Main.required(args, "topic");
        state = Path.of(Main.required(args, "state"));
    }

    /** Runs the phase --phase names; exits 1 if a case failed. */
    void run(Map<String, String> args) throws Exception {
        Report report = new Report();
        switch (Main.required(args, "phase")) {
            case "write" -> write(report);
            case "reread" -> reread(report);
            default -> throw new IllegalArgumentException("--phase write|reread");
        }
        System.exit(report.failed() == 0 ? 0 : 1);
    }

    /** The sensor/value/unit of record {@code i} of a version, as a v2 reader sees them. */
    static String asV2(Reading version, int i) {
        String unit = version == Reading.V1 ? "C" : "F";
        return sensor(version, i) + "/" + value(i) + "/" + unit;
    }

    /** Record {@code i}'s sensor: which version wrote it and its index. */
    static String sensor(Reading version, int i) {
        return version.name() + "-" + i;
    }

    static double value(int i) {
        return 20.5 + i;
    }
}
