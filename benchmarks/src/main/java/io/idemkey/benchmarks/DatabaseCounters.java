package io.idemkey.benchmarks;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * What the database did, read at one instant, so that two readings give the work done between
 * them: commits of the current database ({@code pg_stat_database.xact_commit}), transactions that
 * wrote (transaction ids handed out), WAL bytes, and, when {@code pg_stat_statements} is loaded,
 * the calls and execution time of each statement.
 *
 * <p>{@code pg_stat_database} is updated by each backend at most once a second, and up to ten
 * seconds late once it is idle, so readings of commits must be taken after the load has been
 * quiet that long; the other figures are current at once. The harness's own reading queries
 * (which name {@code pg_stat_} or {@code pg_current_}) are left out of the statements; the one
 * commit each reading makes is counted in {@link #readings}.
 *
 * <p>The store's claim statement (the one whose text starts with {@link #CLAIM_PREFIX}) answers
 * one row per claim it carries, so its {@code rows} over its {@code calls} is the average number
 * of claims the store's claim batcher sent in one statement.
 *
 * @param commits xact_commit of the current database
 * @param nextTransactionId the next transaction id: the difference counts writing transactions
 * @param walBytes the WAL position in bytes
 * @param statements per statement (queryid and level), its text, calls and total time; empty
 *     without pg_stat_statements
 * @param readings how many readings this reader has taken, this one included
 */
record DatabaseCounters(
    long commits, long nextTransactionId, long walBytes, Map<String, StatementCount> statements,
    int readings) {

  /** How the store's claim statement ({@code PostgresStore}'s claimSql) begins. */
  static final String CLAIM_PREFIX = "WITH n AS (SELECT s.now";

  /** One statement's counters: its calls, the rows they answered, their execution time. */
  record StatementCount(String query, long calls, long rows, double totalMillis) {}

  /**
   * The work between two readings, per request, and the claim batches it held.
   *
   * @param claimBatch claims per claim statement (rows answered over calls of every statement
   *     starting with {@link #CLAIM_PREFIX}), not per request; null when no claim statement ran
   *     or without pg_stat_statements
   */
  record PerRequest(
      double commits, double writeTransactions, double walBytes, Double statements,
      Double claimBatch, List<StatementShare> top) {}

  /** One statement's share of the work, per request. */
  record StatementShare(String query, double calls, double millis) {}

  /**
   * Reads the counters now, in one transaction.
   *
   * @param previousReadings readings taken before this one by the same reader
   */
  static DatabaseCounters read(DurablePostgres postgres, int previousReadings)
      throws SQLException {
    try (Connection connection = postgres.connect()) {
      connection.setAutoCommit(false);
      long commits;
      long nextTransactionId;
      long walBytes;
      Map<String, StatementCount> statements = new HashMap<>();
      try (Statement statement = connection.createStatement()) {
        try (ResultSet row = statement.executeQuery(
            "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),"
                + " pg_snapshot_xmax(pg_current_snapshot())::text::bigint,"
                + " pg_current_wal_lsn() - '0/0'::pg_lsn")) {
          row.next();
          commits = row.getLong(1);
          nextTransactionId = row.getLong(2);
          walBytes = row.getLong(3);
        }
        if (postgres.hasStatementStats()) {
          try (ResultSet rows = statement.executeQuery(
              "SELECT queryid::text || '/' || toplevel::text || '/' || userid::text,"
                  + " regexp_replace(query, '\\s+', ' ', 'g'), calls, rows, total_exec_time"
                  + " FROM pg_stat_statements"
                  + " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
                  + " AND query NOT LIKE '%pg_stat_%' AND query NOT LIKE '%pg_current_%'")) {
            while (rows.next()) {
              statements.put(rows.getString(1),
                  new StatementCount(rows.getString(2), rows.getLong(3), rows.getLong(4),
                      rows.getDouble(5)));
            }
          }
        }
      }
      connection.commit();
      return new DatabaseCounters(
          commits, nextTransactionId, walBytes, Map.copyOf(statements), previousReadings + 1);
    }
  }

  /**
   * The work from {@code before} to this reading, divided by {@code requests}; the commits of
   * the readings in between are taken out.
   */
  PerRequest since(DatabaseCounters before, long requests, boolean statementStats) {
    double n = Math.max(1, requests);
    long ownCommits = readings - before.readings;
    List<StatementShare> shares = new ArrayList<>();
    long calls = 0;
    long claimCalls = 0;
    long claims = 0;
    for (Map.Entry<String, StatementCount> entry : statements.entrySet()) {
      StatementCount now = entry.getValue();
      StatementCount then = before.statements.get(entry.getKey());
      long deltaCalls = now.calls() - (then == null ? 0 : then.calls());
      double deltaMillis = now.totalMillis() - (then == null ? 0 : then.totalMillis());
      calls += Math.max(0, deltaCalls);
      if (now.query().startsWith(CLAIM_PREFIX) && deltaCalls > 0) {
        claimCalls += deltaCalls;
        claims += now.rows() - (then == null ? 0 : then.rows());
      }
      // Statements run once per thousand requests or less (connection set-up, the first read
      // of each replayed key) would only add rows of zeros.
      if (deltaCalls / n >= 0.001) {
        shares.add(new StatementShare(now.query(), deltaCalls / n, deltaMillis / n));
      }
    }
    shares.sort(Comparator.comparingDouble(StatementShare::calls).reversed()
        .thenComparing(Comparator.comparingDouble(StatementShare::millis).reversed()));
    return new PerRequest(
        (commits - before.commits - ownCommits) / n,
        (nextTransactionId - before.nextTransactionId) / n,
        (walBytes - before.walBytes) / n,
        statementStats ? calls / n : null,
        claimCalls == 0 ? null : (double) claims / claimCalls,
        List.copyOf(shares.subList(0, Math.min(8, shares.size()))));
  }
}
