package io.idemkey.store;

import java.sql.Connection;
import java.sql.SQLException;

/**
 * One connection taken from the store's data source and kept for one kind of call, so that those calls never
 * wait behind whatever holds the rest of the pool (lease renewals behind requests' transactions).
 * It is opened on first use, and closed and opened again after a call that failed.
 *
 * <p>Thread-safe: calls take turns on the connection, under this object's lock.
 */
final class ReservedConnection implements AutoCloseable {

  private final BoundedConnections connections;
  /** Guarded by this; null until first used, and after a failure. */
  private Connection connection;

  ReservedConnection(BoundedConnections connections) {
    this.connections = connections;
  }

  /**
   * Runs {@code work} on the reserved connection.
   *
   * @throws SQLException what the work or opening the connection threw; the connection is then
   *     closed, and the next call opens another
   */
  synchronized <T> T use(PostgresStore.Work<T> work) throws SQLException {
    if (connection == null) {
      connection = connections.get();
    }
    try {
      return work.run(connection);
    } catch (SQLException | RuntimeException e) {
      closeConnection();
      throw e;
    }
  }

  private void closeConnection() {
    Connection broken = connection;
    connection = null;
    try {
      broken.close();
    } catch (SQLException e) {
      // Already broken: the pool discards it.
    }
  }

  @Override
  public synchronized void close() {
    if (connection != null) {
      closeConnection();
    }
  }
}
