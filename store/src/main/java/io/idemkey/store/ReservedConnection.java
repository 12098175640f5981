package io.idemkey.store;

import java.sql.Connection;
import java.sql.SQLException;
import java.sql.SQLTransientConnectionException;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;

/**
 * One connection taken from the store's data source and kept for one kind of call, so that those
 * calls never wait behind whatever holds the rest of the pool (a lease's upkeep behind requests'
 * transactions). It is opened on first use, and closed and opened again after a call that failed.
 *
 * <p>Thread-safe: calls take turns on the connection under one lock, and a call that cannot have
 * it within the store's bound fails instead of queueing (a database that hangs holds each turn
 * for a whole bound).
 */
final class ReservedConnection implements AutoCloseable {

  private final BoundedConnections connections;
  private final long timeoutNanos;
  private final ReentrantLock lock = new ReentrantLock();
  /** Guarded by lock; null until first used, and after a failure. */
  private Connection connection;

  ReservedConnection(BoundedConnections connections, Duration timeout) {
    this.connections = connections;
    this.timeoutNanos = timeout.toNanos();
  }

  /**
   * Runs {@code work} on the reserved connection.
   *
   * @throws SQLException what the work or opening the connection threw (the connection is then
   *     closed, and the next call opens another), or a {@link SQLTransientConnectionException}
   *     when the connection stayed busy for the whole bound
   */
  <T> T use(PostgresStore.Work<T> work) throws SQLException {
    boolean locked;
    try {
      locked = lock.tryLock(timeoutNanos, TimeUnit.NANOSECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new SQLTransientConnectionException("interrupted while waiting for a connection", e);
    }
    if (!locked) {
      throw new SQLTransientConnectionException(
          "the connection kept for leases stayed busy for " + timeoutNanos / 1_000_000 + "ms");
    }
    try {
      if (connection == null) {
        connection = connections.get();
      }
      return work.run(connection);
    } catch (SQLException | RuntimeException e) {
      closeConnection();
      throw e;
    } finally {
      lock.unlock();
    }
  }

  private void closeConnection() {
    Connection broken = connection;
    connection = null;
    if (broken == null) {
      return;
    }
    try {
      broken.close();
    } catch (SQLException e) {
      // Already broken: the pool discards it.
    }
  }

  @Override
  public void close() {
    lock.lock();
    try {
      closeConnection();
    } finally {
      lock.unlock();
    }
  }
}
