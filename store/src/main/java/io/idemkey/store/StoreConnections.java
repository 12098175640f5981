package io.idemkey.store;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import com.zaxxer.hikari.pool.HikariPool;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.SQLTransientConnectionException;
import java.time.Duration;
import java.time.Instant;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicBoolean;
import javax.sql.DataSource;

/**
 * The connections a PostgreSQL store runs its statements on, and the one way it runs them, for
 * the keys and the step results alike (SPEC §8, §15).
 *
 * <p>Two sources. The <em>requests'</em> pool is the one that requests drain (the application's,
 * or the store's own): a request takes one connection of it at a time, for its claim, its
 * completion, a step outside its transaction, or its transaction. The <em>node's</em> pool holds
 * the few connections that requests never take: what a request needs besides its own statements
 * (renewing its lease, releasing a key outside a transaction, saving a step's result while its
 * transaction is open) and the listener of settled keys. Beside a HikariCP pool (the store's own,
 * or one handed in) it is a small HikariCP pool of its own with the same settings, which replaces
 * a broken connection at once; beside any other data source it is that data source (README).
 *
 * <p>Every wait for a connection is bounded by {@code timeout}, on a handed-in HikariCP pool too
 * (whose own wait is 30 s by default), and every statement by the same time.
 *
 * <p>Known down: a failure to get a connection that says the database cannot be reached
 * (SQLSTATE class 08 or 57P0x, or a pool's timeout caused by one; never a pool merely busy), or a
 * statement that ran out of its bound, marks the database down, and one line is logged. While it is down every call fails at once, except a probe: one call at a time,
 * at most one per bound (so a request after the first failures is answered in microseconds, and
 * one that comes later looks for the database itself), which runs as any call does. The first
 * call that completes marks the database up again, and one line is logged.
 *
 * <p>Thread-safe: the down state is a volatile field, the probe an atomic flag taken by one caller
 * at a time; the pools are thread-safe.
 */
final class StoreConnections implements AutoCloseable {

  /** Work on one connection. */
  interface Work<T> {
    T run(Connection connection) throws SQLException;
  }

  private static final System.Logger LOG = System.getLogger(StoreConnections.class.getName());
  /** The node's connections: the listener, and two for upkeep. */
  static final int NODE_POOL_SIZE = 3;
  private static final int MAX_ATTEMPTS = 5;
  /** The shortest bound a statement gets when the wait for its connection used up the time. */
  private static final int MIN_STATEMENT_MILLIS = 250;
  private static final String SERIALIZATION_FAILURE = "40001";
  private static final String DEADLOCK = "40P01";
  private static final Executor DIRECT = Runnable::run;

  private final String description;
  private final DataSource requests;
  private final HikariDataSource requestsHikari;
  private final DataSource node;
  private final HikariDataSource ownNodePool;
  private final int timeoutMillis;
  private final AtomicBoolean probing = new AtomicBoolean();
  /** When the last probe began (or the database was found down), as a nanoTime. */
  private volatile long probedAt;
  /** When the database was found unreachable; null while it answers. */
  private volatile Instant downSince;

  /**
   * @param description what the connections are for, in messages (the table)
   * @param requests the pool requests drain
   * @param timeout the bound on every wait for a connection and on every statement
   */
  StoreConnections(String description, DataSource requests, Duration timeout) {
    this.description = description;
    this.requests = requests;
    this.requestsHikari = unwrapHikari(requests);
    this.timeoutMillis = (int) Math.min(Integer.MAX_VALUE, timeout.toMillis());
    this.ownNodePool = requestsHikari == null ? null : nodePool(requestsHikari, timeoutMillis);
    this.node = ownNodePool != null ? ownNodePool : requests;
  }

  /** {@code dataSource} as the HikariCP pool it is or wraps, or null. */
  static HikariDataSource unwrapHikari(DataSource dataSource) {
    try {
      return dataSource.isWrapperFor(HikariDataSource.class)
          ? dataSource.unwrap(HikariDataSource.class) : null;
    } catch (SQLException e) {
      return null;
    }
  }

  /**
   * A pool of {@value #NODE_POOL_SIZE} beside {@code requests}, with its settings; null when
   * those settings cannot make one (a pool configured in ways a copy cannot repeat): the node's
   * connections then come from {@code requests} itself.
   */
  private static HikariDataSource nodePool(HikariDataSource requests, int timeoutMillis) {
    try {
      return new HikariDataSource(nodePoolConfig(requests, timeoutMillis));
    } catch (RuntimeException e) {
      LOG.log(System.Logger.Level.WARNING, "the idempotency store could not open connections of"
          + " its own beside pool {0} ({1}); its upkeep shares that pool",
          requests.getPoolName(), e.getMessage());
      return null;
    }
  }

