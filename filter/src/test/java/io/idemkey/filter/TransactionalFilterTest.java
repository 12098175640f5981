package io.idemkey.filter;

import static org.assertj.core.api.Assertions.assertThat;

import io.idemkey.migrations.TableName;
import io.idemkey.store.ClaimResult;
import io.idemkey.store.Fingerprint;
import io.idemkey.store.IdempotencyKey;
import io.idemkey.store.IdempotencyStore;
import io.idemkey.store.RequestTransactions;
import io.idemkey.store.ResponseHeader;
import io.idemkey.store.StoreBuilder;
import io.idemkey.store.StoredResponse;
import io.idemkey.store.TestDatabase;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Savepoint;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import javax.sql.DataSource;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Transactional mode (SPEC §6) over HTTP on Jetty with a real PostgreSQL: the handler's row and
 * the stored response commit together or not at all, and the completion path of the
 * non-transactional mode outlasts a store that is briefly away.
 */
class TransactionalFilterTest {

  final HttpClient client = HttpClient.newHttpClient();
  final TableName table = TestDatabase.freshTable();
  final String rowsTable = "rows_" + UUID.randomUUID().toString().replace("-", "").substring(0, 12);
  final List<IdempotencyListener.Event> events = new CopyOnWriteArrayList<>();
  final RowHandler handler = new RowHandler(RequestTransactions.dataSource(TestDatabase.dataSource()));
  JettyContainer container;

  @BeforeEach
  void createRowsTable() throws SQLException {
    execute("CREATE TABLE " + rowsTable + " (key text NOT NULL)");
  }

  @AfterEach
  void stop() throws Exception {
    if (container != null) {
      container.close();
    }
  }

  void start(UnaryOperator<IdempotencyConfig.Builder> configure) throws Exception {
    IdempotencyConfig config =
        configure.apply(IdempotencyConfig.builder().transactional(true)).build();
    container = new JettyContainer();
    container.start(
        IdempotencyFilter.builder()
            .config(config)
            .store(config.applyTo(StoreBuilder.postgres(TestDatabase.dataSource()))
                .tableName(table).migrate(false).purgeInterval(Duration.ZERO).build())
            .listener(events::add)
            .build(),
        handler);
  }

  /**
   * Inserts a row naming the request's key, through the request's transaction, then answers as
   * the query asks: {@code status=N}, {@code throw}, {@code pauseMs=N} (after the insert),
   * {@code async}.
   */
  final class RowHandler extends HttpServlet {
    final DataSource dataSource;
    final CountDownLatch inserted = new CountDownLatch(1);
    volatile CountDownLatch proceed = new CountDownLatch(0);

    RowHandler(DataSource dataSource) {
      this.dataSource = dataSource;
    }

