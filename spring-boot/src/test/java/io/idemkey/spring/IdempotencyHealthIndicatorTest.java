package io.idemkey.spring;

import static org.assertj.core.api.Assertions.assertThat;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import io.idemkey.migrations.Migrations;
import io.idemkey.migrations.TableName;
import io.idemkey.store.PrimaryAndStandby;
import io.idemkey.store.TestDatabase;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.SQLFeatureNotSupportedException;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.logging.Logger;
import javax.sql.DataSource;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.springframework.boot.health.contributor.Health;
import org.springframework.boot.health.contributor.Status;

/** The health indicator against the real test database, with a settable clock. */
class IdempotencyHealthIndicatorTest {

  private final AtomicLong nanos = new AtomicLong();
  private final CountingDataSource database = new CountingDataSource(TestDatabase.dataSource());

  @Test
  void health_calledAgainWithinTheCacheTime_asksTheDatabaseOnce() {
    TableName table = TestDatabase.freshTable();
    IdempotencyHealthIndicator indicator = indicator(table);

    Health first = indicator.health();
    nanos.addAndGet(Duration.ofSeconds(4).toNanos());
    for (int i = 0; i < 20; i++) {
      indicator.health();
    }
    nanos.addAndGet(Duration.ofSeconds(2).toNanos());
    indicator.health();

    assertThat(first.getStatus()).isEqualTo(Status.UP);
    assertThat(database.connections.get()).isEqualTo(2);
    indicator.destroy();
  }

  @Test
  void health_tableMissing_isDown() {
    IdempotencyHealthIndicator indicator = indicator(new TableName("public", "no_such_keys"));

    Health health = indicator.health();

    assertThat(health.getStatus()).isEqualTo(Status.DOWN);
    assertThat(health.getDetails().get("error").toString()).contains("does not exist");
    indicator.destroy();
  }

  @Test
  void health_databaseWithoutStandby_upAndSaysSo() {
    IdempotencyHealthIndicator indicator = indicator(TestDatabase.freshTable());

    Health health = indicator.health();

    assertThat(health.getStatus()).isEqualTo(Status.UP);
    assertThat(health.getDetails()).containsEntry("replication", "none")
        .containsEntry("standbys", 0);
    indicator.destroy();
  }

  @Test
  void health_primaryWithSynchronousStandby_upAndSaysSo(@TempDir Path dir) throws Exception {
    try (PrimaryAndStandby pair = PrimaryAndStandby.start(dir, true);
        HikariDataSource primary = pool(pair.url());
        HikariDataSource standby = pool(pair.standbyUrl())) {
      Migrations.migrate(primary, TableName.DEFAULT);
      pair.awaitStandbyCaughtUp();
      IdempotencyHealthIndicator onPrimary = indicator(primary, TableName.DEFAULT);
      IdempotencyHealthIndicator onStandby = indicator(standby, TableName.DEFAULT);

      Health primaryHealth = onPrimary.health();
      Health standbyHealth = onStandby.health();

      assertThat(primaryHealth.getStatus()).isEqualTo(Status.UP);
      assertThat(primaryHealth.getDetails()).containsEntry("replication", "synchronous")
          .containsEntry("standbys", 1).containsEntry("synchronousStandbys", 1);
      // The keys' database is a standby (a URL or a name that reaches it, the primary gone):
      // covered requests get 503 until it is promoted.
      assertThat(standbyHealth.getStatus()).isEqualTo(Status.DOWN);
      assertThat(standbyHealth.getDetails()).containsEntry("replication", "standby");
      onPrimary.destroy();
      onStandby.destroy();
    }
  }

  private IdempotencyHealthIndicator indicator(TableName table) {
    return indicator(database, table);
  }

  private IdempotencyHealthIndicator indicator(DataSource dataSource, TableName table) {
    return new IdempotencyHealthIndicator(
        dataSource, table, Duration.ofSeconds(5), Duration.ofSeconds(2), nanos::get);
  }

  private static HikariDataSource pool(String url) {
    HikariConfig config = new HikariConfig();
    config.setJdbcUrl(url);
    config.setUsername("postgres");
    config.setMaximumPoolSize(2);
    return new HikariDataSource(config);
  }

  /** Counts the connections taken from a real pool. */
  private static final class CountingDataSource implements DataSource {
    final AtomicInteger connections = new AtomicInteger();
    private final DataSource target;

    CountingDataSource(DataSource target) {
      this.target = target;
    }

    @Override
    public Connection getConnection() throws SQLException {
      connections.incrementAndGet();
      return target.getConnection();
    }

    @Override
    public Connection getConnection(String user, String password) throws SQLException {
      connections.incrementAndGet();
      return target.getConnection(user, password);
    }

    @Override
    public PrintWriter getLogWriter() throws SQLException {
      return target.getLogWriter();
    }

    @Override
    public void setLogWriter(PrintWriter out) throws SQLException {
      target.setLogWriter(out);
    }

    @Override
    public void setLoginTimeout(int seconds) throws SQLException {
      target.setLoginTimeout(seconds);
    }

    @Override
    public int getLoginTimeout() throws SQLException {
      return target.getLoginTimeout();
    }

    @Override
    public Logger getParentLogger() throws SQLFeatureNotSupportedException {
      return target.getParentLogger();
    }

    @Override
    public <T> T unwrap(Class<T> type) throws SQLException {
      return target.unwrap(type);
    }

    @Override
    public boolean isWrapperFor(Class<?> type) throws SQLException {
      return target.isWrapperFor(type);
    }
  }
}
