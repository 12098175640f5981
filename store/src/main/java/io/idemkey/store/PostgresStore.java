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
import java.util.HexFormat;
import java.util.concurrent.Executor;
import javax.sql.DataSource;
import org.postgresql.util.PSQLException;
import org.postgresql.util.ServerErrorMessage;

/**
 * The dedup store in PostgreSQL, shared by every application node that uses the same table.
 *
 * <p>Every operation on a key is one short statement on one key, one round trip, on a connection
 * of its own (only taking over an expired key takes two). Each is a prepared statement with
 * scalar parameters, so that PostgreSQL settles on a generic plan and stops planning it; the
 * commits of concurrent calls share their WAL flushes in PostgreSQL itself, so no batching is
 * needed, and no request's data or wait can become another's. A duplicate of a live key writes
 * nothing. Complete, release and renew are guarded by the fencing token. Tokens come from one sequence, so they only grow, even across purges.
 * An in-progress row lives as long as its lease ({@code expires_at} is the lease's end), a
 * completed one for the time to live.
 *
 * <p>Time is the database's: every statement reads {@code statement_timestamp()}, so nodes whose
 * clocks disagree still agree on leases and expiry (SPEC §5). A test clock, when given, only moves
 * that time forward by as much as the clock has advanced since the store was made.
 *
 * <p>Connections ({@link StoreConnections}) are used as any pool hands them out: with {@code
 * autoCommit=false} each operation commits itself, a serialization failure (REPEATABLE READ or
 * stricter) is a lost race that is run again, and every wait and statement is bounded, so that a
 * database that hangs fails a call within that time (SPEC §8). A call takes one connection and
 * does everything on it: a completion or release that notifies other nodes (of a key that a
 * request waits for: {@link WaitMarks}) notifies on the same connection, after its commit (SPEC
 * §15).
 *
 * <p>Which connection each call runs on (SPEC §15): the claim and a completion outside a
 * transaction on one of the requests' pool; renewals and releases outside a transaction on the
 * node's own connections, which requests never take; a request's transaction ({@link
 * #beginTransaction}) on one of the requests' pool taken when the handler first asks for it, and
 * everything the request then needs (its step lookups, its completion, its release) on that one,
 * but for a step's result, saved in a commit of its own on the node's connections.
 *
 * <p>Row locks: no call waits for a lock its own request holds. A renewal, a take-over and the
 * purge skip a locked row instead of waiting for it: a renewal that finds its row locked finds it
 * held (its request's completion, transaction or step save is settling it), a take-over finds it
 * live. At READ COMMITTED (the default) a request's transaction touches its key's row only with
 * its completion, so renewals go on while it is open; a lease lost meanwhile is found by the
 * completion's token. At REPEATABLE READ or SERIALIZABLE a renewal after the transaction's
 * snapshot would make the completion fail, so the transaction holds its key's row {@code FOR
 * SHARE} from its first statement: nothing renews or takes the row while it is open (the lock
 * ends with the transaction, or with the session of a node cut off, when PostgreSQL notices).
 * A step's save locks the row {@code FOR SHARE} too, which that lock admits.
 *
 * <p>What one request carries cannot fail another's call: each call is its own statement, and a
 * scope that PostgreSQL could not store as text is stored as its digest ({@link #storedScope}).
 *
 * <p>With sequence keys (SPEC §13) the claim also reads the scope's floor, in the same statement:
 * a key at or below it without a row and without a step result of its request, or whose
 * completed row has expired, is {@link ClaimResult.KeyExpired} and inserts nothing. The floor is
 * raised by the purge, in the statement that deletes the rows, to the highest completed sequence
 * key it deleted per scope; so a claim's snapshot holds either the row or the raised floor, never
 * neither. An unsettled key is never refused (see purgeBatchSql).
 *
 * <p>Thread-safe: its only mutable state is whether transactions lock their key's row (a
 * volatile flag, set once); a {@link Transaction} belongs to one request; concurrency is the
 * database's.
 */
final class PostgresStore implements IdempotencyStore {

  private static final System.Logger LOG = System.getLogger(PostgresStore.class.getName());
  private static final String IN_PROGRESS = "IN_PROGRESS";
  private static final String COMPLETED = "COMPLETED";
  private static final int MAX_ATTEMPTS = 5;
  /** SQLSTATE classes of failures that are the database's, not what a transaction did. */
  private static final java.util.Set<String> STORE_FAILURE_CLASSES =
      java.util.Set.of("08", "53", "57", "58", "XX");
  /** Scopes longer than this are stored as a digest: no client-chosen value can fail an insert. */
  static final int MAX_STORED_SCOPE_LENGTH = 200;
  /** The default bound on each statement when none is given. */
  static final Duration DEFAULT_STATEMENT_TIMEOUT = Duration.ofSeconds(5);
  private static final String IN_FAILED_TRANSACTION = "25P02";
  private static final String CHECK_VIOLATION = "23514";
  private static final Executor DIRECT = Runnable::run;

