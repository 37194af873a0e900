// Generates gregor's Kafka config tables by asking Kafka's own ConfigDef objects.
// See README.md in this directory for how to run it. This file is gregor's own code.

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.common.config.ConfigDef.ConfigKey;
import org.apache.kafka.common.config.types.Password;
import org.apache.kafka.server.config.AbstractKafkaConfig;
import org.apache.kafka.server.config.ServerTopicConfigSynonyms;
import org.apache.kafka.storage.internals.log.LogConfig;

public class GenKafkaConfigs {

    /** Default as the Kafka docs print it, minus the "(1 gibibyte)"-style unit hints.
     *  No default or a null default -> empty; an explicitly empty default -> "" (two quote chars). */
    static String renderDefault(ConfigKey key) {
        if (!key.hasDefault() || key.defaultValue == null) return "";
        Object v = key.defaultValue;
        String s = (v instanceof Password) ? ((Password) v).value() : ConfigDef.convertToString(v, key.type);
        if (s == null) return "";
        if (s.isEmpty()) return "\"\"";
        if (s.indexOf('\t') >= 0 || s.indexOf('\n') >= 0) throw new IllegalStateException("unexpected tab/newline in default of " + key.name);
        return s;
    }

    static List<String> table(Map<String, ConfigKey> keys, boolean withSynonym, List<String> internal) {
        List<String> rows = new ArrayList<>();
        for (ConfigKey k : new TreeMap<>(keys).values()) {
            StringBuilder row = new StringBuilder().append(k.name).append('\t').append(k.type.name()).append('\t').append(renderDefault(k));
            if (withSynonym) {
                String syn = ServerTopicConfigSynonyms.TOPIC_CONFIG_SYNONYMS.get(k.name);
                row.append('\t').append(syn == null ? "" : syn);
            }
            rows.add(row.toString());
            if (k.internalConfig) internal.add(k.name);
        }
        return rows;
    }

    /** name, documentation: the text DescribeConfigs returns when asked (KIP-569), on one line. */
    static List<String> docs(Map<String, ConfigKey> keys) {
        List<String> rows = new ArrayList<>();
        for (ConfigKey k : new TreeMap<>(keys).values()) {
            String doc = k.documentation == null ? "" : k.documentation.replaceAll("[\\t\\r\\n]+", " ").trim();
            rows.add(k.name + '\t' + doc);
        }
        return rows;
    }

    static void write(Path file, List<String> rows) throws IOException {
        Files.createDirectories(file.toAbsolutePath().getParent());
        Files.write(file, rows, StandardCharsets.UTF_8);
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: java -cp '<kafka jars>/*' GenKafkaConfigs.java <output dir>");
            System.exit(2);
        }
        Path out = Paths.get(args[0]);
        PrintStream log = System.err;

        // The broker definition: KafkaConfig validates server.properties against this ConfigDef.
        ConfigDef broker = AbstractKafkaConfig.CONFIG_DEF;
        ConfigDef scalaView = kafka.server.KafkaConfig$.MODULE$.configDef();
        if (!broker.names().equals(scalaView.names()))
            throw new IllegalStateException("KafkaConfig.configDef differs from AbstractKafkaConfig.CONFIG_DEF");

        // Topic-level definition (what CreateTopics / AlterConfigs accept for a topic).
        Map<String, ConfigKey> topic = LogConfig.configKeys();

        List<String> brokerInternal = new ArrayList<>();
        List<String> topicInternal = new ArrayList<>();
        List<String> brokerRows = table(broker.configKeys(), false, brokerInternal);
        List<String> topicRows = table(topic, true, topicInternal);

        // Every synonym must be a real broker config.
        for (String syn : ServerTopicConfigSynonyms.TOPIC_CONFIG_SYNONYMS.values())
            if (!broker.names().contains(syn))
                throw new IllegalStateException("synonym " + syn + " is not a broker config");

        write(out.resolve("kafka_broker_configs.tsv"), brokerRows);
        write(out.resolve("kafka_topic_configs.tsv"), topicRows);
        write(out.resolve("kafka_broker_config_docs.tsv"), docs(broker.configKeys()));
        write(out.resolve("kafka_topic_config_docs.tsv"), docs(topic));

        log.println("Kafka version: " + org.apache.kafka.common.utils.AppInfoParser.getVersion());
        log.println("broker configs: " + brokerRows.size() + " (internal: " + brokerInternal + ")");
        log.println("topic configs: " + topicRows.size() + " (internal: " + topicInternal + ")");
    }
}
