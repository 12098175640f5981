package io.idemkey.spring;

import io.idemkey.migrations.TableName;
import io.idemkey.store.Replication;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Duration;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.LongSupplier;
import javax.sql.DataSource;
import org.springframework.beans.factory.DisposableBean;
import org.springframework.boot.health.contributor.Health;
import org.springframework.boot.health.contributor.HealthIndicator;

/**
 * The health of the idemkey store: UP when its database answers and the keys table is there,
 * DOWN when that database is a standby (it refuses writes). Its details say how the database is
 * replicated ({@link Replication}: {@code synchronous}, {@code asynchronous}, {@code none}, or
 * {@code unknown} to a user who may not see it), so that a reader knows whether a failover can
 * lose acknowledged keys (SPEC §14).
 *
 * <p>It does not hammer the database: a result is kept for {@code cacheFor}; at most one check
 * runs at a time, on a thread of its own, and a check that has not answered within {@code
 * timeout} (a pool waiting for a database that is gone, a hung server) is DOWN without waiting
 * longer; the next call after the cached result runs out waits for that same check rather than
 * starting another. The query itself carries a timeout too.
 *
 * <p>Thread-safe.
 */
final class IdempotencyHealthIndicator implements HealthIndicator, DisposableBean {

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

  private Health cached;
  private long cachedAt;
  private CompletableFuture<Health> running;

  IdempotencyHealthIndicator(
      DataSource dataSource, TableName table, Duration cacheFor, Duration timeout,
      LongSupplier nanoTime) {
    this.dataSource = dataSource;
    this.table = table;
    this.cacheFor = cacheFor;
    this.timeout = timeout;
    this.nanoTime = nanoTime;
  }

  @Override
  public Health health() {
    CompletableFuture<Health> check;
    synchronized (this) {
      if (cached != null && nanoTime.getAsLong() - cachedAt < cacheFor.toNanos()) {
        return cached;
      }
      if (running == null || running.isDone()) {
        running = CompletableFuture.supplyAsync(this::check, checker);
      }
      check = running;
    }
    Health health;
    try {
      health = check.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (TimeoutException e) {
      health = Health.down()
          .withDetail("table", table.toString())
          .withDetail("error", "no answer from the database within " + timeout.toMillis() + " ms")
          .build();
    } catch (ExecutionException e) {
      health = Health.down()
          .withDetail("table", table.toString())
          .withDetail("error", String.valueOf(e.getCause()))
          .build();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return Health.unknown().build();
    }
    synchronized (this) {
      cached = health;
      cachedAt = nanoTime.getAsLong();
    }
    return health;
  }

  private Health check() {
    int seconds = (int) Math.max(1, timeout.toSeconds());
    try (Connection connection = dataSource.getConnection();
        PreparedStatement statement = connection.prepareStatement("SELECT to_regclass(?)")) {
      statement.setQueryTimeout(seconds);
      statement.setString(1, table.qualifiedTable());
      try (ResultSet result = statement.executeQuery()) {
        boolean present = result.next() && result.getString(1) != null;
        if (!present) {
          return Health.down()
              .withDetail("table", table.toString())
              .withDetail("error", "the keys table does not exist (idempotency.migrate=false?)")
              .build();
        }
      }
      Replication replication = Replication.of(connection, timeout);
      Health.Builder health = replication.mode() == Replication.Mode.STANDBY
          ? Health.down().withDetail("error", "the keys' database is a standby: it refuses writes")
          : Health.up();
      return health
          .withDetail("table", table.toString())
          .withDetail("replication", replication.mode().name().toLowerCase(Locale.ROOT))
          .withDetail("standbys", replication.standbys())
          .withDetail("synchronousStandbys", replication.synchronousStandbys())
          .build();
    } catch (SQLException e) {
      return Health.down()
          .withDetail("table", table.toString())
          .withDetail("error", e.getClass().getSimpleName() + ": " + e.getMessage())
          .build();
    }
  }

  @Override
  public void destroy() {
    checker.shutdownNow();
  }
}
