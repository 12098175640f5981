package io.idemkey.benchmarks;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The HTTP load harness: starts one embedded PostgreSQL with durable settings, starts the demo
 * app as a separate process on it, warms it up with every scenario, then drives each scenario
 * in turn over keep-alive connections to 127.0.0.1, and writes {@code latest.json} and {@code
 * latest.md}.
 *
 * <p>Run from the project root after {@code mvn -B -q package -DskipTests}:
 *
 * <pre>{@code
 * java -cp benchmarks/target/benchmarks.jar io.idemkey.benchmarks.LoadHarness
 * }</pre>
 *
 * <p>System properties: {@code load.connections} (16), {@code load.warmup} (3s), {@code
 * load.duration} (10s), {@code load.settle} (11s: the quiet time before reading commit counters,
 * which PostgreSQL publishes up to ten seconds late), {@code load.replayKeys} (64), {@code
 * load.demoJar} (demo-app/target/demo-app.jar), {@code load.demoJvmOptions} (space-separated;
 * default {@code -Didempotency.jdbc.pool-size=20}),
 * {@code load.results} (benchmarks/results), {@code load.command} (the command to print in the
 * report), {@code load.revision} (the commit measured), {@code load.jmhSummary} (a file with a JMH
 * summary table from the same command, copied into latest.md), {@code load.waitersSummary} (the
 * {@code waiters.md} of a {@code WaitersLoad} run from the same command, copied into latest.md).
 * The whole run is bounded: past its time limit it stops the demo and the database and
 * exits with status 3.
 */
public final class LoadHarness {

  private LoadHarness() {}

  public static void main(String[] args) {
    Resources resources = new Resources();
    Runtime.getRuntime().addShutdownHook(new Thread(resources::close, "load-harness-cleanup"));
    int status;
    try {
      status = run(resources);
    } catch (Exception e) {
      e.printStackTrace();
      status = 2;
    } finally {
      resources.close();
    }
    System.exit(status);
  }

