package io.idemkey.filter;

import static org.assertj.core.api.Assertions.assertThat;

import io.idemkey.migrations.TableName;
import io.idemkey.store.RequestTransactions;
import io.idemkey.store.StoreBuilder;
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
import java.sql.Statement;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.UnaryOperator;
import javax.sql.DataSource;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Steps (SPEC §12) over HTTP on Jetty with a real PostgreSQL, in both modes: a handler charges in
 * a step, then writes a row; a run released after its step is resumed by the retry without
 * calling again.
 */
class StepsFilterTest {

  final HttpClient client = HttpClient.newHttpClient();
  final TableName table = TestDatabase.freshTable();
  final String rowsTable = "rows_" + UUID.randomUUID().toString().replace("-", "").substring(0, 12);
  final List<IdempotencyListener.Event> events = new CopyOnWriteArrayList<>();
  final ChargeHandler handler =
      new ChargeHandler(RequestTransactions.dataSource(TestDatabase.dataSource()));
  JettyContainer container;

  @BeforeEach
  void createRowsTable() throws SQLException {
    try (Connection connection = TestDatabase.dataSource().getConnection();
        Statement statement = connection.createStatement()) {
      statement.execute("CREATE TABLE " + rowsTable + " (key text NOT NULL)");
    }
  }

  @AfterEach
  void stop() throws Exception {
    if (container != null) {
      container.close();
    }
  }

