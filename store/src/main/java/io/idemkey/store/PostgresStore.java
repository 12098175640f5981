package io.idemkey.store;

import io.idemkey.migrations.TableName;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import javax.sql.DataSource;

/**
 * The dedup store in PostgreSQL, shared by every application node that uses the same table.
 *
 * <p>Every operation is one statement, one round trip: the claim is an {@code INSERT … ON CONFLICT
 * DO UPDATE} that only takes over an expired key or a lapsed lease, joined with the row as it was;
 * complete, release and renew are {@code UPDATE}s guarded by the fencing token. Tokens come from
 * one sequence, so they only grow, even across purges. Times come from the injected clock, not the
 * database's, so that tests can drive them.
 *
 * <p>Thread-safe: it holds no mutable state; concurrency is the database's.
 */
final class PostgresStore implements IdempotencyStore {

  private static final System.Logger LOG = System.getLogger(PostgresStore.class.getName());
  private static final String IN_PROGRESS = "IN_PROGRESS";
  private static final String COMPLETED = "COMPLETED";
  private static final int MAX_CLAIM_ATTEMPTS = 5;

  private final DataSource dataSource;
  private final TableName table;
  private final Clock clock;
  private final Duration ttl;
  private final Duration lease;
  private final int purgeBatchSize;
  private final AutoCloseable ownedPool;
  private final String claimSql;
  private final String completeSql;
  private final String releaseSql;
  private final String renewSql;
  private final String purgeBatchSql;

  PostgresStore(
      DataSource dataSource,
      TableName table,
      Clock clock,
      Duration ttl,
      Duration lease,
      int purgeBatchSize,
      AutoCloseable ownedPool) {
    this.dataSource = dataSource;
    this.ownedPool = ownedPool;
    this.table = table;
    this.clock = clock;
    this.ttl = ttl;
    this.lease = lease;
    this.purgeBatchSize = purgeBatchSize;
    String t = table.qualifiedTable();
    // One row comes back whatever happened: the claim (if this call won) beside the row as the
    // statement's snapshot saw it (if any). The snapshot row is also what a take-over replaced.
    this.claimSql =
        "WITH claimed AS ("
            + " INSERT INTO " + t + " AS k (scope, idem_key, fingerprint, state, token,"
            + "   lease_expires_at, created_at, expires_at)"
            + " VALUES (?, ?, ?, '" + IN_PROGRESS + "', nextval('" + table.qualifiedTokenSequence()
            + "'), ?, ?, ?)"
            + " ON CONFLICT (scope, idem_key) DO UPDATE SET"
            + "   fingerprint = EXCLUDED.fingerprint, state = EXCLUDED.state, token = EXCLUDED.token,"
            + "   lease_expires_at = EXCLUDED.lease_expires_at, response_status = NULL,"
            + "   response_headers = NULL, response_body = NULL, body_stored = NULL,"
            + "   created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at"
            + " WHERE k.expires_at <= EXCLUDED.created_at"
            + "   OR (k.state = '" + IN_PROGRESS + "' AND k.lease_expires_at <= EXCLUDED.created_at"
            + "       AND k.fingerprint = EXCLUDED.fingerprint)"
            + " RETURNING k.token)"
            + " SELECT c.token, e.state, e.token, e.fingerprint, e.lease_expires_at, e.expires_at,"
            + "   e.response_status,"
            + "   CASE WHEN c.token IS NULL THEN e.response_headers END,"
            + "   CASE WHEN c.token IS NULL THEN e.response_body END,"
            + "   e.body_stored"
            + " FROM (SELECT 1) AS one"
            + " LEFT JOIN claimed c ON true"
            + " LEFT JOIN " + t + " e ON e.scope = ? AND e.idem_key = ?";
    String held =
        " WHERE scope = ? AND idem_key = ? AND token = ? AND state = '" + IN_PROGRESS + "'"
            + " AND expires_at > ?";
    this.completeSql =
        "UPDATE " + t + " SET state = '" + COMPLETED + "', lease_expires_at = NULL,"
            + " response_status = ?, response_headers = ?, response_body = ?, body_stored = ?,"
            + " expires_at = ?" + held;
    this.releaseSql = "UPDATE " + t + " SET lease_expires_at = ?, expires_at = ?" + held;
    this.renewSql =
        "UPDATE " + t + " SET lease_expires_at = ?, expires_at = GREATEST(expires_at, ?)" + held;
    this.purgeBatchSql =
        "DELETE FROM " + t + " WHERE ctid = ANY(ARRAY("
            + "SELECT ctid FROM " + t + " WHERE expires_at <= ? LIMIT ? FOR UPDATE SKIP LOCKED))";
  }

