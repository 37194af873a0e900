package gregor.compat;

import static gregor.compat.Report.check;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;

/**
 * Reads the whole crash-test topic and checks it against the acked file:
 * every acknowledged number is present, no number appears twice (idempotence must survive the
 * restart: a retried batch is deduplicated, not appended again), numbers appear in send order,
 * offsets are dense, and the producer needed no give-ups to get there.
 */
final class CrashVerify {
    private CrashVerify() {}

    static void run(Map<String, String> args, Report report) throws Exception {
        String topic = Main.required(args, "topic");
        int count = Integer.parseInt(Main.required(args, "count"));
        String name = args.getOrDefault("label", "crash");
        List<String> ackedLines = Files.readAllLines(Path.of(Main.required(args, "acked")));
        BitSet acked = new BitSet(count);
        ackedLines.forEach(line -> acked.set(Integer.parseInt(line.trim())));
        int ackedCount = acked.cardinality();

        TopicPartition tp = new TopicPartition(topic, 0);
        List<ConsumerRecord<byte[], byte[]>> all;
        long endOffset;
        try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(Main.required(args, "bootstrap"), "crash-verify")) {
            endOffset = consumer.endOffsets(List.of(tp)).get(tp);
            all = Clients.readFromBeginning(consumer, List.of(tp), (int) endOffset, Duration.ofSeconds(60));
        }
        List<Integer> numbers = new ArrayList<>(all.size());
        for (ConsumerRecord<byte[], byte[]> r : all) {
            numbers.add(Integer.parseInt(new String(r.value(), StandardCharsets.UTF_8)));
        }

        report.run(name + "/all-sends-acked", () -> check(ackedCount == count && ackedLines.size() == count,
                "%d of %d sends acknowledged (%d callbacks); the idempotent producer should ride out a 1 s outage "
                        + "(see the producer log for the errors)", ackedCount, count, ackedLines.size()));
        report.run(name + "/acked-records-present", () -> {
            BitSet missing = (BitSet) acked.clone();
            numbers.forEach(missing::clear);
            check(missing.isEmpty(), "%d acknowledged records missing from the log, first: %s (log has %d records, end offset %d)",
                    missing.cardinality(), firstBits(missing), numbers.size(), endOffset);
        });
        report.run(name + "/no-duplicates", () -> {
            BitSet seen = new BitSet(count);
            List<String> dups = new ArrayList<>();
            int dupCount = 0;
            for (int i = 0; i < numbers.size(); i++) {
                int n = numbers.get(i);
                if (seen.get(n)) {
                    dupCount++;
                    if (dups.size() < 5) {
                        dups.add(n + "@" + all.get(i).offset());
                    }
                }
                seen.set(n);
            }
            check(dupCount == 0, "%d duplicated records (number@offset of the copy): %s", dupCount, dups);
        });
        report.run(name + "/in-order-dense-offsets", () -> {
            for (int i = 0; i < all.size(); i++) {
                check(all.get(i).offset() == i, "record %d of the log has offset %d", i, all.get(i).offset());
                if (i > 0) {
                    check(numbers.get(i) > numbers.get(i - 1), "offset %d holds %d after %d: the idempotent producer's order was broken",
                            i, numbers.get(i), numbers.get(i - 1));
                }
            }
            check(all.size() == endOffset, "consumed %d records, end offset %d", all.size(), endOffset);
        });
    }

    private static String firstBits(BitSet bits) {
        List<Integer> first = new ArrayList<>();
        for (int i = bits.nextSetBit(0); i >= 0 && first.size() < 10; i = bits.nextSetBit(i + 1)) {
            first.add(i);
        }
        return first.toString();
    }
}
