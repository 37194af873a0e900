package gregor.compat;

import static gregor.compat.Report.check;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.function.BooleanSupplier;

/** gregor's admin HTTP listener (--admin-listen), and waiting on conditions instead of sleeping. */
final class AdminApi {
    static final Duration WAIT = Duration.ofSeconds(30);

    private final String hostPort;
    private final HttpClient http = HttpClient.newHttpClient();

    AdminApi(String hostPort) {
        this.hostPort = hostPort;
    }

    /** POSTs `json` (empty: no body) to `path`; fails the case unless the answer is 200. */
    String post(String path, String json) throws Exception {
        HttpRequest req = HttpRequest.newBuilder(URI.create("http://" + hostPort + path))
                .header("Content-Type", "application/json")
                .POST(json.isEmpty()
                        ? HttpRequest.BodyPublishers.noBody()
                        : HttpRequest.BodyPublishers.ofString(json, StandardCharsets.UTF_8))
                .timeout(WAIT)
                .build();
        HttpResponse<String> r = http.send(req, HttpResponse.BodyHandlers.ofString());
        check(r.statusCode() == 200, "POST %s: %d %s", path, r.statusCode(), r.body());
        return r.body();
    }

    /** GETs `path`; fails the case unless the answer is 200. */
    String get(String path) throws Exception {
        HttpRequest req = HttpRequest.newBuilder(URI.create("http://" + hostPort + path)).GET().timeout(WAIT).build();
        HttpResponse<String> r = http.send(req, HttpResponse.BodyHandlers.ofString());
        check(r.statusCode() == 200, "GET %s: %d %s", path, r.statusCode(), r.body());
        return r.body();
    }

    /** Waits for a condition (never a fixed sleep); fails the case with `what` at the deadline. */
    static void await(String what, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (!condition.getAsBoolean()) {
            check(System.nanoTime() < deadline, "timed out waiting for %s", what);
            Thread.sleep(5);
        }
    }
}
