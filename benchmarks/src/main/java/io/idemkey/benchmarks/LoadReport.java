package io.idemkey.benchmarks;

import io.idemkey.benchmarks.DatabaseCounters.Role;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * The load harness's results, written as {@code <name>.json} (for tools) and {@code <name>.md}
 * (for people): the machine, the exact command, the settings, one row per scenario, the ratios,
 * each scenario's statements (plan and execution time from {@code pg_stat_statements}), a new
 * key's latency broken down, and, after a prefill, the keys' statements before and after it.
 *
 * @param machine what the figures were measured on, in order
 * @param settings how they were measured, in order
 * @param command the command that produced them
 * @param scenarios the scenarios, in the order they ran
 * @param ratios each ratio of one scenario to its baseline
 * @param flatness pairs of the same scenario on a small and on a prefilled table; may be empty
 * @param jmhSummary the summary table of a JMH run made by the same command, or null
 * @param waitersSummary the Markdown of a {@code WaitersLoad} run made by the same command
 *     ({@code waiters.md}), or null
 */
record LoadReport(
    Map<String, String> machine, Map<String, String> settings, String command,
    List<ScenarioResult> scenarios, List<Ratio> ratios, List<Flatness> flatness,
    String jmhSummary, String waitersSummary) {

  private static final Set<Role> CLAIM = Set.of(Role.CLAIM);
  private static final Set<Role> COMPLETE = Set.of(Role.COMPLETE);

  /** One scenario's figures. */
  record ScenarioResult(
      LoadScenario scenario, int connections, LoadRun.Outcome outcome,
      DatabaseCounters.PerRequest database) {

    double percentileMillis(double percentile) {
      return outcome.latencies().getValueAtPercentile(percentile) / 1e6;
    }

    double meanMillis() {
      return outcome.latencies().getMean() / 1e6;
    }

    /** Whether the scenario ran keys' statements (claims, completions...). */
    boolean ranKeys() {
      return database.calls(Role.KEYS) > 0;
    }
  }

  /** {@code scenario} against {@code baseline}: throughput and latency, each as a quotient. */
  record Ratio(String scenario, String baseline, double throughput, double p50, double p99) {
    static Ratio of(ScenarioResult scenario, ScenarioResult baseline) {
      return new Ratio(
          scenario.scenario().name(),
          baseline.scenario().name(),
          scenario.outcome().requestsPerSecond() / baseline.outcome().requestsPerSecond(),
          scenario.percentileMillis(50) / baseline.percentileMillis(50),
          scenario.percentileMillis(99) / baseline.percentileMillis(99));
    }
  }

  /** The same scenario on a small table ({@code before}) and on a prefilled one ({@code after}). */
  record Flatness(ScenarioResult before, ScenarioResult after) {

    /** Plan + execution ms per call of the top-level statements of {@code roles}. */
    static double perCall(ScenarioResult result, Set<Role> roles) {
      double calls = result.database().calls(roles);
      return calls == 0 ? Double.NaN : result.database().millis(roles) / calls;
    }
  }

  /** A table's sizes in MiB, for the report. */
  static String sizes(KeysTable.Size size) {
    return String.format(Locale.ROOT, "total %.1f MiB (heap %.1f, indexes %.1f)",
        size.totalBytes() / 1048576.0, size.heapBytes() / 1048576.0,
        size.indexBytes() / 1048576.0);
  }

  void write(Path directory, String name) throws IOException {
    Files.createDirectories(directory);
    Files.writeString(directory.resolve(name + ".json"), json(), StandardCharsets.UTF_8);
    Files.writeString(directory.resolve(name + ".md"), markdown(), StandardCharsets.UTF_8);
  }

  String json() {
    StringBuilder out = new StringBuilder("{\n");
    out.append("  \"machine\": ").append(object(machine)).append(",\n");
    out.append("  \"settings\": ").append(object(settings)).append(",\n");
    out.append("  \"command\": ").append(quote(command)).append(",\n");
    out.append("  \"scenarios\": [\n");
    for (int i = 0; i < scenarios.size(); i++) {
      ScenarioResult result = scenarios.get(i);
      LoadRun.Outcome outcome = result.outcome();
      DatabaseCounters.PerRequest db = result.database();
      out.append("    {\"name\": ").append(quote(result.scenario().name()))
          .append(", \"description\": ").append(quote(result.scenario().description()))
          .append(", \"connections\": ").append(result.connections())
          .append(",\n     \"requestsPerSecond\": ").append(number(outcome.requestsPerSecond()))
          .append(", \"measuredRequests\": ").append(outcome.measuredRequests())
          .append(", \"allRequests\": ").append(outcome.allRequests())
          .append(", \"failures\": ").append(outcome.failures())
          .append(", \"firstFailure\": ")
          .append(outcome.firstFailure() == null ? "null" : quote(outcome.firstFailure()))
          .append(",\n     \"latencyMillis\": {\"p50\": ").append(number(result.percentileMillis(50)))
          .append(", \"p90\": ").append(number(result.percentileMillis(90)))
          .append(", \"p99\": ").append(number(result.percentileMillis(99)))
          .append(", \"p999\": ").append(number(result.percentileMillis(99.9)))
          .append(", \"max\": ").append(number(outcome.latencies().getMaxValue() / 1e6))
          .append(", \"mean\": ").append(number(result.meanMillis()))
          .append("},\n     \"perRequest\": {\"topLevelStatements\": ")
          .append(db.statements() == null ? "null" : number(db.statements()))
          .append(", \"commits\": ").append(number(db.commits()))
          .append(", \"writeTransactions\": ").append(number(db.writeTransactions()))
          .append(", \"walBytes\": ").append(number(db.walBytes()))
          .append(", \"walSyncs\": ").append(nullable(db.walSyncs()))
          .append(", \"walSyncMillis\": ").append(nullable(db.walSyncMillis()))
          .append(", \"keysMillis\": ").append(number(db.millis(Role.KEYS)))
          .append(", \"handlerMillis\": ").append(number(db.millis(Set.of(Role.HANDLER))))
          .append(", \"keysPerHandler\": ").append(nullable(db.keysPerHandler()))
          .append(",\n       \"statements\": [");
      List<DatabaseCounters.StatementShare> shares = db.statementShares();
      for (int s = 0; s < shares.size(); s++) {
        DatabaseCounters.StatementShare share = shares.get(s);
        out.append(s == 0 ? "\n       " : ",\n       ")
            .append("{\"role\": ").append(quote(share.role().name().toLowerCase(Locale.ROOT)))
            .append(", \"toplevel\": ").append(share.toplevel())
            .append(", \"calls\": ").append(number(share.calls()))
            .append(", \"plansPerCall\": ").append(number(share.plansPerCall()))
            .append(", \"planMillis\": ").append(number(share.planMillis()))
            .append(", \"execMillis\": ").append(number(share.execMillis()))
            .append(", \"query\": ").append(quote(share.query())).append('}');
      }
      out.append("]}}").append(i + 1 < scenarios.size() ? ",\n" : "\n");
    }
    out.append("  ],\n  \"ratios\": [\n");
    for (int i = 0; i < ratios.size(); i++) {
      Ratio ratio = ratios.get(i);
      out.append("    {\"scenario\": ").append(quote(ratio.scenario()))
          .append(", \"baseline\": ").append(quote(ratio.baseline()))
          .append(", \"throughput\": ").append(number(ratio.throughput()))
          .append(", \"p50\": ").append(number(ratio.p50()))
          .append(", \"p99\": ").append(number(ratio.p99())).append('}')
          .append(i + 1 < ratios.size() ? ",\n" : "\n");
    }
    out.append("  ],\n  \"flatness\": [\n");
    for (int i = 0; i < flatness.size(); i++) {
      Flatness pair = flatness.get(i);
      out.append("    {\"before\": ").append(quote(pair.before().scenario().name()))
          .append(", \"after\": ").append(quote(pair.after().scenario().name()))
          .append(", \"claimMillisPerCall\": [")
          .append(number(Flatness.perCall(pair.before(), CLAIM))).append(", ")
          .append(number(Flatness.perCall(pair.after(), CLAIM)))
          .append("], \"completeMillisPerCall\": [")
          .append(number(Flatness.perCall(pair.before(), COMPLETE))).append(", ")
          .append(number(Flatness.perCall(pair.after(), COMPLETE))).append("]}")
          .append(i + 1 < flatness.size() ? ",\n" : "\n");
    }
    return out.append("  ]\n}\n").toString();
  }

  String markdown() {
    StringBuilder out = new StringBuilder("# idemkey HTTP load: "
        + (flatness.isEmpty() ? "latest run" : "a prefilled table") + "\n\n");
    out.append("Written by `LoadHarness` (benchmarks/); the same figures are in the `.json` file"
        + " of the same name.\n\n");
    out.append("| machine | |\n|---|---|\n");
    machine.forEach((key, value) -> out.append("| ").append(key).append(" | ")
        .append(cell(value)).append(" |\n"));
    out.append("\nCommand:\n\n```sh\n").append(command).append("\n```\n\n");
    out.append("| setting | |\n|---|---|\n");
    settings.forEach((key, value) -> out.append("| ").append(key).append(" | ")
        .append(cell(value)).append(" |\n"));
    out.append("\n| scenario | connections | req/s | p50 ms | p99 ms | max ms | failures"
        + " | statements/req | keys' plan+exec ms/req | handler's plan+exec ms/req"
        + " | keys / handler | commits/req | writing xacts/req | WAL bytes/req"
        + " | WAL flushes/req |\n");
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (ScenarioResult result : scenarios) {
      LoadRun.Outcome outcome = result.outcome();
      DatabaseCounters.PerRequest db = result.database();
      boolean stats = db.statements() != null;
      out.append("| ").append(result.scenario().name())
          .append(" | ").append(result.connections())
          .append(" | ").append(format("%.0f", outcome.requestsPerSecond()))
          .append(" | ").append(format("%.2f", result.percentileMillis(50)))
          .append(" | ").append(format("%.2f", result.percentileMillis(99)))
          .append(" | ").append(format("%.1f", outcome.latencies().getMaxValue() / 1e6))
          .append(" | ").append(outcome.failures()).append(" of ").append(outcome.allRequests())
          .append(" | ").append(stats ? format("%.2f", db.statements()) : "n/a")
          .append(" | ").append(stats ? format("%.3f", db.millis(Role.KEYS)) : "n/a")
          .append(" | ").append(stats ? format("%.3f", db.millis(Set.of(Role.HANDLER))) : "n/a")
          .append(" | ").append(db.keysPerHandler() == null ? "—"
              : format("%.2f", db.keysPerHandler()) + "×")
          .append(" | ").append(format("%.2f", db.commits()))
          .append(" | ").append(format("%.2f", db.writeTransactions()))
          .append(" | ").append(format("%.0f", db.walBytes()))
          .append(" | ").append(db.walSyncs() == null ? "n/a" : format("%.2f", db.walSyncs()))
          .append(" |\n");
    }
    out.append("\nStatements/req counts top-level statements only (pg_stat_statements runs with"
        + " track=all; a statement run inside another, by a function, would be listed apart"
        + " below, its time already inside its caller's). Keys' plan+exec: the top-level"
        + " statements on the keys table (claim, take-over, completion, release, renewal, key"
        + " reads; the purge apart) and the settled-key notification. Handler's: the demo's"
        + " `INSERT INTO payments`. Transaction control (BEGIN, COMMIT) is in neither."
        + " WAL flushes: pg_stat_wal.wal_sync (one flush can carry several commits).\n");
    if (!ratios.isEmpty()) {
      out.append("\n| ratio | throughput | p50 latency | p99 latency |\n|---|---:|---:|---:|\n");
      for (Ratio ratio : ratios) {
        out.append("| ").append(ratio.scenario()).append(" / ").append(ratio.baseline())
            .append(" | ").append(format("%.2f", ratio.throughput()))
            .append(" | ").append(format("%.2f", ratio.p50()))
            .append(" | ").append(format("%.2f", ratio.p99())).append(" |\n");
      }
    }
    out.append("\nScenarios:\n\n");
    for (ScenarioResult result : scenarios) {
      out.append("- `").append(result.scenario().name()).append("`: ")
          .append(result.scenario().description()).append('\n');
    }
    if (!flatness.isEmpty()) {
      flatness(out);
    }
    for (ScenarioResult result : scenarios) {
      if (result.ranKeys()) {
        breakdown(out, result);
      }
    }
    for (ScenarioResult result : scenarios) {
      statements(out, result);
    }
    if (jmhSummary != null) {
      out.append("\n## JMH, same command\n\nIn-process, one thread; `StoreBenchmark` on an embedded"
          + " PostgreSQL with fsync and synchronous_commit on. Raw results: `jmh.json`.\n\n```\n")
          .append(jmhSummary.strip()).append("\n```\n");
    }
    if (waitersSummary != null) {
      // waiters.md without its own title, which this section's heading replaces.
      out.append("\n## Waiters, same command\n\n")
          .append(waitersSummary.strip().replaceFirst("^# [^\n]*\n+", "")).append('\n');
    }
    return out.toString();
  }

  /** The claim's and the completion's cost per call, on the small table and on the full one. */
  private void flatness(StringBuilder out) {
    out.append("\n## Flat in the table's size\n\nPlan + execution ms per call (pg_stat_statements,"
        + " top-level calls), the same scenario before and after the prefill (see the settings"
        + " for the table's size each time). The prefill ends with a CHECKPOINT, so the first"
        + " change to each page after it writes a full-page image to the WAL: with random keys"
        + " spread over a large index, as after every checkpoint in production, that shows in"
        + " the WAL bytes.\n\n"
        + "| scenario | statement | before | after | change | req/s before → after"
        + " | p50 ms before → after | WAL bytes/req before → after |\n"
        + "|---|---|---:|---:|---:|---|---|---|\n");
    for (Flatness pair : flatness) {
      for (Set<Role> roles : List.of(CLAIM, COMPLETE)) {
        double before = Flatness.perCall(pair.before(), roles);
        double after = Flatness.perCall(pair.after(), roles);
        out.append("| ").append(pair.before().scenario().name())
            .append(" | ").append(roles.iterator().next().label)
            .append(" | ").append(format("%.4f", before))
            .append(" | ").append(format("%.4f", after))
            .append(" | ").append(format("%+.0f%%", (after / before - 1) * 100))
            .append(" | ").append(format("%.0f", pair.before().outcome().requestsPerSecond()))
            .append(" → ").append(format("%.0f", pair.after().outcome().requestsPerSecond()))
            .append(" | ").append(format("%.2f", pair.before().percentileMillis(50)))
            .append(" → ").append(format("%.2f", pair.after().percentileMillis(50)))
            .append(" | ").append(format("%.0f", pair.before().database().walBytes()))
            .append(" → ").append(format("%.0f", pair.after().database().walBytes()))
            .append(" |\n");
      }
    }
  }

  /** Where a new key's time goes: the request's latency against its statements' time. */
  private static void breakdown(StringBuilder out, ScenarioResult result) {
    DatabaseCounters.PerRequest db = result.database();
    if (db.statements() == null) {
      return;
    }
    out.append("\n## Where a request's time goes, `").append(result.scenario().name())
        .append("` (").append(result.connections()).append(result.connections() == 1
            ? " connection" : " connections").append(")\n\n")
        .append("| part | ms per request | measured or derived |\n|---|---:|---|\n");
    out.append("| request latency, p50 | ").append(format("%.3f", result.percentileMillis(50)))
        .append(" | measured by the client, measured window |\n");
    out.append("| request latency, mean | ").append(format("%.3f", result.meanMillis()))
        .append(" | measured by the client, measured window |\n");
    double database = 0;
    for (Role role : Role.values()) {
      double millis = db.millis(Set.of(role));
      double calls = db.calls(Set.of(role));
      if (calls == 0) {
        continue;
      }
      database += millis;
      out.append("| ").append(role.label).append(" (").append(format("%.2f", calls))
          .append(" calls: plan ")
          .append(format("%.3f", db.statementShares().stream()
              .filter(s -> s.toplevel() && s.role() == role)
              .mapToDouble(DatabaseCounters.StatementShare::planMillis).sum()))
          .append(" + exec ")
          .append(format("%.3f", db.statementShares().stream()
              .filter(s -> s.toplevel() && s.role() == role)
              .mapToDouble(DatabaseCounters.StatementShare::execMillis).sum()))
          .append(") | ").append(format("%.3f", millis))
          .append(" | measured by PostgreSQL (pg_stat_statements), mean per request |\n");
    }
    out.append("| all statements, plan + exec | ").append(format("%.3f", database))
        .append(" | sum of the rows above |\n");
    out.append("| outside the statements, at the mean | ")
        .append(format("%.3f", result.meanMillis() - database))
        .append(" | derived: mean latency − all statements: commits (their WAL flush), HTTP,"
            + " JSON, the filter, pool waits, network, and queueing for the 2 cores |\n");
    out.append("| outside the statements, at the p50 | ")
        .append(format("%.3f", result.percentileMillis(50) - database))
        .append(" | derived, rough: the p50 less the means above |\n");
    if (db.walSyncMillis() != null) {
      out.append("| of which WAL flushes (").append(format("%.2f", db.walSyncs()))
          .append(" per request) | ").append(format("%.3f", db.walSyncMillis()))
          .append(" | measured by PostgreSQL (pg_stat_wal.wal_sync_time), mean per request:"
              + " the flushing process's time; not in the statements' time (a commit flushes"
              + " after its statement has run); includes the WAL writer's background flushes,"
              + " which no request waits for, and leaves out the time other commits wait on"
              + " the same flush |\n");
    }
  }

  /** One scenario's statements, top-level first, then those run inside them (if any). */
  private static void statements(StringBuilder out, ScenarioResult result) {
    DatabaseCounters.PerRequest db = result.database();
    List<DatabaseCounters.StatementShare> shares = db.statementShares();
    if (shares.isEmpty()) {
      return;
    }
    out.append("\n### Statements per request, `").append(result.scenario().name())
        .append("`\n\npg_stat_statements over the scenario's warm-up and measured window,"
            + " divided by its requests; statements run less than once per thousand requests"
            + " left out. Inner rows, if any, run inside a top-level call (a function): their"
            + " time is part of that call's and is not added again.\n\n")
        .append("| statement | level | calls/req | plans/call | plan ms/req | exec ms/req"
            + " | plan+exec ms/call | text |\n|---|---|---:|---:|---:|---:|---:|---|\n");
    for (DatabaseCounters.StatementShare share : shares) {
      String query = share.query().length() > 110
          ? share.query().substring(0, 110) + "…" : share.query();
      out.append("| ").append(share.role().label)
          .append(" | ").append(share.toplevel() ? "top" : "inner")
          .append(" | ").append(format("%.3f", share.calls()))
          .append(" | ").append(format("%.3f", share.plansPerCall()))
          .append(" | ").append(format("%.4f", share.planMillis()))
          .append(" | ").append(format("%.4f", share.execMillis()))
          .append(" | ").append(format("%.4f", share.millisPerCall()))
          .append(" | `").append(query.replace("|", "\\|").replace("`", "'"))
          .append("` |\n");
    }
    Double ratio = db.keysPerHandler();
    if (ratio != null) {
      out.append("\nKeys' statements per new key = ").append(format("%.2f", ratio))
          .append("× the handler's insert (plan + exec): ")
          .append(format("%.4f", db.millis(Role.KEYS))).append(" ms against ")
          .append(format("%.4f", db.millis(Set.of(Role.HANDLER)))).append(" ms per request.\n");
    }
  }

  private static String object(Map<String, String> values) {
    StringBuilder out = new StringBuilder("{");
    values.forEach((key, value) -> out.append(out.length() > 1 ? ", " : "")
        .append(quote(key)).append(": ").append(quote(value)));
    return out.append('}').toString();
  }

  private static String nullable(Double value) {
    return value == null ? "null" : number(value);
  }

  private static String number(double value) {
    return Double.isFinite(value) ? format("%.4f", value) : "null";
  }

  private static String format(String pattern, double value) {
    return String.format(Locale.ROOT, pattern, value);
  }

  private static String cell(String value) {
    return value.replace("|", "\\|").replace("\n", " ");
  }

  private static String quote(String value) {
    StringBuilder out = new StringBuilder("\"");
    for (char c : value.toCharArray()) {
      switch (c) {
        case '"' -> out.append("\\\"");
        case '\\' -> out.append("\\\\");
        case '\n' -> out.append("\\n");
        case '\r' -> out.append("\\r");
        case '\t' -> out.append("\\t");
        default -> {
          if (c < 0x20) {
            out.append(String.format(Locale.ROOT, "\\u%04x", (int) c));
          } else {
            out.append(c);
          }
        }
      }
    }
    return out.append('"').toString();
  }
}
