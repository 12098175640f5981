package io.idemkey.store;

import io.idemkey.migrations.TableName;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.Executor;
import javax.sql.DataSource;

/**
 * The dedup store in PostgreSQL, shared by every application node that uses the same table.
 *
 * <p>Every operation is one statement, one round trip: the claim reads the key and inserts (or
 * takes over) only when the key is free, so a duplicate of a live key writes nothing; claims that
 * arrive together are written together, as one statement and one commit ({@link GroupCommit}),
 * and so are completions. Complete, release and renew are guarded by the fencing token. Tokens
 * come from one sequence, so they only grow, even across purges. An in-progress row lives as long
 * as its lease ({@code expires_at} is the lease's end), a completed one for the time to live.
 *
 * <p>Time is the database's: every statement reads {@code statement_timestamp()}, so nodes whose
 * clocks disagree still agree on leases and expiry (SPEC §5). A test clock, when given, only moves
 * that time forward by as much as the clock has advanced since the store was made.
 *
 * <p>Connections are used as any pool hands them out: with {@code autoCommit=false} each operation
 * commits itself, a serialization failure (REPEATABLE READ or stricter) is a lost race that is run
 * again, and every statement is bounded by a network timeout, so that a database that hangs fails
 * a call within that time (SPEC §8).
 *
 * <p>Thread-safe: it holds no mutable state; concurrency is the database's.
 */
final class PostgresStore implements IdempotencyStore {

  private static final System.Logger LOG = System.getLogger(PostgresStore.class.getName());
  private static final String IN_PROGRESS = "IN_PROGRESS";
  private static final String COMPLETED = "COMPLETED";
  private static final int MAX_ATTEMPTS = 5;
  /** Scopes longer than this are stored as a digest: no client-chosen value can fail an insert. */
  static final int MAX_STORED_SCOPE_LENGTH = 200;
  /** The default bound on each statement when none is given. */
  static final Duration DEFAULT_STATEMENT_TIMEOUT = Duration.ofSeconds(5);
  private static final String SERIALIZATION_FAILURE = "40001";
  private static final String DEADLOCK = "40P01";
  private static final String IN_FAILED_TRANSACTION = "25P02";
  private static final Executor DIRECT = Runnable::run;
  /** Response bytes sent in one batch of completions (a larger response goes alone). */
  private static final long MAX_COMPLETION_BATCH_BYTES = 1 << 20;

  private final DataSource dataSource;
  private final TableName table;
  private final Clock testClock;
  private final Instant testClockOrigin;
  private final long ttlMicros;
  private final long leaseMicros;
  private final int statementTimeoutMillis;
  private final int purgeBatchSize;
  private final AutoCloseable ownedPool;
  private final String claimSql;
  private final GroupCommit<Fingerprint, ClaimResult> claims =
      new GroupCommit<>(this::claimAll, fingerprint -> 1, GroupCommit.MAX_BATCH,
          new ClaimResult.InProgress(Duration.ofSeconds(1)));
  private final GroupCommit<Completion, Boolean> completions =
      new GroupCommit<>(this::completeAll, Completion::weight, MAX_COMPLETION_BATCH_BYTES,
          false); // (a completion's result is never null: it never runs again)
  private final boolean notifySettled;
  private final String settledChannel;
  private final SettledKeys settledKeys;
  private final String completeSql;
  private final String releaseSql;
  private final String renewSql;
  private final String purgeBatchSql;

  PostgresStore(
      DataSource dataSource,
      TableName table,
      Clock testClock,
      Duration ttl,
      Duration lease,
      int purgeBatchSize,
      AutoCloseable ownedPool) {
    this(dataSource, table, testClock, ttl, lease, DEFAULT_STATEMENT_TIMEOUT, purgeBatchSize,
        false, false, ownedPool);
  }

