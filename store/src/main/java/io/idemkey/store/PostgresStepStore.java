package io.idemkey.store;

import io.idemkey.migrations.TableName;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.Optional;

/**
 * Step results in PostgreSQL, in the table beside the keys ({@code <table>_steps}, created by
 * the V3 migration), shared by every node on the same table.
 *
 * <p>A result is saved by one statement in its own commit: an insert that selects the key's row
 * by scope, key, token and fingerprint, in progress, and locks it {@code FOR SHARE}. A take-over
 * updates that row, so it either waits for the save's commit (and the new holder then finds the
 * result) or commits first, and the save, seeing the new token, inserts nothing: a holder whose
 * lease was taken over cannot store. Releasing a key deletes its row but not its results; each
 * result expires a time to live after it was stored, and the purge deletes it then.
 *
 * <p>Time is the database's, moved forward by a test clock when one is given (as {@link
 * PostgresStore} does). Its calls run as the keys' do ({@link StoreConnections}): each on one
 * connection of the requests' pool, every wait and statement bounded (SPEC §8, §15). A request's
 * transaction reads through {@link #find(Connection, IdempotencyKey, Fingerprint, String)} on its
 * own connection and saves through {@link #saveOnNode} (PostgresStore.Transaction#steps).
 *
 * <p>Thread-safe: it holds no mutable state.
 */
final class PostgresStepStore implements StepStore {

  private final StoreConnections connections;
  private final TableName table;
  private final Clock testClock;
  private final Instant testClockOrigin;
  private final long ttlMicros;
  private final int purgeBatchSize;
  private final String findSql;
  private final String saveSql;
  private final String purgeSql;

  PostgresStepStore(
      StoreConnections connections,
      TableName table,
      Clock testClock,
      Duration ttl,
      int purgeBatchSize) {
    this.connections = connections;
    this.table = table;
    this.testClock = testClock;
    this.testClockOrigin = testClock == null ? null : testClock.instant();
    this.ttlMicros = micros(ttl);
    this.purgeBatchSize = purgeBatchSize;
    String steps = table.qualifiedStepsTable();
    String now = "(statement_timestamp() + ?::bigint * interval '1 microsecond')";
    this.findSql =
        "SELECT result FROM " + steps
            + " WHERE scope = ? AND idem_key = ? AND fingerprint = ? AND name = ?"
            + " AND expires_at > " + now;
    this.saveSql =
        "INSERT INTO " + steps
            + " (scope, idem_key, fingerprint, name, result, token, created_at, expires_at)"
            + " SELECT k.scope, k.idem_key, k.fingerprint, ?, ?, k.token, n.now,"
            + "   n.now + ?::bigint * interval '1 microsecond'"
            + " FROM " + table.qualifiedTable() + " k CROSS JOIN (SELECT " + now + " AS now) n"
            + " WHERE k.scope = ? AND k.idem_key = ? AND k.token = ? AND k.fingerprint = ?"
            + "   AND k.state = 'IN_PROGRESS'"
            + " FOR SHARE OF k"
            + " ON CONFLICT (scope, idem_key, fingerprint, name) DO UPDATE SET"
            + "   result = EXCLUDED.result, token = EXCLUDED.token,"
            + "   created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at";
    // One purger at a time across nodes: the lock is the statement's transaction's own.
    this.purgeSql =
        "DELETE FROM " + steps + " WHERE ctid = ANY(ARRAY("
            + "SELECT ctid FROM " + steps
            + " WHERE pg_try_advisory_xact_lock(hashtext(?)) AND expires_at <= " + now
            + " LIMIT ? FOR UPDATE SKIP LOCKED))";
  }

  @Override
  public Optional<byte[]> find(IdempotencyKey key, Fingerprint fingerprint, String name) {
    return connections.run("find step", connection -> find(connection, key, fingerprint, name));
  }

  /** Finds a step's result on {@code connection}, in whatever transaction it has open. */
  Optional<byte[]> find(
      Connection connection, IdempotencyKey key, Fingerprint fingerprint, String name)
      throws SQLException {
    try (PreparedStatement statement = connection.prepareStatement(findSql)) {
      statement.setString(1, PostgresStore.storedScope(key.scope()));
      statement.setString(2, key.key());
      statement.setBytes(3, fingerprint.sha256());
      statement.setString(4, name);
      statement.setLong(5, shiftMicros());
      try (ResultSet row = statement.executeQuery()) {
        return row.next() ? Optional.of(row.getBytes(1)) : Optional.<byte[]>empty();
      }
    }
  }

  @Override
  public boolean save(
      IdempotencyKey key, long token, Fingerprint fingerprint, String name, byte[] result) {
    return connections.run("save step", saving(key, token, fingerprint, name, result));
  }

  /**
   * Saves as {@link #save} does, on a connection of the node's own: for a request whose open
   * transaction holds its connection (its lock on the key's row admits this one's).
   */
  boolean saveOnNode(
      IdempotencyKey key, long token, Fingerprint fingerprint, String name, byte[] result) {
    return connections.runOnNode("save step", saving(key, token, fingerprint, name, result));
  }

  private StoreConnections.Work<Boolean> saving(
      IdempotencyKey key, long token, Fingerprint fingerprint, String name, byte[] result) {
    return connection -> {
      try (PreparedStatement statement = connection.prepareStatement(saveSql)) {
        statement.setString(1, name);
        statement.setBytes(2, result);
        statement.setLong(3, ttlMicros);
        statement.setLong(4, shiftMicros());
        statement.setString(5, PostgresStore.storedScope(key.scope()));
        statement.setString(6, key.key());
        statement.setLong(7, token);
        statement.setBytes(8, fingerprint.sha256());
        int rows = statement.executeUpdate();
        if (rows > 1) {
          throw new IllegalStateException(
              "saving a step changed " + rows + " rows of " + table + "_steps for one step");
        }
        return rows == 1;
      }
    };
  }

  @Override
  public int purgeExpired() {
    return connections.run("purge steps", connection -> {
      int deleted = 0;
      try (PreparedStatement statement = connection.prepareStatement(purgeSql)) {
        statement.setString(1, "idemkey.purge-steps:" + table);
        statement.setLong(2, shiftMicros());
        statement.setInt(3, purgeBatchSize);
        int batch;
        do {
          batch = statement.executeUpdate();
          if (!connection.getAutoCommit()) {
            connection.commit();
          }
          deleted += batch;
        } while (batch == purgeBatchSize);
      }
      return deleted;
    });
  }

  /** How far the test clock has moved since the store was made; 0 in production. */
  private long shiftMicros() {
    return testClock == null ? 0 : micros(Duration.between(testClockOrigin, testClock.instant()));
  }

  private static long micros(Duration duration) {
    return duration.getSeconds() * 1_000_000L + duration.getNano() / 1_000;
  }
}
