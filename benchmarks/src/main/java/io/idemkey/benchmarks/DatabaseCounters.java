package io.idemkey.benchmarks;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * What the database did, read at one instant, so that two readings give the work done between
 * them: commits of the current database ({@code pg_stat_database.xact_commit}), transactions that
 * wrote (transaction ids handed out), WAL bytes, and, when {@code pg_stat_statements} is loaded,
 * each statement's calls, plans, planning and execution time.
 *
 * <p>{@code pg_stat_database} is updated by each backend at most once a second, and up to ten
 * seconds late once it is idle, so readings of commits must be taken after the load has been
 * quiet that long; the other figures are current at once. The harness's own reading queries
 * (which name {@code pg_stat_} or {@code pg_current_}) are left out of the statements; the one
 * commit each reading makes is counted in {@link #readings}.
 *
 * <p>{@code pg_stat_statements} runs with {@code track=all}: a statement run inside another (by a
 * function, e.g. PL/pgSQL) is a row of its own with {@code toplevel = false}, and its time is
 * already part of the execution time of the top-level call that ran it. Only top-level rows are
 * added up here (statements per request, the keys' cost); the inner rows are kept apart, for
 * reading.
 *
 * @param commits xact_commit of the current database
 * @param nextTransactionId the next transaction id: the difference counts writing transactions
 * @param walBytes the WAL position in bytes
 * @param walSyncs {@code pg_stat_wal.wal_sync}: WAL flushes to disk (-1 where not available)
 * @param walSyncMillis {@code pg_stat_wal.wal_sync_time} ({@code track_wal_io_timing} on)
 * @param statements per statement (queryid, level and user), its counters; empty without
 *     pg_stat_statements
 * @param readings how many readings this reader has taken, this one included
 */
record DatabaseCounters(
    long commits, long nextTransactionId, long walBytes, long walSyncs, double walSyncMillis,
    Map<String, StatementCount> statements, int readings) {

  /**
   * What a statement is for, told from its normalized text ({@code pg_stat_statements} replaces
   * constants with {@code $n}). The keys' statements are those that name the keys table ({@link
   * KeysTable#NAME}), the purge apart, plus the settled-key notification; each of the store's
   * statements (PostgresStore) has a role of its own, any other on the table is {@link
   * #KEYS_OTHER}.
   */
  enum Role {
    CLAIM("the claim"),
    TAKE_OVER("the take-over of an expired key"),
    COMPLETE("the completion"),
    RELEASE("the release"),
    RENEW("the lease renewal"),
    NOTIFY("the settled-key notification"),
    READ("a key read"),
    KEYS_OTHER("other, on the keys table"),
    HANDLER("the handler's payment insert"),
    PURGE("the purge"),
    TRANSACTION("transaction control"),
    /** A statement run inside another (a function's), whichever it is. */
    INNER("inside another statement"),
    OTHER("other");

    /** The statements that keys cost, per key: what "the keys' statements" adds up. */
    static final Set<Role> KEYS =
        Set.of(CLAIM, TAKE_OVER, COMPLETE, RELEASE, RENEW, NOTIFY, READ, KEYS_OTHER);

    final String label;

    Role(String label) {
      this.label = label;
    }

    static Role of(String query) {
      String q = query.strip().toLowerCase(Locale.ROOT);
      if (q.startsWith("insert into payments")) {
        return HANDLER;
      } else if (q.contains("pg_notify(")) {
        return NOTIFY;
      } else if (q.matches("(begin|commit|rollback|start transaction)\\b.*")) {
        return TRANSACTION;
      } else if (!q.contains(KeysTable.NAME)) {
        return OTHER;
      } else if (q.matches("with n as .*insert into .*")) {
        return CLAIM;
      } else if (q.matches("update \\S+ as k set fingerprint = .*")) {
        return TAKE_OVER;
      } else if (q.matches("update \\S+ set state = .*")) {
        return COMPLETE;
      } else if (q.matches("update \\S+ set lease_expires_at = .*")) {
        return RENEW;
      } else if (q.matches("delete from \\S+ where ctid = any.*")) {
        return PURGE;
      } else if (q.matches("delete from \\S+ where scope = .*")) {
        return RELEASE;
      } else if (q.matches("select state from .*")) {
        return READ;
      }
      return KEYS_OTHER;
    }
  }

  /** One statement's counters. */
  record StatementCount(
      String query, boolean toplevel, long calls, long plans, long rows, double execMillis,
      double planMillis) {}

  /**
   * The work between two readings, per request.
   *
   * @param walSyncs WAL flushes to disk per request; null where pg_stat_wal has no such counts
   * @param walSyncMillis time in those flushes per request (the flushing process's time; the
   *     other commits waiting on the same flush wait as long, uncounted)
   * @param statements top-level statement calls per request; null without pg_stat_statements
   * @param statementShares per statement, top-level first: its share per request
   */
  record PerRequest(
      double commits, double writeTransactions, double walBytes, Double walSyncs,
      Double walSyncMillis, Double statements, List<StatementShare> statementShares) {

    /** Plan + execution ms per request of the top-level statements of {@code roles}. */
    double millis(Set<Role> roles) {
      return statementShares.stream()
          .filter(s -> s.toplevel() && roles.contains(s.role()))
          .mapToDouble(StatementShare::millis).sum();
    }

    /** Top-level calls per request of the statements of {@code roles}. */
    double calls(Set<Role> roles) {
      return statementShares.stream()
          .filter(s -> s.toplevel() && roles.contains(s.role()))
          .mapToDouble(StatementShare::calls).sum();
    }

    /**
     * The keys' statements ({@link Role#KEYS}, top-level) over the handler's insert, in plan +
     * execution time per request; null when either did not run.
     */
    Double keysPerHandler() {
      double handler = millis(Set.of(Role.HANDLER));
      double keys = millis(Role.KEYS);
      return handler > 0 && keys > 0 ? keys / handler : null;
    }
  }

  /**
   * One statement's share of the work, per request.
   *
   * @param calls calls per request
   * @param plansPerCall plans made per call (1: planned on every call)
   * @param planMillis planning ms per request
   * @param execMillis execution ms per request
   */
  record StatementShare(
      String query, Role role, boolean toplevel, double calls, double plansPerCall,
      double planMillis, double execMillis) {

    /** Plan + execution ms per request. */
    double millis() {
      return planMillis + execMillis;
    }

    /** Plan + execution ms per call. */
    double millisPerCall() {
      return calls == 0 ? 0 : millis() / calls;
    }
  }

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
      long walSyncs = -1;
      double walSyncMillis = 0;
      Map<String, StatementCount> statements = new HashMap<>();
      try (Statement statement = connection.createStatement()) {
        // PostgreSQL 14 to 17 count WAL flushes in pg_stat_wal; 18 moved them to pg_stat_io.
        int major = connection.getMetaData().getDatabaseMajorVersion();
        if (major >= 14 && major <= 17) {
          try (ResultSet row = statement.executeQuery(
              "SELECT wal_sync, wal_sync_time FROM pg_stat_wal")) {
            row.next();
            walSyncs = row.getLong(1);
            walSyncMillis = row.getDouble(2);
          }
        }
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
                  + " regexp_replace(query, '\\s+', ' ', 'g'), toplevel, calls, plans, rows,"
                  + " total_exec_time, total_plan_time"
                  + " FROM pg_stat_statements"
                  + " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
                  + " AND query NOT LIKE '%pg_stat_%' AND query NOT LIKE '%pg_current_%'")) {
            while (rows.next()) {
              statements.put(rows.getString(1),
                  new StatementCount(rows.getString(2), rows.getBoolean(3), rows.getLong(4),
                      rows.getLong(5), rows.getLong(6), rows.getDouble(7), rows.getDouble(8)));
            }
          }
        }
      }
      connection.commit();
      return new DatabaseCounters(
          commits, nextTransactionId, walBytes, walSyncs, walSyncMillis, Map.copyOf(statements),
          previousReadings + 1);
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
    long topLevelCalls = 0;
    for (Map.Entry<String, StatementCount> entry : statements.entrySet()) {
      StatementCount now = entry.getValue();
      StatementCount then = before.statements.get(entry.getKey());
      long calls = now.calls() - (then == null ? 0 : then.calls());
      long plans = now.plans() - (then == null ? 0 : then.plans());
      double execMillis = now.execMillis() - (then == null ? 0 : then.execMillis());
      double planMillis = now.planMillis() - (then == null ? 0 : then.planMillis());
      if (now.toplevel()) {
        topLevelCalls += Math.max(0, calls);
      }
      // Statements run once per thousand requests or less (connection set-up, the first read
      // of each replayed key) would only add rows of zeros.
      if (calls / n >= 0.001) {
        Role role = now.toplevel() ? Role.of(now.query()) : Role.INNER;
        shares.add(new StatementShare(now.query(), role, now.toplevel(),
            calls / n, (double) plans / calls, planMillis / n, execMillis / n));
      }
    }
    shares.sort(Comparator.comparing((StatementShare s) -> !s.toplevel())
        .thenComparing(Comparator.comparingDouble(StatementShare::calls).reversed())
        .thenComparing(Comparator.comparingDouble(StatementShare::millis).reversed()));
    return new PerRequest(
        (commits - before.commits - ownCommits) / n,
        (nextTransactionId - before.nextTransactionId) / n,
        (walBytes - before.walBytes) / n,
        walSyncs < 0 || before.walSyncs < 0 ? null : (walSyncs - before.walSyncs) / n,
        walSyncs < 0 || before.walSyncs < 0 ? null : (walSyncMillis - before.walSyncMillis) / n,
        statementStats ? topLevelCalls / n : null,
        List.copyOf(shares));
  }
}