  private static HikariConfig nodePoolConfig(HikariDataSource requests, int timeoutMillis) {
    HikariConfig config = new HikariConfig();
    requests.copyStateTo(config);
    // Its sessions show apart in pg_stat_activity when the requests' pool names its own.
    java.util.Properties properties = new java.util.Properties();
    properties.putAll(requests.getDataSourceProperties());
    String applicationName = properties.getProperty("ApplicationName");
    if (applicationName != null) {
      properties.setProperty("ApplicationName", applicationName + "-node");
    }
    config.setDataSourceProperties(properties);
    config.setPoolName(
        (requests.getPoolName() == null ? "pool" : requests.getPoolName()) + "-idemkey-node");
    config.setMaximumPoolSize(NODE_POOL_SIZE);
    config.setMinimumIdle(1);
    config.setConnectionTimeout(Math.max(250, timeoutMillis));
    config.setValidationTimeout(Math.max(250, Math.min(timeoutMillis, 1000)));
    config.setInitializationFailTimeout(-1);
    config.setRegisterMbeans(false);
    return config;
  }

  /** The data source of the node's own connections (the listener takes one and keeps it). */
  DataSource node() {
    return node;
  }

  /** The bound on waits and statements, in milliseconds. */
  int timeoutMillis() {
    return timeoutMillis;
  }

  /** The size of the requests' pool, or 0 when it is not a HikariCP pool. */
  int requestConnections() {
    return requestsHikari == null ? 0 : requestsHikari.getMaximumPoolSize();
  }

  /** Whether the database is known to be unreachable now. */
  boolean down() {
    return downSince != null;
  }

  /**
   * Runs {@code work} on a connection of the requests' pool and commits; a lost race
   * (serialization failure, deadlock) is run again.
   *
   * @throws StoreUnavailableException if the database cannot be reached or the work failed
   * @throws IdempotencyException if the database refused this call's data (SQLSTATE class 22)
   */
  <T> T run(String operation, Work<T> work) {
    return run(operation, requests, 0, work);
  }

  /**
   * As {@link #run(String, Work)}, the wait for a connection and the statements together ending
   * about {@code deadline} (a {@link System#nanoTime()}): the statements get what the wait left
   * of the bound, at least {@value #MIN_STATEMENT_MILLIS} ms, so that a request facing a database
   * that hangs is answered within about the bound however many requests queue (SPEC §8).
   */
  <T> T run(String operation, long deadline, Work<T> work) {
    return run(operation, requests, deadline, work);
  }

  /** As {@link #run(String, Work)}, on a connection of the node's own. */
  <T> T runOnNode(String operation, Work<T> work) {
    return run(operation, node, 0, work);
  }

  private <T> T run(String operation, DataSource source, long deadline, Work<T> work) {
    for (int attempt = 1; ; attempt++) {
      boolean probe = admit(operation);
      Connection taken;
      try {
        taken = get(source);
      } catch (SQLException e) {
        if (probe) {
          probing.set(false);
        }
        throw failed(operation, e);
      }
      try (Connection connection = taken) {
        int bound = timeoutMillis;
        if (deadline != 0) {
          long left = (deadline - System.nanoTime()) / 1_000_000L;
          bound = (int) Math.max(MIN_STATEMENT_MILLIS, Math.min(bound, left));
        }
        T result = runAndCommit(connection, bound, work);
        answered();
        return result;
      } catch (SQLException e) {
        noteFailure(e);
        if (lostRace(e) && attempt < MAX_ATTEMPTS) {
          continue;
        }
        throw failed(operation, e);
      } finally {
        if (probe) {
          probing.set(false);
        }
      }
    }
  }

  /**
   * A connection of the requests' pool for a request's transaction, which the caller closes; the
   * caller reports with {@link #answered()} or {@link #noteFailure} how its first statement went.
   *
   * @throws StoreUnavailableException if none could be had within the bound, or the database is
   *     known to be down
   */
  Connection forTransaction(String operation) {
    boolean probe = admit(operation);
    try {
      return get(requests);
    } catch (SQLException e) {
      throw failed(operation, e);
    } finally {
      if (probe) {
        probing.set(false);
      }
    }
  }

  /**
   * Lets a call through, or fails it at once while the database is known to be down and another
   * call is probing. Returns whether this call is the probe.
   */
  private boolean admit(String operation) {
    Instant since = downSince;
    if (since == null) {
      return false;
    }
    if (System.nanoTime() - probedAt >= timeoutMillis * 1_000_000L
        && probing.compareAndSet(false, true)) {
      probedAt = System.nanoTime();
      return true;
    }
    throw new StoreUnavailableException(operation + " on " + description
        + " not tried: the database has been unreachable since " + since
        + "; one call at a time looks for it");
  }

