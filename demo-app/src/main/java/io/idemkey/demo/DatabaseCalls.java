package io.idemkey.demo;

import java.sql.Connection;
import java.sql.SQLException;
import java.time.Duration;
import java.util.concurrent.Executor;
import javax.sql.DataSource;

/**
 * The demo's own database calls, each bounded by the filter's {@code jdbc.connect-timeout}, at
 * least a second, as the store bounds its own statements (SPEC §8, §11): the wait for a
 * connection is the pool's connection timeout, set to it; every read of the call's statements is
 * bounded by a network timeout set on the connection for the call and restored after it (on the
 * request's connection in transactional mode too, whose own statements the store bounds). A
 * database that hangs then fails the call in about the bound, not after the pool's socket
 * timeout, and pgjdbc marks the connection broken, so that the pool replaces it. Thread-safe.
 */
final class DatabaseCalls {

  /** What a call does with its connection. */
  @FunctionalInterface
  interface Call<T> {
    T run(Connection connection) throws SQLException;
  }

  private static final Executor DIRECT = Runnable::run;

  private final DataSource dataSource;
  private final int boundMillis;

  /**
   * @param dataSource the pool (or the request-aware data source in front of it)
   * @param connectTimeout the filter's {@code jdbc.connect-timeout}
   */
  DatabaseCalls(DataSource dataSource, Duration connectTimeout) {
    this.dataSource = dataSource;
    this.boundMillis = (int) Math.min(Integer.MAX_VALUE,
        Math.max(1000, connectTimeout.toMillis()));
  }

  /** The longest each read of a call may wait for the database, in milliseconds. */
  int boundMillis() {
    return boundMillis;
  }

  /**
   * Runs {@code call} on a connection of the data source, its reads bounded.
   *
   * @throws SQLException if no connection came in time, or the call failed or took longer
   */
  <T> T run(Call<T> call) throws SQLException {
    try (Connection connection = dataSource.getConnection()) {
      int previous = connection.getNetworkTimeout();
      if (previous == 0 || previous > boundMillis) {
        connection.setNetworkTimeout(DIRECT, boundMillis);
      }
      try {
        return call.run(connection);
      } finally {
        restore(connection, previous);
      }
    }
  }

  private static void restore(Connection connection, int previous) {
    try {
      if (!connection.isClosed() && connection.getNetworkTimeout() != previous) {
        connection.setNetworkTimeout(DIRECT, previous);
      }
    } catch (SQLException e) {
      // A broken connection: the pool discards it.
    }
  }
}
