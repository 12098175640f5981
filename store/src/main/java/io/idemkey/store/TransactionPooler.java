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
 * <p>How it knows: one connection of the pool asks for its server process twice, in two
 * transactions; behind a transaction pooler the answers may differ. One look can miss a pooler
 * that happens to hand out the same server connection twice: the answer is "seen", never "not
 * there".
 *
 * <p>Thread-safe: it holds no state.
 */
final class TransactionPooler {

  private static final System.Logger LOG = System.getLogger(TransactionPooler.class.getName());
  private static final int LOOKS = 4;

  private TransactionPooler() {}

  /**
   * Whether {@code connection} was seen to reach PostgreSQL through a transaction pooler. Runs
   * plain (unprepared) statements, each in its own transaction.
   */
  static boolean seenBehind(Connection connection) throws SQLException {
    boolean autoCommit = connection.getAutoCommit();
    try (Statement statement = connection.createStatement()) {
      int first = -1;
      for (int look = 0; look < LOOKS; look++) {
        int pid;
        try (ResultSet row = statement.executeQuery("SELECT pg_backend_pid()")) {
          row.next();
          pid = row.getInt(1);
        }
        if (!autoCommit) {
          connection.commit();
        }
        if (first == -1) {
          first = pid;
        } else if (pid != first) {
          return true;
        }
      }
      return false;
    }
  }

  /**
   * Checks that a store behind a transaction pooler can work there.
   *
   * @param listening whether the store listens for settled keys on a connection of its own that
   *     does not go through the pooler ({@link StoreBuilder#listenUrl})
   * @throws TransactionPoolerException if the connections would prepare statements on the server
   */
  static void check(Connection connection, boolean listening) throws SQLException {
    if (!seenBehind(connection)) {
      return;
    }
    int threshold = connection.unwrap(PGConnection.class).getPrepareThreshold();
    if (threshold > 0) {
      throw new TransactionPoolerException("the store's connections reach PostgreSQL through a"
          + " transaction pooler (PgBouncer with pool_mode=transaction: successive transactions"
          + " ran on different server connections), and they prepare statements on the server"
          + " (prepareThreshold=" + threshold + "), which fails there: add prepareThreshold=0 to"
          + " the JDBC URL (or the pool's data source properties)");
    }
    if (!listening) {
      LOG.log(System.Logger.Level.ERROR, "the store's connections reach PostgreSQL through a"
          + " transaction pooler, which cannot keep a LISTEN: requests that wait for another"
          + " request (on-in-flight=wait) are not woken when it settles, only when its lease would"
          + " end. Set idempotency.jdbc.listen-url to a direct URL to PostgreSQL (one connection"
          + " per node).");
    }
  }
}
