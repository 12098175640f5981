package io.idemkey.benchmarks;

import io.idemkey.benchmarks.DatabaseCounters.Role;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * Steady churn with a short ttl: whether the purge and autovacuum keep the keys table bounded.
 * The demo (transactional mode) on a durable embedded PostgreSQL with {@code idempotency.ttl}
 * short, new keys over {@code churn.connections} connections for {@code churn.duration}, and the
 * table's size read every {@code churn.sample}: heap, indexes and total against the live rows'
 * own size ({@code sum(pg_column_size)} of the rows whose expiry is ahead). Prints the samples
 * and writes {@code benchmarks/results/churn.md}.
 *
 * <pre>java -cp benchmarks/target/benchmarks.jar io.idemkey.benchmarks.ChurnLoad</pre>
 *
 * <p>System properties: {@code churn.ttl} (5s), {@code churn.lease} (2s), {@code
 * churn.purgeInterval} (1s), {@code churn.duration} (10 × the ttl), {@code churn.sample} (the
 * ttl), {@code churn.connections} (16), {@code load.demoJar} (demo-app/target/demo-app.jar),
 * {@code churn.results} (benchmarks/results), {@code churn.command} (the command to print in
 * churn.md). A lease of 2s needs {@code jdbc.connect-timeout} at most a third of it (the config's
 * rule): it is set to 500ms, and {@code completion-timeout} to the ttl (it may not exceed it).
 *
 * <p>It stops only the demo process it started and its own PostgreSQL, also when the JVM is
 * asked to stop (SIGTERM); traffic goes to 127.0.0.1 only; every wait is bounded.
 */
public final class ChurnLoad {

  /** One reading of the table during the churn. */
  private record Sample(double seconds, KeysTable.Size size) {}

  private ChurnLoad() {}

