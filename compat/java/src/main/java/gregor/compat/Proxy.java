package gregor.compat;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.ArrayDeque;
import java.util.Queue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntPredicate;

/**
 * A Kafka-aware TCP proxy in front of the broker that can lose one Produce response: it forwards
 * the request, reads the broker's answer (so the batch is known to be appended), throws the answer
 * away and closes the client's connection. The producer sees a disconnect and must retry the same
 * batch (same producer id, epoch and sequence), which the broker has to recognise as a duplicate.
 *
 * <p>Responses come back in request order on a connection, so a FIFO of the requests' API keys
 * tells which response is a Produce response. While {@link #closeGate()} is in effect, new client
 * connections are dropped at once: that keeps a retry from reaching the broker before run.sh has
 * killed and restarted it.
 */
final class Proxy implements AutoCloseable {
    private static final short PRODUCE = 0;

    private final ServerSocket server;
    private final int upstreamPort;
    /** Given the 1-based number of a Produce response, whether to drop it. */
    private final IntPredicate dropProduceResponse;
    private final Runnable onDrop;
    private final AtomicInteger produceResponses = new AtomicInteger();
    private final AtomicInteger dropped = new AtomicInteger();
    private volatile boolean gateOpen = true;

    Proxy(int listenPort, int upstreamPort, IntPredicate dropProduceResponse, Runnable onDrop) throws IOException {
        this.server = new ServerSocket(listenPort, 50, InetAddress.getLoopbackAddress());
        this.upstreamPort = upstreamPort;
        this.dropProduceResponse = dropProduceResponse;
        this.onDrop = onDrop;
        Thread acceptor = new Thread(this::acceptLoop, "proxy-accept");
        acceptor.setDaemon(true);
        acceptor.start();
    }

    int dropped() {
        return dropped.get();
    }

    void closeGate() {
        gateOpen = false;
    }

    void openGate() {
        gateOpen = true;
    }

    private void acceptLoop() {
        while (!server.isClosed()) {
            try {
                Socket client = server.accept();
                if (!gateOpen) {
                    client.close();
                    continue;
                }
                Socket upstream;
                try {
                    upstream = new Socket(InetAddress.getLoopbackAddress(), upstreamPort);
                } catch (IOException e) {
                    client.close(); // broker down: the client sees a failed connection and backs off
                    continue;
                }
                Queue<Short> apiKeys = new ArrayDeque<>();
                daemon(() -> pumpRequests(client, upstream, apiKeys), "proxy-requests");
                daemon(() -> pumpResponses(client, upstream, apiKeys), "proxy-responses");
            } catch (IOException e) {
                return; // closed
            }
        }
    }

    private void pumpRequests(Socket client, Socket upstream, Queue<Short> apiKeys) {
        try {
            DataInputStream in = new DataInputStream(client.getInputStream());
            DataOutputStream out = new DataOutputStream(upstream.getOutputStream());
            while (true) {
                byte[] frame = readFrame(in);
                short apiKey = (short) (((frame[0] & 0xff) << 8) | (frame[1] & 0xff));
                synchronized (apiKeys) {
                    apiKeys.add(apiKey);
                }
                writeFrame(out, frame);
            }
        } catch (IOException e) {
            closeBoth(client, upstream);
        }
    }

    private void pumpResponses(Socket client, Socket upstream, Queue<Short> apiKeys) {
        try {
            DataInputStream in = new DataInputStream(upstream.getInputStream());
            DataOutputStream out = new DataOutputStream(client.getOutputStream());
            while (true) {
                byte[] frame = readFrame(in);
                Short apiKey;
                synchronized (apiKeys) {
                    apiKey = apiKeys.poll();
                }
                if (apiKey != null && apiKey == PRODUCE && dropProduceResponse.test(produceResponses.incrementAndGet())) {
                    dropped.incrementAndGet();
                    onDrop.run();
                    closeBoth(client, upstream);
                    return;
                }
                writeFrame(out, frame);
            }
        } catch (IOException e) {
            closeBoth(client, upstream);
        }
    }

    private static byte[] readFrame(DataInputStream in) throws IOException {
        int size = in.readInt();
        if (size < 4 || size > 200 * 1024 * 1024) {
            throw new IOException("bad frame size " + size);
        }
        byte[] frame = new byte[size];
        in.readFully(frame);
        return frame;
    }

    private static void writeFrame(DataOutputStream out, byte[] frame) throws IOException {
        out.writeInt(frame.length);
        out.write(frame);
        out.flush();
    }

    private static void closeBoth(Socket a, Socket b) {
        try {
            a.close();
        } catch (IOException ignored) {
            // already closed
        }
        try {
            b.close();
        } catch (IOException ignored) {
            // already closed
        }
    }

    private static void daemon(Runnable body, String name) {
        Thread t = new Thread(body, name);
        t.setDaemon(true);
        t.start();
    }

    @Override
    public void close() throws IOException {
        server.close();
    }
}
