package io.idemkey.benchmarks;

import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.io.IOException;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;

/**
 * An embedded PostgreSQL with PostgreSQL's own durable defaults, for benchmarks: every commit
 * waits for its WAL flush.
 *
 * <p>Zonky's builder starts the server with {@code -F} (fsync off) and sets {@code
 * synchronous_commit=off}, which would make every commit look far cheaper than on a real server;
 * both are set back to {@code on} here ({@code -c} options come after {@code -F} on the command
 * line, so they win). {@link #show(String)} reads what the server actually runs with.
 *
 * <p>With {@code statementStats}, {@code pg_stat_statements} is preloaded and created, if the
 * binaries ship it, tracking nested statements ({@code track=all}: those a function runs appear as
 * rows with {@code toplevel = false}) and planning time ({@code track_planning=on}); {@link
 * #hasStatementStats()} says whether that worked.
 *
 * <p>Thread-safe.
 */
final class DurablePostgres implements AutoCloseable {

  private final EmbeddedPostgres server;
  private final boolean statementStats;
  private boolean closed;

  private DurablePostgres(EmbeddedPostgres server, boolean statementStats) {
    this.server = server;
    this.statementStats = statementStats;
  }

  /**
   * Starts a new server in a temporary directory, removed again by {@link #close()}.
   *
   * @param statementStats whether to try to load {@code pg_stat_statements}
   * @throws IOException if the server does not start
   */
  static DurablePostgres start(boolean statementStats) throws IOException {
    if (statementStats) {
      try {
        DurablePostgres withStats = new DurablePostgres(builder()
            .setServerConfig("shared_preload_libraries", "pg_stat_statements")
            .setServerConfig("pg_stat_statements.track", "all")
            .setServerConfig("pg_stat_statements.track_planning", "on")
            .start(), true);
        try (Connection connection = withStats.connect();
            Statement statement = connection.createStatement()) {
          statement.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
          return withStats;
        } catch (SQLException e) {
          System.err.println("pg_stat_statements unavailable (" + e.getMessage()
              + "); counting commits from pg_stat_database only");
          return new DurablePostgres(withStats.server, false);
        }
      } catch (IOException | RuntimeException e) {
        System.err.println("PostgreSQL did not start with pg_stat_statements (" + e.getMessage()
            + "); counting commits from pg_stat_database only");
      }
    }
    return new DurablePostgres(builder().start(), false);
  }

  private static EmbeddedPostgres.Builder builder() {
    return EmbeddedPostgres.builder()
        .setServerConfig("fsync", "on")
        .setServerConfig("synchronous_commit", "on")
        // pg_stat_wal's wal_sync_time: how long the WAL flushes of commits take.
        .setServerConfig("track_wal_io_timing", "on");
  }

  String jdbcUrl() {
    return server.getJdbcUrl("postgres", "postgres");
  }

  String user() {
    return "postgres";
  }

  String password() {
    return "postgres";
  }

  boolean hasStatementStats() {
    return statementStats;
  }

  Connection connect() throws SQLException {
    return DriverManager.getConnection(jdbcUrl(), user(), password());
  }

  /** The value of a server setting as the server runs with it, e.g. {@code show("fsync")}. */
  String show(String setting) throws SQLException {
    if (!setting.matches("[a-z_.]+")) {
      throw new IllegalArgumentException("not a setting name: " + setting);
    }
    try (Connection connection = connect();
        Statement statement = connection.createStatement();
        ResultSet row = statement.executeQuery("SHOW " + setting)) {
      row.next();
      return row.getString(1);
    }
  }

  /**
   * Fails unless the server runs with {@code fsync} and {@code synchronous_commit} on.
   *
   * @throws IllegalStateException if either is off
   */
  void requireDurable() throws SQLException {
    String fsync = show("fsync");
    String synchronousCommit = show("synchronous_commit");
    if (!fsync.equals("on") || !synchronousCommit.equals("on")) {
      throw new IllegalStateException("embedded PostgreSQL is not durable: fsync=" + fsync
          + ", synchronous_commit=" + synchronousCommit);
    }
  }

  /** Stops the server and removes its data; a second call does nothing. */
  @Override
  public synchronized void close() throws IOException {
    if (!closed) {
      closed = true;
      server.close();
    }
  }
}