  @Override
  public ClaimResult claim(IdempotencyKey key, Fingerprint fingerprint) {
    byte[] digest = fingerprint.sha256();
    for (int attempt = 1; ; attempt++) {
      Instant now = clock.instant();
      ClaimResult result;
      try (Connection connection = connect();
          PreparedStatement statement = connection.prepareStatement(claimSql)) {
        statement.setString(1, key.scope());
        statement.setString(2, key.key());
        statement.setBytes(3, digest);
        statement.setObject(4, timestamp(now.plus(lease)));
        statement.setObject(5, timestamp(now));
        statement.setObject(6, timestamp(now.plus(ttl)));
        statement.setString(7, key.scope());
        statement.setString(8, key.key());
        try (ResultSet row = statement.executeQuery()) {
          row.next();
          result = classify(row, fingerprint, now);
        }
      } catch (SQLException e) {
        throw unavailable("claim", e);
      }
      if (result != null) {
        return result;
      }
      if (attempt == MAX_CLAIM_ATTEMPTS) {
        // Never seen in practice; answering "in progress" makes the client retry shortly.
        LOG.log(System.Logger.Level.WARNING,
            "claim of a key in {0} saw a changing row {1} times in a row; answering in progress",
            table, MAX_CLAIM_ATTEMPTS);
        return new ClaimResult.InProgress(now.plusSeconds(1));
      }
    }
  }

  /**
   * Reads the one row of the claim statement. Returns null when the statement lost a race it
   * cannot see: ON CONFLICT checks the latest committed row, but the joined row comes from the
   * statement's snapshot, which may predate a concurrent insert or take-over. Running the
   * statement again (with a new snapshot) resolves it.
   */
  private ClaimResult classify(ResultSet row, Fingerprint fingerprint, Instant now)
      throws SQLException {
    long claimedToken = row.getLong(1);
    boolean claimed = !row.wasNull();
    String state = row.getString(2);
    boolean existed = state != null;
    long previousToken = row.getLong(3);
    if (claimed) {
      boolean lapsedLease =
          existed
              && IN_PROGRESS.equals(state)
              && instant(row, 6).isAfter(now)
              && previousToken < claimedToken;
      return lapsedLease
          ? new ClaimResult.TakenOver(claimedToken, previousToken)
          : new ClaimResult.Acquired(claimedToken);
    }
    if (!existed) {
      return null;
    }
    Instant expiresAt = instant(row, 6);
    if (!expiresAt.isAfter(now)) {
      return null;
    }
    if (!fingerprint.equals(new Fingerprint(row.getBytes(4)))) {
      return new ClaimResult.FingerprintMismatch();
    }
    if (COMPLETED.equals(state)) {
      StoredResponse response =
          new StoredResponse(
              row.getInt(7),
              HeaderCodec.decode(row.getBytes(8)),
              row.getBytes(9),
              row.getBoolean(10));
      return new ClaimResult.Completed(response, expiresAt);
    }
    Instant leaseExpiresAt = instant(row, 5);
    return leaseExpiresAt.isAfter(now) ? new ClaimResult.InProgress(leaseExpiresAt) : null;
  }

  @Override
  public boolean complete(IdempotencyKey key, long token, StoredResponse response) {
    Instant now = clock.instant();
    return updateHeld(
        "complete",
        completeSql,
        key,
        token,
        now,
        statement -> {
          statement.setInt(1, response.status());
          statement.setBytes(2, HeaderCodec.encode(response.headers()));
          statement.setBytes(3, response.bodyBytes());
          statement.setBoolean(4, response.bodyStored());
          statement.setObject(5, timestamp(now.plus(ttl)));
          return 6;
        });
  }

