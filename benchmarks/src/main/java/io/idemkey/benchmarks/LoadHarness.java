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
 * The HTTP load harness: starts one embedded PostgreSQL with durable settings, starts two demo
 * apps on it as separate processes (one in transactional mode, the demo's default, one with
 * {@code -Didempotency.transactional=false}), warms them up with every scenario, then drives each
 * scenario in turn over keep-alive connections to 127.0.0.1, and writes {@code latest.json} and
 * {@code latest.md}.
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
 * load.demoJar} (demo-app/target/demo-app.jar), {@code load.demoJvmOptions} (space-separated, for
 * both demos; default none: the demo's defaults),
 * {@code load.results} (benchmarks/results), {@code load.command} (the command to print in the
 * report), {@code load.revision} (the commit measured), {@code load.jmhSummary} (a file with a JMH
 * summary table from the same command, copied into latest.md), {@code load.waitersSummary} (the
 * {@code waiters.md} of a {@code WaitersLoad} run from the same command, copied into latest.md).
 *
 * <p>With {@code load.prefill=N} it measures instead whether a key's statements stay as cheap
 * when the table is large: new keys in both modes, then N completed keys added to the table
 * ({@link KeysTable#prefill}, bounded by {@code load.prefillLimit}, 20m), then new keys in both
 * modes again; it writes {@code prefill.json} and {@code prefill.md}.
 *
 * <p>The whole run is bounded: past its time limit it stops the demos and the database and exits
 * with status 3.
 */
public final class LoadHarness {

  /** One scenario as the harness runs it: against which demo, over how many connections. */
  private record Step(LoadScenario scenario, DemoProcess demo, int connections) {}

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
    long prefill = Long.getLong("load.prefill", 0);
    Duration prefillLimit = duration("load.prefillLimit", "20m");
    Path demoJar = Path.of(System.getProperty("load.demoJar", "demo-app/target/demo-app.jar"));
    // The demo at its defaults, as a user's first run (jdbc.pool-size 10): a setting that would
    // hide a failure under load (a larger pool) is not the harness's to choose.
    String demoOptions = System.getProperty("load.demoJvmOptions", "").trim();
    List<String> demoJvmOptions =
        demoOptions.isEmpty() ? List.of() : List.of(demoOptions.split("\\s+"));
    List<String> plainJvmOptions = new ArrayList<>(demoJvmOptions);
    plainJvmOptions.add("-Didempotency.transactional=false");
    Path results = Path.of(System.getProperty("load.results", "benchmarks/results"));
    String command = System.getProperty("load.command", ProcessHandle.current().info()
        .commandLine().orElse("java -cp benchmarks/target/benchmarks.jar "
            + LoadHarness.class.getName()));
    if (connections < 1 || measure.isZero() || prefill < 0) {
      throw new IllegalArgumentException("load.connections and load.duration must be positive,"
          + " load.prefill not negative");
    }

    int scenarioCount = prefill > 0 ? 4 : 8;
    Duration limit = warmup.multipliedBy(2).plus(measure).plus(settle).plus(Duration.ofSeconds(30))
        .multipliedBy(scenarioCount).plus(settle).plus(Duration.ofMinutes(4))
        .plus(prefill > 0 ? prefillLimit.plus(Duration.ofMinutes(10)) : Duration.ZERO);
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
        ? "pg_stat_statements (preloaded, track=all, track_planning="
            + postgres.show("pg_stat_statements.track_planning") + "), pg_stat_database and"
            + " pg_stat_wal"
        : "pg_stat_database only (pg_stat_statements could not be loaded): no statement counts";
    System.out.println("database counters from " + statementSource);

    resources.demo = startDemo(demoJar, demoJvmOptions, postgres, "transactional=true");
    DemoProcess demo = resources.demo;
    resources.plainDemo = startDemo(demoJar, plainJvmOptions, postgres, "transactional=false");
    DemoProcess plainDemo = resources.plainDemo;

    String run = Long.toString(System.currentTimeMillis(), 36);
    String[] keys = new String[replayKeys];
    for (int i = 0; i < replayKeys; i++) {
      keys[i] = "replay-" + run + "-" + i;
    }
    LoadScenario newKeysTx = LoadScenario.newKeys("new-keys-tx",
        "POST /payments, a fresh Idempotency-Key each request, transactional mode (the demo's"
            + " default): claim, then the payment insert and the completion in one transaction");
    LoadScenario newKeysPlain = LoadScenario.newKeys("new-keys-plain",
        "POST /payments, a fresh Idempotency-Key each request, on the second demo with"
            + " -Didempotency.transactional=false: claim, payment insert (autocommit), completion");
    List<Step> steps = new ArrayList<>();
    if (prefill == 0) {
      steps.add(new Step(LoadScenario.fixed("bare-static",
          "POST /bare/static: a fixed 201 JSON body, no filter, no database", "/bare/static"),
          demo, connections));
      steps.add(new Step(LoadScenario.fixed("bare-payments",
          "POST /bare/payments: the payments handler (one insert, autocommit) with no filter",
          "/bare/payments"), demo, connections));
      steps.add(new Step(newKeysTx, demo, connections));
      steps.add(new Step(newKeysPlain, plainDemo, connections));
      steps.add(new Step(LoadScenario.replay(keys), demo, connections));
      steps.add(new Step(LoadScenario.fixed("bare-payments-1",
          "bare-payments on one connection", "/bare/payments"), demo, 1));
      steps.add(new Step(LoadScenario.newKeys("new-keys-tx-1",
          "new-keys-tx on one connection"), demo, 1));
      steps.add(new Step(LoadScenario.newKeys("new-keys-plain-1",
          "new-keys-plain on one connection"), plainDemo, 1));
    } else {
      steps.add(new Step(newKeysTx, demo, connections));
      steps.add(new Step(newKeysPlain, plainDemo, connections));
    }

    createKeys(demo.port(), keys);
    // The demos' JVMs start cold: without this pass the first scenario would pay for most of the
    // JIT compilation, and the comparison with the later ones would be skewed.
    System.out.println("warming the demos up: every scenario for " + warmup.toSeconds() + " s");
    for (Step step : steps) {
      LoadRun.run(step.scenario(), step.demo().port(), step.connections(), Duration.ZERO, warmup);
    }

    List<LoadReport.ScenarioResult> done = new ArrayList<>();
    Map<String, String> settings = new LinkedHashMap<>();
    int[] readings = {0};
    Thread.sleep(settle.toMillis());
    DatabaseCounters[] before = {DatabaseCounters.read(postgres, readings[0]++)};
    Runner runner = step -> {
      System.out.println("running " + step.scenario().name() + " ...");
      LoadRun.Outcome outcome = LoadRun.run(
          step.scenario(), step.demo().port(), step.connections(), warmup, measure);
      Thread.sleep(settle.toMillis());
      DatabaseCounters after = DatabaseCounters.read(postgres, readings[0]++);
      DatabaseCounters.PerRequest perRequest =
          after.since(before[0], outcome.allRequests(), postgres.hasStatementStats());
      before[0] = after;
      LoadReport.ScenarioResult result = new LoadReport.ScenarioResult(
          step.scenario(), step.connections(), outcome, perRequest);
      done.add(result);
      System.out.printf(Locale.ROOT,
          "%-22s %8.0f req/s  p50 %7.2f ms  p99 %7.2f ms  failures %d of %d"
              + "  statements/req %s  commits/req %.2f  keys/handler %s%n",
          step.scenario().name(), outcome.requestsPerSecond(), result.percentileMillis(50),
          result.percentileMillis(99), outcome.failures(), outcome.allRequests(),
          perRequest.statements() == null ? "n/a"
              : String.format(Locale.ROOT, "%.2f", perRequest.statements()),
          perRequest.commits(),
          perRequest.keysPerHandler() == null ? "-"
              : String.format(Locale.ROOT, "%.2f", perRequest.keysPerHandler()));
      if (outcome.firstFailure() != null) {
        System.out.println("  first failure: " + outcome.firstFailure());
      }
    };
    for (Step step : steps) {
      runner.run(step);
    }

    List<LoadReport.Ratio> ratios = new ArrayList<>();
    List<LoadReport.Flatness> flatness = new ArrayList<>();
    String reportName;
    if (prefill == 0) {
      reportName = "latest";
      ratios.add(LoadReport.Ratio.of(find(done, "new-keys-tx"), find(done, "bare-payments")));
      ratios.add(LoadReport.Ratio.of(find(done, "new-keys-plain"), find(done, "bare-payments")));
      ratios.add(LoadReport.Ratio.of(find(done, "replay"), find(done, "bare-static")));
      ratios.add(LoadReport.Ratio.of(find(done, "new-keys-tx-1"), find(done, "bare-payments-1")));
      ratios.add(
          LoadReport.Ratio.of(find(done, "new-keys-plain-1"), find(done, "bare-payments-1")));
    } else {
      reportName = "prefill";
      KeysTable.Size empty = KeysTable.size(postgres);
      System.out.printf(Locale.ROOT, "prefilling %,d completed keys (table now %,d rows)%n",
          prefill, empty.rows());
      KeysTable.Fill fill = KeysTable.prefill(postgres, prefill, prefillLimit);
      KeysTable.Size full = KeysTable.size(postgres);
      System.out.printf(Locale.ROOT, "prefilled %,d rows in %d s%s: table %,d rows, %,d bytes%n",
          fill.rows(), fill.took().toSeconds(),
          fill.stoppedAtLimit() ? " (stopped at load.prefillLimit)" : "", full.rows(),
          full.totalBytes());
      settings.put("prefill", String.format(Locale.ROOT,
          "%,d completed keys added after the first two scenarios in %d s%s (random UUID keys,"
              + " each a copy of one completed demo key: a %d-byte response body), then VACUUM"
              + " (ANALYZE) and CHECKPOINT; table before: %,d rows, %s; after: %,d rows, %s",
          fill.rows(), fill.took().toSeconds(),
          fill.stoppedAtLimit() ? ", stopped at load.prefillLimit" : "", fill.bodyBytes(),
          empty.rows(), LoadReport.sizes(empty), full.rows(), LoadReport.sizes(full)));
      // The counters' next delta would include the fill: start afresh.
      Thread.sleep(settle.toMillis());
      before[0] = DatabaseCounters.read(postgres, readings[0]++);
      for (Step step : steps) {
        runner.run(new Step(step.scenario().renamed(step.scenario().name() + "-prefilled",
            step.scenario().description() + ", after the prefill"), step.demo(),
            step.connections()));
      }
      flatness.add(new LoadReport.Flatness(
          find(done, "new-keys-tx"), find(done, "new-keys-tx-prefilled")));
      flatness.add(new LoadReport.Flatness(
          find(done, "new-keys-plain"), find(done, "new-keys-plain-prefilled")));
    }
    for (LoadReport.Ratio ratio : ratios) {
      System.out.printf(Locale.ROOT, "%s / %s: throughput %.2f, p50 %.2f, p99 %.2f%n",
          ratio.scenario(), ratio.baseline(), ratio.throughput(), ratio.p50(), ratio.p99());
    }

    Map<String, String> machine = machine(loadBefore);
    Map<String, String> allSettings = new LinkedHashMap<>();
    allSettings.put("started", started.truncatedTo(ChronoUnit.SECONDS).toString());
    allSettings.put("revision", System.getProperty("load.revision", "unknown"));
    allSettings.put("connections", connections + " (the scenarios ending in -1: one)");
    allSettings.put("warm-up", "every scenario once for " + warmup.toSeconds()
        + " s after the demos start, then " + warmup.toSeconds()
        + " s before each (not recorded)");
    allSettings.put("measured", measure.toSeconds() + " s per scenario, closed loop");
    allSettings.put("PostgreSQL", "embedded " + version + ", fsync=" + fsync
        + ", synchronous_commit=" + synchronousCommit + ", same machine");
    allSettings.put("database counters", statementSource
        + "; per request = delta over warm-up and measured window / all requests sent");
    allSettings.put("demos", "java -jar " + demoJar
        + (demoOptions.isEmpty() ? "" : " " + demoOptions) + " (transactional, pid " + demo.pid()
        + ") and the same with -Didempotency.transactional=false (pid " + plainDemo.pid()
        + "), separate processes on the same database, same machine; each logged its"
        + " resolved transactional setting as expected");
    allSettings.put("new keys", "random UUIDs (ThreadLocalRandom), so they land all over the"
        + " key index");
    if (prefill == 0) {
      allSettings.put("replay keys", replayKeys + " keys created before the replay scenario");
    }
    allSettings.putAll(settings);
    String jmhSummaryFile = System.getProperty("load.jmhSummary");
    String jmhSummary = jmhSummaryFile == null || !Files.isRegularFile(Path.of(jmhSummaryFile))
        ? null : Files.readString(Path.of(jmhSummaryFile));
    String waitersFile = System.getProperty("load.waitersSummary");
    String waitersSummary = waitersFile == null || !Files.isRegularFile(Path.of(waitersFile))
        ? null : Files.readString(Path.of(waitersFile));
    new LoadReport(machine, allSettings, command, done, ratios, flatness, jmhSummary,
        waitersSummary).write(results, reportName);
    System.out.println("wrote " + results.resolve(reportName + ".json") + " and "
        + results.resolve(reportName + ".md"));
    return done.stream().anyMatch(r -> r.outcome().failures() > 0) ? 1 : 0;
  }

  /** Runs one step and records its result. */
  @FunctionalInterface
  private interface Runner {
    void run(Step step) throws Exception;
  }

  /**
   * Starts a demo on {@code postgres} and checks that it logged its resolved configuration with
   * {@code expected} in it (e.g. {@code transactional=false}).
   */
  private static DemoProcess startDemo(
      Path jar, List<String> jvmOptions, DurablePostgres postgres, String expected)
      throws IOException, InterruptedException {
    Path log = Files.createTempFile("idemkey-demo-", ".log");
    DemoProcess demo = DemoProcess.start(jar, jvmOptions, postgres.jdbcUrl(), postgres.user(),
        postgres.password(), log, Duration.ofSeconds(90));
    String logged = Files.readString(log);
    Matcher config = Pattern.compile("idempotency config: [^\n]*").matcher(logged);
    if (!config.find() || !config.group().contains(", " + expected + ",")) {
      demo.close();
      throw new IllegalStateException("the demo started with " + jvmOptions + " did not log "
          + expected + " in its configuration; see " + log);
    }
    System.out.println("demo pid " + demo.pid() + " (" + expected + ") healthy on 127.0.0.1:"
        + demo.port() + " (log " + log + ")");
    return demo;
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

  static Duration duration(String property, String fallback) {
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

  /** What the harness started, stopped once whichever way it ends: the demos, then PostgreSQL. */
  private static final class Resources {
    volatile DemoProcess demo;
    volatile DemoProcess plainDemo;
    volatile DurablePostgres postgres;

    synchronized void close() {
      if (demo != null) {
        demo.close();
        demo = null;
      }
      if (plainDemo != null) {
        plainDemo.close();
        plainDemo = null;
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