  /** Runs every scenario; returns 0, or 1 if any request failed. */
  private static int run(Resources resources) throws Exception {
    int connections = Integer.getInteger("load.connections", 16);
    Duration warmup = duration("load.warmup", "3s");
    Duration measure = duration("load.duration", "10s");
    Duration settle = duration("load.settle", "11s");
    int replayKeys = Integer.getInteger("load.replayKeys", 64);
    Path demoJar = Path.of(System.getProperty("load.demoJar", "demo-app/target/demo-app.jar"));
    // The demo's pool is jdbc.pool-size (10 by default); in transactional mode each request in
    // flight holds a connection, so 16 connections of load need more. 20 is what the demo had
    // fixed before it read jdbc.pool-size, so runs before and after compare.
    String demoOptions =
        System.getProperty("load.demoJvmOptions", "-Didempotency.jdbc.pool-size=20").trim();
    List<String> demoJvmOptions =
        demoOptions.isEmpty() ? List.of() : List.of(demoOptions.split("\\s+"));
    Path results = Path.of(System.getProperty("load.results", "benchmarks/results"));
    String command = System.getProperty("load.command", ProcessHandle.current().info()
        .commandLine().orElse("java -cp benchmarks/target/benchmarks.jar "
            + LoadHarness.class.getName()));
    if (connections < 1 || measure.isZero()) {
      throw new IllegalArgumentException("load.connections and load.duration must be positive");
    }

    int scenarioCount = 4;
    Duration limit = warmup.multipliedBy(2).plus(measure).plus(settle).plus(Duration.ofSeconds(30))
        .multipliedBy(scenarioCount).plus(settle).plus(Duration.ofMinutes(3));
    startWatchdog(limit);
    String loadBefore = loadAverage();
    Instant started = Instant.now();
    System.out.printf(Locale.ROOT,
        "load harness: %d connections, %d s warm-up + %d s measured per scenario, bounded by %d s%n",
        connections, warmup.toSeconds(), measure.toSeconds(), limit.toSeconds());

    resources.postgres = DurablePostgres.start(true);
    DurablePostgres postgres = resources.postgres;
    String fsync = postgres.show("fsync");
    String synchronousCommit = postgres.show("synchronous_commit");
    String version = postgres.show("server_version");
    System.out.println("embedded PostgreSQL " + version + ": SHOW fsync = " + fsync
        + ", SHOW synchronous_commit = " + synchronousCommit);
    postgres.requireDurable();
    String statementSource = postgres.hasStatementStats()
        ? "pg_stat_statements (preloaded) and pg_stat_database"
        : "pg_stat_database only (pg_stat_statements could not be loaded): no statement counts";
    System.out.println("database counters from " + statementSource);

    Path demoLog = Files.createTempFile("idemkey-demo-", ".log");
    resources.demo = DemoProcess.start(demoJar, demoJvmOptions, postgres.jdbcUrl(),
        postgres.user(), postgres.password(), demoLog, Duration.ofSeconds(90));
    DemoProcess demo = resources.demo;
    System.out.println("demo pid " + demo.pid() + " healthy on 127.0.0.1:" + demo.port()
        + " (log " + demoLog + ")");

    String run = Long.toString(System.currentTimeMillis(), 36);
    String[] keys = new String[replayKeys];
    for (int i = 0; i < replayKeys; i++) {
      keys[i] = "replay-" + run + "-" + i;
    }
    List<LoadScenario> scenarios = List.of(
        LoadScenario.fixed("bare-static",
            "POST /bare/static: a fixed 201 JSON body, no filter, no database", "/bare/static"),
        LoadScenario.fixed("bare-payments",
            "POST /bare/payments: the payments handler (one insert, autocommit) with no filter",
            "/bare/payments"),
        LoadScenario.newKeys(run),
        LoadScenario.replay(keys));

    createKeys(demo.port(), keys);
    // The demo's JVM starts cold: without this pass the first scenario would pay for most of the
    // JIT compilation, and the comparison with the later ones would be skewed.
    System.out.println("warming the demo up: every scenario for " + warmup.toSeconds() + " s");
    for (LoadScenario scenario : scenarios) {
      LoadScenario warming = scenario.name().equals("new-keys")
          ? LoadScenario.newKeys(run + "-warm") : scenario;
      LoadRun.run(warming, demo.port(), connections, Duration.ZERO, warmup);
    }

    List<LoadReport.ScenarioResult> done = new ArrayList<>();
    int readings = 0;
    Thread.sleep(settle.toMillis());
    DatabaseCounters before = DatabaseCounters.read(postgres, readings++);
    for (LoadScenario scenario : scenarios) {
      System.out.println("running " + scenario.name() + " ...");
      LoadRun.Outcome outcome = LoadRun.run(scenario, demo.port(), connections, warmup, measure);
      Thread.sleep(settle.toMillis());
      DatabaseCounters after = DatabaseCounters.read(postgres, readings++);
      DatabaseCounters.PerRequest perRequest =
          after.since(before, outcome.allRequests(), postgres.hasStatementStats());
      before = after;
      LoadReport.ScenarioResult result =
          new LoadReport.ScenarioResult(scenario, outcome, perRequest);
      done.add(result);
      System.out.printf(Locale.ROOT,
          "%-14s %8.0f req/s  p50 %7.2f ms  p99 %7.2f ms  failures %d of %d"
              + "  statements/req %s  claims/claim statement %s  commits/req %.2f%n",
          scenario.name(), outcome.requestsPerSecond(), result.percentileMillis(50),
          result.percentileMillis(99), outcome.failures(), outcome.allRequests(),
          perRequest.statements() == null ? "n/a"
              : String.format(Locale.ROOT, "%.2f", perRequest.statements()),
          perRequest.claimBatch() == null ? "-"
              : String.format(Locale.ROOT, "%.2f", perRequest.claimBatch()),
          perRequest.commits());
      if (outcome.firstFailure() != null) {
        System.out.println("  first failure: " + outcome.firstFailure());
      }
    }
    List<LoadReport.Ratio> ratios = List.of(
        LoadReport.Ratio.of(find(done, "new-keys"), find(done, "bare-payments")),
        LoadReport.Ratio.of(find(done, "replay"), find(done, "bare-static")));
    for (LoadReport.Ratio ratio : ratios) {
      System.out.printf(Locale.ROOT, "%s / %s: throughput %.2f, p50 %.2f, p99 %.2f%n",
          ratio.scenario(), ratio.baseline(), ratio.throughput(), ratio.p50(), ratio.p99());
    }

    Map<String, String> machine = machine(loadBefore);
    Map<String, String> settings = new LinkedHashMap<>();
    settings.put("started", started.truncatedTo(ChronoUnit.SECONDS).toString());
    settings.put("revision", System.getProperty("load.revision", "unknown"));
    settings.put("connections", String.valueOf(connections));
    settings.put("warm-up", "every scenario once for " + warmup.toSeconds()
        + " s after the demo starts, then " + warmup.toSeconds() + " s before each (not recorded)");
    settings.put("measured", measure.toSeconds() + " s per scenario, closed loop");
    settings.put("PostgreSQL", "embedded " + version + ", fsync=" + fsync
        + ", synchronous_commit=" + synchronousCommit + ", same machine");
    settings.put("database counters", statementSource
        + "; per request = delta over warm-up and measured window / all requests sent");
    settings.put("demo", "java -jar " + demoJar + (demoOptions.isEmpty() ? "" : " " + demoOptions)
        + ", separate process, same machine");
    settings.put("replay keys", replayKeys + " keys created before the replay scenario");
    String jmhSummaryFile = System.getProperty("load.jmhSummary");
    String jmhSummary = jmhSummaryFile == null || !Files.isRegularFile(Path.of(jmhSummaryFile))
        ? null : Files.readString(Path.of(jmhSummaryFile));
    String waitersFile = System.getProperty("load.waitersSummary");
    String waitersSummary = waitersFile == null || !Files.isRegularFile(Path.of(waitersFile))
        ? null : Files.readString(Path.of(waitersFile));
    new LoadReport(machine, settings, command, done, ratios, jmhSummary, waitersSummary)
        .write(results);
    System.out.println("wrote " + results.resolve("latest.json") + " and "
        + results.resolve("latest.md"));
    return done.stream().anyMatch(r -> r.outcome().failures() > 0) ? 1 : 0;
  }