  /**
   * @param testClock null in production (the database's clock alone); in tests, a clock whose
   *     advance moves the store's time forward
   * @param notifySettled whether completions and releases notify the nodes that {@link #watch}
   * @param deferClaimFlush whether claims commit without waiting for the disk (see {@link
   *     StoreBuilder#deferClaimFlush})
   */
  PostgresStore(
      DataSource dataSource,
      TableName table,
      Clock testClock,
      Duration ttl,
      Duration lease,
      Duration statementTimeout,
      int purgeBatchSize,
      boolean notifySettled,
      boolean deferClaimFlush,
      AutoCloseable ownedPool) {
    this.dataSource = dataSource;
    this.notifySettled = notifySettled;
    this.settledChannel = "idemkey_" + HexFormat.of().formatHex(sha256(table.qualifiedTable()), 0, 8);
    this.settledKeys = new SettledKeys(dataSource, settledChannel, statementTimeout);
    this.ownedPool = ownedPool;
    this.table = table;
    this.testClock = testClock;
    this.testClockOrigin = testClock == null ? null : testClock.instant();
    this.ttlMicros = micros(ttl);
    this.leaseMicros = micros(lease);
    this.statementTimeoutMillis = (int) Math.min(Integer.MAX_VALUE, statementTimeout.toMillis());
    this.purgeBatchSize = purgeBatchSize;
    String t = table.qualifiedTable();
    String now = "(statement_timestamp() + ?::bigint * interval '1 microsecond')";
    // For each claim of the batch (arrays of scope, key, fingerprint, sorted by key so that
    // concurrent batches lock rows in one order): the row as the statement's snapshot saw it (e),
    // the insert or take-over that runs only when e is absent or expired (c), and both side by
    // side in one row whatever happened, in the arrays' order. A duplicate of a live key inserts
    // nothing: no row lock, no sequence value, no WAL.
    // With deferClaimFlush, the statement itself turns synchronous_commit off for its own
    // transaction (set_config, local): no transaction block, no round trip for a SET. The
    // handler's transaction commits later with synchronous_commit on, and WAL is flushed in
    // order, so whatever of the request becomes durable, its claim does too.
    this.claimSql =
        "WITH n AS (SELECT s.now, s.now + ?::bigint * interval '1 microsecond' AS lease_end"
            + "   FROM (SELECT " + now + " AS now) s"
            + (deferClaimFlush
                ? " CROSS JOIN (SELECT set_config('synchronous_commit', 'off', true)) f" : "")
            + "),"
            + " r AS (SELECT * FROM unnest(?::text[], ?::text[], ?::bytea[])"
            + "   WITH ORDINALITY AS r(scope, idem_key, fingerprint, ord)),"
            + " e AS (SELECT r.ord, k.state, k.token, k.fingerprint, k.expires_at,"
            + "   k.response_status, k.response_headers, k.response_body, k.body_stored"
            + "   FROM r JOIN " + t + " k ON k.scope = r.scope AND k.idem_key = r.idem_key),"
            + " c AS (INSERT INTO " + t + " AS k (scope, idem_key, fingerprint, state, token,"
            + "     lease_expires_at, created_at, expires_at)"
            + "   SELECT r.scope, r.idem_key, r.fingerprint, '" + IN_PROGRESS + "', nextval('"
            + table.qualifiedTokenSequence() + "'), n.lease_end, n.now, n.lease_end"
            + "   FROM r CROSS JOIN n"
            + "   WHERE NOT EXISTS (SELECT 1 FROM e WHERE e.ord = r.ord AND e.expires_at > n.now)"
            + "   ORDER BY r.ord"
            + "   ON CONFLICT (scope, idem_key) DO UPDATE SET"
            + "     fingerprint = EXCLUDED.fingerprint, state = EXCLUDED.state,"
            + "     token = EXCLUDED.token, lease_expires_at = EXCLUDED.lease_expires_at,"
            + "     response_status = NULL, response_headers = NULL, response_body = NULL,"
            + "     body_stored = NULL, created_at = EXCLUDED.created_at,"
            + "     expires_at = EXCLUDED.expires_at"
            + "   WHERE k.expires_at <= EXCLUDED.created_at"
            + "   RETURNING k.scope, k.idem_key, k.token)"
            + " SELECT c.token, e.state, e.token, e.fingerprint, e.expires_at, n.now,"
            + "   e.response_status,"
            + "   CASE WHEN c.token IS NULL THEN e.response_headers END,"
            + "   CASE WHEN c.token IS NULL THEN e.response_body END,"
            + "   e.body_stored"
            + " FROM r CROSS JOIN n"
            + " LEFT JOIN c ON c.scope = r.scope AND c.idem_key = r.idem_key"
            + " LEFT JOIN e ON e.ord = r.ord"
            + " ORDER BY r.ord";
    String byToken = " WHERE scope = ? AND idem_key = ? AND token = ?";
    // For each completion of the batch, in the arrays' order: whether it is recorded. Completing
    // a key that this token already completed answers true and changes nothing: a retry after a
    // commit whose reply was lost finds its own completion, not a stale token. (The EXISTS reads
    // the snapshot before the update, so it finds only an earlier one.)
    this.completeSql =
        "WITH r AS (SELECT * FROM unnest(?::text[], ?::text[], ?::bigint[], ?::int[], ?::bytea[],"
            + "   ?::bytea[], ?::boolean[]) WITH ORDINALITY"
            + "   AS r(scope, idem_key, token, status, headers, body, body_stored, ord)),"
            + " u AS (UPDATE " + t + " AS k SET state = '" + COMPLETED + "',"
            + "   lease_expires_at = NULL, response_status = r.status, response_headers = r.headers, response_body = r.body,"
            + "   body_stored = r.body_stored,"
            + "   expires_at = " + now + " + ?::bigint * interval '1 microsecond'"
            + "   FROM r WHERE k.scope = r.scope AND k.idem_key = r.idem_key AND k.token = r.token"
            + "   AND k.state = '" + IN_PROGRESS + "' RETURNING r.ord, k.scope, k.idem_key),"
            + " notified AS (SELECT pg_notify(?, u.scope || chr(10) || u.idem_key) FROM u"
            + "   WHERE ?::boolean)"
            + " SELECT u.ord IS NOT NULL OR EXISTS (SELECT 1 FROM " + t + " AS k"
            + "   WHERE k.scope = r.scope AND k.idem_key = r.idem_key AND k.token = r.token"
            + "   AND k.state = '" + COMPLETED + "'), (SELECT count(*) FROM notified)"
            + " FROM r LEFT JOIN u ON u.ord = r.ord ORDER BY r.ord";
    this.releaseSql =
        "WITH d AS (DELETE FROM " + t + byToken + " AND state = '" + IN_PROGRESS + "'"
            + " RETURNING 1)," + notify("d")
            + " SELECT (SELECT count(*) FROM d) + 0 * (SELECT count(*) FROM notified)";
    this.renewSql =
        "UPDATE " + t + " SET lease_expires_at = " + now + " + ?::bigint * interval '1 microsecond',"
            + " expires_at = " + now + " + ?::bigint * interval '1 microsecond'" + byToken
            + " AND state = '" + IN_PROGRESS + "'";
    this.purgeBatchSql =
        "DELETE FROM " + t + " WHERE ctid = ANY(ARRAY("
            + "SELECT ctid FROM " + t + " WHERE expires_at <= " + now
            + " LIMIT ? FOR UPDATE SKIP LOCKED))";
  }