  /** A connection, within the bound; a failure that says the database is away marks it down. */
  private Connection get(DataSource source) throws SQLException {
    HikariDataSource hikari = source == requests ? requestsHikari : ownNodePool;
    try {
      return bounded(source, hikari, timeoutMillis);
    } catch (SQLException e) {
      if (unreachable(e)) {
        markDown(e);
      }
      throw e;
    }
  }

  /**
   * A connection of {@code source}, waiting at most {@code timeoutMillis} when it is a HikariCP
   * pool ({@code hikari}, or null), whatever the pool's own wait.
   */
  static Connection bounded(DataSource source, HikariDataSource hikari, long timeoutMillis)
      throws SQLException {
    if (hikari != null && hikari.getHikariPoolMXBean() instanceof HikariPool pool) {
      // Until its first connection a lazily started HikariDataSource has no pool yet: it is
      // asked as it is once, and bounded from then on.
      return pool.getConnection(timeoutMillis);
    }
    return source.getConnection();
  }

  /** A call completed: the database answers. */
  void answered() {
    if (downSince != null) {
      downSince = null;
      LOG.log(System.Logger.Level.INFO,
          "the idempotency store''s database ({0}) answers again", description);
    }
  }

  /**
   * A statement failed: if it ran out of its bound (the database hangs), the database is known
   * down from now on. A connection that broke alone (its backend ended) says nothing of the
   * others: the next connection asked for tells.
   */
  void noteFailure(SQLException e) {
    for (Throwable t = e; t != null && t.getCause() != t; t = t.getCause()) {
      if (t instanceof java.net.SocketTimeoutException) {
        markDown(e);
        return;
      }
    }
  }

  private void markDown(SQLException e) {
    if (downSince == null) {
      probedAt = System.nanoTime();
      downSince = Instant.now();
      LOG.log(System.Logger.Level.WARNING,
          "the idempotency store''s database ({0}) cannot be reached: {1}; covered requests are"
              + " answered at once until it is back", description, e.getMessage());
    }
  }

  /**
   * Whether {@code e} says the database cannot be reached: a connection failure (class 08), the
   * server shutting down or starting (57P0x), or a pool's timeout caused by either. A pool's
   * timeout with no such cause is a busy pool, not an absent database.
   */
  static boolean unreachable(SQLException e) {
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t instanceof SQLException sql && sql.getSQLState() != null
          && (sql.getSQLState().startsWith("08") || sql.getSQLState().startsWith("57P0"))) {
        return true;
      }
      if (t.getCause() == t) {
        break;
      }
    }
    return false;
  }

  private static boolean lostRace(SQLException e) {
    return SERIALIZATION_FAILURE.equals(e.getSQLState()) || DEADLOCK.equals(e.getSQLState());
  }

  /** Runs {@code work} on {@code connection} under {@code boundMillis}, then commits. */
  static <T> T runAndCommit(Connection connection, int boundMillis, Work<T> work)
      throws SQLException {
    boolean autoCommit = connection.getAutoCommit();
    int previousTimeout = boundNetworkTimeout(connection, boundMillis);
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
  }

  /** Sets the bound unless the connection has a shorter one; returns the old value. */
  static int boundNetworkTimeout(Connection connection, int boundMillis) throws SQLException {
    int previous = connection.getNetworkTimeout();
    if (previous == 0 || previous > boundMillis) {
      connection.setNetworkTimeout(DIRECT, boundMillis);
    }
    return previous;
  }

  static void restoreNetworkTimeout(Connection connection, int previous) {
    try {
      if (!connection.isClosed() && connection.getNetworkTimeout() != previous) {
        connection.setNetworkTimeout(DIRECT, previous);
      }
    } catch (SQLException e) {
      // A broken connection: the pool discards it.
    }
  }

  StoreUnavailableException unavailable(String operation, SQLException e) {
    return new StoreUnavailableException(
        operation + " on " + description + " failed: " + e.getMessage(), e);
  }

  /**
   * The exception for a call that failed: a data error (SQLSTATE class 22: what this one call
   * carried) is this call's own failure, not the store being away, so it never answers other
   * requests 503 nor lets a handler run unprotected with fail-open.
   */
  RuntimeException failed(String operation, SQLException e) {
    String state = e.getSQLState();
    if (state != null && state.startsWith("22")) {
      return new IdempotencyException(
          operation + " on " + description + " refused this call's data: " + e.getMessage(), e);
    }
    return unavailable(operation, e);
  }

  /** Closes the node's pool if this made one; the requests' pool is the store's to close. */
  @Override
  public void close() {
    if (ownNodePool != null) {
      ownNodePool.close();
    }
  }
}
