package gregor.compat;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;

/**
 * The deterministic record set the round-trip tests produce and then expect back: record i is a
 * pure function of i, so the consumer side checks content without keeping what was sent.
 *
 * <p>It deliberately covers the encodings a broker could mangle: null vs empty keys (length -1 vs
 * 0 in the record), null values, empty and incompressible values, repeated header keys in a fixed
 * order, null and empty header values, records without headers, and explicit CreateTime
 * timestamps.
 */
final class Records {
    /**
     * Explicit CreateTime timestamps. run.sh passes one base for the whole run (an hour before it
     * started) so that separate JVMs agree on record i: old enough that a broker stamping its own
     * time shows, recent enough that 7-day retention (Kafka checks 30 s after start) keeps it.
     */
    static final long BASE_TIMESTAMP = Long.getLong("gregor.compat.baseTimestamp", 1_700_000_000_000L);
    static final long TIMESTAMP_STEP = 10;

    private Records() {}

    static long timestamp(int i) {
        return BASE_TIMESTAMP + TIMESTAMP_STEP * i;
    }

    static byte[] key(int i) {
        if (i % 101 == 1) {
            return null;
        }
        if (i % 103 == 2) {
            return new byte[0];
        }
        return ("key-" + i).getBytes(StandardCharsets.UTF_8);
    }

    static byte[] value(int i) {
        if (i % 997 == 3) {
            return null;
        }
        if (i % 991 == 4) {
            return new byte[0];
        }
        // Half text (compressible, so codecs actually shrink batches), half random bytes.
        SplittableRandom random = new SplittableRandom(i);
        byte[] text = ("value " + i + " of the gregor java round trip; ").repeat(1 + i % 5).getBytes(StandardCharsets.UTF_8);
        byte[] noise = new byte[random.nextInt(200)];
        for (int j = 0; j < noise.length; j++) {
            noise[j] = (byte) random.nextInt(256);
        }
        byte[] value = new byte[text.length + noise.length];
        System.arraycopy(text, 0, value, 0, text.length);
        System.arraycopy(noise, 0, value, text.length, noise.length);
        return value;
    }

    static List<Header> headers(int i) {
        List<Header> headers = new ArrayList<>();
        if (i % 11 == 5) {
            return headers;
        }
        headers.add(header("trace", "t-" + i));
        // Repeated keys: Kafka keeps every header, in order.
        headers.add(header("dup", "first"));
        headers.add(header("dup", "second-" + i));
        if (i % 5 == 0) {
            headers.add(new RecordHeader("null-value", null));
        }
        if (i % 7 == 0) {
            headers.add(new RecordHeader("empty-value", new byte[0]));
        }
        return headers;
    }

    private static Header header(String key, String value) {
        return new RecordHeader(key, value.getBytes(StandardCharsets.UTF_8));
    }

    // ---- Console tool records: text lines, so no nulls and no tabs, commas or colons in fields.

    static String consoleHeaders(int i) {
        return "trace:t-" + i + ",dup:first,dup:second-" + i;
    }

    static String consoleKey(int i) {
        return "key-" + i;
    }

    static String consoleValue(int i) {
        // Variable length, spaces, and multi-byte UTF-8 (tools run with -Dfile.encoding=UTF-8).
        return "value " + i + " grüße " + "x".repeat(i % 97) + " end";
    }
}