  /**
   * A CTE that notifies the listeners of settled keys (channel, payload, and whether to: three
   * parameters) once per row of {@code changed}; delivered when the statement's transaction
   * commits.
   */
  private static String notify(String changed) {
    return " notified AS (SELECT pg_notify(?, ?) FROM " + changed + " WHERE ?::boolean)";
  }

  private int bindNotify(PreparedStatement statement, int first, IdempotencyKey key)
      throws SQLException {
    statement.setString(first, settledChannel);
    statement.setString(first + 1, settledPayload(key));
    statement.setBoolean(first + 2, notifySettled);
    return first + 3;
  }

  private static String settledPayload(IdempotencyKey key) {
    return storedScope(key.scope()) + "\n" + key.key();
  }

  @Override
  public Registration watch(IdempotencyKey key, Runnable onSettled) {
    return settledKeys.watch(settledPayload(key), onSettled);
  }

  @Override
  public ClaimResult claim(IdempotencyKey key, Fingerprint fingerprint) {
    return claims.submit(key, fingerprint);
  }

  /** Completions written per statement on average since the store was made. */
  double averageCompletionBatchSize() {
    return completions.averageBatchSize();
  }

  /** Claims written per statement on average since the store was made. */
  double averageClaimBatchSize() {
    return claims.averageBatchSize();
  }