  public static void main(String[] args) throws Exception {
    Duration ttl = LoadHarness.duration("churn.ttl", "5s");
    Duration lease = LoadHarness.duration("churn.lease", "2s");
    Duration purgeInterval = LoadHarness.duration("churn.purgeInterval", "1s");
    Duration duration =
        LoadHarness.duration("churn.duration", ttl.multipliedBy(10).toSeconds() + "s");
    Duration sample = LoadHarness.duration("churn.sample", ttl.toSeconds() + "s");
    int connections = Integer.getInteger("churn.connections", 16);
    Path demoJar = Path.of(System.getProperty("load.demoJar", "demo-app/target/demo-app.jar"));
    Path results = Path.of(System.getProperty("churn.results", "benchmarks/results"));
    String command = System.getProperty("churn.command",
        "java -cp benchmarks/target/benchmarks.jar " + ChurnLoad.class.getName());
    if (sample.isZero() || duration.isZero() || connections < 1) {
      throw new IllegalArgumentException(
          "churn.duration, churn.sample and churn.connections must be positive");
    }
    List<String> demoOptions = List.of(
        "-Didempotency.ttl=" + ttl.toMillis() + "ms",
        "-Didempotency.lease=" + lease.toMillis() + "ms",
        "-Didempotency.purge.interval=" + purgeInterval.toMillis() + "ms",
        "-Didempotency.jdbc.connect-timeout=500ms",
        "-Didempotency.completion-timeout=" + ttl.toMillis() + "ms");
    List<AutoCloseable> running = new ArrayList<>();
    Thread cleanup = new Thread(() -> {
      synchronized (running) {
        for (int i = running.size() - 1; i >= 0; i--) {
          try {
            running.get(i).close();
          } catch (Exception e) {
            System.err.println("stopping the " + running.get(i).getClass().getSimpleName()
                + " failed: " + e);
          }
        }
        running.clear();
      }
    }, "churn-cleanup");
    Runtime.getRuntime().addShutdownHook(cleanup);
    Path log = Files.createTempFile("idemkey-demo-churn-", ".log");
    DurablePostgres postgres = DurablePostgres.start(true);
    synchronized (running) {
      running.add(postgres);
    }
    postgres.requireDurable();
    DemoProcess demo = DemoProcess.start(demoJar, demoOptions, postgres.jdbcUrl(),
        postgres.user(), postgres.password(), log, Duration.ofSeconds(90));
    synchronized (running) {
      running.add(demo);
    }
    System.out.println("churn: demo pid " + demo.pid() + " " + demoOptions + " (log " + log
        + "), " + connections + " connections for " + duration.toSeconds() + " s");
    String autovacuum = "autovacuum=" + postgres.show("autovacuum") + ", autovacuum_naptime="
        + postgres.show("autovacuum_naptime") + ", autovacuum_vacuum_scale_factor="
        + postgres.show("autovacuum_vacuum_scale_factor") + ", autovacuum_vacuum_threshold="
        + postgres.show("autovacuum_vacuum_threshold") + " (PostgreSQL's defaults)";

    DatabaseCounters before = DatabaseCounters.read(postgres, 0);
    LoadScenario newKeys = LoadScenario.newKeys("churn", "new keys with a short ttl");
    CompletableFuture<LoadRun.Outcome> load = CompletableFuture.supplyAsync(() -> {
      try {
        return LoadRun.run(newKeys, demo.port(), connections, Duration.ZERO, duration);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException(e);
      }
    });
    long start = System.nanoTime();
    List<Sample> samples = new ArrayList<>();
    samples.add(new Sample(0, KeysTable.size(postgres)));
    for (long next = sample.toNanos(); next <= duration.toNanos(); next += sample.toNanos()) {
      long wait = start + next - System.nanoTime();
      if (wait > 0) {
        TimeUnit.NANOSECONDS.sleep(wait);
      }
      samples.add(new Sample((System.nanoTime() - start) / 1e9, KeysTable.size(postgres)));
      System.out.println(row(samples.get(samples.size() - 2), samples.get(samples.size() - 1)));
    }
    LoadRun.Outcome outcome = load.get(duration.toSeconds() + 60, TimeUnit.SECONDS);
    DatabaseCounters after = DatabaseCounters.read(postgres, 1);
    DatabaseCounters.PerRequest perRequest =
        after.since(before, outcome.allRequests(), postgres.hasStatementStats());
    double purgeMillis = perRequest.millis(Set.of(Role.PURGE)) * outcome.allRequests();
    double purgeCalls = perRequest.calls(Set.of(Role.PURGE)) * outcome.allRequests();
    KeysTable.Size last = samples.get(samples.size() - 1).size();

    StringBuilder report = new StringBuilder("# Churn: the keys table under a short ttl\n\n");
    report.append("Command: `").append(command).append("` (")
        .append(Runtime.getRuntime().availableProcessors()).append(" cores, Java ")
        .append(System.getProperty("java.version")).append(", embedded PostgreSQL ")
        .append(postgres.show("server_version")).append(", fsync and synchronous_commit on; ")
        .append(autovacuum).append(")\n\n");
    report.append(String.format(Locale.ROOT,
        "The demo in transactional mode with %s; new keys (random UUIDs) over %d connections"
            + " for %d s = %.0f × the ttl: %.0f req/s, p50 %.2f ms, p99 %.2f ms, %d failures of"
            + " %d. The purge ran %.0f times, %.1f ms in all (plan + exec).%n%n",
        String.join(" ", demoOptions), connections, duration.toSeconds(),
        (double) duration.toMillis() / ttl.toMillis(), outcome.requestsPerSecond(),
        outcome.latencies().getValueAtPercentile(50) / 1e6,
        outcome.latencies().getValueAtPercentile(99) / 1e6, outcome.failures(),
        outcome.allRequests(), purgeCalls, purgeMillis));
    report.append("| s | new keys/s | rows | live rows | live rows' size | heap | indexes | total"
        + " | total / live size | total / live row | dead tuples (estimate) | autovacuums |\n"
        + "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 1; i < samples.size(); i++) {
      report.append(row(samples.get(i - 1), samples.get(i))).append('\n');
    }
    Sample tenTtls = samples.stream()
        .filter(s -> s.seconds() >= ttl.multipliedBy(10).toMillis() / 1000.0 - 0.5)
        .findFirst().orElse(samples.get(samples.size() - 1));
    report.append(String.format(Locale.ROOT,
        "%nAt 10 × the ttl (%.0f s): %s for %,d live rows of %s (%.1f× their size). After %.0f ×"
            + " the ttl: %s for %,d live rows of %s (%.1f× their size).%n%n"
            + "New keys/s: the token sequence's growth over the interval (one token per claim)."
            + " Sizes: pg_total_relation_size (heap, indexes, TOAST), pg_relation_size (heap),"
            + " pg_indexes_size; live rows' size: sum(pg_column_size(row)) of the rows whose"
            + " expires_at is ahead; rows: all rows visible, expired ones not yet purged"
            + " included. The purge deletes expired rows; their space is reused only after"
            + " (auto)vacuum has passed, so the table holds about rate × (ttl + the time between"
            + " two autovacuums of it) rows' worth.%n",
        tenTtls.seconds(), mib(tenTtls.size().totalBytes()), tenTtls.size().liveRows(),
        mib(tenTtls.size().liveBytes()),
        (double) tenTtls.size().totalBytes() / Math.max(1, tenTtls.size().liveBytes()),
        (double) duration.toMillis() / ttl.toMillis(), mib(last.totalBytes()), last.liveRows(),
        mib(last.liveBytes()), (double) last.totalBytes() / Math.max(1, last.liveBytes())));
    System.out.print(report);
    Files.createDirectories(results);
    Files.writeString(results.resolve("churn.md"), report.toString(), StandardCharsets.UTF_8);
    System.out.println("wrote " + results.resolve("churn.md"));
    cleanup.run();
    System.exit(outcome.failures() > 0 ? 1 : 0);
  }

  /** One sample as a table row; the rate of new keys is over the interval since {@code last}. */
  private static String row(Sample last, Sample sample) {
    KeysTable.Size size = sample.size();
    return String.format(Locale.ROOT,
        "| %.0f | %.0f | %,d | %,d | %s | %s | %s | %s | %s | %s | %,d | %d |",
        sample.seconds(),
        (size.tokens() - last.size().tokens()) / (sample.seconds() - last.seconds()),
        size.rows(), size.liveRows(), mib(size.liveBytes()),
        mib(size.heapBytes()), mib(size.indexBytes()), mib(size.totalBytes()),
        size.liveBytes() == 0 ? "—"
            : String.format(Locale.ROOT, "%.1f×", (double) size.totalBytes() / size.liveBytes()),
        size.liveRows() == 0 ? "—"
            : String.format(Locale.ROOT, "%,d B", size.totalBytes() / size.liveRows()),
        size.deadTuples(), size.autovacuums());
  }

  private static String mib(long bytes) {
    return String.format(Locale.ROOT, "%.2f MiB", bytes / 1048576.0);
  }
}
