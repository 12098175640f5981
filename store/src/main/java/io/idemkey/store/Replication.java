package io.idemkey.store;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.Objects;
import java.util.Set;

/**
 * How the keys' database is replicated, as a connection to it sees it (SPEC §14): whether the
 * server is itself a standby, how many standbys stream from it, and whether its commits wait for
 * one. With a synchronous standby, a failover to it loses no acknowledged key and no stored
 * response; with asynchronous ones, the last commits before a failover can be lost, and a retry
 * of a request they acknowledged runs it again.
 *
 * @param standby whether the server is a standby (in recovery): it refuses the store's writes
 * @param synchronousStandbyNames its {@code synchronous_standby_names}; empty: commits wait for no
 *     standby
 * @param synchronousCommit the session's {@code synchronous_commit}: {@code on}, {@code
 *     remote_apply} and {@code remote_write} wait for the synchronous standbys, {@code local} and
 *     {@code off} do not
 * @param standbys the physical standbys streaming from the server ({@code pg_stat_replication},
 *     without logical replication's senders)
 * @param synchronousStandbys those of them that commits wait for ({@code sync_state} {@code sync}
 *     or {@code quorum})
 * @param hiddenStandbys those whose state this user may not see (a role without {@code
 *     pg_read_all_stats} or {@code pg_monitor})
 */
public record Replication(
    boolean standby,
    String synchronousStandbyNames,
    String synchronousCommit,
    int standbys,
    int synchronousStandbys,
    int hiddenStandbys) {

  /** One statement, that any user may run, on a primary or a standby. */
  static final String QUERY =
      "SELECT pg_is_in_recovery(), current_setting('synchronous_standby_names'),"
          + " current_setting('synchronous_commit'), count(r.pid),"
          + " count(r.pid) FILTER (WHERE r.sync_state IN ('sync', 'quorum')),"
          + " count(r.pid) FILTER (WHERE r.sync_state IS NULL)"
          + " FROM (SELECT 1) one LEFT JOIN pg_stat_replication r"
          + " ON r.pid NOT IN (SELECT active_pid FROM pg_replication_slots"
          + "   WHERE slot_type = 'logical' AND active_pid IS NOT NULL)";

  private static final Set<String> WAITING_COMMITS = Set.of("on", "remote_apply", "remote_write");

  /** What the figures amount to. */
  public enum Mode {
    /** Commits wait for a standby: a failover to it loses nothing that was acknowledged. */
    SYNCHRONOUS,
    /** Standbys stream, but commits do not wait: a failover can lose the last commits. */
    ASYNCHRONOUS,
    /** No standby streams from the server. */
    NONE,
    /** The server is a standby: it refuses writes, so the store is unavailable. */
    STANDBY,
    /** Standbys stream, but this user may not see whether commits wait for them. */
    UNKNOWN
  }

  /**
   * @throws NullPointerException if a setting is null
   * @throws IllegalArgumentException if a count is negative or the counts disagree
   */
  public Replication {
    Objects.requireNonNull(synchronousStandbyNames, "synchronousStandbyNames");
    Objects.requireNonNull(synchronousCommit, "synchronousCommit");
    if (standbys < 0 || synchronousStandbys < 0 || hiddenStandbys < 0
        || synchronousStandbys + hiddenStandbys > standbys) {
      throw new IllegalArgumentException("standbys " + standbys + ", of them synchronous "
          + synchronousStandbys + " and hidden " + hiddenStandbys);
    }
  }

  /**
   * Reads the replication of the server that {@code connection} is connected to.
   *
   * @param timeout the longest the query may run (in whole seconds, from one to an hour)
   * @throws SQLException if the query fails or runs out of time
   */
  public static Replication of(Connection connection, Duration timeout) throws SQLException {
    try (Statement statement = connection.createStatement()) {
      statement.setQueryTimeout((int) Math.min(3600, Math.max(1, timeout.toSeconds())));
      try (ResultSet row = statement.executeQuery(QUERY)) {
        row.next();
        return new Replication(
            row.getBoolean(1), row.getString(2), row.getString(3), row.getInt(4), row.getInt(5),
            row.getInt(6));
      }
    }
  }

  /** What the figures amount to. */
  public Mode mode() {
    if (standby) {
      return Mode.STANDBY;
    }
    if (standbys == 0) {
      return Mode.NONE;
    }
    if (!WAITING_COMMITS.contains(synchronousCommit)) {
      return Mode.ASYNCHRONOUS;
    }
    if (synchronousStandbys > 0) {
      return Mode.SYNCHRONOUS;
    }
    return hiddenStandbys > 0 ? Mode.UNKNOWN : Mode.ASYNCHRONOUS;
  }
}