  /**
   * Writes a batch of claims (sorted by key, one per key) as one statement. A null result is a
   * claim that lost a race it could not see (see {@link #classify}).
   */
  private List<ClaimResult> claimAll(List<GroupCommit.Pending<Fingerprint, ClaimResult>> batch) {
    return run("claim", connection -> claimAll(connection, batch));
  }

  private List<ClaimResult> claimAll(
      Connection connection, List<GroupCommit.Pending<Fingerprint, ClaimResult>> batch)
      throws SQLException {
    try (PreparedStatement statement = connection.prepareStatement(claimSql)) {
      statement.setLong(1, leaseMicros);
      statement.setLong(2, shiftMicros());
      String[] scopes = new String[batch.size()];
      String[] keys = new String[batch.size()];
      byte[][] fingerprints = new byte[batch.size()][];
      for (int i = 0; i < batch.size(); i++) {
        GroupCommit.Pending<Fingerprint, ClaimResult> pending = batch.get(i);
        scopes[i] = storedScope(pending.key.scope());
        keys[i] = pending.key.key();
        fingerprints[i] = pending.item.sha256();
      }
      statement.setArray(3, connection.createArrayOf("text", scopes));
      statement.setArray(4, connection.createArrayOf("text", keys));
      statement.setArray(5, connection.createArrayOf("bytea", fingerprints));
      List<ClaimResult> results = new ArrayList<>(batch.size());
      try (ResultSet rows = statement.executeQuery()) {
        for (GroupCommit.Pending<Fingerprint, ClaimResult> pending : batch) {
          rows.next();
          results.add(classify(rows, pending.item));
        }
      }
      return results;
    }
  }

  /**
   * Reads the one row of the claim statement. Returns null when the statement lost a race it
   * cannot see: the insert checks the latest committed row, but the joined row comes from the
   * statement's snapshot, which may predate a concurrent insert or take-over. Running the
   * statement again (with a new snapshot) resolves it.
   */
  private ClaimResult classify(ResultSet row, Fingerprint fingerprint) throws SQLException {
    long claimedToken = row.getLong(1);
    boolean claimed = !row.wasNull();
    String state = row.getString(2);
    boolean existed = state != null;
    long previousToken = row.getLong(3);
    if (claimed) {
      // An in-progress row that the claim replaced was a lease that ran out.
      return existed && IN_PROGRESS.equals(state) && previousToken < claimedToken
          ? new ClaimResult.TakenOver(claimedToken, previousToken)
          : new ClaimResult.Acquired(claimedToken);
    }
    if (!existed) {
      return null;
    }
    Duration remaining = Duration.between(instant(row, 6), instant(row, 5));
    if (remaining.isNegative() || remaining.isZero()) {
      return null;
    }
    if (!fingerprint.equals(new Fingerprint(row.getBytes(4)))) {
      return new ClaimResult.FingerprintMismatch();
    }
    if (IN_PROGRESS.equals(state)) {
      return new ClaimResult.InProgress(remaining);
    }
    StoredResponse response =
        new StoredResponse(
            row.getInt(7), HeaderCodec.decode(row.getBytes(8)), row.getBytes(9),
            row.getBoolean(10));
    return new ClaimResult.Completed(response, remaining);
  }