  private final StoreConnections connections;
  private final PostgresStepStore steps;
  private final TableName table;
  private final Clock testClock;
  private final Instant testClockOrigin;
  private final long ttlMicros;
  private final long leaseMicros;
  private final int statementTimeoutMillis;
  private final int commitTimeoutMillis;
  private final int purgeBatchSize;
  private final AutoCloseable ownedPool;
  private final boolean deferClaimFlush;
  private final boolean sequenceKeys;
  private final String settledChannel;
  private final boolean notifySettled;
  private final SettledKeys settledKeys;
  private final WaitMarks waitMarks;
  private final boolean wakesWaiters;
  private final String claimSql;
  private final String takeOverSql;
  private final String completeSql;
  private final String releaseSql;
  private final String notifySql;
  private final String markSql;
  private final String renewSql;
  private final String readTokenSql;
  private final String lockSql;
  private final String floorSql;
  private final String advanceSql;
  /**
   * Whether request transactions lock their key's row: null until the first one has looked at
   * its isolation level (a pool gives all its connections the same).
   */
  private volatile Boolean lockKeyRows;
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
        false, false, false, null, true, ownedPool);
  }

  /**
   * @param testClock null in production (the database's clock alone); in tests, a clock whose
   *     advance moves the store's time forward
   * @param notifySettled whether completions and releases notify the nodes that {@link #watch}
   * @param deferClaimFlush whether claims commit without waiting for the disk (see {@link
   *     StoreBuilder#deferClaimFlush})
   * @param sequenceKeys whether keys are sequence numbers with a floor per scope (SPEC §13)
   * @param listenSource where the listener of settled keys takes its one connection: null for
   *     the node's own connections; a direct connection to PostgreSQL when the others go through a
   *     transaction pooler ({@link StoreBuilder#listenUrl})
   * @param wakesWaiters false when this node cannot hear settled keys (behind a transaction
   *     pooler without {@code listenSource}): for health checks
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
      boolean sequenceKeys,
      DataSource listenSource,
      boolean wakesWaiters,
      AutoCloseable ownedPool) {
    this.wakesWaiters = wakesWaiters;
    this.sequenceKeys = sequenceKeys;
    this.connections = new StoreConnections(table.toString(), dataSource, statementTimeout);
    this.steps = new PostgresStepStore(connections, table, testClock, ttl, purgeBatchSize);
    this.deferClaimFlush = deferClaimFlush;
    this.settledChannel =
        "idemkey_" + HexFormat.of().formatHex(sha256(table.qualifiedTable()), 0, 8);
    this.notifySettled = notifySettled;
    this.settledKeys = new SettledKeys(
        listenSource != null ? listenSource : connections.node(), settledChannel, statementTimeout);
    this.waitMarks = new WaitMarks(this::markWaited);
    this.ownedPool = ownedPool;
    this.table = table;
    this.testClock = testClock;
    this.testClockOrigin = testClock == null ? null : testClock.instant();
    this.ttlMicros = micros(ttl);
    this.leaseMicros = micros(lease);
    this.statementTimeoutMillis = (int) Math.min(Integer.MAX_VALUE, statementTimeout.toMillis());
    // A commit may wait for a slow disk or a synchronous standby: it is cut only when the lease it
    // guards would have run out anyway, and an answer lost even then is read back (Transaction).
    this.commitTimeoutMillis =
        (int) Math.min(Integer.MAX_VALUE, Math.max(statementTimeoutMillis, lease.toMillis()));
    this.purgeBatchSize = purgeBatchSize;
    String t = table.qualifiedTable();
    String now = "(statement_timestamp() + ?::bigint * interval '1 microsecond')";
    String byToken = " WHERE scope = ? AND idem_key = ? AND token = ?";
    // "now" and the lease's end, as one row n (two parameters: lease, shift). With
    // deferClaimFlush, the claim turns synchronous_commit off for its own transaction
    // (set_config, local): no round trip for a SET. The request's transaction commits later with
    // synchronous_commit on, and WAL is flushed in order, so whatever of the request becomes
    // durable, its claim does too.
    String leaseTimes =
        "(SELECT s.now, s.now + ?::bigint * interval '1 microsecond' AS lease_end"
            + " FROM (SELECT " + now + " AS now) s) n";
    String times =
        deferClaimFlush
            ? leaseTimes.replace(") s)",
                ") s CROSS JOIN (SELECT set_config('synchronous_commit', 'off', true)) f)")
            : leaseTimes;
    // The claim: the key's row as the statement found it (found), and an insert that runs only
    // when there was none. A live duplicate reads one row and writes nothing: no lock, no
    // sequence value, no WAL. An expired row is taken over by a second, token-guarded statement
    // (takeOverSql). A race lost in between (a concurrent insert, take-over or release) answers
    // nothing from either statement, and the claim looks again (see claimOnce). With sequence
    // keys, spent is the scope's floor when the key is at or below it and this request has no
    // step result stored (four more parameters: scope, number, key, fingerprint; the steps are
    // looked up only when the floor is that high), and then nothing is inserted: see
    // purgeBatchSql for why the steps count.
    this.claimSql =
        "WITH n AS (SELECT * FROM " + times + "),"
            + " found AS (SELECT state, token, fingerprint, expires_at, response_status,"
            + "   response_headers, response_body, body_stored FROM " + t
            + "   WHERE scope = ? AND idem_key = ?),"
            + (sequenceKeys
                ? " spent AS (SELECT f.floor FROM " + table.qualifiedFloorsTable() + " f"
                    + "   WHERE f.scope = ? AND f.floor >= ?::bigint"
                    + "   AND NOT EXISTS (SELECT 1 FROM " + table.qualifiedStepsTable() + " s"
                    + "     WHERE s.scope = f.scope AND s.idem_key = ? AND s.fingerprint = ?"
                    + "     AND s.expires_at > (SELECT now FROM n))),"
                : "")
            + " inserted AS (INSERT INTO " + t + " (scope, idem_key, fingerprint, state, token,"
            + "     lease_expires_at, created_at, expires_at)"
            + "   SELECT ?, ?, ?, '" + IN_PROGRESS + "', nextval('" + table.qualifiedTokenSequence()
            + "'), n.lease_end, n.now, n.lease_end FROM n WHERE NOT EXISTS (SELECT 1 FROM found)"
            + (sequenceKeys ? " AND NOT EXISTS (SELECT 1 FROM spent)" : "")
            + "   ON CONFLICT (scope, idem_key) DO NOTHING RETURNING token)"
            + " SELECT (SELECT token FROM inserted) AS claimed,"
            + (sequenceKeys ? " EXISTS (SELECT 1 FROM spent) AS spent," : "")
            + " n.now, found.* FROM n LEFT JOIN found ON true";
    // Guarded by the token seen and by the expiry: a lease renewed or a key completed since the
    // claim read it is never taken. A row locked by its holder's open transaction is skipped, not
    // waited for: it is live (see the class comment).
    this.takeOverSql =
        "UPDATE " + t + " AS k SET fingerprint = ?, state = '" + IN_PROGRESS + "',"
            + " token = nextval('" + table.qualifiedTokenSequence() + "'),"
            + " lease_expires_at = n.lease_end, response_status = NULL, response_headers = NULL,"
            + " response_body = NULL, body_stored = NULL, created_at = n.now,"
            + " expires_at = n.lease_end"
            + " FROM " + times
            + " WHERE k.ctid = (SELECT ctid FROM " + t + byToken + " AND expires_at <= " + now
            + "   FOR UPDATE SKIP LOCKED)"
            + " RETURNING k.token";
    // Whether the completion recorded the response (1 or 0).
    this.completeSql =
        "UPDATE " + t + " SET state = '" + COMPLETED + "', lease_expires_at = NULL,"
            + " response_status = ?, response_headers = ?, response_body = ?, body_stored = ?,"
            + " expires_at = " + now + " + ?::bigint * interval '1 microsecond'" + byToken
            + " AND state = '" + IN_PROGRESS + "' RETURNING waited";
    // With sequence keys a released key is not deleted: its lease is ended, and the row kept as a
    // lapsed one (see the purge), so that its retry runs however late within a ttl, even when the
    // floor has risen past it (SPEC §13).
    this.releaseSql =
        sequenceKeys
            ? "UPDATE " + t + " SET lease_expires_at = n.now, expires_at = n.now"
                + " FROM (SELECT " + now + " AS now) n" + byToken + " AND state = '" + IN_PROGRESS
                + "' RETURNING waited"
            : "DELETE FROM " + t + byToken + " AND state = '" + IN_PROGRESS + "' RETURNING waited";
    // Sent after the change committed, in a transaction of its own that does not wait for the
    // disk: PostgreSQL lets one notifying transaction commit at a time, so a notification inside
    // a durable commit would make every completion wait for the previous one's flush.
    // Sent only for a key that a request waits for (its row marked: markSql).
    this.notifySql = "SELECT pg_notify(?, ?), set_config('synchronous_commit', 'off', true)";
    // Whether the key is still held: renewed, or in progress with this token but locked (its
    // request's transaction or step save holds it, and is settling it): never waited for.
    String held = byToken + " AND state = '" + IN_PROGRESS + "'";
    this.renewSql =
        "WITH target AS (SELECT ctid FROM " + t + held + " FOR NO KEY UPDATE SKIP LOCKED),"
            + " renewed AS (UPDATE " + t + " AS k SET lease_expires_at = n.lease_end,"
            + "   expires_at = n.lease_end FROM " + leaseTimes
            + "   WHERE k.ctid IN (SELECT ctid FROM target) RETURNING 1)"
            + " SELECT EXISTS (SELECT 1 FROM renewed) OR EXISTS (SELECT 1 FROM " + t + held + ")";
    // The first statement of a request's transaction above READ COMMITTED: it holds the key's
    // row while the transaction is open (see the class comment).
    this.lockSql = "SELECT 1 FROM " + t + held + " FOR SHARE";
    // A waiter's mark (WaitMarks): whether it marked the in-progress row, and whether one is
    // there. A locked row is skipped, not waited for (its holder may keep it for a while).
    String inProgress = " WHERE scope = ? AND idem_key = ? AND state = '" + IN_PROGRESS + "'";
    this.markSql =
        "WITH target AS (SELECT ctid FROM " + t + inProgress + " FOR NO KEY UPDATE SKIP LOCKED),"
            + " marked AS (UPDATE " + t + " AS k SET waited = true"
            + "   WHERE k.ctid IN (SELECT ctid FROM target) RETURNING 1)"
            + " SELECT EXISTS (SELECT 1 FROM marked), EXISTS (SELECT 1 FROM " + t + inProgress + ")";
    this.readTokenSql = "SELECT state FROM " + t + byToken;
    // Keys taken in order (beginInOrder): the scope's floor, and its rise to the last key run if
    // it is below the first. The rise locks the floor's row until the commit: a second
    // transaction running the same keys waits there, then finds the floor raised and fails.
    this.floorSql = "SELECT floor FROM " + table.qualifiedFloorsTable() + " WHERE scope = ?";
    // A floor that has reached the key is set to -1, which its CHECK refuses: the statement
    // fails, so that a COMMIT sent in the same round trip does not run (see advance).
    this.advanceSql =
        "INSERT INTO " + table.qualifiedFloorsTable() + " AS f (scope, floor) VALUES (?, ?)"
            + " ON CONFLICT (scope) DO UPDATE SET floor ="
            + " CASE WHEN f.floor < ?::bigint THEN excluded.floor ELSE -1 END";
    // One purger at a time across nodes: the batch's transaction-level advisory lock (see
    // purgeExpired); the lock's name is the first parameter of both forms.
    String purgeLock = " CROSS JOIN (SELECT pg_try_advisory_xact_lock(hashtext(?)) AS locked) l";
    // Candidates by creation, on the index that no update touches (V6): a row expired now was
    // created at least a ttl ago (a completed one expires a ttl after its completion), so the
    // index bounds the scan, and the expiry decides. A lapsed in-progress row is deleted a ttl
    // after its creation; until then a claim takes it over.
    String candidates =
        " k" + purgeLock + " CROSS JOIN (SELECT " + now + " AS now) n WHERE l.locked"
            + " AND k.created_at <= n.now - " + ttlMicros + " * interval '1 microsecond'"
            + " AND k.expires_at <= n.now";
    String purgeBatch =
        "DELETE FROM " + t + " WHERE ctid = ANY(ARRAY("
            + "SELECT k.ctid FROM " + t + candidates + " LIMIT ? FOR UPDATE OF k SKIP LOCKED))";
    // With sequence keys, the floors rise in the statement that deletes the rows (see the class
    // comment), each to the highest completed key deleted in its scope. Keys that are not
    // sequence numbers (rows from before the switch) are left out; a 19-digit key is compared as
    // text, in the C collation, so that none past a bigint is cast.
    //
    // Invariant (SPEC §13): the floor never passes a key that is still unsettled, as claims read
    // it. A claim refuses a key at or below the floor only when the key has no row and its
    // request no step result (claimSql's spent), and an unsettled key keeps one or the other:
    // - in flight: its row, whose lease has not run out, is never purged;
    // - its lease lapsed (its node died): its in-progress row is kept, below, until a ttl after
    //   the lease ran out, past every step result its runs stored (each lives a ttl from when it
    //   was stored, while the key was held), and its retry takes it over;
    // - released (a 5xx, an exception, a rollback): the release kept its row as a lapsed lease
    //   (releaseSql), kept as above: its retry runs and reuses its step results, and a call that
    //   failed without a stored result (a processor that timed out) is made again with the same
    //   derived key, which that service deduplicates.
    // So the floor rises in number past such a key but does not refuse it until nothing of it is
    // left to resume; then it counts as used, as a completed key does. This costs the purge
    // nothing per scope (no search for the lowest unsettled key) and the claim one primary-key
    // probe of the steps, made only for a key at or below its floor.
    this.purgeBatchSql =
        sequenceKeys
            ? "WITH purged AS (DELETE FROM " + t + " WHERE ctid = ANY(ARRAY("
                + "SELECT k.ctid FROM " + t + candidates + " AND (k.state = '" + COMPLETED + "'"
                + "   OR k.expires_at <= n.now - " + ttlMicros + " * interval '1 microsecond')"
                + " LIMIT ? FOR UPDATE OF k SKIP LOCKED))"
                + " RETURNING scope, idem_key, state),"
                + " raised AS (INSERT INTO " + table.qualifiedFloorsTable() + " AS f (scope, floor)"
                + "   SELECT scope, max(idem_key::bigint) FROM purged"
                + "   WHERE state = '" + COMPLETED + "' AND idem_key ~ '^(0|[1-9][0-9]{0,18})$'"
                + "     AND (length(idem_key) < 19"
                + "       OR idem_key COLLATE \"C\" <= '" + Long.MAX_VALUE + "')"
                + "   GROUP BY scope"
                + "   ON CONFLICT (scope) DO UPDATE SET floor = greatest(f.floor, excluded.floor))"
                + " SELECT count(*) FROM purged"
            : purgeBatch;
  }

  /**
   * Tells the nodes that {@link #watch} that {@code key} was settled, when this store is to and a
   * request waits for it ({@code settled} is {@link Settled#WAITED}), on {@code connection}, whose
   * change is committed: in a transaction of its own, committed here. A notification that fails
   * is only logged: the waiters look again when the lease would end.
   */
  private void notifySettled(Connection connection, IdempotencyKey key, Settled settled) {
    if (!notifySettled || settled != Settled.WAITED) {
      return;
    }
    try {
      try (PreparedStatement statement = connection.prepareStatement(notifySql)) {
        statement.setString(1, settledChannel);
        statement.setString(2, settledPayload(key));
        statement.executeQuery().close();
      }
      commit(connection);
    } catch (SQLException e) {
      try {
        if (!connection.getAutoCommit()) {
          connection.rollback(); // the change before is committed: only the notification goes
        }
      } catch (SQLException ignored) {
        // a broken connection: its pool discards it
      }
      LOG.log(System.Logger.Level.WARNING,
          "telling other nodes that a key settled failed; their waiters look again later: {0}",
          e.getMessage());
    }
  }

  /** Commits what {@code connection} did, unless it commits each statement itself. */
  private static void commit(Connection connection) throws SQLException {
    if (!connection.getAutoCommit()) {
      connection.commit();
    }
  }

  private static String settledPayload(IdempotencyKey key) {
    return storedScope(key.scope()) + "\n" + key.key();
  }

  /** The channel on which settled keys are told (SettledKeys): for tests. */
  String settledChannel() {
    return settledChannel;
  }

  /** How many marks of waited keys were tried again (WaitMarks): for tests. */
  long waitMarksRetried() {
    return waitMarks.retried();
  }

  @Override
  public boolean knownDown() {
    return connections.down();
  }

  @Override
  public boolean wakesWaiters() {
    return wakesWaiters;
  }

  @Override
  public int requestConnections() {
    return connections.requestConnections();
  }

  @Override
  public Registration watch(IdempotencyKey key, Runnable onSettled) {
    Registration heard = settledKeys.watch(settledPayload(key), onSettled);
    if (!notifySettled) {
      return heard;
    }
    Registration marked = waitMarks.mark(key, onSettled);
    return () -> {
      marked.close();
      heard.close();
    };
  }

  /** Marks the key's in-progress row as waited for, on the node's connections (WaitMarks). */
  private WaitMarks.Mark markWaited(IdempotencyKey key) {
    return connections.runOnNode("mark a waited key", connection -> {
      try (PreparedStatement statement = connection.prepareStatement(markSql)) {
        bindKey(statement, bindKey(statement, 1, key), key);
        boolean marked;
        boolean held;
        try (ResultSet row = statement.executeQuery()) {
          row.next();
          marked = row.getBoolean(1);
          held = row.getBoolean(2);
        }
        commit(connection);
        return marked ? WaitMarks.Mark.MARKED
            : held ? WaitMarks.Mark.LOCKED : WaitMarks.Mark.NOT_HELD;
      }
    });
  }

  /**
   * Claims the key: one statement for a new key or a live one, two to take over an expired one.
   * The wait for a connection and the statements together take about the statement bound: they
   * get what the wait left of it (at least a quarter of a second), so a request
   * facing a database that hangs is answered within about that bound however many requests queue
   * for connections (SPEC §8).
   *
   * @throws IllegalArgumentException with sequence keys, if the key is not a sequence number
   */
  @Override
  public ClaimResult claim(IdempotencyKey key, Fingerprint fingerprint) {
    long number = sequenceKeys ? key.requireSequenceNumber() : -1;
    long deadline = System.nanoTime() + statementTimeoutMillis * 1_000_000L;
    return connections.run("claim", deadline, connection -> {
      for (int attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
        ClaimResult result = claimOnce(connection, key, number, fingerprint);
        if (result != null) {
          return result;
        }
      }
      // Five races lost in a row (a key released and claimed again over and over): the client
      // is told to retry.
      return new ClaimResult.InProgress(Duration.ofSeconds(1));
    });
  }

  /** One look at the key (see claimSql); null when a race was lost and it must look again. */
  private ClaimResult claimOnce(
      Connection connection, IdempotencyKey key, long number, Fingerprint fingerprint)
      throws SQLException {
    try (PreparedStatement statement = connection.prepareStatement(claimSql)) {
      int next = bindTimes(statement, 1);
      next = bindKey(statement, next, key);
      if (sequenceKeys) {
        statement.setString(next++, storedScope(key.scope()));
        statement.setLong(next++, number);
        statement.setString(next++, key.key());
        statement.setBytes(next++, fingerprint.sha256());
      }
      next = bindKey(statement, next, key);
      statement.setBytes(next, fingerprint.sha256());
      try (ResultSet row = statement.executeQuery()) {
        row.next();
        long claimed = row.getLong("claimed");
        if (!row.wasNull()) {
          return new ClaimResult.Acquired(claimed);
        }
        String state = row.getString("state");
        if (state == null) {
          if (sequenceKeys && row.getBoolean("spent")) {
            return new ClaimResult.KeyExpired();
          }
          return null; // another claim inserted the key after this one looked
        }
        Duration remaining = Duration.between(instant(row, "now"), instant(row, "expires_at"));
        if (remaining.isNegative() || remaining.isZero()) {
          if (sequenceKeys && COMPLETED.equals(state)) {
            return new ClaimResult.KeyExpired(); // its purge will raise the floor to it
          }
          return takeOver(connection, key, fingerprint, state, row.getLong("token"));
        }
        if (!fingerprint.equals(new Fingerprint(row.getBytes("fingerprint")))) {
          return new ClaimResult.FingerprintMismatch();
        }
        if (IN_PROGRESS.equals(state)) {
          return new ClaimResult.InProgress(remaining);
        }
        StoredResponse response =
            new StoredResponse(
                row.getInt("response_status"),
                HeaderCodec.decode(row.getBytes("response_headers")),
                row.getBytes("response_body"), row.getBoolean("body_stored"));
        return new ClaimResult.Completed(response, remaining);
      }
    }
  }

  /** Takes over an expired row; null when it changed since it was read. */
  private ClaimResult takeOver(
      Connection connection, IdempotencyKey key, Fingerprint fingerprint, String state,
      long previousToken) throws SQLException {
    try (PreparedStatement statement = connection.prepareStatement(takeOverSql)) {
      statement.setBytes(1, fingerprint.sha256());
      int next = bindTimes(statement, 2);
      next = bindKey(statement, next, key);
      statement.setLong(next++, previousToken);
      statement.setLong(next, shiftMicros());
      try (ResultSet row = statement.executeQuery()) {
        if (!row.next()) {
          return null;
        }
        long token = row.getLong(1);
        // An in-progress row taken over was a lease that ran out. (Tokens come from one sequence
        // and only grow; a row whose token was set by other means is simply acquired.)
        return IN_PROGRESS.equals(state) && previousToken < token
            ? new ClaimResult.TakenOver(token, previousToken)
            : new ClaimResult.Acquired(token);
      }
    }
  }

  private int bindTimes(PreparedStatement statement, int first) throws SQLException {
    statement.setLong(first, leaseMicros);
    statement.setLong(first + 1, shiftMicros());
    return first + 2;
  }

  @Override
  public boolean complete(IdempotencyKey key, long token, StoredResponse response) {
    // Encoded here, on the caller's thread, before any connection is taken.
    byte[] headers = HeaderCodec.encode(response.headers());
    return connections.run("complete", connection -> {
      Settled settled = complete(connection, key, token, response, headers);
      if (settled == Settled.NOTHING) {
        return false;
      }
      commit(connection);
      notifySettled(connection, key, settled);
      return true;
    });
  }

  /** What a completion or a release changed. */
  private enum Settled {
    /** Nothing: the token is no longer current. */
    NOTHING,
    /** The key's row, which no request waits for. */
    SETTLED,
    /** The key's row, which a request waits for (or may: its completion was found done). */
    WAITED;

    /** Runs a completion or release ({@code ... RETURNING waited}) and says what it changed. */
    static Settled of(String operation, TableName table, PreparedStatement statement)
        throws SQLException {
      try (ResultSet rows = statement.executeQuery()) {
        if (!rows.next()) {
          return NOTHING;
        }
        Settled settled = rows.getBoolean(1) ? WAITED : SETTLED;
        if (rows.next()) {
          throw new IllegalStateException(
              operation + " changed more than one row of " + table + " for one key");
        }
        return settled;
      }
    }
  }

  private Settled complete(
      Connection connection, IdempotencyKey key, long token, StoredResponse response,
      byte[] headers) throws SQLException {
    try (PreparedStatement statement = connection.prepareStatement(completeSql)) {
      statement.setInt(1, response.status());
      statement.setBytes(2, headers);
      statement.setBytes(3, response.bodyBytes());
      statement.setBoolean(4, response.bodyStored());
      statement.setLong(5, shiftMicros());
      statement.setLong(6, ttlMicros);
      int next = bindKey(statement, 7, key);
      statement.setLong(next, token);
      Settled settled = Settled.of("complete", table, statement);
      if (settled != Settled.NOTHING) {
        return settled;
      }
    }
    // Not recorded now: recorded already by this token (a retry after a commit whose reply was
    // lost: whether a request waits is not known, so it is told), or the token is no longer
    // current.
    return completedBy(connection, key, token) ? Settled.WAITED : Settled.NOTHING;
  }

  /** Whether the key is completed with {@code token}. */
  private boolean completedBy(Connection connection, IdempotencyKey key, long token)
      throws SQLException {
    try (PreparedStatement statement = connection.prepareStatement(readTokenSql)) {
      statement.setLong(bindKey(statement, 1, key), token);
      try (ResultSet row = statement.executeQuery()) {
        return row.next() && COMPLETED.equals(row.getString(1));
      }
    }
  }

  /** Releases the key on a connection of the node's own (the caller holds none of its own). */
  @Override
  public boolean release(IdempotencyKey key, long token) {
    return connections.runOnNode("release", connection -> release(connection, key, token));
  }

  /** Releases the key on {@code connection} and commits; notifies if it was released. */
  private boolean release(Connection connection, IdempotencyKey key, long token)
      throws SQLException {
    Settled released;
    try (PreparedStatement statement = connection.prepareStatement(releaseSql)) {
      int first = 1;
      if (sequenceKeys) {
        statement.setLong(first++, shiftMicros());
      }
      statement.setLong(bindKey(statement, first, key), token);
      released = Settled.of("release", table, statement);
    }
    if (released == Settled.NOTHING) {
      return false;
    }
    commit(connection);
    notifySettled(connection, key, released);
    return true;
  }

  /**
   * Renews the lease on a connection of the node's own. True also when the row is locked by the
   * request's own open transaction or step save: held, and settled by them (class comment).
   */
  @Override
  public boolean renew(IdempotencyKey key, long token) {
    return connections.runOnNode("renew", connection -> {
      try (PreparedStatement statement = connection.prepareStatement(renewSql)) {
        int next = bindKey(statement, 1, key);
        statement.setLong(next++, token);
        statement.setLong(next++, leaseMicros);
        statement.setLong(next++, shiftMicros());
        next = bindKey(statement, next, key);
        statement.setLong(next, token);
        try (ResultSet row = statement.executeQuery()) {
          row.next();
          return row.getBoolean(1);
        }
      }
    });
  }

  /** Binds the key's scope and key; returns the next parameter's index. */
  private static int bindKey(PreparedStatement statement, int first, IdempotencyKey key)
      throws SQLException {
    statement.setString(first, storedScope(key.scope()));
    statement.setString(first + 1, key.key());
    return first + 2;
  }

  /** A transaction that takes its connection when it is first asked for one (SPEC §15). */
  @Override
  public StoreTransaction beginTransaction(IdempotencyKey key, long token) {
    return new Transaction(key, token);
  }

  @Override
  public long floor(IdempotencyKey key) {
    requireSequenceKeys();
    key.requireSequenceNumber();
    return connections.run("floor", connection -> {
      try (PreparedStatement statement = connection.prepareStatement(floorSql)) {
        statement.setString(1, storedScope(key.scope()));
        try (ResultSet row = statement.executeQuery()) {
          return row.next() ? row.getLong(1) : -1L;
        }
      }
    });
  }

  /** A transaction for keys taken in order: see the interface, and {@link #advanceSql}. */
  @Override
  public StoreTransaction beginInOrder(IdempotencyKey first, IdempotencyKey last) {
    requireSequenceKeys();
    long from = first.requireSequenceNumber();
    long to = last.requireSequenceNumber();
    if (!first.scope().equals(last.scope()) || from > to) {
      throw new IllegalArgumentException("keys taken in order in one transaction are of one scope,"
          + " the first at most the last; were " + from + " and " + to + " of "
          + (first.scope().equals(last.scope()) ? "one scope" : "two scopes"));
    }
    return new Transaction(first, 0, from, to);
  }

  private void requireSequenceKeys() {
    if (!sequenceKeys) {
      throw new UnsupportedOperationException("the keys of " + table + " are not sequence keys:"
          + " build the store with StoreBuilder.sequenceKeys(true)");
    }
  }

  /**
   * Raises the floor of the key's scope to {@code last} if it is below {@code first}, running
   * {@code then} (more SQL, sent in the same round trip) if it rose; whether it rose. In a
   * transaction, a floor that had reached {@code first} leaves the transaction failed: the caller
   * rolls back.
   */
  private boolean advance(
      Connection connection, IdempotencyKey key, long first, long last, String then)
      throws SQLException {
    try (PreparedStatement statement = connection.prepareStatement(advanceSql + then)) {
      statement.setString(1, storedScope(key.scope()));
      statement.setLong(2, last);
      statement.setLong(3, first);
      statement.execute();
      return true;
    } catch (PSQLException e) {
      ServerErrorMessage refused = e.getServerErrorMessage();
      if (CHECK_VIOLATION.equals(e.getSQLState()) && refused != null
          && table.floorsTable().equals(refused.getTable())) {
        return false;
      }
      throw e;
    }
  }

  /**
   * The request's transaction: begun when the application first asks for its connection, on one
   * of the requests' pool; the application's writes, then the token-guarded completion, then one
   * commit. A request that never asked completes its key as {@link #complete} does. For a key
   * taken in order ({@link #beginInOrder}), the floor's rise instead of the completion, and no
   * row of the key's to lock or release. Not thread-safe: it belongs to the request.
   */
  private final class Transaction implements StoreTransaction {
    private final IdempotencyKey key;
    private final long token;
    /** The first and last keys' numbers when keys are taken in order, else -1. */
    private final long inOrder;
    private final long inOrderLast;
    /** Null until begun, and after close. */
    private Connection connection;
    private Connection forApplication;
    private boolean autoCommitBefore;
    /** The key was no longer held when the transaction began. */
    private boolean lost;
    private boolean closed;

    Transaction(IdempotencyKey key, long token) {
      this(key, token, -1, -1);
    }

    Transaction(IdempotencyKey key, long token, long inOrder, long inOrderLast) {
      this.key = key;
      this.token = token;
      this.inOrder = inOrder;
      this.inOrderLast = inOrderLast;
    }

    /**
     * Begins the transaction on first use: takes a connection (within the bound) and, above READ
     * COMMITTED, locks the key's row (class comment).
     *
     * @throws StoreUnavailableException if no connection could be had, or the key is no longer
     *     held by this request's token
     */
    @Override
    public Connection connection() {
      if (forApplication != null) {
        return forApplication;
      }
      if (closed || lost) {
        throw new StoreUnavailableException("the request's transaction on " + table
            + (lost ? " cannot begin: the request no longer holds its key" : " is closed"));
      }
      Connection taken = connections.forTransaction("begin");
      boolean held;
      try {
        autoCommitBefore = taken.getAutoCommit();
        taken.setAutoCommit(false);
        held = lockKey(taken);
        connections.answered();
      } catch (SQLException e) {
        connections.noteFailure(e);
        reset(taken);
        throw connections.unavailable("begin", e);
      }
      if (!held) {
        lost = true;
        reset(taken);
        throw new StoreUnavailableException("the request's transaction on " + table
            + " cannot begin: the request no longer holds its key (token " + token
            + " was taken over)");
      }
      connection = taken;
      forApplication = RequestTransactions.borrowed(taken);
      return forApplication;
    }

    /** Locks the key's row above READ COMMITTED (class comment); false if it is not held. */
    private boolean lockKey(Connection taken) throws SQLException {
      if (inOrder >= 0) {
        return true;
      }
      int previousTimeout = StoreConnections.boundNetworkTimeout(taken, statementTimeoutMillis);
      try {
        Boolean lock = lockKeyRows;
        if (lock == null) {
          try (Statement show = taken.createStatement();
              ResultSet level = show.executeQuery("SHOW transaction_isolation")) {
            level.next();
            lock = !"read committed".equals(level.getString(1));
          }
          lockKeyRows = lock;
        }
        if (!lock) {
          return true;
        }
        try (PreparedStatement statement = taken.prepareStatement(lockSql)) {
          statement.setLong(bindKey(statement, 1, key), token);
          try (ResultSet row = statement.executeQuery()) {
            return row.next();
          }
        }
      } finally {
        StoreConnections.restoreNetworkTimeout(taken, previousTimeout);
      }
    }

    /**
     * Completes the key and commits. The completion is bounded as any statement; the commit only
     * by the lease (a slow disk or a synchronous standby must not turn a commit into a failure).
     * A commit refused for what the transaction did (a constraint checked at commit, a
     * serialization failure) is the request's own failure. When the commit fails otherwise,
     * whether it landed is settled by releasing the key on another connection: the release waits
     * for the row while the commit may still be running, and succeeds only if it did not land.
     * Released, the request fails as usual; otherwise the key is read again: completed by this
     * token, the commit landed (true), else the key was taken over (false). A client is never
     * told a failure that succeeded.
     */
    @Override
    public boolean commit(StoredResponse response) {
      if (lost) {
        return false;
      }
      if (inOrder >= 0) {
        return commitInOrder();
      }
      if (connection == null) {
        return complete(key, token, response); // the application never asked for a connection
      }
      byte[] headers = HeaderCodec.encode(response.headers());
      int previousTimeout = 0;
      boolean completed = false;
      Settled settled;
      try {
        previousTimeout = StoreConnections.boundNetworkTimeout(connection, statementTimeoutMillis);
        settled = complete(connection, key, token, response, headers);
        if (settled == Settled.NOTHING) {
          connection.rollback();
          return false;
        }
        completed = true;
        connection.setNetworkTimeout(DIRECT, commitTimeoutMillis);
        connection.commit();
      } catch (SQLException e) {
        rollback();
        connections.noteFailure(e);
        if (handlersFailure(e) || (!completed && IN_FAILED_TRANSACTION.equals(e.getSQLState()))) {
          throw new TransactionAbortedException("the request's transaction on " + table
              + " was rolled back by an error of its own: " + e.getMessage(), e);
        }
        if (!completed || PostgresStore.this.release(key, token)) {
          throw connections.unavailable("commit", e);
        }
        LOG.log(System.Logger.Level.WARNING,
            "the commit of a request on {0} failed ({1}) but its key was not in progress any more;"
                + " reading it again", table, e.getMessage());
        if (!connections.run("read after a failed commit", c -> completedBy(c, key, token))) {
          return false;
        }
        return true;
      } finally {
        StoreConnections.restoreNetworkTimeout(connection, previousTimeout);
      }
      notifySettled(connection, key, settled);
      return true;
    }

    /**
     * Commits a key taken in order: the floor's rise and the COMMIT sent together, one round trip
     * ({@link #advanceSql}): a floor that had reached the key fails the rise, and the COMMIT with
     * it does not run. Bounded as a commit is. An outcome that is unknown (no reply) is not looked
     * up here: the floor says it, and the executor reads it again before its next call runs.
     */
    private boolean commitInOrder() {
      if (connection == null) { // the application never asked for a connection
        return connections.run("advance", c -> advance(c, key, inOrder, inOrderLast, ""));
      }
      int previousTimeout = 0;
      try {
        previousTimeout = StoreConnections.boundNetworkTimeout(connection, commitTimeoutMillis);
        if (advance(connection, key, inOrder, inOrderLast, "; COMMIT")) {
          return true;
        }
        rollback(); // the floor had reached the first key: the transaction failed, nothing ran
        return false;
      } catch (SQLException e) {
        rollback();
        connections.noteFailure(e);
        if (handlersFailure(e)) {
          throw new TransactionAbortedException("the transaction of a key taken in order on "
              + table + " was rolled back by an error of its own: " + e.getMessage(), e);
        }
        throw connections.unavailable("commit", e);
      } finally {
        StoreConnections.restoreNetworkTimeout(connection, previousTimeout);
      }
    }

    /**
     * Rolls back and releases the key: on this transaction's connection when it has one (its
     * lock is gone with the rollback), else on the node's.
     */
    @Override
    public boolean release() {
      if (inOrder >= 0) {
        rollback(); // no row of the key's: nothing else to release
        return true;
      }
      if (connection != null) {
        rollback();
        try {
          return StoreConnections.runAndCommit(
              connection, statementTimeoutMillis, c -> PostgresStore.this.release(c, key, token));
        } catch (SQLException e) {
          connections.noteFailure(e);
          LOG.log(System.Logger.Level.DEBUG,
              "releasing a key on its transaction's connection failed; trying another", e);
        }
      }
      return PostgresStore.this.release(key, token);
    }

    /**
     * The step results as this request sees them: read in the transaction once it has begun,
     * and saved in commits of their own, on the node's connections while the transaction is
     * open (its connection cannot commit them), else on the requests' pool.
     */
    @Override
    public StepStore steps() {
      if (inOrder >= 0) {
        throw new UnsupportedOperationException(
            "a key taken in order has no row of its own to keep step results under");
      }
      return new StepStore() {
        @Override
        public java.util.Optional<byte[]> find(
            IdempotencyKey stepKey, Fingerprint fingerprint, String name) {
          if (connection == null) {
            return steps.find(stepKey, fingerprint, name);
          }
          try {
            int previous = StoreConnections.boundNetworkTimeout(connection, statementTimeoutMillis);
            try {
              return steps.find(connection, stepKey, fingerprint, name);
            } finally {
              StoreConnections.restoreNetworkTimeout(connection, previous);
            }
          } catch (SQLException e) {
            connections.noteFailure(e);
            throw connections.failed("find step", e);
          }
        }

        @Override
        public boolean save(IdempotencyKey stepKey, long stepToken, Fingerprint fingerprint,
            String name, byte[] result) {
          return connection == null
              ? steps.save(stepKey, stepToken, fingerprint, name, result)
              : steps.saveOnNode(stepKey, stepToken, fingerprint, name, result);
        }

        @Override
        public int purgeExpired() {
          return steps.purgeExpired();
        }
      };
    }

    @Override
    public void rollback() {
      if (connection == null) {
        return;
      }
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
      if (connection != null) {
        reset(connection);
        connection = null;
      }
    }

    /** Rolls back, restores auto-commit and returns the connection to its pool. */
    private void reset(Connection taken) {
      try {
        taken.rollback();
        taken.setAutoCommit(autoCommitBefore);
      } catch (SQLException e) {
        LOG.log(System.Logger.Level.DEBUG, "resetting a request's connection failed", e);
      }
      closeQuietly(taken);
    }
  }

  /**
   * Whether a failed statement or commit was refused for what the transaction itself did, on a
   * connection that answered: anything but a connection failure (08), a lack of resources (53),
   * the server stopping (57), a system or internal error (58, XX), or no answer at all.
   */
  private static boolean handlersFailure(SQLException e) {
    String state = e.getSQLState();
    if (state == null || state.length() < 2) {
      return false;
    }
    return !STORE_FAILURE_CLASSES.contains(state.substring(0, 2));
  }

  @Override
  public StepStore steps() {
    return steps;
  }

  /**
   * Deletes expired keys in batches, each in a transaction of its own. One purger at a time across
   * nodes: each batch's statement takes a transaction-level advisory lock, held only until that
   * batch commits, so the election holds through a transaction pooler (PgBouncer), where a
   * session lock and its unlock could land on different server connections.
   */
  @Override
  public int purgeExpired() {
    return connections.run("purge", connection -> {
      int deleted = 0;
      try (PreparedStatement statement = connection.prepareStatement(purgeBatchSql)) {
        statement.setString(1, "idemkey.purge:" + table);
        statement.setLong(2, shiftMicros());
        statement.setInt(3, purgeBatchSize);
        int batch;
        do {
          batch = sequenceKeys ? countOf(statement) : statement.executeUpdate();
          if (!connection.getAutoCommit()) {
            connection.commit();
          }
          deleted += batch;
        } while (batch == purgeBatchSize);
      }
      return deleted;
    });
  }

  private static int countOf(PreparedStatement statement) throws SQLException {
    try (ResultSet row = statement.executeQuery()) {
      row.next();
      return row.getInt(1);
    }
  }

  /** Closes the connection pool if this store opened it; a data source handed in stays open. */
  @Override
  public void close() {
    waitMarks.close();
    settledKeys.close();
    connections.close();
    if (ownedPool != null) {
      try {
        ownedPool.close();
      } catch (Exception e) {
        LOG.log(System.Logger.Level.WARNING, "closing the idemkey connection pool failed", e);
      }
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

  /**
   * The scope as stored: itself, or a SHA-256 digest when it is too long for the key index or is
   * text that PostgreSQL cannot store as it is (a U+0000, or a lone surrogate that would turn into
   * '?' and so into another scope). The digest of such text covers its UTF-16 code units exactly.
   */
  static String storedScope(String scope) {
    // The filter's scopes all begin with a kind and ':', so none of them looks like these.
    if (!IdempotencyKey.storableText(scope)) {
      byte[] units = new byte[scope.length() * 2];
      for (int i = 0; i < scope.length(); i++) {
        units[2 * i] = (byte) (scope.charAt(i) >> 8);
        units[2 * i + 1] = (byte) scope.charAt(i);
      }
      return "sha256u~" + HexFormat.of().formatHex(sha256(units));
    }
    return scope.length() <= MAX_STORED_SCOPE_LENGTH
        ? scope
        : "sha256~" + HexFormat.of().formatHex(sha256(scope));
  }

  private static byte[] sha256(String text) {
    return sha256(text.getBytes(StandardCharsets.UTF_8));
  }

  private static byte[] sha256(byte[] bytes) {
    try {
      return MessageDigest.getInstance("SHA-256").digest(bytes);
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("SHA-256 is required of every Java runtime", e);
    }
  }

  private static long micros(Duration duration) {
    return duration.getSeconds() * 1_000_000L + duration.getNano() / 1_000;
  }

  private static Instant instant(ResultSet row, String column) throws SQLException {
    OffsetDateTime value = row.getObject(column, OffsetDateTime.class);
    return value == null ? null : value.toInstant();
  }
}
