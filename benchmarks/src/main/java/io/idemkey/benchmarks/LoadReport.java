package io.idemkey.benchmarks;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The load harness's results, written as {@code latest.json} (for tools) and {@code latest.md}
 * (for people): the machine, the exact command, the settings, one row per scenario and the
 * ratios.
 *
 * @param machine what the figures were measured on, in order
 * @param settings how they were measured, in order
 * @param command the command that produced them
 * @param scenarios the scenarios, in the order they ran
 * @param ratios each ratio of one scenario to its baseline
 * @param jmhSummary the summary table of a JMH run made by the same command, or null
 * @param waitersSummary the Markdown of a {@code WaitersLoad} run made by the same command
 *     ({@code waiters.md}), or null
 */
record LoadReport(
    Map<String, String> machine, Map<String, String> settings, String command,
    List<ScenarioResult> scenarios, List<Ratio> ratios, String jmhSummary,
    String waitersSummary) {

  /** One scenario's figures. */
  record ScenarioResult(
      LoadScenario scenario, LoadRun.Outcome outcome, DatabaseCounters.PerRequest database) {

    double percentileMillis(double percentile) {
      return outcome.latencies().getValueAtPercentile(percentile) / 1e6;
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

  void write(Path directory) throws IOException {
    Files.createDirectories(directory);
    Files.writeString(directory.resolve("latest.json"), json(), StandardCharsets.UTF_8);
    Files.writeString(directory.resolve("latest.md"), markdown(), StandardCharsets.UTF_8);
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
          .append(", \"mean\": ").append(number(outcome.latencies().getMean() / 1e6))
          .append("},\n     \"perRequest\": {\"statements\": ")
          .append(db.statements() == null ? "null" : number(db.statements()))
          .append(", \"commits\": ").append(number(db.commits()))
          .append(", \"writeTransactions\": ").append(number(db.writeTransactions()))
          .append(", \"walBytes\": ").append(number(db.walBytes()))
          .append(", \"topStatements\": [");
      for (int s = 0; s < db.top().size(); s++) {
        DatabaseCounters.StatementShare share = db.top().get(s);
        out.append(s == 0 ? "\n       " : ",\n       ")
            .append("{\"calls\": ").append(number(share.calls()))
            .append(", \"millis\": ").append(number(share.millis()))
            .append(", \"query\": ").append(quote(share.query())).append('}');
      }
      out.append("]},\n     \"claimBatchSize\": ")
          .append(db.claimBatch() == null ? "null" : number(db.claimBatch()))
          .append('}').append(i + 1 < scenarios.size() ? ",\n" : "\n");
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
    return out.append("  ]\n}\n").toString();
  }

  String markdown() {
    StringBuilder out = new StringBuilder("# idemkey HTTP load: latest run\n\n");
    out.append("Written by `LoadHarness` (benchmarks/); the same figures are in `latest.json`.\n\n");
    out.append("| machine | |\n|---|---|\n");
    machine.forEach((key, value) -> out.append("| ").append(key).append(" | ")
        .append(cell(value)).append(" |\n"));
    out.append("\nCommand:\n\n```sh\n").append(command).append("\n```\n\n");
    out.append("| setting | |\n|---|---|\n");
    settings.forEach((key, value) -> out.append("| ").append(key).append(" | ")
        .append(cell(value)).append(" |\n"));
    out.append("\n| scenario | req/s | p50 ms | p99 ms | max ms | failures"
        + " | statements/req | claims/claim statement | commits/req | writing xacts/req"
        + " | WAL bytes/req |\n");
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (ScenarioResult result : scenarios) {
      LoadRun.Outcome outcome = result.outcome();
      DatabaseCounters.PerRequest db = result.database();
      out.append("| ").append(result.scenario().name())
          .append(" | ").append(format("%.0f", outcome.requestsPerSecond()))
          .append(" | ").append(format("%.2f", result.percentileMillis(50)))
          .append(" | ").append(format("%.2f", result.percentileMillis(99)))
          .append(" | ").append(format("%.1f", outcome.latencies().getMaxValue() / 1e6))
          .append(" | ").append(outcome.failures()).append(" of ").append(outcome.allRequests())
          .append(" | ").append(db.statements() == null ? "n/a" : format("%.2f", db.statements()))
          .append(" | ").append(db.statements() == null ? "n/a"
              : db.claimBatch() == null ? "—" : format("%.2f", db.claimBatch()))
          .append(" | ").append(format("%.2f", db.commits()))
          .append(" | ").append(format("%.2f", db.writeTransactions()))
          .append(" | ").append(format("%.0f", db.walBytes())).append(" |\n");
    }
    out.append("\nClaims/claim statement: the average claim batch, the rows the store's claim"
        + " statement answered (one per claim) over its calls, from pg_stat_statements over the"
        + " same window; \"—\" when no claim reached the database.\n");
    out.append("\n| ratio | throughput | p50 latency | p99 latency |\n|---|---:|---:|---:|\n");
    for (Ratio ratio : ratios) {
      out.append("| ").append(ratio.scenario()).append(" / ").append(ratio.baseline())
          .append(" | ").append(format("%.2f", ratio.throughput()))
          .append(" | ").append(format("%.2f", ratio.p50()))
          .append(" | ").append(format("%.2f", ratio.p99())).append(" |\n");
    }
    out.append("\nScenarios:\n\n");
    for (ScenarioResult result : scenarios) {
      out.append("- `").append(result.scenario().name()).append("`: ")
          .append(result.scenario().description()).append('\n');
    }
    for (ScenarioResult result : scenarios) {
      List<DatabaseCounters.StatementShare> top = result.database().top();
      if (top.isEmpty()) {
        continue;
      }
      out.append("\nStatements per request, `").append(result.scenario().name())
          .append("` (pg_stat_statements: calls and execution time per request; statements run"
              + " less than once per thousand requests left out):\n\n")
          .append("| calls | ms | statement |\n|---:|---:|---|\n");
      for (DatabaseCounters.StatementShare share : top) {
        String query = share.query().length() > 140
            ? share.query().substring(0, 140) + "…" : share.query();
        out.append("| ").append(format("%.3f", share.calls()))
            .append(" | ").append(format("%.3f", share.millis()))
            .append(" | `").append(query.replace("|", "\\|").replace("`", "'"))
            .append("` |\n");
      }
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

  private static String object(Map<String, String> values) {
    StringBuilder out = new StringBuilder("{");
    values.forEach((key, value) -> out.append(out.length() > 1 ? ", " : "")
        .append(quote(key)).append(": ").append(quote(value)));
    return out.append('}').toString();
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