  @Override
  public boolean complete(IdempotencyKey key, long token, StoredResponse response) {
    return completions.submit(key, new Completion(token, response));
  }

  /** What a completion writes: the response, guarded by the token. */
  private record Completion(long token, StoredResponse response) {
    long weight() {
      return response.bodyLength() + 64L * response.headers().size();
    }
  }

  private List<Boolean> completeAll(List<GroupCommit.Pending<Completion, Boolean>> batch) {
    return run("complete", connection -> completeAll(connection, batch));
  }

  private List<Boolean> completeAll(
      Connection connection, List<GroupCommit.Pending<Completion, Boolean>> batch)
      throws SQLException {
    int n = batch.size();
    String[] scopes = new String[n];
    String[] keys = new String[n];
    Long[] tokens = new Long[n];
    Integer[] statuses = new Integer[n];
    byte[][] headers = new byte[n][];
    byte[][] bodies = new byte[n][];
    Boolean[] bodiesStored = new Boolean[n];
    for (int i = 0; i < n; i++) {
      GroupCommit.Pending<Completion, Boolean> pending = batch.get(i);
      StoredResponse response = pending.item.response();
      scopes[i] = storedScope(pending.key.scope());
      keys[i] = pending.key.key();
      tokens[i] = pending.item.token();
      statuses[i] = response.status();
      headers[i] = HeaderCodec.encode(response.headers());
      bodies[i] = response.bodyBytes();
      bodiesStored[i] = response.bodyStored();
    }
    try (PreparedStatement statement = connection.prepareStatement(completeSql)) {
      statement.setArray(1, connection.createArrayOf("text", scopes));
      statement.setArray(2, connection.createArrayOf("text", keys));
      statement.setArray(3, connection.createArrayOf("bigint", tokens));
      statement.setArray(4, connection.createArrayOf("int4", statuses));
      statement.setArray(5, connection.createArrayOf("bytea", headers));
      statement.setArray(6, connection.createArrayOf("bytea", bodies));
      statement.setArray(7, connection.createArrayOf("boolean", bodiesStored));
      statement.setLong(8, shiftMicros());
      statement.setLong(9, ttlMicros);
      statement.setString(10, settledChannel);
      statement.setBoolean(11, notifySettled);
      List<Boolean> recorded = new ArrayList<>(n);
      try (ResultSet rows = statement.executeQuery()) {
        while (rows.next()) {
          recorded.add(rows.getBoolean(1));
        }
      }
      if (recorded.size() != n) {
        throw new IllegalStateException(
            "complete answered " + recorded.size() + " rows of " + table + " for " + n + " keys");
      }
      return recorded;
    }
  }

  @Override
  public boolean release(IdempotencyKey key, long token) {
    return run("release", connection -> {
      try (PreparedStatement statement = connection.prepareStatement(releaseSql)) {
        bindKey(statement, 1, key, token);
        bindNotify(statement, 4, key);
        try (ResultSet row = statement.executeQuery()) {
          row.next();
          return checkedOne("release", row.getLong(1));
        }
      }
    });
  }

  @Override
  public boolean renew(IdempotencyKey key, long token) {
    return run("renew", connection -> {
      try (PreparedStatement statement = connection.prepareStatement(renewSql)) {
        long shift = shiftMicros();
        statement.setLong(1, shift);
        statement.setLong(2, leaseMicros);
        statement.setLong(3, shift);
        statement.setLong(4, leaseMicros);
        return updatedOne("renew", bindKey(statement, 5, key, token));
      }
    });
  }

  private PreparedStatement bindKey(
      PreparedStatement statement, int first, IdempotencyKey key, long token)
      throws SQLException {
    statement.setString(first, storedScope(key.scope()));
    statement.setString(first + 1, key.key());
    statement.setLong(first + 2, token);
    return statement;
  }

