package gregor.compat;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * What the consumer's FetchSessionHandler says about its KIP-227 fetch sessions: the client keeps
 * no metric of them, but logs at DEBUG each full response that created a session ("created a new
 * incremental fetch session N") and each incremental response ("sent an incremental fetch
 * response ... for session N"). slf4j-simple writes to whatever {@code System.err} is at the
 * time, so {@link #install()} turns that one logger to DEBUG and puts a filter in front of
 * {@code System.err} that keeps its lines here (and out of the step logs). It must run before the
 * first Kafka class asks for a logger.
 */
final class FetchSessionLog {
    private static final String LOGGER = "org.apache.kafka.clients.FetchSessionHandler";
    private static final List<String> LINES = new ArrayList<>();

    private FetchSessionLog() {}

    static void install() {
        System.setProperty("org.slf4j.simpleLogger.log." + LOGGER, "debug");
        PrintStream err = System.err;
        System.setErr(new PrintStream(new OutputStream() {
            private final StringBuilder line = new StringBuilder();

            @Override
            public synchronized void write(int b) {
                write(new byte[] {(byte) b}, 0, 1);
            }

            @Override
            public synchronized void write(byte[] b, int off, int len) {
                line.append(new String(b, off, len, StandardCharsets.UTF_8));
                int nl;
                while ((nl = line.indexOf("\n")) >= 0) {
                    String l = line.substring(0, nl);
                    line.delete(0, nl + 1);
                    if (l.contains(LOGGER)) {
                        synchronized (LINES) {
                            LINES.add(l);
                        }
                    } else {
                        err.println(l);
                    }
                }
            }
        }, true, StandardCharsets.UTF_8));
    }

    /** Forgets what was logged so far (a case looks only at its own consumers). */
    static void clear() {
        synchronized (LINES) {
            LINES.clear();
        }
    }

    /** Session ids of the incremental fetch responses logged so far, in order. */
    static List<Long> incrementalResponses() {
        return sessions("for session ");
    }

    /** Session ids that full fetch responses created. */
    static List<Long> created() {
        return sessions("created a new incremental fetch session ");
    }

    private static List<Long> sessions(String marker) {
        List<Long> ids = new ArrayList<>();
        synchronized (LINES) {
            for (String l : LINES) {
                int at = l.indexOf(marker);
                if (at < 0) {
                    continue;
                }
                int start = at + marker.length();
                int end = start;
                while (end < l.length() && Character.isDigit(l.charAt(end))) {
                    end++;
                }
                if (end > start) {
                    ids.add(Long.parseLong(l.substring(start, end)));
                }
            }
        }
        return ids;
    }
}
