package io.idemkey.store;

import com.zaxxer.hikari.HikariDataSource;
import com.zaxxer.hikari.pool.HikariPool;
import java.sql.Connection;
import java.sql.SQLException;
import java.time.Duration;
import javax.sql.DataSource;

/**
 * Takes connections from a data source within the store's own bound, not the pool's: an
 * application's HikariCP pool waits 30 s for a connection by default, and a request facing an
 * exhausted pool must be answered within about {@code jdbc.connect-timeout} (SPEC §8). For a
 * HikariCP pool the wait is bounded per call; any other data source is asked as it is, and its
 * own timeout applies (the README says to set it).
 *
 * <p>Thread-safe.
 */
final class BoundedConnections {

  private final DataSource dataSource;
  private final HikariDataSource hikari;
  private final long timeoutMillis;

  BoundedConnections(DataSource dataSource, Duration timeout) {
    this.dataSource = dataSource;
    this.hikari = unwrapHikari(dataSource);
    this.timeoutMillis = timeout.toMillis();
  }

  private static HikariDataSource unwrapHikari(DataSource dataSource) {
    try {
      return dataSource.isWrapperFor(HikariDataSource.class)
          ? dataSource.unwrap(HikariDataSource.class) : null;
    } catch (SQLException e) {
      return null;
    }
  }

  /**
   * A connection, within the bound when the pool is HikariCP's.
   *
   * @throws SQLException if none could be had in time, or the data source failed
   */
  Connection get() throws SQLException {
    if (hikari != null && hikari.getHikariPoolMXBean() instanceof HikariPool pool) {
      // Until its first connection a lazily started HikariDataSource has no pool yet: it is
      // asked as it is once, and bounded from then on.
      return pool.getConnection(timeoutMillis);
    }
    return dataSource.getConnection();
  }
}
