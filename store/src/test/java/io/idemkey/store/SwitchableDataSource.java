package io.idemkey.store;

import java.io.PrintWriter;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.SQLFeatureNotSupportedException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.logging.Logger;
import javax.sql.DataSource;

/**
 * A real data source that a test can switch off: until {@link #failFromNow()} it hands out the
 * test database's connections; after it, every request for a connection fails and is counted.
 * Not a mock of JDBC: the statements that run, run on PostgreSQL. Thread-safe.
 */
final class SwitchableDataSource implements DataSource {

  private final DataSource database;
  private final AtomicBoolean failing = new AtomicBoolean();
  private final AtomicInteger refused = new AtomicInteger();
  private volatile Connection last;

  SwitchableDataSource(DataSource database) {
    this.database = database;
  }

  /** From now on, every request for a connection fails. */
  void failFromNow() {
    failing.set(true);
  }

  /** Serves connections again. */
  void serveAgain() {
    failing.set(false);
  }

  /** The requests for a connection made while failing. */
  int refused() {
    return refused.get();
  }

  /** The connection handed out last, or null. */
  Connection lastHandedOut() {
    return last;
  }

  @Override
  public Connection getConnection() throws SQLException {
    refuseIfFailing();
    last = database.getConnection();
    return last;
  }

  @Override
  public Connection getConnection(String username, String password) throws SQLException {
    refuseIfFailing();
    return database.getConnection(username, password);
  }

  private void refuseIfFailing() throws SQLException {
    if (failing.get()) {
      refused.incrementAndGet();
      throw new SQLException("the test switched the database off", "08001");
    }
  }

  @Override
  public PrintWriter getLogWriter() throws SQLException {
    return database.getLogWriter();
  }

  @Override
  public void setLogWriter(PrintWriter out) throws SQLException {
    database.setLogWriter(out);
  }

  @Override
  public void setLoginTimeout(int seconds) throws SQLException {
    database.setLoginTimeout(seconds);
  }

  @Override
  public int getLoginTimeout() throws SQLException {
    return database.getLoginTimeout();
  }

  @Override
  public Logger getParentLogger() throws SQLFeatureNotSupportedException {
    return database.getParentLogger();
  }

  @Override
  public <T> T unwrap(Class<T> type) throws SQLException {
    throw new SQLException("not a wrapper");
  }

  @Override
  public boolean isWrapperFor(Class<?> type) {
    return false;
  }
}
