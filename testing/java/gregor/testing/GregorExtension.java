package gregor.testing;

import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * A JUnit 5 extension that runs a gregor for a test class (README, "Testing with gregor"): started
 * once on free loopback ports with its admin listener, reset to empty before each test (no
 * restart, clients stay connected, fault rules cleared), stopped after the class. One file with
 * no dependency beyond JUnit Jupiter's API and the JDK: copy it into a test tree.
 *
 * <pre>
 * &#64;RegisterExtension
 * static final GregorExtension gregor = new GregorExtension("--clock", "manual");
 *
 * &#64;Test
 * void expires() throws Exception {
 *     var props = Map.of("bootstrap.servers", gregor.bootstrap());
 *     ...
 *     gregor.advanceClock(46_000);
 * }
 * </pre>
 *
 * The binary is the system property {@code gregor.bin}, else {@code $GREGOR_BIN}, else
 * {@code gregor} on the PATH. The control plane's answers are returned as JSON text.
 */
public final class GregorExtension implements BeforeAllCallback, BeforeEachCallback, AfterAllCallback {
    private static final Duration TIMEOUT = Duration.ofSeconds(120);

    private final List<String> args;
    private final HttpClient http = HttpClient.newHttpClient();
    private Process process;
    private Path dir;
    private int port;
    private int adminPort;

    /** gregor with these flags besides its listeners and data directory (e.g. "--clock", "manual"). */
    public GregorExtension(String... args) {
        this.args = List.of(args);
    }

    /** An admin request answered with an error status (408 from {@link #await} included). */
    public static final class GregorException extends RuntimeException {
        public final int status;
        public final String body;

        GregorException(int status, String body) {
            super("gregor answered " + status + ": " + body);
            this.status = status;
            this.body = body;
        }
    }

    /** {@code bootstrap.servers} for the clients. */
    public String bootstrap() {
        return "127.0.0.1:" + port;
    }

    /** The admin listener, {@code http://127.0.0.1:PORT}. */
    public String adminUrl() {
        return "http://127.0.0.1:" + adminPort;
    }

    @Override
    public void beforeAll(ExtensionContext context) throws Exception {
        String bin = System.getProperty("gregor.bin", System.getenv().getOrDefault("GREGOR_BIN", "gregor"));
        port = freePort();
        adminPort = freePort();
        dir = Files.createTempDirectory("gregor-test-");
        List<String> command = new ArrayList<>(List.of(bin, "--listen", bootstrap(),
                "--data-dir", dir.resolve("data").toString(), "--admin-listen", "127.0.0.1:" + adminPort));
        command.addAll(args);
        process = new ProcessBuilder(command)
                .redirectErrorStream(true)
                .redirectOutput(dir.resolve("gregor.log").toFile())
                .start();
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (true) {
            if (!process.isAlive()) {
                throw new IllegalStateException("gregor exited with " + process.exitValue() + ": " + log());
            }
            try {
                request("GET", "/v1/healthz", null);
                return;
            } catch (IOException notYet) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("gregor did not start in 30 s: " + log());
                }
                Thread.sleep(10);
            }
        }
    }

    @Override
    public void beforeEach(ExtensionContext context) throws Exception {
        clearFaults();
        reset();
    }

    @Override
    public void afterAll(ExtensionContext context) throws Exception {
        if (process != null) {
            process.destroy();
            if (!process.waitFor(30, java.util.concurrent.TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor();
            }
            process = null;
        }
        if (dir != null) {
            try (Stream<Path> files = Files.walk(dir)) {
                files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
            dir = null;
        }
    }

    /** One admin API request (JSON body or null); the answer's JSON text. */
    public String request(String method, String path, String json) throws IOException, InterruptedException {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(adminUrl() + path)).timeout(TIMEOUT)
                .header("Content-Type", "application/json");
        b.method(method, json == null
                ? HttpRequest.BodyPublishers.noBody()
                : HttpRequest.BodyPublishers.ofString(json, StandardCharsets.UTF_8));
        HttpResponse<String> r = http.send(b.build(), HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() >= 400) {
            throw new GregorException(r.statusCode(), r.body());
        }
        return r.body();
    }

    /** Back to empty: topics, groups, committed offsets, producer ids, transactions. */
    public String reset() throws IOException, InterruptedException {
        return request("POST", "/v1/reset", "{}");
    }

    /** Topics kept with their configs, emptied; the rest as {@link #reset}. */
    public String resetKeepingTopics() throws IOException, InterruptedException {
        return request("POST", "/v1/reset", "{\"keep_topics\": true}");
    }

    /** Topics, records and committed offsets from a seed document (JSON). */
    public String seed(String json) throws IOException, InterruptedException {
        return request("POST", "/v1/seed", json);
    }

    /** Records the broker's whole state as snapshot {@code name} ([A-Za-z0-9._-], 1 to 64). */
    public String snapshot(String name) throws IOException, InterruptedException {
        return request("POST", "/v1/snapshot", "{\"name\": \"" + name + "\"}");
    }

    /**
     * Restarts the broker onto snapshot {@code name}: clients' connections close and they
     * reconnect to the snapshot's state. Returns once the broker serves again.
     */
    public String restore(String name) throws IOException, InterruptedException {
        return request("POST", "/v1/restore", "{\"name\": \"" + name + "\"}");
    }

    /** The snapshots kept, {@code {"snapshots":[{"name","created_ms","bytes"}, ...]}}. */
    public String snapshots() throws IOException, InterruptedException {
        return request("GET", "/v1/snapshots", null);
    }

    public String deleteSnapshot(String name) throws IOException, InterruptedException {
        return request("DELETE", "/v1/snapshots/" + name, null);
    }

    /** Arms a fault rule (JSON, e.g. {"api":"Produce","times":1,"action":"close_after"}). */
    public String fault(String rule) throws IOException, InterruptedException {
        return request("POST", "/v1/faults", rule);
    }

    public String faults() throws IOException, InterruptedException {
        return request("GET", "/v1/faults", null);
    }

    public String clearFaults() throws IOException, InterruptedException {
        return request("DELETE", "/v1/faults", null);
    }

    /** Moves a --clock manual broker's clock: the timeouts it decides expire at once. */
    public String advanceClock(long ms) throws IOException, InterruptedException {
        return request("POST", "/v1/clock/advance", "{\"ms\": " + ms + "}");
    }

    /** The request journal, e.g. {@code journal("client_id=my-app&api=Produce")}. */
    public String journal(String query) throws IOException, InterruptedException {
        return request("GET", "/v1/journal" + (query.isEmpty() ? "" : "?" + query), null);
    }

    /**
     * Returns once a condition holds, e.g. {@code await("group=g&state=Stable&members=2")}; a
     * {@link GregorException} with status 408 and the last observed state if it does not in time.
     */
    public String await(String query) throws IOException, InterruptedException {
        return request("GET", "/v1/await?" + query, null);
    }

    private String log() {
        try {
            String text = Files.readString(dir.resolve("gregor.log"));
            return text.substring(Math.max(0, text.length() - 4000));
        } catch (IOException e) {
            return "(no log: " + e + ")";
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 0, java.net.InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }
}
