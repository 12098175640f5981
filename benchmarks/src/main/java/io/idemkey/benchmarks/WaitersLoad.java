package io.idemkey.benchmarks;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.HdrHistogram.Histogram;

/**
 * Many duplicates waiting on one key (on-in-flight=wait): the demo on a durable embedded
 * PostgreSQL, one slow first request, then {@code waiters.count} (1000) duplicates of it, each on
 * a connection of its own. While they wait, {@code GET /health} is probed one request after
 * another, and the database's statements are counted ({@code pg_stat_statements}). Prints the
 * probe's percentiles, the statements per second while the duplicates waited, and how many of
 * them got the replay; writes {@code benchmarks/results/waiters.md}.
 *
 * <pre>java -cp benchmarks/target/benchmarks.jar io.idemkey.benchmarks.WaitersLoad</pre>
 *
 * <p>System properties: {@code waiters.count} (1000), {@code waiters.firstMillis} (12000: how
 * long the first request runs), {@code load.demoJar} (demo-app/target/demo-app.jar), {@code
 * waiters.command} (the command to print in waiters.md; {@code benchmarks/run} passes its own),
 * {@code waiters.results} (the directory of waiters.md; default benchmarks/results).
 *
 * <p>It stops only the demo process it started and its own PostgreSQL, also when the JVM is
 * asked to stop (SIGTERM); traffic goes to 127.0.0.1 only; every wait is bounded.
 */
public final class WaitersLoad {

  private WaitersLoad() {}

  public static void main(String[] args) throws Exception {
    int waiters = Integer.getInteger("waiters.count", 1000);
    long firstMillis = Long.getLong("waiters.firstMillis", 12_000);
    // The probes run from about 3.5 s after the first request until about 2.5 s before it ends.
    if (waiters < 1 || firstMillis < 7_000) {
      throw new IllegalArgumentException("waiters.count must be at least 1 and"
          + " waiters.firstMillis at least 7000 (a window of 1 s for the probes); were "
          + waiters + " and " + firstMillis);
    }
    Path demoJar = Path.of(System.getProperty("load.demoJar", "demo-app/target/demo-app.jar"));
    String command = System.getProperty("waiters.command",
        "java -cp benchmarks/target/benchmarks.jar " + WaitersLoad.class.getName());
    // On SIGTERM (benchmarks/run's timeout) the finally blocks below do not run; this does. Both
    // closes do nothing the second time.
    List<AutoCloseable> running = new CopyOnWriteArrayList<>();
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      for (int i = running.size() - 1; i >= 0; i--) {
        try {
          running.get(i).close();
        } catch (Exception e) {
          System.err.println("stopping the " + running.get(i).getClass().getSimpleName()
              + " failed: " + e);
        }
      }
    }, "waiters-cleanup"));
    Path log = Files.createTempFile("idemkey-demo-waiters-", ".log");
    ExecutorService clients = Executors.newFixedThreadPool(waiters + 1);
    try (DurablePostgres postgres = DurablePostgres.start(true)) {
      running.add(postgres);
      postgres.requireDurable();
      try (DemoProcess demo = DemoProcess.start(demoJar,
          List.of("-Didempotency.on-in-flight=wait", "-Didempotency.wait-timeout=60s",
              "-Didempotency.max-waiters=" + (waiters + 10)),
          postgres.jdbcUrl(), postgres.user(), postgres.password(), log,
          Duration.ofSeconds(60))) {
        running.add(demo);
        String key = "waiters-" + UUID.randomUUID();
        byte[] payment = HttpConnection.request("POST", "/payments?delayMs=" + firstMillis,
            "Idempotency-Key: " + key + "\r\n", LoadScenario.PAYMENT);
        Future<HttpConnection.Response> first = clients.submit(() -> once(demo.port(), payment));
        Thread.sleep(500);
        List<Future<HttpConnection.Response>> duplicates = new ArrayList<>();
        for (int i = 0; i < waiters; i++) {
          duplicates.add(clients.submit(() -> once(demo.port(), payment)));
        }
        Thread.sleep(3_000); // every duplicate has claimed once and waits
        DatabaseCounters before = DatabaseCounters.read(postgres, 0);
        long windowStart = System.nanoTime();
        Histogram health = new Histogram(TimeUnit.SECONDS.toNanos(30), 3);
        byte[] probe = HttpConnection.request("GET", "/health", "", new byte[0]);
        try (HttpConnection connection = new HttpConnection(demo.port(), 30_000)) {
          long until = windowStart + TimeUnit.MILLISECONDS.toNanos(firstMillis - 6_000);
          while (System.nanoTime() < until) {
            long started = System.nanoTime();
            if (connection.send(probe).status() != 200) {
              throw new IllegalStateException("GET /health failed while duplicates waited");
            }
            health.recordValue(System.nanoTime() - started);
            Thread.sleep(10);
          }
        }
        double windowSeconds = (System.nanoTime() - windowStart) / 1e9;
        DatabaseCounters after = DatabaseCounters.read(postgres, 1);
        Double statements = after.since(before, 1, true).statements();
        int firstStatus = first.get(60, TimeUnit.SECONDS).status();
        int replayed = 0;
        for (Future<HttpConnection.Response> duplicate : duplicates) {
          HttpConnection.Response response = duplicate.get(60, TimeUnit.SECONDS);
          if (response.status() == firstStatus && response.replayed()) {
            replayed++;
          }
        }
        String report = String.format(Locale.ROOT,
            "| waiters | first request | GET /health while they wait | statements/s from them"
                + " | replays |%n|---|---|---|---|---|%n"
                + "| %d | %d after %d ms | p50 %.2f ms, p99 %.2f ms, max %.2f ms (%d probes)"
                + " | %.2f over %.1f s | %d of %d |%n",
            waiters, firstStatus, firstMillis,
            health.getValueAtPercentile(50) / 1e6, health.getValueAtPercentile(99) / 1e6,
            health.getMaxValue() / 1e6, health.getTotalCount(),
            statements == null ? Double.NaN : statements / windowSeconds, windowSeconds,
            replayed, waiters);
        System.out.print(report);
        Path results = Path.of(System.getProperty("waiters.results", "benchmarks/results"));
        Files.createDirectories(results);
        Files.writeString(results.resolve("waiters.md"),
            "# Waiters (on-in-flight=wait)\n\nCommand: `" + command + "` (" + Runtime.getRuntime()
                .availableProcessors() + " cores, Java " + System.getProperty("java.version")
                + ", PostgreSQL durable: fsync and synchronous_commit on; the demo in"
                + " transactional mode, every duplicate on its own keep-alive connection;"
                + " statements counted by pg_stat_statements over the window, the probes'"
                + " own included)\n\n" + report,
            StandardCharsets.UTF_8);
      }
    } finally {
      clients.shutdownNow();
    }
  }

  private static HttpConnection.Response once(int port, byte[] request) throws IOException {
    try (HttpConnection connection = new HttpConnection(port, 90_000)) {
      return connection.send(request);
    }
  }
}