  /** Zero rows: the token is no longer current. More than one is a bug. */
  private boolean updatedOne(String operation, PreparedStatement statement) throws SQLException {
    return checkedOne(operation, statement.executeUpdate());
  }

  private boolean checkedOne(String operation, long rows) {
    if (rows > 1) {
      throw new IllegalStateException(
          operation + " changed " + rows + " rows of " + table + " for one key");
    }
    return rows == 1;
  }

  @Override
  public StoreTransaction beginTransaction(IdempotencyKey key, long token) {
    Connection connection;
    try {
      connection = dataSource.getConnection();
    } catch (SQLException e) {
      throw unavailable("begin", e);
    }
    try {
      return new Transaction(connection, key, token);
    } catch (SQLException e) {
      closeQuietly(connection);
      throw unavailable("begin", e);
    }
  }

  /**
   * The request's transaction: the application's writes, then the token-guarded completion, then
   * one commit. Not thread-safe: it belongs to the request.
   */
  private final class Transaction implements StoreTransaction {
    private final Connection connection;
    private final Connection forApplication;
    private final IdempotencyKey key;
    private final long token;
    private final boolean autoCommitBefore;
    private boolean closed;

    Transaction(Connection connection, IdempotencyKey key, long token) throws SQLException {
      this.connection = connection;
      this.key = key;
      this.token = token;
      this.autoCommitBefore = connection.getAutoCommit();
      connection.setAutoCommit(false);
      this.forApplication = RequestTransactions.borrowed(connection);
    }

    @Override
    public Connection connection() {
      return forApplication;
    }

    @Override
    public boolean commit(StoredResponse response) {
      try {
        int previousTimeout = boundNetworkTimeout(connection);
        try {
          List<GroupCommit.Pending<Completion, Boolean>> one =
              List.of(new GroupCommit.Pending<>(key, new Completion(token, response)));
          if (!completeAll(connection, one).get(0)) {
            connection.rollback();
            return false;
          }
          connection.commit();
          return true;
        } finally {
          restoreNetworkTimeout(connection, previousTimeout);
        }
      } catch (SQLException | RuntimeException e) {
        rollback();
        if (e instanceof SQLException sql && IN_FAILED_TRANSACTION.equals(sql.getSQLState())) {
          throw new TransactionAbortedException("the request's transaction on " + table
              + " was aborted by an earlier error in it: " + e.getMessage(), e);
        }
        throw e instanceof SQLException sql ? unavailable("commit", sql) : (RuntimeException) e;
      }
    }

    @Override
    public void rollback() {
      try {
        connection.rollback();
      } catch (SQLException e) {
        // The connection is broken: the database rolls the transaction back itself.
        LOG.log(System.Logger.Level.DEBUG, "rollback of a request's transaction failed", e);
      }
    }

    @Override
    public void close() {
      if (closed) {
        return;
      }
      closed = true;
      try {
        connection.rollback();
        connection.setAutoCommit(autoCommitBefore);
      } catch (SQLException e) {
        LOG.log(System.Logger.Level.DEBUG, "resetting a request's connection failed", e);
      }
      closeQuietly(connection);
    }
  }

  @Override
  public int purgeExpired() {
    String lockName = "idemkey.purge:" + table;
    return run("purge", connection -> {
      if (!advisoryLock(connection, "SELECT pg_try_advisory_lock(hashtext(?))", lockName)) {
        return 0;
      }
      boolean unlocked = false;
      try {
        int deleted = 0;
        try (PreparedStatement statement = connection.prepareStatement(purgeBatchSql)) {
          statement.setLong(1, shiftMicros());
          statement.setInt(2, purgeBatchSize);
          int batch;
          do {
            batch = statement.executeUpdate();
            if (!connection.getAutoCommit()) {
              connection.commit();
            }
            deleted += batch;
          } while (batch == purgeBatchSize);
        }
        unlocked = advisoryLock(connection, "SELECT pg_advisory_unlock(hashtext(?))", lockName);
        return deleted;
      } finally {
        if (!unlocked) {
          // A session lock outlives the call on a pooled connection: close the session, or no
          // node would purge again until the pool retired this connection.
          connection.abort(DIRECT);
        }
      }
    });
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
    LOG.log(System.Logger.Level.INFO, "idemkey store on {0}: claims {1}, completions {2}", table,
        claims, completions);
    settledKeys.close();
    if (ownedPool != null) {
      try {
        ownedPool.close();
      } catch (Exception e) {
        LOG.log(System.Logger.Level.WARNING, "closing the idemkey connection pool failed", e);
      }
    }
  }