  @Override
  public boolean release(IdempotencyKey key, long token) {
    Instant now = clock.instant();
    return updateHeld(
        "release",
        releaseSql,
        key,
        token,
        now,
        statement -> {
          statement.setObject(1, timestamp(now));
          statement.setObject(2, timestamp(now));
          return 3;
        });
  }

  @Override
  public boolean renew(IdempotencyKey key, long token) {
    Instant now = clock.instant();
    OffsetDateTime leaseExpiresAt = timestamp(now.plus(lease));
    return updateHeld(
        "renew",
        renewSql,
        key,
        token,
        now,
        statement -> {
          statement.setObject(1, leaseExpiresAt);
          statement.setObject(2, leaseExpiresAt);
          return 3;
        });
  }

  /** Sets the statement's leading parameters and returns the index of the next one. */
  private interface Parameters {
    int set(PreparedStatement statement) throws SQLException;
  }

  private boolean updateHeld(
      String operation,
      String sql,
      IdempotencyKey key,
      long token,
      Instant now,
      Parameters parameters) {
    try (Connection connection = connect();
        PreparedStatement statement = connection.prepareStatement(sql)) {
      int next = parameters.set(statement);
      statement.setString(next, key.scope());
      statement.setString(next + 1, key.key());
      statement.setLong(next + 2, token);
      statement.setObject(next + 3, timestamp(now));
      int rows = statement.executeUpdate();
      if (rows > 1) {
        throw new IllegalStateException(
            operation + " updated " + rows + " rows of " + table + " for one key");
      }
      return rows == 1;
    } catch (SQLException e) {
      throw unavailable(operation, e);
    }
  }

  @Override
  public int purgeExpired() {
    String lockName = "idemkey.purge:" + table;
    try (Connection connection = connect()) {
      if (!advisoryLock(connection, "SELECT pg_try_advisory_lock(hashtext(?))", lockName)) {
        return 0;
      }
      try {
        OffsetDateTime now = timestamp(clock.instant());
        int deleted = 0;
        try (PreparedStatement statement = connection.prepareStatement(purgeBatchSql)) {
          statement.setObject(1, now);
          statement.setInt(2, purgeBatchSize);
          int batch;
          do {
            batch = statement.executeUpdate();
            deleted += batch;
          } while (batch == purgeBatchSize);
        }
        return deleted;
      } finally {
        advisoryLock(connection, "SELECT pg_advisory_unlock(hashtext(?))", lockName);
      }
    } catch (SQLException e) {
      throw unavailable("purge", e);
    }
  }

  private static boolean advisoryLock(Connection connection, String sql, String name)
      throws SQLException {
    try (PreparedStatement statement = connection.prepareStatement(sql)) {
      statement.setString(1, name);
      try (ResultSet row = statement.executeQuery()) {
        row.next();
        return row.getBoolean(1);
      }
    }
  }

  /** Closes the connection pool if this store opened it; a data source handed in stays open. */
  @Override
  public void close() {
    if (ownedPool != null) {
      try {
        ownedPool.close();
      } catch (Exception e) {
        LOG.log(System.Logger.Level.WARNING, "closing the idemkey connection pool failed", e);
      }
    }
  }

  private Connection connect() throws SQLException {
    return dataSource.getConnection();
  }

  private StoreUnavailableException unavailable(String operation, SQLException e) {
    return new StoreUnavailableException(
        operation + " on " + table + " failed: " + e.getMessage(), e);
  }

  private static OffsetDateTime timestamp(Instant instant) {
    return OffsetDateTime.ofInstant(instant, ZoneOffset.UTC);
  }

  private static Instant instant(ResultSet row, int column) throws SQLException {
    OffsetDateTime value = row.getObject(column, OffsetDateTime.class);
    return value == null ? null : value.toInstant();
  }
}