    @Override
    protected void doPost(HttpServletRequest request, HttpServletResponse response)
        throws IOException {
      if (request.getParameter("async") != null) {
        request.startAsync();
        return;
      }
      if (request.getParameter("catchSqlError") != null) {
        insertNullCatchingTheError(request, response);
        return;
      }
      String key = request.getHeader("Idempotency-Key");
      try (Connection connection = dataSource.getConnection();
          PreparedStatement insert =
              connection.prepareStatement("INSERT INTO " + rowsTable + " (key) VALUES (?)")) {
        insert.setString(1, key);
        insert.executeUpdate();
        if (!connection.getAutoCommit()) {
          connection.commit(); // in transactional mode, harmless: the filter commits
        }
      } catch (SQLException e) {
        throw new IOException(e);
      }
      inserted.countDown();
      try {
        proceed.await(30, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      if (request.getParameter("throw") != null) {
        throw new IllegalStateException("handler failed after its insert");
      }
      response.setStatus(Integer.parseInt(valueOr(request.getParameter("status"), "201")));
      response.setContentType("application/json");
      response.getOutputStream().write(("{\"key\":\"" + key + "\"}").getBytes(StandardCharsets.UTF_8));
    }
  }

  /**
   * An insert that violates NOT NULL, its error caught and answered 409 (a business answer), as a
   * handler does with a duplicate reference; with {@code savepoint}, rolled back to a savepoint
   * first, as the README says.
   */
  void insertNullCatchingTheError(HttpServletRequest request, HttpServletResponse response)
      throws IOException {
    try (Connection connection = handler.dataSource.getConnection()) {
      Savepoint savepoint =
          request.getParameter("savepoint") != null ? connection.setSavepoint() : null;
      try (Statement insert = connection.createStatement()) {
        insert.executeUpdate("INSERT INTO " + rowsTable + " (key) VALUES (NULL)");
        response.setStatus(201);
      } catch (SQLException e) {
        if (savepoint != null) {
          connection.rollback(savepoint);
        }
        response.setStatus(409);
      }
    } catch (SQLException e) {
      throw new IOException(e);
    }
    response.setContentType("application/json");
    response.getOutputStream().write("{\"refused\":true}".getBytes(StandardCharsets.UTF_8));
  }

  static String valueOr(String value, String fallback) {
    return value == null ? fallback : value;
  }

  HttpResponse<String> post(String query, String key) throws Exception {
    return client.send(request(query, key), HttpResponse.BodyHandlers.ofString());
  }

  HttpRequest request(String query, String key) {
    return HttpRequest.newBuilder(URI.create(container.uri() + "/rows" + query))
        .timeout(Duration.ofSeconds(60))
        .header("Idempotency-Key", key)
        .header("Content-Type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString("{}"))
        .build();
  }

  long rows(String key) throws SQLException {
    try (Connection connection = TestDatabase.dataSource().getConnection();
        PreparedStatement count =
            connection.prepareStatement("SELECT count(*) FROM " + rowsTable + " WHERE key = ?")) {
      count.setString(1, key);
      try (ResultSet row = count.executeQuery()) {
        row.next();
        return row.getLong(1);
      }
    }
  }

  /** The fingerprint the filter stored for {@code key}. */
  Fingerprint fingerprintOfTheRequest(String key) throws SQLException {
    try (Connection connection = TestDatabase.dataSource().getConnection();
        PreparedStatement select = connection.prepareStatement(
            "SELECT fingerprint FROM " + table.qualifiedTable() + " WHERE idem_key = ?")) {
      select.setString(1, key);
      try (ResultSet row = select.executeQuery()) {
        row.next();
        return new Fingerprint(row.getBytes(1));
      }
    }
  }

  static void execute(String sql) throws SQLException {
    try (Connection connection = TestDatabase.dataSource().getConnection();
        Statement statement = connection.createStatement()) {
      statement.execute(sql);
    }
  }

  @Test
  void transactional_success_rowAndResponseCommitTogetherAndDuplicateReplays() throws Exception {
    start(c -> c);
    String key = UUID.randomUUID().toString();

    HttpResponse<String> first = post("", key);
    HttpResponse<String> second = post("", key);

    assertThat(first.statusCode()).isEqualTo(201);
    assertThat(second.statusCode()).isEqualTo(201);
    assertThat(second.body()).isEqualTo(first.body());
    assertThat(second.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(rows(key)).isEqualTo(1);
  }

  @ParameterizedTest(name = "{0}")
  @CsvSource({"?status=503, 503", "?throw=true, 500"})
  void transactional_releaseStatusOrException_rollsBackTheHandlersWritesAndReleases(
      String query, int status) throws Exception {
    start(c -> c);
    String key = UUID.randomUUID().toString();

    assertThat(post(query, key).statusCode()).isEqualTo(status);
    assertThat(rows(key)).isZero();

    assertThat(post("", key).statusCode()).isEqualTo(201);
    assertThat(rows(key)).isEqualTo(1);
  }

  @Test
  void transactional_fourHundred_isStoredWithItsWrites() throws Exception {
    start(c -> c);
    String key = UUID.randomUUID().toString();

    assertThat(post("?status=400", key).statusCode()).isEqualTo(400);
    assertThat(post("?status=400", key).headers().firstValue("Idempotent-Replayed"))
        .hasValue("true");
    assertThat(rows(key)).isEqualTo(1);
  }

  @Test
  void transactional_handlerRunsPastTwoLeases_leaseRenewedMeanwhile_duplicateGets409NotTheKey()
      throws Exception {
    start(c -> c.set("jdbc.connect-timeout", "300ms").set("lease", "1s"));
    handler.proceed = new CountDownLatch(1);
    String key = UUID.randomUUID().toString();
    CompletableFuture<HttpResponse<String>> first =
        client.sendAsync(request("", key), HttpResponse.BodyHandlers.ofString());
    assertThat(handler.inserted.await(30, TimeUnit.SECONDS)).isTrue();
    Thread.sleep(2_500); // the transaction stays open past two leases; renewals run beside it

    // Had the lease lapsed, this duplicate would take the key over and run (and wait) itself.
    HttpResponse<String> duplicate = client.sendAsync(request("", key),
        HttpResponse.BodyHandlers.ofString()).get(10, TimeUnit.SECONDS);
    handler.proceed.countDown();

    assertThat(duplicate.statusCode()).isEqualTo(409);
    assertThat(duplicate.body()).contains("urn:idemkey:problem:in-progress");
    assertThat(first.get(60, TimeUnit.SECONDS).statusCode()).isEqualTo(201);
    assertThat(post("", key).headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(rows(key)).isEqualTo(1);
  }

  @Test
  void transactional_leaseTakenOverWhileHandlerRuns_writesRolledBackAndClientGets409()
      throws Exception {
    start(c -> c);
    handler.proceed = new CountDownLatch(1);
    String key = UUID.randomUUID().toString();
    CompletableFuture<HttpResponse<String>> first =
        client.sendAsync(request("", key), HttpResponse.BodyHandlers.ofString());
    assertThat(handler.inserted.await(30, TimeUnit.SECONDS)).isTrue();

    // Another node took the key over: the row now carries a newer token than this request's.
    execute("UPDATE " + table.qualifiedTable() + " SET token = token + 1000");
    handler.proceed.countDown();

    HttpResponse<String> answer = first.get(60, TimeUnit.SECONDS);
    assertThat(answer.statusCode()).isEqualTo(409);
    assertThat(answer.body()).contains("urn:idemkey:problem:in-progress");
    assertThat(rows(key)).isZero();
    assertThat(awaitOutcome(IdempotencyListener.Outcome.STALE_COMPLETION)).isTrue();
  }

  @Test
  void transactional_leaseTakenOverAndCompletedByTheNewHolder_clientGetsTheNewHoldersReplay()
      throws Exception {
    start(c -> c);
    handler.proceed = new CountDownLatch(1);
    String key = UUID.randomUUID().toString();
    CompletableFuture<HttpResponse<String>> first =
        client.sendAsync(request("", key), HttpResponse.BodyHandlers.ofString());
    assertThat(handler.inserted.await(30, TimeUnit.SECONDS)).isTrue();

    // The lease lapses (a long pause), another node takes the key over and completes it.
    execute("UPDATE " + table.qualifiedTable()
        + " SET lease_expires_at = now() - interval '1 second',"
        + " expires_at = now() - interval '1 second'");
    try (IdempotencyStore otherNode = StoreBuilder.postgres(TestDatabase.dataSource())
        .tableName(table).migrate(false).purgeInterval(Duration.ZERO).cacheMaxBytes(0).build()) {
      IdempotencyKey idempotencyKey = new IdempotencyKey("anonymous", key);
      ClaimResult takeOver = otherNode.claim(idempotencyKey, fingerprintOfTheRequest(key));
      assertThat(takeOver).isInstanceOf(ClaimResult.TakenOver.class);
      assertThat(otherNode.complete(idempotencyKey, ((ClaimResult.TakenOver) takeOver).token(),
          new StoredResponse(201, List.of(new ResponseHeader("Content-Type", "application/json")),
              "{\"by\":\"the new holder\"}".getBytes(StandardCharsets.UTF_8), true))).isTrue();
    }
    handler.proceed.countDown();

    HttpResponse<String> answer = first.get(60, TimeUnit.SECONDS);
    assertThat(answer.statusCode()).isEqualTo(201);
    assertThat(answer.body()).isEqualTo("{\"by\":\"the new holder\"}");
    assertThat(answer.headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(rows(key)).isZero(); // this request's own write was rolled back
    assertThat(awaitOutcome(IdempotencyListener.Outcome.STALE_COMPLETION)).isTrue();
  }

  @Test
  void transactional_connectionCutBeforeCommit_nothingStoredAndRetryPaysOnce() throws Exception {
    start(c -> c);
    handler.proceed = new CountDownLatch(1);
    String key = UUID.randomUUID().toString();
    CompletableFuture<HttpResponse<String>> first =
        client.sendAsync(request("", key), HttpResponse.BodyHandlers.ofString());
    assertThat(handler.inserted.await(30, TimeUnit.SECONDS)).isTrue();

    // The handler has written its row; its connection dies before the commit.
    execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        + " WHERE state = 'idle in transaction' AND query LIKE 'INSERT INTO " + rowsTable + "%'");
    handler.proceed.countDown();

    HttpResponse<String> answer = first.get(60, TimeUnit.SECONDS);
    assertThat(answer.statusCode()).isEqualTo(503);
    assertThat(answer.body()).contains("urn:idemkey:problem:store-unavailable");
    assertThat(rows(key)).isZero();

    handler.proceed = new CountDownLatch(0);
    assertThat(post("", key).statusCode()).isEqualTo(201);
    assertThat(post("", key).headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(rows(key)).isEqualTo(1);
  }

  // Regression: answered 503 store-unavailable, counted as STORE_FAILURE, on every try.
  @Test
  void transactional_handlerGoesOnAfterAnSqlError_is500TransactionAbortedNotStoreUnavailable()
      throws Exception {
    start(c -> c);
    String key = UUID.randomUUID().toString();

    HttpResponse<String> first = post("?catchSqlError=1", key);

    assertThat(first.statusCode()).isEqualTo(500);
    assertThat(first.body()).contains("urn:idemkey:problem:transaction-aborted");
    assertThat(awaitOutcome(IdempotencyListener.Outcome.RELEASED)).isTrue();
    assertThat(events).extracting(IdempotencyListener.Event::outcome)
        .doesNotContain(IdempotencyListener.Outcome.STORE_FAILURE);
    // The key was released: the retry runs (and fails the same way).
    assertThat(post("?catchSqlError=1", key).statusCode()).isEqualTo(500);
  }

  @Test
  void transactional_handlerRollsBackToASavepointAfterAnSqlError_itsAnswerIsStored()
      throws Exception {
    start(c -> c);
    String key = UUID.randomUUID().toString();

    HttpResponse<String> first = post("?catchSqlError=1&savepoint=1", key);
    HttpResponse<String> retry = post("?catchSqlError=1&savepoint=1", key);

    assertThat(first.statusCode()).isEqualTo(409);
    assertThat(retry.statusCode()).isEqualTo(409);
    assertThat(retry.headers().firstValue("Idempotent-Replayed")).hasValue("true");
  }

  @Test
  void transactional_startAsync_isRefusedAndKeyReleased() throws Exception {
    start(c -> c);
    String key = UUID.randomUUID().toString();

    assertThat(post("?async=true", key).statusCode()).isEqualTo(500);

    assertThat(post("", key).statusCode()).isEqualTo(201);
  }

  // Regression: beginTransaction's UnsupportedOperationException left the key renewed for ever
  // (a memory store handed in with transactional=true): every retry got 409.
  @Test
  void transactional_storeCannotBeginATransaction_keyReleasedNotRenewedForEver() throws Exception {
    IdempotencyConfig config = IdempotencyConfig.builder().transactional(true)
        .jdbcConnectTimeout(Duration.ofMillis(300)).lease(Duration.ofSeconds(1)).build();
    IdempotencyStore memory = StoreBuilder.memory().lease(Duration.ofSeconds(1)).build();
    container = new JettyContainer();
    container.start(IdempotencyFilter.builder().config(config).store(memory).build(), handler);
    String key = UUID.randomUUID().toString();

    HttpResponse<String> first = post("", key);
    HttpResponse<String> retry = post("", key);
    // Had the renewal of the first request gone on, the retry would have found the key held.
    ClaimResult claim = memory.claim(new IdempotencyKey("anonymous", key),
        new Fingerprint(new byte[32]));

    assertThat(first.statusCode()).isEqualTo(500);
    assertThat(retry.statusCode()).isEqualTo(500);
    assertThat(claim).isInstanceOf(ClaimResult.Acquired.class);
    assertThat(rows(key)).isZero();
  }

  @Test
  void complete_storeAwayLongerThanThreeTries_retriesUntilStoredAndAnswers201() throws Exception {
    start(c -> c.transactional(false).jdbcConnectTimeout(Duration.ofMillis(500)).lease(
        Duration.ofSeconds(3)));
    handler.proceed = new CountDownLatch(1);
    String key = UUID.randomUUID().toString();
    CompletableFuture<HttpResponse<String>> first =
        client.sendAsync(request("", key), HttpResponse.BodyHandlers.ofString());
    assertThat(handler.inserted.await(30, TimeUnit.SECONDS)).isTrue();
    try (Connection locker = TestDatabase.dataSource().getConnection();
        Statement lock = locker.createStatement()) {
      // The key's row locked for 5 s: every completion attempt in that time times out.
      locker.setAutoCommit(false);
      lock.execute("SELECT 1 FROM " + table.qualifiedTable() + " FOR UPDATE");
      handler.proceed.countDown();
      Thread.sleep(5_000);
      locker.rollback();
    }

    HttpResponse<String> answer = first.get(60, TimeUnit.SECONDS);
    assertThat(answer.statusCode()).isEqualTo(201);
    assertThat(post("", key).headers().firstValue("Idempotent-Replayed")).hasValue("true");
    assertThat(rows(key)).isEqualTo(1);
  }

  boolean awaitOutcome(IdempotencyListener.Outcome outcome) throws InterruptedException {
    for (int i = 0; i < 100; i++) {
      if (events.stream().anyMatch(e -> e.outcome() == outcome)) {
        return true;
      }
      Thread.sleep(20);
    }
    return false;
  }
}