  /** Completes each of {@code keys} once, so that the replay scenario only replays. */
  private static void createKeys(int port, String[] keys) throws IOException {
    try (HttpConnection connection = new HttpConnection(port, 10_000)) {
      for (String key : keys) {
        HttpConnection.Response response = connection.send(HttpConnection.request(
            "POST", "/payments", "Idempotency-Key: " + key + "\r\n", LoadScenario.PAYMENT));
        if (response.status() != 201 || response.replayed()) {
          throw new IOException("creating key " + key + " answered " + response);
        }
      }
    }
  }

  private static LoadReport.ScenarioResult find(
      List<LoadReport.ScenarioResult> results, String name) {
    return results.stream().filter(r -> r.scenario().name().equals(name)).findFirst()
        .orElseThrow();
  }

  private static Map<String, String> machine(String loadBefore) {
    Map<String, String> machine = new LinkedHashMap<>();
    machine.put("nproc", String.valueOf(Runtime.getRuntime().availableProcessors()));
    machine.put("CPU", firstMatch(Path.of("/proc/cpuinfo"), "model name\\s*:\\s*(.+)"));
    String memory = firstMatch(Path.of("/proc/meminfo"), "MemTotal:\\s*(\\d+) kB");
    machine.put("memory", memory.matches("\\d+")
        ? String.format(Locale.ROOT, "%.1f GiB", Long.parseLong(memory) / 1024.0 / 1024.0)
        : memory);
    machine.put("Java", System.getProperty("java.vm.name") + " "
        + System.getProperty("java.runtime.version") + " (" + System.getProperty("java.vendor")
        + "), client and demo");
    machine.put("OS", System.getProperty("os.name") + " " + System.getProperty("os.version"));
    machine.put("load average before / after", loadBefore + " / " + loadAverage());
    machine.put("shared", "client, demo and PostgreSQL on the same cores");
    return machine;
  }

  private static String loadAverage() {
    try {
      String[] fields = Files.readString(Path.of("/proc/loadavg")).trim().split("\\s+");
      return fields[0] + " " + fields[1] + " " + fields[2];
    } catch (IOException | RuntimeException e) {
      return "unknown";
    }
  }

  private static String firstMatch(Path file, String regex) {
    try {
      Matcher matcher = Pattern.compile(regex, Pattern.MULTILINE).matcher(Files.readString(file));
      return matcher.find() ? matcher.group(1).trim() : "unknown";
    } catch (IOException e) {
      return "unknown";
    }
  }

  private static Duration duration(String property, String fallback) {
    String value = System.getProperty(property, fallback).trim().toLowerCase(Locale.ROOT);
    Matcher matcher = Pattern.compile("(\\d+)(ms|s|m)").matcher(value);
    if (!matcher.matches()) {
      throw new IllegalArgumentException(
          property + " must be a whole number of ms, s or m, e.g. 10s; was '" + value + "'");
    }
    long amount = Long.parseLong(matcher.group(1));
    return switch (matcher.group(2)) {
      case "ms" -> Duration.ofMillis(amount);
      case "s" -> Duration.ofSeconds(amount);
      default -> Duration.ofMinutes(amount);
    };
  }

  private static void startWatchdog(Duration limit) {
    Thread watchdog = new Thread(() -> {
      try {
        Thread.sleep(limit.toMillis());
        System.err.println("load harness: time limit of " + limit.toSeconds()
            + " s reached; stopping the demo and the database");
        System.exit(3);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }, "load-harness-watchdog");
    watchdog.setDaemon(true);
    watchdog.start();
  }

  /** What the harness started, stopped once whichever way it ends: the demo, then PostgreSQL. */
  private static final class Resources {
    volatile DemoProcess demo;
    volatile DurablePostgres postgres;

    synchronized void close() {
      if (demo != null) {
        demo.close();
        demo = null;
      }
      if (postgres != null) {
        try {
          postgres.close();
        } catch (IOException e) {
          System.err.println("stopping embedded PostgreSQL failed: " + e);
        }
        postgres = null;
      }
    }
  }
}