  void start(boolean transactional, UnaryOperator<IdempotencyConfig.Builder> configure)
      throws Exception {
    IdempotencyConfig config =
        configure.apply(IdempotencyConfig.builder().transactional(transactional)).build();
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
   * Charges in a step (counting the calls that reach the "processor"), inserts a row naming the
   * key, and answers 201 with the charge; or 500 once after the insert when {@code failNext}.
   */
  static final class ChargeHandler extends HttpServlet {
    final DataSource dataSource;
    final AtomicInteger calls = new AtomicInteger();
    final List<String> derivedKeys = new CopyOnWriteArrayList<>();
    final CountDownLatch inCall = new CountDownLatch(1);
    volatile CountDownLatch proceed = new CountDownLatch(0);
    volatile boolean failNext;
    volatile String rowsTable;

    ChargeHandler(DataSource dataSource) {
      this.dataSource = dataSource;
    }

    @Override
    protected void doPost(HttpServletRequest request, HttpServletResponse response)
        throws IOException {
      String body = new String(request.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      String key = request.getHeader("Idempotency-Key");
      String charge = Steps.of(request).runText("charge", derivedKey -> {
        int call = calls.incrementAndGet();
        derivedKeys.add(derivedKey);
        inCall.countDown();
        try {
          proceed.await(30, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
        return "ch_" + call + " for " + body;
      });
      try (Connection connection = dataSource.getConnection();
          PreparedStatement insert =
              connection.prepareStatement("INSERT INTO " + rowsTable + " (key) VALUES (?)")) {
        insert.setString(1, key);
        insert.executeUpdate();
      } catch (SQLException e) {
        throw new IOException(e);
      }
      if (failNext) {
        failNext = false;
        response.sendError(500);
        return;
      }
      response.setStatus(201);
      response.setContentType("text/plain");
      response.getOutputStream().write(charge.getBytes(StandardCharsets.UTF_8));
    }
  }

  HttpRequest request(String key, String body) {
    return HttpRequest.newBuilder(URI.create(container.uri() + "/charges"))
        .timeout(Duration.ofSeconds(60))
        .header("Idempotency-Key", key)
        .header("Content-Type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString(body))
        .build();
  }

  HttpResponse<String> post(String key, String body) throws Exception {
    return client.send(request(key, body), HttpResponse.BodyHandlers.ofString());
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

  List<IdempotencyListener.Outcome> stepOutcomes() {
    return events.stream().map(IdempotencyListener.Event::outcome)
        .filter(outcome -> outcome.name().startsWith("STEP_")).toList();
  }

  @BeforeEach
  void nameRowsTable() {
    handler.rowsTable = rowsTable;
  }

  @ParameterizedTest(name = "transactional={0}")
  @ValueSource(booleans = {false, true})
  void retry_after5xxFollowingAStep_resumesWithoutCallingAgain(boolean transactional)
      throws Exception {
    start(transactional, c -> c);
    String key = UUID.randomUUID().toString();
    handler.failNext = true;

    assertThat(post(key, "{\"amount\":1}").statusCode()).isEqualTo(500);
    HttpResponse<String> retried = post(key, "{\"amount\":1}");

    assertThat(retried.statusCode()).isEqualTo(201);
    assertThat(retried.body()).isEqualTo("ch_1 for {\"amount\":1}");
    assertThat(handler.calls).hasValue(1);
    assertThat(stepOutcomes()).containsExactly(
        IdempotencyListener.Outcome.STEP_EXECUTED, IdempotencyListener.Outcome.STEP_REPLAYED);
    // Transactional: the failed run's row was rolled back with it, its step result was not.
    assertThat(rows(key)).isEqualTo(transactional ? 1 : 2);
    assertThat(post(key, "{\"amount\":1}").headers().firstValue("Idempotent-Replayed"))
        .hasValue("true");
    assertThat(handler.calls).hasValue(1);
  }

  @Test
  void sameKeyOtherBody_neverSeesTheFirstRequestsStepAndGets422OnceCompleted() throws Exception {
    start(true, c -> c);
    String key = UUID.randomUUID().toString();
    handler.failNext = true;
    assertThat(post(key, "{\"amount\":1}").statusCode()).isEqualTo(500);

    // The key was released: another request may use it, but not the first one's step result.
    HttpResponse<String> other = post(key, "{\"amount\":2}");
    assertThat(other.statusCode()).isEqualTo(201);
    assertThat(other.body()).isEqualTo("ch_2 for {\"amount\":2}");
    assertThat(handler.derivedKeys).hasSize(2).doesNotHaveDuplicates();

    HttpResponse<String> reused = post(key, "{\"amount\":1}");
    assertThat(reused.statusCode()).isEqualTo(422);
    assertThat(reused.body()).contains("urn:idemkey:problem:key-reused").doesNotContain("ch_");
    assertThat(handler.calls).hasValue(2);
  }

  @ParameterizedTest(name = "transactional={0}")
  @ValueSource(booleans = {false, true})
  void slowStep_runsPastTwoLeases_leaseRenewedMeanwhile_duplicateGets409(boolean transactional)
      throws Exception {
    start(transactional, c -> c.set("jdbc.connect-timeout", "300ms").set("lease", "1s"));
    handler.proceed = new CountDownLatch(1);
    String key = UUID.randomUUID().toString();
    CompletableFuture<HttpResponse<String>> first =
        client.sendAsync(request(key, "{}"), HttpResponse.BodyHandlers.ofString());
    assertThat(handler.inCall.await(30, TimeUnit.SECONDS)).isTrue();
    Thread.sleep(2_500); // the step's call outlasts two leases; renewals run beside it

    // Had the lease lapsed, this duplicate would take the key over and call again.
    HttpResponse<String> duplicate = post(key, "{}");
    handler.proceed.countDown();

    assertThat(duplicate.statusCode()).isEqualTo(409);
    assertThat(first.get(60, TimeUnit.SECONDS).statusCode()).isEqualTo(201);
    assertThat(handler.calls).hasValue(1);
  }

  @ParameterizedTest(name = "transactional={0}")
  @ValueSource(booleans = {false, true})
  void leaseTakenOverWhileAStepCalls_resultNotStoredAndClientGetsWhatARetryGets(
      boolean transactional) throws Exception {
    start(transactional, c -> c);
    handler.proceed = new CountDownLatch(1);
    String key = UUID.randomUUID().toString();
    CompletableFuture<HttpResponse<String>> first =
        client.sendAsync(request(key, "{}"), HttpResponse.BodyHandlers.ofString());
    assertThat(handler.inCall.await(30, TimeUnit.SECONDS)).isTrue();
    // What a take-over by another node does to the key's row: a new fencing token (SPEC §5).
    assertThat(count("WITH u AS (UPDATE " + table.qualifiedTable() + " SET token = token + 1000"
        + " WHERE idem_key = ? RETURNING 1) SELECT count(*) FROM u", key)).isEqualTo(1);
    handler.proceed.countDown();

    HttpResponse<String> answer = first.get(30, TimeUnit.SECONDS);

    assertThat(answer.statusCode()).as("answer: %s", answer.body()).isEqualTo(409);
    assertThat(answer.body()).contains("urn:idemkey:problem:in-progress");
    assertThat(count("SELECT count(*) FROM " + table.qualifiedStepsTable() + " WHERE idem_key = ?",
        key)).as("the stale run's step result").isZero();
    assertThat(rows(key)).as("the handler stopped at its step").isZero();
    assertThat(events).extracting(IdempotencyListener.Event::outcome)
        .contains(IdempotencyListener.Outcome.STALE_COMPLETION);
  }

  long count(String sql, String key) throws SQLException {
    try (Connection connection = TestDatabase.dataSource().getConnection();
        PreparedStatement statement = connection.prepareStatement(sql)) {
      statement.setString(1, key);
      try (ResultSet row = statement.executeQuery()) {
        row.next();
        return row.getLong(1);
      }
    }
  }
}
