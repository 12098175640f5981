package io.idemkey.store;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import io.idemkey.migrations.Migrations;
import io.idemkey.migrations.TableName;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicInteger;
import javax.sql.DataSource;

/**
 * The PostgreSQL that tests run against: one embedded PostgreSQL 17 per JVM, started on first use
 * and stopped at exit, or the database named by {@code IDEMPOTENCY_TEST_JDBC_URL} (with
 * {@code IDEMPOTENCY_TEST_JDBC_USER} and {@code IDEMPOTENCY_TEST_JDBC_PASSWORD}) when that is set.
 *
 * <p>Tests keep apart by taking a {@link #freshTable()} each. Thread-safe.
 */
public final class TestDatabase {

  private static final AtomicInteger TABLES = new AtomicInteger();
  private static String jdbcUrl;
  private static String user;
  private static String password;
  private static HikariDataSource dataSource;
  private static EmbeddedPostgres embedded;

  private TestDatabase() {}

  /** A pool on the test database, shared by every test in this JVM. */
  public static synchronized DataSource dataSource() {
    if (dataSource == null) {
      start();
    }
    return dataSource;
  }

  public static String jdbcUrl() {
    dataSource();
    return jdbcUrl;
  }

  public static String user() {
    dataSource();
    return user;
  }

  public static String password() {
    dataSource();
    return password;
  }

  /** A new table of its own, migrated, so that a test sees no other test's keys. */
  public static TableName freshTable() {
    String suffix = UUID.randomUUID().toString().replace("-", "").substring(0, 12);
    TableName table = new TableName("public", "k" + TABLES.incrementAndGet() + "_" + suffix);
    Migrations.migrate(dataSource(), table);
    return table;
  }

  /** A new pool on the test database: a second "node" has its own connections. */
  public static HikariDataSource newPool(int size) {
    dataSource();
    return pool(size);
  }

  private static HikariDataSource pool(int size) {
    HikariConfig config = new HikariConfig();
    config.setJdbcUrl(jdbcUrl);
    config.setUsername(user);
    config.setPassword(password);
    config.setMaximumPoolSize(size);
    return new HikariDataSource(config);
  }

  private static void start() {
    String external = System.getenv("IDEMPOTENCY_TEST_JDBC_URL");
    if (external != null && !external.isBlank()) {
      jdbcUrl = external;
      user = System.getenv("IDEMPOTENCY_TEST_JDBC_USER");
      password = System.getenv("IDEMPOTENCY_TEST_JDBC_PASSWORD");
    } else {
      if (embedded == null) {
        EmbeddedPostgres postgres = startEmbedded();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> closeQuietly(postgres)));
        embedded = postgres;
      }
      jdbcUrl = embedded.getJdbcUrl("postgres", "postgres");
      user = "postgres";
      password = "postgres";
    }
    dataSource = pool(48);
  }

  /** Starts an embedded PostgreSQL 17 that allows enough connections for the race tests. */
  public static EmbeddedPostgres startEmbedded() {
    try {
      return EmbeddedPostgres.builder().setServerConfig("max_connections", "300").start();
    } catch (IOException e) {
      throw new UncheckedIOException("could not start embedded PostgreSQL", e);
    }
  }

  private static void closeQuietly(EmbeddedPostgres postgres) {
    try {
      postgres.close();
    } catch (IOException e) {
      // The JVM is exiting; the temporary directory is removed with it.
    }
  }
}
