package io.idemkey.spring;

import io.idemkey.migrations.TableName;
import io.idemkey.store.Replication;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Duration;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.LongSupplier;
import javax.sql.DataSource;

/**
 * The check behind the {@code idempotency} health indicator, free of Spring Boot's health types so
 * that one check serves both Boot lines (Boot 4's {@code org.springframework.boot.health} and
 * Boot 3's {@code org.springframework.boot.actuate.health}, each adapted by its own indicator).
 *
 * <p>UP when the keys' database answers and the keys table is there, DOWN when that database is
 * a standby (it refuses writes). The details say how the database is replicated ({@link
 * Replication}: {@code synchronous}, {@code asynchronous}, {@code none}, or {@code unknown} to a
 * user who may not see it), so that a reader knows whether a failover can lose acknowledged keys.
 *
 * <p>It does not hammer the database: a result is kept for {@code cacheFor}; at most one check
 * runs at a time, on a thread of its own, and a check that has not answered within {@code
 * timeout} (a pool waiting for a database that is gone, a hung server) is DOWN without waiting
 * longer; the next call after the cached result runs out waits for that same check rather than
 * starting another. The query itself carries a timeout too.
 *
 * <p>Thread-safe: {@code cached}, {@code cachedAt} and {@code running} are guarded by {@code
 * this}; the check itself runs outside the lock.
 */
final class KeysDatabaseCheck implements AutoCloseable {

  /** The health states a check reports. */
  enum State { UP, DOWN, UNKNOWN }

  /** One check's answer: its state and details (insertion-ordered, unmodifiable). */
  record Result(State state, Map<String, Object> details) {
    Result {
      details = Collections.unmodifiableMap(new LinkedHashMap<>(details));
    }
  }

  private final DataSource dataSource;
  private final TableName table;
  private final Duration cacheFor;
  private final Duration timeout;
  private final LongSupplier nanoTime;
  private final ExecutorService checker =
      Executors.newSingleThreadExecutor(runnable -> {
        Thread thread = new Thread(runnable, "idemkey-health");
        thread.setDaemon(true);
        return thread;
      });

  private Result cached;
  private long cachedAt;
  private CompletableFuture<Result> running;

  KeysDatabaseCheck(
      DataSource dataSource, TableName table, Duration cacheFor, Duration timeout,
      LongSupplier nanoTime) {
    this.dataSource = dataSource;
    this.table = table;
    this.cacheFor = cacheFor;
    this.timeout = timeout;
    this.nanoTime = nanoTime;
  }

  /** The current health: cached, or from a check that answers within the timeout. */
  Result result() {
    CompletableFuture<Result> check;
    synchronized (this) {
      if (cached != null && nanoTime.getAsLong() - cachedAt < cacheFor.toNanos()) {
        return cached;
      }
      if (running == null || running.isDone()) {
        running = CompletableFuture.supplyAsync(this::check, checker);
      }
      check = running;
    }
    Result result;
    try {
      result = check.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (TimeoutException e) {
      result = down("no answer from the database within " + timeout.toMillis() + " ms");
    } catch (ExecutionException e) {
      result = down(String.valueOf(e.getCause()));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return new Result(State.UNKNOWN, Map.of());
    }
    synchronized (this) {
      cached = result;
      cachedAt = nanoTime.getAsLong();
    }
    return result;
  }

  private Result check() {
    int seconds = (int) Math.max(1, timeout.toSeconds());
    try (Connection connection = dataSource.getConnection();
        PreparedStatement statement = connection.prepareStatement("SELECT to_regclass(?)")) {
      statement.setQueryTimeout(seconds);
      statement.setString(1, table.qualifiedTable());
      try (ResultSet result = statement.executeQuery()) {
        boolean present = result.next() && result.getString(1) != null;
        if (!present) {
          return down("the keys table does not exist (idempotency.migrate=false?)");
        }
      }
      Replication replication = Replication.of(connection, timeout);
      Map<String, Object> details = new LinkedHashMap<>();
      boolean standby = replication.mode() == Replication.Mode.STANDBY;
      if (standby) {
        details.put("error", "the keys' database is a standby: it refuses writes");
      }
      details.put("table", table.toString());
      details.put("replication", replication.mode().name().toLowerCase(Locale.ROOT));
      details.put("standbys", replication.standbys());
      details.put("synchronousStandbys", replication.synchronousStandbys());
      return new Result(standby ? State.DOWN : State.UP, details);
    } catch (SQLException e) {
      return down(e.getClass().getSimpleName() + ": " + e.getMessage());
    }
  }

  private Result down(String error) {
    Map<String, Object> details = new LinkedHashMap<>();
    details.put("table", table.toString());
    details.put("error", error);
    return new Result(State.DOWN, details);
  }

  /** Stops the checking thread. */
  @Override
  public void close() {
    checker.shutdownNow();
  }
}