  /** One operation on a pooled connection, as SPEC §8 and the class comment describe. */
  private interface Work<T> {
    T run(Connection connection) throws SQLException;
  }

  private <T> T run(String operation, Work<T> work) {
    for (int attempt = 1; ; attempt++) {
      try (Connection connection = dataSource.getConnection()) {
        boolean autoCommit = connection.getAutoCommit();
        int previousTimeout = boundNetworkTimeout(connection);
        try {
          T result = work.run(connection);
          if (!autoCommit) {
            connection.commit();
          }
          return result;
        } catch (SQLException | RuntimeException e) {
          if (!autoCommit && !connection.isClosed()) {
            connection.rollback();
          }
          throw e;
        } finally {
          restoreNetworkTimeout(connection, previousTimeout);
        }
      } catch (SQLException e) {
        boolean lostRace =
            SERIALIZATION_FAILURE.equals(e.getSQLState()) || DEADLOCK.equals(e.getSQLState());
        if (lostRace && attempt < MAX_ATTEMPTS) {
          continue;
        }
        throw unavailable(operation, e);
      }
    }
  }

  /** Sets the statement bound unless the connection has a shorter one; returns the old value. */
  private int boundNetworkTimeout(Connection connection) throws SQLException {
    int previous = connection.getNetworkTimeout();
    if (previous == 0 || previous > statementTimeoutMillis) {
      connection.setNetworkTimeout(DIRECT, statementTimeoutMillis);
    }
    return previous;
  }

  private void restoreNetworkTimeout(Connection connection, int previous) {
    try {
      if (!connection.isClosed() && connection.getNetworkTimeout() != previous) {
        connection.setNetworkTimeout(DIRECT, previous);
      }
    } catch (SQLException e) {
      // A broken connection: the pool discards it.
    }
  }

  private static void closeQuietly(Connection connection) {
    try {
      connection.close();
    } catch (SQLException e) {
      LOG.log(System.Logger.Level.DEBUG, "closing a connection failed", e);
    }
  }

  /** How far the test clock has moved since the store was made; 0 in production. */
  private long shiftMicros() {
    return testClock == null ? 0 : micros(Duration.between(testClockOrigin, testClock.instant()));
  }

  /** The scope as stored: itself, or a SHA-256 digest when it is too long for the key index. */
  static String storedScope(String scope) {
    // The filter's scopes all begin with a kind and ':', so none of them looks like this.
    return scope.length() <= MAX_STORED_SCOPE_LENGTH
        ? scope
        : "sha256~" + HexFormat.of().formatHex(sha256(scope));
  }

  private static byte[] sha256(String text) {
    try {
      return MessageDigest.getInstance("SHA-256").digest(text.getBytes(StandardCharsets.UTF_8));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("SHA-256 is required of every Java runtime", e);
    }
  }

  private StoreUnavailableException unavailable(String operation, SQLException e) {
    return new StoreUnavailableException(
        operation + " on " + table + " failed: " + e.getMessage(), e);
  }

  private static long micros(Duration duration) {
    return duration.getSeconds() * 1_000_000L + duration.getNano() / 1_000;
  }

  private static Instant instant(ResultSet row, int column) throws SQLException {
    OffsetDateTime value = row.getObject(column, OffsetDateTime.class);
    return value == null ? null : value.toInstant();
  }
}
