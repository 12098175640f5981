package io.idemkey.store;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import org.postgresql.PGConnection;

/**
 * Finds out, at start-up, whether the store's connections reach PostgreSQL through a transaction
 * pooler (PgBouncer with {@code pool_mode = transaction}), and whether the store has what it then
 * needs (issue 27): statements that are not prepared on the server (a pooler hands each
 * transaction whichever server connection is free, and a statement prepared on one is missing,
 * or already there, on another), and a listening connection of its own for waiters (a {@code
 * LISTEN} lives in a session, which a transaction pooler does not keep).
 *
 * <p>How it knows: the server process a connection was told of when it logged in (the cancel
 * key's process id) is not the one that runs its statements: a pooler answers the log-in itself,
 * with a key of its own. That holds for PgBouncer in any pooling mode; in session pooling neither
 * setting is needed but both are harmless, and the message says so.
 *
 * <p>Thread-safe: it holds no state.
 */
final class TransactionPooler {

  private static final System.Logger LOG = System.getLogger(TransactionPooler.class.getName());

  private TransactionPooler() {}

  /** Whether {@code connection} reaches PostgreSQL through a pooler (class comment). */
  static boolean seenBehind(Connection connection) throws SQLException {
    int announced = connection.unwrap(PGConnection.class).getBackendPID();
    boolean autoCommit = connection.getAutoCommit();
    try (Statement statement = connection.createStatement();
        ResultSet row = statement.executeQuery("SELECT pg_backend_pid()")) {
      row.next();
      return row.getInt(1) != announced;
    } finally {
      if (!autoCommit) {
        connection.rollback();
      }
    }
  }

  /**
   * Checks that a store on {@code connection}'s pool can work through whatever is between it and
   * PostgreSQL. Returns whether the node hears settled keys: false behind a pooler without a
   * listening connection of its own, which it also logs.
   *
   * @param listening whether the store listens for settled keys on a connection of its own that
   *     does not go through the pooler ({@link StoreBuilder#listenUrl})
   * @throws TransactionPoolerException if the connections would prepare statements on the server
   */
  static boolean check(Connection connection, boolean listening) throws SQLException {
    if (!seenBehind(connection)) {
      return true;
    }
    int threshold = connection.unwrap(PGConnection.class).getPrepareThreshold();
    if (threshold > 0) {
      throw new TransactionPoolerException("the store's connections reach PostgreSQL through a"
          + " pooler such as PgBouncer (the server process is not the one named at log-in), and"
          + " they prepare statements on the server (prepareThreshold=" + threshold + "), which"
          + " fails with transaction pooling: add prepareThreshold=0 to the JDBC URL (or the"
          + " pool's data source properties); harmless with session pooling");
    }
    if (!listening) {
      LOG.log(System.Logger.Level.ERROR, "the store's connections reach PostgreSQL through a"
          + " pooler such as PgBouncer, which with transaction pooling cannot keep a LISTEN:"
          + " requests that wait for another"
          + " request (on-in-flight=wait) are not woken when it settles, only when its lease would"
          + " end. Set idempotency.jdbc.listen-url to a direct URL to PostgreSQL (one connection"
          + " per node).");
    }
    return listening;
  }
}
