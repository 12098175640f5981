package io.idemkey.store;

import static org.assertj.core.api.Assertions.assertThat;

import io.idemkey.migrations.TableName;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import javax.sql.DataSource;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The request's transaction as application code sees it, on a real PostgreSQL. */
class RequestTransactionsTest {

  final TableName table = TestDatabase.freshTable();
  final String rows = "rows_" + UUID.randomUUID().toString().replace("-", "").substring(0, 12);
  final PostgresStore store = new PostgresStore(
      TestDatabase.dataSource(), table, null, Duration.ofHours(1), Duration.ofSeconds(30), 100,
      null);
  final DataSource application = RequestTransactions.dataSource(TestDatabase.dataSource());
  final IdempotencyKey key = new IdempotencyKey("scope", UUID.randomUUID().toString());
  final Fingerprint fingerprint = fingerprint();
  final StoredResponse response =
      new StoredResponse(201, List.of(), "{}".getBytes(StandardCharsets.UTF_8), true);

  static Fingerprint fingerprint() {
    try {
      return new Fingerprint(MessageDigest.getInstance("SHA-256").digest(new byte[] {1}));
    } catch (java.security.NoSuchAlgorithmException e) {
      throw new AssertionError(e);
    }
  }

  @BeforeEach
  void createRowsTable() throws SQLException {
    try (Connection connection = TestDatabase.dataSource().getConnection();
        Statement statement = connection.createStatement()) {
      statement.execute("CREATE TABLE " + rows + " (n int)");
    }
  }

  long count() throws SQLException {
    return countThrough(TestDatabase.dataSource());
  }

  long countThrough(DataSource dataSource) throws SQLException {
    try (Connection connection = dataSource.getConnection();
        Statement statement = connection.createStatement();
        ResultSet row = statement.executeQuery("SELECT count(*) FROM " + rows)) {
      row.next();
      return row.getLong(1);
    }
  }

  void insertThroughApplication() throws SQLException {
    try (Connection connection = application.getConnection();
        Statement statement = connection.createStatement()) {
      statement.execute("INSERT INTO " + rows + " VALUES (1)");
      // What Spring does around @Transactional(readOnly = true, isolation = SERIALIZABLE) and
      // after it: each is harmless on the request's connection.
      connection.setReadOnly(true);
      connection.setTransactionIsolation(Connection.TRANSACTION_SERIALIZABLE);
      connection.setReadOnly(false);
      connection.commit();
      connection.setAutoCommit(true);
    }
  }

  @Test
  void commit_writesThroughTheWrappedDataSource_commitWithTheCompletion() throws Exception {
    long token = ((ClaimResult.Held) store.claim(key, fingerprint)).token();
    try (StoreTransaction transaction = store.beginTransaction(key, token)) {
      try (RequestTransactions.Binding bound = RequestTransactions.bind(transaction)) {
        insertThroughApplication();
        assertThat(RequestTransactions.currentConnection()).containsSame(transaction.connection());
        // Another thread gets the pool's own connections, outside the request's transaction.
        assertThat(CompletableFuture.supplyAsync(this::countQuietly).get()).isZero();
      }
      assertThat(count()).isZero();

      assertThat(transaction.commit(response)).isTrue();
    }

    assertThat(count()).isEqualTo(1);
    assertThat(store.claim(key, fingerprint)).isInstanceOf(ClaimResult.Completed.class);
  }

  @Test
  void close_withoutCommit_rollsBackTheApplicationsWritesAndKeepsTheKeyHeld() throws Exception {
    long token = ((ClaimResult.Held) store.claim(key, fingerprint)).token();
    try (StoreTransaction transaction = store.beginTransaction(key, token);
        RequestTransactions.Binding bound = RequestTransactions.bind(transaction)) {
      insertThroughApplication();
    }

    assertThat(count()).isZero();
    assertThat(store.claim(key, fingerprint)).isInstanceOf(ClaimResult.InProgress.class);
    assertThat(RequestTransactions.currentConnection()).isEmpty();
  }

  /** Counts through the application's data source: on this thread, outside any request. */
  private long countQuietly() {
    try {
      return countThrough(application);
    } catch (SQLException e) {
      throw new IllegalStateException(e);
    }
  }
}
