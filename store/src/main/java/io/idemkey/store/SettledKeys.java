package io.idemkey.store;

import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import javax.sql.DataSource;
import org.postgresql.PGConnection;
import org.postgresql.PGNotification;

/**
 * The keys that complete or are released on any node, heard through PostgreSQL's LISTEN/NOTIFY:
 * the completion and release of a key that a request waits for ({@link WaitMarks}) notify (in
 * their own transaction, so a notification is delivered only once its change is committed), and
 * one connection per node listens. Callbacks
 * run on the listening thread and must be quick. When the connection is lost, every watcher is
 * called once (a notification may have been missed), and it listens again after a pause. A
 * connection that went silent (a partition that dropped it without a reset) is found by a {@code
 * SELECT 1} every {@code checkInterval}, bounded by the same time.
 *
 * <p>Thread-safe. The listening thread and its connection exist only while something is watched
 * or was watched since the last {@link #close()}.
 */
final class SettledKeys implements AutoCloseable {

  private static final System.Logger LOG = System.getLogger(SettledKeys.class.getName());
  private static final int POLL_MILLIS = 500;
  private static final long RECONNECT_MILLIS = 1_000;

  private final DataSource dataSource;
  private final String channel;
  private final long checkNanos;
  private final Map<String, List<Runnable>> watchers = new ConcurrentHashMap<>();
  private Thread listener;
  private volatile boolean closed;

  SettledKeys(DataSource dataSource, String channel, Duration checkInterval) {
    this.dataSource = dataSource;
    this.channel = channel;
    this.checkNanos = checkInterval.toNanos();
  }

  /** Calls {@code onSettled} on each notification for {@code payload} until closed. */
  IdempotencyStore.Registration watch(String payload, Runnable onSettled) {
    startListening();
    watchers.computeIfAbsent(payload, p -> new CopyOnWriteArrayList<>()).add(onSettled);
    return () ->
        watchers.computeIfPresent(
            payload, (p, list) -> list.remove(onSettled) && list.isEmpty() ? null : list);
  }

  private synchronized void startListening() {
    if (listener == null && !closed) {
      listener = new Thread(this::listen, "idemkey-settled-keys");
      listener.setDaemon(true);
      listener.start();
    }
  }

  private void listen() {
    while (!closed) {
      try (Connection connection = dataSource.getConnection()) {
        int poolsTimeout = connection.getNetworkTimeout();
        try {
          connection.setNetworkTimeout(Runnable::run, (int) Math.max(1, checkNanos / 1_000_000));
          if (!connection.getAutoCommit()) {
            connection.setAutoCommit(true);
          }
          try (Statement statement = connection.createStatement()) {
            statement.execute("LISTEN \"" + channel + "\"");
          }
          // Anything settled while no connection listened is found by a fresh look.
          fireAll();
          listenOn(connection);
        } finally {
          // The connection may go back to an application's pool: as it came, not subscribed.
          unlisten(connection);
          if (!connection.isClosed()) {
            connection.setNetworkTimeout(Runnable::run, poolsTimeout);
          }
        }
      } catch (SQLException | RuntimeException e) {
        if (!closed) {
          LOG.log(System.Logger.Level.WARNING,
              "listening for settled idempotency keys failed; listening again in {0} ms: {1}",
              RECONNECT_MILLIS, e.getMessage());
          fireAll();
          try {
            Thread.sleep(RECONNECT_MILLIS);
          } catch (InterruptedException interrupted) {
            return;
          }
        }
      }
    }
  }

  /** Hears notifications until closed; throws when the connection breaks or goes silent. */
  private void listenOn(Connection connection) throws SQLException {
    PGConnection postgres = connection.unwrap(PGConnection.class);
    long nextCheck = System.nanoTime() + checkNanos;
    while (!closed) {
      PGNotification[] notifications = postgres.getNotifications(POLL_MILLIS);
      if (notifications != null) {
        for (PGNotification notification : notifications) {
          fire(notification.getParameter());
        }
      }
      if (System.nanoTime() - nextCheck >= 0) {
        // Silence is also what a dead connection sounds like: ask it.
        try (Statement statement = connection.createStatement()) {
          statement.execute("SELECT 1");
        }
        nextCheck = System.nanoTime() + checkNanos;
      }
    }
  }

  private static void unlisten(Connection connection) {
    try (Statement statement = connection.createStatement()) {
      statement.execute("UNLISTEN *");
    } catch (SQLException e) {
      try {
        connection.abort(Runnable::run); // never back to the pool with its subscription
      } catch (SQLException | RuntimeException ignored) {
        // closed already
      }
    }
  }

  private void fire(String payload) {
    List<Runnable> list = watchers.get(payload);
    if (list != null) {
      list.forEach(SettledKeys::runQuietly);
    }
  }

  private void fireAll() {
    watchers.values().forEach(list -> list.forEach(SettledKeys::runQuietly));
  }

  static void runQuietly(Runnable callback) {
    try {
      callback.run();
    } catch (RuntimeException e) {
      LOG.log(System.Logger.Level.WARNING, "a settled-key callback failed", e);
    }
  }

  @Override
  public synchronized void close() {
    closed = true;
    if (listener != null) {
      listener.interrupt();
    }
  }
}
