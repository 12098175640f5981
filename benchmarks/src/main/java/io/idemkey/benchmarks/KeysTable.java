package io.idemkey.benchmarks;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;

/**
 * The demo's keys table ({@code "public"."idempotency_keys"}, the filter's default) as the
 * benchmarks see it from outside: its size on disk against its live rows, and a bulk fill with
 * completed keys.
 *
 * <p>Stateless; each call opens its own connection.
 */
final class KeysTable {

  /** The table's name, as statements on it contain it. */
  static final String NAME = "idempotency_keys";

  static final String TABLE = "\"public\".\"" + NAME + "\"";

  /**
   * The table's size at one instant.
   *
   * @param totalBytes {@code pg_total_relation_size}: heap, indexes, TOAST and their free space
   * @param heapBytes {@code pg_relation_size}: the heap's main fork
   * @param indexBytes {@code pg_indexes_size}
   * @param rows rows visible now, live or past their expiry but not yet purged
   * @param liveRows rows whose {@code expires_at} is still ahead
   * @param liveBytes the sum of {@code pg_column_size} of the live rows (their data, as stored)
   * @param deadTuples {@code pg_stat_user_tables.n_dead_tup} (an estimate, published late)
   * @param autovacuums {@code autovacuum_count} of the table so far
   * @param tokens the token sequence's last value: one per claim, so two readings give the keys
   *     claimed in between
   */
  record Size(
      long totalBytes, long heapBytes, long indexBytes, long rows, long liveRows, long liveBytes,
      long deadTuples, long autovacuums, long tokens) {}

  private KeysTable() {}

  /** Reads the table's size now (a full scan of the table: not for use under timing). */
  static Size size(DurablePostgres postgres) throws SQLException {
    try (Connection connection = postgres.connect();
        Statement statement = connection.createStatement();
        ResultSet row = statement.executeQuery(
            "SELECT pg_total_relation_size('" + TABLE + "'), pg_relation_size('" + TABLE + "'),"
                + " pg_indexes_size('" + TABLE + "'),"
                + " (SELECT count(*) FROM " + TABLE + "),"
                + " (SELECT count(*) FROM " + TABLE + " k WHERE k.expires_at > now()),"
                + " (SELECT coalesce(sum(pg_column_size(k.*)), 0) FROM " + TABLE + " k"
                + " WHERE k.expires_at > now()),"
                + " (SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = '" + TABLE
                + "'::regclass),"
                + " (SELECT autovacuum_count FROM pg_stat_user_tables WHERE relid = '" + TABLE
                + "'::regclass),"
                + " (SELECT last_value FROM \"public\".\"idempotency_keys_token_seq\")")) {
      row.next();
      return new Size(row.getLong(1), row.getLong(2), row.getLong(3), row.getLong(4),
          row.getLong(5), row.getLong(6), row.getLong(7), row.getLong(8), row.getLong(9));
    }
  }

  /** What a fill did. */
  record Fill(long rows, int bodyBytes, Duration took, boolean stoppedAtLimit) {}

  /**
   * Adds up to {@code rows} completed, live keys with random UUIDs, each a copy of one completed
   * key already in the table (its scope, fingerprint, response and expiry: the demo's small
   * payment response), in statements of a million rows, then vacuums and analyzes the table and
   * makes a checkpoint, so that the load after it does not pay for the fill. Stops adding after
   * the statement that passes {@code limit}.
   *
   * @throws IllegalStateException if the table has no completed key to copy
   */
  static Fill prefill(DurablePostgres postgres, long rows, Duration limit) throws SQLException {
    long started = System.nanoTime();
    long added = 0;
    int bodyBytes;
    try (Connection connection = postgres.connect()) {
      try (Statement statement = connection.createStatement()) {
        // The fill is set-up, not what is measured: its commits need not wait for the disk.
        statement.execute("SET synchronous_commit = off");
        try (ResultSet row = statement.executeQuery("SELECT octet_length(response_body) FROM "
            + TABLE + " WHERE state = 'COMPLETED' AND expires_at > now() + interval '1 hour'"
            + " ORDER BY created_at LIMIT 1")) {
          if (!row.next()) {
            throw new IllegalStateException("no completed key with an hour left to copy in "
                + TABLE);
          }
          bodyBytes = row.getInt(1);
        }
      }
      String insert = "INSERT INTO " + TABLE + " (scope, idem_key, fingerprint, state, token,"
          + " lease_expires_at, response_status, response_headers, response_body, body_stored,"
          + " created_at, expires_at)"
          + " SELECT t.scope, gen_random_uuid()::text, t.fingerprint, 'COMPLETED',"
          + " nextval('\"public\".\"idempotency_keys_token_seq\"'), NULL, t.response_status,"
          + " t.response_headers, t.response_body, t.body_stored, t.created_at, t.expires_at"
          + " FROM (SELECT * FROM " + TABLE + " WHERE state = 'COMPLETED'"
          + " AND expires_at > now() + interval '1 hour' ORDER BY created_at LIMIT 1) t,"
          + " generate_series(1, ?)";
      try (PreparedStatement statement = connection.prepareStatement(insert)) {
        while (added < rows && System.nanoTime() - started < limit.toNanos()) {
          long chunk = Math.min(1_000_000, rows - added);
          statement.setLong(1, chunk);
          added += statement.executeUpdate();
          System.out.printf("  prefill: %,d rows after %d s%n", added,
              Duration.ofNanos(System.nanoTime() - started).toSeconds());
        }
      }
      try (Statement statement = connection.createStatement()) {
        statement.execute("VACUUM (ANALYZE) " + TABLE);
        statement.execute("CHECKPOINT");
      }
    }
    return new Fill(added, bodyBytes, Duration.ofNanos(System.nanoTime() - started),
        added < rows);
  }
}
