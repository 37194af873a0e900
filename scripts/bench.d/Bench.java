// Small Java client for scripts/bench, compiled against the pinned kafka-clients (the same jars as
// the Kafka perf tools). Two jobs the stock tools do not do:
//
//   create BOOTSTRAP TOPIC:PARTITIONS...       create topics (Admin), waiting until they exist
//   e2e BOOTSTRAP TOPIC RATE WARMUP_S SECONDS [CLIENT_PROPERTIES]
//                                              end-to-end latency at a fixed rate (the properties
//                                              file adds client settings, e.g. the TLS ones)
//   tls BOOTSTRAP CLIENT_PROPERTIES            one TLS handshake as the Kafka clients make it;
//                                              prints `tls protocol=.. cipher_suite=..`
//
// Kafka's EndToEndLatency tool sends one record at a time and waits for it (a ping-pong), so it
// cannot hold a fixed rate. Here a producer sends RATE records/s on a schedule and a consumer in
// the same JVM reads them back; each record carries the System.nanoTime() of its *scheduled* send
// in its first 8 bytes, so a stalled producer shows up as latency (no coordinated omission).
// Prints one line: `e2e count=N missing=N p50_ms=.. p99_ms=.. p999_ms=.. max_ms=..`.
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.LockSupport;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLSession;
import javax.net.ssl.SSLSocket;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.common.config.SslConfigs;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.security.ssl.DefaultSslEngineFactory;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class Bench {
  static final int RECORD_SIZE = 100;

  public static void main(String[] args) throws Exception {
    switch (args[0]) {
      case "create" -> create(args[1], Arrays.copyOfRange(args, 2, args.length));
      case "e2e" -> e2e(args[1], args[2], Integer.parseInt(args[3]), Integer.parseInt(args[4]),
          Integer.parseInt(args[5]), args.length > 6 ? load(args[6]) : new Properties());
      case "tls" -> tls(args[1], load(args[2]));
      default -> throw new IllegalArgumentException("unknown mode " + args[0]);
    }
  }

  static void create(String bootstrap, String[] specs) throws Exception {
    Properties p = new Properties();
    p.put("bootstrap.servers", bootstrap);
    // A KRaft broker that just answered its first request may still be registering.
    p.put("default.api.timeout.ms", "60000");
    try (Admin admin = Admin.create(p)) {
      List<NewTopic> topics = new ArrayList<>();
      for (String spec : specs) {
        String[] parts = spec.split(":");
        topics.add(new NewTopic(parts[0], Integer.parseInt(parts[1]), (short) 1));
      }
      for (var e : admin.createTopics(topics).values().entrySet()) {
        try {
          e.getValue().get();
        } catch (ExecutionException ex) {
          if (!(ex.getCause() instanceof TopicExistsException)) throw ex;
        }
      }
      // Wait until Metadata lists every partition with a leader.
      long deadline = System.currentTimeMillis() + 60_000;
      for (NewTopic t : topics) {
        while (true) {
          var d = admin.describeTopics(List.of(t.name())).allTopicNames().get().get(t.name());
          if (d.partitions().size() == t.numPartitions()
              && d.partitions().stream().allMatch(x -> x.leader() != null)) break;
          if (System.currentTimeMillis() > deadline) throw new IllegalStateException("topic " + t.name() + " not ready");
          Thread.sleep(50);
        }
      }
    }
  }

  static Properties load(String path) throws IOException {
    Properties p = new Properties();
    try (var in = Files.newInputStream(Path.of(path))) {
      p.load(in);
    }
    return p;
  }

  // The SSLContext and engine parameters come from kafka-clients' own DefaultSslEngineFactory
  // (ssl.protocol, ssl.enabled.protocols, ssl.cipher.suites, the truststore, endpoint
  // identification), so the protocol and suite printed are those the producer and consumer get.
  static void tls(String bootstrap, Properties client) throws Exception {
    Map<String, Object> config = new ConfigDef().withClientSslSupport().parse(client);
    String host = bootstrap.substring(0, bootstrap.lastIndexOf(':'));
    int port = Integer.parseInt(bootstrap.substring(bootstrap.lastIndexOf(':') + 1));
    try (DefaultSslEngineFactory factory = new DefaultSslEngineFactory()) {
      factory.configure(config);
      SSLEngine engine = factory.createClientSslEngine(host, port,
          (String) config.get(SslConfigs.SSL_ENDPOINT_IDENTIFICATION_ALGORITHM_CONFIG));
      try (SSLSocket socket = (SSLSocket) factory.sslContext().getSocketFactory().createSocket(host, port)) {
        socket.setSSLParameters(engine.getSSLParameters());
        socket.startHandshake();
        SSLSession session = socket.getSession();
        System.out.printf("tls protocol=%s cipher_suite=%s%n", session.getProtocol(), session.getCipherSuite());
      }
    }
  }

  static void e2e(String bootstrap, String topic, int rate, int warmupS, int seconds, Properties client)
      throws Exception {
    Properties pp = new Properties();
    pp.putAll(client);
    pp.put("bootstrap.servers", bootstrap);
    // Send each record at once: with the 4.x default linger.ms=5 the figure would mostly be the
    // client's own wait. acks=all is the client default.
    pp.put("linger.ms", "0");
    pp.put("acks", "all");
    Properties cp = new Properties();
    cp.putAll(client);
    cp.put("bootstrap.servers", bootstrap);
    cp.put("enable.auto.commit", "false");
    cp.put("auto.offset.reset", "earliest");

    TopicPartition tp = new TopicPartition(topic, 0);
    long total = (long) rate * (warmupS + seconds);
    long warm = (long) rate * warmupS;
    long[] lat = new long[(int) (total - warm)];
    AtomicBoolean stop = new AtomicBoolean();
    long[] received = new long[1];
    // The worst latency of each second (by scheduled send time), for the raw log: periodic stalls
    // (a timer, a flush, a GC) show up as a pattern here and vanish in the percentiles.
    long[] worstPerSecond = new long[warmupS + seconds + 1];
    long[] t0Holder = new long[1];

    try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(cp, new ByteArrayDeserializer(), new ByteArrayDeserializer());
         KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(pp, new ByteArraySerializer(), new ByteArraySerializer())) {
      consumer.assign(List.of(tp));
      consumer.seekToEnd(List.of(tp));
      long start = consumer.position(tp); // forces the seek before the first record is sent
      long interval = 1_000_000_000L / rate;
      long t0 = System.nanoTime() + 10_000_000L;
      t0Holder[0] = t0;
      Thread reader = new Thread(() -> {
        while (!stop.get()) {
          for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(100))) {
            long now = System.nanoTime();
            long seq = r.offset() - start;
            long due = ByteBuffer.wrap(r.value()).getLong();
            if (seq >= warm && seq < total) lat[(int) (seq - warm)] = now - due;
            int sec = (int) Math.min(worstPerSecond.length - 1, Math.max(0, (due - t0Holder[0]) / 1_000_000_000L));
            worstPerSecond[sec] = Math.max(worstPerSecond[sec], now - due);
            received[0]++;
            if (received[0] >= total) stop.set(true);
          }
        }
      });
      reader.start();
      // Warm the producer's connection and metadata before the clock starts.
      producer.partitionsFor(topic);
      for (long i = 0; i < total; i++) {
        long due = t0 + i * interval;
        long wait;
        while ((wait = due - System.nanoTime()) > 0) LockSupport.parkNanos(wait);
        byte[] v = new byte[RECORD_SIZE];
        ByteBuffer.wrap(v).putLong(due);
        producer.send(new ProducerRecord<>(topic, 0, null, v));
      }
      producer.flush();
      reader.join(30_000);
      stop.set(true);
      reader.join();
    }
    long missing = total - received[0];
    StringBuilder worst = new StringBuilder("e2e worst per second (ms, warm-up included):");
    for (long w : worstPerSecond) worst.append(String.format(" %.1f", w / 1e6));
    System.out.println(worst);
    long[] got = Arrays.stream(lat).filter(x -> x > 0).sorted().toArray();
    System.out.printf("e2e count=%d missing=%d p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f%n",
        got.length, missing, pct(got, 0.50), pct(got, 0.99), pct(got, 0.999),
        got.length == 0 ? Double.NaN : got[got.length - 1] / 1e6);
    if (missing != 0) System.exit(1);
  }

  static double pct(long[] sorted, double q) {
    if (sorted.length == 0) return Double.NaN;
    int i = (int) Math.ceil(q * sorted.length) - 1;
    return sorted[Math.max(0, Math.min(sorted.length - 1, i))] / 1e6;
  }
}
